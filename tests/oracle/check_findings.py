#!/usr/bin/env python3
"""check_findings - every audit finding kind is triggered by a lab capture.

usage: tests/oracle/check_findings.py [-v] [--mxray PATH]

For each lab capture of the table below, runs `mxray -q --json - CAPTURE` and
collects the ids of its `finding` records (docs/manual.md, "Findings
(audit)"), then checks:
  - every id the row expects is present;
  - no id the row forbids is present (the forbidden ids are the near misses
    of the scenario: relay refused is no open relay, VRFY answered 252 is not
    "VRFY enabled", a STARTTLS that was used is not "TLS not used", ...);
  - the clean captures (smtp/clean-submission, pop3/clean, imap/clean: strict
    servers, TLS required and used) give no finding at all;
  - every id mxray writes is one of the manual's table;
  - every finding kind of the manual's table is expected by at least one row:
    the acceptance "every finding kind is triggered by a lab capture, with a
    test per kind".  The capture covering each kind is printed.
A row may be marked expected-failing (XFAIL) with a reason: its expected ids
may then be missing without failing the check (forbidden ids and the clean
captures are always enforced).  When such a row passes, an XPASS line asks
for the mark to be removed; it does not fail the check.

The expectations were checked against the captures themselves (tshark and
the truth files), not only against mxray's output: see docs/lab.md for what
each scenario does.

Prints one line per capture (`ok`, `FAIL`, `XFAIL`, `XPASS`), the coverage
of each finding kind, then `N passed, M failed (K expected-failing)`.  Exit
status: 0 all passed, 1 failures (or mxray failed), 77 a capture is missing
(pcaps/ not recorded).
"""
import os
import re
import sys

if __package__ in (None, ""):   # run as a file: tests/ holds the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from oracle import common  # noqa: E402

ROOT = common.REPO

# The tls-posture/ captures and the one kind each raises (check_tls_posture.py
# checks that it is the only TLS one).
TLS_POSTURE = {
    "expired": "MX-TLS-CERT-EXPIRED",
    "not-yet-valid": "MX-TLS-CERT-NOT-YET-VALID",
    "self-signed": "MX-TLS-CERT-SELF-SIGNED",
    "untrusted": "MX-TLS-CERT-UNTRUSTED",
    "name-mismatch": "MX-TLS-CERT-NAME-MISMATCH",
    "rsa1024": "MX-TLS-WEAK-KEY",
    "sha1": "MX-TLS-SHA1-SIGNATURE",
    "weak-cipher": "MX-TLS-WEAK-CIPHER",
}

# capture (pcaps/<name>.pcap), expected ids, forbidden ids, expected-failing reason
ROWS = [
    ("smtp/no-starttls",
     {"MX-TLS-NOT-OFFERED", "MX-AUTH-BEFORE-TLS", "MX-CLEARTEXT-CREDENTIALS"},
     {"MX-TLS-NOT-USED", "MX-STARTTLS-STRIPPED"}, None),
    ("smtp/starttls-stripped",             # session 2: 250-XXXXXXXA, AUTH PLAIN in clear
     {"MX-STARTTLS-MANGLED", "MX-CLEARTEXT-CREDENTIALS"},
     {"MX-TLS-NOT-OFFERED"}, None),
    ("smtp/starttls-removed",              # session 2: no STARTTLS line at all
     {"MX-STARTTLS-STRIPPED"},
     {"MX-TLS-NOT-OFFERED", "MX-STARTTLS-MANGLED"}, None),
    ("smtp/relay-open",                    # from 192.0.2.10: RCPT TO:<victim@example.net> 250, no AUTH
     {"MX-OPEN-RELAY"}, set(), None),
    ("smtp/open-relay",                    # the same from 127.0.0.1, the server's own host (issue 27)
     set(), {"MX-OPEN-RELAY"}, None),
    ("smtp/relay-closed",                  # 554 5.7.1 for 192.0.2.10; own host and AUTH relay
     set(), {"MX-OPEN-RELAY"}, None),
    ("smtp/relay-denied",                  # the same attempt refused 554 5.7.1
     set(), {"MX-OPEN-RELAY"}, None),
    ("smtp/multi-rcpt-partial-reject",     # one outside recipient refused 554 5.7.1
     set(), {"MX-OPEN-RELAY"}, None),
    ("smtp/starttls-injection",            # STARTTLS\r\nRSET\r\n; the handshake then succeeds
     {"MX-STARTTLS-INJECTION"}, {"MX-STARTTLS-FAILED"}, None),
    ("smtp/starttls-injection-server",     # 220 + fake EHLO reply in one segment; then
     {"MX-STARTTLS-INJECTION"}, {"MX-STARTTLS-FAILED"}, None),   # TLS 1.3 (ServerHello frame 12)
    # dovecot takes the injected line for the start of the handshake, which
    # fails (the truth's tls_handshake_error), and closes
    ("pop3/stls-injection",                # STLS\r\nCAPA\r\n
     {"MX-STARTTLS-INJECTION", "MX-STARTTLS-FAILED"}, set(), None),
    ("imap/starttls-injection",            # p1 STARTTLS\r\np2 CAPABILITY\r\n
     {"MX-STARTTLS-INJECTION", "MX-STARTTLS-FAILED"}, set(), None),
    ("smtp/tls10-after-starttls",          # ServerHello 0x0301 (frame 12), 0x0302 (frame 32)
     {"MX-TLS-OLD-VERSION"}, {"MX-STARTTLS-FAILED", "MX-TLS-NOT-USED"}, None),
    ("smtp/starttls-handshake-fails",      # 220, then a protocol_version alert (frame 12)
     {"MX-STARTTLS-FAILED"}, {"MX-TLS-OLD-VERSION"}, None),
    ("smtp/vrfy-enabled",                  # exim: VRFY 250, EXPN 250 (two addresses)
     {"MX-VRFY-ENABLED", "MX-EXPN-ENABLED"}, set(), None),
    ("smtp/vrfy-expn",                     # postfix: VRFY 252 (no real data), EXPN 500
     set(), {"MX-VRFY-ENABLED", "MX-EXPN-ENABLED"}, None),
    ("smtp/auth-cram-md5",                 # CRAM-MD5: no password in clear
     {"MX-WEAK-AUTH-MECHANISM"}, {"MX-CLEARTEXT-CREDENTIALS"}, None),
    ("pop3/apop",                          # APOP digest: no password in clear
     {"MX-WEAK-AUTH-MECHANISM"}, {"MX-CLEARTEXT-CREDENTIALS"}, None),
    ("smtp/starttls-refused-454",          # 2525: 454 4.7.0
     {"MX-STARTTLS-REFUSED"}, {"MX-TLS-NOT-OFFERED"}, None),
    ("imap/logindisabled-ignored",         # LOGINDISABLED announced, LOGIN answered OK
     {"MX-LOGINDISABLED-IGNORED", "MX-CLEARTEXT-CREDENTIALS"}, {"MX-AUTH-BEFORE-TLS"}, None),
    ("imap/logindisabled",                 # LOGIN refused NO [PRIVACYREQUIRED]: honoured
     set(), {"MX-LOGINDISABLED-IGNORED", "MX-AUTH-BEFORE-TLS"}, None),
    ("smtp/plain-delivery",                # STARTTLS offered, swaks goes on in clear
     {"MX-TLS-NOT-USED"}, {"MX-TLS-NOT-OFFERED"}, None),
    ("smtp/starttls-auth",                 # AUTH PLAIN inside TLS
     set(), {"MX-CLEARTEXT-CREDENTIALS", "MX-TLS-NOT-USED"}, None),
    ("pop3/no-stls",
     {"MX-TLS-NOT-OFFERED", "MX-CLEARTEXT-CREDENTIALS"}, {"MX-TLS-NOT-USED"}, None),
    ("imap/no-starttls",
     {"MX-TLS-NOT-OFFERED", "MX-CLEARTEXT-CREDENTIALS"}, {"MX-TLS-NOT-USED"}, None),
    ("tunnel/http-connect",                # Proxy-Authorization: Basic to tinyproxy
     {"MX-PROXY-CLEARTEXT-CREDENTIALS"}, set(), None),
    ("tunnel/socks5-auth",                 # RFC 1929 user and password to dante
     {"MX-PROXY-CLEARTEXT-CREDENTIALS"}, set(), None),
    ("tunnel/socks-noauth",                # no proxy credentials at all
     set(), {"MX-PROXY-CLEARTEXT-CREDENTIALS"}, None),
    # signs of attack (issue 27; their frames: tests/oracle/check_attacks.py)
    ("attacks/overlong-commands",          # VRFY 1107 bytes, EXPN 607, IMAP FETCH 1420, USER 707
     {"MX-OVERLONG-COMMAND"}, set(), None),
    ("attacks/executable-attachments",     # setup.exe, invoice.pdf.exe, update.js, PDF as photo.jpg
     {"MX-EXECUTABLE-ATTACHMENT", "MX-ATTACHMENT-TYPE-MISMATCH"}, set(), None),
    ("attacks/clean-attachments",          # report.pdf, logo.png: what they say
     set(), {"MX-EXECUTABLE-ATTACHMENT", "MX-ATTACHMENT-TYPE-MISMATCH", "MX-OVERLONG-COMMAND"}, None),
    ("attacks/smtp-smuggling-accepted",    # postfix smtpd_forbid_bare_newline = no: 3 accepted, bare CR refused
     {"MX-SMTP-SMUGGLING", "MX-SMTP-SMUGGLING-ATTEMPT"}, set(), None),
    ("attacks/smtp-smuggling-refused",     # normalize: every sequence read as data
     {"MX-SMTP-SMUGGLING-ATTEMPT"}, {"MX-SMTP-SMUGGLING"}, None),
    # smtp/attachment with a DATA segment lost before the capture point and sent
    # again 1 s later (scripts/lab/impair.py --kinds stall): the end of data's 250
    # takes 1002 ms against 4 ms for the other transaction's
    ("impaired/smtp-attachment-stall",
     {"MX-NETWORK-SLOW-TRANSFER"}, set(), None),
    ("impaired/smtp-attachment-duplicate",  # retransmissions, no delay: not slowed
     set(), {"MX-NETWORK-SLOW-TRANSFER"}, None),
] + [   # tls-posture/: one certificate (or suite) per kind, judged with --tls-ca NAME.ca.pem
    ("tls-posture/" + cap, {kind}, set(TLS_POSTURE.values()) - {kind}, None)
    for cap, kind in sorted(TLS_POSTURE.items())
]
# Strict servers, TLS required and used: no finding at all.
CLEAN = ["smtp/clean-submission", "pop3/clean", "imap/clean", "tls-posture/clean"]


def manual_ids():
    """The finding ids of docs/manual.md's table, in order."""
    path = os.path.join(ROOT, "docs", "manual.md")
    ids, inside = [], False
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("## "):
                inside = line.strip() == "## Findings (audit)"
                continue
            if inside and line.startswith("| `MX-"):
                first = line.split("|")[1]
                ids += [i for i in re.findall(r"`(MX-[A-Z0-9-]+)`", first) if i not in ids]
    return ids


def findings(mxray, pcap):
    """{id: [(server:port, frames of the first evidence)]} of one capture."""
    out = {}
    for r in common.mxray_records(mxray, "-q", "--json", "-", *common.tls_ca_args(pcap), pcap):
        if r.get("type") != "finding":
            continue
        ev = (r.get("evidence") or [{}])[0]
        out.setdefault(r["id"], []).append("%s %s:%s frames %s" % (
            r.get("proto"), r.get("server"), r.get("port"), ev.get("frames")))
    return out


def main():
    ap = common.parser(__doc__)
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="also print where each finding was raised")
    a = ap.parse_args()
    status = common.not_built(a.mxray)
    if status:
        return status
    rows = ROWS + [(c, set(), None, None) for c in CLEAN]
    missing = [c for c, *_ in rows if not os.path.isfile(os.path.join(ROOT, "pcaps", c + ".pcap"))]
    if missing:
        print("SKIP: capture(s) missing: %s (record them with sudo scripts/lab/run-all.sh)"
              % ", ".join("pcaps/%s.pcap" % c for c in missing))
        return common.SKIP
    documented = manual_ids()
    if not documented:
        print("FAIL docs/manual.md: no finding id in the table of \"Findings (audit)\"")
        return 1

    passed = failed = xfailed = 0
    covers = {i: [] for i in documented}       # id -> [(capture, triggered, xfail)]
    for cap, want, forbid, xfail in rows:
        try:
            got = findings(a.mxray, os.path.join(ROOT, "pcaps", cap + ".pcap"))
        except (RuntimeError, ValueError) as e:
            print("FAIL  %s: %s" % (cap, e))
            failed += 1
            continue
        problems, pending = [], []
        if forbid is None:                      # a clean capture
            if got:
                problems.append("a clean capture, but mxray raised %s" % ", ".join(
                    "%s (%s)" % (i, "; ".join(got[i])) for i in sorted(got)))
        else:
            for i in sorted(want - set(got)):
                (pending if xfail else problems).append("expected %s, not raised" % i)
            for i in sorted(forbid & set(got)):
                problems.append("forbidden %s raised (%s)" % (i, "; ".join(got[i])))
            for i in want:
                covers.setdefault(i, []).append((cap, i in got, xfail))
        for i in sorted(set(got) - set(documented)):
            problems.append("%s is not in docs/manual.md's table of findings" % i)
        raised = ", ".join(sorted(got)) or "no finding"
        if problems:
            failed += 1
            print("FAIL  %s" % cap)
            for p in problems + pending:
                print("      " + p)
            print("      raised: %s" % raised)
        elif pending:
            xfailed += 1
            print("XFAIL %s: %s\n      expected-failing: %s\n      raised: %s"
                  % (cap, "; ".join(pending), xfail, raised))
        else:
            passed += 1
            if xfail:
                print("XPASS %s: every expected finding is raised now; remove the expected-failing"
                      " mark of this row in tests/oracle/check_findings.py" % cap)
            print("ok    %s: %s" % (cap, raised))
            if a.verbose:
                for i in sorted(got):
                    print("      %s: %s" % (i, "; ".join(got[i])))

    print("coverage of the finding kinds of docs/manual.md:")
    uncovered = 0
    for i in documented:
        cs = covers.get(i, [])
        if not cs:
            uncovered += 1
            print("  FAIL  %-26s expected by no capture: add a lab scenario and a row" % i)
            continue
        trig = [c for c, t, _ in cs if t]
        if trig:
            print("  ok    %-26s %s" % (i, ", ".join(trig)))
        elif all(x for _, _, x in cs):
            print("  XFAIL %-26s %s (expected-failing: not raised yet)" % (
                i, ", ".join(c for c, _, _ in cs)))
        else:   # the rows have failed above already
            print("  FAIL  %-26s not raised by %s" % (i, ", ".join(c for c, _, _ in cs)))
    for i in sorted(set(covers) - set(documented)):
        uncovered += 1
        print("  FAIL  %-26s expected by %s but not in docs/manual.md's table" % (
            i, ", ".join(c for c, _, _ in covers[i])))
    failed += uncovered
    return common.summary(passed, failed, " (%d expected-failing)" % xfailed)


if __name__ == "__main__":
    sys.exit(main())
