//! Queries over a vocabulary the size of the Linux tree's (about 5 M
//! distinct words), in the form a saved index answers from (front-coded
//! blocks, the words again as plain text, their suffix keys and the
//! common byte pairs' bits):
//! prefixes, exact words, patterns with and without a literal to narrow
//! by, and "did you mean".
//!
//! `cargo bench --bench patterns`. The vocabulary is synthetic but shaped
//! like the kernel's: identifiers joined from common parts with `_`, hex
//! constants and numbered names, so prefixes are shared as in real code.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use indexer::index::Vocabulary;
use indexer::search::{matching_words, similar_words, Query};

use common::Rng;

/// Distinct words in the vocabulary (the kernel has 4.97 M).
const WORDS: usize = 5_000_000;

fn vocabulary() -> Vocabulary {
    const PARTS: [&str; 32] = [
        "spin", "lock", "irq", "save", "dev", "buf", "len", "get", "put", "init", "free", "alloc",
        "page", "net", "skb", "inode", "read", "write", "queue", "mutex", "count", "flags", "ops",
        "reg", "ctl", "phy", "clk", "pci", "usb", "dma", "mem", "map",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut words: Vec<String> = Vec::with_capacity(WORDS + WORDS / 4);
    while words.len() < WORDS + WORDS / 4 {
        let r = rng.next();
        let word = match r % 4 {
            0 => format!("{:x}", rng.next() >> (r % 40)),
            1 => format!("{}{}", PARTS[(r >> 8) as usize % 32], (r >> 16) % 100_000),
            _ => {
                let parts = 2 + (r >> 8) as usize % 4;
                (0..parts)
                    .map(|k| PARTS[(rng.next() >> (k * 5)) as usize % 32])
                    .collect::<Vec<_>>()
                    .join("_")
            }
        };
        words.push(word);
    }
    words.sort_unstable();
    words.dedup();
    words.truncate(WORDS);
    Vocabulary::front_coded_as_saved(&words)
}

fn queries(c: &mut Criterion) {
    let vocabulary = vocabulary();
    let mut group = c.benchmark_group("patterns");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    for q in [
        "spin_lock",
        "=spin_lock_irq",
        "/(foo|spin)_.*/",
        "/[a-z]{3}_[0-9]+/",
        "*lock*",
        // Pairs of bytes common in the words: answered from their bits.
        "*k_*",
        "*_s*",
        "/.*_irq/",
        "*a*b*c*",
    ] {
        let query = Query::parse(q).expect("a valid query");
        group.bench_function(q, |b| {
            b.iter(|| matching_words(black_box(&vocabulary), &query).len())
        });
    }
    group.bench_function("did you mean spni_lock", |b| {
        b.iter(|| similar_words(black_box(&vocabulary), b"spni_lock", 2).len())
    });
    group.finish();
}

criterion_group!(benches, queries);
criterion_main!(benches);
