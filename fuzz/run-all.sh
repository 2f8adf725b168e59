#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS (default 60) each, one after the other; used by
# `make fuzz`. Sanitizers need nightly, so on stable this runs with `-s none` (Rust code panics
# are what we look for) and RUSTC_BOOTSTRAP=1 for the -Z flags cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-60}"
export RUSTC_BOOTSTRAP=1
targets=$(cargo fuzz list)
for target in ${FUZZ_TARGETS:-$targets}; do
  mkdir -p "corpus/$target"
  dirs=("corpus/$target")
  [ -d "seeds/$target" ] && dirs+=("seeds/$target")
  echo "== $target: ${seconds}s"
  cargo fuzz run -s none -O "$target" "${dirs[@]}" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
