/* SPDX-License-Identifier: MIT */
#include "slurm.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "bitset.h"
#include "checkpoint.h"
#include "commit.h"
#include "crc32c.h"
#include "fileio.h"
#include "ipc.h"
#include "items.h"
#include "jobspec.h"
#include "log.h"
#include "macro.h"
#include "output.h"
#include "results.h"
#include "run-error.h"
#include "slurm-cmd.h"
#include "slurm-coord.h"
#include "slurmopt.h"
#include "start.h"

static void scancel(Coord *c, const char *signal, bool batch_only);

/* A permanent failure ends the job: its tasks go too. A temporary one
 * (squeue did not answer) leaves them to the next coordinator. */
static _Noreturn void fail(Coord *c, const RunError *e) {
        IpcFail f = { .kind = e->kind };

        if (c && c->started && c->name[0] && e->kind == IPC_FAIL_PERMANENT)
                scancel(c, NULL, false);

        if (e->kind != RUN_ERROR_GONE) {
                if (c && c->out.log_fd >= 0)
                        output_log(&c->out, LOG_ERR, "%s", e->msg);
                else
                        log_error("%s", e->msg);
                (void) ipc_send2(IPC_FD, IPC_FAIL, &f, sizeof(f), e->msg, strlen(e->msg));
        }
        _exit(1);
}

static _Noreturn void failf(Coord *c, uint32_t kind, const char *fmt, ...) _printf_(3, 4);
static _Noreturn void failf(Coord *c, uint32_t kind, const char *fmt, ...) {
        RunError e = { .kind = kind };
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(e.msg, sizeof(e.msg), fmt, ap);
        va_end(ap);
        fail(c, &e);
}

/* --- Slurm's commands ---------------------------------------------------- */

static void strv_freep(char ***v) {
        strv_free(*v);
}

/* --- the array ----------------------------------------------------------- */

/* sbatch of shards [lo, hi] (an array of them); the job id in id. */
static int submit(Coord *c, uint32_t lo, uint32_t hi, char *id, size_t idlen, RunError *e) {
        char array[64], name[80], output[OUTPUT_PATH_MAX + 64], cpus[32], part[96], script[OUTPUT_PATH_MAX + 16];
        char *argv[16 + SLURM_OPTS_WORDS_MAX] = { "sbatch", "--parsable", array, name, output, cpus };
        _cleanup_(strv_freep) char **opts = NULL;
        SlurmCmd out = {};
        size_t n = 6;
        int r;

        (void) snprintf(array, sizeof(array), "--array=%" PRIu32 "-%" PRIu32, lo, hi);
        (void) snprintf(name, sizeof(name), "--job-name=%s", c->name);
        (void) snprintf(output, sizeof(output), "--output=%s/slurm-%%A_%%a.out", c->dir);
        (void) snprintf(cpus, sizeof(cpus), "--cpus-per-task=%" PRIu32, c->job->n_workers);
        if (c->job->partition) {
                (void) snprintf(part, sizeof(part), "--partition=%s", c->job->partition);
                argv[n++] = part;
        }
        if (c->job->slurm_options && slurm_options_split(c->job->slurm_options, &opts) == 0)
                for (size_t i = 0; opts[i]; i++)
                        argv[n++] = opts[i];
        (void) snprintf(script, sizeof(script), "%s/task.sh", c->dir);
        argv[n++] = script;
        argv[n] = NULL;
        r = slurm_run_cmd(argv, &out, e);
        if (r >= 0) {
                /* "1234" or "1234;cluster" */
                out.out[strcspn(out.out, ";\n")] = 0;
                if (!slurm_id_ok(out.out, idlen) || !out.out[0])
                        r = run_error(e, IPC_FAIL_TEMPORARY, -EBADMSG, "sbatch answered \"%.40s\"", out.out);
                else
                        (void) snprintf(id, idlen, "%s", out.out);
        }
        slurm_cmd_done(&out);
        return r;
}

static int submit_all(Coord *c, RunError *e) {
        int r = submit(c, 0, c->n_shards - 1, c->array, sizeof(c->array), e);

        if (r < 0)
                return r;
        for (uint32_t k = 0; k < c->n_shards; k++) {
                (void) snprintf(c->shards[k].job, sizeof(c->shards[k].job), "%s_%" PRIu32, c->array, k);
                c->shards[k].attempts = 1;
        }
        output_log(&c->out, LOG_INFO, "Submitted to Slurm as array %s of %" PRIu32 " shards.", c->array,
                   c->n_shards);
        return state_save(c, e);
}

/* squeue's view of our tasks (named after the job and its token, so that
 * a task submitted just before a crash is found too). */
static int look(Coord *c, RunError *e) {
        char name[80], user[32];
        char *argv[] = { "squeue", "-h", "-r", name, user, "-o", "%i|%T|%N", NULL };
        SlurmCmd out = {};
        int r;

        (void) snprintf(name, sizeof(name), "--name=%s", c->name);
        (void) snprintf(user, sizeof(user), "--user=%u", (unsigned) getuid());
        r = slurm_run_cmd(argv, &out, e);
        if (r < 0) {
                slurm_cmd_done(&out);
                return r;
        }
        for (uint32_t k = 0; k < c->n_shards; k++)
                c->shards[k].alive = false;
        for (char *line = out.out, *next; line && *line; line = next) {
                char *id, *state, *node, *u;
                unsigned long k;

                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                id = strtok_r(line, "|", &u);
                state = strtok_r(NULL, "|", &u);
                node = strtok_r(NULL, "|", &u);
                if (!id || !state || !strchr(id, '_') || !slurm_id_ok(id, IPC_SLURM_ID_MAX))
                        continue;
                k = strtoul(strchr(id, '_') + 1, NULL, 10);
                if (k >= c->n_shards)
                        continue;
                Shard *s = &c->shards[k];
                if (!s->job[0] || !streq(s->job, id)) {
                        /* A task we lost track of (a crash right after its
                         * sbatch): it is the shard's task now. */
                        (void) snprintf(s->job, sizeof(s->job), "%s", id);
                }
                s->alive = true;
                s->state = streq(state, "PENDING") ? IPC_SHARD_PENDING : IPC_SHARD_RUNNING;
                if (node && node[0])
                        (void) snprintf(s->node, sizeof(s->node), "%s", node);
        }
        slurm_cmd_done(&out);
        return 0;
}

/* --- from the shards to the job ------------------------------------------ */

/* The records of one shard block not committed in the job yet, moved to
 * the job's indices, in runs of consecutive items. */
static int copy_block(Coord *c, const Shard *s, const ResultsBlockHeader *h, const char *payload, RunError *e) {
        ResultsItemIter it;
        ResultsItem item;
        CommitRun run;
        int r = 0;

        commit_run_init(&run, &c->commit, true);
        results_item_iter_init(&it, h, payload);
        while (r >= 0 && results_item_iter_next(&it, &item)) {
                uint64_t index = s->first + item.index;
                r = bitset_test(&c->done, index) ? commit_run_end(&run, e) : commit_run_add(&run, index, &item, e);
        }
        if (r >= 0)
                r = commit_run_end(&run, e);
        commit_run_free(&run);
        return r;
}

/* Reads shard k's results file from where we were to what its checkpoint
 * says is committed, and commits what is new. */
static int copy_shard(Coord *c, uint32_t k, RunError *e) {
        Shard *s = &c->shards[k];
        char path[OUTPUT_PATH_MAX + 64];
        _cleanup_free_ char *buf = NULL;
        _cleanup_close_ int fd = -1;
        size_t cap = 0;

        if (s->copied_end >= s->results_len)
                return 0;
        (void) snprintf(path, sizeof(path), "%s/shard-%" PRIu32 "/mplock-%" PRIu64 ".results", c->dir, k,
                        c->job->id);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return run_error_io(e, -errno, "cannot open %s: %s", path, strerror(errno));
        while (s->copied_end < s->results_len) {
                ResultsBlockHeader h;
                size_t len;

                if (pread_full(fd, &h, sizeof(h), (off_t) s->copied_end) != sizeof(h) ||
                    results_block_header_check(&h, s->n) < 0)
                        return run_error(e, IPC_FAIL_PERMANENT, -EBADMSG, "%s is damaged at %" PRIu64, path,
                                         s->copied_end);
                len = sizeof(h) + h.payload_len;
                if (s->copied_end + len > s->results_len || GREEDY_REALLOC(buf, cap, len) < 0)
                        return run_error(e, IPC_FAIL_PERMANENT, -EBADMSG, "%s is damaged at %" PRIu64, path,
                                         s->copied_end);
                if (pread_full(fd, buf, len, (off_t) s->copied_end) != (ssize_t) len ||
                    results_block_verify(buf, len, s->n) < 0)
                        return run_error(e, IPC_FAIL_PERMANENT, -EBADMSG, "%s is damaged at %" PRIu64, path,
                                         s->copied_end);
                if (copy_block(c, s, &h, buf + sizeof(h), e) < 0)
                        return -EIO;
                s->copied_end += len;
                if (c->commit.n_pending >= IPC_COMMIT_RANGES_MAX / 2 && commit_flush(&c->commit, e) < 0)
                        return -EIO;
        }
        return 0;
}

/* The node a shard's task ran on, from what its driver wrote (a task too
 * short to be seen running in squeue). Only the characters of a host name
 * are kept. */
static void shard_node(char *node, size_t n, int sfd) {
        _cleanup_free_ char *text = NULL;
        size_t len;

        if (read_file_at(sfd, "started", 255, &text, &len) < 0)
                return;
        len = strspn(text, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_");
        (void) snprintf(node, n, "%.*s", (int) len, text);
}

/* What shard k's checkpoint has made durable. */
static int peek_shard(Coord *c, uint32_t k) {
        char name[32];
        _cleanup_close_ int sfd = -1;
        Checkpoint ck;
        int r;

        shard_name(k, name, sizeof(name));
        sfd = openat(c->dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sfd < 0)
                return -errno;
        if (!c->shards[k].node[0])
                shard_node(c->shards[k].node, sizeof(c->shards[k].node), sfd);
        r = checkpoint_peek(&ck, sfd, c->shards[k].n);
        if (r < 0)
                return r;
        if (ck.results_len >= c->shards[k].results_len) {
                c->shards[k].results_len = ck.results_len;
                c->shards[k].done = ck.done;
                c->shards[k].failed = ck.failed;
        }
        checkpoint_close(&ck);
        return 0;
}

static bool shard_complete(const Shard *s) {
        return s->done == s->n;
}

/* --- following ----------------------------------------------------------- */

static void send_shards(Coord *c) {
        static char buf[IPC_MSG_MAX] __attribute__((aligned(8)));
        IpcShards h = { .n = c->n_shards };
        IpcShard *v = (IpcShard *) (buf + sizeof(h));
        uint64_t processed = 0;
        uint32_t running = 0;

        (void) snprintf(h.array, sizeof(h.array), "%s", c->array);
        memcpy(buf, &h, sizeof(h));
        for (uint32_t k = 0; k < c->n_shards; k++) {
                const Shard *s = &c->shards[k];
                v[k] = (IpcShard){ .items = s->n, .done = s->done, .failed = s->failed, .state = s->state,
                                   .attempts = s->attempts };
                memcpy(v[k].job, s->job, sizeof(v[k].job));
                memcpy(v[k].node, s->node, sizeof(v[k].node));
                processed += s->done;
                running += s->state == IPC_SHARD_RUNNING;
        }
        (void) ipc_send(IPC_FD, IPC_SHARDS, buf, sizeof(h) + c->n_shards * sizeof(IpcShard));
        IpcProgress p = { .processed = processed, .workers = running * c->job->n_workers };
        (void) ipc_send(IPC_FD, IPC_PROGRESS, &p, sizeof(p));
}

/* How a task ended, as Slurm still knows it (MinJobAge): its state
 * ("TIMEOUT", "NODE_FAIL", ...) and exit status; "" and -1 if forgotten. */
static void task_end(const Shard *s, char *state, size_t n, int *ret_exit) {
        char id[IPC_SLURM_ID_MAX];
        char *argv[] = { "scontrol", "show", "job", "-o", id, NULL };
        SlurmCmd out = {};
        RunError e;
        const char *p;

        *state = 0;
        *ret_exit = -1;
        memcpy(id, s->job, sizeof(id));
        if (s->job[0] && slurm_run_cmd(argv, &out, &e) >= 0) {
                if ((p = strstr(out.out, "JobState=")))
                        (void) snprintf(state, n, "%.*s", (int) strcspn(p + 9, " \n"), p + 9);
                if ((p = strstr(out.out, "ExitCode=")))
                        *ret_exit = atoi(p + 9);
        }
        slurm_cmd_done(&out);
}

/* A shard whose task is gone before the shard is done: again, while it
 * has attempts left (a pause is not an attempt). */
static int shard_lost(Coord *c, uint32_t k, RunError *e) {
        Shard *s = &c->shards[k];
        char id[IPC_SLURM_ID_MAX], how[32];
        int r, code;

        task_end(s, how, sizeof(how), &code);
        if (code == SHARD_EXIT_UNREACHABLE) {
                s->state = IPC_SHARD_FAILED;
                send_shards(c);
                return run_error(e, IPC_FAIL_PERMANENT, -ENOENT,
                                 "the shared directory %s is not reachable from node %s (task %s): the output "
                                 "directory of a Slurm job must be on a filesystem the nodes mount at the same path",
                                 c->dir, s->node[0] ? s->node : "?", s->job);
        }
        if (code == SHARD_EXIT_FAILED) {
                s->state = IPC_SHARD_FAILED;
                send_shards(c);
                return run_error(e, IPC_FAIL_PERMANENT, -EIO, "shard %" PRIu32 "'s runner failed (task %s): see %s/shard-%" PRIu32 "/mplock-%" PRIu64 ".log",
                                 k, s->job, c->dir, k, c->job->id);
        }
        if (!c->paused && s->attempts >= c->job->max_attempts) {
                s->state = IPC_SHARD_FAILED;
                send_shards(c);
                return run_error(e, IPC_FAIL_PERMANENT, -EIO,
                                 "shard %" PRIu32 " (items %" PRIu64 "-%" PRIu64 ") was lost %" PRIu32
                                 " times, the last on %s (task %s): see %s/slurm-%s.out",
                                 k, s->first, s->first + s->n - 1, s->attempts, s->node[0] ? s->node : "no node",
                                 s->job, c->dir, s->job);
        }
        output_log(&c->out, LOG_WARNING, "Shard %" PRIu32 "'s task %s ended (%s, exit %d) at %" PRIu64 "/%" PRIu64
                   " items: submitted again.", k, s->job[0] ? s->job : "(none)", how[0] ? how : "gone", code,
                   s->done, s->n);
        r = submit(c, k, k, id, sizeof(id) - 8, e);
        if (r < 0)
                return r;
        (void) snprintf(s->job, sizeof(s->job), "%s_%" PRIu32, id, k);
        s->attempts += !c->paused;
        s->state = IPC_SHARD_PENDING;
        s->alive = true;
        return state_save(c, e);
}

static _Noreturn void finish(Coord *c) {
        RunError e;

        if (commit_all(&c->commit, &e) < 0)
                fail(c, &e);
        if (c->commit.committed != c->job->n_items)
                failf(c, IPC_FAIL_PERMANENT, "all shards done with %" PRIu64 " of %" PRIu64 " items committed",
                      c->commit.committed, c->job->n_items);
        output_log(&c->out, LOG_INFO, "All %" PRIu64 " items done (%" PRIu64 " failed) in %" PRIu32 " shards.",
                   c->job->n_items, c->commit.committed_failed, c->n_shards);
        (void) ipc_send(IPC_FD, IPC_DONE, NULL, 0);
        _exit(0);
}

static void follow(Coord *c) {
        bool all = true;
        RunError e;

        if (look(c, &e) < 0) {
                output_log(&c->out, LOG_WARNING, "%s; trying again.", e.msg);
                return;
        }
        /* After squeue: a task gone from it has made durable all it will. */
        for (uint32_t k = 0; k < c->n_shards; k++) {
                Shard *s = &c->shards[k];
                int r;

                if (s->state == IPC_SHARD_DONE && s->copied_end >= s->results_len)
                        continue; /* nothing more will come from it */
                r = peek_shard(c, k);

                if (r < 0 && r != -ENOENT)
                        output_log(&c->out, LOG_WARNING, "Cannot read shard %" PRIu32 "'s checkpoint: %s", k,
                                   strerror(-r));
                if (copy_shard(c, k, &e) < 0)
                        fail(c, &e);
                if (shard_complete(s))
                        s->state = IPC_SHARD_DONE;
                else if (!s->alive && (r >= 0 || r == -ENOENT) && shard_lost(c, k, &e) < 0)
                        fail(c, &e);
                all = all && shard_complete(s);
        }
        if (c->paused) {
                c->paused = false;
                if (state_save(c, &e) < 0)
                        fail(c, &e);
        }
        if (commit_all(&c->commit, &e) < 0)
                fail(c, &e);
        send_shards(c);
        if (all)
                finish(c);
}

static int timer_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) usec;
        follow(userdata);
        (void) sd_event_source_set_time_relative(s, POLL_USEC);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

/* The first look: the array submitted, unless an earlier coordinator did
 * (then it is followed as it is), and held tasks released after a pause. */
static void begin(Coord *c) {
        RunError e;
        int r;

        c->started = true;
        r = state_load(c, &e);
        if (r == 0)
                r = state_new(c, &e);
        if (r < 0)
                fail(c, &e);
        (void) snprintf(c->name, sizeof(c->name), "mplock-%" PRIu64 "-%.8s", c->job->id, c->token);
        if (!c->array[0]) {
                /* A crash between sbatch and its record: look first. */
                if (look(c, &e) < 0)
                        fail(c, &e);
                for (uint32_t k = 0; k < c->n_shards && !c->array[0]; k++)
                        if (c->shards[k].alive)
                                (void) snprintf(c->array, strcspn(c->shards[k].job, "_") + 1, "%s", c->shards[k].job);
                if (!c->array[0] && submit_all(c, &e) < 0)
                        fail(c, &e);
        } else
                output_log(&c->out, LOG_INFO, "Following Slurm array %s (%" PRIu32 " shards).", c->array,
                           c->n_shards);
        if (c->paused) {
                /* By name: every held task of ours. */
                char jn[96];
                char *argv[] = { "scontrol", "release", jn, NULL };
                SlurmCmd out = {};

                (void) snprintf(jn, sizeof(jn), "jobname=%s", c->name);
                if (slurm_run_cmd(argv, &out, &e) < 0)
                        output_log(&c->out, LOG_WARNING, "%s", e.msg);
                slurm_cmd_done(&out);
        }
        r = sd_event_add_time_relative(c->event, &c->timer, CLOCK_MONOTONIC, 0, 0, timer_handler, c);
        if (r < 0)
                failf(c, IPC_FAIL_TEMPORARY, "sd-event: %s", strerror(-r));
}

/* --- what mplockd says --------------------------------------------------- */

static void scancel(Coord *c, const char *signal, bool batch_only) {
        char name[96], user[32], sig[32];
        char *argv[8] = { "scancel", name, user };
        size_t n = 3;
        SlurmCmd out = {};
        RunError e;

        (void) snprintf(name, sizeof(name), "--name=%s", c->name);
        (void) snprintf(user, sizeof(user), "--user=%u", (unsigned) getuid());
        if (signal) {
                (void) snprintf(sig, sizeof(sig), "--signal=%s", signal);
                argv[n++] = sig;
                argv[n++] = "--state=RUNNING";
        }
        if (batch_only)
                argv[n++] = "--batch";
        argv[n] = NULL;
        if (slurm_run_cmd(argv, &out, &e) < 0)
                output_log(&c->out, LOG_WARNING, "%s", e.msg);
        slurm_cmd_done(&out);
}

/* Cancel: every task goes (scancel by the array's name); we wait, a
 * little, for squeue to show none. */
static _Noreturn void cancel(Coord *c) {
        RunError e;

        if (c->started) {
                scancel(c, NULL, false);
                for (int i = 0; i < 20; i++) {
                        bool any = false;
                        if (look(c, &e) < 0)
                                break;
                        for (uint32_t k = 0; k < c->n_shards; k++)
                                any = any || c->shards[k].alive;
                        if (!any)
                                break;
                        (void) usleep(200 * 1000);
                }
        }
        output_log(&c->out, LOG_INFO, "Cancelled: the Slurm tasks of array %s are cancelled.", c->array);
        _exit(0);
}

/* The owner's pause: pending tasks held, running ones told to commit and
 * stop (SIGTERM to the shard driver). mplockd stopping: the array goes on
 * without us and the next coordinator follows it. */
static _Noreturn void stop(Coord *c, const IpcStop *st) {
        RunError e;

        if (!c->started)
                _exit(0);
        if (st->mode == IPC_STOP_CANCEL)
                cancel(c);
        if (st->flags & IPC_STOP_FLAG_PAUSE) {
                char jn[96];
                char *argv[] = { "scontrol", "hold", jn, NULL };
                SlurmCmd out = {};

                c->paused = true;
                if (state_save(c, &e) < 0)
                        fail(c, &e);
                (void) snprintf(jn, sizeof(jn), "jobname=%s", c->name);
                if (slurm_run_cmd(argv, &out, &e) < 0)
                        output_log(&c->out, LOG_WARNING, "%s", e.msg);
                slurm_cmd_done(&out);
                scancel(c, "TERM", true);
                output_log(&c->out, LOG_INFO, "Paused: pending shards held, running ones stop after a commit.");
        } else
                output_log(&c->out, LOG_INFO, "Stopping; Slurm array %s goes on and is followed again at the next start.",
                           c->array);
        (void) commit_all(&c->commit, &e);
        _exit(0);
}

static int ipc_handler(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        static char buf[IPC_MSG_MAX] __attribute__((aligned(8)));
        Coord *c = userdata;
        const void *payload;
        uint32_t type;
        size_t len;
        int k;

        (void) s;
        (void) revents;
        k = ipc_recv(fd, buf, sizeof(buf), &type, &len, &payload);
        if (k == -EAGAIN)
                return 0;
        if (k <= 0)
                _exit(1); /* mplockd is gone; the array is not */
        if (type == IPC_STOP && len == sizeof(IpcStop)) {
                IpcStop st;
                memcpy(&st, payload, sizeof(st));
                stop(c, &st);
        }
        if (type == IPC_PLACED && len == 0 && !c->started) {
                begin(c);
                return 0;
        }
        failf(c, IPC_FAIL_TEMPORARY, "unexpected message from mplockd");
}

/* --- the start ----------------------------------------------------------- */

static int send_commit(void *userdata, const IpcCommit *ic, const IpcRange *ranges) {
        (void) userdata;
        return ipc_send2(IPC_FD, IPC_COMMIT, ic, sizeof(*ic), ranges, ic->n_ranges * sizeof(IpcRange));
}

static int open_dir(Coord *c, RunError *e) {
        output_path(&c->out, SLURM_DIR_SUFFIX, c->dir, sizeof(c->dir));
        if (strpbrk(c->dir, "%\\\n"))
                return run_error(e, IPC_FAIL_PERMANENT, -EINVAL,
                                 "the output directory %s has a '%%', '\\' or newline, which sbatch would read "
                                 "as a pattern", c->job->output);
        if (mkdir(c->dir, 0755) < 0 && errno != EEXIST)
                return run_error_io(e, -errno, "cannot create %s: %s", c->dir, strerror(errno));
        c->dirfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (c->dirfd < 0)
                return run_error_io(e, -errno, "cannot open %s: %s", c->dir, strerror(errno));
        return fsync_parent_at(AT_FDCWD, c->dir) < 0 ? run_error_io(e, -errno, "cannot sync %s", c->job->output)
                                                      : 0;
}

static int setup(Coord *c, RunError *e) {
        char err[1024];
        uint64_t end = 0;
        int r;

        if (c->job->results_gen > 0)
                return run_error(e, IPC_FAIL_PERMANENT, -EOPNOTSUPP,
                                 "a retry of a Slurm job is not supported yet: submit its failed items again");
        r = start_lock(LOCK_FD, START_LOCK_TIMEOUT_USEC, e);
        if (r >= 0 && ((r = output_open_log(&c->out, e)) < 0 || (r = output_open_results(&c->out, e)) < 0 ||
                       (r = output_prepare_results(&c->out, 0, c->job->results_len, &end, e)) < 0))
                return r;
        if (r < 0)
                return r;
        r = items_open(&c->items, INPUT_FD, c->job->n_items, c->job->input_bytes, c->job->input_crc, err,
                       sizeof(err));
        if (r < 0)
                return run_error(e, IPC_FAIL_PERMANENT, r, "%s", err);
        r = start_load_done(&c->done, BITMAP_FD, c->job->n_items, c->job->committed, e);
        if (r < 0)
                return r;
        const CommitConfig cfg = {
                .results_fd = c->out.results_fd,
                .dir_fd = c->out.results_name_unsynced ? c->out.dir_fd : -1,
                .results_len = end,
                .done = &c->done,
                .committed = c->job->committed,
                .committed_failed = c->job->committed_failed,
                .commit_items = UINT32_MAX,
                .save_batch = 1,
                .send = send_commit,
        };
        if (commit_init(&c->commit, &cfg) < 0)
                return run_error(e, IPC_FAIL_TEMPORARY, -ENOMEM, "out of memory");
        return open_dir(c, e);
}

_Noreturn void slurm_main(Job *job) {
        static Coord c;
        sigset_t mask;
        RunError e;
        int r;

        c = (Coord){ .job = job, .dirfd = -1 };
        output_init(&c.out, job->output, job->id);
        if (setup(&c, &e) < 0)
                fail(&c, &e);
        if (sigemptyset(&mask) < 0 || sigaddset(&mask, SIGCHLD) < 0 || sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                failf(&c, IPC_FAIL_TEMPORARY, "sigprocmask: %s", strerror(errno));
        (void) signal(SIGPIPE, SIG_IGN);
        r = sd_event_new(&c.event);
        if (r >= 0)
                r = sd_event_add_io(c.event, &c.ipc_source, IPC_FD, EPOLLIN, ipc_handler, &c);
        if (r < 0)
                failf(&c, IPC_FAIL_TEMPORARY, "sd-event: %s", strerror(-r));
        (void) ipc_send(IPC_FD, IPC_READY, NULL, 0);
        output_log(&c.out, LOG_INFO, "Running %" PRIu64 " items (%" PRIu64 " committed before) on Slurm.",
                   job->n_items, c.commit.committed);
        if (!job->wait_placed)
                begin(&c);
        r = sd_event_loop(c.event);
        failf(&c, IPC_FAIL_TEMPORARY, "event loop: %s", strerror(-r));
}
