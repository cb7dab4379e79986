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
//!
//! A `file_delta` of 0 *re-anchors* the list in the same file: the entry
//! gives its line absolutely. Two things write one: a run cut in the middle
//! of a file (a worker's memory is bounded, a file's size is not), whose
//! lists are joined to the previous run's, and an occurrence whose line
//! does not fit the 32 bits a worker keeps per word. Lines and columns are
//! varints of any size, so every location is exact however large the file.

/// Where a word occurs: a file number (the position of its path in the
/// index's sorted file table), a 1-based line and a 1-based byte column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    /// Index of the file in the file table.
    pub file: u32,
    /// 1-based line.
    pub line: u64,
    /// 1-based column in bytes.
    pub column: u64,
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
    // Most values (word lengths, line steps, columns) take one byte.
    let first = *bytes.get(*pos)?;
    if first < 0x80 {
        *pos += 1;
        return Some(u64::from(first));
    }
    read_varint_long(bytes, pos)
}

/// [`read_varint`] of a value of two bytes or more.
#[inline(never)]
fn read_varint_long(bytes: &[u8], pos: &mut usize) -> Option<u64> {
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

/// Appends `list` (which starts with an absolute file number) to a list
/// whose last occurrence is in file `previous_last_file`, rewriting the first
/// entry's file number as a delta (0, a re-anchor, when `list` goes on in
/// that same file). With `previous_last_file = None` the list is copied
/// unchanged. Returns `None` if `list` is malformed or starts before
/// `previous_last_file`.
pub fn append_list(out: &mut Vec<u8>, list: &[u8], previous_last_file: Option<u32>) -> Option<()> {
    let (head, rest) = rebased_head(list, previous_last_file)?;
    write_varint(out, head);
    out.extend_from_slice(rest);
    Some(())
}

/// The first varint `list` takes when appended after a list ending in file
/// `previous_last_file` (see [`append_list`]), and the bytes after it.
pub fn rebased_head(list: &[u8], previous_last_file: Option<u32>) -> Option<(u64, &[u8])> {
    let mut pos = 0;
    let head = read_varint(list, &mut pos)?;
    if head & 1 == 0 {
        return None;
    }
    let file = head >> 1;
    let delta = file.checked_sub(u64::from(previous_last_file.unwrap_or(0)))?;
    Some(((delta << 1) | 1, &list[pos..]))
}

/// Occurrences in `list` whose file is marked in `marked` (by file
/// number): what dropping those files takes from the list. Reads only the
/// varints' ends, not their values, except the file steps, and stops at
/// the first file past the last marked one (`marked` ends there).
///
/// This is what a refresh spends its time on (it reads every saved list),
/// so it finds varint ends 64 bytes at a time: a bit mask of the bytes
/// below 0x80, from which an entry's end is its second or third set bit.
pub fn count_in_files(list: &[u8], marked: &[bool]) -> u32 {
    let mut pos = 0usize;
    let mut file = 0u64;
    let mut count = 0u32;
    // Bit i of `ends` says whether byte `window + i` ends a varint.
    let mut window = 0usize;
    let mut ends = 0u64;
    let mut valid = 0usize; // bytes of the window the mask covers
    while let Some(&first) = list.get(pos) {
        let opens_file = first & 1 == 1;
        // Whether an entry opens a file is as good as random, so the usual
        // case (a one-byte head) takes no branch on it: a continuation adds
        // a zero step.
        if first < 0x80 {
            file += u64::from(first >> 1) * u64::from(opens_file);
        } else if opens_file {
            let mut at = pos;
            let Some(head) = read_varint(list, &mut at) else {
                break;
            };
            file = file.saturating_add(head >> 1);
        }
        let Some(&inside) = marked.get(file as usize) else {
            break; // past the last marked file
        };
        // The entry's varints: head, line (when it opens a file), column.
        let varints = 2 + u32::from(opens_file);
        // The entry's last varint end: drop the ends before it (no
        // popcount: it is not in the baseline x86-64 instruction set).
        let last_end = |mut m: u64| {
            for _ in 1..varints {
                m &= m.wrapping_sub(1);
            }
            m
        };
        let mut remaining = if pos >= window && pos - window < valid {
            last_end(ends >> (pos - window))
        } else {
            0
        };
        if remaining == 0 {
            (window, ends, valid) = (pos, varint_ends(list, pos), (list.len() - pos).min(64));
            remaining = last_end(ends);
            if remaining == 0 {
                break; // truncated (or an entry longer than 64 bytes: malformed)
            }
        }
        pos += remaining.trailing_zeros() as usize + 1;
        count += u32::from(inside);
    }
    count
}

/// Bit i set when `list[from + i]` (i < 64) is the last byte of a varint.
#[inline]
fn varint_ends(list: &[u8], from: usize) -> u64 {
    let mut mask = 0u64;
    let bytes = list.get(from..).unwrap_or_default();
    for (k, chunk) in bytes.chunks(8).take(8).enumerate() {
        let lanes = match <[u8; 8]>::try_from(chunk) {
            Ok(whole) => whole,
            Err(_) => {
                // The tail: pad with bytes that end no varint.
                let mut padded = [0x80u8; 8];
                padded[..chunk.len()].copy_from_slice(chunk);
                padded
            }
        };
        let high = !u64::from_le_bytes(lanes) & 0x8080_8080_8080_8080;
        // Gather the eight flag bits into one byte.
        let bits = ((high >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56;
        mask |= bits << (8 * k);
    }
    mask
}

/// One file's run of a posting list: the file, and the bytes after the
/// entry that opens it (its line and column, then its other entries), which
/// do not depend on how files are numbered. A re-anchored file (see the
/// module docs) has several groups in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group<'a> {
    /// The file number.
    pub file: u32,
    /// The group's bytes after its head varint.
    pub body: &'a [u8],
    /// Occurrences in the group.
    pub entries: u32,
}

impl Group<'_> {
    /// Appends the group to a list whose previous group is in file
    /// `previous` (`None` at the start), numbered `file` there.
    pub fn write(&self, out: &mut Vec<u8>, file: u32, previous: Option<u32>) {
        let delta = file.saturating_sub(previous.unwrap_or(0));
        write_varint(out, (u64::from(delta) << 1) | 1);
        out.extend_from_slice(self.body);
    }
}

/// The groups of a posting list, in order: renumbering files or dropping
/// some rewrites only the groups' heads and copies their bodies, without
/// decoding a single occurrence. Stops at malformed bytes.
#[derive(Debug, Clone)]
pub struct Groups<'a> {
    list: &'a [u8],
    pos: usize,
    file: u64,
}

impl<'a> Groups<'a> {
    /// The groups of `list`.
    pub fn new(list: &'a [u8]) -> Self {
        Groups {
            list,
            pos: 0,
            file: 0,
        }
    }

    fn skip_varint(&mut self) -> Option<()> {
        loop {
            let b = *self.list.get(self.pos)?;
            self.pos += 1;
            if b < 0x80 {
                return Some(());
            }
        }
    }
}

impl<'a> Iterator for Groups<'a> {
    type Item = Group<'a>;

    fn next(&mut self) -> Option<Group<'a>> {
        let head = read_varint(self.list, &mut self.pos)?;
        if head & 1 == 0 {
            self.pos = self.list.len();
            return None;
        }
        self.file = self.file.checked_add(head >> 1)?;
        let start = self.pos;
        // The opening entry's line and column, then continuation entries
        // (line step, column) until the next group's head (odd first byte).
        self.skip_varint()?;
        self.skip_varint()?;
        let mut entries = 1u32;
        while let Some(&b) = self.list.get(self.pos) {
            if b & 1 == 1 {
                break;
            }
            self.skip_varint()?;
            self.skip_varint()?;
            entries += 1;
        }
        Some(Group {
            file: u32::try_from(self.file).ok()?,
            body: &self.list[start..self.pos],
            entries,
        })
    }
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
            line: self.line,
            column,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds one word's posting list occurrence by occurrence: the plain
    /// encoder the workers' packed one (`partial`) must agree with.
    #[derive(Debug, Default, Clone)]
    struct PostingWriter {
        /// Occurrences written so far.
        pub count: u32,
        /// File of the last occurrence.
        pub last_file: u32,
        last_line: u64,
    }

    impl PostingWriter {
        /// Appends one occurrence; occurrences must come in (file, line, column) order.
        #[inline]
        fn push(&mut self, out: &mut Vec<u8>, file: u32, line: u64, column: u64) {
            if self.count == 0 || file != self.last_file {
                let delta = u64::from(file - if self.count == 0 { 0 } else { self.last_file });
                write_varint(out, (delta << 1) | 1);
                write_varint(out, line);
                self.last_file = file;
            } else {
                write_varint(out, (line - self.last_line) << 1);
            }
            write_varint(out, column);
            self.last_line = line;
            self.count += 1;
        }
    }

    fn encode(locations: &[(u32, u64, u64)]) -> (Vec<u8>, PostingWriter) {
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
    fn a_list_going_on_in_the_same_file_is_reanchored() {
        // A run cut inside file 4: the next run's list starts in file 4 too.
        let first = [(1, 3, 1), (4, 2, 7)];
        let second = [(4, 9, 2), (4, 5_000_000_000, 4_300_000_002), (6, 1, 1)];
        let (a, wa) = encode(&first);
        let (b, _) = encode(&second);
        let mut joined = a.clone();
        append_list(&mut joined, &b, Some(wa.last_file)).unwrap();
        let got: Vec<_> = Locations::new(&joined)
            .map(|l| (l.file, l.line, l.column))
            .collect();
        let want: Vec<_> = first.iter().chain(second.iter()).copied().collect();
        assert_eq!(got, want);
        // File 4 now has two groups; counting and renumbering see both.
        let groups: Vec<(u32, u32)> = Groups::new(&joined).map(|g| (g.file, g.entries)).collect();
        assert_eq!(groups, [(1, 1), (4, 1), (4, 2), (6, 1)]);
        let mut marked = vec![false; 7];
        marked[4] = true;
        assert_eq!(count_in_files(&joined, &marked), 3);
        // A list may not start before the one it is appended to.
        assert!(append_list(&mut Vec::new(), &a, Some(2)).is_none());
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

    proptest::proptest! {
        /// The mask-driven counter and the group splitter agree with
        /// decoding every location, on random lists (long lines, big
        /// columns and file steps make multi-byte varints).
        #[test]
        fn counting_and_grouping_agree_with_decoding(
            steps in proptest::collection::vec((0u32..3, 0u64..300, 1u64..200_000), 1..300),
            marks in proptest::collection::vec(proptest::bool::ANY, 1..40),
        ) {
            let (mut file, mut line) = (0u32, 1u64);
            let mut locations = Vec::new();
            for (df, dl, column) in steps {
                if df > 0 {
                    file += df * 70;
                    line = 1 + dl;
                } else {
                    line += dl;
                }
                locations.push((file, line, column));
            }
            locations.sort();
            locations.dedup();
            let (list, _) = encode(&locations);
            let marked: Vec<bool> = (0..=file as usize).map(|f| marks[f % marks.len()]).collect();
            let want = locations.iter().filter(|l| marked[l.0 as usize]).count() as u32;
            proptest::prop_assert_eq!(count_in_files(&list, &marked), want);
            let mut per_file: Vec<(u32, u32)> = Vec::new();
            for l in &locations {
                match per_file.last_mut() {
                    Some((f, n)) if *f == l.0 => *n += 1,
                    _ => per_file.push((l.0, 1)),
                }
            }
            let groups: Vec<(u32, u32)> = Groups::new(&list).map(|g| (g.file, g.entries)).collect();
            proptest::prop_assert_eq!(groups, per_file);
        }
    }

    #[test]
    fn groups_renumber_without_decoding() {
        let locations = [
            (0, 1, 1),
            (0, 300, 9),
            (3, 7, 300),
            (3, 8, 1),
            (3, 9, 2),
            (90, 2, 1),
        ];
        let (list, _) = encode(&locations);
        let groups: Vec<Group> = Groups::new(&list).collect();
        let files: Vec<(u32, u32)> = groups.iter().map(|g| (g.file, g.entries)).collect();
        assert_eq!(files, [(0, 2), (3, 3), (90, 1)]);
        // Drop file 3, renumber 0 -> 5 and 90 -> 6.
        let mut out = Vec::new();
        groups[0].write(&mut out, 5, None);
        groups[2].write(&mut out, 6, Some(5));
        let got: Vec<_> = Locations::new(&out)
            .map(|l| (l.file, l.line, l.column))
            .collect();
        assert_eq!(got, [(5, 1, 1), (5, 300, 9), (6, 2, 1)]);
    }

    #[test]
    fn malformed_bytes_end_iteration() {
        assert_eq!(Locations::new(&[0xFF, 0xFF]).count(), 0);
    }
}
