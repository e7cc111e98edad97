"""Tiny Hugging Face checkpoints made by transformers, plus what an independent reader sees in them.

Writes crates/sfn-checkpoint/tests/fixtures/hf/<name>/ (a real save_pretrained directory) and
<name>.expected.json: the config facts and, per tensor, dtype, shape, float64 sum, sum of squares
and the first 8 values, read back with the `safetensors` library (not with sfn).

Models cover the families sfn supports and the storage layouts it must read:
  qwen2-bias-tied-bf16-sharded  Qwen2, q/k/v bias, tied embeddings, bf16, several shards + index
  llama-gqa-untied-f32          Llama, GQA, untied lm_head, f32, one model.safetensors
  qwen3-qknorm-f16              Qwen3, q_norm/k_norm, f16
Run: $(tools/reference/venv) tools/reference/make_hf_fixtures.py
"""
import json
import pathlib
import shutil

import numpy as np
import torch
from safetensors import safe_open
import transformers
from transformers import (LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM,
                          Qwen3Config, Qwen3ForCausalLM)

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "crates/sfn-checkpoint/tests/fixtures/hf"

COMMON = dict(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=3,
              num_attention_heads=4, max_position_embeddings=64, rms_norm_eps=1e-5)

MODELS = {
    "qwen2-bias-tied-bf16-sharded": (Qwen2ForCausalLM, Qwen2Config(**COMMON, num_key_value_heads=2,
                                      tie_word_embeddings=True, rope_theta=10000.0), torch.bfloat16, "8KB"),
    "llama-gqa-untied-f32": (LlamaForCausalLM, LlamaConfig(**COMMON, num_key_value_heads=2,
                              tie_word_embeddings=False, rope_theta=500000.0), torch.float32, "10MB"),
    "qwen3-qknorm-f16": (Qwen3ForCausalLM, Qwen3Config(**COMMON, num_key_value_heads=2, head_dim=8,
                          tie_word_embeddings=True), torch.float16, "10MB"),
}


def read_back(directory: pathlib.Path) -> dict:
    tensors = {}
    for f in sorted(directory.glob("*.safetensors")):
        with safe_open(f, "pt") as st:
            for name in st.keys():
                t = st.get_tensor(name)
                v = t.to(torch.float64).numpy().ravel()
                tensors[name] = {
                    "dtype": str(t.dtype).removeprefix("torch."),
                    "shape": list(t.shape),
                    "file": f.name,
                    "sum": float(v.sum()),
                    "sumsq": float((v * v).sum()),
                    "head": [float(x) for x in v[:8]],
                }
    return tensors


def main():
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (cls, cfg, dtype, shard) in MODELS.items():
        model = cls(cfg).to(dtype)
        # Make biases and norms non-trivial so a reader that mixes them up is caught.
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if pname.endswith("bias") or "norm" in pname:
                    p.add_(torch.randn_like(p) * 0.1)
        d = OUT / name
        shutil.rmtree(d, ignore_errors=True)
        model.save_pretrained(d, max_shard_size=shard)
        c = model.config
        expected = {
            "transformers": transformers.__version__,
            "family": c.model_type,
            "num_layers": c.num_hidden_layers,
            "hidden_size": c.hidden_size,
            "num_heads": c.num_attention_heads,
            "num_kv_heads": c.num_key_value_heads,
            "head_dim": getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads,
            "vocab_size": c.vocab_size,
            "tied_embeddings": bool(c.tie_word_embeddings),
            "num_parameters": sum(p.numel() for p in model.parameters()),
            "tensors": read_back(d),
        }
        (OUT / f"{name}.expected.json").write_text(json.dumps(expected, indent=1) + "\n")
        print(name, "->", d, len(expected["tensors"]), "tensors")


if __name__ == "__main__":
    main()
