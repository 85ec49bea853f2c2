#!/usr/bin/env python3
"""truth_lmtp - checks mxray's LMTP records against the capture lab's ground truth.

usage: tests/oracle/truth_lmtp.py [--mxray PATH] [TRUTH.json...]

For every truth file with an "lmtp" list (scripts/lab/scenarios/scen_lmtp.py:
what each LMTP transaction was and what the server said for each recipient):

  - each LMTP session the lab's client recorded (proto "lmtp") and its mxray
    flow on port 24 show the same reply codes, each reply counted once (the
    per-recipient replies after the data too, RFC 2033 §4.2), the same command
    verbs and the same messages (size, SHA-256), as truth_smtp checks SMTP's;
  - mxray's lmtp.transaction records, in order, match the truth's
    transactions: sender, the recipients in RCPT order with their RCPT code
    and enhanced code, and for each recipient accepted at RCPT its reply after
    the data (RFC 2033 §4.2: code, enhanced code, outcome) and, for one
    refused there, none; the message's SHA-256 and BDAT chunks when the truth
    has them; and the disposition that follows from the deliveries (all
    delivered: accepted; none: rejected or deferred; some: mixed);
  - --failures lists exactly the recipients refused, at RCPT or after the data.

Exit status: 0 all passed, 1 failures (or mxray is not built).
"""
import json
import os
import subprocess
import sys

if __package__ in (None, ""):   # run as a file: tests/ holds the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from oracle import common  # noqa: E402
from oracle import truth_smtp  # noqa: E402

LMTP_PORT = 24


def run_mxray(mxray, pcap):
    """mxray's LMTP flows (the shape truth_smtp.check_session reads) and its
    lmtp.transaction records, in order."""
    flows, txns = {}, []
    for r in common.mxray_records(mxray, "-q", "--hashes", "all", "--json", "-", pcap):
        t = r["type"]
        if t == "flow_start":
            flows[r["flow"]] = {"port": r["server_port"], "proto": r["proto"], "codes": [], "verbs": [],
                                "msgs": [], "injected": [], "anomalies": {}}
        elif t == "anomaly" and r.get("flow") in flows:
            flows[r["flow"]]["anomalies"].setdefault(r["name"], r.get("frames"))
        elif t == "lmtp.reply":
            flows[r["flow"]]["codes"].append(r["code"])
        elif t == "lmtp.command":
            flows[r["flow"]]["verbs"].append(r["verb"].upper())
        elif t == "lmtp.data" and "message" in r:
            flows[r["flow"]]["msgs"].append(r["message"])
        elif t == "lmtp.transaction":
            txns.append(r)
            if r.get("message") and r.get("bdat_chunks"):
                flows[r["flow"]]["msgs"].append(r["message"])
    return [flows[k] for k in sorted(flows) if flows[k]["proto"] == "lmtp"], txns


def disposition(truth_txn):
    """What the deliveries make of the transaction (RFC 2033 §4.2)."""
    outs = [r["delivery"]["outcome"] for r in truth_txn["recipients"] if r["delivery"]]
    if outs and all(o == "accepted" for o in outs):
        return "accepted"
    if "accepted" in outs:
        return "mixed"
    return "deferred" if "deferred" in outs else "rejected"


def check_txn(i, want, have):
    problems = []
    p = "transaction %d: " % i
    if have.get("mailfrom") != want["mailfrom"]:
        problems.append(p + "sender %r, truth %r" % (have.get("mailfrom"), want["mailfrom"]))
    hr = have.get("recipients", [])
    if [r["addr"] for r in hr] != [r["addr"] for r in want["recipients"]]:
        problems.append(p + "recipients %s, truth %s" % ([r["addr"] for r in hr],
                                                         [r["addr"] for r in want["recipients"]]))
        return problems
    for w, h in zip(want["recipients"], hr):
        if (h.get("code"), h.get("enhanced")) != (w["rcpt_code"], w["rcpt_enhanced"]):
            problems.append(p + "%s at RCPT: %s %s, truth %s %s" % (w["addr"], h.get("code"), h.get("enhanced"),
                                                                   w["rcpt_code"], w["rcpt_enhanced"]))
        d = h.get("delivery")
        if w["delivery"] is None:
            if d is not None:
                problems.append(p + "%s: a delivery %s for a recipient refused at RCPT" % (w["addr"], d))
            continue
        got = d and (d.get("code"), d.get("enhanced"), d.get("outcome"))
        exp = (w["delivery"]["code"], w["delivery"]["enhanced"], w["delivery"]["outcome"])
        if got != exp:
            problems.append(p + "%s after the data: %s, truth %s" % (w["addr"], got, exp))
        if d and d.get("outcome") != "accepted" and not d.get("cause"):
            problems.append(p + "%s: refused after the data without a cause" % w["addr"])
    if want.get("message_sha256") and (have.get("message") or {}).get("sha256") != want["message_sha256"]:
        problems.append(p + "message sha256 %s, truth %s" % ((have.get("message") or {}).get("sha256"),
                                                             want["message_sha256"]))
    if want.get("bdat_chunks") and have.get("bdat_chunks") != want["bdat_chunks"]:
        problems.append(p + "%s BDAT chunks, truth %s" % (have.get("bdat_chunks"), want["bdat_chunks"]))
    if have.get("disposition") != disposition(want):
        problems.append(p + "disposition %s, truth's deliveries make it %s" % (have.get("disposition"),
                                                                               disposition(want)))
    return problems


def failed_recipients(mxray, pcap):
    """The recipients --failures names, in order."""
    out = subprocess.run([mxray, "-q", "--failures", pcap], capture_output=True, text=True, check=True).stdout
    return [ln.split("<", 1)[1].split(">", 1)[0] for ln in out.splitlines()
            if ln.startswith(("FAILED", "DEFERRED"))]


def main():
    ap = common.parser(__doc__)
    ap.add_argument("truth", nargs="*")
    a = ap.parse_args()
    status = common.not_built(a.mxray)
    if status:
        return status
    passed = failed = 0
    for tf in common.truth_files(a.truth):
        with open(tf, encoding="utf-8") as fh:
            t = json.load(fh)
        if not t.get("lmtp"):
            continue
        rel = os.path.relpath(tf, common.REPO)
        pcap = os.path.join(os.path.dirname(tf), t["capture"])
        problems = []
        try:
            flows, txns = run_mxray(a.mxray, pcap)
            fails = failed_recipients(a.mxray, pcap)
        except (RuntimeError, ValueError, subprocess.CalledProcessError) as e:
            flows, txns, fails, problems = [], [], [], ["mxray failed: %s" % e]
        sessions = [s for s in t["sessions"] if s["proto"] == "lmtp"]
        lmtp_flows = [f for f in flows if f["port"] == LMTP_PORT]
        if len(lmtp_flows) < len(sessions):
            problems.append("%d LMTP sessions in the truth, %d mxray flows" % (len(sessions), len(lmtp_flows)))
        for s, f in zip(sessions, lmtp_flows):
            problems += truth_smtp.check_session(s, f)
        if len(txns) != len(t["lmtp"]):
            problems.append("%d transactions in the truth, %d lmtp.transaction records" % (len(t["lmtp"]), len(txns)))
        for i, (w, h) in enumerate(zip(t["lmtp"], txns), 1):
            problems += check_txn(i, w, h)
        want_fails = [r["addr"] for w in t["lmtp"] for r in w["recipients"]
                      if r["rcpt_code"] >= 400 or (r["delivery"] and r["delivery"]["outcome"] != "accepted")]
        if sorted(fails) != sorted(want_fails):
            problems.append("--failures names %s, truth %s" % (fails, want_fails))
        if common.report(rel, problems):
            passed += 1
        else:
            failed += 1
    return common.summary(passed, failed)


if __name__ == "__main__":
    sys.exit(main())
