//! The streaming comparison of A and B: the tensors are cut into work items of about 8 MiB whose
//! boundaries are multiples of both checkpoints' granules (a GGUF block, a permuted row), so big
//! tensors are split across threads too. Workers take items in A's storage order (sequential
//! reads) and feed A and B to the kernel (`stats`) a few thousand elements at a time: BF16 and F32
//! straight from the mapped bytes, anything else (F16, F64, GGUF blocks, permuted rows) converted
//! by the checkpoint crate into a small buffer. Partial sums merge into the tensor's total.
//! Memory is threads × two items of mapped pages plus two small buffers, whatever the model size:
//! the pages a finished item touched are handed back (`Checkpoint::release_range`).

use super::bimodality::Bimodality;
use super::plan::{Plan, ShapeMismatch};
use super::stats::{Kernel, Partial, Values, CLIP};
use super::{DeltaOptions, DEFAULT_CHUNK_BYTES, SUB_ELEMS};
use crate::error::{Error, Result};
use sfn_checkpoint::taxonomy::parse_name;
use sfn_checkpoint::{Checkpoint, DType, TensorInfo};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

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
    compare(a, b, &plan, opts, progress)
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
pub fn compare(
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
            release(a, ta, it.start, it.len, last);
            release(b, tb, it.start, it.len, last);
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
                    release(a, ta, 0, whole.len, true);
                    release(b, tb, 0, whole.len, true);
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

/// Hand the pages of elements `start .. start + len` of `t` back once read. Rows of GGUF q/k are
/// read permuted within a head, so for those the whole tensor is released when its last item is
/// done (`tensor_done`) instead.
fn release(ck: &Checkpoint, t: &TensorInfo, start: usize, len: usize, tensor_done: bool) {
    match (t.rope_permuted_heads, tensor_done) {
        (None, _) => {
            let (from, to) = stored_range(t, start, len);
            ck.release_range(t.file, from, to - from);
        }
        (Some(_), true) => ck.release(t),
        (Some(_), false) => {}
    }
}
