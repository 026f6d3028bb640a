#!/usr/bin/env bash
# Benchmark: lifeboat against its peers, on several shapes of data, in one run.
#   scripts/bench.sh [--scale S] [--shapes reference,small-files,db-files,images]
# For each shape it builds a Docker volume (reference: ../shared/bench's
# mix, about 1 GB and 20,000 files at scale 1; small-files: 200,000 files of
# 0-4 KiB in deep directories; db-files: a few large database-like files,
# about 1.5 GB; scripts/lib/shapes.py), runs the peer runner (tar.gz,
# tar|zstd, raw Docker archive stream, restic, borg) and rustic on it, then
# lifeboat as a user runs it (no flags) and, on the reference shape, per
# access mode; and prints each lifeboat figure beside the best peer's, with
# the ratio and the target. Caches are dropped before every timed run.
# Needs root. rustic (Rust package rustic-rs) is built once and cached in
# /var/cache/lifeboat-bench/rustic.
set -euo pipefail
cd "$(dirname "$0")/.."
scale=1
shapes=reference,small-files,db-files,images
while [ $# -gt 0 ]; do case $1 in
  --scale) scale=$2; shift 2;;
  --shapes) shapes=$2; shift 2;;
  *) echo "unknown $1" >&2; exit 2;;
esac; done
bench=$(cd ../shared/bench && pwd)
# shellcheck source=scripts/lib/ensure-docker.sh
source scripts/lib/ensure-docker.sh
ensure_docker restic borgbackup time python3
rustic=/var/cache/lifeboat-bench/rustic/bin/rustic
if [ ! -x "$rustic" ]; then
  echo "== building rustic (once; cached in /var/cache/lifeboat-bench/rustic)"
  cargo install rustic-rs --locked --quiet --root /var/cache/lifeboat-bench/rustic
fi
cargo build --release --quiet
lifeboat=$PWD/target/release/lifeboat
work=$(mktemp -d /var/tmp/lifeboat-bench.XXXXXX)
cleanup() {
  rm -rf "$work"
  for v in benchvol benchvol-mut benchvol-restore bench-small-files bench-db-files; do
    docker volume rm -f "$v" >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT

drop() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
export LIFEBOAT_PASSPHRASE=bench
spec() { # spec DIR VOLUME REPO
  mkdir -p "$1"
  printf 'repository "main" {\n  path = "%s"\n  encryption { passphrase_env = "LIFEBOAT_PASSPHRASE" }\n}\nvolume "bench" {\n  name = "%s"\n}\n' "$3" "$2" > "$1/main.hcl"
}
declare -A fig
# timed NAME COMMAND…: seconds and peak RSS (KB) of one run, caches dropped.
timed() {
  local name=$1; shift
  drop
  local start end
  start=$(date +%s%N)
  /usr/bin/time -f %M -o "$work/rss" "$@" >"$work/out" 2>&1 || { cat "$work/out" >&2; exit 1; }
  end=$(date +%s%N)
  fig[$name]=$(python3 -c "print(round(($end-$start)/1e9,3))")
  fig[${name}_rss_kb]=$(tail -1 "$work/rss")
  echo "$name ${fig[$name]} s (peak RSS ${fig[${name}_rss_kb]} KB)"
}
# ours NAME DIR ARGS…: one lifeboat run on the spec in DIR.
ours() { local name=$1 dir=$2; shift 2; timed "lifeboat_$name" "$lifeboat" --chdir "$dir" "$@"; }
size() { du -sb "$1" | cut -f1; }
mountpoint() { docker volume inspect -f '{{.Mountpoint}}' "$1"; }

# rustic_peer VOLUME: rustic's first backup, forced re-run, restore, size.
rustic_peer() {
  local mp
  mp=$(mountpoint "$1")
  export RUSTIC_REPOSITORY=$work/rustic RUSTIC_PASSWORD=bench
  rm -rf "$RUSTIC_REPOSITORY"
  "$rustic" init >/dev/null 2>&1
  timed rustic_first "$rustic" backup "$mp"
  fig[rustic_repo_bytes]=$(size "$RUSTIC_REPOSITORY")
  timed rustic_rerun "$rustic" backup "$mp"
  mkdir -p "$work/rustic-restore"
  timed rustic_restore "$rustic" restore latest "$work/rustic-restore"
  rm -rf "$work/rustic-restore" "$RUSTIC_REPOSITORY"
}

# measure SHAPE VOLUME: peers and lifeboat on VOLUME; figures to $work/SHAPE.json.
measure() {
  local shape=$1 vol=$2
  fig=()
  echo "== peers on $shape"
  "$bench/peers.sh" "$vol" | tee "$work/peers.txt"
  tail -1 "$work/peers.txt" > "$work/$shape-peers.json"
  rustic_peer "$vol"
  # What the disk allows at best, for the rows whose target is near it:
  # every file's content read (4 readers at once), every entry lstat'ed.
  local mp
  mp=$(mountpoint "$vol")
  timed floor_read bash -c "find '$mp' -type f -print0 | xargs -0 -P 4 -n 512 cat > /dev/null"
  timed floor_stat find "$mp" -printf '%s\n'

  echo "== lifeboat on $shape, as a user runs it (no flags)"
  spec "$work/$shape" "$vol" "$work/$shape-repo"
  ours first "$work/$shape" apply --auto-approve
  fig[repo_bytes]=$(size "$work/$shape-repo")
  local before
  before=$(size "$work/$shape-repo")
  ours rerun "$work/$shape" apply --auto-approve --replace volume.bench
  fig[rerun_written_bytes]=$(( $(size "$work/$shape-repo") - before ))
  mkdir -p "$work/$shape-restore"
  sed "s/name = \"$vol\"/name = \"benchvol-restore\"/" "$work/$shape/main.hcl" > "$work/$shape-restore/main.hcl"
  docker volume rm -f benchvol-restore >/dev/null 2>&1 || true
  ours restore "$work/$shape-restore" restore --auto-approve
  docker volume rm -f benchvol-restore >/dev/null 2>&1 || true

  if [ "$shape" = reference ]; then
    per_mode "$vol"
  fi
  python3 -c "import json,sys; print(json.dumps(dict(a.split('=',1) for a in sys.argv[1:])))" \
    $(for k in "${!fig[@]}"; do echo "$k=${fig[$k]}"; done) > "$work/$shape-ours.json"
}

# per_mode VOLUME: the reference shape through each access mode, and the 1% mutation.
per_mode() {
  local vol=$1
  echo "== lifeboat per access mode"
  spec "$work/api" "$vol" "$work/repo-api"
  ours first_api "$work/api" apply --auto-approve --access api
  spec "$work/direct" "$vol" "$work/repo-direct"
  ours first_direct "$work/direct" apply --auto-approve --access direct
  ours rerun_direct "$work/direct" apply --auto-approve --access direct --replace volume.bench
  ours rerun_api "$work/direct" apply --auto-approve --access api --replace volume.bench

  # 1% of files changed, in a copy of the volume, into the same repository.
  docker volume rm -f benchvol-mut >/dev/null 2>&1 || true
  docker volume create benchvol-mut >/dev/null
  local mut before
  mut=$(mountpoint benchvol-mut)
  cp -a "$(mountpoint "$vol")/." "$mut/"
  python3 "$bench/gen.py" "$mut" --mutate --seed 43 --fraction 0.01 >/dev/null
  spec "$work/mut" benchvol-mut "$work/repo-direct"
  before=$(size "$work/repo-direct")
  ours after_mutate "$work/mut" apply --auto-approve --replace volume.bench
  fig[mutate_added_bytes]=$(( $(size "$work/repo-direct") - before ))

  mkdir -p "$work/restore"
  sed "s/name = \"$vol\"/name = \"benchvol-restore\"/" "$work/api/main.hcl" > "$work/restore/main.hcl"
  for access in api direct; do
    docker volume rm -f benchvol-restore >/dev/null 2>&1 || true
    ours "restore_$access" "$work/restore" restore --auto-approve --access "$access"
  done
}

IFS=, read -r -a wanted <<<"$shapes"
for shape in "${wanted[@]}"; do
  case $shape in
    reference) echo "== reference volume (scale $scale)"; "$bench/volume.sh" benchvol --scale "$scale"; measure reference benchvol;;
    small-files|db-files)
      vol=bench-$shape
      docker volume rm -f "$vol" >/dev/null 2>&1 || true
      docker volume create "$vol" >/dev/null
      echo "== $shape volume (scale $scale)"
      python3 scripts/lib/shapes.py "$shape" "$(mountpoint "$vol")" --scale "$scale"
      echo "volume $vol: $(size "$(mountpoint "$vol")") bytes, $(find "$(mountpoint "$vol")" -type f | wc -l) files"
      measure "$shape" "$vol";;
    images) ;; # scripts/bench-images.sh, after the tables
    *) echo "unknown shape $shape (reference, small-files, db-files, images)" >&2; exit 2;;
  esac
done

tabled=()
for shape in "${wanted[@]}"; do [ "$shape" = images ] || tabled+=("$shape"); done
python3 scripts/lib/bench-table.py "$work" "${tabled[@]}"
if [[ ",$shapes," == *,images,* ]]; then
  echo
  echo "== images"
  LIFEBOAT_BIN=$lifeboat scripts/bench-images.sh
fi
