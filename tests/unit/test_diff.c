/** @file
 * Unit tests of diff: two backups (added, removed, content vs metadata-only
 * changes, identical subtrees skipped, path limits) and backup vs live.
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
#include "bkr/diff.h"
#include "bkr/error.h"
#include "bkr/repo.h"

#include "testutil.h"

typedef struct {
	char dir[256], repo[300], src[300];
	bkr_repo *r;
} fx;

typedef struct {
	char log[64][256];
	unsigned what[64];
	int n;
} changes;

#define sh(...) assert_int_equal(tu_sh(__VA_ARGS__), 0)

static int on_change(void *ctx, const bkr_diff_change *ch)
{
	changes *c = ctx;
	if (c->n < 64) {
		snprintf(c->log[c->n], sizeof(c->log[0]), "%c %s",
			 ch->kind == BKR_DIFF_ADDED ? '+' : ch->kind == BKR_DIFF_REMOVED ? '-' : 'M', ch->path);
		c->what[c->n] = ch->what;
		c->n++;
	}
	return 0;
}

static int find(const changes *c, const char *s)
{
	for (int i = 0; i < c->n; i++)
		if (strcmp(c->log[i], s) == 0)
			return i;
	return -1;
}

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	assert_int_equal(tu_mkdtemp_in(f->dir, sizeof(f->dir), "test-diff"), 0);
	snprintf(f->repo, sizeof(f->repo), "%s/repo", f->dir);
	snprintf(f->src, sizeof(f->src), "%s/src", f->dir);
	bkr_repo_init_options io = BKR_REPO_INIT_OPTIONS_INIT;
	assert_int_equal(bkr_repo_init(f->repo, &io), 0);
	assert_int_equal(bkr_repo_open(&f->r, f->repo, 0), 0);
	sh("mkdir -p %s/same/deep %s/gone/sub %s/d && cd %s && echo same > same/deep/f && echo a > d/content "
	   "&& echo m > d/meta && echo x > gone/sub/y && echo k > d/keep",
	   f->src, f->src, f->src, f->src);
	sh("find %s -exec touch -h -d '-1 hour' {} +", f->src);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	bkr_repo_free(f->r);
	tu_rmrf(f->dir);
	free(f);
	return 0;
}

static bkr_manifest *backup(fx *f)
{
	bkr_source_spec s = { "ws", f->src, NULL, 0 };
	bkr_backup_options o = BKR_BACKUP_OPTIONS_INIT;
	bkr_manifest *m = NULL;
	o.sources = &s;
	o.nsources = 1;
	o.hostname = "h";
	assert_int_equal(bkr_backup_run(f->r, &o, &m), 0);
	return m;
}

static void change(fx *f)
{
	sh("cd %s && echo b > d/content && chmod 600 d/meta && rm -rf gone && mkdir -p new/x && echo n > new/x/z",
	   f->src);
	sh("touch -d '-1 hour' %s/d/content", f->src);
}

/* One of the two trees cannot be loaded: an error, and (under valgrind or
 * ASan, as tools/test.sh runs this) nothing of the other tree leaks. */
static void test_tree_fails_to_load(void **state)
{
	fx *f = *state;
	bkr_manifest *a = backup(f);
	bkr_id missing;
	bkr_diff_stats st;
	memset(&missing, 0x5a, sizeof(missing));
	assert_true(bkr_diff_trees(f->r, &a->tree, &missing, NULL, &st) < 0);
	assert_true(bkr_diff_trees(f->r, &missing, &a->tree, NULL, &st) < 0);
	bkr_manifest_free(a);
}

static void test_two_backups(void **state)
{
	fx *f = *state;
	bkr_manifest *a = backup(f);
	change(f);
	bkr_manifest *b = backup(f);
	changes c = { 0 };
	bkr_diff_stats st;
	bkr_diff_options o = BKR_DIFF_OPTIONS_INIT;
	o.callback = on_change;
	o.ctx = &c;
	o.report_children = true;
	assert_int_equal(bkr_diff_backups(f->r, a, b, &o, &st), 0);
	int i = find(&c, "M ws/d/content");
	assert_true(i >= 0);
	assert_true(c.what[i] & BKR_DIFF_CONTENT);
	i = find(&c, "M ws/d/meta");
	assert_true(i >= 0);
	assert_int_equal(c.what[i], BKR_DIFF_MODE);
	assert_true(find(&c, "- ws/gone") >= 0);
	assert_true(find(&c, "- ws/gone/sub/y") >= 0);
	assert_true(find(&c, "+ ws/new/x/z") >= 0);
	assert_int_equal(find(&c, "M ws/d/keep"), -1);
	assert_int_equal(find(&c, "M ws/same"), -1);
	assert_int_equal(st.content_modified, 1);
	/* identical: nothing */
	memset(&c, 0, sizeof(c));
	assert_int_equal(bkr_diff_backups(f->r, a, a, &o, &st), 0);
	assert_int_equal(c.n, 0);
	/* a path limit */
	static const char *const paths[] = { "ws/d" };
	o.paths = paths;
	o.npaths = 1;
	o.report_children = false;
	assert_int_equal(bkr_diff_backups(f->r, a, b, &o, &st), 0);
	assert_int_equal(st.added + st.removed, 0);
	assert_int_equal(st.modified, 2); /* content and meta (directory mtimes are not compared) */
	/* a path in neither backup: not found, naming it, before any change is reported */
	static const char *const nowhere[] = { "ws/d", "ws/nowhere" };
	memset(&c, 0, sizeof(c));
	o.paths = nowhere;
	o.npaths = 2;
	assert_int_equal(bkr_diff_backups(f->r, a, b, &o, &st), BKR_ENOTFOUND);
	assert_non_null(strstr(bkr_error_message(), "'ws/nowhere'"));
	assert_int_equal(c.n, 0);
	/* in one of them only: a change */
	static const char *const one[] = { "ws/gone", "ws/new" };
	o.paths = one;
	assert_int_equal(bkr_diff_backups(f->r, a, b, &o, &st), 0);
	assert_int_equal(st.removed, 1);
	assert_int_equal(st.added, 1);
	bkr_manifest_free(a);
	bkr_manifest_free(b);
}

/* The progress of a live diff: its calls, the last one's counts. */
typedef struct {
	int calls;
	char step[32], items[32];
	uint64_t done, total;
} progress_seen;

static void on_progress(void *ctx, const char *step, const char *items, uint64_t done, uint64_t total,
			uint64_t bytes_done, uint64_t bytes_total)
{
	progress_seen *p = ctx;
	p->calls++;
	snprintf(p->step, sizeof(p->step), "%s", step);
	snprintf(p->items, sizeof(p->items), "%s", items);
	assert_true(done >= p->done); /* never backwards */
	p->done = done;
	p->total = total;
	assert_int_equal(bytes_done, 0);
	assert_int_equal(bytes_total, 0);
}

static void test_live(void **state)
{
	fx *f = *state;
	bkr_manifest *a = backup(f);
	changes c = { 0 };
	progress_seen p = { 0 };
	bkr_diff_stats st;
	bkr_diff_options o = BKR_DIFF_OPTIONS_INIT;
	uint64_t files = 0;
	o.callback = on_change;
	o.ctx = &c;
	o.progress = on_progress;
	o.progress_ctx = &p;
	assert_int_equal(bkr_diff_live(f->r, a, NULL, 0, &o, &st), 0);
	assert_int_equal(c.n, 0);
	/* the end is reported: every file of the backup compared, of their number */
	for (size_t i = 0; i < a->nsources; i++)
		files += a->sources[i].files_backed_up;
	assert_true(files > 0 && p.calls >= 1);
	assert_string_equal(p.step, "comparing");
	assert_string_equal(p.items, "files");
	assert_int_equal(p.done, files);
	assert_int_equal(p.total, files);
	memset(&p, 0, sizeof(p));
	change(f);
	assert_int_equal(bkr_diff_live(f->r, a, NULL, 0, &o, &st), 0);
	int i = find(&c, "M ws/d/content");
	assert_true(i >= 0);
	assert_true(c.what[i] & BKR_DIFF_CONTENT);
	i = find(&c, "M ws/d/meta");
	assert_true(i >= 0);
	assert_int_equal(c.what[i], BKR_DIFF_MODE);
	assert_true(find(&c, "- ws/gone") >= 0);
	assert_true(find(&c, "+ ws/new") >= 0);
	bkr_manifest_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_two_backups, setup, teardown),
		cmocka_unit_test_setup_teardown(test_live, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tree_fails_to_load, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
