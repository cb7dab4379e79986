//! One searchable view over a stack of indexes.
//!
//! A saved index that was refreshed is a *base* plus a small *delta*: the
//! base still holds files that changed or vanished since it was built, and
//! the delta holds their new versions and the files added since. A [`View`]
//! answers as if it were one index built from scratch: it merges the
//! layers' file tables into one sorted table, hides each layer's dropped
//! files, lowers the counts of the words those files held (the layer says
//! by how much: see [`Layer::new`]), hides words left with no occurrence,
//! and merges a word's occurrences across layers in (path, line, column)
//! order. A fresh build is a view of one layer, with nothing dropped.

use std::cmp::Ordering;
use std::mem::MaybeUninit;
use std::ops::Range;

use super::postings::{count_in_files, Location};
use super::{Damaged, FileTable, Index, Picks, Vocabulary, WordLocations, WordReader};

/// Most layers a view stacks: a base, its delta, and a delta being made.
pub const MAX_LAYERS: usize = 3;

/// About how many words a reader decodes in the time of one binary search
/// of a vocabulary (a block's first words compared, one block decoded).
const SEARCH_PER_DECODE: usize = 32;

/// Marks a dropped file in [`Layer::rank`] and an absent part in [`Hit`].
const NONE: u32 = u32::MAX;

/// One index of a view, with the files it no longer speaks for.
#[derive(Debug)]
pub struct Layer {
    index: Index,
    /// Per file of the layer: its number in the view's file table, or NONE.
    /// Empty while the layer keeps every file under its own number, so a
    /// view of one saved index holds nothing per file.
    rank: Vec<u32>,
    /// Words holding occurrences in dropped files: (word, occurrences left),
    /// sorted by word.
    adjusted: Vec<(u32, u32)>,
    /// True when the view numbers this layer's files as the layer does.
    identity: bool,
    /// Per file: its raw relative path, to order files whose displayed
    /// paths are equal (invalid UTF-8 shown as U+FFFD) as a build does.
    raw_paths: Vec<Option<Box<[u8]>>>,
}

impl Layer {
    /// `index`, less the files marked in `dropped` (indexed by file number;
    /// missing entries are kept). `adjusted` lists, sorted by word number,
    /// every word with occurrences in dropped files and how many it has
    /// left elsewhere (see [`occurrences_in`] and `store`'s `lower_counts`).
    pub fn new(index: Index, dropped: &[bool], adjusted: Vec<(u32, u32)>) -> Layer {
        let files = index.files().len();
        let rank = match dropped.iter().take(files).any(|&d| d) {
            true => (0..files)
                .map(|f| match dropped.get(f) {
                    Some(true) => NONE,
                    _ => 0,
                })
                .collect(),
            false => Vec::new(),
        };
        Layer {
            index,
            rank,
            adjusted,
            identity: false,
            raw_paths: Vec::new(),
        }
    }

    /// The layer with its files' raw relative paths (see [`View::new`]).
    /// `None` for a file whose raw path is its displayed one.
    pub fn with_raw_paths(mut self, raw_paths: Vec<Option<Box<[u8]>>>) -> Layer {
        self.raw_paths = raw_paths;
        self
    }

    /// True when the view keeps every file of this layer under its own
    /// number, so stored lists need no renumbering.
    pub fn is_identity(&self) -> bool {
        self.identity
    }

    /// The layer's index, dropped files and all.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Occurrences of word `id` in the files the view keeps.
    pub fn count(&self, id: usize) -> Result<u32, Damaged> {
        if !self.adjusted.is_empty() {
            if let Ok(k) = self
                .adjusted
                .binary_search_by_key(&(id as u32), |&(w, _)| w)
            {
                return Ok(self.adjusted[k].1);
            }
        }
        self.index.count(id)
    }

    /// [`count`](Self::count) of each of `ids` (ascending), appended to
    /// `out`: the stored counts read together, the adjusted ones found by
    /// one pass over both lists.
    fn counts_of(&self, ids: &[usize], out: &mut Vec<u64>) -> Result<(), Damaged> {
        let first = out.len();
        self.index.counts_of(ids.iter().copied(), out)?;
        if !self.adjusted.is_empty() {
            let mut adjusted = self.adjusted.iter().peekable();
            for (&id, count) in ids.iter().zip(&mut out[first..]) {
                while adjusted.next_if(|&&(w, _)| (w as usize) < id).is_some() {}
                if let Some(&&(w, left)) = adjusted.peek() {
                    if w as usize == id {
                        *count = u64::from(left);
                    }
                }
            }
        }
        Ok(())
    }

    /// The words the view hides in this layer, ascending: those whose
    /// every occurrence is in dropped files (every stored word has some).
    fn gone(&self) -> impl Iterator<Item = usize> + '_ {
        self.adjusted
            .iter()
            .filter(|&&(_, left)| left == 0)
            .map(|&(word, _)| word as usize)
    }

    /// `picks` less the [`gone`](Self::gone) words, taken out by one pass
    /// over both lists, with no count read per pick (`*e_*` on a
    /// refreshed kernel index: a million reads).
    fn kept(&self, picks: Picks) -> Picks {
        let mut gone = self.gone().peekable();
        if gone.peek().is_none() {
            return picks;
        }
        let mut kept = picks.into_ids();
        kept.retain(|&id| {
            while gone.next_if(|&g| g < id).is_some() {}
            gone.peek() != Some(&id)
        });
        kept.into()
    }

    /// The view's number for the layer's file `file`, if the view keeps it.
    #[inline]
    pub fn rank(&self, file: u32) -> Option<u32> {
        match self.rank.is_empty() {
            true => ((file as usize) < self.index.files().len()).then_some(file),
            false => self.rank.get(file as usize).copied().filter(|&r| r != NONE),
        }
    }

    /// The ranks to renumber stored locations with; `None` when the view
    /// keeps them as stored.
    fn ranks(&self) -> Option<&[u32]> {
        (!self.rank.is_empty()).then_some(&self.rank)
    }

    /// The adjusted counts (see [`Layer::new`]).
    pub fn adjusted(&self) -> &[(u32, u32)] {
        &self.adjusted
    }

    /// The view numbers every file of this layer as the layer does.
    fn number_as_stored(&mut self) {
        self.rank = Vec::new();
        self.identity = true;
    }

    fn layer_locations(&self, id: usize) -> Result<LayerLocations<'_>, Damaged> {
        Ok(LayerLocations {
            inner: self.index.locations(id)?,
            rank: self.ranks(),
        })
    }
}

/// For each word of `index` with occurrences in the files marked in
/// `files`: (word, how many), sorted by word: what hiding those files takes
/// from the word's count (a [`Layer`] is given the counts left). It reads
/// every posting list, so it is done once, when a delta is made, not at
/// each query, in the vocabulary's parts on two threads
/// ([`Vocabulary::in_parts`](super::vocabulary::Vocabulary::in_parts)):
/// the caller must not fork while it runs (it returns only when both are
/// joined).
pub fn occurrences_in(index: &Index, files: &[bool]) -> Result<Vec<(u32, u32)>, Damaged> {
    // Lists are in file order: nothing past the last marked file matters.
    let Some(last) = files.iter().rposition(|&f| f) else {
        return Ok(Vec::new());
    };
    let files = &files[..=last];
    let scan = |range: std::ops::Range<usize>| {
        // (word, occurrences inside), pieces of one word summed.
        let mut inside: Vec<(u32, u32)> = Vec::new();
        index.for_each_list(range, &mut |id, list| {
            let n = count_in_files(list, files);
            if n == 0 {
                return;
            }
            match inside.last_mut() {
                Some((w, sum)) if *w == id as u32 => *sum += n,
                _ => inside.push((id as u32, n)),
            }
        })?;
        Ok(inside)
    };
    let words = index.vocabulary().len();
    let parts = index
        .vocabulary()
        .in_parts(|part, parts| scan(super::vocabulary::share(words, part, parts)));
    let mut inside = Vec::new();
    for part in parts {
        inside.extend(part?);
    }
    Ok(inside)
}

struct LayerLocations<'a> {
    inner: WordLocations<'a>,
    /// See [`Layer::ranks`].
    rank: Option<&'a [u32]>,
}

impl Iterator for LayerLocations<'_> {
    type Item = Location;

    #[inline]
    fn next(&mut self) -> Option<Location> {
        let Some(rank) = self.rank else {
            return self.inner.next();
        };
        loop {
            let mut location = self.inner.next()?;
            match rank.get(location.file as usize) {
                Some(&r) if r != NONE => {
                    location.file = r;
                    return Some(location);
                }
                _ => continue,
            }
        }
    }
}

/// A word of a view: (layer, its number there) for each layer that holds
/// it, at most [`MAX_LAYERS`] (stacked layers) and exactly one in a
/// sharded view, whose layers hold disjoint words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    parts: [(u32, u32); MAX_LAYERS],
}

impl Hit {
    const EMPTY: Hit = Hit {
        parts: [(NONE, NONE); MAX_LAYERS],
    };

    fn of(layer: usize, id: usize) -> Hit {
        Hit::single(layer as u32, id as u32)
    }

    /// The word numbered `id` in `layer` alone.
    pub fn single(layer: u32, id: u32) -> Hit {
        let mut hit = Hit::EMPTY;
        hit.parts[0] = (layer, id);
        hit
    }

    /// (layer, number) when one layer alone holds the word, as almost
    /// every word of a view does: what an answer keeps of it in a few
    /// bytes (see [`Hit::single`]).
    pub fn as_single(&self) -> Option<(u32, u32)> {
        let [first, rest @ ..] = self.parts;
        (first.0 != NONE && rest.iter().all(|(layer, _)| *layer == NONE)).then_some(first)
    }

    fn add(&mut self, layer: usize, id: usize) {
        if let Some(free) = self.parts.iter_mut().find(|(l, _)| *l == NONE) {
            *free = (layer as u32, id as u32);
        }
    }

    /// The layers holding the word, with its number in each.
    pub fn parts(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.parts
            .iter()
            .filter(|(layer, _)| *layer != NONE)
            .map(|&(layer, id)| (layer as usize, id as usize))
    }

    /// The word's number in `layer`, if that layer holds it.
    fn id_in(&self, layer: usize) -> Option<usize> {
        self.parts().find(|&(l, _)| l == layer).map(|(_, id)| id)
    }

    fn first(&self) -> (usize, usize) {
        self.parts().next().unwrap_or((0, 0))
    }
}

/// Reads the counts of the words `ids` (numbers in a layer, or hits)
/// into a vector, in order.
type CountsOf<'a, I> = &'a (dyn Fn(&[I], &mut Vec<u64>) -> Result<(), Damaged> + Sync);

/// What an answer is made from, read a few thousand at a time from any
/// position: a layer's picks, or the hits merged from several layers.
trait Items: Sync {
    type Item: Copy;
    fn len(&self) -> usize;
    /// Appends the items at `positions` to `out`.
    fn read(&self, positions: Range<usize>, out: &mut Vec<Self::Item>);
}

impl Items for Picks {
    type Item = usize;
    fn len(&self) -> usize {
        Picks::len(self)
    }
    fn read(&self, positions: Range<usize>, out: &mut Vec<usize>) {
        Picks::read(self, positions, out);
    }
}

impl<I: Copy + Sync> Items for [I] {
    type Item = I;
    fn len(&self) -> usize {
        <[I]>::len(self)
    }
    fn read(&self, positions: Range<usize>, out: &mut Vec<I>) {
        out.extend_from_slice(&self[positions]);
    }
}

/// A stacked view's hits where one layer picks nearly all of them (a base
/// under a small delta): that layer's picks, read by position as they
/// are, with the few changes the other layers make to them. A million
/// hits are then never written out as a list of their own (`*e_*` on a
/// refreshed kernel index: 27 MB of fresh pages, 18 ms).
struct Placed<'a> {
    layer: usize,
    picks: &'a Picks,
    /// By position among the picks; at one position, the words placed
    /// before its pick come first.
    changes: Vec<Placing>,
    len: usize,
}

#[derive(Debug, Clone, Copy)]
struct Placing {
    /// The pick's position.
    at: usize,
    /// The answer's position of the first item at or after this change.
    out: usize,
    change: Change,
}

#[derive(Debug, Clone, Copy)]
enum Change {
    /// A hit placed before the pick.
    Before(Hit),
    /// A hit in the pick's place.
    Instead(Hit),
    /// The pick left out.
    Drop,
}

impl<'a> Placed<'a> {
    /// `changes`: (position among `picks`, change), in order.
    fn new(picks: &'a Picks, layer: usize, changes: Vec<(usize, Change)>) -> Placed<'a> {
        let (mut added, mut dropped) = (0, 0);
        let changes = changes
            .into_iter()
            .map(|(at, change)| {
                let out = at + added - dropped;
                match change {
                    Change::Before(_) => added += 1,
                    Change::Drop => dropped += 1,
                    Change::Instead(_) => {}
                }
                Placing { at, out, change }
            })
            .collect();
        Placed {
            layer,
            picks,
            changes,
            len: picks.len() + added - dropped,
        }
    }
}

impl Items for Placed<'_> {
    type Item = Hit;
    fn len(&self) -> usize {
        self.len
    }
    fn read(&self, positions: Range<usize>, out: &mut Vec<Hit>) {
        // The first change at or after the first position, and the pick
        // there: picks between two changes are shifted alike.
        let mut next = self.changes.partition_point(|c| c.out < positions.start);
        let mut at = match self.changes.get(next) {
            Some(c) => (positions.start + c.at).saturating_sub(c.out),
            None => (positions.start + self.picks.len()).saturating_sub(self.len),
        };
        let mut ids = Vec::new();
        let mut wanted = positions.len();
        while wanted > 0 {
            let until = self.changes.get(next).map_or(self.picks.len(), |c| c.at);
            if at < until {
                let n = (until - at).min(wanted);
                ids.clear();
                self.picks.read(at..at + n, &mut ids);
                out.extend(ids.iter().map(|&id| Hit::of(self.layer, id)));
                at += n;
                wanted -= n;
                continue;
            }
            let Some(placing) = self.changes.get(next) else {
                break;
            };
            match placing.change {
                Change::Before(hit) => {
                    out.push(hit);
                    wanted -= 1;
                }
                Change::Instead(hit) => {
                    out.push(hit);
                    wanted -= 1;
                    at += 1;
                }
                Change::Drop => at += 1,
            }
            next += 1;
        }
    }
}

/// Appends `make(id, count)` for each of `items` to `out` (its new room
/// hinted to huge pages), the count read by `counts_of` (0 without it), a
/// few thousand ids at a time; when there are many, the second half is
/// made on a thread of its own.
/// Nothing is appended if a count cannot be read.
fn made_side_by_side<S: Items + ?Sized, T: Send>(
    out: &mut Vec<T>,
    items: &S,
    counts_of: Option<CountsOf<'_, S::Item>>,
    make: impl Fn(S::Item, u64) -> T + Sync,
) -> Result<(), Damaged> {
    const SIDE_BY_SIDE: usize = 1 << 14;
    // Ids and counts read into small buffers at a time, then used.
    const AT_ONCE: usize = 4096;
    // Writes every slot of `slots`, from the item at `first` on, or
    // returns an error.
    let fill = |slots: &mut [MaybeUninit<T>], first: usize| -> Result<(), Damaged> {
        let mut ids = Vec::with_capacity(AT_ONCE.min(slots.len()));
        let mut counts = Vec::with_capacity(AT_ONCE.min(slots.len()));
        for (k, slots) in slots.chunks_mut(AT_ONCE).enumerate() {
            let start = first + k * AT_ONCE;
            ids.clear();
            items.read(start..start + slots.len(), &mut ids);
            counts.clear();
            match counts_of {
                Some(read) => read(&ids, &mut counts)?,
                None => counts.resize(ids.len(), 0),
            }
            if ids.len() != slots.len() || counts.len() != slots.len() {
                return Err(Damaged);
            }
            for ((slot, &id), &count) in slots.iter_mut().zip(&ids).zip(&counts) {
                slot.write(make(id, count));
            }
        }
        Ok(())
    };
    let len = items.len();
    out.reserve(len);
    let spare = &mut out.spare_capacity_mut()[..len];
    crate::index::partial::advise_huge_pages(spare);
    if len < SIDE_BY_SIDE {
        fill(spare, 0)?;
    } else {
        let (low_out, high_out) = spare.split_at_mut(len / 2);
        let high_first = low_out.len();
        let (low, high) = std::thread::scope(|scope| {
            let high = scope.spawn(|| fill(high_out, high_first));
            let low = fill(low_out, 0);
            (
                low,
                high.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
            )
        });
        low.and(high)?;
    }
    // SAFETY: the `len` slots after the vector's length were all written:
    // `fill` returned `Ok` for each part, and it writes every slot of its
    // part before returning `Ok` (a chunk of slots is written only when
    // it has an item and a count for each). A panic in either thread was
    // resumed above.
    unsafe { out.set_len(out.len() + len) };
    Ok(())
}

/// What a file was when it was indexed, to tell whether the tree still
/// holds that version when its lines are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, in nanoseconds since 1970.
    pub mtime_ns: i64,
}

/// Layers answering as one index (see the module docs).
#[derive(Debug)]
pub struct View {
    layers: Vec<Layer>,
    /// The merged file table; empty when the view is one layer keeping
    /// all its files, whose own table is then the view's (not copied).
    files: FileTable,
    /// Per file of the view: (layer, file number in that layer); empty
    /// when that is (0, the same number) for every file.
    origins: Vec<(u32, u32)>,
    /// Per file of the view, when known (see [`View::with_stamps`]).
    stamps: Vec<FileStamp>,
    /// True when the layers are shards: the same files, disjoint ranges of
    /// words in ascending order (see [`View::sharded`]).
    sharded: bool,
}

impl View {
    /// Lets go of the view's memory for a process about to end, on
    /// `threads` threads (see [`Index::discard`]).
    pub fn discard(self, threads: usize) {
        for layer in self.layers {
            layer.index.discard(threads);
            std::mem::forget((layer.rank, layer.adjusted));
        }
        std::mem::forget((self.files, self.origins, self.stamps));
    }

    /// A view of one index, as built.
    pub fn single(index: Index) -> View {
        View::new(vec![Layer::new(index, &[], Vec::new())])
    }

    /// A view of `layers` (at most [`MAX_LAYERS`]; extra ones are ignored):
    /// their kept files merged into one table sorted by path.
    pub fn new(mut layers: Vec<Layer>) -> View {
        layers.truncate(MAX_LAYERS);
        // One layer keeping every file: its table is in the walk's order
        // already, so nothing is copied or sorted (an opened index is
        // usable without reading its whole file table).
        if let [layer] = layers.as_mut_slice() {
            if layer.rank.iter().all(|&r| r != NONE) {
                layer.number_as_stored();
                return View {
                    layers,
                    files: FileTable::default(),
                    origins: Vec::new(),
                    stamps: Vec::new(),
                    sharded: false,
                };
            }
        }
        for layer in &mut layers {
            if layer.rank.is_empty() {
                layer.rank = vec![0; layer.index.files().len()];
            }
        }
        let mut entries: Vec<(&str, &[u8], usize, usize)> = Vec::new();
        for (l, layer) in layers.iter().enumerate() {
            for (f, path) in layer.index.files().iter().enumerate() {
                if layer.rank[f] != NONE {
                    let raw = match layer.raw_paths.get(f) {
                        Some(Some(raw)) => raw,
                        _ => path.as_bytes(),
                    };
                    entries.push((path, raw, l, f));
                }
            }
        }
        // As the walk orders files: by displayed path, then raw path.
        entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()).then(a.1.cmp(b.1)));
        let files = FileTable::from(entries.iter().map(|e| e.0.to_string()).collect::<Vec<_>>());
        let origins: Vec<(u32, u32)> = entries.iter().map(|e| (e.2 as u32, e.3 as u32)).collect();
        for (r, &(l, f)) in origins.iter().enumerate() {
            layers[l as usize].rank[f as usize] = r as u32;
        }
        for layer in &mut layers {
            layer.identity = layer.rank.iter().enumerate().all(|(f, &r)| r == f as u32);
        }
        View {
            layers,
            files,
            origins,
            stamps: Vec::new(),
            sharded: false,
        }
    }

    /// A view of one index saved in shards: `shards` hold the same files,
    /// and each the words of one range, the ranges ascending and disjoint.
    /// Nothing is merged: a word is in one shard, and a query's words are
    /// its shards' picks one after the other.
    pub fn sharded(shards: Vec<Index>) -> View {
        let layers: Vec<Layer> = shards
            .into_iter()
            .map(|index| {
                let mut layer = Layer::new(index, &[], Vec::new());
                layer.number_as_stored();
                layer
            })
            .collect();
        View {
            layers,
            files: FileTable::default(),
            origins: Vec::new(),
            stamps: Vec::new(),
            sharded: true,
        }
    }

    /// True for a view of shards (see [`View::sharded`]).
    pub fn is_sharded(&self) -> bool {
        self.sharded
    }

    /// The view with each file's stamp when indexed: `stamp(layer, file)`
    /// gives it for a file by its number in its layer.
    pub fn with_stamps(mut self, stamp: impl Fn(usize, usize) -> Option<FileStamp>) -> View {
        let stamps: Option<Vec<FileStamp>> = (0..self.files().len())
            .map(|file| {
                let (l, f) = self.origin(file)?;
                stamp(l, f)
            })
            .collect();
        self.stamps = stamps.unwrap_or_default();
        self
    }

    /// What file `file` was when indexed, if the view knows.
    pub fn stamp(&self, file: u32) -> Option<FileStamp> {
        self.stamps.get(file as usize).copied()
    }

    /// Where the view's file `file` comes from: (layer, its number there).
    pub fn origin(&self, file: usize) -> Option<(usize, usize)> {
        match self.origins.is_empty() {
            true => (file < self.files().len()).then_some((0, file)),
            false => self
                .origins
                .get(file)
                .map(|&(l, f)| (l as usize, f as usize)),
        }
    }

    /// The layers, base first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Takes the layers back.
    pub fn into_layers(self) -> Vec<Layer> {
        self.layers
    }

    /// The file table: relative paths in ascending byte order.
    pub fn files(&self) -> &FileTable {
        match (self.files.is_empty(), self.layers.as_slice()) {
            (true, [layer]) => layer.index.files(),
            // Shards share one table: the first's speaks for all.
            (true, [first, ..]) if self.sharded => first.index.files(),
            _ => &self.files,
        }
    }

    /// The relative path of the view's file number `file` (`?` past the
    /// end); [`Damaged`] if the stored table fails its check there.
    pub fn path(&self, file: u32) -> Result<&str, Damaged> {
        self.files().path(file as usize)
    }

    /// Checks the whole file table now, for a reader of every path.
    pub fn verify_files(&self) -> Result<(), Damaged> {
        self.files().verify()
    }

    /// The words each layer's `select` picks from its vocabulary (word
    /// numbers, ascending), merged in byte order, without words whose every
    /// occurrence is in dropped files. [`Damaged`] when a block of words
    /// read on the way failed its check (the pick could be short), so the
    /// hits' words, read by the pick, are sound.
    pub fn hits<P: Into<Picks>>(
        &self,
        select: impl FnMut(&Vocabulary) -> P,
    ) -> Result<Vec<Hit>, Damaged> {
        self.hits_as(select, |hit| hit)
    }

    /// [`View::hits`], each made into a `T` as it is found (an answer of
    /// hundreds of thousands of words is then built once, not copied from
    /// a vector of hits: fresh pages cost as much as the copy).
    ///
    /// A long answer of one layer is made by two threads, each into its
    /// half of the vector: on the hosts measured, the vector's fresh pages
    /// cost more than making its items (`*_t*`: 9 MB of entries, 7 ms of
    /// page faults on one thread).
    pub fn hits_as<T: Send, P: Into<Picks>>(
        &self,
        select: impl FnMut(&Vocabulary) -> P,
        make: impl Fn(Hit) -> T + Sync,
    ) -> Result<Vec<T>, Damaged> {
        self.hits_made(select, false, |hit, _| make(hit))
    }

    /// [`View::hits_as`] with each word's count in the view, read as the
    /// items are made: for a long answer of one layer, by the two threads
    /// that make it, each count a cache miss in a table of every word's
    /// count (and the first time, its chunk's check).
    pub fn counted_hits_as<T: Send, P: Into<Picks>>(
        &self,
        select: impl FnMut(&Vocabulary) -> P,
        make: impl Fn(Hit, u64) -> T + Sync,
    ) -> Result<Vec<T>, Damaged> {
        self.hits_made(select, true, make)
    }

    fn hits_made<T: Send, P: Into<Picks>>(
        &self,
        mut select: impl FnMut(&Vocabulary) -> P,
        counted: bool,
        make: impl Fn(Hit, u64) -> T + Sync,
    ) -> Result<Vec<T>, Damaged> {
        let mut picked: Vec<Picks> = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            picked.push(select(layer.index.vocabulary()).into());
            if layer.index.vocabulary().is_damaged() {
                return Err(Damaged);
            }
        }
        if let ([ids], [layer]) = (&mut picked[..], &self.layers[..]) {
            let ids = layer.kept(std::mem::take(ids));
            let read = |ids: &[usize], out: &mut Vec<u64>| layer.counts_of(ids, out);
            let counts_of: Option<CountsOf<'_, _>> = counted.then_some(&read);
            let mut made = Vec::new();
            made_side_by_side(&mut made, &ids, counts_of, |id, count| {
                make(Hit::of(0, id), count)
            })?;
            return Ok(made);
        }
        // Several layers: their hits in word order, made as one layer's
        // are, their counts summed over their layers. Each layer's counts
        // are read for all of a chunk's hits at once (the hits are in word
        // order, so each layer's ids ascend).
        let summed = |hits: &[Hit], out: &mut Vec<u64>| {
            out.clear();
            out.resize(hits.len(), 0);
            let mut ids = Vec::with_capacity(hits.len());
            let mut at = Vec::with_capacity(hits.len());
            let mut counts = Vec::with_capacity(hits.len());
            for (l, layer) in self.layers.iter().enumerate() {
                ids.clear();
                at.clear();
                for (k, hit) in hits.iter().enumerate() {
                    if let Some(id) = hit.id_in(l) {
                        ids.push(id);
                        at.push(k);
                    }
                }
                counts.clear();
                layer.counts_of(&ids, &mut counts)?;
                if counts.len() != ids.len() {
                    return Err(Damaged);
                }
                for (&k, &count) in at.iter().zip(&counts) {
                    out[k] += count;
                }
            }
            Ok(())
        };
        let counts_of: Option<CountsOf<'_, Hit>> = counted.then_some(&summed);
        // The layer with the most picks (a base, under a delta of the
        // files that changed) need not be decoded, nor its picks copied:
        // when the others' picks are few, its picks are read as they are
        // and each of theirs is placed among them by a binary search of
        // its vocabulary (`*e_*` on a refreshed kernel index: a million
        // words decoded, and 27 MB of hits written out, to place a few
        // hundred).
        let big = (0..picked.len())
            .max_by_key(|&l| picked[l].len())
            .unwrap_or(0);
        let others: usize = picked.iter().map(Picks::len).sum::<usize>() - picked[big].len();
        let by_rank = !self.sharded && others.saturating_mul(SEARCH_PER_DECODE) < picked[big].len();
        let mut kept: Vec<Vec<usize>> = Vec::with_capacity(picked.len());
        for (l, picks) in picked.iter_mut().enumerate() {
            kept.push(match by_rank && l == big {
                true => Vec::new(),
                false => self.layers[l].kept(std::mem::take(picks)).into_ids(),
            });
        }
        let mut made = Vec::new();
        if by_rank {
            let placed = self.placed(&picked[big], big, &kept);
            // Words read on the way (to place the others' picks) were checked.
            if self.words_damaged() {
                return Err(Damaged);
            }
            made_side_by_side(&mut made, &placed, counts_of, make)?;
            return Ok(made);
        }
        let hits = match self.sharded {
            // Shards in word order: their picks, as they are.
            true => kept
                .iter()
                .enumerate()
                .flat_map(|(l, ids)| ids.iter().map(move |&id| Hit::of(l, id)))
                .collect(),
            false => {
                let hits = self.merged_by_word(&kept);
                // A damaged word, read as empty, would merge out of place.
                if self.words_damaged() {
                    return Err(Damaged);
                }
                hits
            }
        };
        if !counted {
            // In place where a `T` is a hit's size (`View::hits`).
            return Ok(hits.into_iter().map(|hit| make(hit, 0)).collect());
        }
        made_side_by_side(&mut made, hits.as_slice(), counts_of, make)?;
        Ok(made)
    }

    /// True once a layer's vocabulary met damage (its words then read as
    /// fewer or empty).
    fn words_damaged(&self) -> bool {
        self.layers
            .iter()
            .any(|l| l.index.vocabulary().is_damaged())
    }

    /// The hits of stacked layers when layer `big` picks nearly all of
    /// them: its `picks` read by number only, less the words it leaves
    /// with none, and the other layers' hits (`others`, ascending, empty
    /// for `big`) merged by their words, then each placed by its rank in
    /// `big`'s vocabulary, joining `big`'s pick of the same word.
    fn placed<'a>(&self, picks: &'a Picks, big: usize, others: &[Vec<usize>]) -> Placed<'a> {
        let layer = &self.layers[big];
        let vocabulary = layer.index.vocabulary();
        let mut gone = layer
            .gone()
            .filter_map(|id| picks.position(id).ok())
            .peekable();
        let mut changes = Vec::new();
        for hit in self.merged_by_word(others) {
            // A damaged word reads as empty here; the caller then checks.
            let (rank, held) = vocabulary.rank_of(&self.word_bytes(&hit).unwrap_or_default());
            let found = picks.position(rank);
            let (Ok(at) | Err(at)) = found;
            while let Some(k) = gone.next_if(|&k| k < at) {
                changes.push((k, Change::Drop));
            }
            changes.push(match (held, found) {
                // Left with none in `big`: the other layers' word alone.
                (true, Ok(_)) if gone.next_if_eq(&at).is_some() => (at, Change::Instead(hit)),
                (true, Ok(_)) => {
                    // The parts in layer order, as a merge by words adds them.
                    let mut parts: Vec<(usize, usize)> = hit.parts().collect();
                    parts.push((big, rank));
                    parts.sort_unstable();
                    let mut joined = Hit::EMPTY;
                    for (l, id) in parts {
                        joined.add(l, id);
                    }
                    (at, Change::Instead(joined))
                }
                _ => (at, Change::Before(hit)),
            });
        }
        changes.extend(gone.map(|k| (k, Change::Drop)));
        Placed::new(picks, big, changes)
    }

    /// The hits of stacked layers' picks (each ascending), in word order,
    /// a word held by several layers one hit, merged by reading every
    /// pick's word.
    fn merged_by_word(&self, picked: &[Vec<usize>]) -> Vec<Hit> {
        let mut hits = Vec::with_capacity(picked.iter().map(Vec::len).max().unwrap_or(0));
        let mut next = vec![0usize; picked.len()];
        // The next pick's word in each layer, decoded once per pick (each
        // layer's picks ascend, so its reader decodes each block once).
        let mut readers: Vec<WordReader<'_>> = self
            .layers
            .iter()
            .map(|layer| layer.index.vocabulary().reader())
            .collect();
        let mut heads: Vec<Vec<u8>> = vec![Vec::new(); picked.len()];
        let mut head_of = |l: usize, k: usize, head: &mut Vec<u8>| {
            head.clear();
            if let Some(&id) = picked[l].get(k) {
                head.extend_from_slice(readers[l].word(id));
            }
        };
        for (l, head) in heads.iter_mut().enumerate() {
            head_of(l, 0, head);
        }
        loop {
            // The smallest word among the layers' next picks, and who has it.
            let mut smallest: Option<&[u8]> = None;
            let mut hit = Hit::EMPTY;
            for (l, ids) in picked.iter().enumerate() {
                let Some(&id) = ids.get(next[l]) else {
                    continue;
                };
                let word = heads[l].as_slice();
                match smallest.map(|s| word.cmp(s)) {
                    Some(Ordering::Greater) => continue,
                    Some(Ordering::Less) | None => {
                        smallest = Some(word);
                        hit = Hit::EMPTY;
                    }
                    Some(Ordering::Equal) => {}
                }
                hit.add(l, id);
            }
            if smallest.is_none() {
                return hits;
            }
            for (l, _) in hit.parts() {
                next[l] += 1;
                head_of(l, next[l], &mut heads[l]);
            }
            hits.push(hit);
        }
    }

    /// The word's bytes; [`Damaged`] if its stored block is.
    pub fn word_bytes(&self, hit: &Hit) -> Result<std::borrow::Cow<'_, [u8]>, Damaged> {
        let (l, id) = hit.first();
        self.layers[l]
            .index
            .vocabulary()
            .checked_word(id)
            .ok_or(Damaged)
    }

    /// The word as text; [`Damaged`] if its stored block is.
    pub fn word(&self, hit: &Hit) -> Result<std::borrow::Cow<'_, str>, Damaged> {
        Ok(super::vocabulary::lossy_text(self.word_bytes(hit)?))
    }

    /// A reader of the words of hits asked for in word order (an
    /// answer's), which decodes each block of a stored vocabulary once
    /// (see [`super::Vocabulary::reader`]).
    pub fn word_reader(&self) -> HitWords<'_> {
        HitWords {
            layers: self
                .layers
                .iter()
                .map(|layer| layer.index.vocabulary().reader())
                .collect(),
        }
    }

    /// Occurrences of the word in the view.
    pub fn count(&self, hit: &Hit) -> Result<u64, Damaged> {
        let mut total = 0;
        for (l, id) in hit.parts() {
            total += u64::from(self.layers[l].count(id)?);
        }
        Ok(total)
    }

    /// Occurrences of the word, numbered in the view's file table, in
    /// (path, line, column) order. Its stored lists are read and verified
    /// here: [`Damaged`] before the first occurrence, never a short list.
    pub fn locations(&self, hit: &Hit) -> Result<impl Iterator<Item = Location> + '_, Damaged> {
        let mut streams: Vec<std::iter::Peekable<LayerLocations<'_>>> = Vec::new();
        for (l, id) in hit.parts() {
            streams.push(self.layers[l].layer_locations(id)?.peekable());
        }
        Ok(std::iter::from_fn(move || {
            if streams.len() == 1 {
                return streams[0].next();
            }
            let mut best: Option<(usize, Location)> = None;
            for (s, stream) in streams.iter_mut().enumerate() {
                if let Some(&location) = stream.peek() {
                    if best.is_none_or(|(_, b)| location < b) {
                        best = Some((s, location));
                    }
                }
            }
            let (s, _) = best?;
            streams[s].next()
        }))
    }

    /// The first `n` occurrences of the word, reading (and so verifying)
    /// little more of each stored list than they take: an answer that shows
    /// a few locations of a word with millions does not read them all.
    pub fn first_locations(&self, hit: &Hit, n: usize) -> Result<Vec<Location>, Damaged> {
        let mut found = Vec::new();
        for (l, id) in hit.parts() {
            let layer = &self.layers[l];
            // An entry takes at most 25 bytes; a layer may hold files the
            // view drops, so read further until n are kept or it ends.
            let mut budget = n.max(1).saturating_mul(32);
            loop {
                let (locations, whole) = layer.index.locations_within(id, budget)?;
                let kept: Vec<Location> = LayerLocations {
                    inner: locations,
                    rank: layer.ranks(),
                }
                .take(n)
                .collect();
                if kept.len() == n || whole {
                    found.extend(kept);
                    break;
                }
                budget = budget.saturating_mul(4);
            }
        }
        found.sort_unstable();
        found.truncate(n);
        Ok(found)
    }

    /// Verifies the stored lists the words `hits` read (see
    /// [`Index::verify`]). Called before printing an answer that streams
    /// its lists, so a damaged file is reported before the first line
    /// rather than where the printing meets it.
    pub fn verify(&self, hits: &[Hit]) -> Result<(), Damaged> {
        for (l, layer) in self.layers.iter().enumerate() {
            layer.index.verify(hits.iter().filter_map(|h| h.id_in(l)))?;
        }
        self.verify_paths(hits)
    }

    /// Checks the paths of the files `hits` occur in. A stored file table
    /// is checked chunk by chunk as paths are read; this reads them before
    /// an answer prints its first line. For an answer with more locations
    /// than there are files, checking the whole table is cheaper than
    /// reading the lists twice.
    fn verify_paths(&self, hits: &[Hit]) -> Result<(), Damaged> {
        let files = self.files();
        if files.is_verified() {
            return Ok(());
        }
        let mut locations = 0u64;
        for hit in hits {
            locations += self.count(hit)?;
            if locations > files.len() as u64 {
                return files.verify();
            }
        }
        let mut seen = vec![0u64; files.len().div_ceil(64)];
        for hit in hits {
            for location in self.locations(hit)? {
                let file = location.file as usize;
                if let Some(word) = seen.get_mut(file / 64) {
                    if *word & (1 << (file % 64)) == 0 {
                        *word |= 1 << (file % 64);
                        files.check(file)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Total occurrences in the view.
    pub fn occurrences(&self) -> Result<u64, Damaged> {
        let mut total = 0;
        for layer in &self.layers {
            let all = layer.index.occurrences()?;
            let mut lowered = 0u64;
            for &(w, left) in &layer.adjusted {
                let had = layer.index.count(w as usize)?;
                lowered += u64::from(had - left.min(had));
            }
            total += all - lowered.min(all);
        }
        Ok(total)
    }
}

/// See [`View::word_reader`].
#[derive(Debug)]
pub struct HitWords<'a> {
    layers: Vec<WordReader<'a>>,
}

impl HitWords<'_> {
    /// The word of `hit` as text, as [`View::word`] gives it.
    pub fn word(&mut self, hit: &Hit) -> Result<std::borrow::Cow<'_, str>, Damaged> {
        let (l, id) = hit.first();
        let word = self.layers[l].checked_word(id).ok_or(Damaged)?;
        Ok(String::from_utf8_lossy(word))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A layer's picks with hits placed before some, in place of
        /// others, and some dropped, read from any position to any other
        /// as the list a plain loop over picks and changes writes out.
        #[test]
        fn placed_hits_read_as_the_list_they_stand_for(
            picked in proptest::collection::btree_set(0usize..5000, 0..300),
            changes in proptest::collection::vec((any::<usize>(), 0u8..3), 0..40),
            span in (any::<usize>(), any::<usize>()),
        ) {
            let ids: Vec<usize> = picked.into_iter().collect();
            // At each position: the hits placed before it, then at most one
            // hit in its place or its drop (none past the last pick).
            let mut changes: Vec<(usize, u8)> = changes
                .into_iter()
                .map(|(at, kind)| (at % (ids.len() + 1), if at % (ids.len() + 1) == ids.len() { 0 } else { kind }))
                .collect();
            changes.sort_unstable();
            changes.dedup_by(|b, a| a.0 == b.0 && a.1 != 0 && b.1 != 0);
            let hit = |n: usize| Hit::of(1, n);
            let listed: Vec<(usize, Change)> = changes
                .iter()
                .enumerate()
                .map(|(n, &(at, kind))| match kind {
                    0 => (at, Change::Before(hit(n))),
                    1 => (at, Change::Instead(hit(n))),
                    _ => (at, Change::Drop),
                })
                .collect();
            let mut want = Vec::new();
            let mut next = listed.iter().peekable();
            for k in 0..=ids.len() {
                let mut keep = k < ids.len();
                while let Some((_, change)) = next.next_if(|(at, _)| *at == k) {
                    match change {
                        Change::Before(h) => want.push(*h),
                        Change::Instead(h) => {
                            want.push(*h);
                            keep = false;
                        }
                        Change::Drop => keep = false,
                    }
                }
                if keep {
                    want.push(Hit::of(0, ids[k]));
                }
            }
            let picks = Picks::from(ids);
            let placed = Placed::new(&picks, 0, listed);
            prop_assert_eq!(placed.len(), want.len());
            let (a, b) = (span.0 % (want.len() + 1), span.1 % (want.len() + 1));
            let mut read = Vec::new();
            placed.read(a.min(b)..a.max(b), &mut read);
            prop_assert_eq!(&read, &want[a.min(b)..a.max(b)]);
            read.clear();
            placed.read(0..want.len(), &mut read);
            prop_assert_eq!(read, want);
        }
    }

    #[test]
    fn a_hit_is_single_only_when_one_layer_holds_its_word() {
        let one = Hit::single(2, 7);
        assert_eq!(one.as_single(), Some((2, 7)));
        assert_eq!(one.parts().collect::<Vec<_>>(), vec![(2, 7)]);
        let mut two = Hit::of(0, 5);
        two.add(1, 9);
        assert_eq!(two.as_single(), None);
        assert_eq!(two.parts().collect::<Vec<_>>(), vec![(0, 5), (1, 9)]);
        assert_eq!(Hit::EMPTY.as_single(), None);
    }

    #[test]
    fn items_made_side_by_side_are_those_made_in_order() {
        let double = |ids: &[usize], out: &mut Vec<u64>| {
            out.extend(ids.iter().map(|&id| 2 * id as u64));
            Ok(())
        };
        // Either side of the threshold, after what the vector held, with
        // counts and without.
        for n in [0, 5, (1 << 14) - 1, 1 << 14, 100_003] {
            let ids: Vec<usize> = (0..n).map(|i| i * 7 + 3).collect();
            for counts_of in [None, Some(&double as CountsOf<'_, usize>)] {
                let mut made = vec![String::from("kept")];
                made_side_by_side(&mut made, ids.as_slice(), counts_of, |id, c| {
                    format!("w{id}:{c}")
                })
                .unwrap();
                let count = |id: usize| if counts_of.is_some() { 2 * id } else { 0 };
                let want: Vec<String> = std::iter::once(String::from("kept"))
                    .chain(ids.iter().map(|&id| format!("w{id}:{}", count(id))))
                    .collect();
                assert_eq!(made, want);
            }
        }
    }

    #[test]
    fn a_count_that_cannot_be_read_appends_nothing() {
        // Damaged in either half, or a reader giving too few counts.
        let damaged_past = |limit: usize| {
            move |ids: &[usize], out: &mut Vec<u64>| match ids.iter().any(|&id| id >= limit) {
                true => Err(Damaged),
                false => {
                    out.extend(ids.iter().map(|&id| id as u64));
                    Ok(())
                }
            }
        };
        let short = |ids: &[usize], out: &mut Vec<u64>| {
            out.extend(ids.iter().skip(1).map(|&id| id as u64));
            Ok(())
        };
        let ids: Vec<usize> = (0..50_000).collect();
        let (low, high) = (damaged_past(100), damaged_past(40_000));
        for counts_of in [&low as CountsOf<'_, usize>, &high, &short] {
            let mut made = vec![7u64];
            let result = made_side_by_side(&mut made, ids.as_slice(), Some(counts_of), |id, c| {
                id as u64 + c
            });
            assert!(result.is_err());
            assert_eq!(made, vec![7]);
        }
    }
}
