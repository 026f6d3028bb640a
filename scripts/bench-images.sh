#!/usr/bin/env bash
# Image benchmark (issue 12): a Debian base from debootstrap and three images
# built on it (one two levels deep), backed up by lifeboat, against
#   - `docker save` of all four together through `zstd -3 -T0` (that stream
#     stores shared layers once): repository size ≤ 1.0 × its size, and
#     backup time ≤ 1.0 × its time (issue 27);
#   - the seed's per-image `docker save | gzip` loop: backup time ≤ 0.5 ×;
#   - an unchanged re-run: ≤ 1 s and < 1 MB written.
#   scripts/bench-images.sh   (scripts/bench.sh runs it at its end). Needs root
# and Debian's package mirror (debootstrap, apt-get in the builds).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/ensure-docker.sh
source scripts/lib/ensure-docker.sh
ensure_docker debootstrap zstd time python3
# LIFEBOAT_BIN: a lifeboat already built (else a release build is made).
if [ -n "${LIFEBOAT_BIN:-}" ]; then
  lifeboat=$LIFEBOAT_BIN
else
  cargo build --release --quiet
  lifeboat=$PWD/target/release/lifeboat
fi
work=$(mktemp -d /var/tmp/lifeboat-bench-images.XXXXXX)
trap 'rm -rf "$work"' EXIT
drop() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
now() { date +%s%N; }
secs() { python3 -c "print(round(($2-$1)/1e9,3))"; }
size() { du -sb "$1" | cut -f1; }

base=lifeboat-test/debian:bookworm
ensure_debian_image
# build TAG FROM PACKAGES…: an image with Debian packages on FROM (kept between runs).
build() {
  local tag=$1 from=$2; shift 2
  docker image inspect "$tag" >/dev/null 2>&1 && return
  mkdir -p "$work/build"
  printf 'FROM %s\nRUN apt-get update && apt-get install -y --no-install-recommends %s && rm -rf /var/lib/apt/lists/*\n' \
    "$from" "$*" > "$work/build/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$work/build" >/dev/null
}
echo "== images"
build lifeboat-bench/tools:1 "$base" curl ca-certificates
build lifeboat-bench/python:1 "$base" python3-minimal
build lifeboat-bench/tools-jq:1 lifeboat-bench/tools:1 jq
images=("$base" lifeboat-bench/tools:1 lifeboat-bench/python:1 lifeboat-bench/tools-jq:1)
docker image ls --format '{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}' | grep -E 'debian:bookworm|lifeboat-bench/' || true

echo "== peers"
drop
start=$(now)
docker save "${images[@]}" | zstd -3 -q -T0 > "$work/all.tar.zst"
zstd_seconds=$(secs "$start" "$(now)")
zstd_bytes=$(size "$work/all.tar.zst")
drop
start=$(now)
for image in "${images[@]}"; do
  docker save "$image" | gzip > "$work/$(echo "$image" | tr '/:' '__').tar.gz"
done
seed_seconds=$(secs "$start" "$(now)")
echo "docker save of all four | zstd -3 -T0: $zstd_bytes B in $zstd_seconds s; per-image docker save | gzip: $seed_seconds s"

echo "== lifeboat"
export LIFEBOAT_PASSPHRASE=bench
mkdir -p "$work/spec"
{
  printf 'repository "main" {\n  path = "%s"\n  encryption { passphrase_env = "LIFEBOAT_PASSPHRASE" }\n}\n' "$work/repo"
  names=(debian tools python tools_jq)
  for i in "${!images[@]}"; do
    printf 'image "%s" {\n  ref = "%s"\n}\n' "${names[$i]}" "${images[$i]}"
  done
} > "$work/spec/main.hcl"
drop
start=$(now)
"$lifeboat" --chdir "$work/spec" apply --auto-approve > "$work/first.txt"
first_seconds=$(secs "$start" "$(now)")
repo_bytes=$(size "$work/repo")
drop
start=$(now)
"$lifeboat" --chdir "$work/spec" apply --auto-approve > "$work/rerun.txt"
rerun_seconds=$(secs "$start" "$(now)")
rerun_written=$(( $(size "$work/repo") - repo_bytes ))
grep -q "No changes" "$work/rerun.txt" || grep -q "0 to back up" "$work/rerun.txt" || cat "$work/rerun.txt"

python3 - <<PY
rows = [
  ("repository size vs docker save of all four through zstd -3", $repo_bytes, $zstd_bytes, 1.0, "B"),
  ("backup time vs docker save of all four through zstd -3 -T0", $first_seconds, $zstd_seconds, 1.0, "s"),
  ("backup time vs per-image docker save piped to gzip", $first_seconds, $seed_seconds, 0.5, "s"),
]
print()
print("| case | lifeboat | peer | ratio | target | met |")
print("|---|---|---|---|---|---|")
for label, a, b, target, unit in rows:
    fmt = (lambda x: f"{x:,.0f} B") if unit == "B" else (lambda x: f"{x:.2f} s")
    r = a / b
    print(f"| {label} | {fmt(a)} | {fmt(b)} | {r:.2f} | ≤ {target} | {'yes' if r <= target else 'no'} |")
print(f"| unchanged re-run | {$rerun_seconds:.2f} s, {$rerun_written:,} B written | | | ≤ 1 s, < 1 MB | {'yes' if $rerun_seconds <= 1 and $rerun_written < 1e6 else 'no'} |")
PY
