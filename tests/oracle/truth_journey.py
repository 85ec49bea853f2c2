#!/usr/bin/env python3
"""truth_journey - checks mxray's journey records against the capture lab's ground truth.

usage: tests/oracle/truth_journey.py [--mxray PATH] [TRUTH.json...]

For every truth file with a "journeys" list (scripts/lab/scenarios/
scen_journey.py: each message's hops as both postfix maillogs and the
scripted readers tell them):

  - mxray emits one journey record per message of the truth, found by its
    Message-ID, and no other;
  - it links every hop of the message, in the truth's order: the role
    (submission, relay, delivery, retrieval), the server and its port, the
    client's port where the maillog or the reader named it, the queue id
    (postfix's "queued as", confirmed by the next hop's Received field), the
    LMTP session id dovecot gave (the id of the Received field it added), and
    the time, within the maillog's one-second resolution;
  - a message the truth says was not delivered ends "stopped" at its last
    hop, with the LMTP server's reply;
  - messages with one body and two Message-IDs stay two journeys, each with
    its own submission, relay and delivery flows;
  - the text timeline and the HTML report show each journey.

Exit status: 0 all passed, 1 failures (or mxray is not built), 77 when no
truth file has journeys.
"""
import datetime
import json
import os
import subprocess
import sys

if __package__ in (None, ""):   # run as a file: tests/ holds the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from oracle import common  # noqa: E402


def secs(iso):
    """Seconds since the epoch of "2026-12-06T18:09:07[.123456][Z]"."""
    iso = iso.rstrip("Z")
    fmt = "%Y-%m-%dT%H:%M:%S.%f" if "." in iso else "%Y-%m-%dT%H:%M:%S"
    return datetime.datetime.strptime(iso, fmt).replace(tzinfo=datetime.timezone.utc).timestamp()


def check_hop(i, th, mh, errs):
    """One hop: the truth's th against mxray's mh."""
    where = "hop %d (%s)" % (i, th["role"])
    if mh.get("role") != th["role"]:
        errs.append("%s: role %s" % (where, mh.get("role")))
    for k in ("server", "server_port", "client_port", "queue_id"):
        if th.get(k) is not None and mh.get(k) != th[k]:
            errs.append("%s: %s %r, truth %r" % (where, k, mh.get(k), th[k]))
    if th.get("proto") and mh.get("proto") != th["proto"]:
        errs.append("%s: proto %s, truth %s" % (where, mh.get("proto"), th["proto"]))
    if th.get("queue_id") and mh.get("queue_id_confirmed") is not True:
        errs.append("%s: queue id %s not confirmed by the next hop's Received" % (where, th["queue_id"]))
    if th.get("lmtp_session") and mh.get("received_id") != th["lmtp_session"]:
        errs.append("%s: received_id %r, truth's LMTP session %r" % (where, mh.get("received_id"),
                                                                     th["lmtp_session"]))
    if th.get("time"):
        d = secs(mh["start"]) - secs(th["time"])
        # the maillog's second is when postfix logged it: the message's first
        # byte is in that second or the one before (a delivery is logged
        # after its reply)
        if not -1.0 <= d < 1.0:
            errs.append("%s: start %s, truth %s (%.3f s apart)" % (where, mh["start"], th["time"], d))


def check(mxray, tf):
    with open(tf, encoding="utf-8") as f:
        truth = json.load(f)
    pcap = os.path.join(os.path.dirname(tf), truth["capture"])
    recs = common.mxray_records(mxray, "-q", "--json", "-", pcap)
    js = [r for r in recs if r["type"] == "journey"]
    errs = []
    by_id = {}
    for j in js:
        if j.get("message_id") in by_id:
            errs.append("two journeys for %s" % j["message_id"])
        by_id[j.get("message_id")] = j
    want = {t["message_id"] for t in truth["journeys"]}
    for extra in set(by_id) - want:
        errs.append("a journey the truth does not have: %s" % extra)
    for t in truth["journeys"]:
        j = by_id.get(t["message_id"])
        if j is None:
            errs.append("%s: no journey" % t["message_id"])
            continue
        e = []
        hops = j["hops"]
        if len(hops) != len(t["hops"]):
            e.append("%d hops, truth %d: %s" % (len(hops), len(t["hops"]),
                                              [h.get("role") for h in hops]))
        for i, (th, mh) in enumerate(zip(t["hops"], hops)):
            check_hop(i, th, mh, e)
        starts = [secs(h["start"]) for h in hops]
        if starts != sorted(starts):
            e.append("hops out of time order")
        if t["delivered"] and j["outcome"] != "delivered":
            e.append("outcome %s, truth delivered" % j["outcome"])
        if not t["delivered"]:
            last = t["hops"][-1]
            st = j.get("stopped", {})
            if j["outcome"] != "stopped" or st.get("hop") != len(t["hops"]) - 1:
                e.append("outcome %s %s, truth: stopped at hop %d" % (j["outcome"], st, len(t["hops"]) - 1))
            code = last.get("reply", "").split("said: ")[-1][:3]
            if hops and hops[-1].get("reply", {}).get("status") != code:
                e.append("last hop's reply %s, truth %s" % (hops[-1].get("reply"), code))
        errs += ["%s: %s" % (t["message_id"], x) for x in e]
    # one body, two Message-IDs: two journeys, no flow of a transfer shared
    # (the reader's POP3 session retrieves both, in frames of its own)
    bodies = {}
    for j in js:
        bodies.setdefault(j.get("body_sha256"), []).append(j)
    twins = [v for v in bodies.values() if len(v) > 1]
    if not twins:
        errs.append("no two journeys share a body: the truth's twins were merged or lost")
    for v in twins:
        seen = {}
        for j in v:
            for h in j["hops"]:
                key = (h["flow"], tuple(h.get("frames", [])))
                if key in seen:
                    errs.append("%s and %s share the transfer at flow %d frames %s"
                                % (seen[key], j["message_id"], h["flow"], h.get("frames")))
                seen[key] = j["message_id"]
    # the views: the timeline's block, the HTML's section
    text = common.run_mxray(mxray, "-q", pcap).decode("utf-8", "replace")
    for t in truth["journeys"]:
        if "journey %s" % t["message_id"] not in text:
            errs.append("the timeline has no journey %s" % t["message_id"])
    html = subprocess.run([mxray, "-q", "--html", "-", pcap], stdout=subprocess.PIPE).stdout.decode(
        "utf-8", "replace")
    if 'id="journeys"' not in html:
        errs.append("the HTML report has no Journeys section")
    for j in js:
        for h in j["hops"]:
            if 'href="#f%d"' % h["flow"] not in html:
                errs.append("the HTML report does not link hop flow %d" % h["flow"])
    return errs, len(js)


def main():
    ap = common.parser(__doc__)
    ap.add_argument("truth", nargs="*")
    a = ap.parse_args()
    status = common.not_built(a.mxray)
    if status:
        return status
    files = []
    for tf in common.truth_files(a.truth):
        with open(tf, encoding="utf-8") as f:
            if "journeys" in json.load(f):
                files.append(tf)
    if not files:
        print("SKIP: no truth file with journeys")
        return common.SKIP
    passed = failed = 0
    for tf in files:
        rel = os.path.relpath(tf, common.REPO)
        errs, n = check(a.mxray, tf)
        if errs:
            failed += 1
            print("FAIL %s" % rel)
            for e in errs:
                print("  " + e)
        else:
            passed += 1
            print("ok   %s (%d journeys)" % (rel, n))
    return common.summary(passed, failed)


if __name__ == "__main__":
    sys.exit(main())
