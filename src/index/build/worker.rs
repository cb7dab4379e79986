//! The worker's side of a build: receive a batch, index its files, send
//! the runs back.
//!
//! A worker is a forked child that inherited the file list, so a batch is
//! only a range of file numbers. It keeps one [`PartialIndex`] for all its
//! batches and sends a run whenever the partial index fills up (its limits
//! come from the memory budget, so this may be in the middle of a file) and
//! at the end of each batch, then a [`Done`] with what it skipped. Runs of
//! a batch are numbered, so the parent can keep them in order and drop
//! them all if the worker dies before `Done`.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use std::os::fd::{AsFd, AsRawFd};

use super::planner::Batch;
use super::read::{open_listed, scan_file, Cache, Content, Opened, Root};
use super::{Fault, SharedFlag};
use crate::index::partial::{Limits, PartialIndex, Run};
use crate::index::stream::{RunFiles, RunShape};
use crate::index::tokenize::{Position, ShortWords, Word, WordSink};
use crate::index::walk::{below_root, FileEntry};
use crate::parallel::Channel;

/// What a worker sends.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Report {
    /// The `seq`th run of batch `batch`.
    Run { batch: u32, seq: u32, run: Run },
    /// The `seq`th run of batch `batch`, written to the file sent with
    /// this message (once the build is past its budget).
    Spilled {
        batch: u32,
        seq: u32,
        shape: RunShape,
    },
    /// The `seq`th run of batch `batch`, in the shared memory file sent
    /// with this message (see `shared`).
    Shared {
        batch: u32,
        seq: u32,
        shape: RunShape,
    },
    /// The batch is done.
    Done(Done),
}

/// The end of a batch: how many runs it made and what it skipped.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Done {
    pub batch: u32,
    pub runs: u32,
    pub indexed: u32,
    pub bytes: u64,
    pub binary: Vec<u32>,
    pub unreadable: Vec<(u32, String)>,
    pub busy_nanos: u64,
    /// Of `busy_nanos`: opening and reading files.
    pub read_nanos: u64,
    /// Of `busy_nanos`: sorting and encoding runs.
    pub run_nanos: u64,
    /// Of `busy_nanos`: recording occurrences in the word table (the rest,
    /// less reading, runs, sending and delay, is tokenizing).
    pub record_nanos: u64,
    /// Of `busy_nanos`: handing runs to the parent (or writing them to disk).
    pub send_nanos: u64,
    /// Of `busy_nanos`: `--delay`.
    pub delay_nanos: u64,
}

/// What a forked worker needs; it reaches the child through fork, not the channel.
pub(super) struct WorkerContext<'a> {
    pub files: &'a [FileEntry],
    pub root: &'a Path,
    /// The root's (device, inode) when it was listed.
    pub root_identity: Option<(u64, u64)>,
    pub delay: Duration,
    pub fault: Option<Fault>,
    pub limits: Limits,
    pub window: usize,
    /// Raised by the parent once runs go to disk.
    pub spill_now: Option<&'a SharedFlag>,
    /// How to write a run to disk, if workers may.
    pub run_files: Option<RunFiles>,
    /// Files this large are let go of from the page cache as they are read.
    pub drop_pages_above: u64,
    /// Runs go to the parent in shared memory (see `shared`), not through
    /// the channel.
    pub share_runs: bool,
}

/// Where a worker's reports go: its channel to the parent, or, for a
/// batch indexed in the calling process, a list.
pub(super) trait Sink {
    /// Hands `report` over; `Err` when nobody is listening any more.
    fn deliver(&mut self, report: Report) -> Result<(), Gone>;
    /// Hands `report` over with the open file it describes.
    fn deliver_with_fd(
        &mut self,
        report: Report,
        fd: std::os::fd::BorrowedFd<'_>,
    ) -> Result<(), Gone>;
}

impl Sink for Channel<Report, Batch> {
    fn deliver(&mut self, report: Report) -> Result<(), Gone> {
        self.send(&report).map_err(|_| Gone)
    }

    fn deliver_with_fd(
        &mut self,
        report: Report,
        fd: std::os::fd::BorrowedFd<'_>,
    ) -> Result<(), Gone> {
        self.send_with_fd(&report, fd).map_err(|_| Gone)
    }
}

impl Sink for Vec<Report> {
    fn deliver(&mut self, report: Report) -> Result<(), Gone> {
        self.push(report);
        Ok(())
    }

    /// Runs go to disk only in forked workers (see `WorkerContext::run_files`).
    fn deliver_with_fd(&mut self, _: Report, _: std::os::fd::BorrowedFd<'_>) -> Result<(), Gone> {
        Err(Gone)
    }
}

impl<'a> WorkerContext<'a> {
    /// A context for `files` listed under `root`, with `options`' limits
    /// and faults; runs go to disk only if `spill_now` and `run_files` are
    /// set afterwards.
    pub fn new(
        files: &'a [FileEntry],
        root: &'a Path,
        root_identity: Option<(u64, u64)>,
        options: &super::BuildOptions,
    ) -> Self {
        WorkerContext {
            files,
            root,
            root_identity,
            delay: options.delay,
            fault: options.fault.clone(),
            limits: options.worker_limits(),
            window: options.test_limits.window,
            drop_pages_above: super::read::drop_pages_above(),
            spill_now: None,
            run_files: None,
            share_runs: false,
        }
    }
}

/// The worker's loop: receive a batch, index it, send its runs; leave when
/// the parent closes its side (or is gone).
pub(super) fn worker(channel: &mut Channel<Report, Batch>, context: &WorkerContext<'_>) {
    let mut worker = Worker::new(context);
    while let Ok(batch) = channel.receive() {
        if worker.index_batch(batch, channel).is_err() {
            return;
        }
    }
}

pub(super) struct Worker<'c, 'a> {
    pub(super) buffer: Vec<u8>,
    pub(super) partial: PartialIndex,
    root: std::io::Result<Root>,
    context: &'c WorkerContext<'a>,
    /// False once the system could not say whether a file was in the
    /// page cache (see [`Cache::CannotTell`]): files are then never
    /// fetched ahead.
    cache_tells: bool,
    /// See [`files_ahead`].
    files_ahead: u32,
}

/// How many files past the one being read a worker keeps open, their
/// first bytes asked of the disk (`POSIX_FADV_WILLNEED`), once a batch's
/// files turn out not to be in the page cache. Read one at a time, a cold
/// tree's small files each waited for the disk in turn: the kernel tree
/// with its page cache dropped took 11.6-14.4 s to build, 6.1-6.8 s with
/// 16 files on their way and 4.7-4.8 s with 64 (128 and 256 were alike).
const FETCH_AHEAD_FILES: u32 = 64;

/// The most of a file's first bytes asked for ahead. The kernel's own
/// readahead follows a longer file as it is read, and a tree larger than
/// memory must not be pulled into the page cache whole.
const FETCH_AHEAD_BYTES: u64 = 4 << 20;

/// How many files a worker may fetch ahead with the descriptors it has:
/// a quarter of those past the first 64, so that its runs' memory files
/// and the parent's never want for one.
fn files_ahead() -> u32 {
    super::nofile_limit().map_or(0, |soft| {
        u32::try_from(soft.saturating_sub(64) / 4)
            .unwrap_or(u32::MAX)
            .min(FETCH_AHEAD_FILES)
    })
}

/// A batch's files, opened in order, some before their turn: once a file's
/// first read finds the page cache without it ([`Cache::Missed`]), the
/// next `depth` files are opened and their reading started, so the disk
/// has that many requests at once instead of one; each further miss
/// (a file fetched ahead whose bytes are not in yet counts) keeps the
/// window `depth` files past it. A warm tree does not pay for it: the
/// first read of each file asks the page cache only, which costs what a
/// plain read does, and a file missing now and then opens one window,
/// not the rest of its batch.
struct FetchAhead<O> {
    /// Files `next - opened.len()..next`, opened (an [`Opened`], but for
    /// the tests).
    opened: std::collections::VecDeque<std::io::Result<O>>,
    /// The next file to open.
    next: u32,
    /// One past the batch's last file.
    end: u32,
    /// Files opened past the one being read, while fetching.
    depth: u32,
    /// One past the last file that may be fetched ahead: a window that
    /// each miss moves on.
    until: u32,
}

impl<O> FetchAhead<O> {
    /// Off, for files `start..end`, fetching `depth` files ahead once on.
    fn new(start: u32, end: u32, depth: u32) -> Self {
        FetchAhead {
            opened: std::collections::VecDeque::new(),
            next: start,
            end,
            depth,
            until: start,
        }
    }

    /// File `file` missed the page cache: the `depth` files after it are
    /// fetched ahead.
    fn missed(&mut self, file: u32) {
        let until = file.saturating_add(1).saturating_add(self.depth);
        self.until = self.until.max(until);
    }

    /// File `file` opened (by `open`, now or earlier), and the files after
    /// it within the window, up to `depth`, on their way (`fetch`). Files
    /// are taken in order, each opened once.
    fn take(
        &mut self,
        file: u32,
        mut open: impl FnMut(u32) -> std::io::Result<O>,
        fetch: impl Fn(&O),
    ) -> std::io::Result<O> {
        debug_assert_eq!(self.next as usize - self.opened.len(), file as usize);
        let last = file
            .saturating_add(self.depth)
            .min(self.until.saturating_sub(1))
            .min(self.end.saturating_sub(1))
            .max(file);
        while self.next <= last {
            let opened = open(self.next);
            if self.next > file {
                match &opened {
                    Ok(opened) => fetch(opened),
                    // Opened at its turn instead, and no more ahead in this
                    // batch: the descriptors are better spent on the runs.
                    Err(e) if out_of_descriptors(e) => {
                        self.depth = 0;
                        break;
                    }
                    Err(_) => {}
                }
            }
            self.opened.push_back(opened);
            self.next += 1;
        }
        // The loop opened `file` if nothing had: never empty here.
        match self.opened.pop_front() {
            Some(opened) => opened,
            None => {
                self.next = file + 1;
                open(file)
            }
        }
    }
}

/// Asks the kernel to start reading `opened`'s first bytes.
fn fetch(opened: &Opened) {
    let len = opened.size.min(FETCH_AHEAD_BYTES);
    if len == 0 {
        return;
    }
    // Advice only: a file system that ignores it is read as before.
    // SAFETY: posix_fadvise on an open descriptor has no memory effects.
    let _ = unsafe {
        libc::posix_fadvise(
            opened.file.as_raw_fd(),
            0,
            libc::off_t::try_from(len).unwrap_or(libc::off_t::MAX),
            libc::POSIX_FADV_WILLNEED,
        )
    };
}

/// About how many distinct words a batch holds, from its bytes: a
/// 32 MiB batch of the kernel's sources holds about 200 thousand (one per
/// 168 bytes), and smaller batches hold no more per byte.
fn expected_words(files: &[FileEntry], batch: &Batch) -> usize {
    const BYTES_PER_WORD: u64 = 160;
    let bytes: u64 = match batch.part {
        Some(part) => {
            let size = files.get(batch.start as usize).map_or(0, |f| f.size);
            part.to.min(size).saturating_sub(part.from)
        }
        None => files
            .get(batch.files())
            .map_or(0, |batch| batch.iter().map(|f| f.size).sum()),
    };
    usize::try_from(bytes / BYTES_PER_WORD).unwrap_or(usize::MAX)
}

/// The parent is gone: nothing left to do.
pub(super) struct Gone;

impl<'c, 'a> Worker<'c, 'a> {
    pub(super) fn new(context: &'c WorkerContext<'a>) -> Self {
        Worker {
            buffer: Vec::new(),
            partial: PartialIndex::with_limits(context.limits),
            root: Root::open(context.root, context.root_identity),
            context,
            cache_tells: true,
            files_ahead: files_ahead(),
        }
    }

    pub(super) fn index_batch(&mut self, batch: Batch, channel: &mut dyn Sink) -> Result<(), Gone> {
        let started = Instant::now();
        if !self.context.delay.is_zero() {
            std::thread::sleep(self.context.delay);
        }
        let mut done = Done {
            batch: batch.id,
            delay_nanos: started.elapsed().as_nanos() as u64,
            ..Done::default()
        };
        super::read::READ_NANOS.store(0, std::sync::atomic::Ordering::Relaxed);
        self.partial
            .expect_words(expected_words(self.context.files, &batch));
        let mut runs = RunShipper {
            channel,
            context: self.context,
            batch: batch.id,
            seq: 0,
            run_nanos: 0,
            send_nanos: 0,
        };
        let mut gone = false;
        let context = self.context;
        // A batch lies within the file list; should one not, its files
        // past the end are not there to report.
        let end = batch
            .end
            .min(u32::try_from(context.files.len()).unwrap_or(u32::MAX));
        let mut ahead = FetchAhead::new(batch.start, end, self.files_ahead);
        for file in batch.start..end {
            let root = match &self.root {
                Ok(root) => root,
                Err(e) if out_of_descriptors(e) => resources_exhausted(e),
                Err(e) => {
                    done.unreadable.push((file, e.to_string()));
                    continue;
                }
            };
            let opening = Instant::now();
            let open = |file: u32| {
                let Some(entry) = context.files.get(file as usize) else {
                    return Err(std::io::ErrorKind::NotFound.into());
                };
                if let Some(fault) = &context.fault {
                    fault.fire_if_matches(&entry.display);
                }
                open_listed(root, below_root(&entry.path, context.root), entry)
            };
            let opened = ahead.take(file, open, fetch);
            super::read::READ_NANOS.fetch_add(
                opening.elapsed().as_nanos() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            let mut recorder = Recorder {
                partial: &mut self.partial,
                file,
                runs: &mut runs,
                gone: &mut gone,
            };
            // Every first read asks the page cache, even of a file fetched
            // ahead (if its bytes are not in yet, the disk is behind, and
            // the window moves on); but not for a part, one file whose
            // other parts other batches read.
            let mut cache = match !self.cache_tells || batch.part.is_some() {
                true => Cache::Held,
                false => Cache::Unasked,
            };
            let outcome = opened.and_then(|mut handle| {
                scan_file(
                    &mut handle,
                    &mut self.buffer,
                    context.window,
                    batch.part,
                    context.drop_pages_above,
                    &mut cache,
                    &mut recorder,
                )
            });
            match cache {
                Cache::Missed => ahead.missed(file),
                Cache::CannotTell => self.cache_tells = false,
                Cache::Unasked | Cache::Held => {}
            }
            if gone {
                return Err(Gone);
            }
            // A file in parts counts once, by its first part.
            done.record(file, batch.part.is_none_or(|p| p.is_first()), outcome);
        }
        let left = self.partial.distinct_words() > 0 || self.partial.occurrences() > 0;
        if left && !runs.ship(&mut self.partial) {
            return Err(Gone);
        }
        done.runs = runs.seq;
        done.busy_nanos = started.elapsed().as_nanos() as u64;
        done.read_nanos = super::read::READ_NANOS.load(std::sync::atomic::Ordering::Relaxed);
        done.run_nanos = runs.run_nanos;
        done.record_nanos = self.partial.take_record_time().as_nanos() as u64;
        done.send_nanos = runs.send_nanos;
        runs.channel.deliver(Report::Done(done))
    }
}

/// Records one file's words in the partial index, shipping its run
/// whenever it fills. A type rather than a closure so that its `word` is
/// inlined into the tokenizer's loops (see [`WordSink`]).
struct Recorder<'r, 's, 'c> {
    partial: &'r mut PartialIndex,
    file: u32,
    runs: &'r mut RunShipper<'s, 'c>,
    /// Set once the parent is gone; nothing is shipped after.
    gone: &'r mut bool,
}

impl WordSink for Recorder<'_, '_, '_> {
    #[inline(always)]
    fn word(&mut self, word: Word<'_>, position: Position) {
        if self
            .partial
            .add(word, self.file, position.line, position.column)
        {
            self.ship();
        }
    }

    #[inline(always)]
    fn short_words(&mut self, words: &ShortWords) {
        if self.partial.add_short_words(words, self.file) {
            self.ship();
        }
    }
}

impl Recorder<'_, '_, '_> {
    #[cold]
    #[inline(never)]
    fn ship(&mut self) {
        if !*self.gone && !self.runs.ship(self.partial) {
            *self.gone = true;
        }
    }
}

/// Sends a batch's runs as the partial index fills: through the channel,
/// or, past the memory budget, written to disk here and sent as a file.
struct RunShipper<'s, 'c> {
    channel: &'s mut dyn Sink,
    context: &'c WorkerContext<'c>,
    batch: u32,
    /// Runs of the batch sent so far.
    seq: u32,
    run_nanos: u64,
    send_nanos: u64,
}

impl RunShipper<'_, '_> {
    /// Takes the partial index's run and sends it; false once the parent
    /// is gone.
    fn ship(&mut self, partial: &mut PartialIndex) -> bool {
        let sorting = Instant::now();
        let run = partial.take_run();
        let sending = Instant::now();
        self.run_nanos += (sending - sorting).as_nanos() as u64;
        // Past the budget, the run goes to disk from here rather than
        // through the parent, which would only write it there.
        let written = match (&self.context.run_files, self.context.spill_now) {
            (Some(files), Some(flag)) if flag.is_raised() => {
                (files.write)(&files.folder, &run).ok()
            }
            _ => None,
        };
        let (batch, seq) = (self.batch, self.seq);
        // Otherwise in shared memory, should the system give it, else
        // through the channel.
        let shared = match written {
            None if self.context.share_runs => super::shared::share(&run).ok(),
            _ => None,
        };
        let sent = match (written, shared) {
            (Some(file), _) => self.channel.deliver_with_fd(
                Report::Spilled {
                    batch,
                    seq,
                    shape: RunShape::of(&run),
                },
                file.as_fd(),
            ),
            (None, Some(file)) => self.channel.deliver_with_fd(
                Report::Shared {
                    batch,
                    seq,
                    shape: RunShape::of(&run),
                },
                file.as_fd(),
            ),
            (None, None) => self.channel.deliver(Report::Run { batch, seq, run }),
        };
        self.seq += 1;
        self.send_nanos += sending.elapsed().as_nanos() as u64;
        sent.is_ok()
    }
}

impl Done {
    /// Counts one file's outcome; `first` is false for the later parts of
    /// a file read in parts, which count once.
    fn record(&mut self, file: u32, first: bool, outcome: std::io::Result<Content>) {
        match outcome {
            Ok(Content::Text(bytes)) => {
                self.indexed += u32::from(first);
                self.bytes += bytes;
            }
            Ok(Content::Binary) if first => self.binary.push(file),
            Ok(Content::Binary) => {}
            Err(e) if out_of_descriptors(&e) => resources_exhausted(&e),
            Err(e) => self.unreadable.push((file, e.to_string())),
        }
    }
}

/// True when an open failed for want of descriptors, not because of the
/// file.
fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// The file is fine, the process is not: fail the batch (it is retried,
/// and its files reported failed if this persists) rather than call a
/// readable file unreadable.
fn resources_exhausted(e: &std::io::Error) -> ! {
    panic!("the worker ran out of file descriptors: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    /// An open file of the test: its number, counted while it is open.
    struct Handle {
        file: u32,
        open: Rc<Cell<u32>>,
    }

    impl Drop for Handle {
        fn drop(&mut self) {
            self.open.set(self.open.get() - 1);
        }
    }

    proptest::proptest! {
        /// Whatever misses and whenever descriptors run out, the files come
        /// out in order, each the one asked for, each opened once unless it
        /// had no descriptor ahead of its turn, never more than `depth`
        /// ahead, none past the batch, and none fetched but within `depth`
        /// files after a miss.
        #[test]
        fn files_come_in_order_opened_once_within_depth(
            start in 0u32..5,
            len in 1u32..60,
            depth in 0u32..10,
            descriptors in 1u32..14,
            missed in proptest::collection::vec(proptest::bool::ANY, 60),
            unreadable in proptest::collection::vec(proptest::bool::ANY, 70),
        ) {
            let end = start + len;
            let open = Rc::new(Cell::new(0u32));
            let opened_at = Rc::new(std::cell::RefCell::new(Vec::new()));
            let fetched = Rc::new(std::cell::RefCell::new(Vec::new()));
            let mut ahead = FetchAhead::new(start, end, depth);
            for file in start..end {
                let opener = |f: u32| {
                    opened_at.borrow_mut().push((f, file));
                    if open.get() >= descriptors {
                        return Err(std::io::Error::from_raw_os_error(libc::EMFILE));
                    }
                    if unreadable[f as usize] {
                        return Err(std::io::Error::other(format!("unreadable {f}")));
                    }
                    open.set(open.get() + 1);
                    Ok(Handle { file: f, open: Rc::clone(&open) })
                };
                let fetch = |h: &Handle| fetched.borrow_mut().push(h.file);
                let got = ahead.take(file, opener, fetch);
                // This file and the ones held for later.
                proptest::prop_assert!(open.get() <= depth + 1);
                match got {
                    Ok(handle) => proptest::prop_assert_eq!(handle.file, file),
                    Err(e) if e.raw_os_error() == Some(libc::EMFILE) => {
                        // Only at its own turn, with every descriptor taken.
                        proptest::prop_assert!(open.get() >= descriptors);
                    }
                    Err(e) => {
                        proptest::prop_assert!(unreadable[file as usize]);
                        proptest::prop_assert_eq!(e.to_string(), format!("unreadable {file}"));
                    }
                }
                if missed[(file - start) as usize] {
                    ahead.missed(file);
                }
            }
            proptest::prop_assert_eq!(open.get(), 0);
            let opened_at = opened_at.borrow();
            for &(f, at) in opened_at.iter() {
                proptest::prop_assert!((start..end).contains(&f));
                proptest::prop_assert!(f >= at && f <= at + depth, "{} opened while at {}", f, at);
            }
            // Opened more than once only after a refusal for want of descriptors.
            for f in start..end {
                let times = opened_at.iter().filter(|&&(g, _)| g == f).count();
                proptest::prop_assert!(times >= 1);
                if times > 1 {
                    proptest::prop_assert!(descriptors <= depth + 1);
                }
            }
            // Only files opened ahead of their turn are fetched, each within
            // `depth` files after a miss.
            for &f in fetched.borrow().iter() {
                proptest::prop_assert!(opened_at.iter().any(|&(g, at)| g == f && g > at));
                proptest::prop_assert!(
                    (start..f).any(|m| missed[(m - start) as usize] && f <= m + depth),
                    "{} fetched with no miss within {} before it", f, depth
                );
            }
        }
    }
}
