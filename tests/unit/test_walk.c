/** @file
 * Unit tests of walk.c over a real backup: path resolution (root, nested,
 * missing, through a file, ".."; and through bkr_walk_dirs, which keeps the
 * directories), the depth-first iterator in name order
 * (full paths, depths, POST, NO_RECURSE, skip), an unknown root, and
 * bkr_walk_read_file (data extents only, holes as gaps; the content digest
 * checked in the entry's form: the sparse one written today, the plain one
 * of entries with holes written before it).
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "bkr/backup.h"
#include "bkr/digest.h"
#include "bkr/error.h"
#include "bkr/repo.h"
#include "bkr/walk.h"

#include "testutil.h"

typedef struct {
	char dir[256];
	char repo[300];
	char src[300];
	bkr_repo *r;
	bkr_manifest *m;
} fx;

#define sh(...) assert_int_equal(tu_sh(__VA_ARGS__), 0)

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	assert_int_equal(tu_mkdtemp_in(f->dir, sizeof(f->dir), "test-walk"), 0);
	snprintf(f->repo, sizeof(f->repo), "%s/repo", f->dir);
	snprintf(f->src, sizeof(f->src), "%s/src", f->dir);
	bkr_repo_init_options io = BKR_REPO_INIT_OPTIONS_INIT;
	assert_int_equal(bkr_repo_init(f->repo, &io), 0);
	assert_int_equal(bkr_repo_open(&f->r, f->repo, 0), 0);
	sh("mkdir -p %s/a/b %s/c && printf one > %s/a/one && printf two > %s/a/b/two && "
	   "printf z > %s/z && ln -s one %s/a/link", f->src, f->src, f->src, f->src, f->src, f->src);
	/* a sparse file: 3 bytes at 1 MiB, 2 MiB long */
	sh("printf abc | dd of=%s/c/sparse bs=1 seek=1048576 conv=notrunc status=none && truncate -s 2M %s/c/sparse",
	   f->src, f->src);
	bkr_source_spec s = { "ws", f->src, NULL, 0 };
	bkr_backup_options o = BKR_BACKUP_OPTIONS_INIT;
	o.sources = &s;
	o.nsources = 1;
	o.hostname = "h";
	o.threads = 1;
	assert_int_equal(bkr_backup_run(f->r, &o, &f->m), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	bkr_manifest_free(f->m);
	bkr_repo_free(f->r);
	tu_rmrf(f->dir);
	free(f);
	return 0;
}

static void test_resolve(void **state)
{
	fx *f = *state;
	bkr_entry e;
	bkr_dir *h = NULL;

	assert_int_equal(bkr_walk_resolve(f->r, &f->m->tree, "", &e, &h, NULL, NULL), 0);
	assert_int_equal(e.type, BKR_FT_DIR);
	assert_null(h);
	assert_int_equal(bkr_walk_resolve(f->r, &f->m->tree, "/ws//a/./b/two", &e, &h, NULL, NULL), 0);
	assert_int_equal(e.type, BKR_FT_FILE);
	assert_int_equal(e.size, 3);
	bkr_dir_free(h);
	assert_int_equal(bkr_walk_resolve(f->r, &f->m->tree, "ws/a/link", &e, &h, NULL, NULL), 0);
	assert_int_equal(e.type, BKR_FT_SYMLINK);
	assert_memory_equal(e.target, "one", 3);
	bkr_dir_free(h);
	assert_int_equal(bkr_walk_resolve(f->r, &f->m->tree, "ws/a/nope", &e, &h, NULL, NULL), BKR_ENOTFOUND);
	assert_non_null(strstr(bkr_error_message(), "ws/a/nope"));
	assert_null(h);
	assert_int_equal(bkr_walk_resolve(f->r, &f->m->tree, "ws/z/x", &e, &h, NULL, NULL), BKR_ENOTFOUND);
	assert_non_null(strstr(bkr_error_message(), "not a directory"));
	/* a trailing '/' (or "/.") names a directory: a file or a link so named is not found */
	assert_int_equal(bkr_walk_resolve(f->r, &f->m->tree, "ws/a/b/two/", &e, &h, NULL, NULL), BKR_ENOTFOUND);
	assert_non_null(strstr(bkr_error_message(), "'ws/a/b/two' is not a directory"));
	assert_null(h);
	assert_int_equal(bkr_walk_resolve(f->r, &f->m->tree, "ws/a/link/.", &e, &h, NULL, NULL), BKR_ENOTFOUND);
	assert_int_equal(bkr_walk_resolve(f->r, &f->m->tree, "ws/a/b//", &e, &h, NULL, NULL), 0);
	assert_int_equal(e.type, BKR_FT_DIR);
	bkr_dir_free(h);
	h = NULL;
	assert_int_equal(bkr_walk_resolve(f->r, &f->m->tree, "ws/a/../z", &e, &h, NULL, NULL), BKR_EINVAL);
	assert_int_equal(e.type, BKR_FT_DIR); /* the root entry on failure */
}

/* bkr_walk_dirs: the answers of bkr_walk_resolve, each directory read once
 * (by id: a second backup shares the directories that did not change), and
 * right answers when it holds fewer directories than a path needs. */
static void test_dirs(void **state)
{
	fx *f = *state;
	bkr_walk_dirs *c = NULL, *small = NULL;
	bkr_manifest *m2 = NULL;
	const bkr_tree *leaf = NULL;
	bkr_entry e;
	uint32_t li = 0;

	assert_int_equal(bkr_walk_dirs_new(&c, f->r, 64), 0);
	assert_int_equal(bkr_walk_dirs_resolve(c, &f->m->tree, "", &e, NULL, NULL), 0);
	assert_int_equal(e.type, BKR_FT_DIR);
	assert_int_equal(bkr_walk_dirs_loads(c), 0);
	assert_int_equal(bkr_walk_dirs_resolve(c, &f->m->tree, "/ws//a/./b/two", &e, &leaf, &li), 0);
	assert_int_equal(e.type, BKR_FT_FILE);
	assert_int_equal(e.size, 3);
	assert_non_null(leaf);
	assert_int_equal(bkr_walk_dirs_loads(c), 4); /* root, ws, a, b */
	assert_int_equal(bkr_walk_dirs_resolve(c, &f->m->tree, "ws/a/link", &e, NULL, NULL), 0);
	assert_int_equal(e.type, BKR_FT_SYMLINK);
	assert_memory_equal(e.target, "one", 3);
	assert_int_equal(bkr_walk_dirs_resolve(c, &f->m->tree, "ws/a/nope", &e, NULL, NULL), BKR_ENOTFOUND);
	assert_non_null(strstr(bkr_error_message(), "ws/a/nope"));
	assert_int_equal(bkr_walk_dirs_resolve(c, &f->m->tree, "ws/z/x", &e, NULL, NULL), BKR_ENOTFOUND);
	assert_non_null(strstr(bkr_error_message(), "not a directory"));
	assert_int_equal(bkr_walk_dirs_resolve(c, &f->m->tree, "ws/a/b/two/", &e, NULL, NULL), BKR_ENOTFOUND);
	assert_non_null(strstr(bkr_error_message(), "'ws/a/b/two' is not a directory"));
	assert_int_equal(bkr_walk_dirs_resolve(c, &f->m->tree, "ws/a/../z", &e, NULL, NULL), BKR_EINVAL);
	assert_int_equal(e.type, BKR_FT_DIR);
	assert_int_equal(bkr_walk_dirs_loads(c), 4); /* nothing read again */

	/* a second backup with z changed: a new root and ws, the same a */
	sh("printf zz > %s/z", f->src);
	bkr_source_spec s = { "ws", f->src, NULL, 0 };
	bkr_backup_options o = BKR_BACKUP_OPTIONS_INIT;
	o.sources = &s;
	o.nsources = 1;
	o.hostname = "h";
	o.threads = 1;
	assert_int_equal(bkr_backup_run(f->r, &o, &m2), 0);
	assert_int_equal(bkr_walk_dirs_resolve(c, &m2->tree, "ws/a/one", &e, NULL, NULL), 0);
	assert_int_equal(e.size, 3);
	assert_int_equal(bkr_walk_dirs_resolve(c, &m2->tree, "ws/z", &e, NULL, NULL), 0);
	assert_int_equal(e.size, 2);
	assert_int_equal(bkr_walk_dirs_loads(c), 6);
	assert_int_equal(bkr_walk_dirs_resolve(c, &f->m->tree, "ws/z", &e, NULL, NULL), 0);
	assert_int_equal(e.size, 1);

	/* two directories kept where a path needs four: dropped and read again, same answers */
	assert_int_equal(bkr_walk_dirs_new(&small, f->r, 2), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(bkr_walk_dirs_resolve(small, &f->m->tree, "ws/a/b/two", &e, &leaf, &li), 0);
		assert_int_equal(e.type, BKR_FT_FILE);
		assert_int_equal(e.size, 3);
		assert_int_equal(bkr_walk_dirs_resolve(small, &m2->tree, "ws/z", &e, NULL, NULL), 0);
		assert_int_equal(e.size, 2);
	}
	bkr_walk_dirs_free(small);
	bkr_walk_dirs_free(c);
	bkr_walk_dirs_free(NULL);
	bkr_manifest_free(m2);
}

/* The walk from @p path with @p flags as "path:depth[/post]" lines. */
static char *walk_all(fx *f, const char *path, unsigned flags, const char *skip)
{
	static char out[4096];
	bkr_walk *w = NULL;
	const bkr_walk_item *it;
	int r;

	out[0] = '\0';
	assert_int_equal(bkr_walk_new(&w, f->r, &f->m->tree, path, flags), 0);
	while ((r = bkr_walk_next(w, &it)) == 1) {
		assert_int_equal(it->error, 0);
		size_t k = strlen(out);
		snprintf(out + k, sizeof(out) - k, "%s:%zu%s\n", it->path, it->depth, it->post ? "/post" : "");
		assert_int_equal(strlen(it->path), it->path_len);
		if (skip && !it->post && strcmp(it->path, skip) == 0)
			bkr_walk_skip(w);
	}
	assert_int_equal(r, 0);
	bkr_walk_free(w);
	return out;
}

static void test_iterate(void **state)
{
	fx *f = *state;

	assert_string_equal(walk_all(f, "ws", 0, NULL),
			    "ws/a:1\nws/a/b:2\nws/a/b/two:3\nws/a/link:2\nws/a/one:2\n"
			    "ws/c:1\nws/c/sparse:2\nws/z:1\n");
	assert_string_equal(walk_all(f, "ws/a", BKR_WALK_POST, NULL),
			    "ws/a/b:1\nws/a/b/two:2\nws/a/b:1/post\nws/a/link:1\nws/a/one:1\n");
	assert_string_equal(walk_all(f, "ws", BKR_WALK_NO_RECURSE, NULL), "ws/a:1\nws/c:1\nws/z:1\n");
	assert_string_equal(walk_all(f, "ws", 0, "ws/a"), "ws/a:1\nws/c:1\nws/c/sparse:2\nws/z:1\n");
	assert_string_equal(walk_all(f, NULL, BKR_WALK_NO_RECURSE, NULL), "ws:1\n");

	bkr_walk *w = NULL;
	assert_int_equal(bkr_walk_new(&w, f->r, &f->m->tree, "ws/z", 0), BKR_EINVAL);
	assert_null(w);
	assert_int_equal(bkr_walk_new(&w, f->r, &f->m->tree, "ws/missing", 0), BKR_ENOTFOUND);
	bkr_walk_free(NULL);
}

typedef struct {
	uint64_t bytes, last_end;
	char data[8];
} sink;

static int collect(void *ctx, uint64_t offset, const uint8_t *data, size_t len)
{
	sink *s = ctx;
	assert_true(offset >= s->last_end);
	if (len <= sizeof(s->data))
		memcpy(s->data, data, len);
	s->bytes += len;
	s->last_end = offset + len;
	return 0;
}

static void test_read_file(void **state)
{
	fx *f = *state;
	bkr_entry e;
	bkr_dir *h = NULL;
	const bkr_tree *leaf;
	uint32_t li;
	sink s = { 0 };

	assert_int_equal(bkr_walk_resolve(f->r, &f->m->tree, "ws/c/sparse", &e, &h, &leaf, &li), 0);
	assert_int_equal(e.size, 2 << 20);
	assert_int_equal(bkr_walk_read_file(f->r, leaf, li, "sparse", collect, &s), 0);
	/* only data extents reach the callback; the holes are the gaps */
	assert_true(s.bytes >= 3 && s.bytes < (2u << 20));
	bkr_dir_free(h);

	memset(&s, 0, sizeof(s));
	assert_int_equal(bkr_walk_resolve(f->r, &f->m->tree, "ws/a/one", &e, &h, &leaf, &li), 0);
	assert_int_equal(bkr_walk_read_file(f->r, leaf, li, "one", collect, &s), 0);
	assert_int_equal(s.bytes, 3);
	assert_memory_equal(s.data, "one", 3);
	bkr_dir_free(h);
}

/* Commit writer @p w (then freed) with a tree of the one entry @p e, and read that tree back. */
static bkr_tree *commit_entry_tree(fx *f, bkr_writer *w, const bkr_entry *e)
{
	bkr_tree_builder *b;
	bkr_tree *t;
	bkr_id root;
	uint8_t *blob;
	size_t len;

	assert_int_equal(bkr_tree_builder_new(&b), 0);
	assert_int_equal(bkr_tree_builder_add(b, e), 0);
	assert_int_equal(bkr_tree_builder_finish(b, bkr_writer_emit_tree, w, &root), 0);
	assert_int_equal(bkr_writer_commit(w), 0);
	bkr_tree_builder_free(b);
	bkr_writer_free(w);
	assert_int_equal(bkr_repo_read_blob(f->r, &root, BKR_BLOB_TREE, &blob, &len), 0);
	assert_int_equal(bkr_tree_parse(&t, blob, len), 0);
	return t;
}

/* Read a one-entry leaf (4 KiB data, a 1 MiB hole) whose content is @p content. */
static int read_built(fx *f, const bkr_id *content, bool sparse_form)
{
	static uint8_t data[4096];
	bkr_writer *w;
	bkr_tree *t;
	bkr_chunk_ref ch;
	bkr_hole hole = { 4096, 1 << 20 };
	int err;

	memset(data, 'x', sizeof(data));
	assert_int_equal(bkr_writer_new(&w, f->r), 0);
	assert_int_equal(bkr_writer_put_hash(w, BKR_BLOB_DATA, data, sizeof(data), &ch.id, NULL), 0);
	ch.length = sizeof(data);
	bkr_entry e = { .name = (const uint8_t *)"f", .name_len = 1, .type = BKR_FT_FILE, .mode = 0100644,
			.size = 4096 + (1 << 20), .holes = &hole, .nholes = 1, .chunks = &ch, .nchunks = 1,
			.content = *content, .sparse_digest = sparse_form };
	t = commit_entry_tree(f, w, &e);
	bkr_entry got;
	assert_int_equal(bkr_tree_get(t, 0, &got), 0);
	assert_int_equal(got.sparse_digest, sparse_form);
	err = bkr_walk_read_file(f->r, t, 0, "f", NULL, NULL);
	bkr_error_clear();
	bkr_tree_free(t);
	return err;
}

static void test_digest_forms(void **state)
{
	fx *f = *state;
	uint8_t data[4096];
	bkr_digest *plain = bkr_digest_new(BKR_DIGEST_PLAIN), *sparse = bkr_digest_new(BKR_DIGEST_SPARSE);
	bkr_id p, s;

	memset(data, 'x', sizeof(data));
	bkr_digest_update(plain, data, sizeof(data));
	bkr_digest_zeros(plain, 1 << 20);
	bkr_digest_final(plain, &p);
	bkr_digest_update(sparse, data, sizeof(data));
	bkr_digest_zeros(sparse, 1 << 20);
	bkr_digest_final(sparse, &s);
	/* an entry of an older repository: holes, the plain form, no flag */
	assert_int_equal(read_built(f, &p, false), 0);
	/* today's: the sparse form, flagged */
	assert_int_equal(read_built(f, &s, true), 0);
	/* the flag decides the form: either one under the other's flag is damage */
	assert_int_equal(read_built(f, &p, true), BKR_ECORRUPT);
	assert_int_equal(read_built(f, &s, false), BKR_ECORRUPT);
	bkr_digest_free(plain);
	bkr_digest_free(sparse);
}

static int note_end(void *ctx, uint64_t offset, const uint8_t *data, size_t len)
{
	uint64_t *end = ctx;
	(void)data;
	if (offset + len > *end)
		*end = offset + len;
	return 0;
}

/*
 * A one-entry leaf of size @p size whose one chunk (4 KiB, after @p nholes
 * holes) reaches past it, read: the callback's furthest byte in *@p end.
 */
static int read_past_size(fx *f, uint64_t size, const bkr_hole *holes, size_t nholes, uint64_t *end)
{
	static uint8_t data[4096];
	bkr_writer *w;
	bkr_tree *t;
	bkr_chunk_ref ch;
	int err;

	memset(data, 'y', sizeof(data));
	assert_int_equal(bkr_writer_new(&w, f->r), 0);
	assert_int_equal(bkr_writer_put_hash(w, BKR_BLOB_DATA, data, sizeof(data), &ch.id, NULL), 0);
	ch.length = sizeof(data);
	bkr_entry e = { .name = (const uint8_t *)"f", .name_len = 1, .type = BKR_FT_FILE, .mode = 0100644,
			.size = size, .holes = holes, .nholes = nholes, .chunks = &ch, .nchunks = 1,
			.content = ch.id, .sparse_digest = nholes > 0 };
	t = commit_entry_tree(f, w, &e);
	*end = 0;
	err = bkr_walk_read_file(f->r, t, 0, "f", note_end, end);
	bkr_tree_free(t);
	return err;
}

/* An entry (of a damaged or forged tree) whose chunks or holes reach past
 * its size: no byte past the size reaches the reader (bkr log -p copied
 * them into a buffer of that size), and the read is damage naming it. */
static void test_data_past_size(void **state)
{
	fx *f = *state;
	bkr_hole hole = { 0, 8192 };
	uint64_t end;

	assert_int_equal(read_past_size(f, 100, NULL, 0, &end), BKR_ECORRUPT);
	assert_true(end <= 100);
	assert_non_null(strstr(bkr_error_message(), "f: chunks and holes cover more than its size, 100 bytes"));
	bkr_error_clear();
	assert_int_equal(read_past_size(f, 4096, &hole, 1, &end), BKR_ECORRUPT);
	assert_true(end <= 4096);
	bkr_error_clear();
	/* the same chunk within its size reads */
	assert_int_equal(read_past_size(f, 4096, NULL, 0, &end), 0);
	assert_int_equal(end, 4096);
}

/* A root tree id that is not in the repository: the walk does not start. */
static void test_unknown_root(void **state)
{
	fx *f = *state;
	bkr_id bad = f->m->tree;
	bkr_walk *w = NULL;

	bad.b[0] ^= 0xff;
	assert_true(bkr_walk_new(&w, f->r, &bad, NULL, 0) < 0);
	assert_null(w);
	assert_true(bkr_error_message()[0] != '\0');
}

/* The messages of bkr_walk_new name the starting directory, unless BKR_WALK_UNNAMED:
 * then the caller's own message does (restore's line names the path once). */
static void test_messages(void **state)
{
	static const struct {
		const char *path, *named, *unnamed;
	} cases[] = {
		{ "ws/missing", "path 'ws/missing': no such file or directory", "no such file or directory" },
		{ "ws/z", "path 'ws/z' is not a directory", "not a directory" },
		{ "ws/z/x", "path 'ws/z/x': 'ws/z' is not a directory", "'ws/z' is not a directory" },
		{ "ws/../a", "path 'ws/../a': '..' is not allowed", "'..' is not allowed" },
	};
	fx *f = *state;
	bkr_id bad = f->m->tree;
	bkr_walk *w = NULL;
	char named[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		assert_true(bkr_walk_new(&w, f->r, &f->m->tree, cases[i].path, BKR_WALK_POST) < 0);
		assert_string_equal(bkr_error_message(), cases[i].named);
		assert_true(bkr_walk_new(&w, f->r, &f->m->tree, cases[i].path, BKR_WALK_POST | BKR_WALK_UNNAMED) < 0);
		assert_string_equal(bkr_error_message(), cases[i].unnamed);
		assert_null(w);
	}
	/* the root tree that cannot be read: "root directory: REASON", or REASON alone */
	bad.b[0] ^= 0xff;
	assert_true(bkr_walk_new(&w, f->r, &bad, "", 0) < 0);
	snprintf(named, sizeof(named), "%s", bkr_error_message());
	assert_true(bkr_walk_new(&w, f->r, &bad, "", BKR_WALK_UNNAMED) < 0);
	assert_true(!strncmp(named, "root directory: ", 16));
	assert_string_equal(named + 16, bkr_error_message());
	assert_null(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_resolve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dirs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_iterate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_digest_forms, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_root, setup, teardown),
		cmocka_unit_test_setup_teardown(test_messages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_data_past_size, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
