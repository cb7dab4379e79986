//! A tournament of losers, for the k-way merges of runs.
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

/// The current keys of `k` sources, the least of them on top.
pub(crate) struct LoserTree<K> {
    /// Leaves: a power of two at least the number of sources.
    leaves: usize,
    /// `nodes[0]` is the winner; `nodes[1..]` the losers of inner matches.
    nodes: Vec<u32>,
    /// Each leaf's current key (`None` once run dry, or for padding).
    keys: Vec<Option<K>>,
}

impl<K: Copy> LoserTree<K> {
    /// A tree over the sources' first keys; `less` must order any two keys
    /// of different sources strictly (ties broken by source, say).
    pub(crate) fn new(keys: Vec<Option<K>>, less: impl Fn(&K, &K) -> bool) -> Self {
        let leaves = keys.len().next_power_of_two().max(1);
        let mut keys = keys;
        keys.resize(leaves, None);
        let mut tree = LoserTree {
            leaves,
            nodes: vec![0; leaves],
            keys,
        };
        // Play every match bottom-up, keeping the winners aside.
        let mut winners = vec![0u32; 2 * leaves];
        for (leaf, winner) in winners[leaves..].iter_mut().enumerate() {
            *winner = leaf as u32;
        }
        for node in (1..leaves).rev() {
            let (l, r) = (winners[2 * node], winners[2 * node + 1]);
            let (win, lose) = match tree.beats(l, r, &less) {
                true => (l, r),
                false => (r, l),
            };
            winners[node] = win;
            tree.nodes[node] = lose;
        }
        tree.nodes[0] = if leaves > 1 { winners[1] } else { 0 };
        tree
    }

    /// True if leaf `a`'s key comes first; a run-dry leaf comes last.
    #[inline]
    fn beats(&self, a: u32, b: u32, less: &impl Fn(&K, &K) -> bool) -> bool {
        match (&self.keys[a as usize], &self.keys[b as usize]) {
            (Some(x), Some(y)) => less(x, y),
            (a, _) => a.is_some(),
        }
    }

    /// The source with the least key, if any has one.
    #[inline]
    pub(crate) fn winner(&self) -> Option<(usize, K)> {
        let w = self.nodes[0] as usize;
        self.keys[w].map(|key| (w, key))
    }

    /// Source `leaf` moved on to `key`: replays its path to the root.
    #[inline]
    pub(crate) fn replay(&mut self, leaf: usize, key: Option<K>, less: impl Fn(&K, &K) -> bool) {
        self.keys[leaf] = key;
        let mut winner = leaf as u32;
        let mut node = (self.leaves + leaf) / 2;
        while node > 0 {
            let loser = self.nodes[node];
            if self.beats(loser, winner, &less) {
                self.nodes[node] = winner;
                winner = loser;
            }
            node /= 2;
        }
        self.nodes[0] = winner;
    }
}

#[cfg(test)]
mod tests {
    use super::LoserTree;

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
