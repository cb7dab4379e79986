//! Nothing silently lost at the limits: a batch or a file too large for
//! one run or one message, a tree changed under the workers, a column past
//! 32 bits, what `--save` may replace, names with control characters, too
//! few file descriptors, an interrupted save. Limits that take gigabytes to
//! reach for real are made small through `INDEXER_TEST_LIMITS`, so the same
//! code paths run on small inputs.

mod reference;
mod support;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use reference::{assert_same_answers, expected_json, parse_json_lines};
use support::{corpus, indexer, stderr_of, write};

const TIMEOUT: Duration = Duration::from_secs(120);

/// Exit 0, and the JSON answers of `queries` equal the reference's.
fn assert_answers_like_reference(out: &Output, root: &Path, queries: &[&str], what: &str) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: {:?}\nstderr:\n{}",
        out.status,
        stderr_of(out)
    );
    let index = reference::build_index(root, &[]);
    let want = expected_json(&index, queries);
    assert_same_answers(&parse_json_lines(&out.stdout), &want, what);
}

/// The number before `what` in the `--stats` line (`N batches, M runs`).
fn stat(stderr: &str, what: &str) -> u64 {
    let re = regex::Regex::new(&format!(r"(\d+) {what}\b")).unwrap();
    re.captures(stderr)
        .and_then(|c| c[1].parse().ok())
        .unwrap_or_else(|| panic!("no `N {what}` in:\n{stderr}"))
}

/// Exit code 2, exactly one `indexer: ` line, nothing on stdout.
fn assert_refused(out: &Output, what: &str) {
    let stderr = stderr_of(out);
    assert_eq!(out.status.code(), Some(2), "{what}: stderr:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{what}: one line wanted, got:\n{stderr}");
    assert!(lines[0].starts_with("indexer: "), "{what}: {:?}", lines[0]);
}

#[test]
fn a_batch_past_its_postings_limit_is_cut_into_runs_and_loses_nothing() {
    // Many distinct words in one batch; a worker may gather only 16 KiB of
    // postings before cutting a run (a 32-bit arena once wrapped past 4 GiB).
    // Each word occurs some eight times a file: lists of a few bytes stay
    // in the word table, not the arena, and would never fill it.
    let dir = tempfile::tempdir().unwrap();
    for f in 0..30 {
        let text: String = (0..2500)
            .map(|i| format!("w{f}x{} {}", i % 300, if i % 9 == 0 { "\n" } else { "" }))
            .collect();
        write(dir.path(), &format!("d{}/f{f}.txt", f % 4), text.as_bytes());
    }
    let queries = ["*", "w1x1*"];
    let out = indexer()
        .arg(dir.path())
        .args(["--json", "--stats", "--batch", "100000", "--workers", "2"])
        .args(queries.iter().flat_map(|q| ["--query", q]))
        .env("INDEXER_TEST_LIMITS", "arena=16K")
        .output()
        .unwrap();
    assert_answers_like_reference(&out, dir.path(), &queries, "arena=16K, --batch 100000");
    let stderr = stderr_of(&out);
    assert!(stderr.contains("; 0 failed"), "{stderr}");
    assert!(
        stat(&stderr, "runs") > 3 * stat(&stderr, "batches"),
        "the batches were not cut:\n{stderr}"
    );
    // The workers' time is split where the budget is argued (issue 11).
    let phases =
        regex::Regex::new(r"read [0-9.]+ s, tokenize [0-9.]+ s, record [0-9.]+ s, sort").unwrap();
    assert!(phases.is_match(&stderr), "no phases in:\n{stderr}");
}

#[test]
fn a_file_past_the_message_limit_arrives_in_several_runs() {
    // One file whose run would exceed a message (2 GiB for real, 256 KiB
    // here): `a b c ... z` repeated, a newline every 1000 words.
    let dir = tempfile::tempdir().unwrap();
    let mut text = Vec::new();
    for k in 0..120_000u32 {
        text.push(b'a' + (k % 26) as u8);
        text.push(if k % 1000 == 999 { b'\n' } else { b' ' });
    }
    write(dir.path(), "letters.txt", &text);
    for workers in ["1", "2"] {
        let out = indexer()
            .arg(dir.path())
            .args(["--json", "--stats", "--workers", workers])
            .args(["--query", "=a", "--query", "=z"])
            .env("INDEXER_TEST_LIMITS", "frame=256K")
            .output()
            .unwrap();
        let what = format!("frame=256K, --workers {workers}");
        assert_answers_like_reference(&out, dir.path(), &["=a", "=z"], &what);
        let stderr = stderr_of(&out);
        assert!(stderr.contains("; 0 failed"), "{what}: {stderr}");
        assert!(stat(&stderr, "runs") > 1, "{what}: one run:\n{stderr}");
    }
}

#[test]
fn a_folder_swapped_for_a_link_after_the_walk_is_not_followed() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("t");
    let outside = work.path().join("s");
    write(&tree, "sub/f", b"decoy\n");
    write(&tree, "a.txt", b"plain words\n");
    write(&outside, "f", b"secretword\n");
    let marker = work.path().join("marker");
    // The worker stops before reading sub/f (after the walk listed it)
    // until the marker it made is removed.
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("indexer"))
        .arg(&tree)
        .args(["--json", "-j1", "--batch", "1", "--query", "secretword"])
        .args(["--query", "decoy", "--verbose"])
        .env("INDEXER_FAULT", "wait:sub/f")
        .env("INDEXER_FAULT_ONCE", &marker)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !marker.exists() {
        assert!(
            started.elapsed() < TIMEOUT,
            "the worker never reached sub/f"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    fs::rename(tree.join("sub"), tree.join("old")).unwrap();
    std::os::unix::fs::symlink(&outside, tree.join("sub")).unwrap();
    fs::remove_file(&marker).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = stderr_of(&out);
    // Nothing matched "secretword": exit 1.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        parse_json_lines(&out.stdout).is_empty(),
        "read through the link: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains("unreadable: sub/f: a symbolic link now stands on its path"),
        "{stderr}"
    );
}

#[test]
fn a_column_past_four_gib_is_exact() {
    // A sparse file: 8 KiB of text, a hole, `tailword` 4.3 GB in.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse.txt");
    let file = fs::File::create(&path).unwrap();
    let head = b"x ".repeat(4096);
    use std::os::unix::fs::FileExt;
    file.write_all_at(&head, 0).unwrap();
    let at: u64 = 4_300_000_000;
    file.write_all_at(b"tailword\n", at).unwrap();
    drop(file);
    let allocated = fs::metadata(&path).unwrap().blocks() * 512;
    if allocated > 64 << 20 {
        // Not sparse here: 4 GB of zeros would be read and the test would
        // take minutes; say so rather than pass quietly.
        println!("note: {allocated} bytes allocated; this file system has no sparse files");
    }
    let out = indexer()
        .arg(dir.path())
        .args(["--json", "--query", "=tailword", "--query", "=x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let answers = parse_json_lines(&out.stdout);
    assert_eq!(answers.len(), 2, "{answers:?}");
    let tail = &answers[0]["locations"][0];
    // The file's first line runs from byte 0: column = offset + 1.
    assert_eq!(tail["line"], 1);
    assert_eq!(tail["column"], at + 1);
    assert_eq!(answers[1]["count"], 4096);
}

#[test]
fn save_refuses_what_is_not_an_index_before_building() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("main.rs");
    fs::write(&source, "fn main() {}\n").unwrap();
    let fifo = work.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let index = work.path().join("real.idx");
    let out = indexer()
        .arg(corpus())
        .arg("--save")
        .arg(&index)
        .arg("--noprompt")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let link = work.path().join("link.idx");
    std::os::unix::fs::symlink(&index, &link).unwrap();
    let folder = work.path().join("folder");
    fs::create_dir(&folder).unwrap();
    for (what, target) in [
        ("a source file", source.clone()),
        ("a FIFO", fifo.clone()),
        ("a symbolic link to an index", link.clone()),
        ("a folder", folder.clone()),
        ("the root folder", PathBuf::from("/")),
    ] {
        for option in ["--save", "--index"] {
            let out = indexer()
                .arg(corpus())
                .arg(option)
                .arg(&target)
                .arg("--noprompt")
                .output()
                .unwrap();
            assert_refused(&out, &format!("{option} {what}"));
            assert!(!stderr_of(&out).contains("indexed"), "{what}: built first");
        }
    }
    assert_eq!(fs::read(&source).unwrap(), b"fn main() {}\n");
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    // An index of ours is replaced.
    let out = indexer()
        .arg(corpus())
        .arg("--save")
        .arg(&index)
        .arg("--noprompt")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
}

use std::os::unix::fs::FileTypeExt;

#[test]
fn control_characters_in_names_are_escaped_for_people_not_for_json() {
    let dir = tempfile::tempdir().unwrap();
    let name = "a\nb\u{1b}[31mc.txt";
    write(dir.path(), name, b"river\n");
    write(dir.path(), "bin\tary", b"\0binary");
    let human = indexer()
        .current_dir(dir.path())
        .arg(dir.path())
        .args(["--query", "river", "--verbose"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&human.stdout);
    assert!(
        stdout.contains("a\\nb\\x1b[31mc.txt:1:1:river\n"),
        "{stdout:?}"
    );
    assert!(!stdout.contains('\u{1b}'), "{stdout:?}");
    let stderr = stderr_of(&human);
    assert!(stderr.contains("binary: bin\\tary"), "{stderr:?}");
    let json = indexer()
        .arg(dir.path())
        .args(["--query", "river", "--json"])
        .output()
        .unwrap();
    let answers = parse_json_lines(&json.stdout);
    assert_eq!(answers[0]["locations"][0]["path"], name);
}

#[test]
fn excludes_that_cannot_match_are_refused() {
    for glob in ["", "[", "src/[a-"] {
        let out = indexer()
            .arg(corpus())
            .args(["--exclude", glob, "--noprompt"])
            .output()
            .unwrap();
        assert_refused(&out, &format!("--exclude {glob:?}"));
    }
}

/// Runs the indexer with at most `fds` open files.
fn with_open_files(fds: u64, root: &Path, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("indexer"));
    command.arg(root).args(args).stdin(Stdio::null());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: fds,
                rlim_max: fds,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.output().unwrap()
}

/// Exit 1, and one `indexer: ` line naming the limit to raise.
fn assert_says_raise_the_limit(out: &Output, fds: u64) {
    let stderr = stderr_of(out);
    assert_eq!(out.status.code(), Some(1), "{fds} fds: {stderr}");
    assert!(
        stderr.starts_with("indexer: ")
            && stderr.lines().count() == 1
            && stderr.contains("ulimit -n"),
        "{fds} fds: {stderr}"
    );
}

#[test]
fn too_few_file_descriptors_mean_fewer_workers_or_a_clear_error() {
    // A worker needs 7 descriptors of its own: from there on a build goes
    // on with the workers it can start and answers in full; below, it says
    // what limit to raise. Never a panic, a hang, or files called
    // unreadable because descriptors ran out.
    let queries = ["*"];
    for fds in [4, 5, 6, 7, 8, 11, 12, 16, 24, 64] {
        let out = with_open_files(
            fds,
            &corpus(),
            &["--json", "--workers", "4", "--batch", "1", "--query", "*"],
        );
        let stderr = stderr_of(&out);
        if fds >= 7 {
            assert!(stderr.contains(" 0 unreadable"), "{fds} fds: {stderr}");
            assert_answers_like_reference(&out, &corpus(), &queries, &format!("{fds} open files"));
        } else {
            assert_says_raise_the_limit(&out, fds);
        }
    }
}

#[test]
fn runs_on_disk_past_the_open_file_limit_are_combined_not_refused() {
    // One run per file, every run on disk, and room for a few dozen open
    // files: a build holding a descriptor per run on disk once ran out of
    // them at worker start ("Too many open files"). The runs are merged
    // as the build goes instead, and the answers stay whole.
    let dir = tempfile::tempdir().unwrap();
    for f in 0..400 {
        let text: String = (0..300)
            .map(|i| format!("w{} ", (i * 7 + f * 13) % 997))
            .collect();
        write(dir.path(), &format!("d{}/f{f}.txt", f % 5), text.as_bytes());
    }
    let queries = ["*", "w1*"];
    let args = ["--json", "--stats", "--batch", "1", "--memory", "1K"];
    let mut command: Vec<&str> = args.to_vec();
    command.extend(queries.iter().flat_map(|q| ["--query", q]));
    let out = with_open_files(80, dir.path(), &command);
    assert_answers_like_reference(&out, dir.path(), &queries, "--batch 1, 80 open files");
    let stderr = stderr_of(&out);
    assert!(stderr.contains("merged into larger ones"), "{stderr}");
    assert_eq!(stat(&stderr, "runs"), 400, "{stderr}");
    // Fewer still: whole answers, or one line saying what limit to raise.
    for fds in [10, 12, 14, 16, 24] {
        let out = with_open_files(fds, dir.path(), &command);
        if out.status.code() == Some(0) {
            let what = format!("--batch 1, {fds} open files");
            assert_answers_like_reference(&out, dir.path(), &queries, &what);
        } else {
            assert_says_raise_the_limit(&out, fds);
        }
    }
}

#[test]
fn an_interrupted_save_leaves_nothing_behind() {
    use std::io::{BufRead, BufReader};
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    for f in 0..400 {
        let text: String = (0..6000).map(|i| format!("w{} ", (i * f) % 9000)).collect();
        write(&tree, &format!("d{}/f{f}.txt", f % 7), text.as_bytes());
    }
    let file = work.path().join("x.idx");
    for (k, delay) in [0u64, 5, 20, 60].into_iter().enumerate() {
        for signal in [libc::SIGINT, libc::SIGTERM] {
            let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("indexer"))
                .arg(&tree)
                .arg("--save")
                .arg(&file)
                .arg("--noprompt")
                .stdin(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // The summary is printed when the build is done and the save
            // begins: interrupt the save.
            let mut stderr = BufReader::new(child.stderr.take().unwrap());
            let mut line = String::new();
            while stderr.read_line(&mut line).unwrap() > 0 && !line.contains("skipped") {}
            std::thread::sleep(Duration::from_millis(delay + k as u64));
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, signal) };
            let _ = child.wait();
            let left: Vec<_> = fs::read_dir(work.path())
                .unwrap()
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".tmp"))
                .collect();
            assert!(
                left.is_empty(),
                "signal {signal} {delay} ms into the save: {left:?}"
            );
        }
    }
    // Whatever was committed is a whole index.
    if file.exists() {
        let out = indexer()
            .arg("--index")
            .arg(&file)
            .args(["--json", "--query", "w1"])
            .output()
            .unwrap();
        assert_answers_like_reference(&out, &tree, &["w1"], "the index left by the last save");
    }
}
