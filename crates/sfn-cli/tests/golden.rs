//! The numbers of every results file stay what they were before the groundwork refactoring
//! (issue 10): delta, merge, destroy (written and evaluated in memory), a destruction sweep and
//! eval --grade run on committed fixtures, and their outputs, with provenance fields (paths,
//! command lines, versions, times, fingerprints) left out, equal the outputs recorded with the
//! code as it was before the change (tests/fixtures/golden/*.json).
//!
//! Re-record only after a deliberate change of numbers: `SFN_GOLDEN_WRITE=1 cargo test -p sfn-cli
//! --test golden`, and say why in the commit.

mod common;

use common::*;
use serde_json::{Map, Value};
use std::path::Path;

/// Compare with tests/fixtures/golden/NAME.json (or record it with SFN_GOLDEN_WRITE=1).
fn check(name: &str, got: Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/golden/{name}.json"));
    if std::env::var_os("SFN_GOLDEN_WRITE").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
        return;
    }
    let want: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    if got != want {
        let (g, w) = (serde_json::to_string_pretty(&got).unwrap(), serde_json::to_string_pretty(&want).unwrap());
        let first = g.lines().zip(w.lines()).position(|(a, b)| a != b).unwrap_or(0);
        panic!(
            "{name}: outputs differ from {} (first differing line {}):\n got: {}\nwant: {}",
            path.display(),
            first + 1,
            g.lines().nth(first).unwrap_or(""),
            w.lines().nth(first).unwrap_or("")
        );
    }
}

#[test]
fn delta_numbers_are_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("delta");
    let o = out.display().to_string();
    ok(&sfn(&["delta", &delta_a(), &delta_b(), "-o", &o, "--no-figures"]));
    let csv = std::fs::read_to_string(out.join("delta.csv")).unwrap();
    check("delta", serde_json::json!({"json": json_file(&out.join("delta.json")), "csv": csv}));
}

#[test]
fn merged_and_destroyed_checkpoints_are_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    let (a, b) = (delta_a(), delta_b());
    ok(&sfn(&["merge", &a, &b, "--take", "o_proj,norms", "--layers", "0..2", "-o", &p("take")]));
    ok(&sfn(&["merge", &a, &b, "--take", "mlp", "--alpha", "0.3", "--dtype", "f32", "-o", &p("mix")]));
    ok(&sfn(&[
        "destroy",
        &a,
        "--select",
        "mlp",
        "--layers",
        "1..3",
        "--method",
        "reinit",
        "--seed",
        "7",
        "-o",
        &p("reinit"),
    ]));
    ok(&sfn(&["destroy", &a, "--select", "q,k", "--method", "scale", "--factor", "0.5", "-o", &p("scale")]));
    ok(&sfn(&["destroy", &a, "--layers", "1..2", "--method", "remove", "-o", &p("remove")]));
    let got: Map<String, Value> = ["take", "mix", "reinit", "scale", "remove"]
        .iter()
        .map(|n| (n.to_string(), checkpoint(&dir.path().join(n))))
        .collect();
    check("edits", Value::Object(got));
}

#[test]
fn eval_grade_results_are_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let outputs = dir.path().join("outputs.jsonl");
    let lines = [
        serde_json::json!({"id": 0, "output": "So the walk takes 204 minutes. \\boxed{204}"}),
        serde_json::json!({"id": 1, "output": "xy = 25, that is \\boxed{25}."}),
        serde_json::json!({"id": 2, "output": "the the the the the the the the the the the the the the"}),
        serde_json::json!({"id": 2, "output": "Hello! How can I help you today? Ask me about your order."}),
        serde_json::json!({"id": 3, "output": "I think the probability is about one half, so \\boxed{3}."}),
    ];
    std::fs::write(&outputs, lines.iter().map(|l| l.to_string() + "\n").collect::<String>()).unwrap();
    let task = fixture("sfn-eval/tests/fixtures/aime2024.jsonl");
    let out = dir.path().join("graded");
    let (o, r) = (outputs.display().to_string(), out.display().to_string());
    ok(&sfn(&["eval", "--grade", &o, "--task", &task, "-o", &r, "--seed", "5"]));
    check(
        "eval-grade",
        serde_json::json!({"samples": jsonl_file(&out.join("samples.jsonl")), "summary": json_file(&out.join("summary.json"))}),
    );
}

#[test]
fn in_memory_evaluation_and_sweep_results_are_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let task = dir.path().join("tasks.jsonl").display().to_string();
    ok(&sfn(&["eval", "--make-tasks", "arithmetic", "--count", "2", "--depth", "1", "--seed", "3", "-o", &task]));
    let decode = ["--mode", "chat", "--max-new", "10", "--threads", "2"];
    let results = dir.path().join("destroyed").display().to_string();
    let args = ["destroy", &smollm2(), "--select", "o_proj", "--layers", "10..20", "--method", "zero"];
    ok(&sfn(&[&args[..], &["--eval", &task, "--results", &results], &decode[..]].concat()));
    let sweep = dir.path().join("sweep");
    let s = sweep.display().to_string();
    let args = ["destroy-sweep", &smollm2(), "--modules", "down", "--methods", "reinit", "--layers", "12..14"];
    ok(&sfn(&[&args[..], &["--task", &task, "-o", &s], &decode[..]].concat()));
    let destroyed = Path::new(&results);
    check(
        "in-memory",
        serde_json::json!({
            "destroy": {"samples": jsonl_file(&destroyed.join("samples.jsonl")), "summary": json_file(&destroyed.join("summary.json"))},
            "sweep": json_file(&sweep.join("sweep.json")),
            "sweep_md": std::fs::read_to_string(sweep.join("sweep.md")).unwrap(),
            "variant": jsonl_file(&sweep.join("reinit-down/samples.jsonl")),
        }),
    );
}
