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
#include "worker.h"

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

/* "worker 1 item 4", "worker 1 items 4..7", or "worker 1". */
static void describe(const Capture *c, const CaptureItems *it, char *buf, size_t size) {
        if (it->count == 1)
                (void) snprintf(buf, size, "worker %u item %llu", c->worker_no, (unsigned long long) it->first);
        else if (it->count > 1)
                (void) snprintf(buf, size, "worker %u items %llu..%llu", c->worker_no, (unsigned long long) it->first,
                                (unsigned long long) (it->first + it->count - 1));
        else
                (void) snprintf(buf, size, "worker %u", c->worker_no);
}

static void capture_line(Capture *c, const char *line, size_t len) {
        char when[OUTPUT_TIMESTAMP_MAX], who[96], prefix[OUTPUT_TIMESTAMP_MAX + 100];
        struct iovec iov[3];
        size_t n;
        ssize_t k;

        output_timestamp(when);
        describe(c, &c->line, who, sizeof(who));
        n = (size_t) snprintf(prefix, sizeof(prefix), "%s %s: ", when, who);
        iov[0] = (struct iovec){ prefix, MIN(n, sizeof(prefix) - 1) };
        iov[1] = (struct iovec){ (void *) UNCONST(line), len };
        iov[2] = (struct iovec){ (void *) UNCONST("\n"), 1 };
        /* A log we cannot write loses the line, not the job. */
        do
                k = writev(c->out->log_fd, iov, 3);
        while (k < 0 && errno == EINTR);
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
                               (unsigned long long) c->out->job_id, "MPLOCK_WORKER=%u", c->worker_no,
                               c->line.count ? "MPLOCK_ITEM=%llu" : NULL, (unsigned long long) c->line.first, NULL);
}

/* The call in progress, as the worker's page says. */
static CaptureItems page_items(const Capture *c) {
        CaptureItems it = {};

        if (c->progress) {
                it.count = __atomic_load_n(&c->progress->item_count, __ATOMIC_ACQUIRE);
                it.first = __atomic_load_n(&c->progress->item_first, __ATOMIC_RELAXED);
        }
        return it;
}

/* Text, marked (a stdio span) or not, into lines; each named after the
 * items in force at its first byte. */
static void capture_text(Capture *c, const char *p, size_t n, bool marked) {
        while (n > 0) {
                const char *nl = memchr(p, '\n', n);
                size_t take = nl ? (size_t) (nl - p) : n;

                if (c->len == 0)
                        c->line = marked ? c->span : page_items(c);
                /* A line longer than the buffer is cut. */
                take = MIN(take, sizeof(c->buf) - c->len);
                memcpy(c->buf + c->len, p, take);
                c->len += take;
                p += take;
                n -= take;
                if (n > 0 && *p == '\n') {
                        p++;
                        n--;
                        capture_line(c, c->buf, c->len);
                        c->len = 0;
                } else if (c->len == sizeof(c->buf)) {
                        capture_line(c, c->buf, c->len);
                        c->len = 0;
                }
        }
}

/* A complete mark, "\036FIRST COUNT LENGTH": its span follows; anything
 * else was text. */
static void capture_mark(Capture *c) {
        unsigned long long first, len;
        unsigned count;
        char end;

        c->mark[c->mark_len] = 0;
        if (sscanf(c->mark + 1, "%llu %u %llu%c", &first, &count, &len, &end) == 3) {
                c->span = (CaptureItems){ first, count };
                c->span_left = len;
        } else {
                capture_text(c, c->mark, c->mark_len, false);
                capture_text(c, "\n", 1, false); /* the end of the line it took for a mark's */
        }
        c->mark_len = 0;
}

void capture_feed(Capture *c, const char *data, size_t n) {
        while (n > 0) {
                size_t take;

                if (c->mark_len > 0) {
                        if (*data == '\n') {
                                capture_mark(c);
                        } else {
                                c->mark[c->mark_len++] = *data;
                                if (c->mark_len == sizeof(c->mark) - 1) {
                                        capture_text(c, c->mark, c->mark_len, false); /* too long for a mark */
                                        c->mark_len = 0;
                                }
                        }
                        data++;
                        n--;
                        continue;
                }
                if (c->span_left > 0) {
                        take = (size_t) MIN((uint64_t) n, c->span_left);
                        capture_text(c, data, take, true);
                        c->span_left -= take;
                } else if (*data == WORKER_MARK) {
                        c->mark[c->mark_len++] = *data;
                        take = 1;
                } else {
                        const char *m = memchr(data, WORKER_MARK, n);
                        take = m ? (size_t) (m - data) : n;
                        capture_text(c, data, take, false);
                }
                data += take;
                n -= take;
        }
}

/* At the end: a partial line, or mark, is written out as it is. */
static void capture_end(Capture *c) {
        if (c->mark_len > 0) {
                capture_text(c, c->mark, c->mark_len, false);
                c->mark_len = 0;
        }
        if (c->len > 0) {
                capture_line(c, c->buf, c->len);
                c->len = 0;
        }
}

bool capture_read(Capture *c) {
        char raw[16384];

        if (c->fd < 0)
                return false;
        for (;;) {
                ssize_t n = read(c->fd, raw, sizeof(raw));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        if (n == 0)
                                capture_end(c);
                        return n < 0 && errno == EAGAIN;
                }
                capture_feed(c, raw, (size_t) n);
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

int capture_start(Capture *c, sd_event *event, int fd, const Output *out, uint32_t worker_no,
                  const WorkerProgress *progress) {
        c->out = out;
        c->worker_no = worker_no;
        c->progress = progress;
        c->fd = fd;
        c->len = c->mark_len = 0;
        c->span_left = 0;
        if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
                return -errno;
        return sd_event_add_io(event, &c->io, fd, EPOLLIN, capture_io, c);
}

void capture_stop(Capture *c) {
        c->io = sd_event_source_disable_unref(c->io);
        c->fd = safe_close(c->fd);
}
