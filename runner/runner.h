/* SPDX-License-Identifier: MIT */
#pragma once

/* The entry points of mplock-runner's modes; each part has its own
 * header. The item error codes the host makes are public, in
 * <mplock/module.h> (MPLOCK_ERR_*). */

#include "mplock/module.h"

/* check.c: "mplock-runner check", the submission check. */
int check_main(int argc, char **argv);

/* run.c: "mplock-runner run", the job runner. */
int run_main(void);
