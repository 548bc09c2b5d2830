/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Bytes in JSON: a Varlink message is UTF-8 text, and results and items
 * are bytes (a pickle, an image). Valid UTF-8 goes as a string, anything
 * else as base64 (RFC 4648, with padding) in a field of its own. */

/* Whether s[0..len) is valid UTF-8: no overlong forms, no surrogates,
 * nothing past U+10FFFF. */
bool utf8_valid(const char *s, size_t len);

/* s[0..len) with every byte that is not part of valid UTF-8 replaced by
 * U+FFFD: text for people (an error message), malloc'd and terminated. */
char *utf8_sanitize(const char *s, size_t len, size_t *ret_len);

/* Base64 of data[0..len) into a malloc'd NUL-terminated string; NULL when
 * out of memory or len too large. */
char *base64_encode(const void *data, size_t len, size_t *ret_len);

/* Decodes base64 text[0..len) into a malloc'd buffer (*ret, *ret_len;
 * NUL-terminated for convenience): 0, -EINVAL for text that is not
 * padded base64, -ENOMEM. */
int base64_decode(const char *text, size_t len, char **ret, size_t *ret_len);
