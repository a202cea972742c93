//! Telegram's messages into store rows, keeping every field. Never panics on what Telegram
//! sends: what cannot be read is recorded in `convert_error` and the row is stored anyway, so
//! one odd post never freezes a channel's cursor.

use grammers_client::tl;
use grammers_client::tl::Serializable;
use serde_json::{Value, json};
use tl::enums;

use crate::store::MessageRow;

mod media;
mod text;

use media::media_json;
use text::{entities_json, fwd_text, reactions_json};

fn tl_name<T: Serializable>(v: &T) -> String {
    let bytes = v.to_bytes();
    let id = bytes
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0);
    tl::name_for_id(id).to_string()
}

/// JSON text of a value built here. `serde_json::to_string` writes into one buffer; `Value`'s
/// `Display` goes through a `fmt::Formatter` a token at a time, which was half the cost of
/// converting a page.
fn json_text(v: &Value) -> String {
    // Cannot fail: every map built here has string keys.
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

fn action_json(a: &enums::MessageAction) -> Value {
    use enums::MessageAction as A;
    match a {
        A::ChannelCreate(x) => json!({"type": "channel_create", "title": x.title}),
        A::ChatEditTitle(x) => json!({"type": "edit_title", "title": x.title}),
        A::PinMessage => json!({"type": "pin_message"}),
        A::ChatEditPhoto(_) => json!({"type": "edit_photo"}),
        A::ChatDeletePhoto => json!({"type": "delete_photo"}),
        A::HistoryClear => json!({"type": "history_clear"}),
        other => json!({"type": tl_name(other)}),
    }
}

/// Converts one message. `None` for `messageEmpty` (an id with nothing behind it).
/// A sender as the store keeps it: a user id; a chat or channel as its Bot API id (`-<id>`,
/// `-100<id>`).
fn sender_id(p: &enums::Peer) -> i64 {
    match p {
        enums::Peer::User(u) => u.user_id,
        enums::Peer::Chat(c) => -c.chat_id,
        enums::Peer::Channel(c) => -1_000_000_000_000 - c.channel_id,
    }
}

/// The users of an answer or update (the senders of its messages), for the `users` table.
pub fn user_rows(users: &[enums::User]) -> Vec<crate::store::UserRow> {
    users
        .iter()
        .filter_map(|u| match u {
            enums::User::User(u) => Some(crate::store::UserRow {
                id: u.id,
                first_name: u.first_name.clone(),
                last_name: u.last_name.clone(),
                username: u.username.clone(),
            }),
            enums::User::Empty(_) => None,
        })
        .collect()
}

pub fn message_row(m: &enums::Message) -> Option<MessageRow> {
    match m {
        enums::Message::Empty(_) => None,
        enums::Message::Message(m) => {
            let (reply_to_msg_id, reply_to_top_id) = match &m.reply_to {
                Some(enums::MessageReplyHeader::Header(h)) => (
                    h.reply_to_msg_id.map(i64::from),
                    h.reply_to_top_id.map(i64::from),
                ),
                _ => (None, None),
            };
            let media = m.media.as_ref().and_then(media_json);
            Some(MessageRow {
                id: m.id,
                kind: "post",
                date: i64::from(m.date),
                edit_date: m.edit_date.map(i64::from),
                text: m.message.clone(),
                entities: m
                    .entities
                    .as_ref()
                    .filter(|e| !e.is_empty())
                    .map(|e| entities_json(e)),
                views: m.views.map(i64::from),
                forwards: m.forwards.map(i64::from),
                replies: m.replies.as_ref().map(|r| {
                    let enums::MessageReplies::Replies(r) = r;
                    i64::from(r.replies)
                }),
                reactions: m.reactions.as_ref().map(|r| {
                    let enums::MessageReactions::Reactions(r) = r;
                    reactions_json(&r.results)
                }),
                grouped_id: m.grouped_id,
                reply_to_msg_id,
                reply_to_top_id,
                fwd_from: m.fwd_from.as_ref().map(fwd_text),
                post_author: m.post_author.clone(),
                pinned: m.pinned,
                silent: m.silent,
                noforwards: m.noforwards,
                media_kind: media.as_ref().map(|(k, _)| *k),
                media: media.map(|(_, v)| v),
                action: None,
                convert_error: None,
                from_id: m.from_id.as_ref().map(sender_id),
            })
        }
        enums::Message::Service(s) => Some(MessageRow {
            id: s.id,
            kind: "service",
            date: i64::from(s.date),
            reply_to_msg_id: match &s.reply_to {
                Some(enums::MessageReplyHeader::Header(h)) => h.reply_to_msg_id.map(i64::from),
                _ => None,
            },
            silent: s.silent,
            action: Some(json_text(&action_json(&s.action))),
            from_id: s.from_id.as_ref().map(sender_id),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests;
