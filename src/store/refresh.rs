//! Bringing a saved index up to date with its tree, in steps:
//!
//! 1. [`compare`]: list the tree and tell, by each file's stamps (size,
//!    modification and status-change times, inode), which saved files are
//!    unchanged, which changed, which are new and which are gone;
//! 2. [`build_changed`]: index the changed and new files with the same
//!    forked workers as a full build (past the memory budget, by streaming
//!    into an unnamed file);
//! 3. then either [`write_delta`] (a small side file holding the new files
//!    and what they hide of the base) or, once the files that differ from
//!    the base pass an eighth of the tree, [`compact`] (every layer merged
//!    into a new base).

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::segment::{self, Destination, FileRecord, Kind, Meta, Segment};
use super::spill::SpillFolder;
use super::{
    base_meta, delta_path, folder_of, marks, now_secs, open_written, raw_paths, records_of,
    relative_bytes, save, stamped, view_records, write_error, write_streamed, Damage, FormatError,
    Part, Saved, StoreError, Stored,
};
use crate::index::build::{build_listed, BuildError, Built};
use crate::index::view::occurrences_in;
use crate::index::walk::{walk, FileEntry, Walk};
use crate::index::{BuildOptions, BuildReport, Damaged, Index, Layer, Progress, View};

/// A delta is folded into a new base once its files (plus the base files
/// it hides) pass this fraction of the tree: past it, queries pay for the
/// stacking and a refresh re-reads a large delta.
const COMPACT_FRACTION: usize = 8;

/// What a refresh found and did.
#[derive(Debug, Default)]
pub struct Refreshed {
    /// Files unchanged since the last save, used as saved.
    pub reused: usize,
    /// Files new since.
    pub added: usize,
    /// Files whose size or modification time changed.
    pub changed: usize,
    /// Files gone since.
    pub removed: usize,
    /// The build of the added and changed files.
    pub build: BuildReport,
    /// What was written, if anything changed.
    pub saved: Option<Saved>,
    /// True if the changes had grown past an eighth of the tree, so the
    /// layers were merged into a new base.
    pub rebuilt: bool,
    /// The whole refresh.
    pub time: Duration,
    /// Listing the tree and comparing it with the saved files.
    pub compare_time: Duration,
    /// Reading the saved lists to hide dropped files.
    pub scan_time: Duration,
}

/// Brings the index saved at `path` up to date with `root`: re-indexes only
/// the files added or changed since (with forked workers, as a build does)
/// and saves them as a delta; or, once the files differing from the base
/// pass an eighth of the tree, merges everything into a new base.
pub fn refresh(
    path: &Path,
    stored: Stored,
    root: &Path,
    options: &BuildOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(View, Refreshed), StoreError> {
    let started = Instant::now();
    if stored.base.meta.root != root.as_os_str().as_bytes() {
        return Err(StoreError::OtherRoot {
            file: path.into(),
            built_from: stored.root(),
            asked: root.display().to_string(),
        });
    }
    let listing =
        walk(root, &options.excludes).map_err(|e| StoreError::Build(BuildError::Root(e)))?;
    let Stored { base, delta, .. } = stored;
    let mut report = Refreshed::default();
    let (comparison, rest) = compare(&base, delta.as_ref(), listing, root, &mut report);
    report.compare_time = started.elapsed();
    if comparison.to_index.is_empty() && report.removed == 0 {
        report.time = started.elapsed();
        return Ok((
            Stored {
                base,
                delta,
                shards: Vec::new(),
            }
            .into_view()
            .map_err(|e| StoreError::Format(path.into(), e))?,
            report,
        ));
    }

    // Once the files differing from the base pass an eighth of the tree,
    // stacking costs queries more than it saves: the layers are merged into
    // a new base instead of a delta.
    let count = |kept: &[bool]| kept.iter().filter(|&&k| k).count();
    let hidden_base = base.records.len() - count(&comparison.kept[0]);
    let differing = count(&comparison.kept[1]) + comparison.to_index.len() + hidden_base;
    let compacting = differing * COMPACT_FRACTION > base.records.len().max(1);

    let Comparison {
        kept,
        to_index,
        hidden,
    } = comparison;
    let (fresh, records, build) = build_changed(path, root, options, to_index, rest, progress)?;
    report.build = build;
    let fresh = Fresh {
        index: fresh,
        records,
    };
    let target = Target {
        path,
        root,
        options,
    };
    let layers = Stack {
        base,
        delta,
        fresh,
        kept,
    };
    let (view, saved) = if compacting {
        report.rebuilt = true;
        compact(&target, layers)?
    } else {
        let (view, saved, scan) = write_delta(&target, layers, &hidden)?;
        report.scan_time = scan;
        (view, saved)
    };
    report.saved = Some(saved);
    report.time = started.elapsed();
    Ok((view, report))
}

/// Which saved files are still as saved, and what must be indexed.
struct Comparison {
    /// Per layer (base, delta), per saved file: unchanged and present.
    kept: [Vec<bool>; 2],
    /// Files new or changed since.
    to_index: Vec<FileEntry>,
    /// Base files the current delta already hides.
    hidden: Vec<bool>,
}

/// Step 1: compares the listed tree with the saved files (the base's files
/// its delta does not hide, and the delta's), keyed by raw relative path.
/// Returns the comparison and the listing's other entries (to be reported
/// as the build reports them).
fn compare(
    base: &Segment,
    delta: Option<&Segment>,
    listing: Walk,
    root: &Path,
    report: &mut Refreshed,
) -> (Comparison, Walk) {
    let hidden = marks(base.records.len(), delta.map_or(&[], |d| &d.dropped));
    let mut saved: HashMap<&[u8], (usize, usize)> = HashMap::new();
    for (f, record) in base.records.iter().enumerate() {
        if !hidden[f] {
            saved.insert(record.raw_path(), (0, f));
        }
    }
    let delta_records: &[FileRecord] = delta.map_or(&[], |d| &d.records);
    for (f, record) in delta_records.iter().enumerate() {
        saved.insert(record.raw_path(), (1, f));
    }
    let mut kept = [
        vec![false; base.records.len()],
        vec![false; delta_records.len()],
    ];
    let mut to_index = Vec::new();
    let Walk {
        files,
        not_regular,
        unreadable,
        root: listed_root,
        root_identity,
    } = listing;
    for entry in files {
        let raw = relative_bytes(&entry.path, root);
        let record = saved.get(raw).map(|&(l, f)| {
            let record = if l == 0 {
                &base.records[f]
            } else {
                &delta_records[f]
            };
            (l, f, record)
        });
        match record {
            Some((l, f, r))
                if r.size == entry.size
                    && r.mtime_ns == entry.mtime_ns
                    && r.ctime_ns == entry.ctime_ns
                    && r.inode == entry.inode
                    && !r.recheck =>
            {
                kept[l][f] = true;
                report.reused += 1;
            }
            Some(_) => {
                report.changed += 1;
                to_index.push(entry);
            }
            None => {
                report.added += 1;
                to_index.push(entry);
            }
        }
    }
    report.removed = saved.len() - report.reused - report.changed;
    let rest = Walk {
        files: Vec::new(),
        not_regular,
        unreadable,
        root: listed_root,
        root_identity,
    };
    (
        Comparison {
            kept,
            to_index,
            hidden,
        },
        rest,
    )
}

/// The index of the changed and added files, with their records.
struct Fresh {
    index: Index,
    records: Vec<FileRecord>,
}

/// Where step 3 writes, and for which tree.
struct Target<'a> {
    path: &'a Path,
    root: &'a Path,
    options: &'a BuildOptions,
}

/// What step 3 stacks: the saved layers, what each still keeps (per
/// layer, base then delta, per file), and the fresh files.
struct Stack {
    base: Segment,
    delta: Option<Segment>,
    fresh: Fresh,
    kept: [Vec<bool>; 2],
}

/// Step 2: indexes `files` with forked workers, as a build does; past the
/// memory budget the runs are merged by streaming into an unnamed file
/// beside the index, used in place.
fn build_changed(
    path: &Path,
    root: &Path,
    options: &BuildOptions,
    files: Vec<FileEntry>,
    rest: Walk,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(Index, Vec<FileRecord>, BuildReport), StoreError> {
    let subset = Walk { files, ..rest };
    let folder = folder_of(path);
    let mut spill = SpillFolder::new(folder);
    let (built, build) = build_listed(subset, Instant::now(), options, Some(&mut spill), progress)
        .map_err(StoreError::Build)?;
    // A build merged in memory holds its files' paths in its index.
    let names = match &built {
        Built::Index(index) => Some(index.files()),
        Built::Streamed(_) => None,
    };
    let records = records_of(&build, root, names);
    let index = match built {
        Built::Index(index) => *index,
        Built::Streamed(sources) => {
            let meta = base_meta(path, root, &options.excludes.globs());
            let (written, _) = write_streamed(
                sources,
                &spill,
                Destination::Anonymous(folder),
                &meta,
                &records,
            )?;
            open_written(written, folder)?.index
        }
    };
    Ok((index, records, build))
}

/// Step 3, past an eighth of the tree: a new base from the layers as they
/// stand. The writer re-encodes the lists of layers that lost files,
/// counting what it keeps, so no count needs adjusting first.
fn compact(target: &Target<'_>, stack: Stack) -> Result<(View, Saved), StoreError> {
    let (path, root, options) = (target.path, target.root, target.options);
    let Stack {
        base,
        delta,
        fresh,
        kept,
    } = stack;
    let dropped = |kept: &[bool]| -> Vec<bool> { kept.iter().map(|k| !k).collect() };
    let mut layers = vec![Layer::new(base.index, &dropped(&kept[0]), Vec::new())
        .with_raw_paths(raw_paths(&base.records))];
    let mut records = vec![base.records.into_vec()];
    if let Some(delta) = delta {
        layers.push(
            Layer::new(delta.index, &dropped(&kept[1]), Vec::new())
                .with_raw_paths(raw_paths(&delta.records)),
        );
        records.push(delta.records.into_vec());
    }
    layers.push(Layer::new(fresh.index, &[], Vec::new()).with_raw_paths(raw_paths(&fresh.records)));
    records.push(fresh.records);
    let view = View::new(layers);
    let layered = records;
    let records = view_records(&view, &layered);
    let saved = save(path, root, &options.excludes.globs(), &view, &records)?;
    // Answer from the file just written: one layer, in place.
    let view = match Stored::open(path)? {
        Some(stored) => stored
            .into_view()
            .map_err(|e| StoreError::Format(path.into(), e))?,
        None => {
            let layered: Vec<&[FileRecord]> = layered.iter().map(Vec::as_slice).collect();
            stamped(view, &layered)
        }
    };
    Ok((view, saved))
}

/// Step 3, below an eighth of the tree: a delta beside the base holding
/// the fresh files, the base files it hides (those not kept), and how that
/// lowers the base's counts; returns the view of base and delta, what was
/// written, and the time spent counting what hidden files held.
fn write_delta(
    target: &Target<'_>,
    stack: Stack,
    hidden: &[bool],
) -> Result<(View, Saved, Duration), StoreError> {
    let path = target.path;
    let Stack {
        base,
        delta,
        fresh,
        kept,
    } = stack;
    let scan_started = Instant::now();
    let base_dropped: Vec<bool> = kept[0].iter().map(|k| !k).collect();
    let delta_dropped: Vec<bool> = kept[1].iter().map(|k| !k).collect();
    // The delta being replaced already counted what the files it hid held;
    // only files hidden now for the first time need the scan.
    let newly: Vec<bool> = base_dropped
        .iter()
        .zip(hidden)
        .map(|(&dropped, &before)| dropped && !before)
        .collect();
    let previous = delta.as_ref().map_or(&[][..], |d| &d.adjusted[..]);
    let base_damaged = |_| {
        StoreError::Format(
            path.into(),
            FormatError::Damaged(Damage::Checksum(Part::Occurrences)),
        )
    };
    let hidden = occurrences_in(&base.index, &newly).map_err(base_damaged)?;
    let base_adjusted = lower_counts(&base.index, previous, &hidden).map_err(base_damaged)?;
    let base_id = base.meta.base_id;
    let base_layer = Layer::new(base.index, &base_dropped, base_adjusted)
        .with_raw_paths(raw_paths(&base.records));
    let mut upper = Vec::with_capacity(2);
    let mut upper_records = Vec::with_capacity(2);
    if let Some(delta) = delta {
        let delta_damaged = |_| StoreError::DamagedDelta {
            index: path.into(),
            delta: delta_path(path),
            error: FormatError::Damaged(Damage::Checksum(Part::Occurrences)),
        };
        let hidden = occurrences_in(&delta.index, &delta_dropped).map_err(delta_damaged)?;
        let adjusted = lower_counts(&delta.index, &[], &hidden).map_err(delta_damaged)?;
        upper.push(
            Layer::new(delta.index, &delta_dropped, adjusted)
                .with_raw_paths(raw_paths(&delta.records)),
        );
        upper_records.push(delta.records.into_vec());
    }
    let scan = scan_started.elapsed();
    upper.push(Layer::new(fresh.index, &[], Vec::new()).with_raw_paths(raw_paths(&fresh.records)));
    upper_records.push(fresh.records);

    let delta_view = View::new(upper);
    let records = view_records(&delta_view, &upper_records);
    let saved = save_delta(
        target,
        base_id,
        &delta_view,
        &records,
        &base_layer,
        &base_dropped,
    )?;
    let mut layers = vec![base_layer];
    layers.extend(delta_view.into_layers());
    let mut all_records = vec![base.records.as_slice()];
    all_records.extend(upper_records.iter().map(Vec::as_slice));
    Ok((stamped(View::new(layers), &all_records), saved, scan))
}

/// Writes the delta beside the base numbered `base_id`: the files of
/// `delta_view` described by `records`, the base files `base_dropped`
/// marks, and the base layer's lowered counts.
fn save_delta(
    target: &Target<'_>,
    base_id: u64,
    delta_view: &View,
    records: &[FileRecord],
    base_layer: &Layer,
    base_dropped: &[bool],
) -> Result<Saved, StoreError> {
    let started = Instant::now();
    let meta = Meta {
        kind: Kind::Delta,
        base_id,
        root: target.root.as_os_str().as_bytes().to_vec(),
        excludes: target.options.excludes.globs(),
        saved_at: now_secs(),
    };
    let dropped: Vec<u32> = (0..base_dropped.len() as u32)
        .filter(|&f| base_dropped[f as usize])
        .collect();
    let destination = delta_path(target.path);
    let written = segment::write(
        Destination::File(&destination),
        delta_view,
        records,
        &meta,
        &dropped,
        base_layer.adjusted(),
    )
    .map_err(|e| write_error(&destination, e))?;
    Ok(Saved {
        bytes: written.len(),
        time: started.elapsed(),
        delta: true,
    })
}

/// Counts left per word once `hidden` (word, occurrences in newly hidden
/// files) is taken from `left` (word, occurrences left after earlier
/// hiding; a word absent there still has its full count). Both sorted.
fn lower_counts(
    index: &Index,
    left: &[(u32, u32)],
    hidden: &[(u32, u32)],
) -> Result<Vec<(u32, u32)>, Damaged> {
    let mut merged = Vec::with_capacity(left.len() + hidden.len());
    let (mut a, mut b) = (left.iter().peekable(), hidden.iter().peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(&&(wa, n)), Some(&&(wb, _))) if wa < wb => {
                a.next();
                (wa, n)
            }
            (Some(&&(wa, n)), Some(&&(wb, taken))) if wa == wb => {
                a.next();
                b.next();
                (wa, n.saturating_sub(taken))
            }
            (_, Some(&&(wb, taken))) => {
                b.next();
                (wb, index.count(wb as usize)?.saturating_sub(taken))
            }
            (Some(&&(wa, n)), None) => {
                a.next();
                (wa, n)
            }
            (None, None) => return Ok(merged),
        };
        merged.push(next);
    }
}
