/** @file
 * Extended attributes of the mount's nodes: those recorded with an entry,
 * and two of bkrfs (answered by getxattr, not listed).  Knows nothing of
 * FUSE requests; returns 0 or a positive errno.
 */
#ifndef BKRFS_XATTR_H
#define BKRFS_XATTR_H

#include <stddef.h>
#include <stdint.h>

#include "inode.h"

#define BKRFS_XATTR_SHA256 "user.bkr.sha256"       /**< hex SHA-256 of a file's content */
#define BKRFS_XATTR_BACKUP_ID "user.bkr.backup_id" /**< the backup (run) of an entry */
#define BKRFS_XATTR_VERIFY "user.bkr.verify"       /**< root, backup roots: the last verify covering it */
#define BKRFS_XATTR_DAMAGE "user.bkr.damage"       /**< root: chunks this mount answered EIO for */

struct bkrfs;

/** The value of attribute @p name of @p i (malloc'd, *len bytes); ENODATA
 *  when it has none, EOPNOTSUPP when its backup recorded no attribute of
 *  that namespace (security.*, system.posix_acl_*). */
int bkrfs_xattr_get(struct bkrfs *fs, bkrfs_inode *i, const char *name, uint8_t **val, size_t *len);
/** The recorded names of @p i, each NUL-terminated (malloc'd, *len bytes). */
int bkrfs_xattr_list(struct bkrfs *fs, bkrfs_inode *i, char **names, size_t *len);

#endif
