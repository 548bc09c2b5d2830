/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "mplockd.h"
#include "parse.h"
#include "paths.h"

#ifndef RUNNER_PATH
#define RUNNER_PATH "/usr/libexec/mplock/mplock-runner"
#endif

static void settings_defaults(Settings *s) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        *s = (Settings){
                .max_workers = n > 0 ? (uint32_t) n : 1,
                .max_workers_per_job = 256,
                .max_jobs = 10000,
                .max_active_jobs = 1000,
                .max_connections = 256,
                .max_connections_per_uid = 64,
                .max_message = 16u << 20,
                .max_shared = 1u << 20,
                .max_items = 250000000,
                .max_input_bytes = UINT64_C(64) << 30,
                .max_batch_size = 65536,
                .max_save_batch = 1000000,
                .commit_interval_ms = 200,
                .commit_items = 1000000,
                .max_attempts = 3,
                .stop_timeout_usec = 10 * 1000000ULL,
                .check_timeout_usec = 300 * 1000000ULL,
        };
}

static void help(void) {
        printf("Usage: mplockd [OPTIONS]\n\n"
               "Runs batch jobs submitted over a Varlink socket; see mplockd(8).\n\n"
               "  --socket PATH               listen here (default: per instance, see --system)\n"
               "  --state-dir DIR             keep jobs and checkpoints here\n"
               "  --system | --user           instance type (default: --system for root)\n"
               "  --runner PATH               the mplock-runner helper\n"
               "  --max-workers N             worker processes over all jobs (default: CPUs)\n"
               "  --max-workers-per-job N     largest --workers a job may ask for (256)\n"
               "  --max-jobs N                jobs kept, in any state (10000)\n"
               "  --max-active-jobs N         queued and running jobs (1000)\n"
               "  --max-connections N         client connections (256)\n"
               "  --max-connections-per-uid N (64)\n"
               "  --max-message-size BYTES    one Varlink message (16 MiB)\n"
               "  --max-shared-size BYTES     a job's shared data (1 MiB)\n"
               "  --max-items N               items in one job (250000000)\n"
               "  --max-input-size BYTES      one job's input list (64 GiB)\n"
               "  --commit-interval MS        checkpoint group commit interval (200)\n"
               "  --commit-items N            ... or after this many items (1000000)\n"
               "  --max-attempts N            attempts per item whose worker dies (3)\n"
               "  --stop-timeout SEC          graceful stop before runners are killed (10)\n"
               "  --log-level LEVEL           debug, info, warning or error\n"
               "  --help, --version\n");
}

enum {
        ARG_SOCKET = 0x100,
        ARG_STATE_DIR,
        ARG_SYSTEM,
        ARG_USER,
        ARG_RUNNER,
        ARG_MAX_WORKERS,
        ARG_MAX_WORKERS_PER_JOB,
        ARG_MAX_JOBS,
        ARG_MAX_ACTIVE_JOBS,
        ARG_MAX_CONNECTIONS,
        ARG_MAX_CONNECTIONS_PER_UID,
        ARG_MAX_MESSAGE,
        ARG_MAX_SHARED,
        ARG_MAX_ITEMS,
        ARG_MAX_INPUT,
        ARG_COMMIT_INTERVAL,
        ARG_COMMIT_ITEMS,
        ARG_MAX_ATTEMPTS,
        ARG_STOP_TIMEOUT,
        ARG_LOG_LEVEL,
        ARG_VERSION,
};

static int parse_num_arg(const char *name, const char *v, uint64_t min, uint64_t max, uint64_t *ret) {
        int r = parse_uint_range(v, min, max, ret);
        if (r < 0)
                return log_error_errno(r, "Invalid %s: \"%s\" (expected %llu..%llu).", name, v,
                                       (unsigned long long) min, (unsigned long long) max);
        return 0;
}

static int parse_argv(Manager *m, int argc, char **argv, int *system_flag) {
        static const struct option options[] = {
                { "socket", required_argument, NULL, ARG_SOCKET },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "system", no_argument, NULL, ARG_SYSTEM },
                { "user", no_argument, NULL, ARG_USER },
                { "runner", required_argument, NULL, ARG_RUNNER },
                { "max-workers", required_argument, NULL, ARG_MAX_WORKERS },
                { "max-workers-per-job", required_argument, NULL, ARG_MAX_WORKERS_PER_JOB },
                { "max-jobs", required_argument, NULL, ARG_MAX_JOBS },
                { "max-active-jobs", required_argument, NULL, ARG_MAX_ACTIVE_JOBS },
                { "max-connections", required_argument, NULL, ARG_MAX_CONNECTIONS },
                { "max-connections-per-uid", required_argument, NULL, ARG_MAX_CONNECTIONS_PER_UID },
                { "max-message-size", required_argument, NULL, ARG_MAX_MESSAGE },
                { "max-shared-size", required_argument, NULL, ARG_MAX_SHARED },
                { "max-items", required_argument, NULL, ARG_MAX_ITEMS },
                { "max-input-size", required_argument, NULL, ARG_MAX_INPUT },
                { "commit-interval", required_argument, NULL, ARG_COMMIT_INTERVAL },
                { "commit-items", required_argument, NULL, ARG_COMMIT_ITEMS },
                { "max-attempts", required_argument, NULL, ARG_MAX_ATTEMPTS },
                { "stop-timeout", required_argument, NULL, ARG_STOP_TIMEOUT },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        Settings *s = &m->settings;
        uint64_t v;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                r = 0;
                switch (c) {
                case 'h':
                        help();
                        exit(EXIT_SUCCESS);
                case ARG_VERSION:
                        printf("mplockd %s\n", MPLOCK_VERSION);
                        exit(EXIT_SUCCESS);
                case ARG_SOCKET:
                        free(m->socket_path);
                        if (optarg[0] != '/') {
                                free(m->socket_path);
                                r = path_make_absolute(optarg, &m->socket_path);
                        } else
                                r = (m->socket_path = strdup(optarg)) ? 0 : -ENOMEM;
                        break;
                case ARG_STATE_DIR:
                        free(m->state_dir);
                        r = path_make_absolute(optarg, &m->state_dir);
                        break;
                case ARG_SYSTEM:
                        *system_flag = 1;
                        break;
                case ARG_USER:
                        *system_flag = 0;
                        break;
                case ARG_RUNNER:
                        free(m->runner_path);
                        r = path_make_absolute(optarg, &m->runner_path);
                        break;
#define NUM(arg, name, min, max, field)                                       \
        case arg:                                                             \
                r = parse_num_arg(name, optarg, (min), (max), &v);            \
                if (r == 0)                                                   \
                        s->field = (__typeof__(s->field)) v;                  \
                break;
                        NUM(ARG_MAX_WORKERS, "--max-workers", 1, 65536, max_workers)
                        NUM(ARG_MAX_WORKERS_PER_JOB, "--max-workers-per-job", 1, 65536, max_workers_per_job)
                        NUM(ARG_MAX_JOBS, "--max-jobs", 1, 10000000, max_jobs)
                        NUM(ARG_MAX_ACTIVE_JOBS, "--max-active-jobs", 1, 1000000, max_active_jobs)
                        NUM(ARG_MAX_CONNECTIONS, "--max-connections", 1, 100000, max_connections)
                        NUM(ARG_MAX_CONNECTIONS_PER_UID, "--max-connections-per-uid", 1, 100000,
                            max_connections_per_uid)
                        NUM(ARG_MAX_MESSAGE, "--max-message-size", 4096, 1u << 30, max_message)
                        NUM(ARG_MAX_SHARED, "--max-shared-size", 2, 256u << 20, max_shared)
                        NUM(ARG_MAX_ITEMS, "--max-items", 1, UINT64_C(1) << 36, max_items)
                        NUM(ARG_MAX_INPUT, "--max-input-size", 1, UINT64_C(1) << 50, max_input_bytes)
                        NUM(ARG_COMMIT_INTERVAL, "--commit-interval", 1, 3600000, commit_interval_ms)
                        NUM(ARG_COMMIT_ITEMS, "--commit-items", 1, UINT32_MAX, commit_items)
                        NUM(ARG_MAX_ATTEMPTS, "--max-attempts", 1, 1000, max_attempts)
#undef NUM
                case ARG_STOP_TIMEOUT:
                        r = parse_num_arg("--stop-timeout", optarg, 0, 86400, &v);
                        if (r == 0)
                                s->stop_timeout_usec = v * 1000000ULL;
                        break;
                case ARG_LOG_LEVEL:
                        if (streq(optarg, "debug"))
                                log_set_max_level(LOG_DEBUG);
                        else if (streq(optarg, "info"))
                                log_set_max_level(LOG_INFO);
                        else if (streq(optarg, "warning"))
                                log_set_max_level(LOG_WARNING);
                        else if (streq(optarg, "error"))
                                log_set_max_level(LOG_ERR);
                        else
                                r = log_error_errno(EINVAL, "Unknown log level \"%s\".", optarg);
                        break;
                default:
                        return -EINVAL;
                }
                if (r < 0)
                        return r;
        }
        if (optind < argc)
                return log_error_errno(EINVAL, "Unexpected argument \"%s\".", argv[optind]);
        return 0;
}

static int find_runner(Manager *m) {
        char self[PATH_MAX];
        ssize_t n;

        if (m->runner_path)
                return 0;
        /* Next to our own binary (a build tree), else the installed one. */
        n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n > 0) {
                char *slash;
                self[n] = '\0';
                slash = strrchr(self, '/');
                if (slash) {
                        *slash = '\0';
                        if (asprintf(&m->runner_path, "%s/mplock-runner", self) < 0)
                                return log_oom();
                        if (access(m->runner_path, X_OK) == 0)
                                return 0;
                        free(m->runner_path);
                }
        }
        m->runner_path = strdup(RUNNER_PATH);
        if (!m->runner_path)
                return log_oom();
        if (access(m->runner_path, X_OK) < 0)
                return log_error_errno(errno, "Cannot find the job runner %s: %m (use --runner).", m->runner_path);
        return 0;
}

static int signal_handler(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        (void) s;
        if (si->ssi_signo == SIGHUP) {
                log_info("SIGHUP: nothing to reload yet.");
                return 0;
        }
        if (m->stopping)
                return 0;
        log_info("Stopping (signal %s): letting runners finish their items.", strsignal((int) si->ssi_signo));
        (void) sd_notify(false, "STOPPING=1\nSTATUS=Stopping: finishing in-flight items");
        manager_stop_all(m);
        return 0;
}

static int status_timer_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        (void) usec;
        (void) sd_event_source_set_time_relative(s, 1000000);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        manager_notify_status(m);
        /* Progress for clients that asked Wait with "more". */
        for (size_t i = 0; i < m->n_jobs; i++) {
                Job *j = m->jobs[i];
                for (Connection *c = j->waiters; c; c = c->wait_next) {
                        json_object *p;
                        if (!c->more || c->wait_is_cancel)
                                continue;
                        p = json_object_new_object();
                        if (p && json_add(p, "job", job_to_json(j)) == 0)
                                connection_reply_continues(c, p);
                        else
                                json_object_put(p);
                }
        }
        return 0;
}

static void manager_free(Manager *m) {
        control_close_all(m);
        submit_abort_all(m);
        for (size_t i = 0; i < m->n_jobs; i++)
                job_free(m->jobs[i]);
        free(m->jobs);
        sd_event_source_disable_unref(m->status_timer);
        sd_event_unref(m->event);
        safe_close(m->state_fd);
        safe_close(m->jobs_fd);
        free(m->state_dir);
        free(m->socket_path);
        free(m->runner_path);
}

int main(int argc, char **argv) {
        Manager m = { .state_fd = -1, .jobs_fd = -1, .listen_fd = -1 };
        int system_flag = -1, r;
        sigset_t mask;

        log_setup("mplockd");
        settings_defaults(&m.settings);
        r = parse_argv(&m, argc, argv, &system_flag);
        if (r < 0)
                return 2;
        m.system_instance = system_flag >= 0 ? system_flag : geteuid() == 0;

        if (!m.socket_path) {
                const char *rd = paths_systemd_dir("RUNTIME_DIRECTORY");
                if (rd)
                        r = asprintf(&m.socket_path, "%s/%s", rd, MPLOCK_SOCKET_NAME) < 0 ? -ENOMEM : 0;
                else
                        r = paths_socket(m.system_instance, &m.socket_path);
                if (r < 0) {
                        log_error_errno(r, "Cannot tell where to put the socket (no $XDG_RUNTIME_DIR?); use --socket.");
                        return 1;
                }
        }
        if (!m.state_dir) {
                const char *sd = paths_systemd_dir("STATE_DIRECTORY");
                r = sd ? ((m.state_dir = strdup(sd)) ? 0 : -ENOMEM) : paths_state_dir(m.system_instance, &m.state_dir);
                if (r < 0) {
                        log_error_errno(r, "Cannot tell where to keep state (no $HOME?); use --state-dir.");
                        return 1;
                }
        }
        if (find_runner(&m) < 0)
                return 1;

        /* Signals are handled by the event loop, never in a handler; writes
         * to a gone client must fail with EPIPE, not kill us. */
        (void) sigemptyset(&mask);
        (void) sigaddset(&mask, SIGCHLD);
        (void) sigaddset(&mask, SIGTERM);
        (void) sigaddset(&mask, SIGINT);
        (void) sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
                log_error_errno(errno, "sigprocmask: %m");
                return 1;
        }
        (void) signal(SIGPIPE, SIG_IGN);

        r = sd_event_default(&m.event);
        if (r < 0) {
                log_error_errno(r, "sd_event_default: %m");
                return 1;
        }
        if ((r = sd_event_add_signal(m.event, NULL, SIGTERM, signal_handler, &m)) < 0 ||
            (r = sd_event_add_signal(m.event, NULL, SIGINT, signal_handler, &m)) < 0 ||
            (r = sd_event_add_signal(m.event, NULL, SIGHUP, signal_handler, &m)) < 0) {
                log_error_errno(r, "Cannot watch signals: %m");
                goto finish;
        }
        /* WATCHDOG=1 pings at half of WatchdogSec=, from the loop itself: a
         * hung loop stops pinging. */
        r = sd_event_set_watchdog(m.event, true);
        if (r < 0)
                log_warning_errno(r, "Cannot enable the watchdog, continuing without: %m");

        r = store_open(&m);
        if (r < 0)
                goto finish;
        r = store_load_jobs(&m);
        if (r < 0)
                goto finish;
        r = control_listen(&m);
        if (r < 0)
                goto finish;
        r = sd_event_add_time_relative(m.event, &m.status_timer, CLOCK_MONOTONIC, 1000000, 0, status_timer_handler,
                                       &m);
        if (r < 0) {
                log_error_errno(r, "Cannot set up the status timer: %m");
                goto finish;
        }
        (void) sd_event_source_set_description(m.status_timer, "status");

        log_info("Listening on %s, state in %s, %u workers at most.", m.socket_path, m.state_dir,
                 m.settings.max_workers);
        manager_schedule(&m);
        (void) sd_notify(false, "READY=1");
        manager_notify_status(&m);

        r = sd_event_loop(m.event);
        if (r < 0)
                log_error_errno(r, "Event loop failed: %m");
finish:
        manager_free(&m);
        return r < 0 ? 1 : 0;
}
