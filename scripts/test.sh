#!/usr/bin/env bash
# The test command: on a fresh Debian machine (as root) it installs what is
# missing, starts a Docker engine, builds the local test images, then runs
# every test (unit, integration against the real engine), a short run of
# each fuzz target, clippy and rustfmt.
# Extra arguments go to `cargo test`.
#
# Builds overlap what does not need the CPU: the test build runs while the
# engine is installed and the images are built (mostly downloads on a fresh
# machine), and the fuzz targets build at the lowest priority while the
# integration tests wait on the engine.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/ensure-docker.sh
source scripts/lib/ensure-docker.sh
# shellcheck source=scripts/lib/ensure-garage.sh
source scripts/lib/ensure-garage.sh
# shellcheck source=scripts/lib/ensure-sshd.sh
source scripts/lib/ensure-sshd.sh

background=()
# On an early exit, stop what still builds (the fuzz build is a script: its
# cargo is a child of the job).
# errexit holds in the trap too: every command in it must succeed.
trap 'for pid in "${background[@]}"; do pkill -P "$pid" || true; kill "$pid" 2>/dev/null || true; done' EXIT
# wait_for PID LOG WHAT: the background step's status; its log when it failed.
wait_for() {
  if ! wait "$1"; then
    cat "$2"
    echo "$3 failed" >&2
    exit 1
  fi
  rm -f "$2"
}

# Garage builds once per machine (cached); on a fresh one it shares the
# CPU with the test build, both while the engine and images come up.
garage_build_log="$(mktemp)"
ensure_garage_binary >"$garage_build_log" 2>&1 &
garage_build=$!
background+=("$garage_build")

echo "== building the tests (in the background)"
test_build_log="$(mktemp)"
cargo test --all-targets --no-run "$@" >"$test_build_log" 2>&1 &
test_build=$!
background+=("$test_build")
ensure_docker
ensure_second_dockerd
ensure_debian_image
ensure_db_images
export LIFEBOAT_TEST_SECOND_ENGINE="unix://$SECOND_ENGINE_SOCKET"
ensure_sshd
wait_for "$garage_build" "$garage_build_log" "the Garage build"
ensure_garage
wait_for "$test_build" "$test_build_log" "the test build"

echo "== building the fuzz targets (in the background, lowest priority)"
fuzz_build_log="$(mktemp)"
nice -n 19 scripts/fuzz.sh --build-only >"$fuzz_build_log" 2>&1 &
fuzz_build=$!
background+=("$fuzz_build")
echo "== cargo test"
cargo test --all-targets "$@"
wait_for "$fuzz_build" "$fuzz_build_log" "the fuzz build"
echo "== fuzz targets, a short run of each (scripts/fuzz.sh)"
scripts/fuzz.sh
echo "== cargo clippy"
cargo clippy --all-targets -- -D warnings
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== all checks passed"
