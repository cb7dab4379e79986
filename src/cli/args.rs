//! Command-line arguments.

use std::path::PathBuf;

use clap::Parser;

use super::style::ColorWhen;

/// Index every word of a tree of text files with forked worker processes,
/// then search it by fragment.
///
/// Queries: `frag` lists words beginning with frag; a `*` makes a glob over
/// the whole word (`*lock*`, `*_t`); `/re/` a regex matching the whole word;
/// `=word` that exact word. All are case-insensitive.
#[derive(Debug, Parser)]
#[command(name = "indexer", version, about, long_about = None)]
pub struct Args {
    /// The directory to index (optional with --index: the saved index is
    /// then opened as it is, without looking at the tree).
    #[arg(required_unless_present_any = ["index", "type_list", "completions", "man"])]
    pub directory: Option<PathBuf>,

    /// Keep the index in FILE: build and save it if FILE does not exist,
    /// else refresh it (re-index only files added, removed or changed since)
    /// and save. Without DIRECTORY, open FILE read-only.
    #[arg(long, value_name = "FILE")]
    pub index: Option<PathBuf>,

    /// Build afresh and save the index to FILE, replacing any index there
    /// (anything else at FILE is refused).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "index",
        requires = "directory"
    )]
    pub save: Option<PathBuf>,

    /// Answer this query and exit instead of opening the prompt (repeatable;
    /// answered in order).
    #[arg(short = 'q', long = "query", value_name = "QUERY")]
    pub queries: Vec<String>,

    /// Print answers as JSON Lines, one object per matching word.
    #[arg(long, requires = "queries")]
    pub json: bool,

    /// Build, print the summary and exit.
    #[arg(long)]
    pub noprompt: bool,

    /// Live worker processes [default: the number of usable cores].
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub workers: Option<u32>,

    /// Files per batch handed to a worker [default: sized by bytes].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: Option<u32>,

    /// Memory the build may use, all processes together (e.g. 512M, 4G):
    /// past it, the index is built on disk, beside --index/--save FILE or
    /// in $TMPDIR, and answered from there.
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = parse_memory)]
    pub memory: u64,

    /// Extra seconds each worker sleeps per batch, to simulate heavy work.
    #[arg(long, value_name = "SECS", value_parser = parse_delay)]
    pub delay: Option<f64>,

    /// Skip files and folders matching this glob (repeatable). Without a `/`
    /// it matches a name at any depth (`*.log`, `target`); with one, the path
    /// from the directory (`docs/*.md`); `**` spans folders; `[a-z]` and
    /// `[!0-9]` are character classes.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,

    /// Index files that `.ignore`, `.gitignore` (inside a git repository)
    /// and `.git/info/exclude` leave out, which are skipped by default as
    /// rg skips them. A refresh follows the command line: give it again.
    #[arg(long)]
    pub no_ignore: bool,

    /// List every skipped or failed file with the reason.
    #[arg(short, long)]
    pub verbose: bool,

    /// Print per-phase build times and each query's time on stderr.
    #[arg(long)]
    pub stats: bool,

    /// Show every matching word and location in the human view.
    #[arg(long)]
    pub all: bool,

    /// Group locations under a heading per file [default: when stdout is a
    /// terminal].
    #[arg(long, overrides_with = "no_heading")]
    pub heading: bool,

    /// One `path:line:column:text` line per location, for editors and
    /// scripts [default: when stdout is not a terminal].
    #[arg(long, overrides_with = "heading")]
    pub no_heading: bool,

    /// When to colour answers (NO_COLOR is honoured under auto).
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = ColorWhen::Auto)]
    pub color: ColorWhen,

    /// Change a colour, as rg does: TYPE:ATTRIBUTE:VALUE with TYPE one of
    /// path, line, column, match; ATTRIBUTE fg, bg or style (bold,
    /// underline, intense, and no... to undo); or TYPE:none (repeatable).
    #[arg(long, value_name = "SPEC")]
    pub colors: Vec<String>,

    /// Show absolute paths (by default they are shown from the current
    /// folder when the tree is below or beside it).
    #[arg(long)]
    pub absolute: bool,

    /// With --json: each location gains a "text" key, its line read from
    /// the tree now (null when the tree is not there).
    #[arg(long, requires = "json")]
    pub text: bool,

    /// Print each matching word and its count only, most frequent first.
    #[arg(short = 'c', long, conflicts_with_all = ["files_with_matches", "all"])]
    pub count: bool,

    /// Print only the paths of files holding a match, one per line.
    #[arg(short = 'l', long, conflicts_with_all = ["json", "all"])]
    pub files_with_matches: bool,

    /// Show only locations in files this glob admits (repeatable; rg's
    /// syntax: `*.c`, `drivers/**`, `!*_test.go` to leave files out; a
    /// glob without `/` matches the name at any depth).
    #[arg(short = 'g', long = "glob", value_name = "GLOB")]
    pub globs: Vec<String>,

    /// Show only locations in files of this type (repeatable: c, rust, py,
    /// md, ...; --type-list names them all).
    #[arg(short = 't', long = "type", value_name = "TYPE")]
    pub types: Vec<String>,

    /// Leave out locations in files of this type (repeatable).
    #[arg(short = 'T', long = "type-not", value_name = "TYPE")]
    pub types_not: Vec<String>,

    /// List the file types -t knows, with their globs, and exit.
    #[arg(long)]
    pub type_list: bool,

    /// Keep only locations spelled with the query's case (read from each
    /// line in the tree), listed under their spelling.
    #[arg(short = 's', long)]
    pub case_sensitive: bool,

    /// Do not print the note about an opened index.
    #[arg(long)]
    pub quiet: bool,

    /// Print a completion script for this shell and exit (bash, zsh, fish,
    /// elvish, powershell).
    #[arg(long, value_name = "SHELL", exclusive = true)]
    pub completions: Option<clap_complete::Shell>,

    /// Print the man page (roff) and exit: `indexer --man > indexer.1`.
    #[arg(long, exclusive = true)]
    pub man: bool,
}

fn parse_memory(text: &str) -> Result<u64, String> {
    let bytes = indexer::index::parse_size(text)
        .ok_or_else(|| format!("{text:?} is not a size (say 512M or 4G)"))?;
    if text.trim().ends_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("{text:?} needs a unit (say {text}M or {text}G)"));
    }
    // Tiny budgets are allowed: everything then goes through the disk,
    // which is how tests reach that path on small trees.
    if bytes < 1 << 10 {
        return Err(format!("{text} is too small (at least 1K)"));
    }
    Ok(bytes)
}

fn parse_delay(text: &str) -> Result<f64, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !secs.is_finite() || !(0.0..=3600.0).contains(&secs) {
        return Err(format!("{text} is out of range (0 to 3600 seconds)"));
    }
    Ok(secs)
}
