//! Process parallelism in the manner of Python's pprocess: forked children,
//! typed channels over socketpairs, and a poll-driven Exchange.
//!
//! # The model
//!
//! Work runs in child processes made with `fork(2)`. A child starts as a copy
//! of its parent, so it already has whatever data the work needs: nothing is
//! serialized on the way in. Each child is joined to its parent by a
//! [`Channel`], one end of a Unix `socketpair(2)`, which carries whole values
//! of any serde type (bincode 2 in length-prefixed frames) in both directions.
//! The parent watches many channels at once with an [`Exchange`], which waits
//! on all of them with `poll(2)`, keeps at most `limit` children alive, and
//! queues work until there is room.
//!
//! From the smallest step to the most convenient:
//!
//! * [`create`]: fork; each side gets its end of a channel ([`Fork`]). The
//!   child leaves with [`exit`].
//! * [`start`]: fork a child that runs `f(channel, args)` and exits; a panic in
//!   the child reaches the parent as [`Error::Panicked`].
//! * [`Exchange`]: many children, [`Event`]s as they send, finish or fail.
//! * [`pmap`] (results in input order) and [`Queue`] (results in arrival order).
//!
//! ```
//! use indexer::parallel::{start, Channel, Event, Exchange};
//!
//! // One child, asked twice on the same channel.
//! let mut child: Channel<u64, u64> = start(
//!     |channel: &mut Channel<u64, u64>, offset: u64| {
//!         while let Ok(x) = channel.receive() {
//!             channel.send(&(x + offset)).unwrap();
//!         }
//!     },
//!     100,
//! )?;
//! child.send(&1)?;
//! child.send(&2)?;
//! assert_eq!(child.receive()?, 101);
//! assert_eq!(child.receive()?, 102);
//! drop(child); // closes the channel, so the child's loop ends; then reaps it
//!
//! // Ten children, at most four at a time.
//! let mut exchange: Exchange<(), u64> = Exchange::with_limit(4);
//! for n in 0..10u64 {
//!     exchange.start(|channel: &mut Channel<u64, ()>, n| channel.send(&(n * n)).unwrap(), n)?;
//! }
//! let mut total = 0;
//! exchange.finish(|event| {
//!     if let Event::Message { value, .. } = event {
//!         total += value;
//!     }
//! })?;
//! assert_eq!(total, 285);
//!
//! // The same through pmap, in input order.
//! let squares = indexer::parallel::pmap(|n: u64| n * n, 0..10u64, 4);
//! assert_eq!(squares.into_iter().map(Result::unwrap).sum::<u64>(), 285);
//! # Ok::<(), indexer::parallel::Error>(())
//! ```
//!
//! # Invariants
//!
//! * **Fork only while single-threaded.** Every fork checks `/proc/self/task`
//!   first and returns [`Error::MultiThreaded`] rather than fork a process whose
//!   other threads may hold locks. Fork first, then start threads.
//! * **A child keeps only stdin, stdout, stderr and its own channel.** Every
//!   other descriptor is closed right after the fork, so no child holds a
//!   sibling's channel open, and files the parent opened are closed in the
//!   child. Sockets are `SOCK_CLOEXEC`.
//! * **A child leaves with `_exit`**, after flushing its stdout and stderr; the
//!   parent flushes its stdout before forking. Buffered output is printed
//!   once, and the parent's destructors never run in a child.
//! * **Every child is reaped**: when its channel ends in an Exchange, when its
//!   parent-side channel is dropped or closed, when an Exchange is dropped. A
//!   child still running a second after its channel was closed is killed.
//! * **The peer is not trusted.** A malformed, truncated or oversized frame is
//!   an [`Error`] naming the child, never a panic or an allocation of the size
//!   a header claims. (A child that sends half a frame and then stalls without
//!   dying does stall the parent's read of that frame.)
//!
//! The runtime knows nothing of what the children compute; Linux only.

mod channel;
mod error;
mod exchange;
mod frame;
mod map;
mod process;
mod reap;

pub use channel::{Channel, DEFAULT_FRAME_LIMIT};
pub use error::{Error, Exit};
pub use exchange::{Event, Exchange};
pub use map::{pmap, Queue};
pub use nix::unistd::Pid;
pub use process::{available_cores, create, ensure_single_threaded, exit, start, Fork};

/// The result of a runtime operation.
pub type Result<T> = std::result::Result<T, Error>;
