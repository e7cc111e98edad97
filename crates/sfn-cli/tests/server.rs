//! `sfn eval --server`: generation through an OpenAI-compatible server.
//!
//! - Against llama.cpp's server (llama-cpp-python[server] in .venv-llamacpp, installed by
//!   scripts/peers; skipped with a printed reason where it is not installed) on the SmolLM2 GGUF:
//!   generate and chat mode, greedy, every task graded and judged; a server killed mid-run loses
//!   no finished task and the rerun resumes; its echoed prompt logprobs, which are not the model's,
//!   are refused by the plausibility check before they reach the judge.
//! - Against a scripted server on loopback (the retry policy is the client's, so a server that
//!   answers as told is the test): 429 and 503 are retried (Retry-After honoured), 400 is not and
//!   its message is shown; the API key goes in the Authorization header and into no results file;
//!   a server without prompt logprobs cannot score, and the message says to use --reference; with
//!   them, the loss averages exactly the output's tokens.

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A reply: from the request's JSON body, a status and a body.
type Reply = Box<dyn Fn(&Value) -> (u16, String) + Send>;

fn fixed(status: u16, body: &'static str) -> Reply {
    Box::new(move |_| (status, body.to_string()))
}

/// A loopback server that answers each POST with the next scripted reply, recording the requests'
/// heads and bodies.
struct Scripted {
    url: String,
    seen: Arc<Mutex<Vec<(String, String)>>>,
}

fn scripted(replies: Vec<Reply>) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        let mut replies = replies.into_iter();
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut len = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                head.push_str(&line);
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let body = String::from_utf8(body).unwrap();
            let (status, text) = match replies.next() {
                Some(reply) => reply(&serde_json::from_str(&body).unwrap()),
                None => (500, "{}".to_string()),
            };
            log.lock().unwrap().push((head, body));
            let extra = if status == 429 { "Retry-After: 0.2\r\n" } else { "" };
            let reply = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    Scripted { url, seen }
}

const COMPLETION: &str =
    r#"{"choices":[{"text":" 3 + 4 = 7. \\boxed{7}","finish_reason":"stop"}],"usage":{"completion_tokens":9}}"#;

/// `sfn eval --server URL --model m --task TASK -o OUT EXTRA...` (a model called `m`).
fn eval_via(url: &str, task: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    eval_model_via(url, "m", task, out, extra)
}

fn eval_model_via(url: &str, model: &str, task: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    let base = ["eval", "--server", url, "--model", model, "--task", task, "-o", out.to_str().unwrap()];
    sfn(&[&base[..], extra].concat())
}

/// The stderr of a run that must fail with status 1.
fn failed(run: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&run.stderr).into_owned();
    assert_eq!(run.status.code(), Some(1), "{err}");
    err
}

fn one_task(dir: &Path) -> String {
    let p = dir.join("task.jsonl");
    std::fs::write(&p, "{\"id\": \"t1\", \"prompt\": \"What is 3 + 4?\", \"answer\": \"7\"}\n").unwrap();
    p.display().to_string()
}

#[test]
fn busy_and_failing_servers_are_retried_and_a_bad_request_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let task = one_task(dir.path());
    let server = scripted(vec![fixed(429, "{}"), fixed(503, "busy"), fixed(200, COMPLETION)]);
    let out = dir.path().join("ok");
    let t0 = Instant::now();
    let run = Command::new(env!("CARGO_BIN_EXE_sfn"))
        .args(["eval", "--server", &server.url, "--model", "m", "--task", &task, "--max-new", "16", "-o"])
        .arg(&out)
        .env("OPENAI_API_KEY", "sk-secret-123")
        .output()
        .unwrap();
    ok(&run);
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "two retries, then the answer");
    assert!(t0.elapsed() >= Duration::from_millis(700), "backoff: Retry-After 0.2 s, then 0.5 s");
    for (head, body) in &seen {
        assert!(head.starts_with("POST /v1/completions "), "{head}");
        assert!(head.contains("Bearer sk-secret-123"), "the key is sent: {head}");
        let b: Value = serde_json::from_str(body).unwrap();
        assert_eq!((b["model"].as_str(), b["max_tokens"].as_u64()), (Some("m"), Some(16)));
        assert_eq!(b["temperature"].as_f64(), Some(0.0));
    }
    let samples = jsonl_file(&out.join("samples.jsonl"));
    assert_eq!(samples[0]["correct"], Value::Bool(true), "{samples}");
    assert_eq!(samples[0]["tokens"].as_u64(), Some(9));
    for f in std::fs::read_dir(&out).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap_or_default();
        assert!(!text.contains("sk-secret-123"), "the API key is written to a results file");
    }

    let server =
        scripted(vec![fixed(400, r#"{"error":{"message":"max_tokens is too large","type":"invalid_request_error"}}"#)]);
    let err = failed(&eval_via(&server.url, &task, &dir.path().join("bad"), &[]));
    assert!(err.contains("HTTP 400") && err.contains("max_tokens is too large"), "{err}");
    assert_eq!(server.seen.lock().unwrap().len(), 1, "a 4xx is not retried");

    // A server that returns no prompt logprobs cannot score: the message says what to do instead.
    let server = scripted(vec![fixed(200, COMPLETION), fixed(200, COMPLETION)]);
    let err = failed(&eval_via(&server.url, &task, &dir.path().join("noref"), &["--server-reference"]));
    assert!(err.contains("returns no prompt logprobs") && err.contains("--reference MODEL"), "{err}");

    // A server with prompt logprobs: the output's tokens (from the prompt's end to the end of the
    // echoed text) are averaged; the prompt's tokens and the one generated token are not.
    let echo = |prompt_lp: f64, output_lp: f64| -> Reply {
        Box::new(move |req: &Value| {
            let full = req["prompt"].as_str().unwrap();
            let cut = full.find(" 3 + 4 = 7").unwrap_or(full.len() - 1).max(1);
            let (tokens, lps, offs) = (
                vec!["a", "b", "c", "d", "e"],
                vec![Value::Null, prompt_lp.into(), output_lp.into(), output_lp.into(), (-20.0).into()],
                vec![0, cut - 1, cut, full.len() - 1, full.len()],
            );
            let v = serde_json::json!({"choices": [{"text": full, "finish_reason": "length",
                "logprobs": {"tokens": tokens, "token_logprobs": lps, "text_offset": offs}}],
                "usage": {"completion_tokens": 1}});
            (200, v.to_string())
        })
    };
    let server = scripted(vec![fixed(200, COMPLETION), echo(-1.0, -1.0), echo(-5.0, -2.0)]);
    let out = dir.path().join("scored");
    ok(&eval_via(&server.url, &task, &out, &["--server-reference"]));
    let samples = jsonl_file(&out.join("samples.jsonl"));
    assert_eq!(samples[0]["signals"]["ref_loss"].as_f64(), Some(2.0), "{samples}");

    // Logprobs no model gives (10 nats per token on plain English) are refused, not used.
    let server = scripted(vec![fixed(200, COMPLETION), echo(-10.0, -10.0)]);
    let err = failed(&eval_via(&server.url, &task, &dir.path().join("implausible"), &["--server-reference"]));
    assert!(err.contains("cannot be the model's (10.0 nats per token"), "{err}");
}

/// llama.cpp's server on the SmolLM2 GGUF, on a free loopback port; killed on drop.
struct LlamaServer {
    _child: Running,
    url: String,
}

fn llama_python() -> Option<PathBuf> {
    let py = root().join(".venv-llamacpp/bin/python");
    let ok = Command::new(&py).args(["-c", "import llama_cpp.server.app"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        skipped("llama-cpp-python[server] is not installed in .venv-llamacpp (run scripts/peers --llama)");
    }
    ok.then_some(py)
}

fn start_llama(py: &Path, port: u16) -> LlamaServer {
    let child = Command::new(py)
        .args(["-m", "llama_cpp.server", "--model", &smollm2(), "--model_alias", "smol", "--n_threads", "2"])
        .args(["--n_ctx", "2048", "--host", "127.0.0.1", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(120), "llama.cpp's server did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    LlamaServer { _child: Running(child), url }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn eval_through_llama_cpp_server_grades_every_task_and_resumes_after_it_dies() {
    let Some(py) = llama_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = start_llama(&py, port);
    let tasks = worked(dir.path(), 12, 4);
    let t = tasks.as_str();

    for mode in ["generate", "chat"] {
        let out = dir.path().join(mode);
        ok(&eval_model_via(&server.url, "smol", t, &out, &["--mode", mode, "--max-new", "48", "--concurrency", "4"]));
        let samples = jsonl_file(&out.join("samples.jsonl"));
        let samples = samples.as_array().unwrap();
        assert_eq!(samples.len(), 12);
        for s in samples {
            assert!(s["tokens"].as_u64().unwrap() > 0 && !s["output"].as_str().unwrap().is_empty(), "{s}");
            assert!(s["level"].is_string(), "judged: {s}");
        }
        let summary = json_file(&out.join("summary.json"));
        println!("{mode}: accuracy {} through llama.cpp's server", summary["accuracy"]);
    }

    // The server dies after the first tasks: those stay; the rerun against a new server resumes.
    let out = dir.path().join("resumed");
    let o = out.to_str().unwrap().to_string();
    let args = |url: &str| -> Vec<String> {
        [
            "eval",
            "--server",
            url,
            "--model",
            "smol",
            "--task",
            t,
            "--max-new",
            "48",
            "--concurrency",
            "1",
            "--retries",
            "1",
            "-o",
            &o,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let mut child =
        Command::new(env!("CARGO_BIN_EXE_sfn")).args(args(&server.url)).stderr(Stdio::piped()).spawn().unwrap();
    let t0 = Instant::now();
    while std::fs::read_to_string(out.join("samples.jsonl")).map_or(0, |s| s.lines().count()) < 3 {
        assert!(t0.elapsed() < Duration::from_secs(300));
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(server);
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("after 1 retries"), "{err}");
    let kept = std::fs::read_to_string(out.join("samples.jsonl")).unwrap().lines().count();
    assert!((3..12).contains(&kept), "{kept} tasks kept");

    // The same server back (same address: the run's settings name it).
    let server = start_llama(&py, port);
    let rerun = Command::new(env!("CARGO_BIN_EXE_sfn")).args(args(&server.url)).output().unwrap();
    let text = ok(&rerun) + &String::from_utf8_lossy(&rerun.stderr);
    assert!(text.contains(&format!("resumed: {kept} task(s) already done")), "{text}");
    assert_eq!(jsonl_file(&out.join("samples.jsonl")).as_array().unwrap().len(), 12);

    // llama-cpp-python's server echoes prompt logprobs that are not the model's (-10.5 for " of"
    // after "The capital"): the check before the first score refuses them with the way out.
    let extra = ["--max-new", "8", "--server-reference"];
    let err = failed(&eval_model_via(&server.url, "smol", t, &dir.path().join("ref"), &extra));
    assert!(err.contains("cannot be the model's") && err.contains("--reference MODEL"), "{err}");
}
