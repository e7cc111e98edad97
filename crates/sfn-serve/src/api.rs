//! OpenAI's request and error shapes: parsing and checking a request body before anything runs.
//!
//! Unknown fields are ignored (clients send `user`, `frequency_penalty`, ...), known ones must have
//! the right type and a sane value; every count (prompts, token ids, max_tokens, stop strings,
//! messages) is bounded here, before any allocation that depends on it. Errors carry the HTTP
//! status (always a 4xx) and the offending parameter.

use serde_json::{json, Value};

/// Bounds on what one request may ask for.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    /// Prompts in one /v1/completions request.
    pub max_prompts: usize,
    /// New tokens one prompt may ask for.
    pub max_tokens: usize,
    /// Tokens of one prompt given as ids.
    pub max_prompt_ids: usize,
    pub vocab_size: usize,
}

/// One prompt.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Text(String),
    Ids(Vec<u32>),
    /// (role, content) pairs, for the chat template.
    Chat(Vec<(String, String)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub model: String,
    pub inputs: Vec<Input>,
    pub max_tokens: usize,
    pub temperature: f64,
    pub top_p: Option<f64>,
    pub top_k: Option<usize>,
    pub stop: Vec<String>,
    pub seed: Option<u64>,
    pub echo: bool,
    pub stream: bool,
    /// Return each token's log-probability with this many alternatives (`logprobs: N` on
    /// completions, `logprobs: true` + `top_logprobs: N` on chat); None: no logprobs.
    pub logprobs: Option<usize>,
}

/// A request's fault: status 400 (or 404 for an unknown model), in OpenAI's error shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    pub param: Option<&'static str>,
}

impl ApiError {
    pub fn bad(param: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status: 400, message: message.into(), param: Some(param) }
    }

    pub fn body(&self) -> Value {
        let kind = if self.status == 404 { "not_found_error" } else { "invalid_request_error" };
        json!({"error": {"message": self.message, "type": kind, "param": self.param, "code": null}})
    }
}

const MAX_STOPS: usize = 16;
const MAX_MESSAGES: usize = 1024;
/// Most alternatives per token (vLLM's default bound; OpenAI allows 5 on completions, 20 on chat).
pub const MAX_LOGPROBS: usize = 20;

type Object = serde_json::Map<String, Value>;

/// The body as a JSON object, within the size bound.
fn object(body: &[u8], limits: &Limits) -> Result<Object, ApiError> {
    if body.len() > limits.max_body_bytes {
        return Err(ApiError::bad("body", format!("the body is over {} bytes", limits.max_body_bytes)));
    }
    match serde_json::from_slice(body).map_err(|e| ApiError::bad("body", format!("not JSON: {e}")))? {
        Value::Object(o) => Ok(o),
        _ => Err(ApiError::bad("body", "the body is not a JSON object")),
    }
}

fn uint(o: &Object, key: &'static str) -> Result<Option<u64>, ApiError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => {
            x.as_u64().map(Some).ok_or_else(|| ApiError::bad(key, format!("`{key}` must be a non-negative integer")))
        }
    }
}

fn float(o: &Object, key: &'static str) -> Result<Option<f64>, ApiError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x.as_f64().map(Some).ok_or_else(|| ApiError::bad(key, format!("`{key}` must be a number"))),
    }
}

fn flag(o: &Object, key: &'static str, default: bool) -> Result<bool, ApiError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::bad(key, format!("`{key}` must be true or false"))),
    }
}

/// The `model` field; `required` on the completion endpoints, optional on the tokenizer ones.
fn model(o: &Object, required: bool) -> Result<Option<String>, ApiError> {
    match o.get("model") {
        Some(Value::String(s)) => Ok(Some(s.clone())),
        None | Some(Value::Null) if !required => Ok(None),
        _ => Err(ApiError::bad("model", "`model` (a string) is required")),
    }
}

/// Parse a `/v1/completions` (`chat` false) or `/v1/chat/completions` body.
pub fn parse(body: &[u8], chat: bool, limits: &Limits) -> Result<Request, ApiError> {
    let o = object(body, limits)?;
    let model = model(&o, true)?.unwrap_or_default();
    let inputs = if chat { vec![messages(o.get("messages"))?] } else { prompts(o.get("prompt"), limits)? };
    let uint = |key| uint(&o, key);
    let float = |key| float(&o, key);
    let flag = |key| flag(&o, key, false);
    // Chat clients send max_completion_tokens, older ones max_tokens; OpenAI's default for
    // completions is 16.
    let max_tokens = uint("max_completion_tokens")?.or(uint("max_tokens")?).unwrap_or(if chat { 256 } else { 16 });
    if max_tokens == 0 || max_tokens > limits.max_tokens as u64 {
        return Err(ApiError::bad("max_tokens", format!("`max_tokens` must be 1 to {}", limits.max_tokens)));
    }
    let temperature = float("temperature")?.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::bad("temperature", "`temperature` must be between 0 and 2"));
    }
    let top_p = float("top_p")?.filter(|&p| p < 1.0);
    if top_p.is_some_and(|p| p <= 0.0) {
        return Err(ApiError::bad("top_p", "`top_p` must be in (0, 1]"));
    }
    let top_k = uint("top_k")?.filter(|&k| k > 0).map(|k| k.min(limits.vocab_size as u64) as usize);
    if uint("n")?.is_some_and(|n| n != 1) {
        return Err(ApiError::bad("n", "only `n` = 1 is served; send several requests"));
    }
    let logprobs = if chat {
        let top = uint("top_logprobs")?;
        match (flag("logprobs")?, top) {
            (true, top) => Some(top.unwrap_or(0)),
            (false, None) => None,
            (false, Some(_)) => return Err(ApiError::bad("top_logprobs", "`top_logprobs` needs `logprobs`: true")),
        }
    } else {
        match o.get("logprobs") {
            None | Some(Value::Null | Value::Bool(false)) => None,
            _ => Some(uint("logprobs")?.unwrap_or(0)),
        }
    };
    if logprobs.is_some_and(|n| n > MAX_LOGPROBS as u64) {
        let param = if chat { "top_logprobs" } else { "logprobs" };
        return Err(ApiError::bad(param, format!("at most {MAX_LOGPROBS} alternatives per token")));
    }
    let stop = match o.get("stop") {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if a.len() <= MAX_STOPS => a
            .iter()
            .map(|s| s.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ApiError::bad("stop", "`stop` must be a string or a list of strings"))?,
        Some(_) => return Err(ApiError::bad("stop", format!("`stop`: a string or at most {MAX_STOPS} strings"))),
    };
    if stop.iter().any(String::is_empty) {
        return Err(ApiError::bad("stop", "stop strings must not be empty"));
    }
    let echo = flag("echo")?;
    if echo && chat {
        return Err(ApiError::bad("echo", "`echo` is for /v1/completions"));
    }
    let stream = flag("stream")?;
    if stream && logprobs.is_some() {
        return Err(ApiError::bad("logprobs", "`logprobs` are served without `stream`"));
    }
    Ok(Request {
        model,
        inputs,
        max_tokens: max_tokens as usize,
        temperature,
        top_p,
        top_k,
        stop,
        seed: uint("seed")?,
        echo,
        stream,
        logprobs: logprobs.map(|n| n as usize),
    })
}

/// A `/tokenize` body (vLLM's): a prompt, or chat messages to render with the template.
#[derive(Debug, Clone, PartialEq)]
pub struct Tokenize {
    pub model: Option<String>,
    /// `Input::Text` or `Input::Chat`.
    pub input: Input,
    /// For a prompt: add what the tokenizer adds around a raw text (default true, as vLLM).
    pub add_special_tokens: bool,
    /// For messages: end with the assistant's turn opened (default true).
    pub add_generation_prompt: bool,
}

pub fn parse_tokenize(body: &[u8], limits: &Limits) -> Result<Tokenize, ApiError> {
    let o = object(body, limits)?;
    let input = match (o.get("prompt"), o.get("messages")) {
        (Some(Value::String(s)), None) => Input::Text(s.clone()),
        (None, m @ Some(_)) => messages(m)?,
        _ => return Err(ApiError::bad("prompt", "give `prompt` (a string) or `messages`")),
    };
    Ok(Tokenize {
        model: model(&o, false)?,
        input,
        add_special_tokens: flag(&o, "add_special_tokens", true)?,
        add_generation_prompt: flag(&o, "add_generation_prompt", true)?,
    })
}

/// A `/detokenize` body: `{"tokens": [ids]}`.
pub fn parse_detokenize(body: &[u8], limits: &Limits) -> Result<(Option<String>, Vec<u32>), ApiError> {
    let o = object(body, limits)?;
    let ids = match o.get("tokens") {
        Some(Value::Array(a)) if a.is_empty() => vec![],
        Some(Value::Array(a)) => ids(a, limits, "tokens")?,
        _ => return Err(ApiError::bad("tokens", "`tokens` (a list of token ids) is required")),
    };
    Ok((model(&o, false)?, ids))
}

/// `prompt`: a string, a list of strings, a list of token ids or a list of lists of ids.
fn prompts(p: Option<&Value>, limits: &Limits) -> Result<Vec<Input>, ApiError> {
    let ids = |a: &[Value]| ids(a, limits, "prompt").map(Input::Ids);
    let list = match p {
        Some(Value::String(s)) => return Ok(vec![Input::Text(s.clone())]),
        Some(Value::Array(a)) if !a.is_empty() => a,
        _ => return Err(ApiError::bad("prompt", "`prompt` (a string, strings, or token ids) is required")),
    };
    if list.iter().all(Value::is_number) {
        return Ok(vec![ids(list)?]);
    }
    if list.len() > limits.max_prompts {
        return Err(ApiError::bad("prompt", format!("at most {} prompts per request", limits.max_prompts)));
    }
    list.iter()
        .map(|x| match x {
            Value::String(s) => Ok(Input::Text(s.clone())),
            Value::Array(a) => ids(a),
            _ => Err(ApiError::bad("prompt", "each prompt must be a string or a list of token ids")),
        })
        .collect()
}

/// 1 to `max_prompt_ids` token ids, each below the vocabulary size.
fn ids(a: &[Value], limits: &Limits, param: &'static str) -> Result<Vec<u32>, ApiError> {
    if a.is_empty() || a.len() > limits.max_prompt_ids {
        return Err(ApiError::bad(param, format!("1 to {} token ids", limits.max_prompt_ids)));
    }
    a.iter()
        .map(|x| x.as_u64().filter(|&i| i < limits.vocab_size as u64).map(|i| i as u32))
        .collect::<Option<Vec<u32>>>()
        .ok_or_else(|| ApiError::bad(param, format!("token ids must be integers below {}", limits.vocab_size)))
}

/// `messages`: [{role, content}], content a string or a list of text parts.
fn messages(m: Option<&Value>) -> Result<Input, ApiError> {
    let list = match m {
        Some(Value::Array(a)) if !a.is_empty() && a.len() <= MAX_MESSAGES => a,
        _ => return Err(ApiError::bad("messages", format!("`messages`: a list of 1 to {MAX_MESSAGES} messages"))),
    };
    let mut out = Vec::with_capacity(list.len());
    for m in list {
        let role = m.get("role").and_then(Value::as_str);
        let content = match m.get("content") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(parts)) => parts
                .iter()
                .map(|p| match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => Some(t),
                    _ => None,
                })
                .collect::<Option<Vec<&str>>>()
                .map(|parts| parts.concat()),
            _ => None,
        };
        match (role, content) {
            (Some(r @ ("system" | "user" | "assistant" | "developer")), Some(c)) => {
                out.push((if r == "developer" { "system" } else { r }.to_string(), c))
            }
            _ => {
                return Err(ApiError::bad(
                    "messages",
                    "each message needs a `role` (system, user or assistant) and a text `content`",
                ))
            }
        }
    }
    Ok(Input::Chat(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits { max_body_bytes: 1 << 20, max_prompts: 4, max_tokens: 512, max_prompt_ids: 8, vocab_size: 100 }
    }

    #[test]
    fn prompts_of_every_shape_and_their_bounds() {
        let p = |body: &str| parse(body.as_bytes(), false, &limits());
        let r = p(r#"{"model":"m","prompt":["a",[1,2]],"max_tokens":5,"stop":"\n","seed":3}"#).unwrap();
        assert_eq!(r.inputs, vec![Input::Text("a".into()), Input::Ids(vec![1, 2])]);
        assert_eq!(
            (r.max_tokens, r.stop.as_slice(), r.seed, r.temperature),
            (5, &["\n".to_string()][..], Some(3), 1.0)
        );
        assert_eq!(p(r#"{"model":"m","prompt":[5,6]}"#).unwrap().inputs, vec![Input::Ids(vec![5, 6])]);
        assert_eq!(r.logprobs, None);
        assert_eq!(p(r#"{"model":"m","prompt":"a","logprobs":0,"echo":true}"#).unwrap().logprobs, Some(0));
        assert_eq!(p(r#"{"model":"m","prompt":"a","logprobs":false}"#).unwrap().logprobs, None);
        for (body, param) in [
            (r#"{"prompt":"a"}"#, "model"),
            (r#"{"model":"m","prompt":[100]}"#, "prompt"),
            (r#"{"model":"m","prompt":[1,2,3,4,5,6,7,8,9]}"#, "prompt"),
            (r#"{"model":"m","prompt":["a","b","c","d","e"]}"#, "prompt"),
            (r#"{"model":"m","prompt":"a","max_tokens":513}"#, "max_tokens"),
            (r#"{"model":"m","prompt":"a","max_tokens":-1}"#, "max_tokens"),
            (r#"{"model":"m","prompt":"a","temperature":"hot"}"#, "temperature"),
            (r#"{"model":"m","prompt":"a","n":2}"#, "n"),
            (r#"{"model":"m","prompt":"a","logprobs":21}"#, "logprobs"),
            (r#"{"model":"m","prompt":"a","logprobs":true}"#, "logprobs"),
            (r#"{"model":"m","prompt":"a","logprobs":1,"stream":true}"#, "logprobs"),
            (r#"{"model":"m","prompt":"a","stop":[""]}"#, "stop"),
            ("{\"model\":", "body"),
        ] {
            assert_eq!(p(body).unwrap_err().param, Some(param), "{body}");
        }
    }

    #[test]
    fn chat_messages_with_text_parts() {
        let body = r#"{"model":"m","messages":[{"role":"developer","content":"be brief"},
            {"role":"user","content":[{"type":"text","text":"hi "},{"type":"text","text":"there"}]}],"stream":true}"#;
        let r = parse(body.as_bytes(), true, &limits()).unwrap();
        assert_eq!(
            r.inputs,
            vec![Input::Chat(vec![("system".into(), "be brief".into()), ("user".into(), "hi there".into())])]
        );
        assert!(r.stream);
        assert_eq!(r.max_tokens, 256);
        let bad = r#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#;
        assert_eq!(parse(bad.as_bytes(), true, &limits()).unwrap_err().param, Some("messages"));
        let lp = |extra: &str| {
            let body = format!(r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}]{extra}}}"#);
            parse(body.as_bytes(), true, &limits()).map(|r| r.logprobs).map_err(|e| e.param)
        };
        assert_eq!(lp(r#","logprobs":true,"top_logprobs":3"#), Ok(Some(3)));
        assert_eq!(lp(r#","logprobs":true"#), Ok(Some(0)));
        assert_eq!(lp(r#","top_logprobs":3"#), Err(Some("top_logprobs")));
        assert_eq!(lp(r#","logprobs":true,"top_logprobs":21"#), Err(Some("top_logprobs")));
    }

    #[test]
    fn tokenizer_endpoint_bodies() {
        let t = parse_tokenize(br#"{"prompt":"hi","add_special_tokens":false}"#, &limits()).unwrap();
        assert_eq!((t.input, t.add_special_tokens, t.model), (Input::Text("hi".into()), false, None));
        let t = parse_tokenize(br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#, &limits()).unwrap();
        assert!(matches!(t.input, Input::Chat(_)) && t.add_generation_prompt);
        assert_eq!(parse_tokenize(br#"{"prompt":3}"#, &limits()).unwrap_err().param, Some("prompt"));
        assert_eq!(parse_detokenize(br#"{"tokens":[1,2]}"#, &limits()).unwrap(), (None, vec![1, 2]));
        assert_eq!(parse_detokenize(br#"{"tokens":[]}"#, &limits()).unwrap(), (None, vec![]));
        assert_eq!(parse_detokenize(br#"{"tokens":[100]}"#, &limits()).unwrap_err().param, Some("tokens"));
        assert_eq!(parse_detokenize(br#"{"tokens":"a"}"#, &limits()).unwrap_err().param, Some("tokens"));
    }
}
