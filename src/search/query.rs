//! Parsing what the user typed into a [`Query`].

use std::fmt;

use regex::Regex;

/// A fragment query. All forms are case-insensitive.
///
/// * `frag`: every word beginning with `frag`;
/// * `=word`: exactly that word;
/// * a `*` anywhere: a glob over the whole word (`*lock*`, `*_t`, `spin*irq`),
///   where `*` matches any run of characters and everything else is literal;
/// * `/re/`: every word the regular expression matches as a whole.
#[derive(Debug, Clone)]
pub enum Query {
    /// Words beginning with this lowercased prefix.
    Prefix(String),
    /// This lowercased word.
    Exact(String),
    /// Words fully matched by a glob or regex.
    Pattern {
        /// The pattern as typed.
        source: String,
        /// Anchored, case-insensitive regex.
        regex: Regex,
        /// A prefix every match must have (narrows the scan).
        literal_prefix: String,
    },
}

/// A query that cannot be understood: an invalid regular expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// The query as typed.
    pub query: String,
    /// Why it was refused.
    pub reason: String,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid query {:?}: {}", self.query, self.reason)
    }
}

impl std::error::Error for QueryError {}

/// Regexes from users are bounded so a hostile pattern cannot eat memory.
const REGEX_SIZE_LIMIT: usize = 64 << 20;

fn compile(query: &str, pattern: &str, case_insensitive: bool) -> Result<Regex, QueryError> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .case_insensitive(case_insensitive)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| QueryError {
            query: query.to_string(),
            // The regex crate's messages span several lines; keep the last,
            // which says what is wrong.
            reason: e
                .to_string()
                .lines()
                .last()
                .unwrap_or("invalid regex")
                .trim()
                .to_string(),
        })
}

impl Query {
    /// Parses a query.
    pub fn parse(text: &str) -> Result<Query, QueryError> {
        if let Some(word) = text.strip_prefix('=') {
            return Ok(Query::Exact(word.to_lowercase()));
        }
        if text.len() >= 2 && text.starts_with('/') && text.ends_with('/') {
            let pattern = &text[1..text.len() - 1];
            return Ok(Query::Pattern {
                source: text.to_string(),
                regex: compile(text, pattern, true)?,
                literal_prefix: String::new(),
            });
        }
        if text.contains('*') {
            let lower = text.to_lowercase();
            let pieces: Vec<String> = lower.split('*').map(regex::escape).collect();
            let literal_prefix = lower.split('*').next().unwrap_or_default().to_string();
            return Ok(Query::Pattern {
                source: text.to_string(),
                // Words are stored lowercased and the glob is lowercased the same
                // way, so its literals compare exactly (case folding would
                // also equate letters such as 'σ' and 'ς').
                regex: compile(text, &format!("(?s:{})", pieces.join(".*")), false)?,
                literal_prefix,
            });
        }
        Ok(Query::Prefix(text.to_lowercase()))
    }
}
