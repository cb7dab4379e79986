//! Saving an index to a file, opening it again in milliseconds, and
//! refreshing it after the tree changed.
//!
//! A saved index is a *base* file, and after refreshes a *delta* file
//! beside it (`FILE.delta`). Rewriting a kernel-sized base costs seconds
//! (most of it the fsync of a few hundred megabytes), so a refresh that
//! touched a few files writes only a delta: the new versions of the changed
//! and added files, which of the base's files it hides, and by how much
//! that lowers the base's word counts. A [`View`] stacks the two and
//! answers exactly as a fresh build would. When the delta grows past an
//! eighth of the tree, the refresh writes a new base instead and drops the
//! delta.
//!
//! Every write goes to a temporary file in the destination's folder, is
//! synced, then renamed over the destination; a delta names the base it
//! belongs to, so a crash between writing a new base and removing the old
//! delta leaves a delta that is ignored, never misapplied.
//!
//! Files are used in place through a memory map: the container format checks the
//! header and every section's checksum when a file is opened, and the
//! index layer reads the vocabulary, counts and lists from the map without
//! decoding them first.

pub(crate) mod format;
mod names;
mod refresh;
mod segment;
pub mod shards;
mod spill;

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use format::{Damage, FormatError, Part};
pub use names::{delta_path, family_pattern};
pub use refresh::{refresh, Refreshed};
pub use segment::{FileRecord, Kind, Meta, Segment};

use crate::index::build::{build_listed, BuildError, Built, Phase};
use crate::index::bytes::Owner;
use crate::index::stream::{merge_into, RunSource};
use crate::index::walk::{below_root, walk};
use crate::index::FileTable;
use crate::index::{BuildOptions, BuildReport, Damaged, FileStamp, Layer, Progress, View};
use format::folder_of;
use segment::{Destination, SegmentWriter, Written};
use spill::SpillFolder;

/// Why an index file could not be used or written.
#[derive(Debug)]
pub enum StoreError {
    /// Not an index, or a damaged or incompatible one.
    Format(PathBuf, FormatError),
    /// The file system refused.
    Io(PathBuf, &'static str, io::Error),
    /// The index was built from another tree.
    OtherRoot {
        /// The index.
        file: PathBuf,
        /// The tree it was built from.
        built_from: String,
        /// The tree asked for.
        asked: String,
    },
    /// The refresh's build could not run.
    Build(BuildError),
    /// The delta beside an index is damaged.
    DamagedDelta {
        /// The index.
        index: PathBuf,
        /// Its delta.
        delta: PathBuf,
        /// What is wrong.
        error: FormatError,
    },
    /// A part of a sharded index (see [`shards`]) is missing or wrong.
    Part {
        /// The index (its manifest).
        index: PathBuf,
        /// The part.
        part: PathBuf,
        /// What is wrong with it.
        problem: shards::PartProblem,
    },
    /// Something that is not an index stands where one would be written.
    NotAnIndex {
        /// Where.
        file: PathBuf,
        /// What it is.
        what: &'static str,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Format(path, e @ FormatError::NotAFile) => {
                write!(f, "{}: {e}", path.display())
            }
            StoreError::Format(path, e) => write!(
                f,
                "{}: {e}; rebuild it with `indexer DIR --save {}`",
                path.display(),
                path.display()
            ),
            StoreError::Io(path, action, e) => write!(f, "cannot {action} {}: {e}", path.display()),
            StoreError::OtherRoot {
                file,
                built_from,
                asked,
            } => write!(
                f,
                "{} was built from {built_from}, not {asked} (use --save to replace it)",
                file.display()
            ),
            StoreError::Build(e) => write!(f, "{e}"),
            StoreError::DamagedDelta {
                index,
                delta,
                error,
            } => write!(
                f,
                "{}: {error}; a refresh repairs it (`indexer DIR --index {}`), or rebuild with `indexer DIR --save {}`",
                delta.display(),
                index.display(),
                index.display()
            ),
            StoreError::Part {
                index,
                part,
                problem,
            } => write!(
                f,
                "{}: this part of {} {problem}; rebuild the index (`indexer DIR --save {}`, or again with indexer-mpi)",
                part.display(),
                index.display(),
                index.display()
            ),
            StoreError::NotAnIndex { file, what } => write!(
                f,
                "{} is {what}, not an index; refusing to replace it (choose another FILE)",
                file.display()
            ),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Format(_, e) | StoreError::DamagedDelta { error: e, .. } => Some(e),
            StoreError::Io(_, _, e) => Some(e),
            StoreError::Build(e) => Some(e),
            StoreError::Part { problem, .. } => match problem {
                shards::PartProblem::Io(e) => Some(e),
                shards::PartProblem::Format(e) => Some(e),
                shards::PartProblem::Missing | shards::PartProblem::Stale => None,
            },
            StoreError::OtherRoot { .. } | StoreError::NotAnIndex { .. } => None,
        }
    }
}

/// Checks, before any work, that an index may be written at `file`:
/// nothing is there, or an index of ours is (the magic bytes say so). A
/// source file, a link, a device, a FIFO or a folder is never replaced.
pub fn check_replaceable(file: &Path) -> Result<(), StoreError> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let refuse = |what| {
        Err(StoreError::NotAnIndex {
            file: file.into(),
            what,
        })
    };
    let meta = match fs::symlink_metadata(file) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::Io(file.into(), "look at", e)),
    };
    let kind = meta.file_type();
    if kind.is_symlink() {
        return refuse("a symbolic link");
    }
    if kind.is_dir() {
        return refuse("a folder");
    }
    if kind.is_fifo() || kind.is_socket() || kind.is_block_device() || kind.is_char_device() {
        return refuse("not a regular file");
    }
    let mut magic = [0u8; 8];
    let read = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(file)
        .and_then(|mut f| f.read_exact(&mut magic));
    match read {
        Ok(()) if magic == format::MAGIC => Ok(()),
        Ok(()) => refuse("a file"),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => refuse("a file"),
        Err(e) => Err(StoreError::Io(file.into(), "read", e)),
    }
}

/// Removes `file` if it is an index of ours (a stale delta, say).
fn remove_if_index(file: &Path) {
    if fs::symlink_metadata(file).is_ok() && check_replaceable(file).is_ok() {
        let _ = fs::remove_file(file);
    }
}

/// Lets the pages of `bytes`, a range of a file mapping, go: they were
/// read once to be checked, and they stay in the page cache, but kept
/// mapped they would count in the process's memory until it exits.
fn release_pages(bytes: &[u8]) {
    const PAGE: usize = 4096;
    let start = (bytes.as_ptr() as usize).next_multiple_of(PAGE);
    let end = (bytes.as_ptr() as usize + bytes.len()) / PAGE * PAGE;
    if end > start {
        // SAFETY: the range lies inside a read-only shared file mapping
        // (only mapped owners are given this function); MADV_DONTNEED on
        // such a mapping drops pages from this process only, and the next
        // read faults them back from the file, unchanged.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
}

/// Maps an open file read-only (see [`map`] for why that is sound).
fn map_file(file: &fs::File) -> io::Result<Owner> {
    if file.metadata()?.len() == 0 {
        return Ok(Arc::new(Vec::<u8>::new()));
    }
    // SAFETY: as in `map`: index files are never modified in place, and an
    // anonymous one is reachable by no other program.
    let map = unsafe { memmap2::Mmap::map(file) }?;
    Ok(Arc::new(map))
}

/// Maps `path` read-only. Index files are only ever replaced by rename,
/// never rewritten in place, so a mapped file does not change under us.
fn map(path: &Path) -> Result<Option<Owner>, StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking, so a FIFO put in an index's place cannot hang the open.
    let file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::Io(path.into(), "open", e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| StoreError::Io(path.into(), "read", e))?;
    if !meta.is_file() {
        return Err(StoreError::Format(path.into(), FormatError::NotAFile));
    }
    let len = meta.len();
    if len == 0 {
        return Ok(Some(Arc::new(Vec::<u8>::new())));
    }
    // SAFETY: the map is read-only and the file is never modified in place
    // by this program (see above); another program truncating it under us
    // is the hazard every mmap-based reader (ripgrep included) accepts.
    let map =
        unsafe { memmap2::Mmap::map(&file) }.map_err(|e| StoreError::Io(path.into(), "map", e))?;
    Ok(Some(Arc::new(map)))
}

/// A saved index: its base and, if refreshed, the delta on it.
#[derive(Debug)]
pub struct Stored {
    /// The base segment.
    pub base: Segment,
    /// The delta, if one belongs to this base.
    pub delta: Option<Segment>,
    /// A sharded index's parts after the first, which is `base` (see
    /// [`shards`]); sharded indexes have no delta.
    pub shards: Vec<Segment>,
}

impl Stored {
    /// Opens `path` (and its delta, or its parts); `Ok(None)` if `path`
    /// does not exist.
    ///
    /// The files are memory-mapped and read in place. This program only
    /// ever replaces an index file by renaming a new one over it, which
    /// leaves the mapped file as it was; another program that truncates or
    /// rewrites it in place while it is open breaks that assumption (as
    /// for every mmap-based reader, ripgrep's included): a damaged chunk is
    /// still caught by its hash, but a truncated file can end the process
    /// with SIGBUS.
    pub fn open(path: &Path) -> Result<Option<Stored>, StoreError> {
        Self::open_with(path, false).map(|opened| opened.map(|(stored, _)| stored))
    }

    /// Opens `path` to refresh it: a damaged delta is set aside (the
    /// refresh compares the tree with the base alone and writes a new
    /// delta), and the reason is returned to be shown.
    pub fn open_to_refresh(
        path: &Path,
    ) -> Result<Option<(Stored, Option<StoreError>)>, StoreError> {
        Self::open_with(path, true)
    }

    fn open_with(
        path: &Path,
        set_aside_damaged_delta: bool,
    ) -> Result<Option<(Stored, Option<StoreError>)>, StoreError> {
        let Some(owner) = map(path)? else {
            return Ok(None);
        };
        let container = format::Container::open(owner, Some(release_pages))
            .map_err(|e| StoreError::Format(path.into(), e))?;
        if shards::is_manifest(&container) {
            let mut parts = shards::open_parts(path, &container)?.into_iter();
            let Some(base) = parts.next() else {
                return Err(StoreError::Format(
                    path.into(),
                    FormatError::Damaged(Damage::Malformed(Part::PartList)),
                ));
            };
            let stored = Stored {
                base,
                delta: None,
                shards: parts.collect(),
            };
            return Ok(Some((stored, None)));
        }
        let base =
            segment::read_container(container).map_err(|e| StoreError::Format(path.into(), e))?;
        // A refresh reuses every table and compares every file record:
        // they are checked whole first.
        if set_aside_damaged_delta {
            if !base.index.verify_tables() {
                return Err(StoreError::Format(
                    path.into(),
                    FormatError::Damaged(Damage::Checksum(Part::WordTables)),
                ));
            }
            base.verify_files()
                .map_err(|e| StoreError::Format(path.into(), e))?;
        }
        if base.meta.kind != Kind::Base {
            return Err(StoreError::Format(
                path.into(),
                FormatError::Damaged(Damage::NotABase),
            ));
        }
        let delta_file = delta_path(path);
        let damaged = |error| StoreError::DamagedDelta {
            index: path.into(),
            delta: delta_file.clone(),
            error,
        };
        let (delta, set_aside) = match map(&delta_file) {
            Ok(Some(owner)) => match segment::read(owner, Some(release_pages)) {
                // A delta of another base is left over from before a full
                // save: ignore it.
                Ok(delta)
                    if set_aside_damaged_delta
                        && !(delta.index.verify_tables()
                            && delta
                                .index
                                .verify(0..delta.index.vocabulary().len())
                                .is_ok()) =>
                {
                    (
                        None,
                        Some(damaged(FormatError::Damaged(Damage::Checksum(
                            Part::Occurrences,
                        )))),
                    )
                }
                Ok(delta) if set_aside_damaged_delta && delta.verify_files().is_err() => (
                    None,
                    Some(damaged(FormatError::Damaged(Damage::Checksum(
                        Part::FileTable,
                    )))),
                ),
                Ok(delta) => (
                    (delta.meta.kind == Kind::Delta && delta.meta.base_id == base.meta.base_id)
                        .then_some(delta),
                    None,
                ),
                Err(e) if set_aside_damaged_delta => (None, Some(damaged(e))),
                Err(e) => return Err(damaged(e)),
            },
            Ok(None) => (None, None),
            Err(StoreError::Format(_, e)) if set_aside_damaged_delta => (None, Some(damaged(e))),
            Err(StoreError::Format(_, e)) => return Err(damaged(e)),
            Err(e) => return Err(e),
        };
        let shards = Vec::new();
        Ok(Some((
            Stored {
                base,
                delta,
                shards,
            },
            set_aside,
        )))
    }

    /// True for an index saved in parts (see [`shards`]).
    pub fn is_sharded(&self) -> bool {
        !self.shards.is_empty()
    }

    /// The tree it was built from, for messages.
    pub fn root(&self) -> String {
        String::from_utf8_lossy(&self.base.meta.root).into_owned()
    }

    /// The `--exclude` globs of its last save.
    pub fn excludes(&self) -> &[String] {
        self.delta
            .as_ref()
            .map_or(&self.base.meta.excludes, |d| &d.meta.excludes)
    }

    /// When it was last saved, in seconds since 1970.
    pub fn saved_at(&self) -> u64 {
        self.delta
            .as_ref()
            .map_or(self.base.meta.saved_at, |d| d.meta.saved_at)
    }

    /// The index as one view; [`Damage::Checksum`] if its file table is
    /// damaged.
    pub fn into_view(self) -> Result<View, FormatError> {
        self.make_view(true)
    }

    /// [`Stored::into_view`] without the files' stamps, which only lines
    /// read from the tree use: an index opened alone reads no record, and
    /// checks each path as it is read (see [`View::verify`]).
    pub fn into_view_without_stamps(self) -> Result<View, FormatError> {
        self.make_view(false)
    }

    fn make_view(self, stamps: bool) -> Result<View, FormatError> {
        let Stored {
            base,
            delta,
            shards,
        } = self;
        // Stamps are read from every record, and a view of a base and its
        // delta merges their file tables: then they are checked whole now.
        if stamps || delta.is_some() {
            base.verify_files()?;
        }
        if !shards.is_empty() {
            let records = base.records;
            let parts = std::iter::once(base.index).chain(shards.into_iter().map(|s| s.index));
            let view = View::sharded(parts.collect());
            return Ok(match stamps {
                true => stamped(view, &[records.as_slice()]),
                false => view,
            });
        }
        let Some(delta) = delta else {
            let records = base.records;
            let view = View::new(vec![Layer::new(base.index, &[], Vec::new())]);
            return Ok(match stamps {
                true => stamped(view, &[records.as_slice()]),
                false => view,
            });
        };
        delta.verify_files()?;
        let records = [base.records, delta.records];
        let dropped = marks(records[0].len(), &delta.dropped);
        let layers = vec![
            Layer::new(base.index, &dropped, delta.adjusted).with_raw_paths(raw_paths(&records[0])),
            Layer::new(delta.index, &[], Vec::new()).with_raw_paths(raw_paths(&records[1])),
        ];
        let view = View::new(layers);
        Ok(match stamps {
            true => stamped(view, &[records[0].as_slice(), records[1].as_slice()]),
            false => view,
        })
    }
}

/// `view` with its files' stamps, from `records` per layer.
pub(crate) fn stamped(view: View, records: &[&[FileRecord]]) -> View {
    view.with_stamps(|layer, file| {
        let record = records.get(layer)?.get(file)?;
        Some(FileStamp {
            size: record.size,
            mtime_ns: record.mtime_ns,
        })
    })
}

/// The files' raw relative paths, which order files whose displayed
/// paths are equal.
fn raw_paths(records: &[FileRecord]) -> Vec<Option<Box<[u8]>>> {
    records
        .iter()
        .map(|r| r.raw.as_deref().map(Box::from))
        .collect()
}

fn marks(len: usize, set: &[u32]) -> Vec<bool> {
    let mut marked = vec![false; len];
    for &f in set {
        if let Some(m) = marked.get_mut(f as usize) {
            *m = true;
        }
    }
    marked
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn new_base_id(path: &Path) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut seed = Vec::new();
    seed.extend_from_slice(&nanos.to_le_bytes());
    seed.extend_from_slice(&std::process::id().to_le_bytes());
    seed.extend_from_slice(path.as_os_str().as_bytes());
    twox_hash::XxHash3_64::oneshot(&seed)
}

/// The records of a build's files, in its index's order. `names` is the
/// file table of the index the build merged in memory, which holds their
/// displayed paths (see [`BuildReport::files`]); `None` for a build whose
/// runs were streamed.
pub fn records_of(report: &BuildReport, root: &Path, names: Option<&FileTable>) -> Vec<FileRecord> {
    let recheck: std::collections::HashSet<&str> = report
        .unreadable
        .iter()
        .chain(&report.failed)
        .map(|p| p.path.as_str())
        .collect();
    records_of_files(&report.files, root, names, &|display| {
        !recheck.is_empty() && recheck.contains(display)
    })
}

/// The records of `files` listed under `root`, their displayed paths read
/// from `names` if given; `recheck` says which could not be read (a
/// refresh reads those again whatever their stamps).
pub fn records_of_files(
    files: &[crate::index::walk::FileEntry],
    root: &Path,
    names: Option<&FileTable>,
    recheck: &dyn Fn(&str) -> bool,
) -> Vec<FileRecord> {
    files
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            // (An in-memory table cannot be damaged: its paths are in memory.)
            let display = names.and_then(|t| t.path(i).ok()).unwrap_or(&entry.display);
            let raw = relative_bytes(&entry.path, root);
            FileRecord {
                raw: (raw != display.as_bytes()).then(|| raw.to_vec()),
                display: display.to_owned(),
                size: entry.size,
                mtime_ns: entry.mtime_ns,
                ctime_ns: entry.ctime_ns,
                inode: entry.inode,
                recheck: recheck(display),
            }
        })
        .collect()
}

/// `path` relative to `root`, as `Path::strip_prefix` gives it (the whole
/// path if it is not below `root`), as bytes.
fn relative_bytes<'a>(path: &'a Path, root: &Path) -> &'a [u8] {
    below_root(path, root).as_os_str().as_bytes()
}

/// What a save wrote.
#[derive(Debug, Clone, Copy, Default)]
pub struct Saved {
    /// Bytes of the file written.
    pub bytes: u64,
    /// Time taken.
    pub time: Duration,
    /// True if a delta was written rather than a whole base.
    pub delta: bool,
}

/// Saves a fresh build of `root` (canonical) as a new base at `path`.
pub fn save(
    path: &Path,
    root: &Path,
    excludes: &[String],
    view: &View,
    records: &[FileRecord],
) -> Result<Saved, StoreError> {
    let started = Instant::now();
    let meta = base_meta(path, root, excludes);
    let written = segment::write(Destination::File(path), view, records, &meta, &[], &[])
        .map_err(|e| write_error(path, e))?;
    // Any delta or parts belonged to the old index; they would be
    // ignored, but they are dead weight.
    remove_if_index(&delta_path(path));
    shards::remove_stale_parts(path, &[]);
    Ok(Saved {
        bytes: written.len(),
        time: started.elapsed(),
        delta: false,
    })
}

/// A description of a new base of `root`.
fn base_meta(path: &Path, root: &Path, excludes: &[String]) -> Meta {
    Meta {
        kind: Kind::Base,
        base_id: new_base_id(path),
        root: root.as_os_str().as_bytes().to_vec(),
        excludes: excludes.to_vec(),
        saved_at: now_secs(),
    }
}

/// Where a build's index goes.
#[derive(Debug, Clone, Copy)]
pub enum Output<'a> {
    /// Nowhere: it is answered from and dropped. Past the memory budget it
    /// is kept in an unnamed file in this folder (`$TMPDIR`, say).
    Temporary(&'a Path),
    /// Saved to this file, as a new base.
    Saved(&'a Path),
}

impl Output<'_> {
    fn folder(&self) -> &Path {
        match self {
            Output::Temporary(folder) => folder,
            Output::Saved(path) => folder_of(path),
        }
    }
}

/// A build, and where its index went.
#[derive(Debug)]
pub struct Build {
    /// The index to answer from.
    pub view: View,
    /// What the build did.
    pub report: BuildReport,
    /// What was saved, for [`Output::Saved`].
    pub saved: Option<Saved>,
}

/// Builds the index of the tree at `root` (`canonical` is its canonical
/// form, recorded in a saved index) within `options.memory`: runs past
/// the budget go to temporary files in `output`'s folder and are merged
/// by streaming into the saved format, straight into the saved file or
/// into an unnamed one that is then used in place.
pub fn build(
    root: &Path,
    canonical: &Path,
    options: &BuildOptions,
    output: Output<'_>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Build, StoreError> {
    let started = Instant::now();
    let listing =
        walk(root, &options.excludes).map_err(|e| StoreError::Build(BuildError::Root(e)))?;
    let mut spill = SpillFolder::new(output.folder());
    let (built, mut report) = build_listed(listing, started, options, Some(&mut spill), progress)
        .map_err(StoreError::Build)?;
    let excludes = options.excludes.globs();
    let sources = match built {
        Built::Index(index) => {
            // Stamped from the walk, which the records would only copy: they
            // are made when saving (a temporary index has no use for 78 K
            // copied paths).
            let view = View::single(*index).with_stamps(|_, file| {
                let entry = report.files.get(file)?;
                Some(FileStamp {
                    size: entry.size,
                    mtime_ns: entry.mtime_ns,
                })
            });
            let saved = match output {
                Output::Saved(path) => {
                    progress(&Progress {
                        files_done: report.files.len(),
                        files_total: report.files.len(),
                        bytes_done: report.bytes,
                        bytes_total: report.bytes,
                        busy: 0,
                        elapsed: started.elapsed(),
                        phase: Phase::Saving,
                    });
                    let records = records_of(&report, root, Some(view.files()));
                    Some(save(path, canonical, &excludes, &view, &records)?)
                }
                Output::Temporary(_) => None,
            };
            return Ok(Build {
                view,
                report,
                saved,
            });
        }
        Built::Streamed(sources) => sources,
    };
    let records = records_of(&report, root, None);
    let merge_started = Instant::now();
    let (path, destination) = match output {
        Output::Saved(path) => (path.to_path_buf(), Destination::File(path)),
        Output::Temporary(folder) => (folder.to_path_buf(), Destination::Anonymous(folder)),
    };
    let meta = base_meta(&path, canonical, &excludes);
    let (written, distinct) = write_streamed(sources, &spill, destination, &meta, &records)?;
    report.distinct = distinct;
    report.timings.merge = merge_started.elapsed();
    report.timings.total = started.elapsed();
    let saved = matches!(output, Output::Saved(_)).then(|| {
        remove_if_index(&delta_path(&path));
        shards::remove_stale_parts(&path, &[]);
        Saved {
            bytes: written.len(),
            time: merge_started.elapsed(),
            delta: false,
        }
    });
    let segment = open_written(written, &path)?;
    Ok(Build {
        view: Stored {
            base: segment,
            delta: None,
            shards: Vec::new(),
        }
        .into_view()
        .map_err(|e| StoreError::Format(path.clone(), e))?,
        report,
        saved,
    })
}

/// Merges runs (in file order) by streaming into a segment at
/// `destination`; returns it and its number of words.
fn write_streamed(
    sources: Vec<Box<dyn RunSource>>,
    spill: &SpillFolder,
    destination: Destination<'_>,
    meta: &Meta,
    records: &[FileRecord],
) -> Result<(Written, usize), StoreError> {
    let where_ = match destination {
        Destination::File(path) => path.to_path_buf(),
        Destination::Anonymous(folder) => folder.to_path_buf(),
    };
    let io_error = |e: io::Error| StoreError::Io(where_.clone(), "write the index in", e);
    // The runs that went to disk were freed into the allocator, which
    // keeps freed memory while workers churn: hand it back before merging.
    crate::index::merge::release_free_memory();
    let sources = spill::reduce(sources, spill, spill::fan_in()).map_err(io_error)?;
    let mut writer =
        SegmentWriter::create(destination, meta, records).map_err(|e| write_error(&where_, e))?;
    let words = merge_halves(sources, &mut writer, spill.folder()).map_err(io_error)?;
    let written = writer
        .finish(&[], &[])
        .map_err(|e| write_error(&where_, e))?;
    Ok((written, words as usize))
}

/// Merges `sources` into `writer` on two threads: the words below a middle
/// word on this one, the rest on another into a part that is then
/// appended. The workers are reaped by now, so threads are safe. Where the
/// posting lists outweigh the words many times (few words, huge lists),
/// the merge is mostly copying lists, and the part's lists would be
/// written twice: one thread does it all.
fn merge_halves(
    sources: Vec<Box<dyn RunSource>>,
    writer: &mut SegmentWriter,
    folder: &Path,
) -> io::Result<u64> {
    let (words, lists) = sources.iter().fold((0, 0), |(w, l), s| {
        let (sw, sl) = s.sizes();
        (w + sw, l + sl)
    });
    if lists > 8 * words {
        return Ok(merge_into(sources, writer)?.words);
    }
    // Words from every source in proportion to its entries (checkpoints
    // are a fixed number of entries apart), so each half gets about as
    // many entries to merge.
    let mut samples = Vec::new();
    for source in &sources {
        samples.extend(source.sample(16)?);
    }
    samples.sort();
    let Some(middle) = samples.get(samples.len() / 2).cloned() else {
        return Ok(merge_into(sources, writer)?.words);
    };
    let (mut low, mut high) = (Vec::new(), Vec::new());
    for source in sources {
        let (below, rest) = source.split(&middle)?;
        low.push(below);
        high.push(rest);
    }
    let (lower, upper) = std::thread::scope(|scope| {
        let upper = scope.spawn(move || -> io::Result<_> {
            let mut part = segment::PartWriter::new(folder)?;
            let merged = merge_into(high, &mut part)?;
            Ok((part, merged))
        });
        let lower = merge_into(low, writer);
        let upper = upper
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the merge thread failed")));
        (lower, upper)
    });
    let lower = lower?;
    let (part, upper) = upper?;
    writer.append(part)?;
    Ok(lower.words + upper.words)
}

/// Opens a segment just written.
fn open_written(written: Written, path: &Path) -> Result<Segment, StoreError> {
    let owner = match written {
        Written::File(_) => map(path)?
            .ok_or_else(|| StoreError::Io(path.into(), "open", io::ErrorKind::NotFound.into()))?,
        Written::Anonymous(file, _) => {
            map_file(&file).map_err(|e| StoreError::Io(path.into(), "map", e))?
        }
    };
    segment::read(owner, Some(release_pages)).map_err(|e| StoreError::Format(path.into(), e))
}

fn write_error(path: &Path, e: segment::WriteError) -> StoreError {
    match e {
        segment::WriteError::DamagedSource => StoreError::Format(
            path.into(),
            FormatError::Damaged(Damage::Checksum(Part::Occurrences)),
        ),
        segment::WriteError::Io(e) => StoreError::Io(path.into(), "write", e),
    }
}

/// The records of a view's files, from each layer's records.
fn view_records(view: &View, layers: &[Vec<FileRecord>]) -> Vec<FileRecord> {
    (0..view.files().len())
        .filter_map(|file| {
            let (l, f) = view.origin(file)?;
            layers.get(l)?.get(f).cloned()
        })
        .collect()
}

/// Opens `data` as an index file and decodes every word, count and
/// location of it; returns how many locations it decoded. For fuzzing the
/// loader: whatever the bytes, this must return, not panic or hang.
pub fn check_bytes(data: &[u8]) -> Result<u64, FormatError> {
    let owner: Owner = Arc::new(data.to_vec());
    let segment = segment::read(owner, None)?;
    let dropped = marks(segment.records.len(), &segment.dropped);
    let view = View::new(vec![Layer::new(segment.index, &dropped, segment.adjusted)]);
    let damaged = |Damaged| FormatError::Damaged(Damage::Checksum(Part::Occurrences));
    let words_damaged = |Damaged| FormatError::Damaged(Damage::Checksum(Part::Vocabulary));
    let mut decoded = 0u64;
    for hit in view
        .hits(|v| crate::index::Picks::span(0..v.len()))
        .map_err(damaged)?
    {
        view.word(&hit).map_err(words_damaged)?;
        view.count(&hit).map_err(damaged)?;
        for location in view.locations(&hit).map_err(damaged)? {
            view.path(location.file).map_err(damaged)?;
            decoded += 1;
        }
    }
    Ok(decoded)
}
