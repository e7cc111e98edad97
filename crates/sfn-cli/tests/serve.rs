//! `sfn serve`: the OpenAI API over the runtime.
//!
//! - Greedy results through `sfn serve` (clients: `sfn eval --server`, 8 requests in flight,
//!   batched together by the server) equal `sfn eval` on the same model, in generate and chat mode,
//!   on the real SmolLM2, and the judge's reference losses through the server's echo logprobs
//!   (`--server-reference`) equal those of the same model given locally as `--reference`; an edited view served in memory (`--merge B --take o_proj`) equals the
//!   written merge evaluated locally.
//! - Malformed JSON, an unknown model, a bad parameter and an oversized body get a 4xx in OpenAI's
//!   error shape, and the server keeps serving.
//! - Logprobs: echoed prompt logprobs and their top alternatives equal transformers' on the same
//!   weights (tools/reference/serve_scores.py); generated tokens' logprobs are the greedy choice's;
//!   /tokenize and /detokenize agree with transformers' tokenizer.
//! - Peers (in .venv-peers, installed by scripts/peers; skipped with a printed reason where they are
//!   not installed): OpenAI's official Python client (completions, chat, streaming, logprobs, its
//!   error type), and lm-evaluation-harness's `local-completions` (a multiple-choice task scored by
//!   loglikelihood and a generation task, on a JSONL task set defined in a task YAML) and
//!   `local-chat-completions` (the generation task through the chat template): its loglikelihoods
//!   equal transformers', its generations equal transformers' greedy ones and `sfn generate --chat`.

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// `sfn serve ARGS --port 0`, with its URL and model name read from its first line; killed on drop.
struct Served {
    child: Running,
    url: String,
    name: String,
    /// The rest of its stderr (kept open: a closed pipe would fail its later messages).
    stderr: BufReader<std::process::ChildStderr>,
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
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    stderr.read_line(&mut line).unwrap();
    let name = line.split('`').nth(1).unwrap_or_else(|| panic!("{line}")).to_string();
    let url = line.split(" on ").nth(1).and_then(|s| s.split("/v1").next()).unwrap().to_string();
    Served { child: Running(child), url, name, stderr }
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
        // In generate mode the judge's reference loss comes through the server's echo logprobs
        // (as from vLLM), locally from the same model given as --reference.
        let (local_ref, served_ref): (&[&str], &[&str]) =
            if mode == "generate" { (&["--reference", &model], &["--server-reference"]) } else { (&[], &[]) };
        ok(&sfn(&[
            &["eval", &model, "--batch-size", "8", "--threads", "2", "-o", local.to_str().unwrap()][..],
            &common,
            local_ref,
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
        ok(&sfn(&[&via[..], &common, served_ref].concat()));
        assert_eq!(outputs(&remote), outputs(&local), "{mode}: served and local greedy outputs differ");
        if mode == "generate" {
            let losses = |dir: &Path| -> Vec<f64> {
                let v = jsonl_file(&dir.join("samples.jsonl"));
                v.as_array().unwrap().iter().filter_map(|s| s["signals"]["ref_loss"].as_f64()).collect()
            };
            let (a, b) = (losses(&local), losses(&remote));
            assert!(a.len() >= 4 && a.len() == b.len(), "reference losses: local {a:?}, through the server {b:?}");
            // Prompt and output are tokenized apart locally and together by the server: the
            // boundary may split differently, so the means agree closely rather than exactly.
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() < 0.05 * x.max(1.0), "reference loss {x} locally, {y} through the server");
            }
        }
        let (a, b) = (json_file(&local.join("summary.json")), json_file(&remote.join("summary.json")));
        assert_eq!(a["accuracy"], b["accuracy"]);
    }
}

/// A tiny model A and B = A with o_proj and the MLP re-initialised (seeded): a pair whose merges
/// differ from both.
fn tiny_pair(dir: &Path, seed: u64) -> (String, String) {
    let a = tiny_model(dir).display().to_string();
    let b = dir.join("b").display().to_string();
    let seed = seed.to_string();
    ok(&sfn(&[
        "destroy",
        &a,
        "--select",
        "o_proj,mlp",
        "--method",
        "reinit",
        "--std",
        "0.2",
        "--seed",
        &seed,
        "-o",
        &b,
    ]));
    (a, b)
}

#[test]
fn an_edited_view_served_in_memory_equals_the_written_edit() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = tiny_pair(dir.path(), 3);
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

/// What transformers says about SmolLM2 (tools/reference/serve_scores.py).
fn scores() -> Value {
    json_file(&root().join("crates/sfn-cli/tests/fixtures/smollm2.scores.json"))
}

fn post(server: &Served, path: &str, body: Value) -> Value {
    let (status, text) = http(&server.url, "POST", path, body.to_string().as_bytes());
    assert_eq!(status, 200, "{path}: {text}");
    serde_json::from_str(&text).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[test]
fn served_logprobs_equal_transformers_and_the_tokenizer_endpoints_its_tokenizer() {
    let server = serve(&[&smollm2(), "--name", "s"]);
    let (status, info) = http(&server.url, "GET", "/tokenizer_info", b"");
    assert_eq!(status, 200);
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["eos_token"], "<|im_end|>");
    assert!(info["chat_template"].as_str().unwrap().contains("<|im_start|>"));
    for e in scores()["echo"].as_array().unwrap() {
        let (text, ids) = (e["text"].as_str().unwrap(), &e["ids"]);
        let t = post(&server, "/tokenize", serde_json::json!({"prompt": text, "add_special_tokens": false}));
        assert_eq!(&t["tokens"], ids, "{text:?}");
        let d = post(&server, "/detokenize", serde_json::json!({"tokens": ids}));
        assert_eq!(d["prompt"], text);

        let body = serde_json::json!({"model": "s", "prompt": ids, "echo": true, "logprobs": 5, "max_tokens": 1,
                                      "temperature": 0});
        let r = post(&server, "/v1/completions", body);
        let lp = &r["choices"][0]["logprobs"];
        let n = ids.as_array().unwrap().len();
        // Prompt tokens and the one generated token.
        assert_eq!(lp["token_logprobs"].as_array().unwrap().len(), n + 1, "{lp}");
        assert!(lp["token_logprobs"][0].is_null() && lp["top_logprobs"][0].is_null());
        let got = floats(&Value::from(lp["token_logprobs"].as_array().unwrap()[1..n].to_vec()));
        let want = floats(&e["token_logprobs"]);
        let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(worst < 2e-3, "{text:?}: prompt logprobs differ from transformers' by {worst}\n{got:?}\n{want:?}");
        for t in 1..n {
            let mut top: Vec<f64> =
                lp["top_logprobs"][t].as_object().unwrap().values().map(|x| x.as_f64().unwrap()).collect();
            top.sort_by(|a, b| b.total_cmp(a));
            let want = floats(&e["top_logprobs"][t - 1]);
            for (a, b) in top.iter().zip(&want) {
                assert!((a - b).abs() < 2e-3, "{text:?} position {t}: top {top:?} vs transformers' {want:?}");
            }
        }
        // The pieces are the text, and the offsets count characters.
        let tokens: Vec<&str> = lp["tokens"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
        assert_eq!(tokens[..n].concat(), text);
        let offsets: Vec<usize> =
            lp["text_offset"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
        assert_eq!(offsets[n - 1], tokens[..n - 1].concat().chars().count());
        assert!(r["choices"][0]["text"].as_str().unwrap().starts_with(text));
    }
    // Generated tokens: a greedy choice is the most likely token at its position.
    let body = serde_json::json!({"model": "s", "prompt": "The capital of France is", "logprobs": 2, "max_tokens": 6,
                                  "temperature": 0});
    let r = post(&server, "/v1/completions", body);
    let lp = &r["choices"][0]["logprobs"];
    let chosen = floats(&lp["token_logprobs"]);
    assert_eq!(chosen.len(), 6, "{lp}");
    for (t, c) in chosen.iter().enumerate() {
        let best =
            lp["top_logprobs"][t].as_object().unwrap().values().map(|x| x.as_f64().unwrap()).fold(f64::MIN, f64::max);
        assert_eq!(*c, best, "generated token {t} is not the most likely: {lp}");
    }
    let tokens: Vec<&str> = lp["tokens"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
    assert_eq!(tokens.concat(), r["choices"][0]["text"].as_str().unwrap());
}

/// The question set of the fixture as an lm-evaluation-harness task directory: data.jsonl, a
/// multiple-choice task (`sfn_mc`, scored by loglikelihood of " " + choice) and a generation task
/// (`sfn_gen`, greedy until a newline).
fn lm_eval_tasks(dir: &Path) -> std::path::PathBuf {
    let tasks = dir.join("tasks");
    std::fs::create_dir_all(&tasks).unwrap();
    let data = tasks.join("data.jsonl");
    let lines: Vec<String> = scores()["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            serde_json::json!({"question": q["question"], "choices": q["choices"], "answer": q["answer"]}).to_string()
        })
        .collect();
    std::fs::write(&data, lines.join("\n") + "\n").unwrap();
    let head = |task: &str| {
        format!(
            "task: {task}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {}\ntest_split: test\n\
             doc_to_text: \"Q: {{{{question}}}}\\nA:\"\n",
            data.display()
        )
    };
    let mc = head("sfn_mc")
        + "output_type: multiple_choice\ndoc_to_choice: \"{{choices}}\"\ndoc_to_target: answer\n\
           metric_list:\n  - metric: acc\n";
    let gen = head("sfn_gen")
        + "output_type: generate_until\ndoc_to_target: \"{{choices[answer]}}\"\n\
           generation_kwargs:\n  until: [\"\\n\"]\n  max_gen_toks: 12\n  do_sample: false\n  temperature: 0\n\
           metric_list:\n  - metric: exact_match\n";
    std::fs::write(tasks.join("sfn_mc.yaml"), mc).unwrap();
    std::fs::write(tasks.join("sfn_gen.yaml"), gen).unwrap();
    tasks
}

/// lm-evaluation-harness's logged samples of `task` under `out`, in document order.
fn lm_eval_samples(out: &Path, task: &str) -> Vec<Value> {
    let mut files = vec![];
    for entry in walk(out) {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with(&format!("samples_{task}_")) && name.ends_with(".jsonl") {
            files.push(entry);
        }
    }
    assert_eq!(files.len(), 1, "samples of {task} under {}: {files:?}", out.display());
    let mut v: Vec<Value> = jsonl_file(&files[0]).as_array().unwrap().clone();
    v.sort_by_key(|s| s["doc_id"].as_u64());
    v
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn lm_evaluation_harness_scores_and_generates_through_serve() {
    let py = root().join(".venv-peers/bin/python");
    if !Command::new(&py).args(["-c", "import lm_eval"]).output().is_ok_and(|o| o.status.success()) {
        skipped("lm-evaluation-harness (lm_eval) is not installed in .venv-peers (run scripts/peers)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tasks = lm_eval_tasks(dir.path());
    let server = serve(&[&smollm2(), "--name", "smollm2"]);
    let lm_eval = |model: &str, endpoint: &str, tasks_arg: &str, extra: &[&str]| -> std::path::PathBuf {
        let out = dir.path().join(model);
        let args = format!("model=smollm2,base_url={}{endpoint},num_concurrent=1,max_retries=1", server.url);
        let run = Command::new(&py)
            .args(["-m", "lm_eval", "--model", model, "--model_args", &args, "--tasks", tasks_arg])
            .args(["--include_path", tasks.to_str().unwrap(), "--output_path", out.to_str().unwrap(), "--log_samples"])
            .args(extra)
            .env("HF_HOME", dir.path().join("hf"))
            .env("HF_DATASETS_OFFLINE", "1")
            .env("HF_HUB_OFFLINE", "1")
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "lm_eval {model} failed:\n{}\n{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        out
    };
    let questions = scores()["questions"].as_array().unwrap().clone();

    // local-completions: loglikelihoods (echo + logprobs, tokenized by the server) and generations.
    let out = lm_eval("local-completions", "/v1/completions", "sfn_mc,sfn_gen", &[]);
    let mc = lm_eval_samples(&out, "sfn_mc");
    assert_eq!(mc.len(), questions.len());
    let mut right = 0;
    for (s, q) in mc.iter().zip(&questions) {
        let want = q["scores"].as_array().unwrap();
        let got = s["resps"].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{s}");
        let mut best = (f64::MIN, 0);
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            // Logged as strings: ["-2.98", "False"].
            let (ll, greedy): (f64, &str) = (g[0][0].as_str().unwrap().parse().unwrap(), g[0][1].as_str().unwrap());
            let expect = w["loglikelihood"].as_f64().unwrap();
            assert!(
                (ll - expect).abs() < 1e-2,
                "{}: {} scored {ll}, transformers {expect}",
                q["question"],
                w["choice"]
            );
            let want_greedy = if w["is_greedy"].as_bool().unwrap() { "True" } else { "False" };
            assert_eq!(greedy, want_greedy, "{}: {}", q["question"], w["choice"]);
            if expect > best.0 {
                best = (expect, i);
            }
        }
        right += usize::from(best.1 as u64 == q["answer"].as_u64().unwrap());
    }
    let results =
        walk(&out).into_iter().find(|p| p.file_name().unwrap().to_string_lossy().starts_with("results")).unwrap();
    let acc = json_file(&results)["results"]["sfn_mc"]["acc,none"].as_f64().unwrap();
    assert_eq!(acc, right as f64 / questions.len() as f64, "lm-eval's accuracy");
    let gen = lm_eval_samples(&out, "sfn_gen");
    for (s, q) in gen.iter().zip(&questions) {
        assert_eq!(s["resps"][0][0], q["greedy"], "{}: lm-eval's generation vs transformers' greedy", q["question"]);
    }

    // local-chat-completions: the same generations through the model's chat template, as
    // `sfn generate --chat` makes them locally.
    let out = lm_eval("local-chat-completions", "/v1/chat/completions", "sfn_gen", &["--apply_chat_template"]);
    let gen = lm_eval_samples(&out, "sfn_gen");
    let mut args =
        vec!["generate".to_string(), smollm2(), "--chat".into(), "--json".into(), "--threads".into(), "2".into()];
    args.extend(["--max-new", "12", "--stop", "\n"].map(String::from));
    for q in &questions {
        args.extend(["-p".to_string(), format!("Q: {}\nA:", q["question"].as_str().unwrap())]);
    }
    let local = ok(&sfn(&args.iter().map(String::as_str).collect::<Vec<_>>()));
    let local: Vec<Value> = local.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(local.len(), gen.len());
    for (s, l) in gen.iter().zip(&local) {
        assert_eq!(s["resps"][0][0], l["text"], "chat generation through lm-eval vs sfn generate --chat");
    }
}

#[test]
fn a_merge_sweep_through_servers_equals_the_local_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = tiny_pair(dir.path(), 5);
    let tasks = worked(dir.path(), 6, 4);
    let sweep = |out: &str, extra: &[&str]| {
        let out = dir.path().join(out).display().to_string();
        let args = ["merge-sweep", &a, &b, "--take", "o_proj", "--task", &tasks, "--max-new", "12", "-o", &out];
        (sfn(&[&args[..], extra].concat()), out)
    };
    let (local, local_dir) = sweep("local", &[]);
    ok(&local);
    // One server per variant, each model named anything but the variant (the sweep asks).
    let servers = [
        ("a", serve(&[&a, "--name", "base"])),
        ("b", serve(&[&b, "--name", "tuned"])),
        ("take-o_proj", serve(&[&a, "--merge", &b, "--take", "o_proj", "--name", "merged"])),
    ];
    let list: Vec<String> = servers.iter().map(|(v, s)| format!("{v}={}", s.url)).collect();
    // Intact A scores the outputs locally in both (a random tiny model fails the plausibility
    // check of --server-reference, which the SmolLM2 test above covers).
    let (remote, remote_dir) = sweep("served", &["--server", &list.join(",")]);
    ok(&remote);
    for v in ["a", "b", "take-o_proj"] {
        let (l, r) = (Path::new(&local_dir).join(v), Path::new(&remote_dir).join(v));
        assert_eq!(outputs(&r), outputs(&l), "variant {v}: served and local outputs differ");
        let judged = |d: &Path| -> Vec<Value> {
            let v = jsonl_file(&d.join("samples.jsonl"));
            v.as_array().unwrap().iter().map(|s| serde_json::json!([s["level"], s["signals"]["ref_loss"]])).collect()
        };
        assert_eq!(judged(&r), judged(&l), "variant {v}: levels and reference losses");
    }
    let table = |d: &str| -> Vec<Value> {
        let t = json_file(&Path::new(d).join("sweep.json"));
        t["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| serde_json::json!([r["variant"], r["accuracy"], r["edited_tensors"]]))
            .collect()
    };
    assert_eq!(table(&remote_dir), table(&local_dir));
    // One URL for all must list every variant by name; a missing one is named.
    let (err, _) = sweep("one-url", &["--server", &servers[0].1.url]);
    let text = String::from_utf8_lossy(&err.stderr);
    assert!(!err.status.success() && text.contains("none named `a`"), "{text}");
}

#[test]
fn ctrl_c_stops_the_server_after_the_request_in_flight() {
    let mut server = serve(&[&smollm2(), "--name", "s"]);
    // A streamed request: its first event proves it is in flight before Ctrl-C.
    let body =
        br#"{"model":"s","prompt":"Count from 1 to 1000: 1, 2, 3, 4,","max_tokens":160,"temperature":0,"stream":true}"#;
    let mut reader = BufReader::new(send(&server.url, "POST", "/v1/completions", body));
    let mut reply = String::new();
    while !reply.contains("data: {") {
        assert!(reader.read_line(&mut reply).unwrap() > 0, "the stream ended before its first event: {reply}");
    }
    let pid = server.child.0.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    reader.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let events: Vec<&str> = reply.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "the request in flight was cut: {reply}");
    let text: String = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).unwrap()["choices"][0]["text"].as_str().unwrap().to_string())
        .collect();
    let finish =
        serde_json::from_str::<Value>(events[events.len() - 2]).unwrap()["choices"][0]["finish_reason"].clone();
    assert_eq!(finish, "length", "not all 160 tokens were generated: {text:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let exit = loop {
        if let Some(st) = server.child.0.try_wait().unwrap() {
            break st;
        }
        assert!(std::time::Instant::now() < deadline, "sfn serve still runs 30 s after Ctrl-C");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut rest = String::new();
    server.stderr.read_to_string(&mut rest).unwrap();
    assert!(exit.success() && rest.contains("stopped"), "{exit}: {rest}");
    let addr = server.url.trim_start_matches("http://");
    assert!(std::net::TcpStream::connect(addr).is_err(), "still listening after Ctrl-C");
}

/// Send a raw HTTP/1.1 request on loopback (the connection closes after the reply).
fn send(url: &str, method: &str, path: &str, body: &[u8]) -> std::net::TcpStream {
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    s
}

/// A raw HTTP/1.1 request on loopback: (status, body).
fn http(url: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut s = send(url, method, path, body);
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
lp = c.completions.create(model="tiny", prompt="Hello", max_tokens=5, temperature=0, logprobs=2).choices[0].logprobs
assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) >= 1, lp
assert all(max(top.values()) == t for top, t in zip(lp.top_logprobs, lp.token_logprobs)), lp
e = c.completions.create(model="tiny", prompt="Hello", max_tokens=5, temperature=0, echo=True)
assert e.choices[0].text.startswith("Hello") and e.choices[0].text[5:] == r.choices[0].text, (e, r)
chat = c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hi"}], max_tokens=6, temperature=0,
                                 logprobs=True, top_logprobs=2)
content = chat.choices[0].logprobs.content
assert "".join(t.token for t in content) == chat.choices[0].message.content, content
assert all(len(t.top_logprobs) == 2 and t.top_logprobs[0].logprob == t.logprob for t in content), content
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
