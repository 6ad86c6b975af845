/** @file
 * Differences between two backups, or a backup and the live filesystem
 * (diff.h).  Both sides are merged by name in tree order (bytewise, shorter
 * first); directories are descended with an explicit heap stack.  Between
 * two backups an identical subtree id ends the descent at once.
 */
#include "array.h"
#include "pathbuf.h"
#include "bkr/digest.h"
#include "bkr/diff.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bkr/entry.h"
#include "bkr/error.h"
#include "bkr/hash.h"
#include "bkr/pattern.h"
#include "bkr/walk.h"

typedef struct {
	bkr_repo *repo;
	const bkr_diff_options *o;
	bkr_diff_stats st;
	bkr_pathbuf path;
	uint64_t files_done, files_total; /* live: the backup's files compared (o->progress) */
} dctx;

/* One more of the backup's files compared with its live one (@p read: the live
 * file was read to hash it): o->progress every 64 files, and after each read. */
static void live_progress(dctx *c, bool read)
{
	c->files_done++;
	if (c->o->progress && (read || c->files_done % 64 == 0))
		c->o->progress(c->o->progress_ctx, "comparing", "files", c->files_done, c->files_total, 0, 0);
}

static int name_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	int r = memcmp(a, b, al < bl ? al : bl);
	return r ? r : (al > bl) - (al < bl);
}

static int path_set(dctx *c, size_t base, const uint8_t *name, size_t len, size_t *out)
{
	return bkr_pathbuf_set(&c->path, base, name, len, out);
}

static int report(dctx *c, bkr_diff_kind kind, unsigned what, const bkr_entry *a, const bkr_entry *b)
{
	bkr_diff_change ch = { kind, what, c->path.p, a, b };

	if (kind == BKR_DIFF_ADDED)
		c->st.added++;
	else if (kind == BKR_DIFF_REMOVED)
		c->st.removed++;
	else {
		c->st.modified++;
		if (what & (BKR_DIFF_CONTENT | BKR_DIFF_TYPE))
			c->st.content_modified++;
		else
			c->st.metadata_modified++;
	}
	return c->o->callback ? c->o->callback(c->o->ctx, &ch) : 0;
}

/* Every entry under the directory at c->path.p (root tree @p root), as @p kind. */
static int report_subtree(dctx *c, const bkr_id *root, bkr_diff_kind kind)
{
	bkr_walk *w = NULL;
	const bkr_walk_item *it;
	int err;
	char *save = strdup(c->path.p);

	if (!save)
		return bkr_error_oom();
	if ((err = bkr_walk_new(&w, c->repo, root, save, 0)) < 0)
		goto done;
	while ((err = bkr_walk_next(w, &it)) > 0) {
		char *keep = c->path.p;
		c->path.p = (char *)it->path;
		err = report(c, kind, 0, kind == BKR_DIFF_REMOVED ? &it->entry : NULL,
			     kind == BKR_DIFF_ADDED ? &it->entry : NULL);
		c->path.p = keep;
		if (err < 0)
			goto done;
	}
done:
	bkr_walk_free(w);
	strcpy(c->path.p, save);
	free(save);
	return err;
}

static unsigned meta_diff(const bkr_entry *a, const bkr_entry *b, bool live)
{
	unsigned w = 0;

	if (a->type != b->type)
		return BKR_DIFF_TYPE | BKR_DIFF_CONTENT;
	if ((a->mode & 07777) != (b->mode & 07777))
		w |= BKR_DIFF_MODE;
	if (a->uid != b->uid || a->gid != b->gid)
		w |= BKR_DIFF_OWNER;
	if (a->type != BKR_FT_DIR && a->mtime_ns != b->mtime_ns)
		w |= BKR_DIFF_MTIME;
	if (a->type == BKR_FT_SYMLINK &&
	    name_cmp(a->target, a->target_len, b->target, b->target_len) != 0)
		w |= BKR_DIFF_CONTENT;
	if ((a->type == BKR_FT_CHR || a->type == BKR_FT_BLK) && a->rdev != b->rdev)
		w |= BKR_DIFF_OTHER;
	if (!live && (a->link_group != 0) != (b->link_group != 0))
		w |= BKR_DIFF_OTHER;
	return w;
}

/* ---- two trees ---------------------------------------------------------- */

typedef struct {
	bkr_dir *a, *b;
	uint64_t ia, ib, na, nb;
	size_t plen;
} tframe;

/* Whether the xattrs of @p la's entry @p ia and @p lb's @p ib differ (*@p d); <0 when either cannot be read. */
static int xattrs_differ(const bkr_tree *la, uint32_t ia, const bkr_tree *lb, uint32_t ib, bool *d)
{
	bkr_xattr *xa = NULL, *xb = NULL;
	size_t na = 0, nb = 0;
	int err;

	*d = false;
	if ((err = bkr_tree_xattrs(la, ia, &xa, &na)) < 0 || (err = bkr_tree_xattrs(lb, ib, &xb, &nb)) < 0) {
		bkr_error_prefix("xattrs");
		goto done;
	}
	*d = na != nb;
	for (size_t i = 0; i < na && !*d; i++) {
		*d = name_cmp(xa[i].name, xa[i].name_len, xb[i].name, xb[i].name_len) != 0 ||
		     xa[i].in_blob != xb[i].in_blob || xa[i].value_len != xb[i].value_len ||
		     (xa[i].in_blob ? bkr_id_cmp(&xa[i].blob, &xb[i].blob) != 0
				    : memcmp(xa[i].value, xb[i].value, xa[i].value_len) != 0);
	}
done:
	free(xa);
	free(xb);
	return err;
}

typedef struct {
	bkr_digest *d;
	uint64_t pos;
} redigest;

static int redigest_data(void *ctx, uint64_t offset, const uint8_t *data, size_t len)
{
	redigest *g = ctx;

	bkr_digest_zeros(g->d, offset - g->pos);
	bkr_digest_update(g->d, data, len);
	g->pos = offset + len;
	return 0;
}

/*
 * Whether files @p a and @p b (one size) hold the same bytes (*@p same);
 * <0 when the content read to tell cannot be read (never "differs").
 */
static int same_file_content(bkr_repo *r, const bkr_entry *a, const bkr_tree *la, uint32_t lia,
			     const bkr_entry *b, const bkr_tree *lb, uint32_t lib, bool *same)
{
	*same = false;
	if (a->sparse_digest == b->sparse_digest) {
		*same = bkr_id_cmp(&a->content, &b->content) == 0;
		return 0;
	}
	if (!r || !la || !lb)
		return 0;
	/* the digests are of two forms: the sparse form of the other one's bytes */
	const bkr_entry *plain = a->sparse_digest ? b : a, *sparse = a->sparse_digest ? a : b;
	redigest g = { bkr_digest_new(BKR_DIGEST_SPARSE), 0 };
	bkr_id got;
	int err;

	if (!g.d)
		return bkr_error_oom();
	if ((err = bkr_walk_read_file(r, plain == a ? la : lb, plain == a ? lia : lib, NULL, redigest_data, &g)) == 0) {
		bkr_digest_zeros(g.d, plain->size - g.pos);
		bkr_digest_final(g.d, &got);
		*same = bkr_id_cmp(&got, &sparse->content) == 0;
	}
	bkr_digest_free(g.d);
	return err < 0 ? err : 0;
}

int bkr_diff_entries(bkr_repo *r, const bkr_entry *a, const bkr_tree *la, uint32_t lia, const bkr_entry *b,
		     const bkr_tree *lb, uint32_t lib, unsigned *what)
{
	bool same, differ;
	int err;

	*what = meta_diff(a, b, false);
	if (*what & BKR_DIFF_TYPE)
		return 0;
	if (a->type == BKR_FT_FILE) {
		if (a->size != b->size)
			*what |= BKR_DIFF_CONTENT;
		else if ((err = same_file_content(r, a, la, lia, b, lb, lib, &same)) < 0)
			return err;
		else if (!same)
			*what |= BKR_DIFF_CONTENT;
	}
	if (la && lb) {
		if ((err = xattrs_differ(la, lia, lb, lib, &differ)) < 0)
			return err;
		if (differ)
			*what |= BKR_DIFF_XATTRS;
	}
	return 0;
}

static int diff_dirs(dctx *c, const bkr_id *old_root, const bkr_id *new_root,
		     const bkr_id *sa, const bkr_id *sb, size_t plen0)
{
	tframe *stack = NULL;
	size_t depth = 0, cap = 32;
	int err = 0;

	if (bkr_id_cmp(sa, sb) == 0)
		return 0;
	if (!(stack = calloc(cap, sizeof(*stack))))
		return bkr_error_oom();
	depth = 1; /* from here on, done: frees what stack[0] holds (one tree may fail to load) */
	if ((err = bkr_dir_open(&stack[0].a, sa, bkr_repo_load_tree, c->repo)) < 0 ||
	    (err = bkr_dir_open(&stack[0].b, sb, bkr_repo_load_tree, c->repo)) < 0)
		goto done;
	stack[0].na = bkr_dir_count(stack[0].a);
	stack[0].nb = bkr_dir_count(stack[0].b);
	stack[0].plen = plen0;
	while (depth > 0) {
		tframe *f = &stack[depth - 1];
		if (f->ia >= f->na && f->ib >= f->nb) {
			bkr_dir_free(f->a);
			bkr_dir_free(f->b);
			depth--;
			continue;
		}
		bkr_entry ea, eb;
		const bkr_tree *la = NULL, *lb = NULL;
		uint32_t lia = 0, lib = 0;
		int cmp;
		if (f->ia < f->na && (err = bkr_dir_get(f->a, f->ia, &ea, &la, &lia)) < 0)
			goto done;
		if (f->ib < f->nb && (err = bkr_dir_get(f->b, f->ib, &eb, &lb, &lib)) < 0)
			goto done;
		if (f->ia >= f->na)
			cmp = 1;
		else if (f->ib >= f->nb)
			cmp = -1;
		else
			cmp = name_cmp(ea.name, ea.name_len, eb.name, eb.name_len);
		const bkr_entry *e = cmp <= 0 ? &ea : &eb;
		size_t plen = 0;
		if ((err = path_set(c, f->plen, e->name, e->name_len, &plen)) < 0)
			goto done;
		if (cmp < 0) {
			f->ia++;
			if ((err = report(c, BKR_DIFF_REMOVED, 0, &ea, NULL)) < 0)
				goto done;
			if (ea.type == BKR_FT_DIR && c->o->report_children &&
			    (err = report_subtree(c, old_root, BKR_DIFF_REMOVED)) < 0)
				goto done;
			continue;
		}
		if (cmp > 0) {
			f->ib++;
			if ((err = report(c, BKR_DIFF_ADDED, 0, NULL, &eb)) < 0)
				goto done;
			if (eb.type == BKR_FT_DIR && c->o->report_children &&
			    (err = report_subtree(c, new_root, BKR_DIFF_ADDED)) < 0)
				goto done;
			continue;
		}
		f->ia++;
		f->ib++;
		unsigned what;
		if ((err = bkr_diff_entries(c->repo, &ea, la, lia, &eb, lb, lib, &what)) < 0) {
			bkr_error_prefix("%s", c->path.p);
			goto done;
		}
		if (ea.type == BKR_FT_DIR && eb.type == BKR_FT_DIR) {
			/* directories: own metadata here, contents below */
			if (what && (err = report(c, BKR_DIFF_MODIFIED, what, &ea, &eb)) < 0)
				goto done;
			if (bkr_id_cmp(&ea.subtree, &eb.subtree) == 0)
				continue;
			if (depth == cap) {
				tframe *s = realloc(stack, cap * 2 * sizeof(*s));
				if (!s) {
					err = bkr_error_oom();
					goto done;
				}
				stack = s;
				cap *= 2;
			}
			tframe *nf = &stack[depth];
			memset(nf, 0, sizeof(*nf));
			nf->plen = plen;
			if ((err = bkr_dir_open(&nf->a, &ea.subtree, bkr_repo_load_tree, c->repo)) < 0)
				goto done;
			if ((err = bkr_dir_open(&nf->b, &eb.subtree, bkr_repo_load_tree, c->repo)) < 0) {
				bkr_dir_free(nf->a);
				goto done;
			}
			nf->na = bkr_dir_count(nf->a);
			nf->nb = bkr_dir_count(nf->b);
			depth++;
			continue;
		}
		if (what && (err = report(c, BKR_DIFF_MODIFIED, what, &ea, &eb)) < 0)
			goto done;
	}
done:
	while (depth > 0) {
		bkr_dir_free(stack[depth - 1].a);
		bkr_dir_free(stack[depth - 1].b);
		depth--;
	}
	free(stack);
	return err;
}

static int diff_path(dctx *c, const bkr_id *old_root, const bkr_id *new_root, const char *path)
{
	bkr_entry ea, eb;
	bkr_dir *ha = NULL, *hb = NULL;
	const bkr_tree *la = NULL, *lb = NULL;
	uint32_t lia = 0, lib = 0;
	int err, ra, rb;
	size_t plen = strlen(path);

	ra = bkr_walk_resolve(c->repo, old_root, path, &ea, &ha, &la, &lia);
	rb = bkr_walk_resolve(c->repo, new_root, path, &eb, &hb, &lb, &lib);
	if ((ra < 0 && ra != BKR_ENOTFOUND) || (rb < 0 && rb != BKR_ENOTFOUND)) {
		err = ra < 0 && ra != BKR_ENOTFOUND ? ra : rb;
		goto done;
	}
	bkr_error_clear();
	err = 0;
	if ((err = path_set(c, 0, (const uint8_t *)path, plen, &plen)) < 0)
		goto done;
	if (ra < 0 && rb < 0)
		goto done;
	if (ra < 0 || rb < 0) {
		bkr_diff_kind k = ra < 0 ? BKR_DIFF_ADDED : BKR_DIFF_REMOVED;
		const bkr_entry *e = ra < 0 ? &eb : &ea;
		if ((err = report(c, k, 0, ra < 0 ? NULL : &ea, rb < 0 ? NULL : &eb)) < 0)
			goto done;
		if (e->type == BKR_FT_DIR && c->o->report_children)
			err = report_subtree(c, ra < 0 ? new_root : old_root, k);
		goto done;
	}
	unsigned what;
	if ((err = bkr_diff_entries(c->repo, &ea, la, lia, &eb, lb, lib, &what)) < 0) {
		bkr_error_prefix("%s", path);
		goto done;
	}
	if (plen && what && (err = report(c, BKR_DIFF_MODIFIED, what, &ea, &eb)) < 0)
		goto done;
	if (ea.type == BKR_FT_DIR && eb.type == BKR_FT_DIR)
		err = diff_dirs(c, old_root, new_root, &ea.subtree, &eb.subtree, plen);
done:
	bkr_dir_free(ha);
	bkr_dir_free(hb);
	return err;
}

/* BKR_ENOTFOUND naming @p path when it is in neither tree (in one only is a change). */
static int path_in_either(bkr_repo *r, const bkr_id *old_root, const bkr_id *new_root, const char *path)
{
	bkr_entry e;
	bkr_dir *h = NULL;
	int err = bkr_walk_resolve(r, old_root, path, &e, &h, NULL, NULL);

	bkr_dir_free(h);
	h = NULL;
	if (err == BKR_ENOTFOUND) {
		err = bkr_walk_resolve(r, new_root, path, &e, &h, NULL, NULL);
		bkr_dir_free(h);
	}
	if (err == BKR_ENOTFOUND)
		return bkr_error_set(BKR_ENOTFOUND, "path '%s': in neither backup", path);
	if (err == 0)
		bkr_error_clear(); /* the old tree's "no such file" */
	return err;
}

int bkr_diff_trees(bkr_repo *r, const bkr_id *old_root, const bkr_id *new_root,
		   const bkr_diff_options *o, bkr_diff_stats *stats)
{
	dctx c = { 0 };
	int err = 0;
	static const bkr_diff_options defaults = BKR_DIFF_OPTIONS_INIT;

	if (!o)
		o = &defaults;
	if (o->version != BKR_DIFF_OPTIONS_VERSION)
		return bkr_error_set(BKR_EINVAL, "diff: unsupported options version");
	c.repo = r;
	c.o = o;
	/* every path first: one in neither tree is an error before any change is reported */
	for (size_t i = 0; i < o->npaths; i++)
		if ((err = path_in_either(r, old_root, new_root, o->paths[i])) < 0)
			return err;
	if (!o->npaths) {
		err = diff_path(&c, old_root, new_root, "");
	} else {
		for (size_t i = 0; i < o->npaths && err >= 0; i++)
			err = diff_path(&c, old_root, new_root, o->paths[i]);
	}
	if (stats)
		*stats = c.st;
	bkr_pathbuf_free(&c.path);
	return err < 0 ? err : 0;
}

int bkr_diff_backups(bkr_repo *r, const bkr_manifest *old_m, const bkr_manifest *new_m,
		     const bkr_diff_options *o, bkr_diff_stats *stats)
{
	return bkr_diff_trees(r, &old_m->tree, &new_m->tree, o, stats);
}

/* ---- backup vs live ----------------------------------------------------- */

typedef struct {
	char *name;
	size_t len;
	struct stat st;
} live_ent;

static int live_cmp(const void *x, const void *y)
{
	const live_ent *a = x, *b = y;
	return name_cmp((const uint8_t *)a->name, a->len, (const uint8_t *)b->name, b->len);
}

static void live_free(live_ent *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

static void stat_entry(const live_ent *l, bkr_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->name = (const uint8_t *)l->name;
	e->name_len = l->len;
	bkr_entry_set_stat(e, &l->st);
}

/* Entries of directory @p fd (all, or only @p only), excludes applied, sorted by name. */
static int read_live_dir(int fd, const bkr_source_spec *src, const char *rel, const char *only,
			 live_ent **out, size_t *n)
{
	int dfd = dup(fd);
	DIR *d;
	struct dirent *de;
	live_ent *v = NULL;
	size_t cnt = 0, cap = 0;
	int err;

	*out = NULL;
	*n = 0;
	if (dfd < 0 || !(d = fdopendir(dfd))) {
		if (dfd >= 0)
			close(dfd);
		return bkr_error_set_errno(errno, "diff: cannot list %s", rel);
	}
	while ((de = readdir(d))) {
		const char *nm = de->d_name;
		if (nm[0] == '.' && (!nm[1] || (nm[1] == '.' && !nm[2])))
			continue;
		if (only && strcmp(nm, only) != 0)
			continue;
		if (src && src->nexcludes) {
			size_t need = strlen(rel) + strlen(nm) + 2;
			char *p = malloc(need);
			bool skip = false;
			if (p) {
				snprintf(p, need, "%s%s%s", rel, *rel ? "/" : "", nm);
				skip = bkr_pattern_match(src->excludes, src->nexcludes, p);
				free(p);
			}
			if (skip)
				continue;
		}
		if ((err = bkr_array_grow((void **)&v, &cap, cnt, sizeof(*v))) < 0) {
			closedir(d);
			live_free(v, cnt);
			return err;
		}
		if (fstatat(fd, nm, &v[cnt].st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (!(v[cnt].name = strdup(nm))) {
			closedir(d);
			live_free(v, cnt);
			return bkr_error_oom();
		}
		v[cnt].len = strlen(nm);
		cnt++;
	}
	closedir(d);
	if (cnt)
		qsort(v, cnt, sizeof(*v), live_cmp);
	*out = v;
	*n = cnt;
	return 0;
}

/*
 * The content digest of the live file @p name in @p dirfd in @p form: 0; 1
 * when it is gone or no longer a file (changed since it was listed); <0
 * when it cannot be read (never "differs").
 */
static int live_hash(int dirfd, const char *name, bkr_digest_form form, bkr_id *out)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC), err;

	if (fd < 0)
		return errno == ENOENT || errno == ELOOP ? 1 : bkr_error_set_errno(errno, "open");
	err = bkr_digest_fd(fd, form, out, NULL);
	close(fd);
	return err;
}

typedef struct {
	bkr_dir *a;
	uint64_t ia, na;
	live_ent *b;
	size_t ib, nb;
	int fd;
	size_t plen;    /* in c->path.p */
	size_t rlen;    /* relative to the source, for excludes */
} lframe;

/* The backup's tree @p sub against live directory @p dir: all of it, or only
 * its entry @p only (a file PATH, or a single-file source: the directory
 * holding the file, as backup keeps it).  @p only_backup: the backup's side
 * is limited to @p only too (a PATH); a single-file source's directory in the
 * backup holds its one file, under the name it had then, which is compared
 * whatever the file is called now.  @p base: the length of the path up to
 * the source's name (excludes match what follows it) */
static int diff_live_dir(dctx *c, const bkr_id *root, const bkr_id *sub, const char *dir, const char *only,
			 bool only_backup, const bkr_source_spec *src, size_t base)
{
	lframe *stack = NULL;
	size_t depth = 0, cap = 32;
	int err = 0, fd;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return bkr_error_set_errno(errno, "diff: cannot open %s", dir);
	if (!(stack = calloc(cap, sizeof(*stack)))) {
		close(fd);
		return bkr_error_oom();
	}
	stack[0].fd = fd;
	stack[0].plen = strlen(c->path.p);
	depth = 1;
	if ((err = bkr_dir_open(&stack[0].a, sub, bkr_repo_load_tree, c->repo)) < 0)
		goto done;
	stack[0].na = bkr_dir_count(stack[0].a);
	const char *rel0 = c->path.p + base;
	while (*rel0 == '/')
		rel0++;
	err = read_live_dir(fd, src, rel0, only, &stack[0].b, &stack[0].nb);
	if (err < 0)
		goto done;
	while (depth > 0) {
		lframe *f = &stack[depth - 1];
		if (f->ia >= f->na && f->ib >= f->nb) {
			bkr_dir_free(f->a);
			live_free(f->b, f->nb);
			close(f->fd);
			depth--;
			continue;
		}
		bkr_entry ea, eb;
		const bkr_tree *la = NULL;
		uint32_t lia = 0;
		int cmp;
		if (f->ia < f->na && (err = bkr_dir_get(f->a, f->ia, &ea, &la, &lia)) < 0)
			goto done;
		if (f->ia < f->na && depth == 1 && only && only_backup &&
		    (ea.name_len != strlen(only) || memcmp(ea.name, only, ea.name_len) != 0)) {
			f->ia++; /* one entry of a directory (a file PATH): the others are not compared */
			continue;
		}
		if (f->ib < f->nb)
			stat_entry(&f->b[f->ib], &eb);
		if (f->ia >= f->na)
			cmp = 1;
		else if (f->ib >= f->nb)
			cmp = -1;
		else
			cmp = name_cmp(ea.name, ea.name_len, eb.name, eb.name_len);
		const bkr_entry *e = cmp <= 0 ? &ea : &eb;
		size_t plen = 0;
		if ((err = path_set(c, f->plen, e->name, e->name_len, &plen)) < 0)
			goto done;
		if (cmp < 0) {
			f->ia++;
			if (ea.type != BKR_FT_DIR)
				live_progress(c, false);
			if ((err = report(c, BKR_DIFF_REMOVED, 0, &ea, NULL)) < 0)
				goto done;
			if (ea.type == BKR_FT_DIR && c->o->report_children &&
			    (err = report_subtree(c, root, BKR_DIFF_REMOVED)) < 0)
				goto done;
			continue;
		}
		const char *lname = f->b[f->ib].name;
		f->ib++;
		if (cmp > 0) {
			if ((err = report(c, BKR_DIFF_ADDED, 0, NULL, &eb)) < 0)
				goto done;
			continue;
		}
		f->ia++;
		char tgt[4096];
		if (eb.type == BKR_FT_SYMLINK) {
			ssize_t n = readlinkat(f->fd, lname, tgt, sizeof(tgt));
			if (n >= 0) {
				eb.target = (const uint8_t *)tgt;
				eb.target_len = (size_t)n;
			}
		}
		unsigned what = meta_diff(&ea, &eb, true);
		bool read = false;
		if (!(what & BKR_DIFF_TYPE) && ea.type == BKR_FT_FILE) {
			if (ea.size != eb.size) {
				what |= BKR_DIFF_CONTENT;
			} else if (ea.mtime_ns != eb.mtime_ns) {
				bkr_id h;
				int r = live_hash(f->fd, lname, ea.sparse_digest ? BKR_DIGEST_SPARSE : BKR_DIGEST_PLAIN, &h);
				if (r < 0) {
					bkr_error_prefix("%s", c->path.p);
					err = r;
					goto done;
				}
				if (r > 0 || bkr_id_cmp(&h, &ea.content) != 0)
					what |= BKR_DIFF_CONTENT;
				read = true;
			}
		}
		if (ea.type != BKR_FT_DIR)
			live_progress(c, read);
		if (what && (err = report(c, BKR_DIFF_MODIFIED, what, &ea, &eb)) < 0)
			goto done;
		if (ea.type != BKR_FT_DIR || eb.type != BKR_FT_DIR)
			continue;
		int kfd = openat(f->fd, lname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (kfd < 0 && (errno == ENOENT || errno == ELOOP || errno == ENOTDIR))
			continue; /* gone, or no longer a directory, since it was listed */
		if (kfd < 0) {
			/* its contents cannot be compared: not the same, nor different */
			err = bkr_error_set_errno(errno, "%s: open directory", c->path.p);
			goto done;
		}
		if (depth == cap) {
			lframe *s = realloc(stack, cap * 2 * sizeof(*s));
			if (!s) {
				close(kfd);
				err = bkr_error_oom();
				goto done;
			}
			stack = s;
			cap *= 2;
			f = &stack[depth - 1];
		}
		lframe *nf = &stack[depth];
		memset(nf, 0, sizeof(*nf));
		nf->fd = kfd;
		nf->plen = plen;
		depth++;
		if ((err = bkr_dir_open(&nf->a, &ea.subtree, bkr_repo_load_tree, c->repo)) < 0)
			goto done;
		nf->na = bkr_dir_count(nf->a);
		/* relative path (for excludes): the part after the source name */
		const char *rel = c->path.p + base;
		while (*rel == '/')
			rel++;
		if ((err = read_live_dir(kfd, src, rel, NULL, &nf->b, &nf->nb)) < 0)
			goto done;
	}
done:
	while (depth > 0) {
		bkr_dir_free(stack[depth - 1].a);
		live_free(stack[depth - 1].b, stack[depth - 1].nb);
		close(stack[depth - 1].fd);
		depth--;
	}
	free(stack);
	return err;
}

/* Split @p path into its directory (*dir, allocated) and last component (*name, in @p path). */
static int split_last(const char *path, char **dir, const char **name)
{
	const char *slash = strrchr(path, '/');

	*name = slash ? slash + 1 : path;
	*dir = slash ? strndup(path, slash != path ? (size_t)(slash - path) : 1) : strdup(".");
	return *dir ? 0 : bkr_error_oom();
}

/* Where one o->paths entry ("SOURCE/PATH") is: in the backup (in_backup, its
 * type and subtree), or else only in the live files (st) */
typedef struct {
	const bkr_manifest_source *ms;
	const bkr_source_spec *spec;  /* where the source is now, or NULL: where it was read from */
	size_t slen;                  /* the source's name in the path */
	char *live;                   /* the path in the live files */
	char *sdir;                   /* a single-file source: the directory holding it */
	const char *sfile;            /* ... and its file's name (in sdir's string) */
	bool in_backup;
	uint8_t type;                 /* in the backup */
	bkr_id subtree;
	struct stat st;               /* not in the backup: the live entry */
} live_path;

static void live_path_free(live_path *lp)
{
	free(lp->live);
	free(lp->sdir);
}

/*
 * Find @p p in backup @p m and the live files.  In the backup, or (not
 * there) in the live files and not left out by the source's excludes, as
 * backup would leave it out: 0 (an added path).  In neither: BKR_ENOTFOUND
 * naming it.  *lp is filled either way; live_path_free it.
 */
static int live_path_find(dctx *c, const bkr_manifest *m, const bkr_source_spec *sources, size_t nsources,
			  const char *p, live_path *lp)
{
	const char *slash = strchr(p, '/'), *rel, *dir, *base;
	bkr_dir *holder = NULL;
	const bkr_tree *leaf;
	uint32_t li;
	bkr_entry e;
	size_t dl, rl;
	int err;

	memset(lp, 0, sizeof(*lp));
	lp->slen = slash ? (size_t)(slash - p) : strlen(p);
	for (size_t i = 0; i < m->nsources && !lp->ms; i++)
		if (strlen(m->sources[i].source) == lp->slen && !memcmp(m->sources[i].source, p, lp->slen))
			lp->ms = &m->sources[i];
	if (!lp->ms)
		return bkr_error_set(BKR_ENOTFOUND, "path '%s': no source named '%.*s' in backup %s", p,
				     (int)lp->slen, p, m->backup_id);
	for (size_t j = 0; j < nsources; j++)
		if (!strcmp(sources[j].name, lp->ms->source))
			lp->spec = &sources[j];
	rel = slash ? slash + 1 : "";
	while (*rel == '/')
		rel++;
	dir = lp->spec ? lp->spec->path : lp->ms->path;
	if (!dir)
		return bkr_error_set(BKR_ENOTFOUND, "path '%s': backup %s does not say where source '%s' was",
				     p, m->backup_id, lp->ms->source);
	/* a single-file source's live entries are in the directory holding the file */
	if (bkr_walk_source_is_file(c->repo, &m->tree, lp->ms->source, dir) &&
	    (err = split_last(dir, &lp->sdir, &lp->sfile)) < 0)
		return err;
	base = lp->sdir ? lp->sdir : dir;
	dl = strlen(base);
	rl = strlen(rel);
	if (!(lp->live = malloc(dl + rl + 2)))
		return bkr_error_oom();
	snprintf(lp->live, dl + rl + 2, "%s%s%s", base, rl ? "/" : "", rel);
	err = bkr_walk_resolve(c->repo, &m->tree, p, &e, &holder, &leaf, &li);
	if (err == 0) {
		lp->in_backup = true;
		lp->type = e.type;
		lp->subtree = e.subtree;
	}
	bkr_dir_free(holder);
	if (err != BKR_ENOTFOUND)
		return err;
	/* not in the backup: added since, when it is in the live files */
	if (lstat(lp->live, &lp->st) == 0) {
		if (lp->spec && lp->spec->nexcludes &&
		    bkr_pattern_match_under(lp->spec->excludes, lp->spec->nexcludes, rel))
			return bkr_error_set(BKR_ENOTFOUND, "path '%s': not in backup %s, and source '%s' excludes %s",
					     p, m->backup_id, lp->ms->source, lp->live);
		bkr_error_clear(); /* the backup's "no such file" */
		return 0;
	}
	if (errno != ENOENT && errno != ENOTDIR)
		return bkr_error_set_errno(errno, "diff: cannot read %s", lp->live);
	return bkr_error_set(BKR_ENOTFOUND, "path '%s': in neither backup %s nor the live files (%s)", p,
			     m->backup_id, lp->live);
}

/* o->paths ("SOURCE/PATH"): each subtree alone, against where its source is
 * now (@p sources) or was read from; a path only in the live files is added.
 * Every path is found first: one in neither is an error before any change is
 * reported, as for two backups. */
static int diff_live_paths(dctx *c, const bkr_manifest *m, const bkr_source_spec *sources, size_t nsources)
{
	int err = 0;

	for (size_t k = 0; k < c->o->npaths && err >= 0; k++) {
		live_path lp;
		err = live_path_find(c, m, sources, nsources, c->o->paths[k], &lp);
		live_path_free(&lp);
	}
	for (size_t k = 0; k < c->o->npaths && err >= 0; k++) {
		const char *p = c->o->paths[k], *only = NULL;
		char *at = NULL, *ldir = NULL;
		size_t plen;
		live_path lp;
		bkr_id sub;

		if ((err = live_path_find(c, m, sources, nsources, p, &lp)) < 0) {
			live_path_free(&lp);
			break;
		}
		if (!(at = strdup(p))) {
			live_path_free(&lp);
			return bkr_error_oom();
		}
		if (!lp.in_backup) {
			/* only in the live files: added, as a path only in the newer of two backups */
			const char *name = strrchr(lp.live, '/');
			live_ent le = { .st = lp.st };
			bkr_entry eb;
			le.name = (char *)(name ? name + 1 : lp.live);
			le.len = strlen(le.name);
			stat_entry(&le, &eb);
			if ((err = path_set(c, 0, (const uint8_t *)at, strlen(at), &plen)) >= 0)
				err = report(c, BKR_DIFF_ADDED, 0, NULL, &eb);
			free(at);
			live_path_free(&lp);
			continue;
		}
		/* a directory: its tree against the live directory; anything else,
		 * or a directory below its source that is no directory in the live
		 * files now (deleted, or replaced by a file): that one entry of the
		 * directory holding it, so it is removed or changed type as in a
		 * whole --live diff, not a directory that cannot be opened */
		bool below = p[lp.slen + strspn(p + lp.slen, "/")] != '\0', whole = lp.type == BKR_FT_DIR;
		if (whole && below) {
			struct stat lst;
			if (lstat(lp.live, &lst) == 0 ? !S_ISDIR(lst.st_mode) : (errno == ENOENT || errno == ENOTDIR))
				whole = false;
		}
		if (whole) {
			sub = lp.subtree;
			if (!below)
				only = lp.sfile; /* the source itself: a single-file source's one file */
		} else {
			char *cut;
			bkr_dir *ph = NULL;
			const bkr_tree *leaf;
			uint32_t li;
			bkr_entry pe;
			for (size_t n = strlen(at); n > 1 && at[n - 1] == '/';)
				at[--n] = '\0'; /* "dir/" */
			for (size_t n = strlen(lp.live); n > 1 && lp.live[n - 1] == '/';)
				lp.live[--n] = '\0';
			cut = strrchr(at, '/');
			*cut = 0; /* below its source (a source is a directory in the backup): compared
				     as the one entry of its parent directory */
			if ((err = bkr_walk_resolve(c->repo, &m->tree, at, &pe, &ph, &leaf, &li)) == 0)
				sub = pe.subtree;
			bkr_dir_free(ph);
			if (err >= 0)
				err = split_last(lp.live, &ldir, &only);
		}
		if (err >= 0 && (err = path_set(c, 0, (const uint8_t *)at, strlen(at), &plen)) >= 0)
			err = diff_live_dir(c, &m->tree, &sub, ldir ? ldir : lp.live, only, !whole, lp.spec, lp.slen);
		free(at);
		free(ldir);
		live_path_free(&lp);
	}
	return err;
}

int bkr_diff_live(bkr_repo *r, const bkr_manifest *m, const bkr_source_spec *sources,
		  size_t nsources, const bkr_diff_options *o, bkr_diff_stats *stats)
{
	dctx c = { 0 };
	int err = 0;
	static const bkr_diff_options defaults = BKR_DIFF_OPTIONS_INIT;

	if (!o)
		o = &defaults;
	if (o->version != BKR_DIFF_OPTIONS_VERSION)
		return bkr_error_set(BKR_EINVAL, "diff: unsupported options version");
	c.repo = r;
	c.o = o;
	if (o->npaths) {
		err = diff_live_paths(&c, m, sources, nsources);
		goto out;
	}
	for (size_t i = 0; i < m->nsources; i++)
		c.files_total += m->sources[i].files_backed_up;
	for (size_t i = 0; i < m->nsources && err >= 0; i++) {
		const bkr_manifest_source *ms = &m->sources[i];
		const bkr_source_spec *spec = NULL;
		for (size_t j = 0; j < nsources; j++)
			if (strcmp(sources[j].name, ms->source) == 0)
				spec = &sources[j];
		const char *dir = spec ? spec->path : ms->path, *only = NULL;
		char *parent = NULL;
		size_t plen = 0;
		if (!dir)
			continue;
		if ((err = path_set(&c, 0, (const uint8_t *)ms->source, strlen(ms->source), &plen)) < 0)
			break;
		/* a single-file source (also one deleted since): that one entry of
		 * the directory holding it, as backup keeps it */
		if (bkr_walk_source_is_file(r, &m->tree, ms->source, dir) && (err = split_last(dir, &parent, &only)) < 0)
			break;
		err = diff_live_dir(&c, &m->tree, &ms->tree, parent ? parent : dir, only, false, spec, strlen(ms->source));
		free(parent);
	}
out:
	/* the end: every file compared (a removed directory's were not walked one by one) */
	if (err >= 0 && o->progress)
		o->progress(o->progress_ctx, "comparing", "files", c.files_done, c.files_total ? c.files_done : 0, 0, 0);
	if (stats)
		*stats = c.st;
	bkr_pathbuf_free(&c.path);
	return err < 0 ? err : 0;
}
