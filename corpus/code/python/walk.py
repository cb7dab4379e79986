#!/usr/bin/env python3
"""Walk a tree and print the text files in it, skipping VCS folders."""
import os
import sys

SKIP = {".git", ".hg", ".svn"}


def is_binary(path, probe=8192):
    with open(path, "rb") as f:
        return b"\0" in f.read(probe)


def walk(root):
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP)
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            if not is_binary(path):
                yield os.path.relpath(path, root)


if __name__ == "__main__":
    for rel in walk(sys.argv[1] if len(sys.argv) > 1 else "."):
        print(rel)
