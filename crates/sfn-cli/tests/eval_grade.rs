//! `sfn eval` end to end: grading a small outputs file against the real AIME 2024 task file
//! (results files, summary fields, the terminal table, resume), built-in task sets, and one-line
//! errors on bad input.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The 30 AIME 2024 problems (index / origin_prompt / gold_answer), as the shared data set has them.
fn aime() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sfn-eval/tests/fixtures/aime2024.jsonl").display().to_string()
}

/// Five outputs for four problems: correct boxed, correct with units, a loop, off-topic chat,
/// and a wrong answer (problem 2 has two samples).
fn outputs_file(dir: &Path) -> PathBuf {
    let lines = [
        serde_json::json!({"id": 0, "output": "Let $s$ be her speed. Then $\\frac{9}{s} + \\frac{t}{60} = 4$ and $\\frac{9}{s+2} + \\frac{t}{60} = 2.4$, so $s = 2.5$ and $t = 24$. At $3$ km/h the walk takes $180$ minutes plus $24$ minutes. \\boxed{204}"}),
        serde_json::json!({"id": 1, "output": "We have $x \\log_x y = 10$ and $4y \\log_y x = 10$; multiplying gives $4xy = 100$, so $xy = 25$, that is \\boxed{25 \\text{ (the product)}}."}),
        serde_json::json!({"id": 2, "output": "the the the the the the the the the the the the the the the the the the the the"}),
        serde_json::json!({"id": 2, "output": "Hello! How can I help you today? If you have any questions about our products or your order, just let me know and I will do my best to assist you."}),
        serde_json::json!({"id": "3", "output": "There are $\\binom{10}{4} = 210$ ways to draw 4 numbers. Jen wins a prize with at least two matches: $90 + 24 + 1 = 115$ draws. I think the probability is about one half, so \\boxed{3}."}),
    ];
    let path = dir.join("outputs.jsonl");
    std::fs::write(&path, lines.iter().map(|l| l.to_string() + "\n").collect::<String>()).unwrap();
    path
}

#[test]
fn eval_grade_on_aime2024_writes_samples_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    let outputs = outputs_file(dir.path());
    let out = dir.path().join("run");
    let (o, r) = (outputs.display().to_string(), out.display().to_string());
    let stdout = ok(&sfn(&["eval", "--grade", &o, "--task", &aime(), "-o", &r, "--seed", "5"]));
    println!("{stdout}");
    assert!(stdout.contains("accuracy") && stdout.contains("95% CI") && stdout.contains("IV"), "{stdout}");
    assert!(stdout.contains("26 task(s) of the task file have no output"), "{stdout}");

    let samples: Vec<Value> = std::fs::read_to_string(out.join("samples.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(samples.len(), 5);
    for s in &samples {
        for key in ["id", "prompt", "output", "tokens", "extracted", "correct", "level", "signals"] {
            assert!(s.get(key).is_some(), "sample lacks {key}: {s}");
        }
    }
    let level = |i: usize| samples[i]["level"].as_str().unwrap().to_string();
    assert_eq!((samples[0]["correct"].as_bool(), level(0)), (Some(true), "IV".into()));
    assert_eq!(samples[1]["extracted"], "25 \\text{ (the product)}");
    assert_eq!((samples[1]["correct"].as_bool(), level(1)), (Some(true), "IV".into()));
    assert_eq!(level(2), "I");
    assert_eq!(level(3), "II");
    assert_eq!((samples[4]["correct"].as_bool(), level(4)), (Some(false), "III".into()));
    assert!(samples[0]["prompt"].as_str().unwrap().ends_with("put your final answer within \\boxed{}.\n"));
    assert_eq!(samples[2]["tokens"], 20);

    let summary: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["tasks"], 4);
    assert_eq!(summary["samples"], 5);
    // per-task accuracy: 1, 1, 0, 0 -> 0.5
    assert_eq!(summary["accuracy"], 0.5);
    let ci = summary["ci95"].as_array().unwrap();
    assert!(ci[0].as_f64().unwrap() <= 0.5 && ci[1].as_f64().unwrap() >= 0.5, "{ci:?}");
    assert_eq!(summary["levels"], serde_json::json!({"I": 1, "II": 1, "III": 1, "IV": 2}));
    assert_eq!(summary["token_count_kind"], "words");
    assert_eq!(summary["seed"], 5);
    assert!(summary["mean_tokens"].as_f64().unwrap() > 0.0);
    assert!(summary["command_line"].as_str().unwrap().contains("--grade"));
    assert_eq!(summary["sfn_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(summary["inputs"]["task_fields"]["prompt"], "origin_prompt");
    assert_eq!(summary["inputs"]["tasks"]["sha256"].as_str().unwrap().len(), 64);

    // A second run on the same directory resumes: nothing to redo, same summary.
    let again = sfn(&["eval", "--grade", &o, "--task", &aime(), "-o", &r, "--seed", "5", "--json"]);
    let again: Value = serde_json::from_str(&ok(&again)).unwrap();
    assert_eq!(again["accuracy"], summary["accuracy"]);
    assert!(String::from_utf8_lossy(&sfn(&["eval", "--grade", &o, "--task", &aime(), "-o", &r]).stderr)
        .contains("resumed: 4 task(s)"));
}

#[test]
fn eval_overrides_win_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let outputs = outputs_file(dir.path());
    let overrides = dir.path().join("levels.json");
    std::fs::write(&overrides, r#"{"2#1": "III"}"#).unwrap();
    let out = dir.path().join("run");
    let args = ["eval", "--grade", outputs.to_str().unwrap(), "--task", &aime(), "-o", out.to_str().unwrap()];
    let mut with = args.to_vec();
    with.extend(["--overrides", overrides.to_str().unwrap(), "--json"]);
    let summary: Value = serde_json::from_str(&ok(&sfn(&with))).unwrap();
    assert_eq!(summary["levels"], serde_json::json!({"I": 1, "II": 0, "III": 2, "IV": 2}));
    assert_eq!(summary["level_overrides"], 1);
}

#[test]
fn eval_make_tasks_then_grade_them() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = dir.path().join("arith.jsonl");
    let t = tasks.to_str().unwrap();
    ok(&sfn(&["eval", "--make-tasks", "arithmetic", "--count", "5", "--depth", "4", "--seed", "1", "-o", t]));
    let first = std::fs::read_to_string(&tasks).unwrap();
    assert_eq!(first.lines().count(), 5);
    let err = sfn(&["eval", "--make-tasks", "arithmetic", "-o", t]);
    assert!(!err.status.success() && String::from_utf8_lossy(&err.stderr).contains("exists"));
    ok(&sfn(&[
        "eval",
        "--make-tasks",
        "arithmetic",
        "--count",
        "5",
        "--depth",
        "4",
        "--seed",
        "1",
        "-o",
        t,
        "--fresh",
    ]));
    assert_eq!(std::fs::read_to_string(&tasks).unwrap(), first, "same seed, same tasks");

    // Answer every task correctly and grade.
    let outputs: String = first
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            serde_json::json!({"id": v["id"], "output": format!("{} So the answer is \\boxed{{{}}}.", v["prompt"].as_str().unwrap(), v["answer"].as_str().unwrap())}).to_string() + "\n"
        })
        .collect();
    let o = dir.path().join("o.jsonl");
    std::fs::write(&o, outputs).unwrap();
    let summary: Value = serde_json::from_str(&ok(&sfn(&[
        "eval",
        "--grade",
        o.to_str().unwrap(),
        "--task",
        t,
        "-o",
        dir.path().join("r").to_str().unwrap(),
        "--json",
    ])))
    .unwrap();
    assert_eq!(summary["accuracy"], 1.0);
    assert_eq!(summary["levels"]["IV"], 5);
}

#[test]
fn eval_bad_input_fails_with_one_line_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"id\": 0, \"output\": \"x\"}\n{\"id\": 1, \"output\": \n").unwrap();
    let out = sfn(&[
        "eval",
        "--grade",
        bad.to_str().unwrap(),
        "--task",
        &aime(),
        "-o",
        dir.path().join("r").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.jsonl:2: malformed JSON"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let out = sfn(&["eval", "--grade", bad.to_str().unwrap(), "--task", empty.to_str().unwrap(), "-o", "x"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty.jsonl: no tasks"));

    // Neither a model, nor --grade, nor --make-tasks: a usage error naming what is missing.
    let out = sfn(&["eval", "-o", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("<MODEL") && err.contains("--grade") && err.contains("--task"), "{err}");
}
