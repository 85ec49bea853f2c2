"""SMTP scenarios (RFC 5321, 3207, 4954, 3030, 6531, 2920, 1870).

Each function is the record of what was done in its capture
pcaps/smtp/<name>.pcap.  swaks is used where a real client shows the thing;
the scripted client (lib/client.py) where every byte must be controlled.
Ports: 25 MX (no AUTH), 587 submission (STARTTLS, AUTH also in clear),
465 implicit TLS, 2525 a server whose certificate cannot load (454).
The audit scenarios at the end use other servers on their own loopback
addresses (labenv.EXTRA_SERVICES, lib/peers.py; table in docs/lab.md).
"""
import base64
import client
import labenv
import ssl
import warnings

from driver import scenario
import messages
import peers

EHLO = "EHLO client.lab.test"


def _hello(s):
    s.smtp_reply()
    s.smtp(EHLO)


def _send(s, frm, rcpts, msg, mail_params=""):
    s.smtp("MAIL FROM:<%s>%s" % (frm, mail_params))
    for r in rcpts:
        s.smtp("RCPT TO:<%s>" % r)
    s.smtp("DATA")
    return s.smtp_data(msg)


# ------------------------------------------------------------ with swaks
@scenario("smtp/plain-delivery", "swaks delivers one message on port 25, no TLS")
def plain_delivery(ctx):
    ctx.message("msg1", messages.simple())
    ctx.swaks(["--from", "carol@lab.test", "--to", "alice@lab.test",
               ], data="msg1.eml", note="swaks plain delivery")
    ctx.lab.wait_delivered("alice", 1)


@scenario("smtp/pipelining-swaks", "swaks --pipeline: MAIL, RCPT, DATA sent together "
          "(RFC 2920)")
def pipelining_swaks(ctx):
    ctx.message("msg1", messages.simple(msgid="pipe.1@client.lab.test"))
    ctx.swaks(["--pipeline", "--from", "carol@lab.test",
               "--to", "alice@lab.test,bob@lab.test",
               ], data="msg1.eml", note="swaks --pipeline")
    ctx.lab.wait_delivered("bob", 1)


@scenario("smtp/auth-plain-clear", "swaks AUTH PLAIN without TLS on 587 "
          "(credentials in clear)")
def auth_plain_clear(ctx):
    ctx.message("msg1", messages.simple(frm="Alice <alice@lab.test>",
                                        to="Bob <bob@lab.test>",
                                        msgid="authplain.1@client.lab.test"))
    ctx.swaks(["--auth", "PLAIN", "--auth-user", "alice",
               "--auth-password", "alicepw", "--from", "alice@lab.test",
               "--to", "bob@lab.test", ],
              port=587, data="msg1.eml", note="swaks AUTH PLAIN in clear")
    ctx.lab.wait_delivered("bob", 1)


@scenario("smtp/auth-login-clear", "swaks AUTH LOGIN without TLS on 587")
def auth_login_clear(ctx):
    ctx.message("msg1", messages.simple(frm="Alice <alice@lab.test>",
                                        to="Bob <bob@lab.test>",
                                        msgid="authlogin.1@client.lab.test"))
    ctx.swaks(["--auth", "LOGIN", "--auth-user", "alice",
               "--auth-password", "alicepw", "--from", "alice@lab.test",
               "--to", "bob@lab.test", ],
              port=587, data="msg1.eml", note="swaks AUTH LOGIN in clear")
    ctx.lab.wait_delivered("bob", 1)


@scenario("smtp/auth-cram-md5", "AUTH CRAM-MD5 on 587 (challenge/response; "
          "the challenge varies per run)")
def auth_cram(ctx):
    msg = ctx.message("msg1", messages.simple(frm="Alice <alice@lab.test>",
                                              to="Bob <bob@lab.test>",
                                              msgid="cram.1@client.lab.test"))
    s = ctx.smtp(587, note="AUTH CRAM-MD5 in clear")
    _hello(s)
    s.smtp_auth_cram("alice", "alicepw")
    _send(s, "alice@lab.test", ["bob@lab.test"], msg)
    s.smtp("QUIT")
    s.close()
    ctx.lab.wait_delivered("bob", 1)


@scenario("smtp/starttls-auth", "swaks on 587: STARTTLS, then AUTH PLAIN and the "
          "transaction inside TLS")
def starttls_auth(ctx):
    ctx.message("msg1", messages.simple(frm="Alice <alice@lab.test>",
                                        to="Bob <bob@lab.test>",
                                        msgid="starttls.1@client.lab.test"))
    ctx.swaks(["--tls", "--auth", "PLAIN", "--auth-user", "alice",
               "--auth-password", "alicepw", "--from", "alice@lab.test",
               "--to", "bob@lab.test", ],
              port=587, data="msg1.eml", note="swaks STARTTLS + AUTH PLAIN")
    ctx.lab.wait_delivered("bob", 1)


@scenario("smtp/implicit-tls-465", "swaks --tlsc on 465 (TLS from the first byte, "
          "RFC 8314), AUTH LOGIN inside")
def implicit_tls(ctx):
    ctx.message("msg1", messages.simple(frm="Alice <alice@lab.test>",
                                        to="Bob <bob@lab.test>",
                                        msgid="smtps.1@client.lab.test"))
    ctx.swaks(["--tlsc", "--auth", "LOGIN", "--auth-user", "alice",
               "--auth-password", "alicepw", "--from", "alice@lab.test",
               "--to", "bob@lab.test", ],
              port=465, implicit_tls=True, data="msg1.eml", note="swaks implicit TLS")
    ctx.lab.wait_delivered("bob", 1)


# -------------------------------------------------------- scripted client
@scenario("smtp/pipelining", "scripted PIPELINING: MAIL, three RCPTs and DATA in one "
          "segment; replies come back batched")
def pipelining(ctx):
    msg = ctx.message("msg1", messages.simple(msgid="pipe.2@client.lab.test"))
    s = ctx.smtp(25, note="one write for MAIL+RCPT+RCPT+RCPT+DATA")
    _hello(s)
    s.send("MAIL FROM:<carol@lab.test>\r\nRCPT TO:<alice@lab.test>\r\n"
           "RCPT TO:<nobody@lab.test>\r\nRCPT TO:<bob@lab.test>\r\nDATA\r\n")
    s.smtp_replies(5)
    s.smtp_data(msg)
    s.send("QUIT\r\n")
    s.smtp_reply()
    s.close()
    ctx.lab.wait_delivered("bob", 1)


@scenario("smtp/multi-rcpt-partial-reject", "five recipients: accepted, unknown (550 "
          "5.1.1), temporary (450), relay denied (554 5.7.1), accepted")
def multi_rcpt(ctx):
    msg = ctx.message("msg1", messages.simple(
        to="alice@lab.test, nobody@lab.test, busy@lab.test, ext@example.org, bob@lab.test",
        msgid="multi.1@client.lab.test"))
    s = ctx.smtp(25, note="mixed RCPT outcomes then DATA")
    _hello(s)
    _send(s, "carol@lab.test", ["alice@lab.test", "nobody@lab.test", "busy@lab.test",
                                "ext@example.org", "bob@lab.test"], msg)
    s.smtp("QUIT")
    s.close()
    ctx.lab.wait_delivered("alice", 1)
    ctx.lab.wait_delivered("bob", 1)


@scenario("smtp/size-limit-at-mail", "MAIL FROM with SIZE= over message_size_limit: "
          "552 5.3.4 at MAIL (RFC 1870)")
def size_at_mail(ctx):
    s = ctx.smtp(25, note="SIZE=30000 refused")
    _hello(s)
    s.smtp("MAIL FROM:<carol@lab.test> SIZE=30000")
    s.smtp("QUIT")
    s.close()


@scenario("smtp/size-limit-after-data", "no SIZE= at MAIL; the body exceeds the limit: "
          "552 5.3.4 after the final dot")
def size_after_data(ctx):
    msg = ctx.message("msg1", messages.big())
    s = ctx.smtp(25, note="oversize body")
    _hello(s)
    _send(s, "carol@lab.test", ["alice@lab.test"], msg)
    s.smtp("QUIT")
    s.close()


@scenario("smtp/relay-denied", "RCPT to a foreign domain without AUTH: 554 5.7.1 "
          "Relay access denied")
def relay_denied(ctx):
    s = ctx.smtp(25, note="relay attempt")
    _hello(s)
    s.smtp("MAIL FROM:<carol@lab.test>")
    s.smtp("RCPT TO:<someone@example.org>")
    s.smtp("QUIT")
    s.close()


@scenario("smtp/tempfail-450", "RCPT rejected temporarily by an access table: 450 4.2.1; "
          "client gives up")
def tempfail(ctx):
    s = ctx.smtp(25, note="450 from check_recipient_access")
    _hello(s)
    s.smtp("MAIL FROM:<carol@lab.test>")
    s.smtp("RCPT TO:<busy@lab.test>")
    s.smtp("QUIT")
    s.close()


@scenario("smtp/reply-words", "refusals whose words say more than their codes (issue 27): Gmail's "
          "450 4.2.1 \"receiving mail too quickly\" (a rate limit), postgrey's 450 4.2.0 \"Greylisted\", "
          "and 521 5.2.1 \"MUST COMPLETE IMAGE PUZZLE\" (a policy, not a disabled mailbox), after which "
          "postfix closes the connection")
def reply_words(ctx):
    s = ctx.smtp(25, note="texts from check_recipient_access (labenv.RECIPIENT_ACCESS)")
    _hello(s)
    s.smtp("MAIL FROM:<carol@lab.test>")
    s.smtp("RCPT TO:<toofast@lab.test>")
    s.smtp("RCPT TO:<greylist@lab.test>")
    s.smtp("RCPT TO:<alice@lab.test>")
    s.smtp("RCPT TO:<puzzle@lab.test>")
    s.close()


@scenario("smtp/rejected-sender", "MAIL FROM a blocked sender: 554 5.7.1 Sender "
          "address rejected")
def rejected_sender(ctx):
    s = ctx.smtp(25, note="check_sender_access REJECT")
    _hello(s)
    s.smtp("MAIL FROM:<spammer@blocked.example>")
    s.smtp("RCPT TO:<alice@lab.test>")
    s.smtp("QUIT")
    s.close()


@scenario("smtp/auth-failed-535", "AUTH PLAIN with a wrong password (535 5.7.8), "
          "then AUTH LOGIN with a wrong password, then a correct AUTH PLAIN")
def auth_failed(ctx):
    s = ctx.smtp(587, note="failed AUTH then success")
    _hello(s)
    s.smtp_auth_plain("alice", "wrongpw")
    s.smtp_auth_login("bob", "nottherightone")
    s.smtp_auth_plain("alice", "alicepw", initial=False)
    s.smtp("QUIT")
    s.close()


@scenario("smtp/starttls-refused-454", "STARTTLS advertised but the server cannot load "
          "its certificate: 454 4.7.0; the session goes on in clear", notls=True)
def starttls_refused(ctx):
    msg = ctx.message("msg1", messages.simple(msgid="notls.1@client.lab.test"))
    s = ctx.smtp(2525, note="454 then clear delivery")
    _hello(s)
    s.smtp("STARTTLS")
    _send(s, "carol@lab.test", ["alice@lab.test"], msg)
    s.smtp("QUIT")
    s.close()
    ctx.lab.wait_delivered("alice", 1)


@scenario("smtp/bdat-chunking", "CHUNKING (RFC 3030): BDAT chunks then BDAT LAST; a "
          "second transaction ending with BDAT 0 LAST")
def bdat(ctx):
    m1 = ctx.message("msg1", messages.simple(msgid="bdat.1@client.lab.test",
                                             subject="BDAT with LAST"))
    m2 = ctx.message("msg2", messages.attach())
    s = ctx.smtp(25, note="BDAT")
    _hello(s)
    s.smtp("MAIL FROM:<carol@lab.test>")
    s.smtp("RCPT TO:<alice@lab.test>")
    a, b = m1[:100], m1[100:]
    s.send(b"BDAT %d\r\n" % len(a) + a)
    s.smtp_reply()
    s.send(b"BDAT %d LAST\r\n" % len(b) + b)
    s.smtp_reply()
    s.smtp("MAIL FROM:<carol@lab.test>")
    s.smtp("RCPT TO:<alice@lab.test>")
    # chunks whose boundaries fall mid-line; a chunk with a lone "." line
    # is not special in BDAT
    cuts = [0, 1000, 2500, len(m2)]
    for i in range(3):
        c = m2[cuts[i]:cuts[i + 1]]
        s.send(b"BDAT %d\r\n" % len(c) + c)
        s.smtp_reply()
    s.smtp("BDAT 0 LAST")
    s.smtp("QUIT")
    s.close()
    ctx.lab.wait_delivered("alice", 2)


@scenario("smtp/smtputf8", "SMTPUTF8 (RFC 6531): UTF-8 sender address and headers")
def smtputf8(ctx):
    msg = ctx.message("msg1", messages.utf8_smtputf8())
    s = ctx.smtp(25, note="MAIL FROM:<zoë@lab.test> SMTPUTF8")
    _hello(s)
    _send(s, "zoë@lab.test", ["alice@lab.test"], msg, " SMTPUTF8 BODY=8BITMIME")
    s.smtp("QUIT")
    s.close()
    ctx.lab.wait_delivered("alice", 1)


@scenario("smtp/vrfy-expn", "VRFY of a known and an unknown user; EXPN of an alias "
          "(postfix does not implement EXPN: 500 5.5.2)")
def vrfy_expn(ctx):
    s = ctx.smtp(25, note="VRFY/EXPN")
    _hello(s)
    s.smtp("VRFY alice@lab.test")
    s.smtp("VRFY nobody@lab.test")
    s.smtp("VRFY alice")
    s.smtp("EXPN team@lab.test")
    s.smtp("NOOP")
    s.smtp("QUIT")
    s.close()


@scenario("smtp/rset-mid-transaction", "MAIL and RCPT, then RSET; a new transaction "
          "that completes")
def rset(ctx):
    msg = ctx.message("msg1", messages.simple(msgid="rset.1@client.lab.test"))
    s = ctx.smtp(25, note="RSET")
    _hello(s)
    s.smtp("MAIL FROM:<carol@lab.test>")
    s.smtp("RCPT TO:<bob@lab.test>")
    s.smtp("RSET")
    _send(s, "dave@lab.test", ["alice@lab.test"], msg)
    s.smtp("QUIT")
    s.close()
    ctx.lab.wait_delivered("alice", 1)


@scenario("smtp/disconnect-mid-data", "the client closes the connection in the "
          "middle of DATA; nothing is delivered")
def disconnect_mid_data(ctx):
    msg = ctx.message("msg1", messages.simple(msgid="cut.1@client.lab.test"))
    s = ctx.smtp(25, note="close after half the body")
    _hello(s)
    s.smtp("MAIL FROM:<carol@lab.test>")
    s.smtp("RCPT TO:<alice@lab.test>")
    s.smtp("DATA")
    s.send(msg[:len(msg) // 2])
    s.close()


@scenario("smtp/dot-stuffed-body", "a body with lines starting with '.', sent "
          "dot-stuffed (RFC 5321 §4.5.2)")
def dotted(ctx):
    msg = ctx.message("msg1", messages.dotted())
    s = ctx.smtp(25, note="dot-stuffing")
    _hello(s)
    _send(s, "carol@lab.test", ["alice@lab.test"], msg)
    s.smtp("QUIT")
    s.close()
    ctx.lab.wait_delivered("alice", 1)


@scenario("smtp/helo-and-errors", "HELO instead of EHLO, an unknown command (502), "
          "a syntax error (501), commands out of order (503)")
def helo_errors(ctx):
    s = ctx.smtp(25, note="HELO and errors")
    s.smtp_reply()
    s.smtp("HELO client.lab.test")
    s.smtp("FOO bar")
    s.smtp("MAIL FROM:<carol@lab.test")
    s.smtp("RCPT TO:<alice@lab.test>")
    s.smtp("DATA")
    s.smtp("QUIT")
    s.close()


@scenario("smtp/mime-variety", "one message with nested multiparts, base64 and QP, "
          "RFC 2047 subject, RFC 2231 filenames (UTF-8, ISO-8859-1, GB2312, "
          "Shift_JIS), message/rfc822")
def mime_variety(ctx):
    msg = ctx.message("msg1", messages.mime_variety())
    s = ctx.smtp(25, note="MIME variety")
    _hello(s)
    _send(s, "carol@lab.test", ["alice@lab.test"], msg)
    s.smtp("QUIT")
    s.close()
    ctx.lab.wait_delivered("alice", 1)


@scenario("smtp/attachment", "multipart/mixed with one binary attachment whose "
          "SHA-256 is in the truth file; plus an 8-bit ISO-8859-1 message")
def attachment(ctx):
    m1 = ctx.message("msg1", messages.attach())
    m2 = ctx.message("msg2", messages.eightbit_latin1())
    s = ctx.smtp(25, note="attachment, then 8BITMIME latin-1 body")
    _hello(s)
    _send(s, "carol@lab.test", ["alice@lab.test"], m1)
    _send(s, "carol@lab.test", ["alice@lab.test"], m2, " BODY=8BITMIME")
    s.smtp("QUIT")
    s.close()
    ctx.lab.wait_delivered("alice", 2)


@scenario("smtp/header-texts", "header texts as they were sent (issue 26): raw 8-bit "
          "Subjects in Windows-1252 (no charset declared), KOI8-R (declared) and "
          "ISO-8859-15 (declared by the first text part), a Subject with inner and "
          "trailing whitespace, comment-led Received fields; one message submitted "
          "with postfix's sendmail on the server; then all five fetched over IMAP")
def header_texts(ctx):
    sent = []
    for name, make in (("msg1", messages.raw8_cp1252), ("msg2", messages.raw8_declared_koi8r),
                       ("msg3", messages.raw8_multipart_latin9),
                       ("msg4", messages.spaced_subject_and_trace)):
        data, expected = make()
        ctx.message(name, data)
        ctx.expect_headers(name, expected)
        sent.append(data)
    s = ctx.smtp(25, note="four messages with raw 8-bit and spaced header texts")
    _hello(s)
    for data in sent:
        _send(s, "carol@lab.test", ["alice@lab.test"], data, " BODY=8BITMIME")
    s.smtp("QUIT")
    s.close()
    data, expected = messages.local_submission()
    ctx.message("msg5", data)
    ctx.expect_headers("msg5", expected)
    ctx.sendmail(data, "carol@lab.test", ["alice@lab.test"],
                 note="msg5 submitted on the server, as root")
    ctx.lab.wait_delivered("alice", 5)
    i = ctx.imap(note="the five delivered copies, with postfix's Received fields")
    i.imap_response()
    i.imap("h1", "LOGIN alice alicepw")
    i.imap("h2", "SELECT INBOX")
    i.imap("h3", "FETCH 1:5 BODY.PEEK[]")
    i.imap("h4", "LOGOUT")
    i.close()


# ------------------------------------------------------ audit scenarios
# Each shows one thing the audit looks for (issue 9), on a server of its
# own; smtp/clean-submission is the capture on which nothing should fire.

def _tls_client_ctx(ctx, version):
    """A client TLS context that offers only `version` (ssl.TLSVersion), at
    OpenSSL security level 0 so that TLS 1.0/1.1 can be offered at all."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        c.load_verify_locations(ctx.cafile)
        c.check_hostname = True
        c.set_ciphers("DEFAULT:@SECLEVEL=0")
        c.minimum_version = version
        c.maximum_version = version
    return c


def _stop_peer(peer):
    errors = peer.stop()
    if errors:
        raise RuntimeError("scripted peer failed: %s" % errors)


@scenario("smtp/no-starttls", "a submission server (postfix, 127.0.0.26:587) that "
          "offers no STARTTLS but AUTH PLAIN LOGIN in clear; swaks authenticates "
          "with AUTH PLAIN in clear and delivers", services=("no-starttls",))
def no_starttls(ctx):
    ctx.message("msg1", messages.simple(frm="Alice <alice@lab.test>",
                                        to="Bob <bob@lab.test>",
                                        msgid="nostarttls.1@client.lab.test"))
    ctx.swaks(["--auth", "PLAIN", "--auth-user", "alice",
               "--auth-password", "alicepw", "--from", "alice@lab.test",
               "--to", "bob@lab.test"],
              server="127.0.0.26", port=587, data="msg1.eml",
              note="no STARTTLS offered; AUTH PLAIN in clear")
    ctx.lab.wait_delivered("bob", 1)


STRIP_FILTER = "tcp and not host 127.0.0.9"


def _strip_scenario(ctx, mode):
    msg1 = ctx.message("msg1", messages.simple(
        frm="Alice <alice@lab.test>", to="Bob <bob@lab.test>",
        msgid="strip.1@client.lab.test", subject="Sent with STARTTLS"))
    msg2 = ctx.message("msg2", messages.simple(
        frm="Carol <carol@lab.test>", to="Bob <bob@lab.test>",
        msgid="strip.2@client.lab.test", subject="Sent through the middlebox"))
    ctx.note("The server as the clients see it is 127.0.0.2:587, a scripted "
             "middlebox (lib/peers.py StarttlsStripProxy) relaying to postfix's "
             "submission on 127.0.0.1:587 from 127.0.0.9; the capture filter '%s' "
             "leaves the middlebox-to-postfix legs out, as a tap on the clients' "
             "side would." % STRIP_FILTER)
    proxy = peers.StarttlsStripProxy("127.0.0.2", 587, ("127.0.0.1", 587),
                                     "127.0.0.9", {"127.0.0.3"}, mode=mode).start()
    try:
        # the same client settings twice: STARTTLS when offered, else clear
        ctx.swaks(["--tls-optional", "--auth", "PLAIN", "--auth-user", "alice",
                   "--auth-password", "alicepw", "--from", "alice@lab.test",
                   "--to", "bob@lab.test"],
                  server="127.0.0.2", port=587, data="msg1.eml",
                  note="client 127.0.0.1, not inspected: STARTTLS offered and used")
        ctx.lab.wait_delivered("bob", 1)
        ctx.swaks(["--tls-optional", "--local-interface", "127.0.0.3",
                   "--auth", "PLAIN", "--auth-user", "carol",
                   "--auth-password", "carolpw", "--from", "carol@lab.test",
                   "--to", "bob@lab.test"],
                  server="127.0.0.2", port=587, data="msg2.eml",
                  note="client 127.0.0.3, behind the middlebox: STARTTLS %s in the "
                  "EHLO reply; swaks goes on in clear and authenticates in clear"
                  % ("overwritten with XXXXXXXA" if mode == "mangle" else "removed"))
        ctx.sessions[-1]["client_address"] = "127.0.0.3"
        ctx.lab.wait_delivered("bob", 2)
    finally:
        _stop_peer(proxy)
    if proxy.rewritten != 1:
        raise RuntimeError("middlebox rewrote %d lines, expected 1" % proxy.rewritten)


@scenario("smtp/starttls-stripped", "two sessions to the same submission server "
          "(127.0.0.2:587); in the second a deliberately misbehaving scripted "
          "middlebox overwrites STARTTLS in the EHLO reply with XXXXXXXA (as Cisco "
          "PIX/ASA ESMTP inspection does), so swaks --tls-optional goes on in clear "
          "and sends AUTH PLAIN in clear", capture_filter=STRIP_FILTER)
def starttls_stripped(ctx):
    _strip_scenario(ctx, "mangle")


@scenario("smtp/starttls-removed", "two sessions to the same submission server "
          "(127.0.0.2:587); in the second a deliberately misbehaving scripted "
          "middlebox deletes the STARTTLS line from the EHLO reply, so swaks "
          "--tls-optional goes on in clear and sends AUTH PLAIN in clear",
          capture_filter=STRIP_FILTER)
def starttls_removed(ctx):
    _strip_scenario(ctx, "remove")


@scenario("smtp/open-relay", "an open relay (postfix, 127.0.0.27:25, mynetworks = "
          "0.0.0.0/0): RCPT TO a foreign domain (victim@example.net) accepted "
          "without AUTH and the message queued (it stays in the queue)",
          services=("open-relay",))
def open_relay(ctx):
    ctx.message("msg1", messages.simple(frm="Promo <offers@example.org>",
                                        to="victim@example.net",
                                        subject="Relayed through an open relay",
                                        msgid="relay.1@client.lab.test"))
    ctx.swaks(["--from", "offers@example.org", "--to", "victim@example.net"],
              server="127.0.0.27", port=25, data="msg1.eml",
              note="relay to a foreign domain without AUTH, accepted")


# ------------------------------------------------------------ relaying (issue 27)
RELAY_OPEN, RELAY_CLOSED = "198.51.100.25", "198.51.100.26"


def _relay_session(ctx, server, source, note, auth=False, data=True):
    """One session to server from source: EHLO, AUTH PLAIN in clear when
    auth, MAIL, RCPT TO a foreign domain (victim@example.net); DATA when the
    RCPT was accepted and data is set, else QUIT.  Returns the RCPT code."""
    n = len(ctx.sessions) + 1
    msg = messages.simple(frm="Promo <offers@example.org>", to="victim@example.net",
                          subject="Relay test %d" % n, msgid="relay.%d@client.lab.test" % n)
    s = ctx.smtp(25, host=server, source=source, note=note)
    _hello(s)
    if auth:
        s.smtp_auth_plain("alice", "alicepw")
    s.smtp("MAIL FROM:<offers@example.org>")
    code, _ = s.smtp("RCPT TO:<victim@example.net>")
    if code == 250 and data:
        s.smtp("DATA")
        s.smtp_data(ctx.message("msg%d" % n, msg))     # recorded only when sent
    s.smtp("QUIT")
    s.close()
    return code


def _relay_clients(ctx, server, want):
    """The three clients of a relaying scenario: an outsider without AUTH,
    the server's own host, and the outsider authenticated; want: the RCPT
    codes the server must give them."""
    ctx.note("Server %s; the outside client binds %s (RFC 5737 documentation "
             "addresses on lo in the scenario's own namespace)." % (server, labenv.RELAY_OUTSIDER))
    ext = _relay_session(ctx, server, labenv.RELAY_OUTSIDER,
                         "outside client, no AUTH: RCPT to a foreign domain")
    own = _relay_session(ctx, server, server, "the server's own host (same address), no AUTH")
    auth = _relay_session(ctx, server, labenv.RELAY_OUTSIDER,
                          "outside client after AUTH PLAIN (in clear)", auth=True)
    if (ext, own, auth) != want:
        raise RuntimeError("%s answered RCPT %r, expected %r" % (server, (ext, own, auth), want))


@scenario("smtp/relay-open", "relaying test against an open relay (postfix, 198.51.100.25:25, "
          "mynetworks = 0.0.0.0/0): an outside client (192.0.2.10) without AUTH relays to "
          "victim@example.net and the message is queued; the server's own host and an "
          "authenticated outside client relay too", services=("relay-open",))
def relay_open(ctx):
    _relay_clients(ctx, RELAY_OPEN, (250, 250, 250))


@scenario("smtp/relay-open-rcpt-only", "relaying test against the open relay "
          "(198.51.100.25:25): an outside client (192.0.2.10) without AUTH gets RCPT TO "
          "victim@example.net accepted and quits before DATA (a signal, not a message)",
          services=("relay-open",))
def relay_open_rcpt_only(ctx):
    code = _relay_session(ctx, RELAY_OPEN, labenv.RELAY_OUTSIDER,
                          "outside client, no AUTH: RCPT accepted, QUIT before DATA", data=False)
    if code != 250:
        raise RuntimeError("open relay answered RCPT %d" % code)


@scenario("smtp/relay-closed", "relaying test against a closed server (postfix, "
          "198.51.100.26:25, mynetworks = its own host, reject_unauth_destination): the "
          "outside client (192.0.2.10) without AUTH is refused (554 5.7.1); the server's own "
          "host and the authenticated outside client relay", services=("relay-closed",))
def relay_closed(ctx):
    _relay_clients(ctx, RELAY_CLOSED, (554, 250, 250))


@scenario("smtp/starttls-injection", "client-side STARTTLS command injection "
          "(CVE-2011-0411 pattern): 'STARTTLS\\r\\nRSET\\r\\n' in one segment "
          "before the server's 220; postfix's answer, then the session inside TLS")
def starttls_injection(ctx):
    s = ctx.smtp(25, note="STARTTLS and RSET in one write")
    _hello(s)
    s.send("STARTTLS\r\nRSET\r\n")
    s.smtp_reply()
    s.starttls()
    s.smtp(EHLO)
    s.smtp("QUIT")
    s.close()


@scenario("smtp/starttls-injection-server", "server-side STARTTLS injection: a "
          "deliberately misbehaving scripted server (127.0.0.29:25) answers "
          "STARTTLS with 220 and, in the same segment, a fake EHLO reply in clear "
          "before the TLS handshake; the client discards it, then EHLO and QUIT "
          "inside TLS")
def starttls_injection_server(ctx):
    srv = peers.InjectingSmtpServer("127.0.0.29", 25, ctx.lab.certs).start()
    try:
        s = ctx.smtp(25, host="127.0.0.29",
                     note="scripted server: 220 and an injected reply in one segment")
        _hello(s)
        s.smtp("STARTTLS")
        s.starttls()        # records the injected bytes, discards them
        if s.info.get("discarded_before_tls") != len(peers.InjectingSmtpServer.INJECTED):
            raise RuntimeError("the injected reply did not arrive with the 220")
        s.smtp(EHLO)
        s.smtp("QUIT")
        s.close()
    finally:
        _stop_peer(srv)


@scenario("smtp/tls10-after-starttls", "STARTTLS on a postfix that still accepts "
          "old TLS (127.0.0.28:25, smtpd_tls_protocols >=TLSv1 at OpenSSL security "
          "level 0): a client offering only TLS 1.0 negotiates TLS 1.0, EHLO and "
          "QUIT inside; a second session does the same with TLS 1.1",
          services=("tls10",))
def tls10_after_starttls(ctx):
    for ver, name in ((ssl.TLSVersion.TLSv1, "TLS 1.0"), (ssl.TLSVersion.TLSv1_1, "TLS 1.1")):
        s = ctx.smtp(25, host="127.0.0.28", tlsctx=_tls_client_ctx(ctx, ver),
                     note="STARTTLS, client offers only %s" % name)
        _hello(s)
        s.smtp("STARTTLS")
        s.starttls()
        want = {"TLS 1.0": "TLSv1", "TLS 1.1": "TLSv1.1"}[name]
        if s.info["tls_version"] != want:
            raise RuntimeError("negotiated %s, not %s" % (s.info["tls_version"], want))
        s.smtp(EHLO)
        s.smtp("QUIT")
        s.close()


@scenario("smtp/starttls-handshake-fails", "STARTTLS accepted (220) on port 25 but "
          "the TLS handshake fails: the client offers only TLS 1.0, which the "
          "server (smtpd_tls_protocols >=TLSv1.2) refuses with a protocol_version "
          "alert in clear; the client reconnects and delivers without TLS, as an "
          "opportunistic MTA does", strict=True)
def starttls_handshake_fails(ctx):
    msg = ctx.message("msg1", messages.simple(msgid="tlsfail.1@client.lab.test",
                                              subject="Delivered after a failed "
                                              "TLS handshake"))
    s = ctx.smtp(25, tlsctx=_tls_client_ctx(ctx, ssl.TLSVersion.TLSv1),
                 note="STARTTLS, 220, then a handshake the server refuses")
    _hello(s)
    s.smtp("STARTTLS")
    if s.starttls(expect_failure=True) is None:
        raise RuntimeError("handshake did not fail")
    s = ctx.smtp(25, note="the same client again, without STARTTLS")
    _hello(s)
    _send(s, "carol@lab.test", ["alice@lab.test"], msg)
    s.smtp("QUIT")
    s.close()
    ctx.lab.wait_delivered("alice", 1)


@scenario("smtp/clean-submission", "a clean submission session, on which no audit "
          "finding should fire: postfix with smtpd_tls_security_level=encrypt, "
          "smtpd_tls_auth_only=yes (no AUTH before STARTTLS), TLS 1.2 or later, "
          "AUTH PLAIN LOGIN only, VRFY disabled; swaks does STARTTLS, AUTH PLAIN "
          "inside TLS and delivers", strict=True)
def clean_submission(ctx):
    ctx.message("msg1", messages.simple(frm="Alice <alice@lab.test>",
                                        to="Bob <bob@lab.test>",
                                        msgid="clean.1@client.lab.test",
                                        subject="Submitted the right way"))
    ctx.swaks(["--tls", "--auth", "PLAIN", "--auth-user", "alice",
               "--auth-password", "alicepw", "--from", "alice@lab.test",
               "--to", "bob@lab.test"],
              port=587, data="msg1.eml",
              note="STARTTLS first; AUTH offered and used only inside TLS")
    ctx.lab.wait_delivered("bob", 1)


@scenario("smtp/vrfy-enabled", "VRFY and EXPN answered with real data by a real "
          "exim 4.96 (127.0.0.31:25, acl_smtp_vrfy and acl_smtp_expn = accept): "
          "VRFY of a known user 250 with the address, of an unknown one 550, of a "
          "bare local part 250; EXPN of an alias lists its members (250-/250). "
          "postfix never does this (see smtp/vrfy-expn: 252 or 550; EXPN 500)")
def vrfy_enabled(ctx):
    ctx.lab.start_exim("127.0.0.31", ctx.lab.exim_bin)
    s = ctx.smtp(25, host="127.0.0.31", note="VRFY/EXPN against exim")
    _hello(s)
    s.smtp("VRFY alice@lab.test")
    s.smtp("VRFY nobody@lab.test")
    s.smtp("VRFY bob")
    s.smtp("EXPN team@lab.test")
    s.smtp("QUIT")
    s.close()


# ------------------------------------------- talking out of turn (issue 26)
def _pregreet(ctx, host, note, accepted):
    """A client that sends its whole transaction right after connect, before
    reading the greeting (RFC 5321 §3.1: the server speaks first), as spam
    bots do: one write, then the replies. The message is the truth's only
    when the server is to accept DATA; refused, its lines are commands."""
    msg = messages.simple(msgid="pregreet.1@client.lab.test", subject="Sent before the greeting")
    if accepted:
        ctx.message("msg1", msg)
    s = ctx.smtp(25, host=host, note=note)
    s.info["spoke_first"] = True
    if accepted:
        s.rec.sent_in(msg, s.info, False)
    s.send(("%s\r\nMAIL FROM:<carol@lab.test>\r\nRCPT TO:<alice@lab.test>\r\nDATA\r\n" % EHLO).encode()
           + client.dot_stuff(msg) + b".\r\nQUIT\r\n")
    return s


@scenario("smtp/pregreet-smtpd", "an early talker: EHLO, MAIL, RCPT, DATA, the message "
          "and QUIT in one write right after connect, before the 220; postfix smtpd "
          "reads them in turn and delivers")
def pregreet_smtpd(ctx):
    s = _pregreet(ctx, client.HOST, "whole transaction before the greeting, plain smtpd", True)
    for want in (220, 250, 250, 250, 354, 250, 221):
        code, _ = s.smtp_reply()
        if code != want:
            raise client.ProtocolError("expected %d, got %d" % (want, code))
    s.close()
    ctx.lab.wait_delivered("alice", 1)


@scenario("smtp/pregreet-postscreen", "the same early talker against postfix "
          "postscreen (127.0.0.32:25: multi-line greeting, postscreen_greet_action = "
          "enforce): the bytes arrive after the 220- line, postscreen finds the "
          "pregreet and refuses the mail with 550 5.5.1 Protocol error",
          services=("postscreen",))
def pregreet_postscreen(ctx):
    s = _pregreet(ctx, "127.0.0.32", "whole transaction before the greeting, postscreen enforce", False)
    s.expect_close()
    if not any("5.5.1" in e.get("text", "") for e in s.info["transcript"]):
        raise client.ProtocolError("postscreen did not refuse the early talker")


@scenario("smtp/idle-timeout-421", "smtpd_timeout = 2s (127.0.0.33:25): after EHLO "
          "the client goes quiet; smtpd sends an unsolicited 421 4.4.2 Error: timeout "
          "exceeded and closes (RFC 5321 §3.8)", services=("short-timeout",))
def idle_timeout_421(ctx):
    s = ctx.smtp(25, host="127.0.0.33", note="idle after EHLO until the server's timeout")
    s.info["server_closed"] = {"code": 421, "unsolicited": True}
    _hello(s)
    s.smtp_reply()     # the 421, unasked
    s.expect_close()


@scenario("smtp/error-limit-421", "smtpd_hard_error_limit = 1 (127.0.0.33:25): an "
          "unknown command pipelined with two NOOPs gets 502, then 421 4.7.0 Error: too "
          "many errors and the close; the NOOPs get no reply (RFC 5321 §3.8)",
          services=("short-timeout",))
def error_limit_421(ctx):
    s = ctx.smtp(25, host="127.0.0.33", note="pipelined commands cut by a 421")
    s.info["server_closed"] = {"code": 421, "unsolicited": False}
    _hello(s)
    s.send(b"FOO bar\r\nNOOP\r\nNOOP\r\n")
    s.smtp_replies(2)  # 502, 421
    s.expect_close()
