//! Merge and destruction in memory, end to end on the real SmolLM2-135M-Instruct: `destroy-sweep`
//! writes its table, figure and one results directory per variant; and one edit reached three ways
//! (destroy --eval, merge --eval taking the destroyed tensors from a written checkpoint, and a
//! merge-sweep variant) produces the same outputs.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;

fn tasks(dir: &Path) -> String {
    let p = dir.join("tasks.jsonl").display().to_string();
    ok(&sfn(&["eval", "--make-tasks", "arithmetic", "--count", "2", "--depth", "1", "-o", &p]));
    p
}

const DECODE: [&str; 4] = ["--mode", "chat", "--max-new", "12"];

fn outputs(samples: &Path) -> Vec<String> {
    std::fs::read_to_string(samples)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["output"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn destroy_sweep_writes_table_figure_and_a_results_dir_per_variant() {
    let dir = tempfile::tempdir().unwrap();
    let task = tasks(dir.path());
    let out = dir.path().join("sweep");
    let o = out.display().to_string();
    let args = ["destroy-sweep", &smollm2(), "--modules", "o,down", "--methods", "zero,remove", "--layers", "5..25"];
    let table = ok(&sfn(&[&args[..], &["--task", &task, "-o", &o], &DECODE[..]].concat()));
    assert!(
        table.contains("| zero down |") && table.contains("| remove layers 5..25 | 20 layers removed |"),
        "{table}"
    );
    // The paper's Table 3 shape: modules × per-module methods (remove acts on whole layers).
    assert!(table.contains("| module | zero |") && table.contains("\n| down | "), "{table}");

    let sweep: Value = serde_json::from_slice(&std::fs::read(out.join("sweep.json")).unwrap()).unwrap();
    let rows = sweep["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["variant"].as_str().unwrap()).collect();
    assert_eq!(names, ["A (intact)", "zero o", "zero down", "remove layers 5..25"]);
    assert_eq!(rows[0]["edited_tensors"], 0);
    assert_eq!(rows[1]["edited_tensors"], 20);
    assert_eq!(rows[1]["edited_params"], 20 * 576 * 576);
    assert_eq!(rows[3]["removed_layers"].as_array().unwrap().len(), 20);
    for r in rows {
        let shares: f64 = r["level_shares"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).sum();
        assert!((shares - 1.0).abs() < 1e-9, "{r}");
        let samples = Path::new(r["results_dir"].as_str().unwrap()).join("samples.jsonl");
        assert_eq!(outputs(&samples).len(), 2, "{}", samples.display());
    }
    assert_eq!(sweep["provenance"]["inputs"][0]["role"], "a");
    for f in ["sweep.md", "sweep_levels.svg", "sweep_levels.png"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    // The intact model's outputs are not the damaged ones'.
    let intact = outputs(&out.join("a-intact/samples.jsonl"));
    assert_ne!(intact, outputs(&out.join("zero-down/samples.jsonl")));
}

#[test]
fn one_edit_three_ways_gives_the_same_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let task = tasks(dir.path());
    let m = smollm2();
    let p = |name: &str| dir.path().join(name).display().to_string();

    // B = A with o_proj of layers 5..24 zeroed, written as a checkpoint (bf16 keeps it small).
    let zero = ["--select", "o", "--layers", "5..25", "--method", "zero"];
    ok(&sfn(&[&["destroy", &m][..], &zero, &["-o", &p("b"), "--dtype", "bf16"]].concat()));
    // 1: the destruction evaluated in memory.
    ok(&sfn(&[&["destroy", &m][..], &zero, &["--eval", &task, "--results", &p("r1")], &DECODE].concat()));
    // 2: A taking those (zero) tensors from B, in memory.
    let take = ["--take", "o", "--layers", "5..25"];
    ok(&sfn(&[&["merge", &m, &p("b")][..], &take, &["--eval", &task, "--results", &p("r2")], &DECODE].concat()));
    // 3: the same take as a merge-sweep variant.
    ok(&sfn(&[&["merge-sweep", &m, &p("b")][..], &take, &["--task", &task, "-o", &p("sweep")], &DECODE].concat()));

    let r1 = outputs(&dir.path().join("r1/samples.jsonl"));
    assert_eq!(r1.len(), 2);
    assert_eq!(outputs(&dir.path().join("r2/samples.jsonl")), r1);
    assert_eq!(outputs(&dir.path().join("sweep/take-o/samples.jsonl")), r1);
    assert_ne!(outputs(&dir.path().join("sweep/a/samples.jsonl")), r1);
}

#[test]
fn merge_without_output_or_eval_says_what_to_give() {
    let m = smollm2();
    let out = sfn(&["merge", &m, &m, "--take", "o"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("-o OUT") && err.contains("--eval TASK"), "{err}");
}

#[test]
fn merge_takes_config_and_tokenizer_files_from_a_unless_told_b() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = root().join("crates/sfn-checkpoint/tests/fixtures");
    let a = fixtures.join("hf/llama-gqa-untied-f32");
    // B: the fixture's fine-tuned copy with a tokenizer file of its own.
    let b = dir.path().join("b");
    std::fs::create_dir(&b).unwrap();
    for f in ["config.json", "generation_config.json", "model.safetensors"] {
        std::fs::copy(fixtures.join("edit/llama-b-f32").join(f), b.join(f)).unwrap();
    }
    std::fs::write(b.join("tokenizer_config.json"), r#"{"from": "B"}"#).unwrap();
    let merge = |out: &str, extra: &[&str]| {
        let o = dir.path().join(out).display().to_string();
        let args = ["merge", a.to_str().unwrap(), b.to_str().unwrap(), "--take", "o_proj", "-o", &o];
        ok(&sfn(&[&args[..], extra].concat()));
        dir.path().join(out)
    };
    let from_a = merge("from-a", &[]);
    assert!(!from_a.join("tokenizer_config.json").exists());
    assert_eq!(std::fs::read(from_a.join("config.json")).unwrap(), std::fs::read(a.join("config.json")).unwrap());
    let from_b = merge("from-b", &["--files-from", "b"]);
    assert_eq!(std::fs::read_to_string(from_b.join("tokenizer_config.json")).unwrap(), r#"{"from": "B"}"#);
    // The tensors are the same either way.
    assert_eq!(
        std::fs::read(from_a.join("model.safetensors")).unwrap(),
        std::fs::read(from_b.join("model.safetensors")).unwrap()
    );
}
