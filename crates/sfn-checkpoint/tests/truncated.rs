//! A file truncated by another process while sfn reads it through its memory map is an error that
//! names the file, not a crash: the SIGBUS of the read is handled (crate::mapped). The read runs in
//! a child process (this test binary again), which opens a checkpoint, truncates it, then reads.

use sfn_checkpoint::Checkpoint;
use std::process::Command;

const CHILD: &str = "SFN_TEST_TRUNCATE_CHILD";

fn child(path: &str) -> ! {
    let ck = Checkpoint::open(path).unwrap();
    std::fs::OpenOptions::new().write(true).open(path).unwrap().set_len(4096).unwrap();
    let t = ck.tensor("w").unwrap();
    let v = ck.read_f32(t);
    eprintln!("read returned after the truncation: {:?}", v.map(|v| v.len()));
    std::process::exit(3)
}

#[test]
fn a_file_truncated_under_the_map_is_an_error_naming_it() {
    if let Ok(path) = std::env::var(CHILD) {
        child(&path);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shrinking.safetensors");
    let n = 4 << 20; // 16 MiB of f32: the truncation leaves most pages past the end
    let header = format!(r#"{{"w":{{"dtype":"F32","shape":[{n}],"data_offsets":[0,{}]}}}}"#, 4 * n);
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    bytes.resize(bytes.len() + 4 * n, 1);
    std::fs::write(&path, bytes).unwrap();

    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "a_file_truncated_under_the_map_is_an_error_naming_it", "--nocapture"])
        .env(CHILD, &path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "child: {:?}\n{err}", out.status);
    assert!(
        err.contains(&format!("{}: changed while sfn was reading it (truncated under the memory map)", path.display())),
        "{err}"
    );
}
