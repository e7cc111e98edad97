"""Reference results for edit plans (merge / mix / remove layers), computed with numpy.

A is the transformers-made f32 Llama fixture (make_hf_fixtures.py). B is A "fine-tuned": every
tensor plus seeded Gaussian noise, saved with transformers' save_pretrained. Expected outputs:
  take-o-layers1-3.safetensors  A with layers[1..3].o_proj from B
  mix-mlp-0.3.safetensors       A with mlp = 0.3*A + 0.7*B (float64 arithmetic, rounded to f32)
  remove-layer-1.safetensors    A without layer 1, later layers renumbered
Run: $(tools/reference/venv) tools/reference/make_edit_fixtures.py
"""
import pathlib
import re
import shutil

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from transformers import AutoModelForCausalLM

ROOT = pathlib.Path(__file__).resolve().parents[2]
A_DIR = ROOT / "crates/sfn-checkpoint/tests/fixtures/hf/llama-gqa-untied-f32"
OUT = ROOT / "crates/sfn-checkpoint/tests/fixtures/edit"


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(A_DIR, dtype=torch.float32)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    b_dir = OUT / "llama-b-f32"
    shutil.rmtree(b_dir, ignore_errors=True)
    model.save_pretrained(b_dir)

    a = load_file(A_DIR / "model.safetensors")
    b = load_file(b_dir / "model.safetensors")

    take = {k: (b[k] if re.fullmatch(r"model\.layers\.[12]\.self_attn\.o_proj\.weight", k) else a[k]) for k in a}
    save_file(take, OUT / "take-o-layers1-3.safetensors")

    alpha = 0.3
    mix = {}
    for k in a:
        if ".mlp." in k:
            mix[k] = (alpha * a[k].astype(np.float64) + (1 - alpha) * b[k].astype(np.float64)).astype(np.float32)
        else:
            mix[k] = a[k]
    save_file(mix, OUT / "mix-mlp-0.3.safetensors")

    removed = {}
    for k, v in a.items():
        m = re.match(r"model\.layers\.(\d+)\.(.*)", k)
        if m is None:
            removed[k] = v
        elif int(m.group(1)) != 1:
            n = int(m.group(1))
            removed[f"model.layers.{n - 1 if n > 1 else n}.{m.group(2)}"] = v
    save_file(removed, OUT / "remove-layer-1.safetensors")
    print("wrote", sorted(p.name for p in OUT.iterdir()))


if __name__ == "__main__":
    main()
