#!/usr/bin/env bash
# The main job on the embedded default spec (examples/quickstart): create a
# demo volume, validate, plan, apply, lose the volume, restore it, and show
# that the restored tree equals the original. Needs root on a Debian machine;
# installs Docker when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/ensure-docker.sh
source scripts/lib/ensure-docker.sh
ensure_docker

echo "== building lifeboat"
cargo build --release --quiet
lifeboat=$PWD/target/release/lifeboat
volume=lifeboat-demo_data
work=$(mktemp -d /tmp/lifeboat-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp examples/quickstart/main.hcl "$work/"

echo "== creating Docker volume $volume with some files"
docker volume rm -f "$volume" >/dev/null 2>&1 || true
docker volume create "$volume" >/dev/null
docker run --rm -v "$volume:/data" lifeboat-test/busybox:1 sh -c '
  mkdir -p /data/config /data/uploads/2026 /data/empty &&
  echo "listen 8080" > /data/config/app.conf &&
  seq 1 20000 > /data/uploads/2026/numbers.txt &&
  ln -s config/app.conf /data/current.conf &&
  chmod 600 /data/config/app.conf && chown 1000:1000 /data/uploads'
mountpoint=$(docker volume inspect -f '{{.Mountpoint}}' "$volume")
cp -a "$mountpoint" "$work/original"

run() { echo; echo "\$ lifeboat $*"; "$lifeboat" --chdir "$work" "$@"; }
run validate
run plan
run apply --auto-approve
run snapshots
run plan

echo; echo "\$ docker volume rm $volume"
docker volume rm "$volume"
run restore --auto-approve

echo; echo "== comparing the restored volume with the original"
mountpoint=$(docker volume inspect -f '{{.Mountpoint}}' "$volume")
# mtimes to the second: what Docker's archive format carries.
listing() { (cd "$1" && find . -printf '%p %y %m %U:%G %s %T@ %l\n' | sed -E 's/ ([0-9]+)\.[0-9]+ / \1 /' | sort); }
if diff <(listing "$work/original") <(listing "$mountpoint") && diff -r "$work/original" "$mountpoint"; then
  echo "identical: names, types, modes, owners, sizes, mtimes (to the second), link targets and content"
else
  echo "the restored volume differs from the original" >&2
  exit 1
fi
