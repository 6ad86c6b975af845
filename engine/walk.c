/** @file
 * Walking backup trees: path resolution, a depth-first iterator with an
 * explicit heap stack (one open bkr_dir per level, so depth is bounded by
 * memory, not by the C stack), and streaming a file's content with
 * verification.
 */
#include "pathbuf.h"
#include "bkr/walk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bkr/digest.h"
#include "bkr/error.h"
#include "bkr/hash.h"

/* ---- path resolution ---------------------------------------------------- */

/* Next component of @p path starting at *pos; returns its length (0 at end). */
static size_t next_component(const char *path, size_t *pos, const char **comp)
{
	size_t i = *pos;

	for (;;) {
		while (path[i] == '/')
			i++;
		if (!path[i]) {
			*pos = i;
			return 0;
		}
		size_t j = i;
		while (path[j] && path[j] != '/')
			j++;
		if (j - i == 1 && path[i] == '.') {
			i = j;
			continue;
		}
		*comp = path + i;
		*pos = j;
		return j - i;
	}
}

static void root_entry(const bkr_id *root, bkr_entry *out)
{
	memset(out, 0, sizeof(*out));
	out->name = (const uint8_t *)"";
	out->type = BKR_FT_DIR;
	out->mode = 040755;
	out->nlink = 2;
	out->subtree = *root;
}

int bkr_walk_resolve(bkr_repo *r, const bkr_id *root, const char *path, bkr_entry *out,
		     bkr_dir **holder, const bkr_tree **leaf, uint32_t *li)
{
	bkr_dir *d = NULL;
	bkr_id cur = *root;
	const bkr_tree *lf = NULL;
	uint32_t idx = 0;
	size_t pos = 0, len;
	const char *comp = NULL;
	int err = 0;
	bool first = true;

	*holder = NULL;
	if (leaf)
		*leaf = NULL;
	if (li)
		*li = 0;
	root_entry(root, out);
	if (!path)
		path = "";

	while ((len = next_component(path, &pos, &comp)) > 0) {
		if (len == 2 && comp[0] == '.' && comp[1] == '.') {
			err = bkr_error_set(BKR_EINVAL, "path '%s': '..' is not allowed", path);
			goto done;
		}
		if (!first) {
			if (out->type != BKR_FT_DIR) {
				err = bkr_error_set(BKR_ENOTFOUND, "path '%s': '%.*s' is not a directory",
						    path, (int)(comp - path - 1), path);
				goto done;
			}
			cur = out->subtree;
		}
		first = false;
		bkr_dir_free(d);
		d = NULL;
		if ((err = bkr_dir_open(&d, &cur, bkr_repo_load_tree, r)) < 0) {
			bkr_error_prefix("path '%s'", path);
			goto done;
		}
		err = bkr_dir_find(d, (const uint8_t *)comp, len, out, &lf, &idx, NULL);
		if (err == BKR_ENOTFOUND) {
			err = bkr_error_set(BKR_ENOTFOUND, "path '%s': no such file or directory", path);
			goto done;
		}
		if (err < 0)
			goto done;
	}
	*holder = d;
	d = NULL;
	if (leaf)
		*leaf = lf;
	if (li)
		*li = idx;
done:
	if (err < 0)
		root_entry(root, out);
	bkr_dir_free(d);
	return err;
}

/* ---- iterator ----------------------------------------------------------- */

typedef struct {
	bkr_dir *dir;       /* contents of this level */
	uint64_t next, count;
	size_t path_len;    /* length of this directory's path in w->path.p */
	bool has_entry;     /* the directory's own entry (not for the start) */
	bkr_entry entry;
	const bkr_tree *leaf;
	uint32_t li;
} walk_frame;

struct bkr_walk {
	bkr_repo *repo;
	unsigned flags;
	walk_frame *stack;
	size_t depth, cap;
	bkr_pathbuf path;
	bkr_dir *start_holder;
	bkr_dir *pending;   /* opened contents of the last directory returned */
	bool pending_valid;
	bkr_walk_item item;
	char errmsg[512];
};

static int path_reserve(bkr_walk *w, size_t need)
{
	return bkr_pathbuf_reserve(&w->path, need);
}

static int push_frame(bkr_walk *w, bkr_dir *d, size_t path_len)
{
	if (w->depth == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 16;
		walk_frame *s = realloc(w->stack, cap * sizeof(*s));
		if (!s)
			return bkr_error_oom();
		w->stack = s;
		w->cap = cap;
	}
	walk_frame *f = &w->stack[w->depth++];
	memset(f, 0, sizeof(*f));
	f->dir = d;
	f->count = bkr_dir_count(d);
	f->path_len = path_len;
	return 0;
}

int bkr_walk_new(bkr_walk **out, bkr_repo *r, const bkr_id *root, const char *path, unsigned flags)
{
	bkr_walk *w = NULL;
	bkr_dir *d = NULL;
	bkr_entry e;
	int err;
	size_t pos = 0, len;
	const char *comp;

	*out = NULL;
	if (!(w = calloc(1, sizeof(*w))))
		return bkr_error_oom();
	w->repo = r;
	w->flags = flags;
	if ((err = bkr_walk_resolve(r, root, path, &e, &w->start_holder, NULL, NULL)) < 0)
		goto done;
	if (e.type != BKR_FT_DIR) {
		err = bkr_error_set(BKR_EINVAL, "path '%s' is not a directory", path);
		goto done;
	}
	if ((err = bkr_dir_open(&d, &e.subtree, bkr_repo_load_tree, r)) < 0)
		goto done;
	/* normalised start path */
	if ((err = path_reserve(w, (path ? strlen(path) : 0) + 2)) < 0)
		goto done;
	w->path.p[0] = '\0';
	size_t plen = 0;
	while (path && (len = next_component(path, &pos, &comp)) > 0) {
		if (plen)
			w->path.p[plen++] = '/';
		memcpy(w->path.p + plen, comp, len);
		plen += len;
	}
	w->path.p[plen] = '\0';
	if ((err = push_frame(w, d, plen)) < 0)
		goto done;
	d = NULL;
	*out = w;
	w = NULL;
done:
	bkr_dir_free(d);
	bkr_walk_free(w);
	return err;
}

void bkr_walk_skip(bkr_walk *w)
{
	if (!w)
		return;
	bkr_dir_free(w->pending);
	w->pending = NULL;
	w->pending_valid = false;
}

const char *bkr_walk_error_message(const bkr_walk *w)
{
	return w->errmsg;
}

int bkr_walk_next(bkr_walk *w, const bkr_walk_item **item)
{
	int err = 0;

	*item = NULL;
	if (w->pending_valid) {
		walk_frame *top = &w->stack[w->depth - 1];
		/* the pending directory is the last entry returned from top */
		bkr_entry e = w->item.entry;
		const bkr_tree *lf = w->item.leaf;
		uint32_t li = w->item.li;
		size_t plen = w->item.path_len;
		(void)top;
		w->pending_valid = false;
		if ((err = push_frame(w, w->pending, plen)) < 0) {
			bkr_dir_free(w->pending);
			w->pending = NULL;
			return err;
		}
		w->pending = NULL;
		walk_frame *f = &w->stack[w->depth - 1];
		f->has_entry = true;
		f->entry = e;
		f->leaf = lf;
		f->li = li;
	}
	while (w->depth > 0) {
		walk_frame *f = &w->stack[w->depth - 1];
		if (f->next >= f->count) {
			bool post = (w->flags & BKR_WALK_POST) && f->has_entry;
			memset(&w->item, 0, sizeof(w->item));
			if (post) {
				w->path.p[f->path_len] = '\0';
				w->item.path = w->path.p;
				w->item.path_len = f->path_len;
				w->item.depth = w->depth - 1;
				w->item.entry = f->entry;
				w->item.leaf = f->leaf;
				w->item.li = f->li;
				w->item.post = true;
			}
			bkr_dir_free(f->dir);
			w->depth--;
			if (post) {
				*item = &w->item;
				return 1;
			}
			continue;
		}
		memset(&w->item, 0, sizeof(w->item));
		if ((err = bkr_dir_get(f->dir, f->next, &w->item.entry, &w->item.leaf, &w->item.li)) < 0) {
			/* a page that cannot be loaded: report the directory as damaged */
			snprintf(w->errmsg, sizeof(w->errmsg), "%s", bkr_error_message());
			f->next = f->count;
			if (f->has_entry) {
				w->path.p[f->path_len] = '\0';
				w->item.path = w->path.p;
				w->item.path_len = f->path_len;
				w->item.depth = w->depth - 1;
				w->item.entry = f->entry;
				w->item.leaf = f->leaf;
				w->item.li = f->li;
				w->item.error = err;
				bkr_dir_free(f->dir);
				w->depth--;
				*item = &w->item;
				return 1;
			}
			return err;
		}
		f->next++;
		const bkr_entry *e = &w->item.entry;
		size_t base = f->path_len;
		size_t plen = base + (base ? 1 : 0) + e->name_len;
		if ((err = path_reserve(w, plen + 1)) < 0)
			return err;
		if (base)
			w->path.p[base] = '/';
		memcpy(w->path.p + base + (base ? 1 : 0), e->name, e->name_len);
		w->path.p[plen] = '\0';
		w->item.path = w->path.p;
		w->item.path_len = plen;
		w->item.depth = w->depth;
		if (e->type == BKR_FT_DIR && !(w->flags & BKR_WALK_NO_RECURSE)) {
			bkr_dir *d = NULL;
			int e2 = bkr_dir_open(&d, &e->subtree, bkr_repo_load_tree, w->repo);
			if (e2 < 0) {
				snprintf(w->errmsg, sizeof(w->errmsg), "%s", bkr_error_message());
				w->item.error = e2;
			} else {
				w->pending = d;
				w->pending_valid = true;
			}
		}
		*item = &w->item;
		return 1;
	}
	return 0;
}

void bkr_walk_free(bkr_walk *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->depth; i++)
		bkr_dir_free(w->stack[i].dir);
	bkr_dir_free(w->pending);
	bkr_dir_free(w->start_holder);
	free(w->stack);
	bkr_pathbuf_free(&w->path);
	free(w);
}

/* ---- file content ------------------------------------------------------- */

int bkr_walk_read_file(bkr_repo *r, const bkr_tree *leaf, uint32_t li, const char *what,
		       bkr_walk_data_fn fn, void *ctx)
{
	bkr_entry e;
	bkr_chunk_ref *chunks = NULL;
	bkr_hole *holes = NULL;
	size_t nchunks = 0, nholes = 0, hi = 0;
	bkr_digest *h = NULL;
	uint8_t *data = NULL;
	size_t len = 0;
	uint64_t pos = 0;   /* logical position */
	int err;
	char hex[BKR_ID_HEX];

	if (!what)
		what = "file";
	if ((err = bkr_tree_get(leaf, li, &e)) < 0)
		goto done;
	if ((err = bkr_tree_chunks(leaf, li, &chunks, &nchunks)) < 0)
		goto done;
	if ((err = bkr_tree_holes(leaf, li, &holes, &nholes)) < 0)
		goto done;
	/* a single chunk without holes: its verified id is the content hash */
	bool whole = !(nchunks == 1 && nholes == 0 && bkr_id_cmp(&chunks[0].id, &e.content) == 0);
	if (whole && !(h = bkr_digest_new(e.sparse_digest ? BKR_DIGEST_SPARSE : BKR_DIGEST_PLAIN))) {
		err = bkr_error_oom();
		goto done;
	}
	for (size_t c = 0; c < nchunks; c++) {
		if ((err = bkr_repo_read_blob(r, &chunks[c].id, BKR_BLOB_DATA, &data, &len)) < 0) {
			bkr_id_to_hex(&chunks[c].id, hex);
			bkr_error_prefix("%s: chunk %zu (%s)", what, c, hex);
			goto done;
		}
		if (len != chunks[c].length) {
			bkr_id_to_hex(&chunks[c].id, hex);
			err = bkr_error_set(BKR_ECORRUPT, "%s: chunk %zu (%s) has %zu bytes, expected %u",
					    what, c, hex, len, chunks[c].length);
			goto done;
		}
		size_t off = 0;
		while (off < len) {
			/* skip holes starting at pos */
			while (hi < nholes && holes[hi].offset <= pos) {
				if (holes[hi].offset + holes[hi].length > pos) {
					if (h)
						bkr_digest_zeros(h, holes[hi].offset + holes[hi].length - pos);
					pos = holes[hi].offset + holes[hi].length;
				}
				hi++;
			}
			size_t run = len - off;
			if (hi < nholes && holes[hi].offset - pos < run)
				run = (size_t)(holes[hi].offset - pos);
			if (h)
				bkr_digest_update(h, data + off, run);
			if (fn && (err = fn(ctx, pos, data + off, run)) < 0)
				goto done;
			pos += run;
			off += run;
		}
		free(data);
		data = NULL;
	}
	for (; hi < nholes; hi++) {
		if (holes[hi].offset + holes[hi].length > pos) {
			if (h)
				bkr_digest_zeros(h, holes[hi].offset + holes[hi].length - pos);
			pos = holes[hi].offset + holes[hi].length;
		}
	}
	if (pos != e.size) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: chunks and holes cover %llu bytes, size is %llu",
				    what, (unsigned long long)pos, (unsigned long long)e.size);
		goto done;
	}
	if (h) {
		bkr_id got;
		bkr_digest_final(h, &got);
		if (bkr_id_cmp(&got, &e.content) != 0) {
			bkr_id_to_hex(&e.content, hex);
			err = bkr_error_set(BKR_ECORRUPT, "%s: content hash mismatch (expected %s)", what, hex);
			goto done;
		}
	}
done:
	free(data);
	free(chunks);
	free(holes);
	bkr_digest_free(h);
	return err;
}
