#!/usr/bin/env python3
"""Spectral metrics on a BERT-base-sized checkpoint: weightspace vs WeightWatcher, same input,
one run.

Makes the 72 encoder weight matrices of BERT-base (12 layers x Q, K, V, O 768x768, FFN
768x3072 and 3072x768; 85M parameters; Student-t(4) entries so the ESDs have tails) with a
fixed seed, saves them as safetensors for weightspace and as a torch model of nn.Linear layers
for WeightWatcher, then times

  weightspace spectral bert.safetensors --json --no-traps        (release build)
  WeightWatcher(model).analyze(mp_fit=True, randomize=False)     (0.7.7; same metrics)

and compares alpha layer by layer. Prints a Markdown row for BENCHMARKS.md.

usage: python spectral_bench.py [--bin target/release/weightspace] [--out /tmp/ws-bench]
       [--layers 12] [--example]
needs: numpy, torch, safetensors, weightwatcher (pip install weightwatcher)
"""
import argparse
import json
import os
import subprocess
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/weightspace")
    ap.add_argument("--out", default="/tmp/ws-spectral-bench")
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--example", action="store_true",
                    help="--bin is the analyze crate's example (target/*/examples/analysis)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    import torch
    from safetensors.torch import save_file

    rng = np.random.default_rng(0)
    d, f = 768, 3072
    tensors = {}
    for l in range(args.layers):
        p = f"encoder.layer.{l}."
        for n in ["attention.self.query", "attention.self.key", "attention.self.value",
                  "attention.output.dense"]:
            tensors[p + n + ".weight"] = rng.standard_t(4, size=(d, d)) * 0.02
        tensors[p + "intermediate.dense.weight"] = rng.standard_t(4, size=(f, d)) * 0.02
        tensors[p + "output.dense.weight"] = rng.standard_t(4, size=(d, f)) * 0.02
    tensors = {k: torch.from_numpy(v.astype(np.float32)) for k, v in tensors.items()}
    path = os.path.join(args.out, "bert.safetensors")
    save_file(tensors, path)
    nparams = sum(t.numel() for t in tensors.values())

    # weightspace
    t0 = time.perf_counter()
    cmd = ([args.bin, "spectral", path, "--no-traps"] if args.example
           else [args.bin, "spectral", path, "--json", "--no-traps", "--quiet"])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    t_ws = time.perf_counter() - t0
    ours = {l["name"]: l for l in json.loads(out)["layers"]}

    # WeightWatcher on the same weights
    import weightwatcher as ww

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mods = torch.nn.ModuleList()
            self.names = []
            for k, t in tensors.items():
                m = torch.nn.Linear(t.shape[1], t.shape[0], bias=False)
                m.weight.data = t
                self.mods.append(m)
                self.names.append(k)

    net = Net()
    t0 = time.perf_counter()
    details = ww.WeightWatcher(model=net).analyze(mp_fit=True, randomize=False, vectors=False)
    t_ww = time.perf_counter() - t0
    ww_alpha = list(details["alpha"])
    our_alpha = [ours[k]["alpha"] for k in net.names]
    rel = np.abs(np.array(our_alpha) - np.array(ww_alpha)) / np.abs(np.array(ww_alpha))
    within = float(np.mean(rel <= 0.02))
    summary = dict(params=nparams, matrices=len(tensors), weightspace_s=round(t_ws, 2),
                   weightwatcher_s=round(t_ww, 2), speedup=round(t_ww / t_ws, 1),
                   alpha_max_rel_diff=float(rel.max()), alpha_within_2pct=within,
                   mean_alpha_ws=float(np.mean(our_alpha)), mean_alpha_ww=float(np.mean(ww_alpha)),
                   threads=os.environ.get("RAYON_NUM_THREADS", "all"), cpus=os.cpu_count())
    print(json.dumps(summary, indent=1))
    print(f"| spectral, BERT-base-sized ({nparams/1e6:.0f}M params, {len(tensors)} matrices) "
          f"| WeightWatcher {ww.__version__} analyze(mp_fit=True) | {t_ww:.1f} s | {t_ws:.1f} s "
          f"| {t_ww / t_ws:.1f}x | alpha within 2 %: {within:.0%} of layers, max rel diff "
          f"{rel.max():.1e} |")


if __name__ == "__main__":
    main()
