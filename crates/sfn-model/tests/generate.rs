//! KV cache and generation on the tiny fixtures: cached decoding gives the logits of a full
//! recompute, batches give what single prompts give, stops and sampling behave, hooks apply while
//! generating. Text features (stop strings, streaming) use a tiny byte-level tokenizer built the
//! way GGUF tokenizers are.

mod common;

use common::*;
use sfn_checkpoint::edit::{EditPlan, EditView};
use sfn_checkpoint::gguf::Value;
use sfn_model::{generate, Event, GenerateOptions, Hooks, LoadOptions, Logits, Model, Sampling, StopReason, Tokenizer};
use std::collections::BTreeMap;

const MODELS: [&str; 4] =
    ["qwen2-bias-tied-bf16-sharded", "llama-gqa-untied-f32", "qwen3-qknorm-f16", "llama3-rope-f32"];

#[test]
fn kv_cached_decoding_gives_the_logits_of_a_full_recompute() {
    let prompt = vec![1u32, 5, 17, 42, 3];
    let fed = [88u32, 23, 9, 64, 31, 7, 50, 17, 2, 60];
    for name in MODELS {
        let ck = open_fixture(name);
        let model = load(&ck);
        let mut cache = model.new_cache(1, 32).unwrap();
        let pre =
            model.prefill(&mut cache, &[prompt.clone()], &mut Hooks::new(), Logits::All).unwrap().squeeze(0).unwrap();
        let mut worst = max_abs_diff(&pre, &model.forward(&prompt, &mut Hooks::new()).unwrap());
        let mut seq = prompt.clone();
        // One token at a time, then a chunk of three.
        for &t in &fed[..7] {
            seq.push(t);
            let step =
                model.extend(&mut cache, &[vec![t]], &mut Hooks::new(), Logits::Last).unwrap().squeeze(0).unwrap();
            let full = model.forward(&seq, &mut Hooks::new()).unwrap();
            worst = worst.max(max_abs_diff(&step, &full.get(seq.len() - 1).unwrap()));
        }
        let chunk = fed[7..].to_vec();
        seq.extend_from_slice(&chunk);
        let step =
            model.extend(&mut cache, &[chunk.clone()], &mut Hooks::new(), Logits::All).unwrap().squeeze(0).unwrap();
        let full = model.forward(&seq, &mut Hooks::new()).unwrap();
        worst = worst.max(max_abs_diff(&step, &full.narrow(0, seq.len() - 3, 3).unwrap()));
        assert_eq!(cache.len(), seq.len());
        println!("{name}: cached vs recomputed logits, max |diff| = {worst:e}");
        assert!(worst <= 1e-5, "{name}: {worst}");
    }
}

#[test]
fn the_cache_refuses_to_overflow() {
    let ck = open_fixture("llama-gqa-untied-f32");
    let model = load(&ck);
    let mut cache = model.new_cache(1, 4).unwrap();
    model.prefill(&mut cache, &[vec![1, 2, 3]], &mut Hooks::new(), Logits::Last).unwrap();
    model.extend(&mut cache, &[vec![4]], &mut Hooks::new(), Logits::Last).unwrap();
    let err = model.extend(&mut cache, &[vec![5]], &mut Hooks::new(), Logits::Last).unwrap_err();
    assert!(err.to_string().contains("KV cache holds 4"), "{err}");
    let err = model.prefill(&mut cache, &[vec![1]], &mut Hooks::new(), Logits::Last).unwrap_err();
    assert!(err.to_string().contains("empty cache"), "{err}");
    cache.reset();
    model.prefill(&mut cache, &[vec![1]], &mut Hooks::new(), Logits::Last).unwrap();
}

fn greedy(max: usize) -> GenerateOptions {
    GenerateOptions { max_new_tokens: max, ..Default::default() }
}

/// Greedy continuation by full recompute: the definition generation must match.
fn greedy_by_recompute(model: &Model, prompt: &[u32], n: usize) -> Vec<u32> {
    let mut seq = prompt.to_vec();
    for _ in 0..n {
        let l = model.forward(&seq, &mut Hooks::new()).unwrap();
        let last: Vec<f32> = l.get(seq.len() - 1).unwrap().to_vec1().unwrap();
        seq.push(sfn_model::generate::argmax(&last));
    }
    seq[prompt.len()..].to_vec()
}

#[test]
fn greedy_generation_equals_argmax_of_full_recomputes_and_batches_equal_single_prompts() {
    for name in MODELS {
        let ck = open_fixture(name);
        let model = load(&ck);
        let prompts = vec![vec![1u32, 5, 17, 42, 3, 88], vec![64, 31], vec![7, 50, 17, 9]];
        let batch = generate(&model, None, &prompts, &greedy(12), &mut Hooks::new(), &mut |_, _| {}).unwrap();
        for (p, g) in prompts.iter().zip(&batch) {
            assert_eq!(g.stop, StopReason::MaxNewTokens);
            assert_eq!(g.tokens, greedy_by_recompute(&model, p, 12), "{name}: prompt {p:?}");
            let single = generate(&model, None, &[p.clone()], &greedy(12), &mut Hooks::new(), &mut |_, _| {}).unwrap();
            assert_eq!(single[0].tokens, g.tokens, "{name}: batch vs single");
        }
    }
}

#[test]
fn stop_tokens_end_a_row_and_are_not_included() {
    let ck = open_fixture("llama-gqa-untied-f32");
    let model = load(&ck);
    let prompt = vec![1u32, 5, 17];
    let free = greedy_by_recompute(&model, &prompt, 8);
    let stop = free[3];
    let first = free.iter().position(|&t| t == stop).unwrap();
    let opts = GenerateOptions { stop_tokens: vec![stop], ..greedy(8) };
    let g = &generate(&model, None, &[prompt], &opts, &mut Hooks::new(), &mut |_, _| {}).unwrap()[0];
    assert_eq!(g.stop, StopReason::StopToken(stop));
    assert_eq!(g.tokens, free[..first].to_vec());
}

#[test]
fn seeded_sampling_is_reproducible_and_depends_on_the_seed() {
    let ck = open_fixture("qwen3-qknorm-f16");
    let model = load(&ck);
    let run = |seed| {
        let opts = GenerateOptions {
            sampling: Sampling { temperature: 1.5, top_k: Some(50), top_p: Some(0.95), seed },
            ..greedy(20)
        };
        generate(&model, None, &[vec![1u32, 2, 3]], &opts, &mut Hooks::new(), &mut |_, _| {}).unwrap()[0].tokens.clone()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

#[test]
fn generating_with_a_skipped_layer_equals_generating_with_the_layer_removed() {
    let ck = open_fixture("llama-gqa-untied-f32");
    let model = load(&ck);
    let mut hooks = Hooks::new();
    hooks.skip_layer(1);
    let prompts = vec![vec![1u32, 5, 17, 42], vec![9, 8]];
    let skipped = generate(&model, None, &prompts, &greedy(10), &mut hooks, &mut |_, _| {}).unwrap();
    let view = EditView::new(&ck, None, EditPlan { remove_layers: [1].into(), ..Default::default() }).unwrap();
    let removed = Model::load(&view, &LoadOptions::default()).unwrap();
    let want = generate(&removed, None, &prompts, &greedy(10), &mut Hooks::new(), &mut |_, _| {}).unwrap();
    assert_eq!(skipped, want);
}

/// A byte-level BPE over the fixtures' 96 ids: 3 control tokens, "Ġ" (space) and 92 ASCII
/// characters, no merges, built through the GGUF path.
fn tiny_tokenizer() -> Tokenizer {
    let mut tokens = vec!["<s>".to_string(), "</s>".to_string(), "<pad>".to_string(), "Ġ".to_string()];
    tokens.extend((b'!'..=b'~').take(92).map(|c| (c as char).to_string()));
    assert_eq!(tokens.len(), 96);
    let types: Vec<Value> = (0..96).map(|i| Value::I32(if i < 3 { 3 } else { 1 })).collect();
    let mut meta = BTreeMap::new();
    meta.insert("tokenizer.ggml.model".into(), Value::String("gpt2".into()));
    meta.insert("tokenizer.ggml.pre".into(), Value::String("smollm".into()));
    meta.insert("tokenizer.ggml.tokens".into(), Value::Array(tokens.into_iter().map(Value::String).collect()));
    meta.insert("tokenizer.ggml.merges".into(), Value::Array(vec![]));
    meta.insert("tokenizer.ggml.token_type".into(), Value::Array(types));
    meta.insert("tokenizer.ggml.eos_token_id".into(), Value::U32(1));
    Tokenizer::from_gguf(&meta).unwrap()
}

#[test]
fn stop_strings_cut_the_text_and_streaming_emits_exactly_the_text() {
    let ck = open_fixture("qwen2-bias-tied-bf16-sharded");
    let model = load(&ck);
    let tok = tiny_tokenizer();
    let prompt = tok.encode("ab c", false).unwrap();
    let free = generate(&model, Some(&tok), &[prompt.clone()], &greedy(16), &mut Hooks::new(), &mut |_, _| {}).unwrap();
    let text = free[0].text.clone();
    assert_eq!(text, tok.decode(&free[0].tokens, true).unwrap());
    assert!(text.chars().count() >= 6, "{text:?}");
    // Stop at a two-character string taken from the middle of the free text.
    let chars: Vec<char> = text.chars().collect();
    let stop: String = chars[3..5].iter().collect();
    let cut = &text[..text.find(&stop).unwrap()];
    let mut streamed = String::new();
    let opts = GenerateOptions { stop_strings: vec![stop.clone()], ..greedy(16) };
    let mut done = vec![];
    let g = generate(&model, Some(&tok), &[prompt], &opts, &mut Hooks::new(), &mut |row, event| {
        assert_eq!(row, 0);
        match event {
            Event::Text(piece) => {
                assert!(done.is_empty(), "text after Done");
                streamed.push_str(piece)
            }
            Event::Done(g) => done.push(g.clone()),
        }
    })
    .unwrap();
    assert_eq!(done, g, "Done carries the row's result, once");
    assert_eq!(g[0].stop, StopReason::StopString(stop));
    assert_eq!(g[0].text, cut);
    assert_eq!(streamed, cut, "streamed text must never include (a prefix of) the stop string");
}

#[test]
fn the_tiny_byte_level_tokenizer_round_trips() {
    let tok = tiny_tokenizer();
    let ids = tok.encode("hello world 42!", false).unwrap();
    assert_eq!(tok.decode(&ids, true).unwrap(), "hello world 42!");
    assert_eq!(tok.eos_ids(), &[1]);
    // The control token is matched whole and skipped when decoding.
    let ids = tok.encode("a</s>b", false).unwrap();
    assert!(ids.contains(&1), "{ids:?}");
    assert_eq!(tok.decode(&ids, true).unwrap(), "ab");
}
