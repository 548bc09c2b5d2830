/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

typedef struct Output Output;

/* itemlog.c: the job log's lines about single items (an attempt failed and
 * the item is tried again, an item failed for good). A job whose million
 * items fail must not write a million lines: the first ITEMLOG_BURST are
 * written in full, then one line per ITEMLOG_PERIOD_USEC counts what was
 * held back (mplockctl failed has every failure). */
#define ITEMLOG_BURST 100u
#define ITEMLOG_PERIOD_USEC (10 * 1000000ULL)
/* Of an error message, at most this much is quoted (on one line). */
#define ITEMLOG_MESSAGE_MAX 200u

typedef struct ItemLog {
        const Output *out;
        uint64_t written, held, summary_usec;
} ItemLog;

/* A line about one item, unless it is held back. */
void itemlog(ItemLog *l, int level, const char *fmt, ...) _printf_(3, 4);
/* Says what is still held back: at the end of a run. */
void itemlog_flush(ItemLog *l);
/* An error message fit for one line of the log: control characters become
 * spaces, and it is cut at ITEMLOG_MESSAGE_MAX bytes. */
void itemlog_message(const char *msg, size_t len, char buf[static ITEMLOG_MESSAGE_MAX + 4]);
