//! A worker's partial index: the words of one batch of files and where they
//! occur, turned into a sorted [`Run`] that crosses the channel in one piece.
//!
//! The map is built for the long tail of vocabularies (millions of distinct
//! identifiers and constants): keys live in one arena instead of one heap
//! allocation each, the table stores only a `u32` word number, and probes
//! compare the stored hash before touching key bytes.

use hashbrown::HashTable;
use serde::{Deserialize, Serialize};

use super::postings::{read_varint, write_varint, PostingWriter};

/// A 64-bit hash for short byte strings: word-at-a-time mixing with a
/// folded 128-bit multiply at the end, so both the low bits (bucket choice)
/// and the top bits (hashbrown's control byte) are well spread.
#[inline]
pub fn hash_word(word: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = word.len() as u64;
    let mut chunks = word.chunks_exact(8);
    for chunk in &mut chunks {
        let mut buf = [0u8; 8];
        buf.copy_from_slice(chunk);
        h = (h.rotate_left(23) ^ u64::from_le_bytes(buf)).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut buf = [0u8; 8];
        buf[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(23) ^ u64::from_le_bytes(buf)).wrapping_mul(K);
    }
    let full = u128::from(h) * u128::from(K ^ 0xD6E8_FEB8_6659_FD93);
    (full as u64) ^ ((full >> 64) as u64)
}

#[derive(Debug, Clone)]
struct Entry {
    hash: u64,
    key_start: u32,
    key_len: u32,
    writer: PostingWriter,
}

/// Words of a batch of files mapped to their posting lists.
#[derive(Debug, Default)]
pub struct PartialIndex {
    table: HashTable<u32>,
    entries: Vec<Entry>,
    keys: Vec<u8>,
    postings: Vec<Vec<u8>>,
    occurrences: u64,
}

impl PartialIndex {
    /// An empty partial index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one occurrence of `word` (already lowercased). Occurrences
    /// must arrive in (file, line, column) order.
    #[inline]
    pub fn add(&mut self, word: &[u8], file: u32, line: u32, column: u32) {
        let hash = hash_word(word);
        let entries = &self.entries;
        let keys = &self.keys;
        let found = self.table.find(hash, |&id| {
            let e = &entries[id as usize];
            e.hash == hash && &keys[e.key_start as usize..(e.key_start + e.key_len) as usize] == word
        });
        let id = match found {
            Some(&id) => id as usize,
            None => {
                let id = self.entries.len();
                // Key bytes stay below 4 GiB in a batch: a batch of that size
                // would not fit the channel frame limit either.
                let key_start = u32::try_from(self.keys.len()).unwrap_or(u32::MAX);
                self.keys.extend_from_slice(word);
                self.entries.push(Entry {
                    hash,
                    key_start,
                    key_len: word.len() as u32,
                    writer: PostingWriter::default(),
                });
                self.postings.push(Vec::new());
                let entries = &self.entries;
                self.table.insert_unique(hash, id as u32, |&i| entries[i as usize].hash);
                id
            }
        };
        self.entries[id].writer.push(&mut self.postings[id], file, line, column);
        self.occurrences += 1;
    }

    /// Number of distinct words.
    pub fn distinct_words(&self) -> usize {
        self.entries.len()
    }

    /// Number of occurrences recorded.
    pub fn occurrences(&self) -> u64 {
        self.occurrences
    }

    fn key(&self, id: usize) -> &[u8] {
        let e = &self.entries[id];
        &self.keys[e.key_start as usize..(e.key_start + e.key_len) as usize]
    }

    /// Sorts the words by bytes and serializes them with their posting lists.
    pub fn into_run(self) -> Run {
        // Sort by an 8-byte big-endian prefix first: most comparisons end
        // there without touching the arena.
        let mut order: Vec<(u64, u32)> = (0..self.entries.len())
            .map(|id| {
                let key = self.key(id);
                let mut prefix = [0u8; 8];
                let n = key.len().min(8);
                prefix[..n].copy_from_slice(&key[..n]);
                (u64::from_be_bytes(prefix), id as u32)
            })
            .collect();
        order.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| self.key(a.1 as usize).cmp(self.key(b.1 as usize)))
        });
        let total: usize = self.postings.iter().map(Vec::len).sum::<usize>()
            + self.keys.len()
            + self.entries.len() * 8;
        let mut bytes = Vec::with_capacity(total);
        for &(_, id) in &order {
            let id = id as usize;
            let key = self.key(id);
            let writer = &self.entries[id].writer;
            let list = &self.postings[id];
            write_varint(&mut bytes, key.len() as u64);
            bytes.extend_from_slice(key);
            write_varint(&mut bytes, u64::from(writer.count));
            write_varint(&mut bytes, u64::from(writer.last_file));
            write_varint(&mut bytes, list.len() as u64);
            bytes.extend_from_slice(list);
        }
        Run {
            bytes,
            words: order.len() as u64,
            occurrences: self.occurrences,
        }
    }
}

/// A batch's words in ascending byte order, each with its posting list: the
/// unit a worker sends and the parent merges.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Run {
    /// Per word: varint length, word bytes, varint count, varint last file,
    /// varint list length, posting list.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
    /// Distinct words in the run.
    pub words: u64,
    /// Occurrences in the run.
    pub occurrences: u64,
}

/// One word of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunEntry<'a> {
    /// The lowercased word.
    pub word: &'a [u8],
    /// Number of occurrences.
    pub count: u32,
    /// File of the last occurrence.
    pub last_file: u32,
    /// Encoded posting list (see [`super::postings`]).
    pub postings: &'a [u8],
}

/// Reads a run's entries in order. Malformed bytes end the iteration and
/// set [`RunReader::is_malformed`], so a bad run is reported, never a panic.
#[derive(Debug, Clone)]
pub struct RunReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    malformed: bool,
}

impl<'a> RunReader<'a> {
    /// Starts reading `run`.
    pub fn new(run: &'a Run) -> Self {
        RunReader { bytes: &run.bytes, pos: 0, malformed: false }
    }

    /// True when reading stopped at malformed bytes.
    pub fn is_malformed(&self) -> bool {
        self.malformed
    }

    fn read_entry(&mut self) -> Option<RunEntry<'a>> {
        let bytes = self.bytes;
        let mut pos = self.pos;
        let take = |pos: &mut usize, len: u64| -> Option<&'a [u8]> {
            let len = usize::try_from(len).ok()?;
            let end = pos.checked_add(len)?;
            let slice = bytes.get(*pos..end)?;
            *pos = end;
            Some(slice)
        };
        let word_len = read_varint(bytes, &mut pos)?;
        let word = take(&mut pos, word_len)?;
        let count = u32::try_from(read_varint(bytes, &mut pos)?).ok()?;
        let last_file = u32::try_from(read_varint(bytes, &mut pos)?).ok()?;
        let list_len = read_varint(bytes, &mut pos)?;
        let postings = take(&mut pos, list_len)?;
        self.pos = pos;
        Some(RunEntry { word, count, last_file, postings })
    }
}

impl<'a> Iterator for RunReader<'a> {
    type Item = RunEntry<'a>;

    fn next(&mut self) -> Option<RunEntry<'a>> {
        if self.malformed || self.pos >= self.bytes.len() {
            return None;
        }
        let entry = self.read_entry();
        if entry.is_none() {
            self.malformed = true;
        }
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::postings::Locations;

    #[test]
    fn run_lists_words_sorted_with_their_locations() {
        let mut partial = PartialIndex::new();
        partial.add(b"zeta", 3, 1, 1);
        partial.add(b"alpha", 3, 1, 6);
        partial.add(b"zeta", 3, 2, 4);
        partial.add(b"alphabet", 5, 1, 1);
        let run = partial.into_run();
        let entries: Vec<_> = RunReader::new(&run).collect();
        let words: Vec<&[u8]> = entries.iter().map(|e| e.word).collect();
        assert_eq!(words, vec![&b"alpha"[..], b"alphabet", b"zeta"]);
        let zeta: Vec<_> = Locations::new(entries[2].postings)
            .map(|l| (l.file, l.line, l.column))
            .collect();
        assert_eq!(zeta, vec![(3, 1, 1), (3, 2, 4)]);
        assert_eq!(entries[2].count, 2);
        assert_eq!(entries[1].last_file, 5);
    }
}
