//! Runs on disk: where a build puts the runs that pass its memory budget,
//! and how they are merged back.
//!
//! A run on disk is one temporary file, unlinked as soon as it is created
//! (`O_TMPFILE` where the file system has it), so it disappears with its
//! descriptor however the process ends, Ctrl-C and `kill -9` included. It
//! holds the run's posting lists, then its word entries (a run's own two
//! halves, see [`Run`]), read back through two cursors with `pread`, each
//! with a small buffer: memory per run is two buffers, whatever its size.
//!
//! Merging many runs at once needs a descriptor and two buffers each, so
//! past [`MAX_FAN_IN`] runs, consecutive runs are first merged into larger
//! runs on disk (in file order, so the lists stay joinable).

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use crate::index::partial::{read_entry, EntryWriter, Run, WordBuf, CHECKPOINT_EVERY};
use crate::index::stream::{
    merge_into, EntryHead, ListSink, RunFiles, RunShape, RunSource, Spill, HEAD_BYTES,
};

/// Bytes each cursor of a run on disk reads at a time.
const CURSOR_BUFFER: usize = 128 << 10;

/// Most runs merged in one pass: each takes a descriptor and two buffers.
pub const MAX_FAN_IN: usize = 128;

/// Makes the temporary files of a build in one folder.
#[derive(Debug)]
pub struct SpillFolder {
    folder: PathBuf,
}

impl SpillFolder {
    /// Temporary files go in `folder`.
    pub fn new(folder: &Path) -> Self {
        SpillFolder {
            folder: folder.to_path_buf(),
        }
    }

    /// The folder.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// A new temporary file, already unlinked.
    pub fn file(&self) -> io::Result<File> {
        temporary_file(&self.folder)
    }
}

/// Writes `run` to a new unlinked file in `folder`: its lists, then its
/// word entries (what [`DiskRun`] reads back).
fn write_run(folder: &Path, run: &Run) -> io::Result<File> {
    let file = temporary_file(folder)?;
    let mut out = BufWriter::with_capacity(1 << 20, &file);
    out.write_all(&run.postings)?;
    out.write_all(&run.bytes)?;
    out.flush()?;
    drop(out);
    Ok(file)
}

fn temporary_file(folder: &Path) -> io::Result<File> {
    tempfile::tempfile_in(folder).map_err(|e| {
        // Out of descriptors is the user's limit to raise, not a fault.
        let advice = match e.raw_os_error() {
            Some(libc::EMFILE) => "; raise the limit on open files with `ulimit -n`",
            _ => "",
        };
        io::Error::new(
            e.kind(),
            format!(
                "cannot make a temporary file in {}: {e}{advice}",
                folder.display()
            ),
        )
    })
}

impl Spill for SpillFolder {
    fn spill(&mut self, run: &Run) -> io::Result<Box<dyn RunSource>> {
        let file = write_run(&self.folder, run)?;
        self.adopt(file, RunShape::of(run))
    }

    fn for_workers(&self) -> Option<RunFiles> {
        Some(RunFiles {
            folder: self.folder.clone(),
            write: write_run,
        })
    }

    fn fan_in(&self) -> Option<usize> {
        Some(fan_in())
    }

    fn combine(&mut self, sources: Vec<Box<dyn RunSource>>) -> io::Result<Box<dyn RunSource>> {
        merge_to_disk(sources, self)
    }

    fn adopt(&mut self, file: File, shape: RunShape) -> io::Result<Box<dyn RunSource>> {
        if file.metadata()?.len() != shape.lists + shape.heads {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a worker's run file is not the size it said",
            ));
        }
        // A run's checkpoints are (words offset, lists offset) pairs.
        Ok(Box::new(DiskRun::new(
            file,
            shape.lists,
            shape.heads,
            shape.checkpoints,
        )))
    }
}

/// A window on a region of a file, read with `pread`.
struct Cursor {
    /// Next file offset to read into the buffer.
    next: u64,
    /// End of the region.
    end: u64,
    buffer: Vec<u8>,
    /// Unread bytes are `buffer[at..]`.
    at: usize,
    /// File offset below which pages were let go.
    dropped: u64,
}

impl Cursor {
    fn new(start: u64, len: u64) -> Self {
        Cursor {
            next: start,
            end: start + len,
            buffer: Vec::new(),
            at: 0,
            dropped: start,
        }
    }

    /// Makes at least `n` unread bytes available (fewer at the region's
    /// end); returns them.
    fn fill(&mut self, file: &File, n: usize) -> io::Result<&[u8]> {
        if self.buffer.len() - self.at < n && self.next < self.end {
            // Read once: let the pages behind go (the file is unlinked, so
            // nothing else will read them).
            let behind = self.next.saturating_sub(self.buffer.len() as u64);
            if behind > self.dropped + (8 << 20) {
                use std::os::fd::AsRawFd;
                // SAFETY: fadvise on an open descriptor only advises the kernel.
                unsafe {
                    libc::posix_fadvise(
                        file.as_raw_fd(),
                        self.dropped as libc::off_t,
                        (behind - self.dropped) as libc::off_t,
                        libc::POSIX_FADV_DONTNEED,
                    );
                }
                self.dropped = behind;
            }
            self.buffer.drain(..self.at);
            self.at = 0;
            let room = CURSOR_BUFFER.max(n) - self.buffer.len();
            let take = room.min(usize::try_from(self.end - self.next).unwrap_or(usize::MAX));
            let old = self.buffer.len();
            self.buffer.resize(old + take, 0);
            file.read_exact_at(&mut self.buffer[old..], self.next)?;
            self.next += take as u64;
        }
        Ok(&self.buffer[self.at..])
    }

    fn consume(&mut self, n: usize) {
        self.at += n;
    }

    fn is_done(&self) -> bool {
        self.at == self.buffer.len() && self.next >= self.end
    }
}

fn malformed() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "a run on disk does not decode")
}

/// A run on disk, read back entry by entry (see the module docs).
pub struct DiskRun {
    file: Arc<File>,
    lists: Cursor,
    heads: Cursor,
    /// Where the word entries start in the file.
    heads_start: u64,
    /// Every [`CHECKPOINT_EVERY`]th entry: (its offset in the entries, its
    /// list's offset in the lists), relative to where each region starts.
    checkpoints: Arc<Vec<(u64, u64)>>,
    word: WordBuf,
    head: EntryHead,
}

impl DiskRun {
    /// The run in `file`: `lists` bytes of posting lists, then `heads` bytes
    /// of word entries, with its checkpoints.
    pub fn new(file: File, lists: u64, heads: u64, checkpoints: Vec<(u64, u64)>) -> Self {
        DiskRun::part(
            Arc::new(file),
            lists,
            Arc::new(checkpoints),
            ((0, 0), WordBuf::default()),
            (heads, lists),
        )
    }

    /// The entries from `from` to `to` ((entries offset, lists offset),
    /// relative to each region) of the run in `file`.
    /// `word` is the word before `from` (empty at a checkpoint).
    fn part(
        file: Arc<File>,
        heads_start: u64,
        checkpoints: Arc<Vec<(u64, u64)>>,
        (from, word): ((u64, u64), WordBuf),
        to: (u64, u64),
    ) -> Self {
        DiskRun {
            file,
            lists: Cursor::new(from.1, to.1 - from.1),
            heads: Cursor::new(heads_start + from.0, to.0 - from.0),
            heads_start,
            checkpoints,
            word,
            head: EntryHead {
                count: 0,
                last_file: 0,
                list_len: 0,
            },
        }
    }

    /// Where the run's entries and lists end (relative to each region).
    fn ends(&self) -> (u64, u64) {
        (self.heads.end - self.heads_start, self.lists.end)
    }

    /// A reader of the entries from `at` on, where the word before is
    /// `.1` (empty at a checkpoint).
    fn from(&self, at: ((u64, u64), WordBuf)) -> DiskRun {
        DiskRun::part(
            self.file.clone(),
            self.heads_start,
            self.checkpoints.clone(),
            at,
            self.ends(),
        )
    }

    /// Where the next entry starts (relative to each region).
    fn position(&self) -> (u64, u64) {
        let unread = |c: &Cursor| c.next - (c.buffer.len() - c.at) as u64;
        (unread(&self.heads) - self.heads_start, unread(&self.lists))
    }

    /// The position of the first entry whose word is `word` or after, and
    /// the word before it.
    fn find(&self, word: &[u8]) -> io::Result<((u64, u64), WordBuf)> {
        // The last checkpoint whose word is below `word`, then entry by entry.
        let (mut lo, mut hi) = (0usize, self.checkpoints.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let mut reader = self.from((self.checkpoints[mid], WordBuf::default()));
            match reader.advance()? {
                true if reader.word() < word => lo = mid + 1,
                _ => hi = mid,
            }
        }
        let start = match lo {
            0 => (0, 0),
            k => self.checkpoints[k - 1],
        };
        let mut reader = self.from((start, WordBuf::default()));
        loop {
            let before = (reader.position(), reader.word.clone());
            if !reader.advance()? || reader.word() >= word {
                return Ok(before);
            }
            reader.skip_list();
        }
    }

    /// Moves past the current entry's list without reading it.
    fn skip_list(&mut self) {
        let mut left = self.head.list_len;
        while left > 0 {
            let available = (self.lists.buffer.len() - self.lists.at) as u64;
            if available >= left {
                self.lists.consume(left as usize);
                return;
            }
            left -= available;
            self.lists.at = self.lists.buffer.len();
            // Jump the rest without reading it.
            let skip = left.min(self.lists.end - self.lists.next);
            self.lists.next += skip;
            left -= skip;
            if skip == 0 {
                return;
            }
        }
    }
}

impl RunSource for DiskRun {
    fn advance(&mut self) -> io::Result<bool> {
        if self.heads.is_done() {
            return Ok(false);
        }
        // An entry: five varints and a word of at most a few hundred bytes.
        let bytes = self.heads.fill(&self.file, 512)?;
        let mut pos = 0;
        let (count, last_file, list_len) =
            read_entry(bytes, &mut pos, &mut self.word).ok_or_else(malformed)?;
        self.heads.consume(pos);
        self.head = EntryHead {
            count,
            last_file,
            list_len,
        };
        Ok(true)
    }

    fn word(&self) -> &[u8] {
        self.word.as_slice()
    }

    fn head(&self) -> EntryHead {
        self.head
    }

    fn sample(&self, every: usize) -> io::Result<Vec<Vec<u8>>> {
        let mut words = Vec::new();
        for &at in self.checkpoints.iter().step_by(every.max(1)) {
            let mut reader = self.from((at, WordBuf::default()));
            if reader.advance()? {
                words.push(reader.word().to_vec());
            }
        }
        Ok(words)
    }

    fn sizes(&self) -> (u64, u64) {
        (
            self.heads.end - self.heads.next,
            self.lists.end - self.lists.next,
        )
    }

    fn split(self: Box<Self>, word: &[u8]) -> io::Result<(Box<dyn RunSource>, Box<dyn RunSource>)> {
        let at = self.find(word)?;
        let below = DiskRun::part(
            self.file.clone(),
            self.heads_start,
            self.checkpoints.clone(),
            (self.position(), self.word.clone()),
            at.0,
        );
        Ok((Box::new(below), Box::new(self.from(at))))
    }

    fn copy_list(&mut self, out: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        let mut left = self.head.list_len;
        let mut first = true;
        while left > 0 {
            let want = if first { HEAD_BYTES } else { 1 };
            let want = want.min(usize::try_from(left).unwrap_or(usize::MAX));
            let bytes = self.lists.fill(&self.file, want)?;
            if bytes.len() < want {
                return Err(malformed());
            }
            let take = bytes.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            out(&bytes[..take])?;
            self.lists.consume(take);
            left -= take as u64;
            first = false;
        }
        Ok(())
    }
}

/// Writes merged words as a run on disk: lists straight to the file, word
/// entries to a second temporary file appended at the end.
struct RunWriter {
    lists: BufWriter<File>,
    heads: BufWriter<File>,
    lists_len: u64,
    heads_len: u64,
    entry: Vec<u8>,
    /// Each word is written against the one before.
    entries: EntryWriter,
    list_len: u64,
    words: usize,
    checkpoints: Vec<(u64, u64)>,
}

impl RunWriter {
    fn new(spill: &SpillFolder) -> io::Result<Self> {
        Ok(RunWriter {
            lists: BufWriter::with_capacity(1 << 20, spill.file()?),
            heads: BufWriter::with_capacity(1 << 20, spill.file()?),
            lists_len: 0,
            heads_len: 0,
            entry: Vec::new(),
            entries: EntryWriter::default(),
            list_len: 0,
            words: 0,
            checkpoints: Vec::new(),
        })
    }

    fn finish(self) -> io::Result<DiskRun> {
        let mut lists = self.lists.into_inner().map_err(|e| e.into_error())?;
        let mut heads = self.heads.into_inner().map_err(|e| e.into_error())?;
        heads.seek(SeekFrom::Start(0))?;
        lists.seek(SeekFrom::End(0))?;
        let copied = io::copy(&mut (&mut heads).take(self.heads_len), &mut lists)?;
        if copied != self.heads_len {
            return Err(io::Error::other("a temporary file came back short"));
        }
        Ok(DiskRun::new(
            lists,
            self.lists_len,
            self.heads_len,
            self.checkpoints,
        ))
    }
}

impl ListSink for RunWriter {
    fn list(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.lists.write_all(bytes)?;
        self.lists_len += bytes.len() as u64;
        self.list_len += bytes.len() as u64;
        Ok(())
    }

    fn word(&mut self, word: &[u8], count: u32, last_file: u32) -> io::Result<()> {
        if self.words.is_multiple_of(CHECKPOINT_EVERY) {
            // This entry starts where the entries so far end; its list
            // started `list_len` bytes ago.
            self.checkpoints
                .push((self.heads_len, self.lists_len - self.list_len));
            // And it stands alone, so a reader may start there.
            self.entries.restart();
        }
        self.words += 1;
        self.entry.clear();
        self.entries
            .write(&mut self.entry, word, count, last_file, self.list_len)
            .ok_or_else(|| io::Error::other("a word longer than any run holds"))?;
        self.heads.write_all(&self.entry)?;
        self.heads_len += self.entry.len() as u64;
        self.list_len = 0;
        Ok(())
    }
}

/// How many runs on disk are merged at once: each holds a descriptor, and
/// a build may hold twice this many (see [`Spill::fan_in`]) beside the
/// descriptors of its workers and its output.
pub fn fan_in() -> usize {
    let allowed = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft);
    let spare = usize::try_from(allowed.saturating_sub(64) / 2).unwrap_or(usize::MAX);
    spare.clamp(2, MAX_FAN_IN)
}

/// Merges `sources`, consecutive runs in file order, into one run on disk.
fn merge_to_disk(
    sources: Vec<Box<dyn RunSource>>,
    spill: &SpillFolder,
) -> io::Result<Box<dyn RunSource>> {
    let mut writer = RunWriter::new(spill)?;
    merge_into(sources, &mut writer)?;
    Ok(Box::new(writer.finish()?))
}

/// Merges `sources` (in file order) into at most `fan_in` sources, merging
/// consecutive ones into runs on disk.
pub fn reduce(
    mut sources: Vec<Box<dyn RunSource>>,
    spill: &SpillFolder,
    fan_in: usize,
) -> io::Result<Vec<Box<dyn RunSource>>> {
    let fan_in = fan_in.max(2);
    while sources.len() > fan_in {
        let groups = sources.len().div_ceil(fan_in);
        let per_group = sources.len().div_ceil(groups);
        let mut merged: Vec<Box<dyn RunSource>> = Vec::with_capacity(groups);
        let mut rest = sources.into_iter();
        loop {
            let group: Vec<Box<dyn RunSource>> = rest.by_ref().take(per_group).collect();
            if group.is_empty() {
                break;
            }
            merged.push(merge_to_disk(group, spill)?);
        }
        sources = merged;
    }
    Ok(sources)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::partial::{Limits, PartialIndex};
    use crate::index::stream::MemoryRun;
    use crate::index::tokenize::for_each_word;

    #[derive(Default)]
    struct Collect {
        list: Vec<u8>,
        words: Vec<(Vec<u8>, u32, u32, Vec<u8>)>,
    }

    impl ListSink for Collect {
        fn list(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.list.extend_from_slice(bytes);
            Ok(())
        }
        fn word(&mut self, word: &[u8], count: u32, last: u32) -> io::Result<()> {
            self.words
                .push((word.to_vec(), count, last, std::mem::take(&mut self.list)));
            Ok(())
        }
    }

    fn runs() -> Vec<Run> {
        let mut partial = PartialIndex::with_limits(Limits {
            table: 1 << 18,
            arena: 1 << 13,
        });
        let mut runs = Vec::new();
        for file in 0..60u32 {
            let text: String = (0..400)
                .map(|i| format!("w{} ", (i * 31 + file * 7) % (100 + 3 * file)))
                .collect();
            for_each_word(text.as_bytes(), |w, p| {
                if partial.add(w, file, p.line, p.column) {
                    runs.push(partial.take_run());
                }
            });
        }
        runs.push(partial.take_run());
        runs
    }

    fn merged(sources: Vec<Box<dyn RunSource>>) -> Vec<(Vec<u8>, u32, u32, Vec<u8>)> {
        let mut sink = Collect::default();
        merge_into(sources, &mut sink).unwrap();
        sink.words
    }

    #[test]
    fn runs_on_disk_and_merged_in_passes_read_like_runs_in_memory() {
        let runs = runs();
        assert!(runs.len() > 8, "{} runs", runs.len());
        let in_memory = merged(
            runs.iter()
                .cloned()
                .map(|r| Box::new(MemoryRun::new(r)) as Box<dyn RunSource>)
                .collect(),
        );
        let dir = tempfile::tempdir().unwrap();
        let mut spill = SpillFolder::new(dir.path());
        let on_disk: Vec<Box<dyn RunSource>> =
            runs.iter().map(|r| spill.spill(r).unwrap()).collect();
        // Temporary files are unlinked: nothing shows in the folder.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let reduced = reduce(on_disk, &spill, 4).unwrap();
        assert!(reduced.len() <= 4);
        assert_eq!(merged(reduced), in_memory);
    }
}
