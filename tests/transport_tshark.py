#!/usr/bin/env python3
"""transport_tshark.py - the network's part of each flow agrees with tshark's tcp.analysis (issue 27).

  transport_tshark.py MXRAY [CAPTURE...]

For every capture of pcaps/impaired/ and every corpus capture (../shared/corpus)
where tshark marks a retransmission, mxray's flow records give per direction
(c2s, s2c) `retransmissions`, `fast_retransmissions`, `spurious_retransmissions`,
`out_of_order`, `duplicate_acks` and `zero_windows`; tshark marks the same
frames with tcp.analysis.retransmission (which it sets on fast and spurious
retransmissions too, as mxray's `retransmissions` counts them),
.fast_retransmission, .spurious_retransmission, .out_of_order, .duplicate_ack
and .zero_window. Each tshark mark is put in the mxray flow of the same
4-tuple whose frames [first, last] hold it, in the direction of its sender,
and the counts must be equal.

Compared like with like: mxray reports mail flows only, so tshark's marks on
other connections are left out; and a flow's record ends with the packet that
closed it (a RST, the second FIN's ACK): a straggler after that, or a SYN
sent again after a RST (mxray starts a new flow with it, tshark goes on with
the same stream and calls it a retransmission), lies outside every flow's
frames and is listed, not counted.

Skips (77) without tshark; corpus captures are skipped when ../shared is absent.
"""
import glob
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CORPUS = os.path.join(os.path.dirname(REPO), "shared", "corpus")
KEYS = ["retransmissions", "fast_retransmissions", "spurious_retransmissions", "out_of_order", "duplicate_acks",
        "zero_windows"]
FIELDS = ["tcp.analysis.retransmission", "tcp.analysis.fast_retransmission", "tcp.analysis.spurious_retransmission",
          "tcp.analysis.out_of_order", "tcp.analysis.duplicate_ack", "tcp.analysis.zero_window"]


def last(v):
    """The innermost of several values (a tunnel's packet carries two IP headers)."""
    return v.split(",")[-1] if v else ""


def tshark_marks(path):
    """[(frame, src, sport, dst, dport, [bool per KEYS])] of the marked frames."""
    flt = " or ".join(FIELDS)
    cmd = ["tshark", "-r", path, "-Y", flt, "-T", "fields", "-E", "separator=/t", "-e", "frame.number",
           "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "ipv6.dst", "-e", "tcp.dstport"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, check=True).stdout.decode()
    marks = []
    for line in out.splitlines():
        v = line.split("\t")
        if len(v) < 7 + len(FIELDS) or not v[0].isdigit():
            continue
        src = last(v[1]) or last(v[2])
        dst = last(v[4]) or last(v[5])
        marks.append((int(v[0]), src, int(last(v[3])), dst, int(last(v[6])), [bool(x) for x in v[7:7 + len(FIELDS)]]))
    return marks


def stream_starts(path):
    """The first frame of each of tshark's TCP streams."""
    out = subprocess.run(["tshark", "-r", path, "-Y", "tcp", "-T", "fields", "-e", "frame.number", "-e", "tcp.stream"],
                         capture_output=True, check=True).stdout.decode()
    first = {}
    for line in out.splitlines():
        v = line.split("\t")
        if len(v) == 2 and v[0].isdigit() and v[1]:
            first.setdefault(last(v[1]), int(v[0]))
    return set(first.values())


def mxray_flows(mxray, path):
    out = subprocess.run([mxray, "--json", "-", path], capture_output=True).stdout.decode()
    return [r for r in map(json.loads, filter(None, out.splitlines())) if r.get("type") == "flow"]


def check(mxray, path):
    """Problems found on one capture (a list of strings), and the counts compared."""
    flows = mxray_flows(mxray, path)
    starts = stream_starts(path)
    # A flow that goes on with an earlier flow's 4-tuple where tshark saw no
    # new stream (mxray ended the earlier one on a RST or a timeout): tshark's
    # analysis carries on across it, mxray's starts afresh.
    seen, carried = set(), set()
    for i, f in enumerate(flows):
        key = (f["client"], f["client_port"], f["server"], f["server_port"])
        if key in seen and f["frames"][0] not in starts:
            carried.add(i)
        seen.add(key)
    want = {}  # (flow index, dir) -> counts from tshark
    outside = []
    for frame, src, sport, dst, dport, flags in tshark_marks(path):
        home = None
        for i, f in enumerate(flows):
            a, b = f["frames"][0], f["frames"][-1]
            if not a <= frame <= b:
                continue
            if (src, sport, dst, dport) == (f["client"], f["client_port"], f["server"], f["server_port"]):
                home = (i, "c2s")
            elif (src, sport, dst, dport) == (f["server"], f["server_port"], f["client"], f["client_port"]):
                home = (i, "s2c")
            if home:
                break
        if home is not None and home[0] in carried:
            outside.append(frame)
            continue
        if home is None:
            if any({src, dst} == {f["client"], f["server"]} and {sport, dport} == {f["client_port"], f["server_port"]}
                   for f in flows):
                outside.append(frame)
            continue
        c = want.setdefault(home, [0] * len(KEYS))
        for k, on in enumerate(flags):
            c[k] += on
    problems, compared = [], 0
    for i, f in enumerate(flows):
        if i in carried:
            continue
        for d in ("c2s", "s2c"):
            t = want.get((i, d), [0] * len(KEYS))
            for k, key in enumerate(KEYS):
                compared += 1
                if f[d].get(key) != t[k]:
                    problems.append("flow %d %s %s: mxray %s, tshark %d" % (f["flow"], d, key, f[d].get(key), t[k]))
    if outside:
        print("  %s: tshark marks outside the flows compared (not counted): %s" %
              (os.path.relpath(path, REPO), ", ".join(map(str, outside[:10]))))
    return problems, compared, sum(sum(c) for c in want.values())


def corpus_with_retransmissions():
    man = os.path.join(CORPUS, "MANIFEST.tsv")
    if not os.path.exists(man):
        print("transport_tshark: ../shared/corpus absent: corpus captures skipped")
        return []
    out = []
    with open(man, encoding="utf-8") as f:
        for line in f.read().splitlines()[1:]:
            cols = line.split("\t")
            if len(cols) < 11 or cols[10] != "mail":
                continue
            p = os.path.join(CORPUS, cols[0])
            r = subprocess.run(["tshark", "-r", p, "-Y", "tcp.analysis.retransmission", "-T", "fields", "-e",
                                "frame.number"], capture_output=True)
            if r.returncode == 0 and r.stdout.strip():
                out.append(p)
    return out


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    mxray = sys.argv[1]
    if not shutil.which("tshark"):
        print("transport_tshark: tshark not found: skipped")
        return 77
    caps = sys.argv[2:] or sorted(glob.glob(os.path.join(REPO, "pcaps", "impaired", "*.pcap"))) + \
        corpus_with_retransmissions()
    failed = passed = marks = 0
    for p in caps:
        problems, n, m = check(mxray, p)
        marks += m
        if problems:
            failed += 1
            print("FAIL %s" % os.path.relpath(p, REPO))
            for x in problems:
                print("  " + x)
        else:
            passed += 1
    print("transport_tshark: %d captures agree, %d differ (%d tshark marks in mail flows)" % (passed, failed, marks))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
