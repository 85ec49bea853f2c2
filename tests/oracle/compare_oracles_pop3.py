#!/usr/bin/env python3
"""compare_oracles_pop3: check mxray's POP3 records against Suricata and Zeek.

Usage:
  tests/oracle/compare_oracles_pop3.py [-v] [--mxray PATH] [--known FILE] [ORACLE...]

The peers' published expectations live in ../shared/corpus/oracles/ (see its
README).  Every oracle that says something about POP3 is checked:

  suricata-verify/<test>    a suricata-verify test.yaml with filters on
                            `event_type: pop3` records, on pop3.* keys with no
                            event_type, or on `event_type: flow` records with
                            `app_proto: pop3`; the capture comes from
                            suricata-verify/INDEX.tsv
  zeek/<baseline>           a Zeek btest baseline (zeek/INDEX.tsv) whose trace
                            is a corpus capture whose MANIFEST.tsv `contents`
                            mention POP3: its printed pop3_request/pop3_reply
                            events (`out`, `output`), its weird.log, its
                            conn.log and analyzer_debug.log

This is a check of its own, beside tests/oracle/compare_oracles.py (SMTP),
because the POP3 mapping (one record per command/response exchange) shares
nothing with the SMTP one (envelopes, transactions) but the plumbing: the
YAML subset reader, the Zeek log reader, the baselines' index, running
mxray, the Suricata checks' requirements, the known-file format, the
reporter and the main are imported from compare_oracles, so the two read the
oracles alike and the SMTP checks stay as they are.

An ORACLE argument keeps only the oracles whose id ("zeek/<baseline>",
"suricata-verify/<test>") or capture contains it.  mxray runs once per capture
as `mxray -q --show-secrets --json - CAPTURE` (exit 0, or 3 for damaged
input, is accepted; `.gz` captures are decompressed first); --show-secrets so
that PASS/APOP/AUTH arguments and SASL lines compare as sent.

Suricata (one compared unit per filter check)
---------------------------------------------
Suricata's POP3 parser (rust/src/pop3) logs one pop3 record per
*transaction*: a request and the response that answers it.  mxray is rendered
as such records, per flow, in the order Suricata creates them:
  - the greeting: a transaction without request (its response is mxray's
    pop3.response answering "(connect)")
  - each pop3.command: request.command = mxray's verb (upper-case for a known
    verb, as sent otherwise), request.args = mxray's arg split on spaces
    ([] without argument), response = the pop3.response that answers it
  - each pop3.auth_data (a SASL line after "+ "): request.command
    "<SASL DATA>", args [], response = the pop3.response answering
    "(auth data)" at that frame
The response maps as:
  status    +OK -> "OK", -ERR -> "ERR"; "+" (a SASL continuation) -> "OK"
            (Suricata's "+ " challenge is an OK response with an empty header)
  success   status "OK"
  header    the status line after the status: "[resp_code] " + text when mxray
            has a resp_code (RFC 2449), else text
  data[i]   the data lines of a multi-line response: for CAPA mxray's
            capabilities[i]; for LIST and UIDL "msg size" / "msg uid" from
            listing[i]; for RETR none (Suricata drops the message lines);
            single-line responses have none.  TOP lines are not kept by
            mxray (only the message's size and SHA-256): a data key on a TOP
            response is not evaluated
A record without response (the capture ends first) has no pop3.response.
tx_id is the record's index in its flow.  pcap_cnt: Suricata logs a
transaction when it has processed the segment that completes it (in IDS mode
once the peer acknowledged it), so a record matches a pcap_cnt from the last
frame of its response (of its request when it has none) up to, not including,
the first frame of the flow's next POP3 record (no limit for the last).
Understood keys: event_type, pop3.request.command, pop3.request.args,
pop3.request.args[N], pop3.response.status, pop3.response.success,
pop3.response.header, pop3.response.data, pop3.response.data[N], tx_id,
pcap_cnt, src_ip/dest_ip/src_port/dest_port (client/server), ip_v, proto (TCP),
app_proto (pop3), has-key and not-has-key on pop3.* keys.  For `event_type:
flow` with `app_proto: pop3` the records are mxray's flows whose proto is pop3
(ends, ip_v and proto understood).  Other keys are dropped; a check that lost
keys only gives a lower bound (mxray must have at least `count` matches), and
a `count: 0` check that lost keys is not evaluated.  Requires as in
tests/oracle/compare_oracles.py (the newest Suricata).

Zeek (units per baseline)
-------------------------
Zeek's uids are mapped to mxray flows by four-tuple, from the baseline's own
logs (conn.log, weird.log, analyzer_debug.log); the nth uid with a four-tuple
(conn.log order) takes the nth mxray flow with it.
  events@<uid>   the baseline prints Zeek's POP3 events (basic.zeek:
                 "uid, pop3_request, T, CMD, ARG" / "uid, pop3_reply, F, OK|ERR,
                 MSG"; max-analyzer-violations.zeek: "request, uid, CMD, ARG" /
                 "reply, uid, OK|ERR, MSG" / "N, violation, ..., reason").  mxray's
                 flow is rendered as Zeek's analyzer raises them: the greeting's
                 reply; then per command, in order, its request and its replies
                 (Zeek handles pipelined commands one at a time, each after the
                 reply to the one before).  A request is raised for Zeek's verbs
                 (USER PASS APOP AUTH STAT LIST RETR DELE RSET NOOP LAST QUIT TOP
                 CAPA STLS UIDL XSENDER) with ARG = the line after the verb;
                 SASL lines raise nothing (Zeek consumes them while waiting for
                 authentication), neither do "+ " continuations; the replies to a
                 SASL line go with the AUTH before it.  A reply is OK (+OK) or ERR
                 (-ERR) with MSG = "[resp_code] text".  When the baseline prints
                 analyzer violations, mxray's INVALID_RESPONSE_LINE anomalies are
                 violations; a run of violations counts as one item on both sides
                 (Zeek also splits lines at a lone CR, and stops printing at its
                 max_analyzer_violations).  Text is compared with runs of white
                 space as one space (Zeek's trim_whitespace).
  weird@<name>   a POP3 weird in weird.log must have its mxray anomaly in the
                 flow: pop3_server_command_unknown -> INVALID_RESPONSE_LINE,
                 pop3_client_command_unknown -> UNKNOWN_COMMAND,
                 pop3_bad_base64_encoding and pop3_malformed_auth_plain ->
                 AUTH_DECODE_ERROR.  Not compared: Zeek's own counters and caps
                 (too_many_analyzer_violations, pop3_client_too_many_pending_
                 commands) and weirds of other analyzers (CONTENTLINE's
                 line_terminated_with_single_CR)
  service@<uid>  a conn.log line whose service has pop3: the mxray flow has POP3
                 commands or responses, and when the service also has ssl,
                 mxray's pop3.session says the STLS upgrade happened; a line
                 with no service and no payload (a refused connection): the
                 mxray flow has no POP3 record.  Other lines: not compared
  notpop3@<uid>  analyzer_debug.log shows Zeek's POP3 analyzer raising a
                 violation and being disabled on a port that is not POP3's (110,
                 995) and conn.log gives no pop3 service: Zeek's protocol
                 detection tried POP3 and rejected it, so mxray must not read
                 the flow as POP3 (no POP3 record); the events Zeek printed
                 before the rejection are not compared

Output
------
One line per disagreement: `FAIL <oracle> <capture> <field>: ...`; with -v
every unit and every skipped check.  A disagreement listed in the known file
(default tests/oracle/compare_oracles_pop3.known; TSV: oracle id, capture
relative to the corpus, field, reason; a field without @... covers every unit
of that kind) is printed as `known ...` and does not fail its unit.  Fields: check#K
(Suricata, the Kth entry of `checks`, from 1), events@uid, weird@name,
service@uid, notpop3@uid, run (mxray failed).  The last line is `N passed, M
failed`.

Exit status: 0 all passed, 1 failures (or a tool failed), 2 usage error, 77
skipped (../shared absent).
"""
import json
import os
import re
import sys

if __package__ in (None, ""):   # run as a file: tests/ holds the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from oracle import compare_oracles as CO  # noqa: E402
from oracle.common import norm_addr  # noqa: E402
from oracle.compare_oracles import Unit  # noqa: E402

POP3_PORTS = (110, 995)


def show(v):
    if v is None:
        return "-"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    return json.dumps(v, ensure_ascii=False)


def squeeze(text):
    """Runs of white space as one space, trimmed (Zeek's trim_whitespace)."""
    return re.sub(r"\s+", " ", text or "").strip()


def frames(rec):
    fr = rec.get("frames") or [0]
    return fr[0], fr[-1]


# ---------------------------------------------------------------- mxray

class Pop3Flow(CO.Flow):
    def __init__(self, rec):
        super().__init__(rec)
        self.recs = []          # pop3.* and anomaly records, in output order
        self.end = None         # the flow record
        self.session = None

    def add(self, ty, rec):
        if ty == "flow":
            self.end = rec
        elif ty == "pop3.session":
            self.session = rec
        elif ty.startswith("pop3.") or ty == "anomaly":
            self.recs.append(rec)

    def of(self, ty):
        return [r for r in self.recs if r.get("type") == ty]

    def has_pop3(self):
        return any(r.get("type") in ("pop3.command", "pop3.response", "pop3.auth_data")
                   for r in self.recs)


def header_of(resp):
    text = resp.get("text") or ""
    if resp.get("resp_code"):
        return ("[%s] %s" % (resp["resp_code"], text)).rstrip() if text else \
            "[%s]" % resp["resp_code"]
    return text


def data_of(resp, verb, args):
    """Suricata's response.data from an mxray response, or None when mxray
    does not keep those lines."""
    if resp.get("status") != "+OK":
        return []
    if verb == "CAPA":
        return list(resp.get("capabilities") or [])
    if verb in ("LIST", "UIDL") and not args:
        out = []
        for e in resp.get("listing") or []:
            out.append("%s %s" % (e.get("msg"), e.get("size", e.get("uid"))))
        if len(out) < (resp.get("lines") or 0):
            return None     # capped listing
        return out
    if verb == "RETR":
        return []
    if verb in ("TOP", "AUTH", "LANG") or resp.get("lines"):
        return None
    return []


def suricata_records(run):
    """mxray's flows as Suricata-like pop3 transaction records."""
    recs = []
    for fl in run.of("pop3"):
        resps = fl.of("pop3.response")
        by_answer = {}
        for r in resps:
            a = r.get("answers") or {}
            by_answer.setdefault((a.get("command"), a.get("frame")), []).append(r)
        txs = []
        for idx, r in enumerate(fl.recs):
            ty = r.get("type")
            if ty == "pop3.response" and (r.get("answers") or {}).get("command") == "(connect)":
                txs.append((idx, None, None, r))
            elif ty == "pop3.command":
                verb = str(r.get("verb", ""))
                args = (r.get("arg") or "").split()
                got = by_answer.get((verb, frames(r)[0])) or []
                txs.append((idx, verb, args, got[0] if got else None))
            elif ty == "pop3.auth_data":
                got = by_answer.get(("(auth data)", frames(r)[0])) or []
                txs.append((idx, "<SASL DATA>", [], got[0] if got else None))
        pop_frames = sorted(frames(r)[0] for r in fl.recs
                            if r.get("type") in ("pop3.command", "pop3.response",
                                                 "pop3.auth_data"))
        for n, (idx, verb, args, resp) in enumerate(txs):
            src = resp if resp is not None else fl.recs[idx]
            lo = frames(src)[1]
            nxt = [f for f in pop_frames if f > lo]
            rec = dict(fl.endpoints(), flow=fl.id, tx_id=n, ip_v=ip_v(fl),
                       pcap_lo=lo, pcap_hi=nxt[0] if nxt else None,
                       request=None, response=None, frames=frames(fl.recs[idx]))
            if verb is not None:
                rec["request"] = {"command": verb, "args": args}
            if resp is not None:
                st = {"+OK": "OK", "-ERR": "ERR", "+": "OK"}.get(resp.get("status"),
                                                                 resp.get("status"))
                rec["response"] = {"status": st, "success": st == "OK",
                                   "header": header_of(resp),
                                   "data": data_of(resp, verb, args) if verb else []}
            recs.append(rec)
    return recs


def ip_v(fl):
    return 6 if ":" in str(fl.start.get("client")) else 4


def flow_records(run):
    return [dict(fl.endpoints(), flow=fl.id, ip_v=ip_v(fl)) for fl in run.of("pop3")]


# ---------------------------------------------------------------- Suricata

ARG_IDX = re.compile(r"pop3\.request\.args\[(\d+)\]$")
DATA_IDX = re.compile(r"pop3\.response\.data\[(\d+)\]$")
UNKNOWN = object()


def pop3_value(rec, key):
    """The value of a pop3.* key in a rendered record; None when absent,
    UNKNOWN when mxray does not keep it."""
    req, resp = rec["request"], rec["response"]
    if key == "pop3":
        return {}
    if key == "pop3.request":
        return req
    if key == "pop3.response":
        return resp
    if key == "pop3.request.command":
        return req and req["command"]
    if key == "pop3.request.args":
        return req and req["args"]
    m = ARG_IDX.match(key)
    if m:
        i = int(m.group(1))
        return req["args"][i] if req and i < len(req["args"]) else None
    if resp is None:
        return None if key.startswith("pop3.response") else UNKNOWN
    if key in ("pop3.response.status", "pop3.response.success", "pop3.response.header"):
        return resp[key.rsplit(".", 1)[1]]
    if key == "pop3.response.data":
        return UNKNOWN if resp["data"] is None else resp["data"]
    m = DATA_IDX.match(key)
    if m:
        if resp["data"] is None:
            return UNKNOWN
        i = int(m.group(1))
        return resp["data"][i] if i < len(resp["data"]) else None
    return UNKNOWN


def values_equal(want, got):
    if isinstance(want, bool) or isinstance(got, bool):
        return want is got or want == got
    if isinstance(want, list):
        return isinstance(got, list) and [str(x) for x in want] == [str(x) for x in got]
    if isinstance(want, (int, float)) and isinstance(got, str):
        return str(want) == got
    return got is not None and str(want) == str(got)


def build_predicate(match, flow_filter):
    """-> (judge(rec) -> "yes", "maybe" or "no", dropped keys).  "maybe": the
    record matches on every key mxray has, but a key's value is one mxray
    does not keep for that record (the lines of a TOP response)."""
    preds, dropped = [], []
    for key, val in match.items():
        if key == "event_type":
            continue
        if key in ("src_ip", "dest_ip"):
            preds.append(lambda r, k=key, v=val: r[k] == norm_addr(str(v)))
        elif key in ("src_port", "dest_port", "ip_v"):
            preds.append(lambda r, k=key, v=val: str(r[k]) == str(v))
        elif key == "proto":
            preds.append(lambda r, v=val: str(v).upper() == "TCP")
        elif key == "app_proto":
            preds.append(lambda r, v=val: str(v).lower() == "pop3")
        elif flow_filter:
            dropped.append(key)
        elif key == "tx_id":
            preds.append(lambda r, v=val: str(r["tx_id"]) == str(v))
        elif key == "pcap_cnt":
            try:
                n = int(val)
            except (TypeError, ValueError):
                dropped.append(key)
                continue
            preds.append(lambda r, n=n: r["pcap_lo"] <= n and
                         (r["pcap_hi"] is None or n < r["pcap_hi"]))
        elif key in ("has-key", "not-has-key"):
            for hk in (val if isinstance(val, list) else [val]):
                hk = str(hk)
                if not hk.startswith("pop3"):
                    dropped.append("%s %s" % (key, hk))
                    continue
                want = key == "has-key"

                def has(r, hk=hk, want=want):
                    got = pop3_value(r, hk)
                    if got is UNKNOWN:
                        return None
                    return (got is not None) is want
                preds.append(has)
        elif str(key).startswith("pop3."):
            probe = {"request": {"command": "", "args": []},
                     "response": {"status": "", "success": True, "header": "", "data": []}}
            if pop3_value(probe, key) is UNKNOWN:
                dropped.append(key)
                continue

            def pred(r, k=key, v=val):
                got = pop3_value(r, k)
                if got is UNKNOWN:
                    return None
                return values_equal(v, got)
            preds.append(pred)
        else:
            dropped.append(key)

    def judge(r):
        res = [p(r) for p in preds]
        if any(x is False for x in res):
            return "no"
        return "maybe" if dropped or any(x is None for x in res) else "yes"
    return judge, dropped


def pop3_checks(doc):
    """-> list of (index, filter, is a flow filter)."""
    checks = doc.get("checks") or [] if isinstance(doc, dict) else []
    out = []
    for k, c in enumerate(checks, 1):
        if not isinstance(c, dict) or not isinstance(c.get("filter"), dict):
            continue
        flt = c["filter"]
        m = flt.get("match") or {}
        et = m.get("event_type")
        if et == "pop3" or (et is None and any(str(x).startswith("pop3.") for x in m)):
            out.append((k, flt, False))
        elif et == "flow" and str(m.get("app_proto", "")).lower() == "pop3":
            out.append((k, flt, True))
    return out


def describe_match(match):
    keep = []
    for k, v in match.items():
        if k == "event_type":
            continue
        text = json.dumps(v, ensure_ascii=False) if isinstance(v, (str, list)) else str(v)
        keep.append("%s=%s" % (k, text if len(text) <= 70 else text[:66] + '..."'))
    return ", ".join(keep) or "any record"


def describe_rec(r):
    if "request" not in r:
        return "flow %d %s:%s -> %s:%s" % (r["flow"], r["src_ip"], r["src_port"],
                                          r["dest_ip"], r["dest_port"])
    req = r["request"]
    resp = r["response"]
    return "flow %d tx %d [%d-%s] %s%s -> %s" % (
        r["flow"], r["tx_id"], r["pcap_lo"], r["pcap_hi"] if r["pcap_hi"] else "",
        req["command"] if req else "(greeting)",
        (" " + " ".join(req["args"])) if req and req["args"] else "",
        ("%s %s" % (resp["status"], show(resp["header"][:40]))) if resp else "no response")


def compare_suricata(rep, oracle, cap, run, doc, checks):
    txs = suricata_records(run)
    flows = flow_records(run)
    for label, match, count, judge, dropped, (is_flow,) in CO.suricata_checks(
            rep, oracle, cap, run, doc, checks, build_predicate):
        recs = flows if is_flow else txs
        sure = [r for r in recs if judge(r) == "yes"]
        maybe = [r for r in recs if judge(r) == "maybe"]
        bound = " at most %d" % (len(sure) + len(maybe)) if maybe else ""
        u = Unit(oracle, cap, "%s (count %d: %s)" % (label, count, describe_match(match)))
        if not len(sure) <= count <= len(sure) + len(maybe):
            near = [r for r in recs if not is_flow and r["request"] and match.get(
                "pop3.request.command") == r["request"]["command"]] or recs
            detail = ("; ".join(describe_rec(r) for r in near[:8]) +
                      ("; ..." if len(near) > 8 else "")) if near else "no pop3 records"
            rep.disagree(u, label, "expects %d record(s) with %s; mxray has %d%s%s [mxray: %s]"
                         % (count, describe_match(match), len(sure), bound,
                            " (keys mxray lacks: %s)" % ", ".join(dropped) if dropped else "",
                            detail))
        rep.finish(u)


def suricata_jobs():
    out = []
    for oracle, cap, yml in CO.suricata_oracles():
        with open(yml, encoding="utf-8", errors="replace") as fh:
            if "pop3" not in fh.read().lower():
                continue
        try:
            doc = CO.yaml_load(yml)
        except (CO.YamlError, ValueError, IndexError) as e:
            out.append(("suricata", oracle, cap, ("yaml-error", str(e))))
            continue
        checks = pop3_checks(doc)
        if checks:
            out.append(("suricata", oracle, cap, (doc, checks)))
    return out


# ---------------------------------------------------------------- Zeek

ZEEK_VERBS = {"USER", "PASS", "APOP", "AUTH", "STAT", "LIST", "RETR", "DELE", "RSET",
              "NOOP", "LAST", "QUIT", "TOP", "CAPA", "STLS", "UIDL", "XSENDER"}
WEIRD_MAP = {"pop3_server_command_unknown": "INVALID_RESPONSE_LINE",
             "pop3_client_command_unknown": "UNKNOWN_COMMAND",
             "pop3_bad_base64_encoding": "AUTH_DECODE_ERROR",
             "pop3_malformed_auth_plain": "AUTH_DECODE_ERROR"}
WEIRD_OWN = {"too_many_analyzer_violations", "pop3_client_too_many_pending_commands"}
EV_A = re.compile(r"^(C[0-9A-Za-z]+), (pop3_request|pop3_reply), ([TF]), ([^,]*), ?(.*)$")
EV_B = re.compile(r"^(request|reply), (C[0-9A-Za-z]+), ([^,]*), ?(.*)$")
EV_V = re.compile(r"^\d+, violation, [^,]*POP3[^,]*, (C[0-9A-Za-z]+), \d+, (.*)$")


def zeek_jobs():
    """-> list of ("zeek", oracle id, capture, baseline dir)."""
    return [("zeek", "zeek/" + bid, cap, d) for bid, cap, _, d in CO.zeek_baselines(
        row_ok=lambda r: "pop3" in r.get("contents", "").lower(),
        keep=lambda cap, d: cap is not None)]


def zeek_logs(d):
    logs = {}
    for name in sorted(os.listdir(d)):
        if name.endswith(".log"):
            logs[name[:-4]] = CO.read_zeek_log(os.path.join(d, name))
    return logs


def zeek_events(d):
    """-> (events per uid [(kind, a, b)], prints violations)."""
    ev, has_viol = {}, False
    for name in ("out", "output"):
        p = os.path.join(d, name)
        if not os.path.isfile(p):
            continue
        with open(p, encoding="utf-8", errors="surrogateescape") as fh:
            for line in fh:
                line = line.rstrip("\n")
                m = EV_A.match(line)
                if m:
                    kind = "request" if m.group(2) == "pop3_request" else "reply"
                    ev.setdefault(m.group(1), []).append((kind, m.group(4), squeeze(m.group(5))))
                    continue
                m = EV_B.match(line)
                if m:
                    ev.setdefault(m.group(2), []).append((m.group(1), m.group(3),
                                                          squeeze(m.group(4))))
                    continue
                m = EV_V.match(line)
                if m:
                    has_viol = True
                    lst = ev.setdefault(m.group(1), [])
                    if not lst or lst[-1][0] != "violation":
                        lst.append(("violation", "", ""))
    return ev, has_viol


def mxray_zeek_events(fl, with_viol):
    """mxray's flow as the sequence of events Zeek's POP3 analyzer raises."""
    cmds, resp_of, greet = [], {}, []
    last_auth = None
    for r in fl.recs:
        ty = r.get("type")
        if ty == "pop3.command":
            cmds.append(r)
            resp_of[id(r)] = []
            if str(r.get("verb")).upper() == "AUTH":
                last_auth = r
        elif ty == "pop3.response":
            a = r.get("answers") or {}
            if a.get("command") == "(connect)":
                greet.append(r)
                continue
            owner = None
            if a.get("command") == "(auth data)":
                owner = last_auth
            else:
                for c in reversed(cmds):
                    if frames(c)[0] == a.get("frame") and c.get("verb") == a.get("command"):
                        owner = c
                        break
            if owner is not None:
                resp_of[id(owner)].append(r)
    viols = [frames(a)[0] for a in fl.recs if a.get("type") == "anomaly"
             and a.get("name") == "INVALID_RESPONSE_LINE"] if with_viol else []
    out = []

    def add(item):
        if item[0] == "violation" and out and out[-1][0] == "violation":
            return
        out.append(item)

    def reply(r):
        while viols and viols[0] < frames(r)[0]:
            viols.pop(0)
            add(("violation", "", ""))
        if r.get("status") in ("+OK", "-ERR"):
            add(("reply", r["status"][1:], squeeze(header_of(r))))

    for r in greet:
        reply(r)
    for c in cmds:
        verb = str(c.get("verb", "")).upper()
        if verb in ZEEK_VERBS:
            add(("request", verb, squeeze(c.get("arg") or "")))
        for r in resp_of[id(c)]:
            reply(r)
    for _ in viols:
        add(("violation", "", ""))
    return out


def fmt_events(evs, lo, hi):
    return ["      %s" % ", ".join(x for x in e if x) for e in evs[lo:hi]]


def uid_map(logs, run):
    """uid -> (four-tuple, mxray flow or None); conn.log order first."""
    tuples, order = {}, []
    for name in ["conn"] + [n for n in logs if n != "conn"]:
        for rec in logs.get(name, []):
            uid = rec.get("uid")
            if not uid or uid in tuples or rec.get("id.orig_h") is None:
                continue
            try:
                t = (norm_addr(rec["id.orig_h"]), int(rec["id.orig_p"]),
                     norm_addr(rec["id.resp_h"]), int(rec["id.resp_p"]))
            except (KeyError, TypeError, ValueError):
                continue
            tuples[uid] = t
            order.append(uid)
    flows_by_key = run.by_key()
    seen, out = {}, {}
    for uid in order:
        t = tuples[uid]
        n = seen.get(t, 0)
        seen[t] = n + 1
        cands = flows_by_key.get(t, [])
        out[uid] = (t, cands[n] if n < len(cands) else None)
    return out


def compare_zeek(rep, oracle, cap, d, run):
    if rep.run_failed(oracle, cap, run):
        return
    logs = zeek_logs(d)
    uids = uid_map(logs, run)
    events, with_viol = zeek_events(d)
    conn = {r.get("uid"): r for r in logs.get("conn", [])}

    # notpop3: Zeek's protocol detection rejected POP3 off its ports.
    rejected = set()
    for rec in logs.get("analyzer_debug", []):
        if rec.get("analyzer_name") == "POP3" and rec.get("cause") == "disabled":
            uid = rec.get("uid")
            t, fl = uids.get(uid, (None, None))
            svc = (conn.get(uid) or {}).get("service") or ""
            if t is None or t[3] in POP3_PORTS or "pop3" in str(svc):
                continue
            if not any(v.get("uid") == uid and v.get("cause") == "violation"
                       for v in logs["analyzer_debug"]):
                continue
            rejected.add(uid)
            u = Unit(oracle, cap, "notpop3@%s" % uid)
            if fl is not None and fl.has_pop3():
                rep.disagree(u, "notpop3@%s" % uid, "Zeek rejected POP3 on %s:%d -> %s:%d"
                             " (violation, analyzer disabled); mxray flow %d reads it as"
                             " POP3" % (t[0], t[1], t[2], t[3], fl.id))
            rep.finish(u)

    # events
    for uid, zev in sorted(events.items()):
        if uid in rejected:
            rep.note("skip %s %s events@%s: Zeek rejected POP3 on this connection"
                     % (oracle, cap, uid))
            continue
        u = Unit(oracle, cap, "events@%s" % uid)
        t, fl = uids.get(uid, (None, None))
        if fl is None:
            rep.disagree(u, "events@%s" % uid, "no mxray flow for Zeek's %s (%s)"
                         % (uid, "%s:%d -> %s:%d" % t if t else "four-tuple unknown"))
            rep.finish(u)
            continue
        mev = mxray_zeek_events(fl, with_viol)
        if mev != zev:
            i = 0
            while i < min(len(mev), len(zev)) and mev[i] == zev[i]:
                i += 1
            lo, hi = max(0, i - 2), i + 4
            rep.disagree(u, "events@%s" % uid,
                         "flow %d: %d events from mxray, %d from Zeek; first difference at"
                         " #%d\n    mxray:\n%s\n    zeek:\n%s"
                         % (fl.id, len(mev), len(zev), i + 1,
                            "\n".join(fmt_events(mev, lo, hi)) or "      (none)",
                            "\n".join(fmt_events(zev, lo, hi)) or "      (none)"))
        rep.finish(u)

    # weirds
    for rec in logs.get("weird", []):
        name = rec.get("name") or ""
        src = rec.get("source") or ""
        if not (name.startswith("pop3_") or src == "POP3") or name in WEIRD_OWN:
            if name:
                rep.note("skip %s %s weird@%s: not compared (%s)" % (
                    oracle, cap, name, "Zeek's own counter or cap" if name in WEIRD_OWN
                    else "another analyzer's"))
            continue
        uid = rec.get("uid")
        if uid in rejected:
            rep.note("skip %s %s weird@%s: Zeek rejected POP3 on this connection"
                     % (oracle, cap, name))
            continue
        u = Unit(oracle, cap, "weird@%s" % name)
        want = WEIRD_MAP.get(name)
        t, fl = uids.get(uid, (None, None))
        if want is None:
            rep.disagree(u, "weird@%s" % name, "no mxray anomaly is mapped to this weird"
                         " (addl %s)" % show(rec.get("addl")))
        elif fl is None:
            rep.disagree(u, "weird@%s" % name, "no mxray flow for %s" % uid)
        else:
            got = [a for a in fl.recs if a.get("type") == "anomaly" and a.get("name") == want]
            if not got:
                rep.disagree(u, "weird@%s" % name, "Zeek's %s (addl %s) wants %s in mxray"
                             " flow %d; it has %s" % (
                                 name, show(rec.get("addl")), want, fl.id,
                                 sorted({a.get("name") for a in fl.recs
                                         if a.get("type") == "anomaly"}) or "none"))
        rep.finish(u)

    # conn.log services
    for rec in logs.get("conn", []):
        uid = rec.get("uid")
        svc = str(rec.get("service") or "")
        t, fl = uids.get(uid, (None, None))
        u = Unit(oracle, cap, "service@%s" % uid)
        field = "service@%s" % uid
        if "pop3" in svc.split(","):
            if fl is None or not fl.has_pop3():
                rep.disagree(u, field, "Zeek's service %s; mxray has %s" % (
                    svc, "no flow" if fl is None else "no POP3 record in flow %d" % fl.id))
            elif "ssl" in svc.split(","):
                st = (fl.session or {}).get("stls") or {}
                if not st.get("upgraded"):
                    rep.disagree(u, field, "Zeek's service %s (STLS then TLS); mxray's"
                                 " session stls %s" % (svc, show(st)))
        elif not svc or svc == "-":
            try:
                payload = int(rec.get("orig_bytes") or 0) + int(rec.get("resp_bytes") or 0)
            except ValueError:
                payload = 1
            if payload:
                rep.note("skip %s %s %s: no service, but payload (Zeek never confirmed"
                         " the protocol)" % (oracle, cap, field))
                continue
            if fl is not None and fl.has_pop3():
                rep.disagree(u, field, "no payload (conn_state %s); mxray flow %d has"
                             " POP3 records" % (rec.get("conn_state"), fl.id))
        else:
            rep.note("skip %s %s %s: service %s" % (oracle, cap, field, svc))
            continue
        rep.finish(u)


# ---------------------------------------------------------------- main

def handle(rep, job, get_run):
    kind, oracle, cap, src = job
    if kind == "zeek":
        compare_zeek(rep, oracle, cap, src, get_run(cap))
    elif src[0] == "yaml-error":
        rep.fail_unit(oracle, cap, "yaml", "cannot read test.yaml: %s" % src[1])
    else:
        compare_suricata(rep, oracle, cap, get_run(cap), src[0], src[1])


if __name__ == "__main__":
    sys.exit(CO.oracle_main("Check mxray's POP3 records against Suricata's and Zeek's"
                            " published expectations.", "compare_oracles_pop3.known",
                            lambda: suricata_jobs() + zeek_jobs(), handle,
                            ("--show-secrets",), Pop3Flow))
