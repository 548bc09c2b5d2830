/* SPDX-License-Identifier: MIT */
#include "syncer.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"

typedef struct Work Work;

struct Work {
        Work *next;
        SyncWork work;
        SyncDone done;
        void *arg;
        int r;
};

/* A FIFO: pop at head, push at tail. */
typedef struct WorkList {
        Work *head, *tail;
} WorkList;

struct Syncer {
        sd_event_source *io;
        int efd;
        pthread_t thread;
        bool started;
        pthread_mutex_t lock;
        pthread_cond_t cond;   /* work queued, or stop */
        pthread_cond_t idle;   /* a work ended */
        /* Under lock. */
        WorkList queued, ended;
        bool busy, stop;
};

static void push(WorkList *l, Work *w) {
        w->next = NULL;
        if (l->tail)
                l->tail->next = w;
        else
                l->head = w;
        l->tail = w;
}

static Work *pop(WorkList *l) {
        Work *w = l->head;

        if (w) {
                l->head = w->next;
                if (!l->head)
                        l->tail = NULL;
        }
        return w;
}

static void *syncer_thread(void *userdata) {
        Syncer *s = userdata;
        uint64_t one = 1;

        (void) pthread_mutex_lock(&s->lock);
        for (;;) {
                Work *w;

                while (!s->stop && !s->queued.head)
                        (void) pthread_cond_wait(&s->cond, &s->lock);
                w = pop(&s->queued);
                if (!w)
                        break; /* stop, and nothing left */
                s->busy = true;
                (void) pthread_mutex_unlock(&s->lock);
                w->r = w->work(w->arg);
                (void) pthread_mutex_lock(&s->lock);
                s->busy = false;
                push(&s->ended, w);
                (void) pthread_cond_broadcast(&s->idle);
                /* The loop reads it whenever it comes to it; a full
                 * counter (never, at 2^64) would only delay that. */
                (void) !write(s->efd, &one, sizeof(one));
        }
        (void) pthread_mutex_unlock(&s->lock);
        return NULL;
}

/* The ends so far, in order, outside the lock: a done may queue more. */
static void deliver(Syncer *s) {
        WorkList l;
        Work *w;

        (void) pthread_mutex_lock(&s->lock);
        l = s->ended;
        s->ended = (WorkList){};
        (void) pthread_mutex_unlock(&s->lock);
        while ((w = pop(&l))) {
                w->done(w->r, w->arg);
                free(w);
        }
}

static int efd_handler(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        uint64_t n;

        (void) es;
        (void) revents;
        (void) !read(fd, &n, sizeof(n));
        deliver(userdata);
        return 0;
}

int syncer_new(Syncer **ret, sd_event *event) {
        Syncer *s = calloc(1, sizeof(*s));
        sigset_t all, old;
        int r;

        if (!s)
                return -ENOMEM;
        (void) pthread_mutex_init(&s->lock, NULL);
        (void) pthread_cond_init(&s->cond, NULL);
        (void) pthread_cond_init(&s->idle, NULL);
        s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        r = s->efd < 0 ? -errno : sd_event_add_io(event, &s->io, s->efd, EPOLLIN, efd_handler, s);
        if (r >= 0) {
                (void) sd_event_source_set_description(s->io, "syncer");
                /* No signal is ever delivered to the thread: the loop
                 * takes them through its signalfd. */
                (void) sigfillset(&all);
                (void) pthread_sigmask(SIG_SETMASK, &all, &old);
                r = -pthread_create(&s->thread, NULL, syncer_thread, s);
                (void) pthread_sigmask(SIG_SETMASK, &old, NULL);
        }
        if (r < 0) {
                s->started = false;
                (void) syncer_free(s);
                return r;
        }
        s->started = true;
        *ret = s;
        return 0;
}

void syncer_drain(Syncer *s) {
        if (!s)
                return;
        (void) pthread_mutex_lock(&s->lock);
        while (s->queued.head || s->busy)
                (void) pthread_cond_wait(&s->idle, &s->lock);
        (void) pthread_mutex_unlock(&s->lock);
        deliver(s);
}

Syncer *syncer_free(Syncer *s) {
        if (!s)
                return NULL;
        if (s->started) {
                syncer_drain(s);
                (void) pthread_mutex_lock(&s->lock);
                s->stop = true;
                (void) pthread_cond_signal(&s->cond);
                (void) pthread_mutex_unlock(&s->lock);
                (void) pthread_join(s->thread, NULL);
                deliver(s); /* what a done queued while draining */
        }
        s->io = sd_event_source_disable_unref(s->io);
        safe_close(s->efd);
        (void) pthread_cond_destroy(&s->idle);
        (void) pthread_cond_destroy(&s->cond);
        (void) pthread_mutex_destroy(&s->lock);
        free(s);
        return NULL;
}

int syncer_queue(Syncer *s, SyncWork work, SyncDone done, void *arg) {
        Work *w = calloc(1, sizeof(*w));

        if (!w)
                return -ENOMEM;
        *w = (Work){ .work = work, .done = done, .arg = arg };
        (void) pthread_mutex_lock(&s->lock);
        push(&s->queued, w);
        (void) pthread_cond_signal(&s->cond);
        (void) pthread_mutex_unlock(&s->lock);
        return 0;
}
