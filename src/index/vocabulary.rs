//! The sorted set of distinct words, the index's entry point for search.
//!
//! Words are stored back to back in one byte arena, in ascending byte order,
//! so a word number is also its rank: prefix and exact lookups are binary
//! searches, and a prefix's matches are one contiguous range.

use std::ops::Range;

/// Distinct words in ascending byte order; a word's number is its rank.
#[derive(Debug, Default, Clone)]
pub struct Vocabulary {
    bytes: Vec<u8>,
    ends: Vec<u64>,
}

impl Vocabulary {
    /// An empty vocabulary with room for `words` words of `bytes` bytes.
    pub fn with_capacity(words: usize, bytes: usize) -> Self {
        Vocabulary {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(words),
        }
    }

    /// Appends a word; words must be pushed in strictly ascending order.
    pub fn push(&mut self, word: &[u8]) {
        debug_assert!(self.ends.is_empty() || self.word(self.len() - 1) < word);
        self.bytes.extend_from_slice(word);
        self.ends.push(self.bytes.len() as u64);
    }

    /// Appends every word of `other`, whose words must all sort after ours.
    pub fn extend(&mut self, other: &Vocabulary) {
        let base = self.bytes.len() as u64;
        self.bytes.extend_from_slice(&other.bytes);
        self.ends.extend(other.ends.iter().map(|end| base + end));
    }

    /// Total bytes of all words.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Number of words.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when there are no words.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The word numbered `id` (0-based rank).
    #[inline]
    pub fn word(&self, id: usize) -> &[u8] {
        let start = if id == 0 {
            0
        } else {
            self.ends[id - 1] as usize
        };
        &self.bytes[start..self.ends[id] as usize]
    }

    /// The words numbered `range`, with their numbers, walked in order
    /// (cheaper than looking each one up).
    pub fn words_in(&self, range: Range<usize>) -> impl Iterator<Item = (usize, &[u8])> + '_ {
        let mut start = if range.start == 0 {
            0
        } else {
            self.ends[range.start - 1] as usize
        };
        let ends = &self.ends[range.start..range.end.max(range.start)];
        ends.iter().enumerate().map(move |(k, &end)| {
            let word = &self.bytes[start..end as usize];
            start = end as usize;
            (range.start + k, word)
        })
    }

    /// The word as text (words are always valid UTF-8: they come from
    /// decoded characters).
    pub fn word_str(&self, id: usize) -> &str {
        std::str::from_utf8(self.word(id)).unwrap_or("\u{FFFD}")
    }

    /// First word number whose word is `>= key`.
    fn lower_bound(&self, key: &[u8]) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.word(mid) < key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The word numbers of every word beginning with `prefix`.
    pub fn prefix_range(&self, prefix: &[u8]) -> Range<usize> {
        let start = self.lower_bound(prefix);
        let mut end = start;
        // Gallop, then binary search, for the end of the prefix block.
        let mut step = 1;
        while end < self.len() && self.word(end).starts_with(prefix) {
            end = (end + step).min(self.len());
            step *= 2;
        }
        let (mut lo, mut hi) = (start, end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.word(mid).starts_with(prefix) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        start..lo
    }

    /// The numbers of the words containing `needle`, ascending: a
    /// substring search over the whole arena, which, after each hit, resumes
    /// at the end of the word hit (a hit that runs past its word's end is
    /// in no word, but the next word may still hold the needle, so the
    /// search resumes at its start).
    pub fn containing<'a>(&'a self, needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
        let finder = memchr::memmem::Finder::new(needle);
        let mut from = 0usize;
        let mut id = 0usize;
        std::iter::from_fn(move || loop {
            let at = from + finder.find(self.bytes.get(from..)?)?;
            // The word whose bytes include offset `at`: hits only move
            // forward, so gallop from the last one instead of searching all.
            id = self.word_at(at, id);
            let end = *self.ends.get(id)? as usize;
            from = end;
            if at + needle.len() <= end {
                return Some(id);
            }
        })
    }

    /// The number of the word holding byte `at` of the arena, searching
    /// forward from word `hint` (which must not be past it).
    fn word_at(&self, at: usize, hint: usize) -> usize {
        let holds_or_after = |id: usize| self.ends[id] as usize > at;
        let mut lo = hint.min(self.len());
        let mut step = 1;
        let mut hi = lo;
        while hi < self.len() && !holds_or_after(hi) {
            lo = hi + 1;
            hi = (hi + step).min(self.len());
            step *= 2;
        }
        lo + self.ends[lo..hi.max(lo)].partition_point(|&end| end as usize <= at)
    }

    /// The number of `word`, if present.
    pub fn find(&self, word: &[u8]) -> Option<usize> {
        let i = self.lower_bound(word);
        (i < self.len() && self.word(i) == word).then_some(i)
    }

    /// Bytes held by the vocabulary.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.ends.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ranges_match_a_linear_scan() {
        let mut words: Vec<String> = (0..500).map(|i| format!("{:x}", i * 7919 % 4096)).collect();
        words.sort();
        words.dedup();
        let mut vocab = Vocabulary::default();
        for w in &words {
            vocab.push(w.as_bytes());
        }
        for prefix in ["", "a", "1", "ff", "9f", "zz", "10"] {
            let want: Vec<usize> = (0..words.len())
                .filter(|&i| words[i].starts_with(prefix))
                .collect();
            let got: Vec<usize> = vocab.prefix_range(prefix.as_bytes()).collect();
            assert_eq!(got, want, "prefix {prefix:?}");
        }
        assert_eq!(vocab.find(words[3].as_bytes()), Some(3));
        assert_eq!(vocab.find(b"zz"), None);
    }
}
