#!/usr/bin/env python3
"""truth_imap - checks mxray's IMAP records against the capture lab's ground truth.

usage: tests/oracle/truth_imap.py [-v] [--mxray PATH] [TRUTH.json...]

For every IMAP session in pcaps/**/*.truth.json (the lab's record of what
each side wrote, turn by turn, with a tls flag per turn; a turn's bytes are
its "text", or its "b64" decoded), the matching mxray flow (same server port,
same order of first packet among the flows on that port) must show, in
clear:
  - the same commands, in order, as (tag, COMMAND): the transcript's client
    bytes are cut into lines and read as IMAP does (RFC 9051 §2.2, §4.3): a
    line ending in a literal ({n}, {n+}, {n-}, ~{n}) goes on after the n
    bytes of the literal, so a command is the tag and first word of its first
    line (upper-cased; "UID FETCH" for UID FETCH, which mxray gives as FETCH
    with "by_uid": true).  A synchronising literal ({n}, {n-}) is sent only after
    the server's "+"; a tagged completion of the command first means it never
    comes.  Lines during AUTHENTICATE (from the command to its completion) are
    SASL responses, not commands (imap.auth_data in mxray); "DONE" during IDLE
    is the untagged command ("", DONE);
  - the same completions, in order, as (tag, STATUS): every server line
    (literals followed the same way) that starts with neither "*" nor "+",
    whose first word is a valid tag (RFC 9051 §9) and second word OK, NO or
    BAD (upper-cased);
  - the same message literals: every APPEND literal of the client (any
    literal of an APPEND line but the mailbox name) and every FETCH literal
    of the server whose item is a body section (BODY[...], BINARY[...],
    RFC822, RFC822.HEADER, RFC822.TEXT, with or without <origin>; this
    includes BODY[]/RFC822, the whole message) must have a `message` record
    in the flow, with source imap.append or imap.fetch, not partial, of the
    literal's size and SHA-256 -- and the flow must have no other IMAP
    message record.  For each one matched, mxray's mailbox (APPEND's, or the
    one a SELECT/EXAMINE opened with OK), its fragment flag (a section, an
    <origin>, RFC822.HEADER/.TEXT, BINARY, or an APPEND with CATENATE), and
    for FETCH its message number, its section (what is between the brackets,
    "" for BODY[] and RFC822, at most 64 bytes, "BINARY " first for BINARY;
    HEADER/TEXT for RFC822.HEADER/.TEXT, as docs/message.md has it) and its
    uid (when UID comes before the literal in the FETCH response) must be the
    transcript's.
Turns with tls true (after STARTTLS, or a whole session on 993) are not
visible to any dissector and are skipped: a session on 993 (implicit TLS)
must give an IMAP flow with no command, completion or message in clear.

STARTTLS injection (RFC 9051 §6.2.1, the CVE-2011-0411 pattern), both
directions:
  - server: an `S` turn marked "injected": true (cleartext the server wrote
    after its OK to STARTTLS, before the handshake; the lab's client
    discarded it) answers no command, and mxray rightly does not read it as
    IMAP: it is left out of the completions and message literals, and the
    flow must carry a STARTTLS_SERVER_INJECTION anomaly instead;
  - client: commands the client wrote after its STARTTLS command and before
    the server's next turn (imap/starttls-injection: "p1 STARTTLS\r\n
    p2 CAPABILITY\r\n" in one write; the lab marks no client turn) were
    really sent in clear, and mxray reports them as imap.command records
    with "injected": true.  They stay in the commands compared above; in
    addition the (tag, COMMAND) pairs mxray marks injected must be exactly
    those, with a STARTTLS_CLIENT_INJECTION anomaly.
  A session with no injection in its truth must have neither anomaly nor any
  command marked injected.

Talking out of turn (issue 26): common.check_turns (CLIENT_SPOKE_FIRST for a
client the lab marks "spoke_first", server_closed for a session it marks
"server_closed": dovecot's * BYE Disconnected for inactivity.).

One `FAIL <truth file>` block is printed per truth file that disagrees (every
session with -v), then `N passed, M failed` counted in truth files.  Exit
status: 0 all passed, 1 failures, 2 usage error, 77 skipped (no truth file
with an IMAP session).
"""
import hashlib
import os
import re
import sys

if __package__ in (None, ""):   # run as a file: tests/ holds the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from oracle import common  # noqa: E402

CLEAR_PORT, TLS_PORT = 143, 993
LITERAL = re.compile(rb"(~?)\{([0-9]{1,19})([+-]?)\}\r?\n\Z")
# A FETCH item whose literal is a message or part of one (RFC 9051 §7.5.2).
BODY_ITEM = re.compile(rb"(?:(BODY|BINARY)\[([^\]]*)\](?:<[0-9]+>)?|(RFC822(?:\.HEADER|\.TEXT)?))\s*\Z",
                       re.I)
TAG = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\+]+\Z')   # RFC 9051 §9 tag
UNTAGGED_FETCH = re.compile(rb"\*\s+([0-9]+)\s+FETCH\b", re.I)
UID_ITEM = re.compile(rb"[( ]UID\s+([0-9]+)", re.I)


def section_of(item):
    """mxray's section and fragment flag for a FETCH body item (a BODY_ITEM
    match), as docs/message.md and docs/schema.json define them: the text
    between the brackets, at most 64 bytes, "BINARY " before a BINARY one;
    RFC822 is "", RFC822.HEADER and RFC822.TEXT are HEADER and TEXT.  A
    fragment is a part of the message by request: a section, an <origin>,
    RFC822.HEADER/.TEXT, and any BINARY (decoded, not the bytes stored)."""
    if item.group(3):
        rest = item.group(3).upper()[len(b"RFC822."):]
        return {"section": text(rest), "fragment": bool(rest)}
    sec = text(item.group(2)[:64])
    binary = item.group(1).upper() == b"BINARY"
    origin = b"<" in item.group(0)
    return {"section": ("BINARY " if binary else "") + sec,
            "fragment": bool(sec) or origin or binary}


def text(b):
    return b.decode("utf-8", "backslashreplace")


def astring(b):
    """The first astring of b (atom or quoted string), unquoted."""
    b = b.lstrip()
    if b.startswith(b'"'):
        out, i = bytearray(), 1
        while i < len(b) and b[i:i + 1] != b'"':
            if b[i:i + 1] == b"\\" and i + 1 < len(b):
                i += 1
            out += b[i:i + 1]
            i += 1
        return text(bytes(out))
    return text(b.split(None, 1)[0]) if b.split() else ""


class Session:
    """Reads one session's cleartext turns as IMAP."""

    def __init__(self):
        self.cmds, self.comps, self.msgs = [], [], []
        self.injected = []          # commands after STARTTLS, before the server's next turn
        self.server_injected = 0    # server turns marked injected
        self.after_starttls = False
        self.cbuf, self.sbuf = bytearray(), bytearray()
        # client
        self.cur = None             # the command line being read: dict
        self.c_lit = 0              # literal bytes still to come
        self.c_lit_data = None      # a message literal being collected
        self.await_plus = None      # a synchronising literal's size, until "+"
        self.auth_tag = self.idle_tag = None
        self.pending = {}           # tag -> (COMMAND, mailbox)
        self.mailbox = None         # the selected mailbox
        # server
        self.scur = None
        self.s_lit = 0
        self.s_lit_data = None
        self.s_lit_meta = None

    # ---- client
    def client(self, data):
        self.cbuf += data
        self.run_client()

    def run_client(self):
        buf = self.cbuf
        while True:
            if self.c_lit:
                take = min(self.c_lit, len(buf))
                if self.c_lit_data is not None:
                    self.c_lit_data += buf[:take]
                del buf[:take]
                self.c_lit -= take
                if self.c_lit:
                    return
                self.end_client_literal()
                continue
            if self.await_plus is not None:
                return
            end = buf.find(b"\n")
            if end < 0:
                return
            line = bytes(buf[:end + 1])
            del buf[:end + 1]
            if self.cur is None:
                bare = line.rstrip(b"\r\n")
                if self.auth_tag is not None:
                    continue                    # a SASL response
                if self.idle_tag is not None and bare.strip().upper() == b"DONE":
                    self.cmds.append(("", "DONE"))
                    continue
                self.cur = {"text": b"", "lits": 0}
            self.cur["text"] += line
            m = LITERAL.search(line)
            if not m:
                self.end_command()
                continue
            size, sync = int(m.group(2)), m.group(3) != b"+"
            self.cur["text"] = self.cur["text"][:len(self.cur["text"]) - len(m.group(0))]
            self.start_client_literal(size)
            if sync:
                self.await_plus = size
            else:
                self.c_lit = size
                if not size:
                    self.end_client_literal()

    def head(self):
        toks = self.cur["text"].split(None, 3)
        tag = text(toks[0]) if toks else ""
        verb = text(toks[1]).upper() if len(toks) > 1 else ""
        if verb == "UID" and len(toks) > 2:
            verb = "UID " + text(toks[2]).upper()
        return tag, verb, toks

    def start_client_literal(self, size):
        """A literal starts: a message when it is an APPEND literal other
        than the mailbox name."""
        tag, verb, toks = self.head()
        self.c_lit_data = None
        if verb == "APPEND" and len(toks) > 2:
            self.c_lit_data = bytearray()
            self.c_lit_meta = {"source": "imap.append",
                               "mailbox": astring(self.cur["text"].split(None, 2)[2]),
                               "fragment": b"CATENATE" in self.cur["text"].upper()}
        elif verb == "APPEND":
            self.c_lit_meta = {"mailbox_literal": True}
            self.c_lit_data = bytearray()
        self.cur["lits"] += 1

    def end_client_literal(self):
        data = self.c_lit_data
        self.c_lit_data = None
        if data is None:
            return
        if self.c_lit_meta.get("mailbox_literal"):
            # the mailbox itself was a literal: keep its name in the line
            self.cur["text"] += b'"' + bytes(data).replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
            return
        self.msgs.append(dict(self.c_lit_meta, data=bytes(data)))

    def end_command(self):
        tag, verb, toks = self.head()
        self.cmds.append((tag, verb))
        if self.after_starttls:
            self.injected.append((tag, verb))
        elif verb == "STARTTLS":
            self.after_starttls = True
        mbox = None
        if verb in ("SELECT", "EXAMINE") and len(toks) > 2:
            mbox = astring(self.cur["text"].split(None, 2)[2])
        self.pending[tag] = (verb, mbox)
        if verb == "AUTHENTICATE":
            self.auth_tag = tag
        elif verb == "IDLE":
            self.idle_tag = tag
        self.cur = None

    # ---- server
    def server(self, data):
        self.after_starttls = False
        self.sbuf += data
        buf = self.sbuf
        while True:
            if self.s_lit:
                take = min(self.s_lit, len(buf))
                if self.s_lit_data is not None:
                    self.s_lit_data += buf[:take]
                del buf[:take]
                self.s_lit -= take
                if self.s_lit:
                    return
                self.end_server_literal()
                continue
            end = buf.find(b"\n")
            if end < 0:
                return
            line = bytes(buf[:end + 1])
            del buf[:end + 1]
            if self.scur is None:
                self.scur = b""
            self.scur += line
            m = LITERAL.search(line)
            if not m:
                whole, self.scur = self.scur, None
                self.server_line(whole.rstrip(b"\r\n"))
                continue
            before = self.scur[:len(self.scur) - len(m.group(0))]
            self.scur = before + b"{}"
            self.s_lit = int(m.group(2))
            self.s_lit_data = None
            f = UNTAGGED_FETCH.match(before)
            item = BODY_ITEM.search(before)
            if f and item:
                uid = UID_ITEM.search(before[f.end():])
                self.s_lit_data = bytearray()
                name = text(item.group(0)).strip()
                self.s_lit_meta = {
                    "source": "imap.fetch", "number": int(f.group(1)),
                    "uid": int(uid.group(1)) if uid else None,
                    "item": name, "mailbox": self.mailbox}
                self.s_lit_meta.update(section_of(item))
            if not self.s_lit:
                self.end_server_literal()

    def end_server_literal(self):
        if self.s_lit_data is not None:
            self.msgs.append(dict(self.s_lit_meta, data=bytes(self.s_lit_data)))
        self.s_lit_data = None

    def server_line(self, line):
        if line.startswith(b"+"):
            if self.await_plus is not None:
                self.c_lit, self.await_plus = self.await_plus, None
                if not self.c_lit:
                    self.end_client_literal()
                self.run_client()
            return
        if line.startswith(b"*"):
            return
        toks = line.split(None, 2)
        tag = text(toks[0]) if toks else ""
        status = text(toks[1]).upper() if len(toks) > 1 else ""
        if status not in ("OK", "NO", "BAD") or not TAG.match(toks[0]):
            return                      # no tagged completion (RFC 9051 §7.1)
        self.comps.append((tag, status))
        verb, mbox = self.pending.pop(tag, (None, None))
        if tag == self.auth_tag:
            self.auth_tag = None
        if tag == self.idle_tag:
            self.idle_tag = None
        if verb in ("SELECT", "EXAMINE"):
            self.mailbox = mbox if status == "OK" else None
        if self.await_plus is not None and self.cur is not None and self.head()[0] == tag:
            # the command was completed before its literal: it never comes
            self.await_plus = None
            self.c_lit_data = None
            self.end_command()
            self.run_client()


def truth_session(session):
    s = Session()
    turns, s.server_injected = common.clear_turns(session)     # injected: no IMAP
    for direction, data in turns:
        if direction == "C":
            s.client(data)
        else:
            s.server(data)
    return s


def run_mxray(mxray, pcap, *extra):
    """mxray's flows in order; extra: more options (truth_keylog's --tls-keylog)."""
    flows = {}
    for r in common.mxray_records(mxray, "-q", "--hashes", "all", *extra, "--json", "-", pcap):
        t = r["type"]
        if t == "flow_start":
            flows[r["flow"]] = {"flow": r["flow"], "port": r["server_port"], "proto": r["proto"],
                                "cmds": [], "comps": [], "msgs": [], "records": 0,
                                "injected": [], "anomalies": {}}
            continue
        fl = flows.get(r.get("flow"))
        if fl is None:
            continue
        common.note_turns(fl, r)
        if t == "anomaly":
            fl["anomalies"].setdefault(r.get("name"), r.get("frames"))
        if t.startswith("imap.") and t not in ("imap.session", "imap.auth"):
            fl["records"] += 1
        if t == "imap.command":
            cmd = str(r.get("command", "")).upper()
            if r.get("by_uid"):
                cmd = "UID " + cmd
            fl["cmds"].append((r.get("tag") or "", cmd))
            if r.get("injected"):
                fl["injected"].append((r.get("tag") or "", cmd))
        elif t == "imap.response":
            fl["comps"].append((r.get("tag"), str(r.get("status", "")).upper()))
        elif t == "message" and str(r.get("carried_by", "")).startswith("imap."):
            fl["msgs"].append(r)
            fl["records"] += 1
    return [flows[k] for k in sorted(flows)]


def show_diff(what, want, got):
    """The two sequences around their first difference."""
    n = next((i for i in range(max(len(want), len(got)))
              if i >= len(want) or i >= len(got) or want[i] != got[i]), None)
    lo = max(0, n - 2)
    fmt = lambda seq: "[%s%s%s]" % ("..., " if lo else "", ", ".join(
        "%s %s" % x for x in seq[lo:n + 4]), ", ..." if len(seq) > n + 4 else "")
    return ("%s differ at #%d (truth %d, mxray %d):\n      truth %s\n      mxray %s"
            % (what, n + 1, len(want), len(got), fmt(want), fmt(got)))


def check_session(s, f):
    idx = s["index"]
    if f["proto"] != "imap":
        return ["session %d: mxray flow %d is %s, not imap" % (idx, f["flow"], f["proto"])]
    if s["server_port"] == TLS_PORT:
        if f["records"]:
            return ["session %d (implicit TLS on 993): mxray flow %d shows %d IMAP record(s)"
                    " in clear" % (idx, f["flow"], f["records"])]
        return []
    t = truth_session(s)
    problems = common.check_injection(idx, t.injected, f["injected"], f["injected"],
                                      t.server_injected, f["anomalies"])
    problems += common.check_turns(s, f)
    if t.cmds != f["cmds"]:
        problems.append("session %d: %s" % (idx, show_diff("commands", t.cmds, f["cmds"])))
    if t.comps != f["comps"]:
        problems.append("session %d: %s" % (idx, show_diff("completions", t.comps, f["comps"])))
    left = list(f["msgs"])
    for n, m in enumerate(t.msgs, 1):
        size, sha = len(m["data"]), hashlib.sha256(m["data"]).hexdigest()
        what = "%s literal %d (%s%d bytes, %s...)" % (
            "APPEND" if m["source"] == "imap.append" else "FETCH", n,
            m.get("item", "") + " " if m.get("item") else "", size, sha[:12])
        hit = next((r for r in left if r.get("carried_by") == m["source"] and r.get("size") == size
                    and r.get("sha256") == sha and not r.get("partial")), None)
        if hit is None:
            problems.append("session %d: %s has no message record; mxray's: %s" % (
                idx, what, sorted("%s %s %s..." % (r.get("carried_by"), r.get("size"),
                                                    str(r.get("sha256"))[:12]) for r in left)))
            continue
        left.remove(hit)
        for key in ("mailbox", "number", "uid", "section", "fragment"):
            if key not in m:
                continue
            have = hit.get(key)
            if key == "section":
                have = have or ""
            elif key == "fragment":
                have = bool(have)
            if have != m[key]:
                problems.append("session %d: %s: mxray's %s %r, truth %r (frames %s)"
                                % (idx, what, key, hit.get(key), m[key], hit.get("frames")))
    for r in left:
        problems.append("session %d: mxray's message record %s %s bytes %s... (frames %s) is no"
                        " message literal of the truth" % (idx, r.get("carried_by"), r.get("size"),
                                                           str(r.get("sha256"))[:12],
                                                           r.get("frames")))
    return problems


def ok_detail(s, port):
    """What a session that agrees holds, for -v."""
    if port != CLEAR_PORT:
        return ": nothing in clear"
    tr = truth_session(s)
    return ": %d commands, %d completions, %d message literals" % (
        len(tr.cmds), len(tr.comps), len(tr.msgs))


if __name__ == "__main__":
    sys.exit(common.truth_main(__doc__, "imap", (CLEAR_PORT, TLS_PORT), run_mxray, check_session,
                               ok_detail))
