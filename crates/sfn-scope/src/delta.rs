//! The Delta stethoscope: how much, and how, every tensor changed from checkpoint A to B.
//!
//! For each tensor present in both with the same shape: ‖B−A‖₂, ‖A‖₂, ‖B‖₂, relative change,
//! cosine(A, B), max |B−A|, non-finite counts, the histogram of the element-wise relative change
//! (B−A)/(|A|+1e-8) clipped to [−1, 1] over the whole tensor, and its bimodality. Tensors in one
//! checkpoint only, or with different shapes, are listed (an error under `strict`).
//!
//! Streaming: the tensors are cut into work items of about 8 MiB whose boundaries are multiples
//! of both checkpoints' granules (a GGUF block, a permuted row), so big tensors are split across
//! threads too. Workers take items in A's storage order (sequential reads) and feed A and B to the
//! kernel (`stats`) a few thousand elements at a time: BF16 and F32 straight from the mapped
//! bytes, anything else (F16, F64, GGUF blocks, permuted rows) converted by the checkpoint crate
//! into a small buffer. Partial sums merge into the tensor's total. Memory is threads × two items
//! of mapped pages plus two small buffers, whatever the model size: the pages a finished item
//! touched are handed back (`Pages`). Any dtype the checkpoint crate reads works on either side
//! (bf16 vs f32, GGUF vs safetensors).

pub mod figures;
pub mod write;

use crate::bimodality::Bimodality;
use crate::error::{Error, Result};
use crate::stats::{Kernel, Partial, Values, CLIP};
use sfn_checkpoint::selector::Selector;
use sfn_checkpoint::taxonomy::parse_name;
use sfn_checkpoint::{Checkpoint, DType, TensorInfo};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Default number of histogram bins over [−1, 1].
pub const DEFAULT_BINS: usize = 200;
/// Upper limit for `bins` (the bimodality measure is O(bins) per bisection step).
pub const MAX_BINS: usize = 100_000;
/// Stored bytes per work item (of the wider side): large enough that scheduling and the
/// re-faults caused by releasing pages (`Pages`) cost little, small enough that a 1.5B model
/// gives 16 cores dozens of items, and that threads × 2 items in flight stay far below 0.5 GB.
pub const DEFAULT_CHUNK_BYTES: usize = 8 << 20;
/// Elements accumulated at a time inside a work item: where A or B must be converted, its f32
/// buffer (64 KiB) stays in the L2 cache.
const SUB_ELEMS: usize = 16 << 10;

#[derive(Debug, Clone)]
pub struct DeltaOptions {
    /// Histogram bins over [−1, 1].
    pub bins: usize,
    /// Compare only the tensors this selector matches (an error when it matches none).
    pub selector: Option<Selector>,
    /// Fail when the checkpoints do not hold the same (selected) tensors with the same shapes.
    pub strict: bool,
    /// Worker threads; 0 = one per core.
    pub threads: usize,
    /// Elements per work item (rounded to the granules); 0 = `DEFAULT_CHUNK_BYTES` worth.
    pub chunk_elems: usize,
}

impl Default for DeltaOptions {
    fn default() -> Self {
        DeltaOptions { bins: DEFAULT_BINS, selector: None, strict: false, threads: 0, chunk_elems: 0 }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ShapeMismatch {
    pub name: String,
    pub shape_a: Vec<usize>,
    pub shape_b: Vec<usize>,
}

/// Which tensors are compared, and which cannot be.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Names in both with equal shapes, in A's (natural) order.
    pub common: Vec<String>,
    pub only_in_a: Vec<String>,
    pub only_in_b: Vec<String>,
    pub shape_mismatch: Vec<ShapeMismatch>,
    /// Stored bytes of the compared tensors, A + B (what the progress bar counts).
    pub total_bytes: u64,
}

impl Plan {
    /// Pair A's and B's tensors, restricted to `opts.selector`. Errors: the selector matches no
    /// tensor of either; `strict` and the tensor sets or shapes differ.
    pub fn new(a: &Checkpoint, b: &Checkpoint, opts: &DeltaOptions) -> Result<Plan> {
        if opts.bins < 2 || opts.bins > MAX_BINS {
            return Err(Error::Options(format!("bins must be between 2 and {MAX_BINS}, not {}", opts.bins)));
        }
        let names_a: Vec<&str> = a.tensors().iter().map(|t| t.name.as_str()).collect();
        let mut union: Vec<&str> = names_a.clone();
        union.extend(b.tensors().iter().map(|t| t.name.as_str()).filter(|n| a.get(n).is_none()));
        let wanted: HashSet<&str> = match &opts.selector {
            Some(sel) => sel.select(union.iter().copied())?.into_iter().collect(),
            None => union.iter().copied().collect(),
        };
        let mut plan =
            Plan { common: vec![], only_in_a: vec![], only_in_b: vec![], shape_mismatch: vec![], total_bytes: 0 };
        for ta in a.tensors().iter().filter(|t| wanted.contains(t.name.as_str())) {
            match b.get(&ta.name) {
                None => plan.only_in_a.push(ta.name.clone()),
                Some(tb) if tb.shape != ta.shape => plan.shape_mismatch.push(ShapeMismatch {
                    name: ta.name.clone(),
                    shape_a: ta.shape.clone(),
                    shape_b: tb.shape.clone(),
                }),
                Some(tb) => {
                    plan.total_bytes += (ta.nbytes() + tb.nbytes()) as u64;
                    plan.common.push(ta.name.clone());
                }
            }
        }
        plan.only_in_b = b
            .tensors()
            .iter()
            .filter(|t| a.get(&t.name).is_none() && wanted.contains(t.name.as_str()))
            .map(|t| t.name.clone())
            .collect();
        if opts.strict && !plan.is_exact() {
            return Err(Error::Mismatch(format!("--strict: {}", plan.mismatch_summary())));
        }
        Ok(plan)
    }

    /// Both checkpoints hold exactly the same (selected) tensors with the same shapes.
    pub fn is_exact(&self) -> bool {
        self.only_in_a.is_empty() && self.only_in_b.is_empty() && self.shape_mismatch.is_empty()
    }

    /// One line naming what differs ("2 tensors only in A (lm_head.weight, …), …").
    pub fn mismatch_summary(&self) -> String {
        let list = |v: &[String]| {
            let mut s = v.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
            if v.len() > 3 {
                s.push_str(&format!(", … {} more", v.len() - 3));
            }
            s
        };
        let mut parts = vec![];
        if !self.only_in_a.is_empty() {
            parts.push(format!("{} tensor(s) only in A ({})", self.only_in_a.len(), list(&self.only_in_a)));
        }
        if !self.only_in_b.is_empty() {
            parts.push(format!("{} tensor(s) only in B ({})", self.only_in_b.len(), list(&self.only_in_b)));
        }
        if !self.shape_mismatch.is_empty() {
            let m = &self.shape_mismatch[0];
            parts.push(format!(
                "{} tensor(s) with different shapes (first: {} {:?} vs {:?})",
                self.shape_mismatch.len(),
                m.name,
                m.shape_a,
                m.shape_b
            ));
        }
        if parts.is_empty() {
            "A and B hold the same tensors".into()
        } else {
            parts.join("; ")
        }
    }
}

/// The histogram of one tensor's relative change.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Histogram {
    /// Range of the bins: [min, max] = [−1, 1]; bins are equal, the last one closed.
    pub min: f64,
    pub max: f64,
    /// Elements per bin; clipped elements are in the end bins (like `np.histogram(np.clip(r))`).
    pub counts: Vec<u64>,
    /// How many of the end-bin elements were clipped (r ≤ −1, r ≥ 1 before clipping).
    pub clipped_low: u64,
    pub clipped_high: u64,
}

impl Histogram {
    /// Counts with the clipped elements taken out of the end bins.
    pub fn interior(&self) -> Vec<u64> {
        let mut c = self.counts.clone();
        let n = c.len();
        // Saturating: a record read back from a hand-edited file must not panic.
        c[0] = c[0].saturating_sub(self.clipped_low);
        c[n - 1] = c[n - 1].saturating_sub(self.clipped_high);
        c
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NonFinite {
    /// NaN or ±Inf elements in A / in B.
    pub a: u64,
    pub b: u64,
    /// Element pairs left out of every statistic because a or b is not finite.
    pub pairs: u64,
}

/// Everything measured about one tensor.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TensorDelta {
    pub name: String,
    /// Decoder layer, None for embed, final norm, lm_head.
    pub layer: Option<usize>,
    /// Module kind (`ModuleKind::name`: "o_proj", "input_norm", …, "other").
    pub module: String,
    /// "weight", "bias" or "other".
    pub param: String,
    pub shape: Vec<usize>,
    pub numel: u64,
    pub dtype_a: String,
    pub dtype_b: String,
    /// ‖B−A‖₂, ‖A‖₂, ‖B‖₂ over the finite element pairs.
    pub l2_diff: f64,
    pub l2_a: f64,
    pub l2_b: f64,
    /// ‖B−A‖₂ / ‖A‖₂; 0 when nothing changed, None (null) when A is all zeros and B is not.
    pub rel_change: Option<f64>,
    /// ⟨A, B⟩ / (‖A‖₂‖B‖₂); None when either is all zeros.
    pub cosine: Option<f64>,
    pub max_abs_diff: f64,
    pub nonfinite: NonFinite,
    pub hist: Histogram,
    pub bimodality: Bimodality,
}

impl TensorDelta {
    fn new(ta: &TensorInfo, tb: &TensorInfo, p: &Partial) -> TensorDelta {
        let tn = parse_name(&ta.name);
        let (l2_a, l2_b, l2_diff) = (p.sum_aa.sqrt(), p.sum_bb.sqrt(), p.sum_dd.sqrt());
        let hist = Histogram {
            min: -CLIP,
            max: CLIP,
            counts: p.histogram(),
            clipped_low: p.clipped_low(),
            clipped_high: p.clipped_high(),
        };
        TensorDelta {
            name: ta.name.clone(),
            layer: tn.layer,
            module: tn.module.name().to_string(),
            param: tn.param.name().to_string(),
            shape: ta.shape.clone(),
            numel: ta.numel() as u64,
            dtype_a: ta.dtype.name().to_string(),
            dtype_b: tb.dtype.name().to_string(),
            l2_diff,
            l2_a,
            l2_b,
            rel_change: rel_change(l2_diff, l2_a),
            cosine: (l2_a > 0.0 && l2_b > 0.0).then(|| (p.sum_ab / (l2_a * l2_b)).clamp(-1.0, 1.0)),
            max_abs_diff: p.max_abs_diff,
            nonfinite: NonFinite { a: p.nonfinite_a, b: p.nonfinite_b, pairs: p.nonfinite_pairs() },
            bimodality: Bimodality::of(&p.interior(), -CLIP, CLIP),
            hist,
        }
    }
}

/// ‖Δ‖/‖A‖ with the 0/0 case meaning "unchanged".
pub fn rel_change(l2_diff: f64, l2_a: f64) -> Option<f64> {
    if l2_a > 0.0 {
        Some(l2_diff / l2_a)
    } else if l2_diff == 0.0 {
        Some(0.0)
    } else {
        None
    }
}

/// The result of `delta`.
#[derive(Debug, Clone)]
pub struct DeltaResult {
    pub bins: usize,
    /// One record per compared tensor, in A's natural name order.
    pub tensors: Vec<TensorDelta>,
    pub only_in_a: Vec<String>,
    pub only_in_b: Vec<String>,
    pub shape_mismatch: Vec<ShapeMismatch>,
    /// Stored bytes read (A + B).
    pub bytes_read: u64,
    pub elapsed_s: f64,
    pub threads: usize,
}

/// Compare A and B. `progress` is called with the stored bytes of each finished work item
/// (from any thread), e.g. to advance a progress bar.
pub fn delta(
    a: &Checkpoint,
    b: &Checkpoint,
    opts: &DeltaOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<DeltaResult> {
    let plan = Plan::new(a, b, opts)?;
    run(a, b, &plan, opts, progress)
}

/// One work item: elements `start .. start + len` of compared tensor `pair`.
#[derive(Debug, Clone, Copy)]
struct Item {
    pair: usize,
    start: usize,
    len: usize,
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Byte range of elements `start .. start + len` as stored (quantized blocks whole).
fn stored_range(t: &TensorInfo, start: usize, len: usize) -> (usize, usize) {
    let (be, bb) = (t.dtype.block_elems(), t.dtype.block_bytes());
    (t.start + start / be * bb, t.start + (start + len).div_ceil(be) * bb)
}

/// Run a plan made by `Plan::new` (with the same options).
pub fn run(
    a: &Checkpoint,
    b: &Checkpoint,
    plan: &Plan,
    opts: &DeltaOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<DeltaResult> {
    let started = Instant::now();
    let pairs: Vec<(&TensorInfo, &TensorInfo)> =
        plan.common.iter().map(|n| Ok((a.tensor(n)?, b.tensor(n)?))).collect::<Result<_>>()?;
    // Granule of a pair: a multiple of both sides' (block or row), so every chunk boundary is a
    // valid read boundary on both.
    let granules: Vec<usize> = pairs
        .iter()
        .map(|(ta, tb)| {
            let (ga, gb) = (a.granule(ta), b.granule(tb));
            ga / gcd(ga, gb) * gb
        })
        .collect();
    let mut items = Vec::new();
    for (i, (ta, tb)) in pairs.iter().enumerate() {
        let g = granules[i];
        let elems = match opts.chunk_elems {
            0 => {
                let widest = [ta, tb].iter().map(|t| t.nbytes() as f64 / t.numel().max(1) as f64).fold(1.0, f64::max);
                (DEFAULT_CHUNK_BYTES as f64 / widest) as usize
            }
            n => n,
        };
        let step = (elems.max(1) / g).max(1) * g;
        let n = ta.numel();
        let mut start = 0;
        while start < n {
            let len = step.min(n - start);
            items.push(Item { pair: i, start, len });
            start += len;
        }
    }
    // A's storage order: reads run through each file front to back.
    items.sort_by_key(|it| (pairs[it.pair].0.file, pairs[it.pair].0.start, it.start));
    let remaining: Vec<AtomicUsize> = (0..pairs.len()).map(|_| AtomicUsize::new(0)).collect();
    for it in &items {
        remaining[it.pair].fetch_add(1, Ordering::Relaxed);
    }

    let threads =
        if opts.threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { opts.threads };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("sfn-delta-{i}"))
        .build()
        .map_err(|e| Error::Options(format!("cannot start {threads} threads: {e}")))?;
    let totals: Vec<Mutex<Partial>> = pairs.iter().map(|_| Mutex::new(Partial::new(opts.bins))).collect();
    let (pages_a, pages_b) = (Pages::new(a), Pages::new(b));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);

    pool.broadcast(|_| {
        let mut kernel = Kernel::new(opts.bins);
        // Conversion buffers for dtypes the kernel does not read itself.  [sub] each
        let mut bufs = (Vec::<f32>::new(), Vec::<f32>::new());
        while !failed.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&it) = items.get(i) else { break };
            let (ta, tb) = pairs[it.pair];
            let mut part = Partial::new(opts.bins);
            let outcome = accumulate(&mut kernel, &mut part, (a, ta), (b, tb), granules[it.pair], it, &mut bufs);
            if let Err(e) = outcome {
                failed.store(true, Ordering::Relaxed);
                first_error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e.into());
                break;
            }
            totals[it.pair].lock().unwrap_or_else(|p| p.into_inner()).merge(&part);
            let last = remaining[it.pair].fetch_sub(1, Ordering::AcqRel) == 1;
            pages_a.release(ta, it.start, it.len, last);
            pages_b.release(tb, it.start, it.len, last);
            let (ra, rb) = (stored_range(ta, it.start, it.len), stored_range(tb, it.start, it.len));
            progress((ra.1 - ra.0 + rb.1 - rb.0) as u64);
        }
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    // Finishing a tensor includes its bimodality (a bisection over the histogram): in parallel
    // too. A tensor whose f32-block sums may have underflowed (values around 1e-20 and below,
    // or all zero) is summed again in f64 by the portable kernel.
    let simd = Kernel::new(opts.bins).is_simd();
    let tensors = pool.install(|| {
        use rayon::prelude::*;
        pairs
            .par_iter()
            .enumerate()
            .zip(totals)
            .map(|((i, &(ta, tb)), p)| {
                let mut p = p.into_inner().unwrap_or_else(|p| p.into_inner());
                if simd && p.may_have_underflowed(ta.numel() as u64) {
                    let mut exact = Partial::new(opts.bins);
                    let whole = Item { pair: i, start: 0, len: ta.numel() };
                    let mut bufs = (Vec::new(), Vec::new());
                    let mut kernel = Kernel::portable(opts.bins);
                    accumulate(&mut kernel, &mut exact, (a, ta), (b, tb), granules[i], whole, &mut bufs)?;
                    pages_a.release(ta, 0, whole.len, true);
                    pages_b.release(tb, 0, whole.len, true);
                    p = exact;
                }
                Ok(TensorDelta::new(ta, tb, &p))
            })
            .collect::<Result<Vec<_>>>()
    })?;
    Ok(DeltaResult {
        bins: opts.bins,
        tensors,
        only_in_a: plan.only_in_a.clone(),
        only_in_b: plan.only_in_b.clone(),
        shape_mismatch: plan.shape_mismatch.clone(),
        bytes_read: plan.total_bytes,
        elapsed_s: started.elapsed().as_secs_f64(),
        threads,
    })
}

/// Add the pairs of `it` (of A's tensor `ta` and B's `tb`, granule `g`) to `part`, a few
/// thousand at a time.  bufs: conversion buffers for dtypes the kernel does not read itself.
fn accumulate(
    kernel: &mut Kernel,
    part: &mut Partial,
    (a, ta): (&Checkpoint, &TensorInfo),
    (b, tb): (&Checkpoint, &TensorInfo),
    g: usize,
    it: Item,
    bufs: &mut (Vec<f32>, Vec<f32>),
) -> sfn_checkpoint::Result<()> {
    let sub = (SUB_ELEMS / g).max(1) * g;
    let end = it.start + it.len;
    let mut s = it.start;
    let mut outcome = Ok(());
    while s < end {
        let n = sub.min(end - s);
        let va = values(a, ta, s, n, &mut bufs.0);
        let vb = values(b, tb, s, n, &mut bufs.1);
        match (va, vb) {
            (Ok(va), Ok(vb)) => kernel.add(part, va, vb),
            (Err(e), _) | (_, Err(e)) => {
                outcome = Err(e);
                break;
            }
        }
        s += n;
    }
    kernel.flush(part);
    outcome
}

/// Elements `start .. start + n` of `t` for the kernel: BF16 and F32 stored in Hugging Face
/// layout are handed over as the mapped bytes themselves (the kernel converts while it reads,
/// with no staging copy); everything else (F16, F64, GGUF blocks, permuted rows) is converted
/// into `buf` by `Checkpoint::read_f32_into`.
fn values<'a>(
    ck: &'a Checkpoint,
    t: &TensorInfo,
    start: usize,
    n: usize,
    buf: &'a mut Vec<f32>,
) -> sfn_checkpoint::Result<Values<'a>> {
    if let Some(bytes) = ck.raw_bytes(t) {
        let width = match t.dtype {
            DType::BF16 => 2,
            DType::F32 => 4,
            _ => 0,
        };
        if let Some(raw) = bytes.get(start * width..(start + n) * width).filter(|_| width > 0) {
            return Ok(if width == 2 { Values::Bf16Le(raw) } else { Values::F32Le(raw) });
        }
    }
    buf.resize(n, 0.0);
    ck.read_f32_into(t, start, &mut buf[..n])?;
    Ok(Values::F32(&buf[..n]))
}

/// Hands the pages of a memory-mapped checkpoint back to the kernel once read, so that resident
/// memory stays bounded: touched pages of a file mapping count as the process's own until
/// unmapped, and a 2 × 3 GB comparison would otherwise end at 6 GB RSS. The pages stay in the
/// page cache; only this process's mapping of them is dropped (madvise MADV_DONTNEED).
///
/// A read fault maps not only its page but the cached pages around it: the kernel's
/// "fault-around" (64 KiB by default) or, on file systems with large page-cache folios (ext4,
/// xfs on Linux ≥ 6.x), the whole folio of up to 2 MiB. Those pages may belong to a neighbouring
/// item that another thread has already finished and released, and would stay mapped to the
/// end. So each item releases its range widened to the enclosing `FOLIO` boundaries; a
/// neighbour still being read merely faults those pages back in (one fault per folio).
struct Pages {
    /// Per file: address of byte 0 of its mapping (learnt from any tensor whose raw bytes the
    /// checkpoint exposes) and its length. None where it exposes none: nothing is released.
    maps: Vec<Option<(usize, usize)>>,
    page: usize,
}

/// The largest page-cache folio a read fault maps (PMD size on x86-64).
const FOLIO: usize = 2 << 20;

impl Pages {
    fn new(ck: &Checkpoint) -> Pages {
        let paths: Vec<&std::path::Path> = ck.files().collect();
        let mut maps = vec![None; paths.len()];
        for t in ck.tensors() {
            if let (Some(bytes), Some(slot)) = (ck.raw_bytes(t), maps.get_mut(t.file)) {
                if slot.is_none() {
                    let len = std::fs::metadata(paths[t.file]).map_or(0, |m| m.len() as usize);
                    // The map covers the whole file, so it reaches at least this tensor's end.
                    *slot = Some((bytes.as_ptr() as usize - t.start, len.max(t.end)));
                }
            }
        }
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        Pages { maps, page: if page > 0 { page as usize } else { 4096 } }
    }

    /// Release the pages of elements `start .. start + len` of `t`. Rows of GGUF q/k are read
    /// permuted within a head, so for those the whole tensor is released when its last item is
    /// done (`tensor_done`) instead.
    fn release(&self, t: &TensorInfo, start: usize, len: usize, tensor_done: bool) {
        let Some(Some((base, map_len))) = self.maps.get(t.file).copied() else { return };
        let (from, to) = match (t.rope_permuted_heads, tensor_done) {
            (None, _) => stored_range(t, start, len),
            (Some(_), true) => (t.start, t.end),
            (Some(_), false) => return,
        };
        // Widened to FOLIO boundaries of the address space, never outside this file's mapping.
        // Where the mapping is FOLIO-aligned (the kernel aligns large file mappings) this keeps
        // PMD-mapped folios whole: releasing part of one would split it, which tripled the
        // system time. Fault-around windows are aligned within a FOLIO block, so they are
        // covered too. An unaligned mapping gets a folio of slack, as its folios (aligned in
        // the file) straddle the blocks.
        let slack = if base % FOLIO == 0 { 0 } else { FOLIO };
        let end = (base + map_len).div_ceil(self.page) * self.page;
        let lo = ((base + from).saturating_sub(slack) / FOLIO * FOLIO).max(base);
        let hi = ((base + to + slack).div_ceil(FOLIO) * FOLIO).min(end);
        #[cfg(unix)]
        if hi > lo {
            // SAFETY: [lo, hi) lies within a read-only shared file mapping this checkpoint owns
            // (clipped to it above). MADV_DONTNEED on such a mapping only unmaps: the next access
            // faults the same bytes back in from the page cache, so no reader — including another
            // thread reading a neighbouring item — can observe a change. A failure merely leaves
            // the pages resident.
            unsafe {
                libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_DONTNEED);
            }
        }
    }
}
