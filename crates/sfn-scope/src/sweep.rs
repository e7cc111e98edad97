//! Merge and destruction sweeps (the paper's Tables 1 and 3 as one command each): one edit plan per
//! variant over A (and B), each run in memory on the same tasks (no checkpoint is written),
//! collected into one table.
//!
//! - merge sweep: A as it is, B as it is (every tensor taken), then A with each selector taken
//!   from B (or mixed with `alpha`);
//! - destruction sweep: A intact, then every (module, method) pair over the layer range; `remove`
//!   drops whole layers, so it is one variant whatever the modules (removing a module from a
//!   residual block is zeroing its output projection, which `zero` already covers).
//!
//! Every variant gets its own results directory (`OUT/<slug>/samples.jsonl`, summary.json),
//! resumable like `sfn eval`, so a stopped sweep picks up where it was. The table goes to
//! sweep.json (every number, plus provenance), sweep.md and a figure of the level shares.

use crate::error::{Error, Result};
use crate::output::{prepare_out_dir, write_atomic, InputInfo, Provenance};
use sfn_checkpoint::edit::{Edit, EditPlan, EditView, Rule};
use sfn_checkpoint::selector::{parse_layer_ranges, Selector};
use sfn_checkpoint::Checkpoint;
use sfn_eval::runtime::{evaluate_model, Reference};
use sfn_eval::{EvalJob, Level, Progress, Summary};
use sfn_model::{LoadOptions, Model, Tokenizer};
use std::path::{Path, PathBuf};

/// How a destruction damages the selected modules.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Zero,
    /// N(mean, std), seeded.
    Reinit,
    /// Whole layers of the range.
    Remove,
}

impl Method {
    pub fn parse(s: &str) -> Result<Method> {
        match s.trim() {
            "zero" => Ok(Method::Zero),
            "reinit" => Ok(Method::Reinit),
            "remove" => Ok(Method::Remove),
            other => Err(Error::Options(format!("method `{other}`: choose zero, reinit or remove"))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Method::Zero => "zero",
            Method::Reinit => "reinit",
            Method::Remove => "remove",
        }
    }
}

/// One model of a sweep.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Variant {
    /// E.g. "take o_proj", "zero q_proj", "A".
    pub name: String,
    /// Directory name under the sweep's output.
    pub slug: String,
    /// The selector (or "layers" for removal, "-" for a baseline) and the method ("take", "mix",
    /// "zero", "reinit", "remove", "baseline").
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

/// A, B, then A with each selector of `takes` taken from B (mixed when `alpha` is given),
/// restricted to `layers` when given.
pub fn merge_variants(takes: &[String], layers: Option<&str>, alpha: Option<f64>) -> Result<Vec<Variant>> {
    let edit = match alpha {
        None => Edit::TakeB,
        Some(alpha) if (0.0..=1.0).contains(&alpha) => Edit::Mix { alpha },
        Some(alpha) => return Err(Error::Options(format!("alpha {alpha} must lie in [0, 1]"))),
    };
    let verb = if alpha.is_some() { "mix" } else { "take" };
    let mut out = vec![
        variant("A".into(), "-", "baseline", EditPlan::default()),
        variant("B".into(), "-", "baseline", single(Selector::parse("all")?, Edit::TakeB)),
    ];
    for take in takes {
        let mut sel = Selector::parse(take)?;
        if let Some(l) = layers {
            sel = sel.with_layers(l)?;
        }
        out.push(variant(format!("{verb} {take}"), take, verb, single(sel, edit.clone())));
    }
    Ok(out)
}

/// Reinit parameters of a destruction sweep (the paper: mean 0, std 0.02).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reinit {
    pub mean: f64,
    pub std: f64,
    pub seed: u64,
}

/// A intact, then every module × method over `layers` (`remove`: one variant, whole layers).
pub fn destroy_variants(modules: &[String], methods: &[Method], layers: &str, reinit: Reinit) -> Result<Vec<Variant>> {
    let mut out = vec![variant("A (intact)".into(), "-", "baseline", EditPlan::default())];
    for &method in methods {
        if method == Method::Remove {
            let remove = parse_layer_ranges(layers)?.into_iter().flatten().collect();
            out.push(variant(
                format!("remove layers {layers}"),
                "layers",
                "remove",
                EditPlan { rules: vec![], remove_layers: remove },
            ));
            continue;
        }
        for module in modules {
            let sel = Selector::parse(module)?.with_layers(layers)?;
            let edit = match method {
                Method::Zero => Edit::Zero,
                Method::Reinit => Edit::Reinit { mean: reinit.mean, std: reinit.std, seed: reinit.seed },
                Method::Remove => unreachable!("handled above"),
            };
            out.push(variant(format!("{} {module}", method.name()), module, method.name(), single(sel, edit)));
        }
    }
    Ok(out)
}

fn single(sel: Selector, edit: Edit) -> EditPlan {
    EditPlan { rules: vec![Rule::new(sel, edit)], ..Default::default() }
}

/// One row of the table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub variant: String,
    pub module: String,
    pub method: String,
    pub edited_tensors: usize,
    pub edited_params: u64,
    pub removed_layers: Vec<usize>,
    pub accuracy: Option<f64>,
    pub ci95: Option<[f64; 2]>,
    pub mean_tokens: Option<f64>,
    pub samples: usize,
    /// Share of samples per level, in the order I, II, III, IV.
    pub level_shares: [f64; 4],
    /// The first task's first output, as an example of what the variant says.
    pub example_id: String,
    pub example_output: String,
    pub results_dir: PathBuf,
}

/// A sweep's inputs besides the variants.
pub struct Sweep<'a> {
    pub a: &'a Checkpoint,
    pub b: Option<&'a Checkpoint>,
    /// The evaluation of every variant; its `out_dir` is the sweep's output directory.
    pub job: EvalJob<'a>,
    pub load: LoadOptions,
    pub tokenizer: &'a Tokenizer,
    pub reference: Option<Reference<'a>>,
    /// What every variant's results record as the runtime (device, activations...).
    pub runtime: serde_json::Value,
}

/// Evaluate every variant in turn; `on_variant(i, n, name)` is called before each.
pub fn run(
    sweep: &Sweep,
    variants: &[Variant],
    on_variant: &mut dyn FnMut(usize, usize, &str),
    on_progress: &mut dyn FnMut(Progress),
) -> Result<Vec<Row>> {
    let mut inputs: Vec<&Path> = vec![&sweep.a.path];
    inputs.extend(sweep.b.map(|b| b.path.as_path()));
    prepare_out_dir(sweep.job.out_dir, &inputs)?;
    // Every plan is checked before the first (long) evaluation starts.
    for v in variants {
        EditView::new(sweep.a, sweep.b, v.plan.clone()).map_err(|e| Error::Options(format!("{}: {e}", v.name)))?;
    }
    let mut rows = Vec::with_capacity(variants.len());
    for (i, v) in variants.iter().enumerate() {
        on_variant(i, variants.len(), &v.name);
        let view = EditView::new(sweep.a, sweep.b, v.plan.clone())?;
        let model = Model::load(&view, &sweep.load)?;
        let dir = sweep.job.out_dir.join(&v.slug);
        let job = EvalJob { out_dir: &dir, ..sweep.job.clone() };
        let describe = serde_json::json!({
            "a": sfn_checkpoint::writer::absolute(&sweep.a.path),
            "b": sweep.b.map(|b| sfn_checkpoint::writer::absolute(&b.path)),
            "plan": v.plan,
            "runtime": sweep.runtime,
        });
        let outcome = evaluate_model(&job, &model, sweep.tokenizer, describe, sweep.reference.as_ref(), on_progress)?;
        rows.push(row(v, &view, &outcome.summary, &dir)?);
    }
    Ok(rows)
}

fn row(v: &Variant, view: &EditView, s: &Summary, dir: &Path) -> Result<Row> {
    let edited: Vec<_> = view.tensors().iter().filter(|t| t.edit.is_some()).collect();
    let total = s.samples.max(1) as f64;
    let (example_id, example_output) = first_sample(dir)?;
    Ok(Row {
        variant: v.name.clone(),
        module: v.module.clone(),
        method: v.method.clone(),
        edited_tensors: edited.len(),
        edited_params: edited.iter().map(|t| t.shape.iter().product::<usize>() as u64).sum(),
        removed_layers: v.plan.remove_layers.iter().copied().collect(),
        accuracy: s.accuracy,
        ci95: s.ci95,
        mean_tokens: s.mean_tokens,
        samples: s.samples,
        level_shares: Level::ALL.map(|l| s.levels.get(l) as f64 / total),
        example_id,
        example_output,
        results_dir: dir.to_path_buf(),
    })
}

/// The first record of a results directory: (id, output).
fn first_sample(dir: &Path) -> Result<(String, String)> {
    let path = dir.join(sfn_eval::results::SAMPLES_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let first: Option<serde_json::Value> = text.lines().next().and_then(|l| serde_json::from_str(l).ok());
    let get = |k: &str| first.as_ref().and_then(|r| r[k].as_str()).unwrap_or_default().to_string();
    Ok((get("id"), get("output")))
}

/// Write sweep.json, sweep.md and sweep_levels.{svg,png} into `dir`; returns the paths.
pub fn write(dir: &Path, title: &str, rows: &[Row], provenance: &Provenance) -> Result<Vec<PathBuf>> {
    let json = serde_json::json!({ "provenance": provenance, "title": title, "rows": rows });
    let json_path = dir.join("sweep.json");
    write_atomic(&json_path, serde_json::to_string_pretty(&json).expect("plain data").as_bytes())?;
    let md_path = dir.join("sweep.md");
    write_atomic(&md_path, markdown(title, rows).as_bytes())?;
    let mut written = vec![json_path, md_path];

    let mut fig = sfn_report::Heatmap::new(
        format!("{title}: share of outputs per level"),
        rows.iter().map(|r| r.variant.clone()).collect(),
        ["I nonsense", "II off task", "III on task", "IV correct"].map(String::from).to_vec(),
        rows.iter().map(|r| r.level_shares.to_vec()).collect(),
    );
    fig.x_label = "output level".into();
    fig.y_label = "variant".into();
    fig.value_label = "share of samples".into();
    fig.range = Some((0.0, 1.0));
    fig.annotate = true;
    let stem = dir.join("sweep_levels");
    written
        .extend(sfn_report::save(&fig, &stem).map_err(|e| Error::Figure { path: stem.clone(), msg: e.to_string() })?);
    Ok(written)
}

/// The table as markdown: one row per variant, then one example output each.
pub fn markdown(title: &str, rows: &[Row]) -> String {
    let pct = |x: Option<f64>| x.map_or("n/a".to_string(), |v| format!("{:.1}%", 100.0 * v));
    let mut md = format!(
        "# {title}\n\n| variant | edit | accuracy | 95% CI | mean tokens | I | II | III | IV |\n|---|---|---:|---|---:|---:|---:|---:|---:|\n"
    );
    for r in rows {
        let ci = r.ci95.map_or("n/a".to_string(), |[lo, hi]| format!("{}–{}", pct(Some(lo)), pct(Some(hi))));
        let shares: Vec<String> = r.level_shares.iter().map(|s| format!("{:.0}%", 100.0 * s)).collect();
        let edit = match (r.removed_layers.len(), r.edited_tensors) {
            (0, 0) => "none".to_string(),
            (0, t) => format!("{t} tensors"),
            (l, _) => format!("{l} layers removed"),
        };
        md.push_str(&format!(
            "| {} | {edit} | {} | {ci} | {} | {} |\n",
            r.variant,
            pct(r.accuracy),
            r.mean_tokens.map_or("n/a".to_string(), |t| format!("{t:.1}")),
            shares.join(" | ")
        ));
    }
    md.push_str("\nLevels: I nonsense, II fluent but off the task, III on the task but wrong or no answer, IV correct answer by reasoning.\n");
    md.push_str(&module_by_method(rows));
    md.push_str("\n## Example outputs\n\n");
    for r in rows {
        let one_line: String = r.example_output.split_whitespace().collect::<Vec<_>>().join(" ");
        let shown: String = one_line.chars().take(240).collect();
        let more = if one_line.chars().count() > 240 { " …" } else { "" };
        md.push_str(&format!("- **{}** ({}): {}{more}\n", r.variant, r.example_id, shown.replace('|', "\\|")));
    }
    md
}

/// The paper's Table 3 shape for a destruction sweep: one row per module, one column per
/// per-module method, each cell the most frequent level with its share (and the accuracy when
/// there are gold answers). Empty when fewer than two modules were swept with such a method.
fn module_by_method(rows: &[Row]) -> String {
    let per_module: Vec<&Row> = rows.iter().filter(|r| matches!(r.method.as_str(), "zero" | "reinit")).collect();
    let mut modules: Vec<&str> = Vec::new();
    let mut methods: Vec<&str> = Vec::new();
    for r in &per_module {
        if !modules.contains(&r.module.as_str()) {
            modules.push(&r.module);
        }
        if !methods.contains(&r.method.as_str()) {
            methods.push(&r.method);
        }
    }
    if modules.len() < 2 {
        return String::new();
    }
    let mut md = format!(
        "\n## Module × method (most frequent level, its share; accuracy)\n\n| module | {} |\n|---|{}\n",
        methods.join(" | "),
        "---|".repeat(methods.len())
    );
    for m in &modules {
        let cells: Vec<String> = methods
            .iter()
            .map(|method| match per_module.iter().find(|r| r.module == *m && r.method == *method) {
                Some(r) => {
                    let (i, share) =
                        r.level_shares
                            .iter()
                            .enumerate()
                            .fold((0, -1.0), |b, (i, &s)| if s > b.1 { (i, s) } else { b });
                    let acc = r.accuracy.map_or(String::new(), |a| format!("; {:.0}%", 100.0 * a));
                    format!("{} {:.0}%{acc}", Level::ALL[i].name(), 100.0 * share)
                }
                None => "–".to_string(),
            })
            .collect();
        md.push_str(&format!("| {m} | {} |\n", cells.join(" | ")));
    }
    md
}

/// Provenance of a sweep: A (and B), the sweep's options and the seed.
pub fn provenance(
    command: Vec<String>,
    a: &Checkpoint,
    b: Option<&Checkpoint>,
    options: serde_json::Value,
    seed: u64,
) -> Provenance {
    let mut inputs = vec![InputInfo::of("a", a)];
    inputs.extend(b.map(|b| InputInfo::of("b", b)));
    Provenance::new(command, inputs, options, Some(seed))
}
