#!/usr/bin/env bash
# Merge benchmark: three ~110M-parameter f32 checkpoints made on the fly, merged with linear,
# ties and dare_ties by weightspace (release build), by the numpy reference run the way
# mergekit runs (numpy_ref.py), and by mergekit itself when `mergekit-yaml` is found.
# Prints markdown rows for BENCHMARKS.md and writes them to $WORK/results.md.
#
# usage: bench/merge/run.sh [WORK_DIR]      (default /tmp/ws-merge-bench; needs ~4 GB)
# env:   PY (python with numpy, safetensors, pyyaml), MERGEKIT (mergekit-yaml path)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK=${1:-/tmp/ws-merge-bench}
PY=${PY:-python3}
MERGEKIT=${MERGEKIT:-$(command -v mergekit-yaml || true)}
mkdir -p "$WORK"
(cd "$ROOT" && cargo build --release -q -p weightspace)
WS="$ROOT/target/release/weightspace"
[ -f "$WORK/models/ft2/model.safetensors" ] || "$PY" "$HERE/make_models.py" "$WORK/models"
M="$WORK/models"

cat > "$WORK/linear.yaml" <<YAML
merge_method: linear
models:
  - model: $M/base
    parameters: {weight: 0.5}
  - model: $M/ft1
    parameters: {weight: 0.3}
  - model: $M/ft2
    parameters: {weight: 0.2}
YAML
for method in ties dare_ties; do
cat > "$WORK/$method.yaml" <<YAML
merge_method: $method
base_model: $M/base
models:
  - model: $M/ft1
    parameters: {weight: 0.6, density: 0.5}
  - model: $M/ft2
    parameters: {weight: 0.4, density: 0.5}
YAML
done

measure() { "$PY" "$HERE/measure.py" "$@"; }
field() { "$PY" -c "import json,sys; d=json.loads(sys.argv[1]); print(d['$2'])" "$1"; }

ROWS="$WORK/results.md"
{
  echo "| merge (3 × 110M f32) | weightspace wall / peak RSS | numpy reference wall / peak RSS | mergekit wall / peak RSS | speed-up vs numpy | vs mergekit |"
  echo "|---|---|---|---|---|---|"
} > "$ROWS"
for method in linear ties dare_ties; do
  rm -rf "$WORK/out-ws-$method" "$WORK/out-np-$method" "$WORK/out-mk-$method"
  ws=$(measure "$WS" merge "$WORK/$method.yaml" "$WORK/out-ws-$method" --quiet)
  np=$(measure "$PY" "$HERE/numpy_ref.py" "$WORK/$method.yaml" "$WORK/out-np-$method")
  mk="n/a"; mkrow="not installed"; mkx="–"
  if [ -n "$MERGEKIT" ]; then
    mk=$(measure "$MERGEKIT" "$WORK/$method.yaml" "$WORK/out-mk-$method" --no-copy-tokenizer --allow-crimes)
    if [ "$(field "$mk" rc)" = 0 ]; then
      mkrow="$(field "$mk" wall_s) s / $(field "$mk" peak_rss_mb) MB"
      mkx=$("$PY" -c "print(f'{$(field "$mk" wall_s)/$(field "$ws" wall_s):.1f}×')")
    else
      mkrow="failed"; echo "mergekit failed: $mk" >&2
    fi
  fi
  [ "$(field "$ws" rc)" = 0 ] || { echo "weightspace failed: $ws" >&2; exit 1; }
  [ "$(field "$np" rc)" = 0 ] || { echo "numpy failed: $np" >&2; exit 1; }
  npx=$("$PY" -c "print(f'{$(field "$np" wall_s)/$(field "$ws" wall_s):.1f}×')")
  echo "| $method | $(field "$ws" wall_s) s / $(field "$ws" peak_rss_mb) MB | $(field "$np" wall_s) s / $(field "$np" peak_rss_mb) MB | $mkrow | $npx | $mkx |" >> "$ROWS"
  # Deterministic methods: the outputs must agree.
  if [ "$method" != dare_ties ]; then
    "$PY" - "$WORK/out-ws-$method/model.safetensors" "$WORK/out-np-$method/model.safetensors" <<'PYEOF'
import sys, numpy as np
from safetensors import safe_open
a, b = (safe_open(p, framework="np") for p in sys.argv[1:3])
worst = max(float(np.abs(a.get_tensor(k) - b.get_tensor(k)).max()) for k in b.keys())
print(f"  max |weightspace - numpy| = {worst:.3g}", file=sys.stderr)
assert worst < 1e-5, worst
PYEOF
  fi
done
echo "largest tensor: 16000×768 f32 = 49 MB; each input 438 MB (mapped); $(nproc) cores; RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-all}" >> "$ROWS"
cat "$ROWS"
