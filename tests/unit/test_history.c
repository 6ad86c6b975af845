/** @file
 * Unit tests of history: the changes of one path over a scripted history of
 * real backups (changed, unchanged, metadata only, deleted then re-created,
 * a directory that becomes a file, a symlink retargeted, a non-UTF-8 name),
 * trees read only where the path changed, no root tree read where the
 * manifests name the source's tree, a tree that cannot be read or is
 * absent, the root, and bad paths.
 */
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
#include "bkr/diff.h"
#include "bkr/error.h"
#include "bkr/history.h"
#include "bkr/repo.h"

#include "testutil.h"

#define NB 8

typedef struct {
	char dir[256], repo[300], src[300];
	bkr_repo *r;
	bkr_manifest *m[NB];
	bkr_history_backup b[NB];
	size_t n;
} fx;

#define sh(...) assert_int_equal(tu_sh(__VA_ARGS__), 0)

static void backup(fx *f)
{
	bkr_source_spec s = { "ws", f->src, NULL, 0 };
	bkr_backup_options o = BKR_BACKUP_OPTIONS_INIT;
	o.sources = &s;
	o.nsources = 1;
	o.hostname = "h";
	assert_true(f->n < NB);
	assert_int_equal(bkr_backup_run(f->r, &o, &f->m[f->n]), 0);
	f->b[f->n].id = f->m[f->n]->backup_id;
	f->b[f->n].root = f->m[f->n]->tree;
	f->n++;
}

/*
 * The scripted history (one backup after each step):
 *   0  f "one", d/ a directory, l -> t1, \xff\xfe (not UTF-8) "x", keep "k"
 *   1  nothing changes
 *   2  f "two"; l -> t2
 *   3  chmod 600 f (metadata only); \xff\xfe "y"
 *   4  f deleted; d becomes a file
 *   5  f re-created "two"
 *   6  nothing changes
 */
static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	bkr_repo_init_options io = BKR_REPO_INIT_OPTIONS_INIT;

	assert_int_equal(tu_mkdtemp_in(f->dir, sizeof(f->dir), "test-history"), 0);
	snprintf(f->repo, sizeof(f->repo), "%s/repo", f->dir);
	snprintf(f->src, sizeof(f->src), "%s/src", f->dir);
	assert_int_equal(bkr_repo_init(f->repo, &io), 0);
	assert_int_equal(bkr_repo_open(&f->r, f->repo, 0), 0);
	sh("mkdir -p %s/d && cd %s && echo one > f && echo in > d/x && ln -s t1 l && echo x > \"$(printf '\\377\\376')\" "
	   "&& echo k > keep && touch -h -d '-1 hour' f d/x l keep \"$(printf '\\377\\376')\"",
	   f->src, f->src);
	backup(f);
	backup(f);
	sh("cd %s && echo two > f && ln -sfn t2 l && touch -h -d '-30 min' f l", f->src);
	backup(f);
	sh("cd %s && chmod 600 f && echo y > \"$(printf '\\377\\376')\"", f->src);
	backup(f);
	sh("cd %s && rm f && rm -r d && echo now-a-file > d", f->src);
	backup(f);
	sh("cd %s && echo two > f", f->src);
	backup(f);
	backup(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	for (size_t i = 0; i < f->n; i++)
		bkr_manifest_free(f->m[i]);
	bkr_repo_free(f->r);
	tu_rmrf(f->dir);
	free(f);
	return 0;
}

typedef struct {
	char changes[512];     /* "added unchanged content ..." */
	uint8_t type[NB];
	bkr_id content[NB];
	char target[NB][16];
	unsigned what[NB];
	size_t calls;
} hist;

static int on_item(void *ctx, const bkr_history_item *it)
{
	hist *h = ctx;
	size_t l = strlen(h->changes);

	assert_int_equal(it->backup, h->calls);
	h->calls++;
	snprintf(h->changes + l, sizeof(h->changes) - l, "%s%s", l ? " " : "", bkr_history_change_name(it->change));
	h->what[it->backup] = it->what;
	if (it->entry) {
		h->type[it->backup] = it->entry->type;
		h->content[it->backup] = it->entry->content;
		if (it->entry->type == BKR_FT_SYMLINK)
			snprintf(h->target[it->backup], sizeof(h->target[0]), "%.*s", (int)it->entry->target_len,
				 (const char *)it->entry->target);
		assert_true(!it->leaf == bkr_id_is_zero(&it->dir_tree)); /* the root has neither */
	}
	return 0;
}

static void run(fx *f, const char *path, hist *h)
{
	memset(h, 0, sizeof(*h));
	assert_int_equal(bkr_history_walk(f->r, f->b, f->n, path, NULL, on_item, h), 0);
	assert_int_equal(h->calls, f->n);
}

static void test_file(void **state)
{
	fx *f = *state;
	hist h;

	run(f, "ws/f", &h);
	assert_string_equal(h.changes, "added unchanged content metadata removed added unchanged");
	assert_true(h.what[2] & BKR_DIFF_CONTENT);
	assert_int_equal(h.what[3], BKR_DIFF_MODE);
	assert_false(bkr_id_cmp(&h.content[0], &h.content[2]) == 0);
	assert_true(bkr_id_cmp(&h.content[2], &h.content[5]) == 0);
	/* the same with a leading slash and "." components */
	run(f, "/ws/./f", &h);
	assert_string_equal(h.changes, "added unchanged content metadata removed added unchanged");
}

static void test_symlink_and_dir_to_file(void **state)
{
	fx *f = *state;
	hist h;

	run(f, "ws/l", &h);
	assert_string_equal(h.changes, "added unchanged content unchanged unchanged unchanged unchanged");
	assert_string_equal(h.target[0], "t1");
	assert_string_equal(h.target[2], "t2");
	run(f, "ws/d", &h);
	assert_string_equal(h.changes, "added unchanged unchanged unchanged content unchanged unchanged");
	assert_int_equal(h.type[3], BKR_FT_DIR);
	assert_int_equal(h.type[4], BKR_FT_FILE);
	assert_true(h.what[4] & BKR_DIFF_TYPE);
	/* below a directory that became a file: absent from then on */
	run(f, "ws/d/x", &h);
	assert_string_equal(h.changes, "added unchanged unchanged unchanged removed absent absent");
	run(f, "ws/nothing/here", &h);
	assert_string_equal(h.changes, "absent absent absent absent absent absent absent");
}

static void test_not_utf8(void **state)
{
	fx *f = *state;
	hist h;

	run(f, "ws/\xff\xfe", &h);
	assert_string_equal(h.changes, "added unchanged unchanged content unchanged unchanged unchanged");
}

static void test_directory_and_root(void **state)
{
	fx *f = *state;
	hist h;

	/* a directory changes when anything below it does */
	run(f, "ws", &h);
	assert_string_equal(h.changes, "added unchanged content content content content unchanged");
	run(f, "", &h);
	assert_string_equal(h.changes, "added unchanged content content content content unchanged");
}

/* trees counted through a caller's opener: only those on the path that changed */
typedef struct {
	bkr_repo *r;
	size_t opens, live;
	size_t advised, advised_before_first_open, roots_with_children;
} counter;

static int count_open(void *ctx, const bkr_id *id, bkr_dir **d, void **holder)
{
	counter *c = ctx;
	int err = bkr_dir_open(d, id, bkr_repo_load_tree_only, c->r);
	if (c->opens == 0)
		c->advised_before_first_open = c->advised;
	if (err == 0) {
		c->opens++;
		c->live++;
		*holder = *d;
	}
	return err;
}

static void count_release(void *ctx, void *holder)
{
	counter *c = ctx;
	c->live--;
	bkr_dir_free(holder);
}

static void count_advise(void *ctx, const bkr_id *id, uint32_t before)
{
	counter *c = ctx;
	c->advised++;
	c->roots_with_children += before > 0;
	assert_int_equal(bkr_repo_advise_blob(c->r, id, before), 0);
}

static void test_reads_only_changed_trees(void **state)
{
	fx *f = *state;
	counter c = { .r = f->r };
	bkr_history_dirs dirs = { count_open, count_release, &c, count_advise };
	bkr_id none;
	hist h;

	memset(&h, 0, sizeof(h));
	assert_int_equal(bkr_history_walk(f->r, f->b, f->n, "ws/keep", &dirs, on_item, &h), 0);
	assert_string_equal(h.changes, "added unchanged unchanged unchanged unchanged unchanged unchanged");
	/* two levels (the root, ws); backups 1 and 6 repeat their predecessor's trees */
	assert_int_equal(c.opens, 2 * 5);
	assert_int_equal(c.live, 0);
	/* each tree advised once before it is read, a level's all before its first
	 * read (many reads queued at once); the roots with their sources' directories */
	assert_int_equal(c.advised, 2 * 5);
	assert_int_equal(c.advised_before_first_open, 5);
	assert_int_equal(c.roots_with_children, 5);
	/* advice on a blob that is not indexed: BKR_ENOTFOUND, nothing else */
	memset(&none, 0x5a, sizeof(none));
	assert_int_equal(bkr_repo_advise_blob(f->r, &none, 0), BKR_ENOTFOUND);
	bkr_error_clear();
}

/* Walk @p path over @p b counting through a fresh @p c: the changes are @p changes,
 * every tree opened is released. */
static void counted_walk(fx *f, const bkr_history_backup *b, const char *path, counter *c, const char *changes)
{
	bkr_history_dirs dirs = { count_open, count_release, c, count_advise };
	hist h;

	memset(c, 0, sizeof(*c));
	c->r = f->r;
	memset(&h, 0, sizeof(h));
	assert_int_equal(bkr_history_walk(f->r, b, f->n, path, &dirs, on_item, &h), 0);
	assert_string_equal(h.changes, changes);
	assert_int_equal(c->live, 0);
}

/* The manifests' source subtree ids stand for the root trees' entries: a
 * path below a source reads no root tree and has the same history. */
static void test_sources_spare_root_trees(void **state)
{
	fx *f = *state;
	static const char *const paths[] = { "ws/keep", "ws/f", "ws/d", "ws/d/x", "ws/l", "ws", "other/x" };
	bkr_history_backup b[NB];
	bkr_manifest_source zero;
	counter c;
	hist plain, h;

	for (size_t i = 0; i < f->n; i++) {
		b[i] = f->b[i];
		b[i].sources = f->m[i]->sources;
		b[i].nsources = f->m[i]->nsources;
	}
	for (size_t k = 0; k < sizeof(paths) / sizeof(*paths); k++) {
		run(f, paths[k], &plain);
		memset(&h, 0, sizeof(h));
		assert_int_equal(bkr_history_walk(f->r, b, f->n, paths[k], NULL, on_item, &h), 0);
		assert_string_equal(h.changes, plain.changes);
		assert_memory_equal(h.type, plain.type, sizeof(h.type));
		assert_memory_equal(h.content, plain.content, sizeof(h.content));
		assert_memory_equal(h.what, plain.what, sizeof(h.what));
		assert_memory_equal(h.target, plain.target, sizeof(h.target));
	}
	/* ws/keep: the ws level alone is advised and read (5 distinct trees), no root */
	counted_walk(f, b, "ws/keep", &c, "added unchanged unchanged unchanged unchanged unchanged unchanged");
	assert_int_equal(c.opens, 5);
	assert_int_equal(c.advised, 5);
	assert_int_equal(c.advised_before_first_open, 5);
	assert_int_equal(c.roots_with_children, 0);
	/* a name that is no source: the root trees are read (and say it is absent) */
	counted_walk(f, b, "other/x", &c, "absent absent absent absent absent absent absent");
	assert_int_equal(c.opens, 5);
	/* a source without a tree id in its manifest: its root tree is read */
	zero = f->m[0]->sources[0];
	memset(&zero.tree, 0, sizeof(zero.tree));
	for (size_t i = 0; i < f->n; i++) {
		b[i].sources = &zero;
		b[i].nsources = 1;
	}
	counted_walk(f, b, "ws/keep", &c, "added unchanged unchanged unchanged unchanged unchanged unchanged");
	assert_int_equal(c.opens, 2 * 5);
}

static void test_damaged_tree(void **state)
{
	fx *f = *state;
	bkr_history_backup b[3] = { f->b[0], f->b[1], f->b[2] };
	hist h;

	memset(&b[1].root, 0x5a, sizeof(b[1].root));
	memset(&h, 0, sizeof(h));
	assert_int_equal(bkr_history_walk(f->r, b, 3, "ws/f", NULL, on_item, &h), 0);
	assert_string_equal(h.changes, "added error added");
	/* a zero tree: the backup has no such directory (the path is absent) */
	memset(&b[1].root, 0, sizeof(b[1].root));
	memset(&h, 0, sizeof(h));
	assert_int_equal(bkr_history_walk(f->r, b, 3, "ws/f", NULL, on_item, &h), 0);
	assert_string_equal(h.changes, "added removed added");
	memset(&h, 0, sizeof(h));
	assert_int_equal(bkr_history_walk(f->r, b, 3, "", NULL, on_item, &h), 0);
	assert_string_equal(h.changes, "added removed added");
}

static int stop_at_two(void *ctx, const bkr_history_item *it)
{
	(void)ctx;
	return it->backup == 2 ? bkr_error_set(BKR_EIO, "stop") : 0;
}

static void test_stop_and_bad_paths(void **state)
{
	fx *f = *state;
	hist h;

	assert_int_equal(bkr_history_walk(f->r, f->b, f->n, "ws/f", NULL, stop_at_two, NULL), BKR_EIO);
	memset(&h, 0, sizeof(h));
	assert_int_equal(bkr_history_walk(f->r, f->b, f->n, "ws/../etc", NULL, on_item, &h), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "ws/../etc"));
	assert_int_equal(h.calls, 0);
	assert_int_equal(bkr_history_walk(f->r, f->b, 0, "ws/f", NULL, on_item, &h), 0);
	assert_int_equal(h.calls, 0);
	assert_string_equal(bkr_history_change_name(BKR_HISTORY_METADATA), "metadata");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file),
		cmocka_unit_test(test_symlink_and_dir_to_file),
		cmocka_unit_test(test_not_utf8),
		cmocka_unit_test(test_directory_and_root),
		cmocka_unit_test(test_reads_only_changed_trees),
		cmocka_unit_test(test_sources_spare_root_trees),
		cmocka_unit_test(test_damaged_tree),
		cmocka_unit_test(test_stop_and_bad_paths),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
