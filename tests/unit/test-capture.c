/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "capture.h"
#include "output.h"
#include "test-util.h"
#include "worker.h"

/* A capture writing into a memfd, as the job log; the worker's page. */
typedef struct T {
        Output out;
        Capture c;
        WorkerProgress page;
} T;

static void t_init(T *t) {
        memset(t, 0, sizeof(*t));
        output_init(&t->out, "/nonexistent", 1);
        t->out.log_fd = memfd_create("log", MFD_CLOEXEC);
        ck_assert_int_ge(t->out.log_fd, 0);
        t->c = (Capture){ .out = &t->out, .worker_no = 3, .progress = &t->page, .fd = -1 };
}

/* The log, each line without its timestamp (checked, then cut off). */
static char *t_log(T *t) {
        static char buf[8192];
        char *o = buf;
        ssize_t n = pread(t->out.log_fd, buf, sizeof(buf) - 1, 0);
        char *line, *save = NULL, *copy;

        ck_assert_int_ge(n, 0);
        buf[n] = 0;
        copy = strdup(buf);
        ck_assert_ptr_nonnull(copy);
        *o = 0;
        for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                /* 2026-01-02T03:04:05.123456Z */
                ck_assert_msg(strlen(line) > 28 && line[10] == 'T' && line[26] == 'Z' && line[27] == ' ', "%s", line);
                o += sprintf(o, "%s\n", line + 28);
        }
        free(copy);
        return buf;
}

static void feed(T *t, const char *s) {
        capture_feed(&t->c, s, strlen(s));
}

START_TEST(test_marked_spans_name_their_items) {
        T t;

        t_init(&t);
        /* A span split anywhere, a batch, a line over two spans, a mark
         * cut in two reads. */
        feed(&t, "\0364 1 6\nhello\n\0365 4 3\nab");
        feed(&t, "c");
        feed(&t, "\0365 4 4\n de\n\036");
        feed(&t, "9 1 2\nx\n");
        ck_assert_str_eq(t_log(&t), "worker 3 item 4: hello\nworker 3 items 5..8: abc de\nworker 3 item 9: x\n");
        close(t.out.log_fd);
}
END_TEST

START_TEST(test_unmarked_bytes_are_named_after_the_page) {
        T t;

        t_init(&t);
        t.page.item_first = 17;
        t.page.item_count = 1;
        feed(&t, "raw\n");
        t.page.item_count = 0;
        feed(&t, "between calls\n");
        /* Not a mark: text as it was. */
        feed(&t, "\036nonsense\n");
        feed(&t, "tail");
        capture_read(&t.c); /* fd -1: nothing read, nothing ended */
        ck_assert_str_eq(t_log(&t), "worker 3 item 17: raw\nworker 3: between calls\nworker 3: \036nonsense\n");
        /* The partial line waits for its end. */
        feed(&t, "!\n");
        ck_assert_str_eq(t_log(&t), "worker 3 item 17: raw\nworker 3: between calls\nworker 3: \036nonsense\n"
                                    "worker 3: tail!\n");
        close(t.out.log_fd);
}
END_TEST

START_TEST(test_a_mark_does_not_swallow_a_newline_inside_its_span) {
        T t;

        t_init(&t);
        /* Its span holds two lines; the bytes after it are the page's. */
        t.page.item_first = 2;
        t.page.item_count = 1;
        feed(&t, "\0360 1 4\na\nb\nc\n");
        ck_assert_str_eq(t_log(&t), "worker 3 item 0: a\nworker 3 item 0: b\nworker 3 item 2: c\n");
        close(t.out.log_fd);
}
END_TEST

static Suite *capture_suite(void) {
        Suite *s = suite_create("capture");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_marked_spans_name_their_items);
        tcase_add_test(tc, test_unmarked_bytes_are_named_after_the_page);
        tcase_add_test(tc, test_a_mark_does_not_swallow_a_newline_inside_its_span);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return test_run_suite(capture_suite());
}
