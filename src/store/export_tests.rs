//! Tests of `store::export`.

use super::*;
use crate::store::{MessageRow, testing};

fn varied(i: i32) -> MessageRow {
    let service = i % 97 == 0;
    MessageRow {
        id: i,
        kind: if service { "service" } else { "post" },
        date: 1_700_000_000 + i64::from(i) * 30,
        edit_date: (i % 7 == 0).then(|| 1_700_000_000 + i64::from(i) * 30 + 5),
        text: match i % 5 {
            0 => format!("post {i}: \"quoted\", back\\slash\nsecond line\ttab"),
            1 => format!("пост {i} с ёлкой 🚀 and word"),
            2 => String::new(),
            _ => format!("plain word {i}"),
        },
        entities: (i % 3 == 0)
            .then(|| format!(r#"[{{"type":"bold","offset":0,"length":{}}}]"#, i % 9 + 1)),
        views: (i % 4 != 0).then_some(i64::from(i) * 10),
        forwards: (i % 6 == 0).then_some(3),
        replies: (i % 8 == 0).then_some(1),
        reactions: (i % 10 == 0).then(|| r#"[{"emoji":"👍","count":5}]"#.to_string()),
        grouped_id: (i % 11 == 0).then_some(77),
        reply_to_msg_id: (i % 13 == 0).then_some(i64::from(i) - 1),
        reply_to_top_id: None,
        fwd_from: (i % 17 == 0).then(|| r#"{"from_name":"Someone"}"#.to_string()),
        post_author: (i % 19 == 0).then(|| "Editor \"E\"".to_string()),
        pinned: i % 23 == 0,
        silent: i % 2 == 0,
        noforwards: i % 29 == 0,
        media_kind: (i % 31 == 0).then_some("photo"),
        media: (i % 31 == 0).then(|| r#"{"w":800,"h":600}"#.to_string()),
        action: service.then(|| r#"{"type":"pin","id":1}"#.to_string()),
        convert_error: (i % 37 == 0).then(|| "unknown media".to_string()),
        from_id: (i % 41 == 0).then_some(777),
    }
}

/// The JSON lines SQLite writes and the records serde writes are the same posts with the
/// same fields and values, in the same order, whatever the filter — across batch edges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_written_json_lines_equal_the_serialized_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = testing::store(dir.path(), 3).await;
    for (id, username) in [(5, Some("named")), (9, None)] {
        store
            .add_channel(&testing::channel(
                id,
                username,
                &format!("Channel \"{id}\""),
            ))
            .await
            .unwrap();
    }
    let rows: Vec<MessageRow> = (1..=4_500).map(varied).collect();
    store.ingest(5, &rows, None).await.unwrap();
    store.ingest(9, &rows[..300], None).await.unwrap();
    // Edits (history) and deletions.
    let edited: Vec<MessageRow> = rows[..50]
        .iter()
        .map(|r| MessageRow {
            text: format!("{} (edited)", r.text),
            ..r.clone()
        })
        .collect();
    store.ingest(5, &edited, None).await.unwrap();
    store.mark_deleted(5, &[3, 4, 4_000]).await.unwrap();
    // A JSON column that does not parse, written with the CHECKs off.
    let mut tx = store.begin_write().await.unwrap();
    sqlx::query("PRAGMA ignore_check_constraints = ON")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE messages SET entities = 'not json' WHERE channel_id = 9 AND id = 6")
        .execute(&mut *tx)
        .await
        .unwrap();
    // Files of some posts: stored, pending, failed.
    for (ch, id, state, path) in [
        (5, 31, "done", Some("media/ab/cd/abcd.jpg")),
        (5, 62, "pending", None),
        (9, 93, "failed", None),
        (9, 31, "done", Some("media/ef/01/ef01 'q'.jpg")),
    ] {
        sqlx::query(
            "INSERT INTO media (channel_id, message_id, date, kind, file_id, state, path, updated_at) \
             VALUES (?, ?, 0, 'photo', 1, ?, ?, 0)",
        )
        .bind(ch)
        .bind(id)
        .bind(state)
        .bind(path)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    let filters = [
        ExportFilter::default(),
        ExportFilter {
            channel_id: Some(9),
            ..Default::default()
        },
        ExportFilter {
            since: Some(1_700_000_000 + 1_000 * 30),
            until: Some(1_700_000_000 + 3_000 * 30),
            ..Default::default()
        },
        ExportFilter {
            query: Some("word".into()),
            ..Default::default()
        },
        ExportFilter {
            query: Some("елкой".into()),
            channel_id: Some(5),
            ..Default::default()
        },
        ExportFilter {
            limit: Some(2_345),
            with_history: true,
            ..Default::default()
        },
        ExportFilter {
            media_root: Some("/var/lib/tgparser".into()),
            ..Default::default()
        },
        ExportFilter {
            query: Some("word".into()),
            with_history: true,
            media_root: Some("/state 'dir'".into()),
            ..Default::default()
        },
    ];
    for f in &filters {
        let mut lines: Vec<serde_json::Value> = Vec::new();
        let mut batches = 0;
        store
            .export_jsonl(f, |text, n| {
                let text = std::str::from_utf8(text).unwrap();
                assert!(text.ends_with('\n'));
                let before = lines.len();
                lines.extend(text.lines().map(|l| serde_json::from_str(l).unwrap()));
                assert_eq!(lines.len() - before, n as usize);
                batches += 1;
                true
            })
            .await
            .unwrap();
        let mut records: Vec<serde_json::Value> = Vec::new();
        store
            .export(f, |r| {
                records.push(serde_json::to_value(&r).unwrap());
                true
            })
            .await
            .unwrap();
        assert!(!records.is_empty(), "{f:?}");
        assert_eq!(lines.len(), records.len(), "{f:?}");
        for (l, r) in lines.iter().zip(&records) {
            assert_eq!(l, r, "{f:?}");
        }
        if let Some(root) = &f.media_root {
            let stored = lines
                .iter()
                .find(|l| l["channel_id"] == 5 && l["id"] == 31)
                .map(|l| (l["media_path"].clone(), l["media_state"].clone()));
            if f.query.is_none() {
                assert_eq!(
                    stored,
                    Some((
                        serde_json::json!(format!("{root}/media/ab/cd/abcd.jpg")),
                        serde_json::json!("done")
                    ))
                );
            }
            assert!(lines.iter().all(|l| l.get("media_path").is_some()));
            let failed = lines.iter().find(|l| l["channel_id"] == 9 && l["id"] == 93);
            if let Some(l) = failed {
                assert_eq!(
                    (&l["media_path"], &l["media_state"]),
                    (&serde_json::Value::Null, &serde_json::json!("failed"))
                );
            }
        } else {
            assert!(lines.iter().all(|l| l.get("media_path").is_none()));
        }
        if f.limit.is_some() {
            assert_eq!(lines.len(), 2_345);
            assert!(batches >= 2, "{batches}");
        }
    }
    store.close().await;
}
