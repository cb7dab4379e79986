//! The sorted set of distinct words, the index's entry point for search.
//!
//! Word numbers are ranks in ascending byte order, so prefix and exact
//! lookups are binary searches and a prefix's matches are one contiguous
//! range of numbers. Words are kept in one of two forms:
//!
//! * an *arena* (a fresh build): words back to back plus each word's end,
//!   so a word is a slice and a substring search is one `memmem` pass over
//!   all the words;
//! * *front-coded blocks* (a saved index, used in place): blocks of
//!   [`BLOCK`] words, each word after a block's first stored as the length
//!   it shares with the word before plus the rest. Sorted identifiers share
//!   long prefixes, so this holds the kernel's 5 million words in 40% of
//!   the arena's bytes and needs no per-word ends; a lookup binary-searches
//!   the blocks' first words (stored whole) and decodes one block.

use std::borrow::Cow;
use std::ops::Range;

use super::bytes::{Array, Chunked};
use super::pairs::PairBits;
use super::picks::{PartPicks, Picks};
use super::postings::{read_varint, write_varint};

/// Words per front-coded block: a lookup decodes at most this many.
pub const BLOCK: usize = 16;

/// Vocabularies of this many words are worked on in parts, by two
/// threads (see [`Vocabulary::in_parts`]).
const PARALLEL_WORDS: usize = 1 << 16;

/// The parts a large vocabulary is cut into for two threads to share: the
/// words' cost is uneven (the kernel's upper half of `*e_*` took its
/// thread 30 ms where the lower half took 17), so each thread takes the
/// next part as it finishes one, and at most a part's worth is left to
/// one thread at the end.
const PARALLEL_PARTS: usize = 32;

/// Part `part` of `0..n` cut into `parts` runs of (nearly) equal length.
pub(crate) fn share(n: usize, part: usize, parts: usize) -> Range<usize> {
    let parts = parts.max(1);
    n * part / parts..n * (part + 1) / parts
}

/// Distinct words in ascending byte order; a word's number is its rank.
#[derive(Debug, Clone)]
pub struct Vocabulary {
    form: Form,
}

#[derive(Debug, Clone)]
enum Form {
    Arena(Arena),
    Front(Front),
}

impl Default for Vocabulary {
    fn default() -> Self {
        Vocabulary {
            form: Form::Arena(Arena::default()),
        }
    }
}

/// A matcher over many words at once (see [`Vocabulary::picked_in_text`]):
/// given words each followed by a NUL, it marks the words it picks by
/// their places in that text (0 for the first word): bit `k % 64` of
/// `marks[k / 64]` for word `k`, growing `marks` with zeros as it needs
/// (it is given empty).
pub type TextPicker<'a> = dyn Fn(&[u8], &mut Vec<u64>) + Sync + 'a;

/// What a [`Vocabulary::walk`] does after a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Go on with the next word.
    Next,
    /// Pass over the following words that begin with this many bytes of
    /// this one.
    SkipPrefix(usize),
}

/// Why stored words cannot be used as a vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadVocabulary;

/// Words in memory, in one or more segments back to back in word order.
/// A merge's vocabulary ranges are built on threads of their own, each in
/// its own vectors; they are kept as they were built, where copying the
/// later ones after the first would write a third of a gigabyte's worth of
/// pages never touched before, when nothing else runs.
#[derive(Debug, Clone)]
struct Arena {
    /// At least one; only the last may be empty.
    segments: Vec<Segment>,
}

#[derive(Debug, Default, Clone)]
struct Segment {
    /// Number of its first word.
    first: usize,
    bytes: Vec<u8>,
    /// Per word: the end of its bytes in `bytes`. 32 bits, since a segment
    /// holds at most [`SEGMENT_BYTES`] (the kernel's 5 M words: 20 MB less
    /// for the merge to fault in and for the exit to free than with 64).
    ends: Vec<u32>,
}

/// The most bytes a segment holds: a push that would pass it starts a
/// new segment.
const SEGMENT_BYTES: usize = u32::MAX as usize;

impl Default for Arena {
    fn default() -> Self {
        Arena {
            segments: vec![Segment::default()],
        }
    }
}

#[derive(Debug, Clone)]
struct Front {
    /// The blocks, back to back.
    data: Chunked,
    /// Where each block starts in `data`, and `data`'s length last.
    blocks: Array<u64>,
    /// Per block, [`SIGNATURE_LANES`] numbers: its words' byte pairs (see
    /// [`Signature`]); absent in files written before they were.
    signatures: Option<Box<Array<u64>>>,
    /// The words once more, as plain text; absent in files written before.
    plain: Option<Box<PlainText>>,
    /// The words' [`suffix_key`]s, ascending; absent in files written
    /// before them (or past [`SUFFIX_ORDER_WORDS`]).
    suffixes: Option<Box<Array<u64>>>,
    /// The words holding each of the commonest byte pairs; absent in
    /// files written before them, and in unsaved builds.
    pairs: Option<Box<PairBits>>,
    /// Number of words.
    len: usize,
}

/// A vocabulary of more words than this is saved without its
/// [`suffix_key`]s: the writer holds them all (8 bytes a word) to sort
/// them, 128 MiB at most. The kernel has 5 million words.
pub(crate) const SUFFIX_ORDER_WORDS: usize = 1 << 24;

/// Bytes of a word's end in its [`suffix_key`].
const SUFFIX_KEY_BYTES: usize = 4;

/// Word `id`'s place in the order of words read backwards: its last four
/// bytes, last first (zeros past a shorter word's start, a byte no word
/// holds), above its number. Sorted, the keys make the words ending with a
/// given suffix of up to four bytes one run of them, found by two binary
/// searches, and those ending with a longer one a run holding them, where
/// scanning all the words for `*_t` read 120 MB to find 6 thousand.
pub(crate) fn suffix_key(word: &[u8], id: u32) -> u64 {
    let mut key = 0u64;
    for k in 0..SUFFIX_KEY_BYTES {
        let byte = word.len().checked_sub(k + 1).map_or(0, |at| word[at]);
        key = key << 8 | u64::from(byte);
    }
    key << 32 | u64::from(id)
}

/// The range of [`suffix_key`]s of the words ending with `suffix`'s last
/// four bytes (all of it if shorter), at any number.
fn suffix_keys_of(suffix: &[u8]) -> std::ops::RangeInclusive<u64> {
    let (mut low, mut high) = (0u64, 0u64);
    for k in 0..SUFFIX_KEY_BYTES {
        let (l, h) = match suffix.len().checked_sub(k + 1) {
            Some(at) => (suffix[at], suffix[at]),
            None => (0, u8::MAX),
        };
        low = low << 8 | u64::from(l);
        high = high << 8 | u64::from(h);
    }
    low << 32..=high << 32 | u64::from(u32::MAX)
}

/// Words per group of [`PlainText`]: what [`Vocabulary::picked_in_text`]
/// hands a matcher at once.
pub(crate) const TEXT_GROUP: usize = 64 * BLOCK;

/// A stored vocabulary's words back to back, each followed by a NUL, as a
/// matcher of many words at once reads them ([`TextPicker`]): a search
/// that must look at every word (`*a*b*c*`) runs straight over the mapped
/// file instead of decoding every block first, which was half its time.
/// About a fifth more file for the kernel's vocabulary.
#[derive(Debug, Clone)]
struct PlainText {
    text: Chunked,
    /// Where every [`TEXT_GROUP`]th word starts in `text`, and its length
    /// last.
    groups: Array<u64>,
}

impl PlainText {
    /// Where group `g`'s text lies in `text`; `None` if its bounds are
    /// damaged (bounds out of order are caught where the text is read).
    fn group(&self, g: usize) -> Option<Range<usize>> {
        let start = usize::try_from(self.groups.get(g)?).ok()?;
        let end = usize::try_from(self.groups.get(g + 1)?).ok()?;
        Some(start..end)
    }
}

/// Blocks per group of [`PlainText`] (a group's words are these blocks').
const GROUP_BLOCKS: usize = TEXT_GROUP / BLOCK;

/// A substring search hands a group of [`PlainText`] to its matcher of
/// many words (see [`Vocabulary::holding`]) when at least this many of the
/// group's [`GROUP_BLOCKS`] blocks may hold the needle by their signatures,
/// rather than decoding those blocks and searching them with `memmem`.
/// At 16, 24 and 32 on the kernel's words (9 alternating runs each,
/// saved index in a fresh page cache), against never: `*_t*` 55 -> 39, 40
/// and 43 ms, `*e_*` 84 -> 54, 48 and 51 ms, `*lock*` 21 -> 21, 20 and 20
/// ms, `*_irq*` 16 -> 16, 19 and 16 ms. Once an answer's entries cost
/// less (16 bytes, made by two threads), the scan is most of a query, and
/// 16 beat 24 (11 alternating runs, a fresh copy of the index): `*_t*`
/// 32.9 -> 29.5 ms, `*iv*` 21.0 -> 18.9, `*lock*` 15.1 -> 14.9; 12 was
/// no better than 16. (On an index whose pages the host had let go and
/// split, 16 cost `*iv*` and `*lock*` a fifth: text mapped at 500 ns a
/// page costs what decoding does.)
const PLAIN_FROM: usize = 16;

/// A check on the words a search finds (see [`Vocabulary::containing`]).
pub type Keep<'a> = dyn Fn(&[u8]) -> bool + Sync + 'a;

/// Numbers (of 64 bits) in a block's signature.
pub(crate) const SIGNATURE_LANES: usize = 4;

/// The byte pairs found inside a set of words, hashed into 256 bits: a
/// block whose signature lacks a pair of a needle holds no word containing
/// that needle, so a substring search passes over it without decoding it.
/// (A block's 16 words have some tens to a hundred distinct pairs, so most
/// bits stay clear and a needle of a few pairs rules most blocks out.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Signature([u64; SIGNATURE_LANES]);

impl Signature {
    fn add(&mut self, word: &[u8]) {
        for pair in word.windows(2) {
            let bit = ((u32::from(pair[0]) << 8 | u32::from(pair[1])).wrapping_mul(0x9E37_79B1)
                >> 24) as usize;
            self.0[bit / 64] |= 1 << (bit % 64);
        }
    }

    fn of(word: &[u8]) -> Signature {
        let mut signature = Signature::default();
        signature.add(word);
        signature
    }

    fn is_empty(&self) -> bool {
        self.0 == [0; SIGNATURE_LANES]
    }

    /// True if the words a block's signature signs (`lanes`, its numbers
    /// as stored, little-endian) may hold every pair of this one's.
    fn may_hold_in(&self, lanes: &[u8]) -> bool {
        lanes
            .chunks_exact(8)
            .zip(self.0)
            .all(|(lane, want)| u64::from_le(bytemuck::pod_read_unaligned(lane)) & want == want)
    }
}

/// The words of one front-coded block as stored: for each, the bytes it
/// shares with the word before (0 for the first, stored whole) and where
/// the rest lies in the block. The one reader of the block format: a
/// malformed entry (a bad varint, a prefix longer than the word before, a
/// rest past the block) ends the block there, so a damaged block decodes
/// as its well-formed words, never past them.
#[derive(Debug)]
struct Entries<'a> {
    block: &'a [u8],
    pos: usize,
    left: usize,
    /// Length of the word before (`None` before the first).
    previous: Option<usize>,
}

impl<'a> Entries<'a> {
    /// The `count` words of the block starting at `block[pos]`.
    fn new(block: &'a [u8], pos: usize, count: usize) -> Self {
        Entries {
            block,
            pos,
            left: count,
            previous: None,
        }
    }

    fn parse(&mut self) -> Option<(usize, Range<usize>)> {
        let shared = match self.previous {
            None => 0,
            Some(_) => usize::try_from(read_varint(self.block, &mut self.pos)?).ok()?,
        };
        let rest = usize::try_from(read_varint(self.block, &mut self.pos)?).ok()?;
        if shared > self.previous.unwrap_or(0) || rest > self.block.len() - self.pos {
            return None;
        }
        let suffix = self.pos..self.pos + rest;
        self.pos += rest;
        self.previous = Some(shared + rest);
        Some((shared, suffix))
    }
}

impl Iterator for Entries<'_> {
    type Item = (usize, Range<usize>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let entry = self.parse();
        self.left = if entry.is_some() { self.left - 1 } else { 0 };
        entry
    }
}

/// Copies `src[from]` to the start of `to` in whole 16-byte pieces (a
/// load and a store each, where a copy of the exact length is a call into
/// `memmove` per word), reading and writing up to 15 bytes past its end
/// where `src` and `to` go on that far; exactly where they do not.
#[inline]
fn copy_in_pieces(to: &mut [u8], src: &[u8], from: Range<usize>) {
    let padded = from.len().next_multiple_of(16);
    match (
        src.get(from.start..from.start + padded),
        to.get_mut(..padded),
    ) {
        (Some(pieces), Some(to)) => {
            for (d, s) in to.chunks_exact_mut(16).zip(pieces.chunks_exact(16)) {
                d.copy_from_slice(s);
            }
        }
        _ => to[..from.len()].copy_from_slice(&src[from]),
    }
}

/// Bytes kept past the end of [`Decoded::bytes`]: words are copied in
/// whole 16-byte pieces, which may run up to 15 bytes past a word's end.
const SLACK: usize = 32;

/// Many blocks' words decoded back to back, each followed by a NUL (in no
/// word, so a substring hit never spans two words), for one substring
/// search over a thousand words rather than sixteen.
///
/// Decoding is what a search over the whole vocabulary spends its time on,
/// so a word's shared prefix and its suffix are copied in whole 16-byte
/// pieces (a load and a store each, where a copy of the exact length is a
/// call into `memmove` per word); the bytes a piece writes past the word
/// are overwritten by its NUL and the next word.
#[derive(Debug, Default)]
struct Decoded {
    /// The words; at least [`SLACK`] bytes longer than `end`.
    bytes: Vec<u8>,
    end: usize,
    /// Per word: where it starts in `bytes`, and its number.
    starts: Vec<(usize, usize)>,
}

impl Decoded {
    fn clear(&mut self) {
        self.end = 0;
        self.starts.clear();
    }

    /// The words and their NULs.
    fn text(&self) -> &[u8] {
        &self.bytes[..self.end]
    }

    /// The `j`th word decoded, and its number.
    fn word(&self, j: usize) -> (&[u8], usize) {
        let (start, id) = self.starts[j];
        let end = self.starts.get(j + 1).map_or(self.end, |next| next.0) - 1;
        (&self.bytes[start..end], id)
    }

    /// Which word the byte at `at` of [`Decoded::text`] belongs to,
    /// looking forward from word `from`, which starts at or before it: a
    /// search's hits come in order, a word or two apart, so stepping on
    /// costs less than a binary search per hit (`*iv*`: 86 thousand).
    fn word_at(&self, at: usize, from: usize) -> usize {
        let mut j = from;
        while self
            .starts
            .get(j + 1)
            .is_some_and(|&(start, _)| start <= at)
        {
            j += 1;
        }
        j
    }

    /// Room for a word ending at `end`, its NUL and [`SLACK`].
    fn make_room(&mut self, end: usize) {
        if self.bytes.len() < end + 1 + SLACK {
            self.bytes
                .resize((end + 1 + SLACK).max(self.bytes.len() * 2), 0);
        }
    }

    /// Appends `word`, numbered `id`, and its NUL.
    fn push_word(&mut self, word: &[u8], id: usize) {
        let start = self.end;
        let end = start + word.len();
        self.make_room(end);
        self.bytes[start..end].copy_from_slice(word);
        self.bytes[end] = 0;
        self.end = end + 1;
        self.starts.push((start, id));
    }

    /// Calls `pick` on the text and adds to `ids` the numbers of the
    /// words it picks (`marks`, a scratch list). The words decoded are
    /// consecutive, as a whole range's are.
    fn pick_into(&self, pick: &TextPicker<'_>, marks: &mut Vec<u64>, ids: &mut PartPicks) {
        let Some(&(_, first)) = self.starts.first() else {
            return;
        };
        debug_assert!(self
            .starts
            .iter()
            .enumerate()
            .all(|(k, &(_, id))| id == first + k));
        marks.clear();
        pick(self.text(), marks);
        ids.mark(first, marks, self.starts.len());
    }

    /// Appends the words of the block numbered `k` whose bytes are
    /// `src[range]`; its first word is number `first`, and it holds `count`.
    /// `src` may go on past the block (the next blocks of a group): pieces
    /// are then read whole across its end. A malformed block ends early
    /// (see [`Entries`]).
    fn push_block(&mut self, src: &[u8], range: Range<usize>, first: usize, count: usize) {
        let Some(block) = src.get(..range.end) else {
            return;
        };
        // Where the word before starts (its length bounds `shared`).
        let mut previous = 0;
        for (j, (shared, suffix)) in Entries::new(block, range.start, count).enumerate() {
            let (pos, rest) = (suffix.start, suffix.len());
            let start = self.end;
            let end = start + shared + rest;
            self.make_room(end);
            // Nearly every word: a fixed 32 bytes of prefix and of suffix,
            // where loops of as many 16-byte pieces as the lengths need
            // mispredict a branch per word.
            if shared <= 32 && rest <= 32 {
                if let Some(piece) = src.get(pos..pos + 32) {
                    let mut prefix = [0u8; 32];
                    prefix.copy_from_slice(&self.bytes[previous..previous + 32]);
                    self.bytes[start..start + 32].copy_from_slice(&prefix);
                    self.bytes[start + shared..start + shared + 32].copy_from_slice(piece);
                    self.bytes[end] = 0;
                    self.end = end + 1;
                    self.starts.push((start, first + j));
                    previous = start;
                    continue;
                }
            }
            let mut k = 0;
            while k < shared {
                // Never overlapping where it matters: the bytes read lie
                // before `start`, the previous word's NUL between.
                self.bytes
                    .copy_within(previous + k..previous + k + 16, start + k);
                k += 16;
            }
            copy_in_pieces(&mut self.bytes[start + shared..], src, pos..pos + rest);
            self.bytes[end] = 0;
            self.end = end + 1;
            self.starts.push((start, first + j));
            previous = start;
        }
    }
}

/// Encodes words, pushed in ascending order, as front-coded blocks. A
/// writer of a vocabulary larger than memory takes the bytes and block
/// starts made so far with [`FrontCoder::drain`] as it goes.
#[derive(Debug, Default)]
pub struct FrontCoder {
    data: Vec<u8>,
    blocks: Vec<u64>,
    /// The signatures of the blocks finished since the last drain.
    signatures: Vec<u64>,
    /// The current block's signature.
    signature: Signature,
    previous: Vec<u8>,
    len: usize,
    /// Bytes already drained.
    drained: u64,
}

/// A front-coder's output: the blocks' bytes, where each block starts
/// (and the end), their signatures, and the word count.
#[derive(Debug, Default)]
pub struct Coded {
    pub data: Vec<u8>,
    pub blocks: Vec<u64>,
    pub signatures: Vec<u64>,
    pub len: usize,
}

impl FrontCoder {
    /// Appends the next word (strictly greater than the previous one).
    pub fn push(&mut self, word: &[u8]) {
        if self.len.is_multiple_of(BLOCK) {
            if self.len > 0 {
                self.end_block();
            }
            self.blocks.push(self.drained + self.data.len() as u64);
            write_varint(&mut self.data, word.len() as u64);
            self.data.extend_from_slice(word);
        } else {
            let shared = self
                .previous
                .iter()
                .zip(word)
                .take_while(|(a, b)| a == b)
                .count();
            write_varint(&mut self.data, shared as u64);
            write_varint(&mut self.data, (word.len() - shared) as u64);
            self.data.extend_from_slice(&word[shared..]);
        }
        self.signature.add(word);
        self.previous.clear();
        self.previous.extend_from_slice(word);
        self.len += 1;
    }

    fn end_block(&mut self) {
        self.signatures.extend_from_slice(&self.signature.0);
        self.signature = Signature::default();
    }

    /// Bytes made since the last drain (or since the start).
    pub fn pending_bytes(&self) -> usize {
        self.data.len() + self.blocks.len() * 8 + self.signatures.len() * 8
    }

    /// Takes the bytes, block starts and finished blocks' signatures made
    /// so far, to be written out (the current block's signature is given
    /// once the block is done).
    pub fn drain(&mut self, into: &mut Coded) {
        self.drained += self.data.len() as u64;
        into.data.append(&mut self.data);
        into.blocks.append(&mut self.blocks);
        into.signatures.append(&mut self.signatures);
    }

    /// What was not drained yet: the blocks, where each starts (plus the
    /// end), their signatures, and the word count.
    pub fn finish(mut self) -> Coded {
        // The last block (full or not) is ended here.
        if self.len > 0 {
            self.end_block();
        }
        self.blocks.push(self.drained + self.data.len() as u64);
        Coded {
            data: self.data,
            blocks: self.blocks,
            signatures: self.signatures,
            len: self.len,
        }
    }
}

impl Front {
    /// [`Vocabulary::rank_of`] through the words' plain text: a binary
    /// search of the groups' first words, then of one group's text by its
    /// bytes. The text is checked 4 KiB at a time, where the blocks are
    /// checked 64 KiB at a time; a search of the blocks touches a chunk
    /// per step, so two hundred of them (a delta's words placed among a
    /// base's) verified most of the kernel's 60 MB of blocks (5 ms).
    /// `None` where a piece of the text is damaged.
    fn rank_in_text(&self, plain: &PlainText, word: &[u8]) -> Option<(usize, bool)> {
        /// Enough bytes for most words and their NUL.
        const HEAD: usize = 128;
        let first_of = |g: usize| -> Option<&[u8]> {
            let range = plain.group(g)?;
            let head = plain
                .text
                .get(range.start..range.end.min(range.start.saturating_add(HEAD)))?;
            match memchr::memchr(0, head) {
                Some(n) => Some(&head[..n]),
                None => {
                    let all = plain.text.get(range)?;
                    Some(&all[..memchr::memchr(0, all).unwrap_or(all.len())])
                }
            }
        };
        let groups = self.len.div_ceil(TEXT_GROUP);
        let damaged = std::cell::Cell::new(false);
        let below = first_failing(groups, |g| match first_of(g) {
            Some(first) => first < word,
            None => {
                damaged.set(true);
                false
            }
        });
        if damaged.get() {
            return None;
        }
        let Some(g) = below.checked_sub(1) else {
            return Some((0, first_of(0).is_some_and(|first| first == word)));
        };
        let text = plain.text.get(plain.group(g)?)?;
        // The first word at or past `word`, starting at byte `lo`: `lo`
        // and `hi` are word starts (or the text's end), every word before
        // `lo` is below `word` and the one at `hi` is not.
        let (mut lo, mut hi) = (0, text.len());
        let word_at = |start: usize| {
            let end = memchr::memchr(0, &text[start..]).map_or(text.len(), |n| start + n);
            (&text[start..end], end)
        };
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let start = memchr::memrchr(0, &text[lo..mid]).map_or(lo, |n| lo + n + 1);
            let (here, end) = word_at(start);
            match here < word {
                true => lo = (end + 1).min(hi),
                false => hi = start,
            }
        }
        let rank = g * TEXT_GROUP + text[..lo].iter().filter(|&&b| b == 0).count();
        let held = match lo < text.len() {
            true => word_at(lo).0 == word,
            false => g + 1 < groups && first_of(g + 1)? == word,
        };
        Some((rank, held))
    }

    fn block_count(&self) -> usize {
        self.blocks.len().saturating_sub(1)
    }

    /// The block's bytes (empty if the stored offsets are bad, or a
    /// chunk they lie in fails its check).
    fn block(&self, k: usize) -> &[u8] {
        match (self.blocks.get(k), self.blocks.get(k + 1)) {
            (Some(s), Some(e)) if s <= e => {
                self.data.get(s as usize..e as usize).unwrap_or_default()
            }
            _ => &[],
        }
    }

    /// The first word of block `k`, stored whole.
    fn first_word(&self, k: usize) -> &[u8] {
        let block = self.block(k);
        let mut pos = 0;
        let Some(len) = read_varint(block, &mut pos) else {
            return &[];
        };
        let end = pos.saturating_add(len as usize);
        block.get(pos..end).unwrap_or_default()
    }

    /// Decodes block `k`'s words from the `skip`-th on into `buf`, calling
    /// `f(id, word)` for each until it returns false; returns false then.
    fn decode_block(
        &self,
        k: usize,
        skip: usize,
        buf: &mut Vec<u8>,
        f: &mut dyn FnMut(usize, &[u8]) -> bool,
    ) -> bool {
        let block = self.block(k);
        let first = k * BLOCK;
        let count = BLOCK.min(self.len.saturating_sub(first));
        buf.clear();
        for (j, (shared, suffix)) in Entries::new(block, 0, count).enumerate() {
            buf.truncate(shared);
            buf.extend_from_slice(&block[suffix]);
            if j >= skip && !f(first + j, buf) {
                return false;
            }
        }
        true
    }

    /// First word number whose word fails `pred` (true on a leading run).
    fn partition_point(&self, pred: &dyn Fn(&[u8]) -> bool) -> usize {
        let lo = first_failing(self.block_count(), |block| pred(self.first_word(block)));
        if lo == 0 {
            return 0;
        }
        let k = lo - 1;
        let mut point = k * BLOCK;
        let mut buf = Vec::new();
        self.decode_block(k, 0, &mut buf, &mut |id, word| {
            if pred(word) {
                point = id + 1;
                true
            } else {
                false
            }
        });
        point
    }

    /// See [`Vocabulary::walk_part`]: a skip passes over whole blocks by
    /// their first words, and over the words of a block by their stored
    /// prefix lengths, without copying them out.
    ///
    /// This is the loop a pattern with no literal runs over every word, so
    /// it is generic (the caller's automaton inlines into it) and keeps the
    /// current word in one buffer, each word's rest copied over the word
    /// before in 16-byte pieces (a copy of the exact length is a call into
    /// `memmove` per word).
    fn walk_blocks<F>(&self, blocks: Range<usize>, f: &mut F)
    where
        F: FnMut(usize, &[u8], usize) -> Step,
    {
        let count = blocks.end.min(self.block_count());
        // The word last given to `f` in `word[..len]`; past it, room for
        // a whole piece.
        let mut word: Vec<u8> = vec![0; 64];
        let mut len = 0usize;
        // While passing over the words that begin with `word[..n]`: n.
        let mut skip: Option<usize> = None;
        let mut k = blocks.start;
        while k < count {
            if let Some(n) = skip {
                let prefix = &word[..n];
                let has = |b: usize| self.first_word(b).starts_with(prefix);
                if has(k) {
                    // Gallop to the last block that begins in the run:
                    // every block before it lies wholly inside the run.
                    let (mut lo, mut step) = (k, 1);
                    while lo + step < count && has(lo + step) {
                        lo += step;
                        step *= 2;
                    }
                    let mut hi = (lo + step).min(count);
                    while hi - lo > 1 {
                        let mid = lo + (hi - lo) / 2;
                        if has(mid) {
                            lo = mid;
                        } else {
                            hi = mid;
                        }
                    }
                    k = lo;
                }
            }
            let block = self.block(k);
            let first = k * BLOCK;
            let in_block = BLOCK.min(self.len.saturating_sub(first));
            for (j, (stored, suffix)) in Entries::new(block, 0, in_block).enumerate() {
                let rest = suffix.len();
                let (shared, end) = if j == 0 {
                    // Stored whole: what it shares is found by comparing.
                    let whole = &block[suffix];
                    if skip.is_some_and(|n| whole.starts_with(&word[..n])) {
                        continue;
                    }
                    let shared = word[..len]
                        .iter()
                        .zip(whole)
                        .take_while(|(a, b)| a == b)
                        .count();
                    if word.len() < rest + 16 {
                        word.resize(rest + 16, 0);
                    }
                    word[..rest].copy_from_slice(whole);
                    (shared, rest)
                } else {
                    // The words before this one in the block all begin
                    // with the skipped prefix: so does this one if it
                    // shares as much with the one before.
                    if skip.is_some_and(|n| stored >= n) {
                        continue;
                    }
                    let end = stored + rest;
                    if word.len() < end + 16 {
                        word.resize(end + 16, 0);
                    }
                    copy_in_pieces(&mut word[stored..], block, suffix);
                    (stored, end)
                };
                skip = None;
                len = end;
                if let Step::SkipPrefix(n) = f(first + j, &word[..len], shared) {
                    skip = Some(n.min(len));
                }
            }
            k += 1;
        }
    }

    /// The words of `blocks` holding `finder`'s needle that `keep` accepts
    /// (all of them without `keep`), by one substring search over each
    /// group of decoded blocks. Blocks whose signature lacks a pair of
    /// `signed` (the needle, less any NUL the finder appends to it) are
    /// not decoded; a group where most blocks may hold the needle is
    /// handed whole to `pick`, if given with its threshold, as plain text
    /// (when at least that many of its blocks may, see [`PLAIN_FROM`]). `blocks` starts
    /// at a group's start.
    fn containing(
        &self,
        blocks: Range<usize>,
        finder: &memchr::memmem::Finder<'_>,
        signed: Option<Signature>,
        keep: Option<&Keep<'_>>,
        pick: Option<(&TextPicker<'_>, usize)>,
    ) -> PartPicks {
        let mut ids = PartPicks::new(blocks.start * BLOCK..(blocks.end * BLOCK).min(self.len));
        let mut decoded = Decoded::default();
        let mut picked = Vec::new();
        let plain = self.plain.as_deref().zip(pick);
        // A needle that is one of the common pairs, whose words are kept
        // as bits: its picks are those bits.
        let needle = finder.needle();
        // (A needle not kept, `iv`, asks no group for bits.)
        let row = (self.pairs.as_deref())
            .filter(|_| pick.is_some())
            .and_then(|p| p.row(needle));
        let mut k = blocks.start;
        while k < blocks.end {
            let group = k..(k + GROUP_BLOCKS).min(blocks.end);
            k = group.end;
            if group.start % GROUP_BLOCKS == 0 {
                let first = group.start * BLOCK;
                let words = first..(first + TEXT_GROUP).min(self.len);
                // `None` for a damaged chunk, which marks the vocabulary
                // damaged: the group is then searched as below.
                if let Some(bits) = row.and_then(|r| r.words_holding(words.clone())) {
                    ids.mark(first, bits, words.len());
                    continue;
                }
            }
            let lanes = signed
                .zip(self.signatures.as_ref())
                .and_then(|(needle, signatures)| {
                    let lanes = group.start * SIGNATURE_LANES..group.end * SIGNATURE_LANES;
                    Some((needle, signatures.bytes_of(lanes)?))
                });
            let start = group.start;
            let may_hold = |block: usize| match lanes {
                Some((needle, lanes)) => {
                    let at = (block - start) * SIGNATURE_LANES * 8;
                    needle.may_hold_in(&lanes[at..at + SIGNATURE_LANES * 8])
                }
                None => true,
            };
            if let Some((plain, (pick, plain_from))) = plain {
                let first = group.start * BLOCK;
                let many = group.clone().filter(|&b| may_hold(b)).count() >= plain_from;
                let range = (many && group.start % GROUP_BLOCKS == 0)
                    .then(|| plain.group(group.start / GROUP_BLOCKS))
                    .flatten();
                picked.clear();
                // Read first, verified right after, as in
                // `picked_in_text`: the hash then reads from the cache. A
                // damaged chunk marks the vocabulary damaged, and the
                // caller does not use what was found.
                let read = range.and_then(|range| {
                    (plain.text).read_then_verify([Some(range)], |text| pick(text, &mut picked))
                });
                if read.is_some() {
                    ids.mark(first, &picked, TEXT_GROUP.min(self.len - first));
                    continue;
                }
            }
            decoded.clear();
            self.decode_group(group, &mut decoded, &mut |block| may_hold(block));
            let text = decoded.text();
            let (mut from, mut place) = (0, 0);
            while let Some(hit) = text.get(from..).and_then(|b| finder.find(b)) {
                place = decoded.word_at(from + hit, place);
                let (word, id) = decoded.word(place);
                if keep.is_none_or(|keep| keep(word)) {
                    ids.push(id);
                }
                // Resume past the word hit: each word is checked once.
                from = (word.as_ptr() as usize - text.as_ptr() as usize) + word.len() + 1;
            }
        }
        ids
    }

    /// Appends the words of the blocks of `group` that `wanted` accepts to
    /// `out`. The group's bytes are fetched (and checked) at once, so a
    /// word's pieces may be read across its block's end; should a chunk
    /// among them be damaged, block by block, so the intact ones still
    /// decode.
    fn decode_group(
        &self,
        group: Range<usize>,
        out: &mut Decoded,
        wanted: &mut dyn FnMut(usize) -> bool,
    ) {
        // The group's block starts, verified and read once rather than a
        // checked lookup (a division and a chunk mark) per block.
        let starts = self.blocks.bytes_of(group.start..group.end + 1);
        let offset = |k: usize| {
            let at = (k.checked_sub(group.start)?) * 8;
            let bytes = starts?.get(at..at + 8)?;
            usize::try_from(u64::from_le_bytes(bytes.try_into().ok()?)).ok()
        };
        let whole = offset(group.start)
            .zip(offset(group.end))
            .and_then(|(start, end)| Some((start, self.data.get(start..end)?)));
        for k in group.clone() {
            if !wanted(k) {
                continue;
            }
            let first = k * BLOCK;
            let count = BLOCK.min(self.len.saturating_sub(first));
            let within = whole.and_then(|(base, bytes)| {
                let (start, end) = (
                    offset(k)?.checked_sub(base)?,
                    offset(k + 1)?.checked_sub(base)?,
                );
                (start <= end && end <= bytes.len()).then_some((bytes, start..end))
            });
            match within {
                Some((bytes, range)) => out.push_block(bytes, range, first, count),
                None => {
                    let block = self.block(k);
                    out.push_block(block, 0..block.len(), first, count);
                }
            }
        }
    }

    /// Calls `f` on the words numbered `range`, in order, until it returns false.
    fn for_each_in(&self, range: Range<usize>, f: &mut dyn FnMut(usize, &[u8]) -> bool) {
        let end = range.end.min(self.len);
        let mut buf = Vec::new();
        let mut id = range.start;
        while id < end {
            let k = id / BLOCK;
            let go_on = self.decode_block(k, id % BLOCK, &mut buf, &mut |i, w| i < end && f(i, w));
            if !go_on {
                return;
            }
            id = (k + 1) * BLOCK;
        }
    }
}

impl Arena {
    fn len(&self) -> usize {
        self.segments
            .last()
            .map_or(0, |last| last.first + last.ends.len())
    }

    fn byte_len(&self) -> usize {
        self.segments.iter().map(|s| s.bytes.len()).sum()
    }

    fn heap_bytes(&self) -> usize {
        self.segments
            .iter()
            .map(|s| s.bytes.capacity() + s.ends.capacity() * 4)
            .sum()
    }

    /// The segment holding word `id`.
    #[inline]
    fn segment_of(&self, id: usize) -> &Segment {
        match self.segments.as_slice() {
            [only] => only,
            [first, second] => match id < second.first {
                true => first,
                false => second,
            },
            all => &all[all.partition_point(|s| s.first <= id).saturating_sub(1)],
        }
    }

    fn word(&self, id: usize) -> &[u8] {
        let segment = self.segment_of(id);
        segment.word(id - segment.first)
    }

    /// Calls `f(id, word)` on the words numbered `range`, in order, until
    /// it returns false: segment by segment, each word's start its
    /// predecessor's end.
    fn each_word(&self, range: Range<usize>, f: &mut dyn FnMut(usize, &[u8]) -> bool) {
        for segment in &self.segments {
            let start = range.start.max(segment.first) - segment.first;
            let end = range.end.min(segment.first + segment.ends.len());
            let Some(ends) = segment.ends.get(start..end.saturating_sub(segment.first)) else {
                continue;
            };
            let mut from = match start {
                0 => 0,
                _ => segment.ends[start - 1] as usize,
            };
            for (k, &to) in ends.iter().enumerate() {
                let word = segment.bytes.get(from..to as usize).unwrap_or_default();
                if !f(segment.first + start + k, word) {
                    return;
                }
                from = to as usize;
            }
        }
    }

    fn push(&mut self, word: &[u8]) {
        self.push_within(word, SEGMENT_BYTES);
    }

    /// [`Arena::push`] into segments of at most `limit` bytes (but for a
    /// word longer than that, alone in its segment); tests make it small.
    fn push_within(&mut self, word: &[u8], limit: usize) {
        let full = |s: &Segment| !s.ends.is_empty() && s.bytes.len() + word.len() > limit;
        if self.segments.last().is_none_or(full) {
            let first = self.len();
            self.segments.push(Segment {
                first,
                ..Segment::default()
            });
        }
        let last = self.segments.len() - 1;
        let segment = &mut self.segments[last];
        segment.bytes.extend_from_slice(word);
        // Within `limit` (words are far shorter than SEGMENT_BYTES).
        segment.ends.push(segment.bytes.len() as u32);
    }

    /// Takes `other`'s segments after ours, as they are.
    fn append(&mut self, other: Arena) {
        for mut segment in other.segments {
            if segment.ends.is_empty() {
                continue;
            }
            segment.first = self.len();
            if self.segments.last().is_some_and(|s| s.ends.is_empty()) {
                self.segments.pop();
            }
            self.segments.push(segment);
        }
    }

    fn shrink_to_fit(&mut self) {
        for segment in &mut self.segments {
            segment.bytes.shrink_to_fit();
            segment.ends.shrink_to_fit();
        }
    }

    fn partition_point(&self, pred: &dyn Fn(&[u8]) -> bool) -> usize {
        first_failing(self.len(), |id| pred(self.word(id)))
    }
}

impl Segment {
    fn word(&self, id: usize) -> &[u8] {
        let start = if id == 0 {
            0
        } else {
            self.ends[id - 1] as usize
        };
        self.bytes
            .get(start..self.ends[id] as usize)
            .unwrap_or_default()
    }

    /// The number (in the segment) of the word holding byte `at` of its
    /// bytes, searching forward from word `hint` (which must not be past it).
    fn word_at(&self, at: usize, hint: usize) -> usize {
        let ends = &self.ends;
        let holds_or_after = |id: usize| ends[id] as usize > at;
        let mut lo = hint.min(ends.len());
        let mut step = 1;
        let mut hi = lo;
        while hi < ends.len() && !holds_or_after(hi) {
            lo = hi + 1;
            hi = (hi + step).min(ends.len());
            step *= 2;
        }
        lo + ends[lo..hi.max(lo)].partition_point(|&end| end as usize <= at)
    }
}

/// The first `i` below `n` for which `pred(i)` fails (`n` if none does),
/// `pred` holding on a leading run: a binary search over numbered items
/// that are not a slice (words decoded on demand).
fn first_failing(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

impl Vocabulary {
    /// An empty vocabulary with room for `words` words of `bytes` bytes.
    pub fn with_capacity(words: usize, bytes: usize) -> Self {
        Vocabulary {
            form: Form::Arena(Arena {
                segments: vec![Segment {
                    first: 0,
                    bytes: Vec::with_capacity(bytes),
                    ends: Vec::with_capacity(words),
                }],
            }),
        }
    }

    /// Gives back the room reserved beyond the words pushed.
    pub fn shrink_to_fit(&mut self) {
        if let Form::Arena(a) = &mut self.form {
            a.shrink_to_fit();
        }
    }

    /// `words` (ascending, distinct) front-coded in memory: the form a
    /// saved index answers from, for tests and benchmarks of that form.
    pub fn front_coded_of<W: AsRef<[u8]>>(words: impl IntoIterator<Item = W>) -> Vocabulary {
        let mut coder = FrontCoder::default();
        for word in words {
            coder.push(word.as_ref());
        }
        let Coded {
            data,
            blocks,
            signatures,
            len,
        } = coder.finish();
        let data = Chunked::trusted(super::bytes::Bytes::Owned(data));
        Vocabulary {
            form: Form::Front(Front {
                data,
                blocks: Array::Owned(blocks),
                signatures: Some(Box::new(Array::Owned(signatures))),
                plain: None,
                suffixes: None,
                pairs: None,
                len,
            }),
        }
    }

    /// This front-coded vocabulary with its words also as plain text
    /// (see [`PlainText`]): `text` holds every word followed by a NUL,
    /// `groups` where every [`TEXT_GROUP`]th word starts in it and its
    /// length last. Only the table's size and ends are checked here.
    pub(crate) fn with_plain_text(
        mut self,
        text: Chunked,
        groups: Array<u64>,
    ) -> Result<Self, BadVocabulary> {
        let Form::Front(front) = &mut self.form else {
            return Err(BadVocabulary);
        };
        let fits = groups.len() == front.len.div_ceil(TEXT_GROUP) + 1
            && groups.get(0) == Some(0)
            && groups.get(groups.len() - 1) == Some(text.len() as u64);
        if !fits {
            return Err(BadVocabulary);
        }
        front.plain = Some(Box::new(PlainText { text, groups }));
        Ok(self)
    }

    /// [`Vocabulary::front_coded_of`] with the words also as plain text.
    pub fn front_coded_with_text_of<W: AsRef<[u8]>>(
        words: impl IntoIterator<Item = W> + Clone,
    ) -> Vocabulary {
        let mut text = Vec::new();
        let mut groups = Vec::new();
        for (k, word) in words.clone().into_iter().enumerate() {
            if k % TEXT_GROUP == 0 {
                groups.push(text.len() as u64);
            }
            text.extend_from_slice(word.as_ref());
            text.push(0);
        }
        groups.push(text.len() as u64);
        let text = Chunked::trusted(super::bytes::Bytes::Owned(text));
        Self::front_coded_of(words)
            .with_plain_text(text, Array::Owned(groups))
            .unwrap_or_else(|_| unreachable!("the groups are made to fit"))
    }

    /// [`Vocabulary::front_coded_of`] with the words also as plain text
    /// and in suffix order, as saved now.
    pub fn front_coded_as_saved<W: AsRef<[u8]>>(
        words: impl IntoIterator<Item = W> + Clone,
    ) -> Vocabulary {
        let mut keys: Vec<u64> = (words.clone().into_iter().enumerate())
            .map(|(id, w)| suffix_key(w.as_ref(), id as u32))
            .collect();
        keys.sort_unstable();
        let mut saved = Self::front_coded_with_text_of(words.clone())
            .with_suffix_order(Array::Owned(keys))
            .unwrap_or_else(|_| unreachable!("one key a word"));
        if let Form::Front(front) = &mut saved.form {
            front.pairs = Some(Box::new(PairBits::of_words(words)));
        }
        saved
    }

    /// This front-coded vocabulary with the words holding each of its
    /// common byte pairs (see [`PairBits`]): `pairs` two bytes each,
    /// `rows` their bits. Only the sizes are checked here.
    pub(crate) fn with_pair_bits(
        mut self,
        pairs: &[u8],
        rows: Array<u64>,
    ) -> Result<Self, BadVocabulary> {
        match &mut self.form {
            Form::Front(front) => {
                let bits = PairBits::new(pairs, rows, front.len).ok_or(BadVocabulary)?;
                front.pairs = Some(Box::new(bits));
                Ok(self)
            }
            Form::Arena(_) => Err(BadVocabulary),
        }
    }

    /// This front-coded vocabulary with its words' [`suffix_key`]s,
    /// ascending. Only their number is checked here (and `ending_with`
    /// checks every word it returns).
    pub(crate) fn with_suffix_order(mut self, keys: Array<u64>) -> Result<Self, BadVocabulary> {
        match &mut self.form {
            Form::Front(front) if keys.len() == front.len && front.len <= SUFFIX_ORDER_WORDS => {
                front.suffixes = Some(Box::new(keys));
                Ok(self)
            }
            _ => Err(BadVocabulary),
        }
    }

    /// A vocabulary over stored front-coded blocks (see [`FrontCoder`]),
    /// used in place and checked as it is read: the block table's size
    /// and ends are checked here, each block's bounds when it is read; the
    /// words' order is not (the file's checksums vouch for it), and a
    /// damaged block reads as fewer words, never as a panic.
    pub(crate) fn from_front_coded(
        data: Chunked,
        blocks: Array<u64>,
        signatures: Option<Array<u64>>,
        len: usize,
    ) -> Result<Self, BadVocabulary> {
        let block_count = len.div_ceil(BLOCK);
        let fits = blocks.len() == block_count + 1
            && blocks.get(0) == Some(0)
            && blocks.get(blocks.len() - 1) == Some(data.len() as u64)
            && signatures
                .as_ref()
                .is_none_or(|s| s.len() == block_count * SIGNATURE_LANES);
        if !fits {
            return Err(BadVocabulary);
        }
        Ok(Vocabulary {
            form: Form::Front(Front {
                data,
                blocks,
                signatures: signatures.map(Box::new),
                plain: None,
                suffixes: None,
                pairs: None,
                len,
            }),
        })
    }

    fn arena(&mut self) -> &mut Arena {
        if let Form::Front(_) = self.form {
            let mut arena = Arena::default();
            self.for_each_in(0..self.len(), &mut |_, w| {
                arena.push(w);
                true
            });
            self.form = Form::Arena(arena);
        }
        match &mut self.form {
            Form::Arena(arena) => arena,
            Form::Front(_) => unreachable!("converted to an arena above"),
        }
    }

    /// Appends a word; words must be pushed in strictly ascending order.
    pub fn push(&mut self, word: &[u8]) {
        debug_assert!(self.is_empty() || *self.word(self.len() - 1) < *word);
        self.arena().push(word);
    }

    /// Appends every word of `other`, whose words must all sort after ours.
    /// An arena's words are taken as they are, not copied (see [`Arena`]).
    pub fn append(&mut self, other: Vocabulary) {
        let arena = self.arena();
        match other.form {
            Form::Arena(theirs) => arena.append(theirs),
            Form::Front(_) => other.for_each_in(0..other.len(), &mut |_, w| {
                arena.push(w);
                true
            }),
        }
    }

    /// Total bytes of all words (of their stored form).
    pub fn byte_len(&self) -> usize {
        match &self.form {
            Form::Arena(a) => a.byte_len(),
            Form::Front(f) => f.data.len(),
        }
    }

    /// Number of words.
    pub fn len(&self) -> usize {
        match &self.form {
            Form::Arena(a) => a.len(),
            Form::Front(f) => f.len,
        }
    }

    /// True when there are no words.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Verifies every chunk of a stored vocabulary now (as a refresh,
    /// which reuses all of it, does); false if one is damaged.
    pub fn verify(&self) -> bool {
        match &self.form {
            Form::Arena(_) => true,
            Form::Front(f) => {
                f.data.verify()
                    && f.blocks.verify()
                    && f.signatures.as_ref().is_none_or(|s| s.verify())
                    && f.plain
                        .as_ref()
                        .is_none_or(|p| p.text.verify() && p.groups.verify())
                    && f.suffixes.as_ref().is_none_or(|k| k.verify())
                    && f.pairs.as_ref().is_none_or(|p| p.verify())
            }
        }
    }

    /// True once a chunk of a stored vocabulary failed its check (its
    /// words then read as fewer, and answers must not be trusted).
    pub fn is_damaged(&self) -> bool {
        match &self.form {
            Form::Arena(_) => false,
            Form::Front(f) => {
                f.data.is_damaged()
                    || f.blocks.is_damaged()
                    || f.signatures.as_ref().is_some_and(|s| s.is_damaged())
                    || f.plain
                        .as_ref()
                        .is_some_and(|p| p.text.is_damaged() || p.groups.is_damaged())
                    || f.suffixes.as_ref().is_some_and(|k| k.is_damaged())
                    || f.pairs.as_ref().is_some_and(|p| p.is_damaged())
            }
        }
    }

    /// The word numbered `id` (0-based rank): borrowed from an arena,
    /// decoded from a block; empty where [`checked_word`](Self::checked_word)
    /// has none (a search meets damage through `is_damaged` instead).
    pub fn word(&self, id: usize) -> Cow<'_, [u8]> {
        self.checked_word(id).unwrap_or_default()
    }

    /// The word numbered `id`, or `None` if `id` is past the end or its
    /// stored block is damaged.
    pub fn checked_word(&self, id: usize) -> Option<Cow<'_, [u8]>> {
        match &self.form {
            Form::Arena(a) => (id < a.len()).then(|| Cow::Borrowed(a.word(id))),
            Form::Front(_) => Some(Cow::Owned(self.reader().checked_word(id)?.to_vec())),
        }
    }

    /// The word as text (words are always valid UTF-8: they come from
    /// decoded characters).
    pub fn word_str(&self, id: usize) -> Cow<'_, str> {
        lossy_text(self.word(id))
    }

    /// A reader of words by number that keeps what it decoded of the
    /// block it read last: words asked for in ascending order (an
    /// answer's, in byte order) decode each entry of a stored vocabulary
    /// at most once, where [`word`](Self::word) decodes a block up to the
    /// word asked for at every call (`-c` over the kernel's 1.12 million
    /// words of `*e_*`: 422 -> 261 ms).
    pub fn reader(&self) -> WordReader<'_> {
        WordReader {
            vocabulary: self,
            block: None,
            source: &[],
            entries: Entries::new(&[], 0, 0),
            bytes: Vec::new(),
            ends: Vec::with_capacity(BLOCK),
        }
    }

    /// Calls `f(id, word)` on the words numbered `range`, in order, until
    /// it returns false (cheaper than looking each one up).
    pub fn for_each_in(&self, range: Range<usize>, f: &mut dyn FnMut(usize, &[u8]) -> bool) {
        match &self.form {
            Form::Arena(a) => {
                a.each_word(range, f);
            }
            Form::Front(front) => front.for_each_in(range, f),
        }
    }

    /// Calls `f(id, word, shared)` on every word in order, `shared` being
    /// the bytes `word` has in common with the word `f` was last given
    /// (0 for the first); when `f` answers [`Step::SkipPrefix`]`(n)`, the
    /// words after it that begin with its first `n` bytes are passed over
    /// without being decoded one by one (how a walk of the words as a trie
    /// prunes a branch).
    pub fn walk<F: FnMut(usize, &[u8], usize) -> Step>(&self, f: &mut F) {
        self.walk_part(0, 1, f)
    }

    /// [`Vocabulary::walk`] over part `part` of `parts` roughly equal runs
    /// of the words (so threads can walk a vocabulary side by side).
    pub fn walk_part<F: FnMut(usize, &[u8], usize) -> Step>(
        &self,
        part: usize,
        parts: usize,
        f: &mut F,
    ) {
        match &self.form {
            Form::Arena(a) => {
                let Range { start: mut id, end } = share(a.len(), part, parts);
                let mut previous: &[u8] = &[];
                while id < end {
                    let word = a.word(id);
                    id += 1;
                    let shared = previous
                        .iter()
                        .zip(word)
                        .take_while(|(x, y)| x == y)
                        .count();
                    previous = word;
                    if let Step::SkipPrefix(len) = f(id - 1, word, shared) {
                        let prefix = &word[..len.min(word.len())];
                        let rest = end - id;
                        // Gallop, then halve: most skipped runs are short.
                        let has = |k: usize| a.word(id + k).starts_with(prefix);
                        let mut step = 1;
                        while step <= rest && has(step - 1) {
                            step *= 2;
                        }
                        let (mut lo, mut hi) = (step / 2, step.min(rest));
                        while lo < hi {
                            let mid = lo + (hi - lo) / 2;
                            if has(mid) {
                                lo = mid + 1;
                            } else {
                                hi = mid;
                            }
                        }
                        id += lo;
                    }
                }
            }
            Form::Front(front) => front.walk_blocks(share(front.block_count(), part, parts), f),
        }
    }

    /// `work(part, parts)` for each part of the vocabulary as
    /// [`Vocabulary::walk_part`] cuts it, results in order: a large
    /// vocabulary in [`PARALLEL_PARTS`] parts, which two threads take one
    /// at a time, joined before this returns (so no thread meets a later
    /// fork; a panic in either is the caller's, never a silently missing
    /// part), a small one whole.
    pub fn in_parts<R: Send>(&self, work: impl Fn(usize, usize) -> R + Sync) -> Vec<R> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        if self.len() < PARALLEL_WORDS {
            return vec![work(0, 1)];
        }
        let next = AtomicUsize::new(0);
        let take_parts = || {
            let mut done = Vec::new();
            loop {
                let part = next.fetch_add(1, Ordering::Relaxed);
                if part >= PARALLEL_PARTS {
                    return done;
                }
                done.push((part, work(part, PARALLEL_PARTS)));
            }
        };
        let mut done = std::thread::scope(|scope| {
            let other = scope.spawn(take_parts);
            let mut done = take_parts();
            done.extend(
                other
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e)),
            );
            done
        });
        done.sort_unstable_by_key(|&(part, _)| part);
        done.into_iter().map(|(_, result)| result).collect()
    }

    /// The numbers of the words `pick` chooses, ascending, for a matcher
    /// that reads many words at once rather than one at a time: it is
    /// given words back to back, each followed by a NUL (a byte in no
    /// word), about a thousand at a time, and pushes the places of the
    /// words it chooses (0 for the first given). A large vocabulary is read in
    /// parts side by side (see [`Vocabulary::in_parts`]).
    pub fn picked_in_text(&self, pick: &TextPicker<'_>) -> Picks {
        // Words laid out for one call: a front-coded group's 64 blocks.
        const WORDS: usize = 64 * BLOCK;
        let parts = self.in_parts(|part, parts| {
            let (mut decoded, mut picked) = (Decoded::default(), Vec::new());
            match &self.form {
                Form::Arena(a) => {
                    let words = share(a.len(), part, parts);
                    let mut ids = PartPicks::new(words.clone());
                    let mut id = words.start;
                    while id < words.end {
                        decoded.clear();
                        a.each_word(id..(id + WORDS).min(words.end), &mut |id, word| {
                            decoded.push_word(word, id);
                            true
                        });
                        decoded.pick_into(pick, &mut picked, &mut ids);
                        id += WORDS;
                    }
                    ids
                }
                Form::Front(Front {
                    plain: Some(plain),
                    len,
                    ..
                }) => {
                    let groups = share(len.div_ceil(TEXT_GROUP), part, parts);
                    let mut ids = PartPicks::new(
                        groups.start * TEXT_GROUP..(groups.end * TEXT_GROUP).min(*len),
                    );
                    let mut g = groups.start;
                    // Read first, verified right after (see
                    // `Chunked::read_then_verify`): damage marks the
                    // vocabulary damaged, and its picks are then not used.
                    let read = groups.clone().map(|g| plain.group(g));
                    let _ = plain.text.read_then_verify(read, |text| {
                        picked.clear();
                        pick(text, &mut picked);
                        let first = g * TEXT_GROUP;
                        ids.mark(first, &picked, TEXT_GROUP.min(len - first));
                        g += 1;
                    });
                    ids
                }
                Form::Front(f) => {
                    let blocks = share(f.block_count(), part, parts);
                    let mut ids =
                        PartPicks::new(blocks.start * BLOCK..(blocks.end * BLOCK).min(f.len));
                    let mut k = blocks.start;
                    while k < blocks.end {
                        let group = k..(k + WORDS / BLOCK).min(blocks.end);
                        decoded.clear();
                        f.decode_group(group.clone(), &mut decoded, &mut |_| true);
                        decoded.pick_into(pick, &mut picked, &mut ids);
                        k = group.end;
                    }
                    ids
                }
            }
        });
        Picks::of_parts(parts)
    }

    /// The numbers in `range` of the words `keep` accepts, ascending.
    pub fn select_in(&self, range: Range<usize>, keep: &dyn Fn(&[u8]) -> bool) -> Vec<usize> {
        let mut ids = Vec::new();
        self.for_each_in(range, &mut |id, w| {
            if keep(w) {
                ids.push(id);
            }
            true
        });
        ids
    }

    /// First word number whose word fails `pred`, which must hold on a
    /// leading run of the words and fail on the rest.
    fn partition_point(&self, pred: &dyn Fn(&[u8]) -> bool) -> usize {
        match &self.form {
            Form::Arena(a) => a.partition_point(pred),
            Form::Front(f) => f.partition_point(pred),
        }
    }

    /// The word numbers of every word beginning with `prefix`.
    pub fn prefix_range(&self, prefix: &[u8]) -> Range<usize> {
        let start = self.partition_point(&|w| w < prefix);
        let end = self.partition_point(&|w| w < prefix || w.starts_with(prefix));
        start..end.max(start)
    }

    /// The numbers of the words containing `needle` that `keep` accepts,
    /// ascending: a substring search over all the words at once (over the
    /// arena, or block by block), which after each hit resumes at the end
    /// of the word hit, so each word is checked once.
    pub fn containing(&self, needle: &[u8], keep: &Keep<'_>) -> Picks {
        self.search(needle, false, Some(keep), None)
    }

    /// The numbers of every word holding `needle`, ascending, where
    /// `pick` picks exactly those words from a text of words (a matcher
    /// of many words at once, see [`TextPicker`]). As
    /// [`Vocabulary::containing`], but where a saved vocabulary's
    /// signatures say most of a group of words may hold the needle (a
    /// common one, `_t`), the group's plain text goes to `pick`, whose
    /// cost does not grow with the hits, instead of being decoded and
    /// searched hit by hit; and where the needle is one of the common
    /// pairs a saved vocabulary keeps bits for (`PairBits`), no
    /// group is read at all.
    pub fn holding(&self, needle: &[u8], pick: &TextPicker<'_>) -> Picks {
        self.search(needle, false, None, Some((pick, PLAIN_FROM)))
    }

    /// The numbers of the words ending with `suffix` that `keep` accepts,
    /// ascending. Decoded words end with a NUL, so the search is for the
    /// suffix and that NUL, which lands only on the words wanted, where a
    /// search for the suffix alone would stop in every word holding it
    /// (`*_t`: 6 thousand words end with `_t`, 700 thousand hold it).
    pub fn ending_with(&self, suffix: &[u8], keep: &Keep<'_>) -> Picks {
        self.search(suffix, true, Some(keep), None)
    }

    fn search(
        &self,
        needle: &[u8],
        at_end: bool,
        keep: Option<&Keep<'_>>,
        pick: Option<(&TextPicker<'_>, usize)>,
    ) -> Picks {
        let mut ids = Vec::new();
        match &self.form {
            Form::Arena(a) => {
                let finder = memchr::memmem::Finder::new(needle);
                for segment in &a.segments {
                    let (mut from, mut id) = (0usize, 0usize);
                    while let Some(hit) = segment.bytes.get(from..).and_then(|b| finder.find(b)) {
                        let at = from + hit;
                        // Hits only move forward: gallop from the last word.
                        id = segment.word_at(at, id);
                        let Some(&end) = segment.ends.get(id) else {
                            break;
                        };
                        from = end as usize;
                        let word = segment.word(id);
                        // A hit running past its word's end is in no word.
                        let holds = match at_end {
                            true => word.ends_with(needle),
                            false => at + needle.len() <= from,
                        };
                        if holds && keep.is_none_or(|keep| keep(word)) {
                            ids.push(segment.first + id);
                        }
                    }
                }
            }
            Form::Front(Front {
                suffixes: Some(keys),
                ..
            }) if at_end && !needle.is_empty() => {
                return self
                    .ending_by_keys(keys, needle, keep.unwrap_or(&|_| true))
                    .into()
            }
            Form::Front(f) => {
                let mut searched = needle.to_vec();
                if at_end {
                    searched.push(0);
                }
                let finder = memchr::memmem::Finder::new(&searched);
                // A needle of one byte has no pair to look for.
                let signed = Some(Signature::of(needle)).filter(|s| !s.is_empty());
                // Parts of whole groups, so a group's plain text is one
                // part's.
                let groups = f.block_count().div_ceil(GROUP_BLOCKS);
                let pick = pick.filter(|_| !at_end);
                return Picks::of_parts(self.in_parts(|part, parts| {
                    let part = share(groups, part, parts);
                    let blocks =
                        part.start * GROUP_BLOCKS..(part.end * GROUP_BLOCKS).min(f.block_count());
                    f.containing(blocks, &finder, signed, keep, pick)
                }));
            }
        }
        ids.into()
    }

    /// [`Vocabulary::ending_with`] by the sorted [`suffix_key`]s: two
    /// binary searches give the words ending with the suffix's last four
    /// bytes, and only those are read. A damaged chunk of the keys or the
    /// words reads as fewer words, and marks the vocabulary damaged.
    fn ending_by_keys(
        &self,
        keys: &Array<u64>,
        suffix: &[u8],
        keep: &(dyn Fn(&[u8]) -> bool + Sync),
    ) -> Vec<usize> {
        let wanted = suffix_keys_of(suffix);
        let first_past = |past: &dyn Fn(u64) -> bool| {
            first_failing(keys.len(), |i| keys.get(i).is_some_and(|key| !past(key)))
        };
        let start = first_past(&|key| key >= *wanted.start());
        let end = first_past(&|key| key > *wanted.end());
        let mut ids = Vec::with_capacity(end.saturating_sub(start));
        // The number is the key's low half.
        let _ = keys.for_each_at(start..end.max(start), |key| ids.push(key as u32 as usize));
        ids.sort_unstable();
        ids.retain(|&id| {
            let word = self.word(id);
            word.ends_with(suffix) && keep(&word)
        });
        ids
    }

    /// The number of `word`, if present.
    pub fn find(&self, word: &[u8]) -> Option<usize> {
        match self.rank_of(word) {
            (i, true) => Some(i),
            _ => None,
        }
    }

    /// How many words come before `word`, and whether it is the next one.
    pub fn rank_of(&self, word: &[u8]) -> (usize, bool) {
        if let Form::Front(
            front @ Front {
                plain: Some(plain), ..
            },
        ) = &self.form
        {
            if let Some(found) = front.rank_in_text(plain, word) {
                return found;
            }
        }
        let i = self.partition_point(&|w| w < word);
        (i, i < self.len() && *self.word(i) == *word)
    }

    /// Bytes held by the vocabulary.
    pub fn heap_bytes(&self) -> usize {
        match &self.form {
            Form::Arena(a) => a.heap_bytes(),
            Form::Front(f) => f.data.heap_bytes() + f.blocks.heap_bytes(),
        }
    }
}

/// See [`Vocabulary::reader`].
#[derive(Debug)]
pub struct WordReader<'a> {
    vocabulary: &'a Vocabulary,
    /// The block being read, its bytes, and its entries not yet decoded.
    block: Option<usize>,
    source: &'a [u8],
    entries: Entries<'a>,
    /// The block's words decoded so far, back to back, and where each ends.
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl WordReader<'_> {
    /// The word numbered `id`, as [`Vocabulary::word`] gives it.
    pub fn word(&mut self, id: usize) -> &[u8] {
        self.checked_word(id).unwrap_or_default()
    }

    /// The word numbered `id`, or `None` if it is past the end or its
    /// block is damaged (a damaged chunk reads as no bytes, so its block
    /// holds fewer words than it should, or none).
    pub fn checked_word(&mut self, id: usize) -> Option<&[u8]> {
        let front = match &self.vocabulary.form {
            Form::Arena(a) => return (id < a.len()).then(|| a.word(id)),
            Form::Front(front) if id < front.len => front,
            Form::Front(_) => return None,
        };
        let (block, k) = (id / BLOCK, id % BLOCK);
        if self.block != Some(block) {
            let count = BLOCK.min(front.len.saturating_sub(block * BLOCK));
            self.source = front.block(block);
            self.entries = Entries::new(self.source, 0, count);
            self.block = Some(block);
            self.bytes.clear();
            self.ends.clear();
        }
        while self.ends.len() <= k {
            let Some((shared, suffix)) = self.entries.next() else {
                break;
            };
            // The word before it starts where the one before that ends.
            let before = match self.ends.len() {
                0 | 1 => 0,
                n => self.ends[n - 2],
            };
            self.bytes.extend_from_within(before..before + shared);
            self.bytes.extend_from_slice(&self.source[suffix]);
            self.ends.push(self.bytes.len());
        }
        // A block cut short by damage holds fewer words.
        let end = *self.ends.get(k)?;
        let start = match k {
            0 => 0,
            _ => self.ends[k - 1],
        };
        self.bytes.get(start..end)
    }
}

/// A word's bytes as text, borrowed where they were. Words are valid
/// UTF-8 (they come from decoded characters); a lossy conversion rather
/// than a checked one keeps a file's bad bytes from becoming a panic.
pub(super) fn lossy_text(word: Cow<'_, [u8]>) -> Cow<'_, str> {
    match word {
        Cow::Borrowed(bytes) => String::from_utf8_lossy(bytes),
        Cow::Owned(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A [`TextPicker`] of a picker that lists places.
    fn marking(
        places: impl Fn(&[u8], &mut Vec<usize>) + Sync,
    ) -> impl Fn(&[u8], &mut Vec<u64>) + Sync {
        move |text, marks| {
            let mut picked = Vec::new();
            places(text, &mut picked);
            for k in picked {
                if marks.len() <= k / 64 {
                    marks.resize(k / 64 + 1, 0);
                }
                marks[k / 64] |= 1 << (k % 64);
            }
        }
    }

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

    /// Words pushed into segments cut at a byte limit (made small here,
    /// 4 GiB in a build) read back, in order and by substring, as the
    /// words do.
    #[test]
    fn segments_cut_at_their_byte_limit_keep_every_word() {
        let words = spread_words(3000, 40, "_", 7);
        for limit in [1, 17, 100, 4096] {
            let mut arena = Arena::default();
            for word in &words {
                arena.push_within(word, limit);
            }
            assert!(limit > 1 || arena.segments.len() == words.len());
            assert!(arena
                .segments
                .iter()
                .all(|s| s.bytes.len() <= limit || s.ends.len() == 1));
            let vocabulary = Vocabulary {
                form: Form::Arena(arena),
            };
            assert_eq!(vocabulary.len(), words.len());
            for (id, word) in words.iter().enumerate() {
                assert_eq!(*vocabulary.word(id), word[..], "limit {limit}, word {id}");
            }
            let mut seen = Vec::new();
            vocabulary.for_each_in(100..2000, &mut |id, w| {
                seen.push((id, w.to_vec()));
                true
            });
            let want: Vec<(usize, Vec<u8>)> =
                (100..2000).map(|id| (id, words[id].clone())).collect();
            assert_eq!(seen, want, "limit {limit}");
            for needle in [&b"_3"[..], b"a", b"ff", b"0_"] {
                let want: Vec<usize> = (0..words.len())
                    .filter(|&i| words[i].windows(needle.len()).any(|p| p == needle))
                    .collect();
                assert_eq!(
                    vocabulary.containing(needle, &|_| true),
                    want,
                    "limit {limit}"
                );
            }
        }
    }

    /// Past [`PARALLEL_WORDS`] the scan runs in parts on two threads:
    /// the parts must add up to a plain scan.
    #[test]
    fn a_large_vocabulary_scanned_in_parts_finds_every_word() {
        let words = spread_words(PARALLEL_WORDS as u64 + 999, 1, "_", 97);
        let vocabulary = front(&words);
        let keep = |w: &[u8]| !w.len().is_multiple_of(3);
        let want: Vec<usize> = (0..words.len())
            .filter(|&i| words[i].windows(2).any(|p| p == b"_1") && keep(&words[i]))
            .collect();
        assert!(want.len() > 1000);
        assert_eq!(vocabulary.containing(b"_1", &keep), want);
        // Parts of whole groups of plain text, some picked as text.
        let saved = Vocabulary::front_coded_with_text_of(&words);
        let holds = |w: &[u8]| memchr::memmem::find(w, b"_1").is_some();
        let pick = marking(|text: &[u8], picked: &mut Vec<usize>| {
            let ended = text.iter().filter(|&&b| b == 0).count();
            let words = text.split(|&b| b == 0).take(ended).enumerate();
            picked.extend(words.filter(|(_, w)| holds(w)).map(|(k, _)| k));
        });
        let holding: Vec<usize> = (0..words.len()).filter(|&i| holds(&words[i])).collect();
        for plain_from in [0, 8, GROUP_BLOCKS + 1] {
            let got = saved.search(b"_1", false, None, Some((&pick, plain_from)));
            assert_eq!(got, holding, "plain from {plain_from} blocks");
        }
    }

    /// A picker over text sees every word once, ended by its NUL, in both
    /// forms and every part: what it picks is what a plain filter keeps.
    #[test]
    fn words_picked_in_text_are_the_words_a_filter_keeps() {
        let words = spread_words(PARALLEL_WORDS as u64 + 777, 50, "", 13);
        let keep = |w: &[u8]| w.len().is_multiple_of(3) && w.contains(&b'a');
        // Picks the place of each word `keep` accepts.
        let pick = marking(|text: &[u8], picked: &mut Vec<usize>| {
            let (mut start, mut k) = (0, 0);
            for (at, &b) in text.iter().enumerate() {
                if b == 0 {
                    if keep(&text[start..at]) {
                        picked.push(k);
                    }
                    start = at + 1;
                    k += 1;
                }
            }
        });
        let want: Vec<usize> = (0..words.len()).filter(|&i| keep(&words[i])).collect();
        assert!(want.len() > 1000);
        let mut arena = Vocabulary::default();
        for w in &words {
            arena.push(w);
        }
        assert_eq!(arena.picked_in_text(&pick), want);
        assert_eq!(front(&words).picked_in_text(&pick), want);
        let with_text = Vocabulary::front_coded_with_text_of(&words);
        assert_eq!(with_text.picked_in_text(&pick), want);
        // A picker naming places past the words picks nothing more.
        for vocabulary in [front(&words), with_text] {
            assert_eq!(
                vocabulary.picked_in_text(&|text, marks| {
                    let ended = text.iter().filter(|&&b| b == 0).count();
                    marks.resize(ended / 64 + 4, 0);
                    for k in ended..ended + 150 {
                        marks[k / 64] |= 1 << (k % 64);
                    }
                }),
                Vec::<usize>::new()
            );
        }
    }

    use proptest::prelude::*;

    /// `count` numbers scattered by a multiplicative hash, each shifted
    /// right by up to `shifts - 1` bits (lengths vary unless `shifts` is
    /// 1), in hex, then
    /// `sep` and the number modulo `tail`: sorted, without repeats.
    fn spread_words(count: u64, shifts: u64, sep: &str, tail: u64) -> Vec<Vec<u8>> {
        (0..count)
            .map(|n| {
                let hashed = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                format!("{:x}{sep}{}", hashed >> (n % shifts), n % tail).into_bytes()
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    fn front(words: &[Vec<u8>]) -> Vocabulary {
        Vocabulary::front_coded_of(words)
    }

    /// `rank_of` of each of `probes` in both stored forms of the sorted
    /// `words` is what a count of the words below it says. The probes
    /// include every group's first and last word of the plain text, and
    /// words just below and above them.
    fn ranks_agree(words: &[String], probes: &[String]) -> Result<(), TestCaseError> {
        let bytes: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
        let text = Vocabulary::front_coded_with_text_of(&bytes);
        let blocks = Vocabulary::front_coded_of(&bytes);
        let edges = (0..bytes.len())
            .filter(|k| k % TEXT_GROUP == 0 || k % TEXT_GROUP == TEXT_GROUP - 1)
            .chain(bytes.len().checked_sub(1))
            .flat_map(|k| {
                let word = bytes[k];
                [
                    word.to_vec(),
                    word[..word.len() - 1].to_vec(),
                    [word, b"a"].concat(),
                ]
            });
        for probe in probes.iter().map(|p| p.as_bytes().to_vec()).chain(edges) {
            let below = bytes.iter().filter(|&&w| w < probe.as_slice()).count();
            let want = (below, bytes.get(below).is_some_and(|&w| w == probe));
            let shown = String::from_utf8_lossy(&probe);
            prop_assert_eq!(text.rank_of(&probe), want, "in text: {:?}", shown);
            prop_assert_eq!(blocks.rank_of(&probe), want, "in blocks: {:?}", shown);
        }
        Ok(())
    }

    #[test]
    fn ranks_of_groups_opening_with_long_words_agree_with_a_count() {
        // Every group's first word runs past the bytes first read of it.
        let words: Vec<String> = (0..2500)
            .map(|k| match k % TEXT_GROUP {
                0 => format!("{k:05}{}", "x".repeat(140)),
                _ => format!("{k:05}"),
            })
            .collect();
        ranks_agree(&words, &[]).unwrap();
    }

    proptest! {
        /// A walk visits exactly the words a plain loop that drops words
        /// under a skipped prefix visits, in both forms, whole blocks or not.
        #[test]
        fn walks_skip_exactly_the_words_under_a_skipped_prefix(
            mut words in proptest::collection::vec("[ab]{1,9}", 0..400),
            salt in 0u64..1000,
        ) {
            words.sort();
            words.dedup();
            let bytes: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
            // Skip after some words, by a length that depends on the word.
            let decide = |id: usize, w: &[u8]| {
                let h = (id as u64 * 31 + salt) % 7;
                if h < 3 { Step::SkipPrefix(1 + (h as usize + w.len()) % w.len().max(1)) } else { Step::Next }
            };
            let mut want = Vec::new();
            let mut skip: Option<Vec<u8>> = None;
            for (id, w) in bytes.iter().enumerate() {
                if skip.as_ref().is_some_and(|p| w.starts_with(p)) {
                    continue;
                }
                skip = None;
                want.push(id);
                if let Step::SkipPrefix(n) = decide(id, w) {
                    skip = Some(w[..n.min(w.len())].to_vec());
                }
            }
            let mut arena = Vocabulary::default();
            for w in &bytes {
                arena.push(w);
            }
            for vocabulary in [arena, front(&bytes)] {
                let mut got = Vec::new();
                let mut last: Vec<u8> = Vec::new();
                vocabulary.walk(&mut |id, w, shared| {
                    // `shared`: bytes in common with the word last given.
                    let common = last.iter().zip(w).take_while(|(a, b)| a == b).count();
                    assert_eq!(shared, common, "word {id}");
                    last = w.to_vec();
                    got.push(id);
                    decide(id, w)
                });
                prop_assert_eq!(&got, &want);
            }
        }

        /// A substring search over front-coded blocks, which decodes many
        /// blocks into one buffer at a time, finds what a plain scan of the
        /// words finds, across those groups of blocks.
        #[test]
        fn containing_agrees_with_a_scan_across_groups_of_blocks(
            mut words in proptest::collection::vec("[a-f]{1,7}", 1500..4000),
            needle in "[a-f]{1,3}",
        ) {
            words.sort();
            words.dedup();
            let bytes: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
            let want: Vec<usize> = (0..bytes.len())
                .filter(|&i| memchr::memmem::find(&bytes[i], needle.as_bytes()).is_some())
                .collect();
            let odd = |w: &[u8]| w.len() % 2 == 1;
            let want_odd: Vec<usize> = want.iter().copied().filter(|&i| odd(&bytes[i])).collect();
            let coded = front(&bytes);
            prop_assert_eq!(&coded.containing(needle.as_bytes(), &|_| true), &want);
            prop_assert_eq!(coded.containing(needle.as_bytes(), &odd), want_odd);
            // Without block signatures (a file written before them), every
            // block is decoded: the same answer.
            let mut coder = FrontCoder::default();
            for w in &bytes {
                coder.push(w);
            }
            let Coded { data, blocks, len, .. } = coder.finish();
            let unsigned = Vocabulary::from_front_coded(
                Chunked::trusted(crate::index::bytes::Bytes::Owned(data)),
                Array::Owned(blocks),
                None,
                len,
            )
            .expect("a well-formed vocabulary");
            prop_assert_eq!(unsigned.containing(needle.as_bytes(), &|_| true), want);
        }

        /// A search handing groups of plain text to a matcher of many
        /// words finds what a scan finds, whichever groups it hands over:
        /// none, those where enough blocks may hold the needle, or all.
        #[test]
        fn holding_agrees_with_a_scan_whichever_groups_are_picked_as_text(
            mut words in proptest::collection::vec("[a-f]{1,7}", 1500..4000),
            needle in "[a-f]{2,3}",
        ) {
            words.sort();
            words.dedup();
            let want: Vec<usize> = (0..words.len())
                .filter(|&i| words[i].contains(&needle))
                .collect();
            // The matcher: words each ended by a NUL, by the plain rule.
            let pick = marking(|text: &[u8], picked: &mut Vec<usize>| {
                let words = text.split(|&b| b == 0).take(text.iter().filter(|&&b| b == 0).count());
                picked.extend(words.enumerate().filter_map(|(k, w)| {
                    memchr::memmem::find(w, needle.as_bytes()).map(|_| k)
                }));
            });
            let saved = Vocabulary::front_coded_with_text_of(&words);
            for plain_from in [0, 24, GROUP_BLOCKS + 1] {
                let got = saved.search(needle.as_bytes(), false, None, Some((&pick, plain_from)));
                prop_assert_eq!(&got, &want, "plain from {} blocks", plain_from);
            }
            prop_assert_eq!(&saved.holding(needle.as_bytes(), &pick), &want);
            // As saved now, with the common pairs' bits: a needle of two
            // letters here is one of them, answered from its bits across
            // the groups.
            let paired = Vocabulary::front_coded_as_saved(&words);
            prop_assert_eq!(paired.holding(needle.as_bytes(), &pick), want);
        }

        /// Long words sharing long prefixes (decoded in 16-byte pieces that
        /// run across word and block ends): substring and suffix searches
        /// find what a plain scan finds, in both forms.
        #[test]
        fn searches_over_long_words_agree_with_a_scan(
            tails in proptest::collection::vec((0usize..4, "[a-c]{0,30}"), 1..2500),
            needle in "[a-c]{1,4}",
        ) {
            // Stems of 0 to 40 bytes, so words share prefixes longer than
            // a piece, and two.
            const STEMS: [&str; 4] = ["", "aaaaaaaaaaaaaaaaaab", "abcabcabcabcabcabcabcabcabcabcabcabcabca", "cb"];
            let mut words: Vec<String> = tails.iter().map(|(k, tail)| format!("{}{tail}", STEMS[*k])).collect();
            words.sort();
            words.dedup();
            words.retain(|w| !w.is_empty());
            let bytes: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
            let needle = needle.as_bytes();
            let holding: Vec<usize> = (0..bytes.len())
                .filter(|&i| memchr::memmem::find(&bytes[i], needle).is_some())
                .collect();
            let ending: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i].ends_with(needle)).collect();
            let mut arena = Vocabulary::default();
            for w in &bytes {
                arena.push(w);
            }
            for vocabulary in [&front(&bytes), &arena] {
                prop_assert_eq!(&vocabulary.containing(needle, &|_| true), &holding);
                prop_assert_eq!(&vocabulary.ending_with(needle, &|_| true), &ending);
                // What `keep` is given is the whole word.
                let kept = vocabulary.containing(needle, &|w| w.len() % 3 == 0);
                let want: Vec<usize> = holding.iter().copied().filter(|&i| bytes[i].len().is_multiple_of(3)).collect();
                prop_assert_eq!(kept, want);
            }
        }

        /// The words a saved vocabulary finds by its suffix keys are those
        /// a plain scan finds ending with the suffix, of any length (a key
        /// holds four bytes), among words shorter than a key or not, with
        /// bytes past ASCII, and `keep` is asked about whole words.
        #[test]
        fn suffix_keys_find_what_a_scan_finds(
            words in proptest::collection::vec("[ab_é]{1,9}", 0..700),
            suffix in "[ab_é]{1,7}",
            cut in 0usize..3,
        ) {
            let mut bytes: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
            bytes.sort();
            bytes.dedup();
            // A suffix cut inside a character, as a byte search may ask.
            let suffix = &suffix.as_bytes()[cut.min(suffix.len() - 1)..];
            let saved = Vocabulary::front_coded_as_saved(&bytes);
            let ending: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i].ends_with(suffix)).collect();
            prop_assert_eq!(&saved.ending_with(suffix, &|_| true), &ending);
            let kept = saved.ending_with(suffix, &|w| w.len() % 3 == 0);
            let want: Vec<usize> = ending.iter().copied().filter(|&i| bytes[i].len().is_multiple_of(3)).collect();
            prop_assert_eq!(kept, want);
            prop_assert!(!saved.is_damaged());
        }

        /// A block's signature holds every byte pair of its words, whatever
        /// the bytes: a block that holds a needle is never passed over.
        #[test]
        fn signatures_never_pass_over_a_block_holding_the_needle(
            words in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 2..12), 1..16),
            pick in 0usize..16,
            from in 0usize..10,
            len in 2usize..6,
        ) {
            let mut block = Signature::default();
            for w in &words {
                block.add(w);
            }
            let word = &words[pick % words.len()];
            let start = from % (word.len() - 1);
            let needle = &word[start..(start + len).min(word.len())];
            let stored: Vec<u8> = block.0.iter().flat_map(|lane| lane.to_le_bytes()).collect();
            prop_assert!(Signature::of(needle).may_hold_in(&stored));
        }

        /// An arena appended in segments (a merge's ranges) answers every
        /// lookup as a plain scan of the sorted words does, including
        /// words pushed after the last segment.
        #[test]
        fn arenas_appended_in_segments_answer_as_a_scan(
            mut words in proptest::collection::vec("[ab_]{1,7}", 0..300),
            cuts in proptest::collection::vec(0usize..300, 0..4),
            needle in "[ab_]{1,3}",
            range in (0usize..320, 0usize..320),
        ) {
            words.sort();
            words.dedup();
            let bytes: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
            // The last word is pushed after the segments are joined.
            let (pushed_last, joined) = match bytes.split_last() {
                Some((last, rest)) => (Some(last), rest),
                None => (None, &bytes[..]),
            };
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(joined.len())).collect();
            cuts.sort();
            let mut bounds = vec![0];
            bounds.extend(cuts);
            bounds.push(joined.len());
            let mut vocabulary = Vocabulary::default();
            for part in bounds.windows(2) {
                // Empty parts too: they must leave no trace.
                let mut segment = Vocabulary::default();
                for w in &joined[part[0]..part[1]] {
                    segment.push(w);
                }
                vocabulary.append(segment);
            }
            if let Some(last) = pushed_last {
                vocabulary.push(last);
            }
            prop_assert_eq!(vocabulary.len(), bytes.len());
            prop_assert_eq!(vocabulary.byte_len(), bytes.iter().map(Vec::len).sum::<usize>());
            for (id, w) in bytes.iter().enumerate() {
                prop_assert_eq!(&*vocabulary.word(id), &w[..]);
                prop_assert_eq!(vocabulary.find(w), Some(id));
            }
            prop_assert_eq!(vocabulary.find(b"c"), None);
            let needle = needle.as_bytes();
            let keep = |w: &[u8]| w.len() != 4;
            let want = |f: &dyn Fn(&[u8]) -> bool| -> Vec<usize> {
                (0..bytes.len()).filter(|&i| f(&bytes[i])).collect()
            };
            let prefix = vocabulary.prefix_range(needle).collect::<Vec<_>>();
            prop_assert_eq!(prefix, want(&|w| w.starts_with(needle)));
            prop_assert_eq!(
                vocabulary.containing(needle, &keep),
                want(&|w| keep(w) && w.windows(needle.len()).any(|x| x == needle))
            );
            prop_assert_eq!(
                vocabulary.ending_with(needle, &keep),
                want(&|w| keep(w) && w.ends_with(needle))
            );
            let (from, to) = (range.0.min(range.1), range.0.max(range.1));
            let mut seen = Vec::new();
            vocabulary.for_each_in(from..to, &mut |id, w| {
                seen.push((id, w.to_vec()));
                true
            });
            let expected: Vec<(usize, Vec<u8>)> = (from..to.min(bytes.len()))
                .map(|id| (id, bytes[id].clone()))
                .collect();
            prop_assert_eq!(seen, expected);
            let pick = marking(|text: &[u8], picked: &mut Vec<usize>| {
                for (k, w) in text.split(|&b| b == 0).enumerate() {
                    if keep(w) && w.starts_with(b"a") {
                        picked.push(k);
                    }
                }
            });
            prop_assert_eq!(
                vocabulary.picked_in_text(&pick),
                want(&|w| keep(w) && w.starts_with(b"a"))
            );
            // A walk that skips every word's first byte's branch sees the
            // first word of each branch only.
            let mut walked = Vec::new();
            vocabulary.walk(&mut |id, _, _| {
                walked.push(id);
                Step::SkipPrefix(1)
            });
            let firsts: Vec<usize> = (0..bytes.len())
                .filter(|&i| i == 0 || bytes[i][0] != bytes[i - 1][0])
                .collect();
            prop_assert_eq!(walked, firsts);
        }

        /// A reader gives every word asked for, in any order (ascending,
        /// repeated, going back), as the sorted list holds it, in both forms.
        #[test]
        fn a_reader_gives_the_words_asked_for(
            mut words in proptest::collection::vec("[a-c]{1,7}", 1..200),
            asks in proptest::collection::vec(0usize..1000, 0..60),
            ascending in any::<bool>(),
        ) {
            words.sort();
            words.dedup();
            let bytes: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
            let mut asks: Vec<usize> = asks.into_iter().map(|a| a % bytes.len()).collect();
            if ascending {
                asks.sort_unstable();
            }
            let mut arena = Vocabulary::default();
            for w in &bytes {
                arena.push(w);
            }
            for vocabulary in [arena, front(&bytes)] {
                let mut reader = vocabulary.reader();
                for &id in &asks {
                    prop_assert_eq!(reader.word(id), bytes[id].as_slice(), "word {}", id);
                }
            }
        }

        /// A word's rank (how many words are below it, and whether it is
        /// held) is what a count over the sorted words says, through the
        /// plain text's groups or the blocks, whatever the word: below
        /// all, between groups, a group's first or last, past all, or
        /// longer than the bytes first read of a group's first word.
        #[test]
        fn ranks_agree_with_a_count_of_the_words_below(
            mut words in proptest::collection::vec(
                prop_oneof![9 => "[a-c]{1,6}", 1 => "[a-c]{1,2}b{120,135}"],
                1..3000,
            ),
            probes in proptest::collection::vec("[a-d]{0,7}|[a-c]{1,2}b{118,137}", 1..40),
        ) {
            words.sort();
            words.dedup();
            ranks_agree(&words, &probes)?;
        }

        /// Front-coded blocks answer every lookup as the arena does (and as
        /// a plain scan of the sorted words does).
        #[test]
        fn front_coded_blocks_agree_with_the_arena(
            mut words in proptest::collection::vec("[a-d]{0,6}", 0..120),
            probes in proptest::collection::vec("[a-e]{0,4}", 1..12),
        ) {
            words.sort();
            words.dedup();
            words.retain(|w| !w.is_empty());
            let bytes: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
            let mut arena = Vocabulary::default();
            for w in &bytes {
                arena.push(w);
            }
            let coded = front(&bytes);
            prop_assert_eq!(coded.len(), words.len());
            for (id, w) in bytes.iter().enumerate() {
                prop_assert_eq!(&*coded.word(id), w.as_slice());
                prop_assert_eq!(coded.find(w), Some(id));
            }
            for p in &probes {
                let p = p.as_bytes();
                let want: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i].starts_with(p)).collect();
                let range: Vec<usize> = coded.prefix_range(p).collect();
                prop_assert_eq!(&range, &want);
                prop_assert_eq!(arena.prefix_range(p).collect::<Vec<_>>(), want);
                if !p.is_empty() {
                    let want: Vec<usize> = (0..bytes.len())
                        .filter(|&i| memchr::memmem::find(&bytes[i], p).is_some())
                        .collect();
                    prop_assert_eq!(&coded.containing(p, &|_| true), &want);
                    prop_assert_eq!(&arena.containing(p, &|_| true), &want);
                }
                let found = bytes.iter().position(|w| w.as_slice() == p);
                prop_assert_eq!(coded.find(p), found);
            }
            let mid = words.len() / 3..words.len();
            let all: Vec<usize> = mid.clone().collect();
            prop_assert_eq!(coded.select_in(mid, &|_| true), all);
        }
    }
}
