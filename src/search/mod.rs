//! Answering fragment queries over an index's vocabulary.
//!
//! A query names a set of words (see [`Query`] for the forms); the answer is
//! those words' numbers in ascending byte order, from which the caller reads
//! counts and locations. Search only reads the [`Vocabulary`]: it knows
//! nothing of how the index was built, and never forks.

mod automaton;
mod lanes;
mod query;
mod similar;

pub use query::{Filter, Query, QueryError};
pub use similar::similar_words;

use crate::index::{Picks, Vocabulary};

/// A needle of one byte hits nearly every word: walking the words is
/// faster. From two bytes on, the substring search wins in both forms (a
/// saved vocabulary's block signatures rule out most blocks; an arena is
/// one memmem pass): `*iv*` on the kernel 145 -> 40 ms saved, 119 -> 28 ms
/// fresh.
const MIN_NEEDLE: usize = 2;

/// Spellings of `text` with each lowercase sigma as either σ or ς: to a
/// case-insensitive match they are one letter, but `str::to_lowercase`
/// writes a word-final Σ as ς, so "ΟΔΥΣ" lowercases to "οδυς" while the
/// word it begins, "οδυσσέας", has σ. `None` past 2^6 spellings.
fn sigma_spellings(text: &str) -> Option<Vec<String>> {
    let mut spellings = vec![String::new()];
    for c in text.chars() {
        if c == 'σ' || c == 'ς' {
            if spellings.len() >= 64 {
                return None;
            }
            let other: Vec<String> = spellings.iter().map(|s| format!("{s}ς")).collect();
            for s in &mut spellings {
                s.push('σ');
            }
            spellings.extend(other);
        } else {
            for s in &mut spellings {
                s.push(c);
            }
        }
    }
    Some(spellings)
}

/// Words matching any spelling of `text` (see [`sigma_spellings`]), by
/// `select` for one spelling, or, past the cap, by `fallback` over all words.
fn by_spelling<I: Iterator<Item = usize>>(
    vocabulary: &Vocabulary,
    text: &str,
    select: impl Fn(&[u8]) -> I,
    fallback: impl Fn(&[u8]) -> bool,
) -> Vec<usize> {
    if !text.contains(['σ', 'ς']) {
        return select(text.as_bytes()).collect();
    }
    let mut ids: Vec<usize> = match sigma_spellings(text) {
        Some(spellings) => spellings
            .iter()
            .flat_map(|s| select(s.as_bytes()))
            .collect(),
        None => vocabulary.select_in(0..vocabulary.len(), &fallback),
    };
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The numbers of the words `query` matches, in ascending byte order.
pub fn matching_words(vocabulary: &Vocabulary, query: &Query) -> Picks {
    match query {
        Query::Prefix(prefix) => by_spelling(
            vocabulary,
            prefix,
            |p| vocabulary.prefix_range(p),
            |w| w.len() >= prefix.len() && query::same(&w[..prefix.len()], prefix.as_bytes()),
        )
        .into(),
        Query::Exact(word) => by_spelling(
            vocabulary,
            word,
            |w| vocabulary.find(w).into_iter(),
            |w| query::same(w, word.as_bytes()),
        )
        .into(),
        Query::Pattern {
            regex,
            filter,
            automaton,
            ..
        } => {
            let fits = |word: &[u8]| {
                word.len() >= filter.min_len
                    && word.len() <= filter.max_len
                    && (filter.suffix.is_empty()
                        || word.len() >= filter.suffix.len()
                            && query::same(
                                &word[word.len() - filter.suffix.len()..],
                                filter.suffix.as_bytes(),
                            ))
                    && match &filter.glob {
                        Some(pieces) => Filter::glob_matches(pieces, word),
                        // Words come from decoded characters: valid UTF-8.
                        None => std::str::from_utf8(word).is_ok_and(|w| regex.is_match(w)),
                    }
            };
            let any = |_: &[u8]| true;
            // What the literal searches below hand back needs no check.
            let checked: &(dyn Fn(&[u8]) -> bool + Sync) = match filter.literal_alone {
                true => &any,
                false => &fits,
            };
            if filter
                .glob
                .as_ref()
                .is_some_and(|p| p.iter().all(String::is_empty))
            {
                // `*`, `**`, ...: every word.
                Picks::span(0..vocabulary.len())
            } else if let Some(suffix) = filter
                .prefix
                .is_empty()
                .then(|| filter.searchable_suffix())
                .flatten()
            {
                // Every match ends with a literal at least as long as any
                // other it holds: one search for it at words' ends.
                vocabulary.ending_with(suffix.as_bytes(), checked)
            } else if filter.prefix.is_empty() && filter.needle.len() >= MIN_NEEDLE {
                // No prefix to narrow by, but a literal every match holds:
                // one substring search over all the words, then the check
                // on the few words it lands in. A match of the literal
                // alone is picked by lanes where it is common.
                match lanes::GlobLanes::substring(&filter.needle).filter(|_| filter.literal_alone) {
                    Some(lanes) => vocabulary.holding(filter.needle.as_bytes(), &|text, picked| {
                        lanes.pick(text, picked)
                    }),
                    None => vocabulary.containing(filter.needle.as_bytes(), checked),
                }
            } else if let Some(lanes) = filter
                .glob
                .as_ref()
                .filter(|_| filter.prefix.is_empty())
                .and_then(|pieces| lanes::GlobLanes::new(pieces))
            {
                // A glob with nothing to narrow by: its pieces matched over
                // a thousand words at a time.
                lanes.select(vocabulary)
            } else if let Some(ids) = filter
                .prefix
                .is_empty()
                .then(|| automaton::Automaton::new(automaton))
                .flatten()
                .and_then(|dfa| dfa.select(vocabulary))
            {
                // Nothing to narrow by: the DFA along the sorted words.
                ids.into()
            } else {
                let range = vocabulary.prefix_range(filter.prefix.as_bytes());
                vocabulary.select_in(range, &fits).into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(words: &[&str]) -> Vocabulary {
        let mut sorted: Vec<&str> = words.to_vec();
        sorted.sort();
        let mut v = Vocabulary::default();
        for w in sorted {
            v.push(w.as_bytes());
        }
        v
    }

    fn answer(v: &Vocabulary, q: &str) -> Vec<String> {
        let query = Query::parse(q).unwrap();
        matching_words(v, &query)
            .into_ids()
            .into_iter()
            .map(|i| v.word_str(i).to_string())
            .collect()
    }

    /// Words shaped like the kernel's, with traps: a long s, sigmas, a
    /// letter whose uppercase has a second lowercase form (k, Kelvin sign).
    const SAMPLE: [&str; 27] = [
        "spin_lock",
        "spin_lock_irq",
        "spinlock",
        "size_t",
        "unlock",
        "lock",
        "é",
        "ſpin",
        "k",
        "kelvin",
        "sock_t",
        "_t",
        "t",
        "a_b_c",
        "abc",
        "aabbcc",
        "cab",
        "x86_64",
        "0xdeadbeef",
        "deadbeef",
        "σοφος",
        "οδος",
        "lock_lock",
        "locklock",
        "ab",
        "ba",
        // What İ lowercases to, which /İ/ does not match.
        "i\u{307}x",
    ];

    /// The filters only skip words: they must never change an answer. Check
    /// them against running the plain anchored regex over every word.
    #[test]
    fn filters_agree_with_a_plain_scan() {
        let words = SAMPLE;
        let v = vocab(&words);
        let queries = [
            "*lock*",
            "*_t",
            "*a*b*c*",
            "*",
            "**",
            "a*",
            "*b",
            "s*k",
            "*lo*ck*",
            "*ſ*",
            "*ος",
            "*ς",
            "*_",
            "*t",
            "/.*LOCK.*/",
            "/.+lock.*/",
            "/.*lock.+/",
            "/.*lock/",
            "/.*lock_.*/",
            "/.*x/",
            "/.*İ.*/",
            "/.*K.*/",
            "/.*k/",
            "/.*(lock|unlock).*/",
            "/.*?lock.*?/",
            "/.*_T/",
            "/spin_.*_irq/",
            "/[a-f0-9]{8}/",
            "/(foo|spin)_.*/",
            "/K.*/",
            "/.*/",
            "/lock(lock)?/",
            "/x86_64/",
            "/Σ.*/",
            "/.*ς/",
            "/ab|ba/",
            "/a?b/",
        ];
        let mut sorted = words.to_vec();
        sorted.sort();
        // Fresh, saved before the plain text and suffix keys, saved now.
        let forms = [
            v.clone(),
            Vocabulary::front_coded_of(&sorted),
            Vocabulary::front_coded_as_saved(&sorted),
        ];
        for q in queries {
            let query = Query::parse(q).unwrap();
            let plain: Vec<String> = match &query {
                Query::Pattern { regex, .. } => (0..v.len())
                    .filter(|&i| regex.is_match(&v.word_str(i)))
                    .map(|i| v.word_str(i).to_string())
                    .collect(),
                _ => unreachable!("{q} is a pattern"),
            };
            for form in &forms {
                assert_eq!(answer(form, q), plain, "query {q}");
            }
        }
    }

    /// A glob's literal with a sigma matches either spelling, so what a
    /// byte search finds for it is checked again, in every form.
    #[test]
    fn globs_with_a_sigma_match_either_spelling_in_every_form() {
        let words = ["οδος", "οδοσ", "οχι", "σοφος"];
        let forms = [
            vocab(&words),
            Vocabulary::front_coded_of(words),
            Vocabulary::front_coded_as_saved(words),
        ];
        for form in &forms {
            assert_eq!(answer(form, "*ος"), ["οδος", "οδοσ", "σοφος"]);
            assert_eq!(answer(form, "*οσ"), ["οδος", "οδοσ", "σοφος"]);
            assert_eq!(answer(form, "*σ*"), ["οδος", "οδοσ", "σοφος"]);
            assert_eq!(answer(form, "*ο*"), words);
        }
    }

    #[test]
    fn every_query_form_selects_the_right_words() {
        let v = vocab(&SAMPLE[..7]);
        assert_eq!(
            answer(&v, "SPIN"),
            ["spin_lock", "spin_lock_irq", "spinlock"]
        );
        assert_eq!(
            answer(&v, "*lock*"),
            ["lock", "spin_lock", "spin_lock_irq", "spinlock", "unlock"]
        );
        assert_eq!(answer(&v, "*_t"), ["size_t"]);
        assert_eq!(answer(&v, "spin*irq"), ["spin_lock_irq"]);
        assert_eq!(
            answer(&v, "/.*LOCK/"),
            ["lock", "spin_lock", "spinlock", "unlock"]
        );
        assert_eq!(answer(&v, "=Lock"), ["lock"]);
        assert_eq!(answer(&v, "=loc"), Vec::<String>::new());
        assert_eq!(answer(&v, "É"), ["é"]);
    }
}
