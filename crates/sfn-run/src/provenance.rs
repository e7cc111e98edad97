//! Provenance: what a run was asked to do and on what, recorded in run.json and in every results
//! file, so a number can be traced to its inputs and reproduced. The spec (every setting that
//! decides the numbers), the inputs (each with fingerprints of its files), the seed, the command
//! line, the tool version, and when the run started and finished (UTC, RFC 3339).

use crate::error::Result;
use crate::fingerprint::Fingerprint;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// One input of a run: a model, a task file, a data file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Input {
    /// "a", "b", "model", "tasks", … as the command names its inputs.
    pub role: String,
    pub path: PathBuf,
    /// The files read from it, with sizes and hashes.
    pub files: Vec<Fingerprint>,
    /// What the kind of input adds (a checkpoint's format, tensor count and stored bytes).
    #[serde(flatten)]
    pub detail: serde_json::Map<String, serde_json::Value>,
}

impl Input {
    /// A plain file input.
    pub fn file(role: &str, path: &Path) -> Result<Input> {
        let fp = Fingerprint::of(path)?;
        Ok(Input { role: role.into(), path: fp.path.clone(), files: vec![fp], detail: Default::default() })
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Provenance {
    pub tool: String,
    pub version: String,
    /// argv as given.
    pub command: Vec<String>,
    /// The spec the run was made from (serde form of the command's spec struct).
    pub spec: serde_json::Value,
    pub inputs: Vec<Input>,
    /// Seed of everything random in the run; None where nothing is.
    pub seed: Option<u64>,
    pub started: String,
    pub finished: Option<String>,
}

impl Provenance {
    /// Provenance of a run starting now.
    pub fn new(command: Vec<String>, spec: serde_json::Value, inputs: Vec<Input>, seed: Option<u64>) -> Provenance {
        Provenance {
            tool: "sfn".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            command,
            spec,
            inputs,
            seed,
            started: utc_now(),
            finished: None,
        }
    }

    /// The input with this role.
    pub fn input(&self, role: &str) -> Option<&Input> {
        self.inputs.iter().find(|i| i.role == role)
    }
}

/// The command line of this process, for provenance.
pub fn command_line() -> Vec<String> {
    std::env::args().collect()
}

/// Now, as RFC 3339 UTC with seconds ("2026-11-30T12:34:56Z").
pub fn utc_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

/// Seconds since the Unix epoch as RFC 3339 UTC. Days to a civil date by Howard Hinnant's
/// `civil_from_days` (valid for every date after 1970).
fn rfc3339(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + (month <= 2) as i64;
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_041_845), "2026-11-30T12:30:45Z");
    }

    #[test]
    fn provenance_round_trips_through_json() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tasks.jsonl");
        std::fs::write(&f, "{}\n").unwrap();
        let p = Provenance::new(
            vec!["sfn".into()],
            serde_json::json!({"x": 1}),
            vec![Input::file("tasks", &f).unwrap()],
            Some(3),
        );
        let back: Provenance = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.input("tasks").unwrap().files[0].bytes, 3);
    }
}
