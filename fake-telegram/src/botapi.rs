//! The Bot API over HTTP: `/bot{token}/{method}`, method names case-insensitive, parameters from
//! the query string, JSON, form or multipart bodies. Simulated users message the bot through
//! [`BotApi::user_message`]; everything the bot calls is recorded. Telegram's limits are
//! enforced: about 1 message per second per chat sustained, 30 per second overall, 20 per
//! minute per group, answered with 429 and `retry_after`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::any;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;

use crate::faults::{FaultKind, Faults};
use crate::world::unix_now;

pub const BOT_ID: i64 = 7_000_000_001;
pub const BOT_USERNAME: &str = "tgparser_fake_bot";

/// A call the bot made, as recorded for tests.
#[derive(Debug, Clone, Serialize)]
pub struct Call {
    pub method: String,
    pub params: Value,
    pub status: u16,
    /// Milliseconds since the server started.
    pub at_ms: u64,
    /// Wall clock (Unix milliseconds) when the call was answered, for latency measurements
    /// against timestamps the client recorded.
    pub unix_ms: i64,
}

/// A token bucket: `burst` tokens, refilled at `per_sec`.
#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    burst: f64,
    per_sec: f64,
    at: Instant,
}

impl Bucket {
    fn new(burst: f64, per_sec: f64) -> Bucket {
        Bucket {
            tokens: burst,
            burst,
            per_sec,
            at: Instant::now(),
        }
    }

    /// Takes a token, or says how many seconds until one is there.
    fn take(&mut self) -> Result<(), u32> {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.per_sec)
            .min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - self.tokens) / self.per_sec).ceil().max(1.0) as u32)
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimUser {
    pub id: i64,
    pub first_name: String,
    pub username: Option<String>,
    /// The user blocked the bot: sending to them answers 403.
    #[serde(default)]
    pub blocked: bool,
}

struct Inner {
    pending: VecDeque<Value>,
    next_update_id: i64,
    next_message_id: HashMap<i64, i64>,
    /// Messages the bot sent, by (chat, message id): text, for edits.
    bot_messages: HashMap<(i64, i64), Value>,
    calls: Vec<Call>,
    users: HashMap<i64, SimUser>,
    per_chat: HashMap<i64, Bucket>,
    global: Bucket,
    commands: Value,
    requests: HashMap<String, u64>,
    too_many: u64,
}

pub struct BotApi {
    pub token: String,
    pub limits: bool,
    faults: Arc<Faults>,
    inner: Mutex<Inner>,
    updates: Notify,
    started: Instant,
}

fn ok(result: Value) -> (StatusCode, Value) {
    (StatusCode::OK, json!({"ok": true, "result": result}))
}

/// The description the Bot API gives with an HTTP status (what clients match on).
fn status_description(code: u16) -> &'static str {
    match code {
        // Another getUpdates poller for the same token (core.telegram.org/bots/api#getupdates).
        409 => {
            "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
        }
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Internal Server Error",
    }
}

fn fail(code: u16, description: &str) -> (StatusCode, Value) {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
        json!({"ok": false, "error_code": code, "description": description}),
    )
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// 429 with `parameters.retry_after`, as Telegram answers it.
fn too_many(retry_after: u32) -> (StatusCode, Value) {
    let (code, mut body) = fail(
        429,
        &format!("Too Many Requests: retry after {retry_after}"),
    );
    body["parameters"] = json!({"retry_after": retry_after});
    (code, body)
}

fn param_i64(p: &Map<String, Value>, k: &str) -> Option<i64> {
    match p.get(k)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn param_str<'a>(p: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    p.get(k).and_then(Value::as_str)
}

/// Form and multipart values arrive as strings; JSON-typed ones (reply_markup) are parsed.
fn json_param(p: &Map<String, Value>, k: &str) -> Option<Value> {
    match p.get(k)? {
        Value::String(s) => serde_json::from_str(s).ok(),
        v => Some(v.clone()),
    }
}

fn percent_decode(s: &str) -> String {
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

fn parse_form(s: &str, into: &mut Map<String, Value>) {
    for pair in s.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        into.insert(percent_decode(k), Value::String(percent_decode(v)));
    }
}

impl BotApi {
    pub fn new(token: String, faults: Arc<Faults>, limits: bool) -> Arc<BotApi> {
        Arc::new(BotApi {
            token,
            limits,
            faults,
            inner: Mutex::new(Inner {
                pending: VecDeque::new(),
                next_update_id: 100_000,
                next_message_id: HashMap::new(),
                bot_messages: HashMap::new(),
                calls: Vec::new(),
                users: HashMap::new(),
                per_chat: HashMap::new(),
                global: Bucket::new(30.0, 30.0),
                commands: json!([]),
                requests: HashMap::new(),
                too_many: 0,
            }),
            updates: Notify::new(),
            started: Instant::now(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn bot_user() -> Value {
        json!({"id": BOT_ID, "is_bot": true, "first_name": "tgparser fake bot", "username": BOT_USERNAME})
    }

    pub fn set_user(&self, u: SimUser) {
        self.lock().users.insert(u.id, u);
    }

    fn user_json(u: &SimUser) -> Value {
        let mut v =
            json!({"id": u.id, "is_bot": false, "first_name": u.first_name, "language_code": "en"});
        if let Some(n) = &u.username {
            v["username"] = json!(n);
        }
        v
    }

    fn chat_json(chat_id: i64, u: Option<&SimUser>) -> Value {
        if chat_id < 0 {
            json!({"id": chat_id, "type": "supergroup", "title": format!("Group {chat_id}")})
        } else {
            let mut v = json!({"id": chat_id, "type": "private", "first_name": u.map(|u| u.first_name.clone()).unwrap_or_else(|| "User".into())});
            if let Some(n) = u.and_then(|u| u.username.clone()) {
                v["username"] = json!(n);
            }
            v
        }
    }

    fn next_message_id(inner: &mut Inner, chat_id: i64) -> i64 {
        let n = inner.next_message_id.entry(chat_id).or_insert(1);
        let id = *n;
        *n += 1;
        id
    }

    /// A simulated user sends something to the bot. `kind` is `text` (default), `sticker`,
    /// `photo` or `callback` (with `data` and the bot message `message_id` it was pressed on).
    pub fn user_message(&self, m: &UserMessage) -> Value {
        let mut inner = self.lock();
        let user = inner.users.entry(m.user_id).or_insert_with(|| SimUser {
            id: m.user_id,
            first_name: m
                .first_name
                .clone()
                .unwrap_or_else(|| format!("User{}", m.user_id)),
            username: m.username.clone(),
            blocked: false,
        });
        let user = user.clone();
        let chat_id = m.chat_id.unwrap_or(m.user_id);
        let update_id = inner.next_update_id;
        inner.next_update_id += 1;
        let date = unix_now();
        let update = match m.kind.as_deref().unwrap_or("text") {
            "callback" => {
                let message = m
                    .message_id
                    .and_then(|id| inner.bot_messages.get(&(chat_id, id)).cloned())
                    .unwrap_or_else(|| json!({"message_id": m.message_id.unwrap_or(0), "date": date, "chat": Self::chat_json(chat_id, Some(&user)), "from": Self::bot_user(), "text": ""}));
                json!({"update_id": update_id, "callback_query": {
                    "id": format!("{update_id}"),
                    "from": Self::user_json(&user),
                    "message": message,
                    "chat_instance": format!("ci{chat_id}"),
                    "data": m.data.clone().unwrap_or_default(),
                }})
            }
            kind => {
                let message_id = Self::next_message_id(&mut inner, chat_id);
                let mut msg = json!({
                    "message_id": message_id,
                    "from": Self::user_json(&user),
                    "chat": Self::chat_json(chat_id, Some(&user)),
                    "date": date,
                });
                match kind {
                    "sticker" => {
                        msg["sticker"] = json!({"file_id": "CAAC-sticker", "file_unique_id": "st1", "type": "regular", "width": 512, "height": 512, "is_animated": false, "is_video": false, "emoji": "😀"});
                    }
                    "photo" => {
                        msg["photo"] = json!([{"file_id": "AgAC-photo", "file_unique_id": "ph1", "width": 800, "height": 600, "file_size": 51234}]);
                        if let Some(t) = &m.text {
                            msg["caption"] = json!(t);
                        }
                    }
                    _ => {
                        let text = m.text.clone().unwrap_or_default();
                        if text.starts_with('/') {
                            let cmd_len = text
                                .split_whitespace()
                                .next()
                                .map(|c| c.encode_utf16().count())
                                .unwrap_or(0);
                            msg["entities"] =
                                json!([{"type": "bot_command", "offset": 0, "length": cmd_len}]);
                        }
                        msg["text"] = json!(text);
                    }
                }
                json!({"update_id": update_id, "message": msg})
            }
        };
        inner.pending.push_back(update.clone());
        drop(inner);
        self.updates.notify_waiters();
        update
    }

    /// Everything the bot called (with `all`), or only what it sent and changed.
    pub fn calls(&self, all: bool) -> Vec<Call> {
        let inner = self.lock();
        inner
            .calls
            .iter()
            .filter(|c| {
                all || !matches!(
                    c.method.as_str(),
                    "getupdates" | "getme" | "getwebhookinfo" | "deletewebhook"
                )
            })
            .cloned()
            .collect()
    }

    pub fn stats(&self) -> Value {
        let inner = self.lock();
        json!({"requests": inner.requests, "too_many_requests": inner.too_many, "pending_updates": inner.pending.len()})
    }

    fn rate_limit(&self, inner: &mut Inner, chat_id: i64) -> Result<(), u32> {
        if !self.limits {
            return Ok(());
        }
        let bucket = inner.per_chat.entry(chat_id).or_insert_with(|| {
            if chat_id < 0 {
                Bucket::new(20.0, 20.0 / 60.0)
            } else {
                Bucket::new(3.0, 1.0)
            }
        });
        // Check the chat first without spending the global token when the chat is over.
        bucket.take()?;
        inner.global.take()
    }

    async fn call(&self, method: &str, p: Map<String, Value>) -> (StatusCode, Value) {
        match method {
            "getme" => {
                let mut me = Self::bot_user();
                me["can_join_groups"] = json!(true);
                me["can_read_all_group_messages"] = json!(false);
                me["supports_inline_queries"] = json!(false);
                me["can_connect_to_business"] = json!(false);
                me["has_main_web_app"] = json!(false);
                ok(me)
            }
            "getwebhookinfo" => ok(
                json!({"url": "", "has_custom_certificate": false, "pending_update_count": self.lock().pending.len()}),
            ),
            "deletewebhook" | "setwebhook" | "close" | "logout" => ok(json!(true)),
            "getupdates" => {
                let offset = param_i64(&p, "offset").unwrap_or(0);
                let limit = param_i64(&p, "limit").unwrap_or(100).clamp(1, 100) as usize;
                let timeout = param_i64(&p, "timeout").unwrap_or(0).clamp(0, 50) as u64;
                let deadline = Instant::now() + Duration::from_secs(timeout);
                loop {
                    let notified = self.updates.notified();
                    {
                        let mut inner = self.lock();
                        if offset != 0 {
                            while inner
                                .pending
                                .front()
                                .is_some_and(|u| u["update_id"].as_i64().unwrap_or(0) < offset)
                            {
                                inner.pending.pop_front();
                            }
                        }
                        if !inner.pending.is_empty() || Instant::now() >= deadline {
                            let batch: Vec<Value> =
                                inner.pending.iter().take(limit).cloned().collect();
                            return ok(Value::Array(batch));
                        }
                    }
                    let _ = tokio::time::timeout(
                        deadline.saturating_duration_since(Instant::now()),
                        notified,
                    )
                    .await;
                }
            }
            "sendmessage" | "senddocument" | "sendphoto" => {
                let Some(chat_id) = param_i64(&p, "chat_id") else {
                    return fail(400, "Bad Request: chat_id is empty");
                };
                // A photo must be an image Telegram can read (PNG, JPEG, WebP here).
                if method == "sendphoto" {
                    let head = p
                        .get("photo")
                        .and_then(|f| f["head_hex"].as_str())
                        .unwrap_or_default();
                    let image = head.starts_with("89504e470d0a1a0a")
                        || head.starts_with("ffd8ff")
                        || (head.starts_with("52494646") && head.get(16..24) == Some("57454250"));
                    if !image {
                        return fail(400, "Bad Request: IMAGE_PROCESS_FAILED");
                    }
                }
                let text = if method == "sendmessage" {
                    match param_str(&p, "text") {
                        Some(t) if !t.is_empty() => Some(t.to_string()),
                        _ => return fail(400, "Bad Request: message text is empty"),
                    }
                } else {
                    None
                };
                if text
                    .as_ref()
                    .is_some_and(|t| t.encode_utf16().count() > 4096)
                {
                    return fail(400, "Bad Request: message is too long");
                }
                let mut inner = self.lock();
                let user = inner.users.get(&chat_id).cloned();
                if chat_id > 0 && user.is_none() {
                    return fail(400, "Bad Request: chat not found");
                }
                if user.as_ref().is_some_and(|u| u.blocked) {
                    return fail(403, "Forbidden: bot was blocked by the user");
                }
                if let Err(retry_after) = self.rate_limit(&mut inner, chat_id) {
                    inner.too_many += 1;
                    return too_many(retry_after);
                }
                let message_id = Self::next_message_id(&mut inner, chat_id);
                let mut msg = json!({
                    "message_id": message_id,
                    "from": Self::bot_user(),
                    "chat": Self::chat_json(chat_id, user.as_ref()),
                    "date": unix_now(),
                });
                if let Some(t) = text {
                    msg["text"] = json!(t);
                }
                if let Some(c) = param_str(&p, "caption") {
                    msg["caption"] = json!(c);
                }
                if let Some(doc) = p.get("document") {
                    msg["document"] = json!({
                        "file_id": format!("BQAC-doc-{message_id}"),
                        "file_unique_id": format!("doc{message_id}"),
                        "file_name": doc["file_name"].clone(),
                        "mime_type": doc["mime_type"].clone(),
                        "file_size": doc["file_size"].clone(),
                    });
                }
                if p.get("photo").is_some() {
                    msg["photo"] = json!([{
                        "file_id": format!("AgAC-photo-{message_id}"),
                        "file_unique_id": format!("photo{message_id}"),
                        "width": 320,
                        "height": 320,
                        "file_size": p["photo"]["file_size"].clone(),
                    }]);
                }
                if let Some(markup) = json_param(&p, "reply_markup") {
                    msg["reply_markup"] = markup;
                }
                inner
                    .bot_messages
                    .insert((chat_id, message_id), msg.clone());
                ok(msg)
            }
            "editmessagetext" => {
                let (Some(chat_id), Some(message_id)) =
                    (param_i64(&p, "chat_id"), param_i64(&p, "message_id"))
                else {
                    return fail(400, "Bad Request: message identifier is not specified");
                };
                let Some(text) = param_str(&p, "text").filter(|t| !t.is_empty()) else {
                    return fail(400, "Bad Request: message text is empty");
                };
                let mut inner = self.lock();
                if let Err(retry_after) = self.rate_limit(&mut inner, chat_id) {
                    inner.too_many += 1;
                    return too_many(retry_after);
                }
                let markup = json_param(&p, "reply_markup");
                let Some(msg) = inner.bot_messages.get_mut(&(chat_id, message_id)) else {
                    return fail(400, "Bad Request: message to edit not found");
                };
                if msg["text"] == json!(text)
                    && markup.as_ref().is_none_or(|m| msg["reply_markup"] == *m)
                {
                    return fail(
                        400,
                        "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
                    );
                }
                msg["text"] = json!(text);
                msg["edit_date"] = json!(unix_now());
                match markup {
                    Some(m) => msg["reply_markup"] = m,
                    None => {
                        if let Some(o) = msg.as_object_mut() {
                            o.remove("reply_markup");
                        }
                    }
                }
                ok(msg.clone())
            }
            "deletemessage" => {
                let (Some(chat_id), Some(message_id)) =
                    (param_i64(&p, "chat_id"), param_i64(&p, "message_id"))
                else {
                    return fail(400, "Bad Request: message identifier is not specified");
                };
                let mut inner = self.lock();
                let known = inner.bot_messages.remove(&(chat_id, message_id)).is_some()
                    || inner
                        .next_message_id
                        .get(&chat_id)
                        .is_some_and(|n| message_id < *n);
                if known {
                    ok(json!(true))
                } else {
                    fail(400, "Bad Request: message to delete not found")
                }
            }
            "answercallbackquery" => match param_str(&p, "callback_query_id") {
                Some(_) => ok(json!(true)),
                None => fail(
                    400,
                    "Bad Request: query is too old and response timeout expired or query ID is invalid",
                ),
            },
            "setmycommands" => {
                let cmds = json_param(&p, "commands").unwrap_or(json!([]));
                self.lock().commands = cmds;
                ok(json!(true))
            }
            "deletemycommands" => {
                self.lock().commands = json!([]);
                ok(json!(true))
            }
            "getmycommands" => ok(self.lock().commands.clone()),
            _ => fail(404, "Not Found: method not found"),
        }
    }

    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/{*path}", any(handle))
            .with_state(self.clone())
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserMessage {
    pub user_id: i64,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub chat_id: Option<i64>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub data: Option<String>,
    #[serde(default)]
    pub message_id: Option<i64>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
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

async fn handle(
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
    fn bucket_allows_a_burst_then_asks_to_wait() {
        let mut b = Bucket::new(3.0, 1.0);
        assert!(b.take().is_ok() && b.take().is_ok() && b.take().is_ok());
        assert_eq!(b.take(), Err(1));
    }

    #[test]
    fn form_bodies_are_percent_decoded() {
        let mut m = Map::new();
        parse_form("chat_id=5&text=hello+w%C3%B6rld%21", &mut m);
        assert_eq!(m["text"], "hello wörld!");
        assert_eq!(param_i64(&m, "chat_id"), Some(5));
    }
}
