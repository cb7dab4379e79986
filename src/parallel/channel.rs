//! Typed, framed messages over one end of a Unix socketpair.
//!
//! A [`Channel<Tx, Rx>`] sends values of `Tx` and receives values of `Rx`; the
//! other end is a `Channel<Rx, Tx>`. Values are encoded with bincode 2
//! (`config::standard()`) and carried in frames (see the wire format below), so
//! a message of three bytes and one of three hundred MiB take the same path:
//! one buffer, written with as few `send(2)` calls as the socket allows, read
//! back with large reads.
//!
//! # Wire format
//!
//! ```text
//! len: u64 little endian | kind: u8 (0 value, 1 panic report) | payload: len bytes
//! ```
//!
//! `len` counts the payload only. A value payload is the bincode 2 encoding of
//! the value with `bincode::config::standard()`; a panic report payload is the
//! UTF-8 panic message of a child that is about to exit.
//!
//! # Safety against the peer
//!
//! The peer is another process that may die, be killed or send garbage at any
//! moment. Every such case is an [`Error`] from [`Channel::receive`]: a clean
//! end of stream is [`Error::Closed`], an end inside a frame
//! [`Error::Truncated`], an announced length over the limit
//! [`Error::FrameTooLarge`] (refused before any allocation), a bad payload
//! [`Error::Decode`]. Large values of `Vec<u8>` should be marked
//! `#[serde(with = "serde_bytes")]` so bincode copies them as one block.
//!
//! # Lifetime of the child
//!
//! The parent's end of a channel owns its child: dropping it closes the socket
//! (the child sees [`Error::Closed`]) and reaps the child, killing it if it has
//! not exited after a second. [`Channel::close`] does the same and reports how
//! the child ended.

use std::fmt;
use std::marker::PhantomData;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use bincode::enc::write::{SizeWriter, Writer};
use bincode::error::EncodeError;
use nix::sys::socket::MsgFlags;
use nix::unistd::{getpid, getppid, Pid};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::frame::{self, FrameError, Kind, HEADER_LEN};
use super::reap::{self, GRACE};
use super::{Error, Exit, Result};

/// The default limit on the payload of one incoming frame: 2 GiB.
pub const DEFAULT_FRAME_LIMIT: u64 = 2 << 30;

/// Buffers larger than this are released after use rather than kept for the
/// next message, so one huge message does not pin its memory for good.
const RETAINED_BUFFER: usize = 64 << 20;

/// One end of a parent-child connection, sending `Tx` and receiving `Rx`.
pub struct Channel<Tx, Rx> {
    /// `None` only while the channel is being released.
    stream: Option<UnixStream>,
    /// The child, on the parent's side; `None` on the child's side.
    pid: Option<Pid>,
    /// The process that created this end. A forked child inherits copies of its
    /// parent's channels; they must not close or reap anything in the child.
    owner: Pid,
    limit: u64,
    /// Set once a frame over the limit was refused: its payload is still in the
    /// socket, so the stream can no longer be split into frames.
    desynchronized: Option<(u64, u64)>,
    send_buffer: Vec<u8>,
    receive_buffer: Vec<u8>,
    /// Descriptors that came with received frames, not taken yet.
    received_fds: std::collections::VecDeque<OwnedFd>,
    _types: PhantomData<fn(Tx) -> Rx>,
}

/// The socket as frames are read from it: the header through `recvmsg`,
/// keeping the descriptors sent with it.
struct SocketFrames<'a> {
    stream: &'a UnixStream,
    fds: &'a mut std::collections::VecDeque<OwnedFd>,
}

impl std::io::Read for SocketFrames<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        std::io::Read::read(&mut self.stream, buf)
    }
}

/// Most descriptors one frame may carry.
const MAX_FDS: usize = 4;

impl frame::FrameRead for SocketFrames<'_> {
    fn read_header(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned};
        use std::os::fd::FromRawFd;
        let mut iov = [std::io::IoSliceMut::new(buf)];
        let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
        let received = recvmsg::<()>(
            self.stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(std::io::Error::from)?;
        let bytes = received.bytes;
        // A frame with more descriptors than fit: the kernel closed the
        // rest, and the ones that fit are still ours.
        if let Ok(messages) = received.cmsgs() {
            for message in messages {
                if let ControlMessageOwned::ScmRights(fds) = message {
                    for fd in fds {
                        // SAFETY: the kernel just installed this
                        // descriptor in this process for us alone.
                        self.fds.push_back(unsafe { OwnedFd::from_raw_fd(fd) });
                    }
                }
            }
        }
        Ok(bytes)
    }
}

/// Messages past this size are written to the socket as they are encoded
/// rather than encoded whole first: a large message then costs no second
/// copy of itself in memory.
const STREAMED_MESSAGE: usize = 1 << 20;

/// A bincode writer that appends to a `Vec` without the `std::io` detour.
struct Append<'a>(&'a mut Vec<u8>);

/// A bincode writer onto the socket through a bounded buffer; large slices
/// (a `serde_bytes` field) go out directly.
struct Streamed<'a> {
    fd: BorrowedFd<'a>,
    buffer: &'a mut Vec<u8>,
    written: usize,
    error: Option<std::io::Error>,
}

impl Streamed<'_> {
    fn flush(&mut self) -> std::io::Result<()> {
        let sent = frame::write_all(self.fd, self.buffer);
        self.buffer.clear();
        sent
    }
}

impl Writer for Streamed<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::result::Result<(), EncodeError> {
        let outcome = (|| {
            let direct = bytes.len() > STREAMED_MESSAGE / 2;
            // Whatever is buffered goes first, to keep the bytes in order.
            if direct || self.buffer.len() + bytes.len() > STREAMED_MESSAGE {
                self.flush()?;
            }
            if direct {
                frame::write_all(self.fd, bytes)
            } else {
                self.buffer.extend_from_slice(bytes);
                Ok(())
            }
        })();
        self.written += bytes.len();
        outcome.map_err(|e| {
            self.error = Some(e);
            EncodeError::Other("the socket refused a write")
        })
    }
}

impl Writer for Append<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::result::Result<(), EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

fn encode_error(e: EncodeError) -> Error {
    Error::Encode {
        message: e.to_string(),
    }
}

fn shed(buffer: &mut Vec<u8>) {
    if buffer.capacity() > RETAINED_BUFFER {
        *buffer = Vec::new();
    }
}

impl<Tx, Rx> Channel<Tx, Rx> {
    /// Wraps one end of a socketpair. `pid` is the child on the parent's side.
    pub(crate) fn from_fd(fd: OwnedFd, pid: Option<Pid>) -> Self {
        Channel {
            stream: Some(UnixStream::from(fd)),
            pid,
            owner: getpid(),
            limit: DEFAULT_FRAME_LIMIT,
            desynchronized: None,
            send_buffer: Vec::new(),
            receive_buffer: Vec::new(),
            received_fds: std::collections::VecDeque::new(),
            _types: PhantomData,
        }
    }

    fn stream(&self) -> &UnixStream {
        self.stream
            .as_ref()
            .expect("a channel's stream is present until it is dropped")
    }

    /// The child at the other end, on the parent's side; `None` in the child.
    pub fn pid(&self) -> Option<Pid> {
        self.pid
    }

    /// Limits the payload of incoming frames to `bytes`; a longer frame is
    /// refused with [`Error::FrameTooLarge`]. The default is
    /// [`DEFAULT_FRAME_LIMIT`].
    pub fn set_frame_limit(&mut self, bytes: u64) {
        self.limit = bytes;
    }

    /// The current limit on incoming payloads, in bytes.
    pub fn frame_limit(&self) -> u64 {
        self.limit
    }

    fn io_error(&self, source: std::io::Error) -> Error {
        Error::Io {
            pid: self.pid,
            source,
        }
    }

    /// Shuts down the sending direction: the peer's next `receive` after the
    /// messages already sent is [`Error::Closed`], while this end can still
    /// receive. This is how a parent tells a reusable child that no more work
    /// is coming and then collects its last replies.
    pub fn close_send(&mut self) -> Result<()> {
        self.stream()
            .shutdown(Shutdown::Write)
            .map_err(|source| self.io_error(source))
    }

    /// Sends one whole frame of raw payload.
    pub(crate) fn send_frame(&mut self, kind: Kind, payload: &[u8]) -> Result<()> {
        let mut buffer = std::mem::take(&mut self.send_buffer);
        buffer.clear();
        buffer.reserve(HEADER_LEN + payload.len());
        buffer.extend_from_slice(&frame::header(payload.len() as u64, kind));
        buffer.extend_from_slice(payload);
        let sent = frame::write_all(self.as_fd(), &buffer);
        shed(&mut buffer);
        self.send_buffer = buffer;
        sent.map_err(|source| self.io_error(source))
    }

    /// Sends a panic report; the peer's `receive` returns [`Error::Panicked`].
    pub(crate) fn send_panic(&mut self, message: &str) -> Result<()> {
        self.send_frame(Kind::Panic, message.as_bytes())
    }

    /// Closes the parent's end and waits for the child to exit (killing it if
    /// it has not exited a second after the close), returning how it ended.
    /// On the child's side this just closes the channel and returns `Exit::Code(0)`.
    pub fn close(mut self) -> Result<Exit> {
        match self.release() {
            Some(pid) => reap::reap(pid, GRACE),
            None => Ok(Exit::Code(0)),
        }
    }

    /// Closes the socket and returns the child that now has to be reaped, if this
    /// end owns one. Afterwards `drop` does nothing.
    pub(crate) fn release(&mut self) -> Option<Pid> {
        let stream = self.stream.take()?;
        if getpid() != self.owner {
            // An inherited copy in a forked child: the fd was already closed
            // right after the fork, and the child is not ours to reap.
            let _ = stream.into_raw_fd();
            return None;
        }
        drop(stream);
        self.pid
    }
}

impl<Tx: Serialize, Rx> Channel<Tx, Rx> {
    /// Sends `value` as one frame, blocking until the whole frame is written.
    ///
    /// Fails with [`Error::Encode`] if `value` cannot be encoded, and with
    /// [`Error::Io`] (`EPIPE`) if the peer has closed its end.
    pub fn send(&mut self, value: &Tx) -> Result<()> {
        let config = bincode::config::standard();
        // Sizing first costs one cheap pass and saves every reallocation (and
        // copy) of a large buffer while it is encoded.
        let mut size = SizeWriter::default();
        bincode::serde::encode_into_writer(value, &mut size, config).map_err(encode_error)?;
        if size.bytes_written > STREAMED_MESSAGE {
            return self.send_streamed(value, size.bytes_written);
        }
        let mut buffer = std::mem::take(&mut self.send_buffer);
        buffer.clear();
        buffer.reserve(HEADER_LEN + size.bytes_written);
        buffer.extend_from_slice(&frame::header(size.bytes_written as u64, Kind::Value));
        let encoded = bincode::serde::encode_into_writer(value, Append(&mut buffer), config)
            .map_err(encode_error);
        let sent = encoded.and_then(|()| {
            frame::write_all(self.as_fd(), &buffer).map_err(|source| self.io_error(source))
        });
        shed(&mut buffer);
        self.send_buffer = buffer;
        sent
    }
}

impl<Tx: Serialize, Rx> Channel<Tx, Rx> {
    /// Sends `value` with the open file `fd` attached (`SCM_RIGHTS`): the
    /// peer, having received the value, gets its own descriptor of the same
    /// open file from [`Channel::take_fd`]. How a child hands its parent a
    /// file it wrote, even one with no name.
    pub fn send_with_fd(&mut self, value: &Tx, fd: BorrowedFd<'_>) -> Result<()> {
        use nix::sys::socket::{sendmsg, ControlMessage};
        let config = bincode::config::standard();
        let mut buffer = std::mem::take(&mut self.send_buffer);
        buffer.clear();
        buffer.extend_from_slice(&[0; HEADER_LEN]);
        let encoded = bincode::serde::encode_into_writer(value, Append(&mut buffer), config)
            .map_err(encode_error);
        let sent = encoded.and_then(|()| {
            let len = (buffer.len() - HEADER_LEN) as u64;
            buffer[..HEADER_LEN].copy_from_slice(&frame::header(len, Kind::Value));
            let fds = [fd.as_raw_fd()];
            let rights = [ControlMessage::ScmRights(&fds)];
            // The descriptor goes with the first byte sent; the rest of
            // the frame follows as usual.
            let first = loop {
                match sendmsg::<()>(
                    self.as_raw_fd(),
                    &[std::io::IoSlice::new(&buffer)],
                    &rights,
                    MsgFlags::MSG_NOSIGNAL,
                    None,
                ) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    other => break other,
                }
            };
            first
                .map_err(std::io::Error::from)
                .and_then(|n| frame::write_all(self.as_fd(), &buffer[n..]))
                .map_err(|source| self.io_error(source))
        });
        shed(&mut buffer);
        self.send_buffer = buffer;
        sent
    }

    /// Sends a large value encoded straight onto the socket. Its size is
    /// known (encoded once into a counter), so the header goes first. An
    /// encoding error halfway would leave a partial frame: the encoding
    /// already succeeded once, so only the socket can fail here, and then
    /// the peer is gone anyway.
    fn send_streamed(&mut self, value: &Tx, len: usize) -> Result<()> {
        let mut buffer = std::mem::take(&mut self.send_buffer);
        buffer.clear();
        buffer.extend_from_slice(&frame::header(len as u64, Kind::Value));
        let fd = self.as_fd();
        let mut writer = Streamed {
            fd,
            buffer: &mut buffer,
            written: 0,
            error: None,
        };
        let encoded =
            bincode::serde::encode_into_writer(value, &mut writer, bincode::config::standard());
        let flushed = match (encoded, writer.error.take()) {
            (_, Some(source)) => Err(source),
            (Err(e), None) => Err(std::io::Error::other(e.to_string())),
            (Ok(()), None) if writer.written != len => Err(std::io::Error::other(
                "a message encoded to another size the second time",
            )),
            (Ok(()), None) => writer.flush(),
        };
        shed(&mut buffer);
        self.send_buffer = buffer;
        flushed.map_err(|source| self.io_error(source))
    }
}

impl<Tx, Rx> Channel<Tx, Rx> {
    /// The oldest descriptor received with a message (see
    /// [`Channel::send_with_fd`]) and not taken yet.
    pub fn take_fd(&mut self) -> Option<OwnedFd> {
        self.received_fds.pop_front()
    }
}

impl<Tx, Rx: DeserializeOwned> Channel<Tx, Rx> {
    /// Blocks until one whole frame has arrived and decodes it.
    ///
    /// A panic report from the child is returned as [`Error::Panicked`]. After
    /// [`Error::FrameTooLarge`] the channel cannot be read any more (every later
    /// call repeats that error); after [`Error::Decode`] it can.
    pub fn receive(&mut self) -> Result<Rx> {
        let pid = self.pid;
        if let Some((len, limit)) = self.desynchronized {
            return Err(Error::FrameTooLarge { pid, len, limit });
        }
        let mut buffer = std::mem::take(&mut self.receive_buffer);
        let Some(stream) = self.stream.as_ref() else {
            return Err(Error::Closed { pid });
        };
        let socket = SocketFrames {
            stream,
            fds: &mut self.received_fds,
        };
        let outcome = frame::read_frame(socket, self.limit, &mut buffer);
        let result = match outcome {
            Ok(Kind::Value) => {
                match bincode::serde::decode_from_slice(&buffer, bincode::config::standard()) {
                    Ok((value, used)) if used == buffer.len() => Ok(value),
                    Ok((_, used)) => Err(Error::Decode {
                        pid,
                        message: format!("{} bytes left over after the value", buffer.len() - used),
                    }),
                    Err(e) => Err(Error::Decode {
                        pid,
                        message: e.to_string(),
                    }),
                }
            }
            Ok(Kind::Panic) => Err(Error::Panicked {
                // On the child's side the peer is the parent.
                pid: pid.unwrap_or_else(getppid),
                message: String::from_utf8_lossy(&buffer).into_owned(),
            }),
            Err(FrameError::Closed) => Err(Error::Closed { pid }),
            Err(FrameError::Truncated { expected, got }) => {
                Err(Error::Truncated { pid, expected, got })
            }
            Err(FrameError::TooLarge { len, limit }) => {
                self.desynchronized = Some((len, limit));
                Err(Error::FrameTooLarge { pid, len, limit })
            }
            Err(FrameError::UnknownKind(kind)) => Err(Error::Decode {
                pid,
                message: format!("unknown frame kind {kind}"),
            }),
            Err(FrameError::Io(source)) => Err(self.io_error(source)),
        };
        shed(&mut buffer);
        self.receive_buffer = buffer;
        result
    }
}

impl<Tx, Rx> AsFd for Channel<Tx, Rx> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream().as_fd()
    }
}

impl<Tx, Rx> AsRawFd for Channel<Tx, Rx> {
    fn as_raw_fd(&self) -> RawFd {
        self.stream().as_raw_fd()
    }
}

impl<Tx, Rx> fmt::Debug for Channel<Tx, Rx> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("pid", &self.pid)
            .field("fd", &self.stream.as_ref().map(AsRawFd::as_raw_fd))
            .field("frame_limit", &self.limit)
            .finish()
    }
}

impl<Tx, Rx> Drop for Channel<Tx, Rx> {
    fn drop(&mut self) {
        if let Some(pid) = self.release() {
            // Nobody is left to hear how the child ended; reaping it is what matters.
            let _ = reap::reap(pid, GRACE);
        }
    }
}
