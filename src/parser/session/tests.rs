//! Tests of `parser::session`: sealed keys, batched writes, reopening after a crash.

use super::*;
use crate::config::StoreConfig;
use crate::vault::VaultKey;
use grammers_session::Session;
use grammers_session::types::UpdateState;
use std::collections::BTreeMap;

async fn open(dir: &std::path::Path, key: &VaultKey) -> (Store, StoreSession) {
    let store = Store::open(&StoreConfig {
        dir: dir.to_path_buf(),
        busy_timeout: Duration::from_secs(5),
        read_connections: 2,
    })
    .await
    .unwrap();
    let vault = Arc::new(Vault::new(key));
    let s = StoreSession::open(store.clone(), vault).await.unwrap();
    (store, s)
}

#[tokio::test]
async fn everything_written_is_read_back_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let key = VaultKey::generate();
    let (store, s) = open(dir.path(), &key).await;
    let addr: std::net::SocketAddr = "127.0.0.1:4430".parse().unwrap();
    s.use_test_server(2, addr, &BTreeMap::from([(2, [7u8; 256])]))
        .await
        .unwrap();
    s.cache_peer(PeerInfo::User {
        id: 42,
        auth: Some(PeerAuth::from_hash(99)),
        bot: Some(false),
        is_self: Some(true),
    })
    .await
    .unwrap();
    s.cache_peer(PeerInfo::Channel {
        id: 1_000_000_001,
        auth: Some(PeerAuth::from_hash(-5)),
        kind: Some(ChannelKind::Broadcast),
    })
    .await
    .unwrap();
    s.set_update_state(UpdateState::Primary {
        pts: 10,
        date: 20,
        seq: 3,
    })
    .await
    .unwrap();
    s.set_update_state(UpdateState::Channel {
        id: 1_000_000_001,
        pts: 77,
    })
    .await
    .unwrap();
    s.flush().await.unwrap();
    drop(s);
    store.close().await;

    let (store, s) = open(dir.path(), &key).await;
    assert_eq!(s.home_dc_id().unwrap(), 2);
    let dc = s.dc_option(2).unwrap().unwrap();
    assert_eq!(dc.ipv4.to_string(), "127.0.0.1:4430");
    assert_eq!(dc.auth_key, Some([7u8; 256]));
    assert_eq!(s.self_user(), Some(42));
    let me = s.peer(PeerId::self_user()).await.unwrap().unwrap();
    assert_eq!(me.auth(), Some(PeerAuth::from_hash(99)));
    let ch = s
        .peer(PeerId::channel_unchecked(1_000_000_001))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ch.auth(), Some(PeerAuth::from_hash(-5)));
    let st = s.updates_state().await.unwrap();
    assert_eq!((st.pts, st.date, st.seq), (10, 20, 3));
    assert_eq!(
        st.channels,
        vec![ChannelState {
            id: 1_000_000_001,
            pts: 77
        }]
    );
    // The key is sealed: the row does not hold it.
    let raw: Vec<u8> = sqlx::query_scalar("SELECT auth_key FROM session_dcs WHERE dc_id = 2")
        .fetch_one(store.reader())
        .await
        .unwrap();
    assert!(!raw.windows(16).any(|w| w == [7u8; 16]));
    store.close().await;
}

#[tokio::test]
async fn a_sealed_key_under_another_vault_key_is_refused_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let (store, s) = open(dir.path(), &VaultKey::generate()).await;
    s.use_test_server(
        2,
        "127.0.0.1:1".parse().unwrap(),
        &BTreeMap::from([(2, [1u8; 256])]),
    )
    .await
    .unwrap();
    drop(s);
    let vault = Arc::new(Vault::new(&VaultKey::generate()));
    match StoreSession::open(store.clone(), vault).await {
        Err(SessionError::SealedKey { dc: 2, .. }) => {}
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("opened with the wrong key"),
    }
    store.close().await;
}

/// A session that followed PHONE_MIGRATE_4 to the account's home DC stays there at the next
/// start against the same server; one pointed at another server starts over on the entry DC.
#[tokio::test]
async fn the_home_dc_survives_a_restart_and_a_new_server_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let key = VaultKey::generate();
    let addr: std::net::SocketAddr = "127.0.0.1:4430".parse().unwrap();
    let keys = BTreeMap::from([(2, [2u8; 256]), (4, [4u8; 256])]);
    {
        let (store, s) = open(dir.path(), &key).await;
        s.use_test_server(2, addr, &keys).await.unwrap();
        assert_eq!(s.home_dc().unwrap(), 2);
        assert_eq!(s.dc_option(4).unwrap().unwrap().auth_key, Some([4u8; 256]));
        // What grammers does on PHONE_MIGRATE_4, and its getConfig's address for DC 4.
        s.set_home_dc_id(4).await.unwrap();
        let mut dc4 = s.dc_option(4).unwrap().unwrap();
        dc4.ipv4 = "127.0.0.1:4434".parse().unwrap();
        s.set_dc_option(&dc4).await.unwrap();
        store.close().await;
    }
    {
        let (store, s) = open(dir.path(), &key).await;
        s.use_test_server(2, addr, &keys).await.unwrap();
        assert_eq!(s.home_dc().unwrap(), 4, "the migration is kept");
        let dc4 = s.dc_option(4).unwrap().unwrap();
        assert_eq!(dc4.ipv4.to_string(), "127.0.0.1:4434");
        assert_eq!(dc4.auth_key, Some([4u8; 256]));
        store.close().await;
    }
    {
        let (store, s) = open(dir.path(), &key).await;
        let other = BTreeMap::from([(2, [9u8; 256]), (4, [8u8; 256])]);
        s.use_test_server(2, addr, &other).await.unwrap();
        assert_eq!(
            s.home_dc().unwrap(),
            2,
            "another server: back to the entry DC"
        );
        assert_eq!(s.dc_option(4).unwrap().unwrap().auth_key, Some([8u8; 256]));
        assert_eq!(s.dc_option(4).unwrap().unwrap().ipv4.port(), 0);
        store.close().await;
    }
}

/// A flush took the batch out before writing it; when the write failed (another program held
/// the database's write lock), the batch was gone, and a channel whose pts then stayed still
/// kept the old pts on disk: a restart caught it up from there, or found the gap too long.
#[tokio::test]
async fn a_batch_that_failed_to_write_is_written_by_the_next_flush() {
    let dir = tempfile::tempdir().unwrap();
    let key = VaultKey::generate();
    let store = Store::open(&StoreConfig {
        dir: dir.path().to_path_buf(),
        busy_timeout: Duration::from_millis(100),
        read_connections: 2,
    })
    .await
    .unwrap();
    let s = StoreSession::open(store.clone(), Arc::new(Vault::new(&key)))
        .await
        .unwrap();
    s.set_channel_pts(1_000_000_001, 5).await.unwrap();
    s.flush().await.unwrap();
    s.set_channel_pts(1_000_000_001, 9).await.unwrap();
    // Another connection holds the write lock: the flush fails.
    let mut other = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.path().join(crate::store::DB_FILE))
        .connect()
        .await
        .unwrap();
    use sqlx::{ConnectOptions, Connection};
    let mut held = other.begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("UPDATE write_probe SET at = 1")
        .execute(&mut *held)
        .await
        .unwrap();
    assert!(s.flush().await.is_err());
    held.rollback().await.unwrap();
    s.flush().await.unwrap();
    let pts: i64 =
        sqlx::query_scalar("SELECT pts FROM session_channel_state WHERE channel_id = 1000000001")
            .fetch_one(store.reader())
            .await
            .unwrap();
    assert_eq!(pts, 9);
}
