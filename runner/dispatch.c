/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>

#include "bitset.h"
#include "dispatch.h"
#include "macro.h"
#include "runner.h"

void dispatch_free(Dispatch *d) {
        d->requeue = mfree(d->requeue);
        d->delayed = mfree(d->delayed);
        d->attempts = mfree(d->attempts);
        d->n_requeue = d->cap_requeue = d->head_requeue = 0;
        d->n_delayed = d->cap_delayed = 0;
        d->n_attempts = d->cap_attempts = 0;
        d->requeue_items = 0;
}

uint32_t dispatch_chunk_size(const Dispatch *d) {
        uint64_t left = d->n_items - d->cursor + d->requeue_items, c;

        if (d->item_usec <= 0)
                c = d->batch_size; /* first chunks measure the items */
        else
                c = (uint64_t) (DISPATCH_CHUNK_TARGET_USEC / d->item_usec);
        /* Guided self-scheduling: never more than a share of what is left,
         * so that the last chunks are small and end together. */
        c = MIN(c, (left + 2 * d->n_workers - 1) / (2 * d->n_workers));
        c = MIN(c, (uint64_t) DISPATCH_CHUNK_MAX);
        if (d->batch_size > 1)
                c = (c + d->batch_size - 1) / d->batch_size * d->batch_size;
        return (uint32_t) MAX(c, (uint64_t) 1);
}

static void next_requeued(Dispatch *d, Chunk *ret) {
        Requeue *q = &d->requeue[d->head_requeue];

        ret->first = q->first;
        ret->single = q->suspect;
        ret->count = q->suspect ? 1 : (uint32_t) MIN((uint64_t) dispatch_chunk_size(d), q->count);
        q->first += ret->count;
        q->count -= ret->count;
        d->requeue_items -= ret->count;
        if (q->count == 0) {
                d->head_requeue = (d->head_requeue + 1) % d->cap_requeue;
                d->n_requeue--;
        }
}

bool dispatch_next(Dispatch *d, Chunk *ret) {
        const Bitset *done = d->done;
        uint64_t first, end;
        uint32_t size, count = 1;

        *ret = (Chunk){};
        if (d->n_requeue > 0) {
                next_requeued(d, ret);
                return true;
        }
        /* Skip what is committed already (resume) or was carried over. */
        first = d->cursor = bitset_next_clear(done, d->cursor);
        if (first >= d->n_items)
                return false;
        size = dispatch_chunk_size(d);
        end = MIN(d->n_items, first + size);
        /* Per item: locals only, so that nothing is reloaded through the
         * pointers (the build has -fno-strict-aliasing). */
        while (first + count < end && !bitset_test(done, first + count))
                count++;
        ret->first = first;
        ret->count = count;
        d->cursor = first + count;
        return true;
}

void dispatch_measured(Dispatch *d, uint64_t usec, uint32_t count) {
        double per;

        if (count == 0)
                return;
        per = (double) usec / count;
        d->item_usec = d->item_usec > 0 ? 0.7 * d->item_usec + 0.3 * per : per;
}

/* Room in the ring for need entries, unrolled into order when it grows. */
static int requeue_reserve(Dispatch *d, size_t need) {
        size_t cap = MAX(d->cap_requeue, (size_t) 16);
        Requeue *q;

        if (need <= d->cap_requeue)
                return 0;
        while (cap < need) {
                if (cap > SIZE_MAX / 2 / sizeof(*q))
                        return -ENOMEM;
                cap *= 2;
        }
        q = malloc(cap * sizeof(*q));
        if (!q)
                return -ENOMEM;
        for (size_t i = 0; i < d->n_requeue; i++)
                q[i] = d->requeue[(d->head_requeue + i) % d->cap_requeue];
        free(d->requeue);
        d->requeue = q;
        d->cap_requeue = cap;
        d->head_requeue = 0;
        return 0;
}

/* With room reserved: cannot fail. */
static void requeue_put(Dispatch *d, uint64_t first, uint64_t count, bool suspect) {
        size_t at;

        if (suspect) {
                d->head_requeue = (d->head_requeue + d->cap_requeue - 1) % d->cap_requeue;
                at = d->head_requeue;
        } else
                at = (d->head_requeue + d->n_requeue) % d->cap_requeue;
        d->requeue[at] = (Requeue){ first, count, suspect, 0 };
        d->n_requeue++;
        d->requeue_items += count;
}

int dispatch_requeue(Dispatch *d, uint64_t first, uint64_t count, bool suspect) {
        int r;

        if (count == 0)
                return 0;
        r = requeue_reserve(d, d->n_requeue + 1);
        if (r < 0)
                return r;
        requeue_put(d, first, count, suspect);
        return 0;
}

int dispatch_requeue_suspects(Dispatch *d, uint64_t first, uint64_t count) {
        int r;

        if (count == 0)
                return 0;
        if (count > SIZE_MAX - d->n_requeue)
                return -ENOMEM;
        r = requeue_reserve(d, d->n_requeue + (size_t) count);
        if (r < 0)
                return r;
        /* Each goes in front: the last first, so that they come out in order. */
        for (uint64_t i = count; i > 0; i--)
                requeue_put(d, first + i - 1, 1, true);
        return 0;
}

bool dispatch_retryable(const Dispatch *d, int32_t status) {
        return status != 0 && status != MPLOCK_ERR_CRASHED && d->max_attempts > 1;
}

static Attempt *attempt_slot(Attempt *t, size_t cap, uint64_t key) {
        size_t i = (size_t) ((key * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & (cap - 1);

        while (t[i].key != 0 && t[i].key != key)
                i = (i + 1) & (cap - 1);
        return &t[i];
}

/* Kept at most half full, so that probes stay short. */
static int attempts_reserve(Dispatch *d) {
        size_t cap;
        Attempt *t;

        if (2 * (d->n_attempts + 1) <= d->cap_attempts)
                return 0;
        cap = MAX(d->cap_attempts * 2, (size_t) 64);
        t = calloc(cap, sizeof(*t));
        if (!t)
                return -ENOMEM;
        for (size_t i = 0; i < d->cap_attempts; i++)
                if (d->attempts[i].key != 0)
                        *attempt_slot(t, cap, d->attempts[i].key) = d->attempts[i];
        free(d->attempts);
        d->attempts = t;
        d->cap_attempts = cap;
        return 0;
}

uint32_t dispatch_attempts_of(const Dispatch *d, uint64_t index) {
        const Attempt *a;

        if (d->cap_attempts == 0)
                return 0;
        a = attempt_slot(d->attempts, d->cap_attempts, index + 1);
        return a->key == index + 1 ? a->count : 0;
}

int dispatch_attempt(Dispatch *d, uint64_t index, uint32_t *ret) {
        Attempt *a;
        int r;

        r = attempts_reserve(d);
        if (r < 0)
                return r;
        a = attempt_slot(d->attempts, d->cap_attempts, index + 1);
        if (a->key == 0) {
                *a = (Attempt){ index + 1, 0 };
                d->n_attempts++;
        }
        *ret = ++a->count;
        return 0;
}

uint64_t dispatch_retry_delay(const Dispatch *d, uint32_t attempt) {
        uint64_t delay = (uint64_t) d->retry_delay_ms * 1000u << MIN(attempt - 1, 10u);

        return MIN(delay, DISPATCH_RETRY_DELAY_MAX_USEC);
}

int dispatch_retry_later(Dispatch *d, uint64_t index, uint32_t attempt, uint64_t now_usec, uint64_t *ret_when) {
        uint64_t when = now_usec + dispatch_retry_delay(d, attempt);

        if (GREEDY_REALLOC(d->delayed, d->cap_delayed, d->n_delayed + 1) < 0)
                return -ENOMEM;
        d->delayed[d->n_delayed++] = (Requeue){ index, 1, true, when };
        *ret_when = when;
        return 0;
}

int dispatch_release_due(Dispatch *d, uint64_t now_usec, uint64_t *ret_next) {
        uint64_t next = UINT64_MAX;
        size_t due = 0, k = 0;
        int r;

        for (size_t i = 0; i < d->n_delayed; i++)
                due += d->delayed[i].not_before <= now_usec;
        r = requeue_reserve(d, d->n_requeue + due);
        if (r < 0)
                return r;
        for (size_t i = 0; i < d->n_delayed; i++) {
                Requeue q = d->delayed[i];
                if (q.not_before <= now_usec)
                        requeue_put(d, q.first, q.count, true);
                else {
                        next = MIN(next, q.not_before);
                        d->delayed[k++] = q;
                }
        }
        d->n_delayed = k;
        *ret_next = next;
        return 0;
}
