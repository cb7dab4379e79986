//! `.ignore`, `.gitignore` and `.git/info/exclude`, honoured as ripgrep
//! honours them.
//!
//! A tree kept in git says what is not its own (build output, vendored
//! copies, generated files); indexing them by default would fill answers
//! with noise and slow the build, which is why rg skips them. The rules are
//! ripgrep's, through the `ignore` crate's gitignore matchers (the same
//! code rg runs), while our own walker lists folders: the `ignore` crate's own
//! walker would start threads, and the runtime forks right after the walk.
//!
//! - `.ignore` applies anywhere; `.gitignore` and `.git/info/exclude` only
//!   inside a git repository (a folder holding `.git`, at the root or
//!   above it), and `.gitignore` files above the repository's top do not.
//! - Files of folders above the indexed root count too, as in rg.
//! - For each kind, the nearest folder with a rule for the path decides;
//!   then `.ignore` outranks `.gitignore`, which outranks `.git/info/exclude`
//!   (so `!keep.c` in an `.ignore` keeps a file a `.gitignore` names).
//! - A line that is not a valid glob is skipped, as rg skips it.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;

/// The ignore files of one folder.
#[derive(Debug)]
struct Folder {
    ignore: Option<Gitignore>,
    gitignore: Option<Gitignore>,
    exclude: Option<Gitignore>,
    /// The folder holds `.git`: the top of a repository.
    is_repository: bool,
}

/// Which of the names the rules come from a folder holds. The walk reads
/// every folder's listing anyway, so it says which are there, and no name
/// is looked up that is not: looking up `.git` and `.ignore` by whole
/// path in each of the kernel's 5 thousand folders, nearly always in
/// vain, took 10 ms of its 150 ms walk.
#[derive(Debug, Clone, Copy, Default)]
pub struct Present {
    git: bool,
    ignore: bool,
    gitignore: bool,
}

impl Present {
    /// Notes one name of the folder's listing.
    pub fn note(&mut self, name: &OsStr) {
        match name.as_bytes() {
            b".git" => self.git = true,
            b".ignore" => self.ignore = true,
            b".gitignore" => self.gitignore = true,
            _ => {}
        }
    }

    /// For a folder whose listing the walk does not read (those above
    /// the root): `.git` looked up, the ignore files left to the reader.
    fn probe(dir: &Path) -> Present {
        Present {
            git: std::fs::symlink_metadata(dir.join(".git")).is_ok(),
            ignore: true,
            gitignore: true,
        }
    }
}

impl Folder {
    /// Reads `dir`'s files among those `present`; `.gitignore` only when
    /// `in_repository`.
    fn read(dir: &Path, in_repository: bool, present: Present) -> Folder {
        let is_repository = present.git;
        let in_repository = in_repository || is_repository;
        Folder {
            ignore: present
                .ignore
                .then(|| matcher(dir, &[dir.join(".ignore")]))
                .flatten(),
            gitignore: (in_repository && present.gitignore)
                .then(|| matcher(dir, &[dir.join(".gitignore")]))
                .flatten(),
            exclude: is_repository
                .then(|| matcher(dir, &[dir.join(".git/info/exclude")]))
                .flatten(),
            is_repository,
        }
    }

    fn is_empty(&self) -> bool {
        self.ignore.is_none() && self.gitignore.is_none() && self.exclude.is_none()
    }
}

/// The rules in `files`, rooted at `dir`; `None` when there are none.
fn matcher(dir: &Path, files: &[PathBuf]) -> Option<Gitignore> {
    let mut builder = GitignoreBuilder::new(dir);
    let mut any = false;
    for file in files {
        // Absent files are the usual case; a bad line is skipped.
        if file.is_file() {
            any = true;
            let _ = builder.add(file);
        }
    }
    if !any {
        return None;
    }
    builder.build().ok().filter(|g| !g.is_empty())
}

/// The folders whose rules apply inside one folder, outermost first.
#[derive(Debug, Default)]
struct Stack {
    folders: Vec<Arc<Folder>>,
    /// Some folder of the stack is the top of a repository.
    in_repository: bool,
    /// No folder of the stack has any rule: nothing to match.
    empty: bool,
}

impl Stack {
    /// The stack inside a folder below: this one if the folder adds
    /// nothing (no rule, not a repository's top), as most folders do.
    fn push(self: &Arc<Stack>, folder: Folder) -> Arc<Stack> {
        if folder.is_empty() && !folder.is_repository {
            return Arc::clone(self);
        }
        let mut folders = self.folders.clone();
        let empty = self.empty && folder.is_empty();
        let in_repository = self.in_repository || folder.is_repository;
        folders.push(Arc::new(folder));
        Arc::new(Stack {
            folders,
            in_repository,
            empty,
        })
    }

    /// Whether the rules leave `path` (absolute) out.
    fn ignores(&self, path: &Path, is_dir: bool) -> bool {
        if self.empty {
            return false;
        }
        let nearest = |pick: &dyn Fn(&Folder) -> Option<&Gitignore>, git: bool| {
            for folder in self.folders.iter().rev() {
                if let Some(m) = pick(folder) {
                    match m.matched(path, is_dir) {
                        Match::None => {}
                        Match::Ignore(_) => return Some(true),
                        Match::Whitelist(_) => return Some(false),
                    }
                }
                // Git's rules end at the top of the repository.
                if git && folder.is_repository {
                    break;
                }
            }
            None
        };
        let decided = nearest(&|f| f.ignore.as_ref(), false)
            .or_else(|| nearest(&|f| f.gitignore.as_ref(), true))
            .or_else(|| nearest(&|f| f.exclude.as_ref(), true));
        decided.unwrap_or(false)
    }
}

/// The rules that apply to one folder's entries (see [`IgnoreFiles::in_folder`]).
pub struct FolderRules {
    stack: Arc<Stack>,
    canonical: PathBuf,
}

impl FolderRules {
    /// Whether the folder's entry `name` is ignored.
    pub fn ignores(&self, name: &std::ffi::OsStr, is_dir: bool) -> bool {
        !self.stack.empty && self.stack.ignores(&self.canonical.join(name), is_dir)
    }
}

/// The ignore rules of one walk, read folder by folder as the walk meets
/// them (each folder's files once, shared by the walk's threads).
#[derive(Debug)]
pub struct IgnoreFiles {
    /// The walked root as the walker names it, and canonical.
    root: PathBuf,
    canonical: PathBuf,
    stacks: Mutex<HashMap<PathBuf, Arc<Stack>>>,
}

impl IgnoreFiles {
    /// Rules for a walk of `root`, starting with those of the folders above it.
    pub fn new(root: &Path) -> IgnoreFiles {
        let canonical = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let mut stack = Arc::new(Stack {
            empty: true,
            ..Stack::default()
        });
        let mut above: Vec<&Path> = canonical.ancestors().collect();
        above.reverse();
        for dir in above {
            stack = stack.push(Folder::read(dir, stack.in_repository, Present::probe(dir)));
        }
        // A repository found above the root makes the folders between it
        // and the root part of it: their `.gitignore`s were read above only
        // if the repository's top came first, which `ancestors` guarantees.
        let mut stacks = HashMap::new();
        stacks.insert(PathBuf::new(), stack);
        IgnoreFiles {
            root: root.to_path_buf(),
            canonical,
            stacks: Mutex::new(stacks),
        }
    }

    /// The rules for the entries of `folder` (as the walker names it),
    /// whose listing holds the names `present`; looked up once for all of
    /// them.
    pub fn in_folder(&self, folder: &Path, present: Present) -> FolderRules {
        let relative = folder.strip_prefix(&self.root).unwrap_or(Path::new(""));
        let stack = self.stack(relative, Some(present));
        // Entries are matched by their whole path only if some rule applies.
        let canonical = match stack.empty {
            true => PathBuf::new(),
            false => self.canonical.join(relative),
        };
        FolderRules { stack, canonical }
    }

    /// The stack of the folder at `relative` (to the root).
    fn stack(&self, relative: &Path, present: Option<Present>) -> Arc<Stack> {
        let mut stacks = match self.stacks.lock() {
            Ok(stacks) => stacks,
            Err(poisoned) => poisoned.into_inner(),
        };
        self.stack_in(&mut stacks, relative, present)
    }

    /// The stack of the folder at `relative`, read with `present` if
    /// given, else looking its names up (a folder the walk has not listed
    /// first, should there be one).
    fn stack_in(
        &self,
        stacks: &mut HashMap<PathBuf, Arc<Stack>>,
        relative: &Path,
        present: Option<Present>,
    ) -> Arc<Stack> {
        if let Some(stack) = stacks.get(relative) {
            return Arc::clone(stack);
        }
        let parent = self.stack_in(stacks, relative.parent().unwrap_or(Path::new("")), None);
        let dir = self.canonical.join(relative);
        let present = present.unwrap_or_else(|| Present::probe(&dir));
        let stack = parent.push(Folder::read(&dir, parent.in_repository, present));
        stacks.insert(relative.to_path_buf(), Arc::clone(&stack));
        stack
    }
}
