/* SPDX-License-Identifier: MIT */
#pragma once

#include <sys/types.h>

/* The environment a user's agent starts with, and with it everything it
 * forks (checks, runners, workers: the user's code). Not mplockd's own:
 * that may hold what an admin's shell had (keys, tokens, LD_PRELOAD) or
 * what systemd gave the service (NOTIFY_SOCKET, WATCHDOG_*, the service's
 * directories). Built from the user's passwd entry (HOME, USER, LOGNAME,
 * SHELL), a fixed PATH, and of mplockd's own only the locale (LANG,
 * LANGUAGE, LC_*), TZ, JOURNAL_STREAM (what stderr is), MPLOCK_LOG_LEVEL,
 * the sanitizers' options, XDG_RUNTIME_DIR for a user instance's own
 * agent, and the names an admin lists in MPLOCKD_PASS_ENV (separated by
 * colons or spaces). Looked up in the parent (NSS), never after fork. */

/* A NULL-terminated vector for execve, malloc'ed (agent_env_free). */
int agent_env_build(uid_t uid, char ***ret);
char **agent_env_free(char **env);
