//! Files the fake serves: each photo, video, document, audio file, voice message, round video,
//! sticker and GIF of a post is a file whose bytes are made from its id, so any part can be
//! served (and a test can hash the whole) without storing it. A file lives on one DC and is
//! reached through a file reference that expires (core.telegram.org/api/file_reference); the
//! same file id in many posts (a forward, a repost) is the same file.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a post's file is, as Telegram tells them apart (a photo, or a document whose
/// attributes say video, round video, audio, voice, sticker or GIF).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Photo,
    Document,
    Video,
    Round,
    Audio,
    Voice,
    Sticker,
    Gif,
}

/// A post's file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Media {
    pub kind: MediaKind,
    /// The file's id (a photo's or a document's).
    pub id: i64,
    /// Its size in bytes (a photo's largest size).
    pub size: i64,
    #[serde(default)]
    pub mime_type: String,
    #[serde(default)]
    pub file_name: Option<String>,
    #[serde(default)]
    pub w: i32,
    #[serde(default)]
    pub h: i32,
    /// Seconds, for video, round video, audio and voice.
    #[serde(default)]
    pub duration: f64,
    /// The DC the file is stored on: `upload.getFile` elsewhere answers `FILE_MIGRATE_X`.
    #[serde(default = "default_dc")]
    pub dc: i32,
    /// The size of its thumbnail (type `m`), if it has one (photos always do).
    #[serde(default)]
    pub thumb: Option<i32>,
    /// Where the file is stored now, if Telegram moved it after its posts named `dc`:
    /// `upload.getFile` on `dc` then answers `FILE_MIGRATE_X` to this one
    /// (core.telegram.org/api/files: "the file is on another DC").
    #[serde(default)]
    pub moved_to: Option<i32>,
}

fn default_dc() -> i32 {
    2
}

impl Media {
    pub fn photo(id: i64, w: i32, h: i32, size: i64) -> Media {
        Media {
            kind: MediaKind::Photo,
            id,
            size,
            mime_type: "image/jpeg".into(),
            file_name: None,
            w,
            h,
            duration: 0.0,
            dc: default_dc(),
            thumb: Some((size / 20).clamp(1_000, 30_000) as i32),
            moved_to: None,
        }
    }

    pub fn document(id: i64, mime_type: &str, size: i64, file_name: &str) -> Media {
        Media {
            kind: MediaKind::Document,
            id,
            size,
            mime_type: mime_type.into(),
            file_name: Some(file_name.into()),
            w: 0,
            h: 0,
            duration: 0.0,
            dc: default_dc(),
            thumb: None,
            moved_to: None,
        }
    }

    /// The thumbnail's file id (its bytes are a file of their own).
    pub fn thumb_id(&self) -> i64 {
        thumb_id(self.id)
    }

    /// The DC that serves the file.
    pub fn stored_on(&self) -> i32 {
        self.moved_to.unwrap_or(self.dc)
    }

    /// How the file (or its thumbnail, a JPEG) begins, as its type's files do, so a client
    /// that reads the content (a Bot API `sendPhoto`) sees what it would on Telegram.
    pub fn magic(&self, thumb: bool) -> &'static [u8] {
        if thumb || self.kind == MediaKind::Photo {
            return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00";
        }
        match self.mime_type.as_str() {
            "image/jpeg" => b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
            "image/png" => b"\x89PNG\r\n\x1a\n",
            "image/webp" => b"RIFF\x00\x00\x00\x00WEBPVP8 ",
            "video/mp4" => b"\x00\x00\x00\x20ftypisom",
            "audio/mpeg" => b"ID3\x04\x00",
            "audio/ogg" => b"OggS\x00",
            "application/pdf" => b"%PDF-1.7\n",
            "application/zip" => b"PK\x03\x04",
            _ => b"",
        }
    }

    /// Bytes of the file (or its thumbnail) from `offset`, at most `len`.
    pub fn bytes(&self, thumb: bool, offset: i64, len: usize) -> Vec<u8> {
        let (id, size) = self.file(thumb);
        file_bytes(id, size, self.magic(thumb), offset, len)
    }

    /// The SHA-256 of the whole file (or its thumbnail): what a download must come to.
    pub fn sha256(&self, thumb: bool) -> String {
        let (id, size) = self.file(thumb);
        file_sha256(id, size, self.magic(thumb))
    }

    fn file(&self, thumb: bool) -> (i64, i64) {
        if thumb {
            (self.thumb_id(), self.thumb.unwrap_or(0) as i64)
        } else {
            (self.id, self.size)
        }
    }
}

pub fn thumb_id(id: i64) -> i64 {
    id ^ 0x0074_6875_6d62
}

fn mix(mut z: u64) -> u64 {
    // splitmix64: every 8 bytes of a file from its id and position alone.
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The bytes of file `id` from `offset`, at most `len` of them and none past `size`.
pub fn file_bytes(id: i64, size: i64, magic: &[u8], offset: i64, len: usize) -> Vec<u8> {
    if offset < 0 || offset >= size {
        return Vec::new();
    }
    let end = (offset + len as i64).min(size);
    let mut out = Vec::with_capacity((end - offset) as usize);
    let mut pos = offset;
    while pos < end {
        let word = mix((id as u64) ^ ((pos / 8) as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93));
        let bytes = word.to_le_bytes();
        let from = (pos % 8) as usize;
        let take = (8 - from).min((end - pos) as usize);
        out.extend_from_slice(&bytes[from..from + take]);
        pos += take as i64;
    }
    // The file's first bytes say its type.
    for (i, b) in magic.iter().enumerate() {
        let at = i as i64 - offset;
        if (0..out.len() as i64).contains(&at) {
            out[at as usize] = *b;
        }
    }
    out
}

/// The SHA-256 of the whole file, lowercase hex: what a download must come to.
pub fn file_sha256(id: i64, size: i64, magic: &[u8]) -> String {
    let mut h = Sha256::new();
    let mut off = 0;
    while off < size {
        let part = file_bytes(id, size, magic, off, 1 << 20);
        off += part.len() as i64;
        h.update(&part);
    }
    hex::encode(h.finalize())
}

/// A file reference as served at `now`: when it was issued, and a check over the file and that
/// time (so one reference cannot be turned into another's).
pub fn file_reference(id: i64, now: i32) -> Vec<u8> {
    let mut r = now.to_be_bytes().to_vec();
    r.extend_from_slice(&(mix(id as u64 ^ now as u64 ^ 0x6669_6c65) as u32).to_be_bytes());
    r
}

/// Why a file reference is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedReference {
    Empty,
    Invalid,
    Expired,
}

impl RefusedReference {
    pub fn error(self) -> &'static str {
        match self {
            RefusedReference::Empty => "FILE_REFERENCE_EMPTY",
            RefusedReference::Invalid => "FILE_REFERENCE_INVALID",
            RefusedReference::Expired => "FILE_REFERENCE_EXPIRED",
        }
    }
}

/// Checks a file reference for file `id` at `now`, valid for `ttl_secs` after it was issued.
pub fn check_reference(
    id: i64,
    reference: &[u8],
    now: i32,
    ttl_secs: i32,
) -> Result<(), RefusedReference> {
    if reference.is_empty() {
        return Err(RefusedReference::Empty);
    }
    let Ok(issued) = <[u8; 4]>::try_from(reference.get(..4).unwrap_or_default()) else {
        return Err(RefusedReference::Invalid);
    };
    let issued = i32::from_be_bytes(issued);
    if reference != file_reference(id, issued).as_slice() {
        return Err(RefusedReference::Invalid);
    }
    if now.saturating_sub(issued) >= ttl_secs {
        return Err(RefusedReference::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_part_is_the_same_bytes_as_the_whole() {
        let magic = b"%PDF-1.7\n";
        let whole = file_bytes(42, 10_000, magic, 0, 10_000);
        assert_eq!(whole.len(), 10_000);
        assert!(whole.starts_with(magic));
        assert_eq!(file_bytes(42, 10_000, magic, 3, 777), whole[3..780]);
        assert_eq!(
            file_bytes(42, 10_000, magic, 4_093, 777),
            whole[4_093..4_870]
        );
        assert_eq!(file_bytes(42, 10_000, magic, 9_990, 4_096), whole[9_990..]);
        assert!(file_bytes(42, 10_000, magic, 10_000, 4_096).is_empty());
        assert_ne!(file_bytes(43, 10_000, magic, 0, 64), whole[..64]);
    }

    #[test]
    fn references_expire_and_cannot_be_forged() {
        let r = file_reference(7, 1_000);
        assert_eq!(check_reference(7, &r, 1_010, 60), Ok(()));
        assert_eq!(
            check_reference(7, &r, 1_060, 60),
            Err(RefusedReference::Expired)
        );
        assert_eq!(
            check_reference(8, &r, 1_010, 60),
            Err(RefusedReference::Invalid)
        );
        assert_eq!(
            check_reference(7, &[], 1_010, 60),
            Err(RefusedReference::Empty)
        );
    }
}
