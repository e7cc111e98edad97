//! What every result file of a stethoscope carries, and how it is written.
//!
//! Provenance: the tool version, the command line, each input (path, format, files with sizes,
//! SHA-256 of its config), the options and their hash, the seed (None where nothing is random).
//! Writing: each file goes to a temporary name in the output directory and is renamed over the
//! final name, so a reader never sees half a file and a failed run leaves the old one intact.

use crate::error::{Error, Result};
use sfn_checkpoint::{Checkpoint, Format};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, serde::Serialize)]
pub struct FileInfo {
    pub path: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct InputInfo {
    /// "a", "b", "model", … as the stethoscope names its inputs.
    pub role: String,
    pub path: String,
    pub format: Format,
    pub files: Vec<FileInfo>,
    pub stored_bytes: u64,
    pub num_tensors: usize,
    /// SHA-256 of config.json for a checkpoint directory; of the config sfn derived from the
    /// metadata (as JSON) for GGUF; None for a lone .safetensors file.
    pub config_sha256: Option<String>,
}

impl InputInfo {
    pub fn of(role: &str, ck: &Checkpoint) -> InputInfo {
        let files = ck
            .files()
            .map(|p| FileInfo { path: p.display().to_string(), bytes: std::fs::metadata(p).map_or(0, |m| m.len()) })
            .collect();
        let config_sha256 = match ck.format {
            Format::SafetensorsDir => std::fs::read(ck.path.join("config.json")).ok().map(|b| sha256_hex(&b)),
            Format::Gguf => ck.config.as_ref().and_then(|c| serde_json::to_vec(c).ok()).map(|b| sha256_hex(&b)),
            Format::SafetensorsFile => None,
        };
        InputInfo {
            role: role.to_string(),
            path: ck.path.display().to_string(),
            format: ck.format,
            files,
            stored_bytes: ck.stored_bytes(),
            num_tensors: ck.tensors().len(),
            config_sha256,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Provenance {
    pub tool: &'static str,
    pub version: &'static str,
    /// argv as given.
    pub command: Vec<String>,
    pub inputs: Vec<InputInfo>,
    /// The options that determine the numbers (not threads or chunk sizes, which do not).
    pub options: serde_json::Value,
    /// SHA-256 of `options` as compact JSON: equal hashes and equal inputs mean equal results.
    pub options_sha256: String,
    pub seed: Option<u64>,
}

impl Provenance {
    pub fn new(
        command: Vec<String>,
        inputs: Vec<InputInfo>,
        options: serde_json::Value,
        seed: Option<u64>,
    ) -> Provenance {
        let options_sha256 = sha256_hex(options.to_string().as_bytes());
        Provenance { tool: "sfn", version: env!("CARGO_PKG_VERSION"), command, inputs, options, options_sha256, seed }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Create `dir` (and parents) for results, refusing a directory that is, or lies inside, one of
/// `inputs` (a result file must never land in a checkpoint) or that is an input file.
pub fn prepare_out_dir(dir: &Path, inputs: &[&Path]) -> Result<PathBuf> {
    for input in inputs {
        let Ok(input) = std::fs::canonicalize(input) else { continue };
        let target = sfn_checkpoint::writer::absolute(dir);
        if target.starts_with(&input) {
            return Err(Error::Output {
                path: dir.to_path_buf(),
                msg: format!("is inside the input {}; choose an output directory elsewhere", input.display()),
            });
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))
}

/// Write `bytes` to `path` atomically (temporary file beside it, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(sfn_checkpoint::writer::write_atomic(path, bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn output_inside_an_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model");
        std::fs::create_dir(&model).unwrap();
        let err = prepare_out_dir(&model.join("delta"), &[&model]).unwrap_err();
        assert!(err.to_string().contains("inside the input"), "{err}");
        assert!(prepare_out_dir(&dir.path().join("out/delta"), &[&model]).is_ok());
    }

    #[test]
    fn sha256_of_a_known_string() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
