"""Logits of a merged model as Hugging Face transformers computes them from sfn's written checkpoint.

A is the f32 Llama fixture (make_hf_fixtures.py), B its noisy copy (make_edit_fixtures.py). The
script:
  1. runs `sfn merge A B --take o_proj --layers 1..3 -o TMP` (the release binary; build it first),
  2. loads TMP with transformers and runs it in float32 on fixed token ids,
  3. checks that TMP's tensors equal the numpy merge of make_edit_fixtures.py
     (take-o-layers1-3.safetensors) bit for bit, and that transformers gives the same logits on
     that independent merge,
  4. writes crates/sfn-checkpoint/tests/fixtures/edit/take-o-layers1-3.logits.safetensors:
       input_ids [tokens] int64, logits [tokens, vocab] f32.
sfn-model's test `merged_view_in_memory_gives_the_logits_transformers_gives_the_written_merge`
runs the same merge as an in-memory view and compares.
Run: cargo build --release -p sfn-cli && $(tools/reference/venv) tools/reference/merged_logits.py
"""
import pathlib
import subprocess
import tempfile

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

ROOT = pathlib.Path(__file__).resolve().parents[2]
A_DIR = ROOT / "crates/sfn-checkpoint/tests/fixtures/hf/llama-gqa-untied-f32"
EDIT = ROOT / "crates/sfn-checkpoint/tests/fixtures/edit"
B_DIR = EDIT / "llama-b-f32"
SFN = ROOT / "target/release/sfn"
IDS = [1, 5, 17, 42, 3, 88, 23, 9, 64, 31, 7, 50, 17]


def logits_of(model_dir):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor([IDS])).logits[0].contiguous()


def main():
    with tempfile.TemporaryDirectory() as tmp:
        merged = pathlib.Path(tmp) / "merged"
        subprocess.run([str(SFN), "merge", str(A_DIR), str(B_DIR), "--take", "o_proj", "--layers", "1..3",
                        "-o", str(merged)], check=True)
        written = load_file(merged / "model.safetensors")
        expected = load_file(EDIT / "take-o-layers1-3.safetensors")
        assert written.keys() == expected.keys(), "tensor names differ"
        for k in expected:
            assert torch.equal(written[k], expected[k]), f"{k} differs from the numpy merge"
        logits = logits_of(merged)

        # The independent (numpy) merge, loaded into A's architecture, gives the same logits.
        model = AutoModelForCausalLM.from_pretrained(A_DIR, dtype=torch.float32).eval()
        model.load_state_dict(expected, strict=False)
        with torch.no_grad():
            independent = model(torch.tensor([IDS])).logits[0]
        print("max |transformers(sfn merge) - transformers(numpy merge)| =",
              (logits - independent).abs().max().item())
        assert torch.equal(logits, independent)

    out = EDIT / "take-o-layers1-3.logits.safetensors"
    save_file({"input_ids": torch.tensor(IDS, dtype=torch.int64), "logits": logits}, out)
    print("wrote", out, tuple(logits.shape))


if __name__ == "__main__":
    main()
