#!/usr/bin/env python3
"""message-memory - peak memory of mxray on the message parser's worst cases.

usage: scripts/message-memory.py [--keep DIR] [MXRAY]   (default build/mxray)

Writes three SMTP captures (classic pcap, Ethernet/IPv4/TCP, one session each)
and prints mxray's peak RSS on each with --json (measured by /usr/bin/time):
a 300-byte message, a message of 10,000 parts (the part cap; its JSON record
holds 10,001 part objects), and a message with one 100 MiB base64 attachment.
The numbers belong in docs/message.md. Not a timed test.
"""
import os, random, struct, subprocess, sys, tempfile

MSS = 1400
CLI, SRV = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


class Pcap:
    """A classic pcap with one TCP connection, client 10.0.0.1:40000 -> 10.0.0.2:25."""

    def __init__(self, path):
        self.f = open(path, "wb")
        self.f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        self.t = 1_700_000_000 * 1_000_000
        self.seq = {0: 1000, 1: 5000}

    def frame(self, c2s, flags, data=b""):
        src, dst = (CLI, SRV) if c2s else (SRV, CLI)
        sp, dp = (40000, 25) if c2s else (25, 40000)
        d = 0 if c2s else 1
        seq, ack = self.seq[d], self.seq[1 - d]
        tcp = struct.pack("!HHIIBBHHH", sp, dp, seq, ack if flags & 0x10 else 0, 5 << 4, flags, 65535, 0, 0) + data
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src, dst)
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        pkt = b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00" + ip + tcp
        self.t += 100
        self.f.write(struct.pack("<IIII", self.t // 1_000_000, self.t % 1_000_000, len(pkt), len(pkt)) + pkt)
        self.seq[d] = (seq + len(data) + (1 if flags & 0x03 else 0)) & 0xFFFFFFFF

    def send(self, c2s, data):
        for i in range(0, len(data), MSS):
            self.frame(c2s, 0x18, data[i:i + MSS])
            if i // MSS % 16 == 15:
                self.frame(not c2s, 0x10)
        self.frame(not c2s, 0x10)

    def smtp(self, body_chunks):
        """A whole session; body_chunks yields the DATA bytes (ending in CRLF, no dot-stuffing needed)."""
        self.frame(True, 0x02)
        self.frame(False, 0x12)
        self.frame(True, 0x10)
        for c2s, line in ((False, b"220 mx ESMTP\r\n"), (True, b"EHLO c\r\n"), (False, b"250 mx\r\n"),
                          (True, b"MAIL FROM:<a@example.org>\r\n"), (False, b"250 ok\r\n"),
                          (True, b"RCPT TO:<b@example.net>\r\n"), (False, b"250 ok\r\n"),
                          (True, b"DATA\r\n"), (False, b"354 go\r\n")):
            self.send(c2s, line)
        buf = b""
        for chunk in body_chunks:
            buf += chunk
            if len(buf) >= 1 << 20:
                cut = len(buf) - len(buf) % MSS
                self.send(True, buf[:cut])
                buf = buf[cut:]
        self.send(True, buf + b".\r\n")
        for c2s, line in ((False, b"250 queued\r\n"), (True, b"QUIT\r\n"), (False, b"221 bye\r\n")):
            self.send(c2s, line)
        self.frame(True, 0x11)
        self.frame(False, 0x11)
        self.frame(True, 0x10)
        self.f.close()


HEAD = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: test\r\nMessage-ID: <1@example.org>\r\n"


def small():
    yield HEAD + b"\r\n" + b"hello, this is a short message body.\r\n" * 5


def many_parts(n=10000):
    yield HEAD + b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
    for i in range(n):
        yield (b"--b\r\nContent-Type: application/octet-stream; name=\"f%05d.bin\"\r\n"
               b"Content-Disposition: attachment; filename=\"f%05d.bin\"\r\n"
               b"Content-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=\r\n") % (i, i)
    yield b"--b--\r\n"


def big_attachment(mib=100):
    import base64
    yield HEAD + b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
    yield b"--b\r\n\r\nsee the attachment\r\n"
    yield (b"--b\r\nContent-Type: application/octet-stream; name=\"big.bin\"\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n")
    rnd = random.Random(1)
    block = 57 * 1024  # 57 bytes make one 76-character base64 line
    for _ in range(mib * 1024 * 1024 // block + 1):
        raw = base64.b64encode(rnd.randbytes(block))
        yield b"".join(raw[i:i + 76] + b"\r\n" for i in range(0, len(raw), 76))
    yield b"--b--\r\n"


def main():
    args = sys.argv[1:]
    keep = None
    if args[:1] == ["--keep"]:
        keep, args = args[1], args[2:]
    mx = args[0] if args else "build/mxray"
    tmp = keep or tempfile.mkdtemp()
    os.makedirs(tmp, exist_ok=True)
    print("%-16s %10s %12s" % ("capture", "size_MiB", "maxrss_KiB"))
    for name, gen in (("small", small), ("10000-parts", many_parts), ("100MiB-base64", big_attachment)):
        cap = os.path.join(tmp, name + ".pcap")
        if not os.path.exists(cap):
            Pcap(cap).smtp(gen())
        out = os.path.join(tmp, name + ".ndjson")
        tf = os.path.join(tmp, name + ".time")
        subprocess.run(["/usr/bin/time", "-o", tf, "-f", "%M", mx, "-q", "--json", out, cap], check=False)
        with open(tf) as f:
            rss = f.read().split()[-1]
        print("%-16s %10.1f %12s" % (name, os.path.getsize(cap) / 1048576, rss))
    if not keep:
        for fn in os.listdir(tmp):
            os.unlink(os.path.join(tmp, fn))
        os.rmdir(tmp)


if __name__ == "__main__":
    main()
