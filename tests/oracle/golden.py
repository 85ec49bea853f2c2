#!/usr/bin/env python3
"""golden - runs mxray on every capture in pcaps/ and compares with tests/golden/.

For each capture P: tests/golden/P.ndjson (the NDJSON records) and
tests/golden/P.streams.json (the --streams index); a capture with a key log
beside it (P without its extension, .keys) is read with --tls-keylog, and every
capture with --tls-ca: its CA file beside it (.ca.pem), else "none", so that no
golden depends on the machine's trust store. With --update, rewrites
them instead; review the diff before committing.

usage: tests/oracle/golden.py [--update] [MXRAY]

MXRAY (default build/mxray) is taken from the repository's root, where the
captures are read.  mxray must exit 0 (clean) or 3 (damaged input).  Prints
a FAIL line per capture that disagrees (with the first 20 lines of diff's
output for a file that differs), then `N passed, M failed`.  Exit status: 0
all passed, 1 failures.
"""
import os
import shutil
import subprocess
import sys
import tempfile

if __package__ in (None, ""):   # run as a file: tests/ holds the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from oracle import common  # noqa: E402


def same(a, b):
    """Whether two files hold the same bytes (cmp -s); False when one is missing."""
    try:
        with open(a, "rb") as fa, open(b, "rb") as fb:
            return fa.read() == fb.read()
    except OSError:
        return False


def show_diff(want, got, lines=20):
    """diff's output from want to got, its first lines (diff | head)."""
    out = subprocess.run(["diff", want, got], stdout=subprocess.PIPE).stdout
    pos = 0
    for _ in range(lines):
        end = out.find(b"\n", pos)
        if end < 0:
            pos = len(out)
            break
        pos = end + 1
    sys.stdout.buffer.write(out[:pos])
    sys.stdout.flush()


def run_mxray(mx, args):
    """mxray's exit status as a shell gives it (127: not found, 128+N: signal N)."""
    try:
        rc = subprocess.call([mx] + args)
    except OSError as e:
        print("golden: %s: %s" % (mx, e.strerror), file=sys.stderr, flush=True)
        return 127 if isinstance(e, FileNotFoundError) else 126
    return 128 - rc if rc < 0 else rc


def copy(src, dst):
    try:
        shutil.copyfile(src, dst)
    except OSError as e:
        print("golden: cannot copy %s to %s: %s" % (src, dst, e.strerror), file=sys.stderr,
              flush=True)


def main(args):
    common.start()
    update = bool(args) and args[0] == "--update"
    if update:
        args = args[1:]
    mx = args[0] if args else "build/mxray"
    os.chdir(common.REPO)
    tmp = tempfile.mkdtemp()
    out, sdir = os.path.join(tmp, "out.ndjson"), os.path.join(tmp, "s")
    passed = failed = 0
    try:
        for cap in (os.path.relpath(p, common.REPO) for p in common.pcaps()):
            gold = os.path.join("tests", "golden", os.path.relpath(cap, "pcaps"))
            shutil.rmtree(sdir, ignore_errors=True)
            # A capture with its key log beside it (pcaps/keylog) is read decrypted.
            keys = os.path.splitext(cap)[0] + ".keys"
            kl = ["--tls-keylog", keys] if os.path.isfile(keys) else []
            # Trust is judged against the capture's own CA file, or not at
            # all: never against this machine's store (common.tls_ca_args).
            kl += common.tls_ca_args(cap)
            rc = run_mxray(mx, ["-q", "--json", out, "--streams", sdir] + kl + [cap])
            if rc not in (0, 3):
                print("FAIL %s: mxray exited %d" % (cap, rc), flush=True)
                failed += 1
                continue
            if update:
                os.makedirs(os.path.dirname(gold), exist_ok=True)
                copy(out, gold + ".ndjson")
                copy(os.path.join(sdir, "index.json"), gold + ".streams.json")
                passed += 1
                continue
            ok = True
            for got, want in ((out, gold + ".ndjson"),
                              (os.path.join(sdir, "index.json"), gold + ".streams.json")):
                if not os.path.isfile(want):
                    print("FAIL %s: no golden file %s (run tests/oracle/golden.py --update and"
                          " review)" % (cap, want), flush=True)
                    ok = False
                elif not same(got, want):
                    print("FAIL %s: output differs from %s:" % (cap, want), flush=True)
                    show_diff(want, got)
                    ok = False
            if ok:
                passed += 1
            else:
                failed += 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return common.summary(passed, failed)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
