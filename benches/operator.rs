//! Operator benchmark over 1,000,000 posts of mixed scripts (5 channels; ~300-byte texts drawn
//! from a 3,000-word Zipf vocabulary of Latin, Cyrillic and Chinese words, so some words are in
//! a tenth of all posts and most are rare; every other post is Chinese, written without
//! spaces):
//! 1. `search`: latency of a query mix (single words, AND, phrases, prefixes, a channel
//!    filter), newest first, 20 results — p50/p95/max, through `Store::search` (what the CLI
//!    and the bot run), beside Python's sqlite3 running the one-statement form of the same
//!    search (FTS join, sort every match, snippet in the select) in the same run;
//! 2. `export`: posts/s to JSON lines, through the `tgparser export` binary, beside Python's
//!    sqlite3 + json writing the same columns.
//!
//! Run: `cargo bench --bench operator` (`-- --quick` for 200,000 posts).

mod common;
use common::BIN;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use tgparser::config::StoreConfig;
use tgparser::store::{CursorAdvance, MessageRow, SearchFilter, Store};

const VOCAB: usize = 3_000;

/// A deterministic generator (splitmix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Word `r` of the vocabulary: pronounceable, a quarter Cyrillic, a quarter Chinese (three or
/// four characters), unique per rank.
fn word(r: usize) -> String {
    const LAT: &[&str] = &[
        "ka", "lo", "mi", "ren", "tu", "sa", "vor", "den", "pli", "xo",
    ];
    const CYR: &[&str] = &["ра", "но", "ви", "ст", "ко", "лё", "ми", "да", "ту", "пе"];
    const HAN: &[&str] = &["价", "格", "市", "场", "比", "特", "币", "东", "京", "涨"];
    let syl = match r % 4 {
        3 => CYR,
        1 => HAN,
        _ => LAT,
    };
    let mut s = String::new();
    let mut n = r + 10;
    while n > 0 {
        s.push_str(syl[n % 10]);
        n /= 10;
    }
    s
}

/// Zipf (s = 1) sampler over ranks 0..VOCAB by inverting the cumulative weights.
struct Zipf(Vec<f64>);
impl Zipf {
    fn new() -> Zipf {
        let mut acc = 0.0;
        let cum = (1..=VOCAB)
            .map(|r| {
                acc += 1.0 / r as f64;
                acc
            })
            .collect::<Vec<_>>();
        let total = acc;
        Zipf(cum.into_iter().map(|c| c / total).collect())
    }
    fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.0.partition_point(|c| *c < u).min(VOCAB - 1)
    }
}

/// The words of a post: Chinese words only (written without spaces) or any.
fn post_words(rng: &mut Rng, zipf: &Zipf, words: &[String], chinese: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut len = 0;
    while len < 300 {
        let mut r = zipf.sample(rng);
        if chinese {
            r = (r - r % 4 + 1).min(VOCAB - 3);
        }
        len += words[r].len() + 1;
        out.push(words[r].clone());
    }
    out
}

fn text(rng: &mut Rng, zipf: &Zipf, words: &[String], chinese: bool) -> String {
    let ws = post_words(rng, zipf, words, chinese);
    if !chinese {
        return ws.join(" ") + " ";
    }
    ws.chunks(8)
        .map(|c| c.concat())
        .collect::<Vec<_>>()
        .join("，")
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n: usize = if quick { 200_000 } else { 1_000_000 };
    let channels = 5i64;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // `--keep` leaves the database behind for looking into by hand (its path is printed).
    let keep = std::env::args().any(|a| a == "--keep");
    let dir = tempfile::tempdir().unwrap();
    let d = if keep {
        dir.keep()
    } else {
        dir.path().to_path_buf()
    };
    std::fs::write(
        d.join("config.toml"),
        "[store]\ndir = \"state\"\n[vault]\nkey_file = \"vault.key\"\n[log]\nlevel = \"warn\"\n",
    )
    .unwrap();
    println!("tgparser operator benchmark: {n} posts in {channels} channels");
    let words: Vec<String> = (0..VOCAB).map(word).collect();
    let zipf = Zipf::new();
    let cfg = StoreConfig {
        dir: d.join("state"),
        busy_timeout: Duration::from_secs(5),
        read_connections: 2,
    };
    let t = Instant::now();
    rt.block_on(async {
        let store = Store::open(&cfg).await.unwrap();
        let mut rng = Rng(7);
        for c in 1..=channels {
            store
                .add_channel(&common::channel(
                    c,
                    &format!("bench{c}"),
                    &format!("Bench {c}"),
                ))
                .await
                .unwrap();
            let per = n / channels as usize;
            let mut id = per;
            while id > 0 {
                let batch: Vec<MessageRow> = (0..1000.min(id))
                    .map(|k| {
                        let i = id - k;
                        MessageRow {
                            id: i as i32,
                            kind: "post",
                            date: 1_700_000_000 + (i as i64) * 60 + c,
                            text: text(&mut rng, &zipf, &words, i % 2 == 1),
                            views: Some(i as i64 % 5000),
                            ..Default::default()
                        }
                    })
                    .collect();
                id -= batch.len();
                store
                    .ingest(
                        c,
                        &batch,
                        Some(CursorAdvance {
                            channel_id: c,
                            cursor: id as i32 + 1,
                            done: id == 0,
                        }),
                    )
                    .await
                    .unwrap();
            }
        }
        store.close().await;
    });
    println!("  prepared in {:.0} s", t.elapsed().as_secs_f64());
    if keep {
        println!("  kept: {}", d.display());
    }

    // The query mix.
    let mut rng = Rng(99);
    let mut queries: Vec<(String, Option<i64>)> = Vec::new();
    for q in 0..300 {
        let w = |rng: &mut Rng| words[zipf.sample(rng)].clone();
        let query = match q % 10 {
            0..=3 => w(&mut rng),
            4 | 5 => format!("{} AND {}", w(&mut rng), w(&mut rng)),
            // Two words in a row of a post: a phrase, or for Chinese the two written together.
            6 => {
                let ws = post_words(&mut rng, &zipf, &words, false);
                format!("\"{} {}\"", ws[0], ws[1])
            }
            7 => {
                let ws = post_words(&mut rng, &zipf, &words, true);
                format!("{}{}", ws[0], ws[1])
            }
            8 => format!("{}*", w(&mut rng).chars().take(4).collect::<String>()),
            _ => w(&mut rng),
        };
        let channel = (q % 10 == 9).then_some(1 + (q as i64 % channels));
        queries.push((query, channel));
    }
    let mut ours: Vec<f64> = Vec::new();
    let mut hits = 0usize;
    rt.block_on(async {
        let store = Store::open_read_only(&cfg).await.unwrap();
        for (q, ch) in queries.iter().take(20) {
            // warm the page cache
            let _ = store
                .search(
                    q,
                    &SearchFilter {
                        channel_id: *ch,
                        limit: 20,
                        ..Default::default()
                    },
                    false,
                )
                .await;
        }
        for (q, ch) in &queries {
            let t = Instant::now();
            let f = store
                .search(
                    q,
                    &SearchFilter {
                        channel_id: *ch,
                        limit: 20,
                        ..Default::default()
                    },
                    false,
                )
                .await
                .unwrap();
            ours.push(t.elapsed().as_secs_f64() * 1000.0);
            hits += f.hits.len();
        }
        store.close().await;
    });
    ours.sort_by(f64::total_cmp);
    let pct = |v: &[f64], p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    println!(
        "  search, {} queries, 20 newest results each ({hits} hits): p50 {:.1} ms, p95 {:.1} ms (target <= 20 ms), max {:.1} ms",
        ours.len(),
        pct(&ours, 0.5),
        pct(&ours, 0.95),
        ours.last().unwrap()
    );
    // Reference: the same SQL from Python's sqlite3 (C), same queries, same database.
    let qfile = d.join("queries.json");
    std::fs::write(
        &qfile,
        serde_json::to_string(
            &queries
                .iter()
                .map(|(q, c)| {
                    let fts = tgparser::text::Query::parse(q).unwrap().expr.to_fts5();
                    serde_json::json!([fts, c])
                })
                .collect::<Vec<_>>(),
        )
        .unwrap(),
    )
    .unwrap();
    let db = d.join("state/tgparser.db");
    let py = Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import json, sqlite3, sys, time
con = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
qs = json.load(open(sys.argv[2]))
cols = """m.channel_id, c.username, c.title, m.id, m.date, m.deleted_at IS NOT NULL,
  m.text FROM messages_fts
  JOIN messages m ON m.search_key = messages_fts.rowid JOIN channels c ON c.id = m.channel_id
  WHERE messages_fts MATCH ?1 AND (?2 IS NULL OR m.channel_id = ?2)"""
sql = f"SELECT {cols} ORDER BY messages_fts.rowid DESC LIMIT 20"
for q, c in qs[:20]:
    con.execute(sql, (q, c)).fetchall()
ts = []
for q, c in qs:
    t = time.perf_counter(); con.execute(sql, (q, c)).fetchall(); ts.append((time.perf_counter() - t) * 1000)
ts.sort()
print(f"{ts[len(ts)//2]:.1f} {ts[round((len(ts)-1)*0.95)]:.1f}")
"#,
        )
        .arg(&db)
        .arg(&qfile)
        .output();
    match py {
        Ok(o) if o.status.success() => {
            let s = String::from_utf8_lossy(&o.stdout);
            let mut p = s
                .split_whitespace()
                .map(|x| x.parse::<f64>().unwrap_or(f64::NAN));
            let mut next = || p.next().unwrap_or(f64::NAN);
            let (p50, p95) = (next(), next());
            println!(
                "  reference, same run: Python sqlite3 (system SQLite), our FTS5 query and statement without the prefix spelling-out and the snippets: p50 {p50:.1} ms, p95 {p95:.1} ms; ratio of p95 ours/reference {:.2}",
                pct(&ours, 0.95) / p95
            );
        }
        other => println!("  reference: Python unavailable ({other:?})"),
    }

    // Export through the binary, three times (the first also warms the page cache for the
    // database and the output file's directory); the median is reported.
    let out_file = d.join("all.jsonl");
    let mut runs = Vec::new();
    let mut size = 0;
    for _ in 0..3 {
        let _ = std::fs::remove_file(&out_file);
        let t = Instant::now();
        let o = Command::new(BIN)
            .arg("--config")
            .arg(d.join("config.toml"))
            .args(["export", "--out"])
            .arg(&out_file)
            .current_dir(&d)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        runs.push(t.elapsed().as_secs_f64());
        size = std::fs::metadata(&out_file).map(|m| m.len()).unwrap_or(0);
    }
    let all = runs
        .iter()
        .map(|s| format!("{s:.2} s"))
        .collect::<Vec<_>>()
        .join(", ");
    runs.sort_by(f64::total_cmp);
    let secs = runs[1];
    let ours_rate = n as f64 / secs;
    println!(
        "  export to JSON lines (tgparser export, every field): {n} posts in {secs:.2} s (median of {all}) = {ours_rate:.0} posts/s (target >= 200,000), {:.0} MB",
        size as f64 / 1e6
    );
    let _ = std::fs::remove_file(&out_file);
    let py = Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import json, sqlite3, sys, time
con = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
t = time.perf_counter(); n = 0
with open(sys.argv[2], "w", encoding="utf-8") as f:
    cur = con.execute("SELECT m.*, c.username, c.title FROM messages m JOIN channels c ON c.id = m.channel_id ORDER BY m.channel_id, m.id")
    cols = [d[0] for d in cur.description]
    for row in cur:
        f.write(json.dumps(dict(zip(cols, row)), ensure_ascii=False)); f.write("\n"); n += 1
print(n / (time.perf_counter() - t))
"#,
        )
        .arg(&db)
        .arg(d.join("py.jsonl"))
        .output();
    match py {
        Ok(o) if o.status.success() => {
            let theirs: f64 = String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse()
                .unwrap_or(f64::NAN);
            println!(
                "  reference, same run: Python sqlite3 + json writing the same rows: {theirs:.0} posts/s; ratio ours/reference {:.2}",
                ours_rate / theirs
            );
        }
        other => println!("  reference: Python unavailable ({other:?})"),
    }
    let _ = std::io::stdout().flush();
}
