#!/usr/bin/env bash
# Weight matching: `weightspace align` vs the numpy+scipy reference of the same loop
# (wm_reference.py), same inputs, same seed; checks both give bit-identical outputs and prints
# the times and the ratio as Markdown rows for BENCHMARKS.md.
#
#   bench/symmetry/run.sh [WORKDIR]      (needs a release build and python with torch,
#                                         numpy, scipy, safetensors)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${1:-/tmp/ws-bench-symmetry}
py=${PYTHON:-python3}
ws=${WEIGHTSPACE:-$root/target/release/weightspace}
seed=${SEED:-0}
mkdir -p "$work"
[ -f "$work/bert_b/model.safetensors" ] || "$py" "$here/make_models.py" "$work"
echo "| input | groups | sweeps | weightspace (s) | numpy+scipy (s) | speed-up | same result |"
echo "|---|---|---|---|---|---|---|"
for m in mlp bert; do
  "$ws" spec "$work/${m}_a" --json > "$work/${m}_spec.json"
  t0=$(date +%s.%N)
  "$ws" align "$work/${m}_a" "$work/${m}_b" -o "$work/${m}_ws.safetensors" --seed "$seed" --json > "$work/${m}_ws.json"
  t1=$(date +%s.%N)
  "$py" "$here/wm_reference.py" "$work/${m}_spec.json" "$work/${m}_a/model.safetensors" \
    "$work/${m}_b/model.safetensors" "$work/${m}_py.safetensors" --seed "$seed" > "$work/${m}_py.json"
  t2=$(date +%s.%N)
  same=$("$py" - "$work/${m}_ws.safetensors" "$work/${m}_py.safetensors" <<'PY'
import sys, numpy as np
from safetensors.numpy import load_file
a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
print("yes" if a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a) else "NO")
PY
)
  groups=$("$py" -c "import json;print(len(json.load(open('$work/${m}_spec.json'))['groups']))")
  sw=$("$py" -c "import json;print(json.load(open('$work/${m}_ws.json'))['sweeps'])")
  swp=$("$py" -c "import json;print(json.load(open('$work/${m}_py.json'))['sweeps'])")
  tw=$(echo "$t1 - $t0" | bc -l); tp=$(echo "$t2 - $t1" | bc -l)
  printf "| %s | %s | %s / %s | %.2f | %.2f | %.1f× | %s |\n" "$m" "$groups" "$sw" "$swp" "$tw" "$tp" "$(echo "$tp / $tw" | bc -l)" "$same"
done
