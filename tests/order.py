#!/usr/bin/env python3
"""order - records in time order within a session (issue 26; docs/manual.md, "Time order").

usage: tests/order.py MXRAY [CAPTURE...]

Without captures: every capture of pcaps/ with its golden records
(tests/golden/P.ndjson), then the corpus captures where the cases of issue 26
were found (skipped when ../shared/corpus is absent). For each capture:

- records (the golden file, or a run of mxray for a corpus capture): a
  message is stamped at its first byte (ts is the time of its first frame,
  last_ts that of its last), and not before the reply or
  command that started it (the dialogue record of its flow with the latest
  first frame not after the message's first frame), unless the capture's
  clock stepped back between them; a gap is not stamped after the packet
  that settled it;
- the text timeline (-j0): within each flow the times never step back, no
  line says a session's ordering window was full, and no line that starts a
  message (354, +OK to RETR or TOP, * N FETCH) comes after a message of its
  flow with the same time (it may share the message's first packet);
- the HTML report: each diagram's rows never step back in time;
- the timeline of -j3 is the same as that of -j0.

Prints a FAIL line per problem, then `N passed, M failed`.
"""
import datetime
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle import common  # noqa: E402

# Where issue 26's cases were found (message before the +OK that started it,
# a gap before an anomaly it came after, TLS before the session record).
CORPUS = [
    "protolens/pop3.pcap",
    "suricata-verify/pop3__input.pcap",
    "mercury/imap.pcap",
    "zeek/smtp-bdat-gap.pcap",
    "zeek/smtp-one-side-only.pcap",
    "ndpi/smtp-starttls.pcap",
    "zeek/imap-starttls.pcap",
    "protolens/imap_fetch.pcap",
    "suricata-verify/smtp-extract-url-schemes__input.pcap",  # each side's clock stands still
]

DIALOGUE = (".reply", ".response", ".command", ".untagged", ".continuation")
# Lines that start a message: SMTP's 354, POP3's +OK to RETR or TOP, IMAP's FETCH.
STARTER = re.compile(r"^354 |\[(RETR|TOP), |^\* [0-9]+ FETCH ")
LINE = re.compile(r"^ *([0-9]+\.[0-9]+) #([0-9]+) +(C->S|S->C)? *(.*)$")


def frame_times(path):
    """Each frame's time (ns since the epoch), numbered from 1; pcap or pcapng."""
    with open(path, "rb") as f:
        data = f.read()
    out = [None]
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = "<" if magic[0] in (0xd4, 0x4d) else ">"
        nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
        off = 24
        while off + 16 <= len(data):
            sec, frac, cap, _ = struct.unpack_from(e + "IIII", data, off)
            out.append(sec * 10**9 + (frac if nano else frac * 1000))
            off += 16 + cap
        return out
    off, e, res = 0, "<", []
    while off + 12 <= len(data):
        btype, blen = struct.unpack_from(e + "II", data, off)
        if btype == 0x0A0D0D0A:
            e = "<" if data[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            btype, blen = struct.unpack_from(e + "II", data, off)
            res = []
        elif btype == 1:  # interface: if_tsresol (option 9)
            r, o = 10**-6, off + 16
            while o + 4 <= off + blen - 4:
                code, ln = struct.unpack_from(e + "HH", data, o)
                if code == 0:
                    break
                if code == 9:
                    v = data[o + 4]
                    r = 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v
                o += 4 + ln + (-ln % 4)
            res.append(r)
        elif btype == 6:
            iface, hi, lo = struct.unpack_from(e + "III", data, off + 8)
            out.append(round(((hi << 32) | lo) * res[iface] * 10**9))
        elif btype == 3:
            out.append(None)
        if blen < 12:
            break
        off += blen
    return out


def ns(iso):
    """An ISO time of the records as ns since the epoch."""
    main, frac = iso[:-1].split(".") if "." in iso else (iso[:-1], "0")
    t = datetime.datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return int(t.timestamp()) * 10**9 + int(frac.ljust(9, "0")[:9])


def to_us(t):
    return (t + 500) // 1000 if t is not None else None


def check_records(recs, times, fail):
    by_flow = {}
    for r in recs:
        if r.get("flow") and r.get("ts"):
            by_flow.setdefault(r["flow"], []).append(r)
    for flow, rs in by_flow.items():
        talk = [r for r in rs if r["type"].endswith(DIALOGUE) and r.get("frames")]
        for r in rs:
            fr = r.get("frames") or []
            if r["type"] == "message":
                ts = ns(r["ts"])
                if "last_ts" not in r:
                    fail("flow %s: message at %s has no last_ts" % (flow, r["ts"]))
                    continue
                for t, i, what in ((ts, 0, "ts"), (ns(r["last_ts"]), -1, "last_ts")):
                    if fr and fr[i] < len(times) and times[fr[i]] is not None and \
                            t // 1000 not in (to_us(times[fr[i]]), times[fr[i]] // 1000):
                        fail("flow %s: message %s %s is not the time of its frame %d" % (flow, what, r[what], fr[i]))
                if not fr:
                    continue
                starters = [s for s in talk if s["frames"][0] <= fr[0]]
                if starters:
                    st = max(starters, key=lambda s: s["frames"][0])
                    f, g = st["frames"][0], fr[0]
                    stepped = g < len(times) and None not in (times[f], times[g]) and times[f] > times[g]
                    if ns(st["ts"]) > ts and not stepped:  # unless the capture's clock stepped back
                        fail("flow %s: message at %s before the %s at %s that started it" %
                             (flow, r["ts"], st["type"], st["ts"]))
            elif r["type"] == "gap" and fr and fr[0] < len(times) and times[fr[0]] is not None:
                if ns(r["ts"]) // 1000 > to_us(times[fr[0]]):
                    fail("flow %s: gap at %s after the frame %d that settled it" % (flow, r["ts"], fr[0]))


def timeline(mx, cap, workers):
    res = subprocess.run([mx, "-q", "-j%d" % workers, "--color", "never", cap], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    return res.returncode, res.stdout.decode("utf-8", "replace")


def check_timeline(text, fail):
    last, msg_at = {}, {}
    for line in text.splitlines():
        if "timeline:" in line and "time order" in line:
            fail("the timeline says: " + line.strip())
        m = LINE.match(line)
        if not m:
            continue
        ts, flow, arrow, what = float(m.group(1)), m.group(2), m.group(3), m.group(4)
        if flow in last and ts < last[flow]:
            fail("flow #%s steps back: %s" % (flow, line.strip()[:120]))
        last[flow] = ts
        if what.startswith("message: "):
            msg_at[flow] = ts
        elif arrow and msg_at.get(flow) == ts and STARTER.search(what):
            fail("flow #%s: a message before the line that started it: %s" % (flow, line.strip()[:120]))


TM = re.compile(r'<text class="tm"[^>]*>\+(-?[0-9.]+) s</text>')


def check_html(mx, cap, fail):
    """Each session's diagram: its rows' times (+s from its start) never step back."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.html")
        subprocess.run([mx, "-q", "-j0", "--html", out, cap], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not os.path.exists(out):
            fail("no HTML report")
            return
        with open(out, encoding="utf-8") as f:
            page = f.read()
    for n, svg in enumerate(page.split('<svg class="seq"')[1:], 1):
        times = [float(t) for t in TM.findall(svg.split("</svg>")[0])]
        if any(b < a for a, b in zip(times, times[1:])):
            fail("diagram %d: rows step back in time: %s" % (n, times))


def check(mx, cap, gold):
    problems = []

    def fail(msg):
        problems.append(msg)

    if gold:
        with open(gold, encoding="utf-8") as f:
            recs = [json.loads(x) for x in f if x.strip()]
    else:
        try:
            recs = common.mxray_records(mx, "-q", "-j0", "--json", "-", cap)
        except (RuntimeError, ValueError) as e:
            recs = None
            fail("mxray failed: %s" % e)
    if recs is not None:
        check_records(recs, frame_times(cap) if not cap.endswith(".gz") else [None], fail)
    rc, t0 = timeline(mx, cap, 0)
    if rc not in (0, 3):
        fail("mxray exited %d" % rc)
    check_timeline(t0, fail)
    check_html(mx, cap, fail)
    if timeline(mx, cap, 3)[1] != t0:
        fail("the timeline of -j3 differs from that of -j0")
    for p in problems:
        print("FAIL %s: %s" % (cap, p), flush=True)
    return not problems


def main(args):
    common.start()
    if not args:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    mx, caps = os.path.abspath(args[0]), args[1:]
    if common.not_built(mx):
        return 1
    os.chdir(common.REPO)
    todo = []
    if caps:
        todo = [(c, None) for c in caps]
    else:
        for cap in (os.path.relpath(p, common.REPO) for p in common.pcaps()):
            todo.append((cap, os.path.join("tests", "golden", os.path.relpath(cap, "pcaps")) + ".ndjson"))
        shared = os.path.join(common.REPO, "..", "shared", "corpus")
        if os.path.isdir(shared):
            todo += [(os.path.join(shared, c), None) for c in CORPUS]
        else:
            print("order: ../shared/corpus is absent: its captures are skipped", flush=True)
    passed = failed = 0
    for cap, gold in todo:
        if check(mx, cap, gold):
            passed += 1
        else:
            failed += 1
    return common.summary(passed, failed)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
