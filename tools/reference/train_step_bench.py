"""PyTorch counterpart of crates/sfn-train/examples/step_bench.rs: the same presets, random init,
one fixed batch of random tokens (labels = input ids), and N full steps (zero_grad, forward with
labels, backward, clip_grad_norm_ 1.0, AdamW) in float32 on the CPU with 2 threads; prints each
step's time, the best step's ms and tokens/s, and the peak resident memory.

Trainable sets: `all`, or a comma list of sfn module names among o_proj, q_proj, k_proj, v_proj,
gate_proj, up_proj, down_proj, norms, embed, lm_head (the rest gets requires_grad=False; with tied
embeddings embed and lm_head are one tensor).
Run: $(tools/reference/venv) tools/reference/train_step_bench.py --preset tiny --trainable all
"""
import argparse
import resource
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

PRESETS = {
    "tiny": (Qwen2ForCausalLM, Qwen2Config(hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                                          num_attention_heads=4, num_key_value_heads=2, vocab_size=1024,
                                          tie_word_embeddings=True, max_position_embeddings=2048,
                                          rms_norm_eps=1e-6), 16, 128),
    "smollm2": (LlamaForCausalLM, LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                                              num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
                                              tie_word_embeddings=True, max_position_embeddings=8192,
                                              rms_norm_eps=1e-5, rope_theta=100000.0), 8, 256),
}


def trainable(name: str, selector: str) -> bool:
    if selector == "all":
        return True
    for term in selector.split(","):
        if term == "norms" and "norm" in name:
            return True
        if term == "embed" and "embed_tokens" in name:
            return True
        if term in ("lm_head", "o_proj", "q_proj", "k_proj", "v_proj", "gate_proj", "up_proj", "down_proj") and term in name:
            return True
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="tiny", choices=PRESETS)
    ap.add_argument("--trainable", default="all")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--layers", type=int)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    cls, cfg, rows, cols = PRESETS[args.preset]
    if args.layers:
        cfg.num_hidden_layers = args.layers
    model = cls(cfg).to(torch.float32)
    model.train()
    params = []
    for name, p in model.named_parameters():
        p.requires_grad_(trainable(name, args.trainable))
        if p.requires_grad:
            params.append(p)
    n_all = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in params)
    print(f"model: {cfg.num_hidden_layers} layers, hidden {cfg.hidden_size}, vocab {cfg.vocab_size}; "
          f"{n_all / 1e6:.2f}M parameters, {n_train / 1e6:.2f}M trainable [{args.trainable}]")
    opt = torch.optim.AdamW(params, lr=1e-4)
    ids = torch.randint(0, cfg.vocab_size, (rows, cols), generator=torch.Generator().manual_seed(7))
    best = float("inf")
    for step in range(args.steps):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        secs = time.perf_counter() - t
        print(f"step {step}: {secs * 1e3:.1f} ms, loss {loss.item():.4f}")
        if step > 0 or args.steps == 1:
            best = min(best, secs)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"best step: {best * 1e3:.1f} ms, {rows * cols / best:.0f} tokens/s, {args.threads} threads, "
          f"batch {rows} × {cols}; peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
