//! One function per fuzz target. Each returns for any input, whether the parser accepted it (the
//! replay test checks every target's seeds reach past the parser); assertions are the properties
//! that must hold for accepted inputs.

use crate::files::{parts, with_files};
use sfn_checkpoint::writer::{write_checkpoint, write_tensor_as, TensorSpec, WriteOptions};
use sfn_checkpoint::{Checkpoint, ModelConfig};
use std::path::Path;

pub type Target = fn(&[u8]) -> bool;

/// Every target, by the name of its file in `fuzz/fuzz_targets/` and its corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("safetensors", safetensors),
    ("safetensors_index", safetensors_index),
    ("gguf", gguf),
    ("config", config),
    ("tokenizer", tokenizer),
    ("chat_template", chat_template),
    ("selector", selector),
    ("task_file", task_file),
    ("train_data", train_data),
    ("study", study),
    ("answer", answer),
    ("serve_request", serve_request),
];

/// Tensor names of a small Llama-style model, for the selector target's matching checks.
const NAMES: &[&str] = &[
    "model.embed_tokens.weight",
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.0.self_attn.q_proj.bias",
    "model.layers.0.self_attn.o_proj.weight",
    "model.layers.0.input_layernorm.weight",
    "model.layers.1.mlp.gate_proj.weight",
    "model.layers.1.mlp.down_proj.weight",
    "model.layers.1.post_attention_layernorm.weight",
    "model.layers.12.self_attn.k_norm.weight",
    "model.norm.weight",
    "lm_head.weight",
    "model.layers.3.rotary_emb.inv_freq",
];

/// Read every tensor of an opened checkpoint as f32: exercises the data offsets, dtypes and (for
/// GGUF) the quantized block decoders on whatever the header claims.
fn read_all(ck: &Checkpoint) {
    for t in ck.tensors() {
        if let Ok(v) = ck.read_f32(t) {
            assert_eq!(v.len(), t.numel(), "{}: read_f32 returned the wrong length", t.name);
        }
    }
}

/// A safetensors file: header, dtypes, shapes, offsets. Accepted files are written back with
/// sfn's writer and must read back with the same tensors and the same bytes.
fn safetensors(data: &[u8]) -> bool {
    with_files(&[("in.safetensors", data)], |dir| {
        let Ok(ck) = Checkpoint::open(dir.join("in.safetensors")) else { return false };
        read_all(&ck);
        let specs = TensorSpec::all_of(&ck, None);
        let out = dir.join("out");
        let written = write_checkpoint(&out, &specs, &WriteOptions::default(), |spec, w| {
            write_tensor_as(&ck, ck.tensor(&spec.name)?, spec.dtype, w)
        });
        if written.is_err() {
            // The writer refuses some things a reader accepts (an empty checkpoint); not a finding.
            return true;
        }
        let back = Checkpoint::open(out.join("model.safetensors")).expect("a written checkpoint must read back");
        assert_eq!(back.tensors().len(), ck.tensors().len());
        for t in ck.tensors() {
            let b = back.tensor(&t.name).expect("tensor lost in the round trip");
            assert_eq!((b.dtype, &b.shape), (t.dtype, &t.shape), "{}: dtype or shape changed", t.name);
            assert_eq!(back.raw_bytes(b), ck.raw_bytes(t), "{}: bytes changed", t.name);
        }
        true
    })
}

/// A sharded checkpoint directory's `model.safetensors.index.json`, beside a valid config and two
/// valid shards (the index must agree with them).
fn safetensors_index(data: &[u8]) -> bool {
    let config = br#"{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":4,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1,"vocab_size":8,"rms_norm_eps":1e-6,"max_position_embeddings":16}"#;
    let shard1 = shard("model.embed_tokens.weight", &[8, 4]);
    let shard2 = shard("model.norm.weight", &[4]);
    with_files(
        &[
            ("config.json", config),
            ("model.safetensors.index.json", data),
            ("model-00001-of-00002.safetensors", &shard1),
            ("model-00002-of-00002.safetensors", &shard2),
        ],
        |dir| {
            let Ok(ck) = Checkpoint::open(dir) else { return false };
            read_all(&ck);
            true
        },
    )
}

/// A one-tensor f32 safetensors file of zeros.
fn shard(name: &str, shape: &[usize]) -> Vec<u8> {
    let n: usize = shape.iter().product();
    let header = format!(r#"{{"{name}":{{"dtype":"F32","shape":{shape:?},"data_offsets":[0,{}]}}}}"#, 4 * n);
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.resize(out.len() + 4 * n, 0);
    out
}

/// A GGUF file: header, metadata, tensor table, quantized blocks; then the model config and the
/// tokenizer (vocabulary, merges, special tokens) and chat template it carries.
fn gguf(data: &[u8]) -> bool {
    with_files(&[("in.gguf", data)], |dir| {
        let Ok(ck) = Checkpoint::open(dir.join("in.gguf")) else { return false };
        read_all(&ck);
        if let Some(Ok(tok)) = ck.gguf_metadata.as_ref().map(sfn_model::Tokenizer::from_gguf) {
            use_tokenizer(&tok);
        }
        true
    })
}

/// config.json: accepted configs print back (to_hf_json) to one that reads the same (but for
/// torch_dtype, which the writer sets from the tensors it writes).
fn config(data: &[u8]) -> bool {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else { return false };
    let Ok(mut cfg) = ModelConfig::from_json(&json) else { return false };
    cfg.torch_dtype = None;
    let again = ModelConfig::from_json(&cfg.to_hf_json()).expect("a config sfn wrote must read back");
    assert_eq!(format!("{again:?}"), format!("{cfg:?}"), "config changed in the round trip");
    true
}

/// tokenizer.json (+ tokenizer_config.json after a NUL): load, then encode, decode and chat.
fn tokenizer(data: &[u8]) -> bool {
    let files: Vec<(&str, &[u8])> = match data.iter().position(|&b| b == 0) {
        Some(i) => vec![("tokenizer.json", &data[..i]), ("tokenizer_config.json", &data[i + 1..])],
        None => vec![("tokenizer.json", data)],
    };
    with_files(&files, |dir: &Path| {
        let Ok(tok) = sfn_model::Tokenizer::from_hf_dir(dir) else { return false };
        use_tokenizer(&tok);
        true
    })
}

fn use_tokenizer(tok: &sfn_model::Tokenizer) {
    let text = "What is 12 + 30? Answer: \\boxed{42} — ünïcode ✓";
    if let Ok(ids) = tok.encode(text, true) {
        let _ = tok.decode(&ids, false);
    }
    for &id in tok.eos_ids() {
        let _ = tok.id_to_token(id);
    }
    if let Ok(t) = sfn_model::ChatTemplate::for_tokenizer(tok) {
        let _ = t.render(&[sfn_model::Message::user(text)], true);
    }
}

/// A chat template, then a message and a system prompt: compile and render.
fn chat_template(data: &[u8]) -> bool {
    let p = parts(data, 3);
    let Ok(t) = sfn_model::ChatTemplate::new(&p[0], Some("<s>"), Some("</s>")) else { return false };
    let mut messages = vec![sfn_model::Message::user(&p[1])];
    if !p[2].is_empty() {
        messages.insert(0, sfn_model::Message::system(&p[2]));
        messages.push(sfn_model::Message::assistant(&p[2]));
    }
    t.render(&messages, true).is_ok()
}

/// The selector grammar (and `--layers` ranges after a NUL): an accepted selector prints in a
/// canonical form that parses to a selector printing the same and matching the same names.
fn selector(data: &[u8]) -> bool {
    let p = parts(data, 2);
    let Ok(mut sel) = sfn_checkpoint::selector::Selector::parse(&p[0]) else { return false };
    if !p[1].is_empty() {
        match sel.with_layers(&p[1]) {
            Ok(s) => sel = s,
            Err(_) => return false,
        }
    }
    let printed = sel.to_string();
    let again = sfn_checkpoint::selector::Selector::parse(&printed)
        .unwrap_or_else(|e| panic!("{:?} printed as {printed:?}, which does not parse: {e}", p[0]));
    assert_eq!(again.to_string(), printed, "canonical form is not stable");
    for name in NAMES {
        assert_eq!(sel.matches(name), again.matches(name), "{printed}: {name} matched differently after printing");
    }
    true
}

/// A JSONL task file, read as `sfn eval --task` reads it.
fn task_file(data: &[u8]) -> bool {
    with_files(&[("tasks.jsonl", data)], |dir| {
        sfn_eval::TaskSet::load(&dir.join("tasks.jsonl"), &sfn_eval::LoadOptions::default()).is_ok()
    })
}

/// A JSONL training file, read and tokenized as `sfn freeze --data` does (a byte-level tokenizer
/// with a chat template, both modes).
fn train_data(data: &[u8]) -> bool {
    thread_local! {
        static TOK: sfn_model::Tokenizer = with_files(
            &[("tokenizer.json", include_bytes!("../../../fuzz/corpus/tokenizer/lab-bpe.json")),
              ("tokenizer_config.json", include_bytes!("../../../fuzz/corpus/tokenizer/lab-config.json"))],
            |dir| sfn_model::Tokenizer::from_hf_dir(dir).expect("the lab tokenizer loads"),
        );
    }
    TOK.with(|tok| {
        with_files(&[("train.jsonl", data)], |dir| {
            let mut accepted = false;
            for mode in [sfn_eval::PromptMode::Generate, sfn_eval::PromptMode::Chat] {
                let opts = sfn_train::data::DataOptions {
                    prompt: sfn_eval::PromptConfig { mode, ..Default::default() },
                    max_len: 64,
                    truncate: mode == sfn_eval::PromptMode::Chat,
                    vocab_size: tok.vocab_size(),
                };
                if let Ok(ds) = sfn_train::data::load(&dir.join("train.jsonl"), tok, &opts) {
                    for e in &ds.examples {
                        assert!(e.tokens.len() <= 64, "an example longer than max_len was accepted");
                        assert_eq!(e.tokens.len(), e.labels.len());
                    }
                    accepted = true;
                }
            }
            accepted
        })
    })
}

/// A study file (TOML): parse and check every section as `sfn study` does before it runs any,
/// beside the files the seeds name (placeholders: the check only asks that they exist).
fn study(data: &[u8]) -> bool {
    let Ok(text) = String::from_utf8(data.to_vec()) else { return false };
    let names = ["A", "B", "tasks.jsonl", "train.jsonl", "sets.toml"];
    with_files(&names.map(|n| (n, &b""[..])), |dir| sfn_study::Study::parse(&dir.join("study.toml"), text).is_ok())
}

/// Answer extraction, normalisation and comparison on a model output (and a gold answer after a
/// NUL): an extracted answer equals itself, grading is deterministic.
fn answer(data: &[u8]) -> bool {
    use sfn_eval::answer::{answers_match, extract_answer, grade_sample, normalize_answer};
    let p = parts(data, 2);
    let gold = (!p[1].is_empty()).then_some(p[1].as_str());
    let g = grade_sample(&p[0], gold, false);
    assert_eq!(g, grade_sample(&p[0], gold, false));
    let _ = normalize_answer(&p[1]);
    let Some(e) = extract_answer(&p[0]) else { return false };
    assert!(answers_match(&e.text, &e.text), "extracted answer {:?} does not equal itself", e.text);
    true
}

/// A request body of `sfn serve` (a NUL-prefixed body is a chat request): parsed and bounded
/// before anything runs; an accepted request stays within the limits.
fn serve_request(data: &[u8]) -> bool {
    use sfn_serve::api::{parse, parse_detokenize, parse_tokenize, Input, Limits, MAX_LOGPROBS};
    let (chat, body) = match data.split_first() {
        Some((0, rest)) => (true, rest),
        _ => (false, data),
    };
    let limits =
        Limits { max_body_bytes: 1 << 16, max_prompts: 8, max_tokens: 256, max_prompt_ids: 64, vocab_size: 512 };
    // The tokenizer endpoints' bodies share the parser's helpers.
    let tokenize = parse_tokenize(body, &limits).is_ok();
    let detokenize = parse_detokenize(body, &limits).map(|(_, ids)| {
        assert!(ids.len() <= limits.max_prompt_ids && ids.iter().all(|&i| (i as usize) < limits.vocab_size));
    });
    let Ok(req) = parse(body, chat, &limits) else { return tokenize || detokenize.is_ok() };
    assert!((1..=limits.max_tokens).contains(&req.max_tokens));
    assert!(req.logprobs.is_none_or(|n| n <= MAX_LOGPROBS) && !(req.stream && req.logprobs.is_some()));
    assert!(!req.inputs.is_empty() && req.inputs.len() <= limits.max_prompts.max(1));
    for input in &req.inputs {
        if let Input::Ids(ids) = input {
            assert!(ids.len() <= limits.max_prompt_ids && ids.iter().all(|&i| (i as usize) < limits.vocab_size));
        }
    }
    true
}
