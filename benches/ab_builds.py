#!/usr/bin/env python3
"""Interleaved builds of one tree by two or more indexer binaries.

Why: the host's speed drifts by a fifth from one quarter hour to the next,
so a change is only ever measured against the binary before it in the same
minutes. Each round builds the tree once with every binary (`--noprompt
--stats`), starting one binary later each round so that none always runs
first; the report gives every binary's fastest and mean wall time (the
build's, as its summary line gives it: the process's exit is not in it)
and the mean of each phase `--stats` prints, and how far each mean is from the
first binary's.

    python3 benches/ab_builds.py [--tree T] [--rounds N] [--pause S] BIN... [-- ARG...]

ARGs after `--` go to every build (`-- --workers 1`, `-- --batch 300`).
The tree is read, and built once by every binary untimed, before the
first round; it is read again whenever a round starts more than 45 s
after the last reading: this VM's page cache gives
back files left idle for about a minute, and a cold file turns a build
into a measure of the disk.

`--pause S` sleeps S seconds before every timed build. Back to back, a
build gets the memory the build before it freed a moment ago, which
this guest has not yet handed back to its host; after a pause (as in
whole_run.sh, where other programs run between builds) its first touch
of fresh memory costs several times more, so changes to how much memory
a build touches are measured both ways.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

DEFAULT_TREE = "/work/trees/linux-source-6.1"
REWARM_AFTER = 45.0
# The phases `--stats` prints, in its order, as (label in the report, name in the line).
PHASES = [
    ("walk", "walk"),
    ("read", "read"),
    ("tok", "tokenize"),
    ("rec", "record"),
    ("sort", "sort+encode runs"),
    ("send", "send"),
    ("recv", "receive"),
    ("merge", "merge"),
]


def warm(tree):
    """Reads every file of `tree` once, into the page cache."""
    for folder, _, files in os.walk(tree):
        for name in files:
            path = os.path.join(folder, name)
            try:
                if not os.path.islink(path) and os.path.isfile(path):
                    with open(path, "rb") as f:
                        while f.read(1 << 20):
                            pass
            except OSError:
                pass


def build(binary, tree, extra):
    """One build: its wall time (from the summary) and phase times."""
    out = subprocess.run(
        [binary, tree, "--noprompt", "--stats", *extra],
        capture_output=True,
        text=True,
    )
    text = out.stdout + out.stderr
    wall = re.search(r"indexed .* in ([0-9.]+) s", text)
    if out.returncode != 0 or wall is None:
        last = text.strip().splitlines()[-1:] or ["no output"]
        sys.exit(f"ab_builds: {binary} failed (exit {out.returncode}): {last[0]}")
    row = {"wall": float(wall.group(1))}
    for label, name in PHASES:
        found = re.search(re.escape(name) + r" ([0-9.]+) s", text)
        row[label] = float(found.group(1)) if found else float("nan")
    return row


def main():
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(
        description="Interleaved builds of one tree by two or more indexer binaries."
    )
    parser.add_argument("--tree", default=os.environ.get("TREE", DEFAULT_TREE))
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--pause", type=float, default=0.0, metavar="S")
    parser.add_argument("binaries", nargs="+", metavar="BIN")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.tree):
        sys.exit(f"ab_builds: no tree at {args.tree} (give --tree or TREE)")
    for binary in args.binaries:
        if not os.access(binary, os.X_OK):
            sys.exit(f"ab_builds: {binary} is not an executable file")

    # By place on the command line, not by path: the same binary given
    # twice (an A/A run, to see the noise) gets a row of its own each time.
    binaries = list(enumerate(args.binaries))
    rows = [[] for _ in binaries]
    warm(args.tree)
    # One untimed build per binary first, as hyperfine's warm-up: the
    # first build after a quiet spell was 10-20% slower in every phase,
    # the tree's pages read just before or not.
    for _, binary in binaries:
        build(binary, args.tree, extra)
    warmed = time.monotonic()
    for round_ in range(args.rounds):
        if time.monotonic() - warmed > REWARM_AFTER:
            warm(args.tree)
            warmed = time.monotonic()
        turn = round_ % len(binaries)
        for k, binary in binaries[turn:] + binaries[:turn]:
            time.sleep(args.pause)
            rows[k].append(build(binary, args.tree, extra))
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)

    labels = ["wall"] + [label for label, _ in PHASES]
    means = [{k: statistics.mean(r[k] for r in runs) for k in labels} for runs in rows]
    print(f"{args.rounds} interleaved rounds on {args.tree}"
          + (f" with {' '.join(extra)}" if extra else "")
          + (f", {args.pause:g} s pause before each build" if args.pause else "")
          + "; seconds (wall, and CPU summed over the workers), the fastest wall, then means:")
    print("| binary | min wall | " + " | ".join(labels) + " |")
    print("| --- " * (len(labels) + 2) + "|")
    for i, binary in binaries:
        best = min(r["wall"] for r in rows[i])
        cells = []
        for k in labels:
            cell = f"{means[i][k]:.3f}"
            base = means[0][k]
            if i > 0 and base > 0:
                cell += f" ({(means[i][k] / base - 1) * 100:+.1f}%)"
            cells.append(cell)
        print(f"| {binary} | {best:.3f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
