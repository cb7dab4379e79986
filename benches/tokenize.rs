//! What a worker's inner loop costs, in MB/s of source text.
//!
//! * `tokenize/for_each_word`: the tokenizer counting words, beside two plain
//!   byte-counting loops over the same files (`newlines_loop`, a simple loop
//!   counting `\n`; `newlines_memchr`, `memchr_iter` counting `\n`), so the
//!   floor prints beside it in the same run.
//! * `partial_map/tokenize_add_into_run`: tokenize every file, add every word
//!   to one `PartialIndex`, then `into_run` (sort and serialize).
//! * `worker/index_in_process`: the same files written to a temporary
//!   folder, listed, and indexed by the worker's own loop (`index_in_process`,
//!   as a forked worker runs one batch): opened and read, tokenized by the
//!   CPU's block path (on AVX-512 VBMI eight words at a time, straight into
//!   the partial index, which `partial_map` does not reach: it adds words
//!   one by one through `for_each_word`), recorded, sorted and encoded. One
//!   process on one core: the place to compare changes to that loop, where
//!   whole builds of the kernel vary by a tenth from run to run. (Its own
//!   spread is about 1% within a run; from one run to the next it still
//!   drifts with the host, so alternate the builds compared.)
//! * `merge/8_runs`: `merge_runs` over 8 runs built beforehand from 8
//!   consecutive slices of the files. Building and cloning the runs is not
//!   timed; `merge_runs` takes them by value, so freeing them is. Its throughput is also in source bytes, so the three groups read
//!   as the cost of each stage per byte of the tree.
//!
//! Input: up to 32 MiB of `.c`/`.h` files, in sorted path order, from
//! `$BENCH_TREE`, else `/work/trees/linux-source-6.1`, else (neither exists)
//! 32 MiB of synthetic code-like text from a seeded xorshift generator, so
//! every run of the same input is identical.
//!
//! ```text
//! cargo bench --bench tokenize                     # about a minute
//! BENCH_TREE=/path/to/tree cargo bench --bench tokenize
//! cargo bench --bench tokenize -- tokenize         # one group
//! ```

mod common;

use common::Rng;

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{
    black_box, criterion_group, criterion_main, BatchSize, Criterion, SamplingMode, Throughput,
};
use indexer::index::for_each_word;
use indexer::index::merge_runs;
use indexer::index::{index_in_process, walk, BuildOptions, Excludes, Scratch};
use indexer::index::{PartialIndex, Run};

const INPUT_LIMIT: usize = 32 << 20;
const DEFAULT_TREE: &str = "/work/trees/linux-source-6.1";
const MERGE_RUNS: usize = 8;

/// The benchmark input: named files, each one a slice of `text`.
struct Input {
    source: String,
    names: Vec<String>,
    text: Vec<u8>,
    bounds: Vec<(usize, usize)>,
}

impl Input {
    fn files(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.bounds
            .iter()
            .map(|&(start, end)| &self.text[start..end])
    }

    fn bytes(&self) -> u64 {
        self.text.len() as u64
    }
}

fn input() -> &'static Input {
    static INPUT: std::sync::OnceLock<Input> = std::sync::OnceLock::new();
    INPUT.get_or_init(|| {
        let tree = std::env::var_os("BENCH_TREE")
            .map(PathBuf::from)
            .or_else(|| Some(PathBuf::from(DEFAULT_TREE)))
            .filter(|p| p.is_dir());
        let input = match tree {
            Some(tree) => from_tree(&tree),
            None => synthetic(),
        };
        eprintln!(
            "input: {} ({} files, {:.1} MiB)",
            input.source,
            input.bounds.len(),
            input.text.len() as f64 / (1 << 20) as f64
        );
        input
    })
}

/// Reads `.c` and `.h` files in sorted path order until the limit.
fn from_tree(tree: &Path) -> Input {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                walk(&path, out);
            } else if kind.is_file()
                && matches!(path.extension().and_then(|e| e.to_str()), Some("c" | "h"))
            {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    walk(tree, &mut paths);
    paths.sort();
    let mut input = Input {
        source: format!(".c/.h files of {}", tree.display()),
        names: Vec::new(),
        text: Vec::with_capacity(INPUT_LIMIT),
        bounds: Vec::new(),
    };
    for path in paths {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        if input.text.len() + bytes.len() > INPUT_LIMIT {
            break;
        }
        let start = input.text.len();
        input.text.extend_from_slice(&bytes);
        input.bounds.push((start, input.text.len()));
        let name = path.strip_prefix(tree).unwrap_or(&path);
        input.names.push(name.to_string_lossy().into_owned());
    }
    if input.text.is_empty() {
        return synthetic();
    }
    input
}

/// Code-like text: identifiers from a Zipf-ish vocabulary, keywords, hex
/// constants, punctuation and indentation, in files of 4 to 60 KiB.
fn synthetic() -> Input {
    const KEYWORDS: [&str; 16] = [
        "if", "else", "return", "static", "struct", "int", "unsigned", "void", "const", "for",
        "while", "sizeof", "goto", "case", "break", "u32",
    ];
    const PARTS: [&str; 24] = [
        "spin", "lock", "irq", "save", "dev", "buf", "len", "get", "put", "init", "free", "alloc",
        "page", "net", "skb", "inode", "read", "write", "queue", "mutex", "count", "flags", "ops",
        "state",
    ];
    const PUNCT: [&str; 8] = [" = ", "(", ", ", ");", "->", " + ", " & ", "[i]"];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let vocabulary: Vec<String> = (0..50_000)
        .map(|_| {
            let parts = 1 + rng.below(4);
            let mut word = String::new();
            for k in 0..parts {
                if k > 0 {
                    word.push('_');
                }
                word.push_str(PARTS[rng.below(PARTS.len())]);
            }
            if rng.below(4) == 0 {
                word.push_str(&rng.below(100).to_string());
            }
            if rng.below(10) == 0 {
                word.make_ascii_uppercase();
            }
            word
        })
        .collect();
    let mut input = Input {
        source: "synthetic code-like text (xorshift, seeded)".to_string(),
        names: Vec::new(),
        text: Vec::with_capacity(INPUT_LIMIT + (64 << 10)),
        bounds: Vec::new(),
    };
    while input.text.len() < INPUT_LIMIT {
        let start = input.text.len();
        let size = (4 << 10) + rng.below(56 << 10);
        let out = &mut input.text;
        while out.len() - start < size {
            let indent = out.len() + rng.below(4);
            out.resize(indent, b'\t');
            if rng.below(12) == 0 {
                out.extend_from_slice(b"/* ");
            }
            for _ in 0..1 + rng.below(8) {
                match rng.below(10) {
                    0..=1 => out.extend_from_slice(KEYWORDS[rng.below(KEYWORDS.len())].as_bytes()),
                    2 => out.extend_from_slice(format!("0x{:x}", rng.next() >> 44).as_bytes()),
                    _ => out.extend_from_slice(vocabulary[rng.zipf(vocabulary.len())].as_bytes()),
                }
                out.extend_from_slice(PUNCT[rng.below(PUNCT.len())].as_bytes());
            }
            out.push(b'\n');
        }
        input.bounds.push((start, input.text.len()));
        input.names.push(format!("gen/{:05}.c", input.names.len()));
    }
    input
}

fn count_words(file: &[u8]) -> u64 {
    let mut words = 0u64;
    for_each_word(file, |word, pos| {
        black_box((word.as_bytes(), pos));
        words += 1;
    });
    words
}

/// Tokenizes `files[range]` into one partial index, file ids from `range.start`.
fn build_run(files: &[&[u8]], range: std::ops::Range<usize>) -> Run {
    let mut partial = PartialIndex::new();
    for id in range {
        for_each_word(files[id], |word, pos| {
            // Unlimited: the index never fills up.
            let _ = partial.add(word, id as u32, pos.line, pos.column);
        });
    }
    partial.into_run()
}

fn tokenize(c: &mut Criterion) {
    let input = input();
    let mut group = c.benchmark_group("tokenize");
    // Flat: the tokenizer takes ~0.1 s per pass, too slow for linear sampling.
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Bytes(input.bytes()));
    group.bench_function("newlines_loop", |b| {
        b.iter(|| {
            let mut lines = 0u64;
            for file in input.files() {
                for &byte in black_box(file) {
                    lines += u64::from(byte == b'\n');
                }
            }
            lines
        })
    });
    group.bench_function("newlines_memchr", |b| {
        b.iter(|| {
            input
                .files()
                .map(|file| memchr::memchr_iter(b'\n', black_box(file)).count())
                .sum::<usize>()
        })
    });
    group.bench_function("for_each_word", |b| {
        b.iter(|| {
            input
                .files()
                .map(|file| count_words(black_box(file)))
                .sum::<u64>()
        })
    });
    group.finish();
}

fn partial_map(c: &mut Criterion) {
    let input = input();
    let files: Vec<&[u8]> = input.files().collect();
    let mut group = c.benchmark_group("partial_map");
    group.sampling_mode(SamplingMode::Flat);
    // About 0.4 s a pass: 10 samples need more than the default 3 s.
    group.measurement_time(Duration::from_secs(6));
    group.throughput(Throughput::Bytes(input.bytes()));
    group.bench_function("tokenize_add_into_run", |b| {
        b.iter(|| build_run(black_box(&files), 0..files.len()))
    });
    // The same work per occurrence: criterion's time per element, divided
    // out, is the ns per occurrence the build's budget is counted in.
    let occurrences: u64 = files.iter().map(|f| count_words(f)).sum();
    group.throughput(Throughput::Elements(occurrences));
    group.bench_function("tokenize_add_into_run_per_occurrence", |b| {
        b.iter(|| build_run(black_box(&files), 0..files.len()))
    });
    group.finish();
}

fn worker(c: &mut Criterion) {
    let input = input();
    let folder = tempfile::tempdir().expect("a temporary folder");
    for (name, file) in input.names.iter().zip(input.files()) {
        let path = folder.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("the input's folders");
        }
        std::fs::write(&path, file).expect("an input file");
    }
    let listing = walk(folder.path(), &Excludes::default()).expect("the input lists");
    let files = listing.files.len() as u32;
    let options = BuildOptions::default();
    // Kept from pass to pass, as a worker keeps its partial index from one
    // batch to the next.
    let mut scratch = Scratch::default();
    let index = |scratch: &mut Scratch| {
        index_in_process(
            &listing.files,
            &listing.root,
            listing.root_identity,
            0..files,
            &options,
            scratch,
        )
    };
    let indexed = index(&mut scratch);
    let occurrences: u64 = indexed.runs.iter().map(|r| r.occurrences).sum();
    let words: u64 = input.files().map(count_words).sum();
    assert_eq!(indexed.indexed, files, "the worker skipped input files");
    assert_eq!(
        occurrences, words,
        "the worker lost or invented occurrences"
    );

    let mut group = c.benchmark_group("worker");
    group.sampling_mode(SamplingMode::Flat);
    group.measurement_time(Duration::from_secs(6));
    group.throughput(Throughput::Bytes(input.bytes()));
    group.bench_function("index_in_process", |b| b.iter(|| index(&mut scratch)));
    group.finish();
}

fn merge(c: &mut Criterion) {
    let input = input();
    let files: Vec<&[u8]> = input.files().collect();
    let n = files.len();
    let runs: Vec<Run> = (0..MERGE_RUNS)
        .map(|k| build_run(&files, n * k / MERGE_RUNS..n * (k + 1) / MERGE_RUNS))
        .collect();
    let words: u64 = files.iter().map(|f| count_words(f)).sum();
    let occurrences: u64 = runs.iter().map(|r| r.occurrences).sum();
    let run_bytes: usize = runs.iter().map(|r| r.bytes.len() + r.postings.len()).sum();
    eprintln!(
        "merge input: {MERGE_RUNS} runs, {:.1} MiB, {occurrences} occurrences ({words} words tokenized)",
        run_bytes as f64 / (1 << 20) as f64
    );
    assert_eq!(occurrences, words, "the runs lost or invented occurrences");
    let merged = merge_runs(input.names.clone(), runs.clone()).expect("runs merge");
    assert_eq!(
        merged.occurrences().expect("built in memory"),
        words,
        "the merge lost or invented occurrences"
    );
    drop(merged);

    let mut group = c.benchmark_group("merge");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Bytes(input.bytes()));
    group.bench_function(format!("{MERGE_RUNS}_runs"), |b| {
        b.iter_batched(
            || (input.names.clone(), runs.clone()),
            |(names, runs)| merge_runs(names, runs).expect("runs merge"),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = tokenize, partial_map, worker, merge
}
criterion_main!(benches);
