//! The lab's pair: model A, a small Qwen2 pretrained from scratch on the base corpus (it talks and
//! states answers, without working), and model B, A fine-tuned on worked reasoning traces (all
//! parameters, through the Freeze stethoscope's own entry point). Both are Hugging Face
//! checkpoints with the lab's tokenizer and chat template, cached by recipe and seed: the cache
//! key is the SHA-256 of both, so a second lab with the same ones reuses them and any change of
//! recipe trains anew.

use crate::corpus::{Corpora, CorpusSize};
use crate::error::Result;
use crate::tokenizer::{self, IM_END};
use serde::{Deserialize, Serialize};
use sfn_checkpoint::{DType, ModelConfig};
use sfn_eval::task::write_tasks;
use sfn_eval::EvalSettings;
use sfn_model::{ChatTemplate, Message, RuntimeSpec, Tokenizer};
use sfn_run::{Context, Unit};
use sfn_scope::freeze::{self, FreezeSpec};
use sfn_train::batch::Sequence;
use sfn_train::data::Dataset;
use sfn_train::export::write_model;
use sfn_train::trainer::{self, TrainSettings};
use sfn_train::{TrainModel, Trainable};
use std::path::{Path, PathBuf};

/// Everything that decides the pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    pub corpus: CorpusSize,
    pub vocab_size: usize,
    /// The architecture (Qwen2: q/k/v biases, GQA, tied embeddings).
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub intermediate: usize,
    pub max_positions: usize,
    /// A: pretraining on the base corpus, packed rows of `seq_len` tokens.
    pub pretrain: TrainSettings,
    /// B: fine-tuning A on the traces (also the settings of the freeze sweep's runs).
    pub finetune: TrainSettings,
}

impl Recipe {
    /// The default lab: about ten minutes on two cores, study included.
    pub fn full() -> Recipe {
        Recipe::new(
            CorpusSize {
                conversations: 6000,
                stated: 3000,
                facts: 4000,
                traces: 6000,
                replay: 2000,
                eval_reasoning: 100,
                eval_conversation: 24,
                depth: 2,
                size: 20,
            },
            (128, 4, 384),
            (600, 8, 2e-3),
            (600, 16, 1e-3),
        )
    }

    /// `--quick`: the same study, smaller, for tests and CI (about two minutes).
    pub fn quick() -> Recipe {
        Recipe::new(
            CorpusSize {
                conversations: 2000,
                stated: 1000,
                facts: 2000,
                traces: 2000,
                replay: 700,
                eval_reasoning: 40,
                eval_conversation: 10,
                depth: 2,
                size: 20,
            },
            (64, 4, 192),
            (300, 8, 3e-3),
            (300, 16, 2e-3),
        )
    }

    fn new(
        corpus: CorpusSize,
        (hidden, layers, intermediate): (usize, usize, usize),
        (pre_steps, pre_batch, pre_lr): (u64, usize, f64),
        (ft_steps, ft_batch, ft_lr): (u64, usize, f64),
    ) -> Recipe {
        let settings = |steps, batch, lr: f64, packing| TrainSettings {
            max_steps: Some(steps),
            micro_batch_size: batch,
            lr,
            min_lr: lr / 10.0,
            warmup_steps: steps / 20,
            schedule: sfn_train::schedule::Decay::Cosine,
            packing,
            // Packed rows of 256 tokens hold two or three conversations.
            max_seq_len: Some(if packing { 256 } else { 192 }),
            ..Default::default()
        };
        Recipe {
            corpus,
            vocab_size: 512,
            hidden,
            layers,
            heads: 4,
            kv_heads: 2,
            intermediate,
            max_positions: 256,
            pretrain: settings(pre_steps, pre_batch, pre_lr, true),
            finetune: settings(ft_steps, ft_batch, ft_lr, false),
        }
    }

    fn config(&self, vocab: usize, eos: u32) -> ModelConfig {
        ModelConfig::from_json(&serde_json::json!({
            "model_type": "qwen2",
            "hidden_size": self.hidden,
            "intermediate_size": self.intermediate,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "vocab_size": vocab,
            "tie_word_embeddings": true,
            "max_position_embeddings": self.max_positions,
            "rms_norm_eps": 1e-6,
            "rope_theta": 10000.0,
            "eos_token_id": eos,
        }))
        .expect("a complete config")
    }
}

/// How the lab prompts and evaluates (chat, no suffix, greedy, short answers), as
/// `corpus::prompt_config` builds the training prompts.
pub fn eval_settings(max_new: usize) -> EvalSettings {
    let p = crate::corpus::prompt_config();
    EvalSettings { mode: p.mode, suffix: p.suffix, max_new, batch_size: 50, ..Default::default() }
}

/// A built pair and the lab's files beside it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pair {
    pub dir: PathBuf,
    pub a: PathBuf,
    pub b: PathBuf,
    /// B's training data (also the freeze sweep's).
    pub traces: PathBuf,
    pub eval_reasoning: PathBuf,
    pub eval_conversation: PathBuf,
    /// Seconds spent training A and B (0 when both came from the cache).
    pub train_seconds: f64,
    pub cached: bool,
}

const PAIR_FILE: &str = "pair.json";

/// The pair of `recipe` and `seed`, from `cache` when it is there, else built into it.
pub fn build(recipe: &Recipe, seed: u64, cache: &Path, ctx: &Context) -> Result<Pair> {
    let key = sfn_run::fingerprint::sha256_hex(serde_json::to_string(&(recipe, seed)).expect("plain data").as_bytes());
    let dir = cache.join(format!("{}-seed{seed}", &key[..16]));
    if let Ok(mut pair) = sfn_run::rundir::read_json::<Pair>(&dir.join(PAIR_FILE)) {
        if pair.a.join("config.json").is_file() && pair.b.join("config.json").is_file() {
            pair.cached = true;
            pair.train_seconds = 0.0;
            return Ok(pair);
        }
    }
    std::fs::create_dir_all(&dir).map_err(|e| sfn_run::Error::io(&dir, e))?;
    let t0 = std::time::Instant::now();
    let corpora = Corpora::generate(&recipe.corpus, seed);
    ctx.progress.note(&format!("lab: training a {}-entry tokenizer on the corpora", recipe.vocab_size));
    let tokenizer_files = tokenizer::train(corpora.texts(), recipe.vocab_size)?;
    let tok_dir = dir.join("tokenizer");
    std::fs::create_dir_all(&tok_dir).map_err(|e| sfn_run::Error::io(&tok_dir, e))?;
    for (name, text) in &tokenizer_files {
        sfn_run::write_atomic(&tok_dir.join(name), text.as_bytes())?;
    }
    let tok = Tokenizer::from_hf_dir(&tok_dir)?;
    let files = |name: &str| dir.join(name);
    let mut lines: Vec<_> = corpora.traces.iter().chain(&corpora.replay).cloned().collect();
    lines.sort_by_key(|w| sfn_run::rng::hash_str(&w.task.prompt));
    write_tasks(&files("traces.jsonl"), &lines)?;
    write_tasks(&files("eval-reasoning.jsonl"), &corpora.eval_reasoning)?;
    write_tasks(&files("eval-conversation.jsonl"), &corpora.eval_conversation)?;

    // A: pretrained from scratch on the base corpus, loss on every token.
    let eos = tok.token_to_id(IM_END).expect("a special token of the lab tokenizer");
    let config = recipe.config(tok.vocab_size(), eos);
    let all = sfn_checkpoint::selector::Selector::parse("all")?;
    let mut model = TrainModel::random(&config, seed, 0.02, Trainable::Selector(&all))?;
    let chat = ChatTemplate::for_tokenizer(&tok)?;
    let examples = corpora
        .base
        .iter()
        .map(|(u, a)| {
            let text = chat.render(&[Message::user(u), Message::assistant(a)], false)?;
            Ok(Sequence::scored(tok.encode(&text, false)?))
        })
        .collect::<Result<Vec<_>>>()?;
    let data = Dataset { path: files("base corpus"), examples, layouts: [0, 1, 0], truncated: 0 };
    let train_dir = files("A.train");
    std::fs::create_dir_all(&train_dir).map_err(|e| sfn_run::Error::io(&train_dir, e))?;
    let total = recipe.pretrain.max_steps.unwrap_or(0);
    ctx.progress.stage("lab: pretraining A", total, Unit::Steps);
    trainer::train::<sfn_train::Error>(&mut model, &data, &recipe.pretrain, &train_dir, &key, true, &mut |r, _| {
        ctx.progress.set(r.step, total);
        Ok(())
    })?;
    ctx.progress.finish();
    let mut extra = tokenizer_files.clone();
    extra.push(sfn_checkpoint::writer::model_card(
        "Lab model A (sfn lab)",
        &[("recipe", format!("`{}`", serde_json::to_string(recipe).expect("plain data"))), ("seed", seed.to_string())],
        &[],
    ));
    let a = files("A");
    write_model(&model, &a, DType::F32, extra, true)?;

    // B: A fine-tuned on the worked traces, every parameter trainable.
    let b = files("B");
    let spec = FreezeSpec {
        a: a.clone(),
        data: files("traces.jsonl"),
        train: "all".into(),
        layers: None,
        task: None,
        eval_every: None,
        dtype: None,
        training: recipe.finetune.clone(),
        eval: EvalSettings { fresh: true, ..eval_settings(96) },
        runtime: RuntimeSpec::default(),
    };
    freeze::run(&spec, &b, ctx)?;
    let pair = Pair {
        a,
        b,
        traces: files("traces.jsonl"),
        eval_reasoning: files("eval-reasoning.jsonl"),
        eval_conversation: files("eval-conversation.jsonl"),
        dir: dir.clone(),
        train_seconds: t0.elapsed().as_secs_f64(),
        cached: false,
    };
    sfn_run::write_atomic(&dir.join(PAIR_FILE), serde_json::to_string_pretty(&pair).expect("plain data").as_bytes())?;
    Ok(pair)
}
