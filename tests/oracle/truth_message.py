#!/usr/bin/env python3
"""truth_message - the message parser agrees with the capture lab's ground truth.

usage: tests/oracle/truth_message.py [--mxray PATH]

For every pcaps/smtp/<name>.pcap whose <name>.truth.json lists messages (and
every all-SMTP one of pcaps/offload/, recorded on the veth path):
- each sent message (its SHA-256 and size) has a "message" record;
- each attachment the lab recorded (filename, size, SHA-256 of the original
  file) is a part of that record with the same decoded size and SHA-256;
- with --extract, the .eml written is byte-equal to the sent copy in
  <name>.d/, and each attachment written has the recorded SHA-256;
- each copy postfix delivered (<name>.d/delivered/) is the extracted .eml
  after the trace headers postfix adds at the top (line ends aside).

- a message whose truth gives `expect_headers` (the header texts as the lab
  wrote them before encoding, and the charset a reader must guess for raw
  8-bit text; smtp/header-texts) has them in its record, and so has each
  delivered copy a client fetched (POP3, IMAP), whose Received fields are
  postfix's trace (read here with Python's email package) and then the
  sent message's.

Only what was sent in clear is visible on the wire.  A message's `sent_in`
(docs/lab.md: [{"session": i, "tls": bool}], the sessions that carried it)
says which: a message with an entry "tls": false must have its record; a
message sent only inside TLS must have none (a record with its SHA-256 would
mean mxray read TLS bytes as SMTP).  This is what tells the two apart when a
capture mixes a TLS session and a clear one (smtp/starttls-stripped,
smtp/starttls-removed).  A delivered copy follows the message it is the same
as (`same_as_sent`).  Without `sent_in` (older truth files, or a message the
lab cannot place) a message is taken as sent in TLS when every session of the
capture uses TLS, and as sent in clear otherwise.
Exits 1 on any disagreement (or when mxray is not built).
"""
import argparse
import glob
import hashlib
import json
import os
import subprocess
import sys
import tempfile

if __package__ in (None, ""):   # run as a file: tests/ holds the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from oracle import common  # noqa: E402

ROOT = common.REPO


def sent_in_clear(truth, m):
    """Whether message m of the truth crossed in clear at least once (see the
    docstring); raises ValueError on a sent_in that names no session."""
    sessions = truth.get("sessions") or []
    where = m.get("sent_in")
    if where is None:
        return not (sessions and all(s.get("tls") not in (None, "none") for s in sessions))
    for w in where:
        if not 0 <= w.get("session", -1) < len(sessions):
            raise ValueError(f"{m.get('file')}: sent_in names session {w.get('session')}, "
                             f"the truth has {len(sessions)}")
    return any(not w.get("tls") for w in where)


def trace_hops(data):
    """The Received fields postfix put above a delivered copy (the lines before
    the message itself), each as {by host, id, date, comment}: read with
    Python's email package, not as mxray reads them."""
    import email
    import email.policy
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    out = []
    for v in msg.get_all("Received") or []:
        v = " ".join(str(v).replace("\r", "").split("\n"))
        head, _, date = v.rpartition(";")
        words = head.split()
        if not head:
            head, date = date, ""
        hop = {"date": " ".join(date.split()) or None, "comment": head.lstrip().startswith("(")}
        for key in ("by", "id"):
            hop[key] = words[words.index(key) + 1] if key in words[:-1] else None
        out.append(hop)
    return out


def header_mismatch(rec, want, trace=()):
    """What of `want` (expect_headers) the record's headers do not show; with
    `trace`, the record's first Received hops must be these (trace_hops)."""
    got = rec.get("headers") or {}
    bad = []
    for key in ("subject", "from", "charset_guessed"):
        if key in want and got.get(key) != want[key]:
            bad.append(f"{key} {got.get(key)!r} != {want[key]!r}")
    hops = got.get("received") or []
    for i, t in enumerate(trace):
        h = hops[i] if i < len(hops) else {}
        seen = {"by": (h.get("by") or "").split(" ")[0] or None, "id": h.get("id"),
                "date": " ".join((h.get("date") or "").split()) or None, "comment": "comment" in h}
        if seen != t:
            bad.append(f"Received {i}: {seen} != {t} (postfix's trace)")
    if "received" in want and hops[len(trace):] != want["received"]:
        bad.append(f"received {hops[len(trace):]} != {want['received']}")
    return bad


def check_expected_headers(args):
    """The expect_headers checks (see the docstring); returns (checked, fails)."""
    checked = fails = 0
    for truth_path in sorted(glob.glob(os.path.join(ROOT, "pcaps", "*", "*.truth.json"))):
        truth = json.load(open(truth_path))
        msgs = [m for m in truth.get("messages") or [] if "expect_headers" in m]
        if not msgs:
            continue
        name = os.path.basename(truth_path)[: -len(".truth.json")]
        where = os.path.dirname(truth_path)
        r = subprocess.run([args.mxray, "-q", "--hashes", "all", "--json", "-", os.path.join(where, name + ".pcap")],
                           capture_output=True, text=True)
        recs = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
        by_sha = {x["sha256"]: x for x in recs if x.get("type") == "message"}
        for m in msgs:
            want = m["expect_headers"]     # a None value: absent from the record
            copies = []
            if sent_in_clear(truth, m):
                copies.append(("sent", m["sha256"], ()))
            for d in truth.get("delivered") or []:
                if d.get("same_as_sent") != m["file"]:
                    continue
                data = open(os.path.join(where, name + ".d", d["file"]), "rb").read()
                wire = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")  # as IMAP and POP3 serve it
                body = data.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
                sent_hops = len([1 for h in open(os.path.join(where, name + ".d", m["file"]), "rb").read()
                                 .split(b"\r\n\r\n", 1)[0].split(b"\r\n") if h.lower().startswith(b"received:")])
                trace = trace_hops(body + b"\n\n")
                copies.append((d["file"], hashlib.sha256(wire).hexdigest(), trace[: len(trace) - sent_hops]))
            for what, sha, trace in copies:
                checked += 1
                rec = by_sha.get(sha)
                if rec is None:
                    print(f"FAIL {name}: {m['file']} ({what}): no message record with sha256 {sha}")
                    fails += 1
                    continue
                for b in header_mismatch(rec, want, trace):
                    print(f"FAIL {name}: {m['file']} ({what}, {rec.get('carried_by')}): {b}")
                    fails += 1
    return checked, fails


def main():
    common.start()
    ap = argparse.ArgumentParser()
    common.add_mxray(ap)
    args = ap.parse_args()
    status = common.not_built(args.mxray)
    if status:
        return status
    fails = checked = tls_only = 0
    # pcaps/offload/ (issue 25): the SMTP ones, recorded on the veth path
    truths = [t for d in ("smtp", "offload") for t in glob.glob(os.path.join(ROOT, "pcaps", d, "*.truth.json"))]
    for truth_path in sorted(truths):
        truth = json.load(open(truth_path))
        msgs = truth.get("messages") or []
        if not msgs or any(s.get("proto") != "smtp" for s in truth.get("sessions") or []):
            continue
        name = os.path.basename(truth_path)[: -len(".truth.json")]
        where = os.path.dirname(truth_path)
        pcap = os.path.join(where, name + ".pcap")
        with tempfile.TemporaryDirectory() as tmp:
            xdir = os.path.join(tmp, "x")
            os.mkdir(xdir)
            r = subprocess.run([args.mxray, "-q", "--hashes", "all", "--json", "-", "--extract", xdir, pcap],
                               capture_output=True, text=True)
            if r.returncode not in (0, 3):
                print(f"FAIL {name}: mxray exited {r.returncode}: {r.stderr.strip()}")
                fails += 1
                continue
            recs = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
            recs = [x for x in recs if x.get("type") == "message"]
            by_sha = {x["sha256"]: x for x in recs}
            try:
                clear = {m["file"]: sent_in_clear(truth, m) for m in msgs}
            except ValueError as e:
                print(f"FAIL {name}: bad truth file: {e}")
                fails += 1
                continue
            for m in msgs:
                checked += 1
                rec = by_sha.get(m["sha256"])
                sent = os.path.join(where, name + ".d", m["file"])
                if not clear[m["file"]]:
                    # sent inside TLS only: no dissector can see it
                    tls_only += 1
                    if rec is not None:
                        print(f"FAIL {name}: {m['file']} was sent inside TLS only, but mxray has a "
                              f"message record with its sha256 (flow {rec.get('flow')}, frames "
                              f"{rec.get('frames')})")
                        fails += 1
                    continue
                if rec is None and os.path.isfile(sent):
                    # a transfer cut short: the record holds a prefix of the sent message
                    body = open(sent, "rb").read()
                    cut = [x for x in recs if x["size"] < len(body)
                           and hashlib.sha256(body[: x["size"]]).hexdigest() == x["sha256"]]
                    if cut:
                        continue
                if rec is None:
                    where = m.get("sent_in")
                    print(f"FAIL {name}: no message record with sha256 {m['sha256']} ({m['file']}"
                          + (f", sent in clear in session(s) "
                             f"{[w['session'] for w in where if not w.get('tls')]})" if where else ")"))
                    fails += 1
                    continue
                if rec["size"] != m["size"]:
                    print(f"FAIL {name}: {m['file']}: size {rec['size']} != {m['size']}")
                    fails += 1
                ex = rec.get("extracted")
                if not ex or not os.path.isfile(ex):
                    print(f"FAIL {name}: {m['file']}: not extracted")
                    fails += 1
                elif os.path.isfile(sent) and open(ex, "rb").read() != open(sent, "rb").read():
                    print(f"FAIL {name}: extracted {ex} differs from {sent}")
                    fails += 1
                for a in m.get("attachments") or []:
                    parts = [p for p in rec.get("parts", []) if p.get("sha256") == a["sha256"]]
                    if not parts:
                        print(f"FAIL {name}: {m['file']}: attachment {a['filename']} sha256 {a['sha256']} not among the parts")
                        fails += 1
                        continue
                    p = parts[0]
                    if p.get("size") != a["size"] or p.get("filename") != a["filename"]:
                        print(f"FAIL {name}: {a['filename']}: part says {p.get('filename')!r} {p.get('size')} bytes")
                        fails += 1
                    px = p.get("extracted")
                    if not px or hashlib.sha256(open(px, "rb").read()).hexdigest() != a["sha256"]:
                        print(f"FAIL {name}: {a['filename']}: extracted file {px!r} missing or different")
                        fails += 1
            # What postfix delivered is the extracted message after the trace
            # headers it adds at the top (Return-Path, X-Original-To,
            # Delivered-To, Received), with LF line ends in the Maildir.
            extracted = {}
            for x in recs:
                if x.get("extracted") and os.path.isfile(x["extracted"]):
                    extracted[x["sha256"]] = open(x["extracted"], "rb").read()
            for d in truth.get("delivered") or []:
                checked += 1
                path = os.path.join(where, name + ".d", d["file"])
                got = extracted.get(d.get("sha256_without_trace"))
                same = d.get("same_as_sent")
                visible = clear.get(same) if same in clear else sent_in_clear(truth, {})
                if not visible:
                    tls_only += 1
                    continue    # its message crossed inside TLS only: nothing to compare
                if got is None:
                    print(f"FAIL {name}: delivered {d['file']}: no extracted message with its sha256")
                    fails += 1
                    continue
                body = open(path, "rb").read()
                if b"\r\n" not in body:
                    got = got.replace(b"\r\n", b"\n")  # the Maildir copy has LF line ends
                if not body.endswith(got):
                    print(f"FAIL {name}: delivered {d['file']} does not end with the extracted message")
                    fails += 1
                    continue
                trace = body[: len(body) - len(got)]
                for line in trace.replace(b"\r\n", b"\n").split(b"\n"):
                    if line and not line[:1].isspace() and line.split(b":")[0].lower() not in (
                            b"return-path", b"received", b"delivered-to", b"x-original-to"):
                        print(f"FAIL {name}: delivered {d['file']}: unexpected header before the message: {line[:60]!r}")
                        fails += 1
                        break
    hc, hf = check_expected_headers(args)
    fails += hf
    print(f"truth-message: {checked} messages and deliveries checked ({tls_only} of them sent inside "
          f"TLS only: no record expected); header texts of {hc} copies checked; {fails} failures")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
