//! The bot end to end: the real binary (teloxide inside) against the fake Bot API, with the fake
//! MTProto behind the parser.

mod common;

use std::time::{Duration, Instant};

use common::bot::*;
use common::*;
use fake_telegram::botapi::UserMessage;
use fake_telegram::{FakeTelegram, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_answer_by_role_strangers_get_one_refusal_and_bad_input_gets_its_usage() {
    let fake = FakeTelegram::start(fake_opts()).await.unwrap();
    let env = bot_env(&fake, "info").await;
    let mut child = start(&fake, &env).await;
    let first = fake.info.channels[0].clone();
    let second = fake.info.channels[1].clone();
    let first_id = fake.world.channel_id(&first).unwrap();

    // Role-aware command menus: one for users, one per admin chat.
    wait_until("both command menus", Duration::from_secs(10), || {
        fake.bot
            .calls(true)
            .iter()
            .filter(|c| c.method == "setmycommands")
            .count()
            >= 2
    })
    .await;
    let menus: Vec<_> = fake
        .bot
        .calls(true)
        .into_iter()
        .filter(|c| c.method == "setmycommands")
        .collect();
    assert_eq!(menus.len(), 2, "{menus:?}");
    let admin_menu = menus
        .iter()
        .find(|c| c.params.to_string().contains("\"chat_id\":1"))
        .expect("a menu for the admin's chat");
    assert!(admin_menu.params.to_string().contains("allow"));
    let user_menu = menus
        .iter()
        .find(|c| c.params.get("scope").is_none())
        .unwrap();
    assert!(!user_menu.params.to_string().contains("allow"));

    // The admin.
    has(&ask(&fake, ADMIN, "/start").await, "You administer it");
    has(&ask(&fake, ADMIN, "/help").await, "/allow <user id>");
    has(&ask(&fake, ADMIN, "/channels").await, &first);
    has(&ask(&fake, ADMIN, "/status").await, "parser: running");

    // A stranger: one polite refusal, then nothing; nothing written about them.
    let refusal = ask(&fake, USER, "/help").await;
    has(&refusal, "this bot is private");
    has(&refusal, &format!("id {USER}"));
    silence(&fake, USER, None, "/start").await;
    assert_eq!(
        sql(
            &env,
            &format!("SELECT count(*) FROM bot_users WHERE user_id = {USER}")
        ),
        "0"
    );

    // Bad input to /allow, then allowing.
    has(
        &ask(&fake, ADMIN, "/allow").await,
        "Usage: /allow <user id>",
    );
    has(
        &ask(&fake, ADMIN, "/allow abc").await,
        "not a numeric user id",
    );
    has(&ask(&fake, ADMIN, "/allow 1").await, "is an administrator");
    has(&ask(&fake, ADMIN, "/allow 2").await, "may use the bot now");

    // An allowed user: their own help, admin commands refused with nothing changed.
    let help = ask(&fake, USER, "/help").await;
    has(&help, "/status");
    assert!(!help.contains("/allow"), "{help}");
    for cmd in [
        "/pause",
        "/resume",
        "/remove",
        "/add",
        "/allow 3",
        "/deny 3",
        "/channels",
        "/login",
        "/logout",
    ] {
        has(
            &ask(&fake, USER, &format!("{cmd} @{first}")).await,
            "is for the bot's administrators",
        );
    }
    assert_eq!(
        sql(
            &env,
            &format!("SELECT state FROM channels WHERE id = {first_id}")
        ),
        "active"
    );
    assert_eq!(
        sql(&env, "SELECT count(*) FROM bot_users WHERE user_id = 3"),
        "0"
    );
    has(&ask(&fake, USER, "/nosuch").await, "I do not know /nosuch");
    has(&ask(&fake, USER, "hello").await, "Send me a command");
    let before = sent_to(&fake, USER).len();
    fake.bot.user_message(&UserMessage {
        user_id: USER,
        kind: Some("sticker".into()),
        ..Default::default()
    });
    wait_until("an answer to a sticker", Duration::from_secs(10), || {
        sent_to(&fake, USER).len() > before
    })
    .await;
    has(&sent_to(&fake, USER)[before], "text commands only");

    // Channel commands, bad and good.
    has(
        &ask(&fake, ADMIN, "/pause").await,
        "Usage: /pause <@channel>",
    );
    has(
        &ask(&fake, ADMIN, "/pause @nochannel").await,
        "not among the followed channels",
    );
    has(
        &ask(&fake, ADMIN, &format!("/pause @{first} now")).await,
        "I do not understand",
    );
    has(
        &ask(&fake, ADMIN, &format!("/pause @{first}")).await,
        "Paused",
    );
    assert_eq!(
        sql(
            &env,
            &format!("SELECT state FROM channels WHERE id = {first_id}")
        ),
        "paused"
    );
    has(
        &ask(&fake, ADMIN, &format!("/resume {first}")).await,
        "Resumed",
    );
    has(&ask(&fake, ADMIN, "/add").await, "Usage: /add");
    has(
        &ask(&fake, ADMIN, "/add @x --last 0").await,
        "--last takes a positive number",
    );
    has(
        &ask(&fake, ADMIN, "/add @x --since yesterday").await,
        "YYYY-MM-DD",
    );
    has(
        &ask(&fake, ADMIN, "/add @no_such_channel").await,
        "there is no channel @no_such_channel",
    );
    has(
        &ask(&fake, ADMIN, &format!("/add https://t.me/{second}")).await,
        "added",
    );
    let long = format!("/pause {}", "x".repeat(300));
    has(&ask(&fake, ADMIN, &long).await, "at most 256 characters");

    // Groups: only commands addressed to the bot.
    silence(&fake, ADMIN, Some(GROUP), "/help").await;
    silence(&fake, ADMIN, Some(GROUP), "hello everyone").await;
    silence(&fake, ADMIN, Some(GROUP), "/help@some_other_bot").await;
    has(
        &ask_in(
            &fake,
            ADMIN,
            Some(GROUP),
            &format!("/help@{}", fake.info.bot_username),
        )
        .await,
        "Commands:",
    );

    // Denied: silence from then on.
    has(
        &ask(&fake, ADMIN, "/deny 2").await,
        "may no longer use the bot",
    );
    silence(&fake, USER, None, "/help").await;
    assert!(
        sql(&env, "SELECT count(*) FROM audit_log WHERE action IN ('user_allow', 'user_deny', 'channel_pause', 'channel_resume')")
            .parse::<i32>()
            .unwrap()
            >= 4
    );

    // Every update of this dialog went through the per-chat queues; none is left or was lost.
    let handled = metric(&env, "tg_bot_updates_handled_total");
    assert!(handled >= 25.0, "only {handled} updates handled");
    assert_eq!(metric(&env, "tg_bot_updates_pending"), 0.0);
    assert_eq!(metric(&env, "tg_bot_updates_dropped_total"), 0.0);
    assert_eq!(metric(&env, "tg_bot_handler_panics_total"), 0.0);

    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", stderr_of(&mut child));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_token_never_reaches_the_logs_even_at_trace_level() {
    let fake = FakeTelegram::start(fake_opts()).await.unwrap();
    let env = bot_env(&fake, "trace").await;
    let mut child = start(&fake, &env).await;
    has(&ask(&fake, ADMIN, "/status").await, "bot: running");
    has(&ask(&fake, ADMIN, "/help").await, "Commands:");
    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
    let log = stderr_of(&mut child);
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.len() > 1000,
        "trace logging happened: {} bytes",
        log.len()
    );
    let secret = fake.info.bot_token.split_once(':').unwrap().1;
    assert!(!log.contains(secret), "the token's secret is in the log");
    for f in files_under(&env.state_dir()) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !contains(&bytes, secret.as_bytes()),
            "{} holds the token",
            f.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_answers_newest_first_with_the_match_in_bold_and_pages_with_buttons() {
    let fake = FakeTelegram::start(fake_opts()).await.unwrap();
    let env = bot_env(&fake, "info").await;
    let name = fake.info.channels[0].clone();
    let ch = fake.world.channel_id(&name).unwrap();
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            fake.world
                .post(
                    ch,
                    &format!("Zeppelinfest report {i}: the café <opens> & closes"),
                )
                .unwrap(),
        );
    }
    fake.world
        .post(ch, "Мир новостей: учёные открыли кафе")
        .unwrap();
    let mut child = start(&fake, &env).await;
    wait_until("the backfill", Duration::from_secs(20), || {
        sql(
            &env,
            &format!("SELECT backfill_state FROM channels WHERE id = {ch}"),
        ) == "done"
    })
    .await;
    const SEARCHER: i64 = 5;
    has(&ask(&fake, ADMIN, "/allow 5").await, "may use the bot now");

    // Message ids in the searcher's fresh chat: 1 theirs, 2 the bot's answer.
    let first = ask(&fake, SEARCHER, "/search zeppelinfest").await;
    has(&first, "Results 1–5 for <b>zeppelinfest</b>");
    has(&first, "<b>Zeppelinfest</b> report 6");
    has(&first, "&lt;opens&gt; &amp; closes");
    has(&first, &format!("https://t.me/{name}/{}", ids[6]));
    assert!(
        first.find("report 6").unwrap() < first.find("report 2").unwrap(),
        "newest first: {first}"
    );
    assert!(!first.contains("report 1"), "five a page: {first}");
    let sent = last_call_to(&fake, SEARCHER, "sendmessage");
    assert_eq!(sent["parse_mode"], "HTML");
    let kb = buttons(&sent);
    assert_eq!(kb.len(), 1, "{kb:?}");
    assert_eq!(kb[0].0, "Older ▶");

    // Older: the message is edited in place with the last two and a way back.
    fake.bot.user_message(&UserMessage {
        user_id: SEARCHER,
        kind: Some("callback".into()),
        data: Some(kb[0].1.clone()),
        message_id: Some(2),
        ..Default::default()
    });
    wait_until("the page to be edited", Duration::from_secs(10), || {
        last_call_to(&fake, SEARCHER, "editmessagetext")["text"]
            .as_str()
            .is_some_and(|t| t.contains("Results 6–7"))
    })
    .await;
    let edited = last_call_to(&fake, SEARCHER, "editmessagetext");
    let text = edited["text"].as_str().unwrap();
    has(text, "report 1");
    has(text, "report 0");
    let search_id = kb[0].1.split(':').nth(1).unwrap();
    assert_eq!(
        buttons(&edited),
        vec![("◀ Newer".to_string(), format!("s:{search_id}:0"))]
    );
    assert!(
        fake.bot
            .calls(false)
            .iter()
            .any(|c| c.method == "answercallbackquery"),
        "the button press is answered"
    );

    // Diacritics and Cyrillic, prefixes, phrases; nothing; bad syntax; no query.
    has(&ask(&fake, SEARCHER, "/search cafe").await, "<b>café</b>");
    has(
        &ask(&fake, SEARCHER, "/search учён*").await,
        "<b>учёные</b>",
    );
    has(
        &ask(&fake, SEARCHER, "/search \"report 3\"").await,
        "<b>report 3</b>",
    );
    has(
        &ask(&fake, SEARCHER, "/search qqqzzzxxx").await,
        "Nothing found for qqqzzzxxx",
    );
    // Not FTS5 syntax: a person typing into a chat gets the words searched, and is told so.
    let unbalanced = ask(&fake, SEARCHER, "/search \"zeppelinfest").await;
    has(
        &unbalanced,
        "not search syntax, so I looked for the words themselves",
    );
    has(&unbalanced, "Results 1–5");
    has(&ask(&fake, SEARCHER, "/search").await, "Usage: /search");
    // A stale button after the bot forgot the query.
    fake.bot.user_message(&UserMessage {
        user_id: SEARCHER,
        kind: Some("callback".into()),
        data: Some("s:99999:1".into()),
        message_id: Some(2),
        ..Default::default()
    });
    wait_until("the stale button's answer", Duration::from_secs(10), || {
        fake.bot.calls(false).iter().any(|c| {
            c.method == "answercallbackquery"
                && c.params.to_string().contains("This search expired")
        })
    })
    .await;

    // /export: a channel, or a search, as JSONL with every field.
    let documents = || -> Vec<serde_json::Value> {
        fake.bot
            .calls(false)
            .into_iter()
            .filter(|c| c.method == "senddocument" && c.status == 200)
            .map(|c| c.params)
            .collect()
    };
    fake.bot.user_message(&UserMessage {
        user_id: ADMIN,
        text: Some(format!("/export @{name}")),
        ..Default::default()
    });
    let t = Instant::now();
    while documents().is_empty() && t.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        documents().len(),
        1,
        "{:?}",
        fake.bot
            .calls(false)
            .iter()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
    );
    let doc = &documents()[0];
    let lines: Vec<serde_json::Value> = doc["document"]["content"]
        .as_str()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let stored: usize = sql(
        &env,
        &format!("SELECT count(*) FROM messages WHERE channel_id = {ch}"),
    )
    .parse()
    .unwrap();
    assert_eq!(lines.len(), stored);
    assert!(
        doc["caption"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{stored} posts"))
    );
    let cafe = lines
        .iter()
        .find(|l| l["id"] == serde_json::json!(ids[6]))
        .unwrap();
    assert_eq!(
        cafe["text"],
        "Zeppelinfest report 6: the café <opens> & closes"
    );
    assert_eq!(cafe["channel_id"], serde_json::json!(ch));
    assert!(cafe["date"].as_str().unwrap().ends_with('Z'));
    has(cafe["link"].as_str().unwrap(), &format!("/{}", ids[6]));
    fake.bot.user_message(&UserMessage {
        user_id: ADMIN,
        text: Some("/export zeppelinfest".into()),
        ..Default::default()
    });
    wait_until("the search's export", Duration::from_secs(20), || {
        documents().len() == 2
    })
    .await;
    assert_eq!(
        documents()[1]["document"]["content"]
            .as_str()
            .unwrap()
            .lines()
            .count(),
        7
    );
    has(&ask(&fake, ADMIN, "/export").await, "Usage: /export");
    has(
        &ask(&fake, ADMIN, "/export @nosuchchannel").await,
        "not among the archived channels",
    );
    has(
        &ask(&fake, ADMIN, "/export nothingmatchesthis").await,
        "Nothing to export",
    );

    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", stderr_of(&mut child));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_checked_added_listed_and_removed_with_buttons() {
    let fake = FakeTelegram::start(fake_opts()).await.unwrap();
    let env = bot_env(&fake, "info").await;
    let name = fake.info.channels[0].clone();
    let mut child = start(&fake, &env).await;
    const SUBBER: i64 = 6;
    const OTHER: i64 = 7;
    has(&ask(&fake, ADMIN, "/allow 6").await, "may use the bot now");
    has(&ask(&fake, ADMIN, "/allow 7").await, "may use the bot now");

    has(&ask(&fake, SUBBER, "/subscribe").await, "Usage: /subscribe");
    let bad = ask(&fake, SUBBER, "/subscribe /a(b/").await;
    has(&bad, "does not compile");
    has(&bad, "^");
    has(
        &ask(&fake, SUBBER, "/subscribe bitcoin in @nochannel").await,
        "@nochannel is not among the followed channels",
    );
    let count = || sql(&env, "SELECT count(*) FROM subscriptions");
    assert_eq!(count(), "0", "nothing written for refused input");
    has(
        &ask(&fake, SUBBER, "/subscribe Bitcoin  ETF bitcoin").await,
        "Subscribed: alerts for posts with all of: bitcoin etf in every channel",
    );
    has(
        &ask(&fake, SUBBER, "/subscribe bitcoin etf").await,
        "You already get alerts",
    );
    has(
        &ask(
            &fake,
            SUBBER,
            &format!("/subscribe /rate (cut|hike)/ in @{name}"),
        )
        .await,
        &format!("posts matching /rate (cut|hike)/ in @{name}"),
    );
    assert_eq!(count(), "2");

    // New posts are matched as they are stored: one outbox alert per match, edits and
    // non-matching posts none.
    let ch = fake.world.channel_id(&name).unwrap();
    wait_until("the backfill", Duration::from_secs(20), || {
        sql(
            &env,
            &format!("SELECT backfill_state FROM channels WHERE id = {ch}"),
        ) == "done"
    })
    .await;
    let etf = fake
        .world
        .post(ch, "SEC: the Bitcoin ETF is approved")
        .unwrap();
    let rate = fake.world.post(ch, "Fed signals a RATE CUT").unwrap();
    let plain = fake.world.post(ch, "Weather: sunny").unwrap();
    wait_until("the live posts", Duration::from_secs(20), || {
        sql(
            &env,
            &format!("SELECT count(*) FROM messages WHERE channel_id = {ch} AND id IN ({etf}, {rate}, {plain})"),
        ) == "3"
    })
    .await;
    fake.world
        .edit(ch, etf, "SEC: the Bitcoin ETF is approved (updated)")
        .unwrap();
    wait_until("the edit", Duration::from_secs(20), || {
        sql(
            &env,
            &format!("SELECT version FROM messages WHERE channel_id = {ch} AND id = {etf}"),
        ) == "2"
    })
    .await;
    assert_eq!(
        sql(
            &env,
            "SELECT group_concat(chat_id || ':' || json_extract(payload, '$.message_id'), ' ') FROM (SELECT * FROM outbox ORDER BY id)"
        ),
        format!("{SUBBER}:{etf} {SUBBER}:{rate}"),
        "one alert per match, nothing for the edit or the plain post"
    );
    // The outbox worker delivers them, in order, each once.
    wait_until("the alerts to be sent", Duration::from_secs(20), || {
        sql(&env, "SELECT group_concat(state) FROM outbox") == "sent,sent"
    })
    .await;
    let alerts: Vec<String> = sent_to(&fake, SUBBER)
        .into_iter()
        .filter(|t| t.starts_with("🔔"))
        .collect();
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    has(&alerts[0], "<b>bitcoin etf</b> in ");
    has(&alerts[0], "SEC: the Bitcoin ETF is approved");
    has(
        &alerts[0],
        &format!("https://t.me/{}/{etf}", name.trim_start_matches('@')),
    );
    has(&alerts[1], "<b>rate (cut|hike)</b>");
    has(&alerts[1], "Fed signals a RATE CUT");

    let listing = ask(&fake, SUBBER, "/subscriptions").await;
    has(&listing, "1. bitcoin etf (every channel)");
    has(&listing, &format!("2. /rate (cut|hike)/ (@{name})"));
    // Each exchange in this chat is one message each way: the listing is the last bot message.
    // (alerts are bot messages with no user message before them).
    let listing_id = 2 * sent_to(&fake, SUBBER).len() as i64 - alerts.len() as i64;
    let kb = buttons(&last_call_to(&fake, SUBBER, "sendmessage"));
    assert_eq!(kb.len(), 2, "{kb:?}");
    assert!(kb[0].0.starts_with("✖ 1. bitcoin etf"), "{kb:?}");

    // Someone else pressing it removes nothing.
    fake.bot.user_message(&UserMessage {
        user_id: OTHER,
        chat_id: Some(SUBBER),
        kind: Some("callback".into()),
        data: Some(kb[0].1.clone()),
        message_id: Some(listing_id),
        ..Default::default()
    });
    wait_until(
        "the other user's press to be answered",
        Duration::from_secs(10),
        || {
            fake.bot.calls(false).iter().any(|c| {
                c.method == "answercallbackquery" && c.params.to_string().contains("Already gone")
            })
        },
    )
    .await;
    assert_eq!(count(), "2");

    fake.bot.user_message(&UserMessage {
        user_id: SUBBER,
        kind: Some("callback".into()),
        data: Some(kb[0].1.clone()),
        message_id: Some(listing_id),
        ..Default::default()
    });
    wait_until("the list to be redrawn", Duration::from_secs(10), || {
        last_call_to(&fake, SUBBER, "editmessagetext")["text"]
            .as_str()
            .is_some_and(|t| t.contains("1. /rate (cut|hike)/") && !t.contains("bitcoin"))
    })
    .await;
    assert_eq!(count(), "1");
    has(
        &ask(&fake, SUBBER, "/unsubscribe").await,
        "press one to remove it",
    );

    // A stranger cannot subscribe; nothing is written.
    has(
        &ask(&fake, 8, "/subscribe anything").await,
        "this bot is private",
    );
    assert_eq!(count(), "1");

    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", stderr_of(&mut child));
}

/// `/search https://t.me/x`, `/search price: 100`, `/search *` and `/export *` reached SQLite as
/// FTS5 syntax (a column filter, a bare `*`): the handler failed and the user got no answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_holding_fts5_syntax_characters_are_answered_instead_of_left_unanswered() {
    let fake = FakeTelegram::start(fake_opts()).await.unwrap();
    let env = bot_env(&fake, "info").await;
    let name = fake.info.channels[0].clone();
    let ch = fake.world.channel_id(&name).unwrap();
    let link = fake
        .world
        .post(ch, "Read https://t.me/x today: price: 100 USD")
        .unwrap();
    let mut child = start(&fake, &env).await;
    backfilled(&env, ch).await;
    let post = format!("https://t.me/{name}/{link}");
    for q in [
        "https://t.me/x",
        "price: 100",
        "t.me/x",
        "(price)",
        "price:100 usd^",
    ] {
        let answer = ask(&fake, ADMIN, &format!("/search {q}")).await;
        has(&answer, &post);
    }
    has(
        &ask(&fake, ADMIN, "/search price AND").await,
        "not search syntax, so I looked for the words themselves",
    );
    for q in ["*", "\"\"", "—", ":"] {
        let answer = ask(&fake, ADMIN, &format!("/search {q}")).await;
        has(&answer, "no words in it to search for");
    }
    let answer = ask(&fake, ADMIN, "/export *").await;
    has(&answer, "no words in it to search for");
    // A long query of astral characters is echoed cut.
    let long = format!("price {}", "𝒜".repeat(240));
    let answer = ask(&fake, ADMIN, &format!("/search {long}")).await;
    has(&answer, "Nothing found for price 𝒜𝒜");
    assert!(answer.encode_utf16().count() < 200, "{answer}");
    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", stderr_of(&mut child));
}

/// Alert messages the fake accepted (status 200), by (chat, post link), with how many times.
fn metric(env: &Env, name: &str) -> f64 {
    let (_, body) = get(env.health_addr(), "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in /metrics"))
}

/// Many users subscribe to `word` (the bot is open); returns their ids.
async fn subscribers(fake: &FakeTelegram, env: &Env, n: i64, word: &str) -> Vec<i64> {
    let users: Vec<i64> = (0..n).map(|i| 10_000 + i).collect();
    for u in &users {
        fake.bot.user_message(&UserMessage {
            user_id: *u,
            text: Some(format!("/subscribe {word}")),
            ..Default::default()
        });
    }
    wait_until("every subscription", Duration::from_secs(60), || {
        sql(env, "SELECT count(*) FROM subscriptions") == n.to_string()
    })
    .await;
    users
}

fn open_bot(env: &Env, digest_after: u32) {
    let cfg = std::fs::read_to_string(env.path("config.toml")).unwrap();
    std::fs::write(
        env.path("config.toml"),
        cfg.replace(
            "open = false",
            &format!("open = true\ndigest_after = {digest_after}"),
        ),
    )
    .unwrap();
}

async fn backfilled(env: &Env, ch: i64) {
    wait_until("the backfill", Duration::from_secs(30), || {
        sql(
            env,
            &format!("SELECT backfill_state FROM channels WHERE id = {ch}"),
        ) == "done"
    })
    .await;
}

/// A daemon with an open bot (`digest_after` as given) and one channel, backfilled, against a
/// fake that enforces Telegram's bot limits (30/s overall, 1/s per chat: 429 past them);
/// returns the fake, the environment, the daemon, the channel's name and id.
async fn alerting_daemon(
    digest_after: u32,
) -> (FakeTelegram, Env, std::process::Child, String, i64) {
    let fake = FakeTelegram::start(Options {
        bot_limits: true,
        ..fake_opts()
    })
    .await
    .unwrap();
    let env = bot_env(&fake, "info").await;
    open_bot(&env, digest_after);
    let child = start(&fake, &env).await;
    let name = fake.info.channels[0].clone();
    let ch = fake.world.channel_id(&name).unwrap();
    backfilled(&env, ch).await;
    (fake, env, child, name, ch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_alerts_reach_fifty_chats_exactly_once_within_telegrams_limits_and_429s_and_5xx_lose_none()
 {
    let (fake, env, mut child, _, ch) = alerting_daemon(0).await;
    let users = subscribers(&fake, &env, 50, "alpha").await;

    let t = Instant::now();
    for i in 0..20 {
        fake.world
            .post(ch, &format!("Alpha release {i} is out"))
            .unwrap();
    }
    wait_until("1,000 alerts delivered", Duration::from_secs(120), || {
        sql(&env, "SELECT count(*) FROM outbox WHERE state = 'sent'") == "1000"
    })
    .await;
    let took = t.elapsed();
    let got = delivered_alerts(&fake);
    assert_eq!(got.len(), 1000, "distinct (chat, post) alerts");
    assert!(got.values().all(|n| *n == 1), "an alert was repeated");
    for u in &users {
        assert_eq!(got.keys().filter(|(c, _)| c == u).count(), 20, "chat {u}");
    }
    assert_eq!(
        fake.bot.stats()["too_many_requests"],
        0,
        "steady delivery must stay within the limits"
    );
    println!(
        "1,000 alerts to 50 chats in {:.1} s ({:.1}/s; Telegram's limit 30/s); 429 answers: 0",
        took.as_secs_f64(),
        1000.0 / took.as_secs_f64()
    );

    // Faults: 429s the limits did not cause, 5xx, a hang past nothing (the call timeout is 30 s).
    use fake_telegram::faults::{Fault, FaultKind};
    fake.faults.add(Fault {
        kind: FaultKind::TooMany { retry_after: 2 },
        method: Some("sendMessage".into()),
        count: 10,
    });
    fake.faults.add(Fault {
        kind: FaultKind::Status { code: 502 },
        method: Some("sendMessage".into()),
        count: 4,
    });
    fake.faults.add(Fault {
        kind: FaultKind::MalformedJson,
        method: Some("sendMessage".into()),
        count: 2,
    });
    for i in 20..24 {
        fake.world
            .post(ch, &format!("Alpha patch {i} is out"))
            .unwrap();
    }
    wait_until(
        "200 more alerts delivered",
        Duration::from_secs(120),
        || sql(&env, "SELECT count(*) FROM outbox WHERE state = 'sent'") == "1200",
    )
    .await;
    let got = delivered_alerts(&fake);
    assert_eq!(got.len(), 1200);
    assert!(got.values().all(|n| *n == 1), "an alert was repeated");
    assert_eq!(fake.faults.list(), vec![], "every fault fired");
    assert!(metric(&env, "tg_bot_retry_after_total") >= 10.0);
    assert!(metric(&env, "tg_bot_request_failures_total") >= 6.0);
    assert_eq!(
        sql(&env, "SELECT count(*) FROM outbox WHERE state != 'sent'"),
        "0"
    );

    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", stderr_of(&mut child));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_delivery_loses_no_alert_and_repeats_none_that_was_not_in_flight() {
    let (fake, env, mut child, _, ch) = alerting_daemon(0).await;
    subscribers(&fake, &env, 40, "omega").await;
    for i in 0..15 {
        fake.world.post(ch, &format!("Omega {i}")).unwrap();
    }
    wait_until("some alerts delivered", Duration::from_secs(60), || {
        delivered_alerts(&fake).len() >= 200
    })
    .await;
    child.kill().unwrap();
    let _ = child.wait();
    let before = delivered_alerts(&fake).len();
    assert!(before < 600, "the kill came after delivery ended");

    let again = env.path("again");
    std::fs::create_dir(&again).unwrap();
    let notify = NotifySocket::new(&again);
    let mut child = spawn_daemon(&env, Some(&notify));
    notify
        .wait_for("READY=1", Duration::from_secs(20))
        .expect("READY=1");
    wait_until("every alert delivered", Duration::from_secs(120), || {
        sql(&env, "SELECT count(*) FROM outbox WHERE state = 'sent'") == "600"
    })
    .await;
    let got = delivered_alerts(&fake);
    assert_eq!(got.len(), 600, "an alert was lost");
    let repeats: usize = got.values().map(|n| n - 1).sum();
    let resent = metric(&env, "tg_bot_outbox_resent_total") as usize;
    println!(
        "kill -9 after {before} of 600 alerts: {resent} in flight at the kill, sent again; repeats seen by the chats: {repeats}"
    );
    assert!(
        repeats <= resent,
        "{repeats} repeats but only {resent} messages were in flight"
    );
    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", stderr_of(&mut child));
}

/// With digests off (`digest_after = 0`), one chat with thousands of alerts waiting (sent one a
/// second, as Telegram allows per chat) no longer holds back every other chat. The worker read
/// the 2,000 oldest due rows and skipped those of chats it was already sending to, so another
/// chat's newer alert was not read until the flooded chat's queue drained below 2,000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_with_thousands_of_alerts_waiting_no_longer_holds_back_other_chats() {
    let (fake, env, mut child, _, ch) = alerting_daemon(0).await;
    let flooded = subscribers(&fake, &env, 1, "flood").await[0];
    let other = 20_000;
    fake.bot.user_message(&UserMessage {
        user_id: other,
        text: Some("/subscribe beta".into()),
        ..Default::default()
    });
    wait_until("both subscriptions", Duration::from_secs(30), || {
        sql(&env, "SELECT count(*) FROM subscriptions") == "2"
    })
    .await;
    for i in 0..2_100 {
        fake.world.post(ch, &format!("flood {i}")).unwrap();
    }
    wait_until("2,100 alerts queued", Duration::from_secs(60), || {
        sql(
            &env,
            &format!("SELECT count(*) FROM outbox WHERE chat_id = {flooded}"),
        ) == "2100"
    })
    .await;
    let t = Instant::now();
    fake.world.post(ch, "beta is out").unwrap();
    wait_until(
        "the other chat's alert, while 2,000 wait for the flooded one",
        Duration::from_secs(20),
        || {
            sent_to(&fake, other)
                .iter()
                .any(|m| m.starts_with("🔔") && m.contains("beta is out"))
        },
    )
    .await;
    println!(
        "the other chat's alert came {:.1} s after its post; the flooded chat still had {} waiting",
        t.elapsed().as_secs_f64(),
        sql(
            &env,
            &format!("SELECT count(*) FROM outbox WHERE chat_id = {flooded} AND state = 'pending'"),
        )
    );
    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", stderr_of(&mut child));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_queue_folds_into_a_digest_and_a_user_who_blocked_the_bot_stops_getting_alerts_until_they_return()
 {
    let (fake, env, mut child, name, ch) = alerting_daemon(5).await;
    let users = subscribers(&fake, &env, 2, "gamma").await;
    let (reader, blocker) = (users[0], users[1]);
    fake.bot.set_user(fake_telegram::botapi::SimUser {
        id: blocker,
        first_name: "Blocker".into(),
        username: None,
        blocked: true,
    });
    for i in 0..12 {
        fake.world.post(ch, &format!("gamma {i}")).unwrap();
    }
    wait_until("the reader's queue to drain", Duration::from_secs(60), || {
        sql(
            &env,
            &format!("SELECT count(*) FROM outbox WHERE chat_id = {reader} AND state IN ('pending', 'sending')"),
        ) == "0"
            && sql(&env, &format!("SELECT count(*) FROM outbox WHERE chat_id = {reader} AND kind = 'alert'")) == "12"
    })
    .await;
    // Every alert is accounted for: sent on its own, or folded into a digest that was sent.
    let singles = sql(
        &env,
        &format!(
            "SELECT count(*) FROM outbox WHERE chat_id = {reader} AND kind = 'alert' AND state = 'sent'"
        ),
    );
    let folded = sql(
        &env,
        &format!(
            "SELECT count(*) FROM outbox a JOIN outbox d ON d.id = a.folded_into \
             WHERE a.chat_id = {reader} AND a.state = 'folded' AND d.state = 'sent' AND d.kind = 'digest'"
        ),
    );
    let (singles, folded): (usize, usize) = (singles.parse().unwrap(), folded.parse().unwrap());
    assert_eq!(
        singles + folded,
        12,
        "{singles} sent alone, {folded} folded"
    );
    assert!(folded > 0, "a queue of 12 over a limit of 5 folds");
    let digests: Vec<String> = sent_to(&fake, reader)
        .into_iter()
        .filter(|t| t.starts_with("📬"))
        .collect();
    let in_digests: usize = digests
        .iter()
        .map(|d| {
            d.trim_start_matches("📬 ")
                .split(' ')
                .next()
                .unwrap()
                .parse::<usize>()
                .unwrap()
        })
        .sum();
    assert_eq!(in_digests, folded, "{digests:?}");
    has(
        &digests[0],
        &format!("new matches in @{}", name.trim_start_matches('@')),
    );

    // The blocker's alerts failed once (403) and no more are queued for them.
    wait_until("the 403 to be handled", Duration::from_secs(30), || {
        sql(
            &env,
            &format!("SELECT blocked_bot FROM bot_users WHERE user_id = {blocker}"),
        ) == "1"
    })
    .await;
    assert_eq!(
        sql(
            &env,
            &format!(
                "SELECT count(*) FROM outbox WHERE chat_id = {blocker} AND state NOT IN ('failed', 'folded')"
            ),
        ),
        "0"
    );
    let queued = |chat: i64| {
        sql(
            &env,
            &format!("SELECT count(*) FROM outbox WHERE chat_id = {chat}"),
        )
    };
    let before = queued(blocker);
    fake.world.post(ch, "gamma again").unwrap();
    wait_until("the reader's alert", Duration::from_secs(30), || {
        sql(
            &env,
            &format!("SELECT count(*) FROM outbox WHERE chat_id = {reader} AND kind = 'alert'"),
        ) == "13"
    })
    .await;
    assert_eq!(
        queued(blocker),
        before,
        "nothing queued for a chat that blocked the bot"
    );

    // They unblock and write to the bot: alerts resume.
    fake.bot.set_user(fake_telegram::botapi::SimUser {
        id: blocker,
        first_name: "Blocker".into(),
        username: None,
        blocked: false,
    });
    has(&ask(&fake, blocker, "/subscriptions").await, "gamma");
    fake.world.post(ch, "gamma returns").unwrap();
    wait_until(
        "the returning user's alert",
        Duration::from_secs(30),
        || {
            fake.bot.calls(false).iter().any(|c| {
                c.status == 200
                    && c.params["chat_id"].as_i64() == Some(blocker)
                    && c.params["text"]
                        .as_str()
                        .is_some_and(|t| t.contains("gamma returns"))
            })
        },
    )
    .await;

    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", stderr_of(&mut child));
}

/// Starts the daemon without logging the account in; waits until the bot runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_session_no_longer_needs_a_daemon_restart_after_the_admin_logs_in_again() {
    let fake = FakeTelegram::start(Options {
        code: "24680".into(),
        ..fake_opts()
    })
    .await
    .unwrap();
    let env = bot_env(&fake, "info").await;
    // A short heartbeat: the idle parser notices the revocation within a second.
    let cfg = std::fs::read_to_string(env.path("config.toml")).unwrap();
    std::fs::write(
        env.path("config.toml"),
        format!("{cfg}[telegram.guard]\nheartbeat_secs = 0.5\n"),
    )
    .unwrap();
    let health = env.health_addr();
    let mut child = start(&fake, &env).await;
    wait_until("the backfill", Duration::from_secs(20), || {
        sql(&env, "SELECT backfill_state FROM channels") == "done"
    })
    .await;

    // The account's sessions are ended from another device.
    assert!(fake.shared.log_out_user(None) >= 1);
    let t = Instant::now();
    let last = loop {
        let (code, body) = get(health, "/readyz");
        if code == 503 && body.contains("revoked the session") {
            break body;
        }
        if t.elapsed() > Duration::from_secs(20) {
            sigterm(&child);
            let _ = wait_exit(&mut child, Duration::from_secs(10));
            panic!(
                "readiness did not fail: {code} {body}\n{}",
                stderr_of(&mut child)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    has(&last, "/login in the bot");
    assert!(audited(&env, "session_revoked"));
    // Still failed a while later: waiting for a login, not retrying a dead session.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(get(health, "/readyz").0, 503);

    // A new login through the chat; before, the parser stayed down until a restart.
    has(&ask(&fake, ADMIN, "/login").await, "phone number");
    has(
        &ask(&fake, ADMIN, &fake.info.phone).await,
        "with spaces between the digits",
    );
    has(&ask(&fake, ADMIN, "2 4 6 8 0").await, "Logged in as");
    wait_until("the parser to run again", Duration::from_secs(30), || {
        parser_running(&env)
    })
    .await;
    wait_until("readiness", Duration::from_secs(10), || {
        get(health, "/readyz").0 == 200
    })
    .await;
    let channel = fake.world.channel_id(&fake.info.channels[0]).unwrap();
    let id = fake
        .world
        .post(channel, "posted after the new login")
        .unwrap();
    wait_until("the new post", Duration::from_secs(20), || {
        sql(
            &env,
            &format!("SELECT count(*) FROM messages WHERE channel_id = {channel} AND id = {id}"),
        ) == "1"
    })
    .await;
    let (_, metrics) = get(health, "/metrics");
    assert!(
        metrics.contains("tgparser_part_restarts_total{part=\"parser\"} 0"),
        "the part resumed without a restart: {metrics}"
    );

    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", stderr_of(&mut child));
}

fn parser_running(env: &Env) -> bool {
    get(env.health_addr(), "/readyz")
        .1
        .contains("\"part:parser\":[{\"componentType\":\"component\",\"observedValue\":\"running\"")
}

/// The log lines holding `secret` as itself: not as part of a longer number (a timestamp's
/// microseconds or a duration can hold a short code's digits by chance).
fn leaks<'a>(log: &'a str, secret: &str) -> Vec<&'a str> {
    let digit = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit());
    log.lines()
        .filter(|line| {
            line.match_indices(secret).any(|(at, _)| {
                !digit(line[..at].chars().next_back())
                    && !digit(line[at + secret.len()..].chars().next())
            })
        })
        .collect()
}

#[test]
fn a_login_code_inside_a_longer_number_no_longer_counts_as_leaked() {
    let log =
        "2026-11-24T03:45:12.739160Z TRACE reading bytes\nsent the code 73916 on\nid=73916,\n";
    assert_eq!(leaks(log, "73916"), ["sent the code 73916 on", "id=73916,"]);
    assert!(leaks("2026-11-24T03:45:12.739160Z TRACE x", "73916").is_empty());
}

/// Deletions the bot asked for in `chat`.
fn deleted_in(fake: &FakeTelegram, chat: i64) -> Vec<i64> {
    fake.bot
        .calls(false)
        .iter()
        .filter(|c| c.method == "deletemessage" && c.params["chat_id"].as_i64() == Some(chat))
        .filter_map(|c| c.params["message_id"].as_i64())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_logs_the_account_in_through_the_chat_and_the_code_and_password_leave_no_trace() {
    const CODE: &str = "73916";
    const PASSWORD: &str = "Tr0ub4dor&3 wombat";
    let fake = FakeTelegram::start(Options {
        code: CODE.into(),
        password: Some(PASSWORD.into()),
        ..fake_opts()
    })
    .await
    .unwrap();
    let env = bot_env(&fake, "trace").await;
    let cfg = std::fs::read_to_string(env.path("config.toml")).unwrap();
    std::fs::write(
        env.path("config.toml"),
        cfg.replace("open = false", "open = false\nlogin_step_timeout_secs = 3"),
    )
    .unwrap();
    let mut child = start_with_bot(&env).await;
    wait_until(
        "the parser to wait for a login",
        Duration::from_secs(20),
        || {
            get(env.health_addr(), "/readyz")
                .1
                .contains("not logged in")
        },
    )
    .await;

    // Not for users; not in groups.
    ask(&fake, ADMIN, &format!("/allow {USER}")).await;
    has(
        &ask(&fake, USER, "/login").await,
        "for the bot's administrators",
    );
    has(
        &ask_in(
            &fake,
            ADMIN,
            Some(GROUP),
            &format!("/login@{}", fake_telegram::botapi::BOT_USERNAME),
        )
        .await,
        "private chat",
    );

    // A step left unanswered times out; /cancel ends a dialog.
    has(&ask(&fake, ADMIN, "/login").await, "phone number");
    let t = Instant::now();
    wait_until("the timeout notice", Duration::from_secs(15), || {
        sent_to(&fake, ADMIN).last().is_some_and(|t| {
            t.contains("The login timed out: no phone number came within 1 minutes")
        })
    })
    .await;
    assert!(t.elapsed() >= Duration::from_secs(2));
    has(&ask(&fake, ADMIN, "/login").await, "phone number");
    has(&ask(&fake, ADMIN, "/cancel").await, "Login cancelled");
    has(&ask(&fake, ADMIN, "/cancel").await, "Nothing to cancel");

    // The whole dialog, with every wrong turn.
    let phone = fake.info.phone.clone();
    has(&ask(&fake, ADMIN, "/login").await, "phone number");
    has(&ask(&fake, ADMIN, "+0 000").await, "Send it again");
    let prompt = ask(&fake, ADMIN, &phone).await;
    has(&prompt, "with spaces between the digits, like 1 2 3 4 5");
    has(
        &ask(&fake, ADMIN, "/status").await,
        "A login is in progress: send the code",
    );
    let deletions = deleted_in(&fake, ADMIN).len();
    has(
        &ask(&fake, ADMIN, CODE).await,
        "came without spaces, so Telegram has cancelled it",
    );
    has(&ask(&fake, ADMIN, "9 9 9 9 9").await, "That code is wrong");
    let spaced: String = CODE.chars().map(|c| format!("{c} ")).collect();
    has(
        &ask(&fake, ADMIN, spaced.trim()).await,
        "two-step verification",
    );
    has(&ask(&fake, ADMIN, "not it").await, "That password is wrong");
    let done = ask(&fake, ADMIN, PASSWORD).await;
    has(&done, "Logged in as");
    // Every message carrying a code or a password was deleted: 3 codes, 2 passwords.
    assert_eq!(deleted_in(&fake, ADMIN).len() - deletions, 5);
    wait_until("the parser to start", Duration::from_secs(20), || {
        parser_running(&env)
    })
    .await;
    assert!(
        sql(
            &env,
            "SELECT count(*) FROM audit_log WHERE action = 'login' AND actor = 'bot:1'"
        ) == "1"
    );
    has(&ask(&fake, ADMIN, "/login").await, "already logged in");

    // /logout: the parser logs out and waits for a new login.
    has(
        &ask(&fake, USER, "/logout").await,
        "for the bot's administrators",
    );
    has(&ask(&fake, ADMIN, "/logout").await, "Logged out");
    wait_until(
        "the parser to wait for a login",
        Duration::from_secs(20),
        || {
            get(env.health_addr(), "/readyz")
                .1
                .contains("not logged in")
        },
    )
    .await;
    has(
        &ask(&fake, ADMIN, "/logout").await,
        "No account is logged in",
    );

    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
    let log = stderr_of(&mut child);
    assert_eq!(code, Some(0), "{log}");
    assert!(log.len() > 1000, "trace logging happened");
    for secret in [CODE, spaced.trim(), PASSWORD] {
        let leaked = leaks(&log, secret);
        assert!(leaked.is_empty(), "{secret:?} is in the log: {leaked:?}");
        for f in files_under(&env.state_dir()) {
            let bytes = std::fs::read(&f).unwrap();
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "{} holds {secret:?}",
                f.display()
            );
        }
    }
}
