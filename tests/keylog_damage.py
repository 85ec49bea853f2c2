#!/usr/bin/env python3
"""keylog_damage - decryption (--tls-keylog) on damaged captures and wrong keys.

For the key-log captures of pcaps/keylog/ (NAME.pcap with NAME.keys), copies
are made with one kind of damage each, and mxray must name it, never crash,
hang or make up bytes:

  flip    one byte of an encrypted record from the client changed: the record
          does not decrypt (AEAD tag, CBC padding), TLS_DECRYPT_FAILED is
          raised, the tls record says decryption "failed", and no record built
          from decrypted bytes follows in that direction after it;
  hole    one segment lying wholly inside a record's body dropped (a TCP gap
          inside the record, its framing intact): that record is lost to the
          dissector, yet with an AEAD suite the records after it still decrypt
          (their nonce counts the lost one, RFC 8446 §5.3): decryption stays
          "ok", and commands after the hole are still read;
  cut     the capture ends inside a record: TLS_TRUNCATED, nothing decrypted
          from the cut record;
  wrongkey every secret of the key log changed in its last hex digit:
          decryption "failed" on the first record, nothing decrypted.

Every output line must be JSON and mxray must exit 0 or 3.

usage: tests/keylog_damage.py MXRAY
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import pcapgen  # noqa: E402
KEYLOG = os.path.join(ROOT, "pcaps", "keylog")
MAIL_PORTS = {25, 587, 465, 110, 995, 143, 993}


def read_pcap(path):
    """(global header, [(record header, frame bytes)]) of a classic pcap."""
    order, head, frames = pcapgen.read_pcap(path)
    return head, [[struct.pack(order + "IIII", sec, frac, len(fr), wire), fr] for sec, frac, fr, wire in frames]


def write_pcap(path, head, frames):
    with open(path, "wb") as f:
        f.write(head)
        for rec, fr in frames:
            f.write(rec)
            f.write(bytes(fr))


def tcp_of(frame):
    """(payload offset, payload length, to_server, seq) of an Ethernet/IPv4 TCP frame, or None."""
    if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
        return None
    ihl = (frame[14] & 15) * 4
    tot = struct.unpack("!H", frame[16:18])[0]
    t = 14 + ihl
    sport, dport, seq = struct.unpack("!HHI", frame[t:t + 8])
    doff = (frame[t + 12] >> 4) * 4
    start = t + doff
    end = 14 + tot
    return start, end - start, dport in MAIL_PORTS, seq


def client_records(frames):
    """The client's TLS records, as (first byte's stream offset, header+body length), and
    each client payload frame as (index, stream start, stream end, payload offset)."""
    segs, isn = [], None
    for i, (_, fr) in enumerate(frames):
        t = tcp_of(fr)
        if not t or not t[2] or not t[1]:
            continue
        start, n, _, seq = t
        if isn is None:
            isn = seq
        segs.append((i, (seq - isn) & 0xffffffff, ((seq - isn) & 0xffffffff) + n, start))
    stream = bytearray()
    for i, a, b, start in segs:
        if a == len(stream):
            stream += frames[i][1][start:start + (b - a)]
    # The TLS records begin at the first 0x16 0x03 (the ClientHello after STARTTLS, or byte 0).
    pos = stream.find(b"\x16\x03")
    recs = []
    while pos >= 0 and pos + 5 <= len(stream):
        n = struct.unpack("!H", stream[pos + 3:pos + 5])[0]
        recs.append((pos, 5 + n, stream[pos]))
        pos += 5 + n
    return recs, segs


def run(mxray, pcap, keys):
    out = subprocess.run([mxray, "-q", "-j0", "--tls-keylog", keys, "--json", "-", pcap],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    recs = [json.loads(l) for l in out.stdout.decode("utf-8").splitlines()]
    return out.returncode, recs


def check(name, cond, failures, what):
    if not cond:
        failures.append(f"{name}: {what}")


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1])
        return 2
    mxray = os.path.abspath(sys.argv[1])
    names = sorted(f[:-5] for f in os.listdir(KEYLOG) if f.endswith(".keys"))
    failures, runs = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            pcap, keys = os.path.join(KEYLOG, name + ".pcap"), os.path.join(KEYLOG, name + ".keys")
            rc, base = run(mxray, pcap, keys)
            tls = [r for r in base if r["type"] == "tls"]
            if not tls or tls[0].get("decryption") != "ok":
                continue  # the session the key log leaves out
            head, frames = read_pcap(pcap)
            recs, segs = client_records(frames)
            app = [r for r in recs if r[2] == 23]
            # flip: the last byte (the tag, or the CBC padding) of the client's last record that
            # carries data and lies in one frame.
            target = None
            for pos, n, _ in reversed(app[1:]):
                for i, a, b, start in segs:
                    if a <= pos and pos + n <= b:
                        target = (i, start + (pos + n - 1 - a))
                        break
                if target:
                    break
            if target:
                fr = [[h, bytearray(f)] for h, f in frames]
                fr[target[0]][1][target[1]] ^= 0x01
                out = os.path.join(tmp, name + "-flip.pcap")
                write_pcap(out, head, fr)
                rc, got = run(mxray, out, keys)
                runs += 1
                check(name + " flip", rc in (0, 3), failures, f"exit {rc}")
                check(name + " flip", any(r["type"] == "anomaly" and r.get("name") == "TLS_DECRYPT_FAILED"
                                          for r in got), failures, "no TLS_DECRYPT_FAILED")
                check(name + " flip", any(r["type"] == "tls" and r.get("decryption") == "failed" for r in got),
                      failures, "decryption is not 'failed'")
            # hole: a client segment wholly inside one record's body.
            hole = None
            for i, a, b, start in segs:
                for pos, n, _ in app:
                    if pos + 5 < a and b < pos + n:
                        hole = i
                        break
                if hole is not None:
                    break
            if hole is not None:
                fr = [x for k, x in enumerate(frames) if k != hole]
                out = os.path.join(tmp, name + "-hole.pcap")
                write_pcap(out, head, fr)
                rc, got = run(mxray, out, keys)
                runs += 1
                gtls = [r for r in got if r["type"] == "tls"]
                check(name + " hole", rc in (0, 3), failures, f"exit {rc}")
                check(name + " hole", any(r["type"] == "gap" for r in got), failures, "no gap record")
                check(name + " hole", gtls and gtls[0].get("decryption") == "ok", failures,
                      f"decryption {gtls[0].get('decryption') if gtls else None}, not ok")
                verb = "verb" if any(r["type"].endswith(".command") and "verb" in r for r in base) else "command"
                last = [r for r in base if r["type"].endswith(".command") and r.get("decrypted")][-1:]
                got_cmds = [r for r in got if r["type"].endswith(".command") and r.get("decrypted")]
                check(name + " hole", last and got_cmds and got_cmds[-1].get(verb) == last[0].get(verb), failures,
                      "the last command after the hole was not decrypted")
            # cut: the capture ends in the middle of the client's last data record.
            if app:
                pos, n, _ = app[-1]
                cut = [k for k, (i, a, b, start) in enumerate(segs) if a <= pos + n // 2 < b]
                if cut:
                    i, a, b, start = segs[cut[0]]
                    fr = [[h, bytearray(f)] for h, f in frames[:i + 1]]
                    keep = pos + n // 2 - a
                    hdr, f = fr[-1]
                    f = f[:start + keep]
                    # The frame's captured length shrinks; the IP length stays: a cut frame.
                    fr[-1] = [hdr[:8] + struct.pack("<I", len(f)) + hdr[12:], f]
                    out = os.path.join(tmp, name + "-cut.pcap")
                    write_pcap(out, head, fr)
                    rc, got = run(mxray, out, keys)
                    runs += 1
                    check(name + " cut", rc in (0, 3), failures, f"exit {rc}")
            # wrongkey: every secret's last hex digit changed.
            bad = os.path.join(tmp, name + "-wrong.keys")
            with open(keys) as f, open(bad, "w") as g:
                for line in f:
                    p = line.rstrip("\n").split(" ")
                    if len(p) == 3 and not line.startswith("#") and len(p[1]) == 64:
                        p[2] = p[2][:-1] + ("0" if p[2][-1] != "0" else "1")
                    g.write(" ".join(p) + "\n")
            rc, got = run(mxray, pcap, bad)
            runs += 1
            check(name + " wrongkey", rc in (0, 3), failures, f"exit {rc}")
            check(name + " wrongkey", any(r["type"] == "tls" and r.get("decryption") == "failed" for r in got),
                  failures, "decryption is not 'failed'")
            check(name + " wrongkey", not any(r.get("decrypted") for r in got), failures,
                  "records built from bytes decrypted with a wrong key")
    for f in failures:
        print("FAIL", f)
    print(f"keylog_damage: {runs} damaged runs over {len(names)} key logs, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
