//! Every parser of outside data, as a function of arbitrary bytes that panics when an
//! invariant breaks: the targets of the fuzz campaign (`fuzz/`, cargo-fuzz on nightly) and of
//! `tests/fuzz_corpus.rs`, which runs each target's saved corpus and a few thousand random
//! inputs in every `cargo test`, so a regression is caught without nightly.
//!
//! A target returns normally for input it refuses: refusing is what outside data usually
//! deserves. Only a panic (or a broken invariant, asserted here) is a finding.

use crate::store::{invite_hash, normalize_ref};
use crate::text::{Query, index_words, snippet, term_texts};

/// The targets, by name: what `fuzz/fuzz_targets/*.rs` and the corpus test call.
pub const TARGETS: [&str; 9] = [
    "bot_command",
    "bot_update",
    "subscription",
    "search_query",
    "search_reply",
    "channel_ref",
    "config",
    "sealed_record",
    "tl_message",
];

/// Runs target `name` on `data`. `valid_html`: Telegram's HTML check (the fake Bot API's
/// parser), returning the visible text or why Telegram would refuse it.
pub fn run(name: &str, data: &[u8], valid_html: &dyn Fn(&str) -> Result<String, String>) {
    let text = String::from_utf8_lossy(data);
    match name {
        "bot_command" => bot_command(&text),
        "bot_update" => bot_update(data),
        "subscription" => subscription(&text),
        "search_query" => search_query(&text),
        "search_reply" => search_reply(&text, valid_html),
        "channel_ref" => channel_ref(&text),
        "config" => config(&text),
        "sealed_record" => sealed_record(data),
        "tl_message" => tl_message(data),
        other => panic!("no fuzz target {other}"),
    }
}

/// A message to the bot, read as a command (in a private chat and in a group).
fn bot_command(text: &str) {
    for group in [false, true] {
        if let Some(p) = crate::bot::commands::parse(text, "tgparser_bot", group) {
            // What it read is part of what was sent.
            assert!(text.contains(p.name.as_str()) || text.to_lowercase().contains(&p.name));
        }
    }
}

/// An update as the Bot API sends it (JSON), read as the bot reads it: its chat's place in
/// line, a message's command, a press's callback data (which must read back as written).
fn bot_update(data: &[u8]) {
    use teloxide::types::{Update, UpdateKind};
    let Ok(update) = serde_json::from_slice::<Update>(data) else {
        return;
    };
    let _ = crate::bot::chat_key(&update);
    match &update.kind {
        UpdateKind::Message(m) => {
            if let Some(t) = m.text() {
                bot_command(t);
            }
        }
        UpdateKind::CallbackQuery(q) => {
            if let Some(p) = q.data.as_deref().and_then(crate::bot::press::Press::parse) {
                assert_eq!(crate::bot::press::Press::parse(&p.data()), Some(p));
            }
        }
        _ => {}
    }
}

/// `/subscribe` arguments: words (each kept, in lower case) or a regex that compiles.
fn subscription(text: &str) {
    if let Ok(w) = crate::bot::subs::parse(text) {
        match w.kind {
            "regex" => assert!(crate::store::compile_regex(&w.pattern).is_ok()),
            _ => {
                assert!(!w.pattern.is_empty());
                assert!(w.pattern.split(' ').all(|p| !p.is_empty()));
            }
        }
    }
}

/// A search: parsed, rendered as FTS5 (every term quoted, balanced), and matched against the
/// query's own text without a panic.
fn search_query(text: &str) {
    let Ok(q) = Query::parse(text) else { return };
    let fts = q.expr.to_fts5();
    assert_eq!(
        fts.matches('"').count() % 2,
        0,
        "unbalanced quotes in {fts:?}"
    );
    let _ = q.expr.matches(&term_texts(text));
}

/// A post found by a search, as the bot shows it: valid Telegram HTML within 4,096 units.
/// The input is a query and a post text, split at the first newline.
fn search_reply(text: &str, valid_html: &dyn Fn(&str) -> Result<String, String>) {
    let (query, post) = text.split_once('\n').unwrap_or((text, text));
    let Ok(q) = Query::parse(query) else { return };
    let cut = snippet(post, &q.expr, crate::store::SNIPPET_UNITS);
    let html = crate::bot::search::snippet_html(&cut);
    let visible = valid_html(&html).unwrap_or_else(|why| panic!("{why}: {html:?}"));
    assert!(visible.encode_utf16().count() <= 4096);
}

/// A channel reference or invite link as a user types it.
fn channel_ref(text: &str) {
    let _ = normalize_ref(text);
    if let Some(h) = invite_hash(text) {
        assert!(!h.is_empty());
    }
}

/// A configuration file.
fn config(text: &str) {
    let _ = crate::config::Config::from_toml(text, None, &[], None);
}

/// A sealed record read back from the database: refused unless it is ours.
fn sealed_record(data: &[u8]) {
    let vault = crate::vault::Vault::new(&crate::vault::VaultKey::from_bytes(&[7; 32]));
    let ctx = crate::vault::SealContext {
        table: "fuzz",
        row: "1",
        purpose: "fuzz",
    };
    assert!(
        vault.open(ctx, data).is_err(),
        "a record no one sealed opened"
    );
}

/// A message as an MTProto answer holds it (any TL value that decodes), converted to a row.
fn tl_message(data: &[u8]) {
    use grammers_client::tl::{Deserializable, enums};
    if let Ok(m) = enums::Message::from_bytes(data)
        && let Some(row) = crate::parser::convert::message_row(&m)
    {
        let _ = index_words(&row.text);
    }
}
