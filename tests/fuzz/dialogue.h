/* dialogue.h - the body of the dissector fuzz targets: a dissector behind the
 * whole engine, fed chunks that flip direction (as Suricata's
 * fuzz_applayerparserparse does). Define MX_FUZZ_PORT, the server port that
 * selects the dissector, before including it.
 *
 * Input format: records of one header byte (bit 0: direction, 0 client to
 * server; bits 1-7: length - 1) followed by that many bytes. Each record
 * becomes one TCP segment; a short last record takes what is left. */
#ifndef MX_FUZZ_PORT
#error "define MX_FUZZ_PORT"
#endif
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dialogue/harness.h"

#define MAX_TURNS 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct mx_turn turns[MAX_TURNS];
    size_t n = 0, pos = 0;
    while (pos < size && n < MAX_TURNS) {
        uint8_t h = data[pos++];
        size_t len = (size_t)(h >> 1) + 1;
        if (len > size - pos)
            len = size - pos;
        if (!len)
            break;
        turns[n].dir = (h & 1) ? MX_DIR_S2C : MX_DIR_C2S;
        turns[n].data = (const char *)data + pos;
        turns[n].len = len;
        n++;
        pos += len;
    }
    struct mx_harness_opts o = { .server_port = MX_FUZZ_PORT, .show_secrets = (size & 1) != 0 };
    char *out = mx_harness_run(turns, n, &o, SIZE_MAX, false);
    /* Every line is valid JSON whatever the input (STYLE.md: output conventions). */
    if (!mx_harness_all_json(out))
        abort();
    free(out);
    return 0;
}
