/* SPDX-License-Identifier: MIT */
/* Fuzz target: the daemon's journal (state/journal) as a crash, a bad disk
 * or an attacker with the state directory could leave it. The input is the
 * file's first bytes (the rest zeros, the size a journal's). Opening must
 * either refuse or replay records that lie within what was read, each
 * SUBMIT's parts within its payload; after a reset, an append must work
 * and be the first record a second open replays (records the input placed
 * in the next generation may follow it: only a writer of the state
 * directory can place them). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "fuzz-util.h"
#include "journal.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct Seen {
        uint64_t records;
        uint64_t bytes;
        size_t first_len;
} Seen;

static int on_record(uint32_t type, const void *payload, size_t len, void *userdata) {
        Seen *seen = userdata;
        const char *spec, *p = payload;
        const void *input;
        size_t spec_len, input_len;
        uint64_t id;

        if (len > JOURNAL_RECORD_MAX)
                abort();
        if (seen->records++ == 0)
                seen->first_len = len;
        seen->bytes += len;
        if (type == JOURNAL_SUBMIT &&
            journal_submit_parse(payload, len, &id, &spec, &spec_len, &input, &input_len) >= 0) {
                if (spec < p || spec + spec_len > p + len || (const char *) input + input_len != p + len ||
                    spec_len == 0)
                        abort();
        }
        return 0;
}

static void put(int dirfd, const uint8_t *data, size_t len) {
        int fd = openat(dirfd, JOURNAL_NAME, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || write_full(fd, data, len) < 0 || ftruncate(fd, JOURNAL_SIZE) < 0)
                abort();
        close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char spec[] = "{\"id\":1}";
        int dirfd = fuzz_scratch_dir("journal");
        JournalSubmit h = { .id = 1, .spec_len = sizeof(spec) - 1 };
        struct iovec iov[2] = { { &h, sizeof(h) }, { UNCONST(spec), sizeof(spec) - 1 } };
        Seen seen = {}, again = {};
        Journal j;

        if (size > JOURNAL_SIZE)
                return 0;
        put(dirfd, data, size);
        if (journal_open(&j, dirfd, on_record, &seen) < 0)
                return 0;
        /* Every record and its header lie in the journal. */
        if (seen.records != j.replayed || seen.bytes + seen.records * sizeof(JournalRecord) > JOURNAL_SIZE ||
            j.end > JOURNAL_SIZE)
                abort();
        if (journal_append(&j, JOURNAL_SUBMIT, iov, 2) != -EBUSY)
                abort();
        if (journal_reset(&j) < 0 || journal_append(&j, JOURNAL_SUBMIT, iov, 2) < 0)
                abort();
        journal_close(&j);
        if (journal_open(&j, dirfd, on_record, &again) < 0 || again.records < 1 || again.first_len != sizeof(h) + h.spec_len || j.recreated)
                abort();
        journal_close(&j);
        return 0;
}
