//! What a person types as a search or a subscription, read into one expression that both the
//! index (as an FTS5 query) and the alert matcher (over a post's terms) evaluate — so `/search`
//! and alerts find the same posts, in every script.
//!
//! The syntax: words, `"a phrase"`, `prefix*`, `AND`, `OR`, `NOT`, parentheses. Everything else
//! is text: `https://t.me/x`, `price: 100`, `covid-19` are the phrases of their words, never
//! FTS5 syntax (column filters, `NEAR`, `^` and `+` reach SQLite as nothing but quoted terms).
//! A query that does not parse (a stray `)`, `OR` at the end) is read as plain words.

use super::words::{runs, terms, word_terms};

/// A search expression over a post's terms.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Terms in a row; with `prefix`, the last one is a prefix.
    Phrase {
        terms: Vec<String>,
        prefix: bool,
    },
    And(Vec<Expr>),
    Or(Vec<Expr>),
    /// The left side, without posts matching the right.
    Not(Box<Expr>, Box<Expr>),
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub expr: Expr,
    /// The query did not parse and was read as plain words.
    pub as_words: bool,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    #[error(
        "there are no words in it to search for; type words, \"a phrase\" or a prefix* (letters or digits)"
    )]
    Empty(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Lexeme {
    Open,
    Close,
    And,
    Or,
    Not,
    /// Text, whether it was quoted, and whether a `*` followed.
    Text(String, bool),
}

/// The lexemes of `q`, and whether every quote was closed.
fn lex(q: &str) -> (Vec<Lexeme>, bool) {
    let mut out = Vec::new();
    let mut closed = true;
    let mut chars = q.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '(' {
            chars.next();
            out.push(Lexeme::Open);
        } else if c == ')' {
            chars.next();
            out.push(Lexeme::Close);
        } else if c == '"' {
            chars.next();
            let mut s = String::new();
            let mut ended = false;
            while let Some(c) = chars.next() {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        s.push('"');
                        continue;
                    }
                    ended = true;
                    break;
                }
                s.push(c);
            }
            closed &= ended;
            let prefix = chars.peek() == Some(&'*');
            if prefix {
                chars.next();
            }
            out.push(Lexeme::Text(s, prefix));
        } else {
            let mut s = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '(' || c == ')' || c == '"' {
                    break;
                }
                s.push(c);
                chars.next();
            }
            out.push(match s.as_str() {
                "AND" => Lexeme::And,
                "OR" => Lexeme::Or,
                "NOT" => Lexeme::Not,
                _ => {
                    let prefix = s.ends_with('*');
                    Lexeme::Text(s.trim_end_matches('*').to_string(), prefix)
                }
            });
        }
    }
    (out, closed)
}

/// The expression for a piece of text: the phrase of its words, with Chinese, Japanese and
/// Korean runs read as below; `None` when it has no word characters.
pub fn text_expr(text: &str, prefix: bool) -> Option<Expr> {
    let all = runs(text);
    let mut parts: Vec<Expr> = Vec::new();
    let mut phrase: Vec<String> = Vec::new();
    for run in &all {
        if run.class.bigrams() {
            if !phrase.is_empty() {
                parts.push(Expr::Phrase {
                    terms: std::mem::take(&mut phrase),
                    prefix: false,
                });
            }
            if let Some(e) = cjk_run(text, run) {
                parts.push(e);
            }
        } else {
            let mut t = Vec::new();
            for w in &run.words {
                word_terms(text, w.clone(), &mut t);
            }
            phrase.extend(t.into_iter().map(|t| t.text));
        }
    }
    if !phrase.is_empty() {
        let last_is_phrase = all.last().is_some_and(|r| !r.class.bigrams());
        parts.push(Expr::Phrase {
            terms: phrase,
            prefix: prefix && last_is_phrase,
        });
    }
    match parts.len() {
        0 => None,
        1 => parts.pop(),
        _ => Some(Expr::And(parts)),
    }
}

/// A Chinese, Japanese or Korean run of a query: the phrase of its bigrams, which finds it
/// wherever it stands in a run of the index (`words::cjk_terms`); a single character is a
/// prefix of the index's bigrams.
fn cjk_run(text: &str, run: &super::words::Run) -> Option<Expr> {
    let folded: String = super::fold::fold(&text[run.at.clone()])
        .chars()
        .filter(|c| super::words::is_word_char(*c))
        .collect();
    let chars: Vec<char> = folded.chars().collect();
    match chars.len() {
        0 => None,
        1 => Some(Expr::Phrase {
            terms: vec![folded],
            prefix: true,
        }),
        _ => Some(Expr::Phrase {
            terms: chars.windows(2).map(|w| w.iter().collect()).collect(),
            prefix: false,
        }),
    }
}

struct Parser {
    lexemes: Vec<Lexeme>,
    at: usize,
}

/// Why a query did not parse; it is then read as plain words.
struct Malformed;

impl Parser {
    fn peek(&self) -> Option<&Lexeme> {
        self.lexemes.get(self.at)
    }

    /// or := and ("OR" and)*
    fn or(&mut self) -> Result<Option<Expr>, Malformed> {
        let mut items = Vec::new();
        items.extend(self.and()?);
        while self.peek() == Some(&Lexeme::Or) {
            self.at += 1;
            match self.and()? {
                Some(e) => items.push(e),
                None => return Err(Malformed),
            }
        }
        Ok(match items.len() {
            0 => None,
            1 => items.pop(),
            _ => Some(Expr::Or(items)),
        })
    }

    /// and := not (["AND"] not)*
    fn and(&mut self) -> Result<Option<Expr>, Malformed> {
        let mut items = Vec::new();
        let mut operands = 0;
        loop {
            let explicit = self.peek() == Some(&Lexeme::And);
            if explicit {
                if operands == 0 {
                    return Err(Malformed);
                }
                self.at += 1;
            }
            match self.peek() {
                Some(Lexeme::Open | Lexeme::Text(..)) => {
                    operands += 1;
                    items.extend(self.not()?);
                }
                _ if explicit => return Err(Malformed),
                _ => break,
            }
        }
        if operands == 0 {
            return Ok(None);
        }
        Ok(match items.len() {
            0 => None,
            1 => items.pop(),
            _ => Some(Expr::And(items)),
        })
    }

    /// not := primary ("NOT" primary)*
    fn not(&mut self) -> Result<Option<Expr>, Malformed> {
        let mut left = self.primary()?;
        while self.peek() == Some(&Lexeme::Not) {
            self.at += 1;
            let right = self.primary()?;
            left = match (left, right) {
                (Some(l), Some(r)) => Some(Expr::Not(Box::new(l), Box::new(r))),
                (l, None) => l,
                (None, Some(_)) => return Err(Malformed),
            };
        }
        Ok(left)
    }

    /// primary := "(" or ")" | text
    fn primary(&mut self) -> Result<Option<Expr>, Malformed> {
        match self.lexemes.get(self.at).cloned() {
            Some(Lexeme::Open) => {
                self.at += 1;
                let e = self.or()?;
                if self.peek() != Some(&Lexeme::Close) {
                    return Err(Malformed);
                }
                self.at += 1;
                Ok(e)
            }
            Some(Lexeme::Text(s, prefix)) => {
                self.at += 1;
                Ok(text_expr(&s, prefix))
            }
            _ => Err(Malformed),
        }
    }
}

impl Query {
    /// Reads a search query.
    pub fn parse(q: &str) -> Result<Query, QueryError> {
        let (lexemes, closed) = lex(q);
        let mut p = Parser { lexemes, at: 0 };
        if let Ok(Some(expr)) = p.or()
            && p.at == p.lexemes.len()
            && closed
        {
            return Ok(Query {
                expr,
                as_words: false,
            });
        }
        let expr = Query::words(q).ok_or_else(|| QueryError::Empty(q.to_string()))?;
        Ok(Query {
            expr,
            as_words: true,
        })
    }

    /// Every whitespace-separated piece of `q` as text (a trailing `*` a prefix), all required:
    /// what a subscription's words mean, and a query that does not parse.
    pub fn words(q: &str) -> Option<Expr> {
        let mut items: Vec<Expr> = q
            .split_whitespace()
            .filter_map(|w| {
                let prefix = w.ends_with('*');
                text_expr(w.trim_end_matches('*'), prefix)
            })
            .collect();
        match items.len() {
            0 => None,
            1 => items.pop(),
            _ => Some(Expr::And(items)),
        }
    }
}

impl Expr {
    /// The FTS5 query: every term quoted, so nothing in it is read as syntax.
    pub fn to_fts5(&self) -> String {
        let mut out = String::new();
        self.render(&mut out);
        out
    }

    fn render(&self, out: &mut String) {
        let join = |items: &[Expr], op: &str, out: &mut String| {
            out.push('(');
            for (i, e) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(op);
                }
                e.render(out);
            }
            out.push(')');
        };
        match self {
            Expr::Phrase { terms, prefix } => {
                out.push('"');
                for (i, t) in terms.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(&t.replace('"', "\"\""));
                }
                out.push('"');
                if *prefix {
                    out.push('*');
                }
            }
            Expr::And(items) => join(items, " AND ", out),
            Expr::Or(items) => join(items, " OR ", out),
            Expr::Not(l, r) => {
                out.push('(');
                l.render(out);
                out.push_str(" NOT ");
                r.render(out);
                out.push(')');
            }
        }
    }

    /// Whether a post with these index terms matches.
    pub fn matches(&self, terms: &[String]) -> bool {
        match self {
            Expr::Phrase { .. } => self.first_match(terms, 0).is_some(),
            Expr::And(items) => items.iter().all(|e| e.matches(terms)),
            Expr::Or(items) => items.iter().any(|e| e.matches(terms)),
            Expr::Not(l, r) => l.matches(terms) && !r.matches(terms),
        }
    }

    /// For a phrase: the first place at or after `from` where it stands in `terms`.
    fn first_match(&self, terms: &[String], from: usize) -> Option<usize> {
        let Expr::Phrase {
            terms: want,
            prefix,
        } = self
        else {
            return None;
        };
        if want.is_empty() || want.len() > terms.len() {
            return None;
        }
        let last = want.len() - 1;
        (from..=terms.len() - want.len()).find(|&i| {
            want.iter().enumerate().all(|(j, w)| {
                let t = &terms[i + j];
                if j == last && *prefix {
                    t.starts_with(w.as_str())
                } else {
                    t == w
                }
            })
        })
    }

    /// Where the matched phrases stand (term positions), for highlighting: every occurrence of
    /// every phrase on the matching side (not those after `NOT`).
    pub fn matched_spans(&self, terms: &[String], out: &mut Vec<std::ops::Range<usize>>) {
        match self {
            Expr::Phrase { terms: want, .. } => {
                let mut from = 0;
                while let Some(i) = self.first_match(terms, from) {
                    out.push(i..i + want.len());
                    from = i + 1;
                }
            }
            Expr::And(items) | Expr::Or(items) => {
                for e in items {
                    e.matched_spans(terms, out);
                }
            }
            Expr::Not(l, _) => l.matched_spans(terms, out),
        }
    }

    /// The single-term prefixes in the expression (for spelling them out as words).
    pub fn prefixes(&self, out: &mut Vec<String>) {
        match self {
            Expr::Phrase {
                terms,
                prefix: true,
            } if terms.len() == 1 => out.push(terms[0].clone()),
            Expr::Phrase { .. } => {}
            Expr::And(items) | Expr::Or(items) => items.iter().for_each(|e| e.prefixes(out)),
            Expr::Not(l, r) => {
                l.prefixes(out);
                r.prefixes(out);
            }
        }
    }

    /// The expression with each single-term prefix that `spelled` holds replaced by its words.
    pub fn spell_out(&mut self, spelled: &std::collections::HashMap<String, Expr>) {
        match self {
            Expr::Phrase {
                terms,
                prefix: true,
            } if terms.len() == 1 => {
                if let Some(e) = spelled.get(&terms[0]) {
                    *self = e.clone();
                }
            }
            Expr::Phrase { .. } => {}
            Expr::And(items) | Expr::Or(items) => {
                items.iter_mut().for_each(|e| e.spell_out(spelled))
            }
            Expr::Not(l, r) => {
                l.spell_out(spelled);
                r.spell_out(spelled);
            }
        }
    }
}

/// The terms of a text, as the matcher compares them.
pub fn term_texts(text: &str) -> Vec<String> {
    terms(text).into_iter().map(|t| t.text).collect()
}

#[cfg(test)]
#[path = "query_tests.rs"]
mod tests;
