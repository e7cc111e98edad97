//! Small file helpers shared by every reader and writer in the crate: JSONL records with their line
//! numbers (so errors can name the line), atomic writes (temp file + rename), and a file fingerprint
//! (size + SHA-256) that result files record for their inputs.

use crate::error::{json_type, EvalError, Result};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One JSON object of a JSONL file, with the 1-based line it came from.
pub(crate) struct Record {
    pub line: usize,
    pub fields: Map<String, Value>,
}

/// Read every non-blank line of a JSONL file as a JSON object. Blank lines are skipped (editors
/// leave them); anything else that is not an object is an error naming the line.
pub(crate) fn read_jsonl_objects(path: &Path) -> Result<Vec<Record>> {
    let bytes = std::fs::read(path).map_err(|e| EvalError::io(path, e))?;
    let mut out = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        let text = std::str::from_utf8(raw).map_err(|_| EvalError::NotUtf8 { path: path.into(), line })?;
        let text = text.trim_start_matches('\u{feff}').trim();
        if text.is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(text).map_err(|e| EvalError::MalformedJson {
            path: path.into(),
            line,
            message: e.to_string(),
        })?;
        match value {
            Value::Object(fields) => out.push(Record { line, fields }),
            other => return Err(EvalError::NotAnObject { path: path.into(), line, found: json_type(&other) }),
        }
    }
    Ok(out)
}

/// A string-or-integer field as a string (ids are often integers, e.g. aime2024's `index`).
pub(crate) fn string_or_int(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// Write `bytes` to `path` so that readers see either the old file or the new one, never a torn
/// one: a temporary file in the same directory (same filesystem, so rename is atomic), synced,
/// then renamed over the target.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    let tmp: PathBuf = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        EvalError::io(path, e)
    })
}

/// Path, size and SHA-256 of an input file, as result files record them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FileFingerprint {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
}

impl FileFingerprint {
    pub fn of(path: &Path) -> Result<Self> {
        let data = std::fs::read(path).map_err(|e| EvalError::io(path, e))?;
        let digest = Sha256::digest(&data);
        Ok(FileFingerprint {
            path: path.to_path_buf(),
            bytes: data.len() as u64,
            sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
        })
    }
}
