//! Fingerprints of input files, as results files record them: path, size and SHA-256.
//!
//! Files up to `FULL_HASH_LIMIT` are hashed whole. Larger ones (model weights of many GB, where
//! hashing everything would cost more than the run) are hashed over their size and eight evenly
//! spaced 1 MiB samples, the first and last included, and marked `sampled`: any change to a
//! header, a resize or a rewrite is caught, an edit of a few bytes in the middle may not be.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Files up to this size are hashed whole.
pub const FULL_HASH_LIMIT: u64 = 64 << 20;
const SAMPLES: u64 = 8;
const SAMPLE_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
    /// True when `sha256` covers the size and samples of the file, not all of it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sampled: bool,
}

impl Fingerprint {
    /// The fingerprint of `path`, recorded under its absolute path (so a run restarted from
    /// another directory still recognises its inputs).
    pub fn of(path: &Path) -> Result<Fingerprint> {
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let bytes = f.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut h = Sha256::new();
        let sampled = bytes > FULL_HASH_LIMIT;
        if sampled {
            h.update(bytes.to_le_bytes());
            let mut buf = vec![0u8; SAMPLE_BYTES as usize];
            for i in 0..SAMPLES {
                let at = (bytes - SAMPLE_BYTES) * i / (SAMPLES - 1);
                f.seek(SeekFrom::Start(at)).map_err(|e| Error::io(path, e))?;
                f.read_exact(&mut buf).map_err(|e| match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => Error::io(
                        path,
                        std::io::Error::other(format!("changed while sfn was reading it (was {bytes} bytes)")),
                    ),
                    _ => Error::io(path, e),
                })?;
                h.update(&buf);
            }
        } else {
            std::io::copy(&mut f, &mut h).map_err(|e| Error::io(path, e))?;
        }
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        Ok(Fingerprint { path, bytes, sha256: hex(&h.finalize()), sampled })
    }
}

/// SHA-256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_files_are_hashed_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        std::fs::write(&p, b"abc").unwrap();
        let f = Fingerprint::of(&p).unwrap();
        assert_eq!(f.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!((f.bytes, f.sampled), (3, false));
        assert!(!serde_json::to_string(&f).unwrap().contains("sampled"));
    }

    #[test]
    fn large_files_are_sampled_and_a_changed_sample_changes_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        let mut data = vec![7u8; (FULL_HASH_LIMIT + 12345) as usize];
        std::fs::write(&p, &data).unwrap();
        let a = Fingerprint::of(&p).unwrap();
        assert!(a.sampled);
        let last = data.len() - 1;
        data[last] = 8;
        std::fs::write(&p, &data).unwrap();
        assert_ne!(Fingerprint::of(&p).unwrap().sha256, a.sha256);
    }
}
