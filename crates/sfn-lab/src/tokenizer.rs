//! The lab's tokenizer: byte-level BPE trained with the `tokenizers` crate on the lab's corpora,
//! digits split one by one (arithmetic is learnt over digits, as in most LLM tokenizers), with
//! ChatML markers as special tokens and a ChatML chat template. The vocabulary is small so that
//! the output layer does not dominate the cost of a step. Saved as tokenizer.json and
//! tokenizer_config.json (eos = <|im_end|>), which sfn and transformers read.

use crate::error::{Error, Result};
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, TokenizerBuilder};

pub const IM_START: &str = "<|im_start|>";
pub const IM_END: &str = "<|im_end|>";
pub const PAD: &str = "<|endoftext|>";

/// ChatML, as Qwen2's and SmolLM2's templates render it (no default system message).
pub const CHAT_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// Train a tokenizer of `vocab_size` entries on `texts`; returns the files to write beside a
/// model (tokenizer.json, tokenizer_config.json).
pub fn train<'a>(texts: impl Iterator<Item = &'a str> + Send, vocab_size: usize) -> Result<Vec<(String, String)>> {
    let tk = |e: tokenizers::Error| Error::Tokenizer(e.to_string());
    let special: Vec<AddedToken> = [PAD, IM_START, IM_END].iter().map(|t| AddedToken::from(*t, true)).collect();
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(special.clone())
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let pre = PreTokenizerWrapper::Sequence(Sequence::new(vec![
        PreTokenizerWrapper::Digits(Digits::new(true)),
        PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true)),
    ]));
    let mut tok =
        TokenizerBuilder::<BPE, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper>::new()
            .with_model(BPE::default())
            .with_pre_tokenizer(Some(pre))
            .with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevel::default())))
            .build()
            .map_err(tk)?;
    tok.train(&mut trainer, texts).map_err(tk)?;
    let mut tok: tokenizers::Tokenizer = tok.into();
    tok.add_special_tokens(special).map_err(tk)?;
    let config = serde_json::json!({
        "bos_token": null,
        "eos_token": IM_END,
        "pad_token": PAD,
        "chat_template": CHAT_TEMPLATE,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": 4096,
    });
    Ok(vec![
        ("tokenizer.json".into(), tok.to_string(true).map_err(tk)?),
        ("tokenizer_config.json".into(), serde_json::to_string_pretty(&config).expect("plain data")),
    ])
}
