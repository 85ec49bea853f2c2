#!/usr/bin/env python3
"""compare_imap: check mxray's IMAP commands and completions against tshark's.

Usage:
  tests/oracle/compare_imap.py [-v] [-j N] [--full] [--mxray PATH] [--known FILE] [CAPTURE...]

With no CAPTURE, every capture under <repo>/pcaps (recursively, *.pcap and
*.pcapng) is checked, plus every capture of ../shared/corpus/MANIFEST.tsv
(column `path`) whose `contents` mention IMAP (when ../shared/corpus is
absent, a note says so and only <repo>/pcaps is checked).  A CAPTURE may be
given relative to the current directory, the repository root, this script's
directory or the corpus; `.gz` captures are decompressed to a temporary file.

For each capture, mxray runs once with `-q --json - --streams DIR`, and
tshark with
  tshark -r F -Y imap -T pdml
(plus a second pass listing every TCP stream's endpoints).  PDML keeps each
IMAP line apart with its own fields, so a tag is never paired with another
line's command: for every `imap.line` the script takes its bytes, its frame
(the frame that completes it), its place in the stream (from tcp.seq and its
position in the frame or in the reassembled PDU), and tshark's
imap.request_tag with imap.request.command (with imap.request.command.uid
tshark gives the token after UID as the command), or imap.response_tag with
imap.response.status.  (tshark 4.x spells the tag fields imap.request_tag
and imap.response_tag; there is no imap.request.tag.)  Ports where mxray
found IMAP by content (nDPI) are given to tshark with `-d tcp.port==P,imap`.
Each mxray flow is matched to the tshark stream with the same endpoint pair
whose first frame is the last one at or before the flow's first frame
(several mxray flows in one tshark stream are taken together).  A stream
where neither side has an IMAP command or tagged completion is skipped (not
counted).

Two sequences are compared per stream, aligned with difflib:
 (a) commands: mxray's imap.command records as (tag, COMMAND), "UID " put
     before the command when "by_uid" is true, against every tshark line towards
     the server that has an imap.request_tag, as (tag, COMMAND) with "UID "
     when imap.request.command.uid is present (commands upper-cased on both
     sides).  mxray's untagged DONE (end of IDLE) counts as ("", DONE), and so
     does tshark's line "DONE" (a tag and no command).
 (b) completions: mxray's imap.response records as (tag, status) against
     every tshark line from the server that has an imap.response_tag, as
     (tag, STATUS) (tshark's status is the second token of the line,
     whatever it is, or none).

How tshark (4.0, packet-imap.c) reads IMAP, which the rules below follow: it
splits each direction into lines and takes any line that does not start with
"*" as tagged: first token the tag, second the command (or the status).  It
does not follow literals, with one exception: after an untagged server line
with FETCH among its first three tokens it skips as many bytes as the first
"{n}" it finds after the first "(" -- one literal per FETCH line, and the
"{n}" of a later line when the FETCH line has none.  It hands
the stream to TLS after an OK that follows STARTTLS, also guesses TLS from a
segment that does not start with printable bytes (its ssl_heuristic), and
knows nothing of COMPRESS.

To explain the differences, both reassembled streams (from mxray --streams,
which tests/oracle/compare_streams.py checks byte for byte against tshark's
Follow TCP Stream; gaps filled with NUL bytes so offsets stay right) are read
again by this script's own small IMAP reader, independent of mxray: it cuts lines,
finds each literal ({n}, {n+}, {n-}, ~{n} at a line end) and its n bytes, and
notes where a line goes on after a literal.  A synchronising literal of the
client ({n}, {n-}) counts as sent only when tshark shows the server's "+"
after it and before the command's tagged completion.  Each tshark line is
placed in its stream from its sequence number (a line whose bytes are not
there stays unplaced, and is never explained by the rules on offsets).  The
tshark items the alignment leaves over are explained (state `known`, reason
printed with frames) when:
  commands (tshark lines towards the server)
  - literal: the line starts inside a literal of the client (an APPEND
    message, a LOGIN string): tshark reads the literal's lines as commands
  - after literal: the line is the rest of a command line after a literal
    (e.g. the text after an APPEND message, up to its CRLF)
  - SASL: a line of one token, where mxray has an imap.auth_data record in the
    same frame with the same data (or redacted length): tshark shows the
    client's SASL responses during AUTHENTICATE as commands
  completions (tshark lines from the server)
  - continuation: the line starts with "+": tshark shows a continuation
    request as a completion tagged "+"
  - literal / after literal: as above, in a server literal tshark does not
    skip (a second literal in one FETCH response, a literal outside FETCH),
    or the rest of a FETCH response after its literal (")", " UID 7)")
  both
  - overrun: the line starts in the middle of a server line, right after
    bytes tshark skipped after an untagged FETCH line that has no literal of
    its own (tshark took the "{n}" of a later line)
  - bad tag: the line's first token cannot be a tag (RFC 9051 §9), so the
    line is neither a command nor a completion (e.g. a ")" a server sent
    after a literal whose length it got wrong)
  - after STARTTLS / COMPRESS: a line holding bytes no IMAP text has (TLS
    records, deflated data) after mxray's OK to STARTTLS or to COMPRESS
    DEFLATE
  - midstream: mxray picked the flow up midstream (no SYN) and skipped lines
    until one was surely a command or a response (imap.session
    midstream_skipped > 0): tshark lines before the first item both show,
    unless the line is surely one (a valid tag and a known command, or OK,
    NO, BAD), which mxray must not skip
The mxray items the alignment leaves over are explained when tshark cannot
show them:
  - COMPRESS: after mxray's OK to COMPRESS DEFLATE (checked by (a) and (b)
    themselves), tshark cannot read the deflated stream
  - skipped: a completion in bytes tshark passed over after an untagged
    FETCH line, beyond the literal the script's reader finds there
Last, a stream still in disagreement is compared again with tshark run with
other preferences, and passes (reason printed) if it agrees:
  - -o tcp.reassemble_out_of_order:TRUE (by default tshark leaves
    out-of-order segments out as retransmissions)
  - -o imap.ssl_heuristic:FALSE (tshark's heuristic took an IMAP segment,
    e.g. a lone CRLF, for TLS though no STARTTLS was accepted; the frames
    tshark shows as TLS are named)
  - both
Anything else is a mismatch, unless the stream is listed in
tests/oracle/compare_imap.known (TSV: capture path, tshark stream, reason; the
capture path is relative to the corpus for corpus captures and to the
repository otherwise).  A listed stream passes whatever its difference; an
entry no longer needed is reported with a note.  Only tshark errors (checked
against the packets) and by-design differences belong there, never an mxray
bug.

Each stream is printed when not ok (every stream with -v):
  ok        both sequences agree as they are
  known     they agree once the differences above are explained (reasons
            printed), or the stream is listed in the known file
  mismatch  both sequences are printed around the first difference, with
            frame numbers (mxray: the frames of the record; tshark: the frame
            that completes the line), and the unexplained items

The last line is `N passed, M failed` (passed = ok + known).  Exit status: 0
all passed, 1 failures (or a tool failed), 2 usage error, 77 skipped (tshark
absent).

Options:
  -v, --verbose   print every stream, skipped ones too, and the counts
  -j N            captures processed in parallel (default 2)
  --full          print whole sequences of a mismatch, not just around the
                  first difference
  --mxray PATH    the mxray binary (default <repo>/build/mxray)
  --known FILE    known-differences file (default tests/oracle/compare_imap.known)
"""
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

if __package__ in (None, ""):   # run as a file: tests/ holds the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from oracle import common  # noqa: E402
from oracle.common import OOO_PREFS, OOO_REASON  # noqa: E402

IMAP_PORTS = (143,)
HEUR_PREFS = ("-o", "imap.ssl_heuristic:FALSE")
HEUR_REASON = ("tshark's heuristic for TLS after STARTTLS took IMAP segments for TLS"
               " though no STARTTLS was accepted (frames it shows as TLS: %s);"
               " with -o imap.ssl_heuristic:FALSE tshark agrees")
# tshark run again with these preferences when a stream does not agree.
RERUNS = [("ooo", OOO_PREFS), ("heur", HEUR_PREFS), ("ooo+heur", OOO_PREFS + HEUR_PREFS)]
# IMAP4rev1/rev2 commands and the usual extensions: a line whose second token
# is one of these is never taken for a SASL response.
COMMANDS = {
    "CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "AUTHENTICATE", "LOGIN", "SELECT",
    "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "LIST",
    "LSUB", "NAMESPACE", "STATUS", "APPEND", "IDLE", "CHECK", "CLOSE", "UNSELECT",
    "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE", "UID", "ENABLE", "ID",
    "COMPRESS", "GETQUOTA", "GETQUOTAROOT", "SETQUOTA", "GETACL", "SETACL",
    "DELETEACL", "LISTRIGHTS", "MYRIGHTS", "SORT", "THREAD", "ESEARCH", "NOTIFY",
    "GETMETADATA", "SETMETADATA", "XLIST", "UNAUTHENTICATE", "REPLACE"}
LITERAL = re.compile(rb"~?\{([0-9]{1,19})([+-]?)\}\r?\n\Z")


def wire_text(b):
    """Bytes as mxray writes wire strings: UTF-8, an invalid byte as \\xNN."""
    return b.decode("utf-8", "backslashreplace")


# ---------------------------------------------------------------- tshark

def field_text(el):
    """A PDML string field's value as mxray would write it."""
    hx = el.get("value")
    if hx is not None:
        try:
            return wire_text(bytes.fromhex(hx))
        except ValueError:
            pass
    return el.get("show") or ""


SEGMENT = re.compile(r"payload: (\d+)-(\d+)")


def tshark_imap(path, tmp, prefs=()):
    """tcp.stream -> {"c2s": [line], "s2c": [line]}; a line is a dict with
    frame, data (bytes), rel (its offset in the direction's stream counted
    from tshark's relative sequence number 0), tag (None if tshark shows
    none), cmd (c2s: the command, "UID X" for a UID command; s2c: the status;
    None if none)."""
    out_path = os.path.join(tmp, "imap.pdml")
    with open(out_path, "wb") as fo:
        res = subprocess.run(["tshark"] + list(prefs) + [
            "-r", path, "-Y", "imap", "-T", "pdml"], stdout=fo, stderr=subprocess.PIPE)
    out = {}
    try:
        for _, el in ET.iterparse(out_path, events=("end",)):
            if el.tag != "packet":
                continue
            frame = sid = seq = payload_pos = None
            reasm = None            # offset of this frame's payload in a reassembled PDU
            for proto in el:
                name = proto.get("name")
                if name == "geninfo":
                    for f in proto:
                        if f.get("name") == "num":
                            frame = int(f.get("show"))
                elif name == "tcp" and sid is None:
                    hdr = 0
                    for f in proto.iter("field"):
                        fn = f.get("name")
                        if fn == "tcp.stream":
                            sid = int(f.get("show"))
                        elif fn == "tcp.seq":
                            seq = int(f.get("show"))
                        elif fn == "tcp.hdr_len":
                            hdr = int(f.get("show"))
                    payload_pos = int(proto.get("pos", "0")) + hdr
                elif name == "fake-field-wrapper":
                    for f in proto.iter("field"):
                        if f.get("name") == "tcp.segments":
                            for seg in f:
                                m = SEGMENT.search(seg.get("showname", ""))
                                if seg.get("name") == "tcp.segment" and m and \
                                        seg.get("show") == str(frame):
                                    # where this frame's payload starts in the PDU
                                    reasm = int(m.group(1))
            for proto in el:
                if proto.get("name") == "imap" and sid is not None:
                    isreq = None
                    # An IMAP PDU at position 0 is the reassembled one: it
                    # starts `reasm` bytes before this frame's payload.
                    in_reasm = reasm is not None and proto.get("pos") == "0"
                    for f in proto:
                        fname = f.get("name")
                        if fname == "imap.isrequest":
                            isreq = f.get("show") in ("1", "True", "true")
                        elif fname == "imap.line":
                            try:
                                data = bytes.fromhex(f.get("value") or "")
                            except ValueError:
                                data = b""
                            pos = int(f.get("pos", "0"))
                            rel = None
                            if seq is not None:
                                if in_reasm:
                                    rel = seq - reasm + pos
                                elif payload_pos is not None:
                                    rel = seq + pos - payload_pos
                            d = {"frame": frame, "data": data, "rel": rel, "tag": None,
                                 "cmd": None, "uid": False}
                            for c in f.iter("field"):
                                cn = c.get("name")
                                if cn in ("imap.request_tag", "imap.response_tag",
                                          "imap.request.tag", "imap.response.tag"):
                                    d["tag"] = field_text(c)
                                elif cn in ("imap.request.command", "imap.response.status"):
                                    d["cmd"] = field_text(c).upper()
                                elif cn == "imap.request.command.uid":
                                    d["uid"] = True
                            if d["uid"] and d["cmd"] is not None:
                                d["cmd"] = "UID " + d["cmd"]
                            st = out.setdefault(sid, {"c2s": [], "s2c": []})
                            st["c2s" if isreq else "s2c"].append(d)
            el.clear()
    except ET.ParseError as e:
        if res.returncode != 0:
            if out:                 # a damaged capture: what tshark read
                return out
            err = res.stderr.decode("utf-8", "replace").strip().splitlines()
            raise RuntimeError("tshark failed (%d): %s" % (
                res.returncode, err[-1] if err else ""))
        raise RuntimeError("tshark's PDML does not parse: %s" % e)
    return out


def tls_frames(path, sid, prefs=()):
    """The frames of stream sid tshark shows as TLS, for a reason's text."""
    try:
        rows = common.tshark_rows(["tshark"] + list(prefs) + [
            "-r", path, "-Y", "tls && tcp.stream==%d" % sid, "-T", "fields",
            "-e", "frame.number", "-e", "tcp.len"], 2)
    except RuntimeError:
        return "?"
    frames = [r[0] for r in rows]
    return ", ".join(frames[:8]) + (", ..." if len(frames) > 8 else "") if frames else "none"


def tshark_key(line):
    """(tag, command) of a tshark line; tshark's DONE line counts as
    mxray's untagged DONE."""
    if line["cmd"] is None and line["tag"] is not None and line["tag"].upper() == "DONE":
        return ("", "DONE")
    return (line["tag"], line["cmd"])



# ---------------------------------------------------------------- mxray

def mxray_flows(mxray, path, sdir):
    """flow number -> dict(cl, sv, frame, handshake, cmds, resps, conts,
    auth, tls_frame, compress_frame, skipped, c2s/s2c stream bytes)."""
    def add(fl, r, t, span):
        if t == "imap.command":
            cmd = str(r.get("command", "")).upper()
            if r.get("by_uid"):
                cmd = "UID " + cmd
            tag = r.get("tag")
            fl["cmds"].append(((tag if tag is not None else "", cmd),) + span)
        elif t == "imap.response":
            fl["resps"].append(((r.get("tag"), str(r.get("status", "")).upper()),) + span)
            ans = (r.get("answers") or {}).get("command")
            if r.get("status") == "OK" and ans == "STARTTLS" and fl["tls_frame"] is None:
                fl["tls_frame"] = span[1]
            if r.get("status") == "OK" and ans == "COMPRESS" and fl["compress_frame"] is None:
                fl["compress_frame"] = span[1]
        elif t == "imap.continuation":
            fl["conts"].append(span)
        elif t == "imap.auth_data":
            fl["auth"].append(span + (r.get("data"), r.get("redacted_len")))
        elif t == "imap.session":
            fl["skipped"] = int(r.get("midstream_skipped") or 0)
    flows = common.mx_flows(mxray, ("--streams", sdir), path, lambda r: common.mx_flow_start(
        r, handshake=r.get("handshake", True), cmds=[], resps=[], conts=[], auth=[],
        tls_frame=None, compress_frame=None, skipped=0, c2s=b"", s2c=b""), add)
    index = os.path.join(sdir, "index.json")
    if os.path.isfile(index):
        with open(index, encoding="utf-8") as fh:
            for st in json.load(fh).get("streams", []):
                fl = flows.get(st.get("flow"))
                if fl is None:
                    continue
                for d in ("c2s", "s2c"):
                    info = st.get(d) or {}
                    fn = info.get("file")
                    if not fn or not os.path.isfile(os.path.join(sdir, fn)):
                        continue
                    with open(os.path.join(sdir, fn), "rb") as fh:
                        data = fh.read()
                    fl[d] = fill_gaps(data, info.get("gaps") or [])
    return flows


def fill_gaps(data, gaps):
    """The stream with each gap (stream offset, length) filled with NUL
    bytes, so that literal lengths count right across it."""
    out, pos = bytearray(), 0
    for g in sorted(gaps, key=lambda g: g.get("offset", 0)):
        off, ln = int(g.get("offset", 0)), int(g.get("len", 0))
        take = max(0, off - len(out))
        out += data[pos:pos + take]
        pos += take
        out += b"\0" * ln
    out += data[pos:]
    return bytes(out)


# ---------------------------------------------------------------- streams

class Reading:
    """The script's own reading of one direction of a stream: literal spans,
    the offsets where a line goes on after a literal, and logical line
    starts."""

    def __init__(self, data, sent=None):
        self.data = data
        self.lits = []          # (start, end, offset of the line that announced it)
        self.conts = set()      # offsets where a line goes on after a literal
        self.starts = []        # offsets of logical line starts
        pos, n, logical = 0, len(data), True
        while pos < n:
            e = data.find(b"\n", pos)
            end = n if e < 0 else e + 1
            if logical:
                self.starts.append(pos)
                first = pos
            else:
                self.conts.add(pos)
            m = LITERAL.search(data, pos, end) if e >= 0 else None
            if m:
                size = int(m.group(1))
                sync = m.group(2) != b"+"
                if not sync or sent is None or sent(first, end):
                    self.lits.append((end, min(end + size, n), first))
                    pos = end + size
                    logical = False
                    continue
            logical = True
            pos = end

    def is_start(self, off):
        if not hasattr(self, "_starts"):
            self._starts = set(self.starts)
        return off in self._starts

    def role(self, off):
        """'literal', 'after-literal' or 'line' for a line starting at off."""
        for a, b, _ in self.lits:
            if a <= off < b:
                return "literal"
        if off in self.conts:
            return "after-literal"
        return "line"


def locate(lines, data):
    """Sets line["off"] for every tshark line: its offset in data, from
    tshark's relative sequence numbers (relative 1 is the first byte after
    the SYN; a flow picked up midstream starts at 0), or None when the bytes
    there are not the line's.  Returns the regions tshark showed no line in,
    in stream order: [(start, end, line before or None)]."""
    votes = {}
    for ln in lines[:200]:
        if ln["rel"] is None or not ln["data"]:
            continue
        for base in (1, 0):
            off = ln["rel"] - base
            if 0 <= off and data.startswith(ln["data"], off):
                votes[base] = votes.get(base, 0) + 1
    if not votes:
        for ln in lines:
            if ln["rel"] is not None and len(ln["data"]) >= 8:
                pos = data.find(ln["data"])
                if pos >= 0:
                    votes[ln["rel"] - pos] = 1
                    break
    base = max(votes, key=lambda b: (votes[b], b)) if votes else 1
    located = []
    for ln in lines:
        ln["off"] = None
        if ln["rel"] is None:
            continue
        off = ln["rel"] - base
        if 0 <= off and data.startswith(ln["data"], off):
            ln["off"] = off
            located.append(ln)
    located.sort(key=lambda x: x["off"])
    regions, cur, prev = [], 0, None
    for ln in located:
        if ln["off"] > cur:
            regions.append((cur, ln["off"], prev))
        cur = max(cur, ln["off"] + len(ln["data"]))
        prev = ln
    if cur < len(data):
        regions.append((cur, len(data), prev))
    return regions


def binary(data):
    """Whether a line holds bytes no IMAP text line has (controls other than
    TAB, CR, LF; DEL; 8-bit bytes that are not UTF-8)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return any(b < 0x20 and b not in (9, 10, 13) or b == 0x7f for b in data)


def surely(d, ln):
    """Whether a tshark line is surely a command (a valid tag and a known
    command) or a completion (a valid tag and OK, NO or BAD): mxray must not
    skip such a line, even midstream."""
    if not valid_tag(ln["tag"]) or ln["cmd"] is None:
        return False
    if d == "s2c":
        return ln["cmd"] in ("OK", "NO", "BAD")
    return ln["cmd"].split()[-1] in COMMANDS


def valid_tag(tag):
    """RFC 9051 §9: tag = 1*<any ASTRING-CHAR except "+">, so no CTL, SP,
    8-bit, "(", ")", "{", "%", "*", '"', "\\" or "+"."""
    if not tag:
        return False
    return all(0x20 < ord(c) < 0x7f and c not in '(){%*"\\+' for c in tag)


def fetch_line(data):
    """Whether tshark takes a line for an untagged FETCH response (a line
    starting with "*" with FETCH among its first three tokens, compared on
    the token's length as tshark does)."""
    if not data.startswith(b"*"):
        return False
    toks = data[1:].split(None, 3)[:3]
    return any(b"FETCH".startswith(t.upper()) for t in toks if t)


# ---------------------------------------------------------------- compare

def fmt_text(v):
    """A value for the listing: control characters as '?', 28 at most."""
    return common.printable(v, 28)


def fmt_key(key):
    tag, cmd = key
    if tag is None:
        tag = "(none)"
    return fmt_text("%s %s" % (tag, cmd if cmd is not None else "(none)"))


def fmt_item(item):
    if item is None:
        return "-"
    if "frame" in item:          # tshark line
        return "%s [%d]" % (fmt_key(item["key"]), item["frame"])
    a, b = item["frames"]
    return "%s [%s]" % (fmt_key(item["key"]), a if a == b else "%d-%d" % (a, b))


def list_items(items, n=5):
    return common.list_items(items, fmt_item, n)


REASONS = {
    ("c2s", "literal"): "tshark does not follow literals: it reads the lines of a client"
                        " literal (APPEND message, LOGIN/other string) as commands",
    ("c2s", "after-literal"): "tshark takes the rest of a command line after a literal"
                              " for a new command",
    ("c2s", "sasl"): "tshark shows the client's SASL responses during AUTHENTICATE as"
                     " commands (mxray: imap.auth_data with the same data)",
    ("s2c", "continuation"): "tshark shows a continuation request (\"+ ...\") as a"
                             " completion tagged \"+\"",
    ("s2c", "literal"): "tshark does not follow this server literal (only the first {n}"
                        " of an untagged FETCH line): it reads its lines as completions",
    ("s2c", "after-literal"): "tshark takes the rest of a FETCH response after its literal"
                              " (\")\", \" UID n)\", ...) for a completion",
    ("any", "bad-tag"): "tshark takes a line whose first token cannot be a tag (RFC 9051"
                        " §9: no \"(\", \")\", \"{\", \"%\", \"*\", quote, backslash, \"+\","
                        " control or 8-bit characters) for a tagged line; it is neither"
                        " a command nor a completion",
    ("any", "tls"): "after mxray's OK to STARTTLS the stream is TLS; tshark read lines"
                    " of it as IMAP",
    ("any", "compress"): "after OK to COMPRESS DEFLATE the stream is deflated: tshark"
                         " does not inflate it, mxray does",
    ("any", "midstream"): "mxray picked the flow up midstream and skipped lines until one"
                          " was surely a command or a response; tshark reads every line",
    ("s2c", "overrun"): "tshark skipped the size of a later line's {n} after an untagged"
                        " FETCH line that has no literal of its own (it looks for \"{\""
                        " past the line's end), and reads on from the middle of a line",
    ("any", "skipped"): "tshark passed over these bytes after an untagged FETCH line:"
                        " it skips the size of the first {n} it finds after \"(\", even"
                        " past the line's end",
}


class Ctx:
    """What one stream's explanations need: both streams, the script's own
    reading of them, and where tshark's lines are in them."""

    def __init__(self, merged, ts):
        self.fl = merged
        self.tls = merged["tls_frame"]
        self.comp = merged["compress_frame"]
        self.c_data, self.s_data = merged["c2s"], merged["s2c"]
        self.c_regions = locate(ts["c2s"], self.c_data)
        self.s_regions = locate(ts["s2c"], self.s_data)
        self.s_read = Reading(self.s_data)
        # A synchronising literal of the client is sent once the server says
        # "+": the first of tshark's "+" lines and the command's completion
        # that comes after the frame of the literal's line decides.
        end_frame = {ln["off"] + len(ln["data"]): ln["frame"]
                     for ln in ts["c2s"] if ln["off"] is not None}
        events = []
        for ln in ts["s2c"]:
            if ln["off"] is None or self.s_read.role(ln["off"]) != "line":
                continue
            if ln["data"][:1] == b"+":
                events.append((ln["frame"], "+", None))
            elif ln["tag"] is not None:
                events.append((ln["frame"], "tag", ln["tag"]))
        events.sort(key=lambda e: e[0])

        def sent(first, end):
            f = end_frame.get(end)
            if f is None:
                return True
            tag = wire_text(self.c_data[first:end].split(b" ", 1)[0])
            for ef, kind, etag in events:
                if ef < f:
                    continue
                if kind == "+":
                    return True
                if etag == tag:
                    return False
            return True
        self.c_read = Reading(self.c_data, sent)
        self.midstream = not merged["handshake"] and merged["skipped"] > 0

    def explain_tshark(self, d, ln, first_equal):
        """Why tshark line ln (direction d) has no mxray counterpart, or
        None."""
        # After STARTTLS or COMPRESS, only lines that are not text: TLS
        # records or deflated bytes tshark cut at their LF bytes.
        if self.tls is not None and ln["frame"] > self.tls and binary(ln["data"]):
            return "tls"
        if self.comp is not None and ln["frame"] > self.comp and binary(ln["data"]):
            return "compress"
        off = ln["off"]
        if self.midstream and first_equal is not None and not surely(d, ln):
            if (off is not None and first_equal["off"] is not None and off < first_equal["off"]) \
                    or (off is None and ln["frame"] < first_equal["frame"]):
                return "midstream"
        if off is None:
            return None
        read = self.c_read if d == "c2s" else self.s_read
        role = read.role(off)
        if role != "line":
            return role
        if d == "s2c" and not read.is_start(off):
            # tshark starts a line in the middle of one: it skipped the
            # bytes before after an untagged FETCH line.
            for start, end, prev in self.s_regions:
                if end == off and prev is not None and fetch_line(prev["data"]):
                    return "overrun"
            return None
        if d == "s2c" and ln["data"][:1] == b"+":
            return "continuation"
        if not valid_tag(ln["tag"]):
            return "bad-tag"
        if d == "s2c":
            return None
        # SASL: one token, where mxray has an auth_data line in that frame
        # with that text (or its redacted length).
        if ln["cmd"] is None and ln["tag"] is not None:
            text = ln["data"].rstrip(b"\r\n").strip()
            for a, b, data, rlen in self.fl["auth"]:
                if a <= ln["frame"] <= b and (
                        (data is not None and data.strip() == wire_text(text))
                        or (rlen is not None and rlen == len(text))):
                    return "sasl"
        return None

    def explain_mxray(self, d, item):
        """Why tshark lacks mxray's item (a command or completion), or None."""
        if self.comp is not None and item["frames"][0] > self.comp:
            return "compress"
        if d != "s2c":
            return None
        # A completion in bytes tshark passed over after an untagged FETCH
        # line, beyond what the script's reader finds to be the literal.
        tag = item["key"][0] or ""
        want = tag.encode("utf-8", "surrogateescape") + b" "
        for start, end, prev in self.s_regions:
            if prev is None or not fetch_line(prev["data"]):
                continue
            lit_end = prev["off"] + len(prev["data"])
            for a, b, first in self.s_read.lits:
                if first == prev["off"] and a == lit_end:
                    lit_end = b
                    break
            for off in self.s_read.starts:
                if max(start, lit_end) <= off < end and self.s_data.startswith(want, off):
                    return "skipped"
        return None


def compare_side(d, mseq, tseq, ctx):
    """Aligns and explains one sequence.  Returns (ok, reasons, lines)."""
    ops = common.align([x["key"] for x in mseq], [x["key"] for x in tseq])
    first_equal = None
    for tag, i1, i2, j1, j2 in ops:
        if tag == "equal":
            first_equal = tseq[j1]
            break
    why_t, why_m, bad, explained = {}, {}, [], set()
    for tag, i1, i2, j1, j2 in ops:
        if tag == "equal":
            continue
        for t in tseq[j1:j2]:
            w = ctx.explain_tshark(d, t, first_equal)
            if w is None:
                bad.append(("tshark", t))
            else:
                why_t.setdefault(w, []).append(t)
                explained.add(id(t))
        for m in mseq[i1:i2]:
            w = ctx.explain_mxray(d, m)
            if w is None:
                bad.append(("mxray", m))
            else:
                why_m.setdefault(w, []).append(m)
                explained.add(id(m))
    reasons = []
    what = "command" if d == "c2s" else "completion"
    for w, items in why_t.items():
        text = REASONS.get((d, w)) or REASONS.get(("any", w)) or w
        reasons.append("%s: %d tshark %s line(s): %s" % (text, len(items), what,
                                                          list_items(items)))
    for w, items in why_m.items():
        text = REASONS.get((d, w)) or REASONS.get(("any", w)) or w
        reasons.append("%s: %d mxray %s(s) tshark does not show: %s" % (
            text, len(items), what, list_items(items)))
    if bad:
        lines = ["  unexplained: " + ", ".join(
            "%s %s" % (who, fmt_item(x)) for who, x in bad[:8]) +
            (", ..." if len(bad) > 8 else "")]
        return False, reasons, lines + common.show_context(mseq, tseq, ops, fmt_item, 38,
                                                            explained)
    return True, reasons, []


def compare_stream(merged, ts):
    ctx = Ctx(merged, ts)
    mc = [{"key": k, "frames": (a, b)} for k, a, b in merged["cmds"]]
    mr = [{"key": k, "frames": (a, b)} for k, a, b in merged["resps"]]
    tc = [dict(ln, key=tshark_key(ln)) for ln in ts["c2s"] if ln["tag"] is not None]
    tr = [dict(ln, key=(ln["tag"], ln["cmd"])) for ln in ts["s2c"] if ln["tag"] is not None]
    okc, rc, cc = compare_side("c2s", mc, tc, ctx)
    okr, rr, cr = compare_side("s2c", mr, tr, ctx)
    details = []
    if not okc:
        details.append("  commands (mxray %d, tshark %d):" % (len(mc), len(tc)))
        details += cc
    if not okr:
        details.append("  completions (mxray %d, tshark %d):" % (len(mr), len(tr)))
        details += cr
    if not (okc and okr):
        return "mismatch", rc + rr, details
    return ("known" if rc or rr else "ok"), rc + rr, []


def has_imap_mx(fl):
    return bool(fl["cmds"] or fl["resps"])


def has_imap_ts(ts):
    return any(ln["tag"] is not None for d in ("c2s", "s2c") for ln in ts[d])


# ---------------------------------------------------------------- main

class ImapCheck(common.ProtoCheck):
    name = "compare-imap"
    description = "Check mxray's IMAP commands and tagged completions against tshark."
    proto = "IMAP"
    known_file = "compare_imap.known"
    word = "imap"
    tshark_proto = "imap"
    ports = IMAP_PORTS
    what = "IMAP command or completion"
    counted = ("commands", "completions")
    empty_flow = {"cmds": [], "resps": [], "conts": [], "auth": [], "tls_frame": None,
                  "compress_frame": None, "c2s": b"", "s2c": b""}
    has_mx, has_ts = staticmethod(has_imap_mx), staticmethod(has_imap_ts)
    compare_stream = staticmethod(compare_stream)

    def mxray_flows(self, mxray, src, tmp):
        return mxray_flows(mxray, src, os.path.join(tmp, "streams"))

    def tshark(self, src, tmp, prefs):
        return tshark_imap(src, tmp, prefs)

    def empty_ts(self):
        return {"c2s": [], "s2c": []}

    def merge(self, fls):
        return dict(super().merge(fls), handshake=fls[0]["handshake"] if fls else True,
                    skipped=sum(f["skipped"] for f in fls))

    def numbers(self, merged, ts):
        ntc = sum(1 for ln in ts["c2s"] if ln["tag"] is not None)
        ntr = sum(1 for ln in ts["s2c"] if ln["tag"] is not None)
        return (len(merged["cmds"]), ntc), (len(merged["resps"]), ntr)

    def reruns(self, src, sid, decode):
        def why(name):
            out = []
            if "ooo" in name:
                out.append(OOO_REASON)
            if "heur" in name:
                out.append(HEUR_REASON % tls_frames(src, sid, decode))
            return out
        return [(name, prefs, lambda name=name: why(name)) for name, prefs in RERUNS]


if __name__ == "__main__":
    sys.exit(ImapCheck().main())
