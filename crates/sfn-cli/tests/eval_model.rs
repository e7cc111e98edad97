//! `sfn eval MODEL` end to end on the real SmolLM2-135M-Instruct: samples and summary with levels,
//! the reference-model loss, resuming an interrupted run to the same results file, Ctrl-C in the
//! middle of a batch keeping the tasks already finished, and a prompt longer than the model's
//! context refused with the task named.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Output;

fn tasks(dir: &Path, count: usize) -> String {
    let path = dir.join("tasks.jsonl");
    let p = path.display().to_string();
    ok(&sfn(&["eval", "--make-tasks", "arithmetic", "--count", &count.to_string(), "--depth", "1", "-o", &p]));
    p
}

/// A task file of conversation prompts `(id, prompt)` in `dir`; its path.
fn conversation_tasks(dir: &Path, tasks: &[(&str, &str)]) -> String {
    let path = dir.join("conversation.jsonl");
    let lines: String = tasks
        .iter()
        .map(|(id, prompt)| format!("{}\n", serde_json::json!({"id": id, "prompt": prompt, "kind": "conversation"})))
        .collect();
    std::fs::write(&path, lines).unwrap();
    path.display().to_string()
}

fn eval(model: &str, task: &str, out: &Path, extra: &[&str]) -> Output {
    let out = out.display().to_string();
    let mut args =
        vec!["eval", model, "--task", task, "-o", &out, "--mode", "chat", "--max-new", "24", "--batch-size", "2"];
    args.extend_from_slice(extra);
    sfn(&args)
}

#[test]
fn eval_runs_smollm2_and_an_interrupted_run_resumes_to_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let task = tasks(dir.path(), 5);
    let m = smollm2();

    let full = dir.path().join("full");
    let table = ok(&eval(&m, &task, &full, &[]));
    assert!(table.contains("level") && table.contains("accuracy"), "{table}");
    let summary: Value = serde_json::from_slice(&std::fs::read(full.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["tasks"], 5);
    assert_eq!(summary["token_count_kind"], "tokens");
    let levels = &summary["levels"];
    let total: u64 = ["I", "II", "III", "IV"].iter().map(|l| levels[l].as_u64().unwrap()).sum();
    assert_eq!(total, 5, "{summary}");
    let samples = std::fs::read_to_string(full.join("samples.jsonl")).unwrap();
    let lines: Vec<&str> = samples.lines().collect();
    assert_eq!(lines.len(), 5);
    for line in &lines {
        let r: Value = serde_json::from_str(line).unwrap();
        let tokens = r["tokens"].as_u64().unwrap();
        assert!((1..=24).contains(&tokens), "{line}");
        assert!(!r["output"].as_str().unwrap().is_empty(), "{line}");
    }

    // Killed after three tasks, in the middle of writing the fourth: the rerun drops the partial
    // line, runs the rest in other batches ([4, 5] instead of [3, 4], [5]) and must write the
    // same bytes as the uninterrupted run.
    let cut = dir.path().join("cut");
    std::fs::create_dir(&cut).unwrap();
    std::fs::copy(full.join("run.json"), cut.join("run.json")).unwrap();
    let partial = format!("{}\n{}", lines[..3].join("\n"), &lines[3][..lines[3].len() / 2]);
    std::fs::write(cut.join("samples.jsonl"), partial).unwrap();
    let rerun = eval(&m, &task, &cut, &[]);
    ok(&rerun);
    assert!(String::from_utf8_lossy(&rerun.stderr).contains("resumed: 3 task(s)"));
    assert_eq!(std::fs::read_to_string(cut.join("samples.jsonl")).unwrap(), samples);
}

#[test]
fn ctrl_c_mid_batch_keeps_the_tasks_already_finished() {
    // One batch: a prompt SmolLM2 answers in about 30 tokens, and one it writes on until the
    // token limit. Ctrl-C once the short one is on disk; the long one is still decoding.
    let dir = tempfile::tempdir().unwrap();
    let task = conversation_tasks(
        dir.path(),
        &[
            (
                "long",
                "Write a very long, detailed story about a dragon who learns to bake bread. Use at least 2000 words.",
            ),
            ("short", "Reply with the single word: yes"),
        ],
    );
    let out = dir.path().join("out");
    let args = ["eval", &smollm2(), "--task", &task, "-o", &out.display().to_string(), "--mode", "chat"];
    let args: Vec<&str> = args.into_iter().chain(["--max-new", "600", "--batch-size", "2"]).collect();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_sfn"));
    command.args(&args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    // A shell that starts the tests in the background (`scripts/test &`) has them ignore SIGINT,
    // and the ignoring is inherited: give the child Ctrl-C's default action back.
    // SAFETY: signal(2) only, between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    let samples = out.join("samples.jsonl");
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&samples).is_ok_and(|s| s.ends_with('\n')) {
        assert!(child.try_wait().unwrap().is_none(), "sfn ended before the short task was written");
        assert!(started.elapsed().as_secs() < 300, "the short task never appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    assert!(!child.wait().unwrap().success(), "interrupted before the long task finished");
    let kept = std::fs::read_to_string(&samples).unwrap();
    let ids: Vec<String> =
        kept.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_str().unwrap().into()).collect();
    assert_eq!(ids, ["short"], "{kept}");

    // The rerun generates only the long task and leaves the file in task order.
    let rerun = sfn(&args);
    ok(&rerun);
    assert!(String::from_utf8_lossy(&rerun.stderr).contains("resumed: 1 task(s)"));
    let done = std::fs::read_to_string(&samples).unwrap();
    let lines: Vec<&str> = done.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].contains(r#""id":"long""#) && lines[1] == kept.trim_end(), "{done}");
}

#[test]
fn eval_records_the_reference_loss_and_judges_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let task = tasks(dir.path(), 2);
    let m = smollm2();
    let out = dir.path().join("ref");
    // A threshold no fluent text reaches below: every output becomes level I by reference loss.
    ok(&eval(&m, &task, &out, &["--reference", &m, "--max-ref-loss", "0.01"]));
    for line in std::fs::read_to_string(out.join("samples.jsonl")).unwrap().lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        let loss = r["signals"]["ref_loss"].as_f64().expect("ref_loss recorded");
        // The model's own greedy text is likely under itself: well below the ~10.8 nats of a
        // uniform guess over 49152 tokens.
        assert!(loss > 0.01 && loss < 3.0, "{line}");
        assert_eq!(r["level"], "I", "{line}");
        assert!(r["judge_reason"].as_str().unwrap().contains("reference loss"), "{line}");
    }
}

#[test]
fn eval_refuses_a_prompt_longer_than_the_context_naming_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let task = dir.path().join("long.jsonl");
    let prompt = "word ".repeat(9000);
    std::fs::write(&task, format!("{{\"id\": \"too-long\", \"prompt\": \"{prompt}\", \"answer\": \"1\"}}\n")).unwrap();
    let out = eval(&smollm2(), &task.display().to_string(), &dir.path().join("o"), &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("too-long") && err.contains("8192 positions"), "{err}");
}

#[test]
fn budget_forcing_continues_past_the_end_with_the_cue() {
    let dir = tempfile::tempdir().unwrap();
    let t = conversation_tasks(dir.path(), &[("capital", "What is the capital of France?")]);
    let m = smollm2();
    let record = |out: &Path| -> Value {
        let text = std::fs::read_to_string(out.join("samples.jsonl")).unwrap();
        serde_json::from_str(text.lines().next().unwrap()).unwrap()
    };
    let plain = dir.path().join("plain");
    ok(&eval(&m, &t, &plain, &[]));
    let plain = record(&plain);
    assert_eq!(plain["finish"], "eos", "the unforced answer must end by itself: {plain}");
    let forced = dir.path().join("forced");
    ok(&eval(&m, &t, &forced, &["--budget-forcing", "1"]));
    let forced = record(&forced);
    let (p, f) = (plain["output"].as_str().unwrap(), forced["output"].as_str().unwrap());
    assert!(f.starts_with(&format!("{p}\nWait")), "forced output does not continue the plain one with the cue: {f:?}");
    assert!(forced["tokens"].as_u64().unwrap() > plain["tokens"].as_u64().unwrap());
    assert!(forced["tokens"].as_u64().unwrap() <= 24);
}

#[test]
fn sampled_runs_give_pass_and_maj_at_k_and_are_reproducible_by_seed() {
    let dir = tempfile::tempdir().unwrap();
    let task = tasks(dir.path(), 2);
    let m = smollm2();
    let sample = ["--temperature", "0.8", "--top-p", "0.95", "--samples", "3"];
    let run = |name: &str, seed: &str| -> (String, Value) {
        let out = dir.path().join(name);
        ok(&eval(&m, &task, &out, &[&sample[..], &["--seed", seed]].concat()));
        let summary = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
        (std::fs::read_to_string(out.join("samples.jsonl")).unwrap(), summary)
    };
    let (first, summary) = run("s1", "7");
    assert_eq!(summary["samples"], 6);
    assert!(summary["pass_at_k"]["3"].is_number() && summary["maj_at_k"]["3"].is_number(), "{summary}");
    let outputs: Vec<String> = first
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["output"].as_str().unwrap().to_string())
        .collect();
    assert!(outputs[0] != outputs[1] || outputs[1] != outputs[2], "three samples of one task are identical");
    assert_eq!(run("s2", "7").0, first, "the same seed must reproduce the samples");
    assert_ne!(run("s3", "8").0, first, "another seed must change them");
}

#[test]
fn recorded_outputs_are_judged_with_a_reference_model() {
    let dir = tempfile::tempdir().unwrap();
    let prompt = "Describe a perfect weekend in the mountains.";
    let task = conversation_tasks(dir.path(), &[("a", prompt), ("b", prompt)]);
    let outputs = dir.path().join("o.jsonl");
    std::fs::write(
        &outputs,
        concat!(
            "{\"id\": \"a\", \"output\": \"A perfect weekend in the mountains starts with a quiet morning walk through the pine forest, followed by a long lunch in a small village and an evening by the fire.\"}\n",
            "{\"id\": \"b\", \"output\": \"Weekend mountains the perfectly of, in quietness starts morning pine walk forest lunch the village evening a fire by with small followed.\"}\n"
        ),
    )
    .unwrap();
    let out = dir.path().join("graded");
    let (t, o, d) = (task, outputs.display().to_string(), out.display().to_string());
    ok(&sfn(&["eval", "--grade", &o, "--task", &t, "-o", &d, "--reference", &smollm2()]));
    let text = std::fs::read_to_string(out.join("samples.jsonl")).unwrap();
    let recs: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let loss = |r: &Value| r["signals"]["ref_loss"].as_f64().unwrap();
    println!("reference loss: fluent {:.2}, shuffled {:.2}", loss(&recs[0]), loss(&recs[1]));
    // The same words, shuffled: text statistics cannot tell them apart, the reference model can.
    assert!(loss(&recs[0]) < 3.5 && loss(&recs[1]) > 3.5, "{text}");
    assert_eq!(recs[0]["level"], "III");
    assert_eq!(recs[1]["level"], "I");
}
