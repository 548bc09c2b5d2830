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
typedef struct WorkerProgress WorkerProgress;

/* capture.c: what a worker prints on stdout and stderr (one pipe), cut
 * into lines: each goes into the job log after the time, the worker and
 * the items of the call it was printed in ("TIME worker 1 item 4: ..."),
 * and into the journal with MPLOCK_JOB=, MPLOCK_WORKER= and MPLOCK_ITEM=
 * when we log there. The items come from the worker's marks (worker.h)
 * for what it printed through stdio, else from the call its shared page
 * says is in progress when the line is read. */

/* A longer line is cut into pieces of this size. */
#define CAPTURE_LINE_MAX 16384

/* Items a line is named after (count 0: none). */
typedef struct CaptureItems {
        uint64_t first;
        uint32_t count;
} CaptureItems;

typedef struct Capture {
        const Output *out; /* the job log and the job's id */
        uint32_t worker_no;
        const WorkerProgress *progress; /* the worker's page, or NULL */
        int fd;
        sd_event_source *io;
        uint64_t span_left; /* bytes of a marked span still to come */
        CaptureItems span, line; /* the span's items; the line's (from its first byte) */
        size_t mark_len;    /* of a mark being read, 0: none */
        char mark[64];
        size_t len; /* of the line so far */
        char buf[CAPTURE_LINE_MAX];
} Capture;

/* Takes fd, the pipe's read end, and reads it as it fills. */
int capture_start(Capture *c, sd_event *event, int fd, const Output *out, uint32_t worker_no,
                  const WorkerProgress *progress);
/* The bytes of a read, marks taken off, cut into lines (for tests). */
void capture_feed(Capture *c, const char *data, size_t n);
/* Reads what is there now; false at the end (the last line is written
 * out even without its newline). */
bool capture_read(Capture *c);
void capture_stop(Capture *c);
