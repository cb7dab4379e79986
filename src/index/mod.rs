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
//! * [`merge`] concatenates the runs, in batch order, into an [`Index`];
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

use postings::Locations;

/// Every occurrence of every word of a tree: the vocabulary, and for each
/// word its count and posting list, over a table of file paths.
///
/// Posting lists live in one or more *shards*, each holding the lists of a
/// consecutive range of words back to back: the merge builds one shard per
/// vocabulary range in parallel, and keeping them apart spares a copy of
/// the largest part of the index.
#[derive(Debug, Default)]
pub struct Index {
    files: Vec<String>,
    vocabulary: Vocabulary,
    counts: Vec<u32>,
    /// Per word: end of its list within its shard.
    ends: Vec<u64>,
    /// Per shard: its first word.
    shard_starts: Vec<usize>,
    /// Per shard: the posting lists of its words.
    shards: Vec<Vec<u8>>,
}

impl Index {
    pub(crate) fn from_parts(
        files: Vec<String>,
        vocabulary: Vocabulary,
        counts: Vec<u32>,
        ends: Vec<u64>,
        shards: Vec<(usize, Vec<u8>)>,
    ) -> Self {
        debug_assert_eq!(vocabulary.len(), counts.len());
        debug_assert_eq!(ends.len(), counts.len());
        let (shard_starts, shards) = shards.into_iter().unzip();
        Index {
            files,
            vocabulary,
            counts,
            ends,
            shard_starts,
            shards,
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
    pub fn locations(&self, id: usize) -> Locations<'_> {
        let shard = self
            .shard_starts
            .partition_point(|&first| first <= id)
            .saturating_sub(1);
        let first = self.shard_starts.get(shard).copied().unwrap_or(0);
        let start = if id == first {
            0
        } else {
            self.ends[id - 1] as usize
        };
        let end = self.ends[id] as usize;
        Locations::new(&self.shards[shard][start..end])
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
        self.shards.iter().map(Vec::len).sum()
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.vocabulary.heap_bytes()
            + self.counts.capacity() * 4
            + self.ends.capacity() * 8
            + self.shards.iter().map(Vec::capacity).sum::<usize>()
            + self.files.iter().map(|f| f.capacity() + 24).sum::<usize>()
    }
}
