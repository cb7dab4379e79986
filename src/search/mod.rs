//! Answering fragment queries over an index's vocabulary.
//!
//! A query names a set of words (see [`Query`] for the forms); the answer is
//! those words' numbers in ascending byte order, from which the caller reads
//! counts and locations. Search only reads the [`Vocabulary`]: it knows
//! nothing of how the index was built, and never forks.

mod query;

pub use query::{Query, QueryError};

use crate::index::Vocabulary;

/// The numbers of the words `query` matches, in ascending byte order.
pub fn matching_words(vocabulary: &Vocabulary, query: &Query) -> Vec<usize> {
    match query {
        Query::Prefix(prefix) => vocabulary.prefix_range(prefix.as_bytes()).collect(),
        Query::Exact(word) => vocabulary.find(word.as_bytes()).into_iter().collect(),
        Query::Pattern {
            regex,
            literal_prefix,
            ..
        } => vocabulary
            .prefix_range(literal_prefix.as_bytes())
            .filter(|&id| regex.is_match(vocabulary.word_str(id)))
            .collect(),
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
            .into_iter()
            .map(|i| v.word_str(i).to_string())
            .collect()
    }

    #[test]
    fn every_query_form_selects_the_right_words() {
        let v = vocab(&[
            "spin_lock",
            "spin_lock_irq",
            "spinlock",
            "size_t",
            "unlock",
            "lock",
            "é",
        ]);
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
