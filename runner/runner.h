/* SPDX-License-Identifier: MIT */
#pragma once

/* What every part of mplock-runner shares: the item error codes the host
 * makes, and the two entry points. Each part has its own header. */

/* Host-made item error codes (module codes should stay above -1000). */
#define MPLOCK_ERR_NO_RESULT (-1001) /* process() set nothing for the item */
#define MPLOCK_ERR_CRASHED (-1002)   /* the worker died on it max_attempts times */
#define MPLOCK_ERR_TOO_LARGE (-1003) /* result over MPLOCK_RESULT_MAX */
#define MPLOCK_ERR_PROCESS (-1004)   /* process() failed without a code */

/* check.c: "mplock-runner check", the submission check. */
int check_main(int argc, char **argv);

/* run.c: "mplock-runner run", the job runner. */
int run_main(void);
