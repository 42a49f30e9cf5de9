#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "CPosix.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <malloc.h>

ssize_t cposix_copy_file_range(int fd_in, int fd_out, size_t length) {
    return copy_file_range(fd_in, NULL, fd_out, NULL, length, 0);
}

ssize_t cposix_copy_file_range_at(int fd_in, int64_t offset, int fd_out, size_t length) {
    loff_t in = offset, out = offset;
    return copy_file_range(fd_in, &in, fd_out, &out, length, 0);
}

int cposix_syncfs(int fd) { return syncfs(fd); }

int cposix_write_and_wait(int fd) {
    return sync_file_range(
        fd, 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
}

const int cposix_o_tmpfile = O_TMPFILE;
const int cposix_o_path = O_PATH;
const int cposix_seek_data = SEEK_DATA;
const int cposix_seek_hole = SEEK_HOLE;

int cposix_malloc_trim(void) { return malloc_trim(0); }

// Whether openat2 is known to be missing (ENOSYS once: the walk from then on).
static atomic_int openat2_missing = 0;

// The fallback: one component at a time, each opened O_NOFOLLOW relative to the one before,
// folders with O_DIRECTORY. ".." is refused (openat2 with RESOLVE_BENEATH refuses it when it
// would climb out; the endpoint never names it anyway).
static int open_beneath_walk(int dirfd, const char *path, int flags, mode_t mode) {
    char component[256];
    int current = dirfd;
    const char *p = path;
    for (;;) {
        while (*p == '/') p++;
        const char *end = strchr(p, '/');
        size_t length = end ? (size_t)(end - p) : strlen(p);
        const char *rest = end;
        while (rest && *rest == '/') rest++;
        int last = rest == NULL || *rest == '\0';
        if (length == 0 || length >= sizeof component) {
            if (current != dirfd) close(current);
            errno = length == 0 ? EINVAL : ENAMETOOLONG;
            return -1;
        }
        memcpy(component, p, length);
        component[length] = '\0';
        if (strcmp(component, ".") == 0 && !last) {  // "a/./b": as openat2 takes it
            p = rest;
            continue;
        }
        if (strcmp(component, "..") == 0) {
            if (current != dirfd) close(current);
            errno = EXDEV;
            return -1;
        }
        int next = last ? openat(current, component, flags | O_NOFOLLOW, mode)
                        : openat(current, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int code = errno;
        if (current != dirfd) close(current);
        if (next < 0) {
            errno = code;
            return -1;
        }
        if (last) return next;
        current = next;
        p = rest;
    }
}

int cposix_open_beneath(int dirfd, const char *path, int flags, mode_t mode) {
    if (!atomic_load_explicit(&openat2_missing, memory_order_relaxed)) {
        struct open_how how;
        memset(&how, 0, sizeof how);
        how.flags = (uint64_t)(flags | O_NOFOLLOW);
        how.mode = (flags & (O_CREAT | __O_TMPFILE)) ? mode : 0;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
        // EAGAIN: a rename elsewhere raced the lookup; after a few, the walk (which cannot
        // be made to spin by someone renaming all the time).
        for (int tries = 0; tries < 8; tries++) {
            long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
            if (fd >= 0) return (int)fd;
            if (errno == EINTR || errno == EAGAIN) continue;
            if (errno != ENOSYS) return -1;
            atomic_store_explicit(&openat2_missing, 1, memory_order_relaxed);
            break;
        }
    }
    return open_beneath_walk(dirfd, path, flags, mode);
}

int cposix_open_beneath_walk(int dirfd, const char *path, int flags, mode_t mode) {
    return open_beneath_walk(dirfd, path, flags, mode);
}

int cposix_thread_become(uid_t uid, gid_t gid) {
    if (syscall(SYS_setresgid, (gid_t)-1, gid, (gid_t)-1) != 0) return -1;
    if (syscall(SYS_setresuid, (uid_t)-1, uid, (uid_t)-1) != 0) {
        syscall(SYS_setresgid, (gid_t)-1, getgid(), (gid_t)-1);
        return -1;
    }
    return 0;
}

int cposix_thread_restore(void) {
    if (syscall(SYS_setresuid, (uid_t)-1, getuid(), (uid_t)-1) != 0) return -1;
    return (int)syscall(SYS_setresgid, (gid_t)-1, getgid(), (gid_t)-1);
}
