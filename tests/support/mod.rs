//! Helpers every integration test needs: the sample tree, the binary with
//! a hang guard, and small file and output utilities. (Each test file is
//! its own crate and uses a different subset.)
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use assert_cmd::Command;

/// A run still going after this is killed as hung.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// The sample tree the README runs on.
pub fn corpus() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/corpus"))
}

/// The binary under test, with empty stdin and the hang guard.
pub fn indexer() -> Command {
    let mut cmd = Command::cargo_bin("indexer").unwrap();
    cmd.timeout(COMMAND_TIMEOUT).write_stdin("");
    cmd
}

pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The lines a run printed on stdout.
pub fn stdout_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Writes `bytes` at `relative` below `root`, making its folders.
pub fn write(root: &Path, relative: &str, bytes: &[u8]) {
    let path = root.join(relative);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

/// `indexer --index FILE --json --query Q...`'s stdout, the run having
/// answered (exit 0, or 1 when nothing matched).
pub fn ask_saved_json(index: &Path, queries: &[String]) -> Vec<u8> {
    let mut cmd = indexer();
    cmd.arg("--index").arg(index).arg("--json");
    for q in queries {
        cmd.arg("--query").arg(q);
    }
    let out = cmd.output().expect("run indexer");
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        stderr_of(&out)
    );
    out.stdout
}
