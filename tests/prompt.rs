//! The interactive prompt, driven through stdin when it is not a terminal
//! (rustyline reads plain lines); `tests/pty.rs` drives it on a terminal.

mod reference;
mod support;

use std::process::Output;
use std::time::Duration;

use assert_cmd::Command;
use support::corpus;

const TIMEOUT: Duration = Duration::from_secs(60);

/// The prompt keeps history in the XDG state folder: point it (and HOME) at
/// a temporary folder so tests never touch the real one.
struct Session {
    state: tempfile::TempDir,
}

impl Session {
    fn new() -> Self {
        Session {
            state: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, input: &str) -> Output {
        Command::cargo_bin("indexer")
            .unwrap()
            // Paths are shown from the current folder: the tree itself.
            .current_dir(corpus())
            .arg(corpus())
            .env("XDG_STATE_HOME", self.state.path().join("state"))
            .env("HOME", self.state.path())
            .write_stdin(input)
            .timeout(TIMEOUT)
            .output()
            .unwrap()
    }
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Index of the first line of `want` where it appears as consecutive lines
/// of `got`, searching from line `from`.
fn find_lines(got: &[&str], want: &[String], from: usize) -> Option<usize> {
    (from..got.len()).find(|&start| {
        got.len() - start >= want.len()
            && got[start..start + want.len()]
                .iter()
                .zip(want)
                .all(|(g, w)| g.trim_end() == w)
    })
}

#[test]
fn a_line_that_is_not_utf8_is_answered_and_the_prompt_goes_on() {
    let session = Session::new();
    let out = Command::cargo_bin("indexer")
        .unwrap()
        .arg(corpus())
        .env("XDG_STATE_HOME", session.state.path().join("state"))
        .env("HOME", session.state.path())
        .write_stdin(&b"=river\n\xff\xfe river\n=rivers\n"[..])
        .timeout(TIMEOUT)
        .output()
        .unwrap();
    let stdout = stdout_of(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(stderr.contains("indexer: not UTF-8"), "{stderr}");
    // Both queries around the bad line are answered.
    assert!(stdout.contains("river (12)"), "{stdout}");
    assert!(stdout.contains("rivers (4)"), "{stdout}");
}

#[test]
fn query_then_all_then_help_from_stdin_until_eof() {
    let index = reference::build_index(&corpus(), &[]);
    let out = Session::new().run("w\n:all\n:help\n");
    let stdout = stdout_of(&out);
    assert!(
        out.status.success(),
        "exit {:?}; stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    // The first answer is bounded, the `:all` answer complete, in that order.
    let tree = corpus();
    let how = reference::Human {
        heading: true,
        numbered: true,
        tree: Some(&tree),
    };
    let bounded = reference::expected_human(&index, "w", false, how);
    let full = reference::expected_human(&index, "w", true, how);
    assert!(bounded.len() < full.len(), "\"w\" should need :all");
    let at = find_lines(&lines, &bounded, 0).unwrap_or_else(|| {
        panic!(
            "bounded answer missing:\n{}\n--- got:\n{stdout}",
            bounded.join("\n")
        )
    });
    // The header line may follow the prompt text on the same line.
    let all_at = find_lines(&lines, &full[1..], at + bounded.len())
        .unwrap_or_else(|| panic!(":all answer missing after the first:\n{stdout}"));
    assert!(
        lines[all_at - 1].ends_with(&full[0]),
        ":all header: {:?}",
        lines[all_at - 1]
    );
    // Every location the reference knows is listed after :all.
    let unnumbered = reference::Human {
        numbered: false,
        ..how
    };
    for (_, locations) in reference::query(&index, "w").unwrap() {
        for l in &locations {
            let line = reference::location_line(l, unnumbered, None);
            assert!(
                lines[all_at..]
                    .iter()
                    .any(|got| got.ends_with(&format!("  {line}"))),
                "{line:?} missing after :all"
            );
        }
    }
    let help = lines[all_at + full.len() - 1..].join("\n");
    for needle in [":quit", ":all", ":help", "=", "/", "*"] {
        assert!(
            help.contains(needle),
            "help text does not mention {needle:?}:\n{help}"
        );
    }
}

#[test]
fn quit_ends_the_session_before_the_next_line() {
    let out = Session::new().run("danube\n:quit\nmekong\n");
    let stdout = stdout_of(&out);
    assert!(out.status.success(), "{:?}", out.status);
    assert!(
        stdout.contains("essays/rivers/danube.txt\n   1  1:5:The Danube\n"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("mekong.md"),
        "a line after :quit was answered:\n{stdout}"
    );
}

#[test]
fn a_bad_query_at_the_prompt_does_not_end_the_session() {
    let out = Session::new().run("/(unclosed/\ndanube\nzzqqxx\n");
    let stdout = stdout_of(&out);
    assert!(out.status.success(), "{:?}", out.status);
    assert!(stdout.contains("  3:5:The Danube rises"), "{stdout}");
    assert!(stdout.contains("no words match \"zzqqxx\""), "{stdout}");
}

// ---------------------------------------------------------------------------
// Through a pseudo-terminal.

#[test]
fn open_starts_the_editor_at_the_line_and_more_pages_on() {
    let index = reference::build_index(&corpus(), &[]);
    let work = tempfile::tempdir().unwrap();
    let record = work.path().join("args");
    // Named vim, so that it is given the column too.
    let editor = work.path().join("vim");
    std::fs::write(
        &editor,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" >> '{}'\n",
            record.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // "w" has more than the first page: :more goes on numbering from there.
    let out = Command::cargo_bin("indexer")
        .unwrap()
        .current_dir(corpus())
        .arg(corpus())
        .env("XDG_STATE_HOME", work.path().join("state"))
        .env("HOME", work.path())
        .env_remove("VISUAL")
        .env("EDITOR", format!("{} --flag", editor.display()))
        .write_stdin("danube\n:open 2\nw\n:more\n:open 9999\n:open 0\n")
        .timeout(TIMEOUT)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = stdout_of(&out);
    // The second location of "danube" is line 3, column 5; the editor's own
    // words come first, then what a vi-like editor takes.
    let args = std::fs::read_to_string(&record).unwrap();
    let want = [
        "--flag".to_string(),
        "+call cursor(3, 5)".to_string(),
        corpus()
            .join("essays/rivers/danube.txt")
            .display()
            .to_string(),
    ];
    assert_eq!(args.lines().collect::<Vec<_>>(), want);
    // :more shows the next locations, numbered after the first page's.
    let mut words = reference::query(&index, "w").unwrap();
    words.sort_by(|(wa, la), (wb, lb)| lb.len().cmp(&la.len()).then(wa.cmp(wb)));
    let first_page: usize = words.iter().take(20).map(|(_, l)| l.len().min(10)).sum();
    let (word, locations) = words.iter().find(|(_, l)| l.len() > 10).unwrap();
    assert!(stdout.contains(&format!("{word} (more)")), "{stdout}");
    let next = &locations[10];
    let numbered = format!("{:>4}  {}:{}:", first_page + 1, next.line, next.column);
    assert!(
        stdout.contains(&numbered),
        "{numbered:?} missing:\n{stdout}"
    );
    assert!(
        stdout.contains("say :open N with N a location's number"),
        "{stdout}"
    );
}
