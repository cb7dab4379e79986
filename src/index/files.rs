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
        match &self.names {
            Names::Owned(_) => Ok(()),
            Names::Stored { .. } => self.record(i).map(|_| ()),
        }
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
