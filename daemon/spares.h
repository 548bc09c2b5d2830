/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

#include "store.h"

/* Spare job directories, made ahead by a helper thread: empty input,
 * job.json and checkpoint log in new/, the directory fsynced, so that a
 * submission writes data and creates nothing. Creating a file can wait a
 * millisecond for the file system's journal, and a job needs four; done in
 * the event loop, even at idle priority, that wait lands on whatever
 * arrives meanwhile. The thread makes file system calls only (it logs
 * nothing), on new/ and the directories it makes. */

#define SPARES_MAX 2

typedef struct Spares Spares;

/* new_fd: the store's new/ (not owned; it outlives the Spares). */
int spares_new(Spares **ret, int new_fd);
/* Stops the thread and removes the spares not taken. */
Spares *spares_free(Spares *sp);
/* A ready spare, taken (its name into name, its directory fd returned),
 * or -ENOENT when none is ready (the caller makes its own directory: the
 * thread is behind, or cannot make them). The thread then makes another. */
int spares_take(Spares *sp, char name[static STORE_NEW_NAME_MAX], int *ret_dirfd);
