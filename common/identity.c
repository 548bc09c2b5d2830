/* SPDX-License-Identifier: MIT */
#include "identity.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <unistd.h>

#include "macro.h"

void identity_resolve(Identity *id, uid_t uid, gid_t gid) {
        struct passwd *pw;

        id->drop = geteuid() == 0 && uid != 0;
        id->uid = uid;
        id->gid = gid;
        id->groups[0] = gid;
        id->n_groups = 1;
        if (!id->drop)
                return;
        errno = 0;
        pw = getpwuid(uid);
        id->n_groups = IDENTITY_GROUPS_MAX;
        if (!pw || getgrouplist(pw->pw_name, gid, id->groups, &id->n_groups) < 0) {
                id->groups[0] = gid;
                id->n_groups = 1;
        }
}

int identity_apply(const Identity *id) {
        if (!id->drop)
                return 0;
        if (setgroups((size_t) id->n_groups, id->groups) < 0 || setresgid(id->gid, id->gid, id->gid) < 0 ||
            setresuid(id->uid, id->uid, id->uid) < 0)
                return -errno;
        return 0;
}
