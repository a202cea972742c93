//! The channel database as a file operators meet: the schema docs/SCHEMA.md documents, and what
//! operator commands say of a database that is missing, empty (a first start stopped early) or
//! another program's, without ever creating or writing one by reading it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use common::*;

/// Tables and views with their columns, as the migrations created them.
fn schema_of(env: &Env) -> BTreeMap<String, BTreeSet<String>> {
    let names = sql(
        env,
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') \
         AND name NOT LIKE 'sqlite_%' AND name != '_sqlx_migrations' \
         AND name NOT LIKE 'messages_fts_%' ORDER BY name",
    );
    names
        .lines()
        .map(|t| {
            let cols = sql(
                env,
                &format!("SELECT name FROM pragma_table_info('{t}') ORDER BY cid"),
            );
            (t.to_string(), cols.lines().map(str::to_string).collect())
        })
        .collect()
}

/// Tables and views with their columns, as docs/SCHEMA.md documents them: a "### `name`"
/// heading, then a table whose rows start with "| `column` |".
fn schema_documented() -> BTreeMap<String, BTreeSet<String>> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/SCHEMA.md")).unwrap();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        if let Some(h) = line.strip_prefix("### `") {
            let name = h.trim_end_matches('`').to_string();
            out.entry(name.clone()).or_default();
            current = Some(name);
        } else if line.starts_with("## ") {
            current = None;
        } else if let (Some(t), Some(rest)) = (&current, line.strip_prefix("| `"))
            && let Some((col, _)) = rest.split_once('`')
        {
            out.get_mut(t).unwrap().insert(col.to_string());
        }
    }
    out
}

#[test]
fn the_schema_doc_lists_exactly_the_tables_views_and_columns_the_migrations_create() {
    let env = Env::new();
    env.write_config("");
    env.keygen();
    let out = env.run(&["migrate"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let actual = schema_of(&env);
    let documented = schema_documented();
    assert!(actual.contains_key("v_posts") && actual.contains_key("messages"));
    let names = |m: &BTreeMap<String, BTreeSet<String>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&documented), names(&actual), "tables and views");
    for (t, cols) in &actual {
        assert_eq!(&documented[t], cols, "columns of {t}");
    }
}

#[test]
fn operator_commands_refuse_a_missing_database_clearly() {
    let env = Env::new();
    env.write_config("");
    env.keygen();
    for args in [
        &["search", "x"][..],
        &["export"],
        &["stats"],
        &["backup", "b.db"],
    ] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(78), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("there is no database at"),
            "{}",
            text(&out)
        );
    }
}

/// A first start killed after creating the database file but before its first migration
/// leaves a database with no tables; `check` called it "not a tgparser database" though the
/// next start (or `migrate`) makes it one.
#[test]
fn a_database_left_without_tables_by_a_killed_first_start_is_called_empty_and_migrate_fixes_it() {
    let env = Env::new();
    env.write_config("");
    env.keygen();
    let db = env.state_dir().join("tgparser.db");
    std::fs::create_dir_all(env.state_dir()).unwrap();
    let made = Command::new("sqlite3")
        .arg(&db)
        .arg("PRAGMA journal_mode = WAL;")
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(text(&out).contains("has no tables yet"), "{}", text(&out));
    assert!(
        text(&out).contains("run `tgparser migrate`"),
        "{}",
        text(&out)
    );
    assert_eq!(env.run(&["migrate"]).status.code(), Some(0));
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // A database of another program is still refused as one.
    std::fs::remove_file(&db).unwrap();
    let _ = std::fs::remove_file(env.state_dir().join("tgparser.db-wal"));
    let _ = std::fs::remove_file(env.state_dir().join("tgparser.db-shm"));
    let made = Command::new("sqlite3")
        .arg(&db)
        .arg("CREATE TABLE notes (x);")
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let out = env.run(&["check"]);
    assert!(
        text(&out).contains("not a tgparser database"),
        "{}",
        text(&out)
    );
}

#[test]
fn channels_list_no_longer_creates_or_writes_the_database() {
    let env = Env::new();
    env.write_config("");
    env.keygen();
    let db = env.state_dir().join("tgparser.db");
    let out = env.run(&["channels", "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("no channels yet"), "{}", text(&out));
    assert!(!db.exists(), "a listing created the database");

    assert_eq!(env.run(&["migrate"]).status.code(), Some(0));
    sql_write(
        &env,
        "INSERT INTO channels (id, username, title, added_at, updated_at) VALUES (1, 'listed', 'Listed', 0, 0);",
    );
    let before = std::fs::read(&db).unwrap();
    let out = env.run(&["channels", "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("@listed"), "{}", text(&out));
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "a listing wrote the database"
    );
}
