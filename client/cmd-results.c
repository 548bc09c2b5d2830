/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json-util.h"
#include "macro.h"
#include "mplockctl.h"
#include "results.h"
#include "retrysel.h"
#include "text.h"
#include "varlink-names.h"

/* Results in input order. By default read straight from the results file
 * (the caller's own file), up to the length mplockd says is committed:
 * that is what makes millions of lines a second possible. --via-daemon (or
 * an unreadable file) pages through the Results method instead. */

typedef struct Printer {
        bool json, nul;
        bool only_failed; /* mplockctl failed: the failed items, with their errors */
        const RetrySel *count; /* mplockctl retry: prints nothing, counts the failed items it chooses */
        uint64_t matched;
        uint64_t printed, failed, missing;
        uint64_t too_large; /* via the daemon: results it could not send */
        uint64_t next_index; /* for gaps: items without a committed result */
} Printer;

/* Items up to index that have no committed record: counted, and in text
 * an empty line each, so that line N is item N whatever was not done. */
static void print_gap(Printer *p, uint64_t index) {
        if (index <= p->next_index)
                return;
        p->missing += index - p->next_index;
        if (!p->json && !p->only_failed && !p->count)
                for (uint64_t i = p->next_index; i < index; i++)
                        putc_unlocked(p->nul ? '\0' : '\n', stdout);
        p->next_index = index;
}

/* "NAME":"text", or "NAME_base64":"..." for bytes that are not UTF-8, as
 * the Results method gives them (JSON is text). */
static void put_json_bytes(const char *name, const char *data, size_t len) {
        _cleanup_free_ char *b64 = NULL;
        size_t n = 0;

        if (utf8_valid(data, len)) {
                printf("\"%s\":", name);
                fputs_json_string(data, len, stdout);
                return;
        }
        b64 = base64_encode(data, len, &n);
        printf("\"%s_base64\":", name);
        fputs_json_string(b64 ? b64 : "", b64 ? n : 0, stdout);
}

/* ,"attempts":N,"worker":W,"run_usec":U where the record has them. */
static void put_json_joblog(const ResultsMeta *m) {
        if (m->attempts == 0)
                return;
        printf(",\"attempts\":%u,\"worker\":%u,\"run_usec\":%llu", m->attempts, m->worker,
               (unsigned long long) m->run_usec);
}

static void print_one(Printer *p, uint64_t index, const char *item, size_t item_len, const char *result,
                      size_t result_len, int32_t status, const ResultsMeta *meta) {
        print_gap(p, index);
        p->next_index = index + 1;
        p->printed++;
        if (status != 0)
                p->failed++;
        if (p->count) {
                p->matched += status != 0 && retry_sel_wants(p->count, index, status);
                return;
        }
        if (p->only_failed) {
                if (status == 0)
                        return;
                if (!p->json) {
                        /* index, code, message, item: tab-separated, one line. */
                        printf("%llu\t%d\t", (unsigned long long) index, status);
                        for (size_t i = 0; i < result_len; i++)
                                putc_unlocked(result[i] == '\n' || result[i] == '\t' ? ' ' : result[i], stdout);
                        putc_unlocked('\t', stdout);
                        for (size_t i = 0; i < item_len; i++)
                                putc_unlocked(item[i] == '\n' || item[i] == '\t' ? ' ' : item[i], stdout);
                        putc_unlocked('\n', stdout);
                        return;
                }
        }
        if (p->json) {
                printf("{\"index\":%llu,", (unsigned long long) index);
                put_json_bytes("item", item, item_len);
                if (status == 0) {
                        putc_unlocked(',', stdout);
                        put_json_bytes("result", result, result_len);
                } else {
                        _cleanup_free_ char *msg = NULL;
                        size_t n = 0;
                        printf(",\"error\":{\"code\":%d,\"message\":", status);
                        /* For people: stray bytes become U+FFFD. */
                        msg = utf8_sanitize(result, result_len, &n);
                        fputs_json_string(msg ? msg : "", msg ? n : 0, stdout);
                        putc_unlocked('}', stdout);
                }
                put_json_joblog(meta);
                fputs_unlocked("}\n", stdout);
                return;
        }
        /* A failed item keeps its line, empty, so line N is item N. */
        if (status == 0)
                fwrite_unlocked(result, 1, result_len, stdout);
        putc_unlocked(p->nul ? '\0' : '\n', stdout);
}

static int from_file(Printer *p, json_object *job) {
        const char *path = job_str(job, "results_path");
        uint64_t committed = job_uint(job, "results_committed"), n_items = job_uint(job, "items");
        ResultsFile f;
        int fd, r;

        if (committed == 0)
                return 0;
        r = job_file_open(job, path, &fd);
        if (r < 0)
                return r;
        r = results_file_open(&f, fd, committed, n_items);
        if (r < 0) {
                safe_close(fd);
                if (r == -ENOTUNIQ)
                        fprintf(stderr, "mplockctl: %s records an item twice: the file is damaged\n", path);
                else
                        fprintf(stderr, "mplockctl: %s is damaged or was changed: %s\n", path, strerror(-r));
                return -EBADMSG;
        }
        if (posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL) != 0) {
                /* Only a hint. */
        }
        for (size_t k = 0; k < f.n_blocks; k++) {
                ResultsBlockHeader h;
                const char *payload;
                ResultsItemIter it;
                ResultsItem item;

                r = results_file_read_block(&f, k, &h, &payload);
                if (r < 0) {
                        fprintf(stderr, "mplockctl: %s is damaged at offset %llu: %s\n", path,
                                (unsigned long long) f.blocks[k].offset, strerror(-r));
                        results_file_close(&f);
                        safe_close(fd);
                        return -EBADMSG;
                }
                results_item_iter_init(&it, &h, payload);
                while (results_item_iter_next(&it, &item))
                        print_one(p, item.index, item.item, item.item_len, item.result, item.result_len, item.status,
                                  &item.meta);
        }
        results_file_close(&f);
        safe_close(fd);
        return 0;
}

/* A field of a Result that is text (NAME) or bytes (NAME_base64). */
static int reply_bytes(json_object *o, const char *name, char **ret, size_t *ret_len) {
        char key[32];
        json_object *v = json_get(o, name);

        if (v && json_object_is_type(v, json_type_string)) {
                *ret = strndup(json_object_get_string(v), (size_t) json_object_get_string_len(v));
                *ret_len = (size_t) json_object_get_string_len(v);
                return *ret ? 0 : -ENOMEM;
        }
        (void) snprintf(key, sizeof(key), "%s_base64", name);
        v = json_get(o, key);
        if (!v || !json_object_is_type(v, json_type_string))
                return -EBADMSG;
        return base64_decode(json_object_get_string(v), (size_t) json_object_get_string_len(v), ret, ret_len);
}

static int print_reply_result(Printer *p, json_object *o) {
        json_object *e = json_get(o, "error");
        _cleanup_free_ char *item = NULL, *res = NULL;
        size_t item_len = 0, res_len = 0;
        ResultsMeta meta = {
                .attempts = (uint32_t) MIN(json_get_uint(o, "attempts", 0), (uint64_t) UINT32_MAX),
                .worker = (uint32_t) MIN(json_get_uint(o, "worker", 0), (uint64_t) UINT32_MAX),
                .run_usec = json_get_uint(o, "run_usec", 0),
        };

        if (reply_bytes(o, "item", &item, &item_len) < 0 ||
            (e ? reply_bytes(e, "message", &res, &res_len) : reply_bytes(o, "result", &res, &res_len)) < 0) {
                fprintf(stderr, "mplockctl: malformed result from mplockd\n");
                return EXIT_ERROR;
        }
        print_one(p, json_get_uint(o, "index", 0), item, item_len, res, res_len,
                  e ? (int32_t) json_object_get_int(json_get(e, "code")) : 0, &meta);
        return EXIT_OK;
}

static int via_daemon(Ctl *c, Printer *p, uint64_t id) {
        uint64_t offset = 0;

        for (;;) {
                json_object *params = json_object_new_object(), *reply, *arr, *next;
                int r;

                if (!params || json_add_u64(params, "id", id) < 0 || json_add_u64(params, "offset", offset) < 0 ||
                    json_add_u64(params, "limit", 10000) < 0) {
                        json_object_put(params);
                        return EXIT_ERROR;
                }
                r = ctl_call(c, MPLOCK_METHOD_RESULTS, params, false, &reply, NULL);
                if (r != EXIT_OK)
                        return r;
                arr = json_get(reply, "results");
                if (!arr || !json_object_is_type(arr, json_type_array)) {
                        fprintf(stderr, "mplockctl: malformed reply from mplockd\n");
                        return EXIT_ERROR;
                }
                for (size_t i = 0; i < json_object_array_length(arr); i++) {
                        json_object *o = json_object_array_get_idx(arr, i);
                        if (json_get(o, "too_large")) {
                                fprintf(stderr,
                                        "mplockctl: the result of item %llu is too large for mplockd's messages "
                                        "(%llu bytes); read it from the results file (without --via-daemon)\n",
                                        (unsigned long long) json_get_uint(o, "index", 0),
                                        (unsigned long long) json_get_uint(o, "too_large", 0));
                                p->too_large++;
                                /* Its line stays, empty: line N is item N. */
                                print_gap(p, json_get_uint(o, "index", 0));
                                if (!p->json && !p->only_failed && !p->count)
                                        putc_unlocked(p->nul ? '\0' : '\n', stdout);
                                p->next_index++;
                                continue;
                        }
                        r = print_reply_result(p, o);
                        if (r != EXIT_OK)
                                return r;
                }
                next = json_get(reply, "next");
                if (!next)
                        return p->too_large > 0 ? EXIT_ERROR : EXIT_OK;
                offset = json_get_uint(reply, "next", 0);
        }
}

static int results_or_failed(Ctl *c, int argc, char **argv, bool only_failed);

int cmd_results(Ctl *c, int argc, char **argv) {
        return results_or_failed(c, argc, argv, false);
}

/* The failed items with their last error: index, code, message, item. */
int cmd_failed(Ctl *c, int argc, char **argv) {
        return results_or_failed(c, argc, argv, true);
}

static int results_or_failed(Ctl *c, int argc, char **argv, bool only_failed) {
        static const struct option options[] = {
                { "json", no_argument, NULL, 'j' },
                { "null", no_argument, NULL, '0' },
                { "via-daemon", no_argument, NULL, 'd' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        static char obuf[1 << 20];
        Printer p = { .only_failed = only_failed };
        bool daemon = false;
        json_object *params, *reply, *job;
        uint64_t id, items;
        const char *state;
        int opt, r;

        while ((opt = getopt_long(argc, argv, "0h", options, NULL)) >= 0)
                switch (opt) {
                case 'j':
                        c->json = true;
                        break;
                case '0':
                        p.nul = true;
                        break;
                case 'd':
                        daemon = true;
                        break;
                case 'h':
                        return help_command(c->command);
                default:
                        return help_hint(c->command);
                }
        r = job_operand(c, argc, argv, &id);
        if (r != EXIT_OK)
                return r;
        p.json = c->json;

        params = json_object_new_object();
        if (!params || json_add_u64(params, "id", id) < 0) {
                json_object_put(params);
                return EXIT_ERROR;
        }
        r = ctl_call(c, MPLOCK_METHOD_STATUS, params, false, &reply, NULL);
        if (r != EXIT_OK)
                return r;
        /* Keep the job: the next call replaces the reply. */
        job = json_object_get(json_get(reply, "job"));
        items = job_uint(job, "items");
        state = job_str(job, "state");
        if (json_get_bool(job, "damaged", false)) {
                fprintf(stderr, "mplockctl: job %llu is damaged: %s\n", (unsigned long long) id,
                        job_str(job, "error"));
                json_object_put(job);
                return EXIT_ERROR;
        }

        (void) setvbuf(stdout, obuf, _IOFBF, sizeof(obuf));
        r = daemon ? -EPERM : from_file(&p, job);
        if (r == -EBADMSG) {
                json_object_put(job);
                return EXIT_ERROR;
        }
        if (r < 0) {
                if (!daemon)
                        fprintf(stderr, "mplockctl: cannot read %s (%s); asking mplockd instead\n",
                                job_str(job, "results_path"), job_file_error(r));
                r = via_daemon(c, &p, id);
                if (r != EXIT_OK) {
                        json_object_put(job);
                        return r;
                }
        }
        print_gap(&p, items);
        if (p.missing > 0 && !only_failed)
                fprintf(stderr, "mplockctl: job %llu is %s: %llu of %llu items have no committed result%s\n",
                        (unsigned long long) id, state, (unsigned long long) p.missing, (unsigned long long) items,
                        p.json ? "" : " (their lines are empty)");
        if (p.failed > 0 && !p.json && !only_failed)
                fprintf(stderr, "mplockctl: %llu items failed (their lines are empty; see mplockctl failed %llu)\n",
                        (unsigned long long) p.failed, (unsigned long long) id);
        json_object_put(job);
        return p.missing > 0 && !only_failed ? EXIT_INCOMPLETE : EXIT_OK;
}

int results_count_chosen(Ctl *c, json_object *job, const RetrySel *sel, uint64_t *ret) {
        Printer p = { .only_failed = true, .count = sel };
        int r = from_file(&p, job);

        if (r == -EBADMSG)
                return EXIT_ERROR;
        if (r < 0) {
                p = (Printer){ .only_failed = true, .count = sel };
                r = via_daemon(c, &p, job_uint(job, "id"));
                if (r != EXIT_OK)
                        return r;
        }
        *ret = p.matched;
        return EXIT_OK;
}
