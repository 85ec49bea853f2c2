#!/usr/bin/env python3
"""check_attacks - the signs of attack (issue 27) raise their findings, with the
right frames, on the lab's pcaps/attacks/ captures, and nowhere else in pcaps/.

usage: tests/oracle/check_attacks.py [--mxray PATH]

The frames are found in the captures themselves, not in mxray's output: each
capture's TCP payloads are read (tests/pcapgen.py's pcap reader) and the frame
that carries each attack's bytes is looked up.  Then:
  - overlong-commands: MX-OVERLONG-COMMAND on the SMTP, IMAP and POP3 server,
    one evidence item per long command whose frame is the one carrying it, the
    detail giving the line's length as counted in the capture;
  - executable-attachments: MX-EXECUTABLE-ATTACHMENT for setup.exe (extension),
    invoice.pdf.exe (double extension) and update.js (extension), and
    MX-ATTACHMENT-TYPE-MISMATCH for invoice.pdf.exe (declared PDF, bytes PE)
    and photo.jpg (declared JPEG, bytes PDF); each evidence's frames span the
    frame carrying the attachment's MIME header; the parts' detected_type;
  - clean-attachments: neither finding, the parts detected as what they say;
  - smtp-smuggling-accepted / -refused: one smtp.smuggling record per session
    of the truth file, with its sequence, accepted exactly when the server's
    replies in the truth (what the lab's client read) answered the smuggled
    commands (more than one reply to the one write); its first frame the one
    carrying the sequence; MX-SMTP-SMUGGLING for the accepted, and
    MX-SMTP-SMUGGLING-ATTEMPT for the refused, with those frames;
  - no other capture of pcaps/ raises any of these five findings;
  - the public corpus (../shared/corpus, when present): Suricata's
    smtp-long-command (a 4 KB EHLO) and smtperr (binary junk for commands)
    raise MX-OVERLONG-COMMAND on the frame where the line starts, with its
    length; 1flowB (a real malware mail: a PE named .exe, declared
    application/x-ole-storage) raises MX-EXECUTABLE-ATTACHMENT and
    MX-ATTACHMENT-TYPE-MISMATCH on the message's frames; three more test
    captures with attachments named .exe raise MX-EXECUTABLE-ATTACHMENT by
    the name alone; every other corpus capture raises none of the five.
Exit status: 0 all passed, 1 failures, 77 captures missing.
"""
import json
import os
import struct
import sys

if __package__ in (None, ""):   # run as a file: tests/ holds the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from oracle import common  # noqa: E402
import pcapgen  # noqa: E402

ROOT = common.REPO
ATTACK_IDS = {"MX-OVERLONG-COMMAND", "MX-EXECUTABLE-ATTACHMENT", "MX-ATTACHMENT-TYPE-MISMATCH",
              "MX-SMTP-SMUGGLING", "MX-SMTP-SMUGGLING-ATTEMPT"}
CAPS = ["overlong-commands", "executable-attachments", "clean-attachments",
        "smtp-smuggling-accepted", "smtp-smuggling-refused"]


def payloads(path, ports=None):
    """{frame number: TCP payload} of an Ethernet/IPv4 capture (the lab's);
    ports, when a dict, gets each such frame's TCP source port."""
    _, _, frames = pcapgen.read_pcap(path)
    out = {}
    for n, (_, _, b, _) in enumerate(frames, 1):
        if len(b) < 34 or b[12:14] != b"\x08\x00" or b[23] != 6:
            continue
        ihl = (b[14] & 15) * 4
        tot = struct.unpack(">H", b[16:18])[0]
        tcp = 14 + ihl
        doff = (b[tcp + 12] >> 4) * 4
        data = bytes(b[tcp + doff:14 + tot])
        if data:
            out[n] = data
            if ports is not None:
                ports[n] = struct.unpack(">H", b[tcp:tcp + 2])[0]
    return out


def line_from(pl, ports, first):
    """The line that starts in frame `first`, across the next frames of the
    same sender, CRLF included."""
    data = b""
    for n in sorted(k for k in pl if k >= first and ports[k] == ports[first]):
        data += pl[n]
        if b"\r\n" in data:
            return data[:data.index(b"\r\n") + 2]
    return data


def frame_with(pl, needle, start=False):
    """The frames whose payload holds (or, with start, begins with) needle."""
    return [n for n, d in sorted(pl.items()) if (d.startswith(needle) if start else needle in d)]


def records(mxray, path):
    return common.mxray_records(mxray, "-q", "--json", "-", path)


def findings(recs):
    return {r["id"]: r for r in recs if r.get("type") == "finding"}


def firsts(f):
    return [e["frames"][0] for e in f.get("evidence", [])]


def check_overlong(recs, pl):
    problems = []
    got = [r for r in recs if r.get("type") == "finding" and r["id"] == "MX-OVERLONG-COMMAND"]
    by_proto = {r["proto"]: r for r in got}
    want = {"smtp": [b"VRFY \x90", b"EXPN AAAA"], "imap": [b"a3 FETCH AAAA"], "pop3": [b"USER CCCC"]}
    for proto, needles in want.items():
        f = by_proto.get(proto)
        if not f:
            problems.append("no MX-OVERLONG-COMMAND on the %s server" % proto)
            continue
        for needle in needles:
            fr = frame_with(pl, needle, start=True)
            if len(fr) != 1:
                problems.append("the capture has %d frames starting with %r" % (len(fr), needle))
                continue
            line = pl[fr[0]]
            length = line.index(b"\r\n") + 2
            if fr[0] not in firsts(f):
                problems.append("%s: evidence %s lacks frame %d (%r...)" % (proto, firsts(f), fr[0], needle))
            if not any(("%d bytes" % length) in d for d in f.get("detail", [])):
                problems.append("%s: no detail gives the %d bytes of frame %d: %s"
                                % (proto, length, fr[0], f.get("detail")))
    return problems


def attachment_parts(recs):
    return {p.get("filename"): p for r in recs if r.get("type") == "message"
            for p in r.get("parts", []) if p.get("filename")}


def covers(f, frame):
    return any(e["frames"][0] <= frame <= e["frames"][-1] for e in f.get("evidence", []))


def check_attachments(recs, pl):
    problems = []
    fs = findings(recs)
    exe, mis = fs.get("MX-EXECUTABLE-ATTACHMENT"), fs.get("MX-ATTACHMENT-TYPE-MISMATCH")
    if not exe or not mis:
        return ["missing: %s" % sorted({"MX-EXECUTABLE-ATTACHMENT", "MX-ATTACHMENT-TYPE-MISMATCH"} - set(fs))]
    parts = attachment_parts(recs)
    pe = "application/vnd.microsoft.portable-executable"
    table = [  # name, executable reason or None, mismatch detail or None, detected type
        ("setup.exe", "executable extension", None, pe),
        ("invoice.pdf.exe", "double extension", "declared application/pdf, bytes " + pe, pe),
        ("update.js", "executable extension", None, None),
        ("photo.jpg", None, "declared image/jpeg, bytes application/pdf", "application/pdf"),
    ]
    for name, why, mdetail, detected in table:
        fr = frame_with(pl, ('filename="%s"' % name).encode())
        if len(fr) != 1:
            problems.append("%s: %d frames carry its MIME header" % (name, len(fr)))
            continue
        for f, text in ((exe, why and "%s: %s" % (name, why)), (mis, mdetail and "%s: %s" % (name, mdetail))):
            mine = [d for d in f.get("detail", []) if d.startswith(name + ":")]
            if not text:
                if mine:
                    problems.append("%s: %s says %s" % (name, f["id"], mine))
                continue
            if not any(d.startswith(text) for d in mine):
                problems.append("%s: %s detail %s, expected %r" % (name, f["id"], f.get("detail"), text))
            if not covers(f, fr[0]):
                problems.append("%s: %s evidence %s does not cover frame %d"
                                % (name, f["id"], [e["frames"] for e in f["evidence"]], fr[0]))
        p = parts.get(name)
        if not p:
            problems.append("%s: no message part" % name)
        elif detected and p.get("detected_type") != detected:
            problems.append("%s: detected_type %s, expected %s" % (name, p.get("detected_type"), detected))
    return problems


def check_clean(recs, pl):
    problems = ["raised %s" % i for i in sorted(ATTACK_IDS & set(findings(recs)))]
    parts = attachment_parts(recs)
    for name, t in (("report.pdf", "application/pdf"), ("logo.png", "image/png")):
        p = parts.get(name, {})
        if p.get("detected_type") != t or p.get("type_mismatch"):
            problems.append("%s: detected_type %s, type_mismatch %s" % (name, p.get("detected_type"),
                                                                        p.get("type_mismatch")))
    return problems


SEQ_BYTES = {"<LF>.<LF>": b"\n.\n", "<LF>.<CRLF>": b"\n.\r\n", "<CRLF>.<LF>": b"\r\n.\n", "<CR>.<CRLF>": b"\r.\r\n"}


def check_smuggling(recs, pl, truth):
    problems = []
    sessions = [s["smuggling"] for s in truth["sessions"] if "smuggling" in s]
    got = [r for r in recs if r.get("type") == "smtp.smuggling"]
    if len(got) != len(sessions):
        return ["%d smtp.smuggling records for %d sessions" % (len(got), len(sessions))]
    fs = findings(recs)
    for rec, s in zip(got, sessions):
        accepted = len(s["reply_codes"]) > 1       # the server answered the smuggled commands
        if rec["sequence"] != s["sequence"] or rec["accepted"] != accepted:
            problems.append("record %s %s, truth %s %s (replies %s)" % (rec["sequence"], rec["accepted"],
                                                                          s["sequence"], accepted,
                                                                          s["reply_codes"]))
            continue
        fr = frame_with(pl, b"tomorrow." + SEQ_BYTES[s["sequence"]] + b"MAIL FROM:<ceo@lab.test>")
        if len(fr) != 1 or rec["frames"][0] != fr[0]:
            problems.append("%s: record frames %s, the sequence is in frame(s) %s"
                            % (s["sequence"], rec["frames"], fr))
            continue
        if accepted and (rec.get("second_message") is not True or
                         b"354 " not in pl.get(rec["reply_frames"][0], b"")):
            problems.append("%s: accepted without the 354 to the smuggled DATA (reply_frames %s)"
                            % (s["sequence"], rec.get("reply_frames")))
        kind = "MX-SMTP-SMUGGLING" if accepted else "MX-SMTP-SMUGGLING-ATTEMPT"
        f = fs.get(kind)
        if not f or fr[0] not in firsts(f):
            problems.append("%s: %s without evidence frame %d" % (s["sequence"], kind, fr[0]))
        elif not any(d.startswith(s["sequence"] + ": " + ("accepted" if accepted else "attempted, refused"))
                     for d in f.get("detail", [])):
            problems.append("%s: %s detail %s" % (s["sequence"], kind, f.get("detail")))
    return problems


# The public corpus: capture -> {finding id: (needle marking its frame, what a detail starts with)};
# a needle b"^..." must start the frame's payload (a command), else be in it (the evidence spans it).
CORPUS_EXPECTED = {
    "suricata-verify/smtp-long-command__input.pcap":
        {"MX-OVERLONG-COMMAND": (b"^EHLO OBLAHOBLAH", "EHLO: %d bytes")},
    "suricata-verify/smtperr.pcap":
        {"MX-OVERLONG-COMMAND": (None, "a junk verb: ")},
    "suricata-verify/1flowB.pcap":
        {"MX-EXECUTABLE-ATTACHMENT": (b"P2m1arl7C0KnLQHLG2.exe", "P2m1arl7C0KnLQHLG2.exe: executable extension, "
                                      "bytes application/vnd.microsoft.portable-executable"),
         "MX-ATTACHMENT-TYPE-MISMATCH": (b"P2m1arl7C0KnLQHLG2.exe", "P2m1arl7C0KnLQHLG2.exe: declared "
                                         "application/x-ole-storage, bytes "
                                         "application/vnd.microsoft.portable-executable")},
    "suricata-verify/mime__mime-dec-parse-long-filename01__input.pcap":
        {"MX-EXECUTABLE-ATTACHMENT": (None, "")},
    "suricata-verify/mime__mime-dec-parse-long-filename02__input.pcap":
        {"MX-EXECUTABLE-ATTACHMENT": (None, "12characters12characters12characters.exe: executable extension")},
    "suricata-verify/mime__smtp-mime-encap-8649-baseline__input.pcap":
        {"MX-EXECUTABLE-ATTACHMENT": (None, "malware.exe: executable extension")},
}


def check_corpus(mxray):
    """The corpus part of the docstring: (passed, failed)."""
    passed = failed = 0
    noisy = []
    for row in common.manifest():
        rel = row["path"]
        path = os.path.join(common.CORPUS, rel)
        if not os.path.isfile(path):
            continue
        fs = {i: f for i, f in findings(records(mxray, path)).items() if i in ATTACK_IDS}
        want = CORPUS_EXPECTED.get(rel)
        if not want:
            if fs:
                noisy.append("%s: %s" % (rel, ", ".join(sorted(fs))))
            continue
        problems = ["raised %s, expected %s" % (sorted(fs), sorted(want))] if set(fs) != set(want) else []
        ports = {}
        pl = payloads(path, ports) if not problems else {}
        for i, (needle, detail) in sorted(want.items()):
            if problems:
                break
            f = fs[i]
            if needle:
                fr = frame_with(pl, needle[1:], start=True) if needle.startswith(b"^") else frame_with(pl, needle)
                if not fr:
                    problems.append("%s: no frame carries %r" % (i, needle))
                    continue
                if needle.startswith(b"^"):
                    if fr[0] not in firsts(f):
                        problems.append("%s: evidence %s, the line starts in frame %d" % (i, firsts(f), fr[0]))
                    detail = detail % len(line_from(pl, ports, fr[0]))
                elif not any(covers(f, n) for n in fr):
                    problems.append("%s: evidence %s covers none of frames %s" % (i, f["evidence"], fr))
            if not any(d.startswith(detail) for d in f.get("detail", [])):
                problems.append("%s: detail %s, expected %r" % (i, f.get("detail"), detail))
        if problems:
            failed += 1
            print("FAIL  corpus %s" % rel)
            for p in problems:
                print("      " + p)
        else:
            passed += 1
            print("ok    corpus %s: %s" % (rel, ", ".join(sorted(fs))))
    if noisy:
        failed += 1
        print("FAIL  other corpus captures raise attack findings:")
        for n in noisy:
            print("      " + n)
    else:
        passed += 1
        print("ok    the other corpus captures: none of the five")
    return passed, failed


def main():
    ap = common.parser(__doc__)
    a = ap.parse_args()
    status = common.not_built(a.mxray)
    if status:
        return status
    paths = {c: os.path.join(ROOT, "pcaps", "attacks", c + ".pcap") for c in CAPS}
    missing = [p for p in paths.values() if not os.path.isfile(p)]
    if missing:
        print("SKIP: capture(s) missing: %s (record them with sudo scripts/lab/run-all.sh attacks/...)"
              % ", ".join(missing))
        return common.SKIP
    passed = failed = 0
    for c, path in paths.items():
        recs, pl = records(a.mxray, path), payloads(path)
        if c == "overlong-commands":
            problems = check_overlong(recs, pl)
        elif c == "executable-attachments":
            problems = check_attachments(recs, pl)
        elif c == "clean-attachments":
            problems = check_clean(recs, pl)
        else:
            with open(path[:-len(".pcap")] + ".truth.json", encoding="utf-8") as fh:
                problems = check_smuggling(recs, pl, json.load(fh))
        if problems:
            failed += 1
            print("FAIL  attacks/%s" % c)
            for p in problems:
                print("      " + p)
        else:
            passed += 1
            print("ok    attacks/%s: %s" % (c, ", ".join(sorted(ATTACK_IDS & set(findings(recs)))) or "none"))
    # Every other capture: none of the five (keylog captures read as golden.py reads them).
    others = [p for p in common.pcaps() if os.sep + "attacks" + os.sep not in p]
    noisy = []
    for p in others:
        keys = os.path.splitext(p)[0] + ".keys"
        extra = ("--tls-keylog", keys) if os.path.isfile(keys) else ()
        got = ATTACK_IDS & set(findings(common.mxray_records(a.mxray, "-q", "--json", "-", *extra, p)))
        if got:
            noisy.append("%s: %s" % (os.path.relpath(p, ROOT), ", ".join(sorted(got))))
    if noisy:
        failed += 1
        print("FAIL  the other captures of pcaps/ raise attack findings:")
        for n in noisy:
            print("      " + n)
    else:
        passed += 1
        print("ok    %d other captures of pcaps/: none of %s" % (len(others), ", ".join(sorted(ATTACK_IDS))))
    if os.path.isdir(common.CORPUS):
        p, f = check_corpus(a.mxray)
        passed, failed = passed + p, failed + f
    else:
        print("note: %s is absent: the corpus part is skipped" % common.CORPUS)
    return common.summary(passed, failed)


if __name__ == "__main__":
    sys.exit(main())
