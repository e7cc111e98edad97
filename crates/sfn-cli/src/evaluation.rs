//! The evaluation options every evaluating command shares (`sfn eval`, merge/destroy `--eval`, the
//! sweeps): how tasks are read and prompted, how samples are decoded and judged, the reference
//! model; and the progress bar and table around a run. The commands add the task file, the
//! results directory and `--seed` (one seed per run for everything random).

use crate::runtime::{RuntimeArgs, SamplingArgs};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use sfn_checkpoint::edit::EditView;
use sfn_checkpoint::writer::absolute;
use sfn_checkpoint::Checkpoint;
use sfn_eval::judge::DEFAULT_MAX_REF_LOSS;
use sfn_eval::prompt::load_few_shot;
use sfn_eval::runtime::{evaluate_model, Reference};
use sfn_eval::{
    BudgetForcing, DecodeSettings, EvalConfig, EvalJob, EvalOutcome, FieldMap, JudgeConfig, LoadOptions, Progress,
    PromptConfig, PromptMode, Sampling, TaskKind, TaskSet,
};
use sfn_model::{Model, Tokenizer, WeightSource};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, clap::ValueEnum)]
enum KindArg {
    Reasoning,
    Conversation,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ModeArg {
    Generate,
    Chat,
}

#[derive(clap::Args, Clone)]
#[command(next_help_heading = "Evaluation")]
pub struct EvalArgs {
    /// Name the input field of a task field, e.g. `--field prompt=origin_prompt` (repeatable;
    /// `--field id=@line` numbers the lines). Known layouts such as aime2024's are detected.
    #[arg(long = "field", value_name = "TASK=INPUT")]
    fields: Vec<String>,
    /// Kind of tasks without a kind field (default: reasoning when there is an answer).
    #[arg(long, value_enum)]
    kind: Option<KindArg>,
    /// Prompting: generate (raw text + suffix, for base models) or chat (the model's template).
    #[arg(long, value_enum, default_value = "generate")]
    mode: ModeArg,
    /// Text after each prompt. Default: the step-by-step \boxed{} instruction for reasoning tasks;
    /// "" for none.
    #[arg(long)]
    suffix: Option<String>,
    /// Chat mode: the system message.
    #[arg(long)]
    system: Option<String>,
    /// Few-shot examples: JSONL lines {"prompt": ..., "response": ...}.
    #[arg(long, value_name = "FILE")]
    few_shot: Option<PathBuf>,
    /// Manual levels that win over the judge: {"ID": "III", "ID#k": "IV"} or JSONL {"id", "level"}.
    #[arg(long, value_name = "FILE")]
    pub overrides: Option<PathBuf>,
    /// Most new tokens per sample (budget-forcing cues included).
    #[arg(long, default_value_t = 2048)]
    max_new: usize,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Samples per task (pass@k and maj@k need more than one; needs --temperature > 0).
    #[arg(long, default_value_t = 1)]
    samples: usize,
    /// Stop a sample after this string (repeatable; the end-of-sequence token always stops it).
    #[arg(long)]
    stop: Vec<String>,
    /// Budget forcing: when the model ends, append the cue and continue, up to N times.
    #[arg(long, default_value_t = 0, value_name = "N")]
    budget_forcing: u32,
    /// The budget-forcing cue.
    #[arg(long, default_value = "Wait")]
    cue: String,
    /// Tasks per generation batch (and between syncs of samples.jsonl).
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// A reference model whose mean token loss on each output is saved with the judge's signals
    /// (e.g. the intact base model when judging a damaged one).
    #[arg(long, value_name = "MODEL")]
    pub reference: Option<PathBuf>,
    /// Judge outputs whose reference loss (nats/token) is above this as level I (default 3.5,
    /// calibrated on real SmolLM2 outputs; see the judge's docs).
    #[arg(long)]
    max_ref_loss: Option<f64>,
    /// Discard results already in the results directory instead of resuming.
    #[arg(long)]
    pub fresh: bool,
    /// Print summary.json on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

impl EvalArgs {
    pub fn tasks(&self, path: &Path) -> Result<TaskSet> {
        let fields = FieldMap::parse_assignments(&self.fields)?;
        let default_kind = self.kind.map(|k| match k {
            KindArg::Reasoning => TaskKind::Reasoning,
            KindArg::Conversation => TaskKind::Conversation,
        });
        Ok(TaskSet::load(path, &LoadOptions { fields, default_kind })?)
    }

    /// The run's settings; `seed` seeds sampling; `reference`: whether a reference model will
    /// score the outputs (then the default loss threshold applies).
    pub fn config(&self, seed: u64, reference: bool) -> Result<EvalConfig> {
        let few_shot = match &self.few_shot {
            Some(p) => load_few_shot(p)?,
            None => vec![],
        };
        let sampling = if self.sampling.greedy()? {
            Sampling::Greedy
        } else {
            let s = self.sampling.with_seed(seed)?;
            Sampling::Sample { temperature: s.temperature, top_k: s.top_k, top_p: s.top_p, seed }
        };
        let config = EvalConfig {
            prompt: PromptConfig {
                mode: match self.mode {
                    ModeArg::Generate => PromptMode::Generate,
                    ModeArg::Chat => PromptMode::Chat,
                },
                suffix: self.suffix.clone(),
                system: self.system.clone(),
                few_shot,
            },
            decode: DecodeSettings {
                max_new_tokens: self.max_new,
                sampling,
                n: self.samples,
                stop: self.stop.clone(),
                budget_forcing: (self.budget_forcing > 0)
                    .then(|| BudgetForcing { times: self.budget_forcing, cue: self.cue.clone() }),
            },
            judge: JudgeConfig {
                max_ref_loss: self.max_ref_loss.or(reference.then_some(DEFAULT_MAX_REF_LOSS)),
                ..Default::default()
            },
            batch_size: self.batch_size,
        };
        config.decode.validate()?;
        Ok(config)
    }
}

/// A progress bar over tasks, fed by a run's progress callback.
pub fn task_bar(message: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} tasks {elapsed_precise} eta {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(500));
    bar
}

pub fn on_progress(bar: &ProgressBar) -> impl FnMut(Progress) + '_ {
    |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
    }
}

/// Print what a run did: resume counts on stderr, then the table (or summary.json with --json).
pub fn report(outcome: &EvalOutcome, out_dir: &Path, json: bool) -> Result<()> {
    if outcome.resume.kept_tasks > 0 || outcome.resume.dropped_lines > 0 {
        eprintln!(
            "resumed: {} task(s) already done, {} incomplete line(s) dropped",
            outcome.resume.kept_tasks, outcome.resume.dropped_lines
        );
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&outcome.summary)?);
    } else {
        print!("{}", outcome.summary.table());
        for note in &outcome.summary.notes {
            println!("note: {note}");
        }
    }
    eprintln!(
        "wrote {} and {}",
        out_dir.join(sfn_eval::results::SAMPLES_FILE).display(),
        outcome.summary_path.display()
    );
    Ok(())
}

/// Load `src` (a checkpoint or an edit plan's view) and evaluate it as `job` says, with a progress
/// bar; the tokenizer comes from `tokenizer_src` (usually `src` itself), the reference model, if
/// any, from `--reference`.
pub fn evaluate_source(
    job: &EvalJob,
    src: &dyn WeightSource,
    tokenizer_src: &dyn WeightSource,
    describe: serde_json::Value,
    eval: &EvalArgs,
    runtime: &RuntimeArgs,
) -> Result<EvalOutcome> {
    let model = runtime.load_model(src)?;
    let tok = sfn_model::Tokenizer::for_source(tokenizer_src)
        .with_context(|| format!("tokenizer of {}", tokenizer_src.path().display()))?;
    let reference = LoadedReference::open(eval.reference.as_deref(), runtime)?;
    let bar = task_bar("evaluating");
    let outcome = evaluate_model(
        job,
        &model,
        &tok,
        describe,
        reference.as_ref().map(|r| r.get()).as_ref(),
        &mut on_progress(&bar),
    )
    .with_context(|| format!("evaluating {} into {}", src.path().display(), job.out_dir.display()))?;
    bar.finish_and_clear();
    Ok(outcome)
}

/// `--eval TASK --results DIR` on the checkpoint-editing commands (merge, destroy): evaluate the
/// edited model in memory, without writing it.
#[derive(clap::Args)]
pub struct InMemoryEval {
    /// Evaluate the edited model in memory on this task file (then -o is optional).
    #[arg(long = "eval", value_name = "TASK", requires = "results")]
    pub task: Option<PathBuf>,
    /// --eval: the results directory (samples.jsonl, summary.json; resumable).
    #[arg(long, value_name = "DIR", requires = "task")]
    pub results: Option<PathBuf>,
    #[command(flatten)]
    pub eval: EvalArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

impl InMemoryEval {
    /// Evaluate `view` when --eval was given, with the tokenizer of `tokenizer_from` (A or B);
    /// `seed` seeds sampling and the bootstrap.
    pub fn run(&self, view: &EditView, tokenizer_from: &Checkpoint, seed: u64) -> Result<()> {
        let (Some(task), Some(results)) = (&self.task, &self.results) else { return Ok(()) };
        self.runtime.init()?;
        let tasks = self.eval.tasks(task)?;
        let job = EvalJob {
            tasks: &tasks,
            out_dir: results,
            config: self.eval.config(seed, self.eval.reference.is_some())?,
            overrides: self.eval.overrides.as_deref(),
            seed,
            command_line: crate::output::command_line(),
            fresh: self.eval.fresh,
        };
        let describe = serde_json::json!({
            "a": absolute(&view.a.path),
            "b": view.b.map(|b| absolute(&b.path)),
            "plan": view.plan,
            "runtime": self.runtime.describe(),
        });
        let outcome = evaluate_source(&job, view, tokenizer_from, describe, &self.eval, &self.runtime)?;
        report(&outcome, results, self.eval.json)
    }

    pub fn requested(&self) -> bool {
        self.task.is_some()
    }
}

/// A loaded reference model: the judge's loss signal (`--reference`, or A in the sweeps).
pub struct LoadedReference {
    path: PathBuf,
    model: Model,
    tokenizer: Tokenizer,
}

impl LoadedReference {
    pub fn load(ck: &Checkpoint, runtime: &RuntimeArgs) -> Result<LoadedReference> {
        let (model, tokenizer) = runtime.load(ck).context("reference model")?;
        Ok(LoadedReference { path: absolute(&ck.path), model, tokenizer })
    }

    /// The model at `path`, if one is given.
    pub fn open(path: Option<&Path>, runtime: &RuntimeArgs) -> Result<Option<LoadedReference>> {
        let Some(path) = path else { return Ok(None) };
        let ck = Checkpoint::open(path).context("--reference")?;
        Ok(Some(LoadedReference::load(&ck, runtime)?))
    }

    pub fn get(&self) -> Reference<'_> {
        Reference { model: &self.model, tokenizer: &self.tokenizer, describe: serde_json::json!({"model": self.path}) }
    }
}
