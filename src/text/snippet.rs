//! The text around a match, the matched words marked, for `/search`, `tgparser search` and the
//! export's query filter: computed from the post's text and the same terms the index holds, so
//! a match is marked exactly in every script (a Chinese word inside a longer one, a Thai word,
//! an accented Latin one), never a neighbour that merely shares letters.

use std::ops::Range;

use super::query::Expr;
use super::words::terms;

/// Marks the start of a matched word in a snippet.
pub const MATCH_START: char = '\u{1}';
/// Marks its end.
pub const MATCH_END: char = '\u{2}';

/// Byte ranges of `text` that `expr` matched, in order, merged where they touch.
pub fn matched_ranges(text: &str, expr: &Expr) -> Vec<Range<usize>> {
    let all = terms(text);
    let texts: Vec<String> = all.iter().map(|t| t.text.clone()).collect();
    let mut spans = Vec::new();
    expr.matched_spans(&texts, &mut spans);
    let mut ranges: Vec<Range<usize>> = spans
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(|s| {
            let start = all[s.clone()].iter().map(|t| t.at.start).min().unwrap_or(0);
            let end = all[s].iter().map(|t| t.at.end).max().unwrap_or(0);
            start..end
        })
        .collect();
    ranges.sort_by_key(|r| (r.start, r.end));
    let mut merged: Vec<Range<usize>> = Vec::new();
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    merged
}

/// UTF-16 code units of `c`: what Telegram counts.
fn units(c: char) -> usize {
    c.len_utf16()
}

/// A snippet of `text` at most `max_units` UTF-16 units long (the marks not counted, "…" at a
/// cut end counted): the whole text when it fits, else a window starting a little before the
/// first match. Runs of whitespace are one space, control characters (which could pass for
/// the marks) are dropped, and a mark never opens without closing inside the snippet.
pub fn snippet(text: &str, expr: &Expr, max_units: usize) -> String {
    let ranges = matched_ranges(text, expr);
    let total: usize = text.chars().map(units).sum();
    let (from, budget) = if total <= max_units {
        (0, max_units)
    } else {
        // Up to a fifth of the room before the first match, from a word start when possible.
        let first = ranges.first().map_or(0, |r| r.start);
        let lead = max_units / 5;
        let mut start = first;
        let mut used = 0;
        for (i, c) in text[..first].char_indices().rev() {
            if used + units(c) > lead {
                break;
            }
            used += units(c);
            start = i;
        }
        if start > 0
            && start < first
            && let Some(space) = text[start..first].find(char::is_whitespace)
        {
            start += space;
        }
        (start, max_units.saturating_sub(2))
    };
    let mut out = String::new();
    if from > 0 {
        out.push('…');
    }
    let mut used = 0;
    let mut open = false;
    let mut next = ranges.iter().skip_while(|r| r.end <= from).peekable();
    let mut last_space = true;
    let mut cut = false;
    for (i, c) in text[from..].char_indices() {
        let at = from + i;
        if open && next.peek().is_some_and(|r| r.end <= at) {
            out.push(MATCH_END);
            open = false;
            next.next();
        }
        if !open && next.peek().is_some_and(|r| r.start <= at && at < r.end) {
            out.push(MATCH_START);
            open = true;
        }
        let c = if c.is_whitespace() { ' ' } else { c };
        if c.is_control() || (c == ' ' && last_space) {
            continue;
        }
        if used + units(c) > budget {
            cut = true;
            break;
        }
        used += units(c);
        last_space = c == ' ';
        out.push(c);
    }
    if open {
        out.push(MATCH_END);
    }
    if cut {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::Query;

    fn marked(text: &str, q: &str, max: usize) -> String {
        snippet(text, &Query::parse(q).unwrap().expr, max)
            .replace(MATCH_START, "[")
            .replace(MATCH_END, "]")
    }

    #[test]
    fn matches_are_marked_exactly_in_every_script() {
        assert_eq!(
            marked("今天比特币大涨了", "比特币", 100),
            "今天[比特币]大涨了"
        );
        assert_eq!(
            marked("東京都に行きました", "東京", 100),
            "[東京]都に行きました"
        );
        assert_eq!(marked("Ёлка в Café", "елка cafe", 100), "[Ёлка] в [Café]");
        assert_eq!(
            marked("bitcoin bitcoins", "bitc*", 100),
            "[bitcoin] [bitcoins]"
        );
        assert_eq!(marked("a b c", "b", 100), "a [b] c");
    }

    #[test]
    fn text_holding_the_marks_cannot_unbalance_them() {
        let text = format!("x{MATCH_END} word {MATCH_START}y");
        assert_eq!(marked(&text, "word", 100), "x [word] y");
    }

    #[test]
    fn snippets_are_capped_in_utf16_units() {
        let text = format!("{} needle {}", "𝒜".repeat(3000), "😀".repeat(3000));
        let s = snippet(&text, &Query::parse("needle").unwrap().expr, 400);
        let n: usize = s
            .chars()
            .filter(|c| *c != MATCH_START && *c != MATCH_END)
            .map(char::len_utf16)
            .sum();
        assert!(n <= 400, "{n}");
        assert!(
            s.contains(&format!("{MATCH_START}needle{MATCH_END}")),
            "{s}"
        );
    }
}
