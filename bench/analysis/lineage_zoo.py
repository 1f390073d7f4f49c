#!/usr/bin/env python3
"""Lineage recovery on real fine-tune trees trained by the zoo: directed-edge accuracy.

For each zoo seed: rewrite the config's `seed = …`, train it (`weightspace zoo train`), take the
last state of every model, run

  weightspace lineage <last states…> --json

and score its edges against the catalog's `parent_id` (a recovered edge counts when parent,
child and direction are right). Prints one Markdown row per seed and the mean.

usage: python lineage_zoo.py [--bin target/debug/weightspace] [--config zoos/digits-tree.toml]
       [--seeds 0 1 2] [--keep DIR] [--lineage-args '--unchanged-weight 0']
needs: only the standard library
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
import time


def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/debug/weightspace")
    ap.add_argument("--config", default="zoos/digits-tree.toml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--keep", help="train the zoos under this folder and keep them")
    ap.add_argument("--lineage-args", default="",
                    help="extra options for `weightspace lineage`, e.g. '--unchanged-weight 0'")
    a = ap.parse_args()
    text = open(a.config).read()
    root = a.keep or tempfile.mkdtemp(prefix="ws-lineage-zoo-")
    os.makedirs(root, exist_ok=True)
    accs = []
    try:
        for seed in a.seeds:
            cfg = os.path.join(root, f"tree-{seed}.toml")
            with open(cfg, "w") as f:
                f.write(re.sub(r"(?m)^seed = \d+", f"seed = {seed}", text, count=1))
            zoo = os.path.join(root, f"tree-{seed}")
            shutil.rmtree(zoo, ignore_errors=True)
            t0 = time.time()
            run([a.bin, "zoo", "train", cfg, "-o", zoo, "--quiet"])
            t_train = time.time() - t0
            rows = json.loads(run([a.bin, "zoo", "ls", zoo, "--json"]))
            last = {}
            for r in rows:
                if r["model_id"] not in last or r["epoch"] > last[r["model_id"]]["epoch"]:
                    last[r["model_id"]] = r
            ids = sorted(last)
            path = {i: os.path.join(zoo, last[i]["file"]) for i in ids}
            truth = {(path[last[i]["parent_id"]], path[i]) for i in ids if last[i]["parent_id"]}
            t0 = time.time()
            rep = json.loads(run([a.bin, "lineage", "--quiet", "--json", *a.lineage_args.split(),
                                   *[path[i] for i in ids]]))
            t_lin = time.time() - t0
            got = {(e["parent"], e["child"]) for e in rep["edges"]}
            right = len(truth & got)
            # Undirected: the right pair, either direction.
            und = len({frozenset(e) for e in truth} & {frozenset(e) for e in got})
            acc = right / len(truth)
            accs.append(acc)
            print(
                f"| {seed} | {len(ids)} | {len(truth)} | {right} ({100 * acc:.1f} %) | "
                f"{und} ({100 * und / len(truth):.1f} %) | {len(rep['roots'])} | "
                f"{t_train:.1f} s | {t_lin:.2f} s |",
                flush=True,
            )
        print(f"mean directed-edge accuracy {100 * sum(accs) / len(accs):.1f} % over {len(accs)} trees")
    finally:
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
