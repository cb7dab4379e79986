//! Merging runs that do not all fit in memory.
//!
//! A build keeps its runs in memory and merges them there ([`super::merge`])
//! while they fit its memory budget. Past it, runs go to disk (the store
//! layer writes and reads them back) and are merged by *streaming*: every
//! run is read in order, one entry at a time, and each word's lists are
//! copied piece by piece into a [`ListSink`] (a saved index being written,
//! or a larger run), so memory holds a buffer per run, never a run.
//!
//! Runs are given in file order, as a build made them, so a word's list is
//! its pieces in that order, each joined to the last by rewriting one
//! varint (see [`super::postings::append_list`]); no occurrence is decoded.

use std::io;

use super::partial::{Run, RunReader, WordBuf};
use super::postings::{rebased_head, write_varint};
use super::tournament::{word_prefix, LoserTree, Sourced};

/// One entry of a run, without its word and list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryHead {
    /// Occurrences of the word in the run.
    pub count: u32,
    /// File of the word's last occurrence in the run.
    pub last_file: u32,
    /// Bytes of the word's posting list.
    pub list_len: u64,
}

/// A run read back in order, entry by entry, its lists streamed.
pub trait RunSource: Send {
    /// Moves to the next entry; false past the last one.
    fn advance(&mut self) -> io::Result<bool>;
    /// The current entry's word.
    fn word(&self) -> &[u8];
    /// The current entry's count, last file and list length.
    fn head(&self) -> EntryHead;
    /// Passes the current entry's list to `out` in order, in one or more
    /// pieces; the first piece holds the whole list or at least its first
    /// [`HEAD_BYTES`] bytes, so the first varint is never split.
    fn copy_list(&mut self, out: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()>;
    /// Words of the run, one every `every` checkpoints (checkpoints are a
    /// fixed number of entries apart, so runs give samples in proportion
    /// to their size): where a merge may be cut into ranges.
    fn sample(&self, every: usize) -> io::Result<Vec<Vec<u8>>>;
    /// Bytes of the run's word entries and of its posting lists.
    fn sizes(&self) -> (u64, u64);
    /// Splits a run not yet read into its words below `word` and the rest,
    /// two sources that read independently.
    fn split(self: Box<Self>, word: &[u8]) -> io::Result<(Box<dyn RunSource>, Box<dyn RunSource>)>;
}

/// Where a build puts runs it cannot keep in memory (the store layer
/// writes them to temporary files).
pub trait Spill {
    /// Writes `run` out of memory; returns a source that reads it back.
    fn spill(&mut self, run: &Run) -> io::Result<Box<dyn RunSource>>;

    /// How workers may write their runs to disk themselves, once the
    /// build is past its budget (so a run is not copied through the
    /// parent first); `None` if they may not.
    fn for_workers(&self) -> Option<RunFiles> {
        None
    }

    /// Reads back a run a worker wrote with [`RunFiles::write`] (the open
    /// file came over its channel).
    fn adopt(&mut self, file: std::fs::File, shape: RunShape) -> io::Result<Box<dyn RunSource>> {
        let _ = (file, shape);
        Err(io::Error::other("runs written by workers are not taken"))
    }

    /// How many runs [`Spill::combine`] takes at once, if it can: a build
    /// holding more than twice that many runs out of memory merges some of
    /// them while it runs, since each holds a descriptor (a tree of many
    /// small batches makes tens of thousands). `None`: runs are never
    /// combined.
    fn fan_in(&self) -> Option<usize> {
        None
    }

    /// Merges `sources`, consecutive runs in file order, into one run out
    /// of memory.
    fn combine(&mut self, sources: Vec<Box<dyn RunSource>>) -> io::Result<Box<dyn RunSource>> {
        let _ = sources;
        Err(io::Error::other("runs are not combined"))
    }
}

/// How a worker writes a run to disk: a function and the folder it writes
/// in, which a forked worker inherits.
#[derive(Debug, Clone)]
pub struct RunFiles {
    /// Where the files go.
    pub folder: std::path::PathBuf,
    /// Writes the run to a new file in the folder; returns it, open.
    pub write: fn(&std::path::Path, &Run) -> io::Result<std::fs::File>,
}

/// A run written to a file, described without its bytes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunShape {
    /// Bytes of posting lists, first in the file.
    pub lists: u64,
    /// Bytes of word entries, after them.
    pub heads: u64,
    /// Entries.
    pub words: u64,
    /// Bytes of the entries' words, whole.
    pub word_bytes: u64,
    /// Occurrences.
    pub occurrences: u64,
    /// The run's checkpoints.
    pub checkpoints: Vec<(u64, u64)>,
}

impl RunShape {
    /// The shape of `run`.
    pub fn of(run: &Run) -> Self {
        RunShape {
            lists: run.postings.len() as u64,
            heads: run.bytes.len() as u64,
            words: run.words,
            word_bytes: run.word_bytes,
            occurrences: run.occurrences,
            checkpoints: run.checkpoints.clone(),
        }
    }
}

/// Bytes the first piece of a streamed list holds at least (a varint takes
/// at most ten).
pub const HEAD_BYTES: usize = 16;

/// Where merged words go: each word's list, in pieces, then the word.
pub trait ListSink {
    /// The next bytes of the current word's list.
    fn list(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Ends the current word: its bytes, count and last file.
    fn word(&mut self, word: &[u8], count: u32, last_file: u32) -> io::Result<()>;
}

/// A run held in memory, as a [`RunSource`].
#[derive(Debug)]
pub struct MemoryRun {
    run: std::sync::Arc<Run>,
    /// Where the next entry starts (words, lists).
    next: (u64, u64),
    /// Where reading stops (in the words).
    end: u64,
    /// The current word (the next entry's builds on it).
    word: WordBuf,
    list: std::ops::Range<usize>,
    head: EntryHead,
}

impl MemoryRun {
    /// Reads `run` from its start.
    pub fn new(run: Run) -> Self {
        let end = run.bytes.len() as u64;
        Self::between(std::sync::Arc::new(run), (0, 0), WordBuf::default(), end)
    }

    /// Reads `run` from `next`, where the word before is `word`, to `end`.
    fn between(run: std::sync::Arc<Run>, next: (u64, u64), word: WordBuf, end: u64) -> Self {
        MemoryRun {
            run,
            next,
            end,
            word,
            list: 0..0,
            head: EntryHead {
                count: 0,
                last_file: 0,
                list_len: 0,
            },
        }
    }
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("malformed run: {what}"))
}

impl RunSource for MemoryRun {
    fn advance(&mut self) -> io::Result<bool> {
        if self.next.0 >= self.end {
            return Ok(false);
        }
        let word = std::mem::take(&mut self.word);
        let mut reader = RunReader::at(&self.run, self.next, word);
        let Some(entry) = reader.next_entry() else {
            return match reader.is_malformed() {
                true => Err(malformed("an entry does not decode")),
                false => Ok(false),
            };
        };
        self.list = entry.postings_at..entry.postings_at + entry.postings.len();
        self.head = EntryHead {
            count: entry.count,
            last_file: entry.last_file,
            list_len: entry.postings.len() as u64,
        };
        self.next = reader.position();
        self.word = reader.into_word();
        Ok(true)
    }

    fn word(&self) -> &[u8] {
        self.word.as_slice()
    }

    fn head(&self) -> EntryHead {
        self.head
    }

    fn copy_list(&mut self, out: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        out(&self.run.postings[self.list.clone()])
    }

    fn sample(&self, every: usize) -> io::Result<Vec<Vec<u8>>> {
        Ok((0..self.run.checkpoints.len())
            .step_by(every.max(1))
            .filter_map(|k| RunReader::at_checkpoint(&self.run, k))
            .filter_map(|mut reader| reader.next_entry().map(|e| e.word.to_vec()))
            .collect())
    }

    fn sizes(&self) -> (u64, u64) {
        (self.run.bytes.len() as u64, self.run.postings.len() as u64)
    }

    fn split(self: Box<Self>, word: &[u8]) -> io::Result<(Box<dyn RunSource>, Box<dyn RunSource>)> {
        let found = RunReader::seek(&self.run, word);
        let at = found.position();
        let before = found.into_word();
        let (run, end) = (self.run, self.end);
        Ok((
            Box::new(MemoryRun::between(
                run.clone(),
                (0, 0),
                WordBuf::default(),
                at.0,
            )),
            Box::new(MemoryRun::between(run, at, before, end)),
        ))
    }
}

/// A source's current word in the merge's heap: its first 16 bytes,
/// big-endian and zero-padded, settle most comparisons without a call to
/// the source (words hold no NUL byte, so padding sorts like an end).
#[derive(Debug, Clone, Copy)]
struct Head {
    prefix: u128,
    /// The word is longer than the prefix: equal prefixes compare in full.
    long: bool,
    source: u32,
}

impl Head {
    fn of(word: &[u8], source: usize) -> Head {
        Head {
            prefix: word_prefix(word),
            long: word.len() > 16,
            source: source as u32,
        }
    }
}

impl Sourced for Head {
    #[inline]
    fn source(&self) -> usize {
        self.source as usize
    }
}

/// Orders sources by (current word, source number), so equal words come
/// out in source (file) order.
fn less(sources: &[Box<dyn RunSource + '_>], a: &Head, b: &Head) -> bool {
    if a.prefix != b.prefix {
        return a.prefix < b.prefix;
    }
    if a.long || b.long {
        let (x, y) = (
            sources[a.source as usize].word(),
            sources[b.source as usize].word(),
        );
        if x != y {
            return x < y;
        }
    }
    a.source < b.source
}

/// True when `b`, a source's current word, is `word` (whose head is `a`).
fn same_word(sources: &[Box<dyn RunSource + '_>], a: &Head, word: &[u8], b: &Head) -> bool {
    a.prefix == b.prefix
        && a.long == b.long
        && (!a.long || sources[b.source as usize].word() == word)
}

/// What a streaming merge did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Merged {
    /// Distinct words written.
    pub words: u64,
    /// Occurrences written.
    pub occurrences: u64,
}

/// Merges `sources`, given in file order, into `sink`: words in byte
/// order, each word's lists joined in source order. A source whose words
/// are not strictly rising or whose lists go back in file order is an
/// [`io::ErrorKind::InvalidData`] error, as is a word counted past `u32`.
pub fn merge_into(
    mut sources: Vec<Box<dyn RunSource + '_>>,
    sink: &mut dyn ListSink,
) -> io::Result<Merged> {
    let mut keys = Vec::with_capacity(sources.len());
    for (s, source) in sources.iter_mut().enumerate() {
        keys.push(match source.advance()? {
            true => Some(Head::of(source.word(), s)),
            false => None,
        });
    }
    let mut tree = LoserTree::new(keys, |a, b| less(&sources, a, b));
    let mut merged = Merged::default();
    let mut word = Vec::new();
    let mut head = Vec::with_capacity(10);
    while let Some((first, first_key)) = tree.winner() {
        word.clear();
        word.extend_from_slice(sources[first].word());
        let mut count = 0u32;
        let mut last_file = None;
        // Every source holding this word, in source order: each is the
        // winner in turn once the one before has moved past the word.
        while let Some((s, key)) = tree.winner() {
            if !same_word(&sources, &first_key, &word, &key) {
                break;
            }
            let entry = sources[s].head();
            let mut first_piece = true;
            let previous = last_file;
            sources[s].copy_list(&mut |bytes: &[u8]| {
                if !std::mem::take(&mut first_piece) {
                    return sink.list(bytes);
                }
                let (rebased, rest) = rebased_head(bytes, previous)
                    .ok_or_else(|| malformed("a list goes back in file order"))?;
                head.clear();
                write_varint(&mut head, rebased);
                sink.list(&head)?;
                sink.list(rest)
            })?;
            count = count.checked_add(entry.count).ok_or_else(|| {
                io::Error::other(format!(
                    "the word {:?} occurs more than {} times, more than an index counts",
                    String::from_utf8_lossy(&word),
                    u32::MAX
                ))
            })?;
            last_file = Some(entry.last_file);
            let next = match sources[s].advance()? {
                true => {
                    if sources[s].word() <= word.as_slice() {
                        return Err(malformed("words out of order"));
                    }
                    Some(Head::of(sources[s].word(), s))
                }
                false => None,
            };
            tree.replay(s, next, |a, b| less(&sources, a, b));
        }
        sink.word(&word, count, last_file.unwrap_or(0))?;
        merged.words += 1;
        merged.occurrences += u64::from(count);
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::merge::merge_runs;
    use crate::index::partial::{Limits, PartialIndex};
    use crate::index::postings::Locations;
    use crate::index::tokenize::for_each_word;

    type Decoded = (Vec<u8>, u32, Vec<(u32, u64, u64)>);

    /// Collects merged words with their decoded locations.
    #[derive(Default)]
    struct Collect {
        list: Vec<u8>,
        words: Vec<Decoded>,
    }

    impl ListSink for Collect {
        fn list(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.list.extend_from_slice(bytes);
            Ok(())
        }
        fn word(&mut self, word: &[u8], count: u32, _: u32) -> io::Result<()> {
            let locations = Locations::new(&self.list)
                .map(|l| (l.file, l.line, l.column))
                .collect();
            self.words.push((word.to_vec(), count, locations));
            self.list.clear();
            Ok(())
        }
    }

    #[test]
    fn streaming_equals_the_in_memory_merge() {
        let limits = Limits {
            table: 1 << 18,
            arena: 1 << 12,
        };
        let mut partial = PartialIndex::with_limits(limits);
        let mut runs = Vec::new();
        for file in 0..40u32 {
            let text: String = (0..300)
                .map(|i| format!("w{} ", (i * 7 + file * 13) % (50 + file)))
                .collect();
            for_each_word(text.as_bytes(), |w, p| {
                if partial.add(w, file, p.line, p.column) {
                    runs.push(partial.take_run());
                }
            });
            if file % 9 == 8 {
                runs.push(partial.take_run());
            }
        }
        runs.push(partial.take_run());
        let names = (0..40).map(|f: u32| f.to_string()).collect();
        let index = merge_runs(names, runs.clone()).unwrap();
        let sources: Vec<Box<dyn RunSource>> = runs
            .into_iter()
            .map(|r| Box::new(MemoryRun::new(r)) as Box<dyn RunSource>)
            .collect();
        let mut sink = Collect::default();
        let merged = merge_into(sources, &mut sink).unwrap();
        assert_eq!(merged.words as usize, index.vocabulary().len());
        for (id, (word, count, locations)) in sink.words.iter().enumerate() {
            assert_eq!(&index.vocabulary().word(id)[..], &word[..]);
            assert_eq!(index.count(id), Ok(*count));
            let want: Vec<_> = index
                .locations(id)
                .expect("built in memory")
                .map(|l| (l.file, l.line, l.column))
                .collect();
            assert_eq!(&want, locations);
        }
    }
}
