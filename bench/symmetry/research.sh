#!/usr/bin/env bash
# Research check (issue 5, item 8): linear-mode-connectivity barriers of pairs of digits MLPs
# (one hidden layer, ReLU, Adam, 20 epochs) trained from different seeds, for widths 16…512:
# naive vs after weight matching vs after activation matching. Prints a Markdown table for
# RESULTS.md.
#
#   bench/symmetry/research.sh [WORKDIR]      (WEIGHTSPACE=path/to/weightspace)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${1:-/tmp/ws-research-symmetry}
ws=${WEIGHTSPACE:-$root/target/release/weightspace}
py=${PYTHON:-python3}
mkdir -p "$work"
echo "| width | test acc A / B | naive loss barrier | weight matching | activation matching | WM / naive | AM / naive |"
echo "|---|---|---|---|---|---|---|"
for width in 16 32 64 128 256 512; do
  cat > "$work/w$width.toml" <<TOML
name = "lmc-$width"
seed = 0
[defaults]
dataset = "digits"
epochs = 20
checkpoints = [20]
batch_size = 32
optimizer = "adam"
[[models]]
name = "mlp"
arch = "mlp"
hidden = [$width]
activation = "relu"
lr = 0.003
seed = [1, 2]
TOML
  [ -d "$work/z$width/models" ] || "$ws" zoo train "$work/w$width.toml" -o "$work/z$width" -q > /dev/null
  a="$work/z$width/models/mlp-0000/epoch_20.safetensors"
  b="$work/z$width/models/mlp-0001/epoch_20.safetensors"
  "$ws" interp "$a" "$b" --steps 25 --align weight --json > "$work/wm$width.json"
  "$ws" interp "$a" "$b" --steps 25 --align activation --json > "$work/am$width.json"
  "$py" - "$width" "$work/wm$width.json" "$work/am$width.json" <<'PY'
import json, sys
w, wm, am = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
n, a, c = wm["naive"]["loss_barrier"], wm["aligned"]["loss_barrier"], am["aligned"]["loss_barrier"]
pts = wm["naive"]["points"]
print(f"| {w} | {pts[0]['acc']:.3f} / {pts[-1]['acc']:.3f} | {n:.4f} | {a:.4f} | {c:.4f} | {a / n:.0%} | {c / n:.0%} |")
PY
done
