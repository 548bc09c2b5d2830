/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* CRC-32C (Castagnoli), the checksum of every checkpoint and results record.
 * Uses the SSE4.2 instruction when the CPU has it; same values either way.
 * crc32c(0, ...) starts a new checksum; pass the previous value to extend. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);
