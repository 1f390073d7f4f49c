#!/usr/bin/env bash
# Weight matching: weightspace vs the numpy+scipy reference of the same loop
# (wm_reference.py), same inputs, same seed. Checks that both outputs are bit-identical and
# prints Markdown rows for BENCHMARKS.md: wall and CPU (user+sys) seconds of each whole run
# (load, match, write) and the matching loop alone.
#
#   cargo build --release -p weightspace-symmetry --example wm
#   PYTHON=python3 bench/symmetry/run.sh [WORKDIR]   (python with torch, numpy, scipy,
#                                                     safetensors)
#
# The Rust side is `examples/wm.rs` of weightspace-symmetry: the same library calls as
# `weightspace spec --json` and `weightspace align` (load, match, write), without building the
# whole CLI.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${1:-/tmp/ws-bench-symmetry}
py=${PYTHON:-python3}
wm=${WM:-$root/target/release/examples/wm}
seed=${SEED:-0}
max_iter=${MAX_ITER:-100}
models=${MODELS:-mlp bert}
mkdir -p "$work"
[ -f "$work/bert_b/model.safetensors" ] || "$py" "$here/make_models.py" "$work"
j() { "$py" -c "import json,sys;print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
echo "| input | groups | sweeps (ws / ref) | weightspace wall / CPU (s) | numpy+scipy wall / CPU (s) | match loop ws / ref (s) | speed-up wall / CPU | same result |"
echo "|---|---|---|---|---|---|---|---|"
for m in $models; do
  "$wm" spec "$work/${m}_a" > "$work/${m}_spec.json"
  /usr/bin/time -f "%e %U %S" -o "$work/${m}_ws.time" \
    "$wm" align "$work/${m}_a" "$work/${m}_b/model.safetensors" "$work/${m}_ws.safetensors" "$seed" "$max_iter" > "$work/${m}_ws.json"
  /usr/bin/time -f "%e %U %S" -o "$work/${m}_py.time" \
    "$py" "$here/wm_reference.py" "$work/${m}_spec.json" "$work/${m}_a/model.safetensors" \
    "$work/${m}_b/model.safetensors" "$work/${m}_py.safetensors" --seed "$seed" --max-iter "$max_iter" > "$work/${m}_py.json"
  same=$("$py" - "$work/${m}_ws.safetensors" "$work/${m}_py.safetensors" <<'PY'
import sys, numpy as np
from safetensors.numpy import load_file
a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
print("yes" if a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a) else "NO")
PY
)
  read -r ww wu ws_ < "$work/${m}_ws.time"; read -r pw pu ps < "$work/${m}_py.time"
  wc=$(echo "$wu + $ws_" | bc -l); pc=$(echo "$pu + $ps" | bc -l)
  printf "| %s | %s | %s / %s | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f | %.1f× / %.1f× | %s |\n" \
    "$m" "$(j "$work/${m}_ws.json" groups)" "$(j "$work/${m}_ws.json" sweeps)" "$(j "$work/${m}_py.json" sweeps)" \
    "$ww" "$wc" "$pw" "$pc" "$(j "$work/${m}_ws.json" seconds_match)" "$(j "$work/${m}_py.json" seconds_match)" \
    "$(echo "$pw / $ww" | bc -l)" "$(echo "$pc / $wc" | bc -l)" "$same"
done
