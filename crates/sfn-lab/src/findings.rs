//! The findings: for each claim of the paper, whether the lab replicates it, with the numbers that
//! decide it. Differences of accuracy between two variants are judged with a paired bootstrap over
//! the held-out problems (both were evaluated on the same ones): an interval that excludes zero is
//! a difference, one that includes it is none that these problems can show.

use crate::study::{Outcome, Study};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Replicated,
    Partly,
    NotReplicated,
    /// The numbers cannot tell (an interval that includes both answers, a variant missing).
    Inconclusive,
}

impl Verdict {
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Replicated => "replicated",
            Verdict::Partly => "partly replicated",
            Verdict::NotReplicated => "not replicated",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The paper's claim, in a sentence.
    pub claim: String,
    pub verdict: Verdict,
    /// The numbers that decide it.
    pub evidence: String,
}

/// Paired bootstrap of mean(correct in `x`) − mean(correct in `y`) over the tasks both answered:
/// (difference, 95% interval). None when either lacks samples.
pub fn paired_difference(x: &Path, y: &Path, seed: u64) -> Option<(f64, [f64; 2])> {
    let correct = |dir: &Path| -> Option<BTreeMap<String, f64>> {
        let mut by_id: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        for r in sfn_eval::results::read_samples(dir).ok()? {
            let e = by_id.entry(r.id).or_default();
            e.0 += r.correct? as u8 as f64;
            e.1 += 1.0;
        }
        Some(by_id.into_iter().map(|(id, (c, n))| (id, c / n)).collect())
    };
    let (cx, cy) = (correct(x)?, correct(y)?);
    let diffs: Vec<f64> = cx.iter().filter_map(|(id, a)| cy.get(id).map(|b| a - b)).collect();
    let mean = diffs.iter().sum::<f64>() / diffs.len().max(1) as f64;
    Some((mean, sfn_eval::metrics::bootstrap_mean_ci95(&diffs, 2000, seed)?))
}

fn pct(x: Option<f64>) -> String {
    x.map_or("n/a".into(), |v| format!("{:.0}%", 100.0 * v))
}

fn acc(o: &Outcome) -> String {
    match (o.reasoning.accuracy, o.reasoning.ci95) {
        (Some(a), Some([lo, hi])) => format!("{} [{}, {}]", pct(Some(a)), pct(Some(lo)), pct(Some(hi))),
        (a, _) => pct(a),
    }
}

fn diff_text((d, [lo, hi]): (f64, [f64; 2])) -> String {
    format!("{:+.0} points [{:+.0}, {:+.0}]", 100.0 * d, 100.0 * lo, 100.0 * hi)
}

/// Every finding of the study.
pub fn findings(study: &Study, seed: u64) -> Vec<Finding> {
    let v = &study.variants;
    let get = |name: &str| v.get(name);
    let diff = |x: &str, y: &str| -> Option<(f64, [f64; 2])> {
        paired_difference(&get(x)?.reasoning.dir, &get(y)?.reasoning.dir, seed)
    };
    let mut out = vec![];

    // 1. Delta: o_proj changes most, and only its histograms are bimodal.
    let d = &study.delta;
    let first = d.modules.first().map(|m| m.module.clone()).unwrap_or_default();
    let second = d.modules.get(1);
    let median = |m: &sfn_scope::delta::aggregate::ModuleSummary| m.rel_change.map_or(f64::NAN, |s| s.median);
    let bimodal: Vec<String> = d
        .modules
        .iter()
        .filter(|m| m.bimodal_cells > 0)
        .map(|m| format!("{} {}/{}", m.module, m.bimodal_cells, m.cells))
        .collect();
    let only_o = bimodal.len() == 1 && bimodal[0].starts_with("o_proj ");
    let verdict = match (first == "o_proj", only_o) {
        (true, true) => Verdict::Replicated,
        (true, false) | (false, true) => Verdict::Partly,
        (false, false) => Verdict::NotReplicated,
    };
    out.push(Finding {
        claim: "o_proj changes most from A to B, and only o_proj's relative-change histogram is bimodal".into(),
        verdict,
        evidence: format!(
            "largest median relative change: {first} ({:.3}){}; bimodal cells: {}",
            d.modules.first().map_or(f64::NAN, median),
            second.map(|m| format!(", then {} ({:.3})", m.module, median(m))).unwrap_or_default(),
            if bimodal.is_empty() { "none".into() } else { bimodal.join(", ") }
        ),
    });

    // 2-4. Merging modules of B into A.
    let vs_a = |name: &str| match (get(name), diff(name, "A")) {
        (Some(o), Some(d)) => Some((o, d)),
        _ => None,
    };
    let b_vs_a = diff("B", "A");
    out.push(match (vs_a("merge:o_proj"), b_vs_a) {
        (Some((o, d)), Some(bd)) => Finding {
            claim: "taking o_proj from B gives A part of B's reasoning".into(),
            verdict: if d.1[0] > 0.0 {
                Verdict::Replicated
            } else if d.0 > 0.0 {
                Verdict::Inconclusive
            } else {
                Verdict::NotReplicated
            },
            evidence: format!(
                "accuracy A {}, A+o_proj(B) {}, B {}; A+o_proj − A: {}; B − A: {}",
                acc(&v["A"]),
                acc(o),
                acc(&v["B"]),
                diff_text(d),
                diff_text(bd)
            ),
        },
        _ => missing("taking o_proj from B gives A part of B's reasoning"),
    });
    out.push(match vs_a("merge:qkv") {
        Some((o, d)) => Finding {
            claim: "taking q, k, v from B does not".into(),
            verdict: if d.1[0] > 0.0 { Verdict::NotReplicated } else { Verdict::Replicated },
            evidence: format!("accuracy A+qkv(B) {}; A+qkv − A: {}", acc(o), diff_text(d)),
        },
        None => missing("taking q, k, v from B does not"),
    });
    out.push(match vs_a("merge:mlp") {
        Some((o, d)) => {
            let broken = o.reasoning.on_task() < 0.5 || o.conversation.on_task() < 0.5;
            let verdict = if broken || d.1[1] < 0.0 {
                Verdict::Replicated
            } else if d.1[0] > 0.0 {
                Verdict::NotReplicated
            } else {
                Verdict::Partly
            };
            Finding {
                claim: "taking the MLP from B breaks A".into(),
                verdict,
                evidence: format!(
                    "accuracy A+mlp(B) {}; A+mlp − A: {}; on-task outputs (levels III–IV): reasoning {:.0}% (A {:.0}%), conversation {:.0}% (A {:.0}%)",
                    acc(o),
                    diff_text(d),
                    100.0 * o.reasoning.on_task(),
                    100.0 * v["A"].reasoning.on_task(),
                    100.0 * o.conversation.on_task(),
                    100.0 * v["A"].conversation.on_task()
                ),
            }
        }
        None => missing("taking the MLP from B breaks A"),
    });

    // 5. Freeze: F2 close to F4 at a fraction of the parameters.
    let row = |set: &str| study.freeze.iter().find(|r| r.set == set);
    out.push(match (row("F2"), row("F4"), diff("freeze:F2", "freeze:F4"), get("freeze:F2"), get("freeze:F4")) {
        (Some(f2), Some(f4), Some(d), Some(o2), Some(o4)) => {
            let fraction = f2.trainable_params as f64 / f4.trainable_params.max(1) as f64;
            let close = d.1[1] >= 0.0 || d.0 > -0.05;
            Finding {
                claim: "training only o_proj + embed + lm_head (+ norms), F2, gets close to training everything, F4, at a fraction of the parameters".into(),
                verdict: match (close && d.1[1] >= 0.0, fraction < 0.5) {
                    (true, true) => Verdict::Replicated,
                    (true, false) => Verdict::Partly,
                    _ if close => Verdict::Partly,
                    _ => Verdict::NotReplicated,
                },
                evidence: format!(
                    "accuracy F2 {} with {} trainable parameters ({:.0}% of F4's), F4 {}; F2 − F4: {}; F1 {}, F3 {}",
                    acc(o2),
                    f2.trainable_params,
                    100.0 * fraction,
                    acc(o4),
                    diff_text(d),
                    get("freeze:F1").map_or("n/a".into(), acc),
                    get("freeze:F3").map_or("n/a".into(), acc)
                ),
            }
        }
        _ => missing("training only o_proj + embed + lm_head gets close to training everything"),
    });

    // 6. Destruction: MLP or q/k give nonsense, v/o keep language (on conversation prompts).
    let level = |m: &str| get(&format!("destroy:zero:{m}")).map(|o| o.conversation.mode());
    let names = ["I", "II", "III", "IV"];
    let nonsense = ["gate_proj", "up_proj", "down_proj", "q_proj", "k_proj"];
    let language = ["v_proj", "o_proj"];
    let shown: Vec<String> = nonsense
        .iter()
        .chain(&language)
        .filter_map(|m| level(m).map(|(l, share)| format!("{m} {} ({:.0}%)", names[l], 100.0 * share)))
        .collect();
    let hits = nonsense.iter().filter(|m| level(m).is_some_and(|(l, _)| l == 0)).count()
        + language.iter().filter(|m| level(m).is_some_and(|(l, _)| l >= 1)).count();
    let total = nonsense.len() + language.len();
    out.push(Finding {
        claim:
            "zeroing the MLP or q/k gives nonsense (level I), while zeroing v or o keeps language (level II or above)"
                .into(),
        verdict: match hits {
            h if h == total => Verdict::Replicated,
            h if 2 * h > total => Verdict::Partly,
            _ => Verdict::NotReplicated,
        },
        evidence: format!(
            "most frequent level of the outputs on conversation prompts, zeroed over the middle layers: {}",
            shown.join(", ")
        ),
    });
    out
}

fn missing(claim: &str) -> Finding {
    Finding {
        claim: claim.into(),
        verdict: Verdict::Inconclusive,
        evidence: "a variant it needs was not evaluated".into(),
    }
}
