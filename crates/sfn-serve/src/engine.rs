//! The engine: one thread owns the model and runs requests in batches.
//!
//! Requests from all clients queue here; the engine takes the first, then everything else waiting
//! (up to `max_batch` rows), groups them by decoding settings (one `generate` call decodes a batch
//! with one setting) and decodes each group as one batch, streaming every row's text to its
//! client as it becomes final. Requests that arrive during a batch wait for the next one.
//! Rows that asked for logprobs are scored after their batch: one teacher-forced pass over prompt
//! and output gives the model's log-probability of every token, exactly as a scoring client
//! (lm-evaluation-harness) expects, for prompt and generated tokens alike.

use sfn_model::{generate, token_logprobs, Event, GenerateOptions, Generation, Hooks, Model, StopReason};
use sfn_model::{TokenLogprob, Tokenizer};
use std::sync::{mpsc, Arc};
use tokio::sync::mpsc::UnboundedSender;

/// What a client hears about its row.
#[derive(Debug, Clone)]
pub enum Out {
    Text(String),
    Done { tokens: usize, finish: &'static str, scored: Option<Scored> },
    Failed(String),
}

/// Logprobs of a row: its generated ids (with the stop token that ended it, which has a
/// probability too) and the scores of the tokens from `Score::from` of prompt + generated.
#[derive(Debug, Clone)]
pub struct Scored {
    pub generated: Vec<u32>,
    pub logprobs: Vec<TokenLogprob>,
}

/// What a row wants scored: tokens from position `from` of prompt + output (1 scores the whole
/// prompt too, for echo), with `top` alternatives each.
#[derive(Debug, Clone, Copy)]
pub struct Score {
    pub from: usize,
    pub top: usize,
}

/// One row to decode.
pub struct Job {
    pub ids: Vec<u32>,
    /// Settings; `streams` holds this row's random stream only.
    pub opts: GenerateOptions,
    pub score: Option<Score>,
    pub out: UnboundedSender<Out>,
}

#[derive(Clone)]
pub struct Engine {
    queue: mpsc::Sender<Job>,
}

impl Engine {
    /// Start the engine thread on `model`.
    pub fn start(model: Model, tokenizer: Arc<Tokenizer>, max_batch: usize) -> Engine {
        let (queue, jobs) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sfn-engine".into())
            .spawn(move || run(&model, &tokenizer, &jobs, max_batch.max(1)))
            .expect("cannot start the engine thread");
        Engine { queue }
    }

    pub fn submit(&self, job: Job) -> Result<(), String> {
        self.queue.send(job).map_err(|_| "the engine has stopped".to_string())
    }
}

fn finish(stop: &StopReason) -> &'static str {
    match stop {
        StopReason::StopToken(_) | StopReason::StopString(_) => "stop",
        StopReason::MaxNewTokens | StopReason::ContextFull => "length",
    }
}

fn run(model: &Model, tokenizer: &Tokenizer, jobs: &mpsc::Receiver<Job>, max_batch: usize) {
    while let Ok(first) = jobs.recv() {
        let mut waiting = vec![first];
        while waiting.len() < max_batch {
            match jobs.try_recv() {
                Ok(j) => waiting.push(j),
                Err(_) => break,
            }
        }
        // Rows whose client left need no decoding.
        waiting.retain(|j| !j.out.is_closed());
        while !waiting.is_empty() {
            let key = GenerateOptions { streams: vec![], ..waiting[0].opts.clone() };
            let (group, rest): (Vec<Job>, Vec<Job>) =
                waiting.into_iter().partition(|j| GenerateOptions { streams: vec![], ..j.opts.clone() } == key);
            waiting = rest;
            decode(model, tokenizer, &group, key);
        }
    }
}

fn decode(model: &Model, tokenizer: &Tokenizer, group: &[Job], mut opts: GenerateOptions) {
    opts.streams = group.iter().map(|j| j.opts.streams.first().copied().unwrap_or(0)).collect();
    let prompts: Vec<Vec<u32>> = group.iter().map(|j| j.ids.clone()).collect();
    let result = generate(model, Some(tokenizer), &prompts, &opts, &mut Hooks::new(), &mut |row, event| {
        let job = &group[row];
        let _ = match event {
            Event::Text(t) => job.out.send(Out::Text(t.to_string())),
            // A row to score is done once scored, below.
            Event::Done(_) if job.score.is_some() => Ok(()),
            Event::Done(g) => job.out.send(Out::Done { tokens: g.tokens.len(), finish: finish(&g.stop), scored: None }),
        };
    });
    match result {
        Ok(generations) => {
            for (job, g) in group.iter().zip(&generations) {
                if let Some(score) = job.score {
                    let _ = job.out.send(match scored(model, job, g, score) {
                        Ok(s) => Out::Done { tokens: g.tokens.len(), finish: finish(&g.stop), scored: Some(s) },
                        Err(e) => Out::Failed(e.to_string()),
                    });
                }
            }
        }
        Err(e) => {
            for j in group {
                let _ = j.out.send(Out::Failed(e.to_string()));
            }
        }
    }
}

fn scored(model: &Model, job: &Job, g: &Generation, score: Score) -> sfn_model::Result<Scored> {
    let mut generated = g.tokens.clone();
    if let StopReason::StopToken(id) = g.stop {
        generated.push(id);
    }
    let seq: Vec<u32> = job.ids.iter().chain(&generated).copied().collect();
    // A stop token that filled the last position cannot be scored; it is left out.
    let seq = &seq[..seq.len().min(model.max_positions())];
    generated.truncate(seq.len() - job.ids.len());
    Ok(Scored { logprobs: token_logprobs(model, seq, score.from, score.top)?, generated })
}
