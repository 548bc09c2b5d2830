/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* The daemon <-> runner channel: a SOCK_SEQPACKET socketpair, so the kernel
 * keeps message boundaries. Every message is an IpcHeader and a payload of
 * exactly header.len bytes, at most IPC_MSG_MAX in all. The receiver checks
 * type and length before it looks at the payload; the daemon treats a bad
 * message from a runner as fatal for that runner (it runs user code). */

#define IPC_MSG_MAX (256u * 1024u)
#define IPC_COMMIT_RANGES_MAX 8192u

enum {
        /* daemon -> runner */
        IPC_START = 1,   /* payload: job description, JSON text */
        IPC_STOP = 2,    /* payload: IpcStop */
        /* runner -> daemon */
        IPC_READY = 16,  /* payload: none; lock held, module loaded, output open */
        IPC_COMMIT = 17, /* payload: IpcCommit + ranges */
        IPC_DONE = 18,   /* payload: none; every item is committed */
        IPC_FAIL = 19,   /* payload: IpcFail + message text; the job cannot go on */
        IPC_PROGRESS = 20, /* payload: IpcProgress; informational */
};

typedef struct IpcHeader {
        uint32_t type;
        uint32_t len; /* payload bytes */
} IpcHeader;

enum {
        IPC_STOP_GRACEFUL = 1, /* finish in-flight items, commit, exit 0 */
        IPC_STOP_CANCEL = 2,   /* kill workers now, exit */
};

typedef struct IpcStop {
        uint32_t mode;
        uint32_t reserved;
} IpcStop;

typedef struct IpcRange {
        uint64_t first;
        uint64_t count;
} IpcRange;

/* "Every item in these ranges has its one record in the results file below
 * results_len, and results_len has been fdatasync'ed." Totals are cumulative
 * over the job so that the daemon can check them against its bitmap. */
typedef struct IpcCommit {
        uint64_t results_len;
        uint64_t done_total;
        uint64_t failed_total;
        uint32_t n_ranges;
        uint32_t reserved;
        /* IpcRange ranges[n_ranges]; */
} IpcCommit;

typedef struct IpcProgress {
        uint64_t processed; /* items with results, committed or not */
        uint32_t workers;   /* live workers */
        uint32_t reserved;
} IpcProgress;

enum {
        IPC_FAIL_PERMANENT = 1, /* do not retry: module refused, bad output... */
        IPC_FAIL_TEMPORARY = 2, /* worth a retry later (out of memory, a crash) */
        IPC_FAIL_STORAGE = 3,   /* writing failed (disk full, I/O error): pause until resumed */
};

typedef struct IpcFail {
        uint32_t kind;
        uint32_t reserved;
        /* char message[]; not NUL-terminated */
} IpcFail;

/* Sends one message; blocks unless fd is non-blocking (then -EAGAIN). */
int ipc_send(int fd, uint32_t type, const void *payload, size_t len);
int ipc_send2(int fd, uint32_t type, const void *a, size_t alen, const void *b, size_t blen);
/* Receives one message into buf (IPC_MSG_MAX bytes): 1 with type and payload
 * length, 0 at EOF, -EAGAIN, -EBADMSG for a truncated or malformed message. */
int ipc_recv(int fd, void *buf, size_t bufsz, uint32_t *type, size_t *len, const void **payload);
