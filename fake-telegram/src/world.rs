//! The world the fake Telegram serves: accounts, channels and their posts, edits and deletions,
//! each channel with its own pts sequence so `getChannelDifference` can replay what a client
//! missed. Both servers (MTProto and Bot API) and the control API read and change it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::broadcast;

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
pub enum Media {
    Photo {
        id: i64,
        w: i32,
        h: i32,
        size: i32,
    },
    Document {
        id: i64,
        mime_type: String,
        size: i64,
        file_name: String,
    },
    Video {
        id: i64,
        mime_type: String,
        size: i64,
        file_name: String,
        duration: f64,
        w: i32,
        h: i32,
    },
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
    pub private: bool,
    pub date: i32,
    /// Live posts by id; deleted ones are removed (Telegram forgets them too).
    pub posts: BTreeMap<i32, Post>,
    pub next_id: i32,
    pub pts: i32,
    /// `(pts after the event, event)`, in order. pts_count is 1 per event.
    pub events: Vec<(i32, ChannelEvent)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub user_id: i64,
    pub access_hash: i64,
    pub phone: String,
    pub first_name: String,
    pub username: Option<String>,
    pub code: String,
    /// 2FA password, if the account has one.
    pub password: Option<String>,
    pub revoked: bool,
    /// The DC the account lives on: login and every call but a few belong there.
    pub home_dc: i32,
    /// How `auth.sendCode` delivers the code.
    pub delivery: CodeDelivery,
    /// The login email (codes by email; set up by `account.verifyEmail`).
    pub email: Option<String>,
    /// Frozen by Telegram's moderation: most methods answer 420 `FROZEN_METHOD_INVALID`.
    pub frozen: bool,
    /// A number that has no Telegram account: a code can be sent, signing in needs a sign-up.
    pub unoccupied: bool,
}

/// How Telegram delivers a login code (`auth.SentCodeType`), chosen per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CodeDelivery {
    /// `auth.sentCodeTypeApp`: to the account's other Telegram sessions.
    #[default]
    App,
    /// `auth.sentCodeTypeSms`.
    Sms,
    /// `auth.sentCodeTypeEmailCode`: to the login email; `auth.signIn` takes `email_verification`.
    Email,
    /// `auth.sentCodeTypeSetUpEmailRequired`: a login email must be set up first
    /// (`account.sendVerifyEmailCode` / `account.verifyEmail` with `emailVerifyPurposeLoginSetup`).
    SetupEmail,
    /// `auth.sentCodeTypeFragmentSms`: an anonymous number; the code is read on fragment.com.
    Fragment,
    /// `auth.sentCodePaymentRequired`: no code until the user pays, which only official apps do.
    Payment,
}

/// What the control API can set on an account (`POST /accounts`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSpec {
    pub phone: String,
    pub first_name: Option<String>,
    pub code: Option<String>,
    /// `Some("")` removes the 2FA password.
    pub password: Option<String>,
    pub dc: Option<i32>,
    pub delivery: Option<CodeDelivery>,
    pub email: Option<String>,
    pub frozen: Option<bool>,
    pub unoccupied: Option<bool>,
    pub banned: Option<bool>,
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
    /// Events that happened but were not pushed (an opened pts gap), per channel.
    pub started: Instant,
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

    pub fn add_account(
        &self,
        phone: &str,
        first_name: &str,
        code: &str,
        password: Option<&str>,
    ) -> i64 {
        let mut w = self.lock();
        let user_id = 5_000_000_000 + w.accounts.len() as i64 + 1;
        w.accounts.push(Account {
            user_id,
            access_hash: 0x5eed_0000_0000 + user_id,
            phone: phone.to_string(),
            first_name: first_name.to_string(),
            username: None,
            code: code.to_string(),
            password: password.map(str::to_string),
            revoked: false,
            home_dc: crate::mtproto::dcs::TEST_ACCOUNT_DC,
            delivery: CodeDelivery::App,
            email: None,
            frozen: false,
            unoccupied: false,
        });
        user_id
    }

    /// Creates the account `spec.phone` names, or changes it. Returns its user id.
    pub fn upsert_account(&self, spec: &AccountSpec) -> Result<i64, String> {
        let digits: String = spec.phone.chars().filter(char::is_ascii_digit).collect();
        if digits.len() < 7 || digits.len() > 15 {
            return Err(format!("{:?} is not a phone number", spec.phone));
        }
        if let Some(dc) = spec.dc
            && !crate::mtproto::dcs::DC_IDS.contains(&dc)
        {
            return Err(format!("dc {dc}: the fake has DCs 1 to 5"));
        }
        let exists = self.lock().accounts.iter().any(|a| {
            a.phone
                .chars()
                .filter(char::is_ascii_digit)
                .eq(digits.chars())
        });
        if !exists {
            self.add_account(
                &spec.phone,
                spec.first_name.as_deref().unwrap_or("Test"),
                spec.code.as_deref().unwrap_or("12345"),
                None,
            );
        }
        let mut w = self.lock();
        let a = w
            .accounts
            .iter_mut()
            .find(|a| {
                a.phone
                    .chars()
                    .filter(char::is_ascii_digit)
                    .eq(digits.chars())
            })
            .ok_or("the account vanished")?;
        if let Some(v) = &spec.first_name {
            a.first_name = v.clone();
        }
        if let Some(v) = &spec.code {
            a.code = v.clone();
        }
        if let Some(v) = &spec.password {
            a.password = (!v.is_empty()).then(|| v.clone());
        }
        if let Some(v) = spec.dc {
            a.home_dc = v;
        }
        if let Some(v) = spec.delivery {
            a.delivery = v;
        }
        if let Some(v) = &spec.email {
            a.email = Some(v.clone());
        }
        if let Some(v) = spec.frozen {
            a.frozen = v;
        }
        if let Some(v) = spec.unoccupied {
            a.unoccupied = v;
        }
        if let Some(v) = spec.banned {
            a.revoked = v;
        }
        Ok(a.user_id)
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
            date,
            posts: BTreeMap::new(),
            next_id: 1,
            pts: 1,
            events: Vec::new(),
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
        ch.posts.insert(id, post);
        self.record(&mut w, channel_id, ChannelEvent::New(id), !silent);
        Some(id)
    }

    pub fn post(&self, channel_id: i64, text: &str) -> Option<i32> {
        let text = text.to_string();
        self.post_with(channel_id, false, |id| Post::text(id, unix_now(), text))
    }

    pub fn edit(&self, channel_id: i64, id: i32, text: &str) -> Result<(), String> {
        let mut w = self.lock();
        let ch = w.channels.get_mut(&channel_id).ok_or("no such channel")?;
        let post = ch.posts.get_mut(&id).ok_or("no such post")?;
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

    pub fn set_private(&self, channel_id: i64, private: bool) -> Result<(), String> {
        let mut w = self.lock();
        let ch = w.channels.get_mut(&channel_id).ok_or("no such channel")?;
        ch.private = private;
        Ok(())
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
