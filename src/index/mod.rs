//! Building the word index of a tree of text files.
//!
//! The pipeline, leaf to root:
//!
//! * [`walk`] lists the files below a directory in the contract's order
//!   (sorted relative paths) and says why others were skipped;
//! * [`tokenize`] splits a file's bytes into lowercased words with their
//!   line and byte column;
//! * [`partial`] collects one batch's words into a [`partial::Run`]: its words
//!   sorted, each with a compact [`postings`] list;
//! * [`merge`] merges the runs' words, in batch order, into an [`Index`]
//!   that keeps the runs' posting lists as they are;
//! * [`build`] drives it all over the process runtime
//!   ([`crate::parallel`]): forked workers take batches and send runs back
//!   through an Exchange.
//!
//! The index itself knows nothing of processes; only [`build`] does.

pub mod build;
pub mod merge;
pub mod partial;
pub mod postings;
pub mod tokenize;
pub mod vocabulary;
pub mod walk;

pub use build::{build, BuildOptions, BuildReport, Progress};
pub use postings::Location;
pub use vocabulary::Vocabulary;

use partial::Run;
use postings::Locations;

/// Every occurrence of every word of a tree: the vocabulary, and for each
/// word its count and posting list, over a table of file paths.
///
/// The posting lists stay where they arrived: in the workers' runs. A word's
/// list is the concatenation of its *pieces*, one per run it occurs in, in
/// batch order; each piece starts with an absolute file number, so pieces
/// decode on their own. Merging therefore copies no occurrence at all, and
/// the index needs no second copy of the largest thing it holds.
#[derive(Debug, Default)]
pub struct Index {
    files: Vec<String>,
    vocabulary: Vocabulary,
    counts: Vec<u32>,
    shards: Vec<PieceShard>,
    /// Per run (batch): its posting lists.
    postings: Vec<Vec<u8>>,
}

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

/// The occurrences of one word, decoded piece by piece.
#[derive(Debug, Clone)]
pub struct WordLocations<'a> {
    index: &'a Index,
    shard: &'a PieceShard,
    next_piece: usize,
    end_piece: usize,
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
            if self.next_piece >= self.end_piece {
                return None;
            }
            let p = self.next_piece;
            self.next_piece += 1;
            let run = &self.index.postings[self.shard.run[p] as usize];
            let start = self.shard.start[p] as usize;
            let end = start + self.shard.len[p] as usize;
            self.current = Locations::new(run.get(start..end).unwrap_or_default());
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
        let postings = runs.into_iter().map(|run| run.postings).collect();
        Index {
            files,
            vocabulary,
            counts,
            shards,
            postings,
        }
    }

    /// The distinct words, sorted.
    pub fn vocabulary(&self) -> &Vocabulary {
        &self.vocabulary
    }

    /// Number of occurrences of word `id`.
    pub fn count(&self, id: usize) -> u32 {
        self.counts[id]
    }

    /// Occurrences of word `id`, in (path, line, column) order.
    pub fn locations(&self, id: usize) -> WordLocations<'_> {
        let s = self
            .shards
            .partition_point(|shard| shard.first_word <= id)
            .saturating_sub(1);
        let shard = &self.shards[s];
        let local = id - shard.first_word;
        let start = if local == 0 {
            0
        } else {
            shard.piece_ends[local - 1] as usize
        };
        WordLocations {
            index: self,
            shard,
            next_piece: start,
            end_piece: shard.piece_ends[local] as usize,
            current: Locations::new(&[]),
        }
    }

    /// The relative path (with `/` separators) of file number `file`.
    pub fn path(&self, file: u32) -> &str {
        self.files
            .get(file as usize)
            .map(String::as_str)
            .unwrap_or("?")
    }

    /// The file table: relative paths in ascending byte order.
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// Total occurrences of all words.
    pub fn occurrences(&self) -> u64 {
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }

    /// Bytes of posting lists.
    pub fn posting_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.len.iter().map(|&l| l as usize).sum::<usize>())
            .sum()
    }

    /// Heap bytes held, by part.
    pub fn memory(&self) -> IndexMemory {
        IndexMemory {
            runs: self.postings.iter().map(Vec::capacity).sum(),
            vocabulary: self.vocabulary.heap_bytes() + self.counts.capacity() * 4,
            pieces: self.shards.iter().map(PieceShard::heap_bytes).sum(),
            pieces_count: self.shards.iter().map(|s| s.run.len()).sum(),
            files: self.files.iter().map(|f| f.capacity() + 24).sum(),
        }
    }

    /// Approximate heap bytes held: the parts of [`Index::memory`] summed.
    pub fn heap_bytes(&self) -> usize {
        let m = self.memory();
        m.runs + m.vocabulary + m.pieces + m.files
    }
}
