/** @file
 * Unit tests of directory trees (engine/tree.c): exact round trips of every
 * field of every entry type, name order and binary search, duplicate and
 * invalid-name rejection, paged directories read through a loader fed from an
 * in-memory blob store, and hostile blobs (truncated, offsets and lengths past
 * the end, unsorted, duplicate names, bad type/magic/version, overflowing
 * counts).  Each test gets a fresh blob store and a mkdtemp scratch directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bkr/error.h"
#include "bkr/format.h"
#include "bkr/hash.h"
#include "bkr/io.h"
#include "bkr/tree.h"

#include "testutil.h"

/* ---- fixture: an in-memory blob store ------------------------------------ */

struct blob {
	bkr_id id;
	uint8_t *data;
	size_t len;
};

struct store {
	char dir[PATH_MAX];  /* mkdtemp scratch dir */
	struct blob *blobs;
	size_t n, cap;
	int emits, loads;
	bool check_children; /* emit: every child of an inner blob was emitted first */
};

static int setup(void **state)
{
	struct store *s = calloc(1, sizeof(*s));
	if (!s)
		return -1;
	snprintf(s->dir, sizeof(s->dir), "/tmp/bkr-test-tree-XXXXXX");
	if (!mkdtemp(s->dir)) {
		free(s);
		return -1;
	}
	s->check_children = true;
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	struct store *s = *state;
	for (size_t i = 0; i < s->n; i++)
		free(s->blobs[i].data);
	free(s->blobs);
	tu_rmrf(s->dir);
	free(s);
	return 0;
}

static struct blob *store_find(struct store *s, const bkr_id *id)
{
	for (size_t i = 0; i < s->n; i++)
		if (bkr_id_cmp(&s->blobs[i].id, id) == 0)
			return &s->blobs[i];
	return NULL;
}

static uint8_t *dup_bytes(const void *p, size_t len)
{
	uint8_t *q = malloc(len ? len : 1);
	assert_non_null(q);
	if (len)
		memcpy(q, p, len);
	return q;
}

static int emit_cb(void *ctx, bkr_id *id, const uint8_t *data, size_t len)
{
	struct store *s = ctx;
	bkr_id h;
	bkr_tree *t = NULL;

	/* the id is the emitter's to give (one hash per blob: an encrypted
	 * repository's keyed id is not computed on top of a SHA-256) */
	memset(&h, 0, sizeof(h));
	assert_memory_equal(h.b, id->b, BKR_ID_SIZE);
	bkr_sha256(data, len, id);
	assert_true(len <= BKR_BLOB_MAX);
	/* every emitted blob parses, and inner ones only name blobs already emitted */
	assert_int_equal(bkr_tree_parse(&t, dup_bytes(data, len), len), 0);
	if (bkr_tree_is_inner(t) && s->check_children) {
		for (uint32_t i = 0; i < bkr_tree_count(t); i++) {
			const uint8_t *fn;
			size_t fl;
			bkr_id child;
			uint32_t entries;
			assert_int_equal(bkr_tree_child(t, i, &fn, &fl, &child, &entries), 0);
			assert_non_null(store_find(s, &child));
		}
	} else if (!bkr_tree_is_inner(t)) {
		assert_true(bkr_tree_count(t) <= BKR_TREE_PAGE_MAX);
	}
	bkr_tree_free(t);
	s->emits++;
	if (store_find(s, id))
		return 0;
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 16;
		s->blobs = realloc(s->blobs, s->cap * sizeof(*s->blobs));
		assert_non_null(s->blobs);
	}
	s->blobs[s->n++] = (struct blob){ *id, dup_bytes(data, len), len };
	return 0;
}

/** The repository's job, done here: find, re-hash, parse. */
static int load_cb(void *ctx, const bkr_id *id, bkr_tree **out)
{
	struct store *s = ctx;
	struct blob *b = store_find(s, id);

	*out = NULL;
	s->loads++;
	if (!b)
		return bkr_error_set(BKR_ENOTFOUND, "no such tree blob");
	return bkr_tree_parse(out, dup_bytes(b->data, b->len), b->len);
}

static int failing_emit(void *ctx, bkr_id *id, const uint8_t *data, size_t len)
{
	return bkr_error_set(BKR_ENOSPC, "disk full (test)");
}

/* ---- entry fixtures ----------------------------------------------------- */

static const uint8_t big_value[BKR_XATTR_INLINE_MAX] = { 1, 2, 3 };

static const bkr_xattr xattrs[] = {
	{ (const uint8_t *)"user.comment", 12, (const uint8_t *)"hello\0world", 11, false, {{0}} },
	{ (const uint8_t *)"user.empty", 10, (const uint8_t *)"", 0, false, {{0}} },
	{ (const uint8_t *)"user.max", 8, big_value, BKR_XATTR_INLINE_MAX, false, {{0}} },
	{ (const uint8_t *)"security.big", 12, NULL, 100000, true, {{ 0xde, 0xad, 0xbe, 0xef }} },
};
static const bkr_hole holes[] = { { 0, 4096 }, { 1u << 20, 8192 }, { 10u << 20, 1 } };

static bkr_chunk_ref chunks[3];

static bkr_entry base_entry(const char *name, size_t name_len, uint8_t type)
{
	bkr_entry e;
	memset(&e, 0, sizeof(e));
	e.name = (const uint8_t *)name;
	e.name_len = name_len;
	e.type = type;
	e.mode = 0100644;
	e.uid = 1000;
	e.gid = 100;
	e.user = (const uint8_t *)"alice";
	e.user_len = 5;
	e.group = (const uint8_t *)"users";
	e.group_len = 5;
	e.mtime_ns = 1700000000123456789LL;
	e.ctime_ns = 1700000001987654321LL;
	e.inode = 4242;
	e.nlink = 1;
	return e;
}

/** A directory with one entry of each kind and every field set. */
static size_t all_entries(bkr_entry *out)
{
	size_t n = 0;
	bkr_entry e;

	for (int i = 0; i < 3; i++) {
		bkr_sha256(&i, sizeof(i), &chunks[i].id);
		chunks[i].length = 1000000 + (uint32_t)i;
	}
	e = base_entry("file with spaces.json", 21, BKR_FT_FILE);
	e.mode = 0104755; /* setuid */
	e.size = 3000003 + 4096 + 8192 + 1;
	e.blocks = 5880;
	e.xattrs = xattrs;
	e.nxattrs = 4;
	e.holes = holes;
	e.nholes = 3;
	e.chunks = chunks;
	e.nchunks = 3;
	memset(e.content.b, 0x11, BKR_ID_SIZE);
	out[n++] = e;

	e = base_entry("sub", 3, BKR_FT_DIR);
	e.mode = 041777; /* sticky */
	e.nlink = 2;
	e.user_len = 0;  /* unknown user and group names */
	e.group_len = 0;
	e.user = NULL;
	e.group = NULL;
	memset(e.subtree.b, 0x22, BKR_ID_SIZE);
	out[n++] = e;

	e = base_entry("link", 4, BKR_FT_SYMLINK);
	e.mode = 0120777;
	e.target = (const uint8_t *)"../target with\nnewline\xff";
	e.target_len = strlen((const char *)e.target);
	e.size = e.target_len;
	out[n++] = e;

	e = base_entry("fifo", 4, BKR_FT_FIFO);
	e.mode = 010600;
	out[n++] = e;

	e = base_entry("tty0", 4, BKR_FT_CHR);
	e.mode = 020620;
	e.rdev = ((uint64_t)4 << 8) | 0;
	out[n++] = e;

	e = base_entry("sda1", 4, BKR_FT_BLK);
	e.mode = 060660;
	e.rdev = 0x0000000800000001ULL; /* a large 64-bit dev_t */
	out[n++] = e;

	e = base_entry("sock", 4, BKR_FT_SOCK);
	e.mode = 0140755;
	out[n++] = e;

	e = base_entry("new\nline", 8, BKR_FT_FILE);
	e.mtime_ns = -1234567890123LL; /* before 1970 */
	e.ctime_ns = INT64_MIN;
	e.size = UINT64_MAX;
	e.uid = UINT32_MAX;
	e.gid = UINT32_MAX;
	e.link_group = 77;
	e.nlink = 2;
	e.inode = UINT64_MAX;
	out[n++] = e;

	e = base_entry("\xff\xfe\x80 latin", 9, BKR_FT_FILE);
	e.link_group = 77; /* same hardlink group as "new\nline" */
	e.nlink = 2;
	e.inode = UINT64_MAX;
	out[n++] = e;
	return n;
}

static void assert_bytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	assert_int_equal(alen, blen);
	if (alen)
		assert_memory_equal(a, b, alen);
}

/** Every field of @p got (parsed from @p t, record @p i) equals @p want. */
static void assert_entry_equal(const bkr_tree *t, uint32_t i, const bkr_entry *want, const bkr_entry *got)
{
	bkr_chunk_ref *c = NULL;
	bkr_hole *h = NULL;
	bkr_xattr *x = NULL;
	size_t n;

	assert_bytes(got->name, got->name_len, want->name, want->name_len);
	assert_int_equal(got->type, want->type);
	assert_int_equal(got->mode, want->mode);
	assert_int_equal(got->uid, want->uid);
	assert_int_equal(got->gid, want->gid);
	assert_bytes(got->user, got->user_len, want->user, want->user_len);
	assert_bytes(got->group, got->group_len, want->group, want->group_len);
	assert_true(got->mtime_ns == want->mtime_ns);
	assert_true(got->ctime_ns == want->ctime_ns);
	assert_true(got->size == want->size);
	assert_true(got->blocks == want->blocks);
	assert_true(got->rdev == want->rdev);
	assert_true(got->inode == want->inode);
	assert_int_equal(got->nlink, want->nlink);
	assert_true(got->link_group == want->link_group);
	assert_bytes(got->target, got->target_len, want->target, want->target_len);
	assert_memory_equal(got->content.b, want->content.b, BKR_ID_SIZE);
	assert_memory_equal(got->subtree.b, want->subtree.b, BKR_ID_SIZE);
	assert_null(got->xattrs);
	assert_null(got->holes);
	assert_null(got->chunks);
	assert_int_equal(got->nxattrs, want->nxattrs);
	assert_int_equal(got->nholes, want->nholes);
	assert_int_equal(got->nchunks, want->nchunks);

	assert_int_equal(bkr_tree_chunks(t, i, &c, &n), 0);
	assert_int_equal(n, want->nchunks);
	for (size_t k = 0; k < n; k++) {
		assert_memory_equal(c[k].id.b, want->chunks[k].id.b, BKR_ID_SIZE);
		assert_int_equal(c[k].length, want->chunks[k].length);
	}
	free(c);
	assert_int_equal(bkr_tree_holes(t, i, &h, &n), 0);
	assert_int_equal(n, want->nholes);
	for (size_t k = 0; k < n; k++) {
		assert_true(h[k].offset == want->holes[k].offset);
		assert_true(h[k].length == want->holes[k].length);
	}
	free(h);
	assert_int_equal(bkr_tree_xattrs(t, i, &x, &n), 0);
	assert_int_equal(n, want->nxattrs);
	for (size_t k = 0; k < n; k++) {
		assert_bytes(x[k].name, x[k].name_len, want->xattrs[k].name, want->xattrs[k].name_len);
		assert_int_equal(x[k].in_blob, want->xattrs[k].in_blob);
		assert_int_equal(x[k].value_len, want->xattrs[k].value_len);
		if (x[k].in_blob) {
			assert_null(x[k].value);
			assert_memory_equal(x[k].blob.b, want->xattrs[k].blob.b, BKR_ID_SIZE);
		} else {
			assert_non_null(x[k].value);
			assert_bytes(x[k].value, x[k].value_len, want->xattrs[k].value,
				     want->xattrs[k].value_len);
		}
	}
	free(x);
}

/** Build a directory from @p ents, return the parsed root (one leaf expected). */
static bkr_tree *build_leaf(struct store *s, const bkr_entry *ents, size_t n, bkr_id *root)
{
	bkr_tree_builder *b = NULL;
	struct blob *blob;
	bkr_tree *t = NULL;

	assert_int_equal(bkr_tree_builder_new(&b), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(bkr_tree_builder_add(b, &ents[i]), 0);
	assert_int_equal(bkr_tree_builder_count(b), n);
	assert_int_equal(bkr_tree_builder_finish(b, emit_cb, s, root), 0);
	assert_int_equal(bkr_tree_builder_count(b), 0);
	bkr_tree_builder_free(b);
	assert_non_null(blob = store_find(s, root));
	assert_int_equal(bkr_tree_parse(&t, dup_bytes(blob->data, blob->len), blob->len), 0);
	assert_false(bkr_tree_is_inner(t));
	return t;
}

/* ---- tests -------------------------------------------------------------- */

static void test_name_valid(void **state)
{
	static uint8_t longname[65536];

	memset(longname, 'x', sizeof(longname));
	assert_false(bkr_tree_name_valid((const uint8_t *)"", 0));
	assert_false(bkr_tree_name_valid(NULL, 3));
	assert_false(bkr_tree_name_valid((const uint8_t *)".", 1));
	assert_false(bkr_tree_name_valid((const uint8_t *)"..", 2));
	assert_false(bkr_tree_name_valid((const uint8_t *)"a/b", 3));
	assert_false(bkr_tree_name_valid((const uint8_t *)"/", 1));
	assert_false(bkr_tree_name_valid((const uint8_t *)"a\0b", 3));
	assert_false(bkr_tree_name_valid(longname, 65536));
	assert_true(bkr_tree_name_valid(longname, 65535));
	assert_true(bkr_tree_name_valid((const uint8_t *)"...", 3));
	assert_true(bkr_tree_name_valid((const uint8_t *)".a", 2));
	assert_true(bkr_tree_name_valid((const uint8_t *)"a b", 3));
	assert_true(bkr_tree_name_valid((const uint8_t *)"\n", 1));
	assert_true(bkr_tree_name_valid((const uint8_t *)"\xff\xfe", 2));
}

static void test_round_trip_all_types(void **state)
{
	struct store *s = *state;
	bkr_entry ents[16], got;
	size_t n = all_entries(ents);
	bkr_tree *t;
	bkr_id root;
	uint32_t idx;

	t = build_leaf(s, ents, n, &root);
	assert_int_equal(s->emits, 1);
	assert_int_equal(bkr_tree_count(t), n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(bkr_tree_find(t, ents[i].name, ents[i].name_len, &idx), 0);
		assert_int_equal(bkr_tree_get(t, idx, &got), 0);
		assert_entry_equal(t, idx, &ents[i], &got);
	}
	/* the same entries in another order give the same blob (canonical encoding) */
	{
		bkr_entry rev[16];
		bkr_id root2;
		bkr_tree *t2;
		for (size_t i = 0; i < n; i++)
			rev[i] = ents[n - 1 - i];
		t2 = build_leaf(s, rev, n, &root2);
		assert_memory_equal(root.b, root2.b, BKR_ID_SIZE);
		bkr_tree_free(t2);
	}
	/* out of range, wrong kind of node */
	assert_int_equal(bkr_tree_get(t, (uint32_t)n, &got), BKR_EINVAL);
	{
		const uint8_t *fn;
		size_t fl;
		bkr_id child;
		uint32_t entries;
		assert_int_equal(bkr_tree_child(t, 0, &fn, &fl, &child, &entries), BKR_EINVAL);
	}
	bkr_tree_free(t);
	bkr_tree_free(NULL);
	bkr_tree_builder_free(NULL);
	bkr_dir_free(NULL);
}

static void test_builder_copies(void **state)
{
	struct store *s = *state;
	char name[8] = "mutable", user[6] = "alice";
	uint8_t val[4] = { 1, 2, 3, 4 };
	bkr_xattr x = { (const uint8_t *)"user.x", 6, val, 4, false, {{0}} };
	bkr_tree_builder *b = NULL;
	bkr_entry e = base_entry(name, 7, BKR_FT_FILE), got;
	bkr_xattr *xs = NULL;
	size_t nx;
	bkr_tree *t = NULL;
	bkr_id root;
	struct blob *blob;

	e.user = (const uint8_t *)user;
	e.xattrs = &x;
	e.nxattrs = 1;
	assert_int_equal(bkr_tree_builder_new(&b), 0);
	assert_int_equal(bkr_tree_builder_add(b, &e), 0);
	/* the caller's buffers change after add: the builder kept its own copy */
	memcpy(name, "changed", 7);
	memcpy(user, "bobby", 5);
	val[0] = 9;
	assert_int_equal(bkr_tree_builder_finish(b, emit_cb, s, &root), 0);
	bkr_tree_builder_free(b);
	blob = store_find(s, &root);
	assert_int_equal(bkr_tree_parse(&t, dup_bytes(blob->data, blob->len), blob->len), 0);
	assert_int_equal(bkr_tree_get(t, 0, &got), 0);
	assert_memory_equal(got.name, "mutable", 7);
	assert_memory_equal(got.user, "alice", 5);
	assert_int_equal(bkr_tree_xattrs(t, 0, &xs, &nx), 0);
	assert_int_equal(nx, 1);
	assert_int_equal(xs[0].value[0], 1);
	free(xs);
	bkr_tree_free(t);
}

static void test_sort_and_find(void **state)
{
	struct store *s = *state;
	const char *names[] = { "b", "a", "ab", "aa", "A", "\x01", "\xff", "a\xff", "abc", "Z", "~", "a b" };
	const char *sorted[] = { "\x01", "A", "Z", "a", "a b", "aa", "ab", "abc", "a\xff", "b", "~", "\xff" };
	size_t n = sizeof(names) / sizeof(names[0]);
	bkr_entry ents[16], got;
	bkr_tree *t;
	bkr_id root;
	uint32_t idx;

	for (size_t i = 0; i < n; i++)
		ents[i] = base_entry(names[i], strlen(names[i]), BKR_FT_FILE);
	t = build_leaf(s, ents, n, &root);
	for (uint32_t i = 0; i < n; i++) {
		assert_int_equal(bkr_tree_get(t, i, &got), 0);
		assert_bytes(got.name, got.name_len, (const uint8_t *)sorted[i], strlen(sorted[i]));
		assert_int_equal(bkr_tree_find(t, (const uint8_t *)sorted[i], strlen(sorted[i]), &idx), 0);
		assert_int_equal(idx, i);
	}
	const char *missing[] = { "", "\x00", "B", "a ", "abcd", "b\x01", "\xff\xff", "0" };
	for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
		size_t len = i == 1 ? 1 : strlen(missing[i]);
		assert_int_equal(bkr_tree_find(t, (const uint8_t *)missing[i], len, &idx), BKR_ENOTFOUND);
	}
	bkr_tree_free(t);
}

static void test_duplicates_rejected(void **state)
{
	struct store *s = *state;
	bkr_tree_builder *b = NULL;
	bkr_entry e1 = base_entry("same\xff", 5, BKR_FT_FILE), e2 = base_entry("other", 5, BKR_FT_DIR);
	bkr_id root;

	assert_int_equal(bkr_tree_builder_new(&b), 0);
	assert_int_equal(bkr_tree_builder_add(b, &e1), 0);
	assert_int_equal(bkr_tree_builder_add(b, &e2), 0);
	e1.type = BKR_FT_DIR; /* a different entry with the same name */
	assert_int_equal(bkr_tree_builder_add(b, &e1), 0);
	assert_int_equal(bkr_tree_builder_finish(b, emit_cb, s, &root), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "duplicate entry name 'same\\xff'"));
	assert_int_equal(s->emits, 0);
	assert_true(bkr_id_is_zero(&root));
	/* the builder is empty and reusable */
	assert_int_equal(bkr_tree_builder_count(b), 0);
	assert_int_equal(bkr_tree_builder_add(b, &e1), 0);
	assert_int_equal(bkr_tree_builder_finish(b, emit_cb, s, &root), 0);
	assert_int_equal(s->emits, 1);
	/* an emit failure is passed through */
	assert_int_equal(bkr_tree_builder_add(b, &e1), 0);
	assert_int_equal(bkr_tree_builder_finish(b, failing_emit, s, &root), BKR_ENOSPC);
	assert_non_null(strstr(bkr_error_message(), "disk full"));
	bkr_tree_builder_free(b);
}

static void test_invalid_rejected(void **state)
{
	bkr_tree_builder *b = NULL;
	struct { const char *name; size_t len; } bad[] = {
		{ "", 0 }, { ".", 1 }, { "..", 2 }, { "a/b", 3 }, { "nul\0byte", 8 }, { "/", 1 },
	};
	bkr_entry e;
	bkr_xattr x;
	bkr_hole h[2] = { { 0, 100 }, { 50, 10 } };
	static uint8_t big[BKR_XATTR_INLINE_MAX + 1];

	assert_int_equal(bkr_tree_builder_new(&b), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		e = base_entry(bad[i].name, bad[i].len, BKR_FT_FILE);
		assert_int_equal(bkr_tree_builder_add(b, &e), BKR_EINVAL);
		assert_non_null(strstr(bkr_error_message(), "invalid entry name"));
	}
	e = base_entry("ok", 2, 0);
	assert_int_equal(bkr_tree_builder_add(b, &e), BKR_EINVAL);
	e.type = 8;
	assert_int_equal(bkr_tree_builder_add(b, &e), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "bad file type 8"));

	/* an inline xattr value over 4 KiB must come as a blob */
	e = base_entry("ok", 2, BKR_FT_FILE);
	x = (bkr_xattr){ (const uint8_t *)"user.big", 8, big, sizeof(big), false, {{0}} };
	e.xattrs = &x;
	e.nxattrs = 1;
	assert_int_equal(bkr_tree_builder_add(b, &e), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "must be stored as a blob"));
	x.in_blob = true;
	x.value = NULL;
	assert_int_equal(bkr_tree_builder_add(b, &e), 0);
	x = (bkr_xattr){ (const uint8_t *)"", 0, big, 1, false, {{0}} };
	e.name = (const uint8_t *)"ok2";
	e.name_len = 3;
	assert_int_equal(bkr_tree_builder_add(b, &e), BKR_EINVAL);

	/* overlapping holes */
	e = base_entry("ok3", 3, BKR_FT_FILE);
	e.holes = h;
	e.nholes = 2;
	assert_int_equal(bkr_tree_builder_add(b, &e), BKR_EINVAL);
	assert_int_equal(bkr_tree_builder_count(b), 1);
	bkr_tree_builder_free(b); /* frees the one added entry */
}

static void test_empty_dir(void **state)
{
	struct store *s = *state;
	bkr_tree *t;
	bkr_id root;
	bkr_dir *d = NULL;
	bkr_entry e;
	uint32_t idx;

	t = build_leaf(s, NULL, 0, &root);
	assert_int_equal(bkr_tree_count(t), 0);
	assert_int_equal(bkr_tree_find(t, (const uint8_t *)"x", 1, &idx), BKR_ENOTFOUND);
	bkr_tree_free(t);
	assert_int_equal(bkr_dir_open(&d, &root, load_cb, s), 0);
	assert_int_equal(bkr_dir_count(d), 0);
	assert_int_equal(bkr_dir_get(d, 0, &e, NULL, NULL), BKR_ENOTFOUND);
	assert_int_equal(bkr_dir_find(d, (const uint8_t *)"x", 1, &e, NULL, NULL, NULL), BKR_ENOTFOUND);
	bkr_dir_free(d);
}

/* ---- paged directories -------------------------------------------------- */

static void paged_name(size_t i, char *out)
{
	/* spread over a few prefixes so sorting matters */
	snprintf(out, 32, "%c-entry-%07zu", "qazm"[i % 4], i);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct finder {
	bkr_dir *d;
	char **sorted;
	size_t n;
	int start, failures;
};

static void *find_thread(void *arg)
{
	struct finder *f = arg;
	bkr_entry e;
	uint64_t idx;

	for (size_t i = (size_t)f->start; i < f->n; i += 4) {
		if (bkr_dir_find(f->d, (const uint8_t *)f->sorted[i], strlen(f->sorted[i]), &e, NULL,
				 NULL, &idx) != 0 || idx != i)
			f->failures++;
	}
	return NULL;
}

static void check_paged(struct store *s, size_t n, int want_blobs)
{
	bkr_tree_builder *b = NULL;
	char **names = calloc(n, sizeof(*names)), **sorted = calloc(n, sizeof(*sorted));
	bkr_id root;
	bkr_dir *d = NULL;
	bkr_entry e;
	const bkr_tree *leaf;
	uint32_t li;
	uint64_t idx;
	bkr_chunk_ref c = { {{ 7 }}, 99 };

	assert_non_null(names);
	assert_non_null(sorted);
	assert_int_equal(bkr_tree_builder_new(&b), 0);
	for (size_t k = 0; k < n; k++) {
		size_t i = (k * 7919) % n; /* a scrambled order */
		names[i] = malloc(32);
		paged_name(i, names[i]);
		bkr_entry ent = base_entry(names[i], strlen(names[i]), BKR_FT_FILE);
		ent.size = i;
		ent.inode = i;
		if (i % 3 == 0) {
			ent.chunks = &c;
			ent.nchunks = 1;
		}
		assert_int_equal(bkr_tree_builder_add(b, &ent), 0);
	}
	assert_int_equal(bkr_tree_builder_finish(b, emit_cb, s, &root), 0);
	bkr_tree_builder_free(b);
	assert_int_equal(s->emits, want_blobs);

	memcpy(sorted, names, n * sizeof(*names));
	qsort(sorted, n, sizeof(*sorted), cmp_str);

	assert_int_equal(bkr_dir_open(&d, &root, load_cb, s), 0);
	assert_int_equal(s->loads, 1); /* only the top so far */
	assert_int_equal(bkr_dir_count(d), n);
	for (uint64_t i = 0; i < n; i++) {
		assert_int_equal(bkr_dir_get(d, i, &e, &leaf, &li), 0);
		assert_bytes(e.name, e.name_len, (const uint8_t *)sorted[i], strlen(sorted[i]));
		bkr_chunk_ref *cs = NULL;
		size_t nc;
		assert_int_equal(bkr_tree_chunks(leaf, li, &cs, &nc), 0);
		assert_int_equal(nc, e.size % 3 == 0 ? 1 : 0);
		if (nc)
			assert_int_equal(cs[0].length, 99);
		free(cs);
	}
	assert_int_equal(s->loads, want_blobs); /* each page loaded exactly once */
	for (uint64_t i = 0; i < n; i++) {
		assert_int_equal(bkr_dir_find(d, (const uint8_t *)sorted[i], strlen(sorted[i]), &e, &leaf,
					      &li, &idx), 0);
		assert_true(idx == i);
		assert_bytes(e.name, e.name_len, (const uint8_t *)sorted[i], strlen(sorted[i]));
	}
	assert_int_equal(bkr_dir_get(d, n, &e, NULL, NULL), BKR_ENOTFOUND);
	const char *missing[] = { "", "0", "a-entry", "q-entry-0000001x", "zzz", "m-entry-9999999" };
	for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++)
		assert_int_equal(bkr_dir_find(d, (const uint8_t *)missing[i], strlen(missing[i]), &e,
					      NULL, NULL, &idx), BKR_ENOTFOUND);
	bkr_dir_free(d);

	/* concurrent first use: pages are loaded once, under the lock */
	s->loads = 0;
	assert_int_equal(bkr_dir_open(&d, &root, load_cb, s), 0);
	{
		pthread_t th[4];
		struct finder f[4];
		for (int i = 0; i < 4; i++) {
			f[i] = (struct finder){ d, sorted, n, i, 0 };
			assert_int_equal(pthread_create(&th[i], NULL, find_thread, &f[i]), 0);
		}
		for (int i = 0; i < 4; i++) {
			pthread_join(th[i], NULL);
			assert_int_equal(f[i].failures, 0);
		}
	}
	assert_int_equal(s->loads, want_blobs);
	bkr_dir_free(d);

	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(sorted);
}

static void test_paged_10000(void **state)
{
	check_paged(*state, 10000, 3 + 1); /* 4096 + 4096 + 1808 under one inner node */
}

static void test_paged_20000(void **state)
{
	check_paged(*state, 20000, 5 + 1);
}

static void test_single_leaf_dir(void **state)
{
	check_paged(*state, BKR_TREE_PAGE_MAX, 1); /* exactly a page: no inner node */
}

static void test_paged_corrupt_child(void **state)
{
	struct store *s = *state;
	bkr_tree_builder *b = NULL;
	bkr_id root, small;
	bkr_dir *d = NULL;
	bkr_entry e;
	struct blob *r, *fake;
	bkr_tree *t = NULL;
	const uint8_t *fn;
	size_t fl;
	bkr_id child;
	uint32_t entries;
	char name[32];

	assert_int_equal(bkr_tree_builder_new(&b), 0);
	for (size_t i = 0; i < 5000; i++) {
		paged_name(i, name);
		e = base_entry(name, strlen(name), BKR_FT_FILE);
		assert_int_equal(bkr_tree_builder_add(b, &e), 0);
	}
	assert_int_equal(bkr_tree_builder_finish(b, emit_cb, s, &root), 0);
	/* a one-entry leaf whose bytes we substitute for the second page */
	e = base_entry(name, strlen(name), BKR_FT_FILE);
	assert_int_equal(bkr_tree_builder_add(b, &e), 0);
	assert_int_equal(bkr_tree_builder_finish(b, emit_cb, s, &small), 0);
	bkr_tree_builder_free(b);

	r = store_find(s, &root);
	assert_int_equal(bkr_tree_parse(&t, dup_bytes(r->data, r->len), r->len), 0);
	assert_true(bkr_tree_is_inner(t));
	assert_int_equal(bkr_tree_count(t), 2);
	assert_int_equal(bkr_tree_child(t, 0, &fn, &fl, &child, &entries), 0);
	assert_int_equal(entries, BKR_TREE_PAGE_MAX);
	assert_int_equal(bkr_tree_child(t, 1, &fn, &fl, &child, &entries), 0);
	assert_int_equal(entries, 5000 - BKR_TREE_PAGE_MAX);
	fake = store_find(s, &small);
	r = store_find(s, &child);
	free(r->data);
	r->data = dup_bytes(fake->data, fake->len);
	r->len = fake->len;
	bkr_tree_free(t);

	assert_int_equal(bkr_dir_open(&d, &root, load_cb, s), 0);
	assert_int_equal(bkr_dir_get(d, 0, &e, NULL, NULL), 0);
	/* issue 10 (12): the damaged page is read once, its failure remembered */
	bkr_dir_set_failure_ttl(d, 3600LL * 1000000000LL);
	size_t before = s->loads;
	assert_int_equal(bkr_dir_get(d, 4999, &e, NULL, NULL), BKR_ECORRUPT);
	assert_non_null(strstr(bkr_error_message(), "first name differs"));
	for (int k = 0; k < 100; k++) {
		bkr_error_set(BKR_ERROR, "stale");
		assert_int_equal(bkr_dir_get(d, BKR_TREE_PAGE_MAX + (uint64_t)k, &e, NULL, NULL), BKR_ECORRUPT);
		assert_non_null(strstr(bkr_error_message(), "first name differs"));
	}
	assert_int_equal(s->loads, before + 1);
	/* the first page still reads; and with no time to remember, it is read again */
	assert_int_equal(bkr_dir_get(d, 1, &e, NULL, NULL), 0);
	bkr_dir_set_failure_ttl(d, 0);
	assert_int_equal(bkr_dir_get(d, 4999, &e, NULL, NULL), BKR_ECORRUPT);
	assert_int_equal(s->loads, before + 2);
	bkr_dir_free(d);

	/* a missing page is reported, not crashed on */
	memset(r->id.b, 0, BKR_ID_SIZE);
	assert_int_equal(bkr_dir_open(&d, &root, load_cb, s), 0);
	assert_int_equal(bkr_dir_get(d, 4999, &e, NULL, NULL), BKR_ENOTFOUND);
	bkr_dir_free(d);
}

/* ---- visiting one blob's records (bkr_tree_each) ------------------------- */

struct visit {
	struct store *s;
	int pages, entries, stop_at; /* stop_at: the entry whose callback fails (-1: none) */
	char last[32];               /* the last name seen: order is checked */
};

static int visit_entry(void *ctx, const bkr_tree *t, uint32_t i)
{
	struct visit *v = ctx;
	bkr_entry e;
	char name[32];

	assert_false(bkr_tree_is_inner(t));
	assert_int_equal(bkr_tree_get(t, i, &e), 0);
	assert_true(e.name_len < sizeof(name));
	memcpy(name, e.name, e.name_len);
	name[e.name_len] = '\0';
	assert_true(strcmp(v->last, name) < 0);
	memcpy(v->last, name, sizeof(name));
	if (v->entries++ == v->stop_at)
		return BKR_ECORRUPT;
	return 0;
}

static int visit_page(void *ctx, const bkr_id *id)
{
	struct visit *v = ctx;
	bkr_tree *t = NULL;
	int err;

	v->pages++;
	if ((err = load_cb(v->s, id, &t)) < 0)
		return err;
	err = bkr_tree_each(t, visit_page, visit_entry, v);
	bkr_tree_free(t);
	return err;
}

static void test_each(void **state)
{
	struct store *s = *state;
	bkr_tree_builder *b = NULL;
	struct visit v = { s, 0, 0, -1, "" };
	bkr_id root;
	char name[32];

	assert_int_equal(bkr_tree_builder_new(&b), 0);
	for (size_t i = 0; i < 2 * BKR_TREE_PAGE_MAX + 100; i++) {
		paged_name(i, name);
		bkr_entry e = base_entry(name, strlen(name), BKR_FT_FILE);
		assert_int_equal(bkr_tree_builder_add(b, &e), 0);
	}
	assert_int_equal(bkr_tree_builder_finish(b, emit_cb, s, &root), 0);
	bkr_tree_builder_free(b);

	/* every page once, every entry once, in name order */
	assert_int_equal(visit_page(&v, &root), 0);
	assert_int_equal(v.pages, 1 + 3);
	assert_int_equal(v.entries, 2 * BKR_TREE_PAGE_MAX + 100);

	/* a failing callback stops the walk and its error is returned */
	v = (struct visit){ s, 0, 0, BKR_TREE_PAGE_MAX + 5, "" };
	assert_int_equal(visit_page(&v, &root), BKR_ECORRUPT);
	assert_int_equal(v.entries, BKR_TREE_PAGE_MAX + 6);
	assert_int_equal(v.pages, 1 + 2);

	/* a missing page: the loader's error, and the page after it is not visited */
	struct blob *top = store_find(s, &root);
	const uint8_t *fn;
	size_t fl;
	bkr_id child;
	uint32_t entries;
	bkr_tree *t = NULL;
	assert_int_equal(bkr_tree_parse(&t, dup_bytes(top->data, top->len), top->len), 0);
	assert_int_equal(bkr_tree_child(t, 1, &fn, &fl, &child, &entries), 0);
	bkr_tree_free(t);
	store_find(s, &child)->id.b[0] ^= 1;
	v = (struct visit){ s, 0, 0, -1, "" };
	assert_int_equal(visit_page(&v, &root), BKR_ENOTFOUND);
	assert_int_equal(v.pages, 1 + 2);
	assert_int_equal(v.entries, BKR_TREE_PAGE_MAX);
}

/* ---- hostile blobs ------------------------------------------------------ */

/** A valid leaf with entries "a", "b", "c" (no user/group/target/arrays); bytes in *out. */
static uint8_t *abc_blob(struct store *s, size_t *len)
{
	bkr_entry ents[3];
	bkr_id root;
	bkr_tree *t;
	struct blob *b;

	ents[0] = base_entry("a", 1, BKR_FT_FILE);
	ents[1] = base_entry("b", 1, BKR_FT_DIR);
	ents[2] = base_entry("c", 1, BKR_FT_SYMLINK);
	for (int i = 0; i < 3; i++) {
		ents[i].user_len = ents[i].group_len = 0;
	}
	t = build_leaf(s, ents, 3, &root);
	bkr_tree_free(t);
	b = store_find(s, &root);
	*len = b->len;
	return dup_bytes(b->data, b->len);
}

/* Byte offsets inside a record without user/group/target/xattrs/holes, name of 1 byte. */
#define R_NAME_LEN 0
#define R_NAME 2
#define R_TYPE 3
#define R_XATTR_COUNT (R_TYPE + 1 + 12 + 2 + 2 + 60 + 2)
#define R_HOLE_COUNT (R_XATTR_COUNT + 2)
#define R_CHUNK_COUNT (R_HOLE_COUNT + 4)

static size_t rec(const uint8_t *blob, uint32_t i)
{
	return bkr_get_u32(blob + BKR_TREE_HEADER_SIZE + 4 * i);
}

/** Parse a mutated copy of @p good; expect @p code and @p what in the message. */
static void expect_bad(const uint8_t *good, size_t len, void (*mutate)(uint8_t *, size_t *),
		       int code, const char *what)
{
	uint8_t *copy = dup_bytes(good, len);
	size_t l = len;
	bkr_tree *t = (bkr_tree *)1;

	if (mutate)
		mutate(copy, &l);
	assert_int_equal(bkr_tree_parse(&t, copy, l), code); /* takes copy either way */
	assert_null(t);
	if (!strstr(bkr_error_message(), what))
		fail_msg("message '%s' lacks '%s'", bkr_error_message(), what);
}

static void m_bad_magic(uint8_t *b, size_t *l) { b[3] ^= 1; }
static void m_version2(uint8_t *b, size_t *l) { b[8] = 2; }
static void m_kind(uint8_t *b, size_t *l) { b[9] = 2; }
static void m_reserved(uint8_t *b, size_t *l) { b[10] = 1; }
static void m_count_max(uint8_t *b, size_t *l) { bkr_put_u32(b + 12, UINT32_MAX); }
static void m_count_big(uint8_t *b, size_t *l) { bkr_put_u32(b + 12, (uint32_t)((*l - 16) / 4 + 1)); }
static void m_off_past(uint8_t *b, size_t *l) { bkr_put_u32(b + 16 + 4, (uint32_t)*l + 10); }
static void m_off_huge(uint8_t *b, size_t *l) { bkr_put_u32(b + 16 + 8, UINT32_MAX); }
static void m_off_in_table(uint8_t *b, size_t *l) { bkr_put_u32(b + 16, 16); }
static void m_overlap(uint8_t *b, size_t *l) { bkr_put_u32(b + 16 + 4, (uint32_t)rec(b, 0) + 10); }
static void m_swap_offsets(uint8_t *b, size_t *l)
{
	uint32_t o0 = (uint32_t)rec(b, 0), o1 = (uint32_t)rec(b, 1);
	bkr_put_u32(b + 16, o1);
	bkr_put_u32(b + 20, o0);
}
static void m_name_len_past(uint8_t *b, size_t *l) { bkr_put_u16(b + rec(b, 2) + R_NAME_LEN, 0xffff); }
static void m_chunks_past(uint8_t *b, size_t *l) { bkr_put_u32(b + rec(b, 2) + R_CHUNK_COUNT, 2); }
static void m_chunks_huge(uint8_t *b, size_t *l) { bkr_put_u32(b + rec(b, 1) + R_CHUNK_COUNT, UINT32_MAX); }
static void m_holes_huge(uint8_t *b, size_t *l) { bkr_put_u32(b + rec(b, 0) + R_HOLE_COUNT, 0x10000000); }
static void m_xattrs_past(uint8_t *b, size_t *l) { bkr_put_u16(b + rec(b, 2) + R_XATTR_COUNT, 1); }
static void m_unsorted(uint8_t *b, size_t *l) { b[rec(b, 0) + R_NAME] = 'z'; }
static void m_duplicate(uint8_t *b, size_t *l) { b[rec(b, 0) + R_NAME] = 'b'; }
static void m_name_slash(uint8_t *b, size_t *l) { b[rec(b, 0) + R_NAME] = '/'; }
static void m_name_dot(uint8_t *b, size_t *l) { b[rec(b, 0) + R_NAME] = '.'; }
static void m_name_nul(uint8_t *b, size_t *l) { b[rec(b, 0) + R_NAME] = '\0'; }
static void m_name_empty(uint8_t *b, size_t *l) { bkr_put_u16(b + rec(b, 0) + R_NAME_LEN, 0); }
static void m_type0(uint8_t *b, size_t *l) { b[rec(b, 1) + R_TYPE] = 0; }
static void m_type8(uint8_t *b, size_t *l) { b[rec(b, 1) + R_TYPE] = 8; }
static void m_trunc_last(uint8_t *b, size_t *l) { *l -= 1; }
static void m_trunc_64(uint8_t *b, size_t *l) { *l -= 64; }
static void m_trunc_header(uint8_t *b, size_t *l) { *l = 15; }
static void m_trunc_table(uint8_t *b, size_t *l) { *l = 20; }
static void m_trunc_zero(uint8_t *b, size_t *l) { *l = 0; }

static void test_hostile(void **state)
{
	struct store *s = *state;
	size_t len;
	uint8_t *good = abc_blob(s, &len);
	bkr_tree *t = NULL;

	/* the unmodified blob is fine */
	assert_int_equal(bkr_tree_parse(&t, dup_bytes(good, len), len), 0);
	assert_int_equal(bkr_tree_count(t), 3);
	bkr_tree_free(t);

	expect_bad(good, len, m_trunc_zero, BKR_ECORRUPT, "truncated");
	expect_bad(good, len, m_trunc_header, BKR_ECORRUPT, "truncated");
	expect_bad(good, len, m_trunc_table, BKR_ECORRUPT, "does not fit");
	expect_bad(good, len, m_trunc_last, BKR_ECORRUPT, "past the end");
	expect_bad(good, len, m_trunc_64, BKR_ECORRUPT, "past the end");
	expect_bad(good, len, m_bad_magic, BKR_ECORRUPT, "bad magic");
	expect_bad(good, len, m_version2, BKR_EUNSUPPORTED, "unsupported version 2");
	expect_bad(good, len, m_kind, BKR_ECORRUPT, "bad kind");
	expect_bad(good, len, m_reserved, BKR_ECORRUPT, "reserved");
	expect_bad(good, len, m_count_max, BKR_ECORRUPT, "does not fit");
	expect_bad(good, len, m_count_big, BKR_ECORRUPT, "does not fit");
	expect_bad(good, len, m_off_past, BKR_ECORRUPT, "record 1: offset");
	expect_bad(good, len, m_off_huge, BKR_ECORRUPT, "past the end");
	expect_bad(good, len, m_off_in_table, BKR_ECORRUPT, "overlaps");
	expect_bad(good, len, m_overlap, BKR_ECORRUPT, "record 1: offset");
	expect_bad(good, len, m_swap_offsets, BKR_ECORRUPT, "overlaps");
	expect_bad(good, len, m_name_len_past, BKR_ECORRUPT, "record 2: name past the end");
	expect_bad(good, len, m_chunks_past, BKR_ECORRUPT, "record 2: chunks past the end");
	expect_bad(good, len, m_chunks_huge, BKR_ECORRUPT, "record 1: chunks past the end");
	expect_bad(good, len, m_holes_huge, BKR_ECORRUPT, "record 0: holes past the end");
	expect_bad(good, len, m_xattrs_past, BKR_ECORRUPT, "xattr");
	expect_bad(good, len, m_unsorted, BKR_ECORRUPT, "names not sorted");
	expect_bad(good, len, m_duplicate, BKR_ECORRUPT, "duplicate name");
	expect_bad(good, len, m_name_slash, BKR_ECORRUPT, "invalid name");
	expect_bad(good, len, m_name_dot, BKR_ECORRUPT, "invalid name");
	expect_bad(good, len, m_name_nul, BKR_ECORRUPT, "invalid name");
	expect_bad(good, len, m_name_empty, BKR_ECORRUPT, "record 0");
	expect_bad(good, len, m_type0, BKR_ECORRUPT, "bad file type");
	expect_bad(good, len, m_type8, BKR_ECORRUPT, "bad file type");
	free(good);

	/* NULL blob */
	t = (bkr_tree *)1;
	assert_int_equal(bkr_tree_parse(&t, NULL, 0), BKR_ECORRUPT);
	assert_null(t);
}

static void m_inner_zero(uint8_t *b, size_t *l) { bkr_put_u32(b + *l - 4, 0); }
static void m_inner_name(uint8_t *b, size_t *l) { b[rec(b, 0) + 2] = '/'; }
static void m_inner_trunc(uint8_t *b, size_t *l) { *l -= 1; }
static void m_inner_empty(uint8_t *b, size_t *l) { bkr_put_u32(b + 12, 0); }

static void test_hostile_inner(void **state)
{
	struct store *s = *state;
	bkr_tree_builder *b = NULL;
	bkr_entry e;
	bkr_id root;
	char name[32];
	struct blob *r;
	uint8_t *good;
	size_t len;

	assert_int_equal(bkr_tree_builder_new(&b), 0);
	for (size_t i = 0; i < BKR_TREE_PAGE_MAX + 1; i++) {
		paged_name(i, name);
		e = base_entry(name, strlen(name), BKR_FT_FILE);
		assert_int_equal(bkr_tree_builder_add(b, &e), 0);
	}
	assert_int_equal(bkr_tree_builder_finish(b, emit_cb, s, &root), 0);
	bkr_tree_builder_free(b);
	r = store_find(s, &root);
	good = dup_bytes(r->data, r->len);
	len = r->len;
	expect_bad(good, len, m_inner_zero, BKR_ECORRUPT, "empty child");
	expect_bad(good, len, m_inner_name, BKR_ECORRUPT, "invalid first name");
	expect_bad(good, len, m_inner_trunc, BKR_ECORRUPT, "past the end");
	expect_bad(good, len, m_inner_empty, BKR_ECORRUPT, "empty inner node");
	free(good);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_valid),
		cmocka_unit_test_setup_teardown(test_round_trip_all_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_builder_copies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sort_and_find, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicates_rejected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_rejected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paged_10000, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paged_20000, setup, teardown),
		cmocka_unit_test_setup_teardown(test_single_leaf_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paged_corrupt_child, setup, teardown),
		cmocka_unit_test_setup_teardown(test_each, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_inner, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
