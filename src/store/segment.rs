//! One saved index (a *segment*): its description, file table with the
//! stamps a refresh compares, vocabulary, counts and posting lists; and for
//! a delta, what it hides of its base.

use std::io;
use std::path::Path;

use super::format::{section, Container, Decoder, Encoder, FormatError, Writer};
use crate::index::bytes::{Array, Chunked, Owner};
use crate::index::postings::{append_list, Group, Groups};
use crate::index::vocabulary::FrontCoder;
use crate::index::{Hit, Index, Offsets, View, Vocabulary};

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
    pub meta: Meta,
    pub records: Vec<FileRecord>,
    pub index: Index,
    /// A delta's base files it replaces or removes (sorted file numbers).
    pub dropped: Vec<u32>,
    /// A delta's lowered counts of base words (see [`crate::index::Layer`]).
    pub adjusted: Vec<(u32, u32)>,
}

fn encode_meta(meta: &Meta) -> Vec<u8> {
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

fn decode_meta(bytes: &[u8]) -> Option<Meta> {
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

fn encode_records(records: &[FileRecord]) -> Vec<u8> {
    let mut e = Encoder::default();
    e.u64(records.len() as u64);
    for r in records {
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
    e.bytes
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
/// verifies little more than it reads, large enough that the hash table
/// stays tiny (about 300 entries for the kernel).
const LIST_CHUNK: usize = 1 << 20;

/// The hash of each [`LIST_CHUNK`] bytes written through it.
struct ChunkHasher {
    current: xxhash_rust::xxh3::Xxh3,
    filled: usize,
    hashes: Vec<u64>,
}

impl ChunkHasher {
    fn new() -> Self {
        ChunkHasher {
            current: xxhash_rust::xxh3::Xxh3::new(),
            filled: 0,
            hashes: vec![LIST_CHUNK as u64],
        }
    }

    fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let take = (LIST_CHUNK - self.filled).min(bytes.len());
            self.current.update(&bytes[..take]);
            self.filled += take;
            bytes = &bytes[take..];
            if self.filled == LIST_CHUNK {
                self.hashes.push(self.current.digest());
                self.current.reset();
                self.filled = 0;
            }
        }
    }

    /// The chunk size, then each chunk's hash.
    fn finish(mut self) -> Vec<u64> {
        if self.filled > 0 {
            self.hashes.push(self.current.digest());
        }
        self.hashes
    }
}

fn hash_chunk(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

fn u32s(bytes: &[u32]) -> &[u8] {
    bytemuck::cast_slice(bytes)
}

/// Writes every word of `view` as one segment at `destination`, with
/// `records` describing the view's files (in the view's order).
pub fn write(
    destination: &Path,
    view: &View,
    records: &[FileRecord],
    meta: &Meta,
    dropped: &[u32],
    adjusted: &[(u32, u32)],
) -> Result<u64, WriteError> {
    let delta = meta.kind == Kind::Delta;
    let mut w = Writer::create(destination, if delta { 11 } else { 8 })?;
    w.section(section::META, &encode_meta(meta))?;
    w.section(section::FILES, &encode_records(records))?;

    let hits = view.hits(|v| (0..v.len()).collect());
    let mut vocabulary = FrontCoder::default();
    let mut counts = Vec::with_capacity(hits.len());
    let mut offsets = Vec::with_capacity(hits.len() + 1);
    let mut written = 0u64;
    let mut list = Vec::new();
    let mut groups = Vec::new();
    let mut chunks = ChunkHasher::new();
    w.begin(section::LISTS)?;
    for hit in &hits {
        list.clear();
        let count = encode_list(view, hit, &mut groups, &mut list);
        if count == 0 {
            continue;
        }
        vocabulary.push(&view.word_bytes(hit));
        counts.push(count);
        offsets.push(written);
        w.write(&list)?;
        chunks.update(&list);
        written += list.len() as u64;
    }
    offsets.push(written);
    w.end_lazy();
    w.section(section::LIST_CHUNKS, bytemuck::cast_slice(&chunks.finish()))?;
    let (words, blocks, _) = vocabulary.finish();
    w.section(section::WORDS, &words)?;
    w.section(section::BLOCKS, bytemuck::cast_slice(&blocks))?;
    w.section(section::COUNTS, u32s(&counts))?;
    if written <= u64::from(u32::MAX) {
        let narrow: Vec<u32> = offsets.iter().map(|&o| o as u32).collect();
        w.section(section::OFFSETS, u32s(&narrow))?;
    } else {
        w.section(section::OFFSETS_WIDE, bytemuck::cast_slice(&offsets))?;
    }
    if delta {
        w.section(section::DROPPED, u32s(dropped))?;
        let (words, left): (Vec<u32>, Vec<u32>) = adjusted.iter().copied().unzip();
        w.section(section::ADJUSTED_WORDS, u32s(&words))?;
        w.section(section::ADJUSTED_LEFT, u32s(&left))?;
    }
    if view.is_damaged() {
        // A stored list failed its check while being copied: keep the old
        // file rather than commit one with occurrences missing.
        return Err(WriteError::DamagedSource);
    }
    Ok(w.commit()?)
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
) -> u32 {
    let mut parts = hit.parts();
    let single = match (parts.next(), parts.next()) {
        (Some(part), None) => Some(part),
        _ => None,
    };
    if let Some((l, id)) = single {
        let layer = &view.layers()[l];
        if layer.is_identity() {
            let mut last_file = None;
            for piece in layer.index().raw_lists(id) {
                if append_list(out, piece, last_file).is_none() {
                    break;
                }
                last_file = Groups::new(piece).last().map(|g| g.file);
            }
            return layer.index().count(id);
        }
    }
    groups.clear();
    for (l, id) in hit.parts() {
        let layer = &view.layers()[l];
        for piece in layer.index().raw_lists(id) {
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
    count
}

/// Reads a segment from a checked container's bytes.
pub fn read(owner: Owner) -> Result<Segment, FormatError> {
    let c = Container::open(owner)?;
    let damaged = FormatError::Damaged;
    let need = |id| c.section(id).ok_or(damaged("a section is missing"));
    let meta = decode_meta(&need(section::META)?).ok_or(damaged("description"))?;
    let records = decode_records(&need(section::FILES)?).ok_or(damaged("file table"))?;
    let array32 = |id| Array::<u32>::shared(need(id)?).ok_or(damaged("a number table"));
    let array64 = |id| Array::<u64>::shared(need(id)?).ok_or(damaged("a number table"));
    let counts = array32(section::COUNTS)?;
    let vocabulary = Vocabulary::from_front_coded(
        need(section::WORDS)?,
        array64(section::BLOCKS)?,
        counts.len(),
    )
    .map_err(|_| damaged("vocabulary"))?;
    let offsets = match c.section(section::OFFSETS) {
        Some(_) => Offsets::Narrow(array32(section::OFFSETS)?),
        None => Offsets::Wide(array64(section::OFFSETS_WIDE)?),
    };
    let files = records.iter().map(|r| r.display.clone()).collect();
    let chunks = array64(section::LIST_CHUNKS)?;
    let (chunk, hashes) = chunks
        .as_slice()
        .split_first()
        .ok_or(damaged("a number table"))?;
    let hashes = Array::Owned(hashes.to_vec());
    let chunk = usize::try_from(*chunk).map_err(|_| damaged("a number table"))?;
    let lists = Chunked::new(need(section::LISTS)?, chunk, hashes, hash_chunk)
        .ok_or(damaged("a number table"))?;
    let index = Index::from_stored(files, vocabulary, counts, offsets, lists)
        .ok_or(damaged("occurrence offsets"))?;
    let (mut dropped, mut adjusted) = (Vec::new(), Vec::new());
    if meta.kind == Kind::Delta {
        dropped = array32(section::DROPPED)?.as_slice().to_vec();
        let words = array32(section::ADJUSTED_WORDS)?;
        let left = array32(section::ADJUSTED_LEFT)?;
        if words.len() != left.len() {
            return Err(damaged("refresh record"));
        }
        adjusted = words
            .as_slice()
            .iter()
            .copied()
            .zip(left.as_slice().iter().copied())
            .collect();
        let sorted = |v: &[u32]| v.windows(2).all(|w| w[0] < w[1]);
        if !sorted(&dropped) || !sorted(words.as_slice()) {
            return Err(damaged("refresh record"));
        }
    }
    Ok(Segment {
        meta,
        records,
        index,
        dropped,
        adjusted,
    })
}
