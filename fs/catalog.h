/** @file
 * The catalog: the view of the backups (by-id, by-date, latest) and the
 * runs catalog (/recovered), each built on first use from the names in
 * backups/ and runs/ and swapped by the watcher under view_lock; and the
 * manifest of a snapshot, loaded on first use.  Knows nothing of FUSE.
 */
#ifndef BKRFS_CATALOG_H
#define BKRFS_CATALOG_H

#include <stdbool.h>
#include <stddef.h>

#include "bkr/manifest.h"
#include "views.h"

struct bkrfs;
struct bkrfs_runs;

/** Sorted names in REPO/@p sub ending in @p suffix (stripped); a missing
 *  directory is empty.  0 or a BKR_E* code. */
int bkrfs_catalog_names(struct bkrfs *fs, const char *sub, const char *suffix, char ***out, size_t *n);
/** The same, each name with its object's stamp (bkr_repo_list_stamped: what changes when a
 *  manifest is rewritten in place). */
int bkrfs_catalog_stamped(struct bkrfs *fs, const char *sub, const char *suffix, char ***out, size_t *n);
void bkrfs_catalog_names_free(char **v, size_t n);
bool bkrfs_catalog_names_equal(char **a, size_t na, char **b, size_t nb);
/** The same names, and no object among them rewritten in place (their stamps, where both
 *  listings have one, agree). */
bool bkrfs_catalog_names_same(char **a, size_t na, char **b, size_t nb);

/** Build a view from backup ids (ties of the newest second broken by
 *  manifest times); 0 or a BKR_E* code. */
int bkrfs_catalog_build_view(struct bkrfs *fs, char **names, size_t n, bkrfs_view **out);
/** Build the runs catalog (it takes @p names); 0 or a BKR_E* code. */
int bkrfs_catalog_build_runs(struct bkrfs *fs, char **names, size_t nnames, struct bkrfs_runs **out);
void bkrfs_runs_free(struct bkrfs_runs *r);

/**
 * Build the view (@p runs false) or the runs catalog (@p runs true) when it
 * does not exist yet.  On success returns 0 with fs->view_lock read-held and
 * the requested object non-NULL; else a BKR_E* code.
 */
int bkrfs_catalog_refresh(struct bkrfs *fs, bool runs);
/** fs->view (runs) exists and view_lock is read-held: 0, or a positive errno. */
int bkrfs_catalog_view_rdlock(struct bkrfs *fs);
int bkrfs_catalog_runs_rdlock(struct bkrfs *fs);
/** The run @p id of @p r, or NULL. */
bkrfs_snap *bkrfs_catalog_run_find(struct bkrfs_runs *r, const char *id);

/** The manifest of @p s, loaded on first use (owned by the snap); 0 or a BKR_E* code. */
int bkrfs_snap_manifest(struct bkrfs *fs, bkrfs_snap *s, const bkr_manifest **out);

#endif
