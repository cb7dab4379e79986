#!/usr/bin/env bash
# Inputs that once broke the memory bound: wall time from plain timed runs
# (best of $RUNS), and peak memory summed over all processes from a second
# run under ../shared/tools/peakmem.py (whose sampling slows what it watches,
# as whole_run.sh explains).
#
#   bash benches/large_inputs.sh              # every case
#   CASES="random letters" bash benches/large_inputs.sh
#
# Cases (generated once into $BENCH_DIR, default /tmp/indexer-large):
#   random   one 1 GB file of random lowercase words (most of them distinct),
#            a newline about every 100 bytes
#   letters  one 5 GB file of `a b c ... z` repeated, a newline every 1000 words;
#            the answer's counts are checked exactly
#   copies   six hard-linked copies of the Linux tree (`cp -al`); the answer is
#            checked to be six times one copy's
#   kernel   the Linux tree itself, as whole_run.sh runs it
# Environment: MEMORY (the --memory budget, default the indexer's 1G), TREE (the
# Linux tree; default the one whole_run.sh unpacks into /tmp/indexer-bench).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/indexer-large}
CASES=${CASES:-random letters copies kernel}
RUNS=${RUNS:-1}
TREE=${TREE:-/tmp/indexer-bench/linux-source-6.1}
PEAKMEM=$ROOT/../shared/tools/peakmem.py
MEMORY_ARGS=()
[[ -n ${MEMORY:-} ]] && MEMORY_ARGS=(--memory "$MEMORY")

log() { printf '== %s\n' "$*" >&2; }
mkdir -p "$BENCH_DIR"
cargo build --release >&2
BIN=$BENCH_DIR/indexer-bin
cp target/release/indexer "$BIN"

gen_random() {
    local dir=$BENCH_DIR/random
    [[ -f $dir/words.txt ]] && return
    log "generating 1 GB of random words"
    mkdir -p "$dir"
    python3 - "$dir/words.txt" <<'EOF'
import os, sys
# Random bytes mapped to letters, with a space about one byte in seven and
# a newline about one in a hundred: word lengths are geometric (mean ~6).
table = bytearray(b"abcdefghijklmnopqrstuvwxyz"[i % 26] for i in range(256))
for i in range(0, 256, 7):
    table[i] = 0x20
for i in range(3, 256, 100):
    table[i] = 0x0A
with open(sys.argv[1], "wb") as out:
    left = 1 << 30
    while left:
        n = min(left, 64 << 20)
        out.write(os.urandom(n).translate(table))
        left -= n
EOF
}

gen_letters() {
    local dir=$BENCH_DIR/letters
    [[ -f $dir/abc.txt ]] && return
    log "generating 5 GB of 'a b c ... z'"
    mkdir -p "$dir"
    python3 - "$dir/abc.txt" <<'EOF'
import sys
letters = "abcdefghijklmnopqrstuvwxyz"
# 1000 words per line: each line starts where the alphabet left off.
lines = []
k = 0
for _ in range(13):  # 13 lines of 1000 words = 500 whole alphabets
    words = [letters[(k + i) % 26] for i in range(1000)]
    k += 1000
    lines.append(" ".join(words) + "\n")
block = "".join(lines).encode()
with open(sys.argv[1], "wb") as out:
    written = 0
    while written < 5_000_000_000:
        out.write(block)
        written += len(block)
EOF
}

gen_copies() {
    local dir=$BENCH_DIR/copies
    [[ -d $dir/c6 ]] && return
    [[ -d $TREE ]] || { echo "large_inputs.sh: no tree at $TREE (run benches/whole_run.sh once)" >&2; exit 2; }
    log "making six hard-linked copies of $TREE"
    mkdir -p "$dir"
    for i in 1 2 3 4 5 6; do cp -al "$TREE" "$dir/c$i"; done
}

measure() { # name, then the command
    local name=$1
    shift
    log "$name: $*"
    local best="" wall
    for ((run = 1; run <= RUNS; run++)); do
        sync
        /usr/bin/time -f 'elapsed %e' "$@" >"$BENCH_DIR/$name.out" 2>"$BENCH_DIR/$name.err" || true
        wall=$(sed -n 's/^elapsed //p' "$BENCH_DIR/$name.err" | tail -1)
        if [[ -z $best ]] || awk -v a="$wall" -v b="$best" 'BEGIN { exit !(a < b) }'; then
            best=$wall
        fi
    done
    local summary peak
    summary=$(grep -E '^indexed ' "$BENCH_DIR/$name.err" | tail -1)
    sync
    python3 "$PEAKMEM" "$@" >/dev/null 2>"$BENCH_DIR/$name.peak" || true
    peak=$(sed -n 's/^wall .*peak session PSS \([0-9]*\) MiB.*/\1/p' "$BENCH_DIR/$name.peak" | tail -1)
    printf '| %s | %s s | %s MiB | %s |\n' "$name" "$best" "$peak" "$summary"
}

echo "| case | wall (best of $RUNS) | peak PSS, all processes | summary |"
echo "| --- | ---: | ---: | --- |"
for case in $CASES; do
    case $case in
    random)
        gen_random
        measure random "$BIN" "$BENCH_DIR/random" "${MEMORY_ARGS[@]}" --noprompt
        ;;
    letters)
        gen_letters
        # Each letter's count (`-c`): 2.5 billion locations are not printed.
        measure letters "$BIN" "$BENCH_DIR/letters" "${MEMORY_ARGS[@]}" -c --json --query '/[a-m]/' --query '/[n-z]/'
        python3 - "$BENCH_DIR/letters.out" "$BENCH_DIR/letters/abc.txt" <<'EOF' >&2
import json, os, sys
size = os.path.getsize(sys.argv[2])
block_words = 13 * 1000
block_bytes = 13 * 2000
blocks, rest = divmod(size, block_bytes)
assert rest == 0, rest
# Each block holds 500 alphabets: every letter 500 times.
want = blocks * 500
counts = {}
for line in open(sys.argv[1]):
    # `-c --json`: one {"query", "word", "count"} line per word.
    answer = json.loads(line)
    counts[answer["word"]] = answer["count"]
ok = counts == {c: want for c in "abcdefghijklmnopqrstuvwxyz"}
print(f"letters: {'exact' if ok else 'WRONG'} counts ({want} each expected)")
EOF
        ;;
    copies)
        gen_copies
        measure copies "$BIN" "$BENCH_DIR/copies" "${MEMORY_ARGS[@]}" --query spin_lock_irqsave --json
        "$BIN" "$TREE" --query spin_lock_irqsave --json >"$BENCH_DIR/one.out" 2>/dev/null
        python3 - "$BENCH_DIR/one.out" "$BENCH_DIR/copies.out" <<'EOF' >&2
import json, sys
one = json.loads(open(sys.argv[1]).readline())
six = json.loads(open(sys.argv[2]).readline())
want = [f"c{i}/{l['path']}:{l['line']}:{l['column']}" for i in range(1, 7) for l in one["locations"]]
got = [f"{l['path']}:{l['line']}:{l['column']}" for l in six["locations"]]
ok = six["count"] == 6 * one["count"] and got == want
print(f"copies: {'six times' if ok else 'NOT six times'} one copy's answer ({one['count']} -> {six['count']})")
EOF
        ;;
    kernel)
        measure kernel "$BIN" "$TREE" "${MEMORY_ARGS[@]}" --noprompt
        ;;
    *)
        echo "large_inputs.sh: unknown case $case" >&2
        exit 2
        ;;
    esac
done
