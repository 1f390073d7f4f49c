#!/usr/bin/env bash
# Merge benchmark: three ~110M-parameter f32 checkpoints made on the fly, merged with linear,
# ties and dare_ties by the weightspace CLI (`weightspace merge`), by the numpy reference run the way
# mergekit runs (numpy_ref.py), and by mergekit itself when `mergekit-yaml` is found.
# Prints markdown rows for BENCHMARKS.md and writes them to $WORK/results.md.
#
# usage: bench/merge/run.sh [WORK_DIR]      (default /tmp/ws-merge-bench; needs ~4 GB)
# env:   PY (python with numpy, safetensors, pyyaml), MERGEKIT (mergekit-yaml path),
#        WS (the `weightspace` binary to time; default: the release CLI, built here with
#        `cargo build --release -p weightspace`), METHODS (default "linear ties dare_ties")
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK=${1:-/tmp/ws-merge-bench}
PY=${PY:-python3}
MERGEKIT=${MERGEKIT:-$(command -v mergekit-yaml || true)}
mkdir -p "$WORK"
if [ -z "${WS:-}" ]; then
  (cd "$ROOT" && cargo build --release -q -p weightspace)
  WS="$ROOT/target/release/weightspace"
fi
WS_DESC="${WS_DESC:-$WS}"
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
  echo "| merge (3 × 110M f32) | weightspace wall / CPU / peak RSS (anon) | numpy reference wall / CPU / peak RSS (anon) | mergekit wall / CPU / peak RSS (anon) | wall ratio numpy / mergekit | CPU ratio numpy / mergekit |"
  echo "|---|---|---|---|---|---|"
} > "$ROWS"
for method in ${METHODS:-linear ties dare_ties}; do
  rm -rf "$WORK/out-ws-$method" "$WORK/out-np-$method" "$WORK/out-mk-$method"
  ws=$(measure "$WS" merge "$WORK/$method.yaml" -o "$WORK/out-ws-$method" --quiet)
  np=$(measure "$PY" "$HERE/numpy_ref.py" "$WORK/$method.yaml" "$WORK/out-np-$method")
  mk="n/a"; mkrow="not installed"; mkx="–"; mkc="–"
  if [ -n "$MERGEKIT" ]; then
    mk=$(measure "$MERGEKIT" "$WORK/$method.yaml" "$WORK/out-mk-$method" --no-copy-tokenizer --allow-crimes)
    if [ "$(field "$mk" rc)" = 0 ]; then
      mkrow="$(field "$mk" wall_s) s / $(field "$mk" cpu_s) s / $(field "$mk" peak_rss_mb) MB ($(field "$mk" peak_anon_mb) MB)"
      mkx=$("$PY" -c "print(f'{$(field "$mk" wall_s)/$(field "$ws" wall_s):.1f}×')")
      mkc=$("$PY" -c "print(f'{$(field "$mk" cpu_s)/$(field "$ws" cpu_s):.1f}×')")
    else
      mkrow="failed"; echo "mergekit failed: $mk" >&2
    fi
  fi
  [ "$(field "$ws" rc)" = 0 ] || { echo "weightspace failed: $ws" >&2; exit 1; }
  [ "$(field "$np" rc)" = 0 ] || { echo "numpy failed: $np" >&2; exit 1; }
  npx=$("$PY" -c "print(f'{$(field "$np" wall_s)/$(field "$ws" wall_s):.1f}×')")
  npc=$("$PY" -c "print(f'{$(field "$np" cpu_s)/$(field "$ws" cpu_s):.1f}×')")
  echo "| $method | $(field "$ws" wall_s) s / $(field "$ws" cpu_s) s / $(field "$ws" peak_rss_mb) MB ($(field "$ws" peak_anon_mb) MB) | $(field "$np" wall_s) s / $(field "$np" cpu_s) s / $(field "$np" peak_rss_mb) MB ($(field "$np" peak_anon_mb) MB) | $mkrow | $npx / $mkx | $npc / $mkc |" >> "$ROWS"
  # Deterministic methods: the outputs must agree (numpy, and mergekit when it ran).
  if [ "$method" != dare_ties ]; then
    for other in np mk; do
      [ -d "$WORK/out-$other-$method" ] || continue
      "$PY" - "$WORK/out-ws-$method" "$WORK/out-$other-$method" "$other" <<'PYEOF'
import glob, os, sys, numpy as np
from safetensors import safe_open
def tensors(d):
    out = {}
    for p in glob.glob(os.path.join(d, "*.safetensors")):
        f = safe_open(p, framework="np")
        out.update({k: (f, k) for k in f.keys()})
    return out
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
assert set(a) == set(b), "tensor names differ"
worst, off, total = 0.0, 0, 0
for k in b:
    d = np.abs(a[k][0].get_tensor(k) - b[k][0].get_tensor(k))
    worst = max(worst, float(d.max()))
    off += int((d > 1e-5).sum())
    total += d.size
print(f"  {sys.argv[1].rsplit('-', 1)[-1]}: max |weightspace - {sys.argv[3]}| = {worst:.3g}; "
      f"{off} of {total} elements differ by more than 1e-5", file=sys.stderr)
# mergekit's unstable torch.argsort may pick other elements among exact magnitude ties at the
# top-k boundary; everything else must agree.
assert off <= 1e-5 * total, (worst, off)
PYEOF
    done
  fi
done
echo "weightspace binary: $WS_DESC. Largest tensor 16000×768 f32 = 49 MB; each input 438 MB; peak RSS counts mapped input pages; anon = peak anonymous memory sampled every 10 ms; CPU = user + system. $(nproc) cores, RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-all}, load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)." >> "$ROWS"
cat "$ROWS"
