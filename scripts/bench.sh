#!/usr/bin/env bash
# Benchmark: lifeboat against its peers on the reference volume, in one run.
#   scripts/bench.sh [--scale S]
# Builds ../shared/bench's reference volume (about 1 GB, 20,000 files at
# scale 1), runs the peer runner (tar.gz, tar|zstd, raw Docker archive
# stream, restic, borg), then lifeboat's cases, and prints each lifeboat
# figure beside the peer figure it is judged against, with the ratio.
# Caches are dropped before every timed run. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
scale=1
while [ $# -gt 0 ]; do case $1 in --scale) scale=$2; shift 2;; *) echo "unknown $1" >&2; exit 2;; esac; done
bench=$(cd ../shared/bench && pwd)
# shellcheck source=scripts/lib/ensure-docker.sh
source scripts/lib/ensure-docker.sh
ensure_docker restic borgbackup time python3
cargo build --release --quiet
lifeboat=$PWD/target/release/lifeboat
work=$(mktemp -d /var/tmp/lifeboat-bench.XXXXXX)
trap 'rm -rf "$work"; docker volume rm -f benchvol-mut benchvol-restore >/dev/null 2>&1 || true' EXIT

echo "== reference volume (scale $scale)"
"$bench/volume.sh" benchvol --scale "$scale"
echo "== peers"
"$bench/peers.sh" benchvol | tee "$work/peers.txt"
tail -1 "$work/peers.txt" > "$work/peers.json"

drop() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
export LIFEBOAT_PASSPHRASE=bench
spec() { # spec DIR VOLUME REPO
  mkdir -p "$1"
  printf 'repository "main" {\n  path = "%s"\n  encryption { passphrase_env = "LIFEBOAT_PASSPHRASE" }\n}\nvolume "bench" {\n  name = "%s"\n}\n' "$3" "$2" > "$1/main.hcl"
}
declare -A fig
# timed NAME DIR ARGS…: seconds and peak RSS (KB) of one lifeboat run, caches dropped.
timed() {
  local name=$1 dir=$2; shift 2
  drop
  local start end
  start=$(date +%s%N)
  /usr/bin/time -f %M -o "$work/rss" "$lifeboat" --chdir "$dir" "$@" >"$work/out" 2>&1 || { cat "$work/out" >&2; exit 1; }
  end=$(date +%s%N)
  fig[$name]=$(python3 -c "print(round(($end-$start)/1e9,3))")
  fig[${name}_rss_kb]=$(tail -1 "$work/rss")
  echo "lifeboat_$name ${fig[$name]} s (peak RSS ${fig[${name}_rss_kb]} KB)"
}
size() { du -sb "$1" | cut -f1; }

echo "== lifeboat"
spec "$work/api" benchvol "$work/repo-api"
timed first_api "$work/api" apply --auto-approve --access api
fig[repo_bytes]=$(size "$work/repo-api")
spec "$work/direct" benchvol "$work/repo-direct"
timed first_direct "$work/direct" apply --auto-approve --access direct
before=$(size "$work/repo-direct")
timed rerun_direct "$work/direct" apply --auto-approve --access direct --replace volume.bench
fig[rerun_written_bytes]=$(( $(size "$work/repo-direct") - before ))
timed rerun_api "$work/direct" apply --auto-approve --access api --replace volume.bench

# 1% of files changed, in a copy of the volume, into the same repository.
docker volume rm -f benchvol-mut >/dev/null 2>&1 || true
docker volume create benchvol-mut >/dev/null
mut=$(docker volume inspect -f '{{.Mountpoint}}' benchvol-mut)
cp -a "$(docker volume inspect -f '{{.Mountpoint}}' benchvol)/." "$mut/"
python3 "$bench/gen.py" "$mut" --mutate --seed 43 --fraction 0.01 >/dev/null
spec "$work/mut" benchvol-mut "$work/repo-direct"
before=$(size "$work/repo-direct")
timed after_mutate "$work/mut" apply --auto-approve --access direct --replace volume.bench
fig[mutate_added_bytes]=$(( $(size "$work/repo-direct") - before ))

# Restores into an empty volume, both ways: the API repository's snapshot of
# volume.bench, into another Docker volume.
mkdir -p "$work/restore"
sed 's/name = "benchvol"/name = "benchvol-restore"/' "$work/api/main.hcl" > "$work/restore/main.hcl"
for access in api direct; do
  docker volume rm -f benchvol-restore >/dev/null 2>&1 || true
  timed "restore_$access" "$work/restore" restore --auto-approve --access "$access"
done

python3 - "$work/peers.json" <<PY
import json, sys
peers = {k: float(v) for k, v in json.load(open(sys.argv[1])).items()}
ours = {k: float(v) for k, v in {$(for k in "${!fig[@]}"; do printf '"%s": "%s", ' "$k" "${fig[$k]}"; done)}.items()}
rows = [
  ("first backup, Docker API", "first_api", "docker_archive_api", 1.3, "s"),
  ("first backup, direct", "first_direct", "restic_first", 0.4, "s"),
  ("unchanged re-run, direct", "rerun_direct", "restic_rerun", 0.5, "s"),
  ("unchanged re-run, Docker API", "rerun_api", "restic_rerun", None, "s"),
  ("after 1% mutation, direct", "after_mutate", "restic_after_mutate", 1.0, "s"),
  ("data added by the 1% mutation", "mutate_added_bytes", "restic_mutate_added_bytes", 1.0, "B"),
  ("restore into empty volume, direct", "restore_direct", "restic_restore", 0.75, "s"),
  ("restore into empty volume, Docker API", "restore_api", "restic_restore", None, "s"),
  ("repository size", "repo_bytes", "restic_repo_bytes", 1.02, "B"),
]
print()
print("| case | lifeboat | peer | peer value | ratio | target | met |")
print("|---|---|---|---|---|---|---|")
for label, mine, peer, target, unit in rows:
    a, b = ours.get(mine), peers.get(peer)
    ratio = a / b if a is not None and b else float("nan")
    met = "" if target is None else ("yes" if ratio <= target else "no")
    fmt = (lambda x: f"{x:,.0f} B") if unit == "B" else (lambda x: f"{x:.2f} s")
    print(f"| {label} | {fmt(a)} | {peer} | {fmt(b)} | {ratio:.2f} | {'' if target is None else '≤ ' + str(target)} | {met} |")
print(f"| unchanged re-run writes | {ours['rerun_written_bytes']:,.0f} B | | | | < 1 MB | {'yes' if ours['rerun_written_bytes'] < 1e6 else 'no'} |")
for case in ["first_api", "first_direct", "rerun_direct", "after_mutate", "restore_api", "restore_direct"]:
    print(f"| peak RSS, {case} | {ours[case + '_rss_kb']/1024:.0f} MB | restic first backup | {peers.get('restic_first_rss_kb', 0)/1024:.0f} MB | | ≤ 100 MB | {'yes' if ours[case + '_rss_kb'] <= 100*1024 else 'no'} |")
PY

echo
echo "== images"
LIFEBOAT_BIN=$lifeboat scripts/bench-images.sh
