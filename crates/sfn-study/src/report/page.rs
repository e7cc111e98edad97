//! The report's data, read from a results directory: which runs it holds (found by their
//! run.json), each turned into a part of its stethoscope's section from its typed results files.
//! A results file that cannot be read makes its part show the error, not the report fail.

use crate::error::Result;
use serde::Serialize;
use sfn_eval::Summary;
use sfn_lab::LabSummary;
use sfn_run::{Manifest, Status};
use sfn_scope::delta::write::DeltaReport;
use sfn_scope::freeze::output::TrainSummary;
use sfn_scope::freeze::sweep::FreezeSweepReport;
use sfn_scope::sweep::table::SweepReport;
use std::path::{Path, PathBuf};

#[derive(Serialize)]
pub struct Page {
    title: String,
    subtitle: String,
    version: &'static str,
    source: String,
    generated: String,
    status: String,
    error: Option<String>,
    findings: Vec<FindingView>,
    variants: Vec<VariantView>,
    sections: Vec<Section>,
    runs: Vec<RunMeta>,
}

#[derive(Serialize)]
struct FindingView {
    verdict: &'static str,
    claim: String,
    evidence: String,
}

#[derive(Serialize)]
struct VariantView {
    name: String,
    accuracy: String,
    tokens: String,
    reasoning: [u32; 4],
    conversation: [u32; 4],
}

#[derive(Serialize)]
struct Section {
    id: &'static str,
    title: &'static str,
    intro: &'static str,
    state: &'static str,
    parts: Vec<Part>,
}

#[derive(Serialize, Default)]
struct Part {
    title: String,
    dir: String,
    status: &'static str,
    error: Option<String>,
    facts: Vec<(String, String)>,
    table: Option<Table>,
    figures: Vec<Figure>,
}

#[derive(Serialize)]
struct Table {
    headers: Vec<&'static str>,
    has_levels: bool,
    rows: Vec<Row>,
}

#[derive(Serialize)]
struct Row {
    cells: Vec<String>,
    /// Percent of outputs per level I..IV.
    levels: Option<[u32; 4]>,
    examples: Vec<Example>,
}

#[derive(Serialize)]
struct Example {
    level: String,
    id: String,
    correct: Option<bool>,
    output: String,
    reason: String,
}

#[derive(Serialize)]
struct Figure {
    title: String,
    svg: String,
}

#[derive(Serialize)]
struct RunMeta {
    dir: String,
    kind: String,
    status: &'static str,
    version: String,
    command: String,
    seed: String,
    started: String,
    finished: String,
    error: Option<String>,
    inputs: Vec<sfn_run::Input>,
}

/// The stethoscopes' sections, in page order: (id, title, intro, run kinds).
const SECTIONS: [(&str, &str, &str, &[&str]); 6] = [
    ("delta", "Delta", "Which modules changed from A to B, per module kind and layer: ‖B−A‖, the relative change, and the histogram of the element-wise relative change clipped to [−1, 1].", &["delta"]),
    ("merge", "Merge", "A with chosen modules taken from B, evaluated without training.", &["merge-sweep", "merge"]),
    ("freeze", "Freeze", "A fine-tuned with only the chosen modules trainable.", &["freeze-sweep", "freeze"]),
    ("destruction", "Destruction", "A with modules zeroed, re-initialised or removed over a layer range, and what it still says.", &["destroy-sweep", "destroy"]),
    ("evaluations", "Evaluations", "Models evaluated on their own.", &["eval"]),
    ("activations", "Activations", "Layer-wise probes and cross-model activation patching.", &["probe", "patch"]),
];

/// Kinds whose run directories hold other runs the report shows on their own.
const CONTAINERS: [&str; 2] = ["lab", "study"];

pub fn read(dir: &Path) -> Result<Page> {
    let root = Manifest::read(dir)?;
    let mut runs = vec![(String::from("."), root.clone())];
    match root.kind.as_str() {
        // A study lists its steps: results of sections since removed from the file stay out.
        "study" => runs.extend(root.files.iter().filter_map(|f| Some((f.clone(), Manifest::read(&dir.join(f)).ok()?)))),
        "lab" => find_runs(dir, "", 0, &mut runs),
        _ => {}
    }
    let (mut title, mut subtitle) = (format!("sfn {}", root.kind), describe(&root));
    let (mut findings, mut variants) = (vec![], vec![]);
    match root.kind.as_str() {
        "lab" => match LabSummary::read(dir) {
            Ok(s) => {
                title = format!("sfn lab{} (seed {})", if s.quick { " --quick" } else { "" }, s.seed);
                subtitle = format!(
                    "A: a Qwen2 of {} layers × {} hidden pretrained from scratch on conversations; B: A fine-tuned on worked arithmetic traces. Training {:.0} s{}, study {:.0} s.",
                    s.recipe.layers,
                    s.recipe.hidden,
                    s.pair_seconds,
                    if s.pair.cached { " (cached pair)" } else { "" },
                    s.study_seconds
                );
                findings = s
                    .findings
                    .iter()
                    .map(|f| FindingView {
                        verdict: f.verdict.word(),
                        claim: f.claim.clone(),
                        evidence: f.evidence.clone(),
                    })
                    .collect();
                variants = s.variants.iter().map(|(name, o)| variant(name, o)).collect();
            }
            Err(e) => subtitle = format!("The lab's summary.json cannot be read: {e}"),
        },
        "study" => {
            if let Some(t) = root.provenance.spec.get("title").and_then(|t| t.as_str()) {
                title = t.to_string();
            }
        }
        _ => {}
    }
    let mut sections: Vec<Section> = SECTIONS
        .iter()
        .map(|(id, title, intro, _)| Section { id, title, intro, state: "not run", parts: vec![] })
        .collect();
    for (rel, m) in &runs {
        if let Some(i) = SECTIONS.iter().position(|s| s.3.contains(&m.kind.as_str())) {
            sections[i].parts.push(part(&dir.join(rel), rel, m));
        }
    }
    for s in &mut sections {
        s.state = section_state(&s.parts);
    }
    Ok(Page {
        title,
        subtitle,
        version: env!("CARGO_PKG_VERSION"),
        source: sfn_run::rundir::absolute(dir).display().to_string(),
        generated: sfn_run::provenance::utc_now(),
        status: status_word(root.status).to_string(),
        error: root.error.clone(),
        findings,
        variants,
        sections,
        runs: runs.iter().map(|(rel, m)| meta(rel, m)).collect(),
    })
}

/// Every run directory under `dir/rel` (sorted by path), not descending into runs that are not
/// containers (a sweep's variants are part of the sweep).
fn find_runs(dir: &Path, rel: &str, depth: usize, out: &mut Vec<(String, Manifest)>) {
    let Ok(entries) = std::fs::read_dir(dir.join(rel)) else { return };
    // Links are not followed: the lab links its pair (the models' own run directories) beside
    // its results, and those are inputs, not results.
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let sub = if rel.is_empty() { name } else { format!("{rel}/{name}") };
        match Manifest::read(&dir.join(&sub)) {
            Ok(m) => {
                let container = CONTAINERS.contains(&m.kind.as_str());
                out.push((sub.clone(), m));
                if container {
                    find_runs(dir, &sub, depth + 1, out);
                }
            }
            Err(_) if depth < 3 => find_runs(dir, &sub, depth + 1, out),
            Err(_) => {}
        }
    }
}

fn describe(m: &Manifest) -> String {
    let inputs: Vec<String> =
        m.provenance.inputs.iter().map(|i| format!("{} = {}", i.role, i.path.display())).collect();
    if inputs.is_empty() {
        String::new()
    } else {
        format!("Inputs: {}.", inputs.join(", "))
    }
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Complete => "complete",
        Status::Partial => "partial",
        Status::Failed => "failed",
    }
}

fn section_state(parts: &[Part]) -> &'static str {
    if parts.is_empty() {
        "not run"
    } else if parts.iter().any(|p| p.status == "failed") {
        "failed"
    } else if parts.iter().any(|p| p.status == "partial") {
        "partial"
    } else {
        "complete"
    }
}

/// One run as a part of its section: its results, or the error that kept them from being read.
fn part(dir: &Path, rel: &str, m: &Manifest) -> Part {
    let mut p = Part {
        title: m.kind.clone(),
        dir: rel.to_string(),
        status: status_word(m.status),
        error: m.error.clone(),
        ..Default::default()
    };
    let read = match m.kind.as_str() {
        "delta" => delta(dir, &mut p),
        "merge-sweep" | "destroy-sweep" => sweep(dir, &mut p),
        "freeze-sweep" => freeze_sweep(dir, &mut p),
        "freeze" => freeze(dir, &mut p),
        "eval" => eval(dir, &mut p),
        "probe" => probe(dir, &mut p),
        "patch" => patch(dir, &mut p),
        _ => Ok(()),
    };
    if let Err(e) = read {
        let msg = format!(
            "results not readable ({}): {e}",
            if m.status == Status::Complete { "damaged?" } else { "the run did not finish" }
        );
        p.error = Some(p.error.map_or(msg.clone(), |old| format!("{old}\n{msg}")));
    }
    p.figures = figures(dir, &m.files);
    p
}

fn pct(x: f64) -> String {
    format!("{:.0}%", 100.0 * x)
}

fn accuracy(a: Option<f64>, ci: Option<[f64; 2]>) -> String {
    match (a, ci) {
        (Some(a), Some([lo, hi])) => format!("{} [{}, {}]", pct(a), pct(lo), pct(hi)),
        (Some(a), None) => pct(a),
        _ => "n/a".into(),
    }
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or("n/a".into(), |x| format!("{x:.digits$}"))
}

/// Percent per level from counts, rounded.
fn shares(counts: [usize; 4]) -> [u32; 4] {
    let total = counts.iter().sum::<usize>().max(1) as f64;
    counts.map(|c| (100.0 * c as f64 / total).round() as u32)
}

fn variant(name: &str, o: &sfn_lab::study::Outcome) -> VariantView {
    VariantView {
        name: name.into(),
        accuracy: accuracy(o.reasoning.accuracy, o.reasoning.ci95),
        tokens: opt(o.reasoning.mean_tokens, 0),
        reasoning: shares(o.reasoning.levels),
        conversation: shares(o.conversation.levels),
    }
}

fn delta(dir: &Path, p: &mut Part) -> Result<()> {
    let d = DeltaReport::read(dir)?;
    p.title = "delta A → B".into();
    p.facts = vec![
        ("verdict".into(), d.verdict.clone()),
        ("tensors compared".into(), d.summary.compared.to_string()),
        ("parameters compared".into(), d.summary.parameters_compared.to_string()),
    ];
    let spread = |s: &Option<sfn_scope::delta::aggregate::Spread>,
                  f: fn(&sfn_scope::delta::aggregate::Spread) -> f64| {
        s.as_ref().map_or("n/a".into(), |s| format!("{:.4}", f(s)))
    };
    let mut modules = d.modules.clone();
    modules.sort_by_key(|m| m.rank);
    p.table = Some(Table {
        headers: vec![
            "module",
            "rank",
            "median relative change",
            "max relative change",
            "median ‖B−A‖",
            "bimodal cells",
        ],
        has_levels: false,
        rows: modules
            .iter()
            .map(|m| Row {
                cells: vec![
                    m.module.clone(),
                    m.rank.to_string(),
                    spread(&m.rel_change, |s| s.median),
                    spread(&m.rel_change, |s| s.max),
                    spread(&m.l2_diff, |s| s.median),
                    format!("{} of {}", m.bimodal_cells, m.cells),
                ],
                levels: None,
                examples: vec![],
            })
            .collect(),
    });
    Ok(())
}

fn sweep(dir: &Path, p: &mut Part) -> Result<()> {
    let s = SweepReport::read(dir)?;
    p.title = s.title.clone();
    if let Some(task) = s.provenance.spec.pointer("/eval/task").and_then(|t| t.as_str()) {
        p.facts.push(("task".into(), task.into()));
    }
    p.table = Some(Table {
        headers: vec!["variant", "accuracy [95% CI]", "mean tokens", "samples", "edited tensors"],
        has_levels: true,
        rows: s
            .rows
            .iter()
            .map(|r| Row {
                cells: vec![
                    r.variant.clone(),
                    accuracy(r.accuracy, r.ci95),
                    opt(r.mean_tokens, 0),
                    r.samples.to_string(),
                    r.edited_tensors.to_string(),
                ],
                levels: Some(r.level_shares.map(|x| (100.0 * x).round() as u32)),
                examples: examples(&local(dir, &r.results_dir)),
            })
            .collect(),
    });
    Ok(())
}

fn freeze_sweep(dir: &Path, p: &mut Part) -> Result<()> {
    let s = FreezeSweepReport::read(dir)?;
    p.title = "Freeze sweep".into();
    p.table = Some(Table {
        headers: vec![
            "set",
            "trainable",
            "parameters",
            "share",
            "steps/s",
            "tokens/s",
            "peak memory",
            "final loss",
            "accuracy before",
            "accuracy after",
        ],
        has_levels: true,
        rows: s
            .rows
            .iter()
            .map(|r| {
                let point = |e: &Option<sfn_scope::freeze::output::EvalPoint>| {
                    e.as_ref().map_or("n/a".into(), |e| accuracy(e.accuracy, e.ci95))
                };
                Row {
                    cells: vec![
                        r.set.clone(),
                        r.selector.clone(),
                        r.trainable_params.to_string(),
                        pct(r.trainable_share),
                        format!("{:.2}", r.steps_per_s),
                        format!("{:.0}", r.tokens_per_s),
                        r.peak_rss_bytes.map_or("n/a".into(), |b| format!("{:.0} MiB", b as f64 / 1048576.0)),
                        opt(r.final_loss, 3),
                        point(&r.before),
                        point(&r.after),
                    ],
                    levels: r.after.as_ref().map(|e| shares(e.levels)),
                    examples: examples(&local(dir, &r.results_dir).join("eval/after")),
                }
            })
            .collect(),
    });
    Ok(())
}

fn freeze(dir: &Path, p: &mut Part) -> Result<()> {
    let s = TrainSummary::read(dir)?;
    p.title = format!("Freeze: train {}", s.train);
    p.facts = vec![
        (
            "trainable parameters".into(),
            format!("{} of {} ({})", s.trainable_params, s.total_params, pct(s.trainable_share)),
        ),
        ("steps".into(), format!("{} ({:.2} steps/s, {:.0} tokens/s)", s.steps, s.steps_per_s, s.tokens_per_s)),
        ("loss".into(), format!("{} → {}", opt(s.first_loss, 3), opt(s.final_loss, 3))),
        ("peak memory".into(), s.peak_rss_bytes.map_or("n/a".into(), |b| format!("{:.0} MiB", b as f64 / 1048576.0))),
    ];
    p.table = Some(Table {
        headers: vec!["evaluation", "step", "accuracy [95% CI]", "mean tokens"],
        has_levels: true,
        rows: s
            .eval
            .iter()
            .map(|e| Row {
                cells: vec![e.name.clone(), e.step.to_string(), accuracy(e.accuracy, e.ci95), opt(e.mean_tokens, 0)],
                levels: Some(shares(e.levels)),
                examples: examples(&dir.join("eval").join(&e.name)),
            })
            .collect(),
    });
    Ok(())
}

fn eval(dir: &Path, p: &mut Part) -> Result<()> {
    let s: Summary = sfn_run::rundir::read_json(&dir.join(sfn_eval::results::SUMMARY_FILE))?;
    p.title = "Evaluation".into();
    p.facts = vec![("command".into(), s.command_line.clone())];
    p.table = Some(Table {
        headers: vec!["tasks", "samples", "accuracy [95% CI]", "mean tokens"],
        has_levels: true,
        rows: vec![Row {
            cells: vec![
                s.tasks.to_string(),
                s.samples.to_string(),
                accuracy(s.accuracy, s.ci95),
                opt(s.mean_tokens, 0),
            ],
            levels: Some(shares([s.levels.I, s.levels.II, s.levels.III, s.levels.IV])),
            examples: examples(dir),
        }],
    });
    Ok(())
}

fn probe(dir: &Path, p: &mut Part) -> Result<()> {
    let r = sfn_scope::probe::ProbeReport::read(dir)?;
    p.title = "Probe: L2 norms per layer".into();
    p.facts = vec![("prompts".into(), r.prompts.to_string()), ("tokens".into(), r.tokens.to_string())];
    let with_b = r.layers.first().is_some_and(|l| l.cos_resid_post.is_some());
    let cell = |a: f64, b: Option<f64>, c: Option<f64>| match (b, c) {
        (Some(b), Some(c)) => format!("{a:.3} / {b:.3} (cos {c:.4})"),
        _ => format!("{a:.3}"),
    };
    p.table = Some(Table {
        headers: vec!["layer", if with_b { "resid_post A / B" } else { "resid_post" }, "attn_out", "mlp_out"],
        has_levels: false,
        rows: r
            .layers
            .iter()
            .map(|l| Row {
                cells: vec![
                    l.layer.to_string(),
                    cell(l.resid_post_norm, l.b_resid_post_norm, l.cos_resid_post),
                    cell(l.attn_out_norm, l.b_attn_out_norm, l.cos_attn_out),
                    cell(l.mlp_out_norm, l.b_mlp_out_norm, l.cos_mlp_out),
                ],
                levels: None,
                examples: vec![],
            })
            .collect(),
    });
    Ok(())
}

fn patch(dir: &Path, p: &mut Part) -> Result<()> {
    let r = sfn_scope::patch::PatchReport::read(dir)?;
    p.title = "Activation patching".into();
    p.facts = r
        .baselines
        .iter()
        .map(|b| {
            (
                format!("{}: {} with {}'s activations", b.direction, b.target, b.source),
                format!("unpatched KL({} ‖ {}) {:.4}; mean log-probability of the scored tokens {:.3} (target) vs {:.3} (source)", b.source, b.target, b.kl, b.target_logprob, b.source_logprob),
            )
        })
        .collect();
    p.facts.push(("prompts".into(), r.prompts.to_string()));
    if let Some(s) = &r.eval {
        p.facts.push((
            "activation merge (A decoding with B's activations)".into(),
            format!(
                "accuracy {}, mean tokens {}, levels I/II/III/IV {}/{}/{}/{} (in eval/)",
                accuracy(s.accuracy, s.ci95),
                opt(s.mean_tokens, 0),
                s.levels.I,
                s.levels.II,
                s.levels.III,
                s.levels.IV
            ),
        ));
    }
    p.table = Some(Table {
        headers: vec!["direction", "layer", "site", "KL(source ‖ patched)", "recovery"],
        has_levels: false,
        rows: r
            .records
            .iter()
            .map(|x| Row {
                cells: vec![
                    x.direction.clone(),
                    x.layer.to_string(),
                    x.site.clone(),
                    format!("{:.4}", x.kl),
                    opt(x.recovery, 3),
                ],
                levels: None,
                examples: vec![],
            })
            .collect(),
    });
    Ok(())
}

/// A results directory recorded as an absolute path, found where it is now: beside the run that
/// recorded it when that run's directory was moved, else where it was.
fn local(dir: &Path, recorded: &Path) -> PathBuf {
    match recorded.file_name().map(|n| dir.join(n)) {
        Some(p) if p.is_dir() => p,
        _ => recorded.to_path_buf(),
    }
}

/// At most two outputs per level from a results directory's samples.
fn examples(dir: &Path) -> Vec<Example> {
    const PER_LEVEL: usize = 2;
    const MAX_CHARS: usize = 800;
    let mut out: Vec<(sfn_eval::Level, Example)> = vec![];
    for r in sfn_eval::results::read_samples(dir).unwrap_or_default() {
        if out.iter().filter(|(l, _)| *l == r.level).count() >= PER_LEVEL {
            continue;
        }
        let mut shown: String = r.output.chars().take(MAX_CHARS).collect();
        if shown.len() < r.output.len() {
            shown.push_str(" …");
        }
        let example = Example {
            level: r.level.name().to_string(),
            id: r.id,
            correct: r.correct,
            output: shown,
            reason: r.judge_reason,
        };
        out.push((r.level, example));
    }
    out.sort_by_key(|(l, _)| *l);
    out.into_iter().map(|(_, e)| e).collect()
}

/// The run's SVG figures, inlined (the XML declaration dropped: it is not allowed inside HTML).
fn figures(dir: &Path, files: &[String]) -> Vec<Figure> {
    files
        .iter()
        .filter(|f| f.ends_with(".svg"))
        .filter_map(|f| {
            let text = std::fs::read_to_string(dir.join(f)).ok()?;
            let start = text.find("<svg")?;
            let stem = f.trim_end_matches(".svg");
            Some(Figure { title: figure_title(stem), svg: text[start..].to_string() })
        })
        .collect()
}

fn figure_title(stem: &str) -> String {
    match stem {
        "delta_heatmap_rel" => "Relative change ‖B−A‖/‖A‖ per module and layer".into(),
        "delta_heatmap_l2" => "‖B−A‖ per module and layer".into(),
        "delta_modules" => "Change per module kind".into(),
        "delta_histograms" => "Element-wise relative change (B−A)/|A|, clipped to [−1, 1]".into(),
        "sweep_levels" => "Share of outputs per level".into(),
        "freeze_loss" | "train_loss" => "Training loss".into(),
        "probe_norms" => "L2 norm per layer, averaged over positions and prompts".into(),
        "probe_cosine" => "Cosine similarity of A's and B's activations per layer".into(),
        "patch_denoise" => "Denoise: A with B's activation, share of the gap recovered per layer and site".into(),
        "patch_noise" => "Noise: B with A's activation, share of the gap recovered per layer and site".into(),
        other => other.replace('_', " "),
    }
}

fn meta(rel: &str, m: &Manifest) -> RunMeta {
    let p = &m.provenance;
    RunMeta {
        dir: rel.into(),
        kind: m.kind.clone(),
        status: status_word(m.status),
        version: format!("{} {}", p.tool, p.version),
        command: p.command.join(" "),
        seed: p.seed.map_or("none".into(), |s| s.to_string()),
        started: p.started.clone(),
        finished: p.finished.clone().unwrap_or_else(|| "not finished".into()),
        error: m.error.clone(),
        inputs: p.inputs.clone(),
    }
}
