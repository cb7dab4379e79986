//! A tournament of losers, for the k-way merges of runs (and of the
//! walk's file lists).
//!
//! Each inner node keeps the loser of the match played there, so after the
//! winner's source moves on, one path from its leaf to the root is
//! replayed: log2(k) comparisons per word, where a binary heap's pop and
//! push need about three times as many. Both merges (runs in memory, runs
//! streamed) spend most of their comparisons here.

/// A word's first sixteen bytes, zero-padded, as a big-endian number:
/// words order as their prefixes do wherever these differ, so the merges'
/// comparisons rarely look at the words themselves.
#[inline]
pub(crate) fn word_prefix(word: &[u8]) -> u128 {
    let mut prefix = [0u8; 16];
    let n = word.len().min(16);
    prefix[..n].copy_from_slice(&word[..n]);
    u128::from_be_bytes(prefix)
}

/// A key that knows which source it is the current key of.
pub(crate) trait Sourced: Copy {
    fn source(&self) -> usize;
}

/// The current keys of `k` sources, the least of them on top.
///
/// Each node holds its loser's key, which names its source, so a replay
/// compares against keys in the path itself: one load per level, where
/// looking keys up by leaf made two dependent ones (the kernel's merge
/// spent most of its time waiting on them). A node is the key alone, not
/// the key beside its leaf: the merge's keys fit 32 bytes that way, where
/// a leaf beside them made 64, and a replay moves one node a level.
pub(crate) struct LoserTree<K> {
    /// Leaves, one a source: leaf `s` is node `leaves + s` of a heap-shaped
    /// tree, so a replay plays about log2(k) matches; padded to a power of
    /// two, the kernel's 71 runs made every path 7 matches long, where most
    /// are 6 this way.
    leaves: usize,
    /// `nodes[0]` is the winner; `nodes[1..]` the losers of inner matches.
    /// A key is `None` once its source ran dry.
    nodes: Vec<Option<K>>,
}

impl<K: Sourced> LoserTree<K> {
    /// A tree over the sources' first keys (source `s`'s key, if any, at
    /// `keys[s]`, and naming `s`); `less` must order any two keys of
    /// different sources strictly (ties broken by source, say).
    pub(crate) fn new(keys: Vec<Option<K>>, less: impl Fn(&K, &K) -> bool) -> Self {
        debug_assert!(keys
            .iter()
            .enumerate()
            .all(|(s, key)| key.is_none_or(|key| key.source() == s)));
        let leaves = keys.len().max(1);
        let mut tree = LoserTree {
            leaves,
            nodes: vec![None; leaves],
        };
        // Play every match bottom-up, keeping the winners aside.
        let mut winners: Vec<Option<K>> = vec![None; 2 * leaves];
        for (leaf, winner) in winners[leaves..].iter_mut().enumerate() {
            *winner = keys.get(leaf).copied().flatten();
        }
        for node in (1..leaves).rev() {
            let (l, r) = (winners[2 * node], winners[2 * node + 1]);
            let (win, lose) = match beats(&l, &r, &less) {
                true => (l, r),
                false => (r, l),
            };
            winners[node] = win;
            tree.nodes[node] = lose;
        }
        tree.nodes[0] = if leaves > 1 {
            winners[1]
        } else {
            winners[leaves]
        };
        tree
    }

    /// The source with the least key, if any has one.
    #[inline]
    pub(crate) fn winner(&self) -> Option<(usize, K)> {
        self.nodes[0].map(|key| (key.source(), key))
    }

    /// The winning source, `leaf`, moved on to `key` (which names it):
    /// replays its path to the root. Only the winner may move on.
    #[inline]
    pub(crate) fn replay(&mut self, leaf: usize, key: Option<K>, less: impl Fn(&K, &K) -> bool) {
        debug_assert!(
            self.nodes[0].is_some_and(|k| k.source() == leaf),
            "only the winner moves on"
        );
        debug_assert!(key.is_none_or(|key| key.source() == leaf));
        let mut winner = key;
        let mut node = (self.leaves + leaf) / 2;
        while node > 0 {
            if beats(&self.nodes[node], &winner, &less) {
                std::mem::swap(&mut self.nodes[node], &mut winner);
            }
            node /= 2;
        }
        self.nodes[0] = winner;
    }
}

/// True if `a`'s key comes first; a run-dry source comes last.
#[inline]
fn beats<K>(a: &Option<K>, b: &Option<K>, less: &impl Fn(&K, &K) -> bool) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => less(x, y),
        (a, _) => a.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::{LoserTree, Sourced};

    impl Sourced for (u8, usize) {
        fn source(&self) -> usize {
            self.1
        }
    }

    proptest::proptest! {
        /// Merging sorted lists through the tree gives their sorted union,
        /// equal keys in source order.
        #[test]
        fn merges_like_a_sort(lists in proptest::collection::vec(
            proptest::collection::vec(0u8..20, 0..30), 0..12)
        ) {
            let mut lists = lists;
            for list in &mut lists {
                list.sort();
            }
            let less = |a: &(u8, usize), b: &(u8, usize)| a < b;
            let mut at = vec![0usize; lists.len()];
            let first = (0..lists.len()).map(|s| lists[s].first().map(|&k| (k, s))).collect();
            let mut tree = LoserTree::new(first, less);
            let mut got = Vec::new();
            while let Some((s, key)) = tree.winner() {
                got.push(key);
                at[s] += 1;
                tree.replay(s, lists[s].get(at[s]).map(|&k| (k, s)), less);
            }
            let mut want: Vec<(u8, usize)> = lists
                .iter()
                .enumerate()
                .flat_map(|(s, l)| l.iter().map(move |&k| (k, s)))
                .collect();
            want.sort();
            proptest::prop_assert_eq!(got, want);
        }
    }
}
