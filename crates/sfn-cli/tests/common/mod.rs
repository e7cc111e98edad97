//! Helpers shared by the `sfn` binary's end-to-end tests: running it, paths, the real model.
#![allow(dead_code)]

use serde_json::{Map, Value};
use sfn_checkpoint::{Checkpoint, DType};
use sfn_model::Tokenizer;
use sfn_train::{export::write_model, TrainModel, Trainable};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn sfn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sfn")).args(args).output().expect("run sfn")
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The real SmolLM2-135M-Instruct GGUF; fetched by scripts/fetch-smollm2 (scripts/test does).
pub fn smollm2() -> String {
    let path = std::env::var("SFN_SMOLLM2")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join(".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    assert!(path.is_file(), "{} is missing: run scripts/fetch-smollm2", path.display());
    path.display().to_string()
}

/// A committed fixture, by its path under crates/.
pub fn fixture(rel: &str) -> String {
    root().join("crates").join(rel).display().to_string()
}

/// The Qwen2-shaped pair of the Delta tests (A bf16 in three shards, B f32).
pub fn delta_a() -> String {
    fixture("sfn-scope/tests/fixtures/delta/a-qwen2-bf16-sharded")
}

pub fn delta_b() -> String {
    fixture("sfn-scope/tests/fixtures/delta/b-qwen2-f32")
}

/// stdout of a run that must succeed (stderr in the failure message).
pub fn ok(out: &Output) -> String {
    assert!(out.status.success(), "sfn failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Keys whose values describe where and when a run happened, not what it computed.
pub const PROVENANCE_KEYS: [&str; 15] = [
    "command",
    "spec",
    "command_line",
    "inputs",
    "version",
    "sfn_version",
    "tool",
    "elapsed_s",
    "bytes_per_s",
    "threads",
    "results_dir",
    "provenance",
    "started",
    "finished",
    "options_sha256",
];

pub fn strip(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for k in PROVENANCE_KEYS {
                m.remove(k);
            }
            m.values_mut().for_each(strip);
        }
        Value::Array(a) => a.iter_mut().for_each(strip),
        _ => {}
    }
}

pub fn json_file(path: &Path) -> Value {
    let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    strip(&mut v);
    v
}

pub fn jsonl_file(path: &Path) -> Value {
    let lines = std::fs::read_to_string(path).unwrap();
    Value::Array(
        lines
            .lines()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).unwrap();
                strip(&mut v);
                v
            })
            .collect(),
    )
}

/// name -> SHA-256 of the stored bytes, for every tensor of a written checkpoint directory.
pub fn tensor_hashes(dir: &Path) -> Value {
    let mut out = Map::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: Map<String, Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        for (name, info) in header {
            if name == "__metadata__" {
                continue;
            }
            let off = info["data_offsets"].as_array().unwrap();
            let (s, e) = (off[0].as_u64().unwrap() as usize, off[1].as_u64().unwrap() as usize);
            let data = &bytes[8 + n + s..8 + n + e];
            let hash: String = Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect();
            out.insert(name, serde_json::json!({"dtype": info["dtype"], "shape": info["shape"], "sha256": hash}));
        }
    }
    Value::Object(out)
}

/// A written checkpoint: its tensors and its config.json.
pub fn checkpoint(dir: &Path) -> Value {
    serde_json::json!({"tensors": tensor_hashes(dir), "config": json_file(&dir.join("config.json"))})
}

/// A random 2-layer Llama (hidden 64, tied embeddings) with SmolLM2's tokenizer and template.
pub fn tiny_model(dir: &Path) -> PathBuf {
    random_model(&dir.join("tiny"), 64)
}

/// A random 2-layer Llama of width `hidden` (tied embeddings, SmolLM2's 49152-token vocabulary,
/// tokenizer and template) written as an f32 checkpoint at `out`.
pub fn random_model(out: &Path, hidden: usize) -> PathBuf {
    let gguf = Checkpoint::open(smollm2()).unwrap();
    let mut cfg = gguf.config.clone().unwrap();
    (cfg.num_layers, cfg.hidden_size, cfg.intermediate_size) = (2, hidden, 2 * hidden);
    (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.max_position_embeddings) = (4, 2, hidden / 4, 512);
    let model = TrainModel::random(&cfg, 1, 0.02, Trainable::Names(&[])).unwrap();
    let tok = Tokenizer::for_source(&gguf).unwrap();
    write_model(&model, out, DType::F32, tok.hf_files().unwrap(), false).unwrap();
    out.to_path_buf()
}

/// Worked arithmetic problems: a training file that is also a task file.
pub fn worked(dir: &Path, count: usize, seed: u64) -> String {
    let p = dir.join(format!("worked-{seed}.jsonl")).display().to_string();
    let (c, s) = (count.to_string(), seed.to_string());
    ok(&sfn(&[
        "eval",
        "--make-tasks",
        "arithmetic",
        "--worked",
        "--count",
        &c,
        "--depth",
        "2",
        "--seed",
        &s,
        "-o",
        &p,
    ]));
    p
}

/// A child process (a server) killed when the test lets go of it.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Say that a test is skipped and why, past the test harness's output capture (which swallows
/// `println!` of passing tests), so a skip is never silent.
pub fn skipped(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}
