/* SPDX-License-Identifier: MIT */
#include "spares.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "fileio.h"
#include "macro.h"

typedef struct Spare {
        char name[STORE_NEW_NAME_MAX];
        int dirfd;
} Spare;

struct Spares {
        int new_fd;
        pthread_t thread;
        bool started;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        /* Under lock. */
        Spare ready[SPARES_MAX];
        size_t n;
        bool stop;
};

static int spare_make(int new_fd, Spare *out) {
        int r;

        r = store_new_job_dir(new_fd, out->name, &out->dirfd);
        if (r < 0)
                return r;
        r = store_create_empty(out->dirfd, "input");
        if (r >= 0)
                r = store_create_empty(out->dirfd, "job.json");
        if (r >= 0)
                r = checkpoint_create_empty(out->dirfd);
        if (r >= 0)
                r = fsync_dirfd(out->dirfd);
        if (r < 0) {
                (void) store_remove_dir(new_fd, out->name);
                out->dirfd = safe_close(out->dirfd);
        }
        return r;
}

/* Keeps SPARES_MAX ready; after a failure (a full disk) it waits for the
 * next take before it tries again, rather than spinning. */
static void *spares_thread(void *userdata) {
        Spares *sp = userdata;
        bool failed = false;

        (void) pthread_mutex_lock(&sp->lock);
        for (;;) {
                Spare s;
                int r;

                while (!sp->stop && (sp->n >= SPARES_MAX || failed)) {
                        (void) pthread_cond_wait(&sp->cond, &sp->lock);
                        failed = false;
                }
                if (sp->stop)
                        break;
                (void) pthread_mutex_unlock(&sp->lock);
                r = spare_make(sp->new_fd, &s);
                (void) pthread_mutex_lock(&sp->lock);
                failed = r < 0;
                if (r >= 0)
                        sp->ready[sp->n++] = s;
        }
        (void) pthread_mutex_unlock(&sp->lock);
        return NULL;
}

int spares_new(Spares **ret, int new_fd) {
        Spares *sp = calloc(1, sizeof(*sp));
        sigset_t all, old;
        int r;

        if (!sp)
                return -ENOMEM;
        sp->new_fd = new_fd;
        (void) pthread_mutex_init(&sp->lock, NULL);
        (void) pthread_cond_init(&sp->cond, NULL);
        /* No signal is ever delivered to the thread: the loop takes them
         * through its signalfd. */
        (void) sigfillset(&all);
        (void) pthread_sigmask(SIG_SETMASK, &all, &old);
        r = -pthread_create(&sp->thread, NULL, spares_thread, sp);
        (void) pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r < 0) {
                free(sp);
                return r;
        }
        sp->started = true;
        *ret = sp;
        return 0;
}

Spares *spares_free(Spares *sp) {
        if (!sp)
                return NULL;
        if (sp->started) {
                (void) pthread_mutex_lock(&sp->lock);
                sp->stop = true;
                (void) pthread_cond_signal(&sp->cond);
                (void) pthread_mutex_unlock(&sp->lock);
                (void) pthread_join(sp->thread, NULL);
        }
        while (sp->n > 0) {
                Spare *s = &sp->ready[--sp->n];
                (void) store_remove_dir(sp->new_fd, s->name);
                safe_close(s->dirfd);
        }
        (void) pthread_cond_destroy(&sp->cond);
        (void) pthread_mutex_destroy(&sp->lock);
        free(sp);
        return NULL;
}

int spares_take(Spares *sp, char name[static STORE_NEW_NAME_MAX], int *ret_dirfd) {
        int r = -ENOENT;

        (void) pthread_mutex_lock(&sp->lock);
        if (sp->n > 0) {
                Spare *s = &sp->ready[--sp->n];
                memcpy(name, s->name, STORE_NEW_NAME_MAX);
                *ret_dirfd = s->dirfd;
                r = 0;
        }
        (void) pthread_cond_signal(&sp->cond);
        (void) pthread_mutex_unlock(&sp->lock);
        return r;
}
