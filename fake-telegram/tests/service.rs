//! MTProto's service behaviour, seen by the real grammers client: the first message of a session
//! meets `bad_server_salt` and `new_session_created`, salts rotate, a server that forgets its
//! sessions announces new ones, silent connections are closed; the client goes on through all.

mod common;

use std::time::Duration;

use common::*;
use fake_telegram::Options;
use grammers_client::tl;

#[tokio::test]
async fn salts_new_sessions_and_idle_connections_as_telegram_handles_them() {
    let fake = start(Options {
        password: None,
        ..Default::default()
    })
    .await;
    *fake.shared.sessions.salt_period.lock().unwrap() = Duration::from_secs(1);
    *fake.shared.idle_close.lock().unwrap() = Duration::from_millis(1500);
    let c = connect(&fake).client;
    login(&fake, &c).await;
    let stats = fake.world.stats();
    // A new client has no salt yet: its first message is refused with the server's salt.
    assert!(stats.bad_salts >= 1, "{stats:?}");
    assert!(stats.new_sessions >= 1, "{stats:?}");
    // Salts rotate every second here: calls across several rotations all succeed.
    for _ in 0..4 {
        c.invoke(&tl::functions::updates::GetState {})
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(900)).await;
    }
    // The server forgets its sessions: the next message is told the session is new.
    let before = fake.world.stats().new_sessions;
    assert!(fake.shared.sessions.forget_all() >= 1);
    c.invoke(&tl::functions::updates::GetState {})
        .await
        .unwrap();
    assert!(fake.world.stats().new_sessions > before);
    // A connection silent for longer than the server waits is closed; the client reconnects.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(fake.world.stats().idle_closed >= 1);
    c.invoke(&tl::functions::updates::GetState {})
        .await
        .unwrap();
    let stats = fake.world.stats();
    assert!(
        stats.bad_salts >= 2,
        "salts rotated under the client: {stats:?}"
    );
    assert_eq!(
        stats.bad_msgs, 0,
        "grammers keeps its msg_ids in the time window"
    );
}
