/** @file
 * The look-ahead's horizon per directory (horizon.h).
 */
#include "horizon.h"

#include <string.h>

void bkrfs_horizon_init(bkrfs_horizon *h)
{
	memset(h, 0, sizeof(*h));
	pthread_mutex_init(&h->lock, NULL);
}

void bkrfs_horizon_destroy(bkrfs_horizon *h)
{
	pthread_mutex_destroy(&h->lock);
}

/* lock held */
static struct bkrfs_horizon_dir *find_locked(bkrfs_horizon *h, const bkr_id *tree, bkrfs_ino ino)
{
	for (unsigned k = 0; k < BKRFS_HORIZON_DIRS; k++)
		if (h->d[k].ino == ino && !memcmp(h->d[k].tree.b, tree->b, BKR_ID_SIZE))
			return &h->d[k];
	return NULL;
}

uint64_t bkrfs_horizon_claim(bkrfs_horizon *h, const bkr_id *tree, bkrfs_ino ino, uint64_t next,
			     uint64_t window)
{
	uint64_t start = UINT64_MAX;
	struct bkrfs_horizon_dir *d;

	pthread_mutex_lock(&h->lock);
	d = find_locked(h, tree, ino);
	if (!d || next < d->from) {
		d = d ? d : &h->d[h->next++ % BKRFS_HORIZON_DIRS];
		*d = (struct bkrfs_horizon_dir){ *tree, ino, next, next, next };
	}
	if (d->until < next + window / 2) {
		start = d->until > next ? d->until : next;
		d->start = start;
		d->until = start + window; /* until the look-ahead says */
	}
	pthread_mutex_unlock(&h->lock);
	return start;
}

void bkrfs_horizon_done(bkrfs_horizon *h, const bkr_id *tree, bkrfs_ino ino, uint64_t start, uint64_t until)
{
	struct bkrfs_horizon_dir *d;

	pthread_mutex_lock(&h->lock);
	d = find_locked(h, tree, ino);
	if (d && d->start == start)
		d->until = until;
	pthread_mutex_unlock(&h->lock);
}
