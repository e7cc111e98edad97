//! `sfn serve`: the OpenAI API over the runtime.
//!
//! - Greedy results through `sfn serve` (clients: `sfn eval --server`, 8 requests in flight,
//!   batched together by the server) equal `sfn eval` on the same model, in generate and chat mode,
//!   on the real SmolLM2; an edited view served in memory (`--merge B --take o_proj`) equals the
//!   written merge evaluated locally.
//! - Malformed JSON, an unknown model, a bad parameter and an oversized body get a 4xx in OpenAI's
//!   error shape, and the server keeps serving.
//! - OpenAI's official Python client (in .venv-peers, installed by scripts/peers; skipped with a
//!   printed reason where it is not installed): completions, chat, streaming, and its error type.

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// `sfn serve ARGS --port 0`, with its URL and model name read from its first line; killed on drop.
struct Served {
    _child: Running,
    url: String,
    name: String,
}

fn serve(args: &[&str]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sfn"))
        .arg("serve")
        .args(args)
        .args(["--port", "0", "--threads", "2"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap()).read_line(&mut line).unwrap();
    let name = line.split('`').nth(1).unwrap_or_else(|| panic!("{line}")).to_string();
    let url = line.split(" on ").nth(1).and_then(|s| s.split("/v1").next()).unwrap().to_string();
    Served { _child: Running(child), url, name }
}

/// (id, output) of every sample of a results directory.
fn outputs(dir: &Path) -> Vec<(String, String)> {
    let v = jsonl_file(&dir.join("samples.jsonl"));
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap().into(), s["output"].as_str().unwrap().into()))
        .collect()
}

#[test]
fn greedy_results_through_serve_equal_local_eval() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = worked(dir.path(), 8, 2);
    let t = tasks.as_str();
    let model = smollm2();
    let server = serve(&[&model]);
    for mode in ["generate", "chat"] {
        let local = dir.path().join(format!("local-{mode}"));
        let remote = dir.path().join(format!("served-{mode}"));
        let common = ["--task", t, "--mode", mode, "--max-new", "40"];
        ok(&sfn(&[
            &["eval", &model, "--batch-size", "8", "--threads", "2", "-o", local.to_str().unwrap()][..],
            &common,
        ]
        .concat()));
        let via = [
            "eval",
            "--server",
            &server.url,
            "--model",
            &server.name,
            "--concurrency",
            "8",
            "-o",
            remote.to_str().unwrap(),
        ];
        ok(&sfn(&[&via[..], &common].concat()));
        assert_eq!(outputs(&remote), outputs(&local), "{mode}: served and local greedy outputs differ");
        let (a, b) = (json_file(&local.join("summary.json")), json_file(&remote.join("summary.json")));
        assert_eq!(a["accuracy"], b["accuracy"]);
    }
}

#[test]
fn an_edited_view_served_in_memory_equals_the_written_edit() {
    let dir = tempfile::tempdir().unwrap();
    let a = tiny_model(dir.path()).display().to_string();
    let b = dir.path().join("b").display().to_string();
    ok(&sfn(&["destroy", &a, "--select", "o_proj,mlp", "--method", "reinit", "--std", "0.2", "--seed", "3", "-o", &b]));
    let merged = dir.path().join("merged").display().to_string();
    ok(&sfn(&["merge", &a, &b, "--take", "o_proj", "-o", &merged]));
    let tasks = worked(dir.path(), 6, 1);
    let local = dir.path().join("local");
    ok(&sfn(&["eval", &merged, "--task", &tasks, "--max-new", "16", "-o", local.to_str().unwrap()]));
    let server = serve(&[&a, "--merge", &b, "--take", "o_proj", "--name", "a-with-b-o_proj"]);
    let remote = dir.path().join("served");
    ok(&sfn(&[
        "eval",
        "--server",
        &server.url,
        "--model",
        "a-with-b-o_proj",
        "--task",
        &tasks,
        "--max-new",
        "16",
        "-o",
        remote.to_str().unwrap(),
    ]));
    assert_eq!(outputs(&remote), outputs(&local));
    // And it is not A: A's outputs differ.
    let plain = dir.path().join("a");
    ok(&sfn(&["eval", &a, "--task", &tasks, "--max-new", "16", "-o", plain.to_str().unwrap()]));
    assert_ne!(outputs(&plain), outputs(&local), "the merge changed nothing: a test that cannot fail");
}

/// A raw HTTP/1.1 request on loopback: (status, body).
fn http(url: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    let status = reply.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, reply.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

#[test]
fn bad_requests_get_openai_errors_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let a = tiny_model(dir.path()).display().to_string();
    let server = serve(&[&a, "--name", "tiny", "--max-body", "4096"]);
    let good = br#"{"model":"tiny","prompt":"Hello","max_tokens":3,"temperature":0}"#;
    let big = format!(r#"{{"model":"tiny","prompt":"{}"}}"#, "x".repeat(8000));
    let cases: Vec<(&str, &[u8], u16, &str)> = vec![
        ("/v1/completions", b"{not json", 400, "not JSON"),
        ("/v1/completions", br#"{"model":"other","prompt":"a"}"#, 404, "is not served here"),
        ("/v1/completions", br#"{"model":"tiny","prompt":"a","max_tokens":100000}"#, 400, "max_tokens"),
        ("/v1/completions", br#"{"model":"tiny","prompt":[999999]}"#, 400, "token ids must be integers below"),
        ("/v1/chat/completions", br#"{"model":"tiny","messages":[]}"#, 400, "messages"),
        ("/v1/nowhere", b"{}", 404, "no such endpoint"),
        ("/v1/completions", big.as_bytes(), 413, ""),
    ];
    for (path, body, status, says) in cases {
        let (got, text) = http(&server.url, "POST", path, body);
        assert_eq!(got, status, "{path} {}: {text}", String::from_utf8_lossy(&body[..body.len().min(60)]));
        if status != 413 {
            let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{text}"));
            assert!(v["error"]["message"].as_str().unwrap().contains(says), "{text}");
            assert!(v["error"]["type"].is_string(), "{text}");
        }
        let (ok_status, ok_text) = http(&server.url, "POST", "/v1/completions", good);
        assert_eq!(ok_status, 200, "the server stopped serving after {path}: {ok_text}");
    }
}

#[test]
fn openai_python_client_talks_to_serve() {
    let py = root().join(".venv-peers/bin/python");
    let has_client = Command::new(&py).args(["-c", "import openai"]).output().is_ok_and(|o| o.status.success());
    if !has_client {
        skipped("the openai package is not installed in .venv-peers (run scripts/peers)");
        return;
    }
    let server = serve(&[&smollm2(), "--name", "tiny"]);
    let script = r#"
import sys, openai
c = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="none")
assert [m.id for m in c.models.list()] == ["tiny"]
r = c.completions.create(model="tiny", prompt=["Hello", "What is 2+3?"], max_tokens=5, temperature=0)
assert len(r.choices) == 2 and r.usage.completion_tokens > 0, r
e = c.completions.create(model="tiny", prompt="Hello", max_tokens=5, temperature=0, echo=True)
assert e.choices[0].text.startswith("Hello") and e.choices[0].text[5:] == r.choices[0].text, (e, r)
chat = c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hi"}], max_tokens=6, temperature=0)
pieces = [ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
    model="tiny", messages=[{"role": "user", "content": "Hi"}], max_tokens=6, temperature=0, stream=True)]
assert len(pieces) > 2 and "".join(pieces) == chat.choices[0].message.content, (pieces, chat)
try:
    c.completions.create(model="nope", prompt="x", max_tokens=2)
    raise SystemExit("an unknown model was served")
except openai.NotFoundError as err:
    assert "is not served here" in str(err)
print("ok", r.choices[0].text, "|", chat.choices[0].message.content)
"#;
    let out = Command::new(&py).args(["-c", script, &server.url]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    println!("{}", String::from_utf8_lossy(&out.stdout));
}
