//! The world the fake Telegram serves: accounts, channels and their posts, edits and deletions,
//! each channel with its own pts sequence so `getChannelDifference` can replay what a client
//! missed. Both servers (MTProto and Bot API) and the control API read and change it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::broadcast;

mod accounts;
mod comments;
pub mod files;
mod invites;
mod membership;

pub use accounts::{Account, AccountSpec, CodeDelivery};
pub use files::{Media, MediaKind};
pub use invites::{Invite, InviteRefusal, InviteSpec};
pub use membership::{ChannelChange, Fate, JoinLimits, JoinLog, JoinRefusal, PushMode};

pub fn unix_now() -> i32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i32)
        .unwrap_or(0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    Bold,
    Italic,
    Code,
    Url,
    TextUrl,
    Mention,
    Hashtag,
}

/// A formatting entity. Offsets and lengths are in UTF-16 code units, as Telegram sends them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entity {
    pub kind: EntityKind,
    pub offset: i32,
    pub length: i32,
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ServiceAction {
    ChannelCreate { title: String },
    EditTitle { title: String },
    PinMessage { id: i32 },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FwdFrom {
    pub from_channel_id: Option<i64>,
    pub from_name: Option<String>,
    pub date: i32,
    pub channel_post: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Post {
    pub id: i32,
    pub date: i32,
    pub edit_date: Option<i32>,
    pub text: String,
    pub entities: Vec<Entity>,
    pub views: i32,
    pub forwards: i32,
    pub replies: i32,
    pub reactions: Vec<(String, i32)>,
    pub grouped_id: Option<i64>,
    pub reply_to: Option<i32>,
    pub fwd_from: Option<FwdFrom>,
    pub post_author: Option<String>,
    pub pinned: bool,
    pub media: Option<Media>,
    pub action: Option<ServiceAction>,
    /// Who sent it, in a supergroup (a user in the channel's `senders`).
    pub from_id: Option<i64>,
}

/// Someone who writes in a supergroup.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Sender {
    pub id: i64,
    pub first_name: String,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
}

impl Sender {
    /// The access hash every viewer sees for this user (the fake does not vary it).
    pub fn access_hash(&self) -> i64 {
        self.id.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5eed
    }
}

impl Post {
    pub fn text(id: i32, date: i32, text: impl Into<String>) -> Post {
        Post {
            id,
            date,
            edit_date: None,
            text: text.into(),
            entities: Vec::new(),
            views: 0,
            forwards: 0,
            replies: 0,
            reactions: Vec::new(),
            grouped_id: None,
            reply_to: None,
            fwd_from: None,
            post_author: None,
            pinned: false,
            media: None,
            action: None,
            from_id: None,
        }
    }
}

/// What changed in a channel at one pts.
#[derive(Debug, Clone, PartialEq)]
pub enum ChannelEvent {
    New(i32),
    Edit(i32),
    Delete(Vec<i32>),
}

#[derive(Debug, Clone)]
pub struct Channel {
    pub id: i64,
    /// The base of the access hashes accounts see: on Telegram a channel's access hash belongs
    /// to the account (and session) that was given it ([`Channel::hash_for`]).
    pub access_hash: i64,
    pub username: Option<String>,
    pub title: String,
    pub about: String,
    pub participants: i32,
    pub megagroup: bool,
    /// No public username: only members can read it (and find it by id).
    pub private: bool,
    /// The username it had before it was made private (restored if made public again).
    pub hidden_username: Option<String>,
    /// Deleted by its owner: every account is refused.
    pub deleted: bool,
    /// So busy that Telegram's pushes for it are unreliable even for members.
    pub busy: bool,
    /// Joining needs an admin's approval (`INVITE_REQUEST_SENT`).
    pub join_requests: bool,
    /// Accounts that joined.
    pub members: std::collections::BTreeSet<i64>,
    /// Accounts waiting for approval.
    pub requests: std::collections::BTreeSet<i64>,
    /// Accounts banned (kicked) from it: refused as for a private channel.
    pub banned: std::collections::BTreeSet<i64>,
    /// Its invite links.
    pub invites: Vec<Invite>,
    /// The people who post in it (a supergroup), by user id.
    pub senders: BTreeMap<i64, Sender>,
    /// Its discussion group (comments), for a channel.
    pub discussion: Option<i64>,
    /// The channel it discusses, for a discussion group.
    pub discussion_of: Option<i64>,
    /// In a discussion group: the channel post id → the id of its automatic copy here.
    pub copies: BTreeMap<i32, i32>,
    pub date: i32,
    /// Live posts by id; deleted ones are removed (Telegram forgets them too).
    pub posts: BTreeMap<i32, Post>,
    pub next_id: i32,
    pub pts: i32,
    /// `(pts after the event, event)`, in order. pts_count is 1 per event.
    pub events: Vec<(i32, ChannelEvent)>,
    /// When the last event happened (Unix seconds): `updates.getDifference` names the joined
    /// channels changed since the caller's state.
    pub changed_at: i32,
}

/// A change pushed to connected clients.
#[derive(Debug, Clone)]
pub struct Push {
    pub channel_id: i64,
    pub pts: i32,
    pub event: ChannelEvent,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    pub requests: BTreeMap<String, u64>,
    pub flood_waits: u64,
    /// Calls made while the caller was already told to wait (what strict mode bans for).
    pub calls_during_wait: u64,
    pub bans: u64,
    pub connections: u64,
    pub bad_frames: u64,
    /// Messages refused with `bad_msg_notification` (msg_id out of the time window).
    pub bad_msgs: u64,
    /// Messages refused with `bad_server_salt`.
    pub bad_salts: u64,
    /// `new_session_created` sent.
    pub new_sessions: u64,
    /// Connections closed for being silent.
    pub idle_closed: u64,
}

pub struct WorldState {
    pub accounts: Vec<Account>,
    pub channels: BTreeMap<i64, Channel>,
    pub by_username: HashMap<String, i64>,
    /// Common (non-channel) update state; the fake has no private chats, so it only moves on
    /// explicit request.
    pub pts: i32,
    pub stats: Stats,
    pub started: Instant,
    /// Who receives pushed channel updates.
    pub push_mode: PushMode,
    /// Joining: how many channels an account may be in, when pushes turn unreliable, and the
    /// joins per account so far (for their growing FLOOD_WAITs).
    pub join_limits: JoinLimits,
    pub joins: HashMap<i64, membership::JoinLog>,
    /// Every file a post carries, by id (a file in many posts is here once).
    pub files: HashMap<i64, Media>,
    /// How long a file reference is good for after it is served (Telegram does not say; an
    /// hour here, shorter where a test asks).
    pub file_reference_ttl: i32,
}

/// Shared handle to the world.
#[derive(Clone)]
pub struct World {
    inner: Arc<Mutex<WorldState>>,
    pushes: broadcast::Sender<Push>,
}

pub const FIRST_CHANNEL_ID: i64 = 1_000_000_001;

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl Channel {
    /// The access hash account `user` sees for this channel; another account's is refused.
    pub fn hash_for(&self, user: i64) -> i64 {
        self.access_hash ^ user.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

impl World {
    pub fn new() -> World {
        let (pushes, _) = broadcast::channel(65_536);
        World {
            inner: Arc::new(Mutex::new(WorldState {
                accounts: Vec::new(),
                channels: BTreeMap::new(),
                by_username: HashMap::new(),
                pts: 1,
                stats: Stats::default(),
                started: Instant::now(),
                push_mode: PushMode::default(),
                join_limits: JoinLimits::default(),
                joins: HashMap::new(),
                files: HashMap::new(),
                file_reference_ttl: 3_600,
            })),
            pushes,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, WorldState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Push> {
        self.pushes.subscribe()
    }

    pub fn add_channel(
        &self,
        username: Option<&str>,
        title: &str,
        about: &str,
        participants: i32,
    ) -> i64 {
        let mut w = self.lock();
        let id = FIRST_CHANNEL_ID + w.channels.len() as i64;
        let date = unix_now() - 86_400 * 365;
        let ch = Channel {
            id,
            access_hash: (id.wrapping_mul(0x9E37_79B9_7F4A_7C15u64 as i64)) ^ 0x1234_5678,
            username: username.map(str::to_string),
            title: title.to_string(),
            about: about.to_string(),
            participants,
            megagroup: false,
            private: false,
            hidden_username: None,
            deleted: false,
            busy: false,
            join_requests: false,
            members: Default::default(),
            requests: Default::default(),
            banned: Default::default(),
            invites: Vec::new(),
            senders: BTreeMap::new(),
            discussion: None,
            discussion_of: None,
            copies: BTreeMap::new(),
            date,
            posts: BTreeMap::new(),
            next_id: 1,
            pts: 1,
            events: Vec::new(),
            changed_at: 0,
        };
        if let Some(u) = username {
            w.by_username.insert(u.to_ascii_lowercase(), id);
        }
        w.channels.insert(id, ch);
        id
    }

    /// Finds a channel by id, or by username with or without '@'.
    pub fn channel_id(&self, key: &str) -> Option<i64> {
        let w = self.lock();
        if let Ok(id) = key.parse::<i64>() {
            return w.channels.contains_key(&id).then_some(id);
        }
        w.by_username
            .get(&key.trim_start_matches('@').to_ascii_lowercase())
            .copied()
    }

    fn record(
        &self,
        w: &mut WorldState,
        channel_id: i64,
        event: ChannelEvent,
        push: bool,
    ) -> Option<i32> {
        let ch = w.channels.get_mut(&channel_id)?;
        ch.pts += 1;
        ch.events.push((ch.pts, event.clone()));
        ch.changed_at = unix_now();
        let pts = ch.pts;
        if push {
            let _ = self.pushes.send(Push {
                channel_id,
                pts,
                event,
            });
        }
        Some(pts)
    }

    /// Appends a post built by `make(id)`; returns its id. Pushed to clients unless `silent`.
    pub fn post_with(
        &self,
        channel_id: i64,
        silent: bool,
        make: impl FnOnce(i32) -> Post,
    ) -> Option<i32> {
        let mut w = self.lock();
        let ch = w.channels.get_mut(&channel_id)?;
        let id = ch.next_id;
        ch.next_id += 1;
        let post = make(id);
        let media = post.media.clone();
        ch.posts.insert(id, post);
        if let Some(m) = media {
            w.files.insert(m.id, m);
        }
        self.record(&mut w, channel_id, ChannelEvent::New(id), !silent);
        self.forward_to_discussion(&mut w, channel_id, id);
        Some(id)
    }

    /// A post by `from` in a supergroup (`from` joins its senders).
    pub fn post_from(&self, channel_id: i64, from: &Sender, text: &str) -> Option<i32> {
        self.lock()
            .channels
            .get_mut(&channel_id)?
            .senders
            .insert(from.id, from.clone());
        let text = text.to_string();
        let from_id = from.id;
        self.post_with(channel_id, false, |id| Post {
            from_id: Some(from_id),
            ..Post::text(id, unix_now(), text)
        })
    }

    /// A post carrying `media` (a file id already posted elsewhere is the same file).
    pub fn post_media(&self, channel_id: i64, text: &str, media: Media) -> Option<i32> {
        let text = text.to_string();
        self.post_with(channel_id, false, |id| Post {
            media: Some(media),
            ..Post::text(id, unix_now(), text)
        })
    }

    /// Telegram moves file `id` to `dc` (its posts still name the DC they named): whether
    /// there is such a file.
    pub fn move_file(&self, id: i64, dc: i32) -> bool {
        match self.lock().files.get_mut(&id) {
            Some(m) => {
                m.moved_to = Some(dc);
                true
            }
            None => false,
        }
    }

    pub fn post(&self, channel_id: i64, text: &str) -> Option<i32> {
        let text = text.to_string();
        self.post_with(channel_id, false, |id| Post::text(id, unix_now(), text))
    }

    pub fn edit(&self, channel_id: i64, id: i32, text: &str) -> Result<(), String> {
        let mut w = self.lock();
        let ch = w.channels.get_mut(&channel_id).ok_or("no such channel")?;
        let post = ch.posts.get_mut(&id).ok_or("no such post")?;
        if post.action.is_some() {
            // Telegram edits messages, never service messages (messages.editMessage answers
            // MESSAGE_ID_INVALID): a world where one changed could not happen.
            return Err("a service message cannot be edited".into());
        }
        post.text = text.to_string();
        post.entities.clear();
        post.edit_date = Some(unix_now());
        self.record(&mut w, channel_id, ChannelEvent::Edit(id), true);
        Ok(())
    }

    pub fn delete(&self, channel_id: i64, ids: &[i32]) -> Result<(), String> {
        let mut w = self.lock();
        let ch = w.channels.get_mut(&channel_id).ok_or("no such channel")?;
        let gone: Vec<i32> = ids
            .iter()
            .copied()
            .filter(|id| ch.posts.remove(id).is_some())
            .collect();
        if gone.is_empty() {
            return Err("none of those posts exist".into());
        }
        self.record(&mut w, channel_id, ChannelEvent::Delete(gone), true);
        Ok(())
    }

    /// Posts `count` messages without pushing them: the next push reveals a pts gap that the
    /// client must fill with `getChannelDifference`.
    pub fn open_gap(&self, channel_id: i64, count: usize) -> Result<Vec<i32>, String> {
        let mut ids = Vec::new();
        for i in 0..count {
            let id = self
                .post_with(channel_id, true, |id| {
                    Post::text(id, unix_now(), format!("Missed while away #{i}"))
                })
                .ok_or("no such channel")?;
            ids.push(id);
        }
        Ok(ids)
    }

    pub fn revoke(&self, phone: Option<&str>) -> usize {
        let mut w = self.lock();
        let mut n = 0;
        for a in w.accounts.iter_mut() {
            if phone.is_none_or(|p| p == a.phone) {
                a.revoked = true;
                n += 1;
            }
        }
        w.stats.bans += n as u64;
        n
    }

    pub fn count_request(&self, method: &str) {
        let mut w = self.lock();
        *w.stats.requests.entry(method.to_string()).or_insert(0) += 1;
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    pub fn uptime(&self) -> Duration {
        self.lock().started.elapsed()
    }
}
