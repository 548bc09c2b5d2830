/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "fork.h"
#include "log.h"
#include "runner.h"
#include "slurm.h"

/* mplock-runner: the helper mplockd starts for everything that touches a
 * user's files or code. Not meant to be run by hand. */
int main(int argc, char **argv) {
        /* What mplockd or the agent passed at 3, 4, ... (the socket, a
         * job's files) is ours alone: no program a module or a command
         * runs may inherit it. Each later move keeps O_CLOEXEC too
         * (FORK_KEEP_CLOEXEC). */
        for (int fd = 3; fd < 3 + FORK_FDS_MAX; fd++)
                (void) fcntl(fd, F_SETFD, FD_CLOEXEC);
        log_setup("mplock-runner");
        if (argc >= 2 && strcmp(argv[1], "run") == 0)
                return run_main();
        if (argc >= 2 && strcmp(argv[1], "check") == 0)
                return check_main(argc - 1, argv + 1);
        if (argc >= 2 && strcmp(argv[1], "agent") == 0)
                return agent_main(argv);
        /* A Slurm array task, on a node (docs/slurm.md). */
        if (argc >= 2 && strcmp(argv[1], "shard") == 0)
                return shard_main(argc, argv);
        fprintf(stderr, "mplock-runner is started by mplockd (modes: run, check, agent; shard in a Slurm task); it is not meant to be run by "
                        "hand.\n");
        return 2;
}
