/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "macro.h"
#include "varlink.h"

/* Exit codes, documented in mplockctl(1). */
enum {
        EXIT_OK = 0,
        EXIT_ERROR = 1,        /* the request failed */
        EXIT_USAGE = 2,        /* bad command line */
        EXIT_JOB_FAILED = 3,   /* wait/watch: the job failed */
        EXIT_JOB_CANCELLED = 4,
        EXIT_JOB_PARTIAL = 5,  /* completed, but some items failed */
        EXIT_NO_JOB = 6,       /* no such job, or not yours */
        EXIT_UNREACHABLE = 7,  /* cannot reach mplockd */
        EXIT_JOB_PAUSED = 8,   /* wait/watch: paused by a fault (a full disk) */
        EXIT_INCOMPLETE = 9,   /* results: some items have no committed record */
        EXIT_HELP = -1,        /* not an exit code: --help was shown; mplockctl exits 0 */
};

typedef struct Ctl {
        const char *command; /* the command's name, for its messages */
        char *socket_path;
        bool json;
        bool system;  /* --system given */
        bool user;    /* --user given */
        int fd;
        VarlinkBuf in;
        json_object *reply; /* last reply, owned */
        FILE *err;          /* where errors are told; stderr if NULL (top: its status line) */
} Ctl;

/* conn.c */
int ctl_connect(Ctl *c);
void ctl_close(Ctl *c);
FILE *ctl_err(Ctl *c);
/* Sends a call (takes params) and reads its first reply. Returns an exit
 * code; on success *ret is the reply's parameters (owned by c). Varlink
 * errors are reported on stderr and mapped to exit codes. */
int ctl_call(Ctl *c, const char *method, json_object *params, bool more, json_object **ret, bool *continues);
/* Sends a call (takes params) without reading its reply, which ctl_next
 * reads: for waiting on several connections at once. */
int ctl_send(Ctl *c, const char *method, json_object *params, bool more);
/* The next reply of a "more" call, or of ctl_send's call. */
int ctl_next(Ctl *c, json_object **ret, bool *continues);

/* output.c */
void print_job(const json_object *job);
/* Items per second: a running job's current rate, an ended job's average. */
double job_rate(json_object *job);
void print_job_table(json_object *jobs);
void print_json(json_object *o);
/* "Job 12 completed: 10 of 10 items done, 0 failed", on stderr. */
void print_job_summary(json_object *job);
const char *job_str(json_object *job, const char *key);
uint64_t job_uint(json_object *job, const char *key);

/* progress.c: what watch and top draw with. A Line is text of at most
 * max terminal columns, printable only: control characters and bytes that
 * are not text in this locale show as "?", so that a job's name cannot
 * move the cursor or change the terminal. */
#define PROGRESS_COLS_MAX 1024u
typedef struct Line {
        char buf[PROGRESS_COLS_MAX * 4 + 1];
        size_t len;
        unsigned cols, max;
        bool utf8;
} Line;

/* Takes LC_CTYPE from the environment; whether it is UTF-8. */
bool progress_utf8(void);
double progress_fraction(uint64_t done, uint64_t total);
void format_percent(uint64_t done, uint64_t total, char *buf, size_t n);
void format_rate(double rate, char *buf, size_t n);
void format_duration(uint64_t sec, char *buf, size_t n);
void format_size(uint64_t bytes, char *buf, size_t n);
unsigned text_width(const char *s, bool utf8);
void line_init(Line *l, unsigned max_cols, bool utf8);
/* s in width columns: right-aligned if width > 0, left-aligned (padded)
 * if < 0, as it is if 0; cut at width and at the line's end. */
void line_put(Line *l, const char *s, int width);
void line_printf(Line *l, int width, const char *fmt, ...) _printf_(3, 4);
/* "[####----]" in width columns (blocks, to an eighth, in UTF-8). */
void line_bar(Line *l, double fraction, unsigned width);

/* jobfile.c: a job's results or log, opened for reading only if it is its
 * owner's own regular file (no symlink, FIFO or device): -EPERM if not,
 * described by job_file_error(). */
int job_file_open(json_object *job, const char *path, int *ret_fd);
const char *job_file_error(int r);
/* Exit code for a job in its final state. */
int job_exit_code(json_object *job);
bool job_ended(json_object *job);
void fputs_json_string(const char *s, size_t len, FILE *f);
int parse_job_id(const char *s, uint64_t *ret);
/* cmd-jobs.c: after a command's options, its one operand, a job id (a
 * usage error otherwise, with where help is); and "[--json] JOB" whole. */
int job_operand(Ctl *c, int argc, char **argv, uint64_t *id);
int one_job(Ctl *c, int argc, char **argv, uint64_t *id);

/* help.c: a command's usage, summary and option lines, one entry each;
 * a new command gets its entry there. */
typedef struct CommandHelp {
        const char *name;
        const char *args;    /* what follows the name; a line per form */
        const char *summary; /* a line for the overview */
        const char *options; /* a line per option its parser takes */
} CommandHelp;
void help_overview(FILE *f);
/* Shows the command's usage and options: EXIT_HELP, or EXIT_ERROR if it
 * has no entry. */
int help_command(const char *name);
/* After a usage error: where help is (name NULL: mplockctl's own).
 * Returns EXIT_USAGE. */
int help_hint(const char *name);

/* cmd-jobs.c: {"id": id}, NULL when out of memory. */
json_object *id_params(uint64_t id);

/* cmd-watch.c, shared with top */
void terminal_size(int fd, unsigned *cols, unsigned *rows);
/* SIGWINCH sets a flag (no SA_RESTART: it cuts a wait short); whether it
 * was set since the last call. */
int watch_on_winch(void);
bool watch_winched(void);
/* Items processed: a running job's progress, committed or not. */
uint64_t job_progress(json_object *job);

/* commands */
int cmd_submit(Ctl *c, int argc, char **argv);
int cmd_status(Ctl *c, int argc, char **argv);
int cmd_list(Ctl *c, int argc, char **argv);
int cmd_cancel(Ctl *c, int argc, char **argv);
int cmd_wait(Ctl *c, int argc, char **argv);
int cmd_watch(Ctl *c, int argc, char **argv);
int cmd_results(Ctl *c, int argc, char **argv);
int cmd_remove(Ctl *c, int argc, char **argv);
int cmd_logs(Ctl *c, int argc, char **argv);
int cmd_pause(Ctl *c, int argc, char **argv);
int cmd_resume(Ctl *c, int argc, char **argv);
int cmd_failed(Ctl *c, int argc, char **argv);
/* The failed items of job (a Status reply's) that sel chooses, counted
 * from the results file or, failing that, through mplockd. */
typedef struct RetrySel RetrySel;
int results_count_chosen(Ctl *c, json_object *job, const RetrySel *sel, uint64_t *ret);
int cmd_retry(Ctl *c, int argc, char **argv);
int cmd_help(Ctl *c, int argc, char **argv);
int cmd_top(Ctl *c, int argc, char **argv);
int cmd_stats(Ctl *c, int argc, char **argv);
