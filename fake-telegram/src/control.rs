//! The control API (HTTP + JSON): tests and demos script the world through it.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /posts` | `{channel, text, from?: {id, first_name, last_name?, username?}}` (`from`: the sender, in a supergroup) | `{id}` |
//! | `POST /edits` | `{channel, id, text}` | `{ok}` |
//! | `POST /deletes` | `{channel, ids}` | `{ok}` |
//! | `POST /gap` | `{channel, count}` | `{ids}` (posted without being pushed) |
//! | `POST /private` | `{channel, private}` | `{ok}` (private: the username goes; only members read it) |
//! | `POST /channels` | `{channel, private?, deleted?, busy?, join_requests?, megagroup?, comments?, username?, title?, ban?, unban?, approve?, decline?}` (accounts by phone or user id; `busy`: pushes unreliable; a title change posts its service message) | `{id}` |
//! | `GET /accounts/{phone or id}/channels` | | `{channels: [{id, username, title, state}]}` (`member` or `requested`) |
//! | `POST /comments` | `{channel, post, text, from: {id, first_name, ...}}` (the channel needs `comments: true`) | `{id}` (in the discussion group) |
//! | `POST /invites` | `{channel, request_needed?, expires_in?}` or `{channel, revoke: hash}` | `{hash, link}` (`https://t.me/+HASH`) |
//! | `POST /pushes` | `{mode?, reliable_up_to?, max_channels?, free_joins?}` (`mode`: `members`, `none`, `all`) | the settings now |
//! | `POST /revoke` | `{phone?}` | `{revoked}` (a ban: no new login) |
//! | `POST /terminate` | `{phone?}` | `{terminated}` (sessions ended; logging in again works) |
//! | `POST /qr/accept` | `{token, phone}` (`token`: the base64url token or the whole `tg://login?token=` URL) | `{ok}` (the phone accepts a QR login) |
//! | `POST /sessions/forget` | `{}` | `{forgotten}` (the server loses every MTProto session: the next message of each gets `new_session_created`; pushes meanwhile are lost) |
//! | `POST /accounts` | `{phone, first_name?, code?, password?, dc?, delivery?, email?, frozen?, unoccupied?, banned?}` | `{user_id}` (created or changed) |
//! | `POST /bot/updates` | `{user_id, text?, kind?, data?, message_id?, chat_id?}` | the update |
//! | `POST /bot/users` | `{id, first_name, username?, blocked?}` | `{ok}` |
//! | `GET /bot/sent[?all=1]` | | what the bot called |
//! | `POST /faults` | a fault, or `{clear: true}` | `{faults}` |
//! | `POST /quotas` | `{mode}` | `{ok}` |
//! | `GET /stats` | | requests per method, flood waits, bans |
//! | `GET /info` | | the start-up JSON line |
//!
//! Channels are named by username (with or without `@`) or numeric id.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::botapi::{BotApi, SimUser, UserMessage};
use crate::faults::Fault;
use crate::flood::QuotaMode;
use crate::{Info, mtproto::Shared};

#[derive(Clone)]
pub struct Control {
    pub shared: Arc<Shared>,
    pub bot: Arc<BotApi>,
    pub info: Info,
}

type Answer = (StatusCode, Json<Value>);

fn bad(msg: impl Into<String>) -> Answer {
    (StatusCode::BAD_REQUEST, Json(json!({"error": msg.into()})))
}

#[derive(Deserialize)]
struct PostReq {
    channel: String,
    text: String,
    /// The sender, in a supergroup.
    #[serde(default)]
    from: Option<crate::world::Sender>,
}

#[derive(Deserialize)]
struct EditReq {
    channel: String,
    id: i32,
    text: String,
}

#[derive(Deserialize)]
struct DeleteReq {
    channel: String,
    ids: Vec<i32>,
}

#[derive(Deserialize)]
struct GapReq {
    channel: String,
    count: usize,
}

#[derive(Deserialize)]
struct PrivateReq {
    channel: String,
    #[serde(default = "yes")]
    private: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct RevokeReq {
    #[serde(default)]
    phone: Option<String>,
}

#[derive(Deserialize)]
struct QuotaReq {
    mode: QuotaMode,
}

#[derive(Deserialize)]
struct SentQuery {
    #[serde(default)]
    all: Option<String>,
}

impl Control {
    fn channel(&self, key: &str) -> Result<i64, Answer> {
        self.shared
            .world
            .channel_id(key)
            .ok_or_else(|| bad(format!("no channel {key:?}")))
    }

    pub fn router(self) -> Router {
        Router::new()
            .route("/posts", post(posts))
            .route("/edits", post(edits))
            .route("/deletes", post(deletes))
            .route("/gap", post(gap))
            .route("/private", post(private))
            .route("/channels", post(channels))
            .route("/accounts/{key}/channels", get(account_channels))
            .route("/pushes", post(pushes))
            .route("/invites", post(invites))
            .route("/comments", post(comments))
            .route("/revoke", post(revoke))
            .route("/terminate", post(terminate))
            .route("/accounts", post(accounts))
            .route("/qr/accept", post(qr_accept))
            .route("/sessions/forget", post(sessions_forget))
            .route("/bot/updates", post(bot_updates))
            .route("/bot/users", post(bot_users))
            .route("/bot/sent", get(bot_sent))
            .route("/faults", post(faults))
            .route("/quotas", post(quotas))
            .route("/stats", get(stats))
            .route("/info", get(info))
            .with_state(self)
    }
}

async fn posts(State(c): State<Control>, Json(r): Json<PostReq>) -> Answer {
    let ch = match c.channel(&r.channel) {
        Ok(ch) => ch,
        Err(e) => return e,
    };
    let id = match &r.from {
        Some(from) => c.shared.world.post_from(ch, from, &r.text),
        None => c.shared.world.post(ch, &r.text),
    };
    match id {
        Some(id) => (StatusCode::OK, Json(json!({"id": id}))),
        None => bad("no such channel"),
    }
}

async fn edits(State(c): State<Control>, Json(r): Json<EditReq>) -> Answer {
    let ch = match c.channel(&r.channel) {
        Ok(ch) => ch,
        Err(e) => return e,
    };
    match c.shared.world.edit(ch, r.id, &r.text) {
        Ok(()) => (StatusCode::OK, Json(json!({"ok": true}))),
        Err(e) => bad(e),
    }
}

async fn deletes(State(c): State<Control>, Json(r): Json<DeleteReq>) -> Answer {
    let ch = match c.channel(&r.channel) {
        Ok(ch) => ch,
        Err(e) => return e,
    };
    match c.shared.world.delete(ch, &r.ids) {
        Ok(()) => (StatusCode::OK, Json(json!({"ok": true}))),
        Err(e) => bad(e),
    }
}

async fn gap(State(c): State<Control>, Json(r): Json<GapReq>) -> Answer {
    let ch = match c.channel(&r.channel) {
        Ok(ch) => ch,
        Err(e) => return e,
    };
    match c.shared.world.open_gap(ch, r.count) {
        Ok(ids) => (StatusCode::OK, Json(json!({"ids": ids}))),
        Err(e) => bad(e),
    }
}

async fn private(State(c): State<Control>, Json(r): Json<PrivateReq>) -> Answer {
    let ch = match c.channel(&r.channel) {
        Ok(ch) => ch,
        Err(e) => return e,
    };
    match c.shared.world.set_private(ch, r.private) {
        Ok(()) => (StatusCode::OK, Json(json!({"ok": true}))),
        Err(e) => bad(e),
    }
}

async fn channels(State(c): State<Control>, Json(r): Json<crate::world::ChannelChange>) -> Answer {
    match c.shared.world.change_channel(&r) {
        Ok(id) => (StatusCode::OK, Json(json!({"id": id}))),
        Err(e) => bad(e),
    }
}

async fn account_channels(State(c): State<Control>, Path(key): Path<String>) -> Answer {
    let Some(user) = c.shared.world.account_id(&key) else {
        return bad(format!("no account {key:?}"));
    };
    let list: Vec<Value> = c
        .shared
        .world
        .joined(user)
        .into_iter()
        .map(|(id, username, title, state)| {
            json!({"id": id, "username": username, "title": title, "state": state})
        })
        .collect();
    (StatusCode::OK, Json(json!({"channels": list})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushesReq {
    mode: Option<crate::world::PushMode>,
    reliable_up_to: Option<usize>,
    max_channels: Option<usize>,
    free_joins: Option<usize>,
}

async fn pushes(State(c): State<Control>, Json(r): Json<PushesReq>) -> Answer {
    let mut w = c.shared.world.lock();
    if let Some(m) = r.mode {
        w.push_mode = m;
    }
    let l = &mut w.join_limits;
    if let Some(v) = r.reliable_up_to {
        l.reliable_up_to = v;
    }
    if let Some(v) = r.max_channels {
        l.max_channels = v;
    }
    if let Some(v) = r.free_joins {
        l.free_joins = v;
    }
    let body = json!({"mode": w.push_mode, "limits": w.join_limits});
    (StatusCode::OK, Json(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommentReq {
    channel: String,
    post: i32,
    text: String,
    from: crate::world::Sender,
}

async fn comments(State(c): State<Control>, Json(r): Json<CommentReq>) -> Answer {
    let ch = match c.channel(&r.channel) {
        Ok(ch) => ch,
        Err(e) => return e,
    };
    match c.shared.world.comment(ch, r.post, &r.from, &r.text) {
        Ok(id) => (StatusCode::OK, Json(json!({"id": id}))),
        Err(e) => bad(e),
    }
}

async fn invites(State(c): State<Control>, Json(r): Json<crate::world::InviteSpec>) -> Answer {
    match c.shared.world.invite(&r) {
        Ok(hash) => (
            StatusCode::OK,
            Json(json!({"hash": hash, "link": format!("https://t.me/+{hash}")})),
        ),
        Err(e) => bad(e),
    }
}

async fn revoke(State(c): State<Control>, Json(r): Json<RevokeReq>) -> Answer {
    let n = c.shared.world.revoke(r.phone.as_deref());
    (StatusCode::OK, Json(json!({"revoked": n})))
}

async fn terminate(State(c): State<Control>, Json(r): Json<RevokeReq>) -> Answer {
    let user = match r.phone.as_deref() {
        None => None,
        Some(phone) => {
            let found = c
                .shared
                .world
                .lock()
                .accounts
                .iter()
                .find(|a| a.phone == phone)
                .map(|a| a.user_id);
            match found {
                Some(id) => Some(id),
                None => return bad(format!("no account with phone {phone:?}")),
            }
        }
    };
    let n = c.shared.log_out_user(user);
    (StatusCode::OK, Json(json!({"terminated": n})))
}

async fn accounts(State(c): State<Control>, Json(spec): Json<crate::world::AccountSpec>) -> Answer {
    match c.shared.world.upsert_account(&spec) {
        Ok(id) => (StatusCode::OK, Json(json!({"user_id": id}))),
        Err(e) => bad(e),
    }
}

#[derive(Deserialize)]
struct QrAccept {
    token: String,
    phone: String,
}

async fn qr_accept(State(c): State<Control>, Json(r): Json<QrAccept>) -> Answer {
    use base64::Engine as _;
    let text = r.token.trim();
    let text = text.strip_prefix("tg://login?token=").unwrap_or(text);
    let Ok(token) =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim_end_matches('='))
    else {
        return bad("the token is not base64url");
    };
    match crate::mtproto::qr::accept(&c.shared, &token, &r.phone) {
        Ok(()) => (StatusCode::OK, Json(json!({"ok": true}))),
        Err(e) => bad(e),
    }
}

async fn sessions_forget(State(c): State<Control>) -> Answer {
    let n = c.shared.sessions.forget_all();
    (StatusCode::OK, Json(json!({"forgotten": n})))
}

async fn bot_updates(State(c): State<Control>, Json(m): Json<UserMessage>) -> Answer {
    (StatusCode::OK, Json(c.bot.user_message(&m)))
}

async fn bot_users(State(c): State<Control>, Json(u): Json<SimUser>) -> Answer {
    c.bot.set_user(u);
    (StatusCode::OK, Json(json!({"ok": true})))
}

async fn bot_sent(State(c): State<Control>, Query(q): Query<SentQuery>) -> Answer {
    let all = q.all.as_deref().is_some_and(|v| v == "1" || v == "true");
    (StatusCode::OK, Json(json!(c.bot.calls(all))))
}

async fn faults(State(c): State<Control>, Json(v): Json<Value>) -> Answer {
    if v.get("clear").and_then(Value::as_bool) == Some(true) {
        c.shared.faults.clear();
    } else {
        match serde_json::from_value::<Fault>(v) {
            Ok(f) => c.shared.faults.add(f),
            Err(e) => return bad(format!("not a fault: {e}")),
        }
    }
    (
        StatusCode::OK,
        Json(json!({"faults": c.shared.faults.list()})),
    )
}

async fn quotas(State(c): State<Control>, Json(r): Json<QuotaReq>) -> Answer {
    c.shared.flood.set_mode(r.mode);
    (StatusCode::OK, Json(json!({"ok": true})))
}

async fn stats(State(c): State<Control>) -> Answer {
    (
        StatusCode::OK,
        Json(json!({"mtproto": c.shared.world.stats(), "bot_api": c.bot.stats()})),
    )
}

async fn info(State(c): State<Control>) -> Answer {
    (StatusCode::OK, Json(json!(c.info)))
}
