/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-event.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "bitset.h"
#include "carry.h"
#include "check-cache.h"
#include "clock.h"
#include "commit.h"
#include "dispatch.h"
#include "ipc.h"
#include "items.h"
#include "log.h"
#include "macro.h"
#include "host.h"
#include "module.h"
#include "output.h"
#include "pool.h"
#include "reuse.h"
#include "run-error.h"
#include "run-stats.h"
#include "runner.h"
#include "slurm.h"
#include "start.h"
#include "watchdog.h"

/* "mplock-runner run": one per running job, started by mplockd with
 *   fd 3  the IPC socket (IPC_START arrives first)
 *   fd 4  the job's snapshot again, flock()ed (the job's lock) before
 *         anything is touched, and held to the end
 *   fd 5  the input snapshot
 *   fd 6  a sealed memfd with the bitmap of committed items
 *
 * It forks the workers, hands out chunks of items, appends the blocks the
 * workers send to the results file, calls the module's save callback, and
 * commits: fdatasync the results file, then tell the daemon which items
 * are in it up to which length. The daemon writes the checkpoint; recovery
 * cuts the results file back to the last committed length, so each
 * committed item has exactly one record.
 *
 * This file is the top: it starts the job (start.c, output.c, carry.c),
 * wires dispatch.c, commit.c and pool.c to the event loop, and is the one
 * place that reports a failure to mplockd and exits. Everything below
 * returns -errno with a RunError. Where mplockd is found gone (the socket
 * fails), nobody can be told: the process group is killed and we exit,
 * here too (RUN_ERROR_GONE from a commit, EOF in ipc_handler). */

#define IPC_FD 3
#define LOCK_FD 4
#define INPUT_FD 5
#define BITMAP_FD 6

typedef struct Runner {
        sd_event *event;
        Job job;
        Output out;
        Items items;
        Bitset done; /* committed at start, then recorded by us */
        Module module;
        Host host;
        Dispatch dispatch;
        Commit commit;
        Pool pool;
        RunStats stats;
        sd_event_source *ipc_source, *commit_timer;
        void *save_state; /* from the module's save_init */
        uint64_t save_seq;
        bool finishing, finished, done_sent, save_started;
        bool started; /* save_init and the workers: after IPC_PLACED when waiting */
        uint64_t kept_failed; /* a retry's failed records not chosen again (not toward a halt) */
} Runner;

/* Reports e to mplockd and exits, taking the workers along. r is NULL
 * before the job is known. */
static _Noreturn void fail(Runner *r, const RunError *e) {
        IpcFail f = { .kind = e->kind };

        if (e->kind != RUN_ERROR_GONE) {
                /* Where the time went, up to the failure. */
                if (r && r->started)
                        run_stats_send(&r->stats, &r->pool, &r->items, IPC_FD, true);
                if (r)
                        output_log(&r->out, LOG_ERR, "%s", e->msg);
                else
                        log_error("%s", e->msg);
                (void) ipc_send2(IPC_FD, IPC_FAIL, &f, sizeof(f), e->msg, strlen(e->msg));
        }
        /* Our process group: the workers. */
        (void) kill(0, SIGKILL);
        _exit(1);
}

static _Noreturn void failf(Runner *r, uint32_t kind, const char *fmt, ...) _printf_(3, 4);
static _Noreturn void failf(Runner *r, uint32_t kind, const char *fmt, ...) {
        RunError e = { .kind = kind };
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(e.msg, sizeof(e.msg), fmt, ap);
        va_end(ap);
        fail(r, &e);
}

/* --- saving ------------------------------------------------------------- */

/* The module's saving, in the form it has: save_batch with its state, the
 * batch's number and flags, or the 1.0 save. */
static int run_save(void *userdata, const mplock_entry *entries, size_t n, bool last) {
        Runner *r = userdata;
        const struct mplock_module *def = r->module.def;
        mplock_batch b = {
                .size = sizeof(b),
                .flags = (last ? MPLOCK_BATCH_LAST : 0) | (r->job.resumed ? MPLOCK_BATCH_RESUMED : 0),
                .seq = ++r->save_seq,
                .entries = entries,
                .n = n,
        };

        uint64_t t = now_usec();
        int q = 0;

        watchdog_arm("the save callback", r->job.callback_timeout_sec);
        if (def->save_batch)
                q = def->save_batch(&r->host.ctx, r->save_state, &b);
        else if (n > 0)
                q = def->save(&r->host.ctx, entries, n);
        watchdog_disarm();
        r->stats.save_usec += now_usec() - t;
        r->stats.save_calls++;
        return q;
}

/* The saver's state, once, before any batch. */
static int save_start(Runner *r, RunError *e) {
        const struct mplock_module *def = r->module.def;
        int q;

        r->save_started = def->save_batch || def->save || def->save_fini;
        if (!def->save_init)
                return 0;
        watchdog_arm("save_init", r->job.callback_timeout_sec);
        q = def->save_init(&r->host.ctx, &r->save_state);
        watchdog_disarm();
        if (q == MPLOCK_SAVE_NOTHING) {
                /* Items commit as they come, without a copy kept for save. */
                commit_no_save(&r->commit);
                output_log(&r->out, LOG_DEBUG, "The module saves nothing in this job.");
        }
        if (q >= 0)
                return 0;
        if (r->host.error_message[0])
                return run_error(e, IPC_FAIL_PERMANENT, q, "save_init failed: %s", r->host.error_message);
        return run_error(e, IPC_FAIL_PERMANENT, q, "save_init failed with %d%s%s", q, q > -4096 ? ": " : "",
                         q > -4096 ? strerror(-q) : "");
}

/* The saver's end, when the runner ends normally. */
static void save_end(Runner *r) {
        if (r->save_started && r->module.def->save_fini) {
                watchdog_arm("save_fini", r->job.callback_timeout_sec);
                r->module.def->save_fini(&r->host.ctx, r->save_state);
                watchdog_disarm();
        }
        r->save_started = false;
}

/* A log line of the module's in the runner (its save callbacks). */
static void runner_module_log(void *userdata, int level, const char *message) {
        output_log(userdata, level, "module (saver): %s", message);
}

/* --- the end ------------------------------------------------------------ */

/* Every item has a record: the last saves and commits; the workers are
 * told to exit, and DONE waits for them (finish_if_done). */
static int finish(Runner *r, RunError *e) {
        int q;

        /* Every item is recorded: the workers end (fini, exit) while the
         * results are made durable, not after it. */
        pool_exit(&r->pool);
        q = commit_save(&r->commit, true, true, e);
        if (q >= 0)
                q = commit_all(&r->commit, e);
        if (q < 0)
                return q;
        if (r->commit.committed != r->job.n_items)
                return run_error(e, IPC_FAIL_PERMANENT, -EPROTO,
                                 "finished with %llu of %llu items committed (internal error)",
                                 (unsigned long long) r->commit.committed, (unsigned long long) r->job.n_items);
        carry_remove(&r->out, r->job.results_gen);
        r->finished = true;
        output_log(&r->out, LOG_INFO, "All %llu items done (%llu failed).", (unsigned long long) r->job.n_items,
                   (unsigned long long) r->commit.committed_failed);
        return 0;
}

/* DONE tells mplockd that the job is complete: it answers whoever waits
 * at once, so everything the module does for the job (the workers' fini,
 * save_fini) must have returned by then. Only our exit is left. */
static void send_done(Runner *r) {
        save_end(r);
        /* Before DONE: whoever waits for the job may ask for them next. */
        run_stats_send(&r->stats, &r->pool, &r->items, IPC_FD, true);
        (void) ipc_send(IPC_FD, IPC_DONE, NULL, 0);
        r->done_sent = true;
}

/* After anything that may have changed what is left: done, or stopped? */
static void finish_if_done(Runner *r) {
        bool idle = r->pool.outstanding == 0;
        RunError e;

        if (r->commit.recorded == r->job.n_items && idle && !r->finished) {
                if (finish(r, &e) < 0)
                        fail(r, &e);
        } else if (r->pool.stopping && idle && !r->finishing) {
                /* A graceful stop: everything handed out is back. */
                r->finishing = true;
                if (commit_save(&r->commit, true, false, &e) < 0 || commit_all(&r->commit, &e) < 0)
                        fail(r, &e);
                pool_exit(&r->pool);
        }
        if (r->finished && !r->done_sent && pool_gone(&r->pool))
                send_done(r);
        if ((r->done_sent || r->finishing) && pool_gone(&r->pool)) {
                if (!r->done_sent)
                        run_stats_send(&r->stats, &r->pool, &r->items, IPC_FD, true);
                (void) sd_event_exit(r->event, 0);
        }
}

static void pool_changed(void *userdata) {
        finish_if_done(userdata);
}

static void pool_failed(void *userdata, const RunError *e) {
        fail(userdata, e);
}

/* --- the event loop ----------------------------------------------------- */

static int send_commit(void *userdata, const IpcCommit *c, const IpcRange *ranges) {
        (void) userdata;
        return ipc_send2(IPC_FD, IPC_COMMIT, c, sizeof(*c), ranges, c->n_ranges * sizeof(IpcRange));
}

/* The group commit, and the progress mplockd shows. */
static int commit_timer_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        Runner *r = userdata;
        IpcProgress p = { .processed = r->commit.recorded };
        RunError e;

        (void) usec;
        if (commit_flush(&r->commit, &e) < 0)
                fail(r, &e);
        p.workers = pool_alive(&r->pool);
        (void) ipc_send(IPC_FD, IPC_PROGRESS, &p, sizeof(p));
        if (r->started)
                run_stats_send(&r->stats, &r->pool, &r->items, IPC_FD, false);
        (void) sd_event_source_set_time_relative(s, (uint64_t) r->job.commit_interval_ms * 1000u);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

static void start_work(Runner *r);

static void stop(Runner *r, const IpcStop *st) {
        if (!r->started) {
                /* Nothing ran yet: nothing to finish or commit. */
                output_log(&r->out, LOG_INFO, "Stopped before starting.");
                _exit(0);
        }
        if (st->mode == IPC_STOP_CANCEL) {
                output_log(&r->out, LOG_INFO, "Cancelled.");
                (void) kill(0, SIGKILL); /* workers and us */
                _exit(0);
        }
        if (!r->pool.stopping) {
                output_log(&r->out, LOG_INFO, "Stopping: finishing %llu items in flight.",
                           (unsigned long long) r->pool.outstanding);
                r->pool.stopping = true;
        }
        finish_if_done(r);
}

static int ipc_handler(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        static char buf[IPC_MSG_MAX] __attribute__((aligned(8)));
        Runner *r = userdata;
        const void *payload;
        uint32_t type;
        size_t len;
        int k;

        (void) s;
        (void) revents;
        k = ipc_recv(fd, buf, sizeof(buf), &type, &len, &payload);
        if (k == -EAGAIN)
                return 0;
        if (k <= 0) {
                /* mplockd is gone: stop at once, the next one resumes. */
                (void) kill(0, SIGKILL);
                _exit(1);
        }
        if (type == IPC_STOP && len == sizeof(IpcStop)) {
                IpcStop st;
                memcpy(&st, payload, sizeof(st));
                stop(r, &st);
                return 0;
        }
        if (type == IPC_PLACED && len == 0 && !r->started) {
                start_work(r);
                return 0;
        }
        failf(r, IPC_FAIL_TEMPORARY, "unexpected message from mplockd");
}

/* --- the start ---------------------------------------------------------- */

/* The input list is snapshotted, the module is not: a job resumed with
 * another file at its path would mix two modules' results in one file.
 * So a run loads only what was checked at submission (its size and
 * CRC-32C); anything else pauses the job, saying so, and it goes on once
 * the original is back. */
static int check_module_unchanged(Runner *r, RunError *e) {
        char now[CHECK_FILE_STAMP_MAX];
        int q;

        if (!r->job.module_stamp)
                return 0; /* submitted before it was kept */
        q = check_file_stamp(r->job.module_path, now);
        if (q < 0)
                return run_error(e, IPC_FAIL_STORAGE, q, "cannot read the module %s: %s", r->job.module_path,
                                 strerror(-q));
        if (!streq(now, r->job.module_stamp))
                return run_error(e, IPC_FAIL_STORAGE, -ESTALE,
                                 "the module %s is not the file the job was submitted with (it was replaced or "
                                 "changed): put that one back and the job goes on, or submit the job again",
                                 r->job.module_path);
        return 0;
}

/* The job's lock, module, output and input; *ret_end is where blocks go. */
static int setup_job(Runner *r, uint64_t *ret_end, RunError *e) {
        char err[1024];
        int q;

        q = start_lock(LOCK_FD, START_LOCK_TIMEOUT_USEC, e);
        if (q < 0)
                return q;
        q = check_module_unchanged(r, e);
        if (q < 0)
                return q;
        q = module_load(&r->module, r->job.module_path, err, sizeof(err));
        if (q < 0)
                return run_error(e, IPC_FAIL_PERMANENT, q, "%s", err);
        if ((q = output_open_log(&r->out, e)) < 0 || (q = output_open_results(&r->out, e)) < 0 ||
            (q = carry_set_aside(&r->out, r->job.results_gen, r->job.results_len, e)) < 0 ||
            (q = output_prepare_results(&r->out, r->job.results_gen, r->job.results_len, ret_end, e)) < 0)
                return q;
        q = items_open(&r->items, INPUT_FD, r->job.n_items, r->job.input_bytes, r->job.input_crc, err, sizeof(err));
        if (q < 0)
                return run_error(e, q == -ENOMEM ? IPC_FAIL_TEMPORARY : IPC_FAIL_PERMANENT, q, "%s", err);
        q = start_load_done(&r->done, BITMAP_FD, r->job.n_items, r->job.committed, e);
        if (q < 0)
                return q;
        (void) close(INPUT_FD); /* the mapping stays */
        (void) close(BITMAP_FD);
        return 0;
}

/* Dispatch and commits, and a retry's carry-over committed through them. */
static int setup_pipeline(Runner *r, uint64_t results_end, RunError *e) {
        const CommitConfig cfg = {
                .results_fd = r->out.results_fd,
                .dir_fd = r->out.results_name_unsynced ? r->out.dir_fd : -1,
                .results_len = results_end,
                .done = &r->done,
                .committed = r->job.committed,
                .committed_failed = r->job.committed_failed,
                .commit_items = r->job.commit_items,
                .save_batch = r->job.save_batch,
                .save = r->module.def->save || r->module.def->save_batch ? run_save : NULL,
                .save_userdata = r,
                .send = send_commit,
        };

        r->dispatch = (Dispatch){ .n_items = r->job.n_items,
                                  .n_workers = r->job.n_workers,
                                  .batch_size = r->job.batch_size,
                                  .max_attempts = r->job.max_attempts,
                                  .retry_delay_ms = r->job.retry_delay_ms,
                                  .done = &r->done };
        if (commit_init(&r->commit, &cfg) < 0)
                return run_error(e, IPC_FAIL_TEMPORARY, -ENOMEM, "out of memory");
        return carry_copy(&r->out, &r->commit, r->job.results_gen, r->job.prev_results_len, r->job.n_items,
                          r->job.retry, &r->kept_failed, e);
}

static int setup_loop(Runner *r, RunError *e) {
        sigset_t mask;
        int q;

        if (sigemptyset(&mask) < 0 || sigaddset(&mask, SIGCHLD) < 0 || sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return run_error(e, IPC_FAIL_TEMPORARY, -errno, "sigprocmask: %s", strerror(errno));
        (void) signal(SIGPIPE, SIG_IGN);
        q = sd_event_new(&r->event);
        if (q < 0)
                return run_error(e, IPC_FAIL_TEMPORARY, q, "sd_event_new: %s", strerror(-q));
        /* Blocking on purpose: a commit must not be lost to EAGAIN; we
         * only read when epoll says there is a message. */
        q = sd_event_add_io(r->event, &r->ipc_source, IPC_FD, EPOLLIN, ipc_handler, r);
        if (q >= 0)
                q = sd_event_add_time_relative(r->event, &r->commit_timer, CLOCK_MONOTONIC,
                                               (uint64_t) r->job.commit_interval_ms * 1000u, 0, commit_timer_handler,
                                               r);
        if (q < 0)
                return run_error(e, IPC_FAIL_TEMPORARY, q, "sd-event: %s", strerror(-q));
        return 0;
}

static int setup_pool(Runner *r, RunError *e) {
        r->pool = (Pool){
                .event = r->event,
                .out = &r->out,
                .module = &r->module,
                .items = &r->items,
                .host = &r->host,
                .done = &r->done,
                .dispatch = &r->dispatch,
                .commit = &r->commit,
                .stats = &r->stats,
                .n_items = r->job.n_items,
                .memory_max = r->job.memory_max,
                .max_items_per_worker = r->job.max_items_per_worker,
                .max_worker_memory = r->job.max_worker_memory,
                /* Failures a retry keeps were not this generation's. */
                .halt_failures = r->job.halt_failures ? r->job.halt_failures + r->kept_failed : 0,
                .n_workers = r->job.n_workers,
                .max_attempts = r->job.max_attempts,
                .timeout_sec = r->job.timeout_sec,
                .init_timeout_sec = r->job.callback_timeout_sec,
                .hooks = { .changed = pool_changed, .failed = pool_failed, .userdata = r },
        };
        return pool_start(&r->pool, e);
}

static void runner_free(Runner *r) {
        pool_free(&r->pool);
        commit_free(&r->commit);
        dispatch_free(&r->dispatch);
        r->ipc_source = sd_event_source_disable_unref(r->ipc_source);
        r->commit_timer = sd_event_source_disable_unref(r->commit_timer);
        r->event = sd_event_unref(r->event);
        bitset_free(&r->done);
        items_close(&r->items);
        host_done(&r->host);
        module_unload(&r->module);
        output_close(&r->out);
        start_job_free(&r->job);
}

/* --reuse, before any item is handed out: the copied records are given
 * to save and committed like any, and mplockd is told how many there
 * were once they are (reuse.h). */
static int reuse_earlier(Runner *r, RunError *e) {
        uint64_t copied;
        IpcReused msg;
        int q;

        q = reuse_copy(&r->job, &r->items, &r->commit, &r->out, &copied, e);
        if (q < 0 || copied == 0)
                return q;
        q = commit_save(&r->commit, true, false, e);
        if (q >= 0)
                q = commit_all(&r->commit, e);
        if (q < 0)
                return q;
        output_log(&r->out, LOG_INFO, "Reused %llu results of job %llu.", (unsigned long long) copied,
                   (unsigned long long) r->job.reuse_job);
        msg = (IpcReused){ .count = copied };
        (void) ipc_send(IPC_FD, IPC_REUSED, &msg, sizeof(msg));
        return 0;
}

/* What runs user code in processes of its own: after the move into the
 * job's scope, when mplockd makes one, so that each of them is in it. */
static void start_work(Runner *r) {
        RunError e;

        r->started = true;
        run_stats_init(&r->stats);
        if (save_start(r, &e) < 0 || reuse_earlier(r, &e) < 0 || setup_pool(r, &e) < 0)
                fail(r, &e);
        finish_if_done(r);
}

int run_main(void) {
        Runner r = {};
        uint64_t results_end = 0;
        RunError e;
        int q;

        /* Nothing made before the job's own umask is known is readable by
         * others; then the submitter's, as a command of theirs would have. */
        umask(077);
        /* No process of the user (a worker, anything it started) may
         * ptrace us or write our memory (nosignal.h). */
        (void) prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        output_init(&r.out, NULL, 0);
        if (start_read(&r.job, IPC_FD, &e) < 0)
                fail(NULL, &e);
        umask((mode_t) r.job.umask);
        q = watchdog_init(IPC_FD);
        if (q < 0)
                failf(NULL, IPC_FAIL_TEMPORARY, "cannot set up the callback watchdog: %s", strerror(-q));
        if (r.job.slurm)
                slurm_main(&r.job); /* no workers here: the shards' tasks have them */
        output_init(&r.out, r.job.output, r.job.id);
        if (host_init(&r.host, r.job.shared, r.job.output, r.job.id, r.job.n_workers, r.job.batch_size) < 0)
                failf(NULL, IPC_FAIL_TEMPORARY, "out of memory");
        r.host.log = runner_module_log;
        r.host.log_userdata = &r.out;
        if (setup_job(&r, &results_end, &e) < 0 || setup_pipeline(&r, results_end, &e) < 0 ||
            setup_loop(&r, &e) < 0)
                fail(&r, &e);

        (void) ipc_send(IPC_FD, IPC_READY, NULL, 0);
        output_log(&r.out, LOG_INFO, "Running %llu items (%llu committed before) with %u workers.",
                   (unsigned long long) r.job.n_items, (unsigned long long) r.commit.committed, r.job.n_workers);
        if (r.job.timeout_sec > 0)
                output_log(&r.out, LOG_DEBUG, "A call of process may take %u s.", r.job.timeout_sec);
        if (!r.job.wait_placed)
                start_work(&r);

        q = sd_event_loop(r.event);
        if (q < 0)
                failf(&r, IPC_FAIL_TEMPORARY, "event loop: %s", strerror(-q));
        save_end(&r);
        runner_free(&r);
        return 0;
}
