#!/usr/bin/env python3
"""failure_views.py - every view lists the same failures (issue 27: one failure model).

The failure model (dissectors/findings/failure.c) emits `failure` records; the
JSON carries them, `--failures` prints a block for each, the HTML overview lists
them and counts the sessions that have one, and the timeline marks each with a
FAILURE line. For every capture of pcaps/ and of the public corpus, and for the
captures of each pcaps/ folder read together as one run (several files), this
runs mxray once with --json, --html and --failures, once for the timeline, and
checks that the four views list the same failures: (flow, first frame, kind)
for the JSON, --failures and the HTML; (flow, kind) for the timeline; and the
HTML's "N with failures" is the number of flows with one. It also checks that
nothing but the model's records makes a failure: no anomaly, no VRFY answer.
The corpus part is skipped, saying so, when ../shared/corpus is absent.

  failure_views.py MXRAY
"""
import collections
import concurrent.futures as cf
import glob
import html
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from oracle import common  # noqa: E402

BLOCK = re.compile(r"^(FAILED|DEFERRED)  .*  flow (\d+), frames (\d+)(?:-(\d+))?  \S*$")
KIND = re.compile(r"^  kind     (\S+) \((\S+), (\S+)\)$")
ITEM = re.compile(r'<li><a href="#f(\d+)">session \d+</a> [^<]*?(?:, frame (\d+))?: <span class="[^"]*">FAILURE (\S+) ([a-z_]+)')
COUNT = re.compile(r"<p>(\d+) sessions?, <span class=\"[^\"]*\">(\d+) with failures</span>")
LINE = re.compile(r"#(\d+)\s+FAILURE (\S+) ([a-z_]+)")


def views(mxray, paths):
    """The failures each view lists, for one run over paths."""
    with tempfile.TemporaryDirectory() as tmp:
        j, h = os.path.join(tmp, "o.ndjson"), os.path.join(tmp, "o.html")
        r = subprocess.run([mxray, "--failures", "--json", j, "--html", h, "--color", "never", *paths],
                           capture_output=True, text=True, errors="replace")
        if r.returncode not in (0, 3):
            raise RuntimeError("%s: exit %d: %s" % (paths, r.returncode, r.stderr[-500:]))
        recs = [json.loads(x) for x in open(j, encoding="utf-8")]
        page = open(h, encoding="utf-8").read()
    t = subprocess.run([mxray, "--color", "never", *paths], capture_output=True, text=True, errors="replace")
    js = collections.Counter()
    for x in recs:
        if x["type"] == "failure":
            js[(x["flow"], x["frames"][0], x["kind"])] += 1
    fl = collections.Counter()
    head = None
    for ln in r.stdout.splitlines():
        m = BLOCK.match(ln)
        if m:
            head = (int(m.group(2)), int(m.group(3)))
            continue
        m = KIND.match(ln)
        if m and head:
            fl[head + (m.group(1),)] += 1
            head = None
    hl = collections.Counter()
    for m in ITEM.finditer(page):
        hl[(int(m.group(1)), int(m.group(2) or 0), html.unescape(m.group(4)))] += 1
    more = re.search(r"and (\d+) more\.</p>", page)
    cm = COUNT.search(page)
    tl = collections.Counter()
    for m in LINE.finditer(t.stdout):
        tl[(int(m.group(1)), m.group(3))] += 1
    return recs, js, fl, hl, bool(more), cm, tl


def check(mxray, paths):
    """Problems with one run, as strings."""
    recs, js, fl, hl, more, cm, tl = views(mxray, paths)
    name = paths[0] if len(paths) == 1 else "%s (+%d files)" % (paths[0], len(paths) - 1)
    bad = []
    if js != fl:
        bad.append("%s: --failures %s, JSON %s" % (name, dict(fl - js), dict(js - fl)))
    if not more and js != hl:
        bad.append("%s: HTML %s, JSON %s" % (name, dict(hl - js), dict(js - hl)))
    if more and sum(hl.values()) != 500:
        bad.append("%s: a cut HTML list of %d items" % (name, sum(hl.values())))
    flows = {k[0] for k in js}
    if not cm or int(cm.group(2)) != len(flows):
        bad.append("%s: HTML says %s with failures, the JSON has %d flows with one"
                   % (name, cm.group(2) if cm else "nothing", len(flows)))
    tj = collections.Counter()
    for (flow, _, kind), n in js.items():
        tj[(flow, kind)] += n
    if tj != tl:
        bad.append("%s: timeline %s, JSON %s" % (name, dict(tl - tj), dict(tj - tl)))
    # Only the model's kinds, each derived from a record of a mail session.
    for x in recs:
        if x["type"] == "failure" and x["kind"] not in KINDS:
            bad.append("%s: unknown failure kind %s" % (name, x["kind"]))
    return bad, sum(js.values())


KINDS = {"recipient_refused", "message_refused", "transaction_unfinished", "login_failed", "starttls_refused",
         "tls_failed", "session_cut", "retrieval_failed", "bounced"}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    mxray = sys.argv[1]
    own = sorted(glob.glob(os.path.join(common.REPO, "pcaps", "**", "*.pcap*"), recursive=True))
    runs = [[p] for p in own]
    folders = collections.defaultdict(list)
    for p in own:
        folders[os.path.dirname(p)].append(p)
    runs += [v for v in folders.values() if len(v) > 1]
    if os.path.isdir(common.CORPUS):
        corpus = [os.path.join(common.CORPUS, p) for p in common.manifest_captures()]
        runs += [[p] for p in corpus]
        runs.append(corpus)
    else:
        print("failure_views: ../shared/corpus absent: the public captures are skipped")
    bad, total = [], 0
    with cf.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        for b, n in ex.map(lambda p: check(mxray, p), runs):
            bad += b
            total += n
    for b in bad:
        print("FAIL", b)
    print("failure_views: %d runs, %d failures listed alike by the JSON, --failures, the HTML and the timeline%s"
          % (len(runs), total, "" if not bad else "; %d disagreements" % len(bad)))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
