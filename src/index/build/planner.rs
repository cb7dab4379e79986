//! Cutting the file list into batches.
//!
//! A batch is a range of consecutive file numbers, so the runs made from
//! batches taken in file order are already in (path, line, column) order
//! and a merge never re-sorts an occurrence. Batches are sized by `--batch`
//! or by bytes, shrinking as the work runs out (guided self-scheduling), so
//! every worker stays busy to the end.

use serde::{Deserialize, Serialize};

use crate::index::walk::FileEntry;

/// Smallest and largest batch, in bytes, when batches are sized automatically.
/// Large batches mean fewer runs, so less vocabulary is sorted, sent and
/// merged twice; a worker's memory is bounded by its limits, not by this.
const MIN_BATCH_BYTES: u64 = 1 << 20;
const MAX_BATCH_BYTES: u64 = 32 << 20;

/// Files this large are cut into parts that workers index side by side
/// (parts of at least half this size).
pub const SPLIT_BYTES: u64 = 2 * MAX_BATCH_BYTES;

/// A range of file numbers handed to a worker, or a part of one file.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct Batch {
    /// Unique per batch handed out (halves of a failed batch get new ones).
    pub id: u32,
    /// First file.
    pub start: u32,
    /// One past the last file.
    pub end: u32,
    /// For a part of the file `start` (then `end` is `start + 1`).
    pub part: Option<Part>,
}

/// The lines of a file from the first line starting after byte `from`
/// (from the start, for the first part) to the line holding byte `to` (or
/// the end of the file, for the last part): parts cut where lines start,
/// so a part's columns are the file's, and its worker counts the lines
/// before it. The next part starts where this one ends.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Part {
    /// The part starts at the first line starting after this byte.
    pub from: u64,
    /// It ends with the line holding this byte; `u64::MAX` for the last.
    pub to: u64,
}

impl Part {
    /// True for the part that starts the file (it reports the file once).
    pub fn is_first(&self) -> bool {
        self.from == 0
    }

    /// True for the part that ends the file.
    pub fn is_last(&self) -> bool {
        self.to == u64::MAX
    }
}

impl Batch {
    /// Number of files.
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// The batch's files.
    pub fn files(&self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// Hands out consecutive file ranges, sized by `--batch` or by bytes.
pub(super) struct Planner<'a> {
    files: &'a [FileEntry],
    next_file: usize,
    next_id: u32,
    remaining_bytes: u64,
    workers: u64,
    batch_files: Option<usize>,
    /// Parts of a large file still to hand out.
    parts: std::collections::VecDeque<(u32, Part)>,
    /// Files this large are cut into parts.
    split_bytes: u64,
}

impl<'a> Planner<'a> {
    pub fn new(
        files: &'a [FileEntry],
        workers: usize,
        batch_files: Option<usize>,
        split_bytes: u64,
    ) -> Self {
        Planner {
            files,
            next_file: 0,
            next_id: 0,
            remaining_bytes: files.iter().map(|f| f.size).sum(),
            workers: workers.max(1) as u64,
            batch_files,
            parts: std::collections::VecDeque::new(),
            split_bytes: split_bytes.max(2),
        }
    }

    /// True while files are left to hand out.
    pub fn has_work(&self) -> bool {
        self.next_file < self.files.len() || !self.parts.is_empty()
    }

    /// Cuts file `file` into parts for the workers, if it is large enough
    /// to keep more than one busy.
    fn split(&mut self, file: usize) -> bool {
        let size = self.files[file].size;
        if self.workers < 2 || size < self.split_bytes {
            return false;
        }
        let parts = (size / (self.split_bytes / 2)).clamp(2, 2 * self.workers);
        let step = size / parts;
        for k in 0..parts {
            let to = if k + 1 == parts {
                u64::MAX
            } else {
                (k + 1) * step
            };
            self.parts
                .push_back((file as u32, Part { from: k * step, to }));
        }
        true
    }

    /// Where the files not yet handed out begin, as (file, offset in it):
    /// every batch [`Planner::next`] gives from now on starts there or later.
    pub fn frontier(&self) -> (u32, u64) {
        match self.parts.front() {
            Some(&(file, part)) => (file, part.from),
            None => (self.next_file as u32, 0),
        }
    }

    /// A new batch id, for batches made outside the plan (halves of a
    /// failed one).
    pub fn new_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The next batch, if any files are left.
    pub fn next(&mut self) -> Option<Batch> {
        if self.parts.is_empty() && self.next_file < self.files.len() && self.split(self.next_file)
        {
            self.remaining_bytes = self
                .remaining_bytes
                .saturating_sub(self.files[self.next_file].size);
            self.next_file += 1;
        }
        if let Some((file, part)) = self.parts.pop_front() {
            return Some(Batch {
                id: self.new_id(),
                start: file,
                end: file + 1,
                part: Some(part),
            });
        }
        if !self.has_work() {
            return None;
        }
        let start = self.next_file;
        let end = match self.batch_files {
            Some(n) => (start + n.max(1)).min(self.files.len()),
            None => {
                // Guided self-scheduling: each batch takes a share of what
                // is left, so batches shrink toward the end and the workers
                // finish together. The file-count cap spreads small trees
                // over every worker too.
                let divisor = self.workers * 2;
                let target =
                    (self.remaining_bytes / divisor).clamp(MIN_BATCH_BYTES, MAX_BATCH_BYTES);
                let remaining_files = (self.files.len() - start) as u64;
                let max_files = (remaining_files / divisor).max(1) as usize;
                let mut end = start;
                let mut bytes = 0u64;
                // A file to be split starts a batch of its own.
                while end < self.files.len()
                    && end - start < max_files
                    && (end == start || bytes < target)
                    && (end == start || self.workers < 2 || self.files[end].size < self.split_bytes)
                {
                    bytes += self.files[end].size;
                    end += 1;
                }
                end
            }
        };
        let bytes: u64 = self.files[start..end].iter().map(|f| f.size).sum();
        self.remaining_bytes = self.remaining_bytes.saturating_sub(bytes);
        self.next_file = end;
        Some(Batch {
            id: self.new_id(),
            start: start as u32,
            end: end as u32,
            part: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(sizes: &[u64]) -> Vec<FileEntry> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| FileEntry {
                path: i.to_string().into(),
                display: i.to_string(),
                size,
                mtime_ns: 0,
                ctime_ns: 0,
                inode: 0,
            })
            .collect()
    }

    #[test]
    fn planner_covers_every_file_once_in_order() {
        let files = entries(&[5 << 20, 1, 2, 70 << 20, 3, 4 << 20, 0, 9, 300 << 20, 1]);
        for batch in [None, Some(1), Some(3), Some(100)] {
            let mut planner = Planner::new(&files, 2, batch, SPLIT_BYTES);
            let mut next = 0;
            let mut id = 0;
            let mut from = 0;
            while let Some(b) = planner.next() {
                assert_eq!(b.id, id);
                assert!(b.end > b.start);
                id += 1;
                match b.part {
                    // Parts of one file tile it, in order.
                    Some(part) => {
                        assert_eq!((b.start, b.end, part.from), (next, next + 1, from));
                        assert!(part.to > part.from);
                        if part.is_last() {
                            (next, from) = (b.end, 0);
                        } else {
                            from = part.to;
                        }
                    }
                    None => {
                        assert_eq!(b.start, next);
                        next = b.end;
                    }
                }
            }
            assert_eq!(next as usize, files.len());
        }
    }
}
