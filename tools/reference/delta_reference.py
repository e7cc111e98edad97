"""Reference numbers for `sfn delta`: a tiny Qwen2 pair made by transformers, and every statistic
computed independently with numpy in float64 from what the `safetensors` library reads.

Writes crates/sfn-scope/tests/fixtures/delta/:
  a-qwen2-bf16-sharded/   A: random init (seeded), bf16, several shards + index
  b-qwen2-f32/            B: A plus known perturbations, f32, one model.safetensors
  expected.json           per tensor: l2_diff, l2_a, l2_b, rel_change, cosine, max_abs_diff,
                          non-finite counts, and the histogram of clip((B-A)/(|A|+1e-8), -1, 1)
                          (200 bins over [-1, 1]) with the tolerance the Rust test allows:
                          `counts_sure` counts elements farther than 1e-6 from every inner bin edge,
                          `near_edge` maps an inner edge index to the elements within 1e-6 of it
                          (those may land on either side of it in a float32 computation).
Perturbations (so every code path is exercised):
  o_proj        B = A * (1 +/- 0.3), random sign per element     -> bimodal histogram
  q/k/v_proj    B = A * (1 + N(0, 0.05))                          -> unimodal
  gate/up/down  B = A + N(0, 0.002)                               -> clip spikes at +/-1
  norms, bias   B = A + N(0, 0.01)
  embed         row 3 zeroed (r = -sign(A), exactly on the clip edge)
  lm_head       unchanged
  layer 0 v_proj.bias is zero in A (rel_change undefined -> null)
  layer 2 down_proj: one NaN and one +Inf in B (counted, left out)
Run: $(tools/reference/venv) tools/reference/delta_reference.py

One more subcommand serves scripts/bench-delta (not the fixture):
  bench-transformers A B O  the paper's approach: load both with transformers, then per
                            parameter torch norms, cosine, max |B-A| and histc; results to O (JSON)
"""
import json
import pathlib
import shutil
import sys

import numpy as np
import torch
import transformers
from safetensors import safe_open
from transformers import Qwen2Config, Qwen2ForCausalLM

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "crates/sfn-scope/tests/fixtures/delta"
BINS, EPS, EDGE_TOL = 200, 1e-8, 1e-6

CONFIG = Qwen2Config(vocab_size=64, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                     rms_norm_eps=1e-6, tie_word_embeddings=False, rope_theta=10000.0)


def make_pair():
    torch.manual_seed(0)
    a = Qwen2ForCausalLM(CONFIG).to(torch.bfloat16)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in a.named_parameters():
            if (name.endswith("bias") or "norm" in name) and name != "model.layers.0.self_attn.v_proj.bias":
                p.add_(torch.randn(p.shape, generator=g).to(p.dtype) * 0.1)
        a.model.layers[0].self_attn.v_proj.bias.zero_()
    b = Qwen2ForCausalLM(CONFIG).to(torch.float32)
    b.load_state_dict({k: v.to(torch.float32) for k, v in a.state_dict().items()})
    with torch.no_grad():
        for name, p in b.named_parameters():
            noise = lambda s: torch.randn(p.shape, generator=g) * s  # noqa: E731
            if "o_proj" in name:
                sign = torch.where(torch.rand(p.shape, generator=g) < 0.5, -1.0, 1.0)
                p.mul_(1 + 0.3 * sign)
            elif any(m in name for m in ("q_proj.weight", "k_proj.weight", "v_proj.weight")):
                p.mul_(1 + noise(0.05))
            elif "mlp" in name:
                p.add_(noise(0.002))
            elif "norm" in name or name.endswith("bias"):
                p.add_(noise(0.01))
            elif "embed_tokens" in name:
                p[3].zero_()
        down = b.model.layers[2].mlp.down_proj.weight
        down[0, 0] = float("nan")
        down[1, 5] = float("inf")
    return a, b


def read(directory: pathlib.Path) -> dict:
    """Every tensor as float64, read with the safetensors library (not with sfn)."""
    out = {}
    for f in sorted(directory.glob("*.safetensors")):
        with safe_open(f, "pt") as st:
            for name in st.keys():
                t = st.get_tensor(name)
                out[name] = (str(t.dtype).removeprefix("torch."), list(t.shape), t.to(torch.float64).numpy().ravel())
    return out


def stats(a: np.ndarray, b: np.ndarray) -> dict:
    fa, fb = np.isfinite(a), np.isfinite(b)
    fin = fa & fb
    a, b = a[fin], b[fin]
    d = b - a
    l2_diff, l2_a, l2_b = (float(np.sqrt(np.sum(x * x))) for x in (d, a, b))
    rel = l2_diff / l2_a if l2_a > 0 else (0.0 if l2_diff == 0 else None)
    cosine = float(np.dot(a, b) / (l2_a * l2_b)) if l2_a > 0 and l2_b > 0 else None
    r = d / (np.abs(a) + EPS)
    rc = np.clip(r, -1.0, 1.0)
    edges = np.linspace(-1.0, 1.0, BINS + 1)
    nearest = np.clip(np.rint((rc + 1.0) / 2.0 * BINS).astype(np.int64), 0, BINS)
    # An unchanged element (d = 0) gives r = 0 exactly in any precision: not ambiguous.
    ambiguous = (np.abs(rc - edges[nearest]) < EDGE_TOL) & (nearest > 0) & (nearest < BINS) & (d != 0)
    counts = np.histogram(rc, bins=BINS, range=(-1.0, 1.0))[0]
    sure = np.histogram(rc[~ambiguous], bins=BINS, range=(-1.0, 1.0))[0]
    near = np.bincount(nearest[ambiguous], minlength=BINS + 1)
    return {
        "l2_diff": l2_diff, "l2_a": l2_a, "l2_b": l2_b, "rel_change": rel, "cosine": cosine,
        "max_abs_diff": float(np.max(np.abs(d))) if d.size else 0.0,
        "nonfinite": {"a": int((~fa).sum()), "b": int((~fb).sum()), "pairs": int((~(fa & fb)).sum())},
        "hist_counts": counts.tolist(),
        "hist_counts_sure": sure.tolist(),
        "hist_near_edge": {str(i): int(c) for i, c in enumerate(near) if c},
        # Clipped (|r| >= 1 before clipping), with the same 1e-6 tolerance at the clip edge.
        "clipped_low_sure": int((r <= -1.0 - EDGE_TOL).sum()), "clipped_low_near": int((np.abs(r + 1.0) < EDGE_TOL).sum()),
        "clipped_high_sure": int((r >= 1.0 + EDGE_TOL).sum()), "clipped_high_near": int((np.abs(r - 1.0) < EDGE_TOL).sum()),
    }


def main():
    a, b = make_pair()
    da, db = OUT / "a-qwen2-bf16-sharded", OUT / "b-qwen2-f32"
    for d in (da, db):
        shutil.rmtree(d, ignore_errors=True)
    a.save_pretrained(da, max_shard_size="100KB")
    b.save_pretrained(db, max_shard_size="10MB")
    ta, tb = read(da), read(db)
    assert ta.keys() == tb.keys(), "transformers saved different tensor sets"
    tensors = {}
    for name in sorted(ta):
        (dta, sa, va), (dtb, sb, vb) = ta[name], tb[name]
        assert sa == sb
        tensors[name] = {"dtype_a": dta, "dtype_b": dtb, "shape": sa, **stats(va, vb)}
    expected = {
        "transformers": transformers.__version__, "torch": torch.__version__, "numpy": np.__version__,
        "bins": BINS, "eps": EPS, "edge_tolerance": EDGE_TOL,
        "a_files": sorted(p.name for p in da.glob("*.safetensors")),
        "b_files": sorted(p.name for p in db.glob("*.safetensors")),
        "tensors": tensors,
    }
    # One line per tensor keeps the file small and its diffs readable.
    head = {k: v for k, v in expected.items() if k != "tensors"}
    lines = [json.dumps(head)[:-1] + ', "tensors": {']
    lines += [f"{json.dumps(n)}: {json.dumps(t, separators=(',', ':'))}," for n, t in tensors.items()]
    lines[-1] = lines[-1][:-1]
    (OUT / "expected.json").write_text("\n".join(lines) + "\n}}\n")
    size = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({len(tensors)} tensors, {size / 1024:.0f} KiB)")


def bench_transformers(a_dir: str, b_dir: str, out: str):
    """The straightforward approach: both models in memory, torch per parameter."""
    from transformers import AutoModelForCausalLM
    a = AutoModelForCausalLM.from_pretrained(a_dir, dtype=torch.bfloat16)
    b = AutoModelForCausalLM.from_pretrained(b_dir, dtype=torch.bfloat16)
    pb = dict(b.named_parameters())
    result = {}
    with torch.no_grad():
        for name, wa in a.named_parameters():
            wa, wb = wa.float().flatten(), pb[name].float().flatten()
            d = wb - wa
            l2_diff, l2_a, l2_b = (torch.linalg.vector_norm(x).item() for x in (d, wa, wb))
            r = (d / (wa.abs() + EPS)).clamp_(-1.0, 1.0)
            result[name] = {
                "l2_diff": l2_diff, "l2_a": l2_a, "l2_b": l2_b,
                "rel_change": l2_diff / l2_a if l2_a > 0 else None,
                "cosine": (torch.dot(wa, wb) / (l2_a * l2_b)).item() if l2_a > 0 and l2_b > 0 else None,
                "max_abs_diff": d.abs().max().item(),
                "hist": torch.histc(r, bins=BINS, min=-1.0, max=1.0).long().tolist(),
            }
    pathlib.Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    if sys.argv[1:2] == ["bench-transformers"]:
        bench_transformers(*sys.argv[2:5])
    else:
        main()
