/** @file
 * Tree entries from the live filesystem: the one mapping between st_mode's
 * file type bits and bkr_file_type (both ways), and the stat(2) fields of a
 * bkr_entry.  Used by backup, diff, restore and recovery; the mount may use
 * it too.
 */
#ifndef BKR_ENTRY_H
#define BKR_ENTRY_H

#include <stdint.h>
#include <sys/stat.h>

#include "bkr/tree.h"

/** The BKR_FT_* type of @p mode, or 0 for a type trees cannot hold. */
uint8_t bkr_entry_type_of_mode(mode_t mode);

/** The S_IF* bits of BKR_FT_* @p type, or 0 for an unknown type. */
mode_t bkr_entry_mode_of_type(uint8_t type);

/**
 * Set the stat fields of @p e from @p st: type (0 when unknown), mode, uid,
 * gid, mtime_ns, ctime_ns, size, blocks, inode, nlink, and rdev for device
 * nodes only (0 otherwise, as trees store it).  Other fields are untouched.
 */
void bkr_entry_set_stat(bkr_entry *e, const struct stat *st);

/**
 * @p mode without the set-ID bits the object @p st (its final owner and
 * group; NULL: not known) may not keep, when it should belong to @p uid and
 * @p gid: S_ISUID is kept only when its owner is @p uid, S_ISGID only when
 * its group is @p gid.  A bit whose owner or group is not the recorded one
 * would make the object set-ID another user or group (the one restoring or
 * recovering it, whose copy it stays when its owner cannot be set).  The one
 * rule of restore and recovery.
 */
mode_t bkr_entry_setid_allowed(mode_t mode, uid_t uid, gid_t gid, const struct stat *st);

#endif
