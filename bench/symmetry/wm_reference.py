#!/usr/bin/env python3
"""numpy + scipy reference of weightspace's weight matching (Git Re-Basin's
`weight_matching.py` loop, generalised to the spec's member layouts).

Reads the groups from `weightspace spec --json`, the two checkpoints with `safetensors`'
numpy loader, runs the same loop with the same seed (SplitMix64 group orders), applies the
permutations to OTHER and writes it, so the result can be compared with `weightspace align`.

    python wm_reference.py SPEC.json REF.safetensors OTHER.safetensors OUT.safetensors [--seed S] [--max-iter N]

Prints one JSON line: {"seconds_match", "seconds_total", "sweeps"}.
"""
import json
import sys
import time

import numpy as np
from safetensors.numpy import load_file, save_file
from scipy.optimize import linear_sum_assignment

M64 = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.s = seed & M64

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & M64
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def permutation(self, n):
        p = list(range(n))
        for i in range(n - 1, 0, -1):
            j = self.next() % (i + 1)
            p[i], p[j] = p[j], p[i]
        return p


def layout_index(m, size):
    """Axis indices of every unit: array [size, repeats*block]."""
    off, rep, stride, block = m.get("offset", 0), m.get("repeats", 1), m.get("stride", 0), m.get("block", 1)
    u = np.arange(size)[:, None, None]
    r = np.arange(rep)[None, :, None]
    i = np.arange(block)[None, None, :]
    return (off + r * stride + u * block + i).reshape(size, -1)


def member_src(length, m, perm):
    idx = layout_index(m, len(perm))
    src = np.arange(length)
    src[idx.ravel()] = idx[np.asarray(perm)].ravel()
    return src


def unit_matrix(w, m, size):
    idx = layout_index(m, size)
    t = np.take(w, idx.ravel(), axis=m["axis"])
    t = np.moveaxis(t, m["axis"], 0)
    return t.reshape(size, -1).astype(np.float64)


def permuted(w, name, axis_users, groups, perms, except_group, except_axis):
    """OTHER's tensor with every group's permutation applied, except `except_group` on
    `except_axis` (as get_permuted_param(except_axis=...) in weight_matching.py)."""
    for ax in range(w.ndim):
        for gj, mj in axis_users.get((name, ax), []):
            if ax == except_axis and gj == except_group:
                continue
            g = groups[gj]
            w = np.take(w, member_src(w.shape[ax], g["members"][mj], perms[gj]), axis=ax)
    return w


def weight_matching(groups, ref, other, seed, max_iter=100):
    axis_users = {}
    for gi, g in enumerate(groups):
        for mi, m in enumerate(g["members"]):
            axis_users.setdefault((m["tensor"], m["axis"]), []).append((gi, mi))
    perms = [list(range(g["size"])) for g in groups]
    rng = SplitMix64(seed)
    sweeps = 0
    for _ in range(max_iter):
        sweeps += 1
        progress = False
        for p in rng.permutation(len(groups)):
            g = groups[p]
            n = g["size"]
            A = np.zeros((n, n))
            for m in g["members"]:
                wa = unit_matrix(ref[m["tensor"]], m, n)
                wb = permuted(other[m["tensor"]], m["tensor"], axis_users, groups, perms, p, m["axis"])
                wb = unit_matrix(wb, m, n)
                A += wa @ wb.T
            ri, ci = linear_sum_assignment(A, maximize=True)
            assert (ri == np.arange(n)).all()
            old = A[np.arange(n), perms[p]].sum()
            new = A[np.arange(n), ci].sum()
            progress = progress or new > old + 1e-12
            perms[p] = ci.tolist()
        if not progress:
            break
    return perms, sweeps, axis_users


def main():
    spec_path, ref_path, other_path, out_path = sys.argv[1:5]
    seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 0
    max_iter = int(sys.argv[sys.argv.index("--max-iter") + 1]) if "--max-iter" in sys.argv else 100
    t0 = time.perf_counter()
    groups = json.load(open(spec_path))["groups"]
    ref = {k: v.astype(np.float32) for k, v in load_file(ref_path).items()}
    other = {k: v.astype(np.float32) for k, v in load_file(other_path).items()}
    t1 = time.perf_counter()
    perms, sweeps, axis_users = weight_matching(groups, ref, other, seed, max_iter)
    t2 = time.perf_counter()
    out = {}
    for name, w in other.items():
        out[name] = np.ascontiguousarray(permuted(w, name, axis_users, groups, perms, -1, -1))
    save_file(out, out_path)
    t3 = time.perf_counter()
    print(json.dumps({"seconds_match": t2 - t1, "seconds_total": t3 - t0, "sweeps": sweeps}))


if __name__ == "__main__":
    main()
