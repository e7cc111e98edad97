//! Training data: a JSONL file turned into token sequences with labels, by the model's own
//! tokenizer and chat template, for completion-only loss. One layout per line:
//! - `{"prompt": …, "completion": …}` (a task line of `sfn eval` with a completion): the prompt is
//!   built and encoded exactly as `sfn eval` builds and encodes it under the same prompt settings
//!   (mode, suffix — by default the step-by-step instruction for lines with an answer —, system
//!   message), so the model is trained on the prompts it is evaluated on; then the completion
//!   (plus the end-of-sequence token in generate mode, or the assistant turn of the chat template in
//!   chat mode) is scored;
//! - `{"messages": [{"role", "content"}, …]}`: a conversation rendered with the chat template; loss
//!   on the assistant turns (their content and the template's end-of-turn);
//! - `{"input_ids": […], "labels": […]}`: already tokenized; labels −100 are not scored (without
//!   `labels`, every token is).
//!
//! The prompt and the completion are encoded apart, at the boundary the template or the file
//! gives, so the prompt's tokens are exactly those the model sees when it is evaluated on that
//! prompt. Bad lines (a missing field, labels of another length, ids past the vocabulary, an
//! example longer than the model's positions without truncation, nothing to score) are errors
//! naming the file and line.

use crate::batch::{Sequence, IGNORE};
use crate::error::{Error, Result};
use serde_json::Value;
use sfn_eval::error::json_type;
use sfn_eval::io::{read_jsonl_objects, string_or_int, Record};
use sfn_eval::{PromptBody, PromptConfig, Task, TaskKind};
use sfn_model::{ChatTemplate, Message, Tokenizer};
use std::path::{Path, PathBuf};

/// How the examples of a file are made.
#[derive(Debug, Clone)]
pub struct DataOptions {
    /// How prompt/completion lines become prompts: `sfn eval`'s settings (mode, suffix, system).
    pub prompt: PromptConfig,
    /// Longest example in tokens (the model's positions, or less).
    pub max_len: usize,
    /// Cut longer examples to `max_len` instead of refusing them.
    pub truncate: bool,
    /// Token ids must be below this (the model's vocabulary).
    pub vocab_size: usize,
}

/// Which layout a line has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    PromptCompletion,
    Messages,
    Tokens,
}

/// A loaded training file.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub path: PathBuf,
    pub examples: Vec<Sequence>,
    /// Examples per layout, in the order of `Layout`.
    pub layouts: [usize; 3],
    /// Examples cut to `max_len`.
    pub truncated: usize,
}

impl Dataset {
    /// Labels scored over all examples (the loss's denominator for one epoch).
    pub fn scored_tokens(&self) -> usize {
        self.examples.iter().map(|e| e.labels.iter().filter(|&&l| l != IGNORE).count()).sum()
    }

    pub fn tokens(&self) -> usize {
        self.examples.iter().map(|e| e.tokens.len()).sum()
    }
}

/// Read and tokenize `path`.
pub fn load(path: &Path, tok: &Tokenizer, opts: &DataOptions) -> Result<Dataset> {
    let records = read_jsonl_objects(path).map_err(|e| Error::Data(e.to_string()))?;
    if records.is_empty() {
        return Err(Error::Data(format!("{}: no examples (the file is empty)", path.display())));
    }
    let chat = match ChatTemplate::for_tokenizer(tok) {
        Ok(t) => Ok(t),
        Err(e) => Err(e.to_string()),
    };
    let maker = Maker { tok, opts, chat: &chat };
    let mut data = Dataset { path: path.into(), examples: vec![], layouts: [0; 3], truncated: 0 };
    for rec in &records {
        let at = |msg: String| Error::Data(format!("{}:{}: {msg}", path.display(), rec.line));
        let (layout, mut seq) = maker.example(rec).map_err(at)?;
        if let Some(bad) = seq.tokens.iter().find(|&&t| t as usize >= opts.vocab_size) {
            return Err(at(format!("token id {bad} is past the model's vocabulary of {}", opts.vocab_size)));
        }
        if seq.tokens.len() > opts.max_len {
            if !opts.truncate {
                return Err(at(format!(
                    "{} tokens, longer than the {} the model takes (give --truncate to cut it)",
                    seq.tokens.len(),
                    opts.max_len
                )));
            }
            seq.tokens.truncate(opts.max_len);
            seq.labels.truncate(opts.max_len);
            data.truncated += 1;
        }
        // Position 0 predicts nothing: a label there is never scored.
        if !seq.labels.iter().skip(1).any(|&l| l != IGNORE) {
            return Err(at("nothing to score (the completion is empty, or was cut off)".into()));
        }
        data.layouts[layout as usize] += 1;
        data.examples.push(seq);
    }
    Ok(data)
}

/// Turns one record into an example.
struct Maker<'a> {
    tok: &'a Tokenizer,
    opts: &'a DataOptions,
    chat: &'a std::result::Result<ChatTemplate, String>,
}

type Made = std::result::Result<(Layout, Sequence), String>;

impl Maker<'_> {
    fn example(&self, rec: &Record) -> Made {
        let f = &rec.fields;
        if f.contains_key("input_ids") {
            self.tokens(f)
        } else if f.contains_key("messages") {
            let messages = messages(&f["messages"])?;
            Ok((Layout::Messages, self.conversation(&messages)?))
        } else if f.contains_key("prompt") || f.contains_key("completion") {
            let completion = text(f, "completion")?;
            let answer = f.get("answer").and_then(string_or_int);
            let kind = match f.get("kind").and_then(|k| k.as_str()) {
                Some(k) => TaskKind::parse(k).ok_or_else(|| format!("unknown task kind `{k}`"))?,
                None if answer.is_some() => TaskKind::Reasoning,
                None => TaskKind::Conversation,
            };
            let task = Task { id: rec.line.to_string(), prompt: text(f, "prompt")?, answer, kind };
            let seq = match self.opts.prompt.build(&task).body {
                PromptBody::Text(prompt) => self.raw(&prompt, &completion)?,
                PromptBody::Chat(turns) => {
                    let mut messages: Vec<Message> =
                        turns.iter().map(|m| Message::new(m.role.name(), &m.content)).collect();
                    messages.push(Message::assistant(&completion));
                    self.conversation(&messages)?
                }
            };
            Ok((Layout::PromptCompletion, seq))
        } else {
            let keys: Vec<&str> = f.keys().map(|k| k.as_str()).collect();
            Err(format!(
                "no known layout (has {}); expected prompt + completion, messages, or input_ids (+ labels)",
                keys.join(", ")
            ))
        }
    }

    /// Pre-tokenized: ids as given, labels as given (or every token).
    fn tokens(&self, f: &serde_json::Map<String, Value>) -> Made {
        let ids: Vec<i64> = ints(&f["input_ids"], "input_ids")?;
        let tokens = ids
            .iter()
            .map(|&i| u32::try_from(i).map_err(|_| format!("input_ids holds {i}, not a token id")))
            .collect::<std::result::Result<Vec<u32>, String>>()?;
        let labels: Vec<i32> = match f.get("labels") {
            None => tokens.iter().map(|&t| t as i32).collect(),
            Some(v) => {
                let labels = ints(v, "labels")?;
                if labels.len() != tokens.len() {
                    return Err(format!("{} labels for {} input_ids", labels.len(), tokens.len()));
                }
                labels
                    .iter()
                    .map(|&l| match l {
                        l if l == IGNORE as i64 => Ok(IGNORE),
                        l if l >= 0 && (l as usize) < self.opts.vocab_size => Ok(l as i32),
                        l => Err(format!("label {l} is neither -100 nor a token id below {}", self.opts.vocab_size)),
                    })
                    .collect::<std::result::Result<_, _>>()?
            }
        };
        Ok((Layout::Tokens, Sequence { tokens, labels }))
    }

    /// Raw text: the prompt with the tokenizer's special tokens, then the completion and EOS,
    /// scored.
    fn raw(&self, prompt: &str, completion: &str) -> std::result::Result<Sequence, String> {
        let mut seq = Sequence { tokens: vec![], labels: vec![] };
        self.push(&mut seq, prompt, true, false)?;
        self.push(&mut seq, completion, false, true)?;
        if let Some(&eos) = self.tok.eos_ids().first() {
            seq.tokens.push(eos);
            seq.labels.push(eos as i32);
        }
        Ok(seq)
    }

    /// A conversation rendered with the chat template, assistant turns scored: the text is cut
    /// where each assistant turn starts (the render of the turns before it, with the generation
    /// prompt) and ends (the render through it), and the pieces are encoded apart.
    fn conversation(&self, messages: &[Message]) -> std::result::Result<Sequence, String> {
        let chat = self.chat.as_ref().map_err(|why| format!("chat data needs the model's chat template: {why}"))?;
        let render = |m: &[Message], gen: bool| chat.render(m, gen).map_err(|e| e.to_string());
        let full = render(messages, false)?;
        // [from, to) character ranges of the assistant turns in `full`.
        let mut scored = vec![];
        for (i, _) in messages.iter().enumerate().filter(|(_, m)| m.role == "assistant") {
            let (before, through) = (render(&messages[..i], true)?, render(&messages[..=i], false)?);
            if !through.starts_with(&before) || !full.starts_with(&through) {
                return Err(format!(
                    "the chat template does not render turn {i} as a continuation of the turns before it, so its tokens cannot be told apart"
                ));
            }
            scored.push((before.len(), through.len()));
        }
        if scored.is_empty() {
            return Err("no assistant turn to learn from".into());
        }
        let mut seq = Sequence { tokens: vec![], labels: vec![] };
        let mut at = 0;
        for (from, to) in scored {
            self.push(&mut seq, &full[at..from], false, false)?;
            self.push(&mut seq, &full[from..to], false, true)?;
            at = to;
        }
        self.push(&mut seq, &full[at..], false, false)?;
        Ok(seq)
    }

    /// Encode `text` onto `seq`, scored or not.
    fn push(&self, seq: &mut Sequence, text: &str, special: bool, scored: bool) -> std::result::Result<(), String> {
        if text.is_empty() {
            return Ok(());
        }
        let ids = self.tok.encode(text, special).map_err(|e| e.to_string())?;
        seq.labels.extend(ids.iter().map(|&t| if scored { t as i32 } else { IGNORE }));
        seq.tokens.extend(ids);
        Ok(())
    }
}

fn text(f: &serde_json::Map<String, Value>, key: &str) -> std::result::Result<String, String> {
    match f.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("field `{key}` must be a string, found {}", json_type(other))),
        None => Err(format!("missing field `{key}` (prompt/completion lines need both)")),
    }
}

fn ints(v: &Value, key: &str) -> std::result::Result<Vec<i64>, String> {
    let arr =
        v.as_array().ok_or_else(|| format!("field `{key}` must be an array of integers, found {}", json_type(v)))?;
    arr.iter().map(|x| x.as_i64().ok_or_else(|| format!("field `{key}` holds {x}, not an integer"))).collect()
}

fn messages(v: &Value) -> std::result::Result<Vec<Message>, String> {
    let arr = v.as_array().ok_or_else(|| format!("field `messages` must be an array, found {}", json_type(v)))?;
    arr.iter()
        .enumerate()
        .map(|(i, m)| {
            let get = |k: &str| m.get(k).and_then(Value::as_str);
            match (get("role"), get("content")) {
                (Some(role @ ("system" | "user" | "assistant")), Some(content)) => Ok(Message::new(role, content)),
                (Some(role), Some(_)) => Err(format!("message {i}: role `{role}` (use system, user or assistant)")),
                _ => Err(format!("message {i} needs a string `role` and `content`")),
            }
        })
        .collect()
}
