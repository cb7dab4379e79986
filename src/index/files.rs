//! The file table: each file's relative path by its number.
//!
//! A fresh build holds the paths as strings. A saved index holds them in
//! its file records, and an opened index that answers one query needs the
//! paths of the files in that answer only: the stored table decodes a path
//! when it is asked for (the records' starts are stored beside them), so
//! opening never reads all of them.

use super::bytes::{Array, Bytes};

/// Relative paths in ascending byte order, numbered from 0.
#[derive(Debug, Clone)]
pub struct FileTable {
    names: Names,
}

#[derive(Clone)]
enum Names {
    Owned(Vec<String>),
    /// Record `i` starts at `starts[i]` of `bytes`; `path` reads the path
    /// at the front of a record (the store's encoding).
    Stored {
        bytes: Bytes,
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
    /// has the path `?`.
    pub fn stored(bytes: Bytes, starts: Array<u64>, path: fn(&[u8]) -> Option<&str>) -> Self {
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

    /// The path of file `i`.
    pub fn get(&self, i: usize) -> Option<&str> {
        match &self.names {
            Names::Owned(v) => v.get(i).map(String::as_str),
            Names::Stored {
                bytes,
                starts,
                path,
            } => {
                let start = usize::try_from(starts.get(i)?).ok()?;
                Some(bytes.get(start..).and_then(path).unwrap_or("?"))
            }
        }
    }

    /// Every path, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).map(|i| self.get(i).unwrap_or("?"))
    }

    /// Heap bytes held (none for a stored table, which is mapped).
    pub fn heap_bytes(&self) -> usize {
        match &self.names {
            Names::Owned(v) => v.iter().map(|p| p.capacity() + 24).sum(),
            Names::Stored { starts, .. } => starts.heap_bytes(),
        }
    }
}
