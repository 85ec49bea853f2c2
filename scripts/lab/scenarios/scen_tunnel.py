"""Tunnel scenarios (issue 25): mail through real proxies in front of the lab's postfix and
dovecot, Debian's dante-server (SOCKS4, SOCKS5 with and without RFC 1929 user and
password, a block rule; dante 1.4 does not resolve SOCKS4a's names, which
tests/dialogue/test_tunnel.c covers) and tinyproxy (HTTP CONNECT with Basic credentials, a 407
and a 403 from its ConnectPort list).  The lab's client does each handshake itself
(client.Proxy); the truth's session has it in "tunnel" and the mail dialogue in its
transcript (tests/oracle/truth_tunnel.py checks both)."""
import os
import re
import subprocess

import client
import messages
from driver import scenario

SOCKS_PORT = 1080       # RFC 1928 §3
HTTP_PORT = 8888        # tinyproxy's default
PROXY_USER, PROXY_PW = "proxyuser", "proxypw"


def _dante(ctx, method, block_port=None):
    """danted on 127.0.0.1:1080; method "none" or "username" (against a passwd
    and shadow of the lab's own, bind-mounted in the daemon's mount namespace)."""
    d = ctx.lab.dir
    block = ("socks block {\n  from: 0.0.0.0/0 to: 0.0.0.0/0 port = %d\n  log: connect error\n}\n"
             % block_port) if block_port else ""
    conf = os.path.join(d, "danted.conf")
    with open(conf, "w") as f:
        f.write("logoutput: %s/danted.log\n"
                "internal: 127.0.0.1 port = %d\n"
                "external: 127.0.0.1\n"
                "clientmethod: none\n"
                "socksmethod: %s\n"
                "user.privileged: root\n"
                "user.unprivileged: nobody\n"
                "client pass {\n  from: 127.0.0.0/8 to: 0.0.0.0/0\n}\n"
                "%s"
                "socks pass {\n  from: 0.0.0.0/0 to: 0.0.0.0/0\n  command: connect\n"
                "  log: connect error\n}\n"
                % (d, SOCKS_PORT, method, block))
    mount = ()
    if method == "username":
        pw = subprocess.run(["openssl", "passwd", "-6", "-salt", "mxraylab", PROXY_PW],
                            capture_output=True, text=True, check=True).stdout.strip()
        for name, src, line in (("passwd", "/etc/passwd",
                                 "%s:x:60001:65534::/nonexistent:/usr/sbin/nologin\n" % PROXY_USER),
                                ("shadow", "/etc/shadow", "%s:%s:19000:0:99999:7:::\n" % (PROXY_USER, pw))):
            with open(src) as f:
                base = f.read()
            with open(os.path.join(d, name), "w") as f:
                f.write(base + line)
            os.chmod(os.path.join(d, name), 0o644 if name == "passwd" else 0o640)
        mount = ((os.path.join(d, "passwd"), "/etc/passwd"), (os.path.join(d, "shadow"), "/etc/shadow"))
    ctx.lab.start_proxy("danted", ["danted", "-f", conf], SOCKS_PORT, mount)


def _tinyproxy(ctx, user=None, pw=None, ports=(25, 587, 110)):
    """tinyproxy on 127.0.0.1:8888: CONNECT only to `ports`, Basic credentials when given."""
    conf = os.path.join(ctx.lab.dir, "tinyproxy.conf")
    with open(conf, "w") as f:
        f.write("User nobody\nGroup nogroup\nPort %d\nListen 127.0.0.1\nTimeout 30\n"
                "LogLevel Info\nMaxClients 10\nAllow 127.0.0.1\nDisableViaHeader Yes\n" % HTTP_PORT)
        for p in ports:
            f.write("ConnectPort %d\n" % p)
        if user:
            f.write("BasicAuth %s %s\n" % (user, pw))
    ctx.lab.start_proxy("tinyproxy", ["tinyproxy", "-d", "-c", conf], HTTP_PORT)


def _smtp_delivery(s, msg):
    s.smtp_reply()
    s.smtp("EHLO client.lab.test")
    s.smtp("MAIL FROM:<carol@lab.test>")
    s.smtp("RCPT TO:<alice@lab.test>")
    s.smtp("DATA")
    s.smtp_data(msg)
    s.smtp("QUIT")
    s.close()


def _refused(ctx, proto, port, proxy, note):
    try:
        getattr(ctx, proto)(port=port, note=note, proxy=proxy)
    except client.TunnelRefused:
        return
    raise client.ProtocolError("the proxy opened a tunnel it should refuse: " + note)


@scenario("tunnel/socks-noauth", "dante without authentication: SMTP through SOCKS5 (an "
          "IPv4 target), POP3 through SOCKS4 (a user id), IMAP through SOCKS5 (a name), and "
          "a SOCKS5 CONNECT to 995 refused by a block rule (REP 2)", seed=True)
def socks_noauth(ctx):
    _dante(ctx, "none", block_port=995)
    msg = ctx.message("msg1", messages.simple(msgid="socks5.1@client.lab.test",
                                               subject="Through a SOCKS5 proxy"))
    _smtp_delivery(ctx.smtp(note="SMTP in a SOCKS5 tunnel", proxy=client.Proxy("socks5", SOCKS_PORT)), msg)
    s = ctx.pop3(note="POP3 in a SOCKS4 tunnel", proxy=client.Proxy("socks4", SOCKS_PORT, user="bob"))
    s.pop_line()
    s.pop("USER alice")
    s.pop("PASS alicepw")
    s.pop("STAT")
    s.pop("RETR 1", multi=True)
    s.pop("QUIT")
    s.close()
    s = ctx.imap(note="IMAP in a SOCKS5 tunnel to a name",
                 proxy=client.Proxy("socks5", SOCKS_PORT, target="localhost"))
    s.imap_response()
    s.imap("a1", "LOGIN alice alicepw")
    s.imap("a2", "SELECT INBOX")
    s.imap("a3", "FETCH 1 BODY.PEEK[]")
    s.imap("a4", "LOGOUT")
    s.close()
    _refused(ctx, "pop3", 995, client.Proxy("socks5", SOCKS_PORT), "SOCKS5 to 995, blocked by dante")


@scenario("tunnel/socks5-auth", "dante with RFC 1929 user and password: POP3 through SOCKS5 "
          "to a domain name, IMAP over TLS (993) through SOCKS5; a wrong password refused "
          "(RFC 1929 §2 STATUS 1)", seed=True)
def socks5_auth(ctx):
    _dante(ctx, "username")
    s = ctx.pop3(note="POP3 in a SOCKS5 tunnel with user and password",
                 proxy=client.Proxy("socks5", SOCKS_PORT, user=PROXY_USER, password=PROXY_PW,
                                    target="localhost"))
    s.pop_line()
    s.pop("USER alice")
    s.pop("PASS alicepw")
    s.pop("LIST", multi=True)
    s.pop("QUIT")
    s.close()
    s = ctx.imap(port=993, implicit_tls=True, note="IMAP over TLS (993) in a SOCKS5 tunnel",
                 proxy=client.Proxy("socks5", SOCKS_PORT, user=PROXY_USER, password=PROXY_PW))
    s.imap_response()
    s.imap("b1", "LOGIN alice alicepw")
    s.imap("b2", "LOGOUT")
    s.close()
    _refused(ctx, "smtp", 25, client.Proxy("socks5", SOCKS_PORT, user=PROXY_USER, password="wrong"),
             "SOCKS5 with a wrong password")


@scenario("tunnel/http-connect", "tinyproxy with Basic credentials: a CONNECT without them "
          "(407), SMTP through a CONNECT with them, and a CONNECT to 143, which its "
          "ConnectPort list leaves out (403)")
def http_connect(ctx):
    _tinyproxy(ctx, "carol", "proxypass")
    _refused(ctx, "smtp", 25, client.Proxy("http-connect", HTTP_PORT), "CONNECT without credentials")
    msg = ctx.message("msg1", messages.simple(msgid="connect.1@client.lab.test",
                                               subject="Through an HTTP proxy"))
    _smtp_delivery(ctx.smtp(note="SMTP in an HTTP CONNECT tunnel",
                            proxy=client.Proxy("http-connect", HTTP_PORT, user="carol",
                                               password="proxypass")), msg)
    _refused(ctx, "imap", 143, client.Proxy("http-connect", HTTP_PORT, user="carol", password="proxypass"),
             "CONNECT to 143, not a ConnectPort")


def _curl(ctx, name, proxy_args, tunnel, note):
    """curl sends the recorded message `name` through a proxy (smtp://, RFC 5321); its -v
    output gives the transcript (commands after "> ", replies after "< ", the message as
    recorded: curl dot-stuffs it and ends it with CRLF.CRLF), tunnel the truth's "tunnel"."""
    src = os.path.join(ctx.outdir, name)
    with open(src, "rb") as f:
        msg = f.read()
    info = {"proto": "smtp", "server_port": tunnel["proxy_port"], "tls": "none", "note": note,
            "client": "curl", "tunnel": tunnel, "transcript": []}
    ctx.sessions.append(info)
    url = "smtp://%s:%d/client.lab.test" % (tunnel["target_host"], tunnel["target_port"])
    trace = os.path.join(ctx.lab.dir, "curl-%s.trace" % name)
    cmd = ["curl", "-sS", "--trace-ascii", trace, "--max-time", "20", url, "--mail-from", "carol@lab.test",
           "--mail-rcpt", "alice@lab.test", "-T", src] + proxy_args
    info["curl_args"] = cmd[1:2] + ["TRACE"] + cmd[3:]
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    info["curl_exit"] = r.returncode
    if r.returncode != 0:
        raise RuntimeError("curl failed (%d): %s" % (r.returncode, r.stderr.decode("utf-8", "replace")))
    # --trace-ascii: "=> Send header" / "<= Recv header" blocks of "0000: line" rows (the
    # proxy's own, before the greeting, left out), "=> Send data" the message.
    cur, kind, greeted = None, None, False
    with open(trace, encoding="utf-8", errors="surrogateescape") as f:
        lines = f.read().splitlines()
    for ln in lines:
        if ln.startswith(("=>", "<=", "==")):
            kind = ln.split(",")[0]
            if kind == "=> Send data" and greeted:
                cur = None
                body = client.dot_stuff(msg) + b".\r\n"
                info["transcript"].append({"dir": "C", "tls": False, "text": body.decode("utf-8")})
            continue
        m = re.match(r"[0-9a-f]{4}: (.*)$", ln)
        if not m or kind not in ("=> Send header", "<= Recv header"):
            continue
        text = m.group(1) + "\r\n"
        if kind == "<= Recv header":
            greeted = greeted or text.startswith("220")
            if not greeted:
                continue
            if cur is None:
                cur = {"dir": "S", "tls": False, "text": ""}
                info["transcript"].append(cur)
            cur["text"] += text
            if not re.match(r"\d{3}-", text):
                cur = None
        elif greeted:
            cur = None
            info["transcript"].append({"dir": "C", "tls": False, "text": text})
    # curl 7.88 sends QUIT when it closes the connection, after its trace has ended: the
    # transcript stops at the 250 to the data, and may be a prefix of what crossed.
    info["transcript_complete"] = False
    ctx.sent_in(msg, info, False)


@scenario("tunnel/curl", "curl sends a message through dante with SOCKS5 and the name resolved by "
          "the proxy (socks5h://), then through tinyproxy with HTTP CONNECT and Basic credentials "
          "(--proxytunnel)")
def curl_tunnels(ctx):
    _dante(ctx, "none")
    _tinyproxy(ctx, "carol", "proxypass")
    ctx.note("curl's --trace-ascii ends before the QUIT curl sends as it closes the connection "
             "(and the 221): these transcripts are marked transcript_complete false")
    ctx.message("msg1", messages.simple(msgid="curl.socks@client.lab.test", subject="curl through SOCKS5"))
    ctx.message("msg2", messages.simple(msgid="curl.connect@client.lab.test", subject="curl through CONNECT"))
    _curl(ctx, "msg1.eml", ["-x", "socks5h://127.0.0.1:%d" % SOCKS_PORT],
          {"kind": "socks5", "proxy_port": SOCKS_PORT, "target_host": "localhost", "target_port": 25,
           "attempts": [{"reply_code": 0, "outcome": "established"}]},
          "curl, socks5h")
    _curl(ctx, "msg2.eml", ["-x", "http://127.0.0.1:%d" % HTTP_PORT, "--proxytunnel",
                            "--proxy-user", "carol:proxypass"],
          {"kind": "http-connect", "proxy_port": HTTP_PORT, "target_host": "localhost", "target_port": 25,
           "user": "carol", "attempts": [{"reply_code": 200, "outcome": "established"}]},
          "curl, HTTP CONNECT")
