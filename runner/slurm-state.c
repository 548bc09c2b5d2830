/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "fileio.h"
#include "json-util.h"
#include "macro.h"
#include "results.h"
#include "slurm-coord.h"

/* What a coordinator keeps on the shared filesystem, OUTPUT/mplock-<id>.slurm:
 * slurm.json (the array, its shards and their attempts), each shard's
 * start message and the script every task runs; and the commands it asks
 * Slurm with. */

/* Runs argv; its stdout in *ret. A failure to run, or a non-zero status, is
 * -EIO with a message in e (the command's own last words). */
int slurm_run_cmd(char *const argv[], SlurmCmd *ret, RunError *e) {
        int r = slurm_cmd(argv, ret);

        if (r < 0)
                return run_error(e, IPC_FAIL_TEMPORARY, r, "%s: %s", argv[0],
                                 r == -ENOENT ? "not found (is Slurm's client installed here?)" : strerror(-r));
        if (ret->status != 0) {
                char *nl = strchr(ret->err, '\n');
                if (nl && nl[1] == 0)
                        *nl = 0;
                return run_error(e, IPC_FAIL_TEMPORARY, -EIO, "%s failed (%d): %s", argv[0], ret->status,
                                 ret->err[0] ? ret->err : "no message");
        }
        return 0;
}

/* The shard count when the owner gave none: SHARDS_PER_NODE per node of the
 * partition, so that Slurm has some to balance. */
static uint32_t default_shards(Coord *c, RunError *e) {
        char *argv[] = { "sinfo", "-h", "-o", "%D", NULL, NULL, NULL };
        char part[80];
        SlurmCmd out = {};
        uint64_t nodes = 0;

        if (c->job->partition) {
                (void) snprintf(part, sizeof(part), "--partition=%s", c->job->partition);
                argv[4] = part;
        }
        if (slurm_run_cmd(argv, &out, e) < 0) {
                slurm_cmd_done(&out);
                return 0;
        }
        for (char *p = out.out; *p;) {
                char *end;
                unsigned long long v = strtoull(p, &end, 10);
                if (end == p)
                        break;
                nodes += v;
                p = end + strspn(end, "\n ");
        }
        slurm_cmd_done(&out);
        if (nodes == 0)
                nodes = 1;
        return (uint32_t) MIN(nodes * SHARDS_PER_NODE, (uint64_t) JOB_SHARDS_MAX);
}

void shard_name(uint32_t k, char *buf, size_t n) {
        (void) snprintf(buf, n, "shard-%" PRIu32, k);
}

static void shards_layout(Coord *c) {
        uint64_t n = c->job->n_items;

        for (uint32_t k = 0; k < c->n_shards; k++) {
                uint64_t a = n * k / c->n_shards, b = n * (k + 1) / c->n_shards;
                c->shards[k] = (Shard){ .first = a, .n = b - a, .copied_end = sizeof(ResultsFileHeader) };
        }
}

int state_save(Coord *c, RunError *e) {
        json_object *o = json_object_new_object(), *tasks = json_object_new_array();
        const char *text;
        size_t len;
        int r = -ENOMEM;

        if (!o || !tasks)
                goto out;
        for (uint32_t k = 0; k < c->n_shards; k++) {
                json_object *t = json_object_new_object();
                if (!t || json_object_array_add(tasks, t) < 0 || json_add_str(t, "task", c->shards[k].job) < 0 ||
                    json_add_u64(t, "attempts", c->shards[k].attempts) < 0)
                        goto out;
        }
        if (json_add_u64(o, "version", 1) < 0 || json_add_str(o, "token", c->token) < 0 ||
            json_add_u64(o, "shards", c->n_shards) < 0 || json_add_str(o, "array", c->array) < 0 ||
            json_add(o, "paused", json_object_new_boolean(c->paused)) < 0 || json_add(o, "tasks", tasks) < 0)
                goto out;
        tasks = NULL;
        text = json_compact(o, &len);
        r = text ? write_file_atomic_at(c->dirfd, STATE_FILE, text, len, 0644) : -ENOMEM;
out:
        json_object_put(tasks);
        json_object_put(o);
        if (r < 0)
                return run_error_io(e, r, "cannot write %s/%s: %s", c->dir, STATE_FILE, strerror(-r));
        return 0;
}

bool slurm_id_ok(const char *s, size_t max) {
        return s && strlen(s) < max && strspn(s, "0123456789_") == strlen(s);
}

/* The state an earlier coordinator of this job left: 1, 0 if none. */
int state_load(Coord *c, RunError *e) {
        _cleanup_free_ char *text = NULL;
        json_object *o, *tasks;
        const char *why = NULL, *tok, *arr;
        size_t len;
        uint64_t n;
        int r;

        r = read_file_at(c->dirfd, STATE_FILE, 1u << 20, &text, &len);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return run_error_io(e, r, "cannot read %s/%s: %s", c->dir, STATE_FILE, strerror(-r));
        o = json_parse_strict(text, len, 8, &why);
        tok = o ? json_get_str(o, "token") : NULL;
        arr = o ? json_get_str(o, "array") : NULL;
        tasks = o ? json_get(o, "tasks") : NULL;
        n = o ? json_get_uint(o, "shards", 0) : 0;
        if (!tok || strlen(tok) != 16 || !slurm_id_ok(arr, sizeof(c->array)) || n == 0 || n > JOB_SHARDS_MAX ||
            n > MAX(c->job->n_items, 1) || !tasks || !json_object_is_type(tasks, json_type_array) ||
            json_object_array_length(tasks) != n) {
                json_object_put(o);
                return run_error(e, IPC_FAIL_PERMANENT, -EBADMSG, "%s/%s is damaged", c->dir, STATE_FILE);
        }
        memcpy(c->token, tok, 17);
        (void) snprintf(c->array, sizeof(c->array), "%s", arr);
        c->n_shards = (uint32_t) n;
        c->paused = json_get_bool(o, "paused", false);
        c->shards = calloc(n, sizeof(Shard));
        if (!c->shards) {
                json_object_put(o);
                return run_error(e, IPC_FAIL_TEMPORARY, -ENOMEM, "out of memory");
        }
        shards_layout(c);
        for (uint32_t k = 0; k < n; k++) {
                json_object *t = json_object_array_get_idx(tasks, k);
                const char *id = json_get_str(t, "task");
                if (slurm_id_ok(id, sizeof(c->shards[k].job)))
                        (void) snprintf(c->shards[k].job, sizeof(c->shards[k].job), "%s", id);
                c->shards[k].attempts = (uint32_t) MIN(json_get_uint(t, "attempts", 0), UINT32_MAX);
        }
        json_object_put(o);
        return 1;
}

/* A shard's start message: the job's, with the shard's items, input and
 * directory; the driver fills in what its checkpoint says. */
static int shard_start_json(Coord *c, uint32_t k, uint64_t bytes, uint32_t crc, char **ret, size_t *ret_len) {
        const char *why = NULL, *text;
        char out[OUTPUT_PATH_MAX + 32], name[32];
        json_object *o = json_parse_strict(c->job->start_json, c->job->start_json_len, 64, &why);
        int r = -ENOMEM;

        shard_name(k, name, sizeof(name));
        (void) snprintf(out, sizeof(out), "%s/%s", c->dir, name);
        if (!o)
                return -EBADMSG;
        if (json_add_str(o, "output", out) >= 0 && json_add_u64(o, "items", c->shards[k].n) >= 0 &&
            json_add_u64(o, "input_bytes", bytes) >= 0 && json_add_u64(o, "input_crc", crc) >= 0 &&
            json_add_u64(o, "slurm", 0) >= 0 && json_add_u64(o, "results_gen", 0) >= 0 &&
            json_add_u64(o, "prev_results_len", 0) >= 0 && json_add_u64(o, "wait_placed", 0) >= 0 &&
            (text = json_compact(o, ret_len)) && (*ret = strndup(text, *ret_len)))
                r = 0;
        json_object_put(o);
        return r;
}

/* Writes shard k's directory: its items (a snapshot of its own) and its
 * start message, each atomically, so that a crash leaves it whole or
 * absent. */
static int shard_prepare(Coord *c, uint32_t k, RunError *e) {
        const Shard *s = &c->shards[k];
        uint64_t a = items_offset(&c->items, s->first);
        uint64_t b = s->first + s->n < c->job->n_items ? items_offset(&c->items, s->first + s->n)
                                                        : c->items.size;
        _cleanup_free_ char *start = NULL;
        _cleanup_close_ int sfd = -1;
        char name[32];
        size_t len;
        int r;

        shard_name(k, name, sizeof(name));
        if (mkdirat(c->dirfd, name, 0755) < 0 && errno != EEXIST)
                return run_error_io(e, -errno, "cannot create %s/%s: %s", c->dir, name, strerror(errno));
        sfd = openat(c->dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sfd < 0)
                return run_error_io(e, -errno, "cannot open %s/%s: %s", c->dir, name, strerror(errno));
        r = write_file_atomic_at(sfd, "input", c->items.map + a, (size_t) (b - a), 0644);
        if (r >= 0)
                r = shard_start_json(c, k, b - a, crc32c(0, c->items.map + a, (size_t) (b - a)), &start, &len);
        if (r >= 0)
                r = write_file_atomic_at(sfd, "start.json", start, len, 0644);
        if (r < 0)
                return run_error_io(e, r, "cannot write shard %s of %s: %s", name, c->dir, strerror(-r));
        return 0;
}

/* The runner the nodes run: this very program, at the same path there. */
static int task_script(Coord *c, RunError *e) {
        char self[4096], buf[3 * OUTPUT_PATH_MAX + 8192];
        size_t n = 0;
        ssize_t l = readlink("/proc/self/exe", self, sizeof(self) - 1);
        int r;

        if (l < 0)
                return run_error(e, IPC_FAIL_TEMPORARY, -errno, "readlink /proc/self/exe: %s", strerror(errno));
        self[l] = 0;
        /* Single quotes keep every byte of the paths as it is. */
        n += (size_t) snprintf(buf + n, sizeof(buf) - n, "#!/bin/sh\n# mplock job %" PRIu64 ", shard $SLURM_ARRAY_TASK_ID\nexec '", c->job->id);
        for (const char *p = self; *p && n + 8 < sizeof(buf); p++)
                n += (size_t) (*p == '\'' ? snprintf(buf + n, sizeof(buf) - n, "'\\''") : snprintf(buf + n, sizeof(buf) - n, "%c", *p));
        n += (size_t) snprintf(buf + n, sizeof(buf) - n, "' shard '");
        for (const char *p = c->dir; *p && n + 8 < sizeof(buf); p++)
                n += (size_t) (*p == '\'' ? snprintf(buf + n, sizeof(buf) - n, "'\\''") : snprintf(buf + n, sizeof(buf) - n, "%c", *p));
        n += (size_t) snprintf(buf + n, sizeof(buf) - n, "'\n");
        if (n >= sizeof(buf) - 1)
                return run_error(e, IPC_FAIL_PERMANENT, -ENAMETOOLONG, "paths too long for the task script");
        r = write_file_atomic_at(c->dirfd, "task.sh", buf, n, 0755);
        if (r < 0)
                return run_error_io(e, r, "cannot write %s/task.sh: %s", c->dir, strerror(-r));
        return 0;
}

/* A new state: shards, their files, a token that names the array. */
int state_new(Coord *c, RunError *e) {
        uint8_t raw[8];
        int r;

        if (getrandom(raw, sizeof(raw), 0) != sizeof(raw))
                return run_error(e, IPC_FAIL_TEMPORARY, -errno, "getrandom: %s", strerror(errno));
        for (size_t i = 0; i < sizeof(raw); i++)
                (void) snprintf(c->token + 2 * i, 3, "%02x", raw[i]);
        c->n_shards = c->job->shards ? c->job->shards : default_shards(c, e);
        if (c->n_shards == 0)
                return -EIO;
        c->n_shards = (uint32_t) MIN((uint64_t) c->n_shards, MAX(c->job->n_items, 1));
        c->shards = calloc(c->n_shards, sizeof(Shard));
        if (!c->shards)
                return run_error(e, IPC_FAIL_TEMPORARY, -ENOMEM, "out of memory");
        shards_layout(c);
        for (uint32_t k = 0; k < c->n_shards; k++) {
                r = shard_prepare(c, k, e);
                if (r < 0)
                        return r;
        }
        r = task_script(c, e);
        return r < 0 ? r : state_save(c, e);
}
