/** @file
 * Unit tests of the repository over its store (engine/repo.c, repo_config.c,
 * writer.c, catalog.c, lock.c): blobs written and read back, a pack found in
 * another tier or in trash, pack enumeration with temporaries, the catalog
 * (records applied), a repository with an unknown ro_compat feature refused
 * by every writer, a damaged index file left out with a warning, the
 * repository lock, full packs published by the writer's publisher thread
 * (a failure there reported by a later put or the commit), and blobs advised
 * with the bytes after them (bkr_repo_advise_blob_ahead).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bkr/backup.h"
#include "bkr/error.h"
#include "bkr/format.h"
#include "bkr/io.h"
#include "bkr/manifest.h"
#include "bkr/repo.h"
#include "bkr/tree.h"
#include "bkr/verify.h"

#include "counting_store.h"
#include "testutil.h"

struct fixture {
	char dir[256];
	char repo[300];
	char src[300];
	bkr_repo *r;
};

#define sh(...) assert_int_equal(tu_sh(__VA_ARGS__), 0)

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	if (tu_mkdtemp_in(f->dir, sizeof(f->dir), "test-repo") < 0)
		return -1;
	snprintf(f->repo, sizeof(f->repo), "%s/repo", f->dir);
	snprintf(f->src, sizeof(f->src), "%s/src", f->dir);
	if (bkr_repo_init(f->repo, NULL) < 0 || bkr_repo_open(&f->r, f->repo, 0) < 0 || mkdir(f->src, 0755) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	bkr_repo_free(f->r);
	tu_rmrf(f->dir);
	free(f);
	return 0;
}

static void reopen(struct fixture *f)
{
	bkr_repo_free(f->r);
	f->r = NULL;
	assert_int_equal(bkr_repo_open(&f->r, f->repo, 0), 0);
}

/* Store @p n blobs "blob <first + i>" and commit; ids into @p ids. */
static void put_blobs_from(struct fixture *f, bkr_id *ids, int n, int first)
{
	bkr_writer *w;
	assert_int_equal(bkr_writer_new(&w, f->r), 0);
	for (int i = 0; i < n; i++) {
		char data[64];
		bool is_new;
		int len = snprintf(data, sizeof(data), "blob %d of the repository test", first + i);
		assert_int_equal(bkr_writer_put_hash(w, BKR_BLOB_DATA, data, (size_t)len, &ids[i], &is_new), 0);
		assert_true(is_new);
	}
	assert_int_equal(bkr_writer_commit(w), 0);
	bkr_writer_free(w);
}

static void put_blobs(struct fixture *f, bkr_id *ids, int n)
{
	put_blobs_from(f, ids, n, 0);
}

static void expect_blob(struct fixture *f, const bkr_id *id, int i)
{
	char want[64];
	uint8_t *got;
	size_t len;
	int wl = snprintf(want, sizeof(want), "blob %d of the repository test", i);
	assert_int_equal(bkr_repo_read_blob(f->r, id, BKR_BLOB_DATA, &got, &len), 0);
	assert_int_equal(len, (size_t)wl);
	assert_memory_equal(got, want, len);
	free(got);
}

/* A backup of f->src; its id into @p id (64 bytes). */
static void backup(struct fixture *f, char *id)
{
	bkr_source_spec s = { "src", f->src, NULL, 0 };
	bkr_backup_options o = BKR_BACKUP_OPTIONS_INIT;
	bkr_manifest *m = NULL;
	o.type = BKR_BACKUP_FULL;
	o.sources = &s;
	o.nsources = 1;
	o.hostname = "testhost";
	o.workspace_root = f->src;
	o.threads = 1;
	assert_int_equal(bkr_backup_run(f->r, &o, &m), 0);
	snprintf(id, 64, "%s", m->backup_id);
	bkr_manifest_free(m);
	usleep(2000); /* the next id's time differs */
}

/* The only pack of the repository: its path. */
static int one_pack(void *ctx, const bkr_pack_id *id, bkr_blob_type type, const char *path)
{
	if (id && type == BKR_BLOB_DATA)
		snprintf(ctx, PATH_MAX, "%s", path);
	return 0;
}

static void test_write_read(void **state)
{
	struct fixture *f = *state;
	bkr_id ids[20];
	put_blobs(f, ids, 20);
	for (int i = 0; i < 20; i++)
		expect_blob(f, &ids[i], i);
	reopen(f);
	for (int i = 0; i < 20; i++)
		expect_blob(f, &ids[i], i);
}

/* bkr_writer_put_anew stores a blob the index names (a damaged copy's replacement, bkr copy) once per
 * writer; the commit's index file names the second copy, which readers take first */
static void test_put_anew(void **state)
{
	struct fixture *f = *state;
	char data[64];
	bkr_index_entry e;
	bkr_writer *w;
	bkr_id id;
	bool is_new = true;
	int len = snprintf(data, sizeof(data), "blob %d of the repository test", 0);

	put_blobs(f, &id, 1);
	assert_int_equal(bkr_writer_new(&w, f->r), 0);
	assert_int_equal(bkr_writer_put(w, BKR_BLOB_DATA, &id, data, (size_t)len, &is_new, NULL), 0);
	assert_false(is_new);
	assert_int_equal(bkr_writer_put_anew(w, BKR_BLOB_DATA, &id, data, (size_t)len, &is_new, NULL), 0);
	assert_true(is_new);
	assert_int_equal(bkr_writer_put_anew(w, BKR_BLOB_DATA, &id, data, (size_t)len, &is_new, NULL), 0);
	assert_false(is_new);
	assert_int_equal(bkr_writer_commit(w), 0);
	bkr_writer_free(w);
	assert_int_equal(bkr_repo_lookup_nth(f->r, &id, 0, &e), 0);
	assert_int_equal(bkr_repo_lookup_nth(f->r, &id, 1, &e), 0);
	assert_int_equal(bkr_repo_lookup_nth(f->r, &id, 2, &e), BKR_ENOTFOUND);
	expect_blob(f, &id, 0);
}

static void test_tiers_and_trash(void **state)
{
	struct fixture *f = *state;
	char pack[PATH_MAX] = "", moved[PATH_MAX], tier[PATH_MAX], found[PATH_MAX];
	bkr_index_entry e;
	bkr_id ids[3];
	put_blobs(f, ids, 3);
	assert_int_equal(bkr_repo_foreach_pack(f->r, one_pack, pack), 0);
	assert_true(pack[0]);
	assert_int_equal(bkr_repo_lookup(f->r, &ids[0], &e), 0);

	/* moved to a tier (a fresh repository: no cached descriptor) */
	snprintf(tier, sizeof(tier), "%s/cold", f->dir);
	snprintf(moved, sizeof(moved), "%s/data/%s", tier, strstr(pack, "/data/") + 6);
	sh("mkdir -p $(dirname %s) && mv %s %s", moved, pack, moved);
	reopen(f);
	assert_int_equal(bkr_repo_read_blob(f->r, &ids[0], BKR_BLOB_DATA, &(uint8_t *){ NULL }, &(size_t){ 0 }),
			 BKR_ENOTFOUND);
	assert_non_null(strstr(bkr_error_message(), "every tier and trash"));
	assert_int_equal(bkr_repo_add_tier(f->r, "cold", tier, false), 0);
	expect_blob(f, &ids[1], 1);
	assert_int_equal(bkr_repo_pack_path(f->r, &e.pack, BKR_BLOB_DATA, found, sizeof(found)), 0);
	assert_string_equal(found, moved);

	/* into trash: still readable, by a repository that had it open too */
	char hex[BKR_PACK_ID_HEX];
	bkr_pack_id_to_hex(&e.pack, hex);
	sh("mv %s %s/trash/%s.pack", moved, f->repo, hex);
	expect_blob(f, &ids[2], 2); /* the cached descriptor */
	reopen(f);
	expect_blob(f, &ids[0], 0);
	assert_int_equal(bkr_repo_pack_path(f->r, &e.pack, BKR_BLOB_DATA, found, sizeof(found)), 0);
	assert_non_null(strstr(found, "/trash/"));

	/* a tier that does not exist (yet) is no error */
	snprintf(tier, sizeof(tier), "%s/not-mounted", f->dir);
	assert_int_equal(bkr_repo_add_tier(f->r, "warm", tier, false), 0);
	expect_blob(f, &ids[1], 1);
}

struct pack_count {
	int packs, temps;
};

static int count_packs(void *ctx, const bkr_pack_id *id, bkr_blob_type type, const char *path)
{
	struct pack_count *c = ctx;
	(void)type;
	(void)path;
	if (id)
		c->packs++;
	else
		c->temps++;
	return 0;
}

static void test_foreach_pack(void **state)
{
	struct fixture *f = *state;
	struct pack_count c = { 0 };
	bkr_id ids[2];
	put_blobs(f, ids, 2);
	sh("touch %s/.tmp-a %s/data/.tmp-b %s/index/.tmp-c %s/trash/.tmp-d %s/locks/.tmp-e", f->repo, f->repo,
	   f->repo, f->repo, f->repo);
	assert_int_equal(bkr_repo_foreach_pack(f->r, count_packs, &c), 0);
	assert_int_equal(c.packs, 1);
	assert_int_equal(c.temps, 3); /* not in trash/ or locks/ */
}

static int count_data_packs(void *ctx, const bkr_pack_id *id, bkr_blob_type type, const char *path)
{
	(void)path;
	if (id && type == BKR_BLOB_DATA)
		(*(int *)ctx)++;
	return 0;
}

/* Put @p n incompressible 8 KiB blobs (64 KiB packs: a full pack every 8,
 * published by the writer's publisher thread); ids into @p ids.  Returns the
 * first failure of a put, or the commit's result. */
static int put_many(bkr_repo *r, bkr_id *ids, int n)
{
	bkr_writer *w;
	uint8_t data[8192];
	uint64_t x = 88172645463325252ULL;
	int err = 0;

	assert_int_equal(bkr_writer_new(&w, r), 0);
	for (int i = 0; i < n && err == 0; i++) {
		for (size_t k = 0; k < sizeof(data); k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			data[k] = (uint8_t)x;
		}
		err = bkr_writer_put_hash(w, BKR_BLOB_DATA, data, sizeof(data), &ids[i], NULL);
	}
	if (err == 0)
		err = bkr_writer_commit(w);
	bkr_writer_free(w);
	return err;
}

/* Full packs are published by the writer's thread: every one is in the index
 * after the commit; a failure there is the writer's, reported by a later put
 * or the commit with its own message. */
static void test_publisher(void **state)
{
	struct fixture *f = *state;
	bkr_repo_init_options io = BKR_REPO_INIT_OPTIONS_INIT;
	char path[400];
	bkr_repo *r = NULL;
	bkr_id ids[64];
	int packs = 0, err;

	io.compression = "none";
	io.pack_size = 1u << 16;
	snprintf(path, sizeof(path), "%s/small", f->dir);
	assert_int_equal(bkr_repo_init(path, &io), 0);
	assert_int_equal(bkr_repo_open(&r, path, 0), 0);
	assert_int_equal(put_many(r, ids, 64), 0);
	bkr_repo_free(r);
	assert_int_equal(bkr_repo_open(&r, path, 0), 0);
	assert_int_equal(bkr_repo_foreach_pack(r, count_data_packs, &packs), 0);
	assert_true(packs >= 7);
	for (int i = 0; i < 64; i++) {
		uint8_t *got;
		size_t len;
		assert_int_equal(bkr_repo_read_blob(r, &ids[i], BKR_BLOB_DATA, &got, &len), 0);
		assert_int_equal(len, 8192);
		free(got);
	}
	bkr_repo_free(r);

	/* the second pack's rename fails on the publisher thread */
	snprintf(path, sizeof(path), "%s/failing", f->dir);
	assert_int_equal(bkr_repo_init(path, &io), 0);
	assert_int_equal(bkr_repo_open(&r, path, 0), 0);
	setenv("BKR_FAULT", "rename:2:eio", 1);
	bkr_io_fault_reset();
	err = put_many(r, ids, 64);
	unsetenv("BKR_FAULT");
	bkr_io_fault_reset();
	assert_int_equal(err, BKR_EIO);
	assert_non_null(strstr(bkr_error_message(), "injected fault at rename"));
	bkr_repo_free(r);
}

struct seen {
	size_t n;
	char first[256];
};

static int see_record(void *ctx, const char *path, const char *text, size_t len)
{
	struct seen *s = ctx;
	assert_non_null(strstr(path, "records/"));
	if (!s->n++)
		snprintf(s->first, sizeof(s->first), "%.*s", (int)len, text);
	return 0;
}

static void test_catalog_records(void **state)
{
	struct fixture *f = *state;
	char a[64], b[64], rec[256];
	bkr_manifest_list l;
	bkr_manifest *m;
	sh("echo one >%s/f", f->src);
	backup(f, a);
	sh("echo two >%s/f", f->src);
	backup(f, b);

	snprintf(rec, sizeof(rec), "{\"kind\":\"tag\",\"backup_id\":\"%s\",\"tag\":\"keep\"}", a);
	assert_int_equal(bkr_repo_add_record(f->r, rec), 0);
	snprintf(rec, sizeof(rec), "{\"kind\":\"pin\",\"backup_id\":\"%s\",\"until\":\"\"}", b);
	assert_int_equal(bkr_repo_add_record(f->r, rec), 0);
	assert_int_equal(bkr_repo_list(f->r, false, &l, NULL), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.items[0]->backup_id, a);
	assert_int_equal(l.items[0]->ntags, 1);
	assert_string_equal(l.items[0]->tags[0], "keep");
	assert_non_null(l.items[1]->pinned_until);
	bkr_manifest_list_free(&l);
	assert_int_equal(bkr_repo_find_backup(f->r, "latest", &m), 0);
	assert_string_equal(m->backup_id, b);
	bkr_manifest_free(m);

	/* records read once serve several listings alike (verify: its backups,
	 * its runs and its earlier results), as they were when read */
	bkr_records *rs;
	struct seen seen = { 0 };
	assert_int_equal(bkr_repo_records_read(f->r, &rs), 0);
	snprintf(rec, sizeof(rec), "{\"kind\":\"untag\",\"backup_id\":\"%s\",\"tag\":\"keep\"}", a);
	assert_int_equal(bkr_repo_add_record(f->r, rec), 0);
	for (int runs = 0; runs < 2; runs++) {
		assert_int_equal(bkr_repo_list_with(f->r, rs, runs, &l, NULL, NULL, NULL), 0);
		assert_int_equal(l.n, runs ? 0 : 2);
		if (!runs) {
			assert_int_equal(l.items[0]->ntags, 1);
			assert_non_null(l.items[1]->pinned_until);
		}
		bkr_manifest_list_free(&l);
	}
	assert_int_equal(bkr_records_foreach(rs, true, see_record, &seen), 0);
	assert_int_equal(seen.n, 2);
	assert_non_null(strstr(seen.first, "\"pin\""));
	bkr_records_free(rs);
	assert_int_equal(bkr_repo_list(f->r, false, &l, NULL), 0); /* read afresh: the untag too */
	assert_int_equal(l.items[0]->ntags, 0);
	bkr_manifest_list_free(&l);

	/* a manifest is never replaced */
	assert_int_equal(bkr_repo_load_manifest(f->r, false, a, &m), 0);
	assert_int_equal(bkr_repo_publish_manifest(f->r, m), BKR_EEXISTS);
	bkr_manifest_free(m);
}

/* Rewrite config.json with @p ro_compat as an unknown read-only-compatible feature. */
static void add_ro_compat(struct fixture *f, const char *feature)
{
	char path[PATH_MAX], *text, *sealed;
	uint8_t *old;
	size_t len;
	cJSON *root, *features, *ro;
	snprintf(path, sizeof(path), "%s/config.json", f->repo);
	assert_int_equal(bkr_io_read_file(path, 1 << 20, &old, &len), 0);
	assert_non_null(root = cJSON_ParseWithLength((const char *)old, len));
	free(old);
	cJSON_DeleteItemFromObjectCaseSensitive(root, "sha256");
	features = cJSON_GetObjectItemCaseSensitive(root, "features");
	ro = cJSON_GetObjectItemCaseSensitive(features, "ro_compat");
	cJSON_AddItemToArray(ro, cJSON_CreateString(feature));
	assert_non_null(text = cJSON_PrintUnformatted(root));
	cJSON_Delete(root);
	assert_int_equal(bkr_json_seal(text, &sealed, &len), 0);
	free(text);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(bkr_io_publish(f->repo, "config.json", sealed, len, BKR_IO_NOREPLACE), 0);
	free(sealed);
}

static size_t records(struct fixture *f)
{
	size_t n = 0;
	char cmd[400];
	FILE *p;
	snprintf(cmd, sizeof(cmd), "ls -A %s/records | wc -l", f->repo);
	assert_non_null(p = popen(cmd, "r"));
	assert_int_equal(fscanf(p, "%zu", &n), 1);
	pclose(p);
	return n;
}

/* Issue 10 (9): pin, unpin, tag, delete, publish and the blob writer all
 * refuse a repository with an unknown ro_compat feature; reading works. */
static void test_ro_compat_refuses_writers(void **state)
{
	struct fixture *f = *state;
	char a[64], rec[256];
	bkr_manifest *m;
	bkr_writer *w;
	sh("echo one >%s/f", f->src);
	backup(f, a);
	add_ro_compat(f, "future-thing");
	reopen(f);
	assert_true(bkr_repo_get_config(f->r)->read_only);

	assert_int_equal(bkr_repo_find_backup(f->r, "latest", &m), 0); /* still readable */
	snprintf(rec, sizeof(rec), "{\"kind\":\"pin\",\"backup_id\":\"%s\",\"until\":\"\"}", a);
	assert_int_equal(bkr_repo_add_record(f->r, rec), BKR_EUNSUPPORTED);
	assert_non_null(strstr(bkr_error_message(), "read-only"));
	assert_int_equal(bkr_repo_publish_manifest(f->r, m), BKR_EUNSUPPORTED);
	bkr_manifest_free(m);
	assert_int_equal(bkr_writer_new(&w, f->r), BKR_EUNSUPPORTED);
	assert_int_equal(records(f), 0);
	assert_int_equal(bkr_repo_load_manifest(f->r, false, a, &m), 0);
	bkr_manifest_free(m);
}

struct warnings {
	int n;
	char last[1024];
};

static void on_warning(void *ctx, const char *message)
{
	struct warnings *w = ctx;
	w->n++;
	snprintf(w->last, sizeof(w->last), "%s", message);
}

static void on_problem(void *ctx, const bkr_verify_problem *p)
{
	if (p->kind == BKR_VERIFY_INDEX && p->error)
		on_warning(ctx, p->message);
}

/* Issue 10 (6): a damaged index file is skipped with a warning; the others
 * still serve their blobs. */
static void test_damaged_index_skipped(void **state)
{
	struct fixture *f = *state;
	bkr_id first[2], second[2];
	struct warnings w = { 0 };
	put_blobs(f, first, 2);
	sh("cd %s/index && for x in *.idx; do mv $x $x.first; done", f->repo);
	put_blobs_from(f, second, 2, 100);
	/* flip two bits in the middle of the second commit's index file */
	sh("cd %s/index && f=$(ls *.idx) && printf '\\xff\\xff' | dd of=$f bs=1 seek=100 conv=notrunc status=none",
	   f->repo);
	sh("cd %s/index && for x in *.first; do mv $x ${x%%.first}; done", f->repo);
	bkr_repo_free(f->r);
	f->r = NULL;
	assert_int_equal(bkr_repo_open(&f->r, f->repo, 0), 0);
	expect_blob(f, &first[0], 0);
	expect_blob(f, &first[1], 1);
	assert_int_equal(bkr_repo_read_blob(f->r, &second[0], BKR_BLOB_DATA, &(uint8_t *){ NULL }, &(size_t){ 0 }),
			 BKR_ENOTFOUND);
	bkr_repo_index_warnings(f->r, on_warning, &w);
	assert_int_equal(w.n, 1);
	assert_non_null(strstr(w.last, "/index/"));
	assert_non_null(strstr(w.last, ".idx"));
	assert_null(strchr(w.last, '\n'));
	/* verify does not pass it */
	bkr_verify_options vo = BKR_VERIFY_OPTIONS_INIT;
	bkr_verify_stats st;
	struct warnings vw = { 0 };
	vo.report = on_problem;
	vo.report_ctx = &vw;
	assert_int_equal(bkr_verify_run(f->r, &vo, &st), BKR_ECORRUPT);
	assert_int_equal(vw.n, 1);
	assert_non_null(strstr(vw.last, ".idx"));
	/* the same after a reload (the mount's watcher) */
	assert_int_equal(bkr_repo_reload_index(f->r), 0);
	expect_blob(f, &first[1], 1);
	bkr_repo_index_warnings(f->r, on_warning, &w);
	assert_int_equal(w.n, 2);
}

static void test_lock(void **state)
{
	struct fixture *f = *state;
	bkr_lock *a, *b;
	bkr_repo *r2;
	assert_int_equal(bkr_repo_open(&r2, f->repo, 0), 0);
	assert_int_equal(bkr_repo_lock(f->r, BKR_LOCK_SHARED, false, &a), 0);
	assert_int_equal(bkr_repo_lock(r2, BKR_LOCK_EXCLUSIVE, false, &b), BKR_ELOCKED);
	assert_non_null(strstr(bkr_error_message(), "locked by"));
	bkr_lock_release(a);
	assert_int_equal(bkr_repo_lock(r2, BKR_LOCK_EXCLUSIVE, false, &b), 0);
	bkr_lock_release(b);
	bkr_lock_release(NULL);
	bkr_repo_free(r2);
}

static void test_init_refuses(void **state)
{
	struct fixture *f = *state;
	bkr_repo *r2;
	char p[PATH_MAX];
	assert_int_equal(bkr_repo_init(f->repo, NULL), BKR_EEXISTS);
	assert_int_equal(bkr_repo_open(&r2, f->src, 0), BKR_ENOTFOUND);
	assert_non_null(strstr(bkr_error_message(), "no config.json"));
	snprintf(p, sizeof(p), "%s/fresh/deeper", f->dir);
	assert_int_equal(bkr_repo_init(p, NULL), 0);
	assert_int_equal(bkr_repo_open(&r2, p, 0), 0);
	bkr_repo_free(r2);
}

/* The bytes of the pack that the advice reaching the store asked for. */
#define ADVISE_SPAN 65536
static uint8_t advised_bytes[ADVISE_SPAN];
static void mark_advised(counting *c, const char *name, uint64_t off, uint64_t len)
{
	(void)c;
	assert_non_null(strstr(name, ".pack"));
	for (uint64_t b = off; b < off + len && b < ADVISE_SPAN; b++)
		advised_bytes[b] = 1;
}

/*
 * bkr_repo_advise_blob_ahead: whatever the order the blobs are advised in,
 * each one's bytes (header and payload) are asked for before the call
 * returns; taken in pack order, or in reverse, a request covers the next
 * ones too (the ahead bytes) and they cost none; with nothing ahead, one
 * request each.  A blob that is not indexed is BKR_ENOTFOUND.
 */
static void test_advise_ahead(void **state)
{
	struct fixture *f = *state;
	enum { N = 200 };
	bkr_id ids[N], none;
	bkr_index_entry e[N];
	bkr_repo *r = NULL;
	static const struct {
		uint32_t ahead;
		int order;
		unsigned most;
	} runs[] = {
		{ 512, 1, N / 5 }, { 512, -1, N / 5 }, { 512, 0, N }, { 0, 1, N }, { 1 << 20, 0, 2 },
	};

	put_blobs(f, ids, N);
	counting *c = counting_open(f->repo);
	c->on_advise = mark_advised;
	assert_int_equal(bkr_repo_open_store(&r, &c->base, 0), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(bkr_repo_lookup(r, &ids[i], &e[i]), 0);
		assert_int_equal(bkr_pack_id_cmp(&e[i].pack, &e[0].pack), 0);
		assert_true(i == 0 || e[i].offset > e[i - 1].offset); /* written in this order: order 1 is the pack's */
		assert_true(e[i].offset + BKR_BLOB_HEADER_SIZE + e[i].stored_len < ADVISE_SPAN);
	}
	for (size_t k = 0; k < sizeof(runs) / sizeof(runs[0]); k++) {
		bkr_repo_advice w = { 0 };
		unsigned x = 12345;
		int done[N] = { 0 };
		memset(advised_bytes, 0, sizeof(advised_bytes));
		c->advises = 0;
		for (int n = 0; n < N; n++) {
			int i = n;
			if (runs[k].order < 0) {
				i = N - 1 - n;
			} else if (runs[k].order == 0) {
				do
					x = x * 1103515245u + 12345u;
				while (done[i = (int)(x >> 8) % N]);
			}
			done[i] = 1;
			const bkr_index_entry *b = &e[i];
			assert_int_equal(bkr_repo_advise_blob_ahead(r, &b->id, runs[k].ahead, &w), 0);
			for (uint64_t o = b->offset; o < b->offset + BKR_BLOB_HEADER_SIZE + b->stored_len; o++)
				assert_int_equal(advised_bytes[o], 1);
		}
		print_message("ahead %u, order %d: %u requests for %d blobs\n", runs[k].ahead, runs[k].order,
			      c->advises, N);
		assert_true(c->advises >= 1);
		assert_true(c->advises <= runs[k].most);
	}
	memset(&none, 0x5a, sizeof(none));
	bkr_repo_advice w = { 0 };
	assert_int_equal(bkr_repo_advise_blob_ahead(r, &none, 512, &w), BKR_ENOTFOUND);
	bkr_repo_free(r);
}

/* A tree not found is BKR_ECORRUPT with the lookup's message whole: it was cut
 * to 900 bytes, and a repository under a long path lost its name's end (and
 * any reason after it). */
static void test_tree_missing_message_whole(void **state)
{
	struct fixture *f = *state;
	char deep[PATH_MAX], part[201];
	bkr_tree *t = NULL;
	bkr_repo *r;
	bkr_id id;

	memset(part, 'd', sizeof(part) - 1);
	part[sizeof(part) - 1] = '\0';
	snprintf(deep, sizeof(deep), "%s/%s/%s/%s/%s/%s/repo", f->dir, part, part, part, part, part);
	assert_int_equal(bkr_repo_init(deep, NULL), 0);
	assert_int_equal(bkr_repo_open(&r, deep, 0), 0);
	bkr_sha256("no such tree", 12, &id);
	assert_int_equal(bkr_repo_load_tree(r, &id, &t), BKR_ECORRUPT);
	assert_null(t);
	if (!strstr(bkr_error_message(), deep))
		fail_msg("the repository's path is not whole in: %s", bkr_error_message());
	bkr_repo_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_write_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_anew, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tiers_and_trash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreach_pack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_catalog_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_publisher, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ro_compat_refuses_writers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_index_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_init_refuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tree_missing_message_whole, setup, teardown),
		cmocka_unit_test_setup_teardown(test_advise_ahead, setup, teardown),
	};
	return cmocka_run_group_tests_name("repo", tests, NULL, NULL);
}
