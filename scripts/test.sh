#!/usr/bin/env bash
# The test command: on a fresh Debian machine (as root) it installs what is
# missing, starts a Docker engine, builds the local test images, then runs
# every test (unit, integration against the real engine), a short run of
# each fuzz target, clippy and rustfmt.
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/ensure-docker.sh
source scripts/lib/ensure-docker.sh
ensure_docker
ensure_second_dockerd
ensure_debian_image
ensure_db_images
export LIFEBOAT_TEST_SECOND_ENGINE="unix://$SECOND_ENGINE_SOCKET"

echo "== cargo test"
cargo test --all-targets "$@"
echo "== fuzz targets, a short run of each (scripts/fuzz.sh)"
scripts/fuzz.sh
echo "== cargo clippy"
cargo clippy --all-targets -- -D warnings
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== all checks passed"
