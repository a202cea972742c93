//! Looking after the stored files: `media verify` (every file hashed again; a missing or
//! damaged one goes back to the queue) and `media gc` (files no row points to, and partial
//! downloads no pending file needs, removed).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::store::{Store, StoreError};

/// Files changed this recently are left alone by `gc`: a download may be moving one into place
/// while its row is being written.
const GC_GRACE: Duration = Duration::from_secs(600);

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verified {
    pub checked: u64,
    pub missing: u64,
    pub damaged: u64,
    /// Rows queued again.
    pub requeued: u64,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Collected {
    pub files: u64,
    pub bytes: u64,
}

fn sha256_of(p: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(p)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

/// Hashes every stored file again (`state_dir` holds `media/`). A damaged file is removed
/// (its content is fetched again); `progress` is told each file checked.
pub async fn verify(
    store: &Store,
    state_dir: &Path,
    mut progress: impl FnMut(u64, u64),
) -> Result<Verified, StoreError> {
    let files = store.media_stored().await?;
    let total = files.len() as u64;
    let mut v = Verified::default();
    for (path, sha) in files {
        let full = state_dir.join(&path);
        let found = tokio::task::spawn_blocking({
            let full = full.clone();
            move || sha256_of(&full)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        let why = match found {
            Ok(got) if got == sha => None,
            Ok(got) => {
                v.damaged += 1;
                let _ = std::fs::remove_file(&full);
                Some(format!(
                    "the stored file was damaged (SHA-256 {got}, not {sha})"
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                v.missing += 1;
                Some("the stored file was missing".to_string())
            }
            Err(e) => {
                v.damaged += 1;
                Some(format!("the stored file could not be read: {e}"))
            }
        };
        if let Some(why) = why {
            v.requeued += store.media_requeue(&path, &why).await?;
        }
        v.checked += 1;
        progress(v.checked, total);
    }
    Ok(v)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&p, out),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
}

fn recent(p: &Path) -> bool {
    p.metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_none_or(|age| age < GC_GRACE)
}

/// Removes the files under `<state_dir>/media` no done row points to, and partial downloads
/// of files no longer to fetch (none changed in the last ten minutes).
pub async fn gc(store: &Store, state_dir: &Path) -> Result<Collected, StoreError> {
    let media = state_dir.join("media");
    let mut files = Vec::new();
    walk(&media, &mut files);
    let mut c = Collected::default();
    for f in files {
        if recent(&f) {
            continue;
        }
        let Ok(rel) = f.strip_prefix(state_dir) else {
            continue;
        };
        let rel = rel.to_string_lossy().to_string();
        let in_partial = f.parent().is_some_and(|p| p.ends_with(".partial"));
        let keep = if in_partial {
            let name = f.file_name().map(|n| n.to_string_lossy().to_string());
            store
                .media_partial_wanted(name.as_deref().unwrap_or(""))
                .await?
        } else {
            store.media_path_used(&rel).await?
        };
        if !keep {
            let size = f.metadata().map(|m| m.len()).unwrap_or(0);
            if std::fs::remove_file(&f).is_ok() {
                c.files += 1;
                c.bytes += size;
            }
        }
    }
    Ok(c)
}
