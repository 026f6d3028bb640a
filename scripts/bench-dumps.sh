#!/usr/bin/env bash
# Streaming a PostgreSQL dump into the repository, against its baselines:
#   scripts/bench-dumps.sh [--scale N] [--bin PATH]
# Starts a lifeboat-test/postgres:15 container (scripts/lib/ensure-docker.sh
# builds it), fills database `bench` with `pgbench -i -s N` (default 70:
# about 1 GB of pg_dump output), then times in one run:
#   exec:    docker exec C pg_dump -U postgres bench > /dev/null
#   lifeboat: lifeboat apply --target dump.bench (the dump streamed into a
#            fresh repository, no temporary file)
#   seed:    pg_dump to a file, then `restic backup` of that file (the way
#            lifeboat's seed did it)
# and prints the seconds and the ratios (issue 13's targets: lifeboat ≤ 1.1 ×
# exec, ≤ 0.5 × seed). --bin runs an already built lifeboat (default: a
# release build). Needs root and restic (apt-get install restic).
set -euo pipefail
cd "$(dirname "$0")/.."
scale=70
lifeboat=
while [ $# -gt 0 ]; do case $1 in
  --scale) scale=$2; shift 2;;
  --bin) lifeboat=$(realpath "$2"); shift 2;;
  *) echo "unknown $1" >&2; exit 2;;
esac; done
# shellcheck source=scripts/lib/ensure-docker.sh
source scripts/lib/ensure-docker.sh
ensure_docker python3
ensure_db_images
command -v restic >/dev/null || { echo "restic is missing: apt-get install restic" >&2; exit 1; }
if [ -z "$lifeboat" ]; then
  cargo build --release --quiet
  lifeboat=$PWD/target/release/lifeboat
fi
container=lbbench-dump-pg
work=$(mktemp -d /var/tmp/lifeboat-bench-dumps.XXXXXX)
trap 'rm -rf "$work"; docker rm -f -v "$container" >/dev/null 2>&1 || true' EXIT

docker rm -f -v "$container" >/dev/null 2>&1 || true
docker run -d --name "$container" lifeboat-test/postgres:15 >/dev/null
until [ "$(docker inspect -f '{{.State.Health.Status}}' "$container")" = healthy ]; do sleep 0.5; done
echo "== pgbench -i -s $scale into database bench"
docker exec "$container" createdb -U postgres bench
docker exec "$container" pgbench -i -q -s "$scale" -U postgres bench >/dev/null 2>&1
docker exec "$container" psql -U postgres -d bench -tAc "VACUUM ANALYZE" >/dev/null

now() { date +%s%N; }
secs() { python3 -c "print(round(($2-$1)/1e9, 2))"; }

# A first dump warms the server's caches for all three alike.
docker exec "$container" pg_dump -U postgres bench | wc -c > "$work/size"
size=$(cat "$work/size")

start=$(now)
docker exec "$container" pg_dump -U postgres bench >/dev/null
exec_s=$(secs "$start" "$(now)")

export LIFEBOAT_PASSPHRASE=bench RESTIC_PASSWORD=bench
mkdir -p "$work/spec"
cat >"$work/spec/main.hcl" <<HCL
repository "main" {
  path = "$work/repo"
  encryption { passphrase_env = "LIFEBOAT_PASSPHRASE" }
}

service "pg" {
  container = "$container"
}

dump "bench" {
  service         = service.pg
  command         = ["pg_dump", "-U", "postgres", "bench"]
  restore_command = ["psql", "-U", "postgres", "bench"]
}
HCL
# The repository is created first, outside the measure.
"$lifeboat" --chdir "$work/spec" apply --auto-approve --target service.pg >"$work/out" 2>&1 \
  || { cat "$work/out" >&2; exit 1; }
start=$(now)
"$lifeboat" --chdir "$work/spec" apply --auto-approve --target dump.bench >"$work/out" 2>&1 \
  || { cat "$work/out" >&2; exit 1; }
lifeboat_s=$(secs "$start" "$(now)")
grep "dump.bench: done" "$work/out" || true

restic init --repo "$work/restic" >/dev/null
start=$(now)
docker exec "$container" pg_dump -U postgres bench >"$work/bench.sql"
restic backup --repo "$work/restic" --quiet "$work/bench.sql" >/dev/null
seed_s=$(secs "$start" "$(now)")

python3 - "$size" "$exec_s" "$lifeboat_s" "$seed_s" <<'PY'
import sys
size, e, l, s = int(sys.argv[1]), *map(float, sys.argv[2:])
print(f"dump size            {size / 1e9:.2f} GB")
print(f"exec pg_dump alone   {e:7.2f} s")
print(f"lifeboat apply       {l:7.2f} s   {l / e:.2f} x exec   (target <= 1.1)")
print(f"pg_dump + restic     {s:7.2f} s   lifeboat = {l / s:.2f} x   (target <= 0.5)")
PY
