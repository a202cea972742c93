//! JSON text written straight from Telegram's types: objects with sorted keys (`Obj`), forward
//! headers, entities and reactions. Each writer gives the text the `serde_json::Value` route
//! gives (tested), without building and dropping a tree per post.

use grammers_client::tl::enums;
use serde_json::{Value, json};

use super::{json_text, tl_name};

/// A value of an [`Obj`].
pub(super) enum Field<'a> {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(&'a str),
    String(String),
    Null,
    /// JSON text already written (a nested object or array).
    Json(String),
}

impl<'a> From<Option<&'a String>> for Field<'a> {
    fn from(s: Option<&'a String>) -> Self {
        s.map_or(Field::Null, |s| Field::Str(s))
    }
}

/// A JSON object written straight to text, keys in the order `serde_json::Value` (a sorted map)
/// writes them and a key set twice keeping its last value, as `v["key"] = ...` did: the text is
/// what the `Value` route gives (tested), so posts stored before and after compare equal. The
/// `Value` route built, wrote and dropped a map with an allocated key per field: about half of
/// converting a page of posts with media.
#[derive(Default)]
pub(super) struct Obj<'a> {
    fields: Vec<(&'static str, Field<'a>)>,
}

impl<'a> Obj<'a> {
    pub(super) fn set(&mut self, key: &'static str, value: Field<'a>) -> &mut Self {
        match self.fields.iter_mut().find(|(k, _)| *k == key) {
            Some(f) => f.1 = value,
            None => self.fields.push((key, value)),
        }
        self
    }

    pub(super) fn text(&mut self) -> String {
        self.fields.sort_by(|a, b| a.0.cmp(b.0));
        let mut out: Vec<u8> = Vec::with_capacity(2 + 24 * self.fields.len());
        out.push(b'{');
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // Keys are fixed ASCII words: nothing to escape.
            out.push(b'"');
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b"\":");
            // Writing into a Vec cannot fail; serde_json writes NaN and infinities as null, as
            // `Value` holds them.
            let _ = match v {
                Field::Int(n) => serde_json::to_writer(&mut out, n),
                Field::Float(x) => serde_json::to_writer(&mut out, x),
                Field::Bool(b) => serde_json::to_writer(&mut out, b),
                Field::Str(s) => serde_json::to_writer(&mut out, s),
                Field::String(s) => serde_json::to_writer(&mut out, s),
                Field::Null => {
                    out.extend_from_slice(b"null");
                    Ok(())
                }
                Field::Json(j) => {
                    out.extend_from_slice(j.as_bytes());
                    Ok(())
                }
            };
        }
        out.push(b'}');
        // Only JSON text went in, which is UTF-8.
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

pub(super) fn obj<'a, const N: usize>(fields: [(&'static str, Field<'a>); N]) -> Obj<'a> {
    Obj {
        fields: fields.into(),
    }
}

pub(super) fn peer_text(p: &enums::Peer) -> String {
    let (t, id) = match p {
        enums::Peer::User(u) => ("user", u.user_id),
        enums::Peer::Chat(c) => ("chat", c.chat_id),
        enums::Peer::Channel(c) => ("channel", c.channel_id),
    };
    obj([("type", Field::Str(t)), ("id", Field::Int(id))]).text()
}

pub(super) fn fwd_text(f: &enums::MessageFwdHeader) -> String {
    let enums::MessageFwdHeader::Header(f) = f;
    obj([
        (
            "from",
            f.from_id
                .as_ref()
                .map_or(Field::Null, |p| Field::Json(peer_text(p))),
        ),
        ("from_name", f.from_name.as_ref().into()),
        ("date", Field::Int(f.date.into())),
        (
            "channel_post",
            f.channel_post.map_or(Field::Null, |n| Field::Int(n.into())),
        ),
        ("post_author", f.post_author.as_ref().into()),
    ])
    .text()
}

/// An entity that is only a type and a range, as (type, offset, length): most entities.
pub(super) fn plain_entity(e: &enums::MessageEntity) -> Option<(&'static str, i32, i32)> {
    use enums::MessageEntity as E;
    Some(match e {
        E::Mention(x) => ("mention", x.offset, x.length),
        E::Hashtag(x) => ("hashtag", x.offset, x.length),
        E::BotCommand(x) => ("bot_command", x.offset, x.length),
        E::Url(x) => ("url", x.offset, x.length),
        E::Email(x) => ("email", x.offset, x.length),
        E::Bold(x) => ("bold", x.offset, x.length),
        E::Italic(x) => ("italic", x.offset, x.length),
        E::Code(x) => ("code", x.offset, x.length),
        E::Phone(x) => ("phone", x.offset, x.length),
        E::Cashtag(x) => ("cashtag", x.offset, x.length),
        E::Underline(x) => ("underline", x.offset, x.length),
        E::Strike(x) => ("strikethrough", x.offset, x.length),
        E::BankCard(x) => ("bank_card", x.offset, x.length),
        E::Spoiler(x) => ("spoiler", x.offset, x.length),
        _ => return None,
    })
}

/// The entities as a JSON array. Plain entities are written directly, in the same form (keys in
/// order) as the `Value` route gives the others.
pub(super) fn entities_json(list: &[enums::MessageEntity]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(2 + 48 * list.len());
    out.push('[');
    for (i, e) in list.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match plain_entity(e) {
            // The type names are fixed ASCII words: nothing to escape.
            Some((t, o, l)) => {
                let _ = write!(out, r#"{{"length":{l},"offset":{o},"type":"{t}"}}"#);
            }
            None => out.push_str(&json_text(&entity_json(e))),
        }
    }
    out.push(']');
    out
}

pub(super) fn entity_json(e: &enums::MessageEntity) -> Value {
    use enums::MessageEntity as E;
    if let Some((t, o, l)) = plain_entity(e) {
        return json!({"type": t, "offset": o, "length": l});
    }
    match e {
        E::Pre(x) => {
            json!({"type": "pre", "offset": x.offset, "length": x.length, "language": x.language})
        }
        E::TextUrl(x) => {
            json!({"type": "text_url", "offset": x.offset, "length": x.length, "url": x.url})
        }
        E::MentionName(x) => {
            json!({"type": "mention_name", "offset": x.offset, "length": x.length, "user_id": x.user_id})
        }
        E::CustomEmoji(x) => {
            json!({"type": "custom_emoji", "offset": x.offset, "length": x.length, "document_id": x.document_id})
        }
        E::Blockquote(x) => {
            json!({"type": "blockquote", "offset": x.offset, "length": x.length, "collapsed": x.collapsed})
        }
        other => json!({"type": tl_name(other)}),
    }
}

/// The reaction counts as a JSON array of `{"count": N, <what>}`, keys in order, written
/// directly (half the posts of a busy channel carry reactions).
pub(super) fn reactions_json(list: &[enums::ReactionCount]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(2 + 32 * list.len());
    out.push('[');
    for (i, r) in list.iter().enumerate() {
        let enums::ReactionCount::Count(c) = r;
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, r#"{{"count":{}"#, c.count);
        match &c.reaction {
            enums::Reaction::Emoji(e) => {
                out.push_str(r#","emoji":"#);
                out.push_str(&json_text(&Value::from(e.emoticon.as_str())));
            }
            enums::Reaction::CustomEmoji(e) => {
                let _ = write!(out, r#","custom_emoji_id":{}"#, e.document_id);
            }
            enums::Reaction::Paid => out.push_str(r#","paid":true"#),
            enums::Reaction::Empty => {}
        }
        out.push('}');
    }
    out.push(']');
    out
}
