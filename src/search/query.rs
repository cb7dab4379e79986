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
        /// Anchored regex over the whole word.
        regex: Regex,
        /// What every match must satisfy, so most words are ruled out
        /// without running the regex.
        filter: Filter,
        /// The same pattern for a DFA run along the sorted words
        /// (see `search::automaton`): the regex with its flags, or the
        /// glob with σ and ς as one letter.
        automaton: String,
    },
}

/// Cheap necessary conditions on the words a pattern can match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Every match begins with this (narrows the scan to a prefix range).
    pub prefix: String,
    /// Every match contains this (found with a substring search over the
    /// whole vocabulary at once).
    pub needle: String,
    /// Every match ends with this.
    pub suffix: String,
    /// Bounds on a match's length in bytes.
    pub min_len: usize,
    /// For globs: the literal pieces between the `*`s. A word matches when
    /// it starts with the first, ends with the last and holds the others in
    /// order between them, which is checked directly, without the regex.
    pub glob: Option<Vec<String>>,
    /// See `min_len`; `usize::MAX` when unbounded.
    pub max_len: usize,
    /// True when holding one literal (`*lock*`, `/.*lock.*/`) or ending
    /// with it (`*_t`, `/.*_irq/`) is all a match needs: the search that
    /// finds the words holding it byte for byte then decides alone, with
    /// no second look at each word. Not so where the literal has a sigma
    /// (either spelling matches it) or, in a regex, goes past ASCII.
    pub literal_alone: bool,
}

/// `a == b` for the short strings of glob matching, without a call into
/// the C library's `memcmp` per comparison, and with σ (CF 83) and ς
/// (CF 82) taken as the same letter, as a case-insensitive match must.
#[inline]
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    for i in 0..a.len() {
        if a[i] != b[i] {
            let sigmas = (a[i] | 1) == 0x83 && (b[i] | 1) == 0x83 && i > 0 && a[i - 1] == 0xCF;
            if !sigmas {
                return false;
            }
        }
    }
    true
}

/// Where `needle` (not empty) first occurs in the short `haystack`.
#[inline]
fn find_short(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let last = haystack.len().checked_sub(needle.len())?;
    (0..=last)
        .find(|&at| haystack[at] == needle[0] && same(&haystack[at..at + needle.len()], needle))
}

impl Filter {
    /// The literal every match ends with, matched byte for byte, when it
    /// is at least as long as the needle (so searching for it at words'
    /// ends rules out at least as many blocks as the needle would).
    pub fn searchable_suffix(&self) -> Option<&str> {
        let suffix = match &self.glob {
            // A glob's last piece, unless it holds a sigma (either spelling
            // matches it, so it is not matched byte for byte).
            Some(pieces) if pieces.len() >= 2 => {
                pieces.last().filter(|last| !last.contains(['σ', 'ς']))?
            }
            Some(_) => return None,
            None => &self.suffix,
        };
        (!suffix.is_empty() && suffix.len() >= self.needle.len()).then_some(suffix.as_str())
    }

    /// True if `word` matches the glob's pieces (see [`Filter::glob`]).
    pub fn glob_matches(pieces: &[String], word: &[u8]) -> bool {
        let Some((first, rest)) = pieces.split_first() else {
            return true;
        };
        let (first, rest_bytes) = (first.as_bytes(), rest);
        let Some((last, middle)) = rest_bytes.split_last() else {
            return same(word, first);
        };
        let last = last.as_bytes();
        if word.len() < first.len() + last.len()
            || !same(&word[..first.len()], first)
            || !same(&word[word.len() - last.len()..], last)
        {
            return false;
        }
        let mut inside = &word[first.len()..word.len() - last.len()];
        for piece in middle
            .iter()
            .map(String::as_bytes)
            .filter(|p| !p.is_empty())
        {
            match find_short(inside, piece) {
                Some(at) => inside = &inside[at + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

/// What a case-insensitive regex's syntax tree says about every word it
/// matches in full: length bounds, a literal prefix and a literal it must
/// contain. Words are lowercase, so a letter class such as `[Kk]` stands for
/// the one lowercase letter all its members lowercase to.
fn regex_filter(pattern: &str) -> Filter {
    use regex_syntax::hir::{Class, HirKind};

    let Ok(mut hir) = regex_syntax::ParserBuilder::new()
        .case_insensitive(true)
        .build()
        .parse(pattern)
    else {
        return Filter {
            max_len: usize::MAX,
            ..Filter::default()
        };
    };
    let properties = hir.properties();
    let mut filter = Filter {
        min_len: properties.minimum_len().unwrap_or(0),
        max_len: properties.maximum_len().unwrap_or(usize::MAX),
        ..Filter::default()
    };
    while let HirKind::Capture(capture) = hir.kind() {
        hir = (*capture.sub).clone();
    }
    // The literal text one node of a concatenation requires, if any.
    let literal = |node: &regex_syntax::hir::Hir| -> Option<String> {
        match node.kind() {
            HirKind::Literal(lit) => std::str::from_utf8(&lit.0).ok().map(str::to_string),
            HirKind::Class(Class::Unicode(class)) => {
                let mut lowered: Option<String> = None;
                let mut members = 0;
                for range in class.ranges() {
                    for c in range.start()..=range.end() {
                        members += 1;
                        if members > 8 {
                            return None;
                        }
                        let lower: String = c.to_lowercase().collect();
                        match &lowered {
                            Some(l) if *l != lower => return None,
                            _ => lowered = Some(lower),
                        }
                    }
                }
                lowered
            }
            _ => None,
        }
    };
    let nodes: Vec<regex_syntax::hir::Hir> = match hir.kind() {
        HirKind::Concat(nodes) => nodes.clone(),
        _ => vec![hir.clone()],
    };
    let mut run = String::new();
    let mut at_start = true;
    for node in &nodes {
        match literal(node) {
            Some(text) => run.push_str(&text),
            None => {
                if at_start {
                    filter.prefix = run.clone();
                }
                at_start = false;
                if run.len() > filter.needle.len() {
                    filter.needle = std::mem::take(&mut run);
                }
                run.clear();
            }
        }
    }
    if at_start {
        filter.prefix = run.clone();
    }
    filter.suffix = run.clone();
    if run.len() > filter.needle.len() {
        filter.needle = run;
    }
    // Words hold no line feed, so `.*` is any text in them.
    let any_text = |node: &regex_syntax::hir::Hir| {
        use regex_syntax::hir::{Dot, Hir};
        matches!(node.kind(), HirKind::Repetition(r) if r.min == 0 && r.max.is_none()
            && (*r.sub == Hir::dot(Dot::AnyCharExceptLF) || *r.sub == Hir::dot(Dot::AnyChar)))
    };
    filter.literal_alone = match nodes.split_first() {
        Some((first, rest)) if any_text(first) => {
            let rest = match rest.split_last() {
                Some((last, before)) if any_text(last) => before,
                _ => rest,
            };
            // ASCII only: there a letter's class is known to lower to the
            // one letter a lowercase word holds; beyond it, the words found
            // are checked again rather than trusting every script's case.
            let literal: Option<String> = rest.iter().map(&literal).collect();
            literal.is_some_and(|l| !l.is_empty() && l.is_ascii() && l == filter.needle)
        }
        _ => false,
    };
    filter
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
    let full = format!("^(?:{pattern})$");
    regex::RegexBuilder::new(&full)
        .case_insensitive(case_insensitive)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| QueryError {
            query: query.to_string(),
            reason: match e {
                regex::Error::CompiledTooBig(limit) => {
                    format!("the pattern compiles to more than {} MiB", limit >> 20)
                }
                _ => syntax_problem(&full, case_insensitive),
            },
        })
}

/// What is wrong with a pattern the regex crate refused, from the parser's
/// typed error (the regex crate hands it on as rendered text only).
fn syntax_problem(pattern: &str, case_insensitive: bool) -> String {
    let parsed = regex_syntax::ParserBuilder::new()
        .case_insensitive(case_insensitive)
        .build()
        .parse(pattern);
    match parsed {
        Err(regex_syntax::Error::Parse(e)) => e.kind().to_string(),
        Err(regex_syntax::Error::Translate(e)) => e.kind().to_string(),
        _ => "invalid regex".to_string(),
    }
}

impl Query {
    /// Parses a query.
    pub fn parse(text: &str) -> Result<Query, QueryError> {
        if let Some(word) = text.strip_prefix('=') {
            return Ok(Query::Exact(word.to_lowercase()));
        }
        if text.len() >= 2 && text.starts_with('/') && text.ends_with('/') {
            let pattern = &text[1..text.len() - 1];
            let regex = compile(text, pattern, true)?;
            return Ok(Query::Pattern {
                source: text.to_string(),
                regex,
                filter: regex_filter(pattern),
                automaton: format!("(?i:{pattern})"),
            });
        }
        if text.contains('*') {
            let lower = text.to_lowercase();
            let pieces: Vec<String> = lower.split('*').map(regex::escape).collect();
            let literals: Vec<&str> = lower.split('*').collect();
            let fixed: usize = literals.iter().map(|l| l.len()).sum();
            // The prefix and needle are matched byte for byte, so they stop
            // short of any sigma (which matches either spelling).
            let before_sigma = |l: &str| l.split(['σ', 'ς']).next().unwrap_or_default().to_string();
            let filter = Filter {
                prefix: before_sigma(literals.first().copied().unwrap_or_default()),
                needle: literals
                    .iter()
                    .map(|l| before_sigma(l))
                    .max_by_key(String::len)
                    .unwrap_or_default(),
                min_len: fixed,
                max_len: usize::MAX,
                suffix: String::new(),
                glob: Some(literals.iter().map(|l| l.to_string()).collect()),
                literal_alone: match literals.as_slice() {
                    ["", literal, ""] | ["", literal] => {
                        !literal.is_empty() && !literal.contains(['σ', 'ς'])
                    }
                    _ => false,
                },
            };
            let sigma_free: Vec<String> = pieces
                .iter()
                .map(|p| p.replace(['σ', 'ς'], "[σς]"))
                .collect();
            return Ok(Query::Pattern {
                source: text.to_string(),
                // Kept for completeness; globs are matched by their pieces.
                regex: compile(text, &format!("(?s:{})", pieces.join(".*")), false)?,
                filter,
                automaton: format!("(?s:{})", sigma_free.join(".*")),
            });
        }
        Ok(Query::Prefix(text.to_lowercase()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmas_match_either_spelling_in_globs() {
        let pieces: Vec<String> = vec!["".into(), "δυς".into(), "".into()];
        assert!(same("υσ".as_bytes(), "υς".as_bytes()));
        assert!(Filter::glob_matches(&pieces, "οδυσσέας".as_bytes()));
    }
}
