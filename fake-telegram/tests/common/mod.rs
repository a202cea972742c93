//! Helpers for the tests that drive the real grammers client.
#![allow(dead_code)]

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::sync::Arc;

use fake_telegram::{FakeTelegram, Options};
use grammers_client::sender::{ConnectionParams, NoRetries, SenderPool};
use grammers_client::{Client, SignInError};
use grammers_session::SessionData;
use grammers_session::storages::MemorySession;
use grammers_session::types::DcOption;
use grammers_session::updates::UpdatesLike;
use tokio::sync::mpsc;

pub const API_ID: i32 = 94575;
pub const API_HASH: &str = "a3406de8d171bb422bb6ddf3bbd800e2";

pub struct Connected {
    pub client: Client,
    pub updates: Option<mpsc::Receiver<UpdatesLike>>,
}

pub fn connect(fake: &FakeTelegram) -> Connected {
    connect_with(&fake.info)
}

/// A client whose session holds the DCs and keys `info` lists.
pub fn connect_with(info: &fake_telegram::Info) -> Connected {
    let mut data = SessionData {
        home_dc: info.dc_id,
        ..Default::default()
    };
    // Every DC's pre-shared key: a login follows PHONE_MIGRATE to the account's DC, whose
    // address grammers learns from help.getConfig.
    for (&id, dc) in &info.dcs {
        let mut key = [0u8; 256];
        hex::decode_to_slice(&dc.auth_key, &mut key).expect("a hex key");
        let port = dc.address.port();
        data.dc_options.insert(
            id,
            DcOption {
                id,
                ipv4: SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
                ipv6: SocketAddrV6::new(Ipv6Addr::LOCALHOST, port, 0, 0),
                auth_key: Some(key),
            },
        );
    }
    let session = Arc::new(MemorySession::from(data));
    let pool = SenderPool::with_configuration(
        session,
        API_ID,
        ConnectionParams {
            retry_policy: Box::new(NoRetries),
            ..Default::default()
        },
    );
    let client = Client::new(pool.handle);
    tokio::spawn(pool.runner.run());
    Connected {
        client,
        updates: Some(pool.updates),
    }
}

pub async fn start(opts: Options) -> FakeTelegram {
    FakeTelegram::start(opts).await.expect("fake starts")
}

/// A fake whose account has no 2FA password, and a client logged in to it.
pub async fn logged_in_client() -> (FakeTelegram, Client) {
    let fake = start(Options {
        password: None,
        ..Default::default()
    })
    .await;
    let c = connect(&fake).client;
    login(&fake, &c).await;
    (fake, c)
}

pub async fn login(fake: &FakeTelegram, c: &Client) {
    let token = c
        .request_login_code(&fake.info.phone, API_HASH)
        .await
        .unwrap();
    match c.sign_in(&token, &fake.info.code).await {
        Ok(_) => {}
        Err(SignInError::PasswordRequired(t)) => {
            c.check_password(t, fake.info.password.as_bytes())
                .await
                .unwrap();
        }
        Err(e) => panic!("sign in: {e}"),
    }
}
