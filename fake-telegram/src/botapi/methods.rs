//! The Bot API's methods, with Telegram's answers and refusals.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use crate::world::unix_now;

use super::BotApi;
use super::http::{json_param, param_i64, param_str};

pub(super) fn ok(result: Value) -> (StatusCode, Value) {
    (StatusCode::OK, json!({"ok": true, "result": result}))
}

/// The description the Bot API gives with an HTTP status (what clients match on).
pub(super) fn status_description(code: u16) -> &'static str {
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

/// A text or caption as Telegram shows it: with `parse_mode` HTML, its markup checked and
/// taken out (`html::visible`); otherwise as sent.
fn rendered(p: &Map<String, Value>, text: &str) -> Result<String, (StatusCode, Value)> {
    match param_str(p, "parse_mode") {
        Some(m) if m.eq_ignore_ascii_case("html") => super::html::visible(text)
            .map_err(|why| fail(400, &format!("Bad Request: can't parse entities: {why}"))),
        Some(m)
            if !m.is_empty()
                && !m.eq_ignore_ascii_case("markdownv2")
                && !m.eq_ignore_ascii_case("markdown") =>
        {
            Err(fail(
                400,
                &format!("Bad Request: unsupported parse_mode \"{m}\""),
            ))
        }
        _ => Ok(text.to_string()),
    }
}

pub(super) fn fail(code: u16, description: &str) -> (StatusCode, Value) {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
        json!({"ok": false, "error_code": code, "description": description}),
    )
}

pub(super) fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// 429 with `parameters.retry_after`, as Telegram answers it.
pub(super) fn too_many(retry_after: u32) -> (StatusCode, Value) {
    let (code, mut body) = fail(
        429,
        &format!("Too Many Requests: retry after {retry_after}"),
    );
    body["parameters"] = json!({"retry_after": retry_after});
    (code, body)
}

impl BotApi {
    pub(super) async fn call(&self, method: &str, p: Map<String, Value>) -> (StatusCode, Value) {
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
                // As Telegram: a new getUpdates ends the one waiting (two instances polling
                // one token take turns failing with 409; core.telegram.org/bots/api#getupdates).
                let me = {
                    let mut inner = self.lock();
                    inner.polls += 1;
                    inner.polls
                };
                self.updates.notify_waiters();
                loop {
                    let notified = self.updates.notified();
                    {
                        let mut inner = self.lock();
                        if inner.polls != me {
                            return fail(409, status_description(409));
                        }
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
                    match param_str(&p, "text").map(|t| rendered(&p, t)) {
                        Some(Ok(t)) if !t.trim().is_empty() => Some(t),
                        Some(Err(refused)) => return refused,
                        _ => return fail(400, "Bad Request: message text is empty"),
                    }
                } else {
                    None
                };
                // The visible text counts, not the markup (core.telegram.org/bots/api#sendmessage:
                // "1-4096 characters after entities parsing").
                if text
                    .as_ref()
                    .is_some_and(|t| t.encode_utf16().count() > 4096)
                {
                    return fail(400, "Bad Request: message is too long");
                }
                let caption = match param_str(&p, "caption").map(|c| rendered(&p, c)) {
                    Some(Err(refused)) => return refused,
                    Some(Ok(c)) if c.encode_utf16().count() > 1024 => {
                        return fail(400, "Bad Request: message caption is too long");
                    }
                    c => c.and_then(Result::ok),
                };
                let mut inner = self.lock();
                if let Some(to) = inner.migrated.get(&chat_id) {
                    let (code, mut body) = fail(
                        400,
                        "Bad Request: group chat was upgraded to a supergroup chat",
                    );
                    body["parameters"] = json!({"migrate_to_chat_id": to});
                    return (code, body);
                }
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
                if let Some(c) = caption {
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
                let text = match param_str(&p, "text").map(|t| rendered(&p, t)) {
                    Some(Ok(t)) if !t.trim().is_empty() => t,
                    Some(Err(refused)) => return refused,
                    _ => return fail(400, "Bad Request: message text is empty"),
                };
                if text.encode_utf16().count() > 4096 {
                    return fail(400, "Bad Request: message is too long");
                }
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
}
