#!/usr/bin/env bash
# Regenerates the τ table of RESULTS.md ("Learning on weights"): trains the default digits CNN
# zoo (or reuses it), then `learn bench` for every model on the same split with 3 seeds.
#   bash bench/learn/digits_cnn_tau.sh [ZOO_DIR] [OUT_PREFIX]
# Set WS to the weightspace binary (default: target/release/weightspace); extra bench options
# (e.g. --epochs) go in BENCH_ARGS.
set -euo pipefail
WS=${WS:-target/release/weightspace}
ZOO=${1:-digits-cnn}
OUT=${2:-learn-bench-digits-cnn}
if [ ! -f "$ZOO/catalog.parquet" ]; then
  "$WS" zoo train zoos/digits-cnn.toml -o "$ZOO"
fi
# shellcheck disable=SC2086
"$WS" learn bench --zoo "$ZOO" --target test_acc --seeds 3 ${BENCH_ARGS:-} -o "$OUT.json" | tee "$OUT.txt"
