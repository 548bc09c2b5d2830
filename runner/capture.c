/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include "capture.h"
#include "log.h"
#include "macro.h"
#include "output.h"

/* The journal limits each unit's messages, and a runner is in mplockd's
 * unit: one job printing without end would have everybody's lines and
 * mplockd's own dropped. So the workers' lines of a job (this process)
 * reach the journal at CAPTURE_JOURNAL_RATE a second, in bursts of
 * CAPTURE_JOURNAL_BURST; what is held back is counted, and said, and is
 * in the job's log all the same. */
static struct {
        double tokens;
        uint64_t last_usec, suppressed;
        bool started;
} journal_budget;

static uint64_t mono_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static bool journal_take(void) {
        uint64_t now = mono_usec();

        if (!journal_budget.started) {
                journal_budget.tokens = CAPTURE_JOURNAL_BURST;
                journal_budget.started = true;
        } else
                journal_budget.tokens = MIN((double) CAPTURE_JOURNAL_BURST,
                                            journal_budget.tokens + (double) (now - journal_budget.last_usec) *
                                                                            CAPTURE_JOURNAL_RATE / 1e6);
        journal_budget.last_usec = now;
        if (journal_budget.tokens < 1) {
                journal_budget.suppressed++;
                return false;
        }
        journal_budget.tokens -= 1;
        return true;
}

static void capture_line(Capture *c, const char *line, size_t len, bool newline) {
        struct iovec iov[2] = { { (void *) UNCONST(line), len }, { (void *) UNCONST("\n"), 1 } };
        ssize_t n;

        /* A log we cannot write loses the line, not the job. */
        do
                n = writev(c->out->log_fd, iov, newline ? 2 : 1);
        while (n < 0 && errno == EINTR);
        if (!log_is_journal() || !journal_take())
                return;
        if (journal_budget.suppressed > 0) {
                (void) sd_journal_send("MESSAGE=job %llu: %llu lines of its workers were not sent to the journal "
                                       "(at most %u a second): they are in the job's log",
                                       (unsigned long long) c->out->job_id,
                                       (unsigned long long) journal_budget.suppressed, CAPTURE_JOURNAL_RATE,
                                       "PRIORITY=%i", LOG_NOTICE, "SYSLOG_IDENTIFIER=mplock-runner",
                                       "MPLOCK_JOB=%llu", (unsigned long long) c->out->job_id, NULL);
                journal_budget.suppressed = 0;
        }
        (void) sd_journal_send("MESSAGE=%.*s", (int) len, line, "PRIORITY=%i", LOG_INFO,
                               "SYSLOG_IDENTIFIER=mplock-worker", "MPLOCK_JOB=%llu",
                               (unsigned long long) c->out->job_id, "MPLOCK_WORKER=%u", c->worker_no, NULL);
}

/* Writes out the complete lines; with all (the worker is gone), the rest. */
static void capture_flush(Capture *c, bool all) {
        size_t start = 0;

        for (;;) {
                char *nl = memchr(c->buf + start, '\n', c->len - start);
                if (!nl)
                        break;
                capture_line(c, c->buf + start, (size_t) (nl - (c->buf + start)), true);
                start = (size_t) (nl - c->buf) + 1;
        }
        /* A line longer than the buffer is cut; a partial last line waits
         * for its end unless the worker is gone. */
        if (c->len - start == sizeof(c->buf) || (all && c->len > start)) {
                capture_line(c, c->buf + start, c->len - start, all);
                start = c->len;
        }
        memmove(c->buf, c->buf + start, c->len - start);
        c->len -= start;
}

bool capture_read(Capture *c) {
        if (c->fd < 0)
                return false;
        for (;;) {
                ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        bool more = n < 0 && errno == EAGAIN; /* before the flush's writes */
                        capture_flush(c, n == 0);
                        return more;
                }
                c->len += (size_t) n;
                capture_flush(c, false);
        }
}

static int capture_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Capture *c = userdata;

        (void) fd;
        (void) revents;
        if (!capture_read(c))
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        return 0;
}

int capture_start(Capture *c, sd_event *event, int fd, const Output *out, uint32_t worker_no) {
        c->out = out;
        c->worker_no = worker_no;
        c->fd = fd;
        c->len = 0;
        if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
                return -errno;
        return sd_event_add_io(event, &c->io, fd, EPOLLIN, capture_io, c);
}

void capture_stop(Capture *c) {
        c->io = sd_event_source_disable_unref(c->io);
        c->fd = safe_close(c->fd);
}
