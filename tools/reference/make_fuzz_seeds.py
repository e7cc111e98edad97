"""Seed corpora for sfn's fuzz targets (fuzz/corpus/<target>/), from real files and malformed ones.

Real: the committed checkpoint fixtures (safetensors shards, config.json files, the tiny GGUFs),
a small GGUF written with gguf-py (llama.cpp's own package) that carries a byte-level BPE
vocabulary, merges and a chat template, the lab's tokenizer (fuzz/corpus/tokenizer/lab-bpe.json,
trained by `sfn lab`, committed), the example task and study files, worked traces.
Malformed: files that lie about their sizes (counts, lengths, shapes), truncated headers, wrong
types; the same families tests/lying_sizes.rs and the GGUF reader tests check by hand.

Run: $(tools/reference/venv) tools/reference/make_fuzz_seeds.py   (rewrites the seed files it
names; files found by fuzzing and added to the corpora later are left alone)
"""
import json
import pathlib
import shutil
import struct

import numpy as np
import gguf

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = ROOT / "fuzz" / "corpus"
FIX = ROOT / "crates"


def put(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


def copy(target, name, src):
    put(target, name, (FIX / src).read_bytes())


def st(header):
    h = header.encode() if isinstance(header, str) else header
    return struct.pack("<Q", len(h)) + h + bytes(16)


def gguf_raw(n_tensors, n_kv, body=b""):
    return b"GGUF" + struct.pack("<IQQ", 3, n_tensors, n_kv) + body + bytes(48)


def gstr(s):
    return struct.pack("<Q", len(s)) + s.encode()


def vocab_gguf(path, tok_json, template):
    """A one-layer Qwen2 with the lab tokenizer's vocabulary and merges."""
    model = tok_json["model"]
    vocab = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    tokens = [t for t, _ in vocab]
    for added in tok_json.get("added_tokens", []):
        if added["id"] >= len(tokens):
            tokens += [f"<unused{i}>" for i in range(len(tokens), added["id"])] + [added["content"]]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    hidden, inter, heads = 16, 32, 2
    w = gguf.GGUFWriter(str(path), "qwen2")
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(inter)
    w.add_head_count(heads)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(10000.0)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types([3 if t.startswith("<|") else 1 for t in tokens])
    w.add_token_merges(merges)
    w.add_eos_token_id(tokens.index("<|im_end|>"))
    w.add_chat_template(template)
    rng = np.random.default_rng(0)
    hd = hidden // heads
    shapes = {
        "token_embd.weight": (len(tokens), hidden),
        "blk.0.attn_norm.weight": (hidden,),
        "blk.0.attn_q.weight": (hidden, hidden),
        "blk.0.attn_k.weight": (hd, hidden),
        "blk.0.attn_v.weight": (hd, hidden),
        "blk.0.attn_output.weight": (hidden, hidden),
        "blk.0.ffn_norm.weight": (hidden,),
        "blk.0.ffn_gate.weight": (inter, hidden),
        "blk.0.ffn_up.weight": (inter, hidden),
        "blk.0.ffn_down.weight": (hidden, inter),
        "output_norm.weight": (hidden,),
    }
    for name, shape in shapes.items():
        x = rng.standard_normal(shape).astype(np.float32)
        if len(shape) == 2 and shape[1] % 32 == 0 and name != "token_embd.weight":
            w.add_tensor(name, gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q8_0),
                         raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        elif len(shape) == 2:
            w.add_tensor(name, x.astype(np.float16))
        else:
            w.add_tensor(name, x)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    tok_dir = CORPUS / "tokenizer"
    tok_json = json.loads((tok_dir / "lab-bpe.json").read_text())
    tok_config = json.loads((tok_dir / "lab-config.json").read_text())
    chatml = tok_config["chat_template"]

    # Checkpoints.
    copy("safetensors", "qwen2-shard-bf16.safetensors",
         "sfn-checkpoint/tests/fixtures/hf/qwen2-bias-tied-bf16-sharded/model-00004-of-00009.safetensors")
    copy("safetensors", "adamw-f32-metadata.safetensors", "sfn-train/tests/fixtures/adamw.reference.safetensors")
    copy("safetensors", "logits.safetensors", "sfn-checkpoint/tests/fixtures/edit/take-o-layers1-3.logits.safetensors")
    huge = 1 << 60
    put("safetensors", "lying-header-length.safetensors", struct.pack("<Q", huge) + b"{}")
    put("safetensors", "lying-shape.safetensors",
        st('{"w":{"dtype":"F32","shape":[2147483648,2147483648],"data_offsets":[0,16]}}'))
    put("safetensors", "offsets-past-end.safetensors", st('{"w":{"dtype":"F16","shape":[4],"data_offsets":[0,64]}}'))
    put("safetensors", "overlapping.safetensors",
        st('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}'))
    put("safetensors", "metadata-not-string.safetensors", st('{"__metadata__":{"format":1}}'))
    put("safetensors", "unknown-dtype.safetensors", st('{"w":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}}'))
    put("safetensors", "truncated.safetensors", struct.pack("<Q", 40) + b'{"w":{"dtype"')

    index = json.loads((FIX / "sfn-scope/tests/fixtures/delta/a-qwen2-bf16-sharded/model.safetensors.index.json").read_text())
    put("safetensors_index", "real-index.json", json.dumps(index))
    put("safetensors_index", "matching.json", json.dumps({"metadata": {"total_size": 144}, "weight_map": {
        "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
        "model.norm.weight": "model-00002-of-00002.safetensors"}}))
    put("safetensors_index", "wrong-shard.json", json.dumps({"weight_map": {
        "model.embed_tokens.weight": "model-00002-of-00002.safetensors"}}))
    put("safetensors_index", "missing-shard.json", json.dumps({"weight_map": {"x": "model-00009-of-00009.safetensors"}}))

    copy("gguf", "tiny-qwen2.gguf", "sfn-checkpoint/tests/fixtures/gguf/tiny-qwen2.gguf")
    copy("gguf", "tiny-llama.gguf", "sfn-checkpoint/tests/fixtures/gguf/tiny-llama.gguf")
    vocab_gguf(CORPUS / "gguf" / "vocab-qwen2.gguf", tok_json, chatml)
    put("gguf", "lying-tensor-count.gguf", gguf_raw(10**12, 0))
    put("gguf", "lying-kv-count.gguf", gguf_raw(0, 10**12))
    put("gguf", "lying-string.gguf", gguf_raw(0, 1, gstr("name") + struct.pack("<IQ", 8, huge)))
    put("gguf", "lying-array.gguf", gguf_raw(0, 1, gstr("arr.") + struct.pack("<IIQ", 9, 4, huge)))
    put("gguf", "lying-shape.gguf", gguf_raw(1, 0, gstr("tensor") + struct.pack("<IQQIQ", 2, 1 << 30, 1 << 30, 0, 0)))
    put("gguf", "bad-version.gguf", b"GGUF" + struct.pack("<IQQ", 99, 0, 0))
    put("gguf", "bad-type.gguf", gguf_raw(1, 0, gstr("w") + struct.pack("<IQIQ", 1, 32, 77, 0)))

    # Configs.
    for name, src in [
        ("qwen2.json", "sfn-checkpoint/tests/fixtures/hf/qwen2-bias-tied-bf16-sharded/config.json"),
        ("qwen3.json", "sfn-checkpoint/tests/fixtures/hf/qwen3-qknorm-f16/config.json"),
        ("llama-gqa.json", "sfn-checkpoint/tests/fixtures/hf/llama-gqa-untied-f32/config.json"),
        ("llama3-rope.json", "sfn-model/tests/fixtures/llama3-rope-f32/config.json"),
        ("mistral-window.json", "sfn-train/tests/fixtures/mistral-window/config.json"),
        ("llama-linear-rope.json", "sfn-train/tests/fixtures/llama-untied-linrope/config.json"),
    ]:
        copy("config", name, src)
    put("config", "heads-do-not-divide.json", json.dumps({"model_type": "llama", "hidden_size": 10,
        "num_attention_heads": 3, "num_hidden_layers": 1, "intermediate_size": 4, "vocab_size": 8}))
    put("config", "huge-vocab.json", json.dumps({"model_type": "qwen2", "hidden_size": 8, "num_attention_heads": 2,
        "num_hidden_layers": 1, "intermediate_size": 4, "vocab_size": 1 << 62}))

    # Tokenizers: the lab tokenizer (tokenizer.json NUL tokenizer_config.json).
    put("tokenizer", "lab.json-and-config",
        (tok_dir / "lab-bpe.json").read_bytes() + b"\0" + (tok_dir / "lab-config.json").read_bytes())
    put("tokenizer", "wordlevel.json", json.dumps({"version": "1.0", "model": {"type": "WordLevel",
        "vocab": {"a": 0, "b": 1, "[UNK]": 2}, "unk_token": "[UNK]"}, "added_tokens": []}))

    # Chat templates: template NUL user message NUL system prompt.
    put("chat_template", "chatml", chatml + "\0What is 2+3?\0You are helpful.")
    put("chat_template", "llama3",
        "{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + "
        "m['content'] | trim + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}"
        "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}\0Hi\0")
    put("chat_template", "raises",
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system') }}{% endif %}"
        "{% for m in messages %}{{ m.content.strip() }}{% endfor %}\0x\0sys")
    put("chat_template", "loops", "{% for i in range(100) %}{% for m in messages %}{{ i }}{{ m.content|upper }}"
        "{% endfor %}{% endfor %}{{ strftime_now('%d %b %Y') }}\0abc\0")

    # Selectors: selector NUL --layers ranges.
    for i, s in enumerate(["o_proj", "attn,mlp", "layers[0..4].q_proj.weight,!layers[2].q_proj",
                           "norms,embed,lm_head", "re:model\\.layers\\.(1|2)\\..*", "!o_proj\x005..30",
                           "qkv.bias\x000,3..", "layers[..2,5].all", "layers[3..1].o_proj", "q_proj,re:.*,k"]):
        put("selector", f"seed-{i}", s)

    # Task files.
    put("task_file", "arithmetic.jsonl", "\n".join((ROOT / "examples/tasks/arithmetic.jsonl").read_text().splitlines()[:4]) + "\n")
    put("task_file", "conversation.jsonl", "\n".join((ROOT / "examples/tasks/conversation.jsonl").read_text().splitlines()[:3]) + "\n")
    aime = (FIX / "sfn-eval/tests/fixtures/aime2024.jsonl").read_text().splitlines()[:2]
    put("task_file", "aime.jsonl", "\n".join(aime) + "\n")
    put("task_file", "bad.jsonl", '{"id": 1, "prompt": "a"}\n{"id": 1, "prompt": "b"}\n[1,2]\n{"question": 3}\n')

    # Training data: each layout, and the errors.
    put("train_data", "prompt-completion.jsonl",
        '{"prompt": "What is 12 + 30?", "completion": "12 + 30 = 42. \\\\boxed{42}"}\n'
        '{"prompt": "What is 7 - 5?", "completion": "7 - 5 = 2. \\\\boxed{2}"}\n')
    put("train_data", "messages.jsonl", json.dumps({"messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"}]}) + "\n")
    put("train_data", "tokens.jsonl", '{"input_ids": [1, 2, 3, 4], "labels": [-100, -100, 3, 4]}\n')
    put("train_data", "bad.jsonl", '{"input_ids": [1, 2], "labels": [1]}\n{"input_ids": [99999]}\n{"prompt": 1}\n')

    # Study files.
    # The study target makes the files these name (A, B, the task and data files) beside it.
    paths = {"../sfn-lab/pair/A": "A", "../sfn-lab/pair/B": "B", "../sfn-lab/pair/traces.jsonl": "train.jsonl",
             "../.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf": "A",
             "../sfn-lab/pair/eval-reasoning.jsonl": "tasks.jsonl", "../sfn-lab/pair/eval-conversation.jsonl": "tasks.jsonl",
             "tasks/arithmetic.jsonl": "tasks.jsonl", "tasks/conversation.jsonl": "tasks.jsonl"}
    for name in ["lab-study.toml", "smollm2-study.toml"]:
        text = (ROOT / "examples" / name).read_text()
        for a, b in paths.items():
            text = text.replace(f'"{a}"', f'"{b}"')
        put("study", name, text)
    put("study", "bad.toml", '[study]\nname = "x"\n[[delta]]\na = 1\nunknown = true\n')

    # Answers: model output NUL gold answer.
    for i, s in enumerate(["So the answer is \\boxed{42}.\x0042", "\\boxed{\\frac{1}{2}}\x000.5",
                           "It is 1,000 apples.\x001000", "\\boxed{\\text{(A)}}\x00A",
                           "x = \\dfrac{3}{4}$ and then 7/8\x00\\frac78", "\\boxed{\\{1,2\\}}\x00",
                           "#### 72\x00The total is 72 #### 72", "1e400 or 99999999999999999999999999999\x001e400"]):
        put("answer", f"seed-{i}", s)


if __name__ == "__main__":
    main()
