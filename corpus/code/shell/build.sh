#!/bin/sh
# Build the indexer in release mode and run it on the sample corpus.
set -eu

cd "$(dirname "$0")/../../.."
cargo build --release
./target/release/indexer corpus --noprompt --workers "${WORKERS:-4}"
