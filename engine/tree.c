/** @file
 * Directory trees (docs/format.md "Trees"): the builder, the parser of one
 * tree blob, and bkr_dir, a possibly paged directory read on demand.
 *
 * The builder encodes each entry into its record bytes as soon as it is added
 * (so it owns a copy of everything), sorts the records by name at the end, and
 * packs them into one leaf, or into leaf pages of at most BKR_TREE_PAGE_MAX
 * entries (and at most BKR_BLOB_MAX bytes) under inner nodes, level by level.
 *
 * The parser validates every byte a later call will use — header, offsets,
 * each record's fields and lengths, sort order, name rules — so the getters
 * that follow decode without further surprises.  All decoding goes through
 * bkr_get_* (the blob may be unaligned) and a bounded cursor.
 */
#include "bkr/tree.h"
#include "bkr/clock.h"
#include "bkr/error.h"
#include "bkr/format.h"
#include "bkr/utf8.h"

#include "array.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Helgrind does not understand C11 acquire/release: tell it about the one
 * publication of a loaded page (cheap no-ops outside valgrind).
 */
#if defined(__has_include)
#if __has_include(<valgrind/helgrind.h>)
#include <valgrind/helgrind.h>
#endif
#endif
#ifndef ANNOTATE_HAPPENS_BEFORE
#define ANNOTATE_HAPPENS_BEFORE(obj) ((void)(obj))
#define ANNOTATE_HAPPENS_AFTER(obj) ((void)(obj))
#define ANNOTATE_BENIGN_RACE_SIZED(p, size, why) ((void)(p))
#endif

#define TREE_LEAF 0
#define TREE_INNER 1
#define DIR_MAX_DEPTH 8 /* 4096^8 entries: far beyond any u32 count */

/* ---- names -------------------------------------------------------------- */

bool bkr_tree_name_valid(const uint8_t *name, size_t len)
{
	if (!name || len == 0 || len > UINT16_MAX)
		return false;
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return false;
	return memchr(name, '/', len) == NULL && memchr(name, '\0', len) == NULL;
}

/** Bytewise order, shorter first on a common prefix. */
static int name_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen ? 1 : 0;
}

/** A printable form of a name for messages (\xHH for odd bytes, cut at ~100). */
/* ---- decoding one record ------------------------------------------------ */

/** A bounded read cursor over a blob. */
struct cur {
	const uint8_t *p;
	size_t pos, lim;
	const char *what; /**< the field that did not fit, for messages */
};

static bool take(struct cur *c, size_t n, const char *what, const uint8_t **out)
{
	if (n > c->lim - c->pos) {
		c->what = what;
		return false;
	}
	*out = c->p + c->pos;
	c->pos += n;
	return true;
}

/** A u16 length followed by that many bytes. */
static bool take_bytes16(struct cur *c, const char *what, const uint8_t **out, size_t *len)
{
	const uint8_t *q;
	if (!take(c, 2, what, &q))
		return false;
	*len = bkr_get_u16(q);
	return take(c, *len, what, out);
}

/** A decoded leaf record: scalars plus pointers to its variable parts. */
struct rec {
	bkr_entry e;            /* arrays NULL, counts set */
	const uint8_t *xattrs;  /* nxattrs encoded xattrs */
	const uint8_t *holes;   /* nholes × 16 */
	const uint8_t *chunks;  /* nchunks × 36 */
	size_t end;             /* offset just past the record */
};

/**
 * Decode the leaf record at @p off (bounded by @p lim).  Bounds are always
 * checked; with @p check the semantic rules are too.  On failure *why says
 * what is wrong (a static string or one written into @p buf).
 */
static bool decode_leaf(const uint8_t *blob, size_t off, size_t lim, bool check,
			struct rec *r, const char **why)
{
	struct cur c = { blob, off, lim, NULL };
	bkr_entry *e = &r->e;
	const uint8_t *q;
	uint32_t n32;

	memset(r, 0, sizeof(*r));
	if (!take_bytes16(&c, "name past the end", &e->name, &e->name_len))
		goto trunc;
	if (check && !bkr_tree_name_valid(e->name, e->name_len)) {
		*why = "invalid name";
		return false;
	}
	if (!take(&c, 1 + 12, "type/mode/uid/gid past the end", &q))
		goto trunc;
	e->type = q[0];
	e->mode = bkr_get_u32(q + 1);
	e->uid = bkr_get_u32(q + 5);
	e->gid = bkr_get_u32(q + 9);
	if (check && (e->type < BKR_FT_FILE || e->type > BKR_FT_SOCK)) {
		*why = "bad file type";
		return false;
	}
	if (!take_bytes16(&c, "user past the end", &e->user, &e->user_len) ||
	    !take_bytes16(&c, "group past the end", &e->group, &e->group_len))
		goto trunc;
	if (!take(&c, 16 + 24 + 12 + 8, "times/sizes/inode/link group past the end", &q))
		goto trunc;
	e->mtime_ns = (int64_t)bkr_get_u64(q);
	e->ctime_ns = (int64_t)bkr_get_u64(q + 8);
	e->size = bkr_get_u64(q + 16);
	e->blocks = bkr_get_u64(q + 24);
	e->rdev = bkr_get_u64(q + 32);
	e->inode = bkr_get_u64(q + 40);
	e->nlink = bkr_get_u32(q + 48);
	e->link_group = bkr_get_u64(q + 52);
	if (!take_bytes16(&c, "target past the end", &e->target, &e->target_len))
		goto trunc;

	if (!take(&c, 2, "xattr count past the end", &q))
		goto trunc;
	e->nxattrs = bkr_get_u16(q);
	r->xattrs = blob + c.pos;
	for (size_t i = 0; i < e->nxattrs; i++) {
		const uint8_t *xn;
		size_t xlen;
		uint8_t kind;
		uint32_t vlen;
		if (!take_bytes16(&c, "xattr name past the end", &xn, &xlen) ||
		    !take(&c, 5, "xattr header past the end", &q))
			goto trunc;
		kind = q[0];
		vlen = bkr_get_u32(q + 1);
		if (check && (xlen == 0 || memchr(xn, '\0', xlen))) {
			*why = "invalid xattr name";
			return false;
		}
		if (kind > 1) {
			*why = "bad xattr kind";
			return false;
		}
		if (kind == 0 && vlen > BKR_XATTR_INLINE_MAX) {
			*why = "inline xattr value too large";
			return false;
		}
		if (!take(&c, kind == 0 ? vlen : BKR_ID_SIZE, "xattr value past the end", &q))
			goto trunc;
	}

	if (!take(&c, 4, "hole count past the end", &q))
		goto trunc;
	n32 = bkr_get_u32(q);
	e->sparse_digest = (n32 & BKR_TREE_HOLES_SPARSE) != 0;
	n32 &= ~BKR_TREE_HOLES_SPARSE;
	if (n32 > (c.lim - c.pos) / 16) {
		c.what = "holes past the end";
		goto trunc;
	}
	if (check && e->sparse_digest && n32 == 0) {
		*why = "sparse digest without holes";
		return false;
	}
	e->nholes = n32;
	r->holes = blob + c.pos;
	c.pos += (size_t)n32 * 16;
	if (check) {
		uint64_t end = 0;
		for (size_t i = 0; i < e->nholes; i++) {
			uint64_t ho = bkr_get_u64(r->holes + 16 * i), hl = bkr_get_u64(r->holes + 16 * i + 8);
			if ((i > 0 && ho < end) || hl > UINT64_MAX - ho) {
				*why = "holes overlap, are unsorted or overflow";
				return false;
			}
			end = ho + hl;
		}
	}

	if (!take(&c, 4, "chunk count past the end", &q))
		goto trunc;
	n32 = bkr_get_u32(q);
	if (n32 > (c.lim - c.pos) / (BKR_ID_SIZE + 4)) {
		c.what = "chunks past the end";
		goto trunc;
	}
	e->nchunks = n32;
	r->chunks = blob + c.pos;
	c.pos += (size_t)n32 * (BKR_ID_SIZE + 4);

	if (!take(&c, 2 * BKR_ID_SIZE, "content/subtree ids past the end", &q))
		goto trunc;
	memcpy(e->content.b, q, BKR_ID_SIZE);
	memcpy(e->subtree.b, q + BKR_ID_SIZE, BKR_ID_SIZE);
	r->end = c.pos;
	return true;
trunc:
	*why = c.what; /* "<field> past the end" */
	return false;
}

/** A decoded inner record. */
struct irec {
	const uint8_t *name;
	size_t name_len;
	bkr_id child;
	uint32_t entries;
	size_t end;
};

static bool decode_inner(const uint8_t *blob, size_t off, size_t lim, struct irec *r, const char **why)
{
	struct cur c = { blob, off, lim, NULL };
	const uint8_t *q;

	if (!take_bytes16(&c, "first name past the end", &r->name, &r->name_len) ||
	    !take(&c, BKR_ID_SIZE + 4, "child id/count past the end", &q)) {
		*why = c.what;
		return false;
	}
	memcpy(r->child.b, q, BKR_ID_SIZE);
	r->entries = bkr_get_u32(q + BKR_ID_SIZE);
	r->end = c.pos;
	return true;
}

/* ---- parsed trees ------------------------------------------------------- */

struct bkr_tree {
	uint8_t *blob; /**< owned, validated */
	size_t len;
	uint8_t kind;
	uint32_t count;
};

static size_t rec_off(const bkr_tree *t, uint32_t i)
{
	return bkr_get_u32(t->blob + BKR_TREE_HEADER_SIZE + 4 * (size_t)i);
}

/** Name of record @p i: leaf and inner records both start with it. */
static void rec_name(const bkr_tree *t, uint32_t i, const uint8_t **name, size_t *len)
{
	size_t off = rec_off(t, i);
	*len = bkr_get_u16(t->blob + off);
	*name = t->blob + off + 2;
}

void bkr_tree_free(bkr_tree *t)
{
	if (!t)
		return;
	free(t->blob);
	free(t);
}

int bkr_tree_parse(bkr_tree **out, uint8_t *blob, size_t len)
{
	bkr_tree *t = NULL;
	const uint8_t *prev = NULL;
	size_t prev_len = 0, prev_end, table_end;
	uint32_t count;
	int err = 0;

	*out = NULL;
	if (!blob || len < BKR_TREE_HEADER_SIZE) {
		err = bkr_error_set(BKR_ECORRUPT, "tree blob: truncated (%zu bytes)", len);
		goto done;
	}
	if (memcmp(blob, BKR_TREE_MAGIC, 8) != 0) {
		err = bkr_error_set(BKR_ECORRUPT, "tree blob: bad magic");
		goto done;
	}
	if (blob[8] != BKR_TREE_VERSION) {
		err = bkr_error_set(BKR_EUNSUPPORTED, "tree blob: unsupported version %u", blob[8]);
		goto done;
	}
	if (blob[9] != TREE_LEAF && blob[9] != TREE_INNER) {
		err = bkr_error_set(BKR_ECORRUPT, "tree blob: bad kind %u", blob[9]);
		goto done;
	}
	if (bkr_get_u16(blob + 10) != 0) {
		err = bkr_error_set(BKR_ECORRUPT, "tree blob: reserved header bits set");
		goto done;
	}
	count = bkr_get_u32(blob + 12);
	if (count > (len - BKR_TREE_HEADER_SIZE) / 4) {
		err = bkr_error_set(BKR_ECORRUPT, "tree blob: count %u does not fit in %zu bytes",
				    count, len);
		goto done;
	}
	if (blob[9] == TREE_INNER && count == 0) {
		err = bkr_error_set(BKR_ECORRUPT, "tree blob: empty inner node");
		goto done;
	}
	if (!(t = calloc(1, sizeof(*t)))) {
		err = bkr_error_oom();
		goto done;
	}
	t->blob = blob;
	t->len = len;
	t->kind = blob[9];
	t->count = count;
	blob = NULL;

	table_end = BKR_TREE_HEADER_SIZE + 4 * (size_t)count;
	prev_end = table_end;
	for (uint32_t i = 0; i < count; i++) {
		size_t off = rec_off(t, i), end;
		const uint8_t *name;
		size_t name_len;
		const char *why = NULL;
		char esc[128];

		if (off < prev_end || off >= len) {
			err = bkr_error_set(BKR_ECORRUPT, "tree blob: record %u: offset %zu %s", i, off,
					    off >= len ? "past the end" : "overlaps the previous record");
			goto done;
		}
		if (t->kind == TREE_LEAF) {
			struct rec r;
			if (!decode_leaf(t->blob, off, len, true, &r, &why)) {
				err = bkr_error_set(BKR_ECORRUPT, "tree blob: record %u: %s", i, why);
				goto done;
			}
			name = r.e.name;
			name_len = r.e.name_len;
			end = r.end;
		} else {
			struct irec r;
			if (!decode_inner(t->blob, off, len, &r, &why)) {
				err = bkr_error_set(BKR_ECORRUPT, "tree blob: record %u: %s",
						    i, why);
				goto done;
			}
			if (!bkr_tree_name_valid(r.name, r.name_len)) {
				err = bkr_error_set(BKR_ECORRUPT, "tree blob: record %u: invalid first name", i);
				goto done;
			}
			if (r.entries == 0) {
				err = bkr_error_set(BKR_ECORRUPT, "tree blob: record %u: empty child", i);
				goto done;
			}
			name = r.name;
			name_len = r.name_len;
			end = r.end;
		}
		if (prev) {
			int c = name_cmp(prev, prev_len, name, name_len);
			if (c >= 0) {
				err = bkr_error_set(BKR_ECORRUPT, "tree blob: record %u '%s': %s", i,
						    bkr_text_escape(esc, sizeof(esc), (const char *)name, name_len),
						    c == 0 ? "duplicate name" : "names not sorted");
				goto done;
			}
		}
		prev = name;
		prev_len = name_len;
		prev_end = end;
	}
	*out = t;
	t = NULL;
done:
	free(blob);
	bkr_tree_free(t);
	return err;
}

bool bkr_tree_is_inner(const bkr_tree *t)
{
	return t->kind == TREE_INNER;
}

uint32_t bkr_tree_count(const bkr_tree *t)
{
	return t->count;
}

/** Decode leaf record @p i of a parsed tree (cannot fail after parsing, but says so if it does). */
static int leaf_rec(const bkr_tree *t, uint32_t i, struct rec *r)
{
	const char *why = NULL;

	if (t->kind != TREE_LEAF)
		return bkr_error_set(BKR_EINVAL, "tree: not a leaf");
	if (i >= t->count)
		return bkr_error_set(BKR_EINVAL, "tree: entry %u out of range (%u entries)", i, t->count);
	if (!decode_leaf(t->blob, rec_off(t, i), t->len, false, r, &why))
		return bkr_error_set(BKR_ECORRUPT, "tree blob: record %u: %s", i, why);
	return 0;
}

int bkr_tree_get(const bkr_tree *t, uint32_t i, bkr_entry *out)
{
	struct rec r;
	int err;

	memset(out, 0, sizeof(*out));
	if ((err = leaf_rec(t, i, &r)) < 0)
		return err;
	*out = r.e;
	return 0;
}

int bkr_tree_find(const bkr_tree *t, const uint8_t *name, size_t len, uint32_t *index)
{
	uint32_t lo = 0, hi;
	char esc[128];

	*index = 0;
	if (t->kind != TREE_LEAF)
		return bkr_error_set(BKR_EINVAL, "tree: not a leaf");
	hi = t->count;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const uint8_t *n;
		size_t nl;
		int c;
		rec_name(t, mid, &n, &nl);
		c = name_cmp(n, nl, name, len);
		if (c == 0) {
			*index = mid;
			return 0;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return bkr_error_set(BKR_ENOTFOUND, "no entry named '%s'", bkr_text_escape(esc, sizeof(esc), (const char *)name, len));
}

int bkr_tree_chunks(const bkr_tree *t, uint32_t i, bkr_chunk_ref **out, size_t *n)
{
	struct rec r;
	bkr_chunk_ref *a;
	int err;

	*out = NULL;
	*n = 0;
	if ((err = leaf_rec(t, i, &r)) < 0)
		return err;
	if (r.e.nchunks == 0)
		return 0;
	if (!(a = malloc(r.e.nchunks * sizeof(*a))))
		return bkr_error_oom();
	for (size_t k = 0; k < r.e.nchunks; k++) {
		const uint8_t *q = r.chunks + k * (BKR_ID_SIZE + 4);
		memcpy(a[k].id.b, q, BKR_ID_SIZE);
		a[k].length = bkr_get_u32(q + BKR_ID_SIZE);
	}
	*out = a;
	*n = r.e.nchunks;
	return 0;
}

int bkr_tree_holes(const bkr_tree *t, uint32_t i, bkr_hole **out, size_t *n)
{
	struct rec r;
	bkr_hole *a;
	int err;

	*out = NULL;
	*n = 0;
	if ((err = leaf_rec(t, i, &r)) < 0)
		return err;
	if (r.e.nholes == 0)
		return 0;
	if (!(a = malloc(r.e.nholes * sizeof(*a))))
		return bkr_error_oom();
	for (size_t k = 0; k < r.e.nholes; k++) {
		a[k].offset = bkr_get_u64(r.holes + 16 * k);
		a[k].length = bkr_get_u64(r.holes + 16 * k + 8);
	}
	*out = a;
	*n = r.e.nholes;
	return 0;
}

int bkr_tree_xattrs(const bkr_tree *t, uint32_t i, bkr_xattr **out, size_t *n)
{
	struct rec r;
	bkr_xattr *a;
	const uint8_t *q;
	int err;

	*out = NULL;
	*n = 0;
	if ((err = leaf_rec(t, i, &r)) < 0)
		return err;
	if (r.e.nxattrs == 0)
		return 0;
	if (!(a = calloc(r.e.nxattrs, sizeof(*a))))
		return bkr_error_oom();
	q = r.xattrs; /* validated by bkr_tree_parse */
	for (size_t k = 0; k < r.e.nxattrs; k++) {
		a[k].name_len = bkr_get_u16(q);
		a[k].name = q + 2;
		q += 2 + a[k].name_len;
		a[k].in_blob = q[0] == 1;
		a[k].value_len = bkr_get_u32(q + 1);
		q += 5;
		if (a[k].in_blob) {
			memcpy(a[k].blob.b, q, BKR_ID_SIZE);
			q += BKR_ID_SIZE;
		} else {
			a[k].value = q;
			q += a[k].value_len;
		}
	}
	*out = a;
	*n = r.e.nxattrs;
	return 0;
}

int bkr_tree_child(const bkr_tree *t, uint32_t i, const uint8_t **first_name, size_t *first_len,
		   bkr_id *child, uint32_t *entries)
{
	struct irec r;
	const char *why = NULL;

	*first_name = NULL;
	*first_len = 0;
	if (t->kind != TREE_INNER)
		return bkr_error_set(BKR_EINVAL, "tree: not an inner node");
	if (i >= t->count)
		return bkr_error_set(BKR_EINVAL, "tree: child %u out of range (%u children)", i, t->count);
	if (!decode_inner(t->blob, rec_off(t, i), t->len, &r, &why))
		return bkr_error_set(BKR_ECORRUPT, "tree blob: record %u: %s", i, why);
	*first_name = r.name;
	*first_len = r.name_len;
	*child = r.child;
	*entries = r.entries;
	return 0;
}

int bkr_tree_each(const bkr_tree *t, bkr_tree_page_fn page, bkr_tree_entry_fn entry, void *ctx)
{
	int err = 0;

	for (uint32_t i = 0; i < t->count && err == 0; i++) {
		const uint8_t *fn;
		size_t fl;
		bkr_id child;
		uint32_t cnt;
		if (t->kind != TREE_INNER)
			err = entry(ctx, t, i);
		else if ((err = bkr_tree_child(t, i, &fn, &fl, &child, &cnt)) == 0)
			err = page(ctx, &child);
	}
	return err;
}

/* ---- building ----------------------------------------------------------- */

/** One encoded record (leaf entry or inner child) waiting to be paged. */
struct item {
	uint8_t *rec;
	size_t len;
	uint64_t entries; /**< 1 for a leaf record, the subtree size for an inner one */
};

struct bkr_tree_builder {
	struct item *items;
	size_t n, cap;
};

static const uint8_t *item_name(const struct item *it, size_t *len)
{
	*len = bkr_get_u16(it->rec);
	return it->rec + 2;
}

int bkr_tree_builder_new(bkr_tree_builder **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : bkr_error_oom();
}

static void items_free(struct item *items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(items[i].rec);
}

void bkr_tree_builder_free(bkr_tree_builder *b)
{
	if (!b)
		return;
	items_free(b->items, b->n);
	free(b->items);
	free(b);
}

size_t bkr_tree_builder_count(const bkr_tree_builder *b)
{
	return b->n;
}

/* The largest record that still fits in a page of its own. */
#define REC_MAX (BKR_BLOB_MAX - BKR_TREE_HEADER_SIZE - 4)

static uint8_t *put_bytes16(uint8_t *p, const void *data, size_t len)
{
	bkr_put_u16(p, (uint16_t)len);
	if (len)
		memcpy(p + 2, data, len);
	return p + 2 + len;
}

int bkr_tree_builder_add(bkr_tree_builder *b, const bkr_entry *e)
{
	uint64_t size;
	uint8_t *rec = NULL, *p;
	char esc[128];
	int err = 0;

	if (!bkr_tree_name_valid(e->name, e->name_len)) {
		err = bkr_error_set(BKR_EINVAL, "invalid entry name '%s'",
				    e->name ? bkr_text_escape(esc, sizeof(esc), (const char *)e->name, e->name_len) : "");
		goto done;
	}
	bkr_text_escape(esc, sizeof(esc), (const char *)e->name, e->name_len);
	if (e->type < BKR_FT_FILE || e->type > BKR_FT_SOCK) {
		err = bkr_error_set(BKR_EINVAL, "entry '%s': bad file type %u", esc, e->type);
		goto done;
	}
	if (e->user_len > UINT16_MAX || e->group_len > UINT16_MAX || e->target_len > UINT16_MAX ||
	    (e->user_len && !e->user) || (e->group_len && !e->group) || (e->target_len && !e->target)) {
		err = bkr_error_set(BKR_EINVAL, "entry '%s': bad user, group or target", esc);
		goto done;
	}
	if (e->nxattrs > UINT16_MAX || e->nholes >= BKR_TREE_HOLES_SPARSE || e->nchunks > UINT32_MAX ||
	    (e->nxattrs && !e->xattrs) || (e->nholes && !e->holes) || (e->nchunks && !e->chunks)) {
		err = bkr_error_set(BKR_EINVAL, "entry '%s': bad xattr, hole or chunk array", esc);
		goto done;
	}
	size = 2 + (uint64_t)e->name_len + 1 + 12 + 2 + e->user_len + 2 + e->group_len + 16 + 24 +
	       12 + 8 + 2 + e->target_len + 2 + 4 + 16 * (uint64_t)e->nholes + 4 +
	       (BKR_ID_SIZE + 4) * (uint64_t)e->nchunks + 2 * BKR_ID_SIZE;
	for (size_t i = 0; i < e->nxattrs; i++) {
		const bkr_xattr *x = &e->xattrs[i];
		if (x->name_len == 0 || x->name_len > UINT16_MAX || !x->name ||
		    memchr(x->name, '\0', x->name_len)) {
			err = bkr_error_set(BKR_EINVAL, "entry '%s': invalid xattr name", esc);
			goto done;
		}
		if (!x->in_blob && (x->value_len > BKR_XATTR_INLINE_MAX || (x->value_len && !x->value))) {
			err = bkr_error_set(BKR_EINVAL,
					    "entry '%s': xattr value of %u bytes must be stored as a blob",
					    esc, x->value_len);
			goto done;
		}
		size += 2 + x->name_len + 5 + (x->in_blob ? BKR_ID_SIZE : x->value_len);
	}
	for (size_t i = 1; i < e->nholes; i++) {
		const bkr_hole *h = &e->holes[i - 1];
		if (h->length > UINT64_MAX - h->offset || h->offset + h->length > e->holes[i].offset) {
			err = bkr_error_set(BKR_EINVAL, "entry '%s': holes unsorted or overlapping", esc);
			goto done;
		}
	}
	if (e->nholes && e->holes[e->nholes - 1].length > UINT64_MAX - e->holes[e->nholes - 1].offset) {
		err = bkr_error_set(BKR_EINVAL, "entry '%s': hole overflows", esc);
		goto done;
	}
	if (size > REC_MAX) {
		err = bkr_error_set(BKR_EINVAL, "entry '%s': record of %llu bytes exceeds a tree page",
				    esc, (unsigned long long)size);
		goto done;
	}
	if ((err = bkr_array_grow((void **)&b->items, &b->cap, b->n, sizeof(*b->items))) < 0)
		goto done;
	if (!(rec = malloc((size_t)size))) {
		err = bkr_error_oom();
		goto done;
	}
	p = put_bytes16(rec, e->name, e->name_len);
	*p++ = e->type;
	bkr_put_u32(p, e->mode);
	bkr_put_u32(p + 4, e->uid);
	bkr_put_u32(p + 8, e->gid);
	p = put_bytes16(p + 12, e->user, e->user_len);
	p = put_bytes16(p, e->group, e->group_len);
	bkr_put_u64(p, (uint64_t)e->mtime_ns);
	bkr_put_u64(p + 8, (uint64_t)e->ctime_ns);
	bkr_put_u64(p + 16, e->size);
	bkr_put_u64(p + 24, e->blocks);
	bkr_put_u64(p + 32, e->rdev);
	bkr_put_u64(p + 40, e->inode);
	bkr_put_u32(p + 48, e->nlink);
	bkr_put_u64(p + 52, e->link_group);
	p = put_bytes16(p + 60, e->target, e->target_len);
	bkr_put_u16(p, (uint16_t)e->nxattrs);
	p += 2;
	for (size_t i = 0; i < e->nxattrs; i++) {
		const bkr_xattr *x = &e->xattrs[i];
		p = put_bytes16(p, x->name, x->name_len);
		*p++ = x->in_blob ? 1 : 0;
		bkr_put_u32(p, x->value_len);
		p += 4;
		if (x->in_blob) {
			memcpy(p, x->blob.b, BKR_ID_SIZE);
			p += BKR_ID_SIZE;
		} else {
			if (x->value_len)
				memcpy(p, x->value, x->value_len);
			p += x->value_len;
		}
	}
	bkr_put_u32(p, (uint32_t)e->nholes | (e->sparse_digest && e->nholes ? BKR_TREE_HOLES_SPARSE : 0));
	p += 4;
	for (size_t i = 0; i < e->nholes; i++, p += 16) {
		bkr_put_u64(p, e->holes[i].offset);
		bkr_put_u64(p + 8, e->holes[i].length);
	}
	bkr_put_u32(p, (uint32_t)e->nchunks);
	p += 4;
	for (size_t i = 0; i < e->nchunks; i++, p += BKR_ID_SIZE + 4) {
		memcpy(p, e->chunks[i].id.b, BKR_ID_SIZE);
		bkr_put_u32(p + BKR_ID_SIZE, e->chunks[i].length);
	}
	memcpy(p, e->content.b, BKR_ID_SIZE);
	memcpy(p + BKR_ID_SIZE, e->subtree.b, BKR_ID_SIZE);
	p += 2 * BKR_ID_SIZE;
	if ((size_t)(p - rec) != size) {
		err = bkr_error_set(BKR_ERROR, "entry '%s': internal encoding size mismatch", esc);
		goto done;
	}
	b->items[b->n++] = (struct item){ rec, (size_t)size, 1 };
	rec = NULL;
done:
	free(rec);
	return err;
}

static int item_cmp(const void *a, const void *b)
{
	size_t al, bl;
	const uint8_t *an = item_name(a, &al), *bn = item_name(b, &bl);
	return name_cmp(an, al, bn, bl);
}

/** Encode items[0..n) as one tree blob of @p kind, emit it, and return its id. */
static int emit_page(const struct item *items, size_t n, uint8_t kind, bkr_tree_emit_fn emit,
		     void *ctx, bkr_id *id)
{
	size_t len = BKR_TREE_HEADER_SIZE + 4 * n, off;
	uint8_t *blob;
	int err;

	for (size_t i = 0; i < n; i++)
		len += items[i].len;
	if (!(blob = malloc(len)))
		return bkr_error_oom();
	memcpy(blob, BKR_TREE_MAGIC, 8);
	blob[8] = BKR_TREE_VERSION;
	blob[9] = kind;
	bkr_put_u16(blob + 10, 0);
	bkr_put_u32(blob + 12, (uint32_t)n);
	off = BKR_TREE_HEADER_SIZE + 4 * n;
	for (size_t i = 0; i < n; i++) {
		bkr_put_u32(blob + BKR_TREE_HEADER_SIZE + 4 * i, (uint32_t)off);
		memcpy(blob + off, items[i].rec, items[i].len);
		off += items[i].len;
	}
	/* the emitter gives the id: SHA-256, or a keyed repository's HMAC (one
	 * hash per tree blob, not a SHA-256 its emitter would replace) */
	memset(id, 0, sizeof(*id));
	err = emit(ctx, id, blob, len);
	free(blob);
	if (err < 0 && bkr_error_last_code() == BKR_OK)
		bkr_error_set(err, "tree emit callback failed");
	return err < 0 ? err : 0;
}

/** How many of items[start..n) go into the next page (count and byte bounded). */
static size_t page_take(const struct item *items, size_t start, size_t n)
{
	size_t k = 0, bytes = BKR_TREE_HEADER_SIZE;

	while (start + k < n && k < BKR_TREE_PAGE_MAX &&
	       bytes + 4 + items[start + k].len <= BKR_BLOB_MAX) {
		bytes += 4 + items[start + k].len;
		k++;
	}
	return k;
}

/**
 * Page one level: emit its pages and, when more than one page was needed,
 * return the inner records of the next level in *next (else *next_n = 0 and
 * *root is set).
 */
static int page_level(const struct item *items, size_t n, uint8_t kind, bkr_tree_emit_fn emit,
		      void *ctx, struct item **next, size_t *next_n, bkr_id *root)
{
	struct item *up = NULL;
	size_t nup = 0, start = 0, k;
	int err = 0;

	*next = NULL;
	*next_n = 0;
	k = page_take(items, 0, n);
	if (k == n) {
		err = emit_page(items, n, kind, emit, ctx, root);
		goto done;
	}
	/* at most n pages */
	if (!(up = calloc(n, sizeof(*up)))) {
		err = bkr_error_oom();
		goto done;
	}
	while (start < n) {
		const uint8_t *name;
		size_t name_len;
		uint64_t entries = 0;
		bkr_id id;
		uint8_t *p;

		k = page_take(items, start, n);
		if (k == 0) {
			err = bkr_error_set(BKR_EINVAL, "tree record too large for a page");
			goto done;
		}
		if ((err = emit_page(items + start, k, kind, emit, ctx, &id)) < 0)
			goto done;
		for (size_t i = 0; i < k; i++)
			entries += items[start + i].entries;
		if (entries > UINT32_MAX) {
			err = bkr_error_set(BKR_EINVAL, "directory too large (page of %llu entries)",
					    (unsigned long long)entries);
			goto done;
		}
		name = item_name(&items[start], &name_len);
		if (!(p = malloc(2 + name_len + BKR_ID_SIZE + 4))) {
			err = bkr_error_oom();
			goto done;
		}
		up[nup] = (struct item){ p, 2 + name_len + BKR_ID_SIZE + 4, entries };
		nup++;
		p = put_bytes16(p, name, name_len);
		memcpy(p, id.b, BKR_ID_SIZE);
		bkr_put_u32(p + BKR_ID_SIZE, (uint32_t)entries);
		start += k;
	}
	*next = up;
	*next_n = nup;
	up = NULL;
done:
	if (up) {
		items_free(up, nup);
		free(up);
	}
	return err;
}

int bkr_tree_builder_finish(bkr_tree_builder *b, bkr_tree_emit_fn emit, void *ctx, bkr_id *root)
{
	struct item *level = NULL, *next = NULL;
	size_t nlevel = 0, nnext = 0;
	uint8_t kind = TREE_LEAF;
	char esc[128];
	int err = 0;

	memset(root, 0, sizeof(*root));
	if (b->n > 1)
		qsort(b->items, b->n, sizeof(*b->items), item_cmp);
	for (size_t i = 1; i < b->n; i++) {
		if (item_cmp(&b->items[i - 1], &b->items[i]) == 0) {
			size_t len;
			const uint8_t *name = item_name(&b->items[i], &len);
			err = bkr_error_set(BKR_EINVAL, "duplicate entry name '%s'",
					    bkr_text_escape(esc, sizeof(esc), (const char *)name, len));
			goto done;
		}
	}
	bkr_error_clear();
	if ((err = page_level(b->items, b->n, kind, emit, ctx, &next, &nnext, root)) < 0)
		goto done;
	while (nnext > 0) {
		if (level) {
			items_free(level, nlevel);
			free(level);
		}
		level = next;
		nlevel = nnext;
		kind = TREE_INNER;
		if ((err = page_level(level, nlevel, kind, emit, ctx, &next, &nnext, root)) < 0)
			goto done;
	}
done:
	if (level) {
		items_free(level, nlevel);
		free(level);
	}
	items_free(b->items, b->n);
	b->n = 0;
	if (err < 0)
		memset(root, 0, sizeof(*root));
	return err;
}

/* ---- paged directories -------------------------------------------------- */

/** A page that failed to load: the failure is answered again until @c until
 *  (a damaged page of a big directory is not re-read on every access). */
struct dfail {
	int err;
	int64_t until;                  /**< bkr_clock_mono_ns() */
	char msg[240];
};

/** One loaded page (or the top) of a directory. */
struct dnode {
	bkr_tree *t;
	uint64_t total;                 /**< entries under this node */
	uint64_t *cum;                  /**< inner: entries before child i (count+1 values) */
	_Atomic(struct dnode *) *kids;  /**< inner: loaded children; written under bkr_dir.lock */
	struct dfail *fails;            /**< inner: per child, allocated at the first failure (under the lock) */
	int depth;
};

struct bkr_dir {
	bkr_tree_load_fn load;
	void *ctx;
	pthread_mutex_t lock;           /**< serialises page loading (dnode.kids, dnode.fails) */
	int64_t fail_ttl;               /**< how long a page's failure is remembered */
	struct dnode *root;
};

static void dnode_free(struct dnode *n)
{
	if (!n)
		return;
	if (n->kids)
		for (uint32_t i = 0; i < n->t->count; i++)
			dnode_free(atomic_load(&n->kids[i]));
	free(n->kids);
	free(n->fails);
	free(n->cum);
	bkr_tree_free(n->t);
	free(n);
}

/** Wrap a parsed tree; takes @p t whatever the outcome. */
static int dnode_new(struct dnode **out, bkr_tree *t, int depth)
{
	struct dnode *n = NULL;
	int err = 0;

	*out = NULL;
	if (!(n = calloc(1, sizeof(*n)))) {
		bkr_tree_free(t);
		return bkr_error_oom();
	}
	n->t = t;
	n->depth = depth;
	if (t->kind == TREE_LEAF) {
		n->total = t->count;
		goto done;
	}
	if (!(n->cum = malloc(((size_t)t->count + 1) * sizeof(*n->cum))) ||
	    !(n->kids = calloc(t->count, sizeof(*n->kids)))) {
		err = bkr_error_oom();
		goto done;
	}
	/* the slots are C11 atomics, which helgrind takes for plain words */
	ANNOTATE_BENIGN_RACE_SIZED(n->kids, t->count * sizeof(*n->kids), "atomic page slots");
	n->cum[0] = 0;
	for (uint32_t i = 0; i < t->count; i++) {
		struct irec r;
		const char *why = NULL;
		if (!decode_inner(t->blob, rec_off(t, i), t->len, &r, &why)) {
			err = bkr_error_set(BKR_ECORRUPT, "tree blob: record %u: %s", i, why);
			goto done;
		}
		n->cum[i + 1] = n->cum[i] + r.entries; /* <= 2^32 × 2^32: no overflow */
	}
	n->total = n->cum[t->count];
done:
	if (err < 0) {
		dnode_free(n);
		n = NULL;
	}
	*out = n;
	return err;
}

/** First and last names of a node (for leaves: of its entries; inner: first names). */
static void tree_bounds(const bkr_tree *t, const uint8_t **first, size_t *flen,
			const uint8_t **last, size_t *llen)
{
	rec_name(t, 0, first, flen);
	rec_name(t, t->count - 1, last, llen);
}

/** Child @p j of inner node @p n, loaded and checked against its parent on first use. */
static int dnode_child(bkr_dir *d, struct dnode *n, uint32_t j, struct dnode **out)
{
	struct dnode *c = atomic_load_explicit(&n->kids[j], memory_order_acquire);
	const uint8_t *fname, *first, *last;
	size_t flen, first_len, last_len;
	bkr_tree *t = NULL;
	bkr_id cid;
	uint32_t entries;
	char hex[BKR_ID_HEX];
	int err = 0;

	*out = c;
	if (c) {
		ANNOTATE_HAPPENS_AFTER(&n->kids[j]);
		return 0;
	}
	pthread_mutex_lock(&d->lock);
	if ((c = atomic_load_explicit(&n->kids[j], memory_order_relaxed)))
		goto done;
	if (d->fail_ttl > 0 && n->fails && n->fails[j].err && bkr_clock_mono_ns() < n->fails[j].until) {
		err = bkr_error_set(n->fails[j].err, "%s", n->fails[j].msg);
		goto done;
	}
	if ((err = bkr_tree_child(n->t, j, &fname, &flen, &cid, &entries)) < 0)
		goto done;
	bkr_id_to_hex(&cid, hex);
	if (n->depth + 1 >= DIR_MAX_DEPTH) {
		err = bkr_error_set(BKR_ECORRUPT, "tree %s: directory pages nested too deep", hex);
		goto done;
	}
	if ((err = d->load(d->ctx, &cid, &t)) < 0)
		goto done;
	if (!t) {
		err = bkr_error_set(BKR_ERROR, "tree %s: loader returned nothing", hex);
		goto done;
	}
	if (t->count == 0) {
		bkr_tree_free(t);
		err = bkr_error_set(BKR_ECORRUPT, "tree %s: empty directory page", hex);
		goto done;
	}
	tree_bounds(t, &first, &first_len, &last, &last_len);
	if (name_cmp(first, first_len, fname, flen) != 0) {
		bkr_tree_free(t);
		err = bkr_error_set(BKR_ECORRUPT, "tree %s: first name differs from its parent's record", hex);
		goto done;
	}
	if (j + 1 < n->t->count) {
		const uint8_t *next;
		size_t next_len;
		rec_name(n->t, j + 1, &next, &next_len);
		if (name_cmp(last, last_len, next, next_len) >= 0) {
			bkr_tree_free(t);
			err = bkr_error_set(BKR_ECORRUPT, "tree %s: names overlap the next page", hex);
			goto done;
		}
	}
	if ((err = dnode_new(&c, t, n->depth + 1)) < 0)
		goto done;
	if (c->total != entries) {
		err = bkr_error_set(BKR_ECORRUPT, "tree %s: holds %llu entries, its parent says %u", hex,
				    (unsigned long long)c->total, entries);
		dnode_free(c);
		c = NULL;
		goto done;
	}
	ANNOTATE_HAPPENS_BEFORE(&n->kids[j]);
	atomic_store_explicit(&n->kids[j], c, memory_order_release);
done:
	if (err < 0 && err != BKR_ENOMEM && d->fail_ttl > 0 &&
	    (n->fails || (n->fails = calloc(n->t->count, sizeof(*n->fails))))) {
		n->fails[j].err = err;
		n->fails[j].until = bkr_clock_mono_ns() + d->fail_ttl;
		snprintf(n->fails[j].msg, sizeof(n->fails[j].msg), "%s", bkr_error_message());
	}
	pthread_mutex_unlock(&d->lock);
	*out = c;
	return err;
}

void bkr_dir_set_failure_ttl(bkr_dir *d, int64_t ns)
{
	pthread_mutex_lock(&d->lock);
	d->fail_ttl = ns;
	pthread_mutex_unlock(&d->lock);
}

int bkr_dir_open(bkr_dir **out, const bkr_id *id, bkr_tree_load_fn load, void *ctx)
{
	bkr_dir *d = NULL;
	bkr_tree *t = NULL;
	int err;

	*out = NULL;
	if ((err = load(ctx, id, &t)) < 0)
		return err;
	if (!t)
		return bkr_error_set(BKR_ERROR, "tree loader returned nothing");
	if (!(d = calloc(1, sizeof(*d)))) {
		bkr_tree_free(t);
		return bkr_error_oom();
	}
	d->load = load;
	d->ctx = ctx;
	d->fail_ttl = BKR_DIR_FAILURE_TTL_NS;
	if ((err = dnode_new(&d->root, t, 0)) < 0) {
		free(d);
		return err;
	}
	pthread_mutex_init(&d->lock, NULL);
	*out = d;
	return 0;
}

void bkr_dir_free(bkr_dir *d)
{
	if (!d)
		return;
	dnode_free(d->root);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

uint64_t bkr_dir_count(const bkr_dir *d)
{
	return d->root->total;
}

static int leaf_out(struct dnode *n, uint32_t i, bkr_entry *out, const bkr_tree **leaf, uint32_t *li)
{
	int err = bkr_tree_get(n->t, i, out);
	if (err < 0)
		return err;
	if (leaf)
		*leaf = n->t;
	if (li)
		*li = i;
	return 0;
}

int bkr_dir_get(bkr_dir *d, uint64_t i, bkr_entry *out, const bkr_tree **leaf, uint32_t *li)
{
	struct dnode *n = d->root;
	int err;

	memset(out, 0, sizeof(*out));
	if (leaf)
		*leaf = NULL;
	if (li)
		*li = 0;
	if (i >= n->total)
		return bkr_error_set(BKR_ENOTFOUND, "directory entry %llu out of range (%llu entries)",
				     (unsigned long long)i, (unsigned long long)n->total);
	while (n->t->kind == TREE_INNER) {
		uint32_t lo = 0, hi = n->t->count; /* last child with cum[j] <= i */
		while (hi - lo > 1) {
			uint32_t mid = lo + (hi - lo) / 2;
			if (n->cum[mid] <= i)
				lo = mid;
			else
				hi = mid;
		}
		i -= n->cum[lo];
		if ((err = dnode_child(d, n, lo, &n)) < 0)
			return err;
	}
	return leaf_out(n, (uint32_t)i, out, leaf, li);
}

int bkr_dir_find(bkr_dir *d, const uint8_t *name, size_t len, bkr_entry *out,
		 const bkr_tree **leaf, uint32_t *li, uint64_t *index)
{
	struct dnode *n = d->root;
	uint64_t base = 0;
	uint32_t k;
	char esc[128];
	int err;

	memset(out, 0, sizeof(*out));
	if (leaf)
		*leaf = NULL;
	if (li)
		*li = 0;
	if (index)
		*index = 0;
	while (n->t->kind == TREE_INNER) {
		uint32_t lo = 0, hi = n->t->count; /* first child whose first name > name */
		while (lo < hi) {
			uint32_t mid = lo + (hi - lo) / 2;
			const uint8_t *fn;
			size_t fl;
			rec_name(n->t, mid, &fn, &fl);
			if (name_cmp(fn, fl, name, len) <= 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo == 0)
			return bkr_error_set(BKR_ENOTFOUND, "no entry named '%s'",
					     bkr_text_escape(esc, sizeof(esc), (const char *)name, len));
		base += n->cum[lo - 1];
		if ((err = dnode_child(d, n, lo - 1, &n)) < 0)
			return err;
	}
	if ((err = bkr_tree_find(n->t, name, len, &k)) < 0)
		return err;
	if (index)
		*index = base + k;
	return leaf_out(n, k, out, leaf, li);
}
