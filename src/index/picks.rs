//! The words a search picked: word numbers, ascending, kept in the form
//! that costs least to write.
//!
//! A pattern can pick a million of the kernel's five million words
//! (`*e_*`). As a list of numbers that is 9 MB of memory the query's
//! process has never touched, written as the scan goes, then copied once
//! more to join the parts the vocabulary was scanned in; on the hosts
//! measured, memory touched for the first time costs more than the scan
//! that fills it. So where a search picks more than one word in 64 of a
//! part (see [`PartPicks`]), that part marks one bit per word instead:
//! 620 KB for all the kernel's words, however many are picked. The parts
//! are kept side by side, never joined, and read a few thousand numbers
//! at a time by whoever makes the answer ([`Picks::read`]).

use std::ops::Range;

/// Word numbers, ascending, each at most once.
#[derive(Debug, Clone, Default)]
pub struct Picks {
    /// Ascending, disjoint: each part's numbers are below the next's.
    parts: Vec<Part>,
    len: usize,
}

#[derive(Debug, Clone)]
enum Part {
    Listed(Vec<usize>),
    /// Every word of the range.
    Span(Range<usize>),
    /// Bit `i % 64` of `bits[i / 64]` set if word `first + i` is picked;
    /// `before[k]`: how many are set in `bits[..k * RANK_EVERY]`.
    Marked {
        first: usize,
        bits: Vec<u64>,
        before: Vec<usize>,
        count: usize,
    },
}

/// Words of bits per entry of a marked part's running counts: finding a
/// position then counts the bits of at most this many words.
const RANK_EVERY: usize = 64;

impl Part {
    fn len(&self) -> usize {
        match self {
            Part::Listed(ids) => ids.len(),
            Part::Span(range) => range.len(),
            Part::Marked { count, .. } => *count,
        }
    }

    /// Appends to `out` this part's numbers at `positions`.
    fn read(&self, positions: Range<usize>, out: &mut Vec<usize>) {
        match self {
            Part::Listed(ids) => out.extend_from_slice(&ids[positions]),
            Part::Span(range) => out.extend(positions.map(|k| range.start + k)),
            Part::Marked {
                first,
                bits,
                before,
                ..
            } => {
                // The last stretch of words starting at or before the
                // first position, then its words by their counts, then
                // the bits below the position in the word it lies in.
                let stretch = before
                    .partition_point(|&b| b <= positions.start)
                    .saturating_sub(1);
                let mut skip = positions.start - before.get(stretch).copied().unwrap_or(0);
                let mut w = stretch * RANK_EVERY;
                while let Some(&word) = bits.get(w) {
                    let ones = word.count_ones() as usize;
                    if ones > skip {
                        break;
                    }
                    skip -= ones;
                    w += 1;
                }
                let mut wanted = positions.len();
                out.reserve(wanted);
                let mut word = bits.get(w).copied().unwrap_or(0);
                for _ in 0..skip {
                    word &= word.wrapping_sub(1);
                }
                while wanted > 0 {
                    let base = first + w * 64;
                    while word != 0 && wanted > 0 {
                        out.push(base + word.trailing_zeros() as usize);
                        word &= word - 1;
                        wanted -= 1;
                    }
                    w += 1;
                    match bits.get(w) {
                        Some(&next) => word = next,
                        None => break,
                    }
                }
            }
        }
    }

    /// Where `id` is among this part's numbers: `Ok(position)` when it is
    /// one of them, else `Err` of where it would go (as
    /// `slice::binary_search`).
    fn position(&self, id: usize) -> Result<usize, usize> {
        match self {
            Part::Listed(ids) => ids.binary_search(&id),
            Part::Span(range) if id < range.start => Err(0),
            Part::Span(range) if id >= range.end => Err(range.len()),
            Part::Span(range) => Ok(id - range.start),
            Part::Marked {
                first,
                bits,
                before,
                count,
            } => {
                let Some(at) = id.checked_sub(*first) else {
                    return Err(0);
                };
                let Some(&word) = bits.get(at / 64) else {
                    return Err(*count);
                };
                let w = at / 64;
                let stretch = w / RANK_EVERY;
                let below: usize = before.get(stretch).copied().unwrap_or(0)
                    + bits[stretch * RANK_EVERY..w]
                        .iter()
                        .map(|b| b.count_ones() as usize)
                        .sum::<usize>()
                    + (word & ((1u64 << (at % 64)) - 1)).count_ones() as usize;
                match word >> (at % 64) & 1 {
                    1 => Ok(below),
                    _ => Err(below),
                }
            }
        }
    }
}

impl Picks {
    /// Every word of `range`.
    pub fn span(range: Range<usize>) -> Picks {
        Picks {
            len: range.len(),
            parts: vec![Part::Span(range)],
        }
    }

    /// The parts of a search made side by side, in ascending order.
    pub(crate) fn of_parts(parts: impl IntoIterator<Item = PartPicks>) -> Picks {
        let parts: Vec<Part> = parts.into_iter().map(PartPicks::finish).collect();
        Picks {
            len: parts.iter().map(Part::len).sum(),
            parts,
        }
    }

    /// How many words are picked.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no word is picked.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends to `out` the numbers at `positions` (`0..len()` for all),
    /// in order.
    pub fn read(&self, positions: Range<usize>, out: &mut Vec<usize>) {
        let mut before = 0;
        for part in &self.parts {
            let len = part.len();
            let start = positions.start.clamp(before, before + len) - before;
            let end = positions.end.clamp(before, before + len) - before;
            if start < end {
                part.read(start..end, out);
            }
            before += len;
        }
    }

    /// Where word `id` is among the picks: `Ok(position)` when it is
    /// picked, else `Err` of how many picked words are below it (as
    /// `slice::binary_search`): in each part up to the one that would
    /// hold it, one binary search, or at most 64 words of bits counted.
    pub fn position(&self, id: usize) -> Result<usize, usize> {
        let mut before = 0;
        for part in &self.parts {
            match part.position(id) {
                Ok(at) => return Ok(before + at),
                Err(at) if at < part.len() => return Err(before + at),
                Err(_) => before += part.len(),
            }
        }
        Err(before)
    }

    /// The numbers, as one list.
    pub fn into_ids(mut self) -> Vec<usize> {
        if let [Part::Listed(ids)] = self.parts.as_mut_slice() {
            return std::mem::take(ids);
        }
        let mut ids = Vec::with_capacity(self.len);
        self.read(0..self.len, &mut ids);
        ids
    }
}

impl PartialEq for Picks {
    /// The same numbers, whatever their form.
    fn eq(&self, other: &Picks) -> bool {
        self.len == other.len && self.clone().into_ids() == other.clone().into_ids()
    }
}

impl PartialEq<Vec<usize>> for Picks {
    fn eq(&self, other: &Vec<usize>) -> bool {
        self.len == other.len() && self.clone().into_ids() == *other
    }
}

impl From<Vec<usize>> for Picks {
    /// `ids` must be ascending, each at most once.
    fn from(ids: Vec<usize>) -> Picks {
        debug_assert!(ids.windows(2).all(|w| w[0] < w[1]));
        Picks {
            len: ids.len(),
            parts: vec![Part::Listed(ids)],
        }
    }
}

/// The picks of one range of words, pushed in ascending order: listed
/// while few, marked one bit a word once a list would take more room than
/// the bits (more than one word in 64 picked).
#[derive(Debug)]
pub(crate) struct PartPicks {
    words: Range<usize>,
    listed: Vec<usize>,
    /// Empty while the picks are listed.
    marked: Vec<u64>,
    count: usize,
}

impl PartPicks {
    /// For picks among the words numbered `words`.
    pub(crate) fn new(words: Range<usize>) -> PartPicks {
        PartPicks {
            words,
            listed: Vec::new(),
            marked: Vec::new(),
            count: 0,
        }
    }

    /// Picks word `id`: in `words`, above every word picked before.
    #[inline]
    pub(crate) fn push(&mut self, id: usize) {
        debug_assert!(self.words.contains(&id));
        if self.marked.is_empty() {
            self.listed.push(id);
            if self.listed.len() > self.words.len() / 64 {
                self.mark_listed();
            }
        } else {
            let at = id - self.words.start;
            self.marked[at / 64] |= 1 << (at % 64);
            self.count += 1;
        }
    }

    /// Picks the words `first + k` for each bit `k` below `words` set in
    /// `marks` (bit `k % 64` of `marks[k / 64]`): all in this part's
    /// words, above every word picked before. Where the bits are this
    /// part's own (`first` is 64 words past another of its marks), a
    /// word of bits is ORed in whole.
    pub(crate) fn mark(&mut self, first: usize, marks: &[u64], words: usize) {
        debug_assert!(first >= self.words.start && first + words <= self.words.end);
        let marks = &marks[..words.div_ceil(64).min(marks.len())];
        // The bits of `marks[i]` for words below `words`.
        let within = |i: usize, bits: u64| match words - i * 64 {
            n if n < 64 => bits & ((1u64 << n) - 1),
            _ => bits,
        };
        let count: usize = (marks.iter().enumerate())
            .map(|(i, &bits)| within(i, bits).count_ones() as usize)
            .sum();
        if self.marked.is_empty() && self.listed.len() + count > self.words.len() / 64 {
            self.mark_listed();
        }
        if self.marked.is_empty() {
            for (i, &bits) in marks.iter().enumerate() {
                let mut bits = within(i, bits);
                while bits != 0 {
                    self.listed
                        .push(first + i * 64 + bits.trailing_zeros() as usize);
                    bits &= bits - 1;
                }
            }
            return;
        }
        let at = first - self.words.start;
        let (to, by) = (at / 64, at % 64);
        for (i, &bits) in marks.iter().enumerate() {
            let bits = within(i, bits);
            if let Some(word) = self.marked.get_mut(to + i) {
                *word |= bits << by;
            }
            if let Some(word) = self.marked.get_mut(to + i + 1).filter(|_| by > 0) {
                *word |= bits >> (64 - by);
            }
        }
        self.count += count;
    }

    /// Moves the listed picks to bits (fresh zeroed memory: only the pages
    /// a pick lands in are touched).
    #[cold]
    fn mark_listed(&mut self) {
        self.marked = vec![0; self.words.len().div_ceil(64)];
        let listed = std::mem::take(&mut self.listed);
        self.count = listed.len();
        for id in listed {
            let at = id - self.words.start;
            self.marked[at / 64] |= 1 << (at % 64);
        }
    }

    fn finish(self) -> Part {
        match self.marked.is_empty() {
            true => Part::Listed(self.listed),
            false => Part::Marked {
                first: self.words.start,
                before: self
                    .marked
                    .chunks(RANK_EVERY)
                    .scan(0, |before, words| {
                        let at = *before;
                        *before += words.iter().map(|w| w.count_ones() as usize).sum::<usize>();
                        Some(at)
                    })
                    .collect(),
                bits: self.marked,
                count: self.count,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Picks of `words` words made as a search makes them: cut into
    /// `cuts` ranges, each its own part, whose words come in stretches of
    /// `stretch` (some of which start 64 words apart), pushed one by one
    /// or, every other stretch, marked as bits.
    fn made(words: usize, picked: &[usize], cuts: &[usize], stretch: usize) -> Picks {
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (words + 1)).collect();
        bounds.extend([0, words]);
        bounds.sort_unstable();
        Picks::of_parts(bounds.windows(2).map(|w| {
            let mut part = PartPicks::new(w[0]..w[1]);
            let mut first = w[0];
            let mut marking = false;
            while first < w[1] {
                let end = (first + stretch).min(w[1]);
                let ids = picked.iter().filter(|&&id| (first..end).contains(&id));
                if marking {
                    let mut marks = vec![0u64; (end - first).div_ceil(64) + 1];
                    for &id in ids {
                        marks[(id - first) / 64] |= 1 << ((id - first) % 64);
                    }
                    // A stray bit past the stretch's words is left out.
                    marks[(end - first) / 64] |= 1 << ((end - first) % 64);
                    part.mark(first, &marks, end - first);
                } else {
                    ids.for_each(|&id| part.push(id));
                }
                marking = !marking;
                first = end;
            }
            part
        }))
    }

    #[test]
    fn a_part_marks_its_picks_once_a_list_would_be_larger() {
        let mut part = PartPicks::new(1000..1000 + 64 * 10);
        for id in (1000..).step_by(7).take(10) {
            part.push(id);
        }
        assert!(part.marked.is_empty());
        part.push(1000 + 71);
        assert!(!part.marked.is_empty() && part.listed.is_empty());
        let picks = Picks::of_parts([part]);
        let mut want: Vec<usize> = (1000..).step_by(7).take(10).collect();
        want.push(1000 + 71);
        assert_eq!(picks.len(), 11);
        assert_eq!(picks.into_ids(), want);
    }

    proptest! {
        /// Whatever the parts and their forms, the picks read back as the
        /// numbers pushed, from any position to any other.
        #[test]
        fn picks_read_back_as_pushed(
            words in 1usize..3000,
            density in 1usize..40,
            seed in any::<u64>(),
            cuts in proptest::collection::vec(any::<usize>(), 0..4),
            stretch in prop_oneof![Just(64usize), Just(128), 1usize..300],
            span in (any::<usize>(), any::<usize>()),
        ) {
            let mut state = seed | 1;
            let picked: Vec<usize> = (0..words)
                .filter(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state % density as u64 == 0
                })
                .collect();
            let picks = made(words, &picked, &cuts, stretch);
            prop_assert_eq!(picks.len(), picked.len());
            let (a, b) = (span.0 % (picked.len() + 1), span.1 % (picked.len() + 1));
            let (start, end) = (a.min(b), a.max(b));
            let mut read = vec![usize::MAX];
            picks.read(start..end, &mut read);
            prop_assert_eq!(&read[1..], &picked[start..end]);
            for id in 0..words + 65 {
                prop_assert_eq!(picks.position(id), picked.binary_search(&id), "word {}", id);
            }
            prop_assert_eq!(picks.into_ids(), picked);
        }
    }

    #[test]
    fn a_span_reads_as_its_numbers() {
        let picks = Picks::span(5..12);
        let mut read = Vec::new();
        picks.read(2..4, &mut read);
        assert_eq!(read, [7, 8]);
        assert_eq!(picks.position(4), Err(0));
        assert_eq!(picks.position(7), Ok(2));
        assert_eq!(picks.position(12), Err(7));
        assert_eq!(picks.into_ids(), (5..12).collect::<Vec<_>>());
    }
}
