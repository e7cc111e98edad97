//! The one module selector syntax of sfn (merge, freeze, destruction, delta filters all use it):
//! parse a selector string, match it against canonical tensor names, and explain what it matched.
//! The grammar is the one in DESIGN.md ("One selector syntax"):
//!
//! ```text
//! selector := term ("," term)*
//! term     := ["!"] ["layers[" ranges "]."] target [".weight" | ".bias"]
//! ranges   := range ("," range)*        range := N | N ".." M (M excluded) | N "..=" M
//! target   := module | alias | group | "re:" REGEX
//! ```
//!
//! Two decisions the grammar leaves open, made here:
//! - **Commas.** A comma ends a term, except inside `layers[...]` (its ranges are comma separated)
//!   and inside a regex: a `re:` term always runs to the end of the selector, commas and all. So a
//!   regex term must come last, and a selector has at most one; several regexes are one regex with
//!   `|`. Nothing needs escaping. Trailing whitespace after a regex is dropped (tensor names never
//!   contain whitespace).
//! - **Regexes** match the whole canonical name (they are anchored: `re:.*\.bias` matches
//!   `model.layers.0.self_attn.q_proj.bias`, `re:bias` matches nothing), so a selector never picks
//!   up a tensor because some substring of its name happened to match.
//!
//! Meaning: the union of the positive terms minus the union of the negative ones; a selector of only
//! negative terms starts from `all`. `all` is every tensor, including ones the taxonomy calls
//! `other` (those are otherwise reachable only with `re:`). A term with a layer range never matches a
//! tensor outside the decoder layers (embed, final_norm, lm_head). Whitespace around terms, commas
//! and ranges is ignored. Limits: matching is on names only; whether a layer range exceeds the model
//! is not an error unless the whole selector then matches nothing (`select`).

use crate::error::{Error, Result};
use crate::taxonomy::{parse_name, ModuleKind, Param, TensorName};
use regex::Regex;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

/// Named sets of module kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    /// q, k, v, o and the q/k norms: everything under `self_attn`.
    Attn,
    /// q, k and v projections.
    Qkv,
    /// gate, up and down projections.
    Mlp,
    /// input_norm, post_attn_norm, q_norm, k_norm, final_norm.
    Norms,
    /// Every tensor, `other` ones included.
    All,
}

impl Group {
    pub const ALL: [Group; 5] = [Group::Attn, Group::Qkv, Group::Mlp, Group::Norms, Group::All];

    pub fn name(self) -> &'static str {
        match self {
            Group::Attn => "attn",
            Group::Qkv => "qkv",
            Group::Mlp => "mlp",
            Group::Norms => "norms",
            Group::All => "all",
        }
    }

    pub fn contains(self, module: ModuleKind) -> bool {
        match self {
            Group::Attn => module.is_attention(),
            Group::Qkv => module.is_qkv(),
            Group::Mlp => module.is_mlp(),
            Group::Norms => module.is_norm(),
            Group::All => true,
        }
    }
}

/// Short names accepted for the projections; `Display` always writes the full name.
const ALIASES: [(&str, ModuleKind); 7] = [
    ("q", ModuleKind::Q),
    ("k", ModuleKind::K),
    ("v", ModuleKind::V),
    ("o", ModuleKind::O),
    ("gate", ModuleKind::Gate),
    ("up", ModuleKind::Up),
    ("down", ModuleKind::Down),
];

/// What a term names.
#[derive(Debug, Clone)]
pub enum Target {
    Module(ModuleKind),
    Group(Group),
    /// `source` as the user wrote it; `regex` is it anchored to the whole name.
    Regex {
        source: String,
        regex: Regex,
    },
}

impl Target {
    fn matches(&self, name: &str, tn: &TensorName) -> bool {
        match self {
            Target::Module(m) => tn.module == *m,
            Target::Group(g) => g.contains(tn.module),
            Target::Regex { regex, .. } => regex.is_match(name),
        }
    }
}

/// One comma-separated piece of a selector.
#[derive(Debug, Clone)]
pub struct Term {
    negated: bool,
    /// Half-open layer ranges; None = no restriction (layered and unlayered tensors alike).
    layers: Option<Vec<Range<usize>>>,
    target: Target,
    /// `.weight` / `.bias` suffix; None = any parameter. Always None for regex targets.
    param: Option<Param>,
}

impl Term {
    pub fn negated(&self) -> bool {
        self.negated
    }
    pub fn layers(&self) -> Option<&[Range<usize>]> {
        self.layers.as_deref()
    }
    pub fn target(&self) -> &Target {
        &self.target
    }
    pub fn param(&self) -> Option<Param> {
        self.param
    }

    /// Whether this term on its own (ignoring `!`) names `name`.
    pub fn matches(&self, name: &str) -> bool {
        self.matches_parsed(name, &parse_name(name))
    }

    fn matches_parsed(&self, name: &str, tn: &TensorName) -> bool {
        let in_layers = match (&self.layers, tn.layer) {
            (None, _) => true,
            (Some(ranges), Some(l)) => ranges.iter().any(|r| r.contains(&l)),
            // A layer range says "inside these blocks": embed, final_norm and lm_head are in none.
            (Some(_), None) => false,
        };
        in_layers && self.param.is_none_or(|p| p == tn.param) && self.target.matches(name, tn)
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.negated {
            f.write_str("!")?;
        }
        if let Some(ranges) = &self.layers {
            write!(f, "layers[{}].", format_ranges(ranges))?;
        }
        match &self.target {
            Target::Module(m) => f.write_str(m.name())?,
            Target::Group(g) => f.write_str(g.name())?,
            Target::Regex { source, .. } => write!(f, "re:{source}")?,
        }
        if let Some(p) = self.param {
            write!(f, ".{}", p.name())?;
        }
        Ok(())
    }
}

/// A parsed selector. Build with `Selector::parse` (or `str::parse`); `Display` writes it back in
/// canonical form (full module names, half-open ranges), which parses to the same selector.
#[derive(Debug, Clone)]
pub struct Selector {
    /// Never empty; a regex term, if any, is the last one.
    terms: Vec<Term>,
}

impl Selector {
    /// Parse a selector. Errors name the selector and the offending piece (and its column where a
    /// piece alone would be ambiguous).
    pub fn parse(s: &str) -> Result<Selector> {
        parse_selector(s).map_err(|msg| Error::Selector(format!("`{s}`: {msg}")))
    }

    /// Restrict every term that has no layer range of its own to `ranges` (what a command's
    /// `--layers 5..30` does: the same as writing `layers[5..30].` before each such term, negative
    /// ones included). A selector of only negative terms also gets its implicit `all` restricted, by
    /// an explicit `layers[R].all` term in front: `!o_proj` with `5..30` selects everything in layers
    /// 5..30 except o_proj, not the embedding and layers 0..5 besides. Terms that already have a range
    /// keep theirs (so calling this twice changes nothing the second time).
    pub fn with_layers(mut self, ranges: &str) -> Result<Selector> {
        let ranges = parse_layer_ranges(ranges)?;
        let negative_only = self.is_negative_only();
        for t in &mut self.terms {
            if t.layers.is_none() {
                t.layers = Some(ranges.clone());
            }
        }
        if negative_only {
            let all = Term { negated: false, layers: Some(ranges), target: Target::Group(Group::All), param: None };
            self.terms.insert(0, all);
        }
        Ok(self)
    }

    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    /// True when no term is positive, so the selection starts from every tensor.
    pub fn is_negative_only(&self) -> bool {
        self.terms.iter().all(|t| t.negated)
    }

    pub fn matches(&self, name: &str) -> bool {
        self.matches_parsed(name, &parse_name(name))
    }

    fn matches_parsed(&self, name: &str, tn: &TensorName) -> bool {
        let (neg, pos): (Vec<&Term>, Vec<&Term>) = self.terms.iter().partition(|t| t.negated);
        let included = pos.is_empty() || pos.iter().any(|t| t.matches_parsed(name, tn));
        included && !neg.iter().any(|t| t.matches_parsed(name, tn))
    }

    /// The names this selector picks, in input order. Matching nothing is an error (a selector that
    /// silently does nothing would make an experiment look like a null result); the message says
    /// which layers and modules the names do have.
    pub fn select<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Result<Vec<&'a str>> {
        let names: Vec<&'a str> = names.into_iter().collect();
        let parsed: Vec<TensorName> = names.iter().map(|n| parse_name(n)).collect();
        let chosen: Vec<&'a str> =
            names.iter().zip(&parsed).filter(|(n, tn)| self.matches_parsed(n, tn)).map(|(n, _)| *n).collect();
        if !chosen.is_empty() {
            return Ok(chosen);
        }
        let positive = names
            .iter()
            .zip(&parsed)
            .filter(|(n, tn)| {
                self.is_negative_only() || self.terms.iter().any(|t| !t.negated && t.matches_parsed(n, tn))
            })
            .count();
        let msg = if positive > 0 {
            format!(
                "`{self}` matches no tensor: {} matched by its positive terms, all removed again by its `!` terms",
                count(positive, "tensor")
            )
        } else {
            format!("`{self}` matches no tensor ({})", model_context(&parsed))
        };
        Err(Error::Selector(msg))
    }

    /// Per term, which of `names` it matches on its own (for negative terms: which it removes), plus
    /// the final selection. Never fails: terms that matched nothing are listed as such
    /// (`Explanation::unmatched`) for callers to warn about, e.g. `lm_head` in a model with tied
    /// embeddings.
    pub fn explain<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Explanation {
        let names: Vec<&'a str> = names.into_iter().collect();
        let parsed: Vec<TensorName> = names.iter().map(|n| parse_name(n)).collect();
        let matched_by = |pred: &dyn Fn(&str, &TensorName) -> bool| -> Vec<String> {
            names.iter().zip(&parsed).filter(|(n, tn)| pred(n, tn)).map(|(n, _)| n.to_string()).collect()
        };
        let mut terms = Vec::new();
        if self.is_negative_only() {
            terms.push(TermMatches {
                term: "all".into(),
                negated: false,
                implicit: true,
                names: matched_by(&|_, _| true),
            });
        }
        for t in &self.terms {
            let names = matched_by(&|n, tn| t.matches_parsed(n, tn));
            terms.push(TermMatches { term: t.to_string(), negated: t.negated, implicit: false, names });
        }
        Explanation {
            selector: self.to_string(),
            total: names.len(),
            terms,
            selected: matched_by(&|n, tn| self.matches_parsed(n, tn)),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{t}")?;
        }
        Ok(())
    }
}

impl FromStr for Selector {
    type Err = Error;
    fn from_str(s: &str) -> Result<Selector> {
        Selector::parse(s)
    }
}

/// What `Selector::explain` found.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The selector, canonical form.
    pub selector: String,
    /// How many names were offered.
    pub total: usize,
    /// One entry per term, in selector order (after an implicit `all` for negative-only selectors).
    pub terms: Vec<TermMatches>,
    /// The final selection, in input order.
    pub selected: Vec<String>,
}

/// The names one term matched on its own.
#[derive(Debug, Clone)]
pub struct TermMatches {
    /// The term, canonical form (with its `!`).
    pub term: String,
    pub negated: bool,
    /// The `all` a selector of only negative terms starts from; not written by the user.
    pub implicit: bool,
    pub names: Vec<String>,
}

impl Explanation {
    /// Terms the user wrote that matched none of the names; callers print these as warnings.
    pub fn unmatched(&self) -> impl Iterator<Item = &TermMatches> + '_ {
        self.terms.iter().filter(|t| !t.implicit && t.names.is_empty())
    }
}

/// One block per term: the term, how many tensors it matched (or removed), and those tensors grouped
/// by module and parameter with consecutive layers folded into ranges
/// ("o_proj.weight: layers 5..30 (25 tensors)"). No trailing newline.
impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for t in &self.terms {
            if !first {
                writeln!(f)?;
            }
            first = false;
            let n = count(t.names.len(), "tensor");
            if t.names.is_empty() {
                write!(f, "  {}: matched nothing", t.term)?;
            } else if t.implicit {
                // Listing every tensor of the model would bury the terms that matter.
                write!(f, "  all (implicit, the selector has only `!` terms): {n}")?;
                continue;
            } else if t.negated {
                write!(f, "  {}: removes {n}", t.term)?;
            } else {
                write!(f, "  {}: {n}", t.term)?;
            }
            for line in group_names(&t.names) {
                write!(f, "\n    {line}")?;
            }
        }
        Ok(())
    }
}

/// Parse `5..30`, `0..=3,10`, `7`: comma-separated layer ranges, returned half-open. Empty or
/// reversed ranges are errors (they are always typos, and would silently select nothing).
pub fn parse_layer_ranges(s: &str) -> Result<Vec<Range<usize>>> {
    parse_ranges(s).map_err(Error::Selector)
}

fn parse_ranges(s: &str) -> std::result::Result<Vec<Range<usize>>, String> {
    const FORMS: &str = "write N, N..M (M excluded) or N..=M, comma-separated";
    if s.trim().is_empty() {
        return Err(format!("empty layer range list ({FORMS})"));
    }
    let number = |whole: &str, x: &str| -> std::result::Result<usize, String> {
        let x = x.trim();
        let digits = !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
        match x.parse::<usize>() {
            Ok(n) if digits => Ok(n),
            _ => Err(format!("bad layer range `{whole}`: `{x}` is not a layer number ({FORMS})")),
        }
    };
    let mut out = Vec::new();
    for part in s.split(',') {
        let p = part.trim();
        if p.is_empty() {
            return Err(format!("empty layer range in `{s}` ({FORMS})"));
        }
        let range = if let Some((a, b)) = p.split_once("..=") {
            let (a, b) = (number(p, a)?, number(p, b)?);
            if b < a {
                return Err(format!("bad layer range `{p}`: it is empty, the end comes before the start"));
            }
            // b + 1 overflows only for usize::MAX, which is no layer any model has.
            a..b.checked_add(1).ok_or_else(|| format!("bad layer range `{p}`: too large"))?
        } else if let Some((a, b)) = p.split_once("..") {
            let (a, b) = (number(p, a)?, number(p, b)?);
            if b <= a {
                return Err(format!(
                    "bad layer range `{p}`: it is empty, the end must be greater than the start (M is excluded in N..M)"
                ));
            }
            a..b
        } else {
            let n = number(p, p)?;
            n..n.checked_add(1).ok_or_else(|| format!("bad layer range `{p}`: too large"))?
        };
        out.push(range);
    }
    Ok(out)
}

/// `0..30`, `5`, `0..2,5,7..30`: the canonical writing of half-open ranges.
fn format_ranges(ranges: &[Range<usize>]) -> String {
    let parts: Vec<String> = ranges
        .iter()
        .map(|r| if r.end - r.start == 1 { r.start.to_string() } else { format!("{}..{}", r.start, r.end) })
        .collect();
    parts.join(",")
}

fn parse_selector(s: &str) -> std::result::Result<Selector, String> {
    if s.trim().is_empty() {
        return Err("empty selector; give at least one term, e.g. `o_proj` or `layers[5..30].mlp`".into());
    }
    let mut terms = Vec::new();
    let mut pos = 0;
    loop {
        let (term, end) = parse_term(s, pos)?;
        terms.push(term);
        if end >= s.len() {
            break;
        }
        pos = end + 1; // past the comma
    }
    Ok(Selector { terms })
}

/// 1-based character column of byte offset `i`, for error messages.
fn column(s: &str, i: usize) -> usize {
    s[..i].chars().count() + 1
}

fn skip_ws(s: &str, mut i: usize) -> usize {
    while let Some(c) = s[i..].chars().next().filter(|c| c.is_whitespace()) {
        i += c.len_utf8();
    }
    i
}

/// Parse the term starting at byte `start`; returns it and the byte offset of the comma that ends
/// it (or `s.len()`).
fn parse_term(s: &str, start: usize) -> std::result::Result<(Term, usize), String> {
    let at_end = |i: usize| i >= s.len() || s[i..].starts_with(',');
    let mut i = skip_ws(s, start);
    if at_end(i) {
        return Err(format!("empty term at column {} (a comma at the start or end, or two in a row)", column(s, i)));
    }
    let negated = s[i..].starts_with('!');
    if negated {
        i = skip_ws(s, i + 1);
        if at_end(i) {
            return Err(format!("`!` at column {} is not followed by a module", column(s, i)));
        }
        if s[i..].starts_with('!') {
            return Err(format!("`!` given twice at column {} (a term is either removed or not)", column(s, i)));
        }
    }
    let layers = if s[i..].starts_with("layers[") {
        let open = i + "layers[".len();
        // The first `]` closes the range list; a `[` before it means this one was never closed.
        let close = match s[open..].find(']') {
            Some(c) if !s[open..open + c].contains('[') => open + c,
            _ => return Err(format!("unterminated `layers[` at column {} (missing `]`)", column(s, i))),
        };
        let inner = &s[open..close];
        let ranges = parse_ranges(inner)?;
        i = close + 1;
        if !s[i..].starts_with('.') {
            return Err(format!(
                "`layers[{inner}]` must be followed by `.` and a module or group, e.g. `layers[{inner}].mlp` or `layers[{inner}].all`"
            ));
        }
        i = skip_ws(s, i + 1);
        Some(ranges)
    } else {
        None
    };
    if let Some(source) = s[i..].strip_prefix("re:") {
        let source = source.trim_end();
        let regex = compile_regex(source)?;
        return Ok((
            Term { negated, layers, target: Target::Regex { source: source.to_string(), regex }, param: None },
            s.len(),
        ));
    }
    let end = s[i..].find(',').map_or(s.len(), |e| i + e);
    let token = s[i..end].trim();
    if token.is_empty() {
        return Err(format!("missing module after `layers[...].` at column {}", column(s, i)));
    }
    let (target, param) = parse_target(token)?;
    Ok((Term { negated, layers, target, param }, end))
}

fn compile_regex(source: &str) -> std::result::Result<Regex, String> {
    if source.is_empty() {
        return Err("empty regex after `re:`".into());
    }
    // Compiling the pattern alone first rejects unbalanced input such as `a)|(b`, which would
    // otherwise change meaning once wrapped in the anchoring group below.
    Regex::new(source).map_err(|e| format!("invalid regex `{source}`: {}", one_line(&e)))?;
    Regex::new(&format!("^(?:{source})$")).map_err(|e| format!("invalid regex `{source}`: {}", one_line(&e)))
}

/// The regex crate's syntax errors span several lines (pattern, caret, message); the CLI prints one.
fn one_line(e: &regex::Error) -> String {
    let text = e.to_string();
    match text.lines().find_map(|l| l.trim().strip_prefix("error: ")) {
        Some(msg) => msg.to_string(),
        None => text.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

fn lookup(word: &str) -> Option<Target> {
    if let Some(m) = ModuleKind::from_name(word) {
        return Some(Target::Module(m));
    }
    if let Some((_, m)) = ALIASES.iter().find(|(a, _)| *a == word) {
        return Some(Target::Module(*m));
    }
    Group::ALL.into_iter().find(|g| g.name() == word).map(Target::Group)
}

/// `o_proj`, `mlp.bias`, `q.weight` -> target and optional parameter.
fn parse_target(token: &str) -> std::result::Result<(Target, Option<Param>), String> {
    let (head, suffix) = match token.split_once('.') {
        Some((h, p)) => (h, Some(p)),
        None => (token, None),
    };
    let Some(target) = lookup(head) else {
        return Err(unknown_module(head, token));
    };
    let param = match suffix {
        None => None,
        Some("weight") => Some(Param::Weight),
        Some("bias") => Some(Param::Bias),
        Some(other) => {
            return Err(format!(
                "unknown parameter `.{other}` in `{token}` (only `.weight` or `.bias` may follow a module)"
            ))
        }
    };
    Ok((target, param))
}

fn unknown_module(head: &str, token: &str) -> String {
    let modules: Vec<&str> = ModuleKind::ALL.iter().map(|m| m.name()).collect();
    let aliases: Vec<&str> = ALIASES.iter().map(|(a, _)| *a).collect();
    let groups: Vec<&str> = Group::ALL.iter().map(|g| g.name()).collect();
    let hint = if token.contains('[') {
        " — layer ranges are written `layers[5..30].module`".to_string()
    } else if token.starts_with("model.") || token.contains("layers.") {
        " — to match full tensor names use `re:`, e.g. `re:model\\.layers\\.3\\..*`".to_string()
    } else {
        suggest(head).map_or(String::new(), |s| format!(" — did you mean `{s}`?"))
    };
    format!(
        "unknown module `{head}`{hint} (known: {}; aliases {}; groups {}; or re:REGEX)",
        modules.join(", "),
        aliases.join(", "),
        groups.join(", ")
    )
}

/// The closest known word, for typos (`o_prj`) and Hugging Face spellings (`input_layernorm`).
fn suggest(word: &str) -> Option<&'static str> {
    const HF_NAMES: [(&str, &str); 6] = [
        ("input_layernorm", "input_norm"),
        ("post_attention_layernorm", "post_attn_norm"),
        ("embed_tokens", "embed"),
        ("norm", "final_norm"),
        ("self_attn", "attn"),
        ("layers", "all"),
    ];
    if let Some((_, s)) = HF_NAMES.iter().find(|(hf, _)| *hf == word) {
        return Some(s);
    }
    let known = ModuleKind::ALL
        .iter()
        .map(|m| m.name())
        .chain(ALIASES.iter().map(|(a, _)| *a))
        .chain(Group::ALL.iter().map(|g| g.name()));
    let (best, d) = known.map(|k| (k, edit_distance(word, k))).min_by_key(|&(_, d)| d)?;
    (d <= 2 && d < word.chars().count()).then_some(best)
}

/// Edit distance counting a swap of two neighbours as one edit (optimal string alignment), since
/// swapped letters (`mpl`) are the commonest typo.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // d[i][j] = distance between a[..i] and b[..j]
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, v) in d[0].iter_mut().enumerate() {
        *v = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j - 1] + cost).min(d[i - 1][j] + 1).min(d[i][j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Sorted layer indices folded into runs: [0,1,2,5,7,8] -> "0..3, 5, 7..9".
fn layer_runs(layers: &[usize]) -> String {
    let mut ls = layers.to_vec();
    ls.sort_unstable();
    ls.dedup();
    let mut runs: Vec<Range<usize>> = Vec::new();
    for l in ls {
        match runs.last_mut() {
            // Saturating: a tensor file may name any layer number, even usize::MAX.
            Some(r) if r.end == l => r.end = l.saturating_add(1),
            _ => runs.push(l..l.saturating_add(1)),
        }
    }
    format_ranges(&runs).replace(',', ", ")
}

/// Lines describing `names`: layered tensors grouped by module and parameter
/// ("o_proj.weight: layers 5..30 (25 tensors)"), the rest by their own name, in first-seen order.
fn group_names(names: &[String]) -> Vec<String> {
    // (label, layers of the group; empty for an unlayered tensor shown by name)
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for name in names {
        let tn = parse_name(name);
        let Some(layer) = tn.layer else {
            groups.push((name.clone(), Vec::new()));
            continue;
        };
        let label = if tn.module == ModuleKind::Other {
            // Unknown layout: show the name itself with its layer index starred.
            let mut segs: Vec<&str> = name.split('.').collect();
            if let Some(i) = segs.windows(2).position(|w| w[0] == "layers" && w[1].parse() == Ok(layer)) {
                segs[i + 1] = "*";
            }
            segs.join(".")
        } else {
            let last = name.rsplit('.').next().unwrap_or(name);
            format!("{}.{last}", tn.module.name())
        };
        match groups.iter_mut().find(|(l, ls)| *l == label && !ls.is_empty()) {
            Some((_, ls)) => ls.push(layer),
            None => groups.push((label, vec![layer])),
        }
    }
    groups
        .into_iter()
        .map(|(label, layers)| match layers.len() {
            0 => label,
            1 => format!("{label}: layer {}", layers[0]),
            n => format!("{label}: layers {} ({})", layer_runs(&layers), count(n, "tensor")),
        })
        .collect()
}

/// "the model has layers 0..30; its modules are embed, q_proj, …" for matched-nothing errors.
fn model_context(parsed: &[TensorName]) -> String {
    if parsed.is_empty() {
        return "there are no tensors to select from".into();
    }
    let layers: Vec<usize> = parsed.iter().filter_map(|t| t.layer).collect();
    let mut modules: Vec<ModuleKind> = parsed.iter().map(|t| t.module).collect();
    modules.sort();
    modules.dedup();
    let modules: Vec<&str> = modules.iter().map(|m| m.name()).collect();
    let layers = if layers.is_empty() { "no layers".to_string() } else { format!("layers {}", layer_runs(&layers)) };
    format!("the model has {layers}; its modules are {}", modules.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        Selector::parse(s).unwrap_err().to_string()
    }

    #[test]
    fn layer_ranges_all_forms() {
        assert_eq!(parse_layer_ranges("5..30").unwrap(), vec![5..30]);
        assert_eq!(parse_layer_ranges("0..=3, 10").unwrap(), vec![0..4, 10..11]);
        assert_eq!(parse_layer_ranges(" 7 ").unwrap(), vec![7..8]);
        assert_eq!(parse_layer_ranges("3..=3").unwrap(), vec![3..4]);
    }

    #[test]
    fn layer_ranges_reject_empty_reversed_and_non_numbers() {
        for bad in [
            "",
            " ",
            "5..3",
            "5..5",
            "4..=3",
            "a..3",
            "3..",
            "..3",
            "+3",
            "-1",
            "1,,2",
            "1..2..3",
            "99999999999999999999999",
        ] {
            let e = parse_layer_ranges(bad).unwrap_err();
            assert!(matches!(e, Error::Selector(_)), "{bad}: {e}");
        }
        assert!(parse_layer_ranges("5..3").unwrap_err().to_string().contains("bad layer range `5..3`"));
        assert!(parse_layer_ranges(&format!("0..={}", usize::MAX)).unwrap_err().to_string().contains("too large"));
    }

    #[test]
    fn ranges_display_half_open_and_single() {
        assert_eq!(format_ranges(&[0..2, 5..6, 7..30]), "0..2,5,7..30");
        assert_eq!(layer_runs(&[7, 0, 1, 2, 5, 8]), "0..3, 5, 7..9");
        // A hostile layer number in a file must not overflow.
        let _ = layer_runs(&[usize::MAX - 1, usize::MAX]);
    }

    #[test]
    fn commas_inside_layer_brackets_do_not_split_terms() {
        let s = Selector::parse("layers[0..2,5].o,k").unwrap();
        assert_eq!(s.terms().len(), 2);
        assert_eq!(s.terms()[0].layers().unwrap(), &[0..2, 5..6]);
        assert_eq!(s.to_string(), "layers[0..2,5].o_proj,k_proj");
    }

    #[test]
    fn regex_term_runs_to_the_end_of_the_selector() {
        let s = Selector::parse("o_proj, re:.*\\.(q|k)_proj\\.(weight|bias),x").unwrap();
        assert_eq!(s.terms().len(), 2);
        match s.terms()[1].target() {
            Target::Regex { source, .. } => assert_eq!(source, ".*\\.(q|k)_proj\\.(weight|bias),x"),
            t => panic!("{t:?}"),
        }
    }

    #[test]
    fn regex_is_anchored_to_the_whole_name() {
        let s = Selector::parse("re:bias").unwrap();
        assert!(!s.matches("model.layers.0.self_attn.q_proj.bias"));
        let s = Selector::parse("re:.*bias").unwrap();
        assert!(s.matches("model.layers.0.self_attn.q_proj.bias"));
        // Alternation stays inside the anchors.
        let s = Selector::parse("re:lm_head.weight|model.norm.weight").unwrap();
        assert!(s.matches("lm_head.weight") && s.matches("model.norm.weight"));
        assert!(!s.matches("lm_head.weight.x"));
    }

    #[test]
    fn regex_that_would_escape_its_anchors_is_rejected() {
        assert!(err("re:a)|(b").contains("invalid regex `a)|(b`"));
    }

    #[test]
    fn regex_errors_are_one_line() {
        let e = err("re:(");
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.contains("invalid regex `(`"), "{e}");
    }

    #[test]
    fn typos_get_a_suggestion() {
        assert!(err("o_prj").contains("did you mean `o_proj`?"));
        assert!(err("input_layernorm").contains("did you mean `input_norm`?"));
        assert!(err("mpl").contains("did you mean `mlp`?"));
        assert!(!err("zzzzzz").contains("did you mean"));
        assert!(err("model.layers.3.self_attn.o_proj.weight").contains("use `re:`"));
        assert!(err("layer[3].o_proj").contains("layers[5..30].module"));
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("o_prj", "o_proj"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("mpl", "mlp"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn unicode_in_a_selector_is_an_error_not_a_panic() {
        for s in ["ö", "o_proj,ü", "layers[ä].o", "!é", "layers[0].", "layers[0]", "layers[0]x"] {
            assert!(Selector::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn grouping_folds_layers_and_names_unlayered_tensors() {
        let names: Vec<String> = [
            "model.embed_tokens.weight",
            "model.layers.0.self_attn.o_proj.weight",
            "model.layers.1.self_attn.o_proj.weight",
            "model.layers.3.self_attn.o_proj.weight",
            "model.layers.2.self_attn.rotary_emb.inv_freq",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            group_names(&names),
            [
                "model.embed_tokens.weight",
                "o_proj.weight: layers 0..2, 3 (3 tensors)",
                "model.layers.*.self_attn.rotary_emb.inv_freq: layer 2"
            ]
        );
    }
}
