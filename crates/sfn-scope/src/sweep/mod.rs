//! Merge and destruction sweeps (the paper's Tables 1 and 3 as one command each): one edit plan per
//! variant over A (and B), each run in memory on the same tasks (no checkpoint is written),
//! collected into one table (`table`).
//!
//! - merge sweep: A as it is, B as it is (every tensor taken), then A with each selector taken
//!   from B (or mixed with `alpha`);
//! - destruction sweep: A intact, then every (module, method) pair over the layer range; `remove`
//!   drops whole layers, so it is one variant whatever the modules (removing a module from a
//!   residual block is zeroing its output projection, which `zero` already covers).
//!
//! The sweep's directory is a run directory (kind `merge-sweep` / `destroy-sweep`); every variant
//! gets its own evaluation run directory inside it (`OUT/<slug>/samples.jsonl`, summary.json),
//! resumable like `sfn eval`, so a stopped sweep picks up where it was. Plans come from
//! sfn-checkpoint's `merge_plan` / `destroy_plan`, as for the single commands.

pub mod table;

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use sfn_checkpoint::edit::{check_same_architecture, destroy_plan, merge_plan, Damage, EditPlan, EditView, Method};
use sfn_checkpoint::Checkpoint;
use sfn_eval::runtime::{evaluate_model, LoadedReference};
use sfn_eval::server::{evaluate_server, Server, ServerSpec};
use sfn_eval::EvalSettings;
use sfn_model::RuntimeSpec;
use sfn_run::rundir::absolute;
use sfn_run::{Context, Provenance, RunDir, Unit};
use std::path::{Path, PathBuf};
pub use table::{markdown, Row, SweepReport};

/// What every sweep takes besides its variants: the tasks and how each variant is evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct SweepEval {
    /// Task file (JSONL: id, prompt, answer, kind; aime2024's layout is detected).
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub task: PathBuf,
    /// Judge without a reference model. By default intact A scores every output (its mean token
    /// loss tells word salad from language, which text statistics alone mostly cannot).
    #[cfg_attr(feature = "cli", arg(long, conflicts_with = "reference"))]
    #[serde(default)]
    pub no_reference: bool,
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(default)]
    pub settings: EvalSettings,
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(default)]
    pub runtime: RuntimeSpec,
    /// Variants served elsewhere: `--server URL` where one server lists every variant under its
    /// directory name (a, b, take-o_proj, ...), or `--server a=URL1,take-o_proj=URL2,...` with a
    /// server per variant (its model: the variant's name if listed, else the only one it serves);
    /// A and B are still opened, for the table's counts of edited tensors.
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(default)]
    pub server: ServerSpec,
}

/// The server (and model) of every variant, from `--server`: `NAME=URL` entries for named
/// variants, a plain URL for the rest. Each server is asked which models it serves.
fn variant_servers(spec: &ServerSpec, list: &str, variants: &[Variant]) -> Result<Vec<ServerSpec>> {
    if spec.model.is_some() {
        return Err(Error::Options(
            "a sweep asks each server for its variant by name: give no --model (see --server)".into(),
        ));
    }
    let names = || variants.iter().map(|v| v.slug.as_str()).collect::<Vec<_>>().join(", ");
    let (mut named, mut default) = (std::collections::BTreeMap::new(), None);
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        // `take-o_proj=http://...`; a URL alone has no `=` before its scheme.
        match entry.split_once('=').filter(|(name, _)| !name.contains(['/', ':'])) {
            Some((name, url)) if variants.iter().any(|v| v.slug == name) => {
                named.insert(name.to_string(), url.to_string());
            }
            Some((name, _)) => {
                return Err(Error::Options(format!(
                    "--server: no variant `{name}` in this sweep (its variants: {})",
                    names()
                )))
            }
            None => default = Some(entry.to_string()),
        }
    }
    let mut listed: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut out = Vec::with_capacity(variants.len());
    for v in variants {
        let url = named.get(&v.slug).or(default.as_ref()).ok_or_else(|| {
            Error::Options(format!(
                "--server: no server for variant `{}` (give {}=URL, or one URL for all)",
                v.slug, v.slug
            ))
        })?;
        let at = ServerSpec { url: Some(url.clone()), server_reference: false, ..spec.clone() };
        if !listed.contains_key(url) {
            let models = Server::models(&at).map_err(|e| Error::Options(format!("--server {url}: {e}")))?;
            listed.insert(url.clone(), models);
        }
        let models = &listed[url];
        // A server named for this variant may call its one model anything; the shared URL must
        // name every variant (else all would silently be the same model).
        let own = named.contains_key(&v.slug);
        let model = match models.iter().find(|m| **m == v.slug) {
            Some(m) => m.clone(),
            None if own && models.len() == 1 => models[0].clone(),
            None => {
                return Err(Error::Options(format!(
                    "{url} serves {models:?}, none named `{}`: serve the variant under that name (sfn serve --name {})",
                    v.slug, v.slug
                )))
            }
        };
        out.push(ServerSpec { model: Some(model), ..at });
    }
    Ok(out)
}

/// `sfn merge-sweep A B --take o_proj,qkv,mlp`: the paper's Table 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct MergeSweepSpec {
    /// Base checkpoint A.
    pub a: PathBuf,
    /// Checkpoint B, same architecture as A.
    pub b: PathBuf,
    /// One variant per comma-separated selector; join terms of one selector with `+`
    /// (`o_proj+norms+embed+lm_head`). Repeatable. A and B themselves are always evaluated.
    #[cfg_attr(feature = "cli", arg(long, required = true))]
    pub take: Vec<String>,
    /// Mix instead of take: alpha·A + (1 − alpha)·B.
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub alpha: Option<f64>,
    /// Restrict every selector to these layers (`5..30`).
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub layers: Option<String>,
    /// Seed of everything random: sampling, bootstrap intervals. Recorded.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0))]
    #[serde(default)]
    pub seed: u64,
    #[cfg_attr(feature = "cli", command(flatten))]
    pub eval: SweepEval,
}

fn default_modules() -> Vec<String> {
    ["q", "k", "v", "o", "gate", "up", "down"].map(String::from).to_vec()
}

fn default_methods() -> Vec<Method> {
    vec![Method::Zero, Method::Reinit, Method::Remove]
}

fn default_std() -> f64 {
    0.02
}

/// `sfn destroy-sweep A --layers 5..30`: the paper's Table 3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct DestroySweepSpec {
    /// Checkpoint A to damage.
    pub a: PathBuf,
    /// Modules to destroy, one variant each (selectors: q, k, v, o, gate, up, down, mlp, ...).
    #[cfg_attr(feature = "cli", arg(long, value_delimiter = ',', default_value = "q,k,v,o,gate,up,down"))]
    #[serde(default = "default_modules")]
    pub modules: Vec<String>,
    /// zero, reinit (N(mean, std), seeded), remove (whole layers: one variant) and/or scale
    /// (by --factor).
    #[cfg_attr(feature = "cli", arg(long, value_delimiter = ',', default_value = "zero,reinit,remove"))]
    #[serde(default = "default_methods")]
    pub methods: Vec<Method>,
    /// Layers to act on (`5..30` = 5 to 29, as the paper's keys[5:30]).
    #[cfg_attr(feature = "cli", arg(long))]
    pub layers: String,
    /// reinit: standard deviation (the paper: 0.02).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = default_std()))]
    #[serde(default = "default_std")]
    pub std: f64,
    /// reinit: mean.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0.0))]
    #[serde(default)]
    pub mean: f64,
    /// scale: factor.
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub factor: Option<f64>,
    /// Seed of everything random: reinit, sampling, bootstrap intervals. Recorded.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0))]
    #[serde(default)]
    pub seed: u64,
    #[cfg_attr(feature = "cli", command(flatten))]
    pub eval: SweepEval,
}

/// One model of a sweep.
#[derive(Debug, Clone, Serialize)]
pub struct Variant {
    /// E.g. "take o_proj", "zero q_proj", "A".
    pub name: String,
    /// Directory name under the sweep's output.
    pub slug: String,
    /// The selector (or "layers" for removal, "-" for a baseline) and the method ("take", "mix",
    /// "zero", "reinit", "remove", "scale", "baseline").
    pub module: String,
    pub method: String,
    pub plan: EditPlan,
}

fn variant(name: String, module: &str, method: &str, plan: EditPlan) -> Variant {
    // "A (intact)" -> "a-intact", "take o_proj,norms" -> "take-o_proj-norms".
    let mut slug = String::new();
    for c in name.to_ascii_lowercase().chars() {
        let c = if c.is_ascii_alphanumeric() || c == '.' || c == '_' { c } else { '-' };
        if !(c == '-' && (slug.is_empty() || slug.ends_with('-'))) {
            slug.push(c);
        }
    }
    let slug = slug.trim_end_matches('-').to_string();
    Variant { name, slug, module: module.into(), method: method.into(), plan }
}

/// Split `take` values into selectors: commas separate variants, `+` joins terms of one.
pub fn take_selectors(values: &[String]) -> Vec<String> {
    values.iter().flat_map(|v| v.split(',')).map(|s| s.trim().replace('+', ",")).filter(|s| !s.is_empty()).collect()
}

/// A, B, then A with each selector of `takes` taken from B (mixed when `alpha` is given),
/// restricted to `layers` when given.
pub fn merge_variants(takes: &[String], layers: Option<&str>, alpha: Option<f64>) -> Result<Vec<Variant>> {
    let verb = if alpha.is_some() { "mix" } else { "take" };
    let mut out = vec![
        variant("A".into(), "-", "baseline", EditPlan::default()),
        variant("B".into(), "-", "baseline", EditPlan::take_all()),
    ];
    for take in takes {
        out.push(variant(format!("{verb} {take}"), take, verb, merge_plan(take, layers, alpha)?));
    }
    Ok(out)
}

/// A intact, then every module × method over `layers` (`remove`: one variant, whole layers).
pub fn destroy_variants(modules: &[String], methods: &[Method], layers: &str, damage: Damage) -> Result<Vec<Variant>> {
    let mut out = vec![variant("A (intact)".into(), "-", "baseline", EditPlan::default())];
    for &method in methods {
        if method == Method::Remove {
            let plan = destroy_plan(method, None, Some(layers), damage)?;
            out.push(variant(format!("remove layers {layers}"), "layers", "remove", plan));
            continue;
        }
        for module in modules {
            let plan = destroy_plan(method, Some(module), Some(layers), damage)?;
            out.push(variant(format!("{} {module}", method.name()), module, method.name(), plan));
        }
    }
    Ok(out)
}

/// What a sweep produced: its rows, and the files of its table.
pub struct SweepOutcome {
    pub title: &'static str,
    pub rows: Vec<Row>,
    pub files: Vec<PathBuf>,
}

impl MergeSweepSpec {
    /// The variants (without opening a model: a study checks its file with this before running).
    pub fn variants(&self) -> Result<Vec<Variant>> {
        merge_variants(&take_selectors(&self.take), self.layers.as_deref(), self.alpha)
    }
}

impl DestroySweepSpec {
    /// The variants (without opening a model).
    pub fn variants(&self) -> Result<Vec<Variant>> {
        let damage = Damage { mean: self.mean, std: self.std, seed: self.seed, factor: self.factor };
        destroy_variants(&self.modules, &self.methods, &self.layers, damage)
    }
}

/// Run `sfn merge-sweep` as `spec` says into the run directory `out`.
pub fn merge_sweep(spec: &MergeSweepSpec, out: &Path, ctx: &Context) -> Result<SweepOutcome> {
    let a = Checkpoint::open(&spec.a).map_err(|e| Error::Side("A", Box::new(e.into())))?;
    let b = Checkpoint::open(&spec.b).map_err(|e| Error::Side("B", Box::new(e.into())))?;
    check_same_architecture(&a, &b)?;
    let variants = spec.variants()?;
    let sweep =
        Sweep { kind: "merge-sweep", title: "Merge sweep", a: &a, b: Some(&b), eval: &spec.eval, seed: spec.seed };
    sweep.run(&variants, serde_json::to_value(spec).expect("plain data"), out, ctx)
}

/// Run `sfn destroy-sweep` as `spec` says into the run directory `out`.
pub fn destroy_sweep(spec: &DestroySweepSpec, out: &Path, ctx: &Context) -> Result<SweepOutcome> {
    let a = Checkpoint::open(&spec.a)?;
    let variants = spec.variants()?;
    let sweep =
        Sweep { kind: "destroy-sweep", title: "Destruction sweep", a: &a, b: None, eval: &spec.eval, seed: spec.seed };
    sweep.run(&variants, serde_json::to_value(spec).expect("plain data"), out, ctx)
}

/// A sweep's inputs besides the variants.
struct Sweep<'a> {
    kind: &'static str,
    title: &'static str,
    a: &'a Checkpoint,
    b: Option<&'a Checkpoint>,
    eval: &'a SweepEval,
    seed: u64,
}

impl Sweep<'_> {
    /// Evaluate every variant in turn (one progress stage each), then write the table.
    fn run(&self, variants: &[Variant], spec: serde_json::Value, out: &Path, ctx: &Context) -> Result<SweepOutcome> {
        let e = self.eval;
        // Every plan is checked before the first (long) evaluation starts.
        for v in variants {
            EditView::new(self.a, self.b, v.plan.clone())
                .map_err(|err| Error::Options(format!("{}: {err}", v.name)))?;
        }
        let tasks = e.settings.tasks(&e.task)?;
        let servers = e.server.url.as_deref().map(|list| variant_servers(&e.server, list, variants)).transpose()?;
        // With --server-reference, intact A (every sweep's first variant) scores through its server.
        let server_reference = match (&servers, e.server.server_reference) {
            (_, false) => None,
            (Some(servers), true) if !e.no_reference && e.settings.reference.is_none() => Some(servers[0].clone()),
            _ => {
                return Err(Error::Options(
                    "--server-reference needs --server, and neither --reference nor --no-reference".into(),
                ))
            }
        };
        let mut inputs = vec![self.a.input("a")?];
        inputs.extend(self.b.map(|b| b.input("b")).transpose()?);
        let provenance = Provenance::new(ctx.command.clone(), spec.clone(), inputs.clone(), Some(self.seed));
        let run = RunDir::create(out, self.kind, provenance)?;
        e.runtime.init()?;
        let tokenizer = sfn_model::Tokenizer::for_source(self.a).map_err(|err| err.context("tokenizer of A"))?;
        let reference = match (&e.settings.reference, e.no_reference || server_reference.is_some()) {
            (_, true) => None,
            (Some(path), _) => LoadedReference::open(Some(path), &e.runtime)?,
            (None, _) => Some(LoadedReference::load(self.a, &e.runtime)?),
        };
        let load = e.runtime.load_options()?;
        let (outcome, _) = run.finish_with(|run| -> Result<SweepOutcome> {
            let mut rows = Vec::with_capacity(variants.len());
            for (i, v) in variants.iter().enumerate() {
                ctx.progress.stage(&format!("[{}/{}] {}", i + 1, variants.len(), v.name), 0, Unit::Tasks);
                let view = EditView::new(self.a, self.b, v.plan.clone())?;
                let dir = run.join(&v.slug);
                let mut job = e.settings.job(&tasks, &dir, self.seed, !e.no_reference, spec.clone(), ctx)?;
                job.models = inputs.clone();
                let reference = reference.as_ref().map(|r| r.get());
                let outcome = match &servers {
                    Some(servers) => {
                        evaluate_server(job, &servers[i], reference.as_ref(), server_reference.as_ref(), ctx.progress)?
                    }
                    None => {
                        let model = sfn_model::Model::load(&view, &load)?;
                        let describe = serde_json::json!({
                            "a": absolute(&self.a.path),
                            "b": self.b.map(|b| absolute(&b.path)),
                            "plan": v.plan,
                            "runtime": e.runtime.describe(),
                        });
                        evaluate_model(&job, &model, &tokenizer, describe, reference.as_ref(), ctx.progress)?
                    }
                };
                run.record(&v.slug)?;
                rows.push(table::row(v, &view, &outcome.summary, &dir)?);
            }
            ctx.progress.finish();
            let files = table::write(run, self.title, &rows)?;
            Ok(SweepOutcome { title: self.title, rows, files })
        })?;
        Ok(outcome)
    }
}
