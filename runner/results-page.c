/* SPDX-License-Identifier: MIT */
#include "results-page.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "json-util.h"
#include "macro.h"
#include "parse.h"
#include "results.h"
#include "text.h"

#define OUT_FD 3

typedef struct PageArgs {
        const char *path;
        uint64_t job, committed, items, offset, limit, max_bytes;
} PageArgs;

typedef struct Page {
        json_object *results;
        uint64_t offset, limit, n, bytes, budget;
        uint64_t next; /* UINT64_MAX: the end */
} Page;

/* Bytes as a JSON string when they are UTF-8 (JSON is text), else as
 * base64 in the field NAME_base64. */
static int add_bytes(json_object *o, const char *name, const char *data, size_t len) {
        char key[32];
        char *b64;
        int r;

        if (utf8_valid(data, len))
                return json_add(o, name, json_object_new_string_len(data, (int) len));
        b64 = base64_encode(data, len, NULL);
        if (!b64)
                return -ENOMEM;
        (void) snprintf(key, sizeof(key), "%s_base64", name);
        r = json_add(o, key, json_object_new_string(b64));
        free(b64);
        return r;
}

static int add_outcome(json_object *o, const ResultsItem *it) {
        json_object *e;
        char *msg;
        size_t n;
        int r;

        if (it->status == 0)
                return add_bytes(o, "result", it->result, it->result_len);
        e = json_object_new_object();
        r = json_add(o, "error", e);
        if (r >= 0)
                r = json_add(e, "code", json_object_new_int(it->status));
        /* A message is for people: its stray bytes become U+FFFD. */
        msg = r >= 0 ? utf8_sanitize(it->result, it->result_len, &n) : NULL;
        if (r >= 0)
                r = msg ? json_add(e, "message", json_object_new_string_len(msg, (int) n)) : -ENOMEM;
        free(msg);
        return r;
}

/* How the record came about, where the file says (version 2). */
static int add_joblog(json_object *o, const ResultsMeta *m) {
        int r;

        if (m->attempts == 0)
                return 0;
        r = json_add_u64(o, "attempts", m->attempts);
        if (r >= 0)
                r = json_add_u64(o, "worker", m->worker);
        if (r >= 0)
                r = json_add_u64(o, "run_usec", m->run_usec);
        return r;
}

static json_object *result_to_json(const ResultsItem *it, bool too_large) {
        json_object *o = json_object_new_object();
        int r;

        if (!o)
                return NULL;
        r = json_add(o, "index", json_object_new_int64((int64_t) it->index));
        if (r >= 0 && too_large)
                r = json_add_u64(o, "too_large", it->item_len + it->result_len);
        else if (r >= 0)
                r = add_bytes(o, "item", it->item, it->item_len);
        if (r >= 0 && !too_large)
                r = add_outcome(o, it);
        if (r >= 0)
                r = add_joblog(o, &it->meta);
        if (r < 0) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

/* 1 if the item went in, 0 if the page is full (next says where to go
 * on), -ENOMEM. */
static int page_add(Page *pg, const ResultsItem *it) {
        uint64_t size = it->item_len + it->result_len;
        bool too_large = size > pg->budget;
        json_object *jo;

        if (pg->n == pg->limit || (pg->n > 0 && !too_large && pg->bytes + size > pg->budget)) {
                pg->next = it->index;
                return 0;
        }
        jo = result_to_json(it, too_large);
        if (!jo || json_object_array_add(pg->results, jo) < 0) {
                json_object_put(jo);
                return -ENOMEM;
        }
        pg->n++;
        pg->bytes += too_large ? 0 : size;
        return 1;
}

/* From the blocks that hold items from offset on. */
static int page_fill(Page *pg, ResultsFile *f) {
        for (size_t k = results_file_find(f, pg->offset); k < f->n_blocks; k++) {
                ResultsBlockHeader h;
                const char *payload;
                ResultsItemIter it;
                ResultsItem item;
                int r = results_file_read_block(f, k, &h, &payload);

                if (r < 0)
                        return r;
                results_item_iter_init(&it, &h, payload);
                while (results_item_iter_next(&it, &item)) {
                        if (item.index < pg->offset)
                                continue;
                        r = page_add(pg, &item);
                        if (r <= 0)
                                return r;
                }
        }
        return 0;
}

static int emit(json_object *o) {
        size_t len;
        const char *text = o ? json_compact(o, &len) : NULL;
        int r = text ? write_full(OUT_FD, text, len) : -ENOMEM;

        json_object_put(o);
        return r < 0 ? 1 : 0;
}

static int unavailable(const char *fmt, const char *a, const char *b) {
        json_object *o = json_object_new_object();
        char why[4400];

        (void) snprintf(why, sizeof(why), fmt, a, b);
        if (o && json_add_str(o, "unavailable", why) < 0) {
                json_object_put(o);
                o = NULL;
        }
        return emit(o);
}

/* The owner's own regular file: no symlink at the end, no FIFO to hang on. */
static int open_results(const char *path) {
        struct stat st;
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != getuid()) {
                safe_close(fd);
                return -EPERM;
        }
        return fd;
}

static int page_of(const PageArgs *a) {
        _cleanup_close_ int fd = -1;
        ResultsFile f = { .fd = -1 };
        Page pg = { .offset = a->offset, .limit = a->limit, .budget = a->max_bytes, .next = UINT64_MAX };
        json_object *o;
        int r;

        fd = open_results(a->path);
        if (fd == -EPERM)
                return unavailable("%s is not a results file of the job's owner%s", a->path, "");
        if (fd < 0)
                return unavailable("cannot open %s: %s", a->path, strerror(-fd));
        r = results_file_open(&f, fd, a->committed, a->items);
        if (r < 0)
                return unavailable("results file is damaged or was changed: %s%s", strerror(-r), "");
        pg.results = json_object_new_array();
        r = pg.results ? page_fill(&pg, &f) : -ENOMEM;
        results_file_close(&f);
        if (r < 0) {
                json_object_put(pg.results);
                return r == -ENOMEM ? 1 : unavailable("results file is damaged: %s%s", strerror(-r), "");
        }
        o = json_object_new_object();
        if (!o || json_add(o, "results", pg.results) < 0 ||
            (pg.next != UINT64_MAX && json_add_u64(o, "next", pg.next) < 0)) {
                json_object_put(o);
                return 1;
        }
        return emit(o);
}

static int parse_args(int argc, char **argv, PageArgs *a) {
        static const struct option options[] = {
                { "path", required_argument, NULL, 'p' },      { "job", required_argument, NULL, 'j' },
                { "committed", required_argument, NULL, 'c' }, { "items", required_argument, NULL, 'n' },
                { "offset", required_argument, NULL, 'o' },    { "limit", required_argument, NULL, 'l' },
                { "max-bytes", required_argument, NULL, 'b' }, {},
        };
        int c;

        optind = 0; /* whatever the agent parsed before it forked us */
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
                uint64_t *v = c == 'j' ? &a->job : c == 'c' ? &a->committed : c == 'n' ? &a->items
                            : c == 'o' ? &a->offset : c == 'l' ? &a->limit : c == 'b' ? &a->max_bytes : NULL;
                if (c == 'p')
                        a->path = optarg;
                else if (!v || parse_u64(optarg, v) < 0)
                        return -EINVAL;
        }
        return a->path && a->limit > 0 ? 0 : -EINVAL;
}

int results_page_main(int argc, char **argv) {
        PageArgs a = {};

        if (parse_args(argc, argv, &a) < 0)
                return 2;
        return page_of(&a);
}
