//! Reading GGUF files (llama.cpp's single-file checkpoints) into sfn's Hugging Face view.
//!
//! Reads GGUF versions 2 and 3, little-endian only (v1 and big-endian files are rejected with a
//! message saying so). Parses every metadata value type, nested arrays included, and the tensor
//! table; maps GGUF tensor names to canonical Hugging Face ones (`blk.3.attn_q.weight` →
//! `model.layers.3.self_attn.q_proj.weight`; unknown names are kept as they are), reports shapes in
//! Hugging Face row-major order (GGUF lists dims innermost first, so they are reversed) and builds a
//! `ModelConfig` from the `{arch}.*` keys.
//!
//! llama.cpp's converter permutes the rows of q and k (weights and biases) of Llama-architecture
//! models into its interleaved rotary order; such tensors get `rope_permuted_heads` so that
//! `Checkpoint` un-permutes rows on read. Qwen2/Qwen3 files are stored in Hugging Face order.
//!
//! Tensor types: F32, F16, BF16, F64, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K (dequantized by
//! `crate::quant`); any other type is an error naming the tensor. No writing of GGUF.
//!
//! The file is untrusted input: every read is bounds-checked, counts and lengths are checked
//! against the bytes that remain before anything is allocated for them, and tensor data ranges are
//! checked against the file and each other up front, so later reads cannot go out of bounds.

use crate::config::{ModelConfig, RopeScaling};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::TensorInfo;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// Alignment of the data section and of every tensor in it when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// GGML tensors have at most four dimensions.
const MAX_DIMS: u32 = 4;
/// Arrays nested deeper than this are certainly not a real model (and would recurse deeply).
const MAX_ARRAY_DEPTH: usize = 8;
/// A metadata array longer than this is refused: real ones (vocabularies, merges) stay well under
/// a few million entries, and each element costs far more memory as a `Value` than in the file.
const MAX_ARRAY_LEN: u64 = 1 << 24;

/// A GGUF metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    /// Invalid UTF-8 (seen in some converted vocabularies) is replaced by U+FFFD rather than
    /// failing the whole file.
    String(String),
    Array(Vec<Value>),
}

impl Value {
    /// A non-negative integer of any width; None for other types and negative values.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any number (integers converted).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            Value::I8(v) => Some(v as f64),
            Value::I16(v) => Some(v as f64),
            Value::I32(v) => Some(v as f64),
            Value::I64(v) => Some(v as f64),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// GGUF's name for the value's type, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::U8(_) => "u8",
            Value::I8(_) => "i8",
            Value::U16(_) => "u16",
            Value::I16(_) => "i16",
            Value::U32(_) => "u32",
            Value::I32(_) => "i32",
            Value::U64(_) => "u64",
            Value::I64(_) => "i64",
            Value::F32(_) => "f32",
            Value::F64(_) => "f64",
            Value::Bool(_) => "bool",
            Value::String(_) => "string",
            Value::Array(_) => "array",
        }
    }
}

pub struct GgufCheckpoint {
    /// Canonical (Hugging Face) names, offsets absolute in the file.
    pub tensors: Vec<TensorInfo>,
    pub config: ModelConfig,
    /// Every key/value of the file, typed (the tokenizer and chat template live here).
    pub metadata: BTreeMap<String, Value>,
}

/// GGML's name for a tensor type id (as in gguf-py's `GGMLQuantizationType`), None if unknown.
pub fn ggml_type_name(id: u32) -> Option<&'static str> {
    Some(match id {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        6 => "Q5_0",
        7 => "Q5_1",
        8 => "Q8_0",
        9 => "Q8_1",
        10 => "Q2_K",
        11 => "Q3_K",
        12 => "Q4_K",
        13 => "Q5_K",
        14 => "Q6_K",
        15 => "Q8_K",
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        30 => "BF16",
        34 => "TQ1_0",
        35 => "TQ2_0",
        39 => "MXFP4",
        _ => return None,
    })
}

/// The DType sfn reads a GGML type id as, None for types it cannot dequantize.
pub fn dtype_from_ggml(id: u32) -> Option<DType> {
    Some(match id {
        0 => DType::F32,
        1 => DType::F16,
        2 => DType::Q4_0,
        3 => DType::Q4_1,
        8 => DType::Q8_0,
        12 => DType::Q4_K,
        13 => DType::Q5_K,
        14 => DType::Q6_K,
        28 => DType::F64,
        30 => DType::BF16,
        _ => return None,
    })
}

const SUPPORTED: &str = "F32, F16, BF16, F64, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K";

/// The canonical Hugging Face name of a GGUF tensor name; names without a known mapping come back
/// unchanged.
pub fn hf_name(gguf: &str) -> String {
    let (stem, param) = match gguf.rsplit_once('.') {
        Some((s, p @ ("weight" | "bias"))) => (s, p),
        _ => return gguf.to_string(),
    };
    let global = match stem {
        "token_embd" => Some("model.embed_tokens"),
        "output_norm" => Some("model.norm"),
        "output" => Some("lm_head"),
        _ => None,
    };
    if let Some(g) = global {
        return format!("{g}.{param}");
    }
    let Some(rest) = stem.strip_prefix("blk.") else { return gguf.to_string() };
    let Some((layer, part)) = rest.split_once('.') else { return gguf.to_string() };
    if layer.is_empty() || !layer.bytes().all(|b| b.is_ascii_digit()) {
        return gguf.to_string();
    }
    let module = match part {
        "attn_norm" => "input_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "attn_q_norm" => "self_attn.q_norm",
        "attn_k_norm" => "self_attn.k_norm",
        "ffn_norm" => "post_attention_layernorm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return gguf.to_string(),
    };
    format!("model.layers.{layer}.{module}.{param}")
}

/// Parse and validate a GGUF file whose bytes (usually a memory map) are `bytes`.
pub fn open(path: &Path, bytes: &[u8]) -> Result<GgufCheckpoint> {
    let raw = parse(bytes).map_err(|msg| Error::invalid(path, msg))?;
    let stored = locate_tensors(&raw, bytes.len()).map_err(|msg| Error::invalid(path, msg))?;
    let config = build_config(&raw.metadata, &stored).map_err(|msg| Error::invalid(path, msg))?;
    let arch = config.family.as_str();
    let mut tensors = Vec::with_capacity(stored.len());
    for t in stored {
        let rope_permuted_heads = match (arch, layer_part(&t.name)) {
            // llama.cpp's LlamaModel.permute: q with n_head, k with n_head_kv (weights and biases).
            ("llama", Some("attn_q")) => Some(config.num_heads),
            ("llama", Some("attn_k")) => Some(config.num_kv_heads),
            _ => None,
        };
        if let Some(heads) = rope_permuted_heads {
            check_permutable(&t, heads).map_err(|msg| Error::invalid(path, msg))?;
        }
        tensors.push(TensorInfo {
            name: hf_name(&t.name),
            dtype: t.dtype,
            shape: t.shape,
            file: 0,
            start: t.start,
            end: t.end,
            rope_permuted_heads,
        });
    }
    Ok(GgufCheckpoint { tensors, config, metadata: raw.metadata })
}

/// `attn_q` for `blk.N.attn_q.weight`; None for names outside a block.
fn layer_part(gguf: &str) -> Option<&str> {
    let rest = gguf.strip_prefix("blk.")?;
    let (_, part) = rest.split_once('.')?;
    Some(part.rsplit_once('.').map_or(part, |(p, _)| p))
}

/// Rows are un-permuted per head, in pairs within a head, one whole row (of whole blocks) at a
/// time; refuse a tensor where that cannot work instead of reading garbage later.
fn check_permutable(t: &Located, heads: usize) -> std::result::Result<(), String> {
    let rows = t.shape.first().copied().unwrap_or(1);
    if heads == 0 || rows % heads != 0 || !(rows / heads).is_multiple_of(2) {
        return Err(format!(
            "tensor {} has {rows} rows, which do not split into {heads} heads of even size \
             (llama.cpp stores Llama q/k rows permuted per head)",
            t.name
        ));
    }
    let row_len: usize = t.shape.iter().skip(1).product::<usize>().max(1);
    if !row_len.is_multiple_of(t.dtype.block_elems()) {
        return Err(format!(
            "tensor {} is {} with rows of {row_len} elements, not whole {}-element blocks, so its \
             permuted rows cannot be read one at a time",
            t.name,
            t.dtype,
            t.dtype.block_elems()
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Low-level parsing

/// The header, metadata and tensor table as stored, before any interpretation.
struct RawGguf {
    metadata: BTreeMap<String, Value>,
    tensors: Vec<RawTensor>,
    alignment: u64,
    /// Absolute offset of the (aligned) data section.
    data_start: u64,
}

struct RawTensor {
    name: String,
    /// ne0 (innermost, contiguous) first, as GGUF stores them.
    dims: Vec<u64>,
    ggml_type: u32,
    /// Relative to the data section.
    offset: u64,
}

/// What went wrong at the lowest level; turned into a message with the context it happened in.
enum Fault {
    Truncated { at: usize, need: u64 },
    StringTooLong { at: usize, len: u64 },
    ArrayTooLong { at: usize, count: u64 },
    UnknownType { at: usize, ty: u32 },
    TooDeep,
}

impl Fault {
    fn explain(self, file_len: usize, what: &str) -> String {
        match self {
            Fault::Truncated { at, need } => {
                format!("truncated: {what} needs {need} bytes at offset {at}, but the file ends at {file_len}")
            }
            Fault::StringTooLong { at, len } => format!(
                "{what}: string length {len} at offset {at} is larger than the rest of the file \
                 ({} bytes): truncated or corrupt",
                file_len.saturating_sub(at + 8)
            ),
            Fault::ArrayTooLong { at, count } => format!(
                "{what}: array length {count} at offset {at} cannot fit in the rest of the file \
                 ({} bytes) or exceeds sfn's limit of {MAX_ARRAY_LEN}: truncated or corrupt",
                file_len.saturating_sub(at)
            ),
            Fault::UnknownType { at, ty } => {
                format!("{what}: unknown metadata value type {ty} at offset {at} (GGUF defines 0 to 12)")
            }
            Fault::TooDeep => format!("{what}: arrays nested more than {MAX_ARRAY_DEPTH} deep"),
        }
    }
}

type Read<T> = std::result::Result<T, Fault>;

/// A bounds-checked little-endian reader over the file.
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> usize {
        self.b.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Read<&'a [u8]> {
        if n > self.rest() {
            return Err(Fault::Truncated { at: self.pos, need: n as u64 });
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn arr<const N: usize>(&mut self) -> Read<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self) -> Read<u32> {
        self.arr().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Read<u64> {
        self.arr().map(u64::from_le_bytes)
    }

    /// A GGUF string: u64 length, then that many bytes.
    fn string_bytes(&mut self) -> Read<&'a [u8]> {
        let at = self.pos;
        let len = self.u64()?;
        if len > self.rest() as u64 {
            return Err(Fault::StringTooLong { at, len });
        }
        self.take(len as usize)
    }

    fn value(&mut self, ty: u32, depth: usize) -> Read<Value> {
        let at = self.pos;
        Ok(match ty {
            0 => Value::U8(u8::from_le_bytes(self.arr()?)),
            1 => Value::I8(i8::from_le_bytes(self.arr()?)),
            2 => Value::U16(u16::from_le_bytes(self.arr()?)),
            3 => Value::I16(i16::from_le_bytes(self.arr()?)),
            4 => Value::U32(self.u32()?),
            5 => Value::I32(i32::from_le_bytes(self.arr()?)),
            6 => Value::F32(f32::from_le_bytes(self.arr()?)),
            7 => Value::Bool(self.arr::<1>()?[0] != 0),
            8 => Value::String(String::from_utf8_lossy(self.string_bytes()?).into_owned()),
            9 => self.array(depth)?,
            10 => Value::U64(self.u64()?),
            11 => Value::I64(i64::from_le_bytes(self.arr()?)),
            12 => Value::F64(f64::from_le_bytes(self.arr()?)),
            _ => return Err(Fault::UnknownType { at, ty }),
        })
    }

    /// An array value: element type u32, count u64, elements. The count is checked against the
    /// smallest possible encoding of its elements before anything is allocated.
    fn array(&mut self, depth: usize) -> Read<Value> {
        if depth >= MAX_ARRAY_DEPTH {
            return Err(Fault::TooDeep);
        }
        let type_at = self.pos;
        let ty = self.u32()?;
        let min_size: u64 = match ty {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            8 | 10 | 11 | 12 => 8,
            9 => 12,
            _ => return Err(Fault::UnknownType { at: type_at, ty }),
        };
        let count_at = self.pos;
        let count = self.u64()?;
        if count > MAX_ARRAY_LEN || count > self.rest() as u64 / min_size {
            return Err(Fault::ArrayTooLong { at: count_at, count });
        }
        let mut items = Vec::with_capacity(count as usize);
        for _ in 0..count {
            items.push(self.value(ty, depth + 1)?);
        }
        Ok(Value::Array(items))
    }
}

fn parse(bytes: &[u8]) -> std::result::Result<RawGguf, String> {
    let len = bytes.len();
    let mut c = Cursor { b: bytes, pos: 0 };
    let header = |f: Fault| f.explain(len, "the header");
    let magic: [u8; 4] = c.arr().map_err(header)?;
    match &magic {
        b"GGUF" => {}
        b"FUGG" => {
            return Err(
                "big-endian GGUF (byte-swapped magic) is not supported; sfn reads little-endian GGUF v2/v3".into()
            )
        }
        m => {
            return Err(format!(
                "not a GGUF file: magic bytes are {:02x} {:02x} {:02x} {:02x}, expected \"GGUF\"",
                m[0], m[1], m[2], m[3]
            ))
        }
    }
    let version = c.u32().map_err(header)?;
    match version {
        2 | 3 => {}
        1 => {
            return Err("GGUF version 1 is not supported (sfn reads versions 2 and 3; \
                        re-convert the model with a current llama.cpp)"
                .into())
        }
        // gguf-py writes the magic little-endian even in big-endian files, so such a file shows
        // up here, as a version number with its bytes swapped.
        v if (1..=3).contains(&v.swap_bytes()) => {
            return Err(format!(
                "big-endian GGUF (version {}) is not supported; sfn reads little-endian GGUF v2/v3",
                v.swap_bytes()
            ))
        }
        v => return Err(format!("unsupported GGUF version {v} (sfn reads versions 2 and 3)")),
    }
    let tensor_count = c.u64().map_err(header)?;
    let kv_count = c.u64().map_err(header)?;
    // Smallest encodings: a key/value is key length (8) + type (4) + a 1-byte value; a tensor info
    // is name length (8) + n_dims (4) + type (4) + offset (8).
    if kv_count > c.rest() as u64 / 13 {
        return Err(format!(
            "metadata count {kv_count} is impossible for a file of {len} bytes: truncated or not a GGUF file"
        ));
    }
    if tensor_count > c.rest() as u64 / 24 {
        return Err(format!(
            "tensor count {tensor_count} is impossible for a file of {len} bytes: truncated or not a GGUF file"
        ));
    }

    let mut metadata = BTreeMap::new();
    for i in 0..kv_count {
        let key_bytes = c.string_bytes().map_err(|f| f.explain(len, &format!("the key of metadata entry #{i}")))?;
        let key = std::str::from_utf8(key_bytes)
            .map_err(|_| format!("metadata entry #{i}: key is not valid UTF-8"))?
            .to_string();
        let what = || format!("metadata key `{key}`");
        let ty = c.u32().map_err(|f| f.explain(len, &what()))?;
        let value = c.value(ty, 0).map_err(|f| f.explain(len, &what()))?;
        if metadata.insert(key.clone(), value).is_some() {
            return Err(format!("metadata key `{key}` appears more than once"));
        }
    }

    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(Value::U32(a)) if a.is_power_of_two() => *a as u64,
        Some(v) => {
            return Err(format!(
                "metadata key `general.alignment` must be a u32 power of two, found {} {v:?}",
                v.type_name()
            ))
        }
    };

    let mut tensors = Vec::with_capacity(tensor_count as usize);
    let mut seen = HashSet::new();
    for i in 0..tensor_count {
        let name_bytes = c.string_bytes().map_err(|f| f.explain(len, &format!("the name of tensor #{i}")))?;
        let name =
            std::str::from_utf8(name_bytes).map_err(|_| format!("tensor #{i}: name is not valid UTF-8"))?.to_string();
        let what = || format!("the info of tensor {name}");
        let n_dims = c.u32().map_err(|f| f.explain(len, &what()))?;
        if n_dims > MAX_DIMS {
            return Err(format!("tensor {name} has {n_dims} dimensions (GGML allows at most {MAX_DIMS})"));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(c.u64().map_err(|f| f.explain(len, &what()))?);
        }
        let ggml_type = c.u32().map_err(|f| f.explain(len, &what()))?;
        let offset = c.u64().map_err(|f| f.explain(len, &what()))?;
        if !seen.insert(name.clone()) {
            return Err(format!("tensor {name} appears more than once in the tensor table"));
        }
        tensors.push(RawTensor { name, dims, ggml_type, offset });
    }

    let data_start = (c.pos as u64).div_ceil(alignment) * alignment;
    Ok(RawGguf { metadata, tensors, alignment, data_start })
}

/// A validated tensor, still under its GGUF name.
struct Located {
    name: String,
    dtype: DType,
    /// Hugging Face order (GGUF dims reversed).
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// Check every tensor's type, shape and data range against the file; ranges are absolute.
fn locate_tensors(raw: &RawGguf, file_len: usize) -> std::result::Result<Vec<Located>, String> {
    let mut out = Vec::with_capacity(raw.tensors.len());
    for t in &raw.tensors {
        let name = &t.name;
        let dtype = dtype_from_ggml(t.ggml_type).ok_or_else(|| match ggml_type_name(t.ggml_type) {
            Some(ty) => format!(
                "tensor {name} has GGML type {ty} ({}), which sfn cannot dequantize (supported: {SUPPORTED})",
                t.ggml_type
            ),
            None => format!("tensor {name} has unknown GGML type id {} (supported: {SUPPORTED})", t.ggml_type),
        })?;
        let ne0 = t.dims.first().copied().unwrap_or(1);
        let block = dtype.block_elems() as u64;
        if ne0 % block != 0 {
            return Err(format!(
                "tensor {name} is {dtype} with a row length (ne0) of {ne0}, not a multiple of its \
                 {block}-element block"
            ));
        }
        let shape: Vec<usize> = t
            .dims
            .iter()
            .rev()
            .map(|&d| usize::try_from(d))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| format!("tensor {name} has a dimension too large for this machine: {:?}", t.dims))?;
        let nbytes = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .and_then(|numel| dtype.byte_len(numel))
            .ok_or_else(|| format!("tensor {name}: shape {:?} overflows", t.dims))?;
        if t.offset % raw.alignment != 0 {
            return Err(format!(
                "tensor {name}: data offset {} is not a multiple of the alignment {}",
                t.offset, raw.alignment
            ));
        }
        let range = raw
            .data_start
            .checked_add(t.offset)
            .and_then(|s| Some((s, s.checked_add(nbytes as u64)?)))
            .filter(|&(_, e)| e <= file_len as u64);
        let Some((start, end)) = range else {
            return Err(format!(
                "tensor {name}: data at offset {}..+{nbytes} of the data section (which starts at byte {}) \
                 runs past the end of the file ({file_len} bytes)",
                t.offset, raw.data_start
            ));
        };
        out.push(Located { name: name.clone(), dtype, shape, start: start as usize, end: end as usize });
    }
    let mut by_start: Vec<&Located> = out.iter().filter(|t| t.end > t.start).collect();
    by_start.sort_by_key(|t| t.start);
    for w in by_start.windows(2) {
        if w[1].start < w[0].end {
            return Err(format!(
                "tensors {} (bytes {}..{}) and {} (bytes {}..{}) overlap in the file",
                w[0].name, w[0].start, w[0].end, w[1].name, w[1].start, w[1].end
            ));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Model config from metadata

/// Typed access to metadata with messages naming the key.
struct Meta<'a>(&'a BTreeMap<String, Value>);

impl Meta<'_> {
    /// A non-negative integer. llama.cpp allows some per-layer keys (head counts, feed-forward
    /// length) to be arrays; one that is the same for every layer is accepted as that value.
    fn uint(&self, key: &str) -> std::result::Result<Option<usize>, String> {
        let Some(v) = self.0.get(key) else { return Ok(None) };
        let one = |v: &Value| v.as_u64().and_then(|n| usize::try_from(n).ok());
        let n = match v {
            Value::Array(items) => {
                let first = items.first().and_then(one);
                match first {
                    Some(f) if items.iter().all(|x| one(x) == Some(f)) => Some(f),
                    _ => {
                        return Err(format!(
                            "metadata key `{key}` is an array that varies per layer (or is empty), \
                             which sfn does not support"
                        ))
                    }
                }
            }
            v => one(v),
        };
        n.map(Some).ok_or_else(|| {
            format!("metadata key `{key}` must be a non-negative integer, found {} {v:?}", v.type_name())
        })
    }

    fn need_uint(&self, key: &str) -> std::result::Result<usize, String> {
        self.uint(key)?.ok_or_else(|| format!("metadata key `{key}` is missing (needed for the model config)"))
    }

    fn float(&self, key: &str) -> std::result::Result<Option<f64>, String> {
        match self.0.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| format!("metadata key `{key}` must be a number, found {} {v:?}", v.type_name())),
        }
    }

    fn string(&self, key: &str) -> std::result::Result<Option<&str>, String> {
        match self.0.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| format!("metadata key `{key}` must be a string, found {}", v.type_name())),
        }
    }

    fn token_id(&self, key: &str) -> std::result::Result<Option<u32>, String> {
        match self.uint(key)? {
            None => Ok(None),
            Some(n) => u32::try_from(n).map(Some).map_err(|_| format!("metadata key `{key}` = {n} is not a token id")),
        }
    }
}

fn build_config(metadata: &BTreeMap<String, Value>, tensors: &[Located]) -> std::result::Result<ModelConfig, String> {
    let m = Meta(metadata);
    let arch = m
        .string("general.architecture")?
        .ok_or("metadata key `general.architecture` is missing (needed for the model config)")?
        .to_string();
    let k = |suffix: &str| format!("{arch}.{suffix}");
    let hidden_size = m.need_uint(&k("embedding_length"))?;
    let num_heads = m.need_uint(&k("attention.head_count"))?;
    if num_heads == 0 {
        return Err(format!("metadata key `{}` is 0", k("attention.head_count")));
    }
    // llama.cpp's default when the key is absent: no grouped-query attention.
    let num_kv_heads = m.uint(&k("attention.head_count_kv"))?.unwrap_or(num_heads);
    if num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
        return Err(format!(
            "`{}` = {num_kv_heads} does not divide `{}` = {num_heads}",
            k("attention.head_count_kv"),
            k("attention.head_count")
        ));
    }
    let head_dim = m.uint(&k("attention.key_length"))?.unwrap_or(hidden_size / num_heads);
    let has = |name: &str| tensors.iter().any(|t| t.name == name);
    let vocab_size = match m.uint(&k("vocab_size"))? {
        Some(v) => v,
        None => match metadata.get("tokenizer.ggml.tokens").and_then(Value::as_array) {
            Some(tokens) => tokens.len(),
            // token_embd is [vocab, hidden] in Hugging Face order.
            None => tensors
                .iter()
                .find(|t| t.name == "token_embd.weight")
                .and_then(|t| t.shape.first().copied())
                .ok_or_else(|| {
                    format!(
                        "cannot tell the vocabulary size: no `{}`, no `tokenizer.ggml.tokens` and no token_embd.weight",
                        k("vocab_size")
                    )
                })?,
        },
    };
    let rope_scaling = match m.string(&k("rope.scaling.type"))? {
        None | Some("none") => match m.float(&k("rope.scale_linear"))? {
            // Older converters wrote only a linear factor.
            Some(factor) if factor != 1.0 => Some(RopeScaling {
                rope_type: "linear".into(),
                factor,
                low_freq_factor: None,
                high_freq_factor: None,
                original_max_position_embeddings: None,
            }),
            _ => None,
        },
        Some(kind) => Some(RopeScaling {
            rope_type: kind.to_string(),
            factor: m.float(&k("rope.scaling.factor"))?.ok_or_else(|| {
                format!("`{}` is `{kind}` but `{}` is missing", k("rope.scaling.type"), k("rope.scaling.factor"))
            })?,
            low_freq_factor: None,
            high_freq_factor: None,
            original_max_position_embeddings: m.uint(&k("rope.scaling.original_context_length"))?,
        }),
    };
    let mut eos_token_ids = Vec::new();
    // llama.cpp stops generation at end-of-turn as well as end-of-sequence; Hugging Face lists both
    // as eos ids in generation_config, which is what this field stands for.
    for key in ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"] {
        if let Some(id) = m.token_id(key)? {
            if !eos_token_ids.contains(&id) {
                eos_token_ids.push(id);
            }
        }
    }
    Ok(ModelConfig {
        num_layers: m.need_uint(&k("block_count"))?,
        hidden_size,
        intermediate_size: m.need_uint(&k("feed_forward_length"))?,
        num_heads,
        num_kv_heads,
        head_dim,
        vocab_size,
        tied_embeddings: !has("output.weight"),
        rms_norm_eps: m.float(&k("attention.layer_norm_rms_epsilon"))?.ok_or_else(|| {
            format!("metadata key `{}` is missing (needed for the model config)", k("attention.layer_norm_rms_epsilon"))
        })?,
        // llama.cpp's default when the key is absent.
        rope_theta: m.float(&k("rope.freq_base"))?.unwrap_or(10000.0),
        rope_scaling,
        max_position_embeddings: m.need_uint(&k("context_length"))?,
        attention_bias: tensors.iter().any(|t| layer_part(&t.name) == Some("attn_q") && t.name.ends_with(".bias")),
        sliding_window: m.uint(&k("attention.sliding_window"))?,
        bos_token_id: m.token_id("tokenizer.ggml.bos_token_id")?,
        eos_token_ids,
        torch_dtype: None,
        family: arch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_names_map_to_hugging_face_names() {
        let cases = [
            ("token_embd.weight", "model.embed_tokens.weight"),
            ("output_norm.weight", "model.norm.weight"),
            ("output.weight", "lm_head.weight"),
            ("blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight"),
            ("blk.12.attn_q.weight", "model.layers.12.self_attn.q_proj.weight"),
            ("blk.12.attn_q.bias", "model.layers.12.self_attn.q_proj.bias"),
            ("blk.3.attn_k.weight", "model.layers.3.self_attn.k_proj.weight"),
            ("blk.3.attn_v.bias", "model.layers.3.self_attn.v_proj.bias"),
            ("blk.3.attn_output.weight", "model.layers.3.self_attn.o_proj.weight"),
            ("blk.3.attn_q_norm.weight", "model.layers.3.self_attn.q_norm.weight"),
            ("blk.3.attn_k_norm.weight", "model.layers.3.self_attn.k_norm.weight"),
            ("blk.3.ffn_norm.weight", "model.layers.3.post_attention_layernorm.weight"),
            ("blk.3.ffn_gate.weight", "model.layers.3.mlp.gate_proj.weight"),
            ("blk.3.ffn_up.weight", "model.layers.3.mlp.up_proj.weight"),
            ("blk.3.ffn_down.weight", "model.layers.3.mlp.down_proj.weight"),
            // Unknown names are kept.
            ("rope_freqs.weight", "rope_freqs.weight"),
            ("blk.3.ffn_gate_exps.weight", "blk.3.ffn_gate_exps.weight"),
            ("blk.x.attn_q.weight", "blk.x.attn_q.weight"),
            ("blk.3.attn_q.scale", "blk.3.attn_q.scale"),
            ("token_embd", "token_embd"),
        ];
        for (g, hf) in cases {
            assert_eq!(hf_name(g), hf, "{g}");
        }
    }

    #[test]
    fn gguf_type_ids_follow_gguf_py() {
        assert_eq!(ggml_type_name(17), Some("IQ2_XS"));
        assert_eq!(ggml_type_name(30), Some("BF16"));
        assert_eq!(ggml_type_name(4), None);
        for (id, dt) in [
            (0, DType::F32),
            (1, DType::F16),
            (2, DType::Q4_0),
            (3, DType::Q4_1),
            (8, DType::Q8_0),
            (12, DType::Q4_K),
            (13, DType::Q5_K),
            (14, DType::Q6_K),
            (28, DType::F64),
            (30, DType::BF16),
        ] {
            assert_eq!(dtype_from_ggml(id), Some(dt));
            assert_eq!(ggml_type_name(id), Some(dt.name()));
        }
    }

    #[test]
    fn gguf_nested_arrays_and_every_scalar_type_parse() {
        let mut b = Vec::new();
        let s = |b: &mut Vec<u8>, x: &str| {
            b.extend((x.len() as u64).to_le_bytes());
            b.extend(x.as_bytes());
        };
        b.extend(b"GGUF");
        b.extend(3u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        s(&mut b, "a");
        b.extend(9u32.to_le_bytes()); // array of arrays of i16
        b.extend(9u32.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        b.extend(3u32.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend((-5i16).to_le_bytes());
        b.extend(3u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        s(&mut b, "b");
        b.extend(12u32.to_le_bytes());
        b.extend(0.5f64.to_le_bytes());
        let raw = parse(&b).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(raw.metadata["a"], Value::Array(vec![Value::Array(vec![Value::I16(-5)]), Value::Array(vec![])]));
        assert_eq!(raw.metadata["b"], Value::F64(0.5));
        assert_eq!(raw.data_start, b.len().div_ceil(32) as u64 * 32);
    }

    #[test]
    fn gguf_deeply_nested_arrays_are_refused_not_recursed() {
        let mut b = Vec::new();
        b.extend(b"GGUF");
        b.extend(3u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.push(b'k');
        b.extend(9u32.to_le_bytes());
        for _ in 0..1000 {
            b.extend(9u32.to_le_bytes());
            b.extend(1u64.to_le_bytes());
        }
        let err = parse(&b).err().unwrap();
        assert!(err.contains("nested more than"), "{err}");
    }
}
