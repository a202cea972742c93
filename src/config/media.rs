//! `[media]`: which files of a channel's posts are downloaded, and how much disk they may take.

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMedia {
    kinds: Option<Vec<String>>,
    max_file_size: Option<toml::Value>,
    video_thumbnails: Option<bool>,
    max_total_size: Option<toml::Value>,
    min_free_space: Option<toml::Value>,
    parallel: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MediaConfig {
    /// Kinds new channels archive (`messages.media_kind` names). None unless `[media]` says:
    /// the shipped config.toml asks for photos.
    pub kinds: Vec<String>,
    /// Bytes at most per file (a channel may set its own).
    pub max_file_size: i64,
    /// A video not downloaded (its kind off, or too big) gets its thumbnail.
    pub video_thumbnails: bool,
    /// Bytes all stored files may take; `None`: no limit but the disk's.
    pub max_total_size: Option<i64>,
    /// Downloads pause when the disk has less free than this: the database's own writes must
    /// never be what fails for want of space.
    pub min_free_space: i64,
    /// Files downloaded at once.
    pub parallel: usize,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            kinds: Vec::new(),
            max_file_size: 20 * 1_000_000,
            video_thumbnails: true,
            max_total_size: None,
            min_free_space: 1_000_000_000,
            parallel: 4,
        }
    }
}

/// The names a user writes for the kinds, and the stored names they stand for.
const KIND_NAMES: [(&str, &str); 8] = [
    ("photo", "photo"),
    ("video", "video"),
    ("round", "video_note"),
    ("gif", "animation"),
    ("audio", "audio"),
    ("voice", "voice"),
    ("sticker", "sticker"),
    ("document", "document"),
];

/// Kinds as a user writes them (`photo,video,round,gif,audio,voice,sticker,document`, `all`,
/// or `none`), as stored names.
pub fn parse_kinds(list: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for k in list.iter().flat_map(|k| k.split(',')) {
        let k = k.trim().to_ascii_lowercase();
        match k.as_str() {
            "" | "none" | "off" => {}
            "all" => out.extend(KIND_NAMES.iter().map(|(_, s)| s.to_string())),
            _ => match KIND_NAMES.iter().find(|(n, s)| *n == k || *s == k) {
                Some((_, s)) => out.push(s.to_string()),
                None => {
                    return Err(format!(
                        "found {k:?}; expected kinds among {}, or \"all\" or \"none\"",
                        KIND_NAMES.map(|(n, _)| n).join(", ")
                    ));
                }
            },
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A size: a number of bytes, or a string such as `"20 MB"`, `"512 KiB"`, `"1.5 GB"`.
pub fn parse_size(s: &str) -> Result<i64, String> {
    let bad = || format!("found {s:?}; expected a size such as \"20 MB\", \"512 KiB\" or \"2 GB\"");
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num.parse().map_err(|_| bad())?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let v = num * mult;
    if !(1.0..9.0e18).contains(&v) {
        return Err(bad());
    }
    Ok(v as i64)
}

fn size_value(key: &str, v: &toml::Value) -> Result<i64, String> {
    match v {
        toml::Value::Integer(n) if *n > 0 => Ok(*n),
        toml::Value::String(s) => parse_size(s),
        other => Err(format!(
            "{key}: found {other}; expected a size such as \"20 MB\" or a number of bytes"
        )),
    }
}

pub(super) fn validate(raw: RawMedia, origin: &str) -> Result<MediaConfig, ConfigError> {
    let d = MediaConfig::default();
    let err = |key: &str, m: String| ConfigError::new(origin, format!("media.{key}: {m}"));
    let size = |key: &str, v: &Option<toml::Value>| -> Result<Option<i64>, ConfigError> {
        v.as_ref()
            .map(|v| size_value(key, v).map_err(|m| err(key, m)))
            .transpose()
    };
    let parallel = raw.parallel.unwrap_or(d.parallel as u32);
    if !(1..=16).contains(&parallel) {
        return Err(err(
            "parallel",
            format!("found {parallel}; expected 1 to 16 files at once"),
        ));
    }
    Ok(MediaConfig {
        kinds: match &raw.kinds {
            Some(k) => parse_kinds(k).map_err(|m| err("kinds", m))?,
            None => d.kinds,
        },
        max_file_size: size("max_file_size", &raw.max_file_size)?.unwrap_or(d.max_file_size),
        video_thumbnails: raw.video_thumbnails.unwrap_or(d.video_thumbnails),
        max_total_size: size("max_total_size", &raw.max_total_size)?,
        min_free_space: size("min_free_space", &raw.min_free_space)?.unwrap_or(d.min_free_space),
        parallel: parallel as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_kinds_read_as_people_write_them() {
        assert_eq!(parse_size("20 MB"), Ok(20_000_000));
        assert_eq!(parse_size("512KiB"), Ok(524_288));
        assert_eq!(parse_size("1.5 GB"), Ok(1_500_000_000));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("0").is_err());
        assert_eq!(
            parse_kinds(&["photo, round".into(), "gif".into()]),
            Ok(vec![
                "animation".into(),
                "photo".into(),
                "video_note".into()
            ])
        );
        assert_eq!(parse_kinds(&["all".into()]).unwrap().len(), 8);
        assert_eq!(parse_kinds(&["none".into()]), Ok(vec![]));
        assert!(parse_kinds(&["pictures".into()]).is_err());
    }
}
