//! "Did you mean": the indexed words within a small edit distance of a
//! word that matched nothing.
//!
//! Comparing the word with each of millions of words would take a second;
//! the vocabulary is sorted, so it is walked as the trie it spells out: the
//! edit-distance table's rows for a word's prefix are kept for the next
//! word sharing that prefix, and once every cell of a prefix's row exceeds
//! the distance allowed, no word beginning with that prefix can come
//! within it, and all of them are skipped at once.

use crate::index::{Step, Vocabulary};

/// The numbers of the words within `max` edits (insertions, deletions,
/// substitutions of bytes) of `target`, ascending, each with its distance.
/// A large vocabulary is walked in parts side by side.
pub fn similar_words(vocabulary: &Vocabulary, target: &[u8], max: usize) -> Vec<(usize, usize)> {
    vocabulary
        .in_parts(|part, parts| similar_in_part(vocabulary, target, max, part, parts))
        .concat()
}

fn similar_in_part(
    vocabulary: &Vocabulary,
    target: &[u8],
    max: usize,
    part: usize,
    parts: usize,
) -> Vec<(usize, usize)> {
    let columns = target.len() + 1;
    // Cells are capped at max + 1: past it, how far does not matter.
    let cap = u8::try_from(max + 1).unwrap_or(u8::MAX);
    let limit = |n: usize| u8::try_from(n).unwrap_or(u8::MAX).min(cap);
    // The table's rows for the current word's first bytes, flat: row d (after d bytes) is
    // rows[d * columns..][..columns]; row 0 is the empty prefix's.
    let mut rows: Vec<u8> = (0..columns).map(limit).collect();
    let mut depth = 0usize; // bytes of the current word the rows cover
    let mut found = Vec::new();
    vocabulary.walk_part(part, parts, &mut |id, word, shared| {
        let shared = shared.min(depth);
        rows.truncate((shared + 1) * columns);
        depth = shared;
        for &byte in &word[shared..] {
            let above = rows.len() - columns;
            let mut least = limit(depth + 1);
            rows.push(least);
            for j in 1..columns {
                let substitute = rows[above + j - 1] + u8::from(target[j - 1] != byte);
                let cell = substitute
                    .min(rows[above + j] + 1)
                    .min(rows[above + columns + j - 1] + 1)
                    .min(cap);
                least = least.min(cell);
                rows.push(cell);
            }
            depth += 1;
            if usize::from(least) > max {
                // No word beginning with this prefix comes within `max`.
                return Step::SkipPrefix(depth);
            }
        }
        if usize::from(rows[rows.len() - 1]) <= max {
            found.push((id, usize::from(rows[rows.len() - 1])));
        }
        Step::Next
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn distance(a: &[u8], b: &[u8]) -> usize {
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, &x) in a.iter().enumerate() {
            let mut next = vec![i + 1];
            for (j, &y) in b.iter().enumerate() {
                next.push(
                    (row[j] + usize::from(x != y))
                        .min(row[j + 1] + 1)
                        .min(next[j] + 1),
                );
            }
            row = next;
        }
        row[b.len()]
    }

    proptest::proptest! {
        #[test]
        fn the_walk_finds_exactly_the_words_a_comparison_with_each_finds(
            mut words in proptest::collection::vec("[abc]{0,7}", 0..300),
            target in "[abcd]{0,6}",
            max in 0usize..3,
        ) {
            words.sort();
            words.dedup();
            words.retain(|w| !w.is_empty());
            let mut vocabulary = Vocabulary::default();
            for w in &words {
                vocabulary.push(w.as_bytes());
            }
            let front = Vocabulary::front_coded_of(&words);
            let want: Vec<(usize, usize)> = words
                .iter()
                .enumerate()
                .map(|(id, w)| (id, distance(w.as_bytes(), target.as_bytes())))
                .filter(|&(_, d)| d <= max)
                .collect();
            proptest::prop_assert_eq!(&similar_words(&vocabulary, target.as_bytes(), max), &want);
            proptest::prop_assert_eq!(&similar_words(&front, target.as_bytes(), max), &want);
        }
    }
}
