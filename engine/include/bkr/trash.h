/** @file
 * The trash (docs/format.md "Trash"): what `bkr delete` and `bkr prune` remove is moved
 * to trash/ first and deleted only after a grace period, so a reader that
 * opened a backup or a pack before the move keeps reading it (readers look
 * for a missing pack in trash/), and a mistake can be undone by moving the
 * object back.
 *
 * An object "<folder>/.../<base>" goes to "trash/<base>" (pack, index and
 * manifest names are unique across the repository).  Before the first move,
 * one *batch* object "trash/batch-<ns>-<rand>.json" (checksummed JSON) lists
 * every name the operation will move; the grace period runs from the time in
 * its name, and bkr_trash_expire deletes a batch's objects, then the batch.
 * A crash between the batch and the moves leaves a batch naming objects that
 * are still in place: expiring it deletes nothing that was not moved.
 * docs/format.md "Trash" describes the layout.
 */
#ifndef BKR_TRASH_H
#define BKR_TRASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bkr/repo.h"
#include "bkr/store.h"

/** The default grace period: one day (longer than any backup run or read). */
#define BKR_TRASH_GRACE_S (24 * 3600)

/**
 * Publish one batch naming @p names (store names such as "backups/<id>.json",
 * "data/ab/<hex>.pack"), then move each into trash.  A name already absent
 * (a rerun after a crash) is skipped.  @p now_ns stamps the batch.
 */
int bkr_trash_move(bkr_store *s, const char *const *names, size_t n, int64_t now_ns);

/** What bkr_trash_expire found or did. */
typedef struct {
	size_t batches;      /**< batches expired */
	size_t objects;      /**< objects deleted */
	uint64_t bytes;      /**< their size */
	size_t kept_batches; /**< batches still within the grace period */
	uint64_t kept_bytes; /**< bytes of objects still waiting */
	size_t future_batches; /**< kept batches dated after now (made by a clock that was ahead) */
} bkr_trash_stats;

/**
 * Delete the objects of every batch a prune first saw more than @p grace_s
 * seconds before @p now_ns, then the batch (only count them when
 * @p dry_run).  A batch no prune saw yet is marked seen at @p now_ns
 * (trash/seen-<ns>-<batch base>): its grace period starts then, whatever the
 * time in its name says (a clock set back or ahead since it was made).
 * @p grace_s 0 expires every batch.  A damaged batch is left alone
 * (BKR_ECORRUPT is not returned: the rest still expire).
 */
int bkr_trash_expire(bkr_store *s, int64_t now_ns, int64_t grace_s, bool dry_run, bkr_trash_stats *st);

/**
 * A store over @p r's objects (the repository's directory), for the
 * operations that move objects: free it with bkr_store_free.
 */
int bkr_trash_repo_store(bkr_repo *r, bkr_store **out);

/**
 * Delete backups: move "backups/<id>.json" of each of @p ids into trash in
 * one batch (the manifest's presence in backups/ is what makes a backup
 * exist: docs/format.md).  The caller holds the exclusive lock.
 */
int bkr_trash_backups(bkr_store *s, const char *const *ids, size_t n, int64_t now_ns);

/**
 * Every object in the trash of @p r and of each of its tiers, to @p cb with
 * the store holding it (place 0: @p hot, the repository's store for moves;
 * then the tiers) and its name ("trash/<base>").  A return <0 from @p cb
 * stops and is returned.
 */
int bkr_trash_foreach(bkr_repo *r, bkr_store *hot,
		      int (*cb)(void *ctx, bkr_store *s, size_t place, const char *name), void *ctx);

/** "trash/<base>" for @p name into @p out. */
int bkr_trash_name(char *out, size_t cap, const char *name);

#endif
