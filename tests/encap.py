#!/usr/bin/env python3
"""encap - mxray reads traffic wrapped in tunnels and shims as it reads it bare (issue 25).

usage: tests/encap.py MXRAY

1. pcaps/encap/KIND.pcap are scripts/lab/encap.py's wrappings of
   pcaps/smtp/attachment.pcap: each is made again and must be the same bytes.
2. For each of SOURCES and each KIND of scripts/lab/encap.py, the wrapped
   capture must give the same records as the original (commands, replies,
   transactions, messages and their hashes, sessions, findings, anomalies),
   byte counts on the wire aside (the tunnel headers add to them), and the same
   exit status; flow_start must list the encapsulations (`encap`) the kind
   puts around the packets, and the summary no decode anomaly.
3. With tshark, every wrapped capture: tshark must dissect the encapsulation
   (its protocol in every frame's frame.protocols) and
   tests/oracle/compare_streams.py must find its TCP streams equal to mxray's
   (skipped when tshark is absent). One line per kind says what tshark did.
Exit: 0 pass, 1 fail.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "scripts", "lab"))
import encap  # noqa: E402
sys.path.insert(0, HERE)
from oracle import common  # noqa: E402

SOURCES = ["pcaps/smtp/attachment.pcap", "pcaps/pop3/clean.pcap", "pcaps/imap/clean.pcap"]
COMMITTED_FROM = "pcaps/smtp/attachment.pcap"
# What flow_start lists, and the protocol tshark must show in every frame.
EXPECT = {
    "gre-ipv4": (["gre"], "gre"),
    "gre-teb": (["gre"], "gre"),
    "erspan1": (["gre", "erspan"], "erspan"),
    "erspan2": (["gre", "erspan"], "erspan"),
    "erspan3": (["gre", "erspan"], "erspan"),
    "vxlan-vlan": (["vxlan"], "vxlan"),
    "geneve": (["geneve"], "geneve"),
    "gtpu": (["gtpu"], "gtp"),
    "mpls": (["mpls"], "mpls"),
    "mpls-pw": (["mpls"], "pwethcw"),
    "pppoe": (["pppoe"], "pppoes"),
    "qinq": (None, "ieee8021ad"),
    "nested": (["gre", "vxlan", "mpls"], "vxlan"),
}
DROP = {"bytes"}  # wire bytes grow by the tunnel headers


def norm(o):
    if isinstance(o, dict):
        return {k: norm(v) for k, v in o.items() if k not in DROP}
    if isinstance(o, list):
        return [norm(v) for v in o]
    return o


def records(mx, cap, tmp):
    """(exit status, records but the summary, normalised; encap lists of flow_start; summary anomalies)."""
    out = os.path.join(tmp, "out.json")
    if os.path.exists(out):
        os.unlink(out)
    r = subprocess.run([mx, "-q", "--json", out, cap], capture_output=True, text=True)
    recs = [json.loads(line) for line in open(out)] if os.path.exists(out) else []
    kept, encaps, anomalies = [], [], {}
    for rec in recs:
        if rec.get("type") == "summary":
            anomalies = rec.get("anomalies") or {}
            continue
        if rec.get("type") == "flow_start":
            encaps.append(rec.get("encap"))
            rec = {k: v for k, v in rec.items() if k != "encap"}
        kept.append(norm(rec))
    return r.returncode, kept, encaps, anomalies


def tshark_protocols(cap):
    r = subprocess.run(["tshark", "-r", cap, "-T", "fields", "-e", "frame.protocols"], capture_output=True, text=True)
    return r.stdout.split()


def main():
    mx = os.path.abspath(sys.argv[1])
    tmp = tempfile.mkdtemp(prefix="mx-encap-")
    fails = checked = 0
    wrapped = {}  # kind -> [paths]

    # 1. The committed captures are the generator's.
    for kind in encap.KINDS:
        mine = os.path.join(tmp, "committed-%s.pcap" % kind)
        encap.rewrite(os.path.join(REPO, COMMITTED_FROM), mine, kind)
        committed = os.path.join(REPO, "pcaps", "encap", kind + ".pcap")
        if not os.path.exists(committed) or open(committed, "rb").read() != open(mine, "rb").read():
            print("FAIL pcaps/encap/%s.pcap is not what scripts/lab/encap.py makes of %s" % (kind, COMMITTED_FROM))
            fails += 1

    # 2. Same records as the original.
    for src in SOURCES:
        st0, rec0, enc0, an0 = records(mx, os.path.join(REPO, src), tmp)
        if not rec0:
            print("FAIL %s: no records" % src)
            fails += 1
            continue
        for kind in encap.KINDS:
            out = os.path.join(tmp, "%s-%s.pcap" % (os.path.basename(src)[:-5], kind))
            encap.rewrite(os.path.join(REPO, src), out, kind)
            wrapped.setdefault(kind, []).append(out)
            st, rec, enc, an = records(mx, out, tmp)
            name = "%s (%s)" % (src, kind)
            checked += 1
            fails += common.same_as_original(name, st0, rec0, st, rec)
            want = EXPECT[kind][0]
            if enc != [want] * len(enc0):
                print("FAIL %s: flow_start encap %s, expected %s" % (name, enc, want))
                fails += 1
            if an != an0:
                print("FAIL %s: summary anomalies %s, the original's %s" % (name, an, an0))
                fails += 1
    print("encap: %d wrapped captures compared with their originals, %d failures" % (checked, fails))

    # 3. tshark.
    if not shutil.which("tshark"):
        print("encap: tshark absent: its comparison skipped")
    else:
        for kind in encap.KINDS:
            caps = wrapped.get(kind, [])
            proto = EXPECT[kind][1]
            undissected = sum(1 for c in caps for p in tshark_protocols(c) if proto not in p.split(":"))
            r = subprocess.run([sys.executable, os.path.join(HERE, "oracle", "compare_streams.py"), "--mxray", mx]
                               + caps, capture_output=True, text=True)
            tail = (r.stdout.strip().splitlines() or [""])[-1]
            if undissected or r.returncode != 0:
                print("FAIL tshark on %s: %d frames without %s; streams: %s" % (kind, undissected, proto, tail))
                if r.returncode != 0:
                    print(r.stdout[-1500:] + r.stderr[-500:])
                fails += 1
            else:
                print("encap: tshark %s: every frame dissected through %s, streams agree (%s)" % (kind, proto, tail))
    shutil.rmtree(tmp)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
