//! Telegram's `parse_mode=HTML`, as strict as Telegram: the tags and entities it supports
//! (core.telegram.org/bots/api#html-style), refused with its own descriptions otherwise (TDLib's
//! `parse_html`, td/telegram/MessageEntity.cpp: "Unsupported start tag", "Unclosed start tag",
//! "Unexpected end tag", "Unmatched end tag", "Can't find end tag corresponding to start tag"),
//! and the text it leaves — the visible text, which is what Telegram's length limits count
//! (4,096 UTF-16 units for a message, 1,024 for a caption), not the markup.

/// Tags Telegram takes.
const TAGS: [&str; 16] = [
    "a",
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "tg-emoji",
    "code",
    "pre",
    "blockquote",
];

/// The visible text of `html`, or why Telegram refuses it (the part after "Bad Request: can't
/// parse entities: ").
pub fn visible(html: &str) -> Result<String, String> {
    let bytes = html.as_bytes();
    let mut out = String::with_capacity(html.len());
    let mut open: Vec<(String, usize)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'&' => {
                let (decoded, used) = entity(&html[i..]);
                out.push_str(&decoded);
                i += used;
            }
            b'<' => {
                let start = i;
                let Some(close) = html[i..].find('>').map(|k| i + k) else {
                    return Err(format!("Unclosed start tag at byte offset {start}"));
                };
                let inner = &html[i + 1..close];
                if let Some(name) = inner.strip_prefix('/') {
                    let name = name.trim().to_ascii_lowercase();
                    let Some((want, _)) = open.pop() else {
                        return Err(format!("Unexpected end tag at byte offset {start}"));
                    };
                    if name != want {
                        return Err(format!(
                            "Unmatched end tag at byte offset {start}, expected \"</{want}>\", found \"</{name}>\""
                        ));
                    }
                } else {
                    let name: String = inner
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                        .collect::<String>()
                        .to_ascii_lowercase();
                    if name.is_empty() || !TAGS.contains(&name.as_str()) {
                        let shown: String = inner.split_whitespace().next().unwrap_or("").into();
                        return Err(format!(
                            "Unsupported start tag \"{shown}\" at byte offset {start}"
                        ));
                    }
                    let attrs = &inner[name.len()..];
                    attributes(&name, attrs, start)?;
                    open.push((name, start));
                }
                i = close + 1;
            }
            _ => {
                let c = html[i..].chars().next().unwrap_or('\u{FFFD}');
                out.push(c);
                i += c.len_utf8().max(1);
            }
        }
    }
    if let Some((name, _)) = open.pop() {
        return Err(format!(
            "Can't find end tag corresponding to start tag \"{name}\""
        ));
    }
    Ok(out)
}

/// A character reference at the start of `s` (which starts with `&`): what it stands for and
/// the bytes it takes. Telegram knows `&lt;` `&gt;` `&amp;` `&quot;` and numeric references;
/// any other `&` is itself.
fn entity(s: &str) -> (String, usize) {
    for (name, c) in [
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&amp;", "&"),
        ("&quot;", "\""),
    ] {
        if s.starts_with(name) {
            return (c.to_string(), name.len());
        }
    }
    if let Some(rest) = s.strip_prefix("&#")
        && let Some(end) = rest.find(';')
    {
        let body = &rest[..end];
        let n = match body.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => body.parse::<u32>().ok(),
        };
        if let Some(c) = n.and_then(char::from_u32) {
            return (c.to_string(), 2 + end + 1);
        }
    }
    ("&".into(), 1)
}

/// The attributes of a start tag: `a` needs `href`, `span` the spoiler class, `tg-emoji` an
/// `emoji-id`; values quoted or bare.
fn attributes(tag: &str, attrs: &str, at: usize) -> Result<(), String> {
    let mut found: Vec<(String, String)> = Vec::new();
    let mut rest = attrs.trim_start();
    while !rest.is_empty() {
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        if name.is_empty() {
            return Err(format!(
                "Expected equal sign in declaration of an attribute of the tag at byte offset {at}"
            ));
        }
        rest = rest[name.len()..].trim_start();
        let value = if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            match after.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let Some(end) = after[1..].find(q) else {
                        return Err(format!(
                            "Unclosed end of an attribute value at byte offset {at}"
                        ));
                    };
                    rest = &after[1 + end + 1..];
                    after[1..1 + end].to_string()
                }
                _ => {
                    let end = after.find(char::is_whitespace).unwrap_or(after.len());
                    rest = &after[end..];
                    after[..end].to_string()
                }
            }
        } else {
            String::new()
        };
        found.push((name.to_ascii_lowercase(), value));
        rest = rest.trim_start();
    }
    let get = |n: &str| found.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    match tag {
        "span" if get("class") != Some("tg-spoiler") => {
            Err("Tag \"span\" must have class \"tg-spoiler\"".into())
        }
        "tg-emoji" if get("emoji-id").is_none_or(|v| v.parse::<i64>().is_err()) => {
            Err("Custom emoji entity must contain a valid custom emoji identifier".into())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::visible;

    #[test]
    fn markup_telegram_takes_leaves_its_visible_text() {
        assert_eq!(
            visible(
                "<b>Bold</b> &lt;tag&gt; &amp; <a href=\"https://t.me/x\">link</a> &#128640; a & b"
            )
            .unwrap(),
            "Bold <tag> & link 🚀 a & b"
        );
        assert_eq!(
            visible("<span class=\"tg-spoiler\">x</span><blockquote expandable>q</blockquote>")
                .unwrap(),
            "xq"
        );
    }

    #[test]
    fn markup_telegram_refuses_is_refused_with_its_words() {
        for (html, want) in [
            ("a </b> b", "Unexpected end tag at byte offset 2"),
            (
                "<b>open",
                "Can't find end tag corresponding to start tag \"b\"",
            ),
            ("<b><i>x</b></i>", "Unmatched end tag"),
            ("price <100", "Unclosed start tag at byte offset 6"),
            (
                "<user@example.com> hi",
                "Unsupported start tag \"user@example.com\"",
            ),
            ("<span>x</span>", "must have class"),
        ] {
            let got = visible(html).unwrap_err();
            assert!(got.contains(want), "{html}: {got}");
        }
    }
}
