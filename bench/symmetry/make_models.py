#!/usr/bin/env python3
"""Makes the benchmark inputs (deterministic, torch CPU):

* mlp_a/, mlp_b/: two 784-512-512-512-10 ReLU MLPs (`layers.{0,2,4,6}`), PyTorch default
  init with seeds 1 and 2;
* bert_a/, bert_b/: two 6-layer BERT-base-sized encoders (hidden 768, 12 heads, FFN 3072,
  vocab 30522, 512 positions, pooler), N(0, 0.02) init with seeds 1 and 2, with config.json.

    python make_models.py OUTDIR

Without torch, the same shapes and distributions come from numpy's PCG64 with the same seeds
(other values than torch's, so compare timings only within one set of inputs).
"""
import json
import os
import sys

try:
    import torch
    from safetensors.torch import save_file
except ImportError:  # numpy fallback: same shapes and distributions, other values
    torch = None
    import numpy as np
    from safetensors.numpy import save_file

out = sys.argv[1]


def mlp(seed):
    if torch is None:
        rng = np.random.default_rng(seed)
        widths = [784, 512, 512, 512, 10]
        t = {}
        for i in range(4):
            bound = 1 / np.sqrt(widths[i])  # PyTorch's default Linear init
            t[f"layers.{2 * i}.weight"] = rng.uniform(-bound, bound, (widths[i + 1], widths[i])).astype(np.float32)
            t[f"layers.{2 * i}.bias"] = rng.uniform(-bound, bound, widths[i + 1]).astype(np.float32)
        return t
    torch.manual_seed(seed)
    layers = []
    widths = [784, 512, 512, 512, 10]
    for i in range(4):
        layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
        if i < 3:
            layers.append(torch.nn.ReLU())
    m = torch.nn.Sequential(*layers)
    return {f"layers.{k}": v.contiguous() for k, v in m.state_dict().items()}


def bert(seed, layers=6, d=768, ff=3072, vocab=30522, pos=512):
    if torch is None:
        rng = np.random.default_rng(seed)
        n = lambda *s: (rng.standard_normal(s, dtype=np.float32) * np.float32(0.02))
    else:
        g = torch.Generator().manual_seed(seed)
        n = lambda *s: (torch.randn(*s, generator=g) * 0.02)
    t = {
        "bert.embeddings.word_embeddings.weight": n(vocab, d),
        "bert.embeddings.position_embeddings.weight": n(pos, d),
        "bert.embeddings.token_type_embeddings.weight": n(2, d),
        "bert.embeddings.LayerNorm.weight": 1 + n(d),
        "bert.embeddings.LayerNorm.bias": n(d),
    }
    for i in range(layers):
        l = f"bert.encoder.layer.{i}"
        for name, shape in [
            ("attention.self.query", (d, d)), ("attention.self.key", (d, d)),
            ("attention.self.value", (d, d)), ("attention.output.dense", (d, d)),
            ("intermediate.dense", (ff, d)), ("output.dense", (d, ff)),
        ]:
            t[f"{l}.{name}.weight"] = n(*shape)
            t[f"{l}.{name}.bias"] = n(shape[0])
        for ln in ["attention.output.LayerNorm", "output.LayerNorm"]:
            t[f"{l}.{ln}.weight"] = 1 + n(d)
            t[f"{l}.{ln}.bias"] = n(d)
    t["bert.pooler.dense.weight"] = n(d, d)
    t["bert.pooler.dense.bias"] = n(d)
    return t


cfg = {"model_type": "bert", "num_attention_heads": 12, "hidden_size": 768,
       "intermediate_size": 3072, "num_hidden_layers": 6, "hidden_act": "gelu"}
for name, make in [("mlp", mlp), ("bert", bert)]:
    for tag, seed in [("a", 1), ("b", 2)]:
        d = os.path.join(out, f"{name}_{tag}")
        os.makedirs(d, exist_ok=True)
        meta = {"activation": "relu"} if name == "mlp" else {}
        save_file(make(seed), os.path.join(d, "model.safetensors"), metadata=meta)
        if name == "bert":
            json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
