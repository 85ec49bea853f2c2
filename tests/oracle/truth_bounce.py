#!/usr/bin/env python3
"""truth_bounce - checks mxray's reading of real bounces against the capture lab's ground truth.

usage: tests/oracle/truth_bounce.py [--mxray PATH] [TRUTH.json...]

For every truth file with a "bounce" (scripts/lab/scenarios/scen_bounce.py:
what postfix's log says of the message it bounced), on the message records
that carry a delivery_status (RFC 3464):

  - every recipient postfix bounced is in a report, with Action failed, the
    Status postfix logged (dsn=), the reply code of the server that refused
    it when postfix's log quotes one ("said: 550 ..."), and a diagnosis
    (enhanced_meaning and cause; meaning with a reply code); no other
    recipient is reported failed, and the delivered ones are in no report;
  - each report names postfix's host as Reporting-MTA, the original
    message's queue id (X-Postfix-Queue-ID) and its Message-ID (from the
    returned message);
  - the reports are seen where they travelled: delivered over LMTP
    (lmtp.data), and retrieved over the scenario's protocol (imap.fetch,
    pop3.retr), each report the same on every way it was seen;
  - the data that links a bounce to its original is there: an
    smtp.transaction whose queue_id and message.message_id are the reports'
    queue_id and original_message_id, with every bounced recipient accepted;
  - each bounced recipient is one `failure` record of kind bounced (told
    once, however many ways the report travelled), diagnosed, whose
    `original` is that transaction (its flow and queue id).

Exit status: 0 all passed, 1 failures (or mxray is not built).
"""
import json
import os
import re
import subprocess
import sys

if __package__ in (None, ""):   # run as a file: tests/ holds the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from oracle import common  # noqa: E402

RETRIEVED = {"bounce/imap": "imap.fetch", "bounce/pop3": "pop3.retr"}


def check(t, records):
    """The problems found in mxray's records of one bounce capture."""
    b = t["bounce"]
    problems = []
    reports = [r for r in records if r["type"] == "message" and "delivery_status" in r]
    txns = [r for r in records if r["type"] == "smtp.transaction"]
    by_source = {}
    for r in reports:
        by_source.setdefault(r["carried_by"], []).append(r["delivery_status"])
    want_sources = ["lmtp.data", RETRIEVED.get(t["scenario"], "?")]
    for src in want_sources:
        if len(by_source.get(src, [])) != len(b["bounce_queue_ids"]):
            problems.append("%d reports seen as %s, %d bounces in postfix's log"
                            % (len(by_source.get(src, [])), src, len(b["bounce_queue_ids"])))
    # every way a report was seen shows the same report
    if len(set(json.dumps(d, sort_keys=True) for d in by_source.get(want_sources[0], []))) != \
            len(set(json.dumps(d, sort_keys=True) for src in want_sources for d in by_source.get(src, []))):
        problems.append("a report reads differently over LMTP and over %s" % want_sources[1])
    failed = {}
    for src in want_sources:
        for d in by_source.get(src, []):
            if d.get("reporting_mta") != b["reporting_mta"] or d.get("reporting_mta_type") != "dns":
                problems.append("%s: Reporting-MTA %r" % (src, d.get("reporting_mta")))
            if d.get("queue_id") != b["original_queue_id"]:
                problems.append("%s: queue_id %r, postfix logged %s" % (src, d.get("queue_id"), b["original_queue_id"]))
            if d.get("original_message_id") != b["original_message_id"] or d.get("returned") != "message/rfc822":
                problems.append("%s: original_message_id %r from %r" % (src, d.get("original_message_id"),
                                                                       d.get("returned")))
            if d.get("failed") != len(d["recipients"]) or d.get("delayed") != 0:
                problems.append("%s: failed %r, delayed %r of %d recipients"
                                % (src, d.get("failed"), d.get("delayed"), len(d["recipients"])))
            for r in d["recipients"]:
                failed.setdefault(r["final_recipient"], []).append((src, r))
    delivered = set(b["delivered"])
    for addr in sorted(set(failed) & delivered):
        problems.append("%s was delivered, yet a report says it failed" % addr)
    want = {r["addr"]: r for r in b["recipients"]}
    for addr in sorted(set(failed) - set(want)):
        problems.append("%s is in a report, postfix did not bounce it" % addr)
    for addr, w in sorted(want.items()):
        seen = failed.get(addr, [])
        if sorted(src for src, _ in seen) != sorted(want_sources):
            problems.append("%s: reported in %s, expected once in each of %s"
                            % (addr, [src for src, _ in seen], want_sources))
        m = re.search(r" said: (\d{3}) ", w["log_text"])
        for src, r in seen:
            where = "%s in %s" % (addr, src)
            if r.get("final_recipient_type") != "rfc822" or r.get("original_recipient") != addr:
                problems.append("%s: Final-Recipient type %r, Original-Recipient %r"
                                % (where, r.get("final_recipient_type"), r.get("original_recipient")))
            if r.get("action") != "failed" or r.get("status") != w["dsn"]:
                problems.append("%s: Action %r Status %r, postfix logged dsn=%s"
                                % (where, r.get("action"), r.get("status"), w["dsn"]))
            if m and r.get("reply_code") != int(m.group(1)):
                problems.append("%s: reply_code %r, the server said %s" % (where, r.get("reply_code"), m.group(1)))
            if m and (r.get("diagnostic_type") != "smtp" or not r.get("meaning")):
                problems.append("%s: diagnostic type %r, meaning %r" % (where, r.get("diagnostic_type"),
                                                                        r.get("meaning")))
            if m and r.get("remote_mta") != "127.0.0.1":
                problems.append("%s: Remote-MTA %r" % (where, r.get("remote_mta")))
            if not r.get("enhanced_meaning") or not r.get("cause"):
                problems.append("%s: not diagnosed (enhanced_meaning %r, cause %r)"
                                % (where, r.get("enhanced_meaning"), r.get("cause")))
    # the original submission, to link the bounces to
    orig = [x for x in txns if x.get("queue_id") == b["original_queue_id"]]
    if len(orig) != 1:
        problems.append("%d smtp.transaction records with queue_id %s" % (len(orig), b["original_queue_id"]))
    for x in orig:
        if (x.get("message") or {}).get("message_id") != b["original_message_id"]:
            problems.append("the original transaction's message_id is %r" % (x.get("message") or {}).get("message_id"))
        ok = {r["addr"] for r in x["recipients"] if r["outcome"] == "accepted"}
        if not set(want) <= ok:
            problems.append("recipients bounced later but not accepted in the session: %s" % sorted(set(want) - ok))
    # the failure model: one `bounced` failure per bounced recipient (a report delivered, then
    # fetched, is told once), diagnosed, and linked to the original transaction
    fails = [x for x in records if x.get("type") == "failure" and x.get("kind") == "bounced"]
    got = sorted(x.get("recipient") for x in fails)
    if got != sorted(want):
        problems.append("bounced failures for %s, postfix bounced %s" % (got, sorted(want)))
    for x in fails:
        o = x.get("original") or {}
        if not orig or o.get("flow") != orig[0]["flow"] or o.get("queue_id") != b["original_queue_id"]:
            problems.append("bounced failure of %s linked to %r, the original is flow %s queued as %s"
                            % (x.get("recipient"), o, orig[0]["flow"] if orig else None, b["original_queue_id"]))
        r = next((r for r in b["recipients"] if r["addr"] == x.get("recipient")), {})
        if (x.get("reply") or {}).get("enhanced") != r.get("dsn") or not x.get("cause") or not x.get("cause_kind"):
            problems.append("bounced failure of %s: reply %r, cause %r" % (x.get("recipient"), x.get("reply"),
                                                                          x.get("cause")))
    return problems


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
        if not t.get("bounce"):
            continue
        rel = os.path.relpath(tf, common.REPO)
        pcap = os.path.join(os.path.dirname(tf), t["capture"])
        try:
            problems = check(t, common.mxray_records(a.mxray, "-q", "--json", "-", pcap))
        except (RuntimeError, ValueError, subprocess.CalledProcessError) as e:
            problems = ["mxray failed: %s" % e]
        if common.report(rel, problems):
            passed += 1
        else:
            failed += 1
    if not passed + failed:
        print("error: no truth file with a bounce (scripts/lab/run-all.sh bounce/imap bounce/pop3)")
        return 1
    return common.summary(passed, failed)


if __name__ == "__main__":
    sys.exit(main())
