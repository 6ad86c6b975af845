/** @file
 * Error codes and the per-thread "last error" message of libbkr.
 *
 * Every engine function returns 0 (or a non-negative count) on success and one
 * of the negative BKR_E* codes on failure.  The function that detects a failure
 * records a one-line message naming the file, key or object concerned with
 * bkr_error_set(); callers read it with bkr_error_message() (libgit2's
 * git_error_set / git_error_last convention).  Messages are thread-local.
 */
#ifndef BKR_ERROR_H
#define BKR_ERROR_H

#include <stdarg.h>

/** The few codes callers act on; everything else is BKR_ERROR. */
typedef enum {
	BKR_OK = 0,
	BKR_ERROR = -1,        /**< generic failure */
	BKR_ENOTFOUND = -2,    /**< object, file, backup or key does not exist */
	BKR_EEXISTS = -3,      /**< refusing to replace something that exists */
	BKR_ECORRUPT = -4,     /**< checksum/hash mismatch or malformed on-disk data */
	BKR_ELOCKED = -5,      /**< an exclusive operation holds the repository */
	BKR_EINVAL = -6,       /**< bad argument or configuration value */
	BKR_EUNSUPPORTED = -7, /**< unknown format version or incompatible feature */
	BKR_ENOMEM = -8,       /**< allocation failed */
	BKR_EIO = -9,          /**< operating-system I/O error */
	BKR_ENOSPC = -10,      /**< the disk is full */
	BKR_EAMBIGUOUS = -11,  /**< a prefix names more than one object */
	BKR_ETIMEOUT = -12,    /**< an external command or server timed out */
	BKR_EUNAVAILABLE = -13,/**< an external source (server, repository) is unreachable */
	BKR_EKEY = -14,        /**< the passphrase opens no key file of an encrypted repository */
} bkr_error_code;

/**
 * Whether @p code says a read failed for want of its source — a server that
 * cannot be reached, timed out or refused access, an operating-system I/O
 * error (a disk error, maybe transient) — or of memory, rather than proving
 * anything about the data: a command that judges damage (verify, repair)
 * stops with it instead of reporting the object damaged or dropping it.
 */
static inline int bkr_error_not_damage(int code)
{
	return code == BKR_EUNAVAILABLE || code == BKR_ETIMEOUT || code == BKR_ENOMEM || code == BKR_EIO;
}

/** Record a message for the calling thread and return @p code.  An argument
 *  may be bkr_error_message() itself (it is formatted aside first): context
 *  is added to the last message whole, however long. */
int bkr_error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * Record "<message>: <strerror(errnum)>" and return the code that matches
 * @p errnum (ENOENT -> BKR_ENOTFOUND, ENOSPC/EDQUOT -> BKR_ENOSPC, EEXIST ->
 * BKR_EEXISTS, ENOMEM -> BKR_ENOMEM, anything else BKR_EIO).
 */
int bkr_error_set_errno(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Prefix the current message with "<prefix>: " (adds context while unwinding). */
void bkr_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** The calling thread's last message; never NULL ("" when none). Valid until the next set. */
const char *bkr_error_message(void);

/** The code recorded with the last message (BKR_OK when none). */
int bkr_error_last_code(void);

/** Forget the calling thread's last error. */
void bkr_error_clear(void);

/** A short constant name for a code ("corrupt", "not found", ...). */
const char *bkr_error_name(int code);

/** Shorthand for "out of memory" that callers can return directly. */
int bkr_error_oom(void);

#endif
