#!/usr/bin/env python3
"""pcap-multiply - builds a large capture from small ones, deterministically.

usage: pcap-multiply -o OUT (--copies K | --size BYTES) [--spacing SECS]
                     [--clients] [-v] INPUT...

Every copy k of the inputs gets its IPv4 addresses rewritten (second octet
+k, so each copy's flows are distinct and consistent in both directions) and
its timestamps shifted by k*SPACING, and the copies are merged in time order,
so that several overlap. IPv4 and TCP/UDP checksums are updated incrementally
(RFC 1624), so they stay as valid as they were. Inputs are classic pcap or
pcapng files; only Ethernet packets are kept (a file with none is skipped with
a note), and non-IPv4 packets are dropped. Idle gaps within an input longer
than 1 s are shortened to 1 s.

--clients rewrites only the client side of each TCP/UDP packet, so that the
servers stay the same hosts in every copy: the client is the end whose port
is not a mail port (25, 465, 587, 110, 995, 143, 993), or else the end with
the higher port. Copy k moves the client's address by k in its second and
third octets (k mod 256 and k div 256: distinct up to 65536 copies) and its
port, when 1024 or above, by k*7919 within 1024-65535. Packets with no ports
(not TCP/UDP, or a later IP fragment) get both addresses rewritten that way.

--size BYTES makes as many copies as bring the output nearest to BYTES.
-v prints the copies, packets and bytes written on standard error.
"""
import argparse, heapq, struct, sys

NS = 1_000_000_000
MAIL_PORTS = frozenset((25, 465, 587, 110, 995, 143, 993))


def ethernet_ipv4(frame):
    return len(frame) >= 34 and frame[12:14] == b"\x08\x00"


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return None
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        return read_pcapng(data)
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        return None
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(end + "I", data[20:24])[0]
    if linktype != 1:
        return None
    pkts, off = [], 24
    while off + 16 <= len(data):
        sec, frac, incl, orig = struct.unpack(end + "IIII", data[off:off + 16])
        off += 16
        if off + incl > len(data):
            break
        ts = sec * NS + (frac if nano else frac * 1000)
        frame = data[off:off + incl]
        off += incl
        if ethernet_ipv4(frame):
            pkts.append((ts, frame, orig))
    return pkts


def tsresol_ns(v):
    """if_tsresol: units per second are 10^v, or 2^(v & 0x7f) with the high bit."""
    return (10 ** v) if v < 128 else (1 << (v & 0x7F))


def read_pcapng(data):
    """Enhanced (and obsolete) Packet Blocks of Ethernet interfaces, section by section."""
    pkts, off, end, ifaces = [], 0, "<", []
    while off + 12 <= len(data):
        btype = struct.unpack(end + "I", data[off:off + 4])[0]
        if btype == 0x0A0D0D0A:                      # Section Header: byte order, new interfaces
            bom = data[off + 8:off + 12]
            if bom == b"\x4d\x3c\x2b\x1a":
                end = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                end = ">"
            else:
                break
            ifaces = []
        blen = struct.unpack(end + "I", data[off + 4:off + 8])[0]
        if blen < 12 or blen % 4 or off + blen > len(data):
            break
        body = data[off + 8:off + blen - 4]
        off += blen
        if btype == 1 and len(body) >= 8:              # Interface Description
            linktype = struct.unpack(end + "H", body[:2])[0]
            per_sec, offset_s, o = 10 ** 6, 0, 8
            while o + 4 <= len(body):
                code, olen = struct.unpack(end + "HH", body[o:o + 4])
                val = body[o + 4:o + 4 + olen]
                if code == 0:
                    break
                if code == 9 and olen >= 1:
                    per_sec = tsresol_ns(val[0])
                elif code == 14 and olen >= 8:
                    offset_s = struct.unpack(end + "q", val[:8])[0]
                o += 4 + ((olen + 3) & ~3)
            ifaces.append((linktype, per_sec, offset_s))
        elif btype in (6, 2) and len(body) >= 20:      # Enhanced / obsolete Packet
            if btype == 6:
                iface, hi, lo, incl, orig = struct.unpack(end + "IIIII", body[:20])
            else:
                iface, _drops, hi, lo, incl, orig = struct.unpack(end + "HHIIII", body[:20])
            if iface >= len(ifaces) or 20 + incl > len(body):
                continue
            linktype, per_sec, offset_s = ifaces[iface]
            if linktype != 1:
                continue
            units = (hi << 32) | lo
            ts = offset_s * NS + units // per_sec * NS + (units % per_sec) * NS // per_sec
            frame = body[20:20 + incl]
            if ethernet_ipv4(frame):
                pkts.append((ts, frame, orig))
    return pkts or None


def csum_adjust(csum, old, new):
    """RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') over 16-bit words."""
    s = (~csum) & 0xFFFF
    for i in range(0, len(old), 2):
        s += (~((old[i] << 8) | old[i + 1])) & 0xFFFF
        s += (new[i] << 8) | new[i + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def rewrite(frame, k):
    if k == 0:
        return frame
    b = bytearray(frame)
    ip = 14
    ihl = (b[ip] & 15) * 4
    old = bytes(b[ip + 12:ip + 20])
    for a in (ip + 12, ip + 16):
        b[a + 1] = (b[a + 1] + k) & 0xFF
    new = bytes(b[ip + 12:ip + 20])
    hc = struct.unpack(">H", b[ip + 10:ip + 12])[0]
    b[ip + 10:ip + 12] = struct.pack(">H", csum_adjust(hc, old, new))
    proto = b[ip + 9]
    frag = struct.unpack(">H", b[ip + 6:ip + 8])[0] & 0x1FFF
    l4 = ip + ihl
    coff = {6: 16, 17: 6}.get(proto)
    if coff is not None and frag == 0 and len(b) >= l4 + coff + 2:
        c = struct.unpack(">H", b[l4 + coff:l4 + coff + 2])[0]
        if not (proto == 17 and c == 0):
            b[l4 + coff:l4 + coff + 2] = struct.pack(">H", csum_adjust(c, old, new))
    return bytes(b)


def client_plan(frame):
    """Where the client's address and port are: (addr offsets, port offset or None, l4 checksum offset or None)."""
    ip = 14
    ihl = (frame[ip] & 15) * 4
    proto = frame[ip + 9]
    frag = struct.unpack(">H", frame[ip + 6:ip + 8])[0] & 0x1FFF
    l4 = ip + ihl
    coff = {6: 16, 17: 6}.get(proto)
    if coff is None or frag != 0 or len(frame) < l4 + 4:
        return ((ip + 12, ip + 16), None, None)
    sport, dport = struct.unpack(">HH", frame[l4:l4 + 4])
    s_srv, d_srv = sport in MAIL_PORTS, dport in MAIL_PORTS
    if s_srv != d_srv:
        src_is_client = d_srv
    elif sport != dport:
        src_is_client = sport > dport
    else:
        return ((ip + 12, ip + 16), None, l4 + coff if len(frame) >= l4 + coff + 2 else None)
    addr, port = (ip + 12, l4) if src_is_client else (ip + 16, l4 + 2)
    cs = l4 + coff if len(frame) >= l4 + coff + 2 else None
    if cs is not None and proto == 17 and frame[cs:cs + 2] == b"\x00\x00":
        cs = None
    return ((addr,), port, cs)


def rewrite_client(frame, plan, k):
    if k == 0:
        return frame
    addrs, port, cs = plan
    b = bytearray(frame)
    ip = 14
    old, new = bytearray(), bytearray()
    for a in addrs:
        old += b[a:a + 4]
        b[a + 1] = (b[a + 1] + k) & 0xFF
        b[a + 2] = (b[a + 2] + (k >> 8)) & 0xFF
        new += b[a:a + 4]
    hc = struct.unpack(">H", b[ip + 10:ip + 12])[0]
    b[ip + 10:ip + 12] = struct.pack(">H", csum_adjust(hc, old, new))
    if port is not None:
        p = struct.unpack(">H", b[port:port + 2])[0]
        if p >= 1024:
            old += b[port:port + 2]
            b[port:port + 2] = struct.pack(">H", 1024 + (p - 1024 + k * 7919) % 64512)
            new += b[port:port + 2]
    if cs is not None:
        c = struct.unpack(">H", b[cs:cs + 2])[0]
        b[cs:cs + 2] = struct.pack(">H", csum_adjust(c, old, new))
    return bytes(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", required=True)
    how = ap.add_mutually_exclusive_group(required=True)
    how.add_argument("--copies", type=int)
    how.add_argument("--size", type=int, help="target size in bytes: as many copies as come nearest")
    ap.add_argument("--spacing", type=float, default=0.25)
    ap.add_argument("--clients", action="store_true", help="rewrite only client addresses and ports")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("inputs", nargs="+")
    a = ap.parse_args()
    base, t = [], 0
    for path in a.inputs:
        pkts = read_pcap(path)
        if not pkts:
            print(f"pcap-multiply: skipped {path} (no Ethernet IPv4 packets in a pcap or pcapng file)", file=sys.stderr)
            continue
        prev = None
        for ts, frame, orig in pkts:
            if prev is not None:
                t += max(0, min(ts - prev, NS))
            prev = ts
            base.append((t, frame, orig))
        t += NS // 10
    base.sort(key=lambda p: p[0])
    if not base:
        sys.exit("pcap-multiply: no packets")
    copies = a.copies
    if a.size is not None:
        per_copy = sum(16 + len(f) for _, f, _ in base)
        copies = max(1, round((a.size - 24) / per_copy))
    spacing = int(a.spacing * NS)
    start = 1_700_000_000 * NS
    if a.clients:
        base = [(ts, i, frame, orig, client_plan(frame)) for i, (ts, frame, orig) in enumerate(base)]
    else:
        base = [(ts, i, frame, orig, None) for i, (ts, frame, orig) in enumerate(base)]

    def copy(k):
        shift = start + k * spacing
        for ts, i, frame, orig, plan in base:
            yield (shift + ts, k, i, frame, orig, plan)

    packets = size = 0
    with open(a.out, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1))
        size = 24
        for ts, k, _i, frame, orig, plan in heapq.merge(*(copy(k) for k in range(copies))):
            if plan is None:
                f = rewrite(frame, k % 256 if k < 256 else k % 251 + 1)
            else:
                f = rewrite_client(frame, plan, k)
            out.write(struct.pack("<IIII", ts // NS, ts % NS, len(f), orig))
            out.write(f)
            packets += 1
            size += 16 + len(f)
    if a.verbose:
        print(f"pcap-multiply: {copies} copies, {packets} packets, {size} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
