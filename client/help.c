/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "mplockctl.h"

/* One entry per command: what follows its name on the usage line (a line
 * per form), what it does, and one line per option its parser takes.
 * man/mplockctl.1 and shell-completion/ list the same options, which
 * tests/integration/test_cli.py checks against the getopt tables: a new
 * command or option goes into all four. */
static const CommandHelp helps[] = {
        {
                .name = "submit",
                .args = "--module M.so --input FILE|- --output DIR [OPTIONS]\n"
                        "--exec 'CMD {}' [--input FILE|- | ::: ITEM...] [--output DIR] [OPTIONS]",
                .summary = "submit a job and print its id",
                .options = "  -m, --module M.so             the callback module (a shared object)\n"
                           "  -i, --input FILE|-            the items, one a line (-: from stdin)\n"
                           "  -o, --output DIR              where the results and the log go (made if missing)\n"
                           "  -0, --null                    the items are NUL-separated\n"
                           "  -w, --workers N               worker processes (default: the daemon's cap)\n"
                           "      --shared JSON|@FILE       a JSON object given to the module\n"
                           "      --batch-size N            items per call of process (default 1)\n"
                           "      --save-batch N            results per call of save (default 1000)\n"
                           "      --max-attempts N          tries per item (default: the daemon's, 3)\n"
                           "      --halt-on-failure N|P%    stop once N items, or P% of them, have failed\n"
                           "      --timeout SEC             kill a call of process that takes longer (0: none)\n"
                           "      --memory-max BYTES        the job's memory (K, M, G, T suffixes; 0: none)\n"
                           "      --tasks-max N             the job's scope: TasksMax\n"
                           "      --cpu-weight W            CPUWeight (1-10000, among your own jobs)\n"
                           "      --cpu-quota P%            CPUQuota, in percent of one CPU\n"
                           "      --io-weight W             IOWeight\n"
                           "      --max-items-per-worker N  replace a worker once it was given N items\n"
                           "      --max-worker-memory BYTES replace a worker once its resident memory is past BYTES\n"
                           "      --name NAME               the job's name, for list and status\n"
                           "      --wait                    then follow the job to its end, with wait's exit codes\n"
                           "      --json                    print the reply as JSON\n"
                           "      --exec 'CMD {}'           run CMD per item, as GNU parallel does (docs/exec.md)\n"
                           "      --max-output BYTES        with --exec: an item's result at most (default 1M)\n"
                           "      ::: ITEM...               with --exec: the items, instead of --input\n"
                           "      --slurm                   run the job as a Slurm job array (docs/slurm.md)\n"
                           "      --shards S                with --slurm: its shards (default 4 per node)\n"
                           "      --partition P             with --slurm: the partition\n"
                           "      --slurm-opt 'OPTIONS'     with --slurm: more sbatch options (repeatable)\n"
                           "      --on-end 'CMD'            run CMD (sh -c, as you) each time the job ends\n"
                           "      --reuse JOB               take JOB's results for equal items instead of running them\n"
                           "  -h, --help                    show this help\n",
        },
        {
                .name = "status",
                .args = "[--json] JOB",
                .summary = "show a job: state, progress, files, error",
                .options = "      --json                    the job as JSON\n"
                           "  -h, --help                    show this help\n",
        },
        {
                .name = "list",
                .args = "[--json]",
                .summary = "list your jobs (all jobs, for root and the daemon's admin group)",
                .options = "      --json                    one JSON object per job and line\n"
                           "  -h, --help                    show this help\n",
        },
        {
                .name = "cancel",
                .args = "[--json] JOB",
                .summary = "stop a job; returns once its workers are gone",
                .options = "      --json                    the cancelled job as JSON\n"
                           "  -h, --help                    show this help\n",
        },
        {
                .name = "wait",
                .args = "[--json] [--any] JOB...",
                .summary = "wait until the jobs end (--any: the first of them); the exit code tells how",
                .options = "      --json                    the ended jobs as JSON, one a line\n"
                           "      --any                     return when the first of the jobs ends, printing which\n"
                           "  -h, --help                    show this help\n",
        },
        {
                .name = "watch",
                .args = "[--json] [JOB...]",
                .summary = "progress bars, rate and ETA until the jobs end (no JOB: your active jobs)",
                .options = "      --json                    each update as JSON, one object a line\n"
                           "  -h, --help                    show this help\n",
        },
        {
                .name = "stats",
                .args = "[--json] JOB",
                .summary = "where the job's time went: init, processing, waiting, saving; rate; slowest items",
                .options = "      --json                    the Stats object as JSON\n"
                           "  -h, --help                    show this help\n",
        },
        {
                .name = "top",
                .args = "",
                .summary = "a live table of your jobs; keys: up/down k/j select, p pause, r resume, c cancel, q quit",
                .options = "  -h, --help                    show this help\n",
        },
        {
                .name = "results",
                .args = "[--json] [-0|--null] [--via-daemon] JOB",
                .summary = "print the results in input order, one per line",
                .options = "      --json                    one object per line: index, item, result or error, and\n"
                           "                                attempts, worker, run_usec\n"
                           "  -0, --null                    end each result with a NUL byte, not a newline\n"
                           "      --via-daemon              ask mplockd, not the results file\n"
                           "  -h, --help                    show this help\n",
        },
        {
                .name = "failed",
                .args = "[--json] [-0|--null] [--via-daemon] JOB",
                .summary = "the failed items: index, code, message, item",
                .options = "      --json                    one object per line: index, item, error, attempts,\n"
                           "                                worker, run_usec\n"
                           "  -0, --null                    accepted, as by results (the lines are tab-separated)\n"
                           "      --via-daemon              ask mplockd, not the results file\n"
                           "  -h, --help                    show this help\n",
        },
        {
                .name = "retry",
                .args = "[--json] [--code N[,N...]]... [--items RANGE[,RANGE...]]... JOB",
                .summary = "run an ended job's failed and unfinished items again",
                .options = "      --json                    the job as JSON\n"
                           "      --code N,...              only the failed items whose error code is one of these\n"
                           "      --items RANGE,...         only the failed items among these indices (3,10-20)\n"
                           "  -h, --help                    show this help\n",
        },
        {
                .name = "pause",
                .args = "[--json] JOB",
                .summary = "stop handing out items (also across restarts)",
                .options = "      --json                    the paused job as JSON\n"
                           "  -h, --help                    show this help\n",
        },
        {
                .name = "resume",
                .args = "[--json] JOB",
                .summary = "let a paused job go on",
                .options = "      --json                    the resumed job as JSON\n"
                           "  -h, --help                    show this help\n",
        },
        {
                .name = "logs",
                .args = "[-f|--follow] JOB",
                .summary = "what the job's workers printed",
                .options = "  -f, --follow                  keep printing until the job has ended\n"
                           "  -h, --help                    show this help\n",
        },
        {
                .name = "remove",
                .args = "[--json] JOB",
                .summary = "forget an ended job (its output directory stays)",
                .options = "      --json                    accepted, as by every command (remove prints nothing)\n"
                           "  -h, --help                    show this help\n",
        },
        {
                .name = "help",
                .args = "[COMMAND]",
                .summary = "the commands, or one command's usage and options",
                .options = "  -h, --help                    show this help\n",
        },
};

static const char global_options[] =
        "      --socket PATH             talk to mplockd there (default: $MPLOCK_SOCKET, else the user\n"
        "                                instance if it runs, else the system instance)\n"
        "      --system                  the system instance\n"
        "      --user                    the user instance\n"
        "      --json                    machine-readable output\n"
        "  -h, --help                    show this help\n"
        "      --version                 show mplockctl's version\n";

static const CommandHelp *help_find(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(helps); i++)
                if (streq(helps[i].name, name))
                        return &helps[i];
        return NULL;
}

void help_overview(FILE *f) {
        fprintf(f, "Usage: mplockctl [--socket PATH | --system | --user] [--json] COMMAND [ARGS...]\n\n"
                   "Submits and follows mplock batch jobs.\n\nCommands:\n");
        for (size_t i = 0; i < ELEMENTSOF(helps); i++)
                fprintf(f, "  %-10s %s\n", helps[i].name, helps[i].summary);
        fprintf(f, "\n'mplockctl COMMAND --help' shows a command's usage and options.\n\n"
                   "Options:\n%s\n"
                   "Exit codes: 0 ok, 1 error, 2 usage, 3 job failed, 4 job cancelled,\n"
                   "5 job completed with failed items, 6 no such job, 7 mplockd unreachable,\n"
                   "8 job paused by a fault (see status; resume it once fixed),\n"
                   "9 results: some items have no committed result.\n",
                global_options);
}

int help_command(const char *name) {
        const CommandHelp *h = help_find(name);
        const char *line;

        if (!h) {
                /* A command added without its entry in helps[]. */
                fprintf(stderr, "mplockctl: no help for \"%s\"\n", name);
                return EXIT_ERROR;
        }
        /* A line of usage for each form of the command. */
        line = h->args;
        for (bool first = true; line; first = false) {
                const char *nl = strchr(line, '\n');
                int n = nl ? (int) (nl - line) : (int) strlen(line);
                printf("%s mplockctl %s %.*s\n", first ? "Usage:" : "      ", h->name, n, line);
                line = nl ? nl + 1 : NULL;
        }
        /* The overview's line, as a sentence. */
        printf("\n%c%s.\n\nOptions:\n%s", toupper((unsigned char) h->summary[0]), h->summary + 1, h->options);
        return EXIT_HELP;
}

int help_hint(const char *name) {
        if (name)
                fprintf(stderr, "Try 'mplockctl %s --help'.\n", name);
        else
                fprintf(stderr, "Try 'mplockctl --help'.\n");
        return EXIT_USAGE;
}

int cmd_help(Ctl *c, int argc, char **argv) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int opt;

        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                if (opt == 'h')
                        return help_command(c->command);
                else
                        return help_hint(c->command);
        if (optind == argc) {
                help_overview(stdout);
                return EXIT_OK;
        }
        if (optind + 1 != argc) {
                fprintf(stderr, "mplockctl help: expected at most one command\n");
                return help_hint(c->command);
        }
        if (!help_find(argv[optind])) {
                fprintf(stderr, "mplockctl help: unknown command \"%s\"\n", argv[optind]);
                return help_hint(NULL);
        }
        return help_command(argv[optind]);
}
