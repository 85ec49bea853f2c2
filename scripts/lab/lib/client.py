"""Scripted mail clients that record every byte they send and receive.

A Session is one TCP connection.  Each write is one transcript entry
(dir "C"); each complete reply read is one entry (dir "S").  Entries carry
whether TLS was active, so the truth also holds what no dissector can see.
"""
import base64
import hashlib
import hmac
import os
import re
import socket
import ssl
import subprocess
import time

HOST = "127.0.0.1"
TIMEOUT = 20.0


class ProtocolError(Exception):
    pass


class TunnelRefused(Exception):
    pass


class Proxy:
    """A proxy in front of the lab's servers, and the handshake a client
    does with it: kind "socks4", "socks4a", "socks5" (RFC 1928, with RFC
    1929 user and password when given) or "http-connect" (RFC 9110 §9.3.6,
    Basic credentials when given; a 407 is answered once with them on the
    same connection when retry is set). target overrides the host the
    client names (a domain name for socks4a and socks5)."""

    def __init__(self, kind, port, user=None, password=None, target=None, retry=False):
        self.kind, self.port, self.user, self.password = kind, port, user, password
        self.target, self.retry = target, retry

    def _recv(self, s, n):
        out = b""
        while len(out) < n:
            c = s.sock.recv(n - len(out))
            if not c:
                raise EOFError("proxy closed the connection")
            out += c
        return out

    def handshake(self, s, host, port):
        """Runs the handshake on s.sock; returns the truth's "tunnel"."""
        target = self.target or host
        t = {"kind": self.kind, "proxy_port": self.port, "target_host": target,
             "target_port": port, "attempts": []}
        if self.user:
            t["user"] = self.user
        if self.kind.startswith("socks4"):
            ip = socket.inet_aton("0.0.0.1" if self.kind == "socks4a" else target)
            req = b"\x04\x01" + port.to_bytes(2, "big") + ip + (self.user or "").encode() + b"\0"
            if self.kind == "socks4a":
                req += target.encode() + b"\0"
            s.sock.sendall(req)
            rep = self._recv(s, 8)
            t["attempts"].append({"reply_code": rep[1],
                                  "outcome": "established" if rep[1] == 90 else "refused"})
            return t
        if self.kind == "socks5":
            methods = b"\x00\x02" if self.user else b"\x00"
            s.sock.sendall(b"\x05" + bytes([len(methods)]) + methods)
            ver, method = self._recv(s, 2)
            if method == 2:
                u, p = self.user.encode(), self.password.encode()
                s.sock.sendall(b"\x01" + bytes([len(u)]) + u + bytes([len(p)]) + p)
                if self._recv(s, 2)[1] != 0:
                    # RFC 1929 §2: the proxy closes; the target was never named
                    t["attempts"].append({"outcome": "auth_failed", "request_sent": False})
                    return t
            try:
                addr = b"\x01" + socket.inet_aton(target)
            except OSError:
                addr = b"\x03" + bytes([len(target)]) + target.encode()
            s.sock.sendall(b"\x05\x01\x00" + addr + port.to_bytes(2, "big"))
            head = self._recv(s, 4)
            alen = {1: 4, 4: 16}.get(head[3]) or self._recv(s, 1)[0]
            self._recv(s, alen + 2)
            t["attempts"].append({"reply_code": head[1],
                                  "outcome": "established" if head[1] == 0 else "refused"})
            return t
        creds = None
        if self.user and not self.retry:
            creds = base64.b64encode(("%s:%s" % (self.user, self.password)).encode()).decode()
        while True:
            req = "CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n" % (target, port, target, port)
            if creds:
                req += "Proxy-Authorization: Basic %s\r\n" % creds
            s.sock.sendall((req + "\r\n").encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += self._recv(s, 1)
            code = int(head.split(b" ", 2)[1])
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            outcome = ("established" if code // 100 == 2 else
                       "auth_failed" if code == 407 else "refused")
            t["attempts"].append({"reply_code": code, "outcome": outcome})
            if code != 407 or creds or not self.user or not length:
                return t
            self._recv(s, int(length.group(1)))
            creds = base64.b64encode(("%s:%s" % (self.user, self.password)).encode()).decode()


def tls_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = True
    return ctx


class Session:
    """One recorded TCP connection to the lab servers."""

    def __init__(self, recorder, proto, port, implicit_tls=False, note="",
                 host=HOST, source=None, tlsctx=None, proxy=None):
        """host: the server address (default 127.0.0.1); source: bind the
        client to this local address first (e.g. 127.0.0.10, so that dovecot
        does not treat the connection as local, see docs/lab.md); tlsctx: an
        ssl.SSLContext instead of the lab's default one; proxy: a Proxy to
        go through (its handshake is in the truth's "tunnel", not in the
        transcript; a refused one raises TunnelRefused after recording it)."""
        self.rec = recorder
        self.sni = "mx.lab.test"    # the server name sent (RFC 6066 §3); None: no SNI
        self.proto = proto
        self.port = port
        self.tls = False
        self.buf = b""
        self.closed = False
        self.tlsctx = tlsctx or recorder.tlsctx
        self.info = {"proto": proto, "server_port": port,
                     "tls": "implicit" if implicit_tls else "none",
                     "note": note, "transcript": []}
        if host != HOST:
            self.info["server_address"] = host
        if source is not None:
            self.info["client_address"] = source
        recorder.sessions.append(self.info)
        if proxy is not None:
            self.info["server_port"] = proxy.port
            self.sock = socket.create_connection((HOST, proxy.port), timeout=TIMEOUT)
            self.info["tunnel"] = proxy.handshake(self, host, port)
            if self.info["tunnel"]["attempts"][-1]["outcome"] != "established":
                self.close()
                raise TunnelRefused(self.info["tunnel"])
        else:
            self.sock = socket.create_connection(
                (host, port), timeout=TIMEOUT,
                source_address=(source, 0) if source else None)
        if implicit_tls:
            self._wrap()

    # ------------------------------------------------------------ raw I/O
    def _wrap(self):
        self.sock = self.tlsctx.wrap_socket(self.sock, server_hostname=self.sni)
        self.tls = True
        self.info["tls_version"] = self.sock.version()
        self.info["tls_cipher"] = self.sock.cipher()[0]

    def _record(self, d, data, mask=None):
        e = {"dir": d, "tls": self.tls}
        try:
            e["text"] = data.decode("utf-8")
        except UnicodeDecodeError:
            e["b64"] = base64.b64encode(data).decode("ascii")
        if mask is not None:
            e["norm"] = mask
        self.info["transcript"].append(e)

    def send(self, data, mask=None):
        """Send bytes exactly as given (one write, one transcript entry)."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        self._record("C", data, mask)
        self.sock.sendall(data)

    def line(self, text, mask=None):
        """Send one command line, CRLF appended."""
        self.send(text.encode("utf-8") + b"\r\n", mask)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("server closed connection")
        self.buf += chunk

    def _readline(self):
        while b"\n" not in self.buf:
            self._fill()
        i = self.buf.index(b"\n") + 1
        ln, self.buf = self.buf[:i], self.buf[i:]
        return ln

    def _readn(self, n):
        while len(self.buf) < n:
            self._fill()
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def starttls(self, expect_failure=False):
        """Start TLS on the connection.  With expect_failure, a failed
        handshake is recorded (tls_handshake_error) and returned instead of
        raised; the connection is then closed."""
        self.info["tls"] = "starttls"
        if self.buf:
            # plaintext that arrived after the reply to STARTTLS and before
            # the handshake (an injection); a careful client discards it
            self._record("S", self.buf)
            self.info["transcript"][-1]["injected"] = True
            self.info["discarded_before_tls"] = len(self.buf)
            self.buf = b""
        if not expect_failure:
            self._wrap()
            return None
        try:
            self._wrap()
        except (ssl.SSLError, OSError) as e:
            self.info["tls_handshake_error"] = "%s: %s" % (type(e).__name__,
                                                           getattr(e, "reason", None) or e)
            self.close()
            return e
        raise ProtocolError("TLS handshake succeeded but was expected to fail")

    def close(self):
        if not self.closed:
            try:
                self.sock.close()
            finally:
                self.closed = True

    def expect_close(self):
        """Read until the server closes (bounded by the socket timeout)."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.buf += chunk
        except (OSError, ssl.SSLError):
            pass
        if self.buf:
            self._record("S", self.buf)
            self.buf = b""
        self.close()

    # --------------------------------------------------------------- SMTP
    def smtp_reply(self, mask=None):
        """Read one complete SMTP reply (RFC 5321 §4.2); returns (code, raw)."""
        raw = b""
        while True:
            ln = self._readline()
            raw += ln
            if len(ln) < 4 or ln[3:4] != b"-":
                break
        self._record("S", raw, mask)
        return int(raw[:3]), raw.decode("utf-8", "replace")

    def smtp(self, cmd, mask=None, reply_mask=None):
        self.line(cmd, mask)
        return self.smtp_reply(reply_mask)

    def smtp_replies(self, n):
        return [self.smtp_reply() for _ in range(n)]

    def smtp_data(self, msg):
        """Send a message body dot-stuffed and terminated (RFC 5321 §4.5.2)."""
        self.rec.sent_in(msg, self.info, self.tls)
        self.send(dot_stuff(msg) + b".\r\n")
        return self.smtp_reply()

    def smtp_auth_plain(self, user, pw, initial=True):
        tok = base64.b64encode(b"\0" + user.encode() + b"\0" + pw.encode()).decode()
        if initial:
            return self.smtp("AUTH PLAIN " + tok)
        self.smtp("AUTH PLAIN")
        return self.smtp(tok)

    def smtp_auth_login(self, user, pw):
        self.smtp("AUTH LOGIN")
        self.smtp(base64.b64encode(user.encode()).decode())
        return self.smtp(base64.b64encode(pw.encode()).decode())

    def smtp_auth_cram(self, user, pw):
        code, raw = self.smtp("AUTH CRAM-MD5", reply_mask="334 <CRAM-MD5 CHALLENGE>\r\n")
        chal = base64.b64decode(raw[4:].strip())
        dig = hmac.new(pw.encode(), chal, hashlib.md5).hexdigest()
        resp = base64.b64encode(("%s %s" % (user, dig)).encode()).decode()
        return self.smtp(resp, mask="<CRAM-MD5 RESPONSE for %s>\r\n" % user)

    # --------------------------------------------------------------- POP3
    def pop_line(self, mask=None):
        ln = self._readline()
        self._record("S", ln, mask)
        return ln.decode("utf-8", "replace")

    def pop(self, cmd, multi=False, mask=None, reply_mask=None):
        """Send a POP3 command; read a single-line or multi-line reply
        (RFC 1939 §3).  Returns the raw reply text."""
        self.line(cmd, mask)
        if not multi:
            return self.pop_line(reply_mask)
        first = self._readline()
        raw = first
        if first.startswith(b"+OK"):
            while True:
                ln = self._readline()
                raw += ln
                if ln == b".\r\n":
                    break
        self._record("S", raw, reply_mask)
        return raw.decode("utf-8", "replace")

    # --------------------------------------------------------------- IMAP
    def imap_response(self, mask=None):
        """Read one IMAP response line with any literals it carries
        (RFC 3501 §4.3); one transcript entry."""
        raw = b""
        while True:
            ln = self._readline()
            raw += ln
            m = re.search(rb"\{(\d+)\+?\}\r\n$", ln)
            if not m:
                break
            raw += self._readn(int(m.group(1)))
        self._record("S", raw, mask)
        return raw.decode("utf-8", "replace")

    def imap_until(self, tag):
        """Read responses until the tagged completion for tag."""
        out = []
        while True:
            r = self.imap_response()
            out.append(r)
            if r.startswith(tag + " "):
                return out

    def imap(self, tag, cmd, mask=None):
        self.line("%s %s" % (tag, cmd), mask)
        return self.imap_until(tag)


def dot_stuff(msg):
    """RFC 5321 §4.5.2 transparency; msg must end with CRLF."""
    if not msg.endswith(b"\r\n"):
        msg += b"\r\n"
    out = []
    for ln in msg.split(b"\r\n")[:-1]:
        if ln.startswith(b"."):
            ln = b"." + ln
        out.append(ln + b"\r\n")
    return b"".join(out)


# ------------------------------------------------------------------ swaks
_SWAKS_PREFIX = {
    "<- ": ("S", False), "<**": ("S", False),
    "<~ ": ("S", True), "<~*": ("S", True),
    " ->": ("C", False), "**>": ("C", False),
    " ~>": ("C", True), "*~>": ("C", True),
}


def run_swaks(recorder, args, note="", port=25, implicit_tls=False, server=HOST):
    """Run swaks against the lab and turn its transcript into a session.

    swaks prints every line it sends and receives with a prefix that says the
    direction and whether TLS was on.  Server lines of one reply are grouped
    into one entry; client lines are one entry each (swaks writes them so,
    except DATA and --pipeline, where grouping is by what swaks printed)."""
    info = {"proto": "smtp", "server_port": port,
            "tls": "implicit" if implicit_tls else "none",
            "note": note, "client": "swaks", "transcript": []}
    if server != HOST:
        info["server_address"] = server
    recorder.sessions.append(info)
    cmd = ["swaks", "--server", server, "--port", str(port),
           "--ehlo", "client.lab.test", "--timeout", "20",
           "--tls-ca-path", recorder.cafile, "--tls-verify"] + args
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=60)
    out = r.stdout.decode("utf-8", "surrogateescape")
    info["swaks_args"] = args
    info["swaks_exit"] = r.returncode
    # swaks exits 1 (bad arguments), 3 (unknown transport) or 10 (a Perl
    # module missing, e.g. Net::SSLeay for --tls) before any traffic: the
    # scenario did not happen, and its capture would be empty.
    if r.returncode in (1, 3, 10):
        raise RuntimeError("swaks could not run (exit %d): %s"
                           % (r.returncode, r.stderr.decode("utf-8", "replace").strip()))
    cur_s = None
    for ln in out.split("\n"):
        if ln.endswith("\r"):
            ln = ln[:-1]
        # informational: "=== TLS started with cipher TLSv1.3:TLS_AES_256_GCM_SHA384:256"
        m = re.match(r"=== TLS started with cipher ([^:]+):([^:]+):", ln)
        if m:
            info["tls_version"] = m.group(1)
            info["tls_cipher"] = m.group(2)
        key = ln[:3]
        if key not in _SWAKS_PREFIX:
            continue
        d, tls = _SWAKS_PREFIX[key]
        text = ln[4:] + "\r\n"
        if tls and info["tls"] == "none":
            info["tls"] = "starttls"
        if d == "S":
            if cur_s is not None and cur_s["tls"] == tls:
                cur_s["text"] += text
            else:
                cur_s = {"dir": "S", "tls": tls, "text": text}
                info["transcript"].append(cur_s)
            if len(text) < 6 or text[3] != "-":
                cur_s = None
        else:
            cur_s = None
            info["transcript"].append({"dir": "C", "tls": tls, "text": text})
    return r.returncode, out
