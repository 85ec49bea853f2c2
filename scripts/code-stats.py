#!/usr/bin/env python3
"""code-stats - the shape of the C code: lines per file, the longest functions, growth sites.

usage: scripts/code-stats.py [--root DIR] [--top N]

For every .c file under src/ and dissectors/ of DIR (default: this checkout):
its lines; the N longest functions (a definition starts at column 0 and its
body ends at the next "}" in column 0); and the hand-rolled growth sites
(calls of realloc). The architecture work compares these before and after.
"""
import argparse, os, re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEF = re.compile(r"^(?:static\s+)?(?:inline\s+)?[A-Za-z_][\w\s\*]*?\b(\w+)\s*\(")


def c_files(root):
    for top in ("src", "dissectors"):
        for d, _, files in os.walk(os.path.join(root, top)):
            for f in sorted(files):
                if f.endswith(".c"):
                    yield os.path.join(d, f)


def functions(path):
    """(name, first line, lines) of each function defined in path."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    out, i = [], 0
    while i < len(lines):
        m = DEF.match(lines[i])
        if m and not lines[i].rstrip().endswith(";"):
            j = i
            while j < len(lines) and not lines[j].startswith("{") and not lines[j].rstrip().endswith(";"):
                j += 1
            if j < len(lines) and lines[j].startswith("{"):
                k = j
                while k < len(lines) and not lines[k].startswith("}"):
                    k += 1
                out.append((m.group(1), i + 1, k - i + 1))
                i = k
        i += 1
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=ROOT)
    ap.add_argument("--top", type=int, default=15)
    o = ap.parse_args()
    files = list(c_files(o.root))
    print("lines per file:")
    for p in sorted(files, key=lambda p: -sum(1 for _ in open(p, encoding="utf-8", errors="replace"))):
        n = sum(1 for _ in open(p, encoding="utf-8", errors="replace"))
        print(f"  {n:6d}  {os.path.relpath(p, o.root)}")
    fns = [(n, name, os.path.relpath(p, o.root), line) for p in files for name, line, n in functions(p)]
    print(f"longest functions (of {len(fns)}):")
    for n, name, rel, line in sorted(fns, reverse=True)[: o.top]:
        print(f"  {n:6d}  {name} ({rel}:{line})")
    sites = []
    for p in files:
        with open(p, encoding="utf-8", errors="replace") as f:
            for k, text in enumerate(f, 1):
                if re.search(r"\brealloc\s*\(", text):
                    sites.append(f"{os.path.relpath(p, o.root)}:{k}")
    print(f"realloc growth sites: {len(sites)}")
    for s in sites:
        print("  " + s)


if __name__ == "__main__":
    main()
