/* sasl.c - SASL exchanges (RFC 4422): mechanism, user name and secrets of each mechanism's messages. */
#include "dissectors/mail/sasl.h"

#include "dissectors/message/mime.h"
#include "core/cursor.h"
#include "event/event.h"

#include <limits.h>
#include <string.h>

/* The largest decoded client response that is parsed. Any mechanism we parse
 * fits easily (an NTLMv2 AUTHENTICATE message is well under 2 KB). A longer
 * line of a parsed mechanism is a decode error; GSSAPI and unknown mechanisms
 * are only syntax-checked, so their (possibly large) tokens have no cap. */
#define SASL_DECODE_CAP 8192
/* Server challenges are decoded only to read LOGIN prompts, which are short. */
#define SASL_PROMPT_CAP 512

/* A literal and its length, for the comparison helpers below. */
#define LIT(s) (s), (sizeof(s) - 1)

/* MS-NLMP §2.2.1 */
#define NTLM_NEGOTIATE 1u
#define NTLM_AUTHENTICATE 3u
#define NTLM_FLAG_UNICODE 0x00000001u /* NTLMSSP_NEGOTIATE_UNICODE, §2.2.2.5 */

/* RFC 7628 §3.1: kvsep */
#define OAUTH_KVSEP 0x01

/* A capped output buffer. Writes are all-or-nothing: once one does not fit,
 * nothing more is written, so a truncated UTF-8 string stays valid. */
struct sbuf {
    uint8_t *p;
    size_t cap;
    size_t len;
    size_t want; /* bytes put, kept or not: the text's real length */
    bool full;
};

static const struct {
    const char *name;
    size_t len;
    enum mx_sasl_mech mech;
} sasl_mechs[] = {
    { LIT("PLAIN"), MX_SASL_PLAIN },       { LIT("LOGIN"), MX_SASL_LOGIN },
    { LIT("CRAM-MD5"), MX_SASL_CRAM_MD5 }, { LIT("DIGEST-MD5"), MX_SASL_DIGEST_MD5 },
    { LIT("XOAUTH2"), MX_SASL_XOAUTH2 },   { LIT("OAUTHBEARER"), MX_SASL_OAUTHBEARER },
    { LIT("NTLM"), MX_SASL_NTLM },         { LIT("GSSAPI"), MX_SASL_GSSAPI },
    { LIT("EXTERNAL"), MX_SASL_EXTERNAL }, { LIT("ANONYMOUS"), MX_SASL_ANONYMOUS },
};

/* ---- Small helpers ---- */

static uint8_t ascii_lower(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c - 'A' + 'a') : c;
}

/* True when p[0..n) starts with lit[0..litn), ignoring ASCII case. */
static bool ci_prefix(const uint8_t *p, size_t n, const char *lit, size_t litn)
{
    if (n < litn)
        return false;
    for (size_t i = 0; i < litn; i++) {
        if (ascii_lower(p[i]) != ascii_lower((uint8_t)lit[i]))
            return false;
    }
    return true;
}

/* True when p[0..n) is exactly lit, ignoring ASCII case. */
static bool ci_equal(const uint8_t *p, size_t n, const char *lit, size_t litn)
{
    return n == litn && ci_prefix(p, n, lit, litn);
}

/* True when lit occurs anywhere in p[0..n), ignoring ASCII case. */
static bool ci_contains(const uint8_t *p, size_t n, const char *lit, size_t litn)
{
    for (size_t i = 0; i + litn <= n; i++) {
        if (ci_prefix(p + i, n - i, lit, litn))
            return true;
    }
    return false;
}

/* True when the slice is the single byte c. */
static bool slice_is_char(struct mx_slice s, uint8_t c)
{
    return s.len == 1 && s.ptr != NULL && s.ptr[0] == c;
}

/* Zeroes memory in a way the compiler may not drop (decoded secrets on the stack). */
static void sasl_wipe(void *p, size_t n)
{
    volatile uint8_t *v = p;

    while (n > 0) {
        *v++ = 0;
        n--;
    }
}

static void sbuf_init(struct sbuf *b, uint8_t *p, size_t cap)
{
    b->p = p;
    b->cap = cap;
    b->len = 0;
    b->want = 0;
    b->full = false;
}

/* Appends n bytes if they all fit; otherwise marks the buffer full. */
static void sbuf_putn(struct sbuf *b, const uint8_t *p, size_t n)
{
    b->want += n;
    if (b->full || n == 0)
        return;
    if (n > b->cap - b->len) {
        b->full = true;
        return;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void sbuf_put(struct sbuf *b, uint8_t c)
{
    sbuf_putn(b, &c, 1);
}

/* Starts writing the user field: clears it and points b at it. */
static void user_begin(struct mx_sasl *s, struct sbuf *b)
{
    memset(s->user, 0, sizeof s->user);
    s->user_len = 0;
    sbuf_init(b, s->user, sizeof s->user);
}

/* Ends writing the user field started with user_begin(). */
static void user_end(struct mx_sasl *s, const struct sbuf *b)
{
    s->user_len = b->len;
    s->user_wire = b->want;
    s->user_known = true;
}

/* Sets the user field to raw bytes, truncated at MX_SASL_MAX_USER. */
static void user_set(struct mx_sasl *s, const uint8_t *p, size_t n)
{
    struct sbuf b;

    user_begin(s, &b);
    sbuf_putn(&b, p, n < b.cap ? n : b.cap);
    user_end(s, &b);
    s->user_wire = n;
}

/* Sets the authzid field to raw bytes (n of them valid at p), truncated at
 * MX_SASL_MAX_USER; wire is its real length. */
static void authzid_set(struct mx_sasl *s, const uint8_t *p, size_t n, size_t wire)
{
    size_t k = n < sizeof s->authzid ? n : sizeof s->authzid;

    memset(s->authzid, 0, sizeof s->authzid);
    if (k > 0)
        memcpy(s->authzid, p, k);
    s->authzid_len = k;
    s->authzid_wire = wire > k ? wire : k;
}

/* Records a secret: its length always, its bytes (capped) only with
 * keep_secret. A previous secret is wiped first. */
static void secret_set(struct mx_sasl *s, const uint8_t *p, size_t n, bool in_clear)
{
    size_t k = n < sizeof s->secret ? n : sizeof s->secret;

    sasl_wipe(s->secret, sizeof s->secret);
    s->secret_len = n;
    if (s->keep_secret && k > 0)
        memcpy(s->secret, p, k);
    if (in_clear)
        s->secret_in_clear = true;
}

/* ---- Base64 (RFC 4648 §4) ---- */

/* Checks base64 text: padded to a multiple of 4 with at most two '=' at the
 * end, or unpadded with a length mod 4 of 2 or 3; every other character from
 * the alphabet. On success *ndata is the number of data characters and
 * *need the decoded length. */
static bool b64_check(struct mx_slice in, size_t *ndata, size_t *need)
{
    size_t n = in.len, pad = 0, d;

    *ndata = 0;
    *need = 0;
    if (n == 0)
        return true;
    if (in.ptr == NULL || n % 4 == 1)
        return false;
    if (n % 4 == 0 && in.ptr[n - 1] == '=') {
        pad = 1;
        if (in.ptr[n - 2] == '=')
            pad = 2;
    }
    d = n - pad;
    for (size_t i = 0; i < d; i++) {
        if (mx_base64_value(in.ptr[i]) < 0)
            return false;
    }
    /* d % 4 is 0, 2 or 3 here: 1 was refused above, and padding leaves
     * 4k+3 (one '=') or 4k+2 (two). */
    *ndata = d;
    *need = d / 4 * 3 + (d % 4 == 0 ? 0 : d % 4 - 1);
    return true;
}

/* Decodes base64 text (RFC 4648 §4). Contract as in sasl.h; in addition, on
 * failure *out_len is 0 for invalid input and the length that would be needed
 * when only cap was too small, and nothing is written to out. Pad bits that
 * are not zero are accepted (RFC 4648 §3.5 lets a decoder choose). */
bool mx_base64_decode(struct mx_slice in, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t ndata, need, o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;

    *out_len = 0;
    if (!b64_check(in, &ndata, &need))
        return false;
    if (need > cap) {
        *out_len = need;
        return false;
    }
    for (size_t i = 0; i < ndata; i++) {
        acc = (acc << 6) | (uint32_t)mx_base64_value(in.ptr[i]);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o < need)
                out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    *out_len = o;
    return true;
}

/* ---- Mechanism names ---- */

/* Maps a mechanism name (RFC 4422 §3.1, case-insensitive) to the enum. The
 * raw name is used, so a name with stray bytes is unknown. */
static enum mx_sasl_mech sasl_mech_lookup(struct mx_slice name)
{
    if (name.ptr == NULL)
        return MX_SASL_UNKNOWN;
    for (size_t i = 0; i < MX_ARRAY_LEN(sasl_mechs); i++) {
        if (ci_equal(name.ptr, name.len, sasl_mechs[i].name, sasl_mechs[i].len))
            return sasl_mechs[i].mech;
    }
    /* RFC 5802 §4: SCRAM-SHA-1, RFC 7677: SCRAM-SHA-256, and their -PLUS
     * variants; all SCRAM-* share the message syntax. */
    if (name.len > sizeof("SCRAM-") - 1 && ci_prefix(name.ptr, name.len, LIT("SCRAM-")))
        return MX_SASL_SCRAM;
    return MX_SASL_UNKNOWN;
}

void mx_sasl_start(struct mx_sasl *s, struct mx_slice mech, bool keep_secret)
{
    size_t k = 0;

    memset(s, 0, sizeof *s);
    s->keep_secret = keep_secret;
    s->login_next = 0;
    for (size_t i = 0; mech.ptr != NULL && i < mech.len && k < sizeof s->mech_name - 1; i++) {
        uint8_t c = mech.ptr[i];

        if (c < 0x20 || c > 0x7e)
            continue;
        if (c >= 'a' && c <= 'z')
            c = (uint8_t)(c - 'a' + 'A');
        s->mech_name[k++] = (char)c;
    }
    s->mech_name[k] = '\0';
    s->mech = sasl_mech_lookup(mech);
    switch (s->mech) {
    case MX_SASL_CRAM_MD5:
    case MX_SASL_DIGEST_MD5:
    case MX_SASL_NTLM:
    case MX_SASL_SCRAM:
        s->crackable = true;
        break;
    default:
        break;
    }
}

/* ---- Server challenges ---- */

void mx_sasl_server(struct mx_sasl *s, struct mx_slice b64)
{
    uint8_t buf[SASL_PROMPT_CAP];
    size_t ndata, need, n;

    if (s->server_steps < UINT_MAX)
        s->server_steps++;
    if (!b64_check(b64, &ndata, &need)) {
        s->decode_error = true;
        return;
    }
    /* draft-murchison-sasl-login §2: the prompts are informational, but they
     * tell which answer comes next when a server asks out of the usual order.
     * A prompt too long to be one is ignored. CRAM-MD5 and DIGEST-MD5
     * challenges are not secret and carry nothing we need. */
    if (s->mech != MX_SASL_LOGIN || need > sizeof buf)
        return;
    if (!mx_base64_decode(b64, buf, sizeof buf, &n))
        return;
    if (ci_contains(buf, n, LIT("password")))
        s->login_next = 1;
    else if (ci_contains(buf, n, LIT("user")))
        s->login_next = 0;
}

/* ---- Client responses, one function per mechanism ----
 * Each gets the decoded response m[0..n) and returns whether it carries a
 * secret. */

/* RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd */
static bool plain_client(struct mx_sasl *s, const uint8_t *m, size_t n)
{
    const uint8_t *z1, *z2;
    size_t a, b;

    if (n == 0)
        return false;
    z1 = memchr(m, 0, n);
    if (z1 == NULL) {
        /* No structure at all: it may be a bare password. */
        s->decode_error = true;
        secret_set(s, m, n, true);
        return true;
    }
    a = (size_t)(z1 - m);
    z2 = memchr(z1 + 1, 0, n - a - 1);
    if (z2 == NULL) {
        /* "authcid NUL passwd": a client that forgot the authzid field. */
        s->decode_error = true;
        user_set(s, m, a);
        secret_set(s, z1 + 1, n - a - 1, true);
        return true;
    }
    b = (size_t)(z2 - m);
    if (a > 0)
        authzid_set(s, m, a, a);
    user_set(s, z1 + 1, b - a - 1);
    if (b - a - 1 == 0) /* authcid = 1*SAFE */
        s->decode_error = true;
    if (memchr(z2 + 1, 0, n - b - 1) != NULL) /* passwd = 1*SAFE: no NUL */
        s->decode_error = true;
    secret_set(s, z2 + 1, n - b - 1, true);
    return true;
}

/* draft-murchison-sasl-login: the user name, then the password, each in its
 * own response. An initial response given with the command is the user name. */
static bool login_client(struct mx_sasl *s, const uint8_t *m, size_t n)
{
    if (s->login_next == 0) {
        user_set(s, m, n);
        s->login_next = 1;
        return false;
    }
    secret_set(s, m, n, true);
    return true;
}

/* RFC 2195 §2: user SP digest, the digest 32 lower-case hex digits. The user
 * name may contain spaces, the digest cannot: split at the last space. */
static bool cram_client(struct mx_sasl *s, const uint8_t *m, size_t n)
{
    size_t sp = n;

    if (n == 0)
        return false;
    for (size_t i = n; i > 0; i--) {
        if (m[i - 1] == ' ') {
            sp = i - 1;
            break;
        }
    }
    if (sp == n) {
        s->decode_error = true;
        return true;
    }
    user_set(s, m, sp);
    if (n - sp - 1 != 32)
        s->decode_error = true;
    for (size_t i = sp + 1; i < n; i++) {
        uint8_t c = m[i];

        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            s->decode_error = true;
    }
    return true;
}

/* RFC 2831 §7.1: LWS = [CRLF] 1*( SP | HT ) */
static bool is_lws(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* RFC 2831 §2.1.2: digest-response is a #rule list of directive = value,
 * values a token or a quoted-string (RFC 2616 §2.2, backslash escapes). We
 * take username and authzid. A syntax error stops the walk. */
static bool digest_client(struct mx_sasl *s, const uint8_t *m, size_t n)
{
    size_t i = 0;
    bool have_user = false;

    /* §2.1.3: the client answers the server's rspauth with an empty response. */
    if (n == 0)
        return false;
    while (i < n) {
        size_t k0, klen;
        bool is_user, is_authzid;
        uint8_t az[MX_SASL_MAX_USER];
        struct sbuf out;

        while (i < n && (is_lws(m[i]) || m[i] == ','))
            i++;
        if (i >= n)
            break;
        k0 = i;
        while (i < n && m[i] != '=' && m[i] != ',' && !is_lws(m[i]))
            i++;
        klen = i - k0;
        while (i < n && is_lws(m[i]))
            i++;
        if (klen == 0 || i >= n || m[i] != '=') {
            s->decode_error = true;
            break;
        }
        i++;
        while (i < n && is_lws(m[i]))
            i++;
        is_user = ci_equal(m + k0, klen, LIT("username"));
        is_authzid = ci_equal(m + k0, klen, LIT("authzid"));
        if (is_user)
            user_begin(s, &out);
        else if (is_authzid)
            sbuf_init(&out, az, sizeof az);
        else
            sbuf_init(&out, NULL, 0);
        if (i < n && m[i] == '"') {
            bool closed = false;

            i++;
            while (i < n) {
                if (m[i] == '\\' && i + 1 < n) {
                    sbuf_put(&out, m[i + 1]);
                    i += 2;
                } else if (m[i] == '"') {
                    closed = true;
                    i++;
                    break;
                } else {
                    sbuf_put(&out, m[i]);
                    i++;
                }
            }
            if (!closed)
                s->decode_error = true;
        } else {
            size_t v0 = i, v1;

            while (i < n && m[i] != ',')
                i++;
            v1 = i;
            while (v1 > v0 && is_lws(m[v1 - 1]))
                v1--;
            size_t vn = v1 - v0, vk = vn < out.cap ? vn : out.cap;
            sbuf_putn(&out, m + v0, vk);
            out.want += vn - vk; /* the rest was cut */
        }
        if (is_user) {
            user_end(s, &out);
            have_user = true;
        } else if (is_authzid) {
            authzid_set(s, az, out.len, out.want);
        }
        while (i < n && is_lws(m[i]))
            i++;
        if (i < n && m[i] != ',') {
            s->decode_error = true;
            break;
        }
    }
    if (!have_user)
        s->decode_error = true;
    /* The response directive is an MD5 over the password: crackable. */
    return true;
}

/* An "auth=" value (RFC 7628 §3.1, RFC 6750 §2.1): "Bearer" 1*SP token. The
 * token is the secret; another scheme's whole value is kept as the secret. */
static void oauth_auth_value(struct mx_sasl *s, const uint8_t *v, size_t n)
{
    size_t i;

    if (ci_prefix(v, n, LIT("Bearer ")) || ci_prefix(v, n, LIT("Bearer\t"))) {
        i = sizeof("Bearer") - 1;
        while (i < n && (v[i] == ' ' || v[i] == '\t'))
            i++;
        secret_set(s, v + i, n - i, true);
        return;
    }
    secret_set(s, v, n, true);
}

/* Walks ^A-separated key=value pairs (RFC 7628 §3.1 kvpair; XOAUTH2 uses the
 * same shape). Takes auth=, and user= when take_user. Returns whether an
 * auth= pair was found. */
static bool oauth_kvpairs(struct mx_sasl *s, const uint8_t *p, size_t n, bool take_user)
{
    bool have_auth = false;
    size_t i = 0;

    while (i < n) {
        const uint8_t *e = memchr(p + i, OAUTH_KVSEP, n - i);
        size_t end = e != NULL ? (size_t)(e - p) : n;
        const uint8_t *f = p + i;
        size_t flen = end - i;

        if (take_user && ci_prefix(f, flen, LIT("user="))) {
            user_set(s, f + 5, flen - 5);
        } else if (ci_prefix(f, flen, LIT("auth="))) {
            oauth_auth_value(s, f + 5, flen - 5);
            have_auth = true;
        }
        i = end + 1;
    }
    return have_auth;
}

/* True when every byte is ^A (or there are none): an OAuth client's dummy
 * response after the server's error challenge. */
static bool oauth_is_ack(const uint8_t *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (m[i] != OAUTH_KVSEP)
            return false;
    }
    return true;
}

/* Google's XOAUTH2: "user=" user ^A "auth=Bearer " token ^A ^A. After an
 * error challenge (JSON) the client sends an empty response. */
static bool xoauth2_client(struct mx_sasl *s, const uint8_t *m, size_t n)
{
    if (oauth_is_ack(m, n))
        return false;
    if (!oauth_kvpairs(s, m, n, true))
        s->decode_error = true;
    return true;
}

/* Reads a GS2 header (RFC 5801 §4) at the start of p[0..n):
 *   [ "F" "," ] ( "p=" cb-name / "n" / "y" ) "," [ "a=" saslname ] ","
 * Returns its length (through the second comma), or 0 when malformed.
 * *az points at the escaped authzid, or is NULL when there is none. */
static size_t gs2_header(const uint8_t *p, size_t n, const uint8_t **az, size_t *az_len)
{
    const uint8_t *c;
    size_t i = 0, j;

    *az = NULL;
    *az_len = 0;
    if (n >= 2 && p[0] == 'F' && p[1] == ',')
        i = 2;
    if (i >= n)
        return 0;
    if (p[i] == 'n' || p[i] == 'y') {
        i++;
    } else if (p[i] == 'p' && i + 1 < n && p[i + 1] == '=') {
        size_t c0;

        i += 2;
        c0 = i;
        while (i < n && p[i] != ',')
            i++;
        if (i == c0)
            return 0;
    } else {
        return 0;
    }
    if (i >= n || p[i] != ',')
        return 0;
    i++;
    c = memchr(p + i, ',', n - i);
    if (c == NULL)
        return 0;
    j = (size_t)(c - p);
    if (j > i) {
        if (j - i < 2 || p[i] != 'a' || p[i + 1] != '=')
            return 0;
        *az = p + i + 2;
        *az_len = j - i - 2;
    }
    return j + 1;
}

/* Unescapes a saslname (RFC 5802 §5.1, RFC 5801 §4): "=2C" is ',' and "=3D"
 * is '='. Any other '=' is invalid: it is kept as is and false returned. */
static bool gs2_unescape(const uint8_t *p, size_t n, struct sbuf *out)
{
    bool ok = true;
    size_t i = 0;

    while (i < n) {
        if (p[i] == '=' && n - i >= 3 && p[i + 1] == '2' && (p[i + 2] == 'C' || p[i + 2] == 'c')) {
            sbuf_put(out, ',');
            i += 3;
        } else if (p[i] == '=' && n - i >= 3 && p[i + 1] == '3' && (p[i + 2] == 'D' || p[i + 2] == 'd')) {
            sbuf_put(out, '=');
            i += 3;
        } else {
            if (p[i] == '=' || p[i] == ',')
                ok = false;
            sbuf_put(out, p[i]);
            i++;
        }
    }
    return ok;
}

/* Sets the user from an escaped saslname. */
static void user_set_saslname(struct mx_sasl *s, const uint8_t *p, size_t n)
{
    struct sbuf b;

    user_begin(s, &b);
    if (!gs2_unescape(p, n, &b))
        s->decode_error = true;
    user_end(s, &b);
}

/* RFC 7628 §3.1: gs2-header kvsep *kvpair kvsep. The user comes from the
 * GS2 authzid, or else from a "user=" pair. After an error challenge the
 * client sends a lone ^A (§3.2.3). */
static bool oauthbearer_client(struct mx_sasl *s, const uint8_t *m, size_t n)
{
    const uint8_t *az;
    size_t az_len, hdr;

    if (oauth_is_ack(m, n))
        return false;
    hdr = gs2_header(m, n, &az, &az_len);
    if (hdr == 0) {
        s->decode_error = true;
        (void)oauth_kvpairs(s, m, n, true);
        return true;
    }
    if (az != NULL)
        user_set_saslname(s, az, az_len);
    if (hdr >= n || m[hdr] != OAUTH_KVSEP)
        s->decode_error = true;
    if (!oauth_kvpairs(s, m + hdr, n - hdr, az == NULL))
        s->decode_error = true;
    return true;
}

/* An NTLM payload field (MS-NLMP §2.2.2.10 style: Len, MaxLen, BufferOffset). */
struct ntlm_field {
    uint16_t len;
    uint32_t off;
};

static void ntlm_field_read(struct mx_cursor *c, struct ntlm_field *f)
{
    f->len = mx_cursor_le16(c);
    (void)mx_cursor_le16(c); /* MaxLen: SHOULD equal Len, otherwise unused */
    f->off = mx_cursor_le32(c);
}

/* True when the field's bytes lie inside the n-byte message. */
static bool ntlm_field_ok(const struct ntlm_field *f, size_t n)
{
    return (size_t)f->off <= n && f->len <= n - (size_t)f->off;
}

/* Appends code point u (at most U+10FFFF) as UTF-8, all or nothing. */
static void utf8_put(struct sbuf *b, uint32_t u)
{
    uint8_t e[4];
    size_t k;

    if (u < 0x80) {
        e[0] = (uint8_t)u;
        k = 1;
    } else if (u < 0x800) {
        e[0] = (uint8_t)(0xc0 | (u >> 6));
        e[1] = (uint8_t)(0x80 | (u & 0x3f));
        k = 2;
    } else if (u < 0x10000) {
        e[0] = (uint8_t)(0xe0 | (u >> 12));
        e[1] = (uint8_t)(0x80 | ((u >> 6) & 0x3f));
        e[2] = (uint8_t)(0x80 | (u & 0x3f));
        k = 3;
    } else {
        e[0] = (uint8_t)(0xf0 | (u >> 18));
        e[1] = (uint8_t)(0x80 | ((u >> 12) & 0x3f));
        e[2] = (uint8_t)(0x80 | ((u >> 6) & 0x3f));
        e[3] = (uint8_t)(0x80 | (u & 0x3f));
        k = 4;
    }
    sbuf_putn(b, e, k);
}

/* Appends an NTLM string: UTF-16LE converted to UTF-8 (a lone surrogate
 * becomes U+FFFD), or OEM bytes as they are. Returns false when a UTF-16
 * string has an odd length (the last byte is dropped). */
static bool ntlm_put_string(struct sbuf *b, const uint8_t *p, size_t n, bool unicode)
{
    size_t i = 0;

    if (!unicode) {
        sbuf_putn(b, p, n < b->cap - b->len ? n : b->cap - b->len);
        return true;
    }
    while (n - i >= 2) {
        uint32_t u = (uint32_t)p[i] | ((uint32_t)p[i + 1] << 8);

        i += 2;
        if (u >= 0xd800 && u <= 0xdbff) {
            uint32_t lo = 0;

            if (n - i >= 2)
                lo = (uint32_t)p[i] | ((uint32_t)p[i + 1] << 8);
            if (lo >= 0xdc00 && lo <= 0xdfff) {
                u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
                i += 2;
            } else {
                u = 0xfffd;
            }
        } else if (u >= 0xdc00 && u <= 0xdfff) {
            u = 0xfffd;
        }
        utf8_put(b, u);
    }
    return n % 2 == 0;
}

/* MS-NLMP §2.2.1.1 NEGOTIATE_MESSAGE and §2.2.1.3 AUTHENTICATE_MESSAGE.
 * The user is stored as "DOMAIN\user" when a domain is given. */
static bool ntlm_client(struct mx_sasl *s, const uint8_t *m, size_t n)
{
    static const uint8_t sig[8] = { 'N', 'T', 'L', 'M', 'S', 'S', 'P', 0 };
    struct ntlm_field lm, nt, dom, usr, wks, key;
    struct mx_cursor c;
    uint8_t got[8];
    uint32_t type, flags;
    bool unicode;
    struct sbuf b;

    if (n == 0)
        return false;
    mx_cursor_init(&c, m, n);
    (void)mx_cursor_copy(&c, got, sizeof got);
    type = mx_cursor_le32(&c);
    if (c.err || memcmp(got, sig, sizeof sig) != 0) {
        s->decode_error = true;
        return true;
    }
    if (type == NTLM_NEGOTIATE)
        return false;
    if (type != NTLM_AUTHENTICATE) {
        s->decode_error = true;
        return true;
    }
    ntlm_field_read(&c, &lm);   /* offset 12: LmChallengeResponseFields */
    ntlm_field_read(&c, &nt);   /* 20: NtChallengeResponseFields */
    ntlm_field_read(&c, &dom);  /* 28: DomainNameFields */
    ntlm_field_read(&c, &usr);  /* 36: UserNameFields */
    ntlm_field_read(&c, &wks);  /* 44: WorkstationFields */
    ntlm_field_read(&c, &key);  /* 52: EncryptedRandomSessionKeyFields */
    flags = mx_cursor_le32(&c); /* 60: NegotiateFlags */
    if (c.err) {
        s->decode_error = true;
        return true;
    }
    if (!ntlm_field_ok(&lm, n) || !ntlm_field_ok(&nt, n) || !ntlm_field_ok(&wks, n) || !ntlm_field_ok(&key, n))
        s->decode_error = true;
    if (!ntlm_field_ok(&dom, n) || !ntlm_field_ok(&usr, n)) {
        s->decode_error = true;
        return true;
    }
    unicode = (flags & NTLM_FLAG_UNICODE) != 0;
    if (usr.len == 0) /* anonymous NTLM: no user, whatever the domain */
        return true;
    user_begin(s, &b);
    if (dom.len > 0) {
        if (!ntlm_put_string(&b, m + dom.off, dom.len, unicode))
            s->decode_error = true;
        sbuf_put(&b, '\\');
    }
    if (!ntlm_put_string(&b, m + usr.off, usr.len, unicode))
        s->decode_error = true;
    user_end(s, &b);
    /* The NT response is crackable (NetNTLMv1/v2). */
    return true;
}

/* True when the comma-separated attribute list p[0..n) has one named a
 * (RFC 5802 §5.1 attr-val). */
static bool scram_has_attr(const uint8_t *p, size_t n, uint8_t a)
{
    size_t i = 0;

    while (i < n) {
        const uint8_t *e = memchr(p + i, ',', n - i);
        size_t end = e != NULL ? (size_t)(e - p) : n;

        if (end - i >= 2 && p[i] == a && p[i + 1] == '=')
            return true;
        i = end + 1;
    }
    return false;
}

/* RFC 5802 §7: client-first-message = gs2-header client-first-message-bare,
 * bare = [reserved-mext ","] username "," nonce ["," extensions];
 * client-final-message = channel-binding "," nonce ["," extensions] "," proof.
 * The first carries no secret, the final a crackable proof. */
static bool scram_client(struct mx_sasl *s, const uint8_t *m, size_t n)
{
    const uint8_t *az, *bare, *e;
    size_t az_len, hdr, blen, ulen;

    if (n == 0)
        return false;
    if (n >= 2 && m[0] == 'c' && m[1] == '=') {
        if (!scram_has_attr(m, n, 'p'))
            s->decode_error = true;
        return true;
    }
    hdr = gs2_header(m, n, &az, &az_len);
    if (hdr == 0) {
        s->decode_error = true;
        return true;
    }
    if (az != NULL) {
        uint8_t tmp[MX_SASL_MAX_USER];
        struct sbuf b;

        sbuf_init(&b, tmp, sizeof tmp);
        if (!gs2_unescape(az, az_len, &b))
            s->decode_error = true;
        authzid_set(s, tmp, b.len, b.want);
    }
    bare = m + hdr;
    blen = n - hdr;
    if (blen >= 2 && bare[0] == 'm' && bare[1] == '=') {
        /* reserved-mext: a mandatory extension no server knows */
        s->decode_error = true;
        e = memchr(bare, ',', blen);
        if (e == NULL)
            return true;
        blen -= (size_t)(e - bare) + 1;
        bare = e + 1;
    }
    if (blen < 2 || bare[0] != 'n' || bare[1] != '=') {
        s->decode_error = true;
        return true;
    }
    e = memchr(bare + 2, ',', blen - 2);
    ulen = e != NULL ? (size_t)(e - bare) - 2 : blen - 2;
    user_set_saslname(s, bare + 2, ulen);
    if (e == NULL || blen - 2 - ulen < 3 || e[1] != 'r' || e[2] != '=')
        s->decode_error = true;
    return false;
}

/* What a response that cannot be decoded is taken to carry: when in doubt,
 * redact. Only mechanisms that never send a secret say no. */
static bool sasl_undecodable_carries(const struct mx_sasl *s)
{
    return s->mech != MX_SASL_EXTERNAL && s->mech != MX_SASL_ANONYMOUS;
}

bool mx_sasl_client(struct mx_sasl *s, struct mx_slice b64)
{
    uint8_t buf[SASL_DECODE_CAP];
    size_t n = 0, used = 0, ndata, need;
    bool initial = s->client_steps == 0 && s->server_steps == 0;
    bool carries = false;

    if (s->client_steps < UINT_MAX)
        s->client_steps++;
    /* RFC 4954 §4, RFC 5034 §4, RFC 9051 §6.2.2 */
    if (slice_is_char(b64, '*')) {
        s->cancelled = true;
        return false;
    }
    /* RFC 4954 §4 (and RFC 4959 §3, RFC 5034 §4): "=" is an empty initial
     * response; the real one, if any, follows a server challenge. */
    if (initial && slice_is_char(b64, '='))
        return false;

    /* Opaque mechanisms: only the base64 syntax is checked, so that large
     * Kerberos tokens need no buffer. */
    if (s->mech == MX_SASL_GSSAPI || s->mech == MX_SASL_UNKNOWN || s->mech == MX_SASL_ANONYMOUS) {
        if (!b64_check(b64, &ndata, &need)) {
            s->decode_error = true;
            return sasl_undecodable_carries(s);
        }
        if (s->mech == MX_SASL_GSSAPI)
            return need > 0; /* RFC 4752 §3.1: tokens; an empty response carries none */
        /* ANONYMOUS (RFC 4505 §2): trace information, not stored. UNKNOWN:
         * we cannot tell, so redact. */
        return s->mech == MX_SASL_UNKNOWN;
    }

    if (!mx_base64_decode(b64, buf, sizeof buf, &n)) {
        s->decode_error = true;
        if (s->mech == MX_SASL_LOGIN)
            s->login_next = 1; /* this step is spent, whatever it was */
        carries = sasl_undecodable_carries(s);
        goto out;
    }
    used = n;
    switch (s->mech) {
    case MX_SASL_PLAIN:
        carries = plain_client(s, buf, n);
        break;
    case MX_SASL_LOGIN:
        carries = login_client(s, buf, n);
        break;
    case MX_SASL_CRAM_MD5:
        carries = cram_client(s, buf, n);
        break;
    case MX_SASL_DIGEST_MD5:
        carries = digest_client(s, buf, n);
        break;
    case MX_SASL_XOAUTH2:
        carries = xoauth2_client(s, buf, n);
        break;
    case MX_SASL_OAUTHBEARER:
        carries = oauthbearer_client(s, buf, n);
        break;
    case MX_SASL_NTLM:
        carries = ntlm_client(s, buf, n);
        break;
    case MX_SASL_SCRAM:
        carries = scram_client(s, buf, n);
        break;
    case MX_SASL_EXTERNAL:
        /* RFC 4422 App. A.1: the response is the authzid, maybe empty. */
        authzid_set(s, buf, n, n);
        carries = false;
        break;
    default:
        carries = true;
        break;
    }
out:
    sasl_wipe(buf, used);
    return carries;
}

void mx_sasl_set_user(struct mx_sasl *s, struct mx_slice user)
{
    size_t n = user.len < MX_SASL_MAX_USER ? user.len : MX_SASL_MAX_USER;
    memcpy(s->user, user.ptr, n);
    s->user_len = n;
    s->user_wire = user.len;
    s->user_known = true;
}

void mx_sasl_set_secret(struct mx_sasl *s, struct mx_slice secret, bool in_clear)
{
    s->secret_len = secret.len;
    if (s->keep_secret)
        memcpy(s->secret, secret.ptr, secret.len < MX_SASL_MAX_SECRET ? secret.len : MX_SASL_MAX_SECRET);
    s->secret_in_clear = in_clear && secret.len > 0;
    s->crackable = !in_clear && secret.len > 0;
}

void mx_sasl_describe_identity(const struct mx_sasl *s, struct mx_event *ev)
{
    mx_ev_str(ev, "mechanism", s->mech_name);
    if (s->user_known)
        mx_ev_wire_cut(ev, "user", mx_slice_make(s->user, s->user_len), s->user_wire);
    if (s->authzid_len)
        mx_ev_wire_cut(ev, "authzid", mx_slice_make(s->authzid, s->authzid_len), s->authzid_wire);
}

void mx_sasl_describe_secret(const struct mx_sasl *s, struct mx_event *ev, bool tls)
{
    mx_ev_bool(ev, "cleartext", !tls);
    mx_ev_bool(ev, "secret_in_clear", s->secret_in_clear);
    mx_ev_bool(ev, "crackable", s->crackable);
    if (!s->secret_len)
        return;
    if (s->keep_secret)
        mx_ev_wire_cut(
            ev, "secret",
            mx_slice_make(s->secret, s->secret_len < MX_SASL_MAX_SECRET ? s->secret_len : MX_SASL_MAX_SECRET),
            s->secret_len);
    else
        mx_ev_uint(ev, "secret_len", s->secret_len);
    if (s->secret_in_clear && !tls && s->secret_frame)
        mx_ev_uint(ev, "secret_frame", s->secret_frame);
}
