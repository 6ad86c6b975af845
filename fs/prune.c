/** @file
 * The inode pruner (prune.h).
 * The pruner keeps the inode table bounded while something walks millions
 * of entries: the kernel holds an inode (and so do we) for every dentry it
 * caches, and only memory pressure would make it let go.  Ten times a second,
 * when the table is over -o max_inodes, the dentries of the least recently
 * used files and symlinks are invalidated (never directories: getcwd() fails
 * in an invalidated one); the kernel forgets the inodes nobody uses, and
 * forget frees them here.  An open file keeps working (its next open looks
 * it up again and gets the same inode number).
 */
#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>

#include <stdlib.h>
#include <string.h>

#include "bkrfs.h"
#include "prune.h"

void *bkrfs_prune_main(void *arg)
{
	struct bkrfs *fs = arg;
	size_t max = fs->o.max_inodes ? fs->o.max_inodes : BKRFS_MAX_INODES_DEFAULT;

	while (bkrfs_mount_sleep(fs, 100)) {
		bkrfs_prune *p;
		size_t n;
		n = bkrfs_itable_prune(fs->itable, max, &p);
		if (n && fs->o.debug)
			bkrfs_log(fs, "inode table over %zu: the kernel is asked to forget %zu", max, n);
		for (size_t k = 0; k < n; k++) {
			fuse_lowlevel_notify_inval_entry(fs->session, p[k].parent, p[k].name, strlen(p[k].name));
			free(p[k].name);
		}
		free(p);
	}
	return NULL;
}
