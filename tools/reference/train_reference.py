"""Reference losses, gradients and optimizer steps for sfn-train's parity tests, computed by
PyTorch + transformers in float32.

Per model, writes into crates/sfn-train/tests/fixtures/:
  <name>/                        the random model as a Hugging Face checkpoint (config.json +
                                 model.safetensors, f32), made with save_pretrained
  <name>.reference.json          one right-padded batch: input_ids, attention_mask, labels (-100 on a
                                 prompt span, an isolated position and the pads) [B, T], and the
                                 loss transformers computes for it (mean over scored next tokens)
  <name>.reference.safetensors   grad.<parameter name> for every parameter (loss.backward()), and
                                 logits [B, T, vocab]
Models (hidden 32, 2 layers, GQA, weights drawn wider than transformers' default so that every
gradient is far from rounding noise; norm weights and biases perturbed away from 1 and 0):
  qwen2-tied-bias     Qwen2: q/k/v biases, tied embeddings
  llama-untied-linrope Llama: untied lm_head, 4 query heads on 1 kv head, linear rope scaling
  qwen3-qknorm        Qwen3: q_norm/k_norm, head_dim 16 (not hidden / heads)
  mistral-window      Mistral: sliding window of 4 keys
Also:
  adamw.reference.safetensors    torch.optim.AdamW, two steps on a 300-value tensor: p0, g1, g2 and
                                 after each step p, exp_avg, exp_avg_sq (p1, m1, v1, p2, m2, v2)
  schedules.reference.json       transformers' warmup schedules (cosine, linear, constant, cosine with
                                 a minimum) evaluated at every step of a short run
Run: $(tools/reference/venv) tools/reference/train_reference.py
"""
import json
import pathlib
import shutil

import torch
import transformers
from safetensors.torch import save_file
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "crates/sfn-train/tests/fixtures"

COMMON = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
              max_position_embeddings=64, rms_norm_eps=1e-6, initializer_range=0.15)

MODELS = {
    "qwen2-tied-bias": (Qwen2ForCausalLM, Qwen2Config(**COMMON, vocab_size=64, num_key_value_heads=2,
                                                      tie_word_embeddings=True, rope_theta=10000.0)),
    "llama-untied-linrope": (LlamaForCausalLM, LlamaConfig(**COMMON, vocab_size=80, num_key_value_heads=1,
                                                           tie_word_embeddings=False,
                                                           rope_parameters={"rope_type": "linear", "factor": 2.0,
                                                                            "rope_theta": 10000.0})),
    "qwen3-qknorm": (Qwen3ForCausalLM, Qwen3Config(**COMMON, vocab_size=64, num_key_value_heads=2, head_dim=16,
                                                   tie_word_embeddings=False)),
    "mistral-window": (MistralForCausalLM, MistralConfig(**COMMON, vocab_size=64, num_key_value_heads=2,
                                                         sliding_window=4, tie_word_embeddings=False)),
}

# Three rows of 10 columns holding 10, 7 and 4 real tokens, right-padded with id 0.
LENGTHS = [10, 7, 4]
T = 10


def batch(vocab: int, gen: torch.Generator):
    ids = torch.randint(1, vocab, (len(LENGTHS), T), generator=gen)
    mask = torch.zeros_like(ids)
    for r, n in enumerate(LENGTHS):
        mask[r, :n] = 1
    ids = ids * mask  # pads are token 0
    labels = ids.clone()
    labels[mask == 0] = -100
    labels[0, :3] = -100  # a prompt span (completion-only loss)
    labels[1, 4] = -100  # an isolated unscored position
    return ids, mask, labels


def make(name: str, cls, cfg, seed: int):
    torch.manual_seed(seed)
    model = cls(cfg).to(torch.float32)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("norm.weight") or "layernorm" in pname:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif pname.endswith(".bias"):
                p.copy_(0.1 * torch.randn_like(p))
    directory = OUT / name
    shutil.rmtree(directory, ignore_errors=True)
    model.save_pretrained(directory)
    model = cls.from_pretrained(directory, dtype=torch.float32, attn_implementation="eager")
    model.train()  # dropout is 0 in these configs; train mode only makes gradients the point
    gen = torch.Generator().manual_seed(seed)
    ids, mask, labels = batch(cfg.vocab_size, gen)
    out = model(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False)
    out.loss.backward()
    tensors = {"logits": out.logits.detach().float().contiguous()}
    for pname, p in model.named_parameters():
        tensors[f"grad.{pname}"] = p.grad.detach().float().contiguous()
    meta = {"transformers": transformers.__version__, "torch": torch.__version__}
    save_file(tensors, OUT / f"{name}.reference.safetensors", metadata=meta)
    ref = {"input_ids": ids.tolist(), "attention_mask": mask.tolist(), "labels": labels.tolist(),
           "loss": out.loss.item(), "transformers": transformers.__version__, "torch": torch.__version__}
    (OUT / f"{name}.reference.json").write_text(json.dumps(ref) + "\n")
    print(name, "loss", out.loss.item(), "parameters", len(tensors) - 1)


def adamw():
    gen = torch.Generator().manual_seed(7)
    p0 = torch.randn(300, generator=gen)
    g1 = torch.randn(300, generator=gen) * 0.1
    g2 = torch.randn(300, generator=gen) * 0.01
    p = torch.nn.Parameter(p0.clone())
    opt = torch.optim.AdamW([p], lr=1e-2, betas=(0.9, 0.95), eps=1e-6, weight_decay=0.1)
    out = {"p0": p0, "g1": g1, "g2": g2}
    for i, g in ((1, g1), (2, g2)):
        p.grad = g.clone()
        opt.step()
        st = opt.state[p]
        out[f"p{i}"] = p.detach().clone()
        out[f"m{i}"] = st["exp_avg"].clone()
        out[f"v{i}"] = st["exp_avg_sq"].clone()
    save_file(out, OUT / "adamw.reference.safetensors", metadata={"torch": torch.__version__})


def schedules():
    from transformers import (get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup,
                              get_cosine_with_min_lr_schedule_with_warmup, get_linear_schedule_with_warmup)
    peak, warmup, total = 1e-3, 3, 13
    makers = {
        "cosine": lambda o: get_cosine_schedule_with_warmup(o, warmup, total),
        "linear": lambda o: get_linear_schedule_with_warmup(o, warmup, total),
        "constant": lambda o: get_constant_schedule_with_warmup(o, warmup),
        "cosine_min": lambda o: get_cosine_with_min_lr_schedule_with_warmup(o, warmup, total, min_lr=1e-4),
        "cosine_no_warmup": lambda o: get_cosine_schedule_with_warmup(o, 0, total),
    }
    out = {"peak_lr": peak, "warmup_steps": warmup, "total_steps": total}
    for name, make_schedule in makers.items():
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
        sched = make_schedule(opt)
        lrs = []
        for _ in range(total + 1):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        out[name] = lrs
    (OUT / "schedules.reference.json").write_text(json.dumps(out, indent=1) + "\n")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for seed, (name, (cls, cfg)) in enumerate(MODELS.items()):
        make(name, cls, cfg, seed + 1)
    adamw()
    schedules()


if __name__ == "__main__":
    main()
