/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "identity.h"

/* The one way mplock forks a process that will run something less trusted
 * than its parent (systemd's safe_fork_full, smtpd's forkmda): what the
 * child inherits is decided here, by flags, for every caller. */

typedef enum ForkFlags {
        FORK_RESET_SIGNALS = 1 << 0, /* empty mask, default dispositions */
        FORK_NEW_SESSION = 1 << 1,   /* setsid(): the parent can signal the whole group */
        FORK_DEATHSIG = 1 << 2,      /* SIGKILL when the parent dies; exit if it already has */
        FORK_CLOSE_FDS = 1 << 3,     /* keep 0-2 and fds[] only */
        FORK_NULL_STDIN = 1 << 4,    /* stdin from /dev/null */
        FORK_NO_NEW_PRIVS = 1 << 5,  /* setuid binaries do not elevate */
        FORK_KEEP_CLOEXEC = 1 << 6,  /* a child that never execs: fds[] stay close-on-exec,
                                      * so nothing it runs in turn inherits them */
} ForkFlags;

typedef struct ForkOptions {
        ForkFlags flags;
        /* Become 3, 4, ... in the child (at most FORK_FDS_MAX). */
        const int *fds;
        size_t n_fds;
        /* stdout and stderr, or -1 to keep ours. */
        int stdout_fd, stderr_fd;
        /* Resolved by the parent; NULL: stay who we are. */
        const Identity *identity;
        /* 0: unchanged. RLIMIT_NPROC is set before the uid change, which
         * counts the new uid's processes against it. */
        uint64_t rlimit_nproc, rlimit_data;
} ForkOptions;

#define FORK_FDS_MAX 16

/* -errno in the parent if fork() failed, the child's pid in the parent, 0
 * in the child once it is set up. A child that cannot set itself up writes
 * one line to its stderr and exits with 127: it never runs half-prepared. */
pid_t fork_sandboxed(const ForkOptions *o);

/* For a child after fork_sandboxed: execv, or the line and exit 127. */
_Noreturn void fork_exec(const char *path, char *const *argv);
/* The same with its own environment. */
_Noreturn void fork_execve(const char *path, char *const *argv, char *const *envp);
