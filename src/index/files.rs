//! The file table: each file's relative path by its number.
//!
//! A fresh build holds the paths as strings. A saved index holds them in
//! its file records, and an opened index that answers one query needs the
//! paths of the files in that answer only: the stored table decodes a path
//! when it is asked for (the records' starts are stored beside them), and
//! checks only the chunks that path lies in, so opening never reads all of
//! them. A path in a damaged chunk is an error, never a wrong name.

use std::sync::Arc;

use super::bytes::{Array, Chunked};
use super::Damaged;

/// Relative paths in ascending byte order, numbered from 0.
#[derive(Debug, Clone)]
pub struct FileTable {
    names: Names,
}

#[derive(Clone)]
enum Names {
    Owned(Vec<String>),
    /// Record `i` is `bytes[starts[i]..starts[i + 1]]` (the last one ends
    /// with the bytes); `path` reads the path at the front of a record (the
    /// store's encoding). The records are shared with the store, which
    /// decodes them whole for a refresh.
    Stored {
        bytes: Arc<Chunked>,
        starts: Array<u64>,
        path: fn(&[u8]) -> Option<&str>,
    },
}

impl std::fmt::Debug for Names {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Names::Owned(v) => write!(f, "Owned({} paths)", v.len()),
            Names::Stored { starts, .. } => write!(f, "Stored({} paths)", starts.len()),
        }
    }
}

impl Default for FileTable {
    fn default() -> Self {
        FileTable::from(Vec::new())
    }
}

impl From<Vec<String>> for FileTable {
    fn from(paths: Vec<String>) -> Self {
        FileTable {
            names: Names::Owned(paths),
        }
    }
}

impl FileTable {
    /// Paths read from stored records: record `i` begins at `starts[i]`
    /// of `bytes`, and `path` reads its path. A record that cannot be read
    /// from checked bytes has the path `?`.
    pub fn stored(
        bytes: Arc<Chunked>,
        starts: Array<u64>,
        path: fn(&[u8]) -> Option<&str>,
    ) -> Self {
        FileTable {
            names: Names::Stored {
                bytes,
                starts,
                path,
            },
        }
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        match &self.names {
            Names::Owned(v) => v.len(),
            Names::Stored { starts, .. } => starts.len(),
        }
    }

    /// True when there are no files.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The path of file `i` (`?` past the end); [`Damaged`] if a chunk it
    /// lies in fails its check.
    pub fn path(&self, i: usize) -> Result<&str, Damaged> {
        match &self.names {
            Names::Owned(v) => Ok(v.get(i).map_or("?", String::as_str)),
            Names::Stored { path, .. } => Ok(self.record(i)?.and_then(path).unwrap_or("?")),
        }
    }

    /// Checks the chunks file `i`'s path lies in, without reading it.
    pub fn check(&self, i: usize) -> Result<(), Damaged> {
        self.record(i).map(|_| ())
    }

    /// Stored record `i`, its chunks checked; `None` past the end, or for
    /// checked starts out of order (not damage: a record that cannot be
    /// read).
    fn record(&self, i: usize) -> Result<Option<&[u8]>, Damaged> {
        let Names::Stored { bytes, starts, .. } = &self.names else {
            return Ok(None);
        };
        if i >= starts.len() {
            return Ok(None);
        }
        let start = starts.get(i);
        let end = match i + 1 < starts.len() {
            true => starts.get(i + 1),
            false => Some(bytes.len() as u64),
        };
        let record = start.zip(end).and_then(|(start, end)| {
            let start = usize::try_from(start).ok()?;
            bytes.get(start..usize::try_from(end).ok()?)
        });
        match record {
            None if bytes.is_damaged() || starts.is_damaged() => Err(Damaged),
            record => Ok(record),
        }
    }

    /// Every path, in order; `?` for one in a damaged chunk, so a reader
    /// of a stored table calls [`FileTable::verify`] first.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).map(|i| self.path(i).unwrap_or("?"))
    }

    /// Checks every chunk of a stored table now (a fresh one needs none).
    pub fn verify(&self) -> Result<(), Damaged> {
        match &self.names {
            Names::Owned(_) => Ok(()),
            Names::Stored { bytes, starts, .. } => match bytes.verify() && starts.verify() {
                true => Ok(()),
                false => Err(Damaged),
            },
        }
    }

    /// True when every path can be read without a check: a fresh table,
    /// or a stored one checked whole.
    pub fn is_verified(&self) -> bool {
        match &self.names {
            Names::Owned(_) => true,
            Names::Stored { bytes, starts, .. } => bytes.is_verified() && starts.is_verified(),
        }
    }

    /// Heap bytes held (none for a stored table, which is mapped).
    pub fn heap_bytes(&self) -> usize {
        match &self.names {
            Names::Owned(v) => v.iter().map(|p| p.capacity() + 24).sum(),
            Names::Stored { starts, .. } => starts.heap_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::bytes::testing::chunked;
    use proptest::prelude::*;

    /// A test record: a length byte, the path, three bytes of stamp.
    fn test_path(record: &[u8]) -> Option<&str> {
        let n = usize::from(*record.first()?);
        std::str::from_utf8(record.get(1..1 + n)?).ok()
    }

    proptest! {
        /// A stored table reads a path exactly when every chunk holding
        /// its record, and the starts of it and of the next, is sound;
        /// otherwise it says the table is damaged, never a wrong path.
        #[test]
        fn a_path_is_read_exactly_when_its_chunks_are_sound(
            paths in prop::collection::vec("[a-z/]{0,20}", 1..40),
            words_per_chunk in 1usize..6,
            broken_records in prop::option::of(0usize..120),
            broken_starts in prop::option::of(0usize..40),
        ) {
            let chunk = words_per_chunk * 8;
            let (mut records, mut starts) = (Vec::new(), Vec::new());
            for path in &paths {
                starts.push(records.len() as u64);
                records.push(path.len() as u8);
                records.extend_from_slice(path.as_bytes());
                records.extend_from_slice(&[1, 2, 3]);
            }
            let total = records.len();
            let start_bytes: Vec<u8> = starts.iter().flat_map(|s| s.to_le_bytes()).collect();
            let landed = |broken: Option<usize>, len: usize| broken.filter(|&k| k * chunk < len);
            let (bad_record_chunk, bad_start_chunk) =
                (landed(broken_records, total), landed(broken_starts, start_bytes.len()));
            let table = FileTable::stored(
                Arc::new(chunked(&records, chunk, broken_records)),
                Array::checked(chunked(&start_bytes, chunk, broken_starts)).expect("whole starts"),
                test_path,
            );
            for (i, path) in paths.iter().enumerate() {
                let start = starts[i] as usize;
                let end = starts.get(i + 1).map_or(total, |&e| e as usize);
                let record_chunks = start / chunk..end.div_ceil(chunk);
                let mut start_chunks = vec![i * 8 / chunk];
                if i + 1 < paths.len() {
                    start_chunks.push((i + 1) * 8 / chunk);
                }
                let damaged = bad_record_chunk.is_some_and(|k| record_chunks.contains(&k))
                    || bad_start_chunk.is_some_and(|k| start_chunks.contains(&k));
                match table.path(i) {
                    Ok(got) => {
                        prop_assert!(!damaged, "file {} read from a damaged chunk", i);
                        prop_assert_eq!(got, path.as_str());
                    }
                    Err(Damaged) => prop_assert!(damaged, "file {} refused, its chunks sound", i),
                }
            }
            prop_assert_eq!(table.path(paths.len()), Ok("?"));
            let sound = bad_record_chunk.is_none() && bad_start_chunk.is_none();
            prop_assert_eq!(table.verify().is_ok(), sound);
            prop_assert_eq!(table.is_verified(), sound);
        }
    }
}
