//! Reading JSONL input files (tasks, overrides, few-shot examples, recorded outputs, training
//! data): records with their line numbers, so errors can name the line. Writing (atomic) and
//! fingerprints are sfn-run's.

use crate::error::{json_type, EvalError, Result};
use serde_json::{Map, Value};
use std::path::Path;

/// One JSON object of a JSONL file, with the 1-based line it came from.
pub struct Record {
    pub line: usize,
    pub fields: Map<String, Value>,
}

/// Read every non-blank line of a JSONL file as a JSON object. Blank lines are skipped (editors
/// leave them); anything else that is not an object is an error naming the line.
pub fn read_jsonl_objects(path: &Path) -> Result<Vec<Record>> {
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
pub fn string_or_int(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}
