"""Reference fixtures for sfn's GGUF reader, made with gguf-py (llama.cpp's own Python package).

Writes crates/sfn-checkpoint/tests/fixtures/gguf/:
  blocks/<TYPE>.bin, blocks/<TYPE>.f32
      (a) a few blocks of random bytes per type (Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K, F16, BF16),
      with the f16 scale fields set to finite values, and gguf-py's dequantization as
      little-endian f32 (`gguf.quants.dequantize`).
  tiny-llama.gguf, tiny-llama.expected.safetensors
      (b) a 2-layer Llama (GQA 4/2 heads, q/k/v/o biases, untied lm_head, linear rope scaling)
      written with GGUFWriter, q/k rows permuted as llama.cpp's converter does
      (LlamaModel.permute), tensors in F32/F16/BF16/Q8_0/Q4_0/Q4_1/Q4_K/Q6_K. The expected file
      holds every tensor in Hugging Face layout as f32: gguf-py's dequantization of what was
      written, with q/k rows un-permuted by numpy.
  tiny-qwen2.gguf, tiny-qwen2.expected.safetensors
      (b) a 2-layer Qwen2 (q/k/v biases, tied embeddings, no permutation, alignment 64, vocabulary
      size only from the token list, an F64 tensor).
  smollm2-rows.safetensors
      (c) from the real SmolLM2-135M-Instruct Q4_1 file: gguf-py's dequantization of chosen rows
      of a few tensors (Q8_0 token_embd, an F32 norm, Q4_1 ffn_down, and Q4_1 attn_q/attn_k
      un-permuted to Hugging Face layout by numpy).
  expected.json
      what each file should read as: config facts, tensor dtypes/shapes, metadata values, the
      chosen SmolLM2 rows.

Random data comes from a seeded generator, so reruns give identical files.
Run: $(tools/reference/venv) tools/reference/make_gguf_fixtures.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]
(default model path: $SFN_SMOLLM2, else .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf; run
scripts/fetch-smollm2 first).
"""
import json
from importlib.metadata import version
import os
import pathlib
import shutil
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T, GGUFValueType as V
from gguf.constants import GGML_QUANT_SIZES
from safetensors.numpy import save_file

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "crates/sfn-checkpoint/tests/fixtures/gguf"

# Byte offsets of the f16 scale fields inside one block, per type (ggml-common.h layouts).
F16_FIELDS = {
    T.Q8_0: [0],
    T.Q4_0: [0],
    T.Q4_1: [0, 2],  # d, m
    T.Q4_K: [0, 2],  # d, dmin
    T.Q5_K: [0, 2],  # d, dmin
    T.Q6_K: [208],   # d comes last
}


def sane_f16(rng, n):
    """Finite f16 scales of both signs over several orders of magnitude (some subnormal)."""
    mag = 10.0 ** rng.uniform(-6, 0, size=n)
    return (rng.choice([-1.0, 1.0], size=n) * mag).astype(np.float16)


def random_blocks(rng, qtype, n_blocks):
    """`n_blocks` blocks of random bytes with finite scale fields: uint8 [n_blocks, type_size]."""
    _, type_size = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    for off in F16_FIELDS[qtype]:
        raw[:, off:off + 2] = sane_f16(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
    return raw


def random_quant_rows(rng, qtype, rows, cols):
    """A [rows, cols] tensor of random blocks, as the uint8 [rows, bytes per row] GGUFWriter takes."""
    block, type_size = GGML_QUANT_SIZES[qtype]
    assert cols % block == 0
    return random_blocks(rng, qtype, rows * cols // block).reshape(rows, cols // block * type_size)


def blocks_fixture(rng, out):
    """(a) Raw blocks and gguf-py's f32 values for each type."""
    (out / "blocks").mkdir(parents=True)
    info = {}
    for qtype, n_blocks in [(T.Q8_0, 8), (T.Q4_0, 8), (T.Q4_1, 8), (T.Q4_K, 3), (T.Q5_K, 3), (T.Q6_K, 3)]:
        raw = random_blocks(rng, qtype, n_blocks)
        values = gguf.quants.dequantize(raw, qtype).astype("<f4").ravel()
        assert np.isfinite(values).all()
        raw.tofile(out / "blocks" / f"{qtype.name}.bin")
        values.tofile(out / "blocks" / f"{qtype.name}.f32")
        info[qtype.name] = {"elements": int(values.size), "bytes": int(raw.size)}
    # Plain halves: random values plus the awkward ones (signed zero, subnormals, extremes).
    special16 = np.array([0.0, -0.0, 2.0**-24, -(2.0**-24), 2.0**-14, 65504.0, -65504.0, 1.0], dtype=np.float16)
    f16 = np.concatenate([special16, (rng.standard_normal(56) * 10.0 ** rng.uniform(-5, 4, 56)).astype(np.float16)])
    specialbf = np.array([0.0, -0.0, 1e-40, -3e38, 3e38, 1.0, -1.5, 2.0**-133], dtype=np.float32)
    bf = np.concatenate([specialbf, (rng.standard_normal(56) * 10.0 ** rng.uniform(-30, 30, 56)).astype(np.float32)])
    for qtype, raw in [(T.F16, f16.view(np.uint8)), (T.BF16, gguf.quants.quantize(bf.reshape(1, -1), T.BF16).ravel())]:
        values = gguf.quants.dequantize(raw.reshape(1, -1), qtype).astype("<f4").ravel()
        assert np.isfinite(values).all()
        raw.tofile(out / "blocks" / f"{qtype.name}.bin")
        values.tofile(out / "blocks" / f"{qtype.name}.f32")
        info[qtype.name] = {"elements": int(values.size), "bytes": int(raw.size)}
    return info


# llama.cpp's convert_hf_to_gguf.py LlamaModel.permute, re-expressed in numpy: within each head,
# Hugging Face row j*hd/2 + i goes to row 2*i + j (the two rotary halves are interleaved).
def llama_permute(w, n_head):
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama_unpermute(w, n_head):
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def hf_to_gguf_name(hf):
    table = {
        "model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output",
        "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
        "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
    }
    stem, param = hf.rsplit(".", 1)
    if stem in table:
        return f"{table[stem]}.{param}"
    _, _, layer, module = stem.split(".", 3)
    return f"blk.{layer}.{table[module]}.{param}"


def write_model(rng, path, arch, meta, tensors, permute_heads, alignment=None):
    """Write a GGUF model. `tensors`: list of (hf_name, hf_shape, qtype). Returns the expected
    Hugging Face-layout f32 tensors and per-tensor facts."""
    w = gguf.GGUFWriter(str(path), arch)
    if alignment is not None:
        w.add_custom_alignment(alignment)
    for add in meta:
        add(w)
    expected, facts = {}, {}
    for hf, shape, qtype in tensors:
        name = hf_to_gguf_name(hf)
        kind = hf.split(".")[-2]
        heads = permute_heads.get(kind)
        x = (rng.standard_normal(shape) * 0.5).astype(np.float32)
        if "norm" in hf:
            x = (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        g = llama_permute(x, heads) if heads else x  # what llama.cpp's converter would store
        if qtype in (T.Q4_K, T.Q5_K, T.Q6_K):
            # gguf-py cannot quantize K-quants; random blocks are as good a test of reading them.
            data = random_quant_rows(rng, qtype, shape[0], shape[1])
            w.add_tensor(name, data, raw_dtype=qtype)
        elif qtype == T.F32:
            data = g
            w.add_tensor(name, data)
        elif qtype == T.F64:
            data = g.astype(np.float64)
            w.add_tensor(name, data)
        elif qtype == T.F16:
            data = gguf.quants.quantize(g, T.F16)
            w.add_tensor(name, data)
        else:
            data = gguf.quants.quantize(g, qtype)
            w.add_tensor(name, data, raw_dtype=qtype)
        if qtype == T.F64:  # gguf-py has no F64 dequantizer; sfn rounds to f32 as numpy does
            stored = data.astype(np.float32)
        else:
            stored = gguf.quants.dequantize(data.reshape(shape[0], -1) if data.ndim > 1 else data, qtype)
        stored = stored.astype(np.float32).reshape(shape)
        hf_values = llama_unpermute(stored, heads) if heads else stored
        if heads:
            assert np.array_equal(llama_unpermute(llama_permute(x, heads), heads), x)
        expected[hf] = np.ascontiguousarray(hf_values, dtype=np.float32)
        facts[hf] = {"gguf_name": name, "dtype": qtype.name, "shape": list(shape), "rope_permuted_heads": heads}
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return expected, facts


def read_back_check(path, facts):
    """Independent sanity check with GGUFReader: names, types and GGUF shapes are as intended."""
    r = gguf.GGUFReader(str(path))
    assert len(r.tensors) == len(facts)
    by = {t.name: t for t in r.tensors}
    for hf, f in facts.items():
        t = by[f["gguf_name"]]
        assert t.tensor_type.name == f["dtype"], (hf, t.tensor_type)
        assert list(t.shape) == list(reversed(f["shape"])), (hf, t.shape)


# Every metadata value type, nested arrays included, with what sfn should read back.
EVERY_TYPE = [
    ("sfn.test.u8", 200, V.UINT8, None),
    ("sfn.test.i8", -100, V.INT8, None),
    ("sfn.test.u16", 60000, V.UINT16, None),
    ("sfn.test.i16", -30000, V.INT16, None),
    ("sfn.test.u32", 4000000000, V.UINT32, None),
    ("sfn.test.i32", -2000000000, V.INT32, None),
    ("sfn.test.u64", 2**60 + 1, V.UINT64, None),
    ("sfn.test.i64", -(2**60) - 1, V.INT64, None),
    ("sfn.test.f32", 1.5, V.FLOAT32, None),
    ("sfn.test.f64", -2.25, V.FLOAT64, None),
    ("sfn.test.bool", True, V.BOOL, None),
    ("sfn.test.string", "h\u00e9llo \u2713", V.STRING, None),
    ("sfn.test.strings", ["a", "", "\u00fc"], V.ARRAY, V.STRING),
    ("sfn.test.f32s", [0.5, -1.0], V.ARRAY, V.FLOAT32),
    ("sfn.test.nested", [[1, 2], [3], [4, 5, 6]], V.ARRAY, None),
]


def typed(v, vtype, sub_type):
    """A metadata value as {"type": GGUF type name, "value": v} ("items" for arrays), element
    types chosen as GGUFWriter chooses them."""
    if vtype == V.ARRAY:
        inner = sub_type or V.get_type(v[0])
        return {"type": "ARRAY", "items": [typed(x, inner, None) for x in v]}
    return {"type": vtype.name, "value": v}


def tiny_llama(rng, out):
    vocab, hidden, inter, layers, heads, kv = 64, 32, 256, 2, 4, 2
    hd = hidden // heads
    meta = [
        lambda w: w.add_block_count(layers), lambda w: w.add_context_length(128),
        lambda w: w.add_embedding_length(hidden), lambda w: w.add_feed_forward_length(inter),
        lambda w: w.add_head_count(heads), lambda w: w.add_head_count_kv(kv),
        lambda w: w.add_layer_norm_rms_eps(1e-5), lambda w: w.add_rope_freq_base(500000.0),
        lambda w: w.add_vocab_size(vocab),
        lambda w: w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR), lambda w: w.add_rope_scaling_factor(2.0),
        lambda w: w.add_bos_token_id(1), lambda w: w.add_eos_token_id(2),
    ] + [lambda w, e=e: w.add_key_value(e[0], e[1], e[2], sub_type=e[3]) for e in EVERY_TYPE]
    # (hf name, hf shape, stored type): each layer uses different types so every path is read.
    types = [
        dict(q=T.Q4_0, k=T.Q4_1, v=T.Q8_0, o=T.F16, gate=T.Q4_1, up=T.Q4_0, down=T.Q4_K),
        dict(q=T.F16, k=T.BF16, v=T.F32, o=T.Q8_0, gate=T.Q8_0, up=T.BF16, down=T.Q6_K),
    ]
    tensors = [("model.embed_tokens.weight", (vocab, hidden), T.Q8_0)]
    for i, ty in enumerate(types):
        p = f"model.layers.{i}."
        tensors += [
            (p + "input_layernorm.weight", (hidden,), T.F32),
            (p + "self_attn.q_proj.weight", (heads * hd, hidden), ty["q"]),
            (p + "self_attn.q_proj.bias", (heads * hd,), T.F32),
            (p + "self_attn.k_proj.weight", (kv * hd, hidden), ty["k"]),
            (p + "self_attn.k_proj.bias", (kv * hd,), T.F32),
            (p + "self_attn.v_proj.weight", (kv * hd, hidden), ty["v"]),
            (p + "self_attn.v_proj.bias", (kv * hd,), T.F32),
            (p + "self_attn.o_proj.weight", (hidden, heads * hd), ty["o"]),
            (p + "self_attn.o_proj.bias", (hidden,), T.F32),
            (p + "post_attention_layernorm.weight", (hidden,), T.F32),
            (p + "mlp.gate_proj.weight", (inter, hidden), ty["gate"]),
            (p + "mlp.up_proj.weight", (inter, hidden), ty["up"]),
            (p + "mlp.down_proj.weight", (hidden, inter), ty["down"]),
        ]
    tensors += [("model.norm.weight", (hidden,), T.F32), ("lm_head.weight", (vocab, hidden), T.F16)]
    path = out / "tiny-llama.gguf"
    expected, facts = write_model(rng, path, "llama", meta, tensors, {"q_proj": heads, "k_proj": kv})
    read_back_check(path, facts)
    save_file(expected, str(out / "tiny-llama.expected.safetensors"))
    return {
        "config": dict(family="llama", num_layers=layers, hidden_size=hidden, intermediate_size=inter,
                       num_heads=heads, num_kv_heads=kv, head_dim=hd, vocab_size=vocab, tied_embeddings=False,
                       attention_bias=True, rms_norm_eps=float(np.float32(1e-5)), rope_theta=500000.0,
                       rope_scaling={"rope_type": "linear", "factor": 2.0}, max_position_embeddings=128,
                       bos_token_id=1, eos_token_ids=[2]),
        "tensors": facts,
        "metadata": {k: typed(v, vt, st) for k, v, vt, st in EVERY_TYPE},
        "alignment": 32,
    }


def tiny_qwen2(rng, out):
    vocab, hidden, inter, layers, heads, kv = 64, 32, 64, 2, 4, 2
    hd = hidden // heads
    tokens = [f"tok{i}" for i in range(vocab)]
    meta = [
        lambda w: w.add_block_count(layers), lambda w: w.add_context_length(256),
        lambda w: w.add_embedding_length(hidden), lambda w: w.add_feed_forward_length(inter),
        lambda w: w.add_head_count(heads), lambda w: w.add_head_count_kv(kv), lambda w: w.add_key_length(hd),
        lambda w: w.add_layer_norm_rms_eps(1e-6), lambda w: w.add_rope_freq_base(1000000.0),
        lambda w: w.add_tokenizer_model("gpt2"), lambda w: w.add_token_list(tokens),
        lambda w: w.add_bos_token_id(5), lambda w: w.add_eos_token_id(6),
    ]
    types = [
        dict(q=T.F16, k=T.BF16, v=T.Q8_0, o=T.Q4_1, gate=T.Q4_0, up=T.F32, down=T.F16),
        dict(q=T.Q8_0, k=T.F32, v=T.F16, o=T.BF16, gate=T.F16, up=T.Q4_1, down=T.Q4_0),
    ]
    tensors = [("model.embed_tokens.weight", (vocab, hidden), T.F16)]
    for i, ty in enumerate(types):
        p = f"model.layers.{i}."
        tensors += [
            (p + "input_layernorm.weight", (hidden,), T.F32),
            (p + "self_attn.q_proj.weight", (heads * hd, hidden), ty["q"]),
            (p + "self_attn.q_proj.bias", (heads * hd,), T.F32),
            (p + "self_attn.k_proj.weight", (kv * hd, hidden), ty["k"]),
            (p + "self_attn.k_proj.bias", (kv * hd,), T.F32),
            (p + "self_attn.v_proj.weight", (kv * hd, hidden), ty["v"]),
            (p + "self_attn.v_proj.bias", (kv * hd,), T.F32),
            (p + "self_attn.o_proj.weight", (hidden, heads * hd), ty["o"]),
            (p + "post_attention_layernorm.weight", (hidden,), T.F32),
            (p + "mlp.gate_proj.weight", (inter, hidden), ty["gate"]),
            (p + "mlp.up_proj.weight", (inter, hidden), ty["up"]),
            (p + "mlp.down_proj.weight", (hidden, inter), ty["down"]),
        ]
    tensors += [("model.norm.weight", (hidden,), T.F64)]
    path = out / "tiny-qwen2.gguf"
    expected, facts = write_model(rng, path, "qwen2", meta, tensors, {}, alignment=64)
    read_back_check(path, facts)
    save_file(expected, str(out / "tiny-qwen2.expected.safetensors"))
    return {
        "config": dict(family="qwen2", num_layers=layers, hidden_size=hidden, intermediate_size=inter,
                       num_heads=heads, num_kv_heads=kv, head_dim=hd, vocab_size=vocab, tied_embeddings=True,
                       attention_bias=True, rms_norm_eps=float(np.float32(1e-6)), rope_theta=1000000.0,
                       rope_scaling=None, max_position_embeddings=256, bos_token_id=5, eos_token_ids=[6]),
        "tensors": facts,
        "alignment": 64,
    }


# (gguf name, Hugging Face name, Hugging Face rows to keep, heads to un-permute by or None).
# q/k rows span both rotary halves of head 0 and the start of head 1, so a reader that forgot to
# un-permute, or un-permuted with the wrong head size, reads different rows.
SMOL_ROWS = [
    ("token_embd.weight", "model.embed_tokens.weight", [0, 1, 2, 1000, 49151], None),
    ("blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight", None, None),
    ("blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight", [0, 1, 575], None),
    ("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight", [0, 1, 2, 31, 32, 33, 63, 64, 575], 9),
    ("blk.0.attn_k.weight", "model.layers.0.self_attn.k_proj.weight", [0, 1, 31, 32, 63, 64, 100, 191], 3),
    ("blk.29.attn_q.weight", "model.layers.29.self_attn.q_proj.weight", [0, 32, 100, 543], 9),
]


def smollm2_rows(out, model_path):
    """(c) Rows of the real SmolLM2 file, dequantized by gguf-py."""
    r = gguf.GGUFReader(str(model_path))
    by = {t.name: t for t in r.tensors}
    arrays, info = {}, {}
    for gname, hf, rows, heads in SMOL_ROWS:
        t = by[gname]
        hf_shape = [int(d) for d in reversed(t.shape)]
        if rows is None:  # a vector: keep it whole, as one row
            values = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(1, -1)
        elif heads:
            full = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(hf_shape)
            values = llama_unpermute(full, heads)[rows]
        else:
            values = gguf.quants.dequantize(t.data[rows], t.tensor_type).astype(np.float32).reshape(len(rows), -1)
        arrays[hf] = np.ascontiguousarray(values)
        info[hf] = {"gguf_name": gname, "dtype": t.tensor_type.name, "shape": hf_shape, "rows": rows}
    save_file(arrays, str(out / "smollm2-rows.safetensors"))
    return {"file_bytes": model_path.stat().st_size, "tensors": info}


def main():
    model_path = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else
                              os.environ.get("SFN_SMOLLM2", ROOT / ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    if not model_path.is_file():
        sys.exit(f"{model_path} not found: run scripts/fetch-smollm2 first")
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    rng = np.random.default_rng(20240601)
    expected = {
        "generator": f"tools/reference/make_gguf_fixtures.py, gguf-py {version('gguf')}, numpy {np.__version__}",
        "seed": 20240601,
        "blocks": blocks_fixture(rng, OUT),
        "tiny-llama": tiny_llama(rng, OUT),
        "tiny-qwen2": tiny_qwen2(rng, OUT),
        "smollm2": smollm2_rows(OUT, model_path),
    }
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
