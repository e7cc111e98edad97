//! The lab's data, all generated from the seed (sfn-eval's generators):
//! - the base corpus, what model A learns language from: conversations (prompts of many kinds
//!   with fluent on-topic replies), single sums and differences ("What is 18 + 8?" → "18 + 8 =
//!   26."), and word problems answered without working (the answer stated, as a model that has not
//!   learnt to reason would). A knows its arithmetic facts but not how to chain them;
//! - the reasoning traces B is fine-tuned on: add/subtract word problems worked step by step,
//!   each equation written out, ending in \boxed{};
//! - held-out evaluation tasks of both kinds (other seeds, so none is in the training data by
//!   construction: problems drawn anew, conversation prompts from the same templates).
//!
//! Prompts are built as the lab's evaluation builds them (chat mode, no suffix: the traces alone
//! teach B to work step by step, and short prompts keep steps cheap).

use sfn_eval::synth::{
    arithmetic_tasks, arithmetic_worked, conversation_dialogues, conversation_tasks, ArithmeticSpec, ConversationSpec,
    Ops, Worked,
};
use sfn_eval::{PromptBody, PromptConfig, PromptMode, Task};

/// How much of each.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CorpusSize {
    /// Conversations in the base corpus.
    pub conversations: usize,
    /// Arithmetic questions with stated answers in the base corpus.
    pub stated: usize,
    /// Single sums and differences in the base corpus.
    pub facts: usize,
    /// Worked problems B is fine-tuned on.
    pub traces: usize,
    /// Conversations mixed into B's fine-tuning data, so that B keeps talking (without them a
    /// small model trained on traces alone answers every prompt with a trace).
    pub replay: usize,
    /// Held-out reasoning problems and conversation prompts.
    pub eval_reasoning: usize,
    pub eval_conversation: usize,
    /// Steps per problem and largest operand.
    pub depth: usize,
    pub size: u64,
}

/// `count` single-step questions over the amounts word problems reach (up to `max`, operands up
/// to `operand`): "What is 18 + 8?" → "18 + 8 = 26.".
fn facts(count: usize, max: u64, operand: u64, seed: u64) -> Vec<(String, String)> {
    let mut rng = sfn_run::SplitMix64::new(seed);
    (0..count)
        .map(|_| {
            let (x, k) = (rng.range(0, max), rng.range(1, operand));
            let (op, y) = if rng.below(2) == 0 || k > x { ("+", x + k) } else { ("-", x - k) };
            (format!("What is {x} {op} {k}?"), format!("{x} {op} {k} = {y}."))
        })
        .collect()
}

/// How the lab builds prompts, for training data and evaluation alike.
pub fn prompt_config() -> PromptConfig {
    PromptConfig { mode: PromptMode::Chat, suffix: Some(String::new()), ..Default::default() }
}

/// Every text and task of the lab.
pub struct Corpora {
    /// (user, assistant) turns of the base corpus.
    pub base: Vec<(String, String)>,
    pub traces: Vec<Worked>,
    /// Conversations of B's fine-tuning data (task lines with the reply as completion).
    pub replay: Vec<Worked>,
    pub eval_reasoning: Vec<Task>,
    pub eval_conversation: Vec<Task>,
}

impl Corpora {
    pub fn generate(size: &CorpusSize, seed: u64) -> Corpora {
        // Distinct streams per part (seed-derived), so changing one size leaves the others alone.
        let part = |k: u64| seed.wrapping_mul(1000).wrapping_add(k);
        let arith = |count, seed| ArithmeticSpec { count, depth: size.depth, size: size.size, seed, ops: Ops::AddSub };
        let user = |t: &Task| match prompt_config().build(t).body {
            PromptBody::Chat(m) => m.last().map(|m| m.content.clone()).unwrap_or_default(),
            PromptBody::Text(t) => t,
        };
        let mut base: Vec<(String, String)> =
            conversation_dialogues(&ConversationSpec { count: size.conversations, seed: part(1) })
                .into_iter()
                .map(|(t, reply)| (t.prompt, reply))
                .collect();
        let stated = arithmetic_worked(&arith(size.stated, part(2))).expect("valid spec");
        base.extend(stated.iter().map(|w| (user(&w.task), w.stated().to_string())));
        base.extend(facts(size.facts, 3 * size.size, size.size, part(7)));
        // Interleave the two kinds evenly (a fixed order: the trainer shuffles by its own seed).
        base.sort_by_key(|(u, _)| sfn_run::rng::hash_str(u));
        Corpora {
            base,
            traces: arithmetic_worked(&arith(size.traces, part(3))).expect("valid spec"),
            replay: conversation_dialogues(&ConversationSpec { count: size.replay, seed: part(6) })
                .into_iter()
                .map(|(task, completion)| Worked { task, completion })
                .collect(),
            eval_reasoning: arithmetic_tasks(&arith(size.eval_reasoning, part(4))).expect("valid spec"),
            eval_conversation: conversation_tasks(&ConversationSpec { count: size.eval_conversation, seed: part(5) }),
        }
    }

    /// Every text, for training the tokenizer.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.base
            .iter()
            .flat_map(|(u, a)| [u.as_str(), a.as_str()])
            .chain(self.traces.iter().flat_map(|w| [w.task.prompt.as_str(), w.completion.as_str()]))
    }
}
