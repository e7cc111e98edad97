//! `sfn serve`: an OpenAI-compatible HTTP server over sfn's runtime, for a model or an edited view
//! of it (A with modules taken from B, or with modules destroyed) held in memory — nothing is
//! written. Any client of the OpenAI API (the OpenAI client, lm-evaluation-harness, `sfn eval
//! --server`) can then evaluate the edit, by generating or by scoring.
//!
//! Endpoints: `GET /v1/models`, `POST /v1/completions` (prompt as text, texts, ids or lists of
//! ids; `max_tokens`, `temperature`, `top_p`, `top_k`, `stop`, `seed`, `echo`, `logprobs`,
//! `stream`), `POST /v1/chat/completions` (the model's chat template; `logprobs` and
//! `top_logprobs`; `stream` as server-sent events), and vLLM's `GET /tokenizer_info`, `POST
//! /tokenize` and `POST /detokenize`. Requests of
//! all clients are batched on one engine thread (`engine`); bodies, prompt counts, token ids and
//! max_tokens are bounded (`api`); bad requests get a 4xx in OpenAI's error shape and the server
//! keeps serving. Binds to 127.0.0.1 unless told otherwise; Ctrl-C stops it after the requests
//! in flight.

pub mod api;
pub mod engine;

use api::{ApiError, Input, Limits, Request};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use engine::{Engine, Job, Out, Score, Scored};
use futures_util::StreamExt;
use serde_json::{json, Value};
use sfn_checkpoint::edit::{destroy_plan, merge_plan, Damage, EditView, Method};
use sfn_checkpoint::Checkpoint;
use sfn_model::{ChatTemplate, GenerateOptions, Message, RuntimeSpec, Sampling, Tokenizer};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc::unbounded_channel;
use tokio_stream::wrappers::UnboundedReceiverStream;

#[derive(Debug, Clone)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct ServeSpec {
    /// The model: checkpoint directory, .safetensors or .gguf file (model A of an edit).
    pub model: PathBuf,
    /// Serve A with the modules of --take taken from this model B (nothing is written).
    #[cfg_attr(feature = "cli", arg(long, value_name = "B", requires = "take", conflicts_with = "destroy"))]
    pub merge: Option<PathBuf>,
    /// With --merge: the modules to take from B, as a selector (`o_proj`, `attn,mlp`, ...).
    #[cfg_attr(feature = "cli", arg(long, requires = "merge"))]
    pub take: Option<String>,
    /// With --merge: mix instead of taking, alpha·A + (1 − alpha)·B.
    #[cfg_attr(feature = "cli", arg(long, requires = "merge"))]
    pub alpha: Option<f64>,
    /// Serve A with these modules destroyed (a selector), by --method.
    #[cfg_attr(feature = "cli", arg(long, value_name = "SEL"))]
    pub destroy: Option<String>,
    /// With --destroy: zero, reinit, remove or scale.
    #[cfg_attr(feature = "cli", arg(long, default_value = "zero"))]
    pub method: Method,
    /// With --destroy --method reinit: the standard deviation (and --mean, --seed).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0.02))]
    pub std: f64,
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0.0))]
    pub mean: f64,
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0))]
    pub seed: u64,
    /// With --destroy --method scale: the factor.
    #[cfg_attr(feature = "cli", arg(long))]
    pub factor: Option<f64>,
    /// With --merge or --destroy: only in these layers (`5..30`).
    #[cfg_attr(feature = "cli", arg(long))]
    pub layers: Option<String>,
    /// The model name clients ask for (default: the model's file or directory name).
    #[cfg_attr(feature = "cli", arg(long))]
    pub name: Option<String>,
    /// Address to bind (127.0.0.1: this machine only).
    #[cfg_attr(feature = "cli", arg(long, default_value = "127.0.0.1"))]
    pub host: String,
    /// Port (0: any free one; the one chosen is printed).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 8000))]
    pub port: u16,
    /// Most rows decoded in one batch.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 16))]
    pub max_batch: usize,
    /// Most new tokens a request may ask for (also capped by the model's positions).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 4096))]
    pub max_tokens: usize,
    /// Largest request body, in bytes.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 4 << 20))]
    pub max_body: usize,
    #[cfg_attr(feature = "cli", command(flatten))]
    pub runtime: RuntimeSpec,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Checkpoint(#[from] sfn_checkpoint::Error),
    #[error(transparent)]
    Model(#[from] sfn_model::Error),
    #[error("{0}")]
    Serve(String),
}

struct App {
    name: String,
    engine: Engine,
    tokenizer: Arc<Tokenizer>,
    chat: Result<ChatTemplate, String>,
    limits: Limits,
    positions: usize,
    requests: AtomicU64,
}

/// Load the model (or edited view) and serve until Ctrl-C. `ready(address)` is called once the
/// socket is bound.
pub fn serve(spec: &ServeSpec, ready: impl FnOnce(&str, &str)) -> Result<(), Error> {
    spec.runtime.init()?;
    let a = Checkpoint::open(&spec.model)?;
    let b = spec.merge.as_ref().map(Checkpoint::open).transpose()?;
    let plan = match (&spec.take, &spec.destroy) {
        (Some(take), None) => Some(merge_plan(take, spec.layers.as_deref(), spec.alpha)?),
        (None, Some(sel)) => {
            let damage = Damage { mean: spec.mean, std: spec.std, seed: spec.seed, factor: spec.factor };
            Some(destroy_plan(spec.method, Some(sel), spec.layers.as_deref(), damage)?)
        }
        (None, None) => None,
        (Some(_), Some(_)) => return Err(Error::Serve("serve a merge or a destruction, not both".into())),
    };
    let model = match plan {
        Some(plan) => spec.runtime.load_model(&EditView::new(&a, b.as_ref(), plan)?)?,
        None => spec.runtime.load_model(&a)?,
    };
    let tokenizer = Arc::new(Tokenizer::for_source(&a)?);
    let chat = ChatTemplate::for_tokenizer(&tokenizer).map_err(|e| e.to_string());
    let positions = model.max_positions();
    let name = spec.name.clone().unwrap_or_else(|| {
        let stem = spec.model.file_stem().or(spec.model.file_name()).unwrap_or_default();
        stem.to_string_lossy().into_owned()
    });
    let limits = Limits {
        max_body_bytes: spec.max_body,
        max_prompts: spec.max_batch.max(1) * 8,
        max_tokens: spec.max_tokens.min(positions.saturating_sub(1)).max(1),
        max_prompt_ids: positions,
        vocab_size: tokenizer.vocab_size(),
    };
    let engine = Engine::start(model, tokenizer.clone(), spec.max_batch);
    let app = Arc::new(App { name, engine, tokenizer, chat, limits, positions, requests: AtomicU64::new(0) });

    let router = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/tokenizer_info", get(tokenizer_info))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .fallback(|| async { error(ApiError { status: 404, message: "no such endpoint".into(), param: None }) })
        .layer(DefaultBodyLimit::max(spec.max_body))
        .with_state(app.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Serve(format!("cannot start the HTTP runtime: {e}")))?;
    runtime.block_on(async {
        let addr = format!("{}:{}", spec.host, spec.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| Error::Serve(format!("cannot listen on {addr}: {e}")))?;
        let bound = listener.local_addr().map_err(|e| Error::Serve(e.to_string()))?;
        ready(&format!("http://{bound}"), &app.name);
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| Error::Serve(e.to_string()))
    })
}

fn error(e: ApiError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, Json(e.body())).into_response()
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

async fn models(State(app): State<Arc<App>>) -> Response {
    Json(json!({"object": "list", "data": [{"id": app.name, "object": "model", "created": 0, "owned_by": "sfn"}]}))
        .into_response()
}

/// vLLM's tokenizer endpoints (`/tokenizer_info`, `/tokenize`, `/detokenize`): clients that score
/// through the server (lm-evaluation-harness's `local-completions`) tokenize with the server's own
/// tokenizer, so no copy of it is needed on their side.
async fn tokenizer_info(State(app): State<Arc<App>>) -> Response {
    let t = &app.tokenizer;
    Json(json!({"tokenizer_class": "sfn", "bos_token": t.bos_token, "eos_token": t.eos_token, "pad_token": null,
                "chat_template": t.chat_template(), "model_max_length": app.positions}))
    .into_response()
}

async fn tokenize(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let result = api::parse_tokenize(&body, &app.limits).and_then(|t| {
        app.check_model(t.model.as_deref())?;
        match &t.input {
            Input::Chat(messages) => app.render(messages, t.add_generation_prompt).map(|(ids, _)| ids),
            Input::Text(text) => {
                app.tokenizer.encode(text, t.add_special_tokens).map_err(|e| ApiError::bad("prompt", e.to_string()))
            }
            Input::Ids(_) => unreachable!("parse_tokenize gives text or messages"),
        }
    });
    match result {
        Ok(ids) => Json(json!({"count": ids.len(), "max_model_len": app.positions, "tokens": ids, "token_strs": null}))
            .into_response(),
        Err(e) => error(e),
    }
}

async fn detokenize(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let result = api::parse_detokenize(&body, &app.limits).and_then(|(model, ids)| {
        app.check_model(model.as_deref())?;
        app.tokenizer.decode(&ids, false).map_err(|e| ApiError::bad("tokens", e.to_string()))
    });
    match result {
        Ok(text) => Json(json!({"prompt": text})).into_response(),
        Err(e) => error(e),
    }
}

async fn completions(State(app): State<Arc<App>>, body: Bytes) -> Response {
    respond(app, &body, false).await
}

async fn chat_completions(State(app): State<Arc<App>>, body: Bytes) -> Response {
    respond(app, &body, true).await
}

/// One row submitted to the engine: its prompt's ids and text (for echo) and its events.
struct Row {
    prompt_ids: Vec<u32>,
    prompt_text: String,
    events: tokio::sync::mpsc::UnboundedReceiver<Out>,
}

impl App {
    /// A request naming another model is refused (404); the tokenizer endpoints may name none.
    fn check_model(&self, model: Option<&str>) -> Result<(), ApiError> {
        match model {
            Some(m) if m != self.name => Err(ApiError {
                status: 404,
                message: format!("model `{m}` is not served here; this server serves `{}`", self.name),
                param: Some("model"),
            }),
            _ => Ok(()),
        }
    }

    /// Chat messages rendered by the model's template: token ids and text.
    fn render(
        &self,
        messages: &[(String, String)],
        add_generation_prompt: bool,
    ) -> Result<(Vec<u32>, String), ApiError> {
        let chat = self.chat.as_ref().map_err(|why| ApiError::bad("messages", why.clone()))?;
        let messages: Vec<Message> = messages.iter().map(|(r, c)| Message::new(r, c)).collect();
        let text =
            chat.render(&messages, add_generation_prompt).map_err(|e| ApiError::bad("messages", e.to_string()))?;
        // The rendered text carries its own special tokens.
        let ids = self.tokenizer.encode(&text, false).map_err(|e| ApiError::bad("messages", e.to_string()))?;
        Ok((ids, text))
    }

    /// Token ids and text of one prompt, checked against the model's positions.
    fn encode(&self, input: &Input, req: &Request) -> Result<(Vec<u32>, String), ApiError> {
        let (ids, text) = match input {
            Input::Text(t) => {
                (self.tokenizer.encode(t, true).map_err(|e| ApiError::bad("prompt", e.to_string()))?, t.clone())
            }
            Input::Ids(ids) => {
                let text = self.tokenizer.decode(ids, false).map_err(|e| ApiError::bad("prompt", e.to_string()))?;
                (ids.clone(), text)
            }
            Input::Chat(messages) => self.render(messages, true)?,
        };
        if ids.is_empty() || ids.len() + req.max_tokens > self.positions {
            return Err(ApiError::bad(
                "max_tokens",
                format!(
                    "the prompt ({} tokens) and max_tokens ({}) exceed the model's {} positions",
                    ids.len(),
                    req.max_tokens,
                    self.positions
                ),
            ));
        }
        Ok((ids, text))
    }

    /// A row's logprobs in the endpoint's shape: completions' `tokens`, `token_logprobs`,
    /// `top_logprobs` and `text_offset` (from the prompt's first token with echo; its logprob is
    /// null), or chat's `content` list. Each token's text is the piece it adds to the text; the
    /// alternatives are named by their text alone, and include the chosen token (as vLLM does).
    fn logprobs(&self, row: &Row, s: &Scored, echo: bool, chat: bool) -> Value {
        let piece_list =
            |ids: &[u32], skip| self.tokenizer.pieces(ids, skip).unwrap_or_else(|_| vec![String::new(); ids.len()]);
        let name = |id: u32| self.tokenizer.decode(&[id], false).unwrap_or_default();
        let mut ids: Vec<u32> = Vec::new();
        let mut pieces = Vec::new();
        let mut offset = 0;
        if echo {
            ids.extend(&row.prompt_ids);
            pieces = piece_list(&row.prompt_ids, false);
            // The generated text starts where the echoed prompt text ends.
            offset = row.prompt_text.chars().count();
        }
        ids.extend(&s.generated);
        pieces.extend(piece_list(&s.generated, true));
        // Scores cover the tokens from `from`; with echo the first prompt token has none.
        let unscored = ids.len() - s.logprobs.len();
        let mut offsets = Vec::with_capacity(ids.len());
        let mut at = 0;
        for (i, p) in pieces.iter().enumerate() {
            if echo && i == row.prompt_ids.len() {
                at = offset;
            }
            offsets.push(at);
            at += p.chars().count();
        }
        let tops = s.logprobs.iter().zip(&ids[unscored..]).map(|(t, &id)| {
            let chosen = (id, t.logprob);
            t.top.iter().copied().chain(std::iter::once(chosen).filter(|c| !t.top.iter().any(|x| x.0 == c.0)))
        });
        if chat {
            let entry =
                |token: String, logprob: f64| json!({"token": token, "logprob": logprob, "bytes": token.as_bytes()});
            let content: Vec<Value> = s
                .logprobs
                .iter()
                .zip(&pieces[unscored..])
                .zip(tops)
                .map(|((t, piece), top)| {
                    let mut e = entry(piece.clone(), t.logprob);
                    // Chat lists exactly the `top_logprobs` asked for.
                    e["top_logprobs"] = top.take(t.top.len()).map(|(id, lp)| entry(name(id), lp)).collect();
                    e
                })
                .collect();
            return json!({"content": content});
        }
        let mut token_logprobs: Vec<Value> = vec![Value::Null; unscored];
        let mut top_logprobs: Vec<Value> = vec![Value::Null; unscored];
        for (t, top) in s.logprobs.iter().zip(tops) {
            token_logprobs.push(t.logprob.into());
            let mut dict = serde_json::Map::new();
            for (id, lp) in top {
                dict.entry(name(id)).or_insert(lp.into());
            }
            top_logprobs.push(dict.into());
        }
        json!({"tokens": pieces, "token_logprobs": token_logprobs, "top_logprobs": top_logprobs, "text_offset": offsets})
    }

    fn options(&self, req: &Request, stream: u64) -> GenerateOptions {
        let greedy = req.temperature == 0.0;
        GenerateOptions {
            max_new_tokens: req.max_tokens,
            // The seed goes into the row's stream, so rows of different requests share a batch.
            sampling: Sampling {
                temperature: req.temperature,
                top_k: req.top_k.filter(|_| !greedy),
                top_p: req.top_p.filter(|_| !greedy),
                seed: 0,
            },
            stop_tokens: self.tokenizer.eos_ids().to_vec(),
            stop_strings: req.stop.clone(),
            skip_special: true,
            streams: vec![stream],
        }
    }
}

async fn respond(app: Arc<App>, body: &[u8], chat: bool) -> Response {
    let req = match api::parse(body, chat, &app.limits) {
        Ok(r) => r,
        Err(e) => return error(e),
    };
    if let Err(e) = app.check_model(Some(&req.model)) {
        return error(e);
    }
    let id = app.requests.fetch_add(1, Ordering::Relaxed);
    let mut rows = Vec::with_capacity(req.inputs.len());
    let mut jobs = Vec::with_capacity(req.inputs.len());
    for (i, input) in req.inputs.iter().enumerate() {
        let (ids, prompt_text) = match app.encode(input, &req) {
            Ok(x) => x,
            Err(e) => return error(e),
        };
        let stream = match req.seed {
            Some(s) => s.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(i as u64),
            None => id.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(i as u64),
        };
        let (tx, rx) = unbounded_channel();
        let score = req.logprobs.map(|top| Score { from: if req.echo { 1 } else { ids.len() }, top });
        rows.push(Row { prompt_ids: ids.clone(), prompt_text, events: rx });
        jobs.push(Job { ids, opts: app.options(&req, stream), score, out: tx });
    }
    for job in jobs {
        if let Err(e) = app.engine.submit(job) {
            return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": {"message": e, "type": "server_error"}})))
                .into_response();
        }
    }
    let (object, prefix) = if chat { ("chat.completion", "chatcmpl") } else { ("text_completion", "cmpl") };
    let head = json!({"id": format!("{prefix}-{id}"), "created": now(), "model": app.name});
    if req.stream {
        return stream(rows, head, chat, req.echo);
    }
    let (mut choices, mut prompt_tokens, mut completion_tokens) = (Vec::new(), 0, 0);
    for (index, mut row) in rows.into_iter().enumerate() {
        let mut text = if req.echo { row.prompt_text.clone() } else { String::new() };
        let (mut finish, mut logprobs) = ("stop", None);
        while let Some(out) = row.events.recv().await {
            match out {
                Out::Text(t) => text.push_str(&t),
                Out::Done { tokens, finish: f, scored } => {
                    completion_tokens += tokens;
                    finish = f;
                    logprobs = scored.map(|s| app.logprobs(&row, &s, req.echo, chat));
                    break;
                }
                Out::Failed(e) => {
                    let body = json!({"error": {"message": e, "type": "server_error"}});
                    return (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response();
                }
            }
        }
        prompt_tokens += row.prompt_ids.len();
        choices.push(if chat {
            json!({"index": index, "message": {"role": "assistant", "content": text}, "logprobs": logprobs,
                   "finish_reason": finish})
        } else {
            json!({"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish})
        });
    }
    let mut v = head;
    v["object"] = object.into();
    v["choices"] = choices.into();
    v["usage"] = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                        "total_tokens": prompt_tokens + completion_tokens});
    Json(v).into_response()
}

/// Server-sent events: one chunk per piece of final text, a last chunk per row with its finish
/// reason, then `[DONE]`.
fn stream(rows: Vec<Row>, head: Value, chat: bool, echo: bool) -> Response {
    let object = if chat { "chat.completion.chunk" } else { "text_completion" };
    let per_row = rows.into_iter().enumerate().map(move |(index, row)| {
        let head = head.clone();
        let first = (echo && !chat).then(|| Out::Text(row.prompt_text.clone()));
        let events = futures_util::stream::iter(first).chain(UnboundedReceiverStream::new(row.events));
        events.take_while(|out| std::future::ready(!matches!(out, Out::Failed(_)))).map(move |out| {
            let (piece, finish) = match out {
                Out::Text(t) => (Some(t), Value::Null),
                Out::Done { finish, .. } => (None, finish.into()),
                Out::Failed(_) => unreachable!("cut by take_while"),
            };
            let choice = if chat {
                let delta = piece.map_or(json!({}), |t| json!({"role": "assistant", "content": t}));
                json!({"index": index, "delta": delta, "finish_reason": finish})
            } else {
                json!({"index": index, "text": piece.unwrap_or_default(), "logprobs": null, "finish_reason": finish})
            };
            let mut v = head.clone();
            v["object"] = object.into();
            v["choices"] = json!([choice]);
            Ok::<_, std::convert::Infallible>(SseEvent::default().data(v.to_string()))
        })
    });
    let done = futures_util::stream::once(async { Ok(SseEvent::default().data("[DONE]")) });
    Sse::new(futures_util::stream::select_all(per_row.map(Box::pin)).chain(done)).into_response()
}
