//! A fake Telegram for offline tests and demos. It speaks the real wire protocols — MTProto 2.0
//! over TCP (Full transport, pre-shared auth keys) and the Bot API over HTTP — so unmodified
//! clients (grammers, Telethon, teloxide) talk to it over real sockets.
//!
//! It is not a Telegram: one DC, no key exchange, no media bytes, no private chats. What it does
//! model, it models with Telegram's documented semantics: paging, pts gaps and channel
//! differences, login with code and real SRP 2FA, flood waits and bans, the Bot API's rate limits.
//!
//! Start one in-process with [`FakeTelegram::start`], or run the `fake-telegram` binary.

#![forbid(unsafe_code)]

pub mod botapi;
pub mod control;
pub mod faults;
pub mod flood;
pub mod generate;
pub mod mtproto;
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
    pub dc_id: i32,
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
            dc_id: 2,
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
    pub dc_id: i32,
    pub auth_key: String,
    pub phone: String,
    pub code: String,
    pub password: String,
    pub channels: Vec<String>,
}

pub struct FakeTelegram {
    pub world: World,
    pub shared: Arc<Shared>,
    pub faults: Arc<Faults>,
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
        let faults = Arc::new(Faults::default());
        let shared = Arc::new(Shared::new(
            world.clone(),
            Flood::new(opts.quotas),
            faults.clone(),
            opts.dc_id,
            opts.gzip_over,
        ));
        let auth_key = AuthKey::random();
        shared.add_key(auth_key.clone());
        let listener = TcpListener::bind(opts.mtproto).await?;
        let mtproto_addr = listener.local_addr()?;
        *shared.public_addr.lock().unwrap_or_else(|p| p.into_inner()) = mtproto_addr;
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
        let tasks = vec![
            tokio::spawn(mtproto::serve(listener, shared.clone())),
            tokio::spawn(async move {
                let _ = axum::serve(bot_listener, bot_router).await;
            }),
            tokio::spawn(async move {
                let _ = axum::serve(control_listener, control.router()).await;
            }),
        ];
        Ok(FakeTelegram {
            info,
            bot,
            world,
            shared,
            faults,
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
