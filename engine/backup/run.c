/** @file
 * The shared state of a backup run that every thread reports into: the
 * warnings (kept for the manifest), the first fatal error, the progress
 * callback and the counts of stored blobs.
 */
#include "backup_i.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bkr/clock.h"
#include "bkr/error.h"
#include "bkr/log.h"

void bkr_bk_warn(bctx *c, const node *n, const char *fmt, ...)
{
	char *text, *msg = NULL;
	char *path = n ? bkr_bk_node_path(n) : NULL;
	va_list ap;

	/* the path and the reason whole, however long (a tree deeper than
	 * PATH_MAX: a path of more than 1 KiB once wrote past a fixed buffer) */
	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	va_end(ap);
	if (path && text && asprintf(&msg, "%s: %s", path, text) < 0)
		msg = NULL;
	free(path);
	const char *shown = msg ? msg : text ? text : "out of memory"; /* still a warning */
	bkr_log_warn("backup", "%s", shown);
	pthread_mutex_lock(&c->mu);
	if (c->nwarn == c->warncap) {
		size_t cap = c->warncap ? c->warncap * 2 : 16;
		char **w = realloc(c->warnings, cap * sizeof(*w));
		if (w) {
			c->warnings = w;
			c->warncap = cap;
		}
	}
	if (c->nwarn < c->warncap) {
		char *d = strdup(shown);
		if (d)
			c->warnings[c->nwarn++] = d;
	}
	if (c->o->warning)
		c->o->warning(c->o->warning_ctx, shown);
	pthread_mutex_unlock(&c->mu);
	free(msg);
	free(text);
}

void bkr_bk_fatal(bctx *c, int err)
{
	pthread_mutex_lock(&c->mu);
	if (!c->fatal) {
		c->fatal = err;
		c->fatal_msg = strdup(bkr_error_message());
		c->stop = true;
		pthread_cond_broadcast(&c->cv_job);
		pthread_cond_broadcast(&c->cv_space);
		pthread_cond_broadcast(&c->cv_done);
	}
	pthread_mutex_unlock(&c->mu);
}

void bkr_bk_progress(bctx *c, const char *current, bool force)
{
	if (!c->o->progress)
		return;
	int64_t t = bkr_clock_mono_ns();
	if (!force && t - c->last_progress < BKR_BK_PROGRESS_NS)
		return;
	c->last_progress = t;
	bkr_backup_progress p = {
		.phase = c->phase,
		.files_total = c->files_total,
		.bytes_total = c->bytes_total,
		.files_done = atomic_load(&c->files_done),
		.bytes_done = atomic_load(&c->bytes_done),
		.current = current,
		.files_read = atomic_load(&c->files_read),
		.bytes_read = atomic_load(&c->bytes_read),
	};
	c->o->progress(c->o->progress_ctx, &p);
}

void bkr_bk_note_blob(bctx *c, const bkr_id *id, size_t len, bool is_new, uint32_t stored)
{
	pthread_mutex_lock(&c->mu);
	if (is_new) {
		c->st.new_blobs++;
		c->st.new_bytes += len;
		c->st.stored_bytes += stored;
		if (c->nnew == c->newcap) {
			size_t cap = c->newcap ? c->newcap * 2 : 1024;
			bkr_id *a = realloc(c->new_ids, cap * sizeof(*a));
			if (a) {
				c->new_ids = a;
				c->newcap = cap;
			}
		}
		if (c->nnew < c->newcap)
			c->new_ids[c->nnew++] = *id;
	} else {
		c->st.reused_blobs++;
		c->st.reused_bytes += len;
	}
	pthread_mutex_unlock(&c->mu);
}
