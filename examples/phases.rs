//! Times each in-process phase of a build on a directory, single-threaded,
//! with every file already in memory: the bytes-per-second floor, the
//! tokenizer alone, the partial map, the run, and the merge.
//!
//! `cargo run --release --example phases -- DIR [BATCH_MB]`

use std::time::Instant;

use indexer::index::for_each_word;
use indexer::index::merge_runs;
use indexer::index::PartialIndex;
use indexer::index::{walk, Excludes};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: phases DIR [BATCH_MB]");
        std::process::exit(2);
    };
    let batch_mb: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(48);
    let listing = match walk(dir.as_ref(), &Excludes::default()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("phases: {e}");
            std::process::exit(2);
        }
    };
    let files: Vec<Vec<u8>> = listing
        .files
        .iter()
        .filter_map(|f| std::fs::read(&f.path).ok())
        .filter(|b| memchr::memchr(0, &b[..b.len().min(8192)]).is_none())
        .collect();
    let total: usize = files.iter().map(Vec::len).sum();
    let mb = total as f64 / 1e6;
    println!("{} files, {:.1} MB in memory", files.len(), mb);

    let t = Instant::now();
    let mut newlines = 0usize;
    for f in &files {
        newlines += memchr::memchr_iter(b'\n', f).count();
    }
    report("count newlines (floor)", t, mb, newlines);

    let t = Instant::now();
    let mut words = 0usize;
    for f in &files {
        for_each_word(f, |_, _| words += 1);
    }
    report("tokenize", t, mb, words);

    let t = Instant::now();
    let mut runs = Vec::new();
    let mut partial = PartialIndex::new();
    let mut batch_bytes = 0u64;
    let mut build_time = 0.0;
    let mut run_time = 0.0;
    let mut phase = Instant::now();
    for (id, f) in files.iter().enumerate() {
        for_each_word(f, |w, p| {
            if partial.add(w, id as u32, p.line, p.column) {
                runs.push(partial.take_run());
            }
        });
        batch_bytes += f.len() as u64;
        if batch_bytes >= batch_mb << 20 || id + 1 == files.len() {
            build_time += phase.elapsed().as_secs_f64();
            phase = Instant::now();
            runs.push(partial.take_run());
            run_time += phase.elapsed().as_secs_f64();
            phase = Instant::now();
            batch_bytes = 0;
        }
    }
    report("tokenize + partial map + runs", t, mb, runs.len());
    println!("  of which map {build_time:.3} s, runs {run_time:.3} s");
    let run_bytes: usize = runs.iter().map(|r| r.bytes.len() + r.postings.len()).sum();
    println!("  run bytes {:.1} MB", run_bytes as f64 / 1e6);

    let t = Instant::now();
    let names = (0..files.len()).map(|i| i.to_string()).collect();
    let index = merge_runs(names, runs).expect("runs are well formed");
    report("merge", t, mb, index.vocabulary().len());
    println!(
        "  index heap {:.1} MB, of which posting lists {:.1} MB ({:.2} bytes per occurrence), vocabulary {:.1} MB",
        index.heap_bytes() as f64 / 1e6,
        index.posting_bytes() as f64 / 1e6,
        index.posting_bytes() as f64 / index.occurrences().map_or(1, |n| n.max(1)) as f64,
        index.vocabulary().heap_bytes() as f64 / 1e6
    );
}

fn report(what: &str, started: Instant, mb: f64, n: usize) {
    let secs = started.elapsed().as_secs_f64();
    println!("{what:32} {secs:8.3} s {:9.1} MB/s  ({n})", mb / secs);
}
