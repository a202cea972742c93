//! One daemon per state directory. The daemon holds an exclusive lock on `tgparser.lock` for
//! its whole life; commands that must not run beside it (`rotate-key`) take the same lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::StoreError;

pub const LOCK_FILE: &str = "tgparser.lock";

#[derive(Debug, thiserror::Error)]
#[error(
    "another tgparser is using the state directory {dir} (lock {lock} is held); stop it first (systemctl stop tgparser)"
)]
pub struct Locked {
    pub dir: PathBuf,
    pub lock: PathBuf,
}

/// Held for as long as the value lives; the OS releases it if the process dies.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

impl StateLock {
    pub fn acquire(dir: &Path) -> Result<StateLock, anyhow::Error> {
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::StateDir {
                path: dir.to_path_buf(),
                reason: e.to_string(),
            })?;
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        let lock = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock)
            .map_err(|e| StoreError::StateDir {
                path: dir.to_path_buf(),
                reason: format!("cannot open {}: {e}", lock.display()),
            })?;
        match file.try_lock() {
            Ok(()) => Ok(StateLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(Locked {
                dir: dir.to_path_buf(),
                lock,
            }
            .into()),
            Err(TryLockError::Error(e)) => Err(StoreError::StateDir {
                path: dir.to_path_buf(),
                reason: format!("cannot lock {}: {e}", lock.display()),
            }
            .into()),
        }
    }
}
