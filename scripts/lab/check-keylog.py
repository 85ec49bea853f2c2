#!/usr/bin/env python3
"""Check the keylog/ captures against their truth with tshark's own decryption.

For each pcaps/keylog/NAME.truth.json with a NAME.keys beside it (the
decrypted exports, NAME-cleartext, have none: their dialogue is in clear and
scripts/lab/check-tshark.py reads it), and for each session, stream i:
  - the ServerHello (tshark's tls.handshake.*) has the truth's TLS version and
    cipher suite, and, where the truth states it, the encrypt_then_mac
    extension (RFC 7366) present or absent; the key exchange group (TLS 1.3
    key_share, or the ServerKeyExchange's named curve; none with RSA key
    exchange) is printed;
  - with `-o tls.keylog_file:NAME.keys`, a session whose secrets are in the
    log (keylog.in_log) decrypts: tshark's `-z follow,tls,raw` gives, in each
    direction, exactly the bytes of the truth's transcript entries marked
    "tls": true, and its SMTP / IMAP / POP fields (smtp.req.command,
    smtp.response.code, imap.request.command, imap.response.status,
    pop.request.command, pop.response.indicator) over the whole stream equal
    those the transcript implies; every message of keylog.messages is then
    inside the decrypted bytes with its SHA-256;
  - a session whose secrets are not in the log gives no decrypted byte; with
    the withheld log (NAME.d/withheld.keys) it decrypts as above.

  scripts/lab/check-keylog.py [TRUTH_FILE...]      (default pcaps/keylog/)

Exit 0 all passed, 1 a mismatch, 77 tshark is absent.
"""
import base64
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PCAPS = os.path.join(HERE, "..", "..", "pcaps", "keylog")
DECODE = {"smtp": "smtp", "pop3": "pop", "imap": "imap"}
# tshark's names (tls.handshake.ciphersuite shows the IANA name) for
# OpenSSL's, as Python's cipher() gives them for TLS 1.2
IANA = {
    "ECDHE-RSA-AES128-GCM-SHA256": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305": "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "ECDHE-RSA-AES128-SHA256": "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "AES128-GCM-SHA256": "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "AES256-SHA": "TLS_RSA_WITH_AES_256_CBC_SHA",
}
CIPHER_IDS = {
    0x1301: "TLS_AES_128_GCM_SHA256", 0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0xc02f: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    0xc030: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    0xcca8: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0xc027: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    0x009c: "TLS_RSA_WITH_AES_128_GCM_SHA256", 0x0035: "TLS_RSA_WITH_AES_256_CBC_SHA",
}
GROUPS = {0x001d: "x25519", 0x0017: "secp256r1", 0x0018: "secp384r1"}


def tshark(args):
    r = subprocess.run(["tshark"] + args, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("tshark %s: %s" % (" ".join(args), r.stderr.strip()[-300:]))
    return r.stdout


def turn_bytes(t):
    return base64.b64decode(t["b64"]) if "b64" in t else t["text"].encode("utf-8")


def decode_as(truth):
    """Decode As for ports tshark does not know (none of the lab's: 25, 587
    and 465, 110 and 995, 143 and 993 are its own, in clear or over TLS)."""
    out = []
    for s in truth["sessions"]:
        if s["server_port"] not in (25, 587, 465, 110, 995, 143, 993):
            out += ["-d", "tcp.port==%d,%s" % (s["server_port"], DECODE[s["proto"]])]
    return out


def server_hellos(cap, decode):
    """tcp.stream -> (version, cipher, etm, group) of its ServerHello."""
    out = {}
    rows = tshark(["-r", cap] + decode + [
        "-Y", "tls.handshake.type == 2 || tls.handshake.type == 12", "-T", "fields",
        "-E", "occurrence=a", "-E", "aggregator=,",
        "-e", "tcp.stream", "-e", "tls.handshake.type", "-e", "tls.handshake.version",
        "-e", "tls.handshake.extensions.supported_version", "-e", "tls.handshake.ciphersuite",
        "-e", "tls.handshake.extension.type", "-e", "tls.handshake.extensions_key_share_group",
        "-e", "tls.handshake.server_named_curve"])
    for ln in rows.splitlines():
        f = ln.split("\t")
        st = int(f[0])
        types = f[1].split(",")
        cur = out.setdefault(st, {"group": None})
        if "2" in types:
            ver = f[3].split(",")[0] or f[2].split(",")[0]
            cur["version"] = {"0x0304": "TLSv1.3", "0x0303": "TLSv1.2"}.get(ver, ver)
            cur["cipher"] = CIPHER_IDS.get(int(f[4].split(",")[0], 16), f[4])
            cur["etm"] = "22" in f[5].split(",")
            if f[6]:
                cur["group"] = GROUPS.get(int(f[6].split(",")[0]), f[6])
        if "12" in types and f[7]:
            cur["group"] = GROUPS.get(int(f[7].split(",")[0], 16 if f[7].startswith("0x") else 10),
                                      f[7])
    return out


def follow(cap, keys, stream, server_port, decode):
    """(client bytes, server bytes) that tshark decrypted in a stream."""
    out = tshark(["-r", cap, "-o", "tls.keylog_file:" + keys] + decode +
                 ["-q", "-z", "follow,tls,raw,%d" % stream])
    # "Node 0: ADDR:PORT" is the side that sent first; tshark 4.0 may print
    # node 1 as ":0", so its side is the other one.  Node 1's lines are
    # indented with a tab.
    nodes, data = {}, {"C": bytearray(), "S": bytearray()}
    body = False
    for ln in out.splitlines():
        m = re.match(r"Node 0: .*:(\d+)$", ln)
        if m:
            nodes["0"] = "S" if int(m.group(1)) == server_port else "C"
            nodes["1"] = "C" if nodes["0"] == "S" else "S"
            continue
        if ln.startswith("Node 1:"):
            body = True
            continue
        if not body or ln.startswith("====") or not ln.strip():
            continue
        node = "1" if ln.startswith("\t") else "0"
        data[nodes[node]] += bytes.fromhex(ln.strip())
    return bytes(data["C"]), bytes(data["S"])


def tokens(cap, keys, decode):
    """tcp.stream -> {"cmd": [...], "rep": [...]} from tshark's mail fields."""
    rows = tshark(["-r", cap] + (["-o", "tls.keylog_file:" + keys] if keys else []) + decode + [
        "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=\x1f",
        "-e", "tcp.stream", "-e", "smtp.req.command", "-e", "smtp.response.code",
        "-e", "imap.request.command", "-e", "imap.response.status",
        "-e", "pop.request.command", "-e", "pop.response.indicator"])
    per = {}
    for ln in rows.splitlines():
        f = ln.split("\t")
        if len(f) < 7 or not f[0]:
            continue
        d = per.setdefault(int(f[0]), {"cmd": [], "rep": []})
        for i, k in ((1, "cmd"), (3, "cmd"), (5, "cmd"), (2, "rep"), (4, "rep"), (6, "rep")):
            d[k] += [v.upper() for v in f[i].split("\x1f") if v]
    return per


def expected(session):
    """The commands and replies tshark shows for a session read whole (every
    turn visible): SMTP verbs as tshark cuts them (its smtp.req.command of a
    line without argument, "STARTTLS", is "STAR") and one code per reply;
    IMAP commands and tagged statuses (and "+" continuations' first word);
    POP3 verbs and +OK/-ERR."""
    cmd, rep = [], []
    proto = session["proto"]
    in_data = in_auth = False
    for t in session["transcript"]:
        b = turn_bytes(t)
        if t["dir"] == "S":
            if proto == "smtp":
                codes = [ln[:3] for ln in b.split(b"\r\n") if re.match(rb"\d{3}( |$)", ln)]
                rep += [c.decode() for c in codes]
                in_data = bool(codes) and codes[-1] == b"354"
                in_auth = bool(codes) and codes[-1] == b"334"
            elif proto == "pop3":
                first = b.split(b"\r\n", 1)[0]
                rep += ["+OK"] if first.startswith(b"+OK") else ["-ERR"] if first.startswith(b"-ERR") else []
            else:
                m = re.match(rb"(\S+) ([^\s\[]+)", b)
                if m and m.group(1) != b"*":
                    rep.append(m.group(2).decode().upper())
            continue
        for ln in b.split(b"\r\n")[:-1] if b.endswith(b"\r\n") else b.split(b"\r\n"):
            if proto == "smtp":
                if in_data:
                    continue
                if in_auth:
                    in_auth = False
                    continue
                w = ln.split(b" ", 1)
                v = w[0].upper().decode()
                cmd.append(v[:4] if len(w) == 1 and len(v) > 4 else v)
            elif proto == "pop3":
                cmd.append(ln.split(b" ", 1)[0].upper().decode())
            else:
                w = ln.split(b" ")
                cmd.append(w[1].upper().decode() if len(w) > 1 else "")
    return cmd, rep


def check(tf):
    with open(tf, encoding="utf-8") as f:
        t = json.load(f)
    cap = os.path.join(os.path.dirname(tf), t["capture"])
    base = tf[:-len(".truth.json")]
    keys = base + ".keys"
    problems, info = [], []
    if not os.path.isfile(keys):
        return None, []
    decode = decode_as(t)
    hellos = server_hellos(cap, decode)
    tok = tokens(cap, keys, decode)
    for s in t["sessions"]:
        i, kl = s["index"], s["keylog"]
        h = hellos.get(i, {})
        want_cipher = IANA.get(s["tls_cipher"], s["tls_cipher"])
        if (h.get("version"), h.get("cipher")) != (s["tls_version"], want_cipher):
            problems.append("session %d: ServerHello %s %s, truth %s %s" % (
                i, h.get("version"), h.get("cipher"), s["tls_version"], want_cipher))
        if "encrypt_then_mac" in kl and h.get("etm") != kl["encrypt_then_mac"]:
            problems.append("session %d: encrypt_then_mac in the ServerHello %s, truth %s"
                            % (i, h.get("etm"), kl["encrypt_then_mac"]))
        want = {d: b"".join(turn_bytes(x) for x in s["transcript"] if x["tls"] and x["dir"] == d)
                for d in "CS"}
        logs = [(keys, kl["in_log"])]
        if not kl["in_log"]:
            logs.append((os.path.join(base + ".d", "withheld.keys"), True))
        for log, has in logs:
            c, sv = follow(cap, log, i, s["server_port"], decode)
            if has and (c, sv) != (want["C"], want["S"]):
                problems.append("session %d: tshark decrypted %d/%d bytes (client/server) with"
                                " %s, the truth's TLS turns hold %d/%d%s" % (
                                    i, len(c), len(sv), os.path.basename(log), len(want["C"]),
                                    len(want["S"]), "" if len(c) == len(want["C"]) and
                                    len(sv) == len(want["S"]) else " (lengths differ)"))
            if not has and (c or sv):
                problems.append("session %d: %s lacks its secrets, yet tshark decrypted %d/%d"
                                " bytes" % (i, os.path.basename(log), len(c), len(sv)))
            if has:
                for m in kl["messages"]:
                    blob = sv if m["via"] != "smtp.data" else c
                    unstuffed = re.sub(rb"\r\n\.\.", b"\r\n.", blob)
                    body = open(os.path.join(base + ".d", m["file"]), "rb").read()
                    if hashlib.sha256(body).hexdigest() != m["sha256"] or (
                            body not in blob and body not in unstuffed):
                        problems.append("session %d: message %s not in tshark's decrypted bytes"
                                        % (i, m["file"]))
        if kl["in_log"]:
            cmd, rep = expected(s)
            got = tok.get(i, {"cmd": [], "rep": []})
            if (cmd, rep) != (got["cmd"], got["rep"]):
                problems.append("session %d: tshark's fields differ from the truth:\n"
                                "       commands truth %s\n                tshark %s\n"
                                "       replies  truth %s\n                tshark %s"
                                % (i, cmd, got["cmd"], rep, got["rep"]))
        info.append("session %d %s %d: %s %s, %s%s, %s" % (
            i, s["proto"], s["server_port"], h.get("version"), h.get("cipher"),
            kl["key_exchange"], "/" + h["group"] if h.get("group") else "",
            ("etm" if h.get("etm") else "no etm") if "CBC" in (h.get("cipher") or "") else "",
        ) + ("" if kl["in_log"] else "  [keys not in the log: tshark decrypts nothing]"))
    return problems, info


def main():
    if not shutil.which("tshark"):
        print("check-keylog: skipped: tshark is not installed")
        return 77
    files = sys.argv[1:] or sorted(glob.glob(os.path.join(PCAPS, "*.truth.json")))
    npass = nfail = 0
    for f in files:
        p, info = check(f)
        if p is None:
            continue
        rel = os.path.relpath(f)
        print("%s %s" % ("FAIL" if p else "ok  ", rel))
        for x in info:
            print("     " + x)
        for x in p:
            print("  !! " + x)
        if p:
            nfail += 1
        else:
            npass += 1
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
