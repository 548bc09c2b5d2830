/* SPDX-License-Identifier: MIT */
#include "identity.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/fsuid.h>
#include <unistd.h>

#include "log.h"
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

/* setfsuid() and setfsgid() report nothing useful: ask what is in force. */
static bool fsids_are(uid_t uid, gid_t gid) {
        return (uid_t) setfsuid((uid_t) -1) == uid && (gid_t) setfsgid((gid_t) -1) == gid;
}

int identity_open(const Identity *id, const char *path, int flags) {
        gid_t saved[IDENTITY_GROUPS_MAX];
        int n_saved, fd, err = 0;

        if (!id->drop) {
                fd = open(path, flags);
                return fd < 0 ? -errno : fd;
        }
        n_saved = getgroups(IDENTITY_GROUPS_MAX, saved);
        if (n_saved < 0)
                return -errno;
        if (setgroups((size_t) id->n_groups, id->groups) < 0)
                return -errno;
        (void) setfsgid(id->gid);
        (void) setfsuid(id->uid);
        if (!fsids_are(id->uid, id->gid))
                err = EPERM;
        else if ((fd = open(path, flags)) < 0)
                err = errno;
        (void) setfsuid(geteuid());
        (void) setfsgid(getegid());
        if (setgroups((size_t) n_saved, saved) < 0 || !fsids_are(geteuid(), getegid())) {
                /* Going on as somebody else would be worse than stopping. */
                log_error_errno(errno, "Cannot restore our identity after opening as uid %u: %m", (unsigned) id->uid);
                abort();
        }
        return err ? -err : fd;
}
