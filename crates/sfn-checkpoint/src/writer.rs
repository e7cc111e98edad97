//! Streaming, atomic writing of Hugging Face safetensors checkpoints.
//!
//! The caller declares every tensor (name, dtype, shape) up front, so shard headers can be written
//! before any data, and then supplies each tensor's bytes one at a time through a callback: a
//! whole model is never in memory. Shards of at most `max_shard_bytes` are named like
//! transformers' (`model-00001-of-00003.safetensors` + `model.safetensors.index.json`, or a single
//! `model.safetensors`). Everything is written into a temporary directory beside the output and
//! renamed into place at the end, so a failure leaves no partial output. The writer refuses any
//! output that is, contains, or lies inside one of the inputs.

use crate::checkpoint::{Checkpoint, TensorInfo, INDEX_FILE, SINGLE_FILE};
use crate::dtype::{self, DType};
use crate::error::{Error, Result};
use sfn_run::rundir::absolute;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// transformers' default `max_shard_size` ("5GB").
pub const DEFAULT_MAX_SHARD_BYTES: u64 = 5_000_000_000;

/// Files besides the weights that make a checkpoint usable, copied from the source checkpoint.
pub const SIDE_FILES: &[&str] = &[
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
];

#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl TensorSpec {
    /// Every tensor of `ck` as sfn writes it out whole (convert, freeze): in `forced` dtype when
    /// given, else as stored, with quantized tensors widened to f32.
    pub fn all_of(ck: &crate::Checkpoint, forced: Option<DType>) -> Vec<TensorSpec> {
        ck.tensors()
            .iter()
            .map(|t| TensorSpec {
                name: t.name.clone(),
                dtype: forced.unwrap_or(if t.dtype.is_quantized() { DType::F32 } else { t.dtype }),
                shape: t.shape.clone(),
            })
            .collect()
    }

    pub fn nbytes(&self) -> u64 {
        self.dtype.byte_len(self.shape.iter().product()).unwrap_or(0) as u64
    }
}

#[derive(Debug, Clone)]
pub struct WriteOptions {
    pub max_shard_bytes: u64,
    /// Extra `__metadata__` entries for every shard (`format: pt` is always set).
    pub metadata: BTreeMap<String, String>,
    /// Directory to copy `SIDE_FILES` from (those that exist there).
    pub side_files_from: Option<PathBuf>,
    /// A config.json to write instead of the copied one (e.g. with fewer layers).
    pub config_json: Option<serde_json::Value>,
    /// Extra files to write into the output: (file name, contents), e.g. a README model card.
    pub extra_files: Vec<(String, String)>,
    /// Paths read by this run; the output may not be, contain, or lie inside any of them.
    pub inputs: Vec<PathBuf>,
    /// Replace an existing output directory (never an input).
    pub overwrite: bool,
    /// fsync every shard before the final rename, so the output survives a power loss, not just a
    /// crash of sfn. Off by default: it costs about as much as the write itself (like `cp`,
    /// transformers and mergekit, which do not sync either).
    pub sync: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            max_shard_bytes: DEFAULT_MAX_SHARD_BYTES,
            metadata: BTreeMap::new(),
            side_files_from: None,
            config_json: None,
            extra_files: Vec::new(),
            inputs: Vec::new(),
            overwrite: false,
            sync: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct WriteSummary {
    pub dir: PathBuf,
    pub shards: Vec<String>,
    pub total_bytes: u64,
}

fn default_max_shard_size() -> String {
    "5GB".into()
}

/// How a command writes a checkpoint (convert, merge, destroy, freeze): where, in which dtype,
/// in shards of what size. The spec form of `WriteOptions`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct WriteSpec {
    /// Output directory (must not exist, unless --force; never an input).
    #[cfg_attr(feature = "cli", arg(long, short = 'o'))]
    #[serde(default)]
    pub out: Option<PathBuf>,
    /// Store every tensor as f32, f16, bf16 or f64 (default: keep the stored dtype; quantized
    /// GGUF tensors become f32).
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub dtype: Option<String>,
    /// Largest shard, e.g. 5GB, 500MB, 2GiB or a byte count (transformers' default is 5GB).
    #[cfg_attr(feature = "cli", arg(long, default_value = "5GB"))]
    #[serde(default = "default_max_shard_size")]
    pub max_shard_size: String,
    /// Replace OUT if it exists.
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub force: bool,
    /// fsync the output before renaming it into place (survives power loss; slower).
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub sync: bool,
}

impl Default for WriteSpec {
    fn default() -> Self {
        WriteSpec { out: None, dtype: None, max_shard_size: default_max_shard_size(), force: false, sync: false }
    }
}

impl WriteSpec {
    /// The output directory, which this command needs.
    pub fn out(&self) -> Result<&Path> {
        self.out.as_deref().ok_or_else(|| Error::Usage("an output directory (-o OUT) is required".into()))
    }

    /// The dtype to store every tensor in, None to keep each stored dtype.
    pub fn dtype(&self) -> Result<Option<DType>> {
        match &self.dtype {
            Some(d) => DType::parse_writable(d)
                .map(Some)
                .ok_or_else(|| Error::Usage(format!("dtype {d}: choose f32, f16, bf16 or f64"))),
            None => Ok(None),
        }
    }

    /// Options for writing the output from `inputs` (all their files and paths are protected);
    /// side files (tokenizer, generation config) come from the first input when it is an HF
    /// directory, and so does config.json (derived from the metadata for GGUF).
    pub fn options(&self, inputs: &[&Checkpoint]) -> Result<WriteOptions> {
        let mut protected = Vec::new();
        for ck in inputs {
            protected.push(ck.path.clone());
            protected.extend(ck.files().map(|p| p.to_path_buf()));
        }
        let first = inputs[0];
        let dir = first.format == crate::Format::SafetensorsDir;
        Ok(WriteOptions {
            max_shard_bytes: parse_size(&self.max_shard_size)?,
            side_files_from: dir.then(|| first.path.clone()),
            config_json: if dir { None } else { first.config.as_ref().map(|c| c.to_hf_json()) },
            inputs: protected,
            overwrite: self.force,
            sync: self.sync,
            ..Default::default()
        })
    }
}

/// Parse "5GB", "500MB", "2GiB", "1234" into bytes (decimal and binary units, like transformers).
pub fn parse_size(s: &str) -> Result<u64> {
    let bad = Error::Usage;
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024f64.powi(2),
        "gib" => 1024f64.powi(3),
        "tib" => 1024f64.powi(4),
        other => return Err(bad(format!("size `{s}`: unknown unit `{other}` (use B, KB, MB, GB, KiB, MiB, GiB)"))),
    };
    let n: f64 = num.parse().map_err(|_| bad(format!("size `{s}` is not a number with a unit")))?;
    if n <= 0.0 {
        return Err(bad(format!("size `{s}` must be positive")));
    }
    Ok((n * mult) as u64)
}

/// A README.md model card for a checkpoint sfn wrote: the title, a list of facts (inputs, plan,
/// command line …) and sections with a heading each. Returns (file name, text) for
/// `WriteOptions::extra_files`.
pub fn model_card(title: &str, facts: &[(&str, String)], sections: &[(&str, String)]) -> (String, String) {
    let mut text = format!("# {title}\n\nWritten by sfn {}.\n\n", env!("CARGO_PKG_VERSION"));
    for (k, v) in facts {
        text.push_str(&format!("- {k}: {v}\n"));
    }
    for (heading, body) in sections {
        text.push_str(&format!("\n{heading}:\n\n{body}\n"));
    }
    ("README.md".into(), text)
}

/// Split tensors (in the given order) into shards of at most `max` bytes; an oversized tensor gets
/// a shard of its own. Returns index ranges into `specs`.
fn plan_shards(specs: &[TensorSpec], max: u64) -> Vec<std::ops::Range<usize>> {
    let mut shards = Vec::new();
    let (mut start, mut size) = (0, 0u64);
    for (i, s) in specs.iter().enumerate() {
        if i > start && size + s.nbytes() > max {
            shards.push(start..i);
            start = i;
            size = 0;
        }
        size += s.nbytes();
    }
    if start < specs.len() || specs.is_empty() {
        shards.push(start..specs.len());
    }
    shards
}

/// The weight files a checkpoint of `specs` in shards of at most `max_shard_bytes` consists of,
/// as `write_checkpoint` names them.
pub fn weight_files(specs: &[TensorSpec], max_shard_bytes: u64) -> Vec<String> {
    let n = plan_shards(specs, max_shard_bytes.max(1)).len();
    let mut names = shard_names(n);
    if n > 1 {
        names.push(INDEX_FILE.into());
    }
    names
}

fn shard_names(n: usize) -> Vec<String> {
    if n == 1 {
        vec![SINGLE_FILE.to_string()]
    } else {
        (1..=n).map(|i| format!("model-{i:05}-of-{n:05}.safetensors")).collect()
    }
}

/// Refuse an output that would touch an input: equal to it, inside it, or containing it.
pub fn check_output_path(out: &Path, inputs: &[PathBuf]) -> Result<()> {
    let out_abs = absolute(out);
    for input in inputs {
        let in_abs = absolute(input);
        if out_abs == in_abs || out_abs.starts_with(&in_abs) || in_abs.starts_with(&out_abs) {
            return Err(Error::output(
                out,
                format!("refusing to write here: it is or overlaps the input {}", input.display()),
            ));
        }
    }
    Ok(())
}

/// Removes the temporary directory unless the write completed.
struct TempDir(Option<PathBuf>);
impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// Counts the bytes a provider writes so a wrong amount is caught before the file is finished,
/// and keeps a failed write's error: providers name their input in errors, but a full disk is
/// about the output.
struct Counting<'a, W: Write> {
    inner: &'a mut W,
    written: u64,
    failed: Option<std::io::Error>,
}
impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf).map_err(|e| {
            let copy = std::io::Error::new(e.kind(), e.to_string());
            self.failed = Some(e);
            copy
        })?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Write a checkpoint directory at `out`. `fill(spec, w)` must write exactly `spec.nbytes()`
/// little-endian bytes of that tensor; it is called once per tensor, in `specs` order.
pub fn write_checkpoint(
    out: &Path,
    specs: &[TensorSpec],
    opts: &WriteOptions,
    mut fill: impl FnMut(&TensorSpec, &mut dyn Write) -> Result<()>,
) -> Result<WriteSummary> {
    check_output_path(out, &opts.inputs)?;
    if out.exists() && !opts.overwrite {
        return Err(Error::output(out, "already exists (pass --force to replace it)"));
    }
    let mut seen = std::collections::HashSet::new();
    for s in specs {
        if s.dtype.is_quantized() {
            return Err(Error::tensor(
                &s.name,
                format!("cannot write {} to safetensors; choose f32, f16 or bf16", s.dtype),
            ));
        }
        if !seen.insert(s.name.as_str()) {
            return Err(Error::tensor(&s.name, "declared twice"));
        }
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    let base = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    let tmp = parent.join(format!(".{base}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut guard = TempDir(Some(tmp.clone()));

    let plan = plan_shards(specs, opts.max_shard_bytes.max(1));
    let n = plan.len();
    let shard_names = shard_names(n);
    let mut weight_map = serde_json::Map::new();
    let mut total_bytes = 0u64;
    for (range, shard) in plan.iter().zip(&shard_names) {
        let path = tmp.join(shard);
        // Errors name the file being made, not its temporary directory.
        let shown = out.join(shard);
        let shard_specs = &specs[range.clone()];
        let file = File::create(&path).map_err(|e| Error::io(&shown, e))?;
        let mut w = BufWriter::with_capacity(8 << 20, file);
        let header = shard_header(shard_specs, &opts.metadata);
        w.write_all(&(header.len() as u64).to_le_bytes()).map_err(|e| Error::io(&shown, e))?;
        w.write_all(&header).map_err(|e| Error::io(&shown, e))?;
        for s in shard_specs {
            let mut counter = Counting { inner: &mut w, written: 0, failed: None };
            if let Err(e) = fill(s, &mut counter) {
                return Err(counter.failed.map_or(e, |w| Error::io(&shown, w)));
            }
            if counter.written != s.nbytes() {
                return Err(Error::tensor(
                    &s.name,
                    format!(
                        "{} bytes supplied for {:?} {}, expected {}",
                        counter.written,
                        s.shape,
                        s.dtype,
                        s.nbytes()
                    ),
                ));
            }
            weight_map.insert(s.name.clone(), shard.clone().into());
            total_bytes += s.nbytes();
        }
        let file = w.into_inner().map_err(|e| Error::io(&shown, e.into_error()))?;
        if opts.sync {
            file.sync_all().map_err(|e| Error::io(&shown, e))?;
        }
    }
    if n > 1 {
        let index = serde_json::json!({"metadata": {"total_size": total_bytes}, "weight_map": weight_map});
        write_file(&tmp, out, INDEX_FILE, serde_json::to_string_pretty(&index).unwrap().as_bytes())?;
    }
    if let Some(src) = &opts.side_files_from {
        for name in SIDE_FILES {
            let from = src.join(name);
            if from.is_file() && !(*name == "config.json" && opts.config_json.is_some()) {
                std::fs::copy(&from, tmp.join(name))
                    .map_err(|e| Error::output(out.join(name), format!("copying {}: {e}", from.display())))?;
            }
        }
    }
    if let Some(cfg) = &opts.config_json {
        write_file(&tmp, out, "config.json", serde_json::to_string_pretty(cfg).unwrap().as_bytes())?;
    }
    for (name, text) in &opts.extra_files {
        write_file(&tmp, out, name, text.as_bytes())?;
    }
    if out.exists() {
        // Only reached with `overwrite`: move the old directory aside first so that a failed
        // rename never leaves the user with neither version.
        let old = parent.join(format!(".{base}.old-{}", std::process::id()));
        std::fs::rename(out, &old).map_err(|e| Error::io(out, e))?;
        std::fs::rename(&tmp, out).map_err(|e| Error::io(out, e))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&tmp, out).map_err(|e| Error::io(out, e))?;
    }
    guard.0 = None; // renamed into place: nothing to remove
    Ok(WriteSummary { dir: out.to_path_buf(), shards: shard_names, total_bytes })
}

/// Write a checkpoint into `dir`, a directory that exists and holds other files (a training run's
/// directory, with its log): the checkpoint is written whole into a temporary directory inside
/// it, then each file is renamed into `dir`, config.json last, so a reader that finds config.json
/// finds every weight file (each rename is atomic; the set of them is not).
pub fn write_checkpoint_into(
    dir: &Path,
    specs: &[TensorSpec],
    opts: &WriteOptions,
    fill: impl FnMut(&TensorSpec, &mut dyn Write) -> Result<()>,
) -> Result<WriteSummary> {
    let tmp = dir.join(".checkpoint.partial");
    let summary = write_checkpoint(&tmp, specs, &WriteOptions { overwrite: true, ..opts.clone() }, fill)?;
    let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(&tmp)
        .map_err(|e| Error::io(&tmp, e))?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    names.sort_by_key(|n| (n == "config.json", n.clone()));
    for name in names {
        let to = dir.join(&name);
        std::fs::rename(tmp.join(&name), &to).map_err(|e| Error::io(&to, e))?;
    }
    std::fs::remove_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
    Ok(WriteSummary { dir: dir.to_path_buf(), ..summary })
}

/// The JSON header of one shard, padded with spaces to a multiple of 8 bytes (as the safetensors
/// library does) so tensor data stays aligned.
fn shard_header(specs: &[TensorSpec], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let mut obj = serde_json::Map::new();
    let mut md: serde_json::Map<String, serde_json::Value> =
        metadata.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
    md.insert("format".into(), "pt".into());
    obj.insert("__metadata__".into(), md.into());
    let mut offset = 0u64;
    for s in specs {
        obj.insert(
            s.name.clone(),
            serde_json::json!({"dtype": s.dtype.name(), "shape": s.shape, "data_offsets": [offset, offset + s.nbytes()]}),
        );
        offset += s.nbytes();
    }
    let mut bytes = serde_json::to_vec(&obj).unwrap();
    while !bytes.len().is_multiple_of(8) {
        bytes.push(b' ');
    }
    bytes
}

/// Write `name` into the temporary directory `tmp` of output `out` (errors name it in `out`).
fn write_file(tmp: &Path, out: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    std::fs::write(tmp.join(name), bytes).map_err(|e| Error::io(out.join(name), e))
}

/// Stream tensor `t` of `ck` into `w` as `dtype`: the stored bytes when they already are in that
/// dtype and layout, otherwise converted through f32 in bounded chunks.
pub fn write_tensor_as(ck: &Checkpoint, t: &TensorInfo, dtype: DType, w: &mut dyn Write) -> Result<()> {
    let io = |e| Error::io(ck.file_of(t), e);
    if t.dtype == dtype && ck.copy_raw(t, w)? {
        return Ok(());
    }
    let mut bytes = Vec::new();
    ck.for_each_f32_chunk(t, 1 << 20, |_, values| {
        bytes.clear();
        dtype::from_f32(dtype, values, &mut bytes);
        w.write_all(&bytes).map_err(io)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, n: usize) -> TensorSpec {
        TensorSpec { name: name.into(), dtype: DType::F32, shape: vec![n] }
    }

    #[test]
    fn sizes_in_decimal_and_binary_units() {
        assert_eq!(parse_size("5GB").unwrap(), 5_000_000_000);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("500 MB").unwrap(), 500_000_000);
        assert_eq!(parse_size("1234").unwrap(), 1234);
        assert!(parse_size("5XB").unwrap_err().to_string().contains("unknown unit"));
        assert!(parse_size("0MB").is_err());
    }

    #[test]
    fn shards_split_at_the_byte_limit_and_oversized_tensors_stand_alone() {
        let specs = vec![spec("a", 10), spec("b", 10), spec("c", 100), spec("d", 5)];
        // 40-byte tensors: a+b fit in 80, c (400) alone, d next.
        assert_eq!(plan_shards(&specs, 80), vec![0..2, 2..3, 3..4]);
        assert_eq!(plan_shards(&specs, 10_000), vec![0..4]);
    }

    #[test]
    fn output_inside_or_equal_to_an_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("model");
        std::fs::create_dir(&input).unwrap();
        for out in [input.clone(), input.join("sub"), dir.path().to_path_buf()] {
            let err = check_output_path(&out, &[input.clone()]).unwrap_err().to_string();
            assert!(err.contains("overlaps the input"), "{err}");
        }
        check_output_path(&dir.path().join("other"), &[input]).unwrap();
    }
}
