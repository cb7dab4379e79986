//! Splitting file bytes into words, with their line and column.
//!
//! The contract fixes what a word is: a maximal run of characters that are
//! `char::is_alphanumeric()` or `_`, reading the bytes as UTF-8, where bytes
//! that are not valid UTF-8 separate words. A run longer than
//! [`MAX_WORD_BYTES`] bytes as it stands in the file is not a word at all.
//!
//! Almost every byte of source code and English prose is ASCII, so the scanner
//! classifies bytes with a 256-entry table and only decodes UTF-8 when it
//! meets a byte at or above 0x80. Words are handed to the caller already
//! lowercased, in a scratch buffer the scanner reuses, so the hot path
//! allocates nothing.

/// The longest run, in bytes as stored in the file, that is indexed.
pub const MAX_WORD_BYTES: usize = 64;

const SEPARATOR: u8 = 0;
const WORD: u8 = 1;
const NON_ASCII: u8 = 2;

/// Byte classes: ASCII letters, digits and `_` are word bytes, other ASCII
/// bytes separate words, bytes >= 0x80 need UTF-8 decoding.
static CLASS: [u8; 256] = {
    let mut table = [SEPARATOR; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        table[b] = if c >= 0x80 {
            NON_ASCII
        } else if c.is_ascii_alphanumeric() || c == b'_' {
            WORD
        } else {
            SEPARATOR
        };
        b += 1;
    }
    table
};

/// One word occurrence as the scanner reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line number (lines end at `\n`).
    pub line: u64,
    /// 1-based column: bytes from the start of the line to the word's first byte, plus one.
    pub column: u64,
}

/// Decodes the UTF-8 character starting at `bytes[i]`; returns it and its
/// length, or `None` when the bytes there are not a well-formed character.
#[inline]
fn decode_char(bytes: &[u8], i: usize) -> Option<(char, usize)> {
    let lead = bytes[i];
    let len = match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return None,
    };
    let end = i.checked_add(len)?;
    let chunk = bytes.get(i..end)?;
    // `from_utf8` rejects overlong forms, surrogates and out-of-range values,
    // exactly the sequences `utf8_chunks` would report as invalid.
    let s = std::str::from_utf8(chunk).ok()?;
    s.chars().next().map(|c| (c, len))
}

/// True for the characters words are made of (the contract's rule).
#[inline]
fn is_word_char(c: char) -> bool {
    match u32::from(c) {
        0..0x10000 => BMP_WORD_CHARS.with(|chars| chars.borrow_mut().contains(c)),
        _ => c.is_alphanumeric() || c == '_',
    }
}

/// [`is_word_char`] for the Basic Multilingual Plane, remembered 64
/// characters at a time as they are first met. Outside Latin-1,
/// `char::is_alphanumeric` searches Unicode's tables on every call, and
/// the kernel's comments are full of such characters (dashes, quotes,
/// names): that search was a tenth of the tokenizer's time there.
struct WordChars {
    /// Bit `k` set: the characters `64k..64k + 64` are in `word`.
    known: [u64; 16],
    word: [u64; 1024],
}

impl WordChars {
    #[inline]
    fn contains(&mut self, c: char) -> bool {
        let code = u32::from(c) as usize;
        let (chunk, bit) = (code / 64, code % 64);
        if self.known[chunk / 64] & (1 << (chunk % 64)) == 0 {
            self.learn(chunk);
        }
        self.word[chunk] & (1 << bit) != 0
    }

    #[cold]
    fn learn(&mut self, chunk: usize) {
        let first = (chunk * 64) as u32;
        for (bit, code) in (first..first + 64).enumerate() {
            if char::from_u32(code).is_some_and(|c| c.is_alphanumeric() || c == '_') {
                self.word[chunk] |= 1 << bit;
            }
        }
        self.known[chunk / 64] |= 1 << (chunk % 64);
    }
}

thread_local! {
    static BMP_WORD_CHARS: std::cell::RefCell<WordChars> = const {
        std::cell::RefCell::new(WordChars { known: [0; 16], word: [0; 1024] })
    };
}

/// Room for the longest lowercased word: 64 bytes can grow by half under
/// `to_lowercase` (for example 'İ', two bytes, becomes three), rounded up
/// to whole 8-byte lanes.
const SCRATCH_BYTES: usize = 128;

/// Every word is zero-padded to at least this many bytes: words that
/// fit (nearly all) are then hashed, copied and compared as three whole
/// lanes, with no loop or branch that follows the word's length (whose
/// mispredictions cost more than the work on the extra lanes).
pub const MIN_PADDED: usize = 24;

/// The length a word of `len` bytes is padded to: whole 8-byte lanes, and
/// at least [`MIN_PADDED`].
#[inline]
pub fn padded_len(len: usize) -> usize {
    len.div_ceil(8).max(MIN_PADDED / 8) * 8
}

/// A lowercased word handed to the caller: its bytes, zero-padded to
/// [`padded_len`] so hashing and comparing work a lane at a time.
#[derive(Debug, Clone, Copy)]
pub struct Word<'a> {
    padded: &'a [u8],
    len: usize,
}

impl<'a> Word<'a> {
    /// The word's bytes (valid UTF-8).
    #[inline]
    pub fn as_bytes(&self) -> &'a [u8] {
        &self.padded[..self.len]
    }

    /// The bytes followed by zeros up to [`padded_len`]: a multiple of 8,
    /// at least [`MIN_PADDED`].
    #[inline]
    pub fn padded(&self) -> &'a [u8] {
        self.padded
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for the empty word (never produced by the tokenizer).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;

const HIGH_BITS: u64 = 0x80 * ONES;
const LOW_BITS: u64 = 0x7F * ONES;

/// High bit of each byte of `x7` (bytes below 0x80) set iff `lo <= byte <= hi`.
#[inline]
fn lanes_in_range(x7: u64, lo: u8, hi: u8) -> u64 {
    let at_least_lo = x7 + (0x80 - u64::from(lo)) * ONES;
    let above_hi = x7 + (0x7F - u64::from(hi)) * ONES;
    at_least_lo & !above_hi & HIGH_BITS
}

/// High bit of each byte of `x7` (bytes below 0x80) set iff the byte is `c`.
#[inline]
fn lanes_equal_to(x7: u64, c: u8) -> u64 {
    let t = x7 ^ (u64::from(c) * ONES);
    !((t + LOW_BITS) | t) & HIGH_BITS
}

/// High bit of each byte set iff it is an ASCII letter, digit or `_`.
#[inline]
fn word_lanes(x: u64) -> u64 {
    let x7 = x & LOW_BITS;
    let letters = lanes_in_range(x7 | (0x20 * ONES), b'a', b'z');
    let digits = lanes_in_range(x7, b'0', b'9');
    (letters | digits | lanes_equal_to(x7, b'_')) & !x & HIGH_BITS
}

/// High bit of each byte set iff it is `\n`.
#[inline]
fn newline_lanes(x: u64) -> u64 {
    lanes_equal_to(x & LOW_BITS, b'\n') & !x & HIGH_BITS
}

/// Lowercases the ASCII letters of 8 bytes at once (bytes >= 0x80 untouched).
#[inline]
fn ascii_lowercase_lane(x: u64) -> u64 {
    let low7 = x & (0x7F * ONES);
    let at_least_a = low7 + (0x80 - u64::from(b'A')) * ONES;
    let above_z = low7 + (0x80 - u64::from(b'Z') - 1) * ONES;
    let upper = at_least_a & !above_z & !x & (0x80 * ONES);
    x | (upper >> 2)
}

/// Writes the ASCII word `bytes[start..start + len]` lowercased into
/// `scratch`, zero-padded to [`padded_len`]; returns that length.
/// A lane at a time with whole-lane stores, so the caller's whole-lane
/// loads of the word are forwarded from the store buffer.
#[inline(always)]
fn lowercase_ascii_into(bytes: &[u8], start: usize, len: usize, scratch: &mut [u8]) -> usize {
    let padded = padded_len(len);
    let mut k = 0;
    while k < padded {
        let lane = ascii_lowercase_lane(load_lane(bytes, start + k));
        let lane = first_bytes(lane, len.saturating_sub(k));
        scratch[k..k + 8].copy_from_slice(&lane.to_le_bytes());
        k += 8;
    }
    padded
}

/// Writes the word of `len <= MIN_PADDED` bytes at `s` of a lowercased
/// block into `scratch`, zero-padded to [`MIN_PADDED`]: three lanes read
/// and masked whole, whatever the word's length.
#[inline(always)]
fn short_word_from_block(
    lower: &[u8; BLOCK_BYTES + MIN_PADDED],
    s: usize,
    len: usize,
    scratch: &mut [u8],
) -> usize {
    for k in (0..MIN_PADDED).step_by(8) {
        let lane = first_bytes(load_lane(&lower[..], s + k), len.saturating_sub(k));
        scratch[k..k + 8].copy_from_slice(&lane.to_le_bytes());
    }
    MIN_PADDED
}

/// `lane` with only its first `n` bytes kept (all of them from 8 on).
#[inline(always)]
fn first_bytes(lane: u64, n: usize) -> u64 {
    match n {
        8.. => lane,
        _ => lane & ((1u64 << (8 * n)) - 1),
    }
}

/// Loads 8 bytes at `at` (zeros past the end of `bytes`).
#[inline]
fn load_lane(bytes: &[u8], at: usize) -> u64 {
    match bytes.get(at..at + 8) {
        Some(lane) => {
            let mut buf = [0u8; 8];
            buf.copy_from_slice(lane);
            u64::from_le_bytes(buf)
        }
        None => {
            let mut buf = [0u8; 8];
            let rest = bytes.get(at..).unwrap_or_default();
            buf[..rest.len()].copy_from_slice(rest);
            u64::from_le_bytes(buf)
        }
    }
}

/// Copies `text` into `scratch` zero-padded to [`padded_len`]; returns that length.
#[inline]
fn pad_into(scratch: &mut [u8; SCRATCH_BYTES], text: &[u8]) -> usize {
    let padded = padded_len(text.len());
    scratch[..text.len()].copy_from_slice(text);
    scratch[text.len()..padded].fill(0);
    padded
}

/// Calls `emit(word, position)` for every indexable word of `bytes`, in
/// order, with `word` lowercased. Runs longer than [`MAX_WORD_BYTES`] are
/// skipped whole.
pub fn for_each_word<F: FnMut(Word<'_>, Position)>(bytes: &[u8], mut emit: F) {
    Scanner::new().scan(bytes, true, &mut emit);
}

/// Where a [`Scanner`] puts the words it finds. Any
/// `FnMut(Word, Position)` is one. The build's own type is too, with an
/// `#[inline(always)]` [`word`](WordSink::word): the compiler inlines a
/// closure into the scanner's loops only when it finds it small enough,
/// and the build's per-word code (hashing and gathering) is not, so it
/// was a call per word, compiled without the scanner's vector forms.
pub trait WordSink {
    /// Takes one word and where it starts.
    fn word(&mut self, word: Word<'_>, position: Position);

    /// Takes up to eight consecutive words of at most [`MIN_PADDED`]
    /// bytes, found at once by the AVX-512 VBMI block path. By default,
    /// one [`Word`] at a time; a sink that hashes and keeps lanes (the
    /// build's) takes them as they are.
    #[inline(always)]
    fn short_words(&mut self, words: &ShortWords) {
        for (lanes, len, position) in words.iter() {
            let padded = padded_of(lanes);
            self.word(
                Word {
                    padded: &padded,
                    len,
                },
                position,
            );
        }
    }
}

/// A short word's padded bytes (see [`Word::padded`]) from its three
/// little-endian lanes: fixed-size copies the compiler inlines, where a
/// slice copy would call memcpy.
#[inline(always)]
pub(in crate::index) fn padded_of(lanes: [u64; 3]) -> [u8; MIN_PADDED] {
    let mut padded = [0u8; MIN_PADDED];
    for (to, lane) in padded.chunks_exact_mut(8).zip(lanes) {
        to.copy_from_slice(&lane.to_le_bytes());
    }
    padded
}

/// Up to eight consecutive words of one block, each of at most
/// [`MIN_PADDED`] bytes, as the vector block path finds them: laid out so
/// that its vector registers are stored whole.
#[derive(Debug, Clone, Default)]
#[repr(C, align(64))]
pub struct ShortWords {
    /// `lanes[k][j]`: bytes `8k..8k + 8` of word `j`, lowercased and
    /// zero-padded, little-endian (as [`Word::padded`] holds them).
    pub(in crate::index) lanes: [[u64; 8]; 3],
    pub(in crate::index) len: [u64; 8],
    pub(in crate::index) line: [u64; 8],
    pub(in crate::index) column: [u64; 8],
    /// How many of the eight are words (the rest are left over).
    pub(in crate::index) count: usize,
}

impl ShortWords {
    /// Each word's three lanes, length and position, in order.
    #[inline(always)]
    pub fn iter(&self) -> impl Iterator<Item = ([u64; 3], usize, Position)> + '_ {
        (0..self.count.min(8)).map(move |j| {
            (
                [self.lanes[0][j], self.lanes[1][j], self.lanes[2][j]],
                self.len[j] as usize,
                Position {
                    line: self.line[j],
                    column: self.column[j],
                },
            )
        })
    }
}

impl<F: FnMut(Word<'_>, Position)> WordSink for F {
    #[inline(always)]
    fn word(&mut self, word: Word<'_>, position: Position) {
        self(word, position)
    }
}

/// Where a byte sequence starting at `bytes[i]` (a byte >= 0x80) is cut
/// short by the end of `bytes`: a lead byte whose continuation bytes have
/// not all arrived. More bytes may make it a character.
#[inline]
fn cut_short(bytes: &[u8], i: usize) -> bool {
    let need = match bytes[i] {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return false,
    };
    i + need > bytes.len() && bytes[i + 1..].iter().all(|&b| (0x80..0xC0).contains(&b))
}

/// The words of a file read a window at a time: the line count and where
/// the current line began carry from one window to the next, and a word
/// that may go on past a window's end is left for the next call, so a word
/// is never split and a file's size never sets the memory needed.
///
/// Positions are 64-bit: a column or line past 2^32 is exact, not capped.
#[derive(Debug, Clone)]
pub struct Scanner {
    /// Current 1-based line.
    line: u64,
    /// Offset in the file of the current line's first byte.
    line_start: u64,
    /// Offset in the file of the next byte to scan.
    offset: u64,
    /// In the middle of a run already too long to be a word: the next
    /// window starts by skipping the rest of it.
    skipping: bool,
    /// The block path this CPU runs best.
    path: BlockPath,
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

impl Scanner {
    /// A scanner at the start of a file.
    pub fn new() -> Self {
        Scanner {
            line: 1,
            line_start: 0,
            offset: 0,
            skipping: false,
            path: BlockPath::best(),
        }
    }

    /// A scanner at the start of line `line`, which begins at `offset` in
    /// the file (for reading a file from the middle).
    pub fn at_line(line: u64, offset: u64) -> Self {
        Scanner {
            line,
            line_start: offset,
            offset,
            skipping: false,
            path: BlockPath::best(),
        }
    }

    /// Offset in the file of the next byte to scan.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Passes over `len` bytes that hold no newline and no word (a hole of
    /// a sparse file reads as NUL bytes): they end any word in progress.
    pub fn skip_separators(&mut self, len: u64) {
        self.offset += len;
        self.skipping = false;
    }

    /// Scans `bytes`, the file's bytes from [`offset`](Self::offset) on,
    /// calling `emit` for each word. Unless `last`, a word or character
    /// that may go on past the end of `bytes` is not scanned: returns how
    /// many bytes were consumed, and the caller passes the rest again,
    /// followed by the next bytes of the file. At most
    /// [`MAX_WORD_BYTES`] + 3 bytes are left.
    ///
    /// The build's hot loop (every byte of every file passes here), kept
    /// as one function on purpose: its ASCII fast paths share their state
    /// in locals, and splitting it would pass that state through calls in
    /// the innermost loop.
    pub fn scan<S: WordSink + ?Sized>(&mut self, bytes: &[u8], last: bool, emit: &mut S) -> usize {
        let mut scratch = [0u8; SCRATCH_BYTES];
        let n = bytes.len();
        let base = self.offset;
        let mut line = self.line;
        // Where the current line began, relative to `bytes` (it may lie
        // before it, in an earlier window: hence wrapping arithmetic).
        let mut line_start = self.line_start.wrapping_sub(base);
        let mut i = 0usize;
        let mut consumed = n;
        if self.skipping {
            let (end, done) = skip_word_chars(bytes, 0, last);
            i = end;
            if !done {
                self.offset = base + i as u64;
                return i;
            }
            self.skipping = false;
        }
        // The block path is not tried again before here (a block there held
        // non-ASCII bytes).
        let mut blocks_from = 0usize;
        'scan: while i < n {
            if i >= blocks_from && i + BLOCK_BYTES <= n {
                let mut state = BlockState {
                    path: self.path,
                    line: &mut line,
                    line_start: &mut line_start,
                    scratch: &mut scratch,
                    emit: &mut *emit,
                };
                let (next, tried) = scan_ascii_blocks(bytes, i, &mut state);
                i = next;
                if let Some(retry) = tried {
                    blocks_from = retry;
                }
            }
            // Skip separators eight bytes at a time, counting the newlines passed.
            while i + 8 <= n {
                let lane = load_lane(bytes, i);
                let stop = word_lanes(lane) | (lane & HIGH_BITS);
                let passed = if stop == 0 {
                    u64::MAX
                } else {
                    (stop & stop.wrapping_neg()) - 1
                };
                let newlines = newline_lanes(lane) & passed;
                if newlines != 0 {
                    line += u64::from(newlines.count_ones());
                    line_start = (i + (63 - newlines.leading_zeros() as usize) / 8 + 1) as u64;
                }
                if stop == 0 {
                    i += 8;
                } else {
                    i += stop.trailing_zeros() as usize / 8;
                    break;
                }
            }
            if i >= n {
                break;
            }
            let b = bytes[i];
            match CLASS[b as usize] {
                SEPARATOR => {
                    if b == b'\n' {
                        line += 1;
                        line_start = i as u64 + 1;
                    }
                    i += 1;
                    continue;
                }
                WORD => {}
                _ => match decode_char(bytes, i) {
                    Some((c, _)) if is_word_char(c) => {}
                    Some((_, len)) => {
                        i += len;
                        continue;
                    }
                    None if !last && cut_short(bytes, i) => {
                        consumed = i;
                        break 'scan;
                    }
                    None => {
                        i += 1;
                        continue;
                    }
                },
            }
            // A word starts at `i`: find its end eight bytes at a time, decoding
            // only non-ASCII bytes.
            let start = i;
            let mut ascii = true;
            loop {
                loop {
                    if i + 8 > n {
                        while i < n && CLASS[bytes[i] as usize] == WORD {
                            i += 1;
                        }
                        break;
                    }
                    let other = !word_lanes(load_lane(bytes, i)) & HIGH_BITS;
                    if other == 0 {
                        i += 8;
                    } else {
                        i += other.trailing_zeros() as usize / 8;
                        break;
                    }
                }
                if i < n && CLASS[bytes[i] as usize] == NON_ASCII {
                    match decode_char(bytes, i) {
                        Some((c, len)) if is_word_char(c) => {
                            ascii = false;
                            i += len;
                            continue;
                        }
                        _ => break,
                    }
                }
                break;
            }
            // Only a byte >= 0x80 can start a character cut short.
            if !last && (i == n || (bytes[i] >= 0x80 && cut_short(bytes, i))) {
                // The run may go on in the next window.
                if i - start <= MAX_WORD_BYTES {
                    consumed = start;
                } else {
                    // Already too long to be a word: skip the rest of it.
                    self.skipping = true;
                    consumed = i;
                }
                break 'scan;
            }
            let len = i - start;
            if len > MAX_WORD_BYTES {
                continue;
            }
            let position = Position {
                line,
                column: (start as u64).wrapping_sub(line_start) + 1,
            };
            if ascii {
                let k = lowercase_ascii_into(bytes, start, len, &mut scratch);
                emit.word(
                    Word {
                        padded: &scratch[..k],
                        len,
                    },
                    position,
                );
            } else {
                // `str::to_lowercase`, not per-char lowercasing: the contract
                // wants its word-final sigma rule too. The scan above accepted
                // only well-formed characters.
                let lower = std::str::from_utf8(&bytes[start..i])
                    .unwrap_or_default()
                    .to_lowercase();
                let text = &lower.as_bytes()[..lower.len().min(SCRATCH_BYTES)];
                let padded = pad_into(&mut scratch, text);
                emit.word(
                    Word {
                        padded: &scratch[..padded],
                        len: text.len(),
                    },
                    position,
                );
            }
        }
        self.line = line;
        self.line_start = line_start.wrapping_add(base);
        self.offset = base + consumed as u64;
        consumed
    }
}

/// Bytes of a block of the block path.
const BLOCK_BYTES: usize = 64;

/// The 64 bytes at `at`, if there are that many.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn block_at(bytes: &[u8], at: usize) -> Option<&[u8; BLOCK_BYTES]> {
    bytes.get(at..at + BLOCK_BYTES)?.try_into().ok()
}

/// For the 64 bytes at `at`, if all are ASCII: bit i set when byte i is a
/// word byte, and bit i set when it is a newline.
#[inline]
fn ascii_block_masks(bytes: &[u8], at: usize) -> Option<(u64, u64)> {
    #[cfg(target_arch = "x86_64")]
    {
        sse2_block_masks(block_at(bytes, at)?)
    }
    #[cfg(not(target_arch = "x86_64"))]
    swar_block_masks(bytes, at)
}

/// [`ascii_block_masks`] sixteen bytes at a time: SSE2 is part of every
/// x86-64, so this needs no feature detection.
#[cfg(target_arch = "x86_64")]
#[inline]
fn sse2_block_masks(block: &[u8; BLOCK_BYTES]) -> Option<(u64, u64)> {
    use core::arch::x86_64::*;
    let (mut high, mut words, mut newlines) = (0u64, 0u64, 0u64);
    for k in 0..BLOCK_BYTES / 16 {
        // SAFETY: SSE2 is baseline on x86-64; the load reads the 16 bytes
        // at `16 * k` of a 64-byte array, unaligned loads allowed.
        let (h, w, n) = unsafe {
            let x = _mm_loadu_si128(block.as_ptr().add(16 * k).cast());
            // Unsigned `x - lo <= span`, as min(x - lo, span) == x - lo.
            let within = |x: __m128i, lo: u8, span: u8| {
                let t = _mm_sub_epi8(x, _mm_set1_epi8(lo as i8));
                _mm_cmpeq_epi8(_mm_min_epu8(t, _mm_set1_epi8(span as i8)), t)
            };
            let letters = within(_mm_or_si128(x, _mm_set1_epi8(0x20)), b'a', 25);
            let digits = within(x, b'0', 9);
            let underscore = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'_' as i8));
            let word = _mm_or_si128(_mm_or_si128(letters, digits), underscore);
            let newline = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'\n' as i8));
            (
                _mm_movemask_epi8(x) as u16,
                _mm_movemask_epi8(word) as u16,
                _mm_movemask_epi8(newline) as u16,
            )
        };
        high |= u64::from(h);
        words |= u64::from(w) << (16 * k);
        newlines |= u64::from(n) << (16 * k);
    }
    (high == 0).then_some((words, newlines))
}

/// [`ascii_block_masks`] by AVX-512BW: each class of the 64 bytes is one
/// compare straight to a mask.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw")]
fn avx512_block_masks(block: &[u8; BLOCK_BYTES]) -> Option<(u64, u64)> {
    // SAFETY: the load reads the 64 bytes of `block`, unaligned allowed.
    avx512_masks_of(unsafe { core::arch::x86_64::_mm512_loadu_si512(block.as_ptr().cast()) })
}

/// [`avx512_block_masks`] of a block already in a register.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw")]
#[inline]
fn avx512_masks_of(x: core::arch::x86_64::__m512i) -> Option<(u64, u64)> {
    use core::arch::x86_64::*;
    if _mm512_movepi8_mask(x) != 0 {
        return None;
    }
    let letters = avx512_within(_mm512_or_si512(x, _mm512_set1_epi8(0x20)), b'a', 25);
    let digits = avx512_within(x, b'0', 9);
    let underscore = _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8(b'_' as i8));
    let newlines = _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8(b'\n' as i8));
    Some((letters | digits | underscore, newlines))
}

/// The bytes of `x` from `lo` to `lo + span`, as a mask (unsigned
/// `x - lo <= span`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw")]
#[inline]
fn avx512_within(x: core::arch::x86_64::__m512i, lo: u8, span: u8) -> u64 {
    use core::arch::x86_64::*;
    _mm512_cmple_epu8_mask(
        _mm512_sub_epi8(x, _mm512_set1_epi8(lo as i8)),
        _mm512_set1_epi8(span as i8),
    )
}

/// [`ascii_block_masks`] by AVX2, thirty-two bytes at a time, writing the
/// block lowercased into `lower`'s first 64 bytes as it goes (whatever
/// the block holds; the copy only counts for an ASCII block).
///
/// A byte's class comes from two 16-entry tables, one looked up by its low
/// nibble and one by its high (`vpshufb`), ANDed: a bit for digits, one for
/// the underscore, and one for each half of the letters (`A-O`/`a-o`, whose
/// low nibble is 1 to 15, and `P-Z`/`p-z`, 0 to 10). The letter bits are
/// 0x20 and 0x40, so their minimum with 0x20 is what lowercases a letter.
/// Against a range compare for each class and another for the copy's
/// capitals, it takes 11 vector operations for 32 bytes instead of 17
/// (tokenize -2.7% and -1.5% in two sets of 8 interleaved kernel builds
/// on a Zen 3).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn avx2_block_masks(
    block: &[u8; BLOCK_BYTES],
    lower: &mut [u8; BLOCK_BYTES + MIN_PADDED],
) -> Option<(u64, u64)> {
    use core::arch::x86_64::*;
    const DIGIT: i8 = 0x01;
    const UNDERSCORE: i8 = 0x02;
    const A_TO_O: i8 = 0x20;
    const P_TO_Z: i8 = 0x40;
    // By low nibble: which classes a byte of that nibble may be in.
    #[rustfmt::skip]
    let by_low = _mm256_broadcastsi128_si256(_mm_setr_epi8(
        DIGIT | P_TO_Z,
        DIGIT | A_TO_O | P_TO_Z, DIGIT | A_TO_O | P_TO_Z, DIGIT | A_TO_O | P_TO_Z,
        DIGIT | A_TO_O | P_TO_Z, DIGIT | A_TO_O | P_TO_Z, DIGIT | A_TO_O | P_TO_Z,
        DIGIT | A_TO_O | P_TO_Z, DIGIT | A_TO_O | P_TO_Z, DIGIT | A_TO_O | P_TO_Z,
        A_TO_O | P_TO_Z,
        A_TO_O, A_TO_O, A_TO_O, A_TO_O,
        A_TO_O | UNDERSCORE,
    ));
    // By high nibble (0x3_ digits, 0x4_/0x6_ and 0x5_/0x7_ letters, 0x5F
    // the underscore; nothing from 0x8_ on).
    #[rustfmt::skip]
    let by_high = _mm256_broadcastsi128_si256(_mm_setr_epi8(
        0, 0, 0, DIGIT, A_TO_O, P_TO_Z | UNDERSCORE, A_TO_O, P_TO_Z,
        0, 0, 0, 0, 0, 0, 0, 0,
    ));
    let nibble = _mm256_set1_epi8(0x0F);
    let (mut high, mut words, mut newlines) = (0u32, 0u64, 0u64);
    for k in 0..BLOCK_BYTES / 32 {
        // SAFETY: the load reads the 32 bytes at `32 * k` of a 64-byte
        // array, unaligned allowed.
        let x = unsafe { _mm256_loadu_si256(block.as_ptr().add(32 * k).cast()) };
        let low = _mm256_and_si256(x, nibble);
        let top = _mm256_and_si256(_mm256_srli_epi16(x, 4), nibble);
        let class = _mm256_and_si256(
            _mm256_shuffle_epi8(by_low, low),
            _mm256_shuffle_epi8(by_high, top),
        );
        let letter = _mm256_and_si256(class, _mm256_set1_epi8(A_TO_O | P_TO_Z));
        let lowered = _mm256_or_si256(x, _mm256_min_epu8(letter, _mm256_set1_epi8(0x20)));
        // SAFETY: the store writes 32 of `lower`'s first 64 bytes.
        unsafe { _mm256_storeu_si256(lower.as_mut_ptr().add(32 * k).cast(), lowered) };
        let other = _mm256_cmpeq_epi8(class, _mm256_setzero_si256());
        let newline = _mm256_cmpeq_epi8(x, _mm256_set1_epi8(b'\n' as i8));
        high |= _mm256_movemask_epi8(x) as u32;
        words |= u64::from(!(_mm256_movemask_epi8(other) as u32)) << (32 * k);
        newlines |= u64::from(_mm256_movemask_epi8(newline) as u32) << (32 * k);
    }
    (high == 0).then_some((words, newlines))
}

#[cfg(any(not(target_arch = "x86_64"), test))]
#[inline]
fn swar_block_masks(bytes: &[u8], at: usize) -> Option<(u64, u64)> {
    let mut high = 0u64;
    let mut words = 0u64;
    let mut newlines = 0u64;
    for k in 0..BLOCK_BYTES / 8 {
        let lane = load_lane(bytes, at + 8 * k);
        high |= lane;
        words |= gather_high_bits(word_lanes(lane)) << (8 * k);
        newlines |= gather_high_bits(newline_lanes(lane)) << (8 * k);
    }
    (high & HIGH_BITS == 0).then_some((words, newlines))
}

/// The high bit of each byte of `x` (the only bits set), as 8 bits.
#[cfg(any(not(target_arch = "x86_64"), test))]
#[inline]
fn gather_high_bits(x: u64) -> u64 {
    ((x >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

/// The block path: from `i` (not inside a word), every word lying wholly
/// inside a block of 64 ASCII bytes is found from two bit masks, words and
/// newlines, computed once for the block (with SSE2 on x86-64: 13.8 ns a
/// word on kernel C, where the lane path alone took 17.9). A word that
/// touches a block's end starts the next block, which then holds it.
/// Returns where it stopped, for the lane path to take over (fewer than
/// 64 bytes left, a run of 64 word bytes, or a block that is not ASCII)
/// and, when it gave up on a block, where to try again.
///
/// The baseline x86-64 build may not use POPCNT, BMI or LZCNT: without
/// them each newline count is a dozen instructions and each variable
/// shift three. So where the CPU has them the whole path, with the
/// caller's `emit` (hashing and gathering each word) inlined into it, is
/// compiled once more with AVX2 or AVX-512BW and chosen at run time (see
/// [`BlockPath`]).
#[inline(never)]
fn scan_ascii_blocks<S: WordSink + ?Sized>(
    bytes: &[u8],
    i: usize,
    state: &mut BlockState<'_, S>,
) -> (usize, Option<usize>) {
    match state.path {
        // SAFETY (both): a Scanner's path is one that `runs_here`: the CPU
        // has every feature the function enables.
        #[cfg(target_arch = "x86_64")]
        BlockPath::Avx512Vbmi => unsafe { scan_ascii_blocks_vbmi(bytes, i, state) },
        #[cfg(target_arch = "x86_64")]
        BlockPath::Avx512 => unsafe { scan_ascii_blocks_avx512(bytes, i, state) },
        #[cfg(target_arch = "x86_64")]
        BlockPath::Avx2 => unsafe { scan_ascii_blocks_avx2(bytes, i, state) },
        BlockPath::Baseline => scan_ascii_blocks_by(bytes, i, state, ascii_block_masks),
    }
}

/// What the block path reads and moves on: the line and where it starts,
/// the lowercasing buffer, and where words go.
struct BlockState<'s, S: ?Sized> {
    path: BlockPath,
    line: &'s mut u64,
    line_start: &'s mut u64,
    scratch: &'s mut [u8; SCRATCH_BYTES],
    emit: &'s mut S,
}

/// Which compiled form of the block path runs: chosen once per
/// [`Scanner`], from what the CPU has. On an AMD Zen 3 (AVX2, no AVX-512)
/// the AVX2 form, word by word, tokenized kernel drivers at 14.8-15.7 ns
/// a word and the baseline at 16.8-17.7; in groups it takes about a
/// quarter off a kernel build's tokenize phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockPath {
    /// What any CPU of the target runs: SSE2 on x86-64, eight-byte lanes
    /// elsewhere.
    Baseline,
    /// AVX2, POPCNT, BMI and LZCNT (x86-64-v3: most x86-64 CPUs since
    /// 2015).
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX-512BW, POPCNT, BMI and LZCNT.
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// AVX-512 with VBMI, DQ, CD and VPOPCNTDQ as well (Ice Lake, Zen 4
    /// and later): eight words of a block found, lowercased, placed and
    /// measured at once (see [`scan_ascii_blocks_vbmi`]).
    #[cfg(target_arch = "x86_64")]
    Avx512Vbmi,
}

impl BlockPath {
    /// The fastest form this CPU runs.
    fn best() -> Self {
        let vector_forms: &[BlockPath] = &[
            #[cfg(target_arch = "x86_64")]
            BlockPath::Avx512Vbmi,
            #[cfg(target_arch = "x86_64")]
            BlockPath::Avx512,
            #[cfg(target_arch = "x86_64")]
            BlockPath::Avx2,
        ];
        vector_forms
            .iter()
            .copied()
            .find(|path| path.runs_here())
            .unwrap_or(BlockPath::Baseline)
    }

    /// Whether this CPU has every feature the form is compiled for (the
    /// detection is cached by `std`).
    fn runs_here(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let bits = || has!("popcnt") && has!("bmi1") && has!("bmi2") && has!("lzcnt");
            match self {
                BlockPath::Baseline => true,
                BlockPath::Avx2 => has!("avx2") && bits(),
                BlockPath::Avx512 => has!("avx512bw") && bits(),
                BlockPath::Avx512Vbmi => {
                    has!("avx512f")
                        && has!("avx512bw")
                        && has!("avx512vbmi")
                        && has!("avx512vbmi2")
                        && has!("avx512dq")
                        && has!("avx512cd")
                        && has!("avx512vpopcntdq")
                        && bits()
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        matches!(self, BlockPath::Baseline)
    }

    /// Every form this CPU runs, the baseline first (for tests that check
    /// the forms against each other).
    #[cfg(test)]
    fn runnable() -> Vec<Self> {
        let all = [
            BlockPath::Baseline,
            #[cfg(target_arch = "x86_64")]
            BlockPath::Avx2,
            #[cfg(target_arch = "x86_64")]
            BlockPath::Avx512,
            #[cfg(target_arch = "x86_64")]
            BlockPath::Avx512Vbmi,
        ];
        all.into_iter().filter(|path| path.runs_here()).collect()
    }
}

/// [`scan_ascii_blocks`] compiled for AVX-512BW, POPCNT, BMI and LZCNT.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw,popcnt,bmi1,bmi2,lzcnt")]
unsafe fn scan_ascii_blocks_avx512<S: WordSink + ?Sized>(
    bytes: &[u8],
    i: usize,
    state: &mut BlockState<'_, S>,
) -> (usize, Option<usize>) {
    scan_ascii_blocks_by(bytes, i, state, |bytes, at| {
        avx512_block_masks(block_at(bytes, at)?)
    })
}

/// A block's byte offsets, 0 to 63, in order.
#[cfg(target_arch = "x86_64")]
const OFFSETS: [u8; BLOCK_BYTES] = {
    let mut offsets = [0u8; BLOCK_BYTES];
    let mut k = 0;
    while k < BLOCK_BYTES {
        offsets[k] = k as u8;
        k += 1;
    }
    offsets
};

/// [`scan_ascii_blocks`] with the words of a block taken eight at a time:
/// their starts and ends packed from the block's masks (VBMI2), then each group's
/// lanes picked out of the lowercased block by one byte permute per lane
/// (VBMI) and masked to the word, and each word's line and column counted
/// from the newline mask (VPOPCNTDQ, CD), all in vector registers that are
/// stored whole into a [`ShortWords`] for the sink. Kernel C has about
/// five words per block; one at a time, each took a dozen dependent scalar
/// steps and the sink read its lanes back from memory. A block holding a
/// word longer than [`MIN_PADDED`] bytes (rare) goes word by word.
#[cfg(target_arch = "x86_64")]
#[target_feature(
    enable = "avx512f,avx512bw,avx512vbmi,avx512vbmi2,avx512dq,avx512cd,avx512vpopcntdq,popcnt,bmi1,bmi2,lzcnt"
)]
unsafe fn scan_ascii_blocks_vbmi<S: WordSink + ?Sized>(
    bytes: &[u8],
    mut i: usize,
    state: &mut BlockState<'_, S>,
) -> (usize, Option<usize>) {
    use core::arch::x86_64::*;
    let mut lower = [0u8; BLOCK_BYTES + MIN_PADDED];
    // Word starts and ends in the block, as byte offsets (eight more than
    // a block can hold, so a group of eight is always read whole).
    let (mut starts_at, mut ends_at) = ([0u8; BLOCK_BYTES + 8], [0u8; BLOCK_BYTES + 8]);
    let mut group = ShortWords::default();
    let one = _mm512_set1_epi64(1);
    let sixty_four = _mm512_set1_epi64(64);
    let all_bits = _mm512_set1_epi64(-1);
    let byte_ones = _mm512_set1_epi64(ONES as i64);
    let lane_offsets = _mm512_set1_epi64(0x0706_0504_0302_0100);
    let next_lane = _mm512_set1_epi8(8);
    // SAFETY: the array is 64 readable bytes.
    let offsets = unsafe { _mm512_loadu_si512(OFFSETS.as_ptr().cast()) };
    while let Some(block) = bytes.get(i..i + BLOCK_BYTES) {
        // SAFETY: `block` is 64 readable bytes; unaligned loads are allowed.
        let x = unsafe { _mm512_loadu_si512(block.as_ptr().cast()) };
        let Some((words, newlines)) = avx512_masks_of(x) else {
            return (i, Some(i + BLOCK_BYTES));
        };
        let upper = avx512_within(x, b'A', 25);
        let lowered = _mm512_mask_blend_epi8(upper, x, _mm512_or_si512(x, _mm512_set1_epi8(0x20)));
        let (starts, ends, mut stop) = word_bounds(words);
        // Every start and end offset at once, packed to the front of a
        // vector (VBMI2's byte compress of the offsets 0 to 63), where a
        // loop over the masks' bits took a step and a mispredicted exit
        // per block. The rest of each vector is zeros, so a length is
        // found long only among the block's words.
        let count = starts.count_ones() as usize;
        let (starts_v, ends_v) = (
            _mm512_maskz_compress_epi8(starts, offsets),
            _mm512_maskz_compress_epi8(ends, offsets),
        );
        let long = _mm512_cmpge_epu8_mask(
            _mm512_sub_epi8(ends_v, starts_v),
            _mm512_set1_epi8(MIN_PADDED as i8),
        ) != 0;
        // SAFETY: each store writes the first 64 bytes of its array.
        unsafe {
            _mm512_storeu_si512(starts_at.as_mut_ptr().cast(), starts_v);
            _mm512_storeu_si512(ends_at.as_mut_ptr().cast(), ends_v);
        }
        if long {
            // SAFETY: `lower` has room for the 64 bytes stored.
            unsafe { _mm512_storeu_si512(lower.as_mut_ptr().cast(), lowered) };
            stop = block_words(bytes, i, words, newlines, &lower, state);
        } else {
            let newline_bits = _mm512_set1_epi64(newlines as i64);
            let base_line = _mm512_set1_epi64(*state.line as i64);
            let line_start = _mm512_set1_epi64(*state.line_start as i64);
            let block_at = _mm512_set1_epi64(i as i64);
            let fill = |group: &mut ShortWords, first: usize| {
                // SAFETY: `first + 8` is within the arrays (count <= 32).
                let (s, e) = unsafe {
                    (
                        _mm512_cvtepu8_epi64(_mm_loadl_epi64(starts_at.as_ptr().add(first).cast())),
                        _mm512_cvtepu8_epi64(_mm_loadl_epi64(ends_at.as_ptr().add(first).cast())),
                    )
                };
                let len = _mm512_add_epi64(_mm512_sub_epi64(e, s), one);
                // Byte indexes s, s + 1, ..., s + 7 in each word's lane (a
                // start is below 64, so the multiply carries nothing).
                let picks = _mm512_add_epi64(_mm512_mullo_epi64(s, byte_ones), lane_offsets);
                let bits = _mm512_slli_epi64::<3>(len);
                let mut picks_k = picks;
                for k in 0..3 {
                    // Lane k keeps the word's bytes 8k to its end: all ones
                    // shifted right by 64 less their bits (0 to 64); what
                    // the permute read past the word (or wrapped to the
                    // block's start) is masked away.
                    let kept = _mm512_min_epi64(
                        _mm512_max_epi64(
                            _mm512_sub_epi64(bits, _mm512_set1_epi64(64 * k as i64)),
                            _mm512_setzero_si512(),
                        ),
                        sixty_four,
                    );
                    let mask = _mm512_srlv_epi64(all_bits, _mm512_sub_epi64(sixty_four, kept));
                    let lane = _mm512_and_si512(_mm512_permutexvar_epi8(picks_k, lowered), mask);
                    // SAFETY: the store writes the 64 bytes of one array.
                    unsafe { _mm512_storeu_si512(group.lanes[k].as_mut_ptr().cast(), lane) };
                    picks_k = _mm512_add_epi8(picks_k, next_lane);
                }
                // The newlines before each word: its line, and where the
                // last of them ends its line start (else the block's).
                let before = _mm512_and_si512(
                    newline_bits,
                    _mm512_sub_epi64(_mm512_sllv_epi64(one, s), one),
                );
                let lines = _mm512_add_epi64(base_line, _mm512_popcnt_epi64(before));
                let starts_line = _mm512_mask_blend_epi64(
                    _mm512_test_epi64_mask(before, before),
                    line_start,
                    _mm512_sub_epi64(
                        _mm512_add_epi64(block_at, sixty_four),
                        _mm512_lzcnt_epi64(before),
                    ),
                );
                let columns = _mm512_add_epi64(
                    _mm512_sub_epi64(_mm512_add_epi64(block_at, s), starts_line),
                    one,
                );
                // SAFETY: each store writes the 64 bytes of one array.
                unsafe {
                    _mm512_storeu_si512(group.len.as_mut_ptr().cast(), len);
                    _mm512_storeu_si512(group.line.as_mut_ptr().cast(), lines);
                    _mm512_storeu_si512(group.column.as_mut_ptr().cast(), columns);
                }
            };
            emit_short_words(count, &mut group, state, (i, newlines, stop), fill);
        }
        i += stop as usize;
        if stop == 0 {
            return (i, None);
        }
    }
    (i, None)
}

/// [`scan_ascii_blocks`] for AVX2, POPCNT, BMI and LZCNT, with the words of
/// a block taken eight at a time, as [`scan_ascii_blocks_vbmi`] does
/// without its byte compress and permute: each word's start and end come
/// off the two masks by `tzcnt` and `blsr` (two short chains of their
/// own), and its lanes, line and column are found from them alone, never
/// from the word before. Word by word, each step waited on the last: the
/// next word's start on this one's length, the line on a counter kept in
/// memory; on an AMD Zen 3 that loop took 16-17 ns a kernel word. A block
/// holding a word longer than [`MIN_PADDED`] bytes goes word by word (a
/// quarter of the blocks in some kernel folders; taking those words from
/// the masks too was measured no faster, the sink's cost being the same).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt,bmi1,bmi2,lzcnt")]
unsafe fn scan_ascii_blocks_avx2<S: WordSink + ?Sized>(
    bytes: &[u8],
    mut i: usize,
    state: &mut BlockState<'_, S>,
) -> (usize, Option<usize>) {
    use core::arch::x86_64::*;
    // The block lowercased, and zeros after it: each lane of a short word
    // is one unaligned load from here, wherever the word lies.
    let mut lower = [0u8; BLOCK_BYTES + MIN_PADDED];
    let mut group = ShortWords::default();
    while let Some(block) = block_at(bytes, i) {
        let Some((words, newlines)) = avx2_block_masks(block, &mut lower) else {
            return (i, Some(i + BLOCK_BYTES));
        };
        let (mut starts, mut ends, mut stop) = word_bounds(words);
        if has_run_longer_than_padded(words) {
            stop = block_words(bytes, i, words, newlines, &lower, state);
        } else {
            let count = starts.count_ones() as usize;
            let (base_line, line_start) = (*state.line, *state.line_start);
            let fill = |group: &mut ShortWords, first: usize| {
                // Only the group's words: a loop of always eight (past
                // the block's words reading starts and ends of 64) did
                // the work of a block's five words eight times, and cost
                // more than the loop's exit mispredicted (tokenize -5.5%).
                // The rest of the group is left over, as `count` says.
                for j in 0..(count - first).min(8) {
                    let (s, e) = (starts.trailing_zeros(), ends.trailing_zeros());
                    starts &= starts.wrapping_sub(1);
                    ends &= ends.wrapping_sub(1);
                    let len = e + 1 - s;
                    let bits = u64::from(8 * len);
                    let at = lower.as_ptr().wrapping_add(s as usize);
                    for (k, lanes) in group.lanes.iter_mut().enumerate() {
                        // SAFETY: `s <= 64`, so the 8 bytes at `s + 8k`
                        // (k < 3) lie inside `lower`'s 88.
                        let lane = unsafe { at.add(8 * k).cast::<u64>().read_unaligned() };
                        // `bzhi` keeps the low `bits - 64k` bits: all from
                        // 64 on, none at 0.
                        lanes[j] = _bzhi_u64(lane, bits.saturating_sub(64 * k as u64) as u32);
                    }
                    // The newlines before the word: its line, and its
                    // column from the last of them (else from the line's
                    // start before the block).
                    let before = _bzhi_u64(newlines, s);
                    group.len[j] = u64::from(len);
                    group.line[j] = base_line + u64::from(before.count_ones());
                    group.column[j] = if before != 0 {
                        u64::from(s + before.leading_zeros()) - 63
                    } else {
                        ((i + s as usize) as u64).wrapping_sub(line_start) + 1
                    };
                }
            };
            emit_short_words(count, &mut group, state, (i, newlines, stop), fill);
        }
        i += stop as usize;
        if stop == 0 {
            // A run of 64 word bytes: too long for a block (and perhaps to
            // be a word at all).
            return (i, None);
        }
    }
    (i, None)
}

/// Hands the sink a block's `count` short words eight at a time, `fill`
/// first placing words `first..first + 8` of them in the group; then moves
/// the line on past the newlines of the block at `i` before `stop`.
#[inline(always)]
fn emit_short_words<S: WordSink + ?Sized>(
    count: usize,
    group: &mut ShortWords,
    state: &mut BlockState<'_, S>,
    (i, newlines, stop): (usize, u64, u32),
    mut fill: impl FnMut(&mut ShortWords, usize),
) {
    let mut first = 0;
    while first < count {
        fill(group, first);
        group.count = (count - first).min(8);
        state.emit.short_words(group);
        first += 8;
    }
    pass_newlines(newlines, stop, i, state.line, state.line_start);
}

/// The words of a block, from its word mask: a mask of their first bytes,
/// one of their last bytes, and where they stop (64, or the start of the
/// word that touches the block's end, which is left out of both masks:
/// the next block starts there and holds it).
#[inline(always)]
fn word_bounds(words: u64) -> (u64, u64, u32) {
    let mut starts = words & !(words << 1);
    let ends = words & !(words >> 1) & !(1 << 63);
    let mut stop = BLOCK_BYTES as u32;
    if words >> 63 != 0 {
        stop = 63 - starts.leading_zeros();
        starts &= !(1 << stop);
    }
    (starts, ends, stop)
}

/// Whether `words` (a block's word mask) holds a run of more than
/// [`MIN_PADDED`] set bits: a word too long for three lanes.
#[inline(always)]
fn has_run_longer_than_padded(words: u64) -> bool {
    // Bit p of `runs_n` is set when bits p to p + n - 1 all are.
    let runs_2 = words & (words >> 1);
    let runs_4 = runs_2 & (runs_2 >> 2);
    let runs_8 = runs_4 & (runs_4 >> 4);
    let runs_16 = runs_8 & (runs_8 >> 8);
    let runs_24 = runs_16 & (runs_8 >> 16);
    const _: () = assert!(MIN_PADDED == 24);
    runs_24 & (words >> 24) != 0
}

/// [`scan_ascii_blocks`] with `masks` making each block's two masks
/// (inlined into each caller, so it is compiled for its features).
#[inline(always)]
fn scan_ascii_blocks_by<S: WordSink + ?Sized>(
    bytes: &[u8],
    mut i: usize,
    state: &mut BlockState<'_, S>,
    masks: impl Fn(&[u8], usize) -> Option<(u64, u64)>,
) -> (usize, Option<usize>) {
    // The block lowercased, and zeros after it: a short word's three lanes
    // are read from here whole, wherever it lies in the block.
    let mut lower = [0u8; BLOCK_BYTES + MIN_PADDED];
    while i + BLOCK_BYTES <= bytes.len() {
        let Some((words, newlines)) = masks(bytes, i) else {
            return (i, Some(i + BLOCK_BYTES));
        };
        for k in 0..BLOCK_BYTES / 8 {
            let lane = ascii_lowercase_lane(load_lane(bytes, i + 8 * k));
            lower[8 * k..8 * k + 8].copy_from_slice(&lane.to_le_bytes());
        }
        let stop = block_words(bytes, i, words, newlines, &lower, state);
        i += stop as usize;
        if stop == 0 {
            // A run of 64 word bytes: too long for a block (and perhaps to
            // be a word at all).
            return (i, None);
        }
        // Otherwise the next block starts at the word that touched this
        // one's end, so the word lies inside it.
    }
    (i, None)
}

/// Gives every word lying wholly inside the ASCII block at `i` (its word
/// and newline masks, and its bytes lowercased in `lower`) one at a time,
/// and moves the line on past the block; returns where the block's words
/// stop: 64, or the start of the word that touches the block's end.
#[inline(always)]
fn block_words<S: WordSink + ?Sized>(
    bytes: &[u8],
    i: usize,
    mut words: u64,
    mut newlines: u64,
    lower: &[u8; BLOCK_BYTES + MIN_PADDED],
    state: &mut BlockState<'_, S>,
) -> u32 {
    let (line, line_start) = (&mut *state.line, &mut *state.line_start);
    let (scratch, emit) = (&mut *state.scratch, &mut *state.emit);
    let mut stop = BLOCK_BYTES as u32;
    while words != 0 {
        let s = words.trailing_zeros();
        let len = (!(words >> s)).trailing_zeros();
        if s + len >= BLOCK_BYTES as u32 {
            // Touches the block's end: the lane path takes it.
            stop = s;
            break;
        }
        let before = newlines & ((1u64 << s) - 1);
        if before != 0 {
            *line += u64::from(before.count_ones());
            *line_start = (i + 64 - before.leading_zeros() as usize) as u64;
            newlines &= !before;
        }
        let (start, len) = (i + s as usize, len as usize);
        let k = if len <= MIN_PADDED {
            short_word_from_block(lower, s as usize, len, scratch)
        } else {
            lowercase_ascii_into(bytes, start, len, scratch)
        };
        emit.word(
            Word {
                padded: &scratch[..k],
                len,
            },
            Position {
                line: *line,
                column: (start as u64).wrapping_sub(*line_start) + 1,
            },
        );
        words &= !(((1u64 << len) - 1) << s);
    }
    pass_newlines(newlines, stop, i, line, line_start);
    stop
}

/// Moves the line on past the newlines of the block at `i` that come
/// before `stop`.
#[inline(always)]
fn pass_newlines(newlines: u64, stop: u32, i: usize, line: &mut u64, line_start: &mut u64) {
    let before = if stop >= 64 {
        newlines
    } else {
        newlines & ((1u64 << stop) - 1)
    };
    if before != 0 {
        *line += u64::from(before.count_ones());
        *line_start = (i + 64 - before.leading_zeros() as usize) as u64;
    }
}

/// Skips the word characters from `bytes[i]` on; returns where they end and
/// whether the run is known to end there (false when it reaches the end of
/// `bytes`, or a character cut short, and more bytes may follow).
fn skip_word_chars(bytes: &[u8], mut i: usize, last: bool) -> (usize, bool) {
    let n = bytes.len();
    while i < n {
        match CLASS[bytes[i] as usize] {
            WORD => i += 1,
            SEPARATOR => return (i, true),
            _ => match decode_char(bytes, i) {
                Some((c, len)) if is_word_char(c) => i += len,
                None if !last && cut_short(bytes, i) => return (i, false),
                _ => return (i, true),
            },
        }
    }
    (i, last)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words of `text` in one scan, by every block path this CPU
    /// runs, which must agree.
    fn words(text: &[u8]) -> Vec<(String, u64, u64)> {
        agreed(|path| windowed_by(text, &[], path))
    }

    /// `scan(path)` for every block path this CPU runs: what they all gave.
    fn agreed(scan: impl Fn(BlockPath) -> Vec<(String, u64, u64)>) -> Vec<(String, u64, u64)> {
        let mut paths = BlockPath::runnable().into_iter();
        let baseline = scan(paths.next().unwrap());
        for path in paths {
            assert_eq!(scan(path), baseline, "{path:?} and the baseline disagree");
        }
        baseline
    }

    #[test]
    fn splits_ascii_and_unicode_words_with_byte_columns() {
        assert_eq!(
            words("Foo_bar café\n  x".as_bytes()),
            vec![
                ("foo_bar".into(), 1, 1),
                ("café".into(), 1, 9),
                ("x".into(), 2, 3)
            ]
        );
    }

    #[test]
    fn invalid_utf8_separates_words() {
        assert_eq!(
            words(b"caf\xff\xfe\xc3\xa9 ab\xe2\x82Cd"),
            vec![
                ("caf".into(), 1, 1),
                ("é".into(), 1, 6),
                ("ab".into(), 1, 9),
                ("cd".into(), 1, 13)
            ]
        );
    }

    #[test]
    fn long_runs_are_dropped_whole() {
        let exact = "a".repeat(64);
        let long = "b".repeat(65);
        let text = format!("{exact} {long} c");
        let got = words(text.as_bytes());
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, exact);
        assert_eq!(got[1], ("c".into(), 1, 132));
    }

    /// The words of `text` scanned in windows cut at `cuts` (as a reader
    /// of a file would: each window is what is left plus the next bytes).
    fn windowed(text: &[u8], cuts: &[usize]) -> Vec<(String, u64, u64)> {
        agreed(|path| windowed_by(text, cuts, path))
    }

    fn windowed_by(text: &[u8], cuts: &[usize], path: BlockPath) -> Vec<(String, u64, u64)> {
        let mut out = Vec::new();
        let mut scanner = Scanner {
            path,
            ..Scanner::new()
        };
        let mut pending: Vec<u8> = Vec::new();
        let mut from = 0;
        let mut ends: Vec<usize> = cuts.iter().map(|&c| c.min(text.len())).collect();
        ends.sort_unstable();
        ends.push(text.len());
        for end in ends {
            if end < from {
                continue;
            }
            pending.extend_from_slice(&text[from..end]);
            from = end;
            let last = end == text.len();
            let used = scanner.scan(&pending, last, &mut |w: Word<'_>, p: Position| {
                // The word table hashes and compares whole lanes: every
                // byte past the word must be zero, up to padded_len.
                assert_eq!(w.padded().len(), padded_len(w.len()));
                assert!(
                    w.padded()[w.len()..].iter().all(|&b| b == 0),
                    "{:?} is not zero-padded",
                    w.padded()
                );
                out.push((
                    String::from_utf8_lossy(w.as_bytes()).into_owned(),
                    p.line,
                    p.column,
                ))
            });
            assert!(used <= pending.len());
            assert!(last || pending.len() - used <= MAX_WORD_BYTES + 3);
            pending.drain(..used);
        }
        out
    }

    proptest::proptest! {
        /// Windows cut anywhere (inside a word, a character, a long run)
        /// give exactly the words of one whole scan.
        #[test]
        fn windows_cut_anywhere_scan_like_the_whole(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec![
                    "a", "Ab_9", " ", "\n", "é", "ÉCOLE", "—", "ΣΑΣ", "\u{10348}", "\r\n",
                    "\u{ff0c}", "\t",
                ]),
                0..120,
            ),
            raw in proptest::collection::vec(proptest::num::u8::ANY, 0..6),
            long in 60usize..70,
            cuts in proptest::collection::vec(0usize..400, 0..12),
        ) {
            let mut text: Vec<u8> = pieces.concat().into_bytes();
            // A run near the 64-byte limit, and bytes that are not UTF-8.
            let at = text.len() / 2;
            text.splice(at..at, std::iter::repeat_n(b'x', long));
            text.extend_from_slice(&raw);
            text.extend_from_slice("tail".as_bytes());
            proptest::prop_assert_eq!(windowed(&text, &cuts), words(&text));
        }
    }

    /// A plain tokenizer for ASCII text, written from the rules: maximal
    /// runs of letters, digits and `_`, at most 64 bytes, lowercased.
    fn plain_ascii_words(text: &[u8]) -> Vec<(String, u64, u64)> {
        let mut out = Vec::new();
        let (mut line, mut line_start) = (1u64, 0usize);
        let mut i = 0;
        while i < text.len() {
            let b = text[i];
            if b.is_ascii_alphanumeric() || b == b'_' {
                let start = i;
                while i < text.len() && (text[i].is_ascii_alphanumeric() || text[i] == b'_') {
                    i += 1;
                }
                if i - start <= MAX_WORD_BYTES {
                    let word = String::from_utf8_lossy(&text[start..i]).to_ascii_lowercase();
                    out.push((word, line, (start - line_start + 1) as u64));
                }
                continue;
            }
            if b == b'\n' {
                line += 1;
                line_start = i + 1;
            }
            i += 1;
        }
        out
    }

    proptest::proptest! {
        /// Every way of computing a block's masks this CPU runs agrees with
        /// the lanes (what other machines run), on ASCII blocks and blocks
        /// with a byte >= 0x80.
        #[cfg(target_arch = "x86_64")]
        #[test]
        fn vector_and_lane_block_masks_agree(
            block in proptest::prop_oneof![
                proptest::collection::vec(0u8..0x80, 64),
                proptest::collection::vec(proptest::num::u8::ANY, 64),
            ],
        ) {
            let array: &[u8; BLOCK_BYTES] = block.as_slice().try_into().unwrap();
            let lanes = swar_block_masks(&block, 0);
            proptest::prop_assert_eq!(sse2_block_masks(array), lanes);
            for path in BlockPath::runnable() {
                // SAFETY (both): `runnable` lists only what the CPU has.
                match path {
                    BlockPath::Avx2 => {
                        let mut lower = [0u8; BLOCK_BYTES + MIN_PADDED];
                        let masks = unsafe { avx2_block_masks(array, &mut lower) };
                        proptest::prop_assert_eq!(masks, lanes);
                        proptest::prop_assert_eq!(
                            &lower[..BLOCK_BYTES],
                            &block.to_ascii_lowercase()[..]
                        );
                    }
                    // The VBMI scan makes its masks with the same function.
                    BlockPath::Avx512 | BlockPath::Avx512Vbmi => {
                        proptest::prop_assert_eq!(unsafe { avx512_block_masks(array) }, lanes);
                    }
                    BlockPath::Baseline => {}
                }
            }
        }

        /// The 64-byte block path on short words, long words, runs near
        /// the 64-byte limit and dense newlines, against the plain rules.
        #[test]
        fn ascii_text_scans_like_the_plain_rules(
            pieces in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::string::string_regex("[a-zA-Z0-9_]{1,3}").unwrap(),
                    proptest::string::string_regex("[a-zA-Z0-9_]{4,70}").unwrap(),
                    proptest::string::string_regex("[ \n.,;()\t-]{1,3}").unwrap(),
                    // Every other ASCII separator, the neighbours of the word
                    // ranges (`/ : @ [ ` {`) among them.
                    proptest::string::string_regex("[\\x00-\\x2F\\x3A-\\x40\\x5B-\\x5E\\x60\\x7B-\\x7F]{1,3}").unwrap(),
                ],
                0..400,
            ),
        ) {
            let text = pieces.concat().into_bytes();
            proptest::prop_assert_eq!(words(&text), plain_ascii_words(&text));
            proptest::prop_assert_eq!(windowed(&text, &[100, 150, 700]), plain_ascii_words(&text));
        }
    }

    #[test]
    fn remembered_word_characters_are_the_contracts() {
        // In a scattered order, so chunks are learned out of order.
        for code in (0..0x11000u32).map(|k| k.wrapping_mul(40503) % 0x11000) {
            if let Some(c) = char::from_u32(code) {
                assert_eq!(is_word_char(c), c.is_alphanumeric() || c == '_', "{c:?}");
            }
        }
    }

    #[test]
    fn positions_past_four_gib_are_exact() {
        let mut scanner = Scanner::new();
        scanner.scan(b"a\nbb ", false, &mut |_: Word<'_>, _: Position| {});
        // A hole of NULs (as a sparse file reads), then a word.
        scanner.skip_separators(4_300_000_000);
        let mut got = Vec::new();
        scanner.scan(b"tailword", true, &mut |w: Word<'_>, p: Position| {
            got.push((w.as_bytes().to_vec(), p.line, p.column))
        });
        assert_eq!(got, [(b"tailword".to_vec(), 2, 4_300_000_004)]);
    }

    #[test]
    fn lane_classes_match_the_byte_table() {
        for b in 0u8..=255 {
            for pos in 0..8 {
                let mut lane = [b'.'; 8];
                lane[pos] = b;
                lane[(pos + 3) % 8] = 0xC3;
                let x = u64::from_le_bytes(lane);
                let bit = 1u64 << (8 * pos + 7);
                let is_word = CLASS[b as usize] == WORD;
                assert_eq!(word_lanes(x) & bit != 0, is_word, "byte {b:#x}");
                assert_eq!(newline_lanes(x) & bit != 0, b == b'\n', "byte {b:#x}");
            }
        }
    }

    #[test]
    fn swar_lowercasing_matches_ascii_lowercasing() {
        for b in 0u8..=255 {
            let lane = u64::from_le_bytes([b, b'A', b'z', b'Z', b'@', b'[', b'_', 0x80 | b]);
            let got = ascii_lowercase_lane(lane).to_le_bytes();
            let want = [
                b.to_ascii_lowercase(),
                b'a',
                b'z',
                b'z',
                b'@',
                b'[',
                b'_',
                0x80 | b,
            ];
            assert_eq!(got, want, "byte {b:#x}");
        }
    }

    #[test]
    fn lowercasing_follows_str_to_lowercase() {
        let got = words("ÉCOLE İstanbul ΣΟΦΟΣ".as_bytes());
        let want: Vec<String> = ["ÉCOLE", "İstanbul", "ΣΟΦΟΣ"]
            .iter()
            .map(|w| w.to_lowercase())
            .collect();
        assert_eq!(got.iter().map(|w| w.0.clone()).collect::<Vec<_>>(), want);
    }
}
