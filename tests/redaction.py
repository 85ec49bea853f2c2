#!/usr/bin/env python3
"""redaction.py - no secret escapes redaction, in any spelling of a login (issue 24).

Writes captures (tests/pcapgen.py) of logins in every whitespace and case
spelling the three protocols' servers accept, each session with its own
password, and runs mxray in every output mode that shows commands: the
timeline, --explain, --failures, --json, --html, audit and audit --json
(--streams and --extract are left out: they write the reassembled bytes and
the messages as sent, by design; docs/manual.md says so). It asserts:

  - without --show-secrets, no secret of any session (the password, its
    base64 form, the whole SASL message in base64, a bearer token, a CRAM-MD5
    or APOP digest, their hex) appears in any output, standard error
    included, whether raw, HTML-unescaped or JSON-unescaped;
  - with --show-secrets, every session's secret is shown (in --json);
  - every accepted login is a login of its session record (outcome success;
    secret_in_clear for the mechanisms that send the secret itself), and
    `audit --json` counts each of those as a cleartext login and raises
    MX-CLEARTEXT-CREDENTIALS with that count;
  - failed AUTH exchanges, after which the client still sends base64, leak
    nothing either.

Spellings: the verb in upper, lower and mixed case; SP, HTAB, several of
them, VT, FF and NUL between the verb and its argument and between the
arguments; leading and trailing whitespace; IMAP LOGIN with atoms, quoted
strings, synchronising and non-synchronising literals; AUTHENTICATE with and
without SASL-IR; SMTP AUTH PLAIN, LOGIN, CRAM-MD5 and XOAUTH2, with an
initial response and after 334; POP3 USER/PASS, APOP and AUTH.

usage: redaction.py MXRAY                   the whole grid
       redaction.py MXRAY --random N [--seed S]
                                          N random spellings (a property test:
                                          random whitespace runs, case, tags)
       redaction.py MXRAY --count           only count the sessions whose
                                          secret leaks (for before/after
                                          figures); exit 0
"""
import argparse
import base64
import hashlib
import hmac
import html
import json
import os
import random
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pcapgen  # noqa: E402

PORTS = {"smtp": 25, "pop3": 110, "imap": 143}
# Between a verb and its argument, and between arguments: what servers
# split on (postfix's smtpd_token: ISSPACE; Cyrus pop3d: Uisspace), and NUL,
# where a C server stops reading (it sees the verb alone) and another may
# split: either way what follows may be a secret.
SEPS = [" ", "\t", "  ", " \t ", "\t\t", "\x0b", "\x0c", "\x00"]
ARG_SEPS = [" ", "\t", "  ", " \t", "\x0b", "\x0c"]  # between arguments (no NUL)
EDGES = ["", " ", "\t", " \t"]  # leading / trailing


def b64(b):
    return base64.b64encode(b if isinstance(b, bytes) else b.encode()).decode()


def spell(word, how):
    """word in a case: "U" upper, "l" lower, "M" mixed, "m" the other mix."""
    if how == "U":
        return word.upper()
    if how == "l":
        return word.lower()
    return "".join(c.upper() if (i % 2 == 0) == (how == "M") else c.lower() for i, c in enumerate(word))


class Session:
    """One session: its dialogue, the secrets that must never be shown, what
    --show-secrets must show, and the login it must count as."""

    def __init__(self, proto, label, turns, needles, shown, login=None, clear=True):
        self.proto, self.label, self.turns = proto, label, turns
        self.needles = needles  # str secrets
        self.shown = shown      # what --show-secrets shows (in --json)
        self.login = login      # None: a failed login, nothing to count
        self.clear = clear      # the secret itself crossed (not a digest)


def creds(n):
    return "u%05dx" % n, "Pw%05dQz" % n


# ---------------------------------------------------------------- SMTP

SMTP_MECHS = ["PLAIN-IR", "PLAIN", "LOGIN", "LOGIN-IR", "CRAM-MD5", "XOAUTH2-IR"]


def smtp_session(n, mech, verb, sep, lead="", trail="", asep=" ", failed=False):
    user, pw = creds(n)
    c = lambda t: ["c", t + "\r\n"]  # noqa: E731
    s = lambda t: ["s", t + "\r\n"]  # noqa: E731
    turns = [s("220 mx.example ESMTP"), c("EHLO client.example"),
             s("250-mx.example\r\n250-AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2\r\n250 8BITMIME")]
    ok = "535 5.7.8 Authentication credentials invalid" if failed else "235 2.7.0 Authentication successful"
    head = lead + verb + sep
    plain = b64("\0" + user + "\0" + pw)
    if mech == "PLAIN-IR":
        turns += [c(head + "PLAIN" + asep + plain + trail), s(ok)]
        needles, shown = [pw, plain], plain
    elif mech == "PLAIN":
        turns += [c(head + "PLAIN" + trail), s("334 "), c(plain + trail), s(ok)]
        needles, shown = [pw, plain], plain
    elif mech in ("LOGIN", "LOGIN-IR"):
        first = [c(head + "LOGIN" + asep + b64(user) + trail)] if mech == "LOGIN-IR" else \
            [c(head + "LOGIN" + trail), s("334 VXNlcm5hbWU6"), c(b64(user))]
        turns += first + [s("334 UGFzc3dvcmQ6"), c(b64(pw) + trail), s(ok)]
        needles, shown = [pw, b64(pw)], b64(pw)
    elif mech == "CRAM-MD5":
        chal = "<%d.1700000000@mx.example>" % n
        digest = hmac.new(pw.encode(), chal.encode(), hashlib.md5).hexdigest()
        resp = b64(user + " " + digest)
        turns += [c(head + "CRAM-MD5" + trail), s("334 " + b64(chal)), c(resp), s(ok)]
        needles, shown = [digest, resp], resp
    elif mech == "XOAUTH2-IR":
        token = "ya29.Tok%05dBearer" % n
        blob = b64("user=" + user + "\x01auth=Bearer " + token + "\x01\x01")
        turns += [c(head + "XOAUTH2" + asep + blob + trail), s(ok)]
        needles, shown = [token, blob], blob
    if failed:
        # A confused client goes on sending base64 after the 535.
        turns += [c(needles[-1]), s("500 5.5.2 Error: command not recognized"),
                  c(b64(pw)), s("500 5.5.2 Error: command not recognized")]
        needles = needles + [b64(pw)]
    turns += [c("QUIT"), s("221 2.0.0 Bye")]
    label = "smtp #%d %s %r%s" % (n, mech, lead + verb + sep, " failed" if failed else "")
    clear = mech != "CRAM-MD5"
    return Session("smtp", label, turns, needles, shown, None if failed else mech.split("-IR")[0], clear)


# ---------------------------------------------------------------- POP3

POP3_MECHS = ["USER/PASS", "APOP", "PLAIN-IR", "PLAIN", "LOGIN"]
APOP_TS = "<1896.697170952@dbc.mtview.ca.us>"


def pop3_session(n, mech, verb, sep, lead="", trail="", asep=" ", failed=False):
    user, pw = creds(n)
    c = lambda t: ["c", t + "\r\n"]  # noqa: E731
    s = lambda t: ["s", t + "\r\n"]  # noqa: E731
    turns = [s("+OK POP3 server ready " + APOP_TS)]
    ok = "-ERR [AUTH] Authentication failed" if failed else "+OK Logged in."
    plain = b64("\0" + user + "\0" + pw)
    head = lead + verb + sep
    if mech == "USER/PASS":
        # verb is "PASS" in some case; USER gets the same spelling.
        turns += [c(lead + spell("USER", "M") + sep + user + trail), s("+OK"), c(head + pw + trail), s(ok)]
        needles, shown = [pw], pw
    elif mech == "APOP":
        digest = hashlib.md5((APOP_TS + pw).encode()).hexdigest()
        turns += [c(head + user + asep + digest + trail), s(ok)]
        needles, shown = [digest], digest
    elif mech == "PLAIN-IR":
        turns += [c(head + "PLAIN" + asep + plain + trail), s(ok)]
        needles, shown = [pw, plain], plain
    elif mech == "PLAIN":
        turns += [c(head + "PLAIN" + trail), s("+ "), c(plain + trail), s(ok)]
        needles, shown = [pw, plain], plain
    elif mech == "LOGIN":
        turns += [c(head + "LOGIN" + trail), s("+ VXNlcm5hbWU6"), c(b64(user)), s("+ UGFzc3dvcmQ6"),
                  c(b64(pw) + trail), s(ok)]
        needles, shown = [pw, b64(pw)], b64(pw)
    if failed:
        turns += [c(needles[-1]), s("-ERR Unknown command."), c(b64(pw)), s("-ERR Unknown command.")]
        needles = needles + [b64(pw)]
    turns += [c("QUIT"), s("+OK Logging out")]
    label = "pop3 #%d %s %r%s" % (n, mech, lead + verb + sep, " failed" if failed else "")
    login = {"USER/PASS": "USER/PASS", "APOP": "APOP", "PLAIN-IR": "PLAIN"}.get(mech, mech)
    return Session("pop3", label, turns, needles, shown, None if failed else login, mech != "APOP")


# ---------------------------------------------------------------- IMAP

IMAP_FORMS = ["atom", "quoted", "literal", "literal+", "auth-ir", "auth", "auth-login"]


def imap_session(n, form, verb, sep, tag="a1", lead="", trail="", asep=" ", failed=False, tsep=None):
    user, pw = creds(n)
    c = lambda t: ["c", t + "\r\n"]  # noqa: E731
    s = lambda t: ["s", t + "\r\n"]  # noqa: E731
    turns = [s("* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ AUTH=PLAIN AUTH=LOGIN] ready")]
    done = tag + (" NO [AUTHENTICATIONFAILED] Authentication failed." if failed else " OK Logged in")
    head = lead + tag + (sep if tsep is None else tsep) + verb + sep
    plain = b64("\0" + user + "\0" + pw)
    if form == "atom":
        turns += [c(head + user + asep + pw + trail), s(done)]
        needles, shown = [pw], pw
    elif form == "quoted":
        turns += [c(head + '"' + user + '"' + asep + '"' + pw + '"' + trail), s(done)]
        needles, shown = [pw], pw
    elif form == "literal":
        turns += [c(head + "{%d}" % len(user)), s("+ Ready for literal data"),
                  c(user + asep + "{%d}" % len(pw)), s("+ Ready for literal data"), c(pw + trail), s(done)]
        needles, shown = [pw], pw
    elif form == "literal+":
        turns += [c(head + "{%d+}" % len(user)), c(user + asep + "{%d+}" % len(pw)), c(pw + trail), s(done)]
        needles, shown = [pw], pw
    elif form == "auth-ir":
        turns += [c(head + "PLAIN" + asep + plain + trail), s(done)]
        needles, shown = [pw, plain], plain
    elif form == "auth":
        turns += [c(head + "PLAIN" + trail), s("+ "), c(plain + trail), s(done)]
        needles, shown = [pw, plain], plain
    elif form == "auth-login":
        turns += [c(head + "LOGIN" + trail), s("+ VXNlcm5hbWU6"), c(b64(user)), s("+ UGFzc3dvcmQ6"),
                  c(b64(pw) + trail), s(done)]
        needles, shown = [pw, b64(pw)], b64(pw)
    if failed:
        turns += [c(needles[-1]), s("* BAD Error in IMAP command received by server."),
                  c(b64(pw)), s("* BAD Error in IMAP command received by server.")]
        needles = needles + [b64(pw)]
    turns += [c("z9 LOGOUT"), s("* BYE Logging out"), s("z9 OK Logout completed.")]
    label = "imap #%d %s %r%s" % (n, form, head, " failed" if failed else "")
    login = "LOGIN" if form in ("atom", "quoted", "literal", "literal+") else "AUTHENTICATE"
    return Session("imap", label, turns, needles, shown, None if failed else login, True)


# ---------------------------------------------------------------- the grid

def grid():
    out = []
    n = [0]

    def add(f, *a, **k):
        n[0] += 1
        out.append(f(n[0], *a, **k))

    cases = ["U", "l", "M", "m"]
    for mech in SMTP_MECHS:
        for how in cases:
            for sep in SEPS:
                add(smtp_session, mech, spell("AUTH", how), sep)
        for lead in EDGES:
            for trail in EDGES:
                if lead or trail:
                    add(smtp_session, mech, "AUTH", " ", lead=lead, trail=trail)
        for asep in ARG_SEPS[1:]:
            add(smtp_session, mech, "Auth", "\t", asep=asep)
        add(smtp_session, mech, "auth", "\t", failed=True)
        add(smtp_session, mech, "AUTH", " ", failed=True)
    for mech in POP3_MECHS:
        verb = {"USER/PASS": "PASS", "APOP": "APOP"}.get(mech, "AUTH")
        for how in cases:
            for sep in SEPS:
                add(pop3_session, mech, spell(verb, how), sep)
        for lead in EDGES:
            for trail in EDGES:
                if lead or trail:
                    add(pop3_session, mech, verb, " ", lead=lead, trail=trail)
        for asep in ARG_SEPS[1:]:
            add(pop3_session, mech, spell(verb, "M"), "\t", asep=asep)
        if verb == "AUTH":
            add(pop3_session, mech, "auth", "\t", failed=True)
            add(pop3_session, mech, "AUTH", " ", failed=True)
    for form in IMAP_FORMS:
        verb = "LOGIN" if form in ("atom", "quoted", "literal", "literal+") else "AUTHENTICATE"
        for how in cases:
            for sep in SEPS[:-1]:  # NUL: below, between the command and its first argument
                add(imap_session, form, spell(verb, how), sep)
        add(imap_session, form, verb, "\x00", tsep=" ")
        for lead in EDGES:
            for trail in EDGES:
                if lead or trail:
                    add(imap_session, form, verb, " ", lead=lead, trail=trail)
        for asep in ARG_SEPS[1:]:
            add(imap_session, form, spell(verb, "m"), "\t", asep=asep)
        for tag in ("A001", "x.1", "tag-with-dash"):
            add(imap_session, form, spell(verb, "l"), " ", tag=tag)
        if form.startswith("auth"):
            add(imap_session, form, "authenticate", "\t", failed=True)
            add(imap_session, form, "AUTHENTICATE", " ", failed=True)
    return out


def randomized(count, seed):
    """count sessions of random spellings: whitespace runs drawn from SP,
    HTAB, VT, FF (NUL too after the verb), random case per letter, random
    tags, leading and trailing runs."""
    rnd = random.Random(seed)
    ws = [" ", "\t", "\x0b", "\x0c"]

    def run(k=3):
        return "".join(rnd.choice(ws) for _ in range(rnd.randint(1, k)))

    def case(w):
        return "".join(ch.upper() if rnd.random() < 0.5 else ch.lower() for ch in w)

    def edge():
        return run(2) if rnd.random() < 0.3 else ""

    out = []
    for i in range(1, count + 1):
        proto = rnd.choice(["smtp", "pop3", "imap"])
        sep = run() if rnd.random() < 0.9 else "\x00"
        kw = dict(lead=edge(), trail=edge(), asep=run(), failed=rnd.random() < 0.1)
        if proto == "smtp":
            out.append(smtp_session(i, rnd.choice(SMTP_MECHS), case("AUTH"), sep, **kw))
        elif proto == "pop3":
            mech = rnd.choice(POP3_MECHS)
            verb = {"USER/PASS": "PASS", "APOP": "APOP"}.get(mech, "AUTH")
            if verb != "AUTH":
                kw["failed"] = False
            out.append(pop3_session(i, mech, case(verb), sep, **kw))
        else:
            form = rnd.choice(IMAP_FORMS)
            verb = "LOGIN" if form in ("atom", "quoted", "literal", "literal+") else "AUTHENTICATE"
            if not form.startswith("auth"):
                kw["failed"] = False
            tag = "".join(rnd.choice("abcXYZ0123.-_") for _ in range(rnd.randint(1, 8)))
            out.append(imap_session(i, form, case(verb), sep, tag=tag, tsep=run() if sep == "\x00" else None, **kw))
    return out


# ---------------------------------------------------------------- running mxray

MODES = [
    ("timeline", []),
    ("explain", ["--explain"]),
    ("failures", ["--failures"]),
    ("json", ["--json", "-"]),
    ("html", None),
    ("audit", ["audit"]),
    ("audit-json", ["audit", "--json", "-"]),
]


def unescapes(text):
    """The text, and the same with HTML and JSON escapes undone."""
    out = [text, html.unescape(text)]
    out.append(re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text).replace("\\/", "/"))
    return out


def run_modes(mxray, pcap, tmp, show=False):
    """{mode: text of its stdout + stderr (+ the HTML file)}."""
    outs = {}
    for name, args in MODES:
        extra = ["--show-secrets"] if show else []
        if args is None:
            path = os.path.join(tmp, "report.html")
            args = ["--html", path]
        cmd = [mxray] + (args[:1] if args[:1] == ["audit"] else []) + extra + \
            (args[1:] if args[:1] == ["audit"] else args) + ["--no-progress", "-j", "0", pcap]
        res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if res.returncode not in (0, 3):
            raise RuntimeError("%s exited %d: %s" % (" ".join(cmd), res.returncode, res.stderr[-300:]))
        text = (res.stdout + b"\n" + res.stderr).decode("latin-1")
        if name == "html":
            with open(path, "rb") as f:
                text += f.read().decode("latin-1")
            os.unlink(path)
        outs[name] = text
    return outs


def leaks(sessions, outs):
    """[(session, mode, needle)] for each secret shown."""
    found = []
    for mode, text in outs.items():
        hay = "\n".join(unescapes(text))
        for s in sessions:
            for nd in s.needles:
                forms = {nd, nd.encode().hex()}
                for f in forms:
                    if f in hay:
                        found.append((s, mode, f))
    return found


def check(mxray, sessions, count_only=False):
    bad = []
    by_proto = {}
    for s in sessions:
        by_proto.setdefault(s.proto, []).append(s)
    leaked_sessions = set()
    total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for proto, ss in sorted(by_proto.items()):
            total += len(ss)
            pcap = os.path.join(tmp, proto + ".pcap")
            pcapgen.sessions_to_pcap([{"port": PORTS[proto], "turns": s.turns} for s in ss], pcap)
            outs = run_modes(mxray, pcap, tmp)
            before = len(leaked_sessions)
            for s, mode, nd in leaks(ss, outs):
                if id(s) not in leaked_sessions:
                    bad.append("%s: secret %r shown in %s" % (s.label, nd, mode))
                leaked_sessions.add(id(s))
            if count_only:
                print("  %s: %d of %d leak" % (proto, len(leaked_sessions) - before, len(ss)))
                continue
            # With --show-secrets, each session's secret is in --json.
            shown = run_modes(mxray, pcap, tmp, show=True)["json"]
            hay = "\n".join(unescapes(shown))
            for s in ss:
                if s.shown not in hay:
                    bad.append("%s: --show-secrets does not show %r" % (s.label, s.shown))
            # Each accepted login is one of its session's logins.
            recs = [json.loads(line) for line in outs["json"].split("\n") if line.startswith("{")]
            port_of = {r["flow"]: r["client_port"] for r in recs if r.get("type") == "flow_start"}
            auth_of = {port_of.get(r["flow"]): r.get("auth", []) for r in recs
                       if r.get("type") == proto + ".session"}
            want_clear = unrecognised = 0
            for i, s in enumerate(ss):
                auths = auth_of.get(40000 + i)
                if s.login is None:
                    continue
                want_clear += s.clear
                okays = [a for a in (auths or []) if a.get("outcome") == "success"]
                if len(okays) != 1:
                    unrecognised += 1
                    bad.append("%s: not one successful login in its session record: %r" % (s.label, auths))
                elif okays[0].get("secret_in_clear") is not s.clear:
                    bad.append("%s: secret_in_clear is %r" % (s.label, okays[0].get("secret_in_clear")))
            print("  %s: %d of %d leak; %d of %d accepted logins not seen as one" %
                  (proto, len(leaked_sessions) - before, len(ss), unrecognised,
                   sum(s.login is not None for s in ss)))
            audit = [json.loads(line) for line in outs["audit-json"].split("\n") if line.startswith("{")]
            servers = [r for r in audit if r.get("type") == "audit.server" and r.get("proto") == proto]
            got = sum(r["auth_seen"]["cleartext_logins"] for r in servers)
            if got < want_clear:
                bad.append("%s: audit counts %d cleartext logins, %d were made" % (proto, got, want_clear))
            finding = [r for r in audit if r.get("type") == "finding" and r.get("id") == "MX-CLEARTEXT-CREDENTIALS"
                       and r.get("proto") == proto]
            if want_clear and (not finding or finding[0].get("count", 0) < want_clear):
                bad.append("%s: MX-CLEARTEXT-CREDENTIALS counts %r, %d were made" %
                           (proto, finding[0].get("count") if finding else None, want_clear))
    return bad, len(leaked_sessions), total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mxray")
    ap.add_argument("--random", type=int, default=0, metavar="N")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("MX_REDACTION_SEED", "24")))
    ap.add_argument("--count", action="store_true")
    a = ap.parse_args()
    sessions = randomized(a.random, a.seed) if a.random else grid()
    bad, leaked, total = check(a.mxray, sessions, a.count)
    what = "random spellings (seed %d)" % a.seed if a.random else "spellings"
    print("redaction: %d of %d %s leak a secret" % (leaked, total, what))
    if a.count:
        return 0
    for b in bad[:int(os.environ.get("MX_REDACTION_SHOW", "60"))]:
        print("  " + b)
    if len(bad) > 60:
        print("  ... and %d more" % (len(bad) - 60))
    failed = {b.split(":")[0] for b in bad if "#" in b.split(":")[0]}
    print("redaction: %d sessions passed, %d failed; %d failed checks" % (total - len(failed), len(failed), len(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
