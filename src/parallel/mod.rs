//! Process parallelism in the manner of Python's pprocess.
//! (module docs to come)

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
