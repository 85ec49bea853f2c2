/* sasl.h - SASL exchanges (RFC 4422) as SMTP, POP3 and IMAP carry them: mechanism, user, secrets. */
#ifndef MX_SASL_H
#define MX_SASL_H

#include "core/mx.h"

enum mx_sasl_mech {
    MX_SASL_UNKNOWN = 0,
    MX_SASL_PLAIN,       /* RFC 4616 */
    MX_SASL_LOGIN,       /* draft-murchison-sasl-login */
    MX_SASL_CRAM_MD5,    /* RFC 2195 */
    MX_SASL_DIGEST_MD5,  /* RFC 2831 */
    MX_SASL_XOAUTH2,     /* Google's XOAUTH2 */
    MX_SASL_OAUTHBEARER, /* RFC 7628 */
    MX_SASL_NTLM,        /* MS-NLMP over SASL */
    MX_SASL_SCRAM,       /* RFC 5802 / RFC 7677, any SCRAM-* */
    MX_SASL_GSSAPI,      /* RFC 4752 */
    MX_SASL_EXTERNAL,    /* RFC 4422 App. A */
    MX_SASL_ANONYMOUS,   /* RFC 4505 */
};

#define MX_SASL_MAX_NAME 32
#define MX_SASL_MAX_USER 256
#define MX_SASL_MAX_SECRET 512

/* One authentication exchange. Zero-filled is not valid: use mx_sasl_start(). */
struct mx_sasl {
    enum mx_sasl_mech mech;
    char mech_name[MX_SASL_MAX_NAME]; /* as the client wrote it, upper-cased, NUL-terminated ASCII */
    uint8_t user[MX_SASL_MAX_USER];   /* authentication identity as sent (raw bytes) */
    size_t user_len;
    size_t user_wire; /* its real length (decoded), more than user_len when cut */
    bool user_known;
    uint8_t authzid[MX_SASL_MAX_USER]; /* authorization identity, when one was given */
    size_t authzid_len;
    size_t authzid_wire;                /* its real length, more than authzid_len when cut */
    uint8_t secret[MX_SASL_MAX_SECRET]; /* password or token: kept only when keep_secret */
    size_t secret_len;                  /* its length, always (capped bytes kept) */
    bool keep_secret;
    bool secret_in_clear; /* the password or bearer token itself crossed the wire
                               (PLAIN, LOGIN, XOAUTH2, OAUTHBEARER) */
    bool crackable;       /* a challenge-response an attacker can brute-force offline
                               (CRAM-MD5, DIGEST-MD5, NTLM, SCRAM) */
    bool cancelled;       /* the client sent "*" (RFC 4954 §4, RFC 5034 §4, RFC 9051 §6.2.2) */
    bool decode_error;    /* a line was not valid base64 or the mechanism's syntax */
    unsigned client_steps, server_steps;
    int login_next;          /* LOGIN: what the next client response is: 0 user, 1 password */
    mx_frame_t secret_frame; /* the frame that carried the secret in clear, 0 when unknown (the caller notes it) */
};

/* Starts an exchange for the mechanism named `mech` (case-insensitive).
 * keep_secret: keep the password/token bytes (--show-secrets). */
void mx_sasl_start(struct mx_sasl *s, struct mx_slice mech, bool keep_secret);

/* A server challenge: the base64 text after "334 " (SMTP) or "+ " (POP3, IMAP). */
void mx_sasl_server(struct mx_sasl *s, struct mx_slice b64);

/* A client response: one base64 line, or the initial response given with the
 * command ("=" is an empty initial response, RFC 4954 §4). "*" cancels.
 * Returns true when this line carries a secret (password, token, or a
 * crackable digest), so that the caller redacts the raw line in its output. */
bool mx_sasl_client(struct mx_sasl *s, struct mx_slice b64);

/* Plain logins outside SASL (POP3 USER/PASS and APOP, IMAP LOGIN) use the
 * same record: start with a mechanism name such as "USER/PASS", then set the
 * user and the secret. `in_clear`: the secret is the password itself, not a
 * digest of it. */
void mx_sasl_set_user(struct mx_sasl *s, struct mx_slice user);
void mx_sasl_set_secret(struct mx_sasl *s, struct mx_slice secret, bool in_clear);

struct mx_event;
/* Writes "mechanism", "user" and "authzid" (when known) to an open event. */
void mx_sasl_describe_identity(const struct mx_sasl *s, struct mx_event *ev);
/* Writes "cleartext" (not inside TLS), "secret_in_clear", "crackable",
 * either "secret" (kept with --show-secrets) or "secret_len", and
 * "secret_frame" when the secret crossed in clear and its frame is known. */
void mx_sasl_describe_secret(const struct mx_sasl *s, struct mx_event *ev, bool tls);

/* Decodes base64 (RFC 4648 §4), ignoring nothing: whitespace or a bad
 * character makes it fail. Writes at most cap bytes; *out_len is the decoded
 * length. Returns false on invalid input or when cap is too small. */
bool mx_base64_decode(struct mx_slice in, uint8_t *out, size_t cap, size_t *out_len);

#endif
