//! The results directory of one evaluation run:
//! - `run.json`: the run's settings; a restart with other settings is refused (mixing samples made
//!   two ways would silently corrupt the scores).
//! - `samples.jsonl`: one line per sample, appended as tasks finish. A task's samples are
//!   written together; on restart the tasks whose samples are all present are skipped, and a
//!   crash's debris (a half-written last line, a task with only some of its samples) is dropped
//!   and the file rewritten atomically. Kept lines are kept byte for byte, and a complete run's
//!   file is put in task order, so an interrupted and resumed run ends with the same file as an
//!   uninterrupted one.
//! - `summary.json`: written atomically at the end (see [`crate::run::Summary`]).

use crate::answer::AnswerSource;
use crate::error::{EvalError, Result};
use crate::generate::FinishReason;
use crate::io::write_atomic;
use crate::judge::{Level, Signals};
use crate::prompt::PromptBody;
use crate::task::Task;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LevelSource {
    Judge,
    Override,
}

/// One line of samples.jsonl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    pub id: String,
    /// 0-based sample index within the task.
    pub sample: usize,
    /// Samples of this task in all; the task is complete on disk when all are there.
    pub samples: usize,
    pub prompt: PromptBody,
    pub output: String,
    /// Generated length, in the unit of the summary's `token_count_kind`.
    pub tokens: usize,
    pub finish: FinishReason,
    pub gold: Option<String>,
    pub extracted: Option<String>,
    pub extracted_by: Option<AnswerSource>,
    /// `None`: no gold answer (conversation task).
    pub correct: Option<bool>,
    pub level: Level,
    pub level_source: LevelSource,
    /// The judge's own level and the test that decided it (kept when overridden).
    pub judge_level: Level,
    pub judge_reason: String,
    pub signals: Signals,
}

/// What was found on disk when a results directory was opened.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResumeReport {
    pub kept_tasks: usize,
    pub kept_samples: usize,
    /// Lines dropped: a truncated last line and the samples of incomplete tasks.
    pub dropped_lines: usize,
}

pub struct ResultsDir {
    dir: PathBuf,
    samples_path: PathBuf,
    file: std::fs::File,
    records: Vec<SampleRecord>,
    done: HashSet<String>,
}

pub const SAMPLES_FILE: &str = "samples.jsonl";
pub const SUMMARY_FILE: &str = "summary.json";
pub const RUN_FILE: &str = "run.json";

impl ResultsDir {
    /// Open (creating) `dir` for a run with settings `config`. `fresh` discards earlier results.
    pub fn open(dir: &Path, config: &serde_json::Value, fresh: bool) -> Result<(ResultsDir, ResumeReport)> {
        std::fs::create_dir_all(dir).map_err(|e| EvalError::io(dir, e))?;
        let samples_path = dir.join(SAMPLES_FILE);
        let run_path = dir.join(RUN_FILE);
        if fresh {
            for name in [SAMPLES_FILE, SUMMARY_FILE, RUN_FILE] {
                match std::fs::remove_file(dir.join(name)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(EvalError::io(dir.join(name), e)),
                    _ => {}
                }
            }
        }

        let run = serde_json::json!({ "sfn_version": env!("CARGO_PKG_VERSION"), "config": config });
        match std::fs::read(&run_path) {
            Ok(bytes) => {
                let old: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| EvalError::CorruptResults {
                    path: run_path.clone(),
                    line: e.line(),
                    message: e.to_string(),
                })?;
                if old.get("config") != Some(config) {
                    let what = differing_keys(old.get("config"), config);
                    return Err(EvalError::ResumeMismatch { dir: dir.into(), what });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if samples_path.exists() {
                    return Err(EvalError::ResumeMismatch {
                        dir: dir.into(),
                        what: format!("{SAMPLES_FILE} exists but {RUN_FILE} does not"),
                    });
                }
                write_atomic(&run_path, serde_json::to_string_pretty(&run)?.as_bytes())?;
            }
            Err(e) => return Err(EvalError::io(&run_path, e)),
        }

        let (records, report) = recover_samples(&samples_path)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&samples_path)
            .map_err(|e| EvalError::io(&samples_path, e))?;
        let done = records.iter().map(|r| r.id.clone()).collect();
        Ok((ResultsDir { dir: dir.into(), samples_path, file, records, done }, report))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn is_done(&self, id: &str) -> bool {
        self.done.contains(id)
    }

    /// Every sample on disk, in file order.
    pub fn records(&self) -> &[SampleRecord] {
        &self.records
    }

    /// Append all samples of one task with a single write, then flush to the OS. (No fsync per
    /// task: a crash may lose the last tasks, which the restart simply redoes.)
    pub fn append_task(&mut self, records: Vec<SampleRecord>) -> Result<()> {
        let Some(first) = records.first() else { return Ok(()) };
        let id = first.id.clone();
        let mut text = String::new();
        for r in &records {
            text.push_str(&serde_json::to_string(r)?);
            text.push('\n');
        }
        self.file.write_all(text.as_bytes()).map_err(|e| EvalError::io(&self.samples_path, e))?;
        self.file.flush().map_err(|e| EvalError::io(&self.samples_path, e))?;
        self.done.insert(id);
        self.records.extend(records);
        Ok(())
    }

    /// Rewrite samples.jsonl (atomically, only if needed) with its tasks in the order of `tasks`,
    /// samples in index order; records of other tasks, if any, stay after them in file order.
    /// Lines are re-serialised from records read back from them, which gives the same bytes.
    pub fn put_in_order(&mut self, tasks: &[Task]) -> Result<()> {
        let rank: HashMap<&str, usize> = tasks.iter().enumerate().map(|(i, t)| (t.id.as_str(), i)).collect();
        let key = |r: &SampleRecord| (rank.get(r.id.as_str()).copied().unwrap_or(usize::MAX), r.sample);
        if self.records.windows(2).all(|w| key(&w[0]) <= key(&w[1])) {
            return Ok(());
        }
        let mut records = std::mem::take(&mut self.records);
        records.sort_by_key(key); // stable: unknown tasks keep their file order
        let mut text = String::new();
        for r in &records {
            text.push_str(&serde_json::to_string(r)?);
            text.push('\n');
        }
        self.records = records;
        write_atomic(&self.samples_path, text.as_bytes())?;
        // The old handle appends to the replaced file; later appends go to the new one.
        self.file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.samples_path)
            .map_err(|e| EvalError::io(&self.samples_path, e))?;
        Ok(())
    }

    /// Make appended samples durable (called at the end and between batches).
    pub fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(|e| EvalError::io(&self.samples_path, e))
    }

    pub fn write_summary(&self, summary: &impl Serialize) -> Result<PathBuf> {
        let path = self.dir.join(SUMMARY_FILE);
        let mut text = serde_json::to_string_pretty(summary)?;
        text.push('\n');
        write_atomic(&path, text.as_bytes())?;
        Ok(path)
    }
}

/// Read samples.jsonl, keep the complete tasks, and rewrite the file if anything was dropped.
fn recover_samples(path: &Path) -> Result<(Vec<SampleRecord>, ResumeReport)> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((vec![], ResumeReport::default())),
        Err(e) => return Err(EvalError::io(path, e)),
    };
    let mut report = ResumeReport::default();
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    // split() leaves an empty slice after the final newline; anything else there is a line the
    // crash cut short.
    if let Some(last) = lines.pop() {
        if !last.is_empty() {
            report.dropped_lines += 1;
        }
    }
    let n_lines = lines.len();
    let mut parsed: Vec<(&[u8], SampleRecord)> = Vec::with_capacity(n_lines);
    for (i, line) in lines.into_iter().enumerate() {
        match serde_json::from_slice::<SampleRecord>(line) {
            Ok(r) => parsed.push((line, r)),
            // A complete but unreadable last line: the crash hit between write and newline
            // ordering on some filesystems. Anything earlier is real corruption.
            Err(_) if i + 1 == n_lines => report.dropped_lines += 1,
            Err(e) => return Err(EvalError::CorruptResults { path: path.into(), line: i + 1, message: e.to_string() }),
        }
    }
    let mut count: HashMap<&str, usize> = HashMap::new();
    for (_, r) in &parsed {
        *count.entry(r.id.as_str()).or_default() += 1;
    }
    let complete: HashSet<String> =
        parsed.iter().filter(|(_, r)| count[r.id.as_str()] == r.samples).map(|(_, r)| r.id.clone()).collect();
    let mut kept_text = Vec::new();
    let mut records = Vec::new();
    for (line, r) in parsed {
        if complete.contains(&r.id) {
            kept_text.extend_from_slice(line);
            kept_text.push(b'\n');
            records.push(r);
        } else {
            report.dropped_lines += 1;
        }
    }
    report.kept_samples = records.len();
    report.kept_tasks = complete.len();
    if report.dropped_lines > 0 {
        write_atomic(path, &kept_text)?;
    }
    Ok((records, report))
}

/// Top-level keys whose values differ between two JSON objects, for the mismatch message.
fn differing_keys(old: Option<&serde_json::Value>, new: &serde_json::Value) -> String {
    let (Some(serde_json::Value::Object(a)), serde_json::Value::Object(b)) = (old, new) else {
        return "run.json is not from this version of sfn".into();
    };
    let mut keys: Vec<&str> = a.keys().chain(b.keys()).map(|k| k.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    let diff: Vec<&str> = keys.into_iter().filter(|k| a.get(*k) != b.get(*k)).collect();
    format!("different {}", diff.join(", "))
}
