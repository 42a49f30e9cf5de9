#define _GNU_SOURCE
#include "CPosix.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <malloc.h>

ssize_t cposix_copy_file_range(int fd_in, int fd_out, size_t length) {
    return copy_file_range(fd_in, NULL, fd_out, NULL, length, 0);
}

int cposix_syncfs(int fd) { return syncfs(fd); }

int cposix_write_and_wait(int fd) {
    return sync_file_range(
        fd, 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
}

const int cposix_o_tmpfile = O_TMPFILE;

int cposix_malloc_trim(void) { return malloc_trim(0); }
