//! pprocess's "simple" example: a grid of slow calculations, run one after the
//! other, then spread over child processes with `pmap` and with a `Queue`.
//!
//! Each calculation sleeps (standing in for real work) and returns `i * N + j`.
//! The grid printed is the same every time; the wall time shows the speed-up.
//!
//! ```text
//! cargo run --release --example simple [LIMIT] [DELAY_MS]
//! ```
//!
//! `LIMIT` is the number of live children (default: the number of cores),
//! `DELAY_MS` the time each calculation takes (default 100).

use std::time::{Duration, Instant};

use indexer::parallel::{available_cores, pmap, Queue};

/// The grid is N x N.
const N: usize = 10;

/// The "expensive" calculation.
fn calculate(i: usize, j: usize, delay: Duration) -> usize {
    std::thread::sleep(delay);
    i * N + j
}

fn print_grid(title: &str, grid: &[Vec<usize>], took: Duration, baseline: Option<Duration>) {
    println!("{title}");
    for row in grid {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:3}")).collect();
        println!("  {}", cells.join(" "));
    }
    match baseline {
        Some(baseline) => println!(
            "  time: {:.2} s ({:.1}x faster)\n",
            took.as_secs_f64(),
            baseline.as_secs_f64() / took.as_secs_f64()
        ),
        None => println!("  time: {:.2} s\n", took.as_secs_f64()),
    }
}

fn argument(position: usize, default: u64) -> Result<u64, String> {
    match std::env::args().nth(position) {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| format!("argument {position} should be a number, not {text:?}")),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let limit = usize::try_from(argument(1, available_cores() as u64)?)?.max(1);
    let delay = Duration::from_millis(argument(2, 100)?);
    println!(
        "{N}x{N} calculations of {} ms each, at most {limit} processes at a time\n",
        delay.as_millis()
    );

    let started = Instant::now();
    let sequential: Vec<Vec<usize>> = (0..N)
        .map(|i| (0..N).map(|j| calculate(i, j, delay)).collect())
        .collect();
    let baseline = started.elapsed();
    print_grid("Sequential", &sequential, baseline, None);

    // pmap: results in the order of the inputs.
    let started = Instant::now();
    let cells = (0..N).flat_map(|i| (0..N).map(move |j| (i, j)));
    let results = pmap(move |(i, j)| calculate(i, j, delay), cells, limit);
    let mut flat = Vec::with_capacity(N * N);
    for result in results {
        flat.push(result?);
    }
    let grid: Vec<Vec<usize>> = flat.chunks(N).map(<[usize]>::to_vec).collect();
    print_grid("pmap", &grid, started.elapsed(), Some(baseline));
    assert_eq!(grid, sequential);

    // Queue: results in the order they arrive, so each carries its position.
    let started = Instant::now();
    let mut queue = Queue::with_limit(limit);
    for i in 0..N {
        for j in 0..N {
            queue.start(move || (i, j, calculate(i, j, delay)))?;
        }
    }
    let mut grid = vec![vec![0; N]; N];
    for result in queue {
        let (i, j, value) = result?;
        grid[i][j] = value;
    }
    print_grid("Queue", &grid, started.elapsed(), Some(baseline));
    assert_eq!(grid, sequential);
    Ok(())
}
