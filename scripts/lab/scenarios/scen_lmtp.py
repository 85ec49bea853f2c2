"""LMTP scenarios (RFC 2033, with RFC 3030 CHUNKING): dovecot-lmtpd on
127.0.0.1:24 (labenv.LMTP_*), its quota plugin refusing one user after the
data.

Each function is the record of what was done in its capture
pcaps/lmtp/<name>.pcap.  The client is Python's smtplib.LMTP, recorded byte
for byte (RecordingLMTP); postfix's own LMTP client in lmtp/postfix-delivery.
The truth file's "lmtp" holds what each transaction was and what the server
said for each recipient: at RCPT, and after the data (RFC 2033 §4.2: one reply
per recipient accepted at RCPT, in RCPT order).
"""
import hashlib
import smtplib

from driver import scenario
import client
import labenv
import messages

LHLO = "client.lab.test"
SENDER = "carol@lab.test"


def _enh(text):
    """The enhanced status code at the start of a reply text (RFC 3463), or None."""
    w = text.split(" ", 1)[0]
    parts = w.split(".")
    return w if len(parts) == 3 and all(p.isdigit() for p in parts) else None


class _RecordingFile:
    """smtplib's reply reader, keeping the raw lines of the reply being read."""

    def __init__(self, f, owner):
        self.f, self.owner = f, owner

    def readline(self, n=-1):
        ln = self.f.readline(n)
        self.owner._lines.append(ln)
        return ln

    def close(self):
        self.f.close()


class RecordingLMTP(smtplib.LMTP):
    """smtplib.LMTP whose every write and every reply goes into the truth's
    transcript, as client.Session records its own."""

    def __init__(self, ctx, note, port=labenv.LMTP_PORT):
        self._lines = []
        self.info = {"proto": "lmtp", "server_port": port, "tls": "none", "note": note,
                     "client": "smtplib.LMTP", "transcript": []}
        ctx.sessions.append(self.info)
        super().__init__()
        self.connect(client.HOST, port)

    def _record(self, d, data):
        self.info["transcript"].append({"dir": d, "tls": False, "text": data.decode("utf-8")})

    def send(self, s):
        if isinstance(s, str):
            s = s.encode("ascii")
        self._record("C", s)
        super().send(s)

    def getreply(self):
        if self.file is None:
            self.file = _RecordingFile(self.sock.makefile("rb"), self)
        self._lines = []
        r = super().getreply()
        self._record("S", b"".join(self._lines))
        return r


def _deliver(ctx, note, rcpts, msg, chunks=None):
    """One LMTP transaction from SENDER to rcpts with msg (by DATA, or by BDAT
    in `chunks` pieces); returns the truth's transaction record."""
    c = RecordingLMTP(ctx, note)
    c.ehlo(LHLO)                                   # "lhlo" (RFC 2033 §4.1)
    code, text = c.mail(SENDER)
    t = {"mailfrom": SENDER, "mail_code": code, "recipients": [],
         "message_sha256": hashlib.sha256(msg).hexdigest(), "size": len(msg),
         "by": "bdat" if chunks else "data"}
    for r in rcpts:
        code, text = c.rcpt(r)
        text = text.decode()
        t["recipients"].append({"addr": r, "rcpt_code": code, "rcpt_enhanced": _enh(text),
                                "delivery": None})
    accepted = [r for r in t["recipients"] if r["rcpt_code"] // 100 == 2]
    ctx.sent_in(msg, c.info, False)
    if chunks:
        # RFC 3030 §2 with RFC 2033 §4.2: one reply per chunk, and after
        # BDAT LAST one per accepted recipient
        step = -(-len(msg) // chunks)
        pieces = [msg[i:i + step] for i in range(0, len(msg), step)]
        t["bdat_chunks"] = len(pieces)
        for i, p in enumerate(pieces):
            last = i == len(pieces) - 1
            c.send(b"BDAT %d%s\r\n" % (len(p), b" LAST" if last else b"") + p)
            if not last:
                c.getreply()
        replies = [c.getreply() for _ in accepted]
    else:
        code, text = c.data(msg)                   # the first recipient's reply
        replies = [(code, text)] + [c.getreply() for _ in accepted[1:]]
    for r, (code, text) in zip(accepted, replies):
        text = text.decode()
        r["delivery"] = {"code": code, "enhanced": _enh(text),
                         "outcome": "accepted" if code // 100 == 2 else
                         "deferred" if code // 100 == 4 else "rejected"}
    c.quit()
    c.close()
    ctx.lmtp.append(t)
    return t


def _big(msgid, subject):
    """A message larger than labenv.LMTP_QUOTA, so that the quota user's
    delivery fails."""
    body = "".join("Line %03d of a message that does not fit in a 1 KiB quota.\n" % i
                   for i in range(40))
    return messages.simple(frm="Carol <carol@lab.test>", to="Team <team@lab.test>",
                           subject=subject, msgid=msgid, body=body)


@scenario("lmtp/mixed-recipients",
          "smtplib.LMTP delivers one message to four recipients: two delivered, one unknown "
          "(refused at RCPT), one over quota (refused after the data, RFC 2033 §4.2)", lmtp=True)
def mixed_recipients(ctx):
    msg = ctx.message("msg1", _big("lmtp.1@client.lab.test", "LMTP to four"))
    _deliver(ctx, "LHLO, four RCPTs, DATA: per-recipient replies",
             ["alice@lab.test", "nobody@lab.test", labenv.LMTP_QUOTA_USER + "@lab.test",
              "bob@lab.test"], msg)
    ctx.lab.wait_delivered("bob", 1)


@scenario("lmtp/bdat-recipients",
          "smtplib.LMTP sends a message in two BDAT chunks (RFC 3030) to two recipients: one "
          "delivered, one over quota after BDAT LAST", lmtp=True)
def bdat_recipients(ctx):
    msg = ctx.message("msg1", _big("lmtp.2@client.lab.test", "LMTP by BDAT"))
    _deliver(ctx, "LHLO, two RCPTs, BDAT twice: per-recipient replies after LAST",
             ["alice@lab.test", labenv.LMTP_QUOTA_USER + "@lab.test"], msg, chunks=2)
    ctx.lab.wait_delivered("alice", 1)


@scenario("lmtp/postfix-delivery",
          "swaks sends to postfix on 25, which delivers to dovecot over LMTP on 127.0.0.1:24 "
          "(postfix's own LMTP client)", lmtp=True)
def postfix_delivery(ctx):
    ctx.message("msg1", messages.simple(msgid="lmtp.3@client.lab.test",
                                        subject="Through postfix to LMTP"))
    ctx.swaks(["--from", SENDER, "--to", "alice@lab.test,bob@lab.test"],
              data="msg1.eml", note="swaks to postfix, which delivers over LMTP")
    ctx.lab.wait_delivered("alice", 1)
    ctx.lab.wait_delivered("bob", 1)
    # what postfix's LMTP session must show (its bytes are postfix's: the
    # message carries postfix's Received header, so no sha256 here)
    ctx.lmtp.append({"mailfrom": SENDER, "client": "postfix", "by": "data",
                     "recipients": [{"addr": a, "rcpt_code": 250, "rcpt_enhanced": "2.1.5",
                                     "delivery": {"code": 250, "enhanced": "2.0.0",
                                                  "outcome": "accepted"}}
                                    for a in ("alice@lab.test", "bob@lab.test")]})
