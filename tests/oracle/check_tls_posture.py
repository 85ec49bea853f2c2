#!/usr/bin/env python3
"""check_tls_posture - each tls-posture/ lab capture raises exactly its TLS finding.

usage: tests/oracle/check_tls_posture.py [--mxray PATH]

For each capture of the table (pcaps/tls-posture/, one certificate or cipher
suite per kind, made with openssl by scripts/lab/lib/posture.py; and
smtp/tls10-after-starttls for TLS below 1.2), runs
`mxray -q --json - --tls-ca NAME.ca.pem CAPTURE` (the run's root CA kept
beside it; "none" when there is none) and checks:
  - the set of its MX-TLS-* findings is exactly the one expected (none for
    the clean chain, whose `verify` must be "ok");
  - the evidence frames of each certificate finding hold the frame where
    tshark sees the Certificate message begin or end, and those of
    MX-TLS-WEAK-CIPHER the ServerHello's (when tshark is installed);
  - `mxray audit` prints the certificate line of the server.
It also reads keylog/smtps-tls13-chacha20 with and without its key log: a
TLS 1.3 certificate is judged only once decrypted.  And it runs the expired
capture without --tls-ca and with --tls-ca none:
the validity is judged at the capture's time, so EXPIRED is raised whatever
the store, and the verdict on trust follows the store ("not checked" with
none).  Exit status: 0 all passed, 1 failures, 77 captures missing.
"""
import os
import shutil
import subprocess
import sys

if __package__ in (None, ""):   # run as a file: tests/ holds the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from oracle import common  # noqa: E402

ROOT = common.REPO

# capture (pcaps/<name>.pcap) -> the MX-TLS-* findings it raises, and the
# records that prove them (certificate: the Certificate message; hello: the ServerHello)
TABLE = [
    ("tls-posture/clean", set(), None),
    ("tls-posture/expired", {"MX-TLS-CERT-EXPIRED"}, "certificate"),
    ("tls-posture/not-yet-valid", {"MX-TLS-CERT-NOT-YET-VALID"}, "certificate"),
    ("tls-posture/self-signed", {"MX-TLS-CERT-SELF-SIGNED"}, "certificate"),
    ("tls-posture/untrusted", {"MX-TLS-CERT-UNTRUSTED"}, "certificate"),
    ("tls-posture/name-mismatch", {"MX-TLS-CERT-NAME-MISMATCH"}, "certificate"),
    ("tls-posture/rsa1024", {"MX-TLS-WEAK-KEY"}, "certificate"),
    ("tls-posture/sha1", {"MX-TLS-SHA1-SIGNATURE"}, "certificate"),
    ("tls-posture/weak-cipher", {"MX-TLS-WEAK-CIPHER"}, "hello"),
    ("smtp/tls10-after-starttls", {"MX-TLS-OLD-VERSION"}, None),
]


def tshark_frames(pcap, hs_type):
    """{tcp stream: [frames where a handshake message of hs_type is]}, or None without tshark."""
    if not shutil.which("tshark"):
        return None
    out = subprocess.run(["tshark", "-r", pcap, "-Y", "tls.handshake.type==%d" % hs_type,
                          "-T", "fields", "-e", "tcp.stream", "-e", "frame.number"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    got = {}
    for line in out.splitlines():
        s, f = line.split("\t")
        got.setdefault(int(s), []).append(int(f))
    return got


def check(mxray, cap, want, proof):
    pcap = os.path.join(ROOT, "pcaps", cap + ".pcap")
    recs = common.mxray_records(mxray, "-q", "--json", "-", *common.tls_ca_args(pcap), pcap)
    problems = []
    found = {r["id"]: r for r in recs if r.get("type") == "finding" and r["id"].startswith("MX-TLS-")}
    if set(found) != want:
        problems.append("raised %s, expected %s" % (sorted(found) or "none", sorted(want) or "none"))
    tls = [r for r in recs if r.get("type") == "tls"]
    if not tls:
        problems.append("no tls record")
    if cap.endswith("/clean"):
        verdicts = [(r.get("certificate") or {}).get("verify") for r in tls]
        if verdicts != ["ok"] * len(tls):
            problems.append("clean chain: verify %s, expected ok" % verdicts)
    if proof:
        seen = tshark_frames(pcap, 11 if proof == "certificate" else 2)
        flows = {r["flow"]: i for i, r in enumerate(r for r in recs if r.get("type") == "flow_start")}
        for i in want:
            for ev in found.get(i, {}).get("evidence", []):
                fr = ev.get("frames") or []
                if not fr:
                    problems.append("%s: evidence without frames" % i)
                elif seen is not None:
                    lo, hi = fr[0], fr[-1]
                    stream = flows.get(ev["flow"])
                    if not any(lo <= f <= hi for f in seen.get(stream, [])):
                        problems.append("%s: evidence frames %s hold no %s frame of tshark's (%s)"
                                        % (i, fr, proof, seen.get(stream)))
    if want - {"MX-TLS-OLD-VERSION", "MX-TLS-WEAK-CIPHER"}:
        res = common.run_mxray(mxray, "audit", *common.tls_ca_args(pcap), pcap)
        if b"  Cert " not in res:
            problems.append("mxray audit printed no certificate line")
    return problems


def store_independence(mxray):
    """The expired capture without --tls-ca (the system store) and with none."""
    pcap = os.path.join(ROOT, "pcaps", "tls-posture", "expired.pcap")
    problems = []
    for args, store, verdict in (((), "system", None), (("--tls-ca", "none"), "none", "not checked")):
        recs = common.mxray_records(mxray, "-q", "--json", "-", *args, pcap)
        ids = {r["id"] for r in recs if r.get("type") == "finding"}
        cert = next((r.get("certificate") or {}) for r in recs if r.get("type") == "tls")
        if "MX-TLS-CERT-EXPIRED" not in ids or cert.get("validity") != "expired":
            problems.append("store %s: the expiry is not judged at the capture's time (%s)" % (store, sorted(ids)))
        if cert.get("verify_store") != store or (verdict and cert.get("verify") != verdict):
            problems.append("store %s: verify_store %s, verify %s" % (store, cert.get("verify_store"),
                                                                      cert.get("verify")))
    return problems


def tls13_decrypted(mxray):
    """A TLS 1.3 certificate, encrypted, is judged once --tls-keylog decrypts it."""
    base = os.path.join(ROOT, "pcaps", "keylog", "smtps-tls13-chacha20")
    if not os.path.isfile(base + ".pcap"):
        return ["pcaps/keylog/smtps-tls13-chacha20.pcap missing"]
    problems = []
    for keys, judged in (([], False), (["--tls-keylog", base + ".keys"], True)):
        recs = common.mxray_records(mxray, "-q", "--json", "-", "--tls-ca", "none", *keys, base + ".pcap")
        tls = [r for r in recs if r.get("type") == "tls"]
        cert = [r.get("certificate") for r in tls if r.get("certificate")]
        if not judged and (cert or not all("certificate_hidden" in r for r in tls)):
            problems.append("without the key log: a certificate where TLS 1.3 hides it")
        if judged and not (cert and all(c.get("validity") == "valid" and c.get("key") and c.get("frames")
                                        and (c.get("name_checked") or {}).get("match") for c in cert)):
            problems.append("with the key log: the certificate is not judged (%s)" % cert)
    return problems


def main():
    a = common.parser(__doc__).parse_args()
    status = common.not_built(a.mxray)
    if status:
        return status
    missing = [c for c, _, _ in TABLE if not os.path.isfile(os.path.join(ROOT, "pcaps", c + ".pcap"))]
    if missing:
        print("SKIP: capture(s) missing: %s (record them with sudo scripts/lab/run-all.sh)"
              % ", ".join(missing))
        return common.SKIP
    passed = failed = 0
    for cap, want, proof in TABLE:
        if common.report(cap, check(a.mxray, cap, want, proof)):
            passed += 1
            print("ok   %s: %s" % (cap, ", ".join(sorted(want)) or "no TLS finding"))
        else:
            failed += 1
    if common.report("keylog/smtps-tls13-chacha20", tls13_decrypted(a.mxray)):
        passed += 1
        print("ok   a TLS 1.3 certificate is judged once the key log decrypts it")
    else:
        failed += 1
    if common.report("store independence", store_independence(a.mxray)):
        passed += 1
        print("ok   the expiry is judged at the capture's time, whatever the store")
    else:
        failed += 1
    return common.summary(passed, failed)


if __name__ == "__main__":
    sys.exit(main())
