//! Times the refresh's scan of a saved index (what dropping files costs).
//! `cargo run --release --example scan_bench -- INDEX_FILE [FILE_NUMBER]`
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: scan_bench INDEX_FILE [FILE_NUMBER]");
        std::process::exit(2);
    };
    let stored = match indexer::store::Stored::open(std::path::Path::new(path)) {
        Ok(Some(s)) => s,
        _ => {
            eprintln!("scan_bench: cannot open {path}");
            std::process::exit(2);
        }
    };
    let files = stored.base.records.len();
    let file: usize = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(files * 2 / 3);
    let mut marked = vec![false; files];
    marked[file.min(files - 1)] = true;
    for _ in 0..5 {
        let started = Instant::now();
        let Ok(hidden) = indexer::index::occurrences_in(&stored.base.index, &marked) else {
            eprintln!("scan_bench: {path} is damaged");
            std::process::exit(1);
        };
        println!(
            "{} words touched, {:.1} ms",
            hidden.len(),
            started.elapsed().as_secs_f64() * 1e3
        );
    }
}
