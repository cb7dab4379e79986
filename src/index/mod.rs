//! Building the word index of a tree of text files.
//!
//! The pipeline, leaf to root:
//!
//! * [`walk()`] lists the files below a directory in the contract's order
//!   (sorted relative paths) and says why others were skipped;
//! * [`for_each_word`] splits a file's bytes into lowercased words with
//!   their line and byte column;
//! * [`PartialIndex`] collects one batch's words into a [`Run`]: its words
//!   sorted, each with a compact posting list of [`Location`]s;
//! * [`merge_runs`] merges the runs' words, in batch order, into an
//!   [`Index`] that keeps the runs' posting lists as they are;
//! * [`build()`] drives it all over the process runtime
//!   ([`crate::parallel`]): forked workers take batches and send runs back
//!   through an Exchange.
//!
//! The index itself knows nothing of processes; only the build does.
//!
//! The submodules are private: what is here is re-exported on purpose, and
//! the rest (byte arrays, the posting encoding, the run streams) is the
//! crate's own, shared with [`crate::store`].

pub(crate) mod build;
pub(crate) mod bytes;
mod files;
mod ignores;
pub(crate) mod merge;
pub(crate) mod pairs;
pub(crate) mod partial;
mod picks;
pub(crate) mod postings;
mod release;
pub(crate) mod stream;
pub(crate) mod tokenize;
mod tournament;
pub(crate) mod view;
pub(crate) mod vocabulary;
pub(crate) mod walk;

pub use build::{
    build, index_in_process, parse_size, BuildError, BuildOptions, BuildReport, Fault, Phase,
    Progress, Scratch, TestLimits,
};
pub use files::FileTable;
pub use merge::{merge_runs, merge_runs_parallel, MalformedRun};
pub use partial::{PartialIndex, Run, RunReader};
pub use picks::Picks;
pub use postings::Location;
pub use tokenize::{for_each_word, Position, Word, MAX_WORD_BYTES};
pub use view::{occurrences_in, FileStamp, Hit, HitWords, Layer, View, MAX_LAYERS};
pub use vocabulary::{Step, TextPicker, Vocabulary, WordReader};
pub use walk::{check_root, walk, BadGlob, Excludes, FileEntry, Problem, RootError, Walk};

use std::ops::Range;

use bytes::{Array, Bytes, Chunked};

use postings::Locations;

/// Every occurrence of every word of a tree: the vocabulary, and for each
/// word its count and posting list, over a table of file paths.
///
/// After a build, the posting lists stay where they arrived: in the workers'
/// runs. A word's list is the concatenation of its *pieces*, one per run it
/// occurs in, in batch order; each piece starts with an absolute file
/// number, so pieces decode on their own. Merging therefore copies no
/// occurrence at all, and the index needs no second copy of the largest
/// thing it holds. An index loaded from a file has one contiguous list per
/// word instead, used in place.
#[derive(Debug, Default)]
pub struct Index {
    files: FileTable,
    vocabulary: Vocabulary,
    counts: Array<u32>,
    postings: Postings,
}

/// Where the posting lists live.
#[derive(Debug)]
enum Postings {
    /// A fresh build's: pieces in the workers' runs.
    Pieces {
        shards: Vec<PieceShard>,
        /// Per run (batch): its posting lists.
        runs: Vec<Bytes>,
    },
    /// A stored index's: word `i`'s list is `lists[offsets[i]..offsets[i + 1]]`.
    Flat { offsets: Offsets, lists: Chunked },
}

/// Where each stored list starts: 32-bit while the lists fit in 4 GiB
/// (which saves 4 bytes a word), 64-bit beyond.
#[derive(Debug)]
pub enum Offsets {
    /// Offsets below 2^32.
    Narrow(Array<u32>),
    /// Any offsets.
    Wide(Array<u64>),
}

impl Offsets {
    fn get(&self, i: usize) -> Option<u64> {
        match self {
            Offsets::Narrow(a) => a.get(i).map(u64::from),
            Offsets::Wide(a) => a.get(i),
        }
    }

    fn is_damaged(&self) -> bool {
        match self {
            Offsets::Narrow(a) => a.is_damaged(),
            Offsets::Wide(a) => a.is_damaged(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Offsets::Narrow(a) => a.len(),
            Offsets::Wide(a) => a.len(),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Offsets::Narrow(a) => a.heap_bytes(),
            Offsets::Wide(a) => a.heap_bytes(),
        }
    }
}

impl Default for Postings {
    fn default() -> Self {
        Postings::Pieces {
            shards: Vec::new(),
            runs: Vec::new(),
        }
    }
}

/// A stored table or posting list failed its checksum, or does not decode,
/// when it was read. Every read of a saved index that can meet one returns
/// this rather than fewer occurrences: an answer is never quietly short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Damaged;

impl std::fmt::Display for Damaged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a checksum failed: the index file is damaged")
    }
}

impl std::error::Error for Damaged {}

/// Heap bytes an [`Index`] holds, by part (see [`Index::memory`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct IndexMemory {
    /// The workers' posting lists.
    pub runs: usize,
    /// The sorted words and their counts.
    pub vocabulary: usize,
    /// Where each word's lists lie in the runs.
    pub pieces: usize,
    /// Number of pieces.
    pub pieces_count: usize,
    /// The file table.
    pub files: usize,
}

/// The pieces of the words of one vocabulary range, merged on its own thread.
#[derive(Debug, Default)]
pub(crate) struct PieceShard {
    /// First word of the range.
    pub(crate) first_word: usize,
    /// Per word of the range: end of its pieces in the arrays below.
    pub(crate) piece_ends: Vec<u32>,
    /// Per piece: the run, where its list starts in the run, its length.
    pub(crate) run: Vec<u32>,
    pub(crate) start: Vec<u32>,
    pub(crate) len: Vec<u32>,
}

impl PieceShard {
    fn heap_bytes(&self) -> usize {
        (self.piece_ends.capacity()
            + self.run.capacity()
            + self.start.capacity()
            + self.len.capacity())
            * 4
    }
}

/// The posting lists of one word, as stored: its pieces in batch order
/// (one list for a loaded index). Each starts with an absolute file number.
#[derive(Debug, Clone)]
pub struct RawLists<'a> {
    runs: &'a [Bytes],
    shard: Option<&'a PieceShard>,
    next_piece: usize,
    end_piece: usize,
    single: Option<&'a [u8]>,
}

impl<'a> Iterator for RawLists<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if let Some(list) = self.single.take() {
            return Some(list);
        }
        let shard = self.shard?;
        if self.next_piece >= self.end_piece {
            return None;
        }
        let p = self.next_piece;
        self.next_piece += 1;
        let run = self.runs.get(*shard.run.get(p)? as usize)?;
        let start = *shard.start.get(p)? as usize;
        let end = start + *shard.len.get(p)? as usize;
        Some(run.get(start..end).unwrap_or_default())
    }
}

/// The occurrences of one word, decoded list by list.
#[derive(Debug, Clone)]
pub struct WordLocations<'a> {
    lists: RawLists<'a>,
    current: Locations<'a>,
}

impl Iterator for WordLocations<'_> {
    type Item = Location;

    #[inline]
    fn next(&mut self) -> Option<Location> {
        loop {
            if let Some(location) = self.current.next() {
                return Some(location);
            }
            self.current = Locations::new(self.lists.next()?);
        }
    }
}

impl Index {
    pub(crate) fn from_parts(
        files: Vec<String>,
        vocabulary: Vocabulary,
        counts: Vec<u32>,
        shards: Vec<PieceShard>,
        runs: Vec<Run>,
    ) -> Self {
        debug_assert_eq!(vocabulary.len(), counts.len());
        // The runs' words are merged into `vocabulary`; only their lists stay.
        let runs = runs.into_iter().map(|run| run.postings).collect();
        Index {
            files: FileTable::from(files),
            vocabulary,
            counts: Array::Owned(counts),
            postings: Postings::Pieces { shards, runs },
        }
    }

    /// An index over stored parts, used in place: `offsets` has one more
    /// entry than there are words, rises, and ends within `lists` (checked).
    pub fn from_stored(
        files: FileTable,
        vocabulary: Vocabulary,
        counts: Array<u32>,
        offsets: Offsets,
        lists: Chunked,
    ) -> Option<Self> {
        let fits = counts.len() == vocabulary.len()
            && offsets.len() == vocabulary.len() + 1
            && offsets.get(0) == Some(0)
            && offsets.get(vocabulary.len()) == Some(lists.len() as u64);
        // Offsets that fall are not checked here (that would read them
        // all at open): a word whose list would end before it starts
        // reads as no list.
        fits.then_some(Index {
            files,
            vocabulary,
            counts,
            postings: Postings::Flat { offsets, lists },
        })
    }

    /// The distinct words, sorted.
    pub fn vocabulary(&self) -> &Vocabulary {
        &self.vocabulary
    }

    /// Number of occurrences of word `id`; [`Damaged`] when its stored
    /// count fails its check (or `id` is past the last word).
    pub fn count(&self, id: usize) -> Result<u32, Damaged> {
        self.counts.get(id).ok_or(Damaged)
    }

    /// [`Index::count`] of each of `ids`, pushed onto `out`; ids in
    /// ascending order read each stored chunk of counts once.
    pub fn counts_of(
        &self,
        ids: impl IntoIterator<Item = usize>,
        out: &mut Vec<u64>,
    ) -> Result<(), Damaged> {
        self.counts
            .for_each_at(ids, |count| out.push(u64::from(count)))
            .ok_or(Damaged)
    }

    /// The posting lists of word `id` as stored (see [`RawLists`]); for a
    /// loaded index, read and verified now, [`Damaged`] if they fail.
    pub fn raw_lists(&self, id: usize) -> Result<RawLists<'_>, Damaged> {
        let mut lists = RawLists {
            runs: &[],
            shard: None,
            next_piece: 0,
            end_piece: 0,
            single: None,
        };
        match &self.postings {
            Postings::Pieces { shards, runs } => {
                let s = shards
                    .partition_point(|shard| shard.first_word <= id)
                    .saturating_sub(1);
                let Some(shard) = shards.get(s) else {
                    return Ok(lists);
                };
                let local = id.wrapping_sub(shard.first_word);
                let start = match local {
                    0 => 0,
                    _ => shard.piece_ends.get(local - 1).map_or(0, |&e| e as usize),
                };
                lists.runs = runs;
                lists.shard = Some(shard);
                lists.next_piece = start;
                lists.end_piece = shard.piece_ends.get(local).map_or(0, |&e| e as usize);
            }
            Postings::Flat {
                offsets,
                lists: bytes,
            } => {
                let start = offsets.get(id).ok_or(Damaged)?;
                let end = offsets.get(id + 1).ok_or(Damaged)?;
                // Offsets are not all checked at open: one that falls is
                // damage found here.
                lists.single = Some(bytes.get(start as usize..end as usize).ok_or(Damaged)?);
            }
        }
        Ok(lists)
    }

    /// Calls `f(id, list)` for every stored list of the words numbered
    /// `range`, in order: for a loaded index, one pass over its contiguous
    /// lists (checked once, up front) instead of a lookup per word.
    pub fn for_each_list(
        &self,
        range: Range<usize>,
        f: &mut dyn FnMut(usize, &[u8]),
    ) -> Result<(), Damaged> {
        match &self.postings {
            Postings::Flat { offsets, lists } => {
                let start = offsets.get(range.start).ok_or(Damaged)?;
                let end = offsets.get(range.end).ok_or(Damaged)?;
                let all = lists.get(start as usize..end as usize).ok_or(Damaged)?;
                let mut from = 0usize;
                for id in range {
                    let next = offsets.get(id + 1).ok_or(Damaged)?;
                    let to = next.saturating_sub(start) as usize;
                    f(id, all.get(from..to).ok_or(Damaged)?);
                    from = to;
                }
            }
            Postings::Pieces { .. } => {
                for id in range {
                    for list in self.raw_lists(id)? {
                        f(id, list);
                    }
                }
            }
        }
        Ok(())
    }

    /// Occurrences of word `id` from at most the first `max_bytes` of its
    /// stored list (a stored index verifies only those bytes), and whether
    /// that is the whole list. A list cut there ends at the last whole
    /// entry. Lists built in memory are given whole.
    pub fn locations_within(
        &self,
        id: usize,
        max_bytes: usize,
    ) -> Result<(WordLocations<'_>, bool), Damaged> {
        let Postings::Flat { offsets, lists } = &self.postings else {
            return Ok((self.locations(id)?, true));
        };
        let start = offsets.get(id).ok_or(Damaged)?;
        let end = offsets.get(id + 1).ok_or(Damaged)?;
        let cut = end.min(start.saturating_add(max_bytes as u64));
        let raw = RawLists {
            runs: &[],
            shard: None,
            next_piece: 0,
            end_piece: 0,
            single: Some(lists.get(start as usize..cut as usize).ok_or(Damaged)?),
        };
        let locations = WordLocations {
            lists: raw,
            current: Locations::new(&[]),
        };
        Ok((locations, cut == end))
    }

    /// Occurrences of word `id`, in (path, line, column) order; for a
    /// loaded index its list is read and verified now ([`Damaged`]).
    pub fn locations(&self, id: usize) -> Result<WordLocations<'_>, Damaged> {
        Ok(WordLocations {
            lists: self.raw_lists(id)?,
            current: Locations::new(&[]),
        })
    }

    /// Verifies the word tables (vocabulary, counts, offsets) whole now,
    /// as a refresh that reuses them all does; false if one is damaged.
    pub fn verify_tables(&self) -> bool {
        let offsets = match &self.postings {
            Postings::Flat { offsets, .. } => match offsets {
                Offsets::Narrow(a) => a.verify(),
                Offsets::Wide(a) => a.verify(),
            },
            Postings::Pieces { .. } => true,
        };
        self.vocabulary.verify() && self.counts.verify() && offsets
    }

    /// True once a stored list or table failed its checksum (see
    /// [`Index::verify`]): each is checked as it is first read.
    pub fn is_damaged(&self) -> bool {
        let postings = match &self.postings {
            Postings::Flat { lists, offsets } => lists.is_damaged() || offsets.is_damaged(),
            Postings::Pieces { .. } => false,
        };
        postings || self.counts.is_damaged() || self.vocabulary.is_damaged()
    }

    /// Verifies the stored lists of the words `ids` (a saved index checks
    /// its lists lazily, as they are first read).
    pub fn verify(&self, ids: impl Iterator<Item = usize>) -> Result<(), Damaged> {
        if let Postings::Flat { .. } = self.postings {
            for id in ids {
                self.raw_lists(id)?;
            }
        }
        match self.is_damaged() {
            true => Err(Damaged),
            false => Ok(()),
        }
    }

    /// The file table: relative paths in ascending byte order.
    pub fn files(&self) -> &FileTable {
        &self.files
    }

    /// Total occurrences of all words (reads every count: [`Damaged`]
    /// if one fails its check).
    pub fn occurrences(&self) -> Result<u64, Damaged> {
        if !self.counts.verify() {
            return Err(Damaged);
        }
        Ok(self.counts.as_slice().iter().map(|&c| u64::from(c)).sum())
    }

    /// Bytes of posting lists.
    pub fn posting_bytes(&self) -> usize {
        match &self.postings {
            Postings::Pieces { shards, .. } => shards
                .iter()
                .map(|s| s.len.iter().map(|&l| l as usize).sum::<usize>())
                .sum(),
            Postings::Flat { lists, .. } => lists.len(),
        }
    }

    /// Heap bytes held, by part.
    pub fn memory(&self) -> IndexMemory {
        let (runs, pieces, pieces_count) = match &self.postings {
            Postings::Pieces { shards, runs } => (
                runs.iter().map(Bytes::resident).sum(),
                shards.iter().map(PieceShard::heap_bytes).sum(),
                shards.iter().map(|s| s.run.len()).sum(),
            ),
            Postings::Flat { offsets, lists } => (lists.heap_bytes() + offsets.heap_bytes(), 0, 0),
        };
        IndexMemory {
            runs,
            vocabulary: self.vocabulary.heap_bytes() + self.counts.heap_bytes(),
            pieces,
            pieces_count,
            files: self.files.heap_bytes(),
        }
    }

    /// Lets go of the index's memory for a process about to end, on
    /// `threads` threads (see [`release`]): left to the exit, the kernel
    /// frees it all on one.
    pub fn discard(self, threads: usize) {
        let Index {
            files,
            vocabulary,
            counts,
            postings,
        } = self;
        // Hundreds of thousands of small allocations: the exit takes them
        // with the heap they lie in, at no cost per allocation.
        std::mem::forget(files);
        let Postings::Pieces { shards, runs } = postings else {
            // A saved index, mapped from its file: the exit unmaps it.
            std::mem::forget((vocabulary, counts, postings));
            return;
        };
        let mut chores = vec![release::dropping(vocabulary), release::dropping(counts)];
        chores.extend(shards.into_iter().map(release::dropping));
        // What the allocator holds once those are freed goes back while the
        // other thread unmaps runs.
        chores.push(Box::new(merge::release_free_memory));
        chores.extend(runs.into_iter().map(release::dropping));
        release::share_chores(chores, threads);
    }

    /// Approximate heap bytes held: the parts of [`Index::memory`] summed.
    pub fn heap_bytes(&self) -> usize {
        let m = self.memory();
        m.runs + m.vocabulary + m.pieces + m.files
    }
}
