# Sourced by scripts/test.sh and scripts/bench.sh: Garage, a real
# S3-compatible object store, for the S3 repository tests. Built once per
# machine with cargo (no registry of binaries is reachable) and cached under
# /var/cache/lifeboat; a warm machine only starts it.
#
# ensure_garage: a single node on 127.0.0.1:3900 (bucket lifeboat-test),
#   its facts in /var/lib/lifeboat-garage/env as KEY=value lines.
# start_garage_cluster DIR NODES BASE_PORT: another cluster, e.g. three
#   nodes with replication factor 3 for the node-failure test; node I
#   listens on BASE_PORT+10*(I-1) (S3), +1 (RPC), +3 (admin); its pid is in
#   DIR/nodeI.pid, the cluster's facts in DIR/env.
# stop_garage_cluster DIR: stops every node of it.

LIFEBOAT_GARAGE_VERSION=2.5.0
LIFEBOAT_GARAGE_ROOT=/var/cache/lifeboat/garage-$LIFEBOAT_GARAGE_VERSION
LIFEBOAT_GARAGE=$LIFEBOAT_GARAGE_ROOT/bin/garage
LIFEBOAT_GARAGE_DIR=/var/lib/lifeboat-garage
# Fixed test credentials: loopback only, and the tests need to know them.
LIFEBOAT_GARAGE_KEY_ID=GK1f0e2d3c4b5a69788796a5b4
LIFEBOAT_GARAGE_SECRET=9d3b6c1e0f2a4d5c8b7e6f1a0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d
LIFEBOAT_GARAGE_BUCKET=lifeboat-test

ensure_garage_binary() {
  if [ -x "$LIFEBOAT_GARAGE" ]; then
    return 0
  fi
  echo "== building Garage $LIFEBOAT_GARAGE_VERSION with cargo (once per machine; about 10 minutes)"
  CARGO_TARGET_DIR=/var/cache/lifeboat/garage-build \
    cargo install garage --version "$LIFEBOAT_GARAGE_VERSION" --locked \
    --root "$LIFEBOAT_GARAGE_ROOT" --quiet
  rm -rf /var/cache/lifeboat/garage-build
}

# garage_node_config DIR I NODES BASE_PORT SECRET: node I's garage.toml.
garage_node_config() {
  local dir=$1 i=$2 nodes=$3 base=$4 secret=$5
  local port=$((base + 10 * (i - 1)))
  mkdir -p "$dir/node$i/meta" "$dir/node$i/data"
  cat >"$dir/node$i.toml" <<EOF
metadata_dir = "$dir/node$i/meta"
data_dir = "$dir/node$i/data"
db_engine = "sqlite"
replication_factor = $nodes
rpc_bind_addr = "127.0.0.1:$((port + 1))"
rpc_public_addr = "127.0.0.1:$((port + 1))"
rpc_secret = "$secret"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$port"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$((port + 3))"
EOF
}

# garage_cli DIR ARGS…: the garage CLI against node 1 of the cluster in DIR.
garage_cli() {
  local dir=$1
  shift
  "$LIFEBOAT_GARAGE" -c "$dir/node1.toml" "$@"
}

# garage_wait_rpc CONFIG: waits (up to 30 s) until that node answers RPC.
garage_wait_rpc() {
  local _
  for _ in $(seq 1 150); do
    "$LIFEBOAT_GARAGE" -c "$1" status >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}

start_garage_cluster() {
  local dir=$1 nodes=$2 base=$3
  local secret i id
  mkdir -p "$dir"
  secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  for i in $(seq 1 "$nodes"); do
    garage_node_config "$dir" "$i" "$nodes" "$base" "$secret"
    (RUST_LOG=warn "$LIFEBOAT_GARAGE" -c "$dir/node$i.toml" server >"$dir/node$i.log" 2>&1 &
      echo $! >"$dir/node$i.pid")
  done
  for i in $(seq 1 "$nodes"); do
    id=""
    for _ in $(seq 1 100); do
      id=$("$LIFEBOAT_GARAGE" -c "$dir/node$i.toml" node id -q 2>/dev/null) && break
      sleep 0.2
    done
    # `node id` reads the key from disk and answers before the node
    # listens; `status` goes through RPC, so it proves the node is up.
    if [ -z "$id" ] || ! garage_wait_rpc "$dir/node$i.toml"; then
      echo "Garage node $i in $dir did not start; see $dir/node$i.log:" >&2
      tail -20 "$dir/node$i.log" >&2
      return 1
    fi
    if [ "$i" -gt 1 ]; then
      garage_cli "$dir" node connect "$id" >/dev/null || return 1
    fi
    garage_cli "$dir" layout assign -z "dc$i" -c 1G "${id%%@*}" >/dev/null || return 1
  done
  garage_cli "$dir" layout apply --version 1 >/dev/null || return 1
  garage_cli "$dir" key import --yes -n lifeboat-test \
    "$LIFEBOAT_GARAGE_KEY_ID" "$LIFEBOAT_GARAGE_SECRET" >/dev/null || return 1
  # The layout takes a moment to reach every node: retry the first write.
  for _ in $(seq 1 50); do
    garage_cli "$dir" bucket create "$LIFEBOAT_GARAGE_BUCKET" >/dev/null 2>&1 && break
    sleep 0.2
  done
  garage_cli "$dir" bucket allow --read --write --owner "$LIFEBOAT_GARAGE_BUCKET" \
    --key lifeboat-test >/dev/null || return 1
  cat >"$dir/env" <<EOF
LIFEBOAT_TEST_S3_ENDPOINT=http://127.0.0.1:$base
LIFEBOAT_TEST_S3_BUCKET=$LIFEBOAT_GARAGE_BUCKET
LIFEBOAT_TEST_S3_REGION=garage
LIFEBOAT_TEST_S3_ACCESS_KEY=$LIFEBOAT_GARAGE_KEY_ID
LIFEBOAT_TEST_S3_SECRET_KEY=$LIFEBOAT_GARAGE_SECRET
EOF
}

stop_garage_cluster() {
  local dir=$1 pidfile
  for pidfile in "$dir"/node*.pid; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
  done
  return 0
}

ensure_garage() {
  ensure_garage_binary
  if [ -f "$LIFEBOAT_GARAGE_DIR/node1.pid" ] && kill -0 "$(cat "$LIFEBOAT_GARAGE_DIR/node1.pid")" 2>/dev/null; then
    return 0
  fi
  echo "== starting Garage (S3 on 127.0.0.1:3900)"
  # A node's state is only worth keeping while it runs: start clean.
  # One retry from scratch: a port still held by a node being torn down
  # should not fail a whole test run.
  local attempt
  for attempt in 1 2; do
    rm -rf "$LIFEBOAT_GARAGE_DIR"
    start_garage_cluster "$LIFEBOAT_GARAGE_DIR" 1 3900 && return 0
    stop_garage_cluster "$LIFEBOAT_GARAGE_DIR"
    echo "== Garage did not start (attempt $attempt)" >&2
    sleep 2
  done
  return 1
}
