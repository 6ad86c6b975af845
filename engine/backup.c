/** @file
 * Taking a backup (docs/design.md "Backup", backup.h): the run, phase by phase.
 *
 * Three phases, overlapping: the calling thread walks each source and builds
 * an in-memory node tree, queueing the files to read (backup/scan.c); a pool
 * of workers reads, chunks, hashes and stores them meanwhile (backup/pool.c,
 * backup/read.c); then the trees are built bottom-up, the writer commits, the
 * result is checked and the manifest published (backup/commit.c).  A shared
 * repository lock is held throughout.  backup/backup_i.h maps the files.
 */
#include "backup/backup_i.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bkr/clock.h"
#include "bkr/error.h"
#include "bkr/host.h"
#include "bkr/manifest.h"

static int check_options(const bkr_backup_options *o)
{
	if (!o || o->version != BKR_BACKUP_OPTIONS_VERSION)
		return bkr_error_set(BKR_EINVAL, "backup: unsupported options version");
	if (o->type == BKR_BACKUP_RECOVERY || (int)o->type < 0 || o->type > BKR_BACKUP_RECOVERY)
		return bkr_error_set(BKR_EINVAL, "backup: bad backup type %d", (int)o->type);
	if (!o->nsources || !o->sources)
		return bkr_error_set(BKR_EINVAL, "backup: no sources");
	for (size_t i = 0; i < o->nsources; i++) {
		const bkr_source_spec *s = &o->sources[i];
		if (!s->name || !bkr_tree_name_valid((const uint8_t *)s->name, strlen(s->name)))
			return bkr_error_set(BKR_EINVAL, "backup: invalid source name '%s'", s->name ? s->name : "");
		if (!s->path || s->path[0] != '/')
			return bkr_error_set(BKR_EINVAL, "source '%s': path must be absolute", s->name);
		for (size_t j = 0; j < i; j++)
			if (strcmp(o->sources[j].name, s->name) == 0)
				return bkr_error_set(BKR_EINVAL, "backup: source '%s' given twice", s->name);
	}
	return 0;
}

/* Everything but the pool and the writer, which need the lock first. */
static int run_init(bctx *c, bkr_repo *r, const bkr_backup_options *o)
{
	const bkr_repo_config *cfg = bkr_repo_get_config(r);

	memset(c, 0, sizeof(*c));
	c->repo = r;
	c->o = o;
	c->noatime_ok = true;
	c->phase = 1;
	bkr_host_name(c->hostname, sizeof(c->hostname), o->hostname);
	c->cp.min = cfg->chunk_min ? cfg->chunk_min : BKR_CHUNK_MIN;
	c->cp.avg = cfg->chunk_avg ? cfg->chunk_avg : BKR_CHUNK_AVG;
	c->cp.max = cfg->chunk_max ? cfg->chunk_max : BKR_CHUNK_MAX;
	c->cp.seed = cfg->chunk_seed;
	if (c->cp.max > BKR_BK_READ_BUF / 2) /* a chunk must fit half a worker's read buffer */
		return bkr_error_set(BKR_EINVAL,
				     "%s/config.json: key 'chunker.max': %u is more than a backup can chunk with (%u at "
				     "most: init --chunk-avg 1048576 or less); no backup can be made into this repository",
				     bkr_repo_path(r), c->cp.max, BKR_BK_READ_BUF / 2);
	c->nthreads = o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (c->nthreads < 1)
		c->nthreads = 1;
	if (c->nthreads > 64)
		c->nthreads = 64;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv_job, NULL);
	pthread_cond_init(&c->cv_space, NULL);
	pthread_cond_init(&c->cv_done, NULL);
	c->mu_init = true;
	return 0;
}

static void run_free(bctx *c)
{
	bkr_bk_pool_free(c);
	bkr_writer_free(c->w);
	bkr_manifest_free(c->parent);
	for (size_t i = 0; i < c->nall; i++)
		bkr_bk_node_free(c->all[i]);
	free(c->all);
	free(c->roots);
	bkr_bk_names_free(c->users);
	bkr_bk_names_free(c->groups);
	free(c->links.slots);
	free(c->skip);
	bkr_pathbuf_free(&c->rel);
	for (size_t i = 0; i < c->nwarn; i++)
		free(c->warnings[i]);
	free(c->warnings);
	free(c->fatal_msg);
	free(c->new_ids);
	if (c->mu_init) {
		pthread_mutex_destroy(&c->mu);
		pthread_cond_destroy(&c->cv_job);
		pthread_cond_destroy(&c->cv_space);
		pthread_cond_destroy(&c->cv_done);
	}
}

int bkr_backup_run(bkr_repo *r, const bkr_backup_options *o, bkr_manifest **out)
{
	bctx cs, *c = &cs;
	bkr_lock *lock = NULL;
	int64_t t0 = bkr_clock_mono_ns(), start_ns = bkr_time_now_ns();
	char *why = NULL;
	int err;

	if (out)
		*out = NULL;
	memset(c, 0, sizeof(*c));
	if ((err = check_options(o)) < 0)
		return err;
	if ((err = run_init(c, r, o)) < 0 ||
	    (err = bkr_repo_lock_or_wait(r, BKR_LOCK_SHARED, o->no_wait, o->waiting, o->waiting_ctx, &lock)) < 0 ||
	    /* a prune may have run since the index was loaded: dedup against what is
	     * left (read again only when the index files changed) */
	    (err = bkr_repo_refresh_index(r)) < 0 || (err = bkr_bk_parent_select(c, start_ns)) < 0 ||
	    (err = bkr_writer_new(&c->w, r)) < 0)
		goto done;

	/* phase 1, with phase 2 running beside it; then the pool drains */
	if ((err = bkr_bk_pool_start(c)) >= 0)
		err = bkr_bk_scan(c);
	if (err >= 0) {
		c->phase = 2;
		bkr_bk_progress(c, NULL, true);
	}
	/* the jobs queued before a failed scan run in this thread too (the pool's
	 * worker 0), and they set and clear its message: the scan's is kept */
	if (err < 0 && !(why = strdup(bkr_error_message())))
		err = bkr_error_oom();
	bkr_bk_pool_finish(c);
	if (err < 0) {
		if (why)
			bkr_error_set(err, "%s", why);
		goto done;
	}
	if (c->fatal) {
		err = bkr_error_set(c->fatal, "%s", c->fatal_msg ? c->fatal_msg : "out of memory");
		goto done;
	}

	err = bkr_bk_commit(c, t0, out);
done:
	/* and what is freed here (the writer, the lock) must not clear it either */
	free(why);
	why = err < 0 ? strdup(bkr_error_message()) : NULL;
	run_free(c);
	bkr_lock_release(lock);
	if (why)
		bkr_error_set(err, "%s", why);
	free(why);
	return err;
}
