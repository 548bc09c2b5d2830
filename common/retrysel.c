/* SPDX-License-Identifier: MIT */
#include "retrysel.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "parse.h"

int retry_sel_add_code(RetrySel *s, int64_t code) {
        if (code == 0 || code < INT32_MIN || code > INT32_MAX)
                return -EINVAL;
        if (s->n_codes == RETRY_SEL_MAX)
                return -E2BIG;
        s->codes[s->n_codes++] = (int32_t) code;
        return 0;
}

int retry_sel_add_range(RetrySel *s, uint64_t first, uint64_t last, uint64_t n_items) {
        if (first > last)
                return -EINVAL;
        if (last >= n_items)
                return -ERANGE;
        if (s->n_ranges == RETRY_SEL_MAX)
                return -E2BIG;
        s->ranges[s->n_ranges++] = (RetryRange){ first, last };
        return 0;
}

/* One comma-separated word of text at *p into buf; false at the end. */
static int next_word(const char **p, char *buf, size_t size) {
        const char *end = strchrnul(*p, ',');
        size_t n = (size_t) (end - *p);

        if (n == 0 || n >= size)
                return -EINVAL;
        memcpy(buf, *p, n);
        buf[n] = 0;
        *p = *end ? end + 1 : end;
        return 0;
}

int retry_sel_parse_codes(RetrySel *s, const char *text) {
        const char *p = text;

        if (!*p)
                return -EINVAL;
        while (*p) {
                char w[24];
                uint64_t v;
                bool neg;
                int r = next_word(&p, w, sizeof(w));

                if (r < 0)
                        return r;
                if (!*p && p[-1] == ',')
                        return -EINVAL; /* a trailing comma */
                neg = w[0] == '-';
                r = parse_u64(w + neg, &v);
                if (r < 0)
                        return -EINVAL;
                if (v > (uint64_t) INT32_MAX + neg)
                        return -EINVAL;
                r = retry_sel_add_code(s, neg ? -(int64_t) v : (int64_t) v);
                if (r < 0)
                        return r;
        }
        return 0;
}

int retry_sel_parse_items(RetrySel *s, const char *text, uint64_t n_items) {
        const char *p = text;

        if (!*p)
                return -EINVAL;
        while (*p) {
                char w[48], *dash;
                uint64_t a, b;
                int r = next_word(&p, w, sizeof(w));

                if (r < 0)
                        return r;
                if (!*p && p[-1] == ',')
                        return -EINVAL;
                dash = strchr(w, '-');
                if (dash)
                        *dash = 0;
                if (parse_u64(w, &a) < 0 || (dash && parse_u64(dash + 1, &b) < 0))
                        return -EINVAL;
                r = retry_sel_add_range(s, a, dash ? b : a, n_items);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int code_cmp(const void *a, const void *b) {
        int32_t x = *(const int32_t *) a, y = *(const int32_t *) b;
        return x < y ? -1 : x > y;
}

static int range_cmp(const void *a, const void *b) {
        const RetryRange *x = a, *y = b;
        return x->first < y->first ? -1 : x->first > y->first;
}

void retry_sel_normalize(RetrySel *s) {
        size_t k = 0;

        qsort(s->codes, s->n_codes, sizeof(s->codes[0]), code_cmp);
        for (size_t i = 0; i < s->n_codes; i++)
                if (k == 0 || s->codes[k - 1] != s->codes[i])
                        s->codes[k++] = s->codes[i];
        s->n_codes = k;
        qsort(s->ranges, s->n_ranges, sizeof(s->ranges[0]), range_cmp);
        k = 0;
        for (size_t i = 0; i < s->n_ranges; i++)
                /* last + 1 cannot wrap: last < n_items */
                if (k > 0 && s->ranges[i].first <= s->ranges[k - 1].last + 1)
                        s->ranges[k - 1].last = MAX(s->ranges[k - 1].last, s->ranges[i].last);
                else
                        s->ranges[k++] = s->ranges[i];
        s->n_ranges = k;
}

char *retry_sel_codes_text(const RetrySel *s) {
        char *t, *p;

        if (s->n_codes == 0)
                return NULL;
        t = p = malloc(s->n_codes * 12 + 1);
        if (!t)
                return NULL;
        for (size_t i = 0; i < s->n_codes; i++)
                p += sprintf(p, "%s%" PRId32, i ? "," : "", s->codes[i]);
        return t;
}

char *retry_sel_items_text(const RetrySel *s) {
        char *t, *p;

        if (s->n_ranges == 0)
                return NULL;
        t = p = malloc(s->n_ranges * 42 + 1);
        if (!t)
                return NULL;
        for (size_t i = 0; i < s->n_ranges; i++) {
                const RetryRange *g = &s->ranges[i];
                p += sprintf(p, "%s%" PRIu64, i ? "," : "", g->first);
                if (g->last != g->first)
                        p += sprintf(p, "-%" PRIu64, g->last);
        }
        return t;
}

static bool has_code(const RetrySel *s, int32_t code) {
        return bsearch(&code, s->codes, s->n_codes, sizeof(s->codes[0]), code_cmp) != NULL;
}

static bool has_index(const RetrySel *s, uint64_t index) {
        size_t lo = 0, hi = s->n_ranges;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (s->ranges[mid].last < index)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo < s->n_ranges && s->ranges[lo].first <= index;
}

bool retry_sel_wants(const RetrySel *s, uint64_t index, int32_t status) {
        return (s->n_codes == 0 || has_code(s, status)) && (s->n_ranges == 0 || has_index(s, index));
}
