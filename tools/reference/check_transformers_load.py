"""Do checkpoints written by sfn load in Hugging Face transformers, with the right values?

1. `sfn convert` the f32 Llama fixture to bf16 in tiny shards: transformers loads it, every tensor
   equals torch's own `.to(torch.bfloat16)` of the original bit for bit, and the logits equal
   those of the original model cast to bf16.
2. `sfn convert` the bf16 sharded Qwen2 fixture (tied embeddings) to one f32 file: same tensors,
   same logits as the original model in f32.
3. `sfn merge` A (f32 Llama fixture) with B (its perturbed copy) taking o_proj of layers 1..3:
   transformers loads it and its logits equal those of A with those tensors replaced by B's in
   torch.
4. `sfn convert` the real SmolLM2 GGUF to an f32 directory: transformers loads it as
   LlamaForCausalLM and every tensor equals gguf-py's dequantization of the GGUF, with q/k rows
   un-permuted by numpy here; the logits for a fixed prompt are finite and the top token is
   printed.
Prints max |diff| per check and exits non-zero on any mismatch.
Run: $(tools/reference/venv) tools/reference/check_transformers_load.py
"""
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import torch
from transformers import AutoModelForCausalLM

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIX = ROOT / "crates/sfn-checkpoint/tests/fixtures/hf"
SFN = ROOT / "target/release/sfn"
IDS = torch.tensor([[1, 5, 17, 42, 3, 9, 60, 2]])
failures = []


def sfn(*args):
    subprocess.run([str(SFN), *map(str, args)], check=True)


def check(name, ok, detail):
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    if not ok:
        failures.append(name)


def compare_models(label, ours, ref):
    sd_ours, sd_ref = ours.state_dict(), ref.state_dict()
    worst = 0.0
    for k, v in sd_ref.items():
        a, b = sd_ours[k], v
        same = a.dtype == b.dtype and torch.equal(a, b)
        worst = max(worst, (a.float() - b.float()).abs().max().item())
        if not same:
            check(f"{label} tensor {k}", False, f"dtype {a.dtype} vs {b.dtype}, max |diff| {worst}")
    with torch.no_grad():
        la, lb = ours(IDS).logits, ref(IDS).logits
    d = (la.float() - lb.float()).abs().max().item()
    check(f"{label} tensors", worst == 0.0, f"{len(sd_ref)} tensors bit-identical (max |diff| {worst})")
    check(f"{label} logits", d == 0.0, f"max |diff| {d}")


def main():
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "sfn-cli"], cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        src = FIX / "llama-gqa-untied-f32"
        sfn("convert", src, "-o", tmp / "llama-bf16", "--dtype", "bf16", "--max-shard-size", "4KB")
        shards = len(list((tmp / "llama-bf16").glob("*.safetensors")))
        ours = AutoModelForCausalLM.from_pretrained(tmp / "llama-bf16", dtype=torch.bfloat16)
        ref = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).to(torch.bfloat16)
        print(f"llama f32 -> bf16 in {shards} shards")
        compare_models("llama f32->bf16 sharded", ours, ref)

        src = FIX / "qwen2-bias-tied-bf16-sharded"
        sfn("convert", src, "-o", tmp / "qwen2-f32", "--dtype", "f32")
        ours = AutoModelForCausalLM.from_pretrained(tmp / "qwen2-f32", dtype=torch.float32)
        ref = AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16).to(torch.float32)
        compare_models("qwen2 bf16 sharded->f32", ours, ref)

        a_dir, b_dir = FIX / "llama-gqa-untied-f32", ROOT / "crates/sfn-checkpoint/tests/fixtures/edit/llama-b-f32"
        sfn("merge", a_dir, b_dir, "--take", "o_proj", "--layers", "1..3", "-o", tmp / "merged")
        ours = AutoModelForCausalLM.from_pretrained(tmp / "merged", dtype=torch.float32)
        ref = AutoModelForCausalLM.from_pretrained(a_dir, dtype=torch.float32)
        b_sd = AutoModelForCausalLM.from_pretrained(b_dir, dtype=torch.float32).state_dict()
        with torch.no_grad():
            for name, p in ref.named_parameters():
                if name in ("model.layers.1.self_attn.o_proj.weight", "model.layers.2.self_attn.o_proj.weight"):
                    p.copy_(b_sd[name])
        compare_models("merge o_proj layers 1..3", ours, ref)

        gguf_path = pathlib.Path(subprocess.run([ROOT / "scripts/fetch-smollm2"], capture_output=True, text=True,
                                                check=True).stdout.strip())
        sfn("convert", gguf_path, "-o", tmp / "smollm2", "--dtype", "f32")
        model = AutoModelForCausalLM.from_pretrained(tmp / "smollm2", dtype=torch.float32)
        check_gguf_against_gguf_py(gguf_path, model)


def unpermute(w, n_head):
    # llama.cpp's converter stored rows as reshape(n_head, 2, hd/2, ...).swapaxes(1, 2): undo it.
    rest = w.shape[1:]
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *rest).swapaxes(1, 2).reshape(w.shape)


def check_gguf_against_gguf_py(path, model):
    from gguf import GGUFReader
    from gguf.quants import dequantize

    names = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "attn_norm": "input_layernorm",
             "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
             "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
             "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    cfg = model.config
    sd = model.state_dict()
    reader = GGUFReader(path)
    worst, count = 0.0, 0
    for t in reader.tensors:
        parts = t.name.split(".")
        if parts[0] == "blk":
            hf = f"model.layers.{parts[1]}.{names[parts[2]]}.{parts[3]}"
        else:
            hf = f"{names[parts[0]]}.{parts[1]}"
        ref = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(list(reversed([int(d) for d in t.shape])))
        if parts[0] == "blk" and parts[2] == "attn_q":
            ref = unpermute(ref, cfg.num_attention_heads)
        if parts[0] == "blk" and parts[2] == "attn_k":
            ref = unpermute(ref, cfg.num_key_value_heads)
        d = np.abs(sd[hf].numpy() - ref).max()
        worst = max(worst, float(d))
        count += 1
    check("smollm2 gguf->hf tensors", worst == 0.0, f"{count} tensors vs gguf-py dequantization, max |diff| {worst}")
    with torch.no_grad():
        logits = model(torch.tensor([[1, 9690, 198, 2683, 359, 253, 5356, 31]])).logits
    check("smollm2 logits finite", bool(torch.isfinite(logits).all()), f"top token id {int(logits[0, -1].argmax())}")


if __name__ == "__main__":
    main()
    if failures:
        sys.exit(f"{len(failures)} check(s) failed")
    print("all checks passed")
