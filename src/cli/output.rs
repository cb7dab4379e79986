//! The two views of an answer: JSON Lines for scripts, and the human view
//! the prompt shows. Both are sinks over the same matches, so they can never
//! disagree about what matched.

use std::io::{self, Write};

use indexer::index::Index;

/// How many words and locations per word the human view shows by default.
pub const WORDS_SHOWN: usize = 20;
/// See [`WORDS_SHOWN`].
pub const LOCATIONS_SHOWN: usize = 10;

/// Writes one query's answer as JSON Lines: one object per word, words in
/// ascending byte order, locations in (path, line, column) order.
pub struct JsonSink {
    escaped_paths: Vec<Option<Box<str>>>,
}

impl JsonSink {
    /// A sink for answers over `index`.
    pub fn new(index: &Index) -> Self {
        JsonSink {
            escaped_paths: vec![None; index.files().len()],
        }
    }

    fn escaped_path(&mut self, index: &Index, file: u32) -> &str {
        let slot = &mut self.escaped_paths[file as usize];
        slot.get_or_insert_with(|| json_string(index.path(file)).into_boxed_str())
    }

    /// Writes every matching word of `query`.
    pub fn write(
        &mut self,
        out: &mut impl Write,
        index: &Index,
        query: &str,
        words: &[usize],
    ) -> io::Result<()> {
        let query = json_string(query);
        for &id in words {
            write!(
                out,
                "{{\"query\":{query},\"word\":{},\"count\":{},\"locations\":[",
                json_string(index.vocabulary().word_str(id)),
                index.count(id)
            )?;
            for (n, location) in index.locations(id).enumerate() {
                let path = self.escaped_path(index, location.file);
                let comma = if n == 0 { "" } else { "," };
                write!(
                    out,
                    "{comma}{{\"path\":{path},\"line\":{},\"column\":{}}}",
                    location.line, location.column
                )?;
            }
            out.write_all(b"]}\n")?;
        }
        Ok(())
    }
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_string())
}

/// Writes the human view: words most frequent first, each with its count
/// and `path:line:column` locations, bounded unless `all`.
pub fn write_human(
    out: &mut impl Write,
    index: &Index,
    query: &str,
    words: &[usize],
    all: bool,
) -> io::Result<()> {
    if words.is_empty() {
        return writeln!(out, "no words match {query:?}");
    }
    let mut ranked = words.to_vec();
    // `words` is in byte order and the sort is stable: ties stay alphabetical.
    ranked.sort_by_key(|&id| std::cmp::Reverse(index.count(id)));
    let shown = if all {
        ranked.len()
    } else {
        ranked.len().min(WORDS_SHOWN)
    };
    for &id in &ranked[..shown] {
        let count = index.count(id);
        writeln!(out, "{} ({count})", index.vocabulary().word_str(id))?;
        let limit = if all { usize::MAX } else { LOCATIONS_SHOWN };
        for location in index.locations(id).take(limit) {
            writeln!(
                out,
                "  {}:{}:{}",
                index.path(location.file),
                location.line,
                location.column
            )?;
        }
        let hidden = (count as usize).saturating_sub(limit);
        if hidden > 0 {
            writeln!(out, "  ... and {hidden} more locations")?;
        }
    }
    if shown < ranked.len() {
        writeln!(
            out,
            "... and {} more words (--all or :all shows every one)",
            ranked.len() - shown
        )?;
    }
    Ok(())
}
