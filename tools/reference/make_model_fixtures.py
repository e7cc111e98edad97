"""Reference activations for sfn-model's parity tests, computed by Hugging Face transformers.

Loads the tiny transformers-made checkpoints of make_hf_fixtures.py (and makes one more, a Llama
with llama3 rope scaling), runs them in float32 on fixed token ids and writes, per model,
crates/sfn-model/tests/fixtures/<name>.reference.safetensors holding:
  input_ids        [tokens] int64
  logits           [tokens, vocab] f32
  hidden_states.i  [tokens, hidden] f32, i = 0..num_layers: transformers' `hidden_states` tuple
                   (0 = embeddings; the last one has the final norm applied)
  resid_pre.L, attn_heads.L [tokens, heads, head_dim] (input of o_proj), attn_out.L (o_proj
  output), resid_mid.L (input of post_attention_layernorm), mlp_out.L, resid_post.L
                   for every layer L, taken with forward hooks on the modules themselves.
Models:
  qwen2-bias-tied-bf16-sharded  Qwen2, q/k/v bias, tied embeddings (bf16 weights, run in f32)
  llama-gqa-untied-f32          Llama, GQA, untied lm_head
  qwen3-qknorm-f16              Qwen3, q_norm/k_norm (f16 weights, run in f32)
  llama3-rope-f32               Llama, llama3 rope_scaling with a short original context so that
                                all three frequency bands (kept, smoothed, divided) occur; its
                                checkpoint is written to crates/sfn-model/tests/fixtures/llama3-rope-f32/
SmolLM2 (when .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf exists, see scripts/fetch-smollm2):
  smollm2.reference.json        token ids of sample texts from transformers' own GGUF tokenizer
                                converter (independent of sfn's), and, for a short prompt, the top-32
                                logits per position of transformers' Llama run in f32 on the GGUF's
                                weights dequantized by the `gguf` package
Run: $(tools/reference/venv) tools/reference/make_model_fixtures.py
"""
import json
import pathlib
import shutil

import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

ROOT = pathlib.Path(__file__).resolve().parents[2]
HF = ROOT / "crates/sfn-checkpoint/tests/fixtures/hf"
OUT = ROOT / "crates/sfn-model/tests/fixtures"

# Fixed ids (vocab is 96 in every fixture); 13 tokens, BOS-free, with repeats.
IDS = [1, 5, 17, 42, 3, 88, 23, 9, 64, 31, 7, 50, 17]


def make_llama3_rope(directory: pathlib.Path):
    torch.manual_seed(3)
    cfg = LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=512,
                      rms_norm_eps=1e-5, tie_word_embeddings=False,
                      rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                       "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                       "original_max_position_embeddings": 256})
    model = LlamaForCausalLM(cfg).to(torch.float32)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
            if "q_proj" in name or "k_proj" in name:
                p.mul_(12.0)  # sharp attention, so that rotary angles (and their scaling) matter
    shutil.rmtree(directory, ignore_errors=True)
    model.save_pretrained(directory)


def reference(directory: pathlib.Path) -> dict:
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    model.eval()
    cfg = model.config
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    got = {}
    handles = []
    for i, layer in enumerate(model.model.layers):
        def pre(name):
            return lambda mod, args, kwargs=None: got.__setitem__(name, (args[0] if args else kwargs["hidden_states"]).detach().clone())
        def post(name):
            return lambda mod, args, out: got.__setitem__(name, (out[0] if isinstance(out, tuple) else out).detach().clone())
        handles.append(layer.register_forward_pre_hook(
            lambda mod, args, kwargs, n=f"resid_pre.{i}": got.__setitem__(n, (args[0] if args else kwargs["hidden_states"]).detach().clone()),
            with_kwargs=True))
        handles.append(layer.self_attn.o_proj.register_forward_pre_hook(
            lambda mod, args, n=f"attn_heads.{i}": got.__setitem__(n, args[0].detach().clone().reshape(args[0].shape[0], args[0].shape[1], heads, head_dim))))
        handles.append(layer.self_attn.o_proj.register_forward_hook(post(f"attn_out.{i}")))
        handles.append(layer.post_attention_layernorm.register_forward_pre_hook(
            lambda mod, args, n=f"resid_mid.{i}": got.__setitem__(n, args[0].detach().clone())))
        handles.append(layer.mlp.register_forward_hook(post(f"mlp_out.{i}")))
        handles.append(layer.register_forward_hook(post(f"resid_post.{i}")))
    ids = torch.tensor([IDS])
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True, use_cache=False)
    for h in handles:
        h.remove()
    tensors = {"input_ids": ids[0].clone(), "logits": out.logits[0].float().contiguous()}
    for i, h in enumerate(out.hidden_states):
        tensors[f"hidden_states.{i}"] = h[0].float().contiguous()
    for k, v in got.items():
        tensors[k] = v[0].float().contiguous()
    return tensors


SMOLLM2 = ROOT / ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"
TEXTS = [
    "Hello world",
    " Hello",
    "The capital of France is Paris.",
    "12345 apples and 67 pears",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "naïve café, 中文, emoji 🙂!",
    "def f(x):\n    return x**2  # square\n\n\n",
    "   leading and trailing spaces   ",
    "don't can't I'm we'll they've",
    "<|endoftext|>",
]


def smollm2_from_gguf():
    """transformers' Llama with SmolLM2's weights dequantized by the `gguf` package (llama.cpp's
    Python), q/k rows un-permuted the way transformers' own GGUF loader does it. (transformers'
    `from_pretrained(gguf_file=...)` would do the same but needs `accelerate`.)"""
    import numpy as np
    from gguf import GGUFReader
    from gguf.quants import dequantize
    r = GGUFReader(SMOLLM2)
    cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                      num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                      rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True)
    names = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "attn_norm": "input_layernorm",
             "ffn_norm": "post_attention_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
             "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj",
             "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    state = {}
    for t in r.tensors:
        w = dequantize(t.data, t.tensor_type).astype(np.float32)
        w = w.reshape([int(d) for d in reversed(t.shape)]) if w.ndim == 1 and len(t.shape) > 1 else w
        parts = t.name.split(".")
        if parts[0] == "blk":
            kind = parts[2]
            name = f"model.layers.{parts[1]}.{names[kind]}.{parts[3]}"
            heads = {"attn_q": 9, "attn_k": 3}.get(kind)
            if heads:  # llama.cpp interleaved each head's rotary halves; undo it
                dim = w.shape[0] // heads // 2
                w = w.reshape(heads, dim, 2, *w.shape[1:]).swapaxes(2, 1).reshape(w.shape)
        else:
            name = f"{names[parts[0]]}.{parts[1]}"
        state[name] = torch.from_numpy(np.ascontiguousarray(w))
    model = LlamaForCausalLM(cfg)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    model.tie_weights()
    return model.float().eval()


def smollm2_reference():
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(SMOLLM2.parent, gguf_file=SMOLLM2.name)
    encodings = [{"text": t, "ids": tok.encode(t, add_special_tokens=False)} for t in TEXTS]
    model = smollm2_from_gguf()
    prompt = tok.encode("The capital of France is", add_special_tokens=False)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt]), use_cache=False).logits[0]
    top = torch.topk(logits, 32, dim=-1)
    out = {
        "transformers": transformers.__version__,
        "source": "tokenizer: transformers AutoTokenizer.from_pretrained(gguf_file=...); logits: transformers "
                  "LlamaForCausalLM with weights dequantized by the gguf package (smollm2_from_gguf)",
        "encodings": encodings,
        "prompt_ids": prompt,
        "top_ids": top.indices.tolist(),
        "top_logits": top.values.tolist(),
    }
    (OUT / "smollm2.reference.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print("smollm2: encodings", len(encodings), "prompt", prompt)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    rope_dir = OUT / "llama3-rope-f32"
    make_llama3_rope(rope_dir)
    dirs = {
        "qwen2-bias-tied-bf16-sharded": HF / "qwen2-bias-tied-bf16-sharded",
        "llama-gqa-untied-f32": HF / "llama-gqa-untied-f32",
        "qwen3-qknorm-f16": HF / "qwen3-qknorm-f16",
        "llama3-rope-f32": rope_dir,
    }
    for name, d in dirs.items():
        t = reference(d)
        meta = {"transformers": transformers.__version__, "torch": torch.__version__, "source": str(d.relative_to(ROOT))}
        save_file(t, OUT / f"{name}.reference.safetensors", metadata=meta)
        print(name, "logits", tuple(t["logits"].shape), "tensors", len(t))
    if SMOLLM2.is_file():
        smollm2_reference()
    else:
        print("skipping SmolLM2 reference: run scripts/fetch-smollm2 first")


if __name__ == "__main__":
    main()
