//! The engine: one thread owns the model and runs requests in batches.
//!
//! Requests from all clients queue here; the engine takes the first, then everything else waiting
//! (up to `max_batch` rows), groups them by decoding settings (one `generate` call decodes a batch
//! with one setting) and decodes each group as one batch, streaming every row's text to its
//! client as it becomes final. Requests that arrive during a batch wait for the next one.

use sfn_model::{generate, Event, GenerateOptions, Hooks, Model, StopReason, Tokenizer};
use std::sync::{mpsc, Arc};
use tokio::sync::mpsc::UnboundedSender;

/// What a client hears about its row.
#[derive(Debug, Clone)]
pub enum Out {
    Text(String),
    Done { tokens: usize, finish: &'static str },
    Failed(String),
}

/// One row to decode.
pub struct Job {
    pub ids: Vec<u32>,
    /// Settings; `streams` holds this row's random stream only.
    pub opts: GenerateOptions,
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
        let out = &group[row].out;
        let _ = match event {
            Event::Text(t) => out.send(Out::Text(t.to_string())),
            Event::Done(g) => out.send(Out::Done { tokens: g.tokens.len(), finish: finish(&g.stop) }),
        };
    });
    if let Err(e) = result {
        for j in group {
            let _ = j.out.send(Out::Failed(e.to_string()));
        }
    }
}
