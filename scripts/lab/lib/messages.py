"""The lab's test messages, built byte for byte with fixed content.

No randomness: fixed Date, Message-ID and MIME boundaries, so every run
sends the same bytes.  Each function returns bytes with CRLF line ends.
"""
import base64
import hashlib
import quopri

DATE = "Mon, 06 Jan 2025 10:00:00 +0000"


def crlf(text):
    if isinstance(text, str):
        text = text.encode("utf-8")
    return text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def b64lines(data, width=76):
    s = base64.b64encode(data).decode("ascii")
    return "\n".join(s[i:i + width] for i in range(0, len(s), width)) + "\n"


def attachment_bytes(n=3000, seed=b"mxray-lab"):
    """Deterministic pseudo-binary attachment content."""
    out = b""
    h = seed
    while len(out) < n:
        h = hashlib.sha256(h).digest()
        out += h
    return out[:n]


def headers(frm, to, subject, msgid, extra=""):
    return ("From: %s\nTo: %s\nSubject: %s\nDate: %s\nMessage-ID: <%s>\n%s"
            % (frm, to, subject, DATE, msgid, extra))


def simple(frm="Carol <carol@lab.test>", to="Alice <alice@lab.test>",
           subject="Lab test message", msgid="simple.1@client.lab.test",
           body="Hello Alice,\n\nthis is a plain lab message.\n\n-- \nCarol\n"):
    return crlf(headers(frm, to, subject, msgid) +
                "MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n" + body)


def dotted():
    """A body with lines that start with dots (needs dot-stuffing)."""
    body = ("Lines starting with dots follow.\n"
            ".\n"
            "..two dots\n"
            ".single dot then text\n"
            " .space then dot\n"
            "...\n"
            "end.\n")
    return simple(subject="Dot-stuffed body", msgid="dotted.1@client.lab.test", body=body)


def big(size=30000):
    """A message larger than the lab's message_size_limit (20000)."""
    line = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\n"
    body = "This message is over the size limit.\n" + line * (size // len(line) + 1)
    return simple(subject="Too big", msgid="big.1@client.lab.test", body=body)


def utf8_smtputf8():
    """An internationalised message for SMTPUTF8 (RFC 6532 UTF-8 headers)."""
    return crlf(headers("Zoë <zoë@lab.test>", "Alice <alice@lab.test>",
                        "Grüße aus dem Labor ✉", "utf8.1@client.lab.test") +
                "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
                "Content-Transfer-Encoding: 8bit\n\n"
                "Grüße, Zoë! Ünïcödé in the body: 日本語, Ελληνικά.\n")


def attach(name="report.bin", n=3000):
    """multipart/mixed with a text part and a base64 attachment."""
    data = attachment_bytes(n)
    b = "=_mxlab_mixed_1"
    text = (headers("Carol <carol@lab.test>", "Alice <alice@lab.test>",
                    "Report attached", "attach.1@client.lab.test") +
            "MIME-Version: 1.0\n"
            'Content-Type: multipart/mixed; boundary="%s"\n\n'
            "This is a multi-part message in MIME format.\n"
            "--%s\n"
            "Content-Type: text/plain; charset=us-ascii\n\n"
            "The report is attached.\n"
            "--%s\n"
            'Content-Type: application/octet-stream; name="%s"\n'
            "Content-Transfer-Encoding: base64\n"
            'Content-Disposition: attachment; filename="%s"\n\n'
            % (b, b, b, name, name) + b64lines(data) +
            "--%s--\n" % b)
    return crlf(text)


def mime_variety():
    """A message with nested multiparts, base64 and quoted-printable parts,
    RFC 2047 subject, RFC 2231 filenames in several charsets, a forwarded
    message/rfc822 and 8-bit text."""
    outer, alt, rel = "=_mxlab_outer", "=_mxlab_alt", "=_mxlab_fwd"
    att1 = attachment_bytes(2048, b"attachment-1")
    att2 = "Ünïcödé text attachment, UTF-8.\n".encode("utf-8")
    att3 = "Tableau résumé, ISO-8859-1.\n".encode("iso-8859-1")
    att4 = "中文附件内容\n".encode("gb2312")
    att5 = "日本語の添付ファイル\n".encode("shift_jis")
    qp = quopri.encodestring("Grüße aus dem Labor — quoted-printable, "
                             "with a long line that must be soft-wrapped by the "
                             "encoder because it is longer than 76 chars.\n"
                             .encode("utf-8")).decode("ascii")
    fwd = (headers("Dave <dave@lab.test>", "Carol <carol@lab.test>",
                   "Original message", "orig.1@client.lab.test") +
           "MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n"
           "This is the forwarded original.\n")
    parts = []
    parts.append("--%s\n" % outer +
                 'Content-Type: multipart/alternative; boundary="%s"\n\n' % alt +
                 "--%s\n" % alt +
                 "Content-Type: text/plain; charset=utf-8\n"
                 "Content-Transfer-Encoding: quoted-printable\n\n" + qp +
                 "--%s\n" % alt +
                 "Content-Type: text/html; charset=utf-8\n"
                 "Content-Transfer-Encoding: base64\n\n" +
                 b64lines("<html><body><p>Grüße aus dem Labor</p></body></html>\n"
                          .encode("utf-8")) +
                 "--%s--\n" % alt)
    parts.append("--%s\n" % outer +
                 'Content-Type: application/octet-stream; name="data.bin"\n'
                 "Content-Transfer-Encoding: base64\n"
                 'Content-Disposition: attachment; filename="data.bin"\n\n' +
                 b64lines(att1))
    parts.append("--%s\n" % outer +
                 "Content-Type: text/plain; charset=utf-8\n"
                 "Content-Transfer-Encoding: base64\n"
                 "Content-Disposition: attachment;\n"
                 " filename*=UTF-8''%C3%9Cbersicht%20%E2%9C%93.txt\n\n" +
                 b64lines(att2))
    parts.append("--%s\n" % outer +
                 "Content-Type: text/plain; charset=iso-8859-1\n"
                 "Content-Transfer-Encoding: quoted-printable\n"
                 "Content-Disposition: attachment;\n"
                 " filename*=iso-8859-1'fr'r%E9sum%E9.txt\n\n" +
                 quopri.encodestring(att3).decode("ascii"))
    parts.append("--%s\n" % outer +
                 "Content-Type: text/plain; charset=gb2312\n"
                 "Content-Transfer-Encoding: base64\n"
                 "Content-Disposition: attachment;\n"
                 " filename*0*=gb2312''%D6%D0%CE%C4;\n"
                 " filename*1=.txt\n\n" +
                 b64lines(att4))
    parts.append("--%s\n" % outer +
                 "Content-Type: text/plain; charset=shift_jis\n"
                 "Content-Transfer-Encoding: base64\n"
                 'Content-Disposition: attachment; filename="=?shift_jis?B?%s?="\n\n'
                 % base64.b64encode("日本語.txt".encode("shift_jis")).decode() +
                 b64lines(att5))
    parts.append("--%s\n" % outer +
                 "Content-Type: message/rfc822\n"
                 "Content-Disposition: inline\n\n" + fwd)
    head = headers("Carol <carol@lab.test>", "Alice <alice@lab.test>",
                   encoded_subject(),
                   "mime.1@client.lab.test")
    text = (head + "MIME-Version: 1.0\n"
            'Content-Type: multipart/mixed; boundary="%s"\n\n' % outer +
            "This is a multi-part message in MIME format.\n" +
            "".join(parts) + "--%s--\n" % outer)
    return crlf(text)


def _ew(charset, text):
    return "=?%s?B?%s?=" % (charset, base64.b64encode(text.encode(charset)).decode())


def encoded_subject():
    """RFC 2047 subject mixing UTF-8, ISO-8859-1 (Q), GB2312 and Shift_JIS."""
    return " ".join([_ew("UTF-8", "Grüße ✉"),
                     "=?ISO-8859-1?Q?r=E9sum=E9?=",
                     _ew("GB2312", "中文"),
                     _ew("Shift_JIS", "日本語")])


def eightbit_latin1():
    """An 8-bit ISO-8859-1 body (not valid UTF-8 on the wire)."""
    h = headers("Carol <carol@lab.test>", "Alice <alice@lab.test>",
                "=?ISO-8859-1?Q?Caf=E9?=", "latin1.1@client.lab.test")
    h += ("MIME-Version: 1.0\nContent-Type: text/plain; charset=iso-8859-1\n"
          "Content-Transfer-Encoding: 8bit\n\n")
    return crlf(h.encode("ascii") + "Un café crème, s'il vous plaît.\n".encode("iso-8859-1"))


# ---- header texts as they were sent (issue 26) ----
# Each returns (bytes, expected) where expected is what a reader shows of the
# headers: the texts before they were encoded, and the charset a reader has
# to pick for raw 8-bit text (charset_guessed), None when there is none.

def raw8_cp1252():
    """A Subject and a From display name in raw 8-bit Windows-1252, no encoded
    words, no charset declared anywhere (as older Windows mailers sent them).
    The Subject ends with 0x81, a byte Windows-1252 leaves undefined."""
    subject = "It\u2019s the caf\u00e9\u2019s \u201cmenu\u201d \u2013 \u20ac5"
    name = "Zo\u00eb Carol"
    h = (b"From: " + name.encode("cp1252") + b" <carol@lab.test>\n"
         b"To: Alice <alice@lab.test>\n"
         b"Subject: " + subject.encode("cp1252") + b" \x81\n"
         b"Date: " + DATE.encode() + b"\n"
         b"Message-ID: <cp1252.1@client.lab.test>\n"
         b"MIME-Version: 1.0\nContent-Type: text/plain\nContent-Transfer-Encoding: 8bit\n\n")
    body = "Men\u00fc: caf\u00e9 cr\u00e8me \u2013 \u20ac5.\n".encode("cp1252")
    return crlf(h + body), {"subject": subject + " \\x81", "from": name + " <carol@lab.test>",
                            "charset_guessed": "windows-1252"}


def raw8_declared_koi8r():
    """A raw 8-bit KOI8-R Subject; the message's Content-Type declares
    charset=koi8-r, which is how a reader should read it."""
    subject = "\u041f\u0440\u0438\u0432\u0435\u0442 \u0438\u0437 \u043b\u0430\u0431\u043e\u0440\u0430\u0442\u043e\u0440\u0438\u0438"
    h = (b"From: Carol <carol@lab.test>\nTo: Alice <alice@lab.test>\n"
         b"Subject: " + subject.encode("koi8-r") + b"\n"
         b"Date: " + DATE.encode() + b"\n"
         b"Message-ID: <koi8r.1@client.lab.test>\n"
         b"MIME-Version: 1.0\nContent-Type: text/plain; charset=koi8-r\n"
         b"Content-Transfer-Encoding: 8bit\n\n")
    return crlf(h + subject.encode("koi8-r") + b"\n"), {"subject": subject, "charset_guessed": "koi8-r"}


def raw8_multipart_latin9():
    """A multipart/alternative message (no charset at its top) whose raw
    8-bit Subject is ISO-8859-15, the charset its first text part declares
    (0xA4 is the euro sign there, not the currency sign of Windows-1252)."""
    subject = "Prix: 5 \u20ac, \u0153uvre compl\u00e8te"
    h = (b"From: Carol <carol@lab.test>\nTo: Alice <alice@lab.test>\n"
         b"Subject: " + subject.encode("iso-8859-15") + b"\n"
         b"Date: " + DATE.encode() + b"\n"
         b"Message-ID: <latin9.1@client.lab.test>\n"
         b"MIME-Version: 1.0\n"
         b"Content-Type: multipart/alternative; boundary=\"=_lab_alt_9\"\n\n"
         b"--=_lab_alt_9\nContent-Type: text/plain; charset=iso-8859-15\n"
         b"Content-Transfer-Encoding: 8bit\n\n" + subject.encode("iso-8859-15") + b"\n"
         b"--=_lab_alt_9\nContent-Type: text/html; charset=iso-8859-15\n"
         b"Content-Transfer-Encoding: 8bit\n\n<p>" + subject.encode("iso-8859-15") + b"</p>\n"
         b"--=_lab_alt_9--\n")
    return crlf(h), {"subject": subject, "charset_guessed": "iso-8859-15"}


def spaced_subject_and_trace():
    """An unstructured Subject (RFC 5322 §3.2.5) with runs of spaces, a tab,
    a fold and trailing spaces, in raw UTF-8 (RFC 6532: read as it is), and
    the trace fields of two hops before the lab: a sendmail local submission
    ("(from carol@localhost) by ...") and a qmail one (comment only). They
    follow the Subject rather than lead the header block, so that the lab's
    strip of the trace postfix adds on delivery (driver.strip_trace) keeps
    them."""
    h = ("From: Carol <carol@lab.test>\nTo: Alice <alice@lab.test>\n"
         "Subject:  Two  spaces,\ta tab, na\u00efve UTF-8,\n"
         "   a fold and three trailing spaces   \n"
         "Received: (from carol@localhost)\n"
         "\tby relay.client.lab.test (8.17.1/8.17.1/Submit) id 506A0x1a012345\n"
         "\tfor <alice@lab.test>; Mon, 6 Jan 2025 09:59:59 GMT\n"
         "Received: (qmail 4242 invoked by uid 1000); 6 Jan 2025 09:59:58 -0000\n"
         "Date: " + DATE + "\nMessage-ID: <spaced.1@client.lab.test>\n"
         "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n"
         "Whitespace as sent.\n")
    return crlf(h), {"subject": "Two  spaces,\ta tab, na\u00efve UTF-8,   a fold and three trailing spaces   ",
                     "charset_guessed": None,
                     "received": [{"comment": "(from carol@localhost)", "from": "localhost",
                                   "by": "relay.client.lab.test (8.17.1/8.17.1/Submit)",
                                   "id": "506A0x1a012345", "for": "<alice@lab.test>",
                                   "date": "Mon, 6 Jan 2025 09:59:59 GMT"},
                                  {"comment": "(qmail 4242 invoked by uid 1000)",
                                   "date": "6 Jan 2025 09:59:58 -0000"}]}


def local_submission():
    """A message handed to postfix's sendmail on the server itself: postfix's
    pickup writes "Received: by HOST (Postfix, from userid UID)"."""
    h = headers("Carol <carol@lab.test>", "Alice <alice@lab.test>",
                "Submitted on the host itself", "local.1@mx.lab.test")
    return crlf(h + "MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n"
                "Handed to sendmail, not to an SMTP server.\n"), {
        "subject": "Submitted on the host itself", "charset_guessed": None}


def attachments_of(msg):
    """[(filename, sha256 hex, size)] for every non-multipart part that is
    an attachment or has a filename, decoded per its transfer encoding."""
    import email
    import email.policy
    m = email.message_from_bytes(msg, policy=email.policy.default)
    out = []
    for part in m.walk():
        if part.is_multipart():
            continue
        fn = part.get_filename()
        if fn is None and part.get_content_disposition() != "attachment":
            continue
        data = part.get_payload(decode=True) or b""
        out.append({"filename": fn, "content_type": part.get_content_type(),
                    "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
    return out


# ------------------------------------------------ attachments (issue 27)
def tiny_pe():
    """A minimal Windows PE file: MZ header, e_lfanew at 0x3c, "PE\\0\\0",
    a COFF header for i386 and an empty optional header (nothing runs)."""
    import struct
    mz = b"MZ" + b"\0" * 58 + struct.pack("<I", 0x40)
    coff = b"PE\0\0" + struct.pack("<HHIIIHH", 0x14C, 1, 0, 0, 0, 0xE0, 0x0102)
    opt = struct.pack("<H", 0x10B) + b"\0" * (0xE0 - 2)
    return mz + coff + opt + b"\0" * 64


def tiny_pdf():
    """A small valid-looking PDF (one empty page)."""
    return (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
            b"2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n"
            b"3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>\nendobj\n"
            b"trailer\n<< /Root 1 0 R >>\n%%EOF\n")


def tiny_png():
    """A 1x1 grey PNG."""
    import struct
    import zlib

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(b"\0\x80")) + chunk(b"IEND", b""))


def with_attachments(subject, msgid, files, frm="Billing <billing@example.org>"):
    """multipart/mixed: a text part, then each (filename, content type,
    bytes) of files as a base64 attachment."""
    b = "=_mxlab_att_%s" % msgid.split("@")[0].replace(".", "_")
    text = (headers(frm, "Alice <alice@lab.test>", subject, msgid) +
            "MIME-Version: 1.0\n"
            'Content-Type: multipart/mixed; boundary="%s"\n\n'
            "--%s\nContent-Type: text/plain; charset=us-ascii\n\nPlease see the attached file.\n"
            % (b, b))
    for name, ctype, data in files:
        text += ("--%s\n"
                 'Content-Type: %s; name="%s"\n'
                 "Content-Transfer-Encoding: base64\n"
                 'Content-Disposition: attachment; filename="%s"\n\n'
                 % (b, ctype, name, name) + b64lines(data))
    text += "--%s--\n" % b
    return crlf(text)
