#!/usr/bin/env python3
"""decrypted-export - a STARTTLS capture as a TLS-inspecting device exports it.

A TLS-terminating proxy or an "SSL inspection" firewall that writes what it
decrypted keeps the connection's addresses, ports and times but replaces
the TLS records with their plaintext: after `220 Ready to start TLS` (IMAP's
OK, POP3's +OK to STLS) the client "sends" EHLO in clear, not a
ClientHello.  This script makes such a capture from one of the lab's
keylog/ captures and its key log:

  scripts/lab/decrypted-export.py pcaps/keylog/NAME.pcap [--keys NAME.keys]
                                  [--out NAME-cleartext.pcap]

How: tshark decrypts with the key log (`-o tls.keylog_file:`); for every
TCP stream, `-z follow,tls,raw` gives each application-data record's
plaintext in order, and `-T fields -e tls.record.content_type` which frame
completes each such record (TLS 1.3's inner type; a record cut over several
segments is complete in its last).  Then, frame by frame:
  - the frames before the first TLS record of their direction are copied
    as they are (the cleartext dialogue up to the handshake);
  - from a direction's first TLS record on, a frame's payload becomes the
    plaintext of the application-data records it completes, in order
    (cut into segments of at most 1448 bytes, the lab's MSS, at the same
    time); a frame left with no payload (handshake, NewSessionTicket,
    close_notify, the first segments of a long record) is left out, unless
    it carries SYN, FIN or RST, and so is a pure ACK that, once renumbered,
    repeats its direction's last ACK (it acknowledged handshake bytes);
  - sequence numbers are renumbered per direction over the bytes that
    remain, ACKs follow the peer's renumbering (an ACK in the middle of a
    record acknowledges what was delivered before it), IP total length and
    the IPv4 and TCP checksums are recomputed; addresses, ports, TCP options,
    IP ids and times are kept.
The output depends on nothing but the input capture, the key log and
tshark's decryption: made again, it is the same bytes.

With NAME.truth.json beside the input, NAME-cleartext.truth.json is written
too: the same sessions, transcripts, messages and deliveries, with every
transcript entry "tls": false (it crossed in clear in this capture), no
tls_version/tls_cipher/keylog, and "decrypted_export" naming the source
capture and the TLS it had; NAME-cleartext.d is a symlink to NAME.d.
"""
import argparse
import json
import os
import re
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests"))
import pcapgen  # noqa: E402

MSS = 1448
SYN, RST, FIN = 0x02, 0x04, 0x01


def tshark(args):
    r = subprocess.run(["tshark"] + args, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("tshark %s failed: %s" % (" ".join(args), r.stderr.strip()[-300:]))
    return r.stdout


def read_pcap(path):
    """[(ts_sec, ts_usec, frame bytes)] of a classic little-endian pcap of
    Ethernet frames (tcpdump's on lo), and its header."""
    order, head, frames = pcapgen.read_pcap(path)
    if head[:4] != b"\xd4\xc3\xb2\xa1":
        raise SystemExit("%s: not a little-endian microsecond pcap" % path)
    if struct.unpack("<I", head[20:24])[0] != 1:
        raise SystemExit("%s: link type is not Ethernet" % path)
    for n, (sec, usec, fr, wire) in enumerate(frames):
        if len(fr) != wire:
            raise SystemExit("%s: frame %d is cut (snaplen)" % (path, n + 1))
    return head, [(sec, usec, bytes(fr)) for sec, usec, fr, wire in frames]


csum = pcapgen.csum


def parse(fr):
    """(ip header, tcp header, payload, endpoints) of an Ethernet/IPv4/TCP frame."""
    if fr[12:14] != b"\x08\x00" or fr[23] != 6:
        return None
    ihl = (fr[14] & 0xF) * 4
    tot = struct.unpack("!H", fr[16:18])[0]
    ip = fr[14:14 + ihl]
    tcp_off = 14 + ihl
    thl = (fr[tcp_off + 12] >> 4) * 4
    tcp = fr[tcp_off:tcp_off + thl]
    payload = fr[tcp_off + thl:14 + tot]
    sport, dport = struct.unpack("!HH", tcp[:4])
    return ip, tcp, payload, (ip[12:16], sport, ip[16:20], dport)


def build(eth, ip, tcp, seq, ack, payload):
    tcp = bytearray(tcp)
    struct.pack_into("!II", tcp, 4, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF)
    struct.pack_into("!H", tcp, 16, 0)
    pseudo = struct.pack("!4s4sBBH", ip[12:16], ip[16:20], 0, 6, len(tcp) + len(payload))
    struct.pack_into("!H", tcp, 16, csum(pseudo + bytes(tcp) + payload))
    ip = bytearray(ip)
    struct.pack_into("!H", ip, 2, len(ip) + len(tcp) + len(payload))
    struct.pack_into("!H", ip, 10, 0)
    struct.pack_into("!H", ip, 10, csum(bytes(ip)))
    return eth + bytes(ip) + bytes(tcp) + payload


def app_records(cap, keys):
    """frame number -> number of application-data records it completes, and
    frame number -> tcp.stream; frames carrying any TLS record."""
    rows = tshark(["-r", cap, "-o", "tls.keylog_file:" + keys, "-Y", "tls", "-T", "fields",
                   "-E", "occurrence=a", "-E", "aggregator=,",
                   "-e", "frame.number", "-e", "tcp.stream", "-e", "tls.record.content_type"])
    count, stream = {}, {}
    for ln in rows.splitlines():
        f = ln.split("\t")
        n = int(f[0])
        stream[n] = int(f[1])
        count[n] = f[2].split(",").count("23")
    return count, stream


def follow_chunks(cap, keys, st):
    """The plaintext records of stream st, in order: [(node, bytes)]; node 0
    is the side tshark lists first (its address and port are returned)."""
    out = tshark(["-r", cap, "-o", "tls.keylog_file:" + keys, "-q", "-z",
                  "follow,tls,raw,%d" % st])
    node0, chunks, body = None, [], False
    for ln in out.splitlines():
        m = re.match(r"Node 0: (.*):(\d+)$", ln)
        if m:
            node0 = int(m.group(2))
            continue
        if ln.startswith("Node 1:"):
            body = True
            continue
        if not body or ln.startswith("====") or not ln.strip():
            continue
        chunks.append((1 if ln.startswith("\t") else 0, bytes.fromhex(ln.strip())))
    return node0, chunks


def export(cap, keys, out):
    head, frames = read_pcap(cap)
    count, tls_stream = app_records(cap, keys)
    parsed = [parse(fr) for _, _, fr in frames]
    # the plaintext each frame delivers, from follow's records in order
    queues = {}
    for st in sorted(set(tls_stream.values())):
        node0, chunks = follow_chunks(cap, keys, st)
        q = {}
        for node, data in chunks:
            q.setdefault(node, []).append(data)
        queues[st] = (node0, q)
    deliver = {}
    for n in sorted(count):
        st = tls_stream[n]
        node0, q = queues[st]
        sport = parsed[n - 1][3][1]
        node = 0 if sport == node0 else 1
        take = []
        for _ in range(count[n]):
            if not q.get(node):
                raise SystemExit("frame %d: tshark's follow has fewer records than the frames" % n)
            take.append(q[node].pop(0))
        deliver[n] = b"".join(take)
    for st, (_, q) in queues.items():
        if any(q.values()):
            raise SystemExit("stream %d: follow records left over: %d"
                             % (st, sum(len(v) for v in q.values())))
    # renumber: per direction (src endpoint), old end seq -> new end seq
    tls_on = set()          # directions whose TLS has started
    state = {}              # direction -> {"isn", "new", "map": [(old_end, new_end)]}
    w = open(out, "wb")
    w.write(head)
    kept = 0
    for n, ((sec, usec, fr), p) in enumerate(zip(frames, parsed), 1):
        if p is None:
            w.write(struct.pack("<IIII", sec, usec, len(fr), len(fr)) + fr)
            kept += 1
            continue
        ip, tcp, payload, (sa, sp, da, dp) = p
        d, back = (sa, sp, da, dp), (da, dp, sa, sp)
        seq, ack = struct.unpack("!II", tcp[4:12])
        flags = tcp[13]
        st = state.setdefault(d, {"isn": None, "new": 0, "map": []})
        if flags & SYN:
            st["isn"] = seq
        if n in tls_stream:
            tls_on.add(d)
        if d in tls_on:
            data = deliver.get(n, b"")
        else:
            data = payload
        # this frame's old bytes end at seq + len(payload); the new stream
        # has st["new"] bytes before this frame's data
        rel = (seq - st["isn"] - 1) & 0xFFFFFFFF if st["isn"] is not None else None
        new_seq = (st["isn"] + 1 + st["new"]) if st["isn"] is not None else seq
        if flags & SYN:
            new_seq = seq
        peer = state.get(back)
        new_ack = ack
        if flags & 0x10 and peer and peer["isn"] is not None:
            arel = (ack - peer["isn"] - 1) & 0xFFFFFFFF
            best = 0
            for old_end, new_end in peer["map"]:
                if old_end <= arel:
                    best = new_end
            fin = 1 if peer.get("fin_rel") is not None and arel > peer["fin_rel"] else 0
            new_ack = peer["isn"] + 1 + best + fin if arel else ack
        if rel is not None and payload:
            st["map"].append((rel + len(payload), st["new"] + len(data)))
        if flags & FIN and rel is not None:
            st["fin_rel"] = rel + len(payload)
        st["new"] += len(data)
        if not data and payload and not flags & (SYN | FIN | RST):
            continue
        if (not data and not flags & (SYN | FIN | RST) and (d in tls_on or back in tls_on)
                and st.get("last_ack") == new_ack):
            continue            # it acknowledged handshake bytes: now a duplicate
        st["last_ack"] = new_ack
        eth = fr[:14]
        pieces = [data[i:i + MSS] for i in range(0, len(data), MSS)] or [b""]
        off = 0
        for k, piece in enumerate(pieces):
            t = bytearray(tcp)
            if k < len(pieces) - 1:
                t[13] = flags & ~(FIN | 0x08)      # FIN and PSH on the last piece only
            nf = build(eth, ip, bytes(t), new_seq + off, new_ack, piece)
            w.write(struct.pack("<IIII", sec, usec, len(nf), len(nf)) + nf)
            kept += 1
            off += len(piece)
    w.close()
    return kept, len(frames)


def export_truth(src_truth, out_truth, out_cap):
    with open(src_truth, encoding="utf-8") as f:
        t = json.load(f)
    base_in = src_truth[:-len(".truth.json")]
    name = os.path.basename(base_in)
    t["scenario"] = t["scenario"] + "-cleartext"
    t["summary"] = ("decrypted export of %s.pcap (scripts/lab/decrypted-export.py): the "
                    "dialogue after STARTTLS/STLS in clear, as a TLS-inspecting device "
                    "writes it. Original: %s" % (name, t["summary"]))
    t["capture"] = os.path.basename(out_cap)
    for s in t["sessions"]:
        exp = {"source": name + ".pcap"}
        for k in ("tls_version", "tls_cipher"):
            if k in s:
                exp[k] = s.pop(k)
        s.pop("keylog", None)
        s["decrypted_export"] = exp
        for e in s["transcript"]:
            e["tls"] = False
    for m in t.get("messages") or []:
        for w in m.get("sent_in") or []:
            w["tls"] = False
    with open(out_truth, "w", encoding="utf-8") as f:
        json.dump(t, f, indent=1, ensure_ascii=False)
        f.write("\n")
    link = out_truth[:-len(".truth.json")] + ".d"
    if os.path.islink(link):
        os.unlink(link)
    if os.path.isdir(base_in + ".d"):
        os.symlink(name + ".d", link)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("capture")
    ap.add_argument("--keys")
    ap.add_argument("--out")
    a = ap.parse_args()
    base = re.sub(r"\.pcap$", "", a.capture)
    keys = a.keys or base + ".keys"
    out = a.out or base + "-cleartext.pcap"
    kept, total = export(a.capture, keys, out)
    print("%s: %d of %d frames" % (out, kept, total))
    if os.path.isfile(base + ".truth.json"):
        export_truth(base + ".truth.json", re.sub(r"\.pcap$", "", out) + ".truth.json", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
