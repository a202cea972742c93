//! Text as search and alerts read it, the same for the index, for queries and for the alert
//! matcher: word boundaries in every script (`words`), folding (`fold`), the query language
//! (`query`) and the marked snippets of results (`snippet`).
//!
//! The index (`messages_fts`, migration 0017) holds what `index_words` makes of a post: its
//! words folded, separated by spaces. Queries are read by `Query::parse` into an expression
//! that is either rendered as an FTS5 query or evaluated over a post's terms by the alert
//! matcher, so the two cannot disagree.

pub mod fold;
pub mod query;
pub mod snippet;
pub mod words;

pub use query::{Expr, Query, QueryError, term_texts};
pub use snippet::{MATCH_END, MATCH_START, snippet};
pub use words::index_words;

/// The version of the word rules above. The index records the version it was built with
/// (`search_index.version`); a build whose rules differ rebuilds it when it opens the store.
pub const WORDS_VERSION: i64 = 1;

#[cfg(test)]
pub(crate) mod corpus_tests;
