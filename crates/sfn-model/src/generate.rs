//! Text generation: prefill the prompts (a batch, left-padded) into a KV cache sized up front, then
//! one token per row per step until every row has stopped.
//!
//! Decoding is greedy (temperature 0) or sampled with temperature, top-k and top-p from a seeded
//! generator (each row its own stream, so a seed reproduces a run). A row stops at a stop token
//! (not included in its output), at a stop string (text cut before it; needs a tokenizer), at
//! `max_new_tokens`, or when the context is full. Text is streamed through a callback as it
//! becomes final: held back while it ends in an incomplete UTF-8 sequence or could be the start
//! of a stop string. The same callback hears when a row stops, with its finished generation, so
//! a caller can keep each row's result while the rest of the batch is still decoding. Hooks apply
//! on every step, as in `Model::extend`.

use crate::error::{Error, Result};
use crate::hooks::Hooks;
use crate::model::{Logits, Model};
use crate::tokenizer::Tokenizer;
use sfn_run::SplitMix64;

/// How the next token is chosen: the one sampling-settings type of sfn (generation, evaluation
/// configs and their result files). Recorded as `{"method": "greedy"}` or `{"method": "sample",
/// "temperature", "top_k", "top_p", "seed"}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(into = "SamplingRecord", try_from = "SamplingRecord")]
pub struct Sampling {
    /// 0 = greedy (argmax).
    pub temperature: f64,
    /// Keep only the k most likely tokens (None: all).
    pub top_k: Option<usize>,
    /// Keep the smallest set of most likely tokens whose probability reaches p (None or 1: all).
    pub top_p: Option<f64>,
    pub seed: u64,
}

impl Sampling {
    pub fn greedy() -> Sampling {
        Sampling { temperature: 0.0, top_k: None, top_p: None, seed: 0 }
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }

    /// Settings that make sense: temperature ≥ 0 (0 = greedy, where top-k/top-p would be
    /// ignored, so they are refused), top-k ≥ 1, top-p in (0, 1].
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(Error::input(format!("temperature must be ≥ 0, got {}", self.temperature)));
        }
        if self.is_greedy() && (self.top_k.is_some() || self.top_p.is_some()) {
            return Err(Error::input("top-k/top-p need a temperature > 0 (0 is greedy)"));
        }
        if self.top_k == Some(0) {
            return Err(Error::input("top-k must be at least 1"));
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(Error::input(format!("top-p must be in (0, 1], got {p}")));
            }
        }
        Ok(())
    }
}

/// How `Sampling` is written to results files (a greedy run has no seed to record).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
enum SamplingRecord {
    Greedy,
    Sample { temperature: f64, top_k: Option<usize>, top_p: Option<f64>, seed: u64 },
}

impl From<Sampling> for SamplingRecord {
    fn from(s: Sampling) -> SamplingRecord {
        if s.is_greedy() {
            SamplingRecord::Greedy
        } else {
            SamplingRecord::Sample { temperature: s.temperature, top_k: s.top_k, top_p: s.top_p, seed: s.seed }
        }
    }
}

impl TryFrom<SamplingRecord> for Sampling {
    type Error = String;
    fn try_from(r: SamplingRecord) -> std::result::Result<Sampling, String> {
        match r {
            SamplingRecord::Greedy => Ok(Sampling::greedy()),
            SamplingRecord::Sample { temperature, top_k, top_p, seed } if temperature > 0.0 => {
                Ok(Sampling { temperature, top_k, top_p, seed })
            }
            SamplingRecord::Sample { temperature, .. } => {
                Err(format!("method sample needs a temperature > 0, got {temperature}"))
            }
        }
    }
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling::greedy()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    /// Token ids that end a row (typically the tokenizer's `eos_ids()`).
    pub stop_tokens: Vec<u32>,
    /// Strings that end a row; its text is cut before the first one.
    pub stop_strings: Vec<String>,
    /// Leave special tokens out of the text.
    pub skip_special: bool,
    /// The random stream of each row: a row's draws depend only on (seed, stream), not on the
    /// batch it runs in, so a sample can be reproduced alone. Empty: each row's index.
    pub streams: Vec<u64>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_new_tokens: 128,
            sampling: Sampling::greedy(),
            stop_tokens: vec![],
            stop_strings: vec![],
            skip_special: true,
            streams: vec![],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    MaxNewTokens,
    StopToken(u32),
    StopString(String),
    /// The model's positions (or the cache) ran out.
    ContextFull,
}

/// What one prompt produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// New tokens, without the stop token.
    pub tokens: Vec<u32>,
    /// Their text (empty without a tokenizer), cut before a stop string.
    pub text: String,
    pub stop: StopReason,
}

/// What `generate` reports about a row as it goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event<'a> {
    /// More of the row's text became final (concatenated, the pieces are the row's `text`).
    Text(&'a str),
    /// The row stopped: this is its result, as also returned at the end. Sent once per row,
    /// after its last text.
    Done(&'a Generation),
}

/// Where the time of a `generate` call went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerateStats {
    /// Prompt tokens run (padding not counted) and the seconds the prefill took.
    pub prefill_tokens: usize,
    pub prefill_seconds: f64,
    /// Decoding steps after the prefill (one token per row each) and their seconds.
    pub decode_steps: usize,
    pub decode_seconds: f64,
    /// Bytes of the KV cache allocated for the call.
    pub kv_cache_bytes: usize,
}

/// Generate continuations of `prompts` (token ids, any lengths). `on_event(row, event)` hears
/// each row's text as it becomes final and its result when it stops.
pub fn generate(
    model: &Model,
    tokenizer: Option<&Tokenizer>,
    prompts: &[Vec<u32>],
    opts: &GenerateOptions,
    hooks: &mut Hooks,
    on_event: &mut dyn FnMut(usize, Event),
) -> Result<Vec<Generation>> {
    Ok(generate_with_stats(model, tokenizer, prompts, opts, hooks, on_event)?.0)
}

/// `generate`, also reporting prefill and decoding times.
pub fn generate_with_stats(
    model: &Model,
    tokenizer: Option<&Tokenizer>,
    prompts: &[Vec<u32>],
    opts: &GenerateOptions,
    hooks: &mut Hooks,
    on_event: &mut dyn FnMut(usize, Event),
) -> Result<(Vec<Generation>, GenerateStats)> {
    let mut stats = GenerateStats::default();
    if prompts.is_empty() {
        return Ok((vec![], stats));
    }
    if !opts.stop_strings.is_empty() && tokenizer.is_none() {
        return Err(Error::input("stop strings need a tokenizer"));
    }
    if opts.stop_strings.iter().any(String::is_empty) {
        return Err(Error::input("an empty stop string would stop at once"));
    }
    opts.sampling.validate()?;
    if !opts.streams.is_empty() && opts.streams.len() != prompts.len() {
        return Err(Error::input(format!("{} random streams for {} prompts", opts.streams.len(), prompts.len())));
    }
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let limit = model.max_positions();
    if longest >= limit {
        return Err(Error::input(format!(
            "a prompt of {longest} tokens leaves no room in the model's {limit} positions"
        )));
    }
    let capacity = (longest + opts.max_new_tokens).min(limit);
    let mut cache = model.new_cache(prompts.len(), capacity)?;
    stats.kv_cache_bytes = cache.nbytes();
    let stream = |i: usize| opts.streams.get(i).copied().unwrap_or(i as u64);
    let mut rows: Vec<Row> = (0..prompts.len()).map(|i| Row::new(opts.sampling.seed, stream(i))).collect();
    if opts.max_new_tokens == 0 {
        for row in rows.iter_mut() {
            row.stop = Some(StopReason::MaxNewTokens);
        }
        report_done(&mut rows, on_event);
        return Ok((rows.into_iter().map(Row::finish).collect(), stats));
    }
    let t = std::time::Instant::now();
    let mut logits = model.prefill(&mut cache, prompts, hooks, Logits::Last)?; // [b, vocab]
    let mut l: Vec<Vec<f32>> = logits.to_vec2()?;
    stats.prefill_seconds = t.elapsed().as_secs_f64();
    stats.prefill_tokens = prompts.iter().map(Vec::len).sum();
    let t = std::time::Instant::now();
    loop {
        let mut next = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter_mut().enumerate() {
            if row.stop.is_some() {
                next.push(row.last);
                continue;
            }
            let tok = row.sample(&l[i], &opts.sampling);
            row.last = tok;
            next.push(tok);
            if opts.stop_tokens.contains(&tok) {
                row.stop = Some(StopReason::StopToken(tok));
                row.flush(i, tokenizer, opts, true, on_event)?;
                continue;
            }
            row.tokens.push(tok);
            row.flush(i, tokenizer, opts, false, on_event)?;
            if row.stop.is_none() && row.tokens.len() >= opts.max_new_tokens {
                row.stop = Some(StopReason::MaxNewTokens);
                row.flush(i, tokenizer, opts, true, on_event)?;
            }
        }
        if cache.len() >= cache.capacity() {
            for (i, row) in rows.iter_mut().enumerate().filter(|(_, r)| r.stop.is_none()) {
                row.stop = Some(StopReason::ContextFull);
                row.flush(i, tokenizer, opts, true, on_event)?;
            }
        }
        report_done(&mut rows, on_event);
        if rows.iter().all(|r| r.stop.is_some()) {
            break;
        }
        let step: Vec<Vec<u32>> = next.iter().map(|&t| vec![t]).collect();
        logits = model.extend(&mut cache, &step, hooks, Logits::Last)?;
        l = logits.to_vec2()?;
        stats.decode_steps += 1;
    }
    stats.decode_seconds = t.elapsed().as_secs_f64();
    Ok((rows.into_iter().map(Row::finish).collect(), stats))
}

/// Send `Done` for the rows that stopped since the last call.
fn report_done(rows: &mut [Row], on_event: &mut dyn FnMut(usize, Event)) {
    for (i, row) in rows.iter_mut().enumerate() {
        if let (Some(stop), false) = (&row.stop, row.reported) {
            row.reported = true;
            let g = Generation { tokens: row.tokens.clone(), text: row.text.clone(), stop: stop.clone() };
            on_event(i, Event::Done(&g));
        }
    }
}

/// One prompt's progress.
struct Row {
    tokens: Vec<u32>,
    last: u32,
    stop: Option<StopReason>,
    /// Whether `Done` was sent.
    reported: bool,
    /// Final text so far, and how much of it was handed to the callback.
    text: String,
    emitted: usize,
    rng: SplitMix64,
}

impl Row {
    fn new(seed: u64, stream: u64) -> Row {
        Row {
            tokens: vec![],
            last: 0,
            stop: None,
            reported: false,
            text: String::new(),
            emitted: 0,
            rng: SplitMix64::with_stream(seed, stream),
        }
    }

    /// The result of a stopped row.
    fn finish(self) -> Generation {
        Generation { tokens: self.tokens, text: self.text, stop: self.stop.unwrap_or(StopReason::MaxNewTokens) }
    }

    fn sample(&mut self, logits: &[f32], s: &Sampling) -> u32 {
        if s.temperature == 0.0 {
            return argmax(logits);
        }
        sample(logits, s, self.rng.next_f64())
    }

    /// Decode, look for stop strings, and emit what is final (everything when `done`).
    fn flush(
        &mut self,
        row: usize,
        tok: Option<&Tokenizer>,
        opts: &GenerateOptions,
        done: bool,
        on_event: &mut dyn FnMut(usize, Event),
    ) -> Result<()> {
        let Some(tok) = tok else { return Ok(()) };
        let mut text = tok.decode(&self.tokens, opts.skip_special)?;
        let mut end = text.len();
        // A stop string anywhere in the text ends the row there.
        if let Some((at, s)) =
            opts.stop_strings.iter().filter_map(|s| text.find(s.as_str()).map(|at| (at, s))).min_by_key(|(at, _)| *at)
        {
            let s = s.clone();
            text.truncate(at);
            end = at;
            self.stop = Some(StopReason::StopString(s));
        } else if !done {
            // Hold back an incomplete character and a possible start of a stop string.
            if text.ends_with('\u{FFFD}') {
                end = text.len() - '\u{FFFD}'.len_utf8();
            }
            let visible = end;
            for s in &opts.stop_strings {
                for k in (1..s.len()).rev() {
                    if s.is_char_boundary(k) && text[..visible].ends_with(&s[..k]) {
                        end = end.min(visible - k);
                        break;
                    }
                }
            }
        }
        let end = end.max(self.emitted.min(text.len()));
        if end > self.emitted && text.is_char_boundary(self.emitted) && text.is_char_boundary(end) {
            on_event(row, Event::Text(&text[self.emitted..end]));
            self.emitted = end;
        }
        self.text = text;
        Ok(())
    }
}

/// Index of the largest logit (the first one on ties, as torch.argmax).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Draw from softmax(logits / T) restricted by top-k and top-p, using the uniform number `u` in [0, 1).
pub fn sample(logits: &[f32], s: &Sampling, u: f64) -> u32 {
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    if let Some(k) = s.top_k.filter(|&k| k > 0) {
        idx.truncate(k);
    }
    let max = logits[idx[0]] as f64;
    let mut p: Vec<f64> = idx.iter().map(|&i| ((logits[i] as f64 - max) / s.temperature).exp()).collect();
    let total: f64 = p.iter().sum();
    p.iter_mut().for_each(|x| *x /= total);
    if let Some(top_p) = s.top_p {
        let mut acc = 0.0;
        let mut keep = p.len();
        for (j, x) in p.iter().enumerate() {
            acc += x;
            if acc >= top_p {
                keep = j + 1;
                break;
            }
        }
        p.truncate(keep);
        idx.truncate(keep);
        let total: f64 = p.iter().sum();
        p.iter_mut().for_each(|x| *x /= total);
    }
    let mut acc = 0.0;
    for (j, x) in p.iter().enumerate() {
        acc += x;
        if u < acc {
            return idx[j] as u32;
        }
    }
    idx[p.len() - 1] as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_of_ties() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, -1.0]), 1);
    }

    #[test]
    fn top_k_one_and_tiny_top_p_are_greedy() {
        let l = [0.1f32, 2.0, 1.9, -3.0];
        for u in [0.0, 0.5, 0.999] {
            let s = Sampling { temperature: 1.0, top_k: Some(1), top_p: None, seed: 0 };
            assert_eq!(sample(&l, &s, u), 1);
            let s = Sampling { temperature: 1.0, top_k: None, top_p: Some(1e-6), seed: 0 };
            assert_eq!(sample(&l, &s, u), 1);
        }
    }

    #[test]
    fn sampling_frequencies_follow_the_softmax() {
        let l = [0.0f32, (2.0f32).ln(), (7.0f32).ln()]; // probabilities 0.1, 0.2, 0.7
        let s = Sampling { temperature: 1.0, top_k: None, top_p: None, seed: 0 };
        let mut rng = SplitMix64::with_stream(42, 0);
        let mut counts = [0usize; 3];
        let n = 100_000;
        for _ in 0..n {
            counts[sample(&l, &s, rng.next_f64()) as usize] += 1;
        }
        let f: Vec<f64> = counts.iter().map(|&c| c as f64 / n as f64).collect();
        assert!((f[0] - 0.1).abs() < 0.01 && (f[1] - 0.2).abs() < 0.01 && (f[2] - 0.7).abs() < 0.01, "{f:?}");
        // top_p 0.75 keeps {0.7, 0.2} → 7/9 and 2/9.
        let s = Sampling { top_p: Some(0.75), ..s };
        let mut counts = [0usize; 3];
        for _ in 0..n {
            counts[sample(&l, &s, rng.next_f64()) as usize] += 1;
        }
        assert_eq!(counts[0], 0);
        assert!((counts[2] as f64 / n as f64 - 7.0 / 9.0).abs() < 0.01, "{counts:?}");
    }

    #[test]
    fn bad_sampling_settings_are_errors() {
        assert!(Sampling { temperature: -1.0, ..Sampling::greedy() }.validate().is_err());
        assert!(Sampling { top_p: Some(0.0), temperature: 1.0, ..Sampling::greedy() }.validate().is_err());
        assert!(Sampling { temperature: f64::NAN, ..Sampling::greedy() }.validate().is_err());
        assert!(Sampling { top_k: Some(5), ..Sampling::greedy() }.validate().is_err());
        assert!(Sampling { top_k: Some(0), temperature: 1.0, ..Sampling::greedy() }.validate().is_err());
    }

    #[test]
    fn sampling_is_recorded_greedy_or_with_its_seed() {
        assert_eq!(serde_json::to_string(&Sampling::greedy()).unwrap(), r#"{"method":"greedy"}"#);
        let s = Sampling { temperature: 0.6, top_k: Some(20), top_p: Some(0.95), seed: 3 };
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains(r#""method":"sample""#), "{json}");
        assert_eq!(serde_json::from_str::<Sampling>(&json).unwrap(), s);
        assert!(serde_json::from_str::<Sampling>(
            r#"{"method":"sample","temperature":0,"top_k":null,"top_p":null,"seed":1}"#
        )
        .is_err());
    }
}
