/* SPDX-License-Identifier: MIT */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "mplockctl.h"
#include "paths.h"

static const struct {
        const char *name;
        int (*fn)(Ctl *c, int argc, char **argv);
} commands[] = {
        { "submit", cmd_submit }, { "status", cmd_status }, { "list", cmd_list },       { "cancel", cmd_cancel },
        { "wait", cmd_wait },     { "watch", cmd_watch },   { "results", cmd_results }, { "remove", cmd_remove },
        { "logs", cmd_logs },     { "pause", cmd_pause },   { "resume", cmd_resume },   { "failed", cmd_failed },
        { "retry", cmd_retry },   { "help", cmd_help },      { "top", cmd_top },
        { "stats", cmd_stats },
};

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "socket", required_argument, NULL, 's' }, { "json", no_argument, NULL, 'j' },
                { "system", no_argument, NULL, 'S' },       { "user", no_argument, NULL, 'U' },
                { "help", no_argument, NULL, 'h' },         { "version", no_argument, NULL, 'V' },
                {},
        };
        static char name[] = "mplockctl";
        Ctl c = { .fd = -1 };
        int opt, r;

        log_setup("mplockctl");
        /* getopt's messages name argv[0]: ours, however we were called. */
        argv[0] = name;
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
                        help_overview(stdout);
                        return EXIT_OK;
                case 'V':
                        printf("mplockctl %s\n", MPLOCK_VERSION);
                        return EXIT_OK;
                default:
                        return help_hint(NULL);
                }
        if (optind >= argc) {
                help_overview(stderr);
                return EXIT_USAGE;
        }
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (streq(commands[i].name, argv[optind])) {
                        /* Commands parse their own options; reset getopt.
                         * getopt names argv[0] in its messages: the
                         * command's, "mplockctl submit: unrecognized
                         * option". */
                        int cargc = argc - optind;
                        char **cargv = argv + optind;
                        char prog[64];
                        (void) snprintf(prog, sizeof(prog), "mplockctl %s", commands[i].name);
                        cargv[0] = prog;
                        c.command = commands[i].name;
                        optind = 0;
                        r = commands[i].fn(&c, cargc, cargv);
                        if (r == EXIT_HELP)
                                r = EXIT_OK;
                        if (fflush(stdout) != 0 && r == EXIT_OK) {
                                perror("mplockctl: stdout");
                                r = EXIT_ERROR;
                        }
                        ctl_close(&c);
                        return r;
                }
        fprintf(stderr, "mplockctl: unknown command \"%s\"\n", argv[optind]);
        ctl_close(&c);
        return help_hint(NULL);
}
