//! The two views of an answer: JSON Lines for scripts, and the human view
//! the prompt shows. Both are sinks over the same matches, so they can never
//! disagree about what matched.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};

use std::path::PathBuf;

use indexer::index::{Damaged, Location, View};

use super::answer::Entry;

use super::lines::{word_extent, FileState, Line, Lines};
use super::style::{Colors, Part};

/// A damaged saved index met while writing, as the write's error: the
/// callers verify what they print first, so this is the backstop that
/// stops output rather than print an answer short of occurrences.
pub fn damaged(damaged: Damaged) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, damaged)
}

/// True for the error [`damaged`] makes.
pub fn is_damaged(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Damaged>())
}

/// How many words and locations per word the human view shows by default.
pub const WORDS_SHOWN: usize = 20;
/// See [`WORDS_SHOWN`].
pub const LOCATIONS_SHOWN: usize = 10;

/// Writes one query's answer as JSON Lines: one object per word, words in
/// ascending byte order, locations in (path, line, column) order.
pub struct JsonSink {
    /// The escaped path of the file the last location was in. A word's
    /// locations come in file order, so the locations of one file follow
    /// each other, and one path kept does what a table of every file
    /// named did, without its fresh memory (see [`JSON_PAGE`]).
    last_path: Option<(u32, String)>,
    /// With `--text`: where lines are read from (`Some(None)`: the tree is
    /// not there, and every text is null).
    text: Option<Option<PathBuf>>,
    /// A page of locations as text, written at once.
    page_text: Vec<u8>,
}

/// Locations per page when no line is read: enough to write in large
/// pieces, few enough that the page and its text reuse memory already
/// touched. A process's fresh pages cost 3-6 us each on a guest that
/// hands freed memory back to its host: answering the kernel index's
/// `spin_lock_irq` (20 thousand locations in 3.8 thousand files) with
/// pages of [`PAGE`] and a table of escaped paths faulted in 526 pages,
/// 346 more than `--version`; with these pages and one path kept, 261.
const JSON_PAGE: usize = 256;

impl JsonSink {
    /// A sink for answers; `text` as [`JsonSink::text`].
    pub fn new(text: Option<Option<&std::path::Path>>) -> Self {
        JsonSink {
            last_path: None,
            text: text.map(|tree| tree.map(PathBuf::from)),
            page_text: Vec::new(),
        }
    }

    /// Writes every matching word of `query`.
    pub fn write(
        &mut self,
        out: &mut impl Write,
        view: &View,
        query: &str,
        words: &[Entry],
    ) -> io::Result<()> {
        let query = json_string(query);
        // With `--text`, large pages: each file of a page is read once.
        let page_len = match self.text {
            Some(_) => PAGE,
            None => JSON_PAGE,
        };
        let mut page = Vec::with_capacity(page_len);
        let mut reader = view.word_reader();
        for entry in words {
            write!(
                out,
                "{{\"query\":{query},\"word\":{},\"count\":{},\"locations\":[",
                json_string(&entry.word_from(&mut reader).map_err(damaged)?),
                entry.count()
            )?;
            let mut locations = entry.locations(view).map_err(damaged)?;
            let mut n = 0;
            loop {
                page.clear();
                page.extend(locations.by_ref().take(page_len));
                if page.is_empty() {
                    break;
                }
                let lines = self
                    .text
                    .as_ref()
                    .map(|tree| Lines::read(view, tree.as_deref(), &page));
                // By hand, a page into one buffer: tens of thousands of
                // locations per answer, where `write!` spends more on
                // formatting than on the bytes.
                let text = &mut self.page_text;
                text.clear();
                for location in &page {
                    let path = match &self.last_path {
                        Some((file, path)) if *file == location.file => path,
                        _ => {
                            let path = json_string(view.path(location.file).map_err(damaged)?);
                            &self.last_path.insert((location.file, path)).1
                        }
                    };
                    if n > 0 {
                        text.push(b',');
                    }
                    n += 1;
                    text.extend_from_slice(b"{\"path\":");
                    text.extend_from_slice(path.as_bytes());
                    text.extend_from_slice(b",\"line\":");
                    push_number(text, location.line);
                    text.extend_from_slice(b",\"column\":");
                    push_number(text, location.column);
                    match lines.as_ref().map(|lines| lines.line(location)) {
                        None => {}
                        Some(Some(line)) => {
                            text.extend_from_slice(b",\"text\":");
                            let line = json_string(&String::from_utf8_lossy(&line.text));
                            text.extend_from_slice(line.as_bytes());
                        }
                        Some(None) => text.extend_from_slice(b",\"text\":null"),
                    }
                    text.push(b'}');
                }
                out.write_all(text)?;
            }
            out.write_all(b"]}\n")?;
        }
        Ok(())
    }
}

/// `n` in decimal.
fn push_number(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_string())
}

/// How the human view lays out locations (see README, "What a location
/// shows").
#[derive(Debug, Clone)]
pub struct Layout {
    /// Locations grouped under a heading per file; else one
    /// `path:line:column:text` line each, for editors and scripts.
    pub heading: bool,
    /// Locations numbered for `:open N` (the prompt).
    pub numbered: bool,
    /// Terminal columns: longer lines are cut around the match.
    pub width: Option<usize>,
    pub colors: Colors,
    /// Shown before each relative path (the tree as reachable from here).
    pub shown_root: Option<PathBuf>,
    /// Where lines are read from; `None` shows locations without text.
    pub tree: Option<PathBuf>,
}

impl Layout {
    /// The path of `file` as shown.
    pub fn path(&self, view: &View, file: u32) -> io::Result<String> {
        let relative = view.path(file).map_err(damaged)?;
        let shown = match &self.shown_root {
            Some(root) if !root.as_os_str().is_empty() => {
                root.join(relative).to_string_lossy().into_owned()
            }
            _ => relative.to_string(),
        };
        Ok(escape_controls(&shown).into_owned())
    }
}

/// Locations as they are printed, numbered in order for `:open N`.
#[derive(Debug, Default)]
pub struct Shown {
    pub locations: Vec<Location>,
    /// The file whose heading was printed last.
    last_file: Option<u32>,
}

impl Shown {
    /// The next location starts under a new heading.
    pub fn forget_heading(&mut self) {
        self.last_file = None;
    }
}

/// The human view of an answer: words most frequent first, each with its
/// count and first locations, bounded unless `all`. Prepared before any of
/// it is printed: the locations it shows are read (and so verified) first,
/// so a damaged index is reported instead of half an answer.
pub struct HumanAnswer<'a> {
    query: &'a str,
    /// (count, word), most frequent first.
    ranked: Vec<(u64, &'a Entry)>,
    shown: usize,
    all: bool,
    /// The locations shown, per word shown (unless `all`: streamed then).
    locations: Vec<Vec<Location>>,
    lines: Lines,
}

impl<'a> HumanAnswer<'a> {
    /// Ranks `words` and reads the locations to show, and their lines.
    /// With `all`, every location is printed as it is read: the caller
    /// verifies first.
    pub fn prepare(
        view: &View,
        layout: &Layout,
        query: &'a str,
        words: &'a [Entry],
        all: bool,
    ) -> Result<Self, Damaged> {
        let ranked = rank(words);
        let shown = if all {
            ranked.len()
        } else {
            ranked.len().min(WORDS_SHOWN)
        };
        let locations: Vec<Vec<Location>> = match all {
            true => Vec::new(),
            false => ranked[..shown]
                .iter()
                .map(|&(_, entry)| entry.first(view, LOCATIONS_SHOWN))
                .collect::<Result<_, Damaged>>()?,
        };
        let flat: Vec<Location> = locations.iter().flatten().copied().collect();
        // Paths are checked as they are read: read them all before the
        // first line (in full, `View::verify` did).
        for location in &flat {
            view.path(location.file)?;
        }
        let lines = Lines::read(view, layout.tree.as_deref(), &flat);
        Ok(HumanAnswer {
            query,
            ranked,
            shown,
            all,
            locations,
            lines,
        })
    }

    /// Prints the answer; numbered locations are added to `shown`.
    pub fn write(
        &self,
        out: &mut (impl Write + ?Sized),
        view: &View,
        layout: &Layout,
        shown: &mut Shown,
    ) -> io::Result<()> {
        if self.ranked.is_empty() {
            return writeln!(out, "no words match {:?}", self.query);
        }
        let limit = if self.all {
            usize::MAX
        } else {
            LOCATIONS_SHOWN
        };
        for (k, &(count, entry)) in self.ranked[..self.shown].iter().enumerate() {
            if layout.heading {
                let word = entry.word(view).map_err(damaged)?;
                writeln!(out, "{} ({count})", escape_controls(&word))?;
                shown.last_file = None;
            }
            match self.locations.get(k) {
                Some(locations) => {
                    write_locations(out, view, layout, locations, &self.lines, shown)?
                }
                None => {
                    // Every location (`all`): read a page at a time.
                    let mut page = Vec::with_capacity(PAGE);
                    let mut locations = entry.locations(view).map_err(damaged)?;
                    loop {
                        page.clear();
                        page.extend(locations.by_ref().take(PAGE));
                        if page.is_empty() {
                            break;
                        }
                        let lines = Lines::read(view, layout.tree.as_deref(), &page);
                        write_locations(out, view, layout, &page, &lines, shown)?;
                    }
                }
            }
            let hidden = (count as usize).saturating_sub(limit);
            if hidden > 0 && layout.heading {
                let how = if layout.numbered { ":more" } else { "--all" };
                writeln!(out, "  ... and {hidden} more locations ({how} shows them)")?;
            }
        }
        if self.shown < self.ranked.len() && layout.heading {
            writeln!(
                out,
                "... and {} more words (--all or :all shows every one)",
                self.ranked.len() - self.shown
            )?;
        }
        Ok(())
    }
}

/// `-c`: each word and its count, most frequent first (as JSON objects
/// without locations when `json` gives the query).
pub fn write_counts(
    out: &mut impl Write,
    view: &View,
    words: &[Entry],
    json: Option<&str>,
) -> io::Result<()> {
    // The words read first, in their (word) order, so a saved
    // vocabulary's blocks are decoded once each: ranked by count, they
    // would be read at random, a block decoded per word.
    let mut reader = view.word_reader();
    let mut text = String::new();
    let mut ends = Vec::with_capacity(words.len());
    for entry in words {
        text.push_str(&entry.word_from(&mut reader).map_err(damaged)?);
        ends.push(text.len());
    }
    let query = json.map(json_string);
    // Words hold no control characters unless the index is damaged: one
    // check of them all spares a check of each.
    let clean = !has_control_bytes(&text);
    for (k, count) in rank_positions(words) {
        let start = k.checked_sub(1).map_or(0, |j| ends[j]);
        let word = &text[start..ends[k]];
        match &query {
            Some(query) => writeln!(
                out,
                "{{\"query\":{query},\"word\":{},\"count\":{count}}}",
                json_string(word)
            )?,
            None if clean => writeln!(out, "{word}:{count}")?,
            None => writeln!(out, "{}:{count}", escape_controls(word))?,
        }
    }
    Ok(())
}

/// `-l`: the files holding any of `words`, in path order, once each.
pub fn write_files(
    out: &mut impl Write,
    view: &View,
    layout: &Layout,
    words: &[Entry],
) -> io::Result<()> {
    let mut holds = vec![false; view.files().len()];
    for entry in words {
        for location in entry.locations(view).map_err(damaged)? {
            if let Some(h) = holds.get_mut(location.file as usize) {
                *h = true;
            }
        }
    }
    for (file, _) in holds.iter().enumerate().filter(|(_, &h)| h) {
        let path = layout.path(view, file as u32)?;
        writeln!(out, "{}", layout.colors.paint(Part::Path, &path))?;
    }
    Ok(())
}

/// Locations read (with their lines) a page at a time when an answer is
/// printed in full or narrowed by spelling.
pub(super) const PAGE: usize = 4096;

/// The positions in `words` with their counts, most frequent first
/// (ties in byte order).
fn rank_positions(words: &[Entry]) -> Vec<(usize, u64)> {
    let mut ranked: Vec<(usize, u64)> = words.iter().map(Entry::count).enumerate().collect();
    // `words` is in byte order: ties stay alphabetical by their position.
    ranked.sort_unstable_by_key(|&(k, count)| (std::cmp::Reverse(count), k));
    ranked
}

/// `words` with their counts, most frequent first (ties in byte order).
fn rank(words: &[Entry]) -> Vec<(u64, &Entry)> {
    rank_positions(words)
        .into_iter()
        .map(|(k, count)| (count, &words[k]))
        .collect()
}

/// The locations after the first page of an answer, in the order `:more`
/// shows them (each shown word's hidden locations, then the words not
/// shown): `n` of them from the `from`th on, grouped by word.
pub fn rest_of_answer<'a>(
    view: &View,
    words: &'a [Entry],
    from: usize,
    n: usize,
) -> Result<Vec<(&'a Entry, Vec<Location>)>, Damaged> {
    let mut out: Vec<(&Entry, Vec<Location>)> = Vec::new();
    let (mut skipped, mut taken) = (0usize, 0usize);
    for (k, &(count, entry)) in rank(words).iter().enumerate() {
        let first = if k < WORDS_SHOWN { LOCATIONS_SHOWN } else { 0 };
        let rest = (count as usize).saturating_sub(first);
        if skipped + rest <= from {
            skipped += rest;
            continue;
        }
        let skip = first + (from + taken).saturating_sub(skipped);
        let want = n - taken;
        let got: Vec<Location> = entry
            .first(view, skip + want)?
            .into_iter()
            .skip(skip)
            .take(want)
            .collect();
        taken += got.len();
        out.push((entry, got));
        skipped += rest;
        if taken == n {
            break;
        }
    }
    Ok(out)
}

/// Prints `locations` (all of one word, in path order) with their lines.
pub fn write_locations(
    out: &mut (impl Write + ?Sized),
    view: &View,
    layout: &Layout,
    locations: &[Location],
    lines: &Lines,
    shown: &mut Shown,
) -> io::Result<()> {
    let colors = &layout.colors;
    for &location in locations {
        let number = if layout.numbered {
            shown.locations.push(location);
            format!("{:>4}  ", shown.locations.len())
        } else {
            String::new()
        };
        // What comes before the text: with headings `line:column:`, else
        // `path:line:column:`; its width (without colours) bounds the text.
        let (path, path_width) = if layout.heading {
            if shown.last_file != Some(location.file) {
                shown.last_file = Some(location.file);
                let mark = match lines.state(location.file) {
                    FileState::Same => "",
                    FileState::Changed => " (changed since indexed)",
                    FileState::Missing if layout.tree.is_some() => " (not readable now)",
                    FileState::Missing => "",
                };
                let path = layout.path(view, location.file)?;
                writeln!(out, "{}{mark}", colors.paint(Part::Path, &path))?;
            }
            (String::new(), 0)
        } else {
            let path = layout.path(view, location.file)?;
            let width = path.chars().count() + 1;
            (format!("{}:", colors.paint(Part::Path, &path)), width)
        };
        write!(
            out,
            "{number}{path}{}:{}",
            colors.paint(Part::Line, &location.line.to_string()),
            colors.paint(Part::Column, &location.column.to_string())
        )?;
        match lines.line(&location) {
            Some(line) => {
                let prefix =
                    number.len() + path_width + digits(location.line) + digits(location.column) + 2;
                let avail = layout.width.map(|w| w.saturating_sub(prefix + 1));
                writeln!(out, ":{}", render(line, location.column, colors, avail))?;
            }
            None => writeln!(out)?,
        }
    }
    Ok(())
}

fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// The line's text with the word at `column` highlighted, cut to `avail`
/// characters around it (with `…` where cut), control characters escaped.
pub fn render(line: &Line, column: u64, colors: &Colors, avail: Option<usize>) -> String {
    let at = usize::try_from(column.saturating_sub(1).saturating_sub(line.start))
        .unwrap_or(usize::MAX)
        .min(line.text.len());
    let len = word_extent(&line.text, at);
    let clean = |bytes: &[u8]| -> Vec<char> {
        let text = String::from_utf8_lossy(bytes);
        let text = match avail {
            // Tabs are as wide as the terminal likes: a space when cutting.
            Some(_) => text.replace('\t', " "),
            None => text.into_owned(),
        };
        escape_text(&text).chars().collect()
    };
    let mut before = clean(&line.text[..at]);
    let word = clean(&line.text[at..at + len]);
    let mut after = clean(&line.text[at + len..]);
    let mut cut_front = line.start > 0;
    let mut cut_back = false;
    if let Some(avail) = avail {
        let total = before.len() + word.len() + after.len();
        if total > avail {
            let room = avail.saturating_sub(word.len() + 2);
            // A third of the room before the match, more if the line
            // ends sooner.
            let left = before
                .len()
                .min((room / 3).max(room.saturating_sub(after.len())));
            let right = room - left;
            if before.len() > left {
                before.drain(..before.len() - left);
                cut_front = true;
            }
            if after.len() > right {
                after.truncate(right);
                cut_back = true;
            }
        }
    }
    let mut text = String::new();
    if cut_front {
        text.push('…');
    }
    text.extend(before);
    text.push_str(&colors.paint(Part::Match, &word.iter().collect::<String>()));
    text.extend(after);
    if cut_back {
        text.push('…');
    }
    text
}

/// A line's text with control characters other than tabs escaped (see
/// [`escape_controls`]): a file cannot send the terminal an escape sequence.
fn escape_text(text: &str) -> Cow<'_, str> {
    escape(text, |c| c.is_control() && c != '\t')
}

/// `text` with control characters escaped (`\n`, `\t`, `\r`, `\x1b`,
/// `\u{85}`), so a file name cannot break a line of the human view or
/// send the terminal an escape sequence. JSON escapes them itself.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !has_control_bytes(text) {
        return Cow::Borrowed(text);
    }
    escape(text, char::is_control)
}

/// True when `text` may hold a control character (Cc: U+0000 to U+001F,
/// U+007F to U+009F), whose UTF-8 has a byte below 0x20, 0x7f or a leading
/// 0xc2; false for nearly all text, told by its bytes (in 64-byte blocks
/// the compiler vectorizes) rather than decoded char by char.
fn has_control_bytes(text: &str) -> bool {
    let suspect = |b: u8| b < 0x20 || b == 0x7f || b == 0xc2;
    text.as_bytes()
        .chunks(64)
        .any(|block| block.iter().fold(false, |any, &b| any | suspect(b)))
}

/// `text` with the characters `escaped` picks written as escapes.
fn escape(text: &str, escaped: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(&escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !escaped(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::{escape_controls, escape_text};

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(escape_controls("a/b ü.txt"), "a/b ü.txt");
        assert_eq!(
            escape_controls("a\nb\tc\u{1b}[31md\u{85}e\\"),
            "a\\nb\\tc\\x1b[31md\\u{85}e\\"
        );
        // A line's text keeps its tabs.
        assert_eq!(escape_text("\ta\tb\u{1b}"), "\ta\tb\\x1b");
    }
}
