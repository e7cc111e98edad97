//! Calibration check of the I-IV judge: run it on the hand-labelled fixture
//! (tests/fixtures/judge_labelled.jsonl: handwritten AIME 2024 and arithmetic examples with
//! degenerate loops, token soup, off-topic chat, wrong answers and correct reasoning, and real
//! outputs of SmolLM2-135M-Instruct intact and destroyed, with their loss under the intact model),
//! print the agreement overall and per source, the confusion matrix and every disagreement with
//! its signals, and require at least 90% overall and on the real outputs alone.

use sfn_eval::judge::{signals, JudgeConfig, Level, DEFAULT_MAX_REF_LOSS};
use sfn_eval::TaskKind;
use std::collections::BTreeMap;

#[derive(serde::Deserialize)]
struct Labelled {
    id: String,
    prompt: String,
    answer: Option<String>,
    #[serde(default = "reasoning")]
    kind: TaskKind,
    output: String,
    /// "length" when the output was cut by the token limit (real outputs only).
    #[serde(default)]
    finish: Option<String>,
    /// Mean token loss under the reference model (real outputs only).
    #[serde(default)]
    ref_loss: Option<f64>,
    level: Level,
    source: String,
    note: String,
}

fn reasoning() -> TaskKind {
    TaskKind::Reasoning
}

fn fixture() -> Vec<Labelled> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/judge_labelled.jsonl");
    let text = std::fs::read_to_string(path).expect("fixture");
    text.lines()
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("fixture line {}: {e}", i + 1)))
        .collect()
}

#[test]
fn judge_agreement_on_labelled_fixture_is_at_least_90_percent() {
    let records = fixture();
    assert!(records.len() >= 60, "the fixture needs at least 60 examples, has {}", records.len());
    // As the CLI judges with a reference model: records with a reference loss are judged by it.
    let cfg = JudgeConfig { max_ref_loss: Some(DEFAULT_MAX_REF_LOSS), ..Default::default() };
    let (mut real, mut real_agree, mut real_agree_alone) = (0, 0, 0);
    let mut confusion: BTreeMap<(Level, Level), usize> = BTreeMap::new();
    let mut agree = 0;
    // (label, signal) -> (min, max): printed so threshold comments can be checked against data.
    let mut ranges: BTreeMap<(Level, &str), (f64, f64)> = BTreeMap::new();
    for r in &records {
        assert!(!r.source.is_empty(), "{}: every record says where it came from", r.id);
        let s = signals(&r.prompt, &r.output, r.ref_loss);
        let grade = match r.kind {
            TaskKind::Reasoning => {
                sfn_eval::grade_sample(&r.output, r.answer.as_deref(), r.finish.as_deref() == Some("length"))
            }
            TaskKind::Conversation => sfn_eval::Grade { extracted: None, correct: None },
        };
        let v = cfg.judge(&s, &grade, r.kind);
        let is_real = r.ref_loss.is_some();
        real += is_real as usize;
        real_agree += (is_real && v.level == r.level) as usize;
        if is_real {
            // What the judge says without a reference model, for the record.
            let alone = cfg.judge(&signals(&r.prompt, &r.output, None), &grade, r.kind);
            real_agree_alone += (alone.level == r.level) as usize;
        }
        *confusion.entry((r.level, v.level)).or_default() += 1;
        let measured = [
            ("repetition", Some(s.repetition)),
            ("non_word_share", Some(s.non_word_share)),
            ("function_word_share", s.function_word_share),
            ("relatedness", (s.words >= cfg.min_words_for_relatedness).then_some(s.relatedness)),
            ("ref_loss", s.ref_loss),
        ];
        for (name, value) in measured {
            if let Some(x) = value {
                let e = ranges.entry((r.level, name)).or_insert((f64::INFINITY, f64::NEG_INFINITY));
                *e = (e.0.min(x), e.1.max(x));
            }
        }
        if v.level == r.level {
            agree += 1;
        } else {
            println!(
                "DISAGREE {} label {} judge {} ({}) [{}]\n    signals: {}",
                r.id,
                r.level.name(),
                v.level.name(),
                v.reason,
                r.note,
                serde_json::to_string(&s).unwrap()
            );
        }
    }
    let rate = agree as f64 / records.len() as f64;
    println!("\nconfusion (rows: label, columns: judge)\n        I   II  III   IV");
    for label in Level::ALL {
        let row: Vec<String> =
            Level::ALL.iter().map(|j| format!("{:>4}", confusion.get(&(label, *j)).unwrap_or(&0))).collect();
        println!("{:<5} {}", label.name(), row.join(" "));
    }
    println!("\nsignal ranges per label (min..max)");
    for ((level, name), (lo, hi)) in &ranges {
        println!("{:<5} {name:<20} {lo:.2}..{hi:.2}", level.name());
    }
    println!("judge agreement: {agree}/{} = {:.1}%", records.len(), 100.0 * rate);
    let real_rate = real_agree as f64 / real.max(1) as f64;
    println!("  on real SmolLM2 outputs: {real_agree}/{real} = {:.1}%", 100.0 * real_rate);
    println!("  on real SmolLM2 outputs without the reference loss: {real_agree_alone}/{real}");
    println!("  on handwritten examples: {}/{}", agree - real_agree, records.len() - real);
    assert!(real >= 40, "the fixture needs at least 40 real model outputs, has {real}");
    assert!(real_rate >= 0.9, "judge agreement on real outputs {:.1}% is below 90%", 100.0 * real_rate);
    for level in Level::ALL {
        assert!(records.iter().any(|r| r.level == level), "the fixture has no level {} example", level.name());
    }
    assert!(rate >= 0.9, "judge agreement {:.1}% is below 90%", 100.0 * rate);
}
