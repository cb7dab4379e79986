//! Merging the workers' runs into one index.
//!
//! Runs arrive one per batch, and batches are consecutive ranges of the
//! sorted file table, so for any word the batches' posting lists are already
//! in (file, line, column) order when taken in batch order. The merge is a
//! k-way walk over the runs' sorted words that records, for each word, where
//! its list lies in each run (its *pieces*), never decoding, copying or
//! re-inserting an occurrence.
//!
//! The vocabulary is cut into ranges at words taken from the runs'
//! checkpoints, and each range is merged on its own thread: by the time the
//! merge runs every worker process has been reaped, so no fork can see these
//! threads. The ranges are then laid end to end.

use std::num::NonZeroU32;

use super::partial::{prefetch, Run, RunReader, WordBuf};
use super::release;
use super::tournament::{LoserTree, Sourced};
use super::vocabulary::Vocabulary;
use super::Index;
use super::PieceShard;

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

/// A run's current word in the merge's tournament, ordered by (word, run):
/// equal words come out in batch order. The word's first sixteen bytes,
/// big-endian, settle most comparisons; the word itself is in the run's
/// reader (see [`Head::order`]). 32 bytes, and no more once optional
/// (the length leaves a niche): a replay moves one a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    prefix: u128,
    /// The word's length and one more.
    len_and_one: NonZeroU32,
    run: u32,
}

const _: () = assert!(std::mem::size_of::<Option<Head>>() == 32);

impl Head {
    /// The head of run `run`, whose reader holds `word`.
    #[inline]
    fn new(word: &WordBuf, run: usize) -> Self {
        // Words in runs are far shorter than 2^32 bytes (MAX_RUN_WORD), and
        // there are far fewer runs than that.
        let len = word.as_slice().len() as u32;
        Head {
            prefix: word.prefix(),
            len_and_one: NonZeroU32::MIN.saturating_add(len),
            run: run as u32,
        }
    }

    #[inline]
    fn len(&self) -> u32 {
        self.len_and_one.get() - 1
    }

    /// The order of two heads, their words read from `readers` only when
    /// their prefixes are equal and one is longer than sixteen bytes.
    /// Words of at most sixteen bytes with equal prefixes are ordered by
    /// length (equal zero-padded prefixes leave the longer one zeros past
    /// the shorter's end, so the shorter is its prefix): the common word
    /// met in every run is told equal without comparing bytes.
    #[inline]
    fn order(&self, other: &Head, readers: &[RunReader<'_>]) -> std::cmp::Ordering {
        self.prefix
            .cmp(&other.prefix)
            .then_with(|| match self.len() <= 16 && other.len() <= 16 {
                true => self.len_and_one.cmp(&other.len_and_one),
                false => readers[self.run as usize]
                    .word()
                    .cmp(readers[other.run as usize].word()),
            })
            .then(self.run.cmp(&other.run))
    }

    /// `self.order(other, readers).is_lt()`, settled by the prefixes
    /// alone where they differ (nearly always).
    #[inline(always)]
    fn precedes(&self, other: &Head, readers: &[RunReader<'_>]) -> bool {
        if self.prefix != other.prefix {
            return self.prefix < other.prefix;
        }
        self.order(other, readers).is_lt()
    }
}

impl Sourced for Head {
    #[inline]
    fn source(&self) -> usize {
        self.run as usize
    }
}

/// Moves run `i`'s reader to its next entry, if it starts before byte
/// `end` of the run's entries: what the merge keeps of it, or `None` once
/// there is none.
#[inline(always)]
fn advance(
    reader: &mut RunReader<'_>,
    entries: &[u8],
    i: usize,
    end: usize,
) -> Result<Option<Current>, MalformedRun> {
    if reader.position().0 >= end as u64 {
        return Ok(None);
    }
    let current = reader.next_entry().map(|e| Current {
        count: e.count,
        last_file: e.last_file,
        postings_at: e.postings_at,
        postings_len: e.postings.len(),
    });
    match current {
        Some(current) => {
            fetch_ahead(entries, reader.position().0);
            Ok(Some(current))
        }
        None if reader.is_malformed() => Err(MalformedRun { run: i }),
        None => Ok(None),
    }
}

/// What the merge keeps of a run's current entry (its word stays in the
/// run's reader).
#[derive(Debug, Clone, Copy)]
struct Current {
    count: u32,
    last_file: u32,
    postings_at: usize,
    postings_len: usize,
}

/// Words from `.0` (inclusive) to `.1` (exclusive); `None` is unbounded.
type WordRange<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// One vocabulary range, merged.
#[derive(Default)]
struct Shard {
    vocabulary: Vocabulary,
    counts: Vec<u32>,
    pieces: PieceShard,
}

/// Merges the words in `[low, high)` (unbounded where `None`) of every run.
/// `ranges` is how many ranges the vocabulary is cut into (this one's
/// likely share of the entries).
fn merge_range(
    runs: &[Run],
    low: Option<&[u8]>,
    high: Option<&[u8]>,
    ranges: usize,
) -> Result<Shard, MalformedRun> {
    let mut readers: Vec<RunReader<'_>> = runs
        .iter()
        .map(|run| match low {
            Some(word) => RunReader::seek(run, word),
            None => RunReader::new(run),
        })
        .collect();
    // Where each run's words reach `high`: its entries are read up to
    // there, rather than each word compared with `high` as it is read.
    // (A run that turns out malformed on the way is read on, to the
    // malformed bytes, which the merge then reports.)
    let ends: Vec<usize> = runs
        .iter()
        .map(|run| match high {
            Some(word) => match RunReader::seek(run, word) {
                reader if reader.is_malformed() => usize::MAX,
                reader => reader.position().0 as usize,
            },
            None => usize::MAX,
        })
        .collect();
    let advance =
        |reader: &mut RunReader<'_>, entries: &[u8], i: usize| advance(reader, entries, i, ends[i]);
    // Each run's entries as a plain slice, taken once: a shared run's
    // bytes are reached through its owner, a call for each look.
    let run_entries: Vec<&[u8]> = runs.iter().map(|run| &run.bytes[..]).collect();
    let mut heads: Vec<Option<Current>> = Vec::with_capacity(runs.len());
    for (i, (reader, &run)) in readers.iter_mut().zip(&run_entries).enumerate() {
        heads.push(advance(reader, run, i)?);
    }
    let first = heads
        .iter()
        .enumerate()
        .map(|(i, h)| h.map(|_| Head::new(readers[i].word_buf(), i)))
        .collect();
    let mut tree = LoserTree::new(first, |a: &Head, b: &Head| a.precedes(b, &readers));
    // Room for this range's share of the runs' entries and a quarter more
    // (ranges are cut at quantiles of them), reserved rather than grown: a
    // vector doubled to hundreds of megabytes is copied and its fresh
    // pages zeroed at every step. What is never written costs no memory,
    // and what is left over is given back below. On small pages, not huge
    // ones: written once, in order, they gain little from a larger TLB
    // reach, and on a Firecracker guest that reports free memory to its
    // host a fresh 2 MiB page took five times as long to fault in as its
    // 512 small ones (the kernel merge: 0.51 -> 0.34 s of wall).
    let share = |total: usize| total / ranges.max(1) / 4 * 5 + 1024;
    let all_entries: usize = runs.iter().map(|r| r.words as usize).sum();
    let entries = share(all_entries);
    let word_bytes = share(runs.iter().map(|r| r.word_bytes as usize).sum());
    // The first range's counts become the whole index's (the others are
    // appended to them, and the whole trimmed once): room for every
    // range's, so appending copies only theirs. Grown instead, the vector
    // copied its own as well and faulted in fresh pages for both, on one
    // thread while the other core sat idle.
    let counts = match low {
        None => all_entries,
        Some(_) => entries,
    };
    let mut shard = Shard {
        vocabulary: Vocabulary::with_capacity(entries, word_bytes),
        counts: Vec::with_capacity(counts),
        pieces: PieceShard {
            first_word: 0,
            piece_ends: Vec::with_capacity(entries),
            run: Vec::with_capacity(entries),
            start: Vec::with_capacity(entries),
            len: Vec::with_capacity(entries),
        },
    };
    // The word being merged, copied out of its first run's reader (which
    // moves on before the other runs holding it are read).
    let mut word = WordBuf::default();
    while let Some((first, group)) = tree.winner() {
        word.copy_from(readers[first].word_buf());
        let word = word.as_slice();
        let same_word = |head: &Head, readers: &[RunReader<'_>]| {
            head.prefix == group.prefix
                && head.len_and_one == group.len_and_one
                && (head.len() <= 16 || readers[head.run as usize].word() == word)
        };
        let mut count: u32 = 0;
        let mut last_file: Option<u32> = None;
        while let Some((i, head)) = tree.winner() {
            if !same_word(&head, &readers) {
                break;
            }
            let Some(entry) = heads[i] else {
                return Err(MalformedRun { run: i });
            };
            // A word's lists must follow each other in file order: batches
            // are consecutive ranges of the file table, so each list ends
            // at or after the file where the one before it ended (the same
            // file when a run was cut inside it). Checked on the entries'
            // last files, so the merge never reads a list: reading the head
            // of each of millions of lists took a tenth of the merge.
            if entry.postings_len == 0 || last_file.is_some_and(|last| entry.last_file < last) {
                return Err(MalformedRun { run: i });
            }
            let too_big = |v: usize| u32::try_from(v).map_err(|_| MalformedRun { run: i });
            shard.pieces.run.push(too_big(i)?);
            shard.pieces.start.push(too_big(entry.postings_at)?);
            shard.pieces.len.push(too_big(entry.postings_len)?);
            count = count.saturating_add(entry.count);
            last_file = Some(entry.last_file);
            heads[i] = advance(&mut readers[i], run_entries[i], i)?;
            let next = heads[i].map(|_| Head::new(readers[i].word_buf(), i));
            tree.replay(i, next, |a: &Head, b: &Head| a.precedes(b, &readers));
        }
        shard.vocabulary.push(word);
        shard.counts.push(count);
        let pieces =
            u32::try_from(shard.pieces.run.len()).map_err(|_| MalformedRun { run: first })?;
        shard.pieces.piece_ends.push(pieces);
    }
    shard.vocabulary.shrink_to_fit();
    let pieces = &mut shard.pieces;
    for list in [
        &mut pieces.piece_ends,
        &mut pieces.run,
        &mut pieces.start,
        &mut pieces.len,
    ] {
        list.shrink_to_fit();
    }
    Ok(shard)
}

/// Bytes read ahead in a run's entries.
const AHEAD: usize = 512;

/// The merge reads each run's entries as one sequential stream, 71 at
/// once for the kernel's runs: more than a CPU's prefetcher follows, so
/// each is fetched a little ahead by hand, from the next entry, at byte
/// `next`. Its lists are never read (see `merge_range`), so nothing
/// fetches them: the lists' stream, fetched too while the merge read each
/// list's head, brought 288 MB into the cache for nothing once it stopped.
#[inline]
fn fetch_ahead(entries: &[u8], next: u64) {
    if let Some(byte) = entries.get(next as usize + AHEAD) {
        prefetch(byte);
    }
}

/// Words that cut the vocabulary into about `parts` ranges of similar
/// work: quantiles of every run's checkpoint words. Each checkpoint stands
/// for the same number of its run's entries, so the quantiles share out
/// the entries of all runs (cut by one run's words alone, the kernel's two
/// ranges differed by a fifth, and the merge waited on the larger).
fn splitters(runs: &[Run], parts: usize) -> Vec<Vec<u8>> {
    if parts <= 1 {
        return Vec::new();
    }
    let mut samples: Vec<Vec<u8>> = runs
        .iter()
        .flat_map(|run| {
            (0..run.checkpoints.len()).filter_map(move |k| {
                RunReader::at_checkpoint(run, k)?
                    .next_entry()
                    .map(|e| e.word.to_vec())
            })
        })
        .collect();
    samples.sort_unstable();
    let mut cuts: Vec<Vec<u8>> = (1..parts)
        .filter_map(|k| samples.get(k * samples.len() / parts).cloned())
        .collect();
    cuts.dedup();
    cuts
}

/// Merges `runs`, given in batch (file) order, into an index over `files`.
/// The index keeps the runs: their posting lists become its own.
pub fn merge_runs(files: Vec<String>, runs: Vec<Run>) -> Result<Index, MalformedRun> {
    merge_runs_parallel(files, runs, 1)
}

/// [`merge_runs`] on up to `threads` threads, one vocabulary range each.
/// Only call it where no process will fork while it runs.
pub fn merge_runs_parallel(
    files: Vec<String>,
    mut runs: Vec<Run>,
    threads: usize,
) -> Result<Index, MalformedRun> {
    let shards = merge_shards(&runs, threads)?;
    // The shards hold the words now; free the runs' copies before the
    // vocabulary is laid out, which is when the index is largest.
    let words = runs.iter_mut().map(|run| {
        run.checkpoints = Vec::new();
        release::dropping(std::mem::take(&mut run.bytes))
    });
    release::share_chores(words.collect(), threads);
    release_free_memory();
    // The first range's counts become the whole's, the others appended;
    // each range's words stay where its thread wrote them (see
    // `Vocabulary::append`).
    let mut shards = shards.into_iter();
    let first = shards.next().unwrap_or_default();
    let mut vocabulary = first.vocabulary;
    let mut counts = first.counts;
    let mut pieces = vec![first.pieces];
    for mut shard in shards {
        shard.pieces.first_word = counts.len();
        vocabulary.append(shard.vocabulary);
        counts.extend_from_slice(&shard.counts);
        pieces.push(shard.pieces);
    }
    counts.shrink_to_fit();
    Ok(Index::from_parts(files, vocabulary, counts, pieces, runs))
}

/// Hands memory the allocator holds but no longer uses back to the kernel.
/// (`main` tunes glibc to keep freed memory, which pays off while workers
/// churn through batches, not once the index is built.)
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the heap to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn merge_shards(runs: &[Run], threads: usize) -> Result<Vec<Shard>, MalformedRun> {
    let cuts = splitters(runs, threads.max(1));
    let bounds: Vec<WordRange<'_>> = (0..=cuts.len())
        .map(|i| {
            let low = i.checked_sub(1).map(|j| cuts[j].as_slice());
            let high = cuts.get(i).map(Vec::as_slice);
            (low, high)
        })
        .collect();
    let ranges = bounds.len();
    let shards: Vec<Result<Shard, MalformedRun>> = if ranges == 1 {
        vec![merge_range(runs, None, None, 1)]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = bounds
                .iter()
                .map(|&(low, high)| scope.spawn(move || merge_range(runs, low, high, ranges)))
                .collect();
            handles
                .into_iter()
                // A merge thread panics only on a bug: carry the panic on.
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        })
    };
    shards.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::index::partial::PartialIndex;
    use crate::index::tokenize::for_each_word;

    proptest::proptest! {
        /// Heads order as (word, run) do, whatever the words' lengths
        /// around the sixteen bytes of the prefix, NULs included: the two
        /// words share a stem of up to 20 bytes, so they often tie on the
        /// prefix and only what follows orders them (drawn apart, two
        /// words almost never share sixteen bytes).
        #[test]
        fn heads_order_as_words_then_runs(
            stem in proptest::collection::vec(proptest::prop_oneof![proptest::strategy::Just(0u8), 0u8..4, proptest::strategy::Just(b'a')], 0..20),
            tails in proptest::collection::vec(proptest::collection::vec(proptest::prop_oneof![proptest::strategy::Just(0u8), 0u8..4, proptest::strategy::Just(b'a')], 1..6), 2),
        ) {
            let [a, b] = [0, 1].map(|k| [stem.as_slice(), &tails[k]].concat());
            // Each word the only entry of a run of its own, read up to it.
            let run_of = |word: &[u8]| {
                let mut bytes = Vec::new();
                crate::index::partial::EntryWriter::default().write(&mut bytes, word, 1, 0, 1);
                Run { bytes: bytes.into(), postings: vec![0].into(), words: 1, ..Run::default() }
            };
            let runs = [run_of(&a), run_of(&b)];
            let mut readers: Vec<RunReader<'_>> = runs.iter().map(RunReader::new).collect();
            for reader in &mut readers {
                proptest::prop_assert!(reader.next_entry().is_some());
            }
            for (i, j) in [(0, 1), (1, 0), (0, 0)] {
                let (x, y) = (Head::new(readers[i].word_buf(), i), Head::new(readers[j].word_buf(), j));
                let (u, v) = (&[&a, &b][i], &[&a, &b][j]);
                proptest::prop_assert_eq!(x.order(&y, &readers), (u, i).cmp(&(v, j)));
            }
        }
    }

    /// Text for file `f`: words drawn from a small vocabulary with a skew,
    /// so some words appear in every run and most in few.
    fn text(f: u32) -> String {
        let mut x = u64::from(f) * 0x9E37_79B9 + 7;
        let mut out = String::new();
        // Some files span several chunks of occurrences, so runs are cut
        // inside them.
        let words = if f % 50 == 7 { 6000 } else { 40 };
        for i in 0..words {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (x % 3000) % (1 + (x >> 20) % 3000);
            out.push_str(&format!("w{n:x} "));
            if i % 7 == 6 {
                out.push('\n');
            }
        }
        out
    }

    #[test]
    fn parallel_merge_equals_a_map_of_every_occurrence() {
        let files: Vec<u32> = (0..300).collect();
        let mut want: BTreeMap<Vec<u8>, Vec<(u32, u64, u64)>> = BTreeMap::new();
        let mut runs = Vec::new();
        // Small limits: runs are also cut inside files, where the table fills.
        let limits = crate::index::partial::Limits {
            table: 1 << 18,
            arena: 1 << 14,
        };
        let mut partial = PartialIndex::with_limits(limits);
        for &f in &files {
            for_each_word(text(f).as_bytes(), |w, p| {
                if partial.add(w, f, p.line, p.column) {
                    runs.push(partial.take_run());
                }
                want.entry(w.as_bytes().to_vec())
                    .or_default()
                    .push((f, p.line, p.column));
            });
            if f % 37 == 36 {
                runs.push(partial.take_run());
            }
        }
        runs.push(partial.take_run());
        assert!(runs.len() > 10, "{} runs", runs.len());
        for threads in [1, 2, 3, 8] {
            let names = files.iter().map(|f| f.to_string()).collect();
            let index = merge_runs_parallel(names, runs.clone(), threads).unwrap();
            let got: BTreeMap<Vec<u8>, Vec<(u32, u64, u64)>> = (0..index.vocabulary().len())
                .map(|id| {
                    let locations = index
                        .locations(id)
                        .expect("built in memory")
                        .map(|l| (l.file, l.line, l.column));
                    (index.vocabulary().word(id).to_vec(), locations.collect())
                })
                .collect();
            assert_eq!(got, want, "threads {threads}");
            for id in 0..index.vocabulary().len() {
                assert_eq!(
                    index.count(id),
                    Ok(index.locations(id).expect("built in memory").count() as u32)
                );
            }
        }
        // Shards: every run cut at the same words, each range's pieces
        // merged apart (as machines merging a range each do) hold exactly
        // that range of the whole.
        let splits: Vec<Vec<u8>> = vec![b"w2".to_vec(), b"w5a".to_vec(), b"wb".to_vec()];
        let mut ranges: Vec<Vec<Run>> = vec![Vec::new(); splits.len() + 1];
        for run in &runs {
            for (k, piece) in run.split_at_words(&splits).unwrap().into_iter().enumerate() {
                ranges[k].push(piece);
            }
        }
        let mut joined = BTreeMap::new();
        for (k, pieces) in ranges.into_iter().enumerate() {
            let names = files.iter().map(|f| f.to_string()).collect();
            let index = merge_runs_parallel(names, pieces, 2).unwrap();
            for id in 0..index.vocabulary().len() {
                let word = index.vocabulary().word(id).to_vec();
                assert!(k == 0 || word >= splits[k - 1]);
                assert!(k == splits.len() || word < splits[k]);
                let locations = index
                    .locations(id)
                    .expect("built in memory")
                    .map(|l| (l.file, l.line, l.column));
                joined.insert(word, locations.collect::<Vec<_>>());
            }
        }
        assert_eq!(joined, want, "merged by ranges");
    }

    /// Runs handed over out of batch order would give lists that go back
    /// in file order: the merge refuses them rather than build that index.
    #[test]
    fn runs_out_of_batch_order_are_malformed() {
        let mut runs = Vec::new();
        for batch in [0..20u32, 20..40] {
            let mut partial = PartialIndex::new();
            for f in batch {
                for_each_word(text(f).as_bytes(), |w, p| {
                    assert!(!partial.add(w, f, p.line, p.column));
                });
            }
            runs.push(partial.take_run());
        }
        let names = || (0..40).map(|f: u32| f.to_string()).collect();
        assert!(merge_runs_parallel(names(), runs.clone(), 2).is_ok());
        runs.swap(0, 1);
        for threads in [1, 2] {
            assert!(matches!(
                merge_runs_parallel(names(), runs.clone(), threads),
                Err(MalformedRun { .. })
            ));
        }
    }

    /// A run whose entries break off anywhere, in any range of the
    /// vocabulary, is reported, however many ranges the merge is cut into
    /// (each range reads a run only up to where the next range's words
    /// begin, found before the merge reads it).
    #[test]
    fn a_run_cut_short_inside_an_entry_is_malformed_in_every_range() {
        let runs: Vec<Run> = [0..20u32, 20..40, 40..60]
            .into_iter()
            .map(|batch| {
                let mut partial = PartialIndex::new();
                for f in batch {
                    for_each_word(text(f).as_bytes(), |w, p| {
                        assert!(!partial.add(w, f, p.line, p.column));
                    });
                }
                partial.take_run()
            })
            .collect();
        let names = || (0..60).map(|f: u32| f.to_string()).collect();
        let length = runs[1].bytes.len();
        let mut cuts = 0;
        for cut in (1..10).map(|tenth| length * tenth / 10) {
            let mut damaged = runs.clone();
            damaged[1].bytes = runs[1].bytes[..cut].to_vec().into();
            // Only cuts inside an entry are damage a reader can see; a cut
            // between two entries reads as a shorter run.
            let mut reader = RunReader::new(&damaged[1]);
            while reader.next_entry().is_some() {}
            if !reader.is_malformed() {
                continue;
            }
            cuts += 1;
            for threads in [1, 2, 3, 8] {
                assert!(
                    matches!(
                        merge_runs_parallel(names(), damaged.clone(), threads),
                        Err(MalformedRun { run: 1 })
                    ),
                    "cut at {cut} of {length}, {threads} threads"
                );
            }
        }
        assert!(cuts >= 5, "only {cuts} cuts fell inside an entry");
    }
}
