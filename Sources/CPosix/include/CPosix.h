// Linux calls and constants the Swift Glibc module does not export (they need _GNU_SOURCE).
#pragma once
#include <sys/types.h>
#include <stdint.h>

/// copy_file_range(2) between two descriptors at their current offsets.
ssize_t cposix_copy_file_range(int fd_in, int fd_out, size_t length);
/// copy_file_range(2) of `length` bytes at `offset` in both files (the files' offsets stay).
ssize_t cposix_copy_file_range_at(int fd_in, int64_t offset, int fd_out, size_t length);
/// sync_file_range(2) over the whole file, WAIT_BEFORE | WRITE | WAIT_AFTER: its data is
/// written and waited for, without a journal commit or a cache flush.
int cposix_write_and_wait(int fd);
/// syncfs(2): flush the filesystem holding fd.
int cposix_syncfs(int fd);
/// O_TMPFILE, which the Glibc module leaves out.
extern const int cposix_o_tmpfile;
/// O_PATH, likewise.
extern const int cposix_o_path;
/// lseek(2)'s SEEK_DATA and SEEK_HOLE, which the Glibc module leaves out.
extern const int cposix_seek_data;
extern const int cposix_seek_hole;
/// malloc_trim(3): return the heap's free pages to the system.
int cposix_malloc_trim(void);
/// Opens `path` (relative, components joined by '/') beneath the folder `dirfd` without
/// following any symbolic link on the way or at the end, and never climbing out of `dirfd`:
/// openat2(2) with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, or, where
/// the kernel has no openat2 (ENOSYS), a walk of openat(O_NOFOLLOW | O_DIRECTORY) calls, one
/// component at a time. A symbolic link on the way fails (ELOOP, or ENOTDIR from the walk),
/// a ".." with EXDEV.
int cposix_open_beneath(int dirfd, const char *path, int flags, mode_t mode);
/// The fallback walk alone (for tests of it on kernels that have openat2).
int cposix_open_beneath_walk(int dirfd, const char *path, int flags, mode_t mode);
/// Sets the effective group, then user ID of the calling thread alone (the raw setresgid(2) and
/// setresuid(2) system calls: glibc's wrappers change every thread of the process). A socket
/// connected from this thread then carries these IDs as its peer's credentials. 0 or -1.
int cposix_thread_become(uid_t uid, gid_t gid);
/// Back to the real user and group IDs (root's) on the calling thread. 0 or -1.
int cposix_thread_restore(void);
