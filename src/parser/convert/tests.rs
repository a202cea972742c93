use super::media::*;
use super::text::*;
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
    let (mut sticker, mut animated) = (false, false);
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
            enums::DocumentAttribute::Sticker(_) => sticker = true,
            enums::DocumentAttribute::Animated => animated = true,
            enums::DocumentAttribute::ImageSize(x) => {
                v["w"] = json!(x.w);
                v["h"] = json!(x.h);
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

/// A GIF is an animation with a video attribute too; when the video attribute came after the
/// animated one, the GIF was stored as a video.
#[test]
fn a_gif_whose_video_attribute_comes_last_is_an_animation() {
    use enums::DocumentAttribute as A;
    for attrs in [
        vec![A::Animated, video(3.0, false)],
        vec![video(3.0, false), A::Animated],
    ] {
        let m = document_media(attrs, false, false, false);
        assert_eq!(media_json(&m).unwrap().0, "animation");
    }
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

fn audio(voice: bool, title: Option<&str>, performer: Option<&str>) -> enums::DocumentAttribute {
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
