/** @file
 * The history of one path across backups (history.h).
 *
 * The path is split into its components once.  For each backup the state
 * of every level (the directory's tree id, its open bkr_dir, the entry
 * found in it) is computed from the backup before: a level whose tree id
 * is the previous backup's takes that level over as it is (no read, and
 * the entry is the same), any other level is opened and searched.  When the
 * last level was taken over the path is unchanged without a comparison;
 * otherwise the two entries are compared with bkr_diff_entries.  Then the
 * previous backup's levels that were not taken over are released.
 *
 * The directories above the last component are resolved first, one level
 * at a time over every backup (resolve), the first from the manifest's
 * source subtree ids where the caller gave them (no root tree read); a
 * level's trees are advised a window ahead of being read, so a cold walk keeps the device busy with
 * many reads at once, then the walk proper runs over the last level alone
 * from the resolved directories.  Where a tree on the way cannot be read,
 * the whole path is walked instead, which reports it (BKR_HISTORY_ERROR).
 * A backup marked skip (it does not hold the path's source) gets no item
 * and the levels of the backup before stay the ones compared with.
 */
#include "bkr/history.h"

#include <stdlib.h>
#include <string.h>

#include "bkr/diff.h"
#include "bkr/error.h"

/* one level of the path in one backup */
typedef struct {
	bool open;            /* d/holder valid (released unless taken over) */
	bkr_id tree;          /* the directory searched at this level */
	bkr_dir *d;
	void *holder;
	bool found;           /* the component is in it */
	bkr_entry e;
	const bkr_tree *leaf;
	uint32_t li;
	uint64_t index;
	bool shared;          /* taken over from the backup before */
} level;

typedef struct {
	bkr_repo *repo;
	const bkr_history_dirs *dirs;
	const char **comp;    /* the path's components */
	size_t *clen;
	size_t depth;
	level *prev, *cur;
} hctx;

const char *bkr_history_change_name(bkr_history_change c)
{
	static const char *const names[] = { "absent", "added", "removed", "content", "metadata",
					     "unchanged", "error" };
	return (unsigned)c < sizeof(names) / sizeof(*names) ? names[c] : "?";
}

/* trees advised ahead of the one being read: a deep queue, a bounded page cache */
#define ADVISE_AHEAD 256
/* A backup's root tree is the last of its pack, its sources' directories
 * just before it (children first): advised with the root, one read each. */
#define ROOT_CHILDREN (16u << 10)

static int repo_open(void *ctx, const bkr_id *id, bkr_dir **d, void **holder)
{
	int err = bkr_dir_open(d, id, bkr_repo_load_tree_only, ctx);
	*holder = err < 0 ? NULL : *d;
	return err;
}

static void repo_release(void *ctx, void *holder)
{
	(void)ctx;
	bkr_dir_free(holder);
}

static void level_release(hctx *h, level *l)
{
	if (l->open && l->holder)
		h->dirs->release(h->dirs->ctx, l->holder);
	memset(l, 0, sizeof(*l));
}

/* Split @p path into components ("" and "." skipped, ".." refused). */
static int split(hctx *h, const char *whole)
{
	const char *path = whole;
	size_t n = 0, cap = 1;

	for (const char *p = path; *p; p++)
		cap += *p == '/';
	if (!(h->comp = calloc(cap, sizeof(*h->comp))) || !(h->clen = calloc(cap, sizeof(*h->clen))))
		return bkr_error_oom();
	while (*path) {
		const char *end = strchr(path, '/');
		size_t len = end ? (size_t)(end - path) : strlen(path);
		if (len == 2 && path[0] == '.' && path[1] == '.')
			return bkr_error_set(BKR_EINVAL, "path '%s': '..' is not allowed", whole);
		if (len && !(len == 1 && path[0] == '.')) {
			h->comp[n] = path;
			h->clen[n++] = len;
		}
		path += len;
		if (*path == '/')
			path++;
	}
	h->depth = n;
	return 0;
}

/* The subtree id of the source the path starts with, from @p b's manifest
 * (a backup's root only; never a zero id), or NULL: the root tree is read. */
static const bkr_id *source_tree(const hctx *h, const bkr_history_backup *b)
{
	if (b->inner || !h->depth)
		return NULL;
	for (size_t j = 0; j < b->nsources; j++) {
		const char *name = b->sources[j].source;
		if (name && strlen(name) == h->clen[0] && !memcmp(name, h->comp[0], h->clen[0]) &&
		    !bkr_id_is_zero(&b->sources[j].tree))
			return &b->sources[j].tree;
	}
	return NULL;
}

/* Advise the trees of b[*next .. i + ADVISE_AHEAD) that are not their
 * predecessor's (a backup's root tree with its sources' directories), nor
 * resolved from the manifest when @p from_sources. */
static void advise_ahead(hctx *h, const bkr_history_backup *b, size_t n, size_t i, size_t *next, bool from_sources)
{
	for (; *next < n && *next < i + ADVISE_AHEAD; (*next)++) {
		const bkr_id *t = &b[*next].root;
		uint32_t before = b[*next].inner ? 0 : ROOT_CHILDREN;
		if (b[*next].skip || bkr_id_is_zero(t) || (*next > 0 && bkr_id_cmp(t, &b[*next - 1].root) == 0) ||
		    (from_sources && source_tree(h, &b[*next])))
			continue;
		if (h->dirs->advise)
			h->dirs->advise(h->dirs->ctx, t, before);
		else if (bkr_repo_advise_blob(h->repo, t, before) < 0)
			bkr_error_clear();
	}
}

/*
 * Into *out (n backups): each backup's tree of the directory holding the
 * path's last component (zero where a directory on the way is absent or
 * not a directory), found level by level.  0; 1 when a tree could not be
 * read or searched (*out NULL: the caller walks the whole path, which says
 * where); BKR_ENOMEM.
 */
static int resolve(hctx *h, const bkr_history_backup *b, size_t n, bkr_history_backup **out)
{
	bkr_history_backup *cur = malloc(n * sizeof(*cur)), *nxt = malloc(n * sizeof(*nxt)), *t;
	int err = 0;

	*out = NULL;
	if (!cur || !nxt) {
		err = bkr_error_oom();
		goto done;
	}
	memcpy(cur, b, n * sizeof(*cur));
	for (size_t k = 0; k + 1 < h->depth; k++) {
		size_t next = 0;
		for (size_t i = 0; i < n; i++) {
			bkr_dir *d;
			void *holder;
			bkr_entry e;
			const bkr_tree *leaf;
			uint32_t li;
			uint64_t index;

			const bkr_id *st = k == 0 ? source_tree(h, &cur[i]) : NULL;

			nxt[i] = (bkr_history_backup){ .id = cur[i].id, .inner = true, .skip = cur[i].skip };
			if (cur[i].skip || bkr_id_is_zero(&cur[i].root))
				continue;
			if (st) { /* the manifest says what the root tree's entry does */
				nxt[i].root = *st;
				continue;
			}
			if (i > 0 && !cur[i - 1].skip && bkr_id_cmp(&cur[i].root, &cur[i - 1].root) == 0) {
				nxt[i].root = nxt[i - 1].root;
				continue;
			}
			advise_ahead(h, cur, n, i, &next, k == 0);
			if ((err = h->dirs->open(h->dirs->ctx, &cur[i].root, &d, &holder)) < 0)
				goto done;
			err = bkr_dir_find(d, (const uint8_t *)h->comp[k], h->clen[k], &e, &leaf, &li, &index);
			if (err == 0 && e.type == BKR_FT_DIR)
				nxt[i].root = e.subtree;
			if (holder)
				h->dirs->release(h->dirs->ctx, holder);
			if (err == BKR_ENOTFOUND)
				err = 0;
			if (err < 0)
				goto done;
		}
		t = cur;
		cur = nxt;
		nxt = t;
	}
	*out = cur;
	cur = NULL;
done:
	free(cur);
	free(nxt);
	if (err < 0 && err != BKR_ENOMEM) {
		bkr_error_clear();
		return 1;
	}
	return err;
}

/* Level @p k of the current backup, in directory tree @p tree; 0, or a load
 * error (the level is then not found). */
static int fill_level(hctx *h, size_t k, const bkr_id *tree)
{
	level *c = &h->cur[k], *p = &h->prev[k];
	int err;

	if (p->open && bkr_id_cmp(&p->tree, tree) == 0) {
		*c = *p;
		c->shared = true;
		return 0;
	}
	memset(c, 0, sizeof(*c));
	c->tree = *tree;
	if ((err = h->dirs->open(h->dirs->ctx, tree, &c->d, &c->holder)) < 0)
		return err;
	c->open = true;
	err = bkr_dir_find(c->d, (const uint8_t *)h->comp[k], h->clen[k], &c->e, &c->leaf, &c->li, &c->index);
	if (err == BKR_ENOTFOUND) {
		bkr_error_clear();
		return 0;
	}
	if (err < 0)
		return err;
	c->found = true;
	return 0;
}

/* What changed from @p p to @p c; BKR_HISTORY_ERROR (*@p err) when the comparison cannot read what it must. */
static bkr_history_change compare(bkr_repo *r, const level *p, const level *c, unsigned *what, int *err)
{
	*what = 0;
	if (!p->found)
		return c->found ? BKR_HISTORY_ADDED : BKR_HISTORY_ABSENT;
	if (!c->found)
		return BKR_HISTORY_REMOVED;
	if (c->shared)
		return BKR_HISTORY_UNCHANGED;
	if ((*err = bkr_diff_entries(r, &p->e, p->leaf, p->li, &c->e, c->leaf, c->li, what)) < 0)
		return BKR_HISTORY_ERROR;
	if (p->e.type == BKR_FT_DIR && c->e.type == BKR_FT_DIR && bkr_id_cmp(&p->e.subtree, &c->e.subtree) != 0)
		*what |= BKR_DIFF_CONTENT;
	if (!*what)
		return BKR_HISTORY_UNCHANGED;
	return *what & (BKR_DIFF_CONTENT | BKR_DIFF_TYPE) ? BKR_HISTORY_CONTENT : BKR_HISTORY_METADATA;
}

/* The root itself: a synthetic directory whose subtree is the root tree. */
static int walk_root(const bkr_history_backup *b, size_t n, bkr_history_fn fn, void *ctx)
{
	bkr_entry e;
	int err;

	memset(&e, 0, sizeof(e));
	e.name = (const uint8_t *)"";
	e.type = BKR_FT_DIR;
	e.mode = 040755;
	e.nlink = 2;
	for (size_t i = 0, p = SIZE_MAX; i < n; i++) {
		if (b[i].skip)
			continue;
		bool had = p != SIZE_MAX && !bkr_id_is_zero(&b[p].root), has = !bkr_id_is_zero(&b[i].root);
		bkr_history_item it = { .backup = i, .entry = has ? &e : NULL };
		e.subtree = b[i].root;
		if (!has)
			it.change = had ? BKR_HISTORY_REMOVED : BKR_HISTORY_ABSENT;
		else if (!had)
			it.change = BKR_HISTORY_ADDED;
		else if (bkr_id_cmp(&b[p].root, &b[i].root) == 0)
			it.change = BKR_HISTORY_UNCHANGED;
		else {
			it.change = BKR_HISTORY_CONTENT;
			it.what = BKR_DIFF_CONTENT;
		}
		p = i;
		if ((err = fn(ctx, &it)) < 0)
			return err;
	}
	return 0;
}

bool bkr_history_holds(const bkr_manifest *m, const char *path)
{
	const char *slash;
	size_t len;

	while (*path == '/')
		path++;
	if (!*path)
		return true;
	slash = strchr(path, '/');
	len = slash ? (size_t)(slash - path) : strlen(path);
	for (size_t j = 0; j < m->nsources; j++)
		if (m->sources[j].source && strlen(m->sources[j].source) == len &&
		    !memcmp(m->sources[j].source, path, len))
			return true;
	return false;
}

bkr_history_backup bkr_history_backup_of(const bkr_manifest *m)
{
	return (bkr_history_backup){
		.id = m->backup_id, .root = m->tree, .sources = m->sources, .nsources = m->nsources,
	};
}

int bkr_history_walk(bkr_repo *r, const bkr_history_backup *b, size_t n, const char *path,
		     const bkr_history_dirs *dirs, bkr_history_fn fn, void *ctx)
{
	static const bkr_history_dirs from_repo = { repo_open, repo_release, NULL };
	bkr_history_dirs own = from_repo;
	hctx h = { .repo = r };
	bkr_history_backup *resolved = NULL;
	size_t adv = 0, skip = 0;
	int err = 0;

	own.ctx = r;
	h.dirs = dirs ? dirs : &own;
	if ((err = split(&h, path ? path : "")) < 0)
		goto done;
	if (h.depth == 0) {
		err = walk_root(b, n, fn, ctx);
		goto done;
	}
	if (h.depth > 1 && n > 0) {
		if ((err = resolve(&h, b, n, &resolved)) < 0)
			goto done;
		if (resolved) { /* the walk proper: the last level, from the resolved directories */
			b = resolved;
			skip = h.depth - 1;
			h.comp += skip;
			h.clen += skip;
			h.depth = 1;
		}
		err = 0;
	}
	if (!(h.prev = calloc(h.depth, sizeof(level))) || !(h.cur = calloc(h.depth, sizeof(level)))) {
		err = bkr_error_oom();
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		bkr_history_item it = { .backup = i };
		const bkr_id *tree = bkr_id_is_zero(&b[i].root) ? NULL : &b[i].root;
		level *last = &h.cur[h.depth - 1];
		int lerr = 0;

		if (b[i].skip) /* not a backup of the path's source: the state carries over */
			continue;
		if (tree)
			advise_ahead(&h, b, n, i, &adv, false);

		for (size_t k = 0; k < h.depth; k++) {
			if (!tree) {
				memset(&h.cur[k], 0, sizeof(level));
				continue;
			}
			if ((lerr = fill_level(&h, k, tree)) < 0) {
				bkr_error_prefix("backup %s, path '%s'", b[i].id, path);
				h.cur[k].found = false;
				for (size_t j = k + 1; j < h.depth; j++)
					memset(&h.cur[j], 0, sizeof(level));
				break;
			}
			tree = h.cur[k].found && h.cur[k].e.type == BKR_FT_DIR ? &h.cur[k].e.subtree : NULL;
		}
		if (lerr < 0) {
			it.change = BKR_HISTORY_ERROR;
			it.error = lerr;
		} else {
			it.change = compare(r, &h.prev[h.depth - 1], last, &it.what, &it.error);
			if (it.change == BKR_HISTORY_ERROR)
				bkr_error_prefix("backup %s, path '%s'", b[i].id, path);
		}
		if (last->found) {
			it.entry = &last->e;
			it.leaf = last->leaf;
			it.li = last->li;
			it.dir_tree = last->tree;
			it.index = last->index;
		}
		err = fn(ctx, &it);
		/* hand the levels taken over to the current backup, release the rest */
		for (size_t k = 0; k < h.depth; k++) {
			if (h.cur[k].shared) {
				h.prev[k].open = false;
				h.cur[k].shared = false;
			}
			level_release(&h, &h.prev[k]);
		}
		level *t = h.prev;
		h.prev = h.cur;
		h.cur = t;
		if (err < 0)
			goto done;
		bkr_error_clear();
	}
done:
	if (h.prev)
		for (size_t k = 0; k < h.depth; k++)
			level_release(&h, &h.prev[k]);
	free(h.prev);
	free(h.cur);
	if (h.comp)
		free(h.comp - skip);
	if (h.clen)
		free(h.clen - skip);
	free(resolved);
	return err < 0 ? err : 0;
}
