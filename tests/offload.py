#!/usr/bin/env python3
"""offload - mxray reads captures taken on the sending host as it reads the wire (issue 25).

usage: tests/offload.py MXRAY

Each Ethernet capture of pcaps/{smtp,pop3,imap} (recorded with offloads off)
is rewritten by scripts/lab/offload.py into the super-frames segmentation
offload leaves on a sending host: IP length 0 (TSO/GSO, BIG TCP), and again
with the true length kept (as GRO leaves it on a receiving host). mxray must
give the rewritten capture the same records as the original, frame numbers
and packet counts aside: the same commands, replies, transactions, messages
and their hashes, audit findings and anomalies (their times aside: a
super-frame's bytes arrive at its first segment's time), flow by flow, and
the same exit status
(0: an offloaded frame is no damage), with IP_LENGTH_FROM_FRAME noted once
per flow that had a super-frame of length 0 and never otherwise. Then, with
tshark, tests/oracle/compare_streams.py checks the rewritten captures' streams
byte for byte (skipped when tshark is absent).
Exit: 0 pass, 1 fail.
"""
import glob
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "scripts", "lab"))
import offload  # noqa: E402
sys.path.insert(0, HERE)
from oracle import common  # noqa: E402

NOTE = "IP_LENGTH_FROM_FRAME"
DROP = {"frames", "frame", "packets", "bytes"}  # what offload changes by nature: frames, and header bytes


def norm(o):
    if isinstance(o, dict):
        return {k: norm(v) for k, v in o.items() if k not in DROP and not (k == "anomalies" and not v)}
    if isinstance(o, list):
        return [norm(v) for v in o]
    return o


def records(mx, cap, tmp):
    out = os.path.join(tmp, "out.json")
    r = subprocess.run([mx, "-q", "--json", out, cap], capture_output=True, text=True)
    recs = [json.loads(line) for line in open(out)] if os.path.exists(out) else []
    notes = {}
    kept = []
    for rec in recs:
        if rec.get("type") == "summary":
            continue
        if rec.get("type") == "anomaly" and rec.get("name") == NOTE:
            notes[rec.get("flow")] = notes.get(rec.get("flow"), 0) + 1
            continue
        an = rec.get("anomalies")
        if isinstance(an, dict) and NOTE in an:
            an = dict(an)
            del an[NOTE]
            rec = dict(rec, anomalies=an)
        if rec.get("type") == "anomaly":
            rec = {k: v for k, v in rec.items() if k != "ts"}  # the frame where it shows moved earlier
        kept.append(norm(rec))
    # Per flow, in order: a super-frame brings its bytes at its first
    # segment's place, so records of different flows may interleave otherwise.
    kept.sort(key=lambda x: x.get("flow") or 0)
    return r.returncode, kept, notes


def main():
    mx = os.path.abspath(sys.argv[1])
    caps = sorted(c for d in ("smtp", "pop3", "imap") for c in glob.glob(os.path.join(REPO, "pcaps", d, "*.pcap")))
    fails = supers_total = checked = 0
    rewritten = []
    tmp = tempfile.mkdtemp(prefix="mx-offload-")
    for cap in caps:
        try:
            offload.read_pcap(cap)
        except ValueError:
            continue  # not classic Ethernet pcap
        st0, rec0, notes0 = records(mx, cap, tmp)
        if notes0:
            print("FAIL %s: %s on the original" % (cap, NOTE))
            fails += 1
        for keep in (False, True):
            out = os.path.join(tmp, "%s%s.pcap" % (os.path.basename(cap)[:-5], "-gro" if keep else "-tso"))
            _, _, supers = offload.rewrite(cap, out, keep_length=keep)
            st, rec, notes = records(mx, out, tmp)
            name = "%s (%s, %d super-frames)" % (os.path.relpath(cap, REPO), "GRO" if keep else "TSO", supers)
            checked += 1
            fails += common.same_as_original(name, st0, rec0, st, rec)
            if keep and notes:
                print("FAIL %s: %s with true lengths" % (name, NOTE))
                fails += 1
            if not keep:
                supers_total += supers
                if supers and not notes:
                    print("FAIL %s: no %s" % (name, NOTE))
                    fails += 1
                if any(n != 1 for n in notes.values()):
                    print("FAIL %s: %s more than once per flow: %s" % (name, NOTE, notes))
                    fails += 1
                if supers:
                    rewritten.append(out)
    print("offload: %d rewritten captures, %d super-frames of length 0, %d failures" % (checked, supers_total, fails))
    if rewritten:
        r = subprocess.run([sys.executable, os.path.join(HERE, "oracle", "compare_streams.py"), "--mxray", mx]
                           + rewritten, capture_output=True, text=True)
        tail = (r.stdout.strip().splitlines() or [""])[-1]
        if r.returncode == 77:
            print("offload: tshark comparison skipped: " + tail)
        elif r.returncode != 0:
            print("FAIL tshark comparison of the TSO captures:\n" + r.stdout[-2000:] + r.stderr[-1000:])
            fails += 1
        else:
            print("offload: tshark agrees on the TSO captures' streams: " + tail)
    subprocess.run(["rm", "-rf", tmp])
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
