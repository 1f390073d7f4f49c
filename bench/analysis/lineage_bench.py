#!/usr/bin/env python3
"""Lineage recovery on simulated fine-tune trees: time and directed-edge accuracy.

Each tree: a linear model (16 x 64 weight + bias) pre-trained by SGD from a random init on a
random linear teacher; every other model picks a uniformly random earlier model as parent and is
fine-tuned from it by 30 SGD steps on the parent's task plus 3 new strong input-output relations
(the same simulation as crates/analyze/tests/common/mod.rs, in numpy). Models are written with
shuffled file names, then

  weightspace lineage DIR --json

is timed and its edges scored against the truth (a recovered edge counts when parent and child
and direction are right). Prints a Markdown row for RESULTS.md / BENCHMARKS.md.

usage: python lineage_bench.py [--bin target/release/weightspace] [--models 100] [--seeds 0 1 2]
       [--example]
needs: numpy, safetensors
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time

import numpy as np
from safetensors.numpy import save_file


def simulate(n, seed, din=64, dout=16):
    rng = np.random.default_rng(seed)

    def train(w, b, a, steps, lr=0.05, bs=32):
        w, b = w.copy(), b.copy()
        for _ in range(steps):
            x = rng.standard_normal((bs, din))
            y = x @ a.T + 0.1 * rng.standard_normal((bs, dout))
            e = (x @ w.T + b - y) / bs
            w -= lr * (e.T @ x)
            b -= lr * e.sum(0)
        return w, b

    w0 = rng.standard_normal((dout, din)) / np.sqrt(din)
    a0 = rng.standard_normal((dout, din)) / np.sqrt(din)
    models = [train(w0, np.zeros(dout), a0, 300)]
    tasks, parents = [a0], [None]
    for i in range(1, n):
        p = int(rng.integers(0, i))
        a = tasks[p].copy()
        for _ in range(3):
            a.flat[rng.integers(0, din * dout)] += rng.standard_normal()
        models.append(train(*models[p], a, 30))
        tasks.append(a)
        parents.append(p)
    return models, parents


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/weightspace")
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--example", action="store_true",
                    help="--bin is the analyze crate's example (target/*/examples/analysis)")
    ap.add_argument("--lineage-args", default="",
                    help="extra options for `weightspace lineage`, e.g. '--scale-tolerance 0'")
    args = ap.parse_args()
    accs, times = [], []
    for seed in args.seeds:
        models, parents = simulate(args.models, seed)
        d = tempfile.mkdtemp(prefix="ws-lineage-")
        order = np.random.default_rng(seed + 1000).permutation(len(models))
        name = {i: os.path.join(d, f"model_{int(order[i]):04d}.safetensors") for i in range(len(models))}
        for i, (w, b) in enumerate(models):
            save_file({"linear.weight": w.astype(np.float32), "linear.bias": b.astype(np.float32)}, name[i])
        t0 = time.perf_counter()
        cmd = ([args.bin, "lineage", d] if args.example
               else [args.bin, "lineage", d, "--json", "--quiet", *args.lineage_args.split()])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        times.append(time.perf_counter() - t0)
        rep = json.loads(out)
        got = {(e["parent"], e["child"]) for e in rep["edges"]}
        truth = [(name[p], name[i]) for i, p in enumerate(parents) if p is not None]
        acc = sum(e in got for e in truth) / len(truth)
        accs.append(acc)
        conf = [e["confidence"] for e in rep["edges"]]
        hi = [e for e in rep["edges"] if e["confidence"] >= 0.8]
        hi_acc = (sum((e["parent"], e["child"]) in set(truth) for e in hi) / len(hi)) if hi else float("nan")
        print(json.dumps(dict(seed=seed, models=len(models), seconds=round(times[-1], 3),
                              directed_edge_accuracy=round(acc, 4), roots=rep["roots"][:3],
                              mean_confidence=round(float(np.mean(conf)), 3),
                              edges_conf_ge_0_8=len(hi), accuracy_conf_ge_0_8=round(hi_acc, 4))))
        shutil.rmtree(d)
    print(f"| lineage, {args.models} simulated fine-tunes (linear 16x64, SGD), seeds {args.seeds} "
          f"| directed-edge accuracy {np.mean(accs):.1%} (min {min(accs):.1%}) "
          f"| {np.mean(times):.2f} s per tree |")


if __name__ == "__main__":
    main()
