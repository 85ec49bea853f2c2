#!/usr/bin/env python3
"""truth_pop3 - checks mxray's POP3 records against the capture lab's ground truth.

usage: tests/oracle/truth_pop3.py [-v] [--mxray PATH] [TRUTH.json...]

For every POP3 session in pcaps/**/*.truth.json (the lab's record of what
each side wrote, with a tls flag per turn), the matching mxray flow (same
server port, same order of first packet among the flows on that port) must
show, in clear:
  - the same command verbs, in order: every client line of the transcript's
    cleartext turns, upper-cased first word, except the SASL lines that
    follow a "+ " continuation (those are pop3.auth_data in mxray);
  - the same sequence of response statuses, one per response however many
    lines it has: the greeting, then "+OK", "-ERR" or "+" (a SASL
    continuation, RFC 5034 §4) for every status line the server wrote in
    clear.  A +OK to CAPA, to LIST/UIDL/AUTH/LANG without argument, to RETR or
    to TOP is multi-line (RFC 1939 §3, RFC 2449 §5): its lines up to "." are
    data, not statuses;
  - for every RETR/TOP message the server sent in clear: its data lines
    dot-unstuffed (RFC 1939 §3: a leading "." removed), each with its line
    end, the final "." line left out, have the same size and SHA-256 as the
    `message` field of mxray's pop3.response (complete, not partial), and a
    `message` record (source pop3.retr or pop3.top) with that size and
    SHA-256 exists in the flow.
Turns with tls true (after STLS, or a whole session on 995) are not visible
to any dissector and are skipped: a session on 995 (implicit TLS) must give a
POP3 flow with no command or response at all.

STLS injection (RFC 2595 §4, the CVE-2011-0411 pattern), both directions:
  - server: an `S` turn marked "injected": true (cleartext the server wrote
    after its +OK to STLS, before the handshake; the lab's client discarded
    it) is no response to any command, and mxray rightly does not read it as
    one: it is left out of the statuses, and the flow must carry a
    STARTTLS_SERVER_INJECTION anomaly instead;
  - client: lines the client wrote after its STLS line and before the
    server's next turn (pop3/stls-injection: "STLS\r\nCAPA\r\n" in one
    write; the lab marks no client turn) are commands really sent in clear,
    which mxray reports as pop3.command records with "injected": true.  They
    stay in the verbs compared above; in addition the verbs mxray marks
    injected must be exactly those, with a STARTTLS_CLIENT_INJECTION anomaly.
  A session with no injection in its truth must have neither anomaly nor any
  command marked injected.

Talking out of turn (issue 26): common.check_turns (CLIENT_SPOKE_FIRST for a
client the lab marks "spoke_first", server_closed for a session it marks
"server_closed": dovecot's -ERR Disconnected for inactivity.).

One `FAIL <truth file>` block is printed per truth file that disagrees (every
session with -v), then `N passed, M failed` counted in truth files.  Exit
status: 0 all passed, 1 failures, 2 usage error, 77 skipped (no truth file
with a POP3 session).
"""
import collections
import hashlib
import os
import sys

if __package__ in (None, ""):   # run as a file: tests/ holds the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from oracle import common  # noqa: E402

CLEAR_PORT, TLS_PORT = 110, 995


def multiline(verb, args):
    """Whether a +OK to this command has data lines (RFC 1939, 2449, 5034, 6856)."""
    if verb in ("CAPA", "RETR", "TOP"):
        return True
    return verb in ("LIST", "UIDL", "AUTH", "LANG") and not args


def truth_session(session):
    """Command verbs, response statuses and RETR/TOP messages (bytes) of a
    session's cleartext part; the verbs injected after STLS (before the
    server's next turn); the number of server turns marked injected."""
    verbs, statuses, msgs, injected = [], [], [], []
    after_stls = False
    pending = collections.deque([("(connect)", "")])
    cbuf, sbuf = bytearray(), bytearray()
    sasl_next = False           # the client's next line answers a "+ "
    data_of = None              # the command whose data lines are coming
    body = bytearray()
    turns, server_injected = common.clear_turns(session)   # injected: no response
    for direction, data in turns:
        if direction == "C":
            cbuf += data
            while b"\n" in cbuf:
                end = cbuf.index(b"\n") + 1
                line = bytes(cbuf[:end]).rstrip(b"\r\n")
                del cbuf[:end]
                if sasl_next:
                    sasl_next = False
                    continue
                parts = line.split(None, 1)
                verb = parts[0].upper().decode("utf-8", "replace") if parts else ""
                verbs.append(verb)
                if after_stls:
                    injected.append(verb)
                elif verb == "STLS":
                    after_stls = True
                pending.append((verb, parts[1].strip() if len(parts) > 1 else b""))
            continue
        after_stls = False
        sbuf += data
        while b"\n" in sbuf:
            end = sbuf.index(b"\n") + 1
            raw = bytes(sbuf[:end])
            line = raw.rstrip(b"\r\n")
            del sbuf[:end]
            if data_of is not None:
                if line == b".":
                    if data_of in ("RETR", "TOP"):
                        msgs.append((data_of, bytes(body)))
                    data_of = None
                    body.clear()
                else:
                    body += raw[1:] if raw.startswith(b".") else raw
                continue
            if line.startswith(b"+OK"):
                status = "+OK"
            elif line.startswith(b"-ERR"):
                status = "-ERR"
            elif line == b"+" or line.startswith(b"+ "):
                status = "+"
            else:
                statuses.append("?" + line[:20].decode("utf-8", "replace"))
                continue
            statuses.append(status)
            if status == "+":
                sasl_next = True
                continue
            verb, args = pending.popleft() if pending else ("", b"")
            if status == "+OK" and multiline(verb, args):
                data_of = verb
    return verbs, statuses, msgs, injected, server_injected


def run_mxray(mxray, pcap, *extra):
    """mxray's flows in order; extra: more options (truth_keylog's --tls-keylog)."""
    flows = {}
    for r in common.mxray_records(mxray, "-q", "--hashes", "all", *extra, "--json", "-", pcap):
        t = r["type"]
        if t == "flow_start":
            flows[r["flow"]] = {"flow": r["flow"], "port": r["server_port"], "proto": r["proto"],
                                "verbs": [], "statuses": [], "resp_msgs": [], "msg_recs": [],
                                "records": 0, "injected": [], "anomalies": {}}
            continue
        fl = flows.get(r.get("flow"))
        if fl is None:
            continue
        common.note_turns(fl, r)
        if t == "anomaly":
            fl["anomalies"].setdefault(r.get("name"), r.get("frames"))
        if t == "pop3.command" and r.get("injected"):
            fl["injected"].append((str(r["verb"]).upper(), r.get("frames")))
        if t.startswith("pop3.") and t not in ("pop3.session", "pop3.auth"):
            fl["records"] += 1
        if t == "pop3.command":
            fl["verbs"].append(str(r["verb"]).upper())
        elif t == "pop3.response":
            fl["statuses"].append(r["status"])
            if "message" in r:
                fl["resp_msgs"].append(((r.get("answers") or {}).get("command"), r["message"],
                                        r.get("frames")))
        elif t == "message" and r.get("carried_by") in ("pop3.retr", "pop3.top"):
            fl["msg_recs"].append(r)
    return [flows[k] for k in sorted(flows)]


def check_injection(index, injected, server_injected, f):
    """The STLS injection checks of the docstring, for one session."""
    return common.check_injection(index, injected, [v for v, _ in f["injected"]],
                                  "%s (verb, frames)" % (f["injected"],), server_injected,
                                  f["anomalies"], "STLS")


def check_session(s, f):
    problems = []
    if f["proto"] != "pop3":
        return ["session %d: mxray flow %d is %s, not pop3" % (s["index"], f["flow"], f["proto"])]
    if s["server_port"] == TLS_PORT:
        if f["records"]:
            problems.append("session %d (implicit TLS on 995): mxray flow %d shows %d POP3"
                            " record(s) in clear" % (s["index"], f["flow"], f["records"]))
        return problems
    verbs, statuses, msgs, injected, server_injected = truth_session(s)
    problems += check_injection(s["index"], injected, server_injected, f)
    problems += common.check_turns(s, f)
    if verbs != f["verbs"]:
        problems.append("session %d: commands differ:\n      truth %s\n      mxray %s"
                        % (s["index"], verbs, f["verbs"]))
    if statuses != f["statuses"]:
        problems.append("session %d: response statuses differ:\n      truth %s\n      mxray %s"
                        % (s["index"], statuses, f["statuses"]))
    got = f["resp_msgs"]
    if len(got) != len(msgs):
        problems.append("session %d: %d RETR/TOP message(s) in clear in the truth, %d in"
                        " mxray's responses" % (s["index"], len(msgs), len(got)))
    recs = {(m.get("size"), m.get("sha256")) for m in f["msg_recs"] if not m.get("partial")}
    for n, (verb, body) in enumerate(msgs):
        want = (len(body), hashlib.sha256(body).hexdigest())
        if n < len(got):
            cmd, m, frames = got[n]
            have = (m.get("size"), m.get("sha256"))
            if cmd != verb or have != want or m.get("partial"):
                problems.append("session %d: %s message %d: truth %d bytes %s..., mxray's"
                                " response to %s (frames %s) %s bytes %s...%s"
                                % (s["index"], verb, n + 1, want[0], want[1][:12], cmd, frames,
                                   have[0], (have[1] or "")[:12],
                                   " partial" if m.get("partial") else ""))
        if want not in recs:
            problems.append("session %d: %s message %d (%d bytes, %s...) has no message"
                            " record; mxray's: %s" % (s["index"], verb, n + 1, want[0],
                                                     want[1][:12], sorted(
                                                         (x[0], (x[1] or "")[:12]) for x in recs)))
    return problems


if __name__ == "__main__":
    sys.exit(common.truth_main(__doc__, "pop3", (CLEAR_PORT, TLS_PORT), run_mxray, check_session))
