/** @file
 * Chunk-and-put of one file's content (see bkr/content.h): a buffer of at
 * most one maximum chunk, the chunker deciding the cuts, a running SHA-256
 * of the whole file.
 */
#include <stdlib.h>
#include <string.h>

#include "bkr/content.h"
#include "bkr/error.h"

struct bkr_content {
	bkr_writer *w;
	bkr_chunker *ch;
	bkr_hash_ctx *hash;
	uint8_t *buf;        /**< bytes of the current chunk, not yet cut */
	size_t len, cap;     /**< cap = the maximum chunk */
	bkr_chunk_ref *refs;
	size_t nrefs, refcap;
	uint64_t size;
};

void bkr_content_params(const bkr_repo *repo, bkr_chunker_params *out)
{
	const bkr_repo_config *cfg = repo ? bkr_repo_get_config(repo) : NULL;
	bkr_chunker_params p = BKR_CHUNKER_PARAMS_INIT;

	if (cfg) {
		p.min = cfg->chunk_min ? cfg->chunk_min : BKR_CHUNK_MIN;
		p.avg = cfg->chunk_avg ? cfg->chunk_avg : BKR_CHUNK_AVG;
		p.max = cfg->chunk_max ? cfg->chunk_max : BKR_CHUNK_MAX;
		p.seed = cfg->chunk_seed;
	}
	*out = p;
}

void bkr_content_free(bkr_content *c)
{
	if (!c)
		return;
	bkr_chunker_free(c->ch);
	bkr_hash_free(c->hash);
	free(c->buf);
	free(c->refs);
	free(c);
}

int bkr_content_new(bkr_content **out, bkr_writer *w, const bkr_repo *repo)
{
	bkr_chunker_params p;
	bkr_content *c;
	int err;

	*out = NULL;
	bkr_content_params(repo, &p);
	if (!(c = calloc(1, sizeof(*c))))
		return bkr_error_oom();
	c->w = w;
	c->cap = p.max;
	if ((err = bkr_chunker_new(&c->ch, &p)) < 0)
		goto done;
	if (!(c->hash = bkr_hash_new()) || !(c->buf = malloc(c->cap))) {
		err = bkr_error_oom();
		goto done;
	}
	*out = c;
	c = NULL;
done:
	bkr_content_free(c);
	return err;
}

/* Store c->buf[0..n) as the next chunk and keep the rest. */
static int emit(bkr_content *c, size_t n)
{
	int err;

	if (c->nrefs == c->refcap) {
		size_t nc = c->refcap ? c->refcap * 2 : 16;
		bkr_chunk_ref *nr = realloc(c->refs, nc * sizeof(*nr));
		if (!nr)
			return bkr_error_oom();
		c->refs = nr;
		c->refcap = nc;
	}
	if ((err = bkr_writer_put_hash(c->w, BKR_BLOB_DATA, c->buf, n, &c->refs[c->nrefs].id, NULL)) < 0)
		return err;
	c->refs[c->nrefs++].length = (uint32_t)n;
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
	return 0;
}

int bkr_content_write(bkr_content *c, const void *data, size_t len)
{
	const uint8_t *p = data;
	int err;

	bkr_hash_update(c->hash, p, len);
	c->size += len;
	while (len > 0) {
		size_t room = c->cap - c->len, take = len < room ? len : room;
		size_t from = c->len, cut;

		memcpy(c->buf + c->len, p, take);
		c->len += take;
		p += take;
		len -= take;
		/* the chunker has seen buf[0..from); cut as often as it says */
		while (from < c->len && (cut = bkr_chunker_scan(c->ch, c->buf + from, c->len - from)) != (size_t)-1) {
			if ((err = emit(c, from + cut)) < 0)
				return err;
			from = 0;
		}
	}
	return 0;
}

int bkr_content_finish(bkr_content *c, bkr_chunk_ref **refs, size_t *nrefs, bkr_id *content,
		       uint64_t *size)
{
	int err = 0;

	*refs = NULL;
	*nrefs = 0;
	if (c->len > 0 && (err = emit(c, c->len)) < 0)
		goto done;
	bkr_hash_final(c->hash, content);
	*size = c->size;
	if (c->nrefs) {
		*refs = c->refs;
		*nrefs = c->nrefs;
		c->refs = NULL;
		c->refcap = 0;
	}
done:
	c->nrefs = 0;
	c->len = 0;
	c->size = 0;
	bkr_chunker_reset(c->ch);
	bkr_hash_reset(c->hash);
	return err;
}
