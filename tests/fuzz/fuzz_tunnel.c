/* fuzz_tunnel.c - libFuzzer target: the tunnel carrier (SOCKS on port 1080) and the mail dissector it hands over to, behind the whole engine. */
#define MX_FUZZ_PORT 1080
#include "fuzz/dialogue.h"
