//! `indexer-mpi` under `mpirun` with 1, 2 and 3 ranks on this machine: the
//! sharded index it writes answers exactly as the reference (and so as a
//! single-machine build) on `corpus/` and on random trees; a rank killed
//! mid-run ends the job with no manifest written and the previous index
//! whole. Built and run with `--features mpi` (`.ci/run` installs Open MPI).
#![cfg(feature = "mpi")]

mod reference;
mod support;

use std::path::Path;
use std::process::{Command, Output};

use proptest::prelude::*;
use reference::{
    assert_same_answers, expected_json, parse_json_lines, queries_over, word_strategy,
    write_word_tree,
};

fn corpus() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/corpus"))
}

/// `mpirun -np RANKS indexer-mpi ARGS...`, ranks not bound to cores (two
/// ranks bound to one core would take turns).
fn mpirun(ranks: usize, args: &[&std::ffi::OsStr], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new("mpirun");
    command
        .args([
            "--oversubscribe",
            "--allow-run-as-root",
            "--bind-to",
            "none",
        ])
        .args(["-np", &ranks.to_string()])
        .arg(env!("CARGO_BIN_EXE_indexer-mpi"))
        .args(args);
    for (k, v) in envs {
        command.env(k, v);
    }
    command
        .output()
        .expect("run mpirun (Open MPI: apt-get install openmpi-bin libopenmpi-dev)")
}

fn build(ranks: usize, tree: &Path, file: &Path, envs: &[(&str, &str)]) -> Output {
    mpirun(
        ranks,
        &[
            tree.as_os_str(),
            "--no-ignore".as_ref(),
            "--save".as_ref(),
            file.as_os_str(),
        ],
        envs,
    )
}

fn answers(index: &Path, queries: &[String]) -> Vec<serde_json::Value> {
    parse_json_lines(&support::ask_saved_json(index, queries))
}

fn assert_built_like_the_reference(tree: &Path, ranks: usize) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let file = dir.path().join("index.idx");
    let out = build(ranks, tree, &file, &[]);
    assert!(
        out.status.success(),
        "{ranks} ranks: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for k in 1..=ranks {
        assert!(
            indexer::store::shards::part_path(&file, k, ranks).exists(),
            "part {k} of {ranks}"
        );
    }
    let index = reference::build_index(tree, &[]);
    let queries = queries_over(&index);
    let query_refs: Vec<&str> = queries.iter().map(String::as_str).collect();
    let want = expected_json(&index, &query_refs);
    assert_same_answers(&answers(&file, &queries), &want, &format!("{ranks} ranks"));
}

#[test]
fn corpus_built_by_one_two_or_three_ranks_answers_like_the_reference() {
    for ranks in [1, 2, 3] {
        assert_built_like_the_reference(corpus(), ranks);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(6)
    ))]

    /// Random trees, 1 to 3 ranks.
    #[test]
    fn random_trees_built_by_ranks_answer_like_the_reference(
        files in proptest::collection::vec(proptest::collection::vec(word_strategy(), 0..60), 1..12),
        ranks in 1usize..4,
    ) {
        let dir = tempfile::tempdir().expect("temporary folder");
        write_word_tree(dir.path(), &files, 6, 3);
        assert_built_like_the_reference(dir.path(), ranks);
    }
}

#[test]
fn a_rank_killed_mid_run_leaves_no_manifest_and_the_old_index_whole() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let file = dir.path().join("index.idx");
    let first = build(2, corpus(), &file, &[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let manifest = std::fs::read(&file).expect("the manifest");
    let queries: Vec<String> = ["river", "*e*", "/.*s/"].map(String::from).to_vec();
    let before = answers(&file, &queries);
    // The rank that reads this file kills itself with SIGKILL.
    let out = build(2, corpus(), &file, &[("INDEXER_FAULT", "kill:.txt")]);
    assert!(!out.status.success(), "a job with a killed rank must fail");
    assert_eq!(
        std::fs::read(&file).expect("the manifest"),
        manifest,
        "manifest untouched"
    );
    assert_eq!(
        answers(&file, &queries),
        before,
        "the old index answers as before"
    );
    // Nor did a fresh save leave a manifest.
    let fresh = dir.path().join("fresh.idx");
    let out = build(3, corpus(), &fresh, &[("INDEXER_FAULT", "kill:.txt")]);
    assert!(!out.status.success());
    assert!(!fresh.exists(), "no manifest after a failed run");
    for k in 1..=3 {
        assert!(
            !indexer::store::shards::part_path(&fresh, k, 3).exists(),
            "no part"
        );
    }
}

#[test]
fn bad_input_is_refused_by_rank_0_in_one_line() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let missing = dir.path().join("no-such-tree");
    let out = build(2, &missing, &dir.path().join("x.idx"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("indexer-mpi: "))
        .collect();
    assert_eq!(ours.len(), 1, "{stderr}");
    assert!(ours[0].contains("no-such-tree"), "{stderr}");
    let out = mpirun(
        1,
        &[
            corpus().as_os_str(),
            "--workers".as_ref(),
            "2".as_ref(),
            "--save".as_ref(),
            dir.path().join("y.idx").as_os_str(),
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("one rank per core"), "{stderr}");
}
