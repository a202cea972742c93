//! Shared set-up for the store's own tests.

use std::time::Duration;

use super::{NewChannel, Store};
use crate::config::StoreConfig;

/// A new database in `dir`.
pub async fn store(dir: &std::path::Path, read_connections: u32) -> Store {
    Store::open(&StoreConfig {
        dir: dir.join("s"),
        busy_timeout: Duration::from_secs(5),
        read_connections,
    })
    .await
    .unwrap() // ok: tests only (cfg(test)); a store that cannot open fails the test
}

/// A broadcast channel, added by the command line.
pub fn channel(id: i64, username: Option<&str>, title: &str) -> NewChannel {
    NewChannel {
        id,
        access_hash: None,
        username: username.map(str::to_string),
        title: title.to_string(),
        about: None,
        participants: None,
        kind: "broadcast",
        since: None,
        last: None,
        added_by: None,
        membership: "join",
        with_comments: false,
        discussion_of: None,
    }
}
