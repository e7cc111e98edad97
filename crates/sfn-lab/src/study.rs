//! The lab's study: every stethoscope on the pair (A, B), each through the same library entry
//! point as its command, into one run directory:
//! - `delta/`: A against B;
//! - `merge/{reasoning,conversation}/`: A, B, and A with o_proj, q/k/v, the MLP, the norms,
//!   embed + lm_head, or o_proj + norms + embed + lm_head taken from B;
//! - `freeze/`: F1..F3 trained from A on B's data with B's settings (F4, everything trainable, is
//!   B itself: the sweep would repeat B's training bit for bit), evaluated on reasoning, and
//!   `freeze/conversation/<set>/` on conversation;
//! - `destroy/{reasoning,conversation}/`: A with each module kind zeroed or re-initialised, and
//!   the layers removed, over the middle half of the layers.
//!
//! Every variant is evaluated on the held-out reasoning problems and conversation prompts; the
//! results are gathered per variant (`Outcome`) for the summary and the findings.

use crate::error::Result;
use crate::pair::{eval_settings, Pair, Recipe};
use serde::{Deserialize, Serialize};
use sfn_checkpoint::edit::Method;
use sfn_eval::{EvalSettings, EvalSpec, Summary};
use sfn_model::RuntimeSpec;
use sfn_run::{Context, RunDir};
use sfn_scope::delta::{self, DeltaSpec};
use sfn_scope::freeze::sweep::{self as freeze_sweep, FreezeSweepSpec};
use sfn_scope::sweep::{self, DestroySweepSpec, MergeSweepSpec, SweepEval};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The merge variants (the paper's Table 1 modules).
pub const TAKES: [&str; 6] = ["o_proj", "qkv", "mlp", "norms", "embed+lm_head", "o_proj+norms+embed+lm_head"];
/// The destruction's module kinds.
pub const MODULES: [&str; 7] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

/// Most new tokens: a worked answer takes about 60, a conversation reply about 90.
const MAX_NEW: usize = 128;

/// One variant's results on one kind of task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub accuracy: Option<f64>,
    pub ci95: Option<[f64; 2]>,
    pub mean_tokens: Option<f64>,
    /// Samples per level I, II, III, IV.
    pub levels: [usize; 4],
    /// The evaluation's run directory (samples.jsonl, summary.json).
    pub dir: PathBuf,
}

impl Stats {
    fn of(s: &Summary, dir: &Path) -> Stats {
        Stats {
            accuracy: s.accuracy,
            ci95: s.ci95,
            mean_tokens: s.mean_tokens,
            levels: [s.levels.I, s.levels.II, s.levels.III, s.levels.IV],
            dir: dir.to_path_buf(),
        }
    }

    fn read(dir: &Path) -> Result<Stats> {
        let s: Summary = sfn_run::rundir::read_json(&dir.join(sfn_eval::results::SUMMARY_FILE))?;
        Ok(Stats::of(&s, dir))
    }

    /// Share of samples at level III or IV (on the task, in language).
    pub fn on_task(&self) -> f64 {
        (self.levels[2] + self.levels[3]) as f64 / self.levels.iter().sum::<usize>().max(1) as f64
    }

    /// The most frequent level (0 = I … 3 = IV) and its share.
    pub fn mode(&self) -> (usize, f64) {
        let n = self.levels.iter().sum::<usize>().max(1) as f64;
        let (i, c) = self.levels.iter().enumerate().fold((0, 0), |b, (i, &c)| if c > b.1 { (i, c) } else { b });
        (i, c as f64 / n)
    }
}

/// One variant on both kinds of task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub reasoning: Stats,
    pub conversation: Stats,
}

/// What the study found, per variant ("A", "B", "merge:o_proj", "freeze:F2",
/// "destroy:zero:o", …), with the delta and the freeze sweep's rows for the findings.
pub struct Study {
    pub variants: BTreeMap<String, Outcome>,
    pub delta: delta::write::DeltaReport,
    pub freeze: Vec<freeze_sweep::FreezeRow>,
    /// Trainable parameters of F4 (= B: everything).
    pub total_params: usize,
}

/// Run the study of `pair` into the run directory.
pub fn run(pair: &Pair, recipe: &Recipe, seed: u64, run: &mut RunDir, ctx: &Context) -> Result<Study> {
    let runtime = RuntimeSpec::default();
    let tasks = [("reasoning", &pair.eval_reasoning), ("conversation", &pair.eval_conversation)];
    // One judge for every variant: B scores each output. B learned both the conversations and
    // the worked traces, so fluent text of either kind scores low under it; A never saw a worked
    // trace and puts B's correct ones at about 4 nats per token, past the judge's limit of 3.5,
    // which would call them nonsense (level I).
    let settings = EvalSettings { reference: Some(pair.b.clone()), ..eval_settings(MAX_NEW) };
    let sweep_eval = |task: &Path| SweepEval {
        task: task.to_path_buf(),
        no_reference: false,
        settings: settings.clone(),
        runtime: runtime.clone(),
        server: Default::default(),
    };
    let mut variants: BTreeMap<String, BTreeMap<&str, Stats>> = BTreeMap::new();
    let mut put = |name: String, kind: &'static str, stats: Stats| {
        variants.entry(name).or_default().insert(kind, stats);
    };

    ctx.progress.note("lab: delta A -> B");
    let spec = DeltaSpec {
        a: pair.a.clone(),
        b: pair.b.clone(),
        select: None,
        layers: None,
        bins: delta::DEFAULT_BINS,
        metric: Default::default(),
        hist_every: None,
        strict: true,
        threads: 0,
        no_figures: false,
    };
    delta::run(&spec, &run.join("delta"), ctx)?;
    run.record("delta")?;
    let delta = delta::write::DeltaReport::read(&run.join("delta"))?;

    for (kind, task) in tasks {
        ctx.progress.note(&format!("lab: merge sweep on {kind}"));
        let spec = MergeSweepSpec {
            a: pair.a.clone(),
            b: pair.b.clone(),
            take: TAKES.iter().map(|t| t.to_string()).collect(),
            alpha: None,
            layers: None,
            seed,
            eval: sweep_eval(task),
        };
        let dir = run.join(&format!("merge/{kind}"));
        for r in sweep::merge_sweep(&spec, &dir, ctx)?.rows {
            let name = match r.method.as_str() {
                "baseline" => r.variant.clone(),
                _ => format!("merge:{}", r.module.replace(',', "+")),
            };
            put(name, kind, Stats::read(&r.results_dir)?);
        }
        run.record(&format!("merge/{kind}"))?;

        ctx.progress.note(&format!("lab: destruction sweep on {kind}"));
        let layers = recipe.layers;
        let spec = DestroySweepSpec {
            a: pair.a.clone(),
            modules: MODULES.iter().map(|m| m.to_string()).collect(),
            methods: vec![Method::Zero, Method::Reinit, Method::Remove],
            layers: format!("{}..{}", layers / 4, layers - layers / 4),
            std: 0.02,
            mean: 0.0,
            factor: None,
            seed,
            eval: sweep_eval(task),
        };
        let dir = run.join(&format!("destroy/{kind}"));
        for r in sweep::destroy_sweep(&spec, &dir, ctx)?.rows.iter().filter(|r| r.method != "baseline") {
            put(format!("destroy:{}:{}", r.method, r.module), kind, Stats::read(&r.results_dir)?);
        }
        run.record(&format!("destroy/{kind}"))?;
    }

    ctx.progress.note("lab: freeze sweep F1..F3 (F4 is B)");
    let spec = FreezeSweepSpec {
        a: pair.a.clone(),
        data: pair.traces.clone(),
        task: pair.eval_reasoning.clone(),
        sets: vec!["F1".into(), "F2".into(), "F3".into()],
        sets_file: None,
        layers: None,
        dtype: None,
        training: recipe.finetune.clone(),
        eval: settings.clone(),
        runtime: runtime.clone(),
    };
    let freeze_dir = run.join("freeze");
    let mut freeze = freeze_sweep::run(&spec, &freeze_dir, ctx)?.rows;
    run.record("freeze")?;
    for row in &freeze {
        put(format!("freeze:{}", row.set), "reasoning", Stats::read(&row.results_dir.join("eval/after"))?);
        let dir = freeze_dir.join("conversation").join(&row.set);
        let spec = EvalSpec {
            model: Some(row.results_dir.clone()),
            grade: None,
            task: Some(pair.eval_conversation.clone()),
            seed,
            settings: settings.clone(),
            runtime: runtime.clone(),
            server: Default::default(),
        };
        let o = sfn_eval::spec::run(&spec, &dir, ctx)?;
        put(format!("freeze:{}", row.set), "conversation", Stats::of(&o.summary, &dir));
    }
    // F4 is B: its row from B's own training run, its results from the merge sweep's B.
    let b = sfn_scope::freeze::output::TrainSummary::read(&pair.b)?;
    let f4 = freeze_sweep::FreezeRow {
        set: "F4".into(),
        selector: "all".into(),
        trainable_params: b.trainable_params,
        trainable_share: b.trainable_share,
        steps: b.steps,
        steps_per_s: b.steps_per_s,
        tokens_per_s: b.tokens_per_s,
        peak_rss_bytes: b.peak_rss_bytes,
        final_loss: b.final_loss,
        before: freeze.first().and_then(|r| r.before.clone()),
        after: None,
        results_dir: pair.b.clone(),
    };
    freeze.push(f4);
    if let Some(b) = variants.get("B").cloned() {
        variants.insert("freeze:F4".into(), b);
    }

    let variants = variants
        .into_iter()
        .filter_map(|(name, mut kinds)| {
            let (r, c) = (kinds.remove("reasoning")?, kinds.remove("conversation")?);
            Some((name, Outcome { reasoning: r, conversation: c }))
        })
        .collect();
    Ok(Study { variants, delta, freeze, total_params: b.total_params })
}
