//! `/subscribe`, `/subscriptions`, `/unsubscribe`: keyword alerts a user holds. A subscription is
//! every word of a list (any order, case-insensitive) or a regular expression, in every channel
//! or one.

use teloxide::prelude::*;
use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup};

use super::handlers::send;
use super::press::Press;
use super::{App, BotError};
use crate::store::{MAX_PER_USER, Subscription};

/// What `/subscribe` understood.
#[derive(Debug, PartialEq, Eq)]
pub struct Wanted {
    pub kind: &'static str,
    /// Words: lower case, single spaces, each once. Regex: as written, between the slashes.
    pub pattern: String,
    /// The `in @channel` part, as written.
    pub channel: Option<String>,
}

pub const USAGE: &str =
    "Usage: /subscribe <words> or /subscribe /regex/, optionally followed by in @channel";

use crate::store::compile_regex as compile;

/// Reads `/subscribe` arguments; `Err` is the answer to give.
pub fn parse(args: &str) -> Result<Wanted, String> {
    let args = args.trim();
    if args.is_empty() {
        return Err(format!("What should I watch for?\n{USAGE}"));
    }
    let words: Vec<&str> = args.split_whitespace().collect();
    let (body, channel) = match words.as_slice() {
        [rest @ .., kw, ch] if *kw == "in" && !rest.is_empty() => {
            // Cut where that `in` starts, whatever whitespace (tabs, several spaces) is around
            // it: the words before it are all kept.
            let cut = kw.as_ptr() as usize - args.as_ptr() as usize;
            (args[..cut].trim(), Some(ch.to_string()))
        }
        _ => (args, None),
    };
    if body.len() >= 2 && body.starts_with('/') && body.ends_with('/') {
        let pattern = &body[1..body.len() - 1];
        if pattern.is_empty() {
            return Err(format!("The regex between the slashes is empty.\n{USAGE}"));
        }
        if let Err(e) = compile(pattern) {
            return Err(match e {
                regex::Error::Syntax(s) => format!("That regex does not compile:\n{s}"),
                regex::Error::CompiledTooBig(_) => {
                    "That regex is too large; make it simpler.".to_string()
                }
                other => format!("That regex does not compile: {other}"),
            });
        }
        return Ok(Wanted {
            kind: "regex",
            pattern: pattern.to_string(),
            channel,
        });
    }
    let mut list: Vec<String> = Vec::new();
    for w in body.split_whitespace() {
        let w = w.to_lowercase();
        if !list.contains(&w) {
            list.push(w);
        }
    }
    if list.is_empty() {
        return Err(format!("What should I watch for?\n{USAGE}"));
    }
    Ok(Wanted {
        kind: "words",
        pattern: list.join(" "),
        channel,
    })
}

fn describe(s: &Subscription) -> String {
    let what = if s.kind == "regex" {
        format!("/{}/", s.pattern)
    } else {
        s.pattern.clone()
    };
    let r#where = s
        .channel_name
        .as_deref()
        .map_or_else(|| "every channel".to_string(), |c| c.to_string());
    format!("{what} ({where})")
}

/// Subscriptions per page of `/subscriptions`: with each line held to [`LINE_UNITS`], a page
/// stays well inside Telegram's 4,096 (a user may hold 50, each with a pattern of hundreds of
/// characters: listed whole, they did not fit, and the user could neither see nor remove them).
const PER_PAGE: usize = 10;
/// UTF-16 units (what Telegram counts) of one line of the list, at most.
const LINE_UNITS: usize = 300;

/// Page `page` (from 0; past the end, the last) of the list, with a remove button per
/// subscription and buttons to the pages around it.
fn listing(subs: &[Subscription], page: usize) -> (String, Option<InlineKeyboardMarkup>) {
    if subs.is_empty() {
        return (
            "You have no subscriptions. /subscribe <words> adds one.".into(),
            None,
        );
    }
    let pages = subs.len().div_ceil(PER_PAGE);
    let page = page.min(pages - 1);
    let mut text = String::from("Your subscriptions (press one to remove it):\n");
    if pages > 1 {
        text = format!(
            "Your subscriptions, page {} of {} (press one to remove it):\n",
            page + 1,
            pages
        );
    }
    let mut rows = Vec::new();
    for (i, s) in subs.iter().enumerate().skip(page * PER_PAGE).take(PER_PAGE) {
        let line = super::search::cut_units(&describe(s), LINE_UNITS);
        text.push_str(&format!("{}. {line}\n", i + 1));
        let label: String = line.chars().take(40).collect();
        rows.push(vec![InlineKeyboardButton::callback(
            format!("✖ {}. {label}", i + 1),
            Press::Subscriptions {
                remove: Some(s.id),
                page,
            }
            .data(),
        )]);
    }
    let mut nav = Vec::new();
    if page > 0 {
        nav.push(InlineKeyboardButton::callback(
            "‹ Previous",
            Press::Subscriptions {
                remove: None,
                page: page - 1,
            }
            .data(),
        ));
    }
    if page + 1 < pages {
        nav.push(InlineKeyboardButton::callback(
            "Next ›",
            Press::Subscriptions {
                remove: None,
                page: page + 1,
            }
            .data(),
        ));
    }
    if !nav.is_empty() {
        rows.push(nav);
    }
    (text, Some(InlineKeyboardMarkup::new(rows)))
}

pub async fn subscribe(
    bot: &Bot,
    app: &App,
    msg: &Message,
    user_id: i64,
    args: &str,
) -> Result<(), BotError> {
    let wanted = match parse(args) {
        Ok(w) => w,
        Err(answer) => return send(bot, app, msg.chat.id, answer).await,
    };
    let channel = match &wanted.channel {
        None => None,
        Some(r) => match app.store.find_channel(r).await? {
            Some(c) if c.state != "removed" => Some(c),
            _ => {
                return send(
                    bot,
                    app,
                    msg.chat.id,
                    format!("{r} is not among the followed channels; /channels lists them."),
                )
                .await;
            }
        },
    };
    let added = app
        .store
        .subscribe(
            user_id,
            msg.chat.id.0,
            wanted.kind,
            &wanted.pattern,
            channel.as_ref().map(|c| c.id),
        )
        .await?;
    let r#where = channel
        .as_ref()
        .map_or_else(|| "every channel".to_string(), |c| c.display_name());
    let what = if wanted.kind == "regex" {
        format!("posts matching /{}/", wanted.pattern)
    } else {
        format!("posts with all of: {}", wanted.pattern)
    };
    let answer = match added {
        None => format!(
            "You already have {MAX_PER_USER} subscriptions, the most one person may hold. /unsubscribe removes some."
        ),
        Some((_, false)) => format!("You already get alerts for {what} in {where}."),
        Some((_, true)) => format!("Subscribed: alerts for {what} in {where}."),
    };
    send(bot, app, msg.chat.id, answer).await
}

pub async fn list(bot: &Bot, app: &App, msg: &Message, user_id: i64) -> Result<(), BotError> {
    let subs = app.store.subscriptions_of(user_id).await?;
    let (text, kb) = listing(&subs, 0);
    let mut req = bot.send_message(msg.chat.id, text);
    if let Some(kb) = kb {
        req = req.reply_markup(kb);
    }
    app.call(Some(msg.chat.id), req).await.map(|_| ())
}

/// A press on "✖ n" (`u:<subscription>:<page>`; `u:<subscription>` on lists sent before
/// pages) or on a page button (`ul:<page>`). Removes the subscription if it is the presser's,
/// redraws the page, and always answers the press, even when the redraw fails.
pub async fn on_press(
    bot: &Bot,
    app: &App,
    q: &CallbackQuery,
    user_id: i64,
    remove: Option<i64>,
    page: usize,
) -> Result<(), BotError> {
    let done = press(bot, app, q, user_id, remove, page).await;
    let said = match &done {
        Ok(said) => *said,
        Err(_) => "That did not work now; try again in a moment.",
    };
    super::handlers::answer_press(bot, app, q, said).await?;
    done.map(|_| ())
}

/// What a press does; returns what to tell the presser.
async fn press(
    bot: &Bot,
    app: &App,
    q: &CallbackQuery,
    user_id: i64,
    remove: Option<i64>,
    page: usize,
) -> Result<&'static str, BotError> {
    let mut said = "";
    if let Some(id) = remove {
        let removed = app.store.unsubscribe(user_id, id).await?;
        if removed {
            app.store
                .audit(
                    &format!("bot:{user_id}"),
                    "unsubscribe",
                    serde_json::json!({"subscription_id": id}),
                )
                .await?;
        }
        said = if removed { "Removed." } else { "Already gone." };
    }
    let redrawn = match q.regular_message() {
        Some(msg) => {
            let subs = app.store.subscriptions_of(user_id).await?;
            let (text, kb) = listing(&subs, page);
            let mut req = bot.edit_message_text(msg.chat.id, msg.id, text);
            if let Some(kb) = kb {
                req = req.reply_markup(kb);
            }
            app.edit(Some(msg.chat.id), req).await
        }
        None => Ok(()),
    };
    redrawn.map(|()| said)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_regexes_and_channels_are_read_and_bad_regexes_point_at_the_error() {
        assert_eq!(
            parse("Bitcoin  ETF bitcoin").unwrap(),
            Wanted {
                kind: "words",
                pattern: "bitcoin etf".into(),
                channel: None
            }
        );
        assert_eq!(
            parse("/rate (cut|hike)/ in @cryptodaily").unwrap(),
            Wanted {
                kind: "regex",
                pattern: "rate (cut|hike)".into(),
                channel: Some("@cryptodaily".into())
            }
        );
        assert_eq!(parse("news in @x").unwrap().pattern, "news");
        assert_eq!(parse("in").unwrap().pattern, "in", "a lone word is a word");
        let e = parse("/a(b/").unwrap_err();
        assert!(e.contains("does not compile") && e.contains('^'), "{e}");
        assert!(parse("//").unwrap_err().contains("empty"));
        assert!(parse("  ").unwrap_err().contains("Usage: /subscribe"));
    }

    #[test]
    fn subscribe_words_with_tabs_around_in_are_no_longer_read_as_all_words_and_the_channel() {
        for spaced in ["rate\tcut\tin\t@x", "rate cut\tin @x", "rate  cut in\t\t@x"] {
            assert_eq!(
                parse(spaced).unwrap(),
                Wanted {
                    kind: "words",
                    pattern: "rate cut".into(),
                    channel: Some("@x".into())
                },
                "{spaced:?}"
            );
        }
    }
}
