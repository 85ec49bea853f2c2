"""POP3 scenarios (RFC 1939, 2449 CAPA, 2595 STLS, 5034 AUTH, 8314).

alice's mailbox is seeded before the capture starts with the standard
three messages (driver.STANDARD_MAILBOX): a plain one, one whose body has
lines starting with '.', so RETR shows server-side dot-stuffing, and one
with an attachment.
"""
import base64
import hashlib
import re

from driver import scenario


def _login(s, user="alice", pw="alicepw"):
    s.pop("USER " + user)
    return s.pop("PASS " + pw)


@scenario("pop3/user-pass-retr", "USER/PASS in clear, CAPA, STAT, LIST, UIDL, RETR "
          "(with a dot-stuffed message), TOP, NOOP, QUIT", seed=True)
def user_pass(ctx):
    s = ctx.pop3(note="a full read-only session")
    s.pop_line()
    s.pop("CAPA", multi=True)
    _login(s)
    s.pop("STAT")
    s.pop("LIST", multi=True)
    s.pop("LIST 2")
    s.pop("UIDL", multi=True)
    s.pop("UIDL 3")
    s.pop("RETR 1", multi=True)
    s.pop("RETR 2", multi=True)
    s.pop("TOP 3 5", multi=True)
    s.pop("NOOP")
    s.pop("QUIT")
    s.close()


@scenario("pop3/dele-rset", "DELE, a DELE of a deleted message (-ERR), RSET, DELE, "
          "RETR of a missing message (-ERR), QUIT commits the deletion", seed=True)
def dele_rset(ctx):
    s = ctx.pop3(note="DELE/RSET")
    s.pop_line()
    _login(s)
    s.pop("DELE 1")
    s.pop("DELE 1")
    s.pop("STAT")
    s.pop("RSET")
    s.pop("STAT")
    s.pop("DELE 2")
    s.pop("RETR 9", multi=True)
    s.pop("LIST", multi=True)
    s.pop("QUIT")
    s.close()
    s = ctx.pop3(note="second session sees the deletion")
    s.pop_line()
    _login(s)
    s.pop("LIST", multi=True)
    s.pop("UIDL", multi=True)
    s.pop("QUIT")
    s.close()


@scenario("pop3/apop", "APOP with the digest of the banner timestamp and the "
          "password (RFC 1939 §7); the timestamp varies per run", seed=True)
def apop(ctx):
    s = ctx.pop3(note="APOP")
    banner = s.pop_line()
    m = re.search(r"<[^>]+>", banner)
    dig = hashlib.md5((m.group(0) + "alicepw").encode()).hexdigest()
    s.pop("APOP alice " + dig, mask="APOP alice <DIGEST>\r\n")
    s.pop("STAT")
    s.pop("QUIT")
    s.close()


@scenario("pop3/auth-plain", "AUTH PLAIN with an initial response; AUTH PLAIN with a "
          "'+ ' continuation; AUTH LOGIN (RFC 5034)", seed=True)
def auth_plain(ctx):
    tok = base64.b64encode(b"\0alice\0alicepw").decode()
    s = ctx.pop3(note="AUTH PLAIN initial response")
    s.pop_line()
    s.pop("AUTH PLAIN " + tok)
    s.pop("STAT")
    s.pop("QUIT")
    s.close()
    s = ctx.pop3(note="AUTH PLAIN with continuation")
    s.pop_line()
    s.pop("AUTH PLAIN")
    s.pop(tok)
    s.pop("STAT")
    s.pop("QUIT")
    s.close()
    s = ctx.pop3(note="AUTH LOGIN")
    s.pop_line()
    s.pop("AUTH LOGIN")
    s.pop(base64.b64encode(b"alice").decode())
    s.pop(base64.b64encode(b"alicepw").decode())
    s.pop("STAT")
    s.pop("QUIT")
    s.close()


@scenario("pop3/stls", "CAPA, STLS (RFC 2595), then CAPA, USER/PASS, LIST, RETR "
          "inside TLS", seed=True)
def stls(ctx):
    s = ctx.pop3(note="STLS upgrade")
    s.pop_line()
    s.pop("CAPA", multi=True)
    s.pop("STLS")
    s.starttls()
    s.pop("CAPA", multi=True)
    _login(s)
    s.pop("LIST", multi=True)
    s.pop("RETR 1", multi=True)
    s.pop("QUIT")
    s.close()


@scenario("pop3/pop3s-995", "POP3S: implicit TLS on 995, USER/PASS, STAT, RETR, QUIT",
          seed=True)
def pop3s(ctx):
    s = ctx.pop3(995, implicit_tls=True, note="POP3S")
    s.pop_line()
    _login(s)
    s.pop("STAT")
    s.pop("RETR 3", multi=True)
    s.pop("QUIT")
    s.close()


@scenario("pop3/failed-login", "PASS with a wrong password, USER of an unknown user, "
          "then a successful login", seed=True)
def failed_login(ctx):
    s = ctx.pop3(note="failed logins")
    s.pop_line()
    _login(s, "alice", "wrongpw")
    _login(s, "mallory", "guess")
    _login(s)
    s.pop("STAT")
    s.pop("QUIT")
    s.close()


@scenario("pop3/errors", "commands before login (-ERR), an unknown command, "
          "an empty mailbox for bob")
def errors(ctx):
    s = ctx.pop3(note="errors")
    s.pop_line()
    s.pop("STAT")
    s.pop("FROB")
    s.pop("PASS bobpw")
    _login(s, "bob", "bobpw")
    s.pop("STAT")
    s.pop("LIST", multi=True)
    s.pop("RETR 1", multi=True)
    s.pop("QUIT")
    s.close()


# ------------------------------------------------------ audit scenarios
# (dovecot treats 127.0.0.1 to 127.0.0.1 as secure: see scen_imap.REMOTE)
REMOTE = "127.0.0.10"


@scenario("pop3/no-stls", "dovecot without TLS (ssl = no): CAPA lists no STLS; "
          "USER/PASS in clear, STAT, QUIT", seed=True, dovecot_tls=False)
def no_stls(ctx):
    s = ctx.pop3(note="no STLS offered; USER/PASS in clear")
    s.pop_line()
    s.pop("CAPA", multi=True)
    _login(s)
    s.pop("STAT")
    s.pop("QUIT")
    s.close()


@scenario("pop3/stls-injection", "client-side STLS command injection against "
          "dovecot: 'STLS\\r\\nCAPA\\r\\n' in one segment; dovecot answers "
          "+OK and reads the pipelined plaintext as the start of the TLS "
          "handshake, which fails: it closes the connection")
def stls_injection(ctx):
    s = ctx.pop3(note="STLS and CAPA in one write")
    s.pop_line()
    s.send("STLS\r\nCAPA\r\n")
    s.pop_line()
    if s.starttls(expect_failure=True) is None:
        raise RuntimeError("handshake did not fail")


@scenario("pop3/clean", "a clean POP3 session, on which no audit finding should "
          "fire: dovecot with disable_plaintext_auth=yes and PLAIN/LOGIN only "
          "(client from 127.0.0.10, no APOP timestamp); CAPA (STLS, no USER), STLS, "
          "then CAPA, USER/PASS, STAT, RETR, QUIT inside TLS 1.3",
          seed=True, strict=True)
def clean(ctx):
    s = ctx.pop3(note="STLS before USER/PASS", source=REMOTE)
    s.pop_line()
    s.pop("CAPA", multi=True)
    s.pop("STLS")
    s.starttls()
    s.pop("CAPA", multi=True)
    _login(s)
    s.pop("STAT")
    s.pop("RETR 1", multi=True)
    s.pop("QUIT")
    s.close()


# ------------------------------------------- talking out of turn (issue 26)
@scenario("pop3/pregreet", "an early talker: USER, PASS and STAT in one write right "
          "after connect, before the +OK greeting (RFC 1939 §4: the server greets "
          "first); dovecot answers them in turn; then QUIT", seed=True)
def pregreet(ctx):
    s = ctx.pop3(note="commands before the greeting")
    s.info["spoke_first"] = True
    s.send(b"USER alice\r\nPASS alicepw\r\nSTAT\r\n")
    for _ in range(4):
        s.pop_line()
    s.pop("QUIT")      # in its turn: tshark reads one response per segment
    s.expect_close()


@scenario("pop3/idle-timeout", "a client that never logs in: after its greeting "
          "dovecot's login process waits, then sends an unsolicited -ERR "
          "Disconnected for inactivity. and closes (RFC 1939 §3: the autologout "
          "timer; dovecot's is fixed, about three minutes)")
def idle_timeout(ctx):
    s = ctx.pop3(note="idle before login until the server's timeout")
    s.info["server_closed"] = {"status": "-ERR", "unsolicited": True}
    s.sock.settimeout(400)
    s.pop_line()
    s.pop("CAPA", multi=True)
    s.expect_close()
