// LD_PRELOAD shim for a test FTP server whose clock runs ahead: adds $PLUGSYNC_SKEW seconds to
// the times the stat64 family returns. libfaketime shifts the clock and (FAKE_UTIME=1) the
// times a server sets, but not stat64/lstat64/fstat64, which vsftpd 3.0.3 calls.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/stat.h>

static long skew(void) {
    const char *text = getenv("PLUGSYNC_SKEW");
    return text ? atol(text) : 0;
}

static void shift(struct stat64 *st) {
    long s = skew();
    st->st_mtim.tv_sec += s;
    st->st_atim.tv_sec += s;
    st->st_ctim.tv_sec += s;
}

int stat64(const char *path, struct stat64 *st) {
    static int (*real)(const char *, struct stat64 *);
    if (!real) real = dlsym(RTLD_NEXT, "stat64");
    int r = real(path, st);
    if (r == 0) shift(st);
    return r;
}

int lstat64(const char *path, struct stat64 *st) {
    static int (*real)(const char *, struct stat64 *);
    if (!real) real = dlsym(RTLD_NEXT, "lstat64");
    int r = real(path, st);
    if (r == 0) shift(st);
    return r;
}

int fstat64(int fd, struct stat64 *st) {
    static int (*real)(int, struct stat64 *);
    if (!real) real = dlsym(RTLD_NEXT, "fstat64");
    int r = real(fd, st);
    if (r == 0) shift(st);
    return r;
}

int fstatat64(int dirfd, const char *path, struct stat64 *st, int flags) {
    static int (*real)(int, const char *, struct stat64 *, int);
    if (!real) real = dlsym(RTLD_NEXT, "fstatat64");
    int r = real(dirfd, path, st, flags);
    if (r == 0) shift(st);
    return r;
}
