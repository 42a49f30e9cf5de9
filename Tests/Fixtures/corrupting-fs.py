#!/usr/bin/python3
"""A FUSE filesystem that stores files faithfully but returns a wrong byte when some are read:
storage that corrupts reads, for the tests of `verify: true`.

    corrupting-fs.py BACKING MOUNTPOINT --corrupt GLOB [--cache kernel|open] [--allow-other]

Mirrors the folder BACKING at MOUNTPOINT (in the foreground, until unmounted or killed). Every
write reaches BACKING as it was sent; a read of a file whose name matches GLOB (fnmatch, on the
last component) gets its first byte inverted, as a disk returning a bad sector would give it.
With --cache kernel (the default) it is mounted with kernel_cache: the kernel keeps the pages
written and read, so only a reader that drops them (posix_fadvise DONTNEED after fdatasync)
reaches this process, as with a real drive behind the page cache. With --cache open the pages
are dropped at each open (a server that opens the file to send it reads it from here), and
--allow-other lets other users in (an FTP server's user).
Needs fusepy (Debian: python3-fusepy, imported as fusepy; PyPI: fusepy, imported as fuse) and
runs as root (libfuse 2 mounts without fusermount then).
"""
import argparse
import errno
import fnmatch
import os
import sys

try:
    import fusepy as fuse
except ImportError:
    import fuse


class Corrupting(fuse.Operations):
    def __init__(self, backing, pattern):
        self.backing = os.path.realpath(backing)
        self.pattern = pattern
        self.reads_corrupted = 0

    def real(self, path):
        return self.backing + path

    # Files and folders, passed through.
    def getattr(self, path, fh=None):
        st = os.lstat(self.real(path))
        keys = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_atime", "st_mtime", "st_ctime", "st_ino")
        out = {key: getattr(st, key) for key in keys}
        for key in ("st_atime", "st_mtime", "st_ctime"):
            out[key] = getattr(st, key + "_ns") / 1e9
        return out

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self.real(path))

    def readlink(self, path):
        return os.readlink(self.real(path))

    def access(self, path, mode):
        if not os.access(self.real(path), mode):
            raise fuse.FuseOSError(errno.EACCES)

    def statfs(self, path):
        st = os.statvfs(self.real(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files", "f_flag", "f_frsize",
                "f_namemax")
        return {key: getattr(st, key) for key in keys}

    def mkdir(self, path, mode):
        os.mkdir(self.real(path), mode)

    def rmdir(self, path):
        os.rmdir(self.real(path))

    def unlink(self, path):
        os.unlink(self.real(path))

    def symlink(self, target, source):
        os.symlink(source, self.real(target))

    def link(self, target, source):
        os.link(self.real(source), self.real(target))

    def rename(self, old, new):
        os.rename(self.real(old), self.real(new))

    def chmod(self, path, mode):
        os.chmod(self.real(path), mode, follow_symlinks=False)

    def chown(self, path, uid, gid):
        os.chown(self.real(path), uid, gid, follow_symlinks=False)

    def utimens(self, path, times=None):
        if times is None:
            os.utime(self.real(path), follow_symlinks=False)
        else:
            os.utime(self.real(path), ns=(int(times[0]), int(times[1])), follow_symlinks=False)

    def truncate(self, path, length, fh=None):
        os.truncate(self.real(path), length)

    # File contents.
    def open(self, path, flags):
        return os.open(self.real(path), flags & ~(os.O_CREAT | os.O_EXCL | os.O_TRUNC) | os.O_CLOEXEC)

    def create(self, path, mode, fi=None):
        return os.open(self.real(path), os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)

    def read(self, path, size, offset, fh):
        data = os.pread(fh, size, offset)
        if data and offset == 0 and fnmatch.fnmatch(os.path.basename(path), self.pattern):
            data = bytes([data[0] ^ 0xFF]) + data[1:]
            self.reads_corrupted += 1
        return data

    def write(self, path, data, offset, fh):
        return os.pwrite(fh, data, offset)

    def flush(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        os.fdatasync(fh) if datasync else os.fsync(fh)
        return 0

    def release(self, path, fh):
        os.close(fh)
        return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("backing")
    parser.add_argument("mountpoint")
    parser.add_argument("--corrupt", required=True, help="reads of files whose name matches get a wrong first byte")
    parser.add_argument("--cache", choices=["kernel", "open"], default="kernel")
    parser.add_argument("--allow-other", action="store_true")
    args = parser.parse_args()
    options = {"fsname": "corrupting-fs"}
    if args.cache == "kernel":
        options["kernel_cache"] = True
    if args.allow_other:
        options["allow_other"] = True
    fuse.FUSE(Corrupting(args.backing, args.corrupt), args.mountpoint, foreground=True, nothreads=False, **options)


if __name__ == "__main__":
    sys.exit(main())
