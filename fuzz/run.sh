#!/usr/bin/env bash
# Fuzz the index-file loader (`indexer::store::check_bytes`) for SECONDS
# (default 60), starting from real index files saved from the sample tree.
#
#   fuzz/run.sh [SECONDS] [extra libFuzzer flags...]
#   TARGET=load_rehashed fuzz/run.sh 600
#
# Works on a stable toolchain: RUSTC_BOOTSTRAP=1 lets stable rustc take the
# -Z flags cargo-fuzz passes (-Zsanitizer=address and friends). See README.md.
#
# Environment:
#   TARGET=load|load_rehashed (default load: the bytes as they are;
#                             load_rehashed fixes the length and checksums
#                             first, to reach the decoders behind them)
#   SANITIZER=address|none   (default address; `none` is 7-13x faster but
#                             cannot see out-of-bounds reads in unsafe code,
#                             and -malloc_limit_mb does nothing without it)
#   MALLOC_LIMIT_MB=N        a single allocation larger than this is reported
#                             as a finding (default 128: the seeds are small,
#                             so a bigger one comes from an unchecked length)
#   INDEXER=path             an indexer binary to make the seeds with
#                             (default: target/release/indexer, built here)
#   NOSEEDS=1                keep fuzz/corpus/TARGET as it is, make no seeds
set -euo pipefail

secs=${1:-60}
shift || true
fuzz=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$fuzz")
target=${TARGET:-load}
seeds=$fuzz/corpus/$target
sanitizer=${SANITIZER:-address}
malloc_limit=${MALLOC_LIMIT_MB:-128}
export RUSTC_BOOTSTRAP=1

cd "$root"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "run.sh: installing cargo-fuzz" >&2
    nice -n 19 cargo install cargo-fuzz --locked
fi
# Build the fuzzed library with the dependency versions the main build uses.
[ -f "$fuzz/Cargo.lock" ] || cp "$root/Cargo.lock" "$fuzz/Cargo.lock"

mkdir -p "$seeds"
if [ -z "${NOSEEDS:-}" ]; then
    if [ -z "${INDEXER:-}" ]; then
        nice -n 19 cargo build --release --bin indexer
        INDEXER=$root/target/release/indexer
    fi
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT

    # save NAME DIR: a fresh index of DIR as seed NAME.idx
    save() {
        if "$INDEXER" "$2" --save "$work/$1.idx" --noprompt </dev/null >"$work/log" 2>&1; then
            cp "$work/$1.idx" "$seeds/seed-$1.idx"
        else
            echo "run.sh: could not save an index of $2: $(tail -1 "$work/log")" >&2
        fi
    }
    # keep PREFIX FILE: FILE and any side file next to it (FILE.delta) as seeds
    keep() {
        local f
        for f in "$2" "$2".*; do
            if [ -f "$f" ]; then cp "$f" "$seeds/seed-$1-$(basename "$f")"; fi
        done
    }
    # refresh TREE FILE: refresh FILE's index of TREE in place
    refresh() {
        if ! "$INDEXER" "$1" --index "$2" --noprompt </dev/null >"$work/log" 2>&1; then
            echo "run.sh: could not refresh $2: $(tail -1 "$work/log")" >&2
            return 1
        fi
    }
    # refreshed NAME DIR: save an index of a copy of DIR, then change the
    # copy and refresh the index with --index, four rounds, keeping the
    # index and its side file (FILE.delta, written while the changes stay
    # under an eighth of the tree) after each: one file edited and one
    # added; one deleted; one renamed; then most files touched or edited
    # (past an eighth: a new base).
    refreshed() {
        local tree=$work/tree-$1 file=$work/$1.idx
        rm -rf "$tree" && cp -r "$2" "$tree"
        if ! "$INDEXER" "$tree" --save "$file" --noprompt </dev/null >"$work/log" 2>&1; then
            echo "run.sh: could not save an index of $2: $(tail -1 "$work/log")" >&2
            return 0
        fi
        local files
        mapfile -t files < <(cd "$tree" && find . -type f | LC_ALL=C sort)
        [ "${#files[@]}" -ge 4 ] || return 0
        echo "an edited line with a novelword fuzzseed" >>"$tree/${files[0]}"
        printf 'a new file\nwith new words: zanzibar quokka\n' >"$tree/added-by-fuzz.txt"
        refresh "$tree" "$file" || return 0
        keep refresh1 "$file"
        rm -f "$tree/${files[1]}"
        refresh "$tree" "$file" || return 0
        keep refresh2 "$file"
        mv "$tree/${files[2]}" "$tree/${files[2]}.renamed"
        refresh "$tree" "$file" || return 0
        keep refresh2b "$file"
        local f
        for f in "${files[@]:3}"; do
            echo "round three: mandolin" >>"$tree/$f"
        done
        touch -d '2001-01-01' "$tree/${files[0]}"
        refresh "$tree" "$file" || return 0
        keep refresh3 "$file"
    }

    mkdir -p "$work/empty"
    save empty "$work/empty"
    save corpus corpus
    for d in corpus/*/ corpus/essays/rivers corpus/code/rust; do
        [ -d "$d" ] && save "$(echo "${d%/}" | tr / -)" "$d"
    done
    refreshed essays corpus/essays
    refreshed corpus corpus
    refreshed edge corpus/edge
    echo "run.sh: $(ls "$seeds" | grep -c '^seed-') seed files in $seeds" >&2
    rm -rf "$work"
    trap - EXIT
fi

# -max_len: the largest file in the corpus, at least 4096.
max_len=4096
for f in "$seeds"/*; do
    [ -f "$f" ] || continue
    n=$(stat -c %s "$f")
    [ "$n" -gt "$max_len" ] && max_len=$n
done

exec nice -n 19 cargo fuzz run --sanitizer "$sanitizer" "$target" "$seeds" -- \
    -max_total_time="$secs" -max_len="$max_len" -timeout=10 \
    -rss_limit_mb=2048 -malloc_limit_mb="$malloc_limit" -print_final_stats=1 "$@"
