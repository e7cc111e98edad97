//! Calibration check of the I-IV judge: run it on the hand-labelled fixture
//! (tests/fixtures/judge_labelled.jsonl: AIME 2024 and arithmetic prompts with degenerate loops,
//! token soup, off-topic chat, wrong answers and correct reasoning), print the agreement, the
//! confusion matrix and every disagreement with its signals, and require at least 90%.

use sfn_eval::judge::{signals, JudgeConfig, Level};
use sfn_eval::TaskKind;
use std::collections::BTreeMap;

#[derive(serde::Deserialize)]
struct Labelled {
    id: String,
    prompt: String,
    answer: String,
    output: String,
    level: Level,
    source: String,
    note: String,
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
    let cfg = JudgeConfig::default();
    let mut confusion: BTreeMap<(Level, Level), usize> = BTreeMap::new();
    let mut agree = 0;
    // (label, signal) -> (min, max): printed so threshold comments can be checked against data.
    let mut ranges: BTreeMap<(Level, &str), (f64, f64)> = BTreeMap::new();
    for r in &records {
        assert!(!r.source.is_empty(), "{}: every record says where it came from", r.id);
        let s = signals(&r.prompt, &r.output, None);
        let grade = sfn_eval::grade(&r.output, Some(&r.answer));
        let v = cfg.judge(&s, &grade, TaskKind::Reasoning);
        *confusion.entry((r.level, v.level)).or_default() += 1;
        let measured = [
            ("repetition", Some(s.repetition)),
            ("non_word_share", Some(s.non_word_share)),
            ("function_word_share", s.function_word_share),
            ("relatedness", (s.words >= cfg.min_words_for_relatedness).then_some(s.relatedness)),
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
    for level in Level::ALL {
        assert!(records.iter().any(|r| r.level == level), "the fixture has no level {} example", level.name());
    }
    assert!(rate >= 0.9, "judge agreement {:.1}% is below 90%", 100.0 * rate);
}
