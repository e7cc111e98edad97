//! The model's tokenizer: a Hugging Face `tokenizer.json` (with `tokenizer_config.json` /
//! `chat_template.jinja` / `generation_config.json` beside it for special tokens and the chat
//! template), or one built from a GGUF file's `tokenizer.ggml.*` metadata.
//!
//! GGUF: only byte-level BPE (`tokenizer.ggml.model = gpt2`) is built, from the file's own tokens
//! and merges, with the pre-tokenizer its `tokenizer.ggml.pre` names (smollm/starcoder-style digit
//! splitting + GPT-2 regex, gpt2, llama3, qwen2) and *no* prefix space — candle's GGUF helper adds
//! one for unknown `pre` values such as SmolLM2's `smollm`, which shifts every id. Control tokens
//! (type 3) become special tokens, user-defined ones (type 4) added tokens. SentencePiece GGUF
//! vocabularies (`llama`) are not supported yet.

use crate::error::{Error, Result};
use serde_json::Value as Json;
use sfn_checkpoint::gguf::Value;
use std::collections::BTreeMap;
use std::path::Path;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior};

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// Prepended by `encode(.., add_special = true)` when the tokenizer itself does not (GGUF's
    /// `tokenizer.ggml.add_bos_token`); HF tokenizers add it through their post-processor.
    prepend_bos: Option<u32>,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    /// Every id that ends a turn or a text (EOS of the tokenizer and of the model's configs).
    eos_ids: Vec<u32>,
    chat_template: Option<String>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokenizer(vocab {}, eos {:?})", self.vocab_size(), self.eos_ids)
    }
}

fn tk_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

impl Tokenizer {
    /// The tokenizer of the model at `path`: GGUF metadata for a .gguf file, else tokenizer.json in
    /// the directory (or beside the file).
    pub fn for_model(path: &Path, gguf: Option<&BTreeMap<String, Value>>) -> Result<Tokenizer> {
        if let Some(meta) = gguf {
            return Tokenizer::from_gguf(meta);
        }
        let dir = if path.is_dir() { path } else { path.parent().unwrap_or(Path::new(".")) };
        Tokenizer::from_hf_dir(dir)
    }

    /// The tokenizer of a weight source (its GGUF metadata, or tokenizer.json beside it), with the
    /// model config's EOS ids added to the stop ids.
    pub fn for_source(src: &dyn crate::source::WeightSource) -> Result<Tokenizer> {
        let mut t = Tokenizer::for_model(src.path(), src.gguf_metadata())?;
        if let Ok(cfg) = src.config() {
            t.add_eos_ids(&cfg.eos_token_ids);
        }
        Ok(t)
    }

    /// `tokenizer.json` and its companions in `dir`.
    pub fn from_hf_dir(dir: &Path) -> Result<Tokenizer> {
        let file = dir.join("tokenizer.json");
        if !file.is_file() {
            return Err(Error::Tokenizer(format!("no tokenizer.json in {}", dir.display())));
        }
        // The tokenizers library panics on some malformed files (found by fuzzing: a decoder
        // entry whose keys are not strings); a bad download is an error here, not a crash.
        let inner = std::panic::catch_unwind(|| tokenizers::Tokenizer::from_file(&file))
            .map_err(|panic| {
                let why =
                    panic.downcast_ref::<String>().cloned().or(panic.downcast_ref::<&str>().map(|s| s.to_string()));
                Error::Tokenizer(format!("{}: malformed ({})", file.display(), why.unwrap_or_default()))
            })?
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", file.display())))?;
        let read_json = |name: &str| -> Result<Option<Json>> {
            let p = dir.join(name);
            if !p.is_file() {
                return Ok(None);
            }
            let text = std::fs::read_to_string(&p).map_err(|e| Error::Tokenizer(format!("{}: {e}", p.display())))?;
            serde_json::from_str(&text).map(Some).map_err(|e| Error::Tokenizer(format!("{}: {e}", p.display())))
        };
        let tcfg = read_json("tokenizer_config.json")?.unwrap_or(Json::Null);
        let token_str = |v: Option<&Json>| -> Option<String> {
            match v? {
                Json::String(s) => Some(s.clone()),
                Json::Object(o) => o.get("content").and_then(Json::as_str).map(str::to_string),
                _ => None,
            }
        };
        let bos_token = token_str(tcfg.get("bos_token"));
        let eos_token = token_str(tcfg.get("eos_token"));
        // chat_template.jinja (transformers ≥ 4.43 saves it apart), else tokenizer_config's, which
        // is a string or a list of {name, template} (take "default").
        let jinja = dir.join("chat_template.jinja");
        let chat_template = if jinja.is_file() {
            Some(std::fs::read_to_string(&jinja).map_err(|e| Error::Tokenizer(format!("{}: {e}", jinja.display())))?)
        } else {
            match tcfg.get("chat_template") {
                Some(Json::String(s)) => Some(s.clone()),
                Some(Json::Array(list)) => list
                    .iter()
                    .find(|t| t.get("name").and_then(Json::as_str) == Some("default"))
                    .or(list.first())
                    .and_then(|t| t.get("template"))
                    .and_then(Json::as_str)
                    .map(str::to_string),
                _ => None,
            }
        };
        let mut eos_ids: Vec<u32> = eos_token.as_deref().and_then(|t| inner.token_to_id(t)).into_iter().collect();
        for name in ["generation_config.json", "config.json"] {
            if let Some(v) = read_json(name)? {
                match v.get("eos_token_id") {
                    Some(Json::Number(n)) => eos_ids.extend(n.as_u64().map(|x| x as u32)),
                    Some(Json::Array(a)) => eos_ids.extend(a.iter().filter_map(Json::as_u64).map(|x| x as u32)),
                    _ => {}
                }
            }
        }
        dedup(&mut eos_ids);
        Ok(Tokenizer { inner, prepend_bos: None, bos_token, eos_token, eos_ids, chat_template })
    }

    /// Byte-level BPE from GGUF `tokenizer.ggml.*` metadata (see the module comment).
    pub fn from_gguf(meta: &BTreeMap<String, Value>) -> Result<Tokenizer> {
        let get = |k: &str| meta.get(k);
        let strings = |k: &str| -> Result<Vec<String>> {
            let arr =
                get(k).and_then(Value::as_array).ok_or_else(|| Error::Tokenizer(format!("GGUF has no `{k}` array")))?;
            arr.iter()
                .map(|v| {
                    v.as_str().map(str::to_string).ok_or_else(|| Error::Tokenizer(format!("`{k}` holds a non-string")))
                })
                .collect()
        };
        let model = get("tokenizer.ggml.model").and_then(Value::as_str).unwrap_or("");
        if model != "gpt2" {
            return Err(Error::Tokenizer(format!(
                "GGUF tokenizer model `{model}` is not supported (only byte-level BPE, `gpt2`)"
            )));
        }
        let tokens = strings("tokenizer.ggml.tokens")?;
        let merges: Vec<(String, String)> = strings("tokenizer.ggml.merges")?
            .into_iter()
            .map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| Error::Tokenizer(format!("merge `{m}` has no space")))
            })
            .collect::<Result<_>>()?;
        let types: Vec<u64> = match get("tokenizer.ggml.token_type").and_then(Value::as_array) {
            Some(a) => a.iter().map(|v| v.as_u64().unwrap_or(1)).collect(),
            None => vec![1; tokens.len()],
        };
        let vocab: Vocab = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        let bpe = BPE::builder().vocab_and_merges(vocab, merges).build().map_err(tk_err)?;
        let mut inner = tokenizers::Tokenizer::new(bpe);
        let pre = get("tokenizer.ggml.pre").and_then(Value::as_str).unwrap_or("default");
        let (pre_tokenizer, nfc) = pre_tokenizer_for(pre)?;
        if nfc {
            inner.with_normalizer(Some(NFC)).map_err(tk_err)?;
        }
        inner.with_pre_tokenizer(Some(pre_tokenizer));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        // Control tokens (3) are special (skipped when decoding); user-defined ones (4) are
        // matched whole but printed.
        let special: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, &t)| t == 3)
            .map(|(s, _)| AddedToken::from(s.clone(), true))
            .collect();
        let user: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, &t)| t == 4)
            .map(|(s, _)| AddedToken::from(s.clone(), false))
            .collect();
        inner.add_special_tokens(special).map_err(tk_err)?;
        inner.add_tokens(user).map_err(tk_err)?;
        let id = |k: &str| get(k).and_then(Value::as_u64).map(|x| x as u32).filter(|&x| (x as usize) < tokens.len());
        let bos = id("tokenizer.ggml.bos_token_id");
        let mut eos_ids: Vec<u32> =
            ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"]
                .iter()
                .filter_map(|k| id(k))
                .collect();
        dedup(&mut eos_ids);
        let add_bos = get("tokenizer.ggml.add_bos_token").map(|v| matches!(v, Value::Bool(true))).unwrap_or(false);
        let name = |i: Option<u32>| i.map(|i| tokens[i as usize].clone());
        Ok(Tokenizer {
            inner,
            prepend_bos: if add_bos { bos } else { None },
            bos_token: name(bos),
            eos_token: name(eos_ids.first().copied()),
            eos_ids,
            chat_template: get("tokenizer.chat_template").and_then(Value::as_str).map(str::to_string),
        })
    }

    /// Token ids of `text`. `add_special` adds what the tokenizer adds around a raw text (BOS for
    /// Llama-style tokenizers); chat-rendered text already has its special tokens: pass false.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, add_special).map_err(tk_err)?;
        let mut ids = enc.get_ids().to_vec();
        if let (true, Some(bos)) = (add_special, self.prepend_bos) {
            if ids.first() != Some(&bos) {
                ids.insert(0, bos);
            }
        }
        Ok(ids)
    }

    /// Text of `ids`; special tokens (BOS, EOS, chat markers) are left out when `skip_special`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner.decode(ids, skip_special).map_err(tk_err)
    }

    /// The text each of `ids` adds to the decoded text, in order: concatenated, the pieces are
    /// the text. A token that ends inside a character adds "" and the character comes with the
    /// token that completes it.
    pub fn pieces(&self, ids: &[u32], skip_special: bool) -> Result<Vec<String>> {
        let mut stream = self.inner.decode_stream(skip_special);
        ids.iter().map(|&id| Ok(stream.step(id).map_err(tk_err)?.unwrap_or_default())).collect()
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Ids that end generation by default.
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    /// Add ids that end generation (e.g. the model config's EOS list).
    pub fn add_eos_ids(&mut self, ids: &[u32]) {
        self.eos_ids.extend_from_slice(ids);
        dedup(&mut self.eos_ids);
    }

    /// The model's Jinja chat template, when it has one.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// This tokenizer as Hugging Face files, for a checkpoint written from a GGUF model:
    /// tokenizer.json (with a post-processor that adds BOS where GGUF says to) and
    /// tokenizer_config.json (BOS, EOS and the chat template). `Tokenizer::from_hf_dir` and
    /// transformers read them back as the same tokenizer.
    pub fn hf_files(&self) -> Result<Vec<(String, String)>> {
        let mut inner = self.inner.clone();
        if let (Some(id), Some(bos)) = (self.prepend_bos, &self.bos_token) {
            let post = tokenizers::processors::template::TemplateProcessing::builder()
                .try_single(format!("{bos}:0 $A:0"))
                .and_then(|b| b.try_pair(format!("{bos}:0 $A:0 $B:1")))
                .map_err(tk_err)?
                .special_tokens(vec![(bos.clone(), id)])
                .build()
                .map_err(tk_err)?;
            inner.with_post_processor(Some(post));
        }
        let config = serde_json::json!({
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            "chat_template": self.chat_template,
            "tokenizer_class": "PreTrainedTokenizerFast",
        });
        Ok(vec![
            ("tokenizer.json".into(), inner.to_string(true).map_err(tk_err)?),
            ("tokenizer_config.json".into(), serde_json::to_string_pretty(&config).expect("plain data")),
        ])
    }
}

fn dedup(v: &mut Vec<u32>) {
    let mut seen = std::collections::BTreeSet::new();
    v.retain(|x| seen.insert(*x));
}

/// Llama 3's and Qwen2's split patterns (as in their tokenizer.json files).
const REGEX_LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const REGEX_QWEN2: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The pre-tokenizer llama.cpp uses for `tokenizer.ggml.pre`, and whether NFC normalization
/// comes first. Byte-level without a prefix space everywhere.
fn pre_tokenizer_for(pre: &str) -> Result<(PreTokenizerWrapper, bool)> {
    let split = |re: &str| -> Result<PreTokenizerWrapper> {
        Ok(Split::new(SplitPattern::Regex(re.to_string()), SplitDelimiterBehavior::Isolated, false)
            .map_err(tk_err)?
            .into())
    };
    Ok(match pre {
        // llama.cpp: "\p{N}" then the GPT-2 regex; tokenizer.json: Digits(individual) + ByteLevel.
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => {
            (Sequence::new(vec![Digits::new(true).into(), ByteLevel::new(false, true, true).into()]).into(), false)
        }
        "gpt2" | "gpt-2" | "default" | "olmo" | "jais" => (ByteLevel::new(false, true, true).into(), false),
        "llama-bpe" | "llama3" | "smaug-bpe" | "falcon3" => {
            (Sequence::new(vec![split(REGEX_LLAMA3)?, ByteLevel::new(false, true, false).into()]).into(), false)
        }
        "qwen2" | "deepseek-r1-qwen" => {
            (Sequence::new(vec![split(REGEX_QWEN2)?, ByteLevel::new(false, false, false).into()]).into(), true)
        }
        other => {
            return Err(Error::Tokenizer(format!(
                "GGUF pre-tokenizer `{other}` is not supported (known: smollm, starcoder, gpt2, llama-bpe, qwen2, ...)"
            )))
        }
    })
}
