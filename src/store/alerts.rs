//! Alerts: new posts matched against the active subscriptions in the transaction that stores
//! them, each match written to the outbox with a dedupe key — so a post is matched exactly when
//! it is stored, and a crash either keeps both the post and its alerts or neither.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::{MessageRow, Store, StoreError};
use crate::text::{Expr, Query, term_texts};

/// A subscription ready to match.
struct Compiled {
    id: i64,
    chat_id: i64,
    channel_id: Option<i64>,
    pattern: String,
    rule: Rule,
}

enum Rule {
    /// Every word, as search reads words (`text::Query::words`): whole words in every script,
    /// folded as the index folds them, a word of punctuated parts (`covid-19`) as a phrase, a
    /// Chinese, Japanese or Korean word wherever it stands in a run.
    Words(Expr),
    Regex(regex::Regex),
}

/// The active subscriptions, compiled.
pub struct Matcher {
    subs: Vec<Compiled>,
}

/// Compiles a subscription's regex the way alerts use it: case-insensitive, size-bounded.
pub fn compile_regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
}

impl Matcher {
    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// The subscriptions a post of `channel_id` with `text` matches: (id, chat, pattern).
    fn matches<'a>(&'a self, channel_id: i64, text: &str) -> Vec<&'a Compiled> {
        let mut terms: Option<Vec<String>> = None;
        self.subs
            .iter()
            .filter(|s| s.channel_id.is_none_or(|c| c == channel_id))
            .filter(|s| match &s.rule {
                Rule::Regex(r) => r.is_match(text),
                Rule::Words(expr) => expr.matches(terms.get_or_insert_with(|| term_texts(text))),
            })
            .collect()
    }

    /// Whether a subscription to `words` would alert a post with `text` (what `/subscribe`
    /// promises; the tests hold it to the index's answer).
    pub fn words_match(words: &str, text: &str) -> bool {
        Query::words(words).is_some_and(|e| e.matches(&term_texts(text)))
    }
}

/// The compiled subscriptions, rebuilt after any change to them.
#[derive(Default)]
pub struct AlertCache {
    generation: AtomicU64,
    current: RwLock<Option<(u64, Arc<Matcher>)>>,
    /// Wakes the outbox worker when alerts were queued (it also polls, for other writers).
    pub(super) wake: tokio::sync::Notify,
}

impl AlertCache {
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

impl Store {
    /// The active subscriptions of users who may use the bot, compiled (cached).
    pub async fn matcher(&self) -> Result<Arc<Matcher>, StoreError> {
        let generation = self.alerts.generation.load(Ordering::SeqCst);
        if let Some((g, m)) = self
            .alerts
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            && *g == generation
        {
            return Ok(m.clone());
        }
        let rows: Vec<(i64, i64, Option<i64>, String, String)> = sqlx::query_as(
            "SELECT s.id, s.chat_id, s.channel_id, s.kind, s.pattern FROM subscriptions s \
             JOIN bot_users u ON u.user_id = s.user_id \
             WHERE s.active = 1 AND u.role != 'denied' AND u.blocked_bot = 0",
        )
        .fetch_all(self.reader())
        .await?;
        let mut subs = Vec::with_capacity(rows.len());
        for (id, chat_id, channel_id, kind, pattern) in rows {
            let rule = if kind == "regex" {
                match compile_regex(&pattern) {
                    Ok(r) => Rule::Regex(r),
                    Err(e) => {
                        // Checked when subscribed; a row edited by hand may still be wrong.
                        tracing::warn!(subscription = id, error = %e, "a subscription's regex does not compile; skipped");
                        continue;
                    }
                }
            } else {
                match Query::words(&pattern) {
                    Some(e) => Rule::Words(e),
                    None => {
                        tracing::warn!(
                            subscription = id,
                            "a subscription has no words to match; skipped"
                        );
                        continue;
                    }
                }
            };
            subs.push(Compiled {
                id,
                chat_id,
                channel_id,
                pattern,
                rule,
            });
        }
        let m = Arc::new(Matcher { subs });
        *self
            .alerts
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some((generation, m.clone()));
        Ok(m)
    }

    /// The subscriptions changed: the next match recompiles them.
    pub fn subscriptions_changed(&self) {
        self.alerts.invalidate();
    }
}

/// Ids among `rows` that `channel_id` already has stored (edits and replays are not new posts).
pub(super) async fn existing_ids(
    tx: &mut SqliteConnection,
    channel_id: i64,
    rows: &[MessageRow],
) -> Result<std::collections::HashSet<i32>, StoreError> {
    let mut out = std::collections::HashSet::new();
    for chunk in rows.chunks(500) {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("SELECT id FROM messages WHERE channel_id = ");
        q.push_bind(channel_id).push(" AND id IN (");
        let mut sep = q.separated(", ");
        for r in chunk {
            sep.push_bind(r.id);
        }
        q.push(")");
        let ids: Vec<i32> = q.build_query_scalar().fetch_all(&mut *tx).await?;
        out.extend(ids);
    }
    Ok(out)
}

/// Writes an outbox row for each subscription each new post matches. Returns how many.
pub(super) async fn enqueue_matches(
    tx: &mut SqliteConnection,
    matcher: &Matcher,
    channel_id: i64,
    new_rows: &[&MessageRow],
    now: i64,
) -> Result<usize, StoreError> {
    let mut n = 0;
    for row in new_rows {
        if row.kind != "post" || row.text.is_empty() {
            continue;
        }
        for s in matcher.matches(channel_id, &row.text) {
            let payload = serde_json::json!({
                "subscription_id": s.id,
                "pattern": s.pattern,
                "channel_id": channel_id,
                "message_id": row.id,
                "date": row.date,
            });
            n += sqlx::query(
                "INSERT OR IGNORE INTO outbox (dedupe_key, chat_id, kind, payload, next_attempt_at, created_at, created_ms) \
                 VALUES (?, ?, 'alert', ?, ?, ?, ?)",
            )
            .bind(format!("alert:{}:{channel_id}:{}", s.id, row.id))
            .bind(s.chat_id)
            .bind(payload.to_string())
            .bind(now)
            .bind(now)
            .bind(crate::time::unix_millis())
            .execute(&mut *tx)
            .await?
            .rows_affected() as usize;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(subs: Vec<(Option<i64>, Rule)>) -> Matcher {
        Matcher {
            subs: subs
                .into_iter()
                .enumerate()
                .map(|(i, (channel_id, rule))| Compiled {
                    id: i as i64 + 1,
                    chat_id: 9,
                    channel_id,
                    pattern: String::new(),
                    rule,
                })
                .collect(),
        }
    }

    #[test]
    fn words_match_whole_words_in_any_order_and_regexes_ignore_case() {
        let matcher = m(vec![
            (None, Rule::Words(Query::words("bitcoin etf").unwrap())),
            (
                Some(5),
                Rule::Regex(compile_regex("rate (cut|hike)").unwrap()),
            ),
            (None, Rule::Words(Query::words("ученые").unwrap())),
            (None, Rule::Words(Query::words("covid-19").unwrap())),
        ]);
        let ids =
            |ch, t: &str| -> Vec<i64> { matcher.matches(ch, t).iter().map(|s| s.id).collect() };
        assert_eq!(ids(1, "ETF approved for Bitcoin!"), vec![1]);
        assert_eq!(ids(1, "bitcoinetf"), Vec::<i64>::new(), "whole words only");
        assert_eq!(ids(1, "bitcoin only"), Vec::<i64>::new(), "every word");
        assert_eq!(ids(5, "Fed: RATE HIKE ahead"), vec![2]);
        assert_eq!(
            ids(6, "Fed: rate hike ahead"),
            Vec::<i64>::new(),
            "other channel"
        );
        assert_eq!(ids(1, "Учёные открыли"), vec![3], "ё is read as е");
        assert_eq!(ids(1, "New COVID-19 rules"), vec![4]);
    }
}
