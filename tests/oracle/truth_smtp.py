#!/usr/bin/env python3
"""truth_smtp - checks mxray's SMTP records against the capture lab's ground truth.

usage: tests/oracle/truth_smtp.py [--mxray PATH] [TRUTH.json...]

For every SMTP session in pcaps/**/*.truth.json (the lab's record of what the
client sent and saw), the matching mxray flow (same order of first packet, same
server port) must show, in clear: the same sequence of reply codes, each reply
counted once however many lines it has; the same command verbs; and, for every
message the client sent in clear (DATA, dot-unstuffed, or BDAT chunks, as the
truth's transcript holds it), the same size and SHA-256. Replies inside TLS are not visible
to any dissector and are skipped, as the truth marks them.

STARTTLS injection (CVE-2011-0411), both directions:
  - server: an `S` entry marked "injected": true is cleartext the server wrote
    after its 220 to STARTTLS and before the handshake (the lab's client
    discarded it: `discarded_before_tls`).  It answers no command, and mxray
    rightly does not read it as a reply (docs/manual.md, SMTP: after 220 the
    session is TLS), so it is left out of the reply codes; instead the flow
    must carry a STARTTLS_SERVER_INJECTION anomaly.
  - client: lines the client wrote after its STARTTLS line and before the
    server's next entry (the lab marks no client entry: a `C` entry is one
    write, STARTTLS and the injected lines together) are commands the client
    really sent in clear, and mxray reports them as smtp.command records with
    "injected": true.  So they stay in the command verbs compared above, and
    in addition the verbs mxray marks injected must be exactly those lines'
    verbs, with a STARTTLS_CLIENT_INJECTION anomaly in the flow.
  A session whose truth has no injection must have neither anomaly nor any
  command marked injected.

Talking out of turn (issue 26):
  - a session the lab marks "spoke_first" (a client that sent its commands
    before reading the greeting) must carry CLIENT_SPOKE_FIRST, naming the
    frame of its first command; no other session may.  Its bytes are read as
    they would be after the greeting: a DATA whose reply is 354 is followed
    by message data even when the client sent both in one write.
  - no transaction may have an empty sender unless the client sent MAIL
    FROM:<> (the phantom second transaction an early talker used to make).
  - a session the lab marks "server_closed" (a 421, RFC 5321 §3.8) must end
    with mxray's session record "server_closed" of that code, and say whether
    it answered a command; no other session may have one.

Exit status: 0 all passed, 1 failures (or mxray is not built).
"""
import hashlib
import json
import os
import re
import sys

if __package__ in (None, ""):   # run as a file: tests/ holds the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from oracle import common  # noqa: E402

REPLY = re.compile(rb"^([2-5][0-9][0-9])([ -]|$)")


def reply_codes(chunks, opened=None):
    """The codes of the replies the server turns `chunks` complete, in order.
    RFC 5321 §4.2.1: every line of a reply has its code, so a line with
    another code ends a multi-line reply left open (postscreen's "220-"
    greeting, which an early talker never sees finished). `opened` carries
    the open reply's code from one call to the next."""
    opened = [] if opened is None else opened
    out = []
    for data in chunks:
        for line in data.split(b"\r\n"):
            m = REPLY.match(line)
            if not m:
                continue
            code = int(m.group(1))
            if opened and opened[0] != code:
                out.append(opened.pop())
            if m.group(2) == b"-":
                opened[:] = [code]
            else:
                opened.clear()
                out.append(code)
    return out


def truth_session(session):
    """Reply codes, command verbs and messages (bytes) of a session's
    cleartext part; the verbs of the commands injected after STARTTLS (before
    the server's next entry); the number of server entries marked injected."""
    codes, verbs, msgs, injected = [], [], [], []
    after_starttls = False      # the client's STARTTLS is out, its reply is not
    in_data = in_auth = False
    body = bytearray()
    bdat = bytearray()
    pending_bdat = 0
    bdat_last = False
    # server cleartext after the 220 to STARTTLS is no reply (see above)
    turns, server_injected = common.clear_turns(session)
    # Every reply, in order: an early talker's DATA and message come in one
    # write before the 354, which then decides what the bytes after DATA are.
    all_codes = reply_codes([data for d, data in turns if d == "S"])
    answered = 1  # the replies the client's lines so far will get: the greeting's first
    opened = []   # the code of a multi-line reply still open across server turns
    # SMTP smuggling (scen_attacks.py, issue 27): the client's one write after
    # 354 is read as mxray documents it reads it, whatever the server made of
    # it (smtp.smuggling says that): a bare-LF "." line ends the data, the
    # commands after it are commands, and the data after their DATA is data
    # without waiting for its 354 (which, when it comes, is not a new DATA's).
    smuggle = "smuggling" in session
    skip_354 = 0
    for direction, data in turns:
        if direction == "S":
            after_starttls = False
            for code in reply_codes([data], opened):
                codes.append(code)
                if code == 354 and skip_354:
                    skip_354 -= 1
                elif code == 354:
                    in_data = True
                in_auth = code == 334
            continue
        pos = 0
        while pos < len(data):
            if pending_bdat:
                take = min(pending_bdat, len(data) - pos)
                bdat += data[pos:pos + take]
                pos += take
                pending_bdat -= take
                if not pending_bdat and bdat_last:
                    msgs.append(bytes(bdat))
                    bdat.clear()
                continue
            end = data.find(b"\n", pos)
            end = len(data) if end < 0 else end + 1
            raw = data[pos:end]
            line = raw.rstrip(b"\r\n")
            pos = end
            if in_data:
                if line == b".":
                    in_data = False
                    answered += 1
                    msgs.append(bytes(body))
                    body.clear()
                else:
                    body += raw[1:] if raw.startswith(b".") else raw  # RFC 5321 4.5.2
                continue
            answered += 1
            if in_auth:
                in_auth = False
                continue
            verb = line.split(b" ", 1)[0].upper().decode("ascii", "replace")
            verbs.append(verb)
            if verb == "DATA" and smuggle and pos < len(data):
                in_data = True      # the smuggled DATA: its data follows in the same write
                skip_354 += 1
            elif verb == "DATA" and pos < len(data) and answered - 1 < len(all_codes):
                in_data = all_codes[answered - 1] == 354  # sent on before its reply
            if after_starttls:
                injected.append(verb)
            elif verb == "STARTTLS":
                after_starttls = True
            if verb == "BDAT":
                parts = line.split()
                try:
                    pending_bdat = int(parts[1])
                    bdat_last = len(parts) > 2 and parts[2].upper() == b"LAST"
                    if not pending_bdat and bdat_last:
                        msgs.append(bytes(bdat))
                        bdat.clear()
                except (IndexError, ValueError):
                    pass
    return codes, verbs, msgs, injected, server_injected


def check_injection(index, injected, server_injected, f):
    """The STARTTLS injection checks of the docstring, for one session."""
    return common.check_injection(index, injected, [v for v, _ in f["injected"]],
                                  "%s (verb, frames)" % (f["injected"],), server_injected,
                                  f["anomalies"], "STARTTLS", "server entry(ies)")


def check_turns(s, f):
    """The issue-26 checks of the docstring, for one session."""
    problems = common.check_turns(s, f)
    null_sent = any(t.get("text", "").upper().startswith("MAIL FROM:<>") for t in s["transcript"]
                    if t["dir"] == "C")
    if not null_sent and any(t["mailfrom"] == "" and not t["partial"] for t in f.get("transactions", [])):
        problems.append(f"session {s['index']}: a transaction with an empty sender the client never sent: "
                        f"{[t['mailfrom'] for t in f.get('transactions', [])]}")
    return problems


def check_session(s, f, prefix=False):
    """The problems of mxray's flow f (run_mxray's) against the truth's session s: the
    injection checks, reply codes, command verbs and messages sent in clear. With prefix,
    the truth's dialogue need only be the start of mxray's (a client's log that ends early)."""
    codes, verbs, msgs, injected, server_injected = truth_session(s)
    problems = check_injection(s["index"], injected, server_injected, f) + check_turns(s, f)
    have_codes, have_verbs = f["codes"], f["verbs"]
    if prefix:
        have_codes, have_verbs = have_codes[:len(codes)], have_verbs[:len(verbs)]
    if codes != have_codes:
        problems.append(f"session {s['index']}: reply codes differ:\n      truth {codes}\n      mxray {have_codes}")
    if verbs != have_verbs:
        problems.append(f"session {s['index']}: commands differ:\n      truth {verbs}\n      mxray {have_verbs}")
    seen = {(m["size"], m.get("sha256")) for m in f["msgs"] if not m.get("partial")}
    for m in msgs:
        want = (len(m), hashlib.sha256(m).hexdigest())
        if want not in seen:
            problems.append(f"session {s['index']}: message of {want[0]} bytes ({want[1][:12]}...) "
                            f"not among mxray's {sorted((x[0], (x[1] or '')[:12]) for x in seen)}")
    return problems


def run_mxray(mxray, pcap, *extra):
    """mxray's SMTP flows in order; extra: more options (truth_keylog's --tls-keylog)."""
    # 2525 is the lab's second, certificate-less postfix (the STARTTLS-refused scenario).
    flows = {}
    for r in common.mxray_records(mxray, "-q", "--hashes", "all", "--port", "smtp=2525", *extra, "--json", "-", pcap):
        if r.get("flow") in flows:
            common.note_turns(flows[r["flow"]], r)
        if r["type"] == "flow_start":
            flows[r["flow"]] = {"port": r["server_port"], "server": r["server"], "codes": [], "verbs": [], "msgs": [],
                                "injected": [], "anomalies": {}, "transactions": [], "server_closed": None,
                                "first_command_frame": None}
        elif r["type"] == "anomaly" and r.get("flow") in flows:
            flows[r["flow"]]["anomalies"].setdefault(r["name"], r.get("frames"))
        elif r["type"] == "smtp.reply":
            flows[r["flow"]]["codes"].append(r["code"])
        elif r["type"] == "smtp.command":
            flows[r["flow"]]["verbs"].append(r["verb"].upper())
            if r.get("injected"):
                flows[r["flow"]]["injected"].append((r["verb"].upper(), r.get("frames")))
        elif r["type"] == "smtp.data" and "message" in r:
            flows[r["flow"]]["msgs"].append(r["message"])
        elif r["type"] == "smtp.transaction":
            flows[r["flow"]]["transactions"].append(r)
            if r.get("message") and r.get("bdat_chunks"):
                flows[r["flow"]]["msgs"].append(r["message"])
    return [flows[k] for k in sorted(flows)]


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
        # sessions through a SOCKS or HTTP proxy: tests/oracle/truth_tunnel.py
        smtp = [common.backend_view(s) for s in t["sessions"] if s["proto"] == "smtp" and "tunnel" not in s]
        if not smtp:
            continue
        rel = os.path.relpath(tf, common.REPO)
        problems = []
        try:
            # not postfix's own relay to the journey's second instance (127.0.0.2:25,
            # labenv.RELAY2_ADDR): no truth session; truth_journey checks it
            flows = [f for f in run_mxray(a.mxray, os.path.join(os.path.dirname(tf), t["capture"]))
                     if f["port"] in (25, 587, 465, 2525) and (f["server"], f["port"]) != ("127.0.0.2", 25)]
        except (RuntimeError, ValueError) as e:
            flows, problems = [], ["mxray failed: %s" % e]
        smtp_flows = [f for f in flows if f["port"] in (25, 587, 2525)]
        clear = [s for s in smtp if s.get("server_port") != 465]  # 465 starts in TLS
        if len(smtp_flows) < len(clear):
            problems.append(f"{len(clear)} cleartext sessions in the truth, {len(smtp_flows)} mxray flows")
        for s, f in zip(clear, smtp_flows):
            problems += check_session(s, f)
        if common.report(rel, problems):
            passed += 1
        else:
            failed += 1
    return common.summary(passed, failed)


if __name__ == "__main__":
    sys.exit(main())
