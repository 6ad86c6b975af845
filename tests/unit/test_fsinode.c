/** @file
 * Unit tests of the kernel-free parts of bkrfs: the inode table (stable
 * numbering, hardlink sharing, lookup counts and forget), the chunk/hole
 * offset table and SEEK_DATA/SEEK_HOLE, the errno mapping, and the bounded
 * single-flight LRU.  The fs/ sources are compiled in directly.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../fs/inode.c"
#include "../../fs/layout.c"
#include "../../fs/cache.c"
#include "../../fs/errno.c"
#include "../../fs/views.c"

/* ---- inode table ---------------------------------------------------------- */

static int released;

static void count_release(bkrfs_inode *i)
{
	released++;
	bkrfs_snap_unref(i->snap);
}

static uint8_t *mkkey(size_t *len, char kind, const char *a, const char *b)
{
	const void *parts[2] = { a, b };
	size_t lens[2] = { strlen(a), b ? strlen(b) : 0 };
	uint8_t *k;
	assert_int_equal(bkrfs_key_make(&k, len, kind, b ? 2 : 1, parts, lens), 0);
	return k;
}

static bkrfs_inode *enter(bkrfs_itable *t, char kind, const char *a, const char *b, bool lookup)
{
	bkrfs_inode *i = calloc(1, sizeof(*i));
	size_t len;
	uint8_t *k = mkkey(&len, kind, a, b);
	assert_non_null(i);
	i->kind = BKRFS_NODE_ENTRY;
	return bkrfs_itable_enter(t, i, k, len, lookup);
}

static void test_numbering_stable(void **state)
{
	bkrfs_itable *t1, *t2;
	bkrfs_inode *a, *b, *c;

	assert_int_equal(bkrfs_itable_new(&t1, NULL), 0);
	assert_int_equal(bkrfs_itable_new(&t2, NULL), 0);
	a = enter(t1, 'E', "backup_20260101_000000_full_00000001", "ws/a.txt", true);
	/* another "mount": the same number */
	b = enter(t2, 'E', "backup_20260101_000000_full_00000001", "ws/a.txt", true);
	assert_int_equal(a->ino, b->ino);
	assert_int_equal(a->st.st_ino, a->ino);
	assert_true(a->ino >= BKRFS_INO_RESERVED);
	/* the same path in another backup: another number */
	c = enter(t1, 'E', "backup_20260102_000000_full_00000002", "ws/a.txt", true);
	assert_int_not_equal(a->ino, c->ino);
	/* peek agrees with enter */
	{
		size_t len;
		uint8_t *k = mkkey(&len, 'E', "backup_20260102_000000_full_00000002", "ws/a.txt");
		assert_int_equal(bkrfs_itable_peek(t1, k, len, NULL), c->ino);
		free(k);
	}
	bkrfs_itable_put(t1, a);
	bkrfs_itable_put(t1, c);
	bkrfs_itable_put(t2, b);
	bkrfs_itable_free(t1);
	bkrfs_itable_free(t2);
}

static void test_hardlinks_share(void **state)
{
	bkrfs_itable *t;
	bkrfs_inode *a, *b;

	assert_int_equal(bkrfs_itable_new(&t, NULL), 0);
	/* two paths of one link group: one identity key, one inode */
	a = enter(t, 'H', "backup_x", "42", true);
	b = enter(t, 'H', "backup_x", "42", true);
	assert_ptr_equal(a, b);
	assert_int_equal(bkrfs_itable_nlookup(t, a->ino), 2);
	assert_int_equal(bkrfs_itable_count(t), 1);
	bkrfs_itable_put(t, a);
	bkrfs_itable_put(t, b);
	bkrfs_itable_free(t);
}

static void test_lookup_counts_and_forget(void **state)
{
	bkrfs_itable *t;
	bkrfs_inode *a, *p;
	bkrfs_ino ino;

	released = 0;
	assert_int_equal(bkrfs_itable_new(&t, count_release), 0);
	a = enter(t, 'E', "b", "x", true);
	ino = a->ino;
	bkrfs_itable_put(t, a);
	assert_int_equal(bkrfs_itable_nlookup(t, ino), 1);
	a = enter(t, 'E', "b", "x", true);
	bkrfs_itable_put(t, a);
	a = enter(t, 'E', "b", "x", true);
	bkrfs_itable_put(t, a);
	assert_int_equal(bkrfs_itable_nlookup(t, ino), 3);
	assert_int_equal(released, 2); /* the two duplicate candidates were discarded */
	released = 0;
	/* a reference held by a running request keeps it through forget */
	p = bkrfs_itable_get(t, ino);
	assert_non_null(p);
	bkrfs_itable_forget(t, ino, 2);
	assert_int_equal(bkrfs_itable_nlookup(t, ino), 1);
	bkrfs_itable_forget(t, ino, 1);
	assert_int_equal(released, 0);
	assert_int_equal(bkrfs_itable_count(t), 1);
	bkrfs_itable_put(t, p);
	assert_int_equal(released, 1);
	assert_int_equal(bkrfs_itable_count(t), 0);
	assert_null(bkrfs_itable_get(t, ino));
	/* forget of an unknown inode is harmless */
	bkrfs_itable_forget(t, 12345, 1);
	/* an entry that did not fit into a readdirplus reply */
	a = enter(t, 'E', "b", "y", true);
	bkrfs_itable_unlookup(t, a);
	assert_int_equal(bkrfs_itable_count(t), 1);
	bkrfs_itable_put(t, a);
	assert_int_equal(bkrfs_itable_count(t), 0);
	/* peek-only (lookup=false) inodes go away with their last reference */
	a = enter(t, 'E', "b", "z", false);
	assert_int_equal(bkrfs_itable_nlookup(t, a->ino), 0);
	bkrfs_itable_put(t, a);
	assert_int_equal(bkrfs_itable_count(t), 0);
	bkrfs_itable_free(t);
}

/* A readdirplus reply raises the lookup count of each entry it carries (the
 * fill takes a lookup and notes it); when the reply is not delivered (an
 * interrupted request), the kernel never forgets them, so they are undone:
 * the counts are what they were, and an inode nobody else looked up goes. */
static void test_readdirplus_rollback(void **state)
{
	bkrfs_itable *t;
	bkrfs_lookups l;
	bkrfs_inode *a, *b, *c, *held;

	assert_int_equal(bkrfs_itable_new(&t, NULL), 0);
	held = enter(t, 'E', "b", "held", true); /* the kernel has it already */
	bkrfs_itable_put(t, held);
	for (int delivered = 0; delivered < 2; delivered++) {
		assert_int_equal(bkrfs_lookups_init(&l, 3), 0);
		/* the fill: each entry looked up (a reference while it is added) */
		a = enter(t, 'E', "b", "a", true);
		b = enter(t, 'E', "b", "held", true);
		assert_true(bkrfs_lookups_add(&l, a));
		assert_true(bkrfs_lookups_add(&l, b));
		bkrfs_itable_put(t, a);
		bkrfs_itable_put(t, b);
		/* an entry that no longer fits the list is undone by the caller */
		c = enter(t, 'E', "b", "c", true);
		assert_true(bkrfs_lookups_add(&l, c));
		assert_false(bkrfs_lookups_add(&l, c));
		bkrfs_itable_put(t, c);
		assert_int_equal(bkrfs_itable_nlookup(t, b->ino), 2);
		bkrfs_lookups_done(t, &l, delivered);
		if (!delivered) {
			assert_int_equal(bkrfs_itable_count(t), 1); /* a and c went */
			assert_int_equal(bkrfs_itable_nlookup(t, held->ino), 1);
		} else {
			assert_int_equal(bkrfs_itable_count(t), 3); /* the kernel has them now */
			assert_int_equal(bkrfs_itable_nlookup(t, held->ino), 2);
			assert_int_equal(bkrfs_itable_nlookup(t, a->ino), 1);
		}
	}
	/* an empty list (readdir without plus) */
	assert_int_equal(bkrfs_lookups_init(&l, 0), 0);
	assert_false(bkrfs_lookups_add(&l, held));
	bkrfs_lookups_done(t, &l, false);
	assert_int_equal(bkrfs_itable_nlookup(t, held->ino), 2);
	bkrfs_itable_free(t);
}

/* an entry inode with a path and a parent, as ops.c makes them */
static bkrfs_inode *enter_at(bkrfs_itable *t, const char *path, bool dir, bkrfs_ino parent)
{
	bkrfs_inode *i = calloc(1, sizeof(*i));
	size_t len;
	uint8_t *k = mkkey(&len, 'E', "b", path);
	assert_non_null(i);
	i->kind = BKRFS_NODE_ENTRY;
	i->st.st_mode = dir ? S_IFDIR | 0755 : S_IFREG | 0644;
	i->parent = parent;
	i->path = strdup(path);
	return bkrfs_itable_enter(t, i, k, len, true);
}

/* pruning picks files (never directories), least recently used first, never
 * an inode a request holds, down to half the limit */
static void test_prune_selection(void **state)
{
	bkrfs_itable *t;
	bkrfs_inode *held, *x;
	bkrfs_prune *p;
	bkrfs_ino dir_ino, f0 = 0;
	size_t n;
	char path[64];

	(void)state;
	released = 0;
	assert_int_equal(bkrfs_itable_new(&t, count_release), 0);
	x = enter_at(t, "ws/sub", true, 77);
	dir_ino = x->ino;
	bkrfs_itable_put(t, x);
	for (int k = 0; k < 20; k++) {
		snprintf(path, sizeof(path), "ws/sub/f%02d", k);
		x = enter_at(t, path, false, dir_ino);
		if (k == 0)
			f0 = x->ino;
		bkrfs_itable_put(t, x);
	}
	held = bkrfs_itable_get(t, f0);         /* f00 is the oldest, but in use */
	x = bkrfs_itable_get(t, f0 + 0);        /* (a second reference) */
	bkrfs_itable_put(t, x);
	snprintf(path, sizeof(path), "ws/sub/f%02d", 1);
	x = enter_at(t, path, false, dir_ino);  /* f01 used again: now the newest */
	bkrfs_itable_put(t, x);
	assert_int_equal(bkrfs_itable_count(t), 21);
	released = 0; /* (the duplicate candidate of f01 was discarded) */
	assert_int_equal(bkrfs_itable_prune(t, 21, &p), 0); /* not over the limit */
	assert_null(p);
	n = bkrfs_itable_prune(t, 16, &p);      /* 21 -> 8: 13 files */
	assert_int_equal(n, 13);
	for (size_t k = 0; k < n; k++) {
		assert_int_equal(p[k].parent, dir_ino);
		assert_int_equal(strlen(p[k].name), 3);
		assert_int_not_equal(strcmp(p[k].name, "f00"), 0); /* held */
		assert_int_not_equal(strcmp(p[k].name, "f01"), 0); /* recently used */
		/* oldest first: f02, f03, ... */
		snprintf(path, sizeof(path), "f%02zu", k + 2);
		assert_string_equal(p[k].name, path);
		free(p[k].name);
	}
	free(p);
	/* nothing is freed by choosing: the kernel's forgets do that */
	assert_int_equal(bkrfs_itable_count(t), 21);
	assert_int_equal(released, 0);
	/* with only directories and held inodes left, nothing is chosen */
	for (int k = 2; k < 20; k++) {
		bkrfs_inode *f;
		snprintf(path, sizeof(path), "ws/sub/f%02d", k);
		f = enter_at(t, path, false, dir_ino); /* find it again (+1 lookup) */
		bkrfs_itable_forget(t, f->ino, 2);
		bkrfs_itable_put(t, f);
	}
	snprintf(path, sizeof(path), "ws/sub/f%02d", 1);
	x = enter_at(t, path, false, dir_ino);
	bkrfs_itable_forget(t, x->ino, 3);
	bkrfs_itable_put(t, x);
	assert_int_equal(bkrfs_itable_count(t), 2);   /* the directory and the held f00 */
	assert_int_equal(bkrfs_itable_prune(t, 1, &p), 0);
	bkrfs_itable_put(t, held);
	bkrfs_itable_free(t);
}

/* a version in /versions is pruned by the name it has there, not by the last
 * component of its path; inodes are found by kind */
static void test_prune_version_name_and_kinds(void **state)
{
	bkrfs_itable *t;
	bkrfs_inode *i, *x;
	bkrfs_prune *p;
	bkrfs_ino *v;
	size_t len, n;
	uint8_t *k;

	(void)state;
	assert_int_equal(bkrfs_itable_new(&t, count_release), 0);
	assert_non_null(i = calloc(1, sizeof(*i)));
	i->kind = BKRFS_NODE_ENTRY;
	i->st.st_mode = S_IFREG | 0644;
	i->parent = 99;
	i->path = strdup("ws/config/app.json");
	i->name = strdup("2026-11-30T01:21:43");
	k = mkkey(&len, 'v', "b", "ws/config/app.json");
	x = bkrfs_itable_enter(t, i, k, len, true);
	bkrfs_itable_put(t, x);
	assert_non_null(i = calloc(1, sizeof(*i)));
	i->kind = BKRFS_NODE_VERSIONS;
	i->st.st_mode = S_IFDIR | 0555;
	i->path = strdup("ws/config");
	k = mkkey(&len, 'V', "ws/config", NULL);
	x = bkrfs_itable_enter(t, i, k, len, true);
	bkrfs_itable_put(t, x);
	n = bkrfs_itable_of_kind(t, BKRFS_NODE_VERSIONS, &v);
	assert_int_equal(n, 1);
	assert_int_equal(v[0], x->ino);
	free(v);
	assert_int_equal(bkrfs_itable_of_kind(t, BKRFS_NODE_TAG, &v), 0);
	assert_null(v);
	n = bkrfs_itable_prune(t, 1, &p);
	assert_int_equal(n, 1);
	assert_int_equal(p[0].parent, 99);
	assert_string_equal(p[0].name, "2026-11-30T01:21:43");
	free(p[0].name);
	free(p);
	bkrfs_itable_free(t);
}

static void test_pinned_and_growth(void **state)
{
	bkrfs_itable *t;
	bkrfs_inode *root = calloc(1, sizeof(*root));
	char name[32];

	assert_int_equal(bkrfs_itable_new(&t, NULL), 0);
	assert_int_equal(bkrfs_itable_pin(t, root, BKRFS_INO_ROOT), 0);
	bkrfs_itable_forget(t, BKRFS_INO_ROOT, 100);
	assert_non_null(bkrfs_itable_get(t, BKRFS_INO_ROOT));
	bkrfs_itable_put(t, root);
	for (int k = 0; k < 5000; k++) {
		snprintf(name, sizeof(name), "f%d", k);
		bkrfs_itable_put(t, enter(t, 'E', "b", name, true));
	}
	assert_int_equal(bkrfs_itable_count(t), 5001);
	for (int k = 0; k < 5000; k++) {
		size_t len;
		uint8_t *key;
		snprintf(name, sizeof(name), "f%d", k);
		key = mkkey(&len, 'E', "b", name);
		bkrfs_itable_forget(t, bkrfs_itable_peek(t, key, len, NULL), 1);
		free(key);
	}
	assert_int_equal(bkrfs_itable_count(t), 1);
	bkrfs_itable_free(t);
}

/* ---- layout ------------------------------------------------------------------ */

static void mk_layout(bkrfs_layout *l, uint64_t size, const uint32_t *clen, size_t nc,
		      const bkr_hole *h, size_t nh, int expect)
{
	bkr_chunk_ref *c = calloc(nc + 1, sizeof(*c));
	bkr_hole *hh = calloc(nh + 1, sizeof(*hh));
	for (size_t k = 0; k < nc; k++) {
		c[k].length = clen[k];
		c[k].id.b[0] = (uint8_t)k;
	}
	if (nh)
		memcpy(hh, h, nh * sizeof(*h));
	assert_int_equal(bkrfs_layout_init(l, size, c, nc, hh, nh), expect);
}

static void test_layout_no_holes(void **state)
{
	const uint32_t clen[] = { 100, 50, 200 };
	bkrfs_layout l;
	bkrfs_extent x;

	mk_layout(&l, 350, clen, 3, NULL, 0, 0);
	assert_int_equal(bkrfs_layout_chunk_at(&l, 0), 0);
	assert_int_equal(bkrfs_layout_chunk_at(&l, 99), 0);
	assert_int_equal(bkrfs_layout_chunk_at(&l, 100), 1);
	assert_int_equal(bkrfs_layout_chunk_at(&l, 149), 1);
	assert_int_equal(bkrfs_layout_chunk_at(&l, 150), 2);
	assert_int_equal(bkrfs_layout_chunk_at(&l, 349), 2);
	assert_int_equal(bkrfs_layout_chunk_at(&l, 350), 3);
	assert_int_equal(bkrfs_layout_piece(&l, 90, 1000, &x), 1);
	assert_false(x.hole);
	assert_int_equal(x.chunk, 0);
	assert_int_equal(x.chunk_off, 90);
	assert_int_equal(x.len, 10);
	assert_int_equal(bkrfs_layout_piece(&l, 120, 5, &x), 1);
	assert_int_equal(x.chunk, 1);
	assert_int_equal(x.chunk_off, 20);
	assert_int_equal(x.len, 5);
	assert_int_equal(bkrfs_layout_piece(&l, 300, 1000, &x), 1);
	assert_int_equal(x.len, 50);
	assert_int_equal(bkrfs_layout_piece(&l, 350, 10, &x), 0);
	assert_int_equal(bkrfs_layout_seek_data(&l, 10), 10);
	assert_int_equal(bkrfs_layout_seek_hole(&l, 10), 350);
	assert_int_equal(bkrfs_layout_seek_data(&l, 350), -ENXIO);
	bkrfs_layout_fini(&l);
}

static void test_layout_holes(void **state)
{
	/* [hole 0..100)[c0 100..150)[hole 150..400)[c1 400..430)[c2 430..500)[hole 500..600) */
	const uint32_t clen[] = { 50, 30, 70 };
	const bkr_hole h[] = { { 0, 100 }, { 150, 250 }, { 500, 100 } };
	bkrfs_layout l;
	bkrfs_extent x;
	uint64_t pos = 0, total = 0;

	mk_layout(&l, 600, clen, 3, h, 3, 0);
	assert_int_equal(bkrfs_layout_piece(&l, 0, 1000, &x), 1);
	assert_true(x.hole);
	assert_int_equal(x.len, 100);
	assert_int_equal(bkrfs_layout_piece(&l, 120, 1000, &x), 1);
	assert_false(x.hole);
	assert_int_equal(x.chunk, 0);
	assert_int_equal(x.chunk_off, 20);
	assert_int_equal(x.len, 30);
	assert_int_equal(bkrfs_layout_piece(&l, 420, 1000, &x), 1);
	assert_int_equal(x.chunk, 1);
	assert_int_equal(x.chunk_off, 20);
	assert_int_equal(x.len, 10);
	assert_int_equal(bkrfs_layout_piece(&l, 430, 1000, &x), 1);
	assert_int_equal(x.chunk, 2);
	assert_int_equal(x.chunk_off, 0);
	assert_int_equal(x.len, 70);
	assert_int_equal(bkrfs_layout_piece(&l, 550, 1000, &x), 1);
	assert_true(x.hole);
	assert_int_equal(x.len, 50);
	/* the pieces tile the file exactly */
	while (bkrfs_layout_piece(&l, pos, 600, &x)) {
		pos += x.len;
		total += x.len;
	}
	assert_int_equal(total, 600);
	/* SEEK_DATA / SEEK_HOLE */
	assert_int_equal(bkrfs_layout_seek_data(&l, 0), 100);
	assert_int_equal(bkrfs_layout_seek_data(&l, 120), 120);
	assert_int_equal(bkrfs_layout_seek_data(&l, 150), 400);
	assert_int_equal(bkrfs_layout_seek_data(&l, 510), -ENXIO);
	assert_int_equal(bkrfs_layout_seek_hole(&l, 0), 0);
	assert_int_equal(bkrfs_layout_seek_hole(&l, 100), 150);
	assert_int_equal(bkrfs_layout_seek_hole(&l, 400), 500);
	assert_int_equal(bkrfs_layout_seek_hole(&l, 599), 599);
	assert_int_equal(bkrfs_layout_seek_hole(&l, 600), -ENXIO);
	bkrfs_layout_fini(&l);
}

static void test_layout_corrupt(void **state)
{
	const uint32_t clen[] = { 50 };
	const bkr_hole overlap[] = { { 0, 100 }, { 50, 10 } };
	const bkr_hole past[] = { { 50, 100 } };
	bkrfs_layout l;

	mk_layout(&l, 60, clen, 1, NULL, 0, BKR_ECORRUPT);       /* data != size */
	mk_layout(&l, 160, clen, 1, overlap, 2, BKR_ECORRUPT);
	mk_layout(&l, 100, clen, 1, past, 1, BKR_ECORRUPT);
	mk_layout(&l, 0, NULL, 0, NULL, 0, 0);                    /* empty file */
	assert_int_equal(bkrfs_layout_seek_data(&l, 0), -ENXIO);
	bkrfs_layout_fini(&l);
}

/* ---- errno mapping ------------------------------------------------------------- */

static void test_errno_map(void **state)
{
	assert_int_equal(bkrfs_errno(BKR_OK), 0);
	assert_int_equal(bkrfs_errno(BKR_ECORRUPT), EIO);
	assert_int_equal(bkrfs_errno(BKR_ENOTFOUND), ENOENT);
	assert_int_equal(bkrfs_errno(BKR_ENOMEM), ENOMEM);
	assert_int_equal(bkrfs_errno(BKR_EIO), EIO);
	assert_int_equal(bkrfs_errno(BKR_ERROR), EIO);
	assert_int_equal(bkrfs_errno(BKR_EUNSUPPORTED), EOPNOTSUPP);
	assert_int_equal(bkrfs_errno(BKR_ENOSPC), ENOSPC);
	assert_int_equal(bkrfs_errno(BKR_EUNAVAILABLE), EIO);
	assert_int_equal(bkrfs_errno(-999), EIO);
}

/* ---- the LRU --------------------------------------------------------------------- */

static int loads, frees;
static pthread_mutex_t load_mu = PTHREAD_MUTEX_INITIALIZER;

static int fake_load(void *ctx, const bkr_id *key, void **val, size_t *cost)
{
	pthread_mutex_lock(&load_mu);
	loads++;
	pthread_mutex_unlock(&load_mu);
	if (key->b[0] == 0xee)
		return bkr_error_set(BKR_ECORRUPT, "bad chunk");
	if (ctx)
		usleep(100000); /* slow: lets other threads pile up */
	*val = malloc(16);
	memset(*val, key->b[0], 16);
	*cost = 100;
	return 0;
}

static void fake_free(void *v)
{
	frees++;
	free(v);
}

static int other_loads;

static int other_load(void *ctx, const bkr_id *key, void **val, size_t *cost)
{
	(*(int *)ctx)++;
	*val = malloc(16);
	memset(*val, key->b[0], 16);
	((uint8_t *)*val)[1] = 0x6f;
	*cost = 100;
	return 0;
}

static bkr_id idn(uint8_t n)
{
	bkr_id id;
	memset(&id, 0, sizeof(id));
	id.b[0] = n;
	id.b[9] = n;
	return id;
}

/* drop-behind frees an entry when its last holder lets go; marks live as
 * long as the entry does; an extra reference keeps it */
static void test_lru_drop_and_mark(void **state)
{
	bkrfs_cache *c;
	bkrfs_cache_entry *e, *e2;
	bkrfs_cache_stats st;
	bkr_id a = idn(1), b = idn(2);
	void *v;

	(void)state;
	loads = frees = 0;
	assert_int_equal(bkrfs_cache_new(&c, 1000, fake_load, fake_free, NULL), 0);
	/* sole holder: freed at once, the cost returned */
	assert_int_equal(bkrfs_cache_get(c, &a, &e, &v), 0);
	bkrfs_cache_release_drop(c, e);
	assert_false(bkrfs_cache_contains(c, &a));
	assert_int_equal(frees, 1);
	bkrfs_cache_get_stats(c, &st);
	assert_int_equal(st.cost, 0);
	assert_int_equal(st.entries, 0);
	/* two holders: the drop waits for the other one */
	assert_int_equal(bkrfs_cache_get(c, &a, &e, &v), 0);
	assert_int_equal(bkrfs_cache_get(c, &a, &e2, &v), 0);
	assert_ptr_equal(e, e2);
	bkrfs_cache_release_drop(c, e);
	assert_true(bkrfs_cache_contains(c, &a));
	assert_int_equal(((uint8_t *)v)[0], 1); /* still valid for the holder */
	assert_int_equal(frees, 1);
	bkrfs_cache_release(c, e2);
	assert_false(bkrfs_cache_contains(c, &a));
	assert_int_equal(frees, 2);
	/* a mark is set once per place, and forgotten when the entry is
	 * evicted: a chunk shared by two files (two backups of one file, or
	 * one file at two offsets) is marked for each of them */
	assert_int_equal(bkrfs_cache_get(c, &b, &e, &v), 0);
	assert_false(bkrfs_cache_mark(c, e, 20, 0));
	assert_true(bkrfs_cache_mark(c, e, 20, 0));
	assert_false(bkrfs_cache_mark(c, e, 21, 0));
	assert_false(bkrfs_cache_mark(c, e, 20, 1 << 20));
	assert_true(bkrfs_cache_mark(c, e, 21, 0));
	assert_true(bkrfs_cache_mark(c, e, 20, 0));
	/* the last BKRFS_CACHE_MARKS places are remembered */
	for (uint64_t k = 0; k < BKRFS_CACHE_MARKS; k++)
		assert_false(bkrfs_cache_mark(c, e, 100 + k, 0));
	assert_false(bkrfs_cache_mark(c, e, 20, 0));
	assert_true(bkrfs_cache_mark(c, e, 100 + BKRFS_CACHE_MARKS - 1, 0));
	bkrfs_cache_ref(c, e); /* a second reference, as the store thread takes */
	bkrfs_cache_release_drop(c, e);
	assert_true(bkrfs_cache_contains(c, &b));
	bkrfs_cache_release(c, e);
	assert_false(bkrfs_cache_contains(c, &b));
	assert_int_equal(bkrfs_cache_get(c, &b, &e, &v), 0);
	assert_false(bkrfs_cache_mark(c, e, 20, 0)); /* a fresh load, unmarked */
	bkrfs_cache_release(c, e);
	assert_int_equal(loads, 4);
	bkrfs_cache_get_stats(c, &st);
	assert_int_equal(st.entries, 1);
	assert_int_equal(st.cost, 100);
	/* another loader for one get: used on a miss, not on a hit (/versions reads trees alone) */
	assert_int_equal(bkrfs_cache_get_by(c, &a, other_load, &other_loads, &e, &v), 0);
	assert_int_equal(((uint8_t *)v)[1], 0x6f);
	bkrfs_cache_release(c, e);
	assert_int_equal(bkrfs_cache_get_by(c, &b, other_load, &other_loads, &e, &v), 0);
	assert_int_equal(((uint8_t *)v)[1], 2); /* cached by fake_load */
	bkrfs_cache_release(c, e);
	assert_int_equal(bkrfs_cache_get(c, &a, &e, &v), 0);
	assert_int_equal(((uint8_t *)v)[1], 0x6f); /* what other_load made stays */
	bkrfs_cache_release(c, e);
	assert_int_equal(other_loads, 1);
	assert_int_equal(loads, 4);
	bkrfs_cache_free(c);
	assert_int_equal(frees, 5);
}

static void test_lru_bounded(void **state)
{
	bkrfs_cache *c;
	bkrfs_cache_entry *e;
	bkrfs_cache_stats st;
	void *v;

	loads = frees = 0;
	assert_int_equal(bkrfs_cache_new(&c, 300, fake_load, fake_free, NULL), 0);
	for (uint8_t k = 1; k <= 5; k++) {
		bkr_id id = idn(k);
		assert_int_equal(bkrfs_cache_get(c, &id, &e, &v), 0);
		assert_int_equal(((uint8_t *)v)[0], k);
		bkrfs_cache_release(c, e);
		bkrfs_cache_get_stats(c, &st);
		assert_true(st.cost <= 300);
	}
	assert_int_equal(loads, 5);
	bkrfs_cache_get_stats(c, &st);
	assert_int_equal(st.entries, 3);
	assert_int_equal(st.evictions, 2);
	/* 1 and 2 were evicted (least recently used), 3..5 are hits */
	{
		bkr_id id3 = idn(3), id1 = idn(1);
		assert_true(bkrfs_cache_contains(c, &id3));
		assert_false(bkrfs_cache_contains(c, &id1));
		assert_int_equal(bkrfs_cache_get(c, &id3, &e, &v), 0); /* 3 becomes newest */
		bkrfs_cache_release(c, e);
		assert_int_equal(loads, 5);
		id1 = idn(6);
		assert_int_equal(bkrfs_cache_get(c, &id1, &e, &v), 0); /* evicts 4 */
		bkrfs_cache_release(c, e);
		id1 = idn(4);
		assert_false(bkrfs_cache_contains(c, &id1));
		assert_true(bkrfs_cache_contains(c, &id3));
	}
	/* a referenced entry is not evicted */
	{
		bkr_id a = idn(10), b;
		bkrfs_cache_entry *held;
		void *hv;
		assert_int_equal(bkrfs_cache_get(c, &a, &held, &hv), 0);
		for (uint8_t k = 20; k < 30; k++) {
			b = idn(k);
			assert_int_equal(bkrfs_cache_get(c, &b, &e, &v), 0);
			bkrfs_cache_release(c, e);
		}
		assert_true(bkrfs_cache_contains(c, &a));
		assert_int_equal(((uint8_t *)hv)[0], 10);
		bkrfs_cache_release(c, held);
	}
	/* failures are returned and not cached */
	{
		bkr_id bad = idn(0xee);
		int before = loads;
		assert_int_equal(bkrfs_cache_get(c, &bad, &e, &v), BKR_ECORRUPT);
		assert_null(e);
		assert_int_equal(bkrfs_cache_get(c, &bad, &e, &v), BKR_ECORRUPT);
		assert_int_equal(loads, before + 2);
		assert_false(bkrfs_cache_contains(c, &bad));
	}
	bkrfs_cache_free(c);
}

struct racer {
	bkrfs_cache *c;
	int err;
	uint8_t first;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	bkrfs_cache_entry *e;
	bkr_id id = idn(7);
	void *v;

	r->err = bkrfs_cache_get(r->c, &id, &e, &v);
	if (r->err == 0) {
		r->first = ((uint8_t *)v)[0];
		bkrfs_cache_release(r->c, e);
	}
	return NULL;
}

static void test_lru_single_flight(void **state)
{
	struct racer r[8];
	pthread_t th[8];
	bkrfs_cache *c;

	loads = 0;
	assert_int_equal(bkrfs_cache_new(&c, 1000, fake_load, fake_free, (void *)1), 0);
	for (int k = 0; k < 8; k++) {
		r[k].c = c;
		assert_int_equal(pthread_create(&th[k], NULL, race, &r[k]), 0);
	}
	for (int k = 0; k < 8; k++) {
		pthread_join(th[k], NULL);
		assert_int_equal(r[k].err, 0);
		assert_int_equal(r[k].first, 7);
	}
	assert_int_equal(loads, 1); /* decoded once */
	bkrfs_cache_free(c);
}

/* A load that fails slowly, with a message naming the chunk. */
static int slow_bad_load(void *ctx, const bkr_id *key, void **val, size_t *cost)
{
	(void)ctx;
	(void)val;
	(void)cost;
	pthread_mutex_lock(&load_mu);
	loads++;
	pthread_mutex_unlock(&load_mu);
	usleep(100000); /* the other threads wait for it */
	return bkr_error_set(BKR_ECORRUPT, "chunk %02x: hash mismatch", key->b[0]);
}

struct bad_racer {
	bkrfs_cache *c;
	int err;
	char msg[128];
};

static void *bad_race(void *arg)
{
	struct bad_racer *r = arg;
	bkrfs_cache_entry *e;
	bkr_id id = idn(9);
	void *v;

	/* what this thread met before (a lookup of a missing name) */
	bkr_error_set(BKR_ENOTFOUND, "no entry named 'x'");
	r->err = bkrfs_cache_get(r->c, &id, &e, &v);
	snprintf(r->msg, sizeof(r->msg), "%s", bkr_error_message());
	return NULL;
}

/* Every thread that waited for a load that failed gets the loader's code
 * and its message, not what its own thread had before: a read that waited
 * for a prefetch worker's load logs why the chunk is bad (the line is
 * written once per chunk, and shown by user.bkr.damage). */
static void test_lru_failure_message(void **state)
{
	struct bad_racer r[6];
	pthread_t th[6];
	bkrfs_cache *c;

	(void)state;
	loads = 0;
	assert_int_equal(bkrfs_cache_new(&c, 1000, slow_bad_load, fake_free, NULL), 0);
	for (int k = 0; k < 6; k++) {
		r[k].c = c;
		assert_int_equal(pthread_create(&th[k], NULL, bad_race, &r[k]), 0);
	}
	for (int k = 0; k < 6; k++) {
		pthread_join(th[k], NULL);
		assert_int_equal(r[k].err, BKR_ECORRUPT);
		assert_string_equal(r[k].msg, "chunk 09: hash mismatch");
	}
	assert_true(loads < 6); /* some waited (single flight) */
	bkrfs_cache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_numbering_stable),
		cmocka_unit_test(test_hardlinks_share),
		cmocka_unit_test(test_lookup_counts_and_forget),
		cmocka_unit_test(test_pinned_and_growth),
		cmocka_unit_test(test_prune_selection),
		cmocka_unit_test(test_prune_version_name_and_kinds),
		cmocka_unit_test(test_layout_no_holes),
		cmocka_unit_test(test_layout_holes),
		cmocka_unit_test(test_layout_corrupt),
		cmocka_unit_test(test_errno_map),
		cmocka_unit_test(test_lru_bounded),
		cmocka_unit_test(test_lru_drop_and_mark),
		cmocka_unit_test(test_readdirplus_rollback),
		cmocka_unit_test(test_lru_single_flight),
		cmocka_unit_test(test_lru_failure_message),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
