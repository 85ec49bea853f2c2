#!/usr/bin/env python3
"""Derive impaired variants of a lab capture, reproducibly (seeded).

  scripts/lab/impair.py IN.pcap OUTDIR [--seed N] [--kinds k1,k2,...]

Kinds (each writes OUTDIR/<proto>-<name>-<kind>.pcap and .impair.json):
  drop        drops a few TCP segments that carry payload
  reorder     swaps a few pairs of neighbouring payload segments of one flow
  duplicate   repeats a few payload segments right after themselves
  overlap     after a payload segment, a retransmission that overlaps it and
              the next bytes, carrying DIFFERENT bytes in the overlap
  midstream   starts the capture in the middle of the conversation
  snaplen     every packet cut to 96 bytes (caplen < len)
  stall       a loss repaired by a timeout, as a capture on the receiver's
              side shows it: the largest payload segment in the middle of a
              burst is lost before the capture point (left out), and comes
              again 1 s after the peer's ACK of it was due, just before that
              ACK; the ACK and everything after it come 1 s later (not in the
              default kinds: --kinds stall)

The .impair.json names every change with frame numbers (from 1, as
Wireshark counts) in the input and in the output, so reassembly tests know
exactly what to expect.  Pure standard library; reads and writes classic
pcap with Ethernet/IPv4/TCP, as the lab produces.
"""
import argparse
import json
import os
import random
import struct
import sys

KINDS = ["drop", "reorder", "duplicate", "overlap", "midstream", "snaplen"]
STALL_US = 1000000  # the retransmission timeout the stall kind plays


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    if magic not in (0xa1b2c3d4, 0xa1b23c4d):
        raise SystemExit("impair: %s: not a little-endian classic pcap" % path)
    hdr = data[:24]
    linktype = struct.unpack("<I", data[20:24])[0]
    if linktype != 1:
        raise SystemExit("impair: %s: link type %d, want Ethernet" % (path, linktype))
    pkts = []
    off = 24
    while off + 16 <= len(data):
        ts_s, ts_u, incl, orig = struct.unpack("<IIII", data[off:off + 16])
        pkts.append({"ts": (ts_s, ts_u), "data": data[off + 16:off + 16 + incl],
                     "orig": orig})
        off += 16 + incl
    return hdr, pkts


def write_pcap(path, hdr, pkts, snaplen=None):
    if snaplen is not None:
        hdr = hdr[:16] + struct.pack("<I", snaplen) + hdr[20:]
    with open(path, "wb") as f:
        f.write(hdr)
        for p in pkts:
            d = p["data"]
            f.write(struct.pack("<IIII", p["ts"][0], p["ts"][1], len(d), p["orig"]))
            f.write(d)


def parse(p):
    """Offsets of the TCP segment in an Ethernet/IPv4 frame, or None."""
    d = p["data"]
    if len(d) < 14 + 20 or d[12:14] != b"\x08\x00":
        return None
    ihl = (d[14] & 0x0f) * 4
    if d[14 + 9] != 6:
        return None
    tot = struct.unpack(">H", d[16:18])[0]
    t = 14 + ihl
    if len(d) < t + 20:
        return None
    doff = (d[t + 12] >> 4) * 4
    sport, dport, seq = struct.unpack(">HHI", d[t:t + 8])
    pl_off = t + doff
    pl_len = 14 + tot - pl_off
    return {"ip": 14, "tcp": t, "pl": pl_off, "pl_len": pl_len,
            "flow": (d[26:30], sport, d[30:34], dport), "seq": seq}


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff


def fix(d):
    """Recompute IPv4 total length and checksum and the TCP checksum."""
    d = bytearray(d)
    ihl = (d[14] & 0x0f) * 4
    struct.pack_into(">H", d, 16, len(d) - 14)
    struct.pack_into(">H", d, 24, 0)
    struct.pack_into(">H", d, 24, csum(bytes(d[14:14 + ihl])))
    t = 14 + ihl
    seg = bytes(d[t:])
    seg = seg[:16] + b"\0\0" + seg[18:]
    pseudo = bytes(d[26:34]) + struct.pack(">BBH", 0, 6, len(seg))
    struct.pack_into(">H", d, t + 16, csum(pseudo + seg))
    return bytes(d)


def _alter(c):
    if 0x41 <= c <= 0x5a or 0x61 <= c <= 0x7a:
        return c ^ 0x20
    if 0x30 <= c <= 0x39:
        return 0x30 + (c - 0x30 + 1) % 10
    return c


def payload_frames(pkts):
    return [i for i, p in enumerate(pkts)
            if (lambda x: x is not None and x["pl_len"] > 0)(parse(p))]


def pick(rng, cands, n):
    n = min(n, len(cands))
    return sorted(rng.sample(cands, n))


def impair(kind, pkts, rng):
    """Returns (new packet list, list of change records)."""
    changes = []
    data_idx = payload_frames(pkts)
    # keep the first payload segments (greetings) intact so tests can start
    cands = data_idx[2:]
    if kind == "drop":
        gone = set(pick(rng, cands, 3))
        out = [p for i, p in enumerate(pkts) if i not in gone]
        for i in sorted(gone):
            changes.append({"dropped_input_frame": i + 1,
                            "payload_len": parse(pkts[i])["pl_len"]})
        return out, changes
    if kind == "reorder":
        out = list(pkts)
        used = set()
        for i in pick(rng, cands, 6):
            fi = parse(pkts[i])["flow"]
            j = next((k for k in data_idx if k > i and parse(pkts[k])["flow"] == fi), None)
            if j is None or i in used or j in used or len(used) >= 6:
                continue
            used |= {i, j}
            out[i], out[j] = out[j], out[i]
            changes.append({"swapped_input_frames": [i + 1, j + 1]})
        return out, changes
    if kind == "duplicate":
        dup = set(pick(rng, cands, 3))
        out = []
        for i, p in enumerate(pkts):
            out.append(p)
            if i in dup:
                out.append(dict(p))
                changes.append({"duplicated_input_frame": i + 1,
                                "output_frames": [len(out) - 1, len(out)]})
        return out, changes
    if kind == "overlap":
        big = [i for i in cands if parse(pkts[i])["pl_len"] >= 8 and
               any(_alter(c) != c for c in pkts[i]["data"][parse(pkts[i])["pl"]:])]
        sel = set(pick(rng, big, 2))
        out = []
        for i, p in enumerate(pkts):
            out.append(p)
            if i not in sel:
                continue
            x = parse(p)
            d = p["data"]
            pl = d[x["pl"]:x["pl"] + x["pl_len"]]
            k = x["pl_len"] // 2
            # overlap the second half with different bytes: letters change
            # case, digits rotate, CR/LF and the rest stay, so the lines
            # keep their shape but their text differs
            new = bytes(_alter(c) for c in pl[k:])
            nd = bytearray(d[:x["pl"]] + new)
            struct.pack_into(">I", nd, x["tcp"] + 4, (x["seq"] + k) & 0xffffffff)
            nd = fix(bytes(nd))
            out.append({"ts": p["ts"], "data": nd, "orig": len(nd)})
            changes.append({"after_input_frame": i + 1, "output_frame": len(out),
                            "overlap_seq": (x["seq"] + k) & 0xffffffff,
                            "overlap_len": len(new),
                            "original_bytes": pl[k:].decode("latin-1"),
                            "retransmitted_bytes": new.decode("latin-1")})
        return out, changes
    if kind == "midstream":
        start = data_idx[len(data_idx) // 3] if data_idx else 0
        changes.append({"first_input_frame": start + 1,
                        "skipped_frames": start})
        return pkts[start:], changes
    if kind == "snaplen":
        out = []
        for p in pkts:
            out.append({"ts": p["ts"], "data": p["data"][:96], "orig": p["orig"]})
        changes.append({"snaplen": 96,
                        "truncated_frames": sum(1 for p in pkts if len(p["data"]) > 96)})
        return out, changes
    if kind == "stall":
        def ack_of(k):
            y = parse(pkts[k])
            return y, struct.unpack(">I", pkts[k]["data"][y["tcp"] + 8:y["tcp"] + 12])[0]

        def acker(k, end, back):
            """The first packet after k of the reverse flow that acknowledges end."""
            for m in range(k + 1, len(pkts)):
                y = parse(pkts[m])
                if y is not None and y["flow"] == back and ((ack_of(m)[1] - end) & 0xffffffff) < 1 << 31:
                    return m
            return None

        # a segment in the middle of a burst: more data of its direction
        # follows before the peer acknowledges it
        best = None
        for k in cands:
            x = parse(pkts[k])
            end = (x["seq"] + x["pl_len"]) & 0xffffffff
            back = (x["flow"][2], x["flow"][3], x["flow"][0], x["flow"][1])
            j = acker(k, end, back)
            if j is not None and any(parse(pkts[m])["flow"] == x["flow"] for m in data_idx if k < m < j):
                if best is None or x["pl_len"] > best[2]:
                    best = (k, j, x["pl_len"])
        i, j, n = best

        def later(p, us):
            t = p["ts"][0] * 1000000 + p["ts"][1] + us
            return dict(p, ts=(t // 1000000, t % 1000000))
        retx = dict(later(pkts[j], STALL_US - 100), data=pkts[i]["data"], orig=pkts[i]["orig"])
        out = pkts[:i] + pkts[i + 1:j] + [retx] + [later(p, STALL_US) for p in pkts[j:]]
        changes.append({"lost_input_frame": i + 1, "payload_len": n,
                        "retransmission_output_frame": j, "ack_output_frame": j + 1,
                        "delay_us": STALL_US})
        return out, changes
    raise ValueError(kind)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("outdir")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--kinds", default=",".join(KINDS))
    a = ap.parse_args()
    hdr, pkts = read_pcap(a.input)
    # name variants <proto>-<scenario>-<kind>, e.g. smtp-attachment-drop
    proto = os.path.basename(os.path.dirname(os.path.abspath(a.input)))
    src = "%s/%s" % (proto, os.path.basename(a.input))
    base = "%s-%s" % (proto, os.path.basename(a.input).rsplit(".", 1)[0])
    os.makedirs(a.outdir, exist_ok=True)
    for kind in a.kinds.split(","):
        rng = random.Random("%d/%s/%s" % (a.seed, base, kind))
        out, changes = impair(kind, pkts, rng)
        name = "%s-%s" % (base, kind)
        write_pcap(os.path.join(a.outdir, name + ".pcap"), hdr, out,
                   snaplen=96 if kind == "snaplen" else None)
        meta = {"source": src, "kind": kind, "seed": a.seed,
                "input_frames": len(pkts), "output_frames": len(out),
                "changes": changes}
        with open(os.path.join(a.outdir, name + ".impair.json"), "w") as f:
            json.dump(meta, f, indent=1, ensure_ascii=False)
            f.write("\n")
        print("%s/%s.pcap: %d changes" % (a.outdir, name, len(changes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
