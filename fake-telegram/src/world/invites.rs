//! Invite links (core.telegram.org/api/invites): `t.me/+HASH` opens a channel, private ones
//! included, to whoever holds the link; a link may ask for an admin's approval, expire, or be
//! revoked.

use serde::Deserialize;

use super::membership::JoinRefusal;
use super::{Channel, World, unix_now};

#[derive(Debug, Clone)]
pub struct Invite {
    pub hash: String,
    /// Joining through it needs an admin's approval.
    pub request_needed: bool,
    /// Unix time after which it no longer works.
    pub expires: Option<i32>,
    pub revoked: bool,
}

/// What the control API asks for (`POST /invites`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteSpec {
    pub channel: String,
    #[serde(default)]
    pub request_needed: bool,
    /// Seconds from now; negative: already expired.
    pub expires_in: Option<i32>,
    /// Revoke the link with this hash instead.
    pub revoke: Option<String>,
}

/// Why an invite link does not open its channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteRefusal {
    Invalid,
    Expired,
}

impl InviteRefusal {
    pub fn rpc_name(self) -> &'static str {
        match self {
            InviteRefusal::Invalid => "INVITE_HASH_INVALID",
            InviteRefusal::Expired => "INVITE_HASH_EXPIRED",
        }
    }
}

impl World {
    /// Makes (or revokes) an invite link. Returns its hash.
    pub fn invite(&self, spec: &InviteSpec) -> Result<String, String> {
        let id = self
            .channel_id(&spec.channel)
            .ok_or_else(|| format!("no channel {:?}", spec.channel))?;
        let mut w = self.lock();
        let ch = w.channels.get_mut(&id).ok_or("no such channel")?;
        if let Some(h) = &spec.revoke {
            let inv = ch
                .invites
                .iter_mut()
                .find(|i| &i.hash == h)
                .ok_or("no such invite")?;
            inv.revoked = true;
            return Ok(h.clone());
        }
        // Telegram's hashes are 16 characters of base64url; these are unique per channel and
        // link, and deterministic for a run.
        let n = ch.invites.len() as u64 + 1;
        let x =
            (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ n.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let hash: String = (0..16)
            .map(|i| ALPHABET[((x.rotate_left(i * 4) ^ (x >> (i % 8))) % 64) as usize] as char)
            .collect();
        ch.invites.push(Invite {
            hash: hash.clone(),
            request_needed: spec.request_needed,
            expires: spec.expires_in.map(|s| unix_now() + s),
            revoked: false,
        });
        Ok(hash)
    }

    /// The channel an invite hash opens, and the invite.
    pub fn invite_target(&self, hash: &str) -> Result<(i64, Invite), InviteRefusal> {
        let w = self.lock();
        let (ch, inv) = w
            .channels
            .values()
            .find_map(|c| c.invites.iter().find(|i| i.hash == hash).map(|i| (c, i)))
            .ok_or(InviteRefusal::Invalid)?;
        if ch.deleted {
            return Err(InviteRefusal::Invalid);
        }
        if inv.revoked || inv.expires.is_some_and(|t| t <= unix_now()) {
            return Err(InviteRefusal::Expired);
        }
        Ok((ch.id, inv.clone()))
    }

    /// `user` joins through an invite link.
    pub fn join_by_invite(&self, user: i64, hash: &str) -> Result<(i64, bool), JoinRefusal> {
        let (id, inv) = self
            .invite_target(hash)
            .map_err(|r| JoinRefusal::Rpc(400, r.rpc_name()))?;
        if self
            .lock()
            .channels
            .get(&id)
            .is_some_and(|c: &Channel| c.is_member(user))
        {
            return Err(JoinRefusal::Rpc(400, "USER_ALREADY_PARTICIPANT"));
        }
        let joined = self.join_as(user, id, Some(inv.request_needed))?;
        Ok((id, joined))
    }
}
