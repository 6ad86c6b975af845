/** @file
 * Attributes (attr.h): the struct stat of a tree entry (owners mapped
 * through this system's users and groups, behind a small cache) and of a
 * synthesized node.
 */
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>

#include "bkr/entry.h"
#include "bkrfs.h"

static unsigned name_hash(const char *s, bool group)
{
	unsigned h = group ? 7 : 3;
	for (; *s; s++)
		h = h * 31 + (unsigned char)*s;
	return h % BKRFS_NAME_CACHE;
}

/* uid/gid of a user or group name, through a small cache in front of NSS */
static bool name_to_id(struct bkrfs_names *c, const uint8_t *name, size_t len, bool group, uint32_t *out)
{
	char n[64], buf[4096];
	struct bkrfs_name_slot *slot;
	bool found = false;
	unsigned h;

	if (len == 0 || len >= sizeof(n))
		return false;
	memcpy(n, name, len);
	n[len] = 0;
	if (memchr(n, 0, len))
		return false;
	h = name_hash(n, group);
	pthread_mutex_lock(&c->lock);
	slot = &c->slot[h];
	if (slot->name[0] && slot->group == group && strcmp(slot->name, n) == 0) {
		found = slot->found;
		*out = slot->id;
		pthread_mutex_unlock(&c->lock);
		return found;
	}
	pthread_mutex_unlock(&c->lock);
	if (group) {
		struct group g, *gp = NULL;
		if (getgrnam_r(n, &g, buf, sizeof(buf), &gp) == 0 && gp) {
			*out = gp->gr_gid;
			found = true;
		}
	} else {
		struct passwd p, *pp = NULL;
		if (getpwnam_r(n, &p, buf, sizeof(buf), &pp) == 0 && pp) {
			*out = pp->pw_uid;
			found = true;
		}
	}
	pthread_mutex_lock(&c->lock);
	snprintf(slot->name, sizeof(slot->name), "%s", n);
	slot->group = group;
	slot->found = found;
	slot->id = found ? *out : 0;
	pthread_mutex_unlock(&c->lock);
	return found;
}

void bkrfs_attr_entry(struct bkrfs *fs, const bkr_entry *e, struct stat *st)
{
	uint32_t id;

	memset(st, 0, sizeof(*st));
	st->st_mode = bkr_entry_mode_of_type(e->type) | (e->mode & 07777);
	if (fs->o.has_umask)
		st->st_mode &= ~(fs->o.umask & 0777);
	st->st_nlink = e->nlink ? e->nlink : 1;
	if (fs->o.has_uid)
		st->st_uid = fs->o.uid;
	else if (!fs->o.numeric_ids && name_to_id(&fs->names, e->user, e->user_len, false, &id))
		st->st_uid = id;
	else
		st->st_uid = e->uid;
	if (fs->o.has_gid)
		st->st_gid = fs->o.gid;
	else if (!fs->o.numeric_ids && name_to_id(&fs->names, e->group, e->group_len, true, &id))
		st->st_gid = id;
	else
		st->st_gid = e->gid;
	st->st_size = (off_t)(e->type == BKR_FT_SYMLINK ? e->target_len : e->size);
	st->st_blocks = (blkcnt_t)e->blocks;
	st->st_blksize = BKRFS_BLKSIZE;
	if (e->type == BKR_FT_CHR || e->type == BKR_FT_BLK)
		st->st_rdev = (dev_t)e->rdev;
	st->st_mtim.tv_sec = (time_t)(e->mtime_ns / 1000000000);
	st->st_mtim.tv_nsec = (long)(e->mtime_ns % 1000000000);
	if (st->st_mtim.tv_nsec < 0) {
		st->st_mtim.tv_nsec += 1000000000;
		st->st_mtim.tv_sec--;
	}
	st->st_ctim.tv_sec = (time_t)(e->ctime_ns / 1000000000);
	st->st_ctim.tv_nsec = (long)(e->ctime_ns % 1000000000);
	if (st->st_ctim.tv_nsec < 0) {
		st->st_ctim.tv_nsec += 1000000000;
		st->st_ctim.tv_sec--;
	}
	st->st_atim = st->st_mtim;
}

void bkrfs_attr_synth(struct bkrfs *fs, mode_t mode, int64_t time, off_t size, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = mode;
	if (fs->o.has_umask)
		st->st_mode &= ~(fs->o.umask & 0777);
	st->st_nlink = S_ISDIR(mode) ? 2 : 1;
	st->st_uid = fs->o.has_uid ? fs->o.uid : fs->owner_uid;
	st->st_gid = fs->o.has_gid ? fs->o.gid : fs->owner_gid;
	st->st_size = size;
	st->st_blocks = (size + 511) / 512;
	st->st_blksize = BKRFS_BLKSIZE;
	st->st_mtim.tv_sec = (time_t)time;
	st->st_ctim = st->st_atim = st->st_mtim;
}
