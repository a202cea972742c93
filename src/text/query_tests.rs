use super::*;

fn fts(q: &str) -> String {
    Query::parse(q).unwrap().expr.to_fts5()
}

fn hit(q: &str, text: &str) -> bool {
    Query::parse(q).unwrap().expr.matches(&term_texts(text))
}

#[test]
fn syntax_is_read_and_everything_else_is_quoted_text() {
    assert_eq!(fts("rate cut"), r#"("rate" AND "cut")"#);
    assert_eq!(fts("\"rate cut\""), r#""rate cut""#);
    assert_eq!(fts("bitc*"), r#""bitc"*"#);
    assert_eq!(fts("a OR b NOT c"), r#"("a" OR ("b" NOT "c"))"#);
    assert_eq!(fts("(a OR b) c"), r#"(("a" OR "b") AND "c")"#);
    assert_eq!(fts("https://t.me/x"), r#""https t me x""#);
    assert_eq!(fts("price: 100"), r#"("price" AND "100")"#);
    assert_eq!(fts("covid-19"), r#""covid 19""#);
    assert_eq!(fts("NEAR(a b)"), r#"("near" AND ("a" AND "b"))"#);
}

#[test]
fn what_does_not_parse_is_plain_words_and_nothing_is_an_error() {
    let q = Query::parse("a OR").unwrap();
    assert!(q.as_words);
    assert_eq!(q.expr.to_fts5(), r#"("a" AND "or")"#);
    assert!(Query::parse("(a").unwrap().as_words);
    assert!(Query::parse("NOT a").unwrap().as_words);
    assert!(matches!(Query::parse("*"), Err(QueryError::Empty(_))));
    assert!(matches!(Query::parse(" — ! "), Err(QueryError::Empty(_))));
    assert!(matches!(Query::parse(""), Err(QueryError::Empty(_))));
}

#[test]
fn words_inside_cjk_runs_are_found() {
    let post = "今天比特币大涨了 bitcoin";
    assert!(hit("比特币", post));
    assert!(hit("大涨", post));
    assert!(hit("bitcoin", post));
    assert!(hit("比特*", post));
    assert!(!hit("以太坊", post));
    assert!(hit("東京", "東京都に行きました"));
    assert!(hit("비트코인", "비트코인이 올랐다"));
    assert!(!hit("이더리움", "비트코인이 올랐다"));
}

#[test]
fn not_excludes_and_phrases_need_their_order() {
    assert!(hit("rate NOT hike", "rate cut"));
    assert!(!hit("rate NOT hike", "rate hike"));
    assert!(hit("\"rate cut\"", "the rate cut came"));
    assert!(!hit("\"rate cut\"", "cut the rate"));
}
