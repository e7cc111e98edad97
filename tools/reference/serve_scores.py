"""What a server's logprobs must say about SmolLM2, computed by Hugging Face transformers.

For crates/sfn-cli/tests/serve.rs: `sfn serve`'s echo logprobs, and lm-evaluation-harness's
results through `sfn serve`, are compared with these numbers. The model is transformers' Llama run
in float32 on the GGUF's weights dequantized by the `gguf` package (make_model_fixtures.py's
smollm2_from_gguf); the tokenizer is transformers' own GGUF tokenizer converter. Writes
crates/sfn-cli/tests/fixtures/smollm2.scores.json:
  echo       per text: its ids, the log-probability of every token after the first given the ones
             before it, and the 5 most likely ids and their log-probabilities at each of those
             positions
  questions  a small question set (the lm-evaluation-harness test writes it as a JSONL task):
             per question the prompt, its greedy continuation (12 new tokens at most, cut at the
             first newline), and per choice the summed log-probability of " " + choice after the
             prompt, tokenized as lm-evaluation-harness does (whole text encoded, the prompt's
             tokens taken off the front), and whether every one of its tokens is the most likely
Run: $(tools/reference/venv) tools/reference/serve_scores.py
"""
import json
import pathlib

import torch
import transformers
from transformers import AutoTokenizer

from make_model_fixtures import SMOLLM2, smollm2_from_gguf

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "crates/sfn-cli/tests/fixtures/smollm2.scores.json"

ECHO = ["The capital of France is Paris.", "def square(x):\n    return x * x\n"]
QUESTIONS = [
    ("What is the capital of France?", ["Paris", "Berlin", "Rome", "Madrid"], 0),
    ("What is the capital of Germany?", ["Paris", "Berlin", "Rome", "Madrid"], 1),
    ("What is the capital of Italy?", ["Rome", "Italy", "Milan", "Paris"], 0),
    ("What is the capital of Spain?", ["Paris", "Berlin", "Rome", "Madrid"], 3),
    ("What color is the sky on a clear day?", ["blue", "green", "red", "black"], 0),
]
MAX_NEW = 12


def logprobs(model, ids):
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].double()
    return torch.log_softmax(logits, dim=-1)  # [len, vocab]; row t predicts token t + 1


def main():
    tok = AutoTokenizer.from_pretrained(SMOLLM2.parent, gguf_file=SMOLLM2.name)
    model = smollm2_from_gguf()
    enc = lambda text: tok.encode(text, add_special_tokens=False)
    echo = []
    for text in ECHO:
        ids = enc(text)
        lp = logprobs(model, ids)
        top = torch.topk(lp[:-1], 5, dim=-1)
        echo.append({"text": text, "ids": ids,
                     "token_logprobs": [lp[t - 1, ids[t]].item() for t in range(1, len(ids))],
                     "top_ids": top.indices.tolist(), "top_logprobs": top.values.tolist()})
    questions = []
    for question, choices, answer in QUESTIONS:
        prompt = f"Q: {question}\nA:"
        context = enc(prompt)
        out = []
        with torch.no_grad():
            gen = model.generate(torch.tensor([context]), max_new_tokens=MAX_NEW, do_sample=False,
                                 eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)
        greedy = tok.decode(gen[0, len(context):], skip_special_tokens=True).split("\n")[0]
        for choice in choices:
            whole = enc(prompt + " " + choice)
            assert whole[:len(context)] == context
            lp = logprobs(model, whole)
            cont = range(len(context), len(whole))
            out.append({"choice": choice,
                        "loglikelihood": sum(lp[t - 1, whole[t]].item() for t in cont),
                        "is_greedy": all(lp[t - 1].argmax().item() == whole[t] for t in cont)})
        questions.append({"question": question, "choices": choices, "answer": answer, "prompt": prompt,
                          "greedy": greedy, "scores": out})
    doc = {"transformers": transformers.__version__, "torch": torch.__version__,
           "source": "transformers LlamaForCausalLM in float32 on SmolLM2-135M-Instruct Q4_1 dequantized by gguf",
           "echo": echo, "questions": questions}
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print("wrote", OUT, [q["greedy"] for q in questions])


if __name__ == "__main__":
    main()
