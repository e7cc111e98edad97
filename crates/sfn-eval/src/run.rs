//! One evaluation run, end to end: build prompts, generate (any [`Generator`]), grade, judge,
//! append to the results directory, and summarise. `sfn eval --grade` is this with a
//! [`crate::ReplayGenerator`]; a model runtime plugs in the same way.

use crate::answer::{self, answer_key, Grade};
use crate::decode::DecodeSettings;
use crate::error::{EvalError, Result};
use crate::generate::{FinishReason, Generation, Generator, ReferenceScorer, ReplayGenerator, TokenCountKind};
use crate::judge::{self, JudgeConfig, Level, Overrides};
use crate::metrics::{self, TaskOutcome};
use crate::prompt::{Prompt, PromptConfig};
use crate::results::{check_resume, LevelSource, ResultsDir, ResumeReport, SampleRecord, SAMPLES_FILE, SUMMARY_FILE};
use crate::task::{Task, TaskKind, TaskSet};
use serde::{Deserialize, Serialize};
use sfn_run::{Input, Progress, Provenance, RunDir};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Everything that decides how samples are produced and judged (recorded in run.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalConfig {
    pub prompt: PromptConfig,
    pub decode: DecodeSettings,
    pub judge: JudgeConfig,
    /// Prompts per `generate` call (and between syncs of samples.jsonl to disk).
    pub batch_size: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            prompt: PromptConfig::default(),
            decode: DecodeSettings::default(),
            judge: JudgeConfig::default(),
            batch_size: 16,
        }
    }
}

/// What one call of [`evaluate`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvalStats {
    /// Tasks generated and judged in this call.
    pub done_now: usize,
    /// Tasks skipped because their results were already on disk.
    pub resumed: usize,
}

/// Generate, grade and judge every task not yet in `results`, appending each task as soon as its
/// samples are delivered (so an interrupted run keeps every finished task, even mid-batch).
/// `progress` hears (tasks done, resumed ones included; all tasks) before the first batch and after
/// each finished task. When every
/// task is done, samples.jsonl is put in task order: the file does not depend on batching or
/// on where a run was interrupted.
pub fn evaluate(
    tasks: &[Task],
    cfg: &EvalConfig,
    generator: &mut dyn Generator,
    mut scorer: Option<&mut dyn ReferenceScorer>,
    overrides: &Overrides,
    results: &mut ResultsDir,
    progress: &dyn Progress,
) -> Result<EvalStats> {
    cfg.decode.validate()?;
    let pending: Vec<&Task> = tasks.iter().filter(|t| !results.is_done(&t.id)).collect();
    let mut stats = EvalStats { resumed: tasks.len() - pending.len(), done_now: 0 };
    let total = tasks.len();
    progress.set(stats.resumed as u64, total as u64);
    for batch in pending.chunks(cfg.batch_size.max(1)) {
        let prompts: Vec<_> = batch.iter().map(|t| cfg.prompt.build(t)).collect();
        let mut delivered = vec![false; batch.len()];
        let generated = generator.generate(&prompts, &cfg.decode, &mut |i, samples| {
            match delivered.get_mut(i) {
                Some(seen @ false) => *seen = true,
                _ => return Err(format!("prompt {i} of {} delivered twice or unknown", batch.len()).into()),
            }
            let records = judge_task(batch[i], &prompts[i], samples, cfg, &mut scorer, overrides)?;
            results.append_task(records)?;
            stats.done_now += 1;
            progress.set((stats.resumed + stats.done_now) as u64, total as u64);
            Ok(())
        });
        // A failed delivery comes back boxed: unbox it, so the results file's own error is reported.
        generated.map_err(|e| e.downcast::<EvalError>().map_or_else(EvalError::Generation, |e| *e))?;
        let got = delivered.iter().filter(|&&d| d).count();
        if got != batch.len() {
            return Err(EvalError::GeneratorContract { want: batch.len(), got });
        }
        results.sync()?;
    }
    if tasks.iter().all(|t| results.is_done(&t.id)) {
        results.put_in_order(tasks)?;
    }
    Ok(stats)
}

/// Grade and judge one task's samples into its records.
fn judge_task(
    task: &Task,
    prompt: &Prompt,
    samples: Vec<Generation>,
    cfg: &EvalConfig,
    scorer: &mut Option<&mut dyn ReferenceScorer>,
    overrides: &Overrides,
) -> Result<Vec<SampleRecord>> {
    if samples.is_empty() {
        return Err(EvalError::Generation(format!("no samples for task `{}`", task.id).into()));
    }
    let n = samples.len();
    let mut records = Vec::with_capacity(n);
    for (k, g) in samples.into_iter().enumerate() {
        // Conversation tasks have nothing to extract: a letter's last number is no answer.
        let grade = match task.kind {
            TaskKind::Reasoning => {
                answer::grade_sample(&g.text, task.answer.as_deref(), g.finish == FinishReason::Length)
            }
            TaskKind::Conversation => Grade { extracted: None, correct: None },
        };
        let ref_loss = match scorer.as_deref_mut() {
            Some(s) => s.mean_token_loss(prompt, &g.text).map_err(EvalError::Generation)?,
            None => None,
        };
        let signals = judge::signals(&task.prompt, &g.text, ref_loss);
        let verdict = cfg.judge.judge(&signals, &grade, task.kind);
        let (level, level_source) = match overrides.get(&task.id, k) {
            Some(l) => (l, LevelSource::Override),
            None => (verdict.level, LevelSource::Judge),
        };
        records.push(SampleRecord {
            id: task.id.clone(),
            sample: k,
            samples: n,
            prompt: prompt.body.clone(),
            tokens: g.token_count,
            finish: g.finish,
            output: g.text,
            gold: task.answer.clone(),
            extracted: grade.extracted.as_ref().map(|e| e.text.clone()),
            extracted_by: grade.extracted.as_ref().map(|e| e.source),
            correct: grade.correct,
            level,
            level_source,
            judge_level: verdict.level,
            judge_reason: verdict.reason,
            signals,
        });
    }
    Ok(records)
}

/// Counts of samples per level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[allow(non_snake_case)]
pub struct LevelCounts {
    pub I: usize,
    pub II: usize,
    pub III: usize,
    pub IV: usize,
}

impl LevelCounts {
    pub fn add(&mut self, level: Level) {
        match level {
            Level::I => self.I += 1,
            Level::II => self.II += 1,
            Level::III => self.III += 1,
            Level::IV => self.IV += 1,
        }
    }

    pub fn get(&self, level: Level) -> usize {
        match level {
            Level::I => self.I,
            Level::II => self.II,
            Level::III => self.III,
            Level::IV => self.IV,
        }
    }
}

/// What the caller knows about the run that the records do not: recorded verbatim.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub command_line: String,
    /// Seed of the bootstrap (and recorded for the run as a whole).
    pub seed: u64,
    pub inputs: serde_json::Value,
    pub settings: serde_json::Value,
    pub token_count_kind: TokenCountKind,
    pub notes: Vec<String>,
}

/// Bootstrap resamples for the 95% interval: enough for percentile stability to ~0.5 points.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// summary.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub sfn_version: String,
    pub command_line: String,
    pub seed: u64,
    pub inputs: serde_json::Value,
    pub settings: serde_json::Value,
    /// "tokens" (model tokens) or "words" (whitespace-separated words: no tokenizer was used).
    pub token_count_kind: TokenCountKind,
    /// Tasks with results, and their samples.
    pub tasks: usize,
    pub samples: usize,
    /// Tasks with a gold answer (the denominator of accuracy).
    pub graded_tasks: usize,
    /// Mean over graded tasks of the share of correct samples.
    pub accuracy: Option<f64>,
    /// Percentile bootstrap over tasks, `bootstrap_resamples` draws seeded with `seed`.
    pub ci95: Option<[f64; 2]>,
    pub bootstrap_resamples: usize,
    pub mean_tokens: Option<f64>,
    pub levels: LevelCounts,
    /// Samples whose level came from the override file.
    pub level_overrides: usize,
    /// Only with more than one sample per task: k -> value.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub pass_at_k: serde_json::Map<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub maj_at_k: serde_json::Map<String, serde_json::Value>,
    pub notes: Vec<String>,
}

/// Summarise the records of a run, in task order.
pub fn summarize(tasks: &[Task], records: &[SampleRecord], info: RunInfo) -> Summary {
    let mut by_id: HashMap<&str, Vec<&SampleRecord>> = HashMap::new();
    for r in records {
        by_id.entry(r.id.as_str()).or_default().push(r);
    }
    let mut levels = LevelCounts::default();
    let mut outcomes = Vec::new();
    let (mut n_tasks, mut n_samples, mut token_sum, mut overrides) = (0, 0, 0usize, 0);
    let mut min_samples = usize::MAX;
    for task in tasks {
        let Some(rs) = by_id.get(task.id.as_str()) else { continue };
        n_tasks += 1;
        min_samples = min_samples.min(rs.len());
        for r in rs {
            n_samples += 1;
            token_sum += r.tokens;
            levels.add(r.level);
            overrides += (r.level_source == LevelSource::Override) as usize;
        }
        if rs.iter().all(|r| r.correct.is_some()) {
            let mut key_correct = HashMap::new();
            let answer_keys = rs
                .iter()
                .map(|r| {
                    r.extracted.as_ref().map(|e| {
                        let key = answer_key(e);
                        key_correct.entry(key.clone()).or_insert(r.correct == Some(true));
                        key
                    })
                })
                .collect();
            outcomes.push(TaskOutcome {
                correct: rs.iter().map(|r| r.correct == Some(true)).collect(),
                answer_keys,
                key_correct,
            });
        }
    }
    let mut pass_at_k = serde_json::Map::new();
    let mut maj_at_k = serde_json::Map::new();
    if n_tasks > 0 && min_samples > 1 {
        for k in metrics::report_ks(min_samples) {
            if let Some(v) = metrics::mean_pass_at_k(&outcomes, k) {
                pass_at_k.insert(k.to_string(), v.into());
            }
            if let Some(v) = metrics::mean_maj_at_k(&outcomes, k) {
                maj_at_k.insert(k.to_string(), v.into());
            }
        }
    }
    Summary {
        sfn_version: env!("CARGO_PKG_VERSION").into(),
        command_line: info.command_line,
        seed: info.seed,
        inputs: info.inputs,
        settings: info.settings,
        token_count_kind: info.token_count_kind,
        tasks: n_tasks,
        samples: n_samples,
        graded_tasks: outcomes.len(),
        accuracy: metrics::accuracy(&outcomes),
        ci95: metrics::bootstrap_ci95(&outcomes, BOOTSTRAP_RESAMPLES, info.seed),
        bootstrap_resamples: BOOTSTRAP_RESAMPLES,
        mean_tokens: (n_samples > 0).then(|| token_sum as f64 / n_samples as f64),
        levels,
        level_overrides: overrides,
        pass_at_k,
        maj_at_k,
        notes: info.notes,
    }
}

impl Summary {
    /// A plain-text table for the terminal.
    pub fn table(&self) -> String {
        let pct = |x: f64| format!("{:.1}%", 100.0 * x);
        let mut out = String::new();
        let unit = match self.token_count_kind {
            TokenCountKind::Tokens => "tokens",
            TokenCountKind::Words => "words (no tokenizer)",
        };
        out.push_str(&format!(
            "tasks        {} ({} samples, {} with a gold answer)\n",
            self.tasks, self.samples, self.graded_tasks
        ));
        match (self.accuracy, self.ci95) {
            (Some(a), Some([lo, hi])) => out.push_str(&format!(
                "accuracy     {}  95% CI [{}, {}]  (bootstrap, {} resamples, seed {})\n",
                pct(a),
                pct(lo),
                pct(hi),
                self.bootstrap_resamples,
                self.seed
            )),
            _ => out.push_str("accuracy     n/a (no gold answers)\n"),
        }
        if let Some(m) = self.mean_tokens {
            out.push_str(&format!("mean length  {m:.1} {unit}\n"));
        }
        for (name, map) in [("pass@k", &self.pass_at_k), ("maj@k", &self.maj_at_k)] {
            if !map.is_empty() {
                let cells: Vec<String> =
                    map.iter().map(|(k, v)| format!("@{k} {}", pct(v.as_f64().unwrap_or(f64::NAN)))).collect();
                out.push_str(&format!("{name:<12} {}\n", cells.join("  ")));
            }
        }
        let total = self.samples.max(1) as f64;
        out.push_str("\nlevel   samples  share  meaning\n");
        for (level, meaning) in Level::ALL.iter().zip([
            "not language",
            "language, off the prompt",
            "on the task, wrong or no answer",
            "correct answer by reasoning",
        ]) {
            let n = self.levels.get(*level);
            out.push_str(&format!("{:<7} {:>7}  {:>5}  {meaning}\n", level.name(), n, pct(n as f64 / total)));
        }
        if self.level_overrides > 0 {
            out.push_str(&format!("({} level(s) set by the override file)\n", self.level_overrides));
        }
        out
    }
}

/// One evaluation run: tasks, where the results go and how samples are made and judged. The same
/// job runs a model (`sfn eval MODEL`, merge/destroy `--eval`, each sweep variant) or grades
/// recorded outputs (`sfn eval --grade`).
#[derive(Debug, Clone)]
pub struct EvalJob<'a> {
    pub tasks: &'a TaskSet,
    pub out_dir: &'a Path,
    pub config: EvalConfig,
    pub overrides: Option<&'a Path>,
    /// Seed of the bootstrap interval.
    pub seed: u64,
    /// The command line and the spec that asked for this evaluation (recorded in run.json).
    pub command: Vec<String>,
    pub spec: serde_json::Value,
    /// The models the samples come from, for provenance (none when grading recorded outputs).
    pub models: Vec<Input>,
    /// Discard earlier results in `out_dir` instead of resuming.
    pub fresh: bool,
}

/// What an evaluation run produced.
#[derive(Debug, Clone)]
pub struct EvalOutcome {
    pub summary: Summary,
    pub resume: ResumeReport,
    pub stats: EvalStats,
    pub summary_path: PathBuf,
}

/// Where the samples of a run come from, as recorded in run.json and summary.json.
#[derive(Debug, Clone)]
pub struct SampleSource {
    /// Input files besides the task file and overrides, by role (e.g. the recorded outputs).
    pub files: Vec<(String, PathBuf)>,
    /// What else identifies the samples' origin in the summary.
    pub inputs: serde_json::Map<String, serde_json::Value>,
    /// False when the outputs were decoded elsewhere: the config's decode settings are then not
    /// recorded, since they would claim something nobody knows.
    pub decoded_here: bool,
    /// Lines for summary.json's notes.
    pub notes: Vec<String>,
}

/// Run `generator` (and the optional reference `scorer`) over `tasks` (the job's tasks or a
/// subset) into the job's results directory (a run directory of kind `eval`), then write
/// summary.json. Resumable: run it again on the same directory after a crash or Ctrl-C and it
/// finishes the remaining tasks; a directory made with other settings or inputs is refused.
pub fn run_job(
    job: &EvalJob,
    tasks: &[Task],
    source: SampleSource,
    generator: &mut dyn Generator,
    scorer: Option<&mut dyn ReferenceScorer>,
    progress: &dyn Progress,
) -> Result<EvalOutcome> {
    let overrides = match job.overrides {
        Some(p) => Overrides::load(p)?,
        None => Overrides::default(),
    };
    let mut files = vec![Input::file("tasks", &job.tasks.path)?];
    let mut inputs = serde_json::Map::new();
    inputs.insert("tasks".into(), serde_json::to_value(&files[0].files[0])?);
    inputs.insert("task_fields".into(), serde_json::to_value(&job.tasks.resolved)?);
    if let Some(p) = job.overrides {
        let input = Input::file("overrides", p)?;
        inputs.insert("overrides".into(), serde_json::to_value(&input.files[0])?);
        files.push(input);
    }
    for (role, path) in &source.files {
        let input = Input::file(role, path)?;
        inputs.insert(role.clone(), serde_json::to_value(&input.files[0])?);
        files.push(input);
    }
    inputs.extend(source.inputs);
    let inputs = serde_json::Value::Object(inputs);
    let mut settings = serde_json::to_value(&job.config)?;
    if !source.decoded_here {
        settings["decode"] = serde_json::Value::Null;
    }
    let mut run_config = serde_json::json!({
        "inputs": inputs,
        "settings": settings,
        "generator": generator.describe(),
    });
    if let Some(s) = scorer.as_deref() {
        run_config["reference"] = s.describe();
    }
    check_resume(job.out_dir, &run_config, job.fresh)?;
    files.extend(job.models.iter().cloned());
    let provenance = Provenance::new(job.command.clone(), job.spec.clone(), files, Some(job.seed));
    let mut run = RunDir::create(job.out_dir, "eval", provenance)?;
    run.set_config(run_config)?;
    let (outcome, _) = run.finish_with(|run| -> Result<EvalOutcome> {
        let (mut results, resume) = ResultsDir::open(run.path())?;
        run.record(SAMPLES_FILE)?;
        let stats = evaluate(tasks, &job.config, generator, scorer, &overrides, &mut results, progress)?;
        let summary = summarize(
            tasks,
            results.records(),
            RunInfo {
                command_line: job.command.join(" "),
                seed: job.seed,
                inputs,
                settings,
                token_count_kind: generator.token_count_kind(),
                notes: source.notes,
            },
        );
        let summary_path = run.write_json(SUMMARY_FILE, &summary)?;
        Ok(EvalOutcome { summary, resume, stats, summary_path })
    })?;
    Ok(outcome)
}

/// `sfn eval --grade`: grade recorded outputs (JSONL lines `{"id": ..., "output": ...}`, repeated
/// ids are several samples) against the job's tasks. Tasks without an output are left out and
/// counted in a note. A reference `scorer`, when given, fills the judge's loss signal.
pub fn grade_recorded(
    job: &EvalJob,
    outputs: &Path,
    scorer: Option<&mut dyn ReferenceScorer>,
    progress: &dyn Progress,
) -> Result<EvalOutcome> {
    // Re-grading a run's own samples.jsonl into the same directory would read and rewrite one file.
    if let (Ok(outputs), Ok(dir)) = (std::fs::canonicalize(outputs), std::fs::canonicalize(job.out_dir)) {
        if outputs.starts_with(&dir) {
            return Err(EvalError::InvalidSettings(format!(
                "the outputs file {} is inside the results directory {}: write to another directory",
                outputs.display(),
                job.out_dir.display()
            )));
        }
    }
    let ids: HashSet<&str> = job.tasks.tasks.iter().map(|t| t.id.as_str()).collect();
    let mut generator = ReplayGenerator::load(outputs, &ids)?;
    let tasks: Vec<Task> = job.tasks.tasks.iter().filter(|t| generator.has_output(&t.id)).cloned().collect();
    let without_output = job.tasks.tasks.len() - tasks.len();
    let mut notes = vec![
        "token counts are whitespace-separated words of the output (no tokenizer)".to_string(),
        "decoding settings unknown: the outputs were recorded elsewhere".to_string(),
    ];
    if without_output > 0 {
        notes.push(format!("{without_output} task(s) of the task file have no output and were not graded"));
    }
    let source = SampleSource {
        files: vec![("outputs".into(), outputs.to_path_buf())],
        inputs: Default::default(),
        decoded_here: false,
        notes,
    };
    run_job(job, &tasks, source, &mut generator, scorer, progress)
}
