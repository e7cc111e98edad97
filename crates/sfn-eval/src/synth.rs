//! Built-in, seeded task generators, so an evaluation needs no downloaded data set:
//! - multi-step arithmetic word problems with a verified integer answer; `depth` is the number of
//!   steps after the starting amount, `size` the largest operand. Every intermediate amount stays a
//!   non-negative integer (subtractions never go below zero, divisions are exact), so the answer is
//!   unambiguous and the chain of steps is the reasoning a model has to do. Each problem comes with
//!   its worked solution (one sentence and one equation per step, ending in \boxed{answer}): the
//!   reasoning traces a model is fine-tuned on.
//! - open conversation prompts (letters, advice, explanations) from templates x topics.
//!
//! The same (count, depth, size, seed) always gives the same tasks: the generator draws only from
//! [`SplitMix64`], whose stream is fixed.

use crate::error::{EvalError, Result};
use crate::task::{Task, TaskKind};
use sfn_run::SplitMix64;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ArithmeticSpec {
    pub count: usize,
    /// Steps after the starting amount (1..=20).
    pub depth: usize,
    /// Largest operand (2..=1_000_000).
    pub size: u64,
    pub seed: u64,
}

const NAMES: [(&str, &str); 10] = [
    ("Mia", "she"),
    ("Leo", "he"),
    ("Ava", "she"),
    ("Noah", "he"),
    ("Zara", "she"),
    ("Omar", "he"),
    ("Lena", "she"),
    ("Ravi", "he"),
    ("Ines", "she"),
    ("Tom", "he"),
];
const ITEMS: [&str; 10] =
    ["apples", "marbles", "stickers", "books", "coins", "pencils", "cookies", "stamps", "shells", "cards"];

/// A problem and its worked solution.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Worked {
    #[serde(flatten)]
    pub task: Task,
    /// The steps, one sentence each with its equation, then the answer in \boxed{}.
    pub completion: String,
}

/// Generate `spec.count` arithmetic word problems. Ids are `arith-{seed}-{i}`.
pub fn arithmetic_tasks(spec: &ArithmeticSpec) -> Result<Vec<Task>> {
    Ok(arithmetic_worked(spec)?.into_iter().map(|w| w.task).collect())
}

/// The problems of `arithmetic_tasks` with their worked solutions (the same problems: the
/// solutions draw nothing from the generator).
pub fn arithmetic_worked(spec: &ArithmeticSpec) -> Result<Vec<Worked>> {
    if !(1..=20).contains(&spec.depth) {
        return Err(EvalError::InvalidSettings(format!("arithmetic depth {} must be 1..=20", spec.depth)));
    }
    if !(2..=1_000_000).contains(&spec.size) {
        return Err(EvalError::InvalidSettings(format!("arithmetic size {} must be 2..=1000000", spec.size)));
    }
    let mut rng = SplitMix64::new(spec.seed);
    Ok((0..spec.count)
        .map(|i| {
            let (prompt, answer, completion) = arithmetic_problem(&mut rng, spec.depth, spec.size);
            let task = Task {
                id: format!("arith-{}-{i:04}", spec.seed),
                prompt,
                answer: Some(answer.to_string()),
                kind: TaskKind::Reasoning,
            };
            Worked { task, completion }
        })
        .collect())
}

/// One problem: returns (text, answer, worked solution). Amounts are kept below `cap` so that
/// multiplications cannot overflow and numbers stay readable.
fn arithmetic_problem(rng: &mut SplitMix64, depth: usize, size: u64) -> (String, u64, String) {
    let &(name, he) = rng.pick(&NAMES);
    let item = *rng.pick(&ITEMS);
    let cap = size.saturating_mul(size).max(100);
    let small = size.clamp(2, 12); // group counts and factors read better small
    let mut v = rng.range(2, size);
    let mut sentences = vec![format!("{name} has {v} {item}.")];
    let mut steps = vec![format!("{name} starts with {v} {item}.")];
    let cap_he = capitalise(he);
    for _ in 0..depth {
        let before = v;
        // Try operations in a random order until one keeps the amount valid (>= 0, exact, < cap).
        loop {
            match rng.below(6) {
                0 => {
                    let k = rng.range(1, size);
                    if v + k > cap {
                        continue;
                    }
                    v += k;
                    sentences.push(format!("{cap_he} finds {k} more {item}."));
                    steps.push(format!("{cap_he} finds {k} more, so {before} + {k} = {v}."));
                }
                1 if v >= 1 => {
                    let k = rng.range(1, v.min(size));
                    v -= k;
                    sentences.push(format!("{cap_he} gives {k} {item} to a friend."));
                    steps.push(format!("{cap_he} gives {k} away, so {before} - {k} = {v}."));
                }
                2 => {
                    let (a, b) = (rng.range(2, small), rng.range(2, size));
                    if v + a * b > cap {
                        continue;
                    }
                    v += a * b;
                    sentences.push(format!("{cap_he} buys {a} bags with {b} {item} in each bag."));
                    steps.push(format!("{a} bags of {b} are {a} * {b} = {}, so {before} + {} = {v}.", a * b, a * b));
                }
                3 => {
                    let f = rng.range(2, 3);
                    if v * f > cap {
                        continue;
                    }
                    v *= f;
                    let word = if f == 2 { "doubles" } else { "triples" };
                    sentences.push(format!("A neighbour's gift {word} the number of {item} {he} has."));
                    steps.push(format!("The gift {word} them, so {before} * {f} = {v}."));
                }
                4 if v >= 2 => {
                    let divisors: Vec<u64> = (2..=small.min(v)).filter(|d| v.is_multiple_of(*d)).collect();
                    if divisors.is_empty() {
                        continue;
                    }
                    let d = *rng.pick(&divisors);
                    v /= d;
                    sentences
                        .push(format!("{cap_he} shares the {item} equally among {d} boxes and keeps only one box."));
                    steps.push(format!("One box of {d} keeps {before} / {d} = {v}."));
                }
                5 if v >= 1 => {
                    let (a, b) = (rng.range(2, small), rng.range(1, size));
                    if a * b > v {
                        continue;
                    }
                    v -= a * b;
                    sentences.push(format!("{cap_he} sells {a} packs of {b} {item} each."));
                    steps.push(format!("{a} packs of {b} are {a} * {b} = {}, so {before} - {} = {v}.", a * b, a * b));
                }
                _ => continue,
            }
            break;
        }
    }
    sentences.push(format!("How many {item} does {name} have now?"));
    steps.push(format!("{name} has {v} {item} now. The answer is \\boxed{{{v}}}."));
    (sentences.join(" "), v, steps.join(" "))
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConversationSpec {
    pub count: usize,
    pub seed: u64,
}

const TEMPLATES: [&str; 8] = [
    "Write a short letter to a friend about {t}.",
    "What are three practical tips for {a}?",
    "Explain to a ten-year-old why {p}.",
    "Describe a perfect weekend that involves {t}.",
    "I feel nervous about {a}. Can you give me some advice?",
    "Write a short poem about {t}.",
    "What should I keep in mind when {a}?",
    "Tell me an interesting fact about {t} and why it matters.",
];
const TOPICS: [&str; 10] = [
    "autumn in the mountains",
    "a rainy day in the city",
    "learning to play the guitar",
    "an old bicycle",
    "the night sky",
    "a small bakery",
    "gardening on a balcony",
    "a long train journey",
    "the ocean",
    "a cat that visits every morning",
];
const ACTIVITIES: [&str; 8] = [
    "starting a new job",
    "cooking for a large family dinner",
    "running a first marathon",
    "moving to a new country",
    "giving a speech at a wedding",
    "learning a new language",
    "keeping a small garden alive",
    "travelling alone for the first time",
];
const PHENOMENA: [&str; 6] = [
    "the sky is blue",
    "leaves change colour in autumn",
    "we have seasons",
    "ice floats on water",
    "the moon has phases",
    "bread rises in the oven",
];

/// Generate `spec.count` open conversation prompts. Ids are `conv-{seed}-{i}`; no answers.
pub fn conversation_tasks(spec: &ConversationSpec) -> Vec<Task> {
    let mut rng = SplitMix64::new(spec.seed);
    (0..spec.count)
        .map(|i| {
            let template = *rng.pick(&TEMPLATES);
            // All three are drawn for every prompt so the stream does not depend on the template.
            let (&topic, &activity, &phenomenon) = (rng.pick(&TOPICS), rng.pick(&ACTIVITIES), rng.pick(&PHENOMENA));
            let prompt = template.replace("{t}", topic).replace("{a}", activity).replace("{p}", phenomenon);
            Task { id: format!("conv-{}-{i:04}", spec.seed), prompt, answer: None, kind: TaskKind::Conversation }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    /// Re-derive the answer from the text alone: the generator's sentences are the only input.
    fn solve(text: &str) -> u64 {
        let num = |s: &str| s.parse::<u64>().unwrap();
        let start = Regex::new(r"^\w+ has (\d+) ").unwrap();
        let mut v = num(&start.captures(text).unwrap()[1]);
        let step = Regex::new(r"finds (\d+) more|gives (\d+) |buys (\d+) bags with (\d+)|(doubles|triples)|among (\d+) boxes|sells (\d+) packs of (\d+)").unwrap();
        for c in step.captures_iter(text) {
            if let Some(k) = c.get(1) {
                v += num(k.as_str());
            } else if let Some(k) = c.get(2) {
                v -= num(k.as_str());
            } else if let (Some(a), Some(b)) = (c.get(3), c.get(4)) {
                v += num(a.as_str()) * num(b.as_str());
            } else if let Some(w) = c.get(5) {
                v *= if w.as_str() == "doubles" { 2 } else { 3 };
            } else if let Some(d) = c.get(6) {
                assert_eq!(v % num(d.as_str()), 0, "inexact division in {text}");
                v /= num(d.as_str());
            } else if let (Some(a), Some(b)) = (c.get(7), c.get(8)) {
                v -= num(a.as_str()) * num(b.as_str());
            }
        }
        v
    }

    #[test]
    fn arithmetic_answers_are_verified_by_an_independent_solver() {
        for (depth, size) in [(1, 10), (3, 20), (6, 50), (12, 9)] {
            let tasks = arithmetic_tasks(&ArithmeticSpec { count: 200, depth, size, seed: 11 }).unwrap();
            for t in &tasks {
                assert_eq!(solve(&t.prompt).to_string(), *t.answer.as_ref().unwrap(), "{}", t.prompt);
                // one sentence per step, plus the start and the question
                assert_eq!(t.prompt.matches(". ").count() + 1, depth + 2, "{}", t.prompt);
            }
        }
    }

    /// Evaluate a worked solution's equations in order: each must hold; the last equation of each
    /// sentence must start from the previous amount (the ones before it compute a product); the
    /// boxed answer must be the last amount.
    fn check_worked(solution: &str, answer: u64) {
        let eq = Regex::new(r"(\d+) ([-+*/]) (\d+) = (\d+)").unwrap();
        let start = Regex::new(r"starts with (\d+) ").unwrap();
        let mut v: u64 = start.captures(solution).unwrap()[1].parse().unwrap();
        for sentence in solution.split(". ") {
            let mut last = None;
            for c in eq.captures_iter(sentence) {
                let (x, y, z): (u64, u64, u64) = (c[1].parse().unwrap(), c[3].parse().unwrap(), c[4].parse().unwrap());
                let got = match &c[2] {
                    "+" => x + y,
                    "-" => x - y,
                    "*" => x * y,
                    _ => x / y,
                };
                assert_eq!(got, z, "{solution}");
                last = Some((x, z));
            }
            if let Some((x, z)) = last {
                assert_eq!(x, v, "a step must start from the amount so far: {sentence}");
                v = z;
            }
        }
        assert_eq!(v, answer, "{solution}");
        assert!(solution.ends_with(&format!("\\boxed{{{answer}}}.")), "{solution}");
    }

    #[test]
    fn worked_solutions_compute_the_answer_step_by_step() {
        let spec = ArithmeticSpec { count: 300, depth: 4, size: 20, seed: 3 };
        let worked = arithmetic_worked(&spec).unwrap();
        assert_eq!(worked.iter().map(|w| w.task.clone()).collect::<Vec<_>>(), arithmetic_tasks(&spec).unwrap());
        for w in &worked {
            check_worked(&w.completion, w.task.answer.as_ref().unwrap().parse().unwrap());
            assert!(w.completion.matches(" = ").count() >= 4, "{}", w.completion);
        }
        // A line of a training file is a task (it loads as one) with its completion.
        let line = serde_json::to_value(&worked[0]).unwrap();
        assert_eq!(line["id"], "arith-3-0000");
        assert!(line["completion"].as_str().unwrap().contains("\\boxed"));
    }

    #[test]
    fn generators_are_deterministic_per_seed() {
        let spec = ArithmeticSpec { count: 20, depth: 4, size: 30, seed: 5 };
        assert_eq!(arithmetic_tasks(&spec).unwrap(), arithmetic_tasks(&spec).unwrap());
        let other = arithmetic_tasks(&ArithmeticSpec { seed: 6, ..spec }).unwrap();
        assert_ne!(arithmetic_tasks(&ArithmeticSpec { count: 20, depth: 4, size: 30, seed: 5 }).unwrap(), other);
        let c = ConversationSpec { count: 30, seed: 2 };
        assert_eq!(conversation_tasks(&c), conversation_tasks(&c));
        assert!(conversation_tasks(&c).iter().all(|t| t.answer.is_none() && !t.prompt.contains('{')));
    }

    #[test]
    fn bad_specs_are_errors_not_panics() {
        assert!(arithmetic_tasks(&ArithmeticSpec { count: 1, depth: 0, size: 10, seed: 0 }).is_err());
        assert!(arithmetic_tasks(&ArithmeticSpec { count: 1, depth: 2, size: 1, seed: 0 }).is_err());
    }
}
