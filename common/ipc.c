/* SPDX-License-Identifier: MIT */
#include "ipc.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "macro.h"

int ipc_send_fds(int fd, uint32_t type, const void *a, size_t alen, const void *b, size_t blen, const int *fds,
                 size_t n_fds) {
        IpcHeader h = { .type = type, .len = (uint32_t) (alen + blen) };
        struct iovec iov[3] = {
                { .iov_base = &h, .iov_len = sizeof(h) },
                { .iov_base = UNCONST(a), .iov_len = alen },
                { .iov_base = UNCONST(b), .iov_len = blen },
        };
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * IPC_FDS_MAX)];
        } control = {};
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 3 };
        ssize_t n;

        if (sizeof(h) + alen + blen > IPC_MSG_MAX || n_fds > IPC_FDS_MAX)
                return -EMSGSIZE;
        if (n_fds > 0) {
                struct cmsghdr *cm;
                mh.msg_control = control.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
        }
        do
                n = sendmsg(fd, &mh, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        if ((size_t) n != sizeof(h) + alen + blen)
                return -EIO; /* SEQPACKET sends whole records or fails */
        return 0;
}

int ipc_send2(int fd, uint32_t type, const void *a, size_t alen, const void *b, size_t blen) {
        return ipc_send_fds(fd, type, a, alen, b, blen, NULL, 0);
}

int ipc_send(int fd, uint32_t type, const void *payload, size_t len) {
        return ipc_send2(fd, type, payload, len, NULL, 0);
}

/* Checks a received message of n bytes (MSG_TRUNC: its real size). */
static int ipc_check(void *buf, size_t bufsz, ssize_t n, uint32_t *type, size_t *len, const void **payload) {
        IpcHeader h;

        /* MSG_TRUNC makes recv report the real size: a message larger than
         * the buffer is refused, not silently cut. */
        if ((size_t) n > bufsz || (size_t) n < sizeof(h))
                return -EBADMSG;
        memcpy(&h, buf, sizeof(h));
        if (h.len != (size_t) n - sizeof(h))
                return -EBADMSG;
        *type = h.type;
        *len = h.len;
        *payload = (const char *) buf + sizeof(h);
        return 1;
}

int ipc_recv(int fd, void *buf, size_t bufsz, uint32_t *type, size_t *len, const void **payload) {
        ssize_t n;

        do
                n = recv(fd, buf, bufsz, MSG_TRUNC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        if (n == 0)
                return 0;
        return ipc_check(buf, bufsz, n, type, len, payload);
}

/* The descriptors of a received message; -EBADMSG if it carried anything
 * else, or was cut. */
static int take_fds(struct msghdr *mh, int *fds, size_t *n_fds) {
        int r = mh->msg_flags & MSG_CTRUNC ? -EBADMSG : 0;

        *n_fds = 0;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
                size_t k;
                if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) {
                        r = -EBADMSG;
                        continue;
                }
                k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < k; i++) {
                        int f;
                        memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                        if (*n_fds < IPC_FDS_MAX)
                                fds[(*n_fds)++] = f;
                        else {
                                (void) close(f);
                                r = -EBADMSG;
                        }
                }
        }
        return r;
}

static void close_fds(int *fds, size_t *n_fds) {
        for (size_t i = 0; i < *n_fds; i++)
                (void) close(fds[i]);
        *n_fds = 0;
}

int ipc_recv_fds(int fd, void *buf, size_t bufsz, uint32_t *type, size_t *len, const void **payload, int *fds,
                 size_t *n_fds) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * IPC_FDS_MAX)];
        } control;
        struct iovec iov = { .iov_base = buf, .iov_len = bufsz };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                             .msg_controllen = sizeof(control.buf) };
        ssize_t n;
        int r;

        *n_fds = 0;
        do
                n = recvmsg(fd, &mh, MSG_TRUNC | MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        r = take_fds(&mh, fds, n_fds);
        if (r >= 0 && n == 0 && *n_fds > 0)
                r = -EBADMSG;
        if (r >= 0)
                r = n == 0 ? 0 : (mh.msg_flags & MSG_TRUNC) ? -EBADMSG : ipc_check(buf, bufsz, n, type, len, payload);
        if (r <= 0)
                close_fds(fds, n_fds);
        return r;
}

int ipc_recv_cred(int fd, void *buf, size_t bufsz, uint32_t *type, size_t *len, const void **payload,
                  struct ucred *cred) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(struct ucred))];
        } control;
        struct iovec iov = { .iov_base = buf, .iov_len = bufsz };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                             .msg_controllen = sizeof(control.buf) };
        ssize_t n;

        *cred = (struct ucred){ .pid = 0, .uid = (uid_t) -1, .gid = (gid_t) -1 };
        do
                n = recvmsg(fd, &mh, MSG_TRUNC | MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
                    c->cmsg_len == CMSG_LEN(sizeof(struct ucred)))
                        memcpy(cred, CMSG_DATA(c), sizeof(*cred));
                else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                        /* Nobody sends us descriptors here: close, refuse. */
                        int *fds = (int *) (void *) CMSG_DATA(c);
                        for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++)
                                (void) close(fds[i]);
                        return -EBADMSG;
                }
        }
        if (n == 0)
                return 0;
        return (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ? -EBADMSG : ipc_check(buf, bufsz, n, type, len, payload);
}
