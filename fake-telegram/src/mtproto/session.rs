//! MTProto's service behaviour towards a client's messages, as core.telegram.org/mtproto/
//! service_messages and /mtproto/description describe it:
//! - a msg_id whose time is more than 300 s behind the server's clock or 30 s ahead, or that is
//!   not divisible by 4, is answered `bad_msg_notification` (16, 17, 18) and not processed;
//! - a message with a salt that is neither the current one nor the previous one is answered
//!   `bad_server_salt` (48) with the current salt, and not processed; salts change every
//!   `salt_period` (30 minutes, as Telegram's), the previous one accepted one period more;
//! - the first message of a session the server does not know (new, or forgotten: `POST
//!   /sessions/forget`) gets `new_session_created` first; pushes meant for a forgotten session
//!   are lost, as Telegram's are, until the client speaks in it again.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use grammers_tl_types as tl;
use tl::Serializable;

/// What the server remembers of sessions and salts.
pub struct Sessions {
    /// (key id, session id) pairs the server knows.
    known: Mutex<HashSet<([u8; 8], i64)>>,
    /// Salts change this often.
    pub salt_period: Mutex<Duration>,
    secret: u64,
}

/// Why a message is not processed, and the service message that says so.
pub enum Refusal {
    BadMsg { code: i32 },
    BadSalt,
}

fn unix() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            known: Mutex::new(HashSet::new()),
            salt_period: Mutex::new(Duration::from_secs(1800)),
            secret: rand::random(),
        }
    }
}

impl Sessions {
    fn period(&self) -> u64 {
        self.salt_period
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_secs()
            .max(1)
    }

    fn salt_at(&self, slot: u64) -> i64 {
        // A salt per time slot, unguessable without the server's secret.
        let mut x = slot ^ self.secret;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^= x >> 33;
        x as i64
    }

    fn slot(&self) -> u64 {
        unix().as_secs() / self.period()
    }

    /// The salt clients must use now.
    pub fn current_salt(&self) -> i64 {
        self.salt_at(self.slot())
    }

    /// The current salt and the next one, with when each is valid (`get_future_salts`).
    pub fn future_salts(&self, count: usize) -> Vec<(i32, i32, i64)> {
        let period = self.period();
        let slot = self.slot();
        (0..count as u64)
            .map(|i| {
                let s = slot + i;
                let since = (s * period) as i32;
                // Each stays valid one period past its own, as the previous salt does.
                (since, since + 2 * period as i32, self.salt_at(s))
            })
            .collect()
    }

    /// Checks a client message's header: `Some` when it must not be processed.
    pub fn check(&self, salt: i64, msg_id: i64) -> Option<Refusal> {
        let now = unix().as_secs() as i64;
        let sent = msg_id >> 32;
        if msg_id % 4 != 0 {
            return Some(Refusal::BadMsg { code: 18 });
        }
        if sent < now - 300 {
            return Some(Refusal::BadMsg { code: 16 });
        }
        if sent > now + 30 {
            return Some(Refusal::BadMsg { code: 17 });
        }
        let slot = self.slot();
        if salt != self.salt_at(slot) && salt != self.salt_at(slot.saturating_sub(1)) {
            return Some(Refusal::BadSalt);
        }
        None
    }

    /// True (once) for a session the server did not know: it is created now.
    pub fn created(&self, key_id: [u8; 8], session_id: i64) -> bool {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() > 100_000 {
            known.clear();
        }
        known.insert((key_id, session_id))
    }

    /// Whether the server still knows this session (pushes to a forgotten one are lost).
    pub fn knows(&self, key_id: [u8; 8], session_id: i64) -> bool {
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&(key_id, session_id))
    }

    /// The server loses every session (a restart of its own); returns how many.
    pub fn forget_all(&self) -> usize {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let n = known.len();
        known.clear();
        n
    }
}

/// `bad_msg_notification#a7eff811 bad_msg_id:long bad_msg_seqno:int error_code:int`.
pub fn bad_msg_notification(msg_id: i64, seqno: i32, code: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(20);
    0xa7ef_f811u32.serialize(&mut out);
    msg_id.serialize(&mut out);
    seqno.serialize(&mut out);
    code.serialize(&mut out);
    out
}

/// `bad_server_salt#edab447b bad_msg_id:long bad_msg_seqno:int error_code:int new_server_salt:long`.
pub fn bad_server_salt(msg_id: i64, seqno: i32, salt: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(28);
    0xedab_447bu32.serialize(&mut out);
    msg_id.serialize(&mut out);
    seqno.serialize(&mut out);
    48i32.serialize(&mut out);
    salt.serialize(&mut out);
    out
}

/// `new_session_created#9ec20908 first_msg_id:long unique_id:long server_salt:long`.
pub fn new_session_created(first_msg_id: i64, salt: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(28);
    0x9ec2_0908u32.serialize(&mut out);
    first_msg_id.serialize(&mut out);
    rand::random::<i64>().serialize(&mut out);
    salt.serialize(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msg_ids_out_of_the_window_and_wrong_salts_are_refused() {
        let s = Sessions::default();
        let now = (unix().as_secs() as i64) << 32;
        let salt = s.current_salt();
        assert!(s.check(salt, now).is_none());
        assert!(matches!(
            s.check(salt, now + 1),
            Some(Refusal::BadMsg { code: 18 })
        ));
        assert!(matches!(
            s.check(salt, now - (301i64 << 32)),
            Some(Refusal::BadMsg { code: 16 })
        ));
        assert!(matches!(
            s.check(salt, now + (31i64 << 32)),
            Some(Refusal::BadMsg { code: 17 })
        ));
        assert!(matches!(s.check(salt ^ 1, now), Some(Refusal::BadSalt)));
        assert!(s.created([1; 8], 7));
        assert!(!s.created([1; 8], 7));
        assert!(s.knows([1; 8], 7));
        assert_eq!(s.forget_all(), 1);
        assert!(!s.knows([1; 8], 7));
    }
}
