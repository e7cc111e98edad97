//! Resident memory stays bounded whatever the checkpoint size: the pages of the memory-mapped
//! files are handed back as they are read (a leak here showed up as RSS growing with the model,
//! and, on ext4 with large folios, as whole 2 MiB folios of already-finished neighbours staying
//! mapped). Linux only: it reads /proc/self/status. Its own test binary, so no other test's
//! allocations share the process.

#![cfg(target_os = "linux")]

use sfn_checkpoint::Checkpoint;
use sfn_scope::delta::{delta, DeltaOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Write a .safetensors file of `tensors` bf16 tensors of `numel` elements each, generated on the
/// fly (never the whole file in memory).
fn write_bf16(path: &Path, tensors: usize, numel: usize, seed: u32) {
    let mut header = serde_json::Map::new();
    for i in 0..tensors {
        let name = format!("model.layers.{i}.mlp.up_proj.weight");
        header.insert(name, serde_json::json!({"dtype": "BF16", "shape": [numel / 1024, 1024], "data_offsets": [i * numel * 2, (i + 1) * numel * 2]}));
    }
    let mut h = serde_json::Value::Object(header).to_string().into_bytes();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(&(h.len() as u64).to_le_bytes()).unwrap();
    f.write_all(&h).unwrap();
    // 61 rows of xorshift noise (exponent held in a narrow range: |w| in [2^-7, 2)), cycled:
    // the values do not matter here, only that every page gets read.
    let mut x = seed;
    let rows: Vec<Vec<u8>> = (0..61)
        .map(|_| {
            (0..1024)
                .flat_map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (0x3c00u16 | (x as u16 & 0x83ff)).to_le_bytes()
                })
                .collect()
        })
        .collect();
    for r in 0..tensors * numel / 1024 {
        f.write_all(&rows[r % rows.len()]).unwrap();
    }
    f.flush().unwrap();
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn resident_memory_does_not_grow_with_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    // 2 × 64 MiB of bf16.
    let (tensors, numel) = (8, 4 << 20);
    write_bf16(&dir.path().join("a.safetensors"), tensors, numel, 1);
    write_bf16(&dir.path().join("b.safetensors"), tensors, numel, 2);
    let a = Checkpoint::open(dir.path().join("a.safetensors")).unwrap();
    let b = Checkpoint::open(dir.path().join("b.safetensors")).unwrap();
    let before = rss_kib();
    let peak = AtomicU64::new(before);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(), Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        });
        // Items of 1M elements (2 MiB per side): the file holds 64 of them.
        let opts = DeltaOptions { threads: 2, chunk_elems: 1 << 20, ..Default::default() };
        let r = delta(&a, &b, &opts, &|_| {});
        done.store(true, Ordering::Relaxed);
        let r = r.unwrap();
        assert_eq!(r.tensors.len(), tensors);
        assert_eq!(r.bytes_read, (2 * tensors * numel * 2) as u64);
    });
    let grown_mib = (peak.into_inner().saturating_sub(before)) as f64 / 1024.0;
    println!("RSS grew by {grown_mib:.1} MiB while reading 128 MiB");
    // In flight: 2 threads × (2 MiB of A + 2 MiB of B), each widened to 2 MiB folio boundaries;
    // unreleased pages would add up to the 128 MiB read.
    assert!(grown_mib < 40.0, "RSS grew by {grown_mib:.1} MiB while reading 128 MiB");
}
