//! Following live: the update stream into the store, and the watch on raw updates that turns
//! posts grammers never delivered into refills.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use grammers_client::sender::UpdatesConfiguration;
use grammers_client::update::Update;
use grammers_session::updates::UpdatesLike;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{FOLLOWED_REFRESH, LiveStats, Refill, is_revoked, revoked};
use crate::parser::convert;
use crate::store::Store;
use crate::supervisor::PartError;

/// What the raw update watcher saw.
#[derive(Debug, Clone, Copy)]
pub(super) enum Sighting {
    Post { channel: i64, id: i32 },
    TooLong { channel: i64 },
}

fn sightings(u: &UpdatesLike, out: &mut Vec<Sighting>) {
    use grammers_client::tl::enums::{Message, Peer, Update as U, Updates};
    let UpdatesLike::Updates(updates) = u else {
        return;
    };
    let list: &[U] = match updates {
        Updates::Updates(x) => &x.updates,
        Updates::Combined(x) => &x.updates,
        Updates::UpdateShort(x) => std::slice::from_ref(&x.update),
        _ => &[],
    };
    for update in list {
        match update {
            U::NewChannelMessage(m) => {
                if let Message::Message(msg) = &m.message
                    && let Peer::Channel(c) = &msg.peer_id
                {
                    out.push(Sighting::Post {
                        channel: c.channel_id,
                        id: msg.id,
                    });
                }
            }
            U::ChannelTooLong(t) => out.push(Sighting::TooLong {
                channel: t.channel_id,
            }),
            _ => {}
        }
    }
}

pub(super) async fn watch_raw(
    mut from: mpsc::Receiver<UpdatesLike>,
    to: mpsc::Sender<UpdatesLike>,
    seen: mpsc::UnboundedSender<Sighting>,
) {
    let mut found = Vec::new();
    while let Some(u) = from.recv().await {
        sightings(&u, &mut found);
        for s in found.drain(..) {
            let _ = seen.send(s);
        }
        if to.send(u).await.is_err() {
            return;
        }
    }
}

/// How long a pushed post may take to be stored before it counts as dropped.
const DELIVERY_GRACE: Duration = Duration::from_secs(3);

/// Turns sightings into refills: a pushed post still not stored after `DELIVERY_GRACE`, or a
/// channel Telegram says is too far behind, is fetched from history.
pub(super) async fn gap_watch(
    store: Store,
    mut seen: mpsc::UnboundedReceiver<Sighting>,
    refills: mpsc::UnboundedSender<Refill>,
) {
    let mut pending: HashMap<i64, (i32, Instant)> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            s = seen.recv() => match s {
                None => return,
                Some(Sighting::Post { channel, id }) => {
                    let e = pending.entry(channel).or_insert((id, Instant::now()));
                    e.0 = e.0.max(id);
                }
                Some(Sighting::TooLong { channel }) => {
                    if let Ok(Some(newest)) = store.newest_id(channel).await {
                        let _ = refills.send(Refill {
                            channel,
                            after: i32::try_from(newest).unwrap_or(i32::MAX),
                            before: 0,
                        });
                    }
                }
            },
            _ = tick.tick() => {
                let due: Vec<(i64, i32)> = pending
                    .iter()
                    .filter(|(_, (_, at))| at.elapsed() >= DELIVERY_GRACE)
                    .map(|(c, (id, _))| (*c, *id))
                    .collect();
                for (channel, id) in due {
                    pending.remove(&channel);
                    // Only channels being read (some posts stored) and only if still missing.
                    if let Ok(Some(newest)) = store.newest_id(channel).await
                        && newest < i64::from(id)
                    {
                        tracing::info!(channel, after = newest, id, "a pushed post was never delivered; refilling");
                        let _ = refills.send(Refill {
                            channel,
                            after: i32::try_from(newest).unwrap_or(i32::MAX),
                            before: id + 1,
                        });
                    }
                }
            }
        }
    }
}

/// Follows updates: new posts, edits (versions kept) and deletions (soft) of followed channels.
/// grammers recovers pts gaps with getChannelDifference and catches up after reconnecting; an id
/// jump it could not fill is sent to the work loop as a refill.
pub(super) async fn follow_live(
    client: grammers_client::Client,
    updates: Option<mpsc::Receiver<UpdatesLike>>,
    store: Store,
    cancel: CancellationToken,
    refills: mpsc::UnboundedSender<Refill>,
    stats: Arc<LiveStats>,
) -> Result<(), PartError> {
    let Some(updates) = updates else {
        return Ok(());
    };
    let mut stream = match client
        .stream_updates(updates, UpdatesConfiguration { catch_up: true })
        .await
    {
        Ok(s) => s,
        Err(e) => return Err(PartError::Retry(format!("cannot follow updates: {e}"))),
    };
    let mut followed: HashMap<i64, String> = HashMap::new();
    // The newest id seen per channel, to notice posts that never arrived.
    let mut newest: HashMap<i64, i32> = HashMap::new();
    let mut refreshed = Instant::now() - Duration::from_secs(60);
    loop {
        let update = tokio::select! {
            u = stream.next() => u,
            _ = cancel.cancelled() => return Ok(()),
        };
        let update = match update {
            Ok(u) => u,
            Err(e) if is_revoked(&e) => {
                tracing::error!(error = %e, "session revoked while following updates");
                return Err(revoked(&store, &e.to_string()).await);
            }
            Err(e) => {
                tracing::warn!(error = %e, "update stream error");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if refreshed.elapsed() > FOLLOWED_REFRESH {
            if let Ok(chs) = store.channels().await {
                followed = chs
                    .into_iter()
                    .filter(|c| c.state == "active")
                    .map(|c| (c.id, c.display_name()))
                    .collect();
                let ids: HashSet<i64> = followed.keys().copied().collect();
                newest.retain(|k, _| ids.contains(k));
            }
            refreshed = Instant::now();
        }
        let result = match &update {
            Update::NewMessage(m) | Update::MessageEdited(m) => {
                let is_new = matches!(update, Update::NewMessage(_));
                let channel = m.peer_id().bare_id();
                let is_channel = m.peer_id().kind() == grammers_session::types::PeerKind::Channel;
                match (channel, convert::message_row(&(**m).raw)) {
                    (Some(ch), Some(row)) if is_channel && followed.contains_key(&ch) => {
                        let name = followed.get(&ch).cloned().unwrap_or_default();
                        if is_new {
                            let known = match newest.get(&ch) {
                                Some(n) => Some(*n),
                                None => store
                                    .newest_id(ch)
                                    .await
                                    .ok()
                                    .flatten()
                                    .and_then(|n| i32::try_from(n).ok()),
                            };
                            if let Some(k) = known
                                && row.id > k + 1
                            {
                                tracing::info!(channel = %name, after = k, before = row.id, "posts missing before a live post; refilling");
                                let _ = refills.send(Refill {
                                    channel: ch,
                                    after: k,
                                    before: row.id,
                                });
                            }
                            let top = known.map_or(row.id, |k| k.max(row.id));
                            newest.insert(ch, top);
                            let lag = (crate::time::unix_now() - row.date).max(0) as f64;
                            stats.delivered(ch, &name, lag);
                        }
                        let id = row.id;
                        let res = if is_new {
                            store.ingest_live(ch, &[row]).await.map(|_| ())
                        } else {
                            store.ingest(ch, &[row], None).await
                        };
                        if res.is_err() {
                            // Not lost: fetched again from history once the store recovers.
                            let _ = refills.send(Refill {
                                channel: ch,
                                after: id - 1,
                                before: id + 1,
                            });
                        }
                        res
                    }
                    _ => Ok(()),
                }
            }
            Update::MessageDeleted(d) => match d.channel_id() {
                Some(ch) if followed.contains_key(&ch) => {
                    store.mark_deleted(ch, d.messages()).await.map(|_| ())
                }
                _ => Ok(()),
            },
            _ => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "storing a live update failed");
        }
    }
}
