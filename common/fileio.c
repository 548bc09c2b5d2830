/* SPDX-License-Identifier: MIT */
#include "fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "macro.h"

int write_full(int fd, const void *buf, size_t len) {
        const char *p = buf;

        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

int pwrite_full(int fd, const void *buf, size_t len, off_t off) {
        const char *p = buf;

        while (len > 0) {
                ssize_t n = pwrite(fd, p, len, off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;
                p += n;
                off += n;
                len -= (size_t) n;
        }
        return 0;
}

ssize_t read_full(int fd, void *buf, size_t len) {
        char *p = buf;
        size_t got = 0;

        while (got < len) {
                ssize_t n = read(fd, p + got, len - got);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                got += (size_t) n;
        }
        return (ssize_t) got;
}

ssize_t pread_full(int fd, void *buf, size_t len, off_t off) {
        char *p = buf;
        size_t got = 0;

        while (got < len) {
                ssize_t n = pread(fd, p + got, len - got, off + (off_t) got);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                got += (size_t) n;
        }
        return (ssize_t) got;
}

int read_file_at(int dirfd, const char *name, size_t max, char **ret, size_t *ret_len) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        ssize_t n;

        fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADF;
        if ((uint64_t) st.st_size > max)
                return -EFBIG;
        buf = malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        n = read_full(fd, buf, (size_t) st.st_size);
        if (n < 0)
                return (int) n;
        buf[n] = '\0';
        if (ret_len)
                *ret_len = (size_t) n;
        *ret = TAKE_PTR(buf);
        return 0;
}

ssize_t read_virtual_file_at(int dirfd, const char *name, char *buf, size_t len) {
        _cleanup_close_ int fd = -1;
        ssize_t n;

        if (len == 0)
                return -EINVAL;
        fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return -errno;
        n = read_full(fd, buf, len - 1);
        if (n < 0)
                return n;
        buf[n] = '\0';
        return n;
}

void random_suffix(char *buf, size_t n) {
        static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
        unsigned char rnd[32];
        size_t i;

        if (n == 0)
                return;
        if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t) sizeof(rnd)) {
                /* Uniqueness, not secrecy, is what we need; O_EXCL catches clashes. */
                struct timespec ts;
                (void) clock_gettime(CLOCK_MONOTONIC, &ts);
                unsigned long long x = (unsigned long long) ts.tv_nsec ^ ((unsigned long long) getpid() << 20);
                for (i = 0; i < sizeof(rnd); i++) {
                        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
                        rnd[i] = (unsigned char) (x >> 56);
                }
        }
        for (i = 0; i + 1 < n && i < sizeof(rnd); i++)
                buf[i] = chars[rnd[i] % (sizeof(chars) - 1)];
        buf[i] = '\0';
}

int mkdir_parents(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);
        char *s;

        if (!p)
                return -ENOMEM;
        for (s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = '\0';
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        return 0;
}

int fd_set_blocking(int fd) {
        int flags = fcntl(fd, F_GETFL);

        if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
                return -errno;
        return 0;
}

int fsync_dirfd(int dirfd) {
        if (fsync(dirfd) < 0)
                return -errno;
        return 0;
}

int fsync_parent_at(int dirfd, const char *path) {
        _cleanup_free_ char *copy = strdup(path);
        _cleanup_close_ int fd = -1;
        char *slash;

        if (!copy)
                return -ENOMEM;
        slash = strrchr(copy, '/');
        if (!slash)
                return fsync_dirfd(dirfd);
        if (slash == copy)
                slash[1] = '\0';
        else
                *slash = '\0';
        fd = openat(dirfd, copy, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return fsync_dirfd(fd);
}

static int write_file_atomic_iov_keep(int dirfd, const char *name, const struct iovec *iov, size_t n_iov, mode_t mode,
                                      int *ret_fd) {
        char tmp[256], sfx[8];
        _cleanup_close_ int fd = -1;
        int r, attempt;

        if (strlen(name) > 200 || strchr(name, '/'))
                return -EINVAL;

        for (attempt = 0;; attempt++) {
                random_suffix(sfx, sizeof(sfx));
                (void) snprintf(tmp, sizeof(tmp), ".#%s.%s", name, sfx);
                fd = openat(dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (fd >= 0)
                        break;
                if (errno != EEXIST || attempt >= 16)
                        return -errno;
        }

        for (size_t i = 0; i < n_iov; i++) {
                r = write_full(fd, iov[i].iov_base, iov[i].iov_len);
                if (r < 0)
                        goto fail;
        }
        if (mode != 0600 && fchmod(fd, mode) < 0) {
                r = -errno;
                goto fail;
        }
        if (fsync(fd) < 0) {
                r = -errno;
                goto fail;
        }
        if (!ret_fd) {
                /* close() can report a delayed write error (NFS, quota). */
                r = close(TAKE_FD(fd));
                if (r < 0) {
                        r = -errno;
                        goto fail;
                }
        }
        if (renameat(dirfd, tmp, dirfd, name) < 0) {
                r = -errno;
                goto fail;
        }
        /* In place: the caller gets the descriptor even if the directory
         * fsync below fails, since the name now refers to this file. */
        if (ret_fd)
                *ret_fd = TAKE_FD(fd);
        return fsync_dirfd(dirfd);

fail:
        (void) unlinkat(dirfd, tmp, 0);
        return r;
}

int write_file_atomic_at_keep(int dirfd, const char *name, const void *data, size_t len, mode_t mode, int *ret_fd) {
        struct iovec iov = { .iov_base = UNCONST(data), .iov_len = len };

        return write_file_atomic_iov_keep(dirfd, name, &iov, 1, mode, ret_fd);
}

int write_file_atomic_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode) {
        return write_file_atomic_at_keep(dirfd, name, data, len, mode, NULL);
}

int write_file_atomic_iov_at(int dirfd, const char *name, const struct iovec *iov, size_t n_iov, mode_t mode) {
        return write_file_atomic_iov_keep(dirfd, name, iov, n_iov, mode, NULL);
}

int rm_rf_at(int at, const char *name) {
        _cleanup_close_ int fd = -1;
        DIR *d;
        struct dirent *de;
        int r = 0;

        fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ENOENT)
                        return 0;
                if (errno == ENOTDIR || errno == ELOOP)
                        return unlinkat(at, name, 0) < 0 ? -errno : 0;
                return -errno;
        }
        d = fdopendir(fd);
        if (!d)
                return -errno;
        fd = -1; /* owned by d now */
        while ((errno = 0, de = readdir(d))) {
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (de->d_type == DT_DIR) {
                        int q = rm_rf_at(dirfd(d), de->d_name);
                        if (q < 0 && r == 0)
                                r = q;
                } else if (unlinkat(dirfd(d), de->d_name, 0) < 0 && r == 0)
                        r = -errno;
        }
        if (errno != 0 && r == 0)
                r = -errno;
        (void) closedir(d);
        if (unlinkat(at, name, AT_REMOVEDIR) < 0 && r == 0)
                r = -errno;
        return r;
}
