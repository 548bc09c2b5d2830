/* SPDX-License-Identifier: MIT */
/* An LD_PRELOAD shim for the fault-injection tests: makes the Nth call of
 * write, pwrite, writev, fsync, fdatasync, ftruncate, rename, renameat,
 * open or openat (counted together, in order) fail with a chosen errno, in
 * one program only.
 *
 *   MPLOCK_FAULT_PROG   program name to act in (mplockd, mplock-runner)
 *   MPLOCK_FAULT_AT     N: the call that fails (1-based); 0 or unset: none
 *   MPLOCK_FAULT_ERRNO  ENOSPC (default) or EIO
 *   MPLOCK_FAULT_ONCE   a file made when the fault fires: if it exists, no
 *                       more faults (a resumed job's new runner counts anew)
 *   MPLOCK_FAULT_COUNT  a file to append "<pid> <calls>" to at exit, to learn
 *                       how many calls a run makes
 *
 * Counting is per process; a forked child goes on from its parent's count.
 * Only calls through the PLT are seen (not glibc's own internal ones). */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

static int active = -1;
static unsigned long calls, fail_at;
static int fail_errno = ENOSPC;
static const char *count_file, *once_file;

static void setup(void) {
        const char *prog = getenv("MPLOCK_FAULT_PROG"), *at = getenv("MPLOCK_FAULT_AT"), *e;

        active = prog && strcmp(prog, program_invocation_short_name) == 0;
        fail_at = at ? strtoul(at, NULL, 10) : 0;
        e = getenv("MPLOCK_FAULT_ERRNO");
        if (e && strcmp(e, "EIO") == 0)
                fail_errno = EIO;
        count_file = active ? getenv("MPLOCK_FAULT_COUNT") : NULL;
        once_file = getenv("MPLOCK_FAULT_ONCE");
}

__attribute__((destructor)) static void report(void) {
        FILE *f;

        if (!count_file)
                return;
        f = fopen(count_file, "ae");
        if (f) {
                fprintf(f, "%d %lu\n", (int) getpid(), calls);
                fclose(f);
        }
}

/* The tasks of mplock-runner's agent are forks that end with _exit(),
 * which runs no destructor: report their count on the way out too. */
_Noreturn void _exit(int status) {
        report();
        syscall(SYS_exit_group, status);
        __builtin_unreachable();
}

/* true: this call fails */
static int hit(void) {
        if (active < 0)
                setup();
        if (!active)
                return 0;
        calls++;
        if (fail_at && calls == fail_at) {
                if (once_file) {
                        /* The raw syscall: our own open() would count. */
                        long fd = syscall(SYS_openat, AT_FDCWD, once_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                                          0600);
                        if (fd < 0)
                                return 0; /* fired in an earlier process */
                        syscall(SYS_close, fd);
                }
                errno = fail_errno;
                return 1;
        }
        return 0;
}

/* The next definition of name (libc's), looked up once. */
#define REAL(name)                                                                       \
        static __typeof__(name) *real_##name;                                            \
        if (!real_##name)                                                                \
                real_##name = (__typeof__(real_##name)) dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buf, size_t n) {
        REAL(write);
        return hit() ? -1 : real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
        REAL(pwrite);
        return hit() ? -1 : real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
        REAL(pwrite64);
        return hit() ? -1 : real_pwrite64(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int n) {
        REAL(writev);
        return hit() ? -1 : real_writev(fd, iov, n);
}

int fsync(int fd) {
        REAL(fsync);
        return hit() ? -1 : real_fsync(fd);
}

int fdatasync(int fd) {
        REAL(fdatasync);
        return hit() ? -1 : real_fdatasync(fd);
}

int ftruncate(int fd, off_t len) {
        REAL(ftruncate);
        return hit() ? -1 : real_ftruncate(fd, len);
}

int ftruncate64(int fd, off_t len) {
        REAL(ftruncate64);
        return hit() ? -1 : real_ftruncate64(fd, len);
}

int rename(const char *a, const char *b) {
        REAL(rename);
        return hit() ? -1 : real_rename(a, b);
}

int renameat(int da, const char *a, int db, const char *b) {
        REAL(renameat);
        return hit() ? -1 : real_renameat(da, a, db, b);
}

int open(const char *path, int flags, ...) {
        mode_t mode = 0;
        va_list ap;
        REAL(open);
        va_start(ap, flags);
        if (flags & (O_CREAT | __O_TMPFILE))
                mode = va_arg(ap, mode_t);
        va_end(ap);
        return hit() ? -1 : real_open(path, flags, mode);
}

int open64(const char *path, int flags, ...) {
        mode_t mode = 0;
        va_list ap;
        REAL(open64);
        va_start(ap, flags);
        if (flags & (O_CREAT | __O_TMPFILE))
                mode = va_arg(ap, mode_t);
        va_end(ap);
        return hit() ? -1 : real_open64(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...) {
        mode_t mode = 0;
        va_list ap;
        REAL(openat);
        va_start(ap, flags);
        if (flags & (O_CREAT | __O_TMPFILE))
                mode = va_arg(ap, mode_t);
        va_end(ap);
        return hit() ? -1 : real_openat(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...) {
        mode_t mode = 0;
        va_list ap;
        REAL(openat64);
        va_start(ap, flags);
        if (flags & (O_CREAT | __O_TMPFILE))
                mode = va_arg(ap, mode_t);
        va_end(ap);
        return hit() ? -1 : real_openat64(dirfd, path, flags, mode);
}
