#!/usr/bin/env python3
"""timestamps - hostile capture times (issue 24): a pcapng whose interfaces
carry if_tsresol 0 and an if_tsoffset of +-2^62 seconds (pcapng §4.2), which
libpcap adds to every packet's seconds unchecked.

usage: tests/timestamps.py MXRAY

For each case, mxray reads the capture in every output mode and must: exit 3
(done, the capture was damaged), name TIMESTAMP_OUT_OF_RANGE in the summary,
and give latencies and durations that are finite and no larger than the
clamped range (2^62 ns) allows. Under the sanitizer build, a signed overflow
in any time difference aborts the run (UBSan), so the same cases catch it.
"""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcapgen  # noqa: E402

MAX_S = (1 << 62) / 1e9


def pcap_frames(path):
    with open(path, "rb") as f:
        data = f.read()
    off, out = 24, []
    while off < len(data):
        sec, usec, cap, _ = struct.unpack_from("<IIII", data, off)
        out.append((sec, usec, data[off + 16 : off + 16 + cap]))
        off += 16 + cap
    return out


def block(btype, body):
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def option(code, val):
    return struct.pack("<HH", code, len(val)) + val + b"\0" * (-len(val) % 4)


def write_pcapng(out, frames, offsets):
    """frames from pcap_frames; offsets: if_tsoffset of the client's and the
    server's interface (frames from 10.0.0.x are the client's)."""
    shb = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idbs = b""
    for off in offsets:
        opts = option(9, b"\x00") + option(14, struct.pack("<q", off)) + option(0, b"")
        idbs += block(1, struct.pack("<HHI", 1, 0, 262144) + opts)
    epbs = b""
    for sec, _usec, fr in frames:
        iface = 0 if fr[26:29] == bytes([10, 0, 0]) else 1
        t = sec  # if_tsresol 0: the unit is one second
        epbs += block(6, struct.pack("<IIIII", iface, t >> 32, t & 0xFFFFFFFF, len(fr), len(fr)) + fr)
    with open(out, "wb") as f:
        f.write(shb + idbs + epbs)


def numbers(obj, keys, acc):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in keys and isinstance(v, (int, float)):
                acc.append((k, v))
            numbers(v, keys, acc)
    elif isinstance(obj, list):
        for v in obj:
            numbers(v, keys, acc)
    return acc


def main():
    mx = sys.argv[1]
    fails = 0
    dialogue = [
        {"port": 25, "turns": [["s", "220 mx.example ESMTP\r\n"], ["c", "EHLO a\r\n"], ["s", "250 mx\r\n"],
                               ["c", "MAIL FROM:<a@b>\r\n"], ["s", "250 ok\r\n"], ["c", "QUIT\r\n"],
                               ["s", "221 bye\r\n"]]},
        {"port": 110, "turns": [["s", "+OK pop\r\n"], ["c", "CAPA\r\n"], ["s", "+OK\r\nTOP\r\n.\r\n"],
                                ["c", "QUIT\r\n"], ["s", "+OK\r\n"]]},
        {"port": 143, "turns": [["s", "* OK imap\r\n"], ["c", "a1 NOOP\r\n"], ["s", "a1 OK done\r\n"],
                                ["c", "a2 IDLE\r\n"], ["s", "+ idling\r\n"], ["c", "DONE\r\n"],
                                ["s", "a2 OK idle done\r\n"], ["c", "a3 LOGOUT\r\n"], ["s", "* BYE\r\na3 OK\r\n"]]},
    ]
    big = 1 << 62
    cases = {
        "plus-2^62": (big, big),
        "minus-2^62": (-big, -big),
        "client-minus-server-plus": (-big, big),
        "client-plus-server-minus": (big, -big),
        "int64-extremes": ((1 << 63) - 1, -(1 << 63)),
    }
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src.pcap")
        pcapgen.sessions_to_pcap(dialogue, src)
        frames = pcap_frames(src)
        for name, offs in cases.items():
            cap = os.path.join(tmp, name + ".pcapng")
            write_pcapng(cap, frames, offs)
            out = os.path.join(tmp, name + ".json")
            modes = [["--json", out], ["--html", os.path.join(tmp, name + ".html")], ["--explain"], ["--failures"],
                     ["audit"], ["-j2", "--json", "/dev/null"]]
            for m in modes:
                args = [mx, "-q", *m, cap] if m[0] != "audit" else [mx, "audit", cap]
                r = subprocess.run(args, capture_output=True, text=True, errors="replace")
                want = (3,) if m[0] != "audit" else (0, 3)
                if r.returncode not in want:
                    print(f"FAIL {name} {' '.join(m)}: exit {r.returncode}, wanted {want}\n{r.stderr[-600:]}")
                    fails += 1
            try:
                recs = [json.loads(x) for x in open(out)]
            except (OSError, ValueError) as e:
                print(f"FAIL {name}: JSON unreadable: {e}")
                fails += 1
                continue
            summary = [r for r in recs if r.get("type") == "summary"]
            if not summary or "TIMESTAMP_OUT_OF_RANGE" not in json.dumps(summary[-1].get("anomalies", {})):
                print(f"FAIL {name}: no TIMESTAMP_OUT_OF_RANGE in the summary")
                fails += 1
            bad = [(k, v) for k, v in numbers(recs, {"latency", "duration", "idle_seconds"}, [])
                   if not math.isfinite(v) or abs(v) > MAX_S + 1]
            if bad:
                print(f"FAIL {name}: times out of range: {bad[:5]}")
                fails += 1
            kinds = {r.get("type") for r in recs}
            for k in ("smtp.reply", "pop3.response", "imap.response"):
                if not any(t and t.startswith(k) for t in kinds):
                    print(f"FAIL {name}: no {k} record: the sessions were not dissected")
                    fails += 1
            print(f"{name}: {len(recs)} records, {'ok' if not fails else 'failures so far: %d' % fails}")
    print("timestamps: %s" % ("FAIL" if fails else "pass"))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
