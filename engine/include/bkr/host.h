/** @file
 * What the local machine supplies as defaults: its host name (recorded in
 * manifests and recovery runs) and the per-user state directory (logs,
 * staged recovery runs).  One fallback each, for every caller.  And how
 * the process's allocator should treat bkr's big buffers.
 */
#ifndef BKR_HOST_H
#define BKR_HOST_H

#include <stddef.h>

/**
 * The host name into @p buf (@p cap bytes, NUL-terminated, truncated when
 * longer): @p given when not NULL, else gethostname(2), else "localhost"
 * (also when the name is empty).
 */
void bkr_host_name(char *buf, size_t cap, const char *given);

/**
 * Tune malloc for a process that moves data in blobs of up to
 * BKR_BLOB_MAX bytes (bkr calls it first thing, bkrfs in its heap set-up,
 * then sets its own trim threshold): such buffers come from the heap, not
 * from a fresh mmap each, and freed memory up to 64 MiB stays mapped, so
 * reusing it costs no page faults.  glibc's defaults map and unmap every
 * buffer over its (moving) threshold: a full backup of the bench corpus
 * took 30,000 page faults and a third of its time in the kernel.  Best
 * effort: a C library without mallopt's knobs is left as it is.
 */
void bkr_host_tune_malloc(void);

/**
 * Advise the whole @p align-sized units inside [@p p, @p p + @p n) for
 * transparent huge pages (madvise MADV_HUGEPAGE; a hint, errors ignored).
 * @p align is a power of two, at least the page size, or 0 for the page
 * size.  Nothing happens when no whole unit fits.
 */
void bkr_host_advise_huge(void *p, size_t n, size_t align);

/**
 * Give OpenSSL allocation functions that advise its blocks of 2 MiB or
 * more for transparent huge pages: scrypt's 32 MiB (N=2^15) took 8,000 page
 * faults in every command on an encrypted repository, a few dozen now.
 * Must come before OpenSSL allocates anything (bkr and bkrfs call it first
 * thing in main); after that, or on a kernel without huge pages, nothing
 * changes.
 */
void bkr_host_tune_openssl(void);

/**
 * The per-user state directory (malloc'd, no trailing '/'):
 * $XDG_STATE_HOME/bkr when that is an absolute path (the XDG rule: relative
 * values are ignored), else $HOME/.local/state/bkr when HOME is absolute,
 * else the same under the home directory of the password database (a cron
 * job or service without HOME), else /var/tmp/bkr-UID, made 0700 and used
 * only when it is a directory of this user that no other may write to.
 * Not created otherwise.  NULL with the error set (out of memory, or that
 * fallback is not this user's: another user made it first).
 */
char *bkr_host_state_dir(void);

/**
 * The per-user cache directory @p sub (malloc'd), the one rule of every bkr
 * cache (bkrfs's disk cache, copy's findings): "$XDG_CACHE_HOME/SUB" when
 * XDG_CACHE_HOME is an absolute path, else "$HOME/.cache/SUB" when HOME is
 * one.  A relative value is ignored (the XDG rule), never resolved against
 * the working directory.  Not created.  NULL with the error set (BKR_ENOTFOUND
 * naming both variables when neither is absolute; out of memory).
 */
char *bkr_host_cache_dir(const char *sub);

#endif
