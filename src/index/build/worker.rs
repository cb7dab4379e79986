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

use std::os::fd::AsFd;

use super::planner::Batch;
use super::read::{open_listed, scan_file, Content, Root};
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
        for file in batch.start..batch.end {
            let Some(entry) = self.context.files.get(file as usize) else {
                break;
            };
            if let Some(fault) = &self.context.fault {
                fault.fire_if_matches(&entry.display);
            }
            let root = match &self.root {
                Ok(root) => root,
                Err(e) if out_of_descriptors(e) => resources_exhausted(e),
                Err(e) => {
                    done.unreadable.push((file, e.to_string()));
                    continue;
                }
            };
            let relative = below_root(&entry.path, self.context.root);
            let partial = &mut self.partial;
            let opening = Instant::now();
            let opened = open_listed(root, relative, entry);
            super::read::READ_NANOS.fetch_add(
                opening.elapsed().as_nanos() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            let mut recorder = Recorder {
                partial,
                file,
                runs: &mut runs,
                gone: &mut gone,
            };
            let outcome = opened.and_then(|mut handle| {
                scan_file(
                    &mut handle,
                    &mut self.buffer,
                    self.context.window,
                    batch.part,
                    self.context.drop_pages_above,
                    &mut recorder,
                )
            });
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
