//! `indexer DIRECTORY`: index every word of a tree with forked workers, then
//! search it by fragment. See README.md for the contract.

mod cli;

fn main() {
    tune_allocator();
    std::process::exit(cli::run());
}

/// Keeps freed memory in the process instead of handing it back to the
/// kernel at once. Workers and the parent allocate and free buffers of tens
/// of megabytes per batch; with glibc's defaults each one is a fresh
/// mmap/munmap, and every change to the address space waits on anything
/// reading it (such as a memory monitor walking `/proc/PID/smaps`).
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only adjusts allocator parameters; it is called
        // before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
            libc::mallopt(libc::M_TOP_PAD, 64 << 20);
        }
    }
}
