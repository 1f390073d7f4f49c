#!/usr/bin/env python3
"""Numpy transcription of `weightspace lineage` (full distances, model kurtosis, networkx's
minimum spanning arborescence) to compare arborescence costs, as reported in RESULTS.md.

  python lineage_variants.py sim          # simulated 100-model trees (lineage_bench.simulate), seeds 0 1 2
  python lineage_variants.py zoo DIR...   # zoo folders (e.g. kept by lineage_zoo.py --keep), needs --bin
needs: numpy, scipy, networkx, safetensors
"""
import json, os, subprocess, sys

import networkx as nx
import numpy as np
from scipy.stats import kurtosis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lineage_bench import simulate  # noqa: E402

COSTS = {
    "d*(1+(1-v))": lambda D, V: D * (1 + (1 - V)),
    "d+0.3*mean(d)*(1-v) (MoTHer)": lambda D, V: D + 0.3 * D[D > 0].mean() * (1 - V),
    "d*(1+0.41(1-v))": lambda D, V: D * (1 + 0.41 * (1 - V)),
    "d^2*(1+0.5(1-v))": lambda D, V: D**2 * (1 + 0.5 * (1 - V)),
    "d^2*(1+(1-v)) (shipped)": lambda D, V: D**2 * (1 + (1 - V)),
    "d^2*(1+2(1-v))": lambda D, V: D**2 * (1 + 2 * (1 - V)),
}


def recover(flat, ku, cost, tau=None):
    n = len(flat)
    nrm = [np.linalg.norm(f) for f in flat]
    D = np.array([[np.linalg.norm(flat[i] - flat[j]) / ((nrm[i] + nrm[j]) / 2) for j in range(n)] for i in range(n)])
    V = np.array([[1.0 if ku[j] > ku[i] else 0.0 for j in range(n)] for i in range(n)])
    C = cost(D, V)
    G = nx.DiGraph()
    for i in range(n):
        for j in range(n):
            if i != j:
                G.add_edge(i, j, weight=C[i, j])
    par = {v: u for u, v in nx.minimum_spanning_arborescence(G).edges()}
    if tau is not None:  # re-attach c to its grandparent when the increments are anti-correlated
        for _ in range(3):
            changed = False
            for c, b in list(par.items()):
                a = par.get(b)
                if a is None:
                    continue
                x, y = flat[b] - flat[a], flat[c] - flat[b]
                if x @ y / (np.linalg.norm(x) * np.linalg.norm(y)) < -tau:
                    par[c], changed = a, True
            if not changed:
                break
    return {(p, c) for c, p in par.items()}


def sim_trees():
    for s in [0, 1, 2]:
        ms, parents = simulate(100, s)
        yield ([np.concatenate([w.ravel(), b.ravel()]) for w, b in ms], [kurtosis(w.ravel()) for w, b in ms],
               {(p, c) for c, p in enumerate(parents) if p is not None})


def zoo_trees(dirs, bin_):
    from safetensors.numpy import load_file
    for z in dirs:
        rows = json.loads(subprocess.run([bin_, "zoo", "ls", z, "--json"], capture_output=True, text=True, check=True).stdout)
        last = {}
        for r in rows:
            if r["model_id"] not in last or r["epoch"] > last[r["model_id"]]["epoch"]:
                last[r["model_id"]] = r
        ids = sorted(last)
        ix = {m: i for i, m in enumerate(ids)}
        W = [load_file(os.path.join(z, last[m]["file"])) for m in ids]
        ks = sorted(W[0])
        yield ([np.concatenate([w[k].ravel() for k in ks]) for w in W],
               [np.mean([kurtosis(w[k].ravel()) for k in ks if w[k].ndim == 2]) for w in W],
               {(ix[last[m]["parent_id"]], ix[m]) for m in ids if last[m]["parent_id"]})


def main():
    trees = list(sim_trees() if sys.argv[1] == "sim" else
                 zoo_trees([a for a in sys.argv[2:] if not a.startswith("--bin=")],
                           next((a[6:] for a in sys.argv if a.startswith("--bin=")), "target/debug/weightspace")))
    for name, cost in COSTS.items():
        accs = [len(recover(f, k, cost) & t) / len(t) for f, k, t in trees]
        print(f"{name:32s} " + " ".join(f"{a:.3f}" for a in accs) + f"  mean {np.mean(accs):.3f}", flush=True)
    shipped = COSTS["d^2*(1+(1-v)) (shipped)"]
    accs = [len(recover(f, k, shipped, tau=0.2) & t) / len(t) for f, k, t in trees]
    print(f"{'shipped + re-attach tau=0.2':32s} " + " ".join(f"{a:.3f}" for a in accs) + f"  mean {np.mean(accs):.3f}")


if __name__ == "__main__":
    main()
