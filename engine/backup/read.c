/** @file
 * Reading one regular file on a worker: its data extents (SEEK_DATA/
 * SEEK_HOLE when it looks sparse), small files in one go (the content hash is
 * the chunk id), larger ones through the chunker with a streaming content
 * hash and chunk jobs for the pool.  A file whose size, mtime or ctime
 * changed during the read is read again, at most BKR_BK_RETRIES times; then
 * a file that only grew (a live log) keeps the prefix the last read saw
 * (when a second read of it sees the same bytes),
 * any other keeps its copy in the parent backup, or is skipped without
 * one; each with a warning.
 */
#include "backup_i.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bkr/clock.h"
#include "bkr/compress.h"
#include "bkr/error.h"
#include "bkr/io.h"
#include "bkr/walk.h"

enum { READ_OK = 0, READ_CHANGED = 1, READ_FAILED = 2 };

/* Data extents of @p fd (size @p size): SEEK_DATA/SEEK_HOLE when it looks sparse. */
static int file_extents(int fd, const struct stat *st, uint64_t **ext, size_t *n)
{
	size_t cap = 8, k = 0;
	uint64_t *e = malloc(cap * 2 * sizeof(*e));
	uint64_t size = (uint64_t)st->st_size;

	*ext = NULL;
	*n = 0;
	if (!e)
		return bkr_error_oom();
	if (size == 0) {
		*ext = e;
		return 0;
	}
	if ((uint64_t)st->st_blocks * 512 >= size) {
		e[0] = 0;
		e[1] = size;
		*ext = e;
		*n = 1;
		return 0;
	}
	off_t pos = 0;
	while ((uint64_t)pos < size) {
		off_t d = lseek(fd, pos, SEEK_DATA);
		if (d < 0) {
			if (errno == ENXIO)
				break;
			/* no SEEK_DATA support: one extent */
			e[0] = 0;
			e[1] = size;
			k = 1;
			break;
		}
		if ((uint64_t)d >= size)
			break;
		off_t h = lseek(fd, d, SEEK_HOLE);
		if (h < 0 || (uint64_t)h > size)
			h = (off_t)size;
		if (k == cap) {
			cap *= 2;
			uint64_t *x = realloc(e, cap * 2 * sizeof(*x));
			if (!x) {
				free(e);
				return bkr_error_oom();
			}
			e = x;
		}
		e[2 * k] = (uint64_t)d;
		e[2 * k + 1] = (uint64_t)(h - d);
		k++;
		pos = h;
	}
	*ext = e;
	*n = k;
	return 0;
}

/*
 * Read the file once: chunks into wk->refs, holes into wk->holes, content
 * hash into *content.  Returns READ_OK/READ_CHANGED/READ_FAILED (a warning
 * message in @p why) or <0 for a fatal error.
 */
static int read_once(worker *wk, node *n, int fd, const struct stat *st, bkr_id *content,
		     bool *sparse, char *why, size_t whycap)
{
	bctx *c = wk->c;
	file_ctx fc = { .c = c };
	uint64_t *ext = NULL;
	size_t next = 0;
	int err, ret = READ_OK;
	uint64_t size = (uint64_t)st->st_size;
	uint64_t lpos = 0;

	wk->nrefs = 0;
	wk->nholes = 0;
	*sparse = false;
	if ((err = file_extents(fd, st, &ext, &next)) < 0)
		return err;

	/* small and dense: one chunk, whose id is the content hash (in a plain
	 * repository; an encrypted one keys its ids) */
	if (next == 1 && ext[0] == 0 && size <= c->cp.min && size <= BKR_BK_READ_BUF) {
		/* tests: BKR_FAULT="backup-read:N:stop" pauses before a workspace file's N-th read */
		(void)bkr_io_fault("backup-read");
		ssize_t r = pread(fd, wk->rb->data, (size_t)size + 1, 0);
		if (r < 0) {
			snprintf(why, whycap, "read: %s", strerror(errno));
			ret = READ_FAILED;
			goto done;
		}
		if ((uint64_t)r < size) {
			ret = READ_CHANGED;
			goto done;
		}
		/* r == size + 1: it grew; the caller's fstat tells, and may keep this prefix */
		bkr_sha256(wk->rb->data, (size_t)size, content);
		bkr_id chunk = *content;
		if (bkr_writer_keyed(c->w))
			bkr_writer_blob_id(c->w, wk->rb->data, (size_t)size, &chunk);
		if ((err = bkr_bk_put_data(c, &chunk, wk->rb->data, (size_t)size, 0)) < 0) {
			ret = err;
			goto done;
		}
		if ((err = bkr_bk_refs_push(wk, NULL, &chunk, (size_t)size)) < 0)
			ret = err;
		atomic_fetch_add(&c->bytes_done, size);
		goto done;
	}

	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	bkr_chunker_reset(wk->chunker);
	{
		const bkr_repo_config *cfg = bkr_repo_get_config(c->repo);
		fc.adapt = size >= BKR_BK_ZSTD_PROBE_MIN && cfg->codec == BKR_CODEC_ZSTD &&
			cfg->level == BKR_ZSTD_LEVEL_DEFAULT;
	}
	/* holes: the sparse digest, which skips them (docs/format.md) */
	*sparse = size > 0 && !(next == 1 && ext[0] == 0 && ext[1] == size);
	bkr_digest_reset(wk->digest, *sparse ? BKR_DIGEST_SPARSE : BKR_DIGEST_PLAIN);
	fc.paired = !*sparse && bkr_hash_pair_fast();
	if (fc.paired)
		bkr_writer_blob_id_start(c->w, wk->idh);
	size_t cap = BKR_BK_READ_BUF, start = 0, end = 0, scanned = 0;

	for (size_t x = 0; x < next && ret == READ_OK; x++) {
		uint64_t off = ext[2 * x], len = ext[2 * x + 1];
		if (off > lpos) {
			if ((err = bkr_bk_holes_push(wk, lpos, off - lpos)) < 0) {
				ret = err;
				break;
			}
			bkr_digest_zeros(wk->digest, off - lpos);
			atomic_fetch_add(&c->bytes_done, off - lpos);
		}
		lpos = off;
		while (len > 0) {
			if (end == cap) {
				if ((err = bkr_bk_rbuf_shift(wk, start, end)) < 0) {
					ret = err;
					break;
				}
				end -= start;
				scanned -= start;
				start = 0;
			}
			size_t want = cap - end;
			if (want > len)
				want = (size_t)len;
			(void)bkr_io_fault("backup-read");
			ssize_t r = pread(fd, wk->rb->data + end, want, (off_t)lpos);
			if (r < 0) {
				if (errno == EINTR)
					continue;
				snprintf(why, whycap, "read: %s", strerror(errno));
				ret = READ_FAILED;
				break;
			}
			if (r == 0) {
				ret = READ_CHANGED;
				break;
			}
			if (!fc.paired)
				bkr_digest_update(wk->digest, wk->rb->data + end, (size_t)r);
			end += (size_t)r;
			lpos += (uint64_t)r;
			len -= (uint64_t)r;
			atomic_fetch_add(&c->bytes_done, (uint64_t)r);
			while (scanned < end) {
				/* paired: the bytes into the digest and the chunk's id, in the same pass */
				size_t k = fc.paired
					? bkr_digest_scan2(wk->digest, wk->idh, wk->chunker, wk->rb->data + scanned,
							   end - scanned)
					: bkr_chunker_scan(wk->chunker, wk->rb->data + scanned, end - scanned);
				if (k == (size_t)-1) {
					scanned = end;
					break;
				}
				scanned += k;
				if ((err = bkr_bk_emit_chunk(wk, &fc, wk->rb->data + start, scanned - start)) < 0) {
					ret = err;
					break;
				}
				start = scanned;
			}
			if (ret != READ_OK)
				break;
		}
	}
	if (ret == READ_OK && end > start) {
		if ((err = bkr_bk_emit_chunk(wk, &fc, wk->rb->data + start, end - start)) < 0)
			ret = err;
	}
	if (ret == READ_OK && lpos < size) {
		if ((err = bkr_bk_holes_push(wk, lpos, size - lpos)) < 0) {
			ret = err;
		} else {
			bkr_digest_zeros(wk->digest, size - lpos);
			atomic_fetch_add(&c->bytes_done, size - lpos);
		}
	}
	bkr_bk_wait_chunks(wk, &fc);
	bkr_bk_drop_jobs(wk);
	if (ret == READ_OK && fc.err < 0)
		ret = fc.err;
	if (ret == READ_OK) {
		bkr_digest_final(wk->digest, content);
	}
done:
	free(ext);
	return ret;
}

static bool same_stat(const struct stat *a, const struct stat *b)
{
	return a->st_size == b->st_size && a->st_ino == b->st_ino && a->st_dev == b->st_dev &&
	       bkr_clock_ns(&a->st_mtim) == bkr_clock_ns(&b->st_mtim) && bkr_clock_ns(&a->st_ctim) == bkr_clock_ns(&b->st_ctim);
}

/* The same file, only longer (appended to, as a live log is). */
static bool only_grew(const struct stat *before, const struct stat *after)
{
	return after->st_ino == before->st_ino && after->st_dev == before->st_dev &&
	       after->st_size > before->st_size;
}

/*
 * A file that never settled: take its copy from the parent backup, when the
 * parent has one (looked up only now, so a run without such files pays
 * nothing).  Stat fields that describe the content come with it.
 */
static bool keep_parent_copy(bctx *c, node *n)
{
	const node *root = n;
	const bkr_id *tree = NULL;
	bkr_dir *h = NULL;
	const bkr_tree *leaf;
	uint32_t li;
	bkr_entry pe;
	char *path;
	bool ok = false;

	while (root->parent)
		root = root->parent;
	for (size_t i = 0; c->parent && i < c->o->nsources && !tree; i++) {
		const bkr_source_spec *s = &c->o->sources[i];
		if (strlen(s->name) == root->name_len && !memcmp(s->name, root->name, root->name_len))
			tree = bkr_bk_parent_tree(c, s);
	}
	if (!tree || !(path = bkr_bk_node_path(n)))
		return false;
	if (bkr_walk_resolve(c->repo, tree, path + root->name_len, &pe, &h, &leaf, &li) == 0 &&
	    pe.type == BKR_FT_FILE && bkr_bk_parent_take(c, n, &pe, leaf, li)) {
		n->size = pe.size;
		n->blocks = pe.blocks;
		n->mtime_ns = pe.mtime_ns;
		n->ctime_ns = pe.ctime_ns;
		ok = true;
	}
	bkr_error_clear();
	bkr_dir_free(h);
	free(path);
	return ok;
}

void bkr_bk_read_file(worker *wk, node *n, int fd, const struct stat *st)
{
	bctx *c = wk->c;
	struct stat before, after;
	char why[256] = "";
	int r = READ_CHANGED;
	bkr_id content;
	bool sparse = false;
	uint64_t grew = 0;

	for (int attempt = 0; attempt <= BKR_BK_RETRIES; attempt++) {
		/* the first read starts from the scan's fstat of this fd: a change
		 * since then shows in the fstat after the read, as one during it */
		if (attempt == 0)
			before = *st;
		else if (fstat(fd, &before) < 0) {
			snprintf(why, sizeof(why), "fstat: %s", strerror(errno));
			r = READ_FAILED;
			break;
		}
		if (!S_ISREG(before.st_mode)) {
			snprintf(why, sizeof(why), "no longer a regular file");
			r = READ_FAILED;
			break;
		}
		r = read_once(wk, n, fd, &before, &content, &sparse, why, sizeof(why));
		if (r < 0) {
			bkr_bk_fatal(c, r);
			break;
		}
		if (r == READ_FAILED)
			break;
		if (r == READ_OK) {
			if (fstat(fd, &after) < 0) {
				snprintf(why, sizeof(why), "fstat: %s", strerror(errno));
				r = READ_FAILED;
				break;
			}
			if (same_stat(&before, &after))
				break;
			/* still growing after every re-read: keep the prefix of the last read
			 * (it ends at the size fstat gave before it) when it is one: a file
			 * also written in place meanwhile (a database that grows) gave a mix
			 * of two versions that was never on disk.  Read the prefix again;
			 * the same bytes twice, and it is the start of the file. */
			if (attempt == BKR_BK_RETRIES && only_grew(&before, &after)) {
				bkr_id again;
				bool sparse2 = false;
				r = read_once(wk, n, fd, &before, &again, &sparse2, why, sizeof(why));
				if (r < 0) {
					bkr_bk_fatal(c, r);
					break;
				}
				if (r == READ_OK && bkr_id_cmp(&again, &content) == 0) {
					sparse = sparse2;
					grew = (uint64_t)(after.st_size - before.st_size);
					after = before;
					break;
				}
				if (r == READ_FAILED)
					break;
			}
			r = READ_CHANGED;
		}
	}
	if (r == READ_OK) {
		atomic_fetch_add(&c->files_read, 1);
		atomic_fetch_add(&c->bytes_read, (uint64_t)after.st_size);
		bkr_bk_node_set_stat(n, &after);
		n->content = content;
		n->sparse_digest = sparse && wk->nholes > 0;
		if ((wk->nrefs && !(n->chunks = bkr_bk_memdup(wk->refs, wk->nrefs * sizeof(*n->chunks)))) ||
		    (wk->nholes && !(n->holes = bkr_bk_memdup(wk->holes, wk->nholes * sizeof(*n->holes))))) {
			bkr_bk_fatal(c, bkr_error_oom());
			r = READ_FAILED;
		} else {
			n->nchunks = wk->nrefs;
			n->nholes = wk->nholes;
			if (grew)
				bkr_bk_warn(c, n, "grew while being read %d times (a live log?): backed up its first %llu bytes",
					    BKR_BK_RETRIES + 1, (unsigned long long)after.st_size);
		}
	} else if (r == READ_FAILED) {
		n->skip = true;
		bkr_bk_warn(c, n, "unreadable, skipped (%s)", why);
	} else if (r == READ_CHANGED && keep_parent_copy(c, n)) {
		bkr_bk_warn(c, n, "changed while being read %d times: kept the copy of backup %s",
			    BKR_BK_RETRIES + 1, c->parent->backup_id);
	} else if (r == READ_CHANGED) {
		n->skip = true;
		bkr_bk_warn(c, n, "changed while being read %d times, skipped", BKR_BK_RETRIES + 1);
	} else {
		n->skip = true;
	}
	close(fd);
	atomic_fetch_add(&c->files_done, 1);
}
