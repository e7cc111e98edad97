//! The plug-in seam for a runtime: a stand-in [`Generator`] (n sampled outputs per prompt, token
//! counts in tokens) and [`ReferenceScorer`] run through `evaluate` exactly as a model will, and
//! the summary gains pass@k and maj@k. Also: a generator that breaks the contract is an error.

use sfn_eval::synth::{arithmetic_tasks, ArithmeticSpec, Ops};
use sfn_eval::{
    evaluate, summarize, DecodeSettings, Deliver, EvalConfig, EvalError, FinishReason, GenerateError, Generation,
    Generator, JudgeConfig, Level, Overrides, Prompt, PromptBody, ReferenceScorer, ResultsDir, RunInfo, Sampling,
    TokenCountKind,
};
use std::collections::HashMap;

/// Answers sample k of a task correctly when k < `right`; otherwise answers gold + 1.
struct FakeModel {
    gold: HashMap<String, i64>,
    right: usize,
    calls: usize,
    /// Fail (as a crash would) when reaching this task.
    fail_at: Option<String>,
}

impl Generator for FakeModel {
    fn describe(&self) -> serde_json::Value {
        serde_json::json!({"model": "fake"})
    }

    fn token_count_kind(&self) -> TokenCountKind {
        TokenCountKind::Tokens
    }

    /// Delivers the prompts last to first, as a batch whose later rows finish first would.
    fn generate(&mut self, prompts: &[Prompt], s: &DecodeSettings, deliver: &mut Deliver) -> Result<(), GenerateError> {
        self.calls += 1;
        for (i, p) in prompts.iter().enumerate().rev() {
            if self.fail_at == Some(p.id.clone()) {
                return Err("the machine went down".into());
            }
            let PromptBody::Text(text) = &p.body else { panic!("generate mode gives text") };
            let task = text.lines().next().unwrap();
            let samples = (0..s.n)
                .map(|k| {
                    let a = self.gold[&p.id] + i64::from(k >= self.right);
                    let out = format!("{task} Working it through step by step gives \\boxed{{{a}}}.");
                    Generation { token_count: out.len() / 4, text: out, finish: FinishReason::Eos }
                })
                .collect();
            deliver(i, samples)?;
        }
        Ok(())
    }
}

struct FakeScorer;

impl ReferenceScorer for FakeScorer {
    fn describe(&self) -> serde_json::Value {
        serde_json::json!({"reference": "fake"})
    }

    fn mean_token_loss(&mut self, _prompt: &Prompt, output: &str) -> Result<Option<f64>, GenerateError> {
        Ok(Some(if output.contains("boxed") { 1.5 } else { 9.0 }))
    }
}

fn sampling(n: usize) -> DecodeSettings {
    DecodeSettings {
        n,
        sampling: Sampling { temperature: 0.6, top_k: None, top_p: Some(0.95), seed: 1 },
        ..Default::default()
    }
}

/// Records the progress reports of a run (tasks done).
struct Seen(std::sync::Mutex<Vec<u64>>);

impl sfn_run::Progress for Seen {
    fn set(&self, done: u64, _total: u64) {
        self.0.lock().unwrap().push(done);
    }
}

#[test]
fn a_runtime_plugs_in_through_the_generator_trait() {
    let tasks = arithmetic_tasks(&ArithmeticSpec { count: 6, depth: 2, size: 10, seed: 4, ops: Ops::All }).unwrap();
    let gold = tasks.iter().map(|t| (t.id.clone(), t.answer.as_ref().unwrap().parse().unwrap())).collect();
    let mut model = FakeModel { gold, right: 1, calls: 0, fail_at: None };
    let cfg = EvalConfig { decode: sampling(4), batch_size: 4, ..Default::default() };
    let dir = tempfile::tempdir().unwrap();
    let (mut results, _) = ResultsDir::open(dir.path()).unwrap();
    let seen = Seen(std::sync::Mutex::new(Vec::new()));
    let stats =
        evaluate(&tasks, &cfg, &mut model, Some(&mut FakeScorer), &Overrides::default(), &mut results, &seen).unwrap();
    assert_eq!(stats.done_now, 6);
    assert_eq!(model.calls, 2, "6 prompts in batches of 4");
    assert_eq!(*seen.0.lock().unwrap(), vec![0, 1, 2, 3, 4, 5, 6]);
    assert!(results.records().iter().all(|r| r.signals.ref_loss == Some(1.5)));

    let summary = summarize(
        &tasks,
        results.records(),
        RunInfo {
            command_line: "test".into(),
            seed: 0,
            inputs: serde_json::Value::Null,
            settings: serde_json::Value::Null,
            token_count_kind: model.token_count_kind(),
            notes: vec![],
        },
    );
    // One right sample of four per task.
    assert_eq!(summary.accuracy, Some(0.25));
    assert_eq!(summary.pass_at_k["1"], 0.25);
    assert_eq!(summary.pass_at_k["4"], 1.0);
    assert_eq!(summary.maj_at_k["4"], 0.0, "the wrong answer wins the vote 3 to 1");
    assert_eq!(summary.levels.IV, 6);
    assert_eq!(summary.levels.III, 18);
    assert_eq!(serde_json::to_value(&summary).unwrap()["token_count_kind"], "tokens");
}

#[test]
fn the_reference_loss_signal_can_decide_level_one() {
    let tasks = arithmetic_tasks(&ArithmeticSpec { count: 2, depth: 2, size: 10, seed: 4, ops: Ops::All }).unwrap();
    let gold = tasks.iter().map(|t| (t.id.clone(), t.answer.as_ref().unwrap().parse().unwrap())).collect();
    let mut model = FakeModel { gold, right: 1, calls: 0, fail_at: None };
    let cfg = EvalConfig { judge: JudgeConfig { max_ref_loss: Some(1.0), ..Default::default() }, ..Default::default() };
    let dir = tempfile::tempdir().unwrap();
    let (mut results, _) = ResultsDir::open(dir.path()).unwrap();
    evaluate(&tasks, &cfg, &mut model, Some(&mut FakeScorer), &Overrides::default(), &mut results, &sfn_run::Silent)
        .unwrap();
    let r = &results.records()[0];
    assert_eq!(r.level, Level::I);
    assert!(r.judge_reason.contains("reference loss 1.50 > 1.00"), "{}", r.judge_reason);
}

struct Broken;

impl Generator for Broken {
    fn describe(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    fn token_count_kind(&self) -> TokenCountKind {
        TokenCountKind::Tokens
    }
    fn generate(&mut self, _: &[Prompt], _: &DecodeSettings, _: &mut Deliver) -> Result<(), GenerateError> {
        Ok(())
    }
}

#[test]
fn a_generator_breaking_the_contract_and_bad_settings_are_errors() {
    let tasks = arithmetic_tasks(&ArithmeticSpec { count: 2, depth: 2, size: 10, seed: 4, ops: Ops::All }).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut results, _) = ResultsDir::open(dir.path()).unwrap();
    let cfg = EvalConfig::default();
    let err =
        evaluate(&tasks, &cfg, &mut Broken, None, &Overrides::default(), &mut results, &sfn_run::Silent).unwrap_err();
    assert!(matches!(err, EvalError::GeneratorContract { want: 2, got: 0 }), "{err}");

    let greedy_many = EvalConfig { decode: DecodeSettings { n: 3, ..Default::default() }, ..Default::default() };
    let err = evaluate(&tasks, &greedy_many, &mut Broken, None, &Overrides::default(), &mut results, &sfn_run::Silent)
        .unwrap_err();
    assert!(err.to_string().contains("greedy"), "{err}");
}

#[test]
fn tasks_are_kept_as_delivered_and_a_finished_run_is_in_task_order() {
    let tasks = arithmetic_tasks(&ArithmeticSpec { count: 6, depth: 2, size: 10, seed: 4, ops: Ops::All }).unwrap();
    let gold: HashMap<String, i64> =
        tasks.iter().map(|t| (t.id.clone(), t.answer.as_ref().unwrap().parse().unwrap())).collect();
    let cfg = EvalConfig { batch_size: 4, ..Default::default() };
    let run = |dir: &std::path::Path, fail_at: Option<String>| {
        let mut model = FakeModel { gold: gold.clone(), right: 1, calls: 0, fail_at };
        let (mut results, _) = ResultsDir::open(dir).unwrap();
        let outcome = evaluate(&tasks, &cfg, &mut model, None, &Overrides::default(), &mut results, &sfn_run::Silent);
        (outcome, results.records().iter().map(|r| r.id.clone()).collect::<Vec<_>>())
    };
    let ids: Vec<String> = tasks.iter().map(|t| t.id.clone()).collect();

    let whole = tempfile::tempdir().unwrap();
    let (outcome, order) = run(whole.path(), None);
    assert_eq!(outcome.unwrap().done_now, 6);
    assert_eq!(order, ids, "delivered last to first, put in task order at the end");
    let want = std::fs::read(whole.path().join("samples.jsonl")).unwrap();

    // The first batch's last two tasks are delivered, then the generator dies: both stay on disk
    // (a run killed mid-batch keeps its finished tasks) and the rerun completes the same file.
    let cut = tempfile::tempdir().unwrap();
    let (outcome, order) = run(cut.path(), Some(ids[1].clone()));
    assert!(outcome.unwrap_err().to_string().contains("the machine went down"));
    assert_eq!(order, vec![ids[3].clone(), ids[2].clone()]);
    let on_disk = std::fs::read_to_string(cut.path().join("samples.jsonl")).unwrap();
    assert_eq!(on_disk.lines().count(), 2);
    let (outcome, order) = run(cut.path(), None);
    assert_eq!(outcome.unwrap().resumed, 2);
    assert_eq!(order, ids);
    assert_eq!(std::fs::read(cut.path().join("samples.jsonl")).unwrap(), want);
}
