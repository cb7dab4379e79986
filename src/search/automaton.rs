//! Patterns with no literal to narrow by, run as a lazy DFA along the
//! sorted words.
//!
//! `/(foo|bar)_.*/` or `*a*b*c*` give no prefix range and no substring to
//! search for, and checking each of millions of words with a regex takes a
//! quarter of a second. Sorted words share prefixes, so the automaton's
//! state after each byte of a word is kept for the next word sharing those
//! bytes, and once a prefix's state is dead no word beginning with it can
//! match: the walk passes over all of them at once ([`Vocabulary::walk`]).
//! The DFA is regex-automata's lazy one: states are built as the walk meets
//! them, so a pattern that would make a huge DFA costs only what it visits.

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::hybrid::LazyStateID;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchKind};

use crate::index::{Step, Vocabulary};

/// Memory the lazy DFA may use for its states before it starts over.
const CACHE_BYTES: usize = 8 << 20;

/// A pattern compiled for [`Automaton::select`].
pub struct Automaton {
    dfa: DFA,
}

impl Automaton {
    /// Compiles `pattern` to match whole words; `None` when the lazy DFA
    /// cannot take it (a Unicode word boundary, say): the caller then
    /// checks words one by one.
    pub fn new(pattern: &str) -> Option<Automaton> {
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
        Some(Automaton { dfa })
    }

    /// The numbers of the words the pattern matches, ascending; `None` if
    /// the DFA gave up (its cache thrashing), for the caller to fall back.
    /// A large vocabulary is walked in two halves side by side.
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
        let dfa = &self.dfa;
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
            let automaton = Automaton::new(pattern).unwrap();
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
