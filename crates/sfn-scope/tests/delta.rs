//! The Delta stethoscope on synthetic checkpoint pairs with known answers: identical models,
//! B = A·(1 ± 0.3), multiplicative Gaussian noise, A + small noise, one module changed more than
//! the others, missing and reshaped tensors, selectors, chunking and threads, and the files.

mod common;

use common::{map, model, rounded, write, Rng, T};
use sfn_checkpoint::selector::Selector;
use sfn_checkpoint::Checkpoint;
use sfn_scope::delta::aggregate::{Aggregates, Metric};
use sfn_scope::delta::{delta, DeltaOptions, DeltaResult, TensorDelta};
use std::path::Path;

fn pair(dir: &Path, a: &[T], da: &str, b: &[T], db: &str) -> (Checkpoint, Checkpoint) {
    write(&dir.join("a.safetensors"), a, da);
    write(&dir.join("b.safetensors"), b, db);
    (Checkpoint::open(dir.join("a.safetensors")).unwrap(), Checkpoint::open(dir.join("b.safetensors")).unwrap())
}

fn run(a: &Checkpoint, b: &Checkpoint) -> DeltaResult {
    delta(a, b, &DeltaOptions::default(), &|_| {}).unwrap()
}

fn get<'a>(r: &'a DeltaResult, name: &str) -> &'a TensorDelta {
    r.tensors.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("{name} not compared"))
}

#[test]
fn delta_of_a_checkpoint_with_itself_is_all_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let a = model(3, 64, 96, 128, 1);
    let (ca, cb) = pair(dir.path(), &a, "BF16", &a, "BF16");
    let r = run(&ca, &cb);
    assert_eq!(r.tensors.len(), a.len());
    for t in &r.tensors {
        assert_eq!((t.l2_diff, t.max_abs_diff, t.rel_change), (0.0, 0.0, Some(0.0)), "{}", t.name);
        assert!((t.l2_a - t.l2_b).abs() == 0.0 && t.l2_a > 0.0);
        assert!((t.cosine.unwrap() - 1.0).abs() < 1e-12);
        // Every element in the bin holding 0 ([0, 0.01)), nothing clipped, not bimodal.
        assert_eq!(t.hist.counts[100], t.numel, "{}", t.name);
        assert_eq!(t.hist.total(), t.numel);
        assert_eq!((t.hist.clipped_low, t.hist.clipped_high), (0, 0));
        assert!(!t.bimodality.bimodal && t.bimodality.dip == 0.0);
    }
    let agg = Aggregates::of(&r.tensors, Metric::RelChange);
    assert!(agg.verdict.starts_with("no change"), "{}", agg.verdict);
}

#[test]
fn plus_minus_point_three_gives_exactly_two_peaks_and_is_flagged_bimodal() {
    let dir = tempfile::tempdir().unwrap();
    let a = model(2, 64, 96, 128, 2);
    let b = map(&a, 3, |_, v, rng| v * if rng.next_f64() < 0.5 { 0.7 } else { 1.3 });
    let (ca, cb) = pair(dir.path(), &a, "F32", &b, "F32");
    let r = run(&ca, &cb);
    for t in &r.tensors {
        let h = &t.hist.counts;
        // r = ±0.3 up to f32 rounding and the 1e-8 guard: all mass in the bins touching ±0.3
        // (edges at 0.3 = bin 130's left edge and −0.3 = bin 70's left edge).
        let near: u64 = [69, 70, 129, 130].iter().map(|&i| h[i]).sum();
        assert_eq!(near, t.numel, "{}: {:?}", t.name, h.iter().enumerate().filter(|(_, &c)| c > 0).collect::<Vec<_>>());
        assert!(t.bimodality.bimodal, "{}: {:?}", t.name, t.bimodality);
        assert_eq!(t.bimodality.modes.len(), 2, "{}: {:?}", t.name, t.bimodality);
        assert!((t.bimodality.modes[0] + 0.3).abs() < 0.011 && (t.bimodality.modes[1] - 0.3).abs() < 0.011);
        // Two equal spikes have the largest possible dip, 1/4; a 64-element vector's random
        // signs split less evenly.
        assert!(t.bimodality.dip > if t.numel >= 1000 { 0.23 } else { 0.15 }, "{}: {:?}", t.name, t.bimodality);
        let rel = t.rel_change.unwrap();
        assert!((rel - 0.3).abs() < 0.01, "{}: {rel}", t.name);
    }
    let agg = Aggregates::of(&r.tensors, Metric::RelChange);
    assert!(agg.summary.iter().all(|m| m.bimodal_cells == m.cells), "{:?}", agg.summary);
}

#[test]
fn multiplicative_gaussian_noise_is_flagged_unimodal_even_through_bf16() {
    let dir = tempfile::tempdir().unwrap();
    let a = model(2, 128, 256, 256, 4);
    for (sigma, dtype) in [(0.1, "F32"), (0.1, "BF16"), (0.02, "BF16"), (0.3, "BF16")] {
        let b = map(&a, 5, |_, v, rng| v * (1.0 + sigma * rng.normal()) as f32);
        let (ca, cb) = pair(dir.path(), &a, dtype, &b, dtype);
        let r = run(&ca, &cb);
        for t in r.tensors.iter().filter(|t| t.numel >= 1000) {
            assert!(!t.bimodality.bimodal, "σ {sigma} {dtype} {}: {:?}", t.name, t.bimodality);
            assert_eq!(t.bimodality.modes.len(), 1, "σ {sigma} {dtype} {}: {:?}", t.name, t.bimodality);
            // The top of a wide bell is flat at the tube's resolution: the mode is only that sharp.
            assert!(
                t.bimodality.modes[0].abs() < 0.03f64.max(sigma / 5.0),
                "σ {sigma} {dtype} {}: {:?}",
                t.name,
                t.bimodality
            );
            // ‖A·δ‖/‖A‖ ≈ σ.
            assert!((t.rel_change.unwrap() / sigma - 1.0).abs() < 0.15, "{}: {:?}", t.name, t.rel_change);
        }
    }
}

#[test]
fn a_plus_small_noise_is_unimodal_despite_the_clip_spikes() {
    // Additive noise: where |A| is below the noise, r leaves [−1, 1] and piles up in the end bins.
    let dir = tempfile::tempdir().unwrap();
    let a = model(2, 128, 256, 256, 6);
    let b = map(&a, 7, |_, v, rng| v + (0.004 * rng.normal()) as f32);
    let (ca, cb) = pair(dir.path(), &a, "BF16", &b, "BF16");
    let r = run(&ca, &cb);
    let t = get(&r, "model.layers.0.mlp.up_proj.weight");
    let n = t.numel as f64;
    let clipped = (t.hist.clipped_low + t.hist.clipped_high) as f64 / n;
    assert!(clipped > 0.05, "clipped {clipped}");
    // The clip bins are the two tallest after the centre, yet the shape inside is one mode.
    assert!(t.hist.counts[0] > t.hist.counts[1] * 5 && t.hist.counts[199] > t.hist.counts[198] * 5);
    for t in r.tensors.iter().filter(|t| t.numel >= 1000 && t.module != "input_norm" && t.module != "post_attn_norm") {
        assert!(!t.bimodality.bimodal, "{}: {:?}", t.name, t.bimodality);
        assert!(t.bimodality.dip < 0.01, "{}: {:?}", t.name, t.bimodality);
    }
}

#[test]
fn the_module_that_changed_most_is_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let a = model(4, 64, 96, 128, 8);
    let b = map(&a, 9, |name, v, rng| {
        let s = if name.contains("o_proj") {
            0.05
        } else if name.contains("up_proj") {
            0.02
        } else {
            0.01
        };
        v * (1.0 + s * rng.normal()) as f32
    });
    let (ca, cb) = pair(dir.path(), &a, "F32", &b, "F32");
    let r = run(&ca, &cb);
    let agg = Aggregates::of(&r.tensors, Metric::RelChange);
    assert_eq!(agg.summary[0].module, "o_proj");
    assert_eq!(agg.summary[1].module, "up_proj");
    assert!(agg.verdict.starts_with("largest change: o_proj, 2."), "{}", agg.verdict);
    assert!(agg.verdict.contains("first in 4 of 4 layers"), "{}", agg.verdict);
    assert_eq!(agg.summary[0].first_in_layers, 4);
    // Grid: 4 layers × module kinds; q_proj's cell sums weight and bias.
    assert_eq!(agg.layers, vec![0, 1, 2, 3]);
    let q = agg.cell("q_proj", Some(2)).unwrap();
    assert_eq!(q.tensors.len(), 2);
    let (w, bias) =
        (get(&r, "model.layers.2.self_attn.q_proj.weight"), get(&r, "model.layers.2.self_attn.q_proj.bias"));
    assert!((q.l2_diff - (w.l2_diff.powi(2) + bias.l2_diff.powi(2)).sqrt()).abs() < 1e-15);
    assert_eq!(q.hist_counts.iter().sum::<u64>(), w.numel + bias.numel);
    let grid = agg.grid(Metric::L2Diff);
    assert_eq!(grid.len(), 4);
    assert_eq!(grid[0].len(), agg.modules.len());
}

#[test]
fn uniform_change_everywhere_names_no_single_module() {
    let dir = tempfile::tempdir().unwrap();
    let a = model(4, 64, 96, 128, 18);
    let b = map(&a, 19, |_, v, rng| v * (1.0 + 0.02 * rng.normal()) as f32);
    let (ca, cb) = pair(dir.path(), &a, "F32", &b, "F32");
    let agg = Aggregates::of(&run(&ca, &cb).tensors, Metric::RelChange);
    assert!(agg.verdict.starts_with("no single module kind stands out: "), "{}", agg.verdict);
    assert!(agg.verdict.contains("are within 10% of the largest"), "{}", agg.verdict);
}

#[test]
fn missing_and_reshaped_tensors_are_listed_and_strict_refuses_them() {
    let dir = tempfile::tempdir().unwrap();
    let a = model(2, 32, 48, 64, 10);
    let mut b: Vec<T> = a.iter().filter(|t| t.name != "model.norm.weight").cloned().collect();
    b.push(T { name: "lm_head.weight".into(), shape: vec![64, 32], data: vec![0.5; 64 * 32] });
    let up = b.iter_mut().find(|t| t.name == "model.layers.1.mlp.up_proj.weight").unwrap();
    up.shape = vec![32, 48];
    let (ca, cb) = pair(dir.path(), &a, "F32", &b, "BF16");
    let r = run(&ca, &cb);
    assert_eq!(r.only_in_a, vec!["model.norm.weight"]);
    assert_eq!(r.only_in_b, vec!["lm_head.weight"]);
    assert_eq!(r.shape_mismatch.len(), 1);
    assert_eq!(r.shape_mismatch[0].shape_a, vec![48, 32]);
    assert_eq!(r.tensors.len(), a.len() - 2);
    let strict = DeltaOptions { strict: true, ..Default::default() };
    let err = delta(&ca, &cb, &strict, &|_| {}).unwrap_err().to_string();
    assert!(
        err.contains("only in A (model.norm.weight)") && err.contains("only in B") && err.contains("different shapes"),
        "{err}"
    );
}

#[test]
fn a_selector_restricts_the_comparison_and_one_matching_nothing_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let a = model(3, 32, 48, 64, 11);
    let (ca, cb) = pair(dir.path(), &a, "F32", &a, "F32");
    let sel = Selector::parse("o_proj").unwrap().with_layers("1..3").unwrap();
    let r = delta(&ca, &cb, &DeltaOptions { selector: Some(sel), ..Default::default() }, &|_| {}).unwrap();
    let names: Vec<&str> = r.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, vec!["model.layers.1.self_attn.o_proj.weight", "model.layers.2.self_attn.o_proj.weight"]);
    let nothing = DeltaOptions { selector: Some(Selector::parse("lm_head").unwrap()), ..Default::default() };
    assert!(delta(&ca, &cb, &nothing, &|_| {}).unwrap_err().to_string().contains("matches no tensor"));
}

#[test]
fn chunks_and_threads_do_not_change_the_numbers() {
    // One big tensor split into many items across threads, against one thread and whole tensors.
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(12);
    let a = vec![T {
        name: "model.embed_tokens.weight".into(),
        shape: vec![1000, 333],
        data: (0..333_000).map(|_| rng.normal() as f32).collect(),
    }];
    let b = map(&a, 13, |_, v, rng| v + (0.3 * rng.normal()) as f32);
    let (ca, cb) = pair(dir.path(), &a, "F32", &b, "BF16");
    let whole =
        delta(&ca, &cb, &DeltaOptions { threads: 1, chunk_elems: usize::MAX, ..Default::default() }, &|_| {}).unwrap();
    let bytes = std::sync::atomic::AtomicU64::new(0);
    let split = delta(&ca, &cb, &DeltaOptions { threads: 4, chunk_elems: 1000, ..Default::default() }, &|n| {
        bytes.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    })
    .unwrap();
    let (w, s) = (&whole.tensors[0], &split.tensors[0]);
    assert_eq!(w.hist, s.hist);
    assert_eq!(w.max_abs_diff, s.max_abs_diff);
    // Sums agree up to rounding: the SIMD kernel adds in f32 blocks of 128 elements, whose
    // boundaries move with the chunks (documented bound 1e-6; ~1e-9 in practice).
    for (x, y) in [(w.l2_diff, s.l2_diff), (w.l2_a, s.l2_a), (w.l2_b, s.l2_b), (w.cosine.unwrap(), s.cosine.unwrap())] {
        assert!((x - y).abs() <= 1e-6 * x.abs(), "{x} vs {y}");
    }
    // The progress callback saw every stored byte once: 4 bytes (f32) + 2 (bf16) per element.
    assert_eq!(bytes.into_inner(), 333_000 * 6);
    assert_eq!(split.bytes_read, 333_000 * 6);
}

#[test]
fn bf16_against_f32_of_the_same_values_is_no_change() {
    let dir = tempfile::tempdir().unwrap();
    let a = model(2, 32, 48, 64, 14);
    let exact = rounded(&a, "BF16");
    let (ca, cb) = pair(dir.path(), &a, "BF16", &exact, "F32");
    let r = run(&ca, &cb);
    assert!(r.tensors.iter().all(|t| t.l2_diff == 0.0 && t.dtype_a == "BF16" && t.dtype_b == "F32"));
}

#[test]
fn nan_and_inf_are_counted_and_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let a = model(1, 32, 48, 64, 15);
    let mut b = a.clone();
    let t = b.iter_mut().find(|t| t.name.ends_with("o_proj.weight")).unwrap();
    t.data[3] = f32::NAN;
    t.data[4] = f32::INFINITY;
    let (ca, cb) = pair(dir.path(), &a, "F32", &b, "F32");
    let r = run(&ca, &cb);
    let o = get(&r, "model.layers.0.self_attn.o_proj.weight");
    assert_eq!((o.nonfinite.a, o.nonfinite.b, o.nonfinite.pairs), (0, 2, 2));
    assert_eq!(o.l2_diff, 0.0);
    assert_eq!(o.hist.total(), o.numel - 2);
    assert!(o.l2_b.is_finite());
}

#[test]
fn result_files_hold_every_tensor_and_the_inputs_and_read_back() {
    use sfn_scope::delta::write::{table, DeltaReport};
    use sfn_scope::delta::DeltaSpec;
    let dir = tempfile::tempdir().unwrap();
    let a = model(2, 32, 48, 64, 16);
    let b = map(&a, 17, |_, v, rng| v * (1.0 + 0.01 * rng.normal()) as f32);
    let (ca, cb) = pair(dir.path(), &a, "BF16", &b, "F32");
    let spec: DeltaSpec = serde_json::from_value(serde_json::json!({"a": ca.path, "b": cb.path})).unwrap();
    let out = dir.path().join("out");
    let ctx = sfn_run::Context { command: vec!["sfn".into(), "delta".into()], progress: &sfn_run::Silent };
    let o = sfn_scope::delta::run(&spec, &out, &ctx).unwrap();
    assert_eq!(o.files.len(), 2 + 8, "json, csv and four figures as SVG + PNG");
    let (r, agg) = (&o.result, &o.aggregates);
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("delta.json")).unwrap()).unwrap();
    assert_eq!(doc["kind"], "sfn.delta");
    assert_eq!(doc["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["command"][1], "delta");
    assert_eq!(doc["spec"]["bins"], 200);
    assert_eq!(
        doc["inputs"][0]["files"][0]["bytes"].as_u64().unwrap(),
        std::fs::metadata(dir.path().join("a.safetensors")).unwrap().len()
    );
    assert_eq!(doc["inputs"][0]["files"][0]["sha256"].as_str().unwrap().len(), 64);
    let tensors = doc["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), a.len());
    for key in [
        "name",
        "layer",
        "module",
        "l2_diff",
        "l2_a",
        "l2_b",
        "rel_change",
        "cosine",
        "max_abs_diff",
        "nonfinite",
        "hist",
        "bimodality",
    ] {
        assert!(tensors[1].get(key).is_some(), "tensor record lacks {key}");
    }
    assert_eq!(tensors[1]["hist"]["counts"].as_array().unwrap().len(), 200);
    assert_eq!(doc["verdict"], agg.verdict);
    // The whole file reads back into its typed struct, as a report builds from it.
    let back = DeltaReport::read(&out).unwrap();
    assert_eq!(back.tensors, r.tensors);
    assert_eq!((back.verdict.as_str(), back.modules.len()), (agg.verdict.as_str(), agg.summary.len()));
    assert_eq!(back.provenance.spec, serde_json::to_value(&spec).unwrap());
    // run.json: the kind, the spec, complete, every file it wrote.
    let m = sfn_run::Manifest::read(&out).unwrap();
    assert_eq!((m.kind.as_str(), m.status), ("delta", sfn_run::Status::Complete));
    assert!(m.files.contains(&"delta.json".to_string()) && m.files.contains(&"delta_heatmap_l2.png".to_string()));
    let csv = std::fs::read_to_string(out.join("delta.csv")).unwrap();
    assert_eq!(csv.lines().count(), a.len() + 1);
    assert!(csv.lines().nth(1).unwrap().starts_with("model.embed_tokens.weight,,embed,weight,64x32,2048,BF16,F32,"));
    let t = table(r, agg);
    assert!(t.contains("o_proj") && t.contains(&agg.verdict), "{t}");
}

#[test]
fn tensors_of_tiny_values_keep_float64_precision() {
    // The SIMD kernel sums squares in f32 blocks, where values below ~1e-19 underflow; delta
    // recomputes such tensors in f64. One tensor scaled to 1e-30, the other left as it is.
    let dir = tempfile::tempdir().unwrap();
    let a = model(1, 32, 48, 64, 16);
    let b = map(&a, 17, |_, v, rng| v * (1.0 + 0.1 * rng.normal() as f32));
    let tiny = |ts: &[T]| -> Vec<T> {
        ts.iter()
            .map(|t| T {
                data: if t.name.ends_with("o_proj.weight") {
                    t.data.iter().map(|v| v * 1e-30).collect()
                } else {
                    t.data.clone()
                },
                ..t.clone()
            })
            .collect()
    };
    let (a, b) = (tiny(&a), tiny(&b));
    let (ca, cb) = pair(dir.path(), &a, "F32", &b, "F32");
    let r = run(&ca, &cb);
    let (ta, tb) = (
        a.iter().find(|t| t.name.ends_with("o_proj.weight")).unwrap(),
        b.iter().find(|t| t.name.ends_with("o_proj.weight")).unwrap(),
    );
    let norm = |v: &mut dyn Iterator<Item = f64>| v.map(|x| x * x).sum::<f64>().sqrt();
    let l2_a = norm(&mut ta.data.iter().map(|&x| x as f64));
    let l2_diff = norm(&mut ta.data.iter().zip(&tb.data).map(|(&x, &y)| y as f64 - x as f64));
    let o = get(&r, "model.layers.0.self_attn.o_proj.weight");
    assert!(l2_a < 1e-28, "{l2_a}");
    assert!((o.l2_a - l2_a).abs() <= 1e-12 * l2_a, "{} vs {l2_a}", o.l2_a);
    assert!((o.l2_diff - l2_diff).abs() <= 1e-12 * l2_diff, "{} vs {l2_diff}", o.l2_diff);
    assert!((o.rel_change.unwrap() - 0.1).abs() < 0.02);
}
