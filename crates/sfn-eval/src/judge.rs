//! The output-level judge: which of the paper's four levels one output reaches.
//!
//! - I: not language: empty, degenerate repetition, token soup (or, once a runtime exists, a
//!   high loss under a reference model);
//! - II: language, but not about the prompt (chat about something else, another problem);
//! - III: on the task, but a wrong answer or none;
//! - IV: the correct answer, reached by reasoning.
//!
//! Conversation tasks have no gold answer, so for them III ("on the prompt") is the top level.
//!
//! The judge is a few transparent text statistics ([`Signals`], saved with every sample) and
//! thresholds ([`JudgeConfig`]), applied in that order: the first level whose test fails is the
//! level. It is tuned for English text and math; the thresholds were calibrated on the labelled
//! fixture `tests/fixtures/judge_labelled.jsonl` (see the test `judge_agreement`). Where a person
//! disagrees, an [`Overrides`] file (id -> level) wins and the record says so.

use crate::answer::{AnswerSource, Grade};
use crate::error::{EvalError, Result};
use crate::task::TaskKind;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    I,
    II,
    III,
    IV,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::I, Level::II, Level::III, Level::IV];

    /// "I".."IV", "1".."4", any case.
    pub fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_uppercase().as_str() {
            "I" | "1" => Some(Level::I),
            "II" | "2" => Some(Level::II),
            "III" | "3" => Some(Level::III),
            "IV" | "4" => Some(Level::IV),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::I => "I",
            Level::II => "II",
            Level::III => "III",
            Level::IV => "IV",
        }
    }
}

/// The judge's measurements of one output, saved with every sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signals {
    /// Whitespace-separated tokens of the output.
    pub words: usize,
    /// 1 - distinct / total word 4-grams (lower-cased); 0 for outputs under 8 words. Fluent text
    /// sits near 0; loops approach 1.
    pub repetition: f64,
    /// Share of tokens that are neither words, numbers nor math (see `is_non_word`).
    pub non_word_share: f64,
    /// Share of common function words ("the", "of", "is", ...; English and a few other
    /// Latin-script languages) among the purely alphabetic ASCII tokens; `None` when there are
    /// fewer than 12 such tokens. Fluent text has a fifth or more; soup of real sub-words has none.
    pub function_word_share: Option<f64>,
    /// Share of the prompt's content terms (words of 3+ letters outside a stop list, and numbers)
    /// that also occur in the output. 1 when the prompt has none.
    pub relatedness: f64,
    pub shared_terms: usize,
    pub prompt_terms: usize,
    /// The numbers among the prompt's terms, and how many of them the output uses.
    pub prompt_numbers: usize,
    pub shared_numbers: usize,
    /// Mean token loss (nats) of the output under a reference model; filled by a runtime.
    pub ref_loss: Option<f64>,
}

/// Thresholds of the judge. Defaults calibrated on the labelled fixture (76 handwritten
/// examples); the ranges quoted are what `cargo test -p sfn-eval --test judge_agreement --
/// --nocapture` prints per label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgeConfig {
    /// Above this 4-gram repetition an output is a loop (level I). Fluent fixture outputs are at
    /// most 0.04 (they are short; long real traces repeat more, "we have", "Wait,"), loops 0.79
    /// to 0.99: 0.5 leaves room on both sides.
    pub max_repetition: f64,
    /// Above this share of non-word tokens an output is soup (level I). Fluent text and math in
    /// the fixture are at most 0.02; soup and markup debris 0.38 to 1.
    pub max_non_word_share: f64,
    /// Below this share of function words (when measurable: 12+ alphabetic tokens) an output is
    /// soup made of real sub-words (level I). Fluent fixture text is 0.17 to 0.75 (the lowest is
    /// terse math), sub-word soup 0.0.
    pub min_function_word_share: f64,
    /// Below this relatedness an output of `min_words_for_relatedness` words or more is off the
    /// prompt (level II). On-topic fixture outputs are 0.14 to 1, off-topic ones 0 to 0.35: the
    /// overlap is real (chat drifting on "morning", "coffee", "prime"), which is why reasoning tasks
    /// also need a shared number (`require_shared_number`).
    pub min_relatedness: f64,
    /// Shorter outputs carry too few terms to measure relatedness: they count as on the task when
    /// they give a boxed answer or share at least one term with the prompt.
    pub min_words_for_relatedness: usize,
    /// Reasoning tasks only: an output (of `min_words_for_relatedness` words or more) that uses
    /// none of the prompt's numbers is off the prompt, however many words it shares. Working on a
    /// math problem means working with its numbers; chat that drifts on the prompt's topic words
    /// does not.
    pub require_shared_number: bool,
    /// At or above this relatedness, an output is on the task even without the prompt's numbers:
    /// it names most of the problem's terms (a real SmolLM2 trace cut off after "we need to find
    /// the total number of cards Ava has" shares 0.5 and no number yet). Off-topic fixture chat
    /// reaches at most 0.35.
    pub strong_relatedness: f64,
    /// Above this reference-model loss (nats per token) an output is not language; `None`: the
    /// loss is recorded but decides nothing. With a reference model the CLI uses
    /// [`DEFAULT_MAX_REF_LOSS`].
    pub max_ref_loss: Option<f64>,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        JudgeConfig {
            max_repetition: 0.5,
            max_non_word_share: 0.25,
            min_function_word_share: 0.08,
            min_relatedness: 0.15,
            min_words_for_relatedness: 12,
            require_shared_number: true,
            strong_relatedness: 0.5,
            max_ref_loss: None,
        }
    }
}

/// The reference-loss threshold used when a reference model is given. Calibrated on the real
/// SmolLM2-135M-Instruct outputs of the labelled fixture, scored by the intact model: fluent
/// outputs (intact model, arithmetic and conversation) 0.3 to 1.06 nats per token, destroyed
/// ones 1.9 to 10.4 (phrase fragments 3.4 to 6, word salad of real words 4.4 to 7.9, sub-word
/// soup 8.9 to 10.4; the ones below 3.5 are token loops and repeated fragments, which the
/// repetition and function-word tests catch). Text the reference did not write scores higher than its own: a handwritten
/// fluent paragraph scores 2.6 under SmolLM2 (`crates/sfn-cli/tests/eval_model.rs`), hence 3.5
/// rather than a threshold just above the model's own text. Agreement on the real outputs: 98%
/// at 3 and 3.5, 90% at 4.
pub const DEFAULT_MAX_REF_LOSS: f64 = 3.5;

/// A level and, in words, the test that decided it (saved with the sample).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub level: Level,
    pub reason: String,
}

impl JudgeConfig {
    /// Decide the level from the signals, the grade (extraction + correctness) and the task kind.
    pub fn judge(&self, s: &Signals, grade: &Grade, kind: TaskKind) -> Verdict {
        let v = |level, reason: String| Verdict { level, reason };
        if s.words == 0 {
            return v(Level::I, "empty output".into());
        }
        if s.repetition > self.max_repetition {
            return v(Level::I, format!("repetition {:.2} > {:.2}", s.repetition, self.max_repetition));
        }
        if s.non_word_share > self.max_non_word_share {
            return v(Level::I, format!("non-word share {:.2} > {:.2}", s.non_word_share, self.max_non_word_share));
        }
        if let Some(f) = s.function_word_share.filter(|f| *f < self.min_function_word_share) {
            return v(Level::I, format!("function-word share {f:.2} < {:.2}", self.min_function_word_share));
        }
        if let (Some(loss), Some(max)) = (s.ref_loss, self.max_ref_loss) {
            if loss > max {
                return v(Level::I, format!("reference loss {loss:.2} > {max:.2}"));
            }
        }
        let boxed = grade.extracted.as_ref().is_some_and(|e| e.source == AnswerSource::Boxed);
        let (on_topic, why) = if s.words < self.min_words_for_relatedness {
            (
                boxed || s.shared_terms > 0,
                format!("short output ({} words), boxed answer: {boxed}, shared terms: {}", s.words, s.shared_terms),
            )
        } else if self.require_shared_number
            && kind == TaskKind::Reasoning
            && s.relatedness < self.strong_relatedness
            && s.prompt_numbers > 0
            && s.shared_numbers == 0
        {
            (false, format!("uses none of the prompt's {} numbers", s.prompt_numbers))
        } else {
            let cmp = if s.relatedness >= self.min_relatedness { ">=" } else { "<" };
            (
                s.relatedness >= self.min_relatedness,
                format!("relatedness {:.2} {cmp} {:.2}", s.relatedness, self.min_relatedness),
            )
        };
        // A correct boxed answer is IV even when the output shares few words with the prompt:
        // hitting an AIME answer by chance is not plausible. A correct *fallback* number (the last
        // number of the text) must also be on the topic, since chat can end in a small number.
        match grade.correct {
            Some(true) if boxed => v(Level::IV, "correct boxed answer".into()),
            Some(true) if on_topic => v(Level::IV, format!("correct final number; {why}")),
            _ if !on_topic => v(Level::II, why),
            Some(false) if grade.extracted.is_some() => v(Level::III, format!("wrong answer; {why}")),
            Some(false) => v(Level::III, format!("no answer; {why}")),
            _ => v(Level::III, format!("no gold answer to check; {why}")),
        }
    }
}

/// Compute the signals of `output` for a task whose prompt is `prompt` (the task's own text,
/// without suffix or few-shot examples, so the suffix's words do not count as relatedness).
pub fn signals(prompt: &str, output: &str, ref_loss: Option<f64>) -> Signals {
    let tokens: Vec<&str> = output.split_whitespace().collect();
    let words = tokens.len();

    let repetition = if words < 8 {
        0.0
    } else {
        let lower: Vec<String> = tokens.iter().map(|t| t.to_lowercase()).collect();
        let grams: Vec<&[String]> = lower.windows(4).collect();
        let distinct: HashSet<&[String]> = grams.iter().copied().collect();
        1.0 - distinct.len() as f64 / grams.len() as f64
    };

    let non_word_share =
        if words == 0 { 0.0 } else { tokens.iter().filter(|t| is_non_word(t)).count() as f64 / words as f64 };

    let alpha: Vec<String> = tokens
        .iter()
        .map(|t| t.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|c| !c.is_empty() && c.chars().all(|ch| ch.is_ascii_alphabetic()))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let function_word_share = (alpha.len() >= 12)
        .then(|| alpha.iter().filter(|w| FUNCTION_WORDS.contains(&w.as_str())).count() as f64 / alpha.len() as f64);

    let prompt_terms = content_terms(prompt);
    let output_terms = content_terms(output);
    let shared_terms = prompt_terms.intersection(&output_terms).count();
    let is_number = |t: &&String| t.starts_with(|c: char| c.is_ascii_digit());
    let prompt_numbers = prompt_terms.iter().filter(is_number).count();
    let shared_numbers = prompt_terms.intersection(&output_terms).filter(is_number).count();
    let relatedness = if prompt_terms.is_empty() { 1.0 } else { shared_terms as f64 / prompt_terms.len() as f64 };

    Signals {
        words,
        repetition,
        non_word_share,
        function_word_share,
        relatedness,
        shared_terms,
        prompt_terms: prompt_terms.len(),
        prompt_numbers,
        shared_numbers,
        ref_loss,
    }
}

/// Characters that may surround a word without making it a non-word.
fn is_wrapping_punct(c: char) -> bool {
    ".,;:!?\"'`()[]*_-#\u{2014}\u{2013}\u{201c}\u{201d}\u{2018}\u{2019}\u{2026}".contains(c)
}

/// Is this whitespace token something no fluent writer produces? Words (any script), numbers and
/// math/LaTeX are fine; tokenizer artefacts, markup debris, camelCase fusions, mixed scripts,
/// letter-digit jumbles, long runs of one character and periodic strings are not.
fn is_non_word(tok: &str) -> bool {
    const ARTEFACTS: [&str; 11] = ["\u{fffd}", "Ġ", "Ċ", "▁", "##", "<|", "|>", "&nbsp", "</", "/>", "\\u"];
    if tok.chars().any(|c| c.is_control()) || ARTEFACTS.iter().any(|a| tok.contains(a)) {
        return true;
    }
    let chars: Vec<char> = tok.chars().collect();
    // A run of 5+ identical non-digit characters ("!!!!!", "aaaaa"), except markdown rules.
    let mut run = 1;
    for w in chars.windows(2) {
        run = if w[0] == w[1] { run + 1 } else { 1 };
        if run >= 5 && !w[0].is_ascii_digit() && !matches!(w[0], '-' | '=' | '*' | '#' | '.') {
            return true;
        }
    }
    // Periodic strings: "\boxed{5}\boxed{5}\boxed{5}", "abcabcabcabc".
    if chars.len() >= 16 {
        for p in 1..=chars.len() / 3 {
            if chars.len().is_multiple_of(p) && chars.chunks(p).all(|c| c == &chars[..p]) {
                return true;
            }
        }
    }
    let core = tok.trim_matches(is_wrapping_punct);
    if core.is_empty() {
        // Pure punctuation: a dash or an ellipsis is fine, a long string of it is not.
        return tok.chars().count() > 3 && !tok.chars().all(|c| matches!(c, '-' | '=' | '*' | '#' | '.'));
    }
    // Math and LaTeX: operators, backslashes, braces, dollars. Judged by the other signals only.
    const MATH_SYMBOLS: &str = "×÷≤≥≠≈→⇒⟹∴√·±∞∑∏∫∈∉∪∩⋅°∠△⊥∥−′″≡∣";
    if core.contains(['\\', '=', '+', '^', '/', '<', '>', '|', '$', '{', '}', '%', '&', '~'])
        || core.chars().any(|c| MATH_SYMBOLS.contains(c))
    {
        return false;
    }
    let is_latin = |c: char| c.is_ascii_alphabetic() || ('\u{00c0}'..='\u{024f}').contains(&c);
    let letters: Vec<char> = core.chars().filter(|c| c.is_alphabetic()).collect();
    let has_latin = letters.iter().any(|&c| is_latin(c));
    // Greek letters are math variables (2π, πr²), so they mix with Latin freely.
    let is_greek = |c: char| ('\u{0370}'..='\u{03ff}').contains(&c);
    let has_other_script = letters.iter().any(|&c| !is_latin(c) && !is_greek(c));
    if has_latin && has_other_script {
        return true;
    }
    // Characters that are neither letters, digits nor in-word punctuation: emoji, symbols, '@'...
    // CJK and full-width punctuation ("，", "。") sits inside unspaced CJK text.
    const CJK_PUNCT: &str = "，。、：；！？（）「」『』《》【】";
    if core.chars().any(|c| {
        !(c.is_alphanumeric()
            || matches!(c, '\'' | '\u{2019}' | '-' | '.' | ',' | '_' | '(' | ')' | '*' | '[' | ']')
            || CJK_PUNCT.contains(c))
    }) {
        return true;
    }
    // camelCase / fused tokens: a capital right after a lower-case letter ("ListView", "sudahPHP").
    let cs: Vec<char> = core.chars().collect();
    if cs.windows(2).any(|w| w[0].is_lowercase() && w[1].is_uppercase()) {
        return true;
    }
    // Letters and digits alternating more than once ("x9q", "a1b2"); "2x", "x2", "10th" are fine.
    let classes: Vec<bool> = cs.iter().filter(|c| c.is_alphanumeric()).map(|c| c.is_ascii_digit()).collect();
    if classes.windows(2).filter(|w| w[0] != w[1]).count() >= 2 {
        return true;
    }
    // Overlong Latin words and fused chains ("ingly.quad.quad.quadr").
    let latin_len = cs.iter().filter(|&&c| is_latin(c)).count();
    latin_len > 25 || core.split(['.', '_', '-']).filter(|p| !p.is_empty()).count() > 3
}

/// Content terms of a text: lower-cased words of 3+ letters outside [`STOP_WORDS`], crudely
/// de-pluralised, and numbers. LaTeX command names and `[asy]` figure code are left out: they are
/// notation, not content.
fn content_terms(text: &str) -> HashSet<String> {
    let mut text = text.to_string();
    while let Some(start) = text.find("[asy]") {
        let end = text[start..].find("[/asy]").map(|e| start + e + 6).unwrap_or(text.len());
        text.replace_range(start..end, " ");
    }
    let mut terms = HashSet::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphabetic() {
            let start = i;
            while i < chars.len() && chars[i].is_alphabetic() {
                i += 1;
            }
            let after_backslash = start > 0 && chars[start - 1] == '\\';
            let word: String = chars[start..i].iter().collect::<String>().to_lowercase();
            if !after_backslash && word.chars().count() >= 3 && !STOP_WORDS.contains(&word.as_str()) {
                terms.insert(stem(&word));
            }
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let digits: String = chars[start..i].iter().collect();
            let trimmed = digits.trim_start_matches('0');
            terms.insert(if trimmed.is_empty() { "0".into() } else { trimmed.to_string() });
        } else {
            i += 1;
        }
    }
    terms
}

/// Plural/verb "-s" off, "-ies" to "-y": enough for "minutes"/"minute", "tokens"/"token".
fn stem(w: &str) -> String {
    if let Some(base) = w.strip_suffix("ies").filter(|b| b.len() >= 2) {
        return format!("{base}y");
    }
    match w.strip_suffix('s') {
        Some(base) if base.len() >= 3 && !base.ends_with('s') && !base.ends_with('u') && !base.ends_with('i') => {
            base.to_string()
        }
        _ => w.to_string(),
    }
}

/// Common function words: their share measures whether text is built like language. English
/// first, then the commonest of French, Spanish, German, Italian and Portuguese, so that a fluent
/// answer in another Latin-script language is not mistaken for soup.
#[rustfmt::skip]
const FUNCTION_WORDS: &[&str] = &[
    "a", "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "because", "been",
    "before", "being", "both", "but", "by", "can", "could", "did", "do", "does", "each", "for", "from", "had",
    "has", "have", "he", "hence", "her", "here", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its",
    "just", "let", "may", "me", "more", "most", "must", "my", "no", "not", "now", "of", "on", "one", "only", "or",
    "our", "out", "she", "should", "since", "so", "some", "such", "than", "that", "the", "their", "them", "then",
    "there", "therefore", "these", "they", "this", "those", "thus", "to", "two", "up", "us", "very", "was", "we",
    "were", "what", "when", "where", "which", "while", "who", "why", "will", "with", "would", "you", "your",
    // fr
    "le", "la", "les", "de", "des", "du", "un", "une", "et", "est", "il", "elle", "nous", "vous", "sur", "dans",
    "pour", "que", "qui", "pas", "au", "aux", "avec", "ce", "cette", "sont", "ou",
    // es, it, pt
    "el", "los", "las", "y", "es", "en", "por", "con", "del", "lo", "se", "su", "una", "il", "di", "che", "e",
    "per", "non", "della", "os", "as", "um", "uma", "do", "da", "em", "para", "com", "mas",
    // de
    "der", "die", "das", "und", "ist", "ein", "eine", "nicht", "mit", "zu", "den", "von", "auf", "sich", "es",
];

/// Words that say nothing about which problem a text is about: function words plus the stock
/// vocabulary of questions and answers ("find", "value", "answer", "number").
#[rustfmt::skip]
const STOP_WORDS: &[&str] = &[
    "about", "after", "all", "also", "and", "any", "are", "because", "been", "before", "being", "both", "but",
    "can", "could", "did", "does", "each", "for", "from", "had", "has", "have", "hence", "her", "here", "him",
    "his", "how", "into", "its", "just", "let", "may", "more", "most", "must", "not", "now", "one", "only", "our",
    "out", "she", "should", "since", "some", "such", "than", "that", "the", "their", "them", "then", "there",
    "therefore", "these", "they", "this", "those", "thus", "two", "very", "was", "were", "what", "when", "where",
    "which", "while", "who", "why", "will", "with", "would", "you", "your", "find", "answer", "value", "number",
    "numbers", "many", "much", "given", "compute", "determine", "express", "expressed", "written", "form", "write",
    "final", "put", "within", "step", "steps", "reason", "please", "solve", "solution", "problem", "get", "use",
    "using", "know", "need", "first", "second", "next", "total", "now", "yes", "okay", "well", "like", "make",
    "way", "think", "sure", "really", "good", "great", "time", "thing", "things", "other", "same", "new", "there",
    "where", "let's", "equal", "equals",
];

/// Manual levels that win over the judge: a person looked and disagreed. Keys are task ids (every
/// sample of the task) or `id#k` (sample k, 0-based).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    levels: HashMap<String, Level>,
}

impl Overrides {
    /// Read a JSON object `{"id": "III", ...}` or JSONL lines `{"id": ..., "level": ...}`.
    pub fn load(path: &Path) -> Result<Overrides> {
        let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
        let mut levels = HashMap::new();
        let level_of = |v: &serde_json::Value, line: usize| -> Result<Level> {
            let s = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                other => other.to_string(),
            };
            Level::parse(&s).ok_or(EvalError::UnknownLevel { path: path.into(), line, value: s })
        };
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(&text) {
            if !map.contains_key("level") {
                for (id, v) in &map {
                    levels.insert(id.clone(), level_of(v, 1)?);
                }
                return Ok(Overrides { levels });
            }
        }
        for rec in crate::io::read_jsonl_objects(path)? {
            let missing = |field: &str| EvalError::MissingField {
                path: path.into(),
                line: rec.line,
                field: field.into(),
                present: rec.fields.keys().cloned().collect::<Vec<_>>().join(", "),
                hint: String::new(),
            };
            let id = rec.fields.get("id").and_then(crate::io::string_or_int).ok_or_else(|| missing("id"))?;
            let level = level_of(rec.fields.get("level").ok_or_else(|| missing("level"))?, rec.line)?;
            levels.insert(id, level);
        }
        Ok(Overrides { levels })
    }

    pub fn from_map(levels: HashMap<String, Level>) -> Self {
        Overrides { levels }
    }

    /// The manual level for sample `sample` of task `id`, if any (`id#k` beats `id`).
    pub fn get(&self, id: &str, sample: usize) -> Option<Level> {
        self.levels.get(&format!("{id}#{sample}")).or_else(|| self.levels.get(id)).copied()
    }

    pub fn len(&self) -> usize {
        self.levels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_word_tokens() {
        for ok in [
            "the",
            "minutes.",
            "204",
            "1,000",
            "$x^2+1$",
            "\\frac{9}{s}",
            "2x",
            "10th",
            "(a)",
            "don't",
            "—",
            "...",
            "über",
        ] {
            assert!(!is_non_word(ok), "{ok} should be a word");
        }
        for bad in [
            "ListView",
            "x9q2",
            "!!!!!!!!",
            "ĠThe",
            "<|endoftext|>",
            "答x",
            "ingly.quad.quad.quadr",
            "abcabcabcabcabcabc",
        ] {
            assert!(is_non_word(bad), "{bad} should be a non-word");
        }
    }

    #[test]
    fn content_terms_skip_latex_and_figures() {
        let t = content_terms("Find $\\frac{m}{n}$ where minutes are 24. [asy] draw(circle); [/asy]");
        assert!(t.contains("minute") && t.contains("24"));
        assert!(!t.contains("frac") && !t.contains("draw") && !t.contains("find"));
    }
}
