//! Word boundaries in every script, the same for the index, for queries and for alerts.
//!
//! A text is cut into runs of word characters (letters, marks, numbers, private-use and other
//! symbols: the token characters of the index's tokenizer), and each run into words by its
//! script:
//! - scripts written with spaces (Latin, Cyrillic, Greek, Arabic, Hebrew, Devanagari…): the
//!   run is one word;
//! - Chinese and Japanese (Han, kana), Thai, Lao, Khmer, Burmese: Unicode's dictionaries cut
//!   the run into words (ICU4X, `WordSegmenter::new_dictionary`);
//! - Korean: the run is one word (Hangul is written with spaces, particles glued to nouns);
//! - symbols (emoji): each is a word of its own.
//!
//! The index holds each word folded (`fold`). A Chinese, Japanese or Korean run is held as its
//! overlapping bigrams, then its long dictionary words (`cjk_terms` says why), so a word inside
//! a longer run is found as the phrase of its bigrams ("比特币" in 今天比特币大涨了, "東京" in
//! 東京都, "비트코인" in 비트코인이).

use std::ops::Range;

use icu_properties::CodePointMapData;
use icu_properties::props::GeneralCategory;
use icu_segmenter::WordSegmenter;
use icu_segmenter::options::WordBreakInvariantOptions;

use super::fold::fold_into;

/// How a run of word characters is cut into words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Written with spaces: the run is a word.
    Spaced,
    /// Han and kana: dictionary words, bigrams inside long ones.
    Cj,
    /// Hangul: the run is a word, bigrams inside long ones.
    Hangul,
    /// Thai, Lao, Khmer, Burmese: dictionary words.
    SouthEastAsian,
    /// A symbol (emoji): one word each.
    Symbol,
}

impl Class {
    /// Chinese, Japanese, Korean: held with bigrams.
    pub fn bigrams(self) -> bool {
        matches!(self, Class::Cj | Class::Hangul)
    }
}

/// A run of word characters of one class, with the words in it (byte ranges of the text).
#[derive(Debug, Clone)]
pub struct Run {
    pub class: Class,
    pub at: Range<usize>,
    pub words: Vec<Range<usize>>,
}

/// One term of the index, in order: the folded word and where it stands in the text.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    pub text: String,
    pub at: Range<usize>,
}

/// Whether `c` is a word character: the categories the index's tokenizer takes as token
/// characters (`categories 'L* N* M* Co So'`, migrations 0016 and 0017).
pub fn is_word_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric();
    }
    // Where SQLite's Unicode tables (older) and ICU's disagree, SQLite's: the index's tokenizer
    // must keep every word whole (`every_code_point_reaches_the_index_as_the_matcher_reads_it`).
    // U+166D CANADIAN SYLLABICS CHI SIGN: punctuation until Unicode 12, a symbol since.
    if c == '\u{166D}' {
        return false;
    }
    word_category(CodePointMapData::<GeneralCategory>::new().get(c))
}

/// Whether characters of category `g` are word characters (see [`is_word_char`]).
fn word_category(g: GeneralCategory) -> bool {
    use GeneralCategory as G;
    matches!(
        g,
        G::UppercaseLetter
            | G::LowercaseLetter
            | G::TitlecaseLetter
            | G::ModifierLetter
            | G::OtherLetter
            | G::NonspacingMark
            | G::EnclosingMark
            | G::SpacingMark
            | G::DecimalNumber
            | G::LetterNumber
            | G::OtherNumber
            | G::PrivateUse
            | G::OtherSymbol
    )
}

/// The class of a word character of category `g`; `None` for a mark, which belongs to the
/// character before it.
fn class_of(c: char, g: GeneralCategory) -> Option<Class> {
    use GeneralCategory as G;
    let class = match c {
        '\u{3005}'..='\u{3007}'
        | '\u{3021}'..='\u{3029}'
        | '\u{3031}'..='\u{3035}'
        | '\u{3040}'..='\u{30FF}'
        | '\u{31F0}'..='\u{31FF}'
        | '\u{3400}'..='\u{4DBF}'
        | '\u{4E00}'..='\u{9FFF}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{FF66}'..='\u{FF9F}'
        | '\u{1B000}'..='\u{1B16F}'
        | '\u{20000}'..='\u{3FFFF}' => Class::Cj,
        '\u{1100}'..='\u{11FF}'
        | '\u{3130}'..='\u{318F}'
        | '\u{A960}'..='\u{A97F}'
        | '\u{AC00}'..='\u{D7FF}'
        | '\u{FFA0}'..='\u{FFDC}' => Class::Hangul,
        '\u{0E00}'..='\u{0EFF}'
        | '\u{1000}'..='\u{109F}'
        | '\u{1780}'..='\u{17FF}'
        | '\u{19E0}'..='\u{19FF}'
        | '\u{A9E0}'..='\u{A9FF}'
        | '\u{AA60}'..='\u{AA7F}' => Class::SouthEastAsian,
        _ if matches!(g, G::NonspacingMark | G::EnclosingMark | G::SpacingMark) => return None,
        _ if g == G::OtherSymbol => Class::Symbol,
        _ => Class::Spaced,
    };
    Some(class)
}

/// What a character is to the word cutter: not a word character (`None`), a mark, which
/// belongs to the character before it (`Some(None)`), or a word character of a class. One
/// look-up of its category, not one for each question.
fn kind_of(c: char) -> Option<Option<Class>> {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric().then_some(Some(Class::Spaced));
    }
    // Basic Cyrillic, the letters of most posts that are not ASCII.
    if ('\u{410}'..='\u{44F}').contains(&c) {
        return Some(Some(Class::Spaced));
    }
    let g = CodePointMapData::<GeneralCategory>::new().get(c);
    if c == '\u{166D}' || !word_category(g) {
        return None;
    }
    Some(class_of(c, g))
}

/// Calls `each` with every run of word characters in `text`: its class and byte range.
fn each_run(text: &str, mut each: impl FnMut(Class, Range<usize>)) {
    let mut current: Option<(Class, usize)> = None;
    let mut end = 0;
    for (i, c) in text.char_indices() {
        let kind = kind_of(c);
        match (current, kind) {
            (Some((k, start)), Some(class)) => {
                // A mark stays with its letter; a symbol stands alone.
                let same = class.is_none_or(|c| c == k && c != Class::Symbol);
                if !same {
                    each(k, start..end);
                    current = Some((class.unwrap_or(Class::Spaced), i));
                }
            }
            (Some((k, start)), None) => {
                each(k, start..end);
                current = None;
            }
            (None, Some(class)) => current = Some((class.unwrap_or(Class::Spaced), i)),
            (None, None) => {}
        }
        end = i + c.len_utf8();
    }
    if let Some((k, start)) = current {
        each(k, start..end);
    }
}

/// The runs of word characters in `text`, each cut into its words.
pub fn runs(text: &str) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    each_run(text, |class, at| push_run(text, class, at, &mut out));
    out
}

fn push_run(text: &str, class: Class, at: Range<usize>, out: &mut Vec<Run>) {
    let words = match class {
        Class::Cj | Class::SouthEastAsian => {
            let run = &text[at.clone()];
            let segmenter = WordSegmenter::new_dictionary(WordBreakInvariantOptions::default());
            let mut words = Vec::new();
            let mut last = 0;
            for b in segmenter.segment_str(run) {
                if b > last {
                    words.push(at.start + last..at.start + b);
                }
                last = b;
            }
            words
        }
        _ => vec![at.clone()],
    };
    out.push(Run { class, at, words });
}

/// The terms a word of a run written with spaces, or of Thai, Lao, Khmer or Burmese, adds to
/// the index: the word folded.
pub fn word_terms(text: &str, at: Range<usize>, out: &mut Vec<Term>) {
    let mut folded = String::new();
    fold_into(&text[at.clone()], &mut folded);
    if folded.chars().all(is_word_char) {
        if !folded.is_empty() {
            out.push(Term { text: folded, at });
        }
        return;
    }
    // Compatibility forms can fold to punctuation ("㈏" is "(나)", "¼" is "1⁄4"): the index's
    // tokenizer splits there, and so do the terms.
    for piece in folded
        .split(|c: char| !is_word_char(c))
        .filter(|p| !p.is_empty())
    {
        out.push(Term {
            text: piece.to_string(),
            at: at.clone(),
        });
    }
}

/// The terms a Chinese, Japanese or Korean run adds to the index: its overlapping bigrams, its
/// last character, then its dictionary words of three or more characters. The bigrams cover
/// the whole run, not each dictionary word: Unicode's dictionary cuts simplified Chinese
/// coarsely (比特币 into 比|特|币, 大涨了 into 大|涨了), and a query's own cut of a few
/// characters often differs from the cut of the same characters in context, so a word is
/// found as the phrase of its bigrams wherever it stands in a run (a substring, as Lucene's
/// and Elasticsearch's CJK analyzers find it). The last character lets a one-character query
/// (a prefix of the bigrams) find a run's end too; the long dictionary words let a plain
/// FTS5 query for a whole word (sqlite3, Datasette) find it.
pub fn cjk_terms(text: &str, run: &Run, out: &mut Vec<Term>) {
    let folded: String = super::fold::fold(&text[run.at.clone()])
        .chars()
        .filter(|c| is_word_char(*c))
        .collect();
    let chars: Vec<(usize, char)> = folded.char_indices().collect();
    if chars.is_empty() {
        return;
    }
    if chars.len() == 1 {
        out.push(Term {
            text: folded,
            at: run.at.clone(),
        });
        return;
    }
    // Where each character stands in the text: one for one when folding kept the count (it
    // almost always does), else the whole run.
    let original: Vec<usize> = text[run.at.clone()]
        .char_indices()
        .map(|(i, _)| i)
        .collect();
    let place = |from: usize, to: usize| {
        if original.len() == chars.len() {
            let start = run.at.start + original[from];
            let end = original.get(to).map_or(run.at.end, |i| run.at.start + i);
            start..end
        } else {
            run.at.clone()
        }
    };
    let end_of = |c: usize| chars.get(c).map_or(folded.len(), |(i, _)| *i);
    for w in 0..chars.len() - 1 {
        out.push(Term {
            text: folded[chars[w].0..end_of(w + 2)].to_string(),
            at: place(w, w + 2),
        });
    }
    let last = chars.len() - 1;
    out.push(Term {
        text: folded[chars[last].0..].to_string(),
        at: place(last, last + 1),
    });
    for w in &run.words {
        let word: String = super::fold::fold(&text[w.clone()])
            .chars()
            .filter(|c| is_word_char(*c))
            .collect();
        if word.chars().count() >= 3 {
            out.push(Term {
                text: word,
                at: w.clone(),
            });
        }
    }
}

/// The index's terms for `text`, in order.
pub fn terms(text: &str) -> Vec<Term> {
    let mut out = Vec::new();
    for run in runs(text) {
        if run.class.bigrams() {
            cjk_terms(text, &run, &mut out);
        } else {
            for w in &run.words {
                word_terms(text, w.clone(), &mut out);
            }
        }
    }
    out
}

/// What the index holds for `text` (`messages_fts`): its terms, separated by spaces.
/// The same as joining [`terms`], written straight into one string: it runs for every stored
/// post, on the thread that hands the batch to the writer, so a run written with spaces (most
/// of most posts) is folded where it stands, with no `Run` and no list of words built for it.
pub fn index_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut cjk = Vec::new();
    let mut runs = Vec::new();
    each_run(text, |class, at| match class {
        Class::Spaced | Class::Symbol => push_word(text, at, &mut out),
        _ => {
            runs.clear();
            push_run(text, class, at, &mut runs);
            let Some(run) = runs.first() else { return };
            if class.bigrams() {
                cjk.clear();
                cjk_terms(text, run, &mut cjk);
                for t in &cjk {
                    if !out.is_empty() {
                        out.push(' ');
                    }
                    out.push_str(&t.text);
                }
            } else {
                for w in &run.words {
                    push_word(text, w.clone(), &mut out);
                }
            }
        }
    });
    out
}

/// One word's terms (`word_terms`), appended to `out` after a space.
fn push_word(text: &str, w: Range<usize>, out: &mut String) {
    let before = out.len();
    if !out.is_empty() {
        out.push(' ');
    }
    let at = out.len();
    let plain = fold_into(&text[w], out);
    if out.len() == at {
        out.truncate(before);
    } else if !plain && !out[at..].chars().all(is_word_char) {
        let folded = out.split_off(at);
        out.truncate(before);
        for piece in folded
            .split(|c: char| !is_word_char(c))
            .filter(|p| !p.is_empty())
        {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(piece);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        terms(text).into_iter().map(|t| t.text).collect()
    }

    #[test]
    fn chinese_runs_are_held_as_bigrams_and_dictionary_words() {
        let w = words("今天比特币大涨了 bitcoin");
        assert!(w.contains(&"比特".to_string()), "{w:?}");
        assert!(w.contains(&"特币".to_string()), "{w:?}");
        assert!(w.contains(&"大涨".to_string()), "{w:?}");
        assert!(w.contains(&"bitcoin".to_string()), "{w:?}");
    }

    #[test]
    fn latin_words_are_runs_and_emoji_stand_alone() {
        assert_eq!(
            words("Bitcoin🚀🚀 rose 5% — covid-19, don't"),
            [
                "bitcoin", "🚀", "🚀", "rose", "5", "covid", "19", "don", "t"
            ]
        );
    }

    #[test]
    fn terms_point_at_their_place_in_the_text() {
        let text = "Ёлка 東京都";
        for t in terms(text) {
            assert!(text.is_char_boundary(t.at.start) && text.is_char_boundary(t.at.end));
        }
        let t = terms(text);
        assert_eq!(&text[t[0].at.clone()], "Ёлка");
        let tokyo = t.iter().find(|t| t.text == "東京").unwrap();
        assert_eq!(&text[tokyo.at.clone()], "東京");
    }

    #[test]
    fn index_words_are_the_terms_joined() {
        for text in [
            "Bitcoin🚀🚀 rose 5% — covid-19, don't ÜBER straße ㈏ ¼ Ёлка",
            "今天比特币大涨了 bitcoin 비트코인이 ราคาทองคำ",
            "",
            " , ",
        ] {
            let joined: Vec<String> = terms(text).into_iter().map(|t| t.text).collect();
            assert_eq!(index_words(text), joined.join(" "), "{text}");
        }
    }

    #[test]
    fn thai_is_cut_by_the_dictionary() {
        let w = words("ราคาทองคำวันนี้");
        assert!(w.len() >= 2, "{w:?}");
        assert!(w.iter().all(|x| !x.is_empty()));
    }
}
