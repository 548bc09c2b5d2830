/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>

/* A bound on the module callbacks that run in the runner itself
 * (save_init, save, save_fini). The event loop waits for them and cannot
 * step in, so a timer signal does: past the bound, the handler tells
 * mplockd why (a permanent failure: the job fails with the reason) and
 * ends the runner and its workers. Everything it uses is prepared when it
 * is armed; the handler only sends and exits (async-signal-safe). */

/* ipc_fd: where mplockd hears the runner. */
int watchdog_init(int ipc_fd);
/* what: the callback, for the message; limit_sec 0: no bound. */
void watchdog_arm(const char *what, uint32_t limit_sec);
void watchdog_disarm(void);
