#!/usr/bin/env python3
"""encap - wraps every frame of an Ethernet capture in a tunnel or shim, as SPAN/ERSPAN
ports, cloud mirrors and provider links deliver traffic (issue 25).

usage: scripts/lab/encap.py IN.pcap OUT.pcap KIND
       scripts/lab/encap.py --all IN.pcap OUTDIR    (OUTDIR/<in>-<kind>.pcap for every KIND)

KIND is one of:
  gre-ipv4     IPv4 / GRE (RFC 2784, with RFC 2890 key and sequence number) / the IP packet
  gre-teb      IPv4 / GRE with checksum, protocol 0x6558 / the Ethernet frame
  erspan1      IPv4 / GRE 0x88BE, no sequence number (ERSPAN type I) / the Ethernet frame
  erspan2      IPv4 / GRE 0x88BE with sequence number / ERSPAN type II header (8 bytes) / the frame
  erspan3      IPv4 / GRE 0x22EB with sequence number / ERSPAN type III header (12 bytes) with
               the platform-specific subheader (O bit, 8 bytes) / the frame
  vxlan-vlan   IPv4 / UDP 4789 / VXLAN (RFC 7348, VNI 42) / the frame with an 802.1Q tag put in
  geneve       IPv4 / UDP 6081 / Geneve (RFC 8926, one 8-byte option, protocol 0x6558) / the frame
  gtpu         IPv4 / UDP 2152 / GTP-U G-PDU (TS 29.281) with sequence number and a PDU session
               container extension header / the IP packet
  mpls         Ethernet 0x8847 / two labels (RFC 3032) / the IP packet
  mpls-pw      Ethernet 0x8847 / two labels / RFC 4385 control word / the Ethernet frame (RFC 4448),
               its MAC addresses replaced (see wrap())
  pppoe        Ethernet 0x8864 / PPPoE session (RFC 2516) / PPP 0x0021 / the IP packet
  qinq         the frame with an 802.1ad tag and an 802.1Q tag put in
  nested       Ethernet / 802.1Q / IPv6 / GRE / IPv4 / UDP 4789 / VXLAN / Ethernet / 802.1Q /
               MPLS / the IP packet

The outer tunnel endpoints (192.0.2.1, 192.0.2.2; 2001:db8::1, ::2) swap with the inner
packet's direction, except for ERSPAN, where one switch mirrors both directions to one
collector. Times, the frame count and the order are the original's; each frame's length on
the wire grows by what was added. Deterministic: the same input gives the same bytes.
Input: classic pcap, Ethernet (at most one 802.1Q tag), IPv4 or IPv6. Output: the same
pcap format, Ethernet.
"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from impair import csum  # noqa: E402  (RFC 1071)
from offload import read_pcap, tcp_of  # noqa: E402

KINDS = ["gre-ipv4", "gre-teb", "erspan1", "erspan2", "erspan3", "vxlan-vlan", "geneve", "gtpu", "mpls",
         "mpls-pw", "pppoe", "qinq", "nested"]

MAC_A, MAC_B = bytes.fromhex("020000000a01"), bytes.fromhex("020000000a02")
V4_A, V4_B = bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])
PW_A, PW_B = bytes.fromhex("02abcdef0001"), bytes.fromhex("02abcdef0002")
V6_A, V6_B = bytes.fromhex("20010db8000000000000000000000001"), bytes.fromhex("20010db8000000000000000000000002")


def eth(dst, src, etype, payload):
    return dst + src + struct.pack("!H", etype) + payload


def ipv4(src, dst, proto, payload, ident):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident & 0xFFFF, 0x4000, 64, proto, 0, src, dst)
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload


def ipv6(src, dst, nh, payload):
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), nh, 64, src, dst) + payload


def udp(sport, dport, payload):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload  # checksum 0: none (IPv4)


def gre(proto, payload, key=None, seq=None, checksum=False):
    flags = (0x8000 if checksum else 0) | (0x2000 if key is not None else 0) | (0x1000 if seq is not None else 0)
    h = struct.pack("!HH", flags, proto)
    if checksum:
        h += b"\0\0\0\0"
    if key is not None:
        h += struct.pack("!I", key)
    if seq is not None:
        h += struct.pack("!I", seq)
    if checksum:  # RFC 2784 §2.5: over the GRE header and payload
        h = h[:4] + struct.pack("!H", csum(h + payload)) + h[6:]
    return h + payload


def split(frame):
    """(Ethertype after any 802.1Q tag, the IP packet trimmed to its length, or None)."""
    et, l3 = struct.unpack("!H", frame[12:14])[0], 14
    if et == 0x8100 and len(frame) >= 18:
        et, l3 = struct.unpack("!H", frame[16:18])[0], 18
    if et == 0x0800 and len(frame) >= l3 + 20:
        return et, bytes(frame[l3:l3 + struct.unpack("!H", frame[l3 + 2:l3 + 4])[0]])
    if et == 0x86DD and len(frame) >= l3 + 40:
        return et, bytes(frame[l3:l3 + 40 + struct.unpack("!H", frame[l3 + 4:l3 + 6])[0]])
    return et, None


def tag(frame, tpid, vid):
    return bytes(frame[:12]) + struct.pack("!HH", tpid, vid) + bytes(frame[12:])


def wrap(kind, frame, n, fwd):
    """The frame `frame` (n-th, from 0; fwd: in the first frame's direction) wrapped as `kind`,
    or None to copy it as it is (a frame that carries no IP packet where the IP packet goes)."""
    frame = bytes(frame)
    et, ip = split(frame)
    sa, da = (V4_A, V4_B) if fwd else (V4_B, V4_A)
    sm, dm = (MAC_A, MAC_B) if fwd else (MAC_B, MAC_A)
    ident = n + 1

    def over_v4(proto, payload, mirror=False):
        s, d = (V4_A, V4_B) if mirror else (sa, da)
        m1, m2 = (MAC_B, MAC_A) if mirror else (dm, sm)
        return eth(m1, m2, 0x0800, ipv4(s, d, proto, payload, ident))

    if kind == "gre-ipv4":
        return over_v4(47, gre(et, ip, key=0x2A, seq=n)) if ip else None
    if kind == "gre-teb":
        return over_v4(47, gre(0x6558, frame, checksum=True))
    if kind == "erspan1":
        return over_v4(47, gre(0x88BE, frame), mirror=True)
    if kind == "erspan2":
        # Ver 1, VLAN 0 | COS 0, En 0, T 0, Session ID 7 | Reserved, Index 0x123
        return over_v4(47, gre(0x88BE, struct.pack("!HHI", 0x1000, 7, 0x123) + frame, seq=n), mirror=True)
    if kind == "erspan3":
        # Ver 2, VLAN 0 | COS, BSO, T, Session ID 7 | Timestamp | SGT | P, FT 0, HW ID 1, D, Gra 1, O 1
        hdr = struct.pack("!HHIHH", 0x2000, 7, 1000 + n, 0, (1 << 4) | (1 << 1) | 1)
        sub = struct.pack("!II", (3 << 26) | 5, 0)  # platform ID 3: port index 5, upper timestamp
        return over_v4(47, gre(0x22EB, hdr + sub + frame, seq=n), mirror=True)
    if kind == "vxlan-vlan":
        vx = struct.pack("!II", 0x08000000, 42 << 8) + tag(frame, 0x8100, 100)
        return over_v4(17, udp(49152 + n % 1000, 4789, vx))
    if kind == "geneve":
        opt = struct.pack("!HBB", 0x0103, 0x01, 1) + b"\0\0\0\x2a"  # class, type, length 1 (4 bytes)
        gn = struct.pack("!BBHI", len(opt) // 4, 0, 0x6558, 42 << 8) + opt + frame
        return over_v4(17, udp(49152 + n % 1000, 6081, gn))
    if kind == "gtpu":
        if not ip:
            return None
        # E and S set: Sequence Number, N-PDU Number, next type 0x85 (PDU Session Container,
        # TS 38.415: one 4-byte unit: length, PDU type 0 / QFI 9, next type 0)
        opt = struct.pack("!HBB", n & 0xFFFF, 0, 0x85) + bytes([1, 0x00, 0x09, 0])
        gt = struct.pack("!BBHI", 0x36, 255, len(opt) + len(ip), 0x1234) + opt + ip
        return over_v4(17, udp(2152, 2152, gt))
    if kind == "mpls":
        if not ip:
            return None
        return eth(dm, sm, 0x8847, struct.pack("!II", (1000 << 12) | 64, (2000 << 12) | 0x100 | 64) + ip)
    if kind == "mpls-pw":
        cw = struct.pack("!I", n & 0xFFFF)  # RFC 4385 §3: 0000, flags 0, length 0, sequence number
        # tshark guesses whether a control word is there from the OUIs the bytes would hold
        # without one; the lab's loopback frames (all-zero MACs) look like Xerox's either way,
        # so the pseudowire's frames get MACs of their own (its routers').
        pw = (PW_A + PW_B if fwd else PW_B + PW_A) + frame[12:]
        return eth(dm, sm, 0x8847, struct.pack("!II", (1000 << 12) | 64, (2001 << 12) | 0x100 | 64) + cw + pw)
    if kind == "pppoe":
        if not ip:
            return None
        ppp = struct.pack("!H", 0x0021 if et == 0x0800 else 0x0057) + ip
        return eth(dm, sm, 0x8864, struct.pack("!BBHH", 0x11, 0, 0x1234, len(ppp)) + ppp)
    if kind == "qinq":
        return tag(tag(frame, 0x8100, 20), 0x88A8, 10)
    if kind == "nested":
        if not ip:
            return None
        inner = eth(dm, sm, 0x8100, struct.pack("!HH", 30, 0x8847) + struct.pack("!I", (3000 << 12) | 0x100 | 64) + ip)
        vx = udp(49152 + n % 1000, 4789, struct.pack("!II", 0x08000000, 7 << 8) + inner)
        g = gre(0x0800, ipv4(sa, da, 17, vx, ident))
        s6, d6 = (V6_A, V6_B) if fwd else (V6_B, V6_A)
        return eth(dm, sm, 0x8100, struct.pack("!HH", 40, 0x86DD) + ipv6(s6, d6, 47, g))
    raise ValueError("unknown kind %s" % kind)


def rewrite(src, dst, kind):
    """Writes src wrapped as kind to dst; returns the number of frames wrapped."""
    order, header, frames = read_pcap(src)
    first = None
    wrapped = 0
    with open(dst, "wb") as f:
        f.write(header)
        for n, (sec, frac, data, wire, _) in enumerate(frames):
            t = tcp_of(data)
            key = t["key"] if t else None
            if first is None and key:
                first = key
            new = wrap(kind, data, n, key is None or key == first)
            if new is None:
                new = bytes(data)
            else:
                wrapped += 1
            f.write(struct.pack(order + "IIII", sec, frac, len(new), wire + len(new) - len(data)) + new)
    return wrapped


def main(argv):
    if len(argv) == 4 and argv[1] == "--all":
        os.makedirs(argv[3], exist_ok=True)
        base = os.path.basename(argv[2]).rsplit(".", 1)[0]
        for k in KINDS:
            out = os.path.join(argv[3], "%s-%s.pcap" % (base, k))
            print("%s: %d frames wrapped" % (out, rewrite(argv[2], out, k)))
        return 0
    if len(argv) != 4 or argv[3] not in KINDS:
        sys.stderr.write(__doc__)
        return 2
    print("%s: %d frames wrapped" % (argv[2], rewrite(argv[1], argv[2], argv[3])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
