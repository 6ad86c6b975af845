#!/usr/bin/env python3
# Time the listing of one directory of a FUSE mount inside this one process,
# as `ls -l` lists it (os.listdir, then os.lstat of every entry), so that no
# process start is measured (bench/scale.sh, issue 15).
#
#   bench/lsversions.py [--warm K] [--timeout S] MNT DIR [-- MOUNT_CMD ARG...]   (root)
#
# With MOUNT_CMD (a mount that stays in the foreground: `bkrfs -f`, `borg
# mount -f`): the page cache, dentries and inodes are dropped, MOUNT_CMD is
# started and MNT polled until it is a mount point (every millisecond for the
# first half second, then every 5 ms), DIR (relative to MNT) is listed once
# (cold: nothing of it loaded by the fresh daemon), then K more times (warm,
# default 50), and MNT is unmounted.  Without MOUNT_CMD, MNT must be mounted
# already: the caches are dropped and DIR listed cold, then warm.
#
# Prints one line:
#   ENTRIES FILES MOUNT_S COLD_LIST_S COLD_S WARM_S CPU_S
# entries listed, regular files among them (versions), seconds from starting
# MOUNT_CMD until MNT was mounted, the cold listing alone, both together, the
# median warm listing, and the CPU seconds (user + system) the mount process
# used until the cold listing was done ("-" without MOUNT_CMD).
import os
import stat
import statistics
import subprocess
import sys
import time


def die(msg):
    print("lsversions: " + msg, file=sys.stderr)
    sys.exit(1)


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def listing(d):
    """(entries, regular files) of directory d, each entry lstat'ed"""
    names = os.listdir(d)
    files = 0
    for n in names:
        if stat.S_ISREG(os.lstat(os.path.join(d, n)).st_mode):
            files += 1
    return len(names), files


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv):
    warm, timeout, cmd = 50, 600.0, None
    if "--" in argv:
        k = argv.index("--")
        argv, cmd = argv[:k], argv[k + 1:]
        if not cmd:
            die("nothing after --")
    args = []
    it = iter(argv)
    for a in it:
        if a in ("-h", "--help"):
            with open(__file__) as f:
                for line in f.read().splitlines()[1:]:
                    if not line.startswith("#"):
                        break
                    print(line[2:])
            return 0
        if a in ("--warm", "--timeout"):
            v = next(it, None)
            if v is None:
                die(a + " needs a value")
            try:
                if a == "--warm":
                    warm = int(v)
                else:
                    timeout = float(v)
            except ValueError:
                die("%s %s: not a number" % (a, v))
        elif a.startswith("-"):
            die("unknown option " + a)
        else:
            args.append(a)
    if len(args) != 2:
        die("usage: lsversions.py [--warm K] [--timeout S] MNT DIR [-- MOUNT_CMD...]")
    mnt, rel = args
    d = os.path.join(mnt, rel)
    proc = None
    mount_s, cpu = 0.0, "-"
    drop_caches()
    t0 = time.perf_counter()
    if cmd:
        if os.path.ismount(mnt):
            die(mnt + " is mounted already")
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        while not os.path.ismount(mnt):
            if proc.poll() is not None:
                die("%s exited with %d before %s was mounted" % (cmd[0], proc.returncode, mnt))
            if time.perf_counter() - t0 > timeout:
                proc.kill()
                die("%s not mounted after %.0f s" % (mnt, timeout))
            time.sleep(0.001 if time.perf_counter() - t0 < 0.5 else 0.005)
        mount_s = time.perf_counter() - t0
    try:
        t1 = time.perf_counter()
        n, files = listing(d)
        t2 = time.perf_counter()
        if proc:
            cpu = "%.2f" % cpu_seconds(proc.pid)
        times = []
        for _ in range(warm):
            a = time.perf_counter()
            listing(d)
            times.append(time.perf_counter() - a)
    finally:
        if proc:
            subprocess.run(["fusermount3", "-u", mnt], check=False)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    print("%d %d %.4f %.4f %.4f %.6f %s" % (n, files, mount_s, t2 - t1, t2 - t0, statistics.median(times) if times else 0,
                                           cpu))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
