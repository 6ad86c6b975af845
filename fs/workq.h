/** @file
 * A bounded ring of fixed-size jobs served by a few threads (the prefetch
 * workers and the page-cache store use one each).  A job that does not fit
 * is dropped: every job is a hint.  Stopping is in three steps, so that the
 * mount can stop taking jobs everywhere before it waits for any thread
 * (mount.c): close (no new job), join (each thread finishes the job it is
 * doing), free (the jobs left go to drop()).  Knows nothing of FUSE.
 */
#ifndef BKRFS_WORKQ_H
#define BKRFS_WORKQ_H

#include <stdbool.h>
#include <stddef.h>

struct workq;

/** What a thread does with a job (@p job points to a copy of its bytes). */
typedef void (*bkrfs_workq_fn)(void *ctx, void *job);

/** A queue of @p cap jobs of @p size bytes (at most 96), served by
 *  @p threads threads (at most 8) calling @p run(@p ctx, job); jobs left at
 *  free go to @p drop (may be NULL).  NULL (error set) when no thread starts. */
struct workq *bkrfs_workq_start(void *ctx, size_t size, size_t cap, int threads, bkrfs_workq_fn run,
				bkrfs_workq_fn drop);
/** Refuse new jobs from now on (push queues nothing); NULL: no-op. */
void bkrfs_workq_close(struct workq *wq);
/** Close, and wait for the threads to finish the job each is doing. */
void bkrfs_workq_join(struct workq *wq);
/** Join, then drop the jobs left and free @p wq; NULL: no-op. */
void bkrfs_workq_free(struct workq *wq);
/** Queue the @p n jobs at @p jobs, each unless the ring is full, the queue
 *  closed, or (with @p same) an equal job queued already, under one lock and
 *  with one wake-up; returns how many were queued (0 for NULL @p wq). */
size_t bkrfs_workq_push(struct workq *wq, const void *jobs, size_t n, bool (*same)(const void *, const void *));

#endif
