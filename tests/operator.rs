//! The channel database as operators use it: the views, `search`, `export`, `backup`,
//! `stats`, and reading while the daemon writes. (The database file itself, and the schema
//! its documentation lists: database_files.rs.)

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use fake_telegram::flood::QuotaMode;
use fake_telegram::{FakeTelegram, Options};

fn fake_opts() -> Options {
    Options {
        channels: 2,
        posts: 100,
        password: None,
        quotas: QuotaMode::Off,
        ..Default::default()
    }
}

/// Posts the search tests look for, in the first channel; returns their ids.
fn special_posts(fake: &FakeTelegram, ch: i64) -> Vec<i32> {
    [
        "Blorptown council signals a tax cut in Marchwind",
        "The tax is cut? No: Blorptown taxes hold",
        "Zeppelinfest opens at the kafé Vrümli",
        "Учёные Блорпграда открыли новый вид",
        "Launch day 🛸 for Vexilia",
        "A post with \"quotes\", commas,\nand a second line",
    ]
    .iter()
    .map(|t| fake.world.post(ch, t).unwrap())
    .collect()
}

async fn archive(fake: &FakeTelegram) -> (Env, i64, Vec<i32>) {
    let env = telegram_env(fake);
    let ch = fake.world.channel_id(&fake.info.channels[0]).unwrap();
    let ids = special_posts(fake, ch);
    login_and_add(&env, fake, &fake.info.channels).await;
    let out = run_with_input(&env, &["backfill"], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    (env, ch, ids)
}

fn search_ids(env: &Env, args: &[&str]) -> Vec<i64> {
    let mut a = vec!["search", "--json"];
    a.extend_from_slice(args);
    let out = env.run(&a);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_reads_phrases_prefixes_cyrillic_with_and_without_yo_emoji_and_filters_and_refuses_bad_syntax()
 {
    let fake = FakeTelegram::start(fake_opts()).await.unwrap();
    let (env, ch, ids) = archive(&fake).await;
    let id = |i: usize| i64::from(ids[i]);
    let name = fake.info.channels[0].clone();

    assert_eq!(search_ids(&env, &["\"tax cut\""]), vec![id(0)], "a phrase");
    assert_eq!(
        search_ids(&env, &["blorptown AND cut"]),
        vec![id(1), id(0)],
        "newest first"
    );
    assert_eq!(search_ids(&env, &["blorptown NOT marchwind"]), vec![id(1)]);
    assert_eq!(search_ids(&env, &["zeppelinf*"]), vec![id(2)], "a prefix");
    assert_eq!(
        search_ids(&env, &["vrumli"]),
        vec![id(2)],
        "without the accent"
    );
    assert_eq!(
        search_ids(&env, &["учёные блорпграда"]),
        vec![id(3)],
        "with ё"
    );
    assert_eq!(
        search_ids(&env, &["ученые блорпграда"]),
        vec![id(3)],
        "with е for ё"
    );
    assert_eq!(
        search_ids(&env, &["УЧЕНЫЕ БЛОРПГРАДА"]),
        vec![id(3)],
        "any case"
    );
    assert_eq!(search_ids(&env, &["🛸"]), vec![id(4)], "an emoji");

    // Filters.
    let other = &fake.info.channels[1];
    assert_eq!(
        search_ids(&env, &["blorptown", "--channel", &format!("@{other}")]),
        Vec::<i64>::new()
    );
    assert_eq!(
        search_ids(&env, &["blorptown", "--channel", &format!("@{name}")]).len(),
        2
    );
    assert_eq!(
        search_ids(&env, &["blorptown", "--limit", "1"]),
        vec![id(1)]
    );
    assert_eq!(
        search_ids(&env, &["blorptown", "--since", "2999-01-01"]),
        Vec::<i64>::new()
    );
    assert_eq!(
        search_ids(&env, &["blorptown", "--until", "2000-01-01"]),
        Vec::<i64>::new()
    );
    assert_eq!(
        search_ids(&env, &["blorptown", "--since", "2000-01-01"]).len(),
        2
    );

    // The terminal form: date, channel, link, snippet.
    let out = env.run(&["search", "\"tax cut\""]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains(&format!("https://t.me/{name}/{}", id(0))),
        "{shown}"
    );
    assert!(
        shown.contains("*tax cut*") || shown.contains("*tax* *cut*"),
        "{shown}"
    );

    // Mistakes are explained, not SQL errors.
    let out = env.run(&["search", "\"unclosed"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not valid search syntax") && err.contains("\"a phrase\""),
        "{err}"
    );
    let out = env.run(&["search", "blorptown", "--channel", "@nosuchchannel"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not among the archived channels"));
    let out = env.run(&["search", "blorptown", "--since", "yesterday"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("YYYY-MM-DD"));
    let _ = ch;
}

/// Runs Python on `script` with `args`; returns stdout.
fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_round_trip_through_pythons_json_and_csv_readers_with_every_field_and_history() {
    let fake = FakeTelegram::start(fake_opts()).await.unwrap();
    let (env, ch, ids) = archive(&fake).await;
    // An edit, written the way an operator could: the trigger keeps the old text as a version.
    sql_write(
        &env,
        &format!(
            "UPDATE messages SET text = 'Blorptown council signals a tax cut in Aprilwind', version = version + 1 \
             WHERE channel_id = {ch} AND id = {}",
            ids[0]
        ),
    );
    // Its new words reach the search index at tgparser's next write or start.
    assert_eq!(env.run(&["migrate"]).status.code(), Some(0));
    let jsonl = env.path("all.jsonl");
    let out = env.run(&["export", "--with-history", "--out", jsonl.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let csv = env.path("all.csv");
    let out = env.run(&[
        "export",
        "--format",
        "csv",
        "--with-history",
        "--out",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!env.path("all.csv.partial").exists());

    // Each reader gives back, per post, the fields the database holds.
    let db = env.state_dir().join("tgparser.db");
    let check = r#"
import csv, json, sqlite3, sys
db, jsonl, csvf = sys.argv[1:4]
con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
rows = {(r[0], r[1]): r for r in con.execute(
    "SELECT channel_id, id, text, views, forwards, entities, media, version, deleted_at IS NOT NULL FROM messages")}
hist = {}
for c, m, v, t in con.execute("SELECT channel_id, message_id, version, text FROM message_versions"):
    hist.setdefault((c, m), []).append((v, t))
def same(rec, hist_list, text, views, forwards, entities, media, version, deleted):
    r = rows[(int(rec["channel_id"]), int(rec["id"]))]
    assert text == r[2], (text, r[2])
    assert views == r[3] and forwards == r[4], (views, forwards, r)
    assert (entities is None and r[5] is None) or entities == json.loads(r[5]), (entities, r[5])
    assert (media is None and r[6] is None) or media == json.loads(r[6]), (media, r[6])
    assert version == r[7] and deleted == bool(r[8])
    assert [(h["version"], h["text"]) for h in hist_list] == sorted(hist.get((r[0], r[1]), [])), hist_list
n = 0
for line in open(jsonl, encoding="utf-8"):
    rec = json.loads(line)
    same(rec, rec["history"], rec["text"], rec["views"], rec["forwards"], rec["entities"],
         rec["media"], rec["version"], rec["deleted"])
    n += 1
m = 0
with open(csvf, newline="", encoding="utf-8") as f:
    for rec in csv.DictReader(f):
        num = lambda s: int(s) if s != "" else None
        js = lambda s: json.loads(s) if s != "" else None
        same(rec, json.loads(rec["history"]), rec["text"], num(rec["views"]), num(rec["forwards"]),
             js(rec["entities"]), js(rec["media"]), int(rec["version"]), rec["deleted"] == "1")
        m += 1
assert n == m == len(rows), (n, m, len(rows))
# Both formats carry the same fields, in the same order.
first = json.loads(open(jsonl, encoding="utf-8").readline())
header = next(csv.reader(open(csvf, newline="", encoding="utf-8")))
assert list(first.keys()) == header, (list(first.keys()), header)
print(n)
"#;
    let n = python(
        check,
        &[
            db.to_str().unwrap(),
            jsonl.to_str().unwrap(),
            csv.to_str().unwrap(),
        ],
    );
    assert_eq!(n, sql(&env, "SELECT count(*) FROM messages"));
    let edited = python(
        r#"
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line)
    if r["history"]:
        print(r["history"][0]["text"], "->", r["text"], r["version"])
"#,
        &[jsonl.to_str().unwrap()],
    );
    assert_eq!(
        edited,
        "Blorptown council signals a tax cut in Marchwind -> Blorptown council signals a tax cut in Aprilwind 2"
    );
    let quoted = python(
        r#"
import csv, sys
for r in csv.DictReader(open(sys.argv[1], newline="", encoding="utf-8")):
    if r["text"].startswith("A post with"):
        print(repr(r["text"]))
"#,
        &[csv.to_str().unwrap()],
    );
    assert_eq!(
        quoted,
        "'A post with \"quotes\", commas,\\nand a second line'"
    );

    // Filters and stdout; a bad query is refused and leaves no file.
    let out = env.run(&[
        "export",
        "--query",
        "blorptown",
        "--channel",
        &format!("@{}", fake.info.channels[0]),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    let bad = env.path("bad.jsonl");
    let out = env.run(&[
        "export",
        "--query",
        "\"open",
        "--out",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!bad.exists() && !env.path("bad.jsonl.partial").exists());

    // Views and stats read the same data.
    assert_eq!(
        sql(
            &env,
            &format!(
                "SELECT text FROM v_post_history WHERE channel_id = {ch} AND message_id = {} ORDER BY version",
                ids[0]
            )
        ),
        "Blorptown council signals a tax cut in Marchwind\nBlorptown council signals a tax cut in Aprilwind"
    );
    assert_eq!(
        sql(
            &env,
            &format!(
                "SELECT link, deleted, date LIKE '____-__-__T__:__:__Z' FROM v_posts WHERE channel_id = {ch} AND id = {}",
                ids[0]
            )
        ),
        format!("https://t.me/{}/{}|0|1", fake.info.channels[0], ids[0])
    );
    assert_eq!(
        sql(
            &env,
            &format!("SELECT edits, backfill_percent FROM v_channel_stats WHERE channel_id = {ch}")
        ),
        "1|100.0"
    );
    let out = env.run(&["stats"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains(&format!("@{}", fake.info.channels[0])) && shown.contains("2 channels"),
        "{shown}"
    );
}

fn count(env: &Env) -> i64 {
    sql(env, "SELECT count(*) FROM messages").parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_during_a_full_speed_backfill_is_consistent_and_a_long_reader_does_not_stall_ingest()
 {
    let fake = FakeTelegram::start(Options {
        channels: 4,
        posts: 25_000,
        password: None,
        quotas: QuotaMode::Off,
        ..Default::default()
    })
    .await
    .unwrap();
    let env = telegram_env(&fake);
    login_and_add(&env, &fake, &fake.info.channels).await;
    let mut child = spawn_daemon(&env, None);
    wait_until(
        "the backfill to be under way",
        Duration::from_secs(60),
        || count(&env) > 5_000,
    )
    .await;

    // A reader holding one read transaction open for 4 s (Python, read-only) while the daemon
    // writes: ingest goes on.
    let db = env.state_dir().join("tgparser.db");
    let before = count(&env);
    let t = Instant::now();
    let held = python(
        r#"
import sqlite3, sys, time
con = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, isolation_level=None)
con.execute("BEGIN")
n0 = con.execute("SELECT count(*) FROM messages").fetchone()[0]
time.sleep(4)
n1 = con.execute("SELECT count(*) FROM messages").fetchone()[0]
con.execute("COMMIT")
print(n0, n1)
"#,
        &[db.to_str().unwrap()],
    );
    let during = count(&env) - before;
    let secs = t.elapsed().as_secs_f64();
    let (n0, n1) = held.split_once(' ').unwrap();
    assert_eq!(n0, n1, "the reader sees one snapshot");
    let t2 = Instant::now();
    let before2 = count(&env);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = count(&env) - before2;
    println!(
        "ingest while a reader held a transaction: {:.0} posts/s; right after: {:.0} posts/s",
        during as f64 / secs,
        after as f64 / t2.elapsed().as_secs_f64()
    );
    assert!(
        during > 1_000,
        "ingest stalled behind a reader: {during} posts in {secs:.1} s"
    );

    // A backup while the backfill writes.
    let committed = count(&env);
    let backup = env.path("copy.db");
    let out = env.run(&["backup", backup.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("integrity_check: ok"));
    let check = Command::new("sqlite3")
        .arg("-readonly")
        .arg(&backup)
        .arg("PRAGMA integrity_check; SELECT count(*) FROM messages;")
        .output()
        .unwrap();
    let check = String::from_utf8_lossy(&check.stdout);
    let mut lines = check.lines();
    assert_eq!(lines.next(), Some("ok"));
    let in_backup: i64 = lines.next().unwrap().parse().unwrap();
    assert!(
        in_backup >= committed,
        "{in_backup} posts in the backup, {committed} committed before it began"
    );
    // Never overwrites.
    let out = env.run(&["backup", backup.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("never overwrites"));

    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(15));
    assert_eq!(code, Some(0), "{}", stderr_of(&mut child));
}

#[test]
fn exporting_a_million_posts_streams_in_bounded_memory() {
    let env = Env::new();
    env.write_config("");
    env.keygen();
    assert_eq!(env.run(&["migrate"]).status.code(), Some(0));
    // A million posts written by SQLite itself (the schema's triggers index them).
    sql_write(
        &env,
        "INSERT INTO channels (id, username, title, added_at, updated_at) VALUES (1, 'big', 'Big', 0, 0);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000)
         INSERT INTO messages (channel_id, id, date, text, views, fetched_at, updated_at, search_key)
         SELECT 1, i, 1700000000 + i, 'Post ' || i || ': the quick brown fox number ' || (i % 1000) || char(10) || 'second \"line\", done', i % 977, 0, 0, (1700000000 + i) << 20 FROM n;",
    );
    // Peak memory of the export, from the kernel's accounting of the finished child.
    let out_file = env.path("big.jsonl");
    let peak = python(
        r#"
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
assert r.returncode == 0, r.stderr
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"#,
        &[
            env!("CARGO_BIN_EXE_tgparser"),
            "--config",
            env.path("config.toml").to_str().unwrap(),
            "export",
            "--out",
            out_file.to_str().unwrap(),
        ],
    );
    let peak_kib: u64 = peak.parse().unwrap();
    let lines = std::io::BufRead::lines(std::io::BufReader::new(
        std::fs::File::open(&out_file).unwrap(),
    ))
    .count();
    assert_eq!(lines, 1_000_000);
    let size = std::fs::metadata(&out_file).unwrap().len();
    println!(
        "exported 1,000,000 posts ({:.0} MB of JSON lines) with a peak RSS of {:.1} MB",
        size as f64 / 1e6,
        peak_kib as f64 / 1024.0
    );
    assert!(
        peak_kib < 64 * 1024,
        "peak RSS {peak_kib} KiB for a {size}-byte export: not streaming"
    );
}

/// A database written before search keys existed (schema version 6) gains them when upgraded:
/// every post keyed by its date, the index rebuilt over the keys, search newest first with the
/// date filters; a row a script inserts afterwards without a key gets one from the trigger, and
/// is indexed at tgparser's next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrading_a_database_from_before_search_keys_keys_every_post_by_date() {
    use sqlx::Connection;
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    env.write_config("");
    env.keygen();
    let old = env.path("migrations-6");
    std::fs::create_dir_all(&old).unwrap();
    for e in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if name.as_str() < "0007" {
            std::fs::copy(&p, old.join(&name)).unwrap();
        }
    }
    std::fs::create_dir_all(env.state_dir()).unwrap();
    std::fs::set_permissions(env.state_dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(env.state_dir().join("tgparser.db"))
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
    let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
    sqlx::migrate::Migrator::new(old.as_path())
        .await
        .unwrap()
        .run(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    // 2023-11-15T00:00:00Z and the days after it.
    let day = |n: i64| 1_700_006_400 + n * 86_400;
    sql_write(
        &env,
        &format!(
            "INSERT INTO channels (id, username, title, added_at, updated_at) VALUES (1, 'one', 'One', 0, 0), (2, 'two', 'Two', 0, 0);
             INSERT INTO messages (channel_id, id, date, text, fetched_at, updated_at) VALUES
               (1, 1, {d0}, 'fox one', 0, 0), (1, 2, {d4}, 'fox two', 0, 0), (1, 3, {d0}, 'no match', 0, 0),
               (2, 11, {d2}, 'fox eleven', 0, 0), (2, 12, {d4}, 'fox twelve', 0, 0);",
            d0 = day(0),
            d2 = day(2),
            d4 = day(4)
        ),
    );
    assert_eq!(env.run(&["migrate"]).status.code(), Some(0));
    assert_eq!(
        sql(
            &env,
            "SELECT count(*), count(DISTINCT search_key), sum(search_key >> 20 = date) FROM messages"
        ),
        "5|5|5"
    );
    sql_write(
        &env,
        "INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')",
    );
    // Same second (day 4): channel 1 then channel 2 in key order, so channel 2's is newer.
    assert_eq!(search_ids(&env, &["fox"]), vec![12, 2, 11, 1]);
    assert_eq!(
        search_ids(&env, &["fox", "--until", "2023-11-18"]),
        vec![11, 1]
    );
    assert_eq!(
        search_ids(&env, &["fox", "--since", "2023-11-16", "--channel", "@one"]),
        vec![2]
    );
    // A script's insert without a key: the next key of its second. Its words reach the index
    // at tgparser's next write or start (here `migrate`).
    sql_write(
        &env,
        &format!(
            "INSERT INTO messages (channel_id, id, date, text, fetched_at, updated_at) VALUES (1, 4, {}, 'fox four', 0, 0)",
            day(4)
        ),
    );
    assert_eq!(sql(&env, "SELECT count(*) FROM search_pending"), "1");
    assert_eq!(env.run(&["migrate"]).status.code(), Some(0));
    assert_eq!(sql(&env, "SELECT count(*) FROM search_pending"), "0");
    assert_eq!(search_ids(&env, &["fox"]), vec![4, 12, 2, 11, 1]);
    assert_eq!(
        sql(
            &env,
            "SELECT count(DISTINCT search_key), sum(search_key >> 20 = date) FROM messages"
        ),
        "6|6"
    );
    sql_write(
        &env,
        "INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')",
    );
}
