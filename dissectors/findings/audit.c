/* audit.c - the auditor: per server, what the sessions showed of its TLS,
 * authentication, probing and relaying posture, and the findings that
 * follow (RFC 8314, RFC 3207, RFC 2595, RFC 9051 §11). It reads the records
 * the dissectors emit, as a reporter, and keeps a bounded summary per server. */
#include "dissectors/findings/audit.h"

#include "dissectors/mail/proxy.h"

#include "core/buf.h"
#include "core/hash.h"
#include "core/idmap.h"
#include "core/mx.h"
#include "event/text.h"

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
                                  "Change the passwords shown, require TLS before authentication on the server, and configure clients "
                                  "to use TLS.",
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
    [K_OPEN_RELAY] = { "MX-OPEN-RELAY", SEV_HIGH, "Open-relay signal",
                       "The server accepted a recipient in a domain that is not its own from a client that did not "
                       "authenticate: spammers relay through such servers, and the server's address ends on blocklists.",
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

struct finding {
    bool on;
    uint64_t count;
    uint32_t n_ev;
    struct evidence ev[AUDIT_EVIDENCE];
    char detail[AUDIT_DETAIL];
    size_t detail_len;
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
    char domain[96];        /* from the greeting's host name: for relaying */
    uint32_t sessions;      /* flows to it */
    uint32_t caps_in_clear; /* sessions whose capabilities were seen in clear */
    uint32_t tls_offered, tls_missing, tls_attempted, tls_upgraded, tls_refused, tls_failed, implicit;
    char versions[64];  /* TLS versions negotiated, comma-separated */
    bool auth_in_clear; /* authentication announced in clear */
    char mechs[160];    /* mechanisms announced */
    bool logindisabled;
    uint32_t cleartext_logins;
    int vrfy_code, expn_code; /* the last answer to VRFY / EXPN, 0 for none */
    uint32_t relay_signals;
    struct finding f[K_N];
    struct cert_seen cert; /* the last certificate it showed (tls_posture) */
};

struct flowmap {
    uint32_t server; /* index + 1; 0: not audited */
    bool authed;     /* a login succeeded on this flow */
    mx_frame_t first;
    char via[128];   /* behind a PROXY header: "client ADDR:PORT via proxy", else "" */
    bool client_tls; /* the PROXY header says the client reached the proxy over TLS */
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
    if (detail && *detail)
        set_add(f->detail, sizeof(f->detail), mx_slice_make(detail, strlen(detail)), '\n');
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
    *m = (struct flowmap){ .server = idx, .first = f1 };
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
    bool seen = mx_ev_first(e, caps) != NULL;
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
            note(a, s, K_STARTTLS_MANGLED, e->flow, 0, 0, "");
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
        }
    }
    if (login_cap && !logindisabled) { /* RFC 9051 §6.2.3: LOGIN works unless LOGINDISABLED */
        auth = true;
        add_word(s->mechs, sizeof(s->mechs), mx_slice_make("LOGIN-command", 13));
    }
    if (logindisabled)
        s->logindisabled = true;
    if (seen) {
        s->caps_in_clear++;
        if (offered) {
            s->tls_offered++;
        } else if (!mangled && !lmtp) {
            /* LMTP is local delivery between an MTA and the message store (RFC 2033 §1), on
             * one host or a trusted network: a cleartext LMTP listener is not a finding. */
            s->tls_missing++;
            note(a, s, K_TLS_NOT_OFFERED, e->flow, 0, 0, "");
        }
        if (auth) {
            s->auth_in_clear = true;
            note(a, s, K_AUTH_BEFORE_TLS, e->flow, 0, 0, "");
        }
    } else if (offered) {
        s->tls_offered++;
    }
    if (attempted)
        s->tls_attempted++;
    if (upgraded)
        s->tls_upgraded++;
    if (attempted && !upgraded) {
        s->tls_refused++;
        mx_frame_t f1, f2;
        frames_of(e, (snprintf(path, sizeof(path), "%s.frames", tlsobj), path), &f1, &f2);
        note(a, s, K_STARTTLS_REFUSED, e->flow, f1, f2, "");
    }
    /* Behind a proxy that ended the client's TLS, the cleartext leg is the
     * proxy's own: the client did use TLS. */
    struct flowmap *m = flow_of(a, e->flow);
    if (offered && !attempted && !(m && m->client_tls) && !lmtp) /* LMTP: see above */
        note(a, s, K_TLS_NOT_USED, e->flow, 0, 0, "");
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
    if (clear && secret) {
        s->cleartext_logins++;
        note(a, s, K_CLEARTEXT_CREDENTIALS, e->flow, f1, f2, detail);
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

static void on_transaction(struct audit *a, const struct mx_event *e, struct server *s)
{
    struct flowmap *m = flow_of(a, e->flow);
    if (!s->domain[0] || (m && m->authed))
        return;
    const struct mx_ev_field *rs = mx_ev_get(e, "recipients");
    for (const struct mx_ev_field *r = mx_ev_first(e, rs); r; r = mx_ev_next(e, r)) {
        struct mx_slice addr = mx_slice_make("", 0), outcome = addr;
        mx_frame_t f1 = 0, f2 = 0;
        for (const struct mx_ev_field *x = mx_ev_first(e, r); x; x = mx_ev_next(e, x)) {
            if (x->key && !strcmp(x->key, "addr") && x->kind == MX_EV_STR)
                addr = mx_ev_field_str(e, x);
            else if (x->key && !strcmp(x->key, "outcome") && x->kind == MX_EV_STR)
                outcome = mx_ev_field_str(e, x);
            else if (x->key && !strcmp(x->key, "frames")) {
                const struct mx_ev_field *y = mx_ev_first(e, x);
                f1 = f2 = y ? y->v.u : 0;
                if ((y = mx_ev_next(e, y)))
                    f2 = y->v.u;
            }
        }
        const uint8_t *at = memchr(addr.ptr, '@', addr.len);
        if (!slice_eq(outcome, "accepted") || !at)
            continue;
        char dom[96];
        mx_text_copy(dom, sizeof(dom), mx_slice_make(at + 1, addr.len - (size_t)(at + 1 - addr.ptr)));
        for (char *p = dom; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p + 32);
        size_t dl = strlen(dom), sl = strlen(s->domain);
        bool own = !strcmp(dom, s->domain) || (dl > sl && dom[dl - sl - 1] == '.' && !strcmp(dom + dl - sl, s->domain));
        if (!own) { /* RFC 5321 §3.6: relaying for a client that did not authenticate */
            s->relay_signals++;
            char detail[128];
            snprintf(detail, sizeof(detail), "%s", dom);
            note(a, s, K_OPEN_RELAY, e->flow, f1, f2, detail);
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
        }
        return;
    }
    /* LMTP (RFC 2033) goes through SMTP's checks of sessions, logins and replies (VRFY, EXPN);
     * not through the open-relay one: an LMTP server delivers to its own mailboxes only, and
     * nothing it accepts is relayed (RFC 2033 §1). */
    if (!strcmp(t, "smtp.session") || !strcmp(t, "pop3.session") || !strcmp(t, "imap.session") ||
        !strcmp(t, "lmtp.session"))
        on_session(a, e, s);
    else if (!strcmp(t, "smtp.auth") || !strcmp(t, "pop3.auth") || !strcmp(t, "imap.auth") || !strcmp(t, "lmtp.auth"))
        on_auth(a, e, s);
    else if (!strcmp(t, "smtp.reply") || !strcmp(t, "lmtp.reply"))
        on_reply(a, e, s);
    else if (!strcmp(t, "smtp.transaction"))
        on_transaction(a, e, s);
    else if (!strcmp(t, "anomaly"))
        on_anomaly(a, e, s);
    else if (!strcmp(t, "tls"))
        on_tls(a, e, s);
    else if (!strcmp(t, "tunnel") && mx_ev_get_int(e, "secret_in_clear", 0))
        on_proxy_credentials(a, e, s);
    else if (!strcmp(t, "flow")) {
        if (mx_ev_get_int(e, "tls_port", 0))
            s->implicit++;
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
    } else if (s->tls_upgraded || s->f[K_STARTTLS_MANGLED].on) {
        s->f[K_TLS_NOT_OFFERED].on = false; /* the offer is proven, or masked: another finding */
    }
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
    mx_ev_obj(ev, "tls");
    mx_ev_bool(ev, "offered", s->tls_offered > 0 || s->implicit > 0);
    mx_ev_uint(ev, "upgraded_sessions", s->tls_upgraded);
    mx_ev_uint(ev, "implicit_sessions", s->implicit);
    mx_ev_uint(ev, "refused", s->tls_refused);
    mx_ev_uint(ev, "failed", s->tls_failed);
    emit_set(ev, "versions", s->versions, ',');
    mx_ev_end(ev);
    mx_ev_obj(ev, "auth");
    mx_ev_bool(ev, "offered_in_clear", s->auth_in_clear);
    emit_set(ev, "mechanisms", s->mechs, ' ');
    mx_ev_uint(ev, "cleartext_logins", s->cleartext_logins);
    if (!strcmp(s->proto, "imap")) {
        mx_ev_bool(ev, "logindisabled", s->logindisabled);
        mx_ev_bool(ev, "logindisabled_honoured", !s->f[K_LOGINDISABLED_IGNORED].on);
    }
    mx_ev_end(ev);
    if (s->vrfy_code)
        mx_ev_int(ev, "vrfy_reply", s->vrfy_code);
    if (s->expn_code)
        mx_ev_int(ev, "expn_reply", s->expn_code);
    mx_ev_uint(ev, "relay_signals", s->relay_signals);
    mx_ev_arr(ev, "findings");
    for (int k = 0; k < K_N; k++)
        if (s->f[k].on)
            mx_ev_str(ev, NULL, kinds[k].id);
    mx_ev_end(ev);
    mx_ev_tone(ev, n ? MX_TONE_WARN : MX_TONE_GOOD);
    mx_ev_text(ev, "audit: %s server %s:%u%s%s%s: %u session%s, TLS %s, %u login%s in clear, %u finding%s", s->proto,
               s->addr, s->port, sw ? " (" : "", sw ? sw : "", sw ? ")" : "", s->sessions, s->sessions == 1 ? "" : "s",
               s->tls_upgraded || s->implicit ? "used"
               : s->tls_offered               ? "offered, not used"
               : s->caps_in_clear             ? "not offered"
                                              : "offer not seen (no capability list)",
               s->cleartext_logins, s->cleartext_logins == 1 ? "" : "s", n, n == 1 ? "" : "s");
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
    struct mx_event *ev = mx_event_begin(sink, "finding", 0, MX_TIME_NONE);
    mx_ev_str(ev, "id", kinds[k].id);
    mx_ev_str(ev, "severity", sev_names[kinds[k].sev]);
    mx_ev_str(ev, "title", kinds[k].title);
    mx_ev_str(ev, "proto", s->proto);
    mx_ev_str(ev, "server", s->addr);
    mx_ev_uint(ev, "port", s->port);
    mx_ev_uint(ev, "count", f->count);
    if (f->detail[0])
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
    mx_ev_str(ev, "fix", kinds[k].fix);
    mx_ev_str(ev, "references", kinds[k].refs);
    mx_ev_tone(ev, kinds[k].sev >= SEV_HIGH ? MX_TONE_BAD : MX_TONE_WARN);
    char frames[160] = "";
    size_t fl = 0;
    for (uint32_t i = 0; i < f->n_ev && fl < sizeof(frames) - 24; i++)
        fl += (size_t)snprintf(frames + fl, sizeof(frames) - fl, "%s%" PRIu64, i ? ", " : "", f->ev[i].first);
    char detail[AUDIT_DETAIL * 2];
    joined(f->detail, detail, sizeof(detail));
    mx_ev_text(ev, "FINDING %s %s on %s %s:%u: %s%s%s, %" PRIu64 " time%s (frames %s%s)", sev_names[kinds[k].sev],
               kinds[k].id, s->proto, s->addr, s->port, kinds[k].title, detail[0] ? ": " : "", detail, f->count,
               f->count == 1 ? "" : "s", frames, f->count > f->n_ev ? ", ..." : "");
    mx_event_emit(sink, ev);
}

static void audit_end(void *ctx, struct mx_sink *sink)
{
    struct audit *a = ctx;
    for (uint32_t i = 0; i < a->srv.n; i++) {
        struct server *s = server_at(a, i);
        conclude(s);
        emit_server(sink, s);
        for (int k = 0; k < K_N; k++)
            if (s->f[k].on)
                emit_finding(sink, s, (enum kind)k);
    }
}

/* ---- The posture table (mxray audit) ---- */

static void put(FILE *o, const char *text)
{
    mx_fput_escaped(o, mx_slice_make(text, strlen(text)));
}

static const char *yes_no(bool b)
{
    return b ? "yes" : "no";
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
    bool offered = s->tls_offered || s->implicit;
    fprintf(o, "  TLS        offered: %s", yes_no(offered));
    if (s->implicit)
        fprintf(o, " (implicit TLS: %u session%s)", s->implicit, s->implicit == 1 ? "" : "s");
    fprintf(o, "; used in %u of %u session%s; STARTTLS refused: %u, failed: %u", s->tls_upgraded + s->implicit,
            s->sessions, s->sessions == 1 ? "" : "s", s->tls_refused, s->tls_failed);
    if (s->versions[0]) {
        fputs("; versions: ", o);
        put(o, s->versions);
    }
    fputc('\n', o);
    print_certificate(o, s);
    fprintf(o, "  AUTH       offered before TLS: %s", yes_no(s->auth_in_clear));
    if (s->mechs[0]) {
        fputs(" (", o);
        put(o, s->mechs);
        fputc(')', o);
    }
    fprintf(o, "; credentials in clear: %u", s->cleartext_logins);
    if (!strcmp(s->proto, "imap"))
        fprintf(o, "; LOGINDISABLED: %s, honoured: %s", yes_no(s->logindisabled),
                yes_no(!s->f[K_LOGINDISABLED_IGNORED].on));
    fputc('\n', o);
    if (!strcmp(s->proto, "smtp")) {
        fputs("  Probing    VRFY: ", o);
        s->vrfy_code ? fprintf(o, "%d", s->vrfy_code) : fputs("not tried", o);
        fputs("; EXPN: ", o);
        s->expn_code ? fprintf(o, "%d", s->expn_code) : fputs("not tried", o);
        fprintf(o, "\n  Relaying   %s\n", s->relay_signals ? "foreign recipients accepted without AUTH" : "no signal");
    }
    unsigned n = 0;
    for (int sev = SEV_HIGH; sev >= SEV_INFO; sev--) {
        for (int k = 0; k < K_N; k++) {
            const struct finding *f = &s->f[k];
            if (!f->on || (int)kinds[k].sev != sev)
                continue;
            if (!n++)
                fputs("  Findings\n", o);
            const char *c = sev == SEV_HIGH ? red : sev == SEV_MEDIUM ? yel : "";
            fprintf(o, "    %s%-6s %s%s  %s", c, sev_names[sev], kinds[k].id, off, kinds[k].title);
            if (f->detail[0]) {
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
            fprintf(o, "           why: %s\n           fix: %s\n           see: %s\n", kinds[k].why, kinds[k].fix,
                    kinds[k].refs);
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
