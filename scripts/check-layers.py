#!/usr/bin/env python3
"""check-layers - the folders are the architecture: includes point one way only.

usage: scripts/check-layers.py

The layers, in order: core, event, capture, flow, engine (src/<layer>/),
dissectors (dissectors/), output (src/output/), main (src/main.c). A file may
include its own layer and those before it, never one after: every include is
qualified by its folder ("engine/dissector.h", "dissectors/smtp/smtp.h"). And
no file in src/ but main.c, where the pieces are put together, names a mail
protocol: the engine and the reporters know protocols only through the table
main hands them. Prints each breach and exits 1 if there is one.
"""
import os, re, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = ["core", "event", "capture", "flow", "engine", "dissectors", "output", "main"]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
PROTOCOL = re.compile(r"\b(smtp|esmtp|lmtp|pop3|imap|imap4)\b", re.I)


def layer_of(rel):
    """The layer of a source file (relative to the root), or None."""
    parts = rel.split("/")
    if parts[0] == "dissectors":
        return "dissectors"
    if parts[0] == "src":
        if parts[1] == "main.c":
            return "main"
        return parts[1] if parts[1] in LAYERS else None
    return None


def target_of(inc):
    """The layer an include names, or None when it is not qualified."""
    head = inc.split("/")[0]
    return head if head in LAYERS else None


def sources():
    for top in ("src", "dissectors"):
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            for f in sorted(files):
                if f.endswith((".c", ".h", ".h.in")):
                    yield os.path.relpath(os.path.join(d, f), ROOT)


def main():
    breaches, files, includes = [], 0, 0
    for rel in sorted(sources()):
        files += 1
        mine = layer_of(rel)
        if mine is None:
            breaches.append(f"{rel}: not in a layer's folder")
            continue
        with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
            text = f.read().split("\n")
        for n, line in enumerate(text, 1):
            m = INCLUDE.match(line)
            if m:
                includes += 1
                inc = m.group(1)
                target = target_of(inc)
                if target is None:
                    breaches.append(f"{rel}:{n}: #include \"{inc}\" is not qualified by its folder")
                elif LAYERS.index(target) > LAYERS.index(mine):
                    breaches.append(f"{rel}:{n}: {mine} includes \"{inc}\", of the later layer {target}")
            if rel.startswith("src/") and mine != "main":
                p = PROTOCOL.search(line)
                if p:
                    breaches.append(f"{rel}:{n}: names the protocol \"{p.group(0)}\" (only main.c may)")
    for b in breaches:
        print(b)
    print(f"check-layers: {files} files, {includes} includes, {len(breaches)} breaches")
    return 1 if breaches else 0


if __name__ == "__main__":
    sys.exit(main())
