//! Room for files: the budget (`media.max_total_size`) and the disk's free space
//! (`media.min_free_space`), checked before each batch of downloads.

use std::path::{Path, PathBuf};

use crate::config::MediaConfig;
use crate::store::Store;

pub struct Room {
    dir: PathBuf,
    budget: Option<i64>,
    reserve: i64,
}

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
        }
    }

    /// Why a file of `need` bytes cannot be fetched now, if it cannot.
    pub async fn lacks(&self, store: &Store, need: i64) -> Option<String> {
        if let Some(budget) = self.budget {
            match store.media_bytes().await {
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
