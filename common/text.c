/* SPDX-License-Identifier: MIT */
#include "text.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The length of the sequence at s (1..4), 0 if it is not valid UTF-8
 * (Unicode 15, table 3-7). */
static size_t utf8_seq(const unsigned char *s, size_t left) {
        unsigned char c = s[0], lo = 0x80, hi = 0xbf;
        size_t n;

        if (c < 0x80)
                return 1;
        if (c >= 0xc2 && c <= 0xdf)
                n = 2;
        else if (c >= 0xe0 && c <= 0xef) {
                n = 3;
                if (c == 0xe0)
                        lo = 0xa0; /* overlong */
                else if (c == 0xed)
                        hi = 0x9f; /* surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
                n = 4;
                if (c == 0xf0)
                        lo = 0x90; /* overlong */
                else if (c == 0xf4)
                        hi = 0x8f; /* past U+10FFFF */
        } else
                return 0;
        if (left < n || s[1] < lo || s[1] > hi)
                return 0;
        for (size_t i = 2; i < n; i++)
                if (s[i] < 0x80 || s[i] > 0xbf)
                        return 0;
        return n;
}

bool utf8_valid(const char *s, size_t len) {
        const unsigned char *p = (const unsigned char *) s;

        for (size_t i = 0; i < len;) {
                size_t n = utf8_seq(p + i, len - i);
                if (n == 0)
                        return false;
                i += n;
        }
        return true;
}

char *utf8_sanitize(const char *s, size_t len, size_t *ret_len) {
        const unsigned char *p = (const unsigned char *) s;
        size_t o = 0;
        char *out;

        if (len > (SIZE_MAX - 1) / 3 || !(out = malloc(len * 3 + 1)))
                return NULL;
        for (size_t i = 0; i < len;) {
                size_t n = utf8_seq(p + i, len - i);
                if (n == 0) {
                        memcpy(out + o, "\xef\xbf\xbd", 3);
                        o += 3;
                        i++;
                        continue;
                }
                memcpy(out + o, s + i, n);
                o += n;
                i += n;
        }
        out[o] = '\0';
        *ret_len = o;
        return out;
}

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *base64_encode(const void *data, size_t len, size_t *ret_len) {
        const unsigned char *in = data;
        size_t n = (len + 2) / 3 * 4, o = 0;
        char *out;

        if (len > (SIZE_MAX - 1) / 4 * 3 - 3 || !(out = malloc(n + 1)))
                return NULL;
        for (size_t i = 0; i < len; i += 3) {
                uint32_t v = (uint32_t) in[i] << 16;
                if (i + 1 < len)
                        v |= (uint32_t) in[i + 1] << 8;
                if (i + 2 < len)
                        v |= in[i + 2];
                out[o++] = alphabet[v >> 18];
                out[o++] = alphabet[(v >> 12) & 63];
                out[o++] = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
                out[o++] = i + 2 < len ? alphabet[v & 63] : '=';
        }
        out[o] = '\0';
        if (ret_len)
                *ret_len = o;
        return out;
}

static int b64_value(char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

int base64_decode(const char *text, size_t len, char **ret, size_t *ret_len) {
        size_t pad = 0, o = 0;
        unsigned char *out;

        if (len % 4 != 0)
                return -EINVAL;
        if (len > 0 && text[len - 1] == '=')
                pad = len > 1 && text[len - 2] == '=' ? 2 : 1;
        out = malloc(len / 4 * 3 + 1);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < len; i += 4) {
                uint32_t v = 0;
                bool last = i + 4 == len;
                for (size_t k = 0; k < 4; k++) {
                        int d = b64_value(text[i + k]);
                        if (d < 0 && !(last && text[i + k] == '=' && k >= 4 - pad)) {
                                free(out);
                                return -EINVAL;
                        }
                        v = v << 6 | (uint32_t) (d < 0 ? 0 : d);
                }
                out[o++] = (unsigned char) (v >> 16);
                if (!last || pad < 2)
                        out[o++] = (unsigned char) (v >> 8);
                if (!last || pad < 1)
                        out[o++] = (unsigned char) v;
        }
        out[o] = '\0';
        *ret = (char *) out;
        *ret_len = o;
        return 0;
}
