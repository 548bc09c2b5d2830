/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "json-util.h"
#include "macro.h"
#include "mplockctl.h"
#include "varlink-names.h"

/* top: the caller's jobs (every job, for an admin: List decides) in a table
 * on the alternate screen, refreshed every second, with keys to pause,
 * resume and cancel the selected one. Plain ANSI escapes (VT100's, and
 * xterm's alternate screen), no curses. The terminal is left as it was
 * found on every way out: q, an error, and the signals that end a program
 * from its terminal or from kill, whose handler puts it back itself, since
 * a call to mplockd may be what top is blocked in. */

#define REFRESH_MSEC 1000
#define STATUS_MAX 256

/* The terminal as found. Globals: the signal handler restores it. */
static struct termios saved_termios;
static volatile sig_atomic_t term_active;

static const char TERM_ENTER[] = "\033[?1049h\033[?25l\033[H\033[2J";
/* CAN first: it ends an escape sequence that a signal cut in half. */
static const char TERM_LEAVE[] = "\030\033[0m\033[?25h\033[?1049l";

/* Async-signal-safe: write() and tcsetattr() only. */
static void term_restore(void) {
        if (!term_active)
                return;
        term_active = 0;
        (void) write_full(STDOUT_FILENO, TERM_LEAVE, sizeof(TERM_LEAVE) - 1);
        (void) tcsetattr(STDIN_FILENO, TCSADRAIN, &saved_termios);
}

static void on_fatal_signal(int sig) {
        int saved = errno;

        term_restore();
        /* SA_RESETHAND made the default action current: top dies of the
         * signal once this returns, as it would have untouched. */
        (void) raise(sig);
        errno = saved;
}

static int term_signals(void) {
        static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
        struct sigaction sa = { .sa_handler = on_fatal_signal, .sa_flags = SA_RESETHAND };

        if (sigemptyset(&sa.sa_mask) < 0)
                return -errno;
        for (size_t i = 0; i < ELEMENTSOF(sigs); i++)
                if (sigaction(sigs[i], &sa, NULL) < 0)
                        return -errno;
        return watch_on_winch();
}

static int term_enter(void) {
        struct termios raw;

        if (tcgetattr(STDIN_FILENO, &saved_termios) < 0)
                return -errno;
        raw = saved_termios;
        /* Keys one at a time and unechoed; Ctrl-C stays SIGINT, Ctrl-Z is
         * off (a stopped top would leave the terminal raw). */
        raw.c_lflag &= ~(tcflag_t) (ICANON | ECHO);
        raw.c_cc[VMIN] = 1;
        raw.c_cc[VTIME] = 0;
        raw.c_cc[VSUSP] = _POSIX_VDISABLE;
        if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) < 0)
                return -errno;
        term_active = 1;
        return write_full(STDOUT_FILENO, TERM_ENTER, sizeof(TERM_ENTER) - 1);
}

typedef struct Top {
        Ctl *c;
        json_object *jobs; /* the last List's array, owned */
        uint64_t selected; /* the selected job's id; 0: none */
        size_t index;      /* its row, kept when it goes away */
        size_t first;      /* the first job shown (scrolling) */
        uint64_t confirm;  /* the job asked about: cancel it? */
        char status[STATUS_MAX];
        bool utf8, quit;
} Top;

static size_t top_n(const Top *t) {
        return t->jobs ? json_object_array_length(t->jobs) : 0;
}

static json_object *top_job(const Top *t, size_t i) {
        return json_object_array_get_idx(t->jobs, i);
}

static json_object *top_selected(const Top *t) {
        size_t n = top_n(t);

        return t->index < n && job_uint(top_job(t, t->index), "id") == t->selected ? top_job(t, t->index) : NULL;
}

static void top_select(Top *t, size_t i) {
        size_t n = top_n(t);

        t->index = n == 0 ? 0 : MIN(i, n - 1);
        t->selected = n == 0 ? 0 : job_uint(top_job(t, t->index), "id");
}

/* After a refresh: the same job selected, wherever it is now. */
static void top_reselect(Top *t) {
        size_t n = top_n(t);

        for (size_t i = 0; i < n; i++)
                if (job_uint(top_job(t, i), "id") == t->selected) {
                        t->index = i;
                        return;
                }
        top_select(t, t->index);
}

static void top_status(Top *t, const char *fmt, ...) _printf_(2, 3);
static void top_status(Top *t, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(t->status, sizeof(t->status), fmt, ap);
        va_end(ap);
}

/* A call to mplockd; while the screen is up, its error goes to the status
 * line (stderr would be drawn over). */
static int top_call(Top *t, const char *method, json_object *params, json_object **reply) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        FILE *f = NULL;
        int r;

        if (term_active) {
                f = open_memstream(&buf, &len);
                if (!f) {
                        json_object_put(params);
                        top_status(t, "out of memory");
                        return EXIT_ERROR;
                }
        }
        t->c->err = f;
        r = ctl_call(t->c, method, params, false, reply, NULL);
        t->c->err = NULL;
        if (f && fclose(f) == 0 && r != EXIT_OK && buf) {
                const char *msg = has_prefix(buf, "mplockctl: ") ? buf + strlen("mplockctl: ") : buf;
                top_status(t, "%.*s", (int) strcspn(msg, "\n"), msg);
        }
        return r;
}

static int top_refresh(Top *t) {
        json_object *reply, *jobs;
        int r = top_call(t, MPLOCK_METHOD_LIST, NULL, &reply);

        if (r != EXIT_OK)
                return r;
        jobs = json_get(reply, "jobs");
        if (!jobs || !json_object_is_type(jobs, json_type_array)) {
                top_status(t, "malformed reply from mplockd");
                if (!term_active)
                        fprintf(stderr, "mplockctl: %s\n", t->status);
                return EXIT_ERROR;
        }
        json_object_put(t->jobs);
        /* It outlives the reply it came in. */
        t->jobs = json_object_get(jobs);
        top_reselect(t);
        return EXIT_OK;
}

/* --- drawing -------------------------------------------------------------- */

/* Columns but the bar and the name, and the least the name gets. */
#define FIXED_COLS 96u
#define NAME_MIN 12u
#define BAR_MIN 8u
#define BAR_MAX 40u

static const char *owner_name(uint64_t uid, char *buf, size_t n) {
        struct passwd *pw = uid <= UINT32_MAX ? getpwuid((uid_t) uid) : NULL;

        if (pw && pw->pw_name)
                return pw->pw_name;
        (void) snprintf(buf, n, "%llu", (unsigned long long) uid);
        return buf;
}

static const char *state_name(json_object *job) {
        const char *s = job_str(job, "state");

        /* The only state wider than its column. */
        return streq(s, "completed_with_failures") ? "partial" : s;
}

static void top_heads(Line *l, unsigned bar) {
        line_put(l, "", 2);
        line_put(l, "ID", 6);
        line_put(l, " OWNER", -11);
        line_put(l, " STATE", -10);
        if (bar > 0) {
                line_put(l, " ", 0);
                line_put(l, "PROGRESS", -(int) bar);
        }
        line_put(l, "%", 7);
        line_put(l, "DONE/ITEMS", 14);
        line_put(l, "RATE", 9);
        line_put(l, "ETA", 8);
        line_put(l, "WORK", 5);
        line_put(l, "FAILED", 7);
        line_put(l, "CPU", 8);
        line_put(l, "MEM", 7);
        line_put(l, " NAME", 0);
}

static void top_row(Line *l, json_object *job, unsigned bar, bool selected) {
        uint64_t items = job_uint(job, "items"), done = job_progress(job);
        json_object *u = json_get(job, "usage"), *eta = json_get(job, "eta_seconds");
        bool running = streq(job_str(job, "state"), "running");
        char buf[64], owner[32];

        line_put(l, selected ? ">" : "", -2);
        line_printf(l, 6, "%llu", (unsigned long long) job_uint(job, "id"));
        line_put(l, " ", 0);
        line_put(l, owner_name(job_uint(job, "uid"), owner, sizeof(owner)), -10);
        line_put(l, " ", 0);
        line_put(l, state_name(job), -9);
        if (bar > 0) {
                line_put(l, " ", 0);
                line_bar(l, progress_fraction(done, items), bar);
        }
        format_percent(done, items, buf, sizeof(buf));
        line_put(l, buf, 7);
        line_printf(l, 14, "%llu/%llu", (unsigned long long) done, (unsigned long long) items);
        /* An ended job's average; nothing for one queued or paused. */
        if (running || job_ended(job))
                format_rate(job_rate(job), buf, sizeof(buf));
        line_put(l, running || job_ended(job) ? buf : "-", 9);
        if (eta)
                format_duration((uint64_t) MAX(json_object_get_int64(eta), 0), buf, sizeof(buf));
        line_put(l, eta ? buf : "-", 8);
        line_printf(l, 5, "%llu", (unsigned long long) job_uint(job, "live_workers"));
        line_printf(l, 7, "%llu", (unsigned long long) job_uint(job, "failed"));
        if (json_get(u, "cpu_usec")) {
                uint64_t usec = job_uint(u, "cpu_usec");
                if (usec < 60 * 1000000ull)
                        (void) snprintf(buf, sizeof(buf), "%.1fs", (double) usec / 1e6);
                else
                        format_duration(usec / 1000000, buf, sizeof(buf));
        }
        line_put(l, json_get(u, "cpu_usec") ? buf : "-", 8);
        if (json_get(u, "memory_current"))
                format_size(job_uint(u, "memory_current"), buf, sizeof(buf));
        line_put(l, json_get(u, "memory_current") ? buf : "-", 7);
        line_put(l, " ", 0);
        line_put(l, job_str(job, "name"), 0);
}

static void top_header(const Top *t, Line *l) {
        size_t n = top_n(t), running = 0, queued = 0, paused = 0;

        for (size_t i = 0; i < n; i++) {
                const char *s = job_str(top_job(t, i), "state");
                running += streq(s, "running");
                queued += streq(s, "queued");
                paused += streq(s, "paused");
        }
        line_printf(l, 0, "mplock top: %zu job%s, %zu running, %zu queued, %zu paused", n, n == 1 ? "" : "s", running,
                    queued, paused);
        line_put(l, t->utf8 ? "    \u2191\u2193/jk select" : "    up/down select", 0);
        line_put(l, "  p pause  r resume  c cancel  q quit", 0);
}

/* The whole screen, in one write. */
static int top_draw(Top *t) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, n = top_n(t), vis;
        unsigned cols, rows, bar;
        FILE *f;
        Line l;
        int r;

        terminal_size(STDOUT_FILENO, &cols, &rows);
        (void) watch_winched();
        vis = rows > 3 ? rows - 3 : 1;
        /* The selected row stays in view. */
        if (t->index < t->first)
                t->first = t->index;
        if (t->index >= t->first + vis)
                t->first = t->index - vis + 1;
        if (t->first + vis > n)
                t->first = n > vis ? n - vis : 0;
        bar = cols > FIXED_COLS + NAME_MIN ? MIN(cols - FIXED_COLS - NAME_MIN, BAR_MAX) : 0;
        if (bar < BAR_MIN)
                bar = 0;

        f = open_memstream(&buf, &len);
        if (!f)
                return -ENOMEM;
        line_init(&l, cols, t->utf8);
        top_header(t, &l);
        fprintf(f, "\033[H%s\033[K", l.buf);
        line_init(&l, cols, t->utf8);
        top_heads(&l, bar);
        line_put(&l, "", -(int) cols);
        fprintf(f, "\033[2;1H\033[7m%s\033[0m\033[K", l.buf);
        for (size_t row = 0; row < vis && row + 3 < rows; row++) {
                size_t i = t->first + row;
                line_init(&l, cols, t->utf8);
                if (i < n)
                        top_row(&l, top_job(t, i), bar, i == t->index);
                fprintf(f, "\033[%zu;1H%s%s\033[0m\033[K", row + 3, i < n && i == t->index ? "\033[1m" : "", l.buf);
        }
        line_init(&l, cols > 1 ? cols - 1 : 1, t->utf8);
        line_put(&l, n == 0 ? "No jobs." : "", 0);
        line_put(&l, t->status, 0);
        fprintf(f, "\033[%u;1H%s\033[K", rows, l.buf);
        if (fclose(f) != 0)
                return -ENOMEM;
        r = write_full(STDOUT_FILENO, buf, len);
        return r;
}

/* --- keys ----------------------------------------------------------------- */

/* Pause, resume or cancel the selected job; what came of it on the status
 * line. Pause and Cancel return once the items in flight are done: told
 * first, as it can take that long. */
static int top_act(Top *t, const char *method, const char *doing, const char *done) {
        json_object *job = top_selected(t), *reply;
        uint64_t id = t->selected;
        int r;

        if (!job) {
                top_status(t, "No job selected.");
                return EXIT_OK;
        }
        top_status(t, "%s job %llu...", doing, (unsigned long long) id);
        (void) top_draw(t);
        r = top_call(t, method, id_params(id), &reply);
        if (r == EXIT_OK)
                top_status(t, "Job %llu %s.", (unsigned long long) id, done);
        /* Only a connection gone ends top: a refusal is told and it goes on. */
        return r == EXIT_UNREACHABLE ? r : EXIT_OK;
}

static int top_key(Top *t, char key) {
        if (t->confirm) {
                uint64_t id = t->confirm;
                t->confirm = 0;
                if (key != 'y' && key != 'Y') {
                        top_status(t, "Job %llu not cancelled.", (unsigned long long) id);
                        return EXIT_OK;
                }
                if (id != t->selected) {
                        top_status(t, "The selection changed; job %llu not cancelled.", (unsigned long long) id);
                        return EXIT_OK;
                }
                return top_act(t, MPLOCK_METHOD_CANCEL, "Cancelling", "cancelled");
        }
        switch (key) {
        case 'q':
        case 'Q':
        case 3: /* Ctrl-C, should it come as a key */
                t->quit = true;
                return EXIT_OK;
        case 'k':
        case 'A': /* the end of ESC [ A */
                if (t->index > 0)
                        top_select(t, t->index - 1);
                return EXIT_OK;
        case 'j':
        case 'B':
                top_select(t, t->index + 1);
                return EXIT_OK;
        case 'p':
                return top_act(t, MPLOCK_METHOD_PAUSE, "Pausing", "paused");
        case 'r':
                return top_act(t, MPLOCK_METHOD_RESUME, "Resuming", "resumed");
        case 'c':
                if (!top_selected(t)) {
                        top_status(t, "No job selected.");
                        return EXIT_OK;
                }
                t->confirm = t->selected;
                top_status(t, "Cancel job %llu (%s)? y/n", (unsigned long long) t->selected,
                           job_str(top_selected(t), "name"));
                return EXIT_OK;
        default:
                return EXIT_OK;
        }
}

/* Keys as read: the arrows come as ESC [ A / ESC O A (B: down); any other
 * escape sequence is skipped whole. */
static int top_keys(Top *t, const char *buf, size_t n) {
        int r = EXIT_OK;

        for (size_t i = 0; i < n && r == EXIT_OK && !t->quit; i++) {
                char key = buf[i];
                if (key == '\033' && i + 1 < n && (buf[i + 1] == '[' || buf[i + 1] == 'O')) {
                        i += 2;
                        while (i < n && buf[i] >= 0x30 && buf[i] <= 0x3f)
                                i++;
                        if (i >= n)
                                break;
                        key = buf[i] == 'A' || buf[i] == 'B' ? buf[i] : '\033';
                } else if (key == 'A' || key == 'B')
                        key = '\0'; /* a letter, not an arrow */
                r = top_key(t, key);
        }
        return r;
}

static uint64_t now_msec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* Refreshes every second, and at once after an action; redraws after
 * every key and resize. */
static int top_loop(Top *t) {
        uint64_t last = 0;
        bool stale = true;
        int r;

        for (;;) {
                struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
                char keys[64];
                uint64_t now = now_msec();
                ssize_t k;

                if (stale || now >= last + REFRESH_MSEC) {
                        r = top_refresh(t);
                        if (r != EXIT_OK)
                                return r;
                        last = now = now_msec();
                        stale = false;
                }
                r = top_draw(t);
                if (r < 0) {
                        top_status(t, "cannot draw: %s", strerror(-r));
                        return EXIT_ERROR;
                }
                if (poll(&p, 1, (int) (last + REFRESH_MSEC - MIN(now, last + REFRESH_MSEC))) < 0) {
                        if (errno == EINTR)
                                continue; /* a resize */
                        top_status(t, "poll: %s", strerror(errno));
                        return EXIT_ERROR;
                }
                if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
                        continue;
                k = read(STDIN_FILENO, keys, sizeof(keys));
                if (k < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (k <= 0) {
                        /* The terminal went away. */
                        top_status(t, "terminal: %s", k < 0 ? strerror(errno) : "end of input");
                        return EXIT_ERROR;
                }
                r = top_keys(t, keys, (size_t) k);
                if (r != EXIT_OK || t->quit)
                        return r;
                stale = true;
        }
}

static int top_run(Top *t) {
        int r = term_signals();

        if (r >= 0)
                r = term_enter();
        if (r < 0) {
                term_restore();
                fprintf(stderr, "mplockctl top: cannot set up the terminal: %s\n", strerror(-r));
                return EXIT_ERROR;
        }
        t->status[0] = '\0';
        r = top_loop(t);
        term_restore();
        if (r != EXIT_OK && t->status[0])
                fprintf(stderr, "mplockctl: %s\n", t->status);
        return r;
}

int cmd_top(Ctl *c, int argc, char **argv) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                {},
        };
        Top t = { .c = c };
        int opt, r;

        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                if (opt == 'h')
                        return help_command(c->command);
                else
                        return help_hint(c->command);
        if (optind < argc) {
                fprintf(stderr, "mplockctl top: unexpected argument \"%s\"\n", argv[optind]);
                return help_hint(c->command);
        }
        if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
                fprintf(stderr, "mplockctl top: needs a terminal (stdin and stdout); for scripts: list, watch\n");
                return EXIT_USAGE;
        }
        t.utf8 = progress_utf8();
        /* Before the screen: an mplockd out of reach is told as by any
         * command. */
        r = top_refresh(&t);
        if (r == EXIT_OK) {
                /* The first job that has not ended is the likeliest to act on. */
                size_t first = 0;
                while (first + 1 < top_n(&t) && job_ended(top_job(&t, first)))
                        first++;
                top_select(&t, first);
                r = top_run(&t);
        }
        json_object_put(t.jobs);
        return r;
}
