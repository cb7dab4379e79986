//! Merging the workers' runs into one index.
//!
//! Runs arrive one per batch, and batches are consecutive ranges of the
//! sorted file table, so for any word the batches' posting lists are already
//! in (file, line, column) order when taken in batch order. The merge is a
//! k-way walk over the runs' sorted words that *concatenates* each word's
//! lists ([`append_list`]), never decoding or re-inserting an occurrence.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::partial::{Run, RunEntry, RunReader};
use super::postings::append_list;
use super::vocabulary::Vocabulary;
use super::Index;

/// A run that could not be read back: a worker sent malformed data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedRun {
    /// Position of the run in batch order.
    pub run: usize,
}

impl std::fmt::Display for MalformedRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the partial index of batch {} is malformed", self.run)
    }
}

impl std::error::Error for MalformedRun {}

/// Merges `runs`, given in batch (file) order, into an index over `files`.
pub fn merge_runs(files: Vec<String>, runs: &[Run]) -> Result<Index, MalformedRun> {
    let words_hint = runs.iter().map(|r| r.words as usize).max().unwrap_or(0);
    let bytes_hint: usize = runs.iter().map(|r| r.bytes.len()).sum();
    let mut vocabulary = Vocabulary::with_capacity(words_hint, words_hint * 8);
    let mut counts: Vec<u32> = Vec::with_capacity(words_hint);
    let mut starts: Vec<u64> = Vec::with_capacity(words_hint + 1);
    let mut postings: Vec<u8> = Vec::with_capacity(bytes_hint);
    starts.push(0);

    let mut readers: Vec<RunReader<'_>> = runs.iter().map(RunReader::new).collect();
    let mut heads: Vec<Option<RunEntry<'_>>> = readers.iter_mut().map(Iterator::next).collect();
    // Heap ordered by (word, run number): equal words pop in batch order.
    let mut heap: BinaryHeap<Reverse<(&[u8], usize)>> = heads
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.map(|e| Reverse((e.word, i))))
        .collect();

    while let Some(Reverse((word, first))) = heap.pop() {
        let mut group = vec![first];
        while let Some(Reverse((next, i))) = heap.peek().copied() {
            if next != word {
                break;
            }
            heap.pop();
            group.push(i);
        }
        let mut count: u32 = 0;
        let mut last_file: Option<u32> = None;
        for &i in &group {
            let Some(entry) = heads[i] else {
                return Err(MalformedRun { run: i });
            };
            append_list(&mut postings, entry.postings, last_file).ok_or(MalformedRun { run: i })?;
            count = count.saturating_add(entry.count);
            last_file = Some(entry.last_file);
            heads[i] = readers[i].next();
            if let Some(e) = heads[i] {
                if e.word <= entry.word {
                    return Err(MalformedRun { run: i });
                }
                heap.push(Reverse((e.word, i)));
            } else if readers[i].is_malformed() {
                return Err(MalformedRun { run: i });
            }
        }
        vocabulary.push(word);
        counts.push(count);
        starts.push(postings.len() as u64);
    }
    postings.shrink_to_fit();
    Ok(Index::from_parts(
        files, vocabulary, counts, starts, postings,
    ))
}
