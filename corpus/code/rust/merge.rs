use std::collections::BTreeMap;

pub type PartialIndex = BTreeMap<String, Vec<(u32, u64, u64)>>;

/// Merge `other` into `into`; the result does not depend on the order of merges
/// once each posting list is sorted.
pub fn merge(into: &mut PartialIndex, other: PartialIndex) {
    for (word, mut postings) in other {
        into.entry(word).or_default().append(&mut postings);
    }
    for postings in into.values_mut() {
        postings.sort_unstable();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_is_independent_of_order() {
        let a: PartialIndex = [("river".to_string(), vec![(0, 1, 1)])].into();
        let b: PartialIndex = [("river".to_string(), vec![(1, 2, 5)])].into();
        let mut ab = a.clone();
        merge(&mut ab, b.clone());
        let mut ba = b;
        merge(&mut ba, a);
        assert_eq!(ab, ba);
    }
}
