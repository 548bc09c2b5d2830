/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>

/* Checked number parsing: the whole string must be a number in range, no
 * sign for unsigned types, no trailing garbage. Return 0 or -EINVAL/-ERANGE. */
int parse_u64(const char *s, uint64_t *ret);
int parse_u32(const char *s, uint32_t *ret);
int parse_uint_range(const char *s, uint64_t min, uint64_t max, uint64_t *ret);
/* A byte count with an optional K, M, G or T suffix (powers of 1024). */
int parse_size(const char *s, uint64_t *ret);
