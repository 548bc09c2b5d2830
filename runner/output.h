/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

typedef struct RunError RunError;

/* output.c: the job's output directory, as its owner sees it: the job log
 * (our notices and what the workers print) and the results file, opened
 * and cut back to its committed length. */

/* Room for OUTPUT/mplock-<id>.<suffix>, OUTPUT at most PATH_MAX. */
#define OUTPUT_PATH_MAX 4200

typedef struct Output {
        const char *dir; /* not owned */
        uint64_t job_id;
        int log_fd;      /* -1 until opened */
        int results_fd;
        int dir_fd;      /* the output directory, for syncing a new name */
        bool results_name_unsynced; /* a fresh results file: see commit.h */
} Output;

void output_init(Output *o, const char *dir, uint64_t job_id);
void output_close(Output *o);

/* OUTPUT/mplock-<id><suffix>, e.g. suffix ".results". */
void output_path(const Output *o, const char *suffix, char *buf, size_t n);

/* Creates the directory if need be and opens the job log. */
int output_open_log(Output *o, RunError *e);
/* Opens (or creates) the results file; a regular file only. */
int output_open_results(Output *o, RunError *e);
/* The generation of the results file at fd, or -1 if it is not job_id's. */
int64_t output_results_gen(int fd, uint64_t job_id);
/* Makes the results file hold exactly what is committed: with
 * committed_len 0 a fresh header of generation gen; otherwise the file
 * must be this job's generation gen and at least committed_len long, and
 * what follows is cut off (not committed: those items are redone). No
 * sync: the first commit fdatasyncs the file, and, for a fresh one, its
 * directory (results_name_unsynced). *ret_len: where blocks go from now
 * on. */
int output_prepare_results(Output *o, uint32_t gen, uint64_t committed_len, uint64_t *ret_len, RunError *e);

/* A notice for the journal (with the job's id) and the job log (with the
 * time, since the log has no other). */
void output_log(const Output *o, int level, const char *fmt, ...) _printf_(3, 4);
/* The same line in the job log only (mplockd logs to the journal itself). */
void output_note(const Output *o, const char *fmt, ...) _printf_(2, 3);
/* The time as the job log's lines begin: 2026-01-02T03:04:05.123456Z. */
#define OUTPUT_TIMESTAMP_MAX 48
void output_timestamp(char buf[static OUTPUT_TIMESTAMP_MAX]);
