/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* items.c: the input snapshot, mapped read-only and shared by the workers.
 * Items are NUL-terminated; a sparse index (every ITEMS_STRIDE items) finds
 * any item with at most ITEMS_STRIDE-1 short scans. Only the runner looks
 * items up, once per chunk, so the index can be this sparse: 8 bytes per
 * 256 items (0.3 MB at 10,000,000) instead of growing with the job. */
#define ITEMS_STRIDE 256

typedef struct Items {
        const char *map;
        size_t size;
        uint64_t n;
        uint64_t *index;
} Items;

int items_open(Items *it, int fd, uint64_t n, uint64_t bytes, uint32_t crc, char *err, size_t errlen);
void items_close(Items *it);
/* Offset of item i's first byte. */
uint64_t items_offset(const Items *it, uint64_t i);
