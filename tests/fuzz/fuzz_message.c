/* fuzz_message.c - libFuzzer target: arbitrary bytes as a mail message, carried
 * by SMTP DATA through the whole engine (dot-stuffed, so all of it reaches the
 * message parser) and split into two segments at a position the input picks.
 *
 * Input format: two bytes (big-endian) choose the split position within the
 * transcript; the rest is the message. */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dialogue/harness.h"

#define MAX_MESSAGE (1 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > MAX_MESSAGE)
        return 0;
    size_t split = (size_t)data[0] << 8 | data[1];
    data += 2;
    size -= 2;
    /* RFC 5321 §4.5.2: a line starting with '.' gets one more; then CRLF.CRLF */
    char *body = malloc(2 * size + 8);
    if (!body)
        return 0;
    size_t w = 0;
    bool bol = true;
    for (size_t i = 0; i < size; i++) {
        if (bol && data[i] == '.')
            body[w++] = '.';
        body[w++] = (char)data[i];
        bol = data[i] == '\n';
    }
    if (!bol)
        body[w++] = '\r', body[w++] = '\n';
    memcpy(body + w, ".\r\n", 3);
    w += 3;
    const struct mx_turn t[] = {
        { MX_DIR_S2C, "220 mx ESMTP\r\n", 0 }, { MX_DIR_C2S, "MAIL FROM:<a@example.org>\r\n", 0 },
        { MX_DIR_S2C, "250 ok\r\n", 0 },       { MX_DIR_C2S, "RCPT TO:<b@example.net>\r\n", 0 },
        { MX_DIR_S2C, "250 ok\r\n", 0 },       { MX_DIR_C2S, "DATA\r\n", 0 },
        { MX_DIR_S2C, "354 go\r\n", 0 },       { MX_DIR_C2S, body, w },
        { MX_DIR_S2C, "250 queued\r\n", 0 },
    };
    struct mx_harness_opts o = { .server_port = 25 };
    char *out = mx_harness_run(t, sizeof(t) / sizeof(t[0]), &o, split, false);
    /* Every line is valid JSON whatever the input (STYLE.md: output conventions). */
    if (!mx_harness_all_json(out))
        abort();
    free(out);
    free(body);
    return 0;
}
