/** @file
 * Unit tests of scan and of batch recovery from a real repository: a
 * workspace of JSON files is backed up, then files are deleted, corrupted,
 * truncated, silently altered (same size and mtime) and a required file is
 * removed.  Scan (quick and deep) must find exactly those; batch --apply
 * must restore each byte for byte with its mtime, leave healthy files
 * untouched, store the run (manifest + report blob) and list it.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/file.h>
#include <time.h>

#include <cmocka.h>

#include "../../engine/recover/recover_i.h"
#include "bkr/backup.h"
#include "bkr/digest.h"
#include "bkr/error.h"
#include "bkr/repo.h"
#include "test_recover_util.h"

#define NFILES 40

typedef struct {
	char *dir, ws[PATH_MAX], repo_path[PATH_MAX];
	bkr_repo *repo;
	bkr_recover *rc;
} fx;

static void content(int i, char *out, size_t cap)
{
	snprintf(out, cap, "{\"session_id\":\"s%02d\",\"messages\":[\"hello %d\",\"bye\"]}\n", i, i * 7);
}

/* Listings of the repository's backups (not of its runs): -Wl,--wrap=bkr_repo_list (tests/meson.build). */
static int nlist_backups;
int __real_bkr_repo_list(bkr_repo *r, bool runs, bkr_manifest_list *out, size_t *bad);
int __wrap_bkr_repo_list(bkr_repo *r, bool runs, bkr_manifest_list *out, size_t *bad);
int __wrap_bkr_repo_list(bkr_repo *r, bool runs, bkr_manifest_list *out, size_t *bad)
{
	if (!runs)
		nlist_backups++;
	return __real_bkr_repo_list(r, runs, out, bad);
}

/* Live files hashed with bkr_digest_fd: -Wl,--wrap=bkr_digest_fd (tests/meson.build). */
static int ndigest_fd;
int __real_bkr_digest_fd(int fd, bkr_digest_form form, bkr_id *out, uint64_t *size);
int __wrap_bkr_digest_fd(int fd, bkr_digest_form form, bkr_id *out, uint64_t *size);
int __wrap_bkr_digest_fd(int fd, bkr_digest_form form, bkr_id *out, uint64_t *size)
{
	ndigest_fd++;
	return __real_bkr_digest_fd(fd, form, out, size);
}

/* A backup of @p path (source "workspace") made by @p host (NULL: this one) at @p when (NULL: now). */
static void backup_as(fx *f, const char *path, const char *host, const char *when)
{
	bkr_backup_options bo = BKR_BACKUP_OPTIONS_INIT;
	bkr_source_spec src = { .name = "workspace", .path = path };
	bkr_manifest *m = NULL;

	bo.type = BKR_BACKUP_FULL;
	bo.sources = &src;
	bo.nsources = 1;
	bo.workspace_root = path;
	bo.hostname = host;
	bo.threads = 1;
	if (when)
		setenv("BKR_TEST_NOW", when, 1);
	if (bkr_backup_run(f->repo, &bo, &m) < 0)
		fail_msg("backup: %s", bkr_error_message());
	unsetenv("BKR_TEST_NOW");
	bkr_manifest_free(m);
}

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	bkr_repo_init_options io = BKR_REPO_INIT_OPTIONS_INIT;
	bkr_backup_options bo = BKR_BACKUP_OPTIONS_INIT;
	bkr_source_spec src;
	bkr_manifest *m = NULL;
	bkr_recover_setup s = BKR_RECOVER_SETUP_INIT;
	bkr_recover_source rs;
	char buf[256], name[64], stage[PATH_MAX];
	char *req[] = { "config/settings.json" };

	f->dir = tu_mkdtemp();
	snprintf(f->ws, sizeof(f->ws), "%s/ws", f->dir);
	snprintf(f->repo_path, sizeof(f->repo_path), "%s/repo", f->dir);
	for (int i = 0; i < NFILES; i++) {
		content(i, buf, sizeof(buf));
		snprintf(name, sizeof(name), "conversations/s%02d.json", i);
		tu_writes(f->ws, name, buf);
	}
	tu_writes(f->ws, "config/settings.json", "{\"mode\":\"prod\"}\n");
	tu_writes(f->ws, "notes.txt", "plain text, no validator\n");
	assert_int_equal(bkr_repo_init(f->repo_path, &io), 0);
	assert_int_equal(bkr_repo_open(&f->repo, f->repo_path, 0), 0);
	src.name = "workspace";
	src.path = f->ws;
	src.excludes = NULL;
	src.nexcludes = 0;
	bo.sources = &src;
	bo.nsources = 1;
	bo.workspace_root = f->ws;
	bo.threads = 1;
	if (bkr_backup_run(f->repo, &bo, &m) < 0)
		fail_msg("backup: %s", bkr_error_message());
	bkr_manifest_free(m);
	snprintf(stage, sizeof(stage), "%s/stage", f->dir);
	rs.name = "workspace";
	rs.path = f->ws;
	rs.priority = 5;
	s.workspace = f->ws;
	s.sources = &rs;
	s.nsources = 1;
	s.required_files = req;
	s.nrequired_files = 1;
	s.staging_dir = stage;
	s.recovery_json = "{\"rules\":[{\"pattern\":\"conversations/{id}.json\",\"strategies\":[\"backup\",\"manual\"]}]}";
	assert_int_equal(bkr_recover_new(&f->rc, &s, f->repo), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	bkr_recover_free(f->rc);
	bkr_repo_free(f->repo);
	tu_rmrf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static struct stat st_of(fx *f, const char *rel)
{
	char p[PATH_MAX];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", f->ws, rel);
	memset(&st, 0, sizeof(st));
	lstat(p, &st);
	return st;
}

/* Damage: s00-s03 deleted, s04-s05 bad JSON, s06 truncated, s07 silently altered, settings removed. */
static void damage(fx *f)
{
	char p[PATH_MAX], buf[256];
	struct stat st = st_of(f, "conversations/s07.json");
	struct timespec ts[2] = { st.st_atim, st.st_mtim };

	for (int i = 0; i < 4; i++)
		tu_sh("rm %s/conversations/s%02d.json", f->ws, i);
	tu_writes(f->ws, "conversations/s04.json", "{\"session_id\":\"s04\",\"messa");
	tu_writes(f->ws, "conversations/s05.json", "not json at all\n");
	tu_writes(f->ws, "conversations/s06.json", "");
	content(7, buf, sizeof(buf));
	buf[17] ^= 0x01; /* same size, different bytes, still JSON */
	tu_writes(f->ws, "conversations/s07.json", buf);
	snprintf(p, sizeof(p), "%s/conversations/s07.json", f->ws);
	utimensat(AT_FDCWD, p, ts, 0);
	tu_sh("rm %s/config/settings.json", f->ws);
}

static const char *kind_of(const bkr_scan_result *r, const char *path)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->items[i].path, path) == 0)
			return bkr_damage_name(r->items[i].kind);
	return NULL;
}

static void test_scan(void **state)
{
	fx *f = *state;
	bkr_scan_result r = BKR_SCAN_RESULT_INIT;
	char *json;

	assert_int_equal(bkr_recover_scan(f->rc, 0, &r), 0);
	assert_int_equal(r.n, 0);
	assert_non_null(r.backup_id);
	bkr_scan_result_free(&r);

	damage(f);
	assert_int_equal(bkr_recover_scan(f->rc, 0, &r), 0);
	assert_int_equal(r.n, 8);
	assert_string_equal(r.items[0].path, "config/settings.json"); /* required first */
	assert_string_equal(kind_of(&r, "config/settings.json"), "required");
	assert_string_equal(kind_of(&r, "conversations/s00.json"), "missing");
	assert_string_equal(kind_of(&r, "conversations/s03.json"), "missing");
	assert_string_equal(kind_of(&r, "conversations/s04.json"), "invalid");
	assert_string_equal(kind_of(&r, "conversations/s06.json"), "truncated");
	assert_null(kind_of(&r, "conversations/s07.json")); /* only --deep sees it */
	assert_int_equal(r.items[0].priority, 5);
	json = bkr_scan_result_to_json(&r, false);
	assert_non_null(strstr(json, "\"found\":8"));
	free(json);
	bkr_scan_result_free(&r);

	assert_int_equal(bkr_recover_scan(f->rc, BKR_SCAN_DEEP, &r), 0);
	assert_int_equal(r.n, 9);
	assert_string_equal(kind_of(&r, "conversations/s07.json"), "silent");
	bkr_scan_result_free(&r);
}

/* The calls of a progress callback (bkr_recover_set_progress). */
typedef struct {
	size_t n, nscan, nrecover;
	uint64_t scan_done, scan_bytes;       /* the last "scanning" call's */
	uint64_t recover_done, recover_total; /* the last "recovering" call's */
	bool ordered;                         /* every count went up (or stayed), never down */
} progress_calls;

static void on_progress(void *ctx, const char *step, const char *items, uint64_t done, uint64_t total,
			uint64_t bytes_done, uint64_t bytes_total)
{
	progress_calls *p = ctx;

	p->n++;
	assert_string_equal(items, "files");
	assert_int_equal(bytes_total, 0);
	if (!strcmp(step, "scanning")) {
		assert_int_equal(total, 0); /* the walk counts as it goes */
		p->ordered = p->ordered && done >= p->scan_done && bytes_done >= p->scan_bytes;
		p->nscan++;
		p->scan_done = done;
		p->scan_bytes = bytes_done;
	} else {
		assert_string_equal(step, "recovering");
		assert_int_equal(bytes_done, 0);
		p->ordered = p->ordered && done == p->recover_done + 1;
		p->nrecover++;
		p->recover_done = done;
		p->recover_total = total;
	}
}

/* Progress: a scan counts the files it checks (deep: and the bytes it
 * hashes), ending with the walk's counts; a batch then counts the files
 * recovered of its total, one call each. */
static void test_progress(void **state)
{
	fx *f = *state;
	bkr_scan_result r = BKR_SCAN_RESULT_INIT;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	bkr_recover_report *rep = NULL;
	progress_calls p = { .ordered = true };
	uint64_t all = 0;
	char name[64];

	for (int i = 0; i < NFILES; i++) {
		snprintf(name, sizeof(name), "conversations/s%02d.json", i);
		all += (uint64_t)st_of(f, name).st_size;
	}
	all += (uint64_t)st_of(f, "config/settings.json").st_size + (uint64_t)st_of(f, "notes.txt").st_size;

	bkr_recover_set_progress(f->rc, on_progress, &p);
	assert_int_equal(bkr_recover_scan(f->rc, BKR_SCAN_DEEP, &r), 0);
	assert_int_equal(r.n, 0);
	assert_int_equal(r.files_checked, NFILES + 2);
	assert_true(p.nscan >= 2); /* the first file and the end, at least */
	assert_int_equal(p.nrecover, 0);
	assert_int_equal(p.scan_done, NFILES + 2);
	assert_int_equal(p.scan_bytes, all); /* every file is as backed up: each was hashed */
	assert_true(p.ordered);
	bkr_scan_result_free(&r);

	/* quick: files, no bytes */
	p = (progress_calls){ .ordered = true };
	assert_int_equal(bkr_recover_scan(f->rc, 0, &r), 0);
	assert_int_equal(p.scan_done, NFILES + 2);
	assert_int_equal(p.scan_bytes, 0);
	bkr_scan_result_free(&r);

	damage(f);
	p = (progress_calls){ .ordered = true };
	o.deep = true;
	assert_int_equal(bkr_recover_batch(f->rc, &o, &rep), 0);
	assert_int_equal(bkr_recover_report_summary(rep)->files, 9);
	assert_int_equal(p.nrecover, 9);
	assert_int_equal(p.recover_done, 9);
	assert_int_equal(p.recover_total, 9);
	assert_true(p.nscan >= 2);
	assert_true(p.ordered);
	bkr_recover_report_free(rep);

	/* none once it is unset */
	p = (progress_calls){ .ordered = true };
	bkr_recover_set_progress(f->rc, NULL, NULL);
	assert_int_equal(bkr_recover_scan(f->rc, BKR_SCAN_DEEP, &r), 0);
	assert_int_equal(p.n, 0);
	bkr_scan_result_free(&r);
}

/* A directory deeper than BKR_SCAN_MAX_DEPTH is not walked, and is named
 * (skipped), never passed over in silence; what lies above it is scanned. */
static void test_scan_deep_tree(void **state)
{
	fx *f = *state;
	bkr_scan_result r = BKR_SCAN_RESULT_INIT;
	char path[PATH_MAX * 2], want[1024] = "deep";
	int fd, nfd;
	char *json;

	snprintf(path, sizeof(path), "%s/deep", f->ws);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_true((fd = open(path, O_RDONLY | O_DIRECTORY)) >= 0);
	for (int depth = 2; depth <= BKR_SCAN_MAX_DEPTH + 10; depth++) {
		if (depth == 100) { /* a damaged file well inside the limit is found */
			int ffd = openat(fd, "bad.json", O_WRONLY | O_CREAT, 0644);
			assert_true(ffd >= 0);
			assert_int_equal(write(ffd, "{", 1), 1);
			close(ffd);
		}
		assert_int_equal(mkdirat(fd, "d", 0755), 0);
		assert_true((nfd = openat(fd, "d", O_RDONLY | O_DIRECTORY)) >= 0);
		close(fd);
		fd = nfd;
		if (depth <= BKR_SCAN_MAX_DEPTH + 1)
			strcat(want, "/d"); /* the first directory not walked: depth 257 */
	}
	int ffd = openat(fd, "deepest.json", O_WRONLY | O_CREAT, 0644);
	assert_true(ffd >= 0);
	close(ffd);
	close(fd);

	assert_int_equal(bkr_recover_scan(f->rc, 0, &r), 0);
	assert_int_equal(r.n, 1);
	char bad[1024] = "deep/";
	for (int i = 0; i < 98; i++) /* bad.json lies in the directory at depth 99 */
		strcat(bad, "d/");
	strcat(bad, "bad.json");
	assert_string_equal(kind_of(&r, bad), "invalid");
	assert_int_equal(r.nskipped, 1);
	assert_string_equal(r.skipped[0].path, want);
	assert_non_null(strstr(r.skipped[0].reason, "more than 256 levels deep"));
	json = bkr_scan_result_to_json(&r, false);
	assert_non_null(strstr(json, "\"skipped\":[{\"path\":\"deep/d/d/"));
	free(json);
	bkr_scan_result_free(&r);
}

static void test_batch_apply(void **state)
{
	fx *f = *state;
	bkr_recover_report *rep = NULL;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	const bkr_recover_summary *s;
	struct stat before[NFILES], after;
	char buf[256], name[64], *list, *report;
	size_t len, bad;
	bkr_scan_result r = BKR_SCAN_RESULT_INIT;

	for (int i = 0; i < NFILES; i++) {
		snprintf(name, sizeof(name), "conversations/s%02d.json", i);
		before[i] = st_of(f, name);
	}
	damage(f);
	o.apply = true;
	o.deep = true;
	assert_int_equal(bkr_recover_batch(f->rc, &o, &rep), 0);
	s = bkr_recover_report_summary(rep);
	assert_int_equal(s->files, 9);
	assert_int_equal(s->recovered, 9);
	assert_int_equal(s->applied, 9);
	assert_int_equal(s->failed, 0);
	assert_true(s->stored);
	assert_null(s->staged_dir);
	for (int i = 0; i < NFILES; i++) {
		snprintf(name, sizeof(name), "conversations/s%02d.json", i);
		content(i, buf, sizeof(buf));
		tu_assert_file(f->ws, name, buf);
		after = st_of(f, name);
		/* restored files get the backup's mtime; healthy ones are untouched */
		assert_int_equal(after.st_mtim.tv_sec, before[i].st_mtim.tv_sec);
		assert_int_equal(after.st_mtim.tv_nsec, before[i].st_mtim.tv_nsec);
		if (i >= 8)
			assert_int_equal(after.st_ino, before[i].st_ino);
	}
	tu_assert_file(f->ws, "config/settings.json", "{\"mode\":\"prod\"}\n");
	assert_int_equal(bkr_recover_scan(f->rc, BKR_SCAN_DEEP, &r), 0);
	assert_int_equal(r.n, 0);
	bkr_scan_result_free(&r);

	/* the run is in the repository with its report */
	assert_int_equal(bkr_recover_list_runs(f->repo, &list, &bad), 0);
	assert_int_equal(bad, 0);
	assert_non_null(strstr(list, s->run_id));
	assert_non_null(strstr(list, "\"recovered\":\t9") ? list : strstr(list, "\"recovered\": 9"));
	free(list);
	{ /* a damaged run manifest is counted and named, the others still listed */
		char junk[PATH_MAX];
		FILE *fp;
		snprintf(junk, sizeof(junk), "%s/runs/backup_20990101_000000_recovery_0badf00d.json", bkr_repo_path(f->repo));
		assert_non_null(fp = fopen(junk, "w"));
		fputs("{\"garbage", fp);
		fclose(fp);
		assert_int_equal(bkr_recover_list_runs(f->repo, &list, &bad), 0);
		assert_int_equal(bad, 1);
		assert_non_null(strstr(bkr_error_message(), "backup_20990101_000000_recovery_0badf00d"));
		assert_non_null(strstr(list, s->run_id));
		free(list);
		assert_int_equal(unlink(junk), 0);
	}
	assert_int_equal(bkr_recover_read_report(f->repo, "latest", &report, &len), 0);
	{
		cJSON *root = cJSON_Parse(report), *e;
		assert_non_null(root);
		assert_string_equal(tu_str(root, "run_id"), s->run_id);
		assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(root, "files")), 9);
		e = tu_report_file(root, "conversations/s04.json");
		assert_string_equal(tu_str(e, "strategy"), "backup");
		assert_int_equal(strlen(tu_str(e, "sha256")), 64);
		assert_non_null(tu_str(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(e, "attempts"), 0),
							   "source"), "backup_id"));
		cJSON_Delete(root);
	}
	free(report);
	bkr_recover_report_free(rep);
}

static void test_dry_run_and_recheck(void **state)
{
	fx *f = *state;
	bkr_recover_report *rep = NULL;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	bkr_scan_result r = BKR_SCAN_RESULT_INIT;

	damage(f);
	assert_int_equal(bkr_recover_batch(f->rc, &o, &rep), 0);
	assert_int_equal(bkr_recover_report_summary(rep)->recovered, 8);
	assert_int_equal(bkr_recover_report_summary(rep)->applied, 0);
	assert_false(tu_exists(f->ws, "conversations/s00.json")); /* untouched */
	bkr_recover_report_free(rep);

	/* a file fixed by someone between scan and apply is not overwritten */
	assert_int_equal(bkr_recover_scan(f->rc, 0, &r), 0);
	tu_writes(f->ws, "conversations/s00.json", "{\"new\":\"by a person\"}");
	tu_writes(f->ws, "conversations/s05.json", "{\"fixed\":true}");
	o.apply = true;
	assert_int_equal(bkr_recover_items(f->rc, r.items, r.n, &o, &rep), 0);
	tu_assert_file(f->ws, "conversations/s00.json", "{\"new\":\"by a person\"}");
	tu_assert_file(f->ws, "conversations/s05.json", "{\"fixed\":true}");
	assert_int_equal(bkr_recover_report_summary(rep)->applied, 6);
	bkr_recover_report_free(rep);
	bkr_scan_result_free(&r);
}

static void test_symlink_escape(void **state)
{
	fx *f = *state;
	bkr_recover_report *rep = NULL;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	char outside[PATH_MAX], link[PATH_MAX];

	/* conversations/ replaced by a symlink pointing out of the workspace */
	snprintf(outside, sizeof(outside), "%s/outside", f->dir);
	tu_mkdirs(outside);
	tu_sh("rm -rf %s/conversations", f->ws);
	snprintf(link, sizeof(link), "%s/conversations", f->ws);
	assert_int_equal(symlink(outside, link), 0);
	o.apply = true;
	assert_int_equal(bkr_recover_batch(f->rc, &o, &rep), 0);
	assert_int_equal(bkr_recover_report_summary(rep)->applied, 0);
	assert_true(bkr_recover_report_summary(rep)->failed >= NFILES);
	assert_non_null(strstr(bkr_recover_report_json(rep), "refusing to follow"));
	assert_int_equal(tu_sh("test -z \"$(ls -A %s)\"", outside), 0);
	bkr_recover_report_free(rep);
}

/* The workspace path leads to another directory between scan and apply (a
 * parent or the root swapped for a symlink): nothing is written anywhere. */
static void test_root_swapped(void **state)
{
	fx *f = *state;
	bkr_recover_report *rep = NULL;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	bkr_scan_result r = BKR_SCAN_RESULT_INIT;
	char real[PATH_MAX], outside[PATH_MAX];

	damage(f);
	assert_int_equal(bkr_recover_scan(f->rc, 0, &r), 0);
	assert_int_equal(r.n, 8);
	snprintf(real, sizeof(real), "%s.real", f->ws);
	snprintf(outside, sizeof(outside), "%s/outside", f->dir);
	tu_mkdirs(outside);
	assert_int_equal(rename(f->ws, real), 0);
	assert_int_equal(symlink(outside, f->ws), 0);
	o.apply = true;
	assert_int_equal(bkr_recover_items(f->rc, r.items, r.n, &o, &rep), 0);
	assert_int_equal(bkr_recover_report_summary(rep)->recovered, 8);
	assert_int_equal(bkr_recover_report_summary(rep)->applied, 0);
	assert_int_equal(bkr_recover_report_summary(rep)->failed, 8);
	assert_non_null(strstr(bkr_recover_report_json(rep), "is no longer the directory the scan looked at"));
	assert_int_equal(tu_sh("test -z \"$(ls -A %s)\"", outside), 0); /* nothing made or written there */
	assert_int_equal(tu_sh("test ! -e %s/conversations/s00.json", real), 0);
	bkr_recover_report_free(rep);
	/* an engine object that did not scan (routine makes a new one): the items' record decides */
	bkr_rec_root_forget(f->rc);
	assert_int_equal(bkr_recover_items(f->rc, r.items, r.n, &o, &rep), 0);
	assert_int_equal(bkr_recover_report_summary(rep)->applied, 0);
	assert_non_null(strstr(bkr_recover_report_json(rep), "is no longer the directory the scan looked at"));
	assert_int_equal(tu_sh("test -z \"$(ls -A %s)\"", outside), 0);
	bkr_recover_report_free(rep);
	bkr_scan_result_free(&r);
	assert_int_equal(unlink(f->ws), 0);
	assert_int_equal(rename(real, f->ws), 0);
}

/* Files rewritten by the application between scan and apply are not
 * overwritten with the old copy: a silently corrupted one, an invalid one
 * rewritten with other invalid content, a truncated one rewritten empty. */
static void test_changed_since_scan(void **state)
{
	fx *f = *state;
	bkr_recover_report *rep = NULL;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	bkr_scan_result r = BKR_SCAN_RESULT_INIT;
	cJSON *root;

	damage(f);
	assert_int_equal(bkr_recover_scan(f->rc, BKR_SCAN_DEEP, &r), 0);
	assert_int_equal(r.n, 9);
	tu_writes(f->ws, "conversations/s07.json", "{\"version\":2}\n");         /* silent: a new version */
	tu_writes(f->ws, "conversations/s04.json", "{\"still\":\"being written");  /* invalid, other content */
	tu_sh("touch %s/conversations/new && mv %s/conversations/new %s/conversations/s06.json", f->ws, f->ws,
	      f->ws); /* another empty file */
	o.apply = true;
	assert_int_equal(bkr_recover_items(f->rc, r.items, r.n, &o, &rep), 0);
	tu_assert_file(f->ws, "conversations/s07.json", "{\"version\":2}\n");
	tu_assert_file(f->ws, "conversations/s04.json", "{\"still\":\"being written");
	tu_assert_file(f->ws, "conversations/s06.json", "");
	assert_int_equal(bkr_recover_report_summary(rep)->applied, 6);
	assert_int_equal(bkr_recover_report_summary(rep)->failed, 3);
	root = cJSON_Parse(bkr_recover_report_json(rep));
	assert_non_null(root);
	assert_string_equal(tu_str(tu_report_file(root, "conversations/s07.json"), "apply_result"),
			    "conversations/s07.json: changed since the scan; not overwritten");
	assert_string_equal(tu_str(tu_report_file(root, "conversations/s04.json"), "apply_result"),
			    "conversations/s04.json: changed since the scan; not overwritten");
	cJSON_Delete(root);
	bkr_recover_report_free(rep);
	bkr_scan_result_free(&r);
}

/* The report entry of @p path in @p rep's report (a copy: cJSON_Delete it). */
static cJSON *entry_of(bkr_recover_report *rep, const char *path)
{
	cJSON *root = cJSON_Parse(bkr_recover_report_json(rep)), *e;

	assert_non_null(root);
	e = cJSON_Duplicate(tu_report_file(root, path), true);
	cJSON_Delete(root);
	assert_non_null(e);
	return e;
}

/*
 * A missing file that came back between the scan and the apply holding the
 * very copy recovered (another recover run wrote it first): "already
 * identical", no failure, as for a truncated or invalid file.  It was
 * "exists again since the scan; not overwritten" and exit 6 for the second
 * of two runs started together.  Other content is still not overwritten.
 */
static void test_reappeared_since_scan(void **state)
{
	fx *f = *state;
	bkr_recover_report *rep = NULL;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	bkr_scan_result r = BKR_SCAN_RESULT_INIT;
	char buf[256];
	cJSON *e;

	damage(f);
	assert_int_equal(bkr_recover_scan(f->rc, 0, &r), 0);
	assert_string_equal(kind_of(&r, "conversations/s00.json"), "missing");
	content(0, buf, sizeof(buf));
	tu_writes(f->ws, "conversations/s00.json", buf);                      /* the recovered copy */
	tu_writes(f->ws, "conversations/s01.json", "{\"new\":\"by a person\"}"); /* another */
	o.apply = true;
	assert_int_equal(bkr_recover_items(f->rc, r.items, r.n, &o, &rep), 0);
	e = entry_of(rep, "conversations/s00.json");
	assert_string_equal(tu_str(e, "apply_result"), "already identical to the recovered copy");
	assert_false(cJSON_IsTrue(cJSON_GetObjectItem(e, "apply_failed")));
	cJSON_Delete(e);
	e = entry_of(rep, "conversations/s01.json");
	assert_string_equal(tu_str(e, "apply_result"),
			    "conversations/s01.json: exists again since the scan; not overwritten");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(e, "apply_failed")));
	cJSON_Delete(e);
	tu_assert_file(f->ws, "conversations/s01.json", "{\"new\":\"by a person\"}");
	assert_int_equal(bkr_recover_report_summary(rep)->failed, 1);
	bkr_recover_report_free(rep);
	bkr_scan_result_free(&r);
}

/*
 * Files of the backup, and a required file, replaced by something else: a
 * directory with content, a symlink pointing out of the workspace, a FIFO,
 * an empty directory.  Scan passed them over ("exists as something else");
 * it reports each now, naming what is there, and apply refuses each with
 * that one line: nothing is removed, nothing written through the symlink.
 */
static void test_replaced_by_other_type(void **state)
{
	fx *f = *state;
	bkr_scan_result r = BKR_SCAN_RESULT_INIT;
	bkr_recover_report *rep = NULL;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	char outside[PATH_MAX], p[PATH_MAX];
	struct stat st;
	static const struct {
		const char *path, *kind, *what;
	} want[] = {
		{ "conversations/s00.json", "missing", "is a directory, expected a regular file" },
		{ "conversations/s01.json", "missing", "is a symlink, expected a regular file" },
		{ "conversations/s02.json", "missing", "is a FIFO, expected a regular file" },
		{ "config/settings.json", "required", "is a directory, expected a regular file" },
	};

	snprintf(outside, sizeof(outside), "%s/outside.json", f->dir);
	tu_writes(f->dir, "outside.json", "{\"outside\":1}");
	tu_sh("rm %s/conversations/s00.json %s/conversations/s01.json %s/conversations/s02.json "
	      "%s/config/settings.json", f->ws, f->ws, f->ws, f->ws);
	tu_writes(f->ws, "conversations/s00.json/sub/data", "keep me");
	snprintf(p, sizeof(p), "%s/conversations/s01.json", f->ws);
	assert_int_equal(symlink(outside, p), 0);
	snprintf(p, sizeof(p), "%s/conversations/s02.json", f->ws);
	assert_int_equal(mkfifo(p, 0600), 0);
	snprintf(p, sizeof(p), "%s/config/settings.json", f->ws);
	assert_int_equal(mkdir(p, 0755), 0);

	assert_int_equal(bkr_recover_scan(f->rc, 0, &r), 0);
	assert_int_equal(r.n, 4);
	for (size_t i = 0; i < 4; i++) {
		const bkr_damage *d = NULL;
		for (size_t k = 0; k < r.n; k++)
			if (strcmp(r.items[k].path, want[i].path) == 0)
				d = &r.items[k];
		assert_non_null(d);
		assert_string_equal(bkr_damage_name(d->kind), want[i].kind);
		assert_non_null(strstr(d->reason, want[i].what));
	}

	o.apply = true;
	assert_int_equal(bkr_recover_items(f->rc, r.items, r.n, &o, &rep), 0);
	for (size_t i = 0; i < 4; i++) {
		cJSON *e = entry_of(rep, want[i].path);
		char line[512];
		snprintf(line, sizeof(line), "%s: %s; not replaced (move it aside, then recover the file again)",
			 want[i].path, want[i].what);
		assert_string_equal(tu_str(e, "status"), "recovered");
		assert_string_equal(tu_str(e, "apply_result"), line);
		assert_true(cJSON_IsTrue(cJSON_GetObjectItem(e, "apply_failed")));
		cJSON_Delete(e);
	}
	assert_int_equal(bkr_recover_report_summary(rep)->applied, 0);
	assert_int_equal(bkr_recover_report_summary(rep)->failed, 4);
	tu_assert_file(f->ws, "conversations/s00.json/sub/data", "keep me");
	snprintf(p, sizeof(p), "%s/conversations/s01.json", f->ws);
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	tu_assert_file(f->dir, "outside.json", "{\"outside\":1}");
	bkr_recover_report_free(rep);
	bkr_scan_result_free(&r);
}

/* The "stale_temporaries" member of a report, duplicated. */
static cJSON *stale_of(bkr_recover_report *rep)
{
	cJSON *root = cJSON_Parse(bkr_recover_report_json(rep)), *e;

	assert_non_null(root);
	e = cJSON_Duplicate(cJSON_GetObjectItem(root, "stale_temporaries"), true);
	cJSON_Delete(root);
	assert_non_null(e);
	return e;
}

/*
 * Named temporaries a dead run left (a filesystem without O_TMPFILE) are
 * removed by the next run that applies, and said in its report: only
 * regular files named as apply names them, anywhere in the workspace; not
 * a directory of that name, nor a name that is not one of ours.  Never
 * while another run holds the workspace (flock of its directory, as a run
 * applying holds it): those may be that run's.
 */
static void test_stale_temporaries(void **state)
{
	fx *f = *state;
	bkr_recover_report *rep = NULL;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	cJSON *st, *removed;
	char p[PATH_MAX];
	int held;

	o.apply = true;
	tu_writes(f->ws, "conversations/.bkr-recover-0123456789abcdef", "{\"partial");
	tu_writes(f->ws, ".bkr-recover-fedcba9876543210", "");
	tu_writes(f->ws, "conversations/.bkr-recover-0123456789abcdeg", "not ours: not hex");
	tu_writes(f->ws, "conversations/.bkr-recover-0123456789abcde", "not ours: 15 digits");
	tu_writes(f->ws, "config/.bkr-recover-00000000000000aa/inside", "a directory: never removed");
	tu_sh("rm %s/conversations/s00.json", f->ws);

	/* another run applying holds the workspace: nothing is looked for */
	snprintf(p, sizeof(p), "%s", f->ws);
	assert_true((held = open(p, O_RDONLY | O_DIRECTORY)) >= 0);
	assert_int_equal(flock(held, LOCK_SH), 0);
	assert_int_equal(bkr_recover_batch(f->rc, &o, &rep), 0);
	assert_int_equal(bkr_recover_report_summary(rep)->applied, 1);
	st = stale_of(rep);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(st, "removed")), 0);
	assert_string_equal(tu_str(st, "error"), "not looked for: another recover run is writing into this workspace");
	cJSON_Delete(st);
	bkr_recover_report_free(rep);
	rep = NULL;
	assert_int_equal(tu_sh("test -f %s/conversations/.bkr-recover-0123456789abcdef", f->ws), 0);
	close(held);

	/* the next run, alone */
	tu_sh("rm %s/conversations/s01.json", f->ws);
	assert_int_equal(bkr_recover_batch(f->rc, &o, &rep), 0);
	assert_int_equal(bkr_recover_report_summary(rep)->applied, 1);
	st = stale_of(rep);
	removed = cJSON_GetObjectItem(st, "removed");
	assert_int_equal(cJSON_GetArraySize(removed), 2);
	assert_null(cJSON_GetObjectItem(st, "error"));
	for (int i = 0; i < 2; i++) {
		const char *r = cJSON_GetArrayItem(removed, i)->valuestring;
		assert_true(strcmp(r, "conversations/.bkr-recover-0123456789abcdef") == 0 ||
			    strcmp(r, ".bkr-recover-fedcba9876543210") == 0);
	}
	cJSON_Delete(st);
	assert_int_equal(tu_sh("test ! -e %s/conversations/.bkr-recover-0123456789abcdef", f->ws), 0);
	assert_int_equal(tu_sh("test ! -e %s/.bkr-recover-fedcba9876543210", f->ws), 0);
	assert_int_equal(tu_sh("test -f %s/conversations/.bkr-recover-0123456789abcdeg", f->ws), 0);
	assert_int_equal(tu_sh("test -f %s/conversations/.bkr-recover-0123456789abcde", f->ws), 0);
	assert_int_equal(tu_sh("test -f %s/config/.bkr-recover-00000000000000aa/inside", f->ws), 0);
	/* and the files it recovered are there, with no temporary of its own beside them */
	assert_int_equal(tu_sh("test -f %s/conversations/s00.json -a -f %s/conversations/s01.json", f->ws, f->ws), 0);
	assert_int_equal(tu_sh("test $(ls -A %s/conversations | grep -c '^.bkr-recover-') = 2", f->ws), 0);
	bkr_recover_report_free(rep);
}

/* A symlink where the backup has one, or at a required path no backup has: not damage. */
static void test_symlink_expected(void **state)
{
	fx *f = *state;
	bkr_scan_result r = BKR_SCAN_RESULT_INIT;
	char p[PATH_MAX];
	char *req[] = { "config/settings.json", "config/extra.json" };

	snprintf(p, sizeof(p), "%s/conversations/link.json", f->ws);
	assert_int_equal(symlink("s00.json", p), 0);
	backup_as(f, f->ws, NULL, NULL);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(symlink("s01.json", p), 0); /* another target: still a symlink */
	snprintf(p, sizeof(p), "%s/config/extra.json", f->ws);
	assert_int_equal(symlink("/etc/hostname", p), 0);
	char **saved = f->rc->required;
	size_t nsaved = f->rc->nrequired;
	f->rc->required = req; /* the engine's own list, for this scan */
	f->rc->nrequired = 2;
	assert_int_equal(bkr_recover_scan(f->rc, 0, &r), 0);
	f->rc->required = saved;
	f->rc->nrequired = nsaved;
	assert_int_equal(r.n, 0);
	bkr_scan_result_free(&r);
}

/*
 * A repository shared with another workspace and another host: their backups,
 * made after this workspace's, are not this workspace's newest.  Another
 * workspace (another path, host "hostB", a source also named "workspace")
 * and another host backing up this very path (with c1.json, without s00)
 * were taken for this workspace: b1.json and c1.json reported missing and
 * written into it, the deleted s00 not seen.
 */
static void test_other_workspace_and_host(void **state)
{
	fx *f = *state;
	bkr_scan_result r = BKR_SCAN_RESULT_INIT;
	bkr_recover_report *rep = NULL;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	char ws2[PATH_MAX];
	cJSON *e;

	snprintf(ws2, sizeof(ws2), "%s/svcB/ws", f->dir);
	tu_writes(ws2, "conversations/b1.json", "{\"owner\":\"B\"}\n");
	tu_writes(ws2, "conversations/s01.json", "{\"owner\":\"B\"}\n");
	tu_sh("rm %s/conversations/s00.json", f->ws);
	tu_writes(f->ws, "conversations/c1.json", "{\"owner\":\"C\"}\n");
	backup_as(f, f->ws, "hostC", NULL);
	tu_sh("rm %s/conversations/c1.json", f->ws);
	backup_as(f, ws2, "hostB", NULL);
	tu_writes(f->ws, "conversations/s01.json", "{");

	assert_int_equal(bkr_recover_scan(f->rc, 0, &r), 0);
	assert_string_equal(kind_of(&r, "conversations/s00.json"), "missing");
	assert_string_equal(kind_of(&r, "conversations/s01.json"), "invalid");
	assert_null(kind_of(&r, "conversations/b1.json"));
	assert_null(kind_of(&r, "conversations/c1.json"));
	assert_int_equal(r.n, 2);
	bkr_scan_result_free(&r);

	o.apply = true;
	assert_int_equal(bkr_recover_batch(f->rc, &o, &rep), 0);
	assert_int_equal(bkr_recover_report_summary(rep)->recovered, 2);
	{
		char buf[256];
		content(1, buf, sizeof(buf));
		tu_assert_file(f->ws, "conversations/s01.json", buf); /* this workspace's copy, not hostB's */
		content(0, buf, sizeof(buf));
		tu_assert_file(f->ws, "conversations/s00.json", buf);
	}
	assert_false(tu_exists(f->ws, "conversations/b1.json"));
	assert_false(tu_exists(f->ws, "conversations/c1.json"));
	bkr_recover_report_free(rep);

	/* recover --file of the other host's file: no backup of this host has it */
	assert_int_equal(bkr_recover_file(f->rc, "conversations/c1.json", &o, &rep), 0);
	e = entry_of(rep, "conversations/c1.json");
	assert_string_equal(tu_str(e, "status"), "manual");
	assert_string_equal(tu_attempt(e, 0, "result"), "not_found");
	cJSON_Delete(e);
	bkr_recover_report_free(rep);

	/* as that host (bkr scan --host hostC), its backup is the one */
	assert_int_equal(bkr_recover_set_host(f->rc, "hostC"), 0);
	assert_int_equal(bkr_recover_scan(f->rc, 0, &r), 0);
	assert_string_equal(kind_of(&r, "conversations/c1.json"), "missing");
	bkr_scan_result_free(&r);
}

/*
 * A backup dated in the future (the clock a day ahead when it was made) is
 * not the newest, as for create, health and cleanup: recovery took its old
 * copy of s01 over the real newest one, and scan compared with it.
 */
static void test_future_backup(void **state)
{
	fx *f = *state;
	bkr_scan_result r = BKR_SCAN_RESULT_INIT;
	bkr_recover_report *rep = NULL;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	char when[32], buf[256];
	time_t t = time(NULL) + 86400;
	struct tm tm;

	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
	tu_writes(f->ws, "conversations/s01.json", "{\"v\":\"old, the clock a day ahead\"}\n");
	tu_writes(f->ws, "conversations/late.json", "{\"v\":\"only in the future backup\"}\n");
	backup_as(f, f->ws, NULL, when);
	tu_sh("rm %s/conversations/s01.json %s/conversations/late.json", f->ws, f->ws);

	assert_int_equal(bkr_recover_scan(f->rc, 0, &r), 0);
	assert_string_equal(kind_of(&r, "conversations/s01.json"), "missing");
	assert_null(kind_of(&r, "conversations/late.json"));
	assert_int_equal(r.n, 1);
	assert_non_null(r.backup_id);
	bkr_scan_result_free(&r);

	o.apply = true;
	assert_int_equal(bkr_recover_batch(f->rc, &o, &rep), 0);
	assert_int_equal(bkr_recover_report_summary(rep)->recovered, 1);
	bkr_recover_report_free(rep);
	content(1, buf, sizeof(buf));
	tu_assert_file(f->ws, "conversations/s01.json", buf);

	/* recover --file of a file only the future backup has: none of the backups counted has it */
	assert_int_equal(bkr_recover_file(f->rc, "conversations/late.json", &o, &rep), 0);
	{
		cJSON *e = entry_of(rep, "conversations/late.json");
		assert_string_equal(tu_attempt(e, 0, "result"), "not_found");
		cJSON_Delete(e);
	}
	assert_false(tu_exists(f->ws, "conversations/late.json"));
	bkr_recover_report_free(rep);
}

/*
 * --deep hashes a file that a validator reads while it is read for the
 * validator, instead of reading the live file again: a JSON file over 16 MiB
 * (copied into a scratch file) and the small ones are read once; silent
 * corruption is still found, and a file without a validator is hashed from
 * the live file.
 */
static void test_deep_reads_once(void **state)
{
	fx *f = *state;
	bkr_scan_result r = BKR_SCAN_RESULT_INIT;
	char p[PATH_MAX];
	struct stat st;
	struct timespec ts[2];
	FILE *fp;

	/* [1,1,...,1]: 17 MiB of valid JSON */
	snprintf(p, sizeof(p), "%s/conversations/big.json", f->ws);
	assert_non_null(fp = fopen(p, "w"));
	fputc('[', fp);
	for (int i = 0; i < (17 << 20) / 2; i++)
		fputs("1,", fp);
	fputs("1]", fp);
	assert_int_equal(fclose(fp), 0);
	backup_as(f, f->ws, NULL, NULL);

	ndigest_fd = 0;
	assert_int_equal(bkr_recover_scan(f->rc, BKR_SCAN_DEEP, &r), 0);
	assert_int_equal(r.n, 0);
	assert_int_equal(ndigest_fd, 1); /* notes.txt: no validator, so no copy */
	bkr_scan_result_free(&r);

	/* same size and mtime, one byte changed (still JSON): only --deep sees it */
	st = st_of(f, "conversations/big.json");
	ts[0] = st.st_atim;
	ts[1] = st.st_mtim;
	assert_non_null(fp = fopen(p, "r+"));
	assert_int_equal(fseek(fp, 9 << 20, SEEK_SET), 0);
	assert_int_equal(fputc('2', fp) == EOF, 0);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
	damage(f); /* s07: the same in a small file */
	ndigest_fd = 0;
	assert_int_equal(bkr_recover_scan(f->rc, BKR_SCAN_DEEP, &r), 0);
	assert_string_equal(kind_of(&r, "conversations/big.json"), "silent");
	assert_string_equal(kind_of(&r, "conversations/s07.json"), "silent");
	assert_int_equal(ndigest_fd, 1);
	bkr_scan_result_free(&r);
}

/*
 * A run lists the repository's backups once: every file's backup attempt,
 * its directory's attributes and the stored run's directories read the same
 * list (a batch of 2000 deleted files with 10 backups listed them for each
 * file, several times: 10.6 s where scan takes 0.4 s).
 */
static void test_backups_listed_once(void **state)
{
	fx *f = *state;
	bkr_recover_report *rep = NULL;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;

	backup_as(f, f->ws, NULL, NULL);
	damage(f);
	nlist_backups = 0;
	assert_int_equal(bkr_recover_batch(f->rc, &o, &rep), 0); /* a dry run, stored */
	assert_int_equal(bkr_recover_report_summary(rep)->recovered, 8); /* s07 is silent: --deep only */
	assert_true(bkr_recover_report_summary(rep)->stored);
	assert_int_equal(nlist_backups, 1);
	bkr_recover_report_free(rep);

	nlist_backups = 0;
	assert_int_equal(bkr_recover_file(f->rc, "conversations/s00.json", &o, &rep), 0);
	assert_int_equal(nlist_backups, 1);
	bkr_recover_report_free(rep);

	/* and each run lists them again: a backup made since counts */
	nlist_backups = 0;
	assert_int_equal(bkr_recover_file(f->rc, "conversations/s01.json", &o, &rep), 0);
	assert_int_equal(nlist_backups, 1);
	bkr_recover_report_free(rep);

	/* the CLI's way: the listing it warns from (every backup) is the one
	 * the scan and the run use while it is held; released, the next run
	 * lists again */
	{
		const bkr_manifest_list *all = NULL;
		bkr_scan_result sr = BKR_SCAN_RESULT_INIT;
		nlist_backups = 0;
		bkr_recover_hold_backups(f->rc);
		assert_int_equal(bkr_recover_backups(f->rc, &all), 0);
		assert_true(all->n > 0);
		assert_int_equal(bkr_recover_scan(f->rc, 0, &sr), 0);
		bkr_scan_result_free(&sr);
		assert_int_equal(bkr_recover_batch(f->rc, &o, &rep), 0);
		bkr_recover_report_free(rep);
		assert_int_equal(nlist_backups, 1);
		bkr_recover_release_backups(f->rc);
		assert_int_equal(bkr_recover_batch(f->rc, &o, &rep), 0);
		bkr_recover_report_free(rep);
		assert_int_equal(nlist_backups, 2);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_scan, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_deep_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_apply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dry_run_and_recheck, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_escape, setup, teardown),
		cmocka_unit_test_setup_teardown(test_root_swapped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_changed_since_scan, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reappeared_since_scan, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replaced_by_other_type, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_expected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_temporaries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_workspace_and_host, setup, teardown),
		cmocka_unit_test_setup_teardown(test_future_backup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backups_listed_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deep_reads_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_progress, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
