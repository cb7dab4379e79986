//! A worker's partial index: the words of one batch of files and where they
//! occur, turned into a sorted [`Run`] that crosses the channel in one piece.
//!
//! Built for the long tail of vocabularies (millions of distinct identifiers
//! and constants), where every lookup of a rare word misses the cache:
//!
//! * one open-addressing table of 64-byte slots, each holding the word's
//!   hash, its key (inline up to 24 bytes, else in an arena) and the state of
//!   its posting list, so a lookup and the bookkeeping of an occurrence touch
//!   one cache line;
//! * keys are compared as whole 8-byte lanes after the hash, never `memcmp`;
//! * posting lists grow as chains of blocks in one arena, so the hot path
//!   never allocates, and a word's next bytes go where its last ones went;
//! * [`PartialIndex::into_run`] sorts the words once and copies each chain
//!   into the run.
//!
//! Its memory is bounded by [`Limits`]: once the table is as large as it
//! may grow and nearly full, or the arena passes its size, [`add`] says so
//! and the caller cuts the run there (in the middle of a file if need be:
//! the next run's lists re-anchor, see [`super::postings`]). So a batch of
//! any size, or a file of any size, becomes several runs, never a table
//! that outgrows memory or an arena past its 32-bit offsets.
//!
//! [`add`]: PartialIndex::add

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::bytes::Bytes;
use super::postings::{read_varint, write_varint};
use super::tokenize::{padded_len, padded_of, ShortWords, Word, MAX_WORD_BYTES, MIN_PADDED};

/// A 64-bit hash of a word given as zero-padded 8-byte lanes (see
/// [`padded_len`]): a short word's three lanes multiplied side by side, a
/// longer one's mixed lane after lane. Its top bits are the well-mixed
/// ones and choose the slot (see [`home`]). Never 0: that marks an empty
/// slot.
#[inline]
pub fn hash_word(padded: &[u8], len: usize) -> u64 {
    if len <= INLINE_KEY {
        return hash_short(short_lanes(padded), len);
    }
    let mut h = len as u64;
    for lane in padded.chunks_exact(8) {
        h = (h.rotate_left(23) ^ lane_at(lane)).wrapping_mul(HASH_K);
    }
    h | 1
}

const HASH_K: u64 = 0x9E37_79B9_7F4A_7C15;

/// [`hash_word`] of a word of at most [`INLINE_KEY`] bytes, given as its
/// three lanes.
#[inline(always)]
fn hash_short(lanes: [u64; 3], len: usize) -> u64 {
    // Three independent multiplies, not a chain of three, summed: xored,
    // names made by a counter (`reg_12_field_34`) shared hashes, 6-8% of
    // them in a model of the table, where a sum gives none.
    let h = (lanes[0] ^ len as u64)
        .wrapping_mul(HASH_K)
        .wrapping_add(lanes[1].wrapping_mul(0xC2B2_AE3D_27D4_EB4F))
        .wrapping_add(lanes[2].wrapping_mul(0x1656_67B1_9E37_79F9));
    h | 1
}

/// The three lanes of a short word's padded bytes.
#[inline(always)]
fn short_lanes(padded: &[u8]) -> [u64; 3] {
    [
        lane_at(padded),
        lane_at(&padded[8..]),
        lane_at(&padded[16..]),
    ]
}

/// Where `hash` is first looked for in a table of `slots` slots (a power
/// of two): its top bits, which a multiply mixes from every bit of the
/// key (its low bits depend only on the key's low bits).
#[inline]
fn home(hash: u64, slots: usize) -> usize {
    (hash >> (64 - slots.trailing_zeros())) as usize
}

/// The empty slot where a word of `hash` not yet in `slots` goes.
fn first_free(slots: &[Slot], hash: u64) -> usize {
    let mask = slots.len() - 1;
    let mut i = home(hash, slots.len());
    while slots[i].hash != 0 {
        i = (i + 1) & mask;
    }
    i
}

#[inline]
fn lane_at(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(buf)
}

/// A word to look up, as its caller holds it: a short word's three lanes
/// (in registers, straight from the gathered columns), or a longer word's
/// padded bytes.
#[derive(Debug, Clone, Copy)]
enum Key<'a> {
    Short([u64; 3]),
    Long(&'a [u8]),
}

/// Keys up to this many bytes live in the slot itself.
const INLINE_KEY: usize = 24;
/// Where in a slot's key field a longer key's first 16 bytes are.
const LONG_KEY_PREFIX: std::ops::Range<usize> = 8..24;
// Keys are copied in 8-byte lanes, and a sort prefix is read from the slot.
const _: () = assert!(INLINE_KEY == 24 && MIN_PADDED == INLINE_KEY);
/// Room an occurrence may need on the fast path: three varints of at most
/// five bytes (values below 2^32; larger ones take [`PartialIndex::push_wide`]),
/// so an inline list's entry is built in sixteen bytes, and a chain's is
/// written into this much room at its block's tail.
const MAX_ENTRY: usize = 15;
const _: () = assert!(MAX_ENTRY < 16);
/// Room any occurrence may need: a 5-byte head, then a line and a column of
/// up to ten bytes each.
const MAX_WIDE_ENTRY: usize = 25;
// `chain_inline` copies a whole inline list into room for a wide entry more.
const _: () = assert!(INLINE_LIST <= MAX_WIDE_ENTRY);
/// A block's header: end of its data (u32), next block (u32; 0 = none).
const HEADER: usize = 8;
const FIRST_BLOCK: usize = 24;
const MAX_BLOCK: usize = 4096;
/// The most arena or long-key bytes a run may hold, whatever the limits
/// say: offsets into them are 32-bit, and one chunk of occurrences adds at
/// most `(CHUNK + GROUP) * (HEADER + MAX_BLOCK)` bytes past a check.
const ARENA_LIMIT: usize = 3 << 30;
/// The table's first size, in slots.
const FIRST_SLOTS: usize = 1 << 12;

/// How much memory a partial index may hold before its run must be cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of the word table (64 per slot; it grows by doubling).
    pub table: usize,
    /// Bytes of the posting arena, and of the arena of long keys.
    pub arena: usize,
}

impl Default for Limits {
    /// As large as the 32-bit offsets allow: no cut before that.
    fn default() -> Self {
        Limits {
            table: usize::MAX,
            arena: ARENA_LIMIT,
        }
    }
}

/// One word: its key and the state of its posting list. One cache line.
///
/// A list of up to [`INLINE_LIST`] bytes lives in the slot itself, in the
/// sixteen bytes that otherwise say where its chain is: most of a batch's
/// words occur once or twice (in a kernel batch, three in four words'
/// lists fit), and those then never touch the arena, neither when an
/// occurrence is added nor when the run is written out, where reading a
/// chain is a cache miss per word.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct Slot {
    hash: u64,
    /// The padded key if `len <= INLINE_KEY`, else its arena offset in
    /// `key[0..4]` and its first 16 bytes in `key[8..24]` (so sorting by
    /// them reads no arena).
    key: [u8; INLINE_KEY],
    len: u16,
    /// Bytes of the list held inline (while not `chained`).
    inline_len: u8,
    /// The list is a chain of arena blocks, `head` to `block`.
    chained: bool,
    count: u32,
    last_file: u32,
    last_line: u32,
    /// The list's bytes while it is held inline; once `chained`, four
    /// little-endian u32s at [`CHAIN_HEAD`] and the offsets after it (see
    /// [`Slot::field`]). As bytes, so that an inline entry is written straight
    /// into them: built on the stack and loaded as two words to be shifted
    /// in, its byte stores were not forwarded to the loads, which waited
    /// for them to reach the cache (7% of the record loop's samples).
    list: [u8; INLINE_LIST],
}

/// Where a chained list's fields lie in its slot's list bytes: its first
/// block, where its next byte goes, the end of its current block's data,
/// and that block's header.
const CHAIN_HEAD: usize = 0;
const CHAIN_TAIL: usize = 4;
const CHAIN_BLOCK_END: usize = 8;
const CHAIN_BLOCK: usize = 12;

/// Bytes of a posting list a slot holds itself (see [`Slot`]).
const INLINE_LIST: usize = 16;

impl Slot {
    /// Where a long key (one past [`INLINE_KEY`] bytes) starts in the
    /// partial index's `long_keys`.
    #[inline]
    fn long_key_start(&self) -> usize {
        u32::from_le_bytes([self.key[0], self.key[1], self.key[2], self.key[3]]) as usize
    }

    /// The inline list's bytes, little-endian.
    #[inline]
    fn inline_list(&self) -> u128 {
        u128::from_le_bytes(self.list)
    }

    #[inline]
    fn set_inline_list(&mut self, list: u128) {
        self.list = list.to_le_bytes();
    }

    /// A chained list's field at `at` ([`CHAIN_HEAD`], [`CHAIN_TAIL`], [`CHAIN_BLOCK_END`]
    /// or [`CHAIN_BLOCK`]).
    #[inline(always)]
    fn field(&self, at: usize) -> u32 {
        chain_field(&self.list, at)
    }

    #[inline(always)]
    fn set_field(&mut self, at: usize, value: u32) {
        self.list[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }
}

/// A chained list's field at `at` of a slot's list bytes (see
/// [`Slot::field`]).
#[inline(always)]
fn chain_field(list: &[u8; INLINE_LIST], at: usize) -> u32 {
    u32::from_le_bytes([list[at], list[at + 1], list[at + 2], list[at + 3]])
}

/// `value`'s varint, for a value below 2^14: its bytes, little-endian,
/// and its length, with no branch on which.
#[inline(always)]
fn short_varint(value: u32) -> (u32, u32) {
    debug_assert!(value < 1 << 14);
    let long = u32::from(value >= 0x80);
    ((value & 0x7f) | (long << 7) | ((value >> 7) << 8), 1 + long)
}

/// The length of the entry [`put_entry`] writes.
#[inline(always)]
fn entry_len(head: u32, line: Option<u32>, column: u32) -> usize {
    varint_len(head) + line.map_or(0, varint_len) + varint_len(column)
}

/// Bytes of `value`'s varint, counted with no branch.
#[inline(always)]
fn varint_len(value: u32) -> usize {
    1 + usize::from(value >= 1 << 7)
        + usize::from(value >= 1 << 14)
        + usize::from(value >= 1 << 21)
        + usize::from(value >= 1 << 28)
}

/// Writes an occurrence's entry at the start of `dst` (its head, the line
/// if it opens a file, the column); returns its length.
#[inline(always)]
fn put_entry(dst: &mut [u8], head: u32, line: Option<u32>, column: u32) -> usize {
    let mut at = 0;
    put_varint(dst, &mut at, head);
    if let Some(line) = line {
        put_varint(dst, &mut at, line);
    }
    put_varint(dst, &mut at, column);
    at
}

#[inline]
fn put_varint(dst: &mut [u8], at: &mut usize, mut value: u32) {
    while value >= 0x80 {
        dst[*at] = (value as u8) | 0x80;
        *at += 1;
        value >>= 7;
    }
    dst[*at] = value as u8;
    *at += 1;
}

/// Words of a batch of files and their occurrences.
#[derive(Debug)]
pub struct PartialIndex {
    slots: Vec<Slot>,
    /// `64 - log2(slots.len())`: a hash shifted right by it is its home
    /// slot, kept rather than found from the table's length at each of
    /// the two lookups an occurrence makes (its prefetch and its probe).
    home_shift: u32,
    words: usize,
    /// The slots in use, in the order their words arrived, each with its
    /// word's sort prefix, taken when the word came in (its key was at
    /// hand): `take_run` sorts these, where reading every used slot for
    /// its prefix was a cache miss per word, and a scan of the whole table
    /// would read tens of megabytes per run (a table keeps the size its
    /// largest batch needed).
    used: Vec<SortItem>,
    /// What `take_run` keeps of each used slot, in word order (see
    /// [`Taken`]); its memory is kept from run to run.
    taken: Vec<Taken>,
    long_keys: Vec<u8>,
    /// Posting blocks, in `arena[..arena_used]`; the bytes past it are
    /// left from earlier batches (initialized, never read).
    arena: Vec<u8>,
    arena_used: usize,
    occurrences: u64,
    /// Occurrences waiting for their lookup, in order: looked up a chunk
    /// at a time, with each slot prefetched [`LOOKAHEAD`] occurrences
    /// before it is needed.
    pending: Gathered,
    /// Most slots the table may have, and most words it may then hold
    /// before a run must be cut (so that a chunk never makes it grow).
    max_slots: usize,
    max_words: usize,
    max_arena: usize,
    /// Occurrences recorded at once since the limits were last checked.
    direct: usize,
    /// See [`PartialIndex::take_record_time`].
    record_time: Duration,
}

/// How many occurrences ahead a slot is prefetched, so that many cache
/// misses are in flight at once instead of one at a time. (Twenty-four:
/// on an Intel host whose memory is far, record took 2.5-3.2% less time
/// than with sixteen, and 28 or 40 were no better; on a Zen 4, sixteen
/// took 6% less than eight, and four 14% more; on a Zen 3, four to
/// sixteen were alike.)
const LOOKAHEAD: usize = 24;
/// Occurrences gathered before their lookups run.
const CHUNK: usize = 2048;
/// Tables of at most this many slots (512 KiB) are probed at once: they
/// stay in the cache, so gathering lookups to prefetch them costs more
/// than it saves.
const CACHED_SLOTS: usize = 1 << 13;

/// Words the vector block path hands over at once (see [`ShortWords`]).
const GROUP: usize = 8;

/// Room in each column of [`Gathered`]: a chunk and one more group.
const GATHERED: usize = CHUNK + GROUP;

/// The columns of [`Gathered`], arrays of one size in one allocation, so
/// a group is copied in at constant offsets from one pointer with one
/// bounds check. As vectors, each column's pointer and length were loaded
/// and checked on every group: 21 of a group's instructions.
#[derive(Debug)]
struct Columns {
    /// Longer than the others by [`LOOKAHEAD`]: the record loop reads the
    /// hash that many occurrences ahead with no check of where the chunk
    /// ends (past it, stale or zero hashes prefetch some slot, harmlessly).
    hash: [u64; GATHERED + LOOKAHEAD],
    len: [u64; GATHERED],
    line: [u64; GATHERED],
    column: [u64; GATHERED],
    /// A short key's three lanes; for a longer key, `lanes[0]` is where
    /// its padded bytes start in [`Gathered::long`].
    lanes: [[u64; GATHERED]; 3],
    file: [u32; GATHERED],
}

/// Gathered occurrences, a column per field, each with room for a chunk
/// and one more group: the vector block path's groups of eight are copied
/// in as whole vectors, where a record per occurrence took a dozen scalar
/// stores (the kernel's tokenize phase took a fifth less CPU with them).
#[derive(Debug)]
struct Gathered {
    /// Taken by [`PartialIndex::flush`] while it records them (and back
    /// before anything is gathered again).
    columns: Option<Box<Columns>>,
    long: Vec<u8>,
    /// Occurrences gathered.
    n: usize,
}

impl Gathered {
    fn new() -> Self {
        Gathered {
            columns: Some(Box::new(Columns {
                hash: [0; GATHERED + LOOKAHEAD],
                len: [0; GATHERED],
                line: [0; GATHERED],
                column: [0; GATHERED],
                lanes: [[0; GATHERED]; 3],
                file: [0; GATHERED],
            })),
            long: Vec::new(),
            n: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Bytes held.
    fn memory(&self) -> usize {
        std::mem::size_of::<Columns>() + self.long.capacity()
    }

    /// The columns, always here outside [`PartialIndex::flush`].
    #[inline(always)]
    fn columns(&mut self) -> &mut Columns {
        match self.columns.as_deref_mut() {
            Some(columns) => columns,
            None => unreachable!("flush puts the columns back"),
        }
    }

    #[inline(always)]
    fn push(&mut self, hash: u64, lanes: [u64; 3], len: usize, file: u32, line: u64, column: u64) {
        let n = self.n;
        let c = self.columns();
        c.hash[n] = hash;
        c.len[n] = len as u64;
        c.file[n] = file;
        c.line[n] = line;
        c.column[n] = column;
        for (to, lane) in c.lanes.iter_mut().zip(lanes) {
            to[n] = lane;
        }
        self.n = n + 1;
    }
}

/// Asks the kernel to back `memory` with 2 MiB pages where it can. The
/// slot table and the posting arena are read and written at random over
/// hundreds of megabytes: with 4 KiB pages nearly every access is also a
/// TLB miss and a page walk, which costs more than the cache miss itself.
/// A large answer's entries are hinted too: where it was measured, a 2 MiB
/// page faulted in at a third of the cost of its 512 small ones. That
/// depends on the host: one that takes back freed memory backs a fresh
/// huge page at five times the cost, which is why memory written once and
/// in order, as the merge's vectors, is not hinted (see `merge_range`).
pub(crate) fn advise_huge_pages<T>(memory: &[T]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = memory.as_ptr() as usize;
        let end = start + std::mem::size_of_val(memory);
        let aligned_start = start.next_multiple_of(HUGE);
        let aligned_end = end - end % HUGE;
        if aligned_end > aligned_start {
            // SAFETY: the range lies inside memory this process owns (the
            // slice), and MADV_HUGEPAGE changes only how it is backed, never
            // its contents; failure (e.g. THP disabled) is harmless.
            unsafe {
                libc::madvise(
                    aligned_start as *mut libc::c_void,
                    aligned_end - aligned_start,
                    libc::MADV_HUGEPAGE,
                );
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = memory;
}

/// A table of `n` empty slots, on huge pages where the kernel gives them.
/// The hint must come before the first write: `vec![Slot::default(); n]`
/// writes every slot, and its memory is then backed by 4 KiB pages for
/// good (the kernel collapses them into huge ones only slowly, if ever).
fn empty_slots(n: usize) -> Vec<Slot> {
    let mut slots = Vec::with_capacity(n);
    advise_huge_pages(slots.spare_capacity_mut());
    slots.resize(n, Slot::default());
    slots
}

/// Asks the CPU to fetch `item`'s cache line ahead of its use.
#[inline]
pub(crate) fn prefetch<T>(item: &T) {
    prefetch_at(item as *const T);
}

/// [`prefetch`] of an address that need not be valid: a prefetch never
/// faults, so a hint computed without a bounds check is safe to give.
#[inline(always)]
fn prefetch_at<T>(item: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: a prefetch is only a hint; it never faults or changes memory.
        #[allow(unused_unsafe)]
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                item.cast::<i8>(),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = item;
}

impl Default for PartialIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialIndex {
    /// An empty partial index, limited only by its 32-bit offsets.
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    /// An empty partial index within `limits`.
    pub(crate) fn with_limits(limits: Limits) -> Self {
        // The largest power of two of slots within the limit (at least the
        // first size), and the words it may hold while a whole chunk can
        // still be recorded below the 3/4 load that makes it grow.
        let fit = limits.table / std::mem::size_of::<Slot>();
        let max_slots = match fit.checked_ilog2() {
            Some(log) => 1usize << log,
            None => FIRST_SLOTS,
        }
        .max(FIRST_SLOTS);
        PartialIndex {
            slots: empty_slots(FIRST_SLOTS),
            home_shift: 64 - FIRST_SLOTS.trailing_zeros(),
            words: 0,
            used: Vec::new(),
            taken: Vec::new(),
            long_keys: Vec::new(),
            // Offset 0 means "no block", so the arena starts with padding.
            arena: vec![0; HEADER],
            arena_used: HEADER,
            occurrences: 0,
            pending: Gathered::new(),
            max_slots,
            max_words: (max_slots / 4 * 3).saturating_sub(CHUNK + GROUP + 1),
            max_arena: limits.arena.min(ARENA_LIMIT),
            direct: 0,
            record_time: Duration::ZERO,
        }
    }

    #[inline(always)]
    fn key_matches(&self, slot: &Slot, key: Key<'_>, len: usize) -> bool {
        if slot.len as usize != len {
            return false;
        }
        match key {
            // Both are zero-padded to three lanes: compared whole, with no
            // branch on the word's length.
            Key::Short(lanes) => {
                let differ = (lane_at(&slot.key[..]) ^ lanes[0])
                    | (lane_at(&slot.key[8..]) ^ lanes[1])
                    | (lane_at(&slot.key[16..]) ^ lanes[2]);
                differ == 0
            }
            Key::Long(padded) => {
                let start = slot.long_key_start();
                let stored = &self.long_keys[start..start + padded.len()];
                stored
                    .chunks_exact(8)
                    .zip(padded.chunks_exact(8))
                    .all(|(a, b)| lane_at(a) == lane_at(b))
            }
        }
    }

    /// Records one occurrence of `word` (already lowercased). Occurrences
    /// must arrive in (file, line, column) order. Returns true when the
    /// index is full (see [`is_full`](Self::is_full)): the caller must take the run
    /// ([`take_run`](Self::take_run)) before adding more.
    ///
    /// Small on purpose (hash, gather, and calls for the rest): it is
    /// inlined into the tokenizer's loop, and so compiled with the
    /// tokenizer's vector forms.
    #[inline(always)]
    #[must_use]
    pub fn add(&mut self, word: Word<'_>, file: u32, line: u64, column: u64) -> bool {
        if word.len() <= INLINE_KEY {
            return self.add_short(short_lanes(word.padded()), word.len(), file, line, column);
        }
        let padded = word.padded();
        let hash = hash_word(padded, word.len());
        if self.slots.len() <= CACHED_SLOTS && self.pending.is_empty() {
            return self.add_at_once(hash, Key::Long(padded), word.len(), file, line, column);
        }
        let start = self.pending.long.len() as u64;
        // Lane by lane: fixed-size copies the compiler inlines, where one
        // copy of the whole key would call memcpy.
        for lane in padded.chunks_exact(8) {
            self.pending.long.extend_from_slice(lane);
        }
        self.pending
            .push(hash, [start, 0, 0], word.len(), file, line, column);
        if self.pending.n >= CHUNK {
            return self.flush_chunk();
        }
        false
    }

    /// [`add`](Self::add) for a word of at most 24 bytes given as the three
    /// lanes of its padded bytes, as the vector block path hands them over
    /// (see `WordSink::short_words`): hashed and gathered without reading
    /// the word from memory.
    #[inline(always)]
    #[must_use]
    pub(crate) fn add_short(
        &mut self,
        lanes: [u64; 3],
        len: usize,
        file: u32,
        line: u64,
        column: u64,
    ) -> bool {
        debug_assert!(len <= INLINE_KEY);
        let hash = hash_short(lanes, len);
        if self.slots.len() <= CACHED_SLOTS && self.pending.is_empty() {
            return self.add_at_once(hash, Key::Short(lanes), len, file, line, column);
        }
        self.pending.push(hash, lanes, len, file, line, column);
        if self.pending.n >= CHUNK {
            return self.flush_chunk();
        }
        false
    }

    /// [`add_short`](Self::add_short) for each of a group of words of the
    /// vector block path, all in file `file`, copied in as whole columns
    /// (the loops over a group's eight words are vectorized where this is
    /// inlined into that path). True when the index is then full: the
    /// group's words are all in it, and the caller takes the run before
    /// adding more.
    #[inline(always)]
    #[must_use]
    pub(crate) fn add_short_words(&mut self, words: &ShortWords, file: u32) -> bool {
        let count = words.count.min(GROUP);
        if self.slots.len() <= CACHED_SLOTS && self.pending.is_empty() {
            let mut full = false;
            for (lanes, len, position) in words.iter() {
                full |= self.add_short(lanes, len, file, position.line, position.column);
            }
            return full;
        }
        let n = self.pending.n;
        let g = self.pending.columns();
        let hashes = &mut g.hash[n..n + GROUP];
        for (j, hash) in hashes.iter_mut().enumerate() {
            let lanes = [words.lanes[0][j], words.lanes[1][j], words.lanes[2][j]];
            *hash = hash_short(lanes, words.len[j] as usize);
        }
        g.len[n..n + GROUP].copy_from_slice(&words.len);
        g.line[n..n + GROUP].copy_from_slice(&words.line);
        g.column[n..n + GROUP].copy_from_slice(&words.column);
        g.file[n..n + GROUP].fill(file);
        for (to, from) in g.lanes.iter_mut().zip(&words.lanes) {
            to[n..n + GROUP].copy_from_slice(from);
        }
        let g = &mut self.pending;
        g.n = n + count;
        if g.n >= CHUNK {
            return self.flush_chunk();
        }
        false
    }

    /// [`add`](Self::add) while the table is small enough to stay in the
    /// cache: records at once, and checks the limits as often as a chunk
    /// would.
    #[inline(never)]
    fn add_at_once(
        &mut self,
        hash: u64,
        key: Key<'_>,
        len: usize,
        file: u32,
        line: u64,
        column: u64,
    ) -> bool {
        self.record(hash, key, len, file, line, column);
        self.direct += 1;
        if self.direct == CHUNK {
            self.direct = 0;
            return self.is_full();
        }
        false
    }

    /// Records a full chunk of gathered occurrences, timed; true when the
    /// index is then full.
    #[inline(never)]
    fn flush_chunk(&mut self) -> bool {
        let recording = Instant::now();
        self.flush();
        self.record_time += recording.elapsed();
        self.is_full()
    }

    /// Time spent recording gathered chunks of occurrences (table lookups
    /// and posting lists) since the last call; the rest of [`add`]'s time
    /// is hashing and gathering. Two clock reads a chunk of 2048, so
    /// `--stats` can tell the tokenizer's share from the table's.
    ///
    /// [`add`]: PartialIndex::add
    pub fn take_record_time(&mut self) -> Duration {
        std::mem::take(&mut self.record_time)
    }

    /// Records every gathered occurrence.
    pub fn flush(&mut self) {
        let Some(g) = self.pending.columns.take() else {
            return;
        };
        let long = std::mem::take(&mut self.pending.long);
        let n = self.pending.n;
        // The chunk's first slots, which no earlier occurrence fetched.
        for &hash in &g.hash[..n.min(LOOKAHEAD)] {
            self.prefetch_home(hash);
        }
        // Each column cut to the chunk, so indexing by `k < n` is checked
        // once, not per column per occurrence.
        let (hash, len, file) = (&g.hash[..n], &g.len[..n], &g.file[..n]);
        let hash_ahead = &g.hash[LOOKAHEAD..LOOKAHEAD + n];
        let (line, column) = (&g.line[..n], &g.column[..n]);
        let [lane0, lane1, lane2] = &g.lanes;
        let (lane0, lane1, lane2) = (&lane0[..n], &lane1[..n], &lane2[..n]);
        for k in 0..n {
            // Where the occurrence LOOKAHEAD on will probe first (should
            // the table grow before then, or the chunk end before it, the
            // hint is merely wasted).
            self.prefetch_home(hash_ahead[k]);
            let word_len = len[k] as usize;
            // Two lookups, each specialized for its kind of key and inlined
            // with the occurrence's list update: the short one compares
            // the gathered lanes in registers, where copying them out as
            // padded bytes to compare again, and a call per occurrence,
            // cost a tenth of the recording time.
            let i = if word_len <= INLINE_KEY {
                self.find_or_insert(
                    hash[k],
                    Key::Short([lane0[k], lane1[k], lane2[k]]),
                    word_len,
                )
            } else {
                let start = lane0[k] as usize;
                let padded = &long[start..start + padded_len(word_len)];
                self.find_or_insert_long(hash[k], padded, word_len)
            };
            self.push_occurrence(i, file[k], line[k], column[k]);
        }
        // Counted once a chunk: incremented in the loop, the count was a
        // load and a store per occurrence (the list's byte stores may
        // alias it, so it could not stay in a register).
        self.occurrences += n as u64;
        self.pending.columns = Some(g);
        self.pending.long = long;
        self.pending.n = 0;
        self.pending.long.clear();
    }

    #[inline]
    fn record(&mut self, hash: u64, key: Key<'_>, len: usize, file: u32, line: u64, column: u64) {
        let i = self.find_or_insert(hash, key, len);
        self.push_occurrence(i, file, line, column);
        self.occurrences += 1;
    }

    /// The slot of the word `key` (of `len` bytes and hash `hash`), made
    /// for it if it is new.
    #[inline(always)]
    fn find_or_insert(&mut self, hash: u64, key: Key<'_>, len: usize) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = (hash >> self.home_shift) as usize;
        loop {
            let slot = self.slot(i);
            if slot.hash == hash && self.key_matches(slot, key, len) {
                return i;
            }
            if slot.hash == 0 {
                return match key {
                    Key::Short(lanes) => self.insert_short(i, lanes, len, hash),
                    Key::Long(padded) => self.insert_long(i, padded, len, hash),
                };
            }
            i = (i + 1) & mask;
        }
    }

    /// [`find_or_insert`](Self::find_or_insert) for a word past
    /// [`INLINE_KEY`] bytes, kept out of line: such words are few.
    #[inline(never)]
    fn find_or_insert_long(&mut self, hash: u64, padded: &[u8], len: usize) -> usize {
        self.find_or_insert(hash, Key::Long(padded), len)
    }

    /// The slot where a new word of `hash` goes, given `i`, the empty slot
    /// its lookup ended on: the table first grows if one more word would
    /// fill it past three quarters, and the word then goes where the grown
    /// table has room.
    #[inline(always)]
    fn room_for_one_more(&mut self, i: usize, hash: u64) -> usize {
        if (self.words + 1) * 4 > self.slots.len() * 3 {
            self.grow();
            return first_free(&self.slots, hash);
        }
        i
    }

    /// Makes slot `i` the word of at most [`INLINE_KEY`] bytes given as
    /// its three lanes. Its slot and sort item are stored field by
    /// field from registers: built on the stack through the byte slices a
    /// padded key gives, the copies became calls to `memcpy` of variable
    /// length, and the slot's whole-vector copy then waited on their
    /// narrower stores (on Intel, half the samples of the one `insert`
    /// there was sat on that load).
    #[cold]
    #[inline(never)]
    fn insert_short(&mut self, i: usize, lanes: [u64; 3], len: usize, hash: u64) -> usize {
        let i = self.room_for_one_more(i, hash);
        // The key's bytes are the lanes' little-endian bytes; a sort chunk
        // reads them big-endian.
        let [first, second, third] = lanes.map(u64::swap_bytes);
        self.used.push(SortItem {
            prefix: (u128::from(first) << 64) | u128::from(second),
            slot: i as u32,
            len: len as u32,
            next: third,
        });
        self.slots[i] = Slot {
            hash,
            key: padded_of(lanes),
            len: len as u16,
            inline_len: 0,
            chained: false,
            count: 0,
            last_file: 0,
            last_line: 0,
            list: [0; INLINE_LIST],
        };
        self.words += 1;
        i
    }

    /// Makes slot `i` the word of `len` bytes past [`INLINE_KEY`] given
    /// as `padded`: its key goes to `long_keys`, its first 16 bytes stay in
    /// the slot for the sort.
    #[cold]
    #[inline(never)]
    fn insert_long(&mut self, i: usize, padded: &[u8], len: usize, hash: u64) -> usize {
        debug_assert!(len > INLINE_KEY, "a short key goes through insert_short");
        let i = self.room_for_one_more(i, hash);
        let mut slot = Slot {
            hash,
            // Words are at most SCRATCH_BYTES long.
            len: len as u16,
            ..Slot::default()
        };
        // The sort item's `next` (see [`SortItem`]) is where the key starts
        // in `long_keys`.
        let start = self.long_keys.len() as u32;
        slot.key[..4].copy_from_slice(&start.to_le_bytes());
        slot.key[LONG_KEY_PREFIX].copy_from_slice(&padded[..16]);
        self.long_keys.extend_from_slice(padded);
        self.used.push(SortItem {
            prefix: chunk_at(padded, 0),
            slot: i as u32,
            len: len as u32,
            next: u64::from(start),
        });
        self.slots[i] = slot;
        self.words += 1;
        i
    }

    fn grow(&mut self) {
        debug_assert!(
            self.slots.len() < self.max_slots,
            "a run is cut before this"
        );
        self.grow_to(self.slots.len() * 2);
    }

    /// Makes the table ready for about `words` distinct words, within its
    /// limit: grown now, in one step, rather than doubled again and again
    /// while they arrive. Each doubling moves every word once more, and
    /// writes a new table to memory the host may first have to supply
    /// (a kernel batch's table went through seven sizes, 64 MB written
    /// for the 32 MB it ended with). Never shrinks the table.
    ///
    /// The table is kept sparse: the expected words fill at most three
    /// eighths of it, a kernel batch's actual words about a tenth. Only a
    /// word's home slot is prefetched, so a lookup that probes past it
    /// reads a line nobody fetched. Kernel builds, probes a lookup and
    /// record time against a 32 MB table (1.13 probes): 16 MB, 1.36 and
    /// 26% more; 64 MB (this sizing), 1.05 and 7% less, in spite of the
    /// wider span.
    pub fn expect_words(&mut self, words: usize) {
        let wanted = (words.saturating_mul(8) / 3 + 1)
            .checked_next_power_of_two()
            .unwrap_or(usize::MAX)
            .min(self.max_slots);
        if wanted > self.slots.len() {
            self.grow_to(wanted);
        }
    }

    fn grow_to(&mut self, len: usize) {
        let mut slots = empty_slots(len);
        for used in &mut self.used {
            let slot = &self.slots[used.slot as usize];
            let i = first_free(&slots, slot.hash);
            slots[i] = *slot;
            used.slot = i as u32;
        }
        self.slots = slots;
        self.home_shift = 64 - len.trailing_zeros();
    }

    /// Starts a new block for slot `i`'s chain, sized like the list so far.
    #[cold]
    #[inline(never)]
    fn new_block(&mut self, i: usize, at_least: usize) {
        let slot = self.slots[i];
        let size = (slot.count as usize * 4)
            .clamp(FIRST_BLOCK, MAX_BLOCK)
            .max(at_least);
        let start = self.arena_used;
        let needed = start + HEADER + size;
        if needed > self.arena.len() {
            let capacity = self.arena.capacity();
            if needed > capacity {
                // Double, but not far past the limit: a run is cut there anyway.
                let target = (capacity * 2)
                    .min(self.max_arena + ((CHUNK + GROUP) << 12))
                    .max(needed);
                self.arena.reserve_exact(target - self.arena.len());
            }
            self.arena.resize(needed, 0);
            if self.arena.capacity() != capacity {
                advise_huge_pages(self.arena.spare_capacity_mut());
                advise_huge_pages(&self.arena);
            }
        }
        // Only the header need be zero (no next block yet): the data area
        // is written before it is read, so a later batch reuses the bytes
        // an earlier one left without zeroing them again (memset was half
        // a percent of a kernel build's CPU).
        self.arena[start..start + HEADER].fill(0);
        self.arena_used = needed;
        let (start, data) = (start as u32, (start + HEADER) as u32);
        if slot.field(CHAIN_HEAD) == 0 {
            self.slots[i].set_field(CHAIN_HEAD, start);
        } else {
            // Close the current block: record where its data stops, link the new one.
            let previous = slot.field(CHAIN_BLOCK) as usize;
            self.arena[previous..previous + 4]
                .copy_from_slice(&slot.field(CHAIN_TAIL).to_le_bytes());
            self.arena[previous + 4..previous + 8].copy_from_slice(&start.to_le_bytes());
        }
        self.slots[i].set_field(CHAIN_BLOCK, start);
        self.slots[i].set_field(CHAIN_TAIL, data);
        self.slots[i].set_field(CHAIN_BLOCK_END, data + size as u32);
    }

    /// Fetches the slot where a word of `hash` is first looked for. Any
    /// hash shifted by `home_shift` is a slot of the table, and a prefetch
    /// never faults, so the address takes no bounds check.
    #[inline(always)]
    fn prefetch_home(&self, hash: u64) {
        let home = (hash >> self.home_shift) as usize;
        prefetch_at(self.slots.as_ptr().wrapping_add(home));
    }

    /// Slot `i` of the table, for an `i` the table itself gave: a home
    /// slot (a hash shifted by `home_shift`), a probe's next (masked by
    /// the table's size) or [`find_or_insert`](Self::find_or_insert)'s
    /// answer. Such an index is always in the table, so the record loop
    /// goes without the bounds checks: three an occurrence, each also
    /// reloading the table's length.
    #[inline(always)]
    fn slot(&self, i: usize) -> &Slot {
        debug_assert!(i < self.slots.len());
        // SAFETY: `i < self.slots.len()`, as above.
        unsafe { self.slots.get_unchecked(i) }
    }

    /// [`slot`](Self::slot), to change.
    #[inline(always)]
    fn slot_mut(&mut self, i: usize) -> &mut Slot {
        debug_assert!(i < self.slots.len());
        // SAFETY: `i < self.slots.len()`, as in `slot`.
        unsafe { self.slots.get_unchecked_mut(i) }
    }

    #[inline(always)]
    fn push_occurrence(&mut self, i: usize, file: u32, line: u64, column: u64) {
        let slot = self.slot(i);
        let opens = slot.count == 0 || file != slot.last_file;
        // One test for both: either past 32 bits takes the wide path.
        if (line | column) >> 32 != 0 {
            return self.push_wide(i, file, line, column);
        }
        let (line, column) = (line as u32, column as u32);
        let delta = if opens {
            file - if slot.count == 0 { 0 } else { slot.last_file }
        } else {
            line.wrapping_sub(slot.last_line)
        };
        // Values whose varints fit the fast path's MAX_ENTRY bytes.
        if delta >= if opens { 1 << 30 } else { 1 << 31 } {
            return self.push_wide(i, file, u64::from(line), u64::from(column));
        }
        let head = if opens { (delta << 1) | 1 } else { delta << 1 };
        let slot = self.slot_mut(i);
        if opens {
            slot.last_file = file;
        }
        slot.last_line = line;
        slot.count += 1;
        // The usual entry: a line step and a column, each below 2^14, built
        // in a register with no branch on either varint's length and
        // stored as four bytes (those past the entry are free room).
        if !opens && (head | column) < 1 << 14 {
            let (step, step_len) = short_varint(head);
            let (column, column_len) = short_varint(column);
            let entry = (step | (column << (8 * step_len))).to_le_bytes();
            let at = step_len + column_len;
            if !slot.chained {
                let held = slot.inline_len as usize;
                if held + entry.len() <= INLINE_LIST {
                    slot.list[held..held + entry.len()].copy_from_slice(&entry);
                    slot.inline_len += at as u8;
                    return;
                }
            } else {
                let tail = slot.field(CHAIN_TAIL) as usize;
                if tail + entry.len() <= slot.field(CHAIN_BLOCK_END) as usize {
                    debug_assert!(tail + entry.len() <= self.arena.len());
                    // SAFETY: the block holds `tail + entry.len()` bytes, and
                    // every block lies within the arena.
                    let room = unsafe { self.arena.get_unchecked_mut(tail..tail + entry.len()) };
                    room.copy_from_slice(&entry);
                    self.slot_mut(i).set_field(CHAIN_TAIL, tail as u32 + at);
                    return;
                }
            }
        }
        let slot = self.slot_mut(i);
        if !slot.chained {
            // Its length first, then its bytes straight into the slot's
            // list (see `Slot::list`) if they fit.
            let line = opens.then_some(line);
            let at = entry_len(head, line, column);
            let held = slot.inline_len as usize;
            if held + at <= INLINE_LIST {
                put_entry(&mut slot.list[held..], head, line, column);
                slot.inline_len += at as u8;
                return;
            }
            self.chain_inline(i);
        }
        let slot = self.slot(i);
        let mut tail = slot.field(CHAIN_TAIL) as usize;
        if tail + MAX_ENTRY > slot.field(CHAIN_BLOCK_END) as usize {
            self.new_block(i, MAX_ENTRY);
            tail = self.slot(i).field(CHAIN_TAIL) as usize;
        }
        // The block has room for MAX_ENTRY bytes past its tail (just
        // checked or made), and every block lies within the arena.
        debug_assert!(tail + MAX_ENTRY <= self.arena.len());
        // SAFETY: `tail + MAX_ENTRY <= self.arena.len()`, as above.
        let room = unsafe { self.arena.get_unchecked_mut(tail..tail + MAX_ENTRY) };
        // Straight into the block: an entry built on the stack and copied
        // as one 16-byte load waited for its byte stores to reach the cache
        // (a load that spans several smaller stores is not forwarded from
        // them), where perf put a third of this function's samples.
        let at = put_entry(room, head, opens.then_some(line), column);
        self.slot_mut(i).set_field(CHAIN_TAIL, (tail + at) as u32);
    }

    /// Moves slot `i`'s inline list into a first arena block, for a list
    /// that outgrew its slot.
    #[cold]
    #[inline(never)]
    fn chain_inline(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        let held = slot.inline_len as usize;
        let list = slot.inline_list().to_le_bytes();
        slot.chained = true;
        slot.inline_len = 0;
        slot.set_inline_list(0);
        self.new_block(i, held + MAX_WIDE_ENTRY);
        let slot = &mut self.slots[i];
        let tail = slot.field(CHAIN_TAIL) as usize;
        // All sixteen bytes (the block has room for more): a fixed-size
        // copy, where one of `held` bytes called memcpy. The block's bytes
        // past its tail are never read.
        self.arena[tail..tail + INLINE_LIST].copy_from_slice(&list);
        slot.set_field(CHAIN_TAIL, (tail + held) as u32);
    }

    /// An occurrence whose numbers do not fit the fast path: a file step of
    /// 2^30 or more, or a line or column of 2^32 or more. A line that large
    /// re-anchors (see [`super::postings`]), since the slot keeps 32 bits of
    /// the last line.
    #[cold]
    #[inline(never)]
    fn push_wide(&mut self, i: usize, file: u32, line: u64, column: u64) {
        if !self.slots[i].chained {
            self.chain_inline(i);
        }
        let slot = self.slots[i];
        let opens = slot.count == 0 || file != slot.last_file || line > u64::from(u32::MAX);
        let mut entry = Vec::with_capacity(MAX_WIDE_ENTRY);
        if opens {
            let previous = if slot.count == 0 { 0 } else { slot.last_file };
            write_varint(&mut entry, (u64::from(file - previous) << 1) | 1);
            write_varint(&mut entry, line);
        } else {
            write_varint(&mut entry, (line - u64::from(slot.last_line)) << 1);
        }
        write_varint(&mut entry, column);
        if (self.slots[i].field(CHAIN_TAIL) as usize) + entry.len()
            > self.slots[i].field(CHAIN_BLOCK_END) as usize
        {
            self.new_block(i, entry.len());
        }
        let slot = &mut self.slots[i];
        let tail = slot.field(CHAIN_TAIL) as usize;
        self.arena[tail..tail + entry.len()].copy_from_slice(&entry);
        slot.last_file = file;
        slot.last_line = u32::try_from(line).unwrap_or(u32::MAX);
        slot.count += 1;
        slot.set_field(CHAIN_TAIL, (tail + entry.len()) as u32);
    }

    /// True when the index has reached its limits: the table holds as
    /// many words as it may, or an arena passed its size. Checked after
    /// every chunk of occurrences, so the table never grows past its limit
    /// and the arenas pass theirs by at most one chunk's bytes.
    pub fn is_full(&self) -> bool {
        self.words > self.max_words
            || self.arena_used > self.max_arena
            || self.long_keys.len() > self.max_arena
    }

    /// Bytes held: the table, the arenas and the pending occurrences.
    pub fn memory(&self) -> usize {
        std::mem::size_of_val(self.slots.as_slice())
            + self.arena.capacity()
            + self.long_keys.capacity()
            + self.pending.memory()
    }

    /// Number of distinct words.
    pub fn distinct_words(&self) -> usize {
        self.words
    }

    /// Number of occurrences recorded.
    pub fn occurrences(&self) -> u64 {
        self.occurrences + self.pending.n as u64
    }

    fn key<'a>(&'a self, slot: &'a Slot) -> &'a [u8] {
        let len = slot.len as usize;
        if len <= INLINE_KEY {
            &slot.key[..len]
        } else {
            let start = slot.long_key_start();
            &self.long_keys[start..start + len]
        }
    }

    /// The block after `block` in its chain (0 for none, or for none
    /// before it).
    #[inline]
    fn next_block(&self, block: u32) -> u32 {
        let at = block as usize + 4;
        match (block, self.arena.get(at..at + 4)) {
            (1.., Some(next)) => u32::from_le_bytes([next[0], next[1], next[2], next[3]]),
            _ => 0,
        }
    }

    /// The blocks of a posting chain, as arena ranges, given its slot's
    /// list fields (see [`Slot::field`]).
    fn chain(
        &self,
        fields: &[u8; INLINE_LIST],
    ) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        let mut block = chain_field(fields, CHAIN_HEAD) as usize;
        let tail = chain_field(fields, CHAIN_TAIL) as usize;
        std::iter::from_fn(move || {
            if block == 0 {
                return None;
            }
            let header = &self.arena[block..block + HEADER];
            let end = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let next = self.next_block(block as u32) as usize;
            let data_end = if next == 0 { tail } else { end };
            let range = block + HEADER..data_end;
            block = next;
            Some(range)
        })
    }

    /// Sorts the words by bytes and serializes them with their posting lists.
    pub fn into_run(mut self) -> Run {
        self.take_run()
    }

    /// Like [`into_run`](Self::into_run), but leaves `self` empty with its
    /// memory kept, so a worker's next batch pays no page faults for it.
    pub fn take_run(&mut self) -> Run {
        self.flush();
        // Sort by the key's first 16 bytes, taken as the words came in:
        // most comparisons end there without touching slots.
        let mut order = std::mem::take(&mut self.used);
        order.sort_unstable_by_key(|item| item.prefix);
        // Words sharing their first 16 bytes are then ordered by their next
        // 16, and so on: each round reads one chunk of each tied word, in
        // one pass, where sorting a tie by whole keys fetched two slots
        // (random lines of the table) for every comparison. Kernel batches
        // have many such ties (`drm_atomic_helper_...` and the like).
        let mut ties = Vec::new();
        push_ties(&order, 0..order.len(), 16, &mut ties);
        while let Some((range, offset)) = ties.pop() {
            let tied = &mut order[range.clone()];
            let mut longest = 0;
            // No round reads a slot (they lie anywhere in the table): a
            // short word's bytes 16 to 24 came with its first 16 (a quarter
            // of a kernel batch's words tie on their first 16 bytes), and a
            // long word's item says where its key is.
            for k in 0..tied.len() {
                if let Some(ahead) = tied
                    .get(k + 8)
                    .filter(|a| a.len as usize > offset.max(INLINE_KEY))
                {
                    if let Some(byte) = self.long_keys.get(ahead.next as usize + offset) {
                        prefetch(byte);
                    }
                }
                let item = &mut tied[k];
                let len = item.len as usize;
                item.prefix = match len {
                    _ if len <= offset => 0,
                    ..=INLINE_KEY => u128::from(item.next) << 64,
                    _ => chunk_at(&self.long_keys[item.next as usize..][..len], offset),
                };
                longest = longest.max(len);
            }
            if longest <= offset {
                // Every byte compared equal: words that differ only by
                // trailing NULs (not word characters, but cheap to order),
                // which whole keys set apart by length.
                tied.sort_unstable_by(|a, b| {
                    self.key(&self.slots[a.slot as usize])
                        .cmp(self.key(&self.slots[b.slot as usize]))
                });
            } else {
                tied.sort_unstable_by_key(|item| item.prefix);
                push_ties(&order, range, offset + 16, &mut ties);
            }
        }
        // Each word's slot, read in word order (at random in the table) by
        // a loop that does nothing else, so that many of those cache misses
        // are in flight at once; the slot is emptied while it is in the
        // cache (every used slot is in `order`, so the table is left empty
        // without a pass over all of it). A short key's first sixteen
        // bytes go back into its item, where the rounds for ties may have
        // left a later chunk.
        let mut taken = std::mem::take(&mut self.taken);
        taken.clear();
        taken.reserve(order.len());
        for k in 0..order.len() {
            if let Some(ahead) = order.get(k + 32) {
                prefetch(&self.slots[ahead.slot as usize]);
            }
            let item = &mut order[k];
            let slot = &self.slots[item.slot as usize];
            if item.len as usize <= INLINE_KEY {
                item.prefix = chunk_at(&slot.key, 0);
            }
            taken.push(Taken {
                list: slot.list,
                count: slot.count,
                last_file: slot.last_file,
                inline_len: slot.inline_len,
                chained: slot.chained,
            });
            self.slots[item.slot as usize] = Slot::default();
        }
        let mut bytes = Vec::with_capacity(self.long_keys.len() / 2 + order.len() * 12);
        let mut entries = EntryWriter::default();
        let mut word_bytes = 0u64;
        let mut postings = Vec::with_capacity(self.arena_used + order.len() * INLINE_LIST / 2);
        let mut checkpoints = Vec::with_capacity(order.len() / CHECKPOINT_EVERY + 1);
        for (k, (item, word)) in order.iter().zip(&taken).enumerate() {
            // Chains are visited in word order, i.e. at random: fetch their
            // blocks from eight words ahead on. Reading a chain was most of
            // this loop's time (a cache miss per block, one after the other).
            if let Some(ahead) = taken.get(k + 8) {
                if ahead.chained {
                    // Its first block and its last (the slot knew both).
                    prefetch(&self.arena[chain_field(&ahead.list, CHAIN_HEAD) as usize]);
                    prefetch(&self.arena[chain_field(&ahead.list, CHAIN_BLOCK) as usize]);
                }
                // A long key, copied into its entry (its item says where).
                let ahead = &order[k + 8];
                if ahead.len as usize > INLINE_KEY {
                    if let Some(byte) = self.long_keys.get(ahead.next as usize) {
                        prefetch(byte);
                    }
                }
            }
            // The second and third blocks, each named in the header of the
            // block before it, fetched some words earlier.
            for (distance, blocks) in [(4, 1), (2, 2)] {
                if let Some(ahead) = taken.get(k + distance) {
                    if ahead.chained {
                        let mut block = chain_field(&ahead.list, CHAIN_HEAD);
                        for _ in 0..blocks {
                            block = self.next_block(block);
                        }
                        if let (1.., Some(header)) = (block, self.arena.get(block as usize)) {
                            prefetch(header);
                        }
                    }
                }
            }
            if k % CHECKPOINT_EVERY == 0 {
                checkpoints.push((bytes.len() as u64, postings.len() as u64));
                entries.restart();
            }
            // The list first, so its length is known from one walk of the
            // chain (a cache miss per block).
            let list_start = postings.len();
            match word.chained {
                true => {
                    for range in self.chain(&word.list) {
                        postings.extend_from_slice(&self.arena[range]);
                    }
                }
                false => {
                    // All sixteen bytes, then back to the list's end: a
                    // fixed-size copy, where one of the list's length would
                    // call memcpy.
                    postings.extend_from_slice(&word.list);
                    postings.truncate(list_start + word.inline_len as usize);
                }
            }
            let list_len = (postings.len() - list_start) as u64;
            let len = item.len as usize;
            match len {
                ..=INLINE_KEY => {
                    let mut padded = [0u8; INLINE_KEY];
                    padded[..16].copy_from_slice(&item.prefix.to_be_bytes());
                    padded[16..].copy_from_slice(&item.next.to_be_bytes());
                    let key = (&padded, len);
                    entries.write_padded(&mut bytes, key, word.count, word.last_file, list_len);
                }
                _ => {
                    let start = item.next as usize;
                    let key = &self.long_keys[start..start + len];
                    entries
                        .write(&mut bytes, key, word.count, word.last_file, list_len)
                        .expect("a word is at most MAX_RUN_WORD bytes once lowercased");
                }
            }
            word_bytes += len as u64;
        }
        self.taken = taken;
        let run = Run {
            bytes: bytes.into(),
            postings: postings.into(),
            words: order.len() as u64,
            word_bytes,
            occurrences: self.occurrences,
            checkpoints,
        };
        // Its memory is kept for the next batch's words.
        self.used = order;
        self.clear();
        run
    }

    /// Forgets every word, keeping the memory; the slots are already
    /// empty (see [`PartialIndex::take_run`]).
    fn clear(&mut self) {
        debug_assert!(self.slots.iter().all(|s| s.hash == 0));
        self.words = 0;
        self.used.clear();
        self.long_keys.clear();
        self.arena_used = HEADER;
        self.occurrences = 0;
        self.direct = 0;
    }
}

/// Bytes `offset..offset + 16` of `key` (zeros past its end), big-endian:
/// among keys that agree before `offset`, the order of these chunks is the
/// order of the keys wherever they differ.
#[inline]
fn chunk_at(key: &[u8], offset: usize) -> u128 {
    let rest = key.get(offset..).unwrap_or_default();
    // Most calls (a long key's next 16 bytes) take a fixed-size load;
    // copying `rest.len()` bytes into the chunk called memcpy.
    if let Some(chunk) = rest.first_chunk::<16>() {
        return u128::from_be_bytes(*chunk);
    }
    // Fewer than 16 bytes left: zero-padded.
    let mut chunk = [0u8; 16];
    chunk[..rest.len()].copy_from_slice(rest);
    u128::from_be_bytes(chunk)
}

/// Pushes every range of two or more words of `range` (sorted) that share
/// their sort chunk, to be ordered by their chunk at `offset`.
fn push_ties(
    order: &[SortItem],
    range: std::ops::Range<usize>,
    offset: usize,
    ties: &mut Vec<(std::ops::Range<usize>, usize)>,
) {
    let mut tie = range.start;
    while tie < range.end {
        let mut end = tie + 1;
        while end < range.end && order[end].prefix == order[tie].prefix {
            end += 1;
        }
        if end - tie > 1 {
            ties.push((tie..end, offset));
        }
        tie = end;
    }
}

/// A word's place in the sort: a 16-byte chunk of its key (at first its
/// first 16 bytes, and a short key's first 16 again once `take_run` has
/// read its slot), big-endian, and its slot; then, in what would be the
/// item's padding, the key's length and, for words tied on their first 16,
/// a short key's bytes 16 to 24 or where a long key starts in `long_keys`.
#[derive(Debug, Clone, Copy)]
struct SortItem {
    prefix: u128,
    slot: u32,
    len: u32,
    next: u64,
}

/// What writing a word's entry needs of its slot: its list (or its
/// chain's fields), count and last file; half a cache line, copied out of
/// the table before the entries are written (see `take_run`).
#[derive(Debug, Clone, Copy)]
#[repr(C, align(32))]
struct Taken {
    list: [u8; INLINE_LIST],
    count: u32,
    last_file: u32,
    inline_len: u8,
    chained: bool,
}

/// A batch's words in ascending byte order, each with its posting list: the
/// unit a worker sends and the parent merges.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Run {
    /// Per word, an entry (see [`write_entry`]): the word as the bytes it
    /// shares with the word before and the rest, its count, its last file
    /// and its list's length.
    pub bytes: Bytes,
    /// The words' posting lists, back to back in the same order. Kept apart
    /// from the words so that, once merged, the words can be dropped while
    /// the lists become the index's own.
    pub postings: Bytes,
    /// Distinct words in the run.
    pub words: u64,
    /// Bytes of its words, whole (what the merge's vocabulary takes).
    pub word_bytes: u64,
    /// Occurrences in the run.
    pub occurrences: u64,
    /// Offsets (in `bytes`, in `postings`) of every `CHECKPOINT_EVERY`th
    /// entry, so a merge can start reading in the middle of the run.
    pub checkpoints: Vec<(u64, u64)>,
}

/// How many entries apart a run's checkpoints are.
pub const CHECKPOINT_EVERY: usize = 1024;

impl Run {
    /// The run cut into ranges of words at `splits` (ascending): piece `k`
    /// holds the words from `splits[k - 1]` (inclusive) up to `splits[k]`,
    /// the first piece those below `splits[0]`, the last those from the
    /// last split on. Each piece is a run of its own (its lists begin
    /// anchored, as every run's do), for the machine that merges that
    /// range of the vocabulary. `None` if the run is malformed.
    pub fn split_at_words(&self, splits: &[Vec<u8>]) -> Option<Vec<Run>> {
        let mut pieces: Vec<Run> = Vec::with_capacity(splits.len() + 1);
        let mut piece = Run::default();
        let mut entries = EntryWriter::default();
        let mut reader = RunReader::new(self);
        while let Some(entry) = reader.next_entry() {
            while pieces.len() < splits.len() && entry.word >= splits[pieces.len()].as_slice() {
                pieces.push(std::mem::take(&mut piece));
            }
            if (piece.words as usize).is_multiple_of(CHECKPOINT_EVERY) {
                piece
                    .checkpoints
                    .push((piece.bytes.len() as u64, piece.postings.len() as u64));
                entries.restart();
            }
            let list_len = entry.postings.len() as u64;
            entries.write(
                piece.bytes.to_mut(),
                entry.word,
                entry.count,
                entry.last_file,
                list_len,
            )?;
            piece.postings.to_mut().extend_from_slice(entry.postings);
            piece.words += 1;
            piece.word_bytes += entry.word.len() as u64;
            piece.occurrences += u64::from(entry.count);
        }
        if reader.is_malformed() {
            return None;
        }
        pieces.push(piece);
        pieces.resize_with(splits.len() + 1, Run::default);
        Some(pieces)
    }
}

/// Longest word a run holds: a word is at most [`MAX_WORD_BYTES`] bytes in
/// its file, and lowercasing makes a character at most half as long again
/// (`İ`, two bytes, is `i̇`, three), so this leaves room to spare.
pub(crate) const MAX_RUN_WORD: usize = MAX_WORD_BYTES * 4;

/// A word being written to or read from a run's entries, with room for the
/// longest and sixteen bytes past it: a word's rest of up to sixteen bytes
/// (most of them) is then copied in one fixed-size move, where a copy of
/// its length was a call to `memcpy` per entry.
#[derive(Clone)]
pub(crate) struct WordBuf {
    bytes: [u8; MAX_RUN_WORD + 16],
    len: usize,
}

impl Default for WordBuf {
    fn default() -> Self {
        WordBuf {
            bytes: [0; MAX_RUN_WORD + 16],
            len: 0,
        }
    }
}

impl std::fmt::Debug for WordBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WordBuf({:?})", String::from_utf8_lossy(self.as_slice()))
    }
}

impl WordBuf {
    /// The word.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Holds `word` instead (`None` if it is longer than any run word).
    #[inline]
    pub(crate) fn set(&mut self, word: &[u8]) -> Option<()> {
        self.bytes.get_mut(..word.len())?.copy_from_slice(word);
        self.len = word.len();
        Some(())
    }

    /// Holds a short key instead: its padded field copied whole.
    #[inline]
    fn set_padded(&mut self, padded: &[u8; INLINE_KEY], len: usize) {
        self.bytes[..INLINE_KEY].copy_from_slice(padded);
        self.len = len.min(INLINE_KEY);
    }

    /// Holds `other`'s word instead, sixteen bytes at a time (both have
    /// room past their ends), not by a call to copy its length.
    #[inline]
    pub(crate) fn copy_from(&mut self, other: &WordBuf) {
        let mut i = 0;
        while i < other.len {
            self.bytes[i..i + 16].copy_from_slice(&other.bytes[i..i + 16]);
            i += 16;
        }
        self.len = other.len;
    }

    /// The word's first sixteen bytes, zero-padded, big-endian (as
    /// [`super::tournament::word_prefix`]): one load, masked.
    #[inline]
    pub(crate) fn prefix(&self) -> u128 {
        let mut first = [0u8; 16];
        first.copy_from_slice(&self.bytes[..16]);
        let all = u128::from_be_bytes(first);
        match self.len {
            16.. => all,
            len => all & !(u128::MAX >> (8 * len)),
        }
    }

    /// Empties it (a checkpoint's entry shares nothing).
    #[inline]
    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    /// How many leading bytes this word and `other` share, eight at a time:
    /// the first that differs is the lowest set byte of their difference,
    /// read little-endian.
    #[inline(always)]
    fn shared_with(&self, other: &WordBuf) -> usize {
        let n = self.len.min(other.len);
        let mut i = 0;
        while i < n {
            let (mut x, mut y) = ([0u8; 8], [0u8; 8]);
            x.copy_from_slice(&self.bytes[i..i + 8]);
            y.copy_from_slice(&other.bytes[i..i + 8]);
            let differ = u64::from_le_bytes(x) ^ u64::from_le_bytes(y);
            if differ != 0 {
                return (i + (differ.trailing_zeros() / 8) as usize).min(n);
            }
            i += 8;
        }
        n
    }
}

/// Appends a run's entry for `word`, which follows `previous` (empty at a
/// checkpoint, where a reader may start): as varints, the length `word`
/// shares with `previous` and the length of the rest, then the rest, then
/// `count`, `last_file` and `list_len`. Sorted words share long prefixes
/// (`drm_atomic_helper_...`): stored whole, the kernel's runs held 154.5
/// MB of words, sent through shared memory and read once by the merge.
#[inline(always)]
fn write_entry(
    out: &mut Vec<u8>,
    previous: &WordBuf,
    word: &WordBuf,
    count: u32,
    last_file: u32,
    list_len: u64,
) {
    let shared = previous.shared_with(word);
    let rest = word.len - shared;
    write_varint(out, shared as u64);
    write_varint(out, rest as u64);
    let start = out.len();
    match rest {
        ..=16 => {
            out.extend_from_slice(&word.bytes[shared..shared + 16]);
            out.truncate(start + rest);
        }
        _ => out.extend_from_slice(&word.as_slice()[shared..]),
    }
    write_varint(out, u64::from(count));
    write_varint(out, u64::from(last_file));
    write_varint(out, list_len);
}

/// Writes a run's entries one after another, each word against the one
/// before (see [`write_entry`]); its two words take turns, so nothing is
/// copied between entries.
#[derive(Default)]
pub(crate) struct EntryWriter {
    words: [WordBuf; 2],
    /// Which of `words` was written last.
    last: usize,
}

impl EntryWriter {
    /// The next entry shares nothing with the one before: a checkpoint,
    /// where a reader may start.
    #[inline]
    pub(crate) fn restart(&mut self) {
        self.words[self.last & 1].clear();
    }

    /// Appends the entry of `word`; `None` (and nothing written) if it is
    /// longer than any word a run holds.
    #[inline]
    pub(crate) fn write(
        &mut self,
        out: &mut Vec<u8>,
        word: &[u8],
        count: u32,
        last_file: u32,
        list_len: u64,
    ) -> Option<()> {
        self.words[(self.last + 1) & 1].set(word)?;
        self.written(out, count, last_file, list_len);
        Some(())
    }

    /// [`EntryWriter::write`] for a short key, from its padded field.
    #[inline]
    fn write_padded(
        &mut self,
        out: &mut Vec<u8>,
        (padded, len): (&[u8; INLINE_KEY], usize),
        count: u32,
        last_file: u32,
        list_len: u64,
    ) {
        self.words[(self.last + 1) & 1].set_padded(padded, len);
        self.written(out, count, last_file, list_len);
    }

    #[inline(always)]
    fn written(&mut self, out: &mut Vec<u8>, count: u32, last_file: u32, list_len: u64) {
        let next = (self.last + 1) & 1;
        let [a, b] = &self.words;
        let (previous, word) = if next == 1 { (a, b) } else { (b, a) };
        write_entry(out, previous, word, count, last_file, list_len);
        self.last = next;
    }
}

/// Reads the entry at `bytes[*pos..]` (see [`write_entry`]), whose word
/// follows the one in `word` and replaces it there; returns its count,
/// last file and list length. `None` if it does not decode or its word
/// does not come after the one before (words in a run ascend): then `word`
/// may hold anything.
#[inline(always)]
pub(crate) fn read_entry(
    bytes: &[u8],
    pos: &mut usize,
    word: &mut WordBuf,
) -> Option<(u32, u32, u64)> {
    let mut at = *pos;
    let shared = usize::try_from(read_varint(bytes, &mut at)?).ok()?;
    let rest_len = usize::try_from(read_varint(bytes, &mut at)?).ok()?;
    let end = at.checked_add(rest_len)?;
    let rest = bytes.get(at..end)?;
    if shared > word.len || shared + rest_len > MAX_RUN_WORD {
        return None;
    }
    let before = word.as_slice();
    let ascends = match (shared, before.get(shared)) {
        // At a checkpoint nothing is shared, whatever the words: compared
        // whole, but their first bytes mostly settle it.
        (0, _) => match (rest.first(), before.first()) {
            (Some(now), Some(then)) if now != then => now > then,
            _ => rest > before,
        },
        // Else `shared` is all they share: the next byte must be larger.
        (_, Some(&then)) => rest.first().is_some_and(|&now| now > then),
        (_, None) => rest_len > 0,
    };
    if !ascends {
        return None;
    }
    match bytes.get(at..at + 16) {
        Some(sixteen) if rest_len <= 16 => {
            word.bytes[shared..shared + 16].copy_from_slice(sixteen);
        }
        _ => word.bytes[shared..shared + rest_len].copy_from_slice(rest),
    }
    word.len = shared + rest_len;
    at = end;
    let count = u32::try_from(read_varint(bytes, &mut at)?).ok()?;
    let last_file = u32::try_from(read_varint(bytes, &mut at)?).ok()?;
    let list_len = read_varint(bytes, &mut at)?;
    *pos = at;
    Some((count, last_file, list_len))
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
    /// Where the posting list starts in the run's postings.
    pub postings_at: usize,
}

/// Reads a run's entries in order, each word rebuilt in the reader from
/// the one before. Malformed bytes end the reading and set
/// [`RunReader::is_malformed`], so a bad run is reported, never a panic.
#[derive(Debug, Clone)]
pub struct RunReader<'a> {
    bytes: &'a [u8],
    postings: &'a [u8],
    pos: usize,
    postings_pos: usize,
    /// The last word read (what the next entry's word builds on).
    word: WordBuf,
    malformed: bool,
}

impl<'a> RunReader<'a> {
    /// Starts reading `run`.
    pub fn new(run: &'a Run) -> Self {
        Self::at(run, (0, 0), WordBuf::default())
    }

    /// Starts reading `run` at a [`position`](Self::position) it had, with
    /// the [`word`](Self::word) it had there (empty at a checkpoint).
    pub(crate) fn at(run: &'a Run, (pos, postings_pos): (u64, u64), word: WordBuf) -> Self {
        RunReader {
            bytes: &run.bytes,
            postings: &run.postings,
            pos: (pos as usize).min(run.bytes.len()),
            postings_pos: postings_pos as usize,
            word,
            malformed: false,
        }
    }

    /// Starts reading `run` at the first entry whose word is `>= word`,
    /// using the run's checkpoints to skip most of it.
    pub fn seek(run: &'a Run, word: &[u8]) -> Self {
        // The last checkpoint whose word is below `word`: the first entry
        // `>= word` lies after it.
        let (mut lo, mut hi) = (0usize, run.checkpoints.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match Self::at(run, run.checkpoints[mid], WordBuf::default()).next_entry() {
                Some(entry) if entry.word < word => lo = mid + 1,
                _ => hi = mid,
            }
        }
        let mut reader = match lo {
            0 => Self::new(run),
            _ => Self::at(run, run.checkpoints[lo - 1], WordBuf::default()),
        };
        let mut before = reader.clone();
        loop {
            match reader.next_entry() {
                Some(entry) if entry.word < word => {}
                Some(_) => return before,
                None => return reader,
            }
            before.clone_from(&reader);
        }
    }

    /// Starts reading `run` at its `k`th checkpoint.
    pub fn at_checkpoint(run: &'a Run, k: usize) -> Option<Self> {
        run.checkpoints
            .get(k)
            .map(|&point| Self::at(run, point, WordBuf::default()))
    }

    /// Where the next entry starts: in the words, in the lists.
    pub(crate) fn position(&self) -> (u64, u64) {
        (self.pos as u64, self.postings_pos as u64)
    }

    /// The last word read: where the next entry's word starts from.
    #[inline]
    pub(crate) fn word(&self) -> &[u8] {
        self.word.as_slice()
    }

    /// The last word read, with its room (see [`WordBuf`]).
    #[inline]
    pub(crate) fn word_buf(&self) -> &WordBuf {
        &self.word
    }

    /// Takes the reader's word (see [`RunReader::at`]).
    pub(crate) fn into_word(self) -> WordBuf {
        self.word
    }

    /// True when reading stopped at malformed bytes.
    pub fn is_malformed(&self) -> bool {
        self.malformed
    }

    /// `f` of each entry from here on, in order (up to malformed bytes).
    pub fn map_entries<T>(mut self, mut f: impl FnMut(RunEntry<'_>) -> T) -> Vec<T> {
        let mut out = Vec::new();
        while let Some(entry) = self.next_entry() {
            out.push(f(entry));
        }
        out
    }

    /// The next entry, or `None` at the end of the run or at malformed
    /// bytes (see [`RunReader::is_malformed`]).
    #[inline]
    pub fn next_entry(&mut self) -> Option<RunEntry<'_>> {
        if self.malformed || self.pos >= self.bytes.len() {
            return None;
        }
        let mut pos = self.pos;
        let entry = read_entry(self.bytes, &mut pos, &mut self.word).and_then(
            |(count, last_file, list_len)| {
                let list_len = usize::try_from(list_len).ok()?;
                let at = self.postings_pos;
                let postings = self.postings.get(at..at.checked_add(list_len)?)?;
                Some((count, last_file, postings, at))
            },
        );
        let Some((count, last_file, postings, postings_at)) = entry else {
            self.malformed = true;
            return None;
        };
        self.pos = pos;
        self.postings_pos = postings_at + postings.len();
        Some(RunEntry {
            word: self.word.as_slice(),
            count,
            last_file,
            postings,
            postings_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::postings::Locations;
    use crate::index::tokenize::for_each_word;

    /// Names a generator numbered (register fields and the like) differ
    /// in a digit or two: none of them may share a hash, which would cost
    /// every occurrence of both a probe past its slot. With the lanes'
    /// products xored, 6-8% of such names did.
    #[test]
    fn names_made_by_a_counter_do_not_share_hashes() {
        let mut hashes = std::collections::HashSet::new();
        let mut names = 0;
        for i in 0..100_000 {
            for name in [
                format!("reg_{}_field_{}", i / 100, i % 100),
                format!("mmreg{}_field{}_shift", i / 64, i % 64),
                format!("x{i}"),
            ] {
                let len = name.len();
                let mut padded = name.into_bytes();
                padded.resize(padded_len(len), 0);
                hashes.insert(hash_word(&padded, len));
                names += 1;
            }
        }
        assert_eq!(hashes.len(), names);
    }

    fn entries(run: &Run) -> Vec<(Vec<u8>, u32, u32, Vec<u8>)> {
        RunReader::new(run)
            .map_entries(|e| (e.word.to_vec(), e.count, e.last_file, e.postings.to_vec()))
    }

    /// A u32 of any bit width alike, so every varint length is as likely.
    fn any_width() -> impl proptest::strategy::Strategy<Value = u32> {
        proptest::strategy::Strategy::prop_flat_map(0u32..32, |bits| 0..=(u32::MAX >> bits))
    }

    /// A short entry's varints are the plain ones, for every value they
    /// take.
    #[test]
    fn short_varints_are_plain_varints() {
        for value in 0..1u32 << 14 {
            let mut plain = Vec::new();
            write_varint(&mut plain, u64::from(value));
            let (bytes, len) = short_varint(value);
            assert_eq!(
                &bytes.to_le_bytes()[..len as usize],
                plain.as_slice(),
                "{value}"
            );
            assert_eq!(bytes >> (8 * len), 0, "{value}: bytes past the varint");
        }
    }

    proptest::proptest! {
        /// An entry's length, counted before it is written (to tell whether
        /// it fits in its slot), is the length written, which is the
        /// plain varints' length: values spread over every varint length.
        #[test]
        fn an_entry_is_as_long_as_counted(
            head in any_width(),
            line in proptest::option::of(any_width()),
            column in any_width(),
        ) {
            let mut plain = Vec::new();
            for value in [Some(head), line, Some(column)].into_iter().flatten() {
                write_varint(&mut plain, u64::from(value));
            }
            let mut written = [0u8; MAX_ENTRY];
            let at = put_entry(&mut written, head, line, column);
            proptest::prop_assert_eq!(entry_len(head, line, column), at);
            proptest::prop_assert_eq!(&written[..at], plain.as_slice());
        }
    }

    proptest::proptest! {
        /// Front-coded entries read back as the words written, from the
        /// start and from every restart (a checkpoint), whatever the bytes;
        /// and a word's buffered prefix is the tournament's.
        #[test]
        fn entries_read_back_as_written(
            words in proptest::collection::btree_set(proptest::collection::vec(proptest::prelude::any::<u8>(), 1..40), 1..200),
            every in 1usize..9,
        ) {
            let words: Vec<Vec<u8>> = words.into_iter().collect();
            let (mut out, mut writer, mut restarts) = (Vec::new(), EntryWriter::default(), Vec::new());
            for (k, word) in words.iter().enumerate() {
                if k % every == 0 {
                    restarts.push((out.len(), k));
                    writer.restart();
                }
                proptest::prop_assert!(writer.write(&mut out, word, k as u32, 7, 1).is_some());
            }
            for (start, first) in restarts {
                let (mut pos, mut word) = (start, WordBuf::default());
                for (k, want) in words.iter().enumerate().skip(first) {
                    let got = read_entry(&out, &mut pos, &mut word);
                    proptest::prop_assert_eq!(got, Some((k as u32, 7, 1)));
                    proptest::prop_assert_eq!(word.as_slice(), want.as_slice());
                    proptest::prop_assert_eq!(word.prefix(), crate::index::tournament::word_prefix(want));
                }
                proptest::prop_assert_eq!(pos, out.len());
            }
        }

        /// A word that does not come after the one before is refused.
        #[test]
        fn a_word_out_of_order_is_malformed(
            a in proptest::collection::vec(0u8..3, 1..20),
            b in proptest::collection::vec(0u8..3, 1..20),
        ) {
            let (mut out, mut writer) = (Vec::new(), EntryWriter::default());
            writer.write(&mut out, &a, 1, 0, 1);
            writer.write(&mut out, &b, 1, 0, 1);
            let (mut pos, mut word) = (0, WordBuf::default());
            proptest::prop_assert!(read_entry(&out, &mut pos, &mut word).is_some());
            proptest::prop_assert_eq!(read_entry(&out, &mut pos, &mut word).is_some(), b > a);
        }
    }

    proptest::proptest! {
        /// Cut at any words, the pieces hold the run's entries in order,
        /// each piece within its range, with working checkpoints.
        #[test]
        fn a_run_split_at_words_keeps_every_entry_in_its_range(
            words in proptest::collection::vec("[a-d]{1,4}", 1..3000),
            mut splits in proptest::collection::vec("[a-d]{0,3}", 0..5),
        ) {
            let mut partial = PartialIndex::new();
            for (i, w) in words.iter().enumerate() {
                for_each_word(w.as_bytes(), |word, _| {
                    let _ = partial.add(word, (i / 50) as u32, (i % 50) as u64 + 1, 1);
                });
            }
            let run = partial.into_run();
            splits.sort();
            splits.dedup();
            let splits: Vec<Vec<u8>> = splits.into_iter().map(String::into_bytes).collect();
            let pieces = run.split_at_words(&splits).unwrap();
            proptest::prop_assert_eq!(pieces.len(), splits.len() + 1);
            let mut joined = Vec::new();
            for (k, piece) in pieces.iter().enumerate() {
                let got = entries(piece);
                for (word, ..) in &got {
                    proptest::prop_assert!(k == 0 || *word >= splits[k - 1]);
                    proptest::prop_assert!(k == splits.len() || *word < splits[k]);
                }
                proptest::prop_assert_eq!(piece.words as usize, got.len());
                let counted: u64 = got.iter().map(|e| u64::from(e.1)).sum();
                proptest::prop_assert_eq!(piece.occurrences, counted);
                // Seeking through the piece's checkpoints finds each word.
                for (word, ..) in got.iter().step_by(97) {
                    let found = RunReader::seek(piece, word).next_entry().map(|e| e.word.to_vec());
                    proptest::prop_assert_eq!(found.as_ref(), Some(word));
                }
                joined.extend(got);
            }
            proptest::prop_assert_eq!(joined, entries(&run));
        }
    }

    /// Adds `fillers` words of one occurrence each, then the occurrences
    /// `steps` describe (each followed by `fillers_per_step` more fillers),
    /// and checks that the run gives back every occurrence as it was
    /// added, in order. The table is told to expect `expect.0` words
    /// first, and `expect.1` after the fillers.
    fn gives_back_every_occurrence(
        steps: Vec<(usize, u8, u8, u8)>,
        fillers: usize,
        fillers_per_step: usize,
        expect: (usize, usize),
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        let words: Vec<String> = (0..40).map(|k| format!("w{}", k * k % 97)).collect();
        let mut partial = PartialIndex::new();
        partial.expect_words(expect.0);
        let mut want: std::collections::BTreeMap<Vec<u8>, Vec<(u32, u64, u64)>> =
            std::collections::BTreeMap::new();
        let mut filler = 0usize;
        let mut add =
            |partial: &mut PartialIndex, word: &str, file: u32, line: u64, column: u64| {
                let mut full = false;
                for_each_word(word.as_bytes(), |w, _| {
                    full |= partial.add(w, file, line, column);
                });
                want.entry(word.as_bytes().to_vec())
                    .or_default()
                    .push((file, line, column));
                full
            };
        for _ in 0..fillers {
            filler += 1;
            let word = format!("f{filler}");
            proptest::prop_assert!(!add(&mut partial, &word, 0, 1, 1));
        }
        partial.expect_words(expect.1);
        let (mut file, mut line) = (0u32, 1u64);
        for (word, file_step, line_step, column) in steps {
            match file_step {
                0 => {
                    file += 1;
                    line = 1;
                }
                1 if file < 1 << 31 => {
                    file += 1 << 30;
                    line = 1;
                }
                _ => {}
            }
            // Steps and columns on either side of each varint length and
            // of the short entries' limit (a line step's varint, twice the
            // step, and a column below 2^14).
            line += match line_step {
                0 => 1 << 32,
                1 => 200,
                2 => 8191,
                3 => 8192,
                k => u64::from(k) - 4,
            };
            let column = match column {
                0 => (1 << 32) + 5,
                1 => 300,
                2 => 16383,
                3 => 16384,
                k => u64::from(k),
            };
            proptest::prop_assert!(!add(&mut partial, &words[word], file, line, column));
            for _ in 0..fillers_per_step {
                filler += 1;
                let word = format!("f{filler}");
                proptest::prop_assert!(!add(&mut partial, &word, file, line, column));
            }
        }
        let run = partial.into_run();
        let got: std::collections::BTreeMap<Vec<u8>, Vec<(u32, u64, u64)>> = RunReader::new(&run)
            .map_entries(|e| {
                let list: Vec<_> = Locations::new(e.postings)
                    .map(|l| (l.file, l.line, l.column))
                    .collect();
                assert_eq!(e.count as usize, list.len());
                assert_eq!(Some(e.last_file), list.last().map(|l| l.0));
                (e.word.to_vec(), list)
            })
            .into_iter()
            .collect();
        proptest::prop_assert_eq!(got, want);
        Ok(())
    }

    proptest::proptest! {
        /// Every occurrence comes back from the run as it was added, in
        /// order: lists short enough to stay in the word table, lists that
        /// outgrow it into the arena, and numbers past the fast path (file
        /// steps of 2^30, lines and columns past 2^32) met at any point.
        #[test]
        fn runs_give_back_every_occurrence(
            steps in proptest::collection::vec((0usize..40, 0u8..8, 0u8..8, 0u8..8), 1..1500),
        ) {
            gives_back_every_occurrence(steps, 0, 0, (0, 0))?;
        }

        /// The same past the table size where lookups are gathered a chunk
        /// at a time, with the table growing in the middle of a chunk
        /// (12,288 words fill 16,384 slots to three quarters).
        #[test]
        fn runs_give_back_every_occurrence_gathered(
            steps in proptest::collection::vec((0usize..40, 0u8..8, 0u8..8, 0u8..8), 200..1500),
        ) {
            gives_back_every_occurrence(steps, 12_000, 2, (0, 0))?;
        }

        /// Words handed over in groups, as the vector block path does
        /// (short words eight at a time, the long ones one by one between
        /// them), make the same run as words added one at a time: in a
        /// table small enough to record at once, and in one large enough
        /// to gather, with chunks ending inside a group.
        #[test]
        fn groups_of_short_words_make_the_same_run(
            words in proptest::collection::vec(("[a-d]{1,3}", 0usize..30, 1u64..4, 1u64..90), 1..3000),
            expect in proptest::sample::select(vec![0usize, 20_000]),
        ) {
            let (mut one, mut grouped) = (PartialIndex::new(), PartialIndex::new());
            one.expect_words(expect);
            grouped.expect_words(expect);
            let mut group = ShortWords::default();
            let (mut file, mut line) = (0u32, 1u64);
            let send = |grouped: &mut PartialIndex, group: &mut ShortWords, file: u32| {
                if group.count > 0 {
                    let _ = grouped.add_short_words(group, file);
                    group.count = 0;
                }
            };
            for (head, repeat, step, column) in &words {
                let text = format!("{head}{}", "x".repeat(*repeat));
                // A new file now and then: a group holds one file's words.
                if step % 3 == 0 {
                    send(&mut grouped, &mut group, file);
                    file += 1;
                    line = 1;
                }
                line += step;
                for_each_word(text.as_bytes(), |w, _| {
                    let _ = one.add(w, file, line, *column);
                    if w.len() <= INLINE_KEY {
                        let j = group.count;
                        for (k, lane) in short_lanes(w.padded()).into_iter().enumerate() {
                            group.lanes[k][j] = lane;
                        }
                        group.len[j] = w.len() as u64;
                        group.line[j] = line;
                        group.column[j] = *column;
                        group.count += 1;
                        if group.count == GROUP {
                            send(&mut grouped, &mut group, file);
                        }
                    } else {
                        send(&mut grouped, &mut group, file);
                        let _ = grouped.add(w, file, line, *column);
                    }
                });
            }
            send(&mut grouped, &mut group, file);
            let (a, b) = (one.into_run(), grouped.into_run());
            proptest::prop_assert_eq!(&a.bytes[..], &b.bytes[..]);
            proptest::prop_assert_eq!(&a.postings[..], &b.postings[..]);
            proptest::prop_assert_eq!(a.occurrences, b.occurrences);
        }

        /// A partial index taken by `take_run` and filled again makes the
        /// same run as a fresh one: what an earlier batch left in its
        /// arena and table (kept, not cleared) is never read.
        #[test]
        fn a_reused_partial_index_makes_the_runs_fresh_ones_make(
            batches in proptest::collection::vec(
                proptest::collection::vec(("[a-e]{1,3}", 0usize..30, 0u64..3, 1u64..200), 1..2500),
                2..5,
            ),
        ) {
            let mut reused = PartialIndex::new();
            for batch in &batches {
                let mut fresh = PartialIndex::new();
                let (mut file, mut line) = (0u32, 1u64);
                for (head, repeat, step, column) in batch {
                    let text = format!("{head}{}", "y".repeat(*repeat));
                    if *step == 0 {
                        file += 1;
                        line = 1;
                    }
                    line += step;
                    for_each_word(text.as_bytes(), |w, _| {
                        let _ = fresh.add(w, file, line, *column);
                        let _ = reused.add(w, file, line, *column);
                    });
                }
                let (a, b) = (fresh.into_run(), reused.take_run());
                proptest::prop_assert_eq!(&a.bytes[..], &b.bytes[..]);
                proptest::prop_assert_eq!(&a.postings[..], &b.postings[..]);
                proptest::prop_assert_eq!(a.occurrences, b.occurrences);
            }
        }

        /// The same with the table made ready for some number of words
        /// before any arrive, and again after thousands did: a table
        /// sized at once, or grown with words in it, loses none.
        #[test]
        fn runs_give_back_every_occurrence_in_a_table_sized_ahead(
            steps in proptest::collection::vec((0usize..40, 0u8..8, 0u8..8, 0u8..8), 1..600),
            fillers in 0usize..5_000,
            expect in (0usize..40_000, 0usize..40_000),
        ) {
            gives_back_every_occurrence(steps, fillers, 1, expect)?;
        }
    }

    proptest::proptest! {
        /// Words that share long prefixes (past the 16 bytes the first sort
        /// reads, and past the 24 a slot holds) come out in byte order, each
        /// once, with its own occurrences: the order of a `BTreeMap`.
        #[test]
        fn words_sharing_long_prefixes_come_out_in_byte_order(
            words in proptest::collection::vec(("[ab_]{0,3}", 0usize..60, "[a-c_0-9]{0,40}"), 1..400),
        ) {
            let mut partial = PartialIndex::new();
            type Places = Vec<(u32, u64)>;
            let mut want: std::collections::BTreeMap<Vec<u8>, Places> = Default::default();
            for (line, (head, shared, tail)) in words.iter().enumerate() {
                let word = format!("{head}{}{tail}", "x".repeat(*shared));
                let line = line as u64 + 1;
                for_each_word(word.as_bytes(), |w, pos| {
                    let _ = partial.add(w, 0, line, pos.column);
                    want.entry(w.as_bytes().to_vec()).or_default().push((0, line));
                });
            }
            let run = partial.into_run();
            let got: Vec<(Vec<u8>, Places)> = RunReader::new(&run).map_entries(|e| {
                let places = Locations::new(e.postings).map(|l| (l.file, l.line)).collect();
                (e.word.to_vec(), places)
            });
            let want: Vec<_> = want.into_iter().collect();
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn run_lists_words_sorted_with_their_locations() {
        let mut partial = PartialIndex::new();
        let mut add = |text: &str, file, line, column| {
            for_each_word(text.as_bytes(), |w, _| {
                assert!(!partial.add(w, file, line, column));
            });
        };
        add("zeta", 3, 1, 1);
        add("alpha", 3, 1, 6);
        add("ZETA", 3, 2, 4);
        add("alphabet", 5, 1, 1);
        let run = partial.into_run();
        let entries = entries(&run);
        let words: Vec<&[u8]> = entries.iter().map(|e| e.0.as_slice()).collect();
        assert_eq!(words, vec![&b"alpha"[..], b"alphabet", b"zeta"]);
        let zeta: Vec<_> = Locations::new(&entries[2].3)
            .map(|l| (l.file, l.line, l.column))
            .collect();
        assert_eq!(zeta, vec![(3, 1, 1), (3, 2, 4)]);
        assert_eq!(entries[2].1, 2);
        assert_eq!(entries[1].2, 5);
    }
}
