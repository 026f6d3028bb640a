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
  # The metadata tests set and read attributes, ACLs and capabilities.
  command -v setfattr >/dev/null 2>&1 || missing+=(attr)
  command -v setfacl >/dev/null 2>&1 || missing+=(acl)
  command -v setcap >/dev/null 2>&1 || missing+=(libcap2-bin)
  # promtool checks the metrics file `lifeboat status --prometheus` writes.
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  # Compose v1 (1.29, Python): the init test starts a project with it, as
  # users of Debian's package do (it writes no depends_on labels).
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
  # The mount tests unmount with fusermount3 as users do (the mount itself
  # needs only /dev/fuse as root).
  command -v fusermount3 >/dev/null 2>&1 || missing+=(fuse3)
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

# Database servers from Debian's packages, in images built FROM the local
# Debian base (no registry is reachable; the build's apt reaches Debian's
# mirror): lifeboat-test/postgres:15 and lifeboat-test/mariadb:10, each with
# a HEALTHCHECK through the server's own client. About a minute each, once.
ensure_db_images() {
  ensure_debian_image
  local dir
  if ! docker image inspect lifeboat-test/postgres:15 >/dev/null 2>&1; then
    echo "== building lifeboat-test/postgres:15 (Debian's postgresql, once)"
    dir=$(mktemp -d)
    cat >"$dir/Dockerfile" <<'DOCKERFILE'
FROM lifeboat-test/debian:bookworm
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && rm -rf /var/lib/postgresql/15/main && mkdir -p /var/lib/postgresql/data /run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /run/postgresql
COPY entrypoint.sh /entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin PGDATA=/var/lib/postgresql/data
VOLUME /var/lib/postgresql/data
HEALTHCHECK --interval=1s --timeout=5s --retries=60 CMD pg_isready -q -U postgres
STOPSIGNAL SIGINT
CMD ["/entrypoint.sh"]
DOCKERFILE
    cat >"$dir/entrypoint.sh" <<'ENTRYPOINT'
#!/bin/sh
# A first start initialises an empty data directory; trust on the socket
# and the container's own network only (test images).
set -e
chown -R postgres:postgres "$PGDATA" /run/postgresql
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  su postgres -s /bin/sh -c "initdb -D $PGDATA -U postgres --auth=trust >/dev/null"
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  echo "host all all 0.0.0.0/0 trust" >>"$PGDATA/pg_hba.conf"
fi
exec su postgres -s /bin/sh -c "exec postgres -D $PGDATA"
ENTRYPOINT
    chmod +x "$dir/entrypoint.sh"
    docker build -q -t lifeboat-test/postgres:15 "$dir" >/dev/null
    rm -rf "$dir"
  fi
  if ! docker image inspect lifeboat-test/mariadb:10 >/dev/null 2>&1; then
    echo "== building lifeboat-test/mariadb:10 (Debian's mariadb-server, once)"
    dir=$(mktemp -d)
    cat >"$dir/Dockerfile" <<'DOCKERFILE'
FROM lifeboat-test/debian:bookworm
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mariadb-server mariadb-client >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/lib/mysql && mkdir -p /var/lib/mysql /run/mysqld \
 && chown -R mysql:mysql /var/lib/mysql /run/mysqld
COPY entrypoint.sh /entrypoint.sh
VOLUME /var/lib/mysql
HEALTHCHECK --interval=1s --timeout=5s --retries=60 CMD mariadb-admin ping --silent
CMD ["/entrypoint.sh"]
DOCKERFILE
    cat >"$dir/entrypoint.sh" <<'ENTRYPOINT'
#!/bin/sh
# A first start initialises an empty data directory (root by socket only).
set -e
chown -R mysql:mysql /var/lib/mysql /run/mysqld
if [ ! -d /var/lib/mysql/mysql ]; then
  mariadb-install-db --user=mysql --datadir=/var/lib/mysql --auth-root-authentication-method=socket >/dev/null
fi
exec mariadbd --user=mysql --datadir=/var/lib/mysql --bind-address=0.0.0.0
ENTRYPOINT
    chmod +x "$dir/entrypoint.sh"
    docker build -q -t lifeboat-test/mariadb:10 "$dir" >/dev/null
    rm -rf "$dir"
  fi
}
