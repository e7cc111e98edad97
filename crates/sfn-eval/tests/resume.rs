//! Resumable results: a grading run interrupted midway (simulated by truncating samples.jsonl,
//! also in the middle of a line, and between the samples of one task) and restarted ends with
//! exactly the files of an uninterrupted run. Restarts with other settings, and corruption that is
//! not a crash's last line, are refused.

use sfn_eval::results::{SAMPLES_FILE, SUMMARY_FILE};
use sfn_eval::synth::{arithmetic_tasks, ArithmeticSpec, Ops};
use sfn_eval::task::write_tasks;
use sfn_eval::{EvalConfig, EvalError, EvalJob, EvalOutcome, LoadOptions, TaskSet};
use std::path::{Path, PathBuf};

struct Inputs {
    _dir: tempfile::TempDir,
    tasks: TaskSet,
    outputs: PathBuf,
    root: PathBuf,
}

/// 40 arithmetic tasks; task i has 1 + i % 3 samples, right or wrong by parity, some unboxed.
fn inputs() -> Inputs {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let tasks = arithmetic_tasks(&ArithmeticSpec { count: 40, depth: 3, size: 20, seed: 9, ops: Ops::All }).unwrap();
    let task_path = root.join("tasks.jsonl");
    write_tasks(&task_path, &tasks).unwrap();
    let mut lines = String::new();
    for (i, t) in tasks.iter().enumerate() {
        let gold: i64 = t.answer.as_ref().unwrap().parse().unwrap();
        for k in 0..1 + i % 3 {
            let answer = if (i + k) % 2 == 0 { gold } else { gold + 1 };
            let output = if k == 1 {
                format!("Working through the steps of the problem gives {answer} in the end.")
            } else {
                format!("{} Step by step, the total is \\boxed{{{answer}}}.", t.prompt)
            };
            lines.push_str(&serde_json::json!({"id": t.id, "output": output}).to_string());
            lines.push('\n');
        }
    }
    let outputs = root.join("outputs.jsonl");
    std::fs::write(&outputs, lines).unwrap();
    let tasks = TaskSet::load(&task_path, &LoadOptions::default()).unwrap();
    Inputs { _dir: dir, tasks, outputs, root }
}

fn job<'a>(inp: &'a Inputs, out: &'a Path) -> EvalJob<'a> {
    EvalJob {
        tasks: &inp.tasks,
        out_dir: out,
        config: EvalConfig { batch_size: 4, ..Default::default() },
        overrides: None,
        seed: 3,
        command: "sfn eval --grade outputs.jsonl --task tasks.jsonl -o OUT".split(' ').map(String::from).collect(),
        spec: serde_json::Value::Null,
        models: vec![],
        fresh: false,
    }
}

/// Grade the recorded outputs of `inp` with `job`.
fn grade(inp: &Inputs, job: &EvalJob) -> Result<EvalOutcome, EvalError> {
    sfn_eval::grade_recorded(job, &inp.outputs, None, &sfn_run::Silent)
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn interrupted_grading_resumes_to_the_same_results_file() {
    let inp = inputs();
    let clean = inp.root.join("clean");
    let full = grade(&inp, &job(&inp, &clean)).unwrap();
    assert_eq!(full.summary.tasks, 40);
    assert_eq!(full.summary.samples, 40 / 3 * 6 + 1); // 1+2+3 per three tasks, task 39 has 1
    let reference = read(&clean.join(SAMPLES_FILE));
    let reference_summary = read(&clean.join(SUMMARY_FILE));

    // Crash in the middle of a line, about 45% through.
    let run = inp.root.join("crashed");
    grade(&inp, &job(&inp, &run)).unwrap();
    let samples = run.join(SAMPLES_FILE);
    let cut = reference.len() * 45 / 100;
    assert_ne!(reference[cut - 1], b'\n', "the cut should fall inside a line");
    std::fs::write(&samples, &reference[..cut]).unwrap();
    std::fs::remove_file(run.join(SUMMARY_FILE)).unwrap();
    let again = grade(&inp, &job(&inp, &run)).unwrap();
    assert!(again.resume.dropped_lines >= 1, "{:?}", again.resume);
    assert!(again.stats.resumed > 0 && again.stats.done_now > 0, "{:?}", again.stats);
    assert_eq!(read(&samples), reference, "resumed samples.jsonl differs from the uninterrupted one");
    assert_eq!(read(&run.join(SUMMARY_FILE)), reference_summary, "summary.json differs");
}

#[test]
fn a_task_with_only_some_samples_written_is_redone() {
    let inp = inputs();
    let clean = inp.root.join("clean");
    grade(&inp, &job(&inp, &clean)).unwrap();
    let reference = read(&clean.join(SAMPLES_FILE));

    // Cut right after the first sample line of a three-sample task (task index 2).
    let lines: Vec<&[u8]> = reference.split_inclusive(|&b| b == b'\n').collect();
    let first_of_task2 = 1 + 2; // task 0: 1 sample, task 1: 2 samples
    let keep: usize = lines[..first_of_task2 + 1].iter().map(|l| l.len()).sum();
    let run = inp.root.join("partial");
    grade(&inp, &job(&inp, &run)).unwrap();
    std::fs::write(run.join(SAMPLES_FILE), &reference[..keep]).unwrap();
    let again = grade(&inp, &job(&inp, &run)).unwrap();
    assert_eq!(again.resume.kept_tasks, 2);
    assert_eq!(again.resume.dropped_lines, 1);
    assert_eq!(read(&run.join(SAMPLES_FILE)), reference);
}

#[test]
fn a_finished_run_restarted_does_nothing_and_summarises_again() {
    let inp = inputs();
    let out = inp.root.join("twice");
    let first = grade(&inp, &job(&inp, &out)).unwrap();
    let second = grade(&inp, &job(&inp, &out)).unwrap();
    assert_eq!(second.stats.done_now, 0);
    assert_eq!(second.stats.resumed, 40);
    assert_eq!(first.summary, second.summary);
}

#[test]
fn restarting_with_other_settings_is_refused() {
    let inp = inputs();
    let out = inp.root.join("settings");
    grade(&inp, &job(&inp, &out)).unwrap();
    let mut other = job(&inp, &out);
    other.config.judge.min_relatedness = 0.5;
    let err = grade(&inp, &other).unwrap_err();
    assert!(matches!(err, EvalError::ResumeMismatch { .. }), "{err}");
    assert!(err.to_string().contains("settings"), "{err}");
    // ...unless asked to start fresh
    other.fresh = true;
    grade(&inp, &other).unwrap();
}

#[test]
fn corruption_before_the_last_line_is_an_error_naming_the_line() {
    let inp = inputs();
    let out = inp.root.join("corrupt");
    grade(&inp, &job(&inp, &out)).unwrap();
    let path = out.join(SAMPLES_FILE);
    let text = String::from_utf8(read(&path)).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[4] = "{\"id\": garbage";
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let err = grade(&inp, &job(&inp, &out)).unwrap_err();
    assert!(matches!(err, EvalError::CorruptResults { line: 5, .. }), "{err}");
    assert!(err.to_string().contains("samples.jsonl:5"), "{err}");
}
