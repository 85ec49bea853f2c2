#!/usr/bin/env python3
"""long_line_frames.py - the evidence frames of an over-long line (issue 26).

An anomaly for a line longer than its cap (SMTP LONG_COMMAND_LINE and
LONG_REPLY_LINE, POP3 LONG_COMMAND_LINE and LONG_RESPONSE_LINE, IMAP LONG_LINE,
the message parser's LONG_LINE past RFC 5322's 998 bytes) names two frames: the
one where the line starts and the one where it crosses the cap (that carries
its first byte past the cap). Crafts (tests/pcapgen.py) one session per case
where the line starts inside a frame that also ends the line before it, runs on
over many frames past the cap, and ends; and again with the line's first
segment sent last, so that reassembly hands the whole line over at once. Checks the anomaly's frames are [start, crossing].

  long_line_frames.py MXRAY [--write DIR]
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pcapgen  # noqa: E402

SMTP_CMD, SMTP_REPLY, POP3_CMD, POP3_RESP, IMAP_LINE = 16384, 4096, 16384, 4096, 64 << 10  # the caps (line text before CR LF)


class Counter(pcapgen.PcapWriter):
    """Counts the frames written: frame numbers as mxray and Wireshark give them."""

    def __init__(self, path):
        super().__init__(path)
        self.n = 0

    def write(self, us, frame):
        self.n += 1
        super().write(us, frame)


def long_line(conn, w, c2s, before, line, after, cap, mss, late_start):
    """Sends before+line+after in mss-byte segments (late_start: the first
    one last, so that reassembly hands them all over at once); returns (frame
    of the line's first byte, frame of its byte number cap, counted from 0)."""
    data = before + line + after
    start, cross = len(before), len(before) + cap
    segs = list(range(0, len(data), mss))
    order = segs[1:] + segs[:1] if late_start else segs
    frame_of = {}
    seq0 = conn.nxt[0 if c2s else 1]
    for at in order:
        conn.seg(c2s, pcapgen.PSH | pcapgen.ACK, data[at:at + mss], seq=(seq0 + at) & 0xFFFFFFFF)
        frame_of[at] = w.n
    conn.nxt[0 if c2s else 1] = (seq0 + len(data)) & 0xFFFFFFFF
    return frame_of[start - start % mss], frame_of[cross - cross % mss]


def case(path, port, greet, prelude, c2s, line_of, cap, mss, late_start, before=b"NOOP\r\n", after=b"\r\n"):
    with Counter(path) as w:
        c = pcapgen.TcpConn(w, [10, 0, 0, 1], [10, 0, 1, 1], 40000, port, [1700000000 * 1000000])
        c.handshake()
        c.send(False, greet)
        for cmd, rep in prelude:
            c.send(True, cmd)
            c.send(False, rep)
        line = line_of(cap + 5000)
        if c2s:
            got = long_line(c, w, True, before, line, after, cap, mss, late_start)
            c.send(False, b"250 ok\r\n" if port == 25 else b"+OK\r\n" if port == 110 else b"a1 OK\r\n")
        else:
            got = long_line(c, w, False, b"", line, b"\r\n", cap, mss, late_start)
        c.close()
    return got


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    mxray = sys.argv[1]
    keep = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--write" else None
    cases = [
        # name, port, greeting, prelude, client's line?, line maker, anomaly, cap
        ("smtp-command", 25, b"220 mx ESMTP\r\n", [(b"EHLO c\r\n", b"250 mx\r\n")], True,
         lambda n: b"MAIL FROM:<" + b"a" * n + b">", "LONG_COMMAND_LINE", SMTP_CMD),
        ("smtp-reply", 25, b"220 mx ESMTP\r\n", [(b"EHLO c\r\n", b"250 mx\r\n"), (b"NOOP\r\n", b"")], False,
         lambda n: b"250 " + b"r" * n, "LONG_REPLY_LINE", SMTP_REPLY),
        # a message body line (RFC 5322 §2.1.1: 998): the message parser's LONG_LINE
        ("message-line", 25, b"220 mx ESMTP\r\n",
         [(b"EHLO c\r\n", b"250 mx\r\n"), (b"MAIL FROM:<a@b>\r\n", b"250 ok\r\n"),
          (b"RCPT TO:<c@d>\r\n", b"250 ok\r\n"), (b"DATA\r\n", b"354 go\r\n")], True,
         lambda n: b"b" * (n - 4000), "LONG_LINE", 998, b"Subject: x\r\n\r\nfirst line\r\n", b"\r\n.\r\n"),
        ("pop3-command", 110, b"+OK ready\r\n", [], True,
         lambda n: b"USER " + b"u" * n, "LONG_COMMAND_LINE", POP3_CMD),
        ("pop3-response", 110, b"+OK ready\r\n", [(b"NOOP\r\n", b"")], False,
         lambda n: b"-ERR " + b"e" * n, "LONG_RESPONSE_LINE", POP3_RESP),
        ("imap-command", 143, b"* OK ready\r\n", [], True,
         lambda n: b"a1 FETCH 1:* (" + b"x" * n + b")", "LONG_LINE", IMAP_LINE),
        ("imap-response", 143, b"* OK ready\r\n", [(b"a0 NOOP\r\n", b"")], False,
         lambda n: b"* OK " + b"y" * n, "LONG_LINE", IMAP_LINE),
    ]
    fails = []
    with tempfile.TemporaryDirectory() as tmp:
        out = keep or tmp
        os.makedirs(out, exist_ok=True)
        for name, port, greet, prelude, c2s, line_of, anomaly, cap, *extra in cases:
            for mss, late in ((700, False), (1460, False), (1460, True)):
                pcap = os.path.join(out, f"long-{name}-{mss}{'-late' if late else ''}.pcap")
                want = case(pcap, port, greet, prelude, c2s, line_of, cap, mss, late, *extra)
                p = subprocess.run([mxray, "-q", "--no-progress", "--json", "-", pcap], capture_output=True)
                recs = [json.loads(x) for x in p.stdout.decode().splitlines() if x]
                an = [r for r in recs if r["type"] == "anomaly" and r["name"] == anomaly]
                if len(an) != 1:
                    fails.append(f"{name}/{mss}/{late}: {len(an)} {anomaly} records")
                    continue
                got = tuple(an[0]["frames"]) if len(an[0]["frames"]) == 2 else (an[0]["frames"][0],) * 2
                if got != want:
                    fails.append(f"{name}/{mss}/{late}: {anomaly} frames {list(got)}, want {list(want)} (start, crossing)")
    for f in fails:
        print("FAIL", f)
    print(f"long_line_frames: {len(cases) * 3} cases, {len(fails)} failures")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
