/** @file
 * The in-memory tree of a backup run: nodes (one per entry found by the
 * scan, owned by c->all), their paths and tree entries, the uid/gid name
 * cache and the (dev, ino) table that groups hardlinks.
 */
#include "backup_i.h"

#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>

#include "bkr/entry.h"
#include "bkr/error.h"

/* "source/dir/file" of @p n; malloc'd (NULL on OOM). */
char *bkr_bk_node_path(const node *n)
{
	size_t len = 0;
	for (const node *p = n; p; p = p->parent)
		len += p->name_len + (p->parent ? 1 : 0);
	char *s = malloc(len + 1);
	if (!s)
		return NULL;
	s[len] = '\0';
	size_t pos = len;
	for (const node *p = n; p; p = p->parent) {
		pos -= p->name_len;
		memcpy(s + pos, p->name, p->name_len);
		if (p->parent)
			s[--pos] = '/';
	}
	return s;
}

/* A malloc'd copy of @p len bytes, or NULL. */
void *bkr_bk_memdup(const void *p, size_t len)
{
	void *q = malloc(len);
	if (q)
		memcpy(q, p, len);
	return q;
}

void bkr_bk_node_free(node *n)
{
	if (!n)
		return;
	free(n->name);
	free(n->target);
	for (size_t i = 0; i < n->nxattrs; i++) {
		free((void *)n->xattrs[i].name);
		free((void *)n->xattrs[i].value);
	}
	free(n->xattrs);
	free(n->kids);
	free(n->holes);
	free(n->chunks);
	free(n);
}

node *bkr_bk_node_new(bctx *c, node *parent, const void *name, size_t len)
{
	node *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	if (!(n->name = malloc(len + 1))) {
		free(n);
		return NULL;
	}
	memcpy(n->name, name, len);
	n->name[len] = 0;
	n->name_len = len;
	n->parent = parent;
	if (c->nall == c->allcap) {
		size_t cap = c->allcap ? c->allcap * 2 : 1024;
		node **a = realloc(c->all, cap * sizeof(*a));
		if (!a) {
			bkr_bk_node_free(n);
			return NULL;
		}
		c->all = a;
		c->allcap = cap;
	}
	c->all[c->nall++] = n;
	return n;
}

int bkr_bk_node_add_kid(node *dir, node *kid)
{
	if (dir->nkids == dir->kcap) {
		size_t cap = dir->kcap ? dir->kcap * 2 : 8;
		node **k = realloc(dir->kids, cap * sizeof(*k));
		if (!k)
			return bkr_error_oom();
		dir->kids = k;
		dir->kcap = cap;
	}
	dir->kids[dir->nkids++] = kid;
	return 0;
}

void bkr_bk_node_set_stat(node *n, const struct stat *st)
{
	bkr_entry e;

	bkr_entry_set_stat(&e, st);
	/* the scanner reads the types of a directory's entries, and the device
	 * and inode in its hardlink table, while workers re-stat the files they
	 * read (always still the same regular file: one replaced is scanned
	 * again): writing the same values again would be a data race
	 * (helgrind: scan.c's walk) */
	if (n->type != e.type)
		n->type = e.type;
	if (n->ino != e.inode)
		n->ino = e.inode;
	if (n->dev != (uint64_t)st->st_dev)
		n->dev = st->st_dev;
	n->mode = e.mode;
	n->uid = e.uid;
	n->gid = e.gid;
	n->nlink = e.nlink;
	n->size = e.size;
	n->blocks = e.blocks;
	n->rdev = e.rdev;
	n->mtime_ns = e.mtime_ns;
	n->ctime_ns = e.ctime_ns;
}

void bkr_bk_node_entry(const node *n, bkr_entry *e)
{
	const node *src = n->alias ? n->alias : n;

	memset(e, 0, sizeof(*e));
	e->name = n->name;
	e->name_len = n->name_len;
	e->type = n->type;
	e->mode = n->mode;
	e->uid = n->uid;
	e->gid = n->gid;
	e->user = (const uint8_t *)n->user;
	e->user_len = strlen(n->user);
	e->group = (const uint8_t *)n->group;
	e->group_len = strlen(n->group);
	e->mtime_ns = n->mtime_ns;
	e->ctime_ns = n->ctime_ns;
	e->size = n->size;
	e->blocks = n->blocks;
	e->rdev = n->rdev;
	e->inode = n->ino;
	e->nlink = n->nlink;
	e->link_group = n->link_group;
	e->target = n->target;
	e->target_len = n->target_len;
	e->xattrs = n->xattrs;
	e->nxattrs = n->nxattrs;
	if (n->type == BKR_FT_FILE) {
		e->holes = src->holes;
		e->nholes = src->nholes;
		e->chunks = src->chunks;
		e->nchunks = src->nchunks;
		e->content = src->content;
		e->sparse_digest = src->sparse_digest;
		if (n->alias) {
			/* a later link: the group's data; its stat is the group's too */
			e->size = src->size;
			e->mtime_ns = src->mtime_ns;
			e->ctime_ns = src->ctime_ns;
			e->blocks = src->blocks;
		}
	}
	if (n->type == BKR_FT_DIR)
		e->subtree = n->subtree;
}

const char *bkr_bk_name(name_ent **tab, uint32_t id, bool group)
{
	name_ent **b = &tab[id % 64];
	for (name_ent *e = *b; e; e = e->next)
		if (e->id == id)
			return e->name;
	char buf[4096];
	const char *nm = "";
	if (group) {
		struct group g, *res = NULL;
		if (getgrgid_r(id, &g, buf, sizeof(buf), &res) == 0 && res)
			nm = res->gr_name;
	} else {
		struct passwd p, *res = NULL;
		if (getpwuid_r(id, &p, buf, sizeof(buf), &res) == 0 && res)
			nm = res->pw_name;
	}
	name_ent *e = calloc(1, sizeof(*e));
	if (!e)
		return "";
	if (!(e->name = strdup(nm))) {
		free(e);
		return "";
	}
	e->id = id;
	e->next = *b;
	*b = e;
	return e->name;
}

void bkr_bk_names_free(name_ent **tab)
{
	for (int i = 0; i < 64; i++) {
		name_ent *e = tab[i];
		while (e) {
			name_ent *nx = e->next;
			free(e->name);
			free(e);
			e = nx;
		}
	}
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

uint64_t bkr_bk_link_key(uint64_t dev, uint64_t ino)
{
	uint64_t k = mix64(mix64(dev) ^ ino);
	return k ? k : 1;
}

/* First node of the (dev, ino) group, after inserting @p n when new. */
node *bkr_bk_link_find_or_add(link_table *t, node *n)
{
	if (t->n * 2 >= t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 256;
		node **s = calloc(cap, sizeof(*s));
		if (!s)
			return NULL;
		for (size_t i = 0; i < t->cap; i++) {
			node *x = t->slots[i];
			if (!x)
				continue;
			size_t j = bkr_bk_link_key(x->dev, x->ino) & (cap - 1);
			while (s[j])
				j = (j + 1) & (cap - 1);
			s[j] = x;
		}
		free(t->slots);
		t->slots = s;
		t->cap = cap;
	}
	size_t j = bkr_bk_link_key(n->dev, n->ino) & (t->cap - 1);
	while (t->slots[j]) {
		if (t->slots[j]->dev == n->dev && t->slots[j]->ino == n->ino)
			return t->slots[j];
		j = (j + 1) & (t->cap - 1);
	}
	t->slots[j] = n;
	t->n++;
	return n;
}

void bkr_bk_link_remove(link_table *t, node *n)
{
	size_t mask = t->cap - 1, j;

	if (!t->cap)
		return;
	for (j = bkr_bk_link_key(n->dev, n->ino) & mask; t->slots[j] && t->slots[j] != n; j = (j + 1) & mask)
		;
	if (!t->slots[j])
		return;
	t->slots[j] = NULL;
	t->n--;
	/* the rest of the run of slots moves to where a lookup finds it now */
	for (j = (j + 1) & mask; t->slots[j]; j = (j + 1) & mask) {
		node *x = t->slots[j];
		size_t i = bkr_bk_link_key(x->dev, x->ino) & mask;
		t->slots[j] = NULL;
		while (t->slots[i])
			i = (i + 1) & mask;
		t->slots[i] = x;
	}
}
