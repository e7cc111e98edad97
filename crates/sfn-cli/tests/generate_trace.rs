//! `sfn generate` and `sfn trace` end to end on the real SmolLM2-135M-Instruct: a chat answer,
//! batched JSON output, and a trace file with the logits and the requested hook points.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;

#[test]
fn generate_answers_a_chat_prompt_and_batches_as_json() {
    let m = smollm2();
    let text = ok(&sfn(&["generate", &m, "--chat", "-p", "What is the capital of France?", "--max-new", "24"]));
    assert!(text.contains("Paris"), "{text}");

    let out = ok(&sfn(&["generate", &m, "-p", "One, two, three,", "-p", "The sky is", "--max-new", "8", "--json"]));
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["prompt"], "The sky is");
    for l in &lines {
        let n = l["tokens"].as_array().unwrap().len();
        assert!((1..=8).contains(&n), "{l}");
    }
}

/// Names and shapes from a safetensors header.
fn header(path: &Path) -> serde_json::Map<String, Value> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    serde_json::from_slice(&bytes[8..8 + n]).unwrap()
}

#[test]
fn trace_saves_logits_and_hooks_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.safetensors");
    let o = out.display().to_string();
    let m = smollm2();
    ok(&sfn(&[
        "trace",
        &m,
        "--ids",
        "1,504,3458,314",
        "--hooks",
        "resid_post,attn_heads",
        "--layers",
        "0..2",
        "-o",
        &o,
    ]));
    let h = header(&out);
    assert_eq!(h["logits"]["shape"], serde_json::json!([4, 49152]));
    assert_eq!(h["input_ids"]["shape"], serde_json::json!([4]));
    assert_eq!(h["resid_post.1"]["shape"], serde_json::json!([4, 576]));
    assert_eq!(h["attn_heads.0"]["shape"], serde_json::json!([4, 9, 64]));
    assert!(!h.contains_key("resid_post.2"));
    assert!(h["__metadata__"]["sfn_hooks"].as_str().unwrap().contains("resid_post"));

    let again = sfn(&["trace", &m, "--ids", "1,2", "-o", &o]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let bad = sfn(&["trace", &m, "--ids", "1,2", "--layers", "40", "-o", &dir.path().join("u").display().to_string()]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("layer 40 does not exist"));
}
