/* SPDX-License-Identifier: MIT */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "mplockctl.h"
#include "paths.h"

static void help(void) {
        printf("Usage: mplockctl [--socket PATH | --system | --user] [--json] COMMAND ...\n\n"
               "Commands:\n"
               "  submit --module M.so --input FILE|- --output DIR [--workers N] [--shared JSON|@FILE]\n"
               "         [--save-batch N] [--batch-size N] [--max-attempts N] [--timeout SEC]\n"
               "         [--memory-max BYTES] [--halt-on-failure N|P%%]\n"
               "         [--tasks-max N] [--cpu-weight W] [--cpu-quota P%%] [--io-weight W]\n"
               "         [--max-items-per-worker N] [--max-worker-memory BYTES]\n"
               "         [--name NAME] [--null] [--wait]\n"
               "  submit --exec 'CMD {}' [--input FILE|- | ::: ITEM...] [--output DIR] [--max-output BYTES]\n"
               "         [the options above]\n"
               "                        submit a job; prints its id (--wait: and follows it to its end,\n"
               "                        exiting with wait's codes); --exec runs CMD per item (docs/exec.md)\n"
               "  status JOB            show a job\n"
               "  list                  list your jobs\n"
               "  cancel JOB            stop a job; returns once its workers are gone\n"
               "  wait JOB              wait until a job ends; the exit code tells how\n"
               "  watch JOB             show progress, rate and ETA until the job ends\n"
               "  results JOB [--null] [--via-daemon]\n"
               "                        print results in input order, one per line\n"
               "  failed JOB            the failed items: index, code, message, item\n"
               "  retry JOB             run an ended job's failed and unfinished items again\n"
               "  pause JOB             stop handing out items (also across restarts)\n"
               "  resume JOB            let a paused job go on\n"
               "  logs JOB [-f]         what the job's workers printed (-f: follow until it ends)\n"
               "  stats JOB             where the job's time went: init, processing, waiting, saving,\n"
               "                        items per second, the slowest items\n"
               "  remove JOB            forget an ended job (its output directory stays)\n\n"
               "Options:\n"
               "  --socket PATH         talk to mplockd there ($MPLOCK_SOCKET)\n"
               "  --system, --user      the system or the user instance\n"
               "  --json                machine-readable output\n\n"
               "Exit codes: 0 ok, 1 error, 2 usage, 3 job failed, 4 job cancelled,\n"
               "5 job completed with failed items, 6 no such job, 7 mplockd unreachable,\n"
               "8 job paused by a fault (see status; resume it once fixed).\n");
}

static const struct {
        const char *name;
        int (*fn)(Ctl *c, int argc, char **argv);
} commands[] = {
        { "submit", cmd_submit }, { "status", cmd_status }, { "list", cmd_list },       { "cancel", cmd_cancel },
        { "wait", cmd_wait },     { "watch", cmd_watch },   { "results", cmd_results }, { "remove", cmd_remove },
        { "logs", cmd_logs },     { "pause", cmd_pause },   { "resume", cmd_resume },   { "failed", cmd_failed },
        { "retry", cmd_retry },   { "stats", cmd_stats },
};

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "socket", required_argument, NULL, 's' }, { "json", no_argument, NULL, 'j' },
                { "system", no_argument, NULL, 'S' },       { "user", no_argument, NULL, 'U' },
                { "help", no_argument, NULL, 'h' },         { "version", no_argument, NULL, 'V' },
                {},
        };
        Ctl c = { .fd = -1 };
        int opt, r;

        log_setup("mplockctl");
        /* Global options come before the command ("+": stop at it). */
        while ((opt = getopt_long(argc, argv, "+h", options, NULL)) >= 0)
                switch (opt) {
                case 's':
                        free(c.socket_path);
                        if (path_make_absolute(optarg, &c.socket_path) < 0)
                                return EXIT_USAGE;
                        break;
                case 'j':
                        c.json = true;
                        break;
                case 'S':
                        c.system = true;
                        break;
                case 'U':
                        c.user = true;
                        break;
                case 'h':
                        help();
                        return EXIT_OK;
                case 'V':
                        printf("mplockctl %s\n", MPLOCK_VERSION);
                        return EXIT_OK;
                default:
                        return EXIT_USAGE;
                }
        if (optind >= argc) {
                help();
                return EXIT_USAGE;
        }
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (streq(commands[i].name, argv[optind])) {
                        /* Commands parse their own options; reset getopt. */
                        int cargc = argc - optind;
                        char **cargv = argv + optind;
                        optind = 0;
                        r = commands[i].fn(&c, cargc, cargv);
                        if (fflush(stdout) != 0 && r == EXIT_OK) {
                                perror("mplockctl: stdout");
                                r = EXIT_ERROR;
                        }
                        ctl_close(&c);
                        return r;
                }
        fprintf(stderr, "mplockctl: unknown command \"%s\"; see mplockctl --help\n", argv[optind]);
        ctl_close(&c);
        return EXIT_USAGE;
}
