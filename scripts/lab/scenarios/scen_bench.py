"""The content-heavy benchmark workload (issue 28): messages of 10 KB to 5 MB
with base64 and quoted-printable parts, through the real lab servers.

bench/content is not one of pcaps/'s captures: scripts/bench.py records it
into its own work directory (LAB_PCAPS=DIR run-all.sh bench/content), and
run-all.sh leaves bench/ out when it runs every scenario.  The capture is
about 150 MB; it is never committed.

The messages are generated from a seeded PRNG (random.Random(SEED)): the
same bytes on every run (truth notes: "messages sha256 ...").  Their sizes
are spread evenly on a log scale from MIN_SIZE to MAX_SIZE, with a little
seeded jitter, until they add up to TOTAL bytes.  Kinds:

- mixed: multipart/mixed, a quoted-printable text part (UTF-8 text with
  non-ASCII words and long lines, so soft breaks and =XX escapes), sometimes
  an HTML alternative and a QP text attachment, and one to three base64
  attachments of random bytes behind a PDF, ZIP or PNG magic (or none);
- qp: multipart/alternative, text and HTML, both quoted-printable;
- 7bit, 8bit: one text/plain part (US-ASCII, UTF-8 sent with BODY=8BITMIME);
- base64: one application/pdf part, base64, the whole body.

carol submits them on 587 with AUTH PLAIN, one or two per session, a quarter
of the sessions after STARTTLS; postfix delivers each to dovecot over LMTP
(127.0.0.1:24, in clear, one connection a delivery); alice reads hers by
IMAP (FETCH n BODY[]), bob his by POP3 (RETR n), three at most per session,
a quarter of those sessions in TLS (STARTTLS/STLS or 993/995).  Every
message so is in the capture three times: submission, LMTP, retrieval.  The
lab's lo has MTU 1500 and no offloads, so packets average about 1 KB.

Each retrieved message is checked against what was sent (the trace fields
postfix and dovecot add taken off); the transcripts keep the sizes and
SHA-256 of the large entries instead of their text (ELIDE).
"""
import base64
import hashlib
import math
import quopri
import random
import re

from driver import scenario, strip_trace
import messages

SEED = 28
MIN_SIZE = 10_000
MAX_SIZE = 5_000_000
TOTAL = 48_000_000          # bytes of all messages: about 150 MB of capture
SIZE_LIMIT = 20 * 1024 * 1024
SENDER = "carol@lab.test"
READERS = {"alice": ("imap", "alicepw"), "bob": ("pop3", "bobpw")}
PER_SESSION = 3             # messages a retrieval session fetches at most
TLS_SHARE = 0.25
CAPTURE_BUFFER_KIB = 256 * 1024     # tcpdump -B: the whole capture fits; 2 MiB dropped a fifth
ELIDE = 4096                # transcript entries longer than this keep size and sha256 only

WORDS = ("the report for this quarter shows that our lab mail servers carried more "
         "traffic than planned and the attached files hold every figure we measured "
         "with notes on each site budget review meeting schedule draft final version "
         "please find see below thanks regards team project data results summary "
         "analysis invoice order delivery").split()
WORDS_8BIT = ("Grüße café naïve résumé Zoë Straße señor ångström déjà vu über "
              "Ελληνικά καλημέρα мир привет 日本語 数据 报告 € £ — «quoted» ½").split()
SYMBOLS = ["a=b", "x=1;", "50%", "tab\there", "(see", "page)", "--"]

MAGIC = [("report-%d.pdf", "application/pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"),
         ("archive-%d.zip", "application/zip", b"PK\x03\x04\x14\x00\x00\x00\x08\x00"),
         ("photo-%d.png", "image/png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
         ("data-%d.bin", "application/octet-stream", b"")]


def _sizes(rng):
    """Message sizes: the smallest count whose log-spaced sizes from MIN_SIZE
    to MAX_SIZE add up to TOTAL, each moved by up to 15% (seeded), shuffled."""
    n = 2
    while True:
        r = (MAX_SIZE / MIN_SIZE) ** (1 / (n - 1))
        base = [MIN_SIZE * r ** i for i in range(n)]
        if sum(base) >= TOTAL or n > 10000:
            break
        n += 1
    out = [int(min(MAX_SIZE, max(MIN_SIZE, s * math.exp(rng.uniform(-0.15, 0.15)))))
           for s in base]
    rng.shuffle(out)
    return out


def _text(rng, nbytes, width=None, ascii_only=False):
    """About nbytes of text (UTF-8 unless ascii_only), LF line ends: lines of
    at most width characters, or else paragraphs of long lines (200 to 1500
    characters) that a QP encoder must soft-break (RFC 2045 §6.7 rule 5)."""
    vocab = WORDS + SYMBOLS + ([] if ascii_only else WORDS_8BIT)
    words = rng.choices(vocab, k=nbytes // 5 + 16)
    out, line, size, i = [], [], 0, 0
    limit = width or rng.randint(200, 1500)
    cur = 0
    while size < nbytes:
        w = words[i % len(words)]
        i += 1
        if line and cur + 1 + len(w) > limit:
            out.append(" ".join(line))
            size += cur + 1
            line, cur = [], 0
            if not width:
                out.append("")
                limit = rng.randint(200, 1500)
        line.append(w)
        cur += len(w) + (1 if cur else 0)
    if line:
        out.append(" ".join(line))
    return "\n".join(out) + "\n"


def _qp(text):
    """Quoted-printable (RFC 2045 §6.7) of a text, LF line ends."""
    return quopri.encodestring(text.encode("utf-8")).decode("ascii")


def _b64(data):
    """Base64 in lines of 76 characters (RFC 2045 §6.8), LF line ends."""
    return base64.encodebytes(data).decode("ascii")


def _binary(rng, n, magic):
    return magic + rng.randbytes(max(0, n - len(magic)))


def _b64_budget(encoded):
    """Decoded bytes whose base64 in 76-character lines takes about `encoded` bytes."""
    return max(64, int(encoded * 76 / 78 * 3 / 4))


def _head(i, rcpt, subject, ctype, extra=""):
    return (messages.headers("Carol <%s>" % SENDER, "%s <%s@lab.test>" % (rcpt.title(), rcpt),
                             "Bench content %d: %s" % (i, subject),
                             "bench.%d@client.lab.test" % i) +
            "MIME-Version: 1.0\nContent-Type: %s\n%s\n" % (ctype, extra))


def _part(boundary, ctype, cte, body, filename=None):
    disp = 'Content-Disposition: attachment; filename="%s"\n' % filename if filename else ""
    name = '; name="%s"' % filename if filename else ""
    return "--%s\nContent-Type: %s%s\nContent-Transfer-Encoding: %s\n%s\n%s" % (
        boundary, ctype, name, cte, disp, body)


def _mixed(rng, i, rcpt, size):
    b = "=_mxbench_%d_mixed" % i
    text_share = rng.uniform(0.05, 0.3)
    parts = []
    text = _text(rng, int(size * text_share / 1.15))
    if rng.random() < 0.3:
        a = "=_mxbench_%d_alt" % i
        html = "<html><body><p>" + _text(rng, int(size * 0.05)).replace("\n\n", "</p>\n<p>") + "</p></body></html>\n"
        parts.append("--%s\nContent-Type: multipart/alternative; boundary=\"%s\"\n\n" % (b, a) +
                     _part(a, "text/plain; charset=utf-8", "quoted-printable", _qp(text)) +
                     _part(a, "text/html; charset=utf-8", "quoted-printable", _qp(html)) +
                     "--%s--\n" % a)
    else:
        parts.append(_part(b, "text/plain; charset=utf-8", "quoted-printable", _qp(text)))
    if rng.random() < 0.2:
        notes = _text(rng, int(size * 0.05))
        parts.append(_part(b, "text/plain; charset=utf-8", "quoted-printable", _qp(notes),
                           "notes-%d.txt" % i))
    left = max(1000, size - sum(len(p) for p in parts) - 600)
    k = rng.randint(1, 3)
    cuts = sorted(rng.random() for _ in range(k - 1))
    shares = [b2 - a2 for a2, b2 in zip([0.0] + cuts, cuts + [1.0])]
    for j, share in enumerate(shares, 1):
        name, ctype, magic = rng.choice(MAGIC)
        data = _binary(rng, _b64_budget(left * share), magic)
        parts.append(_part(b, ctype, "base64", _b64(data), name % (i * 10 + j)))
    return (_head(i, rcpt, "files attached", 'multipart/mixed; boundary="%s"' % b) +
            "This is a multi-part message in MIME format.\n" + "".join(parts) + "--%s--\n" % b)


def _alternative(rng, i, rcpt, size):
    b = "=_mxbench_%d_alt" % i
    text = _text(rng, int(size * 0.45 / 1.15))
    html = "<html><body><p>" + _text(rng, int(size * 0.45 / 1.15)).replace("\n\n", "</p>\n<p>") + "</p></body></html>\n"
    return (_head(i, rcpt, "quoted-printable text", 'multipart/alternative; boundary="%s"' % b) +
            _part(b, "text/plain; charset=utf-8", "quoted-printable", _qp(text)) +
            _part(b, "text/html; charset=utf-8", "quoted-printable", _qp(html)) +
            "--%s--\n" % b)


def _single(rng, i, rcpt, size, kind):
    if kind == "7bit":
        return _head(i, rcpt, "plain text", "text/plain; charset=us-ascii",
                     "Content-Transfer-Encoding: 7bit\n") + _text(rng, size - 400, 76, True)
    if kind == "8bit":
        return _head(i, rcpt, "8-bit text", "text/plain; charset=utf-8",
                     "Content-Transfer-Encoding: 8bit\n") + _text(rng, size - 400, 76)
    name = "scan-%d.pdf" % i
    data = _binary(rng, _b64_budget(size - 500), MAGIC[0][2])
    return _head(i, rcpt, "one base64 body", 'application/pdf; name="%s"' % name,
                 'Content-Transfer-Encoding: base64\nContent-Disposition: attachment; filename="%s"\n'
                 % name) + _b64(data)


def generate(seed=SEED):
    """[(index, recipient user, kind, bytes with CRLF line ends)], the same on every run."""
    rng = random.Random(seed)
    sizes = _sizes(rng)
    fixed = ["7bit", "7bit", "8bit", "8bit", "base64", "base64", "base64"] + ["qp"] * 6
    kinds = (fixed + ["mixed"] * len(sizes))[:len(sizes)]
    rng.shuffle(kinds)
    out = []
    for i, (size, kind) in enumerate(zip(sizes, kinds), 1):
        rcpt = rng.choice(sorted(READERS))
        if kind == "mixed":
            text = _mixed(rng, i, rcpt, size)
        elif kind == "qp":
            text = _alternative(rng, i, rcpt, size)
        else:
            text = _single(rng, i, rcpt, size, kind)
        out.append((i, rcpt, kind, messages.crlf(text)))
    return out


def _tls_plan(rng, n):
    """n flags, a TLS_SHARE of them true (rounded), in a seeded order."""
    k = round(n * TLS_SHARE)
    flags = [True] * k + [False] * (n - k)
    rng.shuffle(flags)
    return flags


def _elide(info):
    """Large transcript entries keep their size and SHA-256, not their bytes."""
    for e in info["transcript"]:
        for key in ("text", "b64"):
            if key in e and len(e[key]) > ELIDE:
                raw = e.pop(key)
                raw = raw.encode("utf-8") if key == "text" else base64.b64decode(raw)
                e["bytes"] = len(raw)
                e["sha256"] = hashlib.sha256(raw).hexdigest()


def _expect(code, want, what):
    if code != want:
        raise RuntimeError("%s: %d, not %d" % (what, code, want))


def _submit(ctx, batch, tls, note):
    """One submission session on 587: EHLO, [STARTTLS, EHLO,] AUTH PLAIN, a
    transaction per message of batch, QUIT."""
    s = ctx.smtp(587, note=note)
    s.smtp_reply()
    s.smtp("EHLO client.lab.test")
    if tls:
        _expect(s.smtp("STARTTLS")[0], 220, "STARTTLS")
        s.starttls()
        s.smtp("EHLO client.lab.test")
    _expect(s.smtp_auth_plain("carol", "carolpw")[0], 235, "AUTH PLAIN")
    for i, rcpt, kind, data in batch:
        body = " BODY=8BITMIME" if kind == "8bit" else ""
        _expect(s.smtp("MAIL FROM:<%s> SIZE=%d%s" % (SENDER, len(data), body))[0], 250, "MAIL")
        _expect(s.smtp("RCPT TO:<%s@lab.test>" % rcpt)[0], 250, "RCPT")
        _expect(s.smtp("DATA")[0], 354, "DATA")
        _expect(s.smtp_data(data)[0], 250, "end of data")
    s.smtp("QUIT")
    s.close()
    _elide(s.info)


def _recv_until(s, buf, done):
    """Read from s's socket into bytearray buf until done(buf) gives an end
    offset; the bytes past it go back to s.buf.  Bounded by the socket
    timeout (client.TIMEOUT) on each read."""
    while True:
        end = done(buf)
        if end is not None:
            s.buf = bytes(buf[end:])
            del buf[end:]
            return buf
        chunk = s.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("server closed the connection")
        buf += chunk


def _record_big(s, raw):
    s.info["transcript"].append({"dir": "S", "tls": s.tls, "bytes": len(raw),
                                 "sha256": hashlib.sha256(raw).hexdigest()})


def _pop_retr(s, n):
    """RETR n (RFC 1939 §7): the message with its dot-stuffing undone."""
    s.line("RETR %d" % n)
    buf = bytearray(s.buf)
    seen = [0]          # bytes already searched for the end

    def done(b):
        if b.startswith(b"-ERR") and b"\r\n" in b:
            raise RuntimeError("RETR %d: %s" % (n, bytes(b[:b.index(b"\r\n")])))
        i = b.find(b"\r\n.\r\n", max(0, seen[0] - 4))
        seen[0] = len(b)
        return None if i < 0 else i + 5
    raw = bytes(_recv_until(s, buf, done))
    _record_big(s, raw)
    body = raw[raw.index(b"\r\n") + 2:-3]
    body = re.sub(rb"(^|\r\n)\.\.", rb"\1.", body)
    return body


def _imap_fetch(s, tag, n):
    """FETCH n BODY[] (RFC 3501 §6.4.5): the literal's bytes."""
    s.line("%s FETCH %d BODY[]" % (tag, n))
    buf = bytearray(s.buf)
    lit = {}
    end_rx = re.compile(rb"(?:^|\r\n)%s (OK|NO|BAD)[^\r\n]*\r\n" % tag.encode())

    def done(b):
        if "start" not in lit:
            m = re.search(rb"\{(\d+)\}\r\n", b)
            if not m:
                return None
            lit["start"], lit["len"] = m.end(), int(m.group(1))
        tail = lit["start"] + lit["len"]
        if len(b) < tail:
            return None
        m = end_rx.search(b, tail)
        if not m:
            return None
        if m.group(1) != b"OK":
            raise RuntimeError("FETCH %d: %s" % (n, bytes(b[m.start():m.end()])))
        return m.end()
    raw = bytes(_recv_until(s, buf, done))
    _record_big(s, raw)
    return raw[lit["start"]:lit["start"] + lit["len"]]


def _retrieve(ctx, user, count, tls_kind, first, note):
    """One retrieval session of user's messages first..first+count-1, by
    IMAP or POP3; tls_kind None, "starttls" or "implicit"."""
    proto, pw = READERS[user]
    got = []
    if proto == "imap":
        s = ctx.imap(993 if tls_kind == "implicit" else 143, implicit_tls=tls_kind == "implicit",
                     note=note)
        s.imap_response()
        if tls_kind == "starttls":
            s.imap("b0", "STARTTLS")
            s.starttls()
        s.imap("b1", "LOGIN %s %s" % (user, pw))
        s.imap("b2", "SELECT INBOX")
        for k in range(count):
            got.append(_imap_fetch(s, "c%d" % k, first + k))
        s.imap("b3", "LOGOUT")
    else:
        s = ctx.pop3(995 if tls_kind == "implicit" else 110, implicit_tls=tls_kind == "implicit",
                     note=note)
        s.pop_line()
        if tls_kind == "starttls":
            s.pop("STLS")
            s.starttls()
        s.pop("USER %s" % user)
        if not s.pop("PASS %s" % pw).startswith("+OK"):
            raise RuntimeError("POP3 login of %s refused" % user)
        for k in range(count):
            got.append(_pop_retr(s, first + k))
        s.pop("QUIT")
    s.close()
    _elide(s.info)
    return got


@scenario("bench/content",
          "the content-heavy benchmark workload (issue 28): %d MB of seeded messages of 10 KB "
          "to 5 MB with base64 and quoted-printable parts, submitted on 587 with AUTH (a quarter "
          "after STARTTLS), delivered over LMTP, read back by IMAP and POP3 (a quarter in TLS)"
          % (TOTAL // 1_000_000),
          path="bench/content.pcap", lmtp=True, size_limit=SIZE_LIMIT,
          capture_buffer_kib=CAPTURE_BUFFER_KIB)
def content(ctx):
    msgs = generate()
    rng = random.Random(SEED + 1)       # the sessions' plan, apart from the messages'
    all_sha = hashlib.sha256()
    for i, rcpt, kind, data in msgs:
        ctx.message("msg%03d" % i, data)
        all_sha.update(hashlib.sha256(data).digest())
    ctx.note("messages sha256 %s: %d messages, %d bytes, seed %d" % (
        all_sha.hexdigest(), len(msgs), sum(len(m[3]) for m in msgs), SEED))
    # submission: one or two messages a session
    batches, i = [], 0
    while i < len(msgs):
        k = rng.choice((1, 1, 2))
        batches.append(msgs[i:i + k])
        i += k
    for n, (batch, tls) in enumerate(zip(batches, _tls_plan(rng, len(batches))), 1):
        _submit(ctx, batch, tls, "submission %d of %d%s: %d message(s)"
                % (n, len(batches), " after STARTTLS" if tls else "", len(batch)))
    sent = {}
    for i, rcpt, kind, data in msgs:
        sent.setdefault(rcpt, {})[hashlib.sha256(data).hexdigest()] = i
    for user in sorted(sent):
        have = len(ctx.lab.wait_delivered(user, len(sent[user]), timeout=180.0))
        if have != len(sent[user]):
            raise RuntimeError("%s: %d of %d messages delivered" % (user, have, len(sent[user])))
    # retrieval: PER_SESSION messages at most a session
    plans = [(user, first, min(PER_SESSION, len(sent[user]) - first + 1))
             for user in sorted(sent) for first in range(1, len(sent[user]) + 1, PER_SESSION)]
    tls = _tls_plan(rng, len(plans))
    seen = 0
    for n, ((user, first, count), t) in enumerate(zip(plans, tls), 1):
        kind = rng.choice(("starttls", "implicit")) if t else None
        got = _retrieve(ctx, user, count, kind, first, "retrieval %d of %d: %s's %d-%d by %s%s" % (
            n, len(plans), user, first, first + count - 1, READERS[user][0],
            " in TLS (%s)" % kind if kind else ""))
        for data in got:
            h = hashlib.sha256(strip_trace(data)).hexdigest()
            if h not in sent[user]:
                raise RuntimeError("%s fetched a message that was not sent as it is" % user)
            seen += 1
    ctx.note("retrieved %d messages, each the bytes sent (trace fields aside)" % seen)
