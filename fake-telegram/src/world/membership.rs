//! Membership, and what it changes (core.telegram.org/api/updates, /api/channel): pushed
//! updates go only to accounts that joined a channel, and not reliably for an account in many
//! channels or for a very busy channel; a private channel (no username) is read only by its
//! members; a banned account and a deleted channel are refused (`CHANNEL_PRIVATE`). Joining
//! meets Telegram's limits: `CHANNELS_TOO_MUCH` past the channel limit, FLOOD_WAITs that grow
//! with the number of recent joins, `INVITE_REQUEST_SENT` where an admin must approve.
//! The control API's channel changes (private, deleted, banned, renamed, busy, join requests)
//! are here too.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Channel, Post, ServiceAction, World, WorldState, unix_now};

/// Who receives pushed channel updates (`serve --pushes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PushMode {
    /// As Telegram: members only, unreliably past `reliable_up_to` channels or when busy.
    #[default]
    Members,
    /// No channel update is pushed at all: clients must poll.
    None,
    /// Every logged-in account gets every readable channel's updates (lenient; tests name it).
    All,
}

/// Limits on joining, per account.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JoinLimits {
    /// Past this many joined channels, pushes for them turn unreliable.
    pub reliable_up_to: usize,
    /// `CHANNELS_TOO_MUCH` past this many (Telegram's limit for an account without Premium).
    pub max_channels: usize,
    /// Joins within a day before FLOOD_WAITs start; each join past them waits twice as long
    /// as the one before (30 s, 60 s, ... up to a day).
    pub free_joins: usize,
}

impl Default for JoinLimits {
    fn default() -> Self {
        JoinLimits {
            reliable_up_to: 100,
            max_channels: 500,
            free_joins: 20,
        }
    }
}

/// An account's recent joins.
#[derive(Debug, Default, Clone)]
pub struct JoinLog {
    at: Vec<Instant>,
    /// After a FLOOD_WAIT, the one join allowed once it is over.
    pass_at: Option<Instant>,
}

const JOIN_WINDOW: Duration = Duration::from_secs(86_400);
const FIRST_JOIN_WAIT: u64 = 30;

/// What becomes of one pushed update for one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Deliver,
    Drop,
    /// Replaced by `updateChannelTooLong`: the client must fetch the difference.
    TooLong,
}

/// Why a join did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinRefusal {
    Rpc(i32, &'static str),
    /// Too many joins lately: FLOOD_WAIT this many seconds.
    Wait(u32),
}

impl Channel {
    pub fn is_member(&self, user: i64) -> bool {
        self.members.contains(&user)
    }

    /// Why `viewer` may not read this channel, as Telegram says it; `None` if it may.
    pub fn refusal(&self, viewer: i64) -> Option<&'static str> {
        (self.deleted || self.banned.contains(&viewer) || (self.private && !self.is_member(viewer)))
            .then_some("CHANNEL_PRIVATE")
    }
}

impl WorldState {
    pub fn joined_count(&self, user: i64) -> usize {
        self.channels.values().filter(|c| c.is_member(user)).count()
    }

    /// What becomes of the push of `ch`'s change at `pts` for `viewer`. The unreliable cases
    /// are decided by a hash of (channel, pts, viewer), so every connection of one account
    /// sees the same fate and a run can be repeated.
    pub fn push_fate(&self, ch: &Channel, viewer: i64, pts: i32) -> Fate {
        if ch.refusal(viewer).is_some() {
            return Fate::Drop;
        }
        match self.push_mode {
            PushMode::None => Fate::Drop,
            PushMode::All => Fate::Deliver,
            PushMode::Members if !ch.is_member(viewer) => Fate::Drop,
            PushMode::Members => {
                if !ch.busy && self.joined_count(viewer) <= self.join_limits.reliable_up_to {
                    return Fate::Deliver;
                }
                let h = (ch.id as u64)
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .wrapping_add((pts as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F))
                    .wrapping_add(viewer as u64)
                    .rotate_left(29);
                match h % 4 {
                    0 => Fate::Drop,
                    1 => Fate::TooLong,
                    _ => Fate::Deliver,
                }
            }
        }
    }
}

/// A change the control API makes to a channel (`POST /channels`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelChange {
    /// Id or username.
    pub channel: String,
    pub private: Option<bool>,
    pub deleted: Option<bool>,
    pub busy: Option<bool>,
    pub join_requests: Option<bool>,
    /// A supergroup (posts have senders) rather than a broadcast channel.
    pub megagroup: Option<bool>,
    /// Give the channel a discussion group: each new post gets a comment thread.
    pub comments: Option<bool>,
    /// A new username; "" removes it.
    pub username: Option<String>,
    /// A new title: posted as a service message, as Telegram does.
    pub title: Option<String>,
    /// Accounts (phone or user id) to ban, unban, or whose join request to approve/decline.
    pub ban: Option<String>,
    pub unban: Option<String>,
    pub approve: Option<String>,
    pub decline: Option<String>,
}

impl World {
    /// The account a phone number or user id names.
    pub fn account_id(&self, key: &str) -> Option<i64> {
        let digits: String = key.chars().filter(char::is_ascii_digit).collect();
        let w = self.lock();
        w.accounts
            .iter()
            .find(|a| {
                key.parse::<i64>().ok() == Some(a.user_id)
                    || (!digits.is_empty()
                        && a.phone
                            .chars()
                            .filter(char::is_ascii_digit)
                            .eq(digits.chars()))
            })
            .map(|a| a.user_id)
    }

    /// `user` joins `channel`. `Ok(false)`: already a member.
    pub fn join(&self, user: i64, channel: i64) -> Result<bool, JoinRefusal> {
        self.join_as(user, channel, None)
    }

    /// A join by id (`invite: None`) or through an invite link, which opens a private
    /// channel and may ask for an admin's approval (`Some(request_needed)`).
    pub(super) fn join_as(
        &self,
        user: i64,
        channel: i64,
        invite: Option<bool>,
    ) -> Result<bool, JoinRefusal> {
        let mut w = self.lock();
        let now = Instant::now();
        let limits = w.join_limits;
        let count = w.joined_count(user);
        let ch = w
            .channels
            .get(&channel)
            .ok_or(JoinRefusal::Rpc(400, "CHANNEL_INVALID"))?;
        if ch.is_member(user) {
            return Ok(false);
        }
        if ch.deleted || ch.banned.contains(&user) || (ch.private && invite.is_none()) {
            // A private channel is joined through an invite link, not by id.
            return Err(JoinRefusal::Rpc(406, "CHANNEL_PRIVATE"));
        }
        if count >= limits.max_channels {
            return Err(JoinRefusal::Rpc(400, "CHANNELS_TOO_MUCH"));
        }
        let log = w.joins.entry(user).or_default();
        log.at.retain(|t| now.duration_since(*t) < JOIN_WINDOW);
        if log.at.len() >= limits.free_joins {
            match log.pass_at {
                Some(t) if now >= t => log.pass_at = None,
                _ => {
                    let over = (log.at.len() - limits.free_joins).min(12) as u32;
                    let secs = (FIRST_JOIN_WAIT << over).min(86_400) as u32;
                    log.pass_at = Some(now + Duration::from_secs(u64::from(secs)));
                    return Err(JoinRefusal::Wait(secs));
                }
            }
        }
        log.at.push(now);
        let ch = w
            .channels
            .get_mut(&channel)
            .ok_or(JoinRefusal::Rpc(400, "CHANNEL_INVALID"))?;
        if invite.unwrap_or(ch.join_requests) {
            ch.requests.insert(user);
            return Err(JoinRefusal::Rpc(400, "INVITE_REQUEST_SENT"));
        }
        ch.members.insert(user);
        ch.participants += 1;
        Ok(true)
    }

    /// `user` leaves `channel`.
    pub fn leave(&self, user: i64, channel: i64) -> Result<(), &'static str> {
        let mut w = self.lock();
        let ch = w.channels.get_mut(&channel).ok_or("CHANNEL_INVALID")?;
        if !ch.members.remove(&user) {
            return Err("USER_NOT_PARTICIPANT");
        }
        ch.participants = (ch.participants - 1).max(0);
        Ok(())
    }

    /// Makes a channel private (its username goes, as on Telegram) or public again.
    pub fn set_private(&self, channel_id: i64, private: bool) -> Result<(), String> {
        let mut w = self.lock();
        let ch = w.channels.get_mut(&channel_id).ok_or("no such channel")?;
        if ch.private == private {
            return Ok(());
        }
        ch.private = private;
        let (gone, back) = if private {
            ch.hidden_username = ch.username.take();
            (ch.hidden_username.clone(), None)
        } else {
            ch.username = ch.hidden_username.take();
            (None, ch.username.clone())
        };
        if let Some(u) = gone {
            w.by_username.remove(&u.to_ascii_lowercase());
        }
        if let Some(u) = back {
            w.by_username.insert(u.to_ascii_lowercase(), channel_id);
        }
        Ok(())
    }

    /// Applies a control-API change to a channel.
    pub fn change_channel(&self, c: &ChannelChange) -> Result<i64, String> {
        let id = self
            .channel_id(&c.channel)
            .ok_or_else(|| format!("no channel {:?}", c.channel))?;
        let account = |key: &Option<String>| -> Result<Option<i64>, String> {
            key.as_deref()
                .map(|k| {
                    self.account_id(k)
                        .ok_or_else(|| format!("no account {k:?}"))
                })
                .transpose()
        };
        let (ban, unban, approve, decline) = (
            account(&c.ban)?,
            account(&c.unban)?,
            account(&c.approve)?,
            account(&c.decline)?,
        );
        if let Some(p) = c.private {
            self.set_private(id, p)?;
        }
        if c.comments == Some(true) {
            self.enable_comments(id)?;
        }
        if let Some(u) = &c.username {
            self.rename(id, (!u.is_empty()).then_some(u.as_str()))?;
        }
        if let Some(t) = &c.title {
            let title = t.clone();
            self.lock()
                .channels
                .get_mut(&id)
                .ok_or("no such channel")?
                .title = title.clone();
            self.post_with(id, false, |pid| Post {
                action: Some(ServiceAction::EditTitle { title }),
                ..Post::text(pid, unix_now(), "")
            });
        }
        let mut w = self.lock();
        let ch = w.channels.get_mut(&id).ok_or("no such channel")?;
        if let Some(v) = c.deleted {
            ch.deleted = v;
        }
        if let Some(v) = c.busy {
            ch.busy = v;
        }
        if let Some(v) = c.megagroup {
            ch.megagroup = v;
        }
        if let Some(v) = c.join_requests {
            ch.join_requests = v;
        }
        if let Some(u) = ban {
            ch.members.remove(&u);
            ch.banned.insert(u);
        }
        if let Some(u) = unban {
            ch.banned.remove(&u);
        }
        if let Some(u) = approve {
            if !ch.requests.remove(&u) {
                return Err("that account has no join request pending".into());
            }
            ch.members.insert(u);
        }
        if let Some(u) = decline {
            ch.requests.remove(&u);
        }
        Ok(id)
    }

    /// Gives a channel a new username (or none).
    fn rename(&self, id: i64, username: Option<&str>) -> Result<(), String> {
        let mut w = self.lock();
        if let Some(u) = username
            && w.by_username
                .get(&u.to_ascii_lowercase())
                .is_some_and(|o| *o != id)
        {
            return Err(format!("the username {u:?} is taken"));
        }
        let ch = w.channels.get_mut(&id).ok_or("no such channel")?;
        let old = std::mem::replace(&mut ch.username, username.map(str::to_string));
        if let Some(o) = old {
            w.by_username.remove(&o.to_ascii_lowercase());
        }
        if let Some(u) = username {
            w.by_username.insert(u.to_ascii_lowercase(), id);
        }
        Ok(())
    }

    /// The channels `user` joined, and those it asked to join.
    pub fn joined(&self, user: i64) -> Vec<(i64, Option<String>, String, &'static str)> {
        let w = self.lock();
        w.channels
            .values()
            .filter_map(|c| {
                let state = if c.is_member(user) {
                    "member"
                } else if c.requests.contains(&user) {
                    "requested"
                } else {
                    return None;
                };
                Some((c.id, c.username.clone(), c.title.clone(), state))
            })
            .collect()
    }
}
