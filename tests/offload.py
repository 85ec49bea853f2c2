#!/usr/bin/env python3
"""offload - mxray reads captures taken on the sending host as it reads the wire (issue 25).

usage: tests/offload.py MXRAY

Each Ethernet capture of pcaps/{smtp,pop3,imap} (recorded with offloads off)
is rewritten by scripts/lab/offload.py into the super-frames segmentation
offload leaves on a sending host: IP length 0 (TSO/GSO, BIG TCP), and again
with the true length kept (as GRO leaves it on a receiving host). mxray must
give the rewritten capture the same records as the original, frame numbers
and packet counts aside: the same commands, replies, transactions, messages
and their hashes, audit findings and anomalies, flow by flow, and the same
exit status; times (ts, last_ts, latency) aside, since a super-frame's bytes
arrive at its first segment's time: each may only be earlier, never later,
than the original's
(0: an offloaded frame is no damage), with IP_LENGTH_FROM_FRAME noted once
per flow that had a super-frame of length 0 and never otherwise. Then, with
tshark, tests/oracle/compare_streams.py checks the rewritten captures' streams
byte for byte (skipped when tshark is absent).

Then the captures the lab recorded with offloads on (pcaps/offload/, issue 25;
docs/lab.md, the offload path): for each twin SLUG.pcap (offloads off) its
SLUG-sender.pcap (taken on the host sending the bulk: GSO/TSO super-frames)
and SLUG-receiver.pcap (on the host receiving it: GRO super-frames) are
separate runs of the same scenario, so ports, times, queue IDs, server timing
texts, byte counts and which end closed first differ (RUN_KEYS, the lab's
NORMALISERS); what must be equal is what the traffic said: the same records
once those are set aside (the same commands, replies, transactions, messages,
their sizes, hashes and attachments, sessions, audit findings, anomalies),
exit 0 each, no TCP_GAP, frames longer than the MTU in each offload capture
(the proof that offload happened; counts and longest frames are printed), and
tshark agreeing with mxray stream by stream.
Exit: 0 pass, 1 fail.
"""
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "scripts", "lab"))
import offload  # noqa: E402
sys.path.insert(0, os.path.join(REPO, "scripts", "lab", "lib"))
import driver  # noqa: E402  (its NORMALISERS: what differs between two runs of a scenario)
sys.path.insert(0, HERE)
from oracle import common  # noqa: E402

NOTE = "IP_LENGTH_FROM_FRAME"
DROP = {"frames", "frame", "packets", "bytes"}  # what offload changes by nature: frames, and header bytes
# and the network's part measured from frames and their times (docs/manual.md): the round trip,
# stalls, the per-command times (a super-frame brings its bytes at its first segment's time)
DROP |= {"rtt", "stall_ms", "stall_frames", "first_byte_ms", "complete_ms", "network"}
# the frames other records name (issue 27: the capability reply, the secret's frame, a smuggled
# sequence's replies, a journey hop's and a failure's first and last frames)
DROP |= {"capabilities_frames", "capabilities_before_login_frames", "secret_frame", "reply_frames"}


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


TIMES = ("ts", "last_ts")  # a super-frame brings its bytes at its first segment's time


def split_times(recs):
    """The records without their times (ts, last_ts, and the latency they
    make), and those times, record by record."""
    out, times = [], []
    for r in recs:
        t = tuple(r.get(k) for k in TIMES)
        r = {k: v for k, v in r.items() if k not in TIMES and k != "latency"}
        if r.get("type") == "journey":
            # a journey's hops: their times are those of the records they come from
            t += tuple(h.get(k) for h in r["hops"] for k in ("start", "end"))
            r["hops"] = [{k: v for k, v in h.items() if k not in ("start", "end")} for h in r["hops"]]
        times.append(t)
        out.append(r)
    return out, times


def not_later(name, t0, t):
    """A rewritten capture's records come no later than the original's: a
    super-frame holds segments sent at or after its own time."""
    later = [(a, b) for x, y in zip(t0, t) for a, b in zip(x, y) if a and b and b > a]
    if later:
        print("FAIL %s: %d times later than the original's, first %s > %s" % (name, len(later), later[0][1],
                                                                             later[0][0]))
    return 1 if later else 0


# Keys whose values differ between two runs of one scenario by nature: frame
# numbers and counts, times, the client's port (and so the Community ID), byte counts (super-frames
# carry fewer headers), and what depends on TLS's random bytes.
# Also which end closed first (the teardown races), and byte counts of the
# streams (a reply's timing text, a TLS session ticket vary in length between
# runs; tshark checks each capture's bytes).
RUN_KEYS = DROP | {"ts", "last_ts", "start", "end", "duration", "latency", "client_port", "community_id", "queue_id",
                   "fin", "tls_bytes", "payload_bytes"}
# and what TCP did in each run (a receiver's zero window in one run and not in its twin)
RUN_KEYS |= {"retransmissions", "fast_retransmissions", "spurious_retransmissions", "out_of_order", "duplicate_acks",
             "zero_windows"}
# dovecot's POP3 banner timestamp (RFC 1939 §7), new each run
APOP = re.compile(r"<[^<>@\s]+@mx\.lab\.test>")


def norm_run(o):
    """norm() and the run-dependent values set aside (see RUN_KEYS)."""
    if isinstance(o, dict):
        return {k: norm_run(v) for k, v in o.items()
                if k not in RUN_KEYS and not (k == "anomalies" and not v)}
    if isinstance(o, list):
        return [norm_run(v) for v in o]
    if isinstance(o, str):
        return APOP.sub("<APOP-TIMESTAMP>", driver._normalise(o))
    return o


def run_records(mx, cap, tmp):
    """records() with norm_run."""
    st, rec, notes = records(mx, cap, tmp)
    return st, [norm_run(r) for r in rec], notes


def frame_sizes(cap):
    """{source address: [frames, frames longer than the MTU, longest]}."""
    out = {}
    _, _, frames = offload.read_pcap(cap)
    for fr in frames:
        seg = offload.tcp_of(fr[2])
        if seg is None or seg["v"] != 4:
            continue
        st = out.setdefault(".".join(str(x) for x in seg["key"][0]), [0, 0, 0])
        st[0] += 1
        st[1] += fr[3] > 1514
        st[2] = max(st[2], fr[3])
    return out


def recorded(mx, tmp):
    """The lab's offload captures against their twins; returns (failures,
    the captures for tshark)."""
    fails, caps = 0, []
    for twin in sorted(glob.glob(os.path.join(REPO, "pcaps", "offload", "*.pcap"))):
        if twin.endswith(("-sender.pcap", "-receiver.pcap")):
            continue
        st0, rec0, _ = run_records(mx, twin, tmp)
        caps.append(twin)
        for side in ("sender", "receiver"):
            cap = twin[:-5] + "-" + side + ".pcap"
            name = os.path.relpath(cap, REPO)
            if not os.path.exists(cap):
                print("FAIL %s: missing" % name)
                fails += 1
                continue
            caps.append(cap)
            st, rec, notes = run_records(mx, cap, tmp)
            sizes = frame_sizes(cap)
            supers = sum(v[1] for v in sizes.values())
            print("offload: %s: %s (address: frames, longer than the MTU, longest)"
                  % (name, ", ".join("%s: %d, %d, %d" % ((k,) + tuple(v)) for k, v in sorted(sizes.items()))))
            if not supers:
                print("FAIL %s: no frame longer than the MTU: recorded without offload?" % name)
                fails += 1
            if st != 0 or st0 != 0:
                print("FAIL %s: exit %d, its twin %d" % (name, st, st0))
                fails += 1
            gaps = [r for r in rec if "TCP_GAP" in json.dumps(r)]
            if gaps:
                print("FAIL %s: TCP_GAP: %s" % (name, json.dumps(gaps[0])[:300]))
                fails += 1
            if rec != rec0:
                for a, b in [(a, b) for a, b in zip(rec0, rec) if a != b] or [(len(rec0), len(rec))]:
                    print("FAIL %s: records differ from the twin's:\n  %s\n  %s" % (name, json.dumps(a)[:1500], json.dumps(b)[:1500]))
                fails += 1
            elif notes:
                print("offload: %s: %s in %d flows" % (name, NOTE, len(notes)))
    return fails, caps


def tshark(mx, caps, what):
    """tests/oracle/compare_streams.py on caps; returns the failures (0 or 1)."""
    if not caps:
        return 0
    r = subprocess.run([sys.executable, os.path.join(HERE, "oracle", "compare_streams.py"), "--mxray", mx]
                       + caps, capture_output=True, text=True)
    tail = (r.stdout.strip().splitlines() or [""])[-1]
    if r.returncode == 77:
        print("offload: tshark comparison skipped: " + tail)
    elif r.returncode != 0:
        print("FAIL tshark comparison of %s:\n%s%s" % (what, r.stdout[-2000:], r.stderr[-1000:]))
        return 1
    else:
        print("offload: tshark agrees on %s' streams: %s" % (what, tail))
    return 0


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
        rec0, t0 = split_times(rec0)
        if notes0:
            print("FAIL %s: %s on the original" % (cap, NOTE))
            fails += 1
        for keep in (False, True):
            out = os.path.join(tmp, "%s%s.pcap" % (os.path.basename(cap)[:-5], "-gro" if keep else "-tso"))
            _, _, supers = offload.rewrite(cap, out, keep_length=keep)
            st, rec, notes = records(mx, out, tmp)
            rec, t = split_times(rec)
            name = "%s (%s, %d super-frames)" % (os.path.relpath(cap, REPO), "GRO" if keep else "TSO", supers)
            checked += 1
            same = common.same_as_original(name, st0, rec0, st, rec)
            fails += same or not_later(name, t0, t)
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
    fails += tshark(mx, rewritten, "the TSO captures")
    f, caps = recorded(mx, tmp)
    fails += f
    fails += tshark(mx, caps, "the recorded offload captures")
    if not caps:
        print("FAIL no recorded offload captures in pcaps/offload/")
        fails += 1
    subprocess.run(["rm", "-rf", tmp])
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
