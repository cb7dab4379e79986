//! Saving and reopening the index (issue 5): `--save FILE`, `--index FILE`
//! with and without DIRECTORY, refreshes after edits, broken index files,
//! and saves killed part way.
//!
//! Every answer is compared with the independent reference in
//! `tests/reference` (and with a fresh build of the same tree), never with
//! hard-coded output.
//!
//! The feature as the tests read it:
//! - `indexer DIR --index FILE`: build and save FILE if it does not exist;
//!   if it does and was built from DIR, refresh it (re-index only files
//!   added, removed or changed in size or mtime), then answer. From another
//!   directory: exit 2.
//! - `indexer --index FILE` (no DIR): open read-only, never touch the tree,
//!   say on stderr that the tree was "not checked".
//! - `indexer DIR --save FILE`: always a fresh build written to FILE.
//! - FILE may have a side file `FILE.delta`; both together are the index.
//!   Temporary files are `FILE.tmp.<pid>` (or another name beginning with
//!   FILE's) in FILE's folder, renamed into place.
//! - Header: bytes 0..8 a magic, 8..12 the format version (u32 LE, 3).
//! - A broken index: exit 2, one `indexer: ` line, no panic, no hang.
//!
//! `STORE_KILLS=N` sets the number of SIGKILLs per kill scenario (default
//! 16); `PROPTEST_CASES=N` the number of random refresh cases (default 16).

mod reference;
mod support;

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use assert_cmd::Command;
use proptest::prelude::*;
use reference::{assert_same_answers, expected_json, parse_json_lines, Index};
use serde_json::Value;
use support::{corpus, indexer, stderr_of, stdout_lines};

/// Ordinary runs.
const TIMEOUT: Duration = Duration::from_secs(60);
/// Runs on broken index files: they must end quickly, a hang is a failure.
const BROKEN_TIMEOUT: Duration = Duration::from_secs(20);

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("indexer")
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------
// Small tools: a seeded RNG, distinct modification times, file writing.

/// xorshift64*: fixed seeds give the same trees, byte flips and kill times
/// on every run.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`, `n > 0`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Uniform in `[lo, hi]`.
    fn duration(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_micros() as usize;
        lo + Duration::from_micros(self.below(span + 1) as u64)
    }
}

/// Hands out modification times that are all distinct, each later than the
/// one before and all in the past: two writes within one clock tick can keep
/// the same mtime, so every test edit sets one explicitly. Past times keep
/// clear of any "modified during the build" guard an implementation may
/// have, which would only make it re-index more.
struct Clock(SystemTime);

impl Clock {
    fn new() -> Self {
        Clock(SystemTime::now() - Duration::from_secs(3 * 86_400))
    }

    fn next(&mut self) -> SystemTime {
        self.0 += Duration::from_secs(1);
        self.0
    }
}

fn set_mtime(path: &Path, time: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(time))
        .unwrap_or_else(|e| panic!("set mtime of {path:?}: {e}"));
}

/// Writes `bytes` at `root/rel`, creating folders, and gives it a new mtime.
fn write_file(root: &Path, rel: &Path, bytes: &[u8], clock: &mut Clock) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, bytes).unwrap();
    set_mtime(&path, clock.next());
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let target = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            fs::create_dir_all(&target).unwrap();
        } else if entry.file_type().is_file() {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// `FILE.delta`, the side file a refresh may write next to FILE.
fn delta_of(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap().to_os_string();
    name.push(".delta");
    file.with_file_name(name)
}

/// Names in FILE's folder that begin with FILE's name, other than FILE and
/// FILE.delta: temporary files of a save (`FILE.tmp.<pid>` and the like).
fn temporaries(file: &Path) -> BTreeSet<OsString> {
    let name = file.file_name().unwrap().as_bytes();
    let delta = delta_of(file);
    let delta = delta.file_name().unwrap();
    let Ok(entries) = fs::read_dir(file.parent().unwrap()) else {
        return BTreeSet::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| n.as_bytes().starts_with(name) && n.as_bytes() != name && n != delta)
        .collect()
}

/// FILE and FILE.delta as they are now (bytes and mtime), to put back later.
#[derive(Clone)]
struct Snapshot(Vec<(PathBuf, Vec<u8>, SystemTime)>);

fn snapshot(file: &Path) -> Snapshot {
    let mut parts = Vec::new();
    for path in [file.to_path_buf(), delta_of(file)] {
        if let Ok(bytes) = fs::read(&path) {
            let mtime = fs::metadata(&path).unwrap().modified().unwrap();
            parts.push((path, bytes, mtime));
        }
    }
    Snapshot(parts)
}

fn restore(file: &Path, snap: &Snapshot) {
    let _ = fs::remove_file(delta_of(file));
    for (path, bytes, mtime) in &snap.0 {
        fs::write(path, bytes).unwrap();
        set_mtime(path, *mtime);
    }
}

// ---------------------------------------------------------------------------
// Running the binary.

fn json_args<S: AsRef<str>>(queries: &[S]) -> Vec<String> {
    let mut args = vec!["--json".to_string()];
    for q in queries {
        args.push("--query".into());
        args.push(q.as_ref().to_string());
    }
    args
}

fn answers_of(out: &Output, what: &str) -> Vec<Value> {
    let answers = parse_json_lines(&out.stdout);
    // Exit 0 when some query matched, 1 when none did (as grep and rg).
    let want = if answers.is_empty() { 1 } else { 0 };
    assert_eq!(
        out.status.code(),
        Some(want),
        "{what}: {:?}\nstderr:\n{}",
        out.status,
        stderr_of(out)
    );
    answers
}

/// `indexer DIR --json --query ...`: an in-memory build, no index file.
fn ask_memory<S: AsRef<str>>(dir: &Path, queries: &[S]) -> Vec<Value> {
    let out = indexer()
        .arg(dir)
        .args(json_args(queries))
        .output()
        .unwrap();
    answers_of(&out, &format!("indexer {dir:?} (in memory)"))
}

/// `indexer --index FILE --json --query ...`: open read-only; (answers, stderr).
fn ask_file<S: AsRef<str>>(file: &Path, queries: &[S]) -> (Vec<Value>, String) {
    let out = indexer()
        .arg("--index")
        .arg(file)
        .args(json_args(queries))
        .output()
        .unwrap();
    (
        answers_of(&out, &format!("indexer --index {file:?}")),
        stderr_of(&out),
    )
}

/// `indexer DIR --index FILE [extra] --json --query ...`: build or refresh
/// FILE, then answer; (answers, stderr).
fn ask_refreshed<S: AsRef<str>>(
    dir: &Path,
    file: &Path,
    queries: &[S],
    extra: &[&str],
) -> (Vec<Value>, String) {
    let out = indexer()
        .arg(dir)
        .arg("--index")
        .arg(file)
        .args(extra)
        .args(json_args(queries))
        .output()
        .unwrap();
    (
        answers_of(&out, &format!("indexer {dir:?} --index {file:?} {extra:?}")),
        stderr_of(&out),
    )
}

/// `indexer DIR --save FILE --noprompt`; returns stderr.
fn save(dir: &Path, file: &Path) -> String {
    save_with(dir, file, "", &[])
}

/// [`save`] with `INDEXER_TEST_LIMITS` set to `limits` (if not empty) and
/// `extra` arguments.
fn save_with(dir: &Path, file: &Path, limits: &str, extra: &[&str]) -> String {
    let mut cmd = indexer();
    if !limits.is_empty() {
        cmd.env("INDEXER_TEST_LIMITS", limits);
    }
    let out = cmd
        .arg(dir)
        .arg("--save")
        .arg(file)
        .args(extra)
        .arg("--noprompt")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "indexer {dir:?} --save {file:?} {extra:?} ({limits}): {:?}\nstderr:\n{}",
        out.status,
        stderr_of(&out)
    );
    stderr_of(&out)
}

/// `indexer DIR --index FILE [extra] --noprompt`; returns stderr.
fn refresh(dir: &Path, file: &Path, extra: &[&str]) -> String {
    let out = indexer()
        .arg(dir)
        .arg("--index")
        .arg(file)
        .args(extra)
        .arg("--noprompt")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "indexer {dir:?} --index {file:?} {extra:?}: {:?}\nstderr:\n{}",
        out.status,
        stderr_of(&out)
    );
    stderr_of(&out)
}

/// The reference's `--json` answers for the tree at `root`.
fn expected<S: AsRef<str>>(root: &Path, queries: &[S]) -> Vec<Value> {
    let index = reference::build_index(root, &[]);
    let queries: Vec<&str> = queries.iter().map(|q| q.as_ref()).collect();
    expected_json(&index, &queries)
}

/// Why `out` is not a proper refusal (exit code 2, exactly one line on
/// stderr starting `indexer: `, no panic), or `None` if it is.
fn refusal_problem(out: &Output) -> Option<String> {
    let stderr = stderr_of(out);
    let short: String = stderr.chars().take(400).collect();
    if stderr.contains("panicked") {
        return Some(format!("panicked: {short:?}"));
    }
    if out.status.signal() == Some(libc::SIGKILL) {
        return Some(format!(
            "killed, most likely by the {BROKEN_TIMEOUT:?} timeout (a hang): {short:?}"
        ));
    }
    if out.status.code() != Some(2) {
        return Some(format!("{:?}, stderr {short:?}", out.status));
    }
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() != 1 || !lines[0].starts_with("indexer: ") {
        return Some(format!(
            "exit 2 but not one `indexer: ` line on stderr: {short:?}"
        ));
    }
    None
}

fn assert_refused(out: &Output, what: &str) {
    if let Some(problem) = refusal_problem(out) {
        panic!("{what}: {problem}");
    }
}

/// Fails listing every case that was not refused (at most 40 shown).
fn assert_none_accepted(problems: &[String], tried: usize, what: &str) {
    assert!(
        problems.is_empty(),
        "{what}: {} of {tried} not refused:\n{}",
        problems.len(),
        problems
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The number given next to `key` on stderr (`reused 75 files`,
/// `re-indexed 3`, or `75 reused`).
fn count_of(stderr: &str, key: &str) -> Option<u64> {
    let key = regex::escape(key);
    let re = regex::Regex::new(&format!(
        r"(?i)(?:^|[^\w-])(?:{key}\s*(?:files?\s*)?[:=]?\s*(\d+)|(\d+)\s+(?:files?\s+)?{key}\b)"
    ))
    .unwrap();
    let caps = re.captures(stderr)?;
    caps.get(1).or(caps.get(2))?.as_str().parse().ok()
}

/// (reused, re-indexed) from a refresh's summary; panics if either is missing.
fn refresh_counts(stderr: &str, what: &str) -> (u64, u64) {
    let reused = count_of(stderr, "reused");
    let reindexed = count_of(stderr, "re-indexed");
    match (reused, reindexed) {
        (Some(r), Some(i)) => (r, i),
        _ => panic!("{what}: no \"reused N\" and \"re-indexed N\" in the summary:\n{stderr}"),
    }
}

// ---------------------------------------------------------------------------
// Trees and queries.

const NON_ASCII: &[&str] = &[
    "école",
    "ÉCOLE",
    "Straße",
    "STRASSE",
    "οδός",
    "ΟΔΥΣΣΕΥΣ",
    "Москва",
    "東京",
    "naïve",
    "café",
    "İstanbul",
    "ﬁn",
    "Ǆemal",
    "x²",
    "größe",
];
const SYLLABLES: &[&str] = &[
    "ka", "lo", "ri", "sen", "ta", "mor", "vi", "del", "an", "tre", "qu", "is", "on", "pel",
];
const SEPARATORS: &[&str] = &[" ", " ", "\n", ", ", "\t", "-", "(", ". ", "\r\n"];
const FOLDERS: &[&str] = &[
    "src",
    "docs",
    "a",
    "b",
    "Ünïcode",
    "x y",
    "日本",
    "deep",
    ".git",
];

fn random_word(rng: &mut Rng) -> String {
    match rng.below(10) {
        0..=5 => (0..1 + rng.below(3))
            .map(|_| *rng.pick(SYLLABLES))
            .collect(),
        6 | 7 => format!(
            "{}_{}{}",
            rng.pick(SYLLABLES).to_uppercase(),
            rng.pick(SYLLABLES),
            rng.below(20)
        ),
        _ => rng.pick(NON_ASCII).to_string(),
    }
}

fn random_text(rng: &mut Rng, words: usize) -> Vec<u8> {
    let mut out = String::new();
    for _ in 0..words {
        out.push_str(&random_word(rng));
        out.push_str(rng.pick::<&str>(SEPARATORS));
    }
    out.into_bytes()
}

/// A text-only tree of `files` files in nested folders (none in `.git`),
/// each with its own mtime; returns the relative paths.
fn write_random_tree(root: &Path, rng: &mut Rng, files: usize, clock: &mut Clock) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for i in 0..files {
        let mut rel = PathBuf::new();
        for _ in 0..rng.below(4) {
            rel.push(rng.pick(&FOLDERS[..FOLDERS.len() - 1]));
        }
        rel.push(format!("f{i}.txt"));
        let words = rng.below(60);
        write_file(root, &rel, &random_text(rng, words), clock);
        paths.push(rel);
    }
    paths
}

/// The round-trip tree: random text files plus a binary file, an empty file,
/// a file under `.git`, and a name that is not UTF-8.
fn write_round_trip_tree(root: &Path, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut clock = Clock::new();
    write_random_tree(root, &mut rng, 40, &mut clock);
    write_file(root, Path::new("bin.dat"), b"binword\0more", &mut clock);
    write_file(root, Path::new("empty.txt"), b"", &mut clock);
    write_file(root, Path::new(".git/config"), b"gitword", &mut clock);
    let odd = OsStr::from_bytes(b"odd\xffname.txt");
    write_file(
        root,
        Path::new(odd),
        "odd_word école\n".as_bytes(),
        &mut clock,
    );
}

/// Every query form over the sample tree: prefix, glob, regex, exact,
/// uppercase, non-ASCII, and some that match nothing.
const CORPUS_QUERIES: &[&str] = &[
    "river",
    "a",
    "*ing",
    "*ow*",
    "spin*irq",
    "list_*",
    "/[a-z]+s/",
    "/(bread|soup|stew)/",
    "/0x[0-9a-f]+/",
    "=river",
    "=école",
    "RIVER",
    "ÉCOLE",
    "=STRASSE",
    "straß",
    "οδ",
    "ΟΔΥΣ",
    "*ΔΥΣ*",
    "мос",
    "東京",
    "zzqqxxnothing",
    "*",
];

/// Fixed queries of every form, plus queries made from words really in the
/// index (prefix, uppercase prefix, exact, infix glob, head*tail glob, regex).
fn queries_for(index: &Index, seed: u64) -> Vec<String> {
    let mut out: Vec<String> = [
        "*",
        "é",
        "οδ",
        "ΟΔΥΣ",
        "=école",
        "*_*",
        "/[a-z]+s/",
        "STRA",
        "zzqqxx_nothing",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let words: Vec<&String> = index.keys().collect();
    if words.is_empty() {
        return out;
    }
    let mut rng = Rng::new(seed);
    for form in 0..6 {
        let word = words[rng.below(words.len())];
        let chars: Vec<char> = word.chars().collect();
        let head: String = chars.iter().take(1 + rng.below(3)).collect();
        out.push(match form {
            0 => head,
            1 => head.to_uppercase(),
            2 => format!("={word}"),
            3 => format!("*{}*", chars.iter().skip(1).take(2).collect::<String>()),
            4 => format!("{head}*{}", chars.last().unwrap()),
            _ => format!("/{}.*/", regex::escape(&head)),
        });
    }
    out
}

// ---------------------------------------------------------------------------
// 1. Round trip: save, reopen with and without DIR, same answers.

/// The saved index answers exactly like the reference and the in-memory
/// build, opened alone (`--index FILE`) or with its tree (`DIR --index FILE`).
fn check_round_trip<S: AsRef<str>>(dir: &Path, queries: &[S], what: &str) {
    let idx = tempfile::tempdir().unwrap();
    let file = idx.path().join("saved.idx");
    let want = expected(dir, queries);
    assert_same_answers(
        &ask_memory(dir, queries),
        &want,
        &format!("{what}: in-memory build"),
    );

    save(dir, &file);
    assert!(file.is_file(), "{what}: --save wrote no {file:?}");
    assert!(
        temporaries(&file).is_empty(),
        "{what}: temporary files left after a complete save: {:?}",
        temporaries(&file)
    );
    let (got, stderr) = ask_file(&file, queries);
    assert_same_answers(&got, &want, &format!("{what}: --index FILE (no DIR)"));
    assert!(
        stderr.to_lowercase().contains("not checked"),
        "{what}: opening without DIR must say the tree was not checked; stderr:\n{stderr}"
    );
    // The substrings answered from the common pairs' bits.
    let pairs = pair_queries(&fs::read(&file).unwrap());
    assert!(!pairs.is_empty(), "{what}: no common pair kept");
    let (got, _) = ask_file(&file, &pairs);
    let pairs_want = expected(dir, &pairs);
    assert_same_answers(&got, &pairs_want, &format!("{what}: common pairs"));
    let (got, _) = ask_refreshed(dir, &file, queries, &[]);
    assert_same_answers(&got, &want, &format!("{what}: DIR --index FILE"));
    let (got, _) = ask_file(&file, queries);
    assert_same_answers(&got, &want, &format!("{what}: reopened after DIR --index"));

    // `DIR --index FILE` with no FILE yet builds and saves it.
    let built = idx.path().join("built.idx");
    let (got, _) = ask_refreshed(dir, &built, queries, &[]);
    assert_same_answers(&got, &want, &format!("{what}: DIR --index NEWFILE"));
    assert!(built.is_file(), "{what}: DIR --index NEWFILE saved nothing");
    let (got, _) = ask_file(&built, queries);
    assert_same_answers(&got, &want, &format!("{what}: reopened NEWFILE"));
}

#[test]
fn saved_corpus_reopens_with_the_reference_answers() {
    check_round_trip(&corpus(), CORPUS_QUERIES, "corpus");
}

#[test]
fn saved_random_trees_reopen_with_the_reference_answers() {
    for seed in 1..=3 {
        let tree = tempfile::tempdir().unwrap();
        write_round_trip_tree(tree.path(), seed);
        let index = reference::build_index(tree.path(), &[]);
        let mut queries = queries_for(&index, seed);
        queries.extend(["odd_", "binword", "gitword"].map(String::from));
        check_round_trip(tree.path(), &queries, &format!("random tree {seed}"));
    }
}

/// A vocabulary past the limit on suffix keys (16 M words, made 5 here)
/// is saved without them, in memory and streamed through runs on disk,
/// and answers as the reference does, suffix queries included. (Such a
/// save once failed outright: the file's header had room for the suffix
/// sections, which were left out.)
#[test]
fn a_vocabulary_past_the_suffix_key_limit_saves_and_answers() {
    let queries = ["*ing", "*er", "*ow*", "river", "*", "=école", "*ΔΥΣ"];
    let want = expected(&corpus(), &queries);
    for extra in [&[][..], &["--memory", "1K"][..]] {
        let idx = tempfile::tempdir().unwrap();
        let file = idx.path().join("saved.idx");
        save_with(&corpus(), &file, "suffixes=5", extra);
        let (got, _) = ask_file(&file, &queries);
        assert_same_answers(
            &got,
            &want,
            &format!("saved past the suffix limit {extra:?}"),
        );
    }
}

#[test]
fn file_header_is_a_magic_then_format_version_3() {
    let idx = tempfile::tempdir().unwrap();
    let tree = tempfile::tempdir().unwrap();
    write_round_trip_tree(tree.path(), 9);
    let (a, b) = (idx.path().join("a.idx"), idx.path().join("b.idx"));
    save(&corpus(), &a);
    save(tree.path(), &b);
    let (a, b) = (fs::read(a).unwrap(), fs::read(b).unwrap());
    assert!(a.len() >= 12 && b.len() >= 12, "index files under 12 bytes");
    assert_eq!(
        a[..8],
        b[..8],
        "bytes 0..8 (the magic) differ between indexes"
    );
    for bytes in [&a, &b] {
        let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
        assert_eq!(version, 3, "bytes 8..12: format version");
    }
}

// ---------------------------------------------------------------------------
// 2. Opening without DIR never needs the tree.

#[test]
fn index_without_directory_answers_after_the_tree_is_deleted() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    copy_tree(&corpus(), &tree);
    let file = work.path().join("corpus.idx");
    save(&tree, &file);
    let want = expected(&tree, CORPUS_QUERIES);
    let before = snapshot(&file);

    fs::remove_dir_all(&tree).unwrap();
    let (got, stderr) = ask_file(&file, CORPUS_QUERIES);
    assert_same_answers(&got, &want, "--index FILE after deleting the tree");
    assert!(
        stderr.to_lowercase().contains("not checked"),
        "the note that the tree was not checked for changes is missing; stderr:\n{stderr}"
    );
    // Read-only: FILE unchanged, no side file, no temporary.
    assert!(
        fs::read(&file).unwrap() == before.0[0].1,
        "--index FILE without DIR rewrote FILE"
    );
    assert!(
        !delta_of(&file).exists(),
        "--index FILE without DIR wrote FILE.delta"
    );
    assert!(temporaries(&file).is_empty(), "temporary files left");

    // With the deleted DIR named, it is a missing path: bad input.
    let out = indexer()
        .arg(&tree)
        .arg("--index")
        .arg(&file)
        .arg("--noprompt")
        .output()
        .unwrap();
    assert_refused(&out, "DIR --index FILE with DIR deleted");
}

// ---------------------------------------------------------------------------
// 3. Refreshes equal fresh builds, over random edits stacked on each other.

#[derive(Debug, Clone)]
enum Edit {
    /// A new file at these folders.
    Add(Vec<String>, Vec<u8>),
    Delete(usize),
    /// New content and a new mtime.
    Modify(usize, Vec<u8>),
    /// Letters rotated: same size, so only the mtime tells.
    SameSize(usize),
    /// A new mtime, same bytes.
    Touch(usize),
    /// Moved to these folders under a new name (mtime and size kept).
    Rename(usize, Vec<String>),
    /// A new folder (below these) holding new files.
    Nested(Vec<String>, Vec<Vec<u8>>),
    /// The folder holding a file, removed whole (skipped at the top level).
    RemoveFolder(usize),
}

#[derive(Debug, Clone)]
enum Round {
    Edits(Vec<Edit>),
    /// Three files in four get new content and an mtime.
    Most(Vec<Vec<u8>>),
}

/// A tree on disk and the files in it, for applying edits.
struct TreeModel {
    root: PathBuf,
    /// Relative paths of the files that exist.
    files: Vec<PathBuf>,
    next: usize,
    clock: Clock,
}

impl TreeModel {
    fn new(root: &Path) -> Self {
        TreeModel {
            root: root.to_path_buf(),
            files: Vec::new(),
            next: 0,
            clock: Clock::new(),
        }
    }

    /// A fresh, never reused name; some are not UTF-8 (and stay unique
    /// once the bad byte is shown as U+FFFD).
    fn fresh_name(&mut self) -> OsString {
        let n = self.next;
        self.next += 1;
        if n % 9 == 4 {
            OsString::from_vec([format!("g{n}").as_bytes(), b"\xff.txt"].concat())
        } else {
            OsString::from(format!("f{n}.txt"))
        }
    }

    fn add(&mut self, folders: &[String], content: &[u8]) {
        let mut rel: PathBuf = folders.iter().collect();
        rel.push(self.fresh_name());
        write_file(&self.root, &rel, content, &mut self.clock);
        self.files.push(rel);
    }

    fn pick(&self, i: usize) -> Option<usize> {
        (!self.files.is_empty()).then(|| i % self.files.len())
    }

    fn modify(&mut self, i: usize, content: &[u8]) {
        write_file(&self.root, &self.files[i].clone(), content, &mut self.clock);
    }

    fn apply(&mut self, edit: &Edit) {
        match edit {
            Edit::Add(folders, content) => self.add(folders, content),
            Edit::Delete(i) => {
                if let Some(i) = self.pick(*i) {
                    fs::remove_file(self.root.join(self.files.remove(i))).unwrap();
                }
            }
            Edit::Modify(i, content) => {
                if let Some(i) = self.pick(*i) {
                    self.modify(i, content);
                }
            }
            Edit::SameSize(i) => {
                if let Some(i) = self.pick(*i) {
                    let path = self.root.join(&self.files[i]);
                    let rotated: Vec<u8> = fs::read(&path)
                        .unwrap()
                        .into_iter()
                        .map(|b| match b {
                            b'a'..=b'm' | b'A'..=b'M' => b + 13,
                            b'n'..=b'z' | b'N'..=b'Z' => b - 13,
                            _ => b,
                        })
                        .collect();
                    self.modify(i, &rotated);
                }
            }
            Edit::Touch(i) => {
                if let Some(i) = self.pick(*i) {
                    set_mtime(&self.root.join(&self.files[i]), self.clock.next());
                }
            }
            Edit::Rename(i, folders) => {
                if let Some(i) = self.pick(*i) {
                    let mut to: PathBuf = folders.iter().collect();
                    to.push(self.fresh_name());
                    fs::create_dir_all(self.root.join(&to).parent().unwrap()).unwrap();
                    fs::rename(self.root.join(&self.files[i]), self.root.join(&to)).unwrap();
                    self.files[i] = to;
                }
            }
            Edit::Nested(folders, contents) => {
                let mut base: Vec<String> = folders.clone();
                base.push(format!("new{}", self.next));
                self.next += 1;
                base.push("inner".into());
                for content in contents {
                    self.add(&base, content);
                }
            }
            Edit::RemoveFolder(i) => {
                if let Some(i) = self.pick(*i) {
                    let folder = self.files[i].parent().unwrap().to_path_buf();
                    if folder.as_os_str().is_empty() {
                        return;
                    }
                    fs::remove_dir_all(self.root.join(&folder)).unwrap();
                    self.files.retain(|f| !f.starts_with(&folder));
                }
            }
        }
    }

    fn apply_round(&mut self, round: &Round) {
        match round {
            Round::Edits(edits) => edits.iter().for_each(|e| self.apply(e)),
            Round::Most(contents) => {
                for k in 0..self.files.len() {
                    if k % 4 != 3 {
                        let mut content = contents[k % contents.len()].clone();
                        content.extend_from_slice(format!(" most{k}\n").as_bytes());
                        self.modify(k, &content);
                    }
                }
            }
        }
    }
}

fn word_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        5 => "[a-z]{1,7}",
        2 => "[A-Za-z_][A-Za-z0-9_]{0,8}",
        2 => prop::sample::select(NON_ASCII).prop_map(String::from),
    ]
}

fn join_words(words: &[(String, usize)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (w, sep) in words {
        out.extend_from_slice(w.as_bytes());
        out.extend_from_slice(SEPARATORS[sep % SEPARATORS.len()].as_bytes());
    }
    out
}

fn text_strategy() -> impl Strategy<Value = Vec<u8>> {
    let words = || prop::collection::vec((word_strategy(), 0usize..SEPARATORS.len()), 0..30);
    prop_oneof![
        10 => words().prop_map(|w| join_words(&w)),
        1 => Just(Vec::new()),
        // Binary: a NUL early on.
        1 => (words(), 0usize..40).prop_map(|(w, at)| {
            let mut b = join_words(&w);
            b.insert(at.min(b.len()), 0);
            b
        }),
        // Bytes that are not UTF-8 between words.
        1 => words().prop_map(|w| {
            let mut b = join_words(&w);
            b.extend_from_slice(b"\xff\xfetail\xc3");
            b
        }),
    ]
}

fn folders_strategy() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(prop::sample::select(FOLDERS).prop_map(String::from), 0..3)
}

fn edit_strategy() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (folders_strategy(), text_strategy()).prop_map(|(f, c)| Edit::Add(f, c)),
        2 => any::<usize>().prop_map(Edit::Delete),
        4 => (any::<usize>(), text_strategy()).prop_map(|(i, c)| Edit::Modify(i, c)),
        1 => any::<usize>().prop_map(Edit::SameSize),
        1 => any::<usize>().prop_map(Edit::Touch),
        2 => (any::<usize>(), folders_strategy()).prop_map(|(i, f)| Edit::Rename(i, f)),
        1 => (folders_strategy(), prop::collection::vec(text_strategy(), 1..4))
            .prop_map(|(f, c)| Edit::Nested(f, c)),
        1 => any::<usize>().prop_map(Edit::RemoveFolder),
    ]
}

#[derive(Debug, Clone)]
struct RefreshSpec {
    initial: Vec<(Vec<String>, Vec<u8>)>,
    /// Rounds of edits; `rounds_of` adds one that changes most files and
    /// one that changes a single file.
    rounds: Vec<Vec<Edit>>,
    most: Vec<Vec<u8>>,
    one: Edit,
    /// Extra files under `ballast/` (copies of the initial texts plus
    /// words of their own): with few edits against many files a refresh
    /// keeps its changes in FILE.delta instead of rewriting FILE, so
    /// deltas stack on deltas; a round changing most files rewrites FILE.
    ballast: usize,
    workers: usize,
    query_seed: u64,
}

impl RefreshSpec {
    /// Random rounds, a round changing most files after the first, and a
    /// single edit last.
    fn rounds_of(&self) -> Vec<Round> {
        let mut rounds: Vec<Round> = self.rounds.iter().cloned().map(Round::Edits).collect();
        rounds.insert(1.min(rounds.len()), Round::Most(self.most.clone()));
        rounds.push(Round::Edits(vec![self.one.clone()]));
        rounds
    }
}

fn refresh_spec_strategy() -> impl Strategy<Value = RefreshSpec> {
    (
        prop::collection::vec((folders_strategy(), text_strategy()), 1..14),
        prop::collection::vec(prop::collection::vec(edit_strategy(), 1..6), 1..3),
        prop::collection::vec(text_strategy(), 2..5),
        edit_strategy(),
        prop_oneof![1 => Just(0usize), 3 => 40usize..120],
        1usize..=3,
        any::<u64>(),
    )
        .prop_map(
            |(initial, rounds, most, one, ballast, workers, query_seed)| RefreshSpec {
                initial,
                rounds,
                most,
                one,
                ballast,
                workers,
                query_seed,
            },
        )
}

/// Builds FILE with `DIR --index`, then for each round: edit the tree,
/// refresh FILE and answer; the answers must equal the reference's, the
/// reopened FILE's (what was saved) and a fresh `--save` build's.
fn check_refresh_rounds(spec: &RefreshSpec) {
    let tree = tempfile::tempdir().unwrap();
    let idx = tempfile::tempdir().unwrap();
    let file = idx.path().join("stacked.idx");
    let fresh = idx.path().join("fresh.idx");
    let workers = spec.workers.to_string();
    let mut model = TreeModel::new(tree.path());
    for (folders, content) in &spec.initial {
        model.add(folders, content);
    }
    let mut rng = Rng::new(spec.query_seed);
    for k in 0..spec.ballast {
        let mut content = spec.initial[k % spec.initial.len()].1.clone();
        content.extend(random_text(&mut rng, 8));
        model.add(&[format!("ballast{}", k % 4)], &content);
    }
    refresh(tree.path(), &file, &["--workers", &workers]);
    assert!(file.is_file(), "DIR --index FILE saved nothing");
    let mut kept_deltas = 0;

    for (n, round) in spec.rounds_of().iter().enumerate() {
        model.apply_round(round);
        let index = reference::build_index(tree.path(), &[]);
        let queries = queries_for(&index, spec.query_seed.wrapping_add(n as u64));
        let refs: Vec<&str> = queries.iter().map(String::as_str).collect();
        let want = expected_json(&index, &refs);
        let what = format!("round {n} ({round:?}), --workers {workers}");

        let (got, _) = ask_refreshed(tree.path(), &file, &queries, &["--workers", &workers]);
        assert_same_answers(&got, &want, &format!("{what}: refreshed"));
        let (got, _) = ask_file(&file, &queries);
        assert_same_answers(&got, &want, &format!("{what}: refreshed FILE reopened"));
        save(tree.path(), &fresh);
        let (got, _) = ask_file(&fresh, &queries);
        assert_same_answers(&got, &want, &format!("{what}: fresh --save"));
        kept_deltas += delta_of(&file).exists() as usize;
    }
    // Seen with --nocapture: how often the delta path ran.
    println!(
        "{} files, {} rounds: FILE.delta present after {kept_deltas}",
        model.files.len(),
        spec.rounds_of().len()
    );
}

proptest! {
    // Each case runs the binary about 20 times; PROPTEST_CASES=100 for a
    // deeper run. No persistence file: failures print the minimal case.
    #![proptest_config(ProptestConfig {
        cases: env_number("PROPTEST_CASES", 16) as u32,
        failure_persistence: None,
        max_shrink_time: 60_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn stacked_refreshes_equal_fresh_builds_and_the_reference(spec in refresh_spec_strategy()) {
        check_refresh_rounds(&spec);
    }
}

// ---------------------------------------------------------------------------
// 4. The refresh summary counts what was reused and re-indexed.

/// A refreshed index whose base picks far more words than its delta (so
/// the delta's words are placed among the base's by their rank rather than
/// merged word by word), with one word gone from the tree, new words, and
/// words whose counts the edit changed: every answer as the reference has
/// it for the edited tree, `-c` included.
#[test]
fn a_small_delta_over_a_large_base_answers_like_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    let mut clock = Clock::new();
    for f in 0..20 {
        let text: String = (0..600).map(|w| format!("w{w:03} x{f}{w} ")).collect();
        write_file(
            &root,
            Path::new(&format!("f{f:02}.txt")),
            text.as_bytes(),
            &mut clock,
        );
    }
    write_file(
        &root,
        Path::new("edited.txt"),
        b"w000 only_here kept_here w500 w100\n",
        &mut clock,
    );
    let saved = tempfile::tempdir().unwrap();
    let file = saved.path().join("t.idx");
    save(&root, &file);
    // `only_here` goes; `kept_here` leaves the base for the delta; `w000`
    // and `w100` lose an occurrence; new words come, before, among and
    // after the base's.
    write_file(
        &root,
        Path::new("edited.txt"),
        b"a_new w100 w250b w999z\nw000 zz_new kept_here\n",
        &mut clock,
    );
    refresh(&root, &file, &[]);
    assert!(delta_of(&file).exists(), "the edit made a delta");
    let queries = ["w*", "*", "*0*", "only*", "=w100", "x1*", "*new", "*_here"];
    let (got, _) = ask_file(&file, &queries);
    assert_same_answers(
        &got,
        &expected(&root, &queries),
        "small delta over a large base",
    );
    let index = reference::build_index(&root, &[]);
    for q in ["w*", "*"] {
        let want = reference::expected_counts(&index, q);
        let out = indexer()
            .arg("--index")
            .arg(&file)
            .args(["-c", "--query", q])
            .output()
            .unwrap();
        assert_eq!(stdout_lines(&out), want, "-c {q}");
    }
}

#[test]
fn refresh_with_nothing_changed_reuses_every_file() {
    let tree = tempfile::tempdir().unwrap();
    let idx = tempfile::tempdir().unwrap();
    let file = idx.path().join("same.idx");
    write_random_tree(tree.path(), &mut Rng::new(4), 30, &mut Clock::new());
    let n = reference::files(tree.path(), &[]).len() as u64;
    refresh(tree.path(), &file, &[]);
    // Twice: a refresh of a refreshed index also finds nothing to do.
    for attempt in 1..=2 {
        let stderr = refresh(tree.path(), &file, &[]);
        let what = format!("unchanged tree, refresh {attempt}");
        assert_eq!(
            refresh_counts(&stderr, &what),
            (n, 0),
            "{what}: want (reused, re-indexed) = ({n}, 0); summary:\n{stderr}"
        );
    }
}

#[test]
fn refresh_counts_follow_the_edits() {
    let tree = tempfile::tempdir().unwrap();
    let root = tree.path();
    let idx = tempfile::tempdir().unwrap();
    let file = idx.path().join("counts.idx");
    let mut clock = Clock::new();
    // Many files against four edits, so no step passes any "too much
    // changed, rebuild it all" threshold (an eighth of the tree, say).
    let paths = write_random_tree(root, &mut Rng::new(5), 160, &mut clock);
    refresh(root, &file, &[]);
    let n = paths.len() as u64;

    // (what, edit, want reused, want re-indexed)
    type Step<'a> = (&'a str, Box<dyn Fn(&mut Clock) + 'a>, u64, u64);
    let steps: Vec<Step> = vec![
        (
            "one file modified",
            Box::new(|c: &mut Clock| write_file(root, &paths[3], b"changed words here\n", c)),
            n - 1,
            1,
        ),
        (
            "one file touched (mtime only)",
            Box::new(|c: &mut Clock| set_mtime(&root.join(&paths[5]), c.next())),
            n - 1,
            1,
        ),
        (
            "one file added",
            Box::new(|c: &mut Clock| write_file(root, Path::new("new/added.txt"), b"added", c)),
            n,
            1,
        ),
        (
            "one file deleted",
            Box::new(|_: &mut Clock| fs::remove_file(root.join(&paths[7])).unwrap()),
            n,
            0,
        ),
        ("nothing", Box::new(|_: &mut Clock| ()), n, 0),
    ];
    for (what, edit, reused, reindexed) in steps {
        edit(&mut clock);
        let (got, stderr) = ask_refreshed(root, &file, &["*"], &[]);
        assert_same_answers(&got, &expected(root, &["*"]), what);
        assert_eq!(
            refresh_counts(&stderr, what),
            (reused, reindexed),
            "{what}: (reused, re-indexed); summary:\n{stderr}"
        );
        if what == "one file deleted" {
            if let Some(removed) = count_of(&stderr, "removed") {
                assert_eq!(removed, 1, "{what}: removed count; summary:\n{stderr}");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 5. Broken, foreign and other-version index files are refused.

/// `indexer --index FILE --json --query ...` under a 2 GiB address-space
/// limit, so an allocation sized by a corrupted length fails loudly instead
/// of swapping.
fn open_broken(file: &Path) -> Output {
    let mut std_cmd = std::process::Command::new(bin());
    // A substring (which reads the vocabulary blocks' signatures; it
    // matches in every tree here, école or column, so it leaves stderr
    // to the refusal), a glob with nothing to narrow by (read from the
    // words as plain text; e is in every tree here too), a suffix (found
    // by the suffix keys), every word, a prefix and a regex, and one
    // substring of each common pair the file and its delta keep bits of:
    // together they read every section.
    // The pairs' first: each matches, so it leaves stderr to the refusal.
    let mut queries = Vec::new();
    for layer in [file.to_path_buf(), delta_of(file)] {
        queries.extend(pair_queries(&fs::read(layer).unwrap_or_default()));
    }
    queries.extend(["*col*", "*e*", "*on", "*", "river", "/.*ö.*/"].map(String::from));
    std_cmd.arg("--index").arg(file).args(json_args(&queries));
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        std_cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 2 << 30,
                rlim_max: 2 << 30,
            };
            libc::setrlimit(libc::RLIMIT_AS, &limit);
            Ok(())
        });
    }
    let mut cmd = Command::from_std(std_cmd);
    cmd.timeout(BROKEN_TIMEOUT).write_stdin("");
    cmd.output().unwrap()
}

/// A saved index of the sample tree, and its bytes.
fn corpus_index(dir: &Path) -> (PathBuf, Vec<u8>) {
    let file = dir.join("good.idx");
    save(&corpus(), &file);
    let bytes = fs::read(&file).unwrap();
    // The intact file opens under the same limits, so refusals below are
    // the corruption's doing.
    let out = open_broken(&file);
    assert!(
        out.status.success(),
        "the intact index does not open: {:?}\n{}",
        out.status,
        stderr_of(&out)
    );
    (file, bytes)
}

/// Writes `bytes` as `dir/bad.idx` (with no side file) and opens it.
fn open_bytes(dir: &Path, bytes: &[u8]) -> Output {
    let bad = dir.join("bad.idx");
    let _ = fs::remove_file(delta_of(&bad));
    fs::write(&bad, bytes).unwrap();
    open_broken(&bad)
}

#[test]
fn truncated_index_is_refused() {
    let idx = tempfile::tempdir().unwrap();
    let (_, good) = corpus_index(idx.path());
    let len = good.len();
    let mut cuts: BTreeSet<usize> = [
        0, 1, 4, 7, 8, 9, 11, 12, 13, 16, 20, 24, 31, 32, 33, 48, 64, 96, 128, 256, 512, 4096,
    ]
    .into_iter()
    .collect();
    for part in 1..8 {
        cuts.insert(len * part / 8);
    }
    for back in [1, 2, 3, 4, 8, 12, 16, 32, 64] {
        cuts.insert(len.saturating_sub(back));
    }
    let mut rng = Rng::new(51);
    for _ in 0..30 {
        cuts.insert(rng.below(len));
    }
    for cut in cuts.into_iter().filter(|&c| c < len) {
        let out = open_bytes(idx.path(), &good[..cut]);
        assert_refused(&out, &format!("index truncated to {cut} of {len} bytes"));
    }
}

/// Flips `mask(at)` into each byte at `positions` of `good`, opens the
/// result with `open`, and returns every position not properly refused.
fn flip_problems(
    good: &[u8],
    positions: impl IntoIterator<Item = usize>,
    mut mask: impl FnMut(usize) -> u8,
    mut open: impl FnMut(&[u8]) -> Output,
) -> (Vec<String>, usize) {
    let mut problems = Vec::new();
    let mut tried = 0;
    for at in positions {
        let mut bytes = good.to_vec();
        let m = mask(at);
        bytes[at] ^= m;
        tried += 1;
        if let Some(problem) = refusal_problem(&open(&bytes)) {
            problems.push(format!(
                "byte {at} ({:#04x} -> {:#04x}): {problem}",
                good[at], bytes[at]
            ));
        }
    }
    (problems, tried)
}

#[test]
fn flipped_bytes_anywhere_are_refused() {
    // The sample tree's index, sampled: the header bytes, the tail, and
    // random positions with random masks.
    let idx = tempfile::tempdir().unwrap();
    let (_, good) = corpus_index(idx.path());
    let len = good.len();
    let mut rng = Rng::new(52);
    let mut positions: BTreeSet<usize> = (0..24.min(len)).collect();
    positions.extend(len.saturating_sub(16)..len);
    for _ in 0..300 {
        positions.insert(rng.below(len));
    }
    let (problems, tried) = flip_problems(
        &good,
        positions,
        |_| 1 + rng.below(255) as u8,
        |bytes| open_bytes(idx.path(), bytes),
    );
    assert_none_accepted(
        &problems,
        tried,
        &format!("corpus index ({len} bytes), a byte flipped"),
    );
}

#[test]
fn every_byte_of_a_small_index_is_checked() {
    // Small enough to flip every byte: padding or spare bytes that no
    // checksum covers show up here (a sample can miss them).
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    let mut clock = Clock::new();
    for (rel, text) in [
        ("a.txt", "river rivers École\n"),
        ("sub/odd name.md", "Straße ΟΔΥΣΣΕΥΣ x²\nriver_bank 42\n"),
        ("sub/deeper/b.c", "int spin_lock_irq(void);\n"),
        ("z", ""),
    ] {
        write_file(&tree, Path::new(rel), text.as_bytes(), &mut clock);
    }
    let file = work.path().join("small.idx");
    save(&tree, &file);
    let good = fs::read(&file).unwrap();
    let mut rng = Rng::new(55);
    let (problems, tried) = flip_problems(
        &good,
        0..good.len(),
        |at| {
            if at % 2 == 0 {
                0x01
            } else {
                0x80 | rng.below(128) as u8
            }
        },
        |bytes| open_bytes(work.path(), bytes),
    );
    assert_none_accepted(
        &problems,
        tried,
        &format!("small index ({} bytes), every byte flipped", good.len()),
    );
}

#[test]
fn large_index_never_answers_from_damaged_bytes() {
    // An index of several megabytes, with bytes flipped all over it, asked
    // narrow queries: each run must refuse the file (exit 2, one line) or
    // answer exactly as the intact file does. A reader that checks parts
    // lazily, as queries touch them, may pass over damage elsewhere; it may
    // never answer from damaged bytes. (The strict checks, every flip
    // refused, are on small files above.)
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("tree");
    KillTree::new(&root, 4000, 56);
    let file = work.path().join("large.idx");
    save(&root, &file);
    let good = fs::read(&file).unwrap();
    let queries = ["tag17v0", "=w3", "w39", "=größe", "tag3999"];
    let want = expected(&root, &queries);
    assert_same_answers(&ask_file(&file, &queries).0, &want, "intact large index");
    let mut rng = Rng::new(57);
    let (mut refused, mut unnoticed) = (0, 0);
    let mut problems = Vec::new();
    for _ in 0..40 {
        let at = rng.below(good.len());
        let mut bytes = good.clone();
        bytes[at] ^= 1 + rng.below(255) as u8;
        let out = open_bytes(work.path(), &bytes);
        if refusal_problem(&out).is_none() {
            refused += 1;
        } else if out.status.success() && parse_json_lines(&out.stdout) == want {
            unnoticed += 1;
        } else {
            problems.push(format!(
                "byte {at}: {:?}, stderr {:?}, answers differ from the intact file's: {}",
                out.status,
                stderr_of(&out),
                parse_json_lines(&out.stdout) != want
            ));
        }
    }
    println!(
        "large index ({} bytes): {refused} flips refused, {unnoticed} not noticed by narrow queries",
        good.len()
    );
    assert_none_accepted(&problems, 40, "large index, a byte flipped");
}

/// Where section `id` lies in an index file's bytes, from its section
/// table (see the layout in `src/store/format.rs`); `None` if the table
/// does not say (or cannot be read: the file may be damaged).
fn section_span(index: &[u8], id: u32) -> Option<std::ops::Range<usize>> {
    let number = |at: usize, width: usize| -> Option<usize> {
        let mut bytes = [0u8; 8];
        bytes[..width].copy_from_slice(index.get(at..at.checked_add(width)?)?);
        usize::try_from(u64::from_le_bytes(bytes)).ok()
    };
    let sections = number(16, 4)?.min(64);
    let entry = (0..sections)
        .map(|k| 32 + 32 * k)
        .find(|&entry| number(entry, 4) == Some(id as usize))?;
    let (start, len) = (number(entry + 8, 8)?, number(entry + 16, 8)?);
    Some(start..start.checked_add(len)?)
}

/// Section ids (`src/store/format.rs`): the words' front-coded blocks,
/// the common pairs and their bits.
const WORDS_SECTION: u32 = 3;
const PAIRS_SECTION: u32 = 29;
const PAIR_BITS_SECTION: u32 = 30;

/// `*ab*` for each common pair `ab` an index file keeps bits of (as far
/// as its section table and pairs can be read; pairs that are not whole
/// characters cannot be asked for).
fn pair_queries(index: &[u8]) -> Vec<String> {
    let pairs = section_span(index, PAIRS_SECTION).and_then(|span| index.get(span));
    (pairs.unwrap_or_default().chunks_exact(2))
        .filter_map(|pair| std::str::from_utf8(pair).ok())
        .filter(|pair| pair.chars().all(|c| c.is_alphanumeric() || c == '_'))
        .map(|pair| format!("*{pair}*"))
        .collect()
}

/// A saved index of a tree of 1,500 files (`KillTree` of `seed`) in
/// `work`: the tree's root and the file's bytes.
fn saved_kill_tree(work: &Path, seed: u64) -> (PathBuf, Vec<u8>) {
    let root = work.join("tree");
    KillTree::new(&root, 1500, seed);
    let file = work.join("saved.idx");
    save(&root, &file);
    (root, fs::read(&file).unwrap())
}

/// `good` with one byte of `span` flipped, at random, as `work/bad.idx`:
/// where the byte is, and the file.
fn flip_one_in(
    work: &Path,
    good: &[u8],
    span: &std::ops::Range<usize>,
    rng: &mut Rng,
) -> (usize, PathBuf) {
    let at = span.start + rng.below(span.len());
    let mut bytes = good.to_vec();
    bytes[at] ^= 1 + rng.below(255) as u8;
    let bad = work.join("bad.idx");
    fs::write(&bad, &bytes).unwrap();
    (at, bad)
}

#[test]
fn a_damaged_block_of_words_refuses_the_answers_that_print_its_words() {
    // Every word printed (`*`, in JSON and as counts) with a byte of the
    // words' blocks flipped: the words of the damaged chunk would read as
    // empty, so the answer must stop at them with one line, exit 2.
    let work = tempfile::tempdir().unwrap();
    let (_, good) = saved_kill_tree(work.path(), 60);
    let words = section_span(&good, WORDS_SECTION).expect("a words section");
    let mut rng = Rng::new(61);
    let mut problems = Vec::new();
    for _ in 0..6 {
        let (at, bad) = flip_one_in(work.path(), &good, &words, &mut rng);
        for shape in [&["--json"][..], &["-c"][..]] {
            let out = indexer()
                .arg("--index")
                .arg(&bad)
                .args(["--query", "*"])
                .args(shape)
                .output()
                .unwrap();
            if let Some(problem) = refusal_problem(&out) {
                problems.push(format!("byte {at}, {shape:?}: {problem}"));
            }
        }
    }
    assert_none_accepted(&problems, 12, "words' blocks, a byte flipped");
}

#[test]
fn damaged_bits_of_a_common_pair_refuse_the_substring_answered_from_them() {
    // A byte flipped in the bits of the common pairs: asked for every
    // pair kept (so every row is read), the index is refused in one line;
    // asked for words alone, it answers as the intact file does.
    let work = tempfile::tempdir().unwrap();
    let (root, good) = saved_kill_tree(work.path(), 62);
    let rows = section_span(&good, PAIR_BITS_SECTION).expect("a pair bits section");
    let pairs = pair_queries(&good);
    assert!(pairs.len() >= 8, "{} pairs kept", pairs.len());
    let exact = ["=tag17v0", "=w3"];
    let want = expected(&root, &exact);
    let mut rng = Rng::new(63);
    let mut problems = Vec::new();
    for _ in 0..6 {
        let (at, bad) = flip_one_in(work.path(), &good, &rows, &mut rng);
        let out = indexer()
            .arg("--index")
            .arg(&bad)
            .args(json_args(&pairs))
            .output()
            .unwrap();
        if let Some(problem) = refusal_problem(&out) {
            problems.push(format!("byte {at}, every pair: {problem}"));
        }
        let (got, _) = ask_file(&bad, &exact);
        assert_same_answers(&got, &want, &format!("byte {at} flipped, exact words"));
    }
    assert_none_accepted(&problems, 6, "pair bits, a byte flipped");
}

/// Every word of `view` with its count and locations (and their paths),
/// read through the library's fallible reads: `Err` at the first one that
/// meets damage.
type Everything = Vec<(String, u64, Vec<indexer::index::Location>, Vec<String>)>;

fn read_everything(view: &indexer::index::View) -> Result<Everything, indexer::index::Damaged> {
    let mut words = Vec::new();
    for hit in view.hits(|v| indexer::index::Picks::span(0..v.len()))? {
        let locations: Vec<_> = view.locations(&hit)?.collect();
        let paths = locations
            .iter()
            .map(|l| view.path(l.file).map(str::to_string))
            .collect::<Result<_, _>>()?;
        let first = view.first_locations(&hit, 3)?;
        assert_eq!(
            Some(&first[..]),
            locations.get(..first.len()),
            "first_locations of {hit:?}"
        );
        words.push((
            view.word(&hit)?.into_owned(),
            view.count(&hit)?,
            locations,
            paths,
        ));
    }
    Ok(words)
}

#[test]
fn library_reads_of_a_damaged_index_fail_or_answer_whole() {
    // Through the library, without any caller verifying first: with a byte
    // flipped anywhere in a lazily checked index, reading every word must
    // fail (at open or at the read that meets the damage), or give what
    // the intact file gives; never fewer occurrences.
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("tree");
    KillTree::new(&root, 4000, 58);
    let file = work.path().join("large.idx");
    save(&root, &file);
    let good = fs::read(&file).unwrap();
    let open = |path: &Path| -> Result<Option<indexer::index::View>, String> {
        match indexer::store::Stored::open(path) {
            Err(e) => Err(e.to_string()),
            Ok(None) => Ok(None),
            Ok(Some(stored)) => stored
                .into_view_without_stamps()
                .map(Some)
                .map_err(|e| e.to_string()),
        }
    };
    let intact = open(&file).unwrap().expect("an index");
    let want = read_everything(&intact).expect("the intact file reads whole");
    assert!(want.len() > 1000, "{} words", want.len());
    let mut rng = Rng::new(59);
    let bad = work.path().join("bad.idx");
    let (mut refused, mut failed_read, mut unnoticed) = (0, 0, 0);
    for _ in 0..40 {
        let at = rng.below(good.len());
        let mut bytes = good.clone();
        bytes[at] ^= 1 + rng.below(255) as u8;
        fs::write(&bad, &bytes).unwrap();
        match open(&bad) {
            Err(_) => refused += 1,
            Ok(None) => panic!("byte {at}: opened as no index"),
            Ok(Some(view)) => match read_everything(&view) {
                Err(_) => failed_read += 1,
                Ok(got) => {
                    assert!(
                        got == want,
                        "byte {at}: read whole but not as the intact file"
                    );
                    unnoticed += 1;
                }
            },
        }
    }
    eprintln!("{refused} refused at open, {failed_read} reads failed, {unnoticed} unnoticed");
    assert!(
        failed_read > 0,
        "no flip reached a lazily checked list or table"
    );
}

#[test]
fn foreign_files_are_refused() {
    let idx = tempfile::tempdir().unwrap();
    let (_, good) = corpus_index(idx.path());
    let header = &good[..12];
    let mut rng = Rng::new(53);
    let random: Vec<u8> = (0..4096).map(|_| rng.next() as u8).collect();
    let tail: Vec<u8> = (0..1000).map(|_| rng.next() as u8).collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty file", Vec::new()),
        ("text file", b"this is not an index\nriver words\n".to_vec()),
        ("random bytes", random),
        ("header then zeros", [header, &[0u8; 100][..]].concat()),
        ("header then 0xff", [header, &[0xffu8; 100][..]].concat()),
        ("header then random bytes", [header, &tail[..]].concat()),
        ("header twice", [header, header].concat()),
        ("header only", header.to_vec()),
    ];
    for (what, bytes) in cases {
        assert_refused(&open_bytes(idx.path(), &bytes), what);
    }
    assert_refused(&open_broken(idx.path()), "a directory as --index");
    assert_refused(
        &open_broken(&idx.path().join("missing.idx")),
        "--index of a missing file without DIR",
    );
}

#[test]
fn other_format_versions_are_refused_naming_the_version() {
    let idx = tempfile::tempdir().unwrap();
    let (_, good) = corpus_index(idx.path());
    // Versions 1 and 2 (tables, then the file table, verified at open) are
    // still read; 3 is written.
    for version in [0u32, 4, 5, 0x0100, u32::MAX] {
        let mut bytes = good.clone();
        bytes[8..12].copy_from_slice(&version.to_le_bytes());
        let out = open_bytes(idx.path(), &bytes);
        let what = format!("format version {version}");
        assert_refused(&out, &what);
        assert!(
            stderr_of(&out).to_lowercase().contains("version"),
            "{what}: the message should say it is a version problem:\n{}",
            stderr_of(&out)
        );
    }
}

#[test]
fn corrupted_index_with_its_directory_is_refused_not_replaced() {
    let idx = tempfile::tempdir().unwrap();
    let (file, good) = corpus_index(idx.path());
    let mut version = good.clone();
    version[8..12].copy_from_slice(&4u32.to_le_bytes());
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x20;
    let mut flipped_end = good.clone();
    *flipped_end.last_mut().unwrap() ^= 0x01;
    for (what, bytes) in [
        ("truncated to half", good[..good.len() / 2].to_vec()),
        ("truncated to 12 bytes", good[..12].to_vec()),
        ("a byte flipped mid-file", flipped),
        ("the last byte flipped", flipped_end),
        ("format version 4", version),
        ("empty", Vec::new()),
    ] {
        fs::write(&file, &bytes).unwrap();
        let out = indexer()
            .timeout(BROKEN_TIMEOUT)
            .arg(corpus())
            .arg("--index")
            .arg(&file)
            .args(json_args(&["river"]))
            .output()
            .unwrap();
        let what = format!("DIR --index FILE, FILE {what}");
        assert_refused(&out, &what);
        assert!(
            fs::read(&file).unwrap() == bytes,
            "{what}: FILE was changed"
        );
        assert!(!delta_of(&file).exists(), "{what}: FILE.delta written");
    }
}

#[test]
fn corrupted_delta_is_refused_when_opened_and_repaired_by_a_refresh() {
    // A small change makes a refresh likely to keep it in FILE.delta.
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    copy_tree(&corpus(), &tree);
    let file = work.path().join("d.idx");
    refresh(&tree, &file, &[]);
    let mut clock = Clock::new();
    write_file(
        &tree,
        Path::new("essays/indexing.txt"),
        b"deltaword river\n",
        &mut clock,
    );
    refresh(&tree, &file, &[]);
    let delta = delta_of(&file);
    let good = fs::read(&delta).expect("a refresh of one changed file writes a delta");
    let (want, _) = ask_file(&file, &["deltaword"]);
    assert_eq!(want.len(), 1, "the refreshed index lacks the edit");
    let len = good.len();
    let base = fs::read(&file).unwrap();
    let open_with_delta = |bytes: &[u8]| {
        fs::write(&delta, bytes).unwrap();
        open_broken(&file)
    };

    // Opened without DIR: refused, with advice that names FILE, not FILE.delta.
    let mut problems = Vec::new();
    let mut tried = 0;
    for cut in [0, 1, 7, 8, 12, 16, len / 2, len - 1] {
        tried += 1;
        let out = open_with_delta(&good[..cut]);
        if let Some(problem) = refusal_problem(&out) {
            problems.push(format!("--index FILE, truncated to {cut}: {problem}"));
        }
        let stderr = stderr_of(&out);
        let advice = format!("--save {}`", file.display());
        if !stderr.contains(&advice) {
            problems.push(format!("truncated to {cut}: no `{advice}` in {stderr:?}"));
        }
    }
    let (flips, n) = flip_problems(&good, 0..len, |_| 0x01, open_with_delta);
    problems.extend(flips.into_iter().map(|p| format!("--index FILE, {p}")));
    tried += n;
    assert!(fs::read(&file).unwrap() == base, "FILE was changed");
    assert_none_accepted(
        &problems,
        tried,
        &format!("FILE.delta ({len} bytes) corrupted"),
    );

    // With DIR, a refresh sets the damaged delta aside, says so, compares
    // the tree with FILE alone and answers as a fresh build.
    let want = expected(&tree, &["*"]);
    let mut rng = Rng::new(54);
    let mut cases: Vec<Vec<u8>> = [0, 8, len / 2, len - 1]
        .iter()
        .map(|&cut| good[..cut].to_vec())
        .collect();
    for _ in 0..8 {
        let mut bytes = good.clone();
        bytes[rng.below(len)] ^= 0x80;
        cases.push(bytes);
    }
    for (k, bytes) in cases.iter().enumerate() {
        fs::write(&delta, bytes).unwrap();
        let out = indexer()
            .timeout(BROKEN_TIMEOUT)
            .arg(&tree)
            .arg("--index")
            .arg(&file)
            .arg("--noprompt")
            .output()
            .unwrap();
        let stderr = stderr_of(&out);
        if bytes != &good {
            assert!(
                out.status.success() && stderr.contains("refreshing from the index alone"),
                "case {k}: {:?} {stderr}",
                out.status
            );
        }
        assert_same_answers(&ask_file(&file, &["*"]).0, &want, &format!("case {k}"));
        fs::write(&file, &base).unwrap();
    }
}

// ---------------------------------------------------------------------------
// Which directory an index belongs to, and option combinations.

#[test]
fn index_built_from_another_directory_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    write_random_tree(&a, &mut Rng::new(6), 5, &mut Clock::new());
    write_random_tree(&b, &mut Rng::new(7), 5, &mut Clock::new());
    let file = work.path().join("a.idx");
    refresh(&a, &file, &[]);
    let before = fs::read(&file).unwrap();
    let out = indexer()
        .arg(&b)
        .arg("--index")
        .arg(&file)
        .args(json_args(&["*"]))
        .output()
        .unwrap();
    assert_refused(&out, "B --index FILE built from A");
    assert!(fs::read(&file).unwrap() == before, "FILE was changed");
    assert!(!delta_of(&file).exists(), "FILE.delta written");
}

#[test]
fn same_directory_by_another_path_is_refreshed() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    write_random_tree(&tree, &mut Rng::new(8), 12, &mut Clock::new());
    fs::create_dir_all(tree.join("sub")).unwrap();
    let link = work.path().join("link");
    std::os::unix::fs::symlink(&tree, &link).unwrap();
    let file = work.path().join("t.idx");
    refresh(&tree, &file, &[]);
    let n = reference::files(&tree, &[]).len() as u64;
    let want = expected(&tree, &["*"]);
    let spellings: Vec<OsString> = vec![
        tree.join(".").into(),
        tree.join("sub/..").into(),
        link.clone().into(),
        format!("{}/", tree.display()).into(),
        "tree".into(),
        "./tree/".into(),
    ];
    for dir in spellings {
        let out = indexer()
            .current_dir(work.path())
            .arg(&dir)
            .arg("--index")
            .arg(&file)
            .args(json_args(&["*"]))
            .output()
            .unwrap();
        let what = format!("refresh via {dir:?}");
        assert_same_answers(&answers_of(&out, &what), &want, &what);
        assert_eq!(
            refresh_counts(&stderr_of(&out), &what),
            (n, 0),
            "{what}: (reused, re-indexed)"
        );
    }
}

#[test]
fn save_replaces_an_index_of_any_tree() {
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    write_random_tree(&a, &mut Rng::new(10), 8, &mut Clock::new());
    write_random_tree(&b, &mut Rng::new(11), 8, &mut Clock::new());
    let file = work.path().join("x.idx");
    let want_a = expected(&a, &["*"]);
    let want_b = expected(&b, &["*"]);

    save(&a, &file);
    assert_same_answers(&ask_file(&file, &["*"]).0, &want_a, "--save to a new file");

    // Over an index of another directory: now it is B's.
    save(&b, &file);
    assert_same_answers(&ask_file(&file, &["*"]).0, &want_b, "--save over A's index");
    let (got, _) = ask_refreshed(&b, &file, &["*"], &[]);
    assert_same_answers(&got, &want_b, "B --index after --save from B");
    let out = indexer()
        .arg(&a)
        .arg("--index")
        .arg(&file)
        .arg("--noprompt")
        .output()
        .unwrap();
    assert_refused(&out, "A --index FILE after --save from B");

    // Over an index with a side file: the side file must not leak in.
    let mut clock = Clock::new();
    refresh(&b, &file, &[]);
    write_file(&b, Path::new("f0.txt"), b"sidefileword\n", &mut clock);
    refresh(&b, &file, &[]);
    fs::remove_file(b.join("f0.txt")).unwrap();
    save(&b, &file);
    let want = expected(&b, &["*"]);
    assert_same_answers(
        &ask_file(&file, &["*"]).0,
        &want,
        "--save over FILE + FILE.delta",
    );
    assert!(temporaries(&file).is_empty(), "temporary files left");
}

#[test]
fn bad_option_combinations_are_bad_input() {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("c.idx");
    save(&corpus(), &file);
    let other = work.path().join("other.idx");
    let dir = corpus();
    let cases: Vec<(&str, Vec<&OsStr>)> = vec![
        (
            "DIR --index with --save",
            vec![
                dir.as_os_str(),
                "--index".as_ref(),
                file.as_os_str(),
                "--save".as_ref(),
                other.as_os_str(),
                "--noprompt".as_ref(),
            ],
        ),
        (
            "--index with --save, no DIR",
            vec![
                "--index".as_ref(),
                file.as_os_str(),
                "--save".as_ref(),
                other.as_os_str(),
                "--noprompt".as_ref(),
            ],
        ),
        (
            "--save without DIR",
            vec!["--save".as_ref(), other.as_os_str(), "--noprompt".as_ref()],
        ),
        (
            "neither DIR nor --index",
            vec!["--query".as_ref(), "river".as_ref()],
        ),
        ("nothing at all", vec![]),
    ];
    for (what, args) in cases {
        let out = indexer().args(&args).output().unwrap();
        assert_refused(&out, what);
    }
    assert!(!other.exists(), "a refused --save wrote its file");
}

// ---------------------------------------------------------------------------
// 6. A save or refresh killed at any moment leaves the old index or the new.

const KILL_QUERIES: &[&str] = &["tag", "=common", "w1", "*ö*", "/w[0-9]+x/", "zzqq_nothing"];

/// A tree of `n` files big enough that saving takes a while; each file
/// carries `tag<id>v<version>`, so the `tag` query shows every file's state.
struct KillTree {
    root: PathBuf,
    /// Version of each file id; `None` once deleted.
    versions: Vec<Option<u32>>,
    clock: Clock,
    rng: Rng,
}

impl KillTree {
    fn new(root: &Path, n: usize, seed: u64) -> Self {
        let mut tree = KillTree {
            root: root.to_path_buf(),
            versions: Vec::new(),
            clock: Clock::new(),
            rng: Rng::new(seed),
        };
        for _ in 0..n {
            tree.versions.push(Some(0));
            tree.write(tree.versions.len() - 1);
        }
        tree
    }

    fn path(&self, id: usize) -> PathBuf {
        self.root
            .join(format!("d{:02}/s{}/f{id}.txt", id % 37, id % 3))
    }

    fn write(&mut self, id: usize) {
        let version = self.versions[id].unwrap();
        let mut rng = Rng::new((id as u64) << 20 | version as u64);
        let mut text = format!("tag{id}v{version} common\n");
        for _ in 0..12 + rng.below(12) {
            for _ in 0..5 + rng.below(6) {
                let top = rng.below(400) + 1;
                let n = rng.below(top);
                match rng.below(20) {
                    0 => text.push_str("common"),
                    1 => text.push_str(rng.pick::<&str>(NON_ASCII)),
                    2 => text.push_str(&format!("w{n}x")),
                    _ => text.push_str(&format!("w{n}")),
                }
                text.push(' ');
            }
            text.push('\n');
        }
        let path = self.path(id);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        set_mtime(&path, self.clock.next());
    }

    fn live(&self) -> Vec<usize> {
        (0..self.versions.len())
            .filter(|&id| self.versions[id].is_some())
            .collect()
    }

    /// Few: 2 modified, 1 added, 1 deleted. Most: four in five modified,
    /// one in twenty added and one in twenty deleted.
    fn change(&mut self, most: bool) {
        let live = self.live();
        let (modify, add, delete) = if most {
            (live.len() * 4 / 5, live.len() / 20, live.len() / 20)
        } else {
            (2, 1, 1)
        };
        let mut order = live.clone();
        for i in (1..order.len()).rev() {
            let j = self.rng.below(i + 1);
            order.swap(i, j);
        }
        for &id in &order[..modify] {
            *self.versions[id].as_mut().unwrap() += 1;
            self.write(id);
        }
        for &id in &order[modify..modify + delete] {
            fs::remove_file(self.path(id)).unwrap();
            self.versions[id] = None;
        }
        for _ in 0..add {
            self.versions.push(Some(0));
            self.write(self.versions.len() - 1);
        }
    }
}

enum Plan {
    /// Run to the end.
    Finish,
    /// SIGKILL this long after the start.
    After(Duration),
    /// SIGKILL `delay` after a temporary file appears, or `fallback` after
    /// the start if none has appeared by then.
    AfterTemporary { delay: Duration, fallback: Duration },
}

struct RunResult {
    status: ExitStatus,
    killed: bool,
    elapsed: Duration,
    /// When a new temporary file was first seen, from the start.
    temporary_at: Option<Duration>,
}

/// Runs the binary in its own process group, killing it (and its workers)
/// with SIGKILL as `plan` says; polls FILE's folder for temporaries.
fn run_and_kill(args: &[OsString], file: &Path, stderr_log: &Path, plan: &Plan) -> RunResult {
    let before = temporaries(file);
    let start = Instant::now();
    let mut child = std::process::Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(stderr_log).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut deadline = match plan {
        Plan::After(d) => Some(start + *d),
        _ => None,
    };
    let mut temporary_at = None;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return RunResult {
                status,
                killed: false,
                elapsed: start.elapsed(),
                temporary_at,
            };
        }
        let now = Instant::now();
        if temporary_at.is_none() && temporaries(file).difference(&before).next().is_some() {
            temporary_at = Some(now - start);
            if let Plan::AfterTemporary { delay, .. } = plan {
                deadline = Some(now + *delay);
            }
        }
        if let (Plan::AfterTemporary { fallback, .. }, None) = (plan, deadline) {
            if now - start >= *fallback {
                deadline = Some(now);
            }
        }
        let overdue = now - start > TIMEOUT;
        if deadline.is_some_and(|d| now >= d) || overdue {
            let pid = child.id() as libc::pid_t;
            // SAFETY: kill has no memory-safety preconditions; the pid is our
            // child's, not yet reaped, and the group is the one it leads.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::kill(-pid, libc::SIGKILL);
            }
            let status = child.wait().unwrap();
            assert!(!overdue, "{args:?} ran over {TIMEOUT:?}");
            return RunResult {
                status,
                killed: true,
                elapsed: start.elapsed(),
                temporary_at,
            };
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// Builds the old state (a saved index, with a side file if `old_delta`),
/// changes the tree, then runs the save or refresh `STORE_KILLS` times from
/// the old state, killing it at a random moment: in the build, just after
/// its temporary file appears, or near its end. After every kill the index
/// must open and answer exactly as the old tree or the new tree.
fn kill_scenario(name: &str, save_mode: bool, old_delta: bool, most: bool, seed: u64) {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("tree");
    let stderr_log = work.path().join("stderr.log");
    let idx = tempfile::tempdir().unwrap();
    let file = idx.path().join("kill.idx");
    let mut tree = KillTree::new(&root, 2500, seed);
    save(&root, &file);
    if old_delta {
        tree.change(false);
        refresh(&root, &file, &[]);
        if !delta_of(&file).exists() {
            println!("note: {name}: the small refresh wrote no FILE.delta");
        }
    }
    let old_want = expected(&root, KILL_QUERIES);
    assert_same_answers(
        &ask_file(&file, KILL_QUERIES).0,
        &old_want,
        &format!("{name}: old state"),
    );
    let old = snapshot(&file);
    tree.change(most);
    let new_want = expected(&root, KILL_QUERIES);
    assert!(old_want != new_want, "{name}: the change changed no answer");

    let mut args: Vec<OsString> = vec![root.clone().into()];
    args.push(if save_mode { "--save" } else { "--index" }.into());
    args.push(file.clone().into());
    args.push("--noprompt".into());
    let log = || fs::read_to_string(&stderr_log).unwrap_or_default();

    // A complete run from the old state, to time it.
    restore(&file, &old);
    let full = run_and_kill(&args, &file, &stderr_log, &Plan::Finish);
    assert!(
        full.status.success(),
        "{name}: complete run: {:?}\n{}",
        full.status,
        log()
    );
    assert_same_answers(
        &ask_file(&file, KILL_QUERIES).0,
        &new_want,
        &format!("{name}: complete run"),
    );
    let total = full.elapsed;
    let write_time = full.temporary_at.map(|t| total.saturating_sub(t));

    let mut rng = Rng::new(seed ^ 0x5EED);
    let (mut as_old, mut as_new, mut finished, mut temporary_seen) = (0, 0, 0, 0);
    for i in 0..env_number("STORE_KILLS", 16) {
        restore(&file, &old);
        // A quarter anywhere in the run, a quarter near its end, half
        // while it writes (after its temporary file appears), half of
        // those early in the write.
        let writing = write_time
            .unwrap_or(total / 4)
            .max(Duration::from_micros(200));
        let plan = match i % 4 {
            0 => Plan::After(rng.duration(Duration::ZERO, total * 11 / 10)),
            1 => Plan::After(rng.duration(total / 2, total * 21 / 20)),
            k => Plan::AfterTemporary {
                delay: rng.duration(Duration::ZERO, if k == 2 { writing } else { writing / 4 }),
                fallback: total * 3,
            },
        };
        let result = run_and_kill(&args, &file, &stderr_log, &plan);
        if !result.killed {
            assert!(
                result.status.success(),
                "{name}: run {i}: {:?}\n{}",
                result.status,
                log()
            );
            finished += 1;
        }
        temporary_seen += result.temporary_at.is_some() as u32;
        let out = indexer()
            .arg("--index")
            .arg(&file)
            .args(json_args(KILL_QUERIES))
            .output()
            .unwrap();
        let what = format!(
            "{name}: run {i} killed after {:?} (temporary seen at {:?})",
            result.elapsed, result.temporary_at
        );
        let got = answers_of(&out, &format!("{what}: --index FILE afterwards"));
        if got == new_want {
            as_new += 1;
        } else if got == old_want && result.killed {
            as_old += 1;
        } else {
            // Name the first difference from each state.
            let diff = |want: &[Value]| {
                let at = got.iter().zip(want).position(|(g, w)| g != w);
                format!(
                    "{} objects vs {}; first difference at {at:?}: got {:?}, want {:?}",
                    got.len(),
                    want.len(),
                    at.map(|i| &got[i]),
                    at.map(|i| &want[i])
                )
            };
            panic!(
                "{what}: answers are neither the old nor the new state\n  vs old: {}\n  vs new: {}",
                diff(&old_want),
                diff(&new_want)
            );
        }
    }
    let stale = temporaries(&file);
    if !stale.is_empty() {
        println!(
            "note: {name}: {} stale temporary files after SIGKILLs (allowed): {stale:?}",
            stale.len()
        );
    }
    // After the last kill, as it left things: a complete run gives the new state.
    let last = run_and_kill(&args, &file, &stderr_log, &Plan::Finish);
    assert!(
        last.status.success(),
        "{name}: run after the kills: {:?}\n{}",
        last.status,
        log()
    );
    assert_same_answers(
        &ask_file(&file, KILL_QUERIES).0,
        &new_want,
        &format!("{name}: complete run after the kills"),
    );
    println!(
        "{name}: complete run {total:?} (writing {write_time:?}); kills left the old state {as_old} times, \
         the new {as_new}; {finished} runs finished first; a temporary was seen in {temporary_seen} runs"
    );
}

#[test]
fn killed_save_leaves_the_old_or_the_new_index() {
    kill_scenario("--save, most files changed", true, false, true, 61);
}

#[test]
fn killed_save_over_an_index_with_a_delta_leaves_the_old_or_the_new_index() {
    kill_scenario("--save over FILE + FILE.delta", true, true, false, 62);
}

#[test]
fn killed_small_refresh_leaves_the_old_or_the_new_index() {
    kill_scenario("refresh, few files changed", false, false, false, 63);
}

#[test]
fn killed_large_refresh_leaves_the_old_or_the_new_index() {
    kill_scenario("refresh, most files changed", false, false, true, 64);
}

#[test]
fn killed_small_refresh_over_a_delta_leaves_the_old_or_the_new_index() {
    kill_scenario(
        "refresh over FILE.delta, few changed",
        false,
        true,
        false,
        65,
    );
}

#[test]
fn killed_large_refresh_over_a_delta_leaves_the_old_or_the_new_index() {
    kill_scenario(
        "refresh over FILE.delta, most changed",
        false,
        true,
        true,
        66,
    );
}

// ---------------------------------------------------------------------------
// 7. A refresh runs in the forked workers, and its answers do not depend on
// how many.

#[test]
fn refresh_answers_do_not_depend_on_workers() {
    let tree = tempfile::tempdir().unwrap();
    let idx = tempfile::tempdir().unwrap();
    let mut model = TreeModel::new(tree.path());
    let mut rng = Rng::new(71);
    // Many files against 17 edits: a refresh small enough to be kept as a
    // FILE.delta (where the implementation has one).
    for i in 0..400 {
        let folders: Vec<String> = (0..i % 3).map(|_| rng.pick(FOLDERS).to_string()).collect();
        let words = rng.below(50);
        model.add(&folders, &random_text(&mut rng, words));
    }
    let files: Vec<PathBuf> = ["w1.idx", "w3.idx"]
        .iter()
        .map(|n| idx.path().join(n))
        .collect();
    for file in &files {
        refresh(tree.path(), file, &[]);
    }
    let mut edits = Vec::new();
    for k in 0..8 {
        let words = rng.below(40);
        edits.push(Edit::Modify(k * 7, random_text(&mut rng, words)));
    }
    edits.extend([
        Edit::Add(vec!["new".into()], random_text(&mut rng, 20)),
        Edit::Add(vec![], "école added".as_bytes().to_vec()),
        Edit::Delete(3),
        Edit::Delete(30),
        Edit::Rename(11, vec!["moved".into(), "日本".into()]),
        Edit::Rename(40, vec![]),
        Edit::Touch(20),
        Edit::SameSize(21),
        Edit::Nested(vec!["a".into()], vec![random_text(&mut rng, 10)]),
    ]);
    for edit in &edits {
        model.apply(edit);
    }
    let index = reference::build_index(tree.path(), &[]);
    let queries = queries_for(&index, 72);
    let want = expected_json(
        &index,
        &queries.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    for (file, extra) in files
        .iter()
        .zip([&["--workers", "1"][..], &["--workers", "3", "--batch", "1"]])
    {
        let (got, _) = ask_refreshed(tree.path(), file, &queries, extra);
        assert_same_answers(&got, &want, &format!("refresh with {extra:?}"));
        println!("{extra:?}: FILE.delta kept: {}", delta_of(file).exists());
    }
}

/// A tree with `victim.txt` among ordinary files, indexed into FILE.
fn victim_tree(tree: &Path, file: &Path, clock: &mut Clock) {
    write_random_tree(tree, &mut Rng::new(73), 15, clock);
    write_file(
        tree,
        Path::new("docs/victim.txt"),
        b"victimword river\n",
        clock,
    );
    refresh(tree, file, &[]);
}

/// `DIR --index FILE --json -q '*'` with the fault hook killing any worker
/// that opens victim.txt (only once, if `marker` is given).
fn refresh_killing_victim_readers(tree: &Path, file: &Path, marker: Option<&Path>) -> Output {
    let mut cmd = indexer();
    cmd.arg(tree)
        .arg("--index")
        .arg(file)
        .args(["--workers", "2"])
        .args(json_args(&["*"]))
        .env("INDEXER_FAULT", "kill:victim");
    if let Some(marker) = marker {
        cmd.env("INDEXER_FAULT_ONCE", marker);
    }
    cmd.output().unwrap()
}

#[test]
fn refresh_reads_changed_files_in_worker_processes() {
    // The fault hook kills a worker as it opens a file whose path has
    // "victim": the marker appearing shows a forked worker read it.
    let tree = tempfile::tempdir().unwrap();
    let idx = tempfile::tempdir().unwrap();
    let file = idx.path().join("v.idx");
    let mut clock = Clock::new();
    victim_tree(tree.path(), &file, &mut clock);
    write_file(
        tree.path(),
        Path::new("docs/victim.txt"),
        b"victimword changed\n",
        &mut clock,
    );
    let marker = idx.path().join("fired");
    let out = refresh_killing_victim_readers(tree.path(), &file, Some(&marker));
    let got = answers_of(&out, "refresh with a worker killed once");
    assert!(
        marker.exists(),
        "the changed file was not read by a worker (the fault hook never fired)"
    );
    assert_same_answers(
        &got,
        &expected(tree.path(), &["*"]),
        "refresh after a retried worker",
    );
}

#[test]
fn refresh_does_not_reread_unchanged_files() {
    // A worker dies whenever it opens victim.txt; since victim.txt did not
    // change, the refresh must reuse it and still answer its words.
    let tree = tempfile::tempdir().unwrap();
    let idx = tempfile::tempdir().unwrap();
    let file = idx.path().join("v.idx");
    let mut clock = Clock::new();
    victim_tree(tree.path(), &file, &mut clock);
    write_file(
        tree.path(),
        Path::new("f2.txt"),
        b"other edit\n",
        &mut clock,
    );
    let out = refresh_killing_victim_readers(tree.path(), &file, None);
    let got = answers_of(&out, "refresh with victim.txt unreadable by workers");
    assert_same_answers(
        &got,
        &expected(tree.path(), &["*"]),
        "refresh must not re-read the unchanged victim.txt",
    );
}

#[test]
fn an_index_kept_inside_its_tree_is_not_indexed() {
    // `indexer . --index .index` is a natural way to keep one: the file and
    // its delta must not count as files of the tree, or every refresh
    // would see them changed.
    let tree = tempfile::tempdir().unwrap();
    let mut clock = Clock::new();
    let paths = write_random_tree(tree.path(), &mut Rng::new(11), 60, &mut clock);
    let file = tree.path().join(".index");
    refresh(tree.path(), &file, &[]);
    let edited = tree.path().join(&paths[0]);
    let mut text = fs::read(&edited).unwrap();
    text.extend_from_slice(b"\nfreshword\n");
    fs::write(&edited, text).unwrap();
    set_mtime(&edited, clock.next());
    let stderr = refresh(tree.path(), &file, &[]);
    assert_eq!(
        refresh_counts(&stderr, "one edit"),
        (paths.len() as u64 - 1, 1)
    );
    assert!(tree.path().join(".index.delta").exists(), "{stderr}");
    let stderr = refresh(tree.path(), &file, &[]);
    assert_eq!(refresh_counts(&stderr, "no edit"), (paths.len() as u64, 0));
    let got = answers_of(
        &indexer()
            .arg(tree.path())
            .arg("--index")
            .arg(&file)
            .args(json_args(&["*"]))
            .output()
            .unwrap(),
        "answers",
    );
    assert_same_answers(
        &got,
        &expected(tree.path(), &["*"]),
        "index inside the tree",
    );
}

#[test]
fn a_file_moved_over_another_with_its_times_kept_is_noticed() {
    // `mv a b` where both had the same size and mtime (as after `tar x` or
    // `cp -p`): only the inode and ctime tell that b changed.
    let tree = tempfile::tempdir().unwrap();
    let idx = tempfile::tempdir().unwrap();
    let file = idx.path().join("m.idx");
    for i in 0..20 {
        fs::write(tree.path().join(format!("f{i}")), format!("filler q{i}\n")).unwrap();
    }
    let (a, b) = (tree.path().join("a"), tree.path().join("b"));
    fs::write(&a, "apple\n").unwrap();
    fs::write(&b, "mango\n").unwrap();
    let then = SystemTime::now() - Duration::from_secs(86_400);
    set_mtime(&a, then);
    set_mtime(&b, then);
    refresh(tree.path(), &file, &[]);
    fs::rename(&a, &b).unwrap();
    let got = answers_of(
        &indexer()
            .arg(tree.path())
            .arg("--index")
            .arg(&file)
            .args(json_args(&["/.*/"]))
            .output()
            .unwrap(),
        "refresh after mv",
    );
    assert_same_answers(
        &got,
        &expected(tree.path(), &["/.*/"]),
        "mv with times kept",
    );
}

#[test]
fn files_whose_shown_paths_collide_keep_the_build_order_after_a_refresh() {
    // Two names that differ only in invalid UTF-8 bytes display alike; a
    // build orders them by their raw bytes, and so must a refresh.
    let tree = tempfile::tempdir().unwrap();
    let idx = tempfile::tempdir().unwrap();
    let file = idx.path().join("c.idx");
    for i in 0..40 {
        fs::write(
            tree.path().join(format!("f{i}.txt")),
            format!("filler w{i}\n"),
        )
        .unwrap();
    }
    let fe = tree.path().join(OsStr::from_bytes(b"a\xfe"));
    let ff = tree.path().join(OsStr::from_bytes(b"a\xff"));
    fs::write(&fe, "foo one\n").unwrap();
    fs::write(&ff, "\nfoo two\n").unwrap();
    refresh(tree.path(), &file, &[]);
    fs::write(&fe, "foo one\n\n\n").unwrap();
    set_mtime(&fe, SystemTime::now() + Duration::from_secs(5));
    let args = json_args(&["foo"]);
    let refreshed = answers_of(
        &indexer()
            .arg(tree.path())
            .arg("--index")
            .arg(&file)
            .args(&args)
            .output()
            .unwrap(),
        "refresh",
    );
    let fresh = answers_of(
        &indexer().arg(tree.path()).args(&args).output().unwrap(),
        "fresh",
    );
    assert_same_answers(&refreshed, &fresh, "colliding display paths");
}

#[test]
fn a_fifo_in_place_of_the_index_or_its_delta_is_refused_without_hanging() {
    let idx = tempfile::tempdir().unwrap();
    let fifo = idx.path().join("fifo.idx");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let out = indexer()
        .arg("--index")
        .arg(&fifo)
        .args(["--query", "a"])
        .output()
        .unwrap();
    assert_refused(&out, "a FIFO as the index");

    let tree = tempfile::tempdir().unwrap();
    fs::write(tree.path().join("a.txt"), "alpha\n").unwrap();
    let file = idx.path().join("x.idx");
    refresh(tree.path(), &file, &[]);
    let made = std::process::Command::new("mkfifo")
        .arg(idx.path().join("x.idx.delta"))
        .status()
        .unwrap();
    assert!(made.success());
    let out = indexer()
        .arg("--index")
        .arg(&file)
        .args(["--query", "a"])
        .output()
        .unwrap();
    assert_refused(&out, "a FIFO as the delta");
}

#[test]
fn saving_into_a_missing_folder_is_refused_before_building() {
    let tree = tempfile::tempdir().unwrap();
    fs::write(tree.path().join("a.txt"), "alpha\n").unwrap();
    let missing = tree.path().join("no/such/folder/x.idx");
    for flag in ["--save", "--index"] {
        let out = indexer()
            .arg(tree.path())
            .arg(flag)
            .arg(&missing)
            .arg("--noprompt")
            .output()
            .unwrap();
        assert_refused(&out, flag);
        assert!(
            !stderr_of(&out).contains("indexed"),
            "built before refusing: {}",
            stderr_of(&out)
        );
    }
}

#[test]
fn a_refresh_keeps_the_builds_excludes_unless_given_new_ones() {
    let tree = tempfile::tempdir().unwrap();
    let idx = tempfile::tempdir().unwrap();
    let file = idx.path().join("e.idx");
    fs::write(tree.path().join("kept.txt"), "alpha\n").unwrap();
    fs::create_dir(tree.path().join("target")).unwrap();
    fs::write(tree.path().join("target/out.txt"), "alphabuild\n").unwrap();
    refresh(tree.path(), &file, &["--exclude", "target"]);
    let query = json_args(&["alpha"]);
    let run = |extra: &[&str]| {
        let out = indexer()
            .arg(tree.path())
            .arg("--index")
            .arg(&file)
            .args(extra)
            .args(&query)
            .output()
            .unwrap();
        answers_of(&out, "refresh")
    };
    let fresh = |extra: &[&str]| {
        answers_of(
            &indexer()
                .arg(tree.path())
                .args(extra)
                .args(&query)
                .output()
                .unwrap(),
            "fresh",
        )
    };
    // Same command without --exclude: still excluded.
    assert_same_answers(
        &run(&[]),
        &fresh(&["--exclude", "target"]),
        "saved excludes kept",
    );
    // New globs replace the saved ones.
    assert_same_answers(
        &run(&["--exclude", "*.md"]),
        &fresh(&["--exclude", "*.md"]),
        "new excludes",
    );
}

#[test]
fn the_human_view_of_a_refreshed_index_reads_past_hidden_files() {
    // "common" occurs 2000 times in a.txt and a few times in z.txt; once
    // a.txt changes, the base's list of "common" starts with 2000 hidden
    // occurrences the bounded human view must read past to find the ten
    // it shows.
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    let mut clock = Clock::new();
    let many: String = (0..2000).map(|i| format!("common w{i}\n")).collect();
    write_file(&tree, Path::new("a.txt"), many.as_bytes(), &mut clock);
    write_file(
        &tree,
        Path::new("z.txt"),
        b"common common\ncommon\n",
        &mut clock,
    );
    let padding: String = (0..30).map(|i| format!("p{i} ")).collect();
    for k in 0..40 {
        write_file(
            &tree,
            Path::new(&format!("m{k}.txt")),
            padding.as_bytes(),
            &mut clock,
        );
    }
    let file = work.path().join("h.idx");
    refresh(&tree, &file, &[]);
    write_file(&tree, Path::new("a.txt"), b"gone\n", &mut clock);
    refresh(&tree, &file, &[]);
    assert!(delta_of(&file).exists(), "the refresh wrote no delta");
    let index = reference::build_index(&tree, &[]);
    // An opened index alone shows locations without text, paths from the
    // current folder (the tree here).
    let out = indexer()
        .current_dir(&tree)
        .arg("--index")
        .arg(&file)
        .args(["--query", "common", "--heading"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let how = reference::Human {
        heading: true,
        numbered: false,
        tree: None,
    };
    assert_eq!(got, reference::expected_human(&index, "common", false, how));
}

#[test]
fn a_damaged_path_refuses_only_the_answers_that_print_it() {
    // Since format version 3 the file table is checked by 4 KiB chunks as
    // paths are read: opening reads none of it, and an answer checks the
    // paths it prints before its first line. So a record damaged far from
    // the files an answer names leaves that answer whole, a count (which
    // prints no path) is answered, and an answer naming the damaged file
    // is refused with nothing printed.
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    let mut clock = Clock::new();
    let long = "a_rather_long_file_name_".repeat(3);
    for k in 0..300 {
        let rel = format!("dir{k:03}/{long}.txt");
        write_file(
            &tree,
            Path::new(&rel),
            format!("common word{k}\n").as_bytes(),
            &mut clock,
        );
    }
    let good_file = work.path().join("good.idx");
    save(&tree, &good_file);
    let good = fs::read(&good_file).unwrap();
    let victim = format!("dir299/{long}.txt");
    let starts: Vec<usize> = good
        .windows(victim.len())
        .enumerate()
        .filter(|(_, w)| *w == victim.as_bytes())
        .map(|(at, _)| at)
        .collect();
    assert_eq!(starts.len(), 1, "the path is stored once, in its record");
    let mut bytes = good.clone();
    bytes[starts[0] + 2] ^= 0x01; // dir299 -> dis299
    let bad_file = work.path().join("bad.idx");
    fs::write(&bad_file, &bytes).unwrap();

    let (want, _) = ask_file(&good_file, &["=word0", "word1"]);
    let (got, _) = ask_file(&bad_file, &["=word0", "word1"]);
    assert_eq!(
        got, want,
        "files far from the damaged record: answered whole"
    );

    let count = |file: &Path| {
        indexer()
            .arg("--index")
            .arg(file)
            .args(["--count", "--query", "=word299"])
            .output()
            .unwrap()
    };
    let (want, got) = (count(&good_file), count(&bad_file));
    assert!(got.status.success(), "count: {}", stderr_of(&got));
    assert_eq!(got.stdout, want.stdout, "a count prints no path");

    for args in [
        vec!["--json", "--query", "=word299"],
        vec!["--json", "--query", "common"],
        vec!["--query", "=word299"],
        vec!["-l", "--query", "common"],
        vec!["--json", "--query", "common", "--glob", "dir0*/**"],
    ] {
        let out = indexer()
            .arg("--index")
            .arg(&bad_file)
            .args(&args)
            .output()
            .unwrap();
        assert_refused(&out, &format!("{args:?} on a damaged path"));
        assert!(
            out.stdout.is_empty(),
            "{args:?}: printed before the refusal: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
