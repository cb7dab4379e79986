#!/usr/bin/env bash
# Saved-index benchmark (issue 5): size of the saved index, opening it and
# answering one query as a whole process, and refreshing it after one file
# changed, each from the outside.
#
#   TREE=/path/to/linux-source-6.1 bash benches/saved_index.sh
#   bash benches/saved_index.sh        # the tree whole_run.sh unpacks (run it once first)
#
# Environment: TREE (default $BENCH_DIR/linux-source-6.1), BENCH_DIR (default
# /tmp/indexer-bench), QUERY (default spin_lock_irq), FILE (relative path of
# the file edited for the refresh, default kernel/fork.c; restored after).
#
# It copies nothing: the edit appends one line to FILE and removes it again,
# so the tree's own files end as they were (with a new modification time).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BENCH_DIR=${BENCH_DIR:-/tmp/indexer-bench}
TREE=${TREE:-$BENCH_DIR/linux-source-6.1}
QUERY=${QUERY:-spin_lock_irq}
FILE=${FILE:-kernel/fork.c}
INDEX=$BENCH_DIR/saved.idx

log() { printf '== %s\n' "$*" >&2; }
[[ -d $TREE ]] || { echo "saved_index.sh: no tree at $TREE (run benches/whole_run.sh once, or set TREE)" >&2; exit 2; }
[[ -f $TREE/$FILE ]] || { echo "saved_index.sh: no $FILE in $TREE (set FILE)" >&2; exit 2; }
command -v hyperfine >/dev/null || { echo "saved_index.sh: needs hyperfine (apt-get install hyperfine)" >&2; exit 2; }
mkdir -p "$BENCH_DIR"

log "building the release binary"
cargo build --release --quiet >&2
BIN=$PWD/target/release/indexer

wall() { # prints the wall seconds of one run of "$@"
    /usr/bin/time -f '%e' -o "$BENCH_DIR/time.txt" "$@" >/dev/null 2>"$BENCH_DIR/stderr.txt"
    cat "$BENCH_DIR/time.txt"
}
mean_ms() { # hyperfine's mean in milliseconds
    hyperfine -N -w 3 -r "${2:-20}" --export-json "$BENCH_DIR/h.json" "$1" >/dev/null 2>&1
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("%.1f ms (min %.1f, max %.1f)" % (r["mean"]*1e3, r["min"]*1e3, r["max"]*1e3))' "$BENCH_DIR/h.json"
}

log "warming the page cache (cat of every file)"
find "$TREE" -type f -print0 | xargs -0 cat >/dev/null 2>&1 || true
rm -f "$INDEX" "$INDEX.delta"
log "full build and save"
save_wall=$(wall "$BIN" "$TREE" --save "$INDEX" --noprompt)
save_line=$(grep '^saved' "$BENCH_DIR/stderr.txt")
size=$(stat -c %s "$INDEX")

log "open + one query, 20 runs"
open_prefix=$(mean_ms "$BIN --index $INDEX --query $QUERY --json")
open_exact=$(mean_ms "$BIN --index $INDEX --query =$QUERY --json")

log "refresh with nothing changed"
same_wall=$(wall "$BIN" "$TREE" --index "$INDEX" --noprompt)

log "refresh after editing $FILE"
cp -p "$TREE/$FILE" "$BENCH_DIR/edited.orig"
echo "/* saved_index.sh was here */" >>"$TREE/$FILE"
edit_wall=$(wall "$BIN" "$TREE" --index "$INDEX" --noprompt --stats)
edit_line=$(grep '^refreshed' "$BENCH_DIR/stderr.txt")
edit_phases=$(grep '^time: list' "$BENCH_DIR/stderr.txt")
log "refresh after restoring it"
cat "$BENCH_DIR/edited.orig" >"$TREE/$FILE"
restore_wall=$(wall "$BIN" "$TREE" --index "$INDEX" --noprompt)
open_delta=$(mean_ms "$BIN --index $INDEX --query $QUERY --json")
delta_size=$(stat -c %s "$INDEX.delta" 2>/dev/null || echo 0)

log "checking the refreshed answers against a fresh build"
"$BIN" --index "$INDEX" --query "$QUERY" --query '*lock*' --json 2>/dev/null | md5sum >"$BENCH_DIR/a.md5"
"$BIN" "$TREE" --query "$QUERY" --query '*lock*' --json 2>/dev/null | md5sum >"$BENCH_DIR/b.md5"
same=$(cmp -s "$BENCH_DIR/a.md5" "$BENCH_DIR/b.md5" && echo "identical" || echo "DIFFERENT")

cat <<REPORT
#### Saved index: $(basename "$TREE")

| what | figure |
| --- | ---: |
| full build + save (\`--save\`), wall | ${save_wall} s |
| index file size | $((size / 1000000)) MB ($size bytes) |
| open + prefix query \`$QUERY\` (whole process) | $open_prefix |
| open + exact query \`=$QUERY\` (whole process) | $open_exact |
| refresh, nothing changed | ${same_wall} s |
| refresh after editing \`$FILE\` | ${edit_wall} s |
| refresh after restoring it | ${restore_wall} s |
| open + prefix query with the delta | $open_delta |
| delta file size | $((delta_size / 1000)) KB |

- \`$save_line\`
- \`$edit_line\`
- \`$edit_phases\`
- Answers of the refreshed index vs a fresh build (\`$QUERY\`, \`*lock*\`, JSON): $same.
- Machine: $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD).
REPORT
