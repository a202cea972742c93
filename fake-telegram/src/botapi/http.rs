//! Requests into method calls: the token and method from the path, parameters from the query
//! string, JSON, form or multipart bodies; Bot API faults applied on the way.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::faults::FaultKind;

use super::methods::{fail, status_description, too_many, unix_ms};
use super::{BotApi, Call};

pub(super) fn param_i64(p: &Map<String, Value>, k: &str) -> Option<i64> {
    match p.get(k)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn param_str<'a>(p: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    p.get(k).and_then(Value::as_str)
}

/// Form and multipart values arrive as strings; JSON-typed ones (reply_markup) are parsed.
pub(super) fn json_param(p: &Map<String, Value>, k: &str) -> Option<Value> {
    match p.get(k)? {
        Value::String(s) => serde_json::from_str(s).ok(),
        v => Some(v.clone()),
    }
}

pub(super) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) fn parse_form(s: &str, into: &mut Map<String, Value>) {
    for pair in s.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        into.insert(percent_decode(k), Value::String(percent_decode(v)));
    }
}

fn respond(code: StatusCode, body: Value) -> Response {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap_or_default()
}

async fn read_params(req: Request, state: &Arc<BotApi>) -> Result<Map<String, Value>, String> {
    let mut params = Map::new();
    if let Some(q) = req.uri().query() {
        parse_form(q, &mut params);
    }
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ctype.starts_with("multipart/form-data") {
        let mut mp = Multipart::from_request(req, state)
            .await
            .map_err(|e| e.to_string())?;
        while let Some(field) = mp.next_field().await.map_err(|e| e.to_string())? {
            let name = field.name().unwrap_or_default().to_string();
            let file_name = field.file_name().map(str::to_string);
            let mime = field.content_type().map(str::to_string);
            let data: Bytes = field.bytes().await.map_err(|e| e.to_string())?;
            match file_name {
                Some(f) => {
                    params.insert(
                        name,
                        json!({"file_name": f, "mime_type": mime.unwrap_or_else(|| "application/octet-stream".into()), "file_size": data.len(), "content": String::from_utf8_lossy(&data), "head_hex": hex::encode(&data[..data.len().min(16)])}),
                    );
                }
                None => {
                    params.insert(
                        name,
                        Value::String(String::from_utf8_lossy(&data).into_owned()),
                    );
                }
            }
        }
        // `document=attach://<name>` refers to the file sent as the part `<name>`, as in
        // Telegram's Bot API.
        let refs: Vec<(String, String)> = params
            .iter()
            .filter_map(|(k, v)| {
                v.as_str()
                    .and_then(|s| s.strip_prefix("attach://"))
                    .map(|part| (k.clone(), part.to_string()))
            })
            .collect();
        for (key, part) in refs {
            match params.remove(&part) {
                Some(file) => {
                    params.insert(key, file);
                }
                None => {
                    return Err(format!(
                        "{key} refers to attach://{part}, which was not sent"
                    ));
                }
            }
        }
        return Ok(params);
    }
    let body = axum::body::to_bytes(req.into_body(), 64 * 1024 * 1024)
        .await
        .map_err(|e| e.to_string())?;
    if body.is_empty() {
        return Ok(params);
    }
    if ctype.starts_with("application/json") {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(o)) => params.extend(o),
            Ok(_) => return Err("the JSON body is not an object".into()),
            Err(e) => return Err(format!("can't parse JSON body: {e}")),
        }
    } else {
        parse_form(&String::from_utf8_lossy(&body), &mut params);
    }
    Ok(params)
}

pub(super) async fn handle(
    State(api): State<Arc<BotApi>>,
    Path(path): Path<String>,
    req: Request,
) -> Response {
    let Some((token, method)) = path.strip_prefix("bot").and_then(|r| r.split_once('/')) else {
        return respond(
            StatusCode::NOT_FOUND,
            json!({"ok": false, "error_code": 404, "description": "Not Found"}),
        );
    };
    if token != api.token {
        return respond(
            StatusCode::UNAUTHORIZED,
            json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
        );
    }
    let method = method.trim_matches('/').to_ascii_lowercase();
    *api.lock().requests.entry(method.clone()).or_insert(0) += 1;
    let params = match read_params(req, &api).await {
        Ok(p) => p,
        Err(e) => {
            let (c, b) = fail(400, &format!("Bad Request: {e}"));
            return respond(c, b);
        }
    };

    if let Some(d) = api.faults.latency(&method) {
        tokio::time::sleep(d).await;
    }
    let fault = api.faults.take(&method, |k| {
        matches!(
            k,
            FaultKind::TooMany { .. }
                | FaultKind::Status { .. }
                | FaultKind::Hang { .. }
                | FaultKind::MalformedJson
        )
    });
    let (code, body) = match fault {
        Some(FaultKind::TooMany { retry_after }) => too_many(retry_after),
        Some(FaultKind::Status { code }) => fail(code, status_description(code)),
        Some(FaultKind::Hang { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            fail(504, "Gateway Timeout")
        }
        Some(FaultKind::MalformedJson) => {
            let mut record_params = Value::Object(params);
            // Nothing was done: recorded so that tests can tell it from a delivery.
            record_params["malformed_answer"] = Value::Bool(true);
            api.lock().calls.push(Call {
                method,
                params: record_params,
                status: 200,
                at_ms: api.started.elapsed().as_millis() as u64,
                unix_ms: unix_ms(),
            });
            return Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{\"ok\": tru"))
                .unwrap_or_default();
        }
        _ => api.call(&method, params.clone()).await,
    };
    if method != "getupdates" || code != StatusCode::OK {
        api.lock().calls.push(Call {
            method,
            params: Value::Object(params),
            status: code.as_u16(),
            at_ms: api.started.elapsed().as_millis() as u64,
            unix_ms: unix_ms(),
        });
    }
    respond(code, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_are_percent_decoded() {
        let mut m = Map::new();
        parse_form("chat_id=5&text=hello+w%C3%B6rld%21", &mut m);
        assert_eq!(m["text"], "hello wörld!");
        assert_eq!(param_i64(&m, "chat_id"), Some(5));
    }
}
