#!/usr/bin/env python3
"""compare_smtp: check mxray's SMTP commands and replies against tshark's.

Usage:
  tests/oracle/compare_smtp.py [-v] [-j N] [--full] [--mxray PATH] [--known FILE] [CAPTURE...]

With no CAPTURE, every capture under <repo>/pcaps (recursively, *.pcap and
*.pcapng) is checked, plus every capture of ../shared/corpus/MANIFEST.tsv
(column `path`) whose `contents` mention SMTP.  A CAPTURE may be given
relative to the current directory, the repository root, this script's
directory or the corpus; `.gz` captures are decompressed to a temporary file.

For each capture, mxray runs with `-q --json -` and tshark with
  tshark -r F -Y smtp -T fields -E separator=/t -e frame.number
         -e tcp.stream -e smtp.req.command -e smtp.response.code ...
(plus smtp.response, smtp.rsp.parameter, smtp.req and smtp.rsp, and a
second pass listing every TCP stream's endpoints).  Values that share a frame
are joined with a control character instead of tshark's default comma, so
commas inside reply text cannot split them.  Each mxray flow is matched to
the tshark stream with the same endpoint pair whose first frame is the last
one at or before the flow's first frame (several mxray flows can fall in one
tshark stream, e.g. after mxray's idle timeout; they are then taken
together).  A stream where neither side has an SMTP command or reply is
skipped (not counted).

Two sequences are compared per stream:
 (a) command verbs: mxray's smtp.command records (SASL continuation lines are
     smtp.auth_data there, not commands) against tshark's smtp.req.command
     values, both upper-cased.  tshark 4.x reports only the first four
     characters of a command line, so STAR equals STARTTLS; any other verb
     that only matches on its first four characters is `known`.
 (b) reply codes, one per reply: mxray's smtp.reply records against tshark's
     replies, found with this rule.  tshark >= 3.2 gives a multi-line reply
     one smtp.response (its first line, "250-...") and one code per frame,
     and files the other lines as smtp.rsp.parameter only; older tshark gave
     every line an smtp.response and a code.  So a reply line "NNN-..." opens
     a multi-line reply, and the next tshark line with the same code belongs
     to it (i) when it is in the same frame and that frame shows every line
     (no more smtp.rsp.parameter values than smtp.response lines, as in old
     tshark), or (ii) when it is the first line of the next SMTP server frame,
     the previous server frame's own last complete line (from tcp.payload)
     was a "NNN-" line, and no client frame (command, SASL or message data)
     came in between.  Otherwise each tshark response line with a code
     starts a new reply.

Each stream is classified:
  ok        both sequences agree
  known     the difference is explained by a documented tshark limitation,
            detected automatically (reason printed):
            - BDAT: tshark does not know BDAT (it shows chunk data as lines,
              or a segment holding BDAT as data, the commands pipelined before
              it included): only what comes before the frame of the first
              BDAT is compared (commands completed, replies started, in
              earlier frames)
            - STARTTLS answered 220 (per mxray): what follows is TLS; tshark
              lines after the 220 that are not SMTP verbs are dropped
            - server injection after STARTTLS (CVE-2011-0411 pattern): tshark
              replies mxray does not have, that come after tshark's 220 to
              STARTTLS and start in a frame of mxray's
              STARTTLS_SERVER_INJECTION anomaly (cleartext the server sent
              after its 220, before the handshake; it answers no command, and
              mxray reads nothing after the 220 as SMTP, docs/manual.md)
            - tshark lines mxray files as SASL continuation (smtp.auth_data)
              or message data (smtp.data), shown by tshark as commands
              (e.g. "cHVu"), are dropped when they are not SMTP verbs
            - a verb equal on its first four characters only
            - tshark disagrees with its default TCP settings but agrees once
              run again with -o tcp.reassemble_out_of_order:TRUE (tshark
              otherwise skips out-of-order segments as retransmissions)
            - mxray commands tshark shows as message data: in a segment that
              also holds message data (pipelined before the message or after
              its final "."; SMTP verbs only), or after a DATA the server
              refused before the client went on (tshark enters message mode on
              DATA whatever the reply), up to tshark's next command
            or listed in tests/oracle/compare_smtp.known (TSV: capture path,
            tshark stream, reason; the capture path is relative to the corpus
            for corpus captures and to the repository otherwise).  A listed
            stream passes whatever its difference; an entry no longer needed
            is reported with a note.  Only tshark errors (checked against the
            packets) and by-design differences belong there, never an mxray
            bug
  mismatch  both sequences are printed around the first difference, with
            frame numbers (mxray: first frame of the line; tshark: the frame
            that completes it)

One line is printed per stream that is not ok (every stream with -v), then
`N passed, M failed` (passed = ok + known).  Exit status: 0 all passed,
1 failures (or a tool failed), 2 usage error, 77 skipped (tshark absent).

Options:
  -v, --verbose   print every stream, skipped ones too, and the counts
  -j N            captures processed in parallel (default 2)
  --full          print whole sequences of a mismatch, not just around the
                  first difference
  --mxray PATH    the mxray binary (default <repo>/build/mxray)
  --known FILE    known-differences file (default tests/oracle/compare_smtp.known)
"""
import os
import sys

if __package__ in (None, ""):   # run as a file: tests/ holds the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from oracle import common  # noqa: E402
from oracle.common import AGG, in_spans, last_value, split_vals  # noqa: E402

VERBS = {"HELO", "EHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "VRFY",
         "EXPN", "HELP", "NOOP", "QUIT", "AUTH", "STARTTLS", "STAR", "TURN",
         "ETRN", "ATRN", "SEND", "SOML", "SAML", "XCLIENT", "XFORWARD", "LHLO"}


# ---------------------------------------------------------------- tshark

def open_at_end(payload_hex):
    """Whether the last complete line of a server segment (tcp.payload)
    leaves a multi-line reply open ("NNN-..."); True when unknown."""
    hx = last_value(payload_hex).replace(":", "")
    try:
        data = bytes.fromhex(hx)
    except ValueError:
        return True
    end = data.rfind(b"\n")
    if end < 0:
        return True
    start = data.rfind(b"\n", 0, end) + 1
    line = data[start:end]
    return len(line) >= 4 and line[:3].isdigit() and line[3:4] == b"-"


def tshark_smtp(path, prefs=()):
    """tcp.stream -> {"cmds": [(verb, frame)], "replies": [(code, first
    frame, last frame)], "merged": n multi-line merges}."""
    cmd = ["tshark"] + list(prefs) + ["-r", path, "-Y", "smtp", "-T", "fields",
           "-E", "separator=/t", "-E", "aggregator=" + AGG,
           "-e", "frame.number", "-e", "tcp.stream",
           "-e", "smtp.req.command", "-e", "smtp.response.code",
           "-e", "smtp.req", "-e", "smtp.rsp",
           "-e", "smtp.rsp.parameter", "-e", "tcp.payload", "-e", "smtp.response"]
    out = {}
    for f in common.tshark_rows(cmd, 9):
        try:
            frame = int(f[0])
            sid = int(split_vals(f[1])[0])
        except (ValueError, IndexError):
            continue
        st = out.setdefault(sid, {"cmds": [], "replies": [], "open": None,
                                  "c2s_since": False, "open_at_end": True,
                                  "merged": 0})
        cmds = [v.strip().upper() for v in split_vals(f[2])]
        codes = [v for v in split_vals(f[3]) if v.strip().isdigit()]
        for v in cmds:
            st["cmds"].append((v, frame))
        if not (f[5] or codes):
            # a client frame (a command, SASL or message data line)
            st["c2s_since"] = True
            continue
        texts = split_vals(f[8])
        lines = []
        for t in texts:
            if len(t) >= 3 and t[:3].isdigit():
                lines.append((int(t[:3]), t[3:4] == "-"))
        if len(lines) != len(codes):  # no usable text: codes alone
            lines = [(int(c), False) for c in codes]
        nparam = len(split_vals(f[6]))
        every_line_shown = nparam <= len(lines)
        for i, (code, more) in enumerate(lines):
            op = st["open"]
            cont = False
            if op is not None and st["replies"][op][0] == code:
                if i == 0:
                    cont = st["open_at_end"] and not st["c2s_since"]
                else:
                    cont = every_line_shown
            if cont:
                c, first, _ = st["replies"][op]
                st["replies"][op] = (c, first, frame)
                st["merged"] += 1
            else:
                st["replies"].append((code, frame, frame))
            st["open"] = len(st["replies"]) - 1 if more else None
        st["c2s_since"] = False
        st["open_at_end"] = open_at_end(f[7])
    for st in out.values():
        for k in ("open", "c2s_since", "open_at_end"):
            del st[k]
    return out


# ---------------------------------------------------------------- mxray

def mxray_flows(mxray, path):
    """flow number -> dict(cl, sv, frame, cmds [(verb, first, last)],
    replies [(code, first, last)], auth [(first, last)], data [(first, last)],
    tls_frame: last frame of a 220 answering STARTTLS, or None)."""
    def add(fl, r, t, span):
        if t == "anomaly" and r.get("name") == "STARTTLS_SERVER_INJECTION":
            fl["srv_inject"].update(r.get("frames") or [])
        elif t == "smtp.command":
            fl["cmds"].append((str(r.get("verb", "")).upper(),) + span)
        elif t == "smtp.reply":
            fl["replies"].append((int(r.get("code", 0)),) + span)
            ans = r.get("answers") or {}
            if ans.get("command") == "DATA" and "frame" in ans:
                fl["data_reply"].setdefault(ans["frame"], (int(r.get("code", 0)), span[0]))
            if r.get("code") == 220 and ans.get("command") == "STARTTLS" \
                    and fl["tls_frame"] is None:
                fl["tls_frame"] = span[1]
        elif t == "smtp.auth_data":
            fl["auth"].append(span)
        elif t == "smtp.data":
            fl["data"].append(span)
    return common.mx_flows(mxray, (), path, lambda r: common.mx_flow_start(
        r, cmds=[], replies=[], auth=[], data=[], tls_frame=None, data_reply={},
        srv_inject=set()), add)


# ---------------------------------------------------------------- compare

def vkey(v):
    """Alignment key of a verb: tshark 4.x keeps only four characters."""
    return v[:4]


def cut_bdat(mcmds, mrep, tcmds, trep, cut):
    """Keeps what comes before frame `cut` (the first BDAT line): tshark
    shows a segment holding BDAT as data, pipelined commands before the BDAT
    included, so only commands completed in earlier frames are kept, and the
    replies that start before it."""
    mk = [c for c in mcmds if c[2] < cut]
    tk = [c for c in tcmds if c[1] < cut]
    mr = [r for r in mrep if r[1] < cut]
    tr = [r for r in trep if r[1] < cut]
    return mk, mr, tk, tr


def fmt_verb(v):
    """A verb for the listing: control characters as '?', 24 at most."""
    return common.printable(v, 24)


def fmt_item(item, what):
    if item is None:
        return "-"
    if what == "cmd" and len(item) == 3:   # mxray: verb, first, last
        fr = item[1] if item[1] == item[2] else "%d-%d" % (item[1], item[2])
    elif what == "cmd":                    # tshark: verb, frame
        fr = item[1]
    else:                                  # reply: code, first, last
        fr = item[1] if item[1] == item[2] else "%d-%d" % (item[1], item[2])
    return "%s [%s]" % (fmt_verb(str(item[0])), fr)


def explain_missing(i, mseq, tseq, fl):
    """Why tshark may lack mxray's command mseq[i], or None."""
    verb, first, last = mseq[i]
    tframes = {t[1] for t in tseq}
    # A command pipelined in a segment that also holds message data (before
    # the message or after its final "."): tshark files the whole segment as
    # message data.
    if verb in VERBS and last not in tframes and in_spans(first, fl["data"]):
        return "data-segment", "tshark shows a segment holding message data as" \
            " message data throughout, the commands pipelined in it included"
    # After a DATA refused by the server, tshark enters message mode anyway
    # and shows the lines up to the next "." as data.  Only when the refusal
    # came before the line (the client had seen it) and tshark shows no
    # command between the DATA and the line.
    for k in range(i - 1, -1, -1):
        if mseq[k][0] == "DATA":
            d = mseq[k]
            rep = fl["data_reply"].get(d[1]) or fl["data_reply"].get(d[2])
            if rep is not None and rep[0] != 354 and rep[1] < first and \
                    not any(d[2] < f <= last for f in tframes):
                return "refused-data", "tshark enters message mode on DATA even" \
                    " when it is refused (%d at frame %d to DATA at frame %d) and" \
                    " shows the commands that follow as message data" % (
                        rep[0], rep[1], d[1])
            break
    return None


def compare_seq(mseq, tseq, what, fl):
    """Compares one sequence.  Returns (state, reasons, context lines); the
    differences a documented tshark limitation explains are named."""
    key = vkey if what == "cmd" else (lambda x: x)
    ops = common.align([key(x[0]) for x in mseq], [key(x[0]) for x in tseq])
    reasons, bad = [], False
    extra_auth, extra_data, extra_inject, missing = [], [], [], {}
    # tshark's 220 to STARTTLS (the reply ending in mxray's TLS frame): the
    # server's injected cleartext can only come after it.
    tls = fl.get("tls_frame")
    tls_idx = next((j for j, r in enumerate(tseq) if what == "reply" and r[0] == 220
                    and r[1] <= tls <= r[2]), None) if tls is not None else None
    for tag, i1, i2, j1, j2 in ops:
        if tag == "equal":
            if what == "cmd":
                for k in range(i2 - i1):
                    mv, tv = mseq[i1 + k][0], tseq[j1 + k][0]
                    if mv != tv and not (tv == "STAR" and mv == "STARTTLS"):
                        reasons.append("tshark shows only the first four characters"
                                       " of a command: %s for %s (frame %d)"
                                       % (tv, mv, tseq[j1 + k][1]))
            continue
        for i in range(i1, i2):
            why = explain_missing(i, mseq, tseq, fl) if what == "cmd" else None
            if why is None:
                bad = True
            else:
                missing.setdefault(why, []).append(mseq[i])
        for j, t in enumerate(tseq[j1:j2], j1):
            if what == "reply" and tls_idx is not None and j > tls_idx and \
                    t[1] in fl.get("srv_inject", ()):
                extra_inject.append(t)
            elif what == "cmd" and t[0] not in VERBS and in_spans(t[1], fl["auth"]):
                extra_auth.append(t)
            elif what == "cmd" and t[0] not in VERBS and in_spans(t[1], fl["data"]):
                extra_data.append(t)
            else:
                bad = True
    if bad:
        return "mismatch", [], common.show_context(mseq, tseq, ops,
                                                   lambda x: fmt_item(x, what))
    if extra_auth:
        reasons.append("tshark shows %d SASL continuation line(s) as command(s): %s"
                       % (len(extra_auth), ", ".join("%s [%d]" % t for t in extra_auth[:4])))
    if extra_data:
        reasons.append("tshark shows %d message data line(s) as command(s): %s"
                       % (len(extra_data), ", ".join("%s [%d]" % t for t in extra_data[:4])))
    if extra_inject:
        reasons.append("tshark reads the server's cleartext after its 220 to STARTTLS (frame %d)"
                       " as %d reply(ies): %s; it answers no command: mxray raises"
                       " STARTTLS_SERVER_INJECTION (frames %s) and reads nothing after the 220"
                       " as SMTP" % (tls, len(extra_inject),
                                    ", ".join("%d [%d]" % t[:2] for t in extra_inject[:4]),
                                    sorted(fl["srv_inject"])))
    for (_, text), items in missing.items():
        reasons.append("%s: %s" % (text, ", ".join(
            "%s [%d]" % (fmt_verb(c[0]), c[1]) for c in items[:6]) +
            (", ..." if len(items) > 6 else "")))
    return ("known" if reasons else "ok"), reasons, []


def compare_stream(fl, ts):
    """Returns (state, reasons, details) for one stream; fl is mxray's (flows
    merged), ts tshark's."""
    mcmds, mrep = fl["cmds"], fl["replies"]
    tcmds, trep = ts["cmds"], ts["replies"]
    reasons = []

    # STARTTLS answered 220: TLS follows; drop tshark lines after it that are
    # not SMTP (tshark may parse TLS records as SMTP lines).
    tls = fl["tls_frame"]
    if tls is not None:
        after_c = [c for c in tcmds if c[1] > tls]
        after_r = [r for r in trep if r[1] > tls]
        if (after_c or after_r) and not any(c[0] in VERBS for c in after_c):
            tcmds = [c for c in tcmds if c[1] <= tls]
            trep = [r for r in trep if r[1] <= tls]
            reasons.append("after STARTTLS+220 (frame %d) the stream is TLS; tshark"
                           " parsed %d command(s) and %d reply(ies) from it as SMTP"
                           % (tls, len(after_c), len(after_r)))

    def run_both(mc, mr, tc, tr):
        sc, rc, cc = compare_seq(mc, tc, "cmd", fl)
        sr, rr, cr = compare_seq(mr, tr, "reply", fl)
        return sc, rc, cc, sr, rr, cr

    sc, rc, cc, sr, rr, cr = run_both(mcmds, mrep, tcmds, trep)
    bdat = [c[1] for c in mcmds if c[0] == "BDAT"] + \
           [c[1] for c in tcmds if c[0] == "BDAT"]
    if (sc != "ok" or sr != "ok") and bdat:
        cut = min(bdat)
        mc, mr, tc, tr = cut_bdat(mcmds, mrep, tcmds, trep, cut)
        b = run_both(mc, mr, tc, tr)
        if b[0] != "mismatch" and b[3] != "mismatch":
            sc, rc, cc, sr, rr, cr = b
            reasons.append("BDAT from frame %d: tshark does not know BDAT; compared"
                           " the %d command(s) and %d reply(ies) before it"
                           % (cut, len(mc), len(mr)))
        else:
            sc, rc, cc, sr, rr, cr = b
            reasons.append("(BDAT from frame %d: compared only before it)" % cut)
    details = []
    if sc == "mismatch":
        details.append("  commands (mxray %d, tshark %d):" % (len(mcmds), len(tcmds)))
        details += cc
    if sr == "mismatch":
        details.append("  replies (mxray %d, tshark %d):" % (len(mrep), len(trep)))
        details += cr
    state = "mismatch" if "mismatch" in (sc, sr) else \
        "known" if (reasons or rc or rr) else "ok"
    return state, reasons + rc + rr, details


# ---------------------------------------------------------------- main

class SmtpCheck(common.ProtoCheck):
    name = "compare-smtp"
    description = "Check mxray's SMTP commands and reply codes against tshark."
    proto = "SMTP"
    known_file = "compare_smtp.known"
    word = "smtp"
    tshark_proto = "smtp"
    ports = (25, 587)
    what = "SMTP command or reply"
    counted = ("commands", "replies")
    count_keys = ("cmds", "replies")
    empty_flow = {"cmds": [], "replies": [], "auth": [], "data": [],
                  "tls_frame": None, "data_reply": {}, "srv_inject": set()}
    compare_stream = staticmethod(compare_stream)

    def mxray_flows(self, mxray, src, tmp):
        return mxray_flows(mxray, src)

    def tshark(self, src, tmp, prefs):
        return tshark_smtp(src, prefs)

    def has_mx(self, fl):
        return bool(fl["cmds"] or fl["replies"])

    def has_ts(self, ts):
        return bool(ts["cmds"] or ts["replies"])

    def ts_any(self, tsall):
        return bool(tsall)

    def empty_ts(self):
        return {"cmds": [], "replies": [], "merged": 0}


if __name__ == "__main__":
    sys.exit(SmtpCheck().main())
