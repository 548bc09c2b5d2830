/* SPDX-License-Identifier: MIT */
#pragma once

/* Workers' lines of one job sent to the journal, at most (capture.c). */
#define CAPTURE_JOURNAL_RATE 20
#define CAPTURE_JOURNAL_BURST 200

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

typedef struct Output Output;

/* capture.c: what a worker prints on stdout and stderr (one pipe), cut
 * into lines: each goes into the job log, and into the journal with
 * MPLOCK_JOB= and MPLOCK_WORKER= when we log there. */

/* A longer line is cut into pieces of this size. */
#define CAPTURE_LINE_MAX 16384

typedef struct Capture {
        const Output *out; /* the job log and the job's id */
        uint32_t worker_no;
        int fd;
        sd_event_source *io;
        size_t len;
        char buf[CAPTURE_LINE_MAX];
} Capture;

/* Takes fd, the pipe's read end, and reads it as it fills. */
int capture_start(Capture *c, sd_event *event, int fd, const Output *out, uint32_t worker_no);
/* Reads what is there now; false at the end (the last line is written
 * out even without its newline). */
bool capture_read(Capture *c);
void capture_stop(Capture *c);
