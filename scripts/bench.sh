#!/usr/bin/env bash
# Benchmark: lifeboat against its peers, on several shapes of data, in one run.
#   scripts/bench.sh [--scale S] [--shapes reference,small-files,db-files,real-tree,images,s3,browse,growth]
#                    [--skip-rustic]   (a trial run: no rustic build, no rustic figures)
# For each shape it builds a Docker volume (reference: ../shared/bench's
# mix, about 1 GB and 20,000 files at scale 1; small-files: 200,000 files of
# 0-4 KiB in deep directories; db-files: a few large database-like files,
# about 1.5 GB; scripts/lib/shapes.py; real-tree: a copy of this machine's
# /usr/share and /root/.cargo/registry, about 1.5 GB in 85,000 files, the
# first files of them × scale below 1), runs the peer runner (tar.gz,
# tar|zstd, raw Docker archive stream, restic, borg) and rustic on it, then
# lifeboat as a user runs it (no flags) and, on the reference shape, per
# access mode; and prints each lifeboat figure beside the best peer's, with
# the ratio and the target, and beside each row its floor: what the disk
# allows at best (every file read with `cat` for a first backup, every
# entry lstat'ed with `find` for a re-run, the tree written with `tar -x`
# for a restore). Caches are dropped before every timed run.
# The growth shape times lifeboat's first backup of generated files of
# 10 KB on average at 1, 2.5, 5 and 10 GB × scale (about 100,000 files per
# GB; the files of each size are kept and added to for the next), with its
# peak RSS and the time per GB, so that linearity shows; each size beside
# reading every file.
# The s3 shape runs lifeboat and restic on the reference volume into the
# same Garage (a node of the bench's own, on free ports of 127.0.0.1, that
# scripts/lib/ensure-garage.sh starts and the bench removes at the end),
# and copies a snapshot from a local repository to Garage with each.
# The browse shape puts a 100 MB file (× scale) into the reference volume,
# takes 30 snapshots of it with lifeboat and with restic, and times `find`
# over them, `dump` of that file, and reading it through `mount` (restic
# mount through Debian's fuse3), one against the other.
# Needs root. rustic (Rust package rustic-rs) is built once and cached in
# /var/cache/lifeboat-bench/rustic. LIFEBOAT_BIN=PATH measures that binary
# instead of a release build (a debug build, to try the script on a few MB).
set -euo pipefail
cd "$(dirname "$0")/.."
scale=1
shapes=reference,small-files,db-files,images,s3
skip_rustic=""
while [ $# -gt 0 ]; do case $1 in
  --scale) scale=$2; shift 2;;
  --shapes) shapes=$2; shift 2;;
  --skip-rustic) skip_rustic=1; shift;;
  *) echo "unknown $1" >&2; exit 2;;
esac; done
bench=$(cd ../shared/bench && pwd)
# shellcheck source=scripts/lib/ensure-docker.sh
source scripts/lib/ensure-docker.sh
# shellcheck source=scripts/lib/ensure-garage.sh
source scripts/lib/ensure-garage.sh
ensure_docker restic borgbackup time python3
rustic=/var/cache/lifeboat-bench/rustic/bin/rustic
# Only the volume shapes measure rustic.
if [ -z "$skip_rustic" ] && [[ ",$shapes," =~ ,(reference|small-files|db-files|real-tree), ]] && [ ! -x "$rustic" ]; then
  echo "== building rustic (once; cached in /var/cache/lifeboat-bench/rustic)"
  cargo install rustic-rs --locked --quiet --root /var/cache/lifeboat-bench/rustic
fi
if [ -n "${LIFEBOAT_BIN:-}" ]; then
  lifeboat=$(realpath "$LIFEBOAT_BIN")
else
  cargo build --release --quiet
  lifeboat=$PWD/target/release/lifeboat
fi
work=$(mktemp -d /var/tmp/lifeboat-bench.XXXXXX)
counter_pid="" garage_dir=""
cleanup() {
  [ -z "$counter_pid" ] || kill "$counter_pid" 2>/dev/null || true
  [ -z "$garage_dir" ] || stop_garage_cluster "$garage_dir"
  rm -rf "$work"
  for m in "$work/lifeboat-mnt" "$work/restic-mnt"; do
    ! grep -q " $m " /proc/mounts || umount -l "$m" 2>/dev/null || true
  done
  for v in benchvol benchvol-mut benchvol-restore bench-small-files bench-db-files bench-real-tree bench-growth; do
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
  if [ -n "$skip_rustic" ]; then echo "rustic skipped (--skip-rustic)"; else rustic_peer "$vol"; fi
  # What the disk allows at best, for the rows whose target is near it:
  # every file's content read (4 readers at once), every entry lstat'ed.
  local mp
  mp=$(mountpoint "$vol")
  timed floor_read bash -c "find '$mp' -type f -print0 | xargs -0 -P 4 -n 512 cat > /dev/null"
  timed floor_stat find "$mp" -printf '%s\n'
  # A restore's floor: the tree written by tar -x from an archive of it
  # (its own read of the archive included, caches dropped).
  tar -cf "$work/floor.tar" -C "$mp" .
  mkdir -p "$work/floor-write"
  timed floor_write bash -c "tar -xf '$work/floor.tar' -C '$work/floor-write' && sync"
  rm -rf "$work/floor.tar" "$work/floor-write"

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

# s3_spec DIR VOLUME PREFIX [ENDPOINT]: a spec backing VOLUME up into
# Garage under PREFIX (through ENDPOINT, default Garage's own).
s3_spec() {
  mkdir -p "$1"
  cat >"$1/main.hcl" <<EOF
repository "garage" {
  s3 {
    endpoint       = "${4:-$LIFEBOAT_TEST_S3_ENDPOINT}"
    bucket         = "$LIFEBOAT_TEST_S3_BUCKET"
    region         = "$LIFEBOAT_TEST_S3_REGION"
    prefix         = "$3"
    access_key_env = "LIFEBOAT_TEST_S3_ACCESS_KEY"
    secret_key_env = "LIFEBOAT_TEST_S3_SECRET_KEY"
  }
  encryption { passphrase_env = "LIFEBOAT_PASSPHRASE" }
}
volume "bench" {
  name = "$2"
}
EOF
}

# free_ports: a port P of 127.0.0.1 with P to P+3 free (a Garage node's S3,
# RPC and admin ports), from 39000 up.
free_ports() {
  local p listening
  listening=$(ss -ltnH | awk '{print $4}')
  for p in $(seq 39000 10 39990); do
    if ! grep -qE ":($p|$((p + 1))|$((p + 2))|$((p + 3)))\$" <<<"$listening"; then
      echo "$p"
      return 0
    fi
  done
  echo "no free ports for Garage in 39000-39993" >&2
  return 1
}

# measure_s3 VOLUME: lifeboat and restic into the same Garage (backup,
# unchanged re-run, restore, peak RSS), then a snapshot copied from a local
# repository to Garage by each, and the bytes a second copy of an unchanged
# snapshot sends (counted by scripts/lib/byte-counter.py on its way to
# Garage). Figures to $work/s3-ours.json. The Garage node is the bench's
# own: the tests' shared one stays unloaded, and what the bench stored goes
# with $work.
measure_s3() {
  local vol=$1 run=bench-$$ mp
  mp=$(mountpoint "$vol")
  fig=()
  ensure_garage_binary
  garage_dir=$work/garage
  start_garage_cluster "$garage_dir" 1 "$(free_ports)"
  set -a
  # shellcheck source=/dev/null
  source "$garage_dir/env"
  set +a
  export AWS_ACCESS_KEY_ID=$LIFEBOAT_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$LIFEBOAT_TEST_S3_SECRET_KEY
  export RESTIC_PASSWORD=bench
  local restic_s3="s3:$LIFEBOAT_TEST_S3_ENDPOINT/$LIFEBOAT_TEST_S3_BUCKET/$run/restic"

  echo "== restic into Garage"
  export RESTIC_REPOSITORY=$restic_s3
  restic init >/dev/null
  timed restic_s3_first restic backup -q "$mp"
  timed restic_s3_rerun restic backup -q "$mp"
  mkdir -p "$work/restic-s3-restore"
  timed restic_s3_restore restic restore -q latest --target "$work/restic-s3-restore"
  rm -rf "$work/restic-s3-restore"

  echo "== lifeboat into Garage"
  s3_spec "$work/s3" "$vol" "$run/lifeboat"
  ours s3_first "$work/s3" apply --auto-approve
  ours s3_rerun "$work/s3" apply --auto-approve --replace volume.bench
  s3_spec "$work/s3-restore" benchvol-restore "$run/lifeboat"
  docker volume rm -f benchvol-restore >/dev/null 2>&1 || true
  ours s3_restore "$work/s3-restore" restore --auto-approve
  docker volume rm -f benchvol-restore >/dev/null 2>&1 || true

  echo "== a snapshot copied from a local repository to Garage"
  echo bench >"$work/restic-password"
  RESTIC_REPOSITORY=$work/restic-local restic init >/dev/null
  RESTIC_REPOSITORY=$work/restic-local restic backup -q "$mp" >/dev/null
  export RESTIC_REPOSITORY=$restic_s3-copy
  restic init --copy-chunker-params --from-repo "$work/restic-local" \
    --from-password-file "$work/restic-password" >/dev/null
  timed restic_s3_copy restic copy -q --from-repo "$work/restic-local" \
    --from-password-file "$work/restic-password"
  unset RESTIC_REPOSITORY
  rm -rf "$work/restic-local"
  # lifeboat: the volume backed up into a local repository; then the spec
  # also keeps it in Garage, and its apply copies the snapshot there
  # (straight to Garage, as restic's copy goes).
  spec "$work/copy" "$vol" "$work/copy-local"
  "$lifeboat" --chdir "$work/copy" apply --auto-approve >/dev/null
  s3_spec "$work/copy-s3" "$vol" "$run/lifeboat-copy"
  sed -n '/^repository/,/^}/p' "$work/copy-s3/main.hcl" >>"$work/copy/main.hcl"
  ours s3_copy "$work/copy" apply --auto-approve
  # A second copy of an unchanged snapshot: a new snapshot of the same
  # volume into the local repository, copied to Garage through the byte
  # counter (a Python proxy: what it forwards is what is sent, but it is
  # no place to time a copy through).
  python3 scripts/lib/byte-counter.py "${LIFEBOAT_TEST_S3_ENDPOINT##*:}" "$work/counter-port" "$work/sent" &
  counter_pid=$!
  while [ ! -s "$work/counter-port" ]; do sleep 0.1; done
  sed -i "s#$LIFEBOAT_TEST_S3_ENDPOINT\"#http://127.0.0.1:$(cat "$work/counter-port")\"#" "$work/copy/main.hcl"
  local before
  before=$(cat "$work/sent")
  ours s3_second_copy "$work/copy" apply --auto-approve --replace volume.bench
  fig[s3_second_copy_sent_bytes]=$(( $(cat "$work/sent") - before ))
  kill "$counter_pid" 2>/dev/null || true
  counter_pid=""
  python3 -c "import json,sys; print(json.dumps(dict(a.split('=',1) for a in sys.argv[1:])))" \
    $(for k in "${!fig[@]}"; do echo "$k=${fig[$k]}"; done) > "$work/s3-ours.json"
}

# mounted_read NAME MOUNTPOINT FILE COMMAND…: starts COMMAND (a mount on
# MOUNTPOINT) in the background, waits for FILE to appear, times reading
# it whole, then unmounts.
mounted_read() {
  local name=$1 mnt=$2 file=$3; shift 3
  mkdir -p "$mnt"
  "$@" >"$work/$name-mount.log" 2>&1 &
  local pid=$! i
  for i in $(seq 600); do [ -e "$file" ] && break; sleep 0.1; done
  [ -e "$file" ] || { cat "$work/$name-mount.log" >&2; exit 1; }
  timed "$name" cat "$file"
  fusermount3 -u "$mnt"
  wait "$pid" || true
}

# measure_browse VOLUME: issue 26's figures, lifeboat against restic on the
# same 30 snapshots. Figures to $work/browse-ours.json.
measure_browse() {
  local vol=$1 mp big pattern i
  mp=$(mountpoint "$vol")
  fig=()
  big=bench-big-file.bin
  head -c "$(python3 -c "print(int(100 * 1024 * 1024 * $scale))")" /dev/urandom > "$mp/$big"
  # A name the reference mix holds a few times: the first file's.
  pattern=$(find "$mp" -type f ! -name "$big" -printf '%f\n' | sort | sed -n 1p)
  export RESTIC_REPOSITORY=$work/browse-restic RESTIC_PASSWORD=bench
  restic init -q
  spec "$work/browse" "$vol" "$work/browse-repo"
  echo "== 30 snapshots each of $vol"
  for i in $(seq 30); do
    restic backup -q "$mp" >/dev/null
    if [ "$i" = 1 ]; then
      "$lifeboat" --chdir "$work/browse" apply --auto-approve >/dev/null
    else
      "$lifeboat" --chdir "$work/browse" apply --auto-approve --replace volume.bench >/dev/null
    fi
  done
  timed restic_find restic find "$pattern"
  ours find "$work/browse" find "$pattern"
  timed restic_dump bash -c "restic dump latest '$mp/$big' > /dev/null"
  timed lifeboat_dump bash -c "'$lifeboat' --chdir '$work/browse' dump volume.bench '$big' > /dev/null"
  mounted_read restic_mount_read "$work/restic-mnt" "$work/restic-mnt/snapshots/latest$mp/$big" \
    restic mount "$work/restic-mnt"
  mounted_read lifeboat_mount_read "$work/lifeboat-mnt" "$work/lifeboat-mnt/volume.bench/latest/$big" \
    "$lifeboat" --chdir "$work/browse" mount "$work/lifeboat-mnt"
  unset RESTIC_REPOSITORY
  rm -f "$mp/$big"
  python3 -c "import json,sys; print(json.dumps(dict(a.split('=',1) for a in sys.argv[1:])))" \
    $(for k in "${!fig[@]}"; do echo "$k=${fig[$k]}"; done) > "$work/browse-ours.json"
}

# real_tree_volume VOLUME: a copy of /usr/share and /root/.cargo/registry
# (the first files of them, in path order, × scale below 1).
real_tree_volume() {
  local vol=$1 mp
  docker volume rm -f "$vol" >/dev/null 2>&1 || true
  docker volume create "$vol" >/dev/null
  mp=$(mountpoint "$vol")
  find /usr/share /root/.cargo/registry \( -type f -o -type l \) | sort > "$work/real-tree.list"
  local total keep
  total=$(wc -l < "$work/real-tree.list")
  keep=$(python3 -c "import math; print(min($total, math.ceil($total * $scale)))")
  head -n "$keep" "$work/real-tree.list" | tar -cf - -P --verbatim-files-from -T - | tar -xf - -P --transform 's,^/,,' -C "$mp"
  rm -f "$work/real-tree.list"
}

# measure_growth: lifeboat's first backup of 1, 2.5, 5, 10 GB × scale of
# 10 KB files, each into a new repository, beside reading every file.
measure_growth() {
  local vol=bench-growth mp gb
  docker volume rm -f "$vol" >/dev/null 2>&1 || true
  docker volume create "$vol" >/dev/null
  mp=$(mountpoint "$vol")
  fig=()
  for gb in 1 2.5 5 10; do
    local size
    size=$(python3 -c "print($gb * $scale)")
    echo "== growth: $size GB"
    python3 scripts/lib/shapes.py growth "$mp" --gb "$size"
    fig[growth_${gb}_bytes]=$(size "$mp")
    fig[growth_${gb}_files]=$(find "$mp" -type f | wc -l)
    timed "floor_read_$gb" bash -c "find '$mp' -type f -print0 | xargs -0 -P 4 -n 512 cat > /dev/null"
    rm -rf "$work/growth-repo"
    spec "$work/growth" "$vol" "$work/growth-repo"
    ours "first_$gb" "$work/growth" apply --auto-approve
  done
  rm -rf "$work/growth-repo"
  docker volume rm -f "$vol" >/dev/null 2>&1 || true
  python3 -c "import json,sys; print(json.dumps(dict(a.split('=',1) for a in sys.argv[1:])))" \
    $(for k in "${!fig[@]}"; do echo "$k=${fig[$k]}"; done) > "$work/growth-ours.json"
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
    real-tree)
      echo "== real-tree volume (scale $scale)"
      real_tree_volume bench-real-tree
      echo "volume bench-real-tree: $(size "$(mountpoint bench-real-tree)") bytes, $(find "$(mountpoint bench-real-tree)" -type f | wc -l) files"
      measure real-tree bench-real-tree
      docker volume rm -f bench-real-tree >/dev/null 2>&1 || true;;
    growth) measure_growth;;
    s3)
      if ! docker volume inspect benchvol >/dev/null 2>&1; then
        echo "== reference volume (scale $scale)"; "$bench/volume.sh" benchvol --scale "$scale"
      fi
      measure_s3 benchvol;;
    browse)
      if ! docker volume inspect benchvol >/dev/null 2>&1; then
        echo "== reference volume (scale $scale)"; "$bench/volume.sh" benchvol --scale "$scale"
      fi
      measure_browse benchvol;;
    images) ;; # scripts/bench-images.sh, after the tables
    *) echo "unknown shape $shape (reference, small-files, db-files, real-tree, images, s3, browse, growth)" >&2; exit 2;;
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
