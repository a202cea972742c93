//! One file: `upload.getFile` part after part into `media/.partial/`, resumed from the last
//! whole part after a restart, then fsynced, hashed and moved to its content address.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use grammers_client::tl;
use sha2::{Digest, Sha256};

use super::Downloader;
use super::location::{self, Location};
use crate::guard::GuardError;
use crate::store::MediaJob;

/// Bytes per `upload.getFile`: 512 KiB, which divides 1 MiB, so no part crosses a 1 MiB
/// boundary (core.telegram.org/api/files).
pub const PART: i64 = 512 * 1024;
/// Fresh file references per file before giving up (each costs a `channels.getMessages`).
const REFRESHES: u32 = 3;
/// `FILE_MIGRATE` hops per part.
const HOPS: u32 = 3;
/// Parts asked for at once per file: 2 MiB in flight, enough to keep a fast link busy; with
/// `media.parallel` files at most 8 × 2 MiB of parts wait in memory.
const WINDOW: usize = 4;
/// A file larger than Telegram said by this much is refused (a server that never ends).
const SLACK: i64 = 1 << 20;

pub enum Error {
    Fatal(GuardError),
    Skip(String),
    Failed(String),
    Later(String),
    /// The disk is full: nothing is lost, the download waits.
    NoRoom(String),
}

fn io_err(what: &str, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28) {
        Error::NoRoom(format!("the disk is full ({what})"))
    } else {
        Error::Later(format!("{what}: {e}"))
    }
}

/// The extension a stored file gets, from its MIME type (or its name).
fn extension(job: &MediaJob) -> &'static str {
    if job.thumb {
        return "jpg";
    }
    match job.mime_type.as_deref().unwrap_or("") {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/webp" => "webp",
        "image/gif" => "gif",
        "video/mp4" => "mp4",
        "video/webm" => "webm",
        "video/quicktime" => "mov",
        "audio/mpeg" => "mp3",
        "audio/ogg" => "ogg",
        "audio/mp4" | "audio/x-m4a" => "m4a",
        "application/pdf" => "pdf",
        "application/zip" => "zip",
        "application/x-tgsticker" => "tgs",
        "text/plain" => "txt",
        _ => "bin",
    }
}

/// Where a content lives, relative to the media directory.
pub fn content_path(sha: &str, ext: &str) -> PathBuf {
    PathBuf::from(&sha[..2])
        .join(&sha[2..4])
        .join(format!("{sha}.{ext}"))
}

/// Downloads `job`'s file from `loc`, records it done.
pub async fn fetch(d: &Downloader, job: &MediaJob, mut loc: Location) -> Result<(), Error> {
    // The same file stored for another post: nothing to fetch.
    let photo = job.kind == "photo";
    if let Ok(Some((sha, path, size))) = d.store.media_by_file(loc.file_id, photo, job.thumb).await
        && d.dir.parent().is_some_and(|p| p.join(&path).is_file())
    {
        return d
            .store
            .media_done(job, loc.file_id, &sha, &path, size)
            .await
            .map_err(|e| Error::Later(e.to_string()));
    }
    let partial_dir = d.dir.join(".partial");
    std::fs::create_dir_all(&partial_dir).map_err(|e| io_err("creating media/.partial", e))?;
    // Named for the file too: a post whose file was replaced by an edit starts afresh.
    let partial = partial_dir.join(format!(
        "{}_{}_{}{}.part",
        job.channel_id,
        job.message_id,
        loc.file_id,
        if job.thumb { "_thumb" } else { "" }
    ));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| io_err("opening a partial file", e))?;
    // Resume from the last whole part (a torn last write is dropped).
    let have = file
        .metadata()
        .map_err(|e| io_err("a partial file", e))?
        .len() as i64;
    let mut offset = have - have % PART;
    file.set_len(offset as u64)
        .map_err(|e| io_err("a partial file", e))?;
    file.seek(SeekFrom::Start(offset as u64))
        .map_err(|e| io_err("a partial file", e))?;
    if offset > 0 {
        tracing::info!(
            channel = job.channel_id,
            post = job.message_id,
            offset,
            "resuming a download"
        );
    }
    // Parts are asked for a few at a time (one round trip's wait overlaps the next part's
    // transfer and decryption) and written in order, so the file on disk is always whole
    // parts from the start and a restart resumes from its end.
    let mut refreshes = 0;
    let mut again = false;
    loop {
        let mut window = futures::stream::FuturesOrdered::new();
        let mut next = offset;
        let mut fault = None;
        loop {
            while window.len() < WINDOW && wanted(next, loc.size, window.is_empty()) {
                window.push_back(get_part(d, loc.clone(), next, again));
                next += PART;
            }
            let Some(r) = futures::StreamExt::next(&mut window).await else {
                break;
            };
            match r {
                Ok((bytes, dc)) => {
                    again = false;
                    loc.dc = dc;
                    if let Err(e) = file.write_all(&bytes) {
                        // A torn part is dropped now, not at the resume: its bytes are the
                        // room the database may need.
                        let _ = file.set_len(offset as u64);
                        return Err(io_err("writing a part", e));
                    }
                    offset += bytes.len() as i64;
                    if (bytes.len() as i64) < PART {
                        break;
                    }
                    if loc.size.is_some_and(|s| offset > s + SLACK) {
                        return Err(Error::Failed(format!(
                            "Telegram sent more than the file's {} bytes",
                            loc.size.unwrap_or(0)
                        )));
                    }
                }
                Err(e) => {
                    fault = Some(e);
                    break;
                }
            }
        }
        // The parts asked for after a failed one are dropped; asked again from `offset`.
        drop(window);
        match fault {
            None => break,
            Some(PartError::Reference) if refreshes < REFRESHES => {
                refreshes += 1;
                loc = refresh(d, job).await?;
            }
            Some(PartError::Reference) => {
                return Err(Error::Later("the file reference kept expiring".into()));
            }
            Some(PartError::NotHere) if !again => again = true,
            Some(PartError::NotHere) => {
                return Err(Error::Later(
                    "the file's DC does not take the copied login".into(),
                ));
            }
            Some(PartError::Other(e)) => return Err(e),
        }
    }
    file.sync_all().map_err(|e| io_err("syncing a file", e))?;
    drop(file);
    let (sha, size) = tokio::task::spawn_blocking({
        let p = partial.clone();
        move || hash(&p)
    })
    .await
    .map_err(|e| Error::Later(e.to_string()))?
    .map_err(|e| io_err("reading a file back", e))?;
    if let Some(expected) = loc.size.filter(|s| *s > 0 && *s != size) {
        let _ = std::fs::remove_file(&partial);
        return Err(Error::Later(format!(
            "the file came to {size} bytes, not the {expected} Telegram gave"
        )));
    }
    let rel = content_path(&sha, extension(job));
    place(&partial, &d.dir.join(&rel)).map_err(|e| io_err("storing a file", e))?;
    let stored = Path::new("media").join(&rel);
    d.store
        .media_done(job, loc.file_id, &sha, &stored.to_string_lossy(), size)
        .await
        .map_err(|e| Error::Later(e.to_string()))
}

/// The SHA-256 and length of a file.
fn hash(p: &Path) -> std::io::Result<(String, i64)> {
    let mut f = std::fs::File::open(p)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0i64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as i64;
    }
    Ok((hex::encode(h.finalize()), n))
}

/// Moves a finished file to its content address (or drops it, if that content is stored
/// already), durably: the directory entry is fsynced before the row says done.
fn place(partial: &Path, dest: &Path) -> std::io::Result<()> {
    if dest.is_file() {
        return std::fs::remove_file(partial);
    }
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    std::fs::rename(partial, dest)?;
    std::fs::File::open(dir)?.sync_all()
}

enum PartError {
    /// The file reference expired or is refused: read the post again.
    Reference,
    /// The DC does not know the copied login (`AUTH_KEY_UNREGISTERED` off the home DC).
    NotHere,
    Other(Error),
}

/// Whether the part at `offset` is worth asking for: one within the file's size (a file of
/// unknown size is read a part at a time, until a short one).
fn wanted(offset: i64, size: Option<i64>, first: bool) -> bool {
    match size {
        Some(size) => offset < size || (first && offset == 0),
        None => first,
    }
}

/// The part at `offset`, on the file's DC (followed through `FILE_MIGRATE`): its bytes and
/// the DC that served it.
async fn get_part(
    d: &Downloader,
    mut loc: Location,
    offset: i64,
    again: bool,
) -> Result<(Vec<u8>, i32), PartError> {
    let req = tl::functions::upload::GetFile {
        precise: false,
        cdn_supported: false,
        location: loc.input.clone(),
        offset,
        limit: PART as i32,
    };
    let mut hops = 0;
    loop {
        d.auths
            .ensure(&d.conn, loc.dc, again)
            .await
            .map_err(|e| PartError::Other(guard_error(e)))?;
        match d.conn.guard.invoke(&d.conn.client, loc.dc, &req).await {
            Ok(tl::enums::upload::File::File(f)) => return Ok((f.bytes, loc.dc)),
            Ok(tl::enums::upload::File::CdnRedirect(_)) => {
                // Never asked for (cdn_supported is off).
                return Err(PartError::Other(Error::Failed(
                    "Telegram redirected the file to a CDN, which is not supported".into(),
                )));
            }
            Err(GuardError::Rpc {
                code: 303,
                value: Some(dc),
                ..
            }) if hops < HOPS => {
                hops += 1;
                loc.dc = dc as i32;
            }
            Err(GuardError::Rpc {
                code: 400, name, ..
            }) if name.starts_with("FILE_REFERENCE_") => {
                return Err(PartError::Reference);
            }
            Err(GuardError::Revoked(name))
                if name == "AUTH_KEY_UNREGISTERED" && loc.dc != d.conn.dc() =>
            {
                return Err(PartError::NotHere);
            }
            Err(e) => return Err(PartError::Other(guard_error(e))),
        }
    }
}

fn guard_error(e: GuardError) -> Error {
    match e {
        e @ (GuardError::Revoked(_) | GuardError::Frozen(_)) => Error::Fatal(e),
        GuardError::Rpc {
            code: 400, name, ..
        } => Error::Failed(format!("Telegram refused the file: {name}")),
        other => Error::Later(other.to_string()),
    }
}

/// Reads `job`'s post again for a fresh file reference.
async fn refresh(d: &Downloader, job: &MediaJob) -> Result<Location, Error> {
    match location::read(&d.conn, &d.store, job.channel_id, std::slice::from_ref(job)).await {
        Ok(mut found) => match found.remove(&job.message_id) {
            Some(Ok(loc)) => Ok(loc),
            Some(Err(why)) => Err(Error::Skip(why)),
            None => Err(Error::Skip("the post is gone".into())),
        },
        Err(location::Error::Fatal(e)) => Err(Error::Fatal(e)),
        Err(location::Error::Refused(why)) => Err(Error::Failed(why)),
        Err(location::Error::Later(why)) => Err(Error::Later(why)),
    }
}
