#!/usr/bin/env bash
# REPAIR baseline (BatchNorm reset): barriers of two digits CNNs with BatchNorm (conv 16-16,
# 3×3, GAP, Adam, 10 epochs, seeds 1 and 2), naive and after weight matching, without and with
# `--repair`. Prints a Markdown table for RESULTS.md.
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
for r in "" "--repair"; do
  "$ws" interp "$a" "$b" --steps 11 --align weight $r --json | "$py" -c "
import json, sys
d = json.load(sys.stdin)
n, a = d['naive'], d['aligned']
print(f\"| {'yes' if '$r' else 'no'} | {n['loss_barrier']:.4f} / {n['acc_barrier']:.4f} | {a['loss_barrier']:.4f} / {a['acc_barrier']:.4f} |\")"
done
