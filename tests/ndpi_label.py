#!/usr/bin/env python3
"""ndpi_label.py - nDPI's label is shown beside mxray's own reading, never instead of it (issue 26).

nDPI 4.2 labels a cleartext IMAP session that authenticates with AUTHENTICATE
"IMAPS" (as it does protolens/imap_fetch.pcap of the corpus, on port 143).
Off the mail ports nDPI's label chose the dissector, so such a session was
read as implicit TLS: TLS_NOT_TLS anomalies, a "tls" record, no IMAP at all,
and the audit counted an implicit-TLS session. Crafts (tests/pcapgen.py) the
session on 143 and on 10143 and checks, with the JSON, the timeline, the audit
and the HTML report, that it reads as cleartext IMAP everywhere, and that the
flow_start of the flow nDPI found shows nDPI's label beside mxray's reading.
Exits 77 (skip) when this nDPI does not call the session IMAPS.

  ndpi_label.py MXRAY [--write DIR]
"""
import base64
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pcapgen  # noqa: E402

TURNS = [
    ["s", "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] mail.example ready\r\n"],
    ["c", "a1 AUTHENTICATE PLAIN\r\n"],
    ["s", "+ \r\n"],
    ["c", base64.b64encode(b"\0alice\0secret").decode() + "\r\n"],
    ["s", "a1 OK authenticated\r\n"],
    ["c", "a2 SELECT INBOX\r\n"],
    ["s", "* 2 EXISTS\r\na2 OK [READ-WRITE] selected\r\n"],
    ["c", "a3 LOGOUT\r\n"],
    ["s", "* BYE bye\r\na3 OK done\r\n"],
]


def run(mxray, *args):
    p = subprocess.run([mxray, "-q", "--no-progress", *args], capture_output=True)
    if p.returncode not in (0, 1):
        sys.exit(f"ndpi_label: mxray {' '.join(args)} exited {p.returncode}: {p.stderr.decode(errors='replace')}")
    return p.stdout.decode("utf-8")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    mxray = sys.argv[1]
    keep = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--write" else None
    fails = []
    with tempfile.TemporaryDirectory() as tmp:
        out = keep or tmp
        os.makedirs(out, exist_ok=True)
        for port in (143, 10143):
            pcap = os.path.join(out, f"imap-authenticate-{port}.pcap")
            pcapgen.sessions_to_pcap([{"port": port, "turns": TURNS}], pcap)
            recs = [json.loads(x) for x in run(mxray, "--json", "-", pcap).splitlines() if x]
            by = {}
            for r in recs:
                by.setdefault(r["type"], []).append(r)
            flow = by.get("flow", [{}])[0]
            label = flow.get("ndpi", {}).get("protocol")
            if label != "IMAPS":
                print(f"ndpi_label: skipped: this nDPI calls the session {label!r}, not 'IMAPS'")
                return 77
            where = f"port {port}"
            start = by.get("flow_start", [{}])[0]
            if flow.get("tls_port") is not False:
                fails.append(f"{where}: flow tls_port {flow.get('tls_port')}")
            if port != 143:
                # found by nDPI: its label beside mxray's reading
                if start.get("found_by_ndpi") is not True or start.get("tls_port") is not False:
                    fails.append(f"{where}: flow_start {start}")
                if start.get("ndpi", {}).get("protocol") != "IMAPS":
                    fails.append(f"{where}: flow_start shows no nDPI label: {start}")
            if "tls" in by:
                fails.append(f"{where}: a tls record: {by['tls']}")
            an = [r["name"] for r in by.get("anomaly", []) if r["name"].startswith("TLS")]
            if an:
                fails.append(f"{where}: TLS anomalies {an}")
            cmds = [r.get("command") for r in by.get("imap.command", [])]
            if cmds != ["AUTHENTICATE", "SELECT", "LOGOUT"]:
                fails.append(f"{where}: IMAP commands {cmds}")
            sess = by.get("imap.session", [{}])[0]
            if sess.get("in_tls") is not False:
                fails.append(f"{where}: imap.session in_tls {sess.get('in_tls')}")
            auth = by.get("imap.auth", [{}])[0]
            if auth.get("cleartext") is not True:
                fails.append(f"{where}: imap.auth cleartext {auth.get('cleartext')}")
            srv = by.get("audit.server", [{}])[0]
            if srv.get("tls_seen", {}).get("implicit_sessions") != 0:
                fails.append(f"{where}: audit counts implicit TLS: {srv.get('tls_seen')}")
            text = run(mxray, pcap)
            if "TLS (implicit)" in text or "TLS_NOT_TLS" in text:
                fails.append(f"{where}: the timeline reads TLS")
            if port != 143 and "its label: IMAPS), read as cleartext" not in text:
                fails.append(f"{where}: the timeline does not show nDPI's label beside mxray's reading")
            audit = run(mxray, "audit", pcap)
            if "implicit TLS" in audit.split("Findings")[0] and "used in 0" not in audit:
                fails.append(f"{where}: the audit reads TLS")
            html = os.path.join(out, f"imap-authenticate-{port}.html")
            run(mxray, "--html", html, pcap)
            with open(html, encoding="utf-8") as f:
                h = f.read()
            if "handshake not completed" in h or "TLS_NOT_TLS" in h:
                fails.append(f"{where}: the HTML report reads TLS")
            if port != 143 and "its label: IMAPS), read as cleartext" not in h:
                fails.append(f"{where}: the HTML report does not show nDPI's label beside mxray's reading")
            if "AUTHENTICATE" not in h:
                fails.append(f"{where}: the HTML report shows no IMAP command")
    for f in fails:
        print("FAIL", f)
    print(f"ndpi_label: 2 captures, {len(fails)} failures")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
