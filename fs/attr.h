/** @file
 * Attributes: the struct stat the mount shows for a tree entry (type and
 * mode as recorded, owners by recorded name through this system's users
 * and groups unless -o numeric_ids, -o uid/gid/umask applied) and for a
 * synthesized node.  Knows nothing of FUSE.
 */
#ifndef BKRFS_ATTR_H
#define BKRFS_ATTR_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "bkr/tree.h"

struct bkrfs;

#define BKRFS_NAME_CACHE 256

/** A user or group name looked up (found or not). */
struct bkrfs_name_slot {
	char name[64];
	bool group;
	bool found;
	uint32_t id;
};

/** A small cache of name -> uid/gid in front of NSS (hashed, one slot per hash). */
struct bkrfs_names {
	pthread_mutex_t lock;
	struct bkrfs_name_slot slot[BKRFS_NAME_CACHE]; /**< guarded by lock */
};

/** The attributes of tree entry @p e. */
void bkrfs_attr_entry(struct bkrfs *fs, const bkr_entry *e, struct stat *st);
/** The attributes of a synthesized node (owned by the mounting user). */
void bkrfs_attr_synth(struct bkrfs *fs, mode_t mode, int64_t time, off_t size, struct stat *st);

#endif
