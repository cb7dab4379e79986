#!/usr/bin/env bash
# A profile-guided release build of indexer: built once with counters,
# run on real source trees, then built again with what the counters saw
# (which branches go which way, which calls are hot), so LLVM lays out the
# tokenizer, the word table and the merge for the paths they take.
#
#   bash benches/pgo_build.sh          # prints the optimized binary's path
#   TRAIN=/a/tree:/b/tree bash benches/pgo_build.sh
#
# On the kernel tree the build took 2.5-4.4% less wall time than `cargo
# build --release` (four comparisons of 8 interleaved rounds; tokenize
# -7.4% to -8.8%, merge -6.0% to -8.1%: docs/performance.md). Answers are
# the same: the optimizer only reorders code.
#
# Environment: TRAIN (trees to train on, `:`-separated; default the crate
# sources cargo downloaded for this build, `$CARGO_HOME/registry/src`: real
# code, hundreds of megabytes of it, present wherever the crate builds, and
# none of the trees the benchmarks measure), PGO_DIR (where the builds and
# profiles go; default target/pgo). Needs llvm-profdata, which rustup
# installs as the `llvm-tools` component (done here when missing).
#
# Progress goes to stderr; stdout is the binary's path alone.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
OUT=${PGO_DIR:-$ROOT/target/pgo}

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'pgo_build.sh: %s\n' "$*" >&2; exit 2; }

host=$(rustc -vV | sed -n 's/^host: //p')
profdata=$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata
if [[ ! -x $profdata ]]; then
    command -v rustup >/dev/null ||
        die "no llvm-profdata at $profdata, and no rustup to install it (llvm-tools)"
    log "rustup component add llvm-tools"
    rustup component add llvm-tools >&2
fi
[[ -x $profdata ]] || die "no llvm-profdata at $profdata after installing llvm-tools"

# 1. Built with counters. `pgo_train` makes a forked worker write its
#    counters before `_exit`, which skips the runtime's own writer.
profiles=$OUT/profiles
rm -rf "$profiles"
mkdir -p "$profiles"
log "instrumented build (target dir $OUT/generate)"
RUSTFLAGS="${RUSTFLAGS:-} --cfg pgo_train -Cprofile-generate=$profiles" \
    cargo build --release --target-dir "$OUT/generate" >&2
trained=$OUT/generate/release/indexer

# 2. Run on the training trees: a build (forked workers, runs, the merge)
#    and the kinds of query (exact, prefix, substring, pattern).
CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
TRAIN=${TRAIN:-$CARGO_HOME/registry/src}
IFS=: read -ra trees <<<"$TRAIN"
for tree in "${trees[@]}"; do
    [[ -d $tree ]] || die "TRAIN names '$tree', which is not a directory"
    log "training on $tree"
    "$trained" "$tree" --noprompt --stats >&2
    # No match is exit 1, which is no failure here.
    "$trained" "$tree" --json --query fn --query 'str*' --query '*iv*' \
        --query '/(foo|bar)_.*/' --query '/[a-z]{3}_[0-9]+/' >/dev/null ||
        (($? == 1)) || die "a training query failed"
done
shopt -s nullglob
raw=("$profiles"/*.profraw)
((${#raw[@]})) || die "the instrumented build wrote no profile into $profiles"
"$profdata" merge -o "$OUT/indexer.profdata" "${raw[@]}"

# 3. Built with the profile.
log "optimized build (target dir $OUT/use)"
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$OUT/indexer.profdata" \
    cargo build --release --target-dir "$OUT/use" >&2
binary=$OUT/use/release/indexer
[[ -x $binary ]] || die "no binary at $binary"
echo "$binary"
