//! sfn-lab: the built-in default of sfn. A newcomer sees the whole method work on a laptop without
//! downloading a model: two models trained on the CPU from seeded synthetic corpora — A talks and
//! states answers, B (A fine-tuned on worked traces) also reasons — and all four stethoscopes
//! asking where the reasoning lives.
//!
//! - `corpus`: the seeded corpora and held-out tasks; `tokenizer`: the BPE tokenizer trained on
//!   them; `pair`: the recipe and the cached pair (A pretrained from scratch, B fine-tuned);
//! - `study`: delta, merge sweeps, the freeze sweep and destruction sweeps on the pair;
//! - `findings`: the paper's claims, each replicated or not, with the numbers that decide it.
//!
//! [`run`] (`sfn lab`) writes one run directory: the study's run directories, summary.json
//! (every variant's results on reasoning and conversation, the findings) and summary.md.

pub mod corpus;
pub mod error;
pub mod findings;
pub mod pair;
pub mod study;
pub mod tokenizer;

pub use error::{Error, Result};

use findings::{Finding, Verdict};
use pair::{Pair, Recipe};
use serde::{Deserialize, Serialize};
use sfn_run::{Context, Input, Provenance, RunDir};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// `sfn lab`: the pair and the whole study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct LabSpec {
    /// A smaller pair and study (about two minutes on two cores, for tests and CI) instead of the
    /// default (about ten).
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub quick: bool,
    /// Seed of everything: corpora, tokenizer, initialisation, data order, evaluation. Recorded.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0))]
    #[serde(default)]
    pub seed: u64,
}

impl LabSpec {
    pub fn recipe(&self) -> Recipe {
        if self.quick {
            Recipe::quick()
        } else {
            Recipe::full()
        }
    }
}

/// Where trained pairs are kept between runs: `$SFN_CACHE_DIR`, else `$XDG_CACHE_HOME/sfn`, else
/// `~/.cache/sfn`; the lab's pairs go in its `lab/` folder.
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("SFN_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("sfn")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/sfn")))
        .unwrap_or_else(|| PathBuf::from(".sfn-cache"));
    base.join("lab")
}

/// summary.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabSummary {
    pub provenance: Provenance,
    pub quick: bool,
    pub seed: u64,
    pub recipe: Recipe,
    pub pair: Pair,
    /// Seconds: training the pair (0 when cached), the study, everything.
    pub pair_seconds: f64,
    pub study_seconds: f64,
    pub total_seconds: f64,
    /// Every evaluated variant ("A", "B", "merge:o_proj", "freeze:F2", "destroy:zero:o_proj", …).
    pub variants: BTreeMap<String, study::Outcome>,
    pub findings: Vec<Finding>,
}

impl LabSummary {
    pub fn read(dir: &Path) -> Result<LabSummary> {
        Ok(sfn_run::rundir::read_json(&dir.join(SUMMARY_JSON))?)
    }
}

pub const SUMMARY_JSON: &str = "summary.json";
pub const SUMMARY_MD: &str = "summary.md";
/// The link to the pair in the lab's directory.
pub const PAIR_LINK: &str = "pair";

/// Run the lab as `spec` says into `out`, with pairs cached in `cache`.
pub fn run(spec: &LabSpec, out: &Path, cache: &Path, ctx: &Context) -> Result<LabSummary> {
    let t0 = std::time::Instant::now();
    let recipe = spec.recipe();
    let pair = pair::build(&recipe, spec.seed, cache, ctx)?;
    let pair_seconds = t0.elapsed().as_secs_f64();
    ctx.progress.note(&format!(
        "lab: pair {} ({:.0} s){}",
        pair.dir.display(),
        pair_seconds,
        if pair.cached { ", from the cache" } else { "" }
    ));
    let inputs = vec![
        Input::file("traces", &pair.traces)?,
        Input::file("eval_reasoning", &pair.eval_reasoning)?,
        Input::file("eval_conversation", &pair.eval_conversation)?,
    ];
    let spec_json = serde_json::to_value(spec).expect("plain data");
    let provenance = Provenance::new(ctx.command.clone(), spec_json, inputs, Some(spec.seed));
    let run = RunDir::create(out, "lab", provenance)?;
    let (summary, _) = run.finish_with(|run| -> Result<LabSummary> {
        link_pair(&pair, run)?;
        let t1 = std::time::Instant::now();
        let study = study::run(&pair, &recipe, spec.seed, run, ctx)?;
        let mut findings = vec![premise(&study, spec.seed)];
        findings.extend(findings::findings(&study, spec.seed));
        let summary = LabSummary {
            provenance: run.manifest().provenance.clone(),
            quick: spec.quick,
            seed: spec.seed,
            recipe: recipe.clone(),
            pair: pair.clone(),
            pair_seconds,
            study_seconds: t1.elapsed().as_secs_f64(),
            total_seconds: t0.elapsed().as_secs_f64(),
            variants: study.variants,
            findings,
        };
        run.write_json(SUMMARY_JSON, &summary)?;
        run.write(SUMMARY_MD, markdown(&summary).as_bytes())?;
        Ok(summary)
    })?;
    Ok(summary)
}

/// DIR/pair: a link to the cached pair (A, B, the traces and the held-out tasks), so a study file
/// can name them (examples/lab-study.toml) without knowing the cache's layout.
fn link_pair(pair: &Pair, run: &mut RunDir) -> Result<()> {
    let link = run.join(PAIR_LINK);
    match std::fs::symlink_metadata(&link) {
        Ok(m) if m.file_type().is_symlink() => std::fs::remove_file(&link).map_err(|e| sfn_run::Error::io(&link, e))?,
        Ok(_) => {
            return Err(sfn_run::Error::Output {
                path: link,
                msg: "exists and is not the lab's link to its pair".into(),
            }
            .into())
        }
        Err(_) => {}
    }
    #[cfg(unix)]
    std::os::unix::fs::symlink(&pair.dir, &link).map_err(|e| sfn_run::Error::io(&link, e))?;
    run.record(PAIR_LINK)?;
    Ok(())
}

/// The lab's premise: B reasons better than A.
fn premise(study: &study::Study, seed: u64) -> Finding {
    let get = |n: &str| study.variants.get(n).map(|o| o.reasoning.dir.clone());
    match (get("B"), get("A")) {
        (Some(b), Some(a)) => match findings::paired_difference(&b, &a, seed) {
            Some((d, [lo, hi])) => Finding {
                claim: "the pair: B, fine-tuned on worked traces, reasons better than A".into(),
                verdict: if lo > 0.0 { Verdict::Replicated } else { Verdict::NotReplicated },
                evidence: format!(
                    "held-out reasoning accuracy, B − A: {:+.0} points, 95% interval [{:+.0}, {:+.0}] (paired bootstrap)",
                    100.0 * d,
                    100.0 * lo,
                    100.0 * hi
                ),
            },
            None => Finding {
                claim: "the pair: B reasons better than A".into(),
                verdict: Verdict::Inconclusive,
                evidence: "no graded samples".into(),
            },
        },
        _ => Finding { claim: "the pair: B reasons better than A".into(), verdict: Verdict::Inconclusive, evidence: "A or B was not evaluated".into() },
    }
}

/// summary.md: the findings, then every variant's numbers, then the figures.
pub fn markdown(s: &LabSummary) -> String {
    let mut md = format!(
        "# sfn lab{} (seed {})\n\nA: a Qwen2 of {} layers × {} hidden, pretrained from scratch on conversations, arithmetic facts and word problems answered without working; B: A fine-tuned on worked traces (and conversations). Training {:.0} s{}, study {:.0} s.\n\n## Findings\n\n",
        if s.quick { " --quick" } else { "" },
        s.seed,
        s.recipe.layers,
        s.recipe.hidden,
        s.pair_seconds,
        if s.pair.cached { " (cached pair)" } else { "" },
        s.study_seconds
    );
    for f in &s.findings {
        let _ = writeln!(md, "- **{}** — {}. {}", f.verdict.word(), f.claim, f.evidence);
    }
    md.push_str(
        "\n## Every variant\n\nHeld-out reasoning: accuracy with its bootstrap 95% interval, mean tokens, levels I/II/III/IV; conversation prompts: levels I/II/III/IV.\n\n| variant | reasoning accuracy | mean tokens | reasoning levels | conversation levels |\n|---|---|---:|---|---|\n",
    );
    let pct = |x: f64| format!("{:.0}%", 100.0 * x);
    for (name, o) in &s.variants {
        let r = &o.reasoning;
        let accuracy = match (r.accuracy, r.ci95) {
            (Some(a), Some([lo, hi])) => format!("{} [{}, {}]", pct(a), pct(lo), pct(hi)),
            _ => "n/a".into(),
        };
        let levels = |l: &[usize; 4]| l.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" / ");
        let _ = writeln!(
            md,
            "| {name} | {accuracy} | {} | {} | {} |",
            r.mean_tokens.map_or("n/a".into(), |t| format!("{t:.0}")),
            levels(&r.levels),
            levels(&o.conversation.levels)
        );
    }
    md.push_str("\n## Figures\n\n");
    for (title, path) in [
        ("Relative change per module and layer", "delta/delta_heatmap_rel.png"),
        ("Relative-change histograms", "delta/delta_histograms.png"),
        ("Merge sweep: output levels on reasoning", "merge/reasoning/sweep_levels.png"),
        ("Destruction sweep: output levels on conversation", "destroy/conversation/sweep_levels.png"),
        ("Freeze sweep: training loss", "freeze/freeze_loss.png"),
    ] {
        let _ = writeln!(md, "![{title}]({path})\n");
    }
    md
}
