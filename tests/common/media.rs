//! The media archive's test helpers: a file of each kind as the fake serves it, and the
//! `media` rows as stored.

use fake_telegram::flood::QuotaMode;
use fake_telegram::world::{Media, MediaKind};
use fake_telegram::{FakeTelegram, Options};

use super::{Env, sql};

/// A fake Telegram with one empty channel and strict quotas, for files posted by the test.
pub async fn one_channel_fake() -> FakeTelegram {
    FakeTelegram::start(Options {
        channels: 1,
        posts: 0,
        password: None,
        quotas: QuotaMode::Strict,
        ..Default::default()
    })
    .await
    .unwrap()
}

pub fn media(kind: MediaKind, id: i64, size: i64, dc: i32) -> Media {
    let (mime, name) = match kind {
        MediaKind::Photo => ("image/jpeg", None),
        MediaKind::Video | MediaKind::Round | MediaKind::Gif => ("video/mp4", Some("v.mp4")),
        MediaKind::Audio => ("audio/mpeg", Some("a.mp3")),
        MediaKind::Voice => ("audio/ogg", None),
        MediaKind::Sticker => ("image/webp", Some("sticker.webp")),
        MediaKind::Document => ("application/pdf", Some("report.pdf")),
    };
    let mut m = if kind == MediaKind::Photo {
        Media::photo(id, 1280, 960, size)
    } else {
        let mut m = Media::document(id, mime, size, name.unwrap_or(""));
        m.kind = kind;
        m.file_name = name.map(str::to_string);
        (m.w, m.h, m.duration) = (640, 360, 12.0);
        if matches!(kind, MediaKind::Video | MediaKind::Round | MediaKind::Gif) {
            m.thumb = Some(6_000 + id as i32 % 1000);
        }
        m
    };
    m.dc = dc;
    m
}

/// `(message id, sha256, path, state, reason)` of every media row of `ch`.
pub fn rows(env: &Env, ch: i64) -> Vec<(i64, String, String, String, String)> {
    sql(
        env,
        &format!(
            "SELECT message_id, coalesce(sha256,''), coalesce(path,''), state, coalesce(reason,'') FROM media WHERE channel_id = {ch} ORDER BY message_id"
        ),
    )
    .lines()
    .map(|l| {
        let f: Vec<&str> = l.split('|').collect();
        (
            f[0].parse().unwrap(),
            f[1].to_string(),
            f[2].to_string(),
            f[3].to_string(),
            f[4].to_string(),
        )
    })
    .collect()
}

pub fn sha_of_file(p: &std::path::Path) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}
