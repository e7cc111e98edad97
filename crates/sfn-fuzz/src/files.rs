//! Scratch files for the parsers that read paths (memory maps, directories of side files).

use std::path::{Path, PathBuf};

thread_local! {
    // One directory per thread for the whole fuzzing run: creating one per input would spend
    // libFuzzer's time on mkdir/rmdir instead of the parsers.
    static SCRATCH: tempfile::TempDir = tempfile::Builder::new().prefix("sfn-fuzz-").tempdir_in(scratch_root())
        .expect("cannot create a scratch directory for the fuzz target");
}

/// Memory, where there is a tmpfs for it: the targets write a file per input.
fn scratch_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Empty the scratch directory, write `files` (name, contents) into it and call `f` with its path.
pub fn with_files<R>(files: &[(&str, &[u8])], f: impl FnOnce(&Path) -> R) -> R {
    SCRATCH.with(|dir| {
        let dir = dir.path();
        for entry in std::fs::read_dir(dir).expect("scratch directory vanished") {
            let p = entry.expect("scratch directory unreadable").path();
            if p.is_dir() {
                std::fs::remove_dir_all(&p).expect("cannot clear the scratch directory");
            } else {
                std::fs::remove_file(&p).expect("cannot clear the scratch directory");
            }
        }
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes).expect("cannot write a scratch file");
        }
        f(dir)
    })
}

/// The NUL-separated parts of `data`, as text where a parser wants text (lossy: the parsers
/// behind these targets take `&str`, the file readers in front of them already refuse bad UTF-8).
pub fn parts(data: &[u8], n: usize) -> Vec<String> {
    let mut out: Vec<String> = data.splitn(n, |&b| b == 0).map(|p| String::from_utf8_lossy(p).into_owned()).collect();
    out.resize(n, String::new());
    out
}
