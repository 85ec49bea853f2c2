#!/usr/bin/env python3
"""journey_rules - the linking rule of journeys (docs/manual.md, Journeys), on a
made-up capture.

usage: tests/journey_rules.py MXRAY

Sessions (tests/pcapgen.py), in this order:
  1. SMTP 25: message A with no Message-ID;
  2. LMTP 24: A again, with a Received field and a Message-ID added on the way
     (as postfix's cleanup adds one): joins 1 by its body, and the journey
     takes the Message-ID;
  3. POP3 110: RETR of A with a Return-Path and another Received: joins by
     the Message-ID;
  4. SMTP 25: message B, Message-ID <b.1@example.test>, body X;
  5. SMTP 25: message C, Message-ID <c.1@example.test>, the same body X: not
     merged with B (seen once: no journey);
  6. SMTP 587: message D with no Message-ID and the same body X: joins no
     journey that has a Message-ID (seen once: no journey);
  7. LMTP 24: B again, with a Received field: B's second hop;
  8. POP3 110: B with its body changed on the way (a footer): B's third hop,
     body_changed.
Checks: exactly the journeys of A and B, their hops, how each was linked,
the message records' body_sha256 (the digest of the bytes after the header
block), the roles, and the text timeline's block.
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcapgen  # noqa: E402

BODY_A = "First line of A.\r\n\r\nLast line of A.\r\n"
BODY_X = "The same text in three messages.\r\n"
FOOTER = "-- \r\nsent through a list\r\n"


def msg(headers, body):
    return "".join(h + "\r\n" for h in headers) + "\r\n" + body


def smtp(port, data, qid):
    dotted = data.replace("\r\n.", "\r\n..")
    return {"port": port, "turns": [
        ("s", "220 mx.example.test ESMTP\r\n"), ("c", "EHLO client.example.test\r\n"),
        ("s", "250-mx.example.test\r\n250 8BITMIME\r\n"), ("c", "MAIL FROM:<a@example.test>\r\n"),
        ("s", "250 2.1.0 Ok\r\n"), ("c", "RCPT TO:<b@example.test>\r\n"), ("s", "250 2.1.5 Ok\r\n"),
        ("c", "DATA\r\n"), ("s", "354 End data with <CR><LF>.<CR><LF>\r\n"), ("c", dotted + ".\r\n"),
        ("s", "250 2.0.0 Ok: queued as %s\r\n" % qid), ("c", "QUIT\r\n"), ("s", "221 2.0.0 Bye\r\n")]}


def lmtp(data):
    return {"port": 24, "turns": [
        ("s", "220 mx.example.test LMTP\r\n"), ("c", "LHLO mx.example.test\r\n"),
        ("s", "250-mx.example.test\r\n250 8BITMIME\r\n"), ("c", "MAIL FROM:<a@example.test>\r\n"),
        ("s", "250 2.1.0 OK\r\n"), ("c", "RCPT TO:<b@example.test>\r\n"), ("s", "250 2.1.5 OK\r\n"),
        ("c", "DATA\r\n"), ("s", "354 OK\r\n"), ("c", data + ".\r\n"),
        ("s", "250 2.0.0 <b@example.test> Lm7pZ Saved\r\n"), ("c", "QUIT\r\n"), ("s", "221 2.0.0 Bye\r\n")]}


def pop3(data):
    return {"port": 110, "turns": [
        ("s", "+OK ready\r\n"), ("c", "USER b\r\n"), ("s", "+OK\r\n"), ("c", "PASS pw\r\n"),
        ("s", "+OK Logged in.\r\n"), ("c", "RETR 1\r\n"), ("s", "+OK %d octets\r\n%s.\r\n" % (len(data), data)),
        ("c", "QUIT\r\n"), ("s", "+OK Bye\r\n")]}


RCVD_1 = "Received: from client.example.test (unknown [10.0.0.1])\r\n\tby mx.example.test (Postfix) with ESMTP id 4AQ1\r\n\tfor <b@example.test>; Tue, 14 Nov 2023 22:13:20 +0000 (UTC)"
RCVD_2 = "Received: from mx.example.test\r\n\tby mx.example.test with LMTP id Lm7pZ\r\n\t; Tue, 14 Nov 2023 22:13:21 +0000"
BASE = ["From: <a@example.test>", "To: <b@example.test>", "Subject: rules", "Date: Tue, 14 Nov 2023 22:13:20 +0000"]


def main():
    mx = sys.argv[1]
    a1 = msg(BASE, BODY_A)
    a2 = msg([RCVD_1, "Message-Id: <added.1@mx.example.test>"] + BASE, BODY_A)
    a3 = msg(["Return-Path: <a@example.test>", RCVD_2, RCVD_1, "Message-Id: <added.1@mx.example.test>"] + BASE,
             BODY_A)
    b = msg(BASE + ["Message-ID: <b.1@example.test>"], BODY_X)
    c = msg(BASE + ["Message-ID: <c.1@example.test>"], BODY_X)
    d = msg(BASE, BODY_X)
    b2 = msg([RCVD_1.replace("4AQ1", "4BQ2")] + BASE + ["Message-ID: <b.1@example.test>"], BODY_X)
    b3 = msg([RCVD_2, RCVD_1.replace("4AQ1", "4BQ2")] + BASE + ["Message-ID: <b.1@example.test>"], BODY_X + FOOTER)
    sessions = [smtp(25, a1, "4AQ1"), lmtp(a2), pop3(a3), smtp(25, b, "4BQ2"), smtp(25, c, "4CQ3"),
                smtp(587, d, "4DQ4"), lmtp(b2), pop3(b3)]
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        pcap = os.path.join(tmp, "rules.pcap")
        pcapgen.sessions_to_pcap(sessions, pcap)
        out = subprocess.run([mx, "-q", "--json", "-", pcap], capture_output=True, check=True).stdout
        text = subprocess.run([mx, "-q", pcap], capture_output=True, check=True).stdout.decode()
    recs = [json.loads(x) for x in out.splitlines()]
    # the body digest of every message record: the bytes after the header block
    msgs = [r for r in recs if r["type"] == "message"]
    bodies = [BODY_A, BODY_A, BODY_A, BODY_X, BODY_X, BODY_X, BODY_X, BODY_X + FOOTER]
    if len(msgs) != len(bodies):
        problems.append("%d message records, want %d" % (len(msgs), len(bodies)))
    for i, (r, want) in enumerate(zip(msgs, bodies)):
        if r.get("body_sha256") != hashlib.sha256(want.encode()).hexdigest():
            problems.append("message %d (flow %d): body_sha256 %s is not the body's" % (i + 1, r["flow"],
                                                                                       r.get("body_sha256")))
    js = [r for r in recs if r["type"] == "journey"]
    got = {j.get("message_id"): j for j in js}
    if sorted(got) != ["<added.1@mx.example.test>", "<b.1@example.test>"]:
        problems.append("journeys %s, want A's (<added.1@mx.example.test>) and B's" % sorted(got))
    want = {"<added.1@mx.example.test>": [(1, "relay", None, False), (2, "delivery", "body_sha256", False),
                                          (3, "retrieval", "message_id", False)],
            "<b.1@example.test>": [(4, "relay", None, False), (7, "delivery", "message_id", False),
                                   (8, "retrieval", "message_id", True)]}
    for mid, hops in want.items():
        j = got.get(mid)
        if not j:
            continue
        have = [(h["flow"], h["role"], h.get("linked_by"), h.get("body_changed", False)) for h in j["hops"]]
        if have != hops:
            problems.append("%s: hops %s, want %s" % (mid, have, hops))
        if j["outcome"] != "delivered":
            problems.append("%s: outcome %s" % (mid, j["outcome"]))
    b_first = got.get("<b.1@example.test>", {}).get("hops", [{}])[0]
    if b_first.get("queue_id") != "4BQ2" or b_first.get("queue_id_confirmed") is not True:
        problems.append("B's first hop: queue id %s confirmed %s, want 4BQ2 confirmed by the next hop's Received"
                        % (b_first.get("queue_id"), b_first.get("queue_id_confirmed")))
    if "journey <b.1@example.test>" not in text or "journey <added.1@mx.example.test>" not in text:
        problems.append("the timeline lacks a journey block")
    for p in problems:
        print("FAIL " + p)
    print("journey_rules: %d problem%s" % (len(problems), "" if len(problems) == 1 else "s"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
