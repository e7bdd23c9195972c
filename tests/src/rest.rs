//! Plain HTTP calls to the gateway's REST surface.

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Sends `method path` (path and query) with an optional bearer token and JSON body; returns the
/// status and the body parsed as JSON (`Null` when empty).
pub async fn call(
    base: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let client = reqwest::Client::new();
    let mut request = client.request(method, format!("{base}{path}"));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).unwrap());
    }
    let response = request.send().await.expect("send");
    let status = response.status();
    let bytes = response.bytes().await.expect("body");
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, value)
}

pub async fn get(base: &str, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    call(base, Method::GET, path, token, None).await
}

/// The ARM error code of an error body.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// The ARM error code and message of an error body.
pub fn error(body: &Value) -> (&str, &str) {
    (code(body), body["error"]["message"].as_str().unwrap_or(""))
}
