#!/usr/bin/env bash
# Restore of many tiny files, direct against Docker API:
#   scripts/bench-restore.sh [--files N] [--bin PATH]
# Makes a Docker volume of N files (default 200,000) of 0–4 KiB in
# directories 6 deep, backs it up once through the API, then restores that
# snapshot into a fresh volume with --access api and with --access direct,
# caches dropped before each, and prints the seconds of each. Needs root.
# --bin runs an already built lifeboat (default: a release build).
set -euo pipefail
cd "$(dirname "$0")/.."
files=200000
lifeboat=
while [ $# -gt 0 ]; do case $1 in
  --files) files=$2; shift 2;;
  --bin) lifeboat=$(realpath "$2"); shift 2;;
  *) echo "unknown $1" >&2; exit 2;;
esac; done
# shellcheck source=scripts/lib/ensure-docker.sh
source scripts/lib/ensure-docker.sh
ensure_docker python3
if [ -z "$lifeboat" ]; then
  cargo build --release --quiet
  lifeboat=$PWD/target/release/lifeboat
fi
src=lbbench-tiny-src
dst=lbbench-tiny-restore
work=$(mktemp -d /var/tmp/lifeboat-bench-restore.XXXXXX)
trap 'rm -rf "$work"; docker volume rm -f "$src" "$dst" >/dev/null 2>&1 || true' EXIT

docker volume rm -f "$src" "$dst" >/dev/null 2>&1 || true
docker volume create "$src" >/dev/null
mount=$(docker volume inspect -f '{{.Mountpoint}}' "$src")
echo "== $files files of 0-4 KiB into $src"
python3 - "$mount" "$files" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
for i in range(n):
    # 6 levels of up to 10 directories each, 10 files per leaf.
    d = os.path.join(root, *(f"d{(i // 10**k) % 10}" for k in range(6, 0, -1)))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i}"), "wb") as f:
        f.write(rng.randbytes(rng.randint(0, 4096)))
PY

export LIFEBOAT_PASSPHRASE=bench
mkdir -p "$work/backup" "$work/restore"
printf 'repository "main" {\n  path = "%s"\n  encryption { passphrase_env = "LIFEBOAT_PASSPHRASE" }\n}\nvolume "tiny" {\n  name = "%s"\n}\n' \
  "$work/repo" "$src" > "$work/backup/main.hcl"
sed "s/name = \"$src\"/name = \"$dst\"/" "$work/backup/main.hcl" > "$work/restore/main.hcl"
"$lifeboat" --chdir "$work/backup" apply --auto-approve --access api >"$work/out" 2>&1 || { cat "$work/out" >&2; exit 1; }

drop() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
for access in api direct; do
  docker volume rm -f "$dst" >/dev/null 2>&1 || true
  drop
  start=$(date +%s%N)
  "$lifeboat" --chdir "$work/restore" restore --auto-approve --access "$access" >"$work/out" 2>&1 || { cat "$work/out" >&2; exit 1; }
  end=$(date +%s%N)
  python3 -c "print('restore_$access', round(($end-$start)/1e9, 2), 's')"
  count=$(find "$(docker volume inspect -f '{{.Mountpoint}}' "$dst")" -type f | wc -l)
  [ "$count" -eq "$files" ] || { echo "restore_$access gave $count files, not $files" >&2; exit 1; }
done
