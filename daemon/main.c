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
#include "paths.h"

#ifndef RUNNER_PATH
#define RUNNER_PATH "/usr/libexec/mplock/mplock-runner"
#endif

static void help(void) {
        printf("Usage: mplockd [OPTIONS]\n\n"
               "Runs batch jobs submitted over a Varlink socket; see mplockd(8).\n\n"
               "  --socket PATH               listen here (default: per instance)\n"
               "  --state-dir DIR             keep jobs and checkpoints here\n"
               "  --config FILE               settings file (default: /etc/mplockd.conf, or\n"
               "                              $XDG_CONFIG_HOME/mplockd.conf for a user instance)\n"
               "  --system | --user           instance type (default: --system for root)\n"
               "  --runner PATH               the mplock-runner helper\n"
               "  --log-level LEVEL           debug, info, warning or error\n"
               "  --help, --version\n\n"
               "Settings (also \"name = value\" lines in the config file; flags win):\n");
        settings_help(stdout);
}

enum {
        ARG_SOCKET = 0x100,
        ARG_STATE_DIR,
        ARG_CONFIG,
        ARG_SYSTEM,
        ARG_USER,
        ARG_RUNNER,
        ARG_LOG_LEVEL,
        ARG_VERSION,
        ARG_SETTING = 0x200, /* + index into the settings table */
};

static int parse_argv(Manager *m, int argc, char **argv, int *system_flag) {
        static const struct option fixed[] = {
                { "socket", required_argument, NULL, ARG_SOCKET },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "config", required_argument, NULL, ARG_CONFIG },
                { "system", no_argument, NULL, ARG_SYSTEM },
                { "user", no_argument, NULL, ARG_USER },
                { "runner", required_argument, NULL, ARG_RUNNER },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
        };
        _cleanup_free_ struct option *options = NULL;
        size_t n = settings_count();
        int c, r;

        options = calloc(ELEMENTSOF(fixed) + n + 1, sizeof(*options));
        if (!options)
                return log_oom();
        memcpy(options, fixed, sizeof(fixed));
        for (size_t i = 0; i < n; i++)
                options[ELEMENTSOF(fixed) + i] =
                        (struct option){ settings_name(i), required_argument, NULL, ARG_SETTING + (int) i };

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
                        r = path_make_absolute(optarg, &m->socket_path);
                        break;
                case ARG_STATE_DIR:
                        free(m->state_dir);
                        r = path_make_absolute(optarg, &m->state_dir);
                        break;
                case ARG_CONFIG:
                        free(m->config_path);
                        r = path_make_absolute(optarg, &m->config_path);
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
                        if (c < ARG_SETTING || (size_t) (c - ARG_SETTING) >= n)
                                return -EINVAL;
                        r = settings_set(&m->cmdline, settings_name((size_t) (c - ARG_SETTING)), optarg,
                                         &m->cmdline_mask);
                        if (r < 0)
                                r = log_error_errno(r, "Invalid --%s \"%s\".", settings_name((size_t) (c - ARG_SETTING)),
                                                    optarg);
                        break;
                }
                if (r < 0)
                        return r;
        }
        if (optind < argc)
                return log_error_errno(EINVAL, "Unexpected argument \"%s\".", argv[optind]);
        return 0;
}

static int default_config_path(Manager *m) {
        const char *x;

        if (m->config_path)
                return 0;
        if (m->system_instance)
                m->config_path = strdup("/etc/mplockd.conf");
        else if ((x = getenv("XDG_CONFIG_HOME")) && x[0] == '/') {
                if (asprintf(&m->config_path, "%s/mplockd.conf", x) < 0)
                        m->config_path = NULL;
        } else if ((x = getenv("HOME")) && x[0] == '/') {
                if (asprintf(&m->config_path, "%s/.config/mplockd.conf", x) < 0)
                        m->config_path = NULL;
        } else
                return 0; /* nowhere to look: flags and defaults only */
        return m->config_path ? 0 : log_oom();
}

/* SIGHUP: settings from the file again, between RELOADING=1 and READY=1.
 * New values apply to what starts from now on (scheduling, new runners,
 * new requests); a file that does not parse changes nothing. */
static void reload(Manager *m) {
        Settings n = m->cmdline;
        int r;

        (void) sd_notify(false, "RELOADING=1\nSTATUS=Reloading configuration");
        r = m->config_path ? settings_load_file(&n, m->config_path, m->cmdline_mask) : 0;
        if (r < 0)
                log_error("Keeping the settings in force: %s does not load.", m->config_path);
        else {
                m->settings = n;
                log_info("Reloaded %s: %u workers at most.", strna(m->config_path), m->settings.max_workers);
                manager_schedule(m);
        }
        (void) sd_notify(false, "READY=1");
        manager_notify_status(m);
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
                reload(m);
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
        control_sweep(m);
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
        free(m->config_path);
}

int main(int argc, char **argv) {
        Manager m = { .state_fd = -1, .jobs_fd = -1, .listen_fd = -1 };
        int system_flag = -1, r;
        sigset_t mask;

        log_setup("mplockd");
        settings_defaults(&m.cmdline);
        r = parse_argv(&m, argc, argv, &system_flag);
        if (r < 0)
                return 2;
        m.system_instance = system_flag >= 0 ? system_flag : geteuid() == 0;
        if (default_config_path(&m) < 0)
                return 1;
        m.settings = m.cmdline;
        if (m.config_path && settings_load_file(&m.settings, m.config_path, m.cmdline_mask) < 0)
                return 1;

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
