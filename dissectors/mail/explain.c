/* explain.c - one plain sentence per command, citing where the RFC defines it. */
#include "dissectors/mail/explain.h"

#include "core/mx.h"

#include <string.h>

struct entry {
    const char *verb;
    const char *text;
};

static const struct entry smtp[] = {
    { "HELO", "The client names itself and starts a plain SMTP session, without extensions (RFC 5321 §4.1.1.1)." },
    { "EHLO", "The client names itself and asks which extensions the server supports; the reply lists them "
              "(RFC 5321 §4.1.1.1)." },
    { "MAIL", "Starts a mail transaction with the envelope sender: where bounces go, which may differ from the "
              "From: header (RFC 5321 §4.1.1.2)." },
    { "RCPT", "Adds one envelope recipient; the server accepts or refuses each recipient on its own "
              "(RFC 5321 §4.1.1.3)." },
    { "DATA", "Asks to send the message itself; after 354 the message follows, ended by a line holding a single "
              "dot (RFC 5321 §4.1.1.4)." },
    { "BDAT", "Sends a chunk of the message of exactly the given size, no dot needed; LAST marks the final chunk "
              "(CHUNKING, RFC 3030)." },
    { "RSET", "Abandons the current transaction; the session stays open (RFC 5321 §4.1.1.5)." },
    { "NOOP", "Does nothing: checks the server is still there (RFC 5321 §4.1.1.9)." },
    { "QUIT", "Asks the server to close the session (RFC 5321 §4.1.1.10)." },
    { "VRFY", "Asks whether an address is a real mailbox (RFC 5321 §4.1.1.6); most servers answer 252 or refuse, "
              "as it helps spammers." },
    { "EXPN", "Asks for the members of a mailing list (RFC 5321 §4.1.1.7); usually disabled." },
    { "HELP", "Asks for help text (RFC 5321 §4.1.1.8)." },
    { "STARTTLS", "Asks to switch the connection to TLS; after 220 both sides negotiate TLS and the session "
                  "starts over, encrypted (RFC 3207)." },
    { "AUTH", "Starts authentication with the named SASL mechanism; 334 asks for the next step, 235 means "
              "success (RFC 4954)." },
    { "ETRN", "Asks the server to send the mail it queued for a domain (RFC 1985)." },
    { "XCLIENT", "A Postfix extension: a trusted proxy tells the server about the real client." },
    { "XFORWARD", "A Postfix extension: a content filter passes on the original client's details." },
    { "(auth data)", "The client's answer to the server's SASL challenge (RFC 4954 §4)." },
};

static const struct entry pop3[] = {
    { "USER", "Names the mailbox to log in to; PASS follows with its password, in clear unless under TLS "
              "(RFC 1939 §7)." },
    { "PASS", "Sends the password for the mailbox USER named (RFC 1939 §7)." },
    { "APOP", "Logs in with an MD5 digest of the greeting's timestamp and the password, so the password itself "
              "does not cross (RFC 1939 §7)." },
    { "AUTH", "Starts SASL authentication with the named mechanism; '+ ' asks for the next step (RFC 5034)." },
    { "CAPA", "Asks which extensions the server supports (RFC 2449 §5)." },
    { "STAT", "Asks how many messages the mailbox holds and their total size (RFC 1939 §5)." },
    { "LIST", "Lists the messages with their sizes, or one message's size (RFC 1939 §5)." },
    { "UIDL", "Lists the messages' unique ids, which stay the same across sessions (RFC 1939 §7)." },
    { "RETR", "Retrieves a whole message (RFC 1939 §5)." },
    { "TOP", "Retrieves a message's header and its first lines (RFC 1939 §7)." },
    { "DELE", "Marks a message for deletion; it goes when the session ends with QUIT (RFC 1939 §5)." },
    { "RSET", "Unmarks every message marked for deletion (RFC 1939 §5)." },
    { "NOOP", "Does nothing: checks the server is still there (RFC 1939 §5)." },
    { "QUIT", "Ends the session; messages marked with DELE are deleted now (RFC 1939 §6)." },
    { "STLS", "Asks to switch the connection to TLS (RFC 2595 §4)." },
    { "UTF8", "Asks the server to use UTF-8 (RFC 6856)." },
    { "LANG", "Asks for, or sets, the language of the server's texts (RFC 6856)." },
};

static const struct entry imap[] = {
    { "CAPABILITY", "Asks which capabilities and extensions the server supports (RFC 9051 §6.1.1)." },
    { "NOOP", "Does nothing, but lets the server send pending updates (RFC 9051 §6.1.2)." },
    { "LOGOUT", "Ends the session; the server says BYE (RFC 9051 §6.1.3)." },
    { "STARTTLS", "Asks to switch the connection to TLS (RFC 9051 §6.2.1)." },
    { "AUTHENTICATE", "Starts SASL authentication with the named mechanism (RFC 9051 §6.2.2)." },
    { "LOGIN", "Logs in with a user name and a password, in clear unless under TLS (RFC 9051 §6.2.3)." },
    { "SELECT", "Opens a mailbox to read and change it; the server reports its size and state (RFC 9051 §6.3.2)." },
    { "EXAMINE", "Opens a mailbox read-only (RFC 9051 §6.3.3)." },
    { "CREATE", "Creates a mailbox (RFC 9051 §6.3.4)." },
    { "DELETE", "Deletes a mailbox (RFC 9051 §6.3.5)." },
    { "RENAME", "Renames a mailbox (RFC 9051 §6.3.6)." },
    { "SUBSCRIBE", "Adds a mailbox to the subscribed list (RFC 9051 §6.3.7)." },
    { "UNSUBSCRIBE", "Removes a mailbox from the subscribed list (RFC 9051 §6.3.8)." },
    { "LIST", "Lists mailbox names matching a pattern (RFC 9051 §6.3.9)." },
    { "LSUB", "Lists subscribed mailboxes (RFC 3501 §6.3.9)." },
    { "NAMESPACE", "Asks how mailbox names are organised (RFC 9051 §6.3.10)." },
    { "STATUS", "Asks for a mailbox's counts without opening it (RFC 9051 §6.3.11)." },
    { "APPEND", "Uploads a message into a mailbox, for example a sent copy or a draft (RFC 9051 §6.3.12)." },
    { "IDLE", "Waits for the server to push changes as they happen, until DONE (RFC 2177)." },
    { "DONE", "Ends an IDLE (RFC 2177)." },
    { "CLOSE", "Closes the mailbox, removing the messages marked \\Deleted (RFC 9051 §6.4.1)." },
    { "UNSELECT", "Closes the mailbox without removing anything (RFC 9051 §6.4.2)." },
    { "EXPUNGE", "Removes the messages marked \\Deleted (RFC 9051 §6.4.3)." },
    { "SEARCH", "Finds the messages matching criteria (RFC 9051 §6.4.4)." },
    { "FETCH", "Retrieves data about messages: flags, sizes, envelopes, bodies or parts of them (RFC 9051 §6.4.5)." },
    { "STORE", "Changes messages' flags, such as \\Seen or \\Deleted (RFC 9051 §6.4.6)." },
    { "COPY", "Copies messages to another mailbox (RFC 9051 §6.4.7)." },
    { "MOVE", "Moves messages to another mailbox (RFC 9051 §6.4.8)." },
    { "ENABLE", "Turns on extensions that change how the server talks (RFC 9051 §6.3.1)." },
    { "ID", "Exchanges the client's and the server's names and versions (RFC 2971)." },
    { "COMPRESS", "Compresses the rest of the session with DEFLATE, both ways (RFC 4978)." },
};

static const char *find(const struct entry *t, size_t n, const char *verb)
{
    for (size_t i = 0; verb && i < n; i++)
        if (!strcmp(t[i].verb, verb))
            return t[i].text;
    return NULL;
}

const char *mx_explain_smtp(const char *verb)
{
    return find(smtp, MX_ARRAY_LEN(smtp), verb);
}

const char *mx_explain_pop3(const char *verb)
{
    return find(pop3, MX_ARRAY_LEN(pop3), verb);
}

const char *mx_explain_imap(const char *command)
{
    return find(imap, MX_ARRAY_LEN(imap), command);
}
