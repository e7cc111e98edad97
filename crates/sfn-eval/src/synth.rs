//! Built-in, seeded task generators, so an evaluation needs no downloaded data set:
//! - multi-step arithmetic word problems with a verified integer answer; `depth` is the number of
//!   steps after the starting amount, `size` the largest operand. Every intermediate amount stays a
//!   non-negative integer (subtractions never go below zero, divisions are exact), so the answer is
//!   unambiguous and the chain of steps is the reasoning a model has to do. Each problem comes with
//!   its worked solution (one sentence and one equation per step, ending in \boxed{answer}): the
//!   reasoning traces a model is fine-tuned on.
//! - open conversation prompts (letters, advice, explanations) from templates x topics, and
//!   conversations: the same prompts with a fluent, on-topic reply composed from phrase banks (the
//!   lab's "base language" corpus).
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
    /// Which operations a step may use.
    #[serde(default)]
    pub ops: Ops,
}

/// The operations of arithmetic problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Ops {
    /// Adding, giving away, buying bags, doubling or tripling, sharing into boxes, selling packs.
    #[default]
    All,
    /// Only adding ("finds k more") and subtracting ("gives k to a friend"): what a small model
    /// can learn to work out step by step in minutes.
    AddSub,
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

impl Worked {
    /// The answer stated without the steps ("Mia has 14 apples now. The answer is \boxed{14}."):
    /// the last sentences of the worked solution.
    pub fn stated(&self) -> &str {
        let name = self.completion.split(' ').next().unwrap_or("");
        let at = self.completion.rfind(&format!("{name} has ")).unwrap_or(0);
        &self.completion[at..]
    }
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
            let (prompt, answer, completion) = arithmetic_problem(&mut rng, spec.depth, spec.size, spec.ops);
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
fn arithmetic_problem(rng: &mut SplitMix64, depth: usize, size: u64, ops: Ops) -> (String, u64, String) {
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
            let op = match ops {
                Ops::All => rng.below(6),
                Ops::AddSub => rng.below(2),
            };
            match op {
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

/// One conversation prompt's choices: its template (index into `TEMPLATES`) and subjects.
struct ConversationDraw {
    template: usize,
    topic: &'static str,
    activity: &'static str,
    phenomenon: usize,
}

impl ConversationDraw {
    fn new(rng: &mut SplitMix64) -> ConversationDraw {
        let template = rng.below(TEMPLATES.len() as u64) as usize;
        // All three are drawn for every prompt so the stream does not depend on the template.
        let (&topic, &activity) = (rng.pick(&TOPICS), rng.pick(&ACTIVITIES));
        let phenomenon = rng.below(PHENOMENA.len() as u64) as usize;
        ConversationDraw { template, topic, activity, phenomenon }
    }

    fn fill(&self, text: &str) -> String {
        text.replace("{t}", self.topic)
            .replace("{T}", &capitalise(self.topic))
            .replace("{a}", self.activity)
            .replace("{p}", PHENOMENA[self.phenomenon])
    }
}

/// Generate `spec.count` open conversation prompts. Ids are `conv-{seed}-{i}`; no answers.
pub fn conversation_tasks(spec: &ConversationSpec) -> Vec<Task> {
    let mut rng = SplitMix64::new(spec.seed);
    (0..spec.count)
        .map(|i| {
            let d = ConversationDraw::new(&mut rng);
            let prompt = d.fill(TEMPLATES[d.template]);
            Task { id: format!("conv-{}-{i:04}", spec.seed), prompt, answer: None, kind: TaskKind::Conversation }
        })
        .collect()
}

/// The prompts of `conversation_tasks` (the same ones, for the same spec), each with a reply that
/// answers it in plain, on-topic language: what a model that "talks" says.
pub fn conversation_dialogues(spec: &ConversationSpec) -> Vec<(Task, String)> {
    let mut rng = SplitMix64::new(spec.seed);
    // Replies draw from their own stream, so the prompts stay those of `conversation_tasks`.
    let mut words = SplitMix64::with_stream(spec.seed, 1);
    (0..spec.count)
        .map(|i| {
            let d = ConversationDraw::new(&mut rng);
            let task = Task {
                id: format!("conv-{}-{i:04}", spec.seed),
                prompt: d.fill(TEMPLATES[d.template]),
                answer: None,
                kind: TaskKind::Conversation,
            };
            (task, reply(&d, &mut words))
        })
        .collect()
}

/// Sentences about a topic, tips for an activity, and the explanation of each phenomenon.
const ABOUT: [&str; 8] = [
    "{T} can be calm and beautiful at the same time.",
    "Many people love {t} because it makes them feel at home.",
    "I often think about {t} when I walk home in the evening.",
    "There is always something new to notice about {t}.",
    "{T} reminds me of the summer when I was a child.",
    "Friends and family like to share stories about {t}.",
    "It is easy to spend a whole afternoon with {t}.",
    "The best thing about {t} is how quiet it makes the mind.",
];
const TIPS: [&str; 8] = [
    "make a simple plan before you start",
    "start early and take your time",
    "ask a friend for help when you need it",
    "take short breaks so you stay fresh",
    "write down what you learn each day",
    "be kind to yourself when things go wrong",
    "practice a little every day",
    "get enough sleep the night before",
];
const EXPLAIN: [&str; 6] = [
    "sunlight is made of many colours, and the air scatters the blue light the most",
    "the days get shorter, the trees stop making green chlorophyll, and the other colours show",
    "the earth is tilted, so each half of it gets more sunlight for part of the year",
    "ice is lighter than the same amount of water, because its molecules are spread out in a pattern",
    "we see different parts of the moon lit by the sun as it goes around the earth",
    "yeast in the dough makes small bubbles of gas, and the heat makes them grow",
];
const REPLIES: [&str; 8] = [
    "Dear friend, I want to tell you about {t}. {S} {S} I hope we can enjoy {t} together soon. With love.",
    "Here are three tips for {a}. First, {tip}. Second, {tip}. Third, {tip}. Good luck with {a}!",
    "That is a good question. {P} because {why}. So now you know why {p}.",
    "A perfect weekend with {t} would start on Saturday morning. {S} {S} On Sunday evening I would feel happy and rested.",
    "It is normal to feel nervous about {a}. To help, {tip}, and {tip}. You can do it, one step at a time.",
    "{T} in the morning light. {S} {S} And {t} stays in my heart.",
    "When {a}, keep a few things in mind. First, {tip}. Then, {tip}. Take your time and stay calm.",
    "Here is an interesting fact about {t}. {S} It matters because {S}",
];

/// A reply to the prompt `d` made: its template's reply with sentences and tips drawn (no
/// sentence twice).
fn reply(d: &ConversationDraw, rng: &mut SplitMix64) -> String {
    let mut about: Vec<&str> = ABOUT.to_vec();
    let mut tips: Vec<&str> = TIPS.to_vec();
    rng.shuffle(&mut about);
    rng.shuffle(&mut tips);
    let mut text = REPLIES[d.template].to_string();
    while let Some(at) = text.find("{S}") {
        let s = about.pop().expect("fewer {S} than sentences");
        // A sentence after "because" continues it: no capital letter.
        let s = if text[..at].ends_with("because ") { lowercase_first(s) } else { s.to_string() };
        text.replace_range(at..at + 3, &s);
    }
    while let Some(at) = text.find("{tip}") {
        text.replace_range(at..at + 5, tips.pop().expect("fewer {tip} than tips"));
    }
    let why = EXPLAIN[d.phenomenon];
    d.fill(&text.replace("{P}", &capitalise(PHENOMENA[d.phenomenon])).replace("{why}", why))
}

fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_lowercase().collect::<String>() + c.as_str()).unwrap_or_default()
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
            let tasks = arithmetic_tasks(&ArithmeticSpec { count: 200, depth, size, seed: 11, ops: Ops::All }).unwrap();
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
        let spec = ArithmeticSpec { count: 300, depth: 4, size: 20, seed: 3, ops: Ops::All };
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
        let spec = ArithmeticSpec { count: 20, depth: 4, size: 30, seed: 5, ops: Ops::All };
        assert_eq!(arithmetic_tasks(&spec).unwrap(), arithmetic_tasks(&spec).unwrap());
        let other = arithmetic_tasks(&ArithmeticSpec { seed: 6, ..spec }).unwrap();
        assert_ne!(
            arithmetic_tasks(&ArithmeticSpec { count: 20, depth: 4, size: 30, seed: 5, ops: Ops::All }).unwrap(),
            other
        );
        let c = ConversationSpec { count: 30, seed: 2 };
        assert_eq!(conversation_tasks(&c), conversation_tasks(&c));
        assert!(conversation_tasks(&c).iter().all(|t| t.answer.is_none() && !t.prompt.contains('{')));
        let d = conversation_dialogues(&c);
        assert_eq!(d.iter().map(|(t, _)| t.clone()).collect::<Vec<_>>(), conversation_tasks(&c));
        assert_eq!(d, conversation_dialogues(&c));
    }

    #[test]
    fn replies_answer_their_prompt_in_plain_language() {
        let dialogues = conversation_dialogues(&ConversationSpec { count: 200, seed: 4 });
        let replies: std::collections::HashSet<&str> = dialogues.iter().map(|(_, r)| r.as_str()).collect();
        assert!(replies.len() > 150, "replies should vary: {} distinct of 200", replies.len());
        for (task, reply) in &dialogues {
            assert!(!reply.contains('{') && reply.ends_with(['.', '!']), "{reply}");
            // The reply names what the prompt is about.
            let subject = [TOPICS.as_slice(), ACTIVITIES.as_slice(), PHENOMENA.as_slice()]
                .concat()
                .into_iter()
                .find(|s| task.prompt.contains(s))
                .unwrap();
            assert!(reply.to_lowercase().contains(&subject.to_lowercase()), "{}\n{reply}", task.prompt);
        }
        let w = arithmetic_worked(&ArithmeticSpec { count: 3, depth: 2, size: 20, seed: 1, ops: Ops::AddSub }).unwrap();
        for w in &w {
            let stated = w.stated();
            assert!(stated.ends_with(&format!("\\boxed{{{}}}.", w.task.answer.as_ref().unwrap())), "{stated}");
            assert!(!stated.contains(" = "), "{stated}");
        }
    }

    #[test]
    fn bad_specs_are_errors_not_panics() {
        assert!(arithmetic_tasks(&ArithmeticSpec { count: 1, depth: 0, size: 10, seed: 0, ops: Ops::All }).is_err());
        assert!(arithmetic_tasks(&ArithmeticSpec { count: 1, depth: 2, size: 1, seed: 0, ops: Ops::All }).is_err());
    }
}
