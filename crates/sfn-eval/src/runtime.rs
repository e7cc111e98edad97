//! The sfn-model runtime behind the evaluation seam: [`ModelRunner`] is a [`Generator`] (the model
//! under evaluation) and a [`ReferenceScorer`] (a reference model's mean token loss, the judge's
//! level-I signal). Prompts are turned into tokens here: "generate" prompts are encoded with the
//! tokenizer's special tokens (BOS), "chat" prompts are rendered with the model's own template.
//!
//! Reproducibility: greedy rows do not depend on the batch they run in (left-padded batches give
//! the tokens of single prompts; sfn-model tests it), and a sampled row draws from a random stream
//! named by its task id and sample index, so a resumed or re-batched run makes the same samples.
//!
//! Delivery: a prompt's samples go to the evaluation as soon as all its rows have stopped, while
//! the rest of the batch decodes, so Ctrl-C loses only tasks still generating.
//!
//! Budget forcing: a row that ends with an end-of-sequence token while forcing is left continues,
//! after the batch, from prompt + its tokens + "\n" + cue (prefilled again, one row at a time), at
//! most `times` times; the cue's tokens count against `max_new_tokens` and appear in the output.
//!
//! Context: a prompt that fills the model's positions is an error naming the task; a row that
//! runs out of positions while generating ends with finish "length".

use crate::decode::DecodeSettings;
use crate::generate::{Deliver, FinishReason, Generation, Generator, ReferenceScorer, TokenCountKind};
use crate::prompt::{Prompt, PromptBody};
use crate::run::{run_job, EvalJob, EvalOutcome, SampleSource};
use crate::GenerateError;
use sfn_checkpoint::Checkpoint;
use sfn_model::{generate, token_logprobs, ChatTemplate, Event, GenerateOptions, Hooks, Model, StopReason, Tokenizer};
use sfn_model::{RuntimeSpec, WeightSource};
use sfn_run::rundir::absolute;
use sfn_run::Progress;
use std::path::{Path, PathBuf};

type Result<T> = std::result::Result<T, GenerateError>;

/// Hooks for one generated row, given its prompt ids and how many tokens it may add.
pub type RowHooks<'a> = Box<dyn Fn(&[u32], usize) -> sfn_model::Result<Hooks> + 'a>;

/// A loaded model and its tokenizer, ready to generate for or score prompts.
pub struct ModelRunner<'a> {
    model: &'a Model,
    tokenizer: &'a Tokenizer,
    /// The chat template, or why there is none (reported only when chat mode is used).
    chat: std::result::Result<ChatTemplate, String>,
    describe: serde_json::Value,
    /// When set, rows are generated one at a time, each with the hooks this makes (activation
    /// patching during decoding: a source model follows each row in its own cache).
    row_hooks: Option<RowHooks<'a>>,
}

impl<'a> ModelRunner<'a> {
    /// `describe` identifies the model in result files (path, edits, dtype, device...).
    pub fn new(model: &'a Model, tokenizer: &'a Tokenizer, describe: serde_json::Value) -> ModelRunner<'a> {
        let chat = ChatTemplate::for_tokenizer(tokenizer).map_err(|e| e.to_string());
        ModelRunner { model, tokenizer, chat, describe, row_hooks: None }
    }

    /// Generate each row alone, with the hooks `make` returns for it.
    pub fn with_row_hooks(mut self, make: RowHooks<'a>) -> ModelRunner<'a> {
        self.row_hooks = Some(make);
        self
    }

    /// Generate `rows`: in one batch, or one row at a time with its own hooks.
    fn run_rows(
        &self,
        rows: &[Vec<u32>],
        opts: &GenerateOptions,
        on_event: &mut dyn FnMut(usize, Event),
    ) -> Result<()> {
        let Some(make) = &self.row_hooks else {
            generate(self.model, Some(self.tokenizer), rows, opts, &mut Hooks::new(), on_event)?;
            return Ok(());
        };
        for (i, row) in rows.iter().enumerate() {
            let mut hooks = make(row, opts.max_new_tokens)?;
            let one =
                GenerateOptions { streams: vec![opts.streams.get(i).copied().unwrap_or(i as u64)], ..opts.clone() };
            generate(self.model, Some(self.tokenizer), std::slice::from_ref(row), &one, &mut hooks, &mut |_, e| {
                on_event(i, e)
            })?;
        }
        Ok(())
    }

    /// The prompt's tokens, as a model is given them (also what the probe and patch commands run).
    pub fn prompt_ids(&self, prompt: &Prompt) -> Result<Vec<u32>> {
        Ok(match &prompt.body {
            PromptBody::Text(text) => self.tokenizer.encode(text, true)?,
            PromptBody::Chat(messages) => {
                let chat =
                    self.chat.as_ref().map_err(|why| format!("chat mode needs the model's chat template: {why}"))?;
                let messages: Vec<sfn_model::Message> =
                    messages.iter().map(|m| sfn_model::Message::new(m.role.name(), &m.content)).collect();
                // The rendered text carries its own special tokens.
                self.tokenizer.encode(&chat.render(&messages, true)?, false)?
            }
        })
    }

    /// The prompt's tokens, refused when they leave no room to generate.
    fn encode(&self, prompt: &Prompt) -> Result<Vec<u32>> {
        let ids = self.prompt_ids(prompt)?;
        let limit = self.model.max_positions();
        if ids.len() >= limit {
            return Err(format!(
                "task `{}`: its prompt is {} tokens and the model has {limit} positions, so nothing can be generated (shorten the prompt or its few-shot examples)",
                prompt.id,
                ids.len()
            )
            .into());
        }
        Ok(ids)
    }

    fn options(&self, settings: &DecodeSettings, max_new_tokens: usize, streams: Vec<u64>) -> GenerateOptions {
        GenerateOptions {
            max_new_tokens,
            sampling: settings.sampling.clone(),
            stop_tokens: self.tokenizer.eos_ids().to_vec(),
            stop_strings: settings.stop.clone(),
            skip_special: true,
            streams,
        }
    }
}

/// The random stream of sample `k` of task `id` (FNV-1a of both): independent of batching.
fn stream(id: &str, k: usize, round: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes().chain((k as u64).to_le_bytes()).chain(round.to_le_bytes()) {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn finish(stop: &StopReason) -> FinishReason {
    match stop {
        StopReason::StopToken(_) => FinishReason::Eos,
        StopReason::StopString(_) => FinishReason::Stop,
        StopReason::MaxNewTokens | StopReason::ContextFull => FinishReason::Length,
    }
}

/// One sample in progress.
struct Sample {
    prompt: Vec<u32>,
    /// Generated tokens so far, inserted cues included.
    tokens: Vec<u32>,
    text: String,
    finish: FinishReason,
    forced: u32,
}

impl Generator for ModelRunner<'_> {
    fn describe(&self) -> serde_json::Value {
        self.describe.clone()
    }

    fn token_count_kind(&self) -> TokenCountKind {
        TokenCountKind::Tokens
    }

    fn generate(&mut self, prompts: &[Prompt], settings: &DecodeSettings, deliver: &mut Deliver) -> Result<()> {
        let n = settings.n;
        let encoded: Vec<Vec<u32>> = prompts.iter().map(|p| self.encode(p)).collect::<Result<_>>()?;
        // One row per (prompt, sample), all in one batch.
        let rows: Vec<Vec<u32>> = encoded.iter().flat_map(|ids| std::iter::repeat_n(ids.clone(), n)).collect();
        let streams = prompts.iter().flat_map(|p| (0..n).map(|k| stream(&p.id, k, 0))).collect();
        let opts = self.options(settings, settings.max_new_tokens, streams);
        let cue = match &settings.budget_forcing {
            Some(_) if self.row_hooks.is_some() => {
                return Err("budget forcing is not available while activations are patched during decoding".into())
            }
            Some(f) => {
                let text = format!("\n{}", f.cue);
                let ids = self.tokenizer.encode(&text, false)?;
                Some(Cue { text, ids, times: f.times })
            }
            None => None,
        };
        let wants_more = |s: &Sample| {
            cue.as_ref().is_some_and(|c| {
                s.finish == FinishReason::Eos
                    && s.forced < c.times
                    && s.tokens.len() + c.ids.len() < settings.max_new_tokens
            })
        };

        // Prompts are delivered as soon as all their rows have stopped for good, while the rest
        // of the batch decodes; rows that budget forcing continues wait for the end of the batch.
        let mut samples: Vec<Option<Sample>> = (0..rows.len()).map(|_| None).collect();
        let mut settled = vec![0usize; prompts.len()];
        let mut delivered = vec![false; prompts.len()];
        // The first failed delivery: later prompts are not delivered, and it is returned.
        let mut failure: Option<GenerateError> = None;
        self.run_rows(&rows, &opts, &mut |i, event| {
            let Event::Done(g) = event else { return };
            let sample = Sample {
                prompt: rows[i].clone(),
                finish: finish(&g.stop),
                tokens: g.tokens.clone(),
                text: g.text.clone(),
                forced: 0,
            };
            let p = i / n;
            settled[p] += usize::from(!wants_more(&sample));
            samples[i] = Some(sample);
            if settled[p] == n && failure.is_none() {
                delivered[p] = true;
                if let Err(e) = deliver(p, take_prompt(&mut samples, p, n)) {
                    failure = Some(e);
                }
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }

        for p in (0..prompts.len()).filter(|&p| !delivered[p]) {
            for (k, slot) in samples[p * n..(p + 1) * n].iter_mut().enumerate() {
                let s = slot.as_mut().ok_or("a generated row never reported its end")?;
                while let (true, Some(c)) = (wants_more(s), &cue) {
                    s.forced += 1;
                    s.tokens.extend_from_slice(&c.ids);
                    s.text.push_str(&c.text);
                    let context: Vec<u32> = s.prompt.iter().chain(&s.tokens).copied().collect();
                    let left = settings.max_new_tokens - s.tokens.len();
                    let opts = self.options(settings, left, vec![stream(&prompts[p].id, k, s.forced)]);
                    let g = generate(
                        self.model,
                        Some(self.tokenizer),
                        &[context],
                        &opts,
                        &mut Hooks::new(),
                        &mut |_, _| {},
                    )?
                    .remove(0);
                    s.tokens.extend_from_slice(&g.tokens);
                    s.text.push_str(&g.text);
                    s.finish = finish(&g.stop);
                }
            }
            deliver(p, take_prompt(&mut samples, p, n))?;
        }
        Ok(())
    }
}

/// The budget-forcing cue ("\n" + cue) and how often it may be used per sample.
struct Cue {
    text: String,
    ids: Vec<u32>,
    times: u32,
}

/// The finished samples of prompt `p` (rows `p·n..(p+1)·n`), taken out of `samples`.
fn take_prompt(samples: &mut [Option<Sample>], p: usize, n: usize) -> Vec<Generation> {
    samples[p * n..(p + 1) * n]
        .iter_mut()
        .filter_map(Option::take)
        .map(|s| Generation { token_count: s.tokens.len(), text: s.text, finish: s.finish })
        .collect()
}

impl ReferenceScorer for ModelRunner<'_> {
    fn describe(&self) -> serde_json::Value {
        self.describe.clone()
    }

    /// Averages −log p(token) over the output's tokens after the prompt; an output that overflows
    /// the context is scored as far as it fits.
    fn mean_token_loss(&mut self, prompt: &Prompt, output: &str) -> Result<Option<f64>> {
        let context = self.encode(prompt)?;
        let out = self.tokenizer.encode(output, false)?;
        let room = self.model.max_positions() - context.len();
        let scored = out.len().min(room);
        if scored == 0 {
            return Ok(None);
        }
        let seq: Vec<u32> = context.iter().chain(&out[..scored]).copied().collect();
        let scores = token_logprobs(self.model, &seq, context.len(), 0)?;
        Ok(Some(-scores.iter().map(|s| s.logprob).sum::<f64>() / scored as f64))
    }
}

/// A reference model for the judge's loss signal, and how it is named in result files.
pub struct Reference<'a> {
    pub model: &'a Model,
    pub tokenizer: &'a Tokenizer,
    pub describe: serde_json::Value,
}

/// A loaded reference model: `--reference MODEL`, or intact A in the sweeps.
pub struct LoadedReference {
    path: PathBuf,
    model: Model,
    tokenizer: Tokenizer,
}

impl LoadedReference {
    pub fn load(ck: &Checkpoint, runtime: &RuntimeSpec) -> crate::Result<LoadedReference> {
        let (model, tokenizer) = runtime.load(ck).map_err(|e| e.context("reference model"))?;
        Ok(LoadedReference { path: absolute(&ck.path), model, tokenizer })
    }

    /// The model at `path`, if one is given.
    pub fn open(path: Option<&Path>, runtime: &RuntimeSpec) -> crate::Result<Option<LoadedReference>> {
        let Some(path) = path else { return Ok(None) };
        let ck = Checkpoint::open(path).map_err(|e| sfn_model::Error::from(e).context("reference"))?;
        Ok(Some(LoadedReference::load(&ck, runtime)?))
    }

    pub fn get(&self) -> Reference<'_> {
        Reference { model: &self.model, tokenizer: &self.tokenizer, describe: serde_json::json!({"model": self.path}) }
    }
}

/// Evaluate `model` on all of the job's tasks: `sfn eval MODEL`, merge/destroy `--eval` and every
/// sweep variant. `describe` names the model (and its edits) in run.json, so resuming a directory
/// with another model is refused.
pub fn evaluate_model(
    job: &EvalJob,
    model: &Model,
    tokenizer: &Tokenizer,
    describe: serde_json::Value,
    reference: Option<&Reference>,
    progress: &dyn Progress,
) -> crate::Result<EvalOutcome> {
    evaluate_runner(job, ModelRunner::new(model, tokenizer, describe), reference, progress)
}

/// `evaluate_model` for a runner made by the caller (one that patches activations, say).
pub fn evaluate_runner(
    job: &EvalJob,
    mut runner: ModelRunner,
    reference: Option<&Reference>,
    progress: &dyn Progress,
) -> crate::Result<EvalOutcome> {
    let mut scorer = reference.map(|r| ModelRunner::new(r.model, r.tokenizer, r.describe.clone()));
    let notes = judge_notes(job, scorer.is_some());
    let source = SampleSource { files: vec![], inputs: serde_json::Map::new(), decoded_here: true, notes };
    let scorer = scorer.as_mut().map(|s| s as &mut dyn ReferenceScorer);
    run_job(job, &job.tasks.tasks, source, &mut runner, scorer, progress)
}

/// What the summary says about how levels I and II were decided.
pub(crate) fn judge_notes(job: &EvalJob, scored: bool) -> Vec<String> {
    if !scored {
        vec!["no reference model: levels I and II rest on text statistics alone, which call much word salad \
              level II (see the judge's calibration); give a reference model to score each output"
            .to_string()]
    } else if job.config.judge.max_ref_loss.is_none() {
        vec!["reference losses are recorded in the signals but decide no level (no max_ref_loss)".to_string()]
    } else {
        vec![]
    }
}

/// Load `src` (a checkpoint or an edit plan's view) as `runtime` says and evaluate it as `job`
/// says; the tokenizer comes from `tokenizer_src` (usually `src` itself).
pub fn evaluate_source(
    job: &EvalJob,
    src: &dyn WeightSource,
    tokenizer_src: &dyn WeightSource,
    describe: serde_json::Value,
    runtime: &RuntimeSpec,
    reference: Option<&Reference>,
    progress: &dyn Progress,
) -> crate::Result<EvalOutcome> {
    let model = runtime.load_model(src)?;
    let tok = Tokenizer::for_source(tokenizer_src)
        .map_err(|e| e.context(format!("tokenizer of {}", tokenizer_src.path().display())))?;
    evaluate_model(job, &model, &tok, describe, reference, progress)
}
