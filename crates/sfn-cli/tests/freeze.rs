//! `sfn freeze` and `sfn freeze-sweep` end to end, on a tiny random Llama that speaks SmolLM2's
//! tokenizer and chat template (fast enough to train for real in a test) and once on the real
//! SmolLM2 GGUF: only the selected tensors change (checked with `sfn delta`: frozen ones have
//! l2_diff exactly 0), the output is a checkpoint sfn loads, a killed run resumes to the same loss
//! curve and the same weights bit for bit, and bad training data is refused naming file and line.

mod common;

use common::*;
use serde_json::Value;
use sfn_checkpoint::Checkpoint;
use sfn_model::Tokenizer;
use std::path::Path;

fn log(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("train_log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// name -> l2_diff of `sfn delta a b`.
fn changed(a: &str, b: &Path, dir: &Path) -> Vec<(String, f64)> {
    let out = dir.join("delta").display().to_string();
    ok(&sfn(&["delta", a, b.to_str().unwrap(), "-o", &out, "--no-figures"]));
    let doc: Value = serde_json::from_slice(&std::fs::read(dir.join("delta/delta.json")).unwrap()).unwrap();
    doc["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_string(), t["l2_diff"].as_f64().unwrap()))
        .collect()
}

const TRAIN: [&str; 8] = ["--micro-batch-size", "4", "--lr", "3e-3", "--mode", "chat", "--threads", "2"];

#[test]
fn freeze_trains_only_the_selected_tensors_into_a_loadable_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let a = tiny_model(dir.path()).display().to_string();
    let data = worked(dir.path(), 24, 1);
    let out = dir.path().join("o_proj");
    let o = out.display().to_string();
    let args = ["freeze", &a, "--data", &data, "--train", "o_proj,norms", "--max-steps", "6", "-o", &o];
    let stdout = ok(&sfn(&[&args[..], &TRAIN[..]].concat()));
    assert!(stdout.contains("for 6 steps"), "{stdout}");

    // The log: one line per step with every field; the loss falls from the untrained ~ln(49152)
    // (slowly: the random embedding stays frozen here; training everything learns fast, below).
    let lines = log(&out);
    assert_eq!(lines.len(), 6);
    for k in ["step", "loss", "lr", "grad_norm", "tokens", "seconds"] {
        assert!(lines.iter().all(|l| l.get(k).is_some()), "log lacks {k}");
    }
    let loss = |i: usize| lines[i]["loss"].as_f64().unwrap();
    assert!(loss(0) > 10.0 && loss(5) < loss(0), "loss {} -> {}", loss(0), loss(5));

    // Only o_proj and the norms changed; every other tensor is exactly as it was.
    let summary: Value = serde_json::from_slice(&std::fs::read(out.join("train_summary.json")).unwrap()).unwrap();
    let names: Vec<String> =
        summary["trainable_tensors"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert_eq!(names.len(), 2 * 3 + 1, "{names:?}");
    assert_eq!(summary["trainable_params"], 2 * (64 * 64 + 2 * 64) + 64);
    for (name, diff) in changed(&a, &out, dir.path()) {
        assert_eq!(diff > 0.0, names.contains(&name), "{name}: l2_diff {diff}");
    }

    // A checkpoint like any other: sfn runs it, with the tokenizer and card that came along.
    for f in ["config.json", "model.safetensors", "tokenizer.json", "README.md", "train_loss.png"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    ok(&sfn(&["generate", &o, "--chat", "-p", "What is 2 + 3?", "--max-new", "4"]));
    let m = sfn_run::Manifest::read(&out).unwrap();
    assert_eq!((m.kind.as_str(), m.status), ("freeze", sfn_run::Status::Complete));

    // Tied embeddings: selecting lm_head trains the one tensor, and the report says so.
    let tied = dir.path().join("head").display().to_string();
    let args = ["freeze", &a, "--data", &data, "--train", "lm_head", "--max-steps", "1", "-o", &tied];
    let stdout = ok(&sfn(&[&args[..], &TRAIN[..]].concat()));
    assert!(stdout.contains("tied"), "{stdout}");
    let summary: Value =
        serde_json::from_slice(&std::fs::read(Path::new(&tied).join("train_summary.json")).unwrap()).unwrap();
    assert_eq!(summary["trainable_tensors"][0], "model.embed_tokens.weight");
}

#[test]
fn a_killed_freeze_run_resumes_to_the_same_curve_and_weights() {
    let dir = tempfile::tempdir().unwrap();
    let a = tiny_model(dir.path()).display().to_string();
    let data = worked(dir.path(), 40, 2);
    let run = |out: &Path| -> Vec<String> {
        let o = out.display().to_string();
        let args =
            ["freeze", &a, "--data", &data, "--train", "all", "--max-steps", "30", "--save-every", "3", "-o", &o];
        [&args[..], &TRAIN[..]].concat().iter().map(|s| s.to_string()).collect()
    };
    let whole = dir.path().join("whole");
    ok(&sfn(&run(&whole).iter().map(String::as_str).collect::<Vec<_>>()));

    // Kill (SIGKILL) as soon as a save exists past step 3, then run the same command again.
    let cut = dir.path().join("cut");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sfn")).args(run(&cut)).spawn().unwrap();
    let t0 = std::time::Instant::now();
    while !cut.join("saves/step-000006").exists() && t0.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!cut.join("model.safetensors").exists(), "killed before the end: no model under its final name");
    ok(&sfn(&run(&cut).iter().map(String::as_str).collect::<Vec<_>>()));
    let summary: Value = serde_json::from_slice(&std::fs::read(cut.join("train_summary.json")).unwrap()).unwrap();
    assert!(summary["resumed_from"].as_u64().is_some_and(|s| s >= 6), "{}", summary["resumed_from"]);

    let curve = |d: &Path| -> Vec<(Value, Value, Value)> {
        log(d).into_iter().map(|l| (l["step"].clone(), l["loss"].clone(), l["grad_norm"].clone())).collect()
    };
    assert_eq!(curve(&whole), curve(&cut), "the resumed loss curve differs");
    let losses: Vec<f64> = log(&whole).iter().map(|l| l["loss"].as_f64().unwrap()).collect();
    assert!(losses[29] < losses[0] - 3.0, "a learnable task: loss {} -> {}", losses[0], losses[29]);
    assert_eq!(tensor_hashes(&whole), tensor_hashes(&cut), "the resumed weights differ");
}

#[test]
fn freeze_from_a_gguf_writes_its_tokenizer_and_keeps_frozen_tensors_as_read() {
    let dir = tempfile::tempdir().unwrap();
    let data = worked(dir.path(), 2, 3);
    let out = dir.path().join("smol");
    let o = out.display().to_string();
    let args = ["freeze", &smollm2(), "--data", &data, "--train", "layers[3].o_proj", "--max-steps", "1", "-o", &o];
    ok(&sfn(&[&args[..], &["--micro-batch-size", "2", "--mode", "chat", "--threads", "2"][..]].concat()));
    // The tokenizer it carried, as tokenizer.json: the same ids as from the GGUF.
    let (a, b) =
        (Tokenizer::for_source(&Checkpoint::open(smollm2()).unwrap()).unwrap(), Tokenizer::from_hf_dir(&out).unwrap());
    let text = "<|im_start|>user\nWhat is 12 * 7?<|im_end|>\n";
    assert_eq!(a.encode(text, true).unwrap(), b.encode(text, true).unwrap());
    assert_eq!(a.chat_template(), b.chat_template());
    for (name, diff) in changed(&smollm2(), &out, dir.path()) {
        assert_eq!(diff > 0.0, name == "model.layers.3.self_attn.o_proj.weight", "{name}: l2_diff {diff}");
    }
}

#[test]
fn bad_training_data_and_an_empty_selection_are_refused_naming_what() {
    let dir = tempfile::tempdir().unwrap();
    let a = tiny_model(dir.path()).display().to_string();
    let cases = [
        (r#"{"prompt": "2 + 2?"}"#, "missing field `completion`"),
        (r#"{"input_ids": [1, 2, 3], "labels": [1, 2]}"#, "2 labels for 3 input_ids"),
        (r#"{"input_ids": [1, 99999]}"#, "token id 99999 is past the model's vocabulary"),
        (r#"{"text": "hello"}"#, "no known layout"),
        (r#"{"messages": [{"role": "user", "content": "hi"}]}"#, "no assistant turn"),
    ];
    for (i, (line, want)) in cases.iter().enumerate() {
        let data = dir.path().join(format!("bad-{i}.jsonl"));
        std::fs::write(&data, format!("{{\"prompt\": \"1 + 1?\", \"completion\": \"2\"}}\n{line}\n")).unwrap();
        let out = dir.path().join(format!("out-{i}")).display().to_string();
        let r =
            sfn(&["freeze", &a, "--data", data.to_str().unwrap(), "--train", "o_proj", "--mode", "chat", "-o", &out]);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(1), "{err}");
        assert!(err.contains(&format!("bad-{i}.jsonl:2: ")) && err.contains(want), "{line}: {err}");
    }
    // Too long without --truncate, then with it.
    let data = dir.path().join("long.jsonl");
    std::fs::write(&data, format!("{{\"prompt\": \"count\", \"completion\": \"{}\"}}\n", "one two ".repeat(40)))
        .unwrap();
    let d = data.to_str().unwrap();
    let r = sfn(&["freeze", &a, "--data", d, "--train", "o_proj", "--max-seq-len", "32", "-o", "/nonexistent/x"]);
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("long.jsonl:1: ")
            && String::from_utf8_lossy(&r.stderr).contains("--truncate")
    );
    let out = dir.path().join("cut").display().to_string();
    let args = [
        "freeze",
        &a,
        "--data",
        d,
        "--train",
        "o_proj",
        "--max-seq-len",
        "32",
        "--truncate",
        "--max-steps",
        "1",
        "-o",
        &out,
    ];
    ok(&sfn(&args));
    // A selector that matches nothing.
    let r = sfn(&["freeze", &a, "--data", d, "--train", "layers[7].o_proj", "-o", "/nonexistent/y"]);
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("layers[7]"), "{}", String::from_utf8_lossy(&r.stderr));
}

#[test]
fn freeze_sweep_writes_table_two_with_a_run_per_set() {
    let dir = tempfile::tempdir().unwrap();
    let a = tiny_model(dir.path()).display().to_string();
    let data = worked(dir.path(), 8, 4);
    let task = worked(dir.path(), 2, 5);
    let out = dir.path().join("sweep");
    let o = out.display().to_string();
    let args = [
        "freeze-sweep",
        &a,
        "--data",
        &data,
        "--task",
        &task,
        "--sets",
        "F2,F4",
        "--max-steps",
        "2",
        "--max-new",
        "6",
        "-o",
        &o,
    ];
    let table = ok(&sfn(&[&args[..], &TRAIN[..]].concat()));
    assert!(table.contains("| F2 | `embed,lm_head,norms,o_proj` |") && table.contains("| F4 | `all` |"), "{table}");
    let report = sfn_scope::freeze::sweep::FreezeSweepReport::read(&out).unwrap();
    assert_eq!(report.rows.len(), 2);
    let (f2, f4) = (&report.rows[0], &report.rows[1]);
    assert!(f2.trainable_params < f4.trainable_params && f4.trainable_share == 1.0);
    assert!(f2.before.is_some() && f2.after.is_some() && f2.steps == 2);
    for f in ["freeze_sweep.md", "freeze_loss.svg", "A/summary.json", "F2/model.safetensors", "F4/train_log.jsonl"] {
        assert!(out.join(f).exists(), "{f}");
    }
}
