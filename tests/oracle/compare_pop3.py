#!/usr/bin/env python3
"""compare_pop3: check mxray's POP3 commands and response statuses against tshark's.

Usage:
  tests/oracle/compare_pop3.py [-v] [-j N] [--full] [--mxray PATH] [--known FILE] [CAPTURE...]

With no CAPTURE, every capture under <repo>/pcaps (recursively, *.pcap and
*.pcapng) is checked, plus every capture of ../shared/corpus/MANIFEST.tsv
(column `path`) whose `contents` mention POP3.  A CAPTURE may be given
relative to the current directory, the repository root, this script's
directory or the corpus; `.gz` captures are decompressed to a temporary file.

For each capture, mxray runs with `-q --json -` and tshark with
  tshark -r F -Y pop -T fields -E separator=/t -e frame.number
         -e tcp.stream -e pop.request.command -e pop.response.indicator
(and a second pass listing every TCP stream's endpoints).  Ports where mxray
found POP3 by content (nDPI) are given to tshark with `-d tcp.port==P,pop`.
Each mxray flow is matched to the tshark stream with the same endpoint pair
whose first frame is the last one at or before the flow's first frame (several
mxray flows in one tshark stream are taken together).  A stream where neither
side has a POP3 command or response is skipped (not counted).

How tshark (4.x, packet-pop.c) reads POP3, which the rules below follow: it
does not reassemble lines.  Each TCP segment is one POP PDU: a segment towards
port 110 is a request, and the first token of its *first line* is its
pop.request.command (the other lines of the segment are pop.request.data);
a segment from port 110 is a response only when its payload starts with
"+OK" or "-ERR" (the first token is pop.response.indicator), and otherwise a
"DATA fragment" with no indicator.  After "+OK " (with a space) answering STLS
it hands the stream to TLS.

Two sequences are compared per stream:
 (a) command verbs: mxray's pop3.command records (SASL lines after "+ " are
     pop3.auth_data there, not commands) against tshark's
     pop.request.command values, both upper-cased.
 (b) response statuses, one per response: mxray's pop3.response records
     (status "+OK", "-ERR" or "+") against tshark's pop.response.indicator
     values ("+OK..." counts as +OK, "-ERR..." as -ERR).

Before the two are aligned, the differences tshark's reading explains are
taken out, each with its reason printed (state `known`):
  commands
  - tshark lines mxray files as SASL data (pop3.auth_data): tshark shows the
    base64 line after "+ " as a command ("AGFsaWNl...")
  - mxray commands that start in the segment where the previous client line
    (command or SASL data) ended: pipelined behind it, so not the first line
    of their segment, which is all tshark dissects; likewise a command that
    arrived out of order, in a frame before the line it follows (with
    out-of-order reassembly tshark hands both to POP as one piece)
  - a command line split across segments: tshark shows the first piece's
    first token (a prefix of the verb, or the verb) and takes the first token
    of each later piece as another command; the prefix counts as the verb,
    the later pieces are dropped
  - STLS answered +OK (per mxray): what follows is TLS; tshark lines after
    mxray's +OK are dropped when mxray read no POP3 there itself
  responses
  - mxray's "+" responses (SASL continuations, RFC 5034 §4): tshark shows a
    segment starting "+ " as a DATA fragment, with no indicator
  - mxray responses that start in the segment where the previous response
    ended (responses to pipelined commands sent back in one segment), or that
    arrived out of order before it
  - tshark indicators inside an mxray RETR/TOP response whose message mxray
    read whole (not partial, no bytes lost in its frames): a later segment of
    the message whose first line starts with +OK or -ERR.  Not for CAPA, LIST
    or UIDL, whose lines cannot start so: a status there is a response
  - tshark indicators after the STLS +OK, when mxray read nothing there
  - tshark disagrees with its default TCP settings but agrees once run again
    with -o tcp.reassemble_out_of_order:TRUE (tshark otherwise skips
    out-of-order segments as retransmissions)
What remains is aligned (difflib) and must be equal; otherwise the stream is
a mismatch, unless listed in tests/oracle/compare_pop3.known (TSV: capture
path, tshark stream, reason; the capture path is relative to the corpus for
corpus captures and to the repository otherwise).  A listed stream passes
whatever its difference; an entry no longer needed is reported with a note.
Only tshark errors (checked against the packets) and by-design differences
belong there, never an mxray bug.

Each stream is printed when not ok (every stream with -v):
  ok        both sequences agree as they are
  known     they agree once the differences above are taken out (reasons
            printed), or the stream is listed in the known file
  mismatch  both sequences are printed around the first difference, with
            frame numbers (mxray: frames of the line or response; tshark: the
            frame of the segment)

The last line is `N passed, M failed` (passed = ok + known).  Exit status: 0
all passed, 1 failures (or a tool failed), 2 usage error, 77 skipped (tshark
absent).

Options:
  -v, --verbose   print every stream, skipped ones too, and the counts
  -j N            captures processed in parallel (default 2)
  --full          print whole sequences of a mismatch, not just around the
                  first difference
  --mxray PATH    the mxray binary (default <repo>/build/mxray)
  --known FILE    known-differences file (default tests/oracle/compare_pop3.known)
"""
import os
import sys

if __package__ in (None, ""):   # run as a file: tests/ holds the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from oracle import common  # noqa: E402
from oracle.common import AGG, in_spans, split_vals  # noqa: E402

VERBS = {"USER", "PASS", "APOP", "AUTH", "CAPA", "STAT", "LIST", "UIDL", "RETR",
         "TOP", "DELE", "RSET", "NOOP", "QUIT", "STLS", "UTF8", "LANG"}


# ---------------------------------------------------------------- tshark

def norm_indicator(tok):
    """tshark's indicator is the first token of a segment that starts with
    +OK or -ERR (strncmp): count it as that status."""
    t = tok.strip()
    if t.startswith("+OK"):
        return "+OK"
    if t.startswith("-ERR"):
        return "-ERR"
    return t


def tshark_pop(path, prefs=()):
    """tcp.stream -> {"cmds": [(VERB, frame, verb as sent)],
    "resps": [(status, frame)]}."""
    cmd = ["tshark"] + list(prefs) + ["-r", path, "-Y", "pop", "-T", "fields",
           "-E", "separator=/t", "-E", "aggregator=" + AGG,
           "-e", "frame.number", "-e", "tcp.stream",
           "-e", "pop.request.command", "-e", "pop.response.indicator"]
    out = {}
    for f in common.tshark_rows(cmd, 4):
        try:
            frame = int(f[0])
            sid = int(split_vals(f[1])[0])
        except (ValueError, IndexError):
            continue
        st = out.setdefault(sid, {"cmds": [], "resps": []})
        for v in split_vals(f[2]):
            st["cmds"].append((v.strip().upper(), frame, v.strip()))
        for v in split_vals(f[3]):
            if v.strip():
                st["resps"].append((norm_indicator(v), frame))
    return out


# ---------------------------------------------------------------- mxray

def mxray_flows(mxray, path):
    """flow number -> dict(cl, sv, frame, cmds [(verb, first, last)],
    auth [(first, last)], client [("cmd"|"sasl", (verb, first, last))] in
    stream order, resps [(status, first, last, answered command, whole
    message: a RETR/TOP response whose message is complete, with no lost
    bytes in its frames)], tls_frame: last frame of a +OK answering STLS, or
    None)."""
    def add(fl, r, t, span):
        if t == "gap" and r.get("dir") == "s2c":
            if r.get("frames"):
                fl["lost"].append(span)
            else:
                fl["lost_unplaced"] = True
        elif t == "anomaly" and r.get("dir") == "s2c" and r.get("name") in (
                "PARTIAL_AFTER_GAP", "RESPONSE_INCOMPLETE", "SNAPLEN_TRUNCATED", "TCP_GAP"):
            fl["lost"].append(span)
        elif t == "pop3.command":
            fl["cmds"].append((str(r.get("verb", "")).upper(),) + span)
            fl["client"].append(("cmd", fl["cmds"][-1]))
        elif t == "pop3.response":
            ans = r.get("answers") or {}
            msg = r.get("message")
            whole = ans.get("command") in ("RETR", "TOP") and isinstance(msg, dict) \
                and not msg.get("partial") and not msg.get("missing_bytes")
            fl["resps"].append((str(r.get("status", "")),) + span + (ans.get("command"), whole))
            if r.get("status") == "+OK" and ans.get("command") == "STLS" \
                    and fl["tls_frame"] is None:
                fl["tls_frame"] = span[1]
        elif t == "pop3.auth_data":
            fl["auth"].append(span)
            fl["client"].append(("sasl", ("",) + span))
        elif t == "proxy":
            fl["proxy"].append(span)
    flows = common.mx_flows(mxray, (), path, lambda r: common.mx_flow_start(
        r, cmds=[], resps=[], auth=[], client=[], tls_frame=None, lost=[], proxy=[],
        lost_unplaced=False), add)
    for fl in flows.values():
        # a message is whole only if no s2c bytes were lost inside its frames
        fl["resps"] = [x[:4] + (x[4] and not fl["lost_unplaced"] and not any(
            x[1] <= a <= x[2] or x[1] <= b <= x[2] for a, b in fl["lost"]),)
            for x in fl["resps"]]
    return flows


# ---------------------------------------------------------------- compare

def fmt_verb(v):
    """A verb for the listing: control characters as '?', 24 at most."""
    return common.printable(v, 24)


def fmt_item(item):
    if item is None:
        return "-"
    text = item[0]
    if len(item) >= 3 and isinstance(item[2], int) and item[1] != item[2]:
        fr = "%d-%d" % (item[1], item[2])
    else:
        fr = "%d" % item[1]
        if len(item) >= 3 and isinstance(item[2], str):
            text = item[2]      # tshark: the token as sent
    return "%s [%s]" % (fmt_verb(str(text)) or '""', fr)


def list_items(items, n=6):
    return common.list_items(items, fmt_item, n)


def explain_cmds(fl, tcmds):
    """Takes out of both command sequences what tshark's per-segment reading
    explains.  Returns (mxray seq, tshark seq, reasons)."""
    mcmds = list(fl["cmds"])
    reasons = []
    tls = fl["tls_frame"]
    # TLS after STLS +OK.
    if tls is not None and not any(c[1] > tls for c in mcmds) and \
            not any(a[0] > tls for a in fl["auth"]):
        after = [c for c in tcmds if c[1] > tls]
        if after:
            tcmds = [c for c in tcmds if c[1] <= tls]
            reasons.append("after STLS +OK (frame %d) the stream is TLS; tshark"
                           " parsed %d segment(s) of it as POP request(s): %s"
                           % (tls, len(after), list_items(after, 3)))
    # A PROXY protocol header (HAProxy), which mxray reads apart.
    hdr = [c for c in tcmds if c[0] == "PROXY" and in_spans(c[1], fl["proxy"])]
    if hdr:
        tcmds = [c for c in tcmds if c not in hdr]
        reasons.append("tshark's POP dissector shows the PROXY protocol header, which mxray reads"
                       " apart (a proxy record), as a command: %s" % list_items(hdr))
    # Command lines split across segments.
    split_pieces, split_first = [], []
    for verb, first, last in mcmds:
        if first == last:
            continue
        keep = []
        for c in tcmds:
            if first < c[1] <= last and not any(
                    m[1] == c[1] for m in mcmds if m[1] != first):
                split_pieces.append(c)
            else:
                keep.append(c)
        tcmds = keep
        for k, c in enumerate(tcmds):
            if c[1] == first and c[0] != verb and c[0] and verb.startswith(c[0]):
                split_first.append((c[0], verb, first, last))
                tcmds[k] = (verb, c[1])
    if split_pieces or split_first:
        reasons.append("command line(s) split across segments: tshark shows the"
                       " first token of each piece as a command (%s)" % ", ".join(
                           ["%s for %s [%d-%d]" % (fmt_verb(a), b, f, l)
                            for a, b, f, l in split_first[:4]] +
                           ["%s [%d]" % (fmt_verb(c[0]), c[1]) for c in split_pieces[:4]]))
    # SASL lines (pop3.auth_data) shown as commands.
    mstarts = {c[1] for c in mcmds}
    sasl = [c for c in tcmds if in_spans(c[1], fl["auth"]) and c[1] not in mstarts]
    if sasl:
        tcmds = [c for c in tcmds if c not in sasl]
        reasons.append("tshark shows %d SASL line(s) after \"+ \" as command(s): %s"
                       % (len(sasl), list_items(sasl, 4)))
    # Lines that are not the first of their segment.
    same, ooo, keep, prev = [], [], [], None
    for kind, item in fl["client"]:
        if kind == "cmd":
            if prev is not None and prev[2] == item[1]:
                same.append(item)
            elif prev is not None and prev[2] > item[1]:
                ooo.append(item)
            else:
                keep.append(item)
        prev = item
    if same or ooo:
        mcmds = keep
    if same:
        reasons.append("%d command(s) pipelined in the segment where the client line"
                       " before ended: tshark dissects only the first line of a"
                       " segment: %s" % (len(same), list_items(same)))
    if ooo:
        reasons.append("%d command(s) that arrived out of order, before the line they"
                       " follow: tshark hands them to POP with that line, as one"
                       " segment, and dissects its first line only: %s"
                       % (len(ooo), list_items(ooo)))
    return mcmds, tcmds, reasons


def explain_resps(fl, tresps):
    """The same for responses.  Returns (mxray seq, tshark seq, reasons)."""
    mresps = list(fl["resps"])
    reasons = []
    tls = fl["tls_frame"]
    if tls is not None and not any(r[1] > tls for r in mresps):
        after = [r for r in tresps if r[1] > tls]
        if after:
            tresps = [r for r in tresps if r[1] <= tls]
            reasons.append("after STLS +OK (frame %d) the stream is TLS; tshark"
                           " parsed %d segment(s) of it as POP response(s)"
                           % (tls, len(after)))
    cont = [r for r in mresps if r[0] == "+"]
    if cont:
        mresps = [r for r in mresps if r[0] != "+"]
        reasons.append("tshark shows %d \"+ \" SASL continuation(s) as DATA fragment(s),"
                       " without an indicator: %s" % (len(cont), list_items(cont, 4)))
    # Responses starting in the segment where the previous one ended.
    same, ooo, keep, prev_last = [], [], [], None
    for r in fl["resps"]:
        if r[0] != "+":
            if prev_last is not None and r[1] == prev_last:
                same.append(r)
            elif prev_last is not None and r[1] < prev_last:
                ooo.append(r)
            else:
                keep.append(r)
        prev_last = r[2]
    if same or ooo:
        mresps = keep
    if same:
        reasons.append("%d response(s) in the segment where the response before"
                       " ended: tshark dissects only the start of a segment: %s"
                       % (len(same), list_items(same)))
    if ooo:
        reasons.append("%d response(s) that arrived out of order, before the one they"
                       " follow: tshark hands them to POP with it, as one segment: %s"
                       % (len(ooo), list_items(ooo)))
    # tshark indicators inside a RETR/TOP message: a later segment of the
    # message starting with a line "+OK..." or "-ERR...".  Only for a message
    # mxray read whole (no bytes lost); LIST, UIDL and CAPA lines cannot start
    # with +OK or -ERR, so a status there is a response, not data.
    inside = [t for t in tresps if any(r[4] and r[1] < t[1] <= r[2] for r in fl["resps"])
              and not any(r[1] == t[1] for r in fl["resps"])]
    if inside:
        tresps = [t for t in tresps if t not in inside]
        reasons.append("tshark takes %d segment(s) of a RETR/TOP message that start"
                       " with a line \"+OK...\" or \"-ERR...\" for response(s): %s"
                       % (len(inside), list_items(inside, 4)))
    return mresps, tresps, reasons


def compare_seq(mseq, tseq):
    """-> (equal, context lines)."""
    ops = common.align([x[0] for x in mseq], [x[0] for x in tseq])
    if all(op[0] == "equal" for op in ops):
        return True, []
    return False, common.show_context(mseq, tseq, ops, fmt_item)


def compare_stream(fl, ts):
    """Returns (state, reasons, details) for one stream; fl is mxray's (flows
    merged), ts tshark's."""
    mc, tc, rc = explain_cmds(fl, ts["cmds"])
    mr, tr, rr = explain_resps(fl, ts["resps"])
    okc, cc = compare_seq(mc, tc)
    okr, cr = compare_seq(mr, tr)
    details = []
    if not okc:
        details.append("  commands (mxray %d, tshark %d; after the rules %d/%d):"
                       % (len(fl["cmds"]), len(ts["cmds"]), len(mc), len(tc)))
        details += cc
    if not okr:
        details.append("  responses (mxray %d, tshark %d; after the rules %d/%d):"
                       % (len(fl["resps"]), len(ts["resps"]), len(mr), len(tr)))
        details += cr
    if not (okc and okr):
        return "mismatch", rc + rr, details
    return ("known" if rc or rr else "ok"), rc + rr, []


# ---------------------------------------------------------------- main

def has_pop(x):
    return bool(x.get("cmds") or x.get("resps") or x.get("auth"))


class Pop3Check(common.ProtoCheck):
    name = "compare-pop3"
    description = "Check mxray's POP3 commands and response statuses against tshark."
    proto = "POP3"
    known_file = "compare_pop3.known"
    word = "pop3"
    tshark_proto = "pop"
    ports = (110,)
    what = "POP3 command or response"
    counted = ("commands", "responses")
    count_keys = ("cmds", "resps")
    empty_flow = {"cmds": [], "resps": [], "auth": [], "client": [], "tls_frame": None, "proxy": []}
    has_mx = has_ts = staticmethod(has_pop)
    compare_stream = staticmethod(compare_stream)

    def mxray_flows(self, mxray, src, tmp):
        return mxray_flows(mxray, src)

    def tshark(self, src, tmp, prefs):
        return tshark_pop(src, prefs)

    def empty_ts(self):
        return {"cmds": [], "resps": []}


if __name__ == "__main__":
    sys.exit(Pop3Check().main())
