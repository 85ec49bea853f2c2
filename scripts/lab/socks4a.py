#!/usr/bin/env python3
"""socks4a - crafts pcaps/tunnel/socks4a.pcap: POP3 through a SOCKS4a tunnel.

The lab's SOCKS server (dante 1.4) does not resolve SOCKS4a names: it
connects to 0.0.0.1 itself. So this capture is crafted, deterministically:
the POP3 dialogue is the real one of pcaps/tunnel/socks-noauth's SOCKS4
session (dovecot's bytes, from its truth file), behind a SOCKS4a handshake
(DSTIP 0.0.0.x with x != 0, then the host name after USERID, NUL-ended), and
the proxy's own connection to the server follows with the same dialogue.
Beside it, socks4a.truth.json: that session as the lab's truth files give
it, for tests/oracle/truth_tunnel.py, which also checks that the committed
capture is the one this script writes.

  scripts/lab/socks4a.py [OUT.pcap]    (default pcaps/tunnel/socks4a.pcap)
"""
import base64
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests"))
import pcapgen  # noqa: E402

SOURCE = os.path.join(REPO, "pcaps", "tunnel", "socks-noauth.truth.json")
OUT = os.path.join(REPO, "pcaps", "tunnel", "socks4a.pcap")
HOST, PORT, USER = "mx.lab.test", 110, "bob"


def source_session():
    with open(SOURCE, encoding="utf-8") as f:
        t = json.load(f)
    return t, next(s for s in t["sessions"] if s.get("tunnel", {}).get("kind") == "socks4")


def dialogue():
    """The POP3 transcript of the source's SOCKS4 session, as pcapgen turns (latin-1)."""
    _, s = source_session()
    turns = []
    for e in s["transcript"]:
        raw = e["text"].encode("utf-8") if "text" in e else base64.b64decode(e["b64"])
        turns.append(["c" if e["dir"] == "C" else "s", raw.decode("latin-1"), "latin-1"])
    return turns


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else OUT
    pop3 = dialogue()
    # SOCKS 4A (Ying-Da Lee's extension of SOCKS4): DSTIP 0.0.0.1, the name after USERID.
    request = struct.pack("!BBH4s", 4, 1, PORT, bytes([0, 0, 0, 1])) + USER.encode() + b"\0" + HOST.encode() + b"\0"
    granted = struct.pack("!BBH4s", 0, 90, PORT, bytes([10, 0, 1, 1]))  # CD 90: request granted
    sessions = [
        {"port": 1080, "turns": [["c", request.decode("latin-1"), "latin-1"],
                                 ["s", granted.decode("latin-1"), "latin-1"]] + pop3},
        {"port": PORT, "turns": pop3},  # the proxy's own connection to the server
    ]
    pcapgen.sessions_to_pcap(sessions, out)
    t, s = source_session()
    s = dict(s, index=0, note="POP3 in a SOCKS4a tunnel (crafted)",
             tunnel={"kind": "socks4a", "proxy_port": 1080, "target_host": HOST, "target_port": PORT,
                     "attempts": [{"reply_code": 90, "outcome": "established"}], "user": USER})
    truth = {"format": t["format"], "scenario": "tunnel/socks4a",
             "summary": "crafted by scripts/lab/socks4a.py: " + s["note"] + ", then the proxy's connection",
             "capture": os.path.basename(out), "notes": [], "expect_malformed": None,
             "sessions": [s], "messages": [], "seeded": {}, "delivered": []}
    with open(os.path.splitext(out)[0] + ".truth.json", "w", encoding="utf-8") as f:
        json.dump(truth, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
