//! What narrows an answer beyond its word: `--glob`, `-t`, `path:`,
//! several terms (an AND over files), punctuation in a query, `-s`, ignore
//! files; and the shell completions and man page. Each answer is checked
//! against the reference index filtered by the test's own rule.

mod reference;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use reference::{Glob, Index, Location};
use serde_json::{json, Value};
use support::{corpus, indexer, stderr_of};

/// `--json` answers of `query` on `root` with `args`.
fn answers(root: &Path, query: &str, args: &[&str]) -> (Vec<Value>, String) {
    let out = indexer()
        .arg(root)
        .args(["--no-ignore", "--json", "--query", query])
        .args(args)
        .output()
        .unwrap();
    let code = out.status.code();
    let got = reference::parse_json_lines(&out.stdout);
    assert_eq!(
        code,
        Some(if got.is_empty() { 1 } else { 0 }),
        "{query:?} {args:?}: {}",
        stderr_of(&out)
    );
    (got, stderr_of(&out))
}

/// The JSON objects of `words`, keeping the locations `keep` admits.
fn expected(
    query: &str,
    words: &[(String, Vec<Location>)],
    keep: &dyn Fn(&Location) -> bool,
) -> Vec<Value> {
    words
        .iter()
        .filter_map(|(word, locations)| {
            let kept: Vec<Value> = locations
                .iter()
                .filter(|l| keep(l))
                .map(|l| json!({"path": l.path, "line": l.line, "column": l.column}))
                .collect();
            (!kept.is_empty()).then(
                || json!({"query": query, "word": word, "count": kept.len(), "locations": kept}),
            )
        })
        .collect()
}

/// Which locations a case keeps.
type Keep<'a> = Box<dyn Fn(&Location) -> bool + 'a>;

fn name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[test]
fn globs_types_and_path_terms_keep_the_files_they_admit() {
    let index = reference::build_index(&corpus(), &[]);
    for word in ["the", "process", "fn"] {
        let words = reference::query(&index, word).unwrap();
        let md = Glob::new("*.md");
        let notes = Glob::new("notes/**");
        let cases: Vec<(String, Vec<&str>, Keep)> = vec![
            (
                word.to_string(),
                vec!["-g", "*.md"],
                Box::new(|l: &Location| md.is_match(name(&l.path))),
            ),
            (
                word.to_string(),
                vec!["-g", "!notes/**"],
                Box::new(|l: &Location| !notes.is_match(&l.path)),
            ),
            (
                word.to_string(),
                // Without a slash, a folder of that name at any depth.
                vec!["-g", "!notes"],
                Box::new(|l: &Location| !l.path.split('/').any(|part| part == "notes")),
            ),
            (
                word.to_string(),
                vec!["-t", "py"],
                Box::new(|l: &Location| l.path.ends_with(".py") || l.path.ends_with(".pyi")),
            ),
            (
                word.to_string(),
                vec!["-T", "py"],
                Box::new(|l: &Location| !(l.path.ends_with(".py") || l.path.ends_with(".pyi"))),
            ),
            (
                format!("{word} path:essays/**"),
                vec![],
                Box::new(|l: &Location| l.path.starts_with("essays/")),
            ),
        ];
        for (query, args, keep) in cases {
            let (got, _) = answers(&corpus(), &query, &args);
            let want = expected(&query, &words, &*keep);
            reference::assert_same_answers(&got, &want, &format!("{query:?} {args:?}"));
        }
    }
}

/// Files holding a match of every term of `terms`.
fn files_with_all(index: &Index, terms: &[&str]) -> BTreeSet<String> {
    let mut common: Option<BTreeSet<String>> = None;
    for term in terms {
        let files: BTreeSet<String> = reference::query(index, term)
            .unwrap()
            .into_iter()
            .flat_map(|(_, l)| l.into_iter().map(|l| l.path))
            .collect();
        common = Some(match common {
            None => files,
            Some(c) => c.intersection(&files).cloned().collect(),
        });
    }
    common.unwrap_or_default()
}

#[test]
fn several_terms_answer_the_files_holding_every_one() {
    let index = reference::build_index(&corpus(), &[]);
    for terms in [
        vec!["the", "process"],
        vec!["=danube", "black"],
        vec!["fn", "=let", "mut"],
    ] {
        let query = terms.join(" ");
        let common = files_with_all(&index, &terms);
        // Each word once, in byte order, whichever terms it matches.
        let mut words: BTreeMap<String, Vec<Location>> = BTreeMap::new();
        for term in &terms {
            for (word, locations) in reference::query(&index, term).unwrap() {
                words.insert(word, locations);
            }
        }
        let words: Vec<(String, Vec<Location>)> = words.into_iter().collect();
        let (got, _) = answers(&corpus(), &query, &[]);
        let want = expected(&query, &words, &|l| common.contains(&l.path));
        reference::assert_same_answers(&got, &want, &query);
    }
}

#[test]
fn punctuation_splits_a_query_into_its_words_with_a_note() {
    let index = reference::build_index(&corpus(), &[]);
    // `danube(` is the whole word; `the.proc` is `=the` and the fragment `proc`.
    let (got, note) = answers(&corpus(), "danube(", &[]);
    let want = expected(
        "danube(",
        &reference::query(&index, "=danube").unwrap(),
        &|_| true,
    );
    reference::assert_same_answers(&got, &want, "danube(");
    assert!(note.contains("searching danube( as =danube"), "{note}");
    let (got, note) = answers(&corpus(), "the.proc", &[]);
    let common = files_with_all(&index, &["=the", "proc"]);
    let mut words = reference::query(&index, "=the").unwrap();
    words.extend(reference::query(&index, "proc").unwrap());
    words.sort();
    let want = expected("the.proc", &words, &|l| common.contains(&l.path));
    reference::assert_same_answers(&got, &want, "the.proc");
    assert!(note.contains("as =the proc"), "{note}");
}

#[test]
fn case_sensitive_answers_keep_the_spelling_in_the_file() {
    let root = tempfile::tempdir().unwrap();
    let text = "Foo foo FOO Foobar\nfoo Foo_x\n  Foo fOO\n";
    support::write(root.path(), "a.txt", text.as_bytes());
    support::write(root.path(), "b.txt", b"FOO Foo\n");
    let (got, _) = answers(root.path(), "Foo", &["-s"]);
    // Independent: every occurrence, its spelling read from the file.
    let mut spellings: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for file in ["a.txt", "b.txt"] {
        let bytes = std::fs::read(root.path().join(file)).unwrap();
        let lines: Vec<&str> = std::str::from_utf8(&bytes).unwrap().lines().collect();
        for (_, line, column) in reference::occurrences(&bytes) {
            let rest = &lines[line as usize - 1][column as usize - 1..];
            let word: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if word.starts_with("Foo") {
                spellings
                    .entry(word)
                    .or_default()
                    .push(json!({"path": file, "line": line, "column": column}));
            }
        }
    }
    let want: Vec<Value> = spellings
        .into_iter()
        .map(|(word, l)| json!({"query": "Foo", "word": word, "count": l.len(), "locations": l}))
        .collect();
    reference::assert_same_answers(&got, &want, "-s Foo");
    // Without the tree there is no spelling to read.
    let out = indexer()
        .args(["--index", "/nonexistent.idx", "-s", "-q", "Foo"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
}

/// The files `-l` lists for every word.
fn listed(root: &Path, args: &[&str]) -> Vec<String> {
    let out = indexer()
        .current_dir(root)
        .arg(".")
        .args(["-l", "-q", "*"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_start_matches("./").to_string())
        .collect()
}

#[test]
fn ignore_files_are_honoured_unless_no_ignore() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    for (path, text) in [
        ("repo/a.txt", "alpha"),
        ("repo/build/b.txt", "beta"),
        ("repo/sub/c.log", "gamma"),
        ("repo/sub/keep.log", "delta"),
        ("repo/secret.txt", "eps"),
        ("repo/.gitignore", "build/\n*.log\n"),
        ("repo/sub/.gitignore", "!keep.log\n"),
        ("repo/.git/info/exclude", "secret.txt\n"),
        ("repo/.ignore", "a.txt\n"),
        ("repo/sub/.ignore", "!c.log\n"),
        ("plain/z.log", "zeta"),
        ("plain/.gitignore", "*.log\n"),
        ("plain/i.txt", "eta"),
        ("plain/.ignore", "i.txt\n"),
    ] {
        support::write(r, path, text.as_bytes());
    }
    // .gitignore counts only inside a repository (plain/ is not one);
    // .ignore anywhere, and outranks .gitignore (c.log is kept by it).
    let want = [
        "plain/.gitignore",
        "plain/.ignore",
        "plain/z.log",
        "repo/.gitignore",
        "repo/.ignore",
        "repo/sub/.gitignore",
        "repo/sub/.ignore",
        "repo/sub/c.log",
        "repo/sub/keep.log",
    ];
    assert_eq!(listed(r, &[]), want);
    let everything: Vec<String> = walkdir::WalkDir::new(r)
        .sort_by_file_name()
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(r).unwrap().display().to_string())
        .filter(|p| !p.starts_with("repo/.git/"))
        .collect();
    let mut everything = everything;
    everything.sort();
    assert_eq!(listed(r, &["--no-ignore"]), everything);
}

/// The rules of the folders above the root apply, and a `.git` file (a
/// worktree's or a submodule's) makes its folder a repository's top, where
/// the outer repository's `.gitignore` stops. `rg --files --hidden` lists
/// the same files of this tree.
#[test]
fn ignore_files_apply_from_above_the_root_and_a_git_file_tops_a_repository() {
    let top = tempfile::tempdir().unwrap();
    let t = top.path();
    std::fs::create_dir_all(t.join("outer/.git")).unwrap();
    for (path, text) in [
        ("outer/.gitignore", "*.tmp\n"),
        ("outer/.ignore", "skip/\n"),
        ("outer/src/a.txt", "alpha"),
        ("outer/src/b.tmp", "beta"),
        ("outer/src/skip/c.txt", "gamma"),
        ("outer/src/d.txt", "delta"),
        ("outer/src/wt/.git", "gitdir: ../x"),
        ("outer/src/wt/.gitignore", "e.txt\n"),
        ("outer/src/wt/e.txt", "eps"),
        ("outer/src/wt/f.tmp", "zeta"),
        ("outer/src/plain/.gitignore", "!g.tmp\n"),
        ("outer/src/plain/g.tmp", "eta"),
    ] {
        support::write(t, path, text.as_bytes());
    }
    let want = [
        "a.txt",
        "d.txt",
        "plain/.gitignore",
        "plain/g.tmp",
        "wt/.git",
        "wt/.gitignore",
        "wt/f.tmp",
    ];
    assert_eq!(listed(&t.join("outer/src"), &[]), want);
}

#[test]
fn a_word_that_matches_nothing_suggests_the_closest() {
    let out = indexer()
        .arg(corpus())
        .args(["-q", "danuble", "-q", "zzqqxxww"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(
        err.contains("no words match \"danuble\"; did you mean danube?"),
        "{err}"
    );
    assert!(err.contains("no words match \"zzqqxxww\"\n"), "{err}");
}

#[test]
fn completions_and_the_man_page_are_generated() {
    for (shell, mark) in [
        ("bash", "_indexer()"),
        ("zsh", "#compdef indexer"),
        ("fish", "complete -c indexer"),
    ] {
        let out = indexer().args(["--completions", shell]).output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(mark) && text.contains("no-ignore"), "{shell}");
    }
    let out = indexer().arg("--man").output().unwrap();
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && page.contains(".TH indexer") && page.contains("case\\-sensitive"),
        "{page}"
    );
    let out = indexer().args(["--completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
