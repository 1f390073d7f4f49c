#!/usr/bin/env python3
"""Zoo training speed: `weightspace zoo train` (release build) against a per-model PyTorch
loop doing the same work (same data, architecture, optimiser, batch size, epochs), in one run.

Workloads (the bundled 8x8 digits, 1,442 training images, batch 32, Adam lr 1e-3):
  * MLP zoo: 64-32-10 MLPs (2,410 parameters), ReLU;
  * CNN zoo: Unterthiner-style CNNs, 3 conv layers of 16 channels, 3x3, stride 2, padding 1,
    global average pooling, dense (4,970 parameters), 20 epochs.

FLOPs are counted the same way for both: 6 x multiply-accumulates of a forward pass per
training sample (forward 2, backward 4); evaluation and checkpoint writing are included in
weightspace's wall time, not in PyTorch's (so the ratio is conservative).

Usage (from the repository root, after `cargo build --release -p weightspace`):
    /work/venv/bin/python bench/zoo/bench_zoo.py [--mlp-models 256] [--cnn-models 64]
Writes the rows between the zoo markers in BENCHMARKS.md and prints them.
"""
import argparse
import gzip
import json
import os
import pathlib
import platform
import resource
import subprocess
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = ROOT / "target" / "release" / "weightspace"
DIGITS = ROOT / "crates" / "zoo" / "data" / "digits.csv.gz"

MLP_MACS = 64 * 32 + 32 * 10
CNN_MACS = (1 * 9 * 16 * 16) + (16 * 9 * 16 * 4) + (16 * 9 * 16 * 1) + 16 * 10


def digits():
    rows = np.loadtxt(gzip.open(DIGITS, "rt"), delimiter=",", dtype=np.float32)
    x, y = rows[:, :64] / 16.0, rows[:, 64].astype(np.int64)
    seen = np.zeros(10, dtype=int)
    test = np.zeros(len(y), dtype=bool)
    for i, c in enumerate(y):  # the zoo's fixed split: every fifth image of a class is test
        test[i] = seen[c] % 5 == 4
        seen[c] += 1
    return x[~test], y[~test], x[test], y[test]


def zoo_config(arch, models, epochs):
    body = {
        "mlp": 'arch = "mlp"\nhidden = [32]\n',
        "cnn": 'arch = "cnn"\nchannels = [16, 16, 16]\nkernel = 3\nstride = 2\npadding = 1\n',
    }[arch]
    return f"""name = "bench-{arch}"
seed = 0
[defaults]
dataset = "digits"
epochs = {epochs}
checkpoints = [0, {epochs}]
[[models]]
name = "{arch}"
{body}activation = "relu"
optimizer = "adam"
lr = 0.001
batch_size = 32
samples = {models}
"""


def run_weightspace(arch, models, epochs, threads):
    with tempfile.TemporaryDirectory() as d:
        cfg = pathlib.Path(d) / "zoo.toml"
        cfg.write_text(zoo_config(arch, models, epochs))
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        out = subprocess.run(
            [str(ARGS.bin), "zoo", "train", str(cfg), "-o", str(pathlib.Path(d) / "zoo"), "--json", "--quiet"],
            check=True, capture_output=True, text=True, env=env,
        )
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        s = json.loads(out.stdout)
        return {
            "wall": wall,
            "cpu": r1.ru_utime - r0.ru_utime,
            "steps": s["model_steps"],
            "flops": s["train_flops"],
            "median_acc": s["catalog"]["final_test_accuracy"][3],
        }


def torch_model(arch):
    if arch == "mlp":
        return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    layers, c = [], 1
    for _ in range(3):
        layers += [nn.Conv2d(c, 16, 3, 2, 1), nn.ReLU()]
        c = 16
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


def run_torch(arch, models, epochs, data):
    xtr, ytr, xte, yte = data
    x = torch.from_numpy(xtr if arch == "mlp" else xtr.reshape(-1, 1, 8, 8))
    y = torch.from_numpy(ytr)
    xt = torch.from_numpy(xte if arch == "mlp" else xte.reshape(-1, 1, 8, 8))
    n, steps, accs = len(y), 0, []
    c0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    t0 = time.perf_counter()
    for m in range(models):
        torch.manual_seed(m)
        net = torch_model(arch)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        for _ in range(epochs):
            perm = torch.randperm(n)
            for i in range(0, n, 32):
                idx = perm[i : i + 32]
                loss = F.cross_entropy(net(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                steps += 1
        with torch.no_grad():
            accs.append((net(xt).argmax(1).numpy() == yte).mean())
    wall = time.perf_counter() - t0
    cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime - c0
    macs = MLP_MACS if arch == "mlp" else CNN_MACS
    return {"wall": wall, "cpu": cpu, "steps": steps, "flops": 6.0 * macs * n * epochs * models,
            "median_acc": float(np.median(accs))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mlp-models", type=int, default=256)
    ap.add_argument("--mlp-epochs", type=int, default=10)
    ap.add_argument("--cnn-models", type=int, default=64)
    ap.add_argument("--cnn-epochs", type=int, default=20)
    ap.add_argument("--torch-models", type=int, default=8, help="models the PyTorch loop trains (rates are per step)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--torch-threads", type=int, default=None,
                    help="torch.set_num_threads for the PyTorch loop (default: --threads; 1 is faster for nets this small)")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--bin", default=str(BIN), help="weightspace binary (default: target/release)")
    a = ap.parse_args()
    global ARGS
    ARGS = a
    if a.torch_threads is None:
        a.torch_threads = a.threads
    torch.set_num_threads(a.torch_threads)
    global LOAD
    LOAD = os.getloadavg()
    data = digits()
    rows = []
    for arch, models, epochs in [("mlp", a.mlp_models, a.mlp_epochs), ("cnn", a.cnn_models, a.cnn_epochs)]:
        ws = run_weightspace(arch, models, epochs, a.threads)
        pt = run_torch(arch, a.torch_models, epochs, data)
        ws_sps, pt_sps = ws["steps"] / ws["wall"], pt["steps"] / pt["wall"]
        per_hour = lambda r, m: m / r["wall"] * 3600
        ws_cps, pt_cps = ws["steps"] / ws["cpu"], pt["steps"] / pt["cpu"]
        rows.append(
            f"| zoo train, {arch.upper()} {'64-32-10' if arch == 'mlp' else '3x16 conv, 4,970 params'}, "
            f"digits, batch 32, Adam, {epochs} epochs | {models} models: {ws['wall']:.2f} s wall, "
            f"{ws['cpu']:.2f} s user CPU; {ws_sps:,.0f} model-steps/s, {ws['flops'] / ws['wall'] / 1e9:.1f} GFLOP/s; "
            f"{ws['flops'] / ws['cpu'] / 1e9:.1f} GFLOP per CPU-s; {per_hour(ws, models):,.0f} models/h "
            f"| per-model loop, {a.torch_models} models: {pt['wall']:.2f} s wall, {pt['cpu']:.2f} s user CPU; "
            f"{pt_sps:,.0f} model-steps/s, {pt['flops'] / pt['wall'] / 1e9:.2f} GFLOP/s; "
            f"{pt['flops'] / pt['cpu'] / 1e9:.2f} GFLOP per CPU-s; {per_hour(pt, a.torch_models):,.0f} models/h "
            f"| **{ws_sps / pt_sps:.1f}×** wall, **{ws_cps / pt_cps:.1f}×** per CPU-s | "
            f"median test acc {ws['median_acc']:.3f} vs {pt['median_acc']:.3f} |"
        )
        print(rows[-1], flush=True)
    if a.no_write:
        return
    header = (
        "| workload | weightspace (`{b}`, RAYON_NUM_THREADS={t}) | PyTorch {tv} (torch threads {tt}) | speed-up | check |\n"
        "|---|---|---|---|---|\n"
    ).format(t=a.threads, tt=a.torch_threads, tv=torch.__version__, b=os.path.relpath(a.bin, ROOT))
    cmd = "/work/venv/bin/python bench/zoo/bench_zoo.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(a).items() if k != "no_write")
    block = (
        "<!-- zoo-bench:start -->\n## Model zoo training (`weightspace zoo train`)\n\n"
        f"Command: `cargo build {'--release ' if 'release' in a.bin else ''}-p weightspace && {cmd}` "
        f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average before the run "
        f"{LOAD[0]:.1f} from other jobs on the machine, {time.strftime('%Y-%m-%d')}, binary `{os.path.relpath(a.bin, ROOT)}`).\n"
        "Rates are model-steps (one optimiser step of one model on one batch) per second of wall time, and "
        "GFLOP per second of user CPU time (less sensitive to the other jobs' load); weightspace's "
        "time includes evaluation and atomic checkpoint writes, PyTorch's does not.\n\n"
        + header + "\n".join(rows) + "\n<!-- zoo-bench:end -->\n"
    )
    bm = ROOT / "BENCHMARKS.md"
    text = bm.read_text() if bm.exists() else "# Benchmarks\n\nEvery number here comes from the command written beside it.\n\n"
    if "<!-- zoo-bench:start -->" in text:
        pre, rest = text.split("<!-- zoo-bench:start -->", 1)
        post = rest.split("<!-- zoo-bench:end -->\n", 1)[1]
        text = pre + block + post
    else:
        text = text.rstrip("\n") + "\n\n" + block
    bm.write_text(text)


if __name__ == "__main__":
    main()
