//! The world's plain types turned into Telegram's TL objects (layer of grammers-tl-types).

use grammers_tl_types as tl;
use tl::{enums, types};

use crate::world::files;
use crate::world::{Account, Channel, EntityKind, Media, MediaKind, Post, ServiceAction, unix_now};

pub fn peer_channel(id: i64) -> enums::Peer {
    types::PeerChannel { channel_id: id }.into()
}

pub fn user(a: &Account, is_self: bool) -> enums::User {
    let phone = is_self.then(|| a.phone.trim_start_matches('+').to_string());
    user_of(
        a.user_id,
        a.access_hash,
        &a.first_name,
        None,
        a.username.clone(),
        phone,
        is_self,
    )
}

/// The users who sent `messages` (the senders of a supergroup's posts), as answers carry them.
pub fn senders(ch: &Channel, messages: &[enums::Message]) -> Vec<enums::User> {
    let mut ids: Vec<i64> = messages
        .iter()
        .filter_map(|m| match m {
            enums::Message::Message(x) => match &x.from_id {
                Some(enums::Peer::User(u)) => Some(u.user_id),
                _ => None,
            },
            _ => None,
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.iter()
        .filter_map(|id| ch.senders.get(id))
        .map(|s| {
            user_of(
                s.id,
                s.access_hash(),
                &s.first_name,
                s.last_name.clone(),
                s.username.clone(),
                None,
                false,
            )
        })
        .collect()
}

fn user_of(
    id: i64,
    access_hash: i64,
    first_name: &str,
    last_name: Option<String>,
    username: Option<String>,
    phone: Option<String>,
    is_self: bool,
) -> enums::User {
    types::User {
        is_self,
        contact: false,
        mutual_contact: false,
        deleted: false,
        bot: false,
        bot_chat_history: false,
        bot_nochats: false,
        verified: false,
        restricted: false,
        min: false,
        bot_inline_geo: false,
        support: false,
        scam: false,
        apply_min_photo: false,
        fake: false,
        bot_attach_menu: false,
        premium: false,
        attach_menu_enabled: false,
        bot_can_edit: false,
        close_friend: false,
        stories_hidden: false,
        stories_unavailable: false,
        contact_require_premium: false,
        bot_business: false,
        bot_has_main_app: false,
        bot_forum_view: false,
        bot_forum_can_manage_topics: false,
        bot_can_manage_bots: false,
        bot_guestchat: false,
        bot_guard: false,
        id,
        access_hash: Some(access_hash),
        first_name: Some(first_name.to_string()),
        last_name,
        username,
        phone,
        photo: None,
        status: Some(types::UserStatusRecently { by_me: false }.into()),
        bot_info_version: None,
        restriction_reason: None,
        bot_inline_placeholder: None,
        lang_code: None,
        emoji_status: None,
        usernames: None,
        stories_max_id: None,
        color: None,
        profile_color: None,
        bot_active_users: None,
        bot_verification_icon: None,
        send_paid_messages_stars: None,
        linked_community_id: None,
    }
    .into()
}

/// `ch` as account `viewer` sees it (its own access hash).
pub fn chat(ch: &Channel, viewer: i64) -> enums::Chat {
    if ch.refusal(viewer).is_some() {
        return types::ChannelForbidden {
            broadcast: !ch.megagroup,
            megagroup: ch.megagroup,
            monoforum: false,
            id: ch.id,
            access_hash: ch.hash_for(viewer),
            title: ch.title.clone(),
            until_date: None,
        }
        .into();
    }
    types::Channel {
        creator: false,
        // Telegram's flag for "not a member": a previewed public channel.
        left: !ch.is_member(viewer),
        broadcast: !ch.megagroup,
        verified: false,
        megagroup: ch.megagroup,
        restricted: false,
        signatures: true,
        min: false,
        scam: false,
        has_link: false,
        has_geo: false,
        slowmode_enabled: false,
        call_active: false,
        call_not_empty: false,
        fake: false,
        gigagroup: false,
        noforwards: false,
        join_to_send: false,
        join_request: false,
        forum: false,
        stories_hidden: false,
        stories_hidden_min: false,
        stories_unavailable: false,
        signature_profiles: false,
        autotranslation: false,
        broadcast_messages_allowed: false,
        monoforum: false,
        forum_tabs: false,
        id: ch.id,
        access_hash: Some(ch.hash_for(viewer)),
        title: ch.title.clone(),
        username: ch.username.clone(),
        photo: enums::ChatPhoto::Empty,
        date: ch.date,
        restriction_reason: None,
        admin_rights: None,
        banned_rights: None,
        default_banned_rights: None,
        participants_count: Some(ch.participants),
        usernames: None,
        stories_max_id: None,
        color: None,
        profile_color: None,
        emoji_status: None,
        level: None,
        subscription_until_date: None,
        bot_verification_icon: None,
        send_paid_messages_stars: None,
        linked_monoforum_id: None,
        linked_community_id: None,
    }
    .into()
}

fn entity(e: &crate::world::Entity) -> enums::MessageEntity {
    let (offset, length) = (e.offset, e.length);
    match e.kind {
        EntityKind::Bold => types::MessageEntityBold { offset, length }.into(),
        EntityKind::Italic => types::MessageEntityItalic { offset, length }.into(),
        EntityKind::Code => types::MessageEntityCode { offset, length }.into(),
        EntityKind::Url => types::MessageEntityUrl { offset, length }.into(),
        EntityKind::Mention => types::MessageEntityMention { offset, length }.into(),
        EntityKind::Hashtag => types::MessageEntityHashtag { offset, length }.into(),
        EntityKind::TextUrl => types::MessageEntityTextUrl {
            offset,
            length,
            url: e.url.clone().unwrap_or_default(),
        }
        .into(),
    }
}

/// The inline preview Telegram puts in a photo's or a thumbnail's sizes (type `i`).
fn stripped() -> enums::PhotoSize {
    types::PhotoStrippedSize {
        r#type: "i".into(),
        bytes: vec![1, 24, 40, 0x28, 0xa2, 0x8a, 0x00, 0x28],
    }
    .into()
}

/// A thumbnail (type `m`, 320 px on its long side) of `size` bytes.
fn thumb(w: i32, h: i32, size: i32) -> enums::PhotoSize {
    let (tw, th) = if w >= h {
        (320, (320 * h / w.max(1)).max(1))
    } else {
        ((320 * w / h.max(1)).max(1), 320)
    };
    types::PhotoSize {
        r#type: "m".into(),
        w: tw,
        h: th,
        size,
    }
    .into()
}

fn document(m: &Media, date: i32) -> enums::Document {
    use types::{
        DocumentAttributeAnimated, DocumentAttributeAudio, DocumentAttributeFilename,
        DocumentAttributeImageSize, DocumentAttributeSticker, DocumentAttributeVideo,
    };
    let video = |round_message| -> enums::DocumentAttribute {
        DocumentAttributeVideo {
            round_message,
            supports_streaming: !round_message,
            nosound: false,
            duration: m.duration,
            w: m.w,
            h: m.h,
            preload_prefix_size: None,
            video_start_ts: None,
            video_codec: None,
        }
        .into()
    };
    let audio = |voice| -> enums::DocumentAttribute {
        DocumentAttributeAudio {
            voice,
            duration: m.duration as i32,
            title: (!voice).then(|| format!("Episode {}", m.id)),
            performer: (!voice).then(|| "The channel".to_string()),
            waveform: voice.then(|| vec![0x10; 63]),
        }
        .into()
    };
    let mut attributes: Vec<enums::DocumentAttribute> = match m.kind {
        MediaKind::Video => vec![video(false)],
        MediaKind::Round => vec![video(true)],
        MediaKind::Gif => vec![DocumentAttributeAnimated {}.into(), video(false)],
        MediaKind::Audio => vec![audio(false)],
        MediaKind::Voice => vec![audio(true)],
        MediaKind::Sticker => vec![
            DocumentAttributeSticker {
                mask: false,
                alt: "🙂".into(),
                stickerset: enums::InputStickerSet::Empty,
                mask_coords: None,
            }
            .into(),
            DocumentAttributeImageSize { w: m.w, h: m.h }.into(),
        ],
        MediaKind::Document | MediaKind::Photo => Vec::new(),
    };
    if let Some(name) = m.file_name.as_deref().filter(|n| !n.is_empty()) {
        attributes.push(
            DocumentAttributeFilename {
                file_name: name.to_string(),
            }
            .into(),
        );
    }
    types::Document {
        id: m.id,
        access_hash: document_hash(m.id),
        // Issued now, as Telegram issues one with every message it serves.
        file_reference: files::file_reference(m.id, unix_now()),
        date,
        mime_type: m.mime_type.clone(),
        size: m.size,
        thumbs: m.thumb.map(|t| vec![stripped(), thumb(m.w, m.h, t)]),
        video_thumbs: None,
        dc_id: m.dc,
        attributes,
    }
    .into()
}

/// The access hashes of the fake's photos and documents (any account may use them: a file's
/// hash is not tied to an account, unlike a channel's).
pub fn photo_hash(id: i64) -> i64 {
    id ^ 0x0f0f
}

pub fn document_hash(id: i64) -> i64 {
    id ^ 0x0d0c
}

fn media(m: &Media, date: i32) -> enums::MessageMedia {
    if m.kind == MediaKind::Photo {
        let size = m.size as i32;
        return types::MessageMediaPhoto {
            spoiler: false,
            live_photo: false,
            photo: Some(
                types::Photo {
                    has_stickers: false,
                    id: m.id,
                    access_hash: photo_hash(m.id),
                    file_reference: files::file_reference(m.id, unix_now()),
                    date,
                    sizes: vec![
                        stripped(),
                        thumb(m.w, m.h, m.thumb.unwrap_or(1_000)),
                        // The largest size is progressive, its prefixes listed: its size is
                        // the last.
                        types::PhotoSizeProgressive {
                            r#type: "y".into(),
                            w: m.w,
                            h: m.h,
                            sizes: vec![size / 8, size / 3, size / 2, size],
                        }
                        .into(),
                    ],
                    video_sizes: None,
                    dc_id: m.dc,
                }
                .into(),
            ),
            ttl_seconds: None,
            video: None,
        }
        .into();
    }
    types::MessageMediaDocument {
        nopremium: false,
        spoiler: false,
        video: matches!(m.kind, MediaKind::Video | MediaKind::Round),
        round: m.kind == MediaKind::Round,
        voice: m.kind == MediaKind::Voice,
        document: Some(document(m, date)),
        alt_documents: None,
        video_cover: None,
        video_timestamp: None,
        ttl_seconds: None,
    }
    .into()
}

fn reply_header(to: i32) -> enums::MessageReplyHeader {
    types::MessageReplyHeader {
        reply_to_scheduled: false,
        forum_topic: false,
        quote: false,
        reply_to_ephemeral: false,
        reply_to_msg_id: Some(to),
        reply_to_peer_id: None,
        reply_from: None,
        reply_media: None,
        reply_to_top_id: None,
        quote_text: None,
        quote_entities: None,
        quote_offset: None,
        todo_item_id: None,
        poll_option: None,
    }
    .into()
}

pub fn message(ch: &Channel, p: &Post) -> enums::Message {
    let peer_id = peer_channel(ch.id);
    if let Some(action) = &p.action {
        let action: enums::MessageAction = match action {
            ServiceAction::ChannelCreate { title } => types::MessageActionChannelCreate {
                title: title.clone(),
            }
            .into(),
            ServiceAction::EditTitle { title } => types::MessageActionChatEditTitle {
                title: title.clone(),
            }
            .into(),
            ServiceAction::PinMessage { .. } => enums::MessageAction::PinMessage,
        };
        return types::MessageService {
            out: false,
            mentioned: false,
            media_unread: false,
            reactions_are_possible: false,
            silent: false,
            post: true,
            legacy: false,
            id: p.id,
            from_id: None,
            peer_id,
            saved_peer_id: None,
            reply_to: p.reply_to.map(reply_header),
            date: p.date,
            action,
            reactions: None,
            ttl_period: None,
        }
        .into();
    }
    let reactions = (!p.reactions.is_empty()).then(|| {
        types::MessageReactions {
            min: false,
            can_see_list: false,
            reactions_as_tags: false,
            results: p
                .reactions
                .iter()
                .map(|(e, n)| {
                    types::ReactionCount {
                        chosen_order: None,
                        reaction: types::ReactionEmoji {
                            emoticon: e.clone(),
                        }
                        .into(),
                        count: *n,
                    }
                    .into()
                })
                .collect(),
            recent_reactions: None,
            top_reactors: None,
        }
        .into()
    });
    types::Message {
        out: false,
        mentioned: false,
        media_unread: false,
        silent: false,
        // A channel post; in a supergroup, a member's message with its sender.
        post: !ch.megagroup,
        from_scheduled: false,
        legacy: false,
        edit_hide: false,
        pinned: p.pinned,
        noforwards: false,
        invert_media: false,
        offline: false,
        video_processing_pending: false,
        paid_suggested_post_stars: false,
        paid_suggested_post_ton: false,
        id: p.id,
        from_id: p.from_id.map(|user_id| types::PeerUser { user_id }.into()),
        from_boosts_applied: None,
        from_rank: None,
        peer_id,
        saved_peer_id: None,
        fwd_from: p.fwd_from.as_ref().map(|f| {
            types::MessageFwdHeader {
                imported: false,
                saved_out: false,
                from_id: f.from_channel_id.map(peer_channel),
                from_name: f.from_name.clone(),
                date: f.date,
                channel_post: f.channel_post,
                post_author: None,
                saved_from_peer: None,
                saved_from_msg_id: None,
                saved_from_id: None,
                saved_from_name: None,
                saved_date: None,
                psa_type: None,
            }
            .into()
        }),
        via_bot_id: None,
        via_business_bot_id: None,
        guestchat_via_from: None,
        reply_to: p.reply_to.map(reply_header),
        date: p.date,
        message: p.text.clone(),
        media: p.media.as_ref().map(|m| media(m, p.date)),
        reply_markup: None,
        entities: (!p.entities.is_empty()).then(|| p.entities.iter().map(entity).collect()),
        views: Some(p.views),
        forwards: Some(p.forwards),
        replies: Some(
            types::MessageReplies {
                // A channel with a discussion group: the post's comments are there.
                comments: ch.discussion.is_some(),
                replies: p.replies,
                replies_pts: 0,
                recent_repliers: None,
                channel_id: ch.discussion,
                max_id: None,
                read_max_id: None,
            }
            .into(),
        ),
        edit_date: p.edit_date,
        post_author: p.post_author.clone(),
        grouped_id: p.grouped_id,
        reactions,
        restriction_reason: None,
        ttl_period: None,
        quick_reply_shortcut_id: None,
        effect: None,
        factcheck: None,
        report_delivery_until_date: None,
        paid_message_stars: None,
        suggested_post: None,
        schedule_repeat_period: None,
        summary_from_language: None,
        rich_message: None,
    }
    .into()
}

/// `help.getConfig`'s answer on `this_dc`, listing every DC at its address. The options are
/// `static` (clients keep only those: grammers filters on it).
pub fn config(this_dc: i32, dcs: &[(i32, std::net::SocketAddr)]) -> enums::Config {
    let now = crate::world::unix_now();
    types::Config {
        default_p2p_contacts: false,
        preload_featured_stickers: false,
        revoke_pm_inbox: true,
        blocked_mode: false,
        force_try_ipv6: false,
        date: now,
        expires: now + 3600,
        test_mode: false,
        this_dc,
        dc_options: dcs
            .iter()
            .map(|(id, addr)| {
                types::DcOption {
                    ipv6: addr.is_ipv6(),
                    media_only: false,
                    tcpo_only: false,
                    cdn: false,
                    r#static: true,
                    this_port_only: false,
                    id: *id,
                    ip_address: addr.ip().to_string(),
                    port: i32::from(addr.port()),
                    secret: None,
                }
                .into()
            })
            .collect(),
        dc_txt_domain_name: "localhost".into(),
        chat_size_max: 200,
        megagroup_size_max: 200_000,
        forwarded_count_max: 100,
        online_update_period_ms: 210_000,
        offline_blur_timeout_ms: 5_000,
        offline_idle_timeout_ms: 30_000,
        online_cloud_timeout_ms: 300_000,
        notify_cloud_delay_ms: 30_000,
        notify_default_delay_ms: 1_500,
        push_chat_period_ms: 60_000,
        push_chat_limit: 2,
        edit_time_limit: 172_800,
        revoke_time_limit: i32::MAX,
        revoke_pm_time_limit: i32::MAX,
        rating_e_decay: 2_419_200,
        stickers_recent_limit: 200,
        channels_read_media_period: 604_800,
        tmp_sessions: None,
        call_receive_timeout_ms: 20_000,
        call_ring_timeout_ms: 90_000,
        call_connect_timeout_ms: 30_000,
        call_packet_timeout_ms: 10_000,
        me_url_prefix: "https://t.me/".into(),
        autoupdate_url_prefix: None,
        gif_search_username: None,
        venue_search_username: None,
        img_search_username: None,
        static_maps_provider: None,
        caption_length_max: 1024,
        message_length_max: 4096,
        webfile_dc_id: this_dc,
        suggested_lang_code: None,
        lang_pack_version: None,
        base_lang_pack_version: None,
        reactions_default: None,
        autologin_token: None,
    }
    .into()
}
