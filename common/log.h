/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

#include "macro.h"

/* Logging: structured journal entries (with MPLOCK_JOB=) when stderr is
 * connected to journald, plain "ident: message" lines on stderr otherwise.
 * Every log function returns -abs(error), so "return log_error_errno(r, ...)"
 * both logs and propagates; a function that logs does not also make its
 * caller log. */

void log_setup(const char *ident);
void log_set_max_level(int level);
int log_get_max_level(void);
/* Force plain stderr output (tests, --log-target=console). */
void log_set_console(int on);
/* Whether messages go to the journal (stderr is a journald stream). */
bool log_is_journal(void);

int log_full_errno(int level, int error, uint64_t job, const char *fmt, ...) _printf_(4, 5);

#define log_debug(...) log_full_errno(LOG_DEBUG, 0, 0, __VA_ARGS__)
#define log_info(...) log_full_errno(LOG_INFO, 0, 0, __VA_ARGS__)
#define log_notice(...) log_full_errno(LOG_NOTICE, 0, 0, __VA_ARGS__)
#define log_warning(...) log_full_errno(LOG_WARNING, 0, 0, __VA_ARGS__)
#define log_error(...) log_full_errno(LOG_ERR, 0, 0, __VA_ARGS__)
#define log_debug_errno(e, ...) log_full_errno(LOG_DEBUG, (e), 0, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, (e), 0, __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_ERR, (e), 0, __VA_ARGS__)
#define log_job(level, job, ...) log_full_errno((level), 0, (job), __VA_ARGS__)
#define log_job_errno(level, e, job, ...) log_full_errno((level), (e), (job), __VA_ARGS__)

/* For "out of memory": short, no allocation. */
int log_oom(void);
