//! The container every index file uses: a checked header, a table of
//! sections, and the sections themselves.
//!
//! ```text
//! 0     magic            8 bytes  \x89IDX\r\n\x1a\n
//! 8     format version   u32      FORMAT_VERSION
//! 12    word rules       u32      WORD_RULES: how text was cut into words
//! 16    sections         u32      at most MAX_SECTIONS
//! 20    reserved         u32      0
//! 24    file length      u64      the whole file, to catch truncation
//! 32    section table    32 bytes per section:
//!                        id u32, flags u32, offset u64, length u64,
//!                        xxh3 of the section's bytes u64
//! ...   header hash      u64      xxh3 of everything above
//! ...   sections, each starting at a multiple of 8 bytes
//! ```
//!
//! All numbers are little-endian. Numbers arrays are stored aligned, so an
//! opened file is used in place. Every length read from a file is checked
//! against the file's size before it is used, and every section's checksum
//! is verified before any of it is read, so a damaged or foreign file is
//! refused with a reason instead of misread. The exception is a section
//! flagged [`LAZY`]: the posting lists, most of the file, the word tables
//! and the file table, which carry a hash per chunk (in a section of their
//! own) and are verified chunk by chunk as queries first read them (see
//! [`crate::index::bytes::Chunked`]); opening stays cheap, whatever the
//! number of words or files.

use std::fmt;
use std::fs::{self, File};
use std::hash::Hasher as _;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use twox_hash::XxHash3_64 as Xxh3;

use super::names::{delta_path, remove_stale_temporaries, temporary_path};
use crate::index::bytes::{Bytes, Owner};

/// First bytes of every index file.
pub const MAGIC: [u8; 8] = *b"\x89IDX\r\n\x1a\n";
/// Version of this layout and of the sections' encodings. Version 3 checks
/// the file table by chunks as paths are read (version 2 checked it whole
/// at open): a reader of version 2 would take those sections unchecked, so
/// the version changed rather than the sections.
pub const FORMAT_VERSION: u32 = 3;
/// The oldest version still read: version 1 verified every table at open
/// and holds no table chunk hashes, which reads the same way.
pub const OLDEST_VERSION: u32 = 1;
/// Version of the contract's word rules (what a word is, lowercasing, the
/// 64-byte limit, lines and columns). An index cut by other rules would
/// answer differently, so it is refused, not reinterpreted.
pub const WORD_RULES: u32 = 1;
/// More sections than any version writes means a damaged file.
const MAX_SECTIONS: usize = 64;
const FIXED_HEADER: usize = 32;
/// Section flag: verified by chunk hashes as it is read, not at open.
pub const LAZY: u32 = 1;
const SECTION_ENTRY: usize = 32;

/// Why bytes are not a usable index file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// The magic bytes are not ours.
    NotAnIndex,
    /// Not a regular file (a folder, a FIFO, a device).
    NotAFile,
    /// Another format version.
    Version(u32),
    /// Made with other word rules.
    WordRules(u32),
    /// Shorter than its header says.
    Truncated {
        /// Bytes the header gives.
        expected: u64,
        /// Bytes the file has.
        found: u64,
    },
    /// A checksum or a structural check failed; says where.
    Damaged(Damage),
}

/// Where an index file failed a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// The fixed header (an impossible section count).
    Header,
    /// The hash over the header and section table.
    HeaderChecksum,
    /// The length the header gives is not the file's.
    FileLength,
    /// Sections overlap, leave gaps or run past the end.
    SectionTable,
    /// Bytes between sections are not zero.
    Padding,
    /// A section every index holds is not there.
    MissingSection,
    /// A refresh file stands where an index was expected.
    NotABase,
    /// A section's checksum (or one of its chunks') does not match.
    Checksum(Part),
    /// A section's bytes do not decode.
    Malformed(Part),
}

/// The part of an index a [`Damage`] concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The root, the excludes and when the index was built.
    Description,
    /// Every file's path, size and time.
    FileTable,
    /// The sorted, front-coded words.
    Vocabulary,
    /// Each word's number of occurrences.
    WordCounts,
    /// The per-word tables (words, counts, list offsets) taken together.
    WordTables,
    /// A table of fixed-width numbers (chunk hashes, counts, offsets).
    NumberTable,
    /// The posting lists.
    Occurrences,
    /// Where each word's posting list starts.
    OccurrenceOffsets,
    /// A delta's hidden base files and lowered counts.
    RefreshRecord,
    /// A sharded index's parts (see [`crate::store::shards`]).
    PartList,
    /// A section this version does not know.
    Unknown,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Description => "description",
            Part::FileTable => "file table",
            Part::Vocabulary => "vocabulary",
            Part::WordCounts => "word counts",
            Part::WordTables => "word tables",
            Part::NumberTable => "a number table",
            Part::Occurrences => "occurrences",
            Part::OccurrenceOffsets => "occurrence offsets",
            Part::RefreshRecord => "refresh record",
            Part::PartList => "list of parts",
            Part::Unknown => "an unknown section",
        })
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Header => f.write_str("header"),
            Damage::HeaderChecksum => f.write_str("header checksum"),
            Damage::FileLength => f.write_str("file length"),
            Damage::SectionTable => f.write_str("section table"),
            Damage::Padding => f.write_str("padding"),
            Damage::MissingSection => f.write_str("a section is missing"),
            Damage::NotABase => f.write_str("a refresh file, not an index"),
            Damage::Checksum(Part::Unknown) => f.write_str("checksum of an unknown section"),
            Damage::Checksum(part) => write!(f, "checksum of its {part}"),
            Damage::Malformed(part) => part.fmt(f),
        }
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::NotAnIndex => write!(f, "is not an indexer index"),
            FormatError::NotAFile => write!(f, "is not a regular file"),
            FormatError::Version(v) => write!(
                f,
                "has format version {v}; this indexer reads versions {OLDEST_VERSION} to {FORMAT_VERSION}"
            ),
            FormatError::WordRules(v) => write!(
                f,
                "was cut into words by other rules (version {v}; this indexer uses {WORD_RULES})"
            ),
            FormatError::Truncated { expected, found } => {
                write!(f, "is truncated ({found} bytes of {expected})")
            }
            FormatError::Damaged(what) => write!(f, "is damaged ({what})"),
        }
    }
}

impl std::error::Error for FormatError {}

/// The sections of a checked file.
pub struct Container {
    owner: Owner,
    /// Id, where, and whether it is flagged [`LAZY`].
    sections: Vec<(u32, std::ops::Range<usize>, bool)>,
    header_hash: u64,
    release: Option<fn(&[u8])>,
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

impl Container {
    /// Checks the header and every section's checksum; `release` (if any)
    /// is called on each section once it is checked (see
    /// [`crate::index::bytes::Chunked::releasing`]).
    pub fn open(owner: Owner, release: Option<fn(&[u8])>) -> Result<Container, FormatError> {
        let bytes: &[u8] = (*owner).as_ref();
        let found = bytes.len() as u64;
        let truncated = |expected: u64| FormatError::Truncated { expected, found };
        if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
            return Err(FormatError::NotAnIndex);
        }
        let version = u32_at(bytes, 8).ok_or(truncated(FIXED_HEADER as u64))?;
        if !(OLDEST_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(FormatError::Version(version));
        }
        let rules = u32_at(bytes, 12).ok_or(truncated(FIXED_HEADER as u64))?;
        if rules != WORD_RULES {
            return Err(FormatError::WordRules(rules));
        }
        let count = u32_at(bytes, 16).ok_or(truncated(FIXED_HEADER as u64))? as usize;
        let length = u64_at(bytes, 24).ok_or(truncated(FIXED_HEADER as u64))?;
        if count > MAX_SECTIONS {
            return Err(FormatError::Damaged(Damage::Header));
        }
        let table_end = FIXED_HEADER + count * SECTION_ENTRY;
        let header_end = table_end + 8;
        if found < length.max(header_end as u64) {
            return Err(truncated(length.max(header_end as u64)));
        }
        if u64_at(bytes, table_end) != Some(Xxh3::oneshot(&bytes[..table_end])) {
            return Err(FormatError::Damaged(Damage::HeaderChecksum));
        }
        if found != length {
            return Err(FormatError::Damaged(Damage::FileLength));
        }
        let mut sections = Vec::with_capacity(count);
        // Sections follow one another in table order, each at the next
        // multiple of 8, with zeros between: no byte of the file escapes
        // every check.
        let mut expected = header_end as u64;
        for k in 0..count {
            let at = FIXED_HEADER + k * SECTION_ENTRY;
            let entry = |offset| u64_at(bytes, at + offset).unwrap_or(u64::MAX);
            let id = u32_at(bytes, at).unwrap_or(0);
            let flags = u32_at(bytes, at + 4).unwrap_or(0);
            let (offset, len, hash) = (entry(8), entry(16), entry(24));
            let end = offset.checked_add(len).filter(|&e| e <= found);
            let aligned = expected.next_multiple_of(8);
            let Some(end) = end.filter(|_| offset == aligned) else {
                return Err(FormatError::Damaged(Damage::SectionTable));
            };
            if bytes[expected as usize..offset as usize]
                .iter()
                .any(|&b| b != 0)
            {
                return Err(FormatError::Damaged(Damage::Padding));
            }
            expected = end;
            let range = offset as usize..end as usize;
            if flags & LAZY == 0 {
                let section = &bytes[range.clone()];
                let good = Xxh3::oneshot(section) == hash;
                if let Some(release) = release {
                    release(section);
                }
                if !good {
                    return Err(FormatError::Damaged(Damage::Checksum(section_part(id))));
                }
            }
            sections.push((id, range, flags & LAZY != 0));
        }
        if expected != length {
            return Err(FormatError::Damaged(Damage::SectionTable));
        }
        let header_hash = u64_at(bytes, table_end).unwrap_or(0);
        Ok(Container {
            owner,
            sections,
            header_hash,
            release,
        })
    }

    /// What to do with checked bytes, as given to [`Container::open`].
    pub fn release(&self) -> Option<fn(&[u8])> {
        self.release
    }

    /// The hash of the header and section table, which holds every
    /// section's hash (and a lazy one's chunk hashes are a section): it
    /// names the file's whole content.
    pub fn header_hash(&self) -> u64 {
        self.header_hash
    }

    /// Section `id`'s bytes, if present.
    pub fn section(&self, id: u32) -> Option<Bytes> {
        let (_, range, _) = self.sections.iter().find(|(s, _, _)| *s == id)?;
        Bytes::shared(&self.owner, range.clone())
    }

    /// Whether section `id` is flagged [`LAZY`]: not verified at open,
    /// so its reader must check it against its chunk hashes.
    pub fn is_lazy(&self, id: u32) -> bool {
        self.sections.iter().any(|&(s, _, lazy)| s == id && lazy)
    }
}

/// Section ids and names (for messages).
pub mod section {
    pub const META: u32 = 1;
    pub const FILES: u32 = 2;
    pub const WORDS: u32 = 3;
    pub const BLOCKS: u32 = 4;
    pub const COUNTS: u32 = 5;
    pub const OFFSETS: u32 = 6;
    pub const LISTS: u32 = 7;
    pub const DROPPED: u32 = 8;
    pub const ADJUSTED_WORDS: u32 = 9;
    pub const ADJUSTED_LEFT: u32 = 10;
    pub const OFFSETS_WIDE: u32 = 11;
    pub const LIST_CHUNKS: u32 = 12;
    /// Since version 2: chunk size and hashes of the word tables, which
    /// are flagged lazy.
    pub const WORDS_CHUNKS: u32 = 13;
    pub const BLOCKS_CHUNKS: u32 = 14;
    pub const COUNTS_CHUNKS: u32 = 15;
    pub const OFFSETS_CHUNKS: u32 = 16;
    /// Since version 2: where each file record starts.
    pub const FILE_STARTS: u32 = 17;
    /// A sharded index's manifest: its parts, their word ranges and hashes
    /// (see [`crate::store::shards`]).
    pub const PARTS: u32 = 18;
    /// Each vocabulary block's signature of byte pairs, and its chunks'
    /// hashes (optional: older files have none).
    pub const SIGNATURES: u32 = 19;
    pub const SIGNATURES_CHUNKS: u32 = 20;
    /// The words as plain text, each followed by a NUL (optional: files
    /// written before it read on, decoding blocks to search every word),
    /// and where every group of words starts in it.
    pub const TEXT: u32 = 21;
    pub const TEXT_CHUNKS: u32 = 22;
    pub const TEXT_GROUPS: u32 = 23;
    pub const TEXT_GROUPS_CHUNKS: u32 = 24;
    /// The words' suffix keys, ascending (optional: files written before
    /// them, or of very many words, search every word for a suffix).
    pub const SUFFIXES: u32 = 25;
    pub const SUFFIXES_CHUNKS: u32 = 26;
    /// Since version 3: chunk size and hashes of the file records and of
    /// their starts, which are flagged lazy.
    pub const FILES_CHUNKS: u32 = 27;
    pub const FILE_STARTS_CHUNKS: u32 = 28;
    /// The vocabulary's commonest byte pairs, two bytes each, and per
    /// pair the words holding it as bits, with their chunks' hashes
    /// (optional: files written before them, and unsaved builds, search
    /// the words' text for such a pair).
    pub const PAIRS: u32 = 29;
    pub const PAIR_BITS: u32 = 30;
    pub const PAIR_BITS_CHUNKS: u32 = 31;
}

fn section_part(id: u32) -> Part {
    match id {
        section::META => Part::Description,
        section::FILES
        | section::FILE_STARTS
        | section::FILES_CHUNKS
        | section::FILE_STARTS_CHUNKS => Part::FileTable,
        section::WORDS
        | section::BLOCKS
        | section::WORDS_CHUNKS
        | section::BLOCKS_CHUNKS
        | section::SIGNATURES
        | section::SIGNATURES_CHUNKS
        | section::TEXT
        | section::TEXT_CHUNKS
        | section::TEXT_GROUPS
        | section::TEXT_GROUPS_CHUNKS
        | section::SUFFIXES
        | section::SUFFIXES_CHUNKS
        | section::PAIRS
        | section::PAIR_BITS
        | section::PAIR_BITS_CHUNKS => Part::Vocabulary,
        section::COUNTS | section::COUNTS_CHUNKS => Part::WordCounts,
        section::OFFSETS
        | section::OFFSETS_WIDE
        | section::LISTS
        | section::LIST_CHUNKS
        | section::OFFSETS_CHUNKS => Part::Occurrences,
        section::DROPPED | section::ADJUSTED_WORDS | section::ADJUSTED_LEFT => Part::RefreshRecord,
        section::PARTS => Part::PartList,
        _ => Part::Unknown,
    }
}

/// Writes a container section by section into a temporary file next to
/// its destination, then makes it the destination atomically: fsync, then
/// rename, then fsync of the folder. A crash at any moment leaves the old
/// file or the new one, never a mix.
///
/// The temporary file has no name while it is written (`O_TMPFILE`), so a
/// save killed midway, by Ctrl-C or `kill -9`, leaves nothing behind; it is
/// linked as `FILE.tmp.PID` only to be renamed at once. Where the file
/// system cannot make unnamed files, it is `FILE.tmp.PID` from the start
/// (a later save removes it if its process died).
/// A file a [`Writer`] put in place.
#[derive(Debug, Clone, Copy)]
pub struct Committed {
    /// Its length in bytes.
    pub len: u64,
    /// Its header hash (see [`Container::header_hash`]).
    pub header_hash: u64,
}

/// Bytes per write of an index file, at offsets that are multiples of it:
/// the page cache keeps what a write brings in as folios as large as the
/// write (ext4 since 6.16, XFS), and a query that maps the file pays per
/// folio mapped, not per page. On the kernel's index, mapping the
/// vocabulary's plain text cost 100-250 ns a page written through a 1 MiB
/// `BufWriter` (which flushes at whatever offset it has reached) and 27-34
/// ns a page written in aligned 2 MiB pieces; `*a*b*c*` fell from 32-44 to
/// 24-31 ms.
const WRITE_BLOCK: usize = 2 << 20;

/// A buffered writer that writes only whole [`WRITE_BLOCK`]s, each at a
/// multiple of its size, until the last (see [`WRITE_BLOCK`] for why).
struct BlockWriter<W: Write = File> {
    out: W,
    /// What is not yet written: less than a block, from a block's start.
    pending: Vec<u8>,
    block: usize,
}

impl<W: Write> BlockWriter<W> {
    fn new(out: W) -> Self {
        Self::with_block(out, WRITE_BLOCK)
    }

    fn with_block(out: W, block: usize) -> Self {
        BlockWriter {
            out,
            pending: Vec::new(),
            block,
        }
    }

    fn get_ref(&self) -> &W {
        &self.out
    }

    /// The writer, everything written to it.
    fn get_mut(&mut self) -> io::Result<&mut W> {
        self.flush()?;
        Ok(&mut self.out)
    }
}

impl<W: Write> Write for BlockWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.pending.is_empty() && bytes.len() >= self.block {
            // At a block's start already: whole blocks go straight out.
            let whole = bytes.len() / self.block * self.block;
            self.out.write_all(&bytes[..whole])?;
            return Ok(whole);
        }
        if self.pending.capacity() == 0 {
            self.pending.reserve_exact(self.block);
        }
        let taken = bytes.len().min(self.block - self.pending.len());
        self.pending.extend_from_slice(&bytes[..taken]);
        if self.pending.len() == self.block {
            self.out.write_all(&self.pending)?;
            self.pending.clear();
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.write_all(&self.pending)?;
        self.pending.clear();
        self.out.flush()
    }
}

pub struct Writer {
    out: BlockWriter,
    /// Where the file goes; `None` for an anonymous file.
    destination: Option<PathBuf>,
    /// The temporary's name, when it has one from the start.
    named: Option<PathBuf>,
    position: u64,
    table: Vec<[u64; 5]>,
    /// The section being written: id, start, and its hash unless lazy.
    current: Option<(u32, u64, Option<Xxh3>)>,
    sections: usize,
    committed: bool,
    /// The hash of the header and section table, once written.
    header_hash: u64,
}

impl Drop for Writer {
    /// A write abandoned midway (an error, or a damaged source) leaves no
    /// temporary behind.
    fn drop(&mut self) {
        if !self.committed {
            if let Some(named) = &self.named {
                let _ = fs::remove_file(named);
            }
        }
    }
}

/// A file with no name in `folder`, if the file system can make one.
fn unnamed_file(folder: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .mode(0o666)
        .open(folder)
}

/// The folder `path` is in.
pub fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

impl Writer {
    /// Starts a file for `destination` with room for `sections` sections.
    pub fn create(destination: &Path, sections: usize) -> io::Result<Writer> {
        remove_stale_temporaries(destination);
        remove_stale_temporaries(&delta_path(destination));
        let (file, named) = match unnamed_file(folder_of(destination)) {
            Ok(file) => (file, None),
            Err(_) => {
                let temp = temporary_path(destination, std::process::id());
                let file = fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&temp)?;
                (file, Some(temp))
            }
        };
        Self::start(file, Some(destination.to_path_buf()), named, sections)
    }

    /// Starts a file that is never named: it lives as long as the
    /// returned descriptor (see [`Writer::finish_anonymous`]).
    pub fn anonymous(folder: &Path, sections: usize) -> io::Result<Writer> {
        let file = unnamed_file(folder).or_else(|_| tempfile::tempfile_in(folder))?;
        Self::start(file, None, None, sections)
    }

    fn start(
        file: File,
        destination: Option<PathBuf>,
        named: Option<PathBuf>,
        sections: usize,
    ) -> io::Result<Writer> {
        let mut writer = Writer {
            out: BlockWriter::new(file),
            destination,
            named,
            position: 0,
            table: Vec::with_capacity(sections),
            current: None,
            sections,
            committed: false,
            header_hash: 0,
        };
        let header = FIXED_HEADER + sections * SECTION_ENTRY + 8;
        writer.raw(&vec![0; header])?;
        Ok(writer)
    }

    fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.position += bytes.len() as u64;
        Ok(())
    }

    /// Starts section `id` (aligned to 8 bytes).
    pub fn begin(&mut self, id: u32) -> io::Result<()> {
        self.begin_with(id, Some(Xxh3::new()))
    }

    /// Starts section `id`, which the reader verifies by chunks: no
    /// whole-section hash is computed (its table entry holds 0) and the
    /// entry is flagged [`LAZY`].
    pub fn begin_lazy(&mut self, id: u32) -> io::Result<()> {
        self.begin_with(id, None)
    }

    fn begin_with(&mut self, id: u32, hasher: Option<Xxh3>) -> io::Result<()> {
        let pad = (8 - self.position % 8) % 8;
        self.raw(&[0; 8][..pad as usize])?;
        self.current = Some((id, self.position, hasher));
        Ok(())
    }

    /// Appends bytes to the current section.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some((_, _, Some(hasher))) = &mut self.current {
            hasher.write(bytes);
        }
        self.raw(bytes)
    }

    /// Ends the current section.
    pub fn end(&mut self) {
        if let Some((id, start, hasher)) = self.current.take() {
            let (flags, hash) = match hasher {
                Some(hasher) => (0, hasher.finish()),
                None => (LAZY, 0),
            };
            self.table.push([
                u64::from(id),
                u64::from(flags),
                start,
                self.position - start,
                hash,
            ]);
        }
    }

    /// A whole section at once.
    pub fn section(&mut self, id: u32, bytes: &[u8]) -> io::Result<()> {
        self.begin(id)?;
        self.write(bytes)?;
        self.end();
        Ok(())
    }

    /// True for a file that is never named (see [`Writer::anonymous`]).
    pub fn is_anonymous(&self) -> bool {
        self.destination.is_none()
    }

    /// Writes the header, syncs, and renames the file into place.
    pub fn commit(mut self) -> io::Result<Committed> {
        let Some(destination) = self.destination.clone() else {
            return Err(io::Error::other(
                "index writer: no destination to commit to",
            ));
        };
        self.finish()?.sync_all()?;
        match self.named.clone() {
            Some(named) => fs::rename(&named, &destination)?,
            None => link_into_place(self.out.get_ref(), &destination)?,
        }
        self.committed = true;
        sync_folder(&destination);
        Ok(Committed {
            len: self.position,
            header_hash: self.header_hash,
        })
    }

    /// Writes the header and hands back the anonymous file (no sync: it
    /// never outlives this process).
    pub fn finish_anonymous(mut self) -> io::Result<File> {
        let file = self.finish()?.try_clone()?;
        self.committed = true;
        Ok(file)
    }

    fn finish(&mut self) -> io::Result<&mut File> {
        if self.table.len() != self.sections {
            return Err(io::Error::other("index writer: section count mismatch"));
        }
        let mut header = Vec::with_capacity(FIXED_HEADER + self.table.len() * SECTION_ENTRY + 8);
        header.extend_from_slice(&MAGIC);
        header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        header.extend_from_slice(&WORD_RULES.to_le_bytes());
        header.extend_from_slice(&(self.table.len() as u32).to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        header.extend_from_slice(&self.position.to_le_bytes());
        for &[id, flags, offset, len, hash] in &self.table {
            header.extend_from_slice(&(id as u32).to_le_bytes());
            header.extend_from_slice(&(flags as u32).to_le_bytes());
            header.extend_from_slice(&offset.to_le_bytes());
            header.extend_from_slice(&len.to_le_bytes());
            header.extend_from_slice(&hash.to_le_bytes());
        }
        let hash = Xxh3::oneshot(&header);
        self.header_hash = hash;
        header.extend_from_slice(&hash.to_le_bytes());
        let file = self.out.get_mut()?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&header)?;
        Ok(file)
    }
}

/// Gives an unnamed file a name, `FILE.tmp.PID`, then renames it over
/// `destination`.
fn link_into_place(file: &File, destination: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    let temp = temporary_path(destination, std::process::id());
    let _ = fs::remove_file(&temp);
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the path"))
    };
    let target = c(&temp)?;
    let by_proc = c(Path::new(&format!("/proc/self/fd/{}", file.as_raw_fd())))?;
    // SAFETY: both paths are valid NUL-terminated strings for the call.
    let mut linked = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            by_proc.as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if linked != 0 {
        // Without /proc: linking the descriptor itself needs a privilege
        // some processes have.
        // SAFETY: as above; the empty path is a valid string.
        linked = unsafe {
            libc::linkat(
                file.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_FDCWD,
                target.as_ptr(),
                libc::AT_EMPTY_PATH,
            )
        };
    }
    if linked != 0 {
        // Last resort: copy it to a named temporary.
        let copied = (|| {
            let mut source = file.try_clone()?;
            source.seek(SeekFrom::Start(0))?;
            let mut named = fs::File::create(&temp)?;
            io::copy(&mut source, &mut named)?;
            named.sync_all()
        })();
        if let Err(e) = copied {
            let _ = fs::remove_file(&temp);
            return Err(e);
        }
    }
    fs::rename(&temp, destination).inspect_err(|_| {
        let _ = fs::remove_file(&temp);
    })
}

/// Makes a rename in `path`'s folder durable.
pub fn sync_folder(path: &Path) {
    if let Ok(dir) = File::open(folder_of(path)) {
        let _ = dir.sync_all();
    }
}

/// Little-endian encoder for the small sections.
#[derive(Default)]
pub struct Encoder {
    /// The bytes so far.
    pub bytes: Vec<u8>,
}

impl Encoder {
    pub fn u8(&mut self, v: u8) {
        self.bytes.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    pub fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.bytes.extend_from_slice(v);
    }
}

/// Checked decoder for the small sections: every read is bounds-checked,
/// every length is checked against the bytes left before it is used.
pub struct Decoder<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Decoder { bytes, at: 0 }
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(out)
    }
    pub fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    pub fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Records each write's offset and length, and the bytes.
    #[derive(Default)]
    struct Recorder {
        bytes: Vec<u8>,
        writes: Vec<(usize, usize)>,
    }

    impl Write for Recorder {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            // Takes at most 5 bytes a call, as a short write may.
            let n = bytes.len().min(5);
            self.writes.push((self.bytes.len(), n));
            self.bytes.extend_from_slice(&bytes[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    proptest! {
        /// Whatever the pieces, the bytes come out in order, and every
        /// write but those of the final flush lies inside one block.
        #[test]
        fn block_writer_writes_the_bytes_in_whole_blocks(
            pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..30),
            block in 1usize..24,
        ) {
            let mut writer = BlockWriter::with_block(Recorder::default(), block);
            for piece in &pieces {
                writer.write_all(piece).unwrap();
            }
            let before_flush = writer.get_ref().writes.len();
            let written = writer.get_mut().unwrap();
            prop_assert_eq!(&written.bytes, &pieces.concat());
            let whole_blocks = written.bytes.len() / block * block;
            for &(at, n) in &written.writes[..before_flush] {
                prop_assert!(at + n <= whole_blocks);
            }
            // A short write never leaves a block half written before the
            // next: the writes so far end at a block's end.
            let end = written.writes[..before_flush].last().map_or(0, |&(at, n)| at + n);
            prop_assert_eq!(end % block, 0);
        }
    }
}
