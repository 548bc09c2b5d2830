/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bytescan.h"
#include "test-util.h"

/* Byte at a time, as the loops of memchr() they replace did. */
static uint64_t count_ref(const unsigned char *p, size_t len, unsigned char c) {
        uint64_t n = 0;

        for (size_t i = 0; i < len; i++)
                n += p[i] == c;
        return n;
}

/* Buffers of every alignment and length around the 8-byte words, with
 * the byte looked for dense, sparse, and beside 0x80 and 0x7f and c+-1
 * (the values a carry or a borrow between bytes would get wrong). */
static void fill(unsigned char *buf, size_t n, unsigned char c, int density, unsigned seed) {
        static const unsigned char near[] = { 0x00, 0x01, 0x7f, 0x80, 0x81, 0xfe, 0xff };

        srand(seed);
        for (size_t i = 0; i < n; i++) {
                int r = rand() % 100;
                if (r < density)
                        buf[i] = c;
                else if (r < density + 20)
                        buf[i] = (unsigned char) (near[rand() % 7] ^ (rand() % 2 ? 0 : c));
                else if (r < density + 30)
                        buf[i] = (unsigned char) (c + (rand() % 2 ? 1 : -1));
                else
                        buf[i] = (unsigned char) rand();
        }
}

START_TEST(test_count) {
        static const unsigned char cs[] = { 0x00, '\n', 0x80, 0x7f, 0xff };
        unsigned char buf[300];

        for (size_t ci = 0; ci < sizeof(cs); ci++)
                for (int density = 0; density <= 100; density += 25) {
                        fill(buf, sizeof(buf), cs[ci], density, (unsigned) (ci * 101 + (size_t) density));
                        for (size_t off = 0; off < 16; off++)
                                for (size_t len = 0; off + len <= sizeof(buf); len += len < 40 ? 1 : 11)
                                        ck_assert_msg(bytes_count(buf + off, len, cs[ci]) ==
                                                              count_ref(buf + off, len, cs[ci]),
                                                      "c %#x density %d off %zu len %zu", cs[ci], density, off, len);
                }
}
END_TEST

START_TEST(test_replace) {
        unsigned char buf[300], want[300], got[300];

        for (int density = 0; density <= 100; density += 20) {
                fill(buf, sizeof(buf), '\n', density, (unsigned) density);
                for (size_t off = 0; off < 16; off++)
                        for (size_t len = 0; off + len <= sizeof(buf); len += len < 40 ? 1 : 11) {
                                uint64_t n = 0;
                                memcpy(want, buf, sizeof(buf));
                                memcpy(got, buf, sizeof(buf));
                                for (size_t i = off; i < off + len; i++)
                                        if (want[i] == '\n') {
                                                want[i] = '\0';
                                                n++;
                                        }
                                ck_assert_uint_eq(bytes_replace(got + off, len, '\n', '\0'), n);
                                /* Nothing outside the range touched, nothing else inside. */
                                ck_assert_msg(memcmp(got, want, sizeof(got)) == 0, "density %d off %zu len %zu",
                                              density, off, len);
                        }
        }
        /* Both ways, and to a byte with the high bit. */
        memcpy(got, "a\xff" "b\xff\xff" "cdefgh\xff", 12);
        ck_assert_uint_eq(bytes_replace(got, 12, 0xff, 0x80), 4);
        ck_assert_mem_eq(got, "a\x80" "b\x80\x80" "cdefgh\x80", 12);
}
END_TEST

/* The offsets past every stride-th c, the index the runner keeps. */
START_TEST(test_index) {
        unsigned char buf[1000];
        uint64_t idx[64], ref[64];

        for (uint64_t stride = 1; stride <= 9; stride++)
                for (int density = 5; density <= 100; density += 30) {
                        fill(buf, sizeof(buf), 0, density, (unsigned) (stride * 7 + (uint64_t) density));
                        for (size_t off = 0; off < 9; off++)
                                for (size_t len = 0; off + len <= sizeof(buf); len += len < 30 ? 1 : 97)
                                        for (uint64_t cap = 0; cap <= 64; cap += 21) {
                                                uint64_t n = 0;
                                                memset(idx, 0xaa, sizeof(idx));
                                                memset(ref, 0xaa, sizeof(ref));
                                                for (size_t i = 0; i < len; i++)
                                                        if (buf[off + i] == 0 && ++n % stride == 0 &&
                                                            n / stride < cap)
                                                                ref[n / stride] = i + 1;
                                                ck_assert_uint_eq(bytes_index(buf + off, len, 0, stride, idx, cap), n);
                                                ck_assert_msg(memcmp(idx, ref, sizeof(idx)) == 0,
                                                              "stride %llu density %d off %zu len %zu cap %llu",
                                                              (unsigned long long) stride, density, off, len,
                                                              (unsigned long long) cap);
                                        }
                }
        /* Stride 0: a count. */
        ck_assert_uint_eq(bytes_index("a\0b\0", 4, 0, 0, idx, 0), 2);
}
END_TEST

static Suite *bytescan_suite(void) {
        Suite *s = suite_create("bytescan");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_count);
        tcase_add_test(tc, test_replace);
        tcase_add_test(tc, test_index);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return test_run_suite(bytescan_suite());
}
