/* test_flow.c - the flow table: hashing, canonical keys, deletion, LRU order. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/flow.h"
#include "check_main.h"

static struct mx_addr v4(uint32_t a)
{
    struct mx_addr x;
    memset(&x, 0, sizeof(x));
    x.family = 4;
    x.b[0] = (uint8_t)(a >> 24), x.b[1] = (uint8_t)(a >> 16), x.b[2] = (uint8_t)(a >> 8), x.b[3] = (uint8_t)a;
    return x;
}

START_TEST(both_directions_share_a_key)
{
    struct mx_addr a = v4(0x0a000001), b = v4(0x0a000002);
    struct mx_flow_key k1, k2;
    bool lo1, lo2;
    mx_flow_key_make(&k1, &a, 40000, &b, 25, &lo1);
    mx_flow_key_make(&k2, &b, 25, &a, 40000, &lo2);
    ck_assert_int_eq(memcmp(&k1, &k2, sizeof(k1)), 0);
    ck_assert(lo1 != lo2);
    /* Garbage in unused address bytes does not split a flow. */
    struct mx_addr dirty = a;
    dirty.b[10] = 0x55;
    mx_flow_key_make(&k2, &dirty, 40000, &b, 25, NULL);
    ck_assert_int_eq(memcmp(&k1, &k2, sizeof(k1)), 0);
}
END_TEST

START_TEST(many_flows_add_find_remove)
{
    enum { N = 20000 };
    struct mx_flow_table *t = mx_flow_table_new(N);
    struct mx_addr srv = v4(0xc0a80001);
    static struct mx_flow *fl[N];
    for (uint32_t i = 0; i < N; i++) {
        struct mx_addr c = v4(0x0a000000 + i / 1000);
        struct mx_flow_key k;
        mx_flow_key_make(&k, &c, (uint16_t)(1024 + i % 1000), &srv, 25, NULL);
        fl[i] = mx_flow_add(t, &k);
        ck_assert_ptr_nonnull(fl[i]);
        ck_assert_uint_eq(fl[i]->id, i + 1);
    }
    ck_assert_uint_eq(mx_flow_count(t), N);
    struct mx_flow_key k;
    mx_flow_key_make(&k, &srv, 25, &srv, 26, NULL);
    ck_assert_ptr_null(mx_flow_add(t, &k)); /* full */
    /* Remove every third; the rest must still be found (backward shift). */
    for (uint32_t i = 0; i < N; i += 3)
        mx_flow_remove(t, fl[i]);
    for (uint32_t i = 0; i < N; i++) {
        struct mx_addr c = v4(0x0a000000 + i / 1000);
        mx_flow_key_make(&k, &c, (uint16_t)(1024 + i % 1000), &srv, 25, NULL);
        struct mx_flow *f = mx_flow_find(t, &k);
        if (i % 3 == 0)
            ck_assert_ptr_null(f);
        else
            ck_assert_ptr_eq(f, fl[i]);
    }
    mx_flow_table_free(t);
}
END_TEST

/* Keys crafted to share the low 12 bits of the unkeyed FNV-1a (the table's
 * hash before issue 24, still the worker shard): a hostile capture's probe
 * run. The table's keyed hash spreads them as random keys would be spread,
 * and two tables (two runs) hash them differently. */
START_TEST(keyed_hash_spreads_crafted_keys)
{
    enum { N = 2000, MASK = 0xfff };
    struct mx_flow_table *t1 = mx_flow_table_new(N), *t2 = mx_flow_table_new(N);
    struct mx_addr srv = v4(0xc0a80001);
    static uint8_t seen[MASK + 1];
    memset(seen, 0, sizeof(seen));
    unsigned found = 0, distinct = 0, same = 0;
    for (uint32_t i = 0; found < N && i < (1u << 26); i++) {
        struct mx_addr c = v4(0x0a000000 + (i >> 16));
        struct mx_flow_key k;
        mx_flow_key_make(&k, &c, (uint16_t)i, &srv, 25, NULL);
        if ((mx_flow_key_shard(&k) & MASK) != 0x123)
            continue;
        found++;
        struct mx_flow *f1 = mx_flow_add(t1, &k), *f2 = mx_flow_add(t2, &k);
        ck_assert_ptr_nonnull(f1);
        ck_assert_ptr_nonnull(f2);
        ck_assert_ptr_eq(mx_flow_find(t1, &k), f1);
        distinct += !seen[f1->hash & MASK]++;
        same += f1->hash == f2->hash;
    }
    ck_assert_uint_eq(found, N);
    /* Random hashes fill about 4096 * (1 - e^(-2000/4096)) = 1580 of the slots. */
    ck_assert_uint_gt(distinct, 1400);
    ck_assert_uint_lt(same, 5);
    mx_flow_table_free(t1);
    mx_flow_table_free(t2);
}
END_TEST

START_TEST(lru_order_and_closed_list)
{
    struct mx_flow_table *t = mx_flow_table_new(8);
    struct mx_addr a = v4(1), b = v4(2);
    struct mx_flow *f[3];
    for (int i = 0; i < 3; i++) {
        struct mx_flow_key k;
        mx_flow_key_make(&k, &a, (uint16_t)(1000 + i), &b, 25, NULL);
        f[i] = mx_flow_add(t, &k);
        mx_flow_touch(t, f[i], (mx_frame_t)i + 1, 0);
    }
    ck_assert_ptr_eq(mx_flow_oldest(t, MX_FLOW_ACTIVE), f[0]);
    mx_flow_touch(t, f[0], 4, 0);
    ck_assert_ptr_eq(mx_flow_oldest(t, MX_FLOW_ACTIVE), f[1]);
    mx_flow_set_closed(t, f[1]);
    ck_assert_ptr_eq(mx_flow_oldest(t, MX_FLOW_ACTIVE), f[2]);
    ck_assert_ptr_eq(mx_flow_oldest(t, MX_FLOW_CLOSED), f[1]);
    mx_flow_remove(t, f[1]);
    ck_assert_ptr_null(mx_flow_oldest(t, MX_FLOW_CLOSED));
    ck_assert_uint_eq(mx_flow_count(t), 2);
    mx_flow_table_free(t);
}
END_TEST

/* Flows that carried payload have a list of their own (the idle timeout);
 * the oldest active flow is the least recently touched of both lists. */
START_TEST(busy_list_keeps_touch_order)
{
    struct mx_flow_table *t = mx_flow_table_new(8);
    struct mx_addr a = v4(1), b = v4(2);
    struct mx_flow *f[4];
    for (int i = 0; i < 4; i++) {
        struct mx_flow_key k;
        mx_flow_key_make(&k, &a, (uint16_t)(1000 + i), &b, 25, NULL);
        f[i] = mx_flow_add(t, &k);
        mx_flow_touch(t, f[i], (mx_frame_t)i + 1, (mx_time_t)i);
    }
    mx_flow_set_busy(t, f[3]);
    mx_flow_set_busy(t, f[1]); /* touched before f[3]: it goes ahead of it */
    ck_assert_ptr_eq(mx_flow_oldest_of(t, true), f[1]);
    ck_assert_ptr_eq(mx_flow_oldest_of(t, false), f[0]);
    ck_assert_ptr_eq(mx_flow_oldest(t, MX_FLOW_ACTIVE), f[0]);
    mx_flow_touch(t, f[0], 5, 5);
    ck_assert_ptr_eq(mx_flow_oldest(t, MX_FLOW_ACTIVE), f[1]);
    mx_flow_touch(t, f[1], 6, 6);
    ck_assert_ptr_eq(mx_flow_oldest(t, MX_FLOW_ACTIVE), f[2]);
    ck_assert_ptr_eq(mx_flow_oldest_of(t, true), f[3]);
    mx_flow_set_closed(t, f[3]);
    ck_assert_ptr_eq(mx_flow_oldest_of(t, true), f[1]);
    ck_assert_ptr_eq(mx_flow_oldest(t, MX_FLOW_CLOSED), f[3]);
    ck_assert_uint_eq(mx_flow_count(t), 4);
    mx_flow_table_free(t);
}
END_TEST

START_TEST(ipv6_keys)
{
    struct mx_addr a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    a.family = b.family = 6;
    a.b[15] = 1;
    b.b[15] = 2;
    b.b[0] = 0x20;
    struct mx_flow_table *t = mx_flow_table_new(4);
    struct mx_flow_key k, k2;
    mx_flow_key_make(&k, &a, 5000, &b, 143, NULL);
    struct mx_flow *f = mx_flow_add(t, &k);
    mx_flow_key_make(&k2, &b, 143, &a, 5000, NULL);
    ck_assert_ptr_eq(mx_flow_find(t, &k2), f);
    mx_flow_table_free(t);
}
END_TEST

static struct mx_addr v6(const char *hex)
{
    struct mx_addr x;
    memset(&x, 0, sizeof(x));
    x.family = 6;
    for (int i = 0; i < 16; i++) {
        unsigned v;
        ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
        x.b[i] = (uint8_t)v;
    }
    return x;
}

/* Zeek's test vector for community_id_v1 (testing/btest/bifs/community_id,
 * seed 0: TCP 1.2.3.4:1122 - 5.6.7.8:3344), either way round; the Community
 * ID Zeek gives the SMTP flow of its communityid/ipv6.pcap; and two flows of
 * pcaps/demo.pcapng as Wireshark's Community ID dissector gives them (tshark
 * --enable-protocol communityid): both ends on 127.0.0.1, so the ports decide
 * the order (nDPI 4.2 gets the first one wrong). */
START_TEST(community_id_vectors)
{
    char id[MX_COMMUNITY_ID_LEN];
    struct mx_addr a = v4(0x01020304), b = v4(0x05060708);
    ck_assert(mx_community_id(&a, 1122, &b, 3344, id));
    ck_assert_str_eq(id, "1:wCb3OG7yAFWelaUydu0D+125CLM=");
    ck_assert(mx_community_id(&b, 3344, &a, 1122, id));
    ck_assert_str_eq(id, "1:wCb3OG7yAFWelaUydu0D+125CLM=");
    struct mx_addr c6 = v6("20010470e5bfdead49572174e82c4887"), s = v6("2607f8b0400c0c03000000000000001a");
    ck_assert(mx_community_id(&c6, 63943, &s, 25, id));
    ck_assert_str_eq(id, "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=");
    ck_assert(mx_community_id(&s, 25, &c6, 63943, id));
    ck_assert_str_eq(id, "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=");
    struct mx_addr lo = v4(0x7f000001);
    ck_assert(mx_community_id(&lo, 38414, &lo, 25, id));
    ck_assert_str_eq(id, "1:mrKIYFH/P9k1V2AU1lhtIdL6OCc=");
    ck_assert(mx_community_id(&lo, 25, &lo, 38414, id));
    ck_assert_str_eq(id, "1:mrKIYFH/P9k1V2AU1lhtIdL6OCc=");
    ck_assert(mx_community_id(&lo, 35486, &lo, 110, id));
    ck_assert_str_eq(id, "1:oFiwqN7TEAW4UVgSQEozl9/aWZ8=");
    ck_assert(!mx_community_id(&a, 1, &c6, 2, id)); /* families differ */
    ck_assert_str_eq(id, "");
}
END_TEST

static Suite *flow_suite(void)
{
    Suite *s = suite_create("flow");
    TCase *t = tcase_create("core");
    tcase_add_test(t, both_directions_share_a_key);
    tcase_add_test(t, community_id_vectors);
    tcase_add_test(t, many_flows_add_find_remove);
    tcase_add_test(t, lru_order_and_closed_list);
    tcase_add_test(t, busy_list_keeps_touch_order);
    tcase_add_test(t, ipv6_keys);
    tcase_add_test(t, keyed_hash_spreads_crafted_keys);
    suite_add_tcase(s, t);
    return s;
}

MX_CHECK_MAIN(flow_suite)
