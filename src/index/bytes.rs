//! Byte buffers and number arrays that are either owned (a fresh build) or
//! borrowed from a shared buffer (an index file mapped into memory).
//!
//! A saved index is used in place: its vocabulary, counts and posting lists
//! are slices of the mapped file, never copied or decoded up front, which is
//! what makes opening one cost milliseconds. The index layer only sees
//! `AsRef<[u8]>` owners here; it knows nothing of files or mapping.

use std::fmt;
use std::ops::{Deref, Range};
use std::sync::Arc;

/// Something that owns bytes and can be shared between segments.
pub type Owner = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// Owned bytes, or a range of a shared owner's bytes.
#[derive(Clone)]
pub enum Bytes {
    /// Bytes of a fresh build.
    Owned(Vec<u8>),
    /// `range` of `owner`'s bytes (checked against its length when made).
    Shared { owner: Owner, range: Range<usize> },
}

impl Default for Bytes {
    fn default() -> Self {
        Bytes::Owned(Vec::new())
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bytes::Owned(v) => write!(f, "Bytes::Owned({} bytes)", v.len()),
            Bytes::Shared { range, .. } => write!(f, "Bytes::Shared({range:?})"),
        }
    }
}

impl Bytes {
    /// `range` of `owner`, or `None` if the range lies outside it.
    pub fn shared(owner: &Owner, range: Range<usize>) -> Option<Bytes> {
        let bytes: &[u8] = (**owner).as_ref();
        bytes.get(range.clone())?;
        Some(Bytes::Shared {
            owner: Arc::clone(owner),
            range,
        })
    }

    /// The bytes from `from` on, sharing the owner (an owned buffer's are
    /// copied); `None` past the end.
    pub fn tail(&self, from: usize) -> Option<Bytes> {
        match self {
            Bytes::Owned(v) => Some(Bytes::Owned(v.get(from..)?.to_vec())),
            Bytes::Shared { owner, range } => {
                let start = range.start.checked_add(from).filter(|&s| s <= range.end)?;
                Some(Bytes::Shared {
                    owner: Arc::clone(owner),
                    range: start..range.end,
                })
            }
        }
    }

    /// The bytes to change: an owned buffer as it is, a shared range
    /// copied into one first.
    pub fn to_mut(&mut self) -> &mut Vec<u8> {
        if let Bytes::Shared { .. } = self {
            *self = Bytes::Owned(self.to_vec());
        }
        match self {
            Bytes::Owned(v) => v,
            Bytes::Shared { .. } => unreachable!("made owned above"),
        }
    }

    /// Bytes this buffer keeps in memory: its capacity when owned, the
    /// length of its range when shared (a mapped run's pages are its own).
    pub fn resident(&self) -> usize {
        self.heap_bytes().max(self.len())
    }

    /// Heap bytes held by this buffer alone (zero for a shared range).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Bytes::Owned(v) => v.capacity(),
            Bytes::Shared { .. } => 0,
        }
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(bytes: Vec<u8>) -> Self {
        Bytes::Owned(bytes)
    }
}

/// Sent as a plain byte string (as `serde_bytes` sends a `Vec<u8>`), and
/// received owned.
impl serde::Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self)
    }
}

impl<'de> serde::Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde_bytes::ByteBuf::deserialize(deserializer).map(|b| Bytes::Owned(b.into_vec()))
    }
}

impl Deref for Bytes {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Owned(v) => v,
            Bytes::Shared { owner, range } => {
                let bytes: &[u8] = (**owner).as_ref();
                bytes.get(range.clone()).unwrap_or_default()
            }
        }
    }
}

/// An array of plain numbers: owned, or little-endian bytes of a shared
/// owner used in place.
#[derive(Clone)]
pub enum Array<T: bytemuck::Pod> {
    /// Numbers of a fresh build.
    Owned(Vec<T>),
    /// Shared bytes, checked for alignment and length when made.
    Shared(Bytes),
    /// Shared bytes verified chunk by chunk as they are read (see
    /// [`Chunked`]): [`Array::get`] checks one chunk, [`Array::as_slice`]
    /// all of them.
    Checked(Box<Chunked>),
}

impl<T: bytemuck::Pod> Default for Array<T> {
    fn default() -> Self {
        Array::Owned(Vec::new())
    }
}

impl<T: bytemuck::Pod> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Array({} items)", self.len())
    }
}

impl<T: bytemuck::Pod> Array<T> {
    /// The numbers stored in `bytes`, or `None` if `bytes` is misaligned
    /// or not a whole number of items. Numbers are stored little-endian,
    /// so only little-endian machines read them in place.
    pub fn shared(bytes: Bytes) -> Option<Array<T>> {
        if cfg!(target_endian = "big") {
            return None;
        }
        bytemuck::try_cast_slice::<u8, T>(&bytes).ok()?;
        Some(Array::Shared(bytes))
    }

    /// The numbers stored in `chunked`, verified as they are read; `None`
    /// as for [`Array::shared`], or if a chunk would split a number.
    pub fn checked(chunked: Chunked) -> Option<Array<T>> {
        let size = std::mem::size_of::<T>();
        if cfg!(target_endian = "big") || !chunked.chunk.is_multiple_of(size) {
            return None;
        }
        bytemuck::try_cast_slice::<u8, T>(&chunked.bytes).ok()?;
        Some(Array::Checked(Box::new(chunked)))
    }

    /// Number `i`, verifying only the chunk that holds it; `None` past the
    /// end or in a damaged chunk.
    #[inline]
    pub fn get(&self, i: usize) -> Option<T> {
        match self {
            Array::Checked(chunked) => {
                let size = std::mem::size_of::<T>();
                let at = i.checked_mul(size)?;
                let bytes = chunked.get(at..at.checked_add(size)?)?;
                Some(bytemuck::pod_read_unaligned(bytes))
            }
            _ => self.as_slice().get(i).copied(),
        }
    }

    /// Calls `f` with number `i` for each `i` of `ids`, verifying each
    /// chunk they lie in when it is first met: for many numbers in order,
    /// a checked [`Array::get`] apiece (a division and a chunk mark) costs
    /// more than the reads. `None` at the first past the end or in a
    /// damaged chunk.
    pub fn for_each_at(
        &self,
        ids: impl IntoIterator<Item = usize>,
        mut f: impl FnMut(T),
    ) -> Option<()> {
        match self {
            Array::Checked(chunked) => {
                let size = std::mem::size_of::<T>();
                // A chunk holds whole numbers (see `Array::checked`).
                let per_chunk = (chunked.chunk / size).max(1);
                let (mut low, mut high, mut window): (usize, usize, &[u8]) = (0, 0, &[]);
                for i in ids {
                    if !(low..high).contains(&i) {
                        low = i - i % per_chunk;
                        high = (low + per_chunk).min(self.len());
                        window = chunked.get(low * size..high.max(i + 1) * size)?;
                    }
                    let at = (i - low) * size;
                    f(bytemuck::pod_read_unaligned(window.get(at..at + size)?));
                }
            }
            _ => {
                let all = self.as_slice();
                for i in ids {
                    f(*all.get(i)?);
                }
            }
        }
        Some(())
    }

    /// The stored bytes of the numbers `items` (little-endian), verifying
    /// only the chunks they lie in; `None` past the end or in a damaged
    /// chunk.
    pub fn bytes_of(&self, items: Range<usize>) -> Option<&[u8]> {
        let size = std::mem::size_of::<T>();
        let bytes = items.start.checked_mul(size)?..items.end.checked_mul(size)?;
        match self {
            Array::Checked(chunked) => chunked.get(bytes),
            Array::Shared(shared) => shared.get(bytes),
            Array::Owned(v) => bytemuck::cast_slice::<T, u8>(v).get(bytes),
        }
    }

    /// Verifies every chunk of a checked array now; false if one is
    /// damaged (other arrays need no check).
    pub fn verify(&self) -> bool {
        match self {
            Array::Checked(chunked) => chunked.verify(),
            _ => true,
        }
    }

    /// True once a chunk of a checked array failed its check.
    pub fn is_damaged(&self) -> bool {
        matches!(self, Array::Checked(chunked) if chunked.is_damaged())
    }

    /// True when every number can be read without a check.
    pub fn is_verified(&self) -> bool {
        match self {
            Array::Checked(chunked) => chunked.is_verified(),
            _ => true,
        }
    }

    /// The numbers.
    #[inline]
    pub fn as_slice(&self) -> &[T] {
        match self {
            Array::Owned(v) => v,
            // Checked in `shared`; an empty slice stands in for the
            // impossible failure rather than a panic.
            Array::Shared(bytes) => bytemuck::try_cast_slice(bytes).unwrap_or_default(),
            Array::Checked(chunked) => chunked
                .get(0..chunked.len())
                .and_then(|bytes| bytemuck::try_cast_slice(bytes).ok())
                .unwrap_or_default(),
        }
    }

    /// Number of items (without reading them).
    pub fn len(&self) -> usize {
        match self {
            Array::Checked(chunked) => chunked.len() / std::mem::size_of::<T>(),
            _ => self.as_slice().len(),
        }
    }

    /// True when there are no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes held by this array alone (zero when shared).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Array::Owned(v) => v.capacity() * std::mem::size_of::<T>(),
            Array::Shared(_) => 0,
            Array::Checked(chunked) => chunked.heap_bytes(),
        }
    }
}

impl<T: bytemuck::Pod> From<Vec<T>> for Array<T> {
    fn from(v: Vec<T>) -> Self {
        Array::Owned(v)
    }
}

/// Bytes checked lazily, chunk by chunk, against stored hashes: a saved
/// index's posting lists are most of its size, and a query reads a few of
/// them, so each chunk is verified the first time something in it is read
/// rather than all at open. The hash function is the store's (this layer
/// only keeps the results).
pub struct Chunked {
    bytes: Bytes,
    chunk: usize,
    hashes: Array<u64>,
    hash: fn(&[u8]) -> u64,
    verified: Box<[std::sync::atomic::AtomicU8]>,
    damaged: std::sync::atomic::AtomicBool,
    /// Called on each chunk once it is verified (see [`Chunked::releasing`]).
    release: Option<fn(&[u8])>,
}

const UNCHECKED: u8 = 0;
const GOOD: u8 = 1;
const BAD: u8 = 2;

impl Clone for Chunked {
    fn clone(&self) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
        Chunked {
            bytes: self.bytes.clone(),
            chunk: self.chunk,
            hashes: self.hashes.clone(),
            hash: self.hash,
            verified: self
                .verified
                .iter()
                .map(|v| AtomicU8::new(v.load(Ordering::Relaxed)))
                .collect(),
            damaged: AtomicBool::new(self.damaged.load(Ordering::Relaxed)),
            release: self.release,
        }
    }
}

impl fmt::Debug for Chunked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Chunked({} bytes, {} chunks)",
            self.bytes.len(),
            self.hashes.len()
        )
    }
}

impl Chunked {
    /// `bytes` checked in `chunk`-byte pieces against `hashes` (one per
    /// piece, the last one short); `None` if the counts disagree.
    pub fn new(
        bytes: Bytes,
        chunk: usize,
        hashes: Array<u64>,
        hash: fn(&[u8]) -> u64,
    ) -> Option<Self> {
        if chunk == 0 || hashes.len() != bytes.len().div_ceil(chunk) {
            return None;
        }
        let verified = (0..hashes.len())
            .map(|_| std::sync::atomic::AtomicU8::new(UNCHECKED))
            .collect();
        Some(Chunked {
            bytes,
            chunk,
            hashes,
            hash,
            verified,
            damaged: std::sync::atomic::AtomicBool::new(false),
            release: None,
        })
    }

    /// Bytes that need no check (a fresh build's, or a section verified
    /// whole when the file was opened).
    pub fn trusted(bytes: Bytes) -> Self {
        Chunked {
            chunk: bytes.len().max(1),
            bytes,
            hashes: Array::Owned(vec![0]),
            hash: |_| 0,
            verified: vec![std::sync::atomic::AtomicU8::new(GOOD)].into_boxed_slice(),
            damaged: std::sync::atomic::AtomicBool::new(false),
            release: None,
        }
    }

    /// Calls `release` on each chunk right after it is verified: for bytes
    /// mapped from a file, the store lets the pages go (they stay in the
    /// page cache), so checking a large list does not keep it resident.
    pub fn releasing(mut self, release: fn(&[u8])) -> Self {
        self.release = Some(release);
        self
    }

    /// Total bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Heap bytes held (the chunk marks; the bytes are shared).
    pub fn heap_bytes(&self) -> usize {
        self.bytes.heap_bytes() + self.hashes.heap_bytes() + self.verified.len()
    }

    /// `range` of the bytes once every chunk it touches is verified;
    /// `None` (and [`Chunked::is_damaged`] from then on) if one is not.
    pub fn get(&self, range: Range<usize>) -> Option<&[u8]> {
        let out = self.bytes.get(range.clone())?;
        if range.is_empty() {
            return Some(out);
        }
        self.check_all(range.start / self.chunk..range.end.div_ceil(self.chunk))
            .then_some(out)
    }

    /// Hands `read` each of `pieces` (ascending, back to back) before it is
    /// verified, and verifies each chunk once the pieces have passed its
    /// end. For a reader of every byte (a scan of all words) this halves
    /// the memory traffic: the hash then reads a chunk the reader has just
    /// brought into the cache, where verifying first makes the hash pay for
    /// the cold read and leaves the reader nothing to overlap it with.
    ///
    /// So `read` sees bytes that may be damaged: whatever it made of them
    /// counts only if this returns `Some`. `None` (and
    /// [`Chunked::is_damaged`] from then on) if a chunk touched is damaged
    /// or a piece is `None` or lies outside the bytes: its bounds were
    /// themselves damaged.
    pub fn read_then_verify(
        &self,
        pieces: impl IntoIterator<Item = Option<Range<usize>>>,
        mut read: impl FnMut(&[u8]),
    ) -> Option<()> {
        // Chunks from `next` on are not yet verified by this call.
        let (mut next, mut end) = (None, 0);
        for piece in pieces {
            let Some((range, bytes)) = piece.and_then(|r| Some((r.clone(), self.bytes.get(r)?)))
            else {
                self.damaged
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                return None;
            };
            read(bytes);
            if range.is_empty() {
                continue;
            }
            let first = *next.get_or_insert(range.start / self.chunk);
            let passed = range.end / self.chunk;
            if !self.check_all(first..passed) {
                return None;
            }
            next = Some(first.max(passed));
            end = end.max(range.end);
        }
        let rest = next.map_or(0..0, |first| first..end.div_ceil(self.chunk));
        self.check_all(rest).then_some(())
    }

    /// [`Chunked::check`] of each chunk of `chunks`, stopping at the first
    /// damaged one.
    fn check_all(&self, chunks: Range<usize>) -> bool {
        chunks.into_iter().all(|k| self.check(k))
    }

    /// Verifies chunk `k` unless that is done; false (and
    /// [`Chunked::is_damaged`] from then on) if it is damaged.
    fn check(&self, k: usize) -> bool {
        use std::sync::atomic::Ordering;
        let Some(mark) = self.verified.get(k) else {
            return false;
        };
        let state = match mark.load(Ordering::Relaxed) {
            UNCHECKED => {
                let start = k * self.chunk;
                let end = (start + self.chunk).min(self.bytes.len());
                let good = self.bytes.get(start..end).is_some_and(|piece| {
                    let good = self.hashes.as_slice().get(k) == Some(&(self.hash)(piece));
                    if let Some(release) = self.release {
                        release(piece);
                    }
                    good
                });
                let state = if good { GOOD } else { BAD };
                mark.store(state, Ordering::Relaxed);
                state
            }
            state => state,
        };
        if state != GOOD {
            self.damaged.store(true, Ordering::Relaxed);
        }
        state == GOOD
    }

    /// Verifies every chunk now; false if one is damaged.
    pub fn verify(&self) -> bool {
        self.get(0..self.len()).is_some()
    }

    /// True once a chunk failed its check.
    pub fn is_damaged(&self) -> bool {
        self.damaged.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// True when every chunk has passed its check (trusted bytes have).
    pub fn is_verified(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.verified
            .iter()
            .all(|v| v.load(Ordering::Relaxed) == GOOD)
    }
}

/// Checked bytes for tests, with a simple hash to damage them against.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Array, Bytes, Chunked};

    /// A hash that any flipped byte changes.
    pub fn sum_hash(bytes: &[u8]) -> u64 {
        bytes
            .iter()
            .fold(7u64, |h, &b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
    }

    /// `bytes` in checked chunks of `chunk` bytes, the chunk `broken` (if
    /// any) damaged after its hash was taken.
    pub fn chunked(bytes: &[u8], chunk: usize, broken: Option<usize>) -> Chunked {
        let mut bytes = bytes.to_vec();
        let hashes: Vec<u64> = bytes.chunks(chunk).map(sum_hash).collect();
        if let Some(k) = broken.filter(|&k| k * chunk < bytes.len()) {
            bytes[k * chunk] ^= 1;
        }
        Chunked::new(Bytes::Owned(bytes), chunk, Array::Owned(hashes), sum_hash)
            .expect("a hash per chunk")
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{chunked, sum_hash};
    use super::*;
    use proptest::prelude::*;

    /// `numbers` stored in checked chunks of `per_chunk` numbers, the
    /// chunk `broken` (if any) damaged after its hash was taken.
    fn checked(numbers: &[u32], per_chunk: usize, broken: Option<usize>) -> Array<u32> {
        let chunk = per_chunk * 4;
        let mut bytes: Vec<u8> = numbers.iter().flat_map(|n| n.to_le_bytes()).collect();
        let hashes: Vec<u64> = bytes.chunks(chunk).map(sum_hash).collect();
        if let Some(k) = broken.filter(|&k| k * chunk < bytes.len()) {
            bytes[k * chunk] ^= 1;
        }
        let chunked = Chunked::new(Bytes::Owned(bytes), chunk, Array::Owned(hashes), sum_hash)
            .expect("a hash per chunk");
        Array::checked(chunked).expect("whole numbers per chunk")
    }

    proptest! {
        /// Reading pieces first and verifying after: the reader is given
        /// exactly the pieces, and the answer is `Some` exactly when every
        /// chunk the pieces touch is sound, as `get` of their whole span
        /// says; a damaged span leaves the bytes marked damaged.
        #[test]
        fn read_then_verify_checks_what_get_checks(
            bytes in proptest::collection::vec(any::<u8>(), 1..400),
            chunk in 1usize..50,
            cuts in proptest::collection::vec(0usize..400, 0..12),
            span in (0usize..400, 0usize..400),
            broken in proptest::option::of(0usize..12),
            unplaced in proptest::option::of(0usize..12),
        ) {
            let (start, end) = (span.0.min(span.1) % bytes.len(), span.0.max(span.1).min(bytes.len()));
            let mut bounds: Vec<usize> = cuts.into_iter().filter(|c| (start..end).contains(c)).collect();
            bounds.extend([start, end.max(start)]);
            bounds.sort_unstable();
            let mut pieces: Vec<Option<Range<usize>>> = bounds.windows(2).map(|w| Some(w[0]..w[1])).collect();
            if let Some(k) = unplaced.filter(|&k| k < pieces.len()) {
                pieces[k] = None;
            }
            let reader = chunked(&bytes, chunk, broken);
            let mut seen = Vec::new();
            let read = reader.read_then_verify(pieces.iter().cloned(), |piece| seen.push(piece.to_vec()));
            let whole = chunked(&bytes, chunk, broken).get(start..end.max(start)).is_some();
            let placed = pieces.iter().all(Option::is_some);
            prop_assert_eq!(read.is_some(), whole && placed);
            prop_assert_eq!(reader.is_damaged(), read.is_none());
            let handed: Vec<Vec<u8>> = pieces
                .iter()
                .map_while(|p| p.clone())
                .map(|r| reader.bytes.get(r).map(<[u8]>::to_vec).unwrap_or_default())
                .collect();
            prop_assert_eq!(&seen[..], &handed[..seen.len().min(handed.len())]);
            if read.is_some() {
                prop_assert_eq!(seen, handed);
            }
        }

        /// Reading many numbers a chunk at a time gives what reading each
        /// alone gives: the same numbers, or `None` exactly when one of
        /// them lies past the end or in the damaged chunk.
        #[test]
        fn numbers_read_a_chunk_at_a_time_are_the_numbers_read_alone(
            numbers in proptest::collection::vec(any::<u32>(), 1..300),
            per_chunk in 1usize..40,
            mut ids in proptest::collection::vec(0usize..320, 0..60),
            ascending in any::<bool>(),
            broken in proptest::option::of(0usize..10),
        ) {
            if ascending {
                ids.sort_unstable();
            }
            let alone = checked(&numbers, per_chunk, broken);
            let want: Option<Vec<u32>> = ids.iter().map(|&i| alone.get(i)).collect();
            let mut got = Vec::new();
            let read = checked(&numbers, per_chunk, broken).for_each_at(ids.iter().copied(), |n| got.push(n));
            prop_assert_eq!(read.is_some(), want.is_some());
            if let Some(want) = want {
                prop_assert_eq!(got, want);
            }
            let plain = Array::Owned(numbers.clone());
            let mut got = Vec::new();
            let read = plain.for_each_at(ids.iter().copied(), |n| got.push(n));
            prop_assert_eq!(read.is_some(), ids.iter().all(|&i| i < numbers.len()));
            if read.is_some() {
                prop_assert_eq!(got, ids.iter().map(|&i| numbers[i]).collect::<Vec<_>>());
            }
        }
    }
}
