//! The parent's side of a build: who holds which batch, the runs that came
//! back, retries, and when runs leave memory.
//!
//! Runs of a batch are *pending* until its worker says `Done`: a worker
//! that dies first takes them with it (they are dropped and the batch is
//! retried), so a crash never leaves half a batch in the index. A failed
//! batch of several files is halved and both halves are retried, so a file
//! that always kills its worker ends up alone and is the only one reported
//! failed; a single file is retried once.
//!
//! Runs are kept in memory until they pass the build's share of the memory
//! budget; from then on every run is written to disk through the caller's
//! [`Spill`] as soon as it arrives, and the build ends with the runs to
//! merge by streaming instead of an index. Each run on disk holds a
//! descriptor, so once more than twice the spill's fan-in of them are
//! held, consecutive finished runs are merged into one, a fan-in at a
//! time, level by level (so each run is copied a logarithmic number of
//! times), whatever order the batches finish in: a tree of tens of
//! thousands of small batches never runs out of descriptors.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::planner::{Batch, Planner};
use super::worker::Done;
use super::{BuildError, BuildReport, Phase, Progress, SharedFlag};
use crate::index::partial::Run;
use crate::index::stream::{MemoryRun, RunShape, RunSource, Spill};
use crate::index::walk::{FileEntry, Problem};
use crate::parallel::{Channel, Exchange, Pid};

/// A run of the build, with its place in file order.
struct Piece {
    /// (first file of its batch, where its part starts, its number in the
    /// batch): sorting by it puts runs in file order, whatever order
    /// batches finished in.
    key: (u32, u64, u32),
    occurrences: u64,
    /// How many times its occurrences were copied at most: one more than
    /// the highest level among the runs combined into it.
    level: u8,
    held: Held,
}

/// Where a run or a batch starts in file order: (file, byte of the file).
type Place = (u32, u64);

impl Piece {
    /// What [`next_group`] needs to know of it.
    fn spot(&self) -> Spot {
        Spot {
            place: (self.key.0, self.key.1),
            level: self.level,
            on_disk: matches!(self.held, Held::Disk(_)),
        }
    }
}

/// A finished run as [`next_group`] sees it.
#[derive(Debug, Clone, Copy)]
struct Spot {
    place: Place,
    level: u8,
    /// Holding a descriptor (else kept in memory).
    on_disk: bool,
}

/// The consecutive runs to combine next, given the finished runs in file
/// order, and where the batches still out (in flight, to retry, or not yet
/// handed out) start. No such batch may lie between the first and the
/// last, so the combined run takes their place in file order; and at least
/// two must be on disk, so combining them frees a descriptor (runs kept in
/// memory alone are left there).
///
/// A group is `fan_in` runs when it can be: of those, the one whose highest
/// level is lowest, the first of those. Runs of one level are so combined
/// before their results are, and each occurrence is copied a logarithmic
/// number of times; a few runs of a lower level left between higher ones
/// (their neighbours finished first) are taken along instead of keeping
/// both from ever forming a group. When batches still out leave no
/// `fan_in` runs together, the longest group that can be made, down to
/// two: the runs held never outgrow the descriptors set aside for them.
fn next_group(
    runs: &[Spot],
    outstanding: &[Place],
    fan_in: usize,
) -> Option<std::ops::Range<usize>> {
    (2..=fan_in).rev().find_map(|size| {
        let mut best: Option<(u8, usize)> = None;
        for (start, window) in runs.windows(size).enumerate() {
            let (first, last) = (window[0].place, window[size - 1].place);
            if outstanding.iter().any(|&o| first < o && o <= last)
                || window.iter().filter(|run| run.on_disk).count() < 2
            {
                continue;
            }
            let level = window.iter().map(|run| run.level).max().unwrap_or(0);
            if best.is_none_or(|(lowest, _)| level < lowest) {
                best = Some((level, start));
            }
        }
        best.map(|(_, start)| start..start + size)
    })
}

enum Held {
    Memory(Run),
    Disk(Box<dyn RunSource>),
}

/// Bytes a run holds: its buffers' capacity, or the length of its range of
/// a worker's shared memory.
fn resident_bytes(run: &Run) -> u64 {
    (run.bytes.resident() + run.postings.resident() + run.checkpoints.capacity() * 16) as u64
}

/// Bytes a run takes in memory, held and then merged there: the run, plus
/// what the merge makes of its words: their bytes again in the vocabulary,
/// and per word a 32-bit end, a count, a piece and a piece end (24
/// bytes), with a sixth more for slack (measured when the merge's vectors
/// still grew by doubling and ends took 64 bits: the kernel tree's merge
/// peaked within 5% of this, a tree of random words within 13%; they are
/// reserved now, so it errs safe).
fn run_bytes(run: &Run) -> u64 {
    resident_bytes(run) + run.word_bytes + 28 * run.words
}

/// The runs a build collected.
pub enum Collected {
    /// Every run, in memory, in file order.
    Memory(Vec<Run>),
    /// Runs to merge by streaming, in file order (some may be in memory).
    Streamed(Vec<Box<dyn RunSource>>),
}

/// Bookkeeping of the parent's side of a build.
pub(super) struct Coordinator<'a, 's> {
    files: &'a [FileEntry],
    planner: Planner<'a>,
    retries: VecDeque<Batch>,
    in_flight: HashMap<Pid, Batch>,
    /// Failed attempts at single-file batches, by (file, part start).
    attempts: HashMap<(u32, u64), u8>,
    /// Files already reported unreadable or failed (a file in parts may
    /// be reported by several).
    reported: std::collections::HashSet<u32>,
    pending: HashMap<u32, Vec<Piece>>,
    done: Vec<Piece>,
    /// Bytes that runs held in memory take, merge included.
    held: u64,
    /// Past this many bytes, runs go to disk.
    threshold: u64,
    /// Bytes the runs in memory hold.
    resident: u64,
    /// Once runs go to disk, this many bytes of them stay in memory (they
    /// are merged by streaming too, which needs nothing more for them).
    keep: u64,
    spill: Option<&'s mut dyn Spill>,
    spilling: bool,
    /// Runs on disk held, done or pending.
    on_disk: usize,
    /// Raised to tell the workers to write their runs to disk themselves.
    spill_now: Option<&'a SharedFlag>,
    pub report: BuildReport,
    pub files_done: usize,
    pub bytes_done: u64,
}

impl<'a, 's> Coordinator<'a, 's> {
    pub fn new(
        files: &'a [FileEntry],
        planner: Planner<'a>,
        threshold: u64,
        spill: Option<&'s mut dyn Spill>,
        spill_now: Option<&'a SharedFlag>,
        report: BuildReport,
    ) -> Self {
        Coordinator {
            files,
            planner,
            retries: VecDeque::new(),
            in_flight: HashMap::new(),
            attempts: HashMap::new(),
            reported: std::collections::HashSet::new(),
            pending: HashMap::new(),
            done: Vec::new(),
            held: 0,
            threshold,
            resident: 0,
            keep: threshold / 2,
            spill,
            spilling: false,
            on_disk: 0,
            spill_now,
            report,
            files_done: 0,
            bytes_done: 0,
        }
    }

    pub fn has_work(&self) -> bool {
        !self.retries.is_empty() || self.planner.has_work()
    }

    /// Where the build stands, for the progress line.
    pub fn progress(&self, started: Instant, bytes_total: u64, phase: Phase) -> Progress {
        Progress {
            files_done: self.files_done,
            files_total: self.files.len(),
            bytes_done: self.bytes_done,
            bytes_total,
            busy: match phase {
                Phase::Indexing => self.busy(),
                _ => 0,
            },
            elapsed: started.elapsed(),
            phase,
        }
    }

    /// Workers holding a batch.
    pub fn busy(&self) -> usize {
        self.in_flight.len()
    }

    fn next_batch(&mut self) -> Option<Batch> {
        if let Some(batch) = self.retries.pop_front() {
            return Some(batch);
        }
        let batch = self.planner.next()?;
        self.report.batches += 1;
        Some(batch)
    }

    /// Gives the worker its next batch, or tells it to leave.
    pub fn assign(&mut self, exchange: &mut Exchange<Batch, super::worker::Report>, pid: Pid) {
        let Some(channel) = exchange.channel(pid) else {
            return;
        };
        assign_to(self, channel, pid);
    }

    /// A worker sent a run of its batch. False if the worker broke the
    /// protocol: its batch is retried and the caller must let it go.
    pub fn run(&mut self, pid: Pid, batch: u32, seq: u32, run: Run) -> Result<bool, BuildError> {
        let Some(&holding) = self.in_flight.get(&pid) else {
            return Ok(false);
        };
        let pieces = self.pending.entry(holding.id).or_default();
        if holding.id != batch || pieces.len() != seq as usize {
            self.lost(pid, "the worker sent a run out of turn".into());
            return Ok(false);
        }
        self.held += run_bytes(&run);
        self.resident += resident_bytes(&run);
        pieces.push(Piece {
            key: (holding.start, holding.part.map_or(0, |p| p.from), seq),
            occurrences: run.occurrences,
            level: 0,
            held: Held::Memory(run),
        });
        self.relieve_memory().map(|()| true)
    }

    /// A worker wrote a run of its batch to disk and sent the file. False
    /// if the worker broke the protocol: its batch is retried and the
    /// caller must let it go.
    pub fn spilled(
        &mut self,
        pid: Pid,
        batch: u32,
        seq: u32,
        shape: RunShape,
        file: Option<std::fs::File>,
    ) -> Result<bool, BuildError> {
        let Some(&holding) = self.in_flight.get(&pid) else {
            return Ok(false);
        };
        let count = self.pending.get(&holding.id).map_or(0, Vec::len);
        let (Some(file), Some(spill)) = (file, self.spill.as_deref_mut()) else {
            self.lost(pid, "the worker sent a run on disk without its file".into());
            return Ok(false);
        };
        if holding.id != batch || count != seq as usize {
            self.lost(pid, "the worker sent a run out of turn".into());
            return Ok(false);
        }
        let occurrences = shape.occurrences;
        let source = match spill.adopt(file, shape) {
            Ok(source) => source,
            Err(e) => {
                self.lost(pid, format!("its run on disk could not be read: {e}"));
                return Ok(false);
            }
        };
        self.report.spilled += 1;
        self.on_disk += 1;
        self.pending.entry(holding.id).or_default().push(Piece {
            key: (holding.start, holding.part.map_or(0, |p| p.from), seq),
            occurrences,
            level: 0,
            held: Held::Disk(source),
        });
        Ok(true)
    }

    /// A worker finished its batch. False if the worker broke the protocol:
    /// its batch is retried and the caller must let it go.
    pub fn done(&mut self, pid: Pid, done: Done) -> bool {
        let Some(batch) = self.in_flight.remove(&pid) else {
            return false;
        };
        let pieces = self.pending.remove(&batch.id).unwrap_or_default();
        if done.batch != batch.id || done.runs as usize != pieces.len() {
            self.drop_pieces(pieces);
            self.fail(batch, "the worker answered for another batch".into());
            return false;
        }
        self.report.words += pieces.iter().map(|p| p.occurrences).sum::<u64>();
        self.report.runs += pieces.len();
        self.done.extend(pieces);
        self.report.indexed += u64::from(done.indexed);
        self.report.bytes += done.bytes;
        let timings = &mut self.report.timings;
        timings.work += Duration::from_nanos(done.busy_nanos);
        timings.read += Duration::from_nanos(done.read_nanos);
        timings.runs += Duration::from_nanos(done.run_nanos);
        timings.record += Duration::from_nanos(done.record_nanos);
        timings.send += Duration::from_nanos(done.send_nanos);
        timings.delay += Duration::from_nanos(done.delay_nanos);
        for file in done.binary {
            if let Some(f) = self.files.get(file as usize) {
                self.report.binary.push(f.display.clone());
            }
        }
        for (file, message) in done.unreadable {
            if let Some(f) = self.files.get(file as usize) {
                if self.reported.insert(file) {
                    self.report.unreadable.push(Problem {
                        path: f.display.clone(),
                        message,
                    });
                }
            }
        }
        self.batch_done(batch);
        true
    }

    /// The worker `pid` ended or failed; its batch, if it held one, is retried.
    pub fn lost(&mut self, pid: Pid, why: String) {
        if let Some(batch) = self.in_flight.remove(&pid) {
            let pieces = self.pending.remove(&batch.id).unwrap_or_default();
            self.drop_pieces(pieces);
            self.fail(batch, why);
        }
    }

    fn drop_pieces(&mut self, pieces: Vec<Piece>) {
        for piece in pieces {
            drop(self.release(piece));
        }
    }

    /// A piece's run as a source to merge, no longer counted as held.
    fn release(&mut self, piece: Piece) -> Box<dyn RunSource> {
        match piece.held {
            Held::Memory(run) => {
                self.held = self.held.saturating_sub(run_bytes(&run));
                self.resident = self.resident.saturating_sub(resident_bytes(&run));
                Box::new(MemoryRun::new(run))
            }
            Held::Disk(source) => {
                self.on_disk = self.on_disk.saturating_sub(1);
                source
            }
        }
    }

    /// Past twice the spill's fan-in of runs on disk, merges finished runs
    /// a fan-in at a time into one run on disk each (see [`next_group`]),
    /// until at most twice the fan-in are left or no group can be made.
    pub fn combine_runs(&mut self) -> Result<(), BuildError> {
        let Some(fan_in) = self.spill.as_deref().and_then(|s| s.fan_in()) else {
            return Ok(());
        };
        let fan_in = fan_in.max(2);
        if self.on_disk <= 2 * fan_in {
            return Ok(());
        }
        let outstanding: Vec<Place> = self
            .in_flight
            .values()
            .chain(&self.retries)
            .map(|b| (b.start, b.part.map_or(0, |p| p.from)))
            .chain([self.planner.frontier()])
            .collect();
        self.done.sort_by_key(|piece| piece.key);
        while self.on_disk > 2 * fan_in {
            let spots: Vec<Spot> = self.done.iter().map(Piece::spot).collect();
            let Some(group) = next_group(&spots, &outstanding, fan_in) else {
                break;
            };
            let pieces: Vec<Piece> = self.done.drain(group.clone()).collect();
            let key = pieces[0].key;
            let occurrences = pieces.iter().map(|p| p.occurrences).sum();
            let level = pieces.iter().map(|p| p.level).max().unwrap_or(0);
            self.report.combined += pieces.iter().filter(|p| p.level == 0).count();
            let sources = pieces.into_iter().map(|p| self.release(p)).collect();
            let Some(spill) = self.spill.as_deref_mut() else {
                return Ok(());
            };
            let source = spill.combine(sources).map_err(BuildError::Spill)?;
            self.on_disk += 1;
            self.done.insert(
                group.start,
                Piece {
                    key,
                    occurrences,
                    level: level.saturating_add(1),
                    held: Held::Disk(source),
                },
            );
        }
        Ok(())
    }

    fn batch_done(&mut self, batch: Batch) {
        match batch.part {
            Some(part) => {
                let size = self.files.get(batch.start as usize).map_or(0, |f| f.size);
                self.bytes_done += part.to.min(size).saturating_sub(part.from);
                self.files_done += usize::from(part.is_last());
            }
            None => {
                self.files_done += batch.len();
                self.bytes_done += self.files[batch.files()]
                    .iter()
                    .map(|f| f.size)
                    .sum::<u64>();
            }
        }
    }

    /// A worker died holding `batch`: halve it and retry both halves, so a
    /// file that kills its worker ends up alone; retry a single file once,
    /// then report it failed.
    fn fail(&mut self, batch: Batch, why: String) {
        if batch.len() > 1 {
            let middle = batch.start + (batch.end - batch.start) / 2;
            let second = Batch {
                id: self.planner.new_id(),
                start: middle,
                end: batch.end,
                part: None,
            };
            let first = Batch {
                id: self.planner.new_id(),
                start: batch.start,
                end: middle,
                part: None,
            };
            self.retries.push_front(second);
            self.retries.push_front(first);
            self.report.retried += 1;
            return;
        }
        let attempts = self
            .attempts
            .entry((batch.start, batch.part.map_or(0, |p| p.from)))
            .or_insert(0);
        *attempts += 1;
        if *attempts < 2 {
            self.report.retried += 1;
            self.retries.push_front(Batch {
                id: self.planner.new_id(),
                ..batch
            });
            return;
        }
        for (file, entry) in batch.files().zip(&self.files[batch.files()]) {
            if self.reported.insert(file as u32) {
                self.report.failed.push(Problem {
                    path: entry.display.clone(),
                    message: format!("a worker crashed twice on it: {why}"),
                });
            }
        }
        self.batch_done(batch);
    }

    /// Past the threshold, the runs will be merged by streaming, not in
    /// memory: from then on, runs go to disk, oldest first, whenever those
    /// in memory hold more than `keep` bytes (down to three quarters of it,
    /// so not at every arrival).
    fn relieve_memory(&mut self) -> Result<(), BuildError> {
        let Some(spill) = self.spill.as_deref_mut() else {
            return Ok(());
        };
        if !self.spilling && self.held <= self.threshold {
            return Ok(());
        }
        self.spilling = true;
        if let Some(flag) = self.spill_now {
            flag.raise();
        }
        if self.resident <= self.keep {
            return Ok(());
        }
        let target = self.keep / 4 * 3;
        let pieces = self
            .done
            .iter_mut()
            .chain(self.pending.values_mut().flatten());
        for piece in pieces {
            if self.resident <= target {
                break;
            }
            if let Held::Memory(run) = &piece.held {
                let source = spill.spill(run).map_err(BuildError::Spill)?;
                self.held = self.held.saturating_sub(run_bytes(run));
                self.resident = self.resident.saturating_sub(resident_bytes(run));
                self.report.spilled += 1;
                self.on_disk += 1;
                piece.held = Held::Disk(source);
            }
        }
        Ok(())
    }

    /// The runs collected, in file order.
    pub fn finish(mut self) -> (Collected, BuildReport) {
        self.done.sort_by_key(|piece| piece.key);
        self.report.held = self.held;
        self.report.streamed = self.spilling;
        let collected = if self.spilling {
            Collected::Streamed(
                self.done
                    .into_iter()
                    .map(|piece| match piece.held {
                        Held::Memory(run) => Box::new(MemoryRun::new(run)) as Box<dyn RunSource>,
                        Held::Disk(source) => source,
                    })
                    .collect(),
            )
        } else {
            Collected::Memory(
                self.done
                    .into_iter()
                    .filter_map(|piece| match piece.held {
                        Held::Memory(run) => Some(run),
                        Held::Disk(_) => None,
                    })
                    .collect(),
            )
        };
        (collected, self.report)
    }
}

fn assign_to(
    co: &mut Coordinator<'_, '_>,
    channel: &mut Channel<Batch, super::worker::Report>,
    pid: Pid,
) {
    match co.next_batch() {
        Some(batch) => {
            // A failed send means the worker died; the Exchange reports
            // that as an event and the batch is retried from there.
            let _ = channel.send(&batch);
            co.in_flight.insert(pid, batch);
        }
        None => {
            let _ = channel.close_send();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A build's runs as the coordinator sees them, with each run's
    /// original runs (numbered in file order) and how often each was copied.
    struct Model {
        fan_in: usize,
        /// Runs per batch; batch `b` starts at file `b`.
        runs: Vec<u32>,
        /// (place, level, original runs in order).
        done: Vec<(Place, u8, Vec<u32>)>,
        copies: u64,
    }

    impl Model {
        fn finish(&mut self, batch: usize, outstanding: &[Place]) {
            let first: u32 = self.runs[..batch].iter().sum();
            for seq in 0..self.runs[batch] {
                self.done.push(((batch as u32, 0), 0, vec![first + seq]));
            }
            // Runs of one batch share a place: a stable sort keeps them in turn.
            self.done
                .sort_by_key(|&(place, _, ref originals)| (place, originals[0]));
            while self.done.len() > 2 * self.fan_in {
                let spots: Vec<Spot> = self
                    .done
                    .iter()
                    .map(|d| Spot {
                        place: d.0,
                        level: d.1,
                        on_disk: true,
                    })
                    .collect();
                let Some(group) = next_group(&spots, outstanding, self.fan_in) else {
                    break;
                };
                let combined: Vec<_> = self.done.drain(group.clone()).collect();
                let level = combined.iter().map(|c| c.1).max().unwrap_or(0) + 1;
                let originals: Vec<u32> = combined.into_iter().flat_map(|c| c.2).collect();
                self.copies += originals.len() as u64;
                self.done
                    .insert(group.start, (spots[group.start].place, level, originals));
            }
            let bound = (2 * self.fan_in).max(outstanding.len() + 1);
            assert!(
                self.done.len() <= bound,
                "{} runs held, more than {bound}, with {} batches out",
                self.done.len(),
                outstanding.len()
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Batches finishing in any order: the runs held stay within twice
        /// the fan-in (or one per stretch between batches still out, when
        /// more of those); combined runs keep file order; and each original
        /// run is copied a logarithmic number of times (at most three times
        /// two more than the log, base fan-in, of their count).
        #[test]
        fn combining_keeps_runs_few_and_in_order(
            runs in proptest::collection::vec(1u32..4, 1..300),
            fan_in in 2usize..10,
            workers in 1usize..5,
            picks in proptest::collection::vec(any::<prop::sample::Index>(), 300),
        ) {
            let mut model = Model { fan_in, runs: runs.clone(), done: Vec::new(), copies: 0 };
            let (mut next, mut in_flight) = (0usize, Vec::new());
            let mut picks = picks.iter().cycle();
            while next < runs.len() || !in_flight.is_empty() {
                while in_flight.len() < workers && next < runs.len() {
                    in_flight.push(next);
                    next += 1;
                }
                let pick = picks.next().map_or(0, |p| p.index(in_flight.len()));
                let batch = in_flight.swap_remove(pick);
                let outstanding: Vec<Place> = in_flight
                    .iter()
                    .map(|&b| (b as u32, 0))
                    .chain([(next as u32, 0)])
                    .collect();
                model.finish(batch, &outstanding);
            }
            let originals: Vec<u32> = model.done.iter().flat_map(|d| d.2.iter().copied()).collect();
            let total: u32 = runs.iter().sum();
            prop_assert_eq!(originals, (0..total).collect::<Vec<u32>>());
            let levels = f64::from(total).log(fan_in as f64).ceil() + 2.0;
            prop_assert!(
                model.copies as f64 <= f64::from(total) * levels * 3.0,
                "{} copies of {} runs", model.copies, total
            );
        }
    }

    proptest! {
        /// Against every window tried in turn: a group is returned exactly
        /// when some window of two or more runs, at least two of them on
        /// disk, has no batch still out inside it; it is the longest such
        /// (at most the fan-in), of those the lowest highest level, then
        /// the first.
        #[test]
        fn the_group_is_the_longest_lowest_first_window(
            runs in proptest::collection::vec((0u32..40, 0u8..3, any::<bool>()), 0..40),
            outstanding in proptest::collection::vec(0u32..40, 0..4),
            fan_in in 2usize..8,
        ) {
            let mut runs = runs;
            runs.sort_by_key(|r| r.0);
            let spots: Vec<Spot> = runs
                .iter()
                .map(|&(file, level, on_disk)| Spot { place: (file, 0), level, on_disk })
                .collect();
            let outstanding: Vec<Place> = outstanding.iter().map(|&f| (f, 0)).collect();
            let mut want = None;
            'sizes: for size in (2..=fan_in).rev() {
                let mut best: Option<(u8, usize)> = None;
                for start in 0..spots.len().saturating_sub(size - 1) {
                    let window = &spots[start..start + size];
                    let inside = |o: &Place| window[0].place < *o && *o <= window[size - 1].place;
                    let on_disk = window.iter().filter(|s| s.on_disk).count();
                    if outstanding.iter().any(inside) || on_disk < 2 {
                        continue;
                    }
                    let level = window.iter().map(|s| s.level).max().unwrap_or(0);
                    if best.is_none_or(|(lowest, _)| level < lowest) {
                        best = Some((level, start));
                    }
                }
                if let Some((_, start)) = best {
                    want = Some(start..start + size);
                    break 'sizes;
                }
            }
            prop_assert_eq!(next_group(&spots, &outstanding, fan_in), want);
        }
    }
}
