//! The Bot API over HTTP: `/bot{token}/{method}`, method names case-insensitive, parameters from
//! the query string, JSON, form or multipart bodies. Simulated users message the bot through
//! [`BotApi::user_message`]; everything the bot calls is recorded. Telegram's limits are
//! enforced: about 1 message per second per chat sustained, 30 per second overall, 20 per
//! minute per group, answered with 429 and `retry_after`.
//!
//! `methods.rs` answers each method; `http.rs` reads requests (query, JSON, form, multipart) and
//! applies faults.

pub mod html;
mod http;
mod methods;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::routing::any;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::faults::Faults;
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
    /// Groups upgraded to supergroups: old chat id → new.
    migrated: HashMap<i64, i64>,
    /// `getUpdates` calls so far: a waiting call whose number is no longer the last was
    /// overtaken by another poller.
    polls: u64,
}

pub struct BotApi {
    pub token: String,
    pub limits: bool,
    faults: Arc<Faults>,
    inner: Mutex<Inner>,
    updates: Notify,
    started: Instant,
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
                migrated: HashMap::new(),
                polls: 0,
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

    /// The group `from` is upgraded to the supergroup `to`: from now on a message to `from`
    /// is refused with `parameters.migrate_to_chat_id` = `to`
    /// (core.telegram.org/bots/api#responseparameters), as Telegram refuses it.
    pub fn migrate_group(&self, from: i64, to: i64) {
        self.lock().migrated.insert(from, to);
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

    /// The messages the bot has in `chat` (as sent or last edited), oldest first.
    pub fn bot_messages(&self, chat: i64) -> Vec<Value> {
        let inner = self.lock();
        let mut out: Vec<(i64, Value)> = inner
            .bot_messages
            .iter()
            .filter(|((c, _), _)| *c == chat)
            .map(|((_, id), m)| (*id, m.clone()))
            .collect();
        out.sort_by_key(|(id, _)| *id);
        out.into_iter().map(|(_, m)| m).collect()
    }

    /// A simulated user sends something to the bot. `kind` is `text` (default), `sticker`,
    /// `photo`, `callback` (with `data` and the bot message `message_id` it was pressed on) or
    /// `channel_post` (a post in channel `chat_id`, no sender, `sender_chat` = `user_id`).
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
            // A post in a channel the bot is in: no person sends it (no `from`); its
            // `sender_chat` carries `user_id`, so a test can make it claim any id.
            "channel_post" => {
                let message_id = Self::next_message_id(&mut inner, chat_id);
                json!({"update_id": update_id, "channel_post": {
                    "message_id": message_id,
                    "sender_chat": {"id": m.user_id, "type": "channel", "title": "Channel"},
                    "chat": {"id": chat_id, "type": "channel", "title": format!("Channel {chat_id}")},
                    "date": date,
                    "text": m.text.clone().unwrap_or_default(),
                }})
            }
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

    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/{*path}", any(http::handle))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_asks_to_wait() {
        let mut b = Bucket::new(3.0, 1.0);
        assert!(b.take().is_ok() && b.take().is_ok() && b.take().is_ok());
        assert_eq!(b.take(), Err(1));
    }
}
