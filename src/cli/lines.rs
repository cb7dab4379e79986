//! The text of the lines an answer shows, read from the tree at answer time.
//!
//! The index keeps where words occur, not the text around them: a location
//! is shown with its line by reading the file again, only for the locations
//! printed, each file once. A file that is no longer the one indexed (its
//! size or modification time differ from the index's stamp) is still
//! shown, marked as changed, since its lines may have moved.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use indexer::index::{FileStamp, Location, View};

/// Bytes of a line kept at most: enough to show any match with context on
/// a wide terminal, bounded for a minified file whose one line is megabytes.
pub const LINE_BYTES: usize = 4096;

/// A file as found at answer time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// Still the version indexed (or the index recorded no stamp).
    Same,
    /// Its size or modification time differ from the index's.
    Changed,
    /// Not there, or not readable.
    Missing,
}

/// One location's line.
#[derive(Debug, Clone, Default)]
pub struct Line {
    /// The line's bytes, without its end, cut to [`LINE_BYTES`] around the
    /// location's column; `start` is the byte of the line it begins at.
    pub text: Vec<u8>,
    pub start: u64,
}

/// The lines of the locations about to be shown.
#[derive(Debug, Default)]
pub struct Lines {
    lines: HashMap<(u32, u64), Line>,
    states: HashMap<u32, FileState>,
}

impl Lines {
    /// Reads the lines of `locations` from the tree at `root` (none when
    /// the tree is not there: the answer then shows locations alone).
    pub fn read(view: &View, root: Option<&Path>, locations: &[Location]) -> Lines {
        let mut lines = Lines::default();
        let Some(root) = root else {
            return lines;
        };
        let mut by_file: HashMap<u32, Vec<(u64, u64)>> = HashMap::new();
        for location in locations {
            by_file
                .entry(location.file)
                .or_default()
                .push((location.line, location.column));
        }
        for (file, mut wanted) in by_file {
            wanted.sort_unstable();
            wanted.dedup_by_key(|w| w.0);
            // Printers check the paths they print first: a damaged one is
            // not read, and the answer stops where it is printed.
            let Ok(relative) = view.path(file) else {
                lines.states.insert(file, FileState::Missing);
                continue;
            };
            let path = root.join(relative);
            let state = match read_lines(&path, view.stamp(file), &wanted) {
                Ok((state, found)) => {
                    for (line, text) in found {
                        lines.lines.insert((file, line), text);
                    }
                    state
                }
                Err(_) => FileState::Missing,
            };
            lines.states.insert(file, state);
        }
        lines
    }

    /// The line of `location`, if it was read.
    pub fn line(&self, location: &Location) -> Option<&Line> {
        self.lines.get(&(location.file, location.line))
    }

    /// What became of `file` since it was indexed (`Same` when not read).
    pub fn state(&self, file: u32) -> FileState {
        self.states.get(&file).copied().unwrap_or(FileState::Same)
    }
}

/// Reads lines `wanted` ((line, column), ascending, one per line) of the
/// file at `path`, keeping at most [`LINE_BYTES`] of each around its column.
fn read_lines(
    path: &Path,
    stamp: Option<FileStamp>,
    wanted: &[(u64, u64)],
) -> io::Result<(FileState, Vec<(u64, Line)>)> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let mtime_ns = meta
        .mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec());
    let state = match stamp {
        Some(s) if s.size != meta.len() || s.mtime_ns != mtime_ns => FileState::Changed,
        _ => FileState::Same,
    };
    let mut reader = BufReader::with_capacity(64 << 10, file);
    let mut found = Vec::with_capacity(wanted.len());
    let mut line = 1u64;
    let mut next = wanted.iter().peekable();
    while let Some(&&(target, column)) = next.peek() {
        if line == target {
            found.push((line, take_line(&mut reader, column)?));
            next.next();
        } else if !skip_line(&mut reader)? {
            break;
        }
        line += 1;
    }
    Ok((state, found))
}

/// Skips one line; false at the end of the file.
fn skip_line(reader: &mut impl BufRead) -> io::Result<bool> {
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(false);
        }
        match memchr::memchr(b'\n', buffer) {
            Some(end) => {
                reader.consume(end + 1);
                return Ok(true);
            }
            None => {
                let n = buffer.len();
                reader.consume(n);
            }
        }
    }
}

/// Reads one line (consuming its end), keeping a window of at most
/// [`LINE_BYTES`] that holds byte `column - 1`.
fn take_line(reader: &mut impl BufRead, column: u64) -> io::Result<Line> {
    let target = column.saturating_sub(1);
    // The window starts a quarter of its size before the match, so the
    // match and what precedes it both show.
    let start = target.saturating_sub(LINE_BYTES as u64 / 4);
    let mut line = Line {
        text: Vec::new(),
        start,
    };
    let mut at = 0u64;
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            break;
        }
        let (piece, ended) = match memchr::memchr(b'\n', buffer) {
            Some(end) => (&buffer[..end], true),
            None => (buffer, false),
        };
        let from = start.saturating_sub(at).min(piece.len() as u64) as usize;
        let room = LINE_BYTES - line.text.len();
        let upto = piece.len().min(from + room);
        line.text.extend_from_slice(&piece[from..upto.max(from)]);
        let used = piece.len() + usize::from(ended);
        at += piece.len() as u64;
        reader.consume(used);
        if ended {
            break;
        }
    }
    if line.text.last() == Some(&b'\r') {
        line.text.pop();
    }
    Ok(line)
}

/// Bytes of the word starting at byte `at` of `text` (the tokenizer's rule:
/// a run of alphanumeric characters and `_`, in valid UTF-8).
pub fn word_extent(text: &[u8], at: usize) -> usize {
    let Some(rest) = text.get(at..) else {
        return 0;
    };
    let valid = match std::str::from_utf8(rest) {
        Ok(all) => all,
        Err(e) => std::str::from_utf8(&rest[..e.valid_up_to()]).unwrap_or_default(),
    };
    valid
        .char_indices()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '_'))
        .map_or(valid.len(), |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_by_number_and_cut_around_the_column() {
        let mut long = vec![b'x'; 3 * LINE_BYTES];
        long.extend_from_slice(b" word tail");
        let mut text = b"first\r\nsecond line\n".to_vec();
        text.extend_from_slice(&long);
        text.extend_from_slice(b"\nlast");
        let column = 3 * LINE_BYTES as u64 + 2;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, &text).unwrap();
        let (state, found) =
            read_lines(&path, None, &[(1, 1), (3, column), (4, 1), (9, 1)]).unwrap();
        assert_eq!(state, FileState::Same);
        assert_eq!(found.len(), 3);
        assert_eq!(found[0].1.text, b"first");
        let cut = &found[1].1;
        let at = (column - 1 - cut.start) as usize;
        assert_eq!(&cut.text[at..at + 4], b"word");
        assert!(cut.text.len() <= LINE_BYTES);
        assert_eq!(found[2].1.text, b"last");
        let stamp = FileStamp {
            size: 1,
            mtime_ns: 0,
        };
        assert_eq!(
            read_lines(&path, Some(stamp), &[]).unwrap().0,
            FileState::Changed
        );
    }

    #[test]
    fn a_word_ends_where_the_tokenizer_ends_it() {
        assert_eq!(word_extent(b"spin_lock(&x)", 0), 9);
        assert_eq!(word_extent("größe.".as_bytes(), 0), "größe".len());
        assert_eq!(word_extent(b"ab\xffcd", 0), 2);
        assert_eq!(word_extent(b"ab", 5), 0);
    }
}
