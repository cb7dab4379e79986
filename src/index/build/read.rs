//! Reading a listed file: opened beneath the root without following a
//! link, checked to be the file the walk listed, and read in windows.
//!
//! The walk lists the tree before any worker reads it, so the tree may
//! change in between. Opening `root/sub/f` by path would follow `sub` if it
//! had since been replaced by a symbolic link to a folder outside the tree;
//! so every file is opened relative to the root's descriptor with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, or, where the kernel
//! lacks it, one `O_NOFOLLOW` component at a time. The file must then still
//! be the regular file (same inode) that was listed.
//!
//! A file is read a window at a time (a word is never split: the scanner
//! keeps what may continue, see [`Scanner`]), so its size never sets the
//! memory needed; holes of sparse files are skipped with `SEEK_DATA`.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path};

use super::planner::Part;
use crate::index::tokenize::{Scanner, WordSink};
use crate::index::walk::FileEntry;

/// How many leading bytes are searched for a NUL to call a file binary.
pub const BINARY_PROBE_BYTES: usize = 8192;

/// The most the first read of a file asks for (see [`scan_file`]).
const FIRST_READ: usize = 64 << 10;

/// The bytes read at a time, by default: few enough that a window the
/// kernel has just copied in is still in the core's own cache when the
/// tokenizer reads it, beside the word table's busiest slots. A third of
/// the kernel tree's bytes are in files over 256 KiB; read 4 MiB at a
/// time, each window went out to memory between the copy and the scan
/// (tokenize 0.937 -> 0.904 CPU-s with 128 KiB, 10 interleaved builds;
/// the extra reads cost nothing measurable).
pub const DEFAULT_WINDOW: usize = 128 << 10;

/// Files of an eighth of the machine's memory or more are read once and
/// let go of (see [`scan_file`]); smaller ones stay cached, as any reader
/// leaves them.
pub fn drop_pages_above() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    match (u64::try_from(pages), u64::try_from(page)) {
        (Ok(pages), Ok(page)) if pages > 0 && page > 0 => pages * page / 8,
        _ => u64::MAX,
    }
}

/// The folder being indexed, opened once; files are opened beneath it.
#[derive(Debug)]
pub(super) struct Root {
    fd: OwnedFd,
    /// False once `openat2` turned out to be missing (old kernel, or a
    /// sandbox that filters it): open a component at a time instead.
    openat2: std::cell::Cell<bool>,
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the path"))
}

fn check(result: libc::c_int) -> io::Result<OwnedFd> {
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a non-negative return of open/openat/openat2 is a new
    // descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(result) })
}

impl Root {
    /// Opens `root`; `identity` is its (device, inode) as the walk saw it,
    /// so a root replaced since then is refused.
    pub fn open(root: &Path, identity: Option<(u64, u64)>) -> io::Result<Root> {
        let path = c_path(root)?;
        // SAFETY: `path` is a valid NUL-terminated string for the call.
        let fd = check(unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        let root = Root {
            fd,
            openat2: std::cell::Cell::new(true),
        };
        if let Some(expected) = identity {
            let meta = File::from(root.fd.try_clone()?).metadata()?;
            if (meta.dev(), meta.ino()) != expected {
                return Err(io::Error::other(
                    "the folder being indexed was replaced since it was listed",
                ));
            }
        }
        Ok(root)
    }

    /// Opens `relative` (a path below the root, as the walk listed it) for
    /// reading, following no symbolic link on the way.
    pub fn open_file(&self, relative: &Path) -> io::Result<File> {
        if self.openat2.get() {
            match self.open_with_openat2(relative) {
                Err(e) if openat2_missing(&e) => self.openat2.set(false),
                other => return other,
            }
        }
        self.open_by_components(relative)
    }

    fn open_with_openat2(&self, relative: &Path) -> io::Result<File> {
        let path = c_path(relative)?;
        // SAFETY: `open_how` is plain integers, for which zero is valid.
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = (libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC) as u64;
        how.resolve =
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
        // SAFETY: the descriptor, path and `how` are valid for the call, and
        // the size passed is the size of `how`.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                self.fd.as_raw_fd(),
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        check(libc::c_int::try_from(fd).unwrap_or(-1)).map(File::from)
    }

    /// The fallback: each folder opened with `O_NOFOLLOW` from the last.
    pub(super) fn open_by_components(&self, relative: &Path) -> io::Result<File> {
        let mut names = Vec::new();
        for component in relative.components() {
            match component {
                Component::Normal(name) => names.push(name),
                // The walk lists plain relative paths: anything else is not
                // a path beneath the root.
                _ => return Err(io::Error::from_raw_os_error(libc::EXDEV)),
            }
        }
        let Some((file, folders)) = names.split_last() else {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        };
        let mut folder: Option<OwnedFd> = None;
        for name in folders {
            let at = folder.as_ref().unwrap_or(&self.fd).as_raw_fd();
            let name = c_path(Path::new(name))?;
            // SAFETY: `at` is an open descriptor and `name` a valid string.
            let next = check(unsafe {
                libc::openat(
                    at,
                    name.as_ptr(),
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                )
            })?;
            folder = Some(next);
        }
        let at = folder.as_ref().unwrap_or(&self.fd).as_raw_fd();
        let name = c_path(Path::new(file))?;
        // SAFETY: as above.
        check(unsafe {
            libc::openat(
                at,
                name.as_ptr(),
                libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        })
        .map(File::from)
    }
}

/// True when `openat2` itself is unavailable, not the file.
fn openat2_missing(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSYS) | Some(libc::EPERM) | Some(libc::E2BIG)
    )
}

/// A file opened to be read, with its size then.
#[derive(Debug)]
pub(super) struct Opened {
    pub file: File,
    pub size: u64,
}

/// Opens `entry` beneath `root` and checks it is still the regular file
/// the walk listed.
pub(super) fn open_listed(root: &Root, relative: &Path, entry: &FileEntry) -> io::Result<Opened> {
    let file = root
        .open_file(relative)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) | Some(libc::EXDEV) => io::Error::other(
                "a symbolic link now stands on its path (not followed out of the tree)",
            ),
            _ => e,
        })?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("no longer a regular file"));
    }
    if meta.ino() != entry.inode {
        return Err(io::Error::other(
            "replaced by another file since it was listed",
        ));
    }
    Ok(Opened {
        file,
        size: meta.len(),
    })
}

/// What reading a file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Content {
    /// Text, this many bytes long (holes included).
    Text(u64),
    /// A NUL byte within the first [`BINARY_PROBE_BYTES`]: the rest was not read.
    Binary,
}

/// Time a worker spent reading its batch's files (a worker is a process
/// of one thread, so a plain counter; its batch resets it).
pub(super) static READ_NANOS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Reads up to `want` more bytes into `buffer`, from a position `to_end`
/// bytes before the end the file had when opened; true at the end of the
/// file. With `cache` at [`Cache::Unasked`], the first read takes only what
/// the page cache holds (`preadv2` with `RWF_NOWAIT`, which never waits
/// for the disk) and sets `cache` to what it found; what it missed is then
/// read as usual.
///
/// Straight into the buffer's spare room, as much as is asked in one
/// call: `read_to_end` grew its reads from 8 KiB by doubling and confirmed
/// the end with one more read of nothing, so a kernel file took three to
/// six reads. Here a read that comes back short exactly at the size the
/// file had when opened is its end (a regular file's read is short only
/// there); a file that grew since, or a read short elsewhere, is read on
/// until a read returns nothing.
fn fill(
    file: &File,
    buffer: &mut Vec<u8>,
    want: usize,
    mut to_end: u64,
    mut cache: Option<&mut Cache>,
) -> io::Result<bool> {
    let started = std::time::Instant::now();
    buffer.reserve(want);
    let mut asked = want;
    let mut asking = cache.as_deref() == Some(&Cache::Unasked);
    let mut found = |what: Cache| {
        if let Some(cache) = cache.as_deref_mut() {
            *cache = what;
        }
    };
    let at_end = loop {
        if asked == 0 {
            break false;
        }
        let room = &mut buffer.spare_capacity_mut()[..asked];
        // SAFETY: `room` is `asked` bytes of the buffer's own spare
        // capacity, valid for writes; read(2) and preadv2 write at most
        // that many (offset -1: at the file's position, moving it).
        let got = unsafe {
            match asking {
                true => {
                    let slice = libc::iovec {
                        iov_base: room.as_mut_ptr().cast(),
                        iov_len: asked,
                    };
                    libc::preadv2(file.as_raw_fd(), &slice, 1, -1, libc::RWF_NOWAIT)
                }
                false => libc::read(file.as_raw_fd(), room.as_mut_ptr().cast(), asked),
            }
        };
        let Ok(got) = usize::try_from(got) else {
            let error = io::Error::last_os_error();
            if std::mem::take(&mut asking) {
                // Anything but a miss or an interruption says the system
                // will not tell (no `preadv2` or `RWF_NOWAIT` here, or a
                // sandbox that refuses the call): the plain read decides,
                // and reports the file's own errors.
                found(match error.raw_os_error() {
                    Some(libc::EAGAIN) => Cache::Missed,
                    Some(libc::EINTR) => Cache::Unasked,
                    _ => Cache::CannotTell,
                });
                continue;
            }
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        };
        if std::mem::take(&mut asking) {
            // Short of both what was asked and the end: the page cache held
            // only the file's first bytes (or none, should it have grown).
            let whole = got == asked || got as u64 == to_end;
            found(if whole { Cache::Held } else { Cache::Missed });
            if got == 0 && !whole {
                continue;
            }
        }
        if got == 0 {
            break true;
        }
        // SAFETY: the read initialized the first `got` bytes of `room`,
        // which follow the buffer's current length.
        unsafe { buffer.set_len(buffer.len() + got) };
        asked -= got;
        if asked > 0 && got as u64 == to_end {
            break true;
        }
        to_end = to_end.saturating_sub(got as u64);
    };
    READ_NANOS.fetch_add(
        started.elapsed().as_nanos() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    Ok(at_end)
}

/// What a file's first read found in the page cache, when it asked (see
/// [`scan_file`]): a worker fetches its next files ahead only once their
/// bytes stop being there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cache {
    /// Not asked.
    Unasked,
    /// The first read's bytes were all there.
    Held,
    /// Some or all of them had to come from the disk.
    Missed,
    /// The system cannot tell (no `RWF_NOWAIT` for this file, or a sandbox
    /// refused the call): do not ask again.
    CannotTell,
}

/// Where the data region holding `offset` ends (the next hole, or the end
/// of the file); `u64::MAX` if the file system cannot say. Leaves the file
/// position at `offset`.
fn data_end(file: &mut File, offset: u64) -> io::Result<u64> {
    let end = seek(file, offset, libc::SEEK_HOLE).unwrap_or(None);
    file.seek(SeekFrom::Start(offset))?;
    Ok(end.unwrap_or(u64::MAX))
}

/// `lseek(fd, offset, whence)`; `None` for `ENXIO` (no data or hole past it).
fn seek(file: &File, offset: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
    let offset = libc::off_t::try_from(offset).map_err(|_| io::Error::other("offset too large"))?;
    // SAFETY: lseek on an open descriptor has no memory effects.
    let at = unsafe { libc::lseek(file.as_raw_fd(), offset, whence) };
    if at >= 0 {
        return Ok(Some(at as u64));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENXIO) => Ok(None),
        _ => Err(e),
    }
}

/// Where the first line starting after byte `from` begins (0 for `from`
/// 0), and its line number: one pass counting the newlines before it
/// (holes, which hold none, are skipped). `None` if no line starts there.
fn line_at_or_after(file: &File, from: u64) -> io::Result<Option<(u64, u64)>> {
    use std::os::unix::fs::FileExt;
    if from == 0 {
        return Ok(Some((0, 1)));
    }
    let mut buffer = vec![0u8; 1 << 20];
    let mut line = 1u64;
    let mut at = 0u64;
    loop {
        // Past a hole, if the file system says where data resumes.
        match seek(file, at, libc::SEEK_DATA) {
            Ok(Some(data)) => at = at.max(data),
            Ok(None) => return Ok(None),
            Err(_) => {}
        }
        let n = file.read_at(&mut buffer, at)?;
        if n == 0 {
            return Ok(None);
        }
        let chunk = &buffer[..n];
        let split = usize::try_from(from.saturating_sub(at)).map_or(n, |s| s.min(n));
        line += chunk[..split].iter().filter(|&&b| b == b'\n').count() as u64;
        if let Some(k) = memchr::memchr(b'\n', &chunk[split..]) {
            return Ok(Some((at + (split + k + 1) as u64, line + 1)));
        }
        at += n as u64;
    }
}

/// Reads `file` (or its `part`) a window at a time, calling `emit` for each
/// word; `buffer` is reused from file to file. The pages of a file of
/// `drop_pages_above` bytes or more are let go as they are read. With
/// `cache` [`Cache::Unasked`], the first read asks the page cache only and
/// sets `cache` to what it found.
pub(super) fn scan_file<S: WordSink>(
    opened: &mut Opened,
    buffer: &mut Vec<u8>,
    window: usize,
    part: Option<Part>,
    drop_pages_above: u64,
    cache: &mut Cache,
    emit: &mut S,
) -> io::Result<Content> {
    let (file, file_size) = (&mut opened.file, opened.size);
    let window = window.max(BINARY_PROBE_BYTES);
    buffer.clear();
    // Probe first, so a binary file (perhaps a sparse one of many GB) costs
    // one small read, never a read of its whole size. Every part probes:
    // only the first reports the file, and none reads a binary one. The
    // probe reads a small file whole (a byte past its size, to see its
    // end): a third of the kernel's files are longer than the probe and
    // took a second read.
    let first = usize::try_from(file_size)
        .map_or(FIRST_READ, |size| size.saturating_add(1))
        .clamp(BINARY_PROBE_BYTES, FIRST_READ.min(window));
    let mut eof = fill(file, buffer, first, file_size, Some(cache))?;
    if memchr::memchr(0, &buffer[..buffer.len().min(BINARY_PROBE_BYTES)]).is_some() {
        return Ok(Content::Binary);
    }
    let from = part.map_or(0, |p| p.from);
    let Some((start, line)) = line_at_or_after(file, from)? else {
        // No line starts in this part: the one before holds them all.
        return Ok(Content::Text(0));
    };
    if start > 0 {
        buffer.clear();
        file.seek(SeekFrom::Start(start))?;
        eof = false;
    }
    // The part ends with the line holding byte `stop`; if the first line
    // starting in it starts past that byte, that line is the next part's.
    let stop = part.map_or(u64::MAX, |p| p.to);
    if start > stop {
        return Ok(Content::Text(0));
    }
    if !eof {
        let at = start + buffer.len() as u64;
        eof = fill(
            file,
            buffer,
            window - buffer.len(),
            file_size.saturating_sub(at),
            None,
        )?;
    }
    let mut scanner = Scanner::at_line(line, start);
    // Only files longer than a window look for holes.
    let mut region_end = if eof {
        u64::MAX
    } else {
        data_end(file, start + buffer.len() as u64)?
    };
    loop {
        eof |= cut_at_part_end(buffer, scanner.offset(), stop);
        let used = scanner.scan(buffer, eof, emit);
        if eof {
            return Ok(Content::Text(scanner.offset() - start));
        }
        buffer.drain(..used);
        if file_size >= drop_pages_above {
            // A file this large is read once and would crowd out of the
            // page cache the runs and the index being written.
            let_read_pages_go(file, scanner.offset());
        }
        let mut at = scanner.offset() + buffer.len() as u64;
        if at >= region_end {
            match seek(file, at, libc::SEEK_DATA)? {
                // Only a hole up to the end: no more words.
                None => {
                    eof = true;
                    continue;
                }
                Some(next) if next > at => {
                    // A hole reads as NUL bytes: it ends any word in progress.
                    scanner.scan(buffer, true, emit);
                    buffer.clear();
                    scanner.skip_separators(next - at);
                    at = next;
                }
                Some(_) => {}
            }
            region_end = data_end(file, at)?;
        }
        let want =
            (window - buffer.len()).min(usize::try_from(region_end - at).unwrap_or(usize::MAX));
        eof = fill(
            file,
            buffer,
            want.max(1),
            file_size.saturating_sub(at),
            None,
        )?;
    }
}

/// Ends `buffer` (the file's bytes from `base` on) with the line holding
/// byte `stop`, the last of a part; true if it did (the part ends here).
fn cut_at_part_end(buffer: &mut Vec<u8>, base: u64, stop: u64) -> bool {
    if stop == u64::MAX || base + buffer.len() as u64 <= stop {
        return false;
    }
    let inside = usize::try_from(stop.saturating_sub(base)).unwrap_or(0);
    match buffer
        .get(inside..)
        .and_then(|rest| memchr::memchr(b'\n', rest))
    {
        Some(k) => {
            buffer.truncate(inside + k + 1);
            true
        }
        None => false,
    }
}

/// Lets the kernel drop `file`'s cached pages below byte `upto`.
fn let_read_pages_go(file: &File, upto: u64) {
    // SAFETY: fadvise on an open descriptor only advises the kernel.
    unsafe {
        libc::posix_fadvise(
            file.as_raw_fd(),
            0,
            upto as libc::off_t,
            libc::POSIX_FADV_DONTNEED,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::tokenize::{for_each_word, Position, Word};

    fn listed(path: &Path) -> FileEntry {
        FileEntry {
            path: path.into(),
            display: String::new(),
            size: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            inode: std::fs::metadata(path).unwrap().ino(),
        }
    }

    #[test]
    fn no_link_is_followed_on_the_way_to_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/f"), "inside").unwrap();
        std::fs::write(outside.path().join("f"), "secret").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        let root = Root::open(dir.path(), None).unwrap();
        for components in [false, true] {
            let open = |p: &str| match components {
                false => root.open_file(Path::new(p)),
                true => root.open_by_components(Path::new(p)),
            };
            assert!(open("sub/f").is_ok());
            let e = open("link/f").unwrap_err();
            assert!(
                matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)),
                "{e}"
            );
            assert!(open("../x").is_err());
        }
        // The inode check: a file replaced since it was listed is refused.
        let entry = listed(&dir.path().join("sub/f"));
        std::fs::write(dir.path().join("sub/g"), "other").unwrap();
        std::fs::rename(dir.path().join("sub/g"), dir.path().join("sub/f")).unwrap();
        let e = open_listed(&root, Path::new("sub/f"), &entry).unwrap_err();
        assert!(e.to_string().contains("replaced"), "{e}");
    }

    /// `path` opened, with its size as it is now.
    fn opened(path: &Path) -> Opened {
        let file = File::open(path).unwrap();
        let size = file.metadata().unwrap().len();
        Opened { file, size }
    }

    /// Words with their lines and columns, as the tests compare them.
    type Words = Vec<(Vec<u8>, u64, u64)>;

    fn words_of(opened: Opened, window: usize) -> (Content, Words) {
        let (content, words, _) = words_and_cache(opened, window);
        (content, words)
    }

    /// [`words_of`], and what the first read found in the page cache.
    fn words_and_cache(mut opened: Opened, window: usize) -> (Content, Words, Cache) {
        let mut out = Vec::new();
        let mut buffer = Vec::new();
        // The first read asks the page cache: the same words either way.
        let mut cache = Cache::Unasked;
        let content = scan_file(
            &mut opened,
            &mut buffer,
            window,
            None,
            u64::MAX,
            &mut cache,
            &mut |w: Word<'_>, p: Position| out.push((w.as_bytes().to_vec(), p.line, p.column)),
        )
        .unwrap();
        (content, out, cache)
    }

    /// A text of `words` words made from `stem`, with its words as the
    /// tokenizer finds them.
    fn text_and_words(stem: &str, words: u32) -> (Vec<u8>, Words) {
        let mut text = Vec::new();
        for i in 0..words {
            text.extend_from_slice(format!("{stem}{i} x_{} ", i % 97).as_bytes());
            if i % 13 == 0 {
                text.push(b'\n');
            }
        }
        let mut want = Vec::new();
        for_each_word(&text, |w, p| {
            want.push((w.as_bytes().to_vec(), p.line, p.column))
        });
        (text, want)
    }

    /// The words of `path` read as `parts` parts cut at `cuts`, in order.
    fn words_in_parts(path: &Path, cuts: &[u64]) -> Vec<(Vec<u8>, u64, u64)> {
        let mut out = Vec::new();
        let mut buffer = Vec::new();
        let mut bounds = vec![0];
        bounds.extend_from_slice(cuts);
        for (k, &from) in bounds.iter().enumerate() {
            let to = bounds.get(k + 1).copied().unwrap_or(u64::MAX);
            // Pages are let go as they are read: the words are the same.
            scan_file(
                &mut opened(path),
                &mut buffer,
                8192,
                Some(Part { from, to }),
                0,
                &mut Cache::Unasked,
                &mut |w: Word<'_>, p: Position| out.push((w.as_bytes().to_vec(), p.line, p.column)),
            )
            .unwrap();
        }
        out
    }

    #[test]
    fn parts_cut_anywhere_read_like_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut text = Vec::new();
        for i in 0..30_000u32 {
            text.extend_from_slice(format!("w{} ", i % 1000).as_bytes());
            if i % 17 == 0 {
                text.push(b'\n');
            }
            if i == 20_000 {
                // A long line crossing several cuts.
                text.extend(std::iter::repeat_n(b"long ".iter().copied(), 20_000).flatten());
            }
        }
        std::fs::write(&path, &text).unwrap();
        let mut want = Vec::new();
        for_each_word(&text, |w, p| {
            want.push((w.as_bytes().to_vec(), p.line, p.column))
        });
        let len = text.len() as u64;
        for cuts in [
            vec![len / 2],
            vec![1, 2, 3],
            vec![len / 3, len / 3 + 1, 2 * len / 3],
            vec![len - 1],
            vec![len / 5, 2 * len / 5, 3 * len / 5, 4 * len / 5],
        ] {
            assert_eq!(words_in_parts(&path, &cuts), want, "cuts {cuts:?}");
        }
    }

    #[test]
    fn a_file_partly_or_wholly_out_of_the_page_cache_reads_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let (text, want) = text_and_words("cold", 12_000);
        std::fs::write(&path, &text).unwrap();
        let len = text.len() as libc::off_t;
        // All of it, all but its first page, or its second half let go
        // (where the file system lets clean pages go): the first read then
        // comes back empty or short, or whole, and the rest is read as usual.
        for from in [0, 4096, len / 2] {
            for window in [8192, 1 << 20] {
                let file = File::open(&path).unwrap();
                file.sync_all().unwrap();
                // SAFETY: advice on an open descriptor.
                unsafe {
                    libc::posix_fadvise(file.as_raw_fd(), from, 0, libc::POSIX_FADV_DONTNEED)
                };
                let (content, got, cache) = words_and_cache(opened(&path), window);
                assert_eq!(content, Content::Text(text.len() as u64));
                assert_eq!(got, want, "pages from {from} let go, window {window}");
                assert_ne!(cache, Cache::Unasked, "the first read asked");
            }
        }
    }

    #[test]
    fn windows_and_holes_read_like_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let (text, want) = text_and_words("wörd", 20_000);
        std::fs::write(&path, &text).unwrap();
        for window in [1, 8192, 8193, 10_000, 1 << 20] {
            let (content, got) = words_of(opened(&path), window);
            assert_eq!(content, Content::Text(text.len() as u64));
            assert_eq!(got, want, "window {window}");
        }
        // A file that grew or shrank since it was opened (its size then
        // taken as smaller or larger than it is) reads to its true end: a
        // short read ends it only at the size it had.
        let len = text.len() as u64;
        for size in [0, 1, 8191, 8192, 8193, len - 1, len + 1, 2 * len] {
            for window in [8192, 10_000, 1 << 20] {
                let stale = Opened {
                    file: File::open(&path).unwrap(),
                    size,
                };
                let (content, got) = words_of(stale, window);
                assert_eq!(content, Content::Text(len), "size {size} window {window}");
                assert_eq!(got, want, "size {size} window {window}");
            }
        }
        // A sparse file: text, a hole of 64 MiB, text.
        let sparse = dir.path().join("sparse");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .read(true)
            .open(&sparse)
            .unwrap();
        use std::io::Write;
        file.write_all(&text).unwrap();
        let hole = 64u64 << 20;
        file.seek(SeekFrom::Start(text.len() as u64 + hole))
            .unwrap();
        file.write_all(b"tail\nend").unwrap();
        let mut all = text.clone();
        all.resize(text.len() + hole as usize, 0);
        all.extend_from_slice(b"tail\nend");
        let mut want = Vec::new();
        for_each_word(&all, |w, p| {
            want.push((w.as_bytes().to_vec(), p.line, p.column))
        });
        let (content, got) = words_of(opened(&sparse), 10_000);
        assert_eq!(content, Content::Text(all.len() as u64));
        assert_eq!(got, want);
    }
}
