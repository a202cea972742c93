//! Room for files: the budget (`media.max_total_size`) and the disk's free space
//! (`media.min_free_space`), checked before each batch of downloads.

use std::path::{Path, PathBuf};

use crate::config::MediaConfig;
use crate::store::Store;

pub struct Room {
    dir: PathBuf,
    budget: Option<i64>,
    reserve: i64,
    /// Bytes stored, as last read (summing every stored file is a scan of the table) and
    /// since grown by the files fetched: read again after [`USED_FOR`].
    used: std::sync::Mutex<Option<(i64, std::time::Instant)>>,
}

/// How long a reading of the bytes stored is used.
const USED_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// Bytes free for an unprivileged user on the filesystem holding `dir` (`None`: unknown).
pub fn free_bytes(dir: &Path) -> Option<i64> {
    let mut probe = dir;
    // The media directory may not exist yet: ask about the nearest one that does.
    while !probe.exists() {
        probe = probe.parent()?;
    }
    let st = rustix::fs::statvfs(probe).ok()?;
    Some((st.f_bavail as i64).saturating_mul(st.f_frsize as i64))
}

impl Room {
    pub fn new(dir: &Path, config: &MediaConfig) -> Room {
        Room {
            dir: dir.to_path_buf(),
            budget: config.max_total_size,
            reserve: config.min_free_space,
            used: std::sync::Mutex::new(None),
        }
    }

    /// A file of `bytes` was stored.
    pub fn stored(&self, bytes: i64) {
        if let Some((used, _)) = self.used.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            *used += bytes;
        }
    }

    async fn used(&self, store: &Store) -> Result<i64, crate::store::StoreError> {
        let cached = *self.used.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((used, at)) = cached
            && at.elapsed() < USED_FOR
        {
            return Ok(used);
        }
        let used = store.media_bytes().await?;
        *self.used.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((used, std::time::Instant::now()));
        Ok(used)
    }

    /// Why a file of `need` bytes cannot be fetched now, if it cannot.
    pub async fn lacks(&self, store: &Store, need: i64) -> Option<String> {
        if let Some(budget) = self.budget {
            match self.used(store).await {
                Ok(used) if used + need > budget => {
                    return Some(format!(
                        "the media budget is reached ({used} of {budget} bytes used; media.max_total_size)"
                    ));
                }
                Ok(_) => {}
                Err(e) => return Some(format!("cannot read how much is stored: {e}")),
            }
        }
        match free_bytes(&self.dir) {
            Some(free) if free - need < self.reserve => Some(format!(
                "the disk has {free} bytes free, and {} are kept for the database (media.min_free_space)",
                self.reserve
            )),
            _ => None,
        }
    }
}
