"""Offload scenarios (issue 25): bulk transfers across the veth path.

Each runs twice (driver.run): offloads off, captured on the server's host
(pcaps/offload/SLUG.pcap, the twin), and offloads on, captured on both hosts
at once (SLUG-sender.pcap where the bulk is sent: GSO/TSO super-frames;
SLUG-receiver.pcap where it arrives: GRO super-frames).  Messages are large
enough (a base64 attachment of 100 000 bytes) that both kinds of super-frame
appear; postfix's size limit is raised for them.
"""
import messages
from driver import scenario

ATTACHMENT = 100000     # bytes before base64: a message of about 137 KB
LIMIT = 1000000         # postfix message_size_limit for these scenarios
EHLO = "EHLO client.lab.test"


def large():
    return messages.attach(name="archive.bin", n=ATTACHMENT)


def mailbox():
    """alice's mailbox: one large message (driver.run's seed)."""
    return [("large.eml", large())]


def _send(ctx, s):
    m = ctx.message("msg1", large())     # recorded; smtp_data notes sent_in
    s.smtp("MAIL FROM:<carol@lab.test>")
    s.smtp("RCPT TO:<alice@lab.test>")
    s.smtp("DATA")
    s.smtp_data(m)
    s.smtp("QUIT")
    s.close()
    ctx.lab.wait_delivered("alice", 1)


@scenario("offload/smtp-attachment", "SMTP on port 25 in clear: one message with a "
          "base64 attachment of 100 000 bytes, client to server", veth=True,
          bulk="client", size_limit=LIMIT)
def smtp_attachment(ctx):
    s = ctx.smtp(25, note="a large message, client to server")
    s.smtp_reply()
    s.smtp(EHLO)
    _send(ctx, s)


@scenario("offload/smtp-starttls", "SMTP on port 25: STARTTLS, then the large "
          "message inside TLS, client to server", veth=True, bulk="client",
          size_limit=LIMIT)
def smtp_starttls(ctx):
    s = ctx.smtp(25, note="STARTTLS, then a large message in TLS")
    s.smtp_reply()
    s.smtp(EHLO)
    s.smtp("STARTTLS")
    s.starttls()
    s.smtp(EHLO)
    _send(ctx, s)


@scenario("offload/pop3-retr", "POP3 in clear: USER/PASS, STAT, RETR of a large "
          "message, server to client", veth=True, bulk="server", seed=mailbox)
def pop3_retr(ctx):
    s = ctx.pop3(note="RETR of a large message")
    s.pop_line()
    s.pop("USER alice")
    s.pop("PASS alicepw")
    s.pop("STAT")
    s.pop("RETR 1", multi=True)
    s.pop("QUIT")
    s.close()


@scenario("offload/imap-fetch", "IMAP in clear: LOGIN, SELECT, FETCH BODY[] of a "
          "large message, server to client", veth=True, bulk="server", seed=mailbox)
def imap_fetch(ctx):
    s = ctx.imap(note="FETCH of a large message")
    s.imap_response()
    s.imap("a001", "LOGIN alice alicepw")
    s.imap("a002", "SELECT INBOX")
    s.imap("a003", "FETCH 1 BODY[]")
    s.imap("a004", "LOGOUT")
    s.close()
