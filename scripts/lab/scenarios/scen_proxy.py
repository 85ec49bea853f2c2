"""Scenarios behind a proxy: HAProxy in front of postfix and dovecot, sending the
PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2) first on
each backend connection.

The client (bound to 127.0.0.10) talks to a HAProxy frontend on 127.0.0.40 on a
port of no mail protocol; HAProxy connects from 127.0.0.40 to the listener on
127.0.0.41 that expects the header (labenv.PROXY_FRONTENDS).  The capture on lo
holds both legs.  Each truth session's "proxy" says what the header must name:
the client's own address and port, and the frontend it connected to.
"""
from driver import scenario
import labenv
import messages

CLIENT = "127.0.0.10"


def _proxied(ctx, proto, frontend, version, note, implicit_tls=False):
    fport, bport, _, tls = labenv.PROXY_FRONTENDS[frontend]
    s = getattr(ctx, proto)(fport, implicit_tls=implicit_tls, note=note,
                            host=labenv.PROXY_ADDR, source=CLIENT)
    addr, port = s.sock.getsockname()[:2]
    s.info["proxy"] = {"version": version, "client": addr, "client_port": port,
                       "frontend": labenv.PROXY_ADDR, "frontend_port": fport,
                       "backend": labenv.BACKEND_ADDR, "backend_port": bport,
                       "tls_at_proxy": tls}
    return s


def _delivery(s, msg, rcpts=("alice@lab.test", "nobody@lab.test")):
    s.smtp_reply()
    s.smtp("EHLO client.lab.test")
    s.smtp("MAIL FROM:<carol@lab.test>")
    for r in rcpts:
        s.smtp("RCPT TO:<%s>" % r)
    s.smtp("DATA")
    s.smtp_data(msg)
    s.smtp("QUIT")
    s.close()


@scenario("proxy/smtp", "SMTP through HAProxy: send-proxy (v1), send-proxy-v2 with "
          "unique-id and CRC32C, and a TLS-terminating frontend with send-proxy-v2-ssl-cn "
          "(SSL, AUTHORITY TLVs); postfix's smtpd_upstream_proxy_protocol = haproxy",
          proxy=True)
def proxy_smtp(ctx):
    m1 = ctx.message("msg1", messages.simple(msgid="proxy.1@client.lab.test",
                                             subject="Through the proxy, v1"))
    m2 = ctx.message("msg2", messages.simple(msgid="proxy.2@client.lab.test",
                                             subject="Through the proxy, v2"))
    m3 = ctx.message("msg3", messages.simple(msgid="proxy.3@client.lab.test",
                                             subject="TLS ends at the proxy"))
    _delivery(_proxied(ctx, "smtp", "smtp_v1", 1, "PROXY v1"), m1)
    _delivery(_proxied(ctx, "smtp", "smtp_v2", 2, "PROXY v2, unique-id, crc32c"), m2)
    _delivery(_proxied(ctx, "smtp", "smtp_tls", 2, "TLS to HAProxy, PROXY v2 with SSL TLVs",
                       implicit_tls=True), m3, rcpts=("bob@lab.test",))


@scenario("proxy/imap-pop3", "IMAP through HAProxy with send-proxy-v2 (unique-id TLV) and "
          "POP3 with send-proxy (v1), to dovecot's haproxy = yes listeners",
          proxy=True, seed=True)
def proxy_imap_pop3(ctx):
    s = _proxied(ctx, "imap", "imap_v2", 2, "IMAP, PROXY v2")
    s.imap_response()
    s.imap("a1", "CAPABILITY")
    s.imap("a2", "LOGIN alice alicepw")
    s.imap("a3", "SELECT INBOX")
    s.imap("a4", "FETCH 1 BODY[]")
    s.imap("a5", "LOGOUT")
    s.close()
    s = _proxied(ctx, "pop3", "pop3_v1", 1, "POP3, PROXY v1")
    s.pop_line()
    s.pop("USER alice")
    s.pop("PASS alicepw")
    s.pop("STAT")
    s.pop("RETR 2", multi=True)
    s.pop("QUIT")
    s.close()
