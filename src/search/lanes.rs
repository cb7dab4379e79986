//! Globs matched 64 bytes at a time over many words laid end to end.
//!
//! A glob with no prefix and no piece of two bytes (`*a*b*c*`, `*e*`) has
//! nothing to narrow the vocabulary by, and the DFA walk (`automaton`)
//! pays about 25 ns a word for it: 75 ms over the kernel's 5 million
//! words. Here the words are laid out back to back, each ended by a NUL
//! ([`Vocabulary::picked_in_text`]), and every 64 bytes of that text
//! become a few 64-bit masks, one bit per byte:
//!
//! * one mask per byte value the glob holds, and one of the NULs;
//! * a piece's matches, as the bits where it ends: the AND of its bytes'
//!   masks, each shifted to the piece's last byte;
//! * the *reach* of the pieces matched so far: every position from just
//!   after the earliest match of the last piece to its word's NUL. Spread
//!   by one addition: adding a match's bit to the mask of non-NUL bytes
//!   carries up through the rest of the word and stops at its NUL, so one
//!   add spreads every word of the 64 bytes at once (a word reached at
//!   bit 63 goes on being reached in the next 64 bytes).
//!
//! A piece counts only where it starts inside the reach of the ones before
//! it; a word matches when the reach of its last piece (or, for a glob
//! ending in a literal, a match ending just before the NUL) holds its NUL.
//! That decides "the pieces, in order, without overlap" exactly, as
//! [`Filter::glob_matches`](super::Filter::glob_matches) does one word at a
//! time, for about a nanosecond per word.
//!
//! Pieces are matched byte for byte, so a glob with σ or ς (either of which
//! matches both) or a NUL is left to the other paths, as is a piece of more
//! than 64 bytes.

use crate::index::{Picks, Vocabulary};

/// Bytes matched per step: one bit of a `u64` each.
const LANES: usize = 64;

/// The longest needle [`pick_substring`] is compiled for.
const SUBSTRING_BYTES: usize = 8;

/// A glob compiled for [`GlobLanes::pick`].
#[derive(Debug, Clone)]
pub(super) struct GlobLanes {
    /// The distinct bytes of the pieces; masks are made for these.
    bytes: Vec<u8>,
    /// The first piece, when the glob begins with a literal (anchored at
    /// the word's start), as indexes into `bytes`.
    first: Option<Vec<usize>>,
    /// The pieces between `*`s, in order, none empty.
    middle: Vec<Vec<usize>>,
    /// The last piece, when the glob ends with a literal.
    last: Option<Vec<usize>>,
}

/// What one stage (a piece) carries from one 64 bytes to the next.
#[derive(Debug, Clone, Copy, Default)]
struct Carry {
    /// The stage's input mask (where the piece may start), last step.
    allowed: u64,
    /// The reach, last step, before its one-byte shift.
    reach: u64,
}

impl GlobLanes {
    /// The glob of `pieces` (the literals between its `*`s, see
    /// [`Filter::glob`](super::Filter::glob)), or `None` if it cannot be
    /// matched byte for byte or is not a glob at all.
    pub(super) fn new(pieces: &[String]) -> Option<GlobLanes> {
        if pieces.len() < 2 || pieces.iter().all(String::is_empty) {
            return None;
        }
        let fit = |p: &String| {
            p.len() <= LANES && !p.contains(['σ', 'ς', '\0']) && p.bytes().all(|b| b != 0)
        };
        if !pieces.iter().all(fit) {
            return None;
        }
        let mut bytes: Vec<u8> = pieces.iter().flat_map(|p| p.bytes()).collect();
        bytes.sort_unstable();
        bytes.dedup();
        let indexed = |p: &String| -> Vec<usize> {
            p.bytes()
                .map(|b| bytes.binary_search(&b).unwrap_or_default())
                .collect()
        };
        let (first, rest) = pieces.split_first()?;
        let (last, middle) = rest.split_last()?;
        Some(GlobLanes {
            first: (!first.is_empty()).then(|| indexed(first)),
            middle: middle
                .iter()
                .filter(|p| !p.is_empty())
                .map(indexed)
                .collect(),
            last: (!last.is_empty()).then(|| indexed(last)),
            bytes,
        })
    }

    /// `*needle*`, if its matcher keeps every mask in a register (a
    /// needle of at most [`SUBSTRING_BYTES`]) and it matches byte for
    /// byte.
    pub(super) fn substring(needle: &str) -> Option<GlobLanes> {
        if !(2..=SUBSTRING_BYTES).contains(&needle.len()) {
            return None;
        }
        GlobLanes::new(&[String::new(), needle.to_string(), String::new()])
    }

    /// The numbers of the words of `vocabulary` the glob matches.
    pub(super) fn select(&self, vocabulary: &Vocabulary) -> Picks {
        vocabulary.picked_in_text(&|text, picked| self.pick(text, picked))
    }

    /// Sets bit `k % 64` of `out[k / 64]` for each word `k` (0 for the
    /// first) of `text` (words each followed by a NUL) that the glob
    /// matches, growing `out` with zeros as needed; `out` is not cleared.
    pub(super) fn pick(&self, text: &[u8], out: &mut Vec<u64>) {
        #[cfg(target_arch = "x86_64")]
        {
            // Counting a mask's bits is one instruction only with POPCNT
            // (without it, a dozen), and BMI's shifts and bit scans.
            let scalar = std::arch::is_x86_feature_detected!("popcnt")
                && std::arch::is_x86_feature_detected!("bmi1")
                && std::arch::is_x86_feature_detected!("bmi2");
            let pext = scalar && pext_is_fast();
            if scalar && std::arch::is_x86_feature_detected!("avx512bw") {
                // SAFETY: the CPU has AVX-512BW, POPCNT and BMI, just checked.
                return unsafe { self.pick_avx512(text, out, pext) };
            }
            if scalar && std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2, POPCNT and BMI, just checked.
                return unsafe { self.pick_avx2(text, out, pext) };
            }
        }
        self.pick_by(text, &mut Marks::new(out, extract_plain), equal_masks)
    }

    /// [`GlobLanes::pick`] compiled for AVX-512BW: a byte's mask over 64
    /// bytes is one compare (a third of the time SSE2's four take).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512bw,popcnt,bmi1,bmi2")]
    unsafe fn pick_avx512(&self, text: &[u8], out: &mut Vec<u64>, pext: bool) {
        // Closures here are compiled with AVX-512BW and BMI2 too.
        let masks = |block: &[u8; LANES], bytes: &[u8], masks: &mut [u64]| {
            equal_masks_avx512(block, bytes, masks)
        };
        // SAFETY: the CPU has BMI2 (this function's features).
        let bmi2 = |value, mask| unsafe { pext_u64(value, mask) };
        self.pick_marked(text, out, masks, pext.then_some(bmi2))
    }

    /// [`GlobLanes::pick`] compiled for AVX2: two compares per mask.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,popcnt,bmi1,bmi2")]
    unsafe fn pick_avx2(&self, text: &[u8], out: &mut Vec<u64>, pext: bool) {
        // Closures here are compiled with AVX2 and BMI2 too.
        let masks = |block: &[u8; LANES], bytes: &[u8], masks: &mut [u64]| {
            equal_masks_avx2(block, bytes, masks)
        };
        // SAFETY: the CPU has BMI2 (this function's features).
        let bmi2 = |value, mask| unsafe { pext_u64(value, mask) };
        self.pick_marked(text, out, masks, pext.then_some(bmi2))
    }

    /// [`GlobLanes::pick_by`] marking with `pext` if given (where it is
    /// fast), else bit by bit; inlined into its callers, so both are
    /// compiled for their features.
    #[inline(always)]
    fn pick_marked(
        &self,
        text: &[u8],
        out: &mut Vec<u64>,
        equal_masks: impl Fn(&[u8; LANES], &[u8], &mut [u64]) -> u64,
        pext: Option<impl Fn(u64, u64) -> u64>,
    ) {
        match pext {
            Some(pext) => self.pick_by(text, &mut Marks::new(out, pext), equal_masks),
            None => self.pick_by(text, &mut Marks::new(out, extract_plain), equal_masks),
        }
    }

    /// [`GlobLanes::pick`] with `equal_masks` making the byte masks
    /// (inlined into each caller, so it is compiled for its features).
    #[inline(always)]
    fn pick_by(
        &self,
        text: &[u8],
        out: &mut Marks<'_, impl Fn(u64, u64) -> u64>,
        equal_masks: impl Fn(&[u8; LANES], &[u8], &mut [u64]) -> u64,
    ) {
        // A needle of one byte is a floating byte, below.
        match self.needle().as_deref() {
            Some(&[a, b]) => return pick_substring([a, b], text, out, equal_masks),
            Some(&[a, b, c]) => return pick_substring([a, b, c], text, out, equal_masks),
            Some(&[a, b, c, d]) => return pick_substring([a, b, c, d], text, out, equal_masks),
            Some(&[a, b, c, d, e]) => {
                return pick_substring([a, b, c, d, e], text, out, equal_masks)
            }
            Some(&[a, b, c, d, e, f]) => {
                return pick_substring([a, b, c, d, e, f], text, out, equal_masks)
            }
            Some(&[a, b, c, d, e, f, g]) => {
                return pick_substring([a, b, c, d, e, f, g], text, out, equal_masks)
            }
            Some(&[a, b, c, d, e, f, g, h]) => {
                return pick_substring([a, b, c, d, e, f, g, h], text, out, equal_masks)
            }
            _ => {}
        }
        if let Some(bytes) = self.floating_bytes() {
            return match *bytes {
                [a] => pick_distinct_bytes([a], text, out, equal_masks),
                [a, b] if a != b => pick_distinct_bytes([a, b], text, out, equal_masks),
                [a, b, c] if a != b && b != c => {
                    pick_distinct_bytes([a, b, c], text, out, equal_masks)
                }
                [a, b, c, d] if a != b && b != c && c != d => {
                    pick_distinct_bytes([a, b, c, d], text, out, equal_masks)
                }
                [a, b] => pick_floating_bytes([a, b], text, out, equal_masks),
                [a, b, c] => pick_floating_bytes([a, b, c], text, out, equal_masks),
                [a, b, c, d] => pick_floating_bytes([a, b, c, d], text, out, equal_masks),
                _ => self.pick_pieces(text, out, equal_masks),
            };
        }
        self.pick_pieces(text, out, equal_masks)
    }

    /// The bytes of a glob made of one-byte pieces between `*`s alone
    /// (`*a*b*c*`, `*e*`), in order, at most four: the literal-free globs
    /// nothing else narrows, matched by [`pick_floating_bytes`].
    fn floating_bytes(&self) -> Option<Vec<u8>> {
        if self.first.is_some() || self.last.is_some() || self.middle.len() > 4 {
            return None;
        }
        self.middle
            .iter()
            .map(|piece| match piece[..] {
                [b] => Some(self.bytes[b]),
                _ => None,
            })
            .collect()
    }

    /// The needle of `*needle*` (one piece between two `*`s), matched by
    /// [`pick_substring`].
    fn needle(&self) -> Option<Vec<u8>> {
        match (&self.first, &self.middle[..], &self.last) {
            (None, [piece], None) => Some(piece.iter().map(|&b| self.bytes[b]).collect()),
            _ => None,
        }
    }

    /// [`GlobLanes::pick`] for any glob it compiles.
    #[inline(always)]
    fn pick_pieces(
        &self,
        text: &[u8],
        out: &mut Marks<'_, impl Fn(u64, u64) -> u64>,
        equal_masks: impl Fn(&[u8; LANES], &[u8], &mut [u64]) -> u64,
    ) {
        let stages = 1 + self.middle.len();
        let mut carries = vec![Carry::default(); stages + 1];
        let mut masks = vec![0u64; self.bytes.len()];
        let mut previous = vec![0u64; self.bytes.len()];
        let mut previous_nuls = 0u64;
        // Words ended before the current 64 bytes: a word's place is this
        // plus the NULs before its own in them.
        let mut words_before = 0usize;
        let mut tail = [0u8; LANES];
        for (n, block) in padded_blocks(text, &mut tail).enumerate() {
            prefetch_ahead(text, n * LANES);
            let nuls = equal_masks(block, &self.bytes, &mut masks);
            let in_word = !nuls;
            // Where words start: after a NUL, or at the text's start.
            let starts = shift(nuls, previous_nuls, 1) | u64::from(n == 0);
            let piece_ends = |piece: &[usize]| {
                piece.iter().enumerate().fold(!0u64, |acc, (j, &b)| {
                    acc & shift(masks[b], previous[b], piece.len() - 1 - j)
                })
            };
            // A stage: the piece's matches that start where `allowed` says,
            // spread to the rest of their words.
            let stage = |carry: &mut Carry, piece: &[usize], allowed: u64| -> u64 {
                let found = piece_ends(piece) & shift(allowed, carry.allowed, piece.len() - 1);
                carry.allowed = allowed;
                let reach = reach_of(in_word, found, carry.reach, previous_nuls);
                // Past the match: one byte on, and not into the next word.
                let after = shift(reach, carry.reach, 1) & !starts;
                carry.reach = reach;
                after
            };
            let (first_carry, rest) = carries.split_at_mut(1);
            let mut allowed = match &self.first {
                Some(first) => stage(&mut first_carry[0], first, starts),
                None => !0,
            };
            for (carry, piece) in rest.iter_mut().zip(&self.middle) {
                allowed = stage(carry, piece, allowed);
            }
            let accepted = match &self.last {
                Some(last) => {
                    let carry = &mut carries[stages];
                    let found = piece_ends(last) & shift(allowed, carry.allowed, last.len() - 1);
                    carry.allowed = allowed;
                    // A match just before a NUL: its word ends with it.
                    let ended = shift(found, carry.reach, 1) & nuls;
                    carry.reach = found;
                    ended
                }
                None => allowed & nuls,
            };
            words_before = out.mark(accepted, nuls, n * LANES, text.len(), words_before);
            previous.copy_from_slice(&masks);
            previous_nuls = nuls;
        }
    }
}

/// [`GlobLanes::pick`] for `*b0*b1*...*`, one byte a piece: the same
/// stages as [`GlobLanes::pick_pieces`] with nothing to shift a piece by
/// and every mask and carry a local of fixed number, so they stay in
/// registers (the general loop keeps them in memory, and took four times
/// as long on the kernel's words).
#[inline(always)]
fn pick_floating_bytes<const S: usize>(
    bytes: [u8; S],
    text: &[u8],
    out: &mut Marks<'_, impl Fn(u64, u64) -> u64>,
    equal_masks: impl Fn(&[u8; LANES], &[u8], &mut [u64]) -> u64,
) {
    let mut masks = [0u64; S];
    // Per stage: last step's reach.
    let mut reach_before = [0u64; S];
    let mut previous_nuls = !0u64;
    let mut words_before = 0usize;
    let mut tail = [0u8; LANES];
    for (n, block) in padded_blocks(text, &mut tail).enumerate() {
        prefetch_ahead(text, n * LANES);
        let nuls = equal_masks(block, &bytes, &mut masks);
        let in_word = !nuls;
        // The text's start counts as following a NUL.
        let starts = shift(nuls, previous_nuls, 1);
        let mut allowed = !0u64;
        for s in 0..S {
            let reach = reach_of(in_word, masks[s] & allowed, reach_before[s], previous_nuls);
            allowed = shift(reach, reach_before[s], 1) & !starts;
            reach_before[s] = reach;
        }
        words_before = out.mark(allowed & nuls, nuls, n * LANES, text.len(), words_before);
        previous_nuls = nuls;
    }
}

/// [`GlobLanes::pick`] for `*needle*`: the words holding the needle. A
/// match is where the needle's last byte is, each byte's mask shifted to
/// it (a needle holds no NUL, so a match never spans two words); a word
/// holds one when the reach of its matches gets to its NUL. One stage and
/// every mask in a register: a substring search that costs the same
/// however many words hold the needle, where a search that stops at each
/// hit (`memmem`) slows with them (`*_t*`: 578 thousand words).
#[inline(always)]
fn pick_substring<const L: usize>(
    needle: [u8; L],
    text: &[u8],
    out: &mut Marks<'_, impl Fn(u64, u64) -> u64>,
    equal_masks: impl Fn(&[u8; LANES], &[u8], &mut [u64]) -> u64,
) {
    let mut masks = [0u64; L];
    let mut previous = [0u64; L];
    let mut reach_before = 0u64;
    let mut previous_nuls = !0u64;
    let mut words_before = 0usize;
    let mut tail = [0u8; LANES];
    for (n, block) in padded_blocks(text, &mut tail).enumerate() {
        prefetch_ahead(text, n * LANES);
        let nuls = equal_masks(block, &needle, &mut masks);
        let mut found = !0u64;
        for j in 0..L {
            found &= shift(masks[j], previous[j], L - 1 - j);
        }
        let reach = reach_of(!nuls, found, reach_before, previous_nuls);
        words_before = out.mark(reach & nuls, nuls, n * LANES, text.len(), words_before);
        previous = masks;
        reach_before = reach;
        previous_nuls = nuls;
    }
}

/// [`pick_floating_bytes`] when no byte follows itself (`*a*b*c*`, not
/// `*a*a*`). A match of the next byte inside a stage's reach cannot be the
/// match the reach began at (the bytes differ), and a reach ends at its
/// word's NUL, which no byte matches: the reach itself is where the next
/// stage may match, without shifting it past its first byte or masking the
/// next word's start. Two operations fewer a stage, on the chain each
/// block's stages form, and no word starts to work out.
///
/// A reach here may miss the bits of its stage's later matches (an add of
/// two bits in one word sets the first only): those are bytes of this
/// stage, which the next stage's byte is not, so only the carry into the
/// next 64 bytes looks at them.
#[inline(always)]
fn pick_distinct_bytes<const S: usize>(
    bytes: [u8; S],
    text: &[u8],
    out: &mut Marks<'_, impl Fn(u64, u64) -> u64>,
    equal_masks: impl Fn(&[u8; LANES], &[u8], &mut [u64]) -> u64,
) {
    let mut masks = [0u64; S];
    // Per stage: bit 0 set if the last 64 bytes' reach runs on into these.
    let mut carries = [0u64; S];
    let mut words_before = 0usize;
    let (blocks, rest) = text.as_chunks::<LANES>();
    let mut tail = [0u8; LANES];
    tail[..rest.len()].copy_from_slice(rest);
    // The last 64 bytes padded with NULs, as in `padded_blocks`: one loop
    // over both, with no iterator chain to step (the matcher is a few
    // dozen instructions a step).
    let steps = blocks.len() + usize::from(!rest.is_empty());
    for n in 0..steps {
        let block = blocks.get(n).unwrap_or(&tail);
        prefetch_ahead(text, n * LANES);
        let nuls = equal_masks(block, &bytes, &mut masks);
        let in_word = !nuls;
        let mut allowed = !0u64;
        for s in 0..S {
            let found = masks[s] & allowed | carries[s];
            let reach = in_word.wrapping_add(found) ^ in_word;
            carries[s] = ((reach | found) & in_word) >> (LANES - 1);
            allowed = reach;
        }
        words_before = out.mark(allowed & nuls, nuls, n * LANES, text.len(), words_before);
    }
}

/// Where a matcher marks the words it picks: bit `k % 64` of
/// `bits[k / 64]` for the text's word `k`. A step's accepted NULs become
/// its words' bits by a parallel bit extract (`extract(accepted, nuls)`:
/// the bits of `accepted` where `nuls` has one, packed low), so a step
/// costs the same however many of its words match, where a loop over its
/// matches mispredicted a branch a word (`*e_*`: a million words, a
/// quarter of the matcher's time).
pub(super) struct Marks<'a, E> {
    bits: &'a mut Vec<u64>,
    extract: E,
}

impl<'a, E: Fn(u64, u64) -> u64> Marks<'a, E> {
    fn new(bits: &'a mut Vec<u64>, extract: E) -> Self {
        Marks { bits, extract }
    }

    /// Marks the words whose NULs are the `accepted` bits of the 64 bytes
    /// at `base` of a text of `len` bytes (`nuls` their NULs,
    /// `words_before` the words ended before them), the padding past
    /// `len` left out; returns the words ended by their end.
    #[inline(always)]
    fn mark(
        &mut self,
        accepted: u64,
        nuls: u64,
        base: usize,
        len: usize,
        words_before: usize,
    ) -> usize {
        let accepted = match len.saturating_sub(base) {
            n if n < LANES => accepted & ((1u64 << n) - 1),
            _ => accepted,
        };
        if accepted != 0 {
            let picked = (self.extract)(accepted, nuls);
            let (at, by) = (words_before / 64, words_before % 64);
            if self.bits.len() < at + 2 {
                self.bits.resize(at + 2, 0);
            }
            self.bits[at] |= picked << by;
            if by > 0 {
                self.bits[at + 1] |= picked >> (64 - by);
            }
        }
        words_before + nuls.count_ones() as usize
    }
}

/// The bits of `value` where `mask` has one, packed low: BMI2's `pext`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "bmi2")]
unsafe fn pext_u64(value: u64, mask: u64) -> u64 {
    std::arch::x86_64::_pext_u64(value, mask)
}

/// [`pext_u64`] bit by bit, for CPUs without BMI2 or where its `pext` is
/// slow: a loop over the set bits of `value` (which lie within `mask`).
#[inline(always)]
fn extract_plain(value: u64, mask: u64) -> u64 {
    let mut packed = 0u64;
    let mut bits = value;
    while bits != 0 {
        let bit = bits.trailing_zeros();
        packed |= 1 << (mask & ((1u64 << bit) - 1)).count_ones();
        bits &= bits - 1;
    }
    packed
}

/// Whether `pext` takes a few cycles here: not on AMD's (or Hygon's)
/// cores before Zen 3, which run it as microcode at up to hundreds.
fn pext_is_fast() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static FAST: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *FAST.get_or_init(|| {
            use std::arch::x86_64::__cpuid;
            let (vendor, signature) = (__cpuid(0), __cpuid(1).eax);
            let name = [vendor.ebx, vendor.edx, vendor.ecx];
            let amd_like = name == [0x6874_7541, 0x6974_6E65, 0x444D_4163] // AuthenticAMD
                || name == [0x6F67_7948, 0x6E65_476E, 0x656E_6975]; // HygonGenuine
            let base = (signature >> 8) & 0xf;
            let family = base
                + if base == 0xf {
                    (signature >> 20) & 0xff
                } else {
                    0
                };
            !amd_like || family >= 0x19
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The 64-byte blocks of `text`, the last one copied into `tail` (all
/// NULs) when `text` ends inside it: the padding is empty words, which no
/// glob with a piece matches, and past `text` anyway.
fn padded_blocks<'t>(
    text: &'t [u8],
    tail: &'t mut [u8; LANES],
) -> impl Iterator<Item = &'t [u8; LANES]> {
    let (blocks, rest) = text.as_chunks::<LANES>();
    tail[..rest.len()].copy_from_slice(rest);
    blocks.iter().chain((!rest.is_empty()).then_some(&*tail))
}

/// Asks for the bytes of `text` a few KiB past `at` to be brought into
/// the cache: the matcher's chain of adds holds few loads in flight, and
/// waited on memory a fifth of its time without this.
#[inline(always)]
fn prefetch_ahead(text: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        const AHEAD: usize = 2048;
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch never faults, whatever the address; it is
        // only a hint.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(text.as_ptr().wrapping_add(at + AHEAD).cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (text, at);
}

/// The reach of `found`: every byte from a match to its word's NUL, for
/// 64 bytes whose non-NULs are `in_word`, given the step before's reach
/// and NULs.
///
/// The add of a match's bit to `in_word` carries up through its word and
/// stops at the NUL. A word the step before reached at its last byte (bit
/// 63, not a NUL) goes on here: that is the add's carry out of bit 63 of
/// the step before, entered as a match at bit 0. Working it out from the
/// reach, rather than keeping the carry flag from one step to the next,
/// leaves the matcher no flags to save and fewer values to hold: with the
/// flag kept, the compiler spilled the stages' carries to the stack.
#[inline(always)]
fn reach_of(in_word: u64, found: u64, reach_before: u64, nuls_before: u64) -> u64 {
    let found = found | (reach_before & !nuls_before) >> (LANES - 1);
    (in_word.wrapping_add(found) ^ in_word) | found
}

/// `now` shifted up by `by` bits (below 64), the bits shifted out of the
/// step before (`before`) coming in at the bottom: a shift of the whole
/// text's mask.
#[inline]
fn shift(now: u64, before: u64, by: usize) -> u64 {
    match by {
        0 => now,
        _ => (now << by) | (before >> (LANES - by)),
    }
}

/// Sets `masks[k]` to the bits where `block` holds `bytes[k]`; returns
/// the bits where it holds a NUL.
#[inline]
fn equal_masks(block: &[u8; LANES], bytes: &[u8], masks: &mut [u64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        equal_masks_sse2(block, bytes, masks)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        equal_masks_plain(block, bytes, masks)
    }
}

/// [`equal_masks`] with the block loaded once into four SSE2 registers
/// and compared with each byte in turn.
#[cfg(target_arch = "x86_64")]
#[inline]
fn equal_masks_sse2(block: &[u8; LANES], bytes: &[u8], masks: &mut [u64]) -> u64 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of x86-64; each load reads 16 bytes inside
    // `block` (offsets 0, 16, 32, 48 of 64), unaligned loads allowed.
    unsafe {
        let lanes: [__m128i; 4] =
            std::array::from_fn(|k| _mm_loadu_si128(block.as_ptr().add(16 * k).cast::<__m128i>()));
        let mask_of = |byte: u8| {
            let wanted = _mm_set1_epi8(byte as i8);
            lanes.iter().enumerate().fold(0u64, |mask, (k, &lane)| {
                let hits = _mm_movemask_epi8(_mm_cmpeq_epi8(lane, wanted)) as u32 as u64;
                mask | hits << (16 * k)
            })
        };
        for (mask, &byte) in masks.iter_mut().zip(bytes) {
            *mask = mask_of(byte);
        }
        mask_of(0)
    }
}

/// [`equal_masks`] by AVX-512BW: one compare per byte, straight to a mask.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw")]
fn equal_masks_avx512(block: &[u8; LANES], bytes: &[u8], masks: &mut [u64]) -> u64 {
    use std::arch::x86_64::{
        __m512i, _mm512_cmpeq_epi8_mask, _mm512_loadu_si512, _mm512_set1_epi8, _mm512_setzero_si512,
    };
    // SAFETY: the load reads the 64 bytes of `block`, unaligned allowed.
    let lane = unsafe { _mm512_loadu_si512(block.as_ptr().cast::<__m512i>()) };
    for (mask, &byte) in masks.iter_mut().zip(bytes) {
        *mask = _mm512_cmpeq_epi8_mask(lane, _mm512_set1_epi8(byte as i8));
    }
    _mm512_cmpeq_epi8_mask(lane, _mm512_setzero_si512())
}

/// [`equal_masks`] by AVX2: two compares per byte.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn equal_masks_avx2(block: &[u8; LANES], bytes: &[u8], masks: &mut [u64]) -> u64 {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_set1_epi8,
    };
    // SAFETY: each load reads 32 bytes inside `block` (offsets 0 and 32).
    let (low, high) = unsafe {
        (
            _mm256_loadu_si256(block.as_ptr().cast::<__m256i>()),
            _mm256_loadu_si256(block.as_ptr().add(32).cast::<__m256i>()),
        )
    };
    let mask_of = |byte: u8| {
        let wanted = _mm256_set1_epi8(byte as i8);
        let low = _mm256_movemask_epi8(_mm256_cmpeq_epi8(low, wanted)) as u32 as u64;
        let high = _mm256_movemask_epi8(_mm256_cmpeq_epi8(high, wanted)) as u32 as u64;
        low | high << 32
    };
    for (mask, &byte) in masks.iter_mut().zip(bytes) {
        *mask = mask_of(byte);
    }
    mask_of(0)
}

#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn equal_masks_plain(block: &[u8; LANES], bytes: &[u8], masks: &mut [u64]) -> u64 {
    let mask_of = |byte: u8| {
        block
            .iter()
            .enumerate()
            .fold(0, |mask, (i, &b)| mask | (u64::from(b == byte) << i))
    };
    for (mask, &byte) in masks.iter_mut().zip(bytes) {
        *mask = mask_of(byte);
    }
    mask_of(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The words of `text` (each followed by a NUL) and their NULs.
    fn words(text: &[u8]) -> Vec<(&[u8], usize)> {
        let mut at = 0;
        text.split(|&b| b == 0)
            .map(|w| {
                let nul = at + w.len();
                at = nul + 1;
                (w, nul)
            })
            .filter(|&(_, nul)| nul < text.len())
            .collect()
    }

    /// A glob over the whole word, by the plain recursive definition.
    fn plain_match(pieces: &[&[u8]], word: &[u8]) -> bool {
        let (first, rest) = pieces.split_first().expect("a glob has a piece");
        if !word.starts_with(first) {
            return false;
        }
        let word = &word[first.len()..];
        match rest {
            [] => word.is_empty(),
            _ => (0..=word.len()).any(|skip| plain_match(rest, &word[skip..])),
        }
    }

    /// The places of the words marked in `bits`.
    fn places(bits: &[u64]) -> Vec<usize> {
        (0..bits.len() * 64)
            .filter(|k| bits[k / 64] >> (k % 64) & 1 == 1)
            .collect()
    }

    fn check(pieces: &[&str], text: &[u8]) {
        let owned: Vec<String> = pieces.iter().map(|p| p.to_string()).collect();
        let bytes: Vec<&[u8]> = pieces.iter().map(|p| p.as_bytes()).collect();
        let Some(lanes) = GlobLanes::new(&owned) else {
            panic!("{pieces:?} should compile")
        };
        let mut got = Vec::new();
        lanes.pick(text, &mut got);
        let got = places(&got);
        // The baseline build's masks and extract too, whichever `pick`
        // chose here.
        let mut baseline = Vec::new();
        lanes.pick_by(
            text,
            &mut Marks::new(&mut baseline, extract_plain),
            equal_masks,
        );
        assert_eq!(got, places(&baseline), "glob {pieces:?}: baseline masks");
        // And the general stages, whichever `pick_by` chose.
        let mut general = Vec::new();
        lanes.pick_pieces(
            text,
            &mut Marks::new(&mut general, extract_plain),
            equal_masks,
        );
        assert_eq!(got, places(&general), "glob {pieces:?}: general stages");
        let wanted: Vec<usize> = words(text)
            .into_iter()
            .enumerate()
            .filter(|(_, (w, _))| plain_match(&bytes, w))
            .map(|(k, _)| k)
            .collect();
        assert_eq!(got, wanted, "glob {pieces:?}");
    }

    #[test]
    fn pieces_match_in_order_without_overlap() {
        let text = b"abc\0cab\0aabbcc\0a_b_c\0ab\0\0ba\0abab\0aba\0";
        check(&["", "a", "b", "c", ""], text);
        check(&["a", "b"], text);
        check(&["ab", "ab"], text);
        check(&["aba", "aba"], text);
        check(&["", "ab", ""], text);
        check(&["", "b"], text);
        check(&["a", ""], text);
        check(&["", "ab", "ab", ""], text);
    }

    #[test]
    fn words_and_pieces_cross_the_64_byte_steps() {
        let long: Vec<u8> = [b"x".repeat(60), b"spin_lock_irq".to_vec(), vec![0]]
            .concat()
            .repeat(5);
        check(&["", "lock", "irq"], &long);
        check(&["", "x", "q"], &long);
        check(&["x", "k_i", ""], &long);
        // Needles of two to eight bytes (one stage in registers).
        check(&["", "xs", ""], &long);
        check(&["", "xspin_lo", ""], &long);
        check(&["", "k_irq", ""], &long);
        check(&["", "irqx", ""], &long);
        check(&["", &"x".repeat(61), ""], &long);
        let words_past_64: Vec<u8> = [b"a".repeat(150), vec![0], b"b".repeat(70), vec![0]].concat();
        check(&["", "a", ""], &words_past_64);
        // A word matched twice by its first byte, the second time at the
        // last byte of 64: its reach must still run on into the next 64.
        let mut twice = b"z".repeat(150);
        twice[10] = b'a';
        twice[63] = b'a';
        twice[100] = b'b';
        twice.push(0);
        check(&["", "a", "b", ""], &twice);
        check(&["", "a", "a", "b", ""], &twice);
        check(&["", "x", "s", "q", ""], &long);
        check(&["", "b"], &words_past_64);
        check(&["a", "a"], &words_past_64);
    }

    #[test]
    fn globs_it_cannot_match_byte_for_byte_are_refused() {
        let owned = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(GlobLanes::new(&owned(&["", "σ", ""])).is_none());
        assert!(GlobLanes::new(&owned(&["", ""])).is_none());
        assert!(GlobLanes::new(&owned(&["abc"])).is_none());
        assert!(GlobLanes::new(&owned(&["", &"a".repeat(65), ""])).is_none());
        assert!(GlobLanes::new(&owned(&["", "é", ""])).is_some());
    }

    proptest! {
        /// The plain extract is `pext`'s definition, and the CPU's
        /// instruction (where it has one) agrees.
        #[test]
        fn extracts_agree_with_the_definition(value in any::<u64>(), mask in any::<u64>()) {
            let value = value & mask;
            let want = (0..64)
                .filter(|&b| mask >> b & 1 == 1)
                .enumerate()
                .fold(0u64, |acc, (k, b)| acc | (value >> b & 1) << k);
            prop_assert_eq!(extract_plain(value, mask), want);
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("bmi2") {
                // SAFETY: the CPU has BMI2, just checked.
                prop_assert_eq!(unsafe { pext_u64(value, mask) }, want);
            }
        }
    }

    type MaskMaker = fn(&[u8; LANES], &[u8], &mut [u64]) -> u64;

    /// Every way of making masks this CPU can run, the plain one apart.
    fn mask_makers() -> Vec<(&'static str, MaskMaker)> {
        let mut makers: Vec<(&'static str, MaskMaker)> = vec![("baseline", equal_masks)];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: called only after the check above.
                makers.push(("avx2", |b, bytes, m| unsafe {
                    equal_masks_avx2(b, bytes, m)
                }));
            }
            if std::arch::is_x86_feature_detected!("avx512bw") {
                // SAFETY: called only after the check above.
                makers.push(("avx512bw", |b, bytes, m| unsafe {
                    equal_masks_avx512(b, bytes, m)
                }));
            }
        }
        makers
    }

    fn assert_masks_are_plain(block: &[u8; LANES], bytes: &[u8]) {
        let mut plain = vec![0u64; bytes.len()];
        let nuls = equal_masks_plain(block, bytes, &mut plain);
        for (name, make) in mask_makers() {
            let mut fast = vec![0u64; bytes.len()];
            assert_eq!(make(block, bytes, &mut fast), nuls, "{name}: NULs");
            assert_eq!(fast, plain, "{name}");
        }
    }

    #[test]
    fn the_vector_masks_are_the_plain_ones() {
        let mut block = [0u8; LANES];
        for (i, b) in block.iter_mut().enumerate() {
            *b = (i * 37 % 7) as u8 + b'a' - u8::from(i % 5 == 0) * b'a';
        }
        let bytes = [b'a', b'c', b'g', 0xff];
        assert_masks_are_plain(&block, &bytes);
        let mut plain = [0u64; 4];
        equal_masks_plain(&block, &bytes, &mut plain);
        assert_ne!(plain[0], 0);
    }

    proptest! {
        #[test]
        fn vector_masks_agree_with_plain_ones(
            block in proptest::collection::vec(0u8..8, LANES),
            bytes in proptest::collection::vec(0u8..8, 0..6),
        ) {
            let block: [u8; LANES] = block.try_into().expect("64 bytes");
            assert_masks_are_plain(&block, &bytes);
        }

        #[test]
        fn agrees_with_the_plain_definition(
            words in proptest::collection::vec("[abc_]{0,12}", 0..200),
            pieces in proptest::collection::vec("[abc_]{0,3}", 2..5),
        ) {
            let text: Vec<u8> = words.iter().flat_map(|w| w.bytes().chain([0])).collect();
            let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
            if pieces.iter().any(|p| !p.is_empty()) {
                check(&pieces, &text);
            }
        }
    }
}
