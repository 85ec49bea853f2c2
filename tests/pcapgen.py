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


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sessions_to_pcap(json.load(open(sys.argv[2])), sys.argv[1])
