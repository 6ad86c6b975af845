/** @file
 * The read path (read.h): a file's read state (its layout, built at the
 * first read and kept with the inode), and a read split into pieces (hole,
 * or part of one chunk) taken from the chunk cache, pointed at by an iovec
 * (no copy), then released: stored into the page cache after a random
 * read, dropped behind a streaming one.  Returns 0 or a positive errno.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bkr/error.h"
#include "bkr/tree.h"
#include "bkrfs.h"
#include "chunk.h"
#include "pagestore.h"
#include "prefetch.h"
#include "read.h"

void bkrfs_file_free(struct bkrfs_file *f)
{
	if (!f)
		return;
	bkrfs_snap_unref(f->snap);
	free(f->path);
	bkrfs_layout_fini(&f->l);
	free(f->report);
	free(f);
}

static void log_read_error(struct bkrfs *fs, struct bkrfs_file *f, const bkr_id *chunk, const char *msg)
{
	struct bkrfs_seen *s = &fs->seen;
	char hex[BKR_ID_HEX], pack[BKR_PACK_ID_HEX] = "?";
	bkr_index_entry ie;
	bool dup = false;

	pthread_mutex_lock(&s->lock);
	for (unsigned k = 0; k < BKRFS_SEEN_MAX && k < s->n; k++)
		if (!memcmp(s->id[k].b, chunk->b, BKR_ID_SIZE))
			dup = true;
	if (!dup)
		s->id[s->n++ % BKRFS_SEEN_MAX] = *chunk;
	pthread_mutex_unlock(&s->lock);
	if (dup)
		return;
	bkr_id_to_hex(chunk, hex);
	if (bkr_repo_lookup(fs->repo, chunk, &ie) == 0)
		bkr_pack_id_to_hex(&ie.pack, pack);
	pthread_mutex_lock(&s->lock);
	snprintf(s->last, sizeof(s->last), "%s %s, file '%s': chunk %s in pack %s: %s", f->snap->run ? "run" : "backup",
		 f->snap->id, f->path, hex, pack, msg);
	bkrfs_log(fs, "EIO: %s", s->last);
	pthread_mutex_unlock(&s->lock);
}

static int open_file(struct bkrfs *fs, bkrfs_inode *i, struct bkrfs_file **out)
{
	struct bkrfs_file *f;
	bkrfs_cache_entry *ce = NULL;
	bkr_chunk_ref *chunks = NULL;
	bkr_hole *holes = NULL;
	size_t nchunks = 0, nholes = 0;
	const bkr_tree *leaf;
	uint32_t li;
	bkr_entry e;
	void *v;
	int err;

	*out = NULL;
	if (!(f = calloc(1, sizeof(*f))) || !(f->path = strdup(i->path))) {
		free(f);
		return ENOMEM;
	}
	f->snap = bkrfs_snap_ref(i->snap);
	f->next_seq = UINT64_MAX;
	if (i->kind == BKRFS_NODE_REPORT) {
		if ((err = bkr_repo_read_blob(fs->repo, &i->content, BKR_BLOB_DATA, &f->report, &f->report_len)) < 0) {
			log_read_error(fs, f, &i->content, bkr_error_message());
			bkrfs_file_free(f);
			return bkrfs_data_errno(err);
		}
		*out = f;
		return 0;
	}
	if ((err = bkrfs_cache_get(fs->dirs, &i->parent_tree, &ce, &v)) < 0 ||
	    (err = bkr_dir_get(v, i->parent_index, &e, &leaf, &li)) < 0 ||
	    (err = bkr_tree_chunks(leaf, li, &chunks, &nchunks)) < 0 ||
	    (err = bkr_tree_holes(leaf, li, &holes, &nholes)) < 0) {
		bkrfs_log(fs, "%s %s, file '%s': %s", f->snap->run ? "run" : "backup", f->snap->id, f->path,
			  bkr_error_message());
		err = bkrfs_data_errno(err);
		goto fail;
	}
	if ((err = bkrfs_layout_init(&f->l, e.size, chunks, nchunks, holes, nholes)) < 0) {
		chunks = NULL;
		holes = NULL;
		bkrfs_log(fs, "%s %s, file '%s': %s", f->snap->run ? "run" : "backup", f->snap->id, f->path,
			  bkr_error_message());
		err = EIO;
		goto fail;
	}
	bkrfs_cache_release(fs->dirs, ce);
	*out = f;
	return 0;
fail:
	free(chunks);
	free(holes);
	bkrfs_cache_release(fs->dirs, ce);
	bkrfs_file_free(f);
	return err;
}

int bkrfs_file_of(struct bkrfs *fs, bkrfs_inode *i, struct bkrfs_file **out)
{
	struct bkrfs_file *f = __atomic_load_n((struct bkrfs_file **)&i->file, __ATOMIC_ACQUIRE), *expect = NULL;
	int err;

	if (f) {
		*out = f;
		return 0;
	}
	if (i->kind != BKRFS_NODE_REPORT && (i->kind != BKRFS_NODE_ENTRY || i->ftype != BKR_FT_FILE))
		return S_ISDIR(i->st.st_mode) ? EISDIR : EINVAL;
	if ((err = open_file(fs, i, &f)))
		return err;
	if (!__atomic_compare_exchange_n((struct bkrfs_file **)&i->file, &expect, f, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE)) {
		bkrfs_file_free(f); /* another thread built it first */
		f = expect;
	}
	*out = f;
	return 0;
}


static const char zeros[65536];

/* room for one more iovec and one more chunk */
static int read_grow(struct bkrfs_read *r)
{
	size_t nc = r->cap * 2;
	struct iovec *ni;
	struct bkrfs_read_chunk *nk;

	if (r->niov < r->cap && r->nchunks < r->cap)
		return 0;
	if (!(ni = malloc(nc * sizeof(*ni))) || !(nk = malloc(nc * sizeof(*nk)))) {
		free(ni);
		return ENOMEM;
	}
	memcpy(ni, r->iov, r->niov * sizeof(*ni));
	memcpy(nk, r->chunks, r->nchunks * sizeof(*nk));
	if (r->iov != r->iov_small) {
		free(r->iov);
		free(r->chunks);
	}
	r->iov = ni;
	r->chunks = nk;
	r->cap = nc;
	return 0;
}

int bkrfs_read_fill(struct bkrfs *fs, bkrfs_inode *i, struct bkrfs_file *f, uint64_t off, uint64_t size,
		    struct bkrfs_read *r)
{
	uint64_t pos = off, left = size;
	bkrfs_extent x;
	int err = 0;

	memset(r, 0, offsetof(struct bkrfs_read, iov_small));
	r->iov = r->iov_small;
	r->chunks = r->chunks_small;
	r->cap = BKRFS_READ_SMALL;
	while (left && bkrfs_layout_piece(&f->l, pos, left, &x)) {
		if ((err = read_grow(r)))
			break;
		if (x.hole) {
			if (x.len > sizeof(zeros))
				x.len = sizeof(zeros);
			r->iov[r->niov].iov_base = (void *)zeros;
			r->iov[r->niov++].iov_len = x.len;
		} else {
			const bkr_chunk_ref *c = &f->l.chunks[x.chunk];
			struct bkrfs_read_chunk *k = &r->chunks[r->nchunks];
			void *vp;
			int e = bkrfs_cache_get(fs->chunks, &c->id, &k->ent, &vp);
			if (e < 0) {
				log_read_error(fs, f, &c->id, bkr_error_message()[0] ? bkr_error_message() : bkr_error_name(e));
				err = bkrfs_data_errno(e);
				break;
			}
			k->val = vp;
			k->start = pos - x.chunk_off;
			k->to_end = x.chunk_off + x.len == k->val->len;
			r->nchunks++;
			if (k->val->len != c->length) {
				char msg[128];
				snprintf(msg, sizeof(msg), "chunk is %zu bytes, the tree says %u", k->val->len, c->length);
				log_read_error(fs, f, &c->id, msg);
				err = EIO;
				break;
			}
			r->iov[r->niov].iov_base = k->val->buf + x.chunk_off;
			r->iov[r->niov++].iov_len = x.len;
		}
		pos += x.len;
		left -= x.len;
	}
	if (err)
		return err;
	r->streaming = bkrfs_prefetch_after(fs, &f->l, off, pos, &f->next_seq);
	if (off == 0 && i->kind == BKRFS_NODE_ENTRY)
		bkrfs_prefetch_dir(fs, &i->parent_tree, i->parent_index + 1, i->parent);
	return 0;
}

void bkrfs_read_done(struct bkrfs *fs, bkrfs_ino ino, struct bkrfs_file *f, struct bkrfs_read *r, bool replied)
{
	for (size_t k = 0; k < r->nchunks; k++) {
		const struct bkrfs_read_chunk *c = &r->chunks[k];
		bkrfs_extent x;
		/* a random reader gets the rest of each chunk it touched into
		 * the page cache, when the chunk's bytes are one contiguous
		 * range of the file (no hole inside; the store takes its own
		 * reference); a streaming reader that read a chunk to its end
		 * is done with it: the kernel's page cache has it (drop-behind
		 * keeps the heap small) */
		if (replied && !r->streaming &&
		    bkrfs_layout_piece(&f->l, c->start, UINT64_MAX - c->start, &x) && !x.hole &&
		    x.chunk_off == 0 && x.len == c->val->len)
			bkrfs_pagestore_chunk(fs, ino, c->start, c->ent, c->val->buf, c->val->len, false);
		if (replied && r->streaming && c->to_end)
			bkrfs_cache_release_drop(fs->chunks, c->ent);
		else
			bkrfs_cache_release(fs->chunks, c->ent);
	}
	if (r->iov != r->iov_small) {
		free(r->iov);
		free(r->chunks);
	}
}
