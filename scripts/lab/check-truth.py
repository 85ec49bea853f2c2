#!/usr/bin/env python3
"""Rerun the lab and compare the new ground truth with the committed one.

  scripts/lab/check-truth.py [SCENARIO...]        (root; runs run-all)
  scripts/lab/check-truth.py --against DIR        compare DIR's truth files
                                               with pcaps/ without rerunning

What must be equal: per session the protocol, server port, TLS mode and
every transcript entry (direction, TLS flag, and the normalised text: "norm"
where present, else "text"/"b64"); the messages sent (sha256 and attachment
hashes); what was delivered (user and sha256 after the trace headers).
Raw values that vary per run (queue ids, TLS bytes, timestamps) are not
compared.  Not run in CI: it needs root and network namespaces.
"""
import glob
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PCAPS = os.path.normpath(os.path.join(HERE, "..", "..", "pcaps"))


def comparable(t):
    def entry(e):
        v = e.get("norm", e.get("text", e.get("b64")))
        return [e["dir"], e["tls"], v]
    return {
        "scenario": t["scenario"],
        "sessions": [{"proto": s["proto"], "server_port": s["server_port"],
                      "tls": s["tls"], "transcript": [entry(e) for e in s["transcript"]]}
                     for s in t["sessions"]],
        "messages": [{k: m[k] for k in ("file", "sha256", "attachments")}
                     for m in t["messages"]],
        "delivered": sorted((d["user"], d["sha256_without_trace"]) for d in t["delivered"]),
    }


def diff(a, b, path=""):
    """First differences between two JSON values, as strings."""
    out = []
    if type(a) != type(b):
        return ["%s: %r != %r" % (path, a, b)]
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            out += diff(a.get(k), b.get(k), "%s.%s" % (path, k))
    elif isinstance(a, list):
        if len(a) != len(b):
            out.append("%s: length %d != %d" % (path, len(a), len(b)))
        for i, (x, y) in enumerate(zip(a, b)):
            out += diff(x, y, "%s[%d]" % (path, i))
    elif a != b:
        out.append("%s: %r != %r" % (path, a, b))
    return out[:10]


def main():
    args = sys.argv[1:]
    if args[:1] == ["--against"]:
        newdir = args[1]
        names = None
    else:
        newdir = tempfile.mkdtemp(prefix="mxlab-check.")
        env = dict(os.environ, LAB_PCAPS=newdir)
        r = subprocess.run([os.path.join(HERE, "run-all.sh")] + args, env=env)
        if r.returncode != 0:
            print("check-truth: run-all failed")
            return 1
    old = {os.path.relpath(f, PCAPS): f
           for f in glob.glob(os.path.join(PCAPS, "**", "*.truth.json"), recursive=True)}
    new = {os.path.relpath(f, newdir): f
           for f in glob.glob(os.path.join(newdir, "**", "*.truth.json"), recursive=True)}
    npass = nfail = 0
    for rel in sorted(new):
        if rel not in old:
            print("new  %s (no committed truth)" % rel)
            continue
        with open(old[rel], encoding="utf-8") as f:
            a = comparable(json.load(f))
        with open(new[rel], encoding="utf-8") as f:
            b = comparable(json.load(f))
        d = diff(a, b)
        if d:
            nfail += 1
            print("FAIL %s" % rel)
            for x in d:
                print("     " + x)
        else:
            npass += 1
            print("ok   %s" % rel)
    print("%d passed, %d failed" % (npass, nfail))
    if args[:1] != ["--against"] and not os.environ.get("LAB_KEEP"):
        import shutil
        shutil.rmtree(newdir, ignore_errors=True)
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
