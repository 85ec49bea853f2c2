/* words.c - the phrases real MTAs and mail services write in their refusals,
 * and the cause each names; one source per row (the MTA's source file or the
 * vendor's page). Matching is a bounded substring search, never a regex. */
#define _GNU_SOURCE /* memmem (glibc: two-way, linear time) */
#include "dissectors/smtp/words.h"

#include <string.h>

static const char *const kind_names[MX_CAUSE_COUNT] = {
    [MX_CAUSE_NONE] = "",
    [MX_CAUSE_POLICY] = "policy",
    [MX_CAUSE_BLOCKLIST] = "blocklist",
    [MX_CAUSE_GREYLISTING] = "greylisting",
    [MX_CAUSE_RATE_LIMIT] = "rate_limit",
    [MX_CAUSE_SPF_DKIM_DMARC] = "spf_dkim_dmarc",
    [MX_CAUSE_TLS_REQUIRED] = "tls_required",
    [MX_CAUSE_QUOTA] = "quota",
    [MX_CAUSE_UNKNOWN_USER] = "unknown_user",
    [MX_CAUSE_RELAY_DENIED] = "relay_denied",
    [MX_CAUSE_TOO_BIG] = "too_big",
    [MX_CAUSE_CONTENT] = "content",
    [MX_CAUSE_AUTH_FAILED] = "auth_failed",
    [MX_CAUSE_AUTH_REQUIRED] = "auth_required",
    [MX_CAUSE_MAILBOX_DISABLED] = "mailbox_disabled",
    [MX_CAUSE_UNKNOWN_DOMAIN] = "unknown_domain",
    [MX_CAUSE_BAD_ADDRESS] = "bad_address",
    [MX_CAUSE_TOO_MANY_RECIPIENTS] = "too_many_recipients",
    [MX_CAUSE_IN_USE] = "in_use",
    [MX_CAUSE_UNAVAILABLE] = "unavailable",
    [MX_CAUSE_PREGREET] = "pregreet",
    [MX_CAUSE_OUT_OF_SEQUENCE] = "out_of_sequence",
    [MX_CAUSE_SYNTAX] = "syntax",
    [MX_CAUSE_TEMPORARY] = "temporary",
    [MX_CAUSE_REFUSED] = "refused",
    [MX_CAUSE_CLIENT_RESET] = "client_reset",
    [MX_CAUSE_CLIENT_QUIT] = "client_quit",
    [MX_CAUSE_SMUGGLED] = "smuggled",
    [MX_CAUSE_SERVER_CLOSED] = "server_closed",
    [MX_CAUSE_NO_REPLY] = "no_reply",
    [MX_CAUSE_CLOSED] = "closed",
    [MX_CAUSE_RESET] = "reset",
    [MX_CAUSE_TIMEOUT] = "timeout",
    [MX_CAUSE_CAPTURE_END] = "capture_end",
    [MX_CAUSE_TLS_FAILED] = "tls_failed",
    [MX_CAUSE_EVICTED] = "evicted",
    [MX_CAUSE_REUSED] = "reused",
};

const char *mx_cause_kind_name(enum mx_cause_kind k)
{
    return (unsigned)k < MX_CAUSE_COUNT && kind_names[k] ? kind_names[k] : "";
}

/*
 * The table. The first row that matches wins, so the specific comes before
 * the general: a blocklist named in a "Recipient address rejected" reply is a
 * blocklist, "sending quota exceeded" is a rate limit before "quota exceeded"
 * is a full mailbox, and the bare policy words come last. Phrases are lower
 * case; each comment names where the wording comes from:
 *   postfix  src/smtpd/smtpd.c, src/smtpd/smtpd_check.c, src/postscreen/,
 *            src/cleanup/cleanup_message.c (Postfix 3.x source)
 *   exim     src/acl.c, src/smtp_in.c, src/transports/appendfile.c and the
 *            Exim specification (chapter "Access control lists")
 *   sendmail sendmail/srvrsmtp.c, cf/m4/proto.m4, cf/feature/dnsbl.m4
 *   dovecot  src/lmtp/, src/plugins/quota/quota.c, src/login-common/
 *   MS       https://learn.microsoft.com/en-us/exchange/mail-flow-best-practices/
 *            non-delivery-reports-in-exchange-online/non-delivery-reports-in-exchange-online
 *   Gmail    https://support.google.com/a/answer/3726730 (Gmail SMTP errors and codes)
 *   Yahoo    https://senders.yahooinc.com/smtp-error-codes/
 */
static const struct mx_words_row rows[] = {
    /* ---- greylisting (RFC 6647) ---- */
    { "greylist", MX_CAUSE_GREYLISTING }, /* postgrey: "Greylisted, see http://postgrey.schweikert.ch/help/..." */
    { "graylist", MX_CAUSE_GREYLISTING }, /* US spelling, "graylisted": bounce classifiers (sisimai) list it */

    /* ---- blocklists (DNSBL, RFC 5782) ---- */
    { "blocked using",
      MX_CAUSE_BLOCKLIST }, /* postfix smtpd_check.c default_rbl_reply: "... blocked using zen.spamhaus.org" */
    { "black list at", MX_CAUSE_BLOCKLIST }, /* exim acl.c dnslists: "rejected because %s is in a black list at %s" */
    { "blacklisted", MX_CAUSE_BLOCKLIST },   /* exim wiki BlackLists: "REJECTED - x is blacklisted at ..."; Barracuda */
    { "blocklist", MX_CAUSE_BLOCKLIST },     /* Spamhaus and MS wording ("on our block list", "blocklisted") */
    { "block list", MX_CAUSE_BLOCKLIST },    /* MS: "part of their network is on our block list (S3150)" */
    { "blacklist", MX_CAUSE_BLOCKLIST },     /* older wording: "Mail from x rejected by Abusix blacklist" */
    { "black list", MX_CAUSE_BLOCKLIST },    /* Barracuda: "Realtime Black List"; exim above */
    { "spamhaus", MX_CAUSE_BLOCKLIST },      /* Spamhaus zen/sbl/xbl/pbl, Yahoo "[BL21] ... in Spamhaus's list" */
    { "spamcop", MX_CAUSE_BLOCKLIST }, /* SpamCop bl.spamcop.net: "Blocked - see https://www.spamcop.net/bl.shtml?" */
    { "barracudacentral", MX_CAUSE_BLOCKLIST },     /* Barracuda b.barracudacentral.org */
    { "barracuda reputation", MX_CAUSE_BLOCKLIST }, /* Barracuda: "blocked using Barracuda Reputation" */
    { "sorbs.net", MX_CAUSE_BLOCKLIST },            /* SORBS dnsbl.sorbs.net */
    { "dnsbl", MX_CAUSE_BLOCKLIST },          /* generic: "DNSBL listed at ..." (exim configs), sendmail dnsbl.m4 */
    { "realtime black", MX_CAUSE_BLOCKLIST }, /* Barracuda: "Realtime Black List server" */
    { " listed at ", MX_CAUSE_BLOCKLIST }, /* sendmail cf/feature/dnsbl.m4: "Rejected: x listed at zen.spamhaus.org" */
    { "banned sending ip", MX_CAUSE_BLOCKLIST }, /* MS 5.7.606: "Access denied, banned sending IP [x]" */
    { "traffic not accepted from this ip", MX_CAUSE_BLOCKLIST }, /* MS 5.7.708 */
    { "low reputation", MX_CAUSE_BLOCKLIST }, /* Gmail 5.7.1: "... this message has been blocked ... low reputation" */

    /* ---- SPF, DKIM, DMARC (RFC 7208, RFC 6376, RFC 7489; RFC 7372 X.7.20-27) ---- */
    { "dmarc", MX_CAUSE_SPF_DKIM_DMARC }, /* OpenDMARC: "rejected by DMARC policy for %s"; Gmail 5.7.26; MS 5.7.509 */
    { "dkim", MX_CAUSE_SPF_DKIM_DMARC },  /* Gmail 5.7.26: "... at least one of SPF or DKIM" */
    { "spf", MX_CAUSE_SPF_DKIM_DMARC },   /* postfix-policyd-spf-python: "Message rejected due to: SPF fail" */
    { "sender policy framework", MX_CAUSE_SPF_DKIM_DMARC },       /* MS 5.7.23 */
    { "this mail is unauthenticated", MX_CAUSE_SPF_DKIM_DMARC },  /* Gmail 5.7.26 (2024 sender rules) */
    { "sender is unauthenticated", MX_CAUSE_SPF_DKIM_DMARC },     /* Yahoo 5.7.9 */
    { "required authentication level", MX_CAUSE_SPF_DKIM_DMARC }, /* MS 5.7.515 */

    /* ---- TLS required (RFC 3207, RFC 8314) ---- */
    { "must issue a starttls",
      MX_CAUSE_TLS_REQUIRED },                 /* postfix smtpd.c: "530 5.7.0 Must issue a STARTTLS command first" */
    { "tls required", MX_CAUSE_TLS_REQUIRED }, /* Gmail: "421 4.7.0 TLS required for RCPT domain" */
    { "encryption required", MX_CAUSE_TLS_REQUIRED }, /* RFC 4954 §6 538 text, postfix smtpd_sasl_proto.c */
    { "plaintext authentication disallowed",
      MX_CAUSE_TLS_REQUIRED }, /* dovecot login-common: "[AUTH] Plaintext ... disallowed on non-secure (SSL/TLS) connections" */
    { "tls 1.0 and 1.1 are not supported", MX_CAUSE_TLS_REQUIRED }, /* MS 4.7.66 */
    { "[privacyrequired]", MX_CAUSE_TLS_REQUIRED },                 /* IMAP RFC 5530 PRIVACYREQUIRED */

    /* ---- rate limits ---- */
    { "too quickly",
      MX_CAUSE_RATE_LIMIT }, /* Gmail 4.2.1: "The user you are trying to contact is receiving mail too quickly" */
    { "at a rate that prevents", MX_CAUSE_RATE_LIMIT }, /* Gmail 4.2.1 */
    { "unusual rate",
      MX_CAUSE_RATE_LIMIT }, /* Gmail 4.7.0: "unusual rate of unsolicited mail originating from your IP" */
    { "unexpected volume",
      MX_CAUSE_RATE_LIMIT }, /* Yahoo [TSS04]: "temporarily deferred due to unexpected volume or user complaints" */
    { "rate limit",
      MX_CAUSE_RATE_LIMIT }, /* sendmail proto.m4: "Connection rate limit exceeded."; Gmail "Peak SMTP relay limit" */
    { "rate exceeds",
      MX_CAUSE_RATE_LIMIT }, /* exim spec ratelimit example: "Sender rate exceeds $sender_rate_limit ..." */
    { "too many connections",
      MX_CAUSE_RATE_LIMIT }, /* postfix smtpd.c anvil: "421 4.7.0 %s Error: too many connections from %s" */
    { "too many concurrent", MX_CAUSE_RATE_LIMIT }, /* exim smtp_in.c: "421 Too many concurrent SMTP connections" */
    { "too many open connections",
      MX_CAUSE_RATE_LIMIT }, /* sendmail proto.m4 conncontrol: "421 4.3.2 Too many open connections." */
    { "too much mail",
      MX_CAUSE_RATE_LIMIT }, /* postfix smtpd_check.c anvil: "450 4.7.1 Error: too much mail from %s" */
    { "too many login attempts", MX_CAUSE_RATE_LIMIT }, /* Gmail 454 4.7.0 */
    { "sending quota", MX_CAUSE_RATE_LIMIT },           /* Gmail 5.4.5: "Daily user sending quota exceeded" */
    { "daily limit", MX_CAUSE_RATE_LIMIT },   /* MS 5.1.90: "you've reached your daily limit for message recipients" */
    { "relay limit", MX_CAUSE_RATE_LIMIT },   /* Gmail 4.2.1: "Peak SMTP relay limit exceeded for customer" */
    { "[login-delay]", MX_CAUSE_RATE_LIMIT }, /* POP3 RFC 2449 §8.1.1 LOGIN-DELAY */
    { "[limit]", MX_CAUSE_RATE_LIMIT },       /* IMAP RFC 5530 LIMIT */

    /* ---- full mailbox (RFC 3463 X.2.2) ---- */
    { "over quota", MX_CAUSE_QUOTA },      /* Gmail 4.2.2: "The email account that you tried to reach is over quota" */
    { "overquota", MX_CAUSE_QUOTA },       /* IMAP RFC 5530 OVERQUOTA; MS "QuotaExceededException" is below */
    { "quota exceeded", MX_CAUSE_QUOTA },  /* dovecot quota.c: "Quota exceeded (mailbox for user is full)" */
    { "quotaexceeded", MX_CAUSE_QUOTA },   /* MS 5.2.2: "STOREDRV.Deliver.Exception:QuotaExceededException" */
    { "mailbox full", MX_CAUSE_QUOTA },    /* MS 5.2.2 "mailbox full"; postfix virtual/local bounces */
    { "mailbox is full", MX_CAUSE_QUOTA }, /* exim appendfile.c: "mailbox is full"; dovecot */

    /* ---- too big (RFC 1870, RFC 3463 X.3.4, X.2.3) ---- */
    { "size exceeds",
      MX_CAUSE_TOO_BIG }, /* postfix smtpd.c "Message size exceeds fixed limit"; sendmail srvrsmtp.c; exim */
    { "exceeded google's message size", MX_CAUSE_TOO_BIG }, /* Gmail 5.3.4 */
    { "message too big", MX_CAUSE_TOO_BIG },                /* RFC 3463 X.3.4 sample text, used verbatim by many */
    { "message too large", MX_CAUSE_TOO_BIG },  /* MS 5.2.3: "RESOLVER.RST.RecipSizeLimit; message too large" */
    { "too big for system", MX_CAUSE_TOO_BIG }, /* RFC 3463 X.3.4 sample */
    { "databytes",
      MX_CAUSE_TOO_BIG }, /* qmail qmail-smtpd.c: "552 sorry, that message size exceeds my databytes limit" */

    /* ---- content: spam, viruses ---- */
    { "virus", MX_CAUSE_CONTENT },    /* exim spec: "This message contains a virus ($malware_name)."; amavisd */
    { "infected", MX_CAUSE_CONTENT }, /* amavisd-new: "Reject ... INFECTED: Eicar-Test-Signature"; clamav-milter */
    { "malware", MX_CAUSE_CONTENT },  /* exim malware ACL condition; MS 5.7.1 "... malware" */
    { "content rejected",
      MX_CAUSE_CONTENT },         /* postfix cleanup: header/body_checks REJECT default "message content rejected" */
    { "spam", MX_CAUSE_CONTENT }, /* rspamd: "Spam message rejected"; amavisd "- spam"; MS 5.7.501 "spam abuse" */
    { "unsolicited", MX_CAUSE_CONTENT }, /* Gmail 5.7.1: "this message is likely unsolicited mail" */
    { "content presents a potential security issue", MX_CAUSE_CONTENT }, /* Gmail 5.7.0 */

    /* ---- relaying (RFC 5321 §3.6) ---- */
    { "relay access denied", MX_CAUSE_RELAY_DENIED }, /* postfix smtpd_check.c reject_unauth_destination */
    { "relaying denied", MX_CAUSE_RELAY_DENIED },     /* sendmail proto.m4: "550 5.7.1 <x>... Relaying denied" */
    { "relay not permitted", MX_CAUSE_RELAY_DENIED }, /* exim default configure: "relay not permitted" */
    { "unable to relay", MX_CAUSE_RELAY_DENIED }, /* MS 5.7.54: "Unable to relay recipient in non-accepted domain" */
    { "relay denied", MX_CAUSE_RELAY_DENIED },    /* Gmail 5.7.0 "Mail relay denied"; MS 5.7.64 "Relay Access Denied" */
    { "rcpthosts",
      MX_CAUSE_RELAY_DENIED }, /* qmail-smtpd.c: "553 sorry, that domain isn't in my list of allowed rcpthosts" */

    /* ---- unknown domain (RFC 3463 X.1.2, X.1.8, RFC 7505 null MX) ---- */
    { "domain not found",
      MX_CAUSE_UNKNOWN_DOMAIN }, /* postfix smtpd_check.c reject_unknown_{sender,recipient}_domain */
    { "domain does not exist",
      MX_CAUSE_UNKNOWN_DOMAIN }, /* sendmail srvrsmtp.c: "Domain of sender address %s does not exist" */
    { "domain of sender address", MX_CAUSE_UNKNOWN_DOMAIN }, /* sendmail: "... does not resolve" variant */
    { "nullmx",
      MX_CAUSE_UNKNOWN_DOMAIN }, /* postfix src/dns/dns_lookup.c (RFC 7505): "Domain %s does not accept mail (nullMX)" */

    /* ---- unknown user (RFC 3463 X.1.1) ---- */
    { "user unknown",
      MX_CAUSE_UNKNOWN_USER }, /* postfix smtpd_check.c "User unknown in local recipient table"; sendmail */
    { "unknown user", MX_CAUSE_UNKNOWN_USER }, /* exim (Debian exim4 routers): "rejected RCPT <x>: Unknown user" */
    { "user doesn't exist", MX_CAUSE_UNKNOWN_USER }, /* dovecot lmtp: "550 5.1.1 <x> User doesn't exist: x" */
    { "does not exist",
      MX_CAUSE_UNKNOWN_USER }, /* Gmail 5.1.1: "The email account that you tried to reach does not exist" */
    { "doesn't have a", MX_CAUSE_UNKNOWN_USER },    /* Yahoo: "This user doesn't have a yahoo.com account" */
    { "recipientnotfound", MX_CAUSE_UNKNOWN_USER }, /* MS 5.1.10: "RESOLVER.ADR.RecipientNotFound" */
    { "recipnotfound", MX_CAUSE_UNKNOWN_USER },     /* MS 5.1.1: "RESOLVER.ADR.RecipNotFound; not found" */
    { "recipient not found",
      MX_CAUSE_UNKNOWN_USER }, /* MS 5.1.10: "Recipient ... not found by SMTP address lookup" (spaced form) */
    { "mailbox not found", MX_CAUSE_UNKNOWN_USER }, /* Yahoo 552: "Requested mail action aborted, mailbox not found" */
    { "no mailbox here", MX_CAUSE_UNKNOWN_USER },   /* qmail: "550 sorry, no mailbox here by that name. (#5.1.1)" */
    { "unrouteable address", MX_CAUSE_UNKNOWN_USER }, /* exim verify: "Unrouteable address" */
    { "no such mailbox",
      MX_CAUSE_UNKNOWN_USER }, /* LBBS net_smtp: smtp_abort(550, 5.1.1, "No such mailbox"); IMAP servers */

    /* ---- disabled mailbox (RFC 3463 X.2.1) ---- */
    { "account that you tried to reach is disabled", MX_CAUSE_MAILBOX_DISABLED }, /* Gmail 5.2.1 */
    { "mailbox disabled", MX_CAUSE_MAILBOX_DISABLED },                            /* RFC 3463 X.2.1 sample text */
    { "account has been disabled",
      MX_CAUSE_MAILBOX_DISABLED }, /* Gmail/Yahoo: "... account has been disabled or discontinued" */

    /* ---- authentication (RFC 4954) ---- */
    { "authentication failed",
      MX_CAUSE_AUTH_FAILED }, /* postfix smtpd_sasl_proto.c: "535 5.7.8 Error: authentication failed"; dovecot */
    { "authentication unsuccessful", MX_CAUSE_AUTH_FAILED }, /* MS 5.7.139/5.7.3 */
    { "password not accepted", MX_CAUSE_AUTH_FAILED },       /* Gmail 535 5.7.8: "Username and Password not accepted" */
    { "credentials invalid", MX_CAUSE_AUTH_FAILED },         /* RFC 4954 §6 535 text */
    { "[authenticationfailed]", MX_CAUSE_AUTH_FAILED },      /* IMAP RFC 5530 AUTHENTICATIONFAILED */
    { "[auth]", MX_CAUSE_AUTH_FAILED },                      /* POP3 RFC 3206 §4 AUTH response code */
    { "authentication required", MX_CAUSE_AUTH_REQUIRED },   /* RFC 4954 §6 530 text; Gmail 530 5.7.0 */
    { "not authenticated", MX_CAUSE_AUTH_REQUIRED },         /* MS 5.7.57: "Client not authenticated to send mail" */

    /* ---- too many recipients (RFC 3463 X.5.3) ---- */
    { "too many recipients",
      MX_CAUSE_TOO_MANY_RECIPIENTS }, /* postfix smtpd.c "452 4.5.3 Error: too many recipients"; Gmail, MS */

    /* ---- mailbox in use ---- */
    { "[in-use]", MX_CAUSE_IN_USE }, /* POP3 RFC 2449 §8.1.2 IN-USE */
    { "[inuse]", MX_CAUSE_IN_USE },  /* IMAP RFC 5530 INUSE */

    /* ---- the server busy ---- */
    { "server busy", MX_CAUSE_UNAVAILABLE }, /* Gmail 421 4.4.5 "Server busy, try again later."; MS 4.7.500 */
    { "[sys/temp]", MX_CAUSE_TEMPORARY },    /* POP3 RFC 3206 §4 SYS/TEMP */
    { "[unavailable]", MX_CAUSE_TEMPORARY }, /* IMAP RFC 5530 UNAVAILABLE */

    /* ---- the dialogue itself (RFC 5321 §4.1.4, §4.2.4) ---- */
    { "need mail command", MX_CAUSE_OUT_OF_SEQUENCE }, /* postfix smtpd.c: "503 5.5.1 Error: need MAIL command" */
    { "need rcpt command", MX_CAUSE_OUT_OF_SEQUENCE }, /* postfix smtpd.c: "503 5.5.1 Error: need RCPT command" */
    { "need mail before", MX_CAUSE_OUT_OF_SEQUENCE },  /* sendmail srvrsmtp.c: "503 5.0.0 Need MAIL before RCPT" */
    { "need rcpt", MX_CAUSE_OUT_OF_SEQUENCE },         /* sendmail srvrsmtp.c: "503 5.0.0 Need RCPT (recipient)" */
    { "bad sequence", MX_CAUSE_OUT_OF_SEQUENCE },      /* RFC 5321 §4.2.3 503 text, echoed by many */
    { "command unrecognized", MX_CAUSE_SYNTAX },       /* sendmail srvrsmtp.c: "500 5.5.1 Command unrecognized" */
    { "unrecognized command", MX_CAUSE_SYNTAX },       /* exim smtp_in.c: "500 unrecognized command" */
    { "unknown command", MX_CAUSE_SYNTAX }, /* postfix smtpd.c: "502 5.5.2 Error: command not recognized"; qmail */
    { "command not recognized", MX_CAUSE_SYNTAX }, /* postfix smtpd.c */
    { "syntax error", MX_CAUSE_SYNTAX },           /* RFC 5321 §4.2.3 500/501 texts; sendmail, exim */

    /* ---- policy: last, the general words ---- */
    { "puzzle", MX_CAUSE_POLICY },           /* "521 5.2.1 MUST COMPLETE IMAGE PUZZLE BEFORE SENDING" (issue 27) */
    { "not in whitelist", MX_CAUSE_POLICY }, /* Gmail 4.7.0: "IP not in whitelist for RCPT domain" */
    { "access denied", MX_CAUSE_POLICY },    /* postfix smtpd_check.c access(5) REJECT default: "Access denied" */
    { "client host rejected",
      MX_CAUSE_POLICY }, /* postfix smtpd_check.c: "Client host rejected: cannot find your hostname" */
    { "sender address rejected", MX_CAUSE_POLICY }, /* postfix smtpd_check.c */
    { "helo command rejected",
      MX_CAUSE_POLICY }, /* postfix smtpd_check.c: "Helo command rejected: need fully-qualified hostname" */
    { "administrative prohibition", MX_CAUSE_POLICY }, /* exim acl.c default deny message */
    { "policy", MX_CAUSE_POLICY }, /* Yahoo 5.7.9 "Message not accepted for policy reasons"; Gmail gcdp */
    { "not authorized",
      MX_CAUSE_POLICY }, /* Gmail 5.7.1: "The IP you're using ... is not authorized to send email directly" */
    { "permanently deferred", MX_CAUSE_POLICY }, /* Yahoo [TSS09]: "All messages from x will be permanently deferred" */
    { "blocked", MX_CAUSE_POLICY },              /* last: "blocked" with no list named */
};

size_t mx_words_count(void)
{
    return sizeof(rows) / sizeof(rows[0]);
}

const struct mx_words_row *mx_words_at(size_t i)
{
    return i < mx_words_count() ? &rows[i] : NULL;
}

const struct mx_words_row *mx_words_match(struct mx_slice text)
{
    char low[MX_WORDS_MAX];
    size_t n = text.len < sizeof(low) ? text.len : sizeof(low);

    if (!text.ptr || n == 0)
        return NULL;
    /* One pass: ASCII lower case, line breaks and tabs as spaces, and what
     * lies between '<' and '>' (an address, RFC 5321 §4.1.2: its local part
     * is no word of the server's, "<spammer@...>") blanked. */
    bool addr = false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = text.ptr[i];
        if (c == '<')
            addr = true;
        else if (c == '>')
            addr = false;
        if (addr)
            c = ' ';
        else if (c >= 'A' && c <= 'Z')
            c = (uint8_t)(c + ('a' - 'A'));
        else if (c == '\r' || c == '\n' || c == '\t')
            c = ' ';
        low[i] = (char)c;
    }
    /* The bytes the text holds: a phrase with a byte it lacks cannot match,
     * and costs no search (most rows, for most texts). */
    bool present[256] = { false };
    for (size_t i = 0; i < n; i++)
        present[(uint8_t)low[i]] = true;
    for (size_t r = 0; r < mx_words_count(); r++) {
        const char *ph = rows[r].phrase;
        size_t len = 0;
        while (ph[len] && present[(uint8_t)ph[len]])
            len++;
        if (!ph[len] && memmem(low, n, ph, len))
            return &rows[r];
    }
    return NULL;
}
