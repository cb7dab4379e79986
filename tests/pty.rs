//! The prompt on a real pseudo-terminal (expectrl), as a person uses it:
//! highlighted line text, lines typed during the build, a pasted block,
//! Tab twice, `:open`, `:more`, Ctrl-C during a long answer, and leaving.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use expectrl::process::unix::WaitStatus;

use expectrl::session::OsSession as Session;
use expectrl::{Eof, Expect};

/// Occurrences of `hay`: an answer far longer than any pipe holds.
const HAY: usize = 30_000;

/// A tree whose answers the test knows by construction.
fn tree(root: &Path) {
    support::write(
        root,
        "rivers.txt",
        b"The Danube rises in the Black Forest\nthe danube flows east\n",
    );
    // zebra_beta is the more frequent, zebra_alpha the first in byte order.
    support::write(
        root,
        "zebra.txt",
        b"zebra_alpha\nzebra_beta zebra_beta zebra_beta\nzebra_beta zebra_beta\n",
    );
    support::write(root, "hay.txt", "hay\n".repeat(HAY).as_bytes());
}

/// The prompt on `root`, built slowly enough to type during the build,
/// with the editor, pager and history folder of the test.
fn spawn(root: &Path, work: &Path) -> Session {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin("indexer"));
    command
        .current_dir(root)
        .arg(root)
        .args(["--batch", "1", "--delay", "0.3", "--workers", "1"])
        .env("TERM", "xterm")
        .env("XDG_STATE_HOME", work.join("state"))
        .env("HOME", work)
        .env("PAGER", "cat")
        .env_remove("NO_COLOR")
        .env_remove("VISUAL")
        .env("EDITOR", work.join("vim"));
    let mut session = Session::spawn(command).expect("a pseudo-terminal");
    session.set_expect_timeout(Some(Duration::from_secs(60)));
    session
}

/// What the terminal showed before `needle`, and `needle` itself.
fn before(session: &mut Session, needle: &str) -> String {
    let found = session
        .expect(needle)
        .unwrap_or_else(|e| panic!("never saw {needle:?}: {e}"));
    String::from_utf8_lossy(found.before()).into_owned()
}

/// [`before`] with a regex needle.
fn before_regex(session: &mut Session, needle: &str) -> String {
    let found = session
        .expect(expectrl::Regex(needle))
        .unwrap_or_else(|e| panic!("never saw /{needle}/: {e}"));
    String::from_utf8_lossy(found.before()).into_owned()
}

#[test]
fn a_session_on_a_terminal_loses_no_input_and_survives_ctrl_c() {
    let root = tempfile::tempdir().unwrap();
    tree(root.path());
    let work = tempfile::tempdir().unwrap();
    let record = work.path().join("args");
    // Named vim, so that it is given the column too.
    std::fs::write(
        work.path().join("vim"),
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" >> '{}'\n",
            record.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        work.path().join("vim"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut s = spawn(root.path(), work.path());

    // Three lines typed while the build still runs, answered in order.
    s.send("=danube\r=rises\rzebra_betx\r").unwrap();
    before(&mut s, "indexed 3 files");
    before(&mut s, "danube (2)");
    // The line itself, the word highlighted.
    before(&mut s, "Danube\x1b[0m rises in the Black Forest");
    before(&mut s, "rises (1)");
    before(
        &mut s,
        "no words match \"zebra_betx\"; did you mean zebra_beta?",
    );

    // A pasted block: one query per line.
    s.send("\x1b[200~=zebra_alpha\n=black\x1b[201~\r").unwrap();
    before(&mut s, "zebra_alpha (1)");
    before(&mut s, "black (1)");
    before(&mut s, "search> ");

    // Tab fills the common prefix; a second Tab lists, most frequent first.
    s.send("zeb\t").unwrap();
    before(&mut s, "zebra_");
    s.send("\t").unwrap();
    let listed = before(&mut s, "zebra_alpha");
    assert!(listed.contains("zebra_beta"), "{listed:?}");
    // Ctrl-U clears the line; then the word itself.
    s.send("\x15=zebra_beta\r").unwrap();
    before(&mut s, "zebra_beta (5)");
    before(&mut s, "search> ");

    // :open 1 starts the editor at the first location's line and column.
    s.send(":open 1\r").unwrap();
    before(&mut s, "search> ");
    let args = std::fs::read_to_string(&record).unwrap();
    let want = [
        "+call cursor(2, 1)".to_string(),
        root.path().join("zebra.txt").display().to_string(),
    ];
    assert_eq!(args.lines().collect::<Vec<_>>(), want);

    // :more goes on numbering from the first page.
    s.send("=hay\r").unwrap();
    before(&mut s, "and 29990 more locations");
    s.send(":more\r").unwrap();
    before(&mut s, "hay (more)");
    // Numbered 11, at line 11 (line numbers are coloured).
    before_regex(&mut s, r"  11  \x1b\[[0-9;]*m11\x1b\[0m:");

    // Ctrl-C during a long answer stops it and the session goes on.
    s.send(":all\r").unwrap();
    before_regex(&mut s, r"\n2000  \x1b\[[0-9;]*m2000\x1b");
    s.send("\x03").unwrap();
    let rest = before(&mut s, "search> ");
    assert!(
        !rest.contains(&format!("{HAY}  ")),
        "the answer ran to its end despite Ctrl-C"
    );
    s.send("=zebra_alpha\r").unwrap();
    before(&mut s, "zebra_alpha (1)");

    // Ctrl-D leaves, with success; history was kept.
    s.send("\x04").unwrap();
    s.expect(Eof).unwrap();
    let status = s.get_process().wait().unwrap();
    assert_eq!(
        status,
        WaitStatus::Exited(s.get_process().pid(), 0),
        "leaving with Ctrl-D"
    );
    let history: String = walkdir::WalkDir::new(work.path().join("state"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(history.contains("=zebra_beta"), "no history: {history:?}");
}

#[test]
fn quit_leaves_with_success() {
    let root = tempfile::tempdir().unwrap();
    tree(root.path());
    let work = tempfile::tempdir().unwrap();
    let mut s = spawn(root.path(), work.path());
    before(&mut s, "search> ");
    s.send(":help\r").unwrap();
    before(&mut s, ":quit");
    s.send(":quit\r").unwrap();
    s.expect(Eof).unwrap();
    let status = s.get_process().wait().unwrap();
    assert_eq!(status, WaitStatus::Exited(s.get_process().pid(), 0));
}
