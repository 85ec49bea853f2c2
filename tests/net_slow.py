#!/usr/bin/env python3
"""net_slow.py - a transfer slowed by the network is seen and explained (issue 27).

Crafts (tests/pcapgen.py) a POP3 session with three RETRs of the same size:
the second loses its third server segment, the client acknowledges the hole
with each later segment (all but the first of those ACKs are duplicates), and
the segment comes again one second later. Checks:
  - the flow record: s2c retransmissions 1, c2s duplicate_acks, the s2c
    stall (about 1 s) ending at the retransmission's ACK, the handshake's rtt;
  - the second RETR's response: complete_ms over a second, and a "network"
    object naming the retransmission's frame and the stall; the other two have
    first_byte_ms and complete_ms and no "network";
  - the finding MX-NETWORK-SLOW-TRANSFER (low) with the retransmission's frame
    as evidence, and none on a copy of the session without the loss;
  - with tshark, its tcp.analysis counts on the capture agree
    (transport_tshark.py's comparison).

  net_slow.py MXRAY
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pcapgen  # noqa: E402
import transport_tshark  # noqa: E402
from long_line_frames import Counter  # noqa: E402  (a PcapWriter that counts frames)

ACK, PSH = pcapgen.ACK, pcapgen.PSH


def message(i):
    body = b"".join(b"line %05d of message %d, padding padding padding\r\n" % (k, i) for k in range(200))
    return b"From: a@example.org\r\nSubject: m%d\r\n\r\n" % i + body


def session(path, lose):
    """Writes the capture; returns the frames of the retransmission and of the ACK after it."""
    with Counter(path) as w:
        c = pcapgen.TcpConn(w, [10, 0, 0, 1], [10, 0, 1, 1], 40000, 110, [1700000000 * 1000000], step=200)
        c.handshake()
        c.send(False, b"+OK ready\r\n")
        for cmd, rep in ((b"USER u\r\n", b"+OK\r\n"), (b"PASS p\r\n", b"+OK logged in\r\n")):
            c.send(True, cmd)
            c.send(False, rep)
        got = None
        for i in (1, 2, 3):
            msg = message(i)
            c.send(True, b"RETR %d\r\n" % i)
            data = b"+OK %d octets\r\n" % len(msg) + msg + b".\r\n"
            segs = [data[k:k + 1460] for k in range(0, len(data), 1460)]
            if not (lose and i == 2):
                for s in segs:
                    c.seg(False, PSH | ACK, s)
                c.seg(True, ACK)
                continue
            # The third segment is lost on the way: the client acknowledges
            # up to it with each later one, then it comes again after 1 s.
            base = c.nxt[1]
            offs = [sum(len(x) for x in segs[:k]) for k in range(len(segs))]
            for k, s in enumerate(segs):
                seq = (base + offs[k]) & 0xFFFFFFFF
                if k != 2:
                    c.seg(False, PSH | ACK, s, seq=seq)
                if k >= 3:
                    c.seg(True, ACK, ack=(base + offs[2]) & 0xFFFFFFFF)
            c.clock[0] += 1000000
            c.seg(False, PSH | ACK, segs[2], seq=(base + offs[2]) & 0xFFFFFFFF, advance=False)
            retx = w.n
            c.seg(True, ACK)
            got = (retx, w.n, len(segs) - 4)
        c.send(True, b"QUIT\r\n")
        c.send(False, b"+OK bye\r\n")
        c.close()
    return got


def records(mxray, path):
    out = subprocess.run([mxray, "--json", "-", path], capture_output=True, check=True).stdout.decode()
    return [json.loads(x) for x in out.splitlines() if x.strip()]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    mxray = sys.argv[1]
    problems = []

    def want(cond, what):
        if not cond:
            problems.append(what)

    with tempfile.TemporaryDirectory() as tmp:
        slow, clean = os.path.join(tmp, "slow.pcap"), os.path.join(tmp, "clean.pcap")
        retx, acked, dups = session(slow, True)
        session(clean, False)
        recs = records(mxray, slow)
        flow = next(r for r in recs if r["type"] == "flow")
        want(flow["s2c"]["retransmissions"] == 1, "s2c retransmissions %s, want 1" % flow["s2c"]["retransmissions"])
        want(flow["c2s"]["duplicate_acks"] == dups,
             "c2s duplicate_acks %s, want %d" % (flow["c2s"]["duplicate_acks"], dups))
        want(flow["s2c"].get("stall_ms", 0) >= 1000 and flow["s2c"].get("stall_frames", [0, 0])[1] == acked,
             "s2c stall %s %s, want >= 1000 ms ending at frame %d" %
             (flow["s2c"].get("stall_ms"), flow["s2c"].get("stall_frames"), acked))
        want(flow.get("rtt", {}).get("frames") == [1, 2, 3], "rtt %s" % flow.get("rtt"))
        retrs = [r for r in recs if r["type"] == "pop3.response" and r.get("answers", {}).get("command") == "RETR"]
        want(len(retrs) == 3, "%d RETR responses" % len(retrs))
        if len(retrs) == 3:
            for i, r in enumerate(retrs):
                want("first_byte_ms" in r and "complete_ms" in r, "RETR %d: no times" % (i + 1))
                if i == 1:
                    net = r.get("network", {})
                    want(r.get("complete_ms", 0) > 1000, "RETR 2 complete_ms %s" % r.get("complete_ms"))
                    want(net.get("retransmissions") == 1 and retx in net.get("frames", []),
                         "RETR 2 network %s, want the retransmission in frame %d" % (net, retx))
                    want(net.get("stall_ms", 0) >= 1000, "RETR 2 stall %s" % net.get("stall_ms"))
                else:
                    want("network" not in r and r.get("complete_ms", 1e9) < 100,
                         "RETR %d: %s ms, network %s" % (i + 1, r.get("complete_ms"), r.get("network")))
        fnd = [r for r in recs if r["type"] == "finding" and r["id"] == "MX-NETWORK-SLOW-TRANSFER"]
        want(len(fnd) == 1 and fnd[0]["severity"] == "low" and fnd[0]["evidence"][0]["frames"][0] == retx,
             "finding %s, want one (low) with evidence from frame %d" % (fnd, retx))
        fnd = [r for r in records(mxray, clean) if r["type"] == "finding" and r["id"] == "MX-NETWORK-SLOW-TRANSFER"]
        want(not fnd, "finding on the clean session: %s" % fnd)
        if shutil.which("tshark"):
            p, n, m = transport_tshark.check(mxray, slow)
            problems += ["tshark: " + x for x in p]
            want(m >= 1 + dups, "tshark marked %d frames, want %d (the retransmission, the duplicate ACKs)" % (m, 1 + dups))
        else:
            print("net_slow: tshark not found: its comparison skipped")
    for p in problems:
        print("FAIL " + p)
    print("net_slow: %s" % ("ok" if not problems else "%d problems" % len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
