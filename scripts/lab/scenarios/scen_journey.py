"""A message's journey (issue 27): submission, relay, LMTP delivery,
retrieval, all in one capture.

carol submits on 587 with AUTH PLAIN to the lab's postfix (127.0.0.1), which
relays everything for lab.test to a second postfix instance on
127.0.0.2:25 (labenv.RELAY2_*), which delivers to dovecot over LMTP; alice
then reads her mail by IMAP, bob by POP3.  One message stops on the way:
dave's mailbox is over quota, so dovecot refuses it after the data (RFC 2033
§4.2) and the second postfix bounces it to carol (over LMTP too).  Two
messages have the same body and different Message-IDs: they must stay two
journeys.

The truth file's "journeys" holds, per message, each hop as the maillogs of
both postfix instances tell it: the server, the client's port (postfix logs
it with smtpd_client_port_logging), the queue id, the time (to the second),
and for the LMTP hop dovecot's session id as postfix logged its reply.
"""
import os
import re
import time

from driver import scenario
import labenv
import messages

SENDER = "carol@lab.test"
SAME_BODY = "Minutes of the lab meeting.\n\nNothing was decided.\n"


def _maillog(cdir):
    p = os.path.join(cdir, "maillog")
    try:
        with open(p, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()
    except OSError:
        return []


_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)|^([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d)")


def _when(line):
    """The second a maillog line was written, as ISO 8601 UTC (the lab runs
    in UTC; the year of a syslog-style stamp is this year)."""
    m = _TIME.match(line)
    if not m:
        return None
    if m.group(1):
        return m.group(1)
    t = time.strptime("%d %s" % (time.gmtime().tm_year, m.group(2)), "%Y %b %d %H:%M:%S")
    return time.strftime("%Y-%m-%dT%H:%M:%S", t)


def _queue(lines, msgid):
    """{queue id: {...}} of the entries whose message-id= is msgid, with the
    client's address and port, the time, and each delivery's relay and reply."""
    out = {}
    ids = {m.group(1) for ln in lines
           for m in [re.search(r": ([0-9A-F]{6,}): message-id=<?%s>?" % re.escape(msgid), ln)] if m}
    for ln in lines:
        m = re.search(r": ([0-9A-F]{6,}): (.*)$", ln)
        if not m or m.group(1) not in ids:
            continue
        q = out.setdefault(m.group(1), {"queue_id": m.group(1), "deliveries": []})
        rest = m.group(2)
        c = re.match(r"client=[^\[]*\[([\d.]+)\]:(\d+)", rest)
        if c:
            q["client"], q["client_port"], q["time"] = c.group(1), int(c.group(2)), _when(ln)
        d = re.match(r"to=<([^>]*)>, relay=[^\[]*\[([\d.]+)\]:(\d+),.* status=(\w+) \((.*)\)$", rest)
        if d:
            q["deliveries"].append({"to": d.group(1), "relay": d.group(2), "port": int(d.group(3)),
                                    "status": d.group(4), "reply": d.group(5), "time": _when(ln)})
    return out


def _wait_logs(lab, msgids, timeout=15.0):
    """Both maillogs once every message's last delivery attempt is in them
    (postlogd writes a little after the fact)."""
    end = time.monotonic() + timeout
    while True:
        a, b = _maillog(lab.pcdir), _maillog(lab.pcdir_relay2)
        done = all(any(q["deliveries"] for q in _queue(b, mid).values()) for mid in msgids)
        if done or time.monotonic() > end:
            return a, b
        time.sleep(0.2)


def _hops(a, b, msgid, retrievals):
    """The truth's hops of one message: submission (first postfix), relay
    (second), LMTP delivery (the second's LMTP client), then retrievals."""
    qa, qb = _queue(a, msgid), _queue(b, msgid)
    hops = []
    for q in qa.values():
        hops.append({"role": "submission", "server": "127.0.0.1", "server_port": 587,
                     "client_port": q.get("client_port"), "queue_id": q["queue_id"],
                     "time": q.get("time")})
    for q in qb.values():
        hops.append({"role": "relay", "server": labenv.RELAY2_ADDR, "server_port": 25,
                     "client_port": q.get("client_port"), "queue_id": q["queue_id"],
                     "time": q.get("time")})
        lm = [d for d in q["deliveries"] if d["port"] == labenv.LMTP_PORT]
        if lm:
            sid = re.search(r"> (\S+?)(?::R\d+)? Saved", " ".join(d["reply"] for d in lm))
            hops.append({"role": "delivery", "server": "127.0.0.1", "server_port": labenv.LMTP_PORT,
                         "time": lm[0]["time"],
                         "recipients": {d["to"]: d["status"] for d in lm},
                         "lmtp_session": sid.group(1) if sid else None,
                         "reply": lm[0]["reply"]})
    return hops + retrievals


def _retrieval(s, proto, port):
    """A retrieval hop of the truth, from the scripted client's own socket
    and clock, taken just before it asks for the message."""
    t = time.time()
    return {"role": "retrieval", "proto": proto, "server": "127.0.0.1", "server_port": port,
            "client_port": s.sock.getsockname()[1],
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % (int(t * 1e6) % 1000000)}


@scenario("journey/submission-relay-lmtp",
          "carol submits on 587 (AUTH PLAIN) to postfix, which relays to a second postfix on "
          "127.0.0.2:25, which delivers over LMTP to dovecot; alice reads by IMAP, bob by POP3; "
          "a message to an over-quota mailbox stops at LMTP (and bounces); two messages with "
          "one body and two Message-IDs", relay2=True)
def submission_relay_lmtp(ctx):
    lab = ctx.lab
    ctx.message("msg1", messages.simple(frm="Carol <carol@lab.test>",
                                        to="Alice <alice@lab.test>, Bob <bob@lab.test>",
                                        msgid="journey.1@client.lab.test",
                                        subject="Across four hops"))
    body = "".join("Line %03d of a message that does not fit in a 1 KiB quota.\n" % i
                   for i in range(40))
    ctx.message("msg2", messages.simple(frm="Carol <carol@lab.test>", to="Dave <dave@lab.test>",
                                        msgid="journey.2@client.lab.test",
                                        subject="Too big for dave", body=body))
    ctx.message("msg3", messages.simple(frm="Carol <carol@lab.test>", to="Bob <bob@lab.test>",
                                        msgid="journey.3@client.lab.test",
                                        subject="Minutes", body=SAME_BODY))
    ctx.message("msg4", messages.simple(frm="Carol <carol@lab.test>", to="Bob <bob@lab.test>",
                                        msgid="journey.4@client.lab.test",
                                        subject="Minutes", body=SAME_BODY))
    auth = ["--auth", "PLAIN", "--auth-user", "carol", "--auth-password", "carolpw"]
    ctx.swaks(["--from", SENDER, "--to", "alice@lab.test,bob@lab.test"] + auth, port=587,
              data="msg1.eml", note="submission with AUTH: to alice and bob")
    ctx.swaks(["--from", SENDER, "--to", "dave@lab.test"] + auth, port=587,
              data="msg2.eml", note="submission with AUTH: to dave, whose mailbox is over quota")
    for n in ("msg3.eml", "msg4.eml"):
        ctx.swaks(["--from", SENDER, "--to", "bob@lab.test"] + auth, port=587,
                  data=n, note="submission with AUTH: one body, its own Message-ID")
    lab.wait_delivered("alice", 1)
    lab.wait_delivered("bob", 3)
    lab.wait_delivered("carol", 1)      # the bounce of msg2
    time.sleep(0.5)
    # alice reads by IMAP, bob by POP3
    s = ctx.imap(note="alice reads msg1 by IMAP")
    s.imap_response()
    s.imap("a1", "LOGIN alice alicepw")
    s.imap("a2", "SELECT INBOX")
    imap_hop = _retrieval(s, "imap", 143)
    s.imap("a3", "FETCH 1 BODY.PEEK[]")
    s.imap("a4", "LOGOUT")
    s.close()
    s = ctx.pop3(note="bob reads msg1, msg3 and msg4 by POP3")
    s.pop_line()
    s.pop("USER bob")
    s.pop("PASS bobpw")
    pop_hops = []
    for i in (1, 2, 3):
        pop_hops.append(_retrieval(s, "pop3", 110))
        s.pop("RETR %d" % i, multi=True)
    s.pop("QUIT")
    s.close()
    ids = ["journey.%d@client.lab.test" % i for i in (1, 2, 3, 4)]
    a, b = _wait_logs(lab, ids)
    retr = {ids[0]: [imap_hop, pop_hops[0]], ids[2]: [pop_hops[1]], ids[3]: [pop_hops[2]]}
    for mid, subj in zip(ids, ("Across four hops", "Too big for dave", "Minutes", "Minutes")):
        ctx.journeys.append({"message_id": "<%s>" % mid, "subject": subj,
                             "delivered": mid != ids[1],
                             "hops": _hops(a, b, mid, [dict(h) for h in retr.get(mid, [])])})
