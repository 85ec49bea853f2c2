/* smuggle.c - SMTP smuggling: an end of data that is not <CRLF>.<CRLF> (a
 * bare LF or CR around the dot) inside the message data, followed by
 * commands, and whether the server took it as the end (RFC 5321 §2.3.8,
 * §4.1.1.4; SEC Consult, December 2023; CVE-2023-51764, -51765, -51766).
 *
 * Two shapes. A bare-LF terminator (<LF>.<LF>, <CRLF>.<LF>, <LF>.<CRLF>)
 * ends the data as lenient servers read it, and so as this dissector reads
 * it: commands sent after it before its reply are smuggled, and the server
 * accepted them when it answers them as commands (a 354 to the smuggled
 * DATA: a second message). A bare-CR look-alike (<CR>.<CR><LF>, <CRLF>.<CR>,
 * ...) does not end the data here: the scanner below finds it followed by
 * MAIL FROM inside the data, and the server split the message when more
 * replies come after its reply to the data than the client's commands ask. */
#include "dissectors/smtp/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Whether a reply of `code` answers verb v as that command (RFC 5321
 * §4.3.2): 221 answers only QUIT, 354 only DATA; any command may be
 * refused (4xx, 5xx; the caller takes a 421 for no answer). */
static bool fits(enum verb v, int code)
{
    if (code >= 400)
        return true; /* any command may be refused */
    switch (v) {
    case V_MAIL:
    case V_RSET:
    case V_NOOP:
    case V_HELO:
    case V_EHLO:
        return code == 250;
    case V_RCPT:
        return code == 250 || code == 251;
    case V_DATA:
        return code == 354;
    case V_QUIT:
        return code == 221;
    default:
        return true;
    }
}

/* The smtp.smuggling record: what was sent, and what the server made of it. */
static void emit(struct smtp *s, bool accepted, mx_frame_t ra, mx_frame_t rb)
{
    struct smtp_smuggle *g = &s->smug;
    struct mx_sink *sink = mx_ctx_sink(s->m.ctx);
    struct mx_event *ev = mx_ctx_begin(s->m.ctx, "smtp.smuggling", s->m.now);
    mx_ev_dir(ev, MX_DIR_C2S);
    mx_ev_frames(ev, g->dot, g->cmd ? g->cmd : g->dot);
    mx_ev_str(ev, "sequence", g->seq);
    mx_ev_bool(ev, "accepted", accepted);
    if (accepted && g->second_message)
        mx_ev_bool(ev, "second_message", true);
    if (ra) {
        mx_ev_arr(ev, "reply_frames");
        mx_ev_uint(ev, NULL, ra);
        if (rb && rb != ra)
            mx_ev_uint(ev, NULL, rb);
        mx_ev_end(ev);
    }
    mx_ev_tone(ev, accepted ? MX_TONE_BAD : MX_TONE_WARN);
    mx_ev_text(ev, "SMTP smuggling: %s then commands inside the message data (frame %" PRIu64 "): %s", g->seq, g->dot,
               accepted ? (g->second_message ? "accepted, the server took a second message"
                                             : "accepted, the server answered the smuggled commands")
                        : "attempted, refused (the server read it as message data)");
    mx_event_emit(sink, ev);
    uint8_t keep = g->scan;
    memset(g, 0, sizeof(*g));
    g->scan = keep;
}

void smtp_smuggle_data_end(struct smtp *s, const char *shown, mx_frame_t dot)
{
    struct smtp_smuggle *g = &s->smug;
    if (s->lmtp)
        return; /* LMTP delivers locally: no second hop to fool */
    if (g->st != SM_NONE && g->st != SM_ARMED)
        emit(s, false, 0, 0); /* an older attempt, never answered */
    g->st = SM_ARMED;
    snprintf(g->seq, sizeof(g->seq), "%s", shown);
    g->dot = dot;
    g->cmd = 0;
    g->replies = s->replies;
}

void smtp_smuggle_command(struct smtp *s, enum verb v, mx_frame_t f, struct pending *queued)
{
    struct smtp_smuggle *g = &s->smug;
    if (g->st == SM_ARMED && s->replies != g->replies)
        g->st = SM_NONE; /* the client waited for the reply: no smuggling */
    if (g->st == SM_ARMED) {
        if (v != V_MAIL && v != V_RCPT && v != V_DATA && v != V_RSET && v != V_HELO && v != V_EHLO) {
            g->st = SM_NONE; /* QUIT, NOOP: a pipelining client, nothing smuggled */
            return;
        }
        g->st = SM_LF;
        g->cmd = f;
    }
    if (g->st == SM_LF && queued && s->replies == g->replies)
        queued->smuggled = true;
}

/* Line-end bytes as the terminators are shown: <CRLF>, <CR>, <LF>. */
static void shown(const uint8_t *b, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o + 7 < cap; i++) {
        bool crlf = b[i] == '\r' && i + 1 < n && b[i + 1] == '\n';
        o += (size_t)snprintf(out + o, cap - o, "%s", crlf ? "<CRLF>" : b[i] == '\r' ? "<CR>" : "<LF>");
        i += crlf;
    }
}

/* The bare-CR look-alikes, as a small automaton over the raw data bytes:
 * a CR or LF, ".", one to three CR or LF bytes, "MAIL FROM:". */
enum { SC_TEXT, SC_EOL, SC_DOT, SC_AFTER, SC_CMD };

static void scan_byte(struct smtp *s, uint8_t c, uint64_t off)
{
    static const char cmd[] = "MAIL FROM:";
    struct smtp_smuggle *g = &s->smug;
    bool eol = c == '\r' || c == '\n';
    switch (g->scan) {
    case SC_EOL:
        if (c == '.') {
            g->scan = SC_DOT;
            g->dot_off = off;
            return;
        }
        break;
    case SC_DOT:
        if (eol) {
            g->scan = SC_AFTER;
            g->post[0] = c;
            g->post_len = 1;
            return;
        }
        break;
    case SC_AFTER:
        if (eol && g->post_len < sizeof(g->post)) {
            g->post[g->post_len++] = c;
            return;
        }
        if (mx_upc(c) == (uint8_t)cmd[0]) {
            g->scan = SC_CMD;
            g->k = 1;
            return;
        }
        break;
    case SC_CMD:
        if (mx_upc(c) == (uint8_t)cmd[g->k]) {
            if (++g->k < sizeof(cmd) - 1)
                return;
            /* found: unless it is <CRLF>.<CRLF> (never here: it ends the data) */
            if (g->st == SM_NONE || g->st == SM_ARMED) {
                char pre[16], post[24];
                shown(g->pre, g->pre_len, pre, sizeof(pre));
                shown(g->post, g->post_len, post, sizeof(post));
                snprintf(g->seq, sizeof(g->seq), "%s.%s", pre, post);
                g->st = SM_CR;
                g->dot = mx_ctx_frame_at(s->m.ctx, MX_DIR_C2S, g->dot_off).frame;
                g->cmd = mx_ctx_frame_at(s->m.ctx, MX_DIR_C2S, off).frame;
            }
            break;
        }
        break;
    default:
        break;
    }
    /* back to text: this byte may start a line end */
    if (eol) {
        if (g->scan == SC_EOL && g->pre_len == 1 && g->pre[0] == '\r' && c == '\n') {
            g->pre[1] = c;
            g->pre_len = 2;
        } else {
            g->pre[0] = c;
            g->pre_len = 1;
        }
        g->scan = SC_EOL;
    } else {
        g->scan = SC_TEXT;
    }
}

void smtp_smuggle_body(struct smtp *s, struct mx_slice raw, uint64_t off, bool start)
{
    struct smtp_smuggle *g = &s->smug;
    if (s->lmtp)
        return;
    if (start) {
        g->scan = SC_EOL; /* the data starts a line: DATA's CRLF before it */
        g->pre[0] = '\r', g->pre[1] = '\n';
        g->pre_len = 2;
    }
    for (size_t i = 0; i < raw.len; i++) {
        if (g->scan == SC_TEXT) {
            /* text: nothing to do before the next line-end byte */
            const uint8_t *cr = memchr(raw.ptr + i, '\r', raw.len - i), *lf = memchr(raw.ptr + i, '\n', raw.len - i);
            const uint8_t *next = cr && (!lf || cr < lf) ? cr : lf;
            if (!next)
                return;
            i = (size_t)(next - raw.ptr);
        }
        scan_byte(s, raw.ptr[i], off + i);
    }
}

void smtp_smuggle_reply(struct smtp *s, bool have, const struct pending *p, int code, mx_frame_t a, mx_frame_t b)
{
    struct smtp_smuggle *g = &s->smug;
    switch (g->st) {
    case SM_LF:
        if (!have || !p->smuggled)
            return;
        if (!fits(p->verb, code) || code == 421) {
            emit(s, false, a, b); /* the reply was for something else: the server read data */
        } else if (p->verb == V_DATA || p->verb == V_BDAT) {
            g->second_message = code == 354;
            emit(s, true, a, b);
        } else {
            g->answered = a; /* answered as a command: so far, accepted */
        }
        return;
    case SM_CR:
        if (have && p->verb == V_DATA_END)
            g->st = SM_CR_AFTER; /* the reply to the data: now, are there more? */
        return;
    case SM_CR_AFTER:
        /* a reply no command asked for, or one that does not fit the next
         * command: the server answered commands it found inside the data */
        if (!have || !fits(p->verb, code)) {
            emit(s, true, a, b);
        } else {
            emit(s, false, 0, 0);
        }
        return;
    default:
        return;
    }
}

void smtp_smuggle_end(struct smtp *s)
{
    struct smtp_smuggle *g = &s->smug;
    if (g->st == SM_LF && g->answered)
        emit(s, true, g->answered, 0); /* no smuggled DATA: its commands were answered as such */
    else if (g->st == SM_LF || g->st == SM_CR || g->st == SM_CR_AFTER)
        emit(s, false, 0, 0);
}
