/* fuzz_tls.c - libFuzzer target: the TLS observer (implicit TLS, port 993) behind the whole engine. */
#define MX_FUZZ_PORT 993
#include "fuzz/dialogue.h"
