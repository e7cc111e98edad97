//! Files that lie about their sizes are refused at once, without a large allocation: a 100-byte
//! GGUF claiming 10^12 tensors or metadata entries, a string or array of 2^60 elements, a tensor
//! of 2^60 elements, a safetensors header of 2^60 bytes or a shape of 2^62 elements. Each `sfn
//! inspect` fails with a message naming the file and what is impossible, and the largest child
//! process stays small (peak RSS from getrusage of the waited children; this file holds one test
//! so no other child is counted).

mod common;

use common::*;
use std::path::Path;

fn gguf(counts: (u64, u64), body: &[u8]) -> Vec<u8> {
    let mut v = b"GGUF".to_vec();
    v.extend(3u32.to_le_bytes());
    v.extend(counts.0.to_le_bytes());
    v.extend(counts.1.to_le_bytes());
    v.extend(body);
    v.extend([0u8; 48]);
    v
}

fn gguf_string(s: &str) -> Vec<u8> {
    [&(s.len() as u64).to_le_bytes()[..], s.as_bytes()].concat()
}

fn safetensors(header: &str) -> Vec<u8> {
    [&(header.len() as u64).to_le_bytes()[..], header.as_bytes(), &[0u8; 16]].concat()
}

#[test]
fn lying_sizes_are_refused_at_once_with_little_memory() {
    let dir = tempfile::tempdir().unwrap();
    let huge = 1u64 << 60;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("tensors.gguf", gguf((1_000_000_000_000, 0), &[]), "tensor count 1000000000000 is impossible"),
        ("metadata.gguf", gguf((0, 1_000_000_000_000), &[]), "metadata count 1000000000000 is impossible"),
        (
            "string.gguf",
            gguf((0, 1), &[gguf_string("name"), 8u32.to_le_bytes().to_vec(), huge.to_le_bytes().to_vec()].concat()),
            "string length 1152921504606846976",
        ),
        (
            "array.gguf",
            gguf(
                (0, 1),
                &[
                    gguf_string("arr."),
                    9u32.to_le_bytes().to_vec(),
                    4u32.to_le_bytes().to_vec(),
                    huge.to_le_bytes().to_vec(),
                ]
                .concat(),
            ),
            "array length 1152921504606846976",
        ),
        (
            "shape.gguf",
            gguf(
                (1, 0),
                &[
                    gguf_string("tensor"),
                    2u32.to_le_bytes().to_vec(),
                    (1u64 << 30).to_le_bytes().to_vec(),
                    (1u64 << 30).to_le_bytes().to_vec(),
                    0u32.to_le_bytes().to_vec(),
                    0u64.to_le_bytes().to_vec(),
                ]
                .concat(),
            ),
            "runs past the end of the file",
        ),
        (
            "header.safetensors",
            [&huge.to_le_bytes()[..], b"{}"].concat(),
            "header length 1152921504606846976 is larger than the file",
        ),
        (
            "shape.safetensors",
            safetensors(r#"{"w":{"dtype":"F32","shape":[2147483648,2147483648],"data_offsets":[0,16]}}"#),
            "shape overflows",
        ),
    ];
    for (name, bytes, want) in &cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        assert!(bytes.len() < 200, "{name}: the lie must be in a small file");
        let out = sfn(&["inspect", path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: accepted");
        assert!(err.contains(&*Path::new(name).to_string_lossy()) && err.contains(want), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
    // SAFETY: getrusage fills the struct it is given.
    let peak_kib = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage), 0);
        usage.ru_maxrss
    };
    println!("largest sfn inspect on the lying files: {peak_kib} KiB peak RSS");
    assert!(peak_kib < 64 * 1024, "a lying file made sfn use {peak_kib} KiB");
}
