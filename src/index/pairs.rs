//! A saved vocabulary's commonest byte pairs, one bit per word each.
//!
//! A substring search rules out a block of words by its signature of byte
//! pairs (see the vocabulary's `Signature`), which works while the needle
//! is rare. A needle of two common bytes (`*e_*`: 1.1 million of the
//! kernel's 5 million words) passes nearly every block, and the search
//! reads all 120 MB of the words' plain text to answer it: about 20 ms on
//! two cores, over 30 when the host is slow. For the pairs held by at
//! least one word in [`COMMON_SHARE`], the writer keeps instead the set of
//! words holding each pair as bits, 620 KB a pair for the kernel, which
//! such a query reads in place of the text.
//!
//! The writer counts the pairs of every 8th word as the words go by
//! ([`PairCounter`]), chooses the commonest at the end, and marks their
//! bits in a second pass over the plain text it writes anyway
//! ([`PairMarker`]).

use std::ops::Range;

use super::bytes::Array;

/// A pair is kept when at least one word in this many holds it (on the
/// kernel, 82 pairs). Rarer pairs leave more blocks' signatures clear,
/// so their searches decode fewer groups: `*iv*` took 15-20 ms on the
/// kernel, within the 30 ms goal, where a kept pair takes 5-15.
pub(crate) const COMMON_SHARE: usize = 16;

/// At most this many pairs are kept, the commonest first: 48 take 30 MB
/// (about 5% of the file) for the kernel's 5 million words.
pub(crate) const MAX_PAIRS: usize = 48;

/// Rows of bits: one row of `stride` numbers per pair, bit `i % 64` of a
/// row's number `i / 64` set if word `i` holds the pair.
fn stride_of(words: usize) -> usize {
    words.div_ceil(64)
}

/// A pair's place in a table of all 65,536 pairs.
#[inline]
fn code(first: u8, second: u8) -> usize {
    usize::from(first) << 8 | usize::from(second)
}

/// Counts the words are sampled by: one word in this many. Which pairs
/// are kept changes no answer, only which searches are faster, and
/// counting every word took a tenth of a second of the kernel's save.
const SAMPLE_EVERY: usize = 8;

/// Counts, for every byte pair, the sampled words holding it (each word
/// once).
pub(crate) struct PairCounter {
    counts: Vec<u32>,
    /// Per pair: one past the number of the last word counted for it.
    last: Vec<usize>,
    /// Words seen, and of them sampled.
    seen: usize,
    words: usize,
}

impl Default for PairCounter {
    fn default() -> Self {
        PairCounter {
            counts: vec![0; 1 << 16],
            last: vec![0; 1 << 16],
            seen: 0,
            words: 0,
        }
    }
}

impl PairCounter {
    /// Counts the next word's pairs, if it is sampled.
    pub(crate) fn add(&mut self, word: &[u8]) {
        self.seen += 1;
        if !(self.seen - 1).is_multiple_of(SAMPLE_EVERY) {
            return;
        }
        self.words += 1;
        for pair in word.windows(2) {
            let at = code(pair[0], pair[1]);
            if self.last[at] != self.words {
                self.last[at] = self.words;
                self.counts[at] = self.counts[at].saturating_add(1);
            }
        }
    }

    /// The pairs to keep: those held by at least one sampled word in
    /// [`COMMON_SHARE`], at most [`MAX_PAIRS`] of them, commonest first
    /// (the order of their rows).
    pub(crate) fn common(&self) -> Vec<[u8; 2]> {
        let least = (self.words / COMMON_SHARE).max(1);
        let mut common: Vec<(u32, usize)> = (self.counts.iter().enumerate())
            .filter(|&(_, &count)| count as usize >= least)
            .map(|(at, &count)| (count, at))
            .collect();
        // Commonest first; equal counts by pair, so the choice is stable.
        common.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        common.truncate(MAX_PAIRS);
        common
            .into_iter()
            .map(|(_, at)| [(at >> 8) as u8, at as u8])
            .collect()
    }
}

/// Marks the words holding each chosen pair, from the words' plain text
/// (each word followed by a NUL), handed over in pieces of any size.
pub(crate) struct PairMarker {
    /// Per pair code: the bit of its row (none for a pair not chosen, and
    /// for every pair holding a NUL, which no word holds).
    row_bit: Vec<u64>,
    rows: Vec<u64>,
    stride: usize,
    /// The word being read, the rows of the pairs met in it so far, and
    /// its last byte read (0 at its start).
    word: usize,
    met: u64,
    previous: u8,
}

impl PairMarker {
    /// A marker of `pairs` (at most [`MAX_PAIRS`]) over `words` words.
    pub(crate) fn new(pairs: &[[u8; 2]], words: usize) -> Self {
        let mut row_bit = vec![0; 1 << 16];
        // No word holds a NUL: a pair of one is never met.
        let rows = pairs.iter().enumerate().take(MAX_PAIRS);
        for (row, pair) in rows.filter(|(_, pair)| !pair.contains(&0)) {
            row_bit[code(pair[0], pair[1])] = 1 << row;
        }
        PairMarker {
            row_bit,
            rows: vec![0; pairs.len().min(MAX_PAIRS) * stride_of(words)],
            stride: stride_of(words),
            word: 0,
            met: 0,
            previous: 0,
        }
    }

    /// Reads the next bytes of the text. The pairs met in a word are
    /// gathered in a register and marked at its end, so the loop over the
    /// bytes (120 MB for the kernel) only looks up and ORs.
    pub(crate) fn scan(&mut self, text: &[u8]) {
        // In locals: kept in `self`, they went to memory on every byte.
        let (mut word, mut met, mut previous) = (self.word, self.met, self.previous);
        let (row_bit, rows, stride) = (&self.row_bit[..], &mut self.rows[..], self.stride);
        for &byte in text {
            if byte == 0 {
                let bit = 1 << (word % 64);
                while met != 0 {
                    let row = met.trailing_zeros() as usize;
                    if let Some(bits) = rows.get_mut(row * stride + word / 64) {
                        *bits |= bit;
                    }
                    met &= met - 1;
                }
                word += 1;
            } else {
                met |= row_bit[code(previous, byte)];
            }
            previous = byte;
        }
        (self.word, self.met, self.previous) = (word, met, previous);
    }

    /// The rows, pair after pair.
    pub(crate) fn finish(self) -> Vec<u64> {
        self.rows
    }
}

/// The bits of a stored vocabulary's common pairs (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct PairBits {
    pairs: Vec<[u8; 2]>,
    rows: Array<u64>,
    stride: usize,
}

impl PairBits {
    /// The rows of `pairs` (stored two bytes each) over `words` words;
    /// `None` unless the sizes agree.
    pub(crate) fn new(pairs: &[u8], rows: Array<u64>, words: usize) -> Option<PairBits> {
        let pairs: Vec<[u8; 2]> = (pairs.chunks(2))
            .map(|pair| <[u8; 2]>::try_from(pair).ok())
            .collect::<Option<_>>()?;
        let stride = stride_of(words);
        (rows.len() == pairs.len().checked_mul(stride)?).then_some(PairBits {
            pairs,
            rows,
            stride,
        })
    }

    /// `pair`'s row of bits, if it is kept: looked up once per search,
    /// not once per group of words.
    pub(crate) fn row(&self, pair: &[u8]) -> Option<PairRow<'_>> {
        let row = self.pairs.iter().position(|p| p == pair)?;
        Some(PairRow {
            bits: self,
            first: row * self.stride,
        })
    }

    /// See [`Array::verify`].
    pub(crate) fn verify(&self) -> bool {
        self.rows.verify()
    }

    /// See [`Array::is_damaged`].
    pub(crate) fn is_damaged(&self) -> bool {
        self.rows.is_damaged()
    }

    /// The pairs and their rows as stored, for `words`, in memory.
    pub(crate) fn of_words<W: AsRef<[u8]>>(words: impl IntoIterator<Item = W> + Clone) -> Self {
        let mut counter = PairCounter::default();
        for word in words.clone() {
            counter.add(word.as_ref());
        }
        let pairs = counter.common();
        let mut marker = PairMarker::new(&pairs, counter.seen);
        for word in words {
            marker.scan(word.as_ref());
            marker.scan(&[0]);
        }
        PairBits {
            stride: marker.stride,
            rows: Array::Owned(marker.finish()),
            pairs,
        }
    }
}

/// One kept pair's bits (see [`PairBits::row`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PairRow<'a> {
    bits: &'a PairBits,
    /// Where the row starts among the rows' numbers.
    first: usize,
}

impl<'a> PairRow<'a> {
    /// The bits of the words `words` holding the pair (bit `i % 64` of
    /// number `i / 64` for word `words.start + i`); `words.start` must be
    /// a multiple of 64. `None` if they lie in a damaged chunk (which
    /// marks the rows damaged).
    pub(crate) fn words_holding(self, words: Range<usize>) -> Option<&'a [u64]> {
        debug_assert!(words.start.is_multiple_of(64));
        let first = self.first;
        let bytes = self
            .bits
            .rows
            .bytes_of(first + words.start / 64..first + words.end.div_ceil(64))?;
        bytemuck::try_cast_slice(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The chosen pairs are exactly the commonest in the sampled
        /// words by a plain count, and their bits the words holding them.
        #[test]
        fn bits_mark_exactly_the_words_holding_each_common_pair(
            words in proptest::collection::vec("[a-e_]{0,6}", 0..300),
            cut in any::<proptest::sample::Index>(),
        ) {
            let bits = PairBits::of_words(&words);
            let holds = |word: &str, pair: &[u8; 2]| word.as_bytes().windows(2).any(|p| p == pair);
            let mut held = std::collections::BTreeMap::<[u8; 2], usize>::new();
            for word in words.iter().step_by(SAMPLE_EVERY) {
                let pairs: std::collections::BTreeSet<[u8; 2]> = (word.as_bytes().windows(2))
                    .map(|p| [p[0], p[1]])
                    .collect();
                for pair in pairs {
                    *held.entry(pair).or_default() += 1;
                }
            }
            let least = (words.len().div_ceil(SAMPLE_EVERY) / COMMON_SHARE).max(1);
            let mut counted: Vec<(usize, [u8; 2])> = (held.into_iter())
                .filter(|&(_, count)| count >= least)
                .map(|(pair, count)| (count, pair))
                .collect();
            counted.sort_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
            counted.truncate(MAX_PAIRS);
            let want: Vec<[u8; 2]> = counted.iter().map(|&(_, pair)| pair).collect();
            prop_assert_eq!(&bits.pairs, &want);
            // A stretch from a multiple of 64 words on, as a group asks.
            let first = cut.index(words.len() / 64 + 1) * 64;
            for pair in &want {
                let kept = bits.row(pair);
                let row = kept.and_then(|r| r.words_holding(0..words.len())).unwrap_or_default();
                for (i, word) in words.iter().enumerate() {
                    prop_assert_eq!(row[i / 64] >> (i % 64) & 1 == 1, holds(word, pair));
                }
                let stretch = kept.and_then(|r| r.words_holding(first..words.len())).unwrap_or_default();
                for (i, word) in words.iter().enumerate().skip(first) {
                    let at = i - first;
                    prop_assert_eq!(stretch[at / 64] >> (at % 64) & 1 == 1, holds(word, pair));
                }
            }
            prop_assert!(bits.row(b"zz").and_then(|r| r.words_holding(0..words.len())).is_none());
        }
    }
}
