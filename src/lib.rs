//! indexer: a parallel text indexer built on fork-based process parallelism.
//!
//! * [`parallel`] is the runtime: forked children, typed channels over
//!   socketpairs, an Exchange that polls many of them. It knows nothing of
//!   indexing.
//! * [`index`] walks a tree, tokenizes files in forked workers and merges
//!   their partial maps into an [`index::Index`].
//! * [`search`] answers fragment queries over an index. It never forks.
//! * [`store`] saves an index to a file, opens it in place, and refreshes
//!   it after the tree changed (re-indexing through [`index::build()`]).

#![warn(missing_docs)]

pub mod index;
pub mod parallel;
pub mod search;
pub mod store;
