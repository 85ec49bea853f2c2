#!/usr/bin/env python3
"""truth_tunnel - checks mxray's tunnels (SOCKS4/5, HTTP CONNECT) against the capture lab's
ground truth and against tshark.

usage: tests/oracle/truth_tunnel.py [--mxray PATH] [TRUTH.json...]

For every session of pcaps/**/*.truth.json that went through a proxy (its "tunnel": the
kind, the target and each CONNECT attempt's reply code and outcome), in order:
  - a session whose handshake named a target is one mxray flow of the session's protocol
    with "tunnel" in its flow_start, whose "tunnel" records give the same kind, target host
    and port, reply codes and outcomes, attempt by attempt; one whose proxy refused it before
    any target was named (RFC 1929 §2: a wrong password) is no flow at all;
  - when the tunnel was established, the mail dialogue inside it agrees with the truth's
    transcript as truth_smtp, truth_pop3 and truth_imap check a direct session; and the
    proxy's own connection to the server (the capture holds it too) is a flow of its own
    with the same dialogue; TLS from the tunnel's first byte (993, 995, 465) must be read by
    the TLS observer, with the version the client negotiated. A session marked "transcript_complete": false (curl's trace ends
    before the QUIT it sends as it closes) need only be the start of mxray's dialogue.
Then each tunnel flow against tshark's SOCKS and HTTP dissectors on the same TCP stream:
the target host and port the client asked for and the proxy's reply code (tshark shows no
port for a refused SOCKS5 CONNECT: it writes the port on the frames after the request).

Exit status: 0 all passed, 1 failures (or mxray is not built).
"""
import json
import os
import subprocess
import sys
import tempfile

if __package__ in (None, ""):   # run as a file: tests/ holds the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from oracle import common, truth_imap, truth_pop3, truth_smtp  # noqa: E402


def mx_tunnels(mxray, pcap):
    """mxray's flows: number -> {proto, port, client_port, tunnel kind, tunnel records}."""
    flows = {}
    for r in common.mxray_records(mxray, "-q", "--json", "-", pcap):
        if r["type"] == "flow_start":
            flows[r["flow"]] = {"flow": r["flow"], "proto": r["proto"], "port": r["server_port"],
                                "client_port": r["client_port"], "kind": r.get("tunnel"),
                                "tunnels": [], "tls": None}
        elif r["type"] == "tunnel":
            flows[r["flow"]]["tunnels"].append(r)
        elif r["type"] == "tls":
            flows[r["flow"]]["tls"] = r
    return [flows[k] for k in sorted(flows)]


def inner_problems(s, idx, f, smtp, pop3, imap, what):
    """The mail dialogue of flow f against the truth's session s."""
    if s["proto"] == "smtp":
        prefix = s.get("transcript_complete") is False   # a client's log that ends early (curl's QUIT)
        return ["%s (%s)" % (p, what) for p in truth_smtp.check_session(s, smtp[f["flow"] - 1], prefix)]
    mod, flows = (truth_pop3, pop3) if s["proto"] == "pop3" else (truth_imap, imap)
    fl = next(x for x in flows if x["flow"] == f["flow"])
    return ["%s (%s)" % (p, what) for p in mod.check_session(s, fl)]


def tshark_view(pcap):
    """tshark per client port: the SOCKS or CONNECT target host and port, and reply codes."""
    cmd = ["tshark", "-r", pcap, "-Y", "socks or http", "-T", "fields", "-E", "separator=\t",
           "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "socks.command", "-e", "socks.dst",
           "-e", "socks.remote_name", "-e", "socks.dstport", "-e", "socks.results",
           "-e", "http.request.method", "-e", "http.request.uri", "-e", "http.response.code",
           "-e", "socks.v4a_dns_name"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    view = {}
    for ln in r.stdout.splitlines():
        f = (ln.split("\t") + [""] * 11)[:11]
        sport, dport, cmdf, dst, name, port, res, meth, uri, code, v4a = f
        name = name or v4a  # SOCKS4a: the name after USERID
        client = int(sport) if meth or cmdf and not res else int(dport)
        v = view.setdefault(client, {"host": "", "port": "", "codes": []})
        if meth == "CONNECT":
            host, _, p = uri.rpartition(":")
            v["targets"] = v.get("targets", []) + [(host.strip("[]"), p)]
        if code:
            v["codes"].append(int(code))
        if cmdf == "1" and int(sport) == client:
            v["host"] = v["host"] or name or dst
        if cmdf == "1" and port and not v["port"]:
            v["port"] = port
        if res and not v.get("res"):
            v["res"] = res
            v["codes"].append(int(res))
    return view


def main():
    ap = common.parser(__doc__)
    ap.add_argument("truth", nargs="*")
    a = ap.parse_args()
    status = common.not_built(a.mxray)
    if status:
        return status
    have_tshark = subprocess.run(["sh", "-c", "command -v tshark"], capture_output=True).returncode == 0
    passed = failed = 0
    # The crafted SOCKS4a capture is what its script writes (checked below like the lab's).
    with tempfile.TemporaryDirectory() as tmp:
        made = os.path.join(tmp, "socks4a.pcap")
        subprocess.run([sys.executable, os.path.join(common.REPO, "scripts", "lab", "socks4a.py"), made], check=True)
        for ext in (".pcap", ".truth.json"):
            with open(made[:-5] + ext, "rb") as x, open(os.path.join(common.REPO, "pcaps", "tunnel", "socks4a" + ext),
                                                            "rb") as y:
                if x.read() != y.read():
                    print("FAIL pcaps/tunnel/socks4a%s is not what scripts/lab/socks4a.py writes" % ext)
                    failed += 1
    for tf in common.truth_files(a.truth):
        with open(tf, encoding="utf-8") as fh:
            t = json.load(fh)
        sessions = [s for s in t["sessions"] if "tunnel" in s]
        if not sessions:
            continue
        rel = os.path.relpath(tf, common.REPO)
        pcap = os.path.join(os.path.dirname(tf), t["capture"])
        problems = []
        flows = mx_tunnels(a.mxray, pcap)
        smtp, pop3, imap = (truth_smtp.run_mxray(a.mxray, pcap), truth_pop3.run_mxray(a.mxray, pcap),
                            truth_imap.run_mxray(a.mxray, pcap))
        tunnels = [f for f in flows if f["kind"]]
        legs = [f for f in flows if not f["kind"]]
        named = [s for s in sessions if s["tunnel"]["attempts"][-1].get("request_sent", True)]
        if len(named) != len(tunnels):
            problems.append("%d tunnel session(s) that named a target in the truth, %d mxray tunnel flow(s)"
                            % (len(named), len(tunnels)))
        view = tshark_view(pcap) if have_tshark else {}
        for s, f in zip(named, tunnels):
            tu, idx = s["tunnel"], s["index"]
            if f["proto"] != s["proto"] or f["kind"] != tu["kind"] or f["port"] != tu["proxy_port"]:
                problems.append("session %d: truth %s through %s on %d, mxray flow %d %s through %s on %d"
                                % (idx, s["proto"], tu["kind"], tu["proxy_port"], f["flow"], f["proto"],
                                   f["kind"], f["port"]))
            want = [(tu["kind"], tu["target_host"], tu["target_port"], x.get("reply_code"), x["outcome"])
                    for x in tu["attempts"]]
            got = [(r["kind"], r["target_host"], r["target_port"], r.get("reply_code"), r["outcome"])
                   for r in f["tunnels"]]
            if want != got:
                problems.append("session %d: tunnel attempts differ:\n      truth %s\n      mxray %s"
                                % (idx, want, got))
            if tu.get("user") and not any(r.get("user") == tu["user"] for r in f["tunnels"]):
                problems.append("session %d: proxy user %s not in mxray's tunnel records" % (idx, tu["user"]))
            tv = view.get(f["client_port"])
            if have_tshark and tv is not None:
                r0 = f["tunnels"][0] if f["tunnels"] else {}
                host, port = (tv["targets"][0] if tv.get("targets") else (tv["host"], tv["port"]))
                # tshark 3.x/4.0 writes a SOCKS5 request's port on the frames after it only:
                # a refused one has none, and is compared by host alone
                if host != r0.get("target_host") or (port and str(port) != str(r0.get("target_port"))):
                    problems.append("session %d: tshark's target %s:%s, mxray's %s:%s"
                                    % (idx, host, port, r0.get("target_host"), r0.get("target_port")))
                codes = [r.get("reply_code") for r in f["tunnels"] if "reply_code" in r]
                if tv["codes"] != codes:
                    problems.append("session %d: tshark's reply codes %s, mxray's %s" % (idx, tv["codes"], codes))
            elif have_tshark:
                problems.append("session %d: tshark shows no handshake on client port %d" % (idx, f["client_port"]))
            if tu["attempts"][-1]["outcome"] != "established":
                continue
            if s.get("tls") == "implicit":
                # TLS from the tunnel's first byte: the TLS observer reads it (the version the
                # client negotiated), and no mail record is in clear
                tls = f["tls"] or {}
                if not tls.get("completed") or tls.get("version") != s.get("tls_version", "").replace("v", " "):
                    problems.append("session %d: TLS inside the tunnel: truth %s, mxray %s"
                                    % (idx, s.get("tls_version"), {k: tls.get(k) for k in ("version", "completed")}))
            problems += inner_problems(s, idx, f, smtp, pop3, imap, "inside the tunnel")
            leg = next((x for x in legs if x["port"] == tu["target_port"] and x["flow"] > f["flow"]), None)
            if leg is None:
                problems.append("session %d: no flow from the proxy to port %d" % (idx, tu["target_port"]))
            else:
                legs.remove(leg)
                problems += inner_problems(s, idx, leg, smtp, pop3, imap, "from the proxy to the server")
        if common.report(rel, problems):
            passed += 1
        else:
            failed += 1
    return common.summary(passed, failed)


if __name__ == "__main__":
    sys.exit(main())
