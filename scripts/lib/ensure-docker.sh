# Sourced by scripts that need a Docker engine on a fresh Debian machine:
# installs what is missing (once), starts dockerd when no engine answers,
# and builds the local test images. Needs root. No registry is reachable,
# so images are built from Debian packages.

ensure_packages() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  [ -x /bin/busybox ] || missing+=(busybox-static)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v zstd >/dev/null 2>&1 || missing+=(zstd)
  for extra in "$@"; do
    dpkg -s "$extra" >/dev/null 2>&1 || missing+=("$extra")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

ensure_dockerd() {
  if docker info >/dev/null 2>&1; then
    return 0
  fi
  echo "== starting dockerd"
  (dockerd >/var/log/lifeboat-dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
      return 0
    fi
    sleep 1
  done
  echo "dockerd did not come up within 60 s; see /var/log/lifeboat-dockerd.log:" >&2
  tail -20 /var/log/lifeboat-dockerd.log >&2
  return 1
}

# lifeboat-test/busybox:1 from Debian's busybox-static: one binary and a
# symlink per applet (not for busybox itself: that would replace the binary).
ensure_busybox_image() {
  local image=lifeboat-test/busybox:1
  docker image inspect "$image" >/dev/null 2>&1 && return 0
  echo "== building $image"
  local rootfs
  rootfs=$(mktemp -d)
  mkdir -p "$rootfs/bin" "$rootfs/tmp"
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in $("$rootfs/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
  done
  tar -C "$rootfs" -c . | docker import -c 'ENV PATH=/bin' - "$image" >/dev/null
  rm -rf "$rootfs"
}

# lifeboat-test/debian:bookworm from debootstrap (about 40 s, once; the
# image is kept): the base the image and whole-stack tests build FROM.
ensure_debian_image() {
  local image=lifeboat-test/debian:bookworm
  docker image inspect "$image" >/dev/null 2>&1 && return 0
  command -v debootstrap >/dev/null 2>&1 || ensure_packages debootstrap
  echo "== building $image (debootstrap, once)"
  local rootfs
  rootfs=$(mktemp -d /var/tmp/lifeboat-debian.XXXXXX)
  debootstrap --variant=minbase bookworm "$rootfs" >/dev/null
  tar -C "$rootfs" -c . | docker import - "$image" >/dev/null
  rm -rf "$rootfs"
}

# A second engine on this machine, for the multi-engine tests: its own data
# root, exec root and socket, in its own network namespace (without one it
# deletes the first engine's docker0 bridge). nsenter, not `ip netns exec`,
# which hides the cgroup mounts.
SECOND_ENGINE_SOCKET=/run/lifeboat-engine2.sock
ensure_second_dockerd() {
  local host="unix://$SECOND_ENGINE_SOCKET"
  if docker -H "$host" info >/dev/null 2>&1; then
    return 0
  fi
  echo "== starting a second dockerd ($host)"
  command -v nsenter >/dev/null 2>&1 || ensure_packages util-linux
  command -v ip >/dev/null 2>&1 || ensure_packages iproute2
  ip netns list 2>/dev/null | grep -qw lifeboat2 || ip netns add lifeboat2
  ip netns exec lifeboat2 ip link set lo up
  mkdir -p /var/lib/lifeboat-engine2
  (nsenter --net=/run/netns/lifeboat2 dockerd --data-root /var/lib/lifeboat-engine2 \
    --exec-root /run/lifeboat-engine2 --pidfile /run/lifeboat-engine2.pid \
    -H "$host" --iptables=false --ip6tables=false \
    >/var/log/lifeboat-engine2.log 2>&1 &)
  for _ in $(seq 1 60); do
    if docker -H "$host" info >/dev/null 2>&1; then
      return 0
    fi
    sleep 1
  done
  echo "the second dockerd did not come up within 60 s; see /var/log/lifeboat-engine2.log:" >&2
  tail -20 /var/log/lifeboat-engine2.log >&2
  return 1
}

ensure_docker() {
  if [ "$(id -u)" != 0 ]; then
    echo "run as root: lifeboat's tests drive the Docker engine and write volume mountpoints" >&2
    return 1
  fi
  ensure_packages "$@"
  ensure_dockerd
  ensure_busybox_image
}
