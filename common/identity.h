/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

/* Who a child process becomes.
 *
 * Only a root mplockd switches identities; a user instance runs everything
 * as its user, and then drop is false and nothing here changes anything. */

#define IDENTITY_GROUPS_MAX 1024

typedef struct Identity {
        bool drop; /* switch to uid, gid and groups */
        uid_t uid;
        gid_t gid;
        gid_t groups[IDENTITY_GROUPS_MAX];
        int n_groups;
} Identity;

/* Resolves uid's supplementary groups (NSS: call it in the parent, never
 * after fork). A uid without a passwd entry keeps its primary group only. */
void identity_resolve(Identity *id, uid_t uid, gid_t gid);
/* setgroups, setresgid, setresuid: for good, in a child. -errno. */
int identity_apply(const Identity *id);
