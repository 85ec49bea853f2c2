/* hash.h - a keyed hash for tables whose keys come from the wire (flows, IP
 * fragments, audited servers): SipHash-1-3 with a random key per hasher, so
 * a hostile capture cannot aim its keys at one chain or probe run. Nothing
 * mxray writes may depend on the key: tables keyed with it are never walked
 * in slot order to produce output. */
#ifndef MX_HASH_H
#define MX_HASH_H

#include <stddef.h>
#include <stdint.h>

struct mx_hasher;

/* A hasher with a fresh random key (OpenSSL's RAND_bytes); NULL when out of
 * memory or without randomness. One per thread: it is not shared. */
struct mx_hasher *mx_hasher_new(void);
/* The same with a given key (tests). */
struct mx_hasher *mx_hasher_new_key(const uint8_t key[16]);
void mx_hasher_free(struct mx_hasher *h);

/* The 64-bit SipHash-1-3 of [p, p+n). */
uint64_t mx_hash(struct mx_hasher *h, const void *p, size_t n);

#endif
