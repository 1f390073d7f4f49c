"""The numpy reference for the merge benchmark, run the way mergekit runs: tensor by tensor
from safetensors (safe_open), with mergekit's formulas (linear, ties with argsort top-k and
sum sign consensus, dare_ties with Bernoulli masks and L1 rescale), collecting the output and
writing it at the end (mergekit's writer buffers up to --out-shard-size, 5 GB by default, so a
model this size is written in one go as well).

usage: numpy_ref.py CONFIG.yaml OUT_DIR"""

import os
import sys

import numpy as np
import yaml
from safetensors import safe_open
from safetensors.numpy import save_file


def magnitude(d, density):
    # mergekit: torch.argsort(|d|, descending=True)[:k]. A stable ascending sort's last k
    # elements break ties by position, as weightspace does, so the outputs can be compared.
    k = int(density * d.size)
    m = np.zeros(d.size, dtype=d.dtype)
    m[np.argsort(np.abs(d).reshape(-1), kind="stable")[d.size - k:]] = 1
    return d * m.reshape(d.shape)


def bernoulli(d, density, rng):
    m = (rng.random(d.shape, dtype=np.float32) < density).astype(d.dtype)
    masked = d * m
    before, after = np.abs(d).sum(), np.abs(masked).sum()
    return masked * (before / after) if before > 1e-7 and after > 1e-7 else masked


def main(cfg_path, out):
    cfg = yaml.safe_load(open(cfg_path))
    method = cfg["merge_method"]
    models = [m["model"] for m in cfg["models"]]
    params = [m.get("parameters", {}) for m in cfg["models"]]
    files = {m: safe_open(os.path.join(m, "model.safetensors"), framework="np") for m in models + [cfg.get("base_model")] if m}
    rng = np.random.default_rng(0)
    result = {}
    for name in files[models[0]].keys():
        if method == "linear":
            ws = [p["weight"] for p in params]
            acc = sum(w * files[m].get_tensor(name) for w, m in zip(ws, models))
            result[name] = acc / sum(ws)
            continue
        base = files[cfg["base_model"]].get_tensor(name)
        deltas, ws = [], []
        for m, p in zip(models, params):
            if m == cfg["base_model"]:
                continue
            d = files[m].get_tensor(name) - base
            d = magnitude(d, p["density"]) if method == "ties" else bernoulli(d, p["density"], rng)
            deltas.append(d)
            ws.append(p["weight"])
        deltas = np.stack(deltas)
        w = np.array(ws, dtype=np.float32).reshape((-1,) + (1,) * base.ndim)
        wd = deltas * w
        sign = np.sign(wd)
        major = np.where(wd.sum(0) >= 0, 1, -1)
        mask = sign == major
        mixed = (wd * mask).sum(0)
        if method == "ties":  # normalize defaults to true for ties, false for dare_ties
            div = (w * mask).sum(0)
            div[div == 0] = 1
            mixed = mixed / div
        result[name] = base + mixed
    os.makedirs(out, exist_ok=True)
    save_file(result, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
