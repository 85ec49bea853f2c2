/* message.c - a mail message in transit: a streaming RFC 5322 + MIME parser with bounded state. */
#include "dissectors/message/message.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/digest.h"
#include "event/text.h"
#include "dissectors/message/magic.h"
#include "dissectors/message/mime.h"
#include "dissectors/message/dsn.h"

/* Caps (STYLE.md rule 4): whatever the input, what a message keeps is bounded. */
#define MSG_LINE_MAX 998    /* RFC 5322 §2.1.1: longest line, CRLF excluded */
#define MSG_LINE_BUF 4096   /* bytes of one line held; longer lines pass in pieces */
#define MSG_FIELD_CAP 8192  /* one unfolded header field; beyond: LONG_HEADER */
#define MSG_MAX_FIELDS 1000 /* header fields per entity; beyond: TOO_MANY_FIELDS */
#define MSG_KEEP_CAP 512    /* stored text of one header value */
#define MSG_HOP_CAP 256     /* stored text of one Received clause */
#define MSG_MAX_LIST 32     /* addresses kept per list */
#define MSG_MAX_HOPS 32     /* Received hops kept */
#define MSG_MAX_DKIM 8      /* DKIM signatures kept */
#define MSG_MAX_AUTHRES 8   /* Authentication-Results kept */
#define MSG_MAX_DEPTH 20    /* nesting of multiparts and message/rfc822 */
#define MSG_MAX_PARTS \
    10000                          /* parts described besides the message itself; beyond:
                                    TOO_MANY_PARTS, counted only */
#define MSG_INNER_LIST 8           /* addresses kept per To/Cc of an embedded message */
#define MSG_INNER_TOTAL (1u << 20) /* header text kept of all embedded messages together */
#define MSG_PATH_CAP 128           /* "1.2.3..." */
#define MSG_CTYPE_CAP 80           /* texts of a part description */
#define MSG_CHARSET_CAP 40
#define MSG_ENCODING_CAP 32
#define MSG_DISPOSITION_CAP 24
#define MSG_FILENAME_CAP 256
/* The part descriptions' texts, all parts together: what the caps above allow. */
#define MSG_TEXT_MAX                                                                                                  \
    ((MSG_MAX_PARTS + 1) * (MSG_PATH_CAP + MSG_CTYPE_CAP + MSG_CHARSET_CAP + MSG_ENCODING_CAP + MSG_DISPOSITION_CAP + \
                            MSG_FILENAME_CAP) +                                                                       \
     MSG_INNER_TOTAL)
#define MSG_MAILBOX_CAP 256 /* env.mailbox kept */
#define MSG_SECTION_CAP 64  /* env.section kept */
#define MSG_MAX_UU 16       /* uuencoded files reported per message */
#define MSG_UU_LINE 256     /* a longer decoded line is not uuencode */
#define MSG_ANOMALY_EMIT 8  /* anomaly events per name per message; the rest are counted */
#define MSG_NAME_CAP 255    /* extracted file names (NAME_MAX) */
#define MSG_EXT_KEEP 32     /* a file name's extension kept when the name is cut */
#define MSG_NAME_TRIES 1000 /* names tried when an extracted file's name exists in DIR already */
#define MSG_TEXT_ATTACH 4   /* attachments named in the text line */
#define MSG_PEND_MAX 64     /* raw 8-bit header values waiting for their charset; beyond: read as they are */
#define MSG_PEND_RAW 1536   /* bytes kept of each: more than MSG_KEEP_CAP decoded */
#define MSG_GUESS_CAP 32    /* the name of a guessed charset */
#define MSG_MAGIC_MIN 16    /* decoded bytes a part needs for its type to disagree with the declared one */

/* The message parser's anomalies: stable names (STYLE.md rule 6). */
/* Anomalies: stable names (STYLE.md rule 6), in the order of this list. */
#define MESSAGE_ANOMALIES(X)                                                                                      \
    X(LONG_LINE, "a message line longer than 998 bytes (RFC 5322 §2.1.1)")                                        \
    X(LONG_HEADER, "an unfolded header field longer than the cap; the rest was dropped")                          \
    X(HEADER_WITHOUT_COLON, "a header line that is neither a field nor a continuation (RFC 5322 §2.2)")           \
    X(BAD_BASE64, "characters outside the base64 alphabet in a base64 body (RFC 2045 §6.8)")                      \
    X(BAD_QP, "malformed escapes in a quoted-printable body (RFC 2045 §6.7)")                                     \
    X(MISSING_BOUNDARY, "a multipart without boundary parameter or without its close delimiter (RFC 2046 §5.1)")  \
    X(DEPTH_EXCEEDED, "MIME nesting deeper than the cap; the deeper entity is treated as a leaf")                 \
    X(DUPLICATE_FIELD, "a header field that may occur once occurs again (RFC 5322 §3.6)")                         \
    X(UNKNOWN_CHARSET, "a charset iconv does not know; the text was kept undecoded")                              \
    X(TOO_MANY_PARTS, "more MIME parts than the cap; the rest are counted, not described")                        \
    X(TOO_MANY_FIELDS, "more header fields in one entity than the cap; the rest were ignored")                    \
    X(BAD_ENCODED_WORD, "a malformed RFC 2047 encoded word")                                                      \
    X(UNKNOWN_ENCODING, "a Content-Transfer-Encoding that is not 7bit, 8bit, binary, base64 or quoted-printable") \
    X(BAD_UUENCODE, "a uuencoded block that is malformed or has no end line")                                     \
    X(EXTRACT_FILE_CAP, "a file written by --extract reached --extract-max bytes; the rest was not written")      \
    X(EXTRACT_TOTAL_CAP, "--extract reached --extract-total bytes in all; the rest of the run is not written")    \
    X(DSN_NOT_A_FIELD, "a delivery-status line that is neither a field nor a continuation (RFC 3464 §2.1)")       \
    X(DSN_TOO_MANY_RECIPIENTS, "more delivery-status recipients than the cap; the rest are counted")              \
    X(DSN_MISSING_FIELD, "a delivery-status field that RFC 3464 §2.2 or §2.3 requires is missing")                \
    X(DSN_BAD_VALUE, "a delivery-status Action or Status that is none (RFC 3464 §2.3.3, §2.3.4)")

enum { MESSAGE_ANOMALIES(MX_ANOMALY_ENUM) A__COUNT };

static const struct mx_anomaly_def message_anomalies[A__COUNT] = { MESSAGE_ANOMALIES(MX_ANOMALY_DEF) };

/* Header text kept from the wire (decoded where the field allows it). */
struct kept {
    uint16_t len;
    uint32_t wire; /* cut (more than len): its length on the wire, before RFC 2047 decoding */
    uint8_t b[MSG_KEEP_CAP];
};

/* One Received field (RFC 5322 §3.6.7, RFC 5321 §4.4) split into its clauses;
 * HOP_COMMENT holds the comments before the first clause. */
enum { HOP_COMMENT, HOP_FROM, HOP_BY, HOP_VIA, HOP_WITH, HOP_ID, HOP_FOR, HOP_DATE, HOP__N };
static const char *const hop_keys[HOP__N] = { "comment", "from", "by", "via", "with", "id", "for", "date" };
/* The siblings of a cut clause (mx_ev_cut3): "<key>_len", "<key>_truncated". */
#define CUTK(k)                  \
    {                            \
        k "_len", k "_truncated" \
    }
static const char *const hop_cut_keys[HOP__N][2] = { CUTK("comment"), CUTK("from"), CUTK("by"),  CUTK("via"),
                                                     CUTK("with"),    CUTK("id"),   CUTK("for"), CUTK("date") };
struct hop {
    uint16_t len[HOP__N];
    uint32_t wire[HOP__N]; /* the clause's length on the wire (words joined by one space) */
    uint8_t b[HOP__N][MSG_HOP_CAP];
};

struct addr_list {
    uint32_t n, dropped;
    struct kept a[MSG_MAX_LIST];
};

/* The fields of the top-level header block that the record carries. */
enum {
    H_FROM,
    H_SENDER,
    H_SUBJECT,
    H_DATE,
    H_MESSAGE_ID,
    H_IN_REPLY_TO,
    H_REFERENCES,
    H_X_MAILER,
    H_USER_AGENT,
    H_X_ORIGINATING_IP,
    H_RETURN_PATH,
    H__SINGLE
};
static const char *const single_names[H__SINGLE] = {
    "from",     "sender",     "subject",          "date",        "message-id", "in-reply-to", "references",
    "x-mailer", "user-agent", "x-originating-ip", "return-path",
};
static const char *const single_keys[H__SINGLE] = {
    "from",     "sender",     "subject",          "date",        "message_id", "in_reply_to", "references",
    "x_mailer", "user_agent", "x_originating_ip", "return_path",
};
static const char *const single_cut_keys[H__SINGLE][2] = {
    CUTK("from"),       CUTK("sender"),           CUTK("subject"),     CUTK("date"),
    CUTK("message_id"), CUTK("in_reply_to"),      CUTK("references"),  CUTK("x_mailer"),
    CUTK("user_agent"), CUTK("x_originating_ip"), CUTK("return_path"),
};
enum { L_TO, L_CC, L_BCC, L_REPLY_TO, L__N };
static const char *const list_names[L__N] = { "to", "cc", "bcc", "reply-to" };
static const char *const list_keys[L__N] = { "to", "cc", "bcc", "reply_to" };

/* The fields of an embedded message (RFC 2046 §5.2.1) that its part
 * reports: one set, for the one header block read at a time. */
enum { I_FROM, I_SUBJECT, I_DATE, I_MESSAGE_ID, I__SINGLE };
static const char *const inner_names[I__SINGLE] = { "from", "subject", "date", "message-id" };
static const char *const inner_keys[I__SINGLE] = { "from", "subject", "date", "message_id" };
enum { IL_TO, IL_CC, IL__N };
static const char *const inner_list_names[IL__N] = { "to", "cc" };
static const char *const inner_list_keys[IL__N] = { "to", "cc" };
static const char *const inner_dropped_keys[IL__N] = { "to_not_listed", "cc_not_listed" };

struct inner_headers {
    struct kept single[I__SINGLE];
    bool seen[I__SINGLE];
    struct {
        uint32_t n, dropped;
        struct kept a[MSG_INNER_LIST];
    } list[IL__N];
    bool list_seen[IL__N];
    char guessed[MSG_GUESS_CAP]; /* the charset raw 8-bit text was read in, or "" */
};

struct headers {
    struct inner_headers inner;
    struct kept single[H__SINGLE];
    bool seen[H__SINGLE];
    struct addr_list list[L__N];
    bool list_seen[L__N];
    struct hop hops[MSG_MAX_HOPS];
    uint32_t n_hops, hops_dropped;
    struct kept authres[MSG_MAX_AUTHRES];
    uint32_t n_authres;
    struct {
        uint16_t dl, sl;
        uint8_t d[128], s[64];
    } dkim[MSG_MAX_DKIM];
    uint32_t n_dkim;
    char guessed[MSG_GUESS_CAP]; /* the charset raw 8-bit text was read in, or "" */
};

/* A header value in raw 8-bit text that is not UTF-8 (RFC 6532), kept as
 * sent until the charset to read it in is known (its entity's Content-Type
 * may come after it). Meanwhile `k` holds it read as it is. */
struct pend {
    struct kept *k; /* where the value goes (in m->h) */
    bool inner;     /* a field of an embedded message's header block */
    uint64_t off;   /* stream offset of its field, for anomalies */
    uint16_t len;
    uint8_t raw[MSG_PEND_RAW];
};

/* The texts that describe a part, in the order they are stored. */
enum { T_PATH, T_CTYPE, T_CHARSET, T_ENCODING, T_DISPOSITION, T_FILENAME, T__N };

/* The texts of the entity whose header block is being read (there is one
 * at a time); they go into m->text when the block ends. */
struct part_texts {
    uint8_t ctype[MSG_CTYPE_CAP], charset[MSG_CHARSET_CAP], encoding[MSG_ENCODING_CAP];
    uint8_t disposition[MSG_DISPOSITION_CAP], filename[MSG_FILENAME_CAP];
    size_t ctype_len, charset_len, encoding_len, disposition_len, filename_len;
    uint16_t wire[T__N];              /* the texts' real lengths (T_CTYPE ... T_DISPOSITION; 0: as kept) */
    uint32_t filename_seen;           /* the decoded name's length, when it was cut (at most MSG_SAFE_IN) */
    bool filename_cut, filename_more; /* cut to fit; longer even than filename_seen */
};

/* A MIME part as the record describes it. Its texts are stored compactly in
 * m->text (only the bytes there are); what is learnt later is here. */
struct part_rec {
    uint64_t size; /* leaf: decoded bytes; container: body bytes as carried */
    uint64_t bad_base64, bad_qp;
    uint32_t text;       /* offset of its texts in m->text */
    uint32_t inner;      /* 1 + offset of its embedded message's fields in m->text; 0: none */
    uint16_t len[T__N];  /* lengths of its texts */
    uint16_t wire[T__N]; /* their real lengths, when more than len (cut) */
    bool leaf, container, hashed, partial;
    uint8_t md5[16], sha1[20], sha256[32];
    char *extracted;         /* file name within the extract directory (malloc'd), or NULL */
    uint64_t extracted_size; /* bytes written to it */
    bool extracted_cut;      /* a cap stopped it: fewer bytes than `size` */
    uint32_t filename_seen;  /* filename_cut: the decoded name's length */
    bool filename_cut, filename_more;
    char detected[MX_MAGIC_TYPE_CAP]; /* libmagic's type of its first decoded bytes; "" when none */
    bool type_mismatch;               /* it disagrees with the declared type (mx_magic_mismatch) */
};

struct uu_rec {
    int32_t part;
    uint16_t name_len;
    uint8_t name[128];
    unsigned mode;
    uint64_t size;
    bool complete;
    uint8_t sha256[32];
};

enum ent_kind { K_LEAF, K_MULTI, K_MESSAGE };
enum ent_state { S_HEADERS, S_BODY, S_PREAMBLE, S_PARTS, S_EPILOGUE };
enum body_enc { E_IDENTITY, E_BASE64, E_QP };

/* One entity on the nesting stack (RFC 2045 §2.4): the message, a part, or a message/rfc822 body. */
struct ent {
    enum ent_kind kind;
    enum ent_state st;
    enum body_enc enc;
    char path[MSG_PATH_CAP];
    uint32_t children;
    uint8_t boundary[72]; /* RFC 2046 §5.1.1: at most 70 characters */
    uint8_t blen;
    uint8_t ctype[80]; /* the Content-Type's type/subtype, lower case */
    uint8_t ctype_len;
    uint8_t charset[MSG_CHARSET_CAP]; /* the Content-Type's charset parameter (RFC 2046 §4.1.2) */
    uint8_t charset_len;
    bool digest; /* multipart/digest: parts default to message/rfc822 (RFC 2046 §5.1.5) */
    bool default_rfc822;
    bool text; /* a text type: scanned for uuencode */
    bool attachment;
    int32_t rec;   /* index into m->parts, or -1 when not described */
    uint8_t dsn;   /* its body goes to m->dsn: 1 the delivery-status fields, 2 a returned header block */
    bool returned; /* a message/rfc822 part: the message a delivery-status report returns (RFC 6522 §3) */
    uint32_t fields;
    uint64_t body_pos; /* message offset where its body starts */
    bool closed;       /* its end was seen (a container's size is set) */
};

enum uu_state { UU_SEEK, UU_IN, UU_END };

/* A file --extract writes. */
struct xfile {
    int fd; /* -1: none, or closed */
    uint64_t written;
    bool cut; /* a cap stopped it */
};

struct mx_message {
    struct mx_message_env env;
    EVP_MD_CTX *sha;
    uint64_t size;
    uint64_t missing;
    bool ended;
    bool emitted;
    unsigned char digest[32];
    /* The body's own digest (body_sha256): the bytes after the top-level
     * header block's empty line (RFC 5322 §2.1), which the trace headers
     * each hop adds leave unchanged. body_at: where the header scan is
     * (BODY_* below). */
    EVP_MD_CTX *body_sha;
    uint8_t body_at;
    uint8_t body_mode;   /* BODY_UNDECIDED, BODY_OWN, BODY_SHARED (body_shares_leaf) */
    uint64_t body_start; /* message offset of the body's first byte, once body_at is BODY_IN */
    unsigned char body_digest[32];
    unsigned hashes; /* the digests to compute (MX_HASH_*: --hashes) */

    /* frames */
    bool have_first;
    struct mx_frame_ref first, last;
    uint64_t cur_off; /* stream offset of the line being processed */
    uint64_t cur_pos; /* its offset in the message (bytes seen before it) */
    uint8_t prev_eol; /* length of the line end before it (it belongs to a boundary on this line) */

    /* line layer (its buffer is in b) */
    size_t line_len;
    bool line_cont;                 /* pieces of the current line were already processed */
    size_t line_total;              /* bytes of the current line so far */
    struct mx_frame_ref line_first; /* the frame of its first byte, noted while at hand */
    mx_frame_t line_cross;          /* the frame of its byte past MSG_LINE_MAX, or 0 */
    bool skip_line;                 /* after a gap: drop to the next LF */

    /* header field being unfolded (its buffer is in b) */
    size_t field_len;
    bool field_open, field_trunc;
    uint64_t field_off;

    /* entity stack */
    struct ent stack[MSG_MAX_DEPTH + 1];
    int depth; /* index of the innermost entity */

    /* leaf body decoding */
    struct mx_mime_b64 b64;
    struct mx_mime_qp qp;
    uint8_t pend_eol[2];
    uint8_t pend_len;
    EVP_MD_CTX *h_md5, *h_sha1, *h_sha256;
    size_t hash_len; /* bytes waiting in b.hash_buf */
    bool leaf_open;
    struct xfile leaf_file;
    uint8_t magic[MX_MAGIC_PREFIX]; /* the leaf's first decoded bytes, for mx_magic_type */
    size_t magic_len;

    /* uuencode scan of text leaves */
    enum uu_state uu;
    uint8_t uu_line[MSG_UU_LINE];
    size_t uu_len;
    bool uu_long;
    bool uu_skip; /* the line under way cannot start a file: skipped to its end */
    EVP_MD_CTX *h_uu;
    uint32_t n_uu;
    struct uu_rec uus[MSG_MAX_UU];

    /* results */
    struct headers *h;
    struct part_texts cur; /* texts of the entity whose header block is being read */
    struct mx_buf pend;    /* struct pend, at most MSG_PEND_MAX: header values awaiting a charset */
    struct mx_buf parts;   /* struct part_rec, at most MSG_MAX_PARTS + 1 */
    uint64_t parts_total;
    struct mx_buf text;      /* the parts' texts and embedded messages' fields, packed; at most MSG_TEXT_MAX */
    size_t extracted_bytes;  /* the parts' `extracted` names, for mx_message_bytes */
    size_t inner_total;      /* bytes of m->text holding embedded messages' fields */
    uint32_t inner_not_kept; /* embedded messages whose fields went past MSG_INNER_TOTAL */
    struct mx_dsn *dsn;      /* a delivery-status report (RFC 3464), once one is met; else NULL */
    int dsn_depth;           /* the stack depth of its delivery-status part: the returned message is a sibling */
    uint64_t anomalies[A__COUNT];
    bool cut;                                                   /* mx_message_cut: the message ended before its end */
    uint8_t mailbox[MSG_MAILBOX_CAP], section[MSG_SECTION_CAP]; /* env's copies */

    /* extraction */
    struct mx_extract *x; /* the run's, once the first byte came (NULL: not extracted) */
    struct xfile eml;
    uint32_t eml_n;
    char eml_name[64];
    bool extract_failed;
    bool extract_skipped; /* a file was not created: --extract-total was reached */
    bool at_end;          /* mx_message_end: the last line may lack its line end */
    /* Buffers, last and never zeroed (mx_message_new zeroes what precedes
     * them): each is read only up to the length kept above. */
    struct {
        uint8_t line[MSG_LINE_BUF];
        uint8_t field[MSG_FIELD_CAP];
        /* The leaf's decoded bytes go to its digests in blocks of this
         * buffer, not line by line: a digest call costs as much as a few
         * hundred bytes of hashing. Decoders write straight into its free
         * end (leaf_room): nothing is copied to be hashed. */
        uint8_t hash_buf[8192];
    } b;
};

/* Where the scan for the end of the top-level header block is. */
enum { BODY_LINE_START, BODY_CR_AT_START, BODY_MID_LINE, BODY_IN };
/* Whose digest body_sha256 is: not yet known, body_sha's own, or the root
 * part's SHA-256 over the same bytes (body_shares_leaf). */
enum { BODY_UNDECIDED, BODY_OWN, BODY_SHARED };

/* The end of the header block is an empty line (RFC 5322 §2.1; a bare LF
 * counts as a line end, as the parser reads them): the bytes after it are
 * the body. Headers are short, so the scan is byte by byte. Returns where
 * the body's bytes start in p (n: none); `base` is p's message offset. */
static size_t body_scan(struct mx_message *m, const uint8_t *p, size_t n, uint64_t base)
{
    size_t i = 0;
    if (m->body_at == BODY_IN)
        return 0;
    while (i < n && m->body_at != BODY_IN) {
        uint8_t c = p[i++];
        if (m->body_at == BODY_MID_LINE)
            m->body_at = c == '\n' ? BODY_LINE_START : BODY_MID_LINE;
        else if (c == '\n')
            m->body_at = BODY_IN;
        else if (c == '\r' && m->body_at == BODY_LINE_START)
            m->body_at = BODY_CR_AT_START;
        else
            m->body_at = BODY_MID_LINE;
    }
    if (m->body_at != BODY_IN)
        return n;
    m->body_start = base + i; /* it began in this piece */
    return i;
}

/* ---- anomalies and small helpers ---- */

static void anomaly(struct mx_message *m, int a, uint64_t off, uint64_t len)
{
    if (m->anomalies[a]++ >= MSG_ANOMALY_EMIT || !m->env.ctx)
        return;
    mx_ctx_anomaly_def(m->env.ctx, m->env.dir, &message_anomalies[a], off, len);
}

static bool is_wsp(uint8_t c)
{
    return c == ' ' || c == '\t';
}

static struct mx_slice trim_left(struct mx_slice s)
{
    while (s.len && (is_wsp(s.ptr[0]) || s.ptr[0] == '\r' || s.ptr[0] == '\n'))
        s = mx_slice_make(s.ptr + 1, s.len - 1);
    return s;
}

static struct mx_slice trim(struct mx_slice s)
{
    s = trim_left(s);
    while (s.len && (is_wsp(s.ptr[s.len - 1]) || s.ptr[s.len - 1] == '\r' || s.ptr[s.len - 1] == '\n'))
        s.len--;
    return s;
}

/* An empty set of header fields. Only the lengths, counts and flags are
 * zeroed: the text arrays, nearly all of the 145 KiB, are always written
 * before they are read, and zeroing them per message cost more than parsing
 * a short message. */
static struct headers *headers_new(void)
{
    struct headers *h = malloc(sizeof(*h));
    if (!h)
        return NULL;
    memset(&h->inner, 0, sizeof(h->inner));
    for (int k = 0; k < H__SINGLE; k++) {
        h->single[k].len = 0;
        h->single[k].wire = 0;
    }
    memset(h->seen, 0, sizeof(h->seen));
    for (int l = 0; l < L__N; l++)
        h->list[l].n = h->list[l].dropped = 0;
    memset(h->list_seen, 0, sizeof(h->list_seen));
    h->n_hops = h->hops_dropped = h->n_authres = h->n_dkim = 0;
    h->guessed[0] = '\0';
    return h;
}

static void keep(struct kept *k, struct mx_slice s)
{
    size_t n = s.len < MSG_KEEP_CAP ? s.len : MSG_KEEP_CAP;
    memcpy(k->b, s.ptr, n);
    k->len = (uint16_t)n;
    k->wire = s.len > UINT32_MAX ? UINT32_MAX : (uint32_t)s.len;
}

/* Decodes the RFC 2047 words of `s` into k. */
static void decode_words(struct mx_message *m, struct kept *k, struct mx_slice s, uint64_t off, bool report)
{
    struct mx_mime_out o = { k->b, 0, MSG_KEEP_CAP, false };
    unsigned unk = 0, bad = 0;
    mx_mime_decode_words(s, &o, &unk, &bad);
    k->len = (uint16_t)o.len;
    /* Cut: the length on the wire; at least one more than kept should
     * decoding have made the text longer than it was. */
    uint64_t w = !o.trunc ? o.len : s.len > o.len ? s.len : o.len + 1;
    k->wire = w > UINT32_MAX ? UINT32_MAX : (uint32_t)w;
    if (unk && report)
        anomaly(m, A_UNKNOWN_CHARSET, off, s.len);
    if (bad && report)
        anomaly(m, A_BAD_ENCODED_WORD, off, s.len);
}

/* Keeps `s` with RFC 2047 words decoded. Raw 8-bit text that is not UTF-8
 * (RFC 6532 §3.2 allows only UTF-8) waits in m->pend for its charset
 * (resolve_pending); until then, and if it cannot wait, it is kept as it
 * is and its bytes are escaped on output. */
static void keep_decoded(struct mx_message *m, struct kept *k, struct mx_slice s, uint64_t off)
{
    decode_words(m, k, s, off, true);
    if (mx_mime_utf8_valid(s))
        return;
    struct pend *p = mx_buf_push(&m->pend, NULL);
    if (!p)
        return; /* past MSG_PEND_MAX, or out of memory: kept as it is */
    p->k = k;
    p->inner = m->depth > 0;
    p->off = off;
    p->len = (uint16_t)(s.len < MSG_PEND_RAW ? s.len : MSG_PEND_RAW);
    memcpy(p->raw, s.ptr, p->len);
}

/* The values waiting in m->pend for the header block they belong to (the
 * embedded message's when `inner`, else the top-level one) are read in the
 * charset `declared` names, or Windows-1252 (mx_mime_header_charset), and
 * their words decoded again; `guessed` records the charset used. */
static void resolve_pending(struct mx_message *m, bool inner, struct mx_slice declared)
{
    char cs[MSG_GUESS_CAP];
    bool named = false;
    size_t w = 0;
    for (size_t i = 0; i < m->pend.n; i++) {
        struct pend *p = mx_buf_at(&m->pend, i);
        if (p->inner != inner) {
            memmove(mx_buf_at(&m->pend, w++), p, sizeof(*p));
            continue;
        }
        if (!named)
            mx_mime_header_charset(declared, cs, sizeof(cs));
        named = true;
        uint8_t u[MSG_PEND_RAW * 3];
        struct mx_mime_out o = { u, 0, sizeof(u), false };
        if (!mx_mime_raw_to_utf8(cs, mx_slice_make(p->raw, p->len), &o))
            continue;
        decode_words(m, p->k, mx_slice_make(u, mx_utf8_cut(u, o.len)), p->off, false);
        char *g = inner ? m->h->inner.guessed : m->h->guessed;
        snprintf(g, MSG_GUESS_CAP, "%s", cs);
    }
    m->pend.n = w;
}

static void hex(const uint8_t *d, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = '\0';
}

static void set_bytes(uint8_t *dst, size_t cap, struct mx_slice s, size_t *len)
{
    size_t n = s.len < cap ? s.len : cap;
    memcpy(dst, s.ptr, n);
    *len = n;
}

/* ---- extraction (--extract DIR) ---- */

#define MSG_SAFE_IN 1024 /* bytes of a name taken from the wire that mx_message_safe_name reads */

/* The code point of the valid UTF-8 sequence of n bytes at p. */
static uint32_t utf8_cp(const unsigned char *p, size_t n)
{
    if (n == 1)
        return p[0];
    uint32_t c = p[0] & (0x7fu >> n);
    for (size_t i = 1; i < n; i++)
        c = c << 6 | (p[i] & 0x3fu);
    return c;
}

/* Characters a file name must not carry as they are: controls (C0, DEL,
 * C1), and the invisible ones that can reorder or hide part of a name. The
 * bidi controls of UAX #9 (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F,
 * U+061C) make "1-1-<U+202E>fdp.exe" show as "1-1-exe.pdf"; the other
 * format characters (category Cf), fillers, variation selectors, the line
 * and paragraph separators and the noncharacters show nothing. */
static bool hidden_cp(uint32_t c)
{
    return c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == 0xad || c == 0x34f || (c >= 0x600 && c <= 0x605) ||
           c == 0x61c || c == 0x6dd || c == 0x70f || c == 0x8e2 || c == 0x115f || c == 0x1160 || c == 0x17b4 ||
           c == 0x17b5 || (c >= 0x180b && c <= 0x180f) || (c >= 0x200b && c <= 0x200f) ||
           (c >= 0x2028 && c <= 0x202e) || (c >= 0x2060 && c <= 0x206f) || c == 0x3164 ||
           (c >= 0xfdd0 && c <= 0xfdef) || (c >= 0xfe00 && c <= 0xfe0f) || c == 0xfeff || c == 0xffa0 ||
           (c >= 0xfff9 && c <= 0xfffb) || (c & 0xfffe) == 0xfffe || c == 0x110bd || c == 0x110cd ||
           (c >= 0x13430 && c <= 0x1343f) || (c >= 0x1bca0 && c <= 0x1bca3) || (c >= 0x1d173 && c <= 0x1d17a) ||
           (c >= 0xe0000 && c <= 0xe0fff);
}

/* A name of w bytes (valid UTF-8) cut to at most lim: at a character
 * boundary, `mark` where the cut is, and the extension kept (the last
 * ".xyz", when it is short and keep_ext), so that what the file is stays
 * visible. Returns the new length. */
static size_t cut_keep_ext(char *t, size_t w, size_t lim, const char *mark, bool keep_ext)
{
    if (w <= lim)
        return w;
    size_t ml = strlen(mark), dot = w;
    for (size_t i = w - 1; keep_ext && i > 0; i--)
        if (t[i] == '.') {
            dot = i;
            break;
        }
    size_t ext = w - dot;
    if (ext > MSG_EXT_KEEP || ext > lim / 2)
        ext = 0;
    size_t stem = lim - ext - ml;
    while (stem && ((unsigned char)t[stem] & 0xc0) == 0x80)
        stem--; /* t[stem] is the first byte left out: never inside a sequence */
    memmove(t + stem + ml, t + w - ext, ext);
    memcpy(t + stem, mark, ml);
    return stem + ml + ext;
}

/* message.h: the name is made safe for the extract directory. */
void mx_message_safe_name(struct mx_slice in, char *out, size_t cap)
{
    for (size_t i = in.len; i > 0; i--)
        if (in.ptr[i - 1] == '/' || in.ptr[i - 1] == '\\') {
            in = mx_slice_make(in.ptr + i, in.len - i);
            break;
        }
    if (in.len > MSG_SAFE_IN)
        in.len = MSG_SAFE_IN;
    /* A name the record's cap cut may end inside a UTF-8 sequence: that
     * sequence goes, rather than showing as escapes. */
    size_t k = 0;
    while (k < 3 && k < in.len && (in.ptr[in.len - 1 - k] & 0xc0) == 0x80)
        k++;
    if (k < in.len && in.ptr[in.len - 1 - k] >= 0xc2 && in.ptr[in.len - 1 - k] <= 0xf4) {
        uint8_t lead = in.ptr[in.len - 1 - k];
        size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
        if (need > k + 1)
            in.len -= k + 1;
    }
    char t[4 * MSG_SAFE_IN + 1];
    size_t n = mx_utf8_sanitize(in, t, sizeof(t) - 1); /* valid UTF-8; other bytes as \xNN */
    /* Each character stays or becomes '_' (in place: the text only shrinks). */
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)t[i];
        size_t sl = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
        uint32_t cp = utf8_cp((const unsigned char *)t + i, sl);
        if (hidden_cp(cp) || cp == '/' || cp == '\\' || cp == ':' || (w == 0 && (cp == '.' || cp == ' ')))
            t[w++] = '_';
        else
            for (size_t j = 0; j < sl; j++)
                t[w++] = t[i + j];
        i += sl;
    }
    w = cut_keep_ext(t, w, cap - 1, "", true); /* too long */
    memcpy(out, t, w);
    out[w] = '\0';
    if (!w || !strcmp(out, "_") || !strcmp(out, "__"))
        snprintf(out, cap, "part");
}

/* Creates DIR/<stem><rest> exclusively (O_EXCL: nothing is overwritten;
 * O_NOFOLLOW: no link is followed), relative to the directory opened once,
 * and writes the name used into `name`. The names of one run are unique by
 * construction (flow, message number, part path), so one open makes each
 * file. A name can only exist from before the run (DIR need not be empty):
 * then <stem>~<k><rest> is tried, k = 1, 2, ... No first choice has a '~'
 * after its numbers, so each name tried in vain is a distinct file that was
 * in DIR before: the run costs one open per file it makes and at most one
 * per file that was there. Returns the fd, or -1 (extract_failed). */
static int create_file(struct mx_message *m, const char *stem, const char *rest, char *name, size_t cap)
{
    for (unsigned k = 0; k < MSG_NAME_TRIES; k++) {
        int n = k ? snprintf(name, cap, "%s~%u%s", stem, k, rest) : snprintf(name, cap, "%s%s", stem, rest);
        if (n < 0 || (size_t)n >= cap)
            break;
        int fd = openat(m->x->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST)
            break;
    }
    name[0] = '\0';
    m->extract_failed = true;
    return -1;
}

/* Opens file f, unless --extract-total is reached (then nothing is created:
 * extract_skipped, EXTRACT_TOTAL_CAP). `off`: the stream offset it concerns. */
static bool xfile_open(struct mx_message *m, struct xfile *f, const char *stem, const char *rest, char *name,
                       size_t cap, uint64_t off)
{
    *f = (struct xfile){ .fd = -1 };
    name[0] = '\0';
    if (m->x->total >= m->x->total_max) {
        m->extract_skipped = true;
        anomaly(m, A_EXTRACT_TOTAL_CAP, off, 0);
        return false;
    }
    f->fd = create_file(m, stem, rest, name, cap);
    return f->fd >= 0;
}

static void write_all(struct mx_message *m, int *fd, const uint8_t *p, size_t n)
{
    while (*fd >= 0 && n) {
        ssize_t w = write(*fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(*fd);
            *fd = -1;
            m->extract_failed = true;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Writes n bytes to f, as far as --extract-max (this file) and
 * --extract-total (all files) allow; at a cap the file is closed, cut, and
 * the anomaly names the cap (STYLE.md rule 4: what is written is bounded
 * too, whatever a deflate bomb inflates to). `off`: the stream offset of
 * p[0] when `raw` (the message as carried), else of the line being decoded. */
static void xfile_write(struct mx_message *m, struct xfile *f, const uint8_t *p, size_t n, uint64_t off, bool raw)
{
    if (f->fd < 0 || !n)
        return;
    struct mx_extract *x = m->x;
    uint64_t room = x->file_max > f->written ? x->file_max - f->written : 0;
    uint64_t left = x->total_max > x->total ? x->total_max - x->total : 0;
    int a = A_EXTRACT_FILE_CAP;
    if (left < room) {
        room = left;
        a = A_EXTRACT_TOTAL_CAP;
    }
    size_t take = n < room ? n : (size_t)room;
    write_all(m, &f->fd, p, take);
    f->written += take;
    x->total += take;
    if (take < n) {
        f->cut = true;
        anomaly(m, a, raw ? off + take : off, raw ? n - take : 0);
        if (f->fd >= 0)
            close(f->fd);
        f->fd = -1;
    }
}

/* A record's "extracted": the file's path as created (DIR as given, then
 * the name), and how much of it was written when a cap cut it. */
static void emit_extracted(struct mx_event *ev, const struct mx_extract *x, const char *name, const struct xfile *f)
{
    char p[4096 + MSG_NAME_CAP + 2];
    size_t dl = strlen(x->dir);
    int n = snprintf(p, sizeof(p), "%s%s%s", x->dir, dl && x->dir[dl - 1] == '/' ? "" : "/", name);
    if (n > 0 && (size_t)n < sizeof(p))
        mx_ev_wire(ev, "extracted", mx_slice_make(p, (size_t)n));
    if (f->cut) {
        mx_ev_bool(ev, "extracted_cut", true);
        mx_ev_uint(ev, "extracted_size", f->written);
    }
}

/* ---- uuencode in text parts ---- */

static void uu_line_done(struct mx_message *m)
{
    const uint8_t *p = m->uu_line;
    size_t n = m->uu_len;
    while (n && (p[n - 1] == '\r' || p[n - 1] == '\n'))
        n--;
    if (m->uu_long) {
        m->uu_long = false;
        if (m->uu == UU_IN) {
            anomaly(m, A_BAD_UUENCODE, m->cur_off, 0);
            m->uu = UU_SEEK;
        }
        return;
    }
    struct uu_rec *u = m->n_uu ? &m->uus[m->n_uu - 1] : NULL;
    if (m->uu == UU_SEEK) {
        /* "begin MODE NAME" (POSIX uuencode) */
        if (n < 10 || memcmp(p, "begin ", 6) || m->n_uu >= MSG_MAX_UU)
            return;
        size_t i = 6;
        unsigned mode = 0, digits = 0;
        while (i < n && p[i] >= '0' && p[i] <= '7' && digits < 4) {
            mode = mode * 8 + (unsigned)(p[i] - '0');
            digits++;
            i++;
        }
        if (digits < 3 || i >= n || p[i] != ' ')
            return;
        u = &m->uus[m->n_uu++];
        memset(u, 0, sizeof(*u));
        u->part = m->stack[m->depth].rec;
        u->mode = mode;
        size_t nl = n - i - 1 < sizeof(u->name) ? n - i - 1 : sizeof(u->name);
        memcpy(u->name, p + i + 1, nl);
        u->name_len = (uint16_t)nl;
        if (m->hashes & MX_HASH_SHA256)
            EVP_DigestInit_ex(m->h_uu, mx_md(MX_MD_SHA256), NULL);
        m->uu = UU_IN;
        return;
    }
    if (m->uu == UU_END) {
        if (n >= 3 && !memcmp(p, "end", 3)) {
            u->complete = true;
            unsigned int dl = 0;
            if (m->hashes & MX_HASH_SHA256)
                EVP_DigestFinal_ex(m->h_uu, u->sha256, &dl);
        } else
            anomaly(m, A_BAD_UUENCODE, m->cur_off, 0);
        m->uu = UU_SEEK;
        return;
    }
    /* UU_IN: a length character, then groups of 4 characters for 3 bytes */
    if (n == 0) {
        anomaly(m, A_BAD_UUENCODE, m->cur_off, 0);
        m->uu = UU_SEEK;
        return;
    }
    unsigned len = (unsigned)(p[0] - ' ') & 63;
    if (len == 0) {
        m->uu = UU_END;
        return;
    }
    if (n < 1 + (size_t)(len + 2) / 3 * 4) {
        /* shorter than its length character says: not uuencode after all */
        anomaly(m, A_BAD_UUENCODE, m->cur_off, 0);
        m->uu = UU_SEEK;
        return;
    }
    uint8_t out[64];
    size_t w = 0;
    for (size_t i = 1; i + 3 < n + 3 && w < len; i += 4) {
        uint8_t c[4];
        for (int k = 0; k < 4; k++)
            c[k] = (uint8_t)(((i + (size_t)k < n ? p[i + (size_t)k] : ' ') - ' ') & 63);
        uint8_t b[3] = { (uint8_t)(c[0] << 2 | c[1] >> 4), (uint8_t)(c[1] << 4 | c[2] >> 2),
                         (uint8_t)(c[2] << 6 | c[3]) };
        for (int k = 0; k < 3 && w < len; k++)
            out[w++] = b[k];
    }
    if (m->hashes & MX_HASH_SHA256)
        EVP_DigestUpdate(m->h_uu, out, w);
    u->size += w;
}

static void uu_scan(struct mx_message *m, const uint8_t *p, size_t n)
{
    while (n) {
        if (m->uu == UU_SEEK && (m->uu_skip || (!m->uu_len && p[0] != 'b'))) {
            /* not a "begin" line: nothing of it is kept, up to its end */
            const uint8_t *nl = memchr(p, '\n', n);
            m->uu_skip = !nl;
            if (!nl)
                return;
            n -= (size_t)(nl + 1 - p);
            p = nl + 1;
            continue;
        }
        const uint8_t *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) + 1 : n;
        size_t room = sizeof(m->uu_line) - m->uu_len;
        if (take > room) {
            m->uu_long = true;
            m->uu_len = 0;
        } else {
            memcpy(m->uu_line + m->uu_len, p, take);
            m->uu_len += take;
        }
        if (nl) {
            uu_line_done(m);
            m->uu_len = 0;
        }
        p += take;
        n -= take;
    }
}

/* ---- leaf bodies ---- */

/* The i-th part described (i < m->parts.n). */
static struct part_rec *part_at(const struct mx_message *m, size_t i)
{
    return mx_buf_at(&m->parts, i);
}

static struct part_rec *rec_of(struct mx_message *m, const struct ent *e)
{
    return e->rec >= 0 ? part_at(m, (size_t)e->rec) : NULL;
}

/* Text `which` (T_*) of a described part. */
static struct mx_slice rec_text(const struct mx_message *m, const struct part_rec *r, int which)
{
    size_t off = r->text;
    for (int k = 0; k < which; k++)
        off += r->len[k];
    return mx_slice_make((const uint8_t *)m->text.p + off, r->len[which]);
}

/* mxray ran out of memory parsing m: the flow's dissection stops (a message
 * parsed without a flow has no dissection to stop). */
static void failed(struct mx_message *m)
{
    if (m->env.ctx)
        mx_ctx_fail(m->env.ctx);
}

/* Makes room for n more bytes of m->text; false past MSG_TEXT_MAX (what
 * would go there is not described) or when out of memory (the flow's
 * dissection stops: mx_ctx_fail). */
static bool text_room(struct mx_message *m, size_t n)
{
    enum mx_buf_status st = mx_buf_reserve(&m->text, n);
    if (st == MX_BUF_NOMEM)
        failed(m);
    return st == MX_BUF_OK;
}

static void text_put(struct mx_message *m, const void *p, size_t n)
{
    mx_buf_append(&m->text, p, n); /* text_room made room */
}

/* The anomalies the delivery-status reader met (MX_DSN_* bits), at the line under way. */
static void dsn_anomalies(struct mx_message *m, unsigned bits)
{
    static const int names[] = { A_DSN_NOT_A_FIELD, A_DSN_TOO_MANY_RECIPIENTS, A_DSN_MISSING_FIELD, A_DSN_BAD_VALUE };
    for (size_t i = 0; i < MX_ARRAY_LEN(names); i++)
        if (bits & (1u << i))
            anomaly(m, names[i], m->cur_off, 0);
}

/* Decoded bytes of the current leaf: hashed, counted, extracted, scanned. */
#define PART_HASHES (MX_HASH_MD5 | MX_HASH_SHA1 | MX_HASH_SHA256)

/* The leaf's bytes p[0..n) to the digests --hashes chose. */
static void hash_update(struct mx_message *m, const uint8_t *p, size_t n)
{
    if (m->hashes & MX_HASH_MD5)
        EVP_DigestUpdate(m->h_md5, p, n);
    if (m->hashes & MX_HASH_SHA1)
        EVP_DigestUpdate(m->h_sha1, p, n);
    if (m->hashes & MX_HASH_SHA256)
        EVP_DigestUpdate(m->h_sha256, p, n);
}

static void hash_flush(struct mx_message *m)
{
    if (!m->hash_len)
        return;
    hash_update(m, m->b.hash_buf, m->hash_len);
    m->hash_len = 0;
}

/* Bytes a decoder wrote at leaf_room's place are already in the buffer. */
static void hash_bytes(struct mx_message *m, const uint8_t *p, size_t n)
{
    if (!(m->hashes & PART_HASHES))
        return;
    if (p == m->b.hash_buf + m->hash_len) {
        m->hash_len += n;
        return;
    }
    if (n > sizeof(m->b.hash_buf) - m->hash_len) {
        hash_flush(m);
        if (n >= sizeof(m->b.hash_buf)) {
            hash_update(m, p, n);
            return;
        }
    }
    memcpy(m->b.hash_buf + m->hash_len, p, n);
    m->hash_len += n;
}

/* Where a decoder writes up to `need` bytes of the leaf: the free end of the
 * digests' buffer, so that hash_bytes finds them in place. */
static uint8_t *leaf_room(struct mx_message *m, size_t need)
{
    if (need > sizeof(m->b.hash_buf) - m->hash_len)
        hash_flush(m);
    return m->b.hash_buf + m->hash_len;
}

/* The first MX_MAGIC_PREFIX decoded bytes of the leaf, for its type. */
static void magic_keep(struct mx_message *m, const uint8_t *p, size_t n)
{
    size_t room = sizeof(m->magic) - m->magic_len;
    if (n > room)
        n = room;
    memcpy(m->magic + m->magic_len, p, n);
    m->magic_len += n;
}

/* The leaf's type by its bytes, and whether it disagrees with the declared one. */
static void magic_done(struct mx_message *m, const struct ent *e, struct part_rec *r)
{
    if (!mx_magic_type(m->magic, m->magic_len, r->detected, sizeof(r->detected)))
        return;
    char declared[sizeof(e->ctype) + 1];
    memcpy(declared, e->ctype, e->ctype_len);
    declared[e->ctype_len] = '\0';
    /* fewer bytes than a file header: too short to disagree with anything */
    r->type_mismatch = m->magic_len >= MSG_MAGIC_MIN && mx_magic_mismatch(declared, r->detected);
}

static void leaf_out(struct mx_message *m, const uint8_t *p, size_t n)
{
    struct ent *e = &m->stack[m->depth];
    struct part_rec *r = rec_of(m, e);
    if (!n)
        return;
    if (r) {
        r->size += n;
        hash_bytes(m, p, n);
        magic_keep(m, p, n);
    }
    if (m->leaf_file.fd >= 0)
        xfile_write(m, &m->leaf_file, p, n, m->cur_off, false);
    if (e->text)
        uu_scan(m, p, n);
    if (e->dsn)
        dsn_anomalies(m, mx_dsn_feed(m->dsn, p, n));
}

/* Encoded bytes of the current leaf (a line or a piece of one, without its
 * line end); `line_end` when the line ends after them. Returns true when the
 * line ended in a quoted-printable soft break (its line end is no content). */
static bool leaf_in(struct mx_message *m, struct mx_slice s, bool line_end)
{
    struct ent *e = &m->stack[m->depth];
    /* The line end before this line is content (RFC 2046 §5.1.1: only the one
     * before a boundary belongs to the boundary). */
    if (m->pend_len) {
        if (e->enc != E_BASE64)
            leaf_out(m, m->pend_eol, m->pend_len);
        m->pend_len = 0;
    }
    do {
        size_t take = s.len < MSG_LINE_BUF ? s.len : MSG_LINE_BUF;
        bool last = take == s.len;
        bool soft = false;
        if (e->enc == E_IDENTITY)
            leaf_out(m, s.ptr, take); /* as carried: no copy */
        else {
            /* base64: 3 bytes per 4 characters; quoted-printable: at most
             * the characters and the whitespace it held (mime.h) */
            uint8_t *dst = leaf_room(m, take + MX_MIME_QP_WS + 8);
            size_t w = e->enc == E_BASE64 ? mx_mime_b64_feed(&m->b64, s.ptr, take, dst)
                                          : mx_mime_qp_feed(&m->qp, s.ptr, take, line_end && last, &soft, dst);
            leaf_out(m, dst, w);
        }
        s = mx_slice_make(s.ptr + take, s.len - take);
        if (last && line_end && soft)
            return true; /* RFC 2045 §6.7 rule 5: a soft line break is no line end */
    } while (s.len);
    return false;
}

static void leaf_eol(struct mx_message *m, struct mx_slice eol)
{
    memcpy(m->pend_eol, eol.ptr, eol.len);
    m->pend_len = (uint8_t)eol.len;
}

static void leaf_start(struct mx_message *m, struct ent *e)
{
    struct part_rec *r = rec_of(m, e);
    memset(&m->b64, 0, sizeof(m->b64));
    memset(&m->qp, 0, sizeof(m->qp));
    m->pend_len = 0;
    m->uu = UU_SEEK;
    m->uu_len = 0;
    m->uu_long = false;
    m->uu_skip = false;
    m->leaf_open = true;
    m->leaf_file = (struct xfile){ .fd = -1 };
    m->magic_len = 0;
    if (m->hashes & MX_HASH_MD5)
        EVP_DigestInit_ex(m->h_md5, mx_md(MX_MD_MD5), NULL);
    if (m->hashes & MX_HASH_SHA1)
        EVP_DigestInit_ex(m->h_sha1, mx_md(MX_MD_SHA1), NULL);
    if (m->hashes & MX_HASH_SHA256)
        EVP_DigestInit_ex(m->h_sha256, mx_md(MX_MD_SHA256), NULL);
    m->hash_len = 0;
    if (r && m->x && (r->len[T_FILENAME] || e->attachment) && m->eml_n) {
        /* DIR/<flow>-<n>-<part path>-<name>: unique within the run */
        char stem[MSG_NAME_CAP + 1], rest[MSG_NAME_CAP + 1], name[MSG_NAME_CAP + 1];
        int sl = snprintf(stem, sizeof(stem), "%" PRIu64 "-%u-%s", mx_ctx_flow_id(m->env.ctx), m->eml_n, e->path);
        /* the whole within NAME_MAX, with room for "~k" (create_file) */
        size_t room = sl > 0 && (size_t)sl + 16 < MSG_NAME_CAP ? MSG_NAME_CAP - (size_t)sl - 8 : 8;
        rest[0] = '-';
        mx_message_safe_name(rec_text(m, r, T_FILENAME), rest + 1, room);
        if (xfile_open(m, &m->leaf_file, stem, rest, name, sizeof(name), m->cur_off)) {
            r->extracted = strdup(name);
            if (r->extracted)
                m->extracted_bytes += strlen(name) + 1;
            else
                m->extract_failed = true;
        }
    }
}

/* The leaf ends; `flush` keeps its last line end (end of message), else the
 * line end belongs to the boundary that follows. */
static void leaf_end(struct mx_message *m, struct ent *e, bool flush)
{
    if (!m->leaf_open)
        return;
    struct part_rec *r = rec_of(m, e);
    if (flush && m->pend_len && e->enc != E_BASE64)
        leaf_out(m, m->pend_eol, m->pend_len);
    m->pend_len = 0;
    if (e->enc == E_QP && m->qp.pend) {
        bool soft = false;
        uint8_t *dst = leaf_room(m, MX_MIME_QP_WS + 8);
        size_t w = mx_mime_qp_feed(&m->qp, NULL, 0, true, &soft, dst);
        leaf_out(m, dst, w);
    }
    if (e->enc == E_BASE64)
        mx_mime_b64_end(&m->b64);
    if (e->dsn)
        dsn_anomalies(m, mx_dsn_end(m->dsn));
    if (e->text && m->uu_len) {
        uu_line_done(m);
        m->uu_len = 0;
    }
    if (m->uu != UU_SEEK)
        anomaly(m, A_BAD_UUENCODE, m->cur_off, 0);
    m->uu = UU_SEEK;
    unsigned int dl = 0;
    uint8_t scratch[EVP_MAX_MD_SIZE];
    hash_flush(m);
    if (m->hashes & MX_HASH_MD5)
        EVP_DigestFinal_ex(m->h_md5, r ? r->md5 : scratch, &dl);
    if (m->hashes & MX_HASH_SHA1)
        EVP_DigestFinal_ex(m->h_sha1, r ? r->sha1 : scratch, &dl);
    if (m->hashes & MX_HASH_SHA256)
        EVP_DigestFinal_ex(m->h_sha256, r ? r->sha256 : scratch, &dl);
    if (r) {
        r->hashed = true;
        magic_done(m, e, r);
        r->bad_base64 = m->b64.bad;
        r->bad_qp = m->qp.bad;
    }
    if (m->b64.bad)
        anomaly(m, A_BAD_BASE64, m->cur_off, 0);
    if (m->qp.bad)
        anomaly(m, A_BAD_QP, m->cur_off, 0);
    if (r) {
        r->extracted_size = m->leaf_file.written;
        r->extracted_cut = m->leaf_file.cut;
    }
    if (m->leaf_file.fd >= 0)
        close(m->leaf_file.fd);
    m->leaf_file.fd = -1;
    m->leaf_open = false;
}

/* ---- top-level header fields ---- */

/* Keeps the addresses of `v` in a[0..max), counting in *n, and those beyond in *dropped. */
static void parse_list(struct mx_message *m, struct kept *a, uint32_t max, uint32_t *n, uint32_t *dropped,
                       struct mx_slice v, uint64_t off)
{
    /* RFC 5322 §3.4: addresses separated by commas outside quotes, angle brackets and comments */
    size_t start = 0;
    int paren = 0;
    bool quote = false, angle = false;
    for (size_t i = 0; i <= v.len; i++) {
        uint8_t c = i < v.len ? v.ptr[i] : ',';
        if (quote) {
            if (c == '\\')
                i++;
            else if (c == '"')
                quote = false;
            continue;
        }
        if (c == '"')
            quote = true;
        else if (c == '(')
            paren++;
        else if (c == ')' && paren)
            paren--;
        else if (c == '<')
            angle = true;
        else if (c == '>')
            angle = false;
        else if (c == ',' && !paren && !angle) {
            struct mx_slice addr = trim(mx_slice_make(v.ptr + start, (i < v.len ? i : v.len) - start));
            start = i + 1;
            if (!addr.len)
                continue;
            if (*n < max)
                keep_decoded(m, &a[(*n)++], addr, off);
            else
                (*dropped)++;
        }
    }
}

/* Appends tok to a hop's clause `k`, a space between tokens, within
 * MSG_HOP_CAP; wire counts the clause's length as sent, cut or not. */
static void hop_put(struct hop *hp, int k, struct mx_slice tok)
{
    uint16_t *len = &hp->len[k];
    uint32_t *wire = &hp->wire[k];
    bool was_cut = *wire > *len;
    if (*wire && *wire < UINT32_MAX)
        (*wire)++;
    *wire = tok.len > UINT32_MAX - *wire ? UINT32_MAX : *wire + (uint32_t)tok.len;
    if (was_cut) /* nothing after a cut */
        return;
    if (*len && *len < MSG_HOP_CAP)
        hp->b[k][(*len)++] = ' ';
    size_t n = tok.len < (size_t)(MSG_HOP_CAP - *len) ? tok.len : (size_t)(MSG_HOP_CAP - *len);
    memcpy(hp->b[k] + *len, tok.ptr, n);
    *len = (uint16_t)(*len + n);
}

/* The host a leading comment "(from user@host)" names: sendmail writes it
 * for a message submitted on the host itself ("(from root@localhost) by
 * mx.example (8.17.1/8.17.1/Submit) id ..."), in place of a from clause.
 * Other comments ("(qmail 1234 invoked by uid 0)", "(qmail 1234 invoked
 * from network)") name none: empty. */
static struct mx_slice comment_host(struct mx_slice c)
{
    struct mx_slice none = mx_slice_make(NULL, 0);
    if (c.len < 7 || c.ptr[0] != '(' || !mx_mime_eq(mx_slice_make(c.ptr + 1, 4), "from") || !is_wsp(c.ptr[5]))
        return none;
    size_t i = 6;
    while (i < c.len && is_wsp(c.ptr[i]))
        i++;
    size_t s = i, at = 0;
    bool dot = false;
    while (i < c.len && c.ptr[i] != ')' && c.ptr[i] != '(' && !is_wsp(c.ptr[i])) {
        if (c.ptr[i] == '@')
            at = i + 1;
        dot |= c.ptr[i] == '.';
        i++;
    }
    if (at)
        s = at;
    else if (!dot)
        return none; /* "(from userid 0)": no host */
    if (i == s)
        return none;
    return mx_slice_make(c.ptr + s, i - s);
}

static void parse_received(struct headers *h, struct mx_slice v)
{
    if (h->n_hops >= MSG_MAX_HOPS) {
        h->hops_dropped++;
        return;
    }
    struct hop *hp = &h->hops[h->n_hops++];
    memset(hp->len, 0, sizeof(hp->len));
    memset(hp->wire, 0, sizeof(hp->wire));
    /* RFC 5322 §3.6.7: received-token... ";" date-time */
    size_t semi = v.len;
    for (size_t i = v.len; i > 0; i--)
        if (v.ptr[i - 1] == ';') {
            semi = i - 1;
            break;
        }
    if (semi < v.len) {
        struct mx_slice d = trim(mx_slice_make(v.ptr + semi + 1, v.len - semi - 1));
        size_t n = d.len < MSG_HOP_CAP ? d.len : MSG_HOP_CAP;
        memcpy(hp->b[HOP_DATE], d.ptr, n);
        hp->len[HOP_DATE] = (uint16_t)n;
        hp->wire[HOP_DATE] = (uint32_t)(d.len > UINT32_MAX ? UINT32_MAX : d.len);
    }
    /* Tokens before the first clause are comments (CFWS, RFC 5322 §3.2.2),
     * kept in HOP_COMMENT; a comment-only field (qmail's) is a hop all the
     * same, with its date. */
    int cur = HOP_COMMENT;
    struct mx_slice lead_host = mx_slice_make(NULL, 0);
    size_t i = 0;
    while (i < semi) {
        while (i < semi && (is_wsp(v.ptr[i]) || v.ptr[i] == '\r' || v.ptr[i] == '\n'))
            i++;
        size_t s = i;
        int paren = 0;
        while (i < semi && (paren || !(is_wsp(v.ptr[i]) || v.ptr[i] == '\r' || v.ptr[i] == '\n'))) {
            if (v.ptr[i] == '(')
                paren++;
            else if (v.ptr[i] == ')' && paren)
                paren--;
            i++;
        }
        struct mx_slice tok = mx_slice_make(v.ptr + s, i - s);
        if (!tok.len)
            break;
        int kw = -1;
        for (int k = HOP_FROM; k < HOP_DATE; k++)
            if (mx_mime_eq(tok, hop_keys[k]))
                kw = k;
        if (kw >= 0) {
            cur = kw;
            continue;
        }
        if (cur == HOP_COMMENT && tok.ptr[0] != '(')
            continue; /* a word before any clause: not a received-token RFC 5321 §4.4 knows */
        if (cur == HOP_COMMENT && !lead_host.len)
            lead_host = comment_host(tok);
        hop_put(hp, cur, tok);
    }
    /* "(from root@localhost) by ...": the host it came from, when no from clause says */
    if (!hp->len[HOP_FROM] && lead_host.len)
        hop_put(hp, HOP_FROM, lead_host);
}

static void parse_dkim(struct headers *h, struct mx_slice v)
{
    if (h->n_dkim >= MSG_MAX_DKIM)
        return;
    /* RFC 6376 §3.2: tag=value pairs separated by ';', whitespace ignored */
    size_t i = 0;
    size_t dl = 0, sl = 0;
    uint8_t d[128], s[64];
    while (i < v.len) {
        const uint8_t *semi = memchr(v.ptr + i, ';', v.len - i);
        size_t e = semi ? (size_t)(semi - v.ptr) : v.len;
        struct mx_slice t = trim(mx_slice_make(v.ptr + i, e - i));
        const uint8_t *eq = memchr(t.ptr, '=', t.len);
        if (eq) {
            struct mx_slice tag = trim(mx_slice_make(t.ptr, (size_t)(eq - t.ptr)));
            struct mx_slice val = mx_slice_make(eq + 1, t.len - (size_t)(eq + 1 - t.ptr));
            uint8_t *dst = NULL;
            size_t *dlen = NULL, cap = 0;
            if (mx_mime_eq(tag, "d")) {
                dst = d, dlen = &dl, cap = sizeof(d);
            } else if (mx_mime_eq(tag, "s")) {
                dst = s, dlen = &sl, cap = sizeof(s);
            }
            if (dst) {
                *dlen = 0;
                for (size_t k = 0; k < val.len && *dlen < cap; k++)
                    if (!is_wsp(val.ptr[k]) && val.ptr[k] != '\r' && val.ptr[k] != '\n')
                        dst[(*dlen)++] = val.ptr[k];
            }
        }
        i = e + 1;
    }
    memcpy(h->dkim[h->n_dkim].d, d, dl);
    memcpy(h->dkim[h->n_dkim].s, s, sl);
    h->dkim[h->n_dkim].dl = (uint16_t)dl;
    h->dkim[h->n_dkim].sl = (uint16_t)sl;
    h->n_dkim++;
}

static void top_field(struct mx_message *m, struct mx_slice name, struct mx_slice v, uint64_t off)
{
    struct headers *h = m->h;
    for (int k = 0; k < H__SINGLE; k++) {
        if (!mx_mime_eq(name, single_names[k]))
            continue;
        if (h->seen[k]) {
            /* RFC 5322 §3.6: at most one of each (x-* and return-path excepted) */
            if (k <= H_REFERENCES)
                anomaly(m, A_DUPLICATE_FIELD, off, name.len);
            return;
        }
        h->seen[k] = true;
        if (k == H_FROM || k == H_SENDER || k == H_SUBJECT || k == H_X_MAILER || k == H_USER_AGENT)
            keep_decoded(m, &h->single[k], v, off);
        else
            keep(&h->single[k], v);
        return;
    }
    for (int k = 0; k < L__N; k++) {
        if (!mx_mime_eq(name, list_names[k]))
            continue;
        if (h->list_seen[k])
            anomaly(m, A_DUPLICATE_FIELD, off, name.len);
        h->list_seen[k] = true;
        parse_list(m, h->list[k].a, MSG_MAX_LIST, &h->list[k].n, &h->list[k].dropped, v, off);
        return;
    }
    if (mx_mime_eq(name, "received"))
        parse_received(h, v);
    else if (mx_mime_eq(name, "authentication-results")) {
        if (h->n_authres < MSG_MAX_AUTHRES)
            keep(&h->authres[h->n_authres++], v);
    } else if (mx_mime_eq(name, "dkim-signature"))
        parse_dkim(h, v);
}

/* A field of an embedded message's header block: the few its part reports,
 * decoded as the top-level ones are. */
static void inner_field(struct mx_message *m, struct mx_slice name, struct mx_slice v, uint64_t off)
{
    struct inner_headers *in = &m->h->inner;
    for (int k = 0; k < I__SINGLE; k++) {
        if (!mx_mime_eq(name, inner_names[k]))
            continue;
        if (in->seen[k]) {
            anomaly(m, A_DUPLICATE_FIELD, off, name.len); /* RFC 5322 §3.6 */
            return;
        }
        in->seen[k] = true;
        if (k == I_FROM || k == I_SUBJECT)
            keep_decoded(m, &in->single[k], v, off);
        else
            keep(&in->single[k], v);
        const struct ent *parent = &m->stack[m->depth - 1];
        if (k == I_MESSAGE_ID && parent->returned && m->dsn) {
            char ct[sizeof(parent->ctype) + 1];
            memcpy(ct, parent->ctype, parent->ctype_len);
            ct[parent->ctype_len] = '\0';
            mx_dsn_returned_id(m->dsn, v, ct);
        }
        return;
    }
    for (int k = 0; k < IL__N; k++) {
        if (!mx_mime_eq(name, inner_list_names[k]))
            continue;
        if (in->list_seen[k])
            anomaly(m, A_DUPLICATE_FIELD, off, name.len);
        in->list_seen[k] = true;
        parse_list(m, in->list[k].a, MSG_INNER_LIST, &in->list[k].n, &in->list[k].dropped, v, off);
        return;
    }
}

/* Packed form of an embedded message's fields in m->text, in output order:
 * items of a tag byte (IT_*), then for a single field a 16-bit length and
 * its bytes; for a list the count (8 bits), the number not listed (32
 * bits), and each address as length and bytes; IT_END last. */
enum { IT_END, IT_FROM, IT_TO, IT_CC, IT_SUBJECT, IT_DATE, IT_MESSAGE_ID, IT_GUESSED };

static void put_u16(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static size_t get_u16(const uint8_t *p)
{
    return (size_t)p[0] << 8 | p[1];
}

/* Stores the fields of the embedded message just read (its header block
 * ended) with the message/rfc822 part `parent`, within MSG_INNER_TOTAL. */
static void inner_commit(struct mx_message *m, struct ent *parent)
{
    struct part_rec *r = rec_of(m, parent);
    const struct inner_headers *in = &m->h->inner;
    if (!r)
        return;
    static const int single_tag[I__SINGLE] = { IT_FROM, IT_SUBJECT, IT_DATE, IT_MESSAGE_ID };
    static const int list_tag[IL__N] = { IT_TO, IT_CC };
    /* output order: from, to, cc, subject, date, message_id, then the charset guessed */
    static const int order[] = { IT_FROM, IT_TO, IT_CC, IT_SUBJECT, IT_DATE, IT_MESSAGE_ID };
    size_t need = 1;
    for (int k = 0; k < I__SINGLE; k++)
        if (in->seen[k])
            need += 3 + in->single[k].len;
    for (int k = 0; k < IL__N; k++)
        if (in->list_seen[k]) {
            need += 6;
            for (uint32_t i = 0; i < in->list[k].n; i++)
                need += 2 + in->list[k].a[i].len;
        }
    size_t gl = strlen(in->guessed);
    if (gl)
        need += 3 + gl;
    if (need > MSG_INNER_TOTAL - m->inner_total || !text_room(m, need)) {
        m->inner_not_kept++;
        return;
    }
    r->inner = (uint32_t)m->text.n + 1;
    m->inner_total += need;
    uint8_t b[6];
    for (size_t o = 0; o < MX_ARRAY_LEN(order); o++) {
        for (int k = 0; k < I__SINGLE; k++) {
            if (single_tag[k] != order[o] || !in->seen[k])
                continue;
            b[0] = (uint8_t)order[o];
            put_u16(b + 1, in->single[k].len);
            text_put(m, b, 3);
            text_put(m, in->single[k].b, in->single[k].len);
        }
        for (int k = 0; k < IL__N; k++) {
            if (list_tag[k] != order[o] || !in->list_seen[k])
                continue;
            uint32_t d = in->list[k].dropped;
            b[0] = (uint8_t)order[o];
            b[1] = (uint8_t)in->list[k].n;
            b[2] = (uint8_t)(d >> 24), b[3] = (uint8_t)(d >> 16), b[4] = (uint8_t)(d >> 8), b[5] = (uint8_t)d;
            text_put(m, b, 6);
            for (uint32_t i = 0; i < in->list[k].n; i++) {
                put_u16(b, in->list[k].a[i].len);
                text_put(m, b, 2);
                text_put(m, in->list[k].a[i].b, in->list[k].a[i].len);
            }
        }
    }
    if (gl) {
        b[0] = IT_GUESSED;
        put_u16(b + 1, gl);
        text_put(m, b, 3);
        text_put(m, in->guessed, gl);
    }
    b[0] = IT_END;
    text_put(m, b, 1);
}

/* The part's file name from parameter `param` of field body v (RFC 2183
 * §2.3, RFC 2045 §5.1), decoded: a name longer than the record keeps is
 * cut with "…" in the middle, its extension kept, and says so. */
static bool set_filename(struct part_texts *r, struct mx_slice v, const char *param, unsigned *unk)
{
    char w[MSG_SAFE_IN];
    struct mx_mime_out f = { (uint8_t *)w, 0, sizeof(w), false };
    if (!mx_mime_param(v, param, &f, unk))
        return false;
    r->filename_cut = f.len > sizeof(r->filename) || f.trunc;
    r->filename_more = f.trunc;
    r->filename_seen = (uint32_t)f.len;
    /* Past MSG_SAFE_IN the end is unknown: no extension to keep. */
    size_t n = cut_keep_ext(w, f.len, sizeof(r->filename), r->filename_cut ? "\xe2\x80\xa6" : "", !f.trunc);
    memcpy(r->filename, w, n);
    r->filename_len = n;
    return true;
}

/* ---- MIME header fields of any entity ---- */

/* The real length of the token mx_mime_token put into o (cut at o's cap):
 * o.len when it was not cut, else counted again into room for the field. */
static uint16_t token_wire(struct mx_slice v, struct mx_mime_out o)
{
    if (!o.trunc)
        return 0;
    uint8_t *big = malloc(MSG_FIELD_CAP);
    struct mx_mime_out w = { big, 0, big ? MSG_FIELD_CAP : 0, false };
    if (big)
        mx_mime_token(v, &w);
    free(big);
    size_t n = w.len > o.len ? w.len : o.len + 1; /* at least one more than kept */
    return (uint16_t)(n > UINT16_MAX ? UINT16_MAX : n);
}

static void ent_field(struct mx_message *m, struct ent *e, struct mx_slice name, struct mx_slice v, uint64_t off)
{
    /* the texts are gathered for described parts only (m->cur, committed
     * when the header block ends) */
    struct part_texts *r = e->rec >= 0 ? &m->cur : NULL;
    unsigned unk = 0;
    if (mx_mime_eq(name, "content-type")) {
        /* RFC 2045 §5.1 */
        uint8_t t[MSG_CTYPE_CAP];
        struct mx_mime_out o = { t, 0, sizeof(t), false };
        mx_mime_token(v, &o);
        if (r)
            r->wire[T_CTYPE] = token_wire(v, o);
        memcpy(e->ctype, t, o.len);
        e->ctype_len = (uint8_t)o.len;
        if (r)
            set_bytes(r->ctype, sizeof(r->ctype), mx_slice_make(t, o.len), &r->ctype_len);
        struct mx_mime_out b = { e->boundary, 0, sizeof(e->boundary), false };
        if (mx_mime_param(v, "boundary", &b, NULL))
            e->blen = (uint8_t)b.len;
        struct mx_mime_out cs = { e->charset, 0, sizeof(e->charset), false };
        if (mx_mime_param(v, "charset", &cs, NULL))
            e->charset_len = (uint8_t)cs.len;
        if (r) {
            struct mx_mime_out c = { r->charset, 0, sizeof(r->charset), false };
            if (mx_mime_param(v, "charset", &c, &unk)) {
                r->charset_len = c.len;
                if (c.trunc) { /* how long it was: read again into room for the whole field */
                    uint8_t *big = malloc(MSG_FIELD_CAP);
                    struct mx_mime_out w = { big, 0, big ? MSG_FIELD_CAP : 0, false };
                    if (big && mx_mime_param(v, "charset", &w, NULL))
                        r->wire[T_CHARSET] = (uint16_t)(w.len > c.len ? w.len : c.len + 1);
                    free(big);
                }
            }
            if (!r->filename_len)
                set_filename(r, v, "name", &unk);
        }
    } else if (mx_mime_eq(name, "content-transfer-encoding")) {
        /* RFC 2045 §6.1 */
        uint8_t t[MSG_ENCODING_CAP];
        struct mx_mime_out o = { t, 0, sizeof(t), false };
        mx_mime_token(v, &o);
        if (r)
            r->wire[T_ENCODING] = token_wire(v, o);
        struct mx_slice s = mx_slice_make(t, o.len);
        if (mx_mime_eq(s, "base64"))
            e->enc = E_BASE64;
        else if (mx_mime_eq(s, "quoted-printable"))
            e->enc = E_QP;
        else {
            e->enc = E_IDENTITY;
            if (!mx_mime_eq(s, "7bit") && !mx_mime_eq(s, "8bit") && !mx_mime_eq(s, "binary"))
                anomaly(m, A_UNKNOWN_ENCODING, off, v.len);
        }
        if (r)
            set_bytes(r->encoding, sizeof(r->encoding), s, &r->encoding_len);
    } else if (mx_mime_eq(name, "content-disposition")) {
        /* RFC 2183 §2 */
        uint8_t t[MSG_DISPOSITION_CAP];
        struct mx_mime_out o = { t, 0, sizeof(t), false };
        mx_mime_token(v, &o);
        if (r)
            r->wire[T_DISPOSITION] = token_wire(v, o);
        e->attachment = mx_mime_eq(mx_slice_make(t, o.len), "attachment");
        if (r) {
            set_bytes(r->disposition, sizeof(r->disposition), mx_slice_make(t, o.len), &r->disposition_len);
            set_filename(r, v, "filename", &unk); /* filename wins over Content-Type's name */
        }
    }
    if (unk)
        anomaly(m, A_UNKNOWN_CHARSET, off, v.len);
}

/* A complete (unfolded) header field of the innermost entity. */
static void field_done(struct mx_message *m)
{
    if (!m->field_open)
        return;
    m->field_open = false;
    struct ent *e = &m->stack[m->depth];
    const uint8_t *colon = memchr(m->b.field, ':', m->field_len);
    if (!colon)
        return;
    /* RFC 5322 §4.5.4 (obsolete syntax): whitespace before the colon */
    struct mx_slice name = trim(mx_slice_make(m->b.field, (size_t)(colon - m->b.field)));
    /* The body as unfolded (RFC 5322 §2.2.3: only the CRLFs went), without
     * the whitespace after the colon. An unstructured field (§3.2.5:
     * Subject, Comments) keeps the rest as sent, trailing whitespace
     * included; the others lose their trailing whitespace. */
    struct mx_slice body = trim_left(mx_slice_make(colon + 1, m->field_len - (size_t)(colon + 1 - m->b.field)));
    bool unstructured = mx_mime_eq(name, "subject") || mx_mime_eq(name, "comments");
    struct mx_slice v = unstructured ? body : trim(body);
    if (++e->fields > MSG_MAX_FIELDS) {
        if (e->fields == MSG_MAX_FIELDS + 1)
            anomaly(m, A_TOO_MANY_FIELDS, m->field_off, m->field_len);
        return;
    }
    ent_field(m, e, name, v, m->field_off);
    if (m->depth == 0)
        top_field(m, name, v, m->field_off);
    else if (m->stack[m->depth - 1].kind == K_MESSAGE)
        inner_field(m, name, v, m->field_off); /* an embedded message's own header block */
}

/* Appends a (piece of a) header line to the field being unfolded (RFC 5322 §2.2.3). */
static void field_add(struct mx_message *m, struct mx_slice s)
{
    size_t room = sizeof(m->b.field) - m->field_len;
    if (s.len > room) {
        if (!m->field_trunc)
            anomaly(m, A_LONG_HEADER, m->field_off, m->field_len + s.len);
        m->field_trunc = true;
        s.len = room;
    }
    memcpy(m->b.field + m->field_len, s.ptr, s.len);
    m->field_len += s.len;
}

/* ---- the entity stack ---- */

static void path_child(const struct ent *parent, uint32_t idx, char *out)
{
    /* Children of the top multipart are "1", "2"; deeper "1.2"; the body of a
     * message/rfc822 part P is entity "P.0", whose children are "P.1"... */
    const char *p = parent->path;
    size_t n = strlen(p);
    if (!strcmp(p, "0"))
        n = 0;
    else if (n >= 2 && !strcmp(p + n - 2, ".0"))
        n -= 2;
    if (n)
        snprintf(out, MSG_PATH_CAP, "%.*s.%u", (int)n, p, idx);
    else
        snprintf(out, MSG_PATH_CAP, "%u", idx);
}

static void push(struct mx_message *m, const char *path, bool default_rfc822)
{
    struct ent *e = &m->stack[++m->depth];
    memset(e, 0, sizeof(*e));
    snprintf(e->path, sizeof(e->path), "%s", path);
    e->st = S_HEADERS;
    e->default_rfc822 = default_rfc822;
    e->rec = -1;
    m->parts_total++;
    if (m->parts.n > MSG_MAX_PARTS) {
        if (m->parts_total == MSG_MAX_PARTS + 2)
            anomaly(m, A_TOO_MANY_PARTS, m->cur_off, 0);
        return;
    }
    if (!mx_buf_push(&m->parts, NULL)) {
        failed(m); /* out of memory */
        return;
    }
    e->rec = (int32_t)(m->parts.n - 1);
    memset(&m->cur, 0, sizeof(m->cur));
}

/* The header block of entity `e` (the last part described so far) ended:
 * its texts go into m->text. Out of memory, it goes undescribed. */
static void commit_texts(struct mx_message *m, struct ent *e)
{
    struct part_rec *r = rec_of(m, e);
    if (!r)
        return;
    const struct part_texts *c = &m->cur;
    size_t len[T__N] = { strlen(e->path), c->ctype_len,       c->charset_len,
                         c->encoding_len, c->disposition_len, c->filename_len };
    const void *src[T__N] = { e->path, c->ctype, c->charset, c->encoding, c->disposition, c->filename };
    size_t total = 0;
    for (int k = 0; k < T__N; k++)
        total += len[k];
    if (!text_room(m, total)) {
        /* the record is the last one: take it back */
        m->parts.n--;
        e->rec = -1;
        return;
    }
    r->text = (uint32_t)m->text.n;
    r->filename_cut = c->filename_cut;
    r->filename_more = c->filename_more;
    r->filename_seen = c->filename_seen;
    for (int k = 0; k < T__N; k++) {
        r->len[k] = (uint16_t)len[k];
        r->wire[k] = c->wire[k] > len[k] ? c->wire[k] : 0;
        text_put(m, src[k], len[k]);
    }
}

/* Entity `e` ends at message offset `end`: a container's size is its body's
 * bytes as carried (RFC 2045 §2.4), not decoded. */
static void ent_close(struct mx_message *m, struct ent *e, uint64_t end)
{
    if (e->closed)
        return;
    e->closed = true;
    struct part_rec *r = rec_of(m, e);
    if (r && r->container)
        r->size = end > e->body_pos ? end - e->body_pos : 0;
}

/* Whether entity `e`, whose header block just ended, is a part of a
 * delivery-status report (RFC 6522 §3): the message/delivery-status part
 * (RFC 3464 §2; RFC 6533 §6 the global one), or, after it and beside it, the
 * returned message or its header block. Only a report that is not inside
 * an embedded message is read (a forwarded bounce is not this message's),
 * and only its first delivery-status part. */
static void dsn_part(struct mx_message *m, struct ent *e, struct mx_slice t, bool rfc822)
{
    for (int k = 0; k < m->depth; k++)
        if (m->stack[k].kind == K_MESSAGE)
            return;
    bool global = mx_mime_eq(t, "message/global-delivery-status");
    if (global || mx_mime_eq(t, "message/delivery-status")) {
        if (!m->dsn)
            m->dsn = mx_dsn_new();
        if (!m->dsn) {
            failed(m);
            return;
        }
        mx_dsn_begin(m->dsn, false, global, e->path);
        e->dsn = 1;
        m->dsn_depth = m->depth;
        return;
    }
    if (!m->dsn || m->depth != m->dsn_depth || mx_dsn_has_returned(m->dsn))
        return;
    global = mx_mime_eq(t, "message/global-headers");
    if (global || mx_mime_eq(t, "text/rfc822-headers")) {
        mx_dsn_begin(m->dsn, true, global, e->path);
        e->dsn = 2;
    } else if (rfc822 && e->enc == E_IDENTITY)
        e->returned = true;
}

/* The header block of the innermost entity ended; its body starts at
 * message offset `body_pos`. What is its body? */
static void headers_end(struct mx_message *m, uint64_t body_pos)
{
    field_done(m);
    struct ent *e = &m->stack[m->depth];
    uint8_t tb[MSG_CTYPE_CAP];
    size_t tl = e->ctype_len;
    memcpy(tb, e->ctype, tl);
    if (!tl) {
        /* RFC 2045 §5.2 default, or RFC 2046 §5.1.5 in a digest */
        const char *def = e->default_rfc822 ? "message/rfc822" : "text/plain";
        tl = strlen(def);
        memcpy(tb, def, tl);
        memcpy(m->cur.ctype, def, tl);
        m->cur.ctype_len = tl;
    }
    commit_texts(m, e);
    struct mx_slice t = mx_slice_make(tb, tl);
    bool multi = tl > 10 && !memcmp(tb, "multipart/", 10);
    /* Raw 8-bit header text is read in the charset its entity declares
     * (an embedded message's own); a multipart message's in that of its
     * first text part that declares one, else Windows-1252 at the end. */
    struct mx_slice cs = mx_slice_make(e->charset, e->charset_len);
    bool inner_block = m->depth > 0 && m->stack[m->depth - 1].kind == K_MESSAGE;
    if (inner_block)
        resolve_pending(m, true, cs);
    else if (m->depth == 0 ? !multi || cs.len : tl >= 5 && !memcmp(tb, "text/", 5) && cs.len)
        resolve_pending(m, false, cs);
    if (inner_block)
        inner_commit(m, &m->stack[m->depth - 1]);
    e->body_pos = body_pos;
    struct part_rec *r = rec_of(m, e);
    bool rfc822 = mx_mime_eq(t, "message/rfc822") || mx_mime_eq(t, "message/global");
    e->text = tl >= 5 && !memcmp(tb, "text/", 5);
    if (multi && !e->blen) {
        anomaly(m, A_MISSING_BOUNDARY, m->cur_off, 0);
        multi = false;
    }
    dsn_part(m, e, t, rfc822);
    if ((multi || (rfc822 && e->enc == E_IDENTITY)) && m->depth >= MSG_MAX_DEPTH) {
        anomaly(m, A_DEPTH_EXCEEDED, m->cur_off, 0);
        multi = rfc822 = false;
    }
    if (multi) {
        e->kind = K_MULTI;
        e->st = S_PREAMBLE;
        e->digest = mx_mime_eq(t, "multipart/digest");
        if (r)
            r->container = true;
        return;
    }
    if (rfc822 && e->enc == E_IDENTITY) {
        /* RFC 2046 §5.2.1: the body is a whole message, parsed in turn */
        e->kind = K_MESSAGE;
        e->st = S_BODY;
        if (r)
            r->container = true;
        char p[MSG_PATH_CAP];
        snprintf(p, sizeof(p), "%.*s.0", MSG_PATH_CAP - 3, e->path);
        push(m, p, false);
        memset(&m->h->inner, 0, sizeof(m->h->inner)); /* its header block comes next */
        return;
    }
    e->kind = K_LEAF;
    e->st = S_BODY;
    if (r)
        r->leaf = true;
    leaf_start(m, e);
}

/* Ends the innermost entity. `by_boundary`: a boundary of an outer multipart
 * ends it (the last line end belongs to that boundary); else the message ends. */
static void pop(struct mx_message *m, bool by_boundary)
{
    /* where it ends: before the line end that precedes the boundary line (RFC 2046 §5.1.1) */
    uint64_t end = m->size;
    if (by_boundary)
        end = m->cur_pos - (m->prev_eol < m->cur_pos ? m->prev_eol : m->cur_pos);
    /* A header block still open ends here; a message/rfc822 body that this
     * pushes is ended too, with its empty header block. */
    for (;;) {
        int d = m->depth;
        if (m->stack[d].st != S_HEADERS)
            break;
        headers_end(m, end);
        if (m->depth == d)
            break;
    }
    struct ent *e = &m->stack[m->depth];
    if (e->kind == K_LEAF)
        leaf_end(m, e, !by_boundary);
    else if (e->kind == K_MULTI && e->st != S_EPILOGUE && !m->env.fragment && !m->cut)
        anomaly(m, A_MISSING_BOUNDARY, m->cur_off, 0); /* a fragment or a cut message stops short by nature */
    ent_close(m, e, end);
    if (m->depth > 0)
        m->depth--;
    else
        e->st = S_EPILOGUE; /* the message is over: nothing more is parsed */
}

/* Whether the line is a delimiter of the multipart `e` (RFC 2046 §5.1.1):
 * "--" boundary, then "--" for the close delimiter, then transport padding. */
static int boundary_match(const struct ent *e, struct mx_slice s)
{
    if (s.len < (size_t)e->blen + 2 || memcmp(s.ptr + 2, e->boundary, e->blen))
        return 0;
    size_t i = (size_t)e->blen + 2;
    int kind = 1;
    if (i + 1 < s.len + 0 && s.ptr[i] == '-' && s.ptr[i + 1] == '-') {
        kind = 2;
        i += 2;
    }
    while (i < s.len && (is_wsp(s.ptr[i]) || s.ptr[i] == '\r'))
        i++;
    return i == s.len ? kind : 0;
}

/* A boundary line of the multipart at stack index k: ends what is inside it. */
static void on_boundary(struct mx_message *m, int k, int kind)
{
    while (m->depth > k)
        pop(m, true);
    struct ent *e = &m->stack[k];
    if (kind == 2) {
        e->st = S_EPILOGUE;
        return;
    }
    e->st = S_PARTS;
    char p[MSG_PATH_CAP];
    path_child(e, ++e->children, p);
    push(m, p, e->digest);
}

/* ---- lines ---- */

/* Whether a header line starts with a field name and a colon (RFC 5322
 * §2.2: printable characters but ':'; §4.5.4 whitespace before the colon). */
static bool field_name_ok(struct mx_slice s)
{
    if (s.len > MSG_LINE_BUF - 1)
        s.len = MSG_LINE_BUF - 1; /* what the first piece of a long line holds, however it arrived */
    return mx_mime_field_start(s);
}

/* A line, or a piece of a long one: `first` when it starts the line, `eol`
 * the line end after it (empty when the line goes on in a next piece or the
 * message ends without one). */
static void on_line(struct mx_message *m, struct mx_slice s, struct mx_slice eol, bool first)
{
    struct ent *top = &m->stack[m->depth];
    if (top->st == S_EPILOGUE && m->depth == 0 && top->kind != K_MULTI)
        return;
    /* A boundary of any open multipart, innermost first */
    if (first && (eol.len || m->at_end) && s.len >= 2 && s.len < MSG_LINE_BUF - 1 && s.ptr[0] == '-' &&
        s.ptr[1] == '-') {
        for (int k = m->depth; k >= 0; k--) {
            if (m->stack[k].kind != K_MULTI)
                continue;
            int kind = boundary_match(&m->stack[k], s);
            if (kind) {
                on_boundary(m, k, kind);
                return;
            }
        }
    }
    switch (top->st) {
    case S_HEADERS:
        if (first && s.len == 0 && eol.len) {
            headers_end(m, m->cur_pos + eol.len); /* RFC 5322 §2.1: the empty line ends the header block */
            return;
        }
        if (!first) {
            if (m->field_open)
                field_add(m, s); /* the rest of a long field line */
            return;
        }
        if (s.len == 0)
            return; /* an empty last line without line end */
        if (is_wsp(s.ptr[0])) {
            if (m->field_open)
                field_add(m, s); /* folding: the line end goes, the whitespace stays */
            return;
        }
        field_done(m);
        m->field_len = 0;
        m->field_trunc = false;
        m->field_off = m->cur_off;
        if (!field_name_ok(s)) {
            /* Not a field: the header block ended without its empty line, and
             * this line is the body's first (as Postfix and Python's email
             * read it). A message or part with no field at all is simply
             * headerless; after fields, it is an anomaly. */
            if (top->fields)
                anomaly(m, A_HEADER_WITHOUT_COLON, m->cur_off, s.len);
            headers_end(m, m->cur_pos);
            on_line(m, s, eol, first);
            return;
        }
        m->field_open = true;
        field_add(m, s);
        return;
    case S_BODY:
        if (top->kind == K_LEAF) {
            bool soft = leaf_in(m, s, eol.len > 0);
            if (eol.len && !soft)
                leaf_eol(m, eol);
        }
        return;
    default:
        return; /* preamble, epilogue: ignored (RFC 2046 §5.1.1) */
    }
}

/* Hands one line (or piece) to the parser, counting its length against the cap. */
static void line_out(struct mx_message *m, struct mx_slice s, struct mx_slice eol)
{
    bool first = !m->line_cont;
    if (first)
        m->line_total = 0;
    m->line_total += s.len;
    if (m->line_total > MSG_LINE_MAX && m->line_total - s.len <= MSG_LINE_MAX) {
        /* its frames: where it starts, where it crosses the cap */
        if (m->line_first.frame && m->line_cross && m->env.ctx && m->anomalies[A_LONG_LINE]++ < MSG_ANOMALY_EMIT)
            mx_ctx_anomaly_def_frames(m->env.ctx, m->env.dir, &message_anomalies[A_LONG_LINE], m->line_first.frame,
                                      m->line_cross, m->line_first.ts);
        else if (!m->line_first.frame || !m->line_cross)
            anomaly(m, A_LONG_LINE, m->cur_off, m->line_total);
    }
    on_line(m, s, eol, first);
    m->line_cont = eol.len == 0;
    if (eol.len)
        m->prev_eol = (uint8_t)eol.len;
}

static void split_eol(struct mx_slice *s, struct mx_slice *eol, const uint8_t *lf)
{
    /* CRLF normally; a bare LF tolerated */
    if (s->len && s->ptr[s->len - 1] == '\r') {
        s->len--;
        *eol = mx_slice_make(lf - 1, 2);
    } else
        *eol = mx_slice_make(lf, 1);
}

/* ---- the interface ---- */

struct mx_message *mx_message_new(const struct mx_message_env *env)
{
    struct mx_message *m = malloc(sizeof(*m));
    if (!m)
        return NULL;
    memset(m, 0, offsetof(struct mx_message, b));
    m->env = *env;
    mx_buf_init(&m->parts, sizeof(struct part_rec), 8, MSG_MAX_PARTS + 1);
    mx_buf_init(&m->text, 1, 4096, MSG_TEXT_MAX);
    mx_buf_init(&m->pend, sizeof(struct pend), 2, MSG_PEND_MAX);
    /* the optional context is copied (capped): the caller's buffers need not outlive the call */
    size_t n = env->mailbox.ptr && env->mailbox.len ? env->mailbox.len : 0;
    n = n < sizeof(m->mailbox) ? n : sizeof(m->mailbox);
    if (n)
        memcpy(m->mailbox, env->mailbox.ptr, n);
    m->env.mailbox = mx_slice_make(m->mailbox, n);
    m->env.mailbox_len = env->mailbox_len > env->mailbox.len ? env->mailbox_len : env->mailbox.len;
    n = env->section.ptr && env->section.len ? env->section.len : 0;
    n = n < sizeof(m->section) ? n : sizeof(m->section);
    if (n)
        memcpy(m->section, env->section.ptr, n);
    m->env.section = mx_slice_make(m->section, n);
    m->eml.fd = -1;
    m->leaf_file.fd = -1;
    m->sha = EVP_MD_CTX_new();
    m->h_md5 = EVP_MD_CTX_new();
    m->h_sha1 = EVP_MD_CTX_new();
    m->h_sha256 = EVP_MD_CTX_new();
    m->h_uu = EVP_MD_CTX_new();
    m->body_sha = EVP_MD_CTX_new();
    m->h = headers_new();
    m->hashes = env->ctx ? mx_ctx_flow(env->ctx)->hashes : env->hashes;
    if (!m->sha || !m->h_md5 || !m->h_sha1 || !m->h_sha256 || !m->h_uu || !m->body_sha || !m->h ||
        ((m->hashes & MX_HASH_MESSAGE) && EVP_DigestInit_ex(m->sha, mx_md(MX_MD_SHA256), NULL) != 1) ||
        ((m->hashes & MX_HASH_BODY) && EVP_DigestInit_ex(m->body_sha, mx_md(MX_MD_SHA256), NULL) != 1)) {
        mx_message_free(m);
        return NULL;
    }
    /* the root entity: the message itself */
    m->depth = -1;
    push(m, "0", false);
    if (env->ctx) /* where the message began: its frames if no byte of it ever comes */
        m->first = m->last = mx_ctx_frame_at(env->ctx, env->dir, mx_ctx_offset(env->ctx, env->dir));
    return m;
}

/* The message's file: DIR/<flow>-<n>.eml, n counting the flow's messages. */
static void eml_open(struct mx_message *m, uint64_t off)
{
    m->x = mx_ctx_extract(m->env.ctx);
    if (!m->x)
        return;
    m->eml_n = mx_ctx_extract_next(m->env.ctx);
    char stem[48];
    snprintf(stem, sizeof(stem), "%" PRIu64 "-%u", mx_ctx_flow_id(m->env.ctx), m->eml_n);
    xfile_open(m, &m->eml, stem, ".eml", m->eml_name, sizeof(m->eml_name), off);
}

/* Whether the body's digest is the root part's SHA-256: a single-part
 * message whose body is carried as it is (no transfer encoding) and starts
 * where the body does. Its leaf then gets every body byte unchanged unless
 * bytes go missing, and a message with missing bytes has no body_sha256;
 * so the body is hashed once (issue 28). */
static bool body_shares_leaf(const struct mx_message *m)
{
    const struct ent *e = &m->stack[0];
    return (m->hashes & MX_HASH_SHA256) && m->depth == 0 && m->leaf_open && e->kind == K_LEAF && e->st == S_BODY &&
           e->enc == E_IDENTITY && e->rec >= 0 && e->body_pos == m->body_start && !m->missing;
}

static void feed_lines(struct mx_message *m, const uint8_t *p, size_t n, uint64_t stream_off);

void mx_message_feed(struct mx_message *m, struct mx_slice bytes, uint64_t stream_off)
{
    if (!m || m->ended || !bytes.len)
        return;
    if (m->hashes & MX_HASH_MESSAGE)
        EVP_DigestUpdate(m->sha, bytes.ptr, bytes.len);
    size_t body_from = body_scan(m, bytes.ptr, bytes.len, m->size);
    if (m->env.ctx) {
        if (!m->have_first) {
            m->first = mx_ctx_frame_at(m->env.ctx, m->env.dir, stream_off);
            m->have_first = true;
            eml_open(m, stream_off);
        }
        m->last = mx_ctx_frame_at(m->env.ctx, m->env.dir, stream_off + bytes.len - 1);
    }
    if (m->eml.fd >= 0)
        xfile_write(m, &m->eml, bytes.ptr, bytes.len, stream_off, true);
    feed_lines(m, bytes.ptr, bytes.len, stream_off);
    /* The body's digest: once the parser has read the header block, which
     * tells whether the root part's digest is the same. */
    if (body_from < bytes.len && (m->hashes & MX_HASH_BODY)) {
        if (m->body_mode == BODY_UNDECIDED)
            m->body_mode = body_shares_leaf(m) ? BODY_SHARED : BODY_OWN;
        if (m->body_mode == BODY_OWN)
            EVP_DigestUpdate(m->body_sha, bytes.ptr + body_from, bytes.len - body_from);
    }
}

/* The bytes as lines for the parser (RFC 5322 §2.1: CRLF, a bare LF tolerated). */
static void feed_lines(struct mx_message *m, const uint8_t *p, size_t n, uint64_t stream_off)
{
    /* message offset = stream offset + delta, within this call (modular) */
    uint64_t delta = m->size - stream_off;
    m->size += n;
    uint64_t off = stream_off;
    while (n) {
        const uint8_t *lf = memchr(p, '\n', n);
        size_t seg = lf ? (size_t)(lf - p) : n;
        if (m->skip_line) {
            if (!lf)
                return;
            m->skip_line = false;
            p += seg + 1, n -= seg + 1, off += seg + 1;
            continue;
        }
        if (!m->line_len) {
            m->cur_off = off;
            m->cur_pos = off + delta;
        }
        if (m->env.ctx) {
            /* The line's first frame, and the one carrying its byte past the
             * cap: noted now, while the host still knows these bytes' frames. */
            size_t idx = (m->line_cont ? m->line_total : 0) + m->line_len; /* p[0]'s place in the line */
            if (!idx) {
                m->line_first = mx_ctx_frame_at(m->env.ctx, m->env.dir, off);
                m->line_cross = 0;
            }
            if (idx <= MSG_LINE_MAX && MSG_LINE_MAX < idx + seg)
                m->line_cross = mx_ctx_frame_at(m->env.ctx, m->env.dir, off + (MSG_LINE_MAX - idx)).frame;
        }
        if (lf && !m->line_len) {
            /* the whole line is here: no copy */
            struct mx_slice s = mx_slice_make(p, seg), eol;
            split_eol(&s, &eol, lf);
            line_out(m, s, eol);
        } else if (lf && m->line_len + seg <= sizeof(m->b.line)) {
            memcpy(m->b.line + m->line_len, p, seg);
            m->line_len += seg;
            struct mx_slice s = mx_slice_make(m->b.line, m->line_len), eol;
            uint8_t crlf[2] = { '\r', '\n' };
            if (s.len && s.ptr[s.len - 1] == '\r') {
                s.len--;
                eol = mx_slice_make(crlf, 2);
            } else
                eol = mx_slice_make(crlf + 1, 1);
            line_out(m, s, eol);
            m->line_len = 0;
        } else if (lf) {
            /* an over-long line's end: the held bytes topped up to a full
             * piece (so the first piece never depends on segmentation), then
             * the rest */
            size_t top = sizeof(m->b.line) - m->line_len;
            memcpy(m->b.line + m->line_len, p, top);
            line_out(m, mx_slice_make(m->b.line, sizeof(m->b.line)), mx_slice_make(NULL, 0));
            m->line_len = 0;
            m->cur_off = off + top;
            m->cur_pos = m->cur_off + delta;
            struct mx_slice s = mx_slice_make(p + top, seg - top), eol;
            split_eol(&s, &eol, lf);
            line_out(m, s, eol);
        } else {
            /* no line end yet: hold it, passing on full pieces (a CR stays held) */
            size_t room = sizeof(m->b.line) - m->line_len;
            size_t take = seg < room ? seg : room;
            memcpy(m->b.line + m->line_len, p, take);
            m->line_len += take;
            if (m->line_len == sizeof(m->b.line)) {
                size_t piece = m->line_len;
                if (m->b.line[piece - 1] == '\r')
                    piece--;
                line_out(m, mx_slice_make(m->b.line, piece), mx_slice_make(NULL, 0));
                memmove(m->b.line, m->b.line + piece, m->line_len - piece);
                m->line_len -= piece;
                m->cur_off = off + take - m->line_len;
                m->cur_pos = m->cur_off + delta;
            }
            p += take, n -= take, off += take;
            continue;
        }
        p += seg + 1, n -= seg + 1, off += seg + 1;
    }
}

void mx_message_gap(struct mx_message *m, uint64_t len)
{
    if (!m || m->ended)
        return;
    m->missing += len;
    /* The line under way is lost: drop it and what follows up to the next LF. */
    m->line_len = 0;
    m->line_cont = false;
    m->skip_line = true;
    m->pend_len = 0;
    m->prev_eol = 0;
    if (m->dsn)
        mx_dsn_gap(m->dsn);
    for (int k = 0; k <= m->depth; k++) {
        struct part_rec *r = rec_of(m, &m->stack[k]);
        if (r)
            r->partial = true;
    }
}

/* message.h: the rest of the message will never come. */
void mx_message_cut(struct mx_message *m)
{
    if (!m || m->ended)
        return;
    m->cut = true;
    /* the entities still open are incomplete */
    for (int k = 0; k <= m->depth; k++) {
        struct part_rec *r = rec_of(m, &m->stack[k]);
        if (r)
            r->partial = true;
    }
}

/* A kept text; cut_keys: its "_len" and "_truncated" siblings (NULL in an array). */
static void emit_kept(struct mx_event *ev, const char *key, const char *const *cut_keys, const struct kept *k)
{
    mx_ev_wire(ev, key, mx_slice_make(k->b, k->len));
    if (cut_keys)
        mx_ev_cut3(ev, cut_keys[0], cut_keys[1], k->len, k->wire);
}

static void emit_list(struct mx_event *ev, const struct headers *h, int l, const char *dropped_key)
{
    if (!h->list_seen[l])
        return;
    mx_ev_arr(ev, list_keys[l]);
    for (uint32_t i = 0; i < h->list[l].n; i++)
        mx_ev_wire(ev, NULL, mx_slice_make(h->list[l].a[i].b, h->list[l].a[i].len));
    mx_ev_end(ev);
    if (h->list[l].dropped)
        mx_ev_uint(ev, dropped_key, h->list[l].dropped);
}

static void emit_single(struct mx_event *ev, const struct headers *h, int k)
{
    if (h->seen[k])
        emit_kept(ev, single_keys[k], single_cut_keys[k], &h->single[k]);
}

static void emit_headers(struct mx_message *m, struct mx_event *ev)
{
    struct headers *h = m->h;
    mx_ev_obj(ev, "headers");
    emit_single(ev, h, H_FROM);
    emit_single(ev, h, H_SENDER);
    emit_list(ev, h, L_TO, "to_not_listed");
    emit_list(ev, h, L_CC, "cc_not_listed");
    emit_list(ev, h, L_BCC, "bcc_not_listed");
    emit_list(ev, h, L_REPLY_TO, "reply_to_not_listed");
    for (int k = H_SUBJECT; k < H__SINGLE; k++)
        if (k != H_X_MAILER && k != H_USER_AGENT && k != H_X_ORIGINATING_IP && k != H_RETURN_PATH)
            emit_single(ev, h, k);
    if (h->n_hops) {
        mx_ev_arr(ev, "received");
        for (uint32_t i = 0; i < h->n_hops; i++) {
            mx_ev_obj(ev, NULL);
            for (int k = 0; k < HOP__N; k++)
                if (h->hops[i].len[k]) {
                    mx_ev_wire(ev, hop_keys[k], mx_slice_make(h->hops[i].b[k], h->hops[i].len[k]));
                    mx_ev_cut3(ev, hop_cut_keys[k][0], hop_cut_keys[k][1], h->hops[i].len[k], h->hops[i].wire[k]);
                }
            mx_ev_end(ev);
        }
        mx_ev_end(ev);
        if (h->hops_dropped)
            mx_ev_uint(ev, "received_not_listed", h->hops_dropped);
    }
    emit_single(ev, h, H_X_MAILER);
    emit_single(ev, h, H_USER_AGENT);
    emit_single(ev, h, H_X_ORIGINATING_IP);
    emit_single(ev, h, H_RETURN_PATH);
    if (h->n_authres) {
        mx_ev_arr(ev, "authentication_results");
        for (uint32_t i = 0; i < h->n_authres; i++)
            emit_kept(ev, NULL, NULL, &h->authres[i]);
        mx_ev_end(ev);
    }
    if (h->n_dkim) {
        mx_ev_arr(ev, "dkim");
        for (uint32_t i = 0; i < h->n_dkim; i++) {
            mx_ev_obj(ev, NULL);
            mx_ev_wire(ev, "d", mx_slice_make(h->dkim[i].d, h->dkim[i].dl));
            mx_ev_wire(ev, "s", mx_slice_make(h->dkim[i].s, h->dkim[i].sl));
            mx_ev_end(ev);
        }
        mx_ev_end(ev);
    }
    if (h->guessed[0])
        mx_ev_str(ev, "charset_guessed", h->guessed);
    mx_ev_end(ev);
}

static bool is_attachment(const struct mx_message *m, const struct part_rec *r)
{
    return r->leaf && (r->len[T_FILENAME] || mx_mime_eq(rec_text(m, r, T_DISPOSITION), "attachment"));
}

/* The fields of the embedded message of part r, as inner_commit packed them. */
static void emit_inner(const struct mx_message *m, const struct part_rec *r, struct mx_event *ev)
{
    const uint8_t *p = (const uint8_t *)m->text.p + (r->inner - 1);
    mx_ev_obj(ev, "message");
    for (;;) {
        int tag = *p++;
        if (tag == IT_END)
            break;
        if (tag == IT_TO || tag == IT_CC) {
            int k = tag == IT_TO ? IL_TO : IL_CC;
            unsigned n = p[0];
            uint32_t dropped = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
            p += 5;
            mx_ev_arr(ev, inner_list_keys[k]);
            for (unsigned i = 0; i < n; i++) {
                size_t len = get_u16(p);
                mx_ev_wire(ev, NULL, mx_slice_make(p + 2, len));
                p += 2 + len;
            }
            mx_ev_end(ev);
            if (dropped)
                mx_ev_uint(ev, inner_dropped_keys[k], dropped);
            continue;
        }
        int k = tag == IT_FROM ? I_FROM : tag == IT_SUBJECT ? I_SUBJECT : tag == IT_DATE ? I_DATE : I_MESSAGE_ID;
        size_t len = get_u16(p);
        mx_ev_wire(ev, tag == IT_GUESSED ? "charset_guessed" : inner_keys[k], mx_slice_make(p + 2, len));
        p += 2 + len;
    }
    mx_ev_end(ev);
}

static void emit_parts(struct mx_message *m, struct mx_event *ev)
{
    char hx[65];
    mx_ev_arr(ev, "parts");
    for (uint32_t i = 0; i < m->parts.n; i++) {
        const struct part_rec *r = part_at(m, i);
        mx_ev_obj(ev, NULL);
        mx_ev_wire(ev, "path", rec_text(m, r, T_PATH));
        mx_ev_wire(ev, "content_type", rec_text(m, r, T_CTYPE));
        mx_ev_cut3(ev, "content_type_len", "content_type_truncated", r->len[T_CTYPE], r->wire[T_CTYPE]);
        static const char *const opt_keys[] = { "charset", "encoding", "disposition", "filename" };
        static const char *const opt_cut[][2] = { CUTK("charset"), CUTK("encoding"), CUTK("disposition") };
        for (int k = T_CHARSET; k <= T_FILENAME; k++)
            if (r->len[k]) {
                mx_ev_wire(ev, opt_keys[k - T_CHARSET], rec_text(m, r, k));
                if (k != T_FILENAME) /* the file name's come below */
                    mx_ev_cut3(ev, opt_cut[k - T_CHARSET][0], opt_cut[k - T_CHARSET][1], r->len[k], r->wire[k]);
            }
        if (r->filename_cut) {
            /* the name was longer than the record keeps: how long, or at least */
            mx_ev_uint(ev, r->filename_more ? "filename_len_min" : "filename_len", r->filename_seen);
            mx_ev_bool(ev, "filename_truncated", true);
        }
        if (r->leaf && r->hashed) {
            mx_ev_uint(ev, "size", r->size);
            if (m->hashes & MX_HASH_MD5) {
                hex(r->md5, 16, hx);
                mx_ev_str(ev, "md5", hx);
            }
            if (m->hashes & MX_HASH_SHA1) {
                hex(r->sha1, 20, hx);
                mx_ev_str(ev, "sha1", hx);
            }
            if (m->hashes & MX_HASH_SHA256) {
                hex(r->sha256, 32, hx);
                mx_ev_str(ev, "sha256", hx);
            }
            if (r->detected[0]) {
                mx_ev_str(ev, "detected_type", r->detected);
                if (r->type_mismatch)
                    mx_ev_bool(ev, "type_mismatch", true);
            }
        } else if (r->container)
            mx_ev_uint(ev, "size", r->size); /* the body as carried: no hashes (the message has its SHA-256) */
        if (r->inner)
            emit_inner(m, r, ev);
        if (r->bad_base64 || r->bad_qp) {
            mx_ev_obj(ev, "errors");
            if (r->bad_base64)
                mx_ev_uint(ev, "bad_base64", r->bad_base64);
            if (r->bad_qp)
                mx_ev_uint(ev, "bad_qp", r->bad_qp);
            mx_ev_end(ev);
        }
        bool any_uu = false;
        for (uint32_t u = 0; u < m->n_uu; u++) {
            const struct uu_rec *ur = &m->uus[u];
            if (ur->part != (int32_t)i)
                continue;
            if (!any_uu)
                mx_ev_arr(ev, "uuencoded");
            any_uu = true;
            mx_ev_obj(ev, NULL);
            mx_ev_wire(ev, "name", mx_slice_make(ur->name, ur->name_len));
            char mode[8];
            snprintf(mode, sizeof(mode), "%03o", ur->mode & 07777);
            mx_ev_str(ev, "mode", mode);
            mx_ev_uint(ev, "size", ur->size);
            if (ur->complete && (m->hashes & MX_HASH_SHA256)) {
                hex(ur->sha256, 32, hx);
                mx_ev_str(ev, "sha256", hx);
            }
            mx_ev_bool(ev, "complete", ur->complete);
            mx_ev_end(ev);
        }
        if (any_uu)
            mx_ev_end(ev);
        if (r->partial)
            mx_ev_bool(ev, "partial", true);
        if (r->extracted && m->x)
            emit_extracted(ev, m->x, r->extracted,
                           &(struct xfile){ .fd = -1, .written = r->extracted_size, .cut = r->extracted_cut });
        mx_ev_end(ev);
    }
    mx_ev_end(ev);
}

static void emit_record(struct mx_message *m)
{
    struct mx_dissect_ctx *ctx = m->env.ctx;
    char hx[65];
    struct mx_event *ev = mx_ctx_begin(ctx, "message", m->first.ts);
    mx_ev_dir(ev, m->env.dir);
    mx_ev_str(ev, "carried_by", m->env.source ? m->env.source : "unknown");
    /* where a POP3 or IMAP message came from, when the session said */
    if (m->env.number)
        mx_ev_uint(ev, "number", m->env.number);
    if (m->env.uid)
        mx_ev_uint(ev, "uid", m->env.uid);
    if (m->env.mailbox.len)
        mx_ev_wire_cut(ev, "mailbox", m->env.mailbox, m->env.mailbox_len);
    if (m->env.section.len)
        mx_ev_wire(ev, "section", m->env.section);
    if (m->env.fragment)
        mx_ev_bool(ev, "fragment", true);
    mx_ev_uint(ev, "size", m->size);
    if (m->hashes & MX_HASH_MESSAGE) {
        hex(m->digest, 32, hx);
        mx_ev_str(ev, "sha256", hx);
    }
    /* the body's digest, for linking the hops of one message (a whole
     * message with a header block and a body; not a fragment) */
    if ((m->hashes & MX_HASH_BODY) && m->body_at == BODY_IN && !m->missing && !m->cut && !m->env.fragment) {
        hex(m->body_digest, 32, hx);
        mx_ev_str(ev, "body_sha256", hx);
    }
    mx_ev_bool(ev, "partial", m->missing > 0 || m->cut);
    if (m->missing)
        mx_ev_uint(ev, "missing_bytes", m->missing);
    if (m->cut)
        mx_ev_bool(ev, "cut", true);
    emit_headers(m, ev);
    emit_parts(m, ev);
    if (m->parts_total > m->parts.n)
        mx_ev_uint(ev, "parts_not_described", m->parts_total - m->parts.n);
    if (m->inner_not_kept)
        mx_ev_uint(ev, "embedded_headers_not_kept", m->inner_not_kept);
    uint32_t n_att = 0, n_leaf = 0;
    for (uint32_t i = 0; i < m->parts.n; i++) {
        n_leaf += part_at(m, i)->leaf;
        n_att += is_attachment(m, part_at(m, i));
    }
    mx_ev_uint(ev, "attachments", n_att);
    mx_dsn_emit(m->dsn, ev);
    bool any = false;
    for (int a = 0; a < A__COUNT; a++) {
        if (!m->anomalies[a])
            continue;
        if (!any)
            mx_ev_obj(ev, "anomalies");
        any = true;
        mx_ev_uint(ev, message_anomalies[a].name, m->anomalies[a]);
    }
    if (any)
        mx_ev_end(ev);
    if (m->eml_name[0] && m->x)
        emit_extracted(ev, m->x, m->eml_name, &m->eml);
    if (m->extract_failed)
        mx_ev_bool(ev, "extract_failed", true);
    if (m->extract_skipped)
        mx_ev_bool(ev, "extract_skipped", true);
    mx_ev_frames(ev, m->first.frame, m->last.frame);
    /* stamped at its first byte (ts), it ended here */
    mx_ev_time(ev, "last_ts", m->last.ts);
    if (m->missing || m->cut)
        mx_ev_tone(ev, MX_TONE_WARN);
    /* message: "Subject" from <x> to <y>, 3 parts, 2 attachments (a.pdf 12 KB, ...) */
    char att[1200];
    size_t al = 0;
    att[0] = '\0';
    uint32_t shown = 0;
    for (uint32_t i = 0; i < m->parts.n && shown < MSG_TEXT_ATTACH; i++) {
        const struct part_rec *r = part_at(m, i);
        if (!is_attachment(m, r))
            continue;
        struct mx_slice fn = rec_text(m, r, T_FILENAME);
        int w = snprintf(att + al, sizeof(att) - al, "%s%.*s %" PRIu64 " %s", shown ? ", " : " (",
                         fn.len ? (int)(fn.len > 100 ? 100 : fn.len) : 7, fn.len ? (const char *)fn.ptr : "unnamed",
                         r->size >= 10240 ? (r->size + 512) / 1024 : r->size, r->size >= 10240 ? "KB" : "bytes");
        if (w < 0 || (size_t)w >= sizeof(att) - al)
            break;
        al += (size_t)w;
        shown++;
    }
    if (shown)
        snprintf(att + al, sizeof(att) - al, "%s)", n_att > shown ? ", ..." : "");
    const struct headers *h = m->h;
    const struct kept *to = h->list[L_TO].n ? &h->list[L_TO].a[0] : NULL;
    char dsn[128] = "";
    uint32_t d_failed, d_delayed, d_total;
    mx_dsn_counts(m->dsn, &d_failed, &d_delayed, &d_total);
    if (d_total)
        snprintf(dsn, sizeof(dsn), ", delivery status of %u recipient%s (%u failed, %u delayed)", d_total,
                 d_total == 1 ? "" : "s", d_failed, d_delayed);
    mx_ev_text(ev, "message: \"%.*s\" from %.*s%s%.*s%s, %u part%s, %u attachment%s%s%s%s",
               (int)(h->single[H_SUBJECT].len > 120 ? 120 : h->single[H_SUBJECT].len),
               (const char *)h->single[H_SUBJECT].b,
               h->seen[H_FROM] ? (int)(h->single[H_FROM].len > 120 ? 120 : h->single[H_FROM].len) : 1,
               h->seen[H_FROM] ? (const char *)h->single[H_FROM].b : "?", to ? " to " : "",
               to ? (int)(to->len > 120 ? 120 : to->len) : 0, to ? (const char *)to->b : "",
               h->list[L_TO].n + h->list[L_TO].dropped > 1 ? " and others" : "", n_leaf, n_leaf == 1 ? "" : "s", n_att,
               n_att == 1 ? "" : "s", att, dsn, m->cut ? ", cut short" : "");
    mx_event_emit(mx_ctx_sink(ctx), ev);
}

void mx_message_end(struct mx_message *m)
{
    if (!m || m->ended)
        return;
    /* a last line without line end */
    m->at_end = true;
    if (m->line_len && !m->skip_line)
        line_out(m, mx_slice_make(m->b.line, m->line_len), mx_slice_make(NULL, 0));
    m->line_len = 0;
    /* Whatever is open ends here (RFC 5322 §2.1: a message may be headers only). */
    while (m->depth > 0 || m->stack[0].st != S_EPILOGUE)
        pop(m, false);
    ent_close(m, &m->stack[0], m->size); /* a multipart closed by its delimiter: the epilogue ends here */
    resolve_pending(m, false, mx_slice_make(NULL, 0));
    unsigned int n = 0;
    if (m->hashes & MX_HASH_MESSAGE)
        EVP_DigestFinal_ex(m->sha, m->digest, &n);
    if (m->body_mode == BODY_SHARED && !m->missing)
        memcpy(m->body_digest, part_at(m, (size_t)m->stack[0].rec)->sha256, 32);
    else if (m->hashes & MX_HASH_BODY)
        EVP_DigestFinal_ex(m->body_sha, m->body_digest, &n);
    m->ended = true;
    if (m->eml.fd >= 0) {
        close(m->eml.fd);
        m->eml.fd = -1;
    }
    if (m->env.ctx && !m->emitted) {
        m->emitted = true;
        emit_record(m);
    }
}

uint64_t mx_message_size(const struct mx_message *m)
{
    return m ? m->size : 0;
}

void mx_message_describe(const struct mx_message *m, struct mx_event *ev, const char *key)
{
    if (!m)
        return;
    mx_ev_obj(ev, key);
    mx_ev_uint(ev, "size", m->size);
    if (m->ended && (m->hashes & MX_HASH_MESSAGE)) {
        char h[65];
        hex(m->digest, 32, h);
        mx_ev_str(ev, "sha256", h);
    }
    mx_ev_bool(ev, "partial", m->missing > 0 || m->cut || !m->ended);
    if (m->missing)
        mx_ev_uint(ev, "missing_bytes", m->missing);
    if (m->h->seen[H_MESSAGE_ID])
        emit_kept(ev, "message_id", single_cut_keys[H_MESSAGE_ID], &m->h->single[H_MESSAGE_ID]);
    if (m->h->seen[H_SUBJECT])
        emit_kept(ev, "subject", single_cut_keys[H_SUBJECT], &m->h->single[H_SUBJECT]);
    if (m->ended) {
        uint32_t n_att = 0;
        for (uint32_t i = 0; i < m->parts.n; i++)
            n_att += is_attachment(m, part_at(m, i));
        mx_ev_uint(ev, "attachments", n_att);
    }
    mx_ev_end(ev);
}

/* OpenSSL's digest contexts are opaque: an EVP_MD_CTX and its digest's
 * state take about this much each (OpenSSL 3, SHA-256 being the largest). */
#define MSG_MD_CTX_BYTES 256

size_t mx_message_bytes(const struct mx_message *m)
{
    if (!m)
        return 0;
    size_t n =
        sizeof(*m) + 6 * MSG_MD_CTX_BYTES + mx_buf_bytes(&m->text) + mx_buf_bytes(&m->parts) + mx_buf_bytes(&m->pend);
    return n + (m->h ? sizeof(*m->h) : 0) + m->extracted_bytes + mx_dsn_bytes(m->dsn);
}

void mx_message_free(struct mx_message *m)
{
    if (!m)
        return;
    if (m->leaf_file.fd >= 0)
        close(m->leaf_file.fd);
    if (m->eml.fd >= 0)
        close(m->eml.fd);
    EVP_MD_CTX_free(m->sha);
    EVP_MD_CTX_free(m->h_md5);
    EVP_MD_CTX_free(m->h_sha1);
    EVP_MD_CTX_free(m->h_sha256);
    EVP_MD_CTX_free(m->h_uu);
    EVP_MD_CTX_free(m->body_sha);
    free(m->h);
    mx_dsn_free(m->dsn);
    for (uint32_t i = 0; i < m->parts.n; i++)
        free(part_at(m, i)->extracted);
    mx_buf_free(&m->parts);
    mx_buf_free(&m->text);
    mx_buf_free(&m->pend);
    free(m);
}
