//! The two views of an answer: JSON Lines for scripts, and the human view
//! the prompt shows. Both are sinks over the same matches, so they can never
//! disagree about what matched.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};

use indexer::index::{Hit, View};

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
    pub fn new(view: &View) -> Self {
        JsonSink {
            escaped_paths: vec![None; view.files().len()],
        }
    }

    fn escaped_path(&mut self, view: &View, file: u32) -> String {
        match self.escaped_paths.get_mut(file as usize) {
            Some(slot) => slot
                .get_or_insert_with(|| json_string(view.path(file)).into_boxed_str())
                .to_string(),
            None => json_string(view.path(file)),
        }
    }

    /// Writes every matching word of `query`.
    pub fn write(
        &mut self,
        out: &mut impl Write,
        view: &View,
        query: &str,
        words: &[Hit],
    ) -> io::Result<()> {
        let query = json_string(query);
        for hit in words {
            write!(
                out,
                "{{\"query\":{query},\"word\":{},\"count\":{},\"locations\":[",
                json_string(&view.word(hit)),
                view.count(hit)
            )?;
            for (n, location) in view.locations(hit).enumerate() {
                let path = self.escaped_path(view, location.file);
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

/// The human view of an answer: words most frequent first, each with its
/// count and first locations, bounded unless `all`. Prepared before any of
/// it is printed: the locations it shows are read (and so verified) first,
/// so a damaged index is reported instead of half an answer.
pub struct HumanAnswer<'a> {
    query: &'a str,
    /// (count, word), most frequent first.
    ranked: Vec<(u64, &'a Hit)>,
    shown: usize,
    all: bool,
    /// The locations shown, per word shown (unless `all`: streamed then).
    locations: Vec<Vec<indexer::index::Location>>,
}

impl<'a> HumanAnswer<'a> {
    /// Ranks `words` and reads the locations to show. With `all`, every
    /// location is printed as it is read: the caller verifies first.
    pub fn prepare(view: &View, query: &'a str, words: &'a [Hit], all: bool) -> Self {
        let mut ranked: Vec<(u64, &Hit)> = words.iter().map(|h| (view.count(h), h)).collect();
        // `words` is in byte order and the sort is stable: ties stay alphabetical.
        ranked.sort_by_key(|&(count, _)| std::cmp::Reverse(count));
        let shown = if all {
            ranked.len()
        } else {
            ranked.len().min(WORDS_SHOWN)
        };
        let locations = match all {
            true => Vec::new(),
            false => ranked[..shown]
                .iter()
                .map(|&(_, hit)| view.first_locations(hit, LOCATIONS_SHOWN))
                .collect(),
        };
        HumanAnswer {
            query,
            ranked,
            shown,
            all,
            locations,
        }
    }

    /// Prints the answer.
    pub fn write(&self, out: &mut impl Write, view: &View) -> io::Result<()> {
        if self.ranked.is_empty() {
            return writeln!(out, "no words match {:?}", self.query);
        }
        let limit = if self.all {
            usize::MAX
        } else {
            LOCATIONS_SHOWN
        };
        let print = |out: &mut dyn Write, location: indexer::index::Location| {
            writeln!(
                out,
                "  {}:{}:{}",
                escape_controls(view.path(location.file)),
                location.line,
                location.column
            )
        };
        for (k, &(count, hit)) in self.ranked[..self.shown].iter().enumerate() {
            writeln!(out, "{} ({count})", view.word(hit))?;
            match self.locations.get(k) {
                Some(locations) => {
                    for &location in locations {
                        print(out, location)?;
                    }
                }
                None => {
                    for location in view.locations(hit) {
                        print(out, location)?;
                    }
                }
            }
            let hidden = (count as usize).saturating_sub(limit);
            if hidden > 0 {
                writeln!(out, "  ... and {hidden} more locations")?;
            }
        }
        if self.shown < self.ranked.len() {
            writeln!(
                out,
                "... and {} more words (--all or :all shows every one)",
                self.ranked.len() - self.shown
            )?;
        }
        Ok(())
    }
}

/// Writes the human view of `words` (see [`HumanAnswer`]).
pub fn write_human(
    out: &mut impl Write,
    view: &View,
    query: &str,
    words: &[Hit],
    all: bool,
) -> io::Result<()> {
    HumanAnswer::prepare(view, query, words, all).write(out, view)
}

/// `text` with control characters escaped (`\n`, `\t`, `\r`, `\x1b`,
/// `\u{85}`), so a file name cannot break a line of the human view or
/// send the terminal an escape sequence. JSON escapes them itself.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() && (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(escape_controls("a/b ü.txt"), "a/b ü.txt");
        assert_eq!(
            escape_controls("a\nb\tc\u{1b}[31md\u{85}e\\"),
            "a\\nb\\tc\\x1b[31md\\u{85}e\\"
        );
    }
}
