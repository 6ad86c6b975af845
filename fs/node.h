/** @file
 * Nodes: making the inodes of the tree the mount shows (the fixed top
 * level, by-date days, symlinks, backup and run roots, report.json, the
 * entries of backup trees) and resolving a name in a directory.  Knows
 * nothing of FUSE requests; returns 0 or a positive errno.
 */
#ifndef BKRFS_NODE_H
#define BKRFS_NODE_H

#include <stdbool.h>
#include <stdint.h>

#include "bkr/tree.h"
#include "cache.h"
#include "inode.h"

struct bkrfs;

/**
 * Resolve @p name in directory @p dir.  *out gets a referenced inode with its
 * lookup count raised when @p lookup.
 */
int bkrfs_node_lookup(struct bkrfs *fs, bkrfs_inode *dir, const char *name, bool lookup, bkrfs_inode **out);
/** The inode of entry @p e (number @p index of the directory whose top
 *  tree is @p dir_tree) of directory inode @p parent. */
int bkrfs_node_entry(struct bkrfs *fs, bkrfs_inode *parent, const bkr_id *dir_tree, uint64_t index,
		     const bkr_entry *e, bool lookup, bkrfs_inode **out);
/** The inode number entry @p e of directory inode @p dir has or would get
 *  (0: out of memory); *present (may be NULL): whether the table has it. */
bkrfs_ino bkrfs_node_child_ino(struct bkrfs *fs, const bkrfs_inode *dir, const bkr_entry *e, bool *present);
/** The inode number of entry @p e of directory inode @p dir_ino when the
 *  table (so the kernel) has it, else 0. */
bkrfs_ino bkrfs_entry_ino(struct bkrfs *fs, bkrfs_ino dir_ino, const bkr_entry *e);
/** A referenced bkr_dir for the contents of directory inode @p i, or 0 with
 *  *d NULL and a zero *tree for a directory without one (empty); else a
 *  BKR_E* code (a manifest that does not read: its code). */
int bkrfs_node_open_dir(struct bkrfs *fs, bkrfs_inode *i, bkrfs_cache_entry **ce, bkr_dir **d, bkr_id *tree);
/** The errno for BKR_E* code @p err met reading directory @p dir (logged
 *  unless it is "not found" or "out of memory"). */
int bkrfs_node_tree_errno(struct bkrfs *fs, bkrfs_inode *dir, int err);
/** Whether a message keyed @p key (one damaged manifest, one answer EIO)
 *  was logged already; else it is noted now and false is returned, so each
 *  is logged once however often it is met (a ring of the last 64). */
bool bkrfs_node_logged(struct bkrfs *fs, const char *key);
/** "@p dir/@p name" (just the name when @p dir is empty), malloc'd; NULL when out of memory. */
char *bkrfs_path_join(const char *dir, const uint8_t *name, size_t len);
/** A synthesized symlink to @p target with identity (@p kind, @p target). */
int bkrfs_node_link(struct bkrfs *fs, char kind, const char *target, bkrfs_ino parent, double timeout,
		    bool lookup, bkrfs_inode **out);
/** Whether directory @p dir is a recovery run's root and the run has a
 *  report (shown as its report.json); 0 or a positive errno. */
int bkrfs_node_run_report(struct bkrfs *fs, bkrfs_inode *dir, bool *has);
/** Bytes of a name buffer for bkrfs_node_report_alias. */
#define BKRFS_REPORT_ALIAS_MAX 256
/**
 * The name under which the root of a run with a report shows the entry
 * "report.json" of its tree (the name is the report's): "report.json~",
 * with '~' added until no entry of @p d (the root's tree) has it, so that
 * no name of the data is hidden or shadowed.  0 with the name in @p buf;
 * ENOENT when @p d has no "report.json" (or every such name up to 255
 * bytes is taken: the entry is then not shown); else a positive errno.
 */
int bkrfs_node_report_alias(struct bkrfs *fs, bkrfs_inode *root, bkr_dir *d, char *buf);
/** Pin fixed top-level directory @p ino; 0 or a BKR_E* code. */
int bkrfs_node_pin_top(struct bkrfs *fs, bkrfs_ino ino, bkrfs_node_kind kind, bkrfs_ino parent);

#endif
