//! The simplest ways in: run a function over many inputs, one child each.
//!
//! [`pmap`] is pprocess's `pmap`: results come back in the order of the inputs,
//! whatever order the children finish in. [`Queue`] is pprocess's `Queue`:
//! results come back in the order they arrive, as an iterator, so the caller
//! can use the first ones while the last are still being computed.
//!
//! Both fork one child per item, keep at most `limit` alive, and have the child
//! send its function's return value back as one message. A child that fails
//! puts an error in place of its value: [`Error::Panicked`] with the panic
//! message, or [`Error::NoReply`] with the exit code or signal of a child that
//! ended without sending anything.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{available_cores, start, Channel, Error, Event, Exchange, Exit, Pid, Result};

/// In the child: sends the result home. A value that cannot be sent becomes a
/// panic, which the runtime reports to the parent as [`Error::Panicked`].
fn deliver<R: Serialize>(channel: &mut Channel<R, ()>, value: R) {
    if let Err(error) = channel.send(&value) {
        panic!("could not send the result to the parent: {error}");
    }
}

/// The id of the child an event concerns, and whether the event is its last.
fn subject<R>(event: &Event<R>) -> (Pid, bool) {
    match event {
        Event::Message { pid, .. } => (*pid, false),
        Event::Finished { pid } | Event::Failed { pid, .. } => (*pid, true),
    }
}

/// What one event means for the result of its child, given whether that child
/// has already delivered: `None` when it adds nothing.
fn outcome<R>(event: Event<R>, replied: bool) -> Option<Result<R>> {
    if replied {
        return None;
    }
    Some(match event {
        Event::Message { value, .. } => Ok(value),
        Event::Finished { pid } => Err(Error::NoReply {
            pid,
            exit: Exit::Code(0),
        }),
        Event::Failed {
            error: Error::Died { pid, exit },
            ..
        } => Err(Error::NoReply { pid, exit }),
        Event::Failed { error, .. } => Err(error),
    })
}

/// Applies `f` to every item, each in its own child, at most `limit` children
/// at a time; returns the results in the order of the items.
///
/// A child that fails gives an error in its slot (see the module docs). If a
/// fork fails (for example with [`Error::MultiThreaded`]), the children already
/// started still deliver, and that error fills every slot not yet started.
pub fn pmap<T, R, F>(f: F, items: impl IntoIterator<Item = T>, limit: usize) -> Vec<Result<R>>
where
    F: Fn(T) -> R + Clone + 'static,
    R: Serialize + DeserializeOwned,
{
    let limit = limit.max(1);
    let mut items = items.into_iter();
    let mut slots: Vec<Option<Result<R>>> = Vec::new();
    let mut slot_of: HashMap<Pid, usize> = HashMap::new();
    let mut exchange: Exchange<(), R> = Exchange::new();
    let mut failure: Option<Error> = None;
    loop {
        while failure.is_none() && exchange.active() < limit {
            let Some(item) = items.next() else {
                break;
            };
            let index = slots.len();
            slots.push(None);
            let f = &f;
            match start(move |channel, item| deliver(channel, f(item)), item) {
                Ok(channel) => {
                    if let Some(pid) = channel.pid() {
                        slot_of.insert(pid, index);
                    }
                    exchange.add(channel);
                }
                Err(error) => {
                    slots[index] = Some(Err(error.replicate()));
                    failure = Some(error);
                }
            }
        }
        if exchange.active() == 0 {
            break;
        }
        match exchange.wait(None) {
            Ok(events) => {
                for event in events {
                    let Some(&index) = slot_of.get(&subject(&event).0) else {
                        continue;
                    };
                    if let Some(result) = outcome(event, slots[index].is_some()) {
                        slots[index] = Some(result);
                    }
                }
            }
            Err(error) => {
                // The Exchange itself failed: nothing more can be collected.
                for slot in slots.iter_mut().filter(|slot| slot.is_none()) {
                    *slot = Some(Err(error.replicate()));
                }
                failure = Some(error);
                break;
            }
        }
    }
    drop(exchange);
    if let Some(failure) = failure {
        slots.extend(items.map(|_| Some(Err(failure.replicate()))));
    }
    slots
        .into_iter()
        .map(|slot| slot.unwrap_or(Err(Error::Closed { pid: None })))
        .collect()
}

/// Work not yet started because the limit was reached.
type Work<R> = Box<dyn FnOnce() -> R>;

/// Runs closures in children, at most `limit` at a time, and yields their
/// results in the order they arrive.
///
/// ```
/// use indexer::parallel::Queue;
///
/// let mut queue = Queue::with_limit(4);
/// for n in 0..10u64 {
///     queue.start(move || (1..=n).product::<u64>()).expect("fork");
/// }
/// let mut factorials: Vec<u64> = queue.map(|r| r.expect("child")).collect();
/// factorials.sort();
/// assert_eq!(factorials.len(), 10);
/// ```
pub struct Queue<R> {
    exchange: Exchange<(), R>,
    limit: usize,
    pending: VecDeque<Work<R>>,
    /// Children that have delivered their value.
    replied: HashSet<Pid>,
    results: VecDeque<Result<R>>,
}

impl<R> fmt::Debug for Queue<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("live", &self.exchange.active())
            .field("pending", &self.pending.len())
            .field("limit", &self.limit)
            .finish()
    }
}

impl<R: Serialize + DeserializeOwned> Default for Queue<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: Serialize + DeserializeOwned> Queue<R> {
    /// A queue running as many children as there are cores.
    pub fn new() -> Self {
        Self::with_limit(available_cores())
    }

    /// A queue running at most `limit` children at a time (0 is taken as 1).
    pub fn with_limit(limit: usize) -> Self {
        Queue {
            exchange: Exchange::new(),
            limit: limit.max(1),
            pending: VecDeque::new(),
            replied: HashSet::new(),
            results: VecDeque::new(),
        }
    }

    /// Runs `f` in a child now if the limit allows, otherwise when a running
    /// child finishes (while the queue is iterated). Errors only if forking now
    /// fails; a later fork failure is yielded by the iterator.
    pub fn start<F: FnOnce() -> R + 'static>(&mut self, f: F) -> Result<()> {
        if self.exchange.active() < self.limit {
            self.launch(f)
        } else {
            self.pending.push_back(Box::new(f));
            Ok(())
        }
    }

    fn launch(&mut self, f: impl FnOnce() -> R) -> Result<()> {
        let channel = start(move |channel, ()| deliver(channel, f()), ())?;
        self.exchange.add(channel);
        Ok(())
    }

    fn launch_pending(&mut self) {
        while self.exchange.active() < self.limit {
            let Some(work) = self.pending.pop_front() else {
                break;
            };
            if let Err(error) = self.launch(work) {
                self.results.push_back(Err(error));
            }
        }
    }
}

impl<R: Serialize + DeserializeOwned> Iterator for Queue<R> {
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        loop {
            if let Some(result) = self.results.pop_front() {
                return Some(result);
            }
            self.launch_pending();
            if !self.results.is_empty() {
                continue;
            }
            if self.exchange.active() == 0 {
                return None;
            }
            match self.exchange.wait(None) {
                Ok(events) => {
                    for event in events {
                        let (pid, ends) = subject(&event);
                        let result = outcome(event, self.replied.contains(&pid));
                        if ends {
                            // The child is gone; forget it so the set stays small.
                            self.replied.remove(&pid);
                        } else {
                            self.replied.insert(pid);
                        }
                        self.results.extend(result);
                    }
                }
                Err(error) => {
                    // The Exchange itself failed: stop, reaping what is left.
                    self.pending.clear();
                    self.exchange = Exchange::new();
                    return Some(Err(error));
                }
            }
        }
    }
}
