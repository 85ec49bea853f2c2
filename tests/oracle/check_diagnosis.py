#!/usr/bin/env python3
"""check_diagnosis - every SMTP reply is explained and every failure has the right cause.

usage: tests/oracle/check_diagnosis.py [-v] [--mxray PATH]

For every capture in pcaps/ (recursively, .pcap and .pcapng) where mxray
finds SMTP, runs `mxray -q --json --explain - CAPTURE` and checks:
  1. every smtp.reply has an "explain" that gives the reply code's meaning:
     it starts with "<code>: " and does not say "no standard meaning".  The
     replies whose meaning depends on the command they answer (REPLY_MEANING
     below: 454 to STARTTLS is "TLS not available", not AUTH's "temporary
     authentication failure") must also say what that command's RFC says;
  2. every failure has a plain-language cause, and the right one:
       - every recipient refused or deferred (smtp.transaction
         recipients[] with outcome rejected or deferred),
       - every transaction that did not end accepted (its "failure" object;
         one must be there whenever the disposition is not "accepted"),
       - every failed AUTH exchange (smtp.auth with outcome failure),
       - and any other "cause" an SMTP record carries,
     must have a non-empty "cause"; a failure with a reply code must also
     have its "meaning".  Each cause is looked up in CAUSES by (capture,
     code, enhanced code) -- None for a failure without a reply, such as a
     connection closed mid-transaction -- and must contain every keyword of
     the entry (case-insensitive).  A failure without an entry fails the
     check, so a new capture, or a new failure in an old one, forces a
     decision on what its cause must say; an entry that matches no failure
     fails too (the failure went away: find out why, then remove it).
  3. every "explain" of every record (any protocol) holds no '<' (an RFC
     placeholder such as "<domain>" left unfilled) and no "undefined" (the
     IANA registry's bare "Other undefined Status" boilerplate), and every
     "cause" comes with its "cause_kind".
Recipients whose outcome is no_reply (the capture holds no reply, e.g. after
lost bytes) are no refusal: they are listed as notes, not checked.

The CAUSES entries were written by reading each failure in its capture (the
reply, its command, the sizes, the lab's truth file), not by copying mxray's
output.

Prints a `FAIL <capture>` block per capture that disagrees (every capture
with -v), the reply codes without a meaning, then `N passed, M failed`
counted in captures.  Exit status: 0 all passed, 1 failures (or mxray
failed).
"""
import os
import sys

if __package__ in (None, ""):   # run as a file: tests/ holds the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from oracle import common  # noqa: E402

# (code, command answered) -> keywords its "explain" must hold: replies whose
# meaning is the command's own (RFC 3207, RFC 4954, RFC 1870), not the
# code's general one.
REPLY_MEANING = {
    (220, "STARTTLS"): ["Ready to start TLS"],                   # RFC 3207 §4
    (454, "STARTTLS"): ["TLS not available"],                    # RFC 3207 §4
    (334, "AUTH"): ["challenge"],                                # RFC 4954 §4
    (235, "AUTH"): ["Authentication Succeeded"],                 # RFC 4954 §6
    (535, "AUTH"): ["credentials invalid"],                      # RFC 4954 §6
    (535, "(auth data)"): ["credentials invalid"],
    (552, "MAIL"): ["size"],                                     # RFC 1870 §6
}

# (capture, code, enhanced) -> keywords the cause must contain.  Read from
# the captures: what was refused, at which step, with which reply.
CAUSES = {
    # AUTH PLAIN and AUTH LOGIN with wrong passwords: 535 5.7.8
    ("smtp/auth-failed-535", 535, "5.7.8"): ["Bad credentials", "password"],
    # the client closes (FIN) after half the body: no final reply
    ("smtp/disconnect-mid-data", None, None): ["closed (FIN)", "before the transaction completed"],
    # MAIL refused 501 5.1.7 (bad syntax), then RCPT "503 5.5.1 need MAIL"
    # and DATA "503 5.5.1 need RCPT": commands out of sequence
    ("smtp/helo-and-errors", 503, "5.5.1"): ["refused MAIL FROM", "real cause"],
    # postscreen's pregreet test (issue 26): the client talked before the
    # greeting; every later step is refused "Protocol error" whatever the address
    ("smtp/pregreet-postscreen", 550, "5.5.1"): ["spoke before", "greeting", "on purpose", "not this address"],
    ("smtp/pregreet-postscreen", 554, "5.5.1"): ["spoke before", "greeting", "pregreet"],
    ("smtp/helo-and-errors", 501, "5.1.7"): ["sender", "syntax"],
    # nobody@lab.test: 550 5.1.1 User unknown in virtual mailbox table
    ("smtp/multi-rcpt-partial-reject", 550, "5.1.1"): ["does not exist"],
    # busy@lab.test: 450 4.2.1 Mailbox busy, try again later
    ("smtp/multi-rcpt-partial-reject", 450, "4.2.1"): ["temporary", "retries later"],
    # ext@example.org: 554 5.7.1 Relay access denied
    ("smtp/multi-rcpt-partial-reject", 554, "5.7.1"): ["Relaying denied"],
    # pipelined RCPT nobody@lab.test: 550 5.1.1
    ("smtp/pipelining", 550, "5.1.1"): ["does not exist"],
    # behind HAProxy, RCPT nobody@lab.test: 550 5.1.1 User unknown in virtual mailbox table
    ("proxy/smtp", 550, "5.1.1"): ["does not exist"],
    # MAIL FROM spammer@blocked.example: 554 5.7.1 Sender address rejected
    ("smtp/rejected-sender", 554, "5.7.1"): ["sender", "refused", "policy"],
    # the RCPT after the refused MAIL: 503 5.5.1 need MAIL command
    ("smtp/rejected-sender", 503, "5.5.1"): ["refused MAIL FROM", "real cause"],
    # someone@example.org: 554 5.7.1 Relay access denied
    ("smtp/relay-denied", 554, "5.7.1"): ["Relaying denied"],
    # RSET after MAIL and RCPT
    ("smtp/rset-mid-transaction", None, None): ["reset", "RSET"],
    # 30669-byte body (truth msg1.eml), EHLO SIZE 20000: 552 5.3.4 after the dot
    ("smtp/size-limit-after-data", 552, "5.3.4"): ["bigger than the server accepts", "30669", "20000"],
    # MAIL FROM ... SIZE=30000, EHLO SIZE 20000: 552 5.3.4 at MAIL
    ("smtp/size-limit-at-mail", 552, "5.3.4"): ["bigger than the server accepts", "30000", "20000",
                                               "SIZE="],
    # busy@lab.test alone: 450 4.2.1, the transaction deferred
    ("smtp/tempfail-450", 450, "4.2.1"): ["temporary", "retries later"],
    # reply-words (issue 27): Gmail's words "receiving mail too quickly" under a
    # 450 4.2.1 ("mailbox disabled"): a rate limit, and both said
    ("smtp/reply-words", 450, "4.2.1"): ["The code (4.2.1) says", "mailbox is disabled",
                                         "the server's words", "too quickly", "rate limit"],
    # postgrey's "Greylisted, see http://postgrey.schweikert.ch/help/..." under 450 4.2.0
    ("smtp/reply-words", 450, "4.2.0"): ["Greylisting", "retries"],
    # 521 5.2.1 "MUST COMPLETE IMAGE PUZZLE BEFORE SENDING": a policy, not a disabled mailbox
    ("smtp/reply-words", 521, "5.2.1"): ["The code (5.2.1) says", "mailbox is disabled",
                                         "\"puzzle\"", "policy"],
    # postfix closes the connection after the 521: alice (accepted) and the
    # transaction are left unfinished
    ("smtp/reply-words", None, None): ["closed (FIN)", "before the transaction completed"],
    # the demo's nobody@lab.test: 550 5.1.1
    ("demo", 550, "5.1.1"): ["does not exist"],
    # postfix relaying someone@remote.example to the second postfix on 2525:
    # 554 5.7.1 Relay access denied at RCPT (scen_bounce.py) ...
    ("bounce/imap", 554, "5.7.1"): ["Relaying denied"],
    ("bounce/pop3", 554, "5.7.1"): ["Relaying denied"],
    # ... then postfix's pipelined DATA: 554 5.5.1 Error: no valid recipients.
    # The real cause is the refused RCPT above: no recipient was accepted
    # (RFC 5321 §4.1.1.4). Today's cause reads 5.5.1 as a command the server
    # does not accept, which is wrong; the keyword only pins what it says
    # until the transaction's failure names the refused recipient
    ("bounce/imap", 554, "5.5.1"): ["command"],
    ("bounce/pop3", 554, "5.5.1"): ["command"],
    # the relaying lab (issue 27): the outside client's victim@example.net refused 554 5.7.1
    ("smtp/relay-closed", 554, "5.7.1"): ["Relaying denied"],
    # RCPT accepted, then QUIT before any DATA: the client's choice, no failure (failure.ended client_quit)
    ("smtp/relay-open-rcpt-only", None, None): ["QUIT", "its choice"],
    # A refused bare-LF smuggling attempt: the server read the smuggled MAIL, RCPT and DATA as
    # message data; the smuggled transaction mxray opened says it never existed on the server
    ("attacks/smtp-smuggling-refused", None, None): ["SMTP smuggling", "never existed on the server"],
}


def cap_name(path):
    """pcaps/smtp/relay-denied.pcap -> smtp/relay-denied."""
    rel = os.path.relpath(path, os.path.join(common.REPO, "pcaps"))
    return os.path.splitext(rel)[0]


def causes_in(obj, path):
    """Every (path, dict) under obj that has a "cause" key."""
    if isinstance(obj, dict):
        if "cause" in obj:
            yield path, obj
        for k, v in obj.items():
            yield from causes_in(v, "%s.%s" % (path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from causes_in(v, "%s[%d]" % (path, i))


def explain_problems(recs):
    """Explains with a placeholder or registry boilerplate left, and causes
    without their kind, in any record."""
    out = []
    for r in recs:
        ex = r.get("explain")
        where = "%s flow %s frames %s" % (r.get("type"), r.get("flow"), r.get("frames"))
        if isinstance(ex, str) and ("<" in ex or "undefined" in ex.lower()):
            out.append("%s: explain %r leaves a placeholder or registry boilerplate" % (where, ex))
        for path, obj in causes_in(r, r.get("type", "")):
            if not obj.get("cause_kind"):
                out.append("%s: %s has a cause without cause_kind" % (where, path))
    return out


def check_capture(cap, recs, used, notes):
    """Problems of one capture; marks the CAUSES keys it used."""
    problems, nomeaning = [], []
    replies = failures = 0
    for r in recs:
        t = r.get("type", "")
        if not t.startswith("smtp."):
            continue
        where = "flow %s frames %s" % (r.get("flow"), r.get("frames"))
        if t == "smtp.reply":
            replies += 1
            code = r.get("code")
            cmd = (r.get("answers") or {}).get("command")
            ex = r.get("explain")
            if not ex or not ex.startswith("%s: " % code) or "no standard meaning" in ex:
                nomeaning.append((code, cmd))
                problems.append("reply %s to %s (%s): no meaning: explain %r" % (code, cmd, where, ex))
                continue
            for kw in REPLY_MEANING.get((code, cmd), []):
                if kw.lower() not in ex.lower():
                    problems.append("reply %s to %s (%s): explain %r does not say %r"
                                    % (code, cmd, where, ex, kw))
            continue
        # the failures that must carry a cause
        required = []
        if t == "smtp.transaction":
            for i, x in enumerate(r.get("recipients") or []):
                if x.get("outcome") in ("rejected", "deferred"):
                    required.append(("recipients[%d]" % i, x))
                elif x.get("outcome") == "no_reply" and not x.get("cause"):
                    notes.append("%s: recipient <%s> has no reply (%s, frames %s): no refusal,"
                                 " not checked" % (cap, x.get("addr"), "flow %s" % r.get("flow"),
                                                   x.get("frames")))
            if r.get("disposition") != "accepted":
                if not isinstance(r.get("failure"), dict):
                    problems.append("transaction %s (%s): disposition %s but no failure object"
                                    % (r.get("trans_depth"), where, r.get("disposition")))
                else:
                    required.append(("failure", r["failure"]))
        elif t == "smtp.auth" and r.get("outcome") == "failure":
            required.append(("", r))
        for path, obj in required:
            if "cause" not in obj:
                used.add((cap, obj.get("code"), obj.get("enhanced")))   # reported here already
                problems.append("%s%s (%s): a failure (%s %s) without a cause" % (
                    t, "." + path if path else "", where, obj.get("code"), obj.get("enhanced")))
        # every cause, required or not, against the table
        for path, obj in causes_in(r, t):
            failures += 1
            code, enh = obj.get("code"), obj.get("enhanced")
            cause = obj.get("cause") or ""
            what = "%s (%s; %s %s%s)" % (path, where, code, enh or "",
                                         ", frames %s" % obj["frames"] if obj is not r and
                                         "frames" in obj else "")
            if not cause.strip():
                problems.append("%s: empty cause" % what)
                continue
            if code is not None and not obj.get("meaning"):
                problems.append("%s: reply %s without its meaning" % (what, code))
            key = (cap, code, enh)
            if key not in CAUSES:
                problems.append("%s: no entry for %r in CAUSES: read the failure in the capture and"
                                " add the keywords its cause must hold; cause %r" % (what, key, cause))
                continue
            used.add(key)
            miss = [kw for kw in CAUSES[key] if kw.lower() not in cause.lower()]
            if miss:
                problems.append("%s: cause %r does not say %s" % (what, cause, miss))
    return problems, nomeaning, replies, failures


def main():
    ap = common.parser(__doc__)
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    status = common.not_built(a.mxray)
    if status:
        return status
    passed = failed = 0
    used, notes, nomeaning = set(), [], {}
    smtp_caps = set()
    for path in common.pcaps():
        cap = cap_name(path)
        try:
            recs = common.mxray_records(a.mxray, "-q", "--json", "-", "--explain", path)
        except (RuntimeError, ValueError) as e:
            print("FAIL %s\n     %s" % (cap, e))
            failed += 1
            continue
        bad_explain = explain_problems(recs)
        if not any(str(r.get("type", "")).startswith("smtp.") for r in recs):
            if bad_explain:
                failed += 1
                print("FAIL %s" % cap)
                for p in bad_explain:
                    print("     " + p)
            continue
        smtp_caps.add(cap)
        problems, nm, nrep, nfail = check_capture(cap, recs, used, notes)
        problems += bad_explain
        for c in nm:
            nomeaning.setdefault(c, []).append(cap)
        if problems:
            failed += 1
            print("FAIL %s" % cap)
            for p in problems:
                print("     " + p)
        else:
            passed += 1
            if a.verbose:
                print("ok   %s: %d replies explained, %d causes checked" % (cap, nrep, nfail))
    stale = sorted((k for k in CAUSES if k[0] in smtp_caps and k not in used), key=str)
    stale += sorted((k for k in CAUSES if k[0] not in smtp_caps), key=str)
    for k in stale:
        failed += 1
        print("FAIL CAUSES entry %r matches no failure in the captures: find out why mxray no"
              " longer reports it, then remove the entry" % (k,))
    for n in notes:
        print("note: " + n)
    if nomeaning:
        print("reply codes without a meaning (code, command answered: captures):")
        for (code, cmd), cs in sorted(nomeaning.items(), key=str):
            print("  %s %s: %s" % (code, cmd, ", ".join(sorted(set(cs)))))
    if not smtp_caps:
        print("FAIL no SMTP capture in pcaps/")
        failed += 1
    return common.summary(passed, failed)


if __name__ == "__main__":
    sys.exit(main())
