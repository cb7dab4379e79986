//! An index saved in shards: the form a build spread over machines
//! (`indexer-mpi`) writes, where each machine merges one range of the
//! vocabulary and no machine ever holds the whole index.
//!
//! ```text
//! FILE              the manifest: the index's description, then its parts
//!                   in word order, each with its file name, its first word
//!                   and the hash of its header
//! FILE.part-K-of-R  part K: a whole index file of its own (every file's
//!                   record, the words of its range and their lists)
//! ```
//!
//! The manifest is written last, atomically, so until it is renamed into
//! place a previous index at FILE stays whole. A part's header hash covers
//! its section table, which holds every section's hash (and a lazy
//! section's chunk hashes are a section of their own): a manifest pins the
//! exact bytes of its parts, and a part from another build or another save
//! is refused at open, before any answer. Opened, the parts are the layers
//! of a [`View::sharded`], which answers as the one index they were cut
//! from.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::format::{section, Container, Damage, Decoder, Encoder, FormatError, Part, Writer};
use super::segment::{self, decode_meta, encode_meta, Destination, Meta, Segment};
use super::{base_meta, map, release_pages, remove_if_index, Saved, StoreError};
use crate::index::{Damaged, Hit, View};
use crate::store::FileRecord;

/// What the manifest says of one part (serializable, for the ranks that
/// write the parts to tell the one that writes the manifest).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartInfo {
    /// Its file name, in the manifest's folder.
    pub name: String,
    /// The first word of its range (empty for the first part): words from
    /// it up to the next part's first word are in this part.
    pub first_word: Vec<u8>,
    /// Distinct words it holds.
    pub words: u64,
    /// Its header hash (see the module docs).
    pub header_hash: u64,
    /// Its length in bytes.
    pub bytes: u64,
}

/// What is wrong with a part a manifest names.
#[derive(Debug)]
pub enum PartProblem {
    /// It is not there.
    Missing,
    /// It could not be read.
    Io(std::io::Error),
    /// It is not a readable index file.
    Format(FormatError),
    /// It is an index file, but not the one the manifest was written with.
    Stale,
}

impl fmt::Display for PartProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartProblem::Missing => write!(f, "is missing"),
            PartProblem::Io(e) => write!(f, "cannot be read: {e}"),
            PartProblem::Format(e) => e.fmt(f),
            PartProblem::Stale => write!(f, "is not the part this index was saved with"),
        }
    }
}

/// A new description for an index of `root` (canonical) to be saved at
/// `path`: the one its parts and manifest share.
pub fn new_meta(path: &Path, root: &Path, excludes: &[String]) -> Meta {
    base_meta(path, root, excludes)
}

/// `FILE.part-K-of-R`, part `k` (from 1) of `of`.
pub fn part_path(path: &Path, k: usize, of: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".part-{k}-of-{of}"));
    PathBuf::from(name)
}

fn encode_parts(parts: &[PartInfo]) -> Vec<u8> {
    let mut e = Encoder::default();
    e.u32(parts.len() as u32);
    for part in parts {
        e.bytes(part.name.as_bytes());
        e.bytes(&part.first_word);
        e.u64(part.words);
        e.u64(part.header_hash);
        e.u64(part.bytes);
    }
    e.bytes
}

fn decode_parts(bytes: &[u8]) -> Option<Vec<PartInfo>> {
    let mut d = Decoder::new(bytes);
    let n = d.u32()? as usize;
    // Each entry takes at least 32 bytes: bound before allocating.
    let mut parts = Vec::with_capacity(n.min(d.remaining() / 32));
    for _ in 0..n {
        let name = String::from_utf8(d.bytes()?.to_vec()).ok()?;
        // A bare file name: a manifest cannot point outside its folder.
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return None;
        }
        parts.push(PartInfo {
            name,
            first_word: d.bytes()?.to_vec(),
            words: d.u64()?,
            header_hash: d.u64()?,
            bytes: d.u64()?,
        });
    }
    let ascending = parts
        .windows(2)
        .all(|pair| pair[0].first_word < pair[1].first_word || pair[1].words == 0);
    (d.remaining() == 0 && !parts.is_empty() && ascending).then_some(parts)
}

/// True if an opened container is a manifest rather than an index.
pub(super) fn is_manifest(container: &Container) -> bool {
    container.section(section::PARTS).is_some()
}

/// The parts a manifest at `path` names, opened and checked against it,
/// in word order.
pub(super) fn open_parts(path: &Path, manifest: &Container) -> Result<Vec<Segment>, StoreError> {
    let damaged = |what| StoreError::Format(path.into(), FormatError::Damaged(what));
    let meta = manifest
        .section(section::META)
        .and_then(|bytes| decode_meta(&bytes))
        .ok_or(damaged(Damage::Malformed(Part::Description)))?;
    let parts = manifest
        .section(section::PARTS)
        .and_then(|bytes| decode_parts(&bytes))
        .ok_or(damaged(Damage::Malformed(Part::PartList)))?;
    let folder = super::format::folder_of(path);
    let mut segments = Vec::with_capacity(parts.len());
    for info in &parts {
        let file = folder.join(&info.name);
        let problem = |problem| StoreError::Part {
            index: path.into(),
            part: file.clone(),
            problem,
        };
        let owner = match map(&file) {
            Ok(Some(owner)) => owner,
            Ok(None) => return Err(problem(PartProblem::Missing)),
            Err(StoreError::Format(_, e)) => return Err(problem(PartProblem::Format(e))),
            Err(StoreError::Io(_, _, e)) => return Err(problem(PartProblem::Io(e))),
            Err(e) => return Err(e),
        };
        let container = Container::open(owner, Some(release_pages))
            .map_err(|e| problem(PartProblem::Format(e)))?;
        if container.header_hash() != info.header_hash {
            return Err(problem(PartProblem::Stale));
        }
        let segment =
            segment::read_container(container).map_err(|e| problem(PartProblem::Format(e)))?;
        let same_files = segments
            .first()
            .is_none_or(|first: &Segment| first.records.len() == segment.records.len());
        if segment.meta.base_id != meta.base_id || !same_files {
            return Err(problem(PartProblem::Stale));
        }
        segments.push(segment);
    }
    Ok(segments)
}

/// Writes `hits` of `view` (one range of its words, ascending) as part
/// `k` of `of` of the index at `path`, described by `meta` (the same for
/// every part and the manifest), over the files `records`.
pub fn save_part(
    path: &Path,
    k: usize,
    of: usize,
    meta: &Meta,
    view: &View,
    hits: &[Hit],
    records: &[FileRecord],
) -> Result<PartInfo, StoreError> {
    let file = part_path(path, k, of);
    let written = segment::write_hits(
        Destination::File(&file),
        view,
        hits,
        records,
        meta,
        &[],
        &[],
    )
    .map_err(|e| super::write_error(&file, e))?;
    // Its header hash, as written, for the manifest.
    let segment::Written::File(committed) = written else {
        let e = std::io::Error::other("a part was not written to its file");
        return Err(StoreError::Io(file, "write", e));
    };
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(PartInfo {
        name,
        first_word: match (k, hits.first()) {
            (2.., Some(hit)) => view
                .word_bytes(hit)
                .map_err(|_| super::write_error(&file, segment::WriteError::DamagedSource))?
                .into_owned(),
            _ => Vec::new(),
        },
        words: hits.len() as u64,
        header_hash: committed.header_hash,
        bytes: committed.len,
    })
}

/// Writes the manifest at `path` naming `parts` (in word order), then
/// removes the parts of earlier saves it does not name and any delta.
pub fn save_manifest(path: &Path, meta: &Meta, parts: &[PartInfo]) -> Result<u64, StoreError> {
    let io = |action, e| StoreError::Io(path.into(), action, e);
    let mut writer = Writer::create(path, 2).map_err(|e| io("write", e))?;
    writer
        .section(section::META, &encode_meta(meta))
        .map_err(|e| io("write", e))?;
    writer
        .section(section::PARTS, &encode_parts(parts))
        .map_err(|e| io("write", e))?;
    let bytes = writer.commit().map_err(|e| io("write", e))?.len;
    let keep: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
    remove_stale_parts(path, &keep);
    remove_if_index(&super::delta_path(path));
    Ok(bytes)
}

/// Removes `FILE.part-*` files not named in `keep`: parts of an earlier
/// save of `path`, sharded otherwise or not at all.
pub fn remove_stale_parts(path: &Path, keep: &[&str]) {
    let Some(name) = path.file_name() else {
        return;
    };
    let prefix = format!("{}.part-", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(super::format::folder_of(path)) else {
        return;
    };
    for entry in entries.flatten() {
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        let is_part = entry_name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split_once("-of-"))
            .is_some_and(|(k, of)| {
                k.bytes().all(|b| b.is_ascii_digit()) && of.bytes().all(|b| b.is_ascii_digit())
            });
        if is_part && !keep.contains(&entry_name.as_str()) {
            remove_if_index(&entry.path());
        }
    }
}

/// Where `view`'s words are cut into `parts` ranges of about equal
/// occurrences: the first hit of each range after the first.
fn cuts(view: &View, hits: &[Hit], parts: usize) -> Result<Vec<usize>, Damaged> {
    let counts = hits
        .iter()
        .map(|h| view.count(h))
        .collect::<Result<Vec<u64>, Damaged>>()?;
    let total: u64 = counts.iter().sum();
    let mut cuts = Vec::with_capacity(parts.saturating_sub(1));
    let mut seen = 0u64;
    let mut next = 1;
    for (i, count) in counts.iter().enumerate() {
        while next < parts && seen * parts as u64 >= total * next as u64 {
            cuts.push(i);
            next += 1;
        }
        seen += count;
    }
    while cuts.len() < parts.saturating_sub(1) {
        cuts.push(hits.len());
    }
    Ok(cuts)
}

/// Saves a fresh build's `view` at `path` in `parts` shards of about
/// equal occurrences and their manifest: what `indexer-mpi` writes, made
/// on one machine (for tests and for splitting an index to share).
pub fn save_sharded(
    path: &Path,
    root: &Path,
    excludes: &[String],
    view: &View,
    records: &[FileRecord],
    parts: usize,
) -> Result<Saved, StoreError> {
    let started = Instant::now();
    let parts = parts.max(1);
    let meta = base_meta(path, root, excludes);
    let damaged = |Damaged| super::write_error(path, segment::WriteError::DamagedSource);
    let hits = view
        .hits(|v| crate::index::Picks::span(0..v.len()))
        .map_err(damaged)?;
    let mut bounds = vec![0];
    bounds.extend(cuts(view, &hits, parts).map_err(damaged)?);
    bounds.push(hits.len());
    let mut infos = Vec::with_capacity(parts);
    let mut bytes = 0;
    for k in 0..parts {
        let range = bounds[k]..bounds[k + 1].max(bounds[k]);
        let info = save_part(path, k + 1, parts, &meta, view, &hits[range], records)?;
        bytes += info.bytes;
        infos.push(info);
    }
    bytes += save_manifest(path, &meta, &infos)?;
    Ok(Saved {
        bytes,
        time: started.elapsed(),
        delta: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_lists_round_trip_and_bad_ones_are_refused() {
        let parts = vec![
            PartInfo {
                name: "x.part-1-of-2".into(),
                first_word: Vec::new(),
                words: 3,
                header_hash: 7,
                bytes: 100,
            },
            PartInfo {
                name: "x.part-2-of-2".into(),
                first_word: b"m".to_vec(),
                words: 4,
                header_hash: 8,
                bytes: 120,
            },
        ];
        assert_eq!(decode_parts(&encode_parts(&parts)), Some(parts.clone()));
        let mut escaping = parts.clone();
        escaping[1].name = "../elsewhere".into();
        assert_eq!(decode_parts(&encode_parts(&escaping)), None);
        let mut unordered = parts.clone();
        unordered[1].first_word = Vec::new();
        assert_eq!(decode_parts(&encode_parts(&unordered)), None);
        let bytes = encode_parts(&parts);
        assert_eq!(decode_parts(&bytes[..bytes.len() - 1]), None);
        assert_eq!(decode_parts(&encode_parts(&[])), None);
    }
}
