#!/usr/bin/env python3
"""adversarial - writes hostile captures for mxray (issue 12, "Adversarial captures").

usage: scripts/adversarial.py OUT_DIR [--scale F] [--only NAME[,NAME...]] [--list]

Writes one classic pcap (Ethernet/IPv4/TCP, checksums correct) per case into
OUT_DIR, and OUT_DIR/cases.json describing them. Deterministic: the same scale
gives the same bytes. Captures are streamed to disk as they are made (a 1 GiB
case needs no 1 GiB of memory). At --scale 1 (the default) each case has the
size the issue names; tests/adversarial.sh uses a small scale. Every count is
scaled and rounded, with a floor that keeps each case hostile at tiny scales.

cases.json: {"scale": F, "cases": [{"name", "file", "what", "param" (the
scaled quantity: name, value), "anomalies" (the names mxray raises for it, as
in "anomaly" records, flow records' "anomalies" and the summary's
"anomalies"; every one is expected), "finding" (set when mxray raises no
anomaly for the case today: the issue asks for one), "args" (extra mxray
options the case needs), "rss_cap_mib" (the case's own cap on peak RSS, or
null: the harness's), "html_expect" (when not empty: the harness writes the
HTML report too, with --html, and each of these strings must appear in it),
"size" (bytes of the pcap), "extract" (null, or the case runs with --extract
into a fresh empty folder, and {"files": the number of files it must hold
after the run, or null; "max_bytes": the bytes it may hold, or null})}]}
"""
import base64
import json
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from pcapgen import ACK, PSH, SYN, PcapWriter, TcpConn  # noqa: E402

T0 = 1_700_000_000 * 1_000_000
CLI, SRV = [10, 0, 0, 1], [10, 0, 0, 2]
MSS = 1460
MIB = 1 << 20


def scaled(full, scale, floor):
    return max(floor, int(round(full * scale)))


def conn(w, port, clock, step=10, cport=40000):
    return TcpConn(w, CLI, SRV, cport, port, clock, step=step)


def say(c, c2s, text):
    c.send(c2s, text, mss=MSS, ack_every=16)


SMTP_HELLO = ((False, b"220 mx.example.net ESMTP adversarial\r\n"), (True, b"EHLO client.example.org\r\n"),
              (False, b"250-mx.example.net\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n"))


def smtp_until_data(c, rcpts=(b"b@example.net",)):
    for c2s, text in SMTP_HELLO:
        say(c, c2s, text)
    say(c, True, b"MAIL FROM:<a@example.org>\r\n")
    say(c, False, b"250 2.1.0 Ok\r\n")
    for r in rcpts:
        say(c, True, b"RCPT TO:<" + r + b">\r\n")
        say(c, False, b"250 2.1.5 Ok\r\n")
    say(c, True, b"DATA\r\n")
    say(c, False, b"354 End data with <CR><LF>.<CR><LF>\r\n")


def smtp_after_data(c):
    say(c, False, b"250 2.0.0 Ok: queued as 1A2B3C\r\n")
    say(c, True, b"QUIT\r\n")
    say(c, False, b"221 2.0.0 Bye\r\n")
    c.close()


HEAD = (b"From: a@example.org\r\nTo: b@example.net\r\nSubject: adversarial\r\n"
        b"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <adv@example.org>\r\nMIME-Version: 1.0\r\n")


def repeat(block, total):
    """Chunks of `block` (cut at the end) adding up to `total` bytes."""
    full, rest = divmod(total, len(block))
    for _ in range(full):
        yield block
    if rest:
        yield block[:rest]


# ---- the cases -----------------------------------------------------------------------------
# Each maker writes the capture at `path` for quantity `n` and returns nothing.

def long_line(path, n):
    """SMTP: after the greeting, a command line (MAIL FROM:<AAA...) of n bytes that never
    ends (no LF), the server ACKing every 32 segments; then FIN."""
    with PcapWriter(path) as w:
        c = conn(w, 25, [T0], step=5)
        c.handshake()
        for c2s, text in SMTP_HELLO[:1]:
            say(c, c2s, text)
        block = b"MAIL FROM:<" + b"A" * (MIB - 11)
        c.send_stream(True, repeat(block, n), mss=MSS, ack_every=32)
        c.close()


def half_open(path, n):
    """n SYNs to port 25 from n distinct client ends, none answered, within seconds."""
    clock = [T0]
    with PcapWriter(path) as w:
        for i in range(n):
            cli = [10, 1 + (i >> 16) % 200, (i >> 8) & 255, i & 255]
            c = TcpConn(w, cli, SRV, 1024 + i % 60000, 25, clock, step=20, cseq=(i * 2654435761) & 0xFFFFFFFF)
            c.seg(True, SYN)


class PsWriter:
    """A PcapWriter with one connection: client 10.0.0.1:40000, server 10.0.0.2:port."""

    def __init__(self, path, port=25, step=10):
        self.w = PcapWriter(path)
        self.c = conn(self.w, port, [T0], step=step)

    def __enter__(self):
        return self.w, self.c

    def __exit__(self, *exc):
        self.w.close()


def ooo_segments(path, n):
    """SMTP DATA of n 4-byte segments, each block of 8192 sent in reverse order (more
    than the 4096 segments reassembly holds per direction), the server silent until
    the end: out-of-order data over the caps, and late segments for bytes already
    declared lost."""
    block = 8192
    with PsWriter(path) as (w, c):
        c.handshake()
        smtp_until_data(c)
        body = HEAD + b"\r\n"
        say(c, True, body)
        line = b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ.-\r\n"  # 68 bytes
        base = c.nxt[0]
        total = 4 * n
        for b0 in range(0, n, block):
            for k in range(min(block, n - b0) - 1, -1, -1):
                off = 4 * (b0 + k)
                j = off % len(line)
                piece = (line[j:] + line)[:4]
                c.seg(True, PSH | ACK, piece, seq=base + off, advance=False)
        c.nxt[0] = (base + total) & 0xFFFFFFFF
        c.seg(False, ACK)
        say(c, True, b"\r\n.\r\n")
        smtp_after_data(c)


def imap_literal(path, n, number):
    """IMAP: an APPEND whose literal announces `number` octets, then n bytes of lines as
    if they were its contents; the server's FETCH answer announces the same, then n
    bytes likewise."""
    lines = b"".join(b"line %06d of the literal that is not one ...............................\r\n" % i
                     for i in range(256))
    with PsWriter(path, port=143) as (w, c):
        c.handshake()
        say(c, False, b"* OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+] ready\r\n")
        say(c, True, b"a1 LOGIN user secret\r\n")
        say(c, False, b"a1 OK LOGIN completed\r\n")
        say(c, True, b"a2 APPEND INBOX {%d}\r\n" % number)
        say(c, False, b"+ Ready for literal data\r\n")
        c.send_stream(True, repeat(lines, n // 2), mss=MSS, ack_every=16)
        say(c, True, b"\r\n")
        say(c, False, b"a2 OK APPEND completed\r\n")
        say(c, True, b"a3 SELECT INBOX\r\n")
        say(c, False, b"* 1 EXISTS\r\na3 OK [READ-WRITE] SELECT completed\r\n")
        say(c, True, b"a4 FETCH 1 BODY[]\r\n")
        say(c, False, b"* 1 FETCH (BODY[] {%d}\r\n" % number)
        c.send_stream(False, repeat(lines, n - n // 2), mss=MSS, ack_every=16)
        say(c, False, b")\r\na4 OK FETCH completed\r\n")
        say(c, True, b"a5 LOGOUT\r\n")
        say(c, False, b"* BYE\r\na5 OK LOGOUT completed\r\n")
        c.close()


def mime_nested(path, n):
    """SMTP DATA: a multipart nested n deep (each level a multipart/mixed in the one
    above), a text part innermost, every close delimiter in order."""
    def body():
        yield HEAD
        buf = []
        for i in range(n):
            buf.append(b"Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n" % (i, i))
            if len(buf) >= 1000:
                yield b"".join(buf)
                buf = []
        buf.append(b"Content-Type: text/plain\r\n\r\nthe innermost part\r\n")
        for i in range(n - 1, -1, -1):
            buf.append(b"--b%d--\r\n" % i)
            if len(buf) >= 1000:
                yield b"".join(buf)
                buf = []
        yield b"".join(buf)
        yield b".\r\n"
    with PsWriter(path) as (w, c):
        c.handshake()
        smtp_until_data(c)
        c.send_stream(True, body(), mss=MSS, ack_every=16)
        smtp_after_data(c)


def b64_block():
    raw = random.Random(63).randbytes(57 * 1024)  # 57 bytes make one 76-character line
    enc = base64.b64encode(raw)
    return enc, b"".join(enc[i:i + 76] + b"\r\n" for i in range(0, len(enc), 76))


def base64_attachment(path, n, one_line=False):
    """SMTP DATA: one attachment of n bytes of base64 (76-character lines; or one line
    without a break when one_line)."""
    enc, lines = b64_block()
    block = enc if one_line else lines

    def body():
        yield HEAD + b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\r\nsee the attachment\r\n"
        yield (b"--b\r\nContent-Type: application/octet-stream; name=\"big.bin\"\r\n"
               b"Content-Disposition: attachment; filename=\"big.bin\"\r\n"
               b"Content-Transfer-Encoding: base64\r\n\r\n")
        yield from repeat(block, max(4, n - n % 4) if one_line else max(78, n - n % 78))  # whole quanta / lines
        yield b"\r\n--b--\r\n.\r\n"
    with PsWriter(path, step=2) as (w, c):
        c.handshake()
        smtp_until_data(c)
        c.send_stream(True, body(), mss=MSS, ack_every=16)
        smtp_after_data(c)


def rcpt_flood(path, n):
    """SMTP: one transaction with n RCPT commands, pipelined 100 at a time, each
    accepted; then a short message."""
    with PsWriter(path, step=5) as (w, c):
        c.handshake()
        for c2s, text in SMTP_HELLO:
            say(c, c2s, text)
        say(c, True, b"MAIL FROM:<a@example.org>\r\n")
        say(c, False, b"250 2.1.0 Ok\r\n")
        ok = b"250 2.1.5 Ok\r\n"
        for b0 in range(0, n, 100):
            k = min(100, n - b0)
            say(c, True, b"".join(b"RCPT TO:<u%07d@example.net>\r\n" % (b0 + i) for i in range(k)))
            say(c, False, ok * k)
        say(c, True, b"DATA\r\n")
        say(c, False, b"354 go ahead\r\n")
        say(c, True, HEAD + b"\r\nhello\r\n.\r\n")
        smtp_after_data(c)


def syn_flood(path, n):
    """n SYNs to 10.0.0.2:25 from random sources and random source ports (a 4-tuple
    may come again, with another sequence number), 2 us apart, never answered."""
    rnd = random.Random(1)
    clock = [T0]
    with PcapWriter(path) as w:
        for _ in range(n):
            cli = [198, 18 + rnd.getrandbits(1), rnd.getrandbits(8), rnd.getrandbits(8)]
            c = TcpConn(w, cli, SRV, rnd.randrange(1024, 65536), 25, clock, step=2, cseq=rnd.getrandbits(32))
            c.seg(True, SYN)


def ack_jumps(path, n):
    """SMTP: n times, the client sends NOOP and the server ACKs it plus 1 MiB to
    256 MiB that never appear; the client's next bytes come after the acknowledged
    ones (the capture lost them), then the server replies."""
    rnd = random.Random(7)
    with PsWriter(path, step=5) as (w, c):
        c.handshake()
        for c2s, text in SMTP_HELLO:
            say(c, c2s, text)
        for _ in range(n):
            c.seg(True, PSH | ACK, b"NOOP\r\n")
            jump = rnd.randrange(1 << 20, 1 << 28)
            c.nxt[0] = (c.nxt[0] + jump) & 0xFFFFFFFF
            c.seg(False, PSH | ACK, b"250 2.0.0 Ok\r\n")
        say(c, True, b"QUIT\r\n")
        say(c, False, b"221 2.0.0 Bye\r\n")
        c.close()


def parts_in_parallel(path, n, parts=2000):
    """n SMTP connections open at once, each in DATA with a multipart of `parts`
    small parts, sent a slice at a time in turn, so that every message parser
    holds its part descriptions until the end; then each message ends."""
    clock = [T0]
    part = b"--b\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nx\r\n"
    slices = 8
    with PcapWriter(path) as w:
        cs = []
        for i in range(n):
            cli = [10, 2 + (i >> 16) % 200, (i >> 8) & 255, i & 255]
            c = TcpConn(w, cli, SRV, 1024 + i % 60000, 25, clock, step=5)
            c.handshake()
            smtp_until_data(c)
            say(c, True, HEAD + b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n")
            cs.append(c)
        for k in range(slices):
            for c in cs:
                say(c, True, part * (parts // slices))
        for c in cs:
            say(c, True, b"--b--\r\n.\r\n")
            smtp_after_data(c)


def smtp_messages(c, messages, batch=100):
    """SMTP with PIPELINING (RFC 2920): the transactions of `messages` (bodies, dot-stuffed,
    without the final dot), `batch` at a time: commands, replies, bodies."""
    for b0 in range(0, len(messages), batch):
        group = messages[b0:b0 + batch]
        for body in group:
            say(c, True, b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n")
            say(c, False, b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n")
            say(c, True, body + b".\r\n")
            say(c, False, b"250 2.0.0 Ok: queued\r\n")


def many_messages(path, n):
    """POP3 (port 110, pipelined, RFC 2449 §6.6): one flow carrying n small messages
    (RETR 1 to RETR n, each answered), for --extract: every message is a .eml file
    of the same flow."""
    body = b"Subject: m\r\n\r\nhi\r\n"
    with PsWriter(path, port=110, step=2) as (w, c):
        c.handshake()
        say(c, False, b"+OK POP3 ready\r\n")
        say(c, True, b"USER u\r\n")
        say(c, False, b"+OK\r\n")
        say(c, True, b"PASS p\r\n")
        say(c, False, b"+OK\r\n")
        for b0 in range(0, n, 200):  # POP3_MAX_PENDING is 256
            k = min(200, n - b0)
            say(c, True, b"".join(b"RETR %d\r\n" % (b0 + i + 1) for i in range(k)))
            say(c, False, b"".join(b"+OK %d octets\r\n" % len(body) + body + b".\r\n" for i in range(k)))
        say(c, True, b"QUIT\r\n")
        say(c, False, b"+OK bye\r\n")
        c.close()


def same_name_attachments(path, n, per_message=5000):
    """SMTP (port 25): n attachments all named "same name.txt", per_message to a message
    (the message parser describes 10,000 parts), for --extract: each is a file of its own."""
    part = (b"--b\r\nContent-Type: text/plain; name=\"same name.txt\"\r\n"
            b"Content-Disposition: attachment; filename=\"same name.txt\"\r\n\r\nx\r\n")
    bodies = []
    for b0 in range(0, n, per_message):
        k = min(per_message, n - b0)
        bodies.append(HEAD + b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n" + part * k + b"--b--\r\n")
    with PsWriter(path, step=2) as (w, c):
        c.handshake()
        for c2s, text in SMTP_HELLO:
            say(c, c2s, text)
        smtp_messages(c, bodies, batch=1)
        say(c, True, b"QUIT\r\n")
        say(c, False, b"221 2.0.0 Bye\r\n")
        c.close()


def imap_deflate_bomb(path, n):
    """IMAP (port 143) with COMPRESS=DEFLATE (RFC 4978): two FETCH answers of n/2 bytes
    each, a message with a base64 attachment of zeros, which deflate squeezes about
    1000 to 1; for --extract with small caps."""
    import zlib
    half = n // 2
    head = (HEAD + b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n"
            b"Content-Type: application/octet-stream; name=\"zeros.bin\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n")
    tail = b"\r\n--b--\r\n"
    line = b"A" * 76 + b"\r\n"
    with PsWriter(path, port=143) as (w, c):
        c.handshake()
        say(c, False, b"* OK [CAPABILITY IMAP4rev1 COMPRESS=DEFLATE] ready\r\n")
        say(c, True, b"a1 LOGIN user secret\r\n")
        say(c, False, b"a1 OK LOGIN completed\r\n")
        say(c, True, b"a2 COMPRESS DEFLATE\r\n")
        say(c, False, b"a2 OK DEFLATE active\r\n")
        zc = zlib.compressobj(9, zlib.DEFLATED, -15)
        zs = zlib.compressobj(9, zlib.DEFLATED, -15)

        def client(text):
            say(c, True, zc.compress(text) + zc.flush(zlib.Z_SYNC_FLUSH))

        def server():
            yield zs.compress(b"* 1 EXISTS\r\na3 OK [READ-WRITE] SELECT completed\r\n")
            yield zs.flush(zlib.Z_SYNC_FLUSH)
        client(b"a3 SELECT INBOX\r\n")
        c.send_stream(False, server(), mss=MSS, ack_every=16)
        for k in (1, 2):
            client(b"a%d FETCH %d BODY[]\r\n" % (3 + k, k))
            body = max(len(line), half - len(head) - len(tail))
            body -= body % len(line)
            size = len(head) + body + len(tail)

            def answer():
                yield zs.compress(b"* %d FETCH (BODY[] {%d}\r\n" % (k, size) + head)
                for chunk in repeat(line * 4096, body):
                    out = zs.compress(chunk)
                    if out:
                        yield out
                yield zs.compress(tail + b")\r\na%d OK FETCH completed\r\n" % (3 + k))
                yield zs.flush(zlib.Z_SYNC_FLUSH)
            c.send_stream(False, answer(), mss=MSS, ack_every=16)
        client(b"a6 LOGOUT\r\n")
        c.send_stream(False, iter([zs.compress(b"* BYE\r\na6 OK LOGOUT completed\r\n"), zs.flush(zlib.Z_SYNC_FLUSH)]),
                      mss=MSS, ack_every=16)
        c.close()


def servers_many(path, n):
    """n short SMTP sessions (greeting, QUIT, close), each to a server address of its
    own: the audit keeps 4,096 servers and counts the rest, looking each one up."""
    clock = [T0]
    with PcapWriter(path) as w:
        for i in range(n):
            srv = [10, 64 + (i >> 16) % 128, (i >> 8) & 255, i & 255]
            c = TcpConn(w, CLI, srv, 1024 + i % 60000, 25, clock, step=5)
            c.handshake()
            say(c, False, b"220 mx%d.example.net ESMTP\r\n" % i)
def open_sessions_report(path, n, rounds=18, rcpts=50):
    """n SMTP sessions open at once, each a long dialogue (rounds of EHLO with a 31-line
    reply, MAIL, rcpts pipelined RCPTs with long addresses echoed in each reply, DATA and a
    5 KB message), played a round at a time across all sessions in turn: every session is
    open until the last round, and each brings the HTML report about 1,900 rows and 500 KB
    of text, which it held for all of them until their ends (issue 24)."""
    clock = [T0]
    ehlo = b"".join(b"250-mx.example.net extension %02d with a long description of what it offers here\r\n" % i
                    for i in range(30)) + b"250 8BITMIME\r\n"
    body = HEAD + b"\r\n" + b"".join(b"line %04d of the message body, some text to make it a fair size ........\r\n"
                                      % i for i in range(60)) + b".\r\n"
    local = b"recipient-with-a-rather-long-local-part-" * 4 + b"number-"
    rcpt = b"".join(b"RCPT TO:<%s%04d@example.net>\r\n" % (local, k) for k in range(rcpts))
    ok = b"".join(b"250 2.1.5 <%s%04d@example.net>... Recipient ok\r\n" % (local, k) for k in range(rcpts))
    with PcapWriter(path) as w:
        cs = []
        for i in range(n):
            cli = [10, 3 + (i >> 16) % 200, (i >> 8) & 255, i & 255]
            c = TcpConn(w, cli, SRV, 1024 + i % 60000, 25, clock, step=5)
            c.handshake()
            say(c, False, SMTP_HELLO[0][1])
            cs.append(c)
        for _ in range(rounds):
            for c in cs:
                say(c, True, b"EHLO client.example.org\r\n")
                say(c, False, ehlo)
                say(c, True, b"MAIL FROM:<sender-with-a-long-name@example.org>\r\n")
                say(c, False, b"250 2.1.0 Ok\r\n")
                say(c, True, rcpt)
                say(c, False, ok)
                say(c, True, b"DATA\r\n")
                say(c, False, b"354 End data with <CR><LF>.<CR><LF>\r\n")
                say(c, True, body)
                say(c, False, b"250 2.0.0 Ok: queued as 1A2B3C\r\n")
        for c in cs:
            say(c, True, b"QUIT\r\n")
            say(c, False, b"221 2.0.0 Bye\r\n")
            c.close()


GiB = 1 << 30
# The HTML report's share of --memory for its open sessions (src/main.c), and the fixed
# overhead of a run with -j 2 above --memory that docs/manual.md states ("HTML report"):
# 32 MiB, and libmagic's database (8 MiB, loaded with the first message part; issue 27).
HTML_SHARE = 8
OVERHEAD_MIB = 40

# name, maker, full-scale quantity, its unit, floor, what, anomalies, finding, args(n, scale),
# and optionally a dict of more: rss_cap_mib, html_expect, extract(n, scale)
CASES = [
    ("long_line", long_line, GiB, "bytes", 64 << 10,
     "SMTP (port 25): a 1 GiB command line with no LF",
     ["LONG_COMMAND_LINE"], None, None),
    ("half_open", half_open, 100_000, "flows", 100,
     "100,000 concurrent half-open flows (a SYN each, to port 25, within the idle timeout)",
     ["SYN_UNANSWERED"], None, None),
    ("ooo_segments", ooo_segments, 1_000_000, "segments", 16384,
     "one SMTP flow: a million 4-byte segments, each block of 8192 in reverse order (over the "
     "4096 held per direction), the server silent",
     ["TCP_REASSEMBLY_LIMIT", "TCP_LATE_SEGMENT"], None, None),
    ("imap_literal_2p63", lambda p, n: imap_literal(p, n, 1 << 63), 64 * MIB, "bytes", 64 << 10,
     "IMAP (port 143): APPEND and FETCH literals of {9223372036854775808} (2^63), then 64 MiB "
     "of lines",
     ["LITERAL_INVALID"], None, None),
    ("imap_literal_2p64", lambda p, n: imap_literal(p, n, 1 << 64), 64 * MIB, "bytes", 64 << 10,
     "IMAP (port 143): APPEND and FETCH literals of {18446744073709551616} (2^64), then 64 MiB "
     "of lines",
     ["LITERAL_INVALID"], None, None),
    ("imap_literal_2p63m1", lambda p, n: imap_literal(p, n, (1 << 63) - 1), 64 * MIB, "bytes", 64 << 10,
     "IMAP (port 143): APPEND and FETCH literals of {9223372036854775807} (2^63 - 1, legal in "
     "IMAP4rev2), then 64 MiB: the rest of each direction is literal",
     ["LITERAL_TOO_LARGE", "LITERAL_INCOMPLETE"], None, None),
    ("mime_nested", mime_nested, 10_000, "levels", 100,
     "SMTP DATA: a multipart nested 10,000 deep",
     ["DEPTH_EXCEEDED"], None, None),
    ("base64_attachment", base64_attachment, 500 * 1000 * 1000, "bytes", 256 << 10,
     "SMTP DATA: one attachment of 500 MB of base64 in 76-character lines, past the server's "
     "SIZE 10240000 (postfix's default)",
     ["MESSAGE_OVER_SIZE_LIMIT"], None, None),
    ("base64_one_line", lambda p, n: base64_attachment(p, n, one_line=True), 500 * 1000 * 1000, "bytes",
     256 << 10,
     "SMTP DATA: one attachment of 500 MB of base64 on one line (no line break)",
     ["LONG_LINE"], None, None),
    ("rcpt_flood", rcpt_flood, 1_000_000, "recipients", 2000,
     "SMTP: a million RCPT commands in one transaction (pipelined by 100, all accepted)",
     ["TOO_MANY_RECIPIENTS"], None, None),
    ("syn_flood", syn_flood, 1_000_000, "SYNs", 2000,
     "a SYN flood: a million SYNs to port 25 from random sources and ports, no answers; "
     "--max-flows scaled with the case (262144 at scale 1)",
     ["FLOW_EVICTED"], None, lambda n, scale: ["--max-flows", str(max(64, int(round(262144 * scale))))]),
    ("syn_flood_memory", syn_flood, 1_000_000, "SYNs", 2000,
     "the same SYN flood under the memory cap alone: --memory scaled with the case (256 MiB at "
     "scale 1, 16 MiB at least), --max-flows left at its default",
     ["FLOW_EVICTED", "SYN_UNANSWERED"], None,
     lambda n, scale: ["--memory", str(max(16, int(round(256 * scale))))]),
    ("parts_in_parallel", parts_in_parallel, 2000, "connections", 40,
     "2,000 SMTP connections at once, each in the middle of a 2,000-part message, under "
     "--memory scaled with the case (256 MiB at scale 1, 16 MiB at least): the message "
     "parsers' own allocations count against the cap",
     ["FLOW_EVICTED"], None,
     lambda n, scale: ["--memory", str(max(16, int(round(256 * scale))))]),
    ("ack_jumps", ack_jumps, 1_000_000, "jumps", 1000,
     "SMTP: the server ACKs 1 to 256 MiB of client data that never arrives, a million times",
     ["TCP_GAP"], None, None),
    ("servers_many", servers_many, 300_000, "servers", 5000,
     "300,000 SMTP sessions, each to another server: the audit finds each one's server in its "
     "table (a keyed hash map) and counts those past its 4,096",
     [], None, None),
    ("html_open_sessions", open_sessions_report, 600, "sessions", 30,
     "600 SMTP sessions open at once, each bringing the HTML report about 1,900 rows and "
     "500 KB of text, under --html and --memory 16 (the least it takes) with -j 2: the report "
     "holds at most an eighth of --memory for them, peak RSS stays under --memory + %d MiB, "
     "and the diagrams say what they could not keep" % OVERHEAD_MIB,
     [], None, lambda n, scale: ["--memory", "16", "-j", "2"],
     {"rss_cap_mib": 16 + OVERHEAD_MIB,
      "html_expect": ["later rows not kept: the report's memory (%d MiB of --memory) was full" % (16 // HTML_SHARE),
                      "diagrams lack their later rows or messages"]}),
    ("many_messages", many_messages, 40_000, "messages", 1000,
     "POP3, --extract: 40,000 messages in one flow (pipelined RETRs), each a .eml file "
     "(issue 24: finding a free name cost n^2/2 opens)",
     [], None, None, {"extract": lambda n, scale: {"files": n, "max_bytes": None}}),
    ("same_name_attach", same_name_attachments, 40_000, "attachments", 1500,
     "SMTP, --extract: 40,000 attachments all named \"same name.txt\", 5,000 to a message "
     "(issue 24: 1,000 of 9,000 were written)",
     [], None, None, {"extract": lambda n, scale: {"files": n + (n + 4999) // 5000, "max_bytes": None}}),
    ("imap_deflate_bomb", imap_deflate_bomb, GiB, "bytes", 8 * MIB,
     "IMAP COMPRESS=DEFLATE, --extract --extract-max 1 --extract-total 2: two FETCHes of "
     "512 MiB of base64 zeros, about 1000 to 1 compressed (issue 24: 1.7 GB written)",
     ["EXTRACT_FILE_CAP", "EXTRACT_TOTAL_CAP"], None,
     lambda n, scale: ["--extract-max", "1", "--extract-total", "2"],
     {"extract": lambda n, scale: {"files": 2, "max_bytes": 2 * MIB}}),
]


def main(argv):
    args = list(argv)
    scale, only, out = 1.0, None, None
    if "--list" in args:
        for name, _, full, unit, *_rest in CASES:
            print("%-20s %14d %s" % (name, full, unit))
        return 0
    while args:
        a = args.pop(0)
        if a == "--scale" and args:
            scale = float(args.pop(0))
        elif a == "--only" and args:
            only = set(args.pop(0).split(","))
        elif a.startswith("-") or out:
            sys.exit(__doc__)
        else:
            out = a
    if not out or not scale > 0:
        sys.exit(__doc__)
    names = {c[0] for c in CASES}
    if only and only - names:
        sys.exit("adversarial: unknown case(s): %s" % ", ".join(sorted(only - names)))
    os.makedirs(out, exist_ok=True)
    listed = []
    for name, make, full, unit, floor, what, anomalies, finding, args_of, *more in CASES:
        more = more[0] if more else {}
        if only and name not in only:
            continue
        n = scaled(full, scale, floor)
        path = os.path.join(out, name + ".pcap")
        make(path, n)
        listed.append({
            "name": name, "file": name + ".pcap", "what": what,
            "param": {"name": unit, "value": n},
            "anomalies": anomalies, "finding": finding,
            "args": args_of(n, scale) if args_of else [],
            "rss_cap_mib": more.get("rss_cap_mib"),
            "html_expect": more.get("html_expect", []),
            "size": os.path.getsize(path),
            "extract": more["extract"](n, scale) if "extract" in more else None,
        })
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump({"scale": scale, "cases": listed}, f, indent=1)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
