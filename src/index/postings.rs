//! The compact encoding of one word's occurrences.
//!
//! A posting list is a byte string of LEB128 varints, one entry per
//! occurrence, in (file, line, column) order:
//!
//! * the first occurrence in a file: `(file_delta << 1) | 1`, `line`, `column`
//! * a later occurrence in the same file: `line_delta << 1`, `column`
//!
//! `file_delta` is counted from the previous entry's file, or from file 0 for
//! the first entry, so a list always starts with an absolute file number.
//! Two lists of the same word covering consecutive file ranges are joined by
//! rewriting only the first varint of the second ([`append_list`]), which is
//! what lets per-batch lists be chained (the merge) or joined into one
//! (a writer wanting one contiguous list) instead of re-inserting
//! every occurrence. Typical entries take two or three bytes.

/// Where a word occurs: a file number (the position of its path in the
/// index's sorted file table), a 1-based line and a 1-based byte column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    /// Index of the file in the file table.
    pub file: u32,
    /// 1-based line.
    pub line: u32,
    /// 1-based column in bytes.
    pub column: u32,
}

/// Appends `value` as an unsigned LEB128 varint.
#[inline]
pub fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads one varint at `*pos`, advancing it; `None` on truncation or overflow.
#[inline]
pub fn read_varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    let mut shift = 0u32;
    loop {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        if shift >= 64 {
            return None;
        }
        value |= u64::from(b & 0x7F) << shift;
        if b < 0x80 {
            return Some(value);
        }
        shift += 7;
    }
}

/// Builds one word's posting list occurrence by occurrence.
#[derive(Debug, Default, Clone)]
pub struct PostingWriter {
    /// Occurrences written so far.
    pub count: u32,
    /// File of the last occurrence.
    pub last_file: u32,
    last_line: u32,
}

impl PostingWriter {
    /// Appends one occurrence; occurrences must come in (file, line, column) order.
    #[inline]
    pub fn push(&mut self, out: &mut Vec<u8>, file: u32, line: u32, column: u32) {
        if self.count == 0 || file != self.last_file {
            let delta = u64::from(file - if self.count == 0 { 0 } else { self.last_file });
            write_varint(out, (delta << 1) | 1);
            write_varint(out, u64::from(line));
            self.last_file = file;
        } else {
            write_varint(out, u64::from(line - self.last_line) << 1);
        }
        write_varint(out, u64::from(column));
        self.last_line = line;
        self.count += 1;
    }
}

/// Appends `list` (which starts with an absolute file number) to a list
/// whose last occurrence is in file `previous_last_file`, rewriting the first
/// entry's file number as a delta. With `previous_last_file = None` the list
/// is copied unchanged. Returns `None` if `list` is malformed or does not
/// start after `previous_last_file`.
pub fn append_list(out: &mut Vec<u8>, list: &[u8], previous_last_file: Option<u32>) -> Option<()> {
    let Some(previous) = previous_last_file else {
        out.extend_from_slice(list);
        return Some(());
    };
    let mut pos = 0;
    let head = read_varint(list, &mut pos)?;
    if head & 1 == 0 {
        return None;
    }
    let file = head >> 1;
    let delta = file.checked_sub(u64::from(previous)).filter(|d| *d > 0)?;
    write_varint(out, (delta << 1) | 1);
    out.extend_from_slice(&list[pos..]);
    Some(())
}

/// Occurrences in `list` whose file is marked in `marked` (by file
/// number): what dropping those files takes from the list. Reads only the
/// varints' ends, not their values, except the file steps, and stops at
/// the first file past the last marked one (`marked` ends there).
pub fn count_in_files(list: &[u8], marked: &[bool]) -> u32 {
    // Past the end of a varint starting at `pos` (one byte, nearly always).
    #[inline(always)]
    fn skip(list: &[u8], mut pos: usize) -> usize {
        while let Some(&b) = list.get(pos) {
            pos += 1;
            if b < 0x80 {
                break;
            }
        }
        pos
    }
    let mut pos = 0;
    let mut file = 0u64;
    let mut inside = false;
    let mut count = 0u32;
    while let Some(&first) = list.get(pos) {
        let head = if first < 0x80 {
            pos += 1;
            u64::from(first)
        } else {
            match read_varint(list, &mut pos) {
                Some(head) => head,
                None => break,
            }
        };
        if head & 1 == 1 {
            file = file.saturating_add(head >> 1);
            if file >= marked.len() as u64 {
                break;
            }
            inside = marked[file as usize];
            pos = skip(list, pos);
        }
        pos = skip(list, pos);
        count += u32::from(inside);
    }
    count
}

/// Decodes a posting list; stops early (without panicking) at malformed bytes.
#[derive(Debug, Clone)]
pub struct Locations<'a> {
    bytes: &'a [u8],
    pos: usize,
    file: u64,
    line: u64,
}

impl<'a> Locations<'a> {
    /// Iterates over the occurrences encoded in `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Locations {
            bytes,
            pos: 0,
            file: 0,
            line: 0,
        }
    }
}

impl Iterator for Locations<'_> {
    type Item = Location;

    #[inline]
    fn next(&mut self) -> Option<Location> {
        if self.pos >= self.bytes.len() {
            return None;
        }
        let head = read_varint(self.bytes, &mut self.pos)?;
        if head & 1 == 1 {
            self.file = self.file.checked_add(head >> 1)?;
            self.line = read_varint(self.bytes, &mut self.pos)?;
        } else {
            self.line = self.line.checked_add(head >> 1)?;
        }
        let column = read_varint(self.bytes, &mut self.pos)?;
        Some(Location {
            file: u32::try_from(self.file).ok()?,
            line: u32::try_from(self.line).ok()?,
            column: u32::try_from(column).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(locations: &[(u32, u32, u32)]) -> (Vec<u8>, PostingWriter) {
        let mut out = Vec::new();
        let mut writer = PostingWriter::default();
        for &(f, l, c) in locations {
            writer.push(&mut out, f, l, c);
        }
        (out, writer)
    }

    #[test]
    fn round_trips_and_joins_lists() {
        let first = [(0, 1, 1), (0, 1, 9), (0, 7, 300), (4, 2, 1)];
        let second = [(9, 1, 2), (9, 100_000, 5), (12, 3, 4)];
        let (a, wa) = encode(&first);
        let (b, _) = encode(&second);
        let mut joined = a.clone();
        append_list(&mut joined, &b, Some(wa.last_file)).unwrap();
        let got: Vec<_> = Locations::new(&joined)
            .map(|l| (l.file, l.line, l.column))
            .collect();
        let want: Vec<_> = first.iter().chain(second.iter()).copied().collect();
        assert_eq!(got, want);
    }

    #[test]
    fn counts_in_marked_files_match_decoding() {
        let locations = [
            (0, 1, 1),
            (0, 300, 9),
            (2, 7, 300),
            (2, 8, 1),
            (200, 2, 1),
            (201, 1, 1),
        ];
        let (list, _) = encode(&locations);
        for marked_file in [0u32, 1, 2, 200, 201] {
            let mut marked = vec![false; 202];
            marked[marked_file as usize] = true;
            let want = locations.iter().filter(|l| l.0 == marked_file).count() as u32;
            assert_eq!(count_in_files(&list, &marked), want, "file {marked_file}");
        }
    }

    #[test]
    fn malformed_bytes_end_iteration() {
        assert_eq!(Locations::new(&[0xFF, 0xFF]).count(), 0);
    }
}
