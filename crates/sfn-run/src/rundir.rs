//! Run directories: where every command of sfn puts its results, with a `run.json` manifest that
//! says what kind of run it was, its spec and provenance, its status and the files it wrote.
//!
//! Life of a run: `RunDir::create` checks the directory is not (inside) one of the inputs, creates
//! it and writes run.json with status `partial`; results files go in with `write`/`write_json`
//! (atomic) or are `record`ed when another writer made them (figures, an appended JSONL file);
//! `finish_with` marks the run `complete`, or `failed` with the error message. A run killed
//! midway stays `partial`. Readers (the report, a study deciding what to redo) need only
//! `Manifest::read` and the results files, read back into their typed structs.

use crate::atomic::write_atomic;
use crate::error::{Error, Result};
use crate::provenance::{utc_now, Provenance};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};

pub const RUN_FILE: &str = "run.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Started and not finished: running now, interrupted, or killed.
    Partial,
    Complete,
    Failed,
}

/// run.json.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// "delta", "merge", "destroy", "merge-sweep", "destroy-sweep", "eval", …
    pub kind: String,
    pub status: Status,
    #[serde(flatten)]
    pub provenance: Provenance,
    /// Files of the run, relative to its directory, in the order they were written.
    pub files: Vec<String>,
    /// Why a failed run failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What must match for a rerun into this directory to continue it instead of starting over
    /// (an evaluation's tasks, settings and model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
}

impl Manifest {
    /// The manifest of a run that is written whole in one step (a checkpoint directory renamed
    /// into place): complete, finishing now.
    pub fn complete(kind: &str, mut provenance: Provenance, files: Vec<String>) -> Manifest {
        provenance.finished = Some(utc_now());
        Manifest { kind: kind.into(), status: Status::Complete, provenance, files, error: None, config: None }
    }

    /// As run.json holds it.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("manifest is plain data");
        text.push('\n');
        text
    }

    /// run.json of `dir`.
    pub fn read(dir: &Path) -> Result<Manifest> {
        read_json(&dir.join(RUN_FILE))
    }

    /// run.json of `dir` as plain JSON (also from versions of sfn whose manifest had other
    /// fields), or None when there is none.
    pub fn read_value(dir: &Path) -> Result<Option<serde_json::Value>> {
        let path = dir.join(RUN_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Invalid { path, msg: format!("not a run manifest: {e}") }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&path, e)),
        }
    }
}

/// A results file read back into its typed struct.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Invalid { path: path.to_path_buf(), msg: e.to_string() })
}

/// A run directory being written.
#[derive(Debug)]
pub struct RunDir {
    dir: PathBuf,
    manifest: Manifest,
}

impl RunDir {
    /// Create (or reuse) `dir` for a run of `kind` and write run.json with status `partial`.
    /// Refused: a directory that is, or lies inside, one of the provenance's inputs (results must
    /// never land in a checkpoint or a data directory).
    pub fn create(dir: &Path, kind: &str, provenance: Provenance) -> Result<RunDir> {
        let target = absolute(dir);
        for input in &provenance.inputs {
            let paths = std::iter::once(&input.path).chain(input.files.iter().map(|f| &f.path));
            for p in paths {
                let Ok(p) = std::fs::canonicalize(p) else { continue };
                if target.starts_with(&p) {
                    return Err(Error::Output {
                        path: dir.to_path_buf(),
                        msg: format!("is inside the input {}; choose an output directory elsewhere", p.display()),
                    });
                }
            }
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let dir = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
        let manifest = Manifest {
            kind: kind.into(),
            status: Status::Partial,
            provenance,
            files: vec![],
            error: None,
            config: None,
        };
        let run = RunDir { dir, manifest };
        run.save()?;
        Ok(run)
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The path of `name` in the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Set what a rerun must match to resume (saved at once).
    pub fn set_config(&mut self, config: serde_json::Value) -> Result<()> {
        self.manifest.config = Some(config);
        self.save()
    }

    /// Write `bytes` as `name` (atomically) and list it in run.json.
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Result<PathBuf> {
        let path = self.join(name);
        write_atomic(&path, bytes)?;
        self.record(name)?;
        Ok(path)
    }

    /// Write `value` as pretty JSON (with a final newline).
    pub fn write_json(&mut self, name: &str, value: &impl Serialize) -> Result<PathBuf> {
        let mut text = serde_json::to_string_pretty(value).expect("results are plain data");
        text.push('\n');
        self.write(name, text.as_bytes())
    }

    /// List a file (or subdirectory) that another writer put in the directory.
    pub fn record(&mut self, name: &str) -> Result<()> {
        if !self.manifest.files.iter().any(|f| f == name) {
            self.manifest.files.push(name.into());
            self.save()?;
        }
        Ok(())
    }

    /// Run `work`, then mark the run complete, or failed with the error (which is returned).
    pub fn finish_with<T, E>(mut self, work: impl FnOnce(&mut RunDir) -> Result<T, E>) -> Result<(T, Manifest), E>
    where
        E: From<Error> + std::fmt::Display,
    {
        match work(&mut self) {
            Ok(value) => {
                self.manifest.status = Status::Complete;
                self.manifest.provenance.finished = Some(utc_now());
                self.save()?;
                Ok((value, self.manifest))
            }
            Err(e) => {
                self.manifest.status = Status::Failed;
                self.manifest.error = Some(e.to_string());
                self.manifest.provenance.finished = Some(utc_now());
                // The work's error is the one to report; a failure to record it must not hide it.
                let _ = self.save();
                Err(e)
            }
        }
    }

    fn save(&self) -> Result<()> {
        write_atomic(&self.dir.join(RUN_FILE), self.manifest.to_json().as_bytes())
    }
}

/// Absolute form of a path that may not exist yet: its nearest existing ancestor canonicalized.
pub fn absolute(path: &Path) -> PathBuf {
    let mut existing = path;
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.parent(), existing.file_name()) {
            (Some(p), Some(name)) => {
                rest.push(name.to_os_string());
                existing = if p.as_os_str().is_empty() { Path::new(".") } else { p };
            }
            _ => break,
        }
    }
    let mut abs = std::fs::canonicalize(existing).unwrap_or_else(|_| existing.to_path_buf());
    abs.extend(rest.iter().rev());
    abs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provenance::Input;

    fn provenance(inputs: Vec<Input>) -> Provenance {
        Provenance::new(vec!["sfn".into(), "test".into()], serde_json::json!({"k": 1}), inputs, None)
    }

    #[test]
    fn a_run_goes_from_partial_to_complete_with_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let run = RunDir::create(&out, "test", provenance(vec![])).unwrap();
        assert_eq!(Manifest::read(&out).unwrap().status, Status::Partial);
        let (n, m) = run
            .finish_with(|run| -> Result<usize> {
                run.write_json("result.json", &serde_json::json!({"x": 2}))?;
                Ok(7)
            })
            .unwrap();
        assert_eq!(n, 7);
        let back = Manifest::read(&out).unwrap();
        assert_eq!(back, m);
        assert_eq!((back.status, back.files.as_slice()), (Status::Complete, &["result.json".to_string()][..]));
        assert!(back.provenance.finished.is_some());
        let v: serde_json::Value = read_json(&out.join("result.json")).unwrap();
        assert_eq!(v["x"], 2);
    }

    #[test]
    fn a_failed_run_records_its_error() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::create(dir.path(), "test", provenance(vec![])).unwrap();
        let err = run.finish_with(|_| -> Result<()> { Err(Error::io("x", std::io::ErrorKind::Other.into())) });
        assert!(err.is_err());
        let m = Manifest::read(dir.path()).unwrap();
        assert_eq!(m.status, Status::Failed);
        assert!(m.error.unwrap().starts_with("x:"));
    }

    #[test]
    fn a_directory_inside_an_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model");
        std::fs::create_dir(&model).unwrap();
        std::fs::write(model.join("config.json"), "{}").unwrap();
        let input = Input::file("model", &model.join("config.json")).unwrap();
        let input = Input { path: model.clone(), ..input };
        let err = RunDir::create(&model.join("out"), "test", provenance(vec![input.clone()])).unwrap_err();
        assert!(err.to_string().contains("inside the input"), "{err}");
        assert!(!model.join("out").exists());
        RunDir::create(&dir.path().join("elsewhere"), "test", provenance(vec![input])).unwrap();
    }
}
