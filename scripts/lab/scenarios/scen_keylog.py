"""TLS key-log scenarios: real TLS sessions whose secrets the client wrote.

Each capture pcaps/keylog/<name>.pcap has beside it <name>.keys, the NSS
key log (https://firefox-source-docs.mozilla.org/security/nss/legacy/key_log_format/)
exactly as the client wrote it while the capture ran: Python's ssl module
(SSLContext.keylog_filename; CLIENT_RANDOM for TLS 1.2, the
*_TRAFFIC_SECRET_* lines for TLS 1.3) or `openssl s_client -keylogfile`.
With it, tshark (-o tls.keylog_file:) and mxray (--tls-keylog) can decrypt
the dialogue inside TLS.  Each session carries real content: a message sent
with DATA after AUTH, or one fetched with IMAP FETCH / POP3 RETR after a
login, all inside TLS.

The servers are the lab's postfix and dovecot; where a suite needs an RSA
certificate (ECDHE-RSA, RSA key exchange) both are loaded with the RSA one
beside the EC one (tls_variant rsa); dovecot's ssl_cipher_suites picks the
TLS 1.3 suite where Python (which cannot set TLS 1.3 suites) is the client.

Each session of the truth gets "keylog" (docs/lab.md): the key log file,
whether it holds this session's secrets, the key exchange, encrypt-then-MAC
for CBC suites, the client, and what travelled inside TLS: commands,
replies, messages (size and SHA-256).
"""
import hashlib
import os
import re
import select
import ssl
import subprocess
import time

import client
import messages
import scen_offload
from driver import scenario

EHLO = "EHLO client.lab.test"
# SSL_OP_NO_ENCRYPT_THEN_MAC (OpenSSL 3.0's ssl.h: SSL_OP_BIT(19)); Python
# 3.11 has no name for it but passes the bit on to SSL_CTX_set_options.
OP_NO_ENCRYPT_THEN_MAC = 1 << 19
LARGE = 100000          # attachment bytes: a message of about 137 KB
LARGE_LIMIT = 1000000   # postfix message_size_limit for it
RSA = {"rsa": True}


def keys_path(ctx, suffix=".keys"):
    """pcaps/keylog/<name>.keys: the key log beside the capture."""
    return ctx.outdir[:-len(".d")] + suffix


def fresh_keys(ctx, path=None):
    path = path or keys_path(ctx)
    if os.path.exists(path):
        os.unlink(path)
    return path


def tlsctx(ctx, keys, tls12=False, ciphers=None, no_etm=False):
    """The lab's client context, writing its secrets to keys."""
    c = client.tls_context(ctx.cafile)
    c.keylog_filename = keys
    if tls12:
        c.maximum_version = ssl.TLSVersion.TLSv1_2
    if ciphers:
        c.set_ciphers(ciphers)
    if no_etm:
        c.options |= OP_NO_ENCRYPT_THEN_MAC
    return c


def kx_of(version, cipher):
    if version == "TLSv1.3":
        return "ECDHE"
    return "ECDHE" if cipher.startswith("ECDHE") else "RSA"


# ------------------------------------------------ what travelled inside TLS
def _lines(data):
    out, pos = [], 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end + 1
        out.append(data[pos:end])
        pos = end
    return out


def _turns(info):
    return [(t["dir"], client_bytes(t)) for t in info["transcript"] if t["tls"]]


def client_bytes(t):
    import base64
    return base64.b64decode(t["b64"]) if "b64" in t else t["text"].encode("utf-8")


def inside_smtp(info):
    cmds, codes, msgs = [], [], []
    in_data = in_auth = False
    body = bytearray()
    for d, data in _turns(info):
        if d == "S":
            for ln in _lines(data):
                m = re.match(rb"([2-5]\d\d)([ \r\n]|$)", ln)
                if m:
                    codes.append(int(m.group(1)))
                    in_data = m.group(1) == b"354"
                    in_auth = m.group(1) == b"334"
            continue
        for raw in _lines(data):
            if in_data:
                if raw.rstrip(b"\r\n") == b".":
                    in_data = False
                    msgs.append({"via": "smtp.data", "size": len(body),
                                 "sha256": hashlib.sha256(body).hexdigest()})
                    body.clear()
                else:
                    body += raw[1:] if raw.startswith(b".") else raw
                continue
            if in_auth:
                in_auth = False
                cmds.append("(auth data)")
                continue
            cmds.append(raw.rstrip(b"\r\n").split(b" ", 1)[0].upper().decode())
    return cmds, codes, msgs


def inside_pop3(info):
    cmds, statuses, msgs = [], [], []
    for d, data in _turns(info):
        if d == "C":
            cmds += [ln.rstrip(b"\r\n").split(b" ", 1)[0].upper().decode() for ln in _lines(data)]
            continue
        first = data.split(b"\r\n", 1)[0]
        statuses.append("+OK" if first.startswith(b"+OK") else
                        "-ERR" if first.startswith(b"-ERR") else first[:1].decode())
        if cmds and cmds[-1] == "RETR" and first.startswith(b"+OK"):
            body = bytearray()
            for raw in _lines(data)[1:]:
                if raw == b".\r\n":
                    break
                body += raw[1:] if raw.startswith(b".") else raw
            msgs.append({"via": "pop3.retr", "size": len(body),
                         "sha256": hashlib.sha256(body).hexdigest()})
    return cmds, statuses, msgs


def inside_imap(info):
    cmds, done, msgs = [], [], []
    for d, data in _turns(info):
        if d == "C":
            for ln in _lines(data):
                w = ln.rstrip(b"\r\n").split(b" ")
                cmds.append(" ".join(x.decode() for x in w[:2]).upper() if len(w) > 1
                            else w[0].decode())
            continue
        m = re.match(rb"(\S+) (OK|NO|BAD)\b", data)
        if m and m.group(1) not in (b"*", b"+"):
            done.append("%s %s" % (m.group(1).decode(), m.group(2).decode()))
        for lit in re.finditer(rb"BODY\[\] \{(\d+)\}\r\n", data):
            n = int(lit.group(1))
            b = data[lit.end():lit.end() + n]
            msgs.append({"via": "imap.fetch", "size": len(b),
                         "sha256": hashlib.sha256(b).hexdigest()})
    return cmds, done, msgs


def finish(ctx, s, keys, in_log=True, etm=None, client_name="python ssl", note=None):
    """Close s and put the keylog summary into its truth entry."""
    s.close()
    info = s.info
    f = {"smtp": inside_smtp, "pop3": inside_pop3, "imap": inside_imap}[info["proto"]]
    cmds, replies, msgs = f(info)
    known = {m["sha256"] for m in ctx.messages}
    for m in msgs:
        if m["sha256"] not in known:
            raise RuntimeError("message inside TLS (%s) is none of the recorded ones" % m)
        m["file"] = next(x["file"] for x in ctx.messages if x["sha256"] == m["sha256"])
    kl = {"keys": os.path.basename(keys_path(ctx)), "in_log": in_log,
          "client": client_name,
          "key_exchange": kx_of(info["tls_version"], info["tls_cipher"]),
          "commands": cmds,
          "replies": replies, "messages": msgs}
    if etm is not None:
        kl["encrypt_then_mac"] = etm
    if note:
        kl["note"] = note
    info["keylog"] = kl


# ------------------------------------------------------------- the dialogues
def smtp_send(ctx, s, msg, auth=None, rcpt="bob@lab.test", frm="alice@lab.test"):
    if auth == "plain":
        s.smtp_auth_plain("alice", "alicepw")
    elif auth == "login":
        s.smtp_auth_login("alice", "alicepw")
    s.smtp("MAIL FROM:<%s>" % frm)
    s.smtp("RCPT TO:<%s>" % rcpt)
    s.smtp("DATA")
    s.smtp_data(msg)
    s.smtp("QUIT")


def smtp_starttls(ctx, s):
    s.smtp_reply()
    s.smtp(EHLO)
    s.smtp("STARTTLS")
    s.starttls()
    s.smtp(EHLO)


def alice_msg(ctx, tag, subject):
    return ctx.message(tag, messages.simple(
        frm="Alice <alice@lab.test>", to="Bob <bob@lab.test>", subject=subject,
        msgid="%s@client.lab.test" % tag,
        body="Hello Bob,\n\nthis message crossed inside TLS (%s).\n\n-- \nAlice\n" % subject))


def pop3_retr(s, n, stls):
    s.pop_line()
    if stls:
        s.pop("CAPA", multi=True)
        s.pop("STLS")
        s.starttls()
    s.pop("CAPA", multi=True)
    s.pop("USER alice")
    s.pop("PASS alicepw")
    s.pop("STAT")
    s.pop("RETR %d" % n, multi=True)
    s.pop("QUIT")


def imap_fetch(s, n, starttls):
    s.imap_response()
    if starttls:
        s.imap("a001", "CAPABILITY")
        s.imap("a002", "STARTTLS")
        s.starttls()
    s.imap("a003", "CAPABILITY")
    s.imap("a004", "LOGIN alice alicepw")
    s.imap("a005", "SELECT INBOX")
    s.imap("a006", "FETCH %d BODY[]" % n)
    s.imap("a007", "LOGOUT")


# ------------------------------------------------------------------ TLS 1.3
@scenario("keylog/smtp-starttls-tls13-aes256", "SMTP on 587: STARTTLS, TLS 1.3 "
          "TLS_AES_256_GCM_SHA384 (SHA-384 HKDF), AUTH PLAIN and one message inside; "
          "key log by Python's ssl")
def smtp_tls13_aes256(ctx):
    keys = fresh_keys(ctx)
    msg = alice_msg(ctx, "keylog.aes256", "TLS 1.3 AES-256-GCM")
    s = ctx.smtp(587, note="STARTTLS, TLS 1.3 AES-256-GCM, AUTH PLAIN, DATA",
                 tlsctx=tlsctx(ctx, keys))
    smtp_starttls(ctx, s)
    smtp_send(ctx, s, msg, auth="plain")
    finish(ctx, s, keys)
    ctx.lab.wait_delivered("bob", 1)


@scenario("keylog/pop3s-tls13-aes128", "POP3 on 995 (implicit TLS): TLS 1.3 "
          "TLS_AES_128_GCM_SHA256 (dovecot's ssl_cipher_suites), USER/PASS, STAT, "
          "RETR of a seeded message", seed=True,
          tls_variant={"dovecot": "ssl_cipher_suites = TLS_AES_128_GCM_SHA256\n"})
def pop3s_tls13_aes128(ctx):
    keys = fresh_keys(ctx)
    s = ctx.pop3(995, implicit_tls=True, note="POP3S, TLS 1.3 AES-128-GCM, RETR 1",
                 tlsctx=tlsctx(ctx, keys))
    pop3_retr(s, 1, stls=False)
    finish(ctx, s, keys)


# -------------------------------------------------------- openssl s_client
class _PipeSock:
    """openssl s_client's stdin/stdout as the socket of a client.Session."""

    def __init__(self, proc):
        self.p = proc

    def sendall(self, data):
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def recv(self, n):
        r, _, _ = select.select([self.p.stdout], [], [], client.TIMEOUT)
        if not r:
            raise TimeoutError("s_client: no output within %ss" % client.TIMEOUT)
        return os.read(self.p.stdout.fileno(), n)

    def close(self):
        self.p.stdin.close()
        try:
            self.p.wait(timeout=client.TIMEOUT)
        except subprocess.TimeoutExpired:
            self.p.terminate()
            self.p.wait()


class SClientSession(client.Session):
    """An implicit-TLS session through `openssl s_client -quiet`: what is
    written to its standard input goes out as TLS application data, what the
    server sends comes out on its standard output (-quiet: nothing else;
    -nocommands: a line starting with Q or R is data, not a command)."""

    def __init__(self, recorder, proto, port, keys, version, cipher, opts, note=""):
        self.rec, self.proto, self.port = recorder, proto, port
        self.tls, self.buf, self.closed = True, b"", False
        self.tlsctx = None
        argv = ["openssl", "s_client", "-connect", "%s:%d" % (client.HOST, port),
                "-servername", "mx.lab.test", "-CAfile", recorder.cafile,
                "-verify_return_error", "-quiet", "-nocommands",
                "-keylogfile", keys] + opts
        self.info = {"proto": proto, "server_port": port, "tls": "implicit", "note": note,
                     "client": "openssl s_client",
                     # as run, with the lab's temporary paths as placeholders
                     "s_client_args": [{recorder.cafile: "<CA certificate>",
                                        keys: os.path.basename(keys)}.get(a, a)
                                       for a in argv[1:]],
                     "tls_version": version, "tls_cipher": cipher, "transcript": []}
        recorder.sessions.append(self.info)
        self.errlog = open(keys + ".s_client.log", "w+")
        self.sock = _PipeSock(subprocess.Popen(argv, stdin=subprocess.PIPE,
                                               stdout=subprocess.PIPE, stderr=self.errlog))

    def close(self):
        if not self.closed:
            super().close()
            self.errlog.seek(0)
            err = self.errlog.read()
            self.errlog.close()
            os.unlink(self.errlog.name)
            # -quiet prints no session summary; the verification result is
            # on standard error ("verify return:1" for each certificate)
            if self.sock.p.returncode != 0 or "verify error" in err:
                raise RuntimeError("s_client failed (%s): %s" % (self.sock.p.returncode, err))


@scenario("keylog/smtps-tls13-chacha20", "SMTP on 465 (implicit TLS) with openssl "
          "s_client -tls1_3 -ciphersuites TLS_CHACHA20_POLY1305_SHA256 -keylogfile: "
          "EHLO, AUTH LOGIN and one message inside")
def smtps_tls13_chacha(ctx):
    keys = fresh_keys(ctx)
    msg = alice_msg(ctx, "keylog.chacha13", "TLS 1.3 ChaCha20-Poly1305")
    s = SClientSession(ctx, "smtp", 465, keys, "TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256",
                       ["-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"],
                       note="s_client on 465, TLS 1.3 ChaCha20-Poly1305, AUTH LOGIN, DATA")
    s.smtp_reply()
    s.smtp(EHLO)
    smtp_send(ctx, s, msg, auth="login")
    s.expect_close()
    finish(ctx, s, keys, client_name="openssl s_client")
    ctx.lab.wait_delivered("bob", 1)


# ------------------------------------------------------------------ TLS 1.2
@scenario("keylog/imap-starttls-ecdhe-aes128gcm", "IMAP on 143: STARTTLS, TLS 1.2 "
          "ECDHE-RSA-AES128-GCM-SHA256, LOGIN, SELECT, FETCH 1 BODY[], LOGOUT",
          seed=True, tls_variant=RSA)
def imap_ecdhe_aes128gcm(ctx):
    keys = fresh_keys(ctx)
    s = ctx.imap(143, note="STARTTLS, TLS 1.2 ECDHE-RSA-AES128-GCM-SHA256, FETCH",
                 tlsctx=tlsctx(ctx, keys, True, "ECDHE-RSA-AES128-GCM-SHA256"))
    imap_fetch(s, 1, starttls=True)
    finish(ctx, s, keys)


@scenario("keylog/imaps-ecdhe-aes256gcm", "IMAP on 993 (implicit TLS): TLS 1.2 "
          "ECDHE-RSA-AES256-GCM-SHA384, LOGIN, SELECT, FETCH 3 BODY[] (the message "
          "with an attachment), LOGOUT", seed=True, tls_variant=RSA)
def imaps_ecdhe_aes256gcm(ctx):
    keys = fresh_keys(ctx)
    s = ctx.imap(993, implicit_tls=True,
                 note="IMAPS, TLS 1.2 ECDHE-RSA-AES256-GCM-SHA384, FETCH",
                 tlsctx=tlsctx(ctx, keys, True, "ECDHE-RSA-AES256-GCM-SHA384"))
    imap_fetch(s, 3, starttls=False)
    finish(ctx, s, keys)


@scenario("keylog/pop3-stls-ecdhe-chacha20", "POP3 on 110: STLS, TLS 1.2 "
          "ECDHE-RSA-CHACHA20-POLY1305, CAPA, USER/PASS, STAT, RETR 2 (a dot-stuffed "
          "body), QUIT", seed=True, tls_variant=RSA)
def pop3_ecdhe_chacha(ctx):
    keys = fresh_keys(ctx)
    s = ctx.pop3(110, note="STLS, TLS 1.2 ECDHE-RSA-CHACHA20-POLY1305, RETR 2",
                 tlsctx=tlsctx(ctx, keys, True, "ECDHE-RSA-CHACHA20-POLY1305"))
    pop3_retr(s, 2, stls=True)
    finish(ctx, s, keys)


@scenario("keylog/smtp-starttls-cbc-etm", "SMTP on 25: STARTTLS, TLS 1.2 "
          "ECDHE-RSA-AES128-SHA256 (AES-CBC, HMAC-SHA256) with encrypt-then-MAC "
          "(RFC 7366, negotiated by default), one message", tls_variant=RSA)
def smtp_cbc_etm(ctx):
    keys = fresh_keys(ctx)
    msg = ctx.message("msg1", messages.simple(msgid="keylog.cbc-etm@client.lab.test",
                                              subject="AES-CBC with encrypt-then-MAC"))
    s = ctx.smtp(25, note="STARTTLS, TLS 1.2 ECDHE-RSA-AES128-SHA256, encrypt-then-MAC",
                 tlsctx=tlsctx(ctx, keys, True, "ECDHE-RSA-AES128-SHA256"))
    smtp_starttls(ctx, s)
    smtp_send(ctx, s, msg, rcpt="alice@lab.test", frm="carol@lab.test")
    finish(ctx, s, keys, etm=True)
    ctx.lab.wait_delivered("alice", 1)


@scenario("keylog/smtp-starttls-cbc-noetm", "SMTP on 587: STARTTLS, TLS 1.2 "
          "ECDHE-RSA-AES128-SHA256 without encrypt-then-MAC (the client sets "
          "SSL_OP_NO_ENCRYPT_THEN_MAC: MAC-then-encrypt), AUTH LOGIN, one message",
          tls_variant=RSA)
def smtp_cbc_noetm(ctx):
    keys = fresh_keys(ctx)
    msg = alice_msg(ctx, "keylog.cbc-noetm", "AES-CBC, MAC-then-encrypt")
    s = ctx.smtp(587, note="STARTTLS, TLS 1.2 ECDHE-RSA-AES128-SHA256, no encrypt-then-MAC",
                 tlsctx=tlsctx(ctx, keys, True, "ECDHE-RSA-AES128-SHA256", no_etm=True))
    smtp_starttls(ctx, s)
    smtp_send(ctx, s, msg, auth="login")
    finish(ctx, s, keys, etm=False)
    ctx.lab.wait_delivered("bob", 1)


@scenario("keylog/smtp-starttls-rsa-aes128gcm", "SMTP on 25: STARTTLS, TLS 1.2 "
          "AES128-GCM-SHA256 (TLS_RSA_WITH_AES_128_GCM_SHA256: RSA key exchange, "
          "no forward secrecy), one message", tls_variant=RSA)
def smtp_rsa_kx(ctx):
    keys = fresh_keys(ctx)
    msg = ctx.message("msg1", messages.simple(msgid="keylog.rsa-kx@client.lab.test",
                                              subject="RSA key exchange"))
    s = ctx.smtp(25, note="STARTTLS, TLS 1.2 AES128-GCM-SHA256 (RSA key exchange)",
                 tlsctx=tlsctx(ctx, keys, True, "AES128-GCM-SHA256"))
    smtp_starttls(ctx, s)
    smtp_send(ctx, s, msg, rcpt="alice@lab.test", frm="carol@lab.test")
    finish(ctx, s, keys)
    ctx.lab.wait_delivered("alice", 1)


@scenario("keylog/pop3s-rsa-cbc-sha", "POP3 on 995 (implicit TLS): TLS 1.2 "
          "AES256-SHA (TLS_RSA_WITH_AES_256_CBC_SHA: RSA key exchange, AES-CBC, "
          "HMAC-SHA1) without encrypt-then-MAC, USER/PASS, RETR 1", seed=True,
          tls_variant={"rsa": True, "dovecot": "ssl_cipher_list = AES256-SHA\n"})
def pop3s_rsa_cbc(ctx):
    keys = fresh_keys(ctx)
    s = ctx.pop3(995, implicit_tls=True,
                 note="POP3S, TLS 1.2 AES256-SHA (RSA key exchange), no encrypt-then-MAC",
                 tlsctx=tlsctx(ctx, keys, True, "AES256-SHA", no_etm=True))
    pop3_retr(s, 1, stls=False)
    finish(ctx, s, keys, etm=False)


# ------------------------------------------------- a key log without the keys
@scenario("keylog/smtp-no-key", "two SMTP sessions on 25, STARTTLS and TLS 1.3, a "
          "message each; the key log holds the first session's secrets only (the "
          "second's are in no-key.d/withheld.keys): mxray must say no_key for it")
def smtp_no_key(ctx):
    keys = fresh_keys(ctx)
    os.makedirs(ctx.outdir, exist_ok=True)
    other = fresh_keys(ctx, os.path.join(ctx.outdir, "withheld.keys"))
    for i, (k, in_log) in enumerate(((keys, True), (other, False))):
        msg = ctx.message("msg%d" % (i + 1), messages.simple(
            msgid="keylog.nokey-%d@client.lab.test" % (i + 1),
            subject="Session %d of two" % (i + 1)))
        s = ctx.smtp(25, note="STARTTLS, TLS 1.3; keys %s" %
                     ("in the key log" if in_log else "withheld (no-key.d/withheld.keys)"),
                     tlsctx=tlsctx(ctx, k))
        smtp_starttls(ctx, s)
        smtp_send(ctx, s, msg, rcpt="alice@lab.test", frm="carol@lab.test")
        finish(ctx, s, keys, in_log=in_log,
               note=None if in_log else "secrets in no-key.d/withheld.keys, not in the key log")
        ctx.lab.wait_delivered("alice", i + 1)


# ------------------------------------------------------------ a large message
@scenario("keylog/smtp-starttls-large", "SMTP on 25: STARTTLS, TLS 1.3, one message "
          "of about 137 KB (a base64 attachment of 100 000 bytes): TLS records of "
          "16 KB over many TCP segments", size_limit=LARGE_LIMIT)
def smtp_large(ctx):
    keys = fresh_keys(ctx)
    msg = ctx.message("msg1", messages.attach(name="archive.bin", n=LARGE))
    s = ctx.smtp(25, note="STARTTLS, TLS 1.3, a 137 KB message",
                 tlsctx=tlsctx(ctx, keys))
    smtp_starttls(ctx, s)
    smtp_send(ctx, s, msg, rcpt="alice@lab.test", frm="carol@lab.test")
    finish(ctx, s, keys)
    ctx.lab.wait_delivered("alice", 1)


@scenario("keylog/imaps-large-fetch", "IMAP on 993 (implicit TLS): TLS 1.3, LOGIN, "
          "SELECT, FETCH 1 BODY[] of a message of about 137 KB: the server's TLS "
          "records of 16 KB over many TCP segments", seed=scen_offload.mailbox)
def imaps_large(ctx):
    keys = fresh_keys(ctx)
    s = ctx.imap(993, implicit_tls=True, note="IMAPS, TLS 1.3, FETCH of a 137 KB message",
                 tlsctx=tlsctx(ctx, keys))
    imap_fetch(s, 1, starttls=False)
    finish(ctx, s, keys)
