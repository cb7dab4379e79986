//! Behaviour of the process-parallel runtime (`indexer::parallel`), end to end.
//!
//! These tests fork, and the runtime refuses (rightly) to fork a process that
//! runs more than one thread. libtest runs tests on worker threads, so this file
//! runs under `libtest-mimic` (`harness = false` in Cargo.toml) with one test
//! thread, the main one: filtering, `--list`, `--exact` and the usual output
//! work as with libtest.
//!
//! A child that panics inside a test never returns into the harness: the
//! runner ends any process other than the original one with `_exit`.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::os::fd::AsFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::time::{Duration, Instant};

use indexer::parallel::{
    create, ensure_single_threaded, exit, pmap, start, Channel, Error, Event, Exchange, Exit, Fork,
    Pid, Queue,
};
use nix::errno::Errno;
use nix::sys::signal::{raise, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use serde::{Deserialize, Serialize};

/// The argument that makes this binary play the buffered-stdout scenario.
const STDOUT_SCENARIO: &str = "--stdout-scenario";
const MARKER: &str = "unflushed-marker";

const TESTS: &[(&str, fn())] = &[
    (
        "create_loop_sends_and_replies",
        create_loop_sends_and_replies,
    ),
    ("start_loop_sends_and_replies", start_loop_sends_and_replies),
    (
        "limited_exchange_delivers_every_value_once",
        limited_exchange_delivers_every_value_once,
    ),
    (
        "reusable_children_answer_work_on_one_channel",
        reusable_children_answer_work_on_one_channel,
    ),
    (
        "wait_times_out_with_no_events",
        wait_times_out_with_no_events,
    ),
    ("pmap_keeps_input_order", pmap_keeps_input_order),
    ("queue_yields_every_result", queue_yields_every_result),
    (
        "big_message_round_trip_is_exact",
        big_message_round_trip_is_exact,
    ),
    (
        "mixed_large_messages_keep_their_bytes_in_order",
        mixed_large_messages_keep_their_bytes_in_order,
    ),
    (
        "a_child_hands_its_parent_an_unnamed_file",
        a_child_hands_its_parent_an_unnamed_file,
    ),
    (
        "failures_are_reported_and_others_deliver",
        failures_are_reported_and_others_deliver,
    ),
    (
        "a_child_still_exiting_holds_up_no_other",
        a_child_still_exiting_holds_up_no_other,
    ),
    (
        "pmap_reports_failures_in_their_slots",
        pmap_reports_failures_in_their_slots,
    ),
    (
        "child_keeps_only_its_own_channel",
        child_keeps_only_its_own_channel,
    ),
    (
        "refuses_to_fork_while_multi_threaded",
        refuses_to_fork_while_multi_threaded,
    ),
    (
        "parent_output_is_not_duplicated_by_children",
        parent_output_is_not_duplicated_by_children,
    ),
    (
        "thousands_of_children_leave_no_zombies_or_fds",
        thousands_of_children_leave_no_zombies_or_fds,
    ),
];

fn main() -> std::process::ExitCode {
    if std::env::args().skip(1).any(|a| a == STDOUT_SCENARIO) {
        stdout_scenario();
        return std::process::ExitCode::SUCCESS;
    }
    let mut args = libtest_mimic::Arguments::from_args();
    // Forking needs a process of one thread: every test runs on the main
    // thread, one after the other, whatever --test-threads asks.
    args.test_threads = Some(1);

    // Children report panics over their channel; only the harness's own
    // process prints them, so the output stays readable.
    let harness = std::process::id();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::process::id() == harness {
            default_hook(info);
        }
    }));

    let trials = TESTS
        .iter()
        .map(|&(name, test)| {
            libtest_mimic::Trial::test(name, move || {
                let outcome = catch_unwind(AssertUnwindSafe(test));
                if std::process::id() != harness {
                    // A child escaped its test; it must not run the others.
                    // SAFETY: ends this forked copy without running the parent's cleanup.
                    unsafe { libc::_exit(70) }
                }
                outcome.map_err(|_| "panicked (message above)".into())
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}

// ---------------------------------------------------------------- helpers

fn sum_of_squares(k: u64) -> u64 {
    (k * 1000..(k + 1) * 1000).map(|x| x * x).sum()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Writes raw bytes to the parent, bypassing the framing.
fn write_raw<Tx, Rx>(channel: &Channel<Tx, Rx>, bytes: &[u8]) {
    let mut file = std::fs::File::from(channel.as_fd().try_clone_to_owned().unwrap());
    file.write_all(bytes).unwrap();
}

fn raw_header(len: u64) -> Vec<u8> {
    let mut bytes = len.to_le_bytes().to_vec();
    bytes.push(0);
    bytes
}

// ---------------------------------------------------------------- pprocess demos

/// The child's side of the create and start loops: check 0..limit arrive in
/// order, then reply "Done".
fn count_up(channel: &mut Channel<String, u32>, limit: u32) -> std::result::Result<(), String> {
    for expected in 0..limit {
        let got = channel.receive().map_err(|e| e.to_string())?;
        if got != expected {
            return Err(format!("expected {expected}, got {got}"));
        }
    }
    channel.send(&"Done".to_owned()).map_err(|e| e.to_string())
}

fn create_loop_sends_and_replies() {
    match create::<u32, String>().unwrap() {
        Fork::Child(mut channel) => {
            let code = if count_up(&mut channel, 100).is_ok() {
                0
            } else {
                2
            };
            exit(channel, code)
        }
        Fork::Parent(mut channel) => {
            assert!(channel.pid().is_some());
            for i in 0..100 {
                channel.send(&i).unwrap();
            }
            assert_eq!(channel.receive().unwrap(), "Done");
            assert!(matches!(channel.receive(), Err(Error::Closed { .. })));
            assert_eq!(channel.close().unwrap(), Exit::Code(0));
        }
    }
}

fn start_loop_sends_and_replies() {
    let mut channel: Channel<u32, String> = start(
        |channel: &mut Channel<String, u32>, limit| count_up(channel, limit).unwrap(),
        100,
    )
    .unwrap();
    for i in 0..100 {
        channel.send(&i).unwrap();
    }
    assert_eq!(channel.receive().unwrap(), "Done");
    assert_eq!(channel.close().unwrap(), Exit::Code(0));
}

fn limited_exchange_delivers_every_value_once() {
    const CHILDREN: u64 = 12;
    let mut exchange: Exchange<(), (u64, u64)> = Exchange::with_limit(3);
    for k in 0..CHILDREN {
        exchange
            .start(
                |channel: &mut Channel<(u64, u64), ()>, k| {
                    channel.send(&(k, sum_of_squares(k))).unwrap()
                },
                k,
            )
            .unwrap();
        assert!(exchange.active() <= 3);
    }
    assert_eq!(exchange.active() + exchange.queued(), CHILDREN as usize);

    // Half by hand, watching the limit; the rest through finish.
    let mut values = Vec::new();
    let mut finished = 0;
    let mut record = |event: Event<(u64, u64)>| match event {
        Event::Message { value, .. } => values.push(value),
        Event::Finished { .. } => finished += 1,
        Event::Failed { error, .. } => panic!("a child failed: {error}"),
    };
    let mut seen = 0;
    while seen < CHILDREN / 2 {
        for event in exchange.wait(None).unwrap() {
            seen += u64::from(matches!(event, Event::Finished { .. }));
            record(event);
        }
        assert!(
            exchange.active() <= 3,
            "limit exceeded: {}",
            exchange.active()
        );
    }
    exchange.finish(&mut record).unwrap();
    assert_eq!((exchange.active(), exchange.queued()), (0, 0));
    assert_eq!(finished, CHILDREN);
    values.sort();
    let expected: Vec<(u64, u64)> = (0..CHILDREN).map(|k| (k, sum_of_squares(k))).collect();
    assert_eq!(values, expected);
}

/// pprocess's reusable processes: each child answers work items until the
/// parent shuts down its sending side.
fn reusable_children_answer_work_on_one_channel() {
    let mut exchange: Exchange<u64, u64> = Exchange::new();
    for _ in 0..4 {
        exchange
            .start(
                |channel: &mut Channel<u64, u64>, ()| loop {
                    match channel.receive() {
                        Ok(x) => channel.send(&(x * x + 1)).unwrap(),
                        Err(Error::Closed { .. }) => break,
                        Err(e) => panic!("{e}"),
                    }
                },
                (),
            )
            .unwrap();
    }
    let mut work = 0..40u64;
    let mut outstanding: HashMap<Pid, VecDeque<u64>> = HashMap::new();
    for pid in exchange.pids() {
        let x = work.next().unwrap();
        exchange.channel(pid).unwrap().send(&x).unwrap();
        outstanding.entry(pid).or_default().push_back(x);
    }
    let mut answered = Vec::new();
    let mut finished = 0;
    while exchange.active() > 0 {
        for event in exchange.wait(None).unwrap() {
            match event {
                Event::Message { pid, value } => {
                    let x = outstanding.get_mut(&pid).unwrap().pop_front().unwrap();
                    assert_eq!(value, x * x + 1, "wrong answer from {pid}");
                    answered.push(x);
                    let channel = exchange.channel(pid).unwrap();
                    match work.next() {
                        Some(next) => {
                            channel.send(&next).unwrap();
                            outstanding.get_mut(&pid).unwrap().push_back(next);
                        }
                        None => channel.close_send().unwrap(),
                    }
                }
                Event::Finished { .. } => finished += 1,
                Event::Failed { error, .. } => panic!("{error}"),
            }
        }
    }
    answered.sort();
    assert_eq!(answered, (0..40).collect::<Vec<_>>());
    assert_eq!(finished, 4);
}

fn wait_times_out_with_no_events() {
    let mut exchange: Exchange<(), ()> = Exchange::new();
    assert!(exchange
        .wait(Some(Duration::from_secs(5)))
        .unwrap()
        .is_empty());
    exchange
        .start(
            |_: &mut Channel<(), ()>, ()| std::thread::sleep(Duration::from_millis(300)),
            (),
        )
        .unwrap();
    let started = Instant::now();
    assert!(exchange
        .wait(Some(Duration::from_millis(20)))
        .unwrap()
        .is_empty());
    assert!(started.elapsed() < Duration::from_millis(250));
    assert_eq!(exchange.ready(Some(Duration::ZERO)).unwrap(), vec![]);
    let mut finished = false;
    exchange
        .finish(|event| finished = matches!(event, Event::Finished { .. }))
        .unwrap();
    assert!(finished);
}

// ---------------------------------------------------------------- pmap and Queue

/// A pause that varies from item to item, so children finish out of order.
fn jitter(i: u64) -> Duration {
    Duration::from_millis((i * 7919 + 13) % 7 * 4)
}

fn pmap_keeps_input_order() {
    for limit in [1, 2, 3, 7] {
        let results = pmap(
            |i: u64| {
                std::thread::sleep(jitter(i));
                i * i
            },
            0..12u64,
            limit,
        );
        let values: Vec<u64> = results.into_iter().map(|r| r.unwrap()).collect();
        let expected: Vec<u64> = (0..12).map(|i| i * i).collect();
        assert_eq!(values, expected, "limit {limit}");
    }
    assert!(pmap(|i: u64| i, Vec::new(), 3).is_empty());
}

fn queue_yields_every_result() {
    let mut queue = Queue::with_limit(3);
    for i in 0..20u64 {
        queue
            .start(move || {
                std::thread::sleep(jitter(i));
                i * 3
            })
            .unwrap();
    }
    let mut values: Vec<u64> = queue.map(|r| r.unwrap()).collect();
    values.sort();
    assert_eq!(values, (0..20).map(|i| i * 3).collect::<Vec<_>>());
}

// ---------------------------------------------------------------- big messages

#[derive(Serialize, Deserialize, PartialEq)]
struct Blob {
    #[serde(with = "serde_bytes")]
    bytes: Vec<u8>,
}

fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

fn big_message_round_trip_is_exact() {
    const SIZE: usize = 300 << 20;
    let mut channel: Channel<Blob, Blob> = start(
        |channel: &mut Channel<Blob, Blob>, ()| {
            let blob = channel.receive().unwrap();
            channel.send(&blob).unwrap();
        },
        (),
    )
    .unwrap();
    let original = Blob {
        bytes: (0..SIZE).map(|i| (i ^ (i >> 11)) as u8).collect(),
    };
    let sum = checksum(&original.bytes);
    let started = Instant::now();
    channel.send(&original).unwrap();
    let echoed = channel.receive().unwrap();
    let took = started.elapsed();
    assert_eq!(echoed.bytes.len(), SIZE);
    assert_eq!(checksum(&echoed.bytes), sum);
    assert!(echoed == original);
    assert_eq!(channel.close().unwrap(), Exit::Code(0));
    println!("    300 MiB there and back in {:.2} s", took.as_secs_f64());
}

/// Large messages are encoded straight onto the socket: small fields
/// buffered, large byte fields written directly. Fields of every size in a
/// row must still arrive in order.
#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Mixed {
    head: Vec<u32>,
    #[serde(with = "serde_bytes")]
    first: Vec<u8>,
    middle: String,
    #[serde(with = "serde_bytes")]
    second: Vec<u8>,
    #[serde(with = "serde_bytes")]
    small: Vec<u8>,
    tail: u64,
}

fn mixed_large_messages_keep_their_bytes_in_order() {
    let mut channel: Channel<Mixed, Mixed> = start(
        |channel: &mut Channel<Mixed, Mixed>, ()| {
            while let Ok(value) = channel.receive() {
                channel.send(&value).unwrap();
            }
        },
        (),
    )
    .unwrap();
    let bytes = |n: usize, seed: usize| (0..n).map(|i| (i * 7 + seed) as u8).collect::<Vec<u8>>();
    // Around the 1 MiB streaming threshold and its half.
    for (first, second) in [
        (700 << 10, 600 << 10),
        (520 << 10, 10),
        (3 << 20, 600 << 10),
        (10, 2 << 20),
    ] {
        let sent = Mixed {
            head: (0..1000).collect(),
            first: bytes(first, 1),
            middle: "m".repeat(5000),
            second: bytes(second, 2),
            small: bytes(100, 3),
            tail: 42,
        };
        channel.send(&sent).unwrap();
        assert_eq!(
            channel.receive().unwrap(),
            sent,
            "{first} and {second} bytes"
        );
    }
    drop(channel);
}

/// A file a child made and wrote, with no name, reaches the parent with a
/// message; other messages around it carry none.
fn a_child_hands_its_parent_an_unnamed_file() {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut exchange: Exchange<(), String> = Exchange::new();
    for n in 0..3u32 {
        exchange
            .start(
                move |channel: &mut Channel<String, ()>, n: u32| {
                    channel.send(&format!("plain {n}")).unwrap();
                    let mut file = tempfile::tempfile().unwrap();
                    writeln!(file, "written by child {n}").unwrap();
                    channel
                        .send_with_fd(&format!("file {n}"), file.as_fd())
                        .unwrap();
                    channel.send(&format!("after {n}")).unwrap();
                },
                n,
            )
            .unwrap();
    }
    let mut files = 0;
    let mut plain = 0;
    while exchange.active() > 0 {
        for event in exchange.wait(None).unwrap() {
            let Event::Message { pid, value } = event else {
                continue;
            };
            let channel = exchange.channel(pid).unwrap();
            match value.strip_prefix("file ") {
                Some(n) => {
                    let fd = channel.take_fd().expect("a descriptor came with the file");
                    let mut file = std::fs::File::from(fd);
                    file.seek(SeekFrom::Start(0)).unwrap();
                    let mut text = String::new();
                    file.read_to_string(&mut text).unwrap();
                    assert_eq!(text, format!("written by child {n}\n"));
                    files += 1;
                }
                None => {
                    assert!(
                        channel.take_fd().is_none(),
                        "{value} came with a descriptor"
                    );
                    plain += 1;
                }
            }
        }
    }
    assert_eq!((files, plain), (3, 6));
}

// ---------------------------------------------------------------- failures

fn failures_are_reported_and_others_deliver() {
    let mut exchange: Exchange<(), u32> = Exchange::new();
    let mut good = Vec::new();
    let mut add_good = |exchange: &mut Exchange<(), u32>, value: u32| {
        let channel = start(
            |channel: &mut Channel<u32, ()>, value| channel.send(&value).unwrap(),
            value,
        )
        .unwrap();
        good.push((channel.pid().unwrap(), value));
        exchange.add(channel);
    };
    let add = |exchange: &mut Exchange<(), u32>, f: fn(&mut Channel<u32, ()>)| {
        let channel = start(move |channel: &mut Channel<u32, ()>, ()| f(channel), ()).unwrap();
        let pid = channel.pid().unwrap();
        exchange.add(channel);
        pid
    };

    add_good(&mut exchange, 1);
    let panicked = add(&mut exchange, |_| panic!("boom {}", 42));
    add_good(&mut exchange, 2);
    let killed = add(&mut exchange, |channel| {
        let mut bytes = raw_header(1 << 20);
        bytes.extend_from_slice(b"a few bytes");
        write_raw(channel, &bytes);
        raise(Signal::SIGKILL).unwrap();
    });
    let truncated = add(&mut exchange, |channel| {
        let mut bytes = raw_header(100);
        bytes.extend_from_slice(&[7; 10]);
        write_raw(channel, &bytes);
    });
    let oversized = add(&mut exchange, |channel| {
        write_raw(channel, &raw_header(1 << 40));
        // Stay alive with the frame unfinished: the parent must not wait for it.
        std::thread::sleep(Duration::from_secs(30));
    });
    let exited = match create::<(), u32>().unwrap() {
        Fork::Child(channel) => exit(channel, 3),
        Fork::Parent(channel) => {
            let pid = channel.pid().unwrap();
            exchange.add(channel);
            pid
        }
    };
    add_good(&mut exchange, 3);

    let resident_before = resident_bytes();
    let started = Instant::now();
    let mut messages = Vec::new();
    let mut finished = Vec::new();
    let mut failed = HashMap::new();
    exchange
        .finish(|event| match event {
            Event::Message { pid, value } => messages.push((pid, value)),
            Event::Finished { pid } => finished.push(pid),
            Event::Failed { pid, error } => {
                assert_eq!(error.pid(), Some(pid), "{error}");
                assert!(error.to_string().contains(&pid.to_string()), "{error}");
                failed.insert(pid, error);
            }
        })
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(resident_bytes() < resident_before + (64 << 20));

    messages.sort();
    good.sort();
    assert_eq!(messages, good);
    finished.sort();
    assert_eq!(
        finished,
        good.iter().map(|(pid, _)| *pid).collect::<Vec<_>>()
    );
    assert_eq!(failed.len(), 5);
    match &failed[&panicked] {
        Error::Panicked { pid, message } => {
            assert_eq!(*pid, panicked);
            assert!(message.contains("boom 42"), "{message}");
        }
        other => panic!("expected Panicked, got {other}"),
    }
    match &failed[&killed] {
        Error::Truncated { expected, got, .. } => {
            assert_eq!(*expected, 9 + (1 << 20));
            assert_eq!(*got, 9 + 11);
        }
        Error::Died { exit, .. } => assert_eq!(*exit, Exit::Signal(Signal::SIGKILL)),
        other => panic!("expected Truncated or Died, got {other}"),
    }
    assert!(
        matches!(
            failed[&truncated],
            Error::Truncated {
                expected: 109,
                got: 19,
                ..
            }
        ),
        "{}",
        failed[&truncated]
    );
    assert!(
        matches!(failed[&oversized], Error::FrameTooLarge { len, .. } if len == 1 << 40),
        "{}",
        failed[&oversized]
    );
    // Read by users of programs built on the runtime: no advice about its API.
    let said = failed[&oversized].to_string();
    assert!(
        !said.contains("Channel::") && !said.contains("set_frame_limit"),
        "{said}"
    );
    assert!(
        matches!(
            failed[&exited],
            Error::Died {
                exit: Exit::Code(3),
                ..
            }
        ),
        "{}",
        failed[&exited]
    );
}

/// A child that has closed its channel but is still exiting (as a worker
/// giving back its memory does) is reported once it has exited, and `wait`
/// serves the other children meanwhile; one that never exits is killed
/// after the grace period.
fn a_child_still_exiting_holds_up_no_other() {
    let mut exchange: Exchange<(), u32> = Exchange::new();
    let mut add = |f: fn(&mut Channel<u32, ()>)| {
        let channel = start(move |channel: &mut Channel<u32, ()>, ()| f(channel), ()).unwrap();
        let pid = channel.pid().unwrap();
        exchange.add(channel);
        pid
    };
    let slow = add(|channel| {
        channel.close_send().unwrap();
        std::thread::sleep(Duration::from_millis(600));
    });
    let stuck = add(|channel| {
        channel.close_send().unwrap();
        std::thread::sleep(Duration::from_secs(30));
    });
    let quick = add(|channel| {
        std::thread::sleep(Duration::from_millis(100));
        channel.send(&7).unwrap();
    });
    assert_eq!(exchange.active(), 3);

    let started = Instant::now();
    let mut events = Vec::new();
    exchange
        .finish(|event| {
            events.push(match event {
                Event::Message { pid, value } => (pid, format!("sent {value}")),
                Event::Finished { pid } => (pid, "finished".into()),
                Event::Failed { pid, error } => (pid, error.to_string()),
            })
        })
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(exchange.active(), 0);

    let at = |pid: Pid, what: &str| {
        events
            .iter()
            .position(|(p, e)| *p == pid && e.contains(what))
            .unwrap_or_else(|| panic!("no '{what}' from {pid}: {events:?}"))
    };
    // The quick child's value came while the slow one was still exiting.
    assert!(at(quick, "sent 7") < at(slow, "finished"), "{events:?}");
    assert!(at(quick, "sent 7") < at(quick, "finished"), "{events:?}");
    let killed = &events[at(stuck, "")].1;
    assert!(killed.contains("SIGKILL"), "{killed}");
    assert_eq!(events.len(), 4, "{events:?}");
}

fn pmap_reports_failures_in_their_slots() {
    let results = pmap(
        |i: u32| match i {
            1 => panic!("item one"),
            // SAFETY: ends the child at once, as a crash without a reply would.
            3 => unsafe { libc::_exit(3) },
            _ => i * 10,
        },
        0..5u32,
        2,
    );
    assert_eq!(results.len(), 5);
    for (i, result) in results.iter().enumerate() {
        match (i, result) {
            (1, Err(Error::Panicked { message, .. })) => assert!(message.contains("item one")),
            (3, Err(Error::NoReply { exit, .. })) => assert_eq!(*exit, Exit::Code(3)),
            (_, Ok(value)) => assert_eq!(*value, i as u32 * 10),
            (_, other) => panic!("slot {i}: unexpected {other:?}"),
        }
    }
}

// ---------------------------------------------------------------- fork hygiene

fn child_keeps_only_its_own_channel() {
    // A child that reports the fds it holds.
    let mut lister: Channel<(), (i32, Vec<i32>)> = start(
        |channel: &mut Channel<(i32, Vec<i32>), ()>, ()| {
            use std::os::fd::AsRawFd;
            let fds = std::fs::read_dir("/proc/self/fd")
                .unwrap()
                .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
                .collect();
            channel.send(&(channel.as_raw_fd(), fds)).unwrap();
        },
        (),
    )
    .unwrap();
    let (own, fds) = lister.receive().unwrap();
    let extra: Vec<i32> = fds
        .iter()
        .copied()
        .filter(|&fd| fd > 2 && fd != own)
        .collect();
    // One extra is read_dir's own descriptor.
    assert!(
        extra.len() <= 1,
        "child holds {fds:?}, its channel is {own}"
    );
    lister.close().unwrap();

    // A sibling started later must not keep the first child's channel open:
    // closing it must end the first child without the one-second kill.
    let waiter: Channel<(), ()> = start(
        |channel: &mut Channel<(), ()>, ()| {
            assert!(matches!(channel.receive(), Err(Error::Closed { .. })));
        },
        (),
    )
    .unwrap();
    let sibling: Channel<(), ()> = start(
        |channel: &mut Channel<(), ()>, ()| {
            let _ = channel.receive();
        },
        (),
    )
    .unwrap();
    let started = Instant::now();
    assert_eq!(waiter.close().unwrap(), Exit::Code(0));
    assert!(started.elapsed() < Duration::from_millis(900));
    assert_eq!(sibling.close().unwrap(), Exit::Code(0));
}

fn refuses_to_fork_while_multi_threaded() {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let _ = stopped.recv();
    });
    let refused = start(|_: &mut Channel<(), ()>, ()| {}, ());
    assert!(
        matches!(refused, Err(Error::MultiThreaded { threads: 2 })),
        "{refused:?}"
    );
    let results = pmap(|i: u32| i, 0..3u32, 2);
    assert!(results
        .iter()
        .all(|r| matches!(r, Err(Error::MultiThreaded { .. }))));
    drop(stop);
    thread.join().unwrap();
    ensure_single_threaded().unwrap();
    let channel: Channel<(), ()> = start(|_: &mut Channel<(), ()>, ()| {}, ()).unwrap();
    assert_eq!(channel.close().unwrap(), Exit::Code(0));
}

/// Run as a subprocess: leaves text in stdout's buffer, then forks a child that
/// prints. The text must reach the output once.
fn stdout_scenario() {
    print!("{MARKER} ");
    let channel: Channel<(), ()> =
        start(|_: &mut Channel<(), ()>, ()| println!("child line"), ()).unwrap();
    channel.close().unwrap();
    println!("parent line");
}

fn parent_output_is_not_duplicated_by_children() {
    let output = Command::new(std::env::current_exe().unwrap())
        .arg(STDOUT_SCENARIO)
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.matches(MARKER).count(), 1, "{stdout}");
    assert_eq!(stdout.matches("child line").count(), 1, "{stdout}");
    assert_eq!(stdout.matches("parent line").count(), 1, "{stdout}");
}

fn thousands_of_children_leave_no_zombies_or_fds() {
    const CHILDREN: u32 = 5000;
    let fds_before = open_fds();
    let mut exchange: Exchange<(), u32> = Exchange::with_limit(8);
    for i in 0..CHILDREN {
        exchange
            .start(
                |channel: &mut Channel<u32, ()>, i| channel.send(&i).unwrap(),
                i,
            )
            .unwrap();
    }
    let mut seen = vec![false; CHILDREN as usize];
    let mut finished = 0;
    exchange
        .finish(|event| match event {
            Event::Message { value, .. } => {
                assert!(!std::mem::replace(&mut seen[value as usize], true));
            }
            Event::Finished { .. } => finished += 1,
            Event::Failed { pid, error } => panic!("child {pid}: {error}"),
        })
        .unwrap();
    assert_eq!(finished, CHILDREN);
    assert!(seen.iter().all(|&s| s));

    // An Exchange dropped with live, queued and blocked children reaps them too.
    let mut dropped: Exchange<(), ()> = Exchange::with_limit(4);
    for _ in 0..6 {
        dropped
            .start(
                |channel: &mut Channel<(), ()>, ()| {
                    let _ = channel.receive();
                },
                (),
            )
            .unwrap();
    }
    let live = dropped.pids();
    assert_eq!((live.len(), dropped.queued()), (4, 2));
    drop(dropped);

    assert_eq!(
        waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)),
        Err(Errno::ECHILD),
        "a child was left unreaped"
    );
    assert_eq!(open_fds(), fds_before);
}
