//! Counts the pieces a build of a tree would make under a few ways of
//! keeping words across batches, without building anything.
//!
//! Why: a piece (one batch's entry for one word) costs the build about as
//! much CPU as the record loop spends on all occurrences together (sorted,
//! encoded, sent and merged: about 216 ns each on the kernel tree). Fewer
//! batches make fewer pieces but spread each batch's word table; this
//! prices the other way, a worker keeping some words from batch to batch
//! so that each is shipped once, by counting what each policy would make.
//!
//! Batches are consecutive files of about `BATCH_MB` each (the build's
//! guided scheduling shrinks its last ones, so it makes a few more), and
//! the two workers of a policy that keeps words take the first and the
//! second half of them, each in file order.
//!
//! `cargo run --release --example pieces -- DIR [BATCH_MB]`

use std::collections::{HashMap, HashSet};

use indexer::index::{for_each_word, walk, Excludes};

/// A batch's words, each with its occurrences in the batch.
type Batch = HashMap<Vec<u8>, u32>;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: pieces DIR [BATCH_MB]");
        std::process::exit(2);
    };
    let batch_mb: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(18);
    let listing = match walk(dir.as_ref(), &Excludes::default()) {
        Ok(listing) => listing,
        Err(e) => {
            eprintln!("pieces: {e}");
            std::process::exit(2);
        }
    };
    let mut batches: Vec<Batch> = vec![HashMap::new()];
    let mut bytes = 0u64;
    for file in &listing.files {
        let Ok(text) = std::fs::read(&file.path) else {
            continue;
        };
        // As the build does: a NUL byte near the start marks a binary file.
        if text[..text.len().min(8192)].contains(&0) {
            continue;
        }
        let words = batches.last_mut().expect("one batch at least");
        for_each_word(&text, |word, _| {
            *words.entry(word.as_bytes().to_vec()).or_default() += 1;
        });
        bytes += text.len() as u64;
        if bytes >= batch_mb << 20 {
            batches.push(HashMap::new());
            bytes = 0;
        }
    }
    let today: usize = batches.iter().map(HashMap::len).sum();
    println!("{} batches of {batch_mb} MB: {today} pieces", batches.len());
    let (first, second) = batches.split_at(batches.len() / 2);
    let halves = [first, second];
    let share = |pieces: usize| 100.0 * pieces as f64 / today as f64;

    // Every word kept from the batch it first occurs in: one piece a word.
    let (distinct, _) = keeping(&halves, |_, _| true);
    println!(
        "one table per worker for its half: {distinct} pieces ({:.1}%)",
        share(distinct)
    );
    for least in [2, 5, 16] {
        let (pieces, kept) = keeping(&halves, |count, _| count >= least);
        println!(
            "words with {least}+ occurrences in a batch kept: {pieces} pieces ({:.1}%), {kept} words kept",
            share(pieces)
        );
    }
    let (pieces, kept) = keeping(&halves, |_, seen| seen);
    println!(
        "words kept from their second batch on: {pieces} pieces ({:.1}%), {kept} words kept",
        share(pieces)
    );
    for most in [30_000, 100_000, 200_000] {
        let pieces = keeping_best(&halves, most);
        println!(
            "the {most} words in most batches kept by each worker from the start: {pieces} pieces ({:.1}%)",
            share(pieces)
        );
    }
}

/// The bound on any policy keeping at most `most` words a worker: it
/// keeps from the start those in the most of its batches (known only
/// once the worker is done).
fn keeping_best(halves: &[&[Batch]], most: usize) -> usize {
    let mut pieces = 0;
    for half in halves {
        let mut batches_of: HashMap<&[u8], usize> = HashMap::new();
        for batch in half.iter() {
            for word in batch.keys() {
                *batches_of.entry(word.as_slice()).or_default() += 1;
            }
        }
        let mut batches: Vec<usize> = batches_of.into_values().collect();
        batches.sort_unstable_by(|a, b| b.cmp(a));
        let (kept, shipped) = batches.split_at(most.min(batches.len()));
        pieces += kept.len() + shipped.iter().sum::<usize>();
    }
    pieces
}

/// Pieces and kept words when `keep(count in the batch, seen in an earlier
/// batch)` says whether a worker keeps a word from this batch on.
fn keeping(halves: &[&[Batch]], keep: impl Fn(u32, bool) -> bool) -> (usize, usize) {
    let (mut pieces, mut kept_words) = (0, 0);
    for half in halves {
        let mut seen: HashSet<&[u8]> = HashSet::new();
        let mut kept: HashSet<&[u8]> = HashSet::new();
        for batch in half.iter() {
            for (word, &count) in batch {
                let word = word.as_slice();
                if kept.contains(word) {
                    continue;
                }
                if keep(count, seen.contains(word)) {
                    kept.insert(word);
                } else {
                    pieces += 1;
                    seen.insert(word);
                }
            }
        }
        pieces += kept.len();
        kept_words += kept.len();
    }
    (pieces, kept_words)
}
