"""IMAP scenarios (RFC 3501, 2177 IDLE, 4959 SASL-IR, 7888 LITERAL+, 8314).

alice's mailbox is seeded with the standard three messages before the
capture; its dovecot-uidlist is written by the lab, so UIDs and
UIDVALIDITY (1700000000) are the same every run.
"""
import base64
import threading

from driver import scenario
import labenv
import messages
import peers

APPEND_DATE = '"06-Jan-2025 10:00:00 +0000"'


@scenario("imap/login-fetch", "LOGIN in clear, CAPABILITY, LIST, SELECT, FETCH BODY[] "
          "and BODY.PEEK[HEADER] (server literals), UID FETCH, SEARCH, STORE, "
          "CLOSE, LOGOUT", seed=True)
def login_fetch(ctx):
    s = ctx.imap(note="a full session in clear")
    s.imap_response()
    s.imap("a001", "CAPABILITY")
    s.imap("a002", "LOGIN alice alicepw")
    s.imap("a003", 'LIST "" "*"')
    s.imap("a004", "SELECT INBOX")
    s.imap("a005", "FETCH 1 BODY[]")
    s.imap("a006", "FETCH 1:3 (UID RFC822.SIZE BODY.PEEK[HEADER])")
    s.imap("a007", "UID FETCH 2:3 (FLAGS INTERNALDATE BODY.PEEK[TEXT]<0.64>)")
    s.imap("a008", "SEARCH SUBJECT \"attached\"")
    s.imap("a009", "UID SEARCH UNSEEN")
    s.imap("a010", "STORE 2 +FLAGS (\\Flagged)")
    s.imap("a011", "UID STORE 3 +FLAGS.SILENT (\\Seen)")
    s.imap("a012", "FETCH 1:* (FLAGS)")
    s.imap("a013", "NOOP")
    s.imap("a014", "CLOSE")
    s.imap("a015", "LOGOUT")
    s.close()


@scenario("imap/authenticate-plain", "AUTHENTICATE PLAIN with SASL-IR (RFC 4959), "
          "and without: a '+' continuation then the response", seed=True)
def authenticate_plain(ctx):
    tok = base64.b64encode(b"\0alice\0alicepw").decode()
    s = ctx.imap(note="AUTHENTICATE PLAIN with initial response")
    s.imap_response()
    s.imap("b1", "AUTHENTICATE PLAIN " + tok)
    s.imap("b2", "EXAMINE INBOX")
    s.imap("b3", "LOGOUT")
    s.close()
    s = ctx.imap(note="AUTHENTICATE PLAIN with continuation")
    s.imap_response()
    s.line("c1 AUTHENTICATE PLAIN")
    s.imap_response()               # "+ "
    s.line(tok)
    s.imap_until("c1")
    s.imap("c2", "STATUS INBOX (MESSAGES UIDNEXT UNSEEN)")
    s.imap("c3", "LOGOUT")
    s.close()


@scenario("imap/append", "APPEND with a synchronising literal (server sends a '+' "
          "continuation) and with LITERAL+ (no wait); then FETCH of both", seed=True)
def append(ctx):
    m1 = ctx.message("append1", messages.simple(
        frm="Alice <alice@lab.test>", to="Alice <alice@lab.test>",
        subject="Draft via APPEND", msgid="append.1@client.lab.test"))
    m2 = ctx.message("append2", messages.eightbit_latin1())
    s = ctx.imap(note="APPEND twice")
    s.imap_response()
    s.imap("d1", "LOGIN alice alicepw")
    s.line("d2 APPEND INBOX (\\Seen) %s {%d}" % (APPEND_DATE, len(m1)))
    s.imap_response()               # "+ OK"
    s.send(m1 + b"\r\n")
    s.imap_until("d2")
    s.send(b"d3 APPEND Drafts (\\Draft) %s {%d+}\r\n" % (APPEND_DATE.encode(), len(m2))
           + m2 + b"\r\n")
    s.imap_until("d3")
    s.imap("d4", "SELECT INBOX")
    s.imap("d5", "FETCH 4 (FLAGS INTERNALDATE RFC822.SIZE BODY[])")
    s.imap("d6", "SELECT Drafts")
    s.imap("d7", "FETCH 1 (FLAGS BODY.PEEK[])")
    s.imap("d8", "LOGOUT")
    s.close()


@scenario("imap/idle-new-mail", "IDLE (RFC 2177); a message arrives over SMTP during "
          "IDLE, the server sends EXISTS, the client ends with DONE")
def idle(ctx):
    msg = ctx.message("msg1", messages.simple(msgid="idle.1@client.lab.test",
                                              subject="Arrives during IDLE"))
    s = ctx.imap(note="IDLE")
    s.imap_response()
    s.imap("e1", "LOGIN alice alicepw")
    s.imap("e2", "SELECT INBOX")
    s.line("e3 IDLE")
    s.imap_response()               # "+ idling"
    m = ctx.smtp(25, note="delivery that wakes the IDLE")
    m.smtp_reply()
    m.smtp("EHLO client.lab.test")
    m.smtp("MAIL FROM:<carol@lab.test>")
    m.smtp("RCPT TO:<alice@lab.test>")
    m.smtp("DATA")
    m.smtp_data(msg)
    m.smtp("QUIT")
    m.close()
    while True:                     # bounded by the socket timeout
        r = s.imap_response()
        if "EXISTS" in r:
            break
    s.line("DONE")
    s.imap_until("e3")
    s.imap("e4", "FETCH 1 (FLAGS ENVELOPE)")
    s.imap("e5", "LOGOUT")
    s.close()


@scenario("imap/starttls", "CAPABILITY, STARTTLS, then LOGIN, SELECT, FETCH inside "
          "TLS", seed=True)
def starttls(ctx):
    s = ctx.imap(note="STARTTLS")
    s.imap_response()
    s.imap("f1", "CAPABILITY")
    s.imap("f2", "STARTTLS")
    s.starttls()
    s.imap("f3", "CAPABILITY")
    s.imap("f4", "LOGIN alice alicepw")
    s.imap("f5", "SELECT INBOX")
    s.imap("f6", "FETCH 1 BODY[]")
    s.imap("f7", "LOGOUT")
    s.close()


@scenario("imap/imaps-993", "IMAPS: implicit TLS on 993, LOGIN, SELECT, FETCH, LOGOUT",
          seed=True)
def imaps(ctx):
    s = ctx.imap(993, implicit_tls=True, note="IMAPS")
    s.imap_response()
    s.imap("g1", "LOGIN alice alicepw")
    s.imap("g2", "SELECT INBOX")
    s.imap("g3", "FETCH 3 BODY[]")
    s.imap("g4", "LOGOUT")
    s.close()


@scenario("imap/failed-login", "LOGIN with a wrong password and with an unknown user "
          "(NO [AUTHENTICATIONFAILED]), then a good LOGIN", seed=True)
def failed_login(ctx):
    s = ctx.imap(note="failed logins")
    s.imap_response()
    s.imap("h1", "LOGIN alice wrongpw")
    s.imap("h2", "LOGIN mallory guess")
    s.imap("h3", 'LOGIN "alice" "alicepw"')
    s.imap("h4", "LOGOUT")
    s.close()


@scenario("imap/bad-command", "BAD for an unknown command and bad syntax before and "
          "after login, BAD for FETCH with no mailbox selected, NO for a missing "
          "mailbox", seed=True,
          expect_malformed="tshark flags the deliberately bad 'LOGIN alice'")
def bad_command(ctx):
    # dovecot's imap-login drops the connection after 3 invalid commands
    # before login (see imap/too-many-bad), so only two come first.
    s = ctx.imap(note="BAD responses")
    s.imap_response()
    s.imap("i1", "FROBNICATE")
    s.imap("i2", "LOGIN alice")
    s.imap("i3", "LOGIN alice alicepw")
    s.imap("i4", "FROBNICATE")
    s.imap("i5", "FETCH 1 BODY[]")
    s.imap("i6", "SELECT")
    s.imap("i7", "SELECT NoSuchBox")
    s.imap("i8", "LOGOUT")
    s.close()


@scenario("imap/too-many-bad", "three invalid commands before login: dovecot answers "
          "BAD twice, then '* BYE Too many invalid IMAP commands.' and closes",
          expect_malformed="tshark flags the deliberately bad 'LOGIN alice'")
def too_many_bad(ctx):
    s = ctx.imap(note="server-initiated BYE and close")
    # RFC 9051 §7.1.5: the BYE ends the session; k3 gets no completion
    s.info["server_closed"] = {"status": "BYE", "unsolicited": True}
    s.imap_response()
    s.imap("k1", "FROBNICATE")
    s.imap("k2", "SELECT INBOX")
    s.line("k3 LOGIN alice")
    s.expect_close()


@scenario("imap/login-literal", "LOGIN with the password as a synchronising literal "
          "(client waits for '+')", seed=True)
def login_literal(ctx):
    s = ctx.imap(note="LOGIN with literal")
    s.imap_response()
    s.line("j1 LOGIN alice {7}")
    s.imap_response()               # "+ OK"
    s.line("alicepw")
    s.imap_until("j1")
    s.imap("j2", "LOGOUT")
    s.close()


# ------------------------------------------------------ audit scenarios
# dovecot treats a connection whose remote address equals its local one
# (127.0.0.1 to 127.0.0.1) as secure, and then neither advertises
# LOGINDISABLED nor refuses plaintext logins; the clients of the strict
# scenarios therefore connect from 127.0.0.10.
REMOTE = "127.0.0.10"


@scenario("imap/logindisabled", "dovecot with disable_plaintext_auth=yes advertises "
          "LOGINDISABLED in clear (client from 127.0.0.10, not local to dovecot); the "
          "client sends LOGIN in clear anyway and is refused (NO "
          "[PRIVACYREQUIRED]): LOGINDISABLED honoured, though the password crossed",
          seed=True, strict=True)
def logindisabled(ctx):
    s = ctx.imap(note="LOGIN in clear despite LOGINDISABLED; refused", source=REMOTE)
    s.imap_response()
    s.imap("l1", "CAPABILITY")
    s.imap("l2", "LOGIN alice alicepw")
    s.imap("l3", "LOGOUT")
    s.close()


@scenario("imap/logindisabled-ignored", "a deliberately misbehaving scripted IMAP "
          "server (127.0.0.30:143) advertises LOGINDISABLED but accepts LOGIN in "
          "clear: LOGINDISABLED not honoured")
def logindisabled_ignored(ctx):
    srv = peers.LoginDisabledIgnoredImap("127.0.0.30", 143, labenv.USERS).start()
    try:
        s = ctx.imap(host="127.0.0.30", note="scripted server: LOGINDISABLED, "
                     "yet LOGIN in clear succeeds")
        s.imap_response()
        s.imap("m1", "CAPABILITY")
        s.imap("m2", "LOGIN alice alicepw")
        s.imap("m3", "SELECT INBOX")
        s.imap("m4", "LOGOUT")
        s.close()
    finally:
        errors = srv.stop()
    if errors:
        raise RuntimeError("scripted peer failed: %s" % errors)


@scenario("imap/no-starttls", "dovecot without TLS (ssl = no): CAPABILITY lists no "
          "STARTTLS; LOGIN in clear, SELECT, FETCH, LOGOUT", seed=True,
          dovecot_tls=False)
def no_starttls(ctx):
    s = ctx.imap(note="no STARTTLS offered; LOGIN in clear")
    s.imap_response()
    s.imap("n1", "CAPABILITY")
    s.imap("n2", "LOGIN alice alicepw")
    s.imap("n3", "SELECT INBOX")
    s.imap("n4", "FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    s.imap("n5", "LOGOUT")
    s.close()


@scenario("imap/starttls-injection", "client-side STARTTLS command injection "
          "against dovecot: 'p1 STARTTLS\\r\\np2 CAPABILITY\\r\\n' in one "
          "segment; dovecot answers OK and reads the pipelined plaintext as the "
          "start of the TLS handshake, which fails: it closes the connection")
def starttls_injection(ctx):
    s = ctx.imap(note="STARTTLS and CAPABILITY in one write")
    s.imap_response()
    s.send("p1 STARTTLS\r\np2 CAPABILITY\r\n")
    s.imap_until("p1")
    if s.starttls(expect_failure=True) is None:
        raise RuntimeError("handshake did not fail")


@scenario("imap/clean", "a clean IMAP session, on which no audit finding should "
          "fire: dovecot with disable_plaintext_auth=yes and PLAIN/LOGIN only "
          "(client from 127.0.0.10); CAPABILITY (STARTTLS, LOGINDISABLED), "
          "STARTTLS, then LOGIN, SELECT, FETCH, LOGOUT inside TLS 1.3",
          seed=True, strict=True)
def clean(ctx):
    s = ctx.imap(note="STARTTLS before LOGIN", source=REMOTE)
    s.imap_response()
    s.imap("o1", "CAPABILITY")
    s.imap("o2", "STARTTLS")
    s.starttls()
    s.imap("o3", "CAPABILITY")
    s.imap("o4", "LOGIN alice alicepw")
    s.imap("o5", "SELECT INBOX")
    s.imap("o6", "FETCH 1 BODY[]")
    s.imap("o7", "LOGOUT")
    s.close()


# ------------------------------------------- talking out of turn (issue 26)
@scenario("imap/pregreet", "an early talker: LOGIN, SELECT and LOGOUT in one write "
          "right after connect, before the * OK greeting (RFC 9051 §7.1: the server "
          "greets first); dovecot answers them in turn", seed=True)
def pregreet(ctx):
    s = ctx.imap(note="commands before the greeting")
    s.info["spoke_first"] = True
    s.send(b"a1 LOGIN alice alicepw\r\na2 SELECT INBOX\r\na3 LOGOUT\r\n")
    s.imap_until("a3")
    s.expect_close()


@scenario("imap/idle-timeout", "a client that never logs in: after its greeting "
          "dovecot's login process waits, then sends an unsolicited * BYE "
          "Disconnected for inactivity. and closes (RFC 9051 §7.1.5; dovecot's "
          "timeout is fixed, about three minutes)")
def idle_timeout(ctx):
    s = ctx.imap(note="idle before login until the server's timeout")
    s.info["server_closed"] = {"status": "BYE", "unsolicited": True}
    s.sock.settimeout(400)
    s.imap_response()
    s.imap("c1", "CAPABILITY")
    s.expect_close()
