//! The binary's `--json` answers equal the independent reference in
//! `tests/reference` on `corpus/` and on randomized trees, for every
//! `--workers` and `--batch`.

mod reference;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::Path;

use assert_cmd::Command;
use proptest::prelude::*;
use reference::{
    assert_same_answers, expected_json, occurrences, parse_json_lines, query, Index, Location,
};

fn corpus() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/corpus"))
}

/// Runs `indexer ROOT --json --query Q...` with extra args; panics unless it
/// exits 0, printing its stderr.
fn run_json(root: &Path, queries: &[&str], extra: &[&str]) -> Vec<serde_json::Value> {
    run_json_with(root, queries, extra, None)
}

/// [`run_json`] with `INDEXER_TEST_LIMITS` set to `limits`.
fn run_json_with(
    root: &Path,
    queries: &[&str],
    extra: &[&str],
    limits: Option<&str>,
) -> Vec<serde_json::Value> {
    let mut cmd = Command::cargo_bin("indexer").unwrap();
    // The contract is every file: ignore files are a walk preference.
    cmd.arg(root)
        .arg("--json")
        .arg("--no-ignore")
        .args(extra)
        .write_stdin("");
    if let Some(limits) = limits {
        cmd.env("INDEXER_TEST_LIMITS", limits);
    }
    for q in queries {
        cmd.arg("--query").arg(q);
    }
    let out = cmd
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    let answers = parse_json_lines(&out.stdout);
    // Exit 0 when some query matched, 1 when none did (as grep and rg).
    let want = if answers.is_empty() { 1 } else { 0 };
    assert_eq!(
        out.status.code(),
        Some(want),
        "indexer {root:?} {queries:?} {extra:?}: {:?}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    answers
}

// ---------------------------------------------------------------------------
// The reference itself, checked against hand-worked examples.

fn occ(list: &[(&str, u64, u64)]) -> Vec<(String, u64, u64)> {
    list.iter()
        .map(|&(w, l, c)| (w.to_string(), l, c))
        .collect()
}

#[test]
fn reference_words_lines_and_byte_columns() {
    assert_eq!(
        occurrences("Foo_bar café\n  x".as_bytes()),
        occ(&[("foo_bar", 1, 1), ("café", 1, 9), ("x", 2, 3)])
    );
    // Column counts bytes: "é" is two.
    assert_eq!(
        occurrences("é b\n".as_bytes()),
        occ(&[("é", 1, 1), ("b", 1, 4)])
    );
    assert_eq!(occurrences(b""), occ(&[]));
    assert_eq!(occurrences(b"\n\n"), occ(&[]));
}

#[test]
fn reference_separators_crlf_tabs_punctuation() {
    assert_eq!(
        occurrences(b"a\r\nb\tc\n\n don't"),
        occ(&[
            ("a", 1, 1),
            ("b", 2, 1),
            ("c", 2, 3),
            ("don", 4, 2),
            ("t", 4, 6)
        ])
    );
    assert_eq!(
        occurrences(b"x+y=z __init__ 3.14"),
        occ(&[
            ("x", 1, 1),
            ("y", 1, 3),
            ("z", 1, 5),
            ("__init__", 1, 7),
            ("3", 1, 16),
            ("14", 1, 18)
        ])
    );
}

#[test]
fn reference_invalid_utf8_separates_words() {
    assert_eq!(
        occurrences(b"caf\xff\xfe\xc3\xa9 ok"),
        occ(&[("caf", 1, 1), ("é", 1, 6), ("ok", 1, 9)])
    );
    // A truncated sequence is invalid too; a NUL is just a separator.
    assert_eq!(
        occurrences(b"ab\xe2\x82cd\x00ef"),
        occ(&[("ab", 1, 1), ("cd", 1, 5), ("ef", 1, 8)])
    );
}

#[test]
fn reference_lowercases_unicode() {
    assert_eq!(
        occurrences("ÉCOLE Straße ΟΔΟΣ İx".as_bytes()),
        occ(&[
            ("école", 1, 1),
            ("straße", 1, 8),
            ("οδος", 1, 16),
            ("i\u{307}x", 1, 25)
        ])
    );
}

#[test]
fn reference_drops_runs_longer_than_64_bytes_as_written() {
    let at = |n: usize| "a".repeat(n);
    let text = format!("{} {} {}", at(63), at(64), at(65));
    assert_eq!(
        occurrences(text.as_bytes()),
        occ(&[(&at(63), 1, 1), (&at(64), 1, 65)])
    );
    // 32 two-byte characters are 64 bytes: kept; 33 are 66: dropped.
    let text = format!("{} {}", "é".repeat(32), "é".repeat(33));
    assert_eq!(occurrences(text.as_bytes()).len(), 1);
    // "İ" is 2 bytes but lowercases to 3: the length in the file decides.
    let text = format!("İ{}", "x".repeat(62));
    assert_eq!(text.len(), 64);
    let got = occurrences(text.as_bytes());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.len(), 65);
}

fn sample_index() -> Index {
    let loc = |path: &str, line, column| Location {
        path: path.to_string(),
        line,
        column,
    };
    let mut index = Index::new();
    index.insert("river".into(), vec![loc("a", 1, 1), loc("b/c", 2, 3)]);
    index.insert("rivers".into(), vec![loc("a", 3, 1)]);
    index.insert("driver".into(), vec![loc("a", 4, 1)]);
    index.insert("école".into(), vec![loc("f", 1, 1)]);
    index.insert("spin_lock_irq".into(), vec![loc("k", 9, 9)]);
    index
}

fn words_of(index: &Index, q: &str) -> Vec<String> {
    query(index, q)
        .unwrap()
        .into_iter()
        .map(|(w, _)| w)
        .collect()
}

#[test]
fn reference_query_forms() {
    let index = sample_index();
    assert_eq!(words_of(&index, "riv"), ["river", "rivers"]);
    assert_eq!(words_of(&index, "RIV"), ["river", "rivers"]);
    assert_eq!(words_of(&index, "*river*"), ["driver", "river", "rivers"]);
    assert_eq!(words_of(&index, "*iver"), ["driver", "river"]);
    assert_eq!(words_of(&index, "spin*irq"), ["spin_lock_irq"]);
    assert_eq!(words_of(&index, "/d?river/"), ["driver", "river"]);
    assert_eq!(words_of(&index, "/RIVERS?/"), ["river", "rivers"]);
    assert_eq!(words_of(&index, "/iver/"), Vec::<String>::new());
    assert_eq!(words_of(&index, "=river"), ["river"]);
    assert_eq!(words_of(&index, "=RIVERS"), ["rivers"]);
    assert_eq!(words_of(&index, "ÉC"), ["école"]);
    assert_eq!(words_of(&index, "zzz"), Vec::<String>::new());
    assert!(query(&index, "/(/").is_err());
}

#[test]
fn reference_json_shape() {
    let index = sample_index();
    let got = expected_json(&index, &["=river", "nothing"]);
    assert_eq!(
        got,
        vec![serde_json::json!({
            "query": "=river", "word": "river", "count": 2,
            "locations": [
                {"path": "a", "line": 1, "column": 1},
                {"path": "b/c", "line": 2, "column": 3},
            ],
        })]
    );
}

#[test]
fn reference_walk_skips_what_the_contract_skips() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let write = |rel: &str, bytes: &[u8]| {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, bytes).unwrap();
    };
    write("a.txt", b"text");
    write("sub/b.txt", b"text");
    write("sub/.git/config", b"text");
    write("x/.hg/store", b"text");
    write(".svn/entries", b"text");
    write("bin.dat", b"abc\0def");
    write("late.dat", &[b"a".repeat(8191), vec![0]].concat());
    write("far.txt", &[b"a ".repeat(4096), vec![0]].concat());
    write("empty", b"");
    write("target/out.txt", b"text");
    write("deep/target", b"file named target");
    write("logs/run.log", b"text");
    write("docs/a.md", b"text");
    write("docs/sub/b.md", b"text");
    symlink(root.join("a.txt"), root.join("link.txt")).unwrap();
    symlink(root.join("sub"), root.join("linkdir")).unwrap();
    let names = |ex: &[&str]| -> Vec<String> {
        let ex: Vec<String> = ex.iter().map(|s| s.to_string()).collect();
        reference::files(root, &ex)
            .into_iter()
            .map(|f| f.relative)
            .collect()
    };
    assert_eq!(
        names(&[]),
        [
            "a.txt",
            "deep/target",
            "docs/a.md",
            "docs/sub/b.md",
            "empty",
            "far.txt",
            "logs/run.log",
            "sub/b.txt",
            "target/out.txt"
        ]
    );
    assert_eq!(
        names(&["target", "*.log", "docs/*.md"]),
        ["a.txt", "docs/sub/b.md", "empty", "far.txt", "sub/b.txt"]
    );
    assert_eq!(
        names(&["docs/**"])
            .iter()
            .filter(|n| n.starts_with("docs"))
            .count(),
        0
    );
    assert_eq!(names(&["e?pty", "su*"]), names(&["empty", "sub"]));
}

// ---------------------------------------------------------------------------
// The binary on corpus/.

/// Every query form: prefix, glob, regex, exact, uppercase, non-ASCII, and
/// ones that match nothing.
const CORPUS_QUERIES: &[&str] = &[
    "river",
    "the",
    "a",
    "*ing",
    "*ow*",
    "spin*irq",
    "list_*",
    "*_*",
    "/[a-z]+s/",
    "/(bread|soup|stew)/",
    "/\\d+/",
    "/0x[0-9a-f]+/",
    "=river",
    "=the",
    "=école",
    "RIVER",
    "ÉCOLE",
    "=STRASSE",
    "straß",
    "éc",
    "οδ",
    "ΟΔΟΣ",
    // A final Σ lowercases to ς, yet the words it begins have σ there.
    "ΟΔΥΣ",
    "*ΔΥΣ*",
    "*Σ",
    "=ΟΔΥΣΣΕΥΣ",
    "ΣΟΦΟΣ",
    "мос",
    "İstanbul",
    "東京",
    "ｆｕｌｌ",
    "caf",
    "é",
    "aaaa",
    "ééé",
    "secret",
    "binaryword",
    "lateword",
    "afterzero",
    "beyond",
    "nulword",
    "hidden",
    "deep_tab",
    "carriage",
    "newline",
    "zzqqxxnothing",
    "=riv",
    "*",
];

#[test]
fn corpus_answers_equal_reference_for_every_workers_and_batch() {
    let index = reference::build_index(corpus(), &[]);
    let want = expected_json(&index, CORPUS_QUERIES);
    for workers in [1, 2, 3] {
        for batch in [1, 2, 7, 1000] {
            let (w, b) = (workers.to_string(), batch.to_string());
            let got = run_json(corpus(), CORPUS_QUERIES, &["--workers", &w, "--batch", &b]);
            assert_same_answers(&got, &want, &format!("corpus --workers {w} --batch {b}"));
        }
    }
}

#[test]
fn corpus_default_workers_and_batch_equal_reference() {
    let index = reference::build_index(corpus(), &[]);
    let got = run_json(corpus(), CORPUS_QUERIES, &[]);
    assert_same_answers(
        &got,
        &expected_json(&index, CORPUS_QUERIES),
        "corpus (defaults)",
    );
}

/// Asserts that `root`'s answers to `queries` are `want` for every
/// (`--workers`, `--batch`) of `settings`, calling `before` ahead of each
/// build.
fn assert_answers_with(
    root: &Path,
    queries: &[&str],
    want: &[serde_json::Value],
    settings: &[(&str, &str)],
    what: &str,
    before: impl Fn(),
) {
    for (workers, batch) in settings {
        before();
        let got = run_json(root, queries, &["--workers", workers, "--batch", batch]);
        assert_same_answers(
            &got,
            want,
            &format!("{what}, --workers {workers} --batch {batch}"),
        );
    }
}

/// Lets go of every page `root`'s files have in the page cache (written
/// back first), as a cold tree would be; clean pages of a file system
/// that keeps them regardless stay.
fn drop_from_page_cache(root: &Path) {
    use std::os::fd::AsRawFd;
    for entry in walkdir::WalkDir::new(root) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            let file = fs::File::open(entry.path()).unwrap();
            file.sync_all().unwrap();
            // SAFETY: advice on an open descriptor.
            unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        }
    }
}

#[test]
fn a_tree_out_of_the_page_cache_answers_like_the_reference() {
    // Enough files in a batch for a worker to fetch files ahead once the
    // first misses the page cache (see `worker::FetchAhead`), some of them
    // empty or binary.
    let dir = tempfile::tempdir().unwrap();
    let words = [
        "river",
        "école",
        "stone",
        "Water",
        "x_1",
        "riverbank",
        "deep_tab",
    ];
    let mut state = 7u64;
    for f in 0..240u32 {
        let mut text = String::new();
        for k in 0..(f % 37) * 11 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            text.push_str(words[(state >> 33) as usize % words.len()]);
            text.push(if k % 9 == 8 { '\n' } else { ' ' });
        }
        let path = dir.path().join(format!("d{}/f{f}.txt", f % 5));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        match f % 60 {
            13 => fs::write(&path, b"bin\0ary river").unwrap(),
            _ => fs::write(&path, text).unwrap(),
        }
    }
    let queries = ["river", "*rive*", "=école", "water", "x_1", "stone"];
    let index = reference::build_index(dir.path(), &[]);
    let want = expected_json(&index, &queries);
    let settings = [("1", "1000"), ("2", "7"), ("3", "60")];
    assert_answers_with(
        dir.path(),
        &queries,
        &want,
        &settings,
        "a cold tree",
        || drop_from_page_cache(dir.path()),
    );
}

#[test]
fn delay_does_not_change_answers() {
    let index = reference::build_index(corpus(), &[]);
    let queries = ["river", "*ing", "=école"];
    let got = run_json(
        corpus(),
        &queries,
        &["--delay", "0.02", "--workers", "3", "--batch", "4"],
    );
    assert_same_answers(&got, &expected_json(&index, &queries), "--delay 0.02");
}

#[test]
fn degenerate_queries_follow_the_same_rules() {
    // Bare `=`, `/`, `//`, a glob of only stars, `=` before a star (exact
    // wins), a lone backslash. (An empty query is refused: see the CLI tests.)
    let queries = [
        "=", "/", "//", "**", "=*", "/.*/", "a*b*", "\\", "ÉCOLE*", "*_",
    ];
    let index = reference::build_index(corpus(), &[]);
    let got = run_json(corpus(), &queries, &[]);
    assert_same_answers(&got, &expected_json(&index, &queries), "degenerate queries");
}

#[test]
fn large_files_and_long_posting_lists_equal_reference() {
    // Partial maps far larger than a pipe buffer, and one word with 300,000
    // locations spread over every batch.
    let dir = tempfile::tempdir().unwrap();
    for f in 0..24 {
        let lines = if f % 6 == 0 { 60_000 } else { 500 + f * 37 };
        let text: String = (0..lines)
            .map(|i| {
                format!(
                    "common w{}_{} Ünique{} {:x}\n",
                    i % 997,
                    f % 5,
                    i * f,
                    i * 31 + f
                )
            })
            .collect();
        let path = dir.path().join(format!("d{}/f{f}.txt", f % 4));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    let index = reference::build_index(dir.path(), &[]);
    assert!(index["common"].len() > 250_000);
    let queries = ["=common", "w99", "*_3", "ünique12", "/[0-9a-f]{5}/"];
    let want = expected_json(&index, &queries);
    let settings = [("1", "1000"), ("4", "1"), ("3", "5")];
    assert_answers_with(dir.path(), &queries, &want, &settings, "large tree", || {});
}

#[test]
fn regex_queries_keep_the_case_of_their_escapes() {
    // `\D` is "not a digit"; lowercased it would become `\d`.
    let queries = ["/\\D+/", "/[A-Z]+_\\w+/", "/\\w*\\W?/"];
    let index = reference::build_index(corpus(), &[]);
    let got = run_json(corpus(), &queries, &[]);
    assert_same_answers(&got, &expected_json(&index, &queries), "regex escapes");
}

// ---------------------------------------------------------------------------
// The binary on randomized trees.

/// One piece of a generated file.
#[derive(Debug, Clone)]
enum Piece {
    Word(String),
    Bytes(Vec<u8>),
}

fn word_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z]{1,8}",
        2 => "[A-Za-z_][A-Za-z0-9_]{0,10}",
        2 => prop::sample::select(vec![
            "ÉCOLE", "école", "Straße", "STRASSE", "ΟΔΟΣ", "οδός", "Москва", "МОСКВА",
            "İstanbul", "DİYARBAKIR", "東京", "ｆｕｌｌ", "Ǆemal", "ﬁn", "Ⅻ", "½", "naïve",
            "ÆØÅ", "café", "x²",
        ]).prop_map(String::from),
        1 => "[a-zé]{1,4}",
        // Runs around the 64-byte limit, ASCII and two-byte characters.
        1 => (63usize..=66).prop_map(|n| "q".repeat(n)),
        1 => (63usize..=66).prop_map(|n| format!("{}{}", "Z".repeat(n - 1), "_")),
        1 => (31usize..=34).prop_map(|n| "é".repeat(n)),
        1 => (62usize..=64).prop_map(|n| format!("İ{}", "k".repeat(n - 2))),
    ]
}

fn piece_strategy() -> impl Strategy<Value = Piece> {
    prop_oneof![
        6 => word_strategy().prop_map(Piece::Word),
        3 => prop::sample::select(vec![" ", " ", "\n", "\r\n", "\t", ", ", ". ", "-", "'", "\n\n", "  "])
            .prop_map(|s| Piece::Bytes(s.as_bytes().to_vec())),
        1 => prop::sample::select(vec![
            &b"\xff"[..], b"\xfe\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\x80", b"\xc0\xaf",
        ]).prop_map(|b| Piece::Bytes(b.to_vec())),
    ]
}

#[derive(Debug, Clone)]
enum Content {
    Text(Vec<Piece>),
    Empty,
    /// Text with a NUL somewhere in its first 8192 bytes.
    Binary(Vec<Piece>, usize),
}

fn content_strategy() -> impl Strategy<Value = Content> {
    prop_oneof![
        8 => prop::collection::vec(piece_strategy(), 0..60).prop_map(Content::Text),
        1 => Just(Content::Empty),
        1 => (prop::collection::vec(piece_strategy(), 0..30), 0usize..200)
            .prop_map(|(p, at)| Content::Binary(p, at)),
    ]
}

impl Content {
    fn bytes(&self) -> Vec<u8> {
        let join = |pieces: &[Piece]| -> Vec<u8> {
            let mut out = Vec::new();
            for (i, p) in pieces.iter().enumerate() {
                match p {
                    Piece::Word(w) => {
                        // Keep adjacent words apart so runs stay as generated.
                        if i > 0 && matches!(pieces[i - 1], Piece::Word(_)) {
                            out.push(b' ');
                        }
                        out.extend_from_slice(w.as_bytes());
                    }
                    Piece::Bytes(b) => out.extend_from_slice(b),
                }
            }
            out
        };
        match self {
            Content::Text(p) => join(p),
            Content::Empty => Vec::new(),
            Content::Binary(p, at) => {
                let mut b = join(p);
                let at = (*at).min(b.len());
                b.insert(at, 0);
                b
            }
        }
    }
}

#[derive(Debug, Clone)]
struct FileSpec {
    /// Folder names from the root; may include `.git`, `.hg`, `.svn`.
    folders: Vec<String>,
    content: Content,
}

fn folder_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(vec!["src", "docs", "a", "b", "Ünïcode", "deep", "x y", "日本"])
            .prop_map(String::from),
        1 => prop::sample::select(vec![".git", ".hg", ".svn", ".hidden"]).prop_map(String::from),
    ]
}

fn file_strategy() -> impl Strategy<Value = FileSpec> {
    (
        prop::collection::vec(folder_strategy(), 0..4),
        content_strategy(),
    )
        .prop_map(|(folders, content)| FileSpec { folders, content })
}

#[derive(Debug, Clone)]
struct TreeSpec {
    files: Vec<FileSpec>,
    /// (file index, kind): 0 = link to a file, 1 = link to its folder,
    /// 2 = dangling link.
    links: Vec<(usize, u8)>,
    /// Selectors for queries: (word index, form).
    picks: Vec<(usize, u8, usize)>,
    workers: usize,
    batch: usize,
}

fn tree_strategy() -> impl Strategy<Value = TreeSpec> {
    (
        prop::collection::vec(file_strategy(), 1..25),
        prop::collection::vec((any::<usize>(), 0u8..3), 0..4),
        prop::collection::vec((any::<usize>(), 0u8..6, 1usize..6), 4..8),
        1usize..=4,
        prop_oneof![1usize..=5, Just(1000usize)],
    )
        .prop_map(|(files, links, picks, workers, batch)| TreeSpec {
            files,
            links,
            picks,
            workers,
            batch,
        })
}

/// Writes the tree; file names are unique (`f{i}`), some not valid UTF-8.
fn write_tree(root: &Path, spec: &TreeSpec) {
    let mut paths = Vec::new();
    for (i, file) in spec.files.iter().enumerate() {
        let mut dir = root.to_path_buf();
        for f in &file.folders {
            dir.push(f);
        }
        fs::create_dir_all(&dir).unwrap();
        let path = if i % 7 == 3 {
            // Not UTF-8, yet unique once the bad byte becomes U+FFFD.
            let name = [b"f", i.to_string().as_bytes(), b"\xff.txt"].concat();
            dir.join(std::ffi::OsStr::from_bytes(&name))
        } else {
            dir.join(format!("f{i}.txt"))
        };
        fs::write(&path, file.content.bytes()).unwrap();
        paths.push(path);
    }
    for (n, &(which, kind)) in spec.links.iter().enumerate() {
        let target = &paths[which % paths.len()];
        let link = root.join(format!("link{n}"));
        let _ = match kind {
            0 => symlink(target, &link),
            1 => symlink(target.parent().unwrap(), &link),
            _ => symlink(root.join("does-not-exist"), &link),
        };
    }
}

/// Queries made from words really in the index, plus one that matches nothing.
fn queries_for(index: &Index, picks: &[(usize, u8, usize)]) -> Vec<String> {
    let words: Vec<&String> = index.keys().collect();
    let mut out = vec!["zzqqxx_nothing".to_string()];
    if words.is_empty() {
        return out;
    }
    for &(i, form, len) in picks {
        let word = words[i % words.len()];
        let chars: Vec<char> = word.chars().collect();
        let head: String = chars.iter().take(len).collect();
        let q = match form {
            0 => head,
            1 => head.to_uppercase(),
            2 => format!("={word}"),
            3 => format!("*{}*", chars.iter().skip(1).take(len).collect::<String>()),
            4 => format!("{head}*{}", chars.last().unwrap()),
            _ => format!("/{}.*/", regex::escape(&head)),
        };
        out.push(q);
    }
    out
}

proptest! {
    // 24 cases keep the file under a minute; PROPTEST_CASES=500 for a deeper run.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(24)
    ))]

    #[test]
    fn random_trees_answer_like_the_reference(spec in tree_strategy()) {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path(), &spec);
        let index = reference::build_index(dir.path(), &[]);
        let queries = queries_for(&index, &spec.picks);
        let queries: Vec<&str> = queries.iter().map(String::as_str).collect();
        let want = expected_json(&index, &queries);
        let (w, b) = (spec.workers.to_string(), spec.batch.to_string());
        let got = run_json(dir.path(), &queries, &["--workers", &w, "--batch", &b]);
        assert_same_answers(&got, &want, &format!("random tree, --workers {w} --batch {b}, queries {queries:?}"));
    }
}

/// Sizes to index a tree within: a `--memory` budget (tiny ones send every
/// run to disk) and internal limits made small (`INDEXER_TEST_LIMITS`), so
/// runs are cut inside files, files read in windows and large ones in parts.
#[derive(Debug, Clone)]
struct Squeeze {
    memory: &'static str,
    limits: String,
}

fn squeeze_strategy() -> impl Strategy<Value = Squeeze> {
    (
        prop::sample::select(vec!["1K", "8K", "64K", "1G"]),
        prop::sample::select(vec!["8K", "9K", "1M"]),
        prop::sample::select(vec!["1K", "16K", "1G"]),
        prop::sample::select(vec!["4K", "16K", "1G"]),
    )
        .prop_map(|(memory, window, arena, split)| Squeeze {
            memory,
            limits: format!("window={window},arena={arena},split={split}"),
        })
}

/// A file long enough to be read in several windows and cut into parts:
/// random pieces repeated, with newlines now and then.
fn big_file_strategy() -> impl Strategy<Value = Vec<u8>> {
    (prop::collection::vec(piece_strategy(), 1..80), 20usize..200).prop_map(|(pieces, times)| {
        let one = Content::Text(pieces).bytes();
        let mut out = Vec::new();
        for k in 0..times {
            out.extend_from_slice(&one);
            out.push(if k % 3 == 0 { b'\n' } else { b' ' });
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(16)
    ))]

    /// Whatever the memory budget and internal limits, with any `--batch`
    /// and `--workers`, answers equal the reference's: results never
    /// depend on how the work was cut or whether it went through the disk.
    #[test]
    fn random_trees_within_any_memory_answer_like_the_reference(
        spec in tree_strategy(),
        big in big_file_strategy(),
        squeeze in squeeze_strategy(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path(), &spec);
        fs::write(dir.path().join("big.txt"), &big).unwrap();
        let index = reference::build_index(dir.path(), &[]);
        let queries = queries_for(&index, &spec.picks);
        let mut queries: Vec<&str> = queries.iter().map(String::as_str).collect();
        queries.push("*");
        let want = expected_json(&index, &queries);
        let (w, b) = (spec.workers.to_string(), spec.batch.to_string());
        let got = run_json_with(
            dir.path(),
            &queries,
            &["--workers", &w, "--batch", &b, "--memory", squeeze.memory],
            Some(&squeeze.limits),
        );
        assert_same_answers(
            &got,
            &want,
            &format!("--workers {w} --batch {b} --memory {} {}", squeeze.memory, squeeze.limits),
        );
    }
}
