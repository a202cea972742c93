//! The multilingual corpus (tests/corpus/multilingual.toml) end to end: posts in every script
//! arrive live in a followed channel of the fake Telegram; subscriptions in those scripts alert
//! exactly the posts the corpus says they must, `/search` in the bot and `tgparser search` find
//! them, with the match in bold.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use fake_telegram::botapi::UserMessage;
use fake_telegram::flood::QuotaMode;
use fake_telegram::{FakeTelegram, Options};

const ADMIN: i64 = 1;
const READER: i64 = 5;

struct Post {
    text: String,
    hits: Vec<String>,
    misses: Vec<String>,
}

fn corpus() -> Vec<Post> {
    let c: toml::Value = toml::from_str(include_str!("corpus/multilingual.toml")).unwrap();
    let list = |v: &toml::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|q| q.as_str().unwrap().to_string())
            .collect()
    };
    c["post"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Post {
            text: p["text"].as_str().unwrap().into(),
            hits: list(&p["match"]),
            misses: list(&p["miss"]),
        })
        .collect()
}

fn sent_to(fake: &FakeTelegram, chat: i64) -> Vec<String> {
    fake.bot
        .calls(false)
        .into_iter()
        .filter(|c| {
            c.method == "sendmessage"
                && c.status == 200
                && c.params["chat_id"].as_i64() == Some(chat)
        })
        .map(|c| c.params["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn ask(fake: &FakeTelegram, user: i64, text: &str) -> String {
    let before = sent_to(fake, user).len();
    fake.bot.user_message(&UserMessage {
        user_id: user,
        text: Some(text.to_string()),
        ..Default::default()
    });
    let t = Instant::now();
    loop {
        let sent = sent_to(fake, user);
        if sent.len() > before {
            return sent[before].clone();
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no answer to {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Ids `tgparser search --json` finds for `q` (it must succeed).
fn search_ids(env: &Env, q: &str) -> Vec<i64> {
    let out = env.run(&["search", "--json", q]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect()
}

/// The words subscribed to: one or two per script, and the post indexes the corpus says each
/// must alert and must not.
fn subscriptions(posts: &[Post]) -> Vec<(String, BTreeSet<usize>, BTreeSet<usize>)> {
    let words = [
        "比特币",
        "台積電",
        "東京",
        "ビットコイン",
        "비트코인",
        "ทองคำ",
        "ມື້ນີ້",
        "មាស",
        "ရွှေ",
        "ученые",
        "strasse",
        "ΝΙΚΟΣ",
        "istanbul",
        "النفط",
        "بانك",
        "שלום",
        "कीमत",
        "abc123",
        "🚀",
        "以太坊",
    ];
    words
        .iter()
        .map(|w| {
            let of = |f: &dyn Fn(&Post) -> bool| -> BTreeSet<usize> {
                posts
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| f(p))
                    .map(|(i, _)| i)
                    .collect()
            };
            (
                w.to_string(),
                of(&|p| p.hits.iter().any(|h| h == w)),
                of(&|p| p.misses.iter().any(|m| m == w)),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_in_every_script_are_alerted_and_found_by_their_words() {
    let posts = corpus();
    let fake = FakeTelegram::start(Options {
        channels: 1,
        posts: 3,
        password: None,
        quotas: QuotaMode::Off,
        bot_limits: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let env = bot_env_for(&fake, &[ADMIN], "info");
    // Every alert on its own (the posts arrive at once; no digest).
    let cfg = std::fs::read_to_string(env.path("config.toml")).unwrap();
    std::fs::write(
        env.path("config.toml"),
        cfg.replace("open = false", "open = false\ndigest_after = 0"),
    )
    .unwrap();
    let name = fake.info.channels[0].clone();
    let ch = fake.world.channel_id(&name).unwrap();
    login_and_add(&env, &fake, &fake.info.channels[..1]).await;
    let mut child = start_with_bot(&env).await;
    wait_until("the backfill", Duration::from_secs(30), || {
        sql(
            &env,
            &format!("SELECT backfill_state FROM channels WHERE id = {ch}"),
        ) == "done"
    })
    .await;
    let answer = ask(&fake, ADMIN, &format!("/allow {READER}")).await;
    assert!(answer.contains("may use the bot now"), "{answer}");
    let subs = subscriptions(&posts);
    for (w, must, _) in &subs {
        let answer = ask(&fake, READER, &format!("/subscribe {w}")).await;
        assert!(answer.contains("Subscribed"), "{w}: {answer}");
        assert!(
            !must.is_empty() || w == "以太坊",
            "{w} is no post's match word"
        );
    }

    // The posts arrive live.
    let ids: Vec<i32> = posts
        .iter()
        .map(|p| fake.world.post(ch, &p.text).unwrap())
        .collect();
    wait_until("every post stored", Duration::from_secs(60), || {
        let stored = stored_ids(&env, ch);
        ids.iter().all(|i| stored.contains(i))
    })
    .await;
    let link = |i: usize| format!("https://t.me/{name}/{}", ids[i]);

    // Each subscription alerts its posts, and no post its corpus entry says it must miss.
    let expected: usize = subs.iter().map(|(_, must, _)| must.len()).sum();
    let alerts = || -> Vec<String> {
        sent_to(&fake, READER)
            .into_iter()
            .filter(|t| t.starts_with("🔔"))
            .collect()
    };
    wait_until("the alerts", Duration::from_secs(60), || {
        alerts().len() >= expected
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut by_word: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for a in alerts() {
        let post = (0..posts.len()).find(|&i| a.lines().any(|l| l == link(i)));
        let pattern = a
            .strip_prefix("🔔 <b>")
            .and_then(|r| r.split_once("</b>"))
            .map(|(p, _)| p.to_string());
        let (Some(p), Some(w)) = (post, pattern) else {
            panic!("an alert of no corpus post or pattern: {a}");
        };
        // The bot keeps a subscription's words in lower case.
        by_word
            .entry(tgparser::text::fold::fold(&w))
            .or_default()
            .insert(p);
    }
    for (w, must, must_not) in &subs {
        let got = by_word
            .get(&tgparser::text::fold::fold(w))
            .cloned()
            .unwrap_or_default();
        assert!(must.is_subset(&got), "{w}: alerted {got:?}, must {must:?}");
        assert!(
            got.is_disjoint(must_not),
            "{w}: alerted {got:?}, must not {must_not:?}"
        );
    }
    assert_eq!(
        alerts().len(),
        expected,
        "one alert per match: {:?}",
        alerts()
    );

    // /search and `tgparser search` find each post by its first match words, the match bold.
    for (i, p) in posts.iter().enumerate() {
        let q = &p.hits[0];
        let answer = ask(&fake, READER, &format!("/search {q}")).await;
        assert!(answer.contains(&link(i)), "/search {q}: {answer}");
        // The match is bold: a bold run that folds to the query's words.
        let bold: Vec<String> = answer
            .split("<b>")
            .skip(1)
            .filter_map(|r| {
                r.split_once("</b>")
                    .map(|(b, _)| tgparser::text::fold::fold(b))
            })
            .collect();
        assert!(
            bold.contains(&tgparser::text::fold::fold(q)),
            "/search {q}: {bold:?} in {answer}"
        );
        let found = search_ids(&env, q);
        assert!(
            found.contains(&i64::from(ids[i])),
            "tgparser search {q}: {found:?}"
        );
        for m in &p.misses {
            let miss = search_ids(&env, m);
            assert!(
                !miss.contains(&i64::from(ids[i])),
                "tgparser search {m} found {:?}",
                p.text
            );
        }
    }
    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", stderr_of(&mut child));
}
