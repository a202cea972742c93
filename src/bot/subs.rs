//! `/subscribe`, `/subscriptions`, `/unsubscribe`: keyword alerts a user holds. A subscription is
//! every word of a list (any order, case-insensitive) or a regular expression, in every channel
//! or one.

use teloxide::prelude::*;
use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup};

use super::handlers::send;
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

fn listing(subs: &[Subscription]) -> (String, Option<InlineKeyboardMarkup>) {
    if subs.is_empty() {
        return (
            "You have no subscriptions. /subscribe <words> adds one.".into(),
            None,
        );
    }
    let mut text = String::from("Your subscriptions (press one to remove it):\n");
    let mut rows = Vec::new();
    for (i, s) in subs.iter().enumerate() {
        text.push_str(&format!("{}. {}\n", i + 1, describe(s)));
        let label: String = describe(s).chars().take(40).collect();
        rows.push(vec![InlineKeyboardButton::callback(
            format!("✖ {}. {label}", i + 1),
            format!("u:{}", s.id),
        )]);
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
    let (text, kb) = listing(&subs);
    let mut req = bot.send_message(msg.chat.id, text);
    if let Some(kb) = kb {
        req = req.reply_markup(kb);
    }
    app.call(Some(msg.chat.id), req).await.map(|_| ())
}

/// A press on "✖ n": removes the subscription if it is the presser's, and redraws the list.
pub async fn on_remove(
    bot: &Bot,
    app: &App,
    q: &CallbackQuery,
    user_id: i64,
    id: i64,
) -> Result<(), BotError> {
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
    if let Some(msg) = q.regular_message() {
        let subs = app.store.subscriptions_of(user_id).await?;
        let (text, kb) = listing(&subs);
        let mut req = bot.edit_message_text(msg.chat.id, msg.id, text);
        if let Some(kb) = kb {
            req = req.reply_markup(kb);
        }
        app.call(Some(msg.chat.id), req).await?;
    }
    app.call(
        None,
        bot.answer_callback_query(q.id.clone()).text(if removed {
            "Removed."
        } else {
            "Already gone."
        }),
    )
    .await
    .map(|_| ())
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
