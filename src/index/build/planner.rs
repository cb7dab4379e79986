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

/// A range of file numbers handed to a worker.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct Batch {
    /// Unique per batch handed out (halves of a failed batch get new ones).
    pub id: u32,
    /// First file.
    pub start: u32,
    /// One past the last file.
    pub end: u32,
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
}

impl<'a> Planner<'a> {
    pub fn new(files: &'a [FileEntry], workers: usize, batch_files: Option<usize>) -> Self {
        Planner {
            files,
            next_file: 0,
            next_id: 0,
            remaining_bytes: files.iter().map(|f| f.size).sum(),
            workers: workers.max(1) as u64,
            batch_files,
        }
    }

    /// True while files are left to hand out.
    pub fn has_work(&self) -> bool {
        self.next_file < self.files.len()
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
                while end < self.files.len()
                    && end - start < max_files
                    && (end == start || bytes < target)
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
        let files = entries(&[5 << 20, 1, 2, 70 << 20, 3, 4 << 20, 0, 9]);
        for batch in [None, Some(1), Some(3), Some(100)] {
            let mut planner = Planner::new(&files, 2, batch);
            let mut next = 0;
            let mut id = 0;
            while let Some(b) = planner.next() {
                assert_eq!((b.id, b.start), (id, next));
                assert!(b.end > b.start);
                next = b.end;
                id += 1;
            }
            assert_eq!(next as usize, files.len());
        }
    }
}
