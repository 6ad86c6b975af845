/** @file
 * The one small layer through which libbkr writes and reads repository files.
 *
 * Everything that must survive a crash goes through bkr_io_publish() or the
 * tmpfile/commit pair: write to a temporary name in the target directory,
 * fsync the file, link it to its final name without replacing anything, unlink
 * the temporary name, fsync the directory.  A crash at any instant leaves
 * either no final file or a complete one; temporaries are named ".tmp-*" and
 * are removed by `bkr prune` once older than the grace period.
 *
 * Fault injection (tests only, SQLite test6.c style; compiled in only with
 * `meson setup -Dfault_injection=enabled`, or `auto` in a build with tests,
 * so a release bkr ignores BKR_FAULT): the environment variable
 * BKR_FAULT="POINT:N[:ACTION]" makes the N-th pass (1-based) through POINT fail
 * with ACTION = "eio" (default), "enospc", or "crash" (SIGKILL the process),
 * or pause there with "stop" (SIGSTOP; the pass succeeds after SIGCONT, so a
 * test can race the process deterministically).  Points: "write" (also each
 * piece of a local upload staged in memory, each full staging window as it is
 * handed to be written, and the write of the last one at publish), "fsync",
 * "mkdir-fsync" (the fsync of the directory holding one that
 * bkr_io_mkdir_p_durable made: apart from "fsync", whose counts do not
 * depend on which folders a repository has yet), "rename", "read",
 * "restore-meta" (restore, between creating an entry and
 * setting its attributes), "recover-read" (recovery, between the stat and the
 * read of a live workspace file), "recover-times" (recovery, before the
 * times of a recovered copy, applied or staged, are set), "recover-replace"
 * (recovery, just before a recovered copy is exchanged with the file it
 * replaces), "recover-link" (recovery, between a recovered symlink's
 * creation under its temporary name and its rename into place; only "stop"
 * and "crash" act there), "restore-tmpfile", "recover-tmpfile" (restore's and recovery's
 * O_TMPFILE, bkr_io_open_anon: a failure is taken for a filesystem without
 * it), "restore-syncfs" (restore's syncfs of
 * the target before it says done: fails with EIO), "trash-move" (prune, delete, cleanup,
 * repair: after a trash batch is written, before its objects move), "kdf" (a
 * scrypt derivation fails), "key-remove" (key remove: checked under the keys
 * lock, before the delete), "xattr-get" (backup, between the size of an
 * xattr's value and its read), "backup-open" (backup, between a workspace
 * file's lstat and its open), "backup-opendir" (backup, between a directory's
 * lstat and its open), "backup-emfile" (backup, each of the scan's opens of a
 * workspace file, folder or listing: a failure fails that open with EMFILE,
 * a shortage of descriptors; "backup-emfile:3,backup-emfile:4" is a burst of
 * two), "backup-read" (backup, before each read of a
 * workspace file's data), "fs-readdirplus" (bkrfs, at the mount's init: a
 * failure is taken for a kernel without readdirplus, so every listing is a
 * plain readdir).  Several specs may be joined with ','.
 */
#ifndef BKR_IO_H
#define BKR_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/** Flags for bkr_io_publish / bkr_io_commit_tmp. */
enum {
	BKR_IO_NOREPLACE = 0, /**< fail with BKR_EEXISTS if the final name exists */
	BKR_IO_REPLACE = 1,   /**< atomically replace (config and cache files only) */
	BKR_IO_NOSYNC = 2,    /**< skip fsyncs (scratch files, never repository data) */
};

/**
 * Open a regular file for reading (BKR_ECORRUPT "not a regular file"; never
 * blocks on a FIFO) of at most @p max bytes (else BKR_ECORRUPT "too large").
 */
int bkr_io_open_file(const char *path, size_t max, int *fd, size_t *size);

/** Read a whole file (at most @p max bytes, else BKR_ECORRUPT "too large"); *out is malloc'd + NUL-terminated. */
int bkr_io_read_file(const char *path, size_t max, uint8_t **out, size_t *len);

/** write(2) all of @p buf; @p what names the file in messages. */
int bkr_io_write_full(int fd, const void *buf, size_t len, const char *what);

/** Alignment of bkr_io_pwrite_direct's buffer and offset (a page: every device's logical block divides it). */
#define BKR_IO_DIRECT_ALIGN 4096u

/**
 * pwrite(2) all of @p buf (aligned to BKR_IO_DIRECT_ALIGN) at @p off, its
 * aligned part with O_DIRECT (no copy into the page cache) when @p off is
 * aligned, and the tail, or everything where the filesystem or device refuses
 * O_DIRECT (EINVAL), through the page cache.  Not durable by itself: the
 * caller fsyncs as after any write.  No pass of a fault point, as
 * bkr_io_pwrite_full: the caller takes the pass of "write" (a local store's
 * upload takes it where the write is decided, so that passes are counted in
 * one thread's order).
 */
int bkr_io_pwrite_direct(int fd, const void *buf, size_t len, uint64_t off, const char *what);

/** pwrite(2) all of @p buf at @p off (EINTR and short writes retried); errors name "write @p what". */
int bkr_io_pwrite_full(int fd, const void *buf, size_t len, uint64_t off, const char *what);
/** pread(2) exactly @p len bytes; a short read is BKR_ECORRUPT "truncated". */
int bkr_io_pread_full(int fd, void *buf, size_t len, uint64_t off, const char *what);

int bkr_io_fsync(int fd, const char *what);
int bkr_io_fsync_dir(const char *dir);

/** mkdir -p */
int bkr_io_mkdir_p(const char *path, mode_t mode);

/**
 * mkdir -p, each directory it makes made durable: the directory holding it
 * fsynced after the mkdir (fault point "mkdir-fsync"), so a file published
 * into it later (its own directory fsynced) does not vanish with it in a
 * crash.  Directories that exist cost nothing more than a mkdir.  For the
 * folders of a repository (store_local.c); a failed fsync names the
 * directory made.
 */
int bkr_io_mkdir_p_durable(const char *path, mode_t mode);

/** Create "<dir>/.tmp-<random>" for writing (mode 0644); path written to @p tmp (PATH_MAX).  errno is the open's when it failed. */
int bkr_io_tmpfile(const char *dir, char *tmp, size_t tmp_cap, int *fd_out);

/**
 * fsync @p fd, close it, move @p tmp to @p final (see flags), fsync the directory.
 * On failure the temporary is unlinked and @p fd is closed.  A link or
 * rename failing with ENOENT (the temporary just written, or the directory,
 * vanished: removed or unmounted) is BKR_EIO, not BKR_ENOTFOUND: nothing
 * asked for was missing.
 */
int bkr_io_commit_tmp(int fd, const char *tmp, const char *final, unsigned flags);

/**
 * The same pair relative to an open directory, for callers that must not
 * follow symlinks above it (recovery into a workspace): create
 * "<prefix><random>" in @p dirfd (mode 0600, O_NOFOLLOW); its name is written
 * to @p name.  The caller sets the file's attributes through the descriptor.
 */
int bkr_io_tmpfile_at(int dirfd, const char *prefix, char *name, size_t cap, int *fd_out);

/**
 * A new regular file in @p dirfd without a name (O_TMPFILE, open O_RDWR,
 * mode 0600): written, then given its name once complete
 * (bkr_io_commit_at with @p tmp "", bkr_io_link_anon, bkr_io_name_anon), so
 * a process killed before leaves nothing of it.  Returns its descriptor;
 * -2 when the filesystem has no O_TMPFILE (the caller falls back on a named
 * temporary, bkr_io_tmpfile_at), as when the fault point @p fault (NULL:
 * none) fails; -1 with errno on any other failure.
 */
int bkr_io_open_anon(int dirfd, const char *fault);

/**
 * Give the file @p fd holds (bkr_io_open_anon) the name @p name in @p dirfd,
 * never replacing (EEXIST): linkat(2) of "/proc/self/fd/N", the object
 * itself, not a path that could be swapped.  -1 with errno.
 */
int bkr_io_link_anon(int fd, int dirfd, const char *name);

/**
 * bkr_io_link_anon to a fresh "<prefix><16 random hex digits>" in
 * @p dirfd, written to @p name: the file without a name gets a temporary
 * one, for a rename that needs it (RENAME_EXCHANGE).
 */
int bkr_io_name_anon(int fd, int dirfd, const char *prefix, char *name, size_t cap);

/**
 * fsync @p fd, close it, rename @p tmp to @p final inside @p dirfd (flags:
 * BKR_IO_REPLACE replaces, else BKR_EEXISTS when @p final exists), fsync
 * @p dirfd.  On failure the temporary is unlinked and @p fd is closed.
 * @p fd may be -1 for an object with no data to fsync (a symlink).  With
 * @p tmp "" the file @p fd holds has no name (bkr_io_open_anon): it is
 * linked to @p final (never replacing) before @p fd is closed.
 * @p what names the file in messages.  ENOENT from the rename (@p dirfd's
 * directory removed meanwhile) is BKR_EIO, as in bkr_io_commit_tmp.
 */
int bkr_io_commit_at(int fd, int dirfd, const char *tmp, const char *final, unsigned flags, const char *what);

/** Write @p data to "<dir>/<name>" by the protocol above. */
int bkr_io_publish(const char *dir, const char *name, const void *data, size_t len, unsigned flags);

/**
 * A fault point: returns 0, or the configured failure (after setting the
 * message), or never returns ("crash"), or stops the process first ("stop").
 * Cheap when BKR_FAULT is unset.
 */
int bkr_io_fault(const char *point);

/**
 * @p hook runs just before a "stop" fault stops the process (NULL: none), so
 * that what a test sees while it is stopped is current (the progress line).
 */
void bkr_io_fault_on_stop(void (*hook)(void));

/**
 * Re-read BKR_FAULT (tests that change it with setenv), while no other thread
 * is inside bkr_io_fault.  The first fault point reads it once (pthread_once).
 */
void bkr_io_fault_reset(void);

/**
 * How many descriptors one user of many (the files a backup queues or a
 * restore writes at once, a store's cache of open objects) may hold: @p want,
 * or a quarter of the limit of open files (RLIMIT_NOFILE, ulimit -n) when that
 * is fewer, and at least 1.
 */
size_t bkr_io_fd_share(size_t want);

/** Join "a/b" into @p out; BKR_EINVAL when it does not fit. */
int bkr_path_join(char *out, size_t cap, const char *a, const char *b);

/**
 * When absolute path @p path is the directory @p root or lies below it (by
 * components: "/ab" is not below "/a"; trailing slashes of @p root do not
 * count), the rest of it relative to @p root ("" for @p root itself); else NULL.
 */
const char *bkr_path_under(const char *path, const char *root);

#endif
