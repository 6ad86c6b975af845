#!/usr/bin/env python3
"""Compare two directory trees field by field; exit 1 and name every difference.

usage: treecmp.py A B [A2 B2]... [--no-owner] [--no-holes] [--no-dir-mtime] [--ignore NAME]...

Several pairs: each A is compared with the B after it, in one process (a test
checking many restores starts python once, not once a restore); a difference
then names its pair.

Compared for every path (names are bytes): type, permission bits incl.
setuid/setgid/sticky, uid, gid, size, mtime in ns, rdev, symlink target,
xattrs (names and values; user.bkr.* skipped), content, hardlink groups
(paths sharing an inode in A must share one in B and vice versa), and the
data/hole layout of sparse files (SEEK_DATA/SEEK_HOLE).
"""
import os
import stat
import sys


def holes(path):
    """Data extents as (start, end) pairs, via SEEK_DATA/SEEK_HOLE."""
    out = []
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        pos = 0
        while pos < size:
            try:
                d = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            h = os.lseek(fd, d, os.SEEK_HOLE)
            out.append((d, h))
            pos = h
    finally:
        os.close(fd)
    return out


def xattrs(path):
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    res = {}
    for n in names:
        if n.startswith("user.bkr."):
            continue
        res[n] = os.getxattr(path, n, follow_symlinks=False)
    return res


def walk(root):
    root = os.fsencode(root)
    entries = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            full = os.path.join(dirpath, n)
            entries[os.path.relpath(full, root)] = full
    return entries


def content_equal(a, b):
    """Byte for byte.  When both files have the same data extents, only those
    are read: the holes of both read as zeros (a 5 GiB sparse file costs its
    data, not 10 GiB of reads)."""
    ea = holes(a)
    ranges = ea if ea == holes(b) else [(0, None)]
    with open(a, "rb") as fa, open(b, "rb") as fb:
        for start, end in ranges:
            fa.seek(start)
            fb.seek(start)
            pos = start
            while end is None or pos < end:
                n = 1 << 20 if end is None else min(1 << 20, end - pos)
                x = fa.read(n)
                y = fb.read(n)
                if x != y:
                    return False
                if not x:
                    break
                pos += len(x)
    return True


def compare(a_root, b_root, flags, ignore):
    """The differences between the trees a_root and b_root, and a_root's entry count."""
    a, b = walk(a_root), walk(b_root)
    diffs = []

    def d(path, msg):
        diffs.append("%s: %s" % (os.fsdecode(path), msg))

    for p in sorted(set(a) | set(b)):
        if os.path.basename(p) in ignore:
            continue
        if p not in b:
            d(p, "missing in " + b_root)
            continue
        if p not in a:
            d(p, "extra in " + b_root)
            continue
        sa, sb = os.lstat(a[p]), os.lstat(b[p])
        if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
            d(p, "type %o != %o" % (stat.S_IFMT(sa.st_mode), stat.S_IFMT(sb.st_mode)))
            continue
        if stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode) and not stat.S_ISLNK(sa.st_mode):
            d(p, "mode %o != %o" % (stat.S_IMODE(sa.st_mode), stat.S_IMODE(sb.st_mode)))
        if "--no-owner" not in flags and (sa.st_uid, sa.st_gid) != (sb.st_uid, sb.st_gid):
            d(p, "owner %d:%d != %d:%d" % (sa.st_uid, sa.st_gid, sb.st_uid, sb.st_gid))
        is_dir = stat.S_ISDIR(sa.st_mode)
        if not is_dir and sa.st_size != sb.st_size:
            d(p, "size %d != %d" % (sa.st_size, sb.st_size))
        if sa.st_mtime_ns != sb.st_mtime_ns and not (is_dir and "--no-dir-mtime" in flags):
            d(p, "mtime %d != %d" % (sa.st_mtime_ns, sb.st_mtime_ns))
        if (stat.S_ISCHR(sa.st_mode) or stat.S_ISBLK(sa.st_mode)) and sa.st_rdev != sb.st_rdev:
            d(p, "rdev %x != %x" % (sa.st_rdev, sb.st_rdev))
        if stat.S_ISLNK(sa.st_mode) and os.readlink(a[p]) != os.readlink(b[p]):
            d(p, "symlink target differs")
        if xattrs(a[p]) != xattrs(b[p]):
            d(p, "xattrs differ: %r != %r" % (sorted(xattrs(a[p])), sorted(xattrs(b[p]))))
        if stat.S_ISREG(sa.st_mode) and sa.st_size == sb.st_size:
            if not content_equal(a[p], b[p]):
                d(p, "content differs")
            elif "--no-holes" not in flags and holes(a[p]) != holes(b[p]):
                d(p, "hole layout %r != %r" % (holes(a[p])[:4], holes(b[p])[:4]))
    # hardlink groups
    for side, other, name in ((a, b, b_root), (b, a, a_root)):
        groups = {}
        for p, full in side.items():
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                groups.setdefault((st.st_dev, st.st_ino), []).append(p)
        for paths in groups.values():
            if len(paths) < 2:
                continue
            inos = {os.lstat(other[p]).st_ino for p in paths if p in other}
            if len(inos) != 1:
                d(paths[0], "hardlink group %r split in %s" % ([os.fsdecode(x) for x in paths], name))
    return diffs, len(a)


def main():
    args = sys.argv[1:]
    flags = {a for a in args if a.startswith("--no-")}
    ignore = set()
    pos = []
    i = 0
    while i < len(args):
        if args[i] == "--ignore":
            ignore.add(os.fsencode(args[i + 1]))
            i += 2
            continue
        if not args[i].startswith("--"):
            pos.append(args[i])
        i += 1
    if not pos or len(pos) % 2:
        sys.exit("usage: treecmp.py A B [A2 B2]... [--no-owner] [--no-holes] [--no-dir-mtime] [--ignore NAME]...")
    diffs = []
    entries = 0
    for a_root, b_root in zip(pos[0::2], pos[1::2]):
        pair, n = compare(a_root, b_root, flags, ignore)
        entries += n
        # one pair: the paths alone (as before); several: each line names its pair
        diffs += pair if len(pos) == 2 else ["%s vs %s: %s" % (a_root, b_root, x) for x in pair]
    for line in diffs[:200]:
        print(line)
    if diffs:
        print("treecmp: %d difference(s)" % len(diffs))
        return 1
    print("treecmp: %d entries identical" % entries)
    return 0


if __name__ == "__main__":
    sys.exit(main())
