/* fuzz_pop3.c - libFuzzer target: the POP3 dissector (port 110) behind the whole engine. */
#define MX_FUZZ_PORT 110
#include "fuzz/dialogue.h"
