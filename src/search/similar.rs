//! "Did you mean": the indexed words within a small edit distance of a
//! word that matched nothing.
//!
//! Comparing the word with each of millions of words would take a second;
//! the vocabulary is sorted, so it is walked as the trie it spells out: the
//! edit-distance table's rows for a word's prefix are kept for the next
//! word sharing that prefix, and once every cell of a prefix's row exceeds
//! the distance allowed, no word beginning with that prefix can come
//! within it, and all of them are skipped at once.

use crate::index::Vocabulary;

/// Words beginning with a dead prefix checked one by one before jumping
/// past them with a binary search (most dead prefixes are short runs).
const STEP_BEFORE_JUMP: usize = 32;

/// The numbers of the words within `max` edits (insertions, deletions,
/// substitutions of bytes) of `target`, ascending, each with its distance.
pub fn similar_words(vocabulary: &Vocabulary, target: &[u8], max: usize) -> Vec<(usize, usize)> {
    let columns = target.len() + 1;
    // rows[d]: the table's row after the first d bytes of `prefix`.
    let mut rows: Vec<Vec<usize>> = vec![(0..columns).collect()];
    let mut prefix: Vec<u8> = Vec::new();
    let mut found = Vec::new();
    let total = vocabulary.len();
    let mut start = 0;
    while start < total {
        // Where to resume when a dead prefix covers more than a few words.
        let mut jump: Option<Vec<u8>> = None;
        let mut dead: Option<(usize, usize)> = None; // (prefix length, words skipped)
        vocabulary.for_each_in(start..total, &mut |id, word| {
            if let Some((length, skipped)) = &mut dead {
                if word.len() >= *length && word[..*length] == prefix[..*length] {
                    *skipped += 1;
                    if *skipped > STEP_BEFORE_JUMP {
                        jump = Some(prefix[..*length].to_vec());
                        return false;
                    }
                    return true;
                }
                dead = None;
            }
            let shared = prefix.iter().zip(word).take_while(|(a, b)| a == b).count();
            rows.truncate(shared + 1);
            prefix.truncate(shared);
            for &byte in &word[shared..] {
                let above = &rows[rows.len() - 1];
                let mut row = Vec::with_capacity(columns);
                row.push(above[0] + 1);
                for j in 1..columns {
                    let substitute = above[j - 1] + usize::from(target[j - 1] != byte);
                    row.push(substitute.min(above[j] + 1).min(row[j - 1] + 1));
                }
                let least = row.iter().copied().min().unwrap_or(0);
                rows.push(row);
                prefix.push(byte);
                if least > max {
                    dead = Some((prefix.len(), 0));
                    return true;
                }
            }
            let distance = rows[rows.len() - 1][columns - 1];
            if distance <= max {
                found.push((id, distance));
            }
            true
        });
        match jump {
            Some(dead_prefix) => {
                start = vocabulary.prefix_range(&dead_prefix).end.max(start + 1);
            }
            None => break,
        }
    }
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
            let want: Vec<(usize, usize)> = words
                .iter()
                .enumerate()
                .map(|(id, w)| (id, distance(w.as_bytes(), target.as_bytes())))
                .filter(|&(_, d)| d <= max)
                .collect();
            proptest::prop_assert_eq!(similar_words(&vocabulary, target.as_bytes(), max), want);
        }
    }
}
