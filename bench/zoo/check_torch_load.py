#!/usr/bin/env python3
"""Checks that zoo checkpoints load into plain PyTorch `nn.Sequential` models under the
`layers.` prefix and reproduce the catalog's test accuracy (digits zoos, no class subsets or
label permutations). Usage: python bench/zoo/check_torch_load.py ZOO_DIR"""
import gzip
import json
import pathlib
import struct
import sys

import numpy as np
import torch
import torch.nn as nn

ROOT = pathlib.Path(__file__).resolve().parents[2]
DT = {"F32": np.float32, "I64": np.int64}


def load_safetensors(path):
    b = pathlib.Path(path).read_bytes()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8 : 8 + n])
    meta = h.pop("__metadata__", {})
    out = {}
    for k, v in h.items():
        s, e = v["data_offsets"]
        a = np.frombuffer(b[8 + n + s : 8 + n + e], dtype=DT[v["dtype"]]).reshape(v["shape"])
        out[k] = torch.from_numpy(a.copy())
    return out, meta


def build(arch, outputs):
    act = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid,
           "leaky-relu": nn.LeakyReLU}[arch["activation"]]
    layers = []
    if arch["kind"] == "mlp":
        i = 64
        for h in arch["hidden"]:
            layers += [nn.Linear(i, h), act()] + ([nn.Dropout(arch["dropout"])] if arch["dropout"] > 0 else [])
            i = h
        layers.append(nn.Linear(i, outputs))
    else:
        c = 1
        for co in arch["channels"]:
            layers.append(nn.Conv2d(c, co, arch["kernel"], arch["stride"], arch["padding"]))
            if arch["batchnorm"]:
                layers.append(nn.BatchNorm2d(co))
            layers.append(act())
            c = co
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        if arch["dropout"] > 0:
            layers.append(nn.Dropout(arch["dropout"]))
        layers.append(nn.Linear(c, outputs))
    m = nn.Module()
    m.layers = nn.Sequential(*layers)
    return m


def main():
    zoo = pathlib.Path(sys.argv[1])
    rows = np.loadtxt(gzip.open(ROOT / "crates/zoo/data/digits.csv.gz", "rt"), delimiter=",", dtype=np.float32)
    x, y = rows[:, :64] / 16.0, rows[:, 64].astype(np.int64)
    seen, test = np.zeros(10, int), np.zeros(len(y), bool)
    for i, c in enumerate(y):
        test[i] = seen[c] % 5 == 4
        seen[c] += 1
    xt, yt = torch.from_numpy(x[test]), y[test]
    checked = worst = 0
    for f in sorted(zoo.glob("models/*/epoch_*.safetensors")):
        sd, meta = load_safetensors(f)
        hp = json.loads(meta["hyperparameters"])
        if hp.get("classes") or hp.get("label_permutation") is not None:
            continue
        arch = json.loads(meta["weightspace.zoo.arch"])
        m = build(arch, int(meta["weightspace.zoo.outputs"]))
        m.load_state_dict(sd, strict=True)
        m.eval()
        with torch.no_grad():
            inp = xt if arch["kind"] == "mlp" else xt.reshape(-1, 1, 8, 8)
            acc = float((m.layers(inp).argmax(1).numpy() == yt).mean())
        # the catalog's value, from the ledger line of this model
        checked += 1
        ours = None
        for line in (zoo / "ledger").glob("*.jsonl"):
            for l in line.read_text().splitlines():
                try:
                    r = json.loads(l)
                except json.JSONDecodeError:
                    continue
                for row in r["rows"]:
                    if row["file"] == str(f.relative_to(zoo)):
                        ours = row["test_accuracy"]
        worst = max(worst, abs(acc - ours))
    print(f"{checked} checkpoints loaded into torch.nn.Sequential with strict=True; "
          f"max |torch test accuracy - catalog| = {worst:.4f}")


if __name__ == "__main__":
    main()
