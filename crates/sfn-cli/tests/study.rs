//! `sfn study` and `sfn report` end to end, on a tiny random Llama (A) and A with o_proj trained
//! a few steps (B): a study killed midway resumes to the same results as one run straight
//! through; a rerun skips complete steps, redoes only a step whose settings changed, and
//! `--force` redoes all; every kind of malformed study file is refused before anything runs,
//! naming the line, the key and what was expected; the report says which sections ran, and a
//! partial run says so.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// A study of (A, B) in `dir`, paths relative to the file; `layers` varies the destroy sweep.
fn study_text(layers: &str) -> String {
    format!(
        r#"title = "tiny study"
a = "tiny"
b = "b"
seed = 1

[delta]
bins = 20

[[merge-sweep]]
name = "arith"
take = ["o_proj", "mlp"]
eval.task = "worked-5.jsonl"
eval.settings = {{ max_new = 10, mode = "chat" }}

[destroy-sweep]
modules = ["o_proj"]
methods = ["zero"]
layers = "{layers}"
eval.task = "worked-5.jsonl"
eval.settings = {{ max_new = 10, mode = "chat" }}
"#
    )
}

/// A (tiny), B (A with o_proj trained 3 steps) and the task file, in `dir`.
fn pair(dir: &Path) {
    let a = tiny_model(dir).display().to_string();
    let data = worked(dir, 6, 5);
    let b = dir.join("b").display().to_string();
    let args = ["freeze", &a, "--data", &data, "--train", "o_proj", "--max-steps", "3", "--mode", "chat", "-o", &b];
    ok(&sfn(&args));
}

fn study(file: &Path, out: &Path, extra: &[&str]) -> String {
    ok(&sfn(&[&["study", file.to_str().unwrap(), "-o", out.to_str().unwrap()][..], extra].concat()))
}

/// The study's numbers and outputs (json_file drops times, paths and provenance).
fn results(out: &Path) -> Value {
    let mut sweeps = vec![];
    for sweep in ["merge-sweep/arith", "destroy-sweep"] {
        let mut variants: Vec<_> =
            std::fs::read_dir(out.join(sweep)).unwrap().flatten().filter(|e| e.path().is_dir()).collect();
        variants.sort_by_key(|e| e.file_name());
        for v in variants {
            let outputs: Vec<Value> = jsonl_file(&v.path().join("samples.jsonl"))
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["output"].clone())
                .collect();
            sweeps.push(serde_json::json!({"variant": v.file_name().to_string_lossy(), "outputs": outputs}));
        }
        sweeps.push(json_file(&out.join(sweep).join("sweep.json")));
    }
    serde_json::json!({"delta": json_file(&out.join("delta/delta.json")), "sweeps": sweeps})
}

fn status(dir: &Path) -> String {
    json_file(&dir.join("run.json"))["status"].as_str().unwrap().to_string()
}

#[test]
fn a_killed_study_resumes_to_the_same_results_and_reruns_only_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    pair(dir.path());
    let file = dir.path().join("study.toml");
    std::fs::write(&file, study_text("0..1")).unwrap();

    let full = dir.path().join("full");
    let stdout = study(&file, &full, &[]);
    assert_eq!(stdout.matches(": ran\n").count(), 3, "{stdout}");
    assert_eq!(status(&full), "complete");
    let html = std::fs::read_to_string(full.join("index.html")).unwrap();
    assert!(html.contains("tiny study") && html.contains("Merge sweep") && html.contains("Destruction sweep"));
    assert!(html.matches("<figure>").count() >= 5, "delta's four figures and the sweeps' level charts");

    // Killed once the delta is complete (the merge sweep is then under way).
    let part = dir.path().join("part");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sfn"))
        .args(["study", file.to_str().unwrap(), "-o", part.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while !(part.join("delta/run.json").is_file() && status(&part.join("delta")) == "complete") {
        assert!(t0.elapsed().as_secs() < 120, "the delta step never completed");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(status(&part), "partial", "the kill came after the study finished");
    // The report of an interrupted study says so.
    ok(&sfn(&["report", part.to_str().unwrap()]));
    let html = std::fs::read_to_string(part.join("index.html")).unwrap();
    assert!(html.contains(r#"<span class="state partial">partial</span>"#), "the page must say the study is partial");

    let stdout = study(&file, &part, &[]);
    assert!(stdout.contains("delta: complete: skipped"), "{stdout}");
    assert!(stdout.contains("destroy-sweep: ran"), "{stdout}");
    assert_eq!(status(&part), "complete");
    assert_eq!(results(&part), results(&full), "the resumed study must equal the uninterrupted one");

    // Only the changed section runs again; --force runs all.
    std::fs::write(&file, study_text("1..2")).unwrap();
    let stdout = study(&file, &full, &[]);
    assert_eq!(stdout.matches("complete: skipped").count(), 2, "{stdout}");
    assert!(stdout.contains("destroy-sweep: settings changed: ran again"), "{stdout}");
    let manifest = sfn_run::Manifest::read(&full.join("destroy-sweep")).unwrap();
    assert_eq!(manifest.provenance.spec["layers"], "1..2");
    let stdout = study(&file, &full, &["--force"]);
    assert_eq!(stdout.matches("settings changed: ran again").count(), 3, "{stdout}");

    // A section taken out of the file leaves the report (its old results stay on disk).
    std::fs::write(&file, study_text("1..2").split("[destroy-sweep]").next().unwrap()).unwrap();
    let stdout = study(&file, &full, &[]);
    assert_eq!(stdout.matches("complete: skipped").count(), 2, "{stdout}");
    let html = std::fs::read_to_string(full.join("index.html")).unwrap();
    assert!(html.contains(r#"<h2>Destruction<span class="state not-run">not run</span>"#));
}

/// `sfn study` on a file holding `text` must fail before creating its output, with an error
/// holding every piece of `want`.
fn refused(dir: &Path, name: &str, text: &str, want: &[&str]) {
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, text).unwrap();
    let out = dir.join(format!("{name}-out"));
    let o = sfn(&["study", file.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{name}: accepted");
    for w in want {
        assert!(err.contains(w), "{name}: `{w}` missing from: {err}");
    }
    assert!(!out.exists(), "{name}: something ran");
}

#[test]
fn malformed_study_files_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b) = (delta_a(), delta_b());
    let head = format!("a = \"{a}\"\nb = \"{b}\"\n");
    std::fs::write(d.join("tasks.jsonl"), r#"{"id": "t", "prompt": "1 + 1 =", "answer": "2"}"#).unwrap();

    refused(
        d,
        "unknown-key",
        &format!("{head}\n[delta]\nbnis = 20\n"),
        &["line 5", "delta.bnis", "unknown field `bnis`", "expected one of"],
    );
    refused(
        d,
        "wrong-type",
        &format!("{head}\n[delta]\nbins = \"many\"\n"),
        &["line 5", "delta.bins", "invalid type: string \"many\", expected usize"],
    );
    refused(
        d,
        "missing-model",
        &format!("a = \"nowhere/model\"\nb = \"{b}\"\n[delta]\n"),
        &["line 1", "delta[0].a", "nowhere/model does not exist"],
    );
    refused(
        d,
        "bad-selector",
        &format!("{head}\n[merge-sweep]\ntake = [\"o_porj\"]\neval.task = \"tasks.jsonl\"\n"),
        &["line 5", "merge-sweep[0].take", "o_porj"],
    );
    refused(
        d,
        "missing-field",
        &format!("{head}\n[merge-sweep]\ntake = [\"o_proj\"]\n"),
        &["line 4", "missing field `eval`"],
    );
    refused(d, "unknown-section", &format!("{head}\n[delat]\n"), &["line 4", "unknown field `delat`"]);
    refused(d, "syntax", &format!("{head}\n[delta\n"), &["line 4"]);
    refused(
        d,
        "unnamed-entries",
        &format!("{head}\n[[delta]]\nbins = 10\n[[delta]]\nbins = 20\n"),
        &["line 4", "needs a `name`"],
    );
}

#[test]
fn report_of_a_single_command_marks_the_other_sections_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("delta");
    ok(&sfn(&["delta", &delta_a(), &delta_b(), "-o", out.to_str().unwrap()]));
    let page = ok(&sfn(&["report", out.to_str().unwrap()]));
    assert_eq!(page.trim(), out.join("index.html").display().to_string());
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert_eq!(
        html.matches(r#"<span class="state not-run">not run</span>"#).count(),
        5,
        "merge, freeze, destruction, evaluations, activations"
    );
    assert!(html.contains(r#"<h2>Delta<span class="state complete">complete</span>"#));
    assert!(!html.contains("src=\"http") && !html.contains("<script"), "self-contained and static");

    let err = String::from_utf8_lossy(&sfn(&["report", dir.path().to_str().unwrap()]).stderr).into_owned();
    assert!(err.contains("has no run.json: not an sfn results directory"), "{err}");
}
