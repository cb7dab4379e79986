//! Runs handed from a worker to the parent in shared memory.
//!
//! A kernel build sends the parent close to a gigabyte of runs. Through the
//! channel, every byte was copied into the socket, out of it, and once more
//! into the run the parent decoded (into memory it first zeroed, a page
//! fault per 4 KiB): most of the parent's time while the workers ran, and
//! the parent shares the cores with them. Instead a worker writes its run
//! into an anonymous memory file (`memfd_create`), sends the descriptor, and
//! the parent maps it: one copy, made by the worker, and none in the parent.
//!
//! The file holds the run's posting lists, then, from the next page on, its
//! word entries (the layout a run on disk has, see `store::spill`, but
//! page-aligned). They are mapped apart because they live apart: the
//! entries are let go of as soon as the merge has read them (their pages
//! removed from the file), while the lists stay as the index's own. The
//! parent keeps no descriptor: the mappings hold the files.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use memmap2::{Mmap, MmapMut, MmapOptions};

use crate::index::bytes::{Bytes, Owner};
use crate::index::partial::Run;
use crate::index::stream::RunShape;

/// Where a run's word entries start in its shared file.
fn entries_at(shape: &RunShape) -> u64 {
    shape.lists.next_multiple_of(page_size())
}

fn page_size() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

/// Whether the parent can take runs with their files from `workers`
/// workers: each run's descriptor is open from its arrival until it is
/// mapped, and one may be waiting from every worker at once. Where
/// descriptors are that scarce, runs go through the channel; a descriptor
/// the parent had no room for would be a run lost.
pub(super) fn descriptors_to_spare(workers: usize) -> bool {
    use nix::sys::resource::{getrlimit, Resource};
    getrlimit(Resource::RLIMIT_NOFILE).is_ok_and(|(soft, _)| soft >= 32 + 4 * workers as u64)
}

/// `run` written to a new anonymous memory file, to send to the parent.
pub(super) fn share(run: &Run) -> io::Result<File> {
    use std::os::unix::fs::FileExt;
    let fd = nix::sys::memfd::memfd_create(
        c"indexer-run",
        nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
    )?;
    let file = File::from(fd);
    let shape = RunShape::of(run);
    file.write_all_at(&run.postings, 0)?;
    file.write_all_at(&run.bytes, entries_at(&shape))?;
    Ok(file)
}

/// Runs smaller than this are copied out of their file rather than
/// mapped: a mapping costs the kernel more than copying a small run, and
/// a build of many small batches (`--batch 1` on the kernel: 78 thousand
/// runs) would otherwise pass the system's limit on mappings
/// (`vm.max_map_count`, 65530 by default) and spend minutes in the kernel
/// on the ones it has.
const MAP_AT_LEAST: u64 = 1 << 20;

/// At most this many mappings of runs live at once (two per run, well
/// within the default limit); past it runs are copied.
const MOST_MAPPED: usize = 8192;

/// Mappings of runs alive now (see [`Mapped`]).
static MAPPED: AtomicUsize = AtomicUsize::new(0);

/// The run a worker shared in `file`: mapped in place when large, copied
/// out when small, when many are mapped already or when the mapping is
/// refused; an error if the file is not the size `shape` says or cannot
/// be read.
pub(super) fn adopt(file: File, shape: RunShape) -> io::Result<Run> {
    let at = entries_at(&shape);
    let size = if shape.heads == 0 {
        shape.lists
    } else {
        at + shape.heads
    };
    if file.metadata()?.len() != size {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a worker's shared run is not the size it said",
        ));
    }
    let mapped = (shape.lists + shape.heads >= MAP_AT_LEAST
        && MAPPED.load(Ordering::Relaxed) < MOST_MAPPED)
        .then(|| mapped_halves(&file, &shape, at).ok())
        .flatten();
    let (postings, bytes) = match mapped {
        Some(halves) => halves,
        None => (
            copied(&file, 0, shape.lists)?,
            copied(&file, at, shape.heads)?,
        ),
    };
    Ok(Run {
        bytes,
        postings,
        words: shape.words,
        word_bytes: shape.word_bytes,
        occurrences: shape.occurrences,
        checkpoints: shape.checkpoints,
    })
}

/// `len` bytes of `file` from `at`, read into memory.
fn copied(file: &File, at: u64, len: u64) -> io::Result<Bytes> {
    use std::os::unix::fs::FileExt;
    let len = usize::try_from(len).map_err(|_| io::Error::other("a shared run too large"))?;
    let mut bytes = vec![0u8; len];
    file.read_exact_at(&mut bytes, at)?;
    Ok(bytes.into())
}

/// The run's lists and word entries, each mapped where it lies.
fn mapped_halves(file: &File, shape: &RunShape, at: u64) -> io::Result<(Bytes, Bytes)> {
    let postings =
        map(file, 0, shape.lists)?.map_or_else(Bytes::default, |map| whole(Mapped::new(map)));
    let bytes = match shape.heads {
        0 => Bytes::default(),
        len => {
            let len =
                usize::try_from(len).map_err(|_| io::Error::other("a shared run too large"))?;
            // SAFETY: as in `map`.
            let map = unsafe {
                MmapOptions::new()
                    .offset(at)
                    .len(len)
                    .populate()
                    .map_mut(file)?
            };
            whole(Mapped::new(Released { map }))
        }
    };
    Ok((postings, bytes))
}

/// A mapping, counted in [`MAPPED`] while it lives.
struct Mapped<T>(T);

impl<T> Mapped<T> {
    fn new(map: T) -> Self {
        MAPPED.fetch_add(1, Ordering::Relaxed);
        Mapped(map)
    }
}

impl<T> Drop for Mapped<T> {
    fn drop(&mut self) {
        MAPPED.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Mapped<T> {
    fn as_ref(&self) -> &[u8] {
        self.0.as_ref()
    }
}

/// `len` bytes of `file` from `at`, mapped read-only with their pages
/// entered at once (one call rather than a fault per page, and counted as
/// the parent's memory from now, as the run it received used to be).
fn map(file: &File, at: u64, len: u64) -> io::Result<Option<Mmap>> {
    if len == 0 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| io::Error::other("a shared run too large"))?;
    // SAFETY: the file is an anonymous memory file only the worker that
    // made it wrote to, and it wrote everything before sending it.
    let map = unsafe {
        MmapOptions::new()
            .offset(at)
            .len(len)
            .populate()
            .map(file)?
    };
    Ok(Some(map))
}

fn whole<T: AsRef<[u8]> + Send + Sync + 'static>(owner: T) -> Bytes {
    let owner: Owner = Arc::new(owner);
    let len = (*owner).as_ref().len();
    Bytes::shared(&owner, 0..len).unwrap_or_default()
}

/// A range of a shared file, mapped writable (which `MADV_REMOVE` needs;
/// nothing writes to it) so that its memory is given back when it is
/// dropped: the rest of the file is still mapped elsewhere, which would
/// otherwise keep it all. No descriptor is kept: a build may hold
/// thousands of runs.
struct Released {
    map: MmapMut,
}

impl AsRef<[u8]> for Released {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for Released {
    fn drop(&mut self) {
        // SAFETY: the range is this struct's own mapping, about to be
        // unmapped; removing its pages from the file only drops bytes
        // nothing reads after this. Failure leaves them until the file's
        // last mapping goes: memory, not data.
        unsafe {
            libc::madvise(
                self.map.as_mut_ptr().cast(),
                self.map.len(),
                libc::MADV_REMOVE,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::partial::{PartialIndex, RunReader};
    use crate::index::tokenize::for_each_word;
    use std::os::unix::fs::MetadataExt;

    fn run_of(text: &str) -> Run {
        let mut partial = PartialIndex::new();
        for_each_word(text.as_bytes(), |word, position| {
            let _ = partial.add(word, 0, position.line, position.column);
        });
        partial.into_run()
    }

    fn entries(run: &Run) -> Vec<(Vec<u8>, u32, Vec<u8>)> {
        RunReader::new(run).map_entries(|e| (e.word.to_vec(), e.count, e.postings.to_vec()))
    }

    /// A run read back from its shared file reads as the run written,
    /// whatever the sizes of its halves (empty, under a page, over one).
    #[test]
    fn a_shared_run_maps_back_to_the_run_written() {
        let long: String = (0..3000).map(|i| format!("w{i} common\n")).collect();
        let past_a_mebibyte: String = (0..150_000).map(|i| format!("w{i} common\n")).collect();
        let mut mapped = 0;
        for text in [
            "",
            "one",
            "a b a\nb c",
            long.as_str(),
            past_a_mebibyte.as_str(),
        ] {
            let run = run_of(text);
            let file = share(&run).unwrap();
            let shape = RunShape::of(&run);
            let large = shape.lists + shape.heads >= MAP_AT_LEAST;
            mapped += usize::from(large);
            let back = adopt(file, shape).unwrap();
            // Small runs are copied into memory, large ones mapped.
            let held = back.bytes.heap_bytes() + back.postings.heap_bytes();
            assert_eq!(
                held == 0,
                large || run.words == 0,
                "{text:.20}: {held} bytes copied"
            );
            assert_eq!(entries(&back), entries(&run), "{text:.20}");
            assert_eq!(back.words, run.words);
            assert_eq!(back.occurrences, run.occurrences);
            assert_eq!(back.checkpoints, run.checkpoints);
        }
        assert_eq!(mapped, 1, "one run large enough to map");
    }

    /// A file that is not the size its message says is refused, not read.
    #[test]
    fn a_shared_run_of_the_wrong_size_is_refused() {
        let run = run_of("alpha beta gamma alpha");
        let mut shape = RunShape::of(&run);
        shape.heads += 1;
        assert!(adopt(share(&run).unwrap(), shape).is_err());
    }

    /// Dropping a run's word entries gives their memory back while its
    /// lists stay mapped.
    #[test]
    fn dropping_the_entries_gives_their_memory_back() {
        let text: String = (0..200_000).map(|i| format!("word{i}\n")).collect();
        let run = run_of(&text);
        let file = share(&run).unwrap();
        let probe = file.try_clone().unwrap();
        let mut back = adopt(file, RunShape::of(&run)).unwrap();
        let before = probe.metadata().unwrap().blocks() * 512;
        assert!(before >= (run.bytes.len() + run.postings.len()) as u64);
        let lists = back.postings.to_vec();
        back.bytes = Bytes::default();
        let after = probe.metadata().unwrap().blocks() * 512;
        assert!(
            after + run.bytes.len() as u64 <= before + 4096,
            "{before} -> {after} bytes held"
        );
        assert_eq!(&back.postings[..], &lists[..]);
    }
}
