#!/usr/bin/env python3
"""truth_keylog - mxray's TLS decryption with a key log, against the lab's truth.

usage: tests/oracle/truth_keylog.py [-v] [--mxray PATH] [TRUTH.json...]

The captures are pcaps/keylog/ (scripts/lab/scenarios/scen_keylog.py,
docs/lab.md): real TLS sessions with postfix and dovecot, the client's NSS
key log beside each as NAME.keys, and the decrypted exports NAME-cleartext
(scripts/lab/decrypted-export.py).  Sessions are matched to mxray's flows as
truth_smtp/pop3/imap match them: same server port, same order.

A capture with NAME.keys: `mxray -q --tls-keylog NAME.keys --json - NAME.pcap`.
For each session, by its truth's "keylog":
  - in_log (the key log holds its secrets): the flow's `tls` record has
    "decryption": "ok"; the whole dialogue is visible, so the session read
    with every transcript entry in clear must pass the checks of
    truth_smtp / truth_pop3 / truth_imap (check_session: the same commands,
    replies or statuses or completions, in order; every message sent with
    DATA, fetched with RETR or FETCH, with its size and SHA-256; no
    STARTTLS injection, none of which the truth has); each message the truth
    lists in keylog.messages is a `message` record of the flow, not partial,
    with "decrypted": true; the flow has its smtp.session / pop3.session /
    imap.session record, and an smtp.transaction when a message was sent;
    and every record of the flow built from the
    bytes after the ClientHello (its first frame at or after the frame of
    the flow's ClientHello, found in the pcap here) carries "decrypted":
    true, while every record wholly before it (the cleartext before
    STARTTLS) does not;
  - not in_log: the `tls` record has "decryption": "no_key"; nothing of
    the flow carries "decrypted": true, no message record of the flow has a
    SHA-256 of keylog.messages, and the cleartext part alone passes the
    protocol's check_session (as without --tls-keylog).
A decrypted export (NAME-cleartext, sessions with "decrypted_export"):
`mxray -q --json - NAME-cleartext.pcap`, no key log.  The dialogue after
STARTTLS/STLS is in clear in the capture, and the truth's transcript says
so: check_session must pass on it as it is (commands, replies, messages,
and neither STARTTLS_SERVER_INJECTION nor STARTTLS_CLIENT_INJECTION); the
flow has a NO_TLS_AFTER_STARTTLS anomaly, no record "decrypted": true, and
no MX-STARTTLS-INJECTION finding names it.

With tshark (skipped, with a note, without it): scripts/lab/check-keylog.py's
checks of each keylog capture (tshark decrypts with NAME.keys and gets
exactly the truth's TLS bytes; the ServerHello's version, suite and
encrypt-then-MAC; tshark's mail fields; nothing decrypted for a session not
in the log), and each committed NAME-cleartext.pcap and its truth file are
what scripts/lab/decrypted-export.py writes again from NAME.pcap.

One `FAIL <truth file>` block per truth file that disagrees (`ok` lines with
-v), then `N passed, M failed`.  Exit status: 0 all passed, 1 failures (or
mxray not built), 77 no keylog truth file.
"""
import glob
import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

if __package__ in (None, ""):   # run as a file: tests/ holds the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from oracle import common  # noqa: E402
from oracle import truth_imap, truth_pop3, truth_smtp  # noqa: E402

KEYLOG = os.path.join(common.REPO, "pcaps", "keylog")
LAB = os.path.join(common.REPO, "scripts", "lab")
PROTO = {"smtp": truth_smtp, "pop3": truth_pop3, "imap": truth_imap}
# records that say what one side sent (docs/schema.json); the per-session
# summaries (*.session) and the tls record gather both sides and are left out
MAIL_RECORDS = {"smtp.command", "smtp.reply", "smtp.data", "smtp.transaction", "smtp.auth",
                "smtp.auth_data", "pop3.command", "pop3.response", "pop3.auth",
                "pop3.auth_data", "imap.command", "imap.response", "imap.untagged",
                "imap.continuation", "imap.auth", "imap.auth_data", "imap.idle", "message"}
INJECTION = ("STARTTLS_SERVER_INJECTION", "STARTTLS_CLIENT_INJECTION")


def load_script(name):
    """A module of scripts/lab/ whose file name has a hyphen."""
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"),
                                                  os.path.join(LAB, name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def client_hellos(pcap):
    """{server port: [frame of the first TLS handshake record the client sent,
    per connection in the order of their SYNs (None: no TLS)]}: read from the
    classic pcap itself (Ethernet, IPv4, TCP), not from mxray."""
    with open(pcap, "rb") as f:
        data = f.read()
    order = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    off, n, conns, seen = 24, 0, {}, []
    while off + 16 <= len(data):
        caplen = struct.unpack(order + "I", data[off + 8:off + 12])[0]
        fr = data[off + 16:off + 16 + caplen]
        off += 16 + caplen
        n += 1
        if len(fr) < 54 or fr[12:14] != b"\x08\x00" or fr[23] != 6:
            continue
        ihl = (fr[14] & 0xF) * 4
        tcp = fr[14 + ihl:]
        sport, dport = struct.unpack("!HH", tcp[:4])
        flags = tcp[13]
        payload = tcp[(tcp[12] >> 4) * 4:struct.unpack("!H", fr[16:18])[0] - ihl]
        if flags & 0x12 == 0x02:            # SYN: a client opens (sport, dport)
            conns[(sport, dport)] = None
            seen.append((sport, dport))
        elif (sport, dport) in conns and conns[(sport, dport)] is None \
                and payload[:2] == b"\x16\x03":
            conns[(sport, dport)] = n
    out = {}
    for c in seen:
        out.setdefault(c[1], []).append(conns[c])
    return out


def mxray_view(mxray, pcap, extra):
    """The records the checks of this script need, per flow in order: the
    tls record, anomalies, records with their frames and decrypted flag;
    and the flows named by MX-STARTTLS-INJECTION findings."""
    flows, injection_flows = {}, set()
    for r in common.mxray_records(mxray, "-q", "--hashes", "all", *extra, "--json", "-", pcap):
        t = r.get("type")
        if t == "finding" and r.get("id") == "MX-STARTTLS-INJECTION":
            injection_flows |= {e.get("flow") for e in r.get("evidence") or []}
        if "flow" not in r:
            continue
        if t == "flow_start":
            flows[r["flow"]] = {"flow": r["flow"], "port": r["server_port"], "tls": None,
                                "anomalies": set(), "records": [], "messages": [],
                                "types": set()}
            continue
        fl = flows.get(r["flow"])
        if fl is None:
            continue
        fl["types"].add(t)
        if t == "tls":
            fl["tls"] = r
        elif t == "anomaly":
            fl["anomalies"].add(r.get("name"))
        if t in MAIL_RECORDS or r.get("decrypted"):
            fl["records"].append(r)
        if t == "message":
            fl["messages"].append(r)
    return [flows[k] for k in sorted(flows)], injection_flows


def in_clear(session):
    """The session with every transcript entry visible: what a decrypting
    reader sees.  truth_pop3/imap take a session on 995/993 as one that must
    show nothing; read decrypted, it is a POP3/IMAP dialogue like one on
    110/143, so the copy has that port."""
    s = dict(session, transcript=[dict(e, tls=False) for e in session["transcript"]])
    clear_port = {995: 110, 993: 143}.get(s["server_port"])
    if clear_port:
        s["server_port"] = clear_port
    return s


def rec_name(r):
    return "%s%s (frames %s)" % (r.get("type"), " " + str(r.get("verb") or r.get("command") or
                                                          r.get("code") or r.get("status") or "")
                                 if r.get("type") != "message" else "", r.get("frames"))


def check_keylog_session(s, f, v, ch_frame):
    """The problems of one session of a keylog capture (see the docstring):
    f is the protocol module's flow, v this script's view of it."""
    i, kl = s["index"], s["keylog"]
    mod = PROTO[s["proto"]]
    problems = []
    dec = (v["tls"] or {}).get("decryption")
    want = "ok" if kl["in_log"] else "no_key"
    if dec != want:
        problems.append("session %d: tls record's decryption %r, want %r (keys %s the log)"
                        % (i, dec, want, "in" if kl["in_log"] else "not in"))
    shas = {m["sha256"] for m in kl["messages"]}
    if kl["in_log"]:
        problems += mod.check_session(in_clear(s), f)
        need = {s["proto"] + ".session"}
        if s["proto"] == "smtp" and kl["messages"]:
            need.add("smtp.transaction")
        for t in sorted(need - v["types"]):
            problems.append("session %d: no %s record" % (i, t))
        for m in kl["messages"]:
            recs = [r for r in v["messages"] if r.get("sha256") == m["sha256"]
                    and r.get("size") == m["size"] and not r.get("partial")]
            if not recs:
                problems.append("session %d: no message record with the SHA-256 of %s (%d bytes, %s)"
                                % (i, m["file"], m["size"], m["via"]))
            elif not all(r.get("decrypted") is True for r in recs):
                problems.append("session %d: message record of %s without \"decrypted\": true"
                                % (i, m["file"]))
        if ch_frame is None:
            problems.append("session %d: no ClientHello found in the capture" % i)
            return problems
        late = [r for r in v["records"] if r.get("frames") and r["frames"][0] >= ch_frame]
        early = [r for r in v["records"] if r.get("frames") and r["frames"][-1] < ch_frame]
        if not late:
            problems.append("session %d: no record from after the ClientHello (frame %d)"
                            % (i, ch_frame))
        bad = [r for r in late if r.get("decrypted") is not True]
        if bad:
            problems.append("session %d: %d record(s) from after the ClientHello (frame %d) without"
                            " \"decrypted\": true, first %s" % (i, len(bad), ch_frame, rec_name(bad[0])))
        bad = [r for r in early if r.get("decrypted")]
        if bad:
            problems.append("session %d: %d record(s) from the cleartext before the ClientHello"
                            " (frame %d) marked decrypted, first %s"
                            % (i, len(bad), ch_frame, rec_name(bad[0])))
        return problems
    problems += mod.check_session(s, f)
    bad = [r for r in v["records"] if r.get("decrypted")]
    if bad:
        problems.append("session %d: its keys are not in the log, yet %d record(s) are marked"
                        " decrypted, first %s" % (i, len(bad), rec_name(bad[0])))
    bad = [r for r in v["messages"] if r.get("sha256") in shas]
    if bad:
        problems.append("session %d: its keys are not in the log, yet a message record has the"
                        " SHA-256 of a message sent inside its TLS (%s)" % (i, rec_name(bad[0])))
    return problems


def check_export_session(s, f, v, injection_flows):
    mod = PROTO[s["proto"]]
    i = s["index"]
    problems = mod.check_session(s, f)
    if "NO_TLS_AFTER_STARTTLS" not in v["anomalies"]:
        problems.append("session %d: no NO_TLS_AFTER_STARTTLS anomaly (flow %d has %s)"
                        % (i, v["flow"], sorted(v["anomalies"]) or "none"))
    for name in INJECTION:
        if name in v["anomalies"] and not any(name in p for p in problems):
            problems.append("session %d: %s anomaly on a decrypted export" % (i, name))
    if v["flow"] in injection_flows:
        problems.append("session %d: an MX-STARTTLS-INJECTION finding names flow %d"
                        % (i, v["flow"]))
    bad = [r for r in v["records"] if r.get("decrypted")]
    if bad:
        problems.append("session %d: no key log was given, yet %d record(s) are marked decrypted"
                        % (i, len(bad)))
    return problems


def check_file(tf, mxray, verbose):
    """The problems of one truth file, and the ok lines for -v."""
    t = json.load(open(tf, encoding="utf-8"))
    base = tf[:-len(".truth.json")]
    pcap = os.path.join(os.path.dirname(tf), t["capture"])
    keys = base + ".keys"
    export = any("decrypted_export" in s for s in t["sessions"])
    if not export and not os.path.isfile(keys):
        return ["no key log %s beside the capture" % os.path.basename(keys)], []
    extra = () if export else ("--tls-keylog", keys)
    problems, oks = [], []
    protos = sorted({s["proto"] for s in t["sessions"]})
    try:
        flows = {p: PROTO[p].run_mxray(mxray, pcap, *extra) for p in protos}
        views, injection_flows = mxray_view(mxray, pcap, extra)
    except (RuntimeError, ValueError) as e:
        return ["mxray failed: %s" % e], []
    hellos = client_hellos(pcap)
    for port in sorted({s["server_port"] for s in t["sessions"]}):
        ss = [s for s in t["sessions"] if s["server_port"] == port]
        vv = [v for v in views if v["port"] == port]
        if len(ss) != len(vv):
            problems.append("%d session(s) on port %d in the truth, %d mxray flow(s)"
                            % (len(ss), port, len(vv)))
        for k, (s, v) in enumerate(zip(ss, vv)):
            # the k-th flow on the port (truth_smtp's flows carry no number)
            same = [x for x in flows[s["proto"]] if x["port"] == port]
            f = same[k] if k < len(same) else None
            if f is None:
                problems.append("session %d: no mxray flow on port %d" % (s["index"], port))
                continue
            if export:
                sp = check_export_session(s, f, v, injection_flows)
            else:
                chs = hellos.get(port, [])
                sp = check_keylog_session(s, f, v, chs[k] if k < len(chs) else None)
            problems += sp
            if verbose and not sp:
                oks.append("ok   %s session %d (%s %d, %s): mxray flow %d" % (
                    os.path.relpath(tf, common.REPO), s["index"], s["proto"], port,
                    "decrypted export" if export else
                    ("decrypted" if s["keylog"]["in_log"] else "no key"), v["flow"]))
    return problems, oks


def tshark_part(files):
    """check-keylog's checks and the exports made again; (passed, failed)."""
    ck = load_script("check-keylog")
    dx = load_script("decrypted-export")
    passed = failed = 0
    for tf in files:
        rel = os.path.relpath(tf, common.REPO)
        t = json.load(open(tf, encoding="utf-8"))
        problems = []
        if any("decrypted_export" in s for s in t["sessions"]):
            src = t["sessions"][0]["decrypted_export"]["source"]
            src = os.path.join(os.path.dirname(tf), src)
            tmp = tempfile.mkdtemp(prefix="truth-keylog.")
            try:
                out = os.path.join(tmp, t["capture"])
                dx.export(src, src[:-len(".pcap")] + ".keys", out)
                dx.export_truth(src[:-len(".pcap")] + ".truth.json",
                                out[:-len(".pcap")] + ".truth.json", out)
                for made, kept in ((out, os.path.join(os.path.dirname(tf), t["capture"])),
                                   (out[:-len(".pcap")] + ".truth.json", tf)):
                    if open(made, "rb").read() != open(kept, "rb").read():
                        problems.append("%s is not what scripts/lab/decrypted-export.py writes"
                                        " from %s" % (os.path.basename(kept), os.path.basename(src)))
            except SystemExit as e:
                problems.append("decrypted-export failed: %s" % e)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        else:
            try:
                p, _ = ck.check(tf)
                problems += p or []
            except RuntimeError as e:
                problems.append(str(e))
        if common.report("%s (tshark)" % rel, problems):
            passed += 1
        else:
            failed += 1
    return passed, failed


def main():
    ap = common.parser(__doc__)
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("truth", nargs="*")
    a = ap.parse_args()
    status = common.not_built(a.mxray)
    if status:
        return status
    files = a.truth or sorted(glob.glob(os.path.join(KEYLOG, "*.truth.json")))
    if not files:
        print("SKIP: no truth file in %s" % KEYLOG)
        return common.SKIP
    passed = failed = 0
    for tf in files:
        problems, oks = check_file(tf, a.mxray, a.verbose)
        for o in oks:
            print(o)
        if common.report(os.path.relpath(tf, common.REPO), problems):
            passed += 1
        else:
            failed += 1
    if shutil.which("tshark"):
        p, f = tshark_part(files)
        passed, failed = passed + p, failed + f
    else:
        print("note: tshark not found: its decryption of the captures and the decrypted"
              " exports made again are not checked")
    return common.summary(passed, failed)


if __name__ == "__main__":
    sys.exit(main())
