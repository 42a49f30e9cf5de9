// Linux calls and constants the Swift Glibc module does not export (they need _GNU_SOURCE).
#pragma once
#include <sys/types.h>
#include <stdint.h>

/// copy_file_range(2) between two descriptors at their current offsets.
ssize_t cposix_copy_file_range(int fd_in, int fd_out, size_t length);
/// sync_file_range(2) over the whole file, WAIT_BEFORE | WRITE | WAIT_AFTER: its data is
/// written and waited for, without a journal commit or a cache flush.
int cposix_write_and_wait(int fd);
/// syncfs(2): flush the filesystem holding fd.
int cposix_syncfs(int fd);
/// O_TMPFILE, which the Glibc module leaves out.
extern const int cposix_o_tmpfile;
/// malloc_trim(3): return the heap's free pages to the system.
int cposix_malloc_trim(void);
