//! Study files: one TOML file names A and B and says which stethoscopes to run with which
//! settings. Every section is the serde spec of its command (so everything a flag can say, the
//! file can say), as a table `[delta]` or, to run a command several times, an array of tables
//! `[[merge-sweep]]` whose entries carry a `name` (their results directory).
//!
//! ```toml
//! a = "models/base"          # paths are relative to the study file
//! b = "models/tuned"
//! seed = 0                   # default seed of the sections that have one
//!
//! [delta]
//! bins = 50
//!
//! [[merge-sweep]]
//! name = "reasoning"
//! take = ["o_proj", "qkv", "mlp"]
//! eval.task = "tasks/reasoning.jsonl"
//! ```
//!
//! Top-level `a`, `b` and `seed` fill the sections' fields of the same name where a section does
//! not set them (`a` is a probe's `model`; an evaluation names its own model). A file is checked whole before anything runs: TOML syntax, unknown keys, wrong
//! types, missing fields, paths that do not exist, selectors and layer ranges that do not parse.
//! Each error names the file, the line, the key and what was expected.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use sfn_eval::EvalSpec;
use sfn_scope::delta::DeltaSpec;
use sfn_scope::freeze::sweep::FreezeSweepSpec;
use sfn_scope::freeze::FreezeSpec;
use sfn_scope::patch::PatchSpec;
use sfn_scope::probe::ProbeSpec;
use sfn_scope::sweep::{DestroySweepSpec, MergeSweepSpec};
use std::path::{Path, PathBuf};
use toml::de::{DeString, DeTable, DeValue};
use toml::Spanned;

/// The sections a study may have, in the order a study runs them.
pub const SECTIONS: [&str; 8] =
    ["delta", "merge-sweep", "destroy-sweep", "freeze", "freeze-sweep", "probe", "patch", "eval"];

/// Keys whose values are paths: resolved against the study file's directory.
const PATH_KEYS: [&str; 10] =
    ["a", "b", "model", "task", "data", "grade", "reference", "sets_file", "few_shot", "overrides"];

/// The study file as it is deserialized (sections already normalized to arrays, `name`s taken
/// out, top-level values filled in, paths made absolute).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyFile {
    /// A title for the report (default: the file's name).
    #[serde(default)]
    pub title: Option<String>,
    /// Base checkpoint A.
    pub a: PathBuf,
    /// Changed checkpoint B (needed by delta and merge sweeps).
    #[serde(default)]
    pub b: Option<PathBuf>,
    /// Default seed of the sections that have one.
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub delta: Vec<DeltaSpec>,
    #[serde(default, rename = "merge-sweep")]
    pub merge_sweep: Vec<MergeSweepSpec>,
    #[serde(default, rename = "destroy-sweep")]
    pub destroy_sweep: Vec<DestroySweepSpec>,
    #[serde(default)]
    pub freeze: Vec<FreezeSpec>,
    #[serde(default, rename = "freeze-sweep")]
    pub freeze_sweep: Vec<FreezeSweepSpec>,
    #[serde(default)]
    pub probe: Vec<ProbeSpec>,
    #[serde(default)]
    pub patch: Vec<PatchSpec>,
    #[serde(default)]
    pub eval: Vec<EvalSpec>,
}

/// One command of a study.
#[derive(Debug, Clone, PartialEq)]
pub enum Spec {
    Delta(DeltaSpec),
    MergeSweep(MergeSweepSpec),
    DestroySweep(DestroySweepSpec),
    Freeze(FreezeSpec),
    FreezeSweep(FreezeSweepSpec),
    Probe(ProbeSpec),
    Patch(PatchSpec),
    Eval(EvalSpec),
}

impl Spec {
    /// The spec as its command records it in run.json.
    pub fn to_json(&self) -> serde_json::Value {
        let v = match self {
            Spec::Delta(s) => serde_json::to_value(s),
            Spec::MergeSweep(s) => serde_json::to_value(s),
            Spec::DestroySweep(s) => serde_json::to_value(s),
            Spec::Freeze(s) => serde_json::to_value(s),
            Spec::FreezeSweep(s) => serde_json::to_value(s),
            Spec::Probe(s) => serde_json::to_value(s),
            Spec::Patch(s) => serde_json::to_value(s),
            Spec::Eval(s) => serde_json::to_value(s),
        };
        v.expect("specs are plain data")
    }
}

/// A step of the study: a section's entry, its results directory (relative to the study's) and
/// its spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub section: &'static str,
    /// Its place among the section's entries.
    pub index: usize,
    pub dir: String,
    pub spec: Spec,
}

/// A checked study file.
#[derive(Debug, Clone)]
pub struct Study {
    pub path: PathBuf,
    /// The file as written (copied into the results directory).
    pub text: String,
    pub file: StudyFile,
    pub steps: Vec<Step>,
}

impl Study {
    /// Read and check `path`.
    pub fn open(path: &Path) -> Result<Study> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Study::parse(path, text)
    }

    /// Check `text`, the contents of the study file `path` (relative paths in it are relative to
    /// `path`'s directory).
    pub fn parse(path: &Path, text: String) -> Result<Study> {
        let base = sfn_run::rundir::absolute(path).parent().map(Path::to_path_buf).unwrap_or_default();
        let located = Located { path, text: &text };
        let mut doc = DeTable::parse(&text).map_err(|e| located.toml(&e, &[]))?;
        let keys = key_spans(doc.get_ref(), "");
        let names = prepare(doc.get_mut(), &base).map_err(|(span, msg)| located.at(span, &keys, msg))?;
        let file = StudyFile::deserialize(toml::de::Deserializer::from(doc)).map_err(|e| located.toml(&e, &keys))?;
        let steps = steps(&file, &names);
        for step in &steps {
            check(step).map_err(|(field, msg)| {
                // Where the value was written: in the section (`[delta]` or `[[delta]]`), else the
                // top-level value that filled it in, else the section's header.
                let (s, i) = (step.section, step.index);
                let mut candidates = vec![format!("{s}[{i}].{field}")];
                if i == 0 {
                    candidates.push(format!("{s}.{field}"));
                }
                candidates.extend([field.clone(), format!("{s}[{i}]"), s.to_string()]);
                let span = candidates.iter().find_map(|c| keys.iter().find(|k| &k.path == c)).map(|k| k.span.clone());
                located.key(span, &format!("{s}[{i}].{field}"), msg)
            })?;
        }
        Ok(Study { path: path.to_path_buf(), text, file, steps })
    }
}

/// The file and its text, for errors that say where.
struct Located<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Located<'_> {
    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())].matches('\n').count() + 1
    }

    /// An error of the TOML parser or of a spec's deserialization.
    fn toml(&self, e: &toml::de::Error, keys: &[KeySpan]) -> Error {
        self.at(e.span(), keys, e.message().trim().to_string())
    }

    /// An error at a place in the text: the line, and the key whose value holds that place.
    fn at(&self, span: Option<std::ops::Range<usize>>, keys: &[KeySpan], msg: String) -> Error {
        let key = span.as_ref().and_then(|s| {
            keys.iter()
                .filter(|k| k.span.start <= s.start && s.end <= k.span.end.max(s.start + 1))
                .min_by_key(|k| k.span.end - k.span.start)
                .map(|k| k.path.clone())
        });
        Error::Study { path: self.path.to_path_buf(), line: span.map(|s| self.line(s.start)), key, msg }
    }

    fn key(&self, span: Option<std::ops::Range<usize>>, key: &str, msg: String) -> Error {
        Error::Study {
            path: self.path.to_path_buf(),
            line: span.map(|s| self.line(s.start)),
            key: Some(key.into()),
            msg,
        }
    }
}

/// A key of the file and the span of its key and value, as `merge-sweep[1].eval.task`.
struct KeySpan {
    path: String,
    span: std::ops::Range<usize>,
}

fn key_spans(table: &DeTable, prefix: &str) -> Vec<KeySpan> {
    let mut out = vec![];
    for (k, v) in table {
        let path = if prefix.is_empty() { k.get_ref().to_string() } else { format!("{prefix}.{}", k.get_ref()) };
        let span = k.span().start.min(v.span().start)..k.span().end.max(v.span().end);
        out.push(KeySpan { path: path.clone(), span });
        match v.get_ref() {
            DeValue::Table(t) => out.extend(key_spans(t, &path)),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let DeValue::Table(t) = item.get_ref() {
                        let p = format!("{path}[{i}]");
                        out.push(KeySpan { path: p.clone(), span: item.span() });
                        out.extend(key_spans(t, &p));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// An error at a place in the text (its byte span) and what is wrong there.
type At<T> = std::result::Result<T, (Option<std::ops::Range<usize>>, String)>;

/// Per section, the `name` of each of its entries (None: an unnamed single table).
type Names = Vec<(&'static str, Vec<Option<String>>)>;

/// Normalize the document in place: resolve path values, make every section an array of
/// tables, take out their `name`s (returned per section) and fill in the top-level `a`, `b`
/// and `seed` where a section has such a field and does not set it.
fn prepare(doc: &mut DeTable, base: &Path) -> At<Names> {
    resolve_paths(doc, base);
    let top = |k: &str| doc.get(k).cloned();
    let (a, b, seed) = (top("a"), top("b"), top("seed"));
    let mut names = vec![];
    for section in SECTIONS {
        let Some((key, value)) = doc.iter_mut().find(|(k, _)| k.get_ref() == section) else { continue };
        let key_span = key.span();
        if let DeValue::Table(_) = value.get_ref() {
            let span = value.span();
            let table = std::mem::replace(value, Spanned::new(span.clone(), DeValue::Boolean(false)));
            *value = Spanned::new(span, DeValue::Array(std::iter::once(table).collect()));
        }
        let DeValue::Array(items) = value.get_mut() else {
            return Err((
                Some(key_span),
                format!("`{section}` must be a table ([{section}]) or an array of tables ([[{section}]])"),
            ));
        };
        let several = items.len() > 1;
        let mut section_names = vec![];
        for item in items.iter_mut() {
            let span = item.span();
            let DeValue::Table(table) = item.get_mut() else {
                return Err((Some(span), format!("`{section}` entries must be tables")));
            };
            let name = match table.contains_key("name") {
                true => {
                    let v = table.remove("name").expect("just found");
                    match v.get_ref() {
                        DeValue::String(s) if valid_name(s) => Some(s.to_string()),
                        _ => {
                            return Err((
                                Some(v.span()),
                                "`name` must be a string of letters, digits, `-`, `_` or `.` (it names the results directory)".into(),
                            ))
                        }
                    }
                }
                false if several => {
                    return Err((
                        Some(span),
                        format!("every `[[{section}]]` entry needs a `name` when there are several"),
                    ))
                }
                false => None,
            };
            section_names.push(name);
            for (key, value) in [("a", &a), ("b", &b), ("seed", &seed)] {
                if let (Some(v), Some(field)) = (value.as_ref(), field_for(section, key)) {
                    if table.get(field).is_none() {
                        table.insert(Spanned::new(v.span(), DeString::Borrowed(field)), v.clone());
                    }
                }
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(dup) = section_names.iter().flatten().find(|n| !seen.insert(n.as_str())) {
            return Err((Some(key_span), format!("two `[[{section}]]` entries are named `{dup}`")));
        }
        names.push((section, section_names));
    }
    Ok(names)
}

/// The field of a section's spec that the file's top-level `key` fills: `a` is a probe's
/// `model`; an evaluation names its own model.
fn field_for(section: &str, key: &str) -> Option<&'static str> {
    match (section, key) {
        ("probe", "a") => Some("model"),
        ("eval", "a") => None,
        (_, "a") => Some("a"),
        ("delta" | "merge-sweep" | "probe" | "patch", "b") => Some("b"),
        ("merge-sweep" | "destroy-sweep" | "eval", "seed") => Some("seed"),
        _ => None,
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// Make every relative path value (keys in `PATH_KEYS`, at any depth) absolute against `base`.
fn resolve_paths(table: &mut DeTable, base: &Path) {
    for (k, v) in table.iter_mut() {
        let is_path = PATH_KEYS.contains(&k.get_ref().as_ref());
        match v.get_mut() {
            DeValue::String(s) if is_path && Path::new(s.as_ref()).is_relative() => {
                *s = DeString::Owned(base.join(s.as_ref()).display().to_string());
            }
            DeValue::Table(t) => resolve_paths(t, base),
            DeValue::Array(items) => {
                for item in items.iter_mut() {
                    if let DeValue::Table(t) = item.get_mut() {
                        resolve_paths(t, base);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The steps in run order; a named entry's directory is `section/name`, an unnamed one's
/// `section`.
fn steps(file: &StudyFile, names: &Names) -> Vec<Step> {
    let name = |section: &str, i: usize| {
        let n = names.iter().find(|(s, _)| *s == section).and_then(|(_, n)| n.get(i).cloned().flatten());
        n.map_or_else(|| section.to_string(), |n| format!("{section}/{n}"))
    };
    let mut out = vec![];
    let mut add = |section: &'static str, specs: Vec<Spec>| {
        for (i, spec) in specs.into_iter().enumerate() {
            out.push(Step { section, index: i, dir: name(section, i), spec });
        }
    };
    add("delta", file.delta.iter().cloned().map(Spec::Delta).collect());
    add("merge-sweep", file.merge_sweep.iter().cloned().map(Spec::MergeSweep).collect());
    add("destroy-sweep", file.destroy_sweep.iter().cloned().map(Spec::DestroySweep).collect());
    add("freeze", file.freeze.iter().cloned().map(Spec::Freeze).collect());
    add("freeze-sweep", file.freeze_sweep.iter().cloned().map(Spec::FreezeSweep).collect());
    add("probe", file.probe.iter().cloned().map(Spec::Probe).collect());
    add("patch", file.patch.iter().cloned().map(Spec::Patch).collect());
    add("eval", file.eval.iter().cloned().map(Spec::Eval).collect());
    out
}

/// What deserialization cannot see: that paths exist and selectors parse. Errors are
/// (key path, message).
fn check(step: &Step) -> std::result::Result<(), (String, String)> {
    let at = |field: &str| field.to_string();
    let exists = |field: &str, p: &Path| -> std::result::Result<(), (String, String)> {
        match p.exists() {
            true => Ok(()),
            false => Err((at(field), format!("{} does not exist", p.display()))),
        }
    };
    let parsed = |field: &str, r: std::result::Result<(), String>| r.map_err(|msg| (at(field), msg));
    let selector = |s: &str| sfn_checkpoint::selector::Selector::parse(s).map(|_| ()).map_err(|e| e.to_string());
    let layers = |l: &Option<String>| match l {
        Some(l) => sfn_checkpoint::selector::parse_layer_ranges(l).map(|_| ()).map_err(|e| e.to_string()),
        None => Ok(()),
    };
    match &step.spec {
        Spec::Delta(s) => {
            exists("a", &s.a)?;
            exists("b", &s.b)?;
            parsed("select", s.options().map(|_| ()).map_err(|e| e.to_string()))?;
        }
        Spec::MergeSweep(s) => {
            exists("a", &s.a)?;
            exists("b", &s.b)?;
            exists("eval.task", &s.eval.task)?;
            parsed("take", s.variants().map(|_| ()).map_err(|e| e.to_string()))?;
        }
        Spec::DestroySweep(s) => {
            exists("a", &s.a)?;
            exists("eval.task", &s.eval.task)?;
            parsed("modules", s.variants().map(|_| ()).map_err(|e| e.to_string()))?;
        }
        Spec::Freeze(s) => {
            exists("a", &s.a)?;
            exists("data", &s.data)?;
            if let Some(t) = &s.task {
                exists("task", t)?;
            }
            parsed("train", selector(&s.train))?;
            parsed("layers", layers(&s.layers))?;
        }
        Spec::FreezeSweep(s) => {
            exists("a", &s.a)?;
            exists("data", &s.data)?;
            exists("task", &s.task)?;
            if let Some(f) = &s.sets_file {
                exists("sets_file", f)?;
            }
            let sets = s.resolved_sets().map_err(|e| (at("sets"), e.to_string()))?;
            for (_, sel) in sets {
                parsed("sets", selector(&sel))?;
            }
            parsed("layers", layers(&s.layers))?;
        }
        Spec::Probe(s) => {
            exists("model", &s.model)?;
            if let Some(b) = &s.b {
                exists("b", b)?;
            }
            for (field, path) in s.inputs.files() {
                exists(&format!("inputs.{field}"), path)?;
            }
        }
        Spec::Patch(s) => {
            exists("a", &s.a)?;
            exists("b", &s.b)?;
            for (field, path) in s.inputs.files() {
                exists(&format!("inputs.{field}"), path)?;
            }
            parsed("layers", layers(&s.layers))?;
            for site in &s.sites {
                parsed("sites", patch_site(site))?;
            }
        }
        Spec::Eval(s) => {
            match (&s.model, &s.grade) {
                (Some(m), _) => exists("model", m)?,
                (None, Some(g)) => exists("grade", g)?,
                (None, None) => return Err((at("model"), "an eval section needs `model` (or `grade`)".into())),
            }
            if let Some(t) = &s.task {
                exists("task", t)?;
            }
        }
    }
    Ok(())
}

fn patch_site(site: &str) -> std::result::Result<(), String> {
    sfn_scope::patch::site(site).map(|_| ()).map_err(|e| e.to_string())
}
