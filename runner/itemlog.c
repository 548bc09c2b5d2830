/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "itemlog.h"
#include "log.h"
#include "output.h"

static void say_held(ItemLog *l, uint64_t now) {
        output_log(l->out, LOG_INFO,
                   "%llu more lines about items' attempts and failures were not written (after the first %u, one "
                   "line per %llu s; mplockctl failed lists every failure).",
                   (unsigned long long) l->held, ITEMLOG_BURST,
                   (unsigned long long) (ITEMLOG_PERIOD_USEC / 1000000));
        l->held = 0;
        l->summary_usec = now;
}

void itemlog(ItemLog *l, int level, const char *fmt, ...) {
        char msg[1024];
        uint64_t now;
        va_list ap;

        if (l->written >= ITEMLOG_BURST) {
                now = now_usec();
                l->held++;
                if (l->summary_usec == 0)
                        l->summary_usec = now; /* the first period starts with the first held line */
                else if (now - l->summary_usec >= ITEMLOG_PERIOD_USEC)
                        say_held(l, now);
                return;
        }
        l->written++;
        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        output_log(l->out, level, "%s", msg);
}

void itemlog_flush(ItemLog *l) {
        if (l->held > 0)
                say_held(l, now_usec());
}

void itemlog_message(const char *msg, size_t len, char buf[static ITEMLOG_MESSAGE_MAX + 4]) {
        size_t n = MIN(len, (size_t) ITEMLOG_MESSAGE_MAX);

        for (size_t i = 0; i < n; i++)
                buf[i] = (unsigned char) msg[i] < 0x20 || msg[i] == 0x7f ? ' ' : msg[i];
        if (n < len)
                memcpy(buf + n, "...", 4);
        else
                buf[n] = 0;
}
