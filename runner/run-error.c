/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "ipc.h"
#include "run-error.h"

static int run_error_va(RunError *e, uint32_t kind, int err, const char *fmt, va_list ap) {
        e->kind = kind;
        (void) vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
        return err < 0 ? err : err > 0 ? -err : -EIO;
}

int run_error(RunError *e, uint32_t kind, int err, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = run_error_va(e, kind, err, fmt, ap);
        va_end(ap);
        return r;
}

int run_error_io(RunError *e, int err, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = run_error_va(e, io_kind(err), err, fmt, ap);
        va_end(ap);
        return r;
}

uint32_t io_kind(int err) {
        /* err may be a module's return value: abs(INT_MIN) is undefined. */
        switch (err == INT_MIN ? 0 : abs(err)) {
        case ENOSPC:
        case EDQUOT:
        case EIO:
        case EROFS:
        case EFBIG:
                return IPC_FAIL_STORAGE;
        case EACCES:
        case EPERM:
        case ENOTDIR:
        case ELOOP:
                return IPC_FAIL_PERMANENT;
        default:
                return IPC_FAIL_TEMPORARY;
        }
}
