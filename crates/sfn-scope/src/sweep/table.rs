//! The table of a sweep: one row per variant (accuracy with its interval, mean length, the share
//! of each output level, an example output), written as sweep.json (read back by reports),
//! sweep.md (also printed) and a figure of the level shares; and the paper's Table 3 shape
//! (module × method) for destruction sweeps.

use crate::error::Result;
use sfn_checkpoint::edit::EditView;
use sfn_eval::{Level, Summary};
use sfn_run::{Provenance, RunDir};
use std::path::{Path, PathBuf};

/// One row of the table.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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

pub(crate) fn row(v: &super::Variant, view: &EditView, s: &Summary, dir: &Path) -> Result<Row> {
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
    let first = sfn_eval::results::read_samples(dir)?.into_iter().next();
    Ok(first.map(|r| (r.id, r.output)).unwrap_or_default())
}

/// sweep.json, as written and as read back (`SweepReport::read`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SweepReport {
    pub provenance: Provenance,
    pub title: String,
    pub rows: Vec<Row>,
}

impl SweepReport {
    /// sweep.json of the run directory `dir`.
    pub fn read(dir: &Path) -> Result<SweepReport> {
        Ok(sfn_run::rundir::read_json(&dir.join(JSON_FILE))?)
    }
}

pub const JSON_FILE: &str = "sweep.json";
pub const MARKDOWN_FILE: &str = "sweep.md";

/// Write sweep.json, sweep.md and sweep_levels.{svg,png} into the run directory; returns the
/// paths.
pub fn write(run: &mut RunDir, title: &str, rows: &[Row]) -> Result<Vec<PathBuf>> {
    let report =
        SweepReport { provenance: run.manifest().provenance.clone(), title: title.into(), rows: rows.to_vec() };
    let mut written =
        vec![run.write_json(JSON_FILE, &report)?, run.write(MARKDOWN_FILE, markdown(title, rows).as_bytes())?];
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
    written.extend(crate::figure::save(run, &fig, "sweep_levels")?);
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
