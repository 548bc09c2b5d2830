/* SPDX-License-Identifier: MIT */
#pragma once

/* The entry points of mplock-runner's modes; each part has its own
 * header. The item error codes the host makes are public, in
 * <mplock/module.h> (MPLOCK_ERR_*). */

#include <stdbool.h>
#include <stdint.h>

#include "mplock/module.h"

/* check.c: "mplock-runner check", the submission check: exit status 0 if
 * the submission may go on (its report says so), 1 if refused, 2 for bad
 * arguments. */
int check_main(int argc, char **argv);
typedef struct CheckArgs {
        const char *module, *output, *input;
        bool nul;
        uint64_t max_bytes, max_items;
} CheckArgs;
/* The check's arguments: 0, or -EINVAL. */
int check_parse_args(int argc, char **argv, CheckArgs *ret);
/* The check of a module known to load (check-cache.h), done by the agent
 * itself: the output directory, then the report, to fd. 0 or 1 as the exit
 * status of a check; -EINVAL when it takes a process (an input file). */
int check_known_module(int fd, const CheckArgs *a);

/* run.c: "mplock-runner run", the job runner. */
int run_main(void);
