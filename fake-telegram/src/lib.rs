//! A fake Telegram for offline tests and demos. It speaks the real wire protocols — MTProto 2.0
//! over TCP (Full transport, pre-shared auth keys) and the Bot API over HTTP — so unmodified
//! clients (grammers, Telethon, teloxide) talk to it over real sockets.
//!
//! It is not a Telegram: no key exchange (five DCs with pre-shared keys), no media bytes, no
//! private chats. What it does model, it models with Telegram's documented semantics: DCs and
//! their migrations, paging, pts gaps and channel differences, login with every code delivery and
//! real SRP 2FA, flood waits, bans and frozen accounts, the Bot API's rate limits.
//!
//! Start one in-process with [`FakeTelegram::start`], or run the `fake-telegram` binary.

#![forbid(unsafe_code)]

pub mod botapi;
pub mod control;
pub mod faults;
pub mod flood;
pub mod generate;
pub mod mtproto;
pub mod python;
pub mod srp;
pub mod world;

use std::net::SocketAddr;
use std::sync::Arc;

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use faults::Faults;
use flood::{Flood, QuotaMode};
use mtproto::{AuthKey, Shared};
use world::World;

/// How to start a fake Telegram.
#[derive(Debug, Clone)]
pub struct Options {
    pub mtproto: SocketAddr,
    pub bot_api: SocketAddr,
    pub control: SocketAddr,
    pub bot_token: String,
    /// Enforce the Bot API's rate limits (429 past them).
    pub bot_limits: bool,
    pub channels: usize,
    pub posts: usize,
    pub seed: u64,
    pub quotas: QuotaMode,
    /// The test account's 2FA password; `None` for an account without one.
    pub password: Option<String>,
    pub phone: String,
    pub code: String,
    /// gzip MTProto results larger than this (None: never), as Telegram does for big answers.
    pub gzip_over: Option<usize>,
    /// The DC the `mtproto` address serves (the one clients start on).
    pub dc_id: i32,
    /// The DC the test account lives on.
    pub home_dc: i32,
    /// Who receives pushed channel updates (default: members, as Telegram).
    pub pushes: world::PushMode,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mtproto: SocketAddr::from(([127, 0, 0, 1], 0)),
            bot_api: SocketAddr::from(([127, 0, 0, 1], 0)),
            control: SocketAddr::from(([127, 0, 0, 1], 0)),
            bot_token: "7000000001:AAFakeTelegramTestTokenForOfflineUse".into(),
            bot_limits: true,
            channels: 3,
            posts: 200,
            seed: 1,
            quotas: QuotaMode::Default,
            password: Some("correct horse battery staple".into()),
            phone: "+999662345678".into(),
            code: "12345".into(),
            gzip_over: Some(16 * 1024),
            dc_id: mtproto::dcs::ENTRY_DC,
            home_dc: mtproto::dcs::TEST_ACCOUNT_DC,
            pushes: world::PushMode::Members,
        }
    }
}

/// What a client needs to connect, printed by the binary as one JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct Info {
    pub mtproto: SocketAddr,
    pub bot_api: SocketAddr,
    pub control: SocketAddr,
    pub bot_token: String,
    pub bot_username: String,
    /// The DC `mtproto` serves.
    pub dc_id: i32,
    /// That DC's pre-shared auth key (hex).
    pub auth_key: String,
    /// Every DC: its address and pre-shared auth key (hex), by DC id.
    pub dcs: std::collections::BTreeMap<i32, DcInfo>,
    /// The DC the test account lives on.
    pub home_dc: i32,
    pub phone: String,
    pub code: String,
    pub password: String,
    pub channels: Vec<String>,
}

/// One DC's listener and pre-shared key.
#[derive(Debug, Clone, Serialize)]
pub struct DcInfo {
    pub address: SocketAddr,
    pub auth_key: String,
}

impl Info {
    /// Every DC's pre-shared key as `tgparser`'s `telegram.server.auth_key_file` holds them:
    /// a line `<dc> <512 hex characters>` per DC.
    pub fn auth_key_file(&self) -> String {
        self.dcs
            .iter()
            .map(|(id, dc)| format!("{id} {}\n", dc.auth_key))
            .collect()
    }
}

pub struct FakeTelegram {
    pub world: World,
    pub shared: Arc<Shared>,
    pub faults: Arc<Faults>,
    /// The pre-shared key of every DC.
    pub auth_keys: std::collections::BTreeMap<i32, AuthKey>,
    /// The key of the DC `info.mtproto` serves.
    pub auth_key: AuthKey,
    pub bot: Arc<botapi::BotApi>,
    pub info: Info,
    tasks: Vec<JoinHandle<()>>,
}

impl FakeTelegram {
    pub async fn start(opts: Options) -> std::io::Result<FakeTelegram> {
        let world = World::new();
        let channels = generate::generate(&world, opts.channels, opts.posts, opts.seed);
        world.add_account(&opts.phone, "Test", &opts.code, opts.password.as_deref());
        world
            .upsert_account(&world::AccountSpec {
                phone: opts.phone.clone(),
                dc: Some(opts.home_dc),
                ..Default::default()
            })
            .map_err(std::io::Error::other)?;
        world.lock().push_mode = opts.pushes;
        let faults = Arc::new(Faults::default());
        let shared = Arc::new(Shared::new(
            world.clone(),
            Flood::new(opts.quotas),
            faults.clone(),
            opts.dc_id,
            opts.gzip_over,
        ));
        // Every DC listens on its own port, with its own key. The entry DC takes the address
        // asked for; the others any free port on the same interface.
        let mut auth_keys = std::collections::BTreeMap::new();
        let mut listeners = Vec::new();
        let mut dcs = std::collections::BTreeMap::new();
        for dc in mtproto::dcs::DC_IDS {
            let addr = if dc == opts.dc_id {
                opts.mtproto
            } else {
                SocketAddr::new(opts.mtproto.ip(), 0)
            };
            let listener = TcpListener::bind(addr).await?;
            let key = AuthKey::random();
            shared.add_key(key.clone(), dc);
            let address = listener.local_addr()?;
            shared
                .dcs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(dc, address);
            dcs.insert(
                dc,
                DcInfo {
                    address,
                    auth_key: hex::encode(key.data),
                },
            );
            auth_keys.insert(dc, key);
            listeners.push((dc, listener));
        }
        let auth_key = auth_keys
            .get(&opts.dc_id)
            .cloned()
            .ok_or_else(|| std::io::Error::other(format!("dc_id {} is not 1 to 5", opts.dc_id)))?;
        let mtproto_addr = dcs[&opts.dc_id].address;
        let bot = botapi::BotApi::new(opts.bot_token.clone(), faults.clone(), opts.bot_limits);
        let bot_listener = TcpListener::bind(opts.bot_api).await?;
        let control_listener = TcpListener::bind(opts.control).await?;
        let info = Info {
            mtproto: mtproto_addr,
            bot_api: bot_listener.local_addr()?,
            control: control_listener.local_addr()?,
            bot_token: opts.bot_token.clone(),
            bot_username: botapi::BOT_USERNAME.into(),
            dc_id: opts.dc_id,
            auth_key: hex::encode(auth_key.data),
            dcs,
            home_dc: opts.home_dc,
            phone: opts.phone.clone(),
            code: opts.code.clone(),
            password: opts.password.clone().unwrap_or_default(),
            channels,
        };
        let control = control::Control {
            shared: shared.clone(),
            bot: bot.clone(),
            info: info.clone(),
        };
        let bot_router = bot.router();
        let mut tasks: Vec<JoinHandle<()>> = listeners
            .into_iter()
            .map(|(dc, l)| tokio::spawn(mtproto::serve(l, shared.clone(), dc)))
            .collect();
        tasks.extend([
            tokio::spawn(async move {
                let _ = axum::serve(bot_listener, bot_router).await;
            }),
            tokio::spawn(async move {
                let _ = axum::serve(control_listener, control.router()).await;
            }),
        ]);
        Ok(FakeTelegram {
            info,
            bot,
            world,
            shared,
            faults,
            auth_keys,
            auth_key,
            tasks,
        })
    }
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
