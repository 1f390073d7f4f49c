#!/usr/bin/env python3
"""Kendall tau of trained `weightspace learn` models on the test split, over all test networks
and separately over those that learned (test accuracy >= --learned, default 0.2) and those that
ended near chance: how much of a zoo's tau the near-chance ties cost.

    python bench/learn/tau_split.py --bin target/release/weightspace --zoo ZOO MODEL_DIR...

Each MODEL_DIR comes from `weightspace learn train --zoo ZOO --states last ...`; its test split
(by model id) is read from MODEL_DIR/learn.json, its predictions from `learn predict --json`.
Needs scipy (kendalltau, tau-b as in the learn crate).
"""
import argparse
import json
import os
import subprocess

from scipy.stats import kendalltau

ap = argparse.ArgumentParser()
ap.add_argument("--bin", required=True)
ap.add_argument("--zoo", required=True)
ap.add_argument("--learned", type=float, default=0.2)
ap.add_argument("models", nargs="+")
a = ap.parse_args()

rows = json.loads(subprocess.run([a.bin, "zoo", "ls", a.zoo, "--json"], check=True,
                                 capture_output=True, text=True).stdout)
last = {}
for r in rows:
    if r["model_id"] not in last or r["epoch"] > last[r["model_id"]]["epoch"]:
        last[r["model_id"]] = r

print("| model dir | test τ (all) | n | τ (learned, acc ≥ %.2f) | n | τ (near chance) | n |" % a.learned)
print("|---|---|---|---|---|---|---|")
for m in a.models:
    meta = json.load(open(os.path.join(m, "learn.json")))
    test = meta["split"]["test"]
    paths = [os.path.join(a.zoo, last[i]["file"]) for i in test]
    out = json.loads(subprocess.run([a.bin, "learn", "predict", m, *paths, "--json"], check=True,
                                    capture_output=True, text=True).stdout)
    pred = [o["prediction"] for o in out]  # regression targets: numbers
    acc = [last[i]["test_accuracy"] for i in test]

    def tau(sel):
        p = [pred[k] for k in sel]
        y = [acc[k] for k in sel]
        return kendalltau(p, y).statistic, len(sel)

    ok = [k for k in range(len(test)) if acc[k] >= a.learned]
    ch = [k for k in range(len(test)) if acc[k] < a.learned]
    t_all, n_all = tau(range(len(test)))
    t_ok, n_ok = tau(ok)
    t_ch, n_ch = tau(ch)
    print(f"| {os.path.basename(m.rstrip('/'))} | {t_all:.3f} | {n_all} | {t_ok:.3f} | {n_ok} | {t_ch:.3f} | {n_ch} |")
