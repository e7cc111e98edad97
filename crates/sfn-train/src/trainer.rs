//! The training loop of `sfn freeze` (and of the lab's models): epochs over a dataset in a seeded
//! order, micro-batches of right-padded (or packed) examples, gradient accumulation, clipping, the
//! optimizer and its schedule, one log line per optimizer step (train_log.jsonl), a save every N
//! steps, and resume from the last save.
//!
//! Determinism: the order of epoch e is a shuffle seeded by (seed, e); micro-batches are fixed
//! slices of that order; step s takes micro-batches s·accum .. (s+1)·accum of the stream of all
//! epochs. So the step count alone says where the data stands, and a run resumed from a save
//! computes what the uninterrupted run would have, bit for bit (the engine is deterministic for a
//! thread count on a given CPU).
//!
//! A save (`saves/step-NNNNNN/`, written atomically, the previous one removed after) holds the
//! trainable tensors and the optimizer's moments (f32 safetensors) and `state.json` (the step, the
//! settings' fingerprint, elapsed time and tokens). Lines of train_log.jsonl after the last save
//! are dropped on resume.

use crate::batch::{Batch, Sequence};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::{MicroStats, TrainModel};
use crate::optim::{AdamW, Optimizer, OptimizerKind, OptimizerState, StateTensor};
use crate::schedule::{Decay, Schedule};
use serde::{Deserialize, Serialize};
use sfn_checkpoint::writer::{write_checkpoint, TensorSpec, WriteOptions};
use sfn_checkpoint::{Checkpoint, DType};
use sfn_run::rng::hash64;
use sfn_run::SplitMix64;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn one() -> usize {
    1
}
fn default_batch() -> usize {
    8
}
fn default_lr() -> f64 {
    1e-4
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_eps() -> f64 {
    1e-8
}
fn default_clip() -> f64 {
    1.0
}

/// Which optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum OptimizerName {
    #[default]
    Adamw,
    Sgd,
}

/// How to train: the settings a spec gives (flags with the `cli` feature).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[cfg_attr(feature = "cli", command(next_help_heading = "Training"))]
#[serde(deny_unknown_fields)]
pub struct TrainSettings {
    /// Passes over the data (default: 1, unless --max-steps is given).
    #[cfg_attr(feature = "cli", arg(long, conflicts_with = "max_steps"))]
    #[serde(default)]
    pub epochs: Option<usize>,
    /// Optimizer steps to take (the data is repeated as needed).
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub max_steps: Option<u64>,
    /// Examples per micro-batch (rows, with --packing).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = default_batch()))]
    #[serde(default = "default_batch")]
    pub micro_batch_size: usize,
    /// Micro-batches per optimizer step (gradient accumulation).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = one()))]
    #[serde(default = "one")]
    pub grad_accum: usize,
    /// Peak learning rate.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = default_lr()))]
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// adamw (decoupled weight decay, PyTorch's semantics) or sgd (no momentum).
    #[cfg_attr(feature = "cli", arg(long, value_enum, default_value = "adamw"))]
    #[serde(default)]
    pub optimizer: OptimizerName,
    /// AdamW β1.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = default_beta1()))]
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    /// AdamW β2.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = default_beta2()))]
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    /// AdamW ε.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = default_eps()))]
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// AdamW decoupled weight decay.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0.0))]
    #[serde(default)]
    pub weight_decay: f64,
    /// Decay norm weights and biases too (by default they are exempt, as in transformers' Trainer).
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub decay_norms_and_biases: bool,
    /// Warmup steps (linear from 0 to the peak); with none, the first step uses the peak.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0))]
    #[serde(default)]
    pub warmup_steps: u64,
    /// After warmup: constant, linear or cosine decay to --min-lr.
    #[cfg_attr(feature = "cli", arg(long, value_enum, default_value = "linear"))]
    #[serde(default = "default_decay")]
    pub schedule: Decay,
    /// The rate linear and cosine decay end at.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0.0))]
    #[serde(default)]
    pub min_lr: f64,
    /// Clip gradients to this global L2 norm (0 turns clipping off).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = default_clip()))]
    #[serde(default = "default_clip")]
    pub max_grad_norm: f64,
    /// Pack several examples into each row (attention never crosses examples) instead of one
    /// right-padded example per row.
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub packing: bool,
    /// Longest example (and row, with --packing) in tokens (default: the model's positions).
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub max_seq_len: Option<usize>,
    /// Cut examples longer than --max-seq-len instead of refusing them.
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub truncate: bool,
    /// Seed of the data order (each epoch is shuffled by (seed, epoch)). Recorded.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0))]
    #[serde(default)]
    pub seed: u64,
    /// Save the training state every N steps (resume picks up from the last save).
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub save_every: Option<u64>,
}

fn default_decay() -> Decay {
    Decay::Linear
}

impl Default for TrainSettings {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("every field has a default")
    }
}

impl TrainSettings {
    pub fn optimizer_kind(&self) -> OptimizerKind {
        match self.optimizer {
            OptimizerName::Sgd => OptimizerKind::Sgd,
            OptimizerName::Adamw => OptimizerKind::AdamW(AdamW {
                beta1: self.beta1,
                beta2: self.beta2,
                eps: self.eps,
                weight_decay: self.weight_decay,
                exempt_norms_and_biases: !self.decay_norms_and_biases,
            }),
        }
    }

    fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Optimizer(m));
        if self.micro_batch_size == 0 || self.grad_accum == 0 {
            return bad("batch size and gradient accumulation must be at least 1".into());
        }
        if self.epochs == Some(0) || self.max_steps == Some(0) {
            return bad("nothing to train: 0 epochs or 0 steps".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) || !(self.min_lr >= 0.0 && self.min_lr <= self.lr) {
            return bad(format!("learning rate {} must be > 0 and min-lr {} in [0, lr]", self.lr, self.min_lr));
        }
        if !(self.max_grad_norm >= 0.0) {
            return bad(format!("max-grad-norm {} must be ≥ 0 (0 turns clipping off)", self.max_grad_norm));
        }
        if self.save_every == Some(0) {
            return bad("save-every must be at least 1".into());
        }
        Ok(())
    }
}

/// The micro-batches of the whole run, laid out from the settings and the data alone.
pub struct Plan {
    /// Per epoch: micro-batches, each rows of example indices (one per row unless packing).
    epochs: Vec<Vec<Vec<Vec<usize>>>>,
    micro_per_epoch: usize,
    pub total_steps: u64,
    pub grad_accum: usize,
    /// Columns of a row with packing.
    row_len: usize,
}

impl Plan {
    /// Lay out the run: epoch e is the examples shuffled by (seed, e), cut into micro-batches of
    /// `batch_size` examples (or rows of packed examples).
    pub fn new(data: &Dataset, settings: &TrainSettings, row_len: usize) -> Result<Plan> {
        settings.check()?;
        if let Some((i, e)) = data.examples.iter().enumerate().find(|(_, e)| e.tokens.len() > row_len) {
            return Err(Error::Data(format!(
                "{}: example {} has {} tokens, more than the {row_len} a row holds",
                data.path.display(),
                i + 1,
                e.tokens.len()
            )));
        }
        let order = |e: usize| {
            let mut idx: Vec<usize> = (0..data.examples.len()).collect();
            SplitMix64::new(hash64(settings.seed ^ hash64(e as u64))).shuffle(&mut idx);
            idx
        };
        let micro = |idx: Vec<usize>| -> Vec<Vec<Vec<usize>>> {
            let rows: Vec<Vec<usize>> = if settings.packing {
                let mut rows: Vec<Vec<usize>> = vec![];
                let mut used = 0;
                for i in idx {
                    let n = data.examples[i].tokens.len();
                    if rows.is_empty() || used + n > row_len {
                        rows.push(vec![]);
                        used = 0;
                    }
                    rows.last_mut().expect("a row was opened").push(i);
                    used += n;
                }
                rows
            } else {
                idx.into_iter().map(|i| vec![i]).collect()
            };
            rows.chunks(settings.micro_batch_size).map(|c| c.to_vec()).collect()
        };
        let first = micro(order(0));
        let micro_per_epoch = first.len();
        let accum = settings.grad_accum;
        let total_steps = match (settings.max_steps, settings.epochs) {
            (Some(s), _) => s,
            (None, e) => ((e.unwrap_or(1) * micro_per_epoch) as u64).div_ceil(accum as u64),
        };
        let needed_micro = total_steps as usize * accum;
        let n_epochs = needed_micro.div_ceil(micro_per_epoch).max(1);
        let mut epochs = vec![first];
        for e in 1..n_epochs {
            epochs.push(micro(order(e)));
        }
        Ok(Plan { epochs, micro_per_epoch, total_steps, grad_accum: accum, row_len })
    }

    /// The micro-batches of 0-based step `s` (the last step of a finite run may have fewer).
    fn step(&self, s: u64) -> impl Iterator<Item = (usize, &Vec<Vec<usize>>)> {
        let from = s as usize * self.grad_accum;
        (from..from + self.grad_accum).filter_map(move |m| {
            let (e, i) = (m / self.micro_per_epoch, m % self.micro_per_epoch);
            self.epochs.get(e).and_then(|ep| ep.get(i)).map(|mb| (e, mb))
        })
    }

    pub fn steps_per_epoch(&self) -> f64 {
        self.micro_per_epoch as f64 / self.grad_accum as f64
    }
}

/// One optimizer step, as train_log.jsonl records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// 1-based.
    pub step: u64,
    /// Fractional epoch reached at the end of the step.
    pub epoch: f64,
    /// Mean next-token cross-entropy over the step's scored targets.
    pub loss: f64,
    pub lr: f64,
    /// Global L2 norm of the gradients before clipping.
    pub grad_norm: f64,
    /// Tokens the step ran (padding not counted).
    pub tokens: usize,
    /// Of those, the targets its loss scored.
    pub targets: usize,
    /// Seconds since training began (counting the time before a resume).
    pub seconds: f64,
}

/// What a save's state.json holds besides the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SaveState {
    step: u64,
    /// The settings the run was made with: a resume with others is refused.
    fingerprint: String,
    seconds: f64,
    tokens: u64,
}

pub const LOG_FILE: &str = "train_log.jsonl";
const SAVES: &str = "saves";

/// What training produced.
pub struct Trained {
    pub log: Vec<StepRecord>,
    /// Steps done in this call (the rest came from a save).
    pub steps_now: u64,
    pub resumed_from: Option<u64>,
    /// Seconds of this call's steps.
    pub seconds_now: f64,
    pub tokens_now: u64,
}

/// Train `model` on `data` as `settings` say, logging into `dir` (train_log.jsonl, saves/).
/// `fingerprint` identifies the run's inputs and settings: a save made with another is refused.
/// Resumes from the last save in `dir` when there is one (and `fresh` is false). `on_step` hears
/// every optimizer step's record with the model after the step (its error, of the caller's type,
/// stops training).
pub fn train<E: From<Error>>(
    model: &mut TrainModel,
    data: &Dataset,
    settings: &TrainSettings,
    dir: &Path,
    fingerprint: &str,
    fresh: bool,
    on_step: &mut dyn FnMut(&StepRecord, &TrainModel) -> std::result::Result<(), E>,
) -> std::result::Result<Trained, E> {
    let row_len = settings.max_seq_len.unwrap_or(model.max_positions()).min(model.max_positions());
    let plan = Plan::new(data, settings, row_len)?;
    let schedule = Schedule {
        peak_lr: settings.lr,
        min_lr: settings.min_lr,
        warmup_steps: settings.warmup_steps,
        total_steps: plan.total_steps,
        decay: settings.schedule,
    };
    let mut opt = Optimizer::new(settings.optimizer_kind(), model)?;
    let log_path = dir.join(LOG_FILE);
    let io = |p: &Path, e: std::io::Error| Error::Data(format!("{}: {e}", p.display()));
    if fresh {
        let _ = std::fs::remove_dir_all(dir.join(SAVES));
        let _ = std::fs::remove_file(&log_path);
    }
    let (mut log, mut seconds0, mut tokens) = (vec![], 0.0, 0u64);
    let resumed_from = match last_save(dir)? {
        Some(save) => {
            let state = restore(&save, model, &mut opt, fingerprint)?;
            log = read_log(&log_path)?.into_iter().filter(|r| r.step <= state.step).collect();
            let text: String = log.iter().map(|r| serde_json::to_string(r).expect("plain data") + "\n").collect();
            sfn_run::write_atomic(&log_path, text.as_bytes()).map_err(Error::from)?;
            seconds0 = state.seconds;
            tokens = state.tokens;
            Some(state.step)
        }
        None => {
            sfn_run::write_atomic(&log_path, b"").map_err(Error::from)?;
            None
        }
    };
    let mut log_file = std::fs::OpenOptions::new().append(true).open(&log_path).map_err(|e| io(&log_path, e))?;
    let tokens0 = tokens;
    let pad = data.examples.first().and_then(|e| e.tokens.first()).copied().unwrap_or(0);
    let started = Instant::now();
    let first = opt.steps();
    for s in first..plan.total_steps {
        let micro: Vec<(usize, Batch)> = plan
            .step(s)
            .map(|(e, rows)| {
                let rows: Vec<Vec<Sequence>> =
                    rows.iter().map(|r| r.iter().map(|&i| data.examples[i].clone()).collect()).collect();
                let cols = if settings.packing {
                    plan.row_len
                } else {
                    rows.iter().map(|r| r[0].tokens.len()).max().unwrap_or(1)
                };
                Ok((e, Batch::packed(&rows, cols, pad)?))
            })
            .collect::<Result<_>>()?;
        let step_targets: usize = micro.iter().map(|(_, b)| b.num_targets()).sum();
        let step_tokens: usize =
            plan.step(s).flat_map(|(_, rows)| rows.iter().flatten()).map(|&i| data.examples[i].tokens.len()).sum();
        model.zero_grad();
        let mut stats = MicroStats::default();
        for (_, b) in &micro {
            stats = stats + model.forward_backward(b, step_targets.max(1))?;
        }
        let grad_norm = model.clip_grad_norm(settings.max_grad_norm);
        let lr = schedule.lr(opt.steps());
        opt.step(model, lr)?;
        tokens += step_tokens as u64;
        let done_micro = (s + 1) as usize * plan.grad_accum;
        let record = StepRecord {
            step: s + 1,
            epoch: done_micro as f64 / plan.micro_per_epoch as f64,
            loss: stats.mean(),
            lr,
            grad_norm,
            tokens: step_tokens,
            targets: stats.targets,
            seconds: seconds0 + started.elapsed().as_secs_f64(),
        };
        writeln!(log_file, "{}", serde_json::to_string(&record).expect("plain data")).map_err(|e| io(&log_path, e))?;
        log_file.flush().map_err(|e| io(&log_path, e))?;
        on_step(&record, model)?;
        log.push(record);
        if settings.save_every.is_some_and(|n| (s + 1) % n == 0) && s + 1 < plan.total_steps {
            let state = SaveState {
                step: s + 1,
                fingerprint: fingerprint.into(),
                seconds: seconds0 + started.elapsed().as_secs_f64(),
                tokens,
            };
            save(dir, model, &opt, &state)?;
        }
    }
    let steps_now = plan.total_steps.saturating_sub(first);
    Ok(Trained {
        log,
        steps_now,
        resumed_from,
        seconds_now: started.elapsed().as_secs_f64(),
        tokens_now: tokens - tokens0,
    })
}

/// Write a save of the training state: trainable tensors and optimizer moments as f32
/// safetensors, state.json; atomically (a new directory renamed into place), then older saves go.
fn save(dir: &Path, model: &TrainModel, opt: &Optimizer, state: &SaveState) -> Result<()> {
    let saves = dir.join(SAVES);
    std::fs::create_dir_all(&saves).map_err(|e| Error::Data(format!("{}: {e}", saves.display())))?;
    let exported = opt.export(model);
    let mut tensors: Vec<(String, Vec<usize>, &[f32])> = model
        .params()
        .filter(|p| p.trainable())
        .map(|p| (format!("param.{}", p.name), p.shape.to_vec(), p.data))
        .collect();
    tensors.extend(exported.tensors.iter().map(|t| (format!("optim.{}", t.name), t.shape.clone(), t.data.as_slice())));
    let specs: Vec<TensorSpec> =
        tensors.iter().map(|(n, s, _)| TensorSpec { name: n.clone(), dtype: DType::F32, shape: s.clone() }).collect();
    let mut opts = WriteOptions { max_shard_bytes: u64::MAX, ..Default::default() };
    opts.extra_files.push(("state.json".into(), serde_json::to_string_pretty(state).expect("plain data")));
    let target = saves.join(format!("step-{:06}", state.step));
    let by_name: std::collections::HashMap<&str, &[f32]> = tensors.iter().map(|(n, _, d)| (n.as_str(), *d)).collect();
    write_checkpoint(&target, &specs, &opts, |spec, w| {
        let mut bytes = Vec::with_capacity(by_name[spec.name.as_str()].len() * 4);
        sfn_checkpoint::dtype::from_f32(DType::F32, by_name[spec.name.as_str()], &mut bytes);
        w.write_all(&bytes).map_err(|e| sfn_checkpoint::Error::io(&target, e))
    })?;
    for old in list_saves(dir)?.into_iter().filter(|p| *p != target) {
        let _ = std::fs::remove_dir_all(old);
    }
    Ok(())
}

fn list_saves(dir: &Path) -> Result<Vec<PathBuf>> {
    let saves = dir.join(SAVES);
    let Ok(entries) = std::fs::read_dir(&saves) else { return Ok(vec![]) };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("step-")))
        .collect();
    out.sort();
    Ok(out)
}

fn last_save(dir: &Path) -> Result<Option<PathBuf>> {
    Ok(list_saves(dir)?.pop())
}

/// Put a save back into `model` and `opt`.
fn restore(save: &Path, model: &mut TrainModel, opt: &mut Optimizer, fingerprint: &str) -> Result<SaveState> {
    let state_path = save.join("state.json");
    let state: SaveState = sfn_run::rundir::read_json(&state_path)?;
    if state.fingerprint != fingerprint {
        return Err(Error::Data(format!(
            "{}: this save was made with other settings or inputs; start fresh (--fresh) or use another output",
            save.display()
        )));
    }
    let ck = Checkpoint::open(save.join(sfn_checkpoint::checkpoint::SINGLE_FILE))?;
    let trainable: Vec<String> = model.params().filter(|p| p.trainable()).map(|p| p.name.to_string()).collect();
    for name in &trainable {
        let data = ck.read_f32(ck.tensor(&format!("param.{name}"))?)?;
        let dst = model.param_mut(name).expect("trainable names come from the model");
        if dst.len() != data.len() {
            return Err(Error::tensor(name.clone(), "the save holds another shape"));
        }
        dst.copy_from_slice(&data);
    }
    let tensors = ck
        .tensors()
        .iter()
        .filter_map(|t| t.name.strip_prefix("optim.").map(|n| (n.to_string(), t)))
        .map(|(name, t)| Ok(StateTensor { name, shape: t.shape.clone(), data: ck.read_f32(t)? }))
        .collect::<Result<Vec<_>>>()?;
    opt.import(&OptimizerState { steps: state.step, tensors }, model)?;
    Ok(state)
}

/// train_log.jsonl; a line cut by a crash at the end is dropped.
pub fn read_log(path: &Path) -> Result<Vec<StepRecord>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(Error::Data(format!("{}: {e}", path.display()))),
    };
    Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
}
