//! Watching many children at once: poll(2) over their channels.
//!
//! An [`Exchange`] holds the parent's ends of many channels and waits on all of
//! them with one `poll(2)` (`POLLIN`, `POLLHUP`, `POLLERR`, `POLLNVAL`), the way
//! pprocess's Exchange does. It has two layers:
//!
//! * the plain set: [`add`](Exchange::add), [`remove`](Exchange::remove),
//!   [`ready`](Exchange::ready) say which children have something to say, and
//!   the caller reads from [`channel`](Exchange::channel) itself;
//! * the managed form: [`wait`](Exchange::wait) reads one message from each
//!   ready child and turns it into an [`Event`], reaps children whose channel
//!   ended, and keeps at most `limit` children alive, starting queued work
//!   ([`start`](Exchange::start)) as others finish; [`finish`](Exchange::finish)
//!   drains everything into a closure (pprocess's `store_data`).
//!
//! Every child that leaves the Exchange is reaped, whether it finished, failed
//! or was still running when the Exchange was dropped. A child whose channel
//! ended but which is still exiting (giving back its memory) is watched
//! through its exit notice beside the channels, so `wait` goes on serving
//! the others and reports it once it is gone. Reaped on the spot, the two
//! workers of a kernel build exited one after the other, each waited for
//! while the other sat idle with its last answer unread (18 ms; 8 now).

use std::collections::VecDeque;
use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags};
use serde::de::DeserializeOwned;

use super::reap::{self, GRACE};
use super::{start, Channel, Error, Exit, Pid, Result};

/// Something that happened to one child of an [`Exchange`].
#[derive(Debug)]
pub enum Event<Rx> {
    /// The child sent a value.
    Message {
        /// The child that sent it.
        pid: Pid,
        /// What it sent.
        value: Rx,
    },
    /// The child closed its channel and exited with code 0; it has been reaped.
    Finished {
        /// The child that finished.
        pid: Pid,
    },
    /// The child failed (panicked, died, or broke the protocol); it has been
    /// removed and reaped.
    Failed {
        /// The child that failed.
        pid: Pid,
        /// What went wrong.
        error: Error,
    },
}

/// Work waiting for room under the limit: starts a child when called.
type Work<Tx, Rx> = Box<dyn FnOnce() -> Result<Channel<Tx, Rx>>>;

/// A child whose channel ended, not yet exited: watched until it is.
#[derive(Debug)]
struct Exiting {
    /// The pid its events name (its channel's).
    pid: Pid,
    /// Readable once it has exited.
    notice: OwnedFd,
    /// When it is killed if still there.
    deadline: Instant,
}

/// A set of parent-side channels watched together, with an optional limit on
/// live children and a queue of work waiting for room.
pub struct Exchange<Tx, Rx> {
    channels: Vec<Channel<Tx, Rx>>,
    exiting: Vec<Exiting>,
    limit: Option<usize>,
    queue: VecDeque<Work<Tx, Rx>>,
    /// A failure to start queued work, reported by the next `wait`.
    deferred: Option<Error>,
}

impl<Tx, Rx> Default for Exchange<Tx, Rx> {
    fn default() -> Self {
        Self::new()
    }
}

impl<Tx, Rx> fmt::Debug for Exchange<Tx, Rx> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exchange")
            .field("pids", &self.pids())
            .field("limit", &self.limit)
            .field("queued", &self.queue.len())
            .finish()
    }
}

impl<Tx, Rx> Exchange<Tx, Rx> {
    /// An empty Exchange with no limit on live children.
    pub fn new() -> Self {
        Exchange {
            channels: Vec::new(),
            exiting: Vec::new(),
            limit: None,
            queue: VecDeque::new(),
            deferred: None,
        }
    }

    /// An empty Exchange that keeps at most `limit` children alive (a limit of
    /// 0 is taken as 1).
    pub fn with_limit(limit: usize) -> Self {
        let mut exchange = Self::new();
        exchange.limit = Some(limit.max(1));
        exchange
    }

    /// The limit on live children, if any.
    pub fn limit(&self) -> Option<usize> {
        self.limit
    }

    fn has_room(&self) -> bool {
        match self.limit {
            Some(limit) => self.active() < limit,
            None => true,
        }
    }

    /// Adds a channel, whatever the limit (see [`add_wait`](Exchange::add_wait)).
    pub fn add(&mut self, channel: Channel<Tx, Rx>) {
        self.channels.push(channel);
    }

    /// Takes a channel out of the Exchange; the caller now owns the child.
    pub fn remove(&mut self, pid: Pid) -> Option<Channel<Tx, Rx>> {
        let index = self.index(pid)?;
        Some(self.channels.remove(index))
    }

    /// The number of live children: those with a channel in the Exchange
    /// and those whose channel ended and whose exit `wait` has yet to report.
    pub fn active(&self) -> usize {
        self.channels.len() + self.exiting.len()
    }

    /// The children whose channels are in the Exchange.
    pub fn pids(&self) -> Vec<Pid> {
        self.channels.iter().filter_map(Channel::pid).collect()
    }

    /// The number of started works waiting for room under the limit.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The channel to `pid`, to send it more work or read from it directly.
    pub fn channel(&mut self, pid: Pid) -> Option<&mut Channel<Tx, Rx>> {
        let index = self.index(pid)?;
        Some(&mut self.channels[index])
    }

    fn index(&self, pid: Pid) -> Option<usize> {
        self.channels.iter().position(|c| c.pid() == Some(pid))
    }

    /// Starts `f(channel, args)` in a child now if the limit allows, otherwise
    /// queues it to start when a live child finishes (during `wait`).
    pub fn start<A, F>(&mut self, f: F, args: A) -> Result<()>
    where
        F: FnOnce(&mut Channel<Rx, Tx>, A) + 'static,
        A: 'static,
    {
        if self.has_room() {
            let channel = start(f, args)?;
            self.add(channel);
        } else {
            self.queue.push_back(Box::new(move || start(f, args)));
        }
        Ok(())
    }

    /// Starts queued work while there is room. A failure stops there; the
    /// work that failed is discarded.
    fn start_queued(&mut self) -> Result<()> {
        while self.has_room() {
            let Some(work) = self.queue.pop_front() else {
                break;
            };
            let channel = work()?;
            self.add(channel);
        }
        Ok(())
    }

    /// Waits up to `timeout` (`None`: for ever) until some channel can be read
    /// or has hung up, and returns those children. Returns at once, empty, if
    /// the Exchange holds no channel.
    pub fn ready(&mut self, timeout: Option<Duration>) -> Result<Vec<Pid>> {
        if self.channels.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.poll_children(timeout, false)?.0)
    }

    /// Polls the channels (and, with `exits`, the exit notices of children
    /// still exiting, up to the nearest one's deadline): the children whose
    /// channel is ready, and the indices in `exiting` of those that exited
    /// or are past their deadline.
    fn poll_children(
        &self,
        timeout: Option<Duration>,
        exits: bool,
    ) -> Result<(Vec<Pid>, Vec<usize>)> {
        let watched =
            PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL;
        let exiting: &[Exiting] = if exits { &self.exiting } else { &[] };
        let deadline = timeout
            .map(|t| Instant::now() + t)
            .into_iter()
            .chain(exiting.iter().map(|e| e.deadline))
            .min();
        loop {
            let wait = reap::poll_timeout(deadline);
            let mut fds: Vec<PollFd<'_>> = self
                .channels
                .iter()
                .map(|channel| PollFd::new(std::os::fd::AsFd::as_fd(channel), watched))
                .chain(
                    exiting
                        .iter()
                        .map(|e| PollFd::new(e.notice.as_fd(), watched)),
                )
                .collect();
            match poll(&mut fds, wait) {
                Ok(_) => {
                    let is_ready =
                        |fd: &PollFd<'_>| fd.revents().is_some_and(|r| r.intersects(watched));
                    let (channel_fds, exit_fds) = fds.split_at(self.channels.len());
                    let ready = channel_fds
                        .iter()
                        .zip(&self.channels)
                        .filter(|(fd, _)| is_ready(fd))
                        .filter_map(|(_, channel)| channel.pid())
                        .collect();
                    let now = Instant::now();
                    let exited = exit_fds
                        .iter()
                        .zip(exiting)
                        .enumerate()
                        .filter(|(_, (fd, e))| is_ready(fd) || e.deadline <= now)
                        .map(|(i, _)| i)
                        .collect();
                    return Ok((ready, exited));
                }
                Err(Errno::EINTR) => continue,
                Err(errno) => {
                    return Err(Error::Io {
                        pid: None,
                        source: errno.into(),
                    })
                }
            }
        }
    }

    /// A child whose channel ended: reaped now if it has exited, else
    /// watched through its exit notice until it has (`None`: its event comes
    /// from a later `wait`). Without a notice, it is waited for here.
    fn closed(&mut self, mut channel: Channel<Tx, Rx>, pid: Pid) -> Option<Event<Rx>> {
        let Some(child) = channel.release() else {
            // Not this process's child (an inherited copy): nothing to reap.
            return Some(Event::Finished { pid });
        };
        if let Some(exit) = reap::try_reap(child) {
            return Some(ended(pid, exit));
        }
        match reap::exit_notice(child) {
            Some(notice) => {
                self.exiting.push(Exiting {
                    pid: child,
                    notice,
                    deadline: Instant::now() + GRACE,
                });
                None
            }
            None => Some(ended(pid, reap::reap(child, GRACE))),
        }
    }

    /// Reaps the children at `indices` of `exiting` (exited, or killed past
    /// their deadline), with their events.
    fn reap_exited(&mut self, mut indices: Vec<usize>) -> Vec<Event<Rx>> {
        let now = Instant::now();
        let mut events = Vec::new();
        // From the back, so the indices left stay valid.
        indices.sort_unstable();
        for i in indices.into_iter().rev() {
            let pid = self.exiting[i].pid;
            let exit = match reap::try_reap(pid) {
                Some(exit) => exit,
                None if self.exiting[i].deadline <= now => reap::kill_and_reap(pid),
                // Readable yet not reapable: not expected; polled again.
                None => continue,
            };
            self.exiting.swap_remove(i);
            events.push(ended(pid, exit));
        }
        events
    }

    /// Waits for all channels still in the Exchange to close and reaps their
    /// children, as dropping the Exchange does; queued work is discarded.
    fn release_all(&mut self) {
        self.queue.clear();
        let pids: Vec<Pid> = self
            .channels
            .iter_mut()
            .filter_map(Channel::release)
            .chain(self.exiting.drain(..).map(|e| e.pid))
            .collect();
        self.channels.clear();
        reap::reap_all(&pids, GRACE);
    }
}

impl<Tx, Rx: DeserializeOwned> Exchange<Tx, Rx> {
    /// One round: waits up to `timeout` for ready channels, reads one message
    /// from each, and reports what happened. A child whose channel ended is
    /// removed and reaped ([`Event::Finished`] if it exited with code 0,
    /// otherwise [`Event::Failed`] with [`Error::Died`]); a child that panicked
    /// or broke the protocol is removed and reaped with [`Event::Failed`]. Then
    /// queued work is started while there is room.
    ///
    /// Returns an empty Vec on timeout, and at once when nothing is live and
    /// nothing is queued. An error is returned only for the Exchange as a
    /// whole (poll failed, or queued work could not be started; that work is
    /// then discarded).
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<Vec<Event<Rx>>> {
        if let Some(error) = self.deferred.take() {
            return Err(error);
        }
        self.start_queued()?;
        let mut events = Vec::new();
        if self.active() == 0 {
            return Ok(events);
        }
        let (ready, exited) = self.poll_children(timeout, true)?;
        events.extend(self.reap_exited(exited));
        for pid in ready {
            let Some(index) = self.index(pid) else {
                continue;
            };
            match self.channels[index].receive() {
                Ok(value) => events.push(Event::Message { pid, value }),
                Err(Error::Closed { .. }) => {
                    let channel = self.channels.remove(index);
                    events.extend(self.closed(channel, pid));
                }
                Err(error) => {
                    // Dropping the channel closes it and reaps the child.
                    drop(self.channels.remove(index));
                    events.push(Event::Failed { pid, error });
                }
            }
        }
        if let Err(error) = self.start_queued() {
            self.deferred = Some(error);
        }
        Ok(events)
    }

    /// Waits for room under the limit (collecting the events that happen
    /// meanwhile), then adds `channel`.
    pub fn add_wait(&mut self, channel: Channel<Tx, Rx>) -> Result<Vec<Event<Rx>>> {
        let mut events = Vec::new();
        while !self.has_room() {
            events.extend(self.wait(None)?);
        }
        self.add(channel);
        Ok(events)
    }

    /// Runs [`wait`](Exchange::wait) until no child is live and no work is
    /// queued, handing every event to `store` (pprocess's `finish` with
    /// `store_data`).
    pub fn finish<F: FnMut(Event<Rx>)>(&mut self, mut store: F) -> Result<()> {
        while self.active() > 0 || !self.queue.is_empty() || self.deferred.is_some() {
            for event in self.wait(None)? {
                store(event);
            }
        }
        Ok(())
    }
}

impl<Tx, Rx> Drop for Exchange<Tx, Rx> {
    fn drop(&mut self) {
        self.release_all();
    }
}

/// The event of a child whose channel ended: how it exited.
fn ended<Rx>(pid: Pid, exit: Result<Exit>) -> Event<Rx> {
    match exit {
        Ok(Exit::Code(0)) => Event::Finished { pid },
        Ok(exit) => Event::Failed {
            pid,
            error: Error::Died { pid, exit },
        },
        Err(error) => Event::Failed { pid, error },
    }
}
