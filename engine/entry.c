/** @file
 * File types and stat fields of tree entries (entry.h).
 */
#include "bkr/entry.h"

#include "bkr/clock.h"

uint8_t bkr_entry_type_of_mode(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: return BKR_FT_FILE;
	case S_IFDIR: return BKR_FT_DIR;
	case S_IFLNK: return BKR_FT_SYMLINK;
	case S_IFIFO: return BKR_FT_FIFO;
	case S_IFCHR: return BKR_FT_CHR;
	case S_IFBLK: return BKR_FT_BLK;
	case S_IFSOCK: return BKR_FT_SOCK;
	default: return 0;
	}
}

mode_t bkr_entry_mode_of_type(uint8_t type)
{
	switch (type) {
	case BKR_FT_FILE: return S_IFREG;
	case BKR_FT_DIR: return S_IFDIR;
	case BKR_FT_SYMLINK: return S_IFLNK;
	case BKR_FT_FIFO: return S_IFIFO;
	case BKR_FT_CHR: return S_IFCHR;
	case BKR_FT_BLK: return S_IFBLK;
	case BKR_FT_SOCK: return S_IFSOCK;
	default: return 0;
	}
}

void bkr_entry_set_stat(bkr_entry *e, const struct stat *st)
{
	e->type = bkr_entry_type_of_mode(st->st_mode);
	e->mode = st->st_mode;
	e->uid = st->st_uid;
	e->gid = st->st_gid;
	e->mtime_ns = bkr_clock_ns(&st->st_mtim);
	e->ctime_ns = bkr_clock_ns(&st->st_ctim);
	e->size = (uint64_t)st->st_size;
	e->blocks = (uint64_t)st->st_blocks;
	e->rdev = (e->type == BKR_FT_CHR || e->type == BKR_FT_BLK) ? (uint64_t)st->st_rdev : 0;
	e->inode = st->st_ino;
	e->nlink = (uint32_t)st->st_nlink;
}

mode_t bkr_entry_setid_allowed(mode_t mode, uid_t uid, gid_t gid, const struct stat *st)
{
	if (!st || st->st_uid != uid)
		mode &= ~(mode_t)S_ISUID;
	if (!st || st->st_gid != gid)
		mode &= ~(mode_t)S_ISGID;
	return mode;
}
