/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "control.h"
#include "json-util.h"
#include "test-util.h"

/* The transport on its own: a real socket, a real sd-event loop, clients
 * in this process, and a handler that stands in for the API. */

typedef struct Fixture {
        sd_event *event;
        Settings settings;
        Control *control;
        char sock[PATH_MAX];
        Call *held; /* a call the handler answers later */
        unsigned calls, gone;
        size_t reply_bytes; /* "big": reply with this much */
} Fixture;

static void on_gone(Call *call, void *userdata) {
        Fixture *f = userdata;

        ck_assert_ptr_eq(call, f->held);
        f->gone++;
        f->held = call_unref(f->held);
}

static void handler(Call *call, void *userdata) {
        Fixture *f = userdata;
        const char *m = call_method(call);
        json_object *p = json_object_new_object();

        f->calls++;
        if (streq(m, "t.Echo")) {
                json_object_object_add(p, "echo", json_object_get(json_get(call_parameters(call), "x")));
                json_add_u64(p, "uid", call_uid(call));
                call_reply(call, p);
        } else if (streq(m, "t.Hold")) {
                json_object_put(p);
                f->held = call_ref(call);
                call_on_gone(call, on_gone, f);
        } else if (streq(m, "t.Big")) {
                char *s = malloc(f->reply_bytes + 1);
                memset(s, 'x', f->reply_bytes);
                s[f->reply_bytes] = '\0';
                json_add_str(p, "s", s);
                free(s);
                call_reply(call, p);
        } else {
                json_object_put(p);
                call_error(call, "t.Unknown", NULL);
                /* Answered: still readable until we return. */
                ck_assert_str_eq(call_method(call), m);
        }
}

static void fixture_init(Fixture *f) {
        char dir[PATH_MAX];
        int fd = test_tmpdir(dir, sizeof(dir));

        close(fd);
        memset(f, 0, sizeof(*f));
        settings_defaults(&f->settings);
        (void) snprintf(f->sock, sizeof(f->sock), "%s/sock", dir);
        ck_assert_int_eq(sd_event_new(&f->event), 0);
        ck_assert_int_eq(control_new(&f->control, f->event, &f->settings, handler, f), 0);
        ck_assert_int_eq(control_listen(f->control, f->sock, false), 0);
}

static void fixture_done(Fixture *f) {
        f->control = control_free(f->control);
        f->held = call_unref(f->held);
        f->event = sd_event_unref(f->event);
}

static int client(Fixture *f) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        ck_assert_int_ge(fd, 0);
        strcpy(sa.sun_path, f->sock);
        ck_assert_int_eq(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        return fd;
}

static void send_msg(int fd, const char *json) {
        ck_assert_int_eq(write_full(fd, json, strlen(json) + 1), 0);
}

static void run(Fixture *f, unsigned iterations) {
        for (unsigned i = 0; i < iterations; i++)
                ck_assert_int_ge(sd_event_run(f->event, 10000), 0);
}

/* What arrived on fd within the loop's turns, until `messages` whole
 * messages are in: bytes, or -1 at EOF. */
static ssize_t drain_n(Fixture *f, int fd, char *buf, size_t cap, unsigned messages) {
        size_t len = 0;
        unsigned got = 0;

        for (int k = 0; k < 200 && got < messages; k++) {
                ssize_t n;
                run(f, 1);
                n = recv(fd, buf + len, cap - len - 1, MSG_DONTWAIT);
                if (n == 0)
                        return -1;
                for (ssize_t i = 0; i < n; i++)
                        got += buf[len + (size_t) i] == '\0';
                if (n > 0)
                        len += (size_t) n;
        }
        buf[len] = '\0';
        return (ssize_t) len;
}

static ssize_t drain(Fixture *f, int fd, char *buf, size_t cap) {
        return drain_n(f, fd, buf, cap, 1);
}

START_TEST(test_calls_in_order) {
        Fixture f;
        char buf[4096];
        ssize_t n;
        int c;

        fixture_init(&f);
        c = client(&f);
        /* Pipelined: the second waits until the first has its answer. */
        send_msg(c, "{\"method\":\"t.Hold\"}");
        send_msg(c, "{\"method\":\"t.Echo\",\"parameters\":{\"x\":5}}");
        run(&f, 20);
        ck_assert_uint_eq(f.calls, 1);
        ck_assert_ptr_nonnull(f.held);
        call_reply(f.held, NULL);
        call_reply(f.held, NULL); /* a second answer is ignored */
        f.held = call_unref(f.held);
        n = drain_n(&f, c, buf, sizeof(buf), 2);
        ck_assert_int_gt(n, 0);
        ck_assert_str_eq(buf, "{\"parameters\":{}}");
        ck_assert_ptr_nonnull(strstr(buf + strlen(buf) + 1, "\"echo\":5"));
        ck_assert_uint_eq(f.calls, 2);
        close(c);
        fixture_done(&f);
}
END_TEST

START_TEST(test_gone_while_held) {
        Fixture f;
        int c;

        fixture_init(&f);
        c = client(&f);
        send_msg(c, "{\"method\":\"t.Hold\"}");
        run(&f, 20);
        ck_assert_ptr_nonnull(f.held);
        close(c);
        run(&f, 20);
        ck_assert_uint_eq(f.gone, 1);
        ck_assert_ptr_null(f.held);
        fixture_done(&f);
}
END_TEST

/* A reply past what all clients together may have queued drops that
 * client, and only it. */
START_TEST(test_queued_output_is_bounded) {
        Fixture f;
        char buf[4096];
        int c, d;

        fixture_init(&f);
        f.settings.max_queued_output = 1u << 20;
        f.reply_bytes = 2u << 20;
        c = client(&f);
        d = client(&f);
        send_msg(c, "{\"method\":\"t.Big\"}");
        ck_assert_int_eq(drain(&f, c, buf, sizeof(buf)), -1);
        send_msg(d, "{\"method\":\"t.Echo\",\"parameters\":{\"x\":1}}");
        ck_assert_int_gt(drain(&f, d, buf, sizeof(buf)), 0);
        close(c);
        close(d);
        fixture_done(&f);
}
END_TEST

START_TEST(test_idle_client_is_dropped) {
        Fixture f;
        char buf[64];
        struct timespec t0, t1;
        int c;

        fixture_init(&f);
        f.settings.idle_timeout_usec = 500000;
        c = client(&f);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int k = 0; k < 400; k++) {
                ck_assert_int_ge(sd_event_run(f.event, 10000), 0);
                if (recv(c, buf, sizeof(buf), MSG_DONTWAIT) == 0)
                        break;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ck_assert_int_eq(recv(c, buf, sizeof(buf), MSG_DONTWAIT), 0);
        /* Not before its time: half a second, swept once a second. */
        ck_assert_int_ge((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000, 450);
        close(c);
        fixture_done(&f);
}
END_TEST

START_TEST(test_garbage_drops_the_client) {
        Fixture f;
        char buf[64];
        int c;

        fixture_init(&f);
        c = client(&f);
        send_msg(c, "{\"not\":\"a call\"}");
        ck_assert_int_eq(drain(&f, c, buf, sizeof(buf)), -1);
        ck_assert_uint_eq(f.calls, 0);
        close(c);
        fixture_done(&f);
}
END_TEST

static Suite *control_suite(void) {
        Suite *s = suite_create("control");
        TCase *tc = tcase_create("core");

        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_calls_in_order);
        tcase_add_test(tc, test_gone_while_held);
        tcase_add_test(tc, test_queued_output_is_bounded);
        tcase_add_test(tc, test_idle_client_is_dropped);
        tcase_add_test(tc, test_garbage_drops_the_client);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return test_run_suite(control_suite());
}
