//! Faults that tests and flags inject: into MTProto (rpc_error 500, -503 timeouts, a dropped
//! connection, latency, a revoked account, malformed frames) and into the Bot API (429, 5xx,
//! hangs, malformed JSON). Each fault fires `count` times (0 = until cleared).

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// MTProto: the call answers `rpc_error` 500 INTERNAL_SERVER_ERROR.
    Rpc500,
    /// MTProto: the call answers `rpc_error` -503 Timeout.
    Timeout503,
    /// MTProto: the connection is closed after `after` more client messages.
    Drop { after: u32 },
    /// MTProto or Bot API: every matching call waits this long first.
    Latency { ms: u64 },
    /// MTProto: the answer is replaced by a frame with a broken checksum.
    MalformedFrame,
    /// MTProto: 420 `FLOOD_WAIT_<secs>`, and the account must then wait that long: a call of
    /// the method during the wait is counted (and in strict mode banned) as for a quota.
    FloodWait { secs: u32 },
    /// Bot API: 429 Too Many Requests with this `retry_after`.
    TooMany { retry_after: u32 },
    /// Bot API: this HTTP status (500, 502, 503...).
    Status { code: u16 },
    /// Bot API: no answer for this long.
    Hang { ms: u64 },
    /// Bot API: a body that is not JSON.
    MalformedJson,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    #[serde(flatten)]
    pub kind: FaultKind,
    /// Method it applies to (MTProto `messages.getHistory` or Bot API `sendMessage`, matched
    /// case-insensitively); `None` for every method.
    #[serde(default)]
    pub method: Option<String>,
    /// How many times it fires; 0 means until cleared.
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Default)]
pub struct Faults {
    list: Mutex<Vec<Fault>>,
}

impl Faults {
    pub fn add(&self, f: Fault) {
        self.list.lock().unwrap_or_else(|p| p.into_inner()).push(f);
    }

    pub fn clear(&self) {
        self.list.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub fn list(&self) -> Vec<Fault> {
        self.list.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Takes the first fault matching `method` for which `want` says yes, counting it down.
    pub fn take(&self, method: &str, want: impl Fn(&FaultKind) -> bool) -> Option<FaultKind> {
        let mut list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        let i = list.iter().position(|f| {
            want(&f.kind)
                && f.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
        })?;
        let kind = list[i].kind.clone();
        if list[i].count == 1 {
            list.remove(i);
        } else if list[i].count > 1 {
            list[i].count -= 1;
        }
        Some(kind)
    }

    /// The latency to add before answering `method`, if any (does not count down when count=0).
    pub fn latency(&self, method: &str) -> Option<Duration> {
        match self.take(method, |k| matches!(k, FaultKind::Latency { .. })) {
            Some(FaultKind::Latency { ms }) => Some(Duration::from_millis(ms)),
            _ => None,
        }
    }
}
