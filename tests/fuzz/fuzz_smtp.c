/* fuzz_smtp.c - libFuzzer target: the SMTP dissector (port 25) behind the whole engine. */
#define MX_FUZZ_PORT 25
#include "fuzz/dialogue.h"
