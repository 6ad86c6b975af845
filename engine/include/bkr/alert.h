/** @file
 * Alerts about many files: one alert names the first few and counts the
 * rest, never one alert each (200 files made 200 alert commands a run).
 * The routines' alerts (held_file, needs_person) and the recovery engine's
 * manual strategy (bkr.recovery.manual) share it.  Text only: nothing here
 * runs a command.
 */
#ifndef BKR_ALERT_H
#define BKR_ALERT_H

#include <stdbool.h>
#include <stddef.h>

/** At most this many files are named in an alert about many. */
#define BKR_ALERT_FILES 10
/** The bytes of a bkr_alert_files' named files. */
#define BKR_ALERT_FILES_TEXT 700
/** Room for bkr_alert_files_text and bkr_alert_needs_person with their words. */
#define BKR_ALERT_MESSAGE (BKR_ALERT_FILES_TEXT + 600)

/**
 * The files of one alert about many: the first BKR_ALERT_FILES that fit in
 * its message are named, the rest counted.  Zero-initialise.
 */
typedef struct {
	char text[BKR_ALERT_FILES_TEXT]; /**< the named ones, ", " between them */
	size_t len;                      /**< ... its length */
	size_t n;                        /**< files added */
	size_t named;                    /**< ... of them named in text */
	bool full;                       /**< no more are named */
} bkr_alert_files;

/** Add a file, described by @p fmt, to @p l: named while it fits, else counted. */
void bkr_alert_files_add(bkr_alert_files *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * The files of @p l for a message, into @p out: those named and, when some
 * were not, how many and that every one is in @p where ("... and 15 more
 * (every one in WHERE)").  Returns @p out.
 */
const char *bkr_alert_files_text(const bkr_alert_files *l, const char *where, char *out, size_t cap);

/**
 * The message of an alert about the @p n files (@p paths, n >= 1) recovery
 * run @p run left to a person: "PATH needs a person: recovery run RUN could
 * not recover it", or "N files need a person: recovery run RUN could not
 * recover them: A, B and 15 more (every one in WHERE)".  Returns @p out.
 */
const char *bkr_alert_needs_person(char *out, size_t cap, const char *const *paths, size_t n, const char *run,
				   const char *where);

#endif
