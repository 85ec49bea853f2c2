/* fuzz_imap.c - libFuzzer target: the IMAP dissector (port 143) behind the whole engine. */
#define MX_FUZZ_PORT 143
#include "fuzz/dialogue.h"
