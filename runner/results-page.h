/* SPDX-License-Identifier: MIT */
#pragma once

/* "mplock-runner results": one page of a job's committed results in input
 * order, for mplockd's Results method, read as the job's owner (the
 * owner's agent forks it) so that mplockd never opens, indexes or parses a
 * user's file itself. Writes one JSON object to fd 3: the method's reply
 * parameters {"results": [...], "next": N}, or {"unavailable": "why"}.
 *
 * A page holds at most --limit results and --max-bytes of item and result
 * bytes; a result alone larger than that is given as {"index": I,
 * "too_large": BYTES}, to be read from the results file. */
int results_page_main(int argc, char **argv);
