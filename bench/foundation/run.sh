#!/usr/bin/env bash
# Builds the release binary and runs the inspect/stats benchmark, writing BENCHMARKS.md.
# Usage: bench/foundation/run.sh [extra args for bench_inspect_stats.py]
# PYTHON (default: python3) must have numpy, safetensors and torch.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p weightspace
"${PYTHON:-python3}" bench/foundation/bench_inspect_stats.py \
    --bin target/release/weightspace --write BENCHMARKS.md "$@"
