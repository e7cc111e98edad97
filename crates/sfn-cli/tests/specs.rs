//! Every command is a spec run into a run directory: for each command, the spec recorded in the
//! run.json of a run made from flags, written as JSON and read back, runs the same command through
//! the library entry point with the same results (provenance aside). And a spec with an unknown key
//! is refused with the key's name (a typo in a study file must not become a silent default).

mod common;

use common::*;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sfn_run::{Context, Manifest, Silent, Status};
use std::path::Path;

/// The spec in `dir`'s run.json, through JSON text and back into its struct.
fn recorded_spec<S: DeserializeOwned>(dir: &Path) -> S {
    let m = Manifest::read(dir).unwrap();
    assert_eq!(m.status, Status::Complete, "{}", dir.display());
    let text = serde_json::to_string_pretty(&m.provenance.spec).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}\n{e}"))
}

fn quiet() -> Context<'static> {
    Context { command: vec!["test".into()], progress: &Silent }
}

fn same(a: Value, b: Value, what: &str) {
    assert!(a == b, "{what}: the rerun from the recorded spec differs");
}

#[test]
fn delta_spec_read_back_reruns_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    let args = ["delta", &delta_a(), &delta_b(), "-o", first.to_str().unwrap(), "--select", "attn", "--bins", "50"];
    ok(&sfn(&args));
    let spec: sfn_scope::delta::DeltaSpec = recorded_spec(&first);
    assert_eq!((spec.select.as_deref(), spec.bins), (Some("attn"), 50));
    sfn_scope::delta::run(&spec, &second, &quiet()).unwrap();
    same(json_file(&first.join("delta.json")), json_file(&second.join("delta.json")), "delta.json");
}

#[test]
fn merge_and_destroy_specs_read_back_rerun_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let first = p("merged").display().to_string();
    ok(&sfn(&["merge", &delta_a(), &delta_b(), "--take", "o_proj", "--alpha", "0.25", "-o", &first]));
    let mut spec: sfn_scope::edit::MergeSpec = recorded_spec(&p("merged"));
    spec.write.out = Some(p("merged-again"));
    sfn_scope::edit::merge(&spec, &quiet()).unwrap();
    same(checkpoint(&p("merged")), checkpoint(&p("merged-again")), "merge");

    let first = p("destroyed").display().to_string();
    ok(&sfn(&["destroy", &delta_a(), "--select", "mlp", "--method", "reinit", "--seed", "4", "-o", &first]));
    let mut spec: sfn_scope::edit::DestroySpec = recorded_spec(&p("destroyed"));
    assert_eq!((spec.method, spec.seed), (sfn_checkpoint::edit::Method::Reinit, 4));
    spec.write.out = Some(p("destroyed-again"));
    sfn_scope::edit::destroy(&spec, &quiet()).unwrap();
    same(checkpoint(&p("destroyed")), checkpoint(&p("destroyed-again")), "destroy");
}

/// Samples and summary of an evaluation run directory.
fn eval_results(dir: &Path) -> Value {
    serde_json::json!({"samples": jsonl_file(&dir.join("samples.jsonl")), "summary": json_file(&dir.join("summary.json"))})
}

#[test]
fn eval_specs_read_back_rerun_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let task = p("tasks.jsonl").display().to_string();
    ok(&sfn(&["eval", "--make-tasks", "arithmetic", "--count", "2", "--depth", "1", "-o", &task]));
    let outputs = p("outputs.jsonl");
    std::fs::write(&outputs, "{\"id\": \"arith-0-0000\", \"output\": \"So \\\\boxed{18}.\"}\n").unwrap();
    let graded = p("graded").display().to_string();
    ok(&sfn(&["eval", "--grade", outputs.to_str().unwrap(), "--task", &task, "-o", &graded, "--seed", "2"]));
    let spec: sfn_eval::EvalSpec = recorded_spec(&p("graded"));
    sfn_eval::spec::run(&spec, &p("graded-again"), &quiet()).unwrap();
    same(eval_results(&p("graded")), eval_results(&p("graded-again")), "eval --grade");

    let run = p("run").display().to_string();
    ok(&sfn(&["eval", &smollm2(), "--task", &task, "-o", &run, "--mode", "chat", "--max-new", "8", "--threads", "2"]));
    let spec: sfn_eval::EvalSpec = recorded_spec(&p("run"));
    assert_eq!((spec.settings.max_new, spec.runtime.threads), (8, Some(2)));
    sfn_eval::spec::run(&spec, &p("run-again"), &quiet()).unwrap();
    same(eval_results(&p("run")), eval_results(&p("run-again")), "eval MODEL");
}

#[test]
fn sweep_specs_read_back_rerun_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let task = p("tasks.jsonl").display().to_string();
    ok(&sfn(&["eval", "--make-tasks", "arithmetic", "--count", "1", "--depth", "1", "-o", &task]));
    let decode = ["--task", &task, "--mode", "chat", "--max-new", "6", "--threads", "2", "--no-reference"];
    let sweep = p("destroy-sweep").display().to_string();
    let args = ["destroy-sweep", &smollm2(), "--modules", "v", "--methods", "zero", "--layers", "3..5", "-o", &sweep];
    ok(&sfn(&[&args[..], &decode[..]].concat()));
    let spec: sfn_scope::sweep::DestroySweepSpec = recorded_spec(&p("destroy-sweep"));
    sfn_scope::sweep::destroy_sweep(&spec, &p("destroy-sweep-again"), &quiet()).unwrap();
    let rows = |d: &str| json_file(&p(d).join("sweep.json"))["rows"].clone();
    same(rows("destroy-sweep"), rows("destroy-sweep-again"), "destroy-sweep");
    let report = sfn_scope::sweep::SweepReport::read(&p("destroy-sweep")).unwrap();
    assert_eq!(report.rows.iter().map(|r| r.variant.as_str()).collect::<Vec<_>>(), ["A (intact)", "zero v"]);

    // A merge sweep of a model with itself: every variant is A, so every row says the same.
    let sweep = p("merge-sweep").display().to_string();
    let args = ["merge-sweep", &smollm2(), &smollm2(), "--take", "o", "-o", &sweep];
    ok(&sfn(&[&args[..], &decode[..]].concat()));
    let spec: sfn_scope::sweep::MergeSweepSpec = recorded_spec(&p("merge-sweep"));
    sfn_scope::sweep::merge_sweep(&spec, &p("merge-sweep-again"), &quiet()).unwrap();
    same(rows("merge-sweep"), rows("merge-sweep-again"), "merge-sweep");
    let outputs: Vec<Value> =
        rows("merge-sweep").as_array().unwrap().iter().map(|r| r["example_output"].clone()).collect();
    assert!(outputs.windows(2).all(|w| w[0] == w[1]), "{outputs:?}");
}

#[test]
fn a_spec_with_an_unknown_key_is_refused_with_the_key() {
    fn refused<S: DeserializeOwned>(mut v: Value, key: &str) {
        v[key] = Value::Bool(true);
        let err = serde_json::from_value::<S>(v).err().unwrap_or_else(|| panic!("`{key}` was accepted"));
        assert!(err.to_string().contains(&format!("`{key}`")), "{err}");
    }
    let ab = serde_json::json!({"a": "A", "b": "B"});
    refused::<sfn_scope::delta::DeltaSpec>(ab.clone(), "selec");
    refused::<sfn_scope::edit::MergeSpec>(serde_json::json!({"a": "A", "b": "B", "take": "o"}), "alhpa");
    refused::<sfn_scope::edit::DestroySpec>(serde_json::json!({"a": "A", "method": "zero"}), "factr");
    let eval = serde_json::json!({"task": "t.jsonl"});
    let sweep = serde_json::json!({"a": "A", "b": "B", "take": ["o"], "eval": eval});
    refused::<sfn_scope::sweep::MergeSweepSpec>(sweep.clone(), "layer");
    let sweep = serde_json::json!({"a": "A", "layers": "1..2", "eval": eval});
    refused::<sfn_scope::sweep::DestroySweepSpec>(sweep, "method");
    refused::<sfn_eval::EvalSpec>(eval.clone(), "tasks");
    // Nested sections refuse theirs too.
    let err =
        serde_json::from_value::<sfn_eval::EvalSpec>(serde_json::json!({"settings": {"max_neww": 3}})).unwrap_err();
    assert!(err.to_string().contains("max_neww"), "{err}");
    let err = serde_json::from_value::<sfn_eval::EvalSpec>(serde_json::json!({"runtime": {"thread": 3}})).unwrap_err();
    assert!(err.to_string().contains("thread"), "{err}");
}
