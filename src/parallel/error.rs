//! What can go wrong between a parent and its children, said so a user can act on it.
//!
//! Every failure of the runtime is a value of [`Error`]: a child that panicked,
//! died, sent a malformed frame or vanished mid-message is reported to the
//! parent, never turned into a panic or a hang on the parent's side. Each variant
//! that concerns one child names its pid, because with thousands of children the
//! pid is the only handle a user has to match an error with the work it was given.

use std::fmt;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// How a child process ended, as reported by `waitpid(2)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The child called `exit` or `_exit` with this code.
    Code(i32),
    /// The child was ended by this signal.
    Signal(Signal),
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exit code {code}"),
            Exit::Signal(signal) => write!(f, "signal {}", signal.as_str()),
        }
    }
}

/// An error of the process-parallel runtime.
#[derive(Debug)]
pub enum Error {
    /// A system call on a channel failed.
    Io {
        /// The child at the other end, if known (`None` on the child's side).
        pid: Option<Pid>,
        /// What the operating system reported.
        source: std::io::Error,
    },
    /// The peer closed the channel cleanly, between two messages.
    Closed {
        /// The child at the other end, if known.
        pid: Option<Pid>,
    },
    /// The peer closed the channel in the middle of a frame.
    Truncated {
        /// The child at the other end, if known.
        pid: Option<Pid>,
        /// Bytes the frame should have had, header included (just the header's
        /// size when the header itself was cut short).
        expected: u64,
        /// Bytes that arrived before the end of the stream.
        got: u64,
    },
    /// A frame announced a payload larger than the channel's frame limit; it was
    /// not read, and the channel can no longer be used.
    FrameTooLarge {
        /// The child at the other end, if known.
        pid: Option<Pid>,
        /// Payload length the frame announced.
        len: u64,
        /// The channel's limit (see `Channel::set_frame_limit`).
        limit: u64,
    },
    /// A whole frame arrived but its payload is not a value of the expected type.
    Decode {
        /// The child at the other end, if known.
        pid: Option<Pid>,
        /// What bincode reported.
        message: String,
    },
    /// A value could not be serialized for sending.
    Encode {
        /// What bincode reported.
        message: String,
    },
    /// The child panicked; its panic message was sent back over the channel.
    Panicked {
        /// The child that panicked.
        pid: Pid,
        /// Its panic message.
        message: String,
    },
    /// The child exited or was killed without finishing cleanly.
    Died {
        /// The child that died.
        pid: Pid,
        /// How it ended.
        exit: Exit,
    },
    /// A `pmap` or `Queue` child ended without sending its result.
    NoReply {
        /// The child that gave no result.
        pid: Pid,
        /// How it ended.
        exit: Exit,
    },
    /// Forking was refused because the process runs more than one thread.
    MultiThreaded {
        /// Threads counted in `/proc/self/task`.
        threads: usize,
    },
    /// `fork(2)` or `socketpair(2)` failed.
    Fork(nix::Error),
}

/// Formats "child 1234" or, on the child's side, "the parent".
struct Peer(Option<Pid>);

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(pid) => write!(f, "child {pid}"),
            None => f.write_str("the parent"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { pid, source } => {
                write!(f, "I/O error on the channel to {}: {source}", Peer(*pid))
            }
            Error::Closed { pid } => write!(
                f,
                "{} closed the channel; it has no more messages to send",
                Peer(*pid)
            ),
            Error::Truncated { pid, expected, got } => write!(
                f,
                "{} closed the channel in the middle of a message ({got} of {expected} bytes \
                 arrived); it probably died while sending",
                Peer(*pid)
            ),
            Error::FrameTooLarge { pid, len, limit } => write!(
                f,
                "{} announced a {len}-byte message, over the channel's limit of {limit} bytes",
                Peer(*pid)
            ),
            Error::Decode { pid, message } => write!(
                f,
                "a message from {} could not be decoded ({message}); do both sides agree on \
                 the message type?",
                Peer(*pid)
            ),
            Error::Encode { message } => write!(
                f,
                "a message could not be encoded for sending ({message}); check its Serialize \
                 implementation"
            ),
            Error::Panicked { pid, message } => write!(f, "child {pid} panicked: {message}"),
            Error::Died { pid, exit } => write!(
                f,
                "child {pid} ended with {exit} before finishing its work; see its stderr"
            ),
            Error::NoReply { pid, exit } => write!(
                f,
                "child {pid} ended with {exit} without sending its result; see its stderr"
            ),
            Error::MultiThreaded { threads } => write!(
                f,
                "refusing to fork: this process runs {threads} threads, and a forked child \
                 would inherit locks held by the others; fork before starting threads"
            ),
            Error::Fork(errno) => write!(f, "could not create a child process: {errno}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Fork(errno) => Some(errno),
            _ => None,
        }
    }
}

impl Error {
    /// The child this error concerns, when it concerns one and the pid is known.
    pub fn pid(&self) -> Option<Pid> {
        match self {
            Error::Io { pid, .. }
            | Error::Closed { pid }
            | Error::Truncated { pid, .. }
            | Error::FrameTooLarge { pid, .. }
            | Error::Decode { pid, .. } => *pid,
            Error::Panicked { pid, .. } | Error::Died { pid, .. } | Error::NoReply { pid, .. } => {
                Some(*pid)
            }
            Error::Encode { .. } | Error::MultiThreaded { .. } | Error::Fork(_) => None,
        }
    }

    /// A copy of this error, for reporting one failure in several places (one
    /// fork failure fills every remaining slot of a `pmap`). `std::io::Error` is
    /// not `Clone`, so an I/O error is rebuilt from its OS code or its text.
    pub(crate) fn replicate(&self) -> Error {
        match self {
            Error::Io { pid, source } => Error::Io {
                pid: *pid,
                source: match source.raw_os_error() {
                    Some(code) => std::io::Error::from_raw_os_error(code),
                    None => std::io::Error::new(source.kind(), source.to_string()),
                },
            },
            Error::Closed { pid } => Error::Closed { pid: *pid },
            Error::Truncated { pid, expected, got } => Error::Truncated {
                pid: *pid,
                expected: *expected,
                got: *got,
            },
            Error::FrameTooLarge { pid, len, limit } => Error::FrameTooLarge {
                pid: *pid,
                len: *len,
                limit: *limit,
            },
            Error::Decode { pid, message } => Error::Decode {
                pid: *pid,
                message: message.clone(),
            },
            Error::Encode { message } => Error::Encode {
                message: message.clone(),
            },
            Error::Panicked { pid, message } => Error::Panicked {
                pid: *pid,
                message: message.clone(),
            },
            Error::Died { pid, exit } => Error::Died {
                pid: *pid,
                exit: *exit,
            },
            Error::NoReply { pid, exit } => Error::NoReply {
                pid: *pid,
                exit: *exit,
            },
            Error::MultiThreaded { threads } => Error::MultiThreaded { threads: *threads },
            Error::Fork(errno) => Error::Fork(*errno),
        }
    }
}
