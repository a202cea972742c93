//! Telegram's messages into store rows, keeping every field. Never panics on what Telegram
//! sends: what cannot be read is recorded in `convert_error` and the row is stored anyway, so
//! one odd post never freezes a channel's cursor.

use grammers_client::tl;
use grammers_client::tl::Serializable;
use serde_json::{Value, json};
use tl::enums;

use crate::store::MessageRow;

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

/// A value of an [`Obj`].
enum Field<'a> {
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
struct Obj<'a> {
    fields: Vec<(&'static str, Field<'a>)>,
}

impl<'a> Obj<'a> {
    fn set(&mut self, key: &'static str, value: Field<'a>) -> &mut Self {
        match self.fields.iter_mut().find(|(k, _)| *k == key) {
            Some(f) => f.1 = value,
            None => self.fields.push((key, value)),
        }
        self
    }

    fn text(&mut self) -> String {
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

fn obj<'a, const N: usize>(fields: [(&'static str, Field<'a>); N]) -> Obj<'a> {
    Obj {
        fields: fields.into(),
    }
}

fn peer_text(p: &enums::Peer) -> String {
    let (t, id) = match p {
        enums::Peer::User(u) => ("user", u.user_id),
        enums::Peer::Chat(c) => ("chat", c.chat_id),
        enums::Peer::Channel(c) => ("channel", c.channel_id),
    };
    obj([("type", Field::Str(t)), ("id", Field::Int(id))]).text()
}

fn fwd_text(f: &enums::MessageFwdHeader) -> String {
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

fn photo_text(ph: &tl::types::Photo, spoiler: bool) -> String {
    let mut sizes = String::with_capacity(2 + 48 * ph.sizes.len());
    sizes.push('[');
    for (i, s) in ph.sizes.iter().enumerate() {
        if i > 0 {
            sizes.push(',');
        }
        let mut o = match s {
            enums::PhotoSize::Size(x) => obj([
                ("type", Field::Str(&x.r#type)),
                ("w", Field::Int(x.w.into())),
                ("h", Field::Int(x.h.into())),
                ("size", Field::Int(x.size.into())),
            ]),
            enums::PhotoSize::Progressive(x) => obj([
                ("type", Field::Str(&x.r#type)),
                ("w", Field::Int(x.w.into())),
                ("h", Field::Int(x.h.into())),
                (
                    "size",
                    x.sizes
                        .iter()
                        .max()
                        .map_or(Field::Null, |n| Field::Int((*n).into())),
                ),
            ]),
            other => obj([("type", Field::String(tl_name(other)))]),
        };
        sizes.push_str(&o.text());
    }
    sizes.push(']');
    obj([
        ("id", Field::Int(ph.id)),
        ("date", Field::Int(ph.date.into())),
        ("dc_id", Field::Int(ph.dc_id.into())),
        ("sizes", Field::Json(sizes)),
        ("spoiler", Field::Bool(spoiler)),
    ])
    .text()
}

/// A document's kind and fields (without `spoiler`, which the media adds).
fn document_obj(d: &enums::Document) -> (&'static str, Obj<'_>) {
    let enums::Document::Document(doc) = d else {
        return ("document", obj([("empty", Field::Bool(true))]));
    };
    let mut kind = "document";
    let mut v = obj([
        ("id", Field::Int(doc.id)),
        ("mime_type", Field::Str(&doc.mime_type)),
        ("size", Field::Int(doc.size)),
        ("dc_id", Field::Int(doc.dc_id.into())),
        ("date", Field::Int(doc.date.into())),
    ]);
    for a in &doc.attributes {
        match a {
            enums::DocumentAttribute::Filename(f) => {
                v.set("file_name", Field::Str(&f.file_name));
            }
            enums::DocumentAttribute::Video(x) => {
                kind = if x.round_message {
                    "video_note"
                } else {
                    "video"
                };
                v.set("duration", Field::Float(x.duration))
                    .set("w", Field::Int(x.w.into()))
                    .set("h", Field::Int(x.h.into()));
            }
            enums::DocumentAttribute::Audio(x) => {
                kind = if x.voice { "voice" } else { "audio" };
                v.set("duration", Field::Int(x.duration.into()));
                if let Some(t) = &x.title {
                    v.set("title", Field::Str(t));
                }
                if let Some(p) = &x.performer {
                    v.set("performer", Field::Str(p));
                }
            }
            enums::DocumentAttribute::Sticker(_) => kind = "sticker",
            enums::DocumentAttribute::Animated => kind = "animation",
            enums::DocumentAttribute::ImageSize(x) => {
                v.set("w", Field::Int(x.w.into()))
                    .set("h", Field::Int(x.h.into()));
            }
            _ => {}
        }
    }
    (kind, v)
}

/// An entity that is only a type and a range, as (type, offset, length): most entities.
fn plain_entity(e: &enums::MessageEntity) -> Option<(&'static str, i32, i32)> {
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
fn entities_json(list: &[enums::MessageEntity]) -> String {
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

fn entity_json(e: &enums::MessageEntity) -> Value {
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
fn reactions_json(list: &[enums::ReactionCount]) -> String {
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

/// The media's kind and its fields as JSON text.
fn media_json(m: &enums::MessageMedia) -> Option<(&'static str, String)> {
    use enums::MessageMedia as M;
    let value = |kind, v: Value| (kind, json_text(&v));
    Some(match m {
        M::Empty => return None,
        M::Photo(p) => match &p.photo {
            Some(enums::Photo::Photo(ph)) => ("photo", photo_text(ph, p.spoiler)),
            _ => value("photo", json!({"empty": true})),
        },
        M::Document(d) => match &d.document {
            Some(doc) => {
                let (kind, mut v) = document_obj(doc);
                v.set("spoiler", Field::Bool(d.spoiler));
                (
                    if d.voice {
                        "voice"
                    } else if d.round {
                        "video_note"
                    } else {
                        kind
                    },
                    v.text(),
                )
            }
            None => value("document", json!({"empty": true})),
        },
        other => {
            let (kind, v) = rare_media_json(other);
            value(kind, v)
        }
    })
}

/// The media kinds posts rarely carry, through `Value`.
fn rare_media_json(m: &enums::MessageMedia) -> (&'static str, Value) {
    use enums::MessageMedia as M;
    match m {
        M::WebPage(w) => (
            "webpage",
            match &w.webpage {
                enums::WebPage::Page(p) => {
                    json!({"url": p.url, "site_name": p.site_name, "title": p.title})
                }
                other => json!({"type": tl_name(other)}),
            },
        ),
        M::Geo(_) | M::GeoLive(_) => ("geo", json!({})),
        M::Venue(v) => ("venue", json!({"title": v.title, "address": v.address})),
        M::Contact(c) => (
            "contact",
            json!({"first_name": c.first_name, "last_name": c.last_name, "user_id": c.user_id}),
        ),
        M::Poll(_) => ("poll", json!({})),
        M::Dice(d) => ("dice", json!({"emoticon": d.emoticon, "value": d.value})),
        M::Game(_) => ("game", json!({})),
        M::Invoice(i) => (
            "invoice",
            json!({"title": i.title, "currency": i.currency, "total_amount": i.total_amount}),
        ),
        M::Story(_) => ("story", json!({})),
        M::Giveaway(_) | M::GiveawayResults(_) => ("giveaway", json!({})),
        M::PaidMedia(p) => ("paid", json!({"stars_amount": p.stars_amount})),
        other => ("unsupported", json!({"type": tl_name(other)})),
    }
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
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tl::types;

    /// The direct writers give what the `Value` route gives (same keys, same order), so posts
    /// stored before and after them compare equal as text.
    #[test]
    fn directly_written_entities_match_the_value_route() {
        use enums::MessageEntity as E;
        // A plain entity of each kind, at offset 3, 17 code units long.
        macro_rules! plain {
            ($variant:ident, $ty:ident) => {
                E::$variant(types::$ty {
                    offset: 3,
                    length: 17,
                })
            };
        }
        let list = vec![
            plain!(Mention, MessageEntityMention),
            plain!(Hashtag, MessageEntityHashtag),
            plain!(BotCommand, MessageEntityBotCommand),
            plain!(Url, MessageEntityUrl),
            plain!(Email, MessageEntityEmail),
            plain!(Italic, MessageEntityItalic),
            plain!(Code, MessageEntityCode),
            plain!(Phone, MessageEntityPhone),
            plain!(Cashtag, MessageEntityCashtag),
            plain!(Underline, MessageEntityUnderline),
            plain!(Strike, MessageEntityStrike),
            plain!(BankCard, MessageEntityBankCard),
            // Extremes are written as they come.
            E::Bold(types::MessageEntityBold {
                offset: 0,
                length: 2_000_000_000,
            }),
            E::Spoiler(types::MessageEntitySpoiler {
                offset: -1,
                length: -5,
            }),
            E::TextUrl(types::MessageEntityTextUrl {
                offset: 3,
                length: 17,
                url: "https://example.org/\"q\"".into(),
            }),
            E::Pre(types::MessageEntityPre {
                offset: 3,
                length: 17,
                language: "rust".into(),
            }),
        ];
        let via_value = json_text(&Value::Array(list.iter().map(entity_json).collect()));
        assert_eq!(entities_json(&list), via_value);
        assert!(via_value.contains(r#"{"length":17,"offset":3,"type":"mention"}"#));
        assert_eq!(entities_json(&[]), "[]");
    }

    #[test]
    fn directly_written_reactions_match_the_value_route() {
        let count = |reaction, count| {
            enums::ReactionCount::Count(types::ReactionCount {
                chosen_order: None,
                reaction,
                count,
            })
        };
        let list = vec![
            count(
                enums::Reaction::Emoji(types::ReactionEmoji {
                    emoticon: "👍".into(),
                }),
                5,
            ),
            // Telegram sends what it likes: a quote and a control character must be escaped.
            count(
                enums::Reaction::Emoji(types::ReactionEmoji {
                    emoticon: "\"\u{1}\\".into(),
                }),
                1,
            ),
            count(
                enums::Reaction::CustomEmoji(types::ReactionCustomEmoji { document_id: -42 }),
                7,
            ),
            count(enums::Reaction::Paid, 2_147_483_647),
            count(enums::Reaction::Empty, 0),
        ];
        // The form the store has always kept: {"count": N} plus what was reacted with.
        let via_value: Vec<Value> = list
            .iter()
            .map(|r| {
                let enums::ReactionCount::Count(c) = r;
                let mut v = match &c.reaction {
                    enums::Reaction::Emoji(e) => json!({"emoji": e.emoticon}),
                    enums::Reaction::CustomEmoji(e) => json!({"custom_emoji_id": e.document_id}),
                    enums::Reaction::Paid => json!({"paid": true}),
                    enums::Reaction::Empty => json!({}),
                };
                v["count"] = json!(c.count);
                v
            })
            .collect();
        let direct = reactions_json(&list);
        assert_eq!(direct, json_text(&Value::Array(via_value)));
        let parsed: Value = serde_json::from_str(&direct).unwrap();
        assert_eq!(parsed[1]["emoji"], "\"\u{1}\\");
        assert_eq!(reactions_json(&[]), "[]");
    }

    /// The `Value` route the direct writers replaced, kept as their oracle.
    fn peer_value(p: &enums::Peer) -> Value {
        match p {
            enums::Peer::User(u) => json!({"type": "user", "id": u.user_id}),
            enums::Peer::Chat(c) => json!({"type": "chat", "id": c.chat_id}),
            enums::Peer::Channel(c) => json!({"type": "channel", "id": c.channel_id}),
        }
    }

    fn fwd_value(f: &enums::MessageFwdHeader) -> Value {
        let enums::MessageFwdHeader::Header(f) = f;
        json!({
            "from": f.from_id.as_ref().map(peer_value),
            "from_name": f.from_name,
            "date": f.date,
            "channel_post": f.channel_post,
            "post_author": f.post_author,
        })
    }

    fn document_value(d: &enums::Document) -> (&'static str, Value) {
        let enums::Document::Document(doc) = d else {
            return ("document", json!({"empty": true}));
        };
        let mut kind = "document";
        let mut v = json!({"id": doc.id, "mime_type": doc.mime_type, "size": doc.size, "dc_id": doc.dc_id, "date": doc.date});
        for a in &doc.attributes {
            match a {
                enums::DocumentAttribute::Filename(f) => v["file_name"] = json!(f.file_name),
                enums::DocumentAttribute::Video(x) => {
                    kind = if x.round_message {
                        "video_note"
                    } else {
                        "video"
                    };
                    v["duration"] = json!(x.duration);
                    v["w"] = json!(x.w);
                    v["h"] = json!(x.h);
                }
                enums::DocumentAttribute::Audio(x) => {
                    kind = if x.voice { "voice" } else { "audio" };
                    v["duration"] = json!(x.duration);
                    if let Some(t) = &x.title {
                        v["title"] = json!(t);
                    }
                    if let Some(p) = &x.performer {
                        v["performer"] = json!(p);
                    }
                }
                enums::DocumentAttribute::Sticker(_) => kind = "sticker",
                enums::DocumentAttribute::Animated => kind = "animation",
                enums::DocumentAttribute::ImageSize(x) => {
                    v["w"] = json!(x.w);
                    v["h"] = json!(x.h);
                }
                _ => {}
            }
        }
        (kind, v)
    }

    fn media_value(m: &enums::MessageMedia) -> Option<(&'static str, String)> {
        use enums::MessageMedia as M;
        let (kind, v) = match m {
            M::Empty => return None,
            M::Photo(p) => match &p.photo {
                Some(enums::Photo::Photo(ph)) => {
                    let sizes: Vec<Value> = ph
                        .sizes
                        .iter()
                        .map(|s| match s {
                            enums::PhotoSize::Size(x) => json!({"type": x.r#type, "w": x.w, "h": x.h, "size": x.size}),
                            enums::PhotoSize::Progressive(x) => {
                                json!({"type": x.r#type, "w": x.w, "h": x.h, "size": x.sizes.iter().max()})
                            }
                            other => json!({"type": tl_name(other)}),
                        })
                        .collect();
                    (
                        "photo",
                        json!({"id": ph.id, "date": ph.date, "dc_id": ph.dc_id, "sizes": sizes, "spoiler": p.spoiler}),
                    )
                }
                _ => ("photo", json!({"empty": true})),
            },
            M::Document(d) => match &d.document {
                Some(doc) => {
                    let (kind, mut v) = document_value(doc);
                    v["spoiler"] = json!(d.spoiler);
                    let kind = if d.voice {
                        "voice"
                    } else if d.round {
                        "video_note"
                    } else {
                        kind
                    };
                    (kind, v)
                }
                None => ("document", json!({"empty": true})),
            },
            other => rare_media_json(other),
        };
        Some((kind, json_text(&v)))
    }

    /// Telegram sends what it likes: quotes, backslashes, control characters, emoji.
    const ODD: &str = "a \"q\" \\ \u{1}\n 🚀 ё";

    fn photo_media(sizes: Vec<enums::PhotoSize>, spoiler: bool) -> enums::MessageMedia {
        enums::MessageMedia::Photo(types::MessageMediaPhoto {
            spoiler,
            live_photo: false,
            photo: Some(enums::Photo::Photo(types::Photo {
                has_stickers: false,
                id: -5_000_000_000_123,
                access_hash: 1,
                file_reference: vec![1, 2],
                date: 1_700_000_000,
                sizes,
                video_sizes: None,
                dc_id: 4,
            })),
            ttl_seconds: None,
            video: None,
        })
    }

    fn document_media(
        attributes: Vec<enums::DocumentAttribute>,
        voice: bool,
        round: bool,
        spoiler: bool,
    ) -> enums::MessageMedia {
        enums::MessageMedia::Document(types::MessageMediaDocument {
            nopremium: false,
            spoiler,
            video: false,
            round,
            voice,
            document: Some(enums::Document::Document(types::Document {
                id: 77,
                access_hash: 1,
                file_reference: vec![],
                date: 1_700_000_001,
                mime_type: ODD.into(),
                size: 9_000_000_000,
                thumbs: None,
                video_thumbs: None,
                dc_id: 2,
                attributes,
            })),
            alt_documents: None,
            video_cover: None,
            video_timestamp: None,
            ttl_seconds: None,
        })
    }

    fn video(duration: f64, round_message: bool) -> enums::DocumentAttribute {
        enums::DocumentAttribute::Video(types::DocumentAttributeVideo {
            round_message,
            supports_streaming: true,
            nosound: false,
            duration,
            w: 1280,
            h: 720,
            preload_prefix_size: None,
            video_start_ts: None,
            video_codec: None,
        })
    }

    fn audio(
        voice: bool,
        title: Option<&str>,
        performer: Option<&str>,
    ) -> enums::DocumentAttribute {
        enums::DocumentAttribute::Audio(types::DocumentAttributeAudio {
            voice,
            duration: 185,
            title: title.map(Into::into),
            performer: performer.map(Into::into),
            waveform: None,
        })
    }

    #[test]
    fn directly_written_media_match_the_value_route() {
        use enums::DocumentAttribute as A;
        let size = |t: &str, w, h, size| {
            enums::PhotoSize::Size(types::PhotoSize {
                r#type: t.into(),
                w,
                h,
                size,
            })
        };
        let progressive = |sizes: Vec<i32>| {
            enums::PhotoSize::Progressive(types::PhotoSizeProgressive {
                r#type: "y".into(),
                w: 2560,
                h: 1440,
                sizes,
            })
        };
        let filename = |n: &str| {
            A::Filename(types::DocumentAttributeFilename {
                file_name: n.into(),
            })
        };
        let image = A::ImageSize(types::DocumentAttributeImageSize { w: 10, h: -1 });
        let sticker = A::Sticker(types::DocumentAttributeSticker {
            mask: false,
            alt: "x".into(),
            stickerset: enums::InputStickerSet::Empty,
            mask_coords: None,
        });
        let media = vec![
            photo_media(vec![], false),
            photo_media(
                vec![
                    size("m", 320, 180, 12_345),
                    size(ODD, i32::MIN, i32::MAX, -1),
                    progressive(vec![100, 9_000, 400]),
                    progressive(vec![]),
                    enums::PhotoSize::Empty(types::PhotoSizeEmpty { r#type: "s".into() }),
                    enums::PhotoSize::PhotoCachedSize(types::PhotoCachedSize {
                        r#type: "c".into(),
                        w: 1,
                        h: 1,
                        bytes: vec![0],
                    }),
                ],
                true,
            ),
            enums::MessageMedia::Photo(types::MessageMediaPhoto {
                spoiler: false,
                live_photo: false,
                photo: Some(enums::Photo::Empty(types::PhotoEmpty { id: 1 })),
                ttl_seconds: None,
                video: None,
            }),
            document_media(vec![], false, false, false),
            document_media(vec![filename(ODD)], false, false, true),
            document_media(
                vec![video(12.5, false), filename("clip.mp4")],
                false,
                false,
                false,
            ),
            document_media(vec![video(3.0, true)], false, true, false),
            document_media(vec![video(f64::NAN, false)], false, false, false),
            document_media(
                vec![video(1e300, false), image.clone()],
                false,
                false,
                false,
            ),
            document_media(vec![image.clone(), video(0.1, false)], false, false, false),
            document_media(
                vec![audio(false, Some(ODD), Some("P"))],
                false,
                false,
                false,
            ),
            document_media(vec![audio(true, None, None)], true, false, false),
            // Two attributes setting `duration`: the later one's type and value stay.
            document_media(
                vec![video(7.25, false), audio(false, None, Some("x"))],
                false,
                false,
                false,
            ),
            document_media(
                vec![audio(false, Some("t"), None), video(7.25, false)],
                false,
                false,
                false,
            ),
            document_media(vec![sticker, image], false, false, false),
            document_media(vec![A::Animated, filename("a.gif")], false, false, false),
            enums::MessageMedia::Document(types::MessageMediaDocument {
                nopremium: false,
                spoiler: true,
                video: false,
                round: false,
                voice: false,
                document: Some(enums::Document::Empty(types::DocumentEmpty { id: 3 })),
                alt_documents: None,
                video_cover: None,
                video_timestamp: None,
                ttl_seconds: None,
            }),
            enums::MessageMedia::Dice(types::MessageMediaDice {
                value: 6,
                emoticon: "🎲".into(),
                game_outcome: None,
            }),
        ];
        for m in &media {
            let direct = media_json(m);
            assert_eq!(direct, media_value(m), "{m:?}");
            let (_, text) = direct.unwrap();
            serde_json::from_str::<Value>(&text).unwrap();
        }
        assert_eq!(media_json(&enums::MessageMedia::Empty), None);
    }

    #[test]
    fn directly_written_forward_headers_match_the_value_route() {
        let header = |from_id, from_name: Option<&str>, channel_post, post_author: Option<&str>| {
            enums::MessageFwdHeader::Header(types::MessageFwdHeader {
                imported: false,
                saved_out: false,
                from_id,
                from_name: from_name.map(Into::into),
                date: 1_600_000_000,
                channel_post,
                post_author: post_author.map(Into::into),
                saved_from_peer: None,
                saved_from_msg_id: None,
                saved_from_id: None,
                saved_from_name: None,
                saved_date: None,
                psa_type: None,
            })
        };
        let list = vec![
            header(None, None, None, None),
            header(
                Some(enums::Peer::Channel(types::PeerChannel {
                    channel_id: 1_234_567_890_123,
                })),
                None,
                Some(42),
                Some(ODD),
            ),
            header(
                Some(enums::Peer::User(types::PeerUser { user_id: 7 })),
                Some(ODD),
                None,
                None,
            ),
            header(
                Some(enums::Peer::Chat(types::PeerChat { chat_id: -1 })),
                Some(""),
                Some(-3),
                Some(""),
            ),
        ];
        for f in &list {
            assert_eq!(fwd_text(f), json_text(&fwd_value(f)), "{f:?}");
        }
    }
}
