#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (see fuzz/README.md), each for
# SECONDS (default 15) under nice, from its committed corpus.
#
#   scripts/fuzz.sh [SECONDS] [TARGET…]      default: every target in CI_TARGETS
#   scripts/fuzz.sh --build-only             build them, run nothing
#
# The targets are built the way `cargo fuzz build --sanitizer none` builds
# them (the same coverage instrumentation, for the host triple only so build
# scripts stay uninstrumented) but by cargo itself: a fresh CI machine then
# does not compile cargo-fuzz first (minutes), and crates keep cargo's
# default codegen units (cargo-fuzz forces one: fewer but faster runs; what
# the short run needs is the corpus replayed and a little exploration).
# `cargo fuzz run` by hand works on the same targets (README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
build_only=false
if [ "${1:-}" = --build-only ]; then
  build_only=true
  shift
fi
seconds="${1:-15}"
shift || true
# key_file derives a key per input (argon2, bounded parameters): few runs a
# second, still worth a short run for the parameter checks.
CI_TARGETS=(spec saved_plan tree repository key_file service_document)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=("${CI_TARGETS[@]}")
fi
host="$(rustc -vV | sed -n 's/^host: //p')"
coverage=(
  -Cpasses=sancov-module
  -Cllvm-args=-sanitizer-coverage-level=4
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
  -Cllvm-args=-sanitizer-coverage-pc-table
  -Cllvm-args=-sanitizer-coverage-trace-compares
  -Cllvm-args=-simplifycfg-branch-fold-threshold=0
  -Cllvm-args=-sanitizer-coverage-stack-depth
  --cfg fuzzing
  -Cdebug-assertions
)
echo "== building the fuzz targets"
RUSTFLAGS="${coverage[*]}" nice -n 10 cargo build --quiet --release \
  --manifest-path fuzz/Cargo.toml --target "$host" --bins
if $build_only; then
  exit 0
fi
for target in "${targets[@]}"; do
  echo "== fuzz $target (${seconds}s)"
  mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
  # New inputs go to a scratch corpus (libFuzzer writes to the first one),
  # so a run leaves the committed corpus as it is; grow that one with
  # `cargo fuzz run` and `cargo fuzz cmin` by hand (fuzz/README.md).
  # -rss_limit_mb: a generous ceiling; the targets must never come near it.
  log="$(mktemp)"
  scratch="$(mktemp -d)"
  status=0
  nice -n 10 "fuzz/target/$host/release/$target" "$scratch" "fuzz/corpus/$target" \
    -artifact_prefix="fuzz/artifacts/$target/" \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
    </dev/null >"$log" 2>&1 || status=$?
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done [0-9]+ runs)' "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$log"
    echo "fuzz target $target failed: reproduce with" \
      "fuzz/target/$host/release/$target fuzz/artifacts/$target/<file>" \
      "(or RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none $target <file>)"
    exit 1
  fi
  rm -rf "$log" "$scratch"
done
