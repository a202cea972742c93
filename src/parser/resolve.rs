//! Resolving a channel reference (`@name`, a t.me link, `tg://resolve`) through Telegram.

use grammers_client::tl;

use super::client::Connected;
use crate::guard::GuardError;
use crate::store::normalize_ref;

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{0:?} is not a channel: give @username, a t.me link or a channel id")]
    Empty(String),
    #[error(
        "{0}: a numeric id can only be added for a channel already in the database; use its @username or t.me link"
    )]
    NumericId(String),
    #[error("{0:?} is not a valid channel name or link (names are 4-32 letters, digits and _)")]
    Invalid(String),
    #[error("there is no channel @{0}")]
    NoSuch(String),
    #[error(
        "{name} ({title}) is a private channel, or one that banned this account: it cannot be read (a private channel is added by its invite link)"
    )]
    Private { name: String, title: String },
    #[error("@{0} is not a channel (it is a user or a bot)")]
    NotAChannel(String),
    #[error("Telegram asks to wait {0} s before resolving more names; try again then")]
    Flood(u32),
    #[error(
        "asked to join {0} through its invite link; an admin of the channel must approve the request, and the daemon adds the channel once approved (the request stays queued)"
    )]
    JoinRequested(String),
    #[error("the invite link {0} is not valid: check it, or ask the channel for a new one")]
    InviteInvalid(String),
    #[error("the invite link {0} has expired or was revoked: ask the channel for a new one")]
    InviteExpired(String),
    #[error(
        "{0} is an invite link: its channel is read by joining it, so it cannot be added with --no-join"
    )]
    InviteNoJoin(String),
    #[error("resolving @{name} failed: {error}")]
    Telegram { name: String, error: GuardError },
}

impl ResolveError {
    /// Worth asking again later (Telegram unreachable or asking to wait), not a wrong reference.
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            ResolveError::Flood(_)
                | ResolveError::Telegram {
                    error: GuardError::Unavailable { .. } | GuardError::Flood { .. },
                    ..
                }
        )
    }
}

/// How `channels add` reports a channel it added (or found followed already), the same from
/// the CLI and through the daemon: "added Title (@name, id 123)".
pub fn added_line(c: &tl::types::Channel, added: bool) -> String {
    format!(
        "{} {} (@{}, id {})",
        if added { "added" } else { "already followed:" },
        c.title,
        c.username.as_deref().unwrap_or("-"),
        c.id
    )
}

/// What `channels add` says for a channel followed already (it is not resolved again).
pub fn known_line(c: &crate::store::ChannelRecord) -> String {
    format!(
        "already followed: {} (@{}, id {}){}",
        c.title,
        c.username.as_deref().unwrap_or("-"),
        c.id,
        if c.state == "active" {
            String::new()
        } else {
            format!("; it is {}", c.state)
        }
    )
}

/// What `channels add` says about joining, from the channel's `membership`.
pub fn membership_line(membership: &str) -> &'static str {
    match membership {
        "joined" => "the account is a member: Telegram pushes its posts, and it is polled too",
        "no_join" => "followed without joining: it is polled",
        _ => {
            "the account joins it shortly (Telegram pushes updates to members); it is polled meanwhile"
        }
    }
}

/// Resolves `input`: an invite link is checked (`messages.checkChatInvite`) and joined
/// (`messages.importChatInvite`) unless the account is in the channel already; anything else
/// is a username resolved with `contacts.resolveUsername`.
pub async fn resolve(conn: &Connected, input: &str) -> Result<tl::types::Channel, ResolveError> {
    resolve_within(conn, input, conn.guard.config().longest_wait).await
}

/// As [`resolve`], waiting out a FLOOD_WAIT only up to `longest`: a longer one is
/// `ResolveError::Flood` at once (the daemon keeps the request queued and says so).
pub async fn resolve_within(
    conn: &Connected,
    input: &str,
    longest: Option<std::time::Duration>,
) -> Result<tl::types::Channel, ResolveError> {
    if let Some(hash) = crate::store::invite_hash(input) {
        return join_invite(conn, input, &hash, longest).await;
    }
    let name = normalize_ref(input);
    if name.is_empty() {
        return Err(ResolveError::Empty(input.to_string()));
    }
    if name.parse::<i64>().is_ok() {
        return Err(ResolveError::NumericId(input.to_string()));
    }
    let valid = name.len() >= 4
        && name.len() <= 32
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(ResolveError::Invalid(input.to_string()));
    }
    let res = conn
        .invoke_within(
            &tl::functions::contacts::ResolveUsername {
                username: name.clone(),
                referer: None,
            },
            longest,
        )
        .await;
    let resolved = match res {
        Ok(tl::enums::contacts::ResolvedPeer::Peer(p)) => p,
        Err(e) if e.is_rpc("USERNAME_NOT_OCCUPIED") => return Err(ResolveError::NoSuch(name)),
        Err(e) if e.is_rpc("USERNAME_INVALID") => {
            return Err(ResolveError::Invalid(input.to_string()));
        }
        Err(GuardError::Flood { secs, .. }) => return Err(ResolveError::Flood(secs)),
        Err(error) => return Err(ResolveError::Telegram { name, error }),
    };
    for chat in resolved.chats {
        match chat {
            tl::enums::Chat::Channel(c) => return Ok(c),
            tl::enums::Chat::ChannelForbidden(c) => {
                return Err(ResolveError::Private {
                    name: format!("@{name}"),
                    title: c.title,
                });
            }
            _ => {}
        }
    }
    Err(ResolveError::NotAChannel(name))
}

async fn join_invite(
    conn: &Connected,
    input: &str,
    hash: &str,
    longest: Option<std::time::Duration>,
) -> Result<tl::types::Channel, ResolveError> {
    let link = input.trim().to_string();
    let refused = |e: GuardError| -> ResolveError {
        if e.is_rpc("INVITE_HASH_INVALID") || e.is_rpc("INVITE_HASH_EMPTY") {
            ResolveError::InviteInvalid(link.clone())
        } else if e.is_rpc("INVITE_HASH_EXPIRED") {
            ResolveError::InviteExpired(link.clone())
        } else if let GuardError::Flood { secs, .. } = e {
            ResolveError::Flood(secs)
        } else {
            ResolveError::Telegram {
                name: link.clone(),
                error: e,
            }
        }
    };
    let checked = conn
        .invoke_within(
            &tl::functions::messages::CheckChatInvite {
                hash: hash.to_string(),
            },
            longest,
        )
        .await
        .map_err(refused)?;
    let title = match checked {
        tl::enums::ChatInvite::Already(a) => return channel_of(vec![a.chat], &link),
        tl::enums::ChatInvite::Invite(i) => {
            if !i.channel {
                return Err(ResolveError::NotAChannel(link));
            }
            i.title
        }
        tl::enums::ChatInvite::Peek(p) => match &p.chat {
            tl::enums::Chat::Channel(c) => c.title.clone(),
            _ => return Err(ResolveError::NotAChannel(link)),
        },
    };
    let joined = conn
        .invoke_within(
            &tl::functions::messages::ImportChatInvite {
                hash: hash.to_string(),
            },
            longest,
        )
        .await;
    match joined {
        Ok(tl::enums::messages::ChatInviteJoinResult::Ok(ok)) => {
            let chats = match ok.updates {
                tl::enums::Updates::Updates(u) => u.chats,
                tl::enums::Updates::Combined(u) => u.chats,
                _ => Vec::new(),
            };
            channel_of(chats, &link)
        }
        Ok(tl::enums::messages::ChatInviteJoinResult::WebView(_)) => Err(ResolveError::Telegram {
            name: link,
            error: GuardError::Local("the invite asks for a payment in a Telegram app".into()),
        }),
        Err(e) if e.is_rpc("INVITE_REQUEST_SENT") => Err(ResolveError::JoinRequested(title)),
        Err(e) if e.is_rpc("USER_ALREADY_PARTICIPANT") => {
            // Joined meanwhile: the check now names the channel.
            match conn
                .invoke(&tl::functions::messages::CheckChatInvite {
                    hash: hash.to_string(),
                })
                .await
                .map_err(refused)?
            {
                tl::enums::ChatInvite::Already(a) => channel_of(vec![a.chat], &link),
                _ => Err(ResolveError::JoinRequested(title)),
            }
        }
        Err(e) => Err(refused(e)),
    }
}

/// The channel among `chats` (what a joined invite names).
fn channel_of(chats: Vec<tl::enums::Chat>, link: &str) -> Result<tl::types::Channel, ResolveError> {
    for chat in chats {
        match chat {
            tl::enums::Chat::Channel(c) => return Ok(c),
            tl::enums::Chat::ChannelForbidden(c) => {
                return Err(ResolveError::Private {
                    name: link.to_string(),
                    title: c.title,
                });
            }
            _ => {}
        }
    }
    Err(ResolveError::NotAChannel(link.to_string()))
}

/// A channel whose access hash Telegram refused (`CHANNEL_INVALID`: hashes belong to an account
/// and can go stale) is looked up again by its username, once per channel per run and within
/// the resolve quota (no long FLOOD_WAIT is waited out for it). Returns whether a new hash was
/// stored: the caller tries again instead of giving the channel up.
pub async fn refresh_access_hash(
    conn: &Connected,
    store: &crate::store::Store,
    id: i64,
    username: Option<&str>,
) -> bool {
    let Some(username) = username else {
        return false;
    };
    {
        let mut done = conn
            .hash_refreshed
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !done.insert(id) {
            return false;
        }
    }
    let found = resolve_within(conn, username, Some(std::time::Duration::from_secs(30))).await;
    match found {
        Ok(c) if c.id == id => match c.access_hash {
            Some(h) => match store.set_access_hash(id, h).await {
                Ok(()) => {
                    tracing::info!(
                        channel = id,
                        "the channel's access hash was refused; a new one was looked up"
                    );
                    true
                }
                Err(e) => {
                    tracing::warn!(channel = id, error = %e, "cannot store the new access hash");
                    false
                }
            },
            None => false,
        },
        Ok(_) => {
            tracing::warn!(channel = id, %username, "the username now names another channel");
            false
        }
        Err(e) => {
            tracing::debug!(channel = id, error = %e, "looking the refused channel up again failed");
            false
        }
    }
}
