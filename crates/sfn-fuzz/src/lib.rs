//! The bodies of sfn's fuzz targets, one function per parser that reads what users download or
//! write: checkpoints (safetensors header and index, GGUF), config.json, tokenizers, chat
//! templates, selectors, task, training and study files, answer extraction.
//!
//! `fuzz/fuzz_targets/<name>.rs` hands libFuzzer's bytes to `run(name, data)` (cargo-fuzz, nightly);
//! `tests/replay.rs` feeds every file of `fuzz/corpus/<name>/` and `fuzz/regressions/<name>/`
//! through the same function on stable, so a crash once found stays fixed. A target returns
//! normally for any input, error or not; a panic or an abort is the finding. Where an input is
//! accepted, the targets also check what must then hold (a selector prints back to itself, a
//! checkpoint written back reads back the same, an extracted answer equals itself).
//!
//! Inputs of several parts (a template and a message) are split at NUL bytes.

mod files;
mod targets;

pub use targets::TARGETS;

/// Run target `name` on `data`; whether the input was accepted. Panics on an unknown name (a
/// typo in a fuzz target's file).
///
/// libFuzzer's panic hook aborts at once, even for a panic sfn catches on purpose (around the
/// tokenizers library); a hook that only prints leaves the abort to libfuzzer-sys, which still
/// aborts on every panic that reaches it.
pub fn run(name: &str, data: &[u8]) -> bool {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("{info}"))));
    let (_, body) = TARGETS.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no fuzz target {name}"));
    body(data)
}
