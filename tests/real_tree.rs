//! The binary's `--json` answers equal the reference's on a real tree
//! nobody here wrote (CPython's standard library, the Linux sources), for
//! queries sampled from that tree's own words, with one worker and two.
//!
//! Ignored by a plain `cargo test`, since it needs a tree: `.ci/run` runs it
//! on Debian's CPython standard library (about 50 MB: 5 s and 0.8 GB of
//! memory here), as
//!
//! ```sh
//! INDEXER_REAL_TREE=$(/usr/bin/python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])') \
//!     cargo test --release --test real_tree -- --ignored
//! ```
//!
//! The reference keeps every location with its path, about 200 bytes an
//! occurrence: a Python with 600 MB of packages beside its library took
//! 80 s and 4.3 GB. It fails, rather than passes, when the variable is not
//! set.

mod reference;

use std::path::PathBuf;

use assert_cmd::Command;
use reference::{assert_same_answers, expected_json, parse_json_lines, sampled_queries};

#[test]
#[ignore = "needs INDEXER_REAL_TREE (see the module docs)"]
fn a_real_tree_answers_like_the_reference() {
    let root = PathBuf::from(
        std::env::var_os("INDEXER_REAL_TREE")
            .expect("set INDEXER_REAL_TREE to the tree to check (see the module docs)"),
    );
    let index = reference::build_index(&root, &[]);
    assert!(!index.is_empty(), "{root:?} holds no words");
    // Answers of at most this many locations, so that both sides' JSON
    // stays small (a prefix such as `sel` in Python holds millions).
    const MOST_LOCATIONS: usize = 100_000;
    // Three letters a prefix, so that fewer answers are too large.
    let queries: Vec<String> = sampled_queries(&index, 40, 3)
        .into_iter()
        .filter(|q| {
            let answer = reference::query(&index, q).expect("sampled queries are valid");
            answer.iter().map(|(_, l)| l.len()).sum::<usize>() <= MOST_LOCATIONS
        })
        .collect();
    assert!(queries.len() >= 40, "too few queries kept: {queries:?}");
    let queries: Vec<&str> = queries.iter().map(String::as_str).collect();
    let want = expected_json(&index, &queries);
    for workers in ["1", "2"] {
        let mut cmd = Command::cargo_bin("indexer").expect("the indexer binary");
        // The contract is every file: ignore files are a walk preference.
        cmd.arg(&root)
            .args(["--json", "--no-ignore", "--workers", workers])
            .write_stdin("");
        for q in &queries {
            cmd.arg("--query").arg(q);
        }
        let out = cmd.output().expect("the indexer runs");
        assert!(
            out.status.success(),
            "indexer {root:?} --workers {workers}: {:?}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let got = parse_json_lines(&out.stdout);
        assert_same_answers(&got, &want, &format!("{root:?} --workers {workers}"));
    }
}
