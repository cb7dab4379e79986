//! `indexer-mpi`: one index built by many machines at once, launched by
//! `mpirun` (or a batch scheduler) over a shared filesystem.
//!
//! ```text
//! mpirun -np R indexer-mpi DIR --save FILE [--exclude GLOB]... [--no-ignore]
//! ```
//!
//! Every rank sees DIR at the same path. The steps:
//!
//! 1. Rank 0 walks DIR and broadcasts the file list.
//! 2. Batches (consecutive ranges of the list, by bytes) are handed out by
//!    rank 0 as ranks ask for them, so a slow machine takes fewer; each rank
//!    indexes its batches into runs in its own process.
//! 3. The ranks agree on R-1 split words from a sample of their runs' words
//!    and send each range's pieces of every run to the rank that owns it,
//!    in rounds of `MPI_Alltoallv` of at most [`ROUND_BYTES`] per pair.
//! 4. Each rank merges its range (in file order: the pieces keep their
//!    batch numbers) and writes its part under a staging name; once every
//!    rank has, each renames its own to `FILE.part-K-of-R`, and rank 0
//!    writes the manifest at FILE last, atomically (see
//!    `indexer::store::shards`).
//!
//! Why a rank is one worker that never forks: `MPI_Init` starts helper
//! threads, and the runtime refuses to fork a process with threads. Forking
//! local workers before `MPI_Init` would have to hand them the file list
//! over channels (they cannot inherit a list made later); running one rank
//! per core is how MPI programs use a machine's cores anyway, and the
//! exchange then spreads over all of them. See ARCHITECTURE.md.
//!
//! Any failure ends the job: the rank prints one `indexer-mpi: rank K: ...`
//! line and aborts it (a rank killed outright is reported by mpirun); no
//! manifest is written, and a previous index at FILE stays as it was: parts
//! replace the old ones only once every rank has written its own.

// The command line's path checks, shared with `indexer`.
#[allow(dead_code)] // format_time is the prompt's alone
#[path = "../cli/paths.rs"]
mod paths;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use mpi::collective::SystemOperation;
use mpi::datatype::{Partition, PartitionMut};
use mpi::point_to_point::{Destination, Source};
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::{CommunicatorCollectives, Root};
use mpi::Count;

use indexer::index::merge_runs_parallel;
use indexer::index::{index_in_process, Fault, Scratch};
use indexer::index::{walk, Excludes, FileEntry};
use indexer::index::{BuildOptions, View};
use indexer::index::{Run, RunReader};
use indexer::store::{self, shards};

/// Most bytes a rank sends another in one round of the exchange.
const ROUND_BYTES: usize = 64 << 20;
/// Batches aimed at per rank: enough that a fast rank can take more.
const BATCHES_PER_RANK: u64 = 16;
/// Words sampled per run for choosing the split words.
const SAMPLES_PER_RUN: usize = 256;
/// Bytes rank 0 indexes between two looks for ranks asking for work.
const SERVE_STEP_BYTES: u64 = 16 << 20;
const TAG_ASK: i32 = 1;
const TAG_BATCH: i32 = 2;
const TAG_GATHER: i32 = 3;

/// Builds one index with MPI ranks (see the module docs).
#[derive(Debug, Parser)]
#[command(name = "indexer-mpi", version)]
struct Args {
    /// The tree to index, at the same path on every rank.
    directory: PathBuf,
    /// Where to save the index: its manifest; parts go beside it as
    /// FILE.part-K-of-R.
    #[arg(long, value_name = "FILE")]
    save: PathBuf,
    /// Leave out paths matching GLOB (relative to DIRECTORY), as indexer does.
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Index files that .ignore and .gitignore leave out.
    #[arg(long)]
    no_ignore: bool,
    /// Workers per rank: each rank is one (run one rank per core).
    #[arg(long, value_name = "N", default_value_t = 1)]
    workers: usize,
}

/// Ends the whole job from this rank with one line naming it.
fn fail(world: &SimpleCommunicator, message: impl std::fmt::Display) -> ! {
    eprintln!("indexer-mpi: rank {}: {message}", world.rank());
    world.abort(1)
}

/// Sends `bytes` to every rank from rank 0 (the others' `bytes` are
/// replaced).
fn broadcast_bytes(world: &SimpleCommunicator, bytes: &mut Vec<u8>) {
    let root = world.process_at_rank(0);
    let mut len = bytes.len() as u64;
    root.broadcast_into(&mut len);
    bytes.resize(len as usize, 0);
    // Open MPI refuses an empty buffer (its pointer dangles).
    if len > 0 {
        root.broadcast_into(&mut bytes[..]);
    }
}

/// Every rank's `bytes`, at rank 0 (in rank order); empty elsewhere.
fn gather_bytes(world: &SimpleCommunicator, bytes: Vec<u8>) -> Vec<Vec<u8>> {
    if world.rank() != 0 {
        world
            .process_at_rank(0)
            .send_with_tag(&bytes[..], TAG_GATHER);
        return Vec::new();
    }
    let mut all = vec![bytes];
    for r in 1..world.size() {
        let (received, _) = world
            .process_at_rank(r)
            .receive_vec_with_tag::<u8>(TAG_GATHER);
        all.push(received);
    }
    all
}

fn encode<T: serde::Serialize>(world: &SimpleCommunicator, value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .unwrap_or_else(|e| fail(world, format!("cannot encode a message: {e}")))
}

fn decode<T: serde::de::DeserializeOwned>(world: &SimpleCommunicator, bytes: &[u8]) -> T {
    match bincode::serde::decode_from_slice(bytes, bincode::config::standard()) {
        Ok((value, _)) => value,
        Err(e) => fail(world, format!("received a malformed message: {e}")),
    }
}

/// The walk as it crosses the wire: paths as raw bytes (not UTF-8 text).
#[derive(serde::Serialize, serde::Deserialize)]
struct Listing {
    root_identity: Option<(u64, u64)>,
    files: Vec<(Vec<u8>, String, u64, i64, i64, u64)>,
    /// Problems of the walk, for rank 0's summary only.
    skipped: usize,
}

fn to_listing(files: &[FileEntry], root_identity: Option<(u64, u64)>, skipped: usize) -> Listing {
    use std::os::unix::ffi::OsStrExt;
    Listing {
        root_identity,
        skipped,
        files: files
            .iter()
            .map(|f| {
                let path = f.path.as_os_str().as_bytes().to_vec();
                (
                    path,
                    f.display.clone(),
                    f.size,
                    f.mtime_ns,
                    f.ctime_ns,
                    f.inode,
                )
            })
            .collect(),
    }
}

fn from_listing(listing: Listing) -> (Vec<FileEntry>, Option<(u64, u64)>, usize) {
    use std::os::unix::ffi::OsStringExt;
    let files = listing
        .files
        .into_iter()
        .map(
            |(path, display, size, mtime_ns, ctime_ns, inode)| FileEntry {
                path: PathBuf::from(std::ffi::OsString::from_vec(path)),
                display,
                size,
                mtime_ns,
                ctime_ns,
                inode,
            },
        )
        .collect();
    (files, listing.root_identity, listing.skipped)
}

/// Consecutive ranges of the file list of about `total / (ranks * 16)`
/// bytes each.
fn plan_batches(files: &[FileEntry], ranks: usize) -> Vec<(u32, u32)> {
    let total: u64 = files.iter().map(|f| f.size).sum();
    let target = (total / (ranks as u64 * BATCHES_PER_RANK)).clamp(1 << 20, 256 << 20);
    let mut batches = Vec::new();
    let (mut start, mut bytes) = (0u32, 0u64);
    for (i, file) in files.iter().enumerate() {
        bytes += file.size;
        if bytes >= target {
            batches.push((start, i as u32 + 1));
            (start, bytes) = (i as u32 + 1, 0);
        }
    }
    if (start as usize) < files.len() {
        batches.push((start, files.len() as u32));
    }
    batches
}

/// What a rank made of the batches it was given.
#[derive(Default)]
struct Work {
    /// (batch number, runs of that batch in order).
    runs: Vec<(u32, Run)>,
    /// Files that could not be read: number, why.
    unreadable: Vec<(u32, String)>,
    binary: usize,
    indexed: u64,
    bytes: u64,
}

struct Builder<'a> {
    files: &'a [FileEntry],
    root: &'a Path,
    root_identity: Option<(u64, u64)>,
    options: &'a BuildOptions,
    scratch: Scratch,
    work: Work,
}

impl Builder<'_> {
    fn index(&mut self, batch: u32, (start, end): (u32, u32)) {
        let indexed = index_in_process(
            self.files,
            self.root,
            self.root_identity,
            start..end,
            self.options,
            &mut self.scratch,
        );
        self.work
            .runs
            .extend(indexed.runs.into_iter().map(|run| (batch, run)));
        self.work.unreadable.extend(indexed.unreadable);
        self.work.binary += indexed.binary.len();
        self.work.indexed += u64::from(indexed.indexed);
        self.work.bytes += indexed.bytes;
    }
}

/// Rank 0: hands out batches to ranks that ask, and indexes the rest
/// itself in small steps, answering between them.
fn serve_batches(world: &SimpleCommunicator, batches: &[(u32, u32)], builder: &mut Builder<'_>) {
    /// The hand-out: which batch is next, and how many ranks were told
    /// there are no more (rank 0 counts itself).
    struct Desk<'b> {
        batches: &'b [(u32, u32)],
        next: usize,
        finished: i32,
    }
    impl Desk<'_> {
        /// Gives rank `to` the next batch, or tells it there is none.
        fn answer(&mut self, world: &SimpleCommunicator, to: i32) {
            let message: [u32; 3] = match self.batches.get(self.next) {
                Some(&(start, end)) => [self.next as u32, start, end],
                None => [u32::MAX, 0, 0],
            };
            match message[0] {
                u32::MAX => self.finished += 1,
                _ => self.next += 1,
            }
            world
                .process_at_rank(to)
                .send_with_tag(&message[..], TAG_BATCH);
        }

        /// Answers every rank already waiting.
        fn answer_waiting(&mut self, world: &SimpleCommunicator) {
            while let Some(status) = world.any_process().immediate_probe_with_tag(TAG_ASK) {
                let from = status.source_rank();
                let _ = world
                    .process_at_rank(from)
                    .receive_vec_with_tag::<u32>(TAG_ASK);
                self.answer(world, from);
            }
        }
    }

    let mut desk = Desk {
        batches,
        next: 0,
        finished: 1,
    };
    loop {
        desk.answer_waiting(world);
        if let Some(&(start, end)) = batches.get(desk.next) {
            // Rank 0's own share, in steps of a few megabytes so others
            // never wait long for their next batch.
            let batch = desk.next as u32;
            desk.next += 1;
            let mut from = start;
            while from < end {
                let mut to = from;
                let mut bytes = 0u64;
                while to < end && (to == from || bytes < SERVE_STEP_BYTES) {
                    bytes += builder.files[to as usize].size;
                    to += 1;
                }
                builder.index(batch, (from, to));
                from = to;
                desk.answer_waiting(world);
            }
        } else if desk.finished == world.size() {
            return;
        } else {
            // Only the others' last requests are left: wait for them.
            let (_, status) = world.any_process().receive_vec_with_tag::<u32>(TAG_ASK);
            desk.answer(world, status.source_rank());
        }
    }
}

/// Any other rank: asks rank 0 for a batch until there are none, asking
/// for the next one before indexing the one in hand, so that rank 0's
/// answer arrives while this rank works.
fn ask_for_batches(world: &SimpleCommunicator, builder: &mut Builder<'_>) {
    let root = world.process_at_rank(0);
    let ask = || root.send_with_tag(&[world.rank() as u32][..], TAG_ASK);
    let answer = || match root.receive_vec_with_tag::<u32>(TAG_BATCH).0.as_slice() {
        [u32::MAX, ..] => None,
        &[batch, start, end] => Some((batch, (start, end))),
        _ => fail(world, "received a malformed batch"),
    };
    ask();
    let mut next = answer();
    while let Some((batch, range)) = next {
        ask();
        builder.index(batch, range);
        next = answer();
    }
}

/// R-1 split words: quantiles of a sample of every rank's runs' words,
/// chosen at rank 0 and broadcast.
fn choose_splits(world: &SimpleCommunicator, runs: &[(u32, Run)]) -> Vec<Vec<u8>> {
    let ranks = world.size() as usize;
    let mut sample: Vec<Vec<u8>> = Vec::new();
    for (_, run) in runs {
        let step = (run.words as usize / SAMPLES_PER_RUN).max(1);
        // Weighted by occurrences: a word stands for the entries around it.
        let mut reader = RunReader::new(run);
        let mut k = 0usize;
        while let Some(entry) = reader.next_entry() {
            if k.is_multiple_of(step) {
                sample.push(entry.word.to_vec());
            }
            k += 1;
        }
    }
    let gathered = gather_bytes(world, encode(world, &sample));
    let mut splits: Vec<Vec<u8>> = Vec::new();
    if world.rank() == 0 {
        let mut all: Vec<Vec<u8>> = gathered
            .iter()
            .flat_map(|bytes| decode::<Vec<Vec<u8>>>(world, bytes))
            .collect();
        all.sort_unstable();
        for k in 1..ranks {
            if let Some(word) = all.get(all.len() * k / ranks) {
                if splits.last().is_none_or(|last| word > last) {
                    splits.push(word.clone());
                }
            }
        }
        // Fewer distinct words than ranks: the last ranks get empty ranges.
        while splits.len() + 1 < ranks {
            let mut beyond = splits.last().cloned().unwrap_or_default();
            beyond.push(0xFF);
            splits.push(beyond);
        }
    }
    let mut bytes = encode(world, &splits);
    broadcast_bytes(world, &mut bytes);
    decode(world, &bytes)
}

/// Sends each range's pieces of this rank's runs to its owner, in rounds
/// of `MPI_Alltoallv`; returns the pieces of this rank's own range (from
/// every rank), with their batch numbers, and the bytes this rank sent.
fn exchange(
    world: &SimpleCommunicator,
    runs: Vec<(u32, Run)>,
    splits: &[Vec<u8>],
) -> (Vec<(u32, u32, Run)>, u64) {
    let ranks = world.size() as usize;
    let me = world.rank() as usize;
    // Outgoing messages per destination, encoded; kept pieces as they are.
    let mut outboxes: Vec<std::collections::VecDeque<Vec<u8>>> = vec![Default::default(); ranks];
    let mut mine: Vec<(u32, u32, Run)> = Vec::new();
    let mut seq_of: std::collections::HashMap<u32, u32> = Default::default();
    for (batch, run) in runs {
        let seq = seq_of.entry(batch).or_default();
        let pieces = run
            .split_at_words(splits)
            .unwrap_or_else(|| fail(world, "a run of this rank is malformed"));
        drop(run);
        for (k, piece) in pieces.into_iter().enumerate() {
            if piece.words == 0 {
                continue;
            }
            if k == me {
                mine.push((batch, *seq, piece));
            } else {
                outboxes[k].push_back(encode(world, &(batch, *seq, piece)));
            }
        }
        *seq += 1;
    }
    let mut sent = 0u64;
    loop {
        let (send, counts) = pack_round(world, &mut outboxes);
        sent += send.len() as u64;
        let left: u64 = outboxes.iter().map(|o| o.len() as u64).sum();
        let received = all_to_all(world, send, &counts);
        let mut at = 0usize;
        while at + 8 <= received.len() {
            let mut len = [0u8; 8];
            len.copy_from_slice(&received[at..at + 8]);
            let len = u64::from_le_bytes(len) as usize;
            let Some(message) = received.get(at + 8..at + 8 + len) else {
                fail(world, "received a truncated piece");
            };
            mine.push(decode(world, message));
            at += 8 + len;
        }
        let mut everywhere = 0u64;
        world.all_reduce_into(&left, &mut everywhere, SystemOperation::sum());
        if everywhere == 0 {
            break;
        }
    }
    (mine, sent)
}

/// This round's messages from the outboxes: whole pieces up to
/// ROUND_BYTES per destination (a larger piece goes alone), each prefixed
/// with its length; and the bytes for each destination.
fn pack_round(
    world: &SimpleCommunicator,
    outboxes: &mut [std::collections::VecDeque<Vec<u8>>],
) -> (Vec<u8>, Vec<Count>) {
    let mut send: Vec<u8> = Vec::new();
    let mut counts: Vec<Count> = vec![0; outboxes.len()];
    for (k, outbox) in outboxes.iter_mut().enumerate() {
        let before = send.len();
        while let Some(message) = outbox.front() {
            let taken = send.len() - before;
            if taken > 0 && taken + message.len() + 8 > ROUND_BYTES {
                break;
            }
            if let Some(message) = outbox.pop_front() {
                send.extend_from_slice(&(message.len() as u64).to_le_bytes());
                send.extend_from_slice(&message);
            }
        }
        counts[k] = Count::try_from(send.len() - before)
            .unwrap_or_else(|_| fail(world, "a piece of a run is over 2 GiB: too large to send"));
    }
    (send, counts)
}

/// One `MPI_Alltoallv`: `counts[k]` bytes of `send` (in order) to rank k;
/// returns what every rank sent this one, in rank order.
fn all_to_all(world: &SimpleCommunicator, mut send: Vec<u8>, counts: &[Count]) -> Vec<u8> {
    let mut incoming: Vec<Count> = vec![0; counts.len()];
    world.all_to_all_into(counts, &mut incoming[..]);
    let displs = |counts: &[Count]| -> Vec<Count> {
        counts
            .iter()
            .scan(0, |at, &c| {
                let start = *at;
                *at += c;
                Some(start)
            })
            .collect()
    };
    let total: usize = incoming.iter().map(|&c| c as usize).sum();
    // Never an empty buffer: Open MPI refuses its dangling pointer (the
    // counts say what is really sent).
    let mut received = vec![0u8; total.max(1)];
    if send.is_empty() {
        send.push(0);
    }
    {
        let send_displs = displs(counts);
        let receive_displs = displs(&incoming);
        let outgoing = Partition::new(&send[..], counts, &send_displs[..]);
        let mut into = PartitionMut::new(&mut received[..], &incoming[..], &receive_displs[..]);
        world.all_to_all_varcount_into(&outgoing, &mut into);
    }
    received.truncate(total);
    received
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(code) => return code,
    };
    let Some(universe) = mpi::initialize() else {
        eprintln!("indexer-mpi: MPI could not be initialized (run it with mpirun)");
        return ExitCode::from(1);
    };
    let world = universe.world();
    let started = Instant::now();
    let rank = world.rank();
    if let Some(code) = refused(&world, &args) {
        return code;
    }
    if rank == 0 {
        // Staged parts of a run that died before renaming them.
        shards::remove_stale_parts(&staging_path(&args.save), &[]);
    }
    // Every rank must see the tree (a shared filesystem, at the same path).
    if let Err(e) = indexer::index::check_root(&args.directory) {
        fail(&world, format!("cannot read the tree here: {e}"));
    }
    let excludes = excludes_of(&world, &args);
    let root = paths::canonical_root(&args.directory);

    // 1. The file list, from rank 0.
    let (files, root_identity, walk_skipped) = shared_listing(&world, &args, &excludes);

    // 2. Batches, handed out by rank 0 as ranks ask.
    let work = index_batches(&world, &args, &files, root_identity);
    let built = started.elapsed();
    let failed = shared_failures(&world, &work.unreadable);

    // 3. Split words, then the exchange.
    let splits = choose_splits(&world, &work.runs);
    let (pieces, sent) = exchange(&world, work.runs, &splits);
    let exchanged = started.elapsed();

    // 4. Merge this rank's range in file order, then write the parts once
    // every rank has merged, the manifest last.
    let recheck: HashSet<&str> = failed
        .iter()
        .filter_map(|(f, _)| files.get(*f as usize).map(|e| e.display.as_str()))
        .collect();
    let records = store::records_of_files(&files, &args.directory, None, &|d| recheck.contains(d));
    let index = merge_pieces(&world, &files, pieces);
    let words = index.vocabulary().len() as u64;
    let view = View::single(index);
    let meta = shared_meta(&world, &args, &root, &excludes);
    let part = match write_part(&world, &args.save, &meta, &view, &records) {
        Ok(part) => part,
        Err(code) => return code,
    };
    let report = RankReport {
        part,
        sent,
        indexed: work.indexed,
        bytes: work.bytes,
        binary: work.binary as u64,
        words,
        built_s: built.as_secs_f64(),
        exchanged_s: exchanged.as_secs_f64(),
        merged_s: started.elapsed().as_secs_f64(),
        peak_kib: peak_rss_kib(),
    };
    let reports = gather_bytes(&world, encode(&world, &report));
    if rank == 0 {
        let reports: Vec<RankReport> = reports.iter().map(|b| decode(&world, b)).collect();
        let parts: Vec<shards::PartInfo> = reports.iter().map(|r| r.part.clone()).collect();
        let manifest =
            shards::save_manifest(&args.save, &meta, &parts).unwrap_or_else(|e| fail(&world, e));
        let skipped = walk_skipped as u64 + failed.len() as u64;
        print_summary(&args, &reports, manifest, skipped, started);
    }
    ExitCode::SUCCESS
}

/// This rank's share of the tree, indexed: rank 0 hands out batches as
/// ranks ask (indexing its own between answers), the others ask.
fn index_batches(
    world: &SimpleCommunicator,
    args: &Args,
    files: &[FileEntry],
    root_identity: Option<(u64, u64)>,
) -> Work {
    let options = BuildOptions {
        workers: 1,
        fault: Fault::from_env(),
        ..BuildOptions::default()
    };
    let mut builder = Builder {
        files,
        root: &args.directory,
        root_identity,
        options: &options,
        scratch: Scratch::default(),
        work: Work::default(),
    };
    if world.rank() == 0 {
        let batches = plan_batches(files, world.size() as usize);
        serve_batches(world, &batches, &mut builder);
    } else {
        ask_for_batches(world, &mut builder);
    }
    builder.work
}

/// The arguments, or the exit code once help, version or a one-line
/// error was printed.
fn parse_args() -> Result<Args, ExitCode> {
    Args::try_parse().map_err(|e| {
        if !e.use_stderr() {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        let text = e.to_string();
        let line = text.lines().next().unwrap_or("bad arguments");
        eprintln!("indexer-mpi: {}", line.trim_start_matches("error: "));
        ExitCode::from(2)
    })
}

/// Bad input, refused by rank 0 before any work for the whole job: the
/// exit code every rank returns, or `None` to go on.
fn refused(world: &SimpleCommunicator, args: &Args) -> Option<ExitCode> {
    let mut refusal = Vec::new();
    if world.rank() == 0 {
        let checked = indexer::index::check_root(&args.directory)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                paths::check_writable(&args.save)
                    .and_then(|()| store::check_replaceable(&args.save))
                    .map_err(|e| e.to_string())
            })
            .and_then(|()| Excludes::new(&args.exclude).map_err(|e| e.to_string()))
            .and_then(|_| match args.workers {
                1 => Ok(()),
                n => Err(format!(
                    "--workers {n}: each rank is one worker (MPI_Init starts threads, and a process with threads must not fork); start one rank per core instead (mpirun -np)"
                )),
            });
        if let Err(e) = checked {
            refusal = e.into_bytes();
        }
    }
    broadcast_bytes(world, &mut refusal);
    if refusal.is_empty() {
        return None;
    }
    if world.rank() == 0 {
        eprintln!("indexer-mpi: {}", String::from_utf8_lossy(&refusal));
    }
    Some(ExitCode::from(2))
}

/// `--exclude`, the ignore files, and the index's own files when it is
/// saved inside the tree.
fn excludes_of(world: &SimpleCommunicator, args: &Args) -> Excludes {
    let mut excludes = match Excludes::new(&args.exclude) {
        Ok(e) => e.honour_ignore_files(!args.no_ignore),
        Err(e) => fail(world, e),
    };
    if let Some(relative) = paths::relative_to(&args.save, &args.directory) {
        excludes.exclude_matching(&store::family_pattern(&relative));
    }
    excludes
}

/// The tree's files as rank 0 walked them, on every rank: the files, the
/// root's identity, and how many the walk skipped.
fn shared_listing(
    world: &SimpleCommunicator,
    args: &Args,
    excludes: &Excludes,
) -> (Vec<FileEntry>, Option<(u64, u64)>, usize) {
    let mut listing = Vec::new();
    if world.rank() == 0 {
        let walked = walk(&args.directory, excludes).unwrap_or_else(|e| fail(world, e));
        let skipped = walked.not_regular.len() + walked.unreadable.len();
        listing = encode(
            world,
            &to_listing(&walked.files, walked.root_identity, skipped),
        );
    }
    broadcast_bytes(world, &mut listing);
    from_listing(decode(world, &listing))
}

/// Which files could not be read, known to every rank (sorted): their
/// records say so, and the parts' records must be the same.
fn shared_failures(world: &SimpleCommunicator, unreadable: &[(u32, String)]) -> Vec<(u32, String)> {
    let gathered = gather_bytes(world, encode(world, &unreadable));
    let mut failed: Vec<(u32, String)> = Vec::new();
    if world.rank() == 0 {
        for bytes in &gathered {
            failed.extend(decode::<Vec<(u32, String)>>(world, bytes));
        }
        failed.sort();
    }
    let mut failed_bytes = encode(world, &failed);
    broadcast_bytes(world, &mut failed_bytes);
    decode(world, &failed_bytes)
}

/// This rank's range of the index: its pieces from every rank, merged in
/// (batch, run) order, which is file order.
fn merge_pieces(
    world: &SimpleCommunicator,
    files: &[FileEntry],
    mut pieces: Vec<(u32, u32, Run)>,
) -> indexer::index::Index {
    pieces.sort_by_key(|&(batch, seq, _)| (batch, seq));
    let display: Vec<String> = files.iter().map(|f| f.display.clone()).collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(2);
    let runs: Vec<Run> = pieces.into_iter().map(|(_, _, run)| run).collect();
    merge_runs_parallel(display, runs, threads).unwrap_or_else(|e| fail(world, e))
}

/// The index's description, the same on every rank (rank 0 chooses its
/// id and time).
fn shared_meta(
    world: &SimpleCommunicator,
    args: &Args,
    root: &Path,
    excludes: &Excludes,
) -> indexer::store::Meta {
    let mut meta_bytes = Vec::new();
    if world.rank() == 0 {
        let meta = shards::new_meta(&args.save, root, &excludes.globs());
        meta_bytes = encode(world, &(meta.base_id, meta.saved_at));
    }
    broadcast_bytes(world, &mut meta_bytes);
    let (base_id, saved_at): (u64, u64) = decode(world, &meta_bytes);
    let mut meta = shards::new_meta(&args.save, root, &excludes.globs());
    (meta.base_id, meta.saved_at) = (base_id, saved_at);
    meta
}

/// What each rank tells rank 0 once its part is written.
#[derive(serde::Serialize, serde::Deserialize)]
struct RankReport {
    part: shards::PartInfo,
    /// Bytes sent in the exchange.
    sent: u64,
    indexed: u64,
    bytes: u64,
    binary: u64,
    /// Distinct words in its part.
    words: u64,
    /// Seconds since the start when built, exchanged, merged and saved.
    built_s: f64,
    exchanged_s: f64,
    merged_s: f64,
    peak_kib: u64,
}

/// Rank 0's summary of the job, and a line per rank.
fn print_summary(
    args: &Args,
    reports: &[RankReport],
    manifest_bytes: u64,
    skipped_before: u64,
    started: Instant,
) {
    let total_words: u64 = reports.iter().map(|r| r.words).sum();
    let total_bytes: u64 = reports.iter().map(|r| r.bytes).sum();
    let indexed: u64 = reports.iter().map(|r| r.indexed).sum();
    let skipped: u64 = reports.iter().map(|r| r.binary).sum::<u64>() + skipped_before;
    let saved: u64 = reports.iter().map(|r| r.part.bytes).sum::<u64>() + manifest_bytes;
    eprintln!(
        "indexed {indexed} files ({:.1} MB), {total_words} distinct words, {skipped} skipped; saved {} in {} parts ({:.1} MB) in {:.2} s",
        total_bytes as f64 / 1e6,
        args.save.display(),
        reports.len(),
        saved as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    for (k, r) in reports.iter().enumerate() {
        eprintln!(
            "  rank {k}: {} files, sent {:.1} MB, {} words in its part; built {:.2} s, exchanged by {:.2} s, saved by {:.2} s; peak RSS {:.0} MB",
            r.indexed,
            r.sent as f64 / 1e6,
            r.words,
            r.built_s,
            r.exchanged_s,
            r.merged_s,
            r.peak_kib as f64 / 1024.0
        );
    }
}

/// True on every rank if `ok` is true on every rank.
fn all_ok(world: &SimpleCommunicator, ok: bool) -> bool {
    let mut all = 0i32;
    world.all_reduce_into(&i32::from(ok), &mut all, SystemOperation::min());
    all == 1
}

/// Writes this rank's part beside FILE under a staging name, and only once
/// every rank has written its own renames it to `FILE.part-K-of-R`: a run
/// that fails before that leaves a previous index at FILE whole, and its
/// staged parts are removed. `Err` with the exit code when any rank failed.
fn write_part(
    world: &SimpleCommunicator,
    file: &Path,
    meta: &indexer::store::Meta,
    view: &View,
    records: &[indexer::store::FileRecord],
) -> Result<shards::PartInfo, ExitCode> {
    let (k, ranks) = (world.rank() as usize + 1, world.size() as usize);
    let staging = staging_path(file);
    let hits = view
        .hits(|v| indexer::index::Picks::span(0..v.len()))
        .unwrap_or_else(|e| fail(world, e));
    let staged = shards::save_part(&staging, k, ranks, meta, view, &hits, records);
    if let Err(e) = &staged {
        eprintln!("indexer-mpi: rank {}: {e}", world.rank());
    }
    let staged_file = shards::part_path(&staging, k, ranks);
    if !all_ok(world, staged.is_ok()) {
        let _ = std::fs::remove_file(&staged_file);
        return Err(ExitCode::from(1));
    }
    let final_file = shards::part_path(file, k, ranks);
    let renamed = std::fs::rename(&staged_file, &final_file);
    if let Err(e) = &renamed {
        eprintln!(
            "indexer-mpi: rank {}: cannot rename {} to {}: {e}",
            world.rank(),
            staged_file.display(),
            final_file.display()
        );
    }
    if !all_ok(world, renamed.is_ok()) {
        let _ = std::fs::remove_file(&staged_file);
        return Err(ExitCode::from(1));
    }
    let mut part = staged.map_err(|_| ExitCode::from(1))?;
    part.name = final_file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(part)
}

/// `FILE.staging`: the name parts are written under before they are whole.
fn staging_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".staging");
    PathBuf::from(name)
}

/// This process's peak resident set, in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
