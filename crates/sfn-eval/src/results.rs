//! The results directory of one evaluation run (a run directory of sfn-run, kind `eval`):
//! - `run.json`: the manifest; its `config` holds the run's tasks, settings and model, and a
//!   restart with others is refused (mixing samples made two ways would silently corrupt the
//!   scores). See [`check_resume`].
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
use crate::judge::{Level, Signals};
use crate::prompt::PromptBody;
use crate::task::Task;
use serde::{Deserialize, Serialize};
use sfn_run::{write_atomic, Manifest, RUN_FILE};
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
    samples_path: PathBuf,
    file: std::fs::File,
    records: Vec<SampleRecord>,
    done: HashSet<String>,
}

pub const SAMPLES_FILE: &str = "samples.jsonl";
pub const SUMMARY_FILE: &str = "summary.json";

/// May a run with settings `config` continue the results in `dir`? `fresh` discards them first.
/// Refused: a directory whose run.json has another config, or samples without a run.json.
pub fn check_resume(dir: &Path, config: &serde_json::Value, fresh: bool) -> Result<()> {
    if fresh {
        for name in [SAMPLES_FILE, SUMMARY_FILE, RUN_FILE] {
            match std::fs::remove_file(dir.join(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(EvalError::io(dir.join(name), e)),
                _ => {}
            }
        }
    }
    match Manifest::read_value(dir)? {
        Some(old) if old.get("config") != Some(config) => {
            Err(EvalError::ResumeMismatch { dir: dir.into(), what: differing_keys(old.get("config"), config) })
        }
        Some(_) => Ok(()),
        None if dir.join(SAMPLES_FILE).exists() => Err(EvalError::ResumeMismatch {
            dir: dir.into(),
            what: format!("{SAMPLES_FILE} exists but {RUN_FILE} does not"),
        }),
        None => Ok(()),
    }
}

impl ResultsDir {
    /// Open the samples of the run directory `dir` (checked with [`check_resume`]): complete
    /// tasks already there are kept, a crash's debris is dropped.
    pub fn open(dir: &Path) -> Result<(ResultsDir, ResumeReport)> {
        let samples_path = dir.join(SAMPLES_FILE);
        let (records, report) = recover_samples(&samples_path)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&samples_path)
            .map_err(|e| EvalError::io(&samples_path, e))?;
        let done = records.iter().map(|r| r.id.clone()).collect();
        Ok((ResultsDir { samples_path, file, records, done }, report))
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
        // A write that fails part-way (a full disk) is cut back off, so the file keeps only whole
        // lines.
        let before = self.file.metadata().map_err(|e| EvalError::io(&self.samples_path, e))?.len();
        if let Err(e) = self.file.write_all(text.as_bytes()).and_then(|_| self.file.flush()) {
            let _ = self.file.set_len(before);
            return Err(EvalError::io(&self.samples_path, e));
        }
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
}

/// Read samples.jsonl, keep the complete tasks, and rewrite the file if anything was dropped.
/// The samples of a results directory's complete tasks (what a resumed run keeps), read without
/// touching the file: for reports and comparisons.
pub fn read_samples(dir: &Path) -> Result<Vec<SampleRecord>> {
    Ok(parse_samples(&dir.join(SAMPLES_FILE))?.0)
}

/// `parse_samples`, then the file rewritten without the debris a crash left (if any).
fn recover_samples(path: &Path) -> Result<(Vec<SampleRecord>, ResumeReport)> {
    let (records, kept_text, report) = parse_samples(path)?;
    if report.dropped_lines > 0 {
        write_atomic(path, &kept_text)?;
    }
    Ok((records, report))
}

/// The complete tasks' samples of samples.jsonl, their lines' text, and what was dropped.
fn parse_samples(path: &Path) -> Result<(Vec<SampleRecord>, Vec<u8>, ResumeReport)> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((vec![], vec![], ResumeReport::default())),
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
    Ok((records, kept_text, report))
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
