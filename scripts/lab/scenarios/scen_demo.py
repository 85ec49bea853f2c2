"""pcaps/demo.pcapng: the README demo.  Four sessions that together show a
delivery failure (550 5.1.1 for one recipient), plaintext logins (IMAP LOGIN
and POP3 USER/PASS in clear) and a STARTTLS upgrade with AUTH inside TLS."""
from driver import scenario
import messages


@scenario("demo/demo", "SMTP 550 5.1.1 for one recipient; IMAP LOGIN and POP3 "
          "USER/PASS in clear; submission with STARTTLS then AUTH",
          path="demo.pcapng")
def demo(ctx):
    msg = ctx.message("msg1", messages.simple(
        to="Alice <alice@lab.test>, Nobody <nobody@lab.test>",
        subject="Quarterly numbers", msgid="demo.1@client.lab.test"))
    s = ctx.smtp(25, note="delivery with one unknown recipient")
    s.smtp_reply()
    s.smtp("EHLO client.lab.test")
    s.smtp("MAIL FROM:<carol@lab.test> SIZE=%d" % len(msg))
    s.smtp("RCPT TO:<alice@lab.test>")
    s.smtp("RCPT TO:<nobody@lab.test>")
    s.smtp("DATA")
    s.smtp_data(msg)
    s.smtp("QUIT")
    s.close()
    ctx.lab.wait_delivered("alice", 1)

    s = ctx.imap(143, note="IMAP LOGIN in clear")
    s.imap_response()
    s.imap("a1", "CAPABILITY")
    s.imap("a2", "LOGIN alice alicepw")
    s.imap("a3", "SELECT INBOX")
    s.imap("a4", "FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE MESSAGE-ID)])")
    s.imap("a5", "LOGOUT")
    s.close()

    s = ctx.pop3(110, note="POP3 USER/PASS in clear")
    s.pop_line()
    s.pop("USER alice")
    s.pop("PASS alicepw")
    s.pop("STAT")
    s.pop("QUIT")
    s.close()

    msg2 = ctx.message("msg2", messages.simple(
        frm="Alice <alice@lab.test>", to="Bob <bob@lab.test>",
        subject="Re: Quarterly numbers", msgid="demo.2@client.lab.test",
        body="Bob,\n\nsent over submission with STARTTLS.\n\nAlice\n"))
    s = ctx.smtp(587, note="submission: STARTTLS, then AUTH PLAIN inside TLS")
    s.smtp_reply()
    s.smtp("EHLO client.lab.test")
    s.smtp("STARTTLS")
    s.starttls()
    s.smtp("EHLO client.lab.test")
    s.smtp_auth_plain("alice", "alicepw")
    s.smtp("MAIL FROM:<alice@lab.test>")
    s.smtp("RCPT TO:<bob@lab.test>")
    s.smtp("DATA")
    s.smtp_data(msg2)
    s.smtp("QUIT")
    s.close()
    ctx.lab.wait_delivered("bob", 1)
