/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "log.h"
#include "runner.h"

/* mplock-runner: the helper mplockd starts for everything that touches a
 * user's files or code. Not meant to be run by hand. */
int main(int argc, char **argv) {
        log_setup("mplock-runner");
        if (argc >= 2 && strcmp(argv[1], "run") == 0)
                return run_main();
        if (argc >= 2 && strcmp(argv[1], "check") == 0)
                return check_main(argc - 1, argv + 1);
        if (argc >= 2 && strcmp(argv[1], "agent") == 0)
                return agent_main(argv);
        fprintf(stderr, "mplock-runner is started by mplockd (modes: run, check, agent); it is not meant to be run by "
                        "hand.\n");
        return 2;
}
