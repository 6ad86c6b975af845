/** @file
 * The inode pruner: a thread that keeps the inode table under -o max_inodes
 * by asking the kernel to forget the least recently used files and symlinks
 * (notify_inval_entry); the kernel's FORGET then frees them.
 */
#ifndef BKRFS_PRUNE_H
#define BKRFS_PRUNE_H

/** The pruner thread's body (@p fs: the struct bkrfs); mount.c starts and
 *  stops it. */
void *bkrfs_prune_main(void *fs);

#endif
