//! `indexer DIRECTORY`: index every word of a tree with forked workers, then
//! search it by fragment. See README.md for the contract.

mod cli;

fn main() {
    tune_allocator();
    raise_open_file_limit();
    std::process::exit(cli::run());
}

/// Lifts the soft limit on open files to the hard one: a build past its
/// memory budget merges runs from one temporary file each, and workers
/// each hold a channel. (A soft limit of 1024 is a historical default for
/// `select`, which nothing here uses.)
fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

/// Keeps freed memory in the process instead of handing it back to the
/// kernel at once. Workers and the parent allocate and free buffers of tens
/// of megabytes per batch; with glibc's defaults each one is a fresh
/// mmap/munmap, and every change to the address space waits on anything
/// reading it (such as a memory monitor walking `/proc/PID/smaps`).
///
/// Threads share one allocator arena per core: glibc's default gives each
/// of the walk's eight threads its own, whose memory, kept, is then in
/// the parent and in every worker forked from it (a kernel build's peak
/// PSS 640-650 MiB, against 635-637 with an arena per core).
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let arenas = indexer::parallel::available_cores();
        // SAFETY: mallopt only adjusts allocator parameters; it is called
        // before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
            libc::mallopt(libc::M_TOP_PAD, 64 << 20);
            libc::mallopt(
                libc::M_ARENA_MAX,
                libc::c_int::try_from(arenas).unwrap_or(libc::c_int::MAX),
            );
        }
    }
}
