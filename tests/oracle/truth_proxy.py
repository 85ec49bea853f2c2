#!/usr/bin/env python3
"""truth_proxy - mxray against the lab's ground truth for sessions behind a proxy.

For every session of pcaps/**/*.truth.json that went through HAProxy (its
"proxy", scripts/lab/scenarios/scen_proxy.py), the capture holds two legs:
the client's connection to the proxy, and the proxy's connection to the
server, which starts with a PROXY protocol header.  Checks, for the backend
leg (the flow whose proxy record names the session's client port):
  - one "proxy" record, of the version HAProxy was told to send, naming the
    client's own address and port and the frontend it connected to;
  - the session record's "proxy" says the same;
  - every reply or response answers the command it answers on the client's
    own leg (the same pairs of command and status, in order), or, when TLS
    ended at the proxy (the client's leg is encrypted), the command the
    truth's dialogue puts before it;
  - no PROXY_* anomaly, no unmatched reply, no unknown command;
  - with tshark, its PROXY dissector (heuristic, tried first on TCP) finds
    the same headers: version, original and destination addresses and ports.

  tests/oracle/truth_proxy.py [--mxray PATH] [TRUTH...]
"""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from oracle import common  # noqa: E402

REPLY = {"smtp.reply", "pop3.response", "imap.response"}
BAD = ("PROXY_", "UNMATCHED_", "UNKNOWN_COMMAND")


def flows_of(mxray, pcap):
    flows = {}
    for r in common.mxray_records(mxray, "-q", "--json", "-", pcap):
        fl = r.get("flow")
        if not fl:
            continue
        f = flows.setdefault(fl, {"flow": fl, "proxy": [], "pairs": [], "anomalies": [], "session": None})
        t = r["type"]
        if t == "flow_start":
            f["cl"] = (r["client"], r["client_port"])
            f["sv"] = (r["server"], r["server_port"])
        elif t == "proxy":
            f["proxy"].append(r)
        elif t == "anomaly":
            f["anomalies"].append(r["name"])
        elif t in REPLY:
            status = r.get("code", r.get("status"))
            f["pairs"].append(((r.get("answers") or {}).get("command"), status))
        elif t.endswith(".session"):
            f["session"] = r
    return flows


def smtp_expected(session):
    """What each SMTP reply answers, from the truth's dialogue (no pipelining
    in these scenarios): the greeting the connection, the reply after the
    message data its end."""
    out = ["(connect)"]
    for turn in session["transcript"]:
        if turn["dir"] != "C":
            continue
        text = common.turn_bytes(turn)
        if out[-1] == "DATA":
            out.append("(end of data)")
            continue
        out.append(text.split(None, 1)[0].decode().upper())
    return out


def tshark_headers(pcap):
    """(frame, version, client, client port, server, server port) of each
    header tshark's PROXY dissector finds."""
    rows = common.tshark_rows(["tshark", "-r", pcap, "-o", "tcp.try_heuristic_first:TRUE", "-Y", "proxy",
                                               "-T", "fields", "-e", "frame.number", "-e", "proxy.v2.version",
                                               "-e", "proxy.src.ipv4", "-e", "proxy.srcport", "-e", "proxy.dst.ipv4",
                                               "-e", "proxy.dstport"], 6)
    return sorted((int(r[0]), int(r[1] or 1), r[2], int(r[3]), r[4], int(r[5])) for r in rows)


def mxray_headers(flows):
    return sorted((r["frames"][0], r["proxy_version"], r["proxy_source"], r["proxy_source_port"], r["proxy_destination"],
                   r["proxy_destination_port"])
                  for f in flows.values() for r in f["proxy"])


def audit_findings(mxray, pcap):
    """Flow -> ids of the audit findings whose evidence names it."""
    found = {}
    for r in common.mxray_records(mxray, "audit", "-q", "--json", "-", pcap):
        if r.get("type") == "finding":
            for ev in r.get("evidence", []):
                found.setdefault(ev["flow"], set()).add(r["id"])
    return found


def check(s, flows, findings):
    p = s["proxy"]
    idx = s["index"]
    ids = [i for i, f in flows.items() if f["proxy"] and f["proxy"][0].get("proxy_source_port") == p["client_port"]]
    back = [flows[i] for i in ids]
    if len(back) != 1:
        return ["session %d: %d flows with a proxy record naming client port %d" % (idx, len(back), p["client_port"])]
    b = back[0]
    problems = []
    if p.get("tls_at_proxy") and "MX-TLS-NOT-USED" in findings.get(ids[0], ()):
        # The client used TLS as far as the proxy (PP2_CLIENT_SSL): not a client that went on in clear.
        problems.append("session %d: MX-TLS-NOT-USED on a session whose TLS ended at the proxy" % idx)
    rec = b["proxy"][0]
    want = {"version": p["version"], "command": "PROXY", "source": p["client"], "source_port": p["client_port"],
            "destination": p["frontend"], "destination_port": p["frontend_port"]}
    # the proxy record names the header's fields proxy_*; the session's proxy object does not
    got = {k: rec.get(k if k == "command" else "proxy_" + k) for k in want}
    if got != want or len(b["proxy"]) != 1:
        problems.append("session %d: proxy record %s, truth %s" % (idx, got, want))
    if b["sv"] != (p["backend"], p["backend_port"]) or b["cl"][0] != p["frontend"]:
        problems.append("session %d: the backend leg is %s -> %s" % (idx, b["cl"], b["sv"]))
    sess = (b["session"] or {}).get("proxy")
    if not sess or any(sess.get(k) != want[k] for k in want):
        problems.append("session %d: the session record's proxy is %s" % (idx, sess))
    bad = [a for a in b["anomalies"] if a.startswith(BAD)]
    if bad:
        problems.append("session %d: anomalies %s on the backend leg" % (idx, bad))
    front = [f for f in flows.values() if f.get("cl") == (p["client"], p["client_port"])]
    if p.get("tls_at_proxy") or not front:
        if s["proto"] != "smtp":
            return problems + ["session %d: no client leg to compare with" % idx]
        want_cmds = smtp_expected(s)
        if [c for c, _ in b["pairs"]] != want_cmds:
            problems.append("session %d: replies answer %s, truth %s" % (idx, [c for c, _ in b["pairs"]], want_cmds))
    elif b["pairs"] != front[0]["pairs"] or not b["pairs"]:
        problems.append("session %d: replies answer\n      backend %s\n      client  %s"
                        % (idx, b["pairs"], front[0]["pairs"]))
    return problems


def main():
    ap = common.parser(__doc__)
    ap.add_argument("truth", nargs="*")
    a = ap.parse_args()
    status = common.not_built(a.mxray)
    if status:
        return status
    passed = failed = sessions = 0
    for tf in common.truth_files(a.truth):
        with open(tf, encoding="utf-8") as fh:
            t = json.load(fh)
        mine = [s for s in t["sessions"] if s.get("proxy")]
        if not mine:
            continue
        sessions += len(mine)
        rel = os.path.relpath(tf, common.REPO)
        try:
            flows = flows_of(a.mxray, os.path.join(os.path.dirname(tf), t["capture"]))
            findings = audit_findings(a.mxray, os.path.join(os.path.dirname(tf), t["capture"]))
            problems = [x for s in mine for x in check(s, flows, findings)]
            if shutil.which("tshark"):
                pcap = os.path.join(os.path.dirname(tf), t["capture"])
                th, mh = tshark_headers(pcap), mxray_headers(flows)
                if th != mh:
                    problems.append("PROXY headers differ:\n      tshark %s\n      mxray  %s" % (th, mh))
        except (RuntimeError, ValueError) as e:
            problems = ["mxray failed: %s" % e]
        if common.report(rel, problems):
            passed += 1
        else:
            failed += 1
    if not sessions:
        print("SKIP: no session behind a proxy")
        return common.SKIP
    return common.summary(passed, failed)


if __name__ == "__main__":
    sys.exit(main())
