//! Patterns with no literal to narrow by, run as a DFA along the sorted
//! words.
//!
//! `/(foo|bar)_.*/` or `/[a-z]{3}_[0-9]+/` give no prefix range and no
//! substring to search for, and checking each of millions of words with a
//! regex takes a quarter of a second. (Globs of that kind, `*a*b*c*`, are
//! matched over many words at once by `lanes` before they come here.)
//! Sorted words share prefixes, so the automaton's state after each byte
//! of a word is kept for the next word sharing those bytes, and once a
//! prefix's state is dead no word beginning with it can match: the walk
//! passes over all of them at once ([`Vocabulary::walk`]).
//!
//! A pattern whose DFA is small (most are: `*a*b*c*` would have 34 states) is
//! determinized up front into a flat table, one `u32` per state and byte,
//! so a byte of a word costs one load and no check. A pattern whose DFA
//! would be large runs on regex-automata's lazy DFA instead, whose states
//! are built as the walk meets them, so it costs only what it visits.

use std::collections::HashMap;

use regex_automata::dfa::{dense, Automaton as _, StartKind};
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::hybrid::LazyStateID;
use regex_automata::util::{start, syntax};
use regex_automata::{Anchored, Input, MatchKind};

use crate::index::{Step, Vocabulary};

/// Memory the lazy DFA may use for its states before it starts over.
const CACHE_BYTES: usize = 8 << 20;

/// Most states a pattern's table may have (256 `u32`s each: 256 KiB). A
/// pattern past it has cost the attempt to determinize it (bounded by this
/// too, about a millisecond) and runs on the lazy DFA, which builds only
/// the states the words lead to.
const TABLE_STATES: usize = 256;

/// A pattern compiled for [`Automaton::select`].
pub enum Automaton {
    /// A small DFA, fully built.
    Table(Table),
    /// A DFA built lazily as the words need its states.
    Lazy(Box<DFA>),
}

/// A whole DFA as a flat transition table over bytes: a step is one load,
/// with no check for states not built yet or tagged, as the lazy DFA's
/// steps need.
pub struct Table {
    /// `next[state + byte]`: the state after `byte`. States are numbered
    /// premultiplied (a state's number is its row's offset).
    next: Vec<u32>,
    start: u32,
    /// The state no continuation leaves (`u32::MAX` if none).
    dead: u32,
    /// Whether a word ending in state `s` matches: `accepts[s / 256]`.
    accepts: Vec<bool>,
}

impl Table {
    /// The table of `pattern` (anchored at both ends), if its DFA is small.
    fn new(pattern: &str) -> Option<Table> {
        let limit = TABLE_STATES * 256 * 4;
        let dfa = dense::Builder::new()
            .configure(
                dense::Config::new()
                    .match_kind(MatchKind::All)
                    .start_kind(StartKind::Anchored)
                    .dfa_size_limit(Some(limit))
                    .determinize_size_limit(Some(limit)),
            )
            .syntax(syntax::Config::new().utf8(true))
            .build(&format!("^(?:{pattern})$"))
            .ok()?;
        let first = dfa
            .start_state(&start::Config::new().anchored(Anchored::Yes))
            .ok()?;
        // Number the states reachable from the start, breadth first.
        let mut number = HashMap::from([(first, 0u32)]);
        let mut order = vec![first];
        let mut next = Vec::new();
        let mut accepts = Vec::new();
        let mut dead = u32::MAX;
        while let Some(&state) = order.get(accepts.len()) {
            if dfa.is_quit_state(state) || order.len() > TABLE_STATES {
                return None;
            }
            if dfa.is_dead_state(state) {
                dead = (accepts.len() * 256) as u32;
            }
            accepts.push(dfa.is_match_state(dfa.next_eoi_state(state)));
            for byte in 0..=255u8 {
                let to = dfa.next_state(state, byte);
                let n = order.len() as u32;
                let to = *number.entry(to).or_insert_with(|| {
                    order.push(to);
                    n
                });
                next.push(to * 256);
            }
        }
        Some(Table {
            next,
            start: 0,
            dead,
            accepts,
        })
    }

    fn select_part(&self, vocabulary: &Vocabulary, part: usize, parts: usize) -> Vec<usize> {
        // states[d]: the state after the current word's first d bytes, for
        // d up to `known`.
        let mut states: Vec<u32> = vec![self.start; 64];
        let mut known = 0usize;
        let mut found = Vec::new();
        vocabulary.walk_part(part, parts, &mut |id, word, shared| {
            if states.len() <= word.len() {
                states.resize(word.len() + 1, 0);
            }
            let mut state = states[shared.min(known)];
            for (d, &byte) in word.iter().enumerate().skip(shared.min(known)) {
                state = self.next[state as usize + byte as usize];
                if state == self.dead {
                    // No word beginning with these bytes matches.
                    known = d;
                    return Step::SkipPrefix(d + 1);
                }
                states[d + 1] = state;
            }
            known = word.len();
            if self.accepts[state as usize / 256] {
                found.push(id);
            }
            Step::Next
        });
        found
    }
}

impl Automaton {
    /// Compiles `pattern` to match whole words; `None` when the lazy DFA
    /// cannot take it (a Unicode word boundary, say): the caller then
    /// checks words one by one.
    pub fn new(pattern: &str) -> Option<Automaton> {
        match Table::new(pattern) {
            Some(table) => Some(Automaton::Table(table)),
            None => Automaton::lazy(pattern),
        }
    }

    /// `pattern` on the lazy DFA, whatever its size.
    fn lazy(pattern: &str) -> Option<Automaton> {
        let dfa = DFA::builder()
            .configure(
                DFA::config()
                    .match_kind(MatchKind::All)
                    .cache_capacity(CACHE_BYTES)
                    .skip_cache_capacity_check(true),
            )
            .syntax(syntax::Config::new().utf8(true))
            .build(&format!("^(?:{pattern})$"))
            .ok()?;
        Some(Automaton::Lazy(Box::new(dfa)))
    }

    /// The numbers of the words the pattern matches, ascending; `None` if
    /// the DFA gave up (its cache thrashing), for the caller to fall back.
    /// A large vocabulary is walked in parts side by side.
    pub fn select(&self, vocabulary: &Vocabulary) -> Option<Vec<usize>> {
        let parts = vocabulary.in_parts(|part, parts| self.select_part(vocabulary, part, parts));
        Some(parts.into_iter().collect::<Option<Vec<_>>>()?.concat())
    }

    fn select_part(
        &self,
        vocabulary: &Vocabulary,
        part: usize,
        parts: usize,
    ) -> Option<Vec<usize>> {
        match self {
            Automaton::Table(table) => Some(table.select_part(vocabulary, part, parts)),
            Automaton::Lazy(dfa) => lazy_select_part(dfa, vocabulary, part, parts),
        }
    }
}

/// [`Automaton::select_part`] on the lazy DFA; `None` if its cache thrashed.
fn lazy_select_part(
    dfa: &DFA,
    vocabulary: &Vocabulary,
    part: usize,
    parts: usize,
) -> Option<Vec<usize>> {
    let mut cache: Cache = dfa.create_cache();
    let start = dfa
        .start_state_forward(&mut cache, &Input::new("").anchored(Anchored::Yes))
        .ok()?;
    // states[d]: the state after the current word's first d bytes.
    let mut states: Vec<LazyStateID> = vec![start];
    let mut found = Vec::new();
    let mut failed = false;
    vocabulary.walk_part(part, parts, &mut |id, word, shared| {
        if failed {
            return Step::Next;
        }
        states.truncate(shared.min(states.len() - 1) + 1);
        let mut state = states[states.len() - 1];
        for &byte in &word[states.len() - 1..] {
            // The untagged transition is a table read; tagged states
            // (unknown, dead, quit, match) take the full path.
            let fast = (!state.is_tagged())
                .then(|| dfa.next_state_untagged(&cache, state, byte))
                .filter(|next| !next.is_tagged());
            state = match fast {
                Some(next) => next,
                None => match dfa.next_state(&mut cache, state, byte) {
                    Ok(next) if !next.is_quit() => next,
                    _ => {
                        failed = true;
                        return Step::Next;
                    }
                },
            };
            if state.is_dead() {
                // No word beginning with these bytes matches.
                return Step::SkipPrefix(states.len());
            }
            states.push(state);
        }
        if dfa
            .next_eoi_state(&mut cache, state)
            .is_ok_and(|end| end.is_match())
        {
            found.push(id);
        }
        Step::Next
    });
    (!failed).then_some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATTERNS: [&str; 8] = [
        "(a|b)_.*",
        "[ab]{2}_[c_]*",
        ".*a.*b.*",
        "a?b|ba",
        "c+",
        ".*_",
        "(?i:A.*C)",
        "[^a]*",
    ];

    /// A pattern whose DFA has more states than a table may hold (the
    /// 13th byte from the end must be an `a`: 2^13 states) runs lazily and
    /// selects what the regex matches.
    #[test]
    fn a_pattern_too_large_for_a_table_runs_lazily() {
        let pattern = "[ab]*a[ab]{12}";
        let mut words: Vec<String> = (0u32..1 << 14)
            .map(|n| {
                (0..14)
                    .map(|k| if n >> k & 1 == 1 { 'a' } else { 'b' })
                    .collect()
            })
            .collect();
        words.sort();
        let regex = regex::Regex::new(&format!("^(?:{pattern})$")).unwrap();
        let want: Vec<usize> = (0..words.len())
            .filter(|&i| regex.is_match(&words[i]))
            .collect();
        let automaton = Automaton::new(pattern).unwrap();
        assert!(matches!(automaton, Automaton::Lazy(_)));
        let front = Vocabulary::front_coded_of(&words);
        assert_eq!(automaton.select(&front), Some(want));
    }

    proptest::proptest! {
        /// The walk finds exactly the words the regex matches whole, in
        /// both vocabulary forms, whatever it skips.
        #[test]
        fn the_walk_selects_what_the_regex_matches(
            mut words in proptest::collection::vec("[abc_]{1,8}", 0..400),
            pick in 0usize..8,
        ) {
            words.sort();
            words.dedup();
            let pattern = PATTERNS[pick];
            let regex = regex::Regex::new(&format!("^(?:{pattern})$")).unwrap();
            let want: Vec<usize> = (0..words.len()).filter(|&i| regex.is_match(&words[i])).collect();
            let mut arena = Vocabulary::default();
            for w in &words {
                arena.push(w.as_bytes());
            }
            let front = Vocabulary::front_coded_of(&words);
            let table = Automaton::new(pattern).unwrap();
            proptest::prop_assert!(matches!(table, Automaton::Table(_)));
            for automaton in [table, Automaton::lazy(pattern).unwrap()] {
                proptest::prop_assert_eq!(automaton.select(&arena), Some(want.clone()));
                proptest::prop_assert_eq!(automaton.select(&front), Some(want.clone()));
                // Walked in parts (as threads do), the parts add up.
                for parts in [2, 3] {
                    for vocabulary in [&arena, &front] {
                        let mut joined = Vec::new();
                        for part in 0..parts {
                            joined.extend(automaton.select_part(vocabulary, part, parts).unwrap());
                        }
                        proptest::prop_assert_eq!(&joined, &want);
                    }
                }
            }
        }
    }
}
