//! Answer extraction and comparison for reasoning tasks.
//!
//! Extraction: the content of the last complete `\boxed{...}` (or `\fbox{...}`, braces nested to
//! any depth, `\{` `\}` escapes respected); failing that, the last number in the text (integer,
//! decimal, `1,000` / `1{,}000`, `a/b`, `\frac{a}{b}`).
//!
//! Normalisation strips what does not change the value: `$...$`, `\(...\)`, `\text{}`/`\mathrm{}`
//! wrappers, `\left`/`\right`, thin spaces, degrees and percent signs, thousands separators, a
//! trailing period, a leading `x =`, and words around a lone number ("204 minutes", "the answer is
//! 5"). `\dfrac`/`\tfrac` become `\frac`, `\frac12` becomes `\frac{1}{2}`.
//!
//! Comparison: numerically when both sides are numbers (exact rationals in i128, so 0.5 = \frac{1}{2}
//! = 1/2 and 204.0 = 204; f64 with a 1e-9 relative tolerance only when digits overflow), otherwise
//! as strings with whitespace removed. Symbolic answers (`\sqrt{2}/2` vs `\frac{\sqrt 2}{2}`) are
//! only equal when they normalise to the same string: there is no computer algebra here.

use regex::Regex;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerSource {
    Boxed,
    LastNumber,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extracted {
    /// As written in the output (box content, or the number).
    pub text: String,
    pub source: AnswerSource,
}

/// The grade of one output against a gold answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Grade {
    pub extracted: Option<Extracted>,
    /// `None` when there is no gold answer to compare with.
    pub correct: Option<bool>,
}

/// Extract and compare. `gold = None` (no reference) gives `correct = None`.
pub fn grade(output: &str, gold: Option<&str>) -> Grade {
    let extracted = extract_answer(output);
    let correct = gold.map(|g| extracted.as_ref().is_some_and(|e| answers_match(&e.text, g)));
    Grade { extracted, correct }
}

/// `grade` for an output that may have been cut off by the token limit (`cut_off`): such an
/// output has not given its final answer, and its last number is wherever the cut fell, so only a
/// complete \boxed{} counts.
pub fn grade_sample(output: &str, gold: Option<&str>, cut_off: bool) -> Grade {
    let g = grade(output, gold);
    match &g.extracted {
        Some(e) if cut_off && e.source == AnswerSource::LastNumber => {
            Grade { extracted: None, correct: gold.map(|_| false) }
        }
        _ => g,
    }
}

pub fn extract_answer(text: &str) -> Option<Extracted> {
    if let Some(b) = last_boxed(text) {
        return Some(Extracted { text: b.trim().to_string(), source: AnswerSource::Boxed });
    }
    last_number(text).map(|n| Extracted { text: n, source: AnswerSource::LastNumber })
}

/// Content of the last complete `\boxed{...}` / `\fbox{...}` (also `\boxed 5`). A box cut off by
/// the token limit (no closing brace) is skipped in favour of an earlier, complete one.
pub fn last_boxed(text: &str) -> Option<&str> {
    let mut starts: Vec<(usize, usize)> = Vec::new();
    for cmd in ["\\boxed", "\\fbox"] {
        starts.extend(text.match_indices(cmd).map(|(i, m)| (i, i + m.len())));
    }
    starts.sort_unstable();
    for &(_, after) in starts.iter().rev() {
        let rest = &text[after..];
        let trimmed = rest.trim_start();
        let offset = after + (rest.len() - trimmed.len());
        if trimmed.starts_with('{') {
            if let Some(end) = matching_brace(&text[offset..]) {
                return Some(&text[offset + 1..offset + end]);
            }
        } else if rest.starts_with(' ') {
            // `\boxed 5`: TeX takes the next token as the argument.
            let arg: &str = trimmed.split(|c: char| c.is_whitespace() || c == '$').next().unwrap_or("");
            if !arg.is_empty() {
                return Some(arg);
            }
        }
    }
    None
}

/// Byte index of the `}` closing the `{` at the start of `s`, skipping `\{` and `\}` escapes.
fn matching_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '{' => depth += 1,
            '}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("static regex"))
}

/// The last number in free text, with its sign when the minus is not a subtraction.
pub fn last_number(text: &str) -> Option<String> {
    static NUM: OnceLock<Regex> = OnceLock::new();
    let num = re(
        &NUM,
        r"\\[dt]?frac\{\s*\d+\s*\}\{\s*\d+\s*\}|\d{1,3}(?:(?:,|\{,\})\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?",
    );
    let m = num.find_iter(text).last()?;
    // A minus right before the number is a sign unless something it could subtract from precedes
    // it ("10-5" ends in 5, "is -5" in -5).
    let mut prev = text[..m.start()].chars().rev();
    let negative = prev.next() == Some('-')
        && !prev.next().is_some_and(|c| c.is_alphanumeric() || matches!(c, ')' | '}' | ']' | '!'));
    // "12,345" matches as one thousands-separated number; a list "1, 2, 3" has spaces and no
    // three-digit groups, so its last element is what is taken.
    Some(if negative { format!("-{}", m.as_str()) } else { m.as_str().to_string() })
}

/// Remove a LaTeX command and keep its (brace-balanced) argument: `\text{ minutes}` -> ` minutes`.
fn unwrap_command(s: &str, name: &str) -> String {
    let mut out = s.to_string();
    loop {
        let Some(pos) = find_command(&out, name) else { return out };
        let after = pos + name.len();
        let rest = &out[after..];
        let skip = rest.len() - rest.trim_start().len();
        match matching_brace(&out[after + skip..]) {
            Some(end) if out[after + skip..].starts_with('{') => {
                let inner = out[after + skip + 1..after + skip + end].to_string();
                out.replace_range(pos..after + skip + end + 1, &inner);
            }
            // No argument or unbalanced: drop the command name only.
            _ => out.replace_range(pos..after, ""),
        }
    }
}

/// Position of `name` (e.g. `\text`) not followed by another letter (so `\textbf` is not `\text`).
fn find_command(s: &str, name: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = s[from..].find(name) {
        let at = from + i;
        if !s[at + name.len()..].starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Some(at);
        }
        from = at + name.len();
    }
    None
}

/// Canonical text of an answer (see the module header for what is removed).
pub fn normalize_answer(s: &str) -> String {
    static SPACING: OnceLock<Regex> = OnceLock::new();
    static LEFTRIGHT: OnceLock<Regex> = OnceLock::new();
    static DEGREES: OnceLock<Regex> = OnceLock::new();
    static FRAC_SHORT: OnceLock<Regex> = OnceLock::new();
    static WS: OnceLock<Regex> = OnceLock::new();

    // U+2212 is the typographic minus some models print.
    let mut t = s.trim().replace("\\$", "").replace('$', "").replace('\u{2212}', "-");
    for delim in ["\\(", "\\)", "\\[", "\\]"] {
        t = t.replace(delim, "");
    }
    for cmd in [
        "\\boxed",
        "\\fbox",
        "\\text",
        "\\textbf",
        "\\textit",
        "\\textrm",
        "\\mathrm",
        "\\mathbf",
        "\\mbox",
        "\\operatorname",
    ] {
        t = unwrap_command(&t, cmd);
    }
    t = t.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("{,}", ",");
    t = re(&LEFTRIGHT, r"\\left\b|\\right\b").replace_all(&t, "").into_owned();
    t = re(&DEGREES, r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ\b|\\degree\b|°|\\%|%").replace_all(&t, "").into_owned();
    t = re(&SPACING, r"\\[!,;:]").replace_all(&t, "").into_owned();
    t = t.replace("\\ ", " ").replace('~', " ");
    t = re(&FRAC_SHORT, r"\\frac\s*(\d)\s*(\d)").replace_all(&t, "\\frac{$1}{$2}").into_owned();
    t = re(&WS, r"\s+").replace_all(&t, " ").trim().to_string();
    while t.ends_with(['.', ',', ';']) {
        t.pop();
        t = t.trim_end().to_string();
    }
    // One outer brace pair around everything: `{5}` -> `5`.
    if t.starts_with('{') && matching_brace(&t) == Some(t.len() - 1) {
        t = t[1..t.len() - 1].trim().to_string();
    }
    t
}

/// An exact rational (reduced, positive denominator) or, when digits overflow i128, a float.
#[derive(Debug, Clone, Copy)]
pub enum Number {
    Exact { num: i128, den: i128 },
    Approx(f64),
}

impl Number {
    fn exact(num: i128, den: i128) -> Option<Number> {
        if den == 0 {
            return None;
        }
        let g = gcd(num.unsigned_abs(), den.unsigned_abs()).max(1) as i128;
        let sign = if den < 0 { -1 } else { 1 };
        Some(Number::Exact { num: sign * num / g, den: sign * den / g })
    }

    pub fn to_f64(self) -> f64 {
        match self {
            Number::Exact { num, den } => num as f64 / den as f64,
            Number::Approx(x) => x,
        }
    }

    fn neg(self) -> Number {
        match self {
            Number::Exact { num, den } => Number::Exact { num: -num, den },
            Number::Approx(x) => Number::Approx(-x),
        }
    }

    fn div(self, other: Number) -> Option<Number> {
        match (self, other) {
            (Number::Exact { num: a, den: b }, Number::Exact { num: c, den: d }) => {
                match (a.checked_mul(d), b.checked_mul(c)) {
                    (Some(n), Some(m)) => Number::exact(n, m),
                    _ => Some(Number::Approx(self.to_f64() / other.to_f64())).filter(|x| x.to_f64().is_finite()),
                }
            }
            _ => Some(Number::Approx(self.to_f64() / other.to_f64())).filter(|x| x.to_f64().is_finite()),
        }
    }

    /// Canonical text: `a/b` (or `a`) for exact values, used as the maj@k vote key.
    pub fn key(self) -> String {
        match self {
            Number::Exact { num, den: 1 } => num.to_string(),
            Number::Exact { num, den } => format!("{num}/{den}"),
            Number::Approx(x) => format!("{x:e}"),
        }
    }
}

impl PartialEq for Number {
    fn eq(&self, other: &Number) -> bool {
        match (*self, *other) {
            (Number::Exact { num: a, den: b }, Number::Exact { num: c, den: d }) => a == c && b == d,
            (x, y) => {
                let (x, y) = (x.to_f64(), y.to_f64());
                (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1e-300)
            }
        }
    }
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A plain number: optional sign, then an integer, decimal, thousands-separated integer,
/// `\frac{A}{B}` or `A/B` (A, B plain numbers themselves). No surrounding text.
fn parse_plain(s: &str) -> Option<Number> {
    static THOUSANDS: OnceLock<Regex> = OnceLock::new();
    static DECIMAL: OnceLock<Regex> = OnceLock::new();
    static FRAC: OnceLock<Regex> = OnceLock::new();
    let t = s.trim();
    if let Some(rest) = t.strip_prefix('-') {
        return parse_plain(rest).map(Number::neg);
    }
    if let Some(rest) = t.strip_prefix('+') {
        return parse_plain(rest);
    }
    if let Some(c) = re(&FRAC, r"^\\frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}$").captures(t) {
        return parse_plain(&c[1])?.div(parse_plain(&c[2])?);
    }
    if let Some((a, b)) = t.split_once('/') {
        return parse_plain(a)?.div(parse_plain(b)?);
    }
    let digits: String = if re(&THOUSANDS, r"^\d{1,3}(,\d{3})+(\.\d+)?$").is_match(t) {
        t.replace(',', "")
    } else if re(&DECIMAL, r"^(\d+\.?\d*|\.\d+)$").is_match(t) {
        t.to_string()
    } else {
        return None;
    };
    let (int, frac) = digits.split_once('.').unwrap_or((&digits, ""));
    let frac = frac.trim_end_matches('0');
    let all = format!("{int}{frac}");
    if all.len() <= 36 {
        let num: i128 = all.parse().ok()?;
        Number::exact(num, 10i128.pow(frac.len() as u32))
    } else {
        digits.parse::<f64>().ok().filter(|x| x.is_finite()).map(Number::Approx)
    }
}

/// The numeric value of an answer, if it is one: a plain number, the right side of a final `=`
/// (`x = 5`), or the only number among words ("204 minutes", "the answer is 5").
pub fn numeric_value(answer: &str) -> Option<Number> {
    let t = normalize_answer(answer);
    let compact: String = t.chars().filter(|c| !c.is_whitespace()).collect();
    if let Some(n) = parse_plain(&compact) {
        return Some(n);
    }
    if let Some((_, rhs)) = t.rsplit_once('=') {
        let rhs: String = rhs.chars().filter(|c| !c.is_whitespace()).collect();
        if let Some(n) = parse_plain(&rhs) {
            return Some(n);
        }
    }
    // Words around one number: every other token must be a plain word (units, "answer", "is").
    let mut found = None;
    for token in t.split_whitespace() {
        let token = token.trim_matches(['(', ')', '[', ']', ':', ',', '.', ';', '"', '\'']);
        if token.is_empty() {
            continue;
        }
        if let Some(n) = parse_plain(token) {
            if found.replace(n).is_some() {
                return None;
            }
        } else if !token.chars().all(|c| c.is_alphabetic() || matches!(c, '^' | '\'' | '/') || c.is_ascii_digit())
            || !token.starts_with(char::is_alphabetic)
        {
            return None;
        }
    }
    found
}

/// Does a predicted answer equal the gold one? Answers in GSM8K style ("...#### 72") are cut to
/// the part after `####`, gold and predicted alike (so every answer equals itself).
pub fn answers_match(pred: &str, gold: &str) -> bool {
    let gold = gold.rsplit_once("####").map_or(gold, |(_, g)| g);
    let pred = pred.rsplit_once("####").map_or(pred, |(_, p)| p);
    match (numeric_value(pred), numeric_value(gold)) {
        (Some(a), Some(b)) => a == b,
        _ => string_key(pred) == string_key(gold),
    }
}

fn string_key(s: &str) -> String {
    normalize_answer(s).chars().filter(|c| !c.is_whitespace()).collect()
}

/// The vote key of an answer for maj@k: numbers by value, everything else by normalised text.
pub fn answer_key(answer: &str) -> String {
    numeric_value(answer).map(Number::key).unwrap_or_else(|| string_key(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_numbers_parse_exactly() {
        assert_eq!(parse_plain("0.25"), Number::exact(1, 4));
        assert_eq!(parse_plain("204.0"), Number::exact(204, 1));
        assert_eq!(parse_plain("1,000"), Number::exact(1000, 1));
        assert_eq!(parse_plain("-\\frac{3}{6}"), Number::exact(-1, 2));
        assert_eq!(parse_plain("033"), Number::exact(33, 1));
        assert_eq!(parse_plain("1,2"), None);
        assert_eq!(parse_plain("x"), None);
        assert_eq!(parse_plain("1/0"), None);
    }

    #[test]
    fn two_x_is_not_two() {
        assert!(numeric_value("2x").is_none());
        assert!(!answers_match("2x", "2"));
    }
}
