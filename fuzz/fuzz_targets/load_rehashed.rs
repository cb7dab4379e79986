//! The loader past its checksums. Every section of an index file carries an
//! xxh3 checksum and the header one of its own, so almost every mutation of
//! a real file is refused by `Container::open` before the decoders behind
//! it see a byte: the `load` target mostly explores the container checks.
//! Here the input is first made consistent, as a writer would leave it
//! (file length, each in-bounds section's checksum, then the header's),
//! and only then handed to `check_bytes`, so the meta, file table,
//! vocabulary, counts, offsets, posting lists and delta records are fuzzed
//! with arbitrary contents.
//!
//! This mirrors the container layout documented in src/store/format.rs;
//! if that layout changes, change `rehash` with it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use xxhash_rust::xxh3::xxh3_64;

const MAGIC: &[u8; 8] = b"\x89IDX\r\n\x1a\n";
const FIXED_HEADER: usize = 32;
const SECTION_ENTRY: usize = 32;
const MAX_SECTIONS: usize = 64;

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// Rewrites the length field and the checksums of `bytes` in place when its
/// header and section table are readable; leaves anything else as it is.
fn rehash(bytes: &mut [u8]) {
    if bytes.len() < FIXED_HEADER || &bytes[..8] != MAGIC {
        return;
    }
    let count = u32::from_le_bytes(bytes[16..20].try_into().unwrap()) as usize;
    if count > MAX_SECTIONS {
        return;
    }
    let table_end = FIXED_HEADER + count * SECTION_ENTRY;
    if bytes.len() < table_end + 8 {
        return;
    }
    let len = bytes.len() as u64;
    bytes[24..32].copy_from_slice(&len.to_le_bytes());
    for k in 0..count {
        let at = FIXED_HEADER + k * SECTION_ENTRY;
        let (offset, length) = (u64_at(bytes, at + 8), u64_at(bytes, at + 16));
        if let Some(end) = offset.checked_add(length).filter(|&e| e <= len) {
            let hash = xxh3_64(&bytes[offset as usize..end as usize]);
            bytes[at + 24..at + 32].copy_from_slice(&hash.to_le_bytes());
        }
    }
    let hash = xxh3_64(&bytes[..table_end]);
    bytes[table_end..table_end + 8].copy_from_slice(&hash.to_le_bytes());
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    rehash(&mut bytes);
    let _ = indexer::store::check_bytes(&bytes);
});
