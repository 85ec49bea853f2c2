#!/usr/bin/env python3
"""cut_texts.py - no silent caps (issue 26): every capped text says it was cut and how long it was.

Crafts a capture set (tests/pcapgen.py) with one over-long text of each kind
mxray caps - an SMTP reply text, HELO name, MAIL and RCPT addresses and
parameters, a RCPT reply, a Subject, Message-ID and Received clause, an
attachment's file name and a MIME part's type, charset, encoding and
disposition, an IMAP command argument (the 1,384-byte FETCH line of
the issue), a mailbox name, an untagged line, a login name; a POP3 reply
and user name; a SASL identity; a TLS SNI and a certificate's subject and
issuer - and one session with none,
then checks with mxray's JSON that:
  - each cut text's record has "<key>_len" equal to the text's length on the
    wire and "<key>_truncated": true, the text itself shorter;
  - a session with no over-long text has no "_truncated" key at all;
and that the text timeline and the HTML report show "…[cut, N bytes]".

  cut_texts.py MXRAY [--write DIR]   (--write: keep the captures in DIR)
"""
import base64
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pcapgen  # noqa: E402


def smtp_session():
    """One SMTP session with every SMTP and message text over its cap; returns (turns, expected)."""
    greet = "mx.example ESMTP " + "g" * 700  # reply text: 256
    helo = "client." + "h" * 300 + ".example"  # HELO name: 256
    mfrom = "<" + "f" * 400 + "@example.org>"  # MAIL FROM path: 256
    mparams = "SIZE=100 " + "X-P=" + "p" * 300  # MAIL parameters: 256
    rcpt = "<" + "r" * 300 + "@example.net>"  # RCPT path: 256
    rtext = "5.1.1 mailbox unknown " + "u" * 400  # RCPT reply text: 256
    subject = "S" * 900  # header value: 512
    msgid = "<" + "m" * 600 + "@example.org>"
    by = "relay." + "b" * 300 + ".example"  # Received clause: 256
    fname = "n" * 300 + ".pdf"  # file name: 256
    ctype = "application/x-" + "c" * 200  # MIME part texts: 80, 40, 32, 24
    charset = "x-" + "q" * 100
    enc = "x-" + "e" * 60
    disp = "inline-" + "d" * 50
    body = (
        f"Received: from a.example by {by} with ESMTP id 1; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
        f"From: a@example.org\r\nTo: b@example.net\r\nSubject: {subject}\r\nMessage-ID: {msgid}\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="BB"\r\n\r\n'
        "--BB\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        f'--BB\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="{fname}"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n"
        f"--BB\r\nContent-Type: {ctype}; charset={charset}\r\nContent-Transfer-Encoding: {enc}\r\n"
        f"Content-Disposition: {disp}\r\n\r\nxyz\r\n--BB--\r\n"
    )
    turns = [
        ["s", f"220 {greet}\r\n"],
        ["c", f"EHLO {helo}\r\n"],
        ["s", "250-mx.example\r\n250 PIPELINING\r\n"],
        ["c", f"MAIL FROM:{mfrom} {mparams}\r\n"],
        ["s", "250 2.1.0 ok\r\n"],
        ["c", f"RCPT TO:{rcpt}\r\n"],
        ["s", f"550 {rtext}\r\n"],
        ["c", "RCPT TO:<b@example.net>\r\n"],
        ["s", "250 2.1.5 ok\r\n"],
        ["c", "DATA\r\n"],
        ["s", "354 go\r\n"],
        ["c", body + ".\r\n"],
        ["s", "250 2.0.0 queued\r\n"],
        ["c", "QUIT\r\n"],
        ["s", "221 bye\r\n"],
    ]
    n = len
    expected = [
        # (record type, a predicate on the record, key path, wire length)
        ("smtp.reply", lambda r: r.get("code") == 220, "text", n(greet)),
        ("smtp.reply", lambda r: r.get("code") == 550, "text", n(rtext) - 6),  # after the enhanced code
        ("smtp.session", None, "helo", n(helo)),
        ("smtp.session", None, "greeting.text", n(greet)),
        ("smtp.transaction", None, "helo", n(helo)),
        ("smtp.transaction", None, "mailfrom", n(mfrom) - 2),  # without <>
        ("smtp.transaction", None, "mail_params", n(mparams)),
        ("smtp.transaction", None, "recipients.0.addr", n(rcpt) - 2),
        ("smtp.transaction", None, "recipients.0.text", n(rtext) - 6),
        ("smtp.transaction", None, "message.subject", n(subject)),
        ("smtp.transaction", None, "message.message_id", n(msgid)),
        ("message", None, "headers.subject", n(subject)),
        ("message", None, "headers.received.0.by", n(by)),
        ("message", None, "parts.2.filename", n(fname)),
        ("message", None, "parts.3.content_type", n(ctype)),
        ("message", None, "parts.3.charset", n(charset)),
        ("message", None, "parts.3.encoding", n(enc)),
        ("message", None, "parts.3.disposition", n(disp)),
    ]
    return turns, expected


def imap_session():
    fetch_arg = "1:* (" + " ".join(f"BODY.PEEK[HEADER.FIELDS (X-F{i:04d})]" for i in range(40)) + ")"
    fetch_arg = fetch_arg[: 1384 - len("a3 FETCH ")]
    line = "a3 FETCH " + fetch_arg
    assert len(line) == 1384
    mbox = "INBOX." + "x" * 300
    user = "u" * 300
    flags = "* 1 FETCH (FLAGS (" + " ".join(f"$F{i:03d}" for i in range(150)) + "))"  # shown: 512
    turns = [
        ["s", "* OK IMAP ready\r\n"],
        ["c", f'a1 LOGIN "{user}" "secret"\r\n'],
        ["s", "a1 OK done\r\n"],
        ["c", f'a2 SELECT "{mbox}"\r\n'],
        ["s", '* 3 EXISTS\r\na2 OK [READ-WRITE] selected\r\n'],
        ["c", line + "\r\n"],
        ["s", flags + "\r\na3 OK done\r\n"],
        ["c", "a4 LOGOUT\r\n"],
        ["s", "* BYE\r\na4 OK bye\r\n"],
    ]
    expected = [
        ("imap.command", lambda r: r.get("command") == "FETCH", "arg", len(fetch_arg)),
        ("imap.command", lambda r: r.get("command") == "SELECT", "mailbox", len(mbox)),
        ("imap.untagged", lambda r: r.get("kind") == "FETCH", "text", len(flags)),
        ("imap.response", lambda r: r.get("tag") == "a2", "selected.name", len(mbox)),
        ("imap.session", None, "auth.0.user", len(user)),
        ("imap.auth", None, "user", len(user)),
        ("imap.session", None, "mailboxes.0.name", len(mbox)),
    ]
    return turns, expected


def pop3_session():
    user = "p" * 300
    err = "-ERR [AUTH] " + "e" * 600
    authz = "z" * 300
    plain = base64.b64encode(f"{authz}\0bob\0pw".encode()).decode()
    turns = [
        ["s", "+OK POP3 ready\r\n"],
        ["c", f"USER {user}\r\n"],
        ["s", "+OK\r\n"],
        ["c", "PASS pw\r\n"],
        ["s", err + "\r\n"],
        ["c", f"AUTH PLAIN {plain}\r\n"],
        ["s", "-ERR no\r\n"],
        ["c", "QUIT\r\n"],
        ["s", "+OK bye\r\n"],
    ]
    expected = [
        ("pop3.response", lambda r: r.get("resp_code") == "AUTH", "text", 600),
        ("pop3.auth", lambda r: r.get("mechanism") == "USER/PASS", "user", len(user)),
        ("pop3.auth", lambda r: r.get("mechanism") == "PLAIN", "authzid", len(authz)),
        ("pop3.session", None, "auth.0.user", len(user)),
        ("pop3.session", None, "auth.1.authzid", len(authz)),
        ("pop3.session", None, "failures.0.text", 600),
    ]
    return turns, expected


def tls_session():
    """Implicit TLS (port 993): a ClientHello with a 1,500-byte SNI, a ServerHello and a
    certificate whose subject and issuer, as RFC 4514 text, run past 1,024 bytes."""
    import datetime
    import struct
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"unit{i:02d}-" + "o" * 52) for i in range(24)]
                     + [x509.NameAttribute(NameOID.COMMON_NAME, "mail.example")])
    key = ec.generate_private_key(ec.SECP256R1())
    t0 = datetime.datetime(2024, 1, 1)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(t0).not_valid_after(t0 + datetime.timedelta(days=365))
            .sign(key, hashes.SHA256()))
    der = cert.public_bytes(__import__("cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]).Encoding.DER)
    sni = ("s" * 60 + ".") * 24 + "example"

    def u24(n):
        return struct.pack("!I", n)[1:]

    def hs(t, body):
        return bytes([t]) + u24(len(body)) + body

    def rec(body):
        return b"\x16\x03\x03" + struct.pack("!H", len(body)) + body

    host = sni.encode()
    sni_ext = struct.pack("!HH", 0, len(host) + 5) + struct.pack("!HBH", len(host) + 3, 0, len(host)) + host
    ch = b"\x03\x03" + b"\x01" * 32 + b"\x00" + struct.pack("!H", 2) + b"\xc0\x2f" + b"\x01\x00"
    ch += struct.pack("!H", len(sni_ext)) + sni_ext
    sh = b"\x03\x03" + b"\x02" * 32 + b"\x00" + b"\xc0\x2f" + b"\x00"
    certs = u24(len(der)) + der
    crt = u24(len(certs)) + certs
    turns = [["c", rec(hs(1, ch)).decode("latin-1"), "latin-1"],
             ["s", (rec(hs(2, sh)) + rec(hs(11, crt))).decode("latin-1"), "latin-1"]]
    rfc = name.rfc4514_string()
    expected = [
        ("tls", None, "sni", len(host)),
        ("tls", None, "certificate.subject", len(rfc)),
        ("tls", None, "certificate.issuer", len(rfc)),
    ]
    return turns, expected


def plain_session():
    return [
        ["s", "220 mx.example ESMTP\r\n"],
        ["c", "EHLO c.example\r\n"],
        ["s", "250-mx.example\r\n250 8BITMIME\r\n"],
        ["c", "MAIL FROM:<a@example.org>\r\n"],
        ["s", "250 ok\r\n"],
        ["c", "RCPT TO:<b@example.net>\r\n"],
        ["s", "250 ok\r\n"],
        ["c", "DATA\r\n"],
        ["s", "354 go\r\n"],
        ["c", "Subject: short\r\nMessage-ID: <1@example.org>\r\n\r\nhi\r\n.\r\n"],
        ["s", "250 queued\r\n"],
        ["c", "QUIT\r\n"],
        ["s", "221 bye\r\n"],
    ]


def get(rec, path):
    cur = rec
    for p in path.split("."):
        if isinstance(cur, list):
            i = int(p)
            cur = cur[i] if i < len(cur) else None
        elif isinstance(cur, dict):
            cur = cur.get(p)
        else:
            return None
    return cur


def parent_and_key(rec, path):
    parts = path.split(".")
    return get(rec, ".".join(parts[:-1])) if len(parts) > 1 else rec, parts[-1]


def truncated_keys(node, out, path=""):
    if isinstance(node, dict):
        for k, v in node.items():
            if k.endswith("_truncated"):
                out.append(path + k)
            truncated_keys(v, out, path + k + ".")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            truncated_keys(v, out, path + str(i) + ".")


def run(mxray, *args):
    p = subprocess.run([mxray, "-q", "--no-progress", *args], capture_output=True)
    if p.returncode not in (0, 1):
        sys.exit(f"cut_texts: mxray {' '.join(args)} exited {p.returncode}: {p.stderr.decode(errors='replace')}")
    return p.stdout.decode("utf-8")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    mxray = sys.argv[1]
    keep = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--write" else None
    fails = []
    with tempfile.TemporaryDirectory() as tmp:
        outdir = keep or tmp
        os.makedirs(outdir, exist_ok=True)
        cases = {"smtp": (25, smtp_session), "imap": (143, imap_session), "pop3": (110, pop3_session),
                 "tls": (993, tls_session)}
        checked = 0
        for name, (port, make) in cases.items():
            turns, expected = make()
            pcap = os.path.join(outdir, f"cut-{name}.pcap")
            pcapgen.sessions_to_pcap([{"port": port, "turns": turns}], pcap)
            recs = [json.loads(x) for x in run(mxray, "--json", "-", pcap).splitlines() if x]
            for typ, pred, path, wire in expected:
                cands = [r for r in recs if r["type"] == typ and (pred is None or pred(r))]
                if not cands:
                    fails.append(f"{name}: no {typ} record for {path}")
                    continue
                r = cands[0]
                parent, key = parent_and_key(r, path)
                if not isinstance(parent, dict) or key not in parent:
                    fails.append(f"{name}: {typ} has no {path}: {json.dumps(r)[:300]}")
                    continue
                shown = parent[key].encode()
                got_len, got_cut = parent.get(key + "_len"), parent.get(key + "_truncated")
                if got_len != wire or got_cut is not True or len(shown) >= wire:
                    fails.append(
                        f"{name}: {typ}.{path}: want {key}_len {wire} and {key}_truncated, "
                        f"got {key}_len {got_len}, {key}_truncated {got_cut}, {len(shown)} bytes shown"
                    )
                checked += 1
            # Every truncated key the records carry is one the case expects.
            want = {p.split(".")[-1] for _, _, p, _ in expected}
            for r in recs:
                found = []
                truncated_keys(r, found)
                for k in found:
                    if k.split(".")[-1][: -len("_truncated")] not in want:
                        fails.append(f"{name}: unexpected {k} in {r['type']}")
            # The timeline and the HTML report show the cut.
            text = run(mxray, pcap)
            if name == "imap" and "\u2026[cut, 1375 bytes]" not in text:
                fails.append("imap: the timeline does not mark the FETCH line cut at 1375 bytes")
            if name == "smtp" and "\u2026[cut, 717 bytes]" not in text:
                fails.append("smtp: the timeline does not mark the greeting cut at 717 bytes")
            html = os.path.join(outdir, f"cut-{name}.html")
            run(mxray, "--html", html, pcap)
            with open(html, encoding="utf-8") as f:
                h = f.read()
            if not re.search("\u2026\\[([a-z_]+ )?cut, [0-9]+ bytes\\]", h):
                fails.append(f"{name}: the HTML report shows no cut mark")
        # A session with no long text: no such key anywhere.
        pcap = os.path.join(outdir, "cut-none.pcap")
        pcapgen.sessions_to_pcap([{"port": 25, "turns": plain_session()}], pcap)
        for line in run(mxray, "--json", "-", pcap).splitlines():
            found = []
            truncated_keys(json.loads(line), found)
            if found:
                fails.append(f"none: uncut texts carry {found}")
        if "\u2026[cut" in run(mxray, pcap):
            fails.append("none: the timeline marks a cut")
    for f in fails:
        print("FAIL", f)
    print(f"cut_texts: {checked} cut texts checked, {len(fails)} failures")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
