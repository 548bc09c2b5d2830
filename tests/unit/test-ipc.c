/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ipc.h"
#include "test-util.h"

/* The daemon <-> runner channel is a SEQPACKET socketpair. */
static void seqpacket_pair(int fds[2]) {
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds), 0);
        ck_assert_int_eq(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
}

static char buf[IPC_MSG_MAX];

START_TEST(test_roundtrip) {
        IpcCommit commit = { .results_len = 99, .done_total = 3, .failed_total = 1, .n_ranges = 2 };
        IpcRange ranges[2] = { { 0, 1 }, { 5, 2 } };
        const void *payload;
        uint32_t type;
        size_t len;
        int fds[2];

        seqpacket_pair(fds);
        ck_assert_int_eq(ipc_send(fds[1], IPC_READY, NULL, 0), 0);
        ck_assert_int_eq(ipc_send2(fds[1], IPC_COMMIT, &commit, sizeof(commit), ranges, sizeof(ranges)), 0);
        ck_assert_int_eq(ipc_send(fds[1], IPC_START, "{}", 2), 0);

        ck_assert_int_eq(ipc_recv(fds[0], buf, sizeof(buf), &type, &len, &payload), 1);
        ck_assert_uint_eq(type, IPC_READY);
        ck_assert_uint_eq(len, 0);
        ck_assert_int_eq(ipc_recv(fds[0], buf, sizeof(buf), &type, &len, &payload), 1);
        ck_assert_uint_eq(type, IPC_COMMIT);
        ck_assert_uint_eq(len, sizeof(commit) + sizeof(ranges));
        ck_assert_mem_eq(payload, &commit, sizeof(commit));
        ck_assert_mem_eq((const char *) payload + sizeof(commit), ranges, sizeof(ranges));
        ck_assert_int_eq(ipc_recv(fds[0], buf, sizeof(buf), &type, &len, &payload), 1);
        ck_assert_uint_eq(type, IPC_START);
        ck_assert_mem_eq(payload, "{}", 2);

        ck_assert_int_eq(ipc_recv(fds[0], buf, sizeof(buf), &type, &len, &payload), -EAGAIN);
        close(fds[1]);
        ck_assert_int_eq(ipc_recv(fds[0], buf, sizeof(buf), &type, &len, &payload), 0);
        close(fds[0]);
}
END_TEST

START_TEST(test_max_size) {
        size_t max_payload = IPC_MSG_MAX - sizeof(IpcHeader);
        char *big = calloc(1, IPC_MSG_MAX);
        const void *payload;
        uint32_t type;
        size_t len;
        int fds[2];

        ck_assert_ptr_nonnull(big);
        seqpacket_pair(fds);
        /* A socket buffer large enough for the largest message. */
        ck_assert_int_eq(setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &(int){ 4 * IPC_MSG_MAX }, sizeof(int)), 0);
        big[max_payload - 1] = 'z';
        ck_assert_int_eq(ipc_send(fds[1], IPC_START, big, max_payload), 0);
        ck_assert_int_eq(ipc_send(fds[1], IPC_START, big, max_payload + 1), -EMSGSIZE);
        ck_assert_int_eq(ipc_send2(fds[1], IPC_START, big, max_payload, "x", 1), -EMSGSIZE);
        ck_assert_int_eq(ipc_recv(fds[0], buf, sizeof(buf), &type, &len, &payload), 1);
        ck_assert_uint_eq(len, max_payload);
        ck_assert_int_eq(((const char *) payload)[max_payload - 1], 'z');
        /* Nothing of the refused ones was sent. */
        ck_assert_int_eq(ipc_recv(fds[0], buf, sizeof(buf), &type, &len, &payload), -EAGAIN);
        free(big);
        close(fds[0]);
        close(fds[1]);
}
END_TEST

START_TEST(test_malformed) {
        /* What a misbehaving runner could send, written raw. */
        char small[16];
        IpcHeader h;
        const void *payload;
        uint32_t type;
        size_t len;
        int fds[2];

        seqpacket_pair(fds);

        /* Shorter than a header. */
        ck_assert_int_eq(send(fds[1], "abc", 3, 0), 3);
        ck_assert_int_eq(ipc_recv(fds[0], buf, sizeof(buf), &type, &len, &payload), -EBADMSG);
        /* A header whose length does not match the payload, either way. */
        h = (IpcHeader){ .type = IPC_DONE, .len = 5 };
        ck_assert_int_eq(send(fds[1], &h, sizeof(h), 0), (ssize_t) sizeof(h));
        ck_assert_int_eq(ipc_recv(fds[0], buf, sizeof(buf), &type, &len, &payload), -EBADMSG);
        {
                char m[sizeof(h) + 4];

                h.len = 2;
                memcpy(m, &h, sizeof(h));
                memcpy(m + sizeof(h), "abcd", 4);
                ck_assert_int_eq(send(fds[1], m, sizeof(m), 0), (ssize_t) sizeof(m));
                ck_assert_int_eq(ipc_recv(fds[0], buf, sizeof(buf), &type, &len, &payload), -EBADMSG);
        }
        /* Larger than the receive buffer: refused, not cut. */
        ck_assert_int_eq(ipc_send(fds[1], IPC_START, "0123456789abcdef", 16), 0);
        ck_assert_int_eq(ipc_recv(fds[0], small, sizeof(small), &type, &len, &payload), -EBADMSG);
        /* The stream stays in step: the next message is whole. */
        ck_assert_int_eq(ipc_send(fds[1], IPC_DONE, NULL, 0), 0);
        ck_assert_int_eq(ipc_recv(fds[0], small, sizeof(small), &type, &len, &payload), 1);
        ck_assert_uint_eq(type, IPC_DONE);
        close(fds[0]);
        close(fds[1]);
}
END_TEST

START_TEST(test_peer_gone) {
        int fds[2];

        seqpacket_pair(fds);
        close(fds[0]);
        /* No SIGPIPE (the test would die of it), an error instead. */
        ck_assert_int_eq(ipc_send(fds[1], IPC_DONE, NULL, 0), -EPIPE);
        close(fds[1]);
}
END_TEST

static int open_fd_count(void) {
        int n = 0;
        char path[64];

        for (int fd = 0; fd < 1024; fd++) {
                (void) snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
                n += access(path, F_OK) == 0;
        }
        return n;
}

START_TEST(test_fds_pass) {
        int sv[2], p[2], got[IPC_FDS_MAX];
        size_t n_got;
        const void *payload;
        uint32_t type;
        size_t len;
        char c = 0;

        seqpacket_pair(sv);
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        ck_assert_int_eq(ipc_send_fds(sv[1], IPC_START, "x", 1, NULL, 0, p, 2), 0);
        ck_assert_int_eq(ipc_recv_fds(sv[0], buf, sizeof(buf), &type, &len, &payload, got, &n_got), 1);
        ck_assert_uint_eq(n_got, 2);
        ck_assert_uint_eq(len, 1);
        /* The same pipe, and not inherited by what we exec. */
        ck_assert_int_eq(write(got[1], "y", 1), 1);
        ck_assert_int_eq(read(p[0], &c, 1), 1);
        ck_assert_int_eq(c, 'y');
        ck_assert_int_eq(fcntl(got[0], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
        for (int i = 0; i < 2; i++) {
                close(got[i]);
                close(p[i]);
        }
        close(sv[0]);
        close(sv[1]);
}
END_TEST

START_TEST(test_fds_unwanted) {
        int sv[2], p[2], many[IPC_FDS_MAX + 1], got[IPC_FDS_MAX];
        size_t n_got;
        const void *payload;
        uint32_t type;
        size_t len;
        int before;

        seqpacket_pair(sv);
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        before = open_fd_count();
        /* A peer that sends descriptors to a receiver that takes none:
         * the kernel closes them, none lands in our table. */
        ck_assert_int_eq(ipc_send_fds(sv[1], IPC_READY, NULL, 0, NULL, 0, p, 2), 0);
        ck_assert_int_eq(ipc_recv(sv[0], buf, sizeof(buf), &type, &len, &payload), 1);
        ck_assert_int_eq(open_fd_count(), before);
        /* More than a message may carry cannot be sent, and a receiver
         * that takes some closes what it does not accept. */
        for (int i = 0; i < IPC_FDS_MAX + 1; i++)
                many[i] = p[0];
        ck_assert_int_eq(ipc_send_fds(sv[1], IPC_READY, NULL, 0, NULL, 0, many, IPC_FDS_MAX + 1), -EMSGSIZE);
        ck_assert_int_eq(ipc_send_fds(sv[1], IPC_READY, "12345678", 8, NULL, 0, many, IPC_FDS_MAX), 0);
        /* A malformed message (a header lying about its length) with
         * descriptors: all closed, -EBADMSG. */
        {
                IpcHeader h = { .type = IPC_READY, .len = 99 };
                struct iovec iov = { .iov_base = &h, .iov_len = sizeof(h) };
                union {
                        struct cmsghdr align;
                        char b[CMSG_SPACE(sizeof(int))];
                } ctl = {};
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                                     .msg_controllen = sizeof(ctl.b) };
                struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(cm), &p[0], sizeof(int));
                ck_assert_int_eq(sendmsg(sv[1], &mh, 0), (ssize_t) sizeof(h));
        }
        ck_assert_int_eq(ipc_recv_fds(sv[0], buf, sizeof(buf), &type, &len, &payload, got, &n_got), 1);
        ck_assert_uint_eq(n_got, IPC_FDS_MAX);
        for (size_t i = 0; i < n_got; i++)
                close(got[i]);
        ck_assert_int_eq(ipc_recv_fds(sv[0], buf, sizeof(buf), &type, &len, &payload, got, &n_got), -EBADMSG);
        ck_assert_uint_eq(n_got, 0);
        ck_assert_int_eq(open_fd_count(), before);
        close(p[0]);
        close(p[1]);
        close(sv[0]);
        close(sv[1]);
}
END_TEST

static Suite *ipc_suite(void) {
        Suite *s = suite_create("ipc");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_roundtrip);
        tcase_add_test(tc, test_max_size);
        tcase_add_test(tc, test_malformed);
        tcase_add_test(tc, test_peer_gone);
        tcase_add_test(tc, test_fds_pass);
        tcase_add_test(tc, test_fds_unwanted);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return test_run_suite(ipc_suite());
}
