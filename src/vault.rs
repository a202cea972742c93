//! The vault: AES-256-GCM sealing of every secret the daemon keeps at rest.
//!
//! A sealed record is `version (1) | key id (4) | nonce (12) | ciphertext + tag (16)`. The nonce
//! is fresh and random for every seal. The associated data binds the record to the table, the row
//! and the purpose it was sealed for, so a record copied to another row or column does not open.
//! Keys live only in memory, zeroized on drop; the key file holds 64 hex characters.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

pub const RECORD_VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(
        "vault key file {path} does not exist; create one with `tgparser keygen` (or point vault.key_file at it)"
    )]
    KeyMissing { path: PathBuf },
    #[error("vault key file {path} cannot be read: {reason}")]
    KeyUnreadable { path: PathBuf, reason: String },
    #[error(
        "vault key file {path} holds {found} bytes; expected a 32-byte key written as 64 hex characters, as `tgparser keygen` writes it"
    )]
    KeyWrongLength { path: PathBuf, found: usize },
    #[error(
        "the vault key in {path} (key id {found}) is not the key this database was sealed with (key id {expected}); \
         use the right key file. Nothing was changed. If a `rotate-key` was interrupted, the new key is in {path}.new"
    )]
    KeyMismatch {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error(
        "refusing to overwrite the existing key file {path}: data may be sealed with it. Move it away first"
    )]
    KeyExists { path: PathBuf },
    #[error("cannot write key file {path}: {reason}")]
    KeyWrite { path: PathBuf, reason: String },
    #[error("sealed value for {context} is malformed: {reason}")]
    Malformed { context: String, reason: String },
    #[error(
        "sealed value for {context} was sealed under key id {found}, not the current key {expected}"
    )]
    OtherKey {
        context: String,
        expected: String,
        found: String,
    },
    #[error("sealed value for {context} does not open: it was altered, or sealed for another row")]
    Tampered { context: String },
    #[error("cannot seal a value for {context}: it is larger than AES-GCM allows")]
    SealFailed { context: String },
}

impl VaultError {
    /// Problems an operator fixes in configuration (exit 78), as opposed to damaged data.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            VaultError::KeyMissing { .. }
                | VaultError::KeyUnreadable { .. }
                | VaultError::KeyWrongLength { .. }
                | VaultError::KeyMismatch { .. }
        )
    }
}

/// A 256-bit key. Zeroized on drop; never printed.
pub struct VaultKey {
    bytes: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VaultKey(id {})", self.id_hex())
    }
}

impl VaultKey {
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(bytes.as_mut());
        VaultKey { bytes }
    }

    pub fn from_bytes(raw: &[u8; 32]) -> Self {
        VaultKey {
            bytes: Zeroizing::new(*raw),
        }
    }

    /// Reads a key file: 64 hex characters (surrounding white space ignored) or 32 raw bytes.
    pub fn from_file(path: &Path) -> Result<Self, VaultError> {
        let data = Zeroizing::new(std::fs::read(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                VaultError::KeyMissing {
                    path: path.to_path_buf(),
                }
            } else {
                VaultError::KeyUnreadable {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                }
            }
        })?);
        let mut bytes = Zeroizing::new([0u8; 32]);
        if data.len() == 32 && hex_digits(&data) != 32 {
            bytes.copy_from_slice(&data);
            return Ok(VaultKey { bytes });
        }
        let trimmed = data.trim_ascii();
        if trimmed.len() == 64 && hex::decode_to_slice(trimmed, bytes.as_mut()).is_ok() {
            return Ok(VaultKey { bytes });
        }
        Err(VaultError::KeyWrongLength {
            path: path.to_path_buf(),
            found: if trimmed.len() == hex_digits(trimmed) && trimmed.len() % 2 == 0 {
                trimmed.len() / 2
            } else {
                data.len()
            },
        })
    }

    /// Writes the key as hex to a new file with mode 0600; never overwrites.
    pub fn write_new_file(&self, path: &Path) -> Result<(), VaultError> {
        let werr = |e: std::io::Error| VaultError::KeyWrite {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        if path.exists() {
            return Err(VaultError::KeyExists {
                path: path.to_path_buf(),
            });
        }
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
            && !dir.exists()
        {
            std::fs::create_dir_all(dir).map_err(werr)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(werr)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    VaultError::KeyExists {
                        path: path.to_path_buf(),
                    }
                } else {
                    werr(e)
                }
            })?;
        let mut text = Zeroizing::new(hex::encode(self.bytes.as_ref()));
        text.push('\n');
        f.write_all(text.as_bytes()).map_err(werr)?;
        f.sync_all().map_err(werr)?;
        Ok(())
    }

    /// A short public identifier of the key: lets errors say "wrong key" without revealing it.
    pub fn id(&self) -> [u8; KEY_ID_LEN] {
        let mut h = Sha256::new();
        h.update(b"tgparser vault key id\0");
        h.update(self.bytes.as_ref());
        let d = h.finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&d[..KEY_ID_LEN]);
        id
    }

    pub fn id_hex(&self) -> String {
        hex::encode(self.id())
    }
}

fn hex_digits(b: &[u8]) -> usize {
    b.iter().filter(|c| c.is_ascii_hexdigit()).count()
}

/// What a sealed value belongs to. Bound into the associated data.
#[derive(Debug, Clone, Copy)]
pub struct SealContext<'a> {
    pub table: &'a str,
    pub row: &'a str,
    pub purpose: &'a str,
}

impl fmt::Display for SealContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}].{}", self.table, self.row, self.purpose)
    }
}

impl SealContext<'_> {
    fn aad(&self, header: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(64);
        aad.extend_from_slice(b"tgparser-vault\0");
        aad.extend_from_slice(header);
        for part in [self.table, self.row, self.purpose] {
            aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        aad
    }
}

/// Seals and opens records under one key.
pub struct Vault {
    cipher: Aes256Gcm,
    key_id: [u8; KEY_ID_LEN],
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Vault(key id {})", hex::encode(self.key_id))
    }
}

impl Vault {
    pub fn new(key: &VaultKey) -> Self {
        // The key is copied into the cipher's schedule, which zeroizes itself on drop
        // (aes-gcm's `zeroize` feature).
        let mut k = *key.bytes;
        let cipher = Aes256Gcm::new(&k.into());
        k.zeroize();
        Vault {
            cipher,
            key_id: key.id(),
        }
    }

    pub fn key_id_hex(&self) -> String {
        hex::encode(self.key_id)
    }

    pub fn seal(&self, ctx: SealContext<'_>, plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        out.push(RECORD_VERSION);
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&nonce);
        let aad = ctx.aad(&out);
        let ct = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::SealFailed {
                context: ctx.to_string(),
            })?;
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn open(
        &self,
        ctx: SealContext<'_>,
        record: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        if record.len() < HEADER_LEN + TAG_LEN {
            return Err(VaultError::Malformed {
                context: ctx.to_string(),
                reason: format!("{} bytes is shorter than any sealed record", record.len()),
            });
        }
        if record[0] != RECORD_VERSION {
            return Err(VaultError::Malformed {
                context: ctx.to_string(),
                reason: format!("unknown record version {}", record[0]),
            });
        }
        let key_id = &record[1..1 + KEY_ID_LEN];
        if key_id != self.key_id {
            return Err(VaultError::OtherKey {
                context: ctx.to_string(),
                expected: hex::encode(self.key_id),
                found: hex::encode(key_id),
            });
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&record[1 + KEY_ID_LEN..HEADER_LEN]);
        let aad = ctx.aad(&record[..HEADER_LEN]);
        self.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &record[HEADER_LEN..],
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| VaultError::Tampered {
                context: ctx.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: SealContext<'static> = SealContext {
        table: "session_dcs",
        row: "2",
        purpose: "auth_key",
    };

    #[test]
    fn round_trip_with_fresh_nonces() {
        let v = Vault::new(&VaultKey::generate());
        let a = v.seal(CTX, b"secret auth key").unwrap();
        let b = v.seal(CTX, b"secret auth key").unwrap();
        assert_ne!(a, b, "two seals of one value must differ (fresh nonce)");
        assert_eq!(&v.open(CTX, &a).unwrap()[..], b"secret auth key");
        assert_eq!(a.len(), HEADER_LEN + 15 + TAG_LEN);
    }

    #[test]
    fn every_flipped_byte_fails_to_open() {
        let v = Vault::new(&VaultKey::generate());
        let rec = v.seal(CTX, b"0123456789abcdef").unwrap();
        for i in 0..rec.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = rec.clone();
                bad[i] ^= bit;
                assert!(v.open(CTX, &bad).is_err(), "flip of byte {i} opened");
            }
        }
        assert!(v.open(CTX, &rec[..rec.len() - 1]).is_err());
    }

    #[test]
    fn wrong_key_fails_to_open() {
        let rec = Vault::new(&VaultKey::generate()).seal(CTX, b"x").unwrap();
        let other = Vault::new(&VaultKey::generate());
        assert!(matches!(
            other.open(CTX, &rec),
            Err(VaultError::OtherKey { .. })
        ));
        // Same key id forged into the header: still the tag fails.
        let forged_key = VaultKey::generate();
        let forged = Vault::new(&forged_key);
        let mut rec2 = rec.clone();
        rec2[1..5].copy_from_slice(&forged_key.id());
        assert!(matches!(
            forged.open(CTX, &rec2),
            Err(VaultError::Tampered { .. })
        ));
    }

    #[test]
    fn record_moved_to_another_row_or_purpose_fails_to_open() {
        let v = Vault::new(&VaultKey::generate());
        let rec = v.seal(CTX, b"dc2 key").unwrap();
        let moved = SealContext { row: "4", ..CTX };
        assert!(matches!(
            v.open(moved, &rec),
            Err(VaultError::Tampered { .. })
        ));
        let repurposed = SealContext {
            purpose: "other",
            ..CTX
        };
        assert!(v.open(repurposed, &rec).is_err());
        let other_table = SealContext {
            table: "vault_meta",
            ..CTX
        };
        assert!(v.open(other_table, &rec).is_err());
    }

    #[test]
    fn key_file_hex_round_trip_and_wrong_lengths() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        let k = VaultKey::generate();
        k.write_new_file(&p).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(VaultKey::from_file(&p).unwrap().id(), k.id());
        assert!(matches!(
            k.write_new_file(&p),
            Err(VaultError::KeyExists { .. })
        ));

        let short = dir.path().join("short");
        std::fs::write(&short, "abcd\n").unwrap();
        let e = VaultKey::from_file(&short).unwrap_err();
        assert!(
            matches!(e, VaultError::KeyWrongLength { found: 2, .. }),
            "{e}"
        );
        assert!(e.is_config());
        let missing = VaultKey::from_file(&dir.path().join("nope")).unwrap_err();
        assert!(matches!(missing, VaultError::KeyMissing { .. }));
    }

    #[test]
    fn debug_never_shows_key_material() {
        let k = VaultKey::from_bytes(&[0xAB; 32]);
        let s = format!("{k:?} {:?}", Vault::new(&k));
        assert!(!s.to_lowercase().contains("abab"), "{s}");
    }
}
