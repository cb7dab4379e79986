//! The command line: bad input, the summary, closed pipes, odd files in the
//! tree, the human view, `--exclude`, and workers that crash.

mod reference;
mod support;

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use reference::{expected_json, parse_json_lines, Index};
use support::{corpus, indexer, stderr_of, stdout_lines, write};

const TIMEOUT: Duration = Duration::from_secs(60);

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Exit code 2 and exactly one line on stderr, starting `indexer: `.
fn assert_bad_input(out: &Output, what: &str) {
    let stderr = stderr_of(out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{what}: exit status; stderr:\n{stderr}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: want one line on stderr, got:\n{stderr}"
    );
    assert!(lines[0].starts_with("indexer: "), "{what}: {:?}", lines[0]);
    assert!(out.stdout.is_empty(), "{what}: stdout not empty");
}

/// The number the summary gives for `key` (e.g. "indexed", "skipped",
/// "failed"): the count written just before or just after the word.
fn summary_count(stderr: &str, key: &str) -> Option<u64> {
    let re = regex::Regex::new(&format!(
        r"(?i)(\d+)\s+(?:files?\s+)?{key}|{key}[a-z ]*?[:=]?\s+(\d+)\b"
    ))
    .unwrap();
    let caps = re.captures(stderr)?;
    caps.get(1).or(caps.get(2))?.as_str().parse().ok()
}

fn assert_json_equals(out: &Output, want: &[serde_json::Value], what: &str) {
    assert_json_with_code(out, want, what, 0);
}

/// Like [`assert_json_equals`], for a run that ends with exit code `code`.
fn assert_json_with_code(out: &Output, want: &[serde_json::Value], what: &str, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: {:?}\nstderr:\n{}",
        out.status,
        stderr_of(out)
    );
    let got = parse_json_lines(&out.stdout);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "{what}: object {i} differs (got, then want)");
    }
    assert_eq!(got.len(), want.len(), "{what}: number of objects");
}

// ---------------------------------------------------------------------------
// Bad input.

#[test]
fn nonexistent_path_is_bad_input() {
    let out = indexer()
        .arg("/nonexistent/indexer-test")
        .arg("--noprompt")
        .output()
        .unwrap();
    assert_bad_input(&out, "nonexistent path");
}

#[test]
fn file_path_is_bad_input() {
    let out = indexer()
        .arg(corpus().join("README.md"))
        .arg("--noprompt")
        .output()
        .unwrap();
    assert_bad_input(&out, "a file, not a directory");
}

#[test]
fn bad_option_values_are_bad_input() {
    for args in [
        &["--workers", "0"][..],
        &["--workers", "many"],
        &["--batch", "x"],
        &["--delay", "soon"],
    ] {
        let out = indexer()
            .arg(corpus())
            .args(args)
            .arg("--noprompt")
            .output()
            .unwrap();
        assert_bad_input(&out, &format!("{args:?}"));
    }
}

#[test]
fn invalid_regex_query_is_bad_input() {
    for extra in [&["--json"][..], &[]] {
        let out = indexer()
            .arg(corpus())
            .args(["--query", "/(unclosed/"])
            .args(extra)
            .output()
            .unwrap();
        assert_bad_input(&out, &format!("invalid regex {extra:?}"));
    }
    // The reason is the parser's, said plainly; an oversized pattern says
    // what limit it passed.
    for (query, reason) in [
        ("/(unclosed/", "unclosed group"),
        ("/[z-a]/", "invalid character class range"),
        (
            "/a{9999}{9999}/",
            "the pattern compiles to more than 64 MiB",
        ),
    ] {
        let out = indexer()
            .arg(corpus())
            .args(["--query", query])
            .output()
            .unwrap();
        assert_bad_input(&out, query);
        let stderr = stderr_of(&out);
        assert!(
            stderr.starts_with(&format!("indexer: invalid query {query:?}: {reason}")),
            "{query}: {stderr}"
        );
    }
}

/// Runs the binary as `nobody`, for whom mode 000 does deny reads.
/// As root, through `setpriv` (util-linux, which `.ci/run` installs): a
/// missing tool fails the test rather than skip it.
fn as_nobody(args: &[&std::ffi::OsStr]) -> Output {
    let bin = assert_cmd::cargo::cargo_bin("indexer");
    if !is_root() {
        let mut cmd = std::process::Command::new(&bin);
        return cmd.args(args).stdin(Stdio::null()).output().unwrap();
    }
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
    cmd.arg(&bin).args(args).stdin(Stdio::null());
    match cmd.output() {
        Ok(out) => out,
        Err(e) => panic!("setpriv is needed to drop root (apt-get install util-linux): {e}"),
    }
}

/// A temporary tree `nobody` can walk into (tempdir makes 0700 folders).
fn open_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[test]
fn unreadable_directory_is_bad_input() {
    let dir = open_tempdir();
    let locked = dir.path().join("locked");
    fs::create_dir(&locked).unwrap();
    write(&locked, "a.txt", b"secret words");
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    let out = as_nobody(&[locked.as_os_str(), "--noprompt".as_ref()]);
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
    assert_bad_input(&out, "unreadable directory");
}

#[test]
fn unreadable_files_and_folders_inside_are_counted_not_fatal() {
    let dir = open_tempdir();
    let root = dir.path();
    write(root, "ok.txt", b"visible words here");
    write(root, "locked.txt", b"hidden words");
    write(root, "closed/inner.txt", b"hidden words");
    let mode =
        |p: &str, m| fs::set_permissions(root.join(p), fs::Permissions::from_mode(m)).unwrap();
    for f in ["ok.txt", "locked.txt", "closed/inner.txt"] {
        mode(f, 0o644);
    }
    mode("closed", 0o755);
    mode("locked.txt", 0o000);
    mode("closed", 0o000);
    let out = as_nobody(&[
        root.as_os_str(),
        "--query".as_ref(),
        "*".as_ref(),
        "--json".as_ref(),
        "--verbose".as_ref(),
    ]);
    mode("closed", 0o755);
    // Both are named, with the system's reason, in the summary's list.
    let stderr = stderr_of(&out);
    for unreadable in ["closed", "locked.txt"] {
        assert!(
            stderr.contains(&format!("unreadable: {unreadable}: Permission denied")),
            "{unreadable} not reported:\n{stderr}"
        );
    }
    let mut want = Index::new();
    for (word, column) in [("visible", 1), ("words", 9), ("here", 15)] {
        want.insert(
            word.to_string(),
            vec![reference::Location {
                path: "ok.txt".into(),
                line: 1,
                column,
            }],
        );
    }
    assert_json_equals(
        &out,
        &expected_json(&want, &["*"]),
        "unreadable entries inside the tree",
    );
}

// ---------------------------------------------------------------------------
// Normal runs.

#[test]
fn noprompt_prints_a_summary_and_exits() {
    let out = indexer().arg(corpus()).arg("--noprompt").output().unwrap();
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{:?}\n{stderr}", out.status);
    assert!(out.stdout.is_empty(), "--noprompt printed on stdout");
    let files = reference::files(&corpus(), &[]).len() as u64;
    assert_eq!(
        summary_count(&stderr, "indexed"),
        Some(files),
        "files indexed in:\n{stderr}"
    );
    assert_eq!(
        summary_count(&stderr, "skipped"),
        Some(2),
        "binary files skipped in:\n{stderr}"
    );
}

#[test]
fn no_progress_line_when_stderr_is_not_a_terminal() {
    let out = indexer()
        .arg(corpus())
        .args(["--noprompt", "--delay", "0.05", "--batch", "4"])
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains('\r') && !stderr.contains('\x1b'),
        "progress output on a pipe:\n{stderr:?}"
    );
}

#[test]
fn no_match_prints_nothing_in_json_and_says_so_in_the_human_view() {
    // As grep and rg: exit 1 when nothing matched, stdout left to matches.
    for args in [&["--json"][..], &[]] {
        let out = indexer()
            .arg(corpus())
            .args(["--query", "zzqqxx"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            out.stdout.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            stderr_of(&out).contains("no words match \"zzqqxx\""),
            "{}",
            stderr_of(&out)
        );
    }
    // One query matching is enough for exit 0.
    let out = indexer()
        .arg(corpus())
        .args(["--query", "zzqqxx", "--query", "danube", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    // An empty query is refused.
    let out = indexer()
        .arg(corpus())
        .args(["--query", " ", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// `want` appears in `got` as consecutive lines (headers between queries
/// are the binary's business).
fn assert_contains_lines(got: &str, want: &[String], what: &str) {
    let got: Vec<&str> = got.lines().collect();
    let found = (0..=got.len().saturating_sub(want.len())).any(|start| {
        got[start..].len() >= want.len() && got[start..start + want.len()] == want[..]
    });
    assert!(
        found,
        "{what}: expected these lines in order:\n{}\n--- got:\n{}",
        want.join("\n"),
        got.join("\n")
    );
}

#[test]
fn human_view_is_bounded_and_all_lifts_the_bounds() {
    let index = reference::build_index(&corpus(), &[]);
    // "w" matches more than 20 words, some with over 10 locations.
    let w = reference::query(&index, "w").unwrap();
    assert!(w.len() > 20 && w.iter().any(|(_, l)| l.len() > 10));
    for all in [false, true] {
        let mut cmd = indexer();
        // Paths are shown from the current folder: the tree itself here.
        cmd.current_dir(corpus()).arg(corpus()).args([
            "--heading",
            "--query",
            "w",
            "--query",
            "danube",
        ]);
        if all {
            cmd.arg("--all");
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let tree = corpus();
        let how = reference::Human::headed(&tree);
        let want = reference::expected_human(&index, "w", all, how);
        let at = |w: &[String]| stdout.find(&w.join("\n")).unwrap_or(usize::MAX);
        assert_contains_lines(&stdout, &want, &format!("--query w (all: {all})"));
        let danube = reference::expected_human(&index, "danube", all, how);
        assert_contains_lines(&stdout, &danube, "--query danube");
        assert!(at(&want) < at(&danube), "queries answered in order");
    }
}

#[test]
fn exclude_skips_files_folders_and_paths() {
    let excludes = [
        "*.log",
        "international",
        "code/*/*.py",
        "e?ge",
        "essays/**/notes",
    ];
    let excludes: Vec<String> = excludes.iter().map(|s| s.to_string()).collect();
    let index = reference::build_index(&corpus(), &excludes);
    assert!(!reference::files(&corpus(), &excludes)
        .iter()
        .any(|f| f.relative.ends_with(".py") || f.relative.contains("edge")));
    let mut cmd = indexer();
    cmd.arg(corpus()).args(["--query", "*", "--json"]);
    for e in &excludes {
        cmd.arg("--exclude").arg(e);
    }
    let out = cmd.output().unwrap();
    assert_json_equals(&out, &expected_json(&index, &["*"]), "--exclude");
}

#[test]
fn exclude_globs_match_like_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for rel in [
        "a/b.txt",
        "a-c.txt",
        "a b.txt",
        "A.txt",
        "foo",
        "x/foo/z.txt",
        "x/y/foo.md",
        "deep/a/b/c.log",
    ] {
        write(root, rel, b"word\n");
    }
    for glob in [
        "**/foo",
        "**/*.txt",
        "/a",
        "./x/",
        "deep/",
        "x/**",
        "*",
        "a",
        "a/*",
        "?.txt",
        "*.txt",
        "a?c.txt",
        "x/*/z.txt",
        "**",
        "*/b.txt",
        "foo",
        "foo*",
        "*.log",
        "deep/**/c.log",
        "[a]",
        "a b.txt",
        "X",
    ] {
        let excludes = [glob.to_string()];
        let index = reference::build_index(root, &excludes);
        let out = indexer()
            .arg(root)
            .args(["--query", "*", "--json", "--exclude", glob])
            .output()
            .unwrap();
        let want = expected_json(&index, &["*"]);
        // Nothing left to match: exit 1, as grep.
        let code = if want.is_empty() { 1 } else { 0 };
        assert_json_with_code(&out, &want, &format!("--exclude {glob:?}"), code);
    }
}

#[test]
fn vcs_folders_are_never_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for rel in [
        ".git/HEAD",
        "sub/.hg/store",
        "a/b/.svn/entries",
        ".gitignore",
        "src/.git_keep",
    ] {
        write(root, rel, format!("vcsword in {rel}\n").as_bytes());
    }
    let index = reference::build_index(root, &[]);
    assert_eq!(index["vcsword"].len(), 2);
    let out = indexer()
        .arg(root)
        .args(["--query", "*", "--json"])
        .output()
        .unwrap();
    assert_json_equals(&out, &expected_json(&index, &["*"]), "VCS folders");
}

// ---------------------------------------------------------------------------
// Odd outputs and odd files.

/// A tree whose `--json` answer to "w" is several megabytes.
fn big_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in 0..200 {
        let text: String = (0..2000).map(|i| format!("w{} ", i % 500)).collect();
        write(
            dir.path(),
            &format!("d{}/f{f}.txt", f % 10),
            text.as_bytes(),
        );
    }
    dir
}

/// Answers of hundreds of locations per word across many files, printed
/// in pages with each file's path escaped once per run of locations in it:
/// every location, with its path, as the reference gives it, in memory and
/// from a saved index, for words that share files and a query repeated.
#[test]
fn large_json_answers_equal_the_reference() {
    let dir = big_tree();
    let index = reference::build_index(dir.path(), &[]);
    let queries = ["w1", "w10*", "*99", "w1"];
    let want = expected_json(&index, &queries);
    let saved = tempfile::tempdir().unwrap();
    let file = saved.path().join("big.idx");
    let mut built = indexer();
    built
        .arg(dir.path())
        .arg("--save")
        .arg(&file)
        .arg("--noprompt");
    assert!(built.output().unwrap().status.success());
    let ask = |cmd: &mut assert_cmd::Command| {
        for q in queries {
            cmd.args(["--query", q]);
        }
        cmd.arg("--json").output().unwrap()
    };
    let in_memory = ask(indexer().arg(dir.path()));
    assert_json_equals(&in_memory, &want, "big tree, in memory");
    let opened = ask(indexer().arg("--index").arg(&file));
    assert_json_equals(&opened, &want, "big tree, saved index");
}

#[test]
fn closed_stdout_ends_quietly() {
    let dir = big_tree();
    for extra in [&["--json"][..], &["--all"]] {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("indexer"))
            .arg(dir.path())
            .args(["--query", "w"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut head = [0u8; 10];
        stdout.read_exact(&mut head).unwrap();
        drop(stdout); // like `| head -c 10`
        let mut stderr_pipe = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr_pipe.read_to_string(&mut s);
            s
        });
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > TIMEOUT {
                let _ = child.kill();
                panic!("indexer {extra:?} did not end after its stdout closed");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = reader.join().unwrap();
        assert!(
            !stderr.contains("panicked"),
            "{extra:?}: panic on closed stdout:\n{stderr}"
        );
        assert!(
            status.success() || status.signal() == Some(libc::SIGPIPE),
            "{extra:?}: want exit 0 or SIGPIPE, got {status:?}\n{stderr}"
        );
    }
}

#[test]
fn fifo_and_socket_in_the_tree_are_skipped_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "a.txt", b"plain text beside a fifo\n");
    write(root, "sub/b.txt", b"more text\n");
    let made = std::process::Command::new("mkfifo")
        .arg(root.join("sub/pipe"))
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo");
    let _socket = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
    let index = reference::build_index(root, &[]);
    let out = indexer()
        .arg(root)
        .args(["--query", "*", "--json", "--workers", "2", "--batch", "1"])
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    assert_json_equals(&out, &expected_json(&index, &["*"]), "tree with a FIFO");
    let stderr = stderr_of(&out);
    assert_eq!(summary_count(&stderr, "indexed"), Some(2), "{stderr}");
    assert_eq!(
        summary_count(&stderr, "skipped"),
        Some(2),
        "FIFO and socket skipped:\n{stderr}"
    );
}

#[test]
fn symlinks_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "real/a.txt", b"linked words\n");
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "o.txt", b"outside words\n");
    std::os::unix::fs::symlink(root.join("real/a.txt"), root.join("file_link")).unwrap();
    std::os::unix::fs::symlink(root.join("real"), root.join("dir_link")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("out_link")).unwrap();
    std::os::unix::fs::symlink(root, root.join("real/loop")).unwrap();
    let index = reference::build_index(root, &[]);
    assert_eq!(index.len(), 2);
    let out = indexer()
        .arg(root)
        .args(["--query", "*", "--json"])
        .output()
        .unwrap();
    assert_json_equals(&out, &expected_json(&index, &["*"]), "symlinks");
}

// ---------------------------------------------------------------------------
// Workers that crash (test-only fault hook).

const CRASH_FILE: &str = "essays/rivers/danube.txt";

#[test]
fn a_worker_killed_once_is_retried_and_the_index_is_complete() {
    let index = reference::build_index(&corpus(), &[]);
    for (fault, batch) in [
        ("kill:danube", "1"),
        ("kill:danube", "3"),
        ("panic:danube", "2"),
    ] {
        let marker_dir = tempfile::tempdir().unwrap();
        let marker = marker_dir.path().join("fired");
        let out = indexer()
            .arg(corpus())
            .args(["--query", "*", "--json", "--workers", "2", "--batch", batch])
            .env("INDEXER_FAULT", fault)
            .env("INDEXER_FAULT_ONCE", &marker)
            .output()
            .unwrap();
        assert!(marker.exists(), "{fault}: the fault hook never fired");
        assert_json_equals(
            &out,
            &expected_json(&index, &["*"]),
            &format!("{fault} once, --batch {batch}"),
        );
        let stderr = stderr_of(&out);
        assert_eq!(
            summary_count(&stderr, "failed").unwrap_or(0),
            0,
            "{fault}: {stderr}"
        );
    }
}

#[test]
fn a_file_that_always_crashes_its_worker_is_the_only_one_lost_and_exit_is_2() {
    let files: Vec<_> = reference::files(&corpus(), &[])
        .into_iter()
        .filter(|f| f.relative != CRASH_FILE)
        .collect();
    let index = reference::index_of(&files);
    // One file per batch, the default sizing, and one batch of every file:
    // the failed batch is halved until the poison file is alone.
    for (fault, batch) in [
        ("kill:danube", Some("1")),
        ("panic:danube", Some("1")),
        ("kill:danube", None),
        ("kill:danube", Some("1000")),
    ] {
        let mut command = indexer();
        command
            .arg(corpus())
            .args(["--query", "*", "--json", "--workers", "3", "--verbose"])
            .env("INDEXER_FAULT", fault);
        if let Some(batch) = batch {
            command.args(["--batch", batch]);
        }
        let out = command.output().unwrap();
        let what = format!("{fault} always, --batch {batch:?}");
        assert_json_with_code(&out, &expected_json(&index, &["*"]), &what, 2);
        let stderr = stderr_of(&out);
        assert_eq!(
            summary_count(&stderr, "failed"),
            Some(1),
            "{what}: summary:\n{stderr}"
        );
        assert!(
            stderr.contains(&format!(
                "could not be indexed (a worker crashed on each, twice): {CRASH_FILE}"
            )),
            "{what}: the summary names the failed file:\n{stderr}"
        );
        assert!(
            stderr.contains(&format!("failed: {CRASH_FILE}")),
            "{what}: --verbose lists the failed file:\n{stderr}"
        );
    }
}

// ---------------------------------------------------------------------------
// What a location shows (issue 10): line text, layouts, counts, files.

/// `indexer corpus ARGS` run from inside the corpus, so paths are shown as
/// they are indexed.
fn in_corpus(args: &[&str]) -> Output {
    indexer()
        .current_dir(corpus())
        .arg(corpus())
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn without_headings_each_location_is_path_line_column_and_its_text() {
    let index = reference::build_index(&corpus(), &[]);
    let tree = corpus();
    let how = reference::Human {
        heading: false,
        numbered: false,
        tree: Some(&tree),
    };
    for q in ["danube", "w", "*ü*", "river"] {
        let out = in_corpus(&["--no-heading", "--all", "--color", "never", "--query", q]);
        assert!(out.status.success(), "{}", stderr_of(&out));
        let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(got, reference::expected_human(&index, q, true, how), "{q}");
    }
}

#[test]
fn json_text_is_each_locations_line() {
    let index = reference::build_index(&corpus(), &[]);
    let out = in_corpus(&["--json", "--text", "--query", "r", "--query", "=the"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let mut without_text = Vec::new();
    for mut object in parse_json_lines(&out.stdout) {
        for location in object["locations"].as_array_mut().unwrap() {
            let path = location["path"].as_str().unwrap();
            let line = location["line"].as_u64().unwrap();
            let want = reference::line_of(&corpus().join(path), line).unwrap();
            assert_eq!(location["text"], serde_json::json!(want), "{path}:{line}");
            location.as_object_mut().unwrap().remove("text");
        }
        without_text.push(object);
    }
    // Otherwise the contract's answer, key for key.
    assert_eq!(without_text, expected_json(&index, &["r", "=the"]));
}

#[test]
fn counts_and_files_with_matches_equal_the_reference() {
    let index = reference::build_index(&corpus(), &[]);
    for q in ["ri", "*a*", "=danube"] {
        let out = in_corpus(&["-c", "--query", q]);
        assert_eq!(
            stdout_lines(&out),
            reference::expected_counts(&index, q),
            "-c {q}"
        );
        let mut files: Vec<String> = reference::query(&index, q)
            .unwrap()
            .iter()
            .flat_map(|(_, l)| l.iter().map(|l| l.path.clone()))
            .collect();
        files.sort();
        files.dedup();
        let out = in_corpus(&["-l", "--query", q]);
        assert_eq!(stdout_lines(&out), files, "-l {q}");
    }
}

/// `-c` over hundreds of words with counts in no particular order, from
/// memory and from a saved index (whose front-coded blocks are read once
/// each, in word order, before the words are ranked): every word with its
/// count, most frequent first, ties in byte order, as the reference has
/// them, in the human view and in JSON.
#[test]
fn counts_of_many_words_equal_the_reference_in_memory_and_saved() {
    let dir = tempfile::tempdir().unwrap();
    for f in 0..12 {
        let text: String = (0..400)
            .flat_map(|n| {
                let times = (n * 7919 + f * 31) % 23 + 1;
                (0..times).map(move |_| format!("c{n} "))
            })
            .collect();
        write(dir.path(), &format!("f{f}.txt"), text.as_bytes());
    }
    let index = reference::build_index(dir.path(), &[]);
    let saved = tempfile::tempdir().unwrap();
    let file = saved.path().join("counts.idx");
    let built = indexer()
        .arg(dir.path())
        .arg("--save")
        .arg(&file)
        .arg("--noprompt")
        .output()
        .unwrap();
    assert!(built.status.success(), "{built:?}");
    for q in ["c*", "c1*", "*9"] {
        let want = reference::expected_counts(&index, q);
        let want_json: Vec<serde_json::Value> = reference::ranked_by_count(&index, q)
            .iter()
            .map(|(w, l)| serde_json::json!({"query": q, "word": w, "count": l.len()}))
            .collect();
        for (from, what) in [(dir.path(), "in memory"), (file.as_path(), "saved")] {
            let ask = |json: bool| {
                let mut cmd = indexer();
                match what {
                    "saved" => cmd.arg("--index").arg(from),
                    _ => cmd.arg(from),
                };
                cmd.args(["-c", "--query", q]);
                if json {
                    cmd.arg("--json");
                }
                cmd.output().unwrap()
            };
            assert_eq!(stdout_lines(&ask(false)), want, "-c {q}, {what}");
            assert_json_equals(&ask(true), &want_json, &format!("-c --json {q}, {what}"));
        }
    }
}

#[test]
fn colour_only_when_asked_or_on_a_terminal() {
    let out = in_corpus(&["--query", "danube", "--color", "always"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // rg's palette: path magenta, line number green, match bold red.
    assert!(
        stdout.contains("\x1b[35messays/rivers/danube.txt\x1b[0m:\x1b[32m1\x1b[0m:5:The \x1b[1;31mDanube\x1b[0m"),
        "{stdout:?}"
    );
    let out = in_corpus(&[
        "--query",
        "danube",
        "--color",
        "always",
        "--colors",
        "match:fg:blue",
        "--colors",
        "path:none",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("essays/rivers/danube.txt\x1b[0m:") && stdout.contains("\x1b[1;34mDanube"),
        "{stdout:?}"
    );
    for args in [&["--color", "never"][..], &["--color", "auto"]] {
        let out = indexer()
            .current_dir(corpus())
            .arg(corpus())
            .args(["--query", "danube"])
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(!out.stdout.contains(&0x1b), "{args:?}");
    }
    let out = in_corpus(&["--query", "danube", "--colors", "match:fg:purple"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).starts_with("indexer: --colors"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn paths_are_shown_from_the_current_folder_or_absolute() {
    let out = indexer()
        .current_dir(corpus().join("essays"))
        .arg(corpus())
        .args(["--query", "danube", "--no-heading"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The tree is the current folder's parent: `..` leads to it.
    assert!(
        stdout.starts_with("../essays/rivers/danube.txt:1:5:"),
        "{stdout}"
    );
    let out = in_corpus(&["--query", "danube", "--no-heading", "--absolute"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let absolute = fs::canonicalize(corpus())
        .unwrap()
        .join("essays/rivers/danube.txt");
    assert!(
        stdout.starts_with(&format!("{}:1:5:", absolute.display())),
        "{stdout}"
    );
}
