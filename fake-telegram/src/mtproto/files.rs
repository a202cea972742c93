//! Files: `upload.getFile`, by Telegram's rules (core.telegram.org/api/files,
//! core.telegram.org/method/upload.getFile):
//! - `offset` a multiple of 4 KiB and `limit` a multiple of 4 KiB that divides 1 MiB; with
//!   `precise`, both multiples of 1 KiB and `limit` at most 1 MiB; in both cases no part crosses
//!   a 1 MiB boundary (`OFFSET_INVALID`, `LIMIT_INVALID`);
//! - the file is served on the DC it is stored on; elsewhere `FILE_MIGRATE_X` (the caller needs
//!   an imported authorization there: without one, `AUTH_KEY_UNREGISTERED` before this);
//! - its file reference must be one Telegram served, not yet expired (`FILE_REFERENCE_EMPTY`,
//!   `_INVALID`, `_EXPIRED`: core.telegram.org/api/file_reference);
//! - an unknown file or a wrong access hash is `FILE_ID_INVALID`, a location that is not a
//!   photo's or a document's, or a thumbnail it does not have, `LOCATION_INVALID`;
//! - a part past the end is empty; the last part is shorter than `limit`.

use grammers_tl_types as tl;
use tl::{Serializable, enums, functions, types};

use super::convert::{document_hash, photo_hash};
use super::rpc::{Ctx, R, RpcErr, err};
use crate::world::files::{self, Media, MediaKind};
use crate::world::unix_now;

const MIB: i64 = 1 << 20;

/// Whether a part's `offset` and `limit` are ones Telegram serves.
fn check_part(precise: bool, offset: i64, limit: i32) -> Result<(), RpcErr> {
    let limit = limit as i64;
    let align = if precise { 1024 } else { 4096 };
    if offset < 0 || offset % align != 0 {
        return Err(err(400, "OFFSET_INVALID"));
    }
    let fits = if precise {
        limit <= MIB
    } else {
        MIB % limit.max(1) == 0
    };
    if limit <= 0 || limit % align != 0 || !fits || offset / MIB != (offset + limit - 1) / MIB {
        return Err(err(400, "LIMIT_INVALID"));
    }
    Ok(())
}

fn file_type(m: &Media, thumb: bool) -> enums::storage::FileType {
    use types::storage as s;
    if thumb || m.kind == MediaKind::Photo {
        return s::FileJpeg {}.into();
    }
    match m.mime_type.as_str() {
        "video/mp4" => s::FileMp4 {}.into(),
        "image/webp" => s::FileWebp {}.into(),
        "audio/mpeg" => s::FileMp3 {}.into(),
        _ => s::FileUnknown {}.into(),
    }
}

/// `upload.getFile` on the connection's DC.
pub(super) fn get_file(ctx: &Ctx, req: functions::upload::GetFile) -> R {
    check_part(req.precise, req.offset, req.limit)?;
    let (id, hash, reference, thumb, photo) = match &req.location {
        enums::InputFileLocation::InputPhotoFileLocation(l) => (
            l.id,
            l.access_hash,
            &l.file_reference,
            l.thumb_size.as_str(),
            true,
        ),
        enums::InputFileLocation::InputDocumentFileLocation(l) => (
            l.id,
            l.access_hash,
            &l.file_reference,
            l.thumb_size.as_str(),
            false,
        ),
        _ => return Err(err(400, "LOCATION_INVALID")),
    };
    let (m, ttl) = {
        let w = ctx.shared.world.lock();
        let m = w
            .files
            .get(&id)
            .filter(|m| {
                (m.kind == MediaKind::Photo) == photo
                    && hash
                        == if photo {
                            photo_hash(id)
                        } else {
                            document_hash(id)
                        }
            })
            .cloned()
            .ok_or_else(|| err(400, "FILE_ID_INVALID"))?;
        (m, w.file_reference_ttl)
    };
    if ctx.conn.dc != m.stored_on() {
        return Err(err(303, format!("FILE_MIGRATE_{}", m.stored_on())));
    }
    files::check_reference(id, reference, unix_now(), ttl).map_err(|r| err(400, r.error()))?;
    let is_thumb = match (photo, thumb, m.thumb) {
        (true, "y", _) | (false, "", _) => false,
        (_, "m", Some(_)) => true,
        _ => return Err(err(400, "LOCATION_INVALID")),
    };
    let bytes = m.bytes(is_thumb, req.offset, req.limit as usize);
    Ok(enums::upload::File::File(types::upload::File {
        r#type: file_type(&m, is_thumb),
        mtime: 0,
        bytes,
    })
    .to_bytes())
}

#[cfg(test)]
mod tests {
    use super::check_part;

    #[test]
    fn parts_follow_telegrams_rules() {
        assert!(check_part(false, 0, 512 * 1024).is_ok());
        assert!(check_part(false, 512 * 1024, 512 * 1024).is_ok());
        assert!(check_part(false, 4096, 4096).is_ok());
        // 1 MiB is not a multiple of 768 KiB.
        assert!(check_part(false, 0, 768 * 1024).is_err());
        assert!(check_part(false, 1000, 4096).is_err());
        // Across a 1 MiB boundary.
        assert!(check_part(false, 768 * 1024, 512 * 1024).is_err());
        assert!(check_part(true, 1024, 3072).is_ok());
        assert!(check_part(true, 1024, 2 * 1024 * 1024).is_err());
        assert!(check_part(true, 1024 * 1023, 2048).is_err());
        assert!(check_part(false, 0, 0).is_err());
    }
}
