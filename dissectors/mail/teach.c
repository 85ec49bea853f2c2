/* teach.c - the capabilities of SMTP, POP3 and IMAP servers explained item by item, and SASL prompts decoded, for --explain. */
#include "dissectors/mail/teach.h"

#include "dissectors/mail/line.h"
#include "dissectors/mail/sasl.h"
#include "dissectors/mail/session.h"

#include <stdio.h>
#include <string.h>

/* One capability: its name (upper case; a name ending in '=' matches every
 * "NAME=value" atom) and what it means. */
struct cap_def {
    const char *name;
    const char *meaning;
};

/* EHLO keywords (RFC 5321 §4.1.1.1, the IANA "SMTP Service Extensions" registry). */
static const struct cap_def smtp_caps[] = {
    { "PIPELINING", "the client may send several commands in one write without waiting for each reply; the "
                    "replies come back in order (RFC 2920)" },
    { "SIZE", "the largest message the server accepts, in bytes (0 or none: no fixed limit); the client may "
              "declare its message's size on MAIL FROM with SIZE= and be refused early (RFC 1870)" },
    { "8BITMIME",
      "the server takes message bodies with 8-bit bytes, declared by MAIL FROM ... BODY=8BITMIME (RFC 6152)" },
    { "BINARYMIME", "the server takes binary bodies (BODY=BINARYMIME), sent with BDAT only (RFC 3030 §3)" },
    { "CHUNKING", "the message may be sent in chunks of announced size with BDAT instead of DATA, no dot needed "
                  "(RFC 3030)" },
    { "SMTPUTF8", "addresses and headers may hold UTF-8 (internationalised mail), declared by MAIL FROM ... "
                  "SMTPUTF8 (RFC 6531)" },
    { "DSN", "the client may ask for delivery status notifications per recipient (NOTIFY=, RET=, ENVID=, ORCPT=) "
             "(RFC 3461)" },
    { "ENHANCEDSTATUSCODES", "replies carry a class.subject.detail code such as 2.1.5 after the reply code "
                             "(RFC 2034, codes in RFC 3463)" },
    { "STARTTLS", "the client may switch the connection to TLS with STARTTLS before sending anything sensitive "
                  "(RFC 3207)" },
    { "AUTH", "the client may log in with AUTH and one of the SASL mechanisms listed (RFC 4954); PLAIN and LOGIN "
              "carry the password itself, only base64-encoded, so they belong under TLS" },
    { "AUTH=", "an old, non-standard spelling of AUTH that early Microsoft clients look for; same mechanisms "
               "(RFC 4954 is the standard form)" },
    { "ETRN", "a client may ask the server to send the mail it queued for a domain (RFC 1985)" },
    { "ATRN",
      "authenticated TURN: the roles reverse, the server delivers queued mail over this connection (RFC 2645)" },
    { "VRFY", "the server answers VRFY (does this address exist?), which tells address harvesters who is real "
              "(RFC 5321 §3.5)" },
    { "EXPN", "the server answers EXPN (who is on this list?), which discloses addresses (RFC 5321 §3.5)" },
    { "HELP", "the server answers HELP with help text (RFC 5321 §4.1.1.8)" },
    { "REQUIRETLS", "the client may require that every hop of this message uses verified TLS, MAIL FROM ... "
                    "REQUIRETLS (RFC 8689)" },
    { "DELIVERBY", "the client may set a deadline for delivery, MAIL FROM ... BY= (RFC 2852)" },
    { "MT-PRIORITY", "the client may give the message a priority, MAIL FROM ... MT-PRIORITY= (RFC 6710)" },
    { "FUTURERELEASE", "the client may ask to hold the message until a later time (RFC 4865)" },
    { "LIMITS", "the server states its limits (recipients per transaction, transactions per session) up front "
                "(RFC 9422)" },
    { "BURL", "the message may be fetched by the server from an IMAP URL instead of being sent (RFC 4468)" },
    { "CHECKPOINT", "an interrupted transfer may resume where it stopped (RFC 1845)" },
    { "MTRK", "message tracking: the client may later ask where the message went (RFC 3885)" },
    { "NO-SOLICITING", "the server does not want solicitations; the keywords name the rules (RFC 3865)" },
    { "XCLIENT", "Postfix: a trusted proxy may tell the server who the real client is; offered to anyone, it "
                 "lets clients forge their address" },
    { "XFORWARD", "Postfix: a content filter may pass on the original client's name and address" },
    { "TURN", "the roles reverse and the server delivers mail over this connection; unsafe without "
              "authentication (RFC 821, obsolete)" },
    { "SEND", "obsolete delivery to a terminal (RFC 821)" },
    { "SOML", "obsolete delivery to a terminal or mailbox (RFC 821)" },
    { "SAML", "obsolete delivery to a terminal and mailbox (RFC 821)" },
    { "X-EXPS", "Microsoft Exchange: its own authentication between servers (non-standard)" },
    { "X-LINK2STATE", "Microsoft Exchange: routing data between Exchange servers (non-standard)" },
    { "XEXCH50", "Microsoft Exchange: Exchange properties sent between servers (non-standard)" },
};

/* CAPA tags (RFC 2449 §6 and the extensions registered with it). */
static const struct cap_def pop3_caps[] = {
    { "CAPA", "the server answers CAPA, this list (RFC 2449 §5)" },
    { "TOP", "the server answers TOP: a message's header and its first lines (RFC 2449 §6.1)" },
    { "USER", "the client may log in with USER and PASS, the password in clear unless under TLS (RFC 2449 §6.2)" },
    { "SASL", "the client may log in with AUTH and one of the SASL mechanisms listed (RFC 2449 §6.3, RFC 5034)" },
    { "RESP-CODES", "-ERR replies may carry a code in brackets, such as [IN-USE] (RFC 2449 §6.4)" },
    { "LOGIN-DELAY", "the least number of seconds between logins (RFC 2449 §6.5)" },
    { "PIPELINING", "the client may send several commands in one write; the responses come back in order "
                    "(RFC 2449 §6.6)" },
    { "EXPIRE", "how many days the server keeps messages once retrieved (NEVER: it keeps them) (RFC 2449 §6.7)" },
    { "UIDL", "the server answers UIDL: each message's unique id, the same across sessions (RFC 2449 §6.8)" },
    { "IMPLEMENTATION", "the server's software, for information only (RFC 2449 §6.9)" },
    { "STLS", "the client may switch the connection to TLS with STLS before it logs in (RFC 2595 §4)" },
    { "AUTH-RESP-CODE", "a failed login says why with [AUTH] or [SYS/...] (RFC 3206)" },
    { "UTF8", "mailbox contents and login names may be UTF-8, after the UTF8 command (RFC 6856)" },
    { "LANG", "the client may choose the language of response texts with LANG (RFC 6856)" },
};

/* IMAP capabilities (RFC 9051 §7.2.2 and the IANA "IMAP Capabilities" registry). */
static const struct cap_def imap_caps[] = {
    { "IMAP4REV1", "the server speaks IMAP4rev1 (RFC 3501)" },
    { "IMAP4REV2", "the server speaks IMAP4rev2 (RFC 9051)" },
    { "AUTH=", "the client may log in with AUTHENTICATE and this SASL mechanism (RFC 9051 §6.2.2); PLAIN and "
               "LOGIN carry the password itself, so they belong under TLS" },
    { "STARTTLS", "the client may switch the connection to TLS with STARTTLS before it logs in (RFC 9051 §6.2.1)" },
    { "LOGINDISABLED", "LOGIN is refused here (usually until STARTTLS), so no password crosses in clear "
                       "(RFC 9051 §6.2.3)" },
    { "SASL-IR", "AUTHENTICATE may carry the first SASL response on its own line, saving a round trip (RFC 4959)" },
    { "LOGIN-REFERRALS", "a login may be referred to another server (RFC 2221)" },
    { "MAILBOX-REFERRALS", "a mailbox may be referred to another server (RFC 2193)" },
    { "ID", "client and server may exchange their names and versions with ID (RFC 2971)" },
    { "ENABLE", "the client may turn on extensions that change the protocol, with ENABLE (RFC 5161)" },
    { "IDLE", "the client may wait with IDLE and be told of new mail at once, without polling (RFC 2177)" },
    { "LITERAL+", "the client may send literals without waiting for the server's \"+\" (RFC 7888)" },
    { "LITERAL-", "like LITERAL+, for literals of at most 4096 bytes (RFC 7888)" },
    { "SORT", "the server sorts search results, SORT (RFC 5256)" },
    { "SORT=DISPLAY", "SORT may order by display name (RFC 5957)" },
    { "THREAD=", "the server groups messages into threads with this algorithm, THREAD (RFC 5256)" },
    { "MULTIAPPEND", "one APPEND may add several messages at once (RFC 3502)" },
    { "URL-PARTIAL", "IMAP URLs may name part of a message (RFC 5550)" },
    { "URLAUTH", "the server issues URLs that let another party (a submission server) fetch a message "
                 "(RFC 4467)" },
    { "CATENATE", "APPEND may build a message from parts of others (RFC 4469)" },
    { "UNSELECT", "UNSELECT leaves a mailbox without expunging it (RFC 3691)" },
    { "CHILDREN", "LIST says whether a mailbox has children (RFC 3348)" },
    { "NAMESPACE", "the server tells how mailbox names are organised, NAMESPACE (RFC 2342)" },
    { "UIDPLUS", "APPEND, COPY and MOVE report the new messages' UIDs (RFC 4315)" },
    { "LIST-EXTENDED", "LIST takes selection and return options (RFC 5258)" },
    { "LIST-STATUS", "LIST may return each mailbox's STATUS at once (RFC 5819)" },
    { "I18NLEVEL=", "searching and sorting follow the language's collation rules (RFC 5255)" },
    { "CONDSTORE", "messages carry a modification sequence, so clients fetch only what changed (RFC 7162)" },
    { "QRESYNC", "a client reconnecting resynchronises a mailbox in one step (RFC 7162)" },
    { "ESEARCH", "SEARCH results may come compactly, as ranges and counts (ESEARCH, RFC 4731)" },
    { "ESORT", "SORT results may come as ESEARCH does (RFC 5267)" },
    { "SEARCHRES", "the result of a SEARCH may be saved and reused as $ (RFC 5182)" },
    { "WITHIN", "SEARCH may ask for messages younger or older than some seconds (RFC 5032)" },
    { "CONTEXT=", "the server keeps search or sort results up to date as the mailbox changes (RFC 5267)" },
    { "BINARY", "the server may send message parts decoded, as binary (RFC 3516)" },
    { "MOVE", "messages may be moved in one command, MOVE (RFC 6851)" },
    { "SNIPPET=", "FETCH may return a short preview of a message's text (draft before RFC 8970)" },
    { "PREVIEW=", "FETCH may return a short preview of a message's text (draft before RFC 8970)" },
    { "PREVIEW", "FETCH may return a short preview of a message's text (RFC 8970)" },
    { "STATUS=SIZE", "STATUS may return a mailbox's size in bytes (RFC 8438)" },
    { "SAVEDATE", "the server records when each message was saved in its mailbox (RFC 8514)" },
    { "NOTIFY", "the client may ask to be told of changes in other mailboxes too (RFC 5465)" },
    { "SPECIAL-USE", "LIST marks the mailboxes used for Sent, Drafts, Trash, Junk... (RFC 6154)" },
    { "CREATE-SPECIAL-USE", "CREATE may mark a new mailbox's special use (RFC 6154)" },
    { "COMPRESS=", "the connection may be compressed with this algorithm, COMPRESS (RFC 4978)" },
    { "QUOTA", "the client may read and set storage quotas (RFC 9208)" },
    { "QUOTA=", "a kind of quota the server enforces (RFC 9208)" },
    { "ACL", "mailboxes carry access control lists, GETACL/SETACL (RFC 4314)" },
    { "RIGHTS=", "the ACL rights the server implements beyond the basic ones (RFC 4314)" },
    { "METADATA", "annotations may be set on the server and on mailboxes (RFC 5464)" },
    { "METADATA-SERVER", "annotations may be set on the server (RFC 5464)" },
    { "OBJECTID", "mailboxes and messages carry ids that survive renames and moves (RFC 8474)" },
    { "UTF8=", "mailbox names and headers may be UTF-8 once enabled (RFC 6855)" },
    { "APPENDLIMIT", "the largest message APPEND accepts (RFC 7889)" },
    { "APPENDLIMIT=", "the largest message APPEND accepts, in bytes (RFC 7889)" },
    { "UNAUTHENTICATE", "a logged-in client may log out without closing the connection (RFC 8437)" },
    { "XLIST", "Gmail's old LIST with special folders; SPECIAL-USE replaced it (non-standard)" },
    { "X-GM-EXT-1", "Gmail's labels and thread ids (non-standard)" },
};

/* The table of protocol p, and its length. */
static const struct cap_def *table_of(enum mx_teach_proto p, size_t *n)
{
    switch (p) {
    case MX_TEACH_SMTP:
        *n = MX_ARRAY_LEN(smtp_caps);
        return smtp_caps;
    case MX_TEACH_POP3:
        *n = MX_ARRAY_LEN(pop3_caps);
        return pop3_caps;
    default:
        *n = MX_ARRAY_LEN(imap_caps);
        return imap_caps;
    }
}

const char *mx_teach_cap_meaning(enum mx_teach_proto p, struct mx_slice item)
{
    size_t n;
    const struct cap_def *t = table_of(p, &n);
    /* SMTP and POP3: the keyword is the line's first word (RFC 5321
     * §4.1.1.1 ehlo-line, RFC 2449 §5 capability). IMAP: the whole atom. */
    struct mx_slice name = item;
    if (p != MX_TEACH_IMAP) {
        const uint8_t *sp = memchr(item.ptr, ' ', item.len);
        if (sp)
            name.len = (size_t)(sp - item.ptr);
    }
    for (size_t i = 0; i < n; i++)
        if (mx_ieq(name.ptr, name.len, t[i].name))
            return t[i].meaning;
    /* "NAME=value": the entry "NAME=". */
    const uint8_t *eq = memchr(name.ptr, '=', name.len);
    if (!eq)
        return NULL;
    size_t k = (size_t)(eq - name.ptr) + 1;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(t[i].name);
        if (l == k && t[i].name[l - 1] == '=' && mx_iprefix(name.ptr, name.len, t[i].name))
            return t[i].meaning;
    }
    return NULL;
}

void mx_teach_caps(struct mx_event *ev, enum mx_teach_proto p, const struct mx_caps *c)
{
    struct mx_slice v;
    size_t pos = 0;
    if (!mx_caps_next(c, &pos, &v))
        return;
    mx_ev_arr(ev, "explain_lines");
    char line[512];
    for (pos = 0; mx_caps_next(c, &pos, &v);) {
        const char *m = mx_teach_cap_meaning(p, v);
        int shown = (int)(v.len < 120 ? v.len : 120);
        int n =
            snprintf(line, sizeof(line), "%.*s%s: %s", shown, (const char *)v.ptr, (size_t)shown < v.len ? "..." : "",
                     m ? m : "an extension mxray does not describe (private or not registered)");
        mx_ev_wire(ev, NULL, mx_slice_make(line, n < 0 ? 0 : (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1));
    }
    if (c->dropped) {
        int n = snprintf(line, sizeof(line), "(and %u more, not kept)", (unsigned)c->dropped);
        mx_ev_str(ev, NULL, n > 0 ? line : "");
    }
    mx_ev_end(ev);
}

bool mx_teach_challenge(struct mx_slice b64, char *buf, size_t cap)
{
    size_t n = 0;
    b64 = mx_trim(b64);
    if (!b64.len || cap < 2 || !mx_base64_decode(b64, (uint8_t *)buf, cap - 1, &n) || !n)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] > 0x7e)
            return false;
    buf[n] = '\0';
    return true;
}

void mx_teach_challenge_lines(struct mx_event *ev, struct mx_slice b64)
{
    char dec[128], line[320];
    if (!mx_teach_challenge(b64, dec, sizeof(dec)))
        return;
    bool user = !strcmp(dec, "Username:") || !strcmp(dec, "User Name"),
         pass = !strcmp(dec, "Password:") || !strcmp(dec, "Password");
    snprintf(line, sizeof(line), "the challenge, base64-decoded: \"%s\"%s", dec,
             user   ? ": the LOGIN mechanism asks for the user name; the client's next line is it, in base64"
             : pass ? ": the LOGIN mechanism asks for the password; the client's next line is it, in base64, which "
                      "anyone who sees it can decode"
                    : "");
    mx_ev_arr(ev, "explain_lines");
    mx_ev_wire(ev, NULL, mx_slice_make(line, strlen(line)));
    mx_ev_end(ev);
}

const char *mx_teach_pipelined(char *buf, size_t cap, const char *explain, unsigned waiting, const char *rfc,
                               const char *reply, const char *replies)
{
    bool one = waiting == 1;
    char waits[64];
    if (one)
        snprintf(waits, sizeof(waits), "the %s to the command", reply);
    else
        snprintf(waits, sizeof(waits), "the %s to the %u commands", replies, waiting);
    snprintf(buf, cap,
             "%s Pipelined (%s): sent without waiting for %s before it; the server reads it after %s, so the state "
             "shown is the one %s to if %s.",
             explain, rfc, waits, one ? "it" : "them", one ? "it leads" : "they lead",
             one ? "it succeeds" : "they succeed");
    return buf;
}
