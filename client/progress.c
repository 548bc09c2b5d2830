/* SPDX-License-Identifier: MIT */
#include <langinfo.h>
#include <limits.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <wchar.h>
#include <wctype.h>

#include "macro.h"
#include "mplockctl.h"

/* The drawing blocks of watch and top: numbers made short, a bar, and a
 * line of terminal columns that text from others (job names are anybody's)
 * cannot break out of. No JSON and no terminal here, so that it is tested
 * alone (tests/unit/test-progress.c). */

bool progress_utf8(void) {
        const char *cs;

        /* LC_CTYPE only: LC_NUMERIC would turn "12.5" into "12,5". */
        if (!setlocale(LC_CTYPE, ""))
                return false;
        cs = nl_langinfo(CODESET);
        return cs && (streq(cs, "UTF-8") || streq(cs, "utf8"));
}

double progress_fraction(uint64_t done, uint64_t total) {
        if (total == 0)
                return 1.0;
        if (done >= total)
                return 1.0;
        return (double) done / (double) total;
}

void format_percent(uint64_t done, uint64_t total, char *buf, size_t n) {
        /* Rounded down: 100.0% only once every item is in. */
        uint64_t permille = total == 0 || done >= total ? 1000 : (uint64_t) ((double) done / (double) total * 1000.0);

        if (permille >= 1000 && done < total)
                permille = 999;
        (void) snprintf(buf, n, "%llu.%llu%%", (unsigned long long) (permille / 10),
                        (unsigned long long) (permille % 10));
}

void format_rate(double rate, char *buf, size_t n) {
        if (!(rate > 0.0))
                (void) snprintf(buf, n, "0/s");
        else if (rate < 10.0)
                (void) snprintf(buf, n, "%.1f/s", rate);
        else if (rate < 10000.0)
                (void) snprintf(buf, n, "%.0f/s", rate);
        else if (rate < 10e6)
                (void) snprintf(buf, n, "%.1fk/s", rate / 1e3);
        else
                (void) snprintf(buf, n, "%.1fM/s", rate / 1e6);
}

void format_duration(uint64_t sec, char *buf, size_t n) {
        if (sec >= 100 * 3600)
                (void) snprintf(buf, n, "%llud%02lluh", (unsigned long long) (sec / 86400),
                                (unsigned long long) (sec % 86400 / 3600));
        else if (sec >= 3600)
                (void) snprintf(buf, n, "%lluh%02llum", (unsigned long long) (sec / 3600),
                                (unsigned long long) (sec % 3600 / 60));
        else if (sec >= 60)
                (void) snprintf(buf, n, "%llum%02llus", (unsigned long long) (sec / 60),
                                (unsigned long long) (sec % 60));
        else
                (void) snprintf(buf, n, "%llus", (unsigned long long) sec);
}

void format_size(uint64_t bytes, char *buf, size_t n) {
        static const char units[] = "KMGTPE";
        double v = (double) bytes;
        size_t u = 0;

        if (bytes < 1024) {
                (void) snprintf(buf, n, "%lluB", (unsigned long long) bytes);
                return;
        }
        v /= 1024.0;
        while (v >= 1024.0 && u + 1 < sizeof(units) - 1) {
                v /= 1024.0;
                u++;
        }
        (void) snprintf(buf, n, v < 10.0 ? "%.1f%c" : "%.0f%c", v, units[u]);
}

void line_init(Line *l, unsigned max_cols, bool utf8) {
        l->len = 0;
        l->cols = 0;
        l->max = MIN(max_cols, (unsigned) PROGRESS_COLS_MAX);
        l->utf8 = utf8;
        l->buf[0] = '\0';
}

static void line_append(Line *l, const char *s, size_t len, unsigned cols) {
        /* The buffer holds 4 bytes a column, UTF-8's longest character:
         * a full line is cut, never overrun. */
        if (l->len + len >= sizeof(l->buf))
                return;
        memcpy(l->buf + l->len, s, len);
        l->len += len;
        l->buf[l->len] = '\0';
        l->cols += cols;
}

static void line_spaces(Line *l, unsigned n) {
        while (n-- > 0 && l->cols < l->max)
                line_append(l, " ", 1, 1);
}

/* The next character of s, as it shows: its bytes and columns, or "?"
 * for a control character or a byte that is not text here. */
static size_t next_char(const char *s, bool utf8, const char **out, size_t *out_len, unsigned *cols) {
        unsigned char ch = (unsigned char) *s;

        *out = s;
        *out_len = 1;
        *cols = 1;
        if (ch >= 0x20 && ch < 0x7f)
                return 1;
        if (utf8 && ch >= 0x80) {
                mbstate_t st = {};
                wchar_t wc;
                size_t k = mbrtowc(&wc, s, strnlen(s, MB_LEN_MAX), &st);
                int w = k > 0 && k <= MB_LEN_MAX ? wcwidth(wc) : -1;
                /* A C1 control or a combining mark has no width of its own:
                 * shown as "?" too, so that columns add up. */
                if (w > 0 && iswprint((wint_t) wc)) {
                        *out_len = k;
                        *cols = (unsigned) w;
                        return k;
                }
                if (k > 0 && k <= MB_LEN_MAX) {
                        *out = "?";
                        return k;
                }
        }
        *out = "?";
        return 1;
}

unsigned text_width(const char *s, bool utf8) {
        unsigned cols = 0;

        while (*s) {
                const char *out;
                size_t out_len;
                unsigned c;
                s += next_char(s, utf8, &out, &out_len, &c);
                cols += c;
        }
        return cols;
}

void line_put(Line *l, const char *s, int width) {
        unsigned want = (unsigned) (width < 0 ? -width : width), start = l->cols, w;

        if (width > 0) {
                w = text_width(s, l->utf8);
                if (w < want)
                        line_spaces(l, want - w);
        }
        while (*s) {
                const char *out;
                size_t out_len;
                unsigned c;
                size_t k = next_char(s, l->utf8, &out, &out_len, &c);
                if (l->cols + c > l->max || (width != 0 && l->cols + c > start + want))
                        break;
                line_append(l, out, out_len, c);
                s += k;
        }
        if (width < 0 && l->cols < start + want)
                line_spaces(l, start + want - l->cols);
}

void line_printf(Line *l, int width, const char *fmt, ...) {
        char buf[512];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        line_put(l, buf, width);
}

void line_bar(Line *l, double fraction, unsigned width) {
        /* Eighths of a cell, U+258F (one) to U+2589 (seven), then U+2588. */
        static const char *const eighths[] = {
                " ", "\u258f", "\u258e", "\u258d", "\u258c", "\u258b", "\u258a", "\u2589",
        };
        unsigned cells, units, full;

        if (width < 3 || l->cols + width > l->max)
                return;
        cells = width - 2;
        if (!(fraction > 0.0))
                fraction = 0.0;
        if (fraction > 1.0)
                fraction = 1.0;
        units = (unsigned) (fraction * cells * (l->utf8 ? 8 : 1));
        full = l->utf8 ? units / 8 : units;
        line_append(l, "[", 1, 1);
        for (unsigned i = 0; i < cells; i++)
                if (i < full)
                        line_append(l, l->utf8 ? "\u2588" : "#", l->utf8 ? 3 : 1, 1);
                else if (i == full && l->utf8 && units % 8)
                        line_append(l, eighths[units % 8], 3, 1);
                else
                        line_append(l, l->utf8 ? " " : "-", 1, 1);
        line_append(l, "]", 1, 1);
}
