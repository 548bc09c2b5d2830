/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Separators in an item list, eight bytes at a time: a list of a million
 * short items is a million memchr() calls otherwise, milliseconds of
 * every pass over it (the check's, mplockd's snapshot, the runner's
 * index), each on the way from Submit to the first item. */

/* How many bytes of p[0..len) are c. */
uint64_t bytes_count(const void *p, size_t len, unsigned char c);

/* Every `from` in p[0..len) made `to`: how many there were. */
uint64_t bytes_replace(void *p, size_t len, unsigned char from, unsigned char to);

/* How many bytes of p[0..len) are c, and, for every stride-th of them
 * (the j-th, j a multiple of stride, j / stride < n_index), the offset
 * just past it into index[j / stride]: where item j of a list ended by c
 * starts. index[0] is left to the caller (item 0 starts at 0). */
uint64_t bytes_index(const void *p, size_t len, unsigned char c, uint64_t stride, uint64_t *index,
                     uint64_t n_index);
