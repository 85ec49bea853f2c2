#!/usr/bin/env python3
"""turns - talking out of turn and the data terminator (issue 26), on crafted
captures (tests/pcapgen.py) of what the lab's servers do not send.

usage: tests/turns.py MXRAY

The end-of-data terminator (RFC 5321 §4.1.1.4): for each of <CRLF>.<CRLF>,
<LF>.<LF>, <CRLF>.<LF> and <LF>.<CRLF> (the last three: what lenient servers
also take, the SMTP smuggling vectors), the smtp.data record names the one
seen ("terminator"), the text timeline prints it, and
DATA_BARE_LF_TERMINATOR is raised for all but the first; the message ends
with the last line's own end, LF or CRLF.

The turns (RFC 5321 §3.1, §3.8; RFC 1939 §3, §4; RFC 9051 §7.1, §7.1.5):
  - a client that speaks in the middle of a multi-line greeting ("220-",
    then its commands, then "220 ") spoke first: the greeting stays one
    reply to the connection, each later reply answers its own command;
  - the same client bytes (a whole transaction) sent before the greeting
    and after it give the same SMTP records of each type, in order, but for
    frames, times and the flow's ends and Community ID;
  - a client whose server is never heard (a one-sided capture) did not
    speak first as far as anyone can tell: no CLIENT_SPOKE_FIRST, and its
    message is still read;
  - POP3's -ERR and IMAP's BYE that answer no command end the session: the
    session record's "server_closed" and the timeline say so, with no
    UNMATCHED_RESPONSE; a BYE that answers LOGOUT does not.
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcapgen  # noqa: E402

BODY = "From: a@x.test\r\nSubject: t\r\n\r\nline one\r\nline two"
TERMS = [("crlf_dot_crlf", "\r\n.\r\n", "<CRLF>.<CRLF>"), ("lf_dot_lf", "\n.\n", "<LF>.<LF>"),
         ("crlf_dot_lf", "\r\n.\n", "<CRLF>.<LF>"), ("lf_dot_crlf", "\n.\r\n", "<LF>.<CRLF>")]


EARLY = ("EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@mx.test>\r\nDATA\r\n" + BODY +
         "\r\n.\r\nQUIT\r\n")
EARLY_REPLIES = ("220 mx.test ESMTP\r\n250-mx.test\r\n250 PIPELINING\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
                 "354 go ahead\r\n250 2.0.0 Ok: queued as ABC\r\n221 2.0.0 Bye\r\n")
# what may differ between two readings of the same bytes: where and when they came
VARYING = {"flow", "community_id", "client", "client_port", "server", "server_port", "ts", "frames", "frame",
           "latency", "first_byte_ms", "complete_ms", "start", "duration", "end",
           "capabilities_frames", "capabilities_before_login_frames", "secret_frame"}


def smtp_session(term):
    return {"port": 25, "turns": [
        ["s", "220 mx.test ESMTP\r\n"], ["c", "EHLO c.test\r\n"], ["s", "250 mx.test\r\n"],
        ["c", "MAIL FROM:<a@x.test>\r\n"], ["s", "250 2.1.0 Ok\r\n"],
        ["c", "RCPT TO:<b@mx.test>\r\n"], ["s", "250 2.1.5 Ok\r\n"],
        ["c", "DATA\r\n"], ["s", "354 go ahead\r\n"],
        ["c", BODY + term], ["s", "250 2.0.0 Ok: queued as ABC\r\n"],
        ["c", "QUIT\r\n"], ["s", "221 2.0.0 Bye\r\n"]]}


SESSIONS = [smtp_session(t[1]) for t in TERMS] + [
    # 4: a client that speaks in the middle of the multi-line greeting
    {"port": 25, "turns": [
        ["s", "220-mx.test ESMTP wait for it\r\n"],
        ["c", "EHLO c.test\r\nQUIT\r\n"],
        ["s", "220 mx.test ESMTP\r\n"], ["s", "250 mx.test\r\n"], ["s", "221 2.0.0 Bye\r\n"]]},
    # 5: the server is never heard
    {"port": 25, "turns": [
        ["c", "EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@mx.test>\r\nDATA\r\n" + BODY +
         "\r\n.\r\nQUIT\r\n"]]},
    # 6: POP3's autologout: an -ERR no command waits for (RFC 1939 §3)
    {"port": 110, "turns": [
        ["s", "+OK Dovecot ready.\r\n"], ["c", "CAPA\r\n"], ["s", "+OK\r\nUSER\r\n.\r\n"],
        ["s", "-ERR Disconnected for inactivity.\r\n"]]},
    # 7: IMAP's autologout: a BYE outside LOGOUT (RFC 9051 §7.1.5)
    {"port": 143, "turns": [
        ["s", "* OK [CAPABILITY IMAP4rev1] Dovecot ready.\r\n"], ["c", "c1 NOOP\r\n"],
        ["s", "c1 OK NOOP completed.\r\n"], ["s", "* BYE Disconnected for inactivity.\r\n"]]},
    # 8: a BYE that answers LOGOUT is no close by the server
    {"port": 143, "turns": [
        ["s", "* OK Dovecot ready.\r\n"], ["c", "c1 LOGOUT\r\n"],
        ["s", "* BYE Logging out\r\nc1 OK Logout completed.\r\n"]]},
    # 9 and 10: the same client bytes before the greeting, then after it
    {"port": 25, "turns": [["c", EARLY], ["s", EARLY_REPLIES]]},
    {"port": 25, "turns": [["s", "220 mx.test ESMTP\r\n"], ["c", EARLY], ["s", EARLY_REPLIES[19:]]]},
]


def main():
    mx = sys.argv[1]
    problems = []
    with tempfile.TemporaryDirectory() as d:
        pcap = os.path.join(d, "turns.pcap")
        pcapgen.sessions_to_pcap(SESSIONS, pcap)
        out = subprocess.run([mx, "-q", "--json", "-", pcap], capture_output=True, check=True)
        text = subprocess.run([mx, "-q", pcap], capture_output=True, check=True).stdout.decode()
    recs = [json.loads(x) for x in out.stdout.splitlines()]
    by = {}
    for r in recs:
        if "flow" in r:
            by.setdefault(r["flow"], []).append(r)

    def of(flow, typ):
        return [r for r in by.get(flow, []) if r["type"] == typ]

    def anomalies(flow):
        return [r["name"] for r in of(flow, "anomaly")]

    sizes = set()
    for i, (name, _, shown) in enumerate(TERMS, 1):
        data = of(i, "smtp.data")
        if len(data) != 1 or data[0].get("terminator") != name:
            problems.append(f"flow {i}: smtp.data terminator {[x.get('terminator') for x in data]}, want {name}")
            continue
        sizes.add(data[0]["message"]["size"])
        want = "message data: %d bytes, then %s" % (data[0]["message"]["size"], shown)
        lines = [ln for ln in text.splitlines() if ("#%d " % i) in ln and "message data:" in ln]
        if len(lines) != 1 or not lines[0].rstrip().endswith(want):
            problems.append(f"flow {i}: timeline {lines}, want ...{want}")
        bad = "DATA_BARE_LF_TERMINATOR" in anomalies(i)
        if bad != (name != "crlf_dot_crlf"):
            problems.append(f"flow {i}: DATA_BARE_LF_TERMINATOR {bad} for {name}")
        if [t["disposition"] for t in of(i, "smtp.transaction")] != ["accepted"]:
            problems.append(f"flow {i}: transactions {of(i, 'smtp.transaction')}")
    if sizes != {len(BODY) + 1, len(BODY) + 2}:  # the last line's end is the message's: LF or CRLF
        problems.append(f"message sizes {sizes}, want {len(BODY) + 1} and {len(BODY) + 2}")

    replies = [(r["code"], (r.get("answers") or {}).get("command")) for r in of(5, "smtp.reply")]
    if replies != [(220, "(connect)"), (250, "EHLO"), (221, "QUIT")]:
        problems.append(f"flow 5: replies {replies}")
    if anomalies(5) != ["CLIENT_SPOKE_FIRST"]:
        problems.append(f"flow 5: anomalies {anomalies(5)}, want CLIENT_SPOKE_FIRST only")
    sess = of(5, "smtp.session")
    if not sess or sess[0].get("greeting", {}).get("text") != "mx.test ESMTP wait for it\nmx.test ESMTP":
        problems.append(f"flow 5: greeting {sess and sess[0].get('greeting')}")

    if "CLIENT_SPOKE_FIRST" in anomalies(6):
        problems.append("flow 6: CLIENT_SPOKE_FIRST though the server was never heard")
    if [t["mailfrom"] for t in of(6, "smtp.transaction")] != ["a@x.test"] or len(of(6, "smtp.data")) != 1:
        problems.append(f"flow 6: transactions {of(6, 'smtp.transaction')}")

    for flow, typ, status in ((7, "pop3.session", "-ERR"), (8, "imap.session", "BYE")):
        sess = of(flow, typ)
        closed = sess[0].get("server_closed") if sess else None
        if not closed or closed["status"] != status or closed["text"] != "Disconnected for inactivity.":
            problems.append(f"flow {flow}: server_closed {closed}")
        if any(n.startswith("UNMATCHED") for n in anomalies(flow)):
            problems.append(f"flow {flow}: anomalies {anomalies(flow)}")
        want = "closed by the server: %s Disconnected for inactivity." % status
        if not any(("#%d " % flow) in ln and ln.rstrip().endswith(want) for ln in text.splitlines()):
            problems.append(f"flow {flow}: no session line ending '{want}' in the timeline")
        if not any(("#%d " % flow) in ln and "[the server closes the session]" in ln for ln in text.splitlines()):
            problems.append(f"flow {flow}: the closing reply is not marked in the timeline")
    sess = of(9, "imap.session")
    if not sess or "server_closed" in sess[0]:
        problems.append(f"flow 9: a BYE to LOGOUT read as the server's close: {sess}")

    def same_view(flow):
        def strip(x):
            if isinstance(x, dict):
                return {k: strip(v) for k, v in x.items() if k not in VARYING}
            if isinstance(x, list):
                return [strip(v) for v in x]
            return x
        recs = [strip(r) for r in by.get(flow, []) if r["type"].startswith("smtp.")]
        return sorted(recs, key=lambda r: r["type"])  # each type in its order; the types interleave by time

    if anomalies(10) != ["CLIENT_SPOKE_FIRST"] or anomalies(11):
        problems.append(f"flows 10, 11: anomalies {anomalies(10)}, {anomalies(11)}")
    early, late = same_view(10), same_view(11)
    if early != late or not early:
        diff = [(a, b) for a, b in zip(early, late) if a != b][:2]
        problems.append(f"the same client bytes read differently before and after the greeting: {diff}"
                        f" ({len(early)} and {len(late)} records)")

    for p in problems:
        print("FAIL", p)
    print("turns: %d problems" % len(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
