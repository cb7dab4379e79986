//! The raw layer under [`Channel`](super::Channel): frames of bytes on a stream socket.
//!
//! A stream socket delivers bytes, not messages, so every message travels as a
//! frame:
//!
//! ```text
//! +----------------------+------+------------------+
//! | len: u64 little end. | kind | payload: len B   |
//! +----------------------+------+------------------+
//!   8 bytes                1 byte
//! ```
//!
//! `kind` is [`Kind::Value`] (a bincode-encoded value) or [`Kind::Panic`] (the
//! UTF-8 panic message of a dying child). `len` counts the payload only.
//!
//! The reader never trusts `len`: it is checked against a limit before anything
//! is read, and the buffer grows only as bytes actually arrive, so a corrupt or
//! hostile header cannot make the parent allocate gigabytes. The writer sends
//! header and payload from one buffer, so a frame costs as few system calls as
//! the socket allows, and uses `MSG_NOSIGNAL` so a vanished peer is an `EPIPE`
//! error rather than a process-killing `SIGPIPE`.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;
use nix::sys::socket::{send, MsgFlags};

/// Bytes in a frame header: the length prefix and the kind byte.
pub(crate) const HEADER_LEN: usize = 9;

/// The payload a reader reserves up front, whatever the header announces; past
/// this the buffer grows with the bytes that arrive.
const INITIAL_RESERVE: u64 = 1 << 20;

/// What a frame's payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A bincode-encoded value.
    Value = 0,
    /// The panic message of a child that is about to exit.
    Panic = 1,
}

/// Why reading a frame failed, before the channel adds whose frame it was.
#[derive(Debug)]
pub(crate) enum FrameError {
    /// End of stream before the first byte of a frame.
    Closed,
    /// End of stream inside a frame.
    Truncated { expected: u64, got: u64 },
    /// The header announced more than the limit.
    TooLarge { len: u64, limit: u64 },
    /// The kind byte is neither value nor panic.
    UnknownKind(u8),
    /// The system call failed.
    Io(io::Error),
}

/// The header for a payload of `len` bytes.
pub(crate) fn header(len: u64, kind: Kind) -> [u8; HEADER_LEN] {
    let mut header = [0; HEADER_LEN];
    header[..8].copy_from_slice(&len.to_le_bytes());
    header[8] = kind as u8;
    header
}

/// Writes all of `bytes`, retrying on `EINTR` and after partial writes.
pub(crate) fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match send(fd.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(errno.into()),
        }
    }
    Ok(())
}

/// A byte stream frames are read from. The header is read through
/// `read_header`, which a socket implements with `recvmsg` to receive the
/// descriptors a frame may carry (they are sent with its first byte).
pub(crate) trait FrameRead: Read {
    /// Reads header bytes.
    fn read_header(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read(buf)
    }
}

impl FrameRead for &[u8] {}

/// Reads one frame, leaving its payload in `payload` (cleared first).
pub(crate) fn read_frame(
    mut stream: impl FrameRead,
    limit: u64,
    payload: &mut Vec<u8>,
) -> Result<Kind, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    let mut filled = 0;
    while filled < HEADER_LEN {
        match stream.read_header(&mut header[filled..]) {
            Ok(0) if filled == 0 => return Err(FrameError::Closed),
            Ok(0) => {
                return Err(FrameError::Truncated {
                    expected: HEADER_LEN as u64,
                    got: filled as u64,
                })
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&header[..8]);
    let len = u64::from_le_bytes(len_bytes);
    if len > limit {
        return Err(FrameError::TooLarge { len, limit });
    }
    // An unknown kind is reported only after its payload is read, so the
    // stream stays in step and the next frame can still be read.
    let kind = match header[8] {
        0 => Ok(Kind::Value),
        1 => Ok(Kind::Panic),
        other => Err(FrameError::UnknownKind(other)),
    };

    payload.clear();
    // Only a bounded reservation: `len` is the peer's claim, not bytes we hold.
    // `usize::try_from` cannot fail for values up to INITIAL_RESERVE.
    payload.reserve(usize::try_from(len.min(INITIAL_RESERVE)).unwrap_or(0));
    // `read_to_end` grows the buffer as data arrives, reads into its spare
    // capacity without zeroing it, and retries on EINTR.
    let got = stream
        .take(len)
        .read_to_end(payload)
        .map_err(FrameError::Io)? as u64;
    if got < len {
        return Err(FrameError::Truncated {
            expected: HEADER_LEN as u64 + len,
            got: HEADER_LEN as u64 + got,
        });
    }
    kind
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: u64, kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut bytes = len.to_le_bytes().to_vec();
        bytes.push(kind);
        bytes.extend_from_slice(payload);
        bytes
    }

    #[test]
    fn reads_a_whole_frame() {
        let bytes = frame(3, 0, b"abc");
        let mut payload = Vec::new();
        let kind = read_frame(&bytes[..], 10, &mut payload).unwrap();
        assert_eq!(kind, Kind::Value);
        assert_eq!(payload, b"abc");
    }

    #[test]
    fn empty_stream_is_closed_and_partial_header_is_truncated() {
        let mut payload = Vec::new();
        assert!(matches!(
            read_frame(&[][..], 10, &mut payload),
            Err(FrameError::Closed)
        ));
        assert!(matches!(
            read_frame(&[1, 2, 3][..], 10, &mut payload),
            Err(FrameError::Truncated {
                expected: 9,
                got: 3
            })
        ));
    }

    #[test]
    fn short_payload_is_truncated() {
        let bytes = frame(100, 0, b"abc");
        let mut payload = Vec::new();
        assert!(matches!(
            read_frame(&bytes[..], 1000, &mut payload),
            Err(FrameError::Truncated {
                expected: 109,
                got: 12
            })
        ));
    }

    #[test]
    fn oversized_header_is_refused_before_reading() {
        let bytes = frame(u64::MAX, 0, b"");
        let mut payload = Vec::new();
        assert!(matches!(
            read_frame(&bytes[..], 1 << 30, &mut payload),
            Err(FrameError::TooLarge { len: u64::MAX, .. })
        ));
        assert_eq!(payload.capacity(), 0);
    }

    #[test]
    fn unknown_kind_is_an_error() {
        let bytes = frame(0, 7, b"");
        let mut payload = Vec::new();
        assert!(matches!(
            read_frame(&bytes[..], 10, &mut payload),
            Err(FrameError::UnknownKind(7))
        ));
    }
}
