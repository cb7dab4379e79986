//! Building an [`Index`] with forked workers.
//!
//! The parent walks the tree, then forks `workers` processes. Each worker
//! inherits the file table through fork, so a batch is handed over as a
//! tiny range of file numbers; the worker reads and tokenizes those files
//! into a [`PartialIndex`] and sends back a sorted [`Run`]. The parent polls
//! the workers' channels through an [`Exchange`], hands each idle worker the
//! next batch, and keeps the runs; when every batch is in, it merges them in
//! batch order.
//!
//! Batches are consecutive ranges of the sorted file table, sized by bytes
//! and shrinking as the work runs out (guided self-scheduling), so every
//! worker stays busy to the end, and no occurrence is ever re-sorted: a
//! word's list is its runs' lists in batch order.
//!
//! A worker that dies (panic, signal, early exit) has its batch retried once
//! in a new process; a batch that fails twice has its files reported as
//! failed, and the rest of the tree is still indexed.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::merge::{merge_runs_parallel, MalformedRun};
use super::partial::{PartialIndex, Run};
use super::tokenize::for_each_word;
use super::walk::{walk, Excludes, FileEntry, Problem, RootError};
use super::Index;
use crate::parallel::{self, Channel, Event, Exchange, Pid};

/// How many leading bytes are searched for a NUL to call a file binary.
pub const BINARY_PROBE_BYTES: usize = 8192;

/// Smallest and largest batch, in bytes, when batches are sized automatically.
/// Large batches mean fewer runs, so less vocabulary is sorted, sent and
/// merged twice; the cap bounds a worker's memory.
const MIN_BATCH_BYTES: u64 = 1 << 20;
const MAX_BATCH_BYTES: u64 = 32 << 20;

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
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            workers: parallel::available_cores(),
            batch_files: None,
            delay: Duration::ZERO,
            excludes: Excludes::default(),
            fault: None,
        }
    }
}

/// A fault a worker injects into itself, for testing recovery. Set through
/// the environment: `INDEXER_FAULT=kill:SUBSTR` (or `panic:SUBSTR`) makes a
/// worker die when it is about to read a file whose relative path contains
/// SUBSTR; with `INDEXER_FAULT_ONCE=MARKER` only while the file MARKER does
/// not exist (the worker creates it first), so the retry succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Kill with SIGKILL (true) or panic (false).
    pub kill: bool,
    /// Substring of the relative path that triggers the fault.
    pub path_contains: String,
    /// Marker file making the fault fire only once.
    pub once_marker: Option<std::path::PathBuf>,
}

impl Fault {
    /// Reads `INDEXER_FAULT` and `INDEXER_FAULT_ONCE`; `None` when unset or
    /// not of the form `kill:SUBSTR` / `panic:SUBSTR`.
    pub fn from_env() -> Option<Fault> {
        let spec = std::env::var("INDEXER_FAULT").ok()?;
        let (action, path) = spec.split_once(':')?;
        let kill = match action {
            "kill" => true,
            "panic" => false,
            _ => return None,
        };
        Some(Fault {
            kill,
            path_contains: path.to_string(),
            once_marker: std::env::var_os("INDEXER_FAULT_ONCE").map(Into::into),
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
        if self.kill {
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
        panic!("injected fault at {display}");
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
}

/// Per-phase times.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// Listing the tree.
    pub walk: Duration,
    /// Reading and tokenizing, summed over workers.
    pub work: Duration,
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
    /// Batches retried after a worker failure.
    pub retried: usize,
    /// Per-phase times.
    pub timings: Timings,
    /// The files listed, in the index's file order.
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
    /// A worker sent a run that does not decode.
    Merge(MalformedRun),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Root(e) => e.fmt(f),
            BuildError::Runtime(e) => write!(f, "cannot run workers: {e}"),
            BuildError::Merge(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for BuildError {}

impl From<parallel::Error> for BuildError {
    fn from(e: parallel::Error) -> Self {
        BuildError::Runtime(e)
    }
}

/// A range of file numbers handed to a worker.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
struct Batch {
    id: u32,
    start: u32,
    end: u32,
}

/// What a worker sends back for a batch.
#[derive(Debug, Serialize, Deserialize)]
struct BatchReport {
    id: u32,
    run: Run,
    indexed: u32,
    bytes: u64,
    binary: Vec<u32>,
    unreadable: Vec<(u32, String)>,
    busy_nanos: u64,
}

/// Hands out consecutive file ranges, sized by `--batch` or by bytes.
struct Planner<'a> {
    files: &'a [FileEntry],
    next_file: usize,
    next_id: u32,
    remaining_bytes: u64,
    workers: u64,
    batch_files: Option<usize>,
}

impl<'a> Planner<'a> {
    fn new(files: &'a [FileEntry], workers: usize, batch_files: Option<usize>) -> Self {
        Planner {
            files,
            next_file: 0,
            next_id: 0,
            remaining_bytes: files.iter().map(|f| f.size).sum(),
            workers: workers.max(1) as u64,
            batch_files,
        }
    }

    fn next(&mut self) -> Option<Batch> {
        if self.next_file >= self.files.len() {
            return None;
        }
        let start = self.next_file;
        let end = match self.batch_files {
            Some(n) => (start + n.max(1)).min(self.files.len()),
            None => {
                // Guided self-scheduling: each batch takes a share of what
                // is left, so batches shrink toward the end and the workers
                // finish together. The file-count cap spreads small trees
                // over every worker too.
                let divisor = self.workers * 2;
                let target =
                    (self.remaining_bytes / divisor).clamp(MIN_BATCH_BYTES, MAX_BATCH_BYTES);
                let remaining_files = (self.files.len() - start) as u64;
                let max_files = (remaining_files / divisor).max(1) as usize;
                let mut end = start;
                let mut bytes = 0u64;
                while end < self.files.len()
                    && end - start < max_files
                    && (end == start || bytes < target)
                {
                    bytes += self.files[end].size;
                    end += 1;
                }
                end
            }
        };
        let bytes: u64 = self.files[start..end].iter().map(|f| f.size).sum();
        self.remaining_bytes = self.remaining_bytes.saturating_sub(bytes);
        self.next_file = end;
        let batch = Batch {
            id: self.next_id,
            start: start as u32,
            end: end as u32,
        };
        self.next_id += 1;
        Some(batch)
    }
}

/// What a forked worker needs; it reaches the child through fork, not the channel.
struct WorkerContext<'a> {
    files: &'a [FileEntry],
    delay: Duration,
    fault: Option<Fault>,
}

/// The worker's loop: receive a batch, index it, send the run; leave when
/// the parent closes its side.
fn worker(channel: &mut Channel<BatchReport, Batch>, context: &WorkerContext<'_>) {
    let mut buffer = Vec::new();
    let mut partial = PartialIndex::new();
    while let Ok(batch) = channel.receive() {
        let report = index_batch(batch, context, &mut buffer, &mut partial);
        if channel.send(&report).is_err() {
            return;
        }
    }
}

/// What reading a file found.
enum FileContent {
    /// The whole file is in the buffer.
    Text,
    /// A NUL byte within the first [`BINARY_PROBE_BYTES`]: the rest was not read.
    Binary,
}

fn read_file(entry: &FileEntry, buffer: &mut Vec<u8>) -> std::io::Result<FileContent> {
    // O_NONBLOCK: a file replaced by a FIFO since the walk must not hang us;
    // O_NOFOLLOW: nor may one replaced by a link lead outside the tree.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(&entry.path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("no longer a regular file"));
    }
    buffer.clear();
    // Probe first, so a binary file (perhaps a sparse one of many GB) costs
    // one small read, never a read or an allocation of its whole size.
    let mut file = file;
    (&mut file)
        .take(BINARY_PROBE_BYTES as u64)
        .read_to_end(buffer)?;
    if memchr::memchr(0, buffer).is_some() {
        return Ok(FileContent::Binary);
    }
    // The size is only a hint (the file may be growing or shrinking).
    buffer.reserve(
        (meta.len() as usize)
            .saturating_sub(buffer.len())
            .min(1 << 30),
    );
    file.read_to_end(buffer)?;
    Ok(FileContent::Text)
}

fn index_batch(
    batch: Batch,
    context: &WorkerContext<'_>,
    buffer: &mut Vec<u8>,
    partial: &mut PartialIndex,
) -> BatchReport {
    let started = Instant::now();
    if !context.delay.is_zero() {
        std::thread::sleep(context.delay);
    }
    let mut report = BatchReport {
        id: batch.id,
        run: Run::default(),
        indexed: 0,
        bytes: 0,
        binary: Vec::new(),
        unreadable: Vec::new(),
        busy_nanos: 0,
    };
    for file in batch.start..batch.end {
        let Some(entry) = context.files.get(file as usize) else {
            break;
        };
        if let Some(fault) = &context.fault {
            fault.fire_if_matches(&entry.display);
        }
        match read_file(entry, buffer) {
            Ok(FileContent::Text) => {}
            Ok(FileContent::Binary) => {
                report.binary.push(file);
                continue;
            }
            Err(e) => {
                report.unreadable.push((file, e.to_string()));
                continue;
            }
        }
        report.indexed += 1;
        report.bytes += buffer.len() as u64;
        for_each_word(buffer, |word, position| {
            partial.add(word, file, position.line, position.column)
        });
    }
    report.run = partial.take_run();
    report.busy_nanos = started.elapsed().as_nanos() as u64;
    report
}

/// Bookkeeping of the parent's side of a build.
struct Coordinator<'a> {
    planner: Planner<'a>,
    retries: VecDeque<Batch>,
    in_flight: HashMap<Pid, Batch>,
    attempts: HashMap<u32, u8>,
    runs: Vec<Option<Run>>,
    report: BuildReport,
    files_done: usize,
    bytes_done: u64,
}

impl Coordinator<'_> {
    fn next_batch(&mut self) -> Option<Batch> {
        if let Some(batch) = self.retries.pop_front() {
            return Some(batch);
        }
        let batch = self.planner.next()?;
        self.report.batches += 1;
        if self.runs.len() <= batch.id as usize {
            self.runs.resize_with(batch.id as usize + 1, || None);
        }
        Some(batch)
    }

    fn has_work(&self) -> bool {
        !self.retries.is_empty() || self.planner.next_file < self.planner.files.len()
    }

    /// Gives the worker its next batch, or tells it to leave.
    fn assign(&mut self, exchange: &mut Exchange<Batch, BatchReport>, pid: Pid) {
        let Some(channel) = exchange.channel(pid) else {
            return;
        };
        match self.next_batch() {
            Some(batch) => {
                // A failed send means the worker died; the Exchange reports
                // that as an event and the batch is retried from there.
                let _ = channel.send(&batch);
                self.in_flight.insert(pid, batch);
            }
            None => {
                let _ = channel.close_send();
            }
        }
    }

    fn batch_done(&mut self, files: &[FileEntry], batch: Batch) {
        let range = batch.start as usize..batch.end as usize;
        self.files_done += range.len();
        self.bytes_done += files[range].iter().map(|f| f.size).sum::<u64>();
    }

    fn accept(&mut self, files: &[FileEntry], pid: Pid, report: BatchReport) {
        let Some(batch) = self.in_flight.remove(&pid) else {
            return;
        };
        if batch.id != report.id {
            self.fail(files, batch, "worker answered for another batch".into());
            return;
        }
        self.report.indexed += u64::from(report.indexed);
        self.report.bytes += report.bytes;
        self.report.words += report.run.occurrences;
        self.report.timings.work += Duration::from_nanos(report.busy_nanos);
        for file in report.binary {
            if let Some(f) = files.get(file as usize) {
                self.report.binary.push(f.display.clone());
            }
        }
        for (file, message) in report.unreadable {
            if let Some(f) = files.get(file as usize) {
                self.report.unreadable.push(Problem {
                    path: f.display.clone(),
                    message,
                });
            }
        }
        self.batch_done(files, batch);
        self.runs[batch.id as usize] = Some(report.run);
    }

    /// A worker died holding `batch`: retry it once, then give up on its files.
    fn fail(&mut self, files: &[FileEntry], batch: Batch, why: String) {
        let attempts = self.attempts.entry(batch.id).or_insert(0);
        *attempts += 1;
        if *attempts < 2 {
            self.report.retried += 1;
            self.retries.push_back(batch);
            return;
        }
        for entry in &files[batch.start as usize..batch.end as usize] {
            self.report.failed.push(Problem {
                path: entry.display.clone(),
                message: format!("worker failed twice on its batch: {why}"),
            });
        }
        self.batch_done(files, batch);
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

/// Walks `root` and builds its index with forked workers, calling
/// `progress` from the poll loop about ten times a second.
pub fn build(
    root: &Path,
    options: &BuildOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(Index, BuildReport), BuildError> {
    let started = Instant::now();
    let listing = walk(root, &options.excludes).map_err(BuildError::Root)?;
    build_listed(listing, started, options, progress)
}

/// Builds the index of files already listed (by [`walk`], at `started`),
/// for a refresh that indexes only some of a tree.
pub fn build_listed(
    listing: super::walk::Walk,
    started: Instant,
    options: &BuildOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(Index, BuildReport), BuildError> {
    let files = listing.files;
    let walk_time = started.elapsed();

    let workers = options.workers.max(1);
    let mut co = Coordinator {
        planner: Planner::new(&files, workers, options.batch_files),
        retries: VecDeque::new(),
        in_flight: HashMap::new(),
        attempts: HashMap::new(),
        runs: Vec::new(),
        report: BuildReport {
            not_regular: listing.not_regular,
            unreadable: listing.unreadable,
            workers,
            ..BuildReport::default()
        },
        files_done: 0,
        bytes_done: 0,
    };
    co.report.timings.walk = walk_time;
    let bytes_total: u64 = files.iter().map(|f| f.size).sum();
    let context = WorkerContext {
        files: &files,
        delay: options.delay,
        fault: options.fault.clone(),
    };

    let collecting = cpu_time();
    let mut exchange: Exchange<Batch, BatchReport> = Exchange::new();
    let mut live = 0usize;
    let mut peak = 0usize;
    loop {
        // Keep `workers` processes busy while there is work.
        while live < workers && co.has_work() {
            let channel = parallel::start(
                |ch: &mut Channel<BatchReport, Batch>, ctx: &WorkerContext<'_>| worker(ch, ctx),
                &context,
            )?;
            let Some(pid) = channel.pid() else { break };
            exchange.add(channel);
            live += 1;
            peak = peak.max(live);
            co.assign(&mut exchange, pid);
        }
        if exchange.active() == 0 {
            break;
        }
        let events = exchange.wait(Some(Duration::from_millis(100)))?;
        for event in events {
            match event {
                Event::Message { pid, value } => {
                    co.accept(&files, pid, value);
                    co.assign(&mut exchange, pid);
                }
                Event::Finished { pid } => {
                    live = live.saturating_sub(1);
                    if let Some(batch) = co.in_flight.remove(&pid) {
                        co.fail(&files, batch, "worker exited without answering".into());
                    }
                }
                Event::Failed { pid, error } => {
                    live = live.saturating_sub(1);
                    if let Some(batch) = co.in_flight.remove(&pid) {
                        co.fail(&files, batch, error.to_string());
                    }
                }
            }
        }
        progress(&Progress {
            files_done: co.files_done,
            files_total: files.len(),
            bytes_done: co.bytes_done,
            bytes_total,
            busy: co.in_flight.len(),
            elapsed: started.elapsed(),
        });
    }
    drop(exchange);
    co.report.timings.transfer = cpu_time().saturating_sub(collecting);
    let Coordinator {
        runs, mut report, ..
    } = co;
    report.workers = peak.max(1).min(workers);

    let merge_started = Instant::now();
    let runs: Vec<Run> = runs.into_iter().flatten().collect();
    let display: Vec<String> = files.iter().map(|f| f.display.clone()).collect();
    // Every worker has been reaped: threads are safe from here on.
    let index = merge_runs_parallel(display, runs, workers).map_err(BuildError::Merge)?;
    report.timings.merge = merge_started.elapsed();
    report.distinct = index.vocabulary().len();
    report.binary.sort();
    report.files = files;
    report.timings.total = started.elapsed();
    Ok((index, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(sizes: &[u64]) -> Vec<FileEntry> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| FileEntry {
                path: i.to_string().into(),
                display: i.to_string(),
                size,
                mtime_ns: 0,
                ctime_ns: 0,
                inode: 0,
            })
            .collect()
    }

    #[test]
    fn planner_covers_every_file_once_in_order() {
        let files = entries(&[5 << 20, 1, 2, 70 << 20, 3, 4 << 20, 0, 9]);
        for batch in [None, Some(1), Some(3), Some(100)] {
            let mut planner = Planner::new(&files, 2, batch);
            let mut next = 0;
            let mut id = 0;
            while let Some(b) = planner.next() {
                assert_eq!((b.id, b.start), (id, next));
                assert!(b.end > b.start);
                next = b.end;
                id += 1;
            }
            assert_eq!(next as usize, files.len());
        }
    }
}
