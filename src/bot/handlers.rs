//! What the bot does with a message. Every path answers something useful or, for strangers and
//! other bots' commands, deliberately nothing; nothing is written for a refused command.

use std::sync::Arc;
use std::time::{Duration, Instant};

use teloxide::prelude::*;

use super::commands::{self, MAX_ARGS, Role};
use super::press::Press;
use super::{App, BotError};
use crate::store::ChannelRecord;

/// How long `/add` waits for the parser to resolve a channel before saying it is still queued.
const ADD_WAIT: Duration = Duration::from_secs(60);

pub(super) async fn send(
    bot: &Bot,
    app: &App,
    chat: ChatId,
    text: impl Into<String>,
) -> Result<(), BotError> {
    app.call(Some(chat), bot.send_message(chat, text.into()))
        .await
        .map(|_| ())
}

async fn reply(
    bot: &Bot,
    app: &App,
    msg: &Message,
    text: impl Into<String>,
) -> Result<(), BotError> {
    send(bot, app, msg.chat.id, text).await
}

pub async fn on_message(bot: Bot, msg: &Message, app: Arc<App>) -> Result<(), BotError> {
    let Some(user) = msg.from.as_ref() else {
        return Ok(()); // channel posts and anonymous admins: not a person to answer
    };
    if user.is_bot {
        return Ok(());
    }
    let user_id = i64::try_from(user.id.0).unwrap_or(i64::MAX);
    let private = msg.chat.is_private();
    let parsed = msg
        .text()
        .and_then(|t| commands::parse(t, &app.me, !private));
    // In groups the bot hears only commands addressed to it.
    if !private && parsed.is_none() {
        return Ok(());
    }
    let role = app.role(user_id).await?;
    match role {
        Role::Denied => return Ok(()),
        Role::Stranger => {
            let first = app
                .refused
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(user_id);
            if first {
                reply(
                    &bot,
                    &app,
                    msg,
                    format!(
                        "Sorry, this bot is private. Ask its administrator to allow your account (id {user_id})."
                    ),
                )
                .await?;
            }
            return Ok(());
        }
        Role::User | Role::Admin => {}
    }
    // The larger steps below are boxed: a handler's future is as large as its largest step, and
    // one waits for every chat with an update pending, so /help need not carry /login's size.
    // In a group too: a subscription made there belongs to its user, who must be on record
    // (without it, /subscribe in a group by someone who never wrote to the bot in private
    // failed on the foreign key and went unanswered). A group says nothing of their private
    // chat.
    Box::pin(app.store.touch_bot_user(
        user_id,
        user.username.as_deref(),
        &user.first_name,
        private.then_some(msg.chat.id.0),
    ))
    .await?;
    // An open login dialog reads this chat's next answers (a code, a password) first.
    if private && Box::pin(super::login::on_message(&bot, &app, msg, user_id)).await? {
        return Ok(());
    }
    if msg.text().is_none() {
        return reply(
            &bot,
            &app,
            msg,
            "I read text commands only. /help lists them.",
        )
        .await;
    }
    let Some(cmd) = parsed else {
        return reply(&bot, &app, msg, "Send me a command; /help lists them.").await;
    };
    let Some(spec) = commands::find(&cmd.name) else {
        return reply(
            &bot,
            &app,
            msg,
            format!("I do not know /{}. /help lists what I can do.", cmd.name),
        )
        .await;
    };
    if spec.role > role {
        return reply(
            &bot,
            &app,
            msg,
            format!("/{} is for the bot's administrators.", spec.name),
        )
        .await;
    }
    if cmd.args.chars().count() > MAX_ARGS {
        return reply(
            &bot,
            &app,
            msg,
            format!(
                "That is too long: /{} takes at most {MAX_ARGS} characters.",
                spec.name
            ),
        )
        .await;
    }
    let answer = match spec.name {
        "start" => start(role),
        "help" => commands::help_text(role),
        "status" => status(&app).await?,
        "channels" => channels(&app).await?,
        "add" => return Box::pin(add(&bot, &app, msg, user_id, cmd.args)).await,
        "login" => {
            return Box::pin(super::login::start(&bot, &app, msg, user_id, cmd.args)).await;
        }
        "cancel" => return Box::pin(super::login::cancel(&bot, &app, msg.chat.id)).await,
        "logout" => Box::pin(super::login::logout(&app, user_id)).await?,
        "export" => return Box::pin(super::export::export(&bot, &app, msg, cmd.args)).await,
        "search" => return Box::pin(super::search::search(&bot, &app, msg, cmd.args)).await,
        "subscribe" => {
            return Box::pin(super::subs::subscribe(&bot, &app, msg, user_id, cmd.args)).await;
        }
        "subscriptions" | "unsubscribe" => {
            return Box::pin(super::subs::list(&bot, &app, msg, user_id)).await;
        }
        "remove" | "pause" | "resume" => Box::pin(set_state(&app, spec, cmd.args, user_id)).await?,
        "allow" | "deny" => Box::pin(allow_deny(&app, spec, cmd.args, user_id)).await?,
        _ => commands::help_text(role),
    };
    reply(&bot, &app, msg, answer).await
}

fn start(role: Role) -> String {
    let mut s = String::from(
        "This bot archives Telegram channels into a searchable database and tells you what it is doing.\n\n",
    );
    if role == Role::Admin {
        s.push_str("You administer it: /add a channel, /channels to see them, /allow people.\n");
    }
    s.push_str("/help lists your commands.");
    s
}

fn usage_error(spec: &commands::Command, what: &str) -> String {
    format!("{what}\nUsage: {}", commands::usage(spec))
}

/// What `/status` reads from the database, shared by the `/status` answers of one second: at
/// thousands of commands a second, two queries per answer kept the database's threads busy with
/// the same result. Single-flight: one refresh while the others wait for it.
#[derive(Default)]
pub struct StatusCache {
    cell: tokio::sync::Mutex<Option<(Instant, Arc<StatusData>)>>,
}

pub struct StatusData {
    waiting: i64,
    channels: Vec<ChannelRecord>,
}

/// How old a `/status` answer's figures may be.
pub const STATUS_MAX_AGE: Duration = Duration::from_secs(1);

impl StatusCache {
    async fn get(&self, app: &App) -> Result<Arc<StatusData>, BotError> {
        let mut cell = self.cell.lock().await;
        if let Some((at, data)) = cell.as_ref()
            && at.elapsed() < STATUS_MAX_AGE
        {
            return Ok(data.clone());
        }
        let data = Arc::new(StatusData {
            waiting: app.store.outbox_waiting().await?,
            channels: app.store.channels().await?,
        });
        *cell = Some((Instant::now(), data.clone()));
        Ok(data)
    }

    /// After a change the asker expects to see at once (a channel added, removed, paused).
    pub async fn invalidate(&self) {
        *self.cell.lock().await = None;
    }
}

async fn status(app: &App) -> Result<String, BotError> {
    let mut out = String::new();
    if let Some(h) = &app.health {
        let snap = h.current();
        out.push_str(&format!(
            "Status: {} ({})\n",
            snap.status.as_str(),
            snap.summary
        ));
    }
    for (name, p) in app.registry.snapshot() {
        out.push_str(&format!("{name}: {}\n", p.state.describe()));
    }
    let data = app.status_cache.get(app).await?;
    let (sent, folded, failed) = app.outbox.totals();
    out.push_str(&format!(
        "Alerts: {} waiting; since start {sent} sent, {folded} folded into digests, {failed} failed; Bot API breaker {}\n",
        data.waiting,
        app.guard.breaker_state().as_str()
    ));
    let chs = &data.channels;
    if chs.is_empty() {
        out.push_str("No channels followed yet.");
    } else {
        // How the channels are followed: Telegram pushes only to members, so the rest are
        // polled; a lost one no longer answers at all.
        let live: Vec<_> = chs.iter().filter(|c| c.state == "active").collect();
        let count = |f: &dyn Fn(&ChannelRecord) -> bool| live.iter().filter(|c| f(c)).count();
        out.push_str(&format!(
            "Followed: {} pushed and polled, {} polled only, {} waiting for join approval; {} lost\n",
            count(&|c| c.membership == "joined"),
            count(&|c| c.membership != "joined" && c.membership != "requested"),
            count(&|c| c.membership == "requested"),
            chs.iter().filter(|c| c.state == "private").count()
        ));
        out.push_str("\nChannels:\n");
        for c in chs.iter().filter(|c| c.state != "removed") {
            out.push_str(&channel_line(c));
        }
    }
    Ok(out)
}

fn channel_line(c: &ChannelRecord) -> String {
    format!(
        "{} - {} posts, backfill {:.0}%, newest {} ago, {}, {}\n",
        c.display_name(),
        c.stored,
        c.backfill_percent(),
        crate::time::ago(c.last_post_at),
        c.state,
        c.followed_by()
    )
}

async fn channels(app: &App) -> Result<String, BotError> {
    let chs: Vec<_> = app
        .store
        .channels()
        .await?
        .into_iter()
        .filter(|c| c.state != "removed")
        .collect();
    if chs.is_empty() {
        return Ok("No channels yet. /add @channel follows one.".into());
    }
    let mut out = String::new();
    for c in &chs {
        out.push_str(&channel_line(c));
    }
    Ok(out)
}

/// `/add <ref> [--since YYYY-MM-DD | --last N] [--no-join] [--with-comments]`: the parser resolves it (through its session and
/// guard) and the answer comes back here.
async fn add(
    bot: &Bot,
    app: &App,
    msg: &Message,
    user_id: i64,
    args: &str,
) -> Result<(), BotError> {
    let spec = commands::find("add").unwrap_or(&commands::COMMANDS[0]);
    let mut words = args.split_whitespace();
    let Some(reference) = words.next() else {
        return reply(bot, app, msg, usage_error(spec, "Which channel?")).await;
    };
    let (mut since, mut last, mut no_join, mut with_comments) = (None, None, false, false);
    let mut media: Option<Vec<String>> = None;
    let mut words = words.peekable();
    while let Some(flag) = words.next() {
        if flag == "--media" {
            // The kinds named, or `[media]`'s.
            let named = words.next_if(|w| !w.starts_with("--"));
            let kinds = match named {
                Some(k) => crate::config::media::parse_kinds(&[k.to_string()]),
                None if app.account.media.kinds.is_empty() => Err(
                    "name the kinds of files to archive: photo, video, round, gif, audio, voice, sticker, document, or all"
                        .to_string(),
                ),
                None => Ok(app.account.media.kinds.clone()),
            };
            match kinds {
                Ok(k) => media = Some(k),
                Err(e) => {
                    return reply(bot, app, msg, usage_error(spec, &format!("--media: {e}.")))
                        .await;
                }
            }
            continue;
        }
        if flag == "--no-join" {
            no_join = true;
            continue;
        }
        if flag == "--with-comments" {
            with_comments = true;
            continue;
        }
        match (flag, words.next()) {
            ("--since", Some(d)) => match crate::time::parse_date(d) {
                Some(t) => since = Some(t),
                None => {
                    return reply(
                        bot,
                        app,
                        msg,
                        usage_error(
                            spec,
                            &format!("{d:?} is not a date; write it as YYYY-MM-DD."),
                        ),
                    )
                    .await;
                }
            },
            ("--last", Some(n)) => match n.parse::<i64>() {
                Ok(n) if n > 0 => last = Some(n),
                _ => {
                    return reply(
                        bot,
                        app,
                        msg,
                        usage_error(
                            spec,
                            &format!("--last takes a positive number of posts, not {n:?}."),
                        ),
                    )
                    .await;
                }
            },
            (other, _) => {
                return reply(
                    bot,
                    app,
                    msg,
                    usage_error(spec, &format!("I do not understand {other:?}.")),
                )
                .await;
            }
        }
    }
    if since.is_some() && last.is_some() {
        return reply(
            bot,
            app,
            msg,
            usage_error(spec, "Give --since or --last, not both."),
        )
        .await;
    }
    if app.registry.get("parser").map(|p| p.state.name()) != Some("running") {
        return reply(
            bot,
            app,
            msg,
            "The parser is not running (see /status), so the channel cannot be looked up now.",
        )
        .await;
    }
    let id = app
        .store
        .request_channel(
            reference,
            since,
            last,
            &format!("bot:{user_id}"),
            no_join,
            with_comments,
        )
        .await?;
    let started = Instant::now();
    loop {
        let r = app.store.channel_request(id).await?;
        // Done, failed, or an answer while it stays queued (a join request awaiting approval).
        match r.as_ref().map(|r| (r.state.as_str(), r.outcome.is_some())) {
            Some(("done" | "failed", _)) | Some(("pending", true)) => {
                app.status_cache.invalidate().await;
                let Some(r) = r else { continue };
                let mut outcome = r.outcome.unwrap_or_default();
                // The daemon gave it `[media]`'s kinds; `--media` is set here.
                if let (Some(kinds), Some(ch), "done") = (&media, r.channel_id, r.state.as_str()) {
                    crate::media::set_kinds(&app.store, &app.account.media, ch, kinds).await?;
                    outcome.push_str(&format!(
                        "\nFiles archived: {}.",
                        if kinds.is_empty() {
                            "none".to_string()
                        } else {
                            kinds.join(", ")
                        }
                    ));
                }
                return reply(bot, app, msg, outcome).await;
            }
            None => return reply(bot, app, msg, "The request disappeared; try again.").await,
            _ if started.elapsed() > ADD_WAIT => {
                return reply(
                    bot,
                    app,
                    msg,
                    "Still looking it up (Telegram limits how fast names are resolved); it will be added when it resolves. /channels shows it then.",
                )
                .await;
            }
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

async fn set_state(
    app: &App,
    spec: &commands::Command,
    args: &str,
    user_id: i64,
) -> Result<String, BotError> {
    let mut words = args.split_whitespace();
    let Some(reference) = words.next() else {
        return Ok(usage_error(spec, "Which channel?"));
    };
    let purge = match (spec.name, words.next()) {
        (_, None) => false,
        ("remove", Some("--purge")) => true,
        (_, Some(other)) => {
            return Ok(usage_error(
                spec,
                &format!("I do not understand {other:?}."),
            ));
        }
    };
    if words.next().is_some() {
        return Ok(usage_error(spec, "Too many arguments."));
    }
    let Some(ch) = app.store.find_channel(reference).await? else {
        return Ok(format!(
            "{reference} is not among the followed channels; /channels lists them."
        ));
    };
    let name = ch.display_name();
    let answer = match spec.name {
        "remove" => {
            let n = app.store.remove_channel(ch.id, purge).await?;
            if purge {
                format!("Removed {name} and deleted its {n} stored posts.")
            } else {
                format!("Removed {name}; its posts stay (/remove {name} --purge deletes them).")
            }
        }
        "pause" => {
            app.store.set_channel_state(ch.id, "paused", None).await?;
            format!("Paused {name}.")
        }
        _ => {
            app.store.set_channel_state(ch.id, "active", None).await?;
            format!("Resumed {name}.")
        }
    };
    app.status_cache.invalidate().await;
    app.store
        .audit(
            &format!("bot:{user_id}"),
            &format!("channel_{}", spec.name),
            serde_json::json!({"channel_id": ch.id, "purge": purge}),
        )
        .await?;
    Ok(answer)
}

async fn allow_deny(
    app: &App,
    spec: &commands::Command,
    args: &str,
    by: i64,
) -> Result<String, BotError> {
    let mut words = args.split_whitespace();
    let (Some(id), None) = (words.next(), words.next()) else {
        return Ok(usage_error(spec, "Give one numeric Telegram user id."));
    };
    let Ok(id) = id.parse::<i64>() else {
        return Ok(usage_error(
            spec,
            &format!("{id:?} is not a numeric user id."),
        ));
    };
    if id <= 0 {
        return Ok(usage_error(spec, "User ids are positive numbers."));
    }
    if app.admins.contains(&id) {
        return Ok(format!(
            "{id} is an administrator (bot.admins in the configuration)."
        ));
    }
    let role = if spec.name == "allow" {
        "user"
    } else {
        "denied"
    };
    app.store.set_bot_user_role(id, role, by).await?;
    app.store
        .audit(
            &format!("bot:{by}"),
            &format!("user_{}", spec.name),
            serde_json::json!({"user_id": id}),
        )
        .await?;
    app.refused
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
    Ok(if role == "user" {
        format!("{id} may use the bot now.")
    } else {
        format!("{id} may no longer use the bot; their alerts are off.")
    })
}

/// Answers a button press (`answerCallbackQuery`), with `text` shown to the presser when not
/// empty: every press is answered, or the client shows it loading until it gives up.
pub async fn answer_press(
    bot: &Bot,
    app: &App,
    q: &CallbackQuery,
    text: &str,
) -> Result<(), BotError> {
    let mut r = bot.answer_callback_query(q.id.clone());
    if !text.is_empty() {
        r = r.text(text);
    }
    app.call(None, r).await.map(|_| ())
}

/// Button presses (`press::Press`: a search's page or photo, a subscription removed, a page of
/// the list); data this bot never wrote is answered "not mine".
pub async fn on_callback(bot: Bot, q: CallbackQuery, app: Arc<App>) -> Result<(), BotError> {
    let user = i64::try_from(q.from.id.0).unwrap_or(i64::MAX);
    if app.role(user).await? < Role::User {
        return bot
            .answer_callback_query(q.id.clone())
            .await
            .map(|_| ())
            .map_err(|e| BotError::Request(app.redact(&e.to_string())));
    }
    match q.data.as_deref().and_then(Press::parse) {
        Some(Press::Subscriptions { remove, page }) => {
            Box::pin(super::subs::on_press(&bot, &app, &q, user, remove, page)).await
        }
        Some(press) => Box::pin(super::search::on_callback(bot, q, app, press)).await,
        None => answer_press(&bot, &app, &q, "This button is not mine.").await,
    }
}
