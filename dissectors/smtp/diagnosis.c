/* diagnosis.c - plain-language causes for SMTP failures. The meanings come
 * from the generated code tables (dissectors/smtp/codes.h); the causes are
 * rules over the step, the codes, the reply text and the sizes. */
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
    return r ? r->text : NULL;
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

void mx_diag_cause(const struct mx_diag_reply *r, char *out, size_t cap)
{
    struct mx_enhanced_code e = MX_ENHANCED_NONE;
    out[0] = '\0';
    if (r->code < 400)
        return;
    if (r->enhanced && r->enhanced->cls)
        e = *r->enhanced;
    bool temp = r->code < 500;
    bool data_end = step_is(r, "(end of data)") || step_is(r, "BDAT");
    const char *retry = temp ? " It is temporary: the sender retries later." : "";
    struct mx_slice t = r->text;
#define SAY(...) snprintf(out, cap, __VA_ARGS__)
    /* RFC 5321 §3.1: the client talked before the greeting, and the server
     * refuses it for that (postscreen's pregreet test answers 5.5.1 "Protocol
     * error" to every later step, whatever the address). */
    if (r->spoke_first && (e.subject == 5 || has(t, "protocol error"))) {
        SAY("The client spoke before the server's greeting (RFC 5321 §3.1), as spam bots do, and the server "
            "refuses such clients on purpose (an anti-spam test such as Postfix postscreen's pregreet): the "
            "refusal is about the client's behaviour, not this address or message.%s",
            retry);
        return;
    }
    /* RFC 5321 §3.6: relaying is the server's choice. */
    if (has(t, "relay access denied") || has(t, "relaying denied") || has(t, "not permitted to relay") ||
        has(t, "relay not permitted") || has(t, "unable to relay") || has(t, "relaying not allowed") ||
        has(t, "relay denied")) {
        SAY("Relaying denied: the server does not relay mail for this client to that domain. Authenticate on "
            "the submission port, or send to the recipient domain's own mail exchanger.%s",
            retry);
        return;
    }
    /* RFC 2033 §4.2: LMTP refuses a delivery recipient by recipient, after the data; a full
     * mailbox (X.2.2, or a quota named) is then this recipient's, not the message's size. */
    if (r->per_recipient &&
        ((e.subject == 2 && e.detail == 2) || has(t, "quota") || has(t, "mailbox is full") || has(t, "mailbox full"))) {
        SAY("The recipient's mailbox is full (over quota): the server took the message for the other recipients "
            "and refused it for this one after the data (RFC 2033 §4.2).%s",
            retry);
        return;
    }
    /* RFC 1870, RFC 3463 X.3.4: size. */
    if ((e.subject == 3 && e.detail == 4) || (e.subject == 2 && e.detail == 3) ||
        (r->code == 552 && (data_end || step_is(r, "MAIL"))) || has(t, "message size exceeds") || has(t, "too big") ||
        has(t, "too large")) {
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
    if (has(t, "greylist") || has(t, "graylist") || has(t, "grey-list")) {
        SAY("Greylisting: the server defers mail from senders it has not seen before; a compliant sender retries "
            "after a few minutes and gets through.");
        return;
    }
    if ((e.subject == 5 && e.detail == 3) || has(t, "too many recipients")) {
        SAY("Too many recipients in one transaction: the server takes the rest in another transaction.%s", retry);
        return;
    }
    if (e.subject == 7 && e.detail == 8) {
        SAY("Bad credentials: the server rejected the user name or the password (or token).");
        return;
    }
    if (r->code == 535 || step_is(r, "AUTH")) {
        SAY("Authentication failed (%d)%s.%s", r->code, temp ? ", temporarily" : "", retry);
        return;
    }
    if (r->code == 530 || (e.subject == 7 && (e.detail == 0 || e.detail == 11)) || has(t, "authentication required") ||
        has(t, "must issue a starttls")) {
        SAY("The server requires authentication (or TLS) before this step.%s", retry);
        return;
    }
    if (step_is(r, "(connect)")) {
        SAY(r->code == 421 ? "The server turned the connection away at once (busy, shutting down, or limiting "
                             "this client). The sender retries later."
                           : "The server refused the connection at the greeting: usually a blocklist or a "
                             "policy on the client's address.");
        return;
    }
    if (r->code == 421) {
        SAY("The server is closing the connection (shutting down, overloaded, or too many errors); the sender "
            "retries later.");
        return;
    }
    if (e.subject == 1 && (e.detail == 1 || e.detail == 0) && !temp && step_is(r, "RCPT")) {
        SAY("The recipient's mailbox does not exist at this server (unknown user); check the address.");
        return;
    }
    if (step_is(r, "RCPT") && !temp &&
        (has(t, "user unknown") || has(t, "no such user") || has(t, "unknown user") || has(t, "does not exist") ||
         has(t, "mailbox unavailable"))) {
        SAY("The recipient's mailbox does not exist at this server (unknown user); check the address.");
        return;
    }
    if (e.subject == 1 && e.detail == 2) {
        SAY("The recipient's domain does not exist or accepts no mail.%s", retry);
        return;
    }
    if (e.subject == 1 && e.detail == 3) {
        SAY("The address is not valid (its syntax).");
        return;
    }
    if (e.subject == 1 && e.detail == 7) {
        SAY("The sender's address is not valid (its syntax, RFC 5321 §4.1.2).");
        return;
    }
    if (e.subject == 1 && e.detail == 8) {
        SAY("The sender's domain was refused: it does not exist or cannot be checked.%s", retry);
        return;
    }
    if (e.subject == 2 && e.detail == 2) {
        SAY("The recipient's mailbox is full.%s", retry);
        return;
    }
    if (e.subject == 2 && e.detail == 1 && !temp) {
        SAY("The recipient's mailbox is disabled and accepts no mail.");
        return;
    }
    if (e.subject == 7 && e.detail >= 20 && e.detail <= 27) {
        SAY("The message failed the receiving domain's authentication checks (SPF, DKIM or DMARC).%s", retry);
        return;
    }
    if (has(t, "sender address rejected") || (step_is(r, "MAIL") && e.subject == 7)) {
        SAY("The sender's address was refused by the server's policy.%s", retry);
        return;
    }
    if (has(t, "blacklist") || has(t, "blocklist") || has(t, "spamhaus") || has(t, " rbl") ||
        has(t, "client host rejected")) {
        SAY("The client's address is on a blocklist the server uses.%s", retry);
        return;
    }
    if (e.subject == 7 || r->code == 554) {
        SAY("Refused by the server's policy: the %s is not authorized here.%s",
            step_is(r, "MAIL")   ? "sender"
            : step_is(r, "RCPT") ? "recipient (or the client, for it)"
                                 : "message",
            retry);
        return;
    }
    if (r->code == 503 && r->mail_refused) {
        SAY("This came after the server refused MAIL FROM, so there was no transaction for it (RFC 5321 "
            "§4.1.4): the sender's refusal is the real cause.");
        return;
    }
    if (r->code == 503 && r->no_recipient && (step_is(r, "DATA") || step_is(r, "BDAT"))) {
        SAY("No recipient had been accepted, so the server would not take the message (RFC 5321 §4.1.1.4).");
        return;
    }
    if (r->code == 503) {
        SAY("A command came out of order (RFC 5321 §4.1.4): the client broke the sequence, or an earlier step "
            "failed unnoticed.");
        return;
    }
    if (r->code >= 500 && r->code <= 504) {
        SAY("The server did not accept the command's syntax or does not implement it.");
        return;
    }
    if (temp && step_is(r, "RCPT")) {
        const char *subj = e.subject >= 0 ? mx_enhanced_subject_text(e.subject) : NULL;
        SAY("A temporary refusal of the recipient: greylisting or a temporary policy%s%s%s; the sender retries "
            "later.",
            subj ? " (" : "", subj ? subj : "", subj ? ")" : "");
        return;
    }
    if (temp) {
        SAY("A temporary failure at the server (%s); the sender retries later.",
            e.subject >= 0 && mx_enhanced_subject_text(e.subject) ? mx_enhanced_subject_text(e.subject)
                                                                  : "no detail given");
        return;
    }
    if (step_is(r, "MAIL")) {
        SAY("The sender was refused.");
        return;
    }
    if (step_is(r, "RCPT")) {
        SAY("The recipient was refused.");
        return;
    }
    if (r->per_recipient) {
        SAY("The server refused the message for this recipient after the data (RFC 2033 §4.2); the other "
            "recipients have replies of their own.");
        return;
    }
    if (data_end || step_is(r, "DATA")) {
        SAY("The message was refused.");
        return;
    }
    SAY("The server refused the %s step.", r->step ? r->step : "last");
#undef SAY
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
