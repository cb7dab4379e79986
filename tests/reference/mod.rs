//! An independent reference for the indexer's contract (issue 3).
//!
//! Single process, no index structure beyond a `BTreeMap`, written straight
//! from the contract's wording and sharing no code with `src/`. Tests build
//! the expected answer here and compare it with what the binary prints.
//!
//! Where the issue is silent, the project decided:
//! - `--exclude GLOB` is matched against the path relative to DIRECTORY (with
//!   `/` separators) and against each path component's name, so `*.log`
//!   excludes any file named `*.log` anywhere and `target` any entry named
//!   `target`. `*` matches any run of characters except `/`, `?` one
//!   character except `/`, `**` any run including `/`, and `**/` zero or
//!   more whole folders (so `**/x` also matches a top-level `x`, as in
//!   `.gitignore`). A leading `/` or `./` and a trailing `/` are dropped.
//!   An excluded folder is not descended into.
//! - Regex queries are compiled from the query as typed, case-insensitively;
//!   lowercasing a regex would change its meaning (`\W` is not `\w`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde_json::{json, Value};
use walkdir::WalkDir;

/// Folders holding a version-control system's own data; never indexed.
const VCS_FOLDERS: [&str; 3] = [".git", ".hg", ".svn"];
/// A file whose first `BINARY_PROBE` bytes contain NUL is binary.
const BINARY_PROBE: usize = 8192;
/// Runs longer than this many bytes, as they stand in the file, are dropped.
const MAX_WORD_BYTES: usize = 64;

/// One occurrence of a word, as the binary reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    /// Relative to DIRECTORY, `/` separators, invalid UTF-8 shown as U+FFFD.
    pub path: String,
    pub line: u64,
    pub column: u64,
}

/// A file the contract says must be indexed.
#[derive(Debug, Clone)]
pub struct TextFile {
    /// The relative path as the binary must print it.
    pub relative: String,
    /// Where to read it.
    pub path: PathBuf,
}

/// A word index: lowercased word to every location, sorted.
pub type Index = BTreeMap<String, Vec<Location>>;

/// Every file below `root` that the contract says is indexed, sorted by
/// relative path.
pub fn files(root: &Path, excludes: &[String]) -> Vec<TextFile> {
    let excludes: Vec<Glob> = excludes.iter().map(|g| Glob::new(g)).collect();
    let walk = WalkDir::new(root)
        .follow_links(false)
        .min_depth(1)
        .into_iter()
        .filter_entry(|entry| {
            let name = entry.file_name().to_string_lossy();
            if entry.file_type().is_dir() && VCS_FOLDERS.contains(&name.as_ref()) {
                return false;
            }
            let relative = relative_path(root, entry.path());
            !excludes
                .iter()
                .any(|glob| glob.is_match(&relative) || glob.is_match(&name))
        });
    let mut out = Vec::new();
    for entry in walk {
        let Ok(entry) = entry else { continue };
        // `file_type` comes from lstat: symbolic links are not regular files,
        // and neither are FIFOs, sockets or devices.
        if !entry.file_type().is_file() {
            continue;
        }
        if is_binary(entry.path()) != Some(false) {
            continue;
        }
        out.push(TextFile {
            relative: relative_path(root, entry.path()),
            path: entry.path().to_path_buf(),
        });
    }
    out.sort_by(|a, b| a.relative.cmp(&b.relative));
    out
}

/// `Some(true)` if binary, `Some(false)` if text, `None` if unreadable.
fn is_binary(path: &Path) -> Option<bool> {
    let mut probe = Vec::with_capacity(BINARY_PROBE);
    File::open(path)
        .ok()?
        .take(BINARY_PROBE as u64)
        .read_to_end(&mut probe)
        .ok()?;
    Some(probe.contains(&0))
}

fn relative_path(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).expect("walkdir stays below root");
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// One piece of an exclude glob.
#[derive(Debug, Clone)]
enum GlobToken {
    Literal(char),
    /// `*`: any run of characters other than `/`.
    Star,
    /// `**`: any run of characters.
    StarStar,
    /// `**/`: nothing, or any run ending with `/` (zero or more folders).
    Folders,
    /// `?`: one character other than `/`.
    One,
    /// `[...]`: one character other than `/` in (or, negated, not in) the
    /// ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// An exclude glob, matched by backtracking (no regex, so it shares no
/// translation with the binary): `**` any run, `*` any run without `/`, `?`
/// one character other than `/`, `[abc]`/`[a-z]` one of those characters
/// and `[!...]` (or `[^...]`) none of them (never `/`), everything else
/// literal. Panics on an unclosed `[` (the binary refuses such a glob).
#[derive(Debug, Clone)]
pub struct Glob(Vec<GlobToken>);

impl Glob {
    pub fn new(glob: &str) -> Glob {
        let glob = glob
            .strip_prefix("./")
            .or_else(|| glob.strip_prefix('/'))
            .unwrap_or(glob);
        let glob = glob.strip_suffix('/').unwrap_or(glob);
        let chars: Vec<char> = glob.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '*' if chars.get(i + 1) == Some(&'*') && chars.get(i + 2) == Some(&'/') => {
                    tokens.push(GlobToken::Folders);
                    i += 2;
                }
                '*' if chars.get(i + 1) == Some(&'*') => {
                    tokens.push(GlobToken::StarStar);
                    i += 1;
                }
                '*' => tokens.push(GlobToken::Star),
                '?' => tokens.push(GlobToken::One),
                '[' => {
                    let mut j = i + 1;
                    let negated = matches!(chars.get(j), Some('!') | Some('^'));
                    if negated {
                        j += 1;
                    }
                    let close = (j + 1..chars.len())
                        .find(|&k| chars[k] == ']')
                        .expect("an unclosed [ in a glob");
                    let members = &chars[j..close];
                    let mut ranges = Vec::new();
                    let mut k = 0;
                    while k < members.len() {
                        if k + 2 < members.len() && members[k + 1] == '-' {
                            ranges.push((members[k], members[k + 2]));
                            k += 3;
                        } else {
                            ranges.push((members[k], members[k]));
                            k += 1;
                        }
                    }
                    tokens.push(GlobToken::Class { negated, ranges });
                    i = close;
                }
                c => tokens.push(GlobToken::Literal(c)),
            }
            i += 1;
        }
        Glob(tokens)
    }

    pub fn is_match(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        matches_from(&self.0, &text)
    }
}

fn matches_from(tokens: &[GlobToken], text: &[char]) -> bool {
    let Some((token, rest)) = tokens.split_first() else {
        return text.is_empty();
    };
    match token {
        GlobToken::Literal(c) => text.first() == Some(c) && matches_from(rest, &text[1..]),
        GlobToken::One => text.first().is_some_and(|&c| c != '/') && matches_from(rest, &text[1..]),
        GlobToken::Class { negated, ranges } => {
            text.first().is_some_and(|&c| {
                c != '/' && ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }) && matches_from(rest, &text[1..])
        }
        GlobToken::Star => (0..=text.len())
            .take_while(|&n| n == 0 || text[n - 1] != '/')
            .any(|n| matches_from(rest, &text[n..])),
        GlobToken::StarStar => (0..=text.len()).any(|n| matches_from(rest, &text[n..])),
        GlobToken::Folders => (0..=text.len())
            .filter(|&n| n == 0 || text[n - 1] == '/')
            .any(|n| matches_from(rest, &text[n..])),
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every word occurrence in a file's bytes: (lowercased word, line, column).
pub fn occurrences(bytes: &[u8]) -> Vec<(String, u64, u64)> {
    struct Scan {
        out: Vec<(String, u64, u64)>,
        line: u64,
        line_start: usize,
        /// The word being read: its first byte's offset and its text.
        word: Option<(usize, String)>,
    }
    impl Scan {
        fn end_word(&mut self) {
            if let Some((start, raw)) = self.word.take() {
                if raw.len() <= MAX_WORD_BYTES {
                    let column = (start - self.line_start + 1) as u64;
                    self.out.push((raw.to_lowercase(), self.line, column));
                }
            }
        }
    }
    let mut scan = Scan {
        out: Vec::new(),
        line: 1,
        line_start: 0,
        word: None,
    };
    let mut offset = 0;
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if is_word_char(c) {
                scan.word
                    .get_or_insert_with(|| (offset, String::new()))
                    .1
                    .push(c);
            } else {
                scan.end_word();
                if c == '\n' {
                    scan.line += 1;
                    scan.line_start = offset + 1;
                }
            }
            offset += c.len_utf8();
        }
        // Invalid bytes separate words; none of them is `\n`.
        if !chunk.invalid().is_empty() {
            scan.end_word();
            offset += chunk.invalid().len();
        }
    }
    scan.end_word();
    scan.out
}

/// The index of every file `files` returns.
pub fn build_index(root: &Path, excludes: &[String]) -> Index {
    index_of(&files(root, excludes))
}

/// The index of the given files only.
pub fn index_of(files: &[TextFile]) -> Index {
    let mut index = Index::new();
    for file in files {
        let Ok(bytes) = std::fs::read(&file.path) else {
            continue;
        };
        for (word, line, column) in occurrences(&bytes) {
            index.entry(word).or_default().push(Location {
                path: file.relative.clone(),
                line,
                column,
            });
        }
    }
    for locations in index.values_mut() {
        locations.sort();
    }
    index
}

/// The words matching a fragment query, ascending, each with its sorted
/// locations. `Err` for an invalid regex.
pub fn query(index: &Index, q: &str) -> Result<Vec<(String, Vec<Location>)>, String> {
    // Case-insensitive: lowercase the query as words are lowercased, and
    // treat the two lowercase sigmas alike (`to_lowercase` turns a final Σ
    // into ς, so "ΟΔΥΣ" lowercases to "οδυς" yet must find "οδυσσέας").
    let fold = |s: &str| s.replace('ς', "σ");
    let lowered = fold(&q.to_lowercase());
    let matches: Box<dyn Fn(&str) -> bool> = if let Some(exact) = lowered.strip_prefix('=') {
        let exact = exact.to_string();
        Box::new(move |w| fold(w) == exact)
    } else if q.len() >= 2 && q.starts_with('/') && q.ends_with('/') {
        let re =
            Regex::new(&format!("(?i)^(?:{})$", &q[1..q.len() - 1])).map_err(|e| e.to_string())?;
        Box::new(move |w| re.is_match(w))
    } else if lowered.contains('*') {
        let parts: Vec<String> = lowered.split('*').map(regex::escape).collect();
        let re = Regex::new(&format!("(?s)^{}$", parts.join(".*"))).expect("escaped glob");
        Box::new(move |w| re.is_match(&fold(w)))
    } else {
        Box::new(move |w| fold(w).starts_with(&lowered))
    };
    Ok(index
        .iter()
        .filter(|(word, _)| matches(word))
        .map(|(word, locations)| (word.clone(), locations.clone()))
        .collect())
}

/// The answer to `q`, most frequent word first, ties in byte order (the
/// order `-c` prints).
pub fn ranked_by_count(index: &Index, q: &str) -> Vec<(String, Vec<Location>)> {
    let mut words = query(index, q).unwrap();
    words.sort_by(|(wa, la), (wb, lb)| lb.len().cmp(&la.len()).then(wa.cmp(wb)));
    words
}

/// The lines `-c --query q` must print: each matching word and its count.
pub fn expected_counts(index: &Index, q: &str) -> Vec<String> {
    ranked_by_count(index, q)
        .iter()
        .map(|(w, l)| format!("{w}:{}", l.len()))
        .collect()
}

/// The exact JSON Lines objects `--json` must print for `queries`, in order.
pub fn expected_json(index: &Index, queries: &[&str]) -> Vec<Value> {
    let mut out = Vec::new();
    for q in queries {
        for (word, locations) in query(index, q).expect("test queries are valid") {
            out.push(json!({
                "query": q,
                "word": word,
                "count": locations.len(),
                "locations": locations
                    .iter()
                    .map(|l| json!({"path": l.path, "line": l.line, "column": l.column}))
                    .collect::<Vec<_>>(),
            }));
        }
    }
    out
}

/// Compares object by object so a failure names the first differing word.
pub fn assert_same_answers(got: &[serde_json::Value], want: &[serde_json::Value], context: &str) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "{context}: object {i} differs (got, then want)");
    }
    assert_eq!(
        got.len(),
        want.len(),
        "{context}: {} objects printed, {} expected; first extra: {:?}",
        got.len(),
        want.len(),
        got.get(want.len()).or(want.get(got.len()))
    );
}

/// Parse the binary's JSON Lines output; panics with the bad line.
pub fn parse_json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect()
}

/// How the human view is asked for (see [`expected_human`]).
#[derive(Debug, Clone, Copy)]
pub struct Human<'a> {
    /// Locations under a heading per file (else `path:line:column:text`).
    pub heading: bool,
    /// Locations numbered (the prompt).
    pub numbered: bool,
    /// The tree lines are read from; `None`: locations without text.
    pub tree: Option<&'a Path>,
}

impl Human<'_> {
    /// As `--query` prints to a pipe with `--heading`, from the tree.
    pub fn headed(tree: &Path) -> Human<'_> {
        Human {
            heading: true,
            numbered: false,
            tree: Some(tree),
        }
    }
}

/// Line `line` (1-based) of the file at `path`: split on `\n`, a final
/// `\r` dropped, as text (invalid UTF-8 as U+FFFD).
pub fn line_of(path: &Path, line: u64) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let text = bytes
        .split(|&b| b == b'\n')
        .nth(usize::try_from(line).ok()? - 1)?;
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    Some(String::from_utf8_lossy(text).into_owned())
}

/// One location as the human view prints it, with `number` when numbered.
pub fn location_line(l: &Location, how: Human<'_>, number: Option<usize>) -> String {
    let number = number.map_or(String::new(), |n| format!("{n:>4}  "));
    let text = how
        .tree
        .and_then(|tree| line_of(&tree.join(&l.path), l.line))
        .map_or(String::new(), |t| format!(":{t}"));
    match how.heading {
        true => format!("{number}{}:{}{text}", l.line, l.column),
        false => format!("{number}{}:{}:{}{text}", l.path, l.line, l.column),
    }
}

/// The human view of one query's answer, line by line: words most frequent
/// first (ties by word), each `WORD (COUNT)` then its locations under a
/// heading per file, bounded to 10 locations and 20 words unless `all`.
/// Without headings, location lines alone.
pub fn expected_human(index: &Index, q: &str, all: bool, how: Human<'_>) -> Vec<String> {
    const MAX_WORDS: usize = 20;
    const MAX_LOCATIONS: usize = 10;
    let mut words = query(index, q).expect("test queries are valid");
    if words.is_empty() {
        return vec![format!("no words match \"{q}\"")];
    }
    words.sort_by(|(wa, la), (wb, lb)| lb.len().cmp(&la.len()).then(wa.cmp(wb)));
    let mut lines = Vec::new();
    let shown = if all {
        words.len()
    } else {
        words.len().min(MAX_WORDS)
    };
    let mut number = 0;
    for (word, locations) in &words[..shown] {
        if how.heading {
            lines.push(format!("{word} ({})", locations.len()));
        }
        let shown_locations = if all {
            locations.len()
        } else {
            locations.len().min(MAX_LOCATIONS)
        };
        let mut last_path: Option<&str> = None;
        for l in &locations[..shown_locations] {
            if how.heading && last_path != Some(l.path.as_str()) {
                lines.push(l.path.clone());
                last_path = Some(&l.path);
            }
            number += 1;
            lines.push(location_line(l, how, how.numbered.then_some(number)));
        }
        if shown_locations < locations.len() && how.heading {
            lines.push(format!(
                "  ... and {} more locations ({} shows them)",
                locations.len() - shown_locations,
                if how.numbered { ":more" } else { "--all" }
            ));
        }
    }
    if shown < words.len() && how.heading {
        lines.push(format!(
            "... and {} more words (--all or :all shows every one)",
            words.len() - shown
        ));
    }
    lines
}

/// Queries that cross any cut: every one-letter prefix, and for sampled
/// words an exact match, a prefix, an infix glob and a regex.
pub fn queries_over(index: &Index) -> Vec<String> {
    let mut queries: Vec<String> = ('a'..='z').map(String::from).collect();
    queries.extend(["*", "*e*", "/.*s/", "/[a-m].*/", "zzqqxx_nothing"].map(String::from));
    queries.extend(sampled_queries(index, 12, 2));
    queries
}

/// For about `samples` words spread over the vocabulary: the word exactly,
/// its first `letters` characters as a prefix, the `letters` after its
/// first inside a glob, and a regex on its head.
pub fn sampled_queries(index: &Index, samples: usize, letters: usize) -> Vec<String> {
    let words: Vec<&String> = index.keys().collect();
    let mut queries = Vec::new();
    for word in words.iter().step_by((words.len() / samples.max(1)).max(1)) {
        let head: String = word.chars().take(letters).collect();
        let middle: String = word.chars().skip(1).take(letters).collect();
        queries.push(format!("={word}"));
        queries.push(head.clone());
        queries.push(format!("*{middle}*"));
        queries.push(format!("/{}.*/", regex::escape(&head)));
    }
    queries
}

/// Words for random trees: short ones that share prefixes, longer ones,
/// identifiers with digits, and one non-ASCII word.
pub fn word_strategy() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        "[a-c]{1,3}",
        "[a-z]{2,8}",
        "[a-z_]{1,5}[0-9]{0,2}",
        Just("é".to_string()),
    ]
}

/// Writes file `i` of `files` at `root/d{i % folders}/f{i}.txt`, its words
/// `per_line` to a line.
pub fn write_word_tree(root: &Path, files: &[Vec<String>], per_line: usize, folders: usize) {
    for (i, words) in files.iter().enumerate() {
        let lines: Vec<String> = words.chunks(per_line).map(|c| c.join(" ")).collect();
        let path = root.join(format!("d{}/f{i}.txt", i % folders));
        std::fs::create_dir_all(path.parent().expect("folder")).expect("mkdir");
        std::fs::write(path, lines.join("\n")).expect("write");
    }
}
