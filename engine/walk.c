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
#include <sys/stat.h>

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

static int dirs_get(bkr_walk_dirs *c, const bkr_id *id, bkr_dir **out);

/* @p err, its message prefixed "path 'P': " when @p named (else the
 * caller's own message names the path: BKR_WALK_UNNAMED) */
static int path_named(bool named, int err, const char *path)
{
	if (named)
		bkr_error_prefix("path '%s'", path);
	return err;
}

/*
 * bkr_walk_resolve and bkr_walk_dirs_resolve: each directory on the way read
 * afresh (@p c NULL; the last one is handed over in *@p holder) or taken
 * from @p c (kept there; @p holder is NULL).  @p named: messages start with
 * "path 'P': " (path_named).
 */
static int resolve(bkr_repo *r, bkr_walk_dirs *c, const bkr_id *root, const char *path, bkr_entry *out,
		   bkr_dir **holder, const bkr_tree **leaf, uint32_t *li, bool named)
{
	bkr_dir *d = NULL;
	bkr_id cur = *root;
	const bkr_tree *lf = NULL;
	uint32_t idx = 0;
	size_t pos = 0, len, end = 0;
	const char *comp = NULL;
	int err = 0;
	bool first = true;

	if (holder)
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
			err = path_named(named, bkr_error_set(BKR_EINVAL, "'..' is not allowed"), path);
			goto done;
		}
		if (!first) {
			if (out->type != BKR_FT_DIR) {
				err = path_named(named, bkr_error_set(BKR_ENOTFOUND, "'%.*s' is not a directory",
								      (int)(comp - path - 1), path), path);
				goto done;
			}
			cur = out->subtree;
		}
		first = false;
		if (!c) {
			bkr_dir_free(d);
			d = NULL;
		}
		if ((err = c ? dirs_get(c, &cur, &d) : bkr_dir_open(&d, &cur, bkr_repo_load_tree, r)) < 0) {
			/* a tree the index lacks is damage (BKR_ECORRUPT), never "not found" */
			path_named(named, err, path);
			goto done;
		}
		err = bkr_dir_find(d, (const uint8_t *)comp, len, out, &lf, &idx, NULL);
		if (err == BKR_ENOTFOUND) {
			err = path_named(named, bkr_error_set(BKR_ENOTFOUND, "no such file or directory"), path);
			goto done;
		}
		if (err < 0) { /* a page of a big directory that did not load */
			path_named(named, err, path);
			goto done;
		}
		end = pos;
	}
	/* "file/" or "file/." names a directory, as for open(2) */
	if (end && path[end] && out->type != BKR_FT_DIR) {
		err = path_named(named, bkr_error_set(BKR_ENOTFOUND, "'%.*s' is not a directory", (int)end, path),
				 path);
		goto done;
	}
	if (holder) {
		*holder = d;
		d = NULL;
	}
	if (leaf)
		*leaf = lf;
	if (li)
		*li = idx;
done:
	if (err < 0)
		root_entry(root, out);
	if (!c)
		bkr_dir_free(d);
	return err;
}

int bkr_walk_resolve(bkr_repo *r, const bkr_id *root, const char *path, bkr_entry *out,
		     bkr_dir **holder, const bkr_tree **leaf, uint32_t *li)
{
	return resolve(r, NULL, root, path, out, holder, leaf, li, true);
}

int bkr_walk_resolve_flags(bkr_repo *r, const bkr_id *root, const char *path, unsigned flags, bkr_entry *out,
			   bkr_dir **holder, const bkr_tree **leaf, uint32_t *li)
{
	return resolve(r, NULL, root, path, out, holder, leaf, li, !(flags & BKR_WALK_UNNAMED));
}

/* ---- many paths: directories kept by id ---------------------------------- */

typedef struct {
	bkr_id id;
	bkr_dir *dir; /* NULL: a free slot */
} dirs_slot;

struct bkr_walk_dirs {
	bkr_repo *r;
	dirs_slot *slots; /* open addressing, linear probing; cap a power of two >= 2 max */
	size_t cap, n, max;
	uint64_t loads;
};

int bkr_walk_dirs_new(bkr_walk_dirs **out, bkr_repo *r, size_t max_dirs)
{
	bkr_walk_dirs *c;
	size_t cap = 16;

	*out = NULL;
	if (!max_dirs)
		max_dirs = 1;
	while (cap < 2 * max_dirs)
		cap *= 2;
	if (!(c = calloc(1, sizeof(*c))) || !(c->slots = calloc(cap, sizeof(*c->slots)))) {
		free(c);
		return bkr_error_oom();
	}
	c->r = r;
	c->cap = cap;
	c->max = max_dirs;
	*out = c;
	return 0;
}

static size_t dirs_hash(const bkr_id *id)
{
	uint64_t h;

	memcpy(&h, id->b, sizeof(h)); /* ids are hashes: any 8 bytes are uniform */
	return (size_t)h;
}

static void dirs_clear(bkr_walk_dirs *c)
{
	for (size_t i = 0; i < c->cap; i++) {
		bkr_dir_free(c->slots[i].dir);
		c->slots[i].dir = NULL;
	}
	c->n = 0;
}

/* The open directory of tree @p id: kept, or read now (and kept). */
static int dirs_get(bkr_walk_dirs *c, const bkr_id *id, bkr_dir **out)
{
	size_t mask = c->cap - 1, i = dirs_hash(id) & mask;
	bkr_dir *d = NULL;
	int err;

	for (; c->slots[i].dir; i = (i + 1) & mask)
		if (!memcmp(c->slots[i].id.b, id->b, sizeof(id->b))) {
			*out = c->slots[i].dir;
			return 0;
		}
	if ((err = bkr_dir_open(&d, id, bkr_repo_load_tree, c->r)) < 0)
		return err;
	c->loads++;
	if (c->n == c->max) {
		dirs_clear(c); /* the entries handed out before this call are no longer used */
		for (i = dirs_hash(id) & mask; c->slots[i].dir; i = (i + 1) & mask)
			;
	}
	c->slots[i].id = *id;
	c->slots[i].dir = d;
	c->n++;
	*out = d;
	return 0;
}

int bkr_walk_dirs_resolve(bkr_walk_dirs *c, const bkr_id *root, const char *path, bkr_entry *out,
			  const bkr_tree **leaf, uint32_t *li)
{
	return resolve(c->r, c, root, path, out, NULL, leaf, li, true);
}

uint64_t bkr_walk_dirs_loads(const bkr_walk_dirs *c)
{
	return c->loads;
}

void bkr_walk_dirs_free(bkr_walk_dirs *c)
{
	if (!c)
		return;
	dirs_clear(c);
	free(c->slots);
	free(c);
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
	char *errmsg;           /* the last unreadable directory's message, whole (bkr_walk_error_message) */
	bool errmsg_lost;       /* out of memory keeping it */
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
	bool named = !(flags & BKR_WALK_UNNAMED);

	*out = NULL;
	if (!(w = calloc(1, sizeof(*w))))
		return bkr_error_oom();
	w->repo = r;
	w->flags = flags;
	if ((err = resolve(r, NULL, root, path, &e, &w->start_holder, NULL, NULL, named)) < 0)
		goto done;
	if (e.type != BKR_FT_DIR) {
		err = named ? bkr_error_set(BKR_EINVAL, "path '%s' is not a directory", path)
			    : bkr_error_set(BKR_EINVAL, "not a directory");
		goto done;
	}
	if ((err = bkr_dir_open(&d, &e.subtree, bkr_repo_load_tree, r)) < 0) {
		bool at_root = e.subtree.b[0] == root->b[0] && !memcmp(e.subtree.b, root->b, sizeof(root->b));
		if (named && at_root)
			bkr_error_prefix("root directory");
		else if (named)
			bkr_error_prefix("path '%s'", path);
		goto done;
	}
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
	if (w->errmsg)
		return w->errmsg;
	return w->errmsg_lost ? "out of memory (the directory's message could not be kept)" : "";
}

/* The error slot's message into w->errmsg, whole. */
static void keep_error(bkr_walk *w)
{
	free(w->errmsg);
	w->errmsg = strdup(bkr_error_message());
	w->errmsg_lost = !w->errmsg;
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
			keep_error(w);
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
				keep_error(w);
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
	free(w->errmsg);
	free(w);
}

/* ---- file content ------------------------------------------------------- */

struct bkr_walk_file {
	char *what;
	uint64_t size;
	bkr_id content;
	bkr_chunk_ref *chunks;
	size_t nchunks;
	bkr_hole *holes;
	size_t nholes, hi;
	bkr_digest *h;      /* NULL when the single chunk's verified id is the content hash */
	bkr_repo *deferred; /* bkr_walk_file_defer_checks's repository, or NULL */
	uint64_t pos;       /* logical position of the next chunk */
	size_t next;        /* the next chunk bkr_walk_file_put takes */
};

int bkr_walk_file_new(bkr_walk_file **out, const bkr_tree *leaf, uint32_t li, const char *what)
{
	bkr_walk_file *f = calloc(1, sizeof(*f));
	bkr_entry e;
	int err;

	*out = NULL;
	if (!f)
		return bkr_error_oom();
	if (!(f->what = strdup(what ? what : "file"))) {
		err = bkr_error_oom();
		goto done;
	}
	if ((err = bkr_tree_get(leaf, li, &e)) < 0 || (err = bkr_tree_chunks(leaf, li, &f->chunks, &f->nchunks)) < 0 ||
	    (err = bkr_tree_holes(leaf, li, &f->holes, &f->nholes)) < 0)
		goto done;
	f->size = e.size;
	f->content = e.content;
	/* a single chunk without holes: its verified id is the content hash */
	bool whole = !(f->nchunks == 1 && f->nholes == 0 && bkr_id_cmp(&f->chunks[0].id, &e.content) == 0);
	if (whole && !(f->h = bkr_digest_new(e.sparse_digest ? BKR_DIGEST_SPARSE : BKR_DIGEST_PLAIN)))
		err = bkr_error_oom();
done:
	if (err < 0)
		bkr_walk_file_free(f);
	else
		*out = f;
	return err;
}

size_t bkr_walk_file_chunks(const bkr_walk_file *f)
{
	return f->nchunks;
}

bool bkr_walk_file_has_holes(const bkr_walk_file *f)
{
	return f->nholes > 0;
}

uint32_t bkr_walk_file_chunk_length(const bkr_walk_file *f, size_t i)
{
	return f->chunks[i].length;
}

const bkr_id *bkr_walk_file_chunk_id(const bkr_walk_file *f, size_t i)
{
	return &f->chunks[i].id;
}

void bkr_walk_file_defer_checks(bkr_walk_file *f, bkr_repo *r)
{
	f->deferred = r;
}

/* Chunk @p i, its hash checked when @p hash (else the content hash covers it). */
static int read_chunk(bkr_repo *r, const bkr_walk_file *f, size_t i, bool hash, uint8_t **data, size_t *len)
{
	char hex[BKR_ID_HEX];
	int err;

	err = hash ? bkr_repo_read_blob(r, &f->chunks[i].id, BKR_BLOB_DATA, data, len)
		   : bkr_repo_read_data_unhashed(r, &f->chunks[i].id, data, len);
	if (err < 0) {
		bkr_id_to_hex(&f->chunks[i].id, hex);
		bkr_error_prefix("%s: chunk %zu (%s)", f->what, i, hex);
		return err;
	}
	if (*len != f->chunks[i].length) {
		bkr_id_to_hex(&f->chunks[i].id, hex);
		err = bkr_error_set(BKR_ECORRUPT, "%s: chunk %zu (%s) has %zu bytes, expected %u", f->what, i, hex,
				    *len, f->chunks[i].length);
		free(*data);
		*data = NULL;
		*len = 0;
	}
	return err;
}

int bkr_walk_file_read_chunk(bkr_repo *r, const bkr_walk_file *f, size_t i, uint8_t **data, size_t *len)
{
	return read_chunk(r, f, i, !(f->deferred && f->h), data, len);
}

/*
 * The content hash of @p f failed after its chunks were read unhashed: the
 * first chunk whose own check fails (BKR_ECORRUPT), read again, is named
 * instead (its error is set); 0 when no chunk is found corrupt.
 */
static int blame_chunk(const bkr_walk_file *f)
{
	for (size_t i = 0; i < f->nchunks; i++) {
		uint8_t *data = NULL;
		size_t len = 0;
		int err = read_chunk(f->deferred, f, i, true, &data, &len);
		free(data);
		if (err == BKR_ECORRUPT)
			return err;
		if (err < 0)
			bkr_error_clear(); /* not the answer: the content hash's own error is */
	}
	return 0;
}

int bkr_walk_file_put(bkr_walk_file *f, const uint8_t *data, size_t len, bkr_walk_data_fn fn, void *ctx)
{
	size_t off = 0;
	int err;

	f->next++;
	while (off < len) {
		/* skip holes starting at pos */
		while (f->hi < f->nholes && f->holes[f->hi].offset <= f->pos) {
			const bkr_hole *ho = &f->holes[f->hi];
			if (ho->offset + ho->length > f->pos) {
				if (f->h)
					bkr_digest_zeros(f->h, ho->offset + ho->length - f->pos);
				f->pos = ho->offset + ho->length;
			}
			f->hi++;
		}
		size_t run = len - off;
		if (f->hi < f->nholes && f->holes[f->hi].offset - f->pos < run)
			run = (size_t)(f->holes[f->hi].offset - f->pos);
		/* a malformed entry's chunks (or holes) reach past its size: never
		 * handed on, as readers size their buffers by it (bkr log -p) */
		if (f->pos > f->size || run > f->size - f->pos)
			return bkr_error_set(BKR_ECORRUPT, "%s: chunks and holes cover more than its size, %llu bytes",
					     f->what, (unsigned long long)f->size);
		if (f->h)
			bkr_digest_update(f->h, data + off, run);
		if (fn && (err = fn(ctx, f->pos, data + off, run)) < 0)
			return err;
		f->pos += run;
		off += run;
	}
	return 0;
}

int bkr_walk_file_finish(bkr_walk_file *f)
{
	char hex[BKR_ID_HEX];

	for (; f->hi < f->nholes; f->hi++) {
		const bkr_hole *ho = &f->holes[f->hi];
		if (ho->offset + ho->length > f->pos) {
			if (f->h)
				bkr_digest_zeros(f->h, ho->offset + ho->length - f->pos);
			f->pos = ho->offset + ho->length;
		}
	}
	if (f->next != f->nchunks || f->pos != f->size)
		return bkr_error_set(BKR_ECORRUPT, "%s: chunks and holes cover %llu bytes, size is %llu", f->what,
				     (unsigned long long)f->pos, (unsigned long long)f->size);
	if (f->h) {
		bkr_id got;
		bkr_digest_final(f->h, &got);
		bkr_digest_free(f->h);
		f->h = NULL;
		if (bkr_id_cmp(&got, &f->content) != 0) {
			int err;
			if (f->deferred && (err = blame_chunk(f)) < 0)
				return err;
			bkr_id_to_hex(&f->content, hex);
			return bkr_error_set(BKR_ECORRUPT, "%s: content hash mismatch (expected %s)", f->what, hex);
		}
	}
	return 0;
}

void bkr_walk_file_free(bkr_walk_file *f)
{
	if (!f)
		return;
	free(f->what);
	free(f->chunks);
	free(f->holes);
	bkr_digest_free(f->h);
	free(f);
}

int bkr_walk_read_file(bkr_repo *r, const bkr_tree *leaf, uint32_t li, const char *what,
		       bkr_walk_data_fn fn, void *ctx)
{
	bkr_walk_file *f = NULL;
	uint8_t *data = NULL;
	size_t len = 0;
	int err;

	if ((err = bkr_walk_file_new(&f, leaf, li, what)) < 0)
		goto done;
	for (size_t c = 0; c < f->nchunks; c++) {
		if ((err = bkr_walk_file_read_chunk(r, f, c, &data, &len)) < 0 ||
		    (err = bkr_walk_file_put(f, data, len, fn, ctx)) < 0)
			goto done;
		free(data);
		data = NULL;
	}
	err = bkr_walk_file_finish(f);
done:
	free(data);
	bkr_walk_file_free(f);
	return err;
}

bool bkr_walk_source_is_file(bkr_repo *r, const bkr_id *root, const char *source, const char *path)
{
	const char *base = strrchr(path, '/');
	const bkr_walk_item *it;
	bkr_walk *w = NULL;
	struct stat st;
	size_t n = 0;
	bool file = false;
	int rc;

	if (stat(path, &st) == 0)
		return !S_ISDIR(st.st_mode);
	base = base ? base + 1 : path;
	if (!*base || bkr_walk_new(&w, r, root, source, BKR_WALK_NO_RECURSE) < 0) {
		bkr_error_clear();
		return false;
	}
	while ((rc = bkr_walk_next(w, &it)) > 0)
		if (n++ == 0)
			file = it->entry.type != BKR_FT_DIR && it->entry.name_len == strlen(base) &&
			       !memcmp(it->entry.name, base, it->entry.name_len);
	bkr_walk_free(w);
	if (rc < 0)
		bkr_error_clear();
	return rc == 0 && file && n == 1;
}
