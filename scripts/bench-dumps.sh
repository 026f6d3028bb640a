#!/usr/bin/env bash
# Dump benchmark: streaming `pg_dump` into the repository against the dump
# alone and against the usual way (dump to a file, then back the file up
# with restic), in one run:
#   scripts/bench-dumps.sh [--mb N] [--redumps N] [--bin PATH]
# Starts lifeboat-test/postgres:15 (scripts/lib/ensure-docker.sh), fills a
# table until `pg_dump` writes about N MB (default 1000), then times
#   exec      docker exec C pg_dump -U postgres bench > /dev/null
#   lifeboat  lifeboat apply --auto-approve (a spec with one dump block),
#             first into an empty repository, then again (unchanged data)
#   seed      docker exec C pg_dump … > FILE, then restic backup FILE
#   re-dumps  N more dumps of the unchanged database into each repository
#             (pg_dump writes a random `\restrict` key per dump, so a few
#             lines differ every time): what each tool's repository grows by
# and prints each with the ratios against the targets (lifeboat ≤ 1.1 ×
# exec, ≤ 0.5 × seed; re-dumps ≤ 0.5 × what restic adds) and lifeboat's
# peak RSS. Needs root.
# --bin runs an already built lifeboat (default: a release build);
# --redumps (default 3) the re-dumps after the first of each tool.
set -euo pipefail
cd "$(dirname "$0")/.."
mb=1000
redumps=3
lifeboat=
while [ $# -gt 0 ]; do case $1 in
  --mb) mb=$2; shift 2;;
  --redumps) redumps=$2; shift 2;;
  --bin) lifeboat=$(realpath "$2"); shift 2;;
  *) echo "unknown $1" >&2; exit 2;;
esac; done
# shellcheck source=scripts/lib/ensure-docker.sh
source scripts/lib/ensure-docker.sh
ensure_docker restic time python3
ensure_db_images
if [ -z "$lifeboat" ]; then
  cargo build --release --quiet
  lifeboat=$PWD/target/release/lifeboat
fi
container=lbbench-dumps-pg
work=$(mktemp -d /var/tmp/lifeboat-bench-dumps.XXXXXX)
trap 'rm -rf "$work"; docker rm -f "$container" >/dev/null 2>&1 || true' EXIT
docker rm -f "$container" >/dev/null 2>&1 || true
docker run -d --name "$container" lifeboat-test/postgres:15 >/dev/null
for _ in $(seq 1 60); do
  [ "$(docker inspect -f '{{.State.Health.Status}}' "$container")" = healthy ] && break
  sleep 1
done
# Rows of about 395 bytes in the dump: an id, a hash and text that
# compresses as real rows do (repeated words, not zeros).
rows=$(( mb * 1000 * 1000 / 395 ))
echo "== filling table bench.rows with $rows rows (about $mb MB of dump)"
docker exec "$container" psql -q -U postgres -c 'CREATE DATABASE bench' >/dev/null
docker exec "$container" psql -q -U postgres -d bench -c "
  CREATE TABLE rows AS
  SELECT g AS id, md5(g::text) AS hash,
         repeat(md5((g % 1000)::text) || ' order shipped to customer ', 6) AS note
  FROM generate_series(1, $rows) AS g" >/dev/null

seconds() { python3 -c "print(round(($2-$1)/1e9, 2))"; }
now() { date +%s%N; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }

drop
start=$(now)
docker exec "$container" pg_dump -U postgres bench >/dev/null
exec_s=$(seconds "$start" "$(now)")
dump_bytes=$(docker exec "$container" sh -c 'pg_dump -U postgres bench | wc -c')

export LIFEBOAT_PASSPHRASE=bench
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
  restore_command = ["psql", "-q", "-U", "postgres", "-d", "bench"]
}
HCL
"$lifeboat" --chdir "$work/spec" validate >/dev/null
timed_apply() {
  drop
  local start
  start=$(now)
  /usr/bin/time -f '%M' -o "$work/rss" "$lifeboat" --chdir "$work/spec" apply --auto-approve --replace dump.bench >"$work/out" 2>&1 \
    || { cat "$work/out" >&2; exit 1; }
  seconds "$start" "$(now)"
}
first_s=$(timed_apply)
first_rss=$(cat "$work/rss")
repo_first=$(du -sb "$work/repo" | cut -f1)
again_s=$(timed_apply)
added=$(( $(du -sb "$work/repo" | cut -f1) - repo_first ))
for _ in $(seq 2 "$redumps"); do timed_apply >/dev/null; done
lifeboat_redumps=$(( $(du -sb "$work/repo" | cut -f1) - repo_first ))

export RESTIC_PASSWORD=bench
restic init -q -r "$work/restic" >/dev/null
drop
start=$(now)
docker exec "$container" pg_dump -U postgres bench >"$work/bench.sql"
restic backup -q -r "$work/restic" "$work/bench.sql" >/dev/null
seed_s=$(seconds "$start" "$(now)")
restic_first=$(du -sb "$work/restic" | cut -f1)
for _ in $(seq 1 "$redumps"); do
  docker exec "$container" pg_dump -U postgres bench >"$work/bench.sql"
  restic backup -q -r "$work/restic" "$work/bench.sql" >/dev/null
done
restic_redumps=$(( $(du -sb "$work/restic" | cut -f1) - restic_first ))

python3 - "$dump_bytes" "$exec_s" "$first_s" "$again_s" "$seed_s" "$first_rss" "$added" \
  "$redumps" "$repo_first" "$lifeboat_redumps" "$restic_first" "$restic_redumps" <<'PY'
import sys
size, exec_s, first, again, seed, rss, added = sys.argv[1:8]
redumps, repo_first, lifeboat_redumps, restic_first, restic_redumps = map(int, sys.argv[8:])
size, exec_s, first, again, seed = int(size), float(exec_s), float(first), float(again), float(seed)
print(f"dump size                 {size / 1e6:.0f} MB")
print(f"docker exec pg_dump alone {exec_s:.2f} s")
print(f"lifeboat first dump       {first:.2f} s   {first / exec_s:.2f}x exec (target <= 1.1)   "
      f"{first / seed:.2f}x seed (target <= 0.5)   peak RSS {int(rss) // 1024} MB")
print(f"lifeboat unchanged re-dump {again:.2f} s  adds {int(added) / 1e6:.2f} MB "
      f"({100 * int(added) / size:.2f}% of the dump)")
print(f"seed: pg_dump > file, restic backup {seed:.2f} s")
if redumps > 0:
    ratio = lifeboat_redumps / restic_redumps if restic_redumps else float("inf")
    print(f"first dump stored          lifeboat {repo_first:,} B   restic {restic_first:,} B")
    print(f"{redumps} re-dumps add            lifeboat {lifeboat_redumps:,} B   restic {restic_redumps:,} B   "
          f"{ratio:.2f}x restic (target <= 0.5)")
PY
