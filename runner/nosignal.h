/* SPDX-License-Identifier: MIT */
#pragma once

#include <sys/types.h>

/* A worker runs the module's code with its owner's rights, which would let
 * it signal the runner (its parent), the runner's process group (its own)
 * or every process of the user: one bad `process` would then fail the
 * whole job, not its items. Installed in each worker before any module
 * code runs there, a seccomp filter answers EPERM to kill, tkill, tgkill,
 * rt_sigqueueinfo, rt_tgsigqueueinfo and pidfd_open aimed at the runner,
 * at the group (0, -pgid) or at everyone (-1); any other target is the
 * module's business. The runner itself is made non-dumpable, so that no
 * process of the user can ptrace it or write its memory. */

/* 0, or -errno (the worker then does not run: better than unguarded). */
int nosignal_install(pid_t runner, pid_t group);
