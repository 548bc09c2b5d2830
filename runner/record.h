/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct Pool Pool;
typedef struct ResultsMeta ResultsMeta;
typedef struct RunError RunError;
typedef struct Worker Worker;

/* record.c: result blocks into records. A worker's block is checked
 * against the chunk it was given; its items that failed and have
 * attempts left wait for a retry, the rest are appended and committed
 * through commit.c. Also the records the runner makes itself. */

/* A complete block (len bytes) from w. */
int record_block(Pool *p, Worker *w, const char *block, size_t len, RunError *e);
/* The final failure of an item its workers died on, with the joblog of
 * its last attempt. */
int record_failure(Pool *p, uint64_t index, const char *msg, const ResultsMeta *meta, RunError *e);
