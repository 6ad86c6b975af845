/** @file
 * bkr's exit codes: the one place engine errors become exit statuses
 * (documented in docs/bkr.1.md, "EXIT STATUS").  bkr uses them, and so
 * does bkrfs when bkr mount runs it (--bkr-exit-codes).
 */
#ifndef BKR_EXIT_H
#define BKR_EXIT_H

enum {
	BKR_EXIT_OK = 0,          /**< success; for checks: nothing found */
	BKR_EXIT_FOUND = 1,       /**< a check found problems (verify, scan, diff --exit-code, health, repair, ...) */
	BKR_EXIT_USAGE = 2,       /**< bad command line or configuration */
	BKR_EXIT_NOTFOUND = 3,    /**< repository, backup, path or key not found */
	BKR_EXIT_CORRUPT = 4,     /**< damaged or unsupported repository data */
	BKR_EXIT_LOCKED = 5,      /**< the repository is locked by an exclusive operation */
	BKR_EXIT_PARTIAL = 6,     /**< done, but some files failed (see the messages) */
	BKR_EXIT_IO = 7,          /**< operating-system I/O error, disk full */
	BKR_EXIT_UNAVAILABLE = 8, /**< an external source (server, repository, command) failed */
	BKR_EXIT_KEY = 9,         /**< the passphrase opens no key of an encrypted repository */
	BKR_EXIT_INTERNAL = 70,   /**< out of memory or a bug */
};

/** The exit status for an engine error code. */
int bkr_exit_for(int err);

#endif
