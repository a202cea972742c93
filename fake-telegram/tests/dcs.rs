//! The fake's DCs as Telegram has them, seen by the real grammers client: five DCs listed by
//! `help.getConfig`, keys known only to their own DC, `PHONE_MIGRATE`, `USER_MIGRATE`, the
//! authorization transfer, and frozen accounts.

mod common;

use common::*;

use fake_telegram::Options;
use fake_telegram::world::AccountSpec;
use grammers_client::InvocationError;
use grammers_client::tl;

fn rpc(e: InvocationError) -> (i32, String, Option<u32>) {
    match e {
        InvocationError::Rpc(r) => (r.code, r.name, r.value),
        other => panic!("not an RPC error: {other}"),
    }
}

fn send_code(phone: &str) -> tl::functions::auth::SendCode {
    tl::functions::auth::SendCode {
        phone_number: phone.into(),
        api_id: API_ID,
        api_hash: API_HASH.into(),
        settings: tl::types::CodeSettings {
            allow_flashcall: false,
            current_number: false,
            allow_app_hash: false,
            allow_missed_call: false,
            allow_firebase: false,
            unknown_number: false,
            logout_tokens: None,
            token: None,
            app_sandbox: None,
        }
        .into(),
    }
}

#[tokio::test]
async fn get_config_lists_every_dc_and_send_code_sends_the_number_home() {
    let fake = start(Options::default()).await;
    let c = connect(&fake).client;
    let tl::enums::Config::Config(config) =
        c.invoke(&tl::functions::help::GetConfig {}).await.unwrap();
    assert_eq!(config.this_dc, 2);
    let mut listed: Vec<(i32, String)> = config
        .dc_options
        .iter()
        .map(|tl::enums::DcOption::Option(o)| {
            assert!(o.r#static, "clients keep only static options");
            (o.id, format!("{}:{}", o.ip_address, o.port))
        })
        .collect();
    listed.sort();
    let expected: Vec<(i32, String)> = fake
        .info
        .dcs
        .iter()
        .map(|(id, dc)| (*id, dc.address.to_string()))
        .collect();
    assert_eq!(listed, expected);
    assert_eq!(listed.len(), 5);

    // The test account lives on DC 4: DC 2 sends the login there.
    let e = c.invoke(&send_code(&fake.info.phone)).await.unwrap_err();
    assert_eq!(rpc(e), (303, "PHONE_MIGRATE".into(), Some(4)));
    // A number without an account goes where its sign-up would: NETWORK_MIGRATE.
    fake.world
        .upsert_account(&AccountSpec {
            phone: "+999661119999".into(),
            unoccupied: Some(true),
            dc: Some(5),
            ..Default::default()
        })
        .unwrap();
    let e = c.invoke(&send_code("+999661119999")).await.unwrap_err();
    assert_eq!(rpc(e), (303, "NETWORK_MIGRATE".into(), Some(5)));
    // grammers' own login follows the migration and signs in on DC 4.
    login(&fake, &c).await;
    assert!(c.is_authorized().await.unwrap());
}

#[tokio::test]
async fn a_key_is_known_only_to_its_own_dc() {
    let fake = start(Options::default()).await;
    // DC 4's key, presented at DC 2's listener: Telegram does not know it there.
    let wrong = {
        let mut f = fake_telegram::Info::clone(&fake.info);
        f.dcs.get_mut(&2).unwrap().auth_key = f.dcs[&4].auth_key.clone();
        f
    };
    let c = connect_with(&wrong).client;
    let e = c
        .invoke(&tl::functions::help::GetConfig {})
        .await
        .unwrap_err();
    assert!(
        !matches!(e, InvocationError::Rpc(_)),
        "the connection is closed, not answered: {e}"
    );
    assert!(fake.world.stats().bad_frames >= 1);
}

#[tokio::test]
async fn an_exported_login_works_off_the_home_dc_only_for_files_and_only_once() {
    let (_fake, c) = logged_in_client().await;
    // Exporting to the DC we are on is refused.
    let e = c
        .invoke(&tl::functions::auth::ExportAuthorization { dc_id: 4 })
        .await
        .unwrap_err();
    assert_eq!(rpc(e).1, "DC_ID_INVALID");
    let tl::enums::auth::ExportedAuthorization::Authorization(exported) = c
        .invoke(&tl::functions::auth::ExportAuthorization { dc_id: 1 })
        .await
        .unwrap();
    let import = tl::functions::auth::ImportAuthorization {
        id: exported.id,
        bytes: exported.bytes,
    };
    // Not on another DC than the one it was exported for.
    let e = c.invoke_in_dc(3, &import).await.unwrap_err();
    assert_eq!(rpc(e).1, "AUTH_BYTES_INVALID");
    let tl::enums::auth::ExportedAuthorization::Authorization(exported) = c
        .invoke(&tl::functions::auth::ExportAuthorization { dc_id: 1 })
        .await
        .unwrap();
    let import = tl::functions::auth::ImportAuthorization {
        id: exported.id,
        bytes: exported.bytes,
    };
    c.invoke_in_dc(1, &import).await.unwrap();
    let e = c.invoke_in_dc(1, &import).await.unwrap_err();
    assert_eq!(rpc(e).1, "AUTH_BYTES_INVALID", "the bytes are good once");
    // Logged in on DC 1 now, but the account lives on DC 4.
    let e = c
        .invoke_in_dc(1, &tl::functions::updates::GetState {})
        .await
        .unwrap_err();
    assert_eq!(rpc(e), (303, "USER_MIGRATE".into(), Some(4)));
    c.invoke_in_dc(1, &tl::functions::help::GetConfig {})
        .await
        .unwrap();
    c.invoke(&tl::functions::updates::GetState {})
        .await
        .unwrap();
}

#[tokio::test]
async fn a_frozen_account_is_refused_with_420_frozen_method_invalid_but_for_a_few_methods() {
    let (fake, c) = logged_in_client().await;
    fake.world
        .upsert_account(&AccountSpec {
            phone: fake.info.phone.clone(),
            frozen: Some(true),
            ..Default::default()
        })
        .unwrap();
    let e = c
        .invoke(&tl::functions::contacts::ResolveUsername {
            username: fake.info.channels[0].clone(),
            referer: None,
        })
        .await
        .unwrap_err();
    assert_eq!(rpc(e), (420, "FROZEN_METHOD_INVALID".into(), None));
    c.invoke(&tl::functions::updates::GetState {})
        .await
        .unwrap();
}

/// A second client with its own auth keys (the fake's pre-shared ones belong to the first).
fn second_client(fake: &fake_telegram::FakeTelegram) -> grammers_client::Client {
    let mut info = fake.info.clone();
    for (dc, d) in info.dcs.iter_mut() {
        let key = fake_telegram::mtproto::AuthKey::random();
        fake.shared.add_key(key.clone(), *dc);
        d.auth_key = hex::encode(key.data);
    }
    connect_with(&info).client
}

async fn resolve(c: &grammers_client::Client, name: &str) -> (i64, i64) {
    let tl::enums::contacts::ResolvedPeer::Peer(r) = c
        .invoke(&tl::functions::contacts::ResolveUsername {
            username: name.into(),
            referer: None,
        })
        .await
        .unwrap();
    match &r.chats[0] {
        tl::enums::Chat::Channel(ch) => (ch.id, ch.access_hash.unwrap()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_channel_access_hash_belongs_to_the_account_that_was_given_it() {
    let fake = start(Options {
        password: None,
        ..Default::default()
    })
    .await;
    let a = connect(&fake).client;
    login(&fake, &a).await;
    fake.world
        .upsert_account(&AccountSpec {
            phone: "+999661112222".into(),
            ..Default::default()
        })
        .unwrap();
    let b = second_client(&fake);
    let token = b
        .request_login_code("+999661112222", API_HASH)
        .await
        .unwrap();
    b.sign_in(&token, "12345").await.unwrap();

    let name = fake.info.channels[0].clone();
    let (id, hash_a) = resolve(&a, &name).await;
    let (_, hash_b) = resolve(&b, &name).await;
    assert_ne!(hash_a, hash_b, "each account sees its own access hash");
    let get = |hash| tl::functions::channels::GetChannels {
        id: vec![
            tl::types::InputChannel {
                channel_id: id,
                access_hash: hash,
            }
            .into(),
        ],
    };
    a.invoke(&get(hash_a)).await.unwrap();
    b.invoke(&get(hash_b)).await.unwrap();
    let e = b.invoke(&get(hash_a)).await.unwrap_err();
    assert_eq!(
        rpc(e).1,
        "CHANNEL_INVALID",
        "another account's hash is refused"
    );
}
