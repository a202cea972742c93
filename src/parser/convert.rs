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

fn peer_json(p: &enums::Peer) -> Value {
    match p {
        enums::Peer::User(u) => json!({"type": "user", "id": u.user_id}),
        enums::Peer::Chat(c) => json!({"type": "chat", "id": c.chat_id}),
        enums::Peer::Channel(c) => json!({"type": "channel", "id": c.channel_id}),
    }
}

fn entity_json(e: &enums::MessageEntity) -> Value {
    use enums::MessageEntity as E;
    let ol = |t: &str, o: i32, l: i32| json!({"type": t, "offset": o, "length": l});
    match e {
        E::Mention(x) => ol("mention", x.offset, x.length),
        E::Hashtag(x) => ol("hashtag", x.offset, x.length),
        E::BotCommand(x) => ol("bot_command", x.offset, x.length),
        E::Url(x) => ol("url", x.offset, x.length),
        E::Email(x) => ol("email", x.offset, x.length),
        E::Bold(x) => ol("bold", x.offset, x.length),
        E::Italic(x) => ol("italic", x.offset, x.length),
        E::Code(x) => ol("code", x.offset, x.length),
        E::Pre(x) => {
            json!({"type": "pre", "offset": x.offset, "length": x.length, "language": x.language})
        }
        E::TextUrl(x) => {
            json!({"type": "text_url", "offset": x.offset, "length": x.length, "url": x.url})
        }
        E::MentionName(x) => {
            json!({"type": "mention_name", "offset": x.offset, "length": x.length, "user_id": x.user_id})
        }
        E::Phone(x) => ol("phone", x.offset, x.length),
        E::Cashtag(x) => ol("cashtag", x.offset, x.length),
        E::Underline(x) => ol("underline", x.offset, x.length),
        E::Strike(x) => ol("strikethrough", x.offset, x.length),
        E::BankCard(x) => ol("bank_card", x.offset, x.length),
        E::Spoiler(x) => ol("spoiler", x.offset, x.length),
        E::CustomEmoji(x) => {
            json!({"type": "custom_emoji", "offset": x.offset, "length": x.length, "document_id": x.document_id})
        }
        E::Blockquote(x) => {
            json!({"type": "blockquote", "offset": x.offset, "length": x.length, "collapsed": x.collapsed})
        }
        other => json!({"type": tl_name(other)}),
    }
}

fn reaction_json(r: &enums::ReactionCount) -> Value {
    let enums::ReactionCount::Count(c) = r;
    let what = match &c.reaction {
        enums::Reaction::Emoji(e) => json!({"emoji": e.emoticon}),
        enums::Reaction::CustomEmoji(e) => json!({"custom_emoji_id": e.document_id}),
        enums::Reaction::Paid => json!({"paid": true}),
        enums::Reaction::Empty => json!({}),
    };
    let mut v = what;
    v["count"] = json!(c.count);
    v
}

fn document_json(d: &enums::Document) -> (&'static str, Value) {
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

fn media_json(m: &enums::MessageMedia) -> Option<(&'static str, Value)> {
    use enums::MessageMedia as M;
    Some(match m {
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
                let (kind, mut v) = document_json(doc);
                v["spoiler"] = json!(d.spoiler);
                (
                    if d.voice {
                        "voice"
                    } else if d.round {
                        "video_note"
                    } else {
                        kind
                    },
                    v,
                )
            }
            None => ("document", json!({"empty": true})),
        },
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
    })
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
                    .map(|e| Value::Array(e.iter().map(entity_json).collect()).to_string()),
                views: m.views.map(i64::from),
                forwards: m.forwards.map(i64::from),
                replies: m.replies.as_ref().map(|r| {
                    let enums::MessageReplies::Replies(r) = r;
                    i64::from(r.replies)
                }),
                reactions: m.reactions.as_ref().map(|r| {
                    let enums::MessageReactions::Reactions(r) = r;
                    Value::Array(r.results.iter().map(reaction_json).collect()).to_string()
                }),
                grouped_id: m.grouped_id,
                reply_to_msg_id,
                reply_to_top_id,
                fwd_from: m.fwd_from.as_ref().map(|f| {
                    let enums::MessageFwdHeader::Header(f) = f;
                    json!({
                        "from": f.from_id.as_ref().map(peer_json),
                        "from_name": f.from_name,
                        "date": f.date,
                        "channel_post": f.channel_post,
                        "post_author": f.post_author,
                    })
                    .to_string()
                }),
                post_author: m.post_author.clone(),
                pinned: m.pinned,
                silent: m.silent,
                noforwards: m.noforwards,
                media_kind: media.as_ref().map(|(k, _)| *k),
                media: media.map(|(_, v)| v.to_string()),
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
            action: Some(action_json(&s.action).to_string()),
            ..Default::default()
        }),
    }
}
