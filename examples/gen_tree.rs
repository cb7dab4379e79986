//! Writes a deterministic synthetic source tree for benchmarks.
//!
//! ```text
//! cargo run --release --example gen_tree -- OUT_DIR --files N --seed S
//! ```
//!
//! The tree looks like a code base: nested folders, `.c`, `.h`, `.rs`, `.py`
//! and `.md` files, lines of varied length built from a Zipf-like vocabulary
//! of prose words, snake_case and CamelCase identifiers, SCREAMING constants,
//! hex literals and numbers. The same seed always writes the same bytes, so
//! benchmark runs on different machines or commits index identical input.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// xorshift64*: tiny, fast and good enough to pick words; no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // Spread small seeds over the state; the state must never be zero.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0); the modulo bias is irrelevant here.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const SYLLABLES: &[&str] = &[
    "ka", "lo", "ri", "sen", "ta", "mor", "vi", "del", "an", "tre", "qu", "is", "on", "pel", "ur",
    "bra", "ne", "sto", "lin", "ex", "cor", "da", "mi", "fu", "gar", "zo", "het", "ply", "in",
    "ast",
];
const PROSE: &[&str] = &[
    "the", "of", "and", "a", "to", "in", "is", "that", "for", "it", "with", "as", "on", "be",
    "this", "by", "from", "or", "not", "when", "each", "file", "word", "index", "process",
    "worker", "batch", "merge", "river", "lock", "queue", "buffer", "page", "line", "column",
    "returns", "called", "before", "after", "must", "never", "always", "only", "every", "value",
];
const FOLDERS: &[&str] = &[
    "src", "lib", "drivers", "net", "fs", "mm", "kernel", "include", "docs", "tools", "arch",
    "crypto", "sound", "block", "test", "util",
];
const EXTENSIONS: &[&str] = &["c", "h", "rs", "py", "md", "txt", "c", "h"];
const SEPARATORS: &[&str] = &[" ", " ", " ", ", ", "(", "); ", " = ", "->", ".", " // "];

/// A made-up word of 1 to 4 syllables.
fn coin(rng: &mut Rng) -> String {
    (0..1 + rng.below(4))
        .map(|_| *rng.pick(SYLLABLES))
        .collect()
}

/// The vocabulary, most frequent first: prose, then code-like forms.
fn vocabulary(rng: &mut Rng, size: usize) -> Vec<String> {
    let mut words: Vec<String> = PROSE.iter().map(|w| w.to_string()).collect();
    while words.len() < size {
        let word = match rng.below(10) {
            0..=2 => coin(rng),
            3..=4 => format!("{}_{}", coin(rng), coin(rng)),
            5 => format!("{}_{}_{}", coin(rng), coin(rng), coin(rng)),
            6 => {
                let mut s = String::new();
                for _ in 0..2 + rng.below(2) {
                    let part = coin(rng);
                    let mut chars = part.chars();
                    let first = chars.next().unwrap().to_ascii_uppercase();
                    s.push(first);
                    s.extend(chars);
                }
                s
            }
            7 => format!("{}_{}", coin(rng), coin(rng)).to_ascii_uppercase(),
            8 => format!("0x{:0width$x}", rng.next(), width = 2 + 2 * rng.below(4)),
            _ => (rng.below(100_000)).to_string(),
        };
        words.push(word);
    }
    words
}

/// Samples ranks with probability proportional to 1 / (rank + 1)^1.1.
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(n: usize) -> Self {
        let mut total = 0.0;
        let cumulative = (0..n)
            .map(|r| {
                total += 1.0 / ((r + 1) as f64).powf(1.1);
                total
            })
            .collect();
        Zipf { cumulative }
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let total = *self.cumulative.last().unwrap();
        let x = (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
        self.cumulative
            .partition_point(|&c| c < x)
            .min(self.cumulative.len() - 1)
    }
}

fn write_file(path: &Path, rng: &mut Rng, words: &[String], zipf: &Zipf) -> io::Result<u64> {
    let mut out = BufWriter::new(fs::File::create(path)?);
    let mut bytes = 0u64;
    // Mostly small files, a few large ones, like a real tree.
    let lines = match rng.below(10) {
        0 => 400 + rng.below(1600),
        1..=3 => 100 + rng.below(300),
        _ => 5 + rng.below(100),
    };
    for _ in 0..lines {
        let mut line = String::new();
        let indent = rng.below(4);
        line.extend(std::iter::repeat_n('\t', indent));
        let n = match rng.below(10) {
            0 => 0,
            1 => 12 + rng.below(30),
            _ => 1 + rng.below(10),
        };
        for i in 0..n {
            if i > 0 {
                let separator: &&str = rng.pick(SEPARATORS);
                line.push_str(separator);
            }
            line.push_str(&words[zipf.sample(rng)]);
        }
        line.push('\n');
        bytes += line.len() as u64;
        out.write_all(line.as_bytes())?;
    }
    out.flush()?;
    Ok(bytes)
}

struct Options {
    out: PathBuf,
    files: usize,
    seed: u64,
}

fn parse_args() -> Result<Options, String> {
    let mut out = None;
    let mut files = 1000;
    let mut seed = 1;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or(format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--files" => files = value("--files")? as usize,
            "--seed" => seed = value("--seed")?,
            "-h" | "--help" => return Err(String::new()),
            _ if out.is_none() && !arg.starts_with("--") => out = Some(PathBuf::from(arg)),
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    let out = out.ok_or("missing OUT_DIR")?;
    Ok(Options { out, files, seed })
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("gen_tree: {e}");
            }
            eprintln!("usage: gen_tree OUT_DIR [--files N] [--seed S]");
            return ExitCode::from(2);
        }
    };
    let mut rng = Rng::new(options.seed);
    let words = vocabulary(&mut rng, 20_000);
    let zipf = Zipf::new(words.len());
    let mut total = 0u64;
    for i in 0..options.files {
        let mut dir = options.out.clone();
        for _ in 0..1 + rng.below(3) {
            dir.push(format!("{}{}", rng.pick(FOLDERS), rng.below(4)));
        }
        let name = format!("{}_{i}.{}", coin(&mut rng), rng.pick(EXTENSIONS));
        let written = fs::create_dir_all(&dir)
            .and_then(|()| write_file(&dir.join(&name), &mut rng, &words, &zipf));
        match written {
            Ok(bytes) => total += bytes,
            Err(e) => {
                eprintln!("gen_tree: {}: {e}", dir.join(&name).display());
                return ExitCode::FAILURE;
            }
        }
    }
    eprintln!(
        "gen_tree: wrote {} files, {:.1} MB, to {} (seed {})",
        options.files,
        total as f64 / 1e6,
        options.out.display(),
        options.seed
    );
    ExitCode::SUCCESS
}
