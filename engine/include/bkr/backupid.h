/** @file
 * Naming a backup on the command line: which of the repository's backup ids
 * (`backup_<date>_<time>_<type>_<random>`) a user's spec means.  A spec is
 * `latest`, a whole id, a unique prefix of an id, or a unique prefix of an
 * id's random suffix (`2801d7ce` for `backup_..._full_2801d7ce`).  Pure: no
 * I/O, so every caller that takes an id (show, ls, cat, restore, diff, verify,
 * pin, tag, --parent, recovered) resolves it the same way.
 */
#ifndef BKR_BACKUPID_H
#define BKR_BACKUPID_H

#include <stddef.h>

/**
 * Resolve @p spec among @p ids (oldest first; NULL entries are skipped).
 * @p what names the kind of object in messages ("backup", "recovery run") and
 * @p where the repository.  Sets *index and returns 0; BKR_ENOTFOUND when
 * nothing matches; BKR_EAMBIGUOUS when several do (the message lists them).
 */
int bkr_backupid_resolve(size_t *index, const char *const *ids, size_t n, const char *spec, const char *what,
			 const char *where);

/** The random suffix of @p id (after its last '_'), or @p id itself. */
const char *bkr_backupid_suffix(const char *id);

#endif
