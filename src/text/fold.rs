//! Folding a word to the form the index, queries and alerts compare: NFKC (full-width Latin and
//! digits as ASCII, ligatures spelled out, half-width kana as kana), full case folding (ß = ss,
//! final sigma = sigma, Turkish dotted and dotless i = i), diacritics removed from Latin, Greek
//! and Cyrillic letters (so "ё" = "е" and "й" = "и", as the index has always read them), Arabic
//! and Hebrew points and the tatweel ignored, Arabic and Persian letter variants unified, emoji
//! variation selectors dropped.
//!
//! Everything the index's own tokenizer (FTS5 `unicode61 remove_diacritics 2`) would still fold
//! is folded here first, so a folded word is a fixed point of it: the term FTS5 stores is the
//! word this module made, and the alert matcher, comparing these words, agrees with the index
//! (`words_are_fixed_points_of_the_index_tokenizer` holds the two to that).

use icu_normalizer::ComposingNormalizerBorrowed;
use icu_normalizer::properties::{CanonicalDecompositionBorrowed, Decomposed};

/// `word` folded, appended to `out`. `word` holds word characters only (see `words`). Returns
/// true when the word took the fast path (ASCII letters and digits, basic Cyrillic): then the
/// folded word holds word characters only, without a look-up.
pub fn fold_into(word: &str, out: &mut String) -> bool {
    if word.is_ascii() {
        out.extend(word.bytes().map(|b| char::from(b.to_ascii_lowercase())));
        return true;
    }
    // Most words of most posts: Latin and Cyrillic without diacritics (й and ё decompose, so
    // they take the long way). Lower-casing them is arithmetic; NFKC and the diacritics table
    // leave them as they are.
    let basic = |c: char| {
        c.is_ascii_alphanumeric() || (('\u{410}'..='\u{44F}').contains(&c) && c != 'й' && c != 'Й')
    };
    if word.chars().all(basic) {
        for c in word.chars() {
            out.push(match c {
                'A'..='Z' => c.to_ascii_lowercase(),
                '\u{410}'..='\u{42F}' => char::from_u32(c as u32 + 0x20).unwrap_or(c),
                _ => c,
            });
        }
        return true;
    }
    let nfkc = ComposingNormalizerBorrowed::new_nfkc().normalize(word);
    for c in nfkc.chars() {
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
            continue;
        }
        if ignored(c) {
            continue;
        }
        match c {
            'ß' | 'ẞ' => out.push_str("ss"),
            'ς' => out.push('σ'),
            'ı' | 'İ' => out.push('i'),
            'ſ' => out.push('s'),
            _ => {
                let c = arabic_variant(c);
                for l in c.to_lowercase() {
                    push_without_diacritics(l, out);
                }
            }
        }
    }
    false
}

/// `word` folded.
pub fn fold(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    fold_into(word, &mut out);
    out
}

/// Characters that never count: combining diacritics (left over where NFKC found no precomposed
/// letter), Arabic harakat and Quranic marks, the tatweel, Hebrew points and cantillation,
/// variation selectors.
fn ignored(c: char) -> bool {
    matches!(c,
        '\u{300}'..='\u{36F}'
        | '\u{591}'..='\u{5BD}' | '\u{5BF}' | '\u{5C1}'..='\u{5C2}' | '\u{5C4}'..='\u{5C5}' | '\u{5C7}'
        | '\u{610}'..='\u{61A}' | '\u{640}' | '\u{64B}'..='\u{65F}' | '\u{670}'
        | '\u{6D6}'..='\u{6DC}' | '\u{6DF}'..='\u{6E4}' | '\u{6E7}'..='\u{6E8}' | '\u{6EA}'..='\u{6ED}'
        | '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}')
}

/// Arabic and Persian spellings of one letter, as one: Persian yeh and alef maksura as yeh,
/// keheh as kaf, the alefs with hamza or madda as alef, teh marbuta and heh variants as heh.
fn arabic_variant(c: char) -> char {
    match c {
        '\u{6CC}' | '\u{649}' => '\u{64A}',
        '\u{6A9}' => '\u{643}',
        '\u{622}' | '\u{623}' | '\u{625}' | '\u{671}' => '\u{627}',
        '\u{629}' | '\u{6C0}' | '\u{6BE}' | '\u{6C1}' => '\u{647}',
        _ => c,
    }
}

/// A lower-case letter without its diacritics, for Latin, Greek and Cyrillic (their combining
/// marks are U+0300..U+036F); other scripts' marks are part of their letters and kept.
fn push_without_diacritics(c: char, out: &mut String) {
    let latin_greek_cyrillic = matches!(c, '\u{C0}'..='\u{52F}' | '\u{1E00}'..='\u{1FFF}');
    if !latin_greek_cyrillic {
        out.push(c);
        return;
    }
    let d = CanonicalDecompositionBorrowed::new();
    let mut base = c;
    loop {
        match d.decompose(base) {
            Decomposed::Default => break,
            Decomposed::Singleton(s) => base = s,
            Decomposed::Expansion(first, _) => base = first,
        }
    }
    if !ignored(base) {
        out.push(base);
    }
}

#[cfg(test)]
mod tests {
    use super::fold;

    #[test]
    fn every_fold_the_issue_names() {
        let cases = [
            ("Bitcoin", "bitcoin"),
            ("ЁЛКА", "елка"),
            ("ёлка", "елка"),
            ("Йогурт", "иогурт"),
            ("STRASSE", "strasse"),
            ("Straße", "strasse"),
            ("ΣΟΦΟΣ", "σοφοσ"),
            ("σοφός", "σοφοσ"),
            ("İstanbul", "istanbul"),
            ("ıstanbul", "istanbul"),
            ("ISTANBUL", "istanbul"),
            ("Café", "cafe"),
            ("ＡＢＣ１２３", "abc123"),
            ("ﬁnance", "finance"),
            ("مُحَمَّد", "محمد"),
            ("كتـــاب", "كتاب"),
            ("یک", "يك"),
            ("کتاب", "كتاب"),
            ("أحمد", "احمد"),
            ("שָׁלוֹם", "שלום"),
            ("❤\u{FE0F}", "❤"),
            ("ｶﾞｯｺｳ", "ガッコウ"),
            ("비트코인", "비트코인"),
            ("ราคาทอง", "ราคาทอง"),
            ("हिन्दी", "हिन्दी"),
        ];
        for (word, want) in cases {
            assert_eq!(fold(word), want, "{word}");
        }
    }
}
