#!/usr/bin/env python3
"""compare_oracles: check mxray's SMTP transactions against Zeek and Suricata.

Usage:
  tests/oracle/compare_oracles.py [-v] [--mxray PATH] [--known FILE] [ORACLE...]

The peers' published expectations live in ../shared/corpus/oracles/ (see its
README).  Every oracle that says something about SMTP transactions is checked:

  zeek/<baseline>           a Zeek btest baseline with an smtp.log; the trace
                            comes from zeek/INDEX.tsv and MANIFEST.tsv
  suricata-verify/<test>    a suricata-verify test.yaml with filters on
                            `event_type: smtp` records (or on smtp.* keys with
                            no event_type); the capture comes from
                            suricata-verify/INDEX.tsv

An ORACLE argument keeps only the oracles whose id ("zeek/<baseline>",
"suricata-verify/<test>") or capture contains it.  mxray runs once per capture
as `mxray -q --json - CAPTURE` (exit 0, or 3 for damaged input, is accepted;
`.gz` captures are decompressed first).

Zeek (one compared unit per smtp.log line)
------------------------------------------
Zeek's smtp.log has one line per *Zeek record*.  A record is written when the
server answers the end of the message data ("." or BDAT ... LAST), when the
next MAIL command arrives, or when the connection ends, and only if the
client did something in it (MAIL, RCPT or STARTTLS).  RSET and EHLO do not
end a record.  The flow is the mxray flow with the same four-tuple (the nth
Zeek uid with a four-tuple takes the nth mxray flow with it).  Each line is
mapped to mxray as follows:

  envelope   mailfrom set: the next mxray smtp.transaction of the flow, in
             order.
  null/orphan mailfrom unset, rcptto set: either a transaction whose MAIL had
             no address (MAIL FROM:<>, or a midstream partial transaction with
             no MAIL seen) -- then paired like an envelope line -- or RCPT
             commands outside any transaction, which mxray does not make a
             transaction of: each address must then be in an mxray RCPT
             command flagged COMMAND_OUT_OF_SEQUENCE before the next
             transaction.
  session    neither mailfrom nor rcptto (a session with only HELO/STARTTLS,
             logged because STARTTLS counts as client activity): the flow's
             smtp.session record.

Fields compared, with the mapping used:

  helo        transaction (or session) helo; Zeek's '-' means no HELO/EHLO.
  mailfrom    Zeek extracts the first address of the MAIL argument with its
              regex (extract_first_email_addr); the same extraction is applied
              to "FROM:<mailfrom> mail_params" rebuilt from mxray's fields, so a
              path without '@' (e.g. <>) is expected as '-'.
  rcptto      as sets: Zeek's extract_email_addrs_set over every RCPT argument
              ("TO:<addr> params" rebuilt from mxray's recipients, ORCPT=rfc822;
              removed as Zeek does).  Addresses Zeek has on top that mxray saw
              as out-of-sequence RCPTs before the next MAIL (Zeek keeps adding
              RCPTs to a record after RSET) are accepted.
  last_reply  Zeek writes "CODE TEXT" of the last reply *line* the server sent
              before the record was written (enhanced code left in TEXT).
              mxray's transaction has only the text of its deciding reply in
              last_reply; its code and enhanced code are in that smtp.reply
              record (the one in the same flow whose last frame is the
              transaction's last frame and whose text is last_reply).  The
              expected Zeek value is rebuilt from mxray's smtp.reply records:
              the reply to the end of data when that came before the next MAIL
              command (then it is the transaction's own final reply), else the
              last reply before the next MAIL command, else the last reply of
              the flow.  It is compared as: same code, same enhanced code when
              Zeek's text starts with one, and the rest of Zeek's text equal
              to the last line of mxray's text (both stripped).  Both absent
              (no reply seen, e.g. one-sided captures) is agreement.  When
              Zeek's value is the reply to the end of data, the transaction's
              own last_reply must be that reply too.
  tls         the transaction's tls (the session's for a session line).
  trans_depth Zeek counts messages whose data got a reply, so its trans_depth
              is 1 + the number of replies to end of data ("(end of data)", or
              BDAT whose argument ends in " LAST") in the flow before the
              line's MAIL (all of them for a session line), while mxray
              numbers its transactions 1, 2, ...  Checked: mxray's trans_depth
              runs 1..n in order in each flow, the lines pair with the
              transactions in that order, and Zeek's value is the one derived.

An mxray transaction that no line pairs with is a failed unit of its own.

Suricata (one compared unit per filter check)
---------------------------------------------
mxray is rendered as Suricata-like smtp records: one per transaction (helo,
mail_from, rcpt_to), plus, for a flow with commands but no transaction (HELO
then QUIT or STARTTLS, say), one record with the session's helo only.  tx_id
is the record's index in its flow.  Suricata logs the command argument
("<a@b>"); the path inside the angle brackets is compared with mxray's.
Understood keys: event_type, smtp.helo, smtp.mail_from, smtp.rcpt_to[N],
tx_id, src_ip/dest_ip/src_port/dest_port (client/server), proto (TCP),
app_proto (smtp), has-key and not-has-key on smtp.* keys.  A filter with no
event_type is read as one on smtp records when its keys are smtp.*, email.*
or those just named (one with frame.*, files, alert.* ... is not).  Other
keys (email.*, pcap_cnt, pkt_src, ...) are dropped; a check that lost keys
only gives a lower bound (mxray must have at least `count` matches), and a
`count: 0` check that lost keys is not evaluated.  Not compared: alert, fileinfo, frame, anomaly and stats records
(alerts fire mid-transaction; fileinfo repeats the smtp record; stats and
anomalies are Suricata's own counters).  Suricata is taken to be the newest
version: filters requiring lt-version (or an exact older version) are
skipped.  Tests where Suricata in IPS mode drops traffic (stats
firewall.blocked > 0, or a drop event expected) are skipped: records after
the verdict are missing by Suricata's policy, not its parsing.

Output
------
One line per disagreement: `FAIL <oracle> <capture> <field>: ...`.  A
disagreement listed in the known file (default
tests/oracle/compare_oracles.known; TSV: oracle id, capture relative to the
corpus, field, reason) is printed as
`known ...` and does not fail its unit.  Fields are helo, mailfrom, rcptto,
last_reply, tls, trans_depth, record (a line or transaction with no
counterpart), flow, run (mxray failed) and, for Suricata, check#K (the Kth
entry of `checks`, from 1); a Zeek field may carry `@N` for the Nth line of
the smtp.log (from 1), and a known entry without `@N` covers every line.
With -v every unit and every skipped check is printed.  The last line is
`N passed, M failed` (units as above).

Exit status: 0 all passed, 1 failures (or a tool failed), 2 usage error, 77
skipped (../shared absent).
"""
import argparse
import json
import os
import re
import shutil
import sys
import tempfile

if __package__ in (None, ""):   # run as a file: tests/ holds the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from oracle import common  # noqa: E402
from oracle.common import CORPUS, ORACLES, norm_addr  # noqa: E402

ENH = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})(?:\s+|$)")


# ---------------------------------------------------------------- YAML subset
# suricata-verify's test.yaml files use block mappings and sequences, plain,
# single- and double-quoted scalars, flow sequences of scalars and comments.
# PyYAML is used when present; this parser reads that subset otherwise.

class YamlError(Exception):
    pass


def _strip_comment(line):
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
            elif ch == "\\" and quote == '"':
                continue
        elif ch in "\"'" and (i == 0 or line[i - 1] in " \t:-[,"):
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def _dq(s, i):
    """Double-quoted scalar starting at s[i] == '"' -> (value, end)."""
    out, i = [], i + 1
    esc = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", '"': '"', "\\": "\\",
           "/": "/", " ": " ", "a": "\a", "b": "\b", "e": "\x1b"}
    while i < len(s):
        ch = s[i]
        if ch == '"':
            return "".join(out), i + 1
        if ch == "\\" and i + 1 < len(s):
            nx = s[i + 1]
            if nx in esc:
                out.append(esc[nx])
                i += 2
                continue
            width = {"x": 2, "u": 4, "U": 8}.get(nx)
            if width:
                out.append(chr(int(s[i + 2:i + 2 + width], 16)))
                i += 2 + width
                continue
        out.append(ch)
        i += 1
    raise YamlError("unterminated double-quoted scalar")


def _sq(s, i):
    out, i = [], i + 1
    while i < len(s):
        if s[i] == "'":
            if s[i + 1:i + 2] == "'":
                out.append("'")
                i += 2
                continue
            return "".join(out), i + 1
        out.append(s[i])
        i += 1
    raise YamlError("unterminated single-quoted scalar")


def _plain(s):
    s = s.strip()
    if re.fullmatch(r"[-+]?\d+", s):
        return int(s)
    if re.fullmatch(r"[-+]?\d+\.\d*(?:[eE][-+]?\d+)?", s):
        return float(s)
    low = s.lower()
    if low in ("true", "yes", "on") and s in ("true", "True", "TRUE", "yes",
                                              "Yes", "YES", "on", "On", "ON"):
        return True
    if low in ("false", "no", "off") and s in ("false", "False", "FALSE", "no",
                                               "No", "NO", "off", "Off", "OFF"):
        return False
    if s in ("", "~", "null", "Null", "NULL"):
        return None
    return s


def _scalar(s):
    s = s.strip()
    if not s:
        return None
    if s[0] == '"':
        v, end = _dq(s, 0)
        return v
    if s[0] == "'":
        v, end = _sq(s, 0)
        return v
    if s[0] == "[":
        items, i, cur = [], 1, ""
        while i < len(s):
            ch = s[i]
            if ch in "\"'":
                v, i = (_dq if ch == '"' else _sq)(s, i)
                items.append(v)
                cur = None
                continue
            if ch in ",]":
                if cur is not None and cur.strip():
                    items.append(_plain(cur))
                cur = ""
                if ch == "]":
                    return items
            elif cur is not None:
                cur += ch
            i += 1
        raise YamlError("unterminated flow sequence")
    return _plain(s)


def _split_key(content):
    """'key: value' -> (key, value text) or None when not a mapping entry."""
    if content[0] in "\"'":
        key, end = (_dq if content[0] == '"' else _sq)(content, 0)
        rest = content[end:].lstrip()
        if rest.startswith(":"):
            return key, rest[1:].strip()
        return None
    m = re.match(r"([^\s:][^:]*?)\s*:(?:\s+(.*)|$)", content)
    if not m:
        return None
    return m.group(1), (m.group(2) or "").strip()


def yaml_load_subset(text):
    lines = []
    for raw in text.splitlines():
        if "\t" in raw[:len(raw) - len(raw.lstrip())]:
            raise YamlError("tab in indentation")
        body = _strip_comment(raw)
        if not body.strip() or body.strip() in ("---", "..."):
            continue
        lines.append([len(body) - len(body.lstrip(" ")), body.strip()])

    def block(i, ind):
        if i >= len(lines):
            return None, i
        if lines[i][1] == "-" or lines[i][1].startswith("- "):
            return seq(i, ind)
        return mapping(i, ind)

    def seq(i, ind):
        out = []
        while i < len(lines) and lines[i][0] == ind and \
                (lines[i][1] == "-" or lines[i][1].startswith("- ")):
            item = lines[i][1][1:]
            if not item.strip():
                if i + 1 < len(lines) and lines[i + 1][0] > ind:
                    v, i = block(i + 1, lines[i + 1][0])
                else:
                    v, i = None, i + 1
                out.append(v)
                continue
            col = ind + 1 + (len(item) - len(item.lstrip(" ")))
            item = item.strip()
            if item.startswith("- ") or (_split_key(item) and item[0] not in "[\"'") \
                    or (item[0] in "\"'" and _split_key(item)):
                lines[i] = [col, item]
                v, i = block(i, col)
            else:
                v, i = _scalar(item), i + 1
            out.append(v)
        return out, i

    def mapping(i, ind):
        out = {}
        while i < len(lines) and lines[i][0] == ind:
            content = lines[i][1]
            if content.startswith("- ") or content == "-":
                break
            kv = _split_key(content)
            if kv is None:
                raise YamlError("not a mapping entry: %r" % content)
            key, rest = kv
            i += 1
            if rest:
                out[key] = _scalar(rest)
            elif i < len(lines) and lines[i][0] > ind:
                out[key], i = block(i, lines[i][0])
            elif i < len(lines) and lines[i][0] == ind and \
                    (lines[i][1] == "-" or lines[i][1].startswith("- ")):
                out[key], i = seq(i, ind)
            else:
                out[key] = None
        return out, i

    if not lines:
        return None
    value, i = block(0, lines[0][0])
    if i != len(lines):
        raise YamlError("unexpected indentation near %r" % lines[i][1])
    return value


def yaml_load(path):
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    try:
        import yaml  # noqa: PLC0415 - optional
        return yaml.safe_load(text)
    except ImportError:
        return yaml_load_subset(text)


# ---------------------------------------------------------------- Zeek logs

def zeek_unescape(s):
    if "\\x" not in s:
        return s
    raw = re.sub(rb"\\x([0-9a-fA-F]{2})", lambda m: bytes([int(m.group(1), 16)]),
                 s.encode("utf-8", "surrogateescape"))
    return raw.decode("utf-8", "replace")


def read_zeek_log(path):
    """-> list of dicts (field -> str, list, or None for unset)."""
    sep, set_sep, empty, unset = "\t", ",", "(empty)", "-"
    fields, types, recs = None, None, []
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if line.startswith("#"):
                if line.startswith("#separator "):
                    sep = zeek_unescape(line.split(" ", 1)[1])
                    continue
                f = line.split(sep)
                if f[0] == "#set_separator":
                    set_sep = f[1]
                elif f[0] == "#empty_field":
                    empty = f[1]
                elif f[0] == "#unset_field":
                    unset = f[1]
                elif f[0] == "#fields":
                    fields = f[1:]
                elif f[0] == "#types":
                    types = f[1:]
                continue
            if not line.strip() or fields is None:
                continue
            vals = line.split(sep)
            rec = {"_line": len(recs) + 1}
            for n, name in enumerate(fields):
                v = vals[n] if n < len(vals) else unset
                ty = types[n] if types and n < len(types) else "string"
                container = ty.startswith(("set[", "vector["))
                if v == unset:
                    rec[name] = None
                elif v == empty:
                    rec[name] = [] if container else ""
                elif container:
                    rec[name] = [zeek_unescape(x) for x in v.split(set_sep)]
                else:
                    rec[name] = zeek_unescape(v)
            recs.append(rec)
    return recs


# Zeek's base/utils/email.zeek, extract_email_addrs_*.
ZEEK_EMAIL = re.compile(r"(?:^|[<,:\t ])[^<,:\t @]+@[^>,;\t ]+(?:[>,;\t ]|$)")


def zeek_addrs(arg):
    out, pos = [], 0
    while True:
        m = ZEEK_EMAIL.search(arg, pos)
        if not m:
            return out
        out.append(re.sub(r"[<>,:;\t ]", "", m.group(0)))
        # find_all does not reuse the delimiter that ended a match
        pos = m.end() if m.end() > m.start() else m.start() + 1


def zeek_mailfrom(txn):
    arg = "FROM:<%s>" % txn.get("mailfrom", "")
    if txn.get("mail_params"):
        arg += " " + txn["mail_params"]
    addrs = zeek_addrs(arg)
    return addrs[0] if addrs else None


def zeek_rcpt_set(recipients):
    out = set()
    for r in recipients:
        arg = "TO:<%s>" % r.get("addr", "")
        if r.get("params"):
            arg += " " + r["params"]
        for a in zeek_addrs(arg):
            out.add(re.sub(r"ORCPT=rfc822;?", "", a))
    return out


# ---------------------------------------------------------------- mxray

class Flow:
    """An mxray flow: its flow_start record and four-tuple; a protocol's
    subclass files the flow's records (add)."""

    def __init__(self, rec):
        self.id = rec["flow"]
        self.start = rec
        self.key = (norm_addr(rec.get("client")), rec.get("client_port"),
                    norm_addr(rec.get("server")), rec.get("server_port"))

    def add(self, ty, rec):
        raise NotImplementedError

    def endpoints(self):
        """Its endpoints as Suricata names them (client to server)."""
        return {"src_ip": norm_addr(self.start.get("client")),
                "dest_ip": norm_addr(self.start.get("server")),
                "src_port": self.start.get("client_port"),
                "dest_port": self.start.get("server_port")}


class SmtpFlow(Flow):
    def __init__(self, rec):
        super().__init__(rec)
        self.txns, self.session = [], None
        self.cmds, self.replies, self.anoms = [], [], []

    def add(self, ty, rec):
        if ty == "smtp.transaction":
            self.txns.append(rec)
        elif ty == "smtp.session":
            self.session = rec
        elif ty == "smtp.command":
            self.cmds.append(rec)
        elif ty == "smtp.reply":
            self.replies.append(rec)
        elif ty == "anomaly":
            self.anoms.append(rec)


class Run:
    """mxray's run on one capture: its flows (by number, and in order), or
    the error that ended it."""

    def __init__(self):
        self.flows, self.order, self.error, self.rc = {}, [], None, None

    def of(self, proto):
        """Its flows of one protocol, in order."""
        return [self.flows[fid] for fid in self.order if self.flows[fid].start.get("proto") == proto]

    def by_key(self):
        """four-tuple -> its flows, in order."""
        out = {}
        for fid in self.order:
            out.setdefault(self.flows[fid].key, []).append(self.flows[fid])
        return out


def run_mxray(mxray, path, flow=SmtpFlow, args=()):
    """Runs `mxray -q [args] --json - CAPTURE` (a `.gz` capture decompressed
    first); each flow_start opens a flow (the class flow), which files the
    flow's other records."""
    run = Run()
    tmp = tempfile.mkdtemp(prefix="compare-oracles.") if path.endswith(".gz") else None
    try:
        src = common.gunzip(path, tmp, os.path.basename(path)[:-3]) if tmp else path
        res = common.run([mxray, "-q"] + list(args) + ["--json", "-", src])
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    run.rc = res.returncode
    run.error = common.mxray_failed(res, last_line=True)
    if run.error:
        return run
    for line in res.stdout.decode("utf-8", "replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            run.error = "mxray wrote a line that is not JSON: %r" % line[:80]
            return run
        ty, fid = rec.get("type"), rec.get("flow")
        if ty == "flow_start":
            run.flows[fid] = flow(rec)
            run.order.append(fid)
            continue
        fl = run.flows.get(fid)
        if fl is not None:
            fl.add(ty, rec)
    return run


def first_frame(rec):
    fr = rec.get("frames") or [0]
    return fr[0]


def last_frame(rec):
    fr = rec.get("frames") or [0]
    return fr[-1]


def is_end_of_data_reply(flow, rep):
    """A reply Zeek counts as a finished message ("." or BDAT ... LAST)."""
    ans = rep.get("answers") or {}
    if ans.get("command") == "(end of data)":
        return True
    if ans.get("command") == "BDAT":
        for c in flow.cmds:
            if c.get("verb") == "BDAT" and first_frame(c) == ans.get("frame") \
                    and (c.get("arg") or "").endswith(" LAST"):
                return True
    return False


def fmt_reply(rep):
    """An mxray reply as Zeek would print its last line (for messages)."""
    if rep is None:
        return "-"
    text = (rep.get("text") or "").split("\n")[-1].strip()
    enh = rep.get("enhanced")
    return "%d %s%s" % (rep.get("code", 0), enh + " " if enh else "", text)


def reply_agrees(zeek, rep):
    """Zeek's 'CODE TEXT' against an mxray smtp.reply; None = both absent."""
    if zeek is None or rep is None:
        return zeek is None and rep is None
    m = re.match(r"(\d{3})(?: (.*))?$", zeek, re.S)
    if not m or int(m.group(1)) != rep.get("code"):
        return False
    rest = (m.group(2) or "").strip()
    e = ENH.match(rest)
    if e:
        if rep.get("enhanced") and rep["enhanced"] != e.group(1):
            return False
        if not rep.get("enhanced"):
            # mxray strips an enhanced code only where the reply's first line
            # had one; keep Zeek's text whole then.
            return rest == (rep.get("text") or "").split("\n")[-1].strip()
        rest = rest[e.end():].strip()
    return rest == (rep.get("text") or "").split("\n")[-1].strip()


# ---------------------------------------------------------------- known

def known_key(f):
    """A known-file line oracle<TAB>capture<TAB>field<TAB>reason: ((oracle,
    capture, field), reason), or None when malformed."""
    if len(f) < 4 or not all(x.strip() for x in f[:4]):
        return None
    return (f[0].strip(), f[1].strip(), f[2].strip()), "\t".join(f[3:]).strip()


def load_known(path):
    return common.load_known(path, known_key, "oracle<TAB>capture<TAB>field<TAB>reason")


class Unit:
    """One compared unit: a Zeek line, an extra mxray transaction, a check."""

    def __init__(self, oracle, cap, label):
        self.oracle, self.cap, self.label = oracle, cap, label
        self.fails, self.knowns = [], []


class Reporter:
    def __init__(self, known, verbose):
        self.known, self.verbose, self.used = known, verbose, set()
        self.passed = self.failed = 0

    def lookup(self, oracle, cap, field):
        keys = [(oracle, cap, field)]
        if "@" in field:
            keys.append((oracle, cap, field.split("@")[0]))
        keys.append((oracle, cap, "*"))
        for k in keys:
            if k in self.known:
                self.used.add(k)
                return self.known[k]
        return None

    def disagree(self, unit, field, text):
        reason = self.lookup(unit.oracle, unit.cap, field)
        if reason is None:
            unit.fails.append("FAIL %s %s %s: %s" % (unit.oracle, unit.cap, field, text))
        else:
            unit.knowns.append("known %s %s %s: %s [%s]" % (unit.oracle, unit.cap,
                                                            field, text, reason))

    def finish(self, unit):
        for line in unit.knowns + unit.fails:
            print(line, flush=True)
        if unit.fails:
            self.failed += 1
        else:
            self.passed += 1
            if self.verbose and not unit.knowns:
                print("ok   %s %s %s" % (unit.oracle, unit.cap, unit.label), flush=True)

    def note(self, text):
        if self.verbose:
            print(text, flush=True)

    def fail_unit(self, oracle, cap, field, text):
        """A unit of its own that failed: the run of mxray, a test.yaml."""
        u = Unit(oracle, cap, field)
        self.disagree(u, field, text)
        self.finish(u)

    def run_failed(self, oracle, cap, run):
        """Whether mxray failed on the capture (a failed unit, then)."""
        if run.error:
            self.fail_unit(oracle, cap, "run", run.error)
        return bool(run.error)


# ---------------------------------------------------------------- Zeek

def index_rows(kind):
    """The rows of oracles/<kind>/INDEX.tsv (its header left out) that have
    three fields or more."""
    with open(os.path.join(ORACLES, kind, "INDEX.tsv"), encoding="utf-8") as fh:
        fh.readline()
        return [f for f in (line.rstrip("\n").split("\t") for line in fh) if len(f) >= 3]


def zeek_baselines(row_ok=lambda row: True, keep=lambda cap, d: True):
    """The Zeek btest baselines of zeek/INDEX.tsv, each once, in order, as
    (baseline id, its trace as a corpus capture or None, the trace as
    INDEX.tsv names it, the baseline's folder): the trace is the capture of
    MANIFEST.tsv from zeek/zeek whose path_in_repo it is (among the rows
    row_ok takes); keep(capture, folder) says which baselines to take."""
    idx = os.path.join(ORACLES, "zeek", "INDEX.tsv")
    if not os.path.isfile(idx) or not os.path.isfile(os.path.join(CORPUS, "MANIFEST.tsv")):
        return []
    by_repo_path = {r.get("path_in_repo"): r.get("path") for r in common.manifest()
                    if r.get("source_repo") == "zeek/zeek" and row_ok(r)}
    out, seen = [], set()
    for f in index_rows("zeek"):
        cap = by_repo_path.get("testing/btest/Traces/" + f[0])
        for bid in f[2].split(","):
            bid = bid.strip()
            d = os.path.join(ORACLES, "zeek", bid)
            if not bid or bid in seen or not os.path.isdir(d) or not keep(cap, d):
                continue
            seen.add(bid)
            out.append((bid, cap, f[0], d))
    return out


def zeek_oracles():
    """-> list of (oracle id, capture relative to the corpus, smtp.log path)."""
    return [("zeek/" + bid, cap or trace, os.path.join(d, "smtp.log"))
            for bid, cap, trace, d in zeek_baselines(
                keep=lambda cap, d: os.path.isfile(os.path.join(d, "smtp.log")))]


def zeek_expected_last_reply(flow, anchor):
    """The reply Zeek's record holds: see the docstring.  anchor: the frame of
    the record's first command, or None for a session line."""
    replies = sorted(flow.replies, key=last_frame)
    if anchor is None:
        return replies[-1] if replies else None
    nxt = None
    for c in sorted(flow.cmds, key=first_frame):
        if c.get("verb") == "MAIL" and first_frame(c) > anchor:
            nxt = first_frame(c)
            break
    for r in replies:
        if last_frame(r) >= anchor and is_end_of_data_reply(flow, r) and \
                (nxt is None or last_frame(r) < nxt):
            return r
    before = [r for r in replies if nxt is None or last_frame(r) < nxt]
    return before[-1] if before else None


def deciding_reply(flow, txn):
    """The smtp.reply record that carries the transaction's last_reply."""
    if "last_reply" not in txn:
        return None
    lf = last_frame(txn)
    cands = [r for r in flow.replies if last_frame(r) == lf and r.get("text") == txn["last_reply"]]
    if not cands:
        cands = [r for r in flow.replies if r.get("text") == txn["last_reply"]
                 and last_frame(r) <= lf]
    return cands[-1] if cands else None


def orphan_rcpts(flow, lo, hi):
    """Addresses (Zeek's extraction) of RCPTs mxray flagged out of sequence in
    frames (lo, hi)."""
    bad = {}
    for a in flow.anoms:
        if a.get("name") == "COMMAND_OUT_OF_SEQUENCE":
            bad[first_frame(a)] = bad.get(first_frame(a), 0) + 1
    out = set()
    for c in flow.cmds:
        f = first_frame(c)
        if c.get("verb") == "RCPT" and bad.get(f) and lo < f < hi:
            for a in zeek_addrs(c.get("arg") or ""):
                out.add(re.sub(r"ORCPT=rfc822;?", "", a))
    return out


def show(v):
    if v is None:
        return "-"
    if isinstance(v, (set, list, tuple)):
        return "{" + ",".join(sorted(v)) + "}" if v else "(empty)"
    if isinstance(v, bool):
        return "T" if v else "F"
    return json.dumps(v, ensure_ascii=False) if isinstance(v, str) else str(v)


def compare_zeek(rep, oracle, cap, log, run):
    recs = read_zeek_log(log)
    if rep.run_failed(oracle, cap, run):
        return
    by_key = run.by_key()
    groups, order = {}, []
    for r in recs:
        if r["uid"] not in groups:
            groups[r["uid"]] = []
            order.append(r["uid"])
        groups[r["uid"]].append(r)
    for uid in order:
        group = groups[uid]
        z = group[0]
        key = (norm_addr(z["id.orig_h"]), int(z["id.orig_p"]),
               norm_addr(z["id.resp_h"]), int(z["id.resp_p"]))
        flows = by_key.get(key) or []
        if not flows:
            for r in group:
                u = Unit(oracle, cap, "line %d" % r["_line"])
                rep.disagree(u, "flow@%d" % r["_line"],
                             "mxray has no SMTP flow %s:%s -> %s:%s (trans_depth %s, mailfrom %s)"
                             % (z["id.orig_h"], z["id.orig_p"], z["id.resp_h"], z["id.resp_p"],
                                r["trans_depth"], show(r["mailfrom"])))
                rep.finish(u)
            continue
        flow = flows.pop(0)
        compare_zeek_flow(rep, oracle, cap, group, flow)


def compare_zeek_flow(rep, oracle, cap, group, flow):
    txns = flow.txns
    depths = [t.get("trans_depth") for t in txns]
    seq_ok = depths == list(range(1, len(txns) + 1))
    eod = sorted(last_frame(r) for r in flow.replies if is_end_of_data_reply(flow, r))
    session = flow.session or {}
    j = 0
    prev_anchor = 0
    for z in group:
        n = z["_line"]
        u = Unit(oracle, cap, "line %d (flow %d)" % (n, flow.id))
        mf, rc = z["mailfrom"], set(z["rcptto"] or [])
        txn = None
        if mf is not None:
            kind = "envelope"
        elif rc:
            kind = "orphan"
            if j < len(txns) and zeek_mailfrom(txns[j]) is None:
                kind = "envelope"
        else:
            kind = "session"
        if kind == "envelope":
            if j >= len(txns):
                rep.disagree(u, "record@%d" % n,
                             "no mxray transaction left in flow %d for Zeek's line"
                             " (trans_depth %s, mailfrom %s, rcptto %s)"
                             % (flow.id, z["trans_depth"], show(mf), show(rc)))
                rep.finish(u)
                continue
            txn = txns[j]
            j += 1
            anchor = first_frame(txn)
            where = "flow %d transaction %s frames %s" % (
                flow.id, txn.get("trans_depth"), "-".join(map(str, txn.get("frames", []))))
            exp = {"helo": txn.get("helo"), "mailfrom": zeek_mailfrom(txn),
                   "rcptto": zeek_rcpt_set(txn.get("recipients") or []),
                   "tls": bool(txn.get("in_tls"))}
            if not seq_ok:
                rep.disagree(u, "trans_depth@%d" % n,
                             "mxray's trans_depth in flow %d run %s, not 1..%d"
                             % (flow.id, depths, len(txns)))
        elif kind == "orphan":
            nxt = first_frame(txns[j]) if j < len(txns) else float("inf")
            got = orphan_rcpts(flow, prev_anchor, nxt)
            flagged = {first_frame(a) for a in flow.anoms
                       if a.get("name") == "COMMAND_OUT_OF_SEQUENCE"}
            cands = [first_frame(c) for c in flow.cmds if c.get("verb") == "RCPT"
                     and first_frame(c) in flagged and prev_anchor < first_frame(c) < nxt]
            anchor = min(cands) if cands else prev_anchor + 1
            where = "flow %d, RCPT outside a transaction" % flow.id
            exp = {"helo": session.get("helo"), "mailfrom": None,
                   "rcptto": rc if rc <= got else got, "tls": False}
            if not rc <= got:
                rep.disagree(u, "rcptto@%d" % n,
                             "Zeek logs RCPTs without MAIL %s; mxray has no transaction"
                             " and flags out of sequence only %s (%s)"
                             % (show(rc), show(got), where))
                exp["rcptto"] = rc
        else:
            anchor = None
            where = "flow %d session" % flow.id
            exp = {"helo": session.get("helo"), "mailfrom": None, "rcptto": set(),
                   "tls": bool(session.get("in_tls"))}
        # helo, mailfrom, tls
        zh = z["helo"].strip() if z["helo"] is not None else None
        eh = exp["helo"].strip() if exp["helo"] is not None else None
        if zh != eh:
            rep.disagree(u, "helo@%d" % n, "mxray %s, zeek %s (%s)" % (show(eh), show(zh), where))
        if mf != exp["mailfrom"]:
            rep.disagree(u, "mailfrom@%d" % n, "mxray %s, zeek %s (%s)"
                         % (show(exp["mailfrom"]), show(mf), where))
        if kind != "orphan" and rc != exp["rcptto"]:
            extra = rc - exp["rcptto"]
            lo = anchor or 0
            nxt = first_frame(txns[j]) if j < len(txns) else float("inf")
            if exp["rcptto"] <= rc and extra <= orphan_rcpts(flow, lo, nxt):
                pass  # Zeek added RCPTs sent after RSET to the same record
            else:
                rep.disagree(u, "rcptto@%d" % n, "mxray %s, zeek %s (%s)"
                             % (show(exp["rcptto"]), show(rc), where))
        zt = z["tls"] == "T"
        if zt != exp["tls"]:
            rep.disagree(u, "tls@%d" % n, "mxray %s, zeek %s (%s)"
                         % (show(exp["tls"]), show(zt), where))
        # last_reply
        want = zeek_expected_last_reply(flow, anchor)
        if not reply_agrees(z["last_reply"], want):
            extra = ""
            if txn is not None:
                dec = deciding_reply(flow, txn)
                extra = "; the transaction's last_reply %s, code %s" % (
                    show(txn.get("last_reply")), dec.get("code") if dec else "?")
            rep.disagree(u, "last_reply@%d" % n,
                         "mxray's replies give %s (frame %s), zeek %s (%s%s)"
                         % (show(fmt_reply(want) if want else None),
                            last_frame(want) if want else "-", show(z["last_reply"]),
                            where, extra))
        elif txn is not None and want is not None and "last_reply" in txn \
                and is_end_of_data_reply(flow, want):
            # the transaction's own last_reply must be that reply
            dec = deciding_reply(flow, txn)
            if dec is not want:
                rep.disagree(u, "last_reply@%d" % n,
                             "transaction last_reply %s is not the reply to its data %s (%s)"
                             % (show(txn.get("last_reply")), show(fmt_reply(want)), where))
        # trans_depth
        ref = anchor if anchor is not None else float("inf")
        ed = 1 + sum(1 for f in eod if f < ref)
        try:
            zd = int(z["trans_depth"])
        except (TypeError, ValueError):
            zd = None
        if zd != ed:
            rep.disagree(u, "trans_depth@%d" % n,
                         "expected %d from mxray's replies to end of data, zeek %s (%s)"
                         % (ed, z["trans_depth"], where))
        if anchor is not None:
            prev_anchor = anchor
        rep.finish(u)
    for t in txns[j:]:
        u = Unit(oracle, cap, "flow %d transaction %s" % (flow.id, t.get("trans_depth")))
        rep.disagree(u, "record", "mxray transaction %s in flow %d (frames %s, from %s to %s, %s)"
                     " has no Zeek line" % (t.get("trans_depth"), flow.id,
                                            "-".join(map(str, t.get("frames", []))),
                                            show(t.get("mailfrom")), show(t.get("rcptto")),
                                            t.get("disposition")))
        rep.finish(u)


# ---------------------------------------------------------------- Suricata

NEWEST = (99, 0, 0)


def version_tuple(v):
    parts = [int(x) for x in re.findall(r"\d+", str(v))][:3]
    return tuple(parts + [0] * (3 - len(parts)))


def requires_ok(req):
    """Is a `requires:` block met by the newest Suricata?"""
    if not isinstance(req, dict):
        return True
    for k, v in req.items():
        if k == "lt-version":
            return False
        if k == "version":
            want = version_tuple(v)
            n = len([x for x in re.findall(r"\d+", str(v))])
            if NEWEST[:n] != want[:n]:
                return False
    return True


def suricata_oracles():
    idx = os.path.join(ORACLES, "suricata-verify", "INDEX.tsv")
    if not os.path.isfile(idx):
        return []
    out = []
    for f in index_rows("suricata-verify"):
        name = f[0][len("tests/"):] if f[0].startswith("tests/") else f[0]
        name = name.replace("/", "__")
        yml = os.path.join(ORACLES, "suricata-verify", name, "test.yaml")
        if os.path.isfile(yml):
            out.append(("suricata-verify/" + name, f[2], yml))
    return out


def smtp_checks(doc):
    """-> (list of (index, filter) that concern smtp records, blocking)."""
    checks = doc.get("checks") or [] if isinstance(doc, dict) else []
    out, blocking = [], False
    for k, c in enumerate(checks, 1):
        if not isinstance(c, dict):
            continue
        if isinstance(c.get("stats"), dict):
            try:
                if int(c["stats"].get("firewall.blocked", 0) or 0) > 0:
                    blocking = True
            except (TypeError, ValueError):
                pass
        flt = c.get("filter")
        if not isinstance(flt, dict):
            continue
        m = flt.get("match") or {}
        if m.get("event_type") == "drop" and int(flt.get("count", 0) or 0) > 0:
            blocking = True
        et = m.get("event_type")
        if et == "smtp":
            out.append((k, flt))
        elif et is None and any(str(x).startswith("smtp.") for x in m) and \
                all(str(x).startswith(("smtp.", "email.")) or x in NEUTRAL_KEYS for x in m):
            out.append((k, flt))  # read as a filter on smtp records
    return out, blocking


# Keys a filter without event_type may have and still be read as one on smtp
# records (anything else -- frame.*, files, alert.* -- targets other records).
NEUTRAL_KEYS = {"tx_id", "pcap_cnt", "pkt_src", "proto", "app_proto", "src_ip", "dest_ip",
                "src_port", "dest_port", "has-key", "not-has-key"}


def suri_path(v):
    """Suricata logs the argument; mxray the path inside the angle brackets."""
    v = str(v).strip()
    if v.startswith("<"):
        end = v.find(">")
        return v[1:end] if end >= 0 else v[1:]
    return v.split()[0] if v.split() else ""


def mxray_suricata_records(run):
    recs = []
    for fl in run.of("smtp"):
        own = []
        for t in fl.txns:
            mail_from = t.get("mailfrom")
            if mail_from == "" and t.get("partial") and "mail_params" not in t:
                mail_from = None  # midstream: no MAIL was seen
            own.append({"helo": t.get("helo"), "mail_from": mail_from,
                        "rcpt_to": list(t.get("rcptto") or []),
                        "what": "transaction %s" % t.get("trans_depth")})
        if not own and fl.session and fl.session.get("commands", 0) > 0:
            own.append({"helo": fl.session.get("helo"), "mail_from": None, "rcpt_to": [],
                        "what": "session"})
        for n, r in enumerate(own):
            r.update(fl.endpoints(), flow=fl.id, tx_id=n)
            recs.append(r)
    return recs


RCPT_IDX = re.compile(r"smtp\.rcpt_to\[(\d+)\]$")


def has_key(rec, key):
    if key == "smtp":
        return True
    if key == "smtp.helo":
        return rec["helo"] is not None
    if key == "smtp.mail_from":
        return rec["mail_from"] is not None
    if key == "smtp.rcpt_to":
        return bool(rec["rcpt_to"])
    m = RCPT_IDX.match(key)
    if m:
        return int(m.group(1)) < len(rec["rcpt_to"])
    return None  # not understood


def build_predicate(match):
    """-> (predicate(rec) -> bool, dropped keys)."""
    preds, dropped = [], []
    for key, val in match.items():
        if key == "event_type":
            continue
        if key == "smtp.helo":
            preds.append(lambda r, v=val: r["helo"] is not None and r["helo"].strip() == str(v).strip())
        elif key == "smtp.mail_from":
            preds.append(lambda r, v=val: r["mail_from"] is not None and r["mail_from"] == suri_path(v))
        elif RCPT_IDX.match(key):
            i = int(RCPT_IDX.match(key).group(1))
            preds.append(lambda r, i=i, v=val: i < len(r["rcpt_to"]) and r["rcpt_to"][i] == suri_path(v))
        elif key == "tx_id":
            preds.append(lambda r, v=val: r["tx_id"] == v)
        elif key in ("src_ip", "dest_ip"):
            preds.append(lambda r, k=key, v=val: r[k] == norm_addr(str(v)))
        elif key in ("src_port", "dest_port"):
            preds.append(lambda r, k=key, v=val: r[k] == v)
        elif key == "proto":
            preds.append(lambda r, v=val: str(v).upper() == "TCP")
        elif key == "app_proto":
            preds.append(lambda r, v=val: str(v).lower() == "smtp")
        elif key in ("not-has-key", "has-key"):
            keys = val if isinstance(val, list) else [val]
            for hk in keys:
                if not str(hk).startswith("smtp"):
                    dropped.append("%s %s" % (key, hk))
                    continue
                want = key == "has-key"
                preds.append(lambda r, hk=str(hk), want=want: has_key(r, hk) is want)
        else:
            dropped.append(key)
    return (lambda r: all(p(r) for p in preds)), dropped


def describe_match(match):
    keep = []
    for k, v in match.items():
        if k == "event_type" or not (k.startswith("smtp") or k in (
                "tx_id", "not-has-key", "has-key", "src_ip", "dest_ip", "src_port", "dest_port")):
            continue
        text = json.dumps(v) if isinstance(v, str) else str(v)
        keep.append("%s=%s" % (k, text if len(text) <= 80 else text[:76] + '..."'))
    return ", ".join(keep) or "any smtp record"


def describe_rec(r):
    return "flow %d tx %d (%s): helo %s, from %s, to %s" % (
        r["flow"], r["tx_id"], r["what"], show(r["helo"] if r["helo"] is None or
                                               len(r["helo"]) < 60 else r["helo"][:57] + "..."),
        show(r["mail_from"]), show(r["rcpt_to"]))


def suricata_checks(rep, oracle, cap, run, doc, checks, build, blocking=False):
    """The checks of a suricata-verify test to evaluate, as (label, match,
    count, predicate, dropped keys, the check's other items): checks holds
    (K, filter, ...) and build(match, ...) gives (predicate, dropped keys).
    Notes (-v) the test or the check that needs an older Suricata, a test
    where Suricata drops traffic (blocking), a check without a count and a
    `count: 0` one that lost keys; a failed mxray run is one failed unit."""
    if isinstance(doc, dict) and not requires_ok(doc.get("requires")):
        rep.note("skip %s: the test requires an older Suricata" % oracle)
        return
    if blocking:
        rep.note("skip %s %s: Suricata drops traffic in this IPS test; its records"
                 " follow the verdicts" % (oracle, cap))
        return
    if rep.run_failed(oracle, cap, run):
        return
    for k, flt, *rest in checks:
        label = "check#%d" % k
        if not requires_ok(flt.get("requires")):
            rep.note("skip %s %s %s: requires an older Suricata" % (oracle, cap, label))
            continue
        match = flt.get("match") or {}
        try:
            count = int(flt.get("count"))
        except (TypeError, ValueError):
            rep.note("skip %s %s %s: no count" % (oracle, cap, label))
            continue
        pred, dropped = build(match, *rest)
        if count == 0 and dropped:
            rep.note("skip %s %s %s: count 0 with keys mxray lacks (%s)"
                     % (oracle, cap, label, ", ".join(dropped)))
            continue
        yield label, match, count, pred, dropped, rest


def compare_suricata(rep, oracle, cap, run, doc, checks, blocking):
    recs = mxray_suricata_records(run)
    for label, match, count, pred, dropped, _ in suricata_checks(
            rep, oracle, cap, run, doc, checks, build_predicate, blocking):
        got = [r for r in recs if pred(r)]
        u = Unit(oracle, cap, "%s (count %d%s: %s)" % (
            label, count, " at least" if dropped else "", describe_match(match)))
        ok = len(got) >= count if dropped else len(got) == count
        if not ok:
            detail = "; ".join(describe_rec(r) for r in recs) or "no smtp records"
            rep.disagree(u, label, "expects %s%d record(s) with %s; mxray has %d [mxray: %s]"
                         % ("at least " if dropped else "", count, describe_match(match),
                            len(got), detail))
        rep.finish(u)


# ---------------------------------------------------------------- main

def oracle_main(description, known_file, jobs_of, handle, mxray_args=(), flow=SmtpFlow):
    """The main of compare_oracles and compare_oracles_pop3: jobs_of() gives
    the jobs (kind, oracle id, capture, what to compare), handle(reporter,
    job, get_run) compares one; get_run(capture) runs mxray on a capture of
    the corpus (once)."""
    common.start()
    ap = argparse.ArgumentParser(
        description=description, epilog="See the docstring of this script for the mappings.")
    ap.add_argument("only", nargs="*", metavar="ORACLE")
    ap.add_argument("-v", "--verbose", action="store_true")
    common.add_mxray(ap)
    ap.add_argument("--known", default=os.path.join(common.HERE, known_file))
    args = ap.parse_args()

    status = common.shared_absent()
    if status:
        return status
    if not os.path.isdir(ORACLES):
        print("SKIP: %s is absent" % ORACLES)
        return common.SKIP
    status = common.not_built(args.mxray)
    if status:
        return status

    jobs = jobs_of()
    if args.only:
        jobs = [j for j in jobs if any(o in j[1] or o in j[2] for o in args.only)]
        if not jobs:
            print("error: no oracle matches %s" % " ".join(args.only), file=sys.stderr)
            return 2

    rep = Reporter(load_known(args.known), args.verbose)
    bindir, mxray = common.private_mxray(args.mxray, "compare-oracles-bin.")
    runs = {}
    try:
        def get_run(cap):
            if cap not in runs:
                path = os.path.join(CORPUS, cap)
                if not os.path.isfile(path):
                    r = Run()
                    r.error = "capture missing: %s" % cap
                    runs[cap] = r
                else:
                    runs[cap] = run_mxray(mxray, path, flow, mxray_args)
            return runs[cap]

        for job in jobs:
            handle(rep, job, get_run)
    finally:
        shutil.rmtree(bindir, ignore_errors=True)

    ran = {(j[1], j[2]) for j in jobs}
    for key in sorted(k for k in rep.known if (k[0], k[1]) in ran and k not in rep.used):
        print("note: known entry not needed any more: %s\t%s\t%s" % key)
    return common.summary(rep.passed, rep.failed)


def jobs():
    return [("zeek",) + o for o in zeek_oracles()] + [("suricata",) + o for o in suricata_oracles()]


def handle(rep, job, get_run):
    kind, oracle, cap, src = job
    if kind == "zeek":
        compare_zeek(rep, oracle, cap, src, get_run(cap))
        return
    try:
        doc = yaml_load(src)
    except (YamlError, ValueError, IndexError) as e:
        rep.fail_unit(oracle, cap, "yaml", "cannot read %s: %s" % (src, e))
        return
    checks, blocking = smtp_checks(doc)
    if checks:
        compare_suricata(rep, oracle, cap, get_run(cap), doc, checks, blocking)


if __name__ == "__main__":
    sys.exit(oracle_main("Check mxray's SMTP transactions against Zeek's and Suricata's"
                         " published expectations.", "compare_oracles.known", jobs, handle))
