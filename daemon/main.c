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

#include "agents.h"
#include "scope.h"
#include "api.h"
#include "config.h"
#include "control.h"
#include "jobs.h"
#include "log.h"
#include "macro.h"
#include "paths.h"
#include "store.h"
#include "submit.h"

#ifndef RUNNER_PATH
#define RUNNER_PATH "/usr/libexec/mplock/mplock-runner"
#endif
#ifndef PYTHON_BRIDGE_NAME
#define PYTHON_BRIDGE_NAME "" /* built without the Python bridge */
#define PYTHON_BRIDGE_PATH ""
#endif

/* The daemon: what main owns and wires together. Each layer gets only the
 * objects it uses (control knows no jobs; jobs know no calls). */
typedef struct Manager {
        sd_event *event;
        Settings settings;     /* in force */
        Settings cmdline;      /* defaults and the command line */
        uint64_t cmdline_mask; /* which settings the command line set */
        char *config_path, *state_dir, *socket_path, *runner_path, *python_bridge;
        bool system_instance;
        int state_fd, jobs_fd, new_fd;
        Agents *agents;
        Scopes *scopes;
        Jobs *jobs;
        Submitter *submitter;
        Api *api;
        Control *control;
        sd_event_source *status_timer;
} Manager;

#define STATUS_INTERVAL_USEC 1000000u
/* A user's agent lives this long without work; one told to kill a task
 * that is not gone this long after is killed itself. */
#define AGENT_IDLE_USEC (30 * 1000000ULL)
#define AGENT_KILL_WAIT_USEC (5 * 1000000ULL)

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

/* STATUS= for systemctl status: what runs, how far the first one is. */
static void notify_status(Manager *m) {
        unsigned running = 0, queued = 0, paused = 0;
        const Job *first = NULL;
        char buf[512];
        size_t len;

        for (size_t i = 0; i < m->jobs->n_jobs; i++) {
                const Job *j = m->jobs->jobs[i];
                running += job_state(j) == JOB_RUNNING;
                queued += job_state(j) == JOB_QUEUED;
                paused += job_state(j) == JOB_PAUSED;
                if (!first && job_state(j) == JOB_RUNNING)
                        first = j;
        }
        len = (size_t) snprintf(buf, sizeof(buf), "STATUS=%u running, %u queued", running, queued);
        if (paused > 0 && len < sizeof(buf))
                len += (size_t) snprintf(buf + len, sizeof(buf) - len, ", %u paused", paused);
        if (first && len < sizeof(buf))
                (void) snprintf(buf + len, sizeof(buf) - len, "; job %llu: %llu/%llu items, %.0f/s",
                                (unsigned long long) first->spec.id,
                                (unsigned long long) MAX(first->processed, first->status.done),
                                (unsigned long long) first->spec.n_items, first->rate);
        (void) sd_notify(false, buf);
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
                jobs_schedule(m->jobs);
        }
        (void) sd_notify(false, "READY=1");
        notify_status(m);
}

static int find_runner(Manager *m) {
        int r;

        if (m->runner_path)
                return 0;
        /* Next to our own binary (a build tree), else the installed one. */
        r = paths_beside_self("mplock-runner", X_OK, &m->runner_path);
        if (r == -ENOMEM)
                return log_oom();
        if (r >= 0)
                return 0;
        m->runner_path = strdup(RUNNER_PATH);
        if (!m->runner_path)
                return log_oom();
        if (access(m->runner_path, X_OK) < 0)
                return log_error_errno(errno, "Cannot find the job runner %s: %m (use --runner).", m->runner_path);
        return 0;
}

/* The Python bridge of this build: python/ beside us in a build tree,
 * else where meson installs it. Only compared with the module paths of
 * jobs (their runners' agents warm Python up for them); never opened by
 * mplockd. */
static int find_python_bridge(Manager *m) {
        int r;

        if (!*PYTHON_BRIDGE_NAME)
                return 0;
        r = paths_beside_self("python/" PYTHON_BRIDGE_NAME, R_OK, &m->python_bridge);
        if (r == -ENOMEM)
                return log_oom();
        if (r >= 0)
                return 0;
        m->python_bridge = strdup(PYTHON_BRIDGE_PATH);
        return m->python_bridge ? 0 : log_oom();
}

static void exit_if_drained(Manager *m) {
        if (m->jobs->stopping && jobs_runners_gone(m->jobs))
                (void) sd_event_exit(m->event, 0);
}

static int signal_handler(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        (void) s;
        if (si->ssi_signo == SIGHUP) {
                reload(m);
                return 0;
        }
        if (m->jobs->stopping)
                return 0;
        log_info("Stopping (signal %s): letting runners finish their items.", strsignal((int) si->ssi_signo));
        (void) sd_notify(false, "STOPPING=1\nSTATUS=Stopping: finishing in-flight items");
        submitter_abort_all(m->submitter);
        jobs_stop_all(m->jobs);
        exit_if_drained(m);
        return 0;
}

static void on_job_event(Job *j, JobEvent event, void *userdata) {
        Manager *m = userdata;

        api_job_event(m->api, j, event);
        if (event == JOB_EVENT_RUNNER_EXITED)
                exit_if_drained(m);
}

static int status_timer_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) usec;
        (void) sd_event_source_set_time_relative(s, STATUS_INTERVAL_USEC);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        notify_status(userdata);
        return 0;
}

static void manager_free(Manager *m) {
        /* Top down: links (and the calls waiting on jobs) first. */
        m->control = control_free(m->control);
        m->api = api_free(m->api);
        m->submitter = submitter_free(m->submitter);
        m->jobs = jobs_free(m->jobs);
        m->scopes = scopes_free(m->scopes); /* after the jobs: their requests */
        m->agents = agents_free(m->agents);
        sd_event_source_disable_unref(m->status_timer);
        sd_event_unref(m->event);
        safe_close(m->state_fd);
        safe_close(m->jobs_fd);
        safe_close(m->new_fd);
        free(m->state_dir);
        free(m->socket_path);
        free(m->runner_path);
        free(m->python_bridge);
        free(m->config_path);
}

static int default_paths(Manager *m) {
        const char *dir;
        int r;

        if (!m->socket_path) {
                dir = paths_systemd_dir("RUNTIME_DIRECTORY");
                if (dir)
                        r = asprintf(&m->socket_path, "%s/%s", dir, MPLOCK_SOCKET_NAME) < 0 ? -ENOMEM : 0;
                else
                        r = paths_socket(m->system_instance, &m->socket_path);
                if (r < 0)
                        return log_error_errno(r, "Cannot tell where to put the socket (no $XDG_RUNTIME_DIR?); "
                                                  "use --socket.");
        }
        if (!m->state_dir) {
                dir = paths_systemd_dir("STATE_DIRECTORY");
                r = dir ? ((m->state_dir = strdup(dir)) ? 0 : -ENOMEM) : paths_state_dir(m->system_instance, &m->state_dir);
                if (r < 0)
                        return log_error_errno(r, "Cannot tell where to keep state (no $HOME?); use --state-dir.");
        }
        r = find_runner(m);
        return r < 0 ? r : find_python_bridge(m);
}

/* Signals are handled by the event loop, never in a handler; writes to a
 * gone client must fail with EPIPE, not kill us. */
static int setup_event_loop(Manager *m) {
        sigset_t mask;
        int r;

        (void) sigemptyset(&mask);
        (void) sigaddset(&mask, SIGCHLD);
        (void) sigaddset(&mask, SIGTERM);
        (void) sigaddset(&mask, SIGINT);
        (void) sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "sigprocmask: %m");
        (void) signal(SIGPIPE, SIG_IGN);
        r = sd_event_default(&m->event);
        if (r < 0)
                return log_error_errno(r, "sd_event_default: %m");
        if ((r = sd_event_add_signal(m->event, NULL, SIGTERM, signal_handler, m)) < 0 ||
            (r = sd_event_add_signal(m->event, NULL, SIGINT, signal_handler, m)) < 0 ||
            (r = sd_event_add_signal(m->event, NULL, SIGHUP, signal_handler, m)) < 0)
                return log_error_errno(r, "Cannot watch signals: %m");
        /* WATCHDOG=1 pings at half of WatchdogSec=, from the loop itself:
         * a hung loop stops pinging. */
        r = sd_event_set_watchdog(m->event, true);
        if (r < 0)
                log_warning_errno(r, "Cannot enable the watchdog, continuing without: %m");
        r = sd_event_add_time_relative(m->event, &m->status_timer, CLOCK_MONOTONIC, STATUS_INTERVAL_USEC, 0,
                                       status_timer_handler, m);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the status timer: %m");
        (void) sd_event_source_set_description(m->status_timer, "status");
        return 0;
}

/* The layers, bottom up: jobs (loaded from the state directory), the
 * submissions, the methods, the socket. */
static int setup_layers(Manager *m) {
        int r;

        r = store_open(m->state_dir, &m->state_fd, &m->jobs_fd, &m->new_fd);
        if (r < 0)
                return r;
        r = agents_new(&m->agents, m->event, &(AgentsConfig){ .runner_path = m->runner_path,
                                                               .nproc = m->settings.max_processes_per_uid,
                                                               .idle_usec = AGENT_IDLE_USEC,
                                                               .kill_wait_usec = AGENT_KILL_WAIT_USEC });
        if (r >= 0)
                r = jobs_new(&m->jobs, m->event, &m->settings, m->state_fd, m->jobs_fd, m->new_fd, m->agents, on_job_event,
                             m);
        if (r >= 0)
                m->jobs->python_bridge = m->python_bridge;
        if (r >= 0 && m->settings.job_scopes)
                r = scopes_new(&m->scopes, m->event, !m->system_instance, m->settings.user_cpu_weight);
        if (r >= 0)
                m->jobs->scopes = m->scopes;
        if (r >= 0)
                r = submitter_new(&m->submitter, m->event, &m->settings, m->jobs, m->agents, m->new_fd);
        if (r >= 0)
                r = api_new(&m->api, m->event, &m->settings, m->jobs, m->submitter, m->agents);
        if (r >= 0)
                r = control_new(&m->control, m->event, &m->settings, api_dispatch, m->api);
        if (r < 0)
                return log_error_errno(r, "Cannot set up: %m");
        r = jobs_load(m->jobs);
        if (r < 0)
                return r;
        return control_listen(m->control, m->socket_path, m->system_instance);
}

int main(int argc, char **argv) {
        Manager m = { .state_fd = -1, .jobs_fd = -1, .new_fd = -1 };
        int system_flag = -1, r;

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
        if (default_paths(&m) < 0)
                return 1;

        r = setup_event_loop(&m);
        if (r >= 0)
                r = setup_layers(&m);
        if (r >= 0) {
                log_info("Listening on %s, state in %s, %u workers at most.", m.socket_path, m.state_dir,
                         m.settings.max_workers);
                jobs_schedule(m.jobs);
                (void) sd_notify(false, "READY=1");
                notify_status(&m);
                r = sd_event_loop(m.event);
                if (r < 0)
                        log_error_errno(r, "Event loop failed: %m");
        }
        manager_free(&m);
        return r < 0 ? 1 : 0;
}
