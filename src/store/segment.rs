//! One saved index (a *segment*): its description, file table with the
//! stamps a refresh compares, vocabulary, counts and posting lists; and for
//! a delta, what it hides of its base.

use std::fs::File;
use std::hash::Hasher as _;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::format::{
    section, Committed, Container, Damage, Decoder, Encoder, FormatError, Part, Writer,
};
use crate::index::bytes::{Array, Chunked, Owner};
use crate::index::pairs::{PairCounter, PairMarker};
use crate::index::postings::{append_list, read_varint, write_varint, Group, Groups};
use crate::index::stream::ListSink;
use crate::index::vocabulary::{suffix_key, Coded, FrontCoder, SUFFIX_ORDER_WORDS, TEXT_GROUP};
use crate::index::{Damaged, FileTable, Hit, Index, Offsets, View, Vocabulary};

/// Whether a segment stands alone or sits on a base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole index.
    Base,
    /// Changes on top of the base whose id it names.
    Delta,
}

/// A segment's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Base or delta.
    pub kind: Kind,
    /// A base's own id; a delta's base's id.
    pub base_id: u64,
    /// The tree indexed (canonical path, raw bytes).
    pub root: Vec<u8>,
    /// `--exclude` globs of the build.
    pub excludes: Vec<String>,
    /// When it was saved, in seconds since 1970.
    pub saved_at: u64,
}

/// What a refresh needs to know of an indexed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// Relative path as displayed (and sorted).
    pub display: String,
    /// Relative path as raw bytes, when it differs from `display`.
    pub raw: Option<Vec<u8>>,
    /// Size when it was listed.
    pub size: u64,
    /// Modification time when it was listed, in nanoseconds since 1970.
    pub mtime_ns: i64,
    /// Status-change time when it was listed, in nanoseconds since 1970.
    pub ctime_ns: i64,
    /// Inode when it was listed.
    pub inode: u64,
    /// True if it could not be read: a refresh reads it again regardless.
    pub recheck: bool,
}

impl FileRecord {
    /// The raw relative path.
    pub fn raw_path(&self) -> &[u8] {
        self.raw.as_deref().unwrap_or(self.display.as_bytes())
    }
}

/// A segment read from a file, used in place.
#[derive(Debug)]
pub struct Segment {
    /// Its description.
    pub meta: Meta,
    /// Its files' paths, sizes and times.
    pub records: Records,
    /// Its words and posting lists.
    pub index: Index,
    /// A delta's base files it replaces or removes (sorted file numbers).
    pub dropped: Vec<u32>,
    /// A delta's lowered counts of base words (see [`crate::index::Layer`]).
    pub adjusted: Vec<(u32, u32)>,
}

impl Segment {
    /// Checks the whole file table now: its paths, which a query checks
    /// one by one as it reads them, and so the records a refresh or a
    /// stamp decodes (the table reads its paths from them).
    /// [`Damage::Checksum`] of the file table if it is damaged.
    pub fn verify_files(&self) -> Result<(), FormatError> {
        self.index
            .files()
            .verify()
            .map_err(|_| FormatError::Damaged(Damage::Checksum(Part::FileTable)))
    }
}

pub(super) fn encode_meta(meta: &Meta) -> Vec<u8> {
    let mut e = Encoder::default();
    e.u8(match meta.kind {
        Kind::Base => 0,
        Kind::Delta => 1,
    });
    e.u64(meta.base_id);
    e.bytes(&meta.root);
    e.u32(meta.excludes.len() as u32);
    for g in &meta.excludes {
        e.bytes(g.as_bytes());
    }
    e.u64(meta.saved_at);
    e.bytes
}

pub(super) fn decode_meta(bytes: &[u8]) -> Option<Meta> {
    let mut d = Decoder::new(bytes);
    let kind = match d.u8()? {
        0 => Kind::Base,
        1 => Kind::Delta,
        _ => return None,
    };
    let base_id = d.u64()?;
    let root = d.bytes()?.to_vec();
    let n = d.u32()? as usize;
    // Each glob takes at least its 4-byte length: bound before allocating.
    let mut excludes = Vec::with_capacity(n.min(d.remaining() / 4));
    for _ in 0..n {
        excludes.push(String::from_utf8(d.bytes()?.to_vec()).ok()?);
    }
    let saved_at = d.u64()?;
    Some(Meta {
        kind,
        base_id,
        root,
        excludes,
        saved_at,
    })
}

/// The records, and where each begins in them (so a path is read without
/// decoding the records before it).
fn encode_records(records: &[FileRecord]) -> (Vec<u8>, Vec<u64>) {
    let mut e = Encoder::default();
    let mut starts = Vec::with_capacity(records.len());
    e.u64(records.len() as u64);
    for r in records {
        starts.push(e.bytes.len() as u64);
        e.bytes(r.display.as_bytes());
        e.u8(u8::from(r.recheck) | (u8::from(r.raw.is_some()) << 1));
        if let Some(raw) = &r.raw {
            e.bytes(raw);
        }
        e.u64(r.size);
        e.i64(r.mtime_ns);
        e.i64(r.ctime_ns);
        e.u64(r.inode);
    }
    (e.bytes, starts)
}

/// The displayed path at the front of an encoded record.
fn record_path(record: &[u8]) -> Option<&str> {
    std::str::from_utf8(Decoder::new(record).bytes()?).ok()
}

/// A segment's file records, decoded the first time they are all needed
/// (a refresh, or lines read with their stamps): a query on an opened
/// index reads paths from the file table alone.
#[derive(Debug, Default)]
pub struct Records {
    /// The stored records, shared with the file table.
    encoded: Option<Arc<Chunked>>,
    count: usize,
    decoded: std::sync::OnceLock<Vec<FileRecord>>,
}

impl Records {
    fn encoded(bytes: Arc<Chunked>, count: usize) -> Self {
        Records {
            encoded: Some(bytes),
            count,
            decoded: std::sync::OnceLock::new(),
        }
    }

    /// Number of records, without decoding them.
    pub fn len(&self) -> usize {
        match self.decoded.get() {
            Some(records) => records.len(),
            None => self.count,
        }
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The records as a vector.
    pub fn into_vec(self) -> Vec<FileRecord> {
        let _ = self.as_slice();
        self.decoded.into_inner().unwrap_or_default()
    }

    /// The records (decoded now if they were not). Whoever reads them
    /// checks them first ([`Segment::verify_files`], done when a store is
    /// opened for more than answering), and their shape was checked when
    /// the segment was read, so decoding cannot fail; damaged bytes decode
    /// as no records rather than wrong ones.
    pub fn as_slice(&self) -> &[FileRecord] {
        self.decoded.get_or_init(|| {
            self.encoded
                .as_ref()
                .and_then(|bytes| decode_records(bytes.get(0..bytes.len())?))
                .unwrap_or_default()
        })
    }
}

impl From<Vec<FileRecord>> for Records {
    fn from(records: Vec<FileRecord>) -> Self {
        Records {
            encoded: None,
            count: records.len(),
            decoded: std::sync::OnceLock::from(records),
        }
    }
}

impl std::ops::Deref for Records {
    type Target = [FileRecord];

    fn deref(&self) -> &[FileRecord] {
        self.as_slice()
    }
}

fn decode_records(bytes: &[u8]) -> Option<Vec<FileRecord>> {
    let mut d = Decoder::new(bytes);
    let n = d.u64()?;
    // A record takes at least 21 bytes: bound the allocation by the section.
    let n = usize::try_from(n)
        .ok()
        .filter(|&n| n <= d.remaining() / 21)?;
    let mut records = Vec::with_capacity(n);
    for _ in 0..n {
        let display = String::from_utf8(d.bytes()?.to_vec()).ok()?;
        let flags = d.u8()?;
        let raw = if flags & 2 != 0 {
            Some(d.bytes()?.to_vec())
        } else {
            None
        };
        records.push(FileRecord {
            display,
            raw,
            size: d.u64()?,
            mtime_ns: d.i64()?,
            ctime_ns: d.i64()?,
            inode: d.u64()?,
            recheck: flags & 1 != 0,
        });
    }
    (d.remaining() == 0).then_some(records)
}

/// Why a segment was not written.
#[derive(Debug)]
pub enum WriteError {
    /// The file system refused.
    Io(io::Error),
    /// A saved list being copied failed its checksum.
    DamagedSource,
}

impl From<io::Error> for WriteError {
    fn from(e: io::Error) -> Self {
        WriteError::Io(e)
    }
}

/// Bytes of posting lists per chunk hash: small enough that a query
/// reading a few words' lists verifies little more than it reads (a MiB
/// each made a ten-word answer hash ten MiB), large enough that the hash
/// table stays small (about 4,400 entries for the kernel's 285 MB).
const LIST_CHUNK: usize = 64 << 10;

/// The hash of each [`LIST_CHUNK`] bytes written through it.
struct ChunkHasher {
    current: twox_hash::XxHash3_64,
    chunk: usize,
    filled: usize,
    hashes: Vec<u64>,
}

/// Chunk of the word tables (vocabulary, counts, offsets): a lookup's
/// binary search touches a few dozen places, each costing a chunk's hash
/// the first time, so they are smaller than the lists' chunks.
const TABLE_CHUNK: usize = 64 << 10;

/// Chunk of the words as plain text. A substring search reads some
/// groups of words there and decodes the others, and each group read is
/// verified right after; a chunk of 64 KiB held three groups, so a group
/// read often made the hash read the cold text of a neighbour that was
/// decoded instead. At 4 KiB, `*_t*` hashed 150 MB where it hashed 160,
/// and `*_t*`, `*e_*` and `*iv*` spent 2.2-3.2 ms less CPU hashing
/// (medians of 11 interleaved runs; the hash table is 240 KB).
const TEXT_CHUNK: usize = 4 << 10;

/// Chunk of the file table (records and their starts): an answer reads
/// the paths of the files it names, a few hundred scattered over tens of
/// thousands, so a small chunk keeps it from checking the whole table.
const FILE_CHUNK: usize = 4 << 10;

impl ChunkHasher {
    fn new() -> Self {
        Self::with_chunk(LIST_CHUNK)
    }

    fn with_chunk(chunk: usize) -> Self {
        ChunkHasher {
            current: twox_hash::XxHash3_64::new(),
            chunk,
            filled: 0,
            hashes: vec![chunk as u64],
        }
    }

    fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let take = (self.chunk - self.filled).min(bytes.len());
            self.current.write(&bytes[..take]);
            self.filled += take;
            bytes = &bytes[take..];
            if self.filled == self.chunk {
                self.hashes.push(self.current.finish());
                self.current = twox_hash::XxHash3_64::new();
                self.filled = 0;
            }
        }
    }

    /// The chunk size, then each chunk's hash.
    fn finish(mut self) -> Vec<u64> {
        if self.filled > 0 {
            self.hashes.push(self.current.finish());
        }
        self.hashes
    }
}

fn hash_chunk(bytes: &[u8]) -> u64 {
    twox_hash::XxHash3_64::oneshot(bytes)
}

fn u64s(numbers: &[u64]) -> &[u8] {
    bytemuck::cast_slice(numbers)
}

fn u32s(bytes: &[u32]) -> &[u8] {
    bytemuck::cast_slice(bytes)
}

/// Where a segment is written.
#[derive(Debug, Clone, Copy)]
pub enum Destination<'a> {
    /// This file, replaced atomically.
    File(&'a Path),
    /// A file with no name in this folder, used while the process lives.
    Anonymous(&'a Path),
}

/// A written segment.
#[derive(Debug)]
pub enum Written {
    /// A file: its length and header hash.
    File(Committed),
    /// An anonymous file, and its length.
    Anonymous(File, u64),
}

impl Written {
    /// Bytes written.
    pub fn len(&self) -> u64 {
        match self {
            Written::File(file) => file.len,
            Written::Anonymous(_, len) => *len,
        }
    }
}

/// List bytes gathered before they are hashed and written.
const PENDING_LISTS: usize = 1 << 20;

/// The per-word tables are held in memory up to this size; past it they go
/// to a temporary file until they are copied into the segment.
const SIDE_MEMORY: usize = 32 << 20;

/// One of a segment's per-word tables while the lists are written before it.
struct Side {
    memory: Vec<u8>,
    file: Option<BufWriter<File>>,
    len: u64,
}

impl Side {
    fn new() -> Self {
        Side {
            memory: Vec::new(),
            file: None,
            len: 0,
        }
    }

    fn push(&mut self, bytes: &[u8], folder: &Path) -> io::Result<()> {
        self.len += bytes.len() as u64;
        if let Some(file) = &mut self.file {
            return file.write_all(bytes);
        }
        self.memory.extend_from_slice(bytes);
        if self.memory.len() > SIDE_MEMORY {
            let mut file = BufWriter::with_capacity(1 << 20, tempfile::tempfile_in(folder)?);
            file.write_all(&self.memory)?;
            self.memory = Vec::new();
            self.file = Some(file);
        }
        Ok(())
    }

    /// Hands every byte pushed, in order, to `f` in pieces of whole 8-byte
    /// values.
    fn drain(self, f: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        let Some(file) = self.file else {
            return f(&self.memory);
        };
        let mut file = file.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        let mut buffer = vec![0u8; 1 << 20];
        let mut left = self.len;
        while left > 0 {
            let n = buffer
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            file.read_exact(&mut buffer[..n])?;
            f(&buffer[..n])?;
            left -= n as u64;
        }
        Ok(())
    }
}

/// A segment written word by word: each word's list, then the word. The
/// lists go straight to the file; the vocabulary, counts and offsets that
/// follow them are kept aside (on disk past [`SIDE_MEMORY`]) and copied
/// after, so writing an index of any size takes little memory.
pub struct SegmentWriter {
    w: Writer,
    /// List bytes not yet written: hashed and written a megabyte at a time,
    /// since most lists are a few bytes.
    pending: Vec<u8>,
    chunks: ChunkHasher,
    written: u64,
    list_start: u64,
    tables: WordTables,
    kind: Kind,
}

/// A segment's per-word tables while its lists are written: kept apart
/// from the lists so that [`SegmentWriter::append`] fills them on another
/// thread while it copies a part's lists.
struct WordTables {
    folder: PathBuf,
    coder: FrontCoder,
    words: Side,
    blocks: Side,
    signatures: Side,
    counts: Side,
    /// Per word: where its list starts (u64).
    offsets: Side,
    /// The words as plain text, and where each group of them starts.
    text: Side,
    text_groups: Side,
    /// Every word's suffix key, to be sorted at the end; dropped past
    /// `suffix_limit` words ([`SUFFIX_ORDER_WORDS`], lower in tests).
    suffix_keys: Option<Vec<u64>>,
    suffix_limit: usize,
    /// The words' byte pairs, counted for a saved file (see
    /// [`crate::index::pairs`]); `None` for an unsaved build, whose merge
    /// would spend about 0.2 CPU-s on the kernel's pairs.
    pairs: Option<PairCounter>,
    words_pushed: usize,
    drained: Coded,
}

impl WordTables {
    /// Tables written beside `folder`, with suffix keys up to
    /// `suffix_limit` words, and with the common pairs' bits if `pairs`.
    fn new(folder: PathBuf, suffix_limit: usize, pairs: bool) -> Self {
        WordTables {
            folder,
            coder: FrontCoder::default(),
            words: Side::new(),
            blocks: Side::new(),
            signatures: Side::new(),
            counts: Side::new(),
            offsets: Side::new(),
            text: Side::new(),
            text_groups: Side::new(),
            suffix_keys: Some(Vec::new()),
            suffix_limit,
            pairs: pairs.then(PairCounter::default),
            words_pushed: 0,
            drained: Coded::default(),
        }
    }

    /// The next word, to the front-coded blocks and to the plain text.
    fn push_word(&mut self, word: &[u8]) -> io::Result<()> {
        self.coder.push(word);
        if self.words_pushed.is_multiple_of(TEXT_GROUP) {
            let start = self.text.len;
            self.text_groups.push(&start.to_le_bytes(), &self.folder)?;
        }
        match &mut self.suffix_keys {
            // Below the limit, a word's number fits a key's 32 bits.
            Some(keys) if self.words_pushed < self.suffix_limit => {
                keys.push(suffix_key(word, self.words_pushed as u32));
            }
            _ => self.suffix_keys = None,
        }
        if let Some(pairs) = &mut self.pairs {
            pairs.add(word);
        }
        self.words_pushed += 1;
        self.text.push(word, &self.folder)?;
        self.text.push(&[0], &self.folder)
    }

    fn word(&mut self, word: &[u8], count: u32, list_start: u64) -> io::Result<()> {
        self.push_word(word)?;
        self.counts.push(&count.to_le_bytes(), &self.folder)?;
        self.offsets.push(&list_start.to_le_bytes(), &self.folder)?;
        self.drain_if_large()
    }

    fn drain_if_large(&mut self) -> io::Result<()> {
        if self.coder.pending_bytes() > 1 << 20 {
            self.coder.drain(&mut self.drained);
            let drained = &mut self.drained;
            self.words.push(&drained.data, &self.folder)?;
            self.blocks
                .push(bytemuck::cast_slice(&drained.blocks), &self.folder)?;
            self.signatures
                .push(bytemuck::cast_slice(&drained.signatures), &self.folder)?;
            drained.data.clear();
            drained.blocks.clear();
            drained.signatures.clear();
        }
        Ok(())
    }

    /// Adds a part's tables, its lists placed at `base`.
    fn append(&mut self, words: Side, counts: Side, ends: Side, base: u64) -> io::Result<()> {
        // A word's list starts where the one before ends.
        let (offsets, folder, mut start) = (&mut self.offsets, &self.folder, base);
        let mut shifted = Vec::new();
        ends.drain(&mut |bytes| {
            shifted.clear();
            for end in bytes.chunks_exact(8) {
                shifted.extend_from_slice(&start.to_le_bytes());
                let mut value = [0u8; 8];
                value.copy_from_slice(end);
                start = base + u64::from_le_bytes(value);
            }
            offsets.push(&shifted, folder)
        })?;
        let counts_side = &mut self.counts;
        counts.drain(&mut |bytes| counts_side.push(bytes, folder))?;
        // Words are front-coded again: blocks start every 16 words of the
        // whole vocabulary. Entries may straddle the pieces `drain` gives.
        let mut carry: Vec<u8> = Vec::new();
        words.drain(&mut |bytes| {
            carry.extend_from_slice(bytes);
            let mut at = 0;
            loop {
                let mut pos = at;
                let Some(len) = read_varint(&carry, &mut pos) else {
                    break;
                };
                let end = usize::try_from(len)
                    .ok()
                    .and_then(|len| pos.checked_add(len))
                    .ok_or_else(|| io::Error::other("a part's word table is damaged"))?;
                let Some(word) = carry.get(pos..end) else {
                    break;
                };
                self.push_word(word)?;
                at = end;
            }
            carry.drain(..at);
            self.drain_if_large()
        })?;
        if !carry.is_empty() {
            return Err(io::Error::other("a part's word table ends inside a word"));
        }
        Ok(())
    }
}

impl SegmentWriter {
    /// Starts a segment described by `meta`, over the files `records`.
    pub fn create(
        destination: Destination<'_>,
        meta: &Meta,
        records: &[FileRecord],
    ) -> Result<Self, WriteError> {
        // A saved file holds the common pairs' bits (three sections).
        let pairs = matches!(destination, Destination::File(_));
        let sections = match meta.kind {
            Kind::Delta => 26,
            _ => 23,
        } + if pairs { 3 } else { 0 };
        let (w, folder) = match destination {
            Destination::File(path) => (
                Writer::create(path, sections)?,
                super::format::folder_of(path).to_path_buf(),
            ),
            Destination::Anonymous(folder) => {
                (Writer::anonymous(folder, sections)?, folder.to_path_buf())
            }
        };
        let mut writer = SegmentWriter {
            w,
            pending: Vec::with_capacity(PENDING_LISTS),
            chunks: ChunkHasher::new(),
            written: 0,
            list_start: 0,
            tables: WordTables::new(
                folder,
                crate::index::TestLimits::from_env()
                    .suffixes
                    .min(SUFFIX_ORDER_WORDS),
                pairs,
            ),
            kind: meta.kind,
        };
        writer.w.section(section::META, &encode_meta(meta))?;
        let (encoded, starts) = encode_records(records);
        // Checked by chunks as paths are read: opening reads none of it.
        for (id, chunks, bytes) in [
            (section::FILES, section::FILES_CHUNKS, &encoded[..]),
            (
                section::FILE_STARTS,
                section::FILE_STARTS_CHUNKS,
                u64s(&starts),
            ),
        ] {
            write_lazy(&mut writer.w, id, chunks, FILE_CHUNK, |write| write(bytes))?;
        }
        writer.w.begin_lazy(section::LISTS)?;
        Ok(writer)
    }

    /// The next bytes of the current word's list.
    pub fn list(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.written += bytes.len() as u64;
        if self.pending.len() + bytes.len() > PENDING_LISTS {
            self.write_pending()?;
            if bytes.len() > PENDING_LISTS / 2 {
                self.w.write(bytes)?;
                self.chunks.update(bytes);
                return Ok(());
            }
        }
        self.pending.extend_from_slice(bytes);
        Ok(())
    }

    fn write_pending(&mut self) -> io::Result<()> {
        self.w.write(&self.pending)?;
        self.chunks.update(&self.pending);
        self.pending.clear();
        Ok(())
    }

    /// Ends the current word (the words must come in ascending order).
    pub fn word(&mut self, word: &[u8], count: u32) -> io::Result<()> {
        self.tables.word(word, count, self.list_start)?;
        self.list_start = self.written;
        Ok(())
    }

    /// Writes the tables after the lists (and, for a delta, what it hides
    /// of its base) and finishes the file.
    pub fn finish(
        mut self,
        dropped: &[u32],
        adjusted: &[(u32, u32)],
    ) -> Result<Written, WriteError> {
        let WordTables {
            folder,
            coder,
            mut words,
            mut blocks,
            mut signatures,
            counts,
            mut offsets,
            text,
            mut text_groups,
            suffix_keys,
            pairs,
            words_pushed,
            ..
        } = std::mem::replace(&mut self.tables, WordTables::new(PathBuf::new(), 0, false));
        text_groups.push(&text.len.to_le_bytes(), &folder)?;
        offsets.push(&self.written.to_le_bytes(), &folder)?;
        self.write_pending()?;
        self.w.end();
        let chunks = std::mem::replace(&mut self.chunks, ChunkHasher::new());
        self.w
            .section(section::LIST_CHUNKS, bytemuck::cast_slice(&chunks.finish()))?;
        let rest = coder.finish();
        words.push(&rest.data, &folder)?;
        // `finish` ends the block table with the end of the data.
        blocks.push(bytemuck::cast_slice(&rest.blocks), &folder)?;
        signatures.push(bytemuck::cast_slice(&rest.signatures), &folder)?;
        let w = &mut self.w;
        std::thread::scope(|scope| -> io::Result<()> {
            // The suffix keys (a quarter second's sort for the kernel's 5
            // million words) are sorted while the other tables are written.
            let sorting = suffix_keys.map(|mut keys| {
                scope.spawn(move || {
                    keys.sort_unstable();
                    keys
                })
            });
            // The tables a query reads a few entries of are verified chunk
            // by chunk as they are read, like the lists: each carries its
            // chunks' hashes, so opening an index hashes none of them.
            let lazy = |w: &mut Writer,
                        id: u32,
                        chunks: u32,
                        side: Side,
                        narrow: bool|
             -> io::Result<()> {
                let mut buffer = Vec::new();
                write_lazy(w, id, chunks, TABLE_CHUNK, |write| {
                    side.drain(&mut |bytes| match narrow {
                        // Offsets below 2^32 are kept as u32.
                        true => {
                            buffer.clear();
                            buffer.extend(bytes.chunks_exact(8).flat_map(|b| {
                                let mut wide = [0u8; 8];
                                wide.copy_from_slice(b);
                                (u64::from_le_bytes(wide) as u32).to_le_bytes()
                            }));
                            write(&buffer)
                        }
                        false => write(bytes),
                    })
                })
            };
            lazy(w, section::WORDS, section::WORDS_CHUNKS, words, false)?;
            lazy(w, section::BLOCKS, section::BLOCKS_CHUNKS, blocks, false)?;
            lazy(
                w,
                section::SIGNATURES,
                section::SIGNATURES_CHUNKS,
                signatures,
                false,
            )?;
            lazy(w, section::COUNTS, section::COUNTS_CHUNKS, counts, false)?;
            // The common pairs' bits are marked as the text goes out.
            let common = pairs.map(|counted| counted.common());
            let mut marker =
                (common.as_deref()).map(|common| PairMarker::new(common, words_pushed));
            write_lazy(
                w,
                section::TEXT,
                section::TEXT_CHUNKS,
                TEXT_CHUNK,
                |write| {
                    text.drain(&mut |bytes| {
                        if let Some(marker) = &mut marker {
                            marker.scan(bytes);
                        }
                        write(bytes)
                    })
                },
            )?;
            lazy(
                w,
                section::TEXT_GROUPS,
                section::TEXT_GROUPS_CHUNKS,
                text_groups,
                false,
            )?;
            if let (Some(common), Some(marker)) = (common, marker) {
                w.section(section::PAIRS, common.as_flattened())?;
                let rows = marker.finish();
                write_lazy_table(w, section::PAIR_BITS, section::PAIR_BITS_CHUNKS, &rows)?;
            }
            match self.written <= u64::from(u32::MAX) {
                true => lazy(w, section::OFFSETS, section::OFFSETS_CHUNKS, offsets, true)?,
                false => lazy(
                    w,
                    section::OFFSETS_WIDE,
                    section::OFFSETS_CHUNKS,
                    offsets,
                    false,
                )?,
            }
            // Past the limit the sections are written empty, which a
            // reader takes as none: the file's header has room for a fixed
            // number of sections, set before the words are known.
            let keys = match sorting {
                Some(sorting) => sorting
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                None => Vec::new(),
            };
            write_lazy_table(w, section::SUFFIXES, section::SUFFIXES_CHUNKS, &keys)?;
            Ok(())
        })?;
        if self.kind == Kind::Delta {
            w.section(section::DROPPED, u32s(dropped))?;
            let (words, left): (Vec<u32>, Vec<u32>) = adjusted.iter().copied().unzip();
            w.section(section::ADJUSTED_WORDS, u32s(&words))?;
            w.section(section::ADJUSTED_LEFT, u32s(&left))?;
        }
        Ok(match self.w.is_anonymous() {
            true => {
                let file = self.w.finish_anonymous()?;
                let len = file.metadata()?.len();
                Written::Anonymous(file, len)
            }
            false => Written::File(self.w.commit()?),
        })
    }
}

/// Writes section `id` from the bytes `fill` hands to its writer, flagged
/// lazy, with its chunks' hashes in section `chunks`.
fn write_lazy(
    w: &mut Writer,
    id: u32,
    chunks: u32,
    chunk: usize,
    fill: impl FnOnce(&mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()>,
) -> io::Result<()> {
    w.begin_lazy(id)?;
    let mut hasher = ChunkHasher::with_chunk(chunk);
    fill(&mut |bytes| {
        hasher.update(bytes);
        w.write(bytes)
    })?;
    w.end();
    w.section(chunks, bytemuck::cast_slice(&hasher.finish()))
}

/// Writes `values` as section `id`, flagged lazy, checked by
/// [`TABLE_CHUNK`]s whose hashes go in section `chunks`.
fn write_lazy_table(w: &mut Writer, id: u32, chunks: u32, values: &[u64]) -> io::Result<()> {
    write_lazy(w, id, chunks, TABLE_CHUNK, |write| {
        bytemuck::cast_slice::<u64, u8>(values)
            .chunks(1 << 20)
            .try_for_each(write)
    })
}

/// The upper part of a vocabulary merged apart from the lower one (on
/// another thread): its lists and per-word tables in temporary files, to
/// be appended to the [`SegmentWriter`] that wrote the lower part.
pub struct PartWriter {
    folder: PathBuf,
    lists: BufWriter<File>,
    lists_len: u64,
    /// Per word: varint length, then the word.
    words: Side,
    /// Per word: its count (u32).
    counts: Side,
    /// Per word: where its list ends in the part's lists (u64).
    ends: Side,
    entry: Vec<u8>,
}

impl PartWriter {
    /// A part whose temporary files go in `folder`.
    pub fn new(folder: &Path) -> io::Result<Self> {
        Ok(PartWriter {
            folder: folder.to_path_buf(),
            lists: BufWriter::with_capacity(1 << 20, tempfile::tempfile_in(folder)?),
            lists_len: 0,
            words: Side::new(),
            counts: Side::new(),
            ends: Side::new(),
            entry: Vec::new(),
        })
    }
}

impl ListSink for PartWriter {
    fn list(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.lists_len += bytes.len() as u64;
        self.lists.write_all(bytes)
    }

    fn word(&mut self, word: &[u8], count: u32, _: u32) -> io::Result<()> {
        self.entry.clear();
        write_varint(&mut self.entry, word.len() as u64);
        self.entry.extend_from_slice(word);
        self.words.push(&self.entry, &self.folder)?;
        self.counts.push(&count.to_le_bytes(), &self.folder)?;
        self.ends.push(&self.lists_len.to_le_bytes(), &self.folder)
    }
}

impl SegmentWriter {
    /// Appends a part merged apart (its words all after this writer's).
    /// Its lists are copied while its tables are added on another thread.
    pub fn append(&mut self, part: PartWriter) -> io::Result<()> {
        let PartWriter {
            lists,
            lists_len,
            words,
            counts,
            ends,
            ..
        } = part;
        self.write_pending()?;
        let base = self.written;
        let mut lists = lists.into_inner().map_err(|e| e.into_error())?;
        let tables = &mut self.tables;
        std::thread::scope(|scope| {
            let tables = scope.spawn(move || tables.append(words, counts, ends, base));
            let copied = (|| {
                lists.seek(SeekFrom::Start(0))?;
                let mut buffer = vec![0u8; 1 << 20];
                let mut left = lists_len;
                while left > 0 {
                    let n = buffer
                        .len()
                        .min(usize::try_from(left).unwrap_or(usize::MAX));
                    lists.read_exact(&mut buffer[..n])?;
                    self.w.write(&buffer[..n])?;
                    self.chunks.update(&buffer[..n]);
                    self.written += n as u64;
                    left -= n as u64;
                }
                Ok(())
            })();
            let tabled = tables
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("adding a part's tables panicked")));
            copied.and(tabled)
        })?;
        self.list_start = self.written;
        Ok(())
    }
}

impl ListSink for SegmentWriter {
    fn list(&mut self, bytes: &[u8]) -> io::Result<()> {
        SegmentWriter::list(self, bytes)
    }

    fn word(&mut self, word: &[u8], count: u32, _: u32) -> io::Result<()> {
        SegmentWriter::word(self, word, count)
    }
}

/// Writes every word of `view` as one segment at `destination`, with
/// `records` describing the view's files (in the view's order).
pub fn write(
    destination: Destination<'_>,
    view: &View,
    records: &[FileRecord],
    meta: &Meta,
    dropped: &[u32],
    adjusted: &[(u32, u32)],
) -> Result<Written, WriteError> {
    let hits = view
        .hits(|v| crate::index::Picks::span(0..v.len()))
        .map_err(|Damaged| WriteError::DamagedSource)?;
    write_hits(destination, view, &hits, records, meta, dropped, adjusted)
}

/// Writes the words `hits` of `view` (ascending) as one segment: all of
/// them, or one shard's range.
pub fn write_hits(
    destination: Destination<'_>,
    view: &View,
    hits: &[Hit],
    records: &[FileRecord],
    meta: &Meta,
    dropped: &[u32],
    adjusted: &[(u32, u32)],
) -> Result<Written, WriteError> {
    let mut writer = SegmentWriter::create(destination, meta, records)?;
    let mut list = Vec::new();
    let mut groups = Vec::new();
    for hit in hits {
        list.clear();
        // A stored list failing its check while being copied: keep the old
        // file rather than commit one with occurrences missing.
        let count = encode_list(view, hit, &mut groups, &mut list)
            .map_err(|Damaged| WriteError::DamagedSource)?;
        if count == 0 {
            continue;
        }
        writer.list(&list)?;
        let word = view
            .word_bytes(hit)
            .map_err(|Damaged| WriteError::DamagedSource)?;
        writer.word(&word, count)?;
    }
    writer.finish(dropped, adjusted)
}

/// Encodes a word's list in the view's file numbering; returns its count.
/// Stored lists are joined as they are when the view numbers files as they
/// were stored; otherwise their file groups are renumbered, dropped or
/// interleaved across layers, each group's body copied untouched.
fn encode_list<'v>(
    view: &'v View,
    hit: &Hit,
    groups: &mut Vec<(u32, Group<'v>)>,
    out: &mut Vec<u8>,
) -> Result<u32, Damaged> {
    let mut parts = hit.parts();
    let single = match (parts.next(), parts.next()) {
        (Some(part), None) => Some(part),
        _ => None,
    };
    if let Some((l, id)) = single {
        let layer = &view.layers()[l];
        if layer.is_identity() {
            let mut last_file = None;
            for piece in layer.index().raw_lists(id)? {
                if append_list(out, piece, last_file).is_none() {
                    return Err(Damaged);
                }
                last_file = Groups::new(piece).last().map(|g| g.file);
            }
            return layer.index().count(id);
        }
    }
    groups.clear();
    for (l, id) in hit.parts() {
        let layer = &view.layers()[l];
        for piece in layer.index().raw_lists(id)? {
            groups.extend(
                Groups::new(piece).filter_map(|g| layer.rank(g.file).map(|rank| (rank, g))),
            );
        }
    }
    if single.is_none() {
        // Layers hold disjoint files: ordering groups by file is the merge.
        groups.sort_by_key(|&(rank, _)| rank);
    }
    let mut previous = None;
    let mut count = 0u32;
    for (rank, group) in groups.iter() {
        group.write(out, *rank, previous);
        previous = Some(*rank);
        count = count.saturating_add(group.entries);
    }
    Ok(count)
}

/// Reads a segment from a checked container's bytes; `release` is what to
/// do with checked bytes (see [`Container::open`]).
pub fn read(owner: Owner, release: Option<fn(&[u8])>) -> Result<Segment, FormatError> {
    read_container(Container::open(owner, release)?)
}

/// Reads a segment from an opened container.
pub fn read_container(c: Container) -> Result<Segment, FormatError> {
    let release = c.release();
    let damaged = FormatError::Damaged;
    let need = |id| c.section(id).ok_or(damaged(Damage::MissingSection));
    let meta =
        decode_meta(&need(section::META)?).ok_or(damaged(Damage::Malformed(Part::Description)))?;
    let (records, files) = read_files(&c)?;
    // The word tables are kept mapped once checked: a search reads them
    // again at once (a pattern walks the whole vocabulary), and letting
    // their pages go would fault each one in twice and, with two threads
    // searching, make every release a TLB shootdown between them
    // (kernel: `*lock*` 32 -> 23 ms, `*a*b*c*` 155 -> 105 ms). The lists,
    // most of the file, go.
    let chunked = |id: u32, chunks: u32| chunked_section(&c, id, chunks, None);
    let table32 = |id, chunks| {
        Array::<u32>::checked(chunked(id, chunks)?)
            .ok_or(damaged(Damage::Malformed(Part::NumberTable)))
    };
    let table64 = |id, chunks| {
        Array::<u64>::checked(chunked(id, chunks)?)
            .ok_or(damaged(Damage::Malformed(Part::NumberTable)))
    };
    let counts = table32(section::COUNTS, section::COUNTS_CHUNKS)?;
    // Block signatures are optional: files written before them read on,
    // their substring searches decoding every block.
    let signatures = match c.section(section::SIGNATURES) {
        Some(_) => Some(table64(section::SIGNATURES, section::SIGNATURES_CHUNKS)?),
        None => None,
    };
    let vocabulary = Vocabulary::from_front_coded(
        chunked(section::WORDS, section::WORDS_CHUNKS)?,
        table64(section::BLOCKS, section::BLOCKS_CHUNKS)?,
        signatures,
        counts.len(),
    )
    .map_err(|_| damaged(Damage::Malformed(Part::Vocabulary)))?;
    // The words as plain text are optional too: files written before them
    // read on, a search of every word decoding every block.
    let vocabulary = match c.section(section::TEXT) {
        Some(_) => vocabulary
            .with_plain_text(
                chunked(section::TEXT, section::TEXT_CHUNKS)?,
                table64(section::TEXT_GROUPS, section::TEXT_GROUPS_CHUNKS)?,
            )
            .map_err(|_| damaged(Damage::Malformed(Part::Vocabulary)))?,
        None => vocabulary,
    };
    // And so are the suffix keys (none, if empty: a vocabulary past
    // SUFFIX_ORDER_WORDS has its sections, with nothing in them).
    let vocabulary = match c.section(section::SUFFIXES) {
        Some(keys) if !keys.is_empty() => vocabulary
            .with_suffix_order(table64(section::SUFFIXES, section::SUFFIXES_CHUNKS)?)
            .map_err(|_| damaged(Damage::Malformed(Part::Vocabulary)))?,
        _ => vocabulary,
    };
    // And so are the common pairs' bits.
    let vocabulary = match c.section(section::PAIRS) {
        Some(pairs) => vocabulary
            .with_pair_bits(
                &pairs,
                table64(section::PAIR_BITS, section::PAIR_BITS_CHUNKS)?,
            )
            .map_err(|_| damaged(Damage::Malformed(Part::Vocabulary)))?,
        None => vocabulary,
    };
    let offsets = match c.section(section::OFFSETS) {
        Some(_) => Offsets::Narrow(table32(section::OFFSETS, section::OFFSETS_CHUNKS)?),
        None => Offsets::Wide(table64(section::OFFSETS_WIDE, section::OFFSETS_CHUNKS)?),
    };
    let lists = chunked_section(&c, section::LISTS, section::LIST_CHUNKS, release)?;
    let index = Index::from_stored(files, vocabulary, counts, offsets, lists)
        .ok_or(damaged(Damage::Malformed(Part::OccurrenceOffsets)))?;
    let RefreshRecord { dropped, adjusted } = match meta.kind {
        Kind::Delta => read_refresh_record(&c)?,
        _ => RefreshRecord {
            dropped: Vec::new(),
            adjusted: Vec::new(),
        },
    };
    Ok(Segment {
        meta,
        records,
        index,
        dropped,
        adjusted,
    })
}

/// The file records and the file table. With their starts (since version
/// 2), records are decoded when needed and paths read one by one, each
/// checking only its chunks (since version 3; before, the sections were
/// checked whole at open); else all are decoded now.
fn read_files(c: &Container) -> Result<(Records, FileTable), FormatError> {
    let damaged = FormatError::Damaged;
    let malformed = || damaged(Damage::Malformed(Part::FileTable));
    let records = Arc::new(chunked_section(
        c,
        section::FILES,
        section::FILES_CHUNKS,
        None,
    )?);
    if c.section(section::FILE_STARTS).is_none() {
        let records = records
            .get(0..records.len())
            .and_then(decode_records)
            .ok_or_else(malformed)?;
        let files = FileTable::from(
            records
                .iter()
                .map(|r| r.display.clone())
                .collect::<Vec<_>>(),
        );
        return Ok((Records::from(records), files));
    }
    let starts = chunked_section(c, section::FILE_STARTS, section::FILE_STARTS_CHUNKS, None)?;
    let starts = Array::<u64>::checked(starts).ok_or_else(malformed)?;
    let count = records
        .get(0..8.min(records.len()))
        .ok_or(damaged(Damage::Checksum(Part::FileTable)))?;
    let count = Decoder::new(count).u64().ok_or_else(malformed)?;
    // Each start is checked when its path is read (one in a damaged
    // chunk is an error, one out of order reads as `?`), not here.
    if usize::try_from(count).ok() != Some(starts.len()) {
        return Err(malformed());
    }
    let files = FileTable::stored(records.clone(), starts, record_path);
    Ok((Records::encoded(records, files.len()), files))
}

/// Section `id`: checked chunk by chunk against the hashes in section
/// `chunks` as it is read when flagged lazy; trusted when it was verified
/// at open.
fn chunked_section(
    c: &Container,
    id: u32,
    chunks: u32,
    release: Option<fn(&[u8])>,
) -> Result<Chunked, FormatError> {
    let damaged = FormatError::Damaged;
    let need = |id| c.section(id).ok_or(damaged(Damage::MissingSection));
    let bytes = need(id)?;
    if !c.is_lazy(id) {
        return Ok(Chunked::trusted(bytes));
    }
    let malformed = || damaged(Damage::Malformed(Part::NumberTable));
    // The chunk size, then the hashes, used in place: a table of small
    // chunks is large, and copying it would be work at open.
    let table = need(chunks)?;
    let chunk = Array::<u64>::shared(table.clone())
        .and_then(|t| t.as_slice().first().copied())
        .ok_or_else(malformed)?;
    let chunk = usize::try_from(chunk).map_err(|_| malformed())?;
    let hashes = table
        .tail(8)
        .and_then(Array::<u64>::shared)
        .ok_or_else(malformed)?;
    let checked = Chunked::new(bytes, chunk, hashes, hash_chunk).ok_or_else(malformed)?;
    Ok(match release {
        Some(release) => checked.releasing(release),
        None => checked,
    })
}

/// A delta's record: the base files it hides and the base words' lowered
/// counts (see [`Segment`]).
struct RefreshRecord {
    dropped: Vec<u32>,
    adjusted: Vec<(u32, u32)>,
}

fn read_refresh_record(c: &Container) -> Result<RefreshRecord, FormatError> {
    let damaged = FormatError::Damaged;
    let array32 = |id| {
        let bytes = c.section(id).ok_or(damaged(Damage::MissingSection))?;
        Array::<u32>::shared(bytes).ok_or(damaged(Damage::Malformed(Part::NumberTable)))
    };
    let dropped = array32(section::DROPPED)?.as_slice().to_vec();
    let words = array32(section::ADJUSTED_WORDS)?;
    let left = array32(section::ADJUSTED_LEFT)?;
    if words.len() != left.len() {
        return Err(damaged(Damage::Malformed(Part::RefreshRecord)));
    }
    let adjusted = words
        .as_slice()
        .iter()
        .copied()
        .zip(left.as_slice().iter().copied())
        .collect();
    let sorted = |v: &[u32]| v.windows(2).all(|w| w[0] < w[1]);
    if !sorted(&dropped) || !sorted(words.as_slice()) {
        return Err(damaged(Damage::Malformed(Part::RefreshRecord)));
    }
    Ok(RefreshRecord { dropped, adjusted })
}
