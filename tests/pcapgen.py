#!/usr/bin/env python3
"""pcapgen - writes a classic pcap of TCP sessions from a scripted dialogue.

For tests that need bytes no real server sends (hostile banners, escape
sequences): each session is a three-way handshake, the dialogue's segments in
order with correct sequence numbers, ACKs and checksums (RFC 793, RFC 1071),
then FIN from both sides. Deterministic: times advance 1 ms per segment.

  pcapgen.py OUT.pcap DIALOGUE.json
  DIALOGUE.json: [{"port": 25, "turns": [["s", "220 hi\\r\\n"], ["c", "EHLO x\\r\\n"]]}, ...]
  Text is written as UTF-8; a turn ["c", TEXT, "latin-1"] writes each
  character U+0000-U+00FF as that one byte instead (any byte value).

For large or hostile captures (scripts/adversarial.py), PcapWriter streams frames
to the file as they are made (nothing is held in memory), tcp_frame() builds
one Ethernet/IPv4/TCP frame with any seq, ack and flags, and TcpConn follows
one connection's sequence numbers while letting each segment override them.
"""
import json
import struct
import sys


def _csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _packet(src, dst, sport, dport, seq, ack, flags, payload=b""):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
    pseudo = struct.pack("!4s4sBBH", bytes(src), bytes(dst), 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", _csum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, bytes(src), bytes(dst))
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    eth = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + b"\x08\x00"
    return eth + ip + tcp


SYN, FIN, ACK, PSH = 0x02, 0x01, 0x10, 0x08


def sessions_to_pcap(sessions, out, t0=1700000000):
    frames = []
    t = t0 * 1_000_000
    for i, sess in enumerate(sessions):
        c, s = [10, 0, 0, 1 + i % 200], [10, 0, 1, 1]
        cp, sp = 40000 + i, sess["port"]
        cseq, sseq = 1000, 5000

        def add(frm_client, flags, payload=b""):
            nonlocal t, cseq, sseq
            t += 1000
            if frm_client:
                frames.append((t, _packet(c, s, cp, sp, cseq, sseq, flags, payload)))
                cseq += len(payload) + (1 if flags & (SYN | FIN) else 0)
            else:
                frames.append((t, _packet(s, c, sp, cp, sseq, cseq, flags, payload)))
                sseq += len(payload) + (1 if flags & (SYN | FIN) else 0)

        frames.append((t, _packet(c, s, cp, sp, cseq, 0, SYN)))
        cseq += 1
        t += 1000
        frames.append((t, _packet(s, c, sp, cp, sseq, cseq, SYN | ACK)))
        sseq += 1
        add(True, ACK)
        for turn in sess["turns"]:
            who, text = turn[0], turn[1]
            add(who == "c", PSH | ACK, text.encode(turn[2] if len(turn) > 2 else "utf-8"))
        add(True, FIN | ACK)
        add(False, FIN | ACK)
        add(True, ACK)
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for us, fr in frames:
            f.write(struct.pack("<IIII", us // 1_000_000, us % 1_000_000, len(fr), len(fr)))
            f.write(fr)


def _sum16(data):
    """The ones' complement sum of data as 16-bit big-endian words (RFC 1071),
    folded to 16 bits: 2^16 = 1 mod 0xFFFF, so the sum is the number's residue."""
    if len(data) % 2:
        data += b"\0"
    n = int.from_bytes(data, "big")
    return 0 if n == 0 else (n % 0xFFFF or 0xFFFF)


def _fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


_ETH = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + b"\x08\x00"


def tcp_frame(src, dst, sport, dport, seq, ack, flags, payload=b"", window=65535, psum=None):
    """One Ethernet/IPv4/TCP frame, byte for byte what _packet() makes, faster.
    seq and ack are taken modulo 2^32. psum: _sum16(payload), when the caller
    already has it (the same payload sent many times)."""
    src, dst = bytes(src), bytes(dst)
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags,
                      window, 0, 0)
    tlen = 20 + len(payload)
    pseudo = struct.pack("!4s4sBBH", src, dst, 0, 6, tlen)
    if psum is None:
        psum = _sum16(payload)
    s = _fold(_sum16(pseudo + hdr) + psum)
    hdr = hdr[:16] + struct.pack("!H", ~s & 0xFFFF) + hdr[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + tlen, 0, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", ~_sum16(ip) & 0xFFFF) + ip[12:]
    return _ETH + ip + hdr + payload


def csum(data):
    """The Internet checksum of data (RFC 1071), for a header being rewritten."""
    return _csum(data)


def read_pcap(path):
    """A classic pcap as (byte order "<" or ">", its 24-byte header, its frames,
    each [sec, frac, bytearray of the captured bytes, wire length])."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        order = "<"
    elif data[:4] in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        order = ">"
    else:
        raise ValueError("%s: not a classic pcap file" % path)
    out, off = [], 24
    while off + 16 <= len(data):
        sec, frac, cap, wire = struct.unpack(order + "IIII", data[off:off + 16])
        out.append([sec, frac, bytearray(data[off + 16:off + 16 + cap]), wire])
        off += 16 + cap
    return order, data[:24], out


class PcapWriter:
    """A classic pcap (microseconds, Ethernet) written frame by frame."""

    def __init__(self, path, snaplen=262144):
        self.f = open(path, "wb", buffering=1 << 20)
        self.f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, 1))
        self.frames = 0

    def write(self, us, frame):
        self.f.write(struct.pack("<IIII", us // 1_000_000, us % 1_000_000, len(frame), len(frame)))
        self.f.write(frame)
        self.frames += 1

    def close(self):
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class TcpConn:
    """One TCP connection written to a PcapWriter. Each side's next sequence
    number and the ACK it sends follow what was written, unless a segment gives
    its own seq, ack or flags. Time advances `step` microseconds per frame,
    from `clock[0]` (a one-element list, shared by connections that interleave)."""

    def __init__(self, w, client, server, cport, sport, clock, step=10, cseq=1000, sseq=5000):
        self.w, self.clock, self.step = w, clock, step
        self.addr = (bytes(client), bytes(server))
        self.port = (cport, sport)
        self.nxt = [cseq, sseq]   # next sequence number of client (0) and server (1)
        self._pl = None           # the last payload and its sum
        self._ps = 0

    def seg(self, c2s, flags=0x18, payload=b"", seq=None, ack=None, advance=True):
        d = 0 if c2s else 1
        if seq is None:
            seq = self.nxt[d]
        if ack is None:
            ack = self.nxt[1 - d] if flags & ACK else 0
        if payload is not self._pl:
            self._pl, self._ps = payload, _sum16(payload)
        fr = tcp_frame(self.addr[d], self.addr[1 - d], self.port[d], self.port[1 - d], seq, ack, flags,
                       payload, psum=self._ps)
        self.clock[0] += self.step
        self.w.write(self.clock[0], fr)
        if advance:
            end = (seq + len(payload) + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF
            if ((end - self.nxt[d]) & 0xFFFFFFFF) < 1 << 31:
                self.nxt[d] = end

    def handshake(self):
        self.seg(True, SYN)
        self.seg(False, SYN | ACK)
        self.seg(True, ACK)

    def send(self, c2s, data, mss=1460, ack_every=16):
        """data in segments of at most mss bytes; the peer ACKs every ack_every
        segments and at the end (ack_every 0: the peer stays silent)."""
        n = 0
        for i in range(0, len(data), mss):
            self.seg(c2s, PSH | ACK, data[i:i + mss])
            n += 1
            if ack_every and n % ack_every == 0:
                self.seg(not c2s, ACK)
        if ack_every and n % ack_every:
            self.seg(not c2s, ACK)

    def send_stream(self, c2s, chunks, mss=1460, ack_every=16):
        """Like send(), for an iterable of byte strings of any sizes, without
        joining them: memory stays bounded whatever the total."""
        buf = b""
        n = 0
        for chunk in chunks:
            buf = buf + chunk if buf else chunk
            if len(buf) < mss:
                continue
            full = len(buf) - len(buf) % mss
            for i in range(0, full, mss):
                self.seg(c2s, PSH | ACK, buf[i:i + mss])
                n += 1
                if ack_every and n % ack_every == 0:
                    self.seg(not c2s, ACK)
            buf = buf[full:]
        if buf:
            self.seg(c2s, PSH | ACK, buf)
            n += 1
        if ack_every and n % ack_every:
            self.seg(not c2s, ACK)

    def close(self):
        self.seg(True, FIN | ACK)
        self.seg(False, FIN | ACK)
        self.seg(True, ACK)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sessions_to_pcap(json.load(open(sys.argv[2])), sys.argv[1])
