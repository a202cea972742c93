//! MTProto on the wire, server side: the Full transport (`len | seq | payload | crc32`) and
//! MTProto 2.0 encryption with a pre-shared auth key (client messages use x = 0, ours x = 8).

use sha1::Sha1;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest frame accepted; Telegram's own limit for a message container is about 1 MiB.
pub const MAX_FRAME: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection closed")]
    Closed,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad frame length {0}")]
    BadLen(i64),
    #[error("bad transport sequence number: expected {expected}, got {got}")]
    BadSeq { expected: i32, got: i32 },
    #[error("bad crc32")]
    BadCrc,
    #[error("encrypted payload of {0} bytes is not a valid MTProto 2.0 message")]
    BadPayload(usize),
    #[error("unknown auth key id {0}")]
    UnknownKey(String),
    #[error("msg_key does not match the decrypted message")]
    BadMsgKey,
}

/// A 256-byte authorization key and its id (`SHA1(key)[12..20]`).
#[derive(Clone)]
pub struct AuthKey {
    pub data: [u8; 256],
    pub id: [u8; 8],
}

impl AuthKey {
    pub fn new(data: [u8; 256]) -> AuthKey {
        let digest = Sha1::digest(data);
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[12..20]);
        AuthKey { data, id }
    }

    pub fn random() -> AuthKey {
        let mut data = [0u8; 256];
        for b in data.iter_mut() {
            *b = rand::random();
        }
        AuthKey::new(data)
    }
}

/// Reads one Full-transport frame and returns its payload.
pub async fn read_frame(
    r: &mut (impl AsyncRead + Unpin),
    expected_seq: &mut i32,
) -> Result<Vec<u8>, WireError> {
    let mut len_buf = [0u8; 4];
    match r.read_exact(&mut len_buf).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(WireError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = i32::from_le_bytes(len_buf) as i64;
    if len < 12 || len as usize > MAX_FRAME || len % 4 != 0 {
        return Err(WireError::BadLen(len));
    }
    let mut rest = vec![0u8; len as usize - 4];
    r.read_exact(&mut rest).await?;
    let seq = i32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let crc_at = rest.len() - 4;
    let crc = u32::from_le_bytes([
        rest[crc_at],
        rest[crc_at + 1],
        rest[crc_at + 2],
        rest[crc_at + 3],
    ]);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len_buf);
    hasher.update(&rest[..crc_at]);
    if hasher.finalize() != crc {
        return Err(WireError::BadCrc);
    }
    if seq != *expected_seq {
        return Err(WireError::BadSeq {
            expected: *expected_seq,
            got: seq,
        });
    }
    *expected_seq += 1;
    rest.truncate(crc_at);
    rest.drain(..4);
    Ok(rest)
}

/// Wraps a payload in a Full-transport frame.
pub fn pack_frame(seq: &mut i32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() + 12) as i32;
    let mut out = Vec::with_capacity(payload.len() + 12);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    *seq += 1;
    out
}

fn calc_key(key: &AuthKey, msg_key: &[u8], x: usize) -> ([u8; 32], [u8; 32]) {
    let a: [u8; 32] = Sha256::new()
        .chain_update(msg_key)
        .chain_update(&key.data[x..x + 36])
        .finalize()
        .into();
    let b: [u8; 32] = Sha256::new()
        .chain_update(&key.data[40 + x..40 + x + 36])
        .chain_update(msg_key)
        .finalize()
        .into();
    let mut aes_key = [0u8; 32];
    aes_key[..8].copy_from_slice(&a[..8]);
    aes_key[8..24].copy_from_slice(&b[8..24]);
    aes_key[24..].copy_from_slice(&a[24..]);
    let mut iv = [0u8; 32];
    iv[..8].copy_from_slice(&b[..8]);
    iv[8..24].copy_from_slice(&a[8..24]);
    iv[24..].copy_from_slice(&b[24..]);
    (aes_key, iv)
}

/// The auth key id a payload claims, if it is long enough to claim one.
pub fn key_id_of(payload: &[u8]) -> Option<[u8; 8]> {
    payload.get(..8).and_then(|s| s.try_into().ok())
}

/// Decrypts a client's message (x = 0) and checks its msg_key.
pub fn decrypt_from_client(key: &AuthKey, payload: &[u8]) -> Result<Vec<u8>, WireError> {
    if payload.len() < 24 + 32 || !(payload.len() - 24).is_multiple_of(16) {
        return Err(WireError::BadPayload(payload.len()));
    }
    if payload[..8] != key.id {
        return Err(WireError::UnknownKey(hex::encode(&payload[..8])));
    }
    let msg_key = &payload[8..24];
    let (k, iv) = calc_key(key, msg_key, 0);
    let mut plain = payload[24..].to_vec();
    grammers_crypto::aes::ige_decrypt(&mut plain, &k, &iv);
    let check = Sha256::new()
        .chain_update(&key.data[88..88 + 32])
        .chain_update(&plain)
        .finalize();
    if &check[8..24] != msg_key {
        return Err(WireError::BadMsgKey);
    }
    Ok(plain)
}

/// Encrypts a message for the client (x = 8) with 12..=1024 bytes of random padding.
pub fn encrypt_for_client(key: &AuthKey, mut plain: Vec<u8>) -> Vec<u8> {
    let pad = 16 + (16 - plain.len() % 16);
    plain.extend((0..pad).map(|_| rand::random::<u8>()));
    let large = Sha256::new()
        .chain_update(&key.data[88 + 8..88 + 8 + 32])
        .chain_update(&plain)
        .finalize();
    let msg_key = &large[8..24];
    let (k, iv) = calc_key(key, msg_key, 8);
    grammers_crypto::aes::ige_encrypt(&mut plain, &k, &iv);
    let mut out = Vec::with_capacity(24 + plain.len());
    out.extend_from_slice(&key.id);
    out.extend_from_slice(msg_key);
    out.extend_from_slice(&plain);
    out
}
