//! A post's media: its kind and its fields as JSON text. Photos and documents, which most media
//! are, go through the direct writer (`Obj`); the rare kinds through `serde_json::Value`.

use grammers_client::tl;
use serde_json::{Value, json};
use tl::enums;

use super::text::{Field, Obj, obj};
use super::{json_text, tl_name};

pub(super) fn photo_text(ph: &tl::types::Photo, spoiler: bool) -> String {
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
pub(super) fn document_obj(d: &enums::Document) -> (&'static str, Obj<'_>) {
    let enums::Document::Document(doc) = d else {
        return ("document", obj([("empty", Field::Bool(true))]));
    };
    // Attributes come in any order; a sticker or an animation (a GIF, which also has a video
    // attribute) is that whatever else it says.
    let mut kind = "document";
    let (mut sticker, mut animated) = (false, false);
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
            enums::DocumentAttribute::Sticker(_) => sticker = true,
            enums::DocumentAttribute::Animated => animated = true,
            enums::DocumentAttribute::ImageSize(x) => {
                v.set("w", Field::Int(x.w.into()))
                    .set("h", Field::Int(x.h.into()));
            }
            _ => {}
        }
    }
    if sticker {
        kind = "sticker";
    } else if animated {
        kind = "animation";
    }
    (kind, v)
}

/// The media's kind and its fields as JSON text.
pub(super) fn media_json(m: &enums::MessageMedia) -> Option<(&'static str, String)> {
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
pub(super) fn rare_media_json(m: &enums::MessageMedia) -> (&'static str, Value) {
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
