//! `/export <@channel | query>`: the posts as a JSONL file (`sendDocument`), one JSON object per
//! line with every stored field. Capped at [`MAX_BYTES`] — a chat is not the place for a whole
//! archive — with a notice saying how much was left out and pointing to `tgparser export`.

use teloxide::prelude::*;
use teloxide::types::InputFile;

use super::{App, BotError};
use crate::store::{ExportFilter, SearchError};

/// Well under the Bot API's 50 MB upload limit; a phone opens it.
pub const MAX_BYTES: usize = 10 * 1024 * 1024;

fn looks_like_channel(arg: &str) -> bool {
    arg.starts_with('@')
        || arg.contains("t.me/")
        || arg.starts_with("tg://")
        || (!arg.contains(char::is_whitespace) && arg.parse::<i64>().is_ok())
}

pub async fn export(bot: &Bot, app: &App, msg: &Message, args: &str) -> Result<(), BotError> {
    let chat = msg.chat.id;
    let say = |text: String| super::handlers::send(bot, app, chat, text);
    let arg = args.trim();
    if arg.is_empty() {
        return say("What should I export?\nUsage: /export <@channel | search query>".into()).await;
    }
    let (filter, name) = if looks_like_channel(arg) {
        match app.store.find_channel(arg).await? {
            Some(ch) => (
                ExportFilter {
                    channel_id: Some(ch.id),
                    ..Default::default()
                },
                ch.username.clone().unwrap_or_else(|| ch.id.to_string()),
            ),
            None => {
                return say(format!(
                    "{arg} is not among the archived channels (/channels lists them)."
                ))
                .await;
            }
        }
    } else {
        (
            ExportFilter {
                query: Some(arg.to_string()),
                ..Default::default()
            },
            "search".to_string(),
        )
    };
    let mut out = Vec::new();
    let mut written = 0u64;
    let mut truncated = false;
    let result = app
        .store
        .export(&filter, |rec| {
            let Ok(line) = serde_json::to_vec(&rec) else {
                return true;
            };
            if out.len() + line.len() + 1 > MAX_BYTES {
                truncated = true;
                return false;
            }
            out.extend_from_slice(&line);
            out.push(b'\n');
            written += 1;
            true
        })
        .await;
    match result {
        Ok(_) => {}
        Err(SearchError::Query { reason, .. }) => {
            return say(format!(
                "That search is not valid ({reason}). Use words, \"a phrase\", prefix*, AND, OR, NOT."
            ))
            .await;
        }
        Err(SearchError::Store(e)) => return Err(e.into()),
    }
    if written == 0 {
        return say("Nothing to export: no post matches.".into()).await;
    }
    let mut caption = format!("{written} posts, one JSON object per line.");
    if truncated {
        caption.push_str(&format!(
            " Cut at {} MB: there are more. On the server, `tgparser export` writes everything.",
            MAX_BYTES / (1024 * 1024)
        ));
    }
    let file = InputFile::memory(out).file_name(format!("tgparser-{name}.jsonl"));
    app.call(Some(chat), bot.send_document(chat, file).caption(caption))
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_and_queries_are_told_apart() {
        assert!(looks_like_channel("@durov"));
        assert!(looks_like_channel("https://t.me/durov"));
        assert!(looks_like_channel("1234567"));
        assert!(!looks_like_channel("bitcoin etf"));
        assert!(!looks_like_channel("\"rate cut\""));
    }
}
