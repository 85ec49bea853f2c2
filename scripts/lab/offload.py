#!/usr/bin/env python3
"""offload - rewrites a capture as segmentation offload leaves it on the sending host.

usage: scripts/lab/offload.py IN.pcap OUT.pcap [--max BYTES] [--keep-length]

A capture taken on a host whose card segments TCP (TSO/GSO) holds the
super-frames the kernel handed to the card, not the segments on the wire:
consecutive data segments of one direction are one frame, and its IPv4 Total
Length is 0 (Windows, many cards; Linux BIG TCP above 64 KiB) or its IPv6
Payload Length 0. This script makes such a capture from one recorded with
offloads off: each run of back-to-back data segments of one direction (the
next in sequence, with the same flags, ACK and window, each within 1 ms of
the one before, nothing in between from that direction and no data from the
other: one send() that the card cut) becomes one frame at the
place and time of its first segment, up to --max payload bytes (default
65000), with its IP length 0. --keep-length writes the true length instead,
as GRO leaves it on a receiving host while the sum stays under 64 KiB. Other
packets are copied as they are. Checksums are left as they were: a real
super-frame's are unfinished too (the card fills them in).

Input: classic pcap (either byte order, micro- or nanoseconds), Ethernet
(with at most one 802.1Q tag) over IPv4 or IPv6 with TCP. Output: the same
format. Prints "IN: N frames -> M frames, K super-frames" on stdout.
"""
import struct
import sys

BURST = 0.001  # seconds: segments this close are one send() the card cut


def read_pcap(path):
    """(byte order, file header, frames as [sec, frac, bytearray, wire length, time in seconds])."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        order = "<"
    elif data[:4] in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        order = ">"
    else:
        raise ValueError("%s: not a classic pcap file" % path)
    per_sec = 10**9 if data[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 10**6
    if struct.unpack(order + "I", data[20:24])[0] != 1:
        raise ValueError("%s: not Ethernet" % path)
    out, off = [], 24
    while off + 16 <= len(data):
        sec, frac, cap, wire = struct.unpack(order + "IIII", data[off:off + 16])
        out.append([sec, frac, bytearray(data[off + 16:off + 16 + cap]), wire, sec + frac / per_sec])
        off += 16 + cap
    return order, data[:24], out


def tcp_of(b):
    """The TCP segment of an Ethernet frame, as a dict, or None."""
    if len(b) < 14:
        return None
    l3, et = 14, struct.unpack("!H", b[12:14])[0]
    if et == 0x8100 and len(b) >= 18:
        l3, et = 18, struct.unpack("!H", b[16:18])[0]
    if et == 0x0800 and len(b) >= l3 + 20 and b[l3] >> 4 == 4:
        ihl = (b[l3] & 15) * 4
        tot, frag = struct.unpack("!HH", b[l3 + 2:l3 + 4] + b[l3 + 6:l3 + 8])
        if b[l3 + 9] != 6 or frag & 0x3fff or tot < ihl + 20 or l3 + tot > len(b):
            return None
        t, end, addrs = l3 + ihl, l3 + tot, bytes(b[l3 + 12:l3 + 20])
    elif et == 0x86DD and len(b) >= l3 + 40 and b[l3] >> 4 == 6:
        plen = struct.unpack("!H", b[l3 + 4:l3 + 6])[0]
        if b[l3 + 6] != 6 or plen < 20 or l3 + 40 + plen > len(b):
            return None
        t, end, addrs = l3 + 40, l3 + 40 + plen, bytes(b[l3 + 8:l3 + 40])
    else:
        return None
    thl = (b[t + 12] >> 4) * 4
    if thl < 20 or t + thl > end:
        return None
    sport, dport, seq, ack = struct.unpack("!HHII", b[t:t + 12])
    half = len(addrs) // 2
    return {"l3": l3, "v": b[l3] >> 4, "payload": t + thl, "end": end,
            "key": (addrs[:half], addrs[half:], sport, dport), "seq": seq, "ack": ack,
            "flags": b[t + 13], "win": b[t + 14:t + 16]}


def rewrite(src, dst, max_payload=65000, keep_length=False):
    """Writes dst; returns (frames in, frames out, super-frames)."""
    order, head, frames = read_pcap(src)
    out = []
    runs = {}  # direction -> {"i": output index, "next": seq, "bytes": n, "seg": first segment}
    merged = {}  # output index -> first segment (its l3 and version)
    for fr in frames:
        seg = tcp_of(fr[2])
        if seg is None:
            out.append(fr)
            continue
        k = seg["key"]
        back = (k[1], k[0], k[3], k[2])
        data = bytes(fr[2][seg["payload"]:seg["end"]])
        run = runs.get(k)
        if data and run:
            first = run["seg"]
            if (seg["seq"] == run["next"] and seg["flags"] == first["flags"] and seg["ack"] == first["ack"]
                    and seg["win"] == first["win"] and run["bytes"] + len(data) <= max_payload
                    and fr[4] - run["t"] <= BURST):
                sfr = out[run["i"]]
                sfr[2] += data
                sfr[3] = len(sfr[2])
                run["next"] = (run["next"] + len(data)) & 0xFFFFFFFF
                run["bytes"] += len(data)
                run["t"] = fr[4]
                merged[run["i"]] = first
                continue
        runs.pop(k, None)  # anything else from this direction ends its run
        if data:
            runs.pop(back, None)  # data ends the other direction's run too
            fr = [fr[0], fr[1], bytearray(fr[2][:seg["end"]]), seg["end"], fr[4]]  # without link padding
            runs[k] = {"i": len(out), "next": (seg["seq"] + len(data)) & 0xFFFFFFFF, "bytes": len(data),
                       "seg": seg, "t": fr[4]}
        out.append(fr)
    for i, seg in merged.items():
        b, l3 = out[i][2], seg["l3"]
        if seg["v"] == 4:
            b[l3 + 2:l3 + 4] = struct.pack("!H", len(b) - l3 if keep_length else 0)
        else:
            b[l3 + 4:l3 + 6] = struct.pack("!H", len(b) - l3 - 40 if keep_length else 0)
    with open(dst, "wb") as f:
        f.write(head[:16] + struct.pack(order + "I", max(262144, max((len(x[2]) for x in out), default=0)))
                + head[20:24])
        for sec, frac, b, _, _ in out:
            f.write(struct.pack(order + "IIII", sec, frac, len(b), len(b)) + bytes(b))
    return len(frames), len(out), len(merged)


def main(argv):
    args = list(argv)
    max_payload, keep = 65000, False
    if "--keep-length" in args:
        args.remove("--keep-length")
        keep = True
    if "--max" in args:
        i = args.index("--max")
        max_payload = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 2:
        sys.exit(__doc__)
    n_in, n_out, n_super = rewrite(args[0], args[1], max_payload, keep)
    print("%s: %d frames -> %d frames, %d super-frames" % (args[0], n_in, n_out, n_super))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
