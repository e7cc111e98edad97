//! Opening a checkpoint and reading its tensors lazily.
//!
//! Accepts: a directory with config.json and `model.safetensors`, or shards listed in
//! `model.safetensors.index.json` (or, without an index, every `*.safetensors` in it); a lone
//! `.safetensors` file; a `.gguf` file (names and metadata mapped to Hugging Face ones by
//! `crate::gguf`). Files are memory-mapped; nothing is read until a tensor is asked for, and
//! tensors are converted to f32 in caller-sized chunks so memory stays bounded.
//!
//! Every header is validated up front (sizes, offsets, overlap, dtypes) so that later reads cannot
//! go out of bounds; errors name the file and the tensor.

use crate::config::ModelConfig;
use crate::dtype::{self, DType};
use crate::error::{Error, Result};
use crate::mapped::Mapped;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

pub const INDEX_FILE: &str = "model.safetensors.index.json";
pub const SINGLE_FILE: &str = "model.safetensors";
/// A safetensors header larger than this is certainly corrupt (real ones are well under 10 MB).
const MAX_HEADER_BYTES: u64 = 100 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    SafetensorsDir,
    SafetensorsFile,
    Gguf,
}

/// Where one tensor's bytes live and how to interpret them.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// Canonical (Hugging Face) name.
    pub name: String,
    pub dtype: DType,
    /// Row-major shape as Hugging Face stores it (`[out_features, in_features]` for a linear weight).
    pub shape: Vec<usize>,
    /// Index into the checkpoint's files.
    pub file: usize,
    /// Byte range of the data inside that file.
    pub start: usize,
    pub end: usize,
    /// `Some(heads)` when the stored rows are in llama.cpp's rotary order and must be un-permuted
    /// per head on read (GGUF q/k of Llama-family models).
    pub rope_permuted_heads: Option<usize>,
}

impl TensorInfo {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn nbytes(&self) -> usize {
        self.end - self.start
    }
    /// Elements per row (1 for a vector).
    pub fn row_len(&self) -> usize {
        self.shape.iter().skip(1).product::<usize>().max(1)
    }
}

struct MappedFile {
    path: PathBuf,
    map: Mapped,
}

/// The largest page-cache folio a read fault maps (PMD size on x86-64).
const FOLIO: usize = 2 << 20;

pub struct Checkpoint {
    /// The path the user gave.
    pub path: PathBuf,
    pub format: Format,
    pub config: Option<ModelConfig>,
    /// `__metadata__` of the safetensors files (empty for GGUF).
    pub metadata: BTreeMap<String, String>,
    /// Every GGUF key/value, typed (tokenizer, chat template); None for safetensors.
    pub gguf_metadata: Option<BTreeMap<String, crate::gguf::Value>>,
    files: Vec<MappedFile>,
    tensors: Vec<TensorInfo>,
    by_name: HashMap<String, usize>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

fn map_file(path: &Path) -> Result<Mapped> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    Mapped::new(&file, path).map_err(|e| Error::io(path, e))
}

impl Checkpoint {
    /// Open a checkpoint directory, a `.safetensors` file or a `.gguf` file.
    pub fn open(path: impl AsRef<Path>) -> Result<Checkpoint> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        let mut ck = if meta.is_dir() {
            Self::open_dir(path)?
        } else if path.extension().is_some_and(|e| e == "gguf") || has_gguf_magic(path) {
            let map = map_file(path)?;
            let g = crate::gguf::open(path, &map)?;
            Checkpoint {
                path: path.to_path_buf(),
                format: Format::Gguf,
                config: Some(g.config),
                metadata: BTreeMap::new(),
                gguf_metadata: Some(g.metadata),
                files: vec![MappedFile { path: path.to_path_buf(), map }],
                tensors: g.tensors,
                by_name: HashMap::new(),
            }
        } else {
            let (file, tensors, metadata) = read_safetensors(path, 0)?;
            Checkpoint {
                path: path.to_path_buf(),
                format: Format::SafetensorsFile,
                config: None,
                metadata,
                gguf_metadata: None,
                files: vec![file],
                tensors,
                by_name: HashMap::new(),
            }
        };
        ck.tensors.sort_by(|a, b| natural_cmp(&a.name, &b.name));
        for (i, t) in ck.tensors.iter().enumerate() {
            if ck.by_name.insert(t.name.clone(), i).is_some() {
                let file = &ck.files[t.file].path;
                return Err(Error::invalid(file, format!("tensor {} is stored more than once", t.name)));
            }
        }
        Ok(ck)
    }

    fn open_dir(dir: &Path) -> Result<Checkpoint> {
        let config_path = dir.join("config.json");
        if !config_path.is_file() {
            return Err(Error::invalid(dir, "no config.json in this directory (is it a Hugging Face checkpoint?)"));
        }
        let config = ModelConfig::from_file(&config_path)?;
        let shard_names = shard_file_names(dir)?;
        let mut files = Vec::new();
        let mut tensors = Vec::new();
        let mut metadata = BTreeMap::new();
        for (i, shard) in shard_names.iter().enumerate() {
            let (file, ts, md) = read_safetensors(&dir.join(shard), i)?;
            files.push(file);
            tensors.extend(ts);
            metadata.extend(md);
        }
        // The index, when present, must agree with the shards it names.
        let index_path = dir.join(INDEX_FILE);
        if index_path.is_file() {
            let weight_map = read_index(&index_path)?;
            let located: HashMap<&str, usize> = tensors.iter().map(|t| (t.name.as_str(), t.file)).collect();
            for (name, shard) in &weight_map {
                match located.get(name.as_str()) {
                    Some(&f) if shard_names[f] == *shard => {}
                    Some(&f) => {
                        return Err(Error::invalid(
                            &index_path,
                            format!("index puts {name} in {shard}, but it is stored in {}", shard_names[f]),
                        ))
                    }
                    None => {
                        return Err(Error::invalid(
                            &index_path,
                            format!("index names {name} in {shard}, which does not hold it"),
                        ))
                    }
                }
            }
        }
        Ok(Checkpoint {
            path: dir.to_path_buf(),
            format: Format::SafetensorsDir,
            config: Some(config),
            metadata,
            gguf_metadata: None,
            files,
            tensors,
            by_name: HashMap::new(),
        })
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn get(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// The tensor or an error naming it and this checkpoint.
    pub fn tensor(&self, name: &str) -> Result<&TensorInfo> {
        self.get(name).ok_or_else(|| Error::tensor(name, format!("not in checkpoint {}", self.path.display())))
    }

    /// All files this checkpoint reads (for "never write over an input" checks and reports).
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|f| f.path.as_path())
    }

    pub fn file_of(&self, t: &TensorInfo) -> &Path {
        &self.files[t.file].path
    }

    /// Total size of the tensor data in bytes, as stored.
    pub fn stored_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.nbytes() as u64).sum()
    }

    /// This checkpoint as an input of a run, for provenance: its weight files and the side files
    /// that change what a model does (config, tokenizer, chat template, generation config), each
    /// with size and SHA-256 (sampled for large files), and its format, tensor count and size.
    pub fn input(&self, role: &str) -> Result<sfn_run::Input> {
        let mut paths: Vec<PathBuf> = self.files().map(Path::to_path_buf).collect();
        if self.format == Format::SafetensorsDir {
            let side = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"];
            paths.extend(side.iter().map(|n| self.path.join(n)).filter(|p| p.is_file()));
            paths.extend(std::iter::once(self.path.join("chat_template.jinja")).filter(|p| p.is_file()));
        }
        let files = paths.iter().map(|p| sfn_run::Fingerprint::of(p)).collect::<sfn_run::Result<Vec<_>>>()?;
        let mut detail = serde_json::Map::new();
        detail.insert("format".into(), serde_json::to_value(self.format).expect("plain enum"));
        detail.insert("num_tensors".into(), self.tensors.len().into());
        detail.insert("stored_bytes".into(), self.stored_bytes().into());
        Ok(sfn_run::Input { role: role.into(), path: sfn_run::rundir::absolute(&self.path), files, detail })
    }

    /// The stored bytes, exactly as on disk, when they are in Hugging Face layout (not for GGUF
    /// q/k rows, which llama.cpp permuted).
    pub fn raw_bytes(&self, t: &TensorInfo) -> Option<&[u8]> {
        t.rope_permuted_heads.is_none().then(|| &self.files[t.file].map[t.start..t.end])
    }

    /// `t`'s stored bytes (quantized blocks as they are) with rows in Hugging Face order: the bytes
    /// on disk, or for GGUF q/k tensors their rows moved back from llama.cpp's rotary order (rows
    /// are whole blocks, checked on open, so this only moves bytes). What a runtime that keeps
    /// weights quantized loads; the pages are released afterwards.
    pub fn stored_rows_hf_order(&self, t: &TensorInfo) -> Vec<u8> {
        let data = &self.files[t.file].map[t.start..t.end];
        let out = match t.rope_permuted_heads {
            None => data.to_vec(),
            Some(heads) => {
                let rows = t.shape[0];
                let (row_bytes, head_dim) = (data.len() / rows, rows / heads);
                let mut out = vec![0u8; data.len()];
                for (row, dst) in out.chunks_exact_mut(row_bytes).enumerate() {
                    let src = stored_row(row, head_dim);
                    dst.copy_from_slice(&data[src * row_bytes..(src + 1) * row_bytes]);
                }
                out
            }
        };
        self.release(t);
        out
    }

    /// Write `t`'s stored bytes to `w` in pieces, releasing each after it is written, so copying a
    /// multi-GB tensor keeps RSS small. Returns false (writing nothing) when the stored bytes are not
    /// in Hugging Face layout (see `raw_bytes`).
    pub fn copy_raw(&self, t: &TensorInfo, w: &mut dyn std::io::Write) -> Result<bool> {
        const PIECE: usize = 16 << 20;
        let Some(raw) = self.raw_bytes(t) else { return Ok(false) };
        for (i, piece) in raw.chunks(PIECE).enumerate() {
            w.write_all(piece).map_err(|e| Error::io(self.file_of(t), e))?;
            self.release_range(t.file, t.start + i * PIECE, piece.len());
        }
        Ok(true)
    }

    /// Alignment (in elements) that chunk starts and lengths passed to `read_f32_into` must have:
    /// a quantization block, or a whole row where rows are permuted.
    pub fn granule(&self, t: &TensorInfo) -> usize {
        match t.rope_permuted_heads {
            Some(_) => t.row_len(),
            None => t.dtype.block_elems(),
        }
    }

    /// Convert elements `start .. start + out.len()` of `t` (row-major, Hugging Face layout) to f32.
    /// `start` and `out.len()` must be multiples of `granule(t)` (a shorter final chunk is fine).
    pub fn read_f32_into(&self, t: &TensorInfo, start: usize, out: &mut [f32]) -> Result<()> {
        let g = self.granule(t);
        let end = start + out.len();
        if end > t.numel() || !start.is_multiple_of(g) || (!out.len().is_multiple_of(g) && end != t.numel()) {
            return Err(Error::tensor(
                &t.name,
                format!("cannot read elements {start}..{end} of {} in steps of {g}", t.numel()),
            ));
        }
        let data = &self.files[t.file].map[t.start..t.end];
        let bytes_of = |from: usize, n: usize| {
            let b0 = from / t.dtype.block_elems() * t.dtype.block_bytes();
            &data[b0..b0 + n / t.dtype.block_elems() * t.dtype.block_bytes()]
        };
        match t.rope_permuted_heads {
            None => {
                let bytes = bytes_of(start, out.len());
                dtype::to_f32(t.dtype, bytes, out);
                let offset = t.start + (bytes.as_ptr() as usize - data.as_ptr() as usize);
                self.release_range(t.file, offset, bytes.len());
            }
            Some(heads) => {
                let row_len = t.row_len();
                let rows = t.shape[0];
                let head_dim = rows / heads;
                for (k, dst) in out.chunks_mut(row_len).enumerate() {
                    let row = start / row_len + k;
                    let src = stored_row(row, head_dim);
                    dtype::to_f32(t.dtype, bytes_of(src * row_len, row_len), dst);
                }
                // Rows come from anywhere in the tensor: release it whole once its end is read.
                if end == t.numel() {
                    self.release(t);
                }
            }
        }
        Ok(())
    }

    /// Drop `t`'s pages from this process's resident set after they have been read (they stay in
    /// the OS page cache). Readers that stream a model larger than memory call this — or get it
    /// from `read_f32_into` — so peak RSS stays at a few chunks instead of the whole mapping.
    pub fn release(&self, t: &TensorInfo) {
        self.release_range(t.file, t.start, t.nbytes());
    }

    /// Hand the pages of bytes `offset .. offset + len` of file `file` back to the kernel once read,
    /// so that resident memory stays bounded: touched pages of a file mapping count as the
    /// process's own until unmapped, and a 2 × 3 GB comparison would otherwise end at 6 GB RSS.
    /// The pages stay in the page cache; only this process's mapping of them is dropped
    /// (MADV_DONTNEED); a later read faults them back in with the same content.
    ///
    /// A read fault maps not only its page but the cached pages around it: the kernel's
    /// "fault-around" (64 KiB by default) or, on file systems with large page-cache folios (ext4,
    /// xfs on Linux ≥ 6.x), the whole folio of up to 2 MiB. Those pages may belong to a
    /// neighbouring range that another thread has already finished and released, and would stay
    /// mapped to the end. So the range is widened to the enclosing `FOLIO` boundaries; a neighbour
    /// still being read merely faults those pages back in (one fault per folio).
    pub fn release_range(&self, file: usize, offset: usize, len: usize) {
        let Some(f) = self.files.get(file) else { return };
        let map_len = f.map.len();
        if len == 0 || offset >= map_len {
            return;
        }
        let base = f.map.as_ptr() as usize;
        // Where the mapping is FOLIO-aligned (the kernel aligns large file mappings) this keeps
        // PMD-mapped folios whole: releasing part of one would split it, which tripled the system
        // time of `sfn delta`. Fault-around windows are aligned within a FOLIO block, so they are
        // covered too. An unaligned mapping gets a folio of slack, as its folios (aligned in the
        // file) straddle the blocks.
        let slack = if base.is_multiple_of(FOLIO) { 0 } else { FOLIO };
        let lo = ((base + offset).saturating_sub(slack) / FOLIO * FOLIO).max(base) - base;
        let hi = ((base + offset + len + slack).div_ceil(FOLIO) * FOLIO).min(base + map_len) - base;
        if hi > lo {
            f.map.dont_need(lo, hi - lo);
        }
    }

    /// The whole tensor as f32 (use `for_each_f32_chunk` for large tensors).
    pub fn read_f32(&self, t: &TensorInfo) -> Result<Vec<f32>> {
        let mut out = vec![0f32; t.numel()];
        self.read_f32_into(t, 0, &mut out)?;
        Ok(out)
    }

    /// Stream `t` as f32 in chunks of at most about `max_elems` elements (rounded to the granule),
    /// calling `f(start_element, values)` for each, in order. One buffer is reused.
    pub fn for_each_f32_chunk<E: From<Error>>(
        &self,
        t: &TensorInfo,
        max_elems: usize,
        mut f: impl FnMut(usize, &[f32]) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let g = self.granule(t);
        let step = (max_elems / g).max(1) * g;
        let mut buf = vec![0f32; step.min(t.numel())];
        let mut start = 0;
        while start < t.numel() {
            let n = step.min(t.numel() - start);
            self.read_f32_into(t, start, &mut buf[..n])?;
            f(start, &buf[..n])?;
            start += n;
        }
        Ok(())
    }
}

/// llama.cpp stores row `h*hd + 2*i + j` where Hugging Face has row `h*hd + j*hd/2 + i`
/// (it interleaves the two rotary halves of each head). Given a Hugging Face row, return the
/// stored one.
fn stored_row(hf_row: usize, head_dim: usize) -> usize {
    let (h, r) = (hf_row / head_dim, hf_row % head_dim);
    let half = head_dim / 2;
    let (j, i) = (r / half, r % half);
    h * head_dim + 2 * i + j
}

fn has_gguf_magic(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"GGUF"
}

/// Which safetensors files make up the checkpoint in `dir`, as plain file names inside it.
fn shard_file_names(dir: &Path) -> Result<Vec<String>> {
    let index_path = dir.join(INDEX_FILE);
    if index_path.is_file() {
        let mut shards: Vec<String> = read_index(&index_path)?.into_values().collect();
        shards.sort();
        shards.dedup();
        for shard in &shards {
            let plain = Path::new(shard).file_name().is_some_and(|n| n == shard.as_str());
            if !plain || shard == ".." || shard == "." {
                return Err(Error::invalid(
                    &index_path,
                    format!("shard `{shard}` is not a file inside the checkpoint directory"),
                ));
            }
            if !dir.join(shard).is_file() {
                return Err(Error::invalid(&index_path, format!("shard `{shard}` named by the index is missing")));
            }
        }
        return Ok(shards);
    }
    if dir.join(SINGLE_FILE).is_file() {
        return Ok(vec![SINGLE_FILE.to_string()]);
    }
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".safetensors"))
        .collect();
    if names.is_empty() {
        return Err(Error::invalid(dir, "no .safetensors files and no model.safetensors.index.json"));
    }
    names.sort();
    Ok(names)
}

/// The `weight_map` of an index file: tensor name -> shard file name.
fn read_index(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| Error::invalid(path, format!("invalid JSON: {e}")))?;
    let map =
        v.get("weight_map").and_then(Value::as_object).ok_or_else(|| Error::invalid(path, "no `weight_map` object"))?;
    map.iter()
        .map(|(k, v)| match v.as_str() {
            Some(s) => Ok((k.clone(), s.to_string())),
            None => Err(Error::invalid(path, format!("weight_map entry {k} is not a file name"))),
        })
        .collect()
}

/// Parse and validate one safetensors file. `file_index` is stored in each TensorInfo.
fn read_safetensors(path: &Path, file_index: usize) -> Result<(MappedFile, Vec<TensorInfo>, BTreeMap<String, String>)> {
    let map = map_file(path)?;
    let (tensors, metadata) = parse_safetensors_header(&map, file_index).map_err(|msg| Error::invalid(path, msg))?;
    Ok((MappedFile { path: path.to_path_buf(), map }, tensors, metadata))
}

/// Validate a safetensors header against the file's size. Errors are messages about the file.
fn parse_safetensors_header(
    bytes: &[u8],
    file_index: usize,
) -> std::result::Result<(Vec<TensorInfo>, BTreeMap<String, String>), String> {
    if bytes.len() < 8 {
        return Err(format!("truncated: {} bytes, less than the 8-byte header length", bytes.len()));
    }
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    if header_len > MAX_HEADER_BYTES || header_len > (bytes.len() - 8) as u64 {
        return Err(format!(
            "header length {header_len} is larger than the file ({} bytes): truncated or not a safetensors file",
            bytes.len()
        ));
    }
    let header_end = 8 + header_len as usize;
    let header: Value =
        serde_json::from_slice(&bytes[8..header_end]).map_err(|e| format!("invalid JSON header: {e}"))?;
    let entries = header.as_object().ok_or("header is not a JSON object")?;
    let data_len = bytes.len() - header_end;
    let mut metadata = BTreeMap::new();
    let mut tensors = Vec::new();
    for (name, entry) in entries {
        if name == "__metadata__" {
            for (k, v) in entry.as_object().ok_or("__metadata__ is not an object")? {
                metadata.insert(k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
            }
            continue;
        }
        let bad = |what: &str| format!("tensor {name}: {what}");
        let dtype_s = entry.get("dtype").and_then(Value::as_str).ok_or_else(|| bad("no dtype"))?;
        let dtype = DType::from_safetensors(dtype_s)
            .ok_or_else(|| bad(&format!("unsupported dtype {dtype_s} (sfn reads F64, F32, F16, BF16)")))?;
        let shape: Vec<usize> = entry
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no shape"))?
            .iter()
            .map(|d| d.as_u64().map(|d| d as usize).ok_or_else(|| bad("shape holds a non-integer")))
            .collect::<std::result::Result<_, _>>()?;
        let offsets = entry
            .get("data_offsets")
            .and_then(Value::as_array)
            .filter(|a| a.len() == 2)
            .ok_or_else(|| bad("data_offsets is not [begin, end]"))?;
        let (begin, end) = match (offsets[0].as_u64(), offsets[1].as_u64()) {
            (Some(b), Some(e)) if b <= e => (b as usize, e as usize),
            _ => return Err(bad(&format!("invalid data_offsets {offsets:?}"))),
        };
        if end > data_len {
            return Err(bad(&format!("data_offsets {begin}..{end} run past the end of the data ({data_len} bytes)")));
        }
        let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| bad("shape overflows"))?;
        let expected = dtype.byte_len(numel).ok_or_else(|| bad("shape overflows"))?;
        if expected != end - begin {
            return Err(bad(&format!(
                "shape {shape:?} of {dtype} needs {expected} bytes but data_offsets give {}",
                end - begin
            )));
        }
        tensors.push(TensorInfo {
            name: name.clone(),
            dtype,
            shape,
            file: file_index,
            start: header_end + begin,
            end: header_end + end,
            rope_permuted_heads: None,
        });
    }
    let mut by_offset: Vec<&TensorInfo> = tensors.iter().filter(|t| t.end > t.start).collect();
    by_offset.sort_by_key(|t| t.start);
    for w in by_offset.windows(2) {
        if w[1].start < w[0].end {
            return Err(format!("tensors {} and {} overlap in the file", w[0].name, w[1].name));
        }
    }
    Ok((tensors, metadata))
}

/// Compare names so that `layers.2` sorts before `layers.10`.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, _) => return std::cmp::Ordering::Less,
            (_, None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (&a[..na], &b[..nb]);
                let ord = (da.len() - da.iter().take_while(|&&c| c == b'0').count())
                    .cmp(&(db.len() - db.iter().take_while(|&&c| c == b'0').count()))
                    .then_with(|| {
                        let ta = &da[da.iter().take_while(|&&c| c == b'0').count()..];
                        let tb = &db[db.iter().take_while(|&&c| c == b'0').count()..];
                        ta.cmp(tb)
                    });
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
                a = &a[na..];
                b = &b[nb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_rows_are_unpermuted_per_head() {
        // head_dim 4: stored rows [0,2,1,3] hold HF rows [0,1,2,3] interleaved.
        let hf_from_stored: Vec<usize> = (0..8).map(|r| stored_row(r, 4)).collect();
        assert_eq!(hf_from_stored, vec![0, 2, 1, 3, 4, 6, 5, 7]);
    }

    #[test]
    fn natural_order_of_layer_names() {
        let mut v = vec!["model.layers.10.x", "model.layers.2.x", "model.layers.1.x", "lm_head"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, vec!["lm_head", "model.layers.1.x", "model.layers.2.x", "model.layers.10.x"]);
    }
}
