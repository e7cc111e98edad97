//! `sfn patch A B`: cross-model activation patching (Prakash et al., ICLR 2024). For every layer ×
//! site, run the target model with that site's activation taken from the source model on the
//! same tokens — denoise: A with B's activation; noise: B with A's — and measure, on the positions
//! that matter, how far the patched model is from the source:
//!
//! - `kl`: KL(source ‖ patched) of the next-token distributions, averaged over those positions
//!   (and then over prompts);
//! - `recovery`: the share of the gap in the mean log-probability of the sequence's own tokens
//!   that the patch closes, (patched − target) / (source − target), from the means over prompts
//!   (None where source and target agree).
//!
//! Positions that matter: with a task file, the source's own greedy completion of each prompt
//! (what the source would say); with plain prompts or ids, every position. So patching
//! `resid_post` of the last layer gives the source's distribution exactly when the two share the
//! final norm and the output layer (KL 0, recovery 1), and patching nothing gives the target.
//!
//! Writes patch.json (one record per layer, site and direction, and the unpatched baselines) and a
//! layer × site heatmap of the recovery per direction.
//!
//! With `eval` (`--eval TASK`), A also decodes the task with B's activation at every chosen site
//! and layer at once — an activation merge, beside the weight merge of the merge sweep — and is
//! graded and judged as `sfn eval` does, into eval/. B follows each generated row in its own KV
//! cache, one step ahead at the first patched site, so the activations are B's on A's tokens.

use crate::error::{Error, Result};
use crate::figure;
use crate::inputs::{Inputs, Sequence};
use serde::{Deserialize, Serialize};
use sfn_checkpoint::Checkpoint;
use sfn_eval::runtime::{evaluate_runner, LoadedReference, ModelRunner, RowHooks};
use sfn_eval::{EvalSettings, Summary};
use sfn_model::hooks::{HookCtx, HookFn};
use sfn_model::{
    Action, ActivationCache, HookId, HookPoint, Hooks, Intervention, Logits, Model, RuntimeSpec, Tensor, Tokenizer,
};
use sfn_run::{Context, Provenance, RunDir};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub const JSON_FILE: &str = "patch.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// A (target) with B's (source) activation: which site carries B's behaviour.
    Denoise,
    /// B (target) with A's (source) activation: which site B cannot do without.
    Noise,
    #[default]
    Both,
}

impl Direction {
    fn each(self) -> Vec<Direction> {
        match self {
            Direction::Both => vec![Direction::Denoise, Direction::Noise],
            d => vec![d],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Direction::Denoise => "denoise",
            Direction::Noise => "noise",
            Direction::Both => "both",
        }
    }
}

fn default_sites() -> Vec<String> {
    ["attn_out", "mlp_out", "resid_post"].map(String::from).to_vec()
}

fn default_max_new() -> usize {
    32
}

/// `sfn patch A B (--prompts FILE | --task FILE | --ids ...) -o DIR`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct PatchSpec {
    /// Model A (checkpoint directory, .safetensors or .gguf).
    pub a: PathBuf,
    /// Model B, of the same architecture and tokenizer.
    pub b: PathBuf,
    #[cfg_attr(feature = "cli", command(flatten))]
    pub inputs: Inputs,
    /// Sites to patch, comma-separated: attn_out, mlp_out, resid_post (also resid_pre, resid_mid).
    #[cfg_attr(feature = "cli", arg(long, value_delimiter = ',', default_value = "attn_out,mlp_out,resid_post"))]
    #[serde(default = "default_sites")]
    pub sites: Vec<String>,
    /// Layers to patch (`5..30`; default: all).
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub layers: Option<String>,
    /// denoise (A with B's activations), noise (B with A's) or both.
    #[cfg_attr(feature = "cli", arg(long, value_enum, default_value = "both"))]
    #[serde(default)]
    pub direction: Direction,
    /// With a task file: how many tokens of the source's greedy completion are scored.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = default_max_new()))]
    #[serde(default = "default_max_new")]
    pub max_new: usize,
    /// Also evaluate A decoding with B's activations at the chosen sites and layers (see the
    /// module docs); the CLI's `--eval TASK`.
    #[cfg_attr(feature = "cli", arg(skip))]
    #[serde(default)]
    pub eval: Option<PatchEval>,
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(default)]
    pub runtime: RuntimeSpec,
}

/// The activation merge's evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchEval {
    pub task: PathBuf,
    #[serde(default)]
    pub settings: EvalSettings,
    /// Judge without a reference model (by default intact A scores every output).
    #[serde(default)]
    pub no_reference: bool,
}

/// One patch: a site of a layer, in one direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchRecord {
    pub layer: usize,
    pub site: String,
    pub direction: String,
    /// KL(source ‖ patched), nats, averaged over the positions that matter and the prompts.
    pub kl: f64,
    /// (patched − target) / (source − target) of the mean log-probability of the scored tokens.
    pub recovery: Option<f64>,
    /// The patched model's mean log-probability of the scored tokens.
    pub logprob: f64,
}

/// A direction's unpatched models: source and target on their own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub direction: String,
    pub source: String,
    pub target: String,
    /// Mean log-probability of the scored tokens under the source and under the target.
    pub source_logprob: f64,
    pub target_logprob: f64,
    /// KL(source ‖ target): what patching has to close.
    pub kl: f64,
}

/// patch.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PatchReport {
    pub provenance: Provenance,
    pub prompts: usize,
    /// Scored positions over all prompts (per direction, the source's completion may differ).
    pub scored_positions: Vec<(String, usize)>,
    pub baselines: Vec<Baseline>,
    pub records: Vec<PatchRecord>,
    /// The activation merge's evaluation summary (eval/), when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval: Option<Summary>,
}

impl PatchReport {
    pub fn read(dir: &Path) -> Result<PatchReport> {
        Ok(sfn_run::rundir::read_json(&dir.join(JSON_FILE))?)
    }
}

/// A site that can be patched whole: attn_out, mlp_out, resid_pre, resid_mid, resid_post.
pub fn site(name: &str) -> Result<HookPoint> {
    match HookPoint::parse(name.trim())? {
        HookPoint::AttnHeads => Err(Error::Options(
            "site attn_heads: patch whole sites (attn_out, mlp_out, resid_pre, resid_mid, resid_post)".into(),
        )),
        p => Ok(p),
    }
}

/// Run `sfn patch` as `spec` says into the run directory `out`.
pub fn run(spec: &PatchSpec, out: &Path, ctx: &Context) -> Result<PatchReport> {
    spec.runtime.init()?;
    let sites: Vec<HookPoint> = spec.sites.iter().map(|s| site(s)).collect::<Result<_>>()?;
    let a = Checkpoint::open(&spec.a).map_err(|e| Error::Side("A", Box::new(e.into())))?;
    let b = Checkpoint::open(&spec.b).map_err(|e| Error::Side("B", Box::new(e.into())))?;
    let mut inputs = vec![a.input("A")?, b.input("B")?];
    for (role, path) in spec.inputs.files() {
        inputs.push(sfn_run::Input::file(role, path)?);
    }
    let spec_json = serde_json::to_value(spec).expect("plain data");
    let provenance = Provenance::new(ctx.command.clone(), spec_json, inputs, None);
    let run = RunDir::create(out, "patch", provenance)?;
    let (report, _) = run.finish_with(|run| -> Result<PatchReport> {
        let model_a = spec.runtime.load_model(&a).map_err(|e| Error::Side("A", Box::new(e.into())))?;
        let model_b = Arc::new(spec.runtime.load_model(&b).map_err(|e| Error::Side("B", Box::new(e.into())))?);
        crate::probe::same_shape(&model_a, &model_b)?;
        let n = model_a.config.num_layers;
        let layers: Vec<usize> = match &spec.layers {
            Some(r) => {
                let ls: Vec<usize> = sfn_checkpoint::selector::parse_layer_ranges(r)?.into_iter().flatten().collect();
                if let Some(bad) = ls.iter().find(|&&l| l >= n) {
                    return Err(Error::Options(format!(
                        "--layers {r}: layer {bad} does not exist (the model has layers 0..{n})"
                    )));
                }
                ls
            }
            None => (0..n).collect(),
        };
        let tokenizer = Tokenizer::for_source(&a).ok();
        let prompts = spec.inputs.sequences(&model_a, tokenizer.as_ref())?;
        let complete = spec.inputs.task.is_some();
        let mut records = vec![];
        let mut baselines = vec![];
        let mut scored_positions = vec![];
        for direction in spec.direction.each() {
            let (source, target, names) = match direction {
                Direction::Denoise => (&*model_b, &model_a, ("B", "A")),
                _ => (&model_a, &*model_b, ("A", "B")),
            };
            let total = (prompts.len() * (1 + layers.len() * sites.len())) as u64;
            ctx.progress.stage(&format!("patch {}", direction.name()), total, sfn_run::Unit::Items);
            let mut sums = Sums::new(layers.len() * sites.len());
            let mut positions = 0;
            for prompt in &prompts {
                let seq = if complete {
                    completed(source, prompt, spec.max_new, tokenizer.as_ref())?
                } else {
                    scored_all(prompt)
                };
                positions += seq.ids.len() - seq.from;
                let mut capture = Hooks::new();
                for &site in &sites {
                    capture.capture_layers(site, layers.iter().copied());
                }
                let src_logits = source.forward(&seq.ids, &mut capture)?;
                let captured = capture.take_captured()?;
                let src = Scored::of(&src_logits, &seq)?;
                let tgt = Scored::of(&target.forward(&seq.ids, &mut Hooks::new())?, &seq)?;
                sums.base(src.logprob(), tgt.logprob(), src.kl(&tgt));
                ctx.progress.advance(1);
                for (i, (&layer, &site)) in layers.iter().flat_map(|l| sites.iter().map(move |s| (l, s))).enumerate() {
                    let id = HookId::new(site, layer);
                    let value = captured.get(&id).ok_or_else(|| Error::Options(format!("{id} was not captured")))?;
                    let mut hooks = Hooks::new();
                    hooks.intervene(id, Intervention::new(Action::Replace(value.clone())));
                    let patched = Scored::of(&target.forward(&seq.ids, &mut hooks)?, &seq)?;
                    sums.add(i, patched.logprob(), src.kl(&patched));
                    ctx.progress.advance(1);
                }
            }
            let p = prompts.len() as f64;
            let (src_lp, tgt_lp) = (sums.source / p, sums.target / p);
            baselines.push(Baseline {
                direction: direction.name().into(),
                source: names.0.into(),
                target: names.1.into(),
                source_logprob: src_lp,
                target_logprob: tgt_lp,
                kl: sums.kl / p,
            });
            scored_positions.push((direction.name().to_string(), positions));
            for (i, (&layer, &site)) in layers.iter().flat_map(|l| sites.iter().map(move |s| (l, s))).enumerate() {
                let lp = sums.patched[i] / p;
                let gap = src_lp - tgt_lp;
                records.push(PatchRecord {
                    layer,
                    site: site.name().into(),
                    direction: direction.name().into(),
                    kl: sums.patched_kl[i] / p,
                    recovery: (gap.abs() > 1e-9).then(|| (lp - tgt_lp) / gap),
                    logprob: lp,
                });
            }
        }
        ctx.progress.finish();
        let eval = match &spec.eval {
            Some(e) => Some(activation_merge(e, &a, &model_a, model_b.clone(), &sites, &layers, spec, run, ctx)?),
            None => None,
        };
        let report = PatchReport {
            provenance: run.manifest().provenance.clone(),
            prompts: prompts.len(),
            scored_positions,
            baselines,
            records,
            eval,
        };
        run.write_json(JSON_FILE, &report)?;
        heatmaps(run, &report, &layers, &sites)?;
        Ok(report)
    })?;
    Ok(report)
}

/// Evaluate A decoding with B's activations at `sites` × `layers` into eval/.
#[allow(clippy::too_many_arguments)]
fn activation_merge(
    e: &PatchEval,
    a: &Checkpoint,
    model_a: &Model,
    model_b: Arc<Model>,
    sites: &[HookPoint],
    layers: &[usize],
    spec: &PatchSpec,
    run: &mut RunDir,
    ctx: &Context,
) -> Result<Summary> {
    let tokenizer = Tokenizer::for_source(a).map_err(|err| err.context("tokenizer of A"))?;
    let tasks = e.settings.tasks(&e.task)?;
    let reference = match (&e.settings.reference, e.no_reference) {
        (_, true) => None,
        (Some(path), _) => LoadedReference::open(Some(path), &spec.runtime)?,
        (None, _) => Some(LoadedReference::load(a, &spec.runtime)?),
    };
    let dir = run.join("eval");
    let spec_json = serde_json::to_value(spec).expect("plain data");
    let job = e.settings.job(&tasks, &dir, 0, reference.is_some(), spec_json, ctx)?;
    let describe = serde_json::json!({
        "a": sfn_run::rundir::absolute(&spec.a),
        "activations_from": sfn_run::rundir::absolute(&spec.b),
        "sites": sites.iter().map(|s| s.name()).collect::<Vec<_>>(),
        "layers": layers,
        "runtime": spec.runtime.describe(),
    });
    let runner = ModelRunner::new(model_a, &tokenizer, describe).with_row_hooks(follow(model_b, sites, layers));
    let reference = reference.as_ref().map(|r| r.get());
    let outcome = evaluate_runner(&job, runner, reference.as_ref(), ctx.progress)?;
    run.record("eval")?;
    Ok(outcome.summary)
}

/// Hooks that replace A's activation at `sites` × `layers` by B's on the same tokens: at the
/// first of those hooks in each step, B runs the step's tokens into its own cache (one per row)
/// and keeps its activations there; every patched hook then takes B's value.
fn follow(b: Arc<Model>, sites: &[HookPoint], layers: &[usize]) -> RowHooks<'static> {
    let ids: Vec<HookId> = layers.iter().flat_map(|&l| sites.iter().map(move |&s| HookId::new(s, l))).collect();
    Box::new(move |prompt: &[u32], max_new: usize| {
        let cache = b.new_cache(1, (prompt.len() + max_new + 1).min(b.max_positions()))?;
        let state = Arc::new(Mutex::new((cache, ActivationCache::new())));
        // Hook ids order as the model runs them: by layer, then along the residual stream.
        let first = *ids.iter().min().expect("at least one site and layer");
        let mut hooks = Hooks::new();
        for &id in &ids {
            let (b, state, ids) = (b.clone(), state.clone(), ids.clone());
            let f: HookFn = Arc::new(move |ctx: &HookCtx, _: &Tensor| {
                let mut guard = state.lock().expect("one generation at a time");
                let (cache, stored) = &mut *guard;
                if ctx.id == first {
                    let mut capture = Hooks::new();
                    for &id in &ids {
                        capture.capture(id);
                    }
                    if cache.is_empty() {
                        b.prefill(cache, ctx.tokens, &mut capture, Logits::Last)?;
                    } else {
                        b.extend(cache, ctx.tokens, &mut capture, Logits::Last)?;
                    }
                    *stored = capture.take_captured()?;
                }
                stored
                    .get(&ctx.id)
                    .cloned()
                    .ok_or_else(|| sfn_model::Error::input(format!("B's {} is missing", ctx.id)))
            });
            hooks.intervene(id, Intervention::new(Action::Custom(f)));
        }
        Ok(hooks)
    })
}

/// Sums over prompts of per-prompt means.
struct Sums {
    source: f64,
    target: f64,
    kl: f64,
    patched: Vec<f64>,
    patched_kl: Vec<f64>,
}

impl Sums {
    fn new(n: usize) -> Sums {
        Sums { source: 0.0, target: 0.0, kl: 0.0, patched: vec![0.0; n], patched_kl: vec![0.0; n] }
    }
    fn base(&mut self, source: f64, target: f64, kl: f64) {
        self.source += source;
        self.target += target;
        self.kl += kl;
    }
    fn add(&mut self, i: usize, logprob: f64, kl: f64) {
        self.patched[i] += logprob;
        self.patched_kl[i] += kl;
    }
}

/// A token sequence and where its scored part begins: the logits at positions `from − 1 ..
/// len − 1` predict tokens `from .. len`.
struct Scoring {
    ids: Vec<u32>,
    from: usize,
}

/// Every token after the first is scored.
fn scored_all(s: &Sequence) -> Scoring {
    Scoring { ids: s.ids.clone(), from: 1.min(s.ids.len()) }
}

/// The prompt followed by the source's greedy completion (at most `max_new` tokens), which is
/// what is scored.
fn completed(source: &Model, prompt: &Sequence, max_new: usize, tokenizer: Option<&Tokenizer>) -> Result<Scoring> {
    let opts = sfn_model::GenerateOptions {
        max_new_tokens: max_new.min(source.max_positions().saturating_sub(prompt.ids.len())),
        sampling: sfn_model::Sampling::greedy(),
        stop_tokens: tokenizer.map(|t| t.eos_ids().to_vec()).unwrap_or_default(),
        stop_strings: vec![],
        skip_special: true,
        streams: vec![],
    };
    let g =
        sfn_model::generate(source, None, std::slice::from_ref(&prompt.ids), &opts, &mut Hooks::new(), &mut |_, _| {})?;
    let mut ids = prompt.ids.clone();
    ids.extend(&g[0].tokens);
    if ids.len() == prompt.ids.len() {
        return Err(Error::Options(format!("prompt `{}`: the source completes it with nothing to score", prompt.id)));
    }
    Ok(Scoring { ids, from: prompt.ids.len() })
}

/// Log-probabilities at the positions that predict the scored tokens.
struct Scored {
    /// [position][vocab] log-softmax, f64.
    logp: Vec<Vec<f64>>,
    /// The log-probability of each scored token.
    own: Vec<f64>,
}

impl Scored {
    fn of(logits: &Tensor, seq: &Scoring) -> Result<Scored> {
        let rows = logits.to_vec2::<f32>().map_err(sfn_model::Error::from)?;
        let mut logp = vec![];
        let mut own = vec![];
        for (pos, row) in rows.iter().enumerate().take(seq.ids.len() - 1).skip(seq.from - 1) {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
            let lse = max + row.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
            let lp: Vec<f64> = row.iter().map(|&x| x as f64 - lse).collect();
            own.push(lp[seq.ids[pos + 1] as usize]);
            logp.push(lp);
        }
        Ok(Scored { logp, own })
    }

    fn logprob(&self) -> f64 {
        self.own.iter().sum::<f64>() / self.own.len().max(1) as f64
    }

    /// KL(self ‖ other), averaged over positions.
    fn kl(&self, other: &Scored) -> f64 {
        let per: Vec<f64> = self
            .logp
            .iter()
            .zip(&other.logp)
            .map(|(p, q)| p.iter().zip(q).map(|(&lp, &lq)| lp.exp() * (lp - lq)).sum::<f64>().max(0.0))
            .collect();
        per.iter().sum::<f64>() / per.len().max(1) as f64
    }
}

/// patch_<direction>.{svg,png}: recovery per layer (rows) and site (columns).
fn heatmaps(run: &mut RunDir, report: &PatchReport, layers: &[usize], sites: &[HookPoint]) -> Result<()> {
    for base in &report.baselines {
        let values: Vec<Vec<f64>> = layers
            .iter()
            .map(|&l| {
                sites
                    .iter()
                    .map(|s| {
                        report
                            .records
                            .iter()
                            .find(|r| r.layer == l && r.site == s.name() && r.direction == base.direction)
                            .and_then(|r| r.recovery)
                            .unwrap_or(f64::NAN)
                    })
                    .collect()
            })
            .collect();
        let mut fig = sfn_report::Heatmap::new(
            format!(
                "{}: {} with {}'s activation, share of the log-probability gap recovered",
                base.direction, base.target, base.source
            ),
            layers.iter().map(|l| l.to_string()).collect(),
            sites.iter().map(|s| s.name().to_string()).collect(),
            values,
        );
        fig.x_label = "site".into();
        fig.y_label = "layer".into();
        figure::save(run, &fig, &format!("patch_{}", base.direction))?;
    }
    Ok(())
}
