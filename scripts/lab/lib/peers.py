"""Deliberately misbehaving peers: small scripted servers and a middlebox.

postfix and dovecot never do what these do; they exist only so that the
audit findings have a lab capture.  Each runs in threads of the scenario's
own process, inside the scenario's network namespace, on a loopback address
of its own; every socket has a timeout and every loop a bound, and stop()
closes the listener and waits for the connection threads (bounded).  Each
scenario that uses one says so in its summary; docs/lab.md lists them.

- StarttlsStripProxy: a TCP relay in front of the lab's submission server
  that, for clients "behind" it (by source address), overwrites STARTTLS in
  the EHLO reply with XXXXXXXA, as Cisco PIX/ASA "ESMTP inspection" does.
  Other clients pass through untouched.  In mode "remove" it deletes the
  line instead (the capability simply missing).
- InjectingSmtpServer: an SMTP server that answers STARTTLS with 220 and,
  in the same segment, a cleartext reply before the TLS handshake (the
  server side of the STARTTLS command-injection pattern).
- LoginDisabledIgnoredImap: an IMAP server that advertises LOGINDISABLED
  and accepts LOGIN in clear all the same.
"""
import re
import select
import socket
import ssl
import threading
import time

TIMEOUT = 20.0
MAX_CONNECTIONS = 8         # per server, for the life of one scenario


class _Server:
    """Listening socket, accept loop and one thread per connection."""

    def __init__(self, address, port):
        self.address = address
        self.port = port
        self.threads = []
        self.errors = []
        self.lsock = None
        self.acceptor = None
        self.stopping = False

    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.address, self.port))
        s.listen(8)
        s.settimeout(0.2)
        self.lsock = s
        self.acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self.acceptor.start()
        return self

    def _accept_loop(self):
        n = 0
        end = time.monotonic() + 600          # bounded: one scenario's life
        while not self.stopping and n < MAX_CONNECTIONS and time.monotonic() < end:
            try:
                conn, peer = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            n += 1
            conn.settimeout(TIMEOUT)
            t = threading.Thread(target=self._run, args=(conn, peer), daemon=True)
            t.start()
            self.threads.append(t)

    def _run(self, conn, peer):
        try:
            self.handle(conn, peer)
        except Exception as e:          # recorded; the scenario checks
            self.errors.append("%s: %r" % (type(self).__name__, e))
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def handle(self, conn, peer):
        raise NotImplementedError

    def stop(self):
        self.stopping = True
        if self.lsock is not None:
            self.lsock.close()
        if self.acceptor is not None:
            self.acceptor.join(timeout=5)
        for t in self.threads:
            t.join(timeout=TIMEOUT + 5)
        return self.errors

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def _readline(conn, buf):
    """(line, rest): one CRLF-terminated line from conn, bytes kept in buf."""
    while b"\n" not in buf:
        chunk = conn.recv(4096)
        if not chunk:
            raise EOFError("peer closed")
        buf += chunk
    i = buf.index(b"\n") + 1
    return buf[:i], buf[i:]


def _shut(sock):
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


# ------------------------------------------------------------- middlebox
class StarttlsStripProxy(_Server):
    """A relay on address:port to backend.  For clients whose source
    address is in inspect_from, every server line "250-STARTTLS" or
    "250 STARTTLS" reaches the client as "250-XXXXXXXA" ("250 XXXXXXXA"):
    what Cisco PIX/ASA ESMTP inspection writes over the keyword, so the
    client does not see STARTTLS and carries on in clear (mode "remove":
    the line is deleted).  Other clients' bytes pass through unchanged, TLS
    included.  The proxy connects to the
    backend from backend_source (an address the capture leaves out)."""

    def __init__(self, address, port, backend, backend_source, inspect_from,
                 mode="mangle"):
        super().__init__(address, port)
        if mode not in ("mangle", "remove"):
            raise ValueError(mode)
        self.mode = mode
        self.backend = backend
        self.backend_source = backend_source
        self.inspect_from = set(inspect_from)
        self.rewritten = 0

    def handle(self, conn, peer):
        up = socket.create_connection(self.backend, timeout=TIMEOUT,
                                      source_address=(self.backend_source, 0))
        inspect = peer[0] in self.inspect_from
        pending = b""           # server bytes held until a full line
        open_c2s = open_s2c = True
        end = time.monotonic() + 120
        try:
            while (open_c2s or open_s2c) and time.monotonic() < end:
                rl = [x for x, o in ((conn, open_c2s), (up, open_s2c)) if o]
                r, _, _ = select.select(rl, [], [], 1.0)
                for src in r:
                    try:
                        data = src.recv(65536)
                    except ConnectionResetError:
                        data = b""      # a reset ends that direction too
                    if src is conn:
                        if not data:
                            open_c2s = False
                            _shut(up)
                        else:
                            up.sendall(data)
                    else:
                        if not data:
                            open_s2c = False
                            if pending:
                                conn.sendall(pending)
                                pending = b""
                            _shut(conn)
                        elif not inspect:
                            conn.sendall(data)
                        else:
                            pending += data
                            cut = pending.rfind(b"\n") + 1
                            if cut:
                                out, pending = self._mangle(pending[:cut]), pending[cut:]
                                conn.sendall(out)
        finally:
            up.close()

    def _mangle(self, lines):
        if self.mode == "remove":
            # drop a "250-STARTTLS" line (postfix never lists it last)
            out, n = re.subn(rb"(?m)^250-STARTTLS\r?\n", b"", lines)
            self.rewritten += n
            return out

        def rep(m):
            self.rewritten += 1
            return m.group(1) + b"XXXXXXXA"
        return re.sub(rb"(?m)^(250[- ])STARTTLS(?=\r?$)", rep, lines)


# ---------------------------------------------------------- SMTP server
class InjectingSmtpServer(_Server):
    """A minimal ESMTP server.  Its reply to STARTTLS is "220 2.0.0 Ready to
    start TLS" followed, in the same write (one TCP segment), by a second
    reply in clear, before the TLS handshake: a fake EHLO reply that a
    vulnerable client would take as the server's first reply inside TLS.
    Then the handshake (the lab's certificate), and inside TLS it answers
    EHLO, NOOP and QUIT properly."""

    BANNER = b"220 mx.lab.test ESMTP mxray-lab scripted peer\r\n"
    INJECTED = b"250-mx.lab.test\r\n250 AUTH PLAIN LOGIN\r\n"

    def __init__(self, address, port, certs):
        super().__init__(address, port)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(certs["crt"], certs["key"])

    def handle(self, conn, peer):
        conn.sendall(self.BANNER)
        buf = b""
        tls = False
        for _ in range(50):                 # bounded dialogue
            try:
                ln, buf = _readline(conn, buf)
            except EOFError:
                return
            verb = ln.split(b" ", 1)[0].strip().upper()
            if verb in (b"EHLO", b"HELO"):
                caps = [b"mx.lab.test", b"PIPELINING", b"8BITMIME"]
                if not tls:
                    caps.append(b"STARTTLS")
                conn.sendall(b"".join(b"250-%s\r\n" % c for c in caps[:-1])
                             + b"250 %s\r\n" % caps[-1])
            elif verb == b"STARTTLS" and not tls:
                if buf:
                    conn.sendall(b"501 5.5.4 Error: pipelined STARTTLS\r\n")
                    return
                conn.sendall(b"220 2.0.0 Ready to start TLS\r\n" + self.INJECTED)
                conn = self.ctx.wrap_socket(conn, server_side=True)
                tls = True
            elif verb == b"NOOP":
                conn.sendall(b"250 2.0.0 Ok\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 2.0.0 Bye\r\n")
                return
            else:
                conn.sendall(b"502 5.5.2 Error: command not recognized\r\n")


# ---------------------------------------------------------- IMAP server
class LoginDisabledIgnoredImap(_Server):
    """A minimal IMAP4rev1 server that advertises LOGINDISABLED (RFC 3501
    §6.2.3: the client MUST NOT send LOGIN) and accepts LOGIN in clear
    anyway, for the lab's users.  Commands: CAPABILITY, NOOP, LOGIN,
    SELECT/EXAMINE (an empty mailbox), LOGOUT; anything else is BAD."""

    CAPS = b"IMAP4rev1 LITERAL+ STARTTLS LOGINDISABLED"

    def __init__(self, address, port, users):
        super().__init__(address, port)
        self.users = users

    def handle(self, conn, peer):
        conn.sendall(b"* OK [CAPABILITY %s] mxray-lab scripted peer ready.\r\n" % self.CAPS)
        buf = b""
        authed = False
        for _ in range(50):                 # bounded dialogue
            try:
                ln, buf = _readline(conn, buf)
            except EOFError:
                return
            parts = ln.rstrip(b"\r\n").split(b" ")
            tag = parts[0]
            cmd = parts[1].upper() if len(parts) > 1 else b""
            args = parts[2:]
            if cmd == b"CAPABILITY":
                conn.sendall(b"* CAPABILITY %s\r\n%s OK CAPABILITY completed.\r\n"
                             % (self.CAPS, tag))
            elif cmd == b"NOOP":
                conn.sendall(b"%s OK NOOP completed.\r\n" % tag)
            elif cmd == b"LOGIN" and len(args) == 2:
                user = args[0].strip(b'"').decode("utf-8", "replace")
                pw = args[1].strip(b'"').decode("utf-8", "replace")
                if self.users.get(user) == pw:
                    authed = True
                    conn.sendall(b"%s OK [CAPABILITY IMAP4rev1 LITERAL+] Logged in.\r\n"
                                 % tag)
                else:
                    conn.sendall(b"%s NO [AUTHENTICATIONFAILED] Authentication "
                                 b"failed.\r\n" % tag)
            elif cmd in (b"SELECT", b"EXAMINE") and authed and args:
                conn.sendall(b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
                             b"* 0 EXISTS\r\n* 0 RECENT\r\n"
                             b"* OK [UIDVALIDITY 1700000000] UIDs valid\r\n"
                             b"* OK [UIDNEXT 1] Predicted next UID\r\n"
                             b"%s OK [%s] %s completed.\r\n"
                             % (tag, b"READ-ONLY" if cmd == b"EXAMINE" else b"READ-WRITE",
                                cmd))
            elif cmd == b"LOGOUT":
                conn.sendall(b"* BYE Logging out\r\n%s OK Logout completed.\r\n" % tag)
                return
            else:
                conn.sendall(b"%s BAD Error in IMAP command.\r\n" % tag)
