/* audit.c - the auditor: per server, what the sessions showed of its TLS,
 * authentication, probing and relaying posture, and the findings that
 * follow (RFC 8314, RFC 3207, RFC 2595, RFC 9051 §11). It reads the records
 * the dissectors emit, as a reporter, and keeps a bounded summary per server. */
#include "dissectors/findings/audit.h"

#include "dissectors/mail/proxy.h"
#include "dissectors/message/magic.h"

#include "core/buf.h"
#include "core/hash.h"
#include "core/idmap.h"
#include "core/mx.h"
#include "event/text.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define AUDIT_MAX_SERVERS 4096
#define AUDIT_EVIDENCE 8 /* evidence items kept per finding; more are counted */
#define AUDIT_DETAIL 384 /* bytes of a finding's detail text */

enum severity { SEV_INFO, SEV_LOW, SEV_MEDIUM, SEV_HIGH };
static const char *const sev_names[] = { "info", "low", "medium", "high" };

/* The finding kinds: stable ids, never renumbered in output. */
enum kind {
    K_TLS_NOT_OFFERED,
    K_TLS_NOT_USED,
    K_STARTTLS_REFUSED,
    K_STARTTLS_FAILED,
    K_TLS_OLD_VERSION,
    K_AUTH_BEFORE_TLS,
    K_CLEARTEXT_CREDENTIALS,
    K_LOGINDISABLED_IGNORED,
    K_WEAK_AUTH_MECHANISM,
    K_VRFY_ENABLED,
    K_EXPN_ENABLED,
    K_OPEN_RELAY,
    K_STARTTLS_INJECTION,
    K_STARTTLS_STRIPPED,
    K_STARTTLS_MANGLED,
    K_PROXY_CREDENTIALS,
    K_OVERLONG_COMMAND,
    K_EXECUTABLE_ATTACHMENT,
    K_TYPE_MISMATCH,
    K_SMTP_SMUGGLING,
    K_SMUGGLING_ATTEMPT,
    K_NETWORK_SLOW_TRANSFER,
    K_TLS_CERT_EXPIRED,
    K_TLS_CERT_NOT_YET_VALID,
    K_TLS_CERT_SELF_SIGNED,
    K_TLS_CERT_UNTRUSTED,
    K_TLS_CERT_NAME_MISMATCH,
    K_TLS_WEAK_KEY,
    K_TLS_SHA1_SIGNATURE,
    K_TLS_WEAK_CIPHER,
    K_N,
};

static const struct {
    const char *id;
    enum severity sev;
    const char *title;
    const char *why; /* why it matters */
    const char *fix;
    const char *refs;
} kinds[K_N] = {
    [K_TLS_NOT_OFFERED] = { "MX-TLS-NOT-OFFERED", SEV_MEDIUM, "TLS is not offered",
                            "The server never offered STARTTLS (or STLS) in the sessions seen, so everything it receives, mail and "
                            "credentials included, crosses the network in clear and can be read or changed on the way.",
                            "Enable STARTTLS with a valid certificate, or serve the protocol on its implicit-TLS port (465, 993, "
                            "995) and retire the cleartext one for clients.",
                            "RFC 3207, RFC 2595, RFC 8314, RFC 9051 §11" },
    [K_TLS_NOT_USED] = { "MX-TLS-NOT-USED", SEV_LOW, "TLS offered but not used",
                         "The server offered STARTTLS but the client went on in clear. Opportunistic TLS protects nothing when "
                         "the client does not take it, and an attacker on the path can remove the offer unnoticed.",
                         "Configure clients to require TLS (submission, POP3, IMAP), and prefer implicit TLS (RFC 8314); for "
                         "server-to-server mail, consider MTA-STS or DANE.",
                         "RFC 3207, RFC 8314, RFC 8461" },
    [K_STARTTLS_REFUSED] = { "MX-STARTTLS-REFUSED", SEV_MEDIUM, "STARTTLS refused",
                             "The client asked to start TLS and the server refused (for example 454 TLS not available): the session "
                             "stays in clear, or the client gives up. Often a missing or unreadable certificate.",
                             "Check the server's certificate and key files and its TLS settings; the refusal text usually names the "
                             "cause.",
                             "RFC 3207 §4, RFC 2595 §4, RFC 9051 §6.2.1" },
    [K_STARTTLS_FAILED] = { "MX-STARTTLS-FAILED", SEV_MEDIUM, "TLS handshake failed after STARTTLS",
                            "The server accepted STARTTLS but the TLS handshake did not complete (an alert, or the connection "
                            "ended): depending on the client, mail is delayed or falls back to clear.",
                            "Compare the protocol versions and cipher suites both sides allow; the alert in the evidence names the "
                            "failure.",
                            "RFC 3207 §4.1, RFC 8446 §6" },
    [K_TLS_OLD_VERSION] = { "MX-TLS-OLD-VERSION", SEV_HIGH, "TLS older than 1.2 negotiated",
                            "The session negotiated SSL 3.0, TLS 1.0 or TLS 1.1, which are deprecated and have known weaknesses.",
                            "Allow TLS 1.2 and 1.3 only on the server (for example Postfix smtpd_tls_protocols = >=TLSv1.2, "
                            "Dovecot ssl_min_protocol = TLSv1.2).",
                            "RFC 8996, RFC 8314 §4.1" },
    [K_AUTH_BEFORE_TLS] = { "MX-AUTH-BEFORE-TLS", SEV_MEDIUM, "Authentication offered before TLS",
                            "The server announces authentication (AUTH mechanisms, USER, or IMAP LOGIN without LOGINDISABLED) on "
                            "a cleartext connection, inviting clients to send credentials in clear.",
                            "Offer authentication only after TLS (Postfix smtpd_tls_auth_only = yes, Dovecot "
                            "disable_plaintext_auth = yes), or only on implicit-TLS ports.",
                            "RFC 4954 §4, RFC 2595 §2.1, RFC 9051 §6.2.3, RFC 8314" },
    [K_CLEARTEXT_CREDENTIALS] = { "MX-CLEARTEXT-CREDENTIALS", SEV_HIGH, "Credentials crossed in clear",
                                  "A password or bearer token crossed the network without TLS: anyone on the path could read it and "
                                  "log in as that user.",
                                  "Change the passwords of the users listed, require TLS before authentication on the server, and "
                                  "configure clients to use TLS.",
                                  "RFC 8314, RFC 4954 §4, RFC 2595 §2.1, RFC 9051 §11.1" },
    [K_LOGINDISABLED_IGNORED] = { "MX-LOGINDISABLED-IGNORED", SEV_HIGH, "IMAP LOGINDISABLED not honoured",
                                  "The IMAP server announced LOGINDISABLED yet accepted LOGIN in clear: the announcement protects "
                                  "nothing and the password crossed in clear.",
                                  "Make the server refuse LOGIN (and plaintext AUTHENTICATE) before TLS, as its capability says.",
                                  "RFC 9051 §6.2.3, RFC 9051 §11" },
    [K_WEAK_AUTH_MECHANISM] = { "MX-WEAK-AUTH-MECHANISM", SEV_MEDIUM, "Weak authentication mechanism used",
                                "CRAM-MD5, DIGEST-MD5, NTLM and APOP send a digest that an observer can attack offline to recover "
                                "the password, and they force the server to store passwords in a recoverable form.",
                                "Use TLS with PLAIN, or SCRAM-SHA-256 or OAuth, and turn the legacy mechanisms off.",
                                "RFC 6331, RFC 8314, RFC 1939 §7, RFC 7677" },
    [K_VRFY_ENABLED] = { "MX-VRFY-ENABLED", SEV_MEDIUM, "VRFY answers with real data",
                         "VRFY confirmed addresses (250 or 251): an attacker can list valid mailboxes for spam and password "
                         "guessing.",
                         "Disable VRFY (Postfix disable_vrfy_command = yes) or answer 252 without confirming.",
                         "RFC 5321 §3.5.3, RFC 5321 §7.3" },
    [K_EXPN_ENABLED] = { "MX-EXPN-ENABLED", SEV_MEDIUM, "EXPN expands mailing lists",
                         "EXPN listed the members of an address: it discloses internal addresses and list membership.",
                         "Disable EXPN, or restrict it to authenticated users.", "RFC 5321 §3.5.3, RFC 5321 §7.3" },
    [K_OPEN_RELAY] = { "MX-OPEN-RELAY", SEV_MEDIUM, "Open-relay signal",
                       "The server accepted a recipient in a domain that is not its own (by its host name) from a "
                       "client that did not authenticate and is not on its host or network: spammers relay through such "
                       "servers, and the server's address ends on blocklists. A signal (medium) by itself, an open relay "
                       "(high) when the message was then accepted, unless the server hosts that domain under another "
                       "name: the domain's MX records tell.",
                       "Relay only for authenticated clients and trusted networks (Postfix smtpd_relay_restrictions = "
                       "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination).",
                       "RFC 5321 §3.6, RFC 5321 §7.1" },
    [K_STARTTLS_INJECTION] = { "MX-STARTTLS-INJECTION", SEV_HIGH, "Cleartext injected around STARTTLS",
                               "Commands or replies were sent in clear after STARTTLS and before the TLS handshake. A server that "
                               "buffers them executes attacker-chosen commands inside the later TLS session (CVE-2011-0411).",
                               "Make the server discard buffered input when it starts TLS (fixed in current Postfix, Dovecot and "
                               "others); find what sent the injected bytes.",
                               "RFC 3207 §4.2, RFC 2595 §4, RFC 9051 §6.2.1, CVE-2011-0411" },
    [K_STARTTLS_STRIPPED] = { "MX-STARTTLS-STRIPPED", SEV_HIGH, "STARTTLS stripped",
                              "The same server offered STARTTLS in some sessions and not in others: something on the path "
                              "(a middlebox or an attacker) removes the offer, and those sessions go on in clear.",
                              "Find the device rewriting the session (firewall SMTP inspection is a classic); require TLS on the "
                              "client side (MTA-STS, DANE, or mandatory TLS).",
                              "RFC 3207 §6, RFC 8461, RFC 7672" },
    [K_STARTTLS_MANGLED] = { "MX-STARTTLS-MANGLED", SEV_HIGH, "STARTTLS capability mangled",
                             "The capability list carried a masked word such as XXXXXXXA where STARTTLS belongs: a middlebox "
                             "overwrote the offer (Cisco PIX/ASA ESMTP inspection does this), so clients cannot start TLS.",
                             "Turn off the middlebox's SMTP inspection or its STARTTLS masking, then check that STARTTLS is offered.",
                             "RFC 3207 §6" },
    [K_PROXY_CREDENTIALS] = { "MX-PROXY-CLEARTEXT-CREDENTIALS", SEV_HIGH, "Proxy credentials in clear",
                              "The client gave the proxy in front of the mail server its user name and password in clear "
                              "(SOCKS5 username/password or HTTP Basic): anyone on the path can read them and use the proxy "
                              "as that user, and the mail session behind it is as exposed.",
                              "Reach the proxy over TLS (an HTTPS proxy, or SOCKS inside TLS or SSH), or authenticate without "
                              "sending the password (SOCKS5 GSS-API, RFC 1961), or restrict the proxy by address instead.",
                              "RFC 1929 §4, RFC 7617 §4, RFC 9110 §11.7.2" },
    [K_OVERLONG_COMMAND] = { "MX-OVERLONG-COMMAND", SEV_MEDIUM, "Command line far beyond the protocol's limit",
                             "A client sent a command line far longer than the protocol allows or any real client sends "
                             "(a tag, verb or argument of hundreds of bytes of filler or binary junk): the shape of a "
                             "buffer-overflow attempt against the server's command parser (MailEnable, and many other "
                             "servers, had such holes), or of a fuzzer probing for one.",
                             "Check that the server software is current and refused the line (the reply in the evidence); "
                             "cap the command line length in its settings; find and block the client.",
                             "RFC 5321 §4.5.3.1.4, RFC 2449 §4, RFC 9051 §4, RFC 7162 §4" },
    [K_EXECUTABLE_ATTACHMENT] = { "MX-EXECUTABLE-ATTACHMENT", SEV_HIGH, "Executable attachment",
                                  "A message carried a program or script: its name ends in an extension Windows runs "
                                  "(.exe, .scr, .pif, .js, .vbs, .bat, .hta, .lnk, .ps1, ...), hides one behind a "
                                  "document's (invoice.pdf.exe), or its bytes are a program whatever its name. This is how "
                                  "most mail-borne malware arrives: one double-click runs it.",
                                  "Block or quarantine executable attachments at the gateway (by content type from the "
                                  "bytes, not only the name); check the recipients' machines if the message was delivered.",
                                  "RFC 2046 §4.5.1, RFC 2183 §2.3, RFC 2183 §5" },
    [K_TYPE_MISMATCH] = { "MX-ATTACHMENT-TYPE-MISMATCH", SEV_MEDIUM, "Attachment's type disagrees with its bytes",
                          "A part declared one type (Content-Type) while its bytes are another kind of file (a PDF "
                          "declared as image/jpeg, a program declared as a document): filters that trust the declared "
                          "type let it through, and the reader's program opens what the bytes are.",
                          "Have the gateway check attachments by their bytes (libmagic, file(1)) and refuse those whose "
                          "declared type disagrees; find who sent it.",
                          "RFC 2045 §5, RFC 2046 §4.5.1" },
    [K_SMTP_SMUGGLING] = { "MX-SMTP-SMUGGLING", SEV_HIGH, "SMTP smuggling accepted",
                           "Inside one message the client sent an end of data with a bare LF or CR (<LF>.<LF>, "
                           "<LF>.<CRLF>, <CR>.<CRLF>, ...) and then commands, and the server took it as the end: it "
                           "answered the smuggled MAIL, RCPT and DATA. Through an outbound server that passes such "
                           "bytes on, anyone can send mail in another sender's name that passes SPF and DKIM.",
                           "Make the server accept only <CRLF>.<CRLF> (Postfix smtpd_forbid_bare_newline = normalize or "
                           "reject, with no exclusions for untrusted clients; the fixed Sendmail and Exim releases); find "
                           "the client that sent it.",
                           "RFC 5321 §2.3.8, RFC 5321 §4.1.1.4, CVE-2023-51764, CVE-2023-51765, CVE-2023-51766" },
    [K_SMUGGLING_ATTEMPT] = { "MX-SMTP-SMUGGLING-ATTEMPT", SEV_LOW, "SMTP smuggling attempted, refused",
                              "Inside one message the client sent an end of data with a bare LF or CR and then "
                              "commands; the server read them as message data, so nothing was smuggled here. Someone is "
                              "probing for the flaw, or an outbound server relays such bytes.",
                              "Nothing to change on this server for this; find the client (or the relay that passes bare "
                              "line ends on) and check the other servers it reaches.",
                              "RFC 5321 §2.3.8, RFC 5321 §4.1.1.4, CVE-2023-51764" },
    [K_NETWORK_SLOW_TRANSFER] = { "MX-NETWORK-SLOW-TRANSFER", SEV_LOW, "Transfer slowed by the network",
                                  "Between a command and the end of its reply the network lost or held back segments "
                                  "(retransmissions, a zero window) and the transfer stalled or took several times as long "
                                  "as the same command's other replies: the delay is the path's or a receiver's, not the "
                                  "mail server's.",
                                  "Look at the evidence frames in Wireshark (tcp.analysis.flags): loss on the path (a "
                                  "link, a firewall, a duplex mismatch, an overloaded middlebox) or a receiver that does not "
                                  "read (zero window). The flow record's rtt, stall_ms and retransmission counts say which.",
                                  "RFC 9293 §3.8, RFC 5681 §3.2, RFC 6298" },
    [K_TLS_CERT_EXPIRED] = { "MX-TLS-CERT-EXPIRED", SEV_MEDIUM, "Certificate expired",
                             "When the server sent it, its certificate was past its notAfter date: clients that verify "
                             "refuse the session or fall back to clear, and those that do not are taught to ignore "
                             "certificate errors.",
                             "Renew the certificate (and automate the renewal, for example with ACME), then reload the "
                             "server; check the date shown against the capture's time.",
                             "RFC 5280 §4.1.2.5, RFC 5280 §6.1.3, RFC 9325 §7" },
    [K_TLS_CERT_NOT_YET_VALID] = { "MX-TLS-CERT-NOT-YET-VALID", SEV_MEDIUM, "Certificate not yet valid",
                                   "When the server sent it, its certificate's notBefore date was still to come: "
                                   "clients that verify refuse it. Often a clock that is wrong on the server or on "
                                   "the machine that issued the certificate.",
                                   "Check the clocks (NTP) of the server and of the issuing CA; reissue the "
                                   "certificate with a correct start date.",
                                   "RFC 5280 §4.1.2.5, RFC 5280 §6.1.3" },
    [K_TLS_CERT_SELF_SIGNED] = { "MX-TLS-CERT-SELF-SIGNED", SEV_MEDIUM, "Self-signed certificate",
                                 "The server's certificate is signed by its own key, not by a CA the client can "
                                 "trust: a client cannot tell it from an attacker's certificate, so TLS protects "
                                 "only against passive eavesdropping.",
                                 "Use a certificate from a public CA (ACME), or publish the key in DANE TLSA records "
                                 "(RFC 7672) for server-to-server mail; give clients the CA with --tls-ca to check a "
                                 "private one.",
                                 "RFC 5280 §6, RFC 6125 §6, RFC 7672 §3" },
    [K_TLS_CERT_UNTRUSTED] = { "MX-TLS-CERT-UNTRUSTED", SEV_MEDIUM, "Certificate chain not trusted",
                               "The server's chain did not verify against the trust store (the system's, or the "
                               "--tls-ca file): an unknown or private CA, a missing intermediate, or a bad "
                               "signature. Clients that verify refuse the session.",
                               "Send the whole chain (the server's certificate, then the intermediates), from a CA "
                               "the clients trust; for a private CA, run mxray with --tls-ca naming it.",
                               "RFC 5280 §6, RFC 5246 §7.4.2, RFC 8446 §4.4.2, RFC 9325 §7" },
    [K_TLS_CERT_NAME_MISMATCH] = { "MX-TLS-CERT-NAME-MISMATCH", SEV_MEDIUM, "Certificate name mismatch",
                                   "The certificate does not name the host the client asked for (its SNI) or, "
                                   "without SNI, the name the server announced in its greeting: clients that "
                                   "verify refuse it, and the certificate may belong to another server.",
                                   "Issue the certificate with the server's host names in subjectAltName (each MX "
                                   "and submission name), or serve per-name certificates by SNI.",
                                   "RFC 6125 §6, RFC 5280 §4.2.1.6, RFC 7817" },
    [K_TLS_WEAK_KEY] = { "MX-TLS-WEAK-KEY", SEV_MEDIUM, "Weak certificate key",
                         "The certificate's key is too short (RSA or DSA under 2048 bits, elliptic curves under "
                         "224): it can be factored or broken with public resources, and current clients refuse it.",
                         "Issue a new certificate with an RSA key of 2048 bits or more, or an ECDSA P-256 key.",
                         "RFC 9325 §4.1, RFC 7525 §4.3" },
    [K_TLS_SHA1_SIGNATURE] = { "MX-TLS-SHA1-SIGNATURE", SEV_MEDIUM, "SHA-1 or MD5 certificate signature",
                               "A certificate of the chain is signed with SHA-1 or MD5, whose collisions are "
                               "practical: a forged certificate with the same signature can be made, and current "
                               "clients refuse such chains.",
                               "Reissue the certificate (or the intermediate) signed with SHA-256 or better.",
                               "RFC 9325 §4.2, RFC 6151, RFC 5280 §4.1.1.2" },
    [K_TLS_WEAK_CIPHER] = { "MX-TLS-WEAK-CIPHER", SEV_HIGH, "Weak cipher suite chosen",
                            "The server chose a cipher suite that gives no or little protection: NULL (no "
                            "encryption), EXPORT (40-56-bit keys), anonymous Diffie-Hellman (no authentication, open "
                            "to any man in the middle), RC4, DES or 3DES (Sweet32).",
                            "Remove these suites from the server's list (for example Postfix "
                            "smtpd_tls_exclude_ciphers = aNULL, eNULL, EXPORT, RC4, DES, 3DES, MD5) and allow TLS "
                            "1.2 AEAD suites and TLS 1.3.",
                            "RFC 7525 §4.1, RFC 9325 §4.1, RFC 7465, RFC 8996" },
};

struct evidence {
    uint64_t flow;
    mx_frame_t first, last;
};

/* The posture facts: each one "yes", "no" or "not seen", with the frames
 * that show it (the audit.server record's "posture", the table's lines). */
enum fact {
    F_STARTTLS_OFFERED,
    F_TLS_USED,
    F_STARTTLS_REFUSED,
    F_STARTTLS_FAILED,
    F_AUTH_BEFORE_TLS,
    F_CLEARTEXT_CREDENTIALS,
    F_LOGINDISABLED,
    F_LOGINDISABLED_HONOURED,
    F_VRFY_ANSWERED,
    F_EXPN_ANSWERED,
    F_RELAYING,
    F_N,
};

#define FACT_EVIDENCE 4 /* evidence items kept per fact and state; more are counted */

/* What the sessions showed of one fact: observations of "no" ([0]) and "yes" ([1]). */
struct fact_obs {
    uint32_t n[2];
    uint32_t n_ev[2];
    struct evidence ev[2][FACT_EVIDENCE];
};

struct finding {
    bool on;
    uint64_t count;
    uint32_t n_ev;
    struct evidence ev[AUDIT_EVIDENCE];
    char *detail;      /* AUDIT_DETAIL bytes, allocated with the first detail (most findings have none), or NULL */
    bool sev_set;      /* this server's instance has its own severity, title and fix: */
    enum severity sev; /* MX-OPEN-RELAY: high when a relayed message was accepted */
    const char *title; /* NULL: the kind's */
    const char *fix;   /* NULL: the kind's (MX-CLEARTEXT-CREDENTIALS: whether passwords are shown) */
};

/* What the posture table shows of a server's certificate: the last one seen. */
struct cert_seen {
    uint32_t sessions; /* sessions whose certificate was seen */
    char subject[128], issuer[128], not_after[32];
    char validity[16], verify[32], key[32], sig[48], name[96];
    int name_match; /* 1, 0; -1: no name checked */
};

struct server {
    char proto[8];
    char addr[MX_ADDR_STRLEN];
    uint16_t port;
    char banner[160];
    char domain[96];   /* from the greeting's host name: for relaying */
    uint32_t sessions; /* flows to it */
    uint32_t tls_offered, tls_missing, tls_attempted, tls_upgraded, tls_refused, tls_failed, implicit;
    char versions[64]; /* TLS versions negotiated, comma-separated */
    char mechs[160];   /* mechanisms announced */
    uint32_t cleartext_logins;
    int vrfy_code, expn_code; /* the last answer to VRFY / EXPN, 0 for none */
    uint32_t relay_signals;
    struct finding f[K_N];
    struct fact_obs fact[F_N];
    char domain2[96];              /* from the EHLO reply's host name, when it differs */
    uint32_t vrfy_sent, expn_sent; /* from the session records */
    bool relay_accepted;           /* a relayed message was then accepted (DATA 250) */
    bool secrets_shown;            /* the auth records carry the secrets (--show-secrets) */
    struct cert_seen cert;         /* the last certificate it showed (tls_posture) */
};

/* MX-NETWORK-SLOW-TRANSFER's watch over one flow's replies (on_net_reply):
 * the quickest clean reply of each command, and the replies whose time span
 * held retransmissions or zero windows, judged when the flow ends. */
#define NET_COMMANDS 8   /* commands whose quickest clean reply is kept */
#define NET_CANDIDATES 4 /* replies with network trouble kept (the slowest) */
struct net_cand {
    char cmd[16];
    double ms, stall_ms;
    uint64_t retx, zw;
    mx_frame_t first, last; /* the trouble's frames: its first event, and the last event or the stall's end */
};
struct net_watch {
    struct {
        char cmd[16];
        double best_ms;
    } clean[NET_COMMANDS];
    uint32_t n_clean, n_cand;
    struct net_cand cand[NET_CANDIDATES];
};

struct flowmap {
    uint32_t server; /* index + 1; 0: not audited */
    bool authed;     /* a login succeeded on this flow */
    mx_frame_t first;
    char via[128];                 /* behind a PROXY header: "client ADDR:PORT via proxy", else "" */
    bool client_tls;               /* the PROXY header says the client reached the proxy over TLS */
    char client[MX_ADDR_STRLEN];   /* the client's address (behind a PROXY header: the client it names) */
    bool handshake;                /* seen from its TCP handshake: what it did not do, it did not do */
    bool tls;                      /* TLS was used in it (STARTTLS completed, or implicit) */
    mx_frame_t tls_cmd, tls_reply; /* STARTTLS/STLS and the reply to it */
    mx_frame_t hs_first, hs_last;  /* the completed TLS handshake's frames */
    int tls_fail_ev;               /* a failed handshake with no alert: its evidence index + 1 (the close ends it) */
    int tls_fail_fact;             /* the same in the fact's "yes" evidence */
    mx_frame_t ld_tried;           /* IMAP LOGIN in clear after LOGINDISABLED: its frame */
    struct net_watch net;
};

struct audit {
    struct mx_buf srv; /* struct server, at most AUDIT_MAX_SERVERS */
    uint32_t dropped;
    struct mx_idmap flows;  /* flows not ended yet, by id */
    struct mx_idmap by_key; /* server index + 1, by the keyed hash of (protocol, address, port) */
    struct mx_hasher *hasher;
    FILE *table;
    bool color;
    bool failed; /* out of memory: the findings would be short */
};

/* The i-th server (i < a->srv.n). */
static struct server *server_at(struct audit *a, size_t i)
{
    return mx_buf_at(&a->srv, i);
}

/* ---- Helpers ---- */

static bool slice_eq(struct mx_slice s, const char *lit)
{
    return s.len == strlen(lit) && !memcmp(s.ptr, lit, s.len);
}

static bool slice_ieq_prefix(struct mx_slice s, const char *lit);

static bool slice_ieq(struct mx_slice s, const char *lit)
{
    return s.len == strlen(lit) && slice_ieq_prefix(s, lit);
}

static bool slice_ieq_prefix(struct mx_slice s, const char *lit)
{
    size_t n = strlen(lit);
    if (s.len < n)
        return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s.ptr[i];
        if (c >= 'a' && c <= 'z')
            c = (uint8_t)(c - 32);
        if (c != (uint8_t)lit[i])
            return false;
    }
    return true;
}

/* Adds an item to a set of items separated by `sep` (bounded; repeats ignored). */
static void set_add(char *set, size_t cap, struct mx_slice w, char sep)
{
    if (!w.len)
        return;
    size_t len = strlen(set);
    for (const char *p = set; *p;) {
        const char *e = strchr(p, sep);
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == w.len && !memcmp(p, w.ptr, n))
            return;
        p += n + (e != NULL);
    }
    if (len + w.len + 2 > cap)
        return;
    if (len)
        set[len++] = sep;
    memcpy(set + len, w.ptr, w.len);
    set[len + w.len] = '\0';
}

static void add_word(char *set, size_t cap, struct mx_slice w)
{
    set_add(set, cap, w, ' ');
}

/* Writes a set as an array of strings. */
static void emit_set(struct mx_event *ev, const char *key, const char *set, char sep)
{
    mx_ev_arr(ev, key);
    for (const char *p = set; *p;) {
        const char *e = strchr(p, sep);
        size_t n = e ? (size_t)(e - p) : strlen(p);
        mx_ev_wire(ev, NULL, mx_slice_make(p, n));
        p += n + (e != NULL);
    }
    mx_ev_end(ev);
}

static struct flowmap *flow_of(struct audit *a, uint64_t flow)
{
    return mx_idmap_get(&a->flows, flow);
}

static struct server *server_of(struct audit *a, uint64_t flow)
{
    struct flowmap *m = flow_of(a, flow);
    return m && m->server ? server_at(a, m->server - 1) : NULL;
}

/* Notes one instance of finding k at server s. */
static void note(struct audit *a, struct server *s, enum kind k, uint64_t flow, mx_frame_t first, mx_frame_t last,
                 const char *detail)
{
    struct finding *f = &s->f[k];
    f->on = true;
    f->count++;
    if (!first) {
        struct flowmap *m = flow_of(a, flow);
        first = last = m ? m->first : 0;
    }
    if (f->n_ev < AUDIT_EVIDENCE)
        f->ev[f->n_ev++] = (struct evidence){ flow, first, last ? last : first };
    struct flowmap *m = flow_of(a, flow);
    char d[256];
    if (m && m->via[0]) {
        /* The flow's TCP client is a proxy: name the client it stands for. */
        if (detail && *detail)
            snprintf(d, sizeof(d), "%s (%s)", detail, m->via);
        else
            snprintf(d, sizeof(d), "%s", m->via);
        detail = d;
    }
    if (detail && *detail && !f->detail)
        f->detail = calloc(1, AUDIT_DETAIL); /* out of memory: the finding has no detail */
    if (detail && *detail && f->detail)
        set_add(f->detail, AUDIT_DETAIL, mx_slice_make(detail, strlen(detail)), '\n');
}

static void frames_of(const struct mx_event *e, const char *path, mx_frame_t *a, mx_frame_t *b)
{
    const struct mx_ev_field *f = mx_ev_get(e, path);
    const struct mx_ev_field *x = mx_ev_first(e, f);
    *a = *b = 0;
    if (x && x->kind == MX_EV_UINT)
        *a = *b = x->v.u;
    x = mx_ev_next(e, x);
    if (x && x->kind == MX_EV_UINT)
        *b = x->v.u;
}

/* ---- Posture facts ---- */

static const struct {
    const char *key;    /* in the record's "posture" */
    const char *label;  /* in the table */
    bool no_wins;       /* one "no" decides (a promise broken once is broken) */
    const char *unseen; /* why it can be "not seen", in the table */
} facts[F_N] = {
    [F_STARTTLS_OFFERED] = { "starttls_offered", "STARTTLS offered", false, "no capability list seen in clear" },
    [F_TLS_USED] = { "tls_used", "TLS used", false, "no session seen from its start" },
    [F_STARTTLS_REFUSED] = { "starttls_refused", "STARTTLS refused", false, "STARTTLS not tried" },
    [F_STARTTLS_FAILED] = { "starttls_failed", "TLS handshake failed", false, "no handshake after STARTTLS" },
    [F_AUTH_BEFORE_TLS] = { "auth_before_tls", "AUTH offered before TLS", false, "no capability list seen in clear" },
    [F_CLEARTEXT_CREDENTIALS] = { "credentials_in_clear", "credentials in clear", false, "no login seen" },
    [F_LOGINDISABLED] = { "logindisabled", "LOGINDISABLED announced", false, "no capability list seen in clear" },
    [F_LOGINDISABLED_HONOURED] = { "logindisabled_honoured", "LOGINDISABLED honoured", true,
                                   "no LOGIN in clear while LOGINDISABLED was announced" },
    [F_VRFY_ANSWERED] = { "vrfy_answered", "VRFY confirms addresses", false, "not tried" },
    [F_EXPN_ANSWERED] = { "expn_answered", "EXPN expands lists", false, "not tried" },
    [F_RELAYING] = { "relaying", "relays for outsiders", false,
                     "no RCPT to a foreign domain from an outside client without AUTH" },
};

/* Notes one observation of fact f at server s: yes or no, with its frames;
 * returns the evidence index + 1, 0 when past the cap. */
static int observe(struct server *s, enum fact f, bool yes, uint64_t flow, mx_frame_t first, mx_frame_t last)
{
    struct fact_obs *o = &s->fact[f];
    o->n[yes]++;
    if (!first || o->n_ev[yes] == FACT_EVIDENCE)
        return 0;
    o->ev[yes][o->n_ev[yes]++] = (struct evidence){ flow, first, last ? last : first };
    return (int)o->n_ev[yes];
}

/* Whether fact f applies to a server of this protocol. */
static bool fact_applies(const struct server *s, enum fact f)
{
    bool smtp = !strcmp(s->proto, "smtp"), lmtp = !strcmp(s->proto, "lmtp");
    switch (f) {
    case F_LOGINDISABLED:
    case F_LOGINDISABLED_HONOURED:
        return !strcmp(s->proto, "imap");
    case F_VRFY_ANSWERED:
    case F_EXPN_ANSWERED:
        return smtp || lmtp;
    case F_RELAYING:
        return smtp; /* LMTP delivers to its own mailboxes only (RFC 2033 §1) */
    default:
        return true;
    }
}

/* The state of fact f: 1 yes, 0 no, -1 not seen. */
static int fact_state(const struct server *s, enum fact f)
{
    const struct fact_obs *o = &s->fact[f];
    if (!o->n[0] && !o->n[1])
        return -1;
    if (facts[f].no_wins)
        return o->n[0] ? 0 : 1;
    return o->n[1] ? 1 : 0;
}

static const char *state_name(int st)
{
    return st > 0 ? "yes" : st == 0 ? "no" : "not seen";
}

/* Why fact f was not seen, as the table says it. */
static const char *unseen_why(const struct server *s, enum fact f, char *buf, size_t cap)
{
    uint32_t sent = f == F_VRFY_ANSWERED ? s->vrfy_sent : f == F_EXPN_ANSWERED ? s->expn_sent : 0;
    if (sent) {
        snprintf(buf, cap, "sent %u time%s, no reply seen", sent, sent == 1 ? "" : "s");
        return buf;
    }
    if (f == F_STARTTLS_OFFERED && s->implicit)
        return "implicit TLS only: no capability list in clear";
    return facts[f].unseen;
}

static void emit_evidence(struct mx_event *ev, const char *key, const struct evidence *e, uint32_t n)
{
    mx_ev_arr(ev, key);
    for (uint32_t i = 0; i < n; i++) {
        mx_ev_obj(ev, NULL);
        mx_ev_uint(ev, "flow", e[i].flow);
        mx_ev_frames(ev, e[i].first, e[i].last);
        mx_ev_end(ev);
    }
    mx_ev_end(ev);
}

/* The record's "posture": {"fact": {"state", "evidence", ["contrary"]}}; the
 * evidence shows the state, "contrary" the sessions that showed the other. */
static void emit_posture(struct mx_event *ev, const struct server *s)
{
    mx_ev_obj(ev, "posture");
    for (int f = 0; f < F_N; f++) {
        if (!fact_applies(s, (enum fact)f))
            continue;
        const struct fact_obs *o = &s->fact[f];
        int st = fact_state(s, (enum fact)f);
        mx_ev_obj(ev, facts[f].key);
        mx_ev_str(ev, "state", state_name(st));
        if (st >= 0) {
            mx_ev_uint(ev, "count", o->n[st]);
            emit_evidence(ev, "evidence", o->ev[st], o->n_ev[st]);
            if (o->n[!st]) {
                mx_ev_uint(ev, "contrary_count", o->n[!st]);
                emit_evidence(ev, "contrary", o->ev[!st], o->n_ev[!st]);
            }
        } else {
            char buf[64];
            mx_ev_str(ev, "why", unseen_why(s, (enum fact)f, buf, sizeof(buf)));
        }
        mx_ev_end(ev);
    }
    mx_ev_end(ev);
}

/* "flow 1 frame 8, flow 2 frames 9-14" (at most cap bytes). */
static void evidence_text(const struct evidence *e, uint32_t n, uint32_t total, char *out, size_t cap)
{
    size_t l = 0;
    out[0] = '\0';
    for (uint32_t i = 0; i < n && l + 48 < cap; i++) {
        if (e[i].last != e[i].first)
            l += (size_t)snprintf(out + l, cap - l, "%sflow %" PRIu64 " frames %" PRIu64 "-%" PRIu64, i ? ", " : "",
                                  e[i].flow, e[i].first, e[i].last);
        else
            l += (size_t)snprintf(out + l, cap - l, "%sflow %" PRIu64 " frame %" PRIu64, i ? ", " : "", e[i].flow,
                                  e[i].first);
    }
    if (total > n && l + 8 < cap)
        snprintf(out + l, cap - l, ", ...");
}

/* The table's posture lines: "STARTTLS offered        no (flow 1 frame 8)". */
static void print_posture(FILE *o, const struct server *s)
{
    fputs("  Posture\n", o);
    for (int f = 0; f < F_N; f++) {
        if (!fact_applies(s, (enum fact)f))
            continue;
        const struct fact_obs *fo = &s->fact[f];
        int st = fact_state(s, (enum fact)f);
        const char *label = facts[f].label;
        if (f == F_STARTTLS_OFFERED && !strcmp(s->proto, "pop3"))
            label = "STLS offered";
        fprintf(o, "    %-25s %-8s ", label, state_name(st));
        char buf[320];
        if (st < 0) {
            char why[64];
            fprintf(o, "(%s)\n", unseen_why(s, (enum fact)f, why, sizeof(why)));
            continue;
        }
        evidence_text(fo->ev[st], fo->n_ev[st], fo->n[st], buf, sizeof(buf));
        fprintf(o, "(%u: %s", fo->n[st], buf);
        if (fo->n[!st]) {
            evidence_text(fo->ev[!st], fo->n_ev[!st], fo->n[!st], buf, sizeof(buf));
            fprintf(o, "; %s in %u: %s", state_name(!st), fo->n[!st], buf);
        }
        fputs(")\n", o);
    }
}

/* ---- Relaying: who is an outsider, which domains are the server's ---- */

/* Whether a client is the server's own host or network, from the two
 * addresses alone (a capture does not show mynetworks): the same address;
 * a loopback client (127.0.0.0/8, ::1: it can only reach a socket on its
 * own host); the same /24 (IPv4) or /64 (IPv6, RFC 4291 §2.5.4: one
 * link); or both private (RFC 1918, RFC 6598 shared space, link-local,
 * ULA fc00::/7): an internal client relaying through its internal server is
 * what sites configure on purpose (postfix mynetworks, Exchange receive
 * connectors), and an open relay that matters is one reachable from
 * outside. So a relaying signal is raised only for clients that are
 * plainly elsewhere; a wrong guess here misses a signal, never invents one.
 * An address that does not parse is an outsider's. */
static bool own_network(const char *client, const char *server)
{
    uint8_t c[16], v[16];
    if (!strcmp(client, server))
        return true;
    if (inet_pton(AF_INET, client, c) == 1) {
        if (c[0] == 127)
            return true;
        if (inet_pton(AF_INET, server, v) != 1)
            return false;
        if (!memcmp(c, v, 3))
            return true;
        bool cp = c[0] == 10 || (c[0] == 172 && (c[1] & 0xf0) == 16) || (c[0] == 192 && c[1] == 168) ||
                  (c[0] == 100 && (c[1] & 0xc0) == 64) || (c[0] == 169 && c[1] == 254);
        bool vp = v[0] == 10 || (v[0] == 172 && (v[1] & 0xf0) == 16) || (v[0] == 192 && v[1] == 168) ||
                  (v[0] == 100 && (v[1] & 0xc0) == 64) || (v[0] == 169 && v[1] == 254);
        return cp && vp;
    }
    if (inet_pton(AF_INET6, client, c) != 1)
        return false;
    static const uint8_t loop6[16] = { [15] = 1 };
    if (!memcmp(c, loop6, 16))
        return true;
    if (inet_pton(AF_INET6, server, v) != 1)
        return false;
    if (!memcmp(c, v, 8))
        return true;
    bool cp = (c[0] & 0xfe) == 0xfc || (c[0] == 0xfe && (c[1] & 0xc0) == 0x80);
    bool vp = (v[0] & 0xfe) == 0xfc || (v[0] == 0xfe && (v[1] & 0xc0) == 0x80);
    return cp && vp;
}

/* Whether dom (lower case) is dom_s or one of its subdomains. */
static bool in_domain(const char *dom, const char *dom_s)
{
    size_t dl = strlen(dom), sl = strlen(dom_s);
    if (!sl)
        return false;
    return !strcmp(dom, dom_s) || (dl > sl && dom[dl - sl - 1] == '.' && !strcmp(dom + dl - sl, dom_s));
}

/* Whether the server serves a recipient's domain, as far as packets show:
 * the domain of the host name in its greeting or its EHLO reply (mx.lab.test
 * serves lab.test; and a parent: mailin03.sul.example.de serves
 * example.de), "localhost", and an address literal of its own address
 * (RFC 5321 §4.1.3). Recipient domains it accepted from others prove
 * nothing (submission relays everything), so they are not learnt. What
 * packets cannot show is a domain hosted under another name (an MX for
 * customer domains): such inbound mail reads as a relaying signal, which is
 * why the signal alone is not called an open relay. */
static bool serves(const struct server *s, const char *dom)
{
    if (!strcmp(dom, "localhost") || !strcmp(dom, "localhost.localdomain"))
        return true;
    if (dom[0] == '[') {
        const char *a = dom + 1;
        if (!strncmp(a, "ipv6:", 5))
            a += 5;
        size_t al = strlen(a);
        return al && a[al - 1] == ']' && al - 1 == strlen(s->addr) && !strncmp(a, s->addr, al - 1);
    }
    /* mail.ne1.example.com serves example.com too: a parent with two labels or more */
    bool parent = strchr(dom, '.') != NULL && (in_domain(s->domain, dom) || in_domain(s->domain2, dom));
    return parent || in_domain(dom, s->domain) || in_domain(dom, s->domain2);
}

/* The likely software behind a banner. */
static const char *software_of(const char *banner)
{
    static const char *const names[][2] = {
        { "postfix", "Postfix" },
        { "exim", "Exim" },
        { "sendmail", "Sendmail" },
        { "microsoft", "Microsoft" },
        { "exchange", "Microsoft Exchange" },
        { "dovecot", "Dovecot" },
        { "courier", "Courier" },
        { "cyrus", "Cyrus" },
        { "qmail", "qmail" },
        { "opensmtpd", "OpenSMTPD" },
        { "haraka", "Haraka" },
        { "zimbra", "Zimbra" },
        { "mdaemon", "MDaemon" },
        { "hmailserver", "hMailServer" },
        { "gsmtp", "Google" },
        { "coremail", "Coremail" },
        { "uw imap", "UW IMAP" },
        { "imap4rev1 2004", "UW IMAP" },
    };
    char low[160];
    size_t n = strlen(banner) < sizeof(low) - 1 ? strlen(banner) : sizeof(low) - 1;
    for (size_t i = 0; i < n; i++)
        low[i] = (char)(banner[i] >= 'A' && banner[i] <= 'Z' ? banner[i] + 32 : banner[i]);
    low[n] = '\0';
    for (size_t i = 0; i < MX_ARRAY_LEN(names); i++)
        if (strstr(low, names[i][0]))
            return names[i][1];
    return NULL;
}

/* The domain a server names itself in: its greeting's host name less its
 * first label ("mx.lab.test" -> "lab.test"), for the relaying signal. */
static void domain_of(const char *host, char *out, size_t cap)
{
    out[0] = '\0';
    size_t hl = strcspn(host, " ");
    const char *dot = memchr(host, '.', hl);
    if (!dot)
        return;
    const char *rest = dot + 1;
    size_t rl = hl - (size_t)(rest - host);
    if (!memchr(rest, '.', rl)) { /* "example.org": the host name is the domain */
        rest = host;
        rl = hl;
    }
    mx_text_copy(out, cap, mx_slice_make(rest, rl));
    for (char *p = out; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p + 32);
}

/* ---- Servers, by (protocol, address, port) ---- */

static bool server_is(const struct server *s, const char *proto, const char *addr, uint16_t port)
{
    return s->port == port && !strcmp(s->addr, addr) && !strcmp(s->proto, proto);
}

/* The keyed hash of a server's key, never 0 (an idmap id). */
static uint64_t server_hash(struct audit *a, const char *proto, const char *addr, uint16_t port)
{
    struct {
        char proto[8];
        char addr[MX_ADDR_STRLEN];
        uint16_t port;
    } k;
    memset(&k, 0, sizeof(k));
    snprintf(k.proto, sizeof(k.proto), "%s", proto);
    snprintf(k.addr, sizeof(k.addr), "%s", addr);
    k.port = port;
    uint64_t h = mx_hash(a->hasher, &k, sizeof(k));
    return h ? h : 1;
}

/* Index + 1 of a server by a walk over all of them, or 0: only when two
 * keys share a hash. */
static uint32_t server_find(struct audit *a, const char *proto, const char *addr, uint16_t port)
{
    for (uint32_t i = 0; i < a->srv.n; i++)
        if (server_is(server_at(a, i), proto, addr, port))
            return i + 1;
    return 0;
}

/* ---- Reading records ---- */

static void on_flow_start(struct audit *a, const struct mx_event *e)
{
    if (!e->flow || mx_idmap_get(&a->flows, e->flow))
        return;
    char proto[8], addr[MX_ADDR_STRLEN];
    mx_text_copy(proto, sizeof(proto), mx_ev_get_str(e, "proto"));
    mx_text_copy(addr, sizeof(addr), mx_ev_get_str(e, "server"));
    uint16_t port = (uint16_t)mx_ev_get_int(e, "server_port", 0);
    uint64_t h = server_hash(a, proto, addr, port);
    uint32_t idx = (uint32_t)(uintptr_t)mx_idmap_get(&a->by_key, h);
    if (idx && !server_is(server_at(a, idx - 1), proto, addr, port))
        idx = server_find(a, proto, addr, port); /* two keys, one 64-bit hash */
    if (!idx) {
        enum mx_buf_status st;
        struct server *s = mx_buf_push(&a->srv, &st);
        if (!s) {
            a->dropped++; /* past AUDIT_MAX_SERVERS */
            if (st == MX_BUF_NOMEM)
                a->failed = true;
            return;
        }
        snprintf(s->proto, sizeof(s->proto), "%s", proto);
        snprintf(s->addr, sizeof(s->addr), "%s", addr);
        s->port = port;
        idx = (uint32_t)a->srv.n;
        if (!mx_idmap_get(&a->by_key, h) && !mx_idmap_put(&a->by_key, h, (void *)(uintptr_t)idx))
            a->failed = true;
    }
    mx_frame_t f1, f2;
    frames_of(e, "frames", &f1, &f2);
    struct flowmap *m = malloc(sizeof(*m));
    if (!m || !mx_idmap_put(&a->flows, e->flow, m)) {
        free(m);
        return;
    }
    *m = (struct flowmap){ .server = idx, .first = f1, .handshake = mx_ev_get_int(e, "handshake", 0) != 0 };
    mx_text_copy(m->client, sizeof(m->client), mx_ev_get_str(e, "client"));
    server_at(a, idx - 1)->sessions++;
}

/* Whether a capability is a masked word where STARTTLS was (XXXXXXXA). */
static bool masked(struct mx_slice c)
{
    if (c.len < 4)
        return false;
    size_t x = 0;
    while (x < c.len && (c.ptr[x] == 'X' || c.ptr[x] == 'x'))
        x++;
    return x >= 4 && c.len - x <= 1;
}

/* A session record's facts: what its capability list in clear showed
 * (offers of STARTTLS, of authentication, IMAP's LOGINDISABLED), and how
 * often VRFY and EXPN were sent. */
static void session_facts(struct server *s, const struct mx_event *e, bool seen, bool offered, bool auth,
                          bool ld_listed, mx_frame_t cf1, mx_frame_t cf2)
{
    s->vrfy_sent += (uint32_t)mx_ev_get_int(e, "vrfy", 0);
    s->expn_sent += (uint32_t)mx_ev_get_int(e, "expn", 0);
    if (!seen)
        return;
    observe(s, F_STARTTLS_OFFERED, offered, e->flow, cf1, cf2);
    observe(s, F_AUTH_BEFORE_TLS, auth, e->flow, cf1, cf2);
    if (!strcmp(s->proto, "imap"))
        observe(s, F_LOGINDISABLED, ld_listed, e->flow, cf1, cf2);
}

/* A session record: what the capabilities and the upgrade showed. */
static void on_session(struct audit *a, const struct mx_event *e, struct server *s)
{
    /* LMTP's session is SMTP's (RFC 2033 §4): its capabilities, STARTTLS and AUTH read alike. */
    bool lmtp = !strcmp(s->proto, "lmtp");
    bool smtp = lmtp || !strcmp(s->proto, "smtp"), pop3 = !strcmp(s->proto, "pop3");
    const char *tlsobj = pop3 ? "stls" : "starttls";
    char path[32];
    if (!s->banner[0]) {
        mx_text_copy(s->banner, sizeof(s->banner), mx_ev_get_str(e, "greeting.text"));
        if (smtp)
            domain_of(s->banner, s->domain, sizeof(s->domain));
    }
    const struct mx_ev_field *caps = mx_ev_get(e, "capabilities");
    mx_frame_t cf1, cf2; /* the reply that listed them: the evidence of what was (not) offered */
    frames_of(e, "capabilities_frames", &cf1, &cf2);
    mx_frame_t pf1, pf2; /* IMAP: the list before a login in clear, which the lists after it replaced */
    frames_of(e, "capabilities_before_login_frames", &pf1, &pf2);
    if (pf1) {
        caps = mx_ev_get(e, "capabilities_before_login");
        cf1 = pf1;
        cf2 = pf2;
    }
    bool seen = mx_ev_first(e, caps) != NULL || cf1;
    bool ld_listed = false;
    bool offered = mx_ev_get_int(e, (snprintf(path, sizeof(path), "%s.offered", tlsobj), path), 0) != 0;
    bool attempted = mx_ev_get_int(e, (snprintf(path, sizeof(path), "%s.attempted", tlsobj), path), 0) != 0;
    bool upgraded = mx_ev_get_int(e, (snprintf(path, sizeof(path), "%s.upgraded", tlsobj), path), 0) != 0;
    bool logindisabled = !smtp && !pop3 && mx_ev_get_int(e, "logindisabled", 0);
    bool auth = false, login_cap = false, mangled = false;
    for (const struct mx_ev_field *c = mx_ev_first(e, caps); c; c = mx_ev_next(e, c)) {
        if (c->kind != MX_EV_STR)
            continue;
        struct mx_slice v = mx_ev_field_str(e, c);
        if (masked(v)) {
            mangled = true;
            note(a, s, K_STARTTLS_MANGLED, e->flow, cf1, cf2, "");
        }
        if (smtp && (slice_ieq_prefix(v, "AUTH ") || slice_ieq_prefix(v, "AUTH="))) {
            auth = true; /* RFC 4954 §3: AUTH mechanisms */
            for (size_t i = 5, j; i < v.len; i = j + 1) {
                for (j = i; j < v.len && v.ptr[j] != ' '; j++)
                    ;
                add_word(s->mechs, sizeof(s->mechs), mx_slice_make(v.ptr + i, j - i));
            }
        } else if (pop3 && (slice_ieq_prefix(v, "SASL ") || slice_ieq(v, "USER"))) {
            auth = true; /* RFC 2449 §6.3, §6.8 (an empty SASL list offers nothing) */
            if (slice_ieq_prefix(v, "USER"))
                add_word(s->mechs, sizeof(s->mechs), mx_slice_make("USER/PASS", 9));
            for (size_t i = 5, j; slice_ieq_prefix(v, "SASL ") && i < v.len; i = j + 1) {
                for (j = i; j < v.len && v.ptr[j] != ' '; j++)
                    ;
                add_word(s->mechs, sizeof(s->mechs), mx_slice_make(v.ptr + i, j - i));
            }
        } else if (!smtp && !pop3 && slice_ieq_prefix(v, "AUTH=")) {
            auth = true; /* RFC 9051 §7.2.2 */
            add_word(s->mechs, sizeof(s->mechs), mx_slice_make(v.ptr + 5, v.len - 5));
        } else if (!smtp && !pop3 && slice_ieq_prefix(v, "IMAP4")) {
            login_cap = true;
        } else if (!smtp && !pop3 && slice_ieq(v, "LOGINDISABLED")) {
            ld_listed = true;
        }
    }
    if (login_cap && !logindisabled) { /* RFC 9051 §6.2.3: LOGIN works unless LOGINDISABLED */
        auth = true;
        add_word(s->mechs, sizeof(s->mechs), mx_slice_make("LOGIN-command", 13));
    }
    if (seen) {
        if (offered) {
            s->tls_offered++;
        } else if (!mangled && !lmtp) {
            /* LMTP is local delivery between an MTA and the message store (RFC 2033 §1), on
             * one host or a trusted network: a cleartext LMTP listener is not a finding. */
            s->tls_missing++;
            note(a, s, K_TLS_NOT_OFFERED, e->flow, cf1, cf2, "");
        }
        if (auth) {
            note(a, s, K_AUTH_BEFORE_TLS, e->flow, cf1, cf2, "");
        }
    } else if (offered) {
        s->tls_offered++;
    }
    if (attempted)
        s->tls_attempted++;
    if (upgraded)
        s->tls_upgraded++;
    struct flowmap *m = flow_of(a, e->flow);
    mx_frame_t t1 = 0, t2 = 0; /* STARTTLS and the reply to it */
    if (attempted) {
        frames_of(e, (snprintf(path, sizeof(path), "%s.frames", tlsobj), path), &t1, &t2);
        if (m && m->tls_cmd) {
            t1 = m->tls_cmd;
            t2 = m->tls_reply ? m->tls_reply : t1;
        }
    }
    if (attempted && !upgraded) {
        s->tls_refused++;
        note(a, s, K_STARTTLS_REFUSED, e->flow, t1, t2, "");
    }
    /* Behind a proxy that ended the client's TLS, the cleartext leg is the
     * proxy's own: the client did use TLS. */
    if (offered && !attempted && !(m && m->client_tls) && !lmtp) /* LMTP: see above */
        note(a, s, K_TLS_NOT_USED, e->flow, cf1, cf2, "");
    session_facts(s, e, seen, offered && !mangled, auth, ld_listed, cf1, cf2);
    if (attempted)
        observe(s, F_STARTTLS_REFUSED, !upgraded, e->flow, t1, t2);
    if (upgraded && m)
        m->tls = true;
}

/* A login's facts: whether its secret crossed in clear, whether the
 * passwords are in the records (--show-secrets: "secret"), and, after an
 * IMAP LOGIN in clear while LOGINDISABLED was announced, whether the server
 * refused it (RFC 9051 §6.2.3). */
static void auth_facts(struct audit *a, struct server *s, const struct mx_event *e, bool leaked, mx_frame_t f1,
                       mx_frame_t f2)
{
    mx_frame_t sf = (mx_frame_t)mx_ev_get_int(e, "secret_frame", 0);
    if (mx_ev_get(e, "secret"))
        s->secrets_shown = true;
    if (leaked)
        observe(s, F_CLEARTEXT_CREDENTIALS, true, e->flow, sf ? sf : f1, sf ? sf : f2);
    else
        observe(s, F_CLEARTEXT_CREDENTIALS, false, e->flow, f1, f2);
    struct flowmap *m = flow_of(a, e->flow);
    if (m && m->ld_tried && !strcmp(e->type, "imap.auth")) {
        bool refused = !slice_eq(mx_ev_get_str(e, "outcome"), "success");
        observe(s, F_LOGINDISABLED_HONOURED, refused, e->flow, m->ld_tried, f2);
        m->ld_tried = 0;
    }
}

static void on_auth(struct audit *a, const struct mx_event *e, struct server *s)
{
    struct mx_slice mech = mx_ev_get_str(e, "mechanism"), user = mx_ev_get_str(e, "user");
    struct mx_slice outcome = mx_ev_get_str(e, "outcome");
    bool clear = mx_ev_get_int(e, "cleartext", 0), secret = mx_ev_get_int(e, "secret_in_clear", 0);
    mx_frame_t f1, f2;
    frames_of(e, "frames", &f1, &f2);
    char detail[160];
    snprintf(detail, sizeof(detail), "%.*s %.*s", (int)(mech.len < 32 ? mech.len : 32), (const char *)mech.ptr,
             user.len ? (int)(user.len < 100 ? user.len : 100) : 9, user.len ? (const char *)user.ptr : "(no user)");
    auth_facts(a, s, e, clear && secret, f1, f2);
    if (clear && secret) {
        /* The evidence is the frame that carried the secret (the credentials
         * line, PASS, LOGIN), not only the command that began the login. */
        mx_frame_t sf = (mx_frame_t)mx_ev_get_int(e, "secret_frame", 0);
        s->cleartext_logins++;
        note(a, s, K_CLEARTEXT_CREDENTIALS, e->flow, sf ? sf : f1, sf ? sf : f2, detail);
    }
    static const char *const weak[] = { "CRAM-MD5", "DIGEST-MD5", "NTLM", "APOP" };
    for (size_t i = 0; i < MX_ARRAY_LEN(weak); i++)
        if (slice_eq(mech, weak[i]))
            note(a, s, K_WEAK_AUTH_MECHANISM, e->flow, f1, f2, weak[i]);
    if (slice_eq(outcome, "success")) {
        struct flowmap *m = flow_of(a, e->flow);
        if (m)
            m->authed = true;
    }
}

/* An SMTP reply's facts: VRFY confirming an address (250, 251: RFC 5321
 * §3.5.3), EXPN expanding a list (250), and the host name an EHLO reply
 * names (RFC 5321 §4.1.1.1), a second source of the server's domain. */
static void reply_facts(struct server *s, const struct mx_event *e, struct mx_slice cmd, int code, mx_frame_t f1,
                        mx_frame_t f2)
{
    if (slice_eq(cmd, "VRFY"))
        observe(s, F_VRFY_ANSWERED, code == 250 || code == 251, e->flow, f1, f2);
    else if (slice_eq(cmd, "EXPN"))
        observe(s, F_EXPN_ANSWERED, code == 250, e->flow, f1, f2);
    else if ((slice_eq(cmd, "EHLO") || slice_eq(cmd, "LHLO")) && code == 250 && !s->domain2[0]) {
        struct mx_slice t = mx_ev_get_str(e, "text");
        const uint8_t *nl = memchr(t.ptr, '\n', t.len);
        char host[96], dom[96];
        mx_text_copy(host, sizeof(host), mx_slice_make(t.ptr, nl ? (size_t)(nl - t.ptr) : t.len));
        domain_of(host, dom, sizeof(dom));
        if (strcmp(dom, s->domain))
            snprintf(s->domain2, sizeof(s->domain2), "%s", dom);
    }
}

/* A reply to STARTTLS or STLS (smtp.reply, pop3.response, imap.response):
 * the command's frame and the reply's, the evidence of a refusal. */
static void on_starttls_reply(struct audit *a, const struct mx_event *e)
{
    struct mx_slice cmd = mx_ev_get_str(e, "answers.command");
    struct flowmap *m = flow_of(a, e->flow);
    if (!m || !(slice_eq(cmd, "STARTTLS") || slice_eq(cmd, "STLS")))
        return;
    mx_frame_t f1, f2;
    frames_of(e, "frames", &f1, &f2);
    m->tls_cmd = (mx_frame_t)mx_ev_get_int(e, "answers.frame", 0);
    m->tls_reply = f2;
    if (!m->tls_cmd)
        m->tls_cmd = f1;
}

static void on_reply(struct audit *a, const struct mx_event *e, struct server *s)
{
    struct mx_slice cmd = mx_ev_get_str(e, "answers.command");
    int code = (int)mx_ev_get_int(e, "code", 0);
    if (slice_eq(cmd, "(connect)") && code == 220 && !s->banner[0]) {
        /* The greeting names the server (RFC 5321 §4.3.1): its domain, for the relaying signal. */
        mx_text_copy(s->banner, sizeof(s->banner), mx_ev_get_str(e, "text"));
        domain_of(s->banner, s->domain, sizeof(s->domain));
    }
    mx_frame_t f1, f2;
    frames_of(e, "frames", &f1, &f2);
    reply_facts(s, e, cmd, code, f1, f2);
    if (slice_eq(cmd, "VRFY")) {
        s->vrfy_code = code;
        if (code == 250 || code == 251) /* RFC 5321 §3.5.3: the mailbox exists */
            note(a, s, K_VRFY_ENABLED, e->flow, f1, f2, "");
    } else if (slice_eq(cmd, "EXPN")) {
        s->expn_code = code;
        if (code == 250)
            note(a, s, K_EXPN_ENABLED, e->flow, f1, f2, "");
    }
}

/* One recipient of a transaction record: its address, outcome and the
 * frame of the reply to its RCPT (the evidence). */
static void rcpt_of(const struct mx_event *e, const struct mx_ev_field *r, struct mx_slice *addr,
                    struct mx_slice *outcome, mx_frame_t *reply)
{
    *addr = *outcome = mx_slice_make("", 0);
    *reply = 0;
    for (const struct mx_ev_field *x = mx_ev_first(e, r); x; x = mx_ev_next(e, x)) {
        if (x->key && !strcmp(x->key, "addr") && x->kind == MX_EV_STR)
            *addr = mx_ev_field_str(e, x);
        else if (x->key && !strcmp(x->key, "outcome") && x->kind == MX_EV_STR)
            *outcome = mx_ev_field_str(e, x);
        else if (x->key && !strcmp(x->key, "frames")) {
            /* [RCPT, reply]: the reply is the proof */
            for (const struct mx_ev_field *y = mx_ev_first(e, x); y; y = mx_ev_next(e, y))
                if (y->kind == MX_EV_UINT)
                    *reply = y->v.u;
        }
    }
}

/* The relaying signal (RFC 5321 §3.6, §7.1): a RCPT to a domain the server
 * does not serve (serves()), accepted from a client that did not
 * authenticate and is not the server's own host or network (own_network()).
 * A signal (medium) by itself: the server may yet refuse the message, or
 * route the domain as a backup MX; an open relay (high) when the message
 * was then accepted. The same RCPT refused is the fact's "no". */
static void on_transaction(struct audit *a, const struct mx_event *e, struct server *s)
{
    struct flowmap *m = flow_of(a, e->flow);
    if ((!s->domain[0] && !s->domain2[0]) || !m || m->authed || own_network(m->client, s->addr))
        return;
    struct mx_slice disp = mx_ev_get_str(e, "disposition");
    bool delivered = slice_eq(disp, "accepted") || slice_eq(disp, "mixed");
    const struct mx_ev_field *rs = mx_ev_get(e, "recipients");
    for (const struct mx_ev_field *r = mx_ev_first(e, rs); r; r = mx_ev_next(e, r)) {
        struct mx_slice addr, outcome;
        mx_frame_t rf;
        rcpt_of(e, r, &addr, &outcome, &rf);
        const uint8_t *at = memchr(addr.ptr, '@', addr.len);
        if (!at || !outcome.len || slice_eq(outcome, "no_reply"))
            continue;
        char dom[96];
        mx_text_copy(dom, sizeof(dom), mx_slice_make(at + 1, addr.len - (size_t)(at + 1 - addr.ptr)));
        for (char *p = dom; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p + 32);
        if (serves(s, dom))
            continue;
        bool accepted = slice_eq(outcome, "accepted");
        observe(s, F_RELAYING, accepted, e->flow, rf, rf);
        if (!accepted)
            continue;
        s->relay_signals++;
        char detail[200];
        snprintf(detail, sizeof(detail), "%s from %s%s", dom, m->client, delivered ? ", message accepted" : "");
        note(a, s, K_OPEN_RELAY, e->flow, rf, rf, detail);
        if (delivered && !s->relay_accepted) {
            struct finding *f = &s->f[K_OPEN_RELAY];
            s->relay_accepted = true;
            f->sev_set = true;
            f->sev = SEV_HIGH;
            f->title = "Open relay";
        }
    }
}

static void on_anomaly(struct audit *a, const struct mx_event *e, struct server *s)
{
    struct mx_slice name = mx_ev_get_str(e, "name");
    mx_frame_t f1, f2;
    frames_of(e, "frames", &f1, &f2);
    if (slice_eq(name, "STARTTLS_CLIENT_INJECTION") || slice_eq(name, "STARTTLS_SERVER_INJECTION"))
        note(a, s, K_STARTTLS_INJECTION, e->flow, f1, f2,
             slice_eq(name, "STARTTLS_CLIENT_INJECTION") ? "client" : "server");
    else if (slice_eq(name, "LOGIN_DISABLED_IGNORED") && slice_eq(mx_ev_get_str(e, "dir"), "s2c"))
        note(a, s, K_LOGINDISABLED_IGNORED, e->flow, f1, f2, "");
    else if (slice_eq(name, "LOGIN_DISABLED_IGNORED")) {
        struct flowmap *m = flow_of(a, e->flow); /* the client tried: the login's outcome says if it was honoured */
        if (m)
            m->ld_tried = f1;
    }
}

/* A TLS record's facts: TLS used on the flow, and after STARTTLS whether the
 * handshake completed. A failed one with no alert ended with the
 * connection: the flow's record extends its evidence to the close. */
static void tls_facts(struct audit *a, struct server *s, const struct mx_event *e, mx_frame_t f1, mx_frame_t f2)
{
    struct flowmap *m = flow_of(a, e->flow);
    bool done = mx_ev_get_int(e, "completed", 1) != 0;
    if (done && m) {
        m->tls = true;
        m->hs_first = f1;
        m->hs_last = f2;
    }
    if (!slice_eq(mx_ev_get_str(e, "how"), "starttls"))
        return;
    int idx = observe(s, F_STARTTLS_FAILED, !done, e->flow, f1, f2);
    if (!done && m && !mx_ev_first(e, mx_ev_get(e, "alerts"))) {
        m->tls_fail_fact = idx;
        const struct finding *f = &s->f[K_STARTTLS_FAILED];
        m->tls_fail_ev = f->n_ev && f->ev[f->n_ev - 1].flow == e->flow ? (int)f->n_ev : 0;
    }
}

/* The flow's last record: whether it used TLS (seen from its start: a
 * session that never did is the fact's "no", its last frame the proof),
 * and the close that ended a failed handshake. */
static void flow_facts(struct audit *a, struct server *s, const struct mx_event *e)
{
    struct flowmap *m = flow_of(a, e->flow);
    mx_frame_t f1, f2;
    frames_of(e, "frames", &f1, &f2);
    if (!m)
        return;
    if (m->tls_fail_fact)
        s->fact[F_STARTTLS_FAILED].ev[1][m->tls_fail_fact - 1].last = f2;
    if (m->tls_fail_ev)
        s->f[K_STARTTLS_FAILED].ev[m->tls_fail_ev - 1].last = f2;
    if (m->hs_first) /* the handshake, else the STARTTLS accepted, else the flow */
        observe(s, F_TLS_USED, true, e->flow, m->hs_first, m->hs_last);
    else if (m->tls || mx_ev_get_int(e, "tls_port", 0))
        observe(s, F_TLS_USED, true, e->flow, m->tls_cmd ? m->tls_cmd : f1, m->tls_cmd ? m->tls_reply : f2);
    else if (m->handshake)
        observe(s, F_TLS_USED, false, e->flow, f2, f2);
}

/* What the audit reads of a tls record's certificate (docs/tls.md), in one
 * walk of the object: the record is long (every cipher offered), and a path
 * lookup walks it from the start. */
struct cert_fields {
    struct mx_slice subject, issuer, not_before, not_after, validity, verify, sig;
    struct mx_slice key_type, name, from, weak_sig;
    int64_t bits, weak_depth;
    bool self_signed, key_weak, named, name_match;
    mx_frame_t f1, f2;
};

static bool key_is(const struct mx_ev_field *x, const char *k)
{
    return x->key && !strcmp(x->key, k);
}

/* Strings, booleans, integers and the frames of one level of `obj`. */
static void cert_level(const struct mx_event *e, const struct mx_ev_field *obj, const char *prefix,
                       struct cert_fields *c)
{
    static const struct {
        const char *prefix, *key;
        size_t off;
    } strs[] = {
        { "", "subject", offsetof(struct cert_fields, subject) },
        { "", "issuer", offsetof(struct cert_fields, issuer) },
        { "", "not_before", offsetof(struct cert_fields, not_before) },
        { "", "not_after", offsetof(struct cert_fields, not_after) },
        { "", "validity", offsetof(struct cert_fields, validity) },
        { "", "verify", offsetof(struct cert_fields, verify) },
        { "", "signature_algorithm", offsetof(struct cert_fields, sig) },
        { "key", "type", offsetof(struct cert_fields, key_type) },
        { "name_checked", "name", offsetof(struct cert_fields, name) },
        { "name_checked", "from", offsetof(struct cert_fields, from) },
        { "weak_signature", "algorithm", offsetof(struct cert_fields, weak_sig) },
    };
    for (const struct mx_ev_field *x = mx_ev_first(e, obj); x; x = mx_ev_next(e, x)) {
        if (x->kind == MX_EV_OBJ && !*prefix) {
            cert_level(e, x, x->key ? x->key : "", c);
        } else if (x->kind == MX_EV_STR) {
            for (size_t i = 0; i < MX_ARRAY_LEN(strs); i++)
                if (!strcmp(prefix, strs[i].prefix) && key_is(x, strs[i].key))
                    *(struct mx_slice *)((char *)c + strs[i].off) = mx_ev_field_str(e, x);
        } else if (x->kind == MX_EV_BOOL) {
            if (!*prefix && key_is(x, "self_signed"))
                c->self_signed = x->v.b;
            else if (!strcmp(prefix, "key") && key_is(x, "weak"))
                c->key_weak = x->v.b;
            else if (!strcmp(prefix, "name_checked") && key_is(x, "match")) {
                c->named = true;
                c->name_match = x->v.b;
            }
        } else if (x->kind == MX_EV_UINT || x->kind == MX_EV_INT) {
            int64_t v = x->kind == MX_EV_UINT ? (int64_t)x->v.u : x->v.i;
            if (!strcmp(prefix, "key") && key_is(x, "bits"))
                c->bits = v;
            else if (!strcmp(prefix, "weak_signature") && key_is(x, "depth"))
                c->weak_depth = v;
        } else if (x->kind == MX_EV_ARR && !*prefix && key_is(x, "frames")) {
            const struct mx_ev_field *y = mx_ev_first(e, x);
            c->f1 = c->f2 = y && y->kind == MX_EV_UINT ? y->v.u : 0;
            if ((y = y ? mx_ev_next(e, y) : NULL) && y->kind == MX_EV_UINT)
                c->f2 = y->v.u;
        }
    }
}

/* Keeps what the posture table shows of the session's certificate. */
static void cert_keep(const struct cert_fields *f, struct server *s)
{
    struct cert_seen *c = &s->cert;
    c->sessions++;
    mx_text_copy(c->subject, sizeof(c->subject), f->subject);
    mx_text_copy(c->issuer, sizeof(c->issuer), f->issuer);
    mx_text_copy(c->not_after, sizeof(c->not_after), f->not_after);
    mx_text_copy(c->validity, sizeof(c->validity), f->validity);
    mx_text_copy(c->verify, sizeof(c->verify), f->verify);
    mx_text_copy(c->sig, sizeof(c->sig), f->sig);
    c->key[0] = '\0';
    if (f->key_type.len)
        snprintf(c->key, sizeof(c->key), "%.*s %" PRId64 " bits", (int)(f->key_type.len < 12 ? f->key_type.len : 12),
                 (const char *)f->key_type.ptr, f->bits);
    mx_text_copy(c->name, sizeof(c->name), f->name);
    c->name_match = f->named ? f->name_match : -1;
}

/* "%.*s" of a slice, at most n bytes. */
#define CUT(v, n) (int)((v).len < (n) ? (v).len : (n)), (const char *)(v).ptr

/* The certificate's findings (cert.c judged them): the evidence is the
 * Certificate message. */
static void cert_findings(struct audit *a, const struct mx_event *e, struct server *s, const struct cert_fields *c)
{
    char d[256];
    if (slice_eq(c->validity, "expired")) {
        snprintf(d, sizeof(d), "not after %.*s", CUT(c->not_after, 32));
        note(a, s, K_TLS_CERT_EXPIRED, e->flow, c->f1, c->f2, d);
    } else if (slice_eq(c->validity, "not_yet_valid")) {
        snprintf(d, sizeof(d), "not before %.*s", CUT(c->not_before, 32));
        note(a, s, K_TLS_CERT_NOT_YET_VALID, e->flow, c->f1, c->f2, d);
    }
    bool unjudged = !c->verify.len || slice_eq(c->verify, "not checked");
    if (slice_eq(c->verify, "self-signed") || (unjudged && c->self_signed)) {
        snprintf(d, sizeof(d), "%.*s", CUT(c->subject, 128));
        note(a, s, K_TLS_CERT_SELF_SIGNED, e->flow, c->f1, c->f2, d);
    } else if (!unjudged && !slice_eq(c->verify, "ok")) {
        snprintf(d, sizeof(d), "%.*s, issuer %.*s", CUT(c->verify, 32), CUT(c->issuer, 128));
        note(a, s, K_TLS_CERT_UNTRUSTED, e->flow, c->f1, c->f2, d);
    }
    if (c->named && !c->name_match) {
        snprintf(d, sizeof(d), "%.*s (%s) not in %.*s", CUT(c->name, 96), slice_eq(c->from, "sni") ? "SNI" : "greeting",
                 CUT(c->subject, 128));
        note(a, s, K_TLS_CERT_NAME_MISMATCH, e->flow, c->f1, c->f2, d);
    }
    if (c->key_weak) {
        snprintf(d, sizeof(d), "%.*s %" PRId64 " bits", CUT(c->key_type, 16), c->bits);
        note(a, s, K_TLS_WEAK_KEY, e->flow, c->f1, c->f2, d);
    }
    if (c->weak_sig.len) {
        snprintf(d, sizeof(d), "%.*s%s", CUT(c->weak_sig, 48), c->weak_depth ? " (an intermediate)" : "");
        note(a, s, K_TLS_SHA1_SIGNATURE, e->flow, c->f1, c->f2, d);
    }
}

/* The certificate's and the cipher suite's findings; the suite's evidence
 * is the ServerHello. */
static void tls_posture(struct audit *a, const struct mx_event *e, struct server *s)
{
    const struct mx_ev_field *w = mx_ev_get(e, "cipher_weakness");
    if (w && w->kind == MX_EV_OBJ) {
        char d[128];
        mx_frame_t f1, f2;
        frames_of(e, "cipher_weakness.frames", &f1, &f2);
        struct mx_slice cipher = mx_ev_get_str(e, "cipher"), class = mx_ev_get_str(e, "cipher_weakness.class");
        snprintf(d, sizeof(d), "%.*s (%.*s)", CUT(cipher, 80), CUT(class, 16));
        note(a, s, K_TLS_WEAK_CIPHER, e->flow, f1, f2, d);
    }
    const struct mx_ev_field *cf = mx_ev_get(e, "certificate");
    if (!cf || cf->kind != MX_EV_OBJ)
        return;
    struct cert_fields c = { 0 };
    cert_level(e, cf, "", &c);
    cert_keep(&c, s);
    cert_findings(a, e, s, &c);
}

static void on_tls(struct audit *a, const struct mx_event *e, struct server *s)
{
    struct mx_slice v = mx_ev_get_str(e, "version");
    mx_frame_t f1, f2;
    frames_of(e, "frames", &f1, &f2);
    set_add(s->versions, sizeof(s->versions), v, ',');
    if (slice_eq(v, "SSL 3.0") || slice_eq(v, "TLS 1.0") || slice_eq(v, "TLS 1.1")) {
        char d[16];
        mx_text_copy(d, sizeof(d), v);
        note(a, s, K_TLS_OLD_VERSION, e->flow, f1, f2, d);
    }
    if (slice_eq(mx_ev_get_str(e, "how"), "starttls") && !mx_ev_get_int(e, "completed", 1)) {
        s->tls_failed++;
        note(a, s, K_STARTTLS_FAILED, e->flow, f1, f2, "");
    }
    tls_facts(a, s, e, f1, f2);
    tls_posture(a, e, s);
}

/* A tunnel's password crossed in clear (RFC 1929 §4, RFC 7617 §4): the
 * proxy's, but the evidence of the mail flow it carried. */
static void on_proxy_credentials(struct audit *a, const struct mx_event *e, struct server *s)
{
    struct mx_slice kind = mx_ev_get_str(e, "kind"), user = mx_ev_get_str(e, "user");
    mx_frame_t f1, f2;
    frames_of(e, "frames", &f1, &f2);
    char detail[160];
    snprintf(detail, sizeof(detail), "%.*s %.*s", (int)(kind.len < 16 ? kind.len : 16), (const char *)kind.ptr,
             user.len ? (int)(user.len < 100 ? user.len : 100) : 9, user.len ? (const char *)user.ptr : "(no user)");
    note(a, s, K_PROXY_CREDENTIALS, e->flow, f1, f2, detail);
}

/* ---- Signs of attack (issue 27) ---- */

#define OVERLONG_SMTP 512      /* RFC 5321 §4.5.3.1.4: a command line, CRLF included */
#define OVERLONG_SMTP_EXT 1024 /* MAIL and RCPT: extensions add parameters (RFC 1870, RFC 3461 §4) */
#define OVERLONG_SASL 12288    /* RFC 4954 §4: AUTH with an initial response */
#define OVERLONG_POP3 255      /* RFC 2449 §4: a command line, CRLF included */
#define OVERLONG_IMAP 1000     /* RFC 2683 §3.2.1.5: what clients keep lines to */
#define OVERLONG_ATOM 256      /* an IMAP atom no real client sends: see imap_odd_atom */

/* Whether the text at p is the \xNN that stands for one byte of invalid
 * UTF-8 in a record (mx_ev_wire). */
static bool is_byte_escape(const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdefABCDEF";
    return n >= 4 && p[0] == '\\' && p[1] == 'x' && p[2] && strchr(hex, p[2]) && p[3] && strchr(hex, p[3]);
}

/* The length on the wire of a record's text: each \xNN was one byte. */
static size_t wire_len(struct mx_slice t)
{
    size_t n = 0;
    for (size_t i = 0; i < t.len; i++, n++)
        if (is_byte_escape(t.ptr + i, t.len - i))
            i += 3;
    return n;
}

/* Whether an atom is an IMAP sequence set (RFC 9051 §9: digits, ':', ',', '*'). */
static bool is_seq_set(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || p[i] == ':' || p[i] == ',' || p[i] == '*'))
            return false;
    return n > 0;
}

/* The longest atom of an IMAP command's shown arguments that is no sequence
 * set, outside quoted strings (RFC 9051 §9: atoms end at SP, parentheses,
 * brackets, braces and quotes). Long IMAP lines are normal when they carry a
 * sequence set of thousands of UIDs (RFC 7162 §4); tags, flags, search keys
 * and section names are words. */
static size_t imap_odd_atom(struct mx_slice arg)
{
    size_t best = 0, start = 0, bytes = 0; /* bytes: the atom's length on the wire */
    bool quoted = false;
    for (size_t i = 0; i <= arg.len; i++) {
        uint8_t c = i < arg.len ? arg.ptr[i] : ' ';
        if (!quoted && is_byte_escape(arg.ptr + i, arg.len - i)) {
            bytes++;
            i += 3;
            continue;
        }
        if (quoted) {
            if (c == '\\' && i + 1 < arg.len)
                i++;
            else if (c == '"')
                quoted = false;
            start = i + 1;
            continue;
        }
        if (c == ' ' || c == '(' || c == ')' || c == '[' || c == ']' || c == '{' || c == '}' || c == '"') {
            if (bytes > best && !is_seq_set(arg.ptr + start, i - start))
                best = bytes;
            quoted = c == '"';
            start = i + 1;
            bytes = 0;
        } else {
            bytes++;
        }
    }
    return best;
}

/* A command record: a line far beyond what the protocol allows and what
 * real clients send raises MX-OVERLONG-COMMAND with its length. */
static void on_command_length(struct audit *a, const struct mx_event *e, struct server *s)
{
    bool imap = !strcmp(s->proto, "imap"), pop3 = !strcmp(s->proto, "pop3");
    struct mx_slice verb = mx_ev_get_str(e, imap ? "command" : "verb"), arg = mx_ev_get_str(e, "arg");
    struct mx_slice tag = mx_ev_get_str(e, "tag");
    uint64_t arg_len = (uint64_t)mx_ev_get_int(e, "arg_len", (int64_t)wire_len(arg));
    if (mx_ev_get_int(e, "redacted_len", 0))
        return; /* a secret's line: its length is the secret's */
    /* The line as sent: tag SP [UID SP] verb [SP arg] CRLF. */
    uint64_t len = (tag.len ? wire_len(tag) + 1 : 0) + (mx_ev_get_int(e, "by_uid", 0) ? 4 : 0) + wire_len(verb) +
                   (arg_len ? arg_len + 1 : 0) + 2;
    uint64_t limit;
    size_t atom = 0;
    const char *rule;
    if (imap) {
        atom = imap_odd_atom(arg);
        limit = OVERLONG_IMAP;
        rule = "RFC 2683 §3.2.1.5";
        if (atom < OVERLONG_ATOM)
            return;
    } else if (pop3) {
        limit = slice_ieq(verb, "AUTH") ? OVERLONG_SASL : OVERLONG_POP3;
        rule = slice_ieq(verb, "AUTH") ? "RFC 5034 §4" : "RFC 2449 §4";
    } else {
        limit = slice_ieq(verb, "AUTH")                              ? OVERLONG_SASL
                : slice_ieq(verb, "MAIL") || slice_ieq(verb, "RCPT") ? OVERLONG_SMTP_EXT
                                                                     : OVERLONG_SMTP;
        rule = slice_ieq(verb, "AUTH") ? "RFC 4954 §4" : "RFC 5321 §4.5.3.1.4";
    }
    if (len <= limit)
        return;
    char v[24], detail[160];
    bool word = verb.len && verb.len < sizeof(v);
    for (size_t i = 0; i < verb.len && word; i++)
        word = (verb.ptr[i] >= 'A' && verb.ptr[i] <= 'Z') || (verb.ptr[i] >= 'a' && verb.ptr[i] <= 'z');
    /* junk for a verb: said so, not copied */
    mx_text_copy(v, sizeof(v), word ? verb : mx_slice_make("a junk verb", 11));
    if (atom)
        snprintf(detail, sizeof(detail), "%s: %" PRIu64 " bytes, an atom of %s%zu bytes (%s: %" PRIu64 ")", v, len,
                 mx_ev_get_int(e, "arg_truncated", 0) ? "at least " : "", atom, rule, limit);
    else
        snprintf(detail, sizeof(detail), "%s: %" PRIu64 " bytes (%s: %" PRIu64 ")", v, len, rule, limit);
    mx_frame_t f1, f2;
    frames_of(e, "frames", &f1, &f2);
    note(a, s, K_OVERLONG_COMMAND, e->flow, f1, f2, detail);
}

/* A command line longer than the dissector's own cap: no command record
 * came, the anomaly has its frames (where it starts, where it crosses). */
static void on_overlong_anomaly(struct audit *a, const struct mx_event *e, struct server *s)
{
    struct mx_slice name = mx_ev_get_str(e, "name");
    if (!slice_eq(mx_ev_get_str(e, "dir"), "c2s") ||
        !(slice_eq(name, "LONG_COMMAND_LINE") || (slice_eq(name, "LONG_LINE") && !strcmp(s->proto, "imap"))))
        return;
    mx_frame_t f1, f2;
    frames_of(e, "frames", &f1, &f2);
    note(a, s, K_OVERLONG_COMMAND, e->flow, f1, f2,
         !strcmp(s->proto, "imap") ? "a line of more than 65536 bytes" : "a line of more than 16384 bytes");
}

/* ---- Executable attachments ---- */

#define AUDIT_MAX_PARTS 1000 /* parts of one message read for the attachment findings */

/* Extensions Windows runs on a double-click (or hands to a script host). */
static const char *const exec_ext[] = { "exe", "pif", "scr", "js",  "jse", "bat", "cmd", "com", "vbs", "vbe",
                                        "jar", "hta", "lnk", "ps1", "msi", "wsf", "wsh", "cpl", NULL };
/* Extensions of documents and media that a double extension pretends to be. */
static const char *const doc_ext[] = { "pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "rtf", "txt", "jpg", "jpeg",
                                       "png", "gif", "zip",  "htm", "html", "mp3", "mp4",  "avi", "csv", NULL };

/* Whether ext (its bytes, lower-cased here) is in list. */
static bool ext_in(struct mx_slice ext, const char *const *list)
{
    char low[8];
    if (!ext.len || ext.len >= sizeof(low))
        return false;
    for (size_t i = 0; i < ext.len; i++)
        low[i] = (char)(ext.ptr[i] >= 'A' && ext.ptr[i] <= 'Z' ? ext.ptr[i] + 32 : ext.ptr[i]);
    low[ext.len] = '\0';
    for (; *list; list++)
        if (!strcmp(low, *list))
            return true;
    return false;
}

/* The last extension of name before `end`, and *stem where its dot is.
 * Windows drops trailing dots and spaces from names, so they are skipped. */
static struct mx_slice last_ext(struct mx_slice name, size_t end, size_t *stem)
{
    while (end && (name.ptr[end - 1] == ' ' || name.ptr[end - 1] == '.'))
        end--;
    for (size_t i = end; i > 0; i--)
        if (name.ptr[i - 1] == '.') {
            *stem = i - 1;
            return mx_slice_make(name.ptr + i, end - i);
        }
    *stem = 0;
    return mx_slice_make(name.ptr, 0);
}

/* What makes a part an executable attachment, or NULL. */
static const char *exec_reason(struct mx_slice name, const char *detected)
{
    size_t stem = 0, stem2 = 0;
    struct mx_slice ext = last_ext(name, name.len, &stem);
    if (ext_in(ext, exec_ext)) {
        /* a document's extension before it, spaces between allowed (invoice.pdf      .exe) */
        size_t end = stem;
        while (end && name.ptr[end - 1] == ' ')
            end--;
        struct mx_slice ext2 = last_ext(name, end, &stem2);
        return ext_in(ext2, doc_ext) && end == ext2.len + (size_t)(ext2.ptr - name.ptr) ? "double extension"
                                                                                        : "executable extension";
    }
    return mx_magic_is_executable(detected) ? "program by its bytes" : NULL;
}

/* A part's file name for a detail: a long one keeps its end (the extension). */
static void name_of(char *out, size_t cap, struct mx_slice name)
{
    if (!name.len) {
        snprintf(out, cap, "(no name)");
    } else if (name.len < cap - 1) {
        mx_text_copy(out, cap, name);
    } else {
        size_t tail = 24, head = cap - tail - 5;
        char h[96], t[32];
        mx_text_copy(h, head + 1 < sizeof(h) ? head + 1 : sizeof(h), name);
        while (tail > 1 && (name.ptr[name.len - tail] & 0xc0) == 0x80)
            tail--; /* start at a character */
        mx_text_copy(t, sizeof(t), mx_slice_make(name.ptr + name.len - tail, tail));
        if (snprintf(out, cap, "%s\xe2\x80\xa6%s", h, t) < 0) /* cut to cap: the head is sized for it */
            out[0] = '\0';
    }
}

/* A message record: its attachments that are programs, or whose declared
 * type disagrees with their bytes (the parts' detected_type, by libmagic). */
static void on_message_parts(struct audit *a, const struct mx_event *e, struct server *s)
{
    mx_frame_t f1, f2;
    frames_of(e, "frames", &f1, &f2);
    char path[48];
    for (unsigned i = 0; i < AUDIT_MAX_PARTS; i++) {
        snprintf(path, sizeof(path), "parts.%u", i);
        if (!mx_ev_get(e, path))
            break;
        char declared[80], detected[80], fname[96], detail[320];
        snprintf(path, sizeof(path), "parts.%u.filename", i);
        struct mx_slice name = mx_ev_get_str(e, path);
        name_of(fname, sizeof(fname), name);
        snprintf(path, sizeof(path), "parts.%u.content_type", i);
        mx_text_copy(declared, sizeof(declared), mx_ev_get_str(e, path));
        snprintf(path, sizeof(path), "parts.%u.detected_type", i);
        mx_text_copy(detected, sizeof(detected), mx_ev_get_str(e, path));
        const char *why = exec_reason(name, detected);
        if (why) {
            snprintf(detail, sizeof(detail), "%s: %s%s%s", fname, why, detected[0] ? ", bytes " : "", detected);
            note(a, s, K_EXECUTABLE_ATTACHMENT, e->flow, f1, f2, detail);
        }
        snprintf(path, sizeof(path), "parts.%u.type_mismatch", i);
        if (mx_ev_get_int(e, path, 0)) {
            snprintf(detail, sizeof(detail), "%s: declared %s, bytes %s", fname, declared, detected);
            note(a, s, K_TYPE_MISMATCH, e->flow, f1, f2, detail);
        }
    }
}

/* An smtp.smuggling record: accepted, or attempted and refused. */
static void on_smuggling(struct audit *a, const struct mx_event *e, struct server *s)
{
    mx_frame_t f1, f2, r1, r2;
    frames_of(e, "frames", &f1, &f2);
    frames_of(e, "reply_frames", &r1, &r2);
    bool accepted = mx_ev_get_int(e, "accepted", 0) != 0;
    char seq[48], detail[128];
    mx_text_copy(seq, sizeof(seq), mx_ev_get_str(e, "sequence"));
    snprintf(detail, sizeof(detail), "%s: %s", seq,
             !accepted                               ? "attempted, refused"
             : mx_ev_get_int(e, "second_message", 0) ? "accepted, a second message"
                                                     : "accepted, the smuggled commands answered");
    note(a, s, accepted ? K_SMTP_SMUGGLING : K_SMUGGLING_ATTEMPT, e->flow, f1, r2 && accepted ? r2 : f2, detail);
}

/* The records the signs of attack read (one hook in audit_event). */
static void on_attack_signs(struct audit *a, const struct mx_event *e, struct server *s)
{
    const char *t = e->type;
    if (!strcmp(t, "smtp.command") || !strcmp(t, "pop3.command") || !strcmp(t, "imap.command") ||
        !strcmp(t, "lmtp.command"))
        on_command_length(a, e, s);
    else if (!strcmp(t, "anomaly"))
        on_overlong_anomaly(a, e, s);
    else if (!strcmp(t, "message"))
        on_message_parts(a, e, s);
    else if (!strcmp(t, "smtp.smuggling"))
        on_smuggling(a, e, s);
}

/* ---- MX-NETWORK-SLOW-TRANSFER ----
 * A transfer is noticeably slowed by the network when, between the command
 * and the end of its reply, at least one retransmission or zero window fell
 * (the reply's "network" object, flow/tcpa.h) and either
 *  - the longest stall in that span was NET_STALL_MS or more and at least a
 *    quarter of the whole (the time went to waiting on the network), or
 *  - the reply took NET_TIMES times as long as the quickest reply without
 *    trouble to the same command on the same flow (its siblings), and
 *    NET_STALL_MS more.
 * 200 ms is Linux's least retransmission timeout (RFC 6298 §2.4 asks for 1 s):
 * a loss repaired by a timeout costs at least that, while delayed ACKs and
 * server think time stay under it on the paths mail takes. */
#define NET_STALL_MS 200.0
#define NET_TIMES 3.0

static double ev_double(const struct mx_event *e, const char *path)
{
    const struct mx_ev_field *f = mx_ev_get(e, path);
    return f && f->kind == MX_EV_DOUBLE ? f->v.d : 0;
}

/* A reply record: kept as a sibling when clean, as a candidate when its span held trouble. */
static void on_net_reply(struct audit *a, const struct mx_event *e)
{
    struct flowmap *m = flow_of(a, e->flow);
    const struct mx_ev_field *cf = mx_ev_get(e, "complete_ms");
    if (!m || !cf || cf->kind != MX_EV_DOUBLE)
        return;
    struct net_watch *w = &m->net;
    char cmd[16];
    mx_text_copy(cmd, sizeof(cmd), mx_ev_get_str(e, "answers.command"));
    uint64_t retx = (uint64_t)mx_ev_get_int(e, "network.retransmissions", 0);
    uint64_t zw = (uint64_t)mx_ev_get_int(e, "network.zero_windows", 0);
    if (!retx && !zw) {
        uint32_t i = 0;
        while (i < w->n_clean && strcmp(w->clean[i].cmd, cmd))
            i++;
        if (i == w->n_clean && i < NET_COMMANDS) {
            snprintf(w->clean[i].cmd, sizeof(w->clean[i].cmd), "%s", cmd);
            w->clean[i].best_ms = cf->v.d;
            w->n_clean++;
        } else if (i < w->n_clean && cf->v.d < w->clean[i].best_ms) {
            w->clean[i].best_ms = cf->v.d;
        }
        return;
    }
    struct net_cand c = { .ms = cf->v.d, .stall_ms = ev_double(e, "network.stall_ms"), .retx = retx, .zw = zw };
    snprintf(c.cmd, sizeof(c.cmd), "%s", cmd);
    mx_frame_t s1, s2, f1, f2;
    frames_of(e, "network.frames", &f1, &f2);
    frames_of(e, "network.stall_frames", &s1, &s2);
    const struct mx_ev_field *fr = mx_ev_first(e, mx_ev_get(e, "network.frames"));
    for (const struct mx_ev_field *x = fr; x; x = mx_ev_next(e, x))
        if (x->kind == MX_EV_UINT)
            f2 = x->v.u; /* the last event's frame */
    c.first = f1 ? f1 : s1;
    c.last = s2 > f2 ? s2 : f2;
    uint32_t slot = w->n_cand;
    if (slot == NET_CANDIDATES) { /* full: replace the quickest, if this one is slower */
        slot = 0;
        for (uint32_t i = 1; i < NET_CANDIDATES; i++)
            if (w->cand[i].ms < w->cand[slot].ms)
                slot = i;
        if (w->cand[slot].ms >= c.ms)
            return;
    } else {
        w->n_cand++;
    }
    w->cand[slot] = c;
}

/* The flow ended: its candidates judged against their siblings. */
static void on_net_flow(struct audit *a, const struct mx_event *e, struct server *s)
{
    struct flowmap *m = flow_of(a, e->flow);
    if (!m)
        return;
    const struct net_watch *w = &m->net;
    for (uint32_t i = 0; i < w->n_cand; i++) {
        const struct net_cand *c = &w->cand[i];
        double sib = -1;
        for (uint32_t j = 0; j < w->n_clean; j++)
            if (!strcmp(w->clean[j].cmd, c->cmd))
                sib = w->clean[j].best_ms;
        bool stalled = c->stall_ms >= NET_STALL_MS && c->stall_ms * 4 >= c->ms;
        bool slower = sib >= 0 && c->ms >= NET_TIMES * sib && c->ms - sib >= NET_STALL_MS;
        if (!stalled && !slower)
            continue;
        char d[200], sb[48] = "", st[40] = "";
        if (sib >= 0)
            snprintf(sb, sizeof(sb), " (its quickest sibling %.0f ms)", sib);
        if (c->stall_ms > 0)
            snprintf(st, sizeof(st), ", a stall of %.0f ms", c->stall_ms);
        snprintf(d, sizeof(d), "%s took %.0f ms%s: %" PRIu64 " retransmission%s, %" PRIu64 " zero window%s%s",
                 c->cmd[0] ? c->cmd : "a reply", c->ms, sb, c->retx, c->retx == 1 ? "" : "s", c->zw,
                 c->zw == 1 ? "" : "s", st);
        note(a, s, K_NETWORK_SLOW_TRANSFER, e->flow, c->first, c->last, d);
    }
}

/* The client a PROXY header names ("ADDR:PORT", "[ADDR]:PORT") stands in
 * for the proxy's address when relaying is judged. */
static void proxied_client(struct flowmap *m, const char *c)
{
    const char *b = c, *e = strrchr(c, ':');
    if (*c == '[') {
        b = c + 1;
        e = strchr(b, ']');
    } else if (e && strchr(c, ':') != e) {
        e = NULL; /* a bare IPv6 address: no port */
    }
    size_t n = e ? (size_t)(e - b) : strlen(b);
    if (n < sizeof(m->client)) {
        memcpy(m->client, b, n);
        m->client[n] = '\0';
    }
}

static void audit_event(void *ctx, const struct mx_event *e)
{
    struct audit *a = ctx;
    const char *t = e->type;
    if (!strcmp(t, "flow_start")) {
        on_flow_start(a, e);
        return;
    }
    struct server *s = server_of(a, e->flow);
    if (!s)
        return;
    if (!strcmp(t, "proxy")) {
        struct flowmap *m = flow_of(a, e->flow);
        char c[64];
        if (m && mx_proxy_client_of(e, c, sizeof(c))) {
            m->client_tls = mx_proxy_client_tls(e);
            snprintf(m->via, sizeof(m->via), "client %s via proxy%s", c,
                     m->client_tls ? ", over TLS to the proxy" : "");
            proxied_client(m, c);
        }
        return;
    }
    on_attack_signs(a, e, s);
    /* LMTP (RFC 2033) goes through SMTP's checks of sessions, logins and replies (VRFY, EXPN);
     * not through the open-relay one: an LMTP server delivers to its own mailboxes only, and
     * nothing it accepts is relayed (RFC 2033 §1). */
    if (!strcmp(t, "smtp.session") || !strcmp(t, "pop3.session") || !strcmp(t, "imap.session") ||
        !strcmp(t, "lmtp.session"))
        on_session(a, e, s);
    else if (!strcmp(t, "smtp.auth") || !strcmp(t, "pop3.auth") || !strcmp(t, "imap.auth") || !strcmp(t, "lmtp.auth"))
        on_auth(a, e, s);
    else if (!strcmp(t, "smtp.reply") || !strcmp(t, "lmtp.reply")) {
        on_reply(a, e, s);
        on_starttls_reply(a, e);
    } else if (!strcmp(t, "pop3.response") || !strcmp(t, "imap.response"))
        on_starttls_reply(a, e);
    else if (!strcmp(t, "smtp.transaction"))
        on_transaction(a, e, s);
    else if (!strcmp(t, "anomaly"))
        on_anomaly(a, e, s);
    else if (!strcmp(t, "tls"))
        on_tls(a, e, s);
    else if (!strcmp(t, "tunnel") && mx_ev_get_int(e, "secret_in_clear", 0))
        on_proxy_credentials(a, e, s);
    if (!strcmp(t, "smtp.reply") || !strcmp(t, "lmtp.reply") || !strcmp(t, "pop3.response") ||
        !strcmp(t, "imap.response"))
        on_net_reply(a, e);
    else if (!strcmp(t, "flow"))
        on_net_flow(a, e, s);
    if (!strcmp(t, "flow")) {
        if (mx_ev_get_int(e, "tls_port", 0))
            s->implicit++;
        flow_facts(a, s, e);
        /* The flow's last record: forget it (memory stays flat over days). */
        free(mx_idmap_take(&a->flows, e->flow));
    }
}

/* ---- Conclusions ---- */

/* Findings that need every session of a server. Sessions whose
 * capabilities showed no STARTTLS were noted as "not offered"; if the same
 * server offered it in other sessions, the offer was stripped on the way. */
static void conclude(struct server *s)
{
    if (s->tls_missing && s->tls_offered) {
        s->f[K_STARTTLS_STRIPPED] = s->f[K_TLS_NOT_OFFERED];
        s->f[K_TLS_NOT_OFFERED].on = false;
        s->f[K_TLS_NOT_OFFERED].detail = NULL; /* moved */
    } else if (s->tls_upgraded || s->f[K_STARTTLS_MANGLED].on) {
        s->f[K_TLS_NOT_OFFERED].on = false; /* the offer is proven, or masked: another finding */
    }
}

/* A finding's severity, title and fix at this server: the kind's, unless
 * the server's instance set its own (MX-OPEN-RELAY with the message
 * accepted); MX-CLEARTEXT-CREDENTIALS's fix says "shown" only where the
 * records carry the passwords (--show-secrets). */
static enum severity sev_of(const struct server *s, enum kind k)
{
    return s->f[k].sev_set ? s->f[k].sev : kinds[k].sev;
}

static const char *title_of(const struct server *s, enum kind k)
{
    return s->f[k].title ? s->f[k].title : kinds[k].title;
}

static const char *fix_of(const struct server *s, enum kind k)
{
    if (k == K_CLEARTEXT_CREDENTIALS)
        return s->secrets_shown ? "Change the passwords shown (--show-secrets printed them), require TLS before "
                                  "authentication on the server, and configure clients to use TLS."
                                : "Change the passwords of the users listed (this report hides the passwords, but "
                                  "anyone on the path could read them), require TLS before authentication on the "
                                  "server, and configure clients to use TLS.";
    return s->f[k].fix ? s->f[k].fix : kinds[k].fix;
}

static void emit_server(struct mx_sink *sink, struct server *s)
{
    const char *sw = software_of(s->banner);
    unsigned n = 0;
    for (int k = 0; k < K_N; k++)
        n += s->f[k].on;
    struct mx_event *ev = mx_event_begin(sink, "audit.server", 0, MX_TIME_NONE);
    mx_ev_str(ev, "proto", s->proto);
    mx_ev_str(ev, "server", s->addr);
    mx_ev_uint(ev, "port", s->port);
    if (s->banner[0])
        mx_ev_str(ev, "banner", s->banner);
    if (sw)
        mx_ev_str(ev, "software", sw);
    mx_ev_uint(ev, "sessions", s->sessions);
    mx_ev_obj(ev, "tls_seen");
    mx_ev_uint(ev, "upgraded_sessions", s->tls_upgraded);
    mx_ev_uint(ev, "implicit_sessions", s->implicit);
    mx_ev_uint(ev, "refused", s->tls_refused);
    mx_ev_uint(ev, "failed", s->tls_failed);
    emit_set(ev, "versions", s->versions, ',');
    mx_ev_end(ev);
    mx_ev_obj(ev, "auth_seen");
    emit_set(ev, "mechanisms", s->mechs, ' ');
    mx_ev_uint(ev, "cleartext_logins", s->cleartext_logins);
    mx_ev_end(ev);
    if (s->vrfy_code)
        mx_ev_int(ev, "vrfy_reply", s->vrfy_code);
    if (s->expn_code)
        mx_ev_int(ev, "expn_reply", s->expn_code);
    mx_ev_uint(ev, "relay_signals", s->relay_signals);
    emit_posture(ev, s);
    mx_ev_arr(ev, "findings");
    for (int k = 0; k < K_N; k++)
        if (s->f[k].on)
            mx_ev_str(ev, NULL, kinds[k].id);
    mx_ev_end(ev);
    mx_ev_tone(ev, n ? MX_TONE_WARN : MX_TONE_GOOD);
    mx_ev_text(ev,
               "audit: %s server %s:%u%s%s%s: %u session%s, %s offered: %s, TLS used: %s, credentials in clear: %s "
               "(%u login%s), %u finding%s",
               s->proto, s->addr, s->port, sw ? " (" : "", sw ? sw : "", sw ? ")" : "", s->sessions,
               s->sessions == 1 ? "" : "s", strcmp(s->proto, "pop3") ? "STARTTLS" : "STLS",
               state_name(fact_state(s, F_STARTTLS_OFFERED)), state_name(fact_state(s, F_TLS_USED)),
               state_name(fact_state(s, F_CLEARTEXT_CREDENTIALS)), s->cleartext_logins,
               s->cleartext_logins == 1 ? "" : "s", n, n == 1 ? "" : "s");
    mx_event_emit(sink, ev);
}

/* A finding's details (one per line) as one line: "a, b, c". */
static void joined(const char *set, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = set; *p && n + 3 < cap; p++) {
        if (*p == '\n') {
            out[n++] = ',';
            out[n++] = ' ';
        } else {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
}

static void emit_finding(struct mx_sink *sink, const struct server *s, enum kind k)
{
    const struct finding *f = &s->f[k];
    enum severity sev = sev_of(s, k);
    struct mx_event *ev = mx_event_begin(sink, "finding", 0, MX_TIME_NONE);
    mx_ev_str(ev, "id", kinds[k].id);
    mx_ev_str(ev, "severity", sev_names[sev]);
    mx_ev_str(ev, "title", title_of(s, k));
    mx_ev_str(ev, "proto", s->proto);
    mx_ev_str(ev, "server", s->addr);
    mx_ev_uint(ev, "port", s->port);
    mx_ev_uint(ev, "count", f->count);
    if (f->detail && f->detail[0])
        emit_set(ev, "detail", f->detail, '\n');
    mx_ev_arr(ev, "evidence");
    for (uint32_t i = 0; i < f->n_ev; i++) {
        mx_ev_obj(ev, NULL);
        mx_ev_uint(ev, "flow", f->ev[i].flow);
        mx_ev_frames(ev, f->ev[i].first, f->ev[i].last);
        mx_ev_end(ev);
    }
    mx_ev_end(ev);
    mx_ev_str(ev, "why", kinds[k].why);
    mx_ev_str(ev, "fix", fix_of(s, k));
    mx_ev_str(ev, "references", kinds[k].refs);
    mx_ev_tone(ev, sev >= SEV_HIGH ? MX_TONE_BAD : MX_TONE_WARN);
    char frames[160] = "";
    size_t fl = 0;
    for (uint32_t i = 0; i < f->n_ev && fl < sizeof(frames) - 24; i++)
        fl += (size_t)snprintf(frames + fl, sizeof(frames) - fl, "%s%" PRIu64, i ? ", " : "", f->ev[i].first);
    char detail[AUDIT_DETAIL * 2];
    joined(f->detail ? f->detail : "", detail, sizeof(detail));
    mx_ev_text(ev, "FINDING %s %s on %s %s:%u: %s%s%s, %" PRIu64 " time%s (frames %s%s)", sev_names[sev], kinds[k].id,
               s->proto, s->addr, s->port, title_of(s, k), detail[0] ? ": " : "", detail, f->count,
               f->count == 1 ? "" : "s", frames, f->count > f->n_ev ? ", ..." : "");
    mx_event_emit(sink, ev);
}

/* The findings of every server, high first, then medium, low, info; in
 * server and kind order within a severity. */
static void emit_findings_by_severity(struct audit *a, struct mx_sink *sink)
{
    for (int sev = SEV_HIGH; sev >= SEV_INFO; sev--)
        for (uint32_t i = 0; i < a->srv.n; i++) {
            struct server *s = server_at(a, i);
            for (int k = 0; k < K_N; k++)
                if (s->f[k].on && (int)sev_of(s, (enum kind)k) == sev)
                    emit_finding(sink, s, (enum kind)k);
        }
}

static void audit_end(void *ctx, struct mx_sink *sink)
{
    struct audit *a = ctx;
    for (uint32_t i = 0; i < a->srv.n; i++) {
        struct server *s = server_at(a, i);
        conclude(s);
        emit_server(sink, s);
    }
    emit_findings_by_severity(a, sink);
}

/* ---- The posture table (mxray audit) ---- */

static void put(FILE *o, const char *text)
{
    mx_fput_escaped(o, mx_slice_make(text, strlen(text)));
}

/* label and text, when the text is not empty. */
static void put_field(FILE *o, const char *label, const char *text)
{
    if (!text[0])
        return;
    fputs(label, o);
    put(o, text);
}

/* The last certificate the server showed, as cert.c judged it (nothing
 * when none was seen: TLS 1.3 hides it without --tls-keylog). */
static void print_certificate(FILE *o, const struct server *s)
{
    const struct cert_seen *c = &s->cert;
    if (!c->sessions)
        return;
    fputs("  Cert       ", o);
    put(o, c->subject[0] ? c->subject : "(unreadable)");
    put_field(o, "; issuer ", c->issuer);
    put_field(o, "; until ", c->not_after);
    fputs("\n             at capture time: ", o);
    put(o, !strcmp(c->validity, "not_yet_valid") ? "not yet valid" : c->validity[0] ? c->validity : "unknown");
    fputs("; chain: ", o);
    put(o, c->verify[0] ? c->verify : "not verified");
    put_field(o, "; key ", c->key);
    put_field(o, "; ", c->sig);
    if (c->name_match >= 0) {
        put_field(o, "; name ", c->name);
        fputs(c->name_match ? ": matches" : ": MISMATCH", o);
    }
    fprintf(o, " (%u session%s)\n", c->sessions, c->sessions == 1 ? "" : "s");
}

static void print_server(struct audit *a, const struct server *s)
{
    FILE *o = a->table;
    const char *bold = a->color ? "\033[1m" : "", *red = a->color ? "\033[31m" : "", *yel = a->color ? "\033[33m" : "",
               *grn = a->color ? "\033[32m" : "", *off = a->color ? "\033[0m" : "";
    const char *sw = software_of(s->banner);
    fprintf(o, "%s%s %s:%u%s", bold, s->proto, s->addr, s->port, off);
    if (sw)
        fprintf(o, "  %s", sw);
    if (s->banner[0]) {
        fputs("  \"", o);
        put(o, s->banner);
        fputc('"', o);
    }
    fprintf(o, "  %u session%s\n", s->sessions, s->sessions == 1 ? "" : "s");
    fprintf(o, "  TLS        used in %u of %u session%s", s->tls_upgraded + s->implicit, s->sessions,
            s->sessions == 1 ? "" : "s");
    if (s->implicit)
        fprintf(o, " (implicit TLS: %u session%s)", s->implicit, s->implicit == 1 ? "" : "s");
    fprintf(o, "; STARTTLS refused: %u, failed: %u", s->tls_refused, s->tls_failed);
    if (s->versions[0]) {
        fputs("; versions: ", o);
        put(o, s->versions);
    }
    fputc('\n', o);
    print_certificate(o, s);
    fputs("  AUTH       mechanisms announced in clear: ", o);
    s->mechs[0] ? put(o, s->mechs) : fputs("none seen", o);
    fprintf(o, "; logins with the password in clear: %u\n", s->cleartext_logins);
    if (!strcmp(s->proto, "smtp") || !strcmp(s->proto, "lmtp")) {
        fputs("  Probing    last VRFY reply: ", o);
        s->vrfy_code ? fprintf(o, "%d", s->vrfy_code) : fputs("none", o);
        fputs("; last EXPN reply: ", o);
        s->expn_code ? fprintf(o, "%d", s->expn_code) : fputs("none", o);
        fputc('\n', o);
    }
    print_posture(o, s);
    unsigned n = 0;
    for (int sev = SEV_HIGH; sev >= SEV_INFO; sev--) {
        for (int k = 0; k < K_N; k++) {
            const struct finding *f = &s->f[k];
            if (!f->on || (int)sev_of(s, (enum kind)k) != sev)
                continue;
            if (!n++)
                fputs("  Findings\n", o);
            const char *c = sev == SEV_HIGH ? red : sev == SEV_MEDIUM ? yel : "";
            fprintf(o, "    %s%-6s %s%s  %s", c, sev_names[sev], kinds[k].id, off, title_of(s, (enum kind)k));
            if (f->detail && f->detail[0]) {
                char d[AUDIT_DETAIL * 2];
                joined(f->detail, d, sizeof(d));
                fputs(": ", o);
                put(o, d);
            }
            fprintf(o, " (%" PRIu64 "x; evidence:", f->count);
            for (uint32_t i = 0; i < f->n_ev; i++)
                fprintf(o, " flow %" PRIu64 " frame %" PRIu64 "%s", f->ev[i].flow, f->ev[i].first,
                        i + 1 < f->n_ev ? "," : "");
            fprintf(o, "%s)\n", f->count > f->n_ev ? " ..." : "");
            fprintf(o, "           why: %s\n           fix: %s\n           see: %s\n", kinds[k].why,
                    fix_of(s, (enum kind)k), kinds[k].refs);
        }
    }
    if (!n)
        fprintf(o, "  %sFindings   none%s\n", grn, off);
    fputc('\n', o);
}

static bool audit_finish(void *ctx)
{
    struct audit *a = ctx;
    if (!a->table)
        return !a->failed;
    if (!a->srv.n)
        fputs("No mail server seen.\n", a->table);
    for (uint32_t i = 0; i < a->srv.n; i++)
        print_server(a, server_at(a, i));
    if (a->dropped)
        fprintf(a->table, "(%u more servers not audited: the cap is %u)\n", a->dropped, AUDIT_MAX_SERVERS);
    return fflush(a->table) == 0 && !a->failed;
}

static void audit_free(void *ctx)
{
    struct audit *a = ctx;
    for (uint32_t i = 0; i < a->srv.n; i++)
        for (int k = 0; k < K_N; k++)
            free(server_at(a, i)->f[k].detail);
    mx_buf_free(&a->srv);
    for (size_t i = 0; i < a->flows.cap; i++)
        if (a->flows.slot[i].id)
            free(a->flows.slot[i].val);
    mx_idmap_free(&a->flows);
    mx_idmap_free(&a->by_key);
    mx_hasher_free(a->hasher);
    free(a);
}

static const struct mx_reporter_ops audit_ops = {
    .event = audit_event,
    .end = audit_end,
    .finish = audit_finish,
    .free = audit_free,
};

bool mx_audit_add(struct mx_sink *s, FILE *table, bool color)
{
    struct audit *a = calloc(1, sizeof(*a));
    if (!a)
        return false;
    a->table = table;
    a->color = color;
    mx_buf_init(&a->srv, sizeof(struct server), 16, AUDIT_MAX_SERVERS);
    a->hasher = mx_hasher_new();
    if (!a->hasher || !mx_sink_add(s, &audit_ops, a)) {
        mx_hasher_free(a->hasher);
        free(a);
        return false;
    }
    return true;
}

size_t mx_audit_n_kinds(void)
{
    return K_N;
}

const char *mx_audit_kind_id(size_t i)
{
    return i < K_N ? kinds[i].id : NULL;
}
