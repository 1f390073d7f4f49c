"""Writes three llama-style checkpoints of ~110M parameters (f32) for the merge benchmark:
base/, ft1/, ft2/ under the folder given, each a Hugging Face model folder (config.json +
model.safetensors), so that mergekit can read them too. ft_i = base + 0.01 * noise."""

import json
import os
import sys

import numpy as np
from safetensors.numpy import save_file

H, I, L, V = 768, 2048, 12, 16000


def shapes():
    yield "model.embed_tokens.weight", (V, H)
    for i in range(L):
        p = f"model.layers.{i}."
        for n in ["q_proj", "k_proj", "v_proj", "o_proj"]:
            yield p + f"self_attn.{n}.weight", (H, H)
        yield p + "mlp.gate_proj.weight", (I, H)
        yield p + "mlp.up_proj.weight", (I, H)
        yield p + "mlp.down_proj.weight", (H, I)
        yield p + "input_layernorm.weight", (H,)
        yield p + "post_attention_layernorm.weight", (H,)
    yield "model.norm.weight", (H,)
    yield "lm_head.weight", (V, H)


CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": H,
    "intermediate_size": I, "num_hidden_layers": L, "num_attention_heads": 12,
    "num_key_value_heads": 12, "vocab_size": V, "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-5, "tie_word_embeddings": False, "torch_dtype": "float32",
    "hidden_act": "silu", "rope_theta": 10000.0,
}


def main(out):
    rng = np.random.default_rng(0)
    base = {n: (rng.standard_normal(s, dtype=np.float32) * 0.02) for n, s in shapes()}
    for name, noise in [("base", 0.0), ("ft1", 0.01), ("ft2", 0.01)]:
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        m = base if noise == 0 else {k: v + rng.standard_normal(v.shape, dtype=np.float32) * noise for k, v in base.items()}
        save_file(m, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(CONFIG, f, indent=1)
        del m
    print(sum(v.size for v in base.values()), "parameters per model")


if __name__ == "__main__":
    main(sys.argv[1])
