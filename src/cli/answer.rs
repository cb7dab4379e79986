//! From a line the user typed to the words and locations that answer it.
//!
//! One query is a lookup in the vocabulary, and its words' locations are
//! read lazily as they are printed: that path stays as fast as the index.
//! Everything else narrows an answer by looking at its locations, so those
//! are read first: several terms (an AND over files), `path:GLOB` terms and
//! `--glob`/`-t` (which files count), and `-s` (which spelling, read from
//! the line in the file).

use std::borrow::Cow;
use std::collections::BTreeMap;

use ignore::overrides::{Override, OverrideBuilder};
use ignore::types::{Types, TypesBuilder};
use ignore::Match;
use regex::Regex;

use indexer::index::{Damaged, Hit, HitWords, Location, View};
use indexer::search::{matching_words, Query};

use super::lines::{word_extent, Lines};
use super::output::PAGE;

/// A line typed at the prompt or given to `--query`, understood.
#[derive(Debug)]
pub struct Request {
    /// The text as typed (trimmed).
    pub text: String,
    /// The terms, each as typed and parsed.
    pub terms: Vec<(String, Query)>,
    /// `path:GLOB` terms: only files these admit count.
    pub paths: Vec<String>,
    /// Said before the answer when the text was read other than as typed.
    pub note: Option<String>,
}

/// Whether `c` ends a word wherever it stands: ASCII punctuation and
/// symbols. (A character outside ASCII that is not itself part of a word
/// may still be in one: lowercasing `İ` gives `i` and a combining dot.)
fn splits_words(c: char) -> bool {
    c.is_ascii() && !(c.is_ascii_alphanumeric() || c == '_')
}

impl Request {
    /// Reads `text`: whitespace separates terms; a plain term holding
    /// characters that are never part of a word is split into its words,
    /// each whole but the last (which stays a fragment unless something
    /// follows it), with a note saying so.
    pub fn parse(text: &str) -> Result<Request, String> {
        let text = text.trim();
        let (mut terms, mut paths, mut split) = (Vec::new(), Vec::new(), Vec::new());
        for token in text.split_whitespace() {
            if let Some(glob) = token.strip_prefix("path:") {
                if glob.is_empty() {
                    return Err("path: needs a glob (path:drivers/**, path:*.h)".into());
                }
                paths.push(glob.to_string());
                continue;
            }
            let pattern = token.contains('*')
                || (token.len() >= 2 && token.starts_with('/') && token.ends_with('/'));
            let body = token.strip_prefix('=').unwrap_or(token);
            let words_in = body.split(splits_words).filter(|p| !p.is_empty()).count();
            if pattern || !body.contains(splits_words) || words_in == 0 {
                let query = Query::parse(token).map_err(|e| e.to_string())?;
                terms.push((token.to_string(), query));
                continue;
            }
            let exact_all = token.starts_with('=');
            let pieces: Vec<&str> = body.split(splits_words).collect();
            let mut words = Vec::new();
            for (k, piece) in pieces.iter().enumerate() {
                if piece.is_empty() {
                    continue;
                }
                let last = k + 1 == pieces.len();
                let written = if last && !exact_all {
                    piece.to_string()
                } else {
                    format!("={piece}")
                };
                words.push(written);
            }
            if !words.is_empty() {
                split.push(format!("{token} as {}", words.join(" ")));
            }
            for word in words {
                let query = Query::parse(&word).map_err(|e| e.to_string())?;
                terms.push((word, query));
            }
        }
        if terms.is_empty() {
            return Err(match paths.is_empty() {
                true => format!("{text:?} holds no word: type a word fragment"),
                false => "path: narrows a query: add a word fragment to look for".into(),
            });
        }
        let note = (!split.is_empty()).then(|| {
            format!(
                "words never hold those characters: searching {}{}",
                split.join(", "),
                if terms.len() > 1 {
                    " (files holding every term)"
                } else {
                    ""
                }
            )
        });
        Ok(Request {
            text: text.to_string(),
            terms,
            paths,
            note,
        })
    }
}

/// Which files an answer may show: `--glob`, `-t`/`-T` and `path:` terms,
/// with rg's rules (ripgrep's own matchers from the `ignore` crate).
#[derive(Debug, Default)]
pub struct PathFilter {
    globs: Vec<String>,
    types: Vec<String>,
    types_not: Vec<String>,
    /// The files `--glob`/`-t`/`-T` alone admit, worked out for the first
    /// query and kept: a command answers from one view, and matching every
    /// path again for each query at the prompt would be wasted.
    base: std::sync::OnceLock<Vec<bool>>,
}

impl PathFilter {
    /// A filter from `--glob`, `-t` and `-T`; an error names what is wrong.
    pub fn new(globs: &[String], types: &[String], types_not: &[String]) -> Result<Self, String> {
        let filter = PathFilter {
            globs: globs.to_vec(),
            types: types.to_vec(),
            types_not: types_not.to_vec(),
            base: std::sync::OnceLock::new(),
        };
        filter.compile(&[])?;
        Ok(filter)
    }

    /// True when every file counts.
    pub fn is_empty(&self) -> bool {
        self.globs.is_empty() && self.types.is_empty() && self.types_not.is_empty()
    }

    fn compile(&self, more: &[String]) -> Result<(Option<Override>, Option<Types>), String> {
        let mut globs = None;
        if !self.globs.is_empty() || !more.is_empty() {
            let mut builder = OverrideBuilder::new("/");
            for glob in self.globs.iter().chain(more) {
                builder
                    .add(glob)
                    .map_err(|e| format!("invalid glob {glob:?}: {}", error_reason(&e)))?;
            }
            globs = Some(builder.build().map_err(|e| e.to_string())?);
        }
        let mut types = None;
        if !self.types.is_empty() || !self.types_not.is_empty() {
            let mut builder = TypesBuilder::new();
            builder.add_defaults();
            for name in &self.types {
                builder.select(name);
            }
            for name in &self.types_not {
                builder.negate(name);
            }
            let built = builder
                .build()
                .map_err(|e| format!("{e} (--type-list shows the known types)"))?;
            types = Some(built);
        }
        Ok((globs, types))
    }

    /// Which of `view`'s files count, with `more` globs (`path:` terms);
    /// `None` when all do.
    /// (The view must be the same at every call: the answer without `more`
    /// is kept from the first.)
    pub fn admitted(
        &self,
        view: &View,
        more: &[String],
    ) -> Result<Option<Cow<'_, [bool]>>, FindError> {
        if self.is_empty() && more.is_empty() {
            return Ok(None);
        }
        // Every path is matched: a stored table is checked whole first.
        view.verify_files()?;
        if more.is_empty() {
            if self.base.get().is_none() {
                let admitted = self.matching(view, &[])?;
                let _ = self.base.set(admitted);
            }
            return Ok(self.base.get().map(|base| Cow::Borrowed(base.as_slice())));
        }
        Ok(Some(Cow::Owned(self.matching(view, more)?)))
    }

    /// Which of `view`'s files the filter with `more` globs admits.
    fn matching(&self, view: &View, more: &[String]) -> Result<Vec<bool>, String> {
        let (globs, types) = self.compile(more)?;
        // A folder a `!` glob names excludes everything below it, as rg
        // does not descend into it; files are in path order, so the
        // verdict on the last folder is reused.
        let mut last_folder: Option<(String, bool)> = None;
        let admitted = view
            .files()
            .iter()
            .map(|path| {
                let folder = path.rsplit_once('/').map_or("", |(f, _)| f);
                let folder_out = match &last_folder {
                    Some((f, out)) if f == folder => *out,
                    _ => {
                        let out = globs.as_ref().is_some_and(|g| folder_excluded(g, folder));
                        last_folder = Some((folder.to_string(), out));
                        out
                    }
                };
                !folder_out
                    && !globs
                        .as_ref()
                        .is_some_and(|g| g.matched(path, false).is_ignore())
                    && !types
                        .as_ref()
                        .is_some_and(|t| t.matched(path, false).is_ignore())
            })
            .collect();
        Ok(admitted)
    }

    /// rg's type definitions, for `--type-list`.
    pub fn type_list() -> Vec<(String, Vec<String>)> {
        let mut builder = TypesBuilder::new();
        builder.add_defaults();
        builder
            .build()
            .map(|types| {
                types
                    .definitions()
                    .iter()
                    .map(|d| (d.name().to_string(), d.globs().to_vec()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Whether `folder` or a folder above it is excluded by a `!` glob.
fn folder_excluded(globs: &Override, folder: &str) -> bool {
    let mut end = 0;
    while end < folder.len() {
        end = folder[end..].find('/').map_or(folder.len(), |i| end + i);
        if let Match::Ignore(_) = globs.matched(&folder[..end], true) {
            return true;
        }
        end += 1;
    }
    false
}

/// The `ignore` crate's message, without its repetition of the glob.
fn error_reason(e: &ignore::Error) -> String {
    let text = e.to_string();
    text.rsplit_once(": ")
        .map_or(text.clone(), |(_, why)| why.to_string())
}

/// One word of an answer with its locations.
///
/// An entry takes one word of memory: a pattern answers up to a million
/// words, and on the hosts measured a fresh page costs more than a scan of
/// the words it lists (at 40 bytes an entry, the answer's pages were a
/// third of `*e_*`'s time; at 16, the two threads that make it still
/// spent 7 ms of CPU clearing its 18 MB). Nearly every entry is a word of
/// one layer whose locations are read as they are printed, and its layer,
/// number and count fit in the word beside a tag bit ([`Packed`]); any
/// other (a word of several layers, a narrowed answer's, a number or
/// count too large) is a pointer to a boxed [`Full`], whose alignment
/// leaves the tag bit clear.
pub struct Entry {
    /// A pointer from `Box::into_raw` if its lowest bit is clear (the
    /// entry owns the box), else [`Packed`] bits with no provenance.
    word: *mut Full,
}

// SAFETY: an entry is a `Box<Full>` or plain bits; `Full` is Send + Sync.
unsafe impl Send for Entry {}
// SAFETY: as above: shared access only reads the box.
unsafe impl Sync for Entry {}

const _: () = assert!(std::mem::size_of::<Entry>() == std::mem::size_of::<usize>());
const _: () = assert!(std::mem::align_of::<Full>() >= 2);

/// A word of one layer packed with its count into a pointer's width: the
/// tag bit, then the layer, the word's number and its count.
struct Packed;

impl Packed {
    const LAYER_BITS: u32 = 2;
    const ID_BITS: u32 = (usize::BITS - 1 - Self::LAYER_BITS) / 2;
    const COUNT_BITS: u32 = usize::BITS - 1 - Self::LAYER_BITS - Self::ID_BITS;

    fn pack(layer: u32, id: u32, count: u64) -> Option<usize> {
        let fits = |value: u64, bits: u32| value < 1 << bits;
        // Meaningful only if each fits; shifts drop the bits that do not.
        let bits = 1
            | (layer as usize) << 1
            | (id as usize) << (1 + Self::LAYER_BITS)
            | (count as usize) << (1 + Self::LAYER_BITS + Self::ID_BITS);
        (fits(u64::from(layer), Self::LAYER_BITS)
            && fits(u64::from(id), Self::ID_BITS)
            && fits(count, Self::COUNT_BITS))
        .then_some(bits)
    }

    fn layer(bits: usize) -> u32 {
        ((bits >> 1) & ((1 << Self::LAYER_BITS) - 1)) as u32
    }

    fn id(bits: usize) -> u32 {
        ((bits >> (1 + Self::LAYER_BITS)) & ((1 << Self::ID_BITS) - 1)) as u32
    }

    fn count(bits: usize) -> u64 {
        (bits >> (1 + Self::LAYER_BITS + Self::ID_BITS)) as u64
    }
}

#[derive(Debug, Clone)]
struct Full {
    hit: Hit,
    count: u64,
    /// What a narrowed answer keeps (else the locations are read from the
    /// index).
    narrowed: Option<Narrowed>,
}

#[derive(Debug, Clone)]
struct Narrowed {
    /// With `-s`: the word as spelled in the files.
    spelled: Option<String>,
    /// The locations kept.
    listed: Vec<Location>,
}

impl Entry {
    /// `hit`, which occurs `count` times, its locations read from the
    /// index.
    fn lazy(hit: Hit, count: u64) -> Entry {
        let packed = hit
            .as_single()
            .and_then(|(layer, id)| Packed::pack(layer, id, count));
        match packed {
            Some(bits) => Entry {
                word: std::ptr::without_provenance_mut(bits),
            },
            None => Entry::boxed(Full {
                hit,
                count,
                narrowed: None,
            }),
        }
    }

    /// `hit` with the locations the narrowing kept.
    fn listed(hit: Hit, spelled: Option<String>, listed: Vec<Location>) -> Entry {
        Entry::boxed(Full {
            hit,
            count: listed.len() as u64,
            narrowed: Some(Narrowed { spelled, listed }),
        })
    }

    fn boxed(full: Full) -> Entry {
        Entry {
            word: Box::into_raw(Box::new(full)),
        }
    }

    /// The packed bits, or `None` for a boxed entry.
    fn packed(&self) -> Option<usize> {
        let bits = self.word.addr();
        (bits & 1 == 1).then_some(bits)
    }

    fn full(&self) -> Option<&Full> {
        match self.packed() {
            Some(_) => None,
            // SAFETY: a clear tag bit means `word` came from
            // `Box::into_raw` and this entry owns the box until it drops.
            None => Some(unsafe { &*self.word }),
        }
    }

    fn full_mut(&mut self) -> Option<&mut Full> {
        match self.packed() {
            Some(_) => None,
            // SAFETY: as in `full`, and `&mut self` is the only access.
            None => Some(unsafe { &mut *self.word }),
        }
    }

    fn hit(&self) -> Hit {
        match self.full() {
            Some(full) => full.hit,
            None => {
                let bits = self.word.addr();
                Hit::single(Packed::layer(bits), Packed::id(bits))
            }
        }
    }

    fn narrowed(&self) -> Option<&Narrowed> {
        self.full().and_then(|full| full.narrowed.as_ref())
    }

    /// Sets the count of a narrowed entry (always boxed).
    fn set_count(&mut self, count: u64) {
        if let Some(full) = self.full_mut() {
            full.count = count;
        }
    }

    fn narrowed_mut(&mut self) -> Option<&mut Narrowed> {
        self.full_mut().and_then(|full| full.narrowed.as_mut())
    }

    /// The word as shown; [`Damaged`] if its stored block is.
    pub fn word<'v>(&'v self, view: &'v View) -> Result<Cow<'v, str>, Damaged> {
        match self.narrowed().and_then(|n| n.spelled.as_ref()) {
            Some(word) => Ok(Cow::Borrowed(word)),
            None => view.word(&self.hit()),
        }
    }

    /// [`word`](Self::word) through `words`, for entries read in word
    /// order (see [`View::word_reader`]).
    pub fn word_from<'r>(&'r self, words: &'r mut HitWords<'_>) -> Result<Cow<'r, str>, Damaged> {
        match self.narrowed().and_then(|n| n.spelled.as_ref()) {
            Some(word) => Ok(Cow::Borrowed(word)),
            None => words.word(&self.hit()),
        }
    }

    /// Its occurrences in the answer.
    pub fn count(&self) -> u64 {
        match self.full() {
            Some(full) => full.count,
            None => Packed::count(self.word.addr()),
        }
    }

    /// Its locations, in (path, line, column) order.
    pub fn locations<'v>(
        &'v self,
        view: &'v View,
    ) -> Result<Box<dyn Iterator<Item = Location> + 'v>, Damaged> {
        Ok(match self.narrowed() {
            Some(narrowed) => Box::new(narrowed.listed.iter().copied()),
            None => Box::new(view.locations(&self.hit())?),
        })
    }

    /// Its first `n` locations, reading no further than needed.
    pub fn first(&self, view: &View, n: usize) -> Result<Vec<Location>, Damaged> {
        match self.narrowed() {
            Some(narrowed) => Ok(narrowed.listed.iter().take(n).copied().collect()),
            None => view.first_locations(&self.hit(), n),
        }
    }

    /// The index words whose lists printing this answer reads.
    pub fn lazy_hits(entries: &[Entry]) -> Vec<Hit> {
        entries
            .iter()
            .filter(|e| e.narrowed().is_none())
            .map(Entry::hit)
            .collect()
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        if self.packed().is_none() {
            // SAFETY: a clear tag bit means `word` came from
            // `Box::into_raw`, owned by this entry, dropped once here.
            drop(unsafe { Box::from_raw(self.word) });
        }
    }
}

impl Clone for Entry {
    fn clone(&self) -> Entry {
        match self.full() {
            Some(full) => Entry::boxed(full.clone()),
            None => Entry { word: self.word },
        }
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("hit", &self.hit())
            .field("count", &self.count())
            .field("narrowed", &self.narrowed())
            .finish()
    }
}

/// How an answer is narrowed beyond its terms.
pub struct Narrowing<'a> {
    pub paths: &'a PathFilter,
    /// `-s`: keep locations spelled as the query is, read from `tree`.
    pub case_sensitive: bool,
    pub tree: Option<&'a std::path::Path>,
}

/// Why a request has no answer.
#[derive(Debug)]
pub enum FindError {
    /// The request cannot be answered as written (said in the message).
    Input(String),
    /// The saved index failed a check while answering.
    Damaged,
}

impl From<String> for FindError {
    fn from(message: String) -> Self {
        FindError::Input(message)
    }
}

impl From<Damaged> for FindError {
    fn from(_: Damaged) -> Self {
        FindError::Damaged
    }
}

/// The words answering `request`, in ascending byte order.
pub fn find(
    view: &View,
    request: &Request,
    narrowing: &Narrowing<'_>,
) -> Result<Vec<Entry>, FindError> {
    let admitted = narrowing.paths.admitted(view, &request.paths)?;
    if let ([(_, query)], None, false) = (&request.terms[..], &admitted, narrowing.case_sensitive) {
        // One term, nothing to narrow by: each word an entry as it is
        // found, with its count, its locations read as they are printed.
        return Ok(
            view.counted_hits_as(|vocabulary| matching_words(vocabulary, query), Entry::lazy)?
        );
    }
    let per_term: Vec<Vec<Hit>> = request
        .terms
        .iter()
        .map(|(_, query)| view.hits(|vocabulary| matching_words(vocabulary, query)))
        .collect::<Result<_, Damaged>>()?;
    let mut terms: Vec<Vec<Entry>> = Vec::with_capacity(per_term.len());
    for ((text, _), term) in request.terms.iter().zip(per_term) {
        let cased = match narrowing.case_sensitive {
            true => Some(cased_regex(text)?),
            false => None,
        };
        let mut entries = Vec::new();
        for hit in term {
            let listed: Vec<Location> = view
                .locations(&hit)?
                .filter(|l| {
                    admitted
                        .as_ref()
                        .is_none_or(|a| a.get(l.file as usize).copied().unwrap_or(false))
                })
                .collect();
            if listed.is_empty() {
                continue;
            }
            match &cased {
                None => entries.push(Entry::listed(hit, None, listed)),
                Some(regex) => {
                    entries.extend(by_spelling(view, narrowing.tree, hit, &listed, regex))
                }
            }
        }
        terms.push(entries);
    }
    if terms.len() > 1 {
        // Files holding a match of every term.
        let mut common = vec![0usize; view.files().len()];
        for (k, entries) in terms.iter().enumerate() {
            for entry in entries {
                for location in entry.narrowed().iter().flat_map(|n| &n.listed) {
                    if let Some(c) = common.get_mut(location.file as usize) {
                        if *c == k {
                            *c = k + 1;
                        }
                    }
                }
            }
        }
        let every = terms.len();
        for entries in &mut terms {
            for entry in entries.iter_mut() {
                if let Some(narrowed) = entry.narrowed_mut() {
                    let listed = &mut narrowed.listed;
                    listed.retain(|l| common.get(l.file as usize) == Some(&every));
                    let kept = listed.len() as u64;
                    entry.set_count(kept);
                }
            }
            entries.retain(|e| e.count() > 0);
        }
    }
    // One entry per word, in byte order (a word may match two terms).
    let mut words: BTreeMap<Vec<u8>, Entry> = BTreeMap::new();
    for entry in terms.into_iter().flatten() {
        let key = entry.word(view)?.as_bytes().to_vec();
        words.entry(key).or_insert(entry);
    }
    Ok(words.into_values().collect())
}

/// `listed` split by the word's spelling in the file, keeping spellings
/// `cased` matches.
fn by_spelling(
    view: &View,
    tree: Option<&std::path::Path>,
    hit: Hit,
    listed: &[Location],
    cased: &Regex,
) -> Vec<Entry> {
    let mut spellings: BTreeMap<String, Vec<Location>> = BTreeMap::new();
    for page in listed.chunks(PAGE) {
        let lines = Lines::read(view, tree, page);
        for location in page {
            let Some(line) = lines.line(location) else {
                continue;
            };
            let at = usize::try_from(location.column.saturating_sub(1).saturating_sub(line.start))
                .unwrap_or(usize::MAX);
            let Some(rest) = line.text.get(at..) else {
                continue;
            };
            let word = String::from_utf8_lossy(&rest[..word_extent(rest, 0)]);
            if cased.is_match(&word) {
                spellings
                    .entry(word.into_owned())
                    .or_default()
                    .push(*location);
            }
        }
    }
    spellings
        .into_iter()
        .map(|(word, locations)| Entry::listed(hit, Some(word), locations))
        .collect()
}

/// The regex a word spelled as `term` says must match, case and all.
fn cased_regex(term: &str) -> Result<Regex, String> {
    let pattern = if let Some(word) = term.strip_prefix('=') {
        regex::escape(word)
    } else if term.len() >= 2 && term.starts_with('/') && term.ends_with('/') {
        format!("(?:{})", &term[1..term.len() - 1])
    } else if term.contains('*') {
        let pieces: Vec<String> = term.split('*').map(regex::escape).collect();
        format!("(?s:{})", pieces.join(".*"))
    } else {
        format!("{}.*", regex::escape(term))
    };
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| format!("invalid query {term:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an entry gives back is what it was made of, packed where the
    /// layer, number and count fit and boxed where they do not; a clone is
    /// its own (a boxed one a box of its own, dropped once each).
    #[test]
    fn entries_give_back_what_they_were_made_of() {
        let id_max = (1u32 << Packed::ID_BITS) - 1;
        let count_max = (1u64 << Packed::COUNT_BITS) - 1;
        let cases = [
            (0, 0, 0, true),
            (3, id_max, count_max, true),
            (1, 12_345, 678_901, true),
            (4, 7, 9, false),
            (0, id_max + 1, 9, false),
            (2, 7, count_max + 1, false),
            (0, 7, u64::MAX, false),
        ];
        for (layer, id, count, packs) in cases {
            let entry = Entry::lazy(Hit::single(layer, id), count);
            assert_eq!(entry.packed().is_some(), packs, "{layer} {id} {count}");
            for entry in [entry.clone(), entry] {
                assert_eq!(entry.hit().as_single(), Some((layer, id)));
                assert_eq!(entry.count(), count);
                assert!(entry.narrowed().is_none());
            }
        }
        let listed: Vec<Location> = (1..4)
            .map(|line| Location {
                file: 5,
                line,
                column: 2,
            })
            .collect();
        let mut entry = Entry::listed(Hit::single(1, 2), Some("Word".into()), listed.clone());
        assert!(entry.packed().is_none());
        assert_eq!(entry.count(), 3);
        entry.set_count(2);
        let copy = entry.clone();
        drop(entry);
        assert_eq!(copy.count(), 2);
        assert_eq!(copy.hit().as_single(), Some((1, 2)));
        let narrowed = copy.narrowed().expect("a listed entry is narrowed");
        assert_eq!(
            (narrowed.spelled.as_deref(), &narrowed.listed),
            (Some("Word"), &listed)
        );
    }
}
