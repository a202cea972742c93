//! The Bot API bot (teloxide): how Telegram users use the product. A supervised part: long
//! polling, updates of one chat handled in order and chats concurrently ([`dispatch`]),
//! role-aware commands, access control.
//!
//! The token is in the request URL of every Bot API call, so no error from the HTTP client is
//! logged or shown as it is: [`redact`] removes the token first.

pub mod commands;
mod delivery_check;
pub mod dispatch;
mod export;
mod handlers;
mod login;
pub mod outbox;
pub mod press;
pub(crate) mod search;
pub(crate) mod subs;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use teloxide::prelude::*;
use teloxide::requests::Output;
use teloxide::types::{AllowedUpdate, BotCommand, BotCommandScope, Recipient, UpdateKind};
use teloxide::update_listeners::{AsUpdateStream, UpdateListener};
use zeroize::Zeroizing;

use crate::config::BotConfig;
use crate::guard::botapi::BotGuard;
use crate::health::Health;
use crate::store::Store;
use crate::supervisor::{PartContext, PartError, PartState, Registry};
use commands::Role;

/// What every handler shares.
pub struct App {
    pub store: Store,
    pub registry: Registry,
    pub health: Option<Arc<Health>>,
    pub admins: HashSet<i64>,
    pub open: bool,
    /// The bot's username, for commands addressed in groups.
    pub me: String,
    /// Users already told they may not use the bot (told once, then ignored).
    pub refused: Mutex<HashSet<i64>>,
    /// Queries of recent `/search` answers, for their page buttons.
    pub searches: Mutex<search::Searches>,
    /// Every Bot API call goes through it: replies and alerts share its quotas.
    pub guard: BotGuard,
    pub outbox: Arc<outbox::OutboxStats>,
    /// What `/login` and `/logout` need: the parser's configuration and session.
    pub account: Arc<Account>,
    pub logins: login::Dialogs,
    pub status_cache: handlers::StatusCache,
    pub login_step_timeout: std::time::Duration,
    token: Zeroizing<String>,
}

/// The parsing account, as the bot reaches it.
pub struct Account {
    pub telegram: Option<crate::config::TelegramConfig>,
    pub vault: Arc<crate::vault::Vault>,
    pub control: Arc<crate::parser::control::SessionControl>,
    /// `[media]`: the kinds `/add … --media` archives when it names none.
    pub media: crate::config::MediaConfig,
}

impl App {
    pub fn redact(&self, text: &str) -> String {
        redact(text, &self.token)
    }

    /// Makes a Bot API call through the guard (`chat`: the chat it writes to, for its quota).
    pub async fn call<R>(&self, chat: Option<ChatId>, req: R) -> Result<Output<R>, BotError>
    where
        R: Request<Err = teloxide::RequestError>,
    {
        self.guard
            .call(chat.map(|c| c.0), || req.send_ref())
            .await
            .map_err(|e| BotError::Request(self.redact(&e.to_string())))
    }

    /// An edit of a message the bot sent: "message is not modified" (the same page pressed
    /// twice, a redraw that changes nothing) is no failure.
    pub async fn edit<R>(&self, chat: Option<ChatId>, req: R) -> Result<(), BotError>
    where
        R: Request<Err = teloxide::RequestError>,
    {
        match self.guard.call(chat.map(|c| c.0), || req.send_ref()).await {
            Ok(_) | Err(crate::guard::botapi::BotCallError::NotModified) => Ok(()),
            Err(e) => Err(BotError::Request(self.redact(&e.to_string()))),
        }
    }

    /// A user's role: admins from the configuration, then the database, then `bot.open`.
    pub async fn role(&self, user_id: i64) -> Result<Role, crate::store::StoreError> {
        if self.admins.contains(&user_id) {
            return Ok(Role::Admin);
        }
        Ok(match self.store.bot_user_role(user_id).await?.as_deref() {
            Some("denied") => Role::Denied,
            Some(_) => Role::User,
            None if self.open => Role::User,
            None => Role::Stranger,
        })
    }
}

/// `text` with every occurrence of the token (and of its secret half) replaced.
pub fn redact(text: &str, token: &str) -> String {
    if token.is_empty() {
        return text.to_string();
    }
    let mut out = text.replace(token, "<token>");
    if let Some((_, secret)) = token.split_once(':')
        && secret.len() >= 8
    {
        out = out.replace(secret, "<token>");
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error("Bot API: {0}")]
    Request(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

fn read_token(cfg: &BotConfig) -> Result<Zeroizing<String>, PartError> {
    let text = Zeroizing::new(std::fs::read_to_string(&cfg.token_file).map_err(|e| {
        PartError::Fatal(format!(
            "cannot read bot.token_file {}: {e}",
            cfg.token_file.display()
        ))
    })?);
    let token = Zeroizing::new(text.trim().to_string());
    let valid = token.split_once(':').is_some_and(|(id, secret)| {
        !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()) && secret.len() >= 8
    });
    if !valid {
        return Err(PartError::Fatal(format!(
            "bot.token_file {} does not hold a bot token (expected the 123456:ABC… form @BotFather gives)",
            cfg.token_file.display()
        )));
    }
    Ok(token)
}

fn bot_commands(role: Role) -> Vec<BotCommand> {
    commands::COMMANDS
        .iter()
        .filter(|c| c.role <= role)
        .map(|c| BotCommand::new(c.name, c.about))
        .collect()
}

/// What a `getUpdates` 409 means, and what to do about it.
fn conflict(e: &teloxide::RequestError) -> Option<&'static str> {
    match e {
        teloxide::RequestError::Api(teloxide::ApiError::TerminatedByOtherGetUpdates) => Some(
            "another process is reading this bot's updates (409 Conflict): two instances, or another program, use the same bot token; stop the other one, or give this daemon its own bot",
        ),
        teloxide::RequestError::Api(teloxide::ApiError::CantGetUpdates) => Some(
            "a webhook is set for this bot's token (409 Conflict), so it cannot read updates: something else set it after the daemon removed it at start; stop that program, then restart the daemon",
        ),
        _ => None,
    }
}

/// Readiness fails while `getUpdates` answers 409 (the bot receives nothing, and retrying
/// alone never helps), and passes again once a while went by without one.
struct Conflicts {
    health: Option<Arc<Health>>,
    last: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

/// How long after the last 409 the check clears: longer than teloxide's pause between polls
/// after a few errors, so a conflict that goes on is never shown as cleared.
const CONFLICT_CLEARS: std::time::Duration = std::time::Duration::from_secs(40);

impl Conflicts {
    fn new(health: Option<Arc<Health>>) -> Conflicts {
        Conflicts {
            health,
            last: Arc::default(),
        }
    }

    /// Updates arrive again: whatever the conflict was, it is over.
    fn over(&self) {
        let was = self
            .last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .is_some();
        if was && let Some(h) = &self.health {
            h.set_check("bot:getUpdates", None);
        }
    }

    fn seen(&self, what: &'static str) {
        let Some(h) = &self.health else { return };
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(std::time::Instant::now());
        h.set_check(
            "bot:getUpdates",
            Some(crate::health::ExtraCheck {
                component_type: "telegram",
                status: crate::health::Status::Fail,
                observed_value: None,
                observed_unit: None,
                output: what.to_string(),
            }),
        );
        let (h, last) = (h.clone(), self.last.clone());
        tokio::spawn(async move {
            tokio::time::sleep(CONFLICT_CLEARS).await;
            let quiet = last
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some_and(|t| t.elapsed() >= CONFLICT_CLEARS);
            if quiet {
                h.set_check("bot:getUpdates", None);
            }
        });
    }
}

/// Checks through the guard whether the Bot API answers, after `getUpdates` failed: teloxide's
/// polling waits and retries on its own, out of the guard's sight, so without this a Bot API
/// out of reach (a proxy down, a network cut) would show nowhere. Each failed `getMe` counts
/// against the Bot API breaker (`breaker:botapi` in readiness); the first success closes it and
/// ends the probe.
struct ReachProbe {
    bot: Bot,
    guard: BotGuard,
    cancel: tokio_util::sync::CancellationToken,
    running: Arc<std::sync::atomic::AtomicBool>,
}

impl ReachProbe {
    fn start(&self) {
        use std::sync::atomic::Ordering;
        if self.running.swap(true, Ordering::SeqCst) {
            return;
        }
        let (bot, guard, cancel, running) = (
            self.bot.clone(),
            self.guard.clone(),
            self.cancel.clone(),
            self.running.clone(),
        );
        tokio::spawn(async move {
            loop {
                let call = guard.call(None, || bot.get_me().send());
                let reached = tokio::select! {
                    r = call => r.is_ok(),
                    _ = cancel.cancelled() => true,
                };
                if reached {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
                    _ = cancel.cancelled() => break,
                }
            }
            running.store(false, Ordering::SeqCst);
        });
    }
}

pub async fn run(
    ctx: PartContext,
    cfg: BotConfig,
    store: Store,
    health: Option<Arc<Health>>,
    account: Arc<Account>,
) -> Result<(), PartError> {
    let token = read_token(&cfg)?;
    // Libraries log request errors with the URL, which carries the token: hide it everywhere.
    crate::logging::hide(&token);
    if let Some((_, secret)) = token.split_once(':') {
        crate::logging::hide(secret);
    }
    let mut bot = match &cfg.proxy {
        None => Bot::new(token.as_str()),
        Some(p) => {
            let url = crate::parser::client::proxy_url("bot", p)
                .await
                .map_err(|e| match e {
                    crate::parser::client::ConnectError::Config(c) => {
                        PartError::Fatal(c.to_string())
                    }
                    other => PartError::Retry(other.to_string()),
                })?;
            let client = reqwest::Proxy::all(url.as_str())
                .and_then(|proxy| {
                    teloxide::net::default_reqwest_settings()
                        .proxy(proxy)
                        .build()
                })
                .map_err(|_| {
                    PartError::Fatal(format!(
                        "bot.proxy {}: the HTTP client refused it",
                        p.shown()
                    ))
                })?;
            Bot::with_client(token.as_str(), client)
        }
    };
    if let Some(url) = &cfg.api_url {
        let base = if url.ends_with('/') {
            url.clone()
        } else {
            format!("{url}/")
        };
        let parsed = base
            .parse()
            .map_err(|_| PartError::Fatal(format!("bot.api_url {url:?} is not a URL")))?;
        bot = bot.set_api_url(parsed);
    }
    let me = match bot.get_me().await {
        Ok(me) => me,
        Err(teloxide::RequestError::Api(teloxide::ApiError::InvalidToken)) => {
            return Err(PartError::Fatal(
                "the Bot API refused the token (401): check bot.token_file".into(),
            ));
        }
        Err(e) => {
            return Err(PartError::Retry(format!(
                "cannot reach the Bot API: {}",
                redact(&e.to_string(), &token)
            )));
        }
    };
    let username = me.username.clone().unwrap_or_default();
    let secret = token.split_once(':').map_or("", |(_, s)| s);
    let guard = BotGuard::new(cfg.guard.clone(), health.clone(), &[token.as_str(), secret]);
    let outbox = Arc::new(outbox::Outbox {
        bot: bot.clone(),
        guard: guard.clone(),
        store: store.clone(),
        digest_after: cfg.digest_after,
        stats: Arc::default(),
    });
    // Commands as each role sees them in Telegram's menu.
    if let Err(e) = bot.set_my_commands(bot_commands(Role::User)).await {
        tracing::warn!(error = %redact(&e.to_string(), &token), "setMyCommands failed");
    }
    for admin in &cfg.admins {
        if let Err(e) = bot
            .set_my_commands(bot_commands(Role::Admin))
            .scope(BotCommandScope::Chat {
                chat_id: Recipient::Id(ChatId(*admin)),
            })
            .await
        {
            tracing::warn!(admin, error = %redact(&e.to_string(), &token), "setMyCommands for an admin failed");
        }
    }

    let app = Arc::new(App {
        store,
        registry: ctx.registry.clone(),
        health: health.clone(),
        admins: cfg.admins.iter().copied().collect(),
        open: cfg.open,
        me: username.clone(),
        refused: Mutex::new(HashSet::new()),
        searches: Mutex::new(search::Searches::default()),
        guard: guard.clone(),
        outbox: outbox.stats.clone(),
        account,
        logins: login::Dialogs::default(),
        status_cache: handlers::StatusCache::default(),
        login_step_timeout: cfg.login_step_timeout,
        token: token.clone(),
    });
    let dispatcher = Arc::new(dispatch::ChatDispatcher::new({
        let bot = bot.clone();
        let app = app.clone();
        move |update: Box<Update>| handle(bot.clone(), app.clone(), update)
    }));
    if let Some(h) = &health {
        let d = dispatcher.clone();
        h.add_metrics(Arc::new(move |out: &mut String| {
            d.stats.write_metrics(out, d.pending())
        }));
    }
    let mut listener = teloxide::update_listeners::Polling::builder(bot.clone())
        .timeout(std::time::Duration::from_secs(10))
        .allowed_updates(vec![AllowedUpdate::Message, AllowedUpdate::CallbackQuery])
        .delete_webhook()
        .await
        .build();
    let shutdown = listener.stop_token();
    ctx.registry.set(ctx.name, PartState::Running);
    tracing::info!(bot = %username, "bot running");
    let mut running = tokio::spawn({
        let dispatcher = dispatcher.clone();
        let token = token.clone();
        let conflicts = Conflicts::new(health.clone());
        let probe = ReachProbe {
            bot: bot.clone(),
            guard: guard.clone(),
            cancel: ctx.cancel.child_token(),
            running: Arc::default(),
        };
        async move {
            let updates = listener.as_stream();
            futures::pin_mut!(updates);
            // Ends after a stop: the stream yields what it already fetched, confirms it to the
            // Bot API and ends; every update taken is then handled before the part stops.
            while let Some(update) = updates.next().await {
                match update {
                    Ok(update) => {
                        conflicts.over();
                        dispatch_update(&dispatcher, update).await
                    }
                    Err(e) => {
                        tracing::warn!(
                            error = %redact(&e.to_string(), &token),
                            "getUpdates failed; polling again after a pause"
                        );
                        if let Some(what) = conflict(&e) {
                            conflicts.seen(what);
                        }
                        probe.start();
                    }
                }
            }
            probe.cancel.cancel();
            dispatcher.finish().await;
        }
    });
    let outbox_cancel = ctx.cancel.child_token();
    let mut delivering = tokio::spawn(outbox.run(outbox_cancel.clone(), health.clone()));
    let stop = async {
        outbox_cancel.cancel();
        // Handlers finish what they are doing; no new update is taken.
        shutdown.stop();
    };
    tokio::select! {
        _ = &mut running => {
            outbox_cancel.cancel();
            let _ = delivering.await;
            Err(PartError::Retry("the bot's update loop stopped".into()))
        }
        r = &mut delivering => {
            stop.await;
            let _ = running.await;
            Err(PartError::Retry(match r {
                Ok(Err(e)) => format!("the outbox worker stopped: {e}"),
                Ok(Ok(())) => "the outbox worker stopped".into(),
                Err(e) => format!("the outbox worker panicked: {e}"),
            }))
        }
        _ = ctx.cancel.cancelled() => {
            stop.await;
            let _ = running.await;
            let _ = delivering.await;
            Ok(())
        }
    }
}

/// The chat an update belongs to, for its place in line: its chat, else (a button under a message
/// too old to be shown) the private chat of the user who pressed it.
pub(crate) fn chat_key(update: &Update) -> Option<i64> {
    update
        .chat()
        .map(|c| c.id.0)
        .or_else(|| update.from().and_then(|u| i64::try_from(u.id.0).ok()))
}

async fn dispatch_update<H, Fut>(
    dispatcher: &dispatch::ChatDispatcher<Box<Update>, H>,
    update: Update,
) where
    H: Fn(Box<Update>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    if let UpdateKind::Error(_) = &update.kind {
        // Not a kind teloxide knows; its content stays out of the log (user text).
        tracing::warn!(
            update = update.id.0,
            "an update of an unknown kind was skipped"
        );
        return;
    }
    let Some(chat) = chat_key(&update) else {
        return; // no chat and no user: nothing the bot answers
    };
    if dispatcher.push(chat, Box::new(update)).await == dispatch::Pushed::Dropped {
        tracing::warn!(
            chat,
            limit = dispatch::CHAT_QUEUE_LIMIT,
            "a chat sent more updates than wait in its queue; the excess was dropped"
        );
    }
}

/// One update through its handler; a handler's error is logged with the token removed. The
/// update stays boxed and is lent to the handler: at ~2 KB it would otherwise be copied into
/// every waiting handler's future besides the queue.
async fn handle(bot: Bot, app: Arc<App>, update: Box<Update>) {
    let result = match &update.kind {
        UpdateKind::Message(msg) => handlers::on_message(bot, msg, app.clone()).await,
        UpdateKind::CallbackQuery(q) => handlers::on_callback(bot, q.clone(), app.clone()).await,
        _ => Ok(()),
    };
    if let Err(e) = result {
        tracing::warn!(error = %app.redact(&e.to_string()), "bot handler failed");
    }
}
