//! Building an [`Index`] with forked workers.
//!
//! The parent walks the tree, then forks `workers` processes. Each worker
//! inherits the file table through fork, so a batch is handed over as a
//! tiny range of file numbers; the worker reads and tokenizes those files
//! into a partial index and sends back sorted runs. The parent polls the
//! workers' channels through an [`Exchange`], hands each idle worker the
//! next batch, and keeps the runs; when every batch is in, it merges them
//! in file order.
//!
//! * `planner`: batches, consecutive ranges of the sorted file table,
//!   sized by bytes and shrinking as the work runs out, so runs taken in
//!   file order need no re-sorting;
//! * `worker` (and `read`, which opens and reads files): the child's
//!   loop;
//! * `coordinator`: the parent's bookkeeping: batches in flight, runs
//!   pending and done, retries, and runs sent to disk.
//!
//! Memory is bounded whatever the input ([`BuildOptions::memory`]): a
//! worker's partial index cuts a run when it reaches its share (in the
//! middle of a file if need be), files are read in windows, and the runs
//! the parent holds go to disk through a [`Spill`] once they pass theirs;
//! the build then ends with runs to merge by streaming ([`Built::Streamed`])
//! rather than an index in memory.
//!
//! A worker that dies (panic, signal, early exit) loses its batch's runs;
//! the batch is halved and retried, a single file once, and a file that
//! fails twice is reported failed while the rest of the tree is indexed.

mod coordinator;
mod planner;
mod read;
mod shared;
mod worker;

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use self::coordinator::{Collected, Coordinator};
use self::planner::{Batch, Planner};
use self::worker::{worker, Report, WorkerContext};
use super::merge::{merge_runs_parallel, MalformedRun};
use super::partial::Limits;
use super::stream::{RunSource, Spill};
use super::walk::{walk, Excludes, FileEntry, Problem, RootError, Walk};
use super::Index;
use crate::parallel::{self, Channel, Event, Exchange};

use self::read::DEFAULT_WINDOW;

/// The default memory budget: all processes of a build together.
pub const DEFAULT_MEMORY: u64 = 1 << 30;

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Live worker processes.
    pub workers: usize,
    /// Files per batch; `None` sizes batches by bytes.
    pub batch_files: Option<usize>,
    /// Extra sleep per batch in the worker (simulates heavy work).
    pub delay: Duration,
    /// `--exclude` globs.
    pub excludes: Excludes,
    /// Test-only fault injection (see [`Fault::from_env`]).
    pub fault: Option<Fault>,
    /// Bytes the build may hold in memory, in all its processes together
    /// (see [`BuildOptions::worker_limits`]); runs past the parent's share
    /// go to disk when the caller gives somewhere to spill them
    /// (as [`crate::store`] does).
    pub memory: u64,
    /// Internal sizes, smaller in tests (see [`TestLimits`]).
    pub test_limits: TestLimits,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            workers: parallel::available_cores(),
            batch_files: None,
            delay: Duration::ZERO,
            excludes: Excludes::default(),
            fault: None,
            memory: DEFAULT_MEMORY,
            test_limits: TestLimits::default(),
        }
    }
}

impl BuildOptions {
    /// A worker's partial index: a quarter of the budget is shared by the
    /// workers, half of each share for the word table and a quarter for
    /// the postings (a run copies them once more as it is cut). Each word
    /// also has its sort item and, as its run is written, a copy of what
    /// its slot holds (64 bytes together, so at most three eighths of the
    /// share once the table is full: its last quarter and an eighth more;
    /// a kernel batch's words take a tenth of it). The rest of the budget
    /// is the parent's (see [`BuildOptions::held_threshold`]).
    pub fn worker_limits(&self) -> Limits {
        let share = (self.memory / 4 / self.workers.max(1) as u64).max(1 << 20);
        let share = usize::try_from(share).unwrap_or(usize::MAX);
        // A run must also fit in one message to the parent.
        let frame = usize::try_from(self.test_limits.frame / 4).unwrap_or(usize::MAX);
        Limits {
            table: share / 2,
            arena: (share / 4).min(frame).min(self.test_limits.arena),
        }
    }

    /// Bytes the parent's runs may take, counting what merging them in
    /// memory will need, before they go to disk: the budget. The merge is
    /// when the parent is largest, and the workers are gone by then; while
    /// they run, the runs take less than that estimate (no vocabulary or
    /// pieces yet), leaving the workers their quarter.
    pub fn held_threshold(&self) -> u64 {
        self.memory
    }
}

/// Sizes that are large in use and made small in tests, so the code paths
/// for huge inputs (a run cut by its arena, a message near the channel's
/// limit, a file read in many windows or in parts) run on small ones. Read
/// from `INDEXER_TEST_LIMITS` (`frame=N,window=N,arena=N,split=N,suffixes=N`,
/// with optional K or M).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestLimits {
    /// Largest message a worker may send.
    pub frame: u64,
    /// Bytes of a file read at a time.
    pub window: usize,
    /// Most posting bytes a worker gathers before cutting a run.
    pub arena: usize,
    /// Files this large are cut into parts for the workers.
    pub split: u64,
    /// Past this many words a saved vocabulary has no suffix keys.
    pub suffixes: usize,
}

impl Default for TestLimits {
    fn default() -> Self {
        TestLimits {
            frame: parallel::DEFAULT_FRAME_LIMIT,
            window: DEFAULT_WINDOW,
            arena: usize::MAX,
            split: planner::SPLIT_BYTES,
            suffixes: crate::index::vocabulary::SUFFIX_ORDER_WORDS,
        }
    }
}

impl TestLimits {
    /// The limits `INDEXER_TEST_LIMITS` sets (defaults where it is silent
    /// or unset; parts that do not parse are ignored).
    pub fn from_env() -> TestLimits {
        let mut limits = TestLimits::default();
        let Ok(spec) = std::env::var("INDEXER_TEST_LIMITS") else {
            return limits;
        };
        for part in spec.split(',') {
            let Some((key, value)) = part.split_once('=') else {
                continue;
            };
            let Some(value) = parse_size(value) else {
                continue;
            };
            match key.trim() {
                "frame" => limits.frame = value,
                "window" => limits.window = usize::try_from(value).unwrap_or(usize::MAX),
                "arena" => limits.arena = usize::try_from(value).unwrap_or(usize::MAX),
                "split" => limits.split = value,
                "suffixes" => limits.suffixes = usize::try_from(value).unwrap_or(usize::MAX),
                _ => {}
            }
        }
        limits
    }
}

/// `N`, `NK`, `NM` or `NG` (binary units) as bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, ""),
    };
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// A fault a worker injects into itself, for testing recovery. Set through
/// the environment: `INDEXER_FAULT=kill:SUBSTR` (or `panic:SUBSTR`) makes a
/// worker die when it is about to read a file whose relative path contains
/// SUBSTR; with `INDEXER_FAULT_ONCE=MARKER` only while the file MARKER does
/// not exist (the worker creates it first), so the retry succeeds.
/// `wait:SUBSTR` (with `INDEXER_FAULT_ONCE=MARKER`) makes the worker create
/// MARKER and wait until it is removed, so a test can change the tree
/// between the walk and the read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// What the worker does.
    pub action: FaultAction,
    /// Substring of the relative path that triggers the fault.
    pub path_contains: String,
    /// Marker file making the fault fire only once.
    pub once_marker: Option<std::path::PathBuf>,
}

/// What an injected [`Fault`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// The worker kills itself with SIGKILL.
    Kill,
    /// The worker panics.
    Panic,
    /// The worker waits until the marker file is removed.
    Wait,
}

impl Fault {
    /// Reads `INDEXER_FAULT` and `INDEXER_FAULT_ONCE`; `None` when unset or
    /// not of the form `kill:SUBSTR`, `panic:SUBSTR` or `wait:SUBSTR` (which
    /// needs the marker).
    pub fn from_env() -> Option<Fault> {
        let spec = std::env::var("INDEXER_FAULT").ok()?;
        let (action, path) = spec.split_once(':')?;
        let action = match action {
            "kill" => FaultAction::Kill,
            "panic" => FaultAction::Panic,
            "wait" => FaultAction::Wait,
            _ => return None,
        };
        let once_marker: Option<std::path::PathBuf> =
            std::env::var_os("INDEXER_FAULT_ONCE").map(Into::into);
        if action == FaultAction::Wait && once_marker.is_none() {
            return None;
        }
        Some(Fault {
            action,
            path_contains: path.to_string(),
            once_marker,
        })
    }

    fn fire_if_matches(&self, display: &str) {
        if !display.contains(&self.path_contains) {
            return;
        }
        if let Some(marker) = &self.once_marker {
            let created = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(marker);
            if created.is_err() {
                return;
            }
        }
        match (self.action, &self.once_marker) {
            (FaultAction::Wait, Some(marker)) => {
                while marker.exists() {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            (FaultAction::Kill, _) => {
                let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
                panic!("injected fault at {display}");
            }
            _ => panic!("injected fault at {display}"),
        }
    }
}

/// Build progress, reported from the parent's poll loop.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    /// Files whose batch is done.
    pub files_done: usize,
    /// Files to do.
    pub files_total: usize,
    /// Bytes whose batch is done (sizes at walk time).
    pub bytes_done: u64,
    /// Bytes to do.
    pub bytes_total: u64,
    /// Workers holding a batch.
    pub busy: usize,
    /// Time since the build started.
    pub elapsed: Duration,
    /// What the build is doing.
    pub phase: Phase,
}

/// The steps of a build, as its progress names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// Workers read and tokenize files.
    #[default]
    Indexing,
    /// The workers' runs are merged into one index.
    Merging,
    /// The index is written to its file.
    Saving,
}

/// Per-phase times.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// Listing the tree.
    pub walk: Duration,
    /// The workers' time on batches, summed over workers; of which:
    pub work: Duration,
    /// opening and reading files,
    pub read: Duration,
    /// recording occurrences in the word table,
    pub record: Duration,
    /// sorting and encoding runs,
    pub runs: Duration,
    /// handing runs over,
    pub send: Duration,
    /// and `--delay`; the rest is tokenizing (and hashing and gathering
    /// each word for the table).
    pub delay: Duration,
    /// Parent CPU time while collecting runs: receiving, decoding, bookkeeping.
    pub transfer: Duration,
    /// Merging the runs.
    pub merge: Duration,
    /// The whole build.
    pub total: Duration,
}

/// What a build did, for the summary.
#[derive(Debug, Default)]
pub struct BuildReport {
    /// Files indexed.
    pub indexed: u64,
    /// Bytes read from indexed files.
    pub bytes: u64,
    /// Word occurrences.
    pub words: u64,
    /// Distinct words.
    pub distinct: usize,
    /// Skipped: binary files.
    pub binary: Vec<String>,
    /// Skipped: files or folders that could not be read.
    pub unreadable: Vec<Problem>,
    /// Skipped: not regular files.
    pub not_regular: Vec<Problem>,
    /// Files whose batch failed twice.
    pub failed: Vec<Problem>,
    /// Worker processes used at once.
    pub workers: usize,
    /// Batches handed out (retries not counted).
    pub batches: usize,
    /// Batches retried after a worker failure (halves of one count once).
    pub retried: usize,
    /// Runs made (a batch makes one or more).
    pub runs: usize,
    /// Runs written to disk because the memory budget was reached.
    pub spilled: usize,
    /// Runs merged into larger runs on disk while the build ran, so as to
    /// hold fewer open files (each counted once, however many levels).
    pub combined: usize,
    /// True when the runs were too many to merge in memory and were merged
    /// by streaming.
    pub streamed: bool,
    /// Bytes the runs kept in memory take, merged (see
    /// [`BuildOptions::held_threshold`]).
    pub held: u64,
    /// Why fewer workers ran than asked for, if so (say, no file
    /// descriptors left to give them channels).
    pub fewer_workers: Option<String>,
    /// Per-phase times.
    pub timings: Timings,
    /// The files listed, in the index's file order. A build merged in
    /// memory ([`Built::Index`]) hands their displayed paths over to the
    /// index's file table (78 K strings on the kernel were copied there, on
    /// one thread, between the workers and the merge): those entries'
    /// `display` is then empty, and the paths are the index's.
    pub files: Vec<FileEntry>,
}

impl BuildReport {
    /// Files skipped for any reason (binary, unreadable, not regular).
    pub fn skipped(&self) -> usize {
        self.binary.len() + self.unreadable.len() + self.not_regular.len()
    }
}

/// Why a build could not run at all.
#[derive(Debug)]
pub enum BuildError {
    /// The root is missing, not a directory or unreadable.
    Root(RootError),
    /// The process runtime refused (e.g. could not fork).
    Runtime(parallel::Error),
    /// Not even one worker could be started for want of a resource (file
    /// descriptors, processes, memory).
    NoWorker(parallel::Error),
    /// The limit on open files is below what one worker needs.
    TooFewFiles {
        /// The limit.
        allowed: u64,
    },
    /// A worker sent a run that does not decode.
    Merge(MalformedRun),
    /// Runs could not be written to disk or read back.
    Spill(std::io::Error),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Root(e) => e.fmt(f),
            BuildError::Runtime(e) => write!(f, "cannot run workers: {e}"),
            BuildError::NoWorker(e) => write!(
                f,
                "cannot start a worker: {e}{}",
                match nofile_limit() {
                    Some(n) => format!(" (open files allowed: {n}; raise with `ulimit -n`)"),
                    None => String::new(),
                }
            ),
            BuildError::TooFewFiles { allowed } => write!(
                f,
                "cannot start a worker: {allowed} open files are allowed and a worker needs {WORKER_FDS}; raise the limit with `ulimit -n`"
            ),
            BuildError::Merge(e) => e.fmt(f),
            BuildError::Spill(e) => write!(f, "cannot keep the index on disk past --memory: {e}"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Root(e) => Some(e),
            BuildError::Runtime(e) | BuildError::NoWorker(e) => Some(e),
            BuildError::Merge(e) => Some(e),
            BuildError::Spill(e) => Some(e),
            BuildError::TooFewFiles { .. } => None,
        }
    }
}

/// Descriptors a worker needs open at once: stdin, stdout, stderr, its
/// channel, the root folder, the file it reads, and a folder on the way
/// when `openat2` is missing, or a run it writes.
const WORKER_FDS: u64 = 7;

/// A flag the parent raises and its forked workers read: a page mapped
/// shared before they are forked, so a worker learns in the middle of a
/// batch, at once, that runs now go to disk.
pub(super) struct SharedFlag {
    page: std::ptr::NonNull<std::sync::atomic::AtomicBool>,
}

const FLAG_PAGE: usize = 4096;

impl SharedFlag {
    fn new() -> Option<SharedFlag> {
        // SAFETY: a fresh anonymous mapping, placed by the kernel; nothing
        // else refers to it.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                FLAG_PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if page == libc::MAP_FAILED {
            return None;
        }
        // The kernel zeroes the page: the flag starts lowered.
        std::ptr::NonNull::new(page.cast()).map(|page| SharedFlag { page })
    }

    fn flag(&self) -> &std::sync::atomic::AtomicBool {
        // SAFETY: the page is mapped for as long as `self` lives, zeroed (a
        // valid false), and only ever accessed as this atomic.
        unsafe { self.page.as_ref() }
    }

    pub(super) fn raise(&self) {
        self.flag()
            .store(true, std::sync::atomic::Ordering::Release);
    }

    pub(super) fn is_raised(&self) -> bool {
        self.flag().load(std::sync::atomic::Ordering::Acquire)
    }
}

impl Drop for SharedFlag {
    fn drop(&mut self) {
        // SAFETY: unmapping the page `new` mapped; no reference to it
        // outlives `self`.
        unsafe {
            libc::munmap(self.page.as_ptr().cast(), FLAG_PAGE);
        }
    }
}

/// The soft limit on open files.
fn nofile_limit() -> Option<u64> {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

/// True when starting a worker failed for want of a resource that a
/// running worker holds (so the build can go on with fewer).
fn out_of_resources(e: &parallel::Error) -> bool {
    use nix::errno::Errno;
    let errno = match e {
        parallel::Error::Fork(errno) => Some(*errno),
        parallel::Error::Io { source, .. } => source.raw_os_error().map(Errno::from_raw),
        _ => None,
    };
    matches!(
        errno,
        Some(Errno::EMFILE | Errno::ENFILE | Errno::EAGAIN | Errno::ENOMEM | Errno::ENOBUFS)
    )
}

impl From<parallel::Error> for BuildError {
    fn from(e: parallel::Error) -> Self {
        BuildError::Runtime(e)
    }
}

/// CPU time (user + system) this process has used so far.
fn cpu_time() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(usage) => {
            let user = usage.user_time();
            let system = usage.system_time();
            let micros = |t: nix::sys::time::TimeVal| {
                Duration::from_secs(t.tv_sec().max(0) as u64)
                    + Duration::from_micros(t.tv_usec().max(0) as u64)
            };
            micros(user) + micros(system)
        }
        Err(_) => Duration::ZERO,
    }
}

/// What a build made.
pub enum Built {
    /// The runs fit in memory and were merged.
    Index(Box<Index>),
    /// The runs went past the memory budget: merge them by streaming
    /// ([`super::stream::merge_into`]), in this (file) order.
    Streamed(Vec<Box<dyn RunSource>>),
}

/// What [`index_in_process`] made of a range of files.
#[derive(Debug, Default)]
pub struct Indexed {
    /// The runs, in file order.
    pub runs: Vec<super::partial::Run>,
    /// Files indexed.
    pub indexed: u32,
    /// Bytes read from them.
    pub bytes: u64,
    /// Files skipped as binary (numbers in the file list).
    pub binary: Vec<u32>,
    /// Files that could not be read (numbers in the file list), and why.
    pub unreadable: Vec<(u32, String)>,
}

/// What [`index_in_process`] keeps from one call to the next: the word
/// table and read buffer, grown once, so later batches pay no page faults
/// for them (as a forked worker keeps its own across batches).
#[derive(Debug, Default)]
pub struct Scratch {
    partial: Option<super::partial::PartialIndex>,
    buffer: Vec<u8>,
}

/// Indexes files `range` of `files` (listed under `root`) in this process,
/// as one worker indexes one batch, without forking: for a process that
/// cannot fork (an MPI rank, whose `MPI_Init` started threads). Its runs
/// are cut at the worker's share of `options.memory`.
pub fn index_in_process(
    files: &[FileEntry],
    root: &Path,
    root_identity: Option<(u64, u64)>,
    range: std::ops::Range<u32>,
    options: &BuildOptions,
    scratch: &mut Scratch,
) -> Indexed {
    let context = WorkerContext::new(files, root, root_identity, options);
    let batch = Batch {
        id: 0,
        start: range.start,
        end: range.end.min(files.len() as u32),
        part: None,
    };
    let mut reports: Vec<Report> = Vec::new();
    let mut worker = self::worker::Worker::new(&context);
    if let Some(partial) = scratch.partial.take() {
        worker.partial = partial;
    }
    worker.buffer = std::mem::take(&mut scratch.buffer);
    // A list never refuses a report.
    let _ = worker.index_batch(batch, &mut reports);
    scratch.partial = Some(worker.partial);
    scratch.buffer = worker.buffer;
    let mut indexed = Indexed::default();
    for report in reports {
        match report {
            Report::Run { run, .. } => indexed.runs.push(run),
            // A list takes runs as values: neither goes to a file.
            Report::Spilled { .. } | Report::Shared { .. } => {}
            Report::Done(done) => {
                indexed.indexed = done.indexed;
                indexed.bytes = done.bytes;
                indexed.binary = done.binary;
                indexed.unreadable = done.unreadable;
            }
        }
    }
    indexed
}

/// Walks `root` and builds its index with forked workers, in memory
/// whatever its size (nothing spills to disk), calling `progress` from the poll loop
/// about ten times a second.
pub fn build(
    root: &Path,
    options: &BuildOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(Index, BuildReport), BuildError> {
    let started = Instant::now();
    let listing = walk(root, &options.excludes).map_err(BuildError::Root)?;
    match build_listed(listing, started, options, None, progress)? {
        (Built::Index(index), report) => Ok((*index, report)),
        (Built::Streamed(_), _) => unreachable!("runs go to disk only through a Spill"),
    }
}

/// Builds the index of files already listed (by [`walk`], at `started`).
/// With a `spill`, runs past the memory budget go to disk and the result
/// may be [`Built::Streamed`].
pub fn build_listed(
    listing: Walk,
    started: Instant,
    options: &BuildOptions,
    spill: Option<&mut dyn Spill>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(Built, BuildReport), BuildError> {
    let Walk {
        files,
        not_regular,
        unreadable,
        root,
        root_identity,
    } = listing;
    let walk_time = started.elapsed();
    // Each worker is a process of its own with this limit: below it, none
    // could read a file, and every file would be reported unreadable.
    if let Some(allowed) = nofile_limit().filter(|&n| n < WORKER_FDS) {
        return Err(BuildError::TooFewFiles { allowed });
    }
    let mut workers = options.workers.max(1);
    let report = BuildReport {
        not_regular,
        unreadable,
        workers,
        timings: Timings {
            walk: walk_time,
            ..Timings::default()
        },
        ..BuildReport::default()
    };
    let planner = Planner::new(
        &files,
        workers,
        options.batch_files,
        options.test_limits.split,
    );
    let run_files = spill.as_ref().and_then(|s| s.for_workers());
    let spill_now = run_files.as_ref().and_then(|_| SharedFlag::new());
    let mut co = Coordinator::new(
        &files,
        planner,
        options.held_threshold(),
        spill,
        spill_now.as_ref(),
        report,
    );
    let bytes_total: u64 = files.iter().map(|f| f.size).sum();
    let context = WorkerContext {
        spill_now: spill_now.as_ref(),
        run_files,
        share_runs: shared::descriptors_to_spare(workers),
        ..WorkerContext::new(&files, &root, root_identity, options)
    };

    let collecting = cpu_time();
    let mut pool = Workers::new(workers);
    loop {
        pool.fill(&mut co, &context, options)?;
        if pool.exchange.active() == 0 {
            break;
        }
        for event in pool.exchange.wait(Some(Duration::from_millis(100)))? {
            pool.handle(&mut co, event)?;
        }
        progress(&co.progress(started, bytes_total, Phase::Indexing));
    }
    let (wanted, peak) = pool.close();
    workers = wanted;
    progress(&co.progress(started, bytes_total, Phase::Merging));
    let transfer = cpu_time().saturating_sub(collecting);
    let (collected, mut report) = co.finish();
    report.timings.transfer = transfer;
    report.workers = peak.max(1).min(options.workers.max(1));
    report.binary.sort();
    report.failed.sort_by(|a, b| a.path.cmp(&b.path));
    let mut files = files;
    let built = merged(collected, &mut files, workers, &mut report)?;
    report.files = files;
    report.timings.total = started.elapsed();
    Ok((built, report))
}

/// The forked workers of a build and the Exchange they answer through.
struct Workers {
    exchange: Exchange<Batch, Report>,
    /// How many to keep busy (fewer once the system refused one).
    wanted: usize,
    live: usize,
    peak: usize,
}

impl Workers {
    fn new(wanted: usize) -> Self {
        Workers {
            exchange: Exchange::new(),
            wanted,
            live: 0,
            peak: 0,
        }
    }

    /// Reaps every worker (dropping the Exchange), so threads are safe
    /// from here on; returns how many were wanted in the end and the most
    /// that ran at once.
    fn close(self) -> (usize, usize) {
        drop(self.exchange);
        (self.wanted, self.peak)
    }

    /// Starts workers until `wanted` run or no work waits, each given its
    /// first batch. Out of processes or descriptors with some running, it
    /// goes on with those.
    fn fill(
        &mut self,
        co: &mut Coordinator<'_, '_>,
        context: &WorkerContext<'_>,
        options: &BuildOptions,
    ) -> Result<(), BuildError> {
        while self.live < self.wanted && co.has_work() {
            let started = parallel::start(
                |ch: &mut Channel<Report, Batch>, ctx: &WorkerContext<'_>| worker(ch, ctx),
                context,
            );
            let mut channel = match started {
                Ok(channel) => channel,
                Err(e) if out_of_resources(&e) && self.live > 0 => {
                    co.report.fewer_workers = Some(e.to_string());
                    self.wanted = self.live;
                    return Ok(());
                }
                Err(e) if out_of_resources(&e) => return Err(BuildError::NoWorker(e)),
                Err(e) => return Err(e.into()),
            };
            channel.set_frame_limit(options.test_limits.frame);
            let Some(pid) = channel.pid() else {
                return Ok(());
            };
            self.exchange.add(channel);
            self.live += 1;
            self.peak = self.peak.max(self.live);
            co.assign(&mut self.exchange, pid);
        }
        Ok(())
    }

    /// Hands one worker's message, exit or failure to the coordinator; a
    /// worker that broke the protocol is let go (its batch was retried).
    fn handle(
        &mut self,
        co: &mut Coordinator<'_, '_>,
        event: Event<Report>,
    ) -> Result<(), BuildError> {
        match event {
            Event::Message { pid, value } => {
                let keep = match value {
                    Report::Run { batch, seq, run } => co.run(pid, batch, seq, run)?,
                    Report::Shared { batch, seq, shape } => {
                        let run = self
                            .exchange
                            .channel(pid)
                            .and_then(|channel| channel.take_fd())
                            .map(std::fs::File::from)
                            .ok_or_else(|| "the worker sent a shared run without its file".into())
                            .and_then(|file| {
                                shared::adopt(file, shape)
                                    .map_err(|e| format!("its shared run could not be read: {e}"))
                            });
                        match run {
                            Ok(run) => co.run(pid, batch, seq, run)?,
                            Err(problem) => {
                                co.lost(pid, problem);
                                false
                            }
                        }
                    }
                    Report::Spilled { batch, seq, shape } => {
                        let file = self
                            .exchange
                            .channel(pid)
                            .and_then(|channel| channel.take_fd())
                            .map(std::fs::File::from);
                        co.spilled(pid, batch, seq, shape, file)?
                    }
                    Report::Done(done) => {
                        let keep = co.done(pid, done);
                        if keep {
                            co.assign(&mut self.exchange, pid);
                        }
                        co.combine_runs()?;
                        keep
                    }
                };
                if !keep {
                    // Dropping the channel reaps the worker.
                    drop(self.exchange.remove(pid));
                    self.live = self.live.saturating_sub(1);
                }
            }
            Event::Finished { pid } => {
                self.live = self.live.saturating_sub(1);
                co.lost(pid, "worker exited without answering".into());
            }
            Event::Failed { pid, error } => {
                self.live = self.live.saturating_sub(1);
                co.lost(pid, error.to_string());
            }
        }
        Ok(())
    }
}

/// The index the runs make: merged here when they are in memory (on
/// `threads` threads; every worker has been reaped, so threads are safe),
/// or the spilled runs handed on to be merged by streaming.
fn merged(
    collected: Collected,
    files: &mut [FileEntry],
    threads: usize,
    report: &mut BuildReport,
) -> Result<Built, BuildError> {
    match collected {
        Collected::Memory(runs) => {
            let merge_started = Instant::now();
            let display: Vec<String> = files
                .iter_mut()
                .map(|f| std::mem::take(&mut f.display))
                .collect();
            let index = merge_runs_parallel(display, runs, threads).map_err(BuildError::Merge)?;
            report.timings.merge = merge_started.elapsed();
            report.distinct = index.vocabulary().len();
            Ok(Built::Index(Box::new(index)))
        }
        Collected::Streamed(sources) => Ok(Built::Streamed(sources)),
    }
}
