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

/// Parse a `/v1/completions` (`chat` false) or `/v1/chat/completions` body.
pub fn parse(body: &[u8], chat: bool, limits: &Limits) -> Result<Request, ApiError> {
    if body.len() > limits.max_body_bytes {
        return Err(ApiError::bad("body", format!("the body is over {} bytes", limits.max_body_bytes)));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| ApiError::bad("body", format!("not JSON: {e}")))?;
    let o = v.as_object().ok_or_else(|| ApiError::bad("body", "the body is not a JSON object"))?;
    let model = match o.get("model") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(ApiError::bad("model", "`model` (a string) is required")),
    };
    let inputs = if chat { vec![messages(o.get("messages"))?] } else { prompts(o.get("prompt"), limits)? };
    let uint = |key: &'static str| -> Result<Option<u64>, ApiError> {
        match o.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x
                .as_u64()
                .map(Some)
                .ok_or_else(|| ApiError::bad(key, format!("`{key}` must be a non-negative integer"))),
        }
    };
    let float = |key: &'static str| -> Result<Option<f64>, ApiError> {
        match o.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x.as_f64().map(Some).ok_or_else(|| ApiError::bad(key, format!("`{key}` must be a number"))),
        }
    };
    let flag = |key: &'static str| -> Result<bool, ApiError> {
        match o.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(ApiError::bad(key, format!("`{key}` must be true or false"))),
        }
    };
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
    if o.get("logprobs").is_some_and(|l| !l.is_null() && *l != Value::Bool(false)) {
        return Err(ApiError::bad("logprobs", "`logprobs` are not served by sfn serve yet"));
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
        stream: flag("stream")?,
    })
}

/// `prompt`: a string, a list of strings, a list of token ids or a list of lists of ids.
fn prompts(p: Option<&Value>, limits: &Limits) -> Result<Vec<Input>, ApiError> {
    let ids = |a: &[Value]| -> Result<Input, ApiError> {
        if a.is_empty() || a.len() > limits.max_prompt_ids {
            return Err(ApiError::bad(
                "prompt",
                format!("a prompt of ids must have 1 to {} ids", limits.max_prompt_ids),
            ));
        }
        a.iter()
            .map(|x| x.as_u64().filter(|&i| i < limits.vocab_size as u64).map(|i| i as u32))
            .collect::<Option<Vec<u32>>>()
            .map(Input::Ids)
            .ok_or_else(|| ApiError::bad("prompt", format!("token ids must be integers below {}", limits.vocab_size)))
    };
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
        for (body, param) in [
            (r#"{"prompt":"a"}"#, "model"),
            (r#"{"model":"m","prompt":[100]}"#, "prompt"),
            (r#"{"model":"m","prompt":[1,2,3,4,5,6,7,8,9]}"#, "prompt"),
            (r#"{"model":"m","prompt":["a","b","c","d","e"]}"#, "prompt"),
            (r#"{"model":"m","prompt":"a","max_tokens":513}"#, "max_tokens"),
            (r#"{"model":"m","prompt":"a","max_tokens":-1}"#, "max_tokens"),
            (r#"{"model":"m","prompt":"a","temperature":"hot"}"#, "temperature"),
            (r#"{"model":"m","prompt":"a","n":2}"#, "n"),
            (r#"{"model":"m","prompt":"a","logprobs":1}"#, "logprobs"),
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
    }
}
