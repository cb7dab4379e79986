import re
import sys
from collections import Counter

WORD = re.compile(r"[\w]+", re.UNICODE)


def count(text):
    return Counter(m.group(0).lower() for m in WORD.finditer(text))


def main(paths):
    total = Counter()
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            total.update(count(f.read()))
    for word, n in total.most_common(20):
        print(f"{n:6d} {word}")


if __name__ == "__main__":
    main(sys.argv[1:])
