//! A deterministic world: `--channels N --posts M --seed S` always yields the same channels and
//! posts, with the variety real channels have — Latin, Cyrillic and emoji text, entities with
//! UTF-16 offsets, replies, forwards, views, reactions, albums, media, service messages, pinned
//! and edited posts, and holes left by deletions.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::world::{
    Entity, EntityKind, FwdFrom, Media, MediaKind, Post, ServiceAction, World, unix_now,
};

const NAMES: &[(&str, &str)] = &[
    ("technews", "Tech News Daily 🖥"),
    ("mirnovostey", "Мир новостей"),
    ("cryptodaily", "Crypto Daily ₿"),
    ("kulinaria", "Кулинария и рецепты 🍲"),
    ("rustlang_news", "Rust Language News 🦀"),
    ("sport_live", "Спорт Live ⚽"),
    ("travelnotes", "Travel Notes ✈️"),
    ("nauka_pop", "Популярная наука 🔬"),
];

const LATIN: &[&str] = &[
    "The new release ships with faster builds and a smaller binary.",
    "Markets opened higher today after the central bank held rates.",
    "Here is what changed in the latest update, in short:",
    "Our reporter spent a week in the mountains — the photos are below.",
    "Café prices in Zürich rose again; naïve estimates missed it.",
    "A thread on why memory safety matters for network services.",
    "Breaking: the launch window moved to Thursday morning.",
    "Weekend reading: five long articles worth your time.",
];

const CYRILLIC: &[&str] = &[
    "Сегодня в городе прошёл фестиваль уличной еды.",
    "Новая версия приложения уже доступна для загрузки.",
    "Учёные объяснили, почему ёжики сворачиваются в клубок.",
    "Курс рубля изменился после заявления регулятора.",
    "Рецепт дня: борщ с пампушками и чесночным соусом.",
    "Матч завершился со счётом 2:1 в пользу хозяев поля.",
    "Погода на выходные: солнечно, до +25 градусов.",
];

const EMOJI: &[&str] = &["🔥", "👍", "❤️", "😂", "🚀", "🎉", "🤔", "📈", "🇷🇺", "👨‍👩‍👧"];
const TAGS: &[&str] = &["#news", "#новости", "#rust", "#travel", "#рецепт", "#sport"];

fn utf16_len(s: &str) -> i32 {
    s.encode_utf16().count() as i32
}

fn make_text(rng: &mut StdRng, entities: &mut Vec<Entity>) -> String {
    let mut text = String::new();
    let sentences = rng.random_range(1..=5);
    for i in 0..sentences {
        let s = if rng.random_bool(0.5) {
            LATIN[rng.random_range(0..LATIN.len())]
        } else {
            CYRILLIC[rng.random_range(0..CYRILLIC.len())]
        };
        if i == 0 {
            // Bold headline: the first sentence.
            entities.push(Entity {
                kind: EntityKind::Bold,
                offset: 0,
                length: utf16_len(s),
                url: None,
            });
        } else {
            text.push(if rng.random_bool(0.3) { '\n' } else { ' ' });
        }
        text.push_str(s);
        if rng.random_bool(0.4) {
            text.push(' ');
            text.push_str(EMOJI[rng.random_range(0..EMOJI.len())]);
        }
    }
    if rng.random_bool(0.3) {
        text.push_str("\n\n");
        let offset = utf16_len(&text);
        let url = format!("https://example.org/a/{}", rng.random_range(1000..9999));
        text.push_str(&url);
        entities.push(Entity {
            kind: EntityKind::Url,
            offset,
            length: utf16_len(&url),
            url: None,
        });
    }
    if rng.random_bool(0.4) {
        text.push(' ');
        let offset = utf16_len(&text);
        let tag = TAGS[rng.random_range(0..TAGS.len())];
        text.push_str(tag);
        entities.push(Entity {
            kind: EntityKind::Hashtag,
            offset,
            length: utf16_len(tag),
            url: None,
        });
    }
    text
}

/// A post's file: kinds in the proportions of a news channel, sizes as Telegram's clients
/// make them, stored on DC 4 (the test account's home), 5 or 2 (`FILE_MIGRATE`, an exported
/// authorization).
fn make_media(rng: &mut StdRng, id: i64) -> Media {
    let dc = [4, 4, 4, 4, 4, 5, 5, 5, 2, 2][rng.random_range(0..10)];
    let roll = rng.random_range(0..100);
    let mut m = if roll < 45 {
        Media::photo(
            id,
            1280,
            rng.random_range(720..1280),
            rng.random_range(40_000..400_000),
        )
    } else if roll < 65 {
        let mut m = Media::document(
            id,
            "video/mp4",
            rng.random_range(500_000..50_000_000),
            &format!("clip-{id}.mp4"),
        );
        m.kind = MediaKind::Video;
        (m.w, m.h, m.duration) = (1920, 1080, rng.random_range(5.0..600.0));
        m.thumb = Some(rng.random_range(5_000..20_000));
        m
    } else if roll < 80 {
        Media::document(
            id,
            "application/pdf",
            rng.random_range(10_000..5_000_000),
            &format!("report-{id}.pdf"),
        )
    } else if roll < 85 {
        let mut m = Media::document(
            id,
            "audio/mpeg",
            rng.random_range(1_000_000..10_000_000),
            &format!("episode-{id}.mp3"),
        );
        m.kind = MediaKind::Audio;
        m.duration = rng.random_range(60.0..3_600.0);
        m
    } else if roll < 90 {
        let mut m = Media::document(id, "audio/ogg", rng.random_range(5_000..200_000), "");
        (m.kind, m.file_name) = (MediaKind::Voice, None);
        m.duration = rng.random_range(1.0..120.0);
        m
    } else if roll < 93 {
        let mut m = Media::document(id, "video/mp4", rng.random_range(200_000..3_000_000), "");
        (m.kind, m.file_name) = (MediaKind::Round, None);
        (m.w, m.h, m.duration) = (384, 384, rng.random_range(1.0..60.0));
        m.thumb = Some(rng.random_range(2_000..8_000));
        m
    } else if roll < 97 {
        let mut m = Media::document(
            id,
            "image/webp",
            rng.random_range(10_000..60_000),
            "sticker.webp",
        );
        m.kind = MediaKind::Sticker;
        (m.w, m.h) = (512, 512);
        m
    } else {
        let mut m = Media::document(
            id,
            "video/mp4",
            rng.random_range(50_000..2_000_000),
            "animation.mp4",
        );
        m.kind = MediaKind::Gif;
        (m.w, m.h, m.duration) = (480, 270, rng.random_range(1.0..10.0));
        m.thumb = Some(rng.random_range(2_000..8_000));
        m
    };
    m.dc = dc;
    m
}

/// Fills `world` with `channels` channels of `posts` posts each.
pub fn generate(world: &World, channels: usize, posts: usize, seed: u64) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut usernames = Vec::new();
    let now = unix_now();
    // Files posted more than once (reposts), across channels.
    let mut shared: Vec<Media> = Vec::new();
    for c in 0..channels {
        let (base, title) = NAMES[c % NAMES.len()];
        let username = if c < NAMES.len() {
            base.to_string()
        } else {
            format!("{base}_{}", c / NAMES.len())
        };
        let id = world.add_channel(
            Some(&username),
            title,
            &format!("{title}: a channel of the offline test world"),
            rng.random_range(100..2_000_000),
        );
        usernames.push(username.clone());
        let span = 86_400 * 365;
        let mut album_left = 0;
        let mut album_id = 0i64;
        let mut files: Vec<Media> = Vec::new();
        let mut w = world.lock();
        let Some(ch) = w.channels.get_mut(&id) else {
            continue;
        };
        let created = now - span - 3_600;
        let mut first = Post::text(1, created, "");
        first.action = Some(ServiceAction::ChannelCreate {
            title: title.to_string(),
        });
        ch.posts.insert(1, first);
        let mut next = 2;
        for i in 0..posts {
            let id = next;
            next += 1;
            let date = now - span + (span as i64 * i as i64 / posts.max(1) as i64) as i32;
            let mut entities = Vec::new();
            let mut p = Post::text(id, date, String::new());
            if i > 0 && rng.random_bool(0.01) {
                p.action = Some(ServiceAction::PinMessage { id: id - 1 });
                p.reply_to = Some(id - 1);
                ch.posts.insert(id, p);
                if let Some(prev) = ch.posts.get_mut(&(id - 1)) {
                    prev.pinned = true;
                }
                continue;
            }
            p.text = make_text(&mut rng, &mut entities);
            p.entities = entities;
            let age_days = ((now - date) / 86_400).max(1);
            p.views = rng.random_range(100..5_000) + age_days * 10;
            p.forwards = rng.random_range(0..p.views / 50 + 1);
            p.replies = rng.random_range(0..20);
            if rng.random_bool(0.5) {
                let n = rng.random_range(1..3);
                for _ in 0..n {
                    let e = EMOJI[rng.random_range(0..4)].to_string();
                    let count = rng.random_range(1..500);
                    if !p.reactions.iter().any(|(x, _)| *x == e) {
                        p.reactions.push((e, count));
                    }
                }
            }
            if album_left == 0 && rng.random_bool(0.04) {
                album_left = rng.random_range(2..=4);
                album_id = 13_000_000_000_000_000 + id as i64;
            }
            if album_left > 0 {
                album_left -= 1;
                p.grouped_id = Some(album_id);
                let mut m =
                    Media::photo(file_id(c, id), 1280, 960, rng.random_range(40_000..400_000));
                m.dc = [4, 5, 2][rng.random_range(0..3)];
                p.media = Some(m);
                if album_left > 0 {
                    p.text.clear();
                    p.entities.clear();
                }
            } else if rng.random_bool(0.2) {
                // Now and then a file posted before (a repost): the same file again.
                p.media = match shared.len() {
                    n if n > 0 && rng.random_bool(0.05) => {
                        Some(shared[rng.random_range(0..n)].clone())
                    }
                    _ => Some(make_media(&mut rng, file_id(c, id))),
                };
                if let Some(m) = &p.media
                    && shared.len() < 16
                {
                    shared.push(m.clone());
                }
            }
            if let Some(m) = &p.media {
                files.push(m.clone());
            }
            if i > 10 && rng.random_bool(0.05) {
                p.reply_to = Some(rng.random_range(2..id));
            }
            if rng.random_bool(0.05) {
                p.fwd_from = Some(FwdFrom {
                    from_channel_id: Some(crate::world::FIRST_CHANNEL_ID + 999),
                    from_name: None,
                    date: date - rng.random_range(60..86_400),
                    channel_post: Some(rng.random_range(1..10_000)),
                });
            }
            if rng.random_bool(0.1) {
                p.post_author = Some(
                    if rng.random_bool(0.5) {
                        "Anna"
                    } else {
                        "Дмитрий"
                    }
                    .into(),
                );
            }
            if rng.random_bool(0.03) {
                p.edit_date = Some(date + rng.random_range(60..3_600));
            }
            ch.posts.insert(id, p);
            // About 1% of ids disappear, as deleted posts leave holes in real channels.
            if rng.random_bool(0.01) {
                next += 1;
            }
        }
        ch.next_id = next;
        ch.pts = next;
        for m in files {
            w.files.insert(m.id, m);
        }
    }
    usernames
}

/// A file id unique to channel `c`'s post `id`.
fn file_id(c: usize, id: i32) -> i64 {
    ((c as i64 + 1) << 32) | ((id as i64) << 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_world() {
        let a = World::new();
        let b = World::new();
        generate(&a, 3, 200, 7);
        generate(&b, 3, 200, 7);
        let (a, b) = (a.lock(), b.lock());
        for (ca, cb) in a.channels.values().zip(b.channels.values()) {
            assert_eq!(ca.posts.len(), cb.posts.len());
            for (pa, pb) in ca.posts.values().zip(cb.posts.values()) {
                assert_eq!(pa.text, pb.text);
                assert_eq!(pa.id, pb.id);
            }
        }
    }

    #[test]
    fn entities_use_utf16_offsets_inside_the_text() {
        let w = World::new();
        generate(&w, 2, 300, 1);
        let w = w.lock();
        let mut saw_astral = false;
        for ch in w.channels.values() {
            for p in ch.posts.values() {
                let units: Vec<u16> = p.text.encode_utf16().collect();
                saw_astral |= units.len() != p.text.chars().count();
                for e in &p.entities {
                    assert!(e.offset >= 0 && (e.offset + e.length) as usize <= units.len());
                    let slice = String::from_utf16(
                        &units[e.offset as usize..(e.offset + e.length) as usize],
                    )
                    .unwrap();
                    if e.kind == EntityKind::Hashtag {
                        assert!(slice.starts_with('#'), "{slice}");
                    }
                }
            }
        }
        assert!(
            saw_astral,
            "emoji outside the BMP make UTF-16 and char counts differ"
        );
    }
}
