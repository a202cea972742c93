//! Ingest benchmark: posts/s into the channel database (with the FTS5 index kept in sync), beside
//! the same inserts done by Python's sqlite3 module (C speed) on the same schema in the same run;
//! and posts/s of a whole backfill from the fake Telegram over loopback MTProto.
//!
//! Also: the same ingest on a mixed corpus (half of the posts Chinese and Japanese, written
//! without spaces), and the alert matcher's cost per post.
//!
//! Run: `cargo bench --bench ingest` (add `-- --quick` for a short run). With
//! `TGPARSER_BASELINE_BENCH` set to the ingest bench binary of an earlier build, that build's
//! `Store::ingest` figure is measured first, in the same run, on the same machine.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tgparser::store::{MessageRow, NewChannel, Store};
use tgparser::vault::{Vault, VaultKey};

const WORDS: &[&str] = &[
    "новости",
    "рынок",
    "release",
    "update",
    "канал",
    "погода",
    "матч",
    "technology",
    "launch",
    "город",
    "фестиваль",
    "market",
    "science",
    "учёные",
    "crypto",
    "travel",
    "🚀",
    "🔥",
    "café",
];

fn text(i: usize) -> String {
    let mut s = String::with_capacity(320);
    let mut k = i.wrapping_mul(2_654_435_761);
    while s.len() < 300 {
        k = k.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        s.push_str(WORDS[(k >> 33) % WORDS.len()]);
        s.push(' ');
    }
    s
}

/// Chinese and Japanese words, for posts written without spaces.
const CJK_WORDS: &[&str] = &[
    "比特币",
    "今天",
    "大涨",
    "突破",
    "美元",
    "央行",
    "宣布",
    "降息",
    "股市",
    "上涨",
    "市场",
    "东京",
    "価格",
    "急上昇",
    "ビットコイン",
    "発表",
    "した",
    "の",
    "が",
    "は",
    "新闻",
    "天气",
    "科技",
    "发布",
    "投资者",
    "经济",
    "数据",
    "政策",
    "日本銀行",
    "金融緩和",
];

/// About 300 bytes of Chinese and Japanese without spaces, a comma now and then.
fn cjk_text(i: usize) -> String {
    let mut s = String::with_capacity(320);
    let mut k = i.wrapping_mul(2_654_435_761) ^ 0x5bd1;
    let mut n = 0;
    while s.len() < 300 {
        k = k.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        s.push_str(CJK_WORDS[(k >> 33) % CJK_WORDS.len()]);
        n += 1;
        if n % 6 == 0 {
            s.push('，');
        }
    }
    s
}

/// The mixed corpus: every other post Chinese or Japanese.
fn mixed_text(i: usize) -> String {
    if i % 2 == 1 { cjk_text(i) } else { text(i) }
}

fn rows(n: usize, from: usize) -> Vec<MessageRow> {
    rows_of(n, from, text)
}

fn rows_of(n: usize, from: usize, text: fn(usize) -> String) -> Vec<MessageRow> {
    (from..from + n)
        .map(|i| MessageRow {
            id: i as i32 + 1,
            kind: "post",
            date: 1_700_000_000 + i as i64,
            text: text(i),
            entities: Some(r#"[{"type":"bold","offset":0,"length":7}]"#.into()),
            views: Some(1000),
            forwards: Some(3),
            ..Default::default()
        })
        .collect()
}

const PY_REFERENCE: &str = r#"
import sqlite3, sys, time, os
n, path = int(sys.argv[1]), sys.argv[2]
W = ["новости","рынок","release","update","канал","погода","матч","technology","launch","город","фестиваль","market","science","учёные","crypto","travel","🚀","🔥","café"]
def text(i):
    s=[]; k=(i*2654435761) % (1<<64); l=0
    while l < 300:
        k=(k*6364136223846793005+1) % (1<<64); w=W[(k>>33)%len(W)]; s.append(w); l+=len(w.encode())+1
    return " ".join(s)+" "
db=sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=NORMAL")
db.execute("CREATE TABLE messages(pk INTEGER PRIMARY KEY, channel_id INTEGER, id INTEGER, date INTEGER, text TEXT, entities TEXT, views INTEGER, forwards INTEGER, UNIQUE(channel_id,id))")
db.execute("CREATE VIRTUAL TABLE messages_fts USING fts5(text, content='messages', content_rowid='pk', tokenize='unicode61 remove_diacritics 2')")
db.execute("CREATE TRIGGER t AFTER INSERT ON messages BEGIN INSERT INTO messages_fts(rowid,text) VALUES (new.pk,new.text); END")
rows=[(1,i+1,1700000000+i,text(i),'[{"type":"bold","offset":0,"length":7}]',1000,3) for i in range(n)]
t=time.perf_counter()
for b in range(0,n,1000):
    db.execute("BEGIN IMMEDIATE")
    db.executemany("INSERT INTO messages(channel_id,id,date,text,entities,views,forwards) VALUES (?,?,?,?,?,?,?)", rows[b:b+1000])
    db.execute("COMMIT")
print(n/(time.perf_counter()-t))
"#;

/// The same rows inserted by SQLite itself (the sqlite3 CLI, C, no driver) into the product's
/// schema from a staging table, in transactions of 1,000: what the database engine alone costs.
/// Timed as the difference between a run that stages and inserts and one that only stages.
fn c_ceiling(dir: &std::path::Path, schema_db: &std::path::Path, n: usize) -> Option<f64> {
    let csv = dir.join("rows.csv");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&csv).ok()?);
        for r in rows(n, 0) {
            let text = r.text.replace('"', "\"\"");
            // The index's words `Store::ingest` computes on its caller's thread.
            let words = tgparser::text::index_words(&r.text);
            writeln!(f, "{},{},\"{words}\",\"{}\"", r.id, r.date, text).ok()?;
        }
    }
    let stage = format!(
        "PRAGMA journal_mode=WAL;\nPRAGMA synchronous=NORMAL;\nPRAGMA foreign_keys=ON;\nCREATE TEMP TABLE src(id INTEGER PRIMARY KEY, date INTEGER, words TEXT, text TEXT);\n.mode csv\n.import {} src\n",
        csv.display()
    );
    let mut inserts = stage.clone();
    for b in 0..n / 1000 {
        inserts.push_str(&format!(
            "BEGIN IMMEDIATE;\nINSERT INTO messages_fts (rowid, words) SELECT date << 20, words FROM src WHERE id > {lo} AND id <= {hi};\n\
             INSERT INTO messages (channel_id, id, kind, date, text, entities, views, forwards, fetched_at, updated_at, search_key) \
             SELECT 1, id, 'post', date, text, '[{{\"type\":\"bold\",\"offset\":0,\"length\":7}}]', 1000, 3, 0, 0, date << 20 FROM src WHERE id > {lo} AND id <= {hi} \
             ON CONFLICT (channel_id, id) DO UPDATE SET version = version + (excluded.text IS NOT text), text = excluded.text;\nCOMMIT;\n",
            lo = b * 1000,
            hi = (b + 1) * 1000
        ));
    }
    let run = |script: &str| -> Option<Duration> {
        use std::io::Write;
        let db = dir.join("c.db");
        let _ = std::fs::remove_file(&db);
        std::fs::copy(schema_db, &db).ok()?;
        let mut child = Command::new("sqlite3")
            .arg(&db)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let t = Instant::now();
        child.stdin.take()?.write_all(script.as_bytes()).ok()?;
        let ok = child.wait().ok()?.success();
        ok.then(|| t.elapsed())
    };
    let staged = run(&stage)?;
    let full = run(&inserts)?;
    Some(n as f64 / full.saturating_sub(staged).as_secs_f64().max(1e-9))
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // Only the store part, for profiling.
    let only_store = std::env::args().any(|a| a == "--only-store");
    let only_e2e = std::env::args().any(|a| a == "--only-e2e");
    let n = if quick { 20_000 } else { 100_000 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "tgparser ingest benchmark ({} cores)\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    // 1. Store ingest with FTS, batches of 1,000 posts of ~300 bytes.
    let dir = tempfile::tempdir().unwrap();
    if !only_e2e {
        store_part(&rt, dir.path(), n, only_store);
        if only_store {
            return;
        }
    }
    e2e_part(&rt, dir.path(), quick);
}

/// A database with the product's schema and the bench channel (id 1).
async fn bench_store(dir: &std::path::Path) -> Store {
    let store = common::store(dir).await;
    store
        .add_channel(&common::channel(1, "bench", "bench"))
        .await
        .unwrap();
    store
}

/// Posts/s of `Store::ingest` of `n` posts of `text` in batches of 1,000, into a new store.
fn ingest_rate(
    rt: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    n: usize,
    text: fn(usize) -> String,
) -> f64 {
    rt.block_on(async {
        let store = bench_store(dir).await;
        let batches: Vec<Vec<MessageRow>> = (0..n / 1000)
            .map(|b| rows_of(1000, b * 1000, text))
            .collect();
        let t = Instant::now();
        for b in &batches {
            store.ingest(1, b, None).await.unwrap();
        }
        let rate = n as f64 / t.elapsed().as_secs_f64();
        store.close().await;
        rate
    })
}

/// The earlier build's `Store::ingest` figure (`TGPARSER_BASELINE_BENCH`), run first.
fn baseline(n: usize) -> Option<f64> {
    let bin = std::env::var_os("TGPARSER_BASELINE_BENCH")?;
    let mut cmd = Command::new(bin);
    cmd.arg("--only-store");
    if n < 100_000 {
        cmd.arg("--quick");
    }
    let out = cmd.output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Store::ingest with FTS: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The alert matcher's cost: each post's terms cut once, then 100 subscriptions of one or two
/// words (Latin, Cyrillic, Chinese, Japanese) evaluated on them; beside the word matcher this
/// build replaced (split at non-alphanumerics, lower case, compare), on the same posts.
fn matcher_cost(n: usize) {
    use tgparser::text::{Query, term_texts};
    let mut words: Vec<&str> = WORDS.iter().chain(CJK_WORDS).copied().collect();
    words.sort_unstable();
    let subs: Vec<String> = (0..100)
        .map(|i| {
            let a = words[i % words.len()];
            if i % 3 == 0 {
                format!("{a} {}", words[(i * 7 + 3) % words.len()])
            } else {
                a.to_string()
            }
        })
        .collect();
    let exprs: Vec<_> = subs.iter().filter_map(|s| Query::words(s)).collect();
    let texts: Vec<String> = (0..n).map(mixed_text).collect();
    let t = Instant::now();
    let mut hits = 0usize;
    for text in &texts {
        let terms = term_texts(text);
        hits += exprs.iter().filter(|e| e.matches(&terms)).count();
    }
    let ours = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let old_subs: Vec<Vec<String>> = subs
        .iter()
        .map(|s| s.split_whitespace().map(str::to_lowercase).collect())
        .collect();
    let t = Instant::now();
    let mut old_hits = 0usize;
    for text in &texts {
        let have: Vec<String> = text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(|w| w.to_lowercase().replace('ё', "е"))
            .collect();
        old_hits += old_subs
            .iter()
            .filter(|want| want.iter().all(|w| have.iter().any(|h| h == w)))
            .count();
    }
    let old = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!(
        "alert matching, 100 subscriptions, mixed corpus: {ours:.1} µs per post ({hits} matches); \
         reference, the previous word matcher on the same posts: {old:.1} µs per post ({old_hits} matches: \
         it finds no Chinese or Japanese word inside a run)\n"
    );
}

fn store_part(rt: &tokio::runtime::Runtime, dir: &std::path::Path, n: usize, only_store: bool) {
    let before = if only_store { None } else { baseline(n) };
    let ours = ingest_rate(rt, &dir.join("a"), n, text);
    if only_store {
        println!("Store::ingest with FTS: {ours:.0} posts/s");
        return;
    }
    let mixed = ingest_rate(rt, &dir.join("mixed"), n, mixed_text);
    // An empty database with the product's schema, for the C ceiling.
    let schema_db = rt.block_on(async {
        let d = dir.join("schema");
        let store = bench_store(&d).await;
        store.close().await;
        d.join("tgparser.db")
    });
    let ceiling = c_ceiling(dir, &schema_db, n).unwrap_or(0.0);
    let py = Command::new("python3")
        .args(["-c", PY_REFERENCE, &n.to_string()])
        .arg(dir.join("py.db"))
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .unwrap_or(0.0)
        })
        .unwrap_or(0.0);
    println!("store ingest with FTS5, {n} posts of ~300 bytes in batches of 1,000:");
    println!(
        "  tgparser Store::ingest                 {ours:>9.0} posts/s (upsert + version check + FTS trigger)"
    );
    println!(
        "  reference: Python sqlite3, plain insert {py:>9.0} posts/s (same schema core and FTS5 tokenizer)"
    );
    println!(
        "  ratio                                   {:>9.2}   target >= 100,000 posts/s",
        ours / py.max(1.0)
    );
    println!(
        "  ceiling: SQLite itself (sqlite3 CLI), {ceiling:>9.0} posts/s (product schema, INSERT..SELECT, same batches); ours / ceiling {:.2}",
        ours / ceiling.max(1.0)
    );
    let fts = rt.block_on(fts_only(n));
    println!(
        "  ceiling: the FTS5 index alone          {fts:>9.0} posts/s (same texts and tokenizer, bundled SQLite, in memory: no table, no disk)"
    );
    println!(
        "  mixed corpus (half Chinese and Japanese) {mixed:>7.0} posts/s ({:.2} of the Latin/Cyrillic rate)",
        mixed / ours.max(1.0)
    );
    match before {
        Some(b) => println!(
            "  the earlier build (TGPARSER_BASELINE_BENCH), same run: {b:.0} posts/s; this build / earlier {:.2} (target >= 0.80)\n",
            ours / b.max(1.0)
        ),
        None => println!(
            "  (set TGPARSER_BASELINE_BENCH to an earlier build's ingest bench to compare)\n"
        ),
    }
    matcher_cost(if n < 100_000 { 20_000 } else { 50_000 });
}

/// The same texts into a bare FTS5 table with the product's tokenizer, in memory, in the same
/// batches: no table, no other index, no disk. No ingest that keeps this index in step can be
/// faster.
async fn fts_only(n: usize) -> f64 {
    use sqlx::Connection;
    let mut c = sqlx::SqliteConnection::connect("sqlite::memory:")
        .await
        .unwrap();
    // As in migrations/0017_search_contentless.sql, fed the words `Store::ingest` computes.
    sqlx::query(
        "CREATE VIRTUAL TABLE f USING fts5 (text, columnsize = 0, tokenize = \"unicode61 remove_diacritics 2 categories 'L* N* M* Co So'\")",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let texts: Vec<String> = (0..n)
        .map(|i| tgparser::text::index_words(&text(i)))
        .collect();
    let batches: Vec<String> = texts
        .chunks(1000)
        .map(|b| serde_json::to_string(b).unwrap())
        .collect();
    let t = Instant::now();
    for (i, batch) in batches.iter().enumerate() {
        let mut tx = c.begin().await.unwrap();
        sqlx::query("INSERT INTO f (rowid, text) SELECT ?2 + key, value FROM json_each(?1)")
            .bind(batch)
            .bind((i * 1000) as i64)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn e2e_part(rt: &tokio::runtime::Runtime, dir: &std::path::Path, quick: bool) {
    // 2. Backfill from the fake Telegram over loopback MTProto.
    let posts = if quick { 10_000 } else { 50_000 };
    let (rate, stored, fetch_rate) = rt.block_on(async {
        let fake = fake_telegram::FakeTelegram::start(fake_telegram::Options {
            channels: 1,
            posts,
            password: None,
            quotas: fake_telegram::flood::QuotaMode::Off,
            ..Default::default()
        })
        .await
        .unwrap();
        let d = dir.join("b");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("api_hash"), "a3406de8d171bb422bb6ddf3bbd800e2").unwrap();
        std::fs::write(d.join("auth_key.hex"), fake.info.auth_key_file()).unwrap();
        let store = common::store(&d).await;
        let vault = Arc::new(Vault::new(&VaultKey::generate()));
        store
            .verify_or_init_vault(&vault, &d.join("vault.key"))
            .await
            .unwrap();
        let conn = common::logged_in(&fake, &d, &store, vault).await;
        let resolved = conn
            .client
            .invoke(&grammers_client::tl::functions::contacts::ResolveUsername {
                username: fake.info.channels[0].clone(),
                referer: None,
            })
            .await
            .unwrap();
        let grammers_client::tl::enums::contacts::ResolvedPeer::Peer(resolved) = resolved;
        let Some(grammers_client::tl::enums::Chat::Channel(c)) = resolved.chats.into_iter().next()
        else {
            panic!("the fake's channel did not resolve to a channel");
        };
        store
            .add_channel(&NewChannel::from_tl(&c, None, None))
            .await
            .unwrap();
        // The network side alone: every page fetched and converted, nothing stored.
        let mut ch = store
            .channels()
            .await
            .unwrap()
            .into_iter()
            .find(|ch| ch.id == c.id)
            .unwrap();
        let t = Instant::now();
        let mut fetched = 0;
        loop {
            let page = tgparser::parser::backfill::fetch_page(&conn, &store, &ch)
                .await
                .unwrap();
            fetched += page.rows.len();
            ch.backfill_cursor = Some(i64::from(page.advance.cursor));
            if page.advance.done {
                break;
            }
        }
        let fetch_rate = fetched as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        let stored = tgparser::parser::backfill::run_all(&conn, &store, None, |_, _| {})
            .await
            .unwrap();
        (
            stored as f64 / t.elapsed().as_secs_f64(),
            stored,
            fetch_rate,
        )
    });
    println!("backfill of one channel from the fake Telegram over loopback MTProto (quotas off):");
    println!(
        "  end to end, stored with FTS             {rate:>9.0} posts/s ({stored} posts); target >= 30,000"
    );
    println!(
        "  fetch + convert alone, nothing stored   {fetch_rate:>9.0} posts/s (the fake serving in the same process)"
    );
}
