//! One client connection: frames in, decrypted messages unpacked (containers, gzip), service
//! messages answered, RPCs dispatched; answers and pushed updates out through one writer.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use grammers_tl_types as tl;
use tl::{Cursor, Deserializable, Serializable};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;

use super::wire::{self, AuthKey, WireError};
use super::{Shared, rpc, session};
use crate::faults::FaultKind;

const MSG_CONTAINER: u32 = 0x73f1_f8dc;
const GZIP_PACKED: u32 = 0x3072_cfa1;
const MSGS_ACK: u32 = 0x62d6_b459;
const PING: u32 = 0x7abe_77ec;
const PING_DELAY_DISCONNECT: u32 = 0xf342_7b8c;
const GET_FUTURE_SALTS: u32 = 0xb921_bd04;
const DESTROY_SESSION: u32 = 0xe751_2126;
const HTTP_WAIT: u32 = 0x9299_359f;
const MSGS_STATE_REQ: u32 = 0xda69_fb52;
const MSG_RESEND_REQ: u32 = 0x7d86_1a08;
const RPC_RESULT: u32 = 0xf35c_6d01;
const FUTURE_SALTS: u32 = 0xae50_0895;
const DESTROY_SESSION_OK: u32 = 0xe220_45fc;
/// Decompressed requests larger than this are refused (a zip bomb would otherwise win).
const MAX_UNZIPPED: u64 = 16 * 1024 * 1024;

pub enum Out {
    Message {
        body: Vec<u8>,
        response: bool,
        content: bool,
    },
    /// Bytes written as they are (a deliberately broken frame).
    Raw(Vec<u8>),
}

/// What the reader learns and the writer needs.
pub struct Conn {
    /// The DC whose listener accepted the connection.
    pub dc: i32,
    pub key: std::sync::OnceLock<AuthKey>,
    pub session_id: AtomicI64,
    pub salt: AtomicI64,
    /// The client asked for no updates on this connection (`invokeWithoutUpdates`).
    pub no_updates: AtomicBool,
}

pub async fn connection(stream: TcpStream, shared: Arc<Shared>, dc: i32) -> Result<(), WireError> {
    let (mut rd, wr) = stream.into_split();
    let conn = Arc::new(Conn {
        dc,
        key: std::sync::OnceLock::new(),
        session_id: AtomicI64::new(0),
        salt: AtomicI64::new(0),
        no_updates: AtomicBool::new(false),
    });
    let (tx, rx) = mpsc::unbounded_channel::<Out>();
    let writer = tokio::spawn(write_loop(wr, rx, conn.clone(), shared.clone()));
    let mut pusher: Option<tokio::task::JoinHandle<()>> = None;
    let result = read_loop(&mut rd, &shared, &conn, &tx, &mut pusher).await;
    if let Some(p) = pusher {
        p.abort();
    }
    drop(tx);
    let _ = writer.await;
    result
}

async fn read_loop(
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    shared: &Arc<Shared>,
    conn: &Arc<Conn>,
    tx: &mpsc::UnboundedSender<Out>,
    pusher: &mut Option<tokio::task::JoinHandle<()>>,
) -> Result<(), WireError> {
    let mut seq = 0i32;
    let mut drop_after: Option<u32> = None;
    // Telegram closes a connection that stays silent: after the delay a ping_delay_disconnect
    // asked for, or after a while without any message.
    let idle = *shared.idle_close.lock().unwrap_or_else(|p| p.into_inner());
    let mut deadline = tokio::time::Instant::now() + idle;
    loop {
        let payload = match tokio::time::timeout_at(deadline, wire::read_frame(rd, &mut seq)).await
        {
            Ok(p) => p?,
            Err(_) => {
                shared.world.lock().stats.idle_closed += 1;
                return Err(WireError::Closed);
            }
        };
        deadline = tokio::time::Instant::now() + idle;
        let key_id = wire::key_id_of(&payload).ok_or(WireError::BadPayload(payload.len()))?;
        if key_id == [0u8; 8] {
            // A plain (unencrypted) message starts a key exchange, which this server cannot do:
            // its keys are pre-shared. Close instead of answering -404.
            return Err(WireError::UnknownKey(
                "0000000000000000 (key exchange)".into(),
            ));
        }
        let key = {
            let keys = shared.keys.lock().unwrap_or_else(|p| p.into_inner());
            keys.get(&key_id)
                .filter(|(_, s)| s.dc == conn.dc)
                .map(|(k, _)| k.clone())
        }
        .ok_or_else(|| WireError::UnknownKey(hex::encode(key_id)))?;
        let _ = conn.key.set(key.clone());
        let plain = wire::decrypt_from_client(&key, &payload)?;
        if plain.len() < 32 {
            return Err(WireError::BadPayload(plain.len()));
        }
        let salt = i64::from_le_bytes(plain[0..8].try_into().unwrap_or_default());
        let session_id = i64::from_le_bytes(plain[8..16].try_into().unwrap_or_default());
        let msg_id = i64::from_le_bytes(plain[16..24].try_into().unwrap_or_default());
        let seqno = i32::from_le_bytes(plain[24..28].try_into().unwrap_or_default());
        let len = u32::from_le_bytes(plain[28..32].try_into().unwrap_or_default()) as usize;
        let body = plain
            .get(32..32 + len)
            .ok_or(WireError::BadPayload(plain.len()))?;
        // The server's own messages carry the server's salt.
        conn.salt
            .store(shared.sessions.current_salt(), Ordering::Relaxed);
        conn.session_id.store(session_id, Ordering::Relaxed);
        if let Some(refusal) = shared.sessions.check(salt, msg_id) {
            let body = match refusal {
                session::Refusal::BadMsg { code } => {
                    shared.world.lock().stats.bad_msgs += 1;
                    session::bad_msg_notification(msg_id, seqno, code)
                }
                session::Refusal::BadSalt => {
                    shared.world.lock().stats.bad_salts += 1;
                    session::bad_server_salt(msg_id, seqno, shared.sessions.current_salt())
                }
            };
            let _ = tx.send(Out::Message {
                body,
                response: true,
                content: false,
            });
            continue;
        }
        if shared.sessions.created(key_id, session_id) {
            shared.world.lock().stats.new_sessions += 1;
            let _ = tx.send(Out::Message {
                body: session::new_session_created(msg_id, shared.sessions.current_salt()),
                response: false,
                content: true,
            });
        }
        if pusher.is_none() {
            *pusher = Some(tokio::spawn(super::updates::push_loop(
                shared.clone(),
                conn.clone(),
                key_id,
                tx.clone(),
            )));
        }

        if let Some(FaultKind::Drop { after }) = shared
            .faults
            .take("*connection*", |k| matches!(k, FaultKind::Drop { .. }))
        {
            drop_after = Some(after);
        }
        if let Some(n) = drop_after.as_mut() {
            if *n == 0 {
                return Err(WireError::Closed);
            }
            *n -= 1;
        }

        let mut flat = Vec::new();
        flatten(msg_id, body, &mut flat, 0);
        for (msg_id, body) in flat {
            if let Some(delay) = ping_disconnect_delay(&body) {
                deadline = tokio::time::Instant::now() + delay;
            }
            handle(shared, conn, key_id, tx, msg_id, &body).await;
        }
    }
}

/// The `disconnect_delay` of a `ping_delay_disconnect`: the connection is closed if nothing
/// else arrives within it.
fn ping_disconnect_delay(body: &[u8]) -> Option<std::time::Duration> {
    if body.get(..4)? != PING_DELAY_DISCONNECT.to_le_bytes() {
        return None;
    }
    let secs = i32::from_le_bytes(body.get(12..16)?.try_into().ok()?);
    Some(std::time::Duration::from_secs(secs.clamp(1, 3600) as u64))
}

/// Unpacks containers and gzip into a flat list of `(msg_id, body)`.
fn flatten(msg_id: i64, body: &[u8], out: &mut Vec<(i64, Vec<u8>)>, depth: u8) {
    let ctor = body
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    match ctor {
        Some(MSG_CONTAINER) if depth < 2 => {
            let mut at = 8usize;
            let count = body
                .get(4..8)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .unwrap_or(0);
            for _ in 0..count.max(0) {
                let Some(head) = body.get(at..at + 16) else {
                    return;
                };
                let inner_id = i64::from_le_bytes(head[..8].try_into().unwrap_or_default());
                let len = u32::from_le_bytes(head[12..16].try_into().unwrap_or_default()) as usize;
                let Some(inner) = body.get(at + 16..at + 16 + len) else {
                    return;
                };
                flatten(inner_id, inner, out, depth + 1);
                at += 16 + len;
            }
        }
        Some(GZIP_PACKED) if depth < 3 => {
            let mut cur = Cursor::from_slice(&body[4..]);
            let Ok(packed) = Vec::<u8>::deserialize(&mut cur) else {
                return;
            };
            let mut unzipped = Vec::new();
            let decoder = flate2::read::GzDecoder::new(&packed[..]);
            if decoder
                .take(MAX_UNZIPPED)
                .read_to_end(&mut unzipped)
                .is_ok()
            {
                flatten(msg_id, &unzipped, out, depth + 1);
            }
        }
        Some(_) => out.push((msg_id, body.to_vec())),
        None => {}
    }
}

async fn handle(
    shared: &Arc<Shared>,
    conn: &Arc<Conn>,
    key_id: [u8; 8],
    tx: &mpsc::UnboundedSender<Out>,
    msg_id: i64,
    body: &[u8],
) {
    let ctor = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
    let send = |body: Vec<u8>, response: bool| {
        let _ = tx.send(Out::Message {
            body,
            response,
            content: true,
        });
    };
    match ctor {
        MSGS_ACK | HTTP_WAIT | MSGS_STATE_REQ | MSG_RESEND_REQ => {}
        PING | PING_DELAY_DISCONNECT => {
            let ping_id = body
                .get(4..12)
                .map(|b| i64::from_le_bytes(b.try_into().unwrap_or_default()))
                .unwrap_or(0);
            send(
                tl::enums::Pong::Pong(tl::types::Pong { msg_id, ping_id }).to_bytes(),
                true,
            );
        }
        GET_FUTURE_SALTS => {
            let now = crate::world::unix_now();
            let num = body
                .get(4..8)
                .map(|b| i32::from_le_bytes(b.try_into().unwrap_or_default()))
                .unwrap_or(1)
                .clamp(1, 64) as usize;
            let salts = shared.sessions.future_salts(num);
            let mut out = Vec::new();
            FUTURE_SALTS.serialize(&mut out);
            msg_id.serialize(&mut out);
            now.serialize(&mut out);
            (salts.len() as i32).serialize(&mut out);
            for (since, until, salt) in salts {
                since.serialize(&mut out);
                until.serialize(&mut out);
                salt.serialize(&mut out);
            }
            send(out, true);
        }
        DESTROY_SESSION => {
            let mut out = Vec::new();
            DESTROY_SESSION_OK.serialize(&mut out);
            conn.session_id.load(Ordering::Relaxed).serialize(&mut out);
            send(out, true);
        }
        _ => {
            let ctx = rpc::Ctx {
                shared: shared.clone(),
                conn: conn.clone(),
                key_id,
            };
            let method = rpc::method_name(body);
            if let Some(d) = shared.faults.latency(&method) {
                tokio::time::sleep(d).await;
            }
            if shared
                .faults
                .take(&method, |k| matches!(k, FaultKind::MalformedFrame))
                .is_some()
            {
                let mut junk = vec![0u8; 64];
                junk[..4].copy_from_slice(&64i32.to_le_bytes());
                let _ = tx.send(Out::Raw(junk));
                return;
            }
            let result = match rpc::call(&ctx, body).await {
                Ok(bytes) => bytes,
                Err(e) => tl::enums::RpcError::Error(tl::types::RpcError {
                    error_code: e.code,
                    error_message: e.message,
                })
                .to_bytes(),
            };
            let mut out = Vec::with_capacity(result.len() + 12);
            RPC_RESULT.serialize(&mut out);
            msg_id.serialize(&mut out);
            match shared.gzip_over {
                // File parts are compressed media already: sent as they are.
                Some(limit) if result.len() > limit && method != "upload.getFile" => {
                    let mut enc =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    let packed = std::io::Write::write_all(&mut enc, &result)
                        .ok()
                        .and_then(|_| enc.finish().ok());
                    match packed {
                        Some(packed) if packed.len() < result.len() => {
                            GZIP_PACKED.serialize(&mut out);
                            packed.serialize(&mut out);
                        }
                        _ => out.extend_from_slice(&result),
                    }
                }
                _ => out.extend_from_slice(&result),
            }
            send(out, true);
        }
    }
}

async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Out>,
    conn: Arc<Conn>,
    shared: Arc<Shared>,
) {
    let mut out_seq = 0i32;
    let mut content_count = 0i32;
    while let Some(msg) = rx.recv().await {
        let frame = match msg {
            Out::Raw(bytes) => bytes,
            Out::Message {
                body,
                response,
                content,
            } => {
                let Some(key) = conn.key.get() else { continue };
                let seq_no = if content {
                    content_count += 1;
                    content_count * 2 - 1
                } else {
                    content_count * 2
                };
                let mut plain = Vec::with_capacity(body.len() + 32);
                plain.extend_from_slice(&conn.salt.load(Ordering::Relaxed).to_le_bytes());
                plain.extend_from_slice(&conn.session_id.load(Ordering::Relaxed).to_le_bytes());
                plain.extend_from_slice(&shared.next_msg_id(response).to_le_bytes());
                plain.extend_from_slice(&seq_no.to_le_bytes());
                plain.extend_from_slice(&(body.len() as i32).to_le_bytes());
                plain.extend_from_slice(&body);
                let enc = wire::encrypt_for_client(key, plain);
                wire::pack_frame(&mut out_seq, &enc)
            }
        };
        if wr.write_all(&frame).await.is_err() {
            return;
        }
    }
}
