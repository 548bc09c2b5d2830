/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Loops over short writes and EINTR; -errno on failure. */
int write_full(int fd, const void *buf, size_t len);
int pwrite_full(int fd, const void *buf, size_t len, off_t off);
/* Reads exactly len bytes, or fewer at EOF: returns the count read or -errno. */
ssize_t read_full(int fd, void *buf, size_t len);
ssize_t pread_full(int fd, void *buf, size_t len, off_t off);

/* Reads a whole regular file of at most max bytes into a NUL-terminated
 * buffer. -EFBIG if larger. */
int read_file_at(int dirfd, const char *name, size_t max, char **ret, size_t *ret_len);
/* Reads a small file of the kernel's (procfs, cgroupfs: st_size is 0, so
 * read_file_at cannot size it) into buf: at most len - 1 bytes, the rest
 * of a longer file cut, NUL-terminated. The count read, or -errno. */
ssize_t read_virtual_file_at(int dirfd, const char *name, char *buf, size_t len);

/* Atomic replacement of dirfd/name: temp file in the same directory
 * (O_EXCL, 0600 then the requested mode), write, fsync, close, rename, fsync
 * the directory; every step checked, the temp file unlinked on any failure. */
int write_file_atomic_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode);
/* The same, handing back a read-write descriptor of the new file, opened
 * before the rename: the caller never has to open it again by name.
 * *ret_fd is set whenever the file was renamed into place, even when the
 * final directory fsync then fails (and -errno is returned). */
int write_file_atomic_at_keep(int dirfd, const char *name, const void *data, size_t len, mode_t mode, int *ret_fd);
/* The same, the contents gathered from several buffers (written one at a
 * time, so a large file need not be assembled in memory first). */
int write_file_atomic_iov_at(int dirfd, const char *name, const struct iovec *iov, size_t n_iov, mode_t mode);

/* Creates the directories above path (not path itself) with mode. */
int mkdir_parents(const char *path, mode_t mode);
/* Clears O_NONBLOCK (a file opened so that a FIFO could not block the
 * open, found to be a regular file): 0, or -errno. */
int fd_set_blocking(int fd);

int fsync_dirfd(int dirfd);
/* fsync of the directory that holds path (e.g. after creating path). */
int fsync_parent_at(int dirfd, const char *path);

/* Removes a directory tree below dirfd/name (only files and directories we
 * created: no symlinks are followed). */
int rm_rf_at(int dirfd, const char *name);

/* Builds "prefix.XXXXXX" style unique names without mkstemp's global state. */
void random_suffix(char *buf, size_t n);
