//! Creating children: `fork(2)` made safe enough to build on.
//!
//! Forking copies the whole process, which is what makes the model simple (a
//! child starts with its parent's data, no serialization needed) and also what
//! makes it dangerous. This module takes care of the dangers once:
//!
//! * **Threads.** A child of a multi-threaded process inherits locks held by
//!   threads that do not exist in it (the allocator's, stdout's), and may
//!   deadlock on the first `println!`. So every fork first counts
//!   `/proc/self/task` ([`ensure_single_threaded`]) and refuses with
//!   [`Error::MultiThreaded`] instead.
//! * **Buffered output.** The parent's stdout buffer is flushed before the fork,
//!   and the child leaves with `_exit` after flushing its own, so no line is
//!   printed twice and no destructor of the parent's data runs in the child.
//! * **File descriptors.** Right after the fork the child closes every
//!   descriptor except stdin, stdout, stderr and its own channel (with
//!   `close_range(2)`, or one by one from `/proc/self/fd` on old kernels). So a
//!   child never holds a copy of a sibling's channel, and a sibling's channel
//!   reaches end of stream as soon as that sibling exits. Sockets are created
//!   with `SOCK_CLOEXEC` as well, so programs a child executes inherit none.

use std::io::Write;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::unistd::{fork, ForkResult};

use super::{Channel, Error, Result};

/// The exit code of a child whose function panicked, as for a Rust program.
const PANIC_EXIT_CODE: i32 = 101;

/// What [`create`] returns: which side of the fork this process is on, with its
/// end of the channel.
#[derive(Debug)]
pub enum Fork<Tx, Rx> {
    /// This is the parent; the channel leads to the new child.
    Parent(Channel<Tx, Rx>),
    /// This is the child; the channel leads to the parent. Leave with [`exit`].
    Child(Channel<Rx, Tx>),
}

/// The number of CPUs this process may run on (at least 1), the natural limit
/// on live children for CPU-bound work.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Returns an error unless this process runs exactly one thread.
///
/// A thread that was just joined can linger in `/proc/self/task` for a moment
/// while the kernel finishes tearing it down, so a count above one is checked
/// again a few times over a few milliseconds before it is believed.
pub fn ensure_single_threaded() -> Result<()> {
    let count = || -> Result<usize> {
        std::fs::read_dir("/proc/self/task")
            .map(Iterator::count)
            .map_err(|source| Error::Io { pid: None, source })
    };
    let mut threads = count()?;
    let mut pause = Duration::from_micros(100);
    for _ in 0..6 {
        if threads <= 1 {
            return Ok(());
        }
        std::thread::sleep(pause);
        pause *= 2;
        threads = count()?;
    }
    if threads <= 1 {
        Ok(())
    } else {
        Err(Error::MultiThreaded { threads })
    }
}

/// Forks a child joined to this process by a new channel.
///
/// The child must leave through [`exit`]: returning from the code that called
/// `create` would run the rest of the parent's program in the child.
///
/// # The caller's contract: descriptors
///
/// In the child, every descriptor but stdin, stdout, stderr and its channel
/// is closed right after the fork (so no child holds a sibling's channel or
/// the parent's files open). Values the child inherited that own a
/// descriptor (a `File`, a socket, a memory map's file) are therefore
/// stale in it: using them reads or writes a closed descriptor (an error,
/// or another file that has since reused the number). A child must open
/// what it needs itself; dropping such a value in the child is harmless,
/// since the child leaves with `_exit` and runs no destructor.
pub fn create<Tx, Rx>() -> Result<Fork<Tx, Rx>> {
    ensure_single_threaded()?;
    let (parent_end, child_end) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(Error::Fork)?;
    // Anything still in the buffer would otherwise be printed by both processes.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: the process runs a single thread (checked just above), so no lock
    // can be held by a thread that would be missing in the child. The child
    // closes inherited descriptors, then runs ordinary Rust code and leaves
    // through `exit` (`_exit`), never returning into code that expects to be
    // the parent's only copy.
    match unsafe { fork() } {
        Err(errno) => Err(Error::Fork(errno)),
        Ok(ForkResult::Parent { child }) => {
            drop(child_end);
            Ok(Fork::Parent(Channel::from_fd(parent_end, Some(child))))
        }
        Ok(ForkResult::Child) => {
            // Closed with the other inherited descriptors just below.
            let _ = parent_end.into_raw_fd();
            close_inherited_fds(child_end.as_raw_fd());
            Ok(Fork::Child(Channel::from_fd(child_end, None)))
        }
    }
}

/// Forks a child that runs `f(channel, args)` and exits; returns the parent's
/// end of the channel.
///
/// As with [`create`], every descriptor but stdin, stdout, stderr and the
/// channel is closed in the child: `f` and `args` must not use a value that
/// owns one (open what the child needs inside `f`). Plain data (memory,
/// including a read-only memory map, whose pages stay mapped) is fine.
///
/// The child exits with code 0 when `f` returns. If `f` panics, the child sends
/// the panic message over the channel (the parent's next `receive` returns
/// [`Error::Panicked`]) and exits with code 101. Either way it leaves with
/// `_exit`: destructors of the data it inherited never run in it.
pub fn start<Tx, Rx, A, F>(f: F, args: A) -> Result<Channel<Tx, Rx>>
where
    F: FnOnce(&mut Channel<Rx, Tx>, A),
{
    match create::<Tx, Rx>()? {
        Fork::Parent(channel) => Ok(channel),
        Fork::Child(mut channel) => {
            let outcome = catch_unwind(AssertUnwindSafe(|| f(&mut channel, args)));
            let code = match outcome {
                Ok(()) => 0,
                Err(payload) => {
                    let message = panic_message(payload.as_ref());
                    // Dropping the payload could panic again; the process is
                    // about to end, so leave it be.
                    std::mem::forget(payload);
                    // If the parent has gone there is no one to tell.
                    let _ = channel.send_panic(&message);
                    PANIC_EXIT_CODE
                }
            };
            exit(channel, code)
        }
    }
}

/// Ends a child: flushes its stdout and stderr, closes its channel (the parent
/// sees end of stream after the last message) and calls `_exit(code)`.
pub fn exit<Tx, Rx>(channel: Channel<Tx, Rx>, code: i32) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    drop(channel);
    // A build instrumented for profile-guided optimization
    // (benches/pgo_build.sh) writes its counters from an `atexit` handler,
    // which `_exit` skips: a worker's would be lost, and they are most of
    // what the profile is for.
    #[cfg(pgo_train)]
    {
        extern "C" {
            fn __llvm_profile_write_file() -> i32;
        }
        // SAFETY: the profiling runtime linked into instrumented builds
        // writes this process's counters to its profile file.
        unsafe {
            __llvm_profile_write_file();
        }
    }
    // SAFETY: `_exit` ends the process without running atexit handlers or
    // flushing stdio buffers the parent also holds, which is the point: this
    // process is a fork, and the parent's cleanup belongs to the parent.
    unsafe { libc::_exit(code) }
}

/// The text of a panic payload (`panic!` gives a `&str` or a `String`).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panicked with a value that is not a string".to_owned()
    }
}

/// In a newly forked child, closes every descriptor above stderr but `keep`.
fn close_inherited_fds(keep: RawFd) {
    let closed = match u32::try_from(keep) {
        Ok(keep) if keep >= 3 => {
            (keep == 3 || close_range(3, keep - 1)) && close_range(keep + 1, u32::MAX)
        }
        _ => close_range(3, u32::MAX),
    };
    if !closed {
        close_listed_fds(keep);
    }
}

/// `close_range(2)`: Linux 5.9 and later. False if the call failed.
fn close_range(first: u32, last: u32) -> bool {
    // SAFETY: close_range only closes descriptors; none in the range is owned by
    // a live Rust object in the child (inherited objects are never used or
    // dropped there: `Channel` checks its owner pid, and the child leaves
    // through `_exit`).
    let result = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
    result == 0
}

/// The fallback for old kernels: close what `/proc/self/fd` lists.
fn close_listed_fds(keep: RawFd) {
    let listed: Vec<RawFd> = match std::fs::read_dir("/proc/self/fd") {
        Ok(entries) => entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        // Without /proc, try every descriptor number up to a generous bound.
        Err(_) => (3..65536).collect(),
    };
    // The directory's own descriptor is in the list but already closed; closing
    // it again fails harmlessly with EBADF.
    for fd in listed {
        if fd >= 3 && fd != keep {
            let _ = nix::unistd::close(fd);
        }
    }
}
