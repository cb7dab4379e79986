//! An index saved in shards (the form `indexer-mpi` writes: parts
//! `FILE.part-K-of-R` by vocabulary range, and a manifest at FILE) answers
//! exactly as the single file it was cut from, and as the reference; a
//! missing or foreign part is refused in one line; a refresh on one machine
//! rewrites it as one file.
//!
//! The shards are cut here in-process from a saved index
//! (`store::shards::save_sharded`); the MPI build's own tests compare its
//! parts the same way.

mod reference;
mod support;

use std::path::{Path, PathBuf};

use indexer::store::{shards, Stored};
use proptest::prelude::*;
use reference::{
    assert_same_answers, expected_json, parse_json_lines, queries_over, word_strategy,
    write_word_tree,
};
use support::indexer;

fn corpus() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/corpus"))
}

/// `indexer ROOT --no-ignore --save FILE --noprompt`.
fn save_single(root: &Path, file: &Path) {
    let out = indexer()
        .arg(root)
        .args(["--no-ignore", "--noprompt", "--save"])
        .arg(file)
        .output()
        .expect("run indexer");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Cuts the single-file index at `single` into `parts` shards at `sharded`.
fn shard(single: &Path, sharded: &Path, parts: usize) {
    let stored = Stored::open(single).expect("open").expect("exists");
    let root = PathBuf::from(stored.root());
    let records = stored.base.records.as_slice().to_vec();
    let view = stored.into_view_without_stamps().expect("a view");
    shards::save_sharded(sharded, &root, &[], &view, &records, parts).expect("save sharded");
}

fn answers(index: &Path, queries: &[String]) -> Vec<serde_json::Value> {
    parse_json_lines(&support::ask_saved_json(index, queries))
}

#[test]
fn corpus_in_any_number_of_parts_answers_like_one_file_and_the_reference() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let single = dir.path().join("single.idx");
    save_single(corpus(), &single);
    let index = reference::build_index(corpus(), &[]);
    let queries = queries_over(&index);
    let query_refs: Vec<&str> = queries.iter().map(String::as_str).collect();
    let want = expected_json(&index, &query_refs);
    assert_same_answers(&answers(&single, &queries), &want, "single file");
    for parts in [1, 2, 3, 5] {
        let sharded = dir.path().join(format!("sharded-{parts}.idx"));
        shard(&single, &sharded, parts);
        for k in 1..=parts {
            assert!(shards::part_path(&sharded, k, parts).exists());
        }
        let got = answers(&sharded, &queries);
        assert_same_answers(&got, &want, &format!("{parts} parts"));
    }
}

#[test]
fn a_missing_or_foreign_part_is_refused_in_one_line() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let single = dir.path().join("single.idx");
    save_single(corpus(), &single);
    let sharded = dir.path().join("sharded.idx");
    shard(&single, &sharded, 3);
    let second = shards::part_path(&sharded, 2, 3);
    let refused = |says: &str| {
        let out = indexer()
            .arg("--index")
            .arg(&sharded)
            .args(["--query", "river"])
            .output()
            .expect("run indexer");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("indexer: ") && stderr.contains(says),
            "{stderr}"
        );
        assert!(out.stdout.is_empty(), "no answer from a broken index");
    };
    // A part of another save of the same tree, put in its place.
    let other = dir.path().join("other.idx");
    shard(&single, &other, 3);
    std::fs::rename(shards::part_path(&other, 2, 3), &second).expect("swap a part");
    refused("is not the part this index was saved with");
    std::fs::remove_file(&second).expect("remove a part");
    refused("is missing");
}

#[test]
fn a_refresh_rewrites_a_sharded_index_as_one_file() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).expect("tree");
    std::fs::write(tree.join("a.txt"), "alpha beta\ngamma alpha\n").expect("write");
    std::fs::write(tree.join("b.txt"), "beta delta\n").expect("write");
    let single = dir.path().join("single.idx");
    save_single(&tree, &single);
    let sharded = dir.path().join("sharded.idx");
    shard(&single, &sharded, 2);
    std::fs::write(tree.join("c.txt"), "epsilon alpha\n").expect("write");
    let out = indexer()
        .arg(&tree)
        .args(["--no-ignore", "--json", "--index"])
        .arg(&sharded)
        .args(["--query", "a", "--query", "e"])
        .output()
        .expect("run indexer");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("saved in 2 parts; rebuilding it here as one file"),
        "{stderr}"
    );
    let index = reference::build_index(&tree, &[]);
    let want = expected_json(&index, &["a", "e"]);
    assert_same_answers(&parse_json_lines(&out.stdout), &want, "refreshed");
    assert!(
        !shards::part_path(&sharded, 1, 2).exists(),
        "old parts removed"
    );
    assert!(
        !shards::part_path(&sharded, 2, 2).exists(),
        "old parts removed"
    );
    let reopened = Stored::open(&sharded).expect("open").expect("exists");
    assert!(!reopened.is_sharded());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(12)
    ))]

    /// Random trees cut into 1 to 4 parts answer as the reference.
    #[test]
    fn random_trees_in_parts_answer_like_the_reference(
        files in proptest::collection::vec(proptest::collection::vec(word_strategy(), 0..40), 1..6),
        parts in 1usize..5,
    ) {
        let dir = tempfile::tempdir().expect("temporary folder");
        let tree = dir.path().join("tree");
        write_word_tree(&tree, &files, 5, 2);
        let single = dir.path().join("single.idx");
        save_single(&tree, &single);
        let sharded = dir.path().join("sharded.idx");
        shard(&single, &sharded, parts);
        let index = reference::build_index(&tree, &[]);
        let queries = queries_over(&index);
        let query_refs: Vec<&str> = queries.iter().map(String::as_str).collect();
        let want = expected_json(&index, &query_refs);
        assert_same_answers(&answers(&sharded, &queries), &want, &format!("{parts} parts"));
    }
}
