/* SPDX-License-Identifier: MIT */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>

static const char *log_ident = "mplock";
static int log_max_level = LOG_INFO;
static bool log_to_journal = false;

/* systemd sets JOURNAL_STREAM=dev:ino for a stderr that goes to journald; only
 * then is sending structured entries the same destination the admin expects. */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        struct stat st;
        unsigned long long dev, ino;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

void log_setup(const char *ident) {
        const char *e;

        if (ident)
                log_ident = ident;
        log_to_journal = stderr_is_journal();
        e = getenv("MPLOCK_LOG_LEVEL");
        if (e) {
                if (streq(e, "debug"))
                        log_max_level = LOG_DEBUG;
                else if (streq(e, "info"))
                        log_max_level = LOG_INFO;
                else if (streq(e, "warning"))
                        log_max_level = LOG_WARNING;
                else if (streq(e, "error"))
                        log_max_level = LOG_ERR;
        }
}

void log_set_max_level(int level) {
        log_max_level = level;
}

int log_get_max_level(void) {
        return log_max_level;
}

bool log_is_journal(void) {
        return log_to_journal;
}

void log_set_console(int on) {
        log_to_journal = !on;
}

int log_full_errno(int level, int error, uint64_t job, const char *fmt, ...) {
        char msg[2048];
        va_list ap;
        int saved = errno;

        if (error < 0)
                error = -error;
        if (level > log_max_level)
                return -error;

        /* Make %m print the error we were given. */
        errno = error;
        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);

        if (log_to_journal) {
                if (job > 0)
                        (void) sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%i", level,
                                               "SYSLOG_IDENTIFIER=%s", log_ident,
                                               "MPLOCK_JOB=%llu", (unsigned long long) job, NULL);
                else
                        (void) sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%i", level,
                                               "SYSLOG_IDENTIFIER=%s", log_ident, NULL);
        } else if (job > 0)
                (void) fprintf(stderr, "%s: job %llu: %s\n", log_ident, (unsigned long long) job, msg);
        else
                (void) fprintf(stderr, "%s: %s\n", log_ident, msg);

        errno = saved;
        return -error;
}

int log_oom(void) {
        return log_full_errno(LOG_ERR, ENOMEM, 0, "Out of memory.");
}
