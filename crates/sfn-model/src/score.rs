//! Scoring a given sequence: the log-probability the model assigns to each of its tokens
//! (teacher forcing), with the most likely alternatives. The judge's reference loss and the
//! `logprobs` of `sfn serve` both come from here.

use crate::hooks::Hooks;
use crate::model::{Logits, Model};
use crate::{Error, Result};

/// Positions run through the KV cache at once: bounds the [chunk, vocab] logits held in memory.
const CHUNK: usize = 256;

/// What the model said about one token of a sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    /// log p(token | the tokens before it) (f64: the judge sums thousands of them).
    pub logprob: f64,
    /// The `top` most likely tokens at this position and their log-probabilities, most likely
    /// first.
    pub top: Vec<(u32, f64)>,
}

/// Log-probabilities of `seq[from..]` given what precedes each token, with the `top` most likely
/// tokens at each of those positions. `from` must be at least 1 (the first token has no context)
/// and the sequence must fit the model's positions.
pub fn token_logprobs(model: &Model, seq: &[u32], from: usize, top: usize) -> Result<Vec<TokenLogprob>> {
    if from == 0 || from > seq.len() {
        return Err(Error::input(format!("cannot score from token {from} of a sequence of {}", seq.len())));
    }
    if seq.len() > model.max_positions() {
        return Err(Error::input(format!(
            "a sequence of {} tokens exceeds the model's {} positions",
            seq.len(),
            model.max_positions()
        )));
    }
    let mut out = Vec::with_capacity(seq.len() - from);
    if from == seq.len() {
        return Ok(out);
    }
    let mut cache = model.new_cache(1, seq.len())?;
    let mut hooks = Hooks::new();
    // Position t's logits predict token t + 1; only positions from - 1 .. len - 1 are needed, but
    // everything before them must pass through the cache.
    for (c, chunk) in seq[..seq.len() - 1].chunks(CHUNK).enumerate() {
        let start = c * CHUNK;
        let rows = [chunk.to_vec()];
        let logits = if start == 0 {
            model.prefill(&mut cache, &rows, &mut hooks, Logits::All)?
        } else {
            model.extend(&mut cache, &rows, &mut hooks, Logits::All)?
        };
        if start + chunk.len() < from {
            continue;
        }
        let logits: Vec<Vec<f32>> = logits.squeeze(0)?.to_vec2()?; // [chunk, vocab]
        for (j, row) in logits.iter().enumerate() {
            let next = start + j + 1;
            if next >= from {
                out.push(score_row(row, seq[next], top));
            }
        }
    }
    Ok(out)
}

/// Log-softmax of one row of logits at `token`, and the `top` largest entries.
fn score_row(row: &[f32], token: u32, top: usize) -> TokenLogprob {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let log_z = max + row.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
    let lp = |x: f32| x as f64 - log_z;
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(top + 1);
    if top > 0 {
        // One pass keeping the `top` largest; `top` is small (at most 20 in the server).
        for (i, &x) in row.iter().enumerate() {
            if best.len() == top && x <= best[top - 1].1 {
                continue;
            }
            let at = best.partition_point(|&(_, y)| y >= x);
            best.insert(at, (i as u32, x));
            best.truncate(top);
        }
    }
    TokenLogprob { logprob: lp(row[token as usize]), top: best.into_iter().map(|(i, x)| (i, lp(x))).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_log_softmaxed_and_its_top_entries_sorted() {
        let row = [1.0f32, 3.0, 2.0, 3.0, -1.0];
        let z: f64 = row.iter().map(|&x| (x as f64).exp()).sum::<f64>().ln();
        let s = score_row(&row, 2, 3);
        assert!((s.logprob - (2.0 - z)).abs() < 1e-6);
        let ids: Vec<u32> = s.top.iter().map(|t| t.0).collect();
        assert_eq!(ids, vec![1, 3, 2]);
        assert!((s.top[0].1 - (3.0 - z)).abs() < 1e-6);
        assert!(score_row(&row, 0, 0).top.is_empty());
    }
}
