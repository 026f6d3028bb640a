#!/usr/bin/env bash
# The main job on the embedded default spec (examples/quickstart): create a
# demo volume, validate, plan, apply, lose the volume, restore it, and show
# that the restored tree equals the original. Then a small stack (image,
# container, volume, config directory; the spec is embedded below) is backed
# up, lost entirely, restored in order and compared. Needs root on a Debian
# machine; installs Docker when missing.
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

# --- A whole small stack: an image built FROM a local base, a container
# running it with a data volume (stopped for the copy) and a bind-mounted
# config directory. Back it all up, lose all of it, restore in order.
echo; echo "== a small stack: image, container, volume and config directory"
stack=$work/stack
mkdir -p "$stack/spec" "$stack/build"
conf=/var/tmp/lifeboat-demo-conf
cleanup_stack() {
  docker rm -f lifeboat-demo-web >/dev/null 2>&1 || true
  docker volume rm -f lifeboat-demo_site >/dev/null 2>&1 || true
  docker rmi -f lifeboat-demo/web:1 >/dev/null 2>&1 || true
  rm -rf "$conf"
}
trap 'cleanup_stack; rm -rf "$work"' EXIT
cleanup_stack
printf 'FROM lifeboat-test/busybox:1\nCOPY motd /etc/motd\nCMD ["httpd", "-f", "-p", "8080", "-h", "/site"]\n' > "$stack/build/Dockerfile"
echo "built FROM the local busybox image" > "$stack/build/motd"
DOCKER_BUILDKIT=0 docker build -q -t lifeboat-demo/web:1 "$stack/build" >/dev/null
mkdir -p "$conf" && echo "greeting = hello" > "$conf/app.conf"
docker volume create lifeboat-demo_site >/dev/null
docker run -d --name lifeboat-demo-web --network none --restart unless-stopped \
  -e GREETING=hello -v lifeboat-demo_site:/site -v "$conf:/etc/app" lifeboat-demo/web:1 >/dev/null
docker exec lifeboat-demo-web sh -c 'echo "<h1>demo</h1>" > /site/index.html && seq 1 5000 > /site/numbers.txt'
cat > "$stack/spec/main.hcl" <<HCL
repository "local" {
  path = "$stack/repo"
  encryption { passphrase_env = "LIFEBOAT_DEMO_PASSPHRASE" }
}

image "web" {
  ref = "lifeboat-demo/web:1"
}

volume "site" {
  name        = "lifeboat-demo_site"
  consistency = "stop" # the container is stopped during the copy, then started
}

bind "conf" {
  path = "$conf"
}

service "web" {
  container = "lifeboat-demo-web"
  image     = image.web
  volumes   = [volume.site]
  binds     = [bind.conf]
  verify    = ["test", "-f", "/site/index.html"]
}
HCL
export LIFEBOAT_DEMO_PASSPHRASE=demo
image_id=$(docker image inspect -f '{{.Id}}' lifeboat-demo/web:1)
site_before=$(docker exec lifeboat-demo-web sh -c 'cat /site/index.html /site/numbers.txt | md5sum')
stackrun() { echo; echo "\$ lifeboat $*"; "$lifeboat" --chdir "$stack/spec" "$@"; }
stackrun plan
stackrun apply --auto-approve
echo; echo "\$ docker rm -f lifeboat-demo-web; docker volume rm lifeboat-demo_site; docker rmi lifeboat-demo/web:1; rm -r $conf"
cleanup_stack
stackrun restore --auto-approve

echo; echo "== comparing the restored stack with the original"
[ "$(docker image inspect -f '{{.Id}}' lifeboat-demo/web:1)" = "$image_id" ] || { echo "image id differs" >&2; exit 1; }
[ "$(docker inspect -f '{{.State.Running}}' lifeboat-demo-web)" = true ] || { echo "container not running" >&2; exit 1; }
[ "$(docker exec lifeboat-demo-web sh -c 'cat /site/index.html /site/numbers.txt | md5sum')" = "$site_before" ] || { echo "volume differs" >&2; exit 1; }
[ "$(cat "$conf/app.conf")" = "greeting = hello" ] || { echo "config directory differs" >&2; exit 1; }
docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' lifeboat-demo-web | grep -qx GREETING=hello || { echo "container env differs" >&2; exit 1; }
echo "identical: the image (same id), the container (running, same configuration), the volume and the config directory"

# What the repository remembers of both runs: read without the Docker engine.
stackrun runs
