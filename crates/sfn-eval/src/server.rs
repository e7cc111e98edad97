//! Generation through an OpenAI-compatible server (vLLM, llama.cpp's server, `sfn serve`, ...):
//! `/v1/completions` for prompts in generate mode, `/v1/chat/completions` in chat mode.
//!
//! [`ServerGenerator`] keeps `concurrency` requests in flight (one per sample) and hands each
//! prompt's samples to the evaluation loop as soon as they are all back, which appends them to
//! samples.jsonl at once: an interrupted run, or a server that dies, loses nothing finished, and a
//! rerun resumes. Requests that fail with 429, a 5xx status or a connection error are retried with
//! exponential backoff (Retry-After honoured); any other 4xx is the request's fault and ends the
//! run with the server's message. The API key is read from an environment variable and only ever
//! sent in the Authorization header, never recorded.
//!
//! [`ServerScorer`] is the judge's reference loss through the same server, where it returns prompt
//! logprobs (`echo` + `logprobs`: vLLM and llama-cpp-python's server do); a server that does not
//! gets a clear error that points at `--reference MODEL`, which scores locally.

use crate::decode::DecodeSettings;
use crate::error::GenerateError;
use crate::generate::{Deliver, FinishReason, Generation, Generator, ReferenceScorer, TokenCountKind};
use crate::prompt::{Prompt, PromptBody};
use crate::run::{run_job, EvalJob, EvalOutcome, SampleSource};
use crate::runtime::{judge_notes, ModelRunner, Reference};
use crate::EvalError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sfn_run::Progress;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn default_concurrency() -> usize {
    8
}
fn default_timeout() -> f64 {
    600.0
}
fn default_retries() -> u32 {
    6
}
fn default_key_env() -> String {
    "OPENAI_API_KEY".into()
}

/// Where and how to reach the server (`sfn eval --server URL --model NAME`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[cfg_attr(feature = "cli", command(next_help_heading = "Server (generation through an OpenAI-compatible API)"))]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    /// Generate through this OpenAI-compatible server instead of a local model: its base URL
    /// (`http://host:8000` or `http://host:8000/v1`). In merge-sweep and destroy-sweep: one URL
    /// serving every variant under its directory name, or `NAME=URL,NAME=URL,...` per variant.
    #[cfg_attr(feature = "cli", arg(long = "server", value_name = "URL"))]
    #[serde(default)]
    pub url: Option<String>,
    /// With --server: the model name the server knows (`/v1/models` lists them; not in sweeps).
    #[cfg_attr(feature = "cli", arg(id = "server_model", long = "model", value_name = "NAME", requires = "url"))]
    #[serde(default)]
    pub model: Option<String>,
    /// With --server: requests in flight at once.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = default_concurrency()))]
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// With --server: seconds one request may take before it counts as failed (and is retried).
    #[cfg_attr(feature = "cli", arg(long = "request-timeout", default_value_t = default_timeout(), value_name = "S"))]
    #[serde(default = "default_timeout")]
    pub timeout: f64,
    /// With --server: retries of a request after 429, 5xx or a connection error (backoff 0.5 s, doubling, at most 30 s).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = default_retries()))]
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// With --server: the environment variable holding the API key (sent as a Bearer token; never recorded).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = default_key_env(), value_name = "VAR"))]
    #[serde(default = "default_key_env")]
    pub api_key_env: String,
    /// With --server: the judge's reference loss through the same server (in a sweep: intact A's);
    /// needs prompt logprobs (`echo` + `logprobs`, as vLLM and sfn serve give them), else use
    /// --reference MODEL.
    #[cfg_attr(feature = "cli", arg(long, requires = "url"))]
    #[serde(default)]
    pub server_reference: bool,
}

impl Default for ServerSpec {
    fn default() -> Self {
        serde_json::from_value(json!({})).expect("every field has a default")
    }
}

/// A connection to one model on one server.
#[derive(Clone)]
pub struct Server {
    base: String,
    model: String,
    agent: ureq::Agent,
    key: Option<String>,
    retries: u32,
    /// Requests sent and seconds spent in them, for the client-overhead report.
    stats: std::sync::Arc<(AtomicUsize, AtomicUsize)>,
}

impl Server {
    pub fn connect(spec: &ServerSpec) -> Result<Server, GenerateError> {
        let url = spec.url.as_deref().ok_or("no server URL")?;
        let model = spec.model.clone().ok_or("--server needs --model NAME (the name the server serves)")?;
        if spec.concurrency == 0 {
            return Err("--concurrency must be at least 1".into());
        }
        let base = url.trim_end_matches('/').trim_end_matches("/v1").to_string();
        let timeout = Duration::from_secs_f64(spec.timeout.max(0.001));
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10).min(timeout))
            .timeout(timeout)
            .max_idle_connections_per_host(spec.concurrency)
            .build();
        let key = std::env::var(&spec.api_key_env).ok().filter(|k| !k.is_empty());
        Ok(Server { base, model, agent, key, retries: spec.retries, stats: Default::default() })
    }

    /// The model names the server at `spec`'s URL lists at `/v1/models` (spec's model is not
    /// needed).
    pub fn models(spec: &ServerSpec) -> Result<Vec<String>, GenerateError> {
        let server = Server::connect(&ServerSpec { model: Some(String::new()), ..spec.clone() })?;
        let url = format!("{}/v1/models", server.base);
        let text = match server.authorized(server.agent.get(&url)).call() {
            Ok(resp) => resp.into_string().map_err(|e| format!("{url}: reading the response: {e}"))?,
            Err(ureq::Error::Status(code, resp)) => {
                return Err(
                    format!("{url}: HTTP {code}: {}", error_message(&resp.into_string().unwrap_or_default())).into()
                )
            }
            Err(e) => return Err(format!("{url}: {e}").into()),
        };
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{url}: the response is not JSON ({e})"))?;
        let data = v
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{url}: no `data` list in {}", clip(&text)))?;
        Ok(data.iter().filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_string)).collect())
    }

    /// `req` with the API key, when there is one, as a Bearer token.
    fn authorized(&self, req: ureq::Request) -> ureq::Request {
        match &self.key {
            Some(k) => req.set("Authorization", &format!("Bearer {k}")),
            None => req,
        }
    }

    /// What results files record: the server and model, never the key.
    pub fn describe(&self) -> Value {
        json!({"server": self.base, "model": self.model, "api_key": self.key.is_some()})
    }

    /// Requests sent so far and the seconds spent waiting for them (summed over threads).
    pub fn request_time(&self) -> (usize, f64) {
        (self.stats.0.load(Ordering::Relaxed), self.stats.1.load(Ordering::Relaxed) as f64 / 1e6)
    }

    /// POST `body` to `path`, retrying what a retry can fix.
    fn post(&self, path: &str, body: &Value) -> Result<Value, GenerateError> {
        let url = format!("{}/v1/{path}", self.base);
        let mut wait = Duration::from_millis(500);
        for attempt in 0..=self.retries {
            let req = self.authorized(self.agent.post(&url).set("Content-Type", "application/json"));
            let t0 = Instant::now();
            let outcome = req.send_string(&body.to_string());
            self.stats.0.fetch_add(1, Ordering::Relaxed);
            self.stats.1.fetch_add(t0.elapsed().as_micros() as usize, Ordering::Relaxed);
            let retry_after = match outcome {
                Ok(resp) => {
                    let text = resp.into_string().map_err(|e| format!("{url}: reading the response: {e}"))?;
                    return serde_json::from_str(&text)
                        .map_err(|e| format!("{url}: the response is not JSON ({e}): {}", clip(&text)).into());
                }
                Err(ureq::Error::Status(code, resp)) if code == 429 || code >= 500 => {
                    let after = resp.header("Retry-After").and_then(|s| s.trim().parse::<f64>().ok());
                    if attempt == self.retries {
                        let text = resp.into_string().unwrap_or_default();
                        return Err(
                            format!("{url}: HTTP {code} after {} retries: {}", self.retries, clip(&text)).into()
                        );
                    }
                    after
                }
                Err(ureq::Error::Status(code, resp)) => {
                    let text = resp.into_string().unwrap_or_default();
                    return Err(format!("{url}: HTTP {code}: {}", error_message(&text)).into());
                }
                Err(ureq::Error::Transport(t)) => {
                    if attempt == self.retries {
                        return Err(format!("{url}: {t} (after {} retries)", self.retries).into());
                    }
                    None
                }
            };
            let pause = retry_after.map(Duration::from_secs_f64).unwrap_or(wait).min(Duration::from_secs(30));
            std::thread::sleep(pause);
            wait = (wait * 2).min(Duration::from_secs(30));
        }
        unreachable!("the last attempt returns")
    }

    /// One sample for `prompt`.
    fn sample(&self, prompt: &Prompt, settings: &DecodeSettings, index: usize) -> Result<Generation, GenerateError> {
        let s = &settings.sampling;
        let mut body = json!({
            "model": self.model,
            "max_tokens": settings.max_new_tokens,
            "temperature": s.temperature,
        });
        if let Some(p) = s.top_p {
            body["top_p"] = p.into();
        }
        if let Some(k) = s.top_k {
            body["top_k"] = k.into(); // not OpenAI's, but vLLM, llama.cpp and sfn serve take it
        }
        if !settings.stop.is_empty() {
            body["stop"] = settings.stop.clone().into();
        }
        if !s.is_greedy() {
            // One seed per sample, so samples differ and a rerun draws the same ones.
            body["seed"] = (s.seed.wrapping_add(index as u64) & 0x7fff_ffff).into();
        }
        let (path, reply) = match &prompt.body {
            PromptBody::Text(text) => {
                body["prompt"] = text.clone().into();
                ("completions", "/choices/0/text")
            }
            PromptBody::Chat(messages) => {
                let messages: Vec<Value> =
                    messages.iter().map(|m| json!({"role": m.role.name(), "content": m.content})).collect();
                body["messages"] = messages.into();
                ("chat/completions", "/choices/0/message/content")
            }
        };
        let v = self.post(path, &body)?;
        let text = v
            .pointer(reply)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{}/v1/{path}: the response has no {reply}: {}", self.base, clip(&v.to_string())))?;
        let tokens = v
            .pointer("/usage/completion_tokens")
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("{}/v1/{path}: the response has no usage.completion_tokens", self.base))?;
        let finish = match v.pointer("/choices/0/finish_reason").and_then(Value::as_str) {
            Some("length") => FinishReason::Length,
            Some("stop") if settings.stop.iter().any(|st| text.ends_with(st.as_str())) => FinishReason::Stop,
            Some("stop") | Some("eos") => FinishReason::Eos,
            _ => FinishReason::Unknown,
        };
        Ok(Generation { text: text.to_string(), token_count: tokens as usize, finish })
    }
}

fn clip(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// OpenAI's error shape `{"error": {"message": ...}}`, else the body.
fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.pointer("/error/message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| clip(body))
}

/// A [`Generator`] over a server.
pub struct ServerGenerator {
    pub server: Server,
    pub concurrency: usize,
}

impl Generator for ServerGenerator {
    fn describe(&self) -> Value {
        json!({"server": self.server.describe(), "concurrency": self.concurrency})
    }

    fn token_count_kind(&self) -> TokenCountKind {
        TokenCountKind::Tokens
    }

    fn generate(
        &mut self,
        prompts: &[Prompt],
        settings: &DecodeSettings,
        deliver: &mut Deliver,
    ) -> Result<(), GenerateError> {
        if settings.budget_forcing.is_some() {
            return Err(
                "budget forcing needs the local runtime (a server cannot be stopped and resumed mid-sample)".into()
            );
        }
        let n = settings.n;
        let jobs = prompts.len() * n;
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let (tx, rx) = mpsc::channel::<(usize, Result<Generation, GenerateError>)>();
        std::thread::scope(|scope| -> Result<(), GenerateError> {
            for _ in 0..self.concurrency.min(jobs) {
                let (tx, next, stop, server) = (tx.clone(), &next, &stop, &self.server);
                scope.spawn(move || loop {
                    let j = next.fetch_add(1, Ordering::SeqCst);
                    if j >= jobs || stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let r = server.sample(&prompts[j / n], settings, j % n);
                    if tx.send((j, r)).is_err() {
                        break;
                    }
                });
            }
            drop(tx);
            // Samples per prompt, delivered once all n are back.
            let mut got: Vec<Vec<Option<Generation>>> = vec![vec![None; n]; prompts.len()];
            let mut left = vec![n; prompts.len()];
            let result = (|| {
                for (j, r) in rx.iter() {
                    let (p, k) = (j / n, j % n);
                    got[p][k] = Some(r.map_err(|e| format!("task `{}`: {e}", prompts[p].id))?);
                    left[p] -= 1;
                    if left[p] == 0 {
                        deliver(p, got[p].iter_mut().map(|g| g.take().expect("every sample is back")).collect())?;
                    }
                }
                Ok(())
            })();
            stop.store(true, Ordering::SeqCst);
            result
        })
    }
}

/// The judge's reference loss through a server that returns prompt logprobs.
pub struct ServerScorer {
    pub server: Server,
    /// Whether the server's logprobs passed the plausibility check (made before the first score).
    checked: bool,
}

/// Plain text any language model predicts well: its mean loss checks a server's prompt logprobs.
const CHECK_TEXT: &str =
    "The capital of France is Paris. The capital of Germany is Berlin. The capital of Italy is Rome.";
/// Far above what any real model gives on CHECK_TEXT (SmolLM2-135M: about 1.5 nats per token).
const CHECK_MAX_LOSS: f64 = 6.0;

impl ServerScorer {
    pub fn new(server: Server) -> ServerScorer {
        ServerScorer { server, checked: false }
    }

    /// Summed loss and count of the tokens of `full` that start at character `start` or later
    /// (OpenAI's `text_offset` counts characters); None when the server returns no prompt logprobs.
    fn echo_loss(&self, full: &str, start: usize) -> Result<Option<(f64, usize)>, GenerateError> {
        let body = json!({"model": self.server.model, "prompt": full, "max_tokens": 1, "temperature": 0,
                          "echo": true, "logprobs": 1});
        let v = self.server.post("completions", &body)?;
        let Some(lp) = v.pointer("/choices/0/logprobs") else { return Ok(None) };
        let (Some(logprobs), Some(offsets)) =
            (lp.get("token_logprobs").and_then(Value::as_array), lp.get("text_offset").and_then(Value::as_array))
        else {
            return Ok(None);
        };
        // The echoed tokens from `start` up to the end of `full` (the one generated token is after it).
        let end = full.chars().count();
        let (mut sum, mut count) = (0.0, 0usize);
        for (lp, off) in logprobs.iter().zip(offsets) {
            let Some(off) = off.as_u64() else { return Ok(None) };
            if off as usize >= start && (off as usize) < end {
                let Some(lp) = lp.as_f64() else { return Ok(None) };
                sum -= lp;
                count += 1;
            }
        }
        Ok((logprobs.len() > 1).then_some((sum, count)))
    }

    fn unsupported(&self, why: &str) -> GenerateError {
        format!(
            "{}/v1/completions {why}, so it cannot score outputs; drop --server-reference and use --reference MODEL \
             to score with a local model",
            self.server.base
        )
        .into()
    }
}

impl ReferenceScorer for ServerScorer {
    fn describe(&self) -> Value {
        json!({"server": self.server.describe(), "scoring": "echo + logprobs"})
    }

    fn mean_token_loss(&mut self, prompt: &Prompt, output: &str) -> Result<Option<f64>, GenerateError> {
        let PromptBody::Text(text) = &prompt.body else {
            return Err("scoring through the server needs prompts in generate mode (a chat prompt's text is the server's template); use --reference MODEL".into());
        };
        if !self.checked {
            // Some servers return prompt logprobs that are not the model's (llama-cpp-python's
            // echo gives ~10 nats per token on plain English); such losses would silently
            // mislead the judge.
            let (sum, n) = self
                .echo_loss(CHECK_TEXT, 1)?
                .ok_or_else(|| self.unsupported("returns no prompt logprobs (echo + logprobs)"))?;
            let mean = sum / n.max(1) as f64;
            if n == 0 || mean > CHECK_MAX_LOSS {
                return Err(self.unsupported(&format!(
                    "returns prompt logprobs that cannot be the model's ({mean:.1} nats per token on \"{CHECK_TEXT}\")"
                )));
            }
            self.checked = true;
        }
        if output.is_empty() {
            return Ok(None);
        }
        let full = format!("{text}{output}");
        let (sum, n) = self
            .echo_loss(&full, text.chars().count())?
            .ok_or_else(|| self.unsupported("returns no prompt logprobs (echo + logprobs)"))?;
        Ok((n > 0).then(|| sum / n as f64))
    }
}

/// Evaluate the served model as `job` says: every task in one batch (requests in flight up to the
/// concurrency, each task appended as it completes), judged with a local `reference` model or
/// through the server and model of `server_reference` (`spec` itself for `sfn eval
/// --server-reference`; intact A's server in a sweep).
pub fn evaluate_server(
    mut job: EvalJob,
    spec: &ServerSpec,
    reference: Option<&Reference>,
    server_reference: Option<&ServerSpec>,
    progress: &dyn Progress,
) -> crate::Result<EvalOutcome> {
    let server = Server::connect(spec).map_err(EvalError::Generation)?;
    // Batches are the local runtime's unit; a server keeps --concurrency requests in flight
    // throughout instead.
    job.config.batch_size = job.tasks.tasks.len().max(1);
    if reference.is_some() && server_reference.is_some() {
        return Err(EvalError::InvalidSettings("give --reference MODEL or --server-reference, not both".into()));
    }
    let mut generator = ServerGenerator { server: server.clone(), concurrency: spec.concurrency };
    let mut local = reference.map(|r| ModelRunner::new(r.model, r.tokenizer, r.describe.clone()));
    let mut remote = match server_reference {
        Some(s) => Some(ServerScorer::new(Server::connect(s).map_err(EvalError::Generation)?)),
        None => None,
    };
    let scorer: Option<&mut dyn ReferenceScorer> = match (&mut local, &mut remote) {
        (Some(l), _) => Some(l),
        (_, Some(r)) => Some(r),
        _ => None,
    };
    let mut inputs = serde_json::Map::new();
    inputs.insert("server".into(), server.describe());
    let source = SampleSource { files: vec![], inputs, decoded_here: true, notes: judge_notes(&job, scorer.is_some()) };
    let t0 = Instant::now();
    let outcome = run_job(&job, &job.tasks.tasks, source, &mut generator, scorer, progress)?;
    let (n, waited) = server.request_time();
    if n > 0 {
        // What the client adds: wall time not covered by requests in flight (grading, judging,
        // writing, sending), per request.
        let own = (t0.elapsed().as_secs_f64() - waited / spec.concurrency as f64).max(0.0) / n as f64;
        eprintln!(
            "server: {n} requests, {:.3} s each on average; the client's own time {:.1} ms per request",
            waited / n as f64,
            own * 1e3
        );
    }
    Ok(outcome)
}
