#!/usr/bin/env python3
"""Check every lab capture against its truth file with tshark.

For each pcaps/**/*.truth.json: the cleartext reply codes per TCP stream
that tshark reports (smtp.response.code, pop.response.indicator,
imap.response.status) must equal the ones the truth file's transcript
implies, and `tshark -r` must print no malformed-packet warning (unless the
truth file lists "expect_malformed").  LMTP (port 24) is decoded as SMTP
(-d tcp.port==24,smtp): one code per reply there too, the per-recipient
replies after the data each counted (RFC 2033 §4.2); an LMTP session the
lab's client did not make (postfix's, truth "lmtp" with "client": "postfix")
is expected from its transaction.  Exit 1 on any mismatch.

  scripts/lab/check-tshark.py [PCAPS_DIR | TRUTH_FILE...]
"""
import shutil
import glob
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
STD_PORTS = {25: "smtp", 587: "smtp", 110: "pop", 143: "imap"}
LMTP_PORT = 24          # RFC 2033 §4; tshark knows no LMTP: decoded as SMTP
BOUNCE_RELAY_PORT = 2525  # scen_bounce.py: the next hop that refuses to relay (554)
BOUNCE_REFUSED_PORT = 2599  # scen_bounce.py: the next hop that refuses connections


def text_of(e):
    if "text" in e:
        return e["text"]
    import base64
    return base64.b64decode(e["b64"]).decode("latin-1")


def expected(session):
    """Reply tokens tshark should show for one session, in order."""
    out = []
    proto = session["proto"]
    # A NULL cipher suite (tls-posture/weak-cipher) encrypts nothing: tshark
    # reads the dialogue inside TLS as well.
    null = "NULL" in (session.get("tls_cipher") or "").split("-")
    for e in session["transcript"]:
        if e["dir"] != "S" or (e["tls"] and not null):
            continue
        t = text_of(e)
        if proto == "smtp":
            # one code per reply; a multi-line reply counts once, and a line
            # with another code ends one left open (RFC 5321 §4.2.1: the
            # "220-" postscreen never finishes for an early talker)
            open_code = None
            for line in t.split("\r\n"):
                m = re.match(r"(\d{3})([ -]|$)", line)
                if not m:
                    continue
                if open_code and open_code != m.group(1):
                    out.append(open_code)
                open_code = m.group(1) if m.group(2) == "-" else None
                if not open_code:
                    out.append(m.group(1))
            if open_code:
                out.append(open_code)
        elif proto == "lmtp":
            # one code per reply; a multi-line reply counts once
            if re.match(r"\d{3}", t):
                out.append(t[:3])
        elif proto == "pop3":
            first = t.split("\r\n", 1)[0]
            if first.startswith("+OK"):
                out.append("+OK")
            elif first.startswith("-ERR"):
                out.append("-ERR")
        elif proto == "imap":
            # tshark reports the word after the tag for tagged responses
            # and continuation requests ("+ OK", "+ idling"), not for
            # untagged ones
            m = re.match(r"(\S+) ([^\s\[]+)", t)
            if m and m.group(1) != "*":
                out.append(m.group(2).upper())
    return out


def tshark_tokens(cap, decode_as, extra=()):
    cmd = ["tshark", "-r", cap] + list(extra) + ["-T", "fields", "-e", "tcp.stream",
           "-e", "smtp.response.code", "-e", "pop.response.indicator",
           "-e", "imap.response.status"]
    for port, proto in decode_as:
        cmd += ["-d", "tcp.port==%d,%s" % (port, proto)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    per = {}
    for ln in r.stdout.splitlines():
        f = ln.split("\t")
        if len(f) < 4 or not f[0]:
            continue
        st = int(f[0])
        for v in f[1:]:
            if v:
                per.setdefault(st, []).extend(x.upper() for x in v.split(","))
    return per


def stream_ends(cap):
    """TCP stream -> (client port, server port), from its first packet (the SYN)."""
    r = subprocess.run(["tshark", "-r", cap, "-T", "fields", "-e", "tcp.stream", "-e", "tcp.srcport",
                        "-e", "tcp.dstport"], capture_output=True, text=True)
    ends = {}
    for ln in r.stdout.splitlines():
        f = ln.split("\t")
        if len(f) == 3 and f[0]:
            ends.setdefault(int(f[0]), (int(f[1]), int(f[2])))
    return ends


def malformed(cap, decode_as, extra=()):
    cmd = ["tshark", "-r", cap] + list(extra)
    for port, proto in decode_as:
        cmd += ["-d", "tcp.port==%d,%s" % (port, proto)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    bad = [ln for ln in r.stdout.splitlines() if "Malformed" in ln]
    err = [ln for ln in r.stderr.splitlines()
           if ln.strip() and "Running as user" not in ln]
    return bad + err


def check(truthf):
    with open(truthf, encoding="utf-8") as f:
        t = json.load(f)
    cap = os.path.join(os.path.dirname(truthf), t["capture"])
    problems = []
    if any("tunnel" in s for s in t["sessions"]):
        return problems  # two streams a session (client-proxy, proxy-server): tests/oracle/truth_tunnel.py
    decode_as = sorted({(s["server_port"], {"smtp": "smtp", "pop3": "pop",
                                            "imap": "imap", "lmtp": "smtp"}[s["proto"]])
                        for s in t["sessions"]
                        if s["tls"] != "implicit" and s["server_port"] not in STD_PORTS} |
                       ({(LMTP_PORT, "smtp")} if t.get("lmtp") or t.get("bounce") else set()) |
                       ({(BOUNCE_RELAY_PORT, "smtp")} if t.get("bounce") else set()))
    # A decrypted export (pcaps/keylog/*-cleartext, scripts/lab/decrypted-export.py)
    # has no TLS after STARTTLS/STLS, but tshark's POP dissector hands the
    # server's side to TLS after the +OK to STLS whatever follows; with TLS
    # disabled it reads the cleartext as POP.
    extra = (["--disable-protocol", "tls"]
             if any("decrypted_export" in s for s in t["sessions"]) else [])
    got = tshark_tokens(cap, decode_as, extra)
    ends = (stream_ends(cap) if any("proxy" in s for s in t["sessions"]) or t.get("lmtp") or t.get("journeys")
            or t.get("bounce") else {})
    mine, backend = set(), set()
    # a journey's capture interleaves postfix's own streams (25, LMTP) with
    # the sessions of the truth: those are the others, in order
    clients = sorted(k for k, v in ends.items() if v[1] not in (25, LMTP_PORT)) if t.get("journeys") else None
    for s in t["sessions"]:
        st = s["index"] if clients is None else (clients[s["index"]] if s["index"] < len(clients) else -1)
        if "proxy" in s:
            # Behind HAProxy a session is two streams: the client's, compared
            # here, and the proxy's to the server, whose PROXY header tshark's
            # mail dissectors take for a command (tests/oracle/truth_proxy.py
            # checks that leg).
            p = s["proxy"]
            st = next((k for k, v in ends.items() if v == (p["client_port"], p["frontend_port"])), -1)
            backend |= {k for k, v in ends.items() if v[1] == p["backend_port"]}
        if t.get("bounce"):
            # postfix's own streams come between the client's: the client's
            # n-th session to a port is the n-th stream to it
            nth = sum(1 for x in t["sessions"][:s["index"]] if x["server_port"] == s["server_port"])
            to_port = sorted(k for k, v in ends.items() if v[1] == s["server_port"])
            st = to_port[nth] if nth < len(to_port) else -1
        mine.add(st)
        exp = expected(s)
        have = got.get(st, [])
        if exp != have:
            problems.append("stream %d (%s %d): truth %s, tshark %s"
                            % (st, s["proto"], s["server_port"], exp, have))
    # LMTP sessions of postfix's own client: the codes its transaction implies
    theirs = sorted(k for k, v in ends.items() if v[1] == LMTP_PORT and k not in mine)
    for tx in (x for x in t.get("lmtp", []) if x.get("client") == "postfix"):
        st = theirs.pop(0) if theirs else -1
        mine.add(st)
        rc = [r["rcpt_code"] for r in tx["recipients"]]
        exp = ["220", "250", "250"] + ["%d" % c for c in rc] + ["354"] + \
              ["%d" % r["delivery"]["code"] for r in tx["recipients"] if r["delivery"]] + ["221"]
        if exp != got.get(st, []):
            problems.append("stream %d (postfix's LMTP): truth %s, tshark %s" % (st, exp, got.get(st, [])))
    if t.get("journeys"):
        # postfix's own sessions of a journey (its relay to the second instance
        # on 25, the second's LMTP): tests/oracle/truth_journey.py checks them
        # against the maillogs
        mine |= {k for k, v in ends.items() if v[1] in (25, LMTP_PORT) and k not in mine}
    if t.get("bounce"):
        # postfix's own sessions (scen_bounce.py): its LMTP deliveries, the
        # bounces' among them, the relay the next hop refuses, the
        # connection refused; tests/oracle/truth_bounce.py checks what
        # they carried
        mine |= {k for k, v in ends.items() if v[1] in (LMTP_PORT, BOUNCE_RELAY_PORT, BOUNCE_REFUSED_PORT)}
    unknown = set(got) - mine - backend
    if unknown:
        problems.append("streams not in truth: %s" % sorted(unknown))
    if not t.get("expect_malformed"):
        problems += ["malformed: " + m for m in malformed(cap, decode_as, extra)]
    return problems


def main():
    if not shutil.which("tshark"):
        print("check-tshark: skipped: tshark is not installed")
        return 77
    args = sys.argv[1:] or [os.path.join(HERE, "..", "..", "pcaps")]
    files = []
    for a in args:
        if os.path.isdir(a):
            files += glob.glob(os.path.join(a, "**", "*.truth.json"), recursive=True)
        else:
            files.append(a)
    files.sort()
    npass = nfail = 0
    for f in files:
        p = check(f)
        rel = os.path.relpath(f)
        if p:
            nfail += 1
            print("FAIL %s" % rel)
            for x in p:
                print("     " + x)
        else:
            npass += 1
            print("ok   %s" % rel)
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
