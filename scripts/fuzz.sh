#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (see fuzz/README.md), each for
# SECONDS (default 25) under nice, from its committed corpus. Installs
# cargo-fuzz when missing (it stays in ~/.cargo/bin for later runs). Uses the
# stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags, and
# without a sanitizer the targets build on any toolchain (the code under
# test is safe Rust; debug assertions catch overflows).
#
#   scripts/fuzz.sh [SECONDS] [TARGET…]      default: every target in CI_TARGETS
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-25}"
shift || true
# key_file derives a key per input (argon2, bounded parameters): few runs a
# second, still worth a short run for the parameter checks.
CI_TARGETS=(spec saved_plan tree repository key_file)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=("${CI_TARGETS[@]}")
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
for target in "${targets[@]}"; do
  echo "== fuzz $target (${seconds}s)"
  mkdir -p "fuzz/corpus/$target"
  # New inputs go to a scratch corpus (libFuzzer writes to the first one),
  # so a run leaves the committed corpus as it is; grow that one with
  # `cargo fuzz run` and `cargo fuzz cmin` by hand (fuzz/README.md).
  # -rss_limit_mb: a generous ceiling; the targets must never come near it.
  log="$(mktemp)"
  scratch="$(mktemp -d)"
  status=0
  nice -n 10 cargo fuzz run --sanitizer none "$target" "$scratch" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
    </dev/null >"$log" 2>&1 || status=$?
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done [0-9]+ runs)' "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$log"
    echo "fuzz target $target failed: reproduce with RUSTC_BOOTSTRAP=1" \
      "cargo fuzz run --sanitizer none $target fuzz/artifacts/$target/<file>"
    exit 1
  fi
  rm -rf "$log" "$scratch"
done
