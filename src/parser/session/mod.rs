//! grammers' `Session` over our store: DC options with auth keys sealed by the vault (the
//! associated data binds the DC), the peer cache and the updates state, as rows.
//!
//! grammers reads the session synchronously on every request, so everything lives in an
//! in-memory copy loaded at open. Writes that must survive a crash (home DC, DC options and their
//! keys) are committed at once with `synchronous=FULL`; the peer cache and the updates state,
//! which a client can always fetch again, are batched and flushed at most every second, when a
//! batch fills up, and on [`StoreSession::flush`].

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4, SocketAddrV6};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use grammers_session::SessionData;
use grammers_session::types::{
    ChannelKind, ChannelState, DcOption, PeerAuth, PeerId, PeerInfo, UpdatesState,
};
use sqlx::Row;

use crate::store::{SEALED_COLUMNS, Store, StoreError};
use crate::vault::Vault;

mod grammers;

const PEER_BATCH: usize = 512;
const STATE_FLUSH_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(
        "the sealed auth key for DC {dc} does not open ({reason}); the session row is left as it is. \
         Check vault.key_file, or run `tgparser logout --forget` to discard the session and log in again"
    )]
    SealedKey { dc: i32, reason: String },
    #[error("session row for DC {dc} is malformed: {reason}")]
    BadRow { dc: i32, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("session lock poisoned")]
    Poisoned,
}

impl From<sqlx::Error> for SessionError {
    fn from(e: sqlx::Error) -> Self {
        SessionError::Store(StoreError::from(e))
    }
}

#[derive(Default)]
struct Pending {
    peers: HashMap<PeerId, PeerInfo>,
    state: bool,
    channels: HashMap<i64, i32>,
    last_flush: Option<Instant>,
}

pub struct StoreSession {
    store: Store,
    vault: Arc<Vault>,
    data: Mutex<SessionData>,
    pending: Mutex<Pending>,
    /// Serializes flushes so two never interleave their transactions.
    flushing: tokio::sync::Mutex<()>,
}

fn dc_column() -> crate::store::SealedColumn {
    SEALED_COLUMNS
        .iter()
        .copied()
        .find(|c| c.table == "session_dcs")
        .unwrap_or(crate::store::SealedColumn {
            table: "session_dcs",
            key_column: "dc_id",
            column: "auth_key",
            purpose: "auth_key",
        })
}

fn channel_kind_name(k: ChannelKind) -> &'static str {
    match k {
        ChannelKind::Broadcast => "broadcast",
        ChannelKind::Megagroup => "megagroup",
        ChannelKind::Gigagroup => "gigagroup",
        ChannelKind::Community => "community",
    }
}

fn channel_kind_from(s: &str) -> Option<ChannelKind> {
    match s {
        "broadcast" => Some(ChannelKind::Broadcast),
        "megagroup" => Some(ChannelKind::Megagroup),
        "gigagroup" => Some(ChannelKind::Gigagroup),
        "community" => Some(ChannelKind::Community),
        _ => None,
    }
}

impl StoreSession {
    /// Loads the session. A sealed key that does not open is an error, and nothing is
    /// overwritten: the operator may just have pointed at the wrong key file.
    pub async fn open(store: Store, vault: Arc<Vault>) -> Result<StoreSession, SessionError> {
        let mut data = SessionData::default();
        let col = dc_column();
        let rows = sqlx::query("SELECT dc_id, ipv4, ipv6, auth_key FROM session_dcs")
            .fetch_all(store.reader())
            .await?;
        for row in rows {
            let dc: i64 = row.try_get(0)?;
            let dc = dc as i32;
            let ipv4: String = row.try_get(1)?;
            let ipv6: String = row.try_get(2)?;
            let sealed: Option<Vec<u8>> = row.try_get(3)?;
            let bad = |what: &str, v: &str| SessionError::BadRow {
                dc,
                reason: format!("{what} {v:?} is not an address"),
            };
            let ipv4: SocketAddrV4 = ipv4.parse().map_err(|_| bad("ipv4", &ipv4))?;
            let ipv6: SocketAddrV6 = ipv6.parse().map_err(|_| bad("ipv6", &ipv6))?;
            let auth_key = match sealed {
                None => None,
                Some(rec) => {
                    let dc_text = dc.to_string();
                    let plain = vault.open(col.context(&dc_text), &rec).map_err(|e| {
                        SessionError::SealedKey {
                            dc,
                            reason: e.to_string(),
                        }
                    })?;
                    let key: [u8; 256] =
                        plain
                            .as_slice()
                            .try_into()
                            .map_err(|_| SessionError::SealedKey {
                                dc,
                                reason: format!("it holds {} bytes, not 256", plain.len()),
                            })?;
                    Some(key)
                }
            };
            data.dc_options.insert(
                dc,
                DcOption {
                    id: dc,
                    ipv4,
                    ipv6,
                    auth_key,
                },
            );
        }
        if let Some(row) =
            sqlx::query("SELECT home_dc, pts, qts, date, seq FROM session_state WHERE id = 1")
                .fetch_optional(store.reader())
                .await?
        {
            data.home_dc = row.try_get::<i64, _>(0)? as i32;
            data.updates_state.pts = row.try_get::<i64, _>(1)? as i32;
            data.updates_state.qts = row.try_get::<i64, _>(2)? as i32;
            data.updates_state.date = row.try_get::<i64, _>(3)? as i32;
            data.updates_state.seq = row.try_get::<i64, _>(4)? as i32;
        }
        for row in sqlx::query("SELECT channel_id, pts FROM session_channel_state")
            .fetch_all(store.reader())
            .await?
        {
            data.updates_state.channels.push(ChannelState {
                id: row.try_get(0)?,
                pts: row.try_get::<i64, _>(1)? as i32,
            });
        }
        for row in sqlx::query(
            "SELECT kind, peer_id, access_hash, is_bot, is_self, channel_kind FROM session_peers",
        )
        .fetch_all(store.reader())
        .await?
        {
            let kind: String = row.try_get(0)?;
            let id: i64 = row.try_get(1)?;
            let auth = row.try_get::<Option<i64>, _>(2)?.map(PeerAuth::from_hash);
            let info = match kind.as_str() {
                "user" if PeerId::user(id).is_some() => PeerInfo::User {
                    id,
                    auth,
                    bot: row.try_get::<Option<i64>, _>(3)?.map(|b| b == 1),
                    is_self: row.try_get::<Option<i64>, _>(4)?.map(|b| b == 1),
                },
                "chat" if PeerId::chat(id).is_some() => PeerInfo::Chat { id },
                "channel" if PeerId::channel(id).is_some() => PeerInfo::Channel {
                    id,
                    auth,
                    kind: row
                        .try_get::<Option<String>, _>(5)?
                        .as_deref()
                        .and_then(channel_kind_from),
                },
                // A row with an id out of Telegram's ranges is skipped, not fatal: the peer
                // will simply be fetched again.
                _ => continue,
            };
            data.peer_infos.insert(info.id(), info);
        }
        Ok(StoreSession {
            store,
            vault,
            data: Mutex::new(data),
            pending: Mutex::new(Pending::default()),
            flushing: tokio::sync::Mutex::new(()),
        })
    }

    fn data(&self) -> Result<std::sync::MutexGuard<'_, SessionData>, SessionError> {
        self.data.lock().map_err(|_| SessionError::Poisoned)
    }

    /// The logged-in user's id, if the session has one.
    pub fn self_user(&self) -> Option<i64> {
        let data = self.data().ok()?;
        data.peer_infos.values().find_map(|p| match p {
            PeerInfo::User {
                id,
                is_self: Some(true),
                ..
            } => Some(*id),
            _ => None,
        })
    }

    /// Points the session at a test server with pre-shared keys (the fake Telegram, or
    /// Telegram's test DCs): `entry_dc` at `address`, and a key for each DC in `keys`. The other
    /// DCs' addresses come from the server's `help.getConfig`, which grammers stores as it
    /// connects. A session that already holds these keys is left as it is (its home DC may have
    /// moved since); one made with another server (another key for the entry DC, or another
    /// address) starts over on `entry_dc`.
    pub async fn use_test_server(
        &self,
        entry_dc: i32,
        address: std::net::SocketAddr,
        keys: &std::collections::BTreeMap<i32, [u8; 256]>,
    ) -> Result<(), SessionError> {
        let (ipv4, ipv6) = match address {
            std::net::SocketAddr::V4(a) => (
                a,
                SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0),
            ),
            std::net::SocketAddr::V6(a) => (SocketAddrV4::new(Ipv4Addr::LOCALHOST, a.port()), a),
        };
        let same_server = {
            let data = self.data()?;
            data.dc_options.get(&entry_dc).is_some_and(|c| {
                c.ipv4 == ipv4 && c.auth_key.is_some() && c.auth_key == keys.get(&entry_dc).copied()
            })
        };
        for (&dc, key) in keys {
            let current = self.data()?.dc_options.get(&dc).cloned();
            if same_server && current.as_ref().is_some_and(|c| c.auth_key == Some(*key)) {
                continue;
            }
            let (v4, v6) = match current {
                _ if dc == entry_dc => (ipv4, ipv6),
                // Known once the server's help.getConfig has been read.
                Some(c) if same_server => (c.ipv4, c.ipv6),
                _ => (
                    SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
                    SocketAddrV6::new(std::net::Ipv6Addr::UNSPECIFIED, 0, 0, 0),
                ),
            };
            self.store_dc(&DcOption {
                id: dc,
                ipv4: v4,
                ipv6: v6,
                auth_key: Some(*key),
            })
            .await?;
        }
        if !same_server && self.data()?.home_dc != entry_dc {
            self.store_home(entry_dc).await?;
        }
        Ok(())
    }

    /// The saved pts of channel `id`: the follower's bookmark in its updates.
    pub fn channel_pts(&self, id: i64) -> Option<i32> {
        let data = self.data().ok()?;
        data.updates_state
            .channels
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.pts)
    }

    /// Saves channel `id`'s pts (batched: durable within a second, or at the next flush).
    pub async fn set_channel_pts(&self, id: i64, pts: i32) -> Result<(), SessionError> {
        grammers_session::Session::set_update_state(
            self,
            grammers_session::types::UpdateState::Channel { id, pts },
        )
        .await
    }

    /// Saves the first pts known for channel `id`, durably before returning. The first pts is
    /// where a restart's catch-up begins: if it were lost (batched, then a crash), the restart
    /// would know no pts and could only top the channel up from history, which brings new posts
    /// but not the edits and deletions of posts already stored. So it is written before the
    /// posts it covers are stored, and flushed at once.
    pub async fn set_first_channel_pts(&self, id: i64, pts: i32) -> Result<(), SessionError> {
        self.set_channel_pts(id, pts).await?;
        self.flush().await
    }

    /// The DC the account lives on (where calls go).
    pub fn home_dc(&self) -> Result<i32, SessionError> {
        Ok(self.data()?.home_dc)
    }

    async fn store_home(&self, dc_id: i32) -> Result<(), SessionError> {
        self.data()?.home_dc = dc_id;
        self.store
            .write_durable(async |conn| {
                sqlx::query(
                    "INSERT INTO session_state (id, home_dc, updated_at) VALUES (1, ?, ?) \
                     ON CONFLICT (id) DO UPDATE SET home_dc = excluded.home_dc, updated_at = excluded.updated_at",
                )
                .bind(dc_id)
                .bind(crate::time::unix_now())
                .execute(conn)
                .await?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn store_dc(&self, dc: &DcOption) -> Result<(), SessionError> {
        self.data()?.dc_options.insert(dc.id, dc.clone());
        let dc_text = dc.id.to_string();
        let sealed = match &dc.auth_key {
            Some(k) => Some(
                self.vault
                    .seal(dc_column().context(&dc_text), k)
                    .map_err(StoreError::from)?,
            ),
            None => None,
        };
        let (id, ipv4, ipv6) = (dc.id, dc.ipv4.to_string(), dc.ipv6.to_string());
        self.store
            .write_durable(async |conn| {
                sqlx::query(
                    "INSERT INTO session_dcs (dc_id, ipv4, ipv6, auth_key, updated_at) VALUES (?, ?, ?, ?, ?) \
                     ON CONFLICT (dc_id) DO UPDATE SET ipv4 = excluded.ipv4, ipv6 = excluded.ipv6, \
                     auth_key = excluded.auth_key, updated_at = excluded.updated_at",
                )
                .bind(id)
                .bind(ipv4)
                .bind(ipv6)
                .bind(sealed)
                .bind(crate::time::unix_now())
                .execute(conn)
                .await?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// Writes the batched peer cache and updates state, in one transaction.
    pub async fn flush(&self) -> Result<(), SessionError> {
        let _guard = self.flushing.lock().await;
        let (peers, state, channels) = {
            let mut p = self.pending.lock().map_err(|_| SessionError::Poisoned)?;
            p.last_flush = Some(Instant::now());
            (
                std::mem::take(&mut p.peers),
                std::mem::take(&mut p.state),
                std::mem::take(&mut p.channels),
            )
        };
        if peers.is_empty() && !state && channels.is_empty() {
            return Ok(());
        }
        let written = self.write_batch(&peers, state, &channels).await;
        if written.is_err()
            && let Ok(mut p) = self.pending.lock()
        {
            // Not written: back into the batch (behind anything newer set meanwhile), or a
            // channel whose pts then stays still would keep the old one on disk.
            for (id, info) in peers {
                p.peers.entry(id).or_insert(info);
            }
            p.state |= state;
            for (id, pts) in channels {
                p.channels.entry(id).or_insert(pts);
            }
        }
        written
    }

    async fn write_batch(
        &self,
        peers: &HashMap<PeerId, PeerInfo>,
        state: bool,
        channels: &HashMap<i64, i32>,
    ) -> Result<(), SessionError> {
        let (home, us) = {
            let d = self.data()?;
            (d.home_dc, d.updates_state.clone())
        };
        let now = crate::time::unix_now();
        let mut tx = self.store.begin_write().await?;
        for info in peers.values() {
            let (kind, id, auth, bot, is_self, ck) = match info {
                PeerInfo::User {
                    id,
                    auth,
                    bot,
                    is_self,
                } => ("user", *id, *auth, *bot, *is_self, None),
                PeerInfo::Chat { id } => ("chat", *id, None, None, None, None),
                PeerInfo::Channel { id, auth, kind } => (
                    "channel",
                    *id,
                    *auth,
                    None,
                    None,
                    kind.map(channel_kind_name),
                ),
            };
            sqlx::query(
                "INSERT INTO session_peers (kind, peer_id, access_hash, is_bot, is_self, channel_kind, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, peer_id) DO UPDATE SET \
                 access_hash = coalesce(excluded.access_hash, access_hash), \
                 is_bot = coalesce(excluded.is_bot, is_bot), is_self = coalesce(excluded.is_self, is_self), \
                 channel_kind = coalesce(excluded.channel_kind, channel_kind), updated_at = excluded.updated_at",
            )
            .bind(kind)
            .bind(id)
            .bind(auth.map(|a| a.hash()))
            .bind(bot.map(i64::from))
            .bind(is_self.map(i64::from))
            .bind(ck)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        if state {
            sqlx::query(
                "INSERT INTO session_state (id, home_dc, pts, qts, date, seq, updated_at) VALUES (1, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (id) DO UPDATE SET pts = excluded.pts, qts = excluded.qts, date = excluded.date, \
                 seq = excluded.seq, updated_at = excluded.updated_at",
            )
            .bind(home)
            .bind(us.pts)
            .bind(us.qts)
            .bind(us.date)
            .bind(us.seq)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        for (id, pts) in channels.iter() {
            sqlx::query(
                "INSERT INTO session_channel_state (channel_id, pts, updated_at) VALUES (?, ?, ?) \
                 ON CONFLICT (channel_id) DO UPDATE SET pts = excluded.pts, updated_at = excluded.updated_at",
            )
            .bind(id)
            .bind(pts)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }

    /// Forgets the logged-in user and the updates state (after `auth.logOut`); DC options and
    /// their keys stay, as a new login can reuse them.
    pub async fn forget_login(&self, drop_keys: bool) -> Result<(), SessionError> {
        {
            let mut d = self.data()?;
            d.peer_infos.clear();
            d.updates_state = UpdatesState::default();
            if drop_keys {
                for dc in d.dc_options.values_mut() {
                    dc.auth_key = None;
                }
            }
        }
        if let Ok(mut p) = self.pending.lock() {
            *p = Pending::default();
        }
        self.store
            .write_durable(async |conn| {
                sqlx::query("DELETE FROM session_peers")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("DELETE FROM session_channel_state")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("UPDATE session_state SET pts = 0, qts = 0, date = 0, seq = 0")
                    .execute(&mut *conn)
                    .await?;
                if drop_keys {
                    sqlx::query("UPDATE session_dcs SET auth_key = NULL")
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// Flushes the batch if it holds anything and the last flush was a second ago or more.
    pub async fn flush_if_due(&self) -> Result<(), SessionError> {
        self.maybe_flush().await
    }

    async fn maybe_flush(&self) -> Result<(), SessionError> {
        let due = {
            let p = self.pending.lock().map_err(|_| SessionError::Poisoned)?;
            p.peers.len() >= PEER_BATCH
                || ((p.state || !p.channels.is_empty())
                    && p.last_flush
                        .is_none_or(|t| t.elapsed() >= STATE_FLUSH_EVERY))
        };
        if due { self.flush().await } else { Ok(()) }
    }
}

impl Drop for StoreSession {
    fn drop(&mut self) {
        let pending = self.pending.lock().map(|p| p.peers.len()).unwrap_or(0);
        if pending > 0 {
            tracing::debug!(pending, "session dropped with unflushed peer cache entries");
        }
    }
}

#[cfg(test)]
mod tests;
