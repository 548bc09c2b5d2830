/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>
#include <stdint.h>
#include <sys/types.h>

/* A page of a job's results, read by "mplock-runner results" in the
 * owner's agent (runner/results-page.h): mplockd never opens the owner's
 * file, and the page comes back as untrusted JSON, bounded in size and
 * checked in shape before it is passed on. */

typedef struct Agents Agents;
typedef struct ResultsRead ResultsRead;

typedef struct ResultsQuery {
        const char *path;
        uid_t uid;
        gid_t gid;
        uint64_t job, committed, items, offset, limit, max_bytes;
} ResultsQuery;

/* page: the Results reply parameters (taken by the callee), or NULL with
 * why saying what went wrong. Called once, unless cancelled. */
typedef void (*ResultsDone)(json_object *page, const char *why, void *userdata);

int results_read(Agents *agents, const ResultsQuery *q, size_t max_reply, uint64_t timeout_usec, ResultsDone done,
                 void *userdata, ResultsRead **ret);
/* No callback; the reader is killed if it is still at it. */
ResultsRead *results_read_cancel(ResultsRead *r);
