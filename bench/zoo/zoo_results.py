#!/usr/bin/env python3
"""Prints the RESULTS.md section for a trained zoo: test-accuracy distribution per checkpoint
epoch and a histogram of the final accuracy, from its `weightspace zoo export --npz` file.
Usage: python bench/zoo/zoo_results.py ZOO.npz"""
import sys

import numpy as np

d = np.load(sys.argv[1])
acc, epoch, mid = d["test_accuracy"], d["epoch"], d["model_id"]
acc = np.nan_to_num(acc, nan=0.0)
print("| epoch | states | min | p10 | p25 | median | p75 | p90 | max | > 95 % | ≤ 15 % (chance 10 %) |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for e in np.unique(epoch):
    a = acc[epoch == e]
    q = np.quantile(a, [0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
    print(f"| {e} | {len(a)} | " + " | ".join(f"{v:.3f}" for v in q)
          + f" | {(a > 0.95).mean():.1%} | {(a <= 0.15).mean():.1%} |")
last = {}
for m, e, a in zip(mid, epoch, acc):
    if m not in last or e > last[m][0]:
        last[m] = (e, a)
fin = np.array([v[1] for v in last.values()])
h, _ = np.histogram(fin, bins=10, range=(0, 1))
print()
print("Final test accuracy of the", len(fin), "models, in bins of 0.1 from 0 to 1:", ", ".join(map(str, h)))
print(f"Train−test gap at the last epoch: median {np.median(d['generalization_gap'][epoch == epoch.max()]):.3f}")
