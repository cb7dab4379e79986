//! Reaping children: every child the runtime forks is waited for exactly once.
//!
//! A child that has closed its channel is normally exiting, but the runtime
//! cannot block forever on the word of a process it does not control. So a
//! reap first polls `waitpid(WNOHANG)` for a grace period (with short, growing
//! pauses, after a brief spin), then sends `SIGKILL` and waits for good. Reaping several children
//! shares one grace period, so dropping an `Exchange` of eight stuck children
//! costs one second, not eight.

use std::time::{Duration, Instant};

use nix::errno::Errno;
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
    loop {
        pending.retain(|&pid| loop {
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(status) => match ended(status) {
                    Some(exit) => {
                        done.push((pid, Ok(exit)));
                        break false;
                    }
                    None => break true,
                },
                Err(Errno::EINTR) => continue,
                Err(errno) => {
                    done.push((pid, Err(wait_error(pid, errno))));
                    break false;
                }
            }
        });
        if pending.is_empty() || Instant::now() >= deadline {
            break;
        }
        if started.elapsed() < SPIN {
            std::thread::yield_now();
        } else {
            std::thread::sleep(pause);
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
    }
    for &pid in &pending {
        // ESRCH cannot happen for an unreaped child; any error shows in waitpid.
        let _ = kill(pid, Signal::SIGKILL);
    }
    for pid in pending {
        let exit = loop {
            match waitpid(pid, None) {
                Ok(status) => {
                    if let Some(exit) = ended(status) {
                        break Ok(exit);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(errno) => break Err(wait_error(pid, errno)),
            }
        };
        done.push((pid, exit));
    }
    done
}
