//! Fault injection on every writer: the checkpoint writer (`sfn convert`), results files (`sfn
//! eval`), training saves (`sfn freeze`) and reports with figures (`sfn delta`).
//!
//! - Killed (SIGKILL) at random points, again and again into the same output: no file under a final
//!   name is ever partial, and a rerun completes with the uninterrupted run's results.
//! - A full disk: a small tmpfs the test mounts (root), or where mounting is not allowed, the
//!   file-size limit (RLIMIT_FSIZE, so writes fail with EFBIG): a clear error naming the file, exit
//!   status 1, nothing partial under a final name; with the space back, a rerun completes.
//! - An input truncated under the memory map while `sfn delta` reads it: an error naming the file
//!   (the SIGBUS is handled), never a death by signal.

mod common;

use common::*;
use sfn_checkpoint::Checkpoint;
use sfn_run::SplitMix64;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

/// Every file under `dir` with a final name is whole. Dot-files and dot-directories are the
/// writers' temporaries (renamed into place when complete) and are skipped.
fn assert_complete(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            assert_complete(&path);
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let text = || String::from_utf8(bytes.clone()).unwrap_or_else(|_| panic!("{}: not UTF-8", path.display()));
        let whole = match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
            "json" => serde_json::from_slice::<serde_json::Value>(&bytes).is_ok(),
            "jsonl" => {
                let t = text();
                (t.is_empty() || t.ends_with('\n'))
                    && t.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
            }
            "safetensors" => {
                Checkpoint::open(&path).is_ok_and(|ck| ck.tensors().iter().all(|t| ck.read_f32(t).is_ok()))
            }
            "svg" => text().trim_end().ends_with("</svg>"),
            "html" => text().trim_end().ends_with("</html>"),
            "csv" | "md" => text().ends_with('\n'),
            _ => true,
        };
        assert!(whole, "{} is partial under its final name", path.display());
    }
}

/// A command line for an output path.
type Args = Box<dyn Fn(&Path) -> Vec<String>>;

/// One writer under test: the command line for an output path, and what of the output must equal
/// the uninterrupted run's.
struct Writer {
    name: &'static str,
    args: Args,
    results: fn(&Path) -> serde_json::Value,
}

fn run(w: &Writer, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sfn")).args((w.args)(out)).output().unwrap()
}

fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn eval_results(out: &Path) -> serde_json::Value {
    let mut v = jsonl_file(&out.join("samples.jsonl"));
    strip(&mut v);
    v
}

fn delta_results(out: &Path) -> serde_json::Value {
    let mut v = json_file(&out.join("delta.json"));
    strip(&mut v);
    v
}

/// The four writers, on models and data made in `dir`.
fn writers(dir: &Path) -> Vec<Writer> {
    let tiny = tiny_model(dir).display().to_string();
    let tiny_b = dir.join("tiny-b").display().to_string();
    ok(&sfn(&["destroy", &tiny, "--select", "o_proj", "--method", "reinit", "--seed", "5", "-o", &tiny_b]));
    // 100 MB of f32, so that writing its bf16 copy takes long enough to be killed in the middle.
    let wide = random_model(&dir.join("wide"), 512).display().to_string();
    let data = worked(dir, 24, 9);
    vec![
        Writer {
            name: "checkpoint",
            args: Box::new(move |o| {
                owned(&["convert", &wide, "--dtype", "bf16", "--force", "-o", o.to_str().unwrap()])
            }),
            results: checkpoint,
        },
        Writer {
            name: "results",
            args: {
                let (tiny, data) = (tiny.clone(), data.clone());
                Box::new(move |o| {
                    let o = o.to_str().unwrap();
                    owned(&["eval", &tiny, "--task", &data, "--max-new", "24", "--batch-size", "4", "-o", o])
                })
            },
            results: eval_results,
        },
        Writer {
            name: "train-saves",
            args: {
                let (tiny, data) = (tiny.clone(), data.clone());
                Box::new(move |o| {
                    let o = o.to_str().unwrap();
                    owned(&[
                        "freeze",
                        &tiny,
                        "--data",
                        &data,
                        "--train",
                        "o_proj,norms",
                        "--max-steps",
                        "12",
                        "--save-every",
                        "2",
                        "--micro-batch-size",
                        "4",
                        "--mode",
                        "chat",
                        "--threads",
                        "2",
                        "-o",
                        o,
                    ])
                })
            },
            results: tensor_hashes,
        },
        Writer {
            name: "report",
            args: Box::new(move |o| owned(&["delta", &tiny, &tiny_b, "--bins", "50", "-o", o.to_str().unwrap()])),
            results: delta_results,
        },
    ]
}

/// Total bytes and largest file under `dir`.
fn sizes(dir: &Path) -> (u64, u64) {
    let mut total = (0, 0);
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let (t, m) = if p.is_dir() {
            sizes(&p)
        } else {
            let n = p.metadata().unwrap().len();
            (n, n)
        };
        total = (total.0 + t, total.1.max(m));
    }
    total
}

#[test]
fn killed_writers_leave_nothing_partial_and_a_rerun_completes() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SplitMix64::new(0x5eed);
    for w in writers(dir.path()) {
        let reference = dir.path().join(format!("{}-whole", w.name));
        let t0 = Instant::now();
        ok(&run(&w, &reference));
        let took = t0.elapsed();
        assert_complete(&reference);

        let out = dir.path().join(format!("{}-killed", w.name));
        let (mut killed, rounds) = (0, 8);
        for _ in 0..rounds {
            let mut child = Command::new(env!("CARGO_BIN_EXE_sfn"))
                .args((w.args)(&out))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(took.mul_f64(rng.next_f64()));
            killed += child.try_wait().unwrap().is_none() as usize;
            child.kill().unwrap();
            child.wait().unwrap();
            assert_complete(&out);
        }
        ok(&run(&w, &out));
        assert_complete(&out);
        assert_eq!((w.results)(&out), (w.results)(&reference), "{}: the rerun after kills differs", w.name);
        println!("{}: {killed} of {rounds} runs killed within {took:.2?}, then the rerun completed", w.name);
        // Resumed runs are shorter than the first, so not every delay lands inside one.
        assert!(killed >= 2, "{}: too few runs were killed while running", w.name);
    }
}

/// A mounted tmpfs, unmounted on drop.
struct SmallFs(PathBuf);

impl SmallFs {
    /// None where mounting is not allowed (or SFN_TEST_NO_MOUNT is set, to test the fallback).
    fn mount(dir: &Path, bytes: u64) -> Option<SmallFs> {
        std::fs::create_dir_all(dir).unwrap();
        if std::env::var_os("SFN_TEST_NO_MOUNT").is_some() {
            return None;
        }
        let out =
            Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"]).arg(dir).output();
        out.ok()?.status.success().then(|| SmallFs(dir.to_path_buf()))
    }

    /// Give the disk room again, keeping what is on it.
    fn grow(&self, bytes: u64) {
        let opts = format!("remount,size={bytes}");
        assert!(Command::new("mount").args(["-o", &opts]).arg(&self.0).status().unwrap().success());
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_a_clear_error_with_nothing_partial() {
    let dir = tempfile::tempdir().unwrap();
    for w in writers(dir.path()) {
        let reference = dir.path().join(format!("{}-whole", w.name));
        ok(&run(&w, &reference));
        let (total, largest) = sizes(&reference);
        // Room for about half of what the command writes (whole pages: tmpfs counts them).
        let room = (total / 2).max(4096) / 4096 * 4096;
        let mount = SmallFs::mount(&dir.path().join(format!("{}-fs", w.name)), room + 4096);
        let (out, full, expected) = match &mount {
            Some(fs) => {
                let filler = fs.0.join("filler");
                std::fs::write(&filler, vec![0u8; 4096]).unwrap();
                (
                    fs.0.join("out"),
                    Command::new(env!("CARGO_BIN_EXE_sfn")).args((w.args)(&fs.0.join("out"))).output(),
                    "No space left on device",
                )
            }
            None => {
                // No mount allowed here: limit the size of any file the process writes instead.
                let limit = largest / 2;
                let out = dir.path().join(format!("{}-limited", w.name));
                let mut cmd = Command::new(env!("CARGO_BIN_EXE_sfn"));
                cmd.args((w.args)(&out));
                // SAFETY: setrlimit and signal are async-signal-safe, as pre_exec requires.
                unsafe {
                    cmd.pre_exec(move || {
                        let lim = libc::rlimit { rlim_cur: limit, rlim_max: limit };
                        libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
                        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                        Ok(())
                    });
                }
                (out, cmd.output(), "File too large")
            }
        };
        let full = full.unwrap();
        let err = String::from_utf8_lossy(&full.stderr);
        println!("{} ({}): {}", w.name, if mount.is_some() { "tmpfs" } else { "RLIMIT_FSIZE" }, err.trim());
        assert_eq!(full.status.code(), Some(1), "{}: {:?}\n{err}", w.name, full.status);
        assert!(err.contains(expected) && err.contains(out.to_str().unwrap()), "{}: {err}", w.name);
        assert!(!err.contains("panicked"), "{}: {err}", w.name);
        assert_complete(&out);
        if let Some(fs) = &mount {
            // With room again, the same command on the same output completes.
            fs.grow(4 * total + (1 << 20));
            ok(&run(&w, &out));
            assert_complete(&out);
            assert_eq!((w.results)(&out), (w.results)(&reference), "{}: the rerun differs", w.name);
        }
    }
}

#[test]
fn an_input_truncated_during_delta_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let a = random_model(&dir.path().join("a"), 512);
    let out = dir.path().join("delta");
    let run_delta = |b: &Path| {
        Command::new(env!("CARGO_BIN_EXE_sfn"))
            .args(["delta", a.to_str().unwrap(), b.to_str().unwrap(), "--no-figures", "--threads", "1", "-o"])
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let b = dir.path().join("b");
    Command::new("cp").arg("-r").arg(&a).arg(&b).status().unwrap();
    let t0 = Instant::now();
    assert!(run_delta(&b).wait_with_output().unwrap().status.success());
    let took = t0.elapsed();

    let weights = b.join("model.safetensors");
    let mut handled = 0;
    for round in 1..=6 {
        std::fs::copy(a.join("model.safetensors"), &weights).unwrap();
        let child = run_delta(&b);
        std::thread::sleep(took.mul_f64(round as f64 / 8.0));
        std::fs::OpenOptions::new().write(true).open(&weights).unwrap().set_len(1 << 20).unwrap();
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.signal().is_none(), "killed by signal {:?}: {err}", o.status.signal());
        if !o.status.success() {
            assert_eq!(o.status.code(), Some(1), "{err}");
            assert!(err.contains(weights.to_str().unwrap()), "the error does not name the file: {err}");
            handled += err.contains("changed while sfn was reading it") as usize;
        }
        println!("truncated after {round}/8 of the run: {}", err.trim());
    }
    assert!(handled > 0, "no truncation landed while the map was read");
}
