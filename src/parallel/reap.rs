//! Reaping children: every child the runtime forks is waited for exactly once.
//!
//! A child that has closed its channel is normally exiting, but the runtime
//! cannot block forever on the word of a process it does not control. So a
//! reap first polls `waitpid(WNOHANG)` for a grace period, then sends
//! `SIGKILL` and waits for good. Reaping several children shares one grace
//! period, so dropping an `Exchange` of eight stuck children costs one
//! second, not eight.
//!
//! Between two polls it waits on each child's *exit notice*, a pidfd
//! (`pidfd_open(2)`, Linux 5.3) that poll(2) reports readable the moment the
//! child exits. A child that has just closed its channel is still giving
//! back its memory (milliseconds for a worker of hundreds of megabytes), and
//! pauses that grow by doubling overslept that by up to as long again. Where
//! the kernel has no pidfds, it pauses as before (short, growing pauses,
//! after a brief spin).

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::{Error, Exit, Result};

/// How long a child may take to exit after its channel is closed.
pub(crate) const GRACE: Duration = Duration::from_secs(1);

/// How long to poll by yielding the CPU before sleeping: a child whose channel
/// just reached end of stream is usually a zombie within microseconds, and the
/// shortest sleep costs some 60 µs of timer slack.
const SPIN: Duration = Duration::from_micros(50);

/// The first and the longest pause between two `WNOHANG` polls.
const FIRST_PAUSE: Duration = Duration::from_micros(20);
const LONGEST_PAUSE: Duration = Duration::from_millis(10);

/// How the child ended, if `status` says it did.
fn ended(status: WaitStatus) -> Option<Exit> {
    match status {
        WaitStatus::Exited(_, code) => Some(Exit::Code(code)),
        WaitStatus::Signaled(_, signal, _) => Some(Exit::Signal(signal)),
        _ => None,
    }
}

fn wait_error(pid: Pid, errno: Errno) -> Error {
    Error::Io {
        pid: Some(pid),
        source: errno.into(),
    }
}

/// A descriptor that poll(2) reports readable once `pid` has exited, or
/// `None` where the kernel has none (before Linux 5.3) or no descriptor is
/// left.
pub(crate) fn exit_notice(pid: Pid) -> Option<OwnedFd> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: pidfd_open takes a pid and flags and returns a new
        // descriptor (or -1); nothing else is read or written.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
        let fd = i32::try_from(fd).ok().filter(|&fd| fd >= 0)?;
        // SAFETY: `fd` was just opened for this process and nothing else owns it.
        Some(unsafe { OwnedFd::from_raw_fd(fd) })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        None
    }
}

/// poll(2)'s timeout for waiting until `deadline` (`None`: for ever),
/// rounded up so a wait under a millisecond does not spin, and capped at
/// poll's largest (about 24 days).
pub(crate) fn poll_timeout(deadline: Option<Instant>) -> PollTimeout {
    match deadline {
        None => PollTimeout::NONE,
        Some(deadline) => {
            let left = deadline.saturating_duration_since(Instant::now());
            let millis = left.as_nanos().div_ceil(1_000_000);
            PollTimeout::try_from(millis.min(i32::MAX as u128)).unwrap_or(PollTimeout::MAX)
        }
    }
}

/// Waits until one of `notices` is readable (its child exited) or
/// `deadline` passes.
fn wait_for_exit(notices: &[&OwnedFd], deadline: Instant) {
    let mut fds: Vec<PollFd<'_>> = notices
        .iter()
        .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
        .collect();
    // EINTR waits again; any other failure (not expected of pidfds) leaves
    // it to the caller's next waitpid.
    while poll(&mut fds, poll_timeout(Some(deadline))) == Err(Errno::EINTR) {}
}

/// One `waitpid(WNOHANG)` look at `pid`: how it ended, once it has
/// (`None` while it runs).
fn exited(pid: Pid) -> Option<Result<Exit>> {
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(status) => return ended(status).map(Ok),
            Err(Errno::EINTR) => continue,
            Err(errno) => return Some(Err(wait_error(pid, errno))),
        }
    }
}

/// Reaps `pid` if it has already exited, after at most a brief spin.
pub(crate) fn try_reap(pid: Pid) -> Option<Result<Exit>> {
    let started = Instant::now();
    loop {
        if let Some(exit) = exited(pid) {
            return Some(exit);
        }
        if started.elapsed() >= SPIN {
            return None;
        }
        std::thread::yield_now();
    }
}

/// Kills `pid` and waits for it: a child past its grace period.
pub(crate) fn kill_and_reap(pid: Pid) -> Result<Exit> {
    // ESRCH cannot happen for an unreaped child; any error shows in waitpid.
    let _ = kill(pid, Signal::SIGKILL);
    loop {
        match waitpid(pid, None) {
            Ok(status) => {
                if let Some(exit) = ended(status) {
                    return Ok(exit);
                }
            }
            Err(Errno::EINTR) => {}
            Err(errno) => return Err(wait_error(pid, errno)),
        }
    }
}

/// Waits for `pid`: up to `grace` for it to exit by itself, then kills it.
pub(crate) fn reap(pid: Pid, grace: Duration) -> Result<Exit> {
    reap_all(&[pid], grace)
        .pop()
        .map_or(Err(wait_error(pid, Errno::ECHILD)), |(_, exit)| exit)
}

/// Waits for every pid in `pids` within one shared grace period, then kills and
/// waits for those still running. Returns each pid with how it ended.
pub(crate) fn reap_all(pids: &[Pid], grace: Duration) -> Vec<(Pid, Result<Exit>)> {
    let started = Instant::now();
    let deadline = started + grace;
    let mut pending: Vec<Pid> = pids.to_vec();
    let mut done = Vec::with_capacity(pids.len());
    let mut pause = FIRST_PAUSE;
    // Opened once the spin is over: most children are gone by then.
    let mut notices: Option<Vec<(Pid, OwnedFd)>> = None;
    loop {
        pending.retain(|&pid| match exited(pid) {
            Some(exit) => {
                done.push((pid, exit));
                false
            }
            None => true,
        });
        if pending.is_empty() || Instant::now() >= deadline {
            break;
        }
        if started.elapsed() < SPIN {
            std::thread::yield_now();
            continue;
        }
        let notices = notices.get_or_insert_with(|| {
            pending
                .iter()
                .map_while(|&pid| exit_notice(pid).map(|fd| (pid, fd)))
                .collect()
        });
        notices.retain(|(pid, _)| pending.contains(pid));
        if notices.len() == pending.len() {
            let fds: Vec<&OwnedFd> = notices.iter().map(|(_, fd)| fd).collect();
            wait_for_exit(&fds, deadline);
        } else {
            // Without a notice for every child: pause and poll again.
            std::thread::sleep(pause);
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
    }
    for pid in pending {
        done.push((pid, kill_and_reap(pid)));
    }
    done
}
