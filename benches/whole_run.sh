#!/usr/bin/env bash
# Whole-run benchmark: the indexer on a real tree beside codesearch's cindex
# and one ripgrep scan, each timed from the outside with its peak memory
# summed over all of its processes (forked workers included).
#
#   bash benches/whole_run.sh                  # Linux 6.1 from Debian's linux-source-6.1
#   TREE=/some/tree bash benches/whole_run.sh  # any existing tree
#   TREE=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])') \
#       bash benches/whole_run.sh              # CPython's stdlib
#   RUNS=3 bash benches/whole_run.sh           # best of 3 interleaved rounds per row
#   COLD=1 bash benches/whole_run.sh           # every run from a cold cache (see below)
#   PGO=0 bash benches/whole_run.sh            # the plain `cargo build --release` binary
#
# Environment: TREE (tree to index; default: the kernel unpacked once into
# $BENCH_DIR), BENCH_DIR (cache, default /tmp/indexer-bench), RUNS (default 1),
# WORD (what rg scans for, default spin_lock_irqsave), QUERY (what the indexer
# answers, default spin_lock), COLD (1: no warming; before every run of every
# row the caches are dropped, as root through /proc/sys/vm/drop_caches (pages,
# folders and inodes), otherwise each file's pages are let go with
# posix_fadvise(DONTNEED), which leaves folders and inodes cached), PGO (1, the
# default: the indexer measured is the profile-guided build of
# benches/pgo_build.sh, trained on the crate sources cargo downloaded and never
# on the tree measured, falling back to the plain build if that fails; 0: the
# plain `cargo build --release`).
#
# The Markdown report goes to stdout, progress to stderr. It reports and never
# judges: slowness is not a failure. It exits non-zero only when a measured
# command itself failed (the row then says so).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(git rev-parse --show-toplevel 2>/dev/null || pwd)
cd "$ROOT"

BENCH_DIR=${BENCH_DIR:-/tmp/indexer-bench}
RUNS=${RUNS:-1}
COLD=${COLD:-0}
WORD=${WORD:-spin_lock_irqsave}
QUERY=${QUERY:-spin_lock}
TARBALL=/usr/src/linux-source-6.1.tar.xz
PEAKMEM=$ROOT/../shared/tools/peakmem.py

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'whole_run.sh: %s\n' "$*" >&2; exit 2; }

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, not '$RUNS'"
[[ $COLD == 0 || $COLD == 1 ]] || die "COLD must be 0 or 1, not '$COLD'"
PGO=${PGO:-1}
[[ $PGO == 0 || $PGO == 1 ]] || die "PGO must be 0 or 1, not '$PGO'"

# --- 1. What is missing from Debian --------------------------------------
need=()
[[ -n ${TREE:-} || -f $TARBALL ]] || need+=(linux-source-6.1)
command -v cindex >/dev/null || need+=(codesearch)
command -v rg >/dev/null || need+=(ripgrep)
command -v hyperfine >/dev/null || need+=(hyperfine) # for ad-hoc comparisons
if [[ ! -f $PEAKMEM || -z $(command -v python3) ]] && [[ ! -x /usr/bin/time ]]; then
    need+=(time)
fi
if ((${#need[@]})); then
    sudo=()
    ((EUID == 0)) || sudo=(sudo)
    log "installing ${need[*]}"
    "${sudo[@]}" apt-get update >&2
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y "${need[@]}" >&2
fi

# --- 2. The tree, unpacked once ------------------------------------------
if [[ -z ${TREE:-} ]]; then
    TREE=$BENCH_DIR/linux-source-6.1
    if [[ ! -f $BENCH_DIR/linux-source-6.1.unpacked ]]; then
        log "unpacking $TARBALL into $BENCH_DIR (once)"
        rm -rf "$TREE" "$BENCH_DIR/unpacking"
        mkdir -p "$BENCH_DIR/unpacking"
        tar -xf "$TARBALL" -C "$BENCH_DIR/unpacking"
        mv "$BENCH_DIR/unpacking/linux-source-6.1" "$TREE"
        rmdir "$BENCH_DIR/unpacking"
        touch "$BENCH_DIR/linux-source-6.1.unpacked"
    fi
fi
[[ -d $TREE ]] || die "TREE=$TREE is not a directory"
TREE=$(cd "$TREE" && pwd -P)

# --- 3. Build --------------------------------------------------------------
log "cargo build --release"
cargo build --release >&2
INDEXER=${CARGO_TARGET_DIR:-$ROOT/target}/release/indexer
[[ -x $INDEXER ]] || die "no binary at $INDEXER"
BUILD_NOTE="plain \`cargo build --release\`"
if ((PGO)); then
    log "profile-guided build (benches/pgo_build.sh)"
    if pgo=$(bash "$ROOT/benches/pgo_build.sh") && [[ -x $pgo ]]; then
        INDEXER=$pgo
        BUILD_NOTE="profile-guided (\`benches/pgo_build.sh\`, trained on ${TRAIN:-the crate sources cargo downloaded})"
    else
        log "the profile-guided build failed: measuring the plain one"
        BUILD_NOTE="plain \`cargo build --release\` (the profile-guided build failed)"
    fi
fi

# The read-and-count floor the speed goals are stated against.
FLOOR_SRC=$ROOT/../shared/tools/floor
FLOOR=
if [[ -f $FLOOR_SRC/Cargo.toml ]]; then
    log "building the floor ($FLOOR_SRC)"
    cargo build --release --quiet --manifest-path "$FLOOR_SRC/Cargo.toml" \
        --target-dir "$ROOT/target/floor" >&2
    FLOOR=$ROOT/target/floor/release/floor
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/whole_run.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# Every row runs this copy, so a rebuild during the run cannot mix binaries.
cp "$INDEXER" "$WORK/indexer-bin"
INDEXER=$WORK/indexer-bin
CSEARCHINDEX_FILE=$WORK/csearchindex

# --- 4. Warm the page cache, or learn to empty it -------------------------
# go_cold: the tree's files out of memory, as after a reboot (COLD=1).
go_cold() {
    sync
    if [[ -w /proc/sys/vm/drop_caches ]]; then
        echo 3 >/proc/sys/vm/drop_caches
    else
        find "$TREE" -type f -print0 | python3 -c '
import os, sys
for path in sys.stdin.buffer.read().split(b"\0"):
    if path:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
'
    fi
}
if ((COLD)); then
    CACHE_NOTE="cold caches (dropped before every run)"
    [[ -w /proc/sys/vm/drop_caches ]] || CACHE_NOTE="cold page cache (each file's pages let go before every run; folders and inodes stay cached)"
else
    CACHE_NOTE="warm page cache"
    log "warming the page cache: $TREE"
    find "$TREE" -type f -print0 | xargs -0 cat >/dev/null
fi
FILES=$(find "$TREE" -type f | wc -l)
TREE_MB=$(du -sm --apparent-size "$TREE" | cut -f1)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# --- 5. Measure ------------------------------------------------------------
if [[ -f $PEAKMEM ]] && command -v python3 >/dev/null; then
    METHOD="/usr/bin/time for wall clock, and a second run under peakmem.py for memory (peak PSS summed over the command's session, sampled every 10 ms)"
else
    METHOD="/usr/bin/time -f '%e %M' (wall clock; peak RSS of the largest single process: workers are not summed)"
    PEAKMEM=
fi

declare -A WALL MIB RC BEFORE
ROWS=()
FAILED=0

# row KEY BEFORE_FN -- CMD...: declares a row, measured in every round.
row() {
    local key=$1 before=$2
    shift 3
    ROWS+=("$key")
    BEFORE[$key]=$before
    declare -ga "CMD_$key"
    local -n cmd="CMD_$key"
    cmd=("$@")
}

# measure_once KEY: runs KEY's command once, stdout in $WORK/KEY and stderr
# in $WORK/KEY.err (of its fastest run so far); keeps the best wall time and
# the highest peak memory.
measure_once() {
    local key=$1 out=$WORK/$1 before=${BEFORE[$1]}
    local -n cmd="CMD_$key"
    local rc=0 wall mib line
    [[ -z $before ]] || "$before"
    ((COLD == 0)) || go_cold
    # Wall time from a run of its own: peakmem.py reads every process's
    # smaps every 10 ms, which slows a program that maps and faults in
    # hundreds of MB, so its wall clock is not the program's.
    /usr/bin/time -f '%e %M' -o "$out.time" "${cmd[@]}" >"$out.try" 2>"$out.try.err" || rc=$?
    # The last line: time puts "Command exited with non-zero status N" first.
    read -r wall mib < <(tail -n 1 "$out.time")
    mib=$((mib / 1024))
    if [[ -n $PEAKMEM ]]; then
        [[ -z $before ]] || "$before"
        ((COLD == 0)) || go_cold
        # Memory from a second run: peak PSS summed over the session.
        python3 "$PEAKMEM" "${cmd[@]}" >/dev/null 2>"$out.mem.err" || rc=$?
        # Last line: 'wall S s, peak session PSS M MiB, peak single RSS R MiB, exit C'
        line=$(tail -n 1 "$out.mem.err")
        mib=$(sed -nE 's/.*peak session PSS ([0-9]+) MiB.*/\1/p' <<<"$line")
    fi
    [[ -n $wall && -n $mib ]] || { wall=0 mib=0; }
    if [[ -z ${WALL[$key]:-} ]] || awk -v a="$wall" -v b="${WALL[$key]}" 'BEGIN { exit !(a < b) }'; then
        WALL[$key]=$wall
        mv "$out.try" "$out"
        mv "$out.try.err" "$out.err"
    fi
    if [[ -z ${MIB[$key]:-} ]] || ((mib > MIB[$key])); then MIB[$key]=$mib; fi
    # rg and an indexer query exit 1 when nothing matched: not a failure.
    if ((rc != 0)) && ! [[ ($key == rg || $key == query) && $rc == 1 ]]; then RC[$key]=$rc; fi
}

fresh_cindex() { rm -f "$CSEARCHINDEX_FILE"; }
export CSEARCHINDEX=$CSEARCHINDEX_FILE

query_flags=(--query "$QUERY" --json)
STATS=0
if "$INDEXER" --help 2>/dev/null | grep -q -- '--stats'; then
    query_flags+=(--stats)
    STATS=1
fi
row indexer "" -- "$INDEXER" "$TREE" --noprompt
row indexer1 "" -- "$INDEXER" "$TREE" --noprompt --workers 1
row cindex fresh_cindex -- cindex "$TREE"
row rg "" -- rg -c --no-messages "$WORD" "$TREE"
row query "" -- "$INDEXER" "$TREE" "${query_flags[@]}"
[[ -z $FLOOR ]] || row floor "" -- "$FLOOR" "$TREE" 2
row cat "" -- sh -c 'find "$1" -type f -print0 | xargs -0 cat >/dev/null' sh "$TREE"

# Rounds, each running every row once: the host's speed drifts by a fifth
# from one quarter hour to the next, and rows measured one after the other
# (all of one command's runs, then the next's) put that drift into the
# ratios. Interleaved, each row's best run comes from the same stretch of
# time as the others'.
for ((round = 1; round <= RUNS; round++)); do
    for key in "${ROWS[@]}"; do
        log "round $round of $RUNS: $key"
        measure_once "$key"
    done
done
for key in "${ROWS[@]}"; do
    if [[ -n ${RC[$key]:-} ]]; then
        FAILED=1
        log "$key failed (exit ${RC[$key]}); its stderr:"
        tail -n 5 "$WORK/$key.err" >&2
    fi
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- 6. Report ---------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
# The goals' ratios to three places: rounded to two, a build at 0.2036 of
# cindex read as meeting a goal of 0.20.
exact_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3fx", a / b; else print "-" }'; }
summary=$(grep -m1 '^indexed ' "$WORK/indexer.err" || true)
workers=$(sed -nE 's/.*; ([0-9]+) workers?$/\1/p' <<<"$summary")
declare -A LABEL=(
    [indexer]="\`indexer --noprompt\` (${workers:-?} workers)"
    [indexer1]="\`indexer --noprompt --workers 1\`"
    [cindex]="codesearch \`cindex\` (fresh index)"
    [rg]="\`rg -c $WORD\` (one scan)"
    [query]="\`indexer --query $QUERY --json\` (build + one query)"
    [cat]="\`cat\` of every file (read floor)"
    [floor]="floor: 2 threads read every file and count its words"
)
cpu=$(sed -nE 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
commit=$(git describe --always --dirty 2>/dev/null || echo unknown)
runs_note="one run each"
((RUNS == 1)) || runs_note="best wall time of $RUNS interleaved rounds (each runs every row once), highest peak memory"

echo "### Whole run: $(basename "$TREE") ($FILES files, $TREE_MB MiB), $CACHE_NOTE"
echo
echo "| system | wall s | peak MiB | time vs indexer | memory vs indexer |"
echo "| --- | ---: | ---: | ---: | ---: |"
for key in "${ROWS[@]}"; do
    wall=${WALL[$key]} mib=${MIB[$key]}
    if [[ -n ${RC[$key]:-} ]]; then
        echo "| ${LABEL[$key]} | failed (exit ${RC[$key]}) | $mib | - | - |"
    else
        echo "| ${LABEL[$key]} | $wall | $mib | $(ratio "$wall" "${WALL[indexer]}") | $(ratio "$mib" "${MIB[indexer]}") |"
    fi
done
echo
if [[ -n ${WALL[floor]:-} ]]; then
    if ((COLD)); then
        echo "- From cold caches: indexer / floor = $(ratio "${WALL[indexer]}" "${WALL[floor]}"); indexer / cindex = $(ratio "${WALL[indexer]}" "${WALL[cindex]}") (issue 11's goals are set for a warm page cache)."
    else
        echo "- Goals (issue 11): indexer / floor = $(exact_ratio "${WALL[indexer]}" "${WALL[floor]}") (goal <= 3.7x); indexer / cindex = $(exact_ratio "${WALL[indexer]}" "${WALL[cindex]}") (goal <= 0.20x)."
    fi
fi
echo "- Speed-up of two workers over one: $(exact_ratio "${WALL[indexer1]}" "${WALL[indexer]}") (one worker ${WALL[indexer1]} s, two ${WALL[indexer]} s)."
skipped=$(grep -m1 '^skipped ' "$WORK/indexer.err" || true)
echo "- Indexer summary: \`${summary:-no summary line}\`${skipped:+; \`$skipped\`}"
if ((STATS)); then
    phases=$(grep -m1 '^time: ' "$WORK/query.err" || true)
    qline=$(grep -m1 '^query ' "$WORK/query.err" || true)
    qms=$(sed -nE 's/.* in ([0-9.]+) ms$/\1/p' <<<"$qline")
    [[ -z $phases ]] || echo "- Phases (\`--stats\`, from the query run): \`$phases\`"
    if [[ -n $qms ]]; then
        echo "- Query alone (\`--stats\`): \`$qline\`; one rg scan (${WALL[rg]} s) takes $(awk -v s="${WALL[rg]}" -v ms="$qms" 'BEGIN { if (ms > 0) printf "%.0fx", s * 1000 / ms; else print "more than 1000000x" }') as long."
    fi
fi
rg_lines=$(awk -F: '{ n += $NF } END { print n + 0 }' "$WORK/rg")
rg_files=$(wc -l <"$WORK/rg")
echo "- rg found \`$WORD\` on $rg_lines lines in $rg_files files."
echo "- Machine: $(nproc) cores, ${cpu:-unknown CPU}, $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r); load average $LOAD_BEFORE before, $LOAD_AFTER after."
echo "- Indexer binary: $BUILD_NOTE."
echo "- $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit, $runs_note; measured with $METHOD."
exit "$FAILED"
