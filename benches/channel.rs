//! What a message and a child cost: typed channels beside raw socket I/O.
//!
//! * `channel/1KiB` and `channel/16MiB`: the parent sends one message and waits
//!   for a one-byte acknowledgement from a child that discards it. `typed` goes
//!   through `Channel` (bincode, frames, `serde_bytes`); `raw` writes the same
//!   bytes to a plain socketpair and reads them back with the same ack, so the
//!   baseline prints beside the result in the same run.
//! * `process/start_reply_reap`: fork a child, receive its one small message,
//!   close and reap it.
//!
//! Criterion starts rayon threads for its analysis after the first benchmark,
//! and the runtime (rightly) refuses to fork a multi-threaded process. So every
//! child is forked before Criterion starts: the throughput peers, and a
//! *spawner* child that times start + reply + reap itself, inside its own
//! single-threaded process, and reports the time through `iter_custom`.
//!
//! ```text
//! cargo bench --bench channel            # full run
//! cargo bench --bench channel -- --quick # a quick look
//! ```

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use indexer::parallel::{start, Channel, Error};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Payload {
    #[serde(with = "serde_bytes")]
    bytes: Vec<u8>,
}

const SIZES: [(usize, &str); 2] = [(1 << 10, "1KiB"), (16 << 20, "16MiB")];

/// A child that receives payloads and acknowledges each with `()`.
fn typed_sink() -> Channel<Payload, ()> {
    start(
        |channel: &mut Channel<(), Payload>, ()| loop {
            match channel.receive() {
                Ok(_) => channel.send(&()).expect("ack"),
                Err(Error::Closed { .. }) => break,
                Err(e) => panic!("{e}"),
            }
        },
        (),
    )
    .expect("fork the typed sink before Criterion starts its threads")
}

/// A child that reads `size` raw bytes at a time from its socket and answers
/// each block with one byte. The channel is used only for its socket.
fn raw_sink(size: usize) -> (Channel<(), ()>, UnixStream) {
    let channel = start(
        |channel: &mut Channel<(), ()>, size: usize| {
            let mut socket = stream_of(channel);
            let mut block = vec![0u8; size];
            while socket.read_exact(&mut block).is_ok() {
                if socket.write_all(&[1]).is_err() {
                    break;
                }
            }
        },
        size,
    )
    .expect("fork the raw sink before Criterion starts its threads");
    let socket = stream_of(&channel);
    (channel, socket)
}

fn stream_of<Tx, Rx>(channel: &Channel<Tx, Rx>) -> UnixStream {
    UnixStream::from(channel.as_fd().try_clone_to_owned().expect("dup"))
}

/// A child that, asked for `n`, starts `n` children one after the other, each
/// sending one `u32`, receives it, reaps the child, and answers with the time
/// taken in nanoseconds.
fn spawner() -> Channel<u64, u64> {
    start(
        |channel: &mut Channel<u64, u64>, ()| {
            while let Ok(n) = channel.receive() {
                let started = Instant::now();
                for _ in 0..n {
                    let mut child: Channel<(), u32> = start(
                        |c: &mut Channel<u32, ()>, ()| c.send(&7).expect("reply"),
                        (),
                    )
                    .expect("fork");
                    assert_eq!(child.receive().expect("reply"), 7);
                    child.close().expect("reap");
                }
                let nanos = started.elapsed().as_nanos() as u64;
                channel.send(&nanos).expect("report");
            }
        },
        (),
    )
    .expect("fork the spawner before Criterion starts its threads")
}

fn main() {
    let mut typed: Vec<Channel<Payload, ()>> = SIZES.iter().map(|_| typed_sink()).collect();
    let mut raw: Vec<(Channel<(), ()>, UnixStream)> =
        SIZES.iter().map(|&(size, _)| raw_sink(size)).collect();
    let mut spawner = spawner();

    let mut criterion = Criterion::default().configure_from_args();
    for (i, &(size, label)) in SIZES.iter().enumerate() {
        let mut group = criterion.benchmark_group(format!("channel/{label}"));
        group.throughput(Throughput::Bytes(size as u64));
        if size > 1 << 20 {
            group.sample_size(20);
            group.measurement_time(Duration::from_secs(5));
        }
        let payload = Payload {
            bytes: (0..size).map(|k| k as u8).collect(),
        };
        let channel = &mut typed[i];
        group.bench_function(BenchmarkId::new("typed", label), |b| {
            b.iter(|| {
                channel.send(&payload).expect("send");
                channel.receive().expect("ack");
            })
        });
        let socket = &mut raw[i].1;
        let mut ack = [0u8; 1];
        group.bench_function(BenchmarkId::new("raw", label), |b| {
            b.iter(|| {
                socket.write_all(&payload.bytes).expect("write");
                socket.read_exact(&mut ack).expect("ack");
            })
        });
        group.finish();
    }

    let mut group = criterion.benchmark_group("process");
    group.bench_function("start_reply_reap", |b| {
        b.iter_custom(|n| {
            spawner.send(&n).expect("ask the spawner");
            Duration::from_nanos(spawner.receive().expect("spawner's timing"))
        })
    });
    group.finish();

    drop(typed);
    drop(raw);
    drop(spawner);
    criterion.final_summary();
}
