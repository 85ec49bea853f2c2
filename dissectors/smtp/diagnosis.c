/* diagnosis.c - plain-language causes for SMTP failures, and what a reply
 * means for --explain. The meanings come from the generated code tables
 * (dissectors/smtp/codes.h); the causes are rules over the step, the codes,
 * the reply's words (dissectors/smtp/words.c) and the sizes, each with a kind
 * (enum mx_cause_kind) for the records. */
#include "dissectors/smtp/diagnosis.h"

#include "dissectors/smtp/codes.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *mx_diag_reply_meaning(int code, const char *step)
{
    /* The code tables name commands by verb; pseudo-steps use the general meaning. */
    const struct mx_reply_info *r = mx_reply_lookup(code, step && step[0] != '(' ? step : NULL);
    if (!r)
        return NULL;
    /* RFC 5321 §4.2.3 opens 220, 221 and 421 with "<domain>": no name to give here */
    return strncmp(r->text, "<domain> ", 9) ? r->text : r->text + 9;
}

void mx_diag_enhanced_meaning(const struct mx_enhanced_code *c, char *out, size_t cap)
{
    out[0] = '\0';
    if (!c || !c->cls)
        return;
    const struct mx_enhanced_info *i = mx_enhanced_lookup(c->subject, c->detail);
    const char *subj = mx_enhanced_subject_text(c->subject), *cls = mx_enhanced_class_text(c->cls);
    if (i)
        snprintf(out, cap, "%s (%s; %s)", i->sample, subj ? subj : "unregistered subject", cls ? cls : "?");
    else
        snprintf(out, cap, "unregistered detail (%s; %s)", subj ? subj : "unregistered subject", cls ? cls : "?");
}

/* Case-insensitive search of an ASCII needle in reply text. */
static bool has(struct mx_slice t, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= t.len; i++) {
        size_t j = 0;
        while (j < n) {
            uint8_t c = t.ptr[i + j];
            if (c >= 'A' && c <= 'Z')
                c = (uint8_t)(c + 32);
            if (c != (uint8_t)needle[j])
                break;
            j++;
        }
        if (j == n)
            return true;
    }
    return false;
}

static bool step_is(const struct mx_diag_reply *r, const char *s)
{
    return r->step && !strcmp(r->step, s);
}

/* What each kind says in a clause ("the code says <clause>"). */
static const char *kind_clause(enum mx_cause_kind k)
{
    switch (k) {
    case MX_CAUSE_POLICY:
        return "a refusal by the server's policy";
    case MX_CAUSE_BLOCKLIST:
        return "the client is on a blocklist";
    case MX_CAUSE_GREYLISTING:
        return "greylisting";
    case MX_CAUSE_RATE_LIMIT:
        return "a rate limit";
    case MX_CAUSE_SPF_DKIM_DMARC:
        return "an SPF, DKIM or DMARC failure";
    case MX_CAUSE_TLS_REQUIRED:
        return "TLS is required";
    case MX_CAUSE_QUOTA:
        return "the mailbox is full";
    case MX_CAUSE_UNKNOWN_USER:
        return "the address does not exist";
    case MX_CAUSE_RELAY_DENIED:
        return "relaying is denied";
    case MX_CAUSE_TOO_BIG:
        return "the message is too big";
    case MX_CAUSE_CONTENT:
        return "the content was refused (spam or a virus)";
    case MX_CAUSE_AUTH_FAILED:
        return "the credentials were refused";
    case MX_CAUSE_AUTH_REQUIRED:
        return "authentication is required";
    case MX_CAUSE_MAILBOX_DISABLED:
        return "the mailbox is disabled";
    case MX_CAUSE_UNKNOWN_DOMAIN:
        return "the domain does not exist";
    case MX_CAUSE_BAD_ADDRESS:
        return "the address is malformed";
    case MX_CAUSE_TOO_MANY_RECIPIENTS:
        return "too many recipients";
    case MX_CAUSE_IN_USE:
        return "the mailbox is in use";
    case MX_CAUSE_UNAVAILABLE:
        return "the server is busy or unavailable";
    case MX_CAUSE_SYNTAX:
        return "a syntax error";
    case MX_CAUSE_OUT_OF_SEQUENCE:
        return "a command out of order";
    default:
        return "a failure";
    }
}

/* Kinds that say no more than "refused" or "try later": the words refine
 * them, never contradict them. */
static bool generic(enum mx_cause_kind k)
{
    return k == MX_CAUSE_NONE || k == MX_CAUSE_POLICY || k == MX_CAUSE_REFUSED || k == MX_CAUSE_TEMPORARY ||
           k == MX_CAUSE_UNAVAILABLE;
}

/* Two specific kinds that are one cause seen from two sides. */
static bool agree(enum mx_cause_kind a, enum mx_cause_kind b)
{
    return a == b || generic(a) ||
           ((a == MX_CAUSE_AUTH_REQUIRED || a == MX_CAUSE_TLS_REQUIRED) &&
            (b == MX_CAUSE_AUTH_REQUIRED || b == MX_CAUSE_TLS_REQUIRED)) ||
           ((a == MX_CAUSE_QUOTA || a == MX_CAUSE_TOO_BIG) && (b == MX_CAUSE_QUOTA || b == MX_CAUSE_TOO_BIG)) ||
           ((a == MX_CAUSE_SYNTAX || a == MX_CAUSE_BAD_ADDRESS) && (b == MX_CAUSE_SYNTAX || b == MX_CAUSE_BAD_ADDRESS));
}

/* What the codes alone say (RFC 3463 §3 for the enhanced code, RFC 5321
 * §4.2.3 for the basic one, read with the step it answers). */
static enum mx_cause_kind code_kind(const struct mx_diag_reply *r, const struct mx_enhanced_code *e, bool temp)
{
    if (e->subject == 1 && (e->detail == 1 || e->detail == 0) && !temp && step_is(r, "RCPT"))
        return e->detail == 1 ? MX_CAUSE_UNKNOWN_USER : MX_CAUSE_REFUSED;
    if (e->subject == 1 && (e->detail == 2 || e->detail == 8 || e->detail == 10))
        return MX_CAUSE_UNKNOWN_DOMAIN;
    if (e->subject == 1 && (e->detail == 3 || e->detail == 7))
        return MX_CAUSE_BAD_ADDRESS;
    if (e->subject == 2 && e->detail == 1)
        return MX_CAUSE_MAILBOX_DISABLED;
    if (e->subject == 2 && e->detail == 2)
        return MX_CAUSE_QUOTA;
    if ((e->subject == 3 && e->detail == 4) || (e->subject == 2 && e->detail == 3))
        return MX_CAUSE_TOO_BIG;
    if (e->subject == 5 && e->detail == 3)
        return MX_CAUSE_TOO_MANY_RECIPIENTS;
    if (e->subject == 7 && e->detail == 8)
        return MX_CAUSE_AUTH_FAILED;
    if (e->subject == 7 && (e->detail == 10 || e->detail == 11))
        return MX_CAUSE_TLS_REQUIRED;
    if (e->subject == 7 && e->detail == 9)
        return MX_CAUSE_AUTH_REQUIRED; /* "Authentication mechanism is too weak" */
    if (e->subject == 7 && e->detail >= 20 && e->detail <= 27)
        return MX_CAUSE_SPF_DKIM_DMARC;
    if (r->code == 535 || step_is(r, "AUTH") || step_is(r, "(auth data)"))
        return MX_CAUSE_AUTH_FAILED;
    if (r->code == 530 || r->code == 538)
        return r->code == 538 ? MX_CAUSE_TLS_REQUIRED : MX_CAUSE_AUTH_REQUIRED;
    if (r->code == 552 && (!e->cls || e->subject == 2 || e->subject == 3)) /* an enhanced code says more */
        return step_is(r, "RCPT") ? MX_CAUSE_QUOTA : MX_CAUSE_TOO_BIG;
    if (step_is(r, "(connect)") || r->code == 421)
        return r->code == 421 ? MX_CAUSE_UNAVAILABLE : MX_CAUSE_POLICY;
    if (r->code == 503)
        return MX_CAUSE_OUT_OF_SEQUENCE;
    if ((r->code >= 500 && r->code <= 504) || r->code == 555 || (e->subject == 5 && !temp))
        return MX_CAUSE_SYNTAX;
    if (e->subject == 7 || r->code == 554)
        return MX_CAUSE_POLICY;
    return temp ? MX_CAUSE_TEMPORARY : MX_CAUSE_REFUSED;
}

/* Who a policy refusal is about, from postfix's restriction names or the step. */
static const char *policy_target(const struct mx_diag_reply *r)
{
    if (has(r->text, "sender address rejected"))
        return "sender's address";
    if (step_is(r, "MAIL"))
        return "sender (or the client sending for it)";
    if (has(r->text, "client host rejected") || step_is(r, "(connect)"))
        return "client (its address or host name)";
    if (has(r->text, "helo command rejected") || step_is(r, "EHLO") || step_is(r, "HELO"))
        return "client's HELO name";
    if (step_is(r, "RCPT"))
        return "recipient (or the client, for it)";
    return "message";
}

/* The sentence for a kind, with the reply's details (sizes, step). */
static void say_kind(const struct mx_diag_reply *r, enum mx_cause_kind k, const struct mx_enhanced_code *e, bool temp,
                     char *out, size_t cap)
{
    const char *retry = temp ? " It is temporary: the sender retries later." : "";
    bool data_end = step_is(r, "(end of data)") || step_is(r, "BDAT");
    bool sender = step_is(r, "MAIL") || has(r->text, "sender address rejected");
#define SAY(...) snprintf(out, cap, __VA_ARGS__)
    switch (k) {
    case MX_CAUSE_RELAY_DENIED:
        /* RFC 5321 §3.6: relaying is the server's choice. */
        SAY("Relaying denied: the server does not relay mail for this client to that domain. Authenticate on "
            "the submission port, or send to the recipient domain's own mail exchanger.%s",
            retry);
        return;
    case MX_CAUSE_QUOTA:
        if (r->per_recipient) /* RFC 2033 §4.2: this recipient's mailbox, not the message's size */
            SAY("The recipient's mailbox is full (over quota): the server took the message for the other "
                "recipients and refused it for this one after the data (RFC 2033 §4.2).%s",
                retry);
        else
            SAY("The recipient's mailbox is full (over quota).%s", retry);
        return;
    case MX_CAUSE_TOO_BIG: { /* RFC 1870 */
        char nums[160] = "";
        uint64_t sz = r->message_size ? r->message_size : r->declared_size;
        if (sz && r->size_limit)
            snprintf(nums, sizeof(nums), " (message %" PRIu64 " bytes, the server's SIZE limit %" PRIu64 " bytes)", sz,
                     r->size_limit);
        else if (r->size_limit)
            snprintf(nums, sizeof(nums), " (the server's SIZE limit: %" PRIu64 " bytes)", r->size_limit);
        else if (sz)
            snprintf(nums, sizeof(nums), " (message %" PRIu64 " bytes)", sz);
        SAY("The message was bigger than the server accepts%s%s.%s", nums,
            step_is(r, "MAIL") ? ", as declared with SIZE= at MAIL FROM" : "", retry);
        return;
    }
    case MX_CAUSE_GREYLISTING:
        SAY("Greylisting: the server defers mail from senders it has not seen before; a compliant sender retries "
            "after a few minutes and gets through.");
        return;
    case MX_CAUSE_BLOCKLIST:
        SAY("The client's address (or the sender's domain) is on a blocklist the server uses (a DNS blocklist such "
            "as Spamhaus, or the provider's own list): the refusal is about the sending host, not this address or "
            "message; have it delisted, or send through another server.%s",
            retry);
        return;
    case MX_CAUSE_RATE_LIMIT:
        SAY("A rate limit: the server takes no more mail (or connections, or logins) from this sender for now, "
            "because it sent too much too fast or drew complaints; sending slower gets through later.%s",
            retry);
        return;
    case MX_CAUSE_SPF_DKIM_DMARC:
        SAY("The message failed the receiving domain's authentication checks (SPF, DKIM or DMARC): the sending host "
            "is not authorized for the sender's domain, or its signature is missing or broken, and the domain's "
            "policy says refuse.%s",
            retry);
        return;
    case MX_CAUSE_TLS_REQUIRED:
        SAY("The server requires TLS before this step (STARTTLS, or a newer TLS version than the client "
            "offered): the session was not encrypted as it demands.%s",
            retry);
        return;
    case MX_CAUSE_CONTENT:
        SAY("The message's content was refused: the server's filter judged it spam, or found a virus or another "
            "dangerous part.%s",
            retry);
        return;
    case MX_CAUSE_TOO_MANY_RECIPIENTS:
        SAY("Too many recipients in one transaction: the server takes the rest in another transaction.%s", retry);
        return;
    case MX_CAUSE_AUTH_FAILED:
        if ((e->subject == 7 && e->detail == 8) || r->code == 535 ||
            (!step_is(r, "AUTH") && !step_is(r, "(auth data)")))
            SAY("Bad credentials: the server rejected the user name or the password (or token).%s", retry);
        else
            SAY("Authentication failed (%d)%s.%s", r->code, temp ? ", temporarily" : "", retry);
        return;
    case MX_CAUSE_AUTH_REQUIRED:
        SAY("The server requires authentication (or TLS) before this step.%s", retry);
        return;
    case MX_CAUSE_UNKNOWN_USER:
        if (sender)
            SAY("The server does not know the sender's address (it checks senders against its own users).%s", retry);
        else
            SAY("The recipient's mailbox does not exist at this server (unknown user); check the address.%s", retry);
        return;
    case MX_CAUSE_UNKNOWN_DOMAIN:
        if (sender || (e->subject == 1 && e->detail == 8))
            SAY("The sender's domain was refused: it does not exist or cannot be checked.%s", retry);
        else
            SAY("The recipient's domain does not exist or accepts no mail.%s", retry);
        return;
    case MX_CAUSE_BAD_ADDRESS:
        if (sender || (e->subject == 1 && e->detail == 7))
            SAY("The sender's address is not valid (its syntax, RFC 5321 §4.1.2).");
        else
            SAY("The address is not valid (its syntax).");
        return;
    case MX_CAUSE_MAILBOX_DISABLED:
        if (temp)
            SAY("The recipient's mailbox is unavailable for now (busy, or disabled for a while).%s", retry);
        else
            SAY("The recipient's mailbox is disabled and accepts no mail.");
        return;
    case MX_CAUSE_IN_USE:
        SAY("The mailbox is in use by another session (locked); it is free again when that session ends.");
        return;
    case MX_CAUSE_UNAVAILABLE:
        if (step_is(r, "(connect)"))
            SAY("The server turned the connection away at once (busy, shutting down, or limiting this client). The "
                "sender retries later.");
        else
            SAY("The server is closing the connection (shutting down, overloaded, or too many errors); the sender "
                "retries later.");
        return;
    case MX_CAUSE_POLICY:
        if (step_is(r, "(connect)"))
            SAY("The server refused the connection at the greeting: usually a blocklist or a policy on the "
                "client's address.");
        else if (has(r->text, "sender address rejected") || (step_is(r, "MAIL") && !mx_words_match(r->text)))
            SAY("The sender's address was refused by the server's policy.%s", retry);
        else
            SAY("Refused by the server's policy: the %s is not authorized here.%s", policy_target(r), retry);
        return;
    case MX_CAUSE_OUT_OF_SEQUENCE:
        if (r->mail_refused)
            SAY("This came after the server refused MAIL FROM, so there was no transaction for it (RFC 5321 "
                "§4.1.4): the sender's refusal is the real cause.");
        else if (r->no_recipient && (step_is(r, "DATA") || step_is(r, "BDAT")))
            SAY("No recipient had been accepted, so the server would not take the message (RFC 5321 §4.1.1.4).");
        else
            SAY("A command came out of order (RFC 5321 §4.1.4): the client broke the sequence, or an earlier step "
                "failed unnoticed.");
        return;
    case MX_CAUSE_SYNTAX:
        SAY("The server did not accept the command's syntax or does not implement it.");
        return;
    case MX_CAUSE_TEMPORARY:
        if (step_is(r, "RCPT")) {
            const char *subj = e->subject >= 0 ? mx_enhanced_subject_text(e->subject) : NULL;
            SAY("A temporary refusal of the recipient: greylisting or a temporary policy%s%s%s; the sender retries "
                "later.",
                subj ? " (" : "", subj ? subj : "", subj ? ")" : "");
        } else {
            SAY("A temporary failure at the server (%s); the sender retries later.",
                e->subject >= 0 && mx_enhanced_subject_text(e->subject) ? mx_enhanced_subject_text(e->subject)
                                                                        : "no detail given");
        }
        return;
    default:
        if (step_is(r, "MAIL"))
            SAY("The sender was refused.");
        else if (step_is(r, "RCPT"))
            SAY("The recipient was refused.");
        else if (r->per_recipient)
            SAY("The server refused the message for this recipient after the data (RFC 2033 §4.2); the other "
                "recipients have replies of their own.");
        else if (data_end || step_is(r, "DATA"))
            SAY("The message was refused.");
        else
            SAY("The server refused the %s step.", r->step ? r->step : "last");
        return;
    }
#undef SAY
}

void mx_diag_cause_kind(const struct mx_diag_reply *r, char *out, size_t cap, struct mx_diag_verdict *v)
{
    struct mx_enhanced_code e = MX_ENHANCED_NONE;
    struct mx_diag_verdict none = { MX_CAUSE_NONE, MX_CAUSE_NONE, NULL };
    if (!v)
        v = &none;
    *v = none;
    out[0] = '\0';
    if (r->code < 400)
        return;
    if (r->enhanced && r->enhanced->cls)
        e = *r->enhanced;
    bool temp = r->code < 500;
    /* RFC 5321 §3.1: the client talked before the greeting, and the server
     * refuses it for that (postscreen's pregreet test answers 5.5.1 "Protocol
     * error" to every later step, whatever the address). */
    if (r->spoke_first && (e.subject == 5 || has(r->text, "protocol error"))) {
        v->kind = MX_CAUSE_PREGREET;
        snprintf(out, cap,
                 "The client spoke before the server's greeting (RFC 5321 §3.1), as spam bots do, and the server "
                 "refuses such clients on purpose (an anti-spam test such as Postfix postscreen's pregreet): the "
                 "refusal is about the client's behaviour, not this address or message.%s",
                 temp ? " It is temporary: the sender retries later." : "");
        return;
    }
    enum mx_cause_kind ck = code_kind(r, &e, temp);
    /* RFC 5321 §4.1.4: a 503 is about the sequence, whatever its words. */
    if (ck == MX_CAUSE_OUT_OF_SEQUENCE) {
        v->kind = ck;
        say_kind(r, ck, &e, temp, out, cap);
        return;
    }
    const struct mx_words_row *w = mx_words_match(r->text);
    enum mx_cause_kind wk = w ? w->kind : MX_CAUSE_NONE;
    /* The words refine a code that says little (550, 5.7.1), and a code
     * whose words say the same thing. */
    if (!w || agree(ck, wk) || wk == MX_CAUSE_TEMPORARY) {
        v->kind = w && !generic(wk) ? wk : w && generic(ck) ? wk : ck;
        if (v->kind == MX_CAUSE_SYNTAX && ck == MX_CAUSE_BAD_ADDRESS) /* the code names what was malformed */
            v->kind = ck;
        v->words = w && v->kind == wk ? w->phrase : NULL;
        say_kind(r, v->kind, &e, temp, out, cap);
        return;
    }
    /* The code and the words disagree: servers reuse codes loosely (a 5.2.1
     * "mailbox disabled" for a policy, 5.1.1 for a blocklist), so the words,
     * the more specific, lead, and both are said. */
    char rest[640];
    v->kind = wk;
    v->code_kind = ck;
    v->words = w->phrase;
    say_kind(r, wk, &e, temp, rest, sizeof(rest));
    char codes[24];
    if (e.cls)
        snprintf(codes, sizeof(codes), "%s", e.text);
    else
        snprintf(codes, sizeof(codes), "%d", r->code);
    snprintf(out, cap,
             "The code (%s) says: %s; the server's words (\"%s\") say: %s, and the words are the likelier "
             "cause. %s",
             codes, kind_clause(ck), w->phrase, kind_clause(wk), rest);
}

void mx_diag_cause(const struct mx_diag_reply *r, char *out, size_t cap)
{
    mx_diag_cause_kind(r, out, cap, NULL);
}

const char *mx_diag_unfinished(enum mx_close close, bool tls_failed)
{
    if (tls_failed)
        return "The TLS handshake after STARTTLS failed, so the transaction never went through.";
    switch (close) {
    case MX_CLOSE_OPEN:
    case MX_CLOSE_CAPTURE_END:
        return "The capture ended before the transaction completed: what happened next was not captured.";
    case MX_CLOSE_RST:
        return "The connection was reset (RST) before the transaction completed.";
    case MX_CLOSE_TIMEOUT:
        return "A long silence: the connection went quiet and timed out before the transaction completed.";
    case MX_CLOSE_FIN:
        return "The connection was closed (FIN) before the transaction completed.";
    case MX_CLOSE_REUSED:
        return "The client opened a new connection on the same ports before this one completed.";
    case MX_CLOSE_EVICTED:
    default:
        return "The transaction did not complete (the flow was dropped early: mxray's flow table was full).";
    }
}

enum mx_cause_kind mx_diag_unfinished_kind(enum mx_close close, bool tls_failed)
{
    if (tls_failed)
        return MX_CAUSE_TLS_FAILED;
    switch (close) {
    case MX_CLOSE_OPEN:
    case MX_CLOSE_CAPTURE_END:
        return MX_CAUSE_CAPTURE_END;
    case MX_CLOSE_RST:
        return MX_CAUSE_RESET;
    case MX_CLOSE_TIMEOUT:
        return MX_CAUSE_TIMEOUT;
    case MX_CLOSE_FIN:
        return MX_CAUSE_CLOSED;
    case MX_CLOSE_REUSED:
        return MX_CAUSE_REUSED;
    case MX_CLOSE_EVICTED:
    default:
        return MX_CAUSE_EVICTED;
    }
}

/* ---- --explain: what a reply means here ---- */

/* What a reply code means in answer to a step (RFC 5321 §4.2.3 and the
 * command's own RFC, §4.3.2 for which replies each command can get); step
 * NULL: any step. The first row that fits wins. */
struct here {
    int code;
    const char *step;
    const char *text;
};
static const struct here heres[] = {
    { 211, NULL, "system status, or a reply to HELP" },
    { 214, NULL, "help text for a human reader" },
    { 220, "(connect)", "the greeting: the server is ready for the client's EHLO" },
    { 220, "STARTTLS", "go ahead with the TLS handshake now: everything after it is encrypted (RFC 3207 §4)" },
    { 220, NULL, "the service is ready" },
    { 221, "QUIT", "goodbye: the server closes the connection, as QUIT asked" },
    { 221, NULL, "the server is closing the connection" },
    { 235, NULL, "login accepted: the client is authenticated for the rest of the session (RFC 4954 §6)" },
    { 250, "EHLO",
      "hello accepted; the lines after the first list the extensions the server offers (RFC 5321 "
      "§4.1.1.1)" },
    { 250, "LHLO", "hello accepted; the lines after the first list the extensions the server offers (RFC 2033 §4.1)" },
    { 250, "HELO", "hello accepted, in plain SMTP: no extensions are listed after HELO" },
    { 250, "MAIL", "sender accepted: a mail transaction is open, recipients come next" },
    { 250, "RCPT", "recipient accepted: the server will take the message for this address" },
    { 250, "(end of data)",
      "message accepted: from here the server is responsible for delivering it (RFC 5321 "
      "§4.1.1.4)" },
    { 250, "BDAT", "chunk accepted; after the LAST chunk, the whole message is accepted (RFC 3030 §2)" },
    { 250, "RSET", "transaction reset: the sender, recipients and data given so far are forgotten" },
    { 250, "NOOP", "nothing done, as asked: the server is alive" },
    { 250, "VRFY", "the server confirms the address (and may give the full name)" },
    { 250, "EXPN", "the mailing list's members follow, one per line" },
    { 250, "ETRN", "the server starts delivering the mail it queued for that domain (RFC 1985)" },
    { 250, NULL, "done: the requested action completed" },
    { 251, "RCPT", "recipient accepted though not local here: the server forwards the message" },
    { 251, NULL, "user not local: the server forwards" },
    { 252, "VRFY", "the server will not confirm the address, but accepts mail for it and will try delivery" },
    { 252, NULL, "the server cannot verify the user, but accepts mail and will try delivery" },
    { 253, "ETRN", "the server starts delivering the mail it queued for that domain (RFC 1985)" },
    { 334, NULL, "a SASL challenge (RFC 4954 §4): the client answers it with its next base64 step" },
    { 354, NULL, "send the message now, and end it with a line holding only a dot" },
    { 421, NULL, "the server is closing the connection (service not available); the sender retries later" },
    { 432, NULL, "a password transition is needed (RFC 4954 §6)" },
    { 450, "RCPT", "recipient deferred: the mailbox is unavailable for now; the sender retries later" },
    { 450, "MAIL", "sender deferred for now; the sender retries later" },
    { 450, NULL, "not done, for now: the mailbox is unavailable (busy, or blocked by a policy for a while)" },
    { 451, NULL, "aborted by an error at the server; the sender retries later" },
    { 452, "RCPT", "recipient deferred: the server lacks storage, or has enough recipients for this transaction" },
    { 452, NULL, "not done: the server lacks storage for now" },
    { 454, "STARTTLS",
      "TLS is not available now, for a temporary reason: the session stays in clear text (RFC 3207 "
      "§4)" },
    { 454, NULL, "a temporary authentication failure (RFC 4954 §6); the client may try again" },
    { 455, NULL, "the server cannot accommodate the parameters now" },
    { 500, NULL, "the command was not recognized (or its line was too long)" },
    { 501, NULL, "a syntax error in the command's arguments" },
    { 502, NULL, "the command is not implemented here" },
    { 503, NULL, "the command came out of order: an earlier step is missing or failed" },
    { 504, "AUTH", "that SASL mechanism is not supported here (RFC 4954 §4)" },
    { 504, NULL, "a parameter of the command is not implemented here" },
    { 521, NULL, "this host accepts no mail at all (RFC 7504)" },
    { 530, NULL, "authentication (or STARTTLS) is required before this command" },
    { 534, NULL, "the SASL mechanism is too weak for this server (RFC 4954 §6)" },
    { 535, NULL, "login refused: the credentials are invalid (RFC 4954 §6)" },
    { 538, NULL, "this SASL mechanism needs an encrypted session first (RFC 4954 §6)" },
    { 550, "RCPT", "recipient refused, for good: no such mailbox, no access, or the server's policy" },
    { 550, "MAIL", "sender refused, for good: the server's policy on the sender or the client" },
    { 550, "VRFY", "the address is not known here (or the server will not say)" },
    { 550, "(connect)", "the server refuses this client at once" },
    { 550, NULL, "refused, for good: the mailbox is unavailable, or the server's policy" },
    { 551, NULL, "the user is not local here, and the server will not forward" },
    { 552, "MAIL", "the message size declared with SIZE= is over the server's limit (RFC 1870 §6)" },
    { 552, "RCPT", "recipient refused: storage exceeded (a full mailbox, or too many recipients)" },
    { 552, NULL, "refused: more than the storage allocated (a full mailbox, or a message too big)" },
    { 553, NULL, "the mailbox name is not allowed (its syntax, or the server's policy)" },
    { 554, "(connect)", "no SMTP service here for this client: the server refuses the session" },
    { 554, NULL, "the transaction failed: refused for good" },
    { 555, NULL, "the MAIL FROM or RCPT TO parameters are not recognized here" },
    { 556, NULL, "the domain accepts no mail (RFC 7504)" },
};

/* The row of heres for code and step, or NULL. */
static const char *here_of(int code, const char *step)
{
    for (size_t i = 0; i < sizeof(heres) / sizeof(heres[0]); i++) {
        if (heres[i].code == code && (!heres[i].step || (step && !strcmp(step, heres[i].step))))
            return heres[i].text;
    }
    return NULL;
}

/* The first word of the reply text, when it is a host name (RFC 5321 §4.2:
 * the greeting and 221 begin with the server's domain): its length, or 0. */
static size_t domain_of(struct mx_slice t)
{
    size_t n = 0;
    bool dot = false;
    while (n < t.len && n < 128) {
        uint8_t c = t.ptr[n];
        if (c == '.')
            dot = true;
        else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '[' ||
                   c == ']' || (c == ':' && t.ptr[0] == '[')))
            break;
        n++;
    }
    if (dot && n < t.len && t.ptr[n] == ':' && t.ptr[0] != '[') /* "mx.example.org: Too many ..." */
        return n;
    return dot && (n == t.len || t.ptr[n] == ' ') ? n : 0;
}

/* The RFC's reply text with its placeholders (RFC 5321 §4.2.3 writes
 * "<domain>", "<forward-path>", ...) filled from the reply or said in words,
 * and "Section" shortened; appended to out (cap bytes, kept terminated). */
static void rfc_text(const struct mx_reply_info *ri, struct mx_slice text, char *out, size_t cap)
{
    static const struct {
        const char *tag, *words;
    } fills[] = {
        { "<forward-path>", "another address" },
        { "<CRLF>.<CRLF>", "a line holding only a dot" },
        { "<x>", "(the one asked)" },
        { "<n>", "some" },
        { "<reason>", "for a reason given" },
    };
    size_t o = strlen(out), dn = domain_of(text);
    const char *p = ri->text;
    while (*p && o + 1 < cap) {
        if (*p != '<') {
            out[o++] = *p++;
            continue;
        }
        const char *end = strchr(p, '>');
        if (!strncmp(p, "<domain>", 8)) {
            /* the server's name from the reply, or nothing (and its space) */
            int w = dn ? snprintf(out + o, cap - o, "%.*s", (int)dn, (const char *)text.ptr) : 0;
            o += w > 0 && (size_t)w < cap - o ? (size_t)w : 0;
            p += 8;
            if (!dn && *p == ' ')
                p++;
            continue;
        }
        bool done = false;
        for (size_t i = 0; i < sizeof(fills) / sizeof(fills[0]) && !done; i++) {
            size_t tl = strlen(fills[i].tag);
            if (!strncmp(p, fills[i].tag, tl)) {
                int w = snprintf(out + o, cap - o, "%s", fills[i].words);
                o += w > 0 && (size_t)w < cap - o ? (size_t)w : 0;
                p += tl;
                done = true;
            }
        }
        if (!done) /* an unknown placeholder: left out */
            p = end ? end + 1 : p + strlen(p);
    }
    out[o < cap ? o : cap - 1] = '\0';
}

/* The enhanced code said plainly: the registry's text, except for the
 * "other or undefined" rows (X.Y.0), which say only the class and subject,
 * and the codes the registry does not list. */
static void enhanced_plain(const struct mx_enhanced_code *c, char *out, size_t cap)
{
    static const char *const about[] = {
        "with no subject given",
        "about an address",
        "about the mailbox",
        "about the mail system",
        "about the network or routing",
        "about the mail protocol",
        "about the message content or its conversion",
        "about security or policy",
    };
    const char *cls = c->cls == 2 ? "success" : c->cls == 4 ? "temporary failure" : "permanent failure";
    const char *subj = c->subject >= 0 && c->subject <= 7 ? about[c->subject] : "about an unregistered subject";
    const struct mx_enhanced_info *i = mx_enhanced_lookup(c->subject, c->detail);
    if (c->detail == 0 && c->subject == 0)
        snprintf(out, cap, "%s, no further detail (RFC 3463 §3.1)", cls);
    else if (c->detail == 0 && c->subject >= 1 && c->subject <= 7)
        snprintf(out, cap, "%s, %s, no further detail (RFC 3463 §3.%d)", cls, subj, c->subject + 1);
    else if (i && c->subject >= 1 && c->subject <= 7)
        mx_diag_enhanced_meaning(c, out, cap);
    else
        snprintf(out, cap, "%s, %s, with a detail the registry does not list", cls, subj);
}

void mx_diag_explain(int code, const char *step, const struct mx_enhanced_code *enh, struct mx_slice text, char *out,
                     size_t cap)
{
    const char *here = here_of(code, step);
    const struct mx_reply_info *ri = mx_reply_lookup(code, step && step[0] != '(' ? step : NULL);
    size_t o;

    if (cap == 0)
        return;
    if (here)
        snprintf(out, cap, "%d: %s", code, here);
    else
        snprintf(out, cap, "%d: %s", code,
                 code < 300   ? "success"
                 : code < 400 ? "go on: the server waits for more"
                 : code < 500 ? "a temporary failure; the sender retries later"
                              : "a permanent failure");
    if (ri) {
        o = strlen(out);
        char ref[48] = "";
        const char *sec = strstr(ri->reference, ", Section");
        if (sec && (size_t)(sec - ri->reference) < 20) {
            const char *num = sec + 9;
            while (*num && (*num < '0' || *num > '9'))
                num++;
            snprintf(ref, sizeof(ref), "%.*s §%s", (int)(sec - ri->reference), ri->reference, num);
        } else {
            snprintf(ref, sizeof(ref), "%s", ri->reference);
        }
        snprintf(out + o, cap - o, "; %s calls it \"", ref);
        rfc_text(ri, text, out, cap);
        o = strlen(out);
        snprintf(out + o, cap - o, "\"");
    }
    if (enh && enh->cls) {
        char em[256];
        enhanced_plain(enh, em, sizeof(em));
        o = strlen(out);
        snprintf(out + o, cap - o, "; %s: %s", enh->text, em);
    }
    if (code >= 400) {
        const struct mx_words_row *w = mx_words_match(text);
        o = strlen(out);
        if (w && w->kind != MX_CAUSE_TEMPORARY)
            snprintf(out + o, cap - o, "; the server's words (\"%s\") say: %s", w->phrase, kind_clause(w->kind));
    }
}

void mx_diag_words_note(struct mx_slice text, char *out, size_t cap)
{
    const struct mx_words_row *w = mx_words_match(text);
    if (cap == 0)
        return;
    out[0] = '\0';
    if (w)
        snprintf(out, cap, " The server's words (\"%s\") say: %s.", w->phrase, kind_clause(w->kind));
}
