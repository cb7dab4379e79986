//! The index-file loader on arbitrary bytes (issue 5): `check_bytes` parses
//! `data` as an index file and, if it is accepted, walks every word, count
//! and location. Whatever the bytes, it must return, never panic, hang, or
//! allocate from a length it has not checked against the input's size.
//! Either result is fine here; only a crash, a timeout or an out-of-memory
//! (see `-malloc_limit_mb` in run.sh) is a finding.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = indexer::store::check_bytes(data);
});
