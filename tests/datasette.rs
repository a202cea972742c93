//! Datasette (from PyPI, in a virtualenv this test creates under target/ on first run) opens a
//! channel database with the metadata tgparser ships (docs/tgparser.metadata.json): its table
//! search goes through our index, in several scripts, and the tables carry the titles and
//! descriptions of docs/SCHEMA.md.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tgparser::config::StoreConfig;
use tgparser::store::{MessageRow, NewChannel, Store};

const DATASETTE: &str = "datasette==0.65.5";

/// A Python with Datasette: `$DATASETTE_PYTHON`, or a virtualenv made (once) under target/.
fn python() -> PathBuf {
    fake_telegram::python::with_packages(
        "DATASETTE_PYTHON",
        Path::new(env!("CARGO_TARGET_TMPDIR")),
        "datasette-0.65-venv",
        &[DATASETTE],
    )
}

const POSTS: &[&str] = &[
    "Bitcoin ETF approved, Учёные в СИБИРИ рады",
    "ビットコインの価格が急上昇しています",
    "今天比特币大涨了",
    "Die Straße wird gesperrt",
    "nothing to see here",
];

async fn archive(dir: &Path) -> PathBuf {
    let store = Store::open(&StoreConfig {
        dir: dir.to_path_buf(),
        busy_timeout: Duration::from_secs(5),
        read_connections: 1,
    })
    .await
    .unwrap();
    store
        .add_channel(&NewChannel {
            id: 1,
            access_hash: Some(1),
            username: Some("news".into()),
            title: "News".into(),
            about: None,
            participants: None,
            kind: "broadcast",
            since: None,
            last: None,
            added_by: None,
            membership: "join",
            with_comments: false,
            discussion_of: None,
        })
        .await
        .unwrap();
    let rows: Vec<MessageRow> = POSTS
        .iter()
        .enumerate()
        .map(|(i, t)| MessageRow {
            id: i as i32 + 1,
            kind: "post",
            date: 1_700_000_000 + i as i64,
            text: (*t).into(),
            ..Default::default()
        })
        .collect();
    store.ingest(1, &rows, None).await.unwrap();
    let path = store.path().to_path_buf();
    store.close().await;
    path
}

const SCRIPT: &str = r#"
import asyncio, json, sys
from datasette.app import Datasette

db, meta_path = sys.argv[1], sys.argv[2]
meta = json.load(open(meta_path))

async def main():
    ds = Datasette([db], metadata=meta)
    out = {}
    for name, q in [("plain", "bitcoin"), ("cyrillic_case", "сибири"), ("katakana_word", "ビットコイン"),
                    ("folded_by_us", "strasse"), ("no_match", "ethereum"),
                    ("bigrams_raw", '"比特 特币"')]:
        mode = "&_searchmode=raw" if name.endswith("_raw") else ""
        r = await ds.client.get("/tgparser/messages.json?_shape=array&_col=id&_search=" + q + mode)
        assert r.status_code == 200, (name, r.status_code, r.text)
        out[name] = sorted(row["id"] for row in r.json())
    page = await ds.client.get("/tgparser/messages")
    out["title_shown"] = meta["databases"]["tgparser"]["tables"]["messages"]["title"] in page.text
    out["description_shown"] = meta["databases"]["tgparser"]["tables"]["messages"]["description"] in page.text
    print(json.dumps(out))

asyncio.run(main())
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datasette_searches_through_our_index_with_the_shipped_metadata() {
    let py = tokio::task::spawn_blocking(python).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = archive(&dir.path().join("state")).await;
    let meta = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/tgparser.metadata.json");
    let out = Command::new(&py)
        .args(["-c", SCRIPT])
        .arg(&db)
        .arg(meta)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["plain"], serde_json::json!([1]), "{got}");
    assert_eq!(got["cyrillic_case"], serde_json::json!([1]), "{got}");
    assert_eq!(got["katakana_word"], serde_json::json!([2]), "{got}");
    assert_eq!(got["folded_by_us"], serde_json::json!([4]), "{got}");
    assert_eq!(got["no_match"], serde_json::json!([]), "{got}");
    assert_eq!(got["bigrams_raw"], serde_json::json!([3]), "{got}");
    assert_eq!(got["title_shown"], true, "{got}");
    assert_eq!(got["description_shown"], true, "{got}");
}

/// Every table and view docs/SCHEMA.md documents has the same description and column
/// descriptions in the metadata file (regenerate it from the doc when the doc changes).
#[test]
fn the_metadata_file_says_what_the_schema_doc_says() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/SCHEMA.md")).unwrap();
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/tgparser.metadata.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let tables = &meta["databases"]["tgparser"]["tables"];
    let mut seen = 0;
    let mut lines = doc.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(name) = line.strip_prefix("### `").and_then(|n| n.strip_suffix('`')) else {
            continue;
        };
        let mut desc = Vec::new();
        while let Some(l) = lines.peek() {
            if l.trim().is_empty() && desc.is_empty() {
                lines.next();
                continue;
            }
            if l.trim().is_empty()
                || l.starts_with('|')
                || l.starts_with('#')
                || l.starts_with("```")
            {
                break;
            }
            desc.push(l.trim().to_string());
            lines.next();
        }
        assert_eq!(
            tables[name]["description"].as_str(),
            Some(desc.join(" ").as_str()),
            "{name}"
        );
        seen += 1;
    }
    assert_eq!(seen, tables.as_object().unwrap().len());
    assert_eq!(tables["messages"]["fts_table"], "messages_fts");
    assert_eq!(tables["messages"]["fts_pk"], "search_key");
}
