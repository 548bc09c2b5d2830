/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>

#include "macro.h"

/* How a part of the runner says why the job cannot go on. Everything below
 * run.c returns -errno and fills one of these; run.c's fail() alone tells
 * mplockd (IPC_FAIL with this kind and message) and exits. */

/* Not a failure to report: mplockd is gone (the socket failed), so nobody
 * can be told. The top kills the process group and exits 1; the next
 * runner resumes from the last commit. */
#define RUN_ERROR_GONE 0x100u

typedef struct RunError {
        uint32_t kind; /* IPC_FAIL_PERMANENT, _TEMPORARY, _STORAGE, or RUN_ERROR_GONE */
        char msg[1024];
} RunError;

/* Fills e and returns -|err| (-EIO for 0), so that "return run_error(...)"
 * describes and propagates in one step. */
int run_error(RunError *e, uint32_t kind, int err, const char *fmt, ...) _printf_(4, 5);
/* The same with the kind io_kind(err): for a failed write or open. */
int run_error_io(RunError *e, int err, const char *fmt, ...) _printf_(3, 4);

/* Writing failed: a full disk, a quota or an I/O error pauses the job until
 * its owner fixes it and resumes; anything else is worth a restart, except
 * what cannot change (permissions), which fails the job. err may be
 * positive or negative, and any int (a module's return value). */
uint32_t io_kind(int err);
