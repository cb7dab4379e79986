//! Letting go of a build's memory on several threads.
//!
//! A built index holds about a gigabyte: the runs' lists in shared memory,
//! the words, the pieces. Freeing it is the kernel's work (0.1 to 0.25 ms
//! a megabyte where it was measured), done by the thread that unmaps it,
//! and at a process's exit by one thread alone. Where nothing else runs,
//! the build's threads share it (on the kernel tree, 70 ms at the exit
//! became 35).

use std::sync::{Mutex, PoisonError};

/// A piece of the work: usually dropping something.
pub(crate) type Chore = Box<dyn FnOnce() + Send>;

/// The chore of dropping `item`.
pub(crate) fn dropping<T: Send + 'static>(item: T) -> Chore {
    Box::new(move || drop(item))
}

/// Does `chores` on `threads` threads (this one included), each taking the
/// next chore in order until none is left, so list the largest first: the
/// threads then finish together. Only call it where no process will fork
/// meanwhile; it returns once all are done. Threads that cannot start
/// leave their share to the others.
pub(crate) fn share_chores(mut chores: Vec<Chore>, threads: usize) {
    chores.reverse();
    let chores = Mutex::new(chores);
    let work = || loop {
        let next = chores.lock().unwrap_or_else(PoisonError::into_inner).pop();
        match next {
            Some(chore) => chore(),
            None => break,
        }
    };
    if threads <= 1 || chores.lock().is_ok_and(|c| c.len() <= 1) {
        return work();
    }
    std::thread::scope(|scope| {
        for _ in 1..threads {
            // A thread that cannot start leaves its share to the others.
            let _ = std::thread::Builder::new().spawn_scoped(scope, work);
        }
        work();
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn every_chore_is_done_before_it_returns() {
        for threads in [0, 1, 2, 5] {
            every_chore_done_on(threads);
        }
    }

    fn every_chore_done_on(threads: usize) {
        let dropped = Arc::new(AtomicUsize::new(0));
        let chores = (0..1000)
            .map(|_| dropping(Counted(Arc::clone(&dropped))))
            .collect();
        share_chores(chores, threads);
        assert_eq!(dropped.load(Ordering::Relaxed), 1000);
    }
}
