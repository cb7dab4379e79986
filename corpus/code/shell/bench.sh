#!/usr/bin/env bash
# Time the indexer on a generated tree for a few worker counts.
set -euo pipefail

OUT=${1:-/tmp/indexer-bench}
cargo run --release --example gen_tree -- "$OUT" --files 5000 --seed 7
for workers in 1 2 4 8; do
    echo "== workers=$workers"
    /usr/bin/time -v ./target/release/indexer "$OUT" --noprompt --workers "$workers" 2>&1 \
        | grep -E 'wall|Maximum resident'
done
