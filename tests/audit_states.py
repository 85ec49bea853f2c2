#!/usr/bin/env python3
"""audit_states - every posture fact of the auditor (issue 27) in each of its
three states, yes, no and not seen, on the lab captures, with its evidence
frames checked against the capture itself.

For each case below mxray reads one capture of pcaps/ and its audit.server
record (docs/manual.md, Findings) must give the fact the state named. The
frames the evidence names are derived here, independently of mxray, from the
capture's bytes (tests/pcapgen.py's read_pcap, Ethernet, IPv4 and TCP parsed
here): the capability reply that lacks or carries STARTTLS, the frame that
carries the password, the reply to STARTTLS, the ClientHello, the RCPT reply,
the close. Then the relaying lab (smtp/relay-*.pcap, real postfix): the open
relay raises MX-OPEN-RELAY (high, the message accepted; medium for a RCPT
alone) with the outside client's RCPT reply as evidence and nothing for the
server's own host or the authenticated client; the closed server raises
nothing about relaying. Findings come high first.

usage: tests/audit_states.py MXRAY     (exit 0: all passed, 1: failures)
"""
import base64
import json
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from pcapgen import read_pcap  # noqa: E402

USERS = {"alice": "alicepw", "bob": "bobpw", "carol": "carolpw", "dave": "davepw"}  # docs/lab.md


class Capture:
    """A lab capture's TCP segments with payload, by connection (numbered as
    their first packets come, as mxray numbers flows) and direction."""

    def __init__(self, path):
        order, hdr, frames = read_pcap(path)
        if struct.unpack(order + "I", hdr[20:24])[0] != 1:
            raise ValueError("%s: not Ethernet" % path)
        self.flows = {}       # (client, cport, server, sport) -> flow number
        self.segs = []        # (frame, flow, dir "c2s"/"s2c", payload)
        self.close = {}       # flow -> the frame of its last FIN or RST: the close
        self.syn_from = {}
        for n, (_, _, b, _) in enumerate(frames, 1):
            if len(b) < 34 or b[12:14] != b"\x08\x00" or b[23] != 6:
                continue
            ihl = (b[14] & 15) * 4
            tot = struct.unpack(">H", b[16:18])[0]
            src, dst = ".".join(map(str, b[26:30])), ".".join(map(str, b[30:34]))
            t = 14 + ihl
            sp, dp = struct.unpack(">HH", b[t:t + 4])
            flags = b[t + 13]
            doff = (b[t + 12] >> 4) * 4
            payload = bytes(b[t + doff:14 + tot])
            a, z = (src, sp), (dst, dp)
            key = a + z if (a + z) in self.flows else z + a if (z + a) in self.flows else None
            if key is None:
                if not (flags & 2) or (flags & 16):       # a SYN starts a flow
                    continue
                key = a + z
                self.flows[key] = len(self.flows) + 1
            flow = self.flows[key]
            if flags & 5:
                self.close[flow] = n
            if payload:
                self.segs.append((n, flow, "c2s" if (src, sp) == key[:2] else "s2c", payload))

    def frame(self, flow, d, needle, after=0, start=False):
        """The first frame of flow in direction d after frame `after` whose
        payload contains needle (starts with it when start)."""
        for n, f, dd, p in self.segs:
            if f == flow and dd == d and n > after and (p.startswith(needle) if start else needle in p):
                return n
        raise LookupError("flow %d %s: no %r after frame %d" % (flow, d, needle, after))

    def reply_after(self, flow, cmd, code=b""):
        """The server's frame that starts the reply to the client's command cmd."""
        return self.frame(flow, "s2c", code, self.frame(flow, "c2s", cmd), start=True)

    def secret_frame(self, flow):
        """The client frame that carries a lab user's password, as itself
        (PASS, LOGIN) or base64 (AUTH LOGIN's second line, AUTH PLAIN)."""
        for user, pw in USERS.items():
            forms = [pw.encode(), base64.b64encode(pw.encode()),
                     base64.b64encode(b"\0" + user.encode() + b"\0" + pw.encode())]
            for n, f, d, p in self.segs:
                if f == flow and d == "c2s" and any(x in p for x in forms):
                    return n
        raise LookupError("flow %d: no password" % flow)

    def client_hello(self, flow):
        return self.frame(flow, "c2s", b"\x16\x03", start=True)


def having(c, n, needle, present=True):
    """Frame n, checked to carry needle (or, present False, not to)."""
    p = b"".join(x[3] for x in c.segs if x[0] == n)
    if (needle in p) != present:
        raise LookupError("frame %d %s %r" % (n, "lacks" if present else "carries", needle))
    return n


def caps_reply(c, flow, proto):
    """The frame that starts the capability list in clear."""
    if proto == "smtp":
        return c.reply_after(flow, b"EHLO ", b"250")
    if proto == "pop3":
        return c.reply_after(flow, b"CAPA", b"+OK")
    # IMAP: the last list before the LOGIN (a greeting's code or a CAPABILITY response)
    login = c.frame(flow, "c2s", b"LOGIN ")
    return max(n for n, f, d, p in c.segs if f == flow and d == "s2c" and n < login and b"CAPABILITY" in p)


# (capture, proto, fact, state, expected evidence: flow, frames from the capture)
CASES = [
    ("smtp/relay-denied", "smtp", "starttls_offered", "yes",
     lambda c: (1, [having(c, caps_reply(c, 1, "smtp"), b"STARTTLS")])),
    ("smtp/no-starttls", "smtp", "starttls_offered", "no",
     lambda c: (1, [having(c, caps_reply(c, 1, "smtp"), b"STARTTLS", False)])),
    ("pop3/no-stls", "pop3", "starttls_offered", "no",
     lambda c: (1, [having(c, caps_reply(c, 1, "pop3"), b"STLS", False)])),
    ("smtp/implicit-tls-465", "smtp", "starttls_offered", "not seen", None),
    ("smtp/starttls-auth", "smtp", "tls_used", "yes", lambda c: (1, [c.client_hello(1)])),
    ("smtp/implicit-tls-465", "smtp", "tls_used", "yes", lambda c: (1, [c.client_hello(1)])),
    ("smtp/no-starttls", "smtp", "tls_used", "no", lambda c: (1, [c.close[1]])),
    ("impaired/imap-login-fetch-midstream", "imap", "tls_used", "not seen", None),
    ("smtp/starttls-refused-454", "smtp", "starttls_refused", "yes",
     lambda c: (1, [c.frame(1, "c2s", b"STARTTLS"), c.reply_after(1, b"STARTTLS", b"454")])),
    ("smtp/starttls-auth", "smtp", "starttls_refused", "no",
     lambda c: (1, [c.frame(1, "c2s", b"STARTTLS"), c.reply_after(1, b"STARTTLS", b"220")])),
    ("smtp/no-starttls", "smtp", "starttls_refused", "not seen", None),
    ("smtp/starttls-handshake-fails", "smtp", "starttls_failed", "yes",
     lambda c: (1, [c.client_hello(1), c.frame(1, "s2c", b"\x15\x03", start=True)])),
    # no alert: the handshake ended with the connection, the close is the proof
    ("pop3/stls-injection", "pop3", "starttls_failed", "yes", lambda c: (1, [c.client_hello(1), c.close[1]])),
    ("smtp/starttls-auth", "smtp", "starttls_failed", "no", lambda c: (1, [c.client_hello(1)])),
    ("smtp/no-starttls", "smtp", "starttls_failed", "not seen", None),
    ("smtp/no-starttls", "smtp", "auth_before_tls", "yes",
     lambda c: (1, [having(c, caps_reply(c, 1, "smtp"), b"AUTH ")])),
    ("smtp/clean-submission", "smtp", "auth_before_tls", "no",
     lambda c: (1, [having(c, caps_reply(c, 1, "smtp"), b"AUTH", False)])),
    ("smtp/implicit-tls-465", "smtp", "auth_before_tls", "not seen", None),
    ("smtp/auth-plain-clear", "smtp", "credentials_in_clear", "yes", lambda c: (1, [c.secret_frame(1)])),
    ("smtp/auth-login-clear", "smtp", "credentials_in_clear", "yes", lambda c: (1, [c.secret_frame(1)])),
    ("pop3/user-pass-retr", "pop3", "credentials_in_clear", "yes", lambda c: (1, [c.secret_frame(1)])),
    ("imap/login-literal", "imap", "credentials_in_clear", "yes", lambda c: (1, [c.secret_frame(1)])),
    ("smtp/auth-cram-md5", "smtp", "credentials_in_clear", "no", lambda c: (1, [c.frame(1, "c2s", b"AUTH CRAM-MD5")])),
    ("smtp/starttls-auth", "smtp", "credentials_in_clear", "not seen", None),
    ("imap/logindisabled", "imap", "logindisabled", "yes",
     lambda c: (1, [having(c, caps_reply(c, 1, "imap"), b"LOGINDISABLED")])),
    ("imap/logindisabled-ignored", "imap", "logindisabled", "yes",
     lambda c: (1, [having(c, caps_reply(c, 1, "imap"), b"LOGINDISABLED")])),
    ("imap/login-fetch", "imap", "logindisabled", "no",
     lambda c: (1, [having(c, caps_reply(c, 1, "imap"), b"LOGINDISABLED", False)])),
    ("imap/imaps-993", "imap", "logindisabled", "not seen", None),
    ("imap/logindisabled", "imap", "logindisabled_honoured", "yes",
     lambda c: (1, [c.frame(1, "c2s", b"LOGIN "), c.frame(1, "s2c", b" NO ", c.frame(1, "c2s", b"LOGIN "))])),
    ("imap/logindisabled-ignored", "imap", "logindisabled_honoured", "no",
     lambda c: (1, [c.frame(1, "c2s", b"LOGIN "), c.frame(1, "s2c", b" OK ", c.frame(1, "c2s", b"LOGIN "))])),
    ("imap/login-fetch", "imap", "logindisabled_honoured", "not seen", None),
    ("smtp/vrfy-enabled", "smtp", "vrfy_answered", "yes", lambda c: (1, [c.reply_after(1, b"VRFY alice", b"250")])),
    ("smtp/vrfy-expn", "smtp", "vrfy_answered", "no", lambda c: (1, [c.reply_after(1, b"VRFY ")])),
    ("smtp/plain-delivery", "smtp", "vrfy_answered", "not seen", None),
    ("smtp/vrfy-enabled", "smtp", "expn_answered", "yes", lambda c: (1, [c.reply_after(1, b"EXPN ", b"250")])),
    ("smtp/vrfy-expn", "smtp", "expn_answered", "no", lambda c: (1, [c.reply_after(1, b"EXPN ", b"500")])),
    ("smtp/plain-delivery", "smtp", "expn_answered", "not seen", None),
    ("smtp/relay-open", "smtp", "relaying", "yes", lambda c: (1, [c.reply_after(1, b"RCPT TO", b"250")])),
    ("smtp/relay-closed", "smtp", "relaying", "no", lambda c: (1, [c.reply_after(1, b"RCPT TO", b"554")])),
    # the client is the server's own host (127.0.0.1 to 127.0.0.1): not judged
    ("smtp/relay-denied", "smtp", "relaying", "not seen", None),
]


def records(mxray, cap):
    out = subprocess.run([mxray, "-q", "--json", "-", os.path.join(ROOT, "pcaps", cap + ".pcap")],
                         stdout=subprocess.PIPE, check=False).stdout
    return [json.loads(line) for line in out.decode("utf-8").splitlines() if line.startswith("{")]


def evidence_shows(ev, flow, frames):
    """Whether an evidence item of the list is on flow and its frames
    [first] or [first, last] begin at frames[0] and, when a last frame is
    expected, end there."""
    for e in ev:
        fr = e["frames"]
        if e["flow"] == flow and fr[0] == frames[0] and (len(frames) < 2 or fr[-1] == frames[-1]):
            return True
    return False


SEV = {"high": 0, "medium": 1, "low": 2, "info": 3}


def check_relay_lab(mxray, bad):
    recs = records(mxray, "smtp/relay-open")
    cap = Capture(os.path.join(ROOT, "pcaps", "smtp", "relay-open.pcap"))
    relay = [r for r in recs if r["type"] == "finding" and r["id"] == "MX-OPEN-RELAY"]
    want = cap.reply_after(1, b"RCPT TO", b"250")     # the outside client's RCPT reply
    if len(relay) != 1 or relay[0]["severity"] != "high" or relay[0]["count"] != 1 \
            or [(e["flow"], e["frames"]) for e in relay[0]["evidence"]] != [(1, [want])]:
        bad.append("relay-open: MX-OPEN-RELAY should be high, once, evidence flow 1 frame %d "
                   "(not the own-host flow 2 nor the authenticated flow 3): %r" % (want, relay))
    recs = records(mxray, "smtp/relay-open-rcpt-only")
    relay = [r for r in recs if r["type"] == "finding" and r["id"] == "MX-OPEN-RELAY"]
    if len(relay) != 1 or relay[0]["severity"] != "medium" or relay[0]["title"] != "Open-relay signal":
        bad.append("relay-open-rcpt-only: a RCPT alone should be a medium signal: %r" % relay)
    recs = records(mxray, "smtp/relay-closed")
    srv = [r for r in recs if r["type"] == "audit.server"]
    if any(r["type"] == "finding" and r["id"] == "MX-OPEN-RELAY" for r in recs) \
            or any(s["relay_signals"] for s in srv):
        bad.append("relay-closed: something about relaying was raised")
    for cap in ("smtp/relay-open", "smtp/starttls-stripped", "imap/logindisabled-ignored"):
        sev = [SEV[r["severity"]] for r in records(mxray, cap) if r["type"] == "finding"]
        if sev != sorted(sev):
            bad.append("%s: findings not high first: %r" % (cap, sev))


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    mxray = sys.argv[1]
    bad, done, caps = [], 0, {}
    for cap, proto, fact, state, expect in CASES:
        recs = records(mxray, cap)
        srv = [r for r in recs if r["type"] == "audit.server" and r["proto"] == proto]
        if len(srv) != 1:
            bad.append("%s: %d %s servers" % (cap, len(srv), proto))
            continue
        got = srv[0]["posture"].get(fact)
        where = "%s %s" % (cap, fact)
        if not got or got["state"] != state:
            bad.append("%s: %r, expected %s" % (where, got, state))
            continue
        if expect is None:
            if "evidence" in got or not got.get("why"):
                bad.append("%s: not seen, yet evidence or no reason: %r" % (where, got))
            done += 1
            continue
        if cap not in caps:
            caps[cap] = Capture(os.path.join(ROOT, "pcaps", cap + ".pcap"))
        try:
            flow, frames = expect(caps[cap])
        except LookupError as e:
            bad.append("%s: %s" % (where, e))
            continue
        if not evidence_shows(got.get("evidence", []), flow, frames):
            bad.append("%s: evidence %r, expected flow %d frames %r" % (where, got.get("evidence"), flow, frames))
            continue
        done += 1
    # The findings' evidence is the same proof.
    c = Capture(os.path.join(ROOT, "pcaps", "smtp", "auth-login-clear.pcap"))
    f = [r for r in records(mxray, "smtp/auth-login-clear") if r.get("id") == "MX-CLEARTEXT-CREDENTIALS"]
    if not f or f[0]["evidence"][0]["frames"] != [c.secret_frame(1)]:
        bad.append("auth-login-clear: MX-CLEARTEXT-CREDENTIALS evidence is not the password's frame %d: %r"
                   % (c.secret_frame(1), f))
    elif "shown" in f[0]["fix"]:
        bad.append("auth-login-clear: the fix speaks of passwords shown, which are hidden")
    out = subprocess.run([mxray, "-q", "--show-secrets", "--json", "-",
                          os.path.join(ROOT, "pcaps", "smtp", "auth-login-clear.pcap")],
                         stdout=subprocess.PIPE, check=False).stdout.decode("utf-8")
    f = [r for r in (json.loads(x) for x in out.splitlines() if x.startswith("{"))
         if r["type"] == "finding" and r["id"] == "MX-CLEARTEXT-CREDENTIALS"]
    if not f or "passwords shown" not in f[0]["fix"]:
        bad.append("auth-login-clear --show-secrets: the fix does not point at the passwords shown: %r" % f)
    c = Capture(os.path.join(ROOT, "pcaps", "smtp", "no-starttls.pcap"))
    f = [r for r in records(mxray, "smtp/no-starttls") if r.get("id") == "MX-TLS-NOT-OFFERED"]
    if not f or f[0]["evidence"][0]["frames"][0] != caps_reply(c, 1, "smtp"):
        bad.append("no-starttls: MX-TLS-NOT-OFFERED evidence is not the EHLO reply: %r" % f)
    check_relay_lab(mxray, bad)
    for b in bad:
        print("FAIL " + b)
    print("audit_states: %d of %d fact states checked with their evidence, %d failures"
          % (done, len(CASES), len(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
