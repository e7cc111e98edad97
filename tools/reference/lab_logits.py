"""Do the lab's checkpoints load in Hugging Face transformers, with the same logits as in sfn?

For A and B of a lab pair (default: the quick pair of seed 0, built by `sfn lab --quick` into the
cache; give another pair directory as the first argument), and for a freeze run's output when a
lab directory is given as the second argument: transformers loads the directory with
AutoModelForCausalLM and AutoTokenizer; the tokenizer gives the same ids as sfn's; and the logits
of a chat prompt equal those `sfn trace` computes, to float32 rounding.
Prints max |diff| per model and exits non-zero on a mismatch.
Run: $(tools/reference/venv) tools/reference/lab_logits.py [PAIR_DIR [LAB_DIR]]
"""
import glob
import os
import pathlib
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = pathlib.Path(__file__).resolve().parents[2]
SFN = ROOT / "target/release/sfn"
PROMPT = [{"role": "user", "content": "Mia has 12 apples. She finds 7 more apples. How many apples does Mia have now?"}]


def check(model_dir: pathlib.Path) -> bool:
    tok = AutoTokenizer.from_pretrained(model_dir)
    text = tok.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    with torch.no_grad():
        ref = model(torch.tensor([ids])).logits[0]
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "trace.safetensors"
        subprocess.run([str(SFN), "trace", str(model_dir), "--prompt", PROMPT[0]["content"], "--chat", "-o", str(out)],
                       check=True, capture_output=True)
        t = load_file(str(out))
    same_ids = t["input_ids"].tolist() == ids
    d = (t["logits"] - ref).abs().max().item()
    ok = same_ids and d < 1e-4
    print(f"{'ok  ' if ok else 'FAIL'} {model_dir}: {type(model).__name__}, {len(ids)} tokens "
          f"({'same ids' if same_ids else 'DIFFERENT ids'}), logits max |diff| {d:.2e} (max |logit| {ref.abs().max().item():.1f})")
    return ok


def main():
    cache = pathlib.Path(os.environ.get("SFN_CACHE_DIR", pathlib.Path.home() / ".cache/sfn")) / "lab"
    pair = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else sorted(cache.glob("*-seed0"))[0]
    dirs = [pair / "A", pair / "B"]
    if len(sys.argv) > 2:
        dirs += [pathlib.Path(d) for d in sorted(glob.glob(f"{sys.argv[2]}/freeze/F*")) if pathlib.Path(d, "config.json").exists()]
    results = [check(d) for d in dirs]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
