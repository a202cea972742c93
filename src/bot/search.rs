//! `/search`: FTS over the archive, five posts a page, newest first, the match in bold, a link
//! to each post, and buttons to page through. A page's query is kept in memory under a short
//! id (callback data holds at most 64 bytes); after a restart old buttons say so.

use std::collections::VecDeque;
use std::sync::Mutex;

use teloxide::prelude::*;
use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup, ParseMode};

use super::press::Press;
use super::{App, BotError};
use crate::store::{Hit, MATCH_END, MATCH_START, SearchError, SearchFilter};

pub const PAGE_SIZE: u32 = 5;
/// Searches remembered for paging.
const REMEMBERED: usize = 1000;
/// UTF-16 units of a snippet shown (Telegram counts UTF-16 units, 4096 per message, for five
/// posts; the store's snippets are already cut to `store::SNIPPET_UNITS`).
const SNIPPET_MAX: usize = 400;
/// UTF-16 units of the query echoed in an answer.
const QUERY_SHOWN: usize = 100;

/// `s` cut to `max` UTF-16 units, "…" marking a cut.
pub fn cut_units(s: &str, max: usize) -> String {
    let mut used = 0;
    let mut out = String::new();
    for c in s.chars() {
        if used + c.len_utf16() > max.saturating_sub(1) && s.encode_utf16().count() > max {
            out.push('…');
            return out;
        }
        used += c.len_utf16();
        out.push(c);
    }
    out
}

#[derive(Default)]
pub struct Searches {
    next: u64,
    queries: VecDeque<(u64, String)>,
}

impl Searches {
    pub fn remember(m: &Mutex<Searches>, query: &str) -> u64 {
        let mut s = m.lock().unwrap_or_else(|p| p.into_inner());
        s.next += 1;
        let id = s.next;
        s.queries.push_back((id, query.to_string()));
        while s.queries.len() > REMEMBERED {
            s.queries.pop_front();
        }
        id
    }

    pub fn get(m: &Mutex<Searches>, id: u64) -> Option<String> {
        let s = m.lock().unwrap_or_else(|p| p.into_inner());
        s.queries
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, q)| q.clone())
    }
}

pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// The snippet as Telegram HTML: escaped, matches in bold, at most `SNIPPET_MAX` UTF-16 units
/// of text (a bold run cut short is closed).
pub(crate) fn snippet_html(s: &str) -> String {
    let mut out = String::new();
    let mut open = false;
    let mut used = 0;
    for c in s.chars() {
        if c != MATCH_START && c != MATCH_END {
            used += c.len_utf16();
            if used > SNIPPET_MAX {
                out.push('…');
                break;
            }
        }
        match c {
            MATCH_START => {
                out.push_str("<b>");
                open = true;
            }
            MATCH_END => {
                out.push_str("</b>");
                open = false;
            }
            c => out.push_str(&escape_html(&c.to_string())),
        }
    }
    if open {
        out.push_str("</b>");
    }
    out
}

fn when(ts: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(ts.max(0) as u64);
    let s = crate::time::rfc3339(t, false);
    // 2026-11-23T12:34:56Z -> 2026-11-23 12:34 UTC
    format!(
        "{} {} UTC",
        &s[..10.min(s.len())],
        s.get(11..16).unwrap_or("")
    )
}

/// Photos Telegram takes by upload (core.telegram.org/bots/api#sendphoto: 10 MB at most).
const PHOTO_MAX: i64 = 10 * 1024 * 1024;

/// `photo`: the number of its photo button.
fn hit_html(h: &Hit, photo: Option<usize>) -> String {
    let name = match &h.username {
        Some(u) => format!("{} (@{})", escape_html(&h.title), escape_html(u)),
        None => escape_html(&h.title),
    };
    format!(
        "<b>{name}</b> · {}{}{}\n{}\n<a href=\"{}\">open the post</a>\n\n",
        when(h.date),
        if h.deleted { " · deleted" } else { "" },
        photo.map(|n| format!(" · 📷 {n}")).unwrap_or_default(),
        snippet_html(&h.snippet),
        escape_html(&h.link())
    )
}

/// A page of results as HTML and its buttons.
pub async fn page(
    app: &App,
    id: u64,
    query: &str,
    page: u32,
) -> Result<(String, Option<InlineKeyboardMarkup>), BotError> {
    let found = match app
        .store
        .search(
            query,
            &SearchFilter {
                limit: PAGE_SIZE + 1,
                offset: page * PAGE_SIZE,
                ..Default::default()
            },
            true,
        )
        .await
    {
        Ok(f) => f,
        Err(SearchError::Query { reason, .. }) => {
            return Ok((
                format!(
                    "I cannot read that search: {}.\nUse words, \"a phrase\", prefix*, AND, OR, NOT.",
                    escape_html(&reason)
                ),
                None,
            ));
        }
        Err(SearchError::Store(e)) => return Err(e.into()),
    };
    let hits = found.hits;
    let note = if found.as_words {
        "That is not search syntax, so I looked for the words themselves.\n"
    } else {
        ""
    };
    if hits.is_empty() {
        return Ok((
            if page == 0 {
                format!(
                    "{note}Nothing found for {}.",
                    escape_html(&cut_units(query, QUERY_SHOWN))
                )
            } else {
                "No more results.".into()
            },
            None,
        ));
    }
    let more = hits.len() > PAGE_SIZE as usize;
    let mut text = format!(
        "{note}Results {}–{} for <b>{}</b>:\n\n",
        page * PAGE_SIZE + 1,
        page * PAGE_SIZE + hits.len().min(PAGE_SIZE as usize) as u32,
        escape_html(&cut_units(query, QUERY_SHOWN))
    );
    // A button per result whose photo is stored: pressed, the bot sends it.
    let mut photos = Vec::new();
    for (i, h) in hits.iter().take(PAGE_SIZE as usize).enumerate() {
        let photo = app
            .store
            .media_photo(h.channel_id, h.id)
            .await?
            .is_some_and(|(_, size)| size <= PHOTO_MAX);
        if photo {
            photos.push(InlineKeyboardButton::callback(
                format!("📷 {}", i + 1),
                Press::Photo {
                    channel: h.channel_id,
                    post: h.id,
                }
                .data(),
            ));
        }
        text.push_str(&hit_html(h, photo.then_some(i + 1)));
    }
    let mut row = Vec::new();
    if page > 0 {
        row.push(InlineKeyboardButton::callback(
            "◀ Newer",
            Press::Search {
                search: id,
                page: page - 1,
            }
            .data(),
        ));
    }
    if more {
        row.push(InlineKeyboardButton::callback(
            "Older ▶",
            Press::Search {
                search: id,
                page: page + 1,
            }
            .data(),
        ));
    }
    let rows: Vec<_> = [photos, row]
        .into_iter()
        .filter(|r| !r.is_empty())
        .collect();
    let kb = (!rows.is_empty()).then(|| InlineKeyboardMarkup::new(rows));
    Ok((text, kb))
}

pub async fn search(bot: &Bot, app: &App, msg: &Message, query: &str) -> Result<(), BotError> {
    if query.trim().is_empty() {
        return super::handlers::send(
            bot,
            app,
            msg.chat.id,
            "What should I look for?\nUsage: /search <words | \"a phrase\" | prefix* | AND OR NOT>",
        )
        .await;
    }
    let id = Searches::remember(&app.searches, query.trim());
    let (text, kb) = page(app, id, query.trim(), 0).await?;
    let mut req = bot
        .send_message(msg.chat.id, text)
        .parse_mode(ParseMode::Html);
    if let Some(kb) = kb {
        req = req.reply_markup(kb);
    }
    app.call(Some(msg.chat.id), req).await.map(|_| ())
}

/// A press on "Older" / "Newer" (the presser's role is checked by `handlers::on_callback`).
pub async fn on_callback(
    bot: Bot,
    q: CallbackQuery,
    app: std::sync::Arc<App>,
    press: Press,
) -> Result<(), BotError> {
    let answer = |text: &'static str| {
        let mut r = bot.answer_callback_query(q.id.clone());
        if !text.is_empty() {
            r = r.text(text);
        }
        let app = app.clone();
        async move { app.call(None, r).await.map(|_| ()) }
    };
    let Some(msg) = q.regular_message() else {
        return answer("This button is not mine.").await;
    };
    let (id, n) = match press {
        Press::Search { search, page } => (search, page),
        Press::Photo { channel, post } => {
            return match send_photo(&bot, &app, msg.chat.id, channel, post).await? {
                None => answer("").await,
                Some(why) => answer(why).await,
            };
        }
        Press::Subscriptions { .. } => return answer("This button is not mine.").await,
    };
    let Some(query) = Searches::get(&app.searches, id) else {
        return answer("This search expired; send /search again.").await;
    };
    let (text, kb) = match page(&app, id, &query, n).await {
        Ok(page) => page,
        Err(e) => {
            answer("That page cannot be shown now; try again in a moment.").await?;
            return Err(e);
        }
    };
    let mut req = bot
        .edit_message_text(msg.chat.id, msg.id, text)
        .parse_mode(ParseMode::Html);
    if let Some(kb) = kb {
        req = req.reply_markup(kb);
    }
    // The press is answered even when the edit fails, or the button spins until the client
    // gives up.
    let edited = app.edit(Some(msg.chat.id), req).await;
    answer("").await?;
    edited
}

/// Sends the stored photo of a post to `chat`, or says why not.
async fn send_photo(
    bot: &Bot,
    app: &App,
    chat: teloxide::types::ChatId,
    channel: i64,
    post: i64,
) -> Result<Option<&'static str>, BotError> {
    let Some((path, _)) = app.store.media_photo(channel, post).await? else {
        return Ok(Some("That photo is not stored (any more)."));
    };
    let full = app
        .store
        .path()
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join(&path);
    if !full.is_file() {
        tracing::warn!(path = %full.display(), "a stored photo is missing; `tgparser media verify` fetches it again");
        return Ok(Some("That photo's file is missing from the archive."));
    }
    let username = app
        .store
        .find_channel(&channel.to_string())
        .await?
        .and_then(|c| c.username);
    let caption = crate::store::post_link(channel, username.as_deref(), post);
    let req = bot
        .send_photo(chat, teloxide::types::InputFile::file(full))
        .caption(caption);
    app.call(Some(chat), req).await?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_escaped_and_matches_bold_even_when_cut() {
        let s = format!("a <b> & {MATCH_START}café{MATCH_END} \"x\"");
        assert_eq!(
            snippet_html(&s),
            "a &lt;b&gt; &amp; <b>café</b> &quot;x&quot;"
        );
        let long = format!("{MATCH_START}{}{MATCH_END}", "я".repeat(SNIPPET_MAX + 10));
        let h = snippet_html(&long);
        assert!(h.ends_with("…</b>"), "{}", &h[h.len() - 20..]);
    }

    #[test]
    fn snippets_of_astral_letters_are_cut_in_utf16_units_not_characters() {
        let long = format!("{MATCH_START}x{MATCH_END} {}", "😀".repeat(SNIPPET_MAX));
        let h = snippet_html(&long);
        let units = h
            .replace("<b>", "")
            .replace("</b>", "")
            .encode_utf16()
            .count();
        assert!(units <= SNIPPET_MAX + 1, "{units}");
        assert_eq!(cut_units(&"😀".repeat(100), 10).encode_utf16().count(), 9);
        assert_eq!(cut_units("short", 10), "short");
    }

    #[test]
    fn dates_read_as_utc_minutes() {
        assert_eq!(when(1_700_000_000), "2023-11-14 22:13 UTC");
    }
}
