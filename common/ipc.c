/* SPDX-License-Identifier: MIT */
#include "ipc.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "macro.h"

int ipc_send2(int fd, uint32_t type, const void *a, size_t alen, const void *b, size_t blen) {
        IpcHeader h = { .type = type, .len = (uint32_t) (alen + blen) };
        struct iovec iov[3] = {
                { .iov_base = &h, .iov_len = sizeof(h) },
                { .iov_base = UNCONST(a), .iov_len = alen },
                { .iov_base = UNCONST(b), .iov_len = blen },
        };
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 3 };
        ssize_t n;

        if (sizeof(h) + alen + blen > IPC_MSG_MAX)
                return -EMSGSIZE;
        do
                n = sendmsg(fd, &mh, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        if ((size_t) n != sizeof(h) + alen + blen)
                return -EIO; /* SEQPACKET sends whole records or fails */
        return 0;
}

int ipc_send(int fd, uint32_t type, const void *payload, size_t len) {
        return ipc_send2(fd, type, payload, len, NULL, 0);
}

int ipc_recv(int fd, void *buf, size_t bufsz, uint32_t *type, size_t *len, const void **payload) {
        IpcHeader h;
        ssize_t n;

        do
                n = recv(fd, buf, bufsz, MSG_TRUNC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        if (n == 0)
                return 0;
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
