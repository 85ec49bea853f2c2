#!/usr/bin/env python3
"""fuzz-seeds - writes fuzz seed inputs from the project's own captures (pcaps/).

usage: fuzz-seeds [--max-bytes N] [TARGET...]

For every SMTP flow (server port 25 or 587), POP3 flow (110), IMAP flow
(143), implicit-TLS flow (465, 993, 995) and proxy flow (1080, 3128, 8080, 8888: the tunnel
target) of every capture under pcaps/, the payload in capture order becomes one
seed in tests/fuzz/corpus/<proto>/, in the format of the dissector targets
(tests/fuzz/dialogue.h): records of a header byte (bit 0:
direction, 1 = server to client; bits 1-7: length - 1) and up to 128 bytes.
Only captures the project recorded itself are used (never ../shared).
"""
import argparse, hashlib, os, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGETS = {"smtp": {25, 587}, "pop3": {110}, "imap": {143}, "tls": {465, 993, 995},
           "tunnel": {1080, 3128, 8080, 8888}}


def seeds_of(path, ports):
    out = subprocess.run(["tshark", "-r", path, "-Y", "tcp.len > 0", "-T", "fields", "-E", "separator=/t",
                          "-e", "tcp.stream", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.payload"],
                         capture_output=True, text=True, check=True).stdout
    streams = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) != 4 or not parts[3]:
            continue
        # tshark's SOCKS dissector repeats tcp.payload for the TCP it sees inside: the first is the segment's
        stream, sport, dport, payload = parts[0], int(parts[1]), int(parts[2]), parts[3]
        if sport not in ports and dport not in ports:
            continue
        streams.setdefault(stream, []).append((1 if sport in ports else 0, bytes.fromhex(payload.split(",")[0].replace(":", ""))))
    return streams


def encode(segments, limit):
    out = bytearray()
    for d, data in segments:
        for i in range(0, len(data), 128):
            chunk = data[i:i + 128]
            out.append(((len(chunk) - 1) << 1) | d)
            out += chunk
            if len(out) >= limit:
                return bytes(out[:limit])
    return bytes(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-bytes", type=int, default=8192)
    ap.add_argument("targets", nargs="*", help="only these targets (default: all)")
    a = ap.parse_args()
    for target, ports in TARGETS.items():
        if a.targets and target not in a.targets:
            continue
        dest = os.path.join(ROOT, "tests", "fuzz", "corpus", target)
        os.makedirs(dest, exist_ok=True)
        n = 0
        for dirpath, _, files in os.walk(os.path.join(ROOT, "pcaps")):
            for f in sorted(files):
                if not f.endswith((".pcap", ".pcapng")):
                    continue
                for stream, segs in seeds_of(os.path.join(dirpath, f), ports).items():
                    data = encode(segs, a.max_bytes)
                    name = f"{os.path.splitext(f)[0]}-{stream}-{hashlib.sha1(data).hexdigest()[:8]}"
                    with open(os.path.join(dest, name), "wb") as out:
                        out.write(data)
                    n += 1
        print(f"fuzz-seeds: {n} seeds in {os.path.relpath(dest, ROOT)}")

if __name__ == "__main__":
    sys.exit(main())
