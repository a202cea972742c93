//! The MTProto server: Full transport over TCP, MTProto 2.0 with pre-shared auth keys, the
//! service messages a real client sends (containers, acks, gzip, pings, salts), and RPCs over the
//! [`World`](crate::world::World). Pushes `updates` for new, edited and deleted channel posts.
//!
//! A connection that sends garbage, a truncated or oversized frame, or an unknown auth key id is
//! dropped; every other connection keeps being served. Transport error -404 is never sent: it
//! would make a client throw its key away and try a key exchange that cannot work here.

mod auth;
mod channels;
pub mod convert;
pub mod dcs;
mod envelope;
mod files;
mod joins;
pub mod qr;
mod rpc;
pub mod session;
mod updates;
pub mod wire;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;

use crate::faults::Faults;
use crate::flood::Flood;
use crate::srp::Challenge;
use crate::world::World;
pub use wire::AuthKey;

/// A login code sent by `auth.sendCode`.
pub struct SentCode {
    pub phone: String,
    pub at: Instant,
    pub used: bool,
    /// How it was delivered (what `auth.signIn` must carry).
    pub delivery: crate::world::CodeDelivery,
}

/// What the server knows about one auth key: who is logged in with it, and login in progress.
#[derive(Default)]
pub struct KeyState {
    /// The DC the key belongs to: on Telegram an auth key is made with one DC and known only
    /// there, so another DC's listener does not know it.
    pub dc: i32,
    pub user_id: Option<i64>,
    /// A login email being set up (`account.sendVerifyEmailCode`): phone, email, code sent at.
    pub email_setup: Option<(String, String, Instant)>,
    pub codes: HashMap<String, SentCode>,
    /// Signed in with a code, waiting for the 2FA password.
    pub password_for: Option<i64>,
    pub challenge: Option<Challenge>,
    /// Revoked by strict flood control or a fault: every call answers AUTH_KEY_UNREGISTERED.
    pub revoked: bool,
}

pub struct Shared {
    pub world: World,
    pub flood: Flood,
    pub faults: Arc<Faults>,
    pub keys: Mutex<HashMap<[u8; 8], (AuthKey, KeyState)>>,
    /// The DC a new client is pointed at (`Info::dc_id`).
    pub dc_id: i32,
    /// Every DC's listener, as `help.getConfig` lists them.
    pub dcs: Mutex<BTreeMap<i32, SocketAddr>>,
    /// `auth.exportAuthorization` results not yet imported: bytes → (user, target DC, when).
    pub exports: Mutex<HashMap<Vec<u8>, (i64, i32, Instant)>>,
    /// QR login tokens (`auth.exportLoginToken`), by token.
    pub login_tokens: Mutex<HashMap<Vec<u8>, qr::LoginToken>>,
    /// A QR login token is valid this long.
    pub qr_ttl: Mutex<Duration>,
    /// Updates for the sessions of one auth key, logged in or not (`updateLoginToken`).
    pub key_events: tokio::sync::broadcast::Sender<([u8; 8], Vec<u8>)>,
    /// Known sessions and the salts (`session.rs`).
    pub sessions: session::Sessions,
    /// A connection with no message for this long is closed.
    pub idle_close: Mutex<Duration>,
    /// gzip results larger than this many bytes (None: never).
    pub gzip_over: Option<usize>,
    /// A login code is valid this long.
    pub code_ttl: Mutex<Duration>,
    /// A channel gap larger than this many events answers channelDifferenceTooLong.
    pub too_long_after: i32,
    last_msg_id: AtomicI64,
}

impl Shared {
    pub fn new(
        world: World,
        flood: Flood,
        faults: Arc<Faults>,
        dc_id: i32,
        gzip_over: Option<usize>,
    ) -> Shared {
        Shared {
            world,
            flood,
            faults,
            keys: Mutex::new(HashMap::new()),
            dc_id,
            dcs: Mutex::new(BTreeMap::new()),
            exports: Mutex::new(HashMap::new()),
            login_tokens: Mutex::new(HashMap::new()),
            qr_ttl: Mutex::new(Duration::from_secs(30)),
            key_events: tokio::sync::broadcast::channel(1024).0,
            sessions: session::Sessions::default(),
            idle_close: Mutex::new(Duration::from_secs(300)),
            gzip_over,
            code_ttl: Mutex::new(Duration::from_secs(300)),
            too_long_after: 500,
            last_msg_id: AtomicI64::new(0),
        }
    }

    /// Registers a pre-shared key of DC `dc`.
    pub fn add_key(&self, key: AuthKey, dc: i32) {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).insert(
            key.id,
            (
                key,
                KeyState {
                    dc,
                    ..KeyState::default()
                },
            ),
        );
    }

    pub fn with_key<T>(&self, id: &[u8; 8], f: impl FnOnce(&mut KeyState) -> T) -> Option<T> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.get_mut(id).map(|(_, s)| f(s))
    }

    /// Revokes every key logged in as `user_id` (a banned or revoked account).
    pub fn revoke_user(&self, user_id: Option<i64>) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        for (_, s) in keys.values_mut() {
            if user_id.is_none() || s.user_id == user_id {
                s.revoked = true;
            }
        }
    }

    /// Logs out every key logged in as `user_id` (every logged-in key when `None`), as ending
    /// the account's sessions from another device does: the keys answer AUTH_KEY_UNREGISTERED
    /// until they log in again, which they may (unlike a ban). Returns how many were logged out.
    pub fn log_out_user(&self, user_id: Option<i64>) -> usize {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let mut n = 0;
        for (_, s) in keys.values_mut() {
            if s.user_id.is_some() && (user_id.is_none() || s.user_id == user_id) {
                *s = KeyState {
                    dc: s.dc,
                    ..KeyState::default()
                };
                n += 1;
            }
        }
        n
    }

    /// A new server msg_id: time-based, strictly increasing, ≡ 1 (mod 4) for responses and
    /// ≡ 3 for messages that answer nothing, as MTProto requires.
    pub fn next_msg_id(&self, response: bool) -> i64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let base =
            ((now.as_secs() as i64) << 32) | ((now.subsec_nanos() as i64) << 2 & 0xffff_fffc);
        let tail = if response { 1 } else { 3 };
        let mut prev = self.last_msg_id.load(Ordering::Relaxed);
        loop {
            let mut id = (base & !3) | tail;
            if id <= prev {
                id = ((prev & !3) + 4) | tail;
            }
            match self
                .last_msg_id
                .compare_exchange(prev, id, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => return id,
                Err(p) => prev = p,
            }
        }
    }
}

/// One `messages.getHistory` page of `ch`, as the server computes it (for benchmarks).
pub fn history_page<'a>(
    ch: &'a crate::world::Channel,
    req: &grammers_tl_types::functions::messages::GetHistory,
) -> Vec<&'a crate::world::Post> {
    channels::history(ch, req)
}

/// The serialized `messages.channelMessages` answer for a page as account `viewer` sees it
/// (for benchmarks).
pub fn page_bytes(
    ch: &crate::world::Channel,
    page: &[&crate::world::Post],
    viewer: i64,
) -> Vec<u8> {
    channels::page_bytes(ch, page, viewer)
}

/// Accepts connections to DC `dc` until the listener fails or the task is dropped.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, dc: i32) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        shared.world.lock().stats.connections += 1;
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = envelope::connection(stream, shared.clone(), dc).await {
                tracing::debug!(%peer, error = %e, "mtproto connection closed");
                if !matches!(e, wire::WireError::Closed) {
                    shared.world.lock().stats.bad_frames += 1;
                }
            }
        });
    }
}
