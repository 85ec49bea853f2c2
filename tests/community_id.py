#!/usr/bin/env python3
"""community_id - the flow's Community ID and ends on every record of it (issue 29).

usage: tests/community_id.py MXRAY

- Every record that names a flow carries, right after "flow",
  "community_id", "client", "client_port", "server" and "server_port", the
  same on all records of the flow: its flow_start's ends, and the Community
  ID (v1, seed 0; https://github.com/corelight/community-id-spec) of those
  computed here, apart from mxray: over the golden records of
  pcaps/ (one thread), and over a run of mxray with 2 workers on every
  capture of the corpus (../shared/corpus; skipped when absent).
- Wireshark's Community ID dissector (Corelight's own implementation, tshark
  --enable-protocol communityid) gives each flow's first frame the same ID,
  on pcaps/ and the corpus (skipped without tshark).
- Zeek's published Community IDs (oracles/zeek/*community_id*/*.out, one line
  per connection) agree with mxray's for every TCP connection mxray reports;
  a connection of another protocol is not mxray's and is counted apart.

Prints a FAIL line per problem, then `N passed, M failed`.
"""
import base64
import glob
import hashlib
import ipaddress
import json
import os
import re
import shutil
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle import common  # noqa: E402

TCP = 6


def community_id(a, pa, b, pb, proto=TCP, seed=0):
    """The spec's v1 hash: the ends ordered (address, then port), seed, both
    addresses, protocol, a pad byte and both ports in network order, SHA-1,
    base64."""
    ia, ib = ipaddress.ip_address(a), ipaddress.ip_address(b)
    if (ia.packed, pa) > (ib.packed, pb):
        ia, ib, pa, pb = ib, ia, pb, pa
    data = struct.pack("!H", seed) + ia.packed + ib.packed + struct.pack("!BBHH", proto, 0, pa, pb)
    return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode()


# What every record of a flow carries right after "flow", so that it stands alone.
FLOW_KEYS = ["community_id", "client", "client_port", "server", "server_port"]


def check_records(name, records, fail):
    """FAIL lines for records of name whose flow fields (FLOW_KEYS) are
    missing, out of place, or not the flow's (its flow_start's ends, and the
    Community ID of those); returns the number of records checked."""
    want = {}
    checked = 0
    for i, r in enumerate(records):
        flow = r.get("flow")
        if not flow:
            if "community_id" in r or "client_port" in r:
                fail("%s: record %d (%s) names no flow but has a flow's fields" % (name, i + 1, r["type"]))
            continue
        keys = list(r)
        if keys[:7] != ["type", "flow"] + FLOW_KEYS:
            fail("%s: record %d (%s, flow %s): keys begin %s" % (name, i + 1, r["type"], flow, keys[:7]))
            continue
        if r["type"] == "flow_start":
            want[flow] = [community_id(r["client"], r["client_port"], r["server"], r["server_port"])] + \
                [r[k] for k in FLOW_KEYS[1:]]
        got = [r[k] for k in FLOW_KEYS]
        if flow not in want:
            fail("%s: record %d (%s) of flow %s before its flow_start" % (name, i + 1, r["type"], flow))
        elif got != want[flow]:
            fail("%s: record %d (%s, flow %s): %s, the flow's are %s" % (name, i + 1, r["type"], flow, got, want[flow]))
        checked += 1
    return checked


def against_wireshark(cap, records, fail):
    """Compares each flow_start's community_id with the one Wireshark's
    Community ID dissector (Corelight's code) gives the flow's first frame;
    returns how many agree."""
    rows = common.tshark_rows(["tshark", "--enable-protocol", "communityid", "-r", cap, "-T", "fields",
                               "-e", "frame.number", "-e", "communityid"], 2)
    ids = {int(r[0]): r[1].split(common.AGG)[-1] for r in rows if r[1]}
    agree = 0
    for r in records:
        if r["type"] != "flow_start":
            continue
        want = ids.get(r["frames"][0])
        if want is None:
            fail("%s: flow %d: Wireshark gives its first frame %d no Community ID"
                 % (common.cap_name(cap), r["flow"], r["frames"][0]))
        elif want != r["community_id"]:
            fail("%s: flow %d: mxray %s, Wireshark %s" % (common.cap_name(cap), r["flow"], r["community_id"], want))
        else:
            agree += 1
    return agree


def zeek_oracles():
    """(capture path, [(orig_h, orig_p, resp_h, resp_p, proto, id)]) for each
    Zeek Community ID oracle the corpus's MANIFEST names."""
    out = []
    line_re = re.compile(r"\[orig_h=([^,]+), orig_p=(\d+)/(\w+), resp_h=([^,]+), resp_p=(\d+)/\w+.*\], (1:\S+)")
    for row in common.manifest():
        for o in row.get("oracles", "").split(";"):
            o = o.strip()
            if "community_id" not in o or not o.endswith(".out"):
                continue
            conns = []
            with open(os.path.join(common.CORPUS, o), encoding="utf-8") as fh:
                for line in fh:
                    m = line_re.search(line)
                    if m:
                        conns.append((m.group(1), int(m.group(2)), m.group(4), int(m.group(5)), m.group(3), m.group(6)))
            out.append((os.path.join(common.CORPUS, row["path"].strip()), o, conns))
    return out


def main():
    common.start()
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    mxray = os.path.realpath(sys.argv[1])
    if common.not_built(mxray):
        return 1
    passed = failed = 0
    problems = []

    def fail(msg):
        problems.append(msg)

    # The spec's own example, through this file's hash (it checks mxray's, so it is checked first).
    if community_id("1.2.3.4", 1122, "5.6.7.8", 3344) != "1:wCb3OG7yAFWelaUydu0D+125CLM=":
        fail("this test's Community ID disagrees with the spec's example")

    goldens = sorted(glob.glob(os.path.join(common.REPO, "tests", "golden", "**", "*.ndjson"), recursive=True))
    n = same = csame = 0
    tshark = shutil.which("tshark")
    for g in goldens:
        with open(g, encoding="utf-8") as fh:
            recs = [json.loads(l) for l in fh if l.strip()]
        n += check_records(os.path.relpath(g, common.REPO), recs, fail)
        cap = os.path.join(common.REPO, "pcaps", os.path.relpath(g, os.path.join(common.REPO, "tests", "golden")))[:-len(".ndjson")]
        if tshark and os.path.isfile(cap):
            same += against_wireshark(cap, recs, fail)
    print("golden records of pcaps/: %d files, %d records of flows" % (len(goldens), n))
    if tshark:
        print("Wireshark's Community ID dissector: %d flows of pcaps/ agree" % same)
        passed += 1 if same else 0
    else:
        print("note: tshark is absent: Wireshark's Community IDs not compared")

    if not os.path.isdir(common.CORPUS):
        print("note: %s is absent: only pcaps/ is checked" % common.CORPUS)
    else:
        caps = [os.path.join(common.CORPUS, p) for p in common.manifest_captures()]
        caps = [c for c in caps if os.path.isfile(c)]
        for cap in caps:
            try:
                recs = common.mxray_records(mxray, "-j2", "--tls-ca", "none", "--json", "-", cap)
            except (RuntimeError, ValueError) as e:
                fail("%s: %s" % (common.cap_name(cap), e))
                continue
            n += check_records(common.cap_name(cap), recs, fail)
            if tshark:
                csame += against_wireshark(cap, recs, fail)
        print("corpus, 2 workers: %d captures; Wireshark agrees on %d flows" % (len(caps), csame))
        for cap, oracle, conns in zeek_oracles():
            recs = common.mxray_records(mxray, "--tls-ca", "none", "--json", "-", cap)
            ours = {}
            for r in recs:
                if r["type"] == "flow_start":
                    ours[(r["client"], r["client_port"], r["server"], r["server_port"])] = r["community_id"]
            others = 0
            for oh, op, rh, rp, proto, cid in conns:
                if proto != "tcp":
                    others += 1
                    continue
                mine = ours.get((oh, op, rh, rp)) or ours.get((rh, rp, oh, op))
                if mine is None:
                    fail("%s: Zeek's connection %s:%d - %s:%d is not one of mxray's flows" % (oracle, oh, op, rh, rp))
                elif mine != cid:
                    fail("%s: %s:%d - %s:%d: mxray %s, Zeek %s" % (oracle, oh, op, rh, rp, mine, cid))
                else:
                    print("zeek %s: %s:%d - %s:%d %s: same" % (os.path.basename(oracle), oh, op, rh, rp, cid))
                    passed += 1
            if others:
                print("zeek %s: %d connection(s) not over TCP, not mxray's" % (os.path.basename(oracle), others))

    for p in problems:
        print("FAIL: " + p)
    failed = len(problems)
    passed += 1 if not problems else 0
    return common.summary(passed, failed)


if __name__ == "__main__":
    sys.exit(main())
