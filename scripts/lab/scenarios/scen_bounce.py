"""Bounce scenarios (RFC 3464 delivery status notifications, RFC 6522
multipart/report; issue 27): real postfix accepts a message with "250
queued", fails to deliver it to some recipients later, and sends the sender a
bounce, which dovecot stores and a client fetches.

swaks hands postfix on 25 one message from carol to five recipients:

- alice@lab.test: delivered (postfix's LMTP client to dovecot, labenv.LMTP_*);
- ghost@lab.test: postfix's virtual mailbox map lists it, dovecot's userdb
  does not: dovecot's LMTP refuses it at RCPT (550 5.1.1, unknown user);
- dave@lab.test: over quota (labenv.LMTP_QUOTA_USER): dovecot refuses it
  after the data (552 5.2.2, RFC 2033 §4.2);
- nobody@unreachable.example: a relay domain whose next hop
  (transport_maps: [127.0.0.1]:2599) refuses connections; with
  maximal_queue_lifetime = 0 postfix gives up after the first attempt (the
  lab has no DNS, so a domain without host cannot be had otherwise: this is
  what a bounce for an unreachable domain looks like when its queue
  lifetime expires, Status 4.4.1 with Action failed);
- someone@remote.example: a relay domain whose next hop is the lab's second
  postfix on 2525, which refuses to relay (554 5.7.1 at RCPT).

postfix sends two bounces, delivered over LMTP to carol's mailbox: one at
once for the three refusals, one for the unreachable domain when its queue
lifetime ran out (it was deferred first); the client fetches both over IMAP
or POP3. The capture holds
the submission, the LMTP deliveries, the refused relay, the bounce's own LMTP
delivery and its retrieval. The truth's "bounce" is what postfix's log says:
the original message's queue id and Message-ID, each recipient's dsn= and
status=, and the bounces' queue ids in the order postfix made them.
"""
import os
import re
import time

from driver import scenario
import labenv
import messages

SENDER = "carol@lab.test"
MSGID = "bounce.%s@client.lab.test"
RCPTS = ["alice@lab.test", "ghost@lab.test", labenv.LMTP_QUOTA_USER + "@lab.test",
         "nobody@unreachable.example", "someone@remote.example"]
POSTFIX = {
    "main": "relay_domains = unreachable.example, remote.example\n"
            "transport_maps = inline:{ unreachable.example=smtp:[127.0.0.1]:2599, "
            "remote.example=smtp:[127.0.0.1]:2525 }\n"
            "maximal_queue_lifetime = 0\n"
            "bounce_queue_lifetime = 0\n",
    "vmailbox": "ghost@lab.test ghost/Maildir/\n",
}
LOG_LINE = re.compile(r"postfix[^ ]*\[\d+\]: ([0-9A-Za-z]+): (.*)$")


def _log_facts(path, msgid):
    """From postfix's log: the queue id of the message whose Message-ID is
    msgid, its recipients' dsn= and status=, and its bounce's queue id."""
    lines = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for ln in f:
            m = LOG_LINE.search(ln)
            if m:
                lines.append((m.group(1), m.group(2)))
    qid = next((q for q, t in lines if t == "message-id=<%s>" % msgid), None)
    out = {"original_message_id": "<%s>" % msgid, "original_queue_id": qid,
           "recipients": [], "delivered": [], "bounce_queue_ids": []}
    for q, t in lines:
        if q != qid:
            continue
        m = re.match(r"to=<([^>]*)>,.* dsn=([0-9.]+), status=(\w+) \((.*)\)$", t)
        if m and m.group(3) == "sent":
            out["delivered"].append(m.group(1))
        elif m:
            out["recipients"].append({"addr": m.group(1), "dsn": m.group(2),
                                      "log_status": m.group(3), "log_text": m.group(4)})
        m = re.match(r"sender non-delivery notification: ([0-9A-Za-z]+)$", t)
        if m:
            out["bounce_queue_ids"].append(m.group(1))
    return out


def _bounce(ctx, tag):
    """The submission, and the wait for the bounce in carol's mailbox;
    returns the truth's "bounce"."""
    body = "".join("Line %03d of a message that does not fit in a 1 KiB quota.\n" % i
                   for i in range(40))
    ctx.message("msg1", messages.simple(frm="Carol <carol@lab.test>", to="Team <team@lab.test>",
                                        subject="Bounce me (%s)" % tag, msgid=MSGID % tag,
                                        body=body))
    ctx.swaks(["--from", SENDER, "--to", ",".join(RCPTS)], data="msg1.eml",
              note="swaks to postfix: five recipients, all accepted (250 queued)")
    ctx.lab.wait_delivered("alice", 1, timeout=30)
    ctx.lab.wait_delivered("carol", 2, timeout=60)
    time.sleep(0.5)     # postlogd writes the last lines
    facts = _log_facts(os.path.join(ctx.lab.pcdir, "maillog"), MSGID % tag)
    facts["reporting_mta"] = labenv.HOSTNAME
    facts["sender"] = SENDER
    got = sorted(r["addr"] for r in facts["recipients"])
    if got != sorted(RCPTS[1:]) or len(facts["bounce_queue_ids"]) != 2:
        raise RuntimeError("postfix did not bounce as expected: %r" % facts)
    ctx.bounce = facts
    return facts


@scenario("bounce/imap",
          "postfix accepts a message for five recipients, delivers one and bounces four (unknown "
          "user, over quota, unreachable domain, relay refused by the next hop); its two bounces "
          "(RFC 3464) reach the sender's mailbox over LMTP and are fetched over IMAP",
          lmtp=True, notls=True, postfix_extra=POSTFIX)
def bounce_imap(ctx):
    _bounce(ctx, "imap")
    s = ctx.imap(note="carol fetches the bounce")
    s.imap_response()
    s.imap("a1", "LOGIN carol carolpw")
    s.imap("a2", "SELECT INBOX")
    s.imap("a3", "FETCH 1:2 BODY[]")
    s.imap("a4", "LOGOUT")
    s.close()


@scenario("bounce/pop3",
          "the same bounces as bounce/imap, fetched over POP3 (RETR)",
          lmtp=True, notls=True, postfix_extra=POSTFIX)
def bounce_pop3(ctx):
    _bounce(ctx, "pop3")
    s = ctx.pop3(note="carol fetches the bounce")
    s.pop_line()
    s.pop("USER carol")
    s.pop("PASS carolpw")
    s.pop("STAT")
    s.pop("RETR 1", multi=True)
    s.pop("RETR 2", multi=True)
    s.pop("QUIT")
    s.close()
