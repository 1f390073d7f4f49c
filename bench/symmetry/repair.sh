#!/usr/bin/env bash
# REPAIR: barriers naive and after weight matching, without and with `--repair`, for
#  1. two digits CNNs with BatchNorm (conv 16-16, 3×3, GAP, Adam, 10 epochs, seeds 1 and 2):
#     `--repair=bn`, the BatchNorm reset baseline;
#  2. two digits MLPs without normalisation (64-W-10, ReLU, Adam lr 3e-3, 20 epochs, seeds 1
#     and 2, W = MLP_WIDTHS, default "32 128 512"): `--repair=rescale`, REPAIR's activation
#     rescaling (Jordan et al. 2022).
# Prints Markdown tables for RESULTS.md.
#
#   bench/symmetry/repair.sh [WORKDIR]      (WEIGHTSPACE=path/to/weightspace)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${1:-/tmp/ws-repair-symmetry}
ws=${WEIGHTSPACE:-$root/target/release/weightspace}
py=${PYTHON:-python3}
mkdir -p "$work"
cat > "$work/pair.toml" <<'TOML'
name = "bnpair"
seed = 0
[defaults]
dataset = "digits"
epochs = 10
checkpoints = [10]
batch_size = 32
optimizer = "adam"
[[models]]
name = "cnn"
arch = "cnn"
channels = [16, 16]
kernel = 3
stride = 1
padding = 1
batchnorm = true
lr = 0.003
seed = [1, 2]
TOML
[ -d "$work/z/models" ] || "$ws" zoo train "$work/pair.toml" -o "$work/z" -q > /dev/null
a="$work/z/models/cnn-0000/epoch_10.safetensors"
b="$work/z/models/cnn-0001/epoch_10.safetensors"
echo "| REPAIR | naive loss / acc barrier | weight-matched loss / acc barrier |"
echo "|---|---|---|"
for r in "" "--repair=bn"; do
  "$ws" interp "$a" "$b" --steps 11 --align weight $r --json | "$py" -c "
import json, sys
d = json.load(sys.stdin)
n, a = d['naive'], d['aligned']
print(f\"| {'yes' if '$r' else 'no'} | {n['loss_barrier']:.4f} / {n['acc_barrier']:.4f} | {a['loss_barrier']:.4f} / {a['acc_barrier']:.4f} |\")"
done

echo
echo "| MLP width | test acc A / B | REPAIR | naive loss / acc barrier | weight-matched loss / acc barrier |"
echo "|---|---|---|---|---|"
for width in ${MLP_WIDTHS:-32 128 512}; do
  cat > "$work/mlp$width.toml" <<TOML
name = "repair-mlp-$width"
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
  [ -d "$work/m$width/models" ] || "$ws" zoo train "$work/mlp$width.toml" -o "$work/m$width" -q > /dev/null
  a="$work/m$width/models/mlp-0000/epoch_20.safetensors"
  b="$work/m$width/models/mlp-0001/epoch_20.safetensors"
  for r in "" "--repair=rescale"; do
    "$ws" interp "$a" "$b" --steps 11 --align weight $r --json | "$py" -c "
import json, sys
d = json.load(sys.stdin)
n, a = d['naive'], d['aligned']
p = n['points']
print(f\"| $width | {p[0]['acc']:.3f} / {p[-1]['acc']:.3f} | {'rescale' if '$r' else 'no'} | {n['loss_barrier']:.4f} / {n['acc_barrier']:.4f} | {a['loss_barrier']:.4f} / {a['acc_barrier']:.4f} |\")"
  done
done
