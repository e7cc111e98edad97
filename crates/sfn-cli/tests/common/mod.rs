//! Helpers shared by the `sfn` binary's end-to-end tests: running it, paths, the real model.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn sfn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sfn")).args(args).output().expect("run sfn")
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The real SmolLM2-135M-Instruct GGUF; fetched by scripts/fetch-smollm2 (scripts/test does).
pub fn smollm2() -> String {
    let path = std::env::var("SFN_SMOLLM2")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join(".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    assert!(path.is_file(), "{} is missing: run scripts/fetch-smollm2", path.display());
    path.display().to_string()
}

/// stdout of a run that must succeed (stderr in the failure message).
pub fn ok(out: &Output) -> String {
    assert!(out.status.success(), "sfn failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
