/** @file
 * `bkr verify` against damage that restore trips over: two data packs
 * swapped, an index entry's offset, lengths or type changed (the index file
 * rewritten with a valid checksum), a lost index file (its packs are not
 * leftovers), a copied pack (a real leftover), and a manifest whose file name
 * is not its id.  Each damage is first shown to break restore (or the
 * catalog), then verify must fail, with and without --read-data.  Recovery
 * runs are checked as backups are: a damaged blob only a run uses, a run's
 * lost index file and a damaged run manifest fail verify naming the run.
 */
#include <dirent.h>
#include <errno.h>
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
#include "bkr/error.h"
#include "bkr/format.h"
#include "bkr/index.h"
#include "bkr/recover.h"
#include "bkr/repo.h"
#include "bkr/restore.h"
#include "bkr/verify.h"

#include "testutil.h"

#define NFILES 6

typedef struct {
	char dir[256];
	char repo[300];
	char src[300];
	char dst[300];
	bkr_repo *r;
	bkr_manifest *m;
	/* what the last verify reported */
	unsigned kinds[16];
	unsigned leftovers;
	char messages[8192];
	char runs_named[2048];  /* "<run id>:<path>" of each problem naming a recovery run */
	char objects[4096];     /* the object of each problem, one a line */
	size_t min_ifiles;      /* the fewest index files an index problem named (SIZE_MAX: none) */
	bkr_verify_stats st;
} fx;

#define sh(...) assert_int_equal(tu_sh(__VA_ARGS__), 0)

static void reopen(fx *f)
{
	bkr_repo_free(f->r);
	f->r = NULL;
	assert_int_equal(bkr_repo_open(&f->r, f->repo, BKR_REPO_RDONLY), 0);
}

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	bkr_repo_init_options io = BKR_REPO_INIT_OPTIONS_INIT;
	bkr_source_spec s;
	bkr_backup_options o = BKR_BACKUP_OPTIONS_INIT;

	assert_int_equal(tu_mkdtemp_in(f->dir, sizeof(f->dir), "test-verify"), 0);
	snprintf(f->repo, sizeof(f->repo), "%s/repo", f->dir);
	snprintf(f->src, sizeof(f->src), "%s/src", f->dir);
	snprintf(f->dst, sizeof(f->dst), "%s/dst", f->dir);
	/* files of 100 KiB random bytes (one chunk each) in packs of 64 KiB: a pack per file */
	sh("mkdir -p '%s/sub' && for i in 1 2 3 4 5 6; do head -c 102400 /dev/urandom >'%s/sub/f'$i; done",
	   f->src, f->src);
	io.pack_size = 1u << 16;
	assert_int_equal(bkr_repo_init(f->repo, &io), 0);
	assert_int_equal(bkr_repo_open(&f->r, f->repo, 0), 0);
	s = (bkr_source_spec){ "src", f->src, NULL, 0 };
	o.type = BKR_BACKUP_FULL;
	o.sources = &s;
	o.nsources = 1;
	o.hostname = "h";
	o.threads = 1;
	assert_int_equal(bkr_backup_run(f->r, &o, &f->m), 0);
	reopen(f);
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

static void on_problem(void *ctx, const bkr_verify_problem *p)
{
	fx *f = ctx;
	size_t n = strlen(f->messages);
	if ((unsigned)p->kind < 16)
		f->kinds[p->kind]++;
	if (!p->error)
		f->leftovers++;
	if (p->kind == BKR_VERIFY_INDEX && p->nindex_files < f->min_ifiles)
		f->min_ifiles = p->nindex_files;
	snprintf(f->messages + n, sizeof(f->messages) - n, "%s\n", p->message);
	n = strlen(f->objects);
	snprintf(f->objects + n, sizeof(f->objects) - n, "%s\n", p->object ? p->object : "");
	if (p->run) {
		n = strlen(f->runs_named);
		snprintf(f->runs_named + n, sizeof(f->runs_named) - n, "%s:%s\n", p->backup_id,
			 p->path ? p->path : "");
	}
}

static int verify_one(fx *f, const char *id, bool read_data)
{
	bkr_verify_options o = BKR_VERIFY_OPTIONS_INIT;
	bkr_verify_stats st;
	memset(f->kinds, 0, sizeof(f->kinds));
	f->leftovers = 0;
	f->messages[0] = '\0';
	f->runs_named[0] = '\0';
	f->objects[0] = '\0';
	f->min_ifiles = SIZE_MAX;
	o.backup = id;
	o.read_data = read_data;
	o.report = on_problem;
	o.report_ctx = f;
	int err = bkr_verify_run(f->r, &o, &st);
	f->st = st;
	print_message("verify%s: %d\n%s", read_data ? " --read-data" : "", err, f->messages);
	if (read_data && err == 0)
		assert_true(st.blobs_read >= NFILES);
	return err;
}

static int verify(fx *f, bool read_data)
{
	return verify_one(f, NULL, read_data);
}

/* Restore the backup into a fresh target: the number of files that failed. */
static uint64_t restore_errors(fx *f)
{
	bkr_restore_options o = BKR_RESTORE_OPTIONS_INIT;
	bkr_restore_stats st = { 0 };
	sh("rm -rf '%s'", f->dst);
	o.target = f->dst;
	o.numeric_ids = true;
	if (bkr_restore_run(f->r, f->m, &o, &st) < 0 && st.errors == 0)
		return 1;
	return st.errors;
}

/* Paths of the data packs, sorted. */
static size_t data_packs(fx *f, char paths[][512], size_t cap)
{
	char top[400];
	size_t n = 0;
	DIR *d, *s;
	struct dirent *de, *pe;
	snprintf(top, sizeof(top), "%s/data", f->repo);
	assert_non_null(d = opendir(top));
	while ((de = readdir(d))) {
		char sub[512];
		if (strlen(de->d_name) != 2)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", top, de->d_name);
		assert_non_null(s = opendir(sub));
		while ((pe = readdir(s)) && n < cap)
			if (strstr(pe->d_name, ".pack"))
				snprintf(paths[n++], 512, "%s/%s", sub, pe->d_name);
		closedir(s);
	}
	closedir(d);
	return n;
}

static void test_clean(void **state)
{
	fx *f = *state;
	char packs[16][512];
	assert_true(data_packs(f, packs, 16) >= NFILES);
	assert_int_equal(verify(f, false), 0);
	assert_int_equal(verify(f, true), 0);
	assert_int_equal(f->leftovers, 0);
	assert_int_equal(restore_errors(f), 0);
}

/* A pack gone from a repository without tiers: its files' chunks are missing,
 * and no message sends the reader to look for a tier disk there is not. */
static void test_missing_pack_no_tiers(void **state)
{
	fx *f = *state;
	char packs[16][512];
	assert_true(data_packs(f, packs, 16) >= 1);
	assert_int_equal(unlink(packs[0]), 0);
	assert_int_equal(verify(f, false), BKR_ECORRUPT);
	assert_true(f->kinds[BKR_VERIFY_MISSING] >= 1);
	assert_non_null(strstr(f->messages, "missing from every tier and trash (searched "));
	assert_non_null(strstr(f->messages, "is missing: its pack is in none of "));
	assert_null(strstr(f->messages, "right disk"));
}

static void test_swapped_packs(void **state)
{
	fx *f = *state;
	char packs[16][512], tmp[600];
	assert_true(data_packs(f, packs, 16) >= 2);
	snprintf(tmp, sizeof(tmp), "%s/swap", f->dir);
	assert_int_equal(rename(packs[0], tmp), 0);
	assert_int_equal(rename(packs[1], packs[0]), 0);
	assert_int_equal(rename(tmp, packs[1]), 0);
	reopen(f);
	assert_int_equal(restore_errors(f), 2);
	assert_int_equal(verify(f, false), BKR_ECORRUPT);
	assert_true(f->kinds[BKR_VERIFY_INDEX] >= 2);
	assert_true(f->kinds[BKR_VERIFY_DAMAGED_FILE] == 2);
	assert_int_equal(verify(f, true), BKR_ECORRUPT);
	assert_true(f->kinds[BKR_VERIFY_INDEX] >= 2);
	assert_true(f->kinds[BKR_VERIFY_DAMAGED_FILE] == 2);
}

struct collect {
	bkr_index_entry *e;
	size_t n;
};

static int collect(const bkr_index_entry *e, void *ctx)
{
	struct collect *c = ctx;
	c->e = realloc(c->e, (c->n + 1) * sizeof(*c->e));
	c->e[c->n++] = *e;
	return 0;
}

enum field { F_OFFSET, F_STORED, F_RAW, F_TYPE, F_OTHER_BLOB, F_DROP_DATA };

/* Rewrite the index (valid checksums, one file) with one data entry changed. */
static void alter_index(fx *f, enum field what)
{
	char dir[400];
	bkr_index *idx = NULL;
	bkr_index_builder *b = NULL;
	struct collect c = { 0 };
	const bkr_id *files;
	size_t nfiles;
	bkr_id out;
	ssize_t first = -1, second = -1;

	snprintf(dir, sizeof(dir), "%s/index", f->repo);
	assert_int_equal(bkr_index_open(&idx, dir), 0);
	assert_int_equal(bkr_index_foreach(idx, collect, &c), 0);
	for (size_t i = 0; i < c.n; i++)
		if (c.e[i].type == BKR_BLOB_DATA) {
			if (first < 0)
				first = (ssize_t)i;
			else if (second < 0)
				second = (ssize_t)i;
		}
	assert_true(second >= 0);
	bkr_index_entry *e = &c.e[first];
	switch (what) {
	case F_OFFSET: e->offset += BKR_BLOB_HEADER_SIZE; break;
	case F_STORED: e->stored_len -= 1; break;
	case F_RAW: e->raw_len -= 1; break;
	case F_TYPE: e->type = BKR_BLOB_TREE; break;
	case F_OTHER_BLOB: /* another blob's place: a valid pack, offset and lengths */
		e->pack = c.e[second].pack;
		e->offset = c.e[second].offset;
		e->stored_len = c.e[second].stored_len;
		e->raw_len = c.e[second].raw_len;
		e->flags = c.e[second].flags;
		break;
	case F_DROP_DATA: { /* as if the data's index file were lost, the trees' kept */
		size_t k = 0;
		for (size_t i = 0; i < c.n; i++)
			if (c.e[i].type != BKR_BLOB_DATA)
				c.e[k++] = c.e[i];
		c.n = k;
		break;
	}
	}
	assert_int_equal(bkr_index_builder_new(&b), 0);
	for (size_t i = 0; i < c.n; i++)
		assert_int_equal(bkr_index_builder_add(b, &c.e[i]), 0);
	files = bkr_index_files(idx, &nfiles);
	for (size_t i = 0; i < nfiles; i++)
		assert_int_equal(bkr_index_builder_supersede(b, &files[i]), 0);
	assert_int_equal(bkr_index_builder_write(b, dir, &out), 0);
	bkr_index_builder_free(b);
	bkr_index_free(idx);
	free(c.e);
	reopen(f);
}

static void check_altered(fx *f, enum field what)
{
	print_message("-- field %d\n", what);
	alter_index(f, what);
	assert_int_equal(restore_errors(f), 1);
	assert_int_equal(verify(f, false), BKR_ECORRUPT);
	assert_int_equal(f->kinds[BKR_VERIFY_INDEX], 1);
	assert_int_equal(f->kinds[BKR_VERIFY_DAMAGED_FILE], 1);
	assert_int_equal(verify(f, true), BKR_ECORRUPT);
	assert_int_equal(f->kinds[BKR_VERIFY_INDEX], 1);
	assert_int_equal(f->kinds[BKR_VERIFY_DAMAGED_FILE], 1);
}

/* The altered entry in 300 more index files (each superseding a different
 * absent file, so each is its own): the problem names all 301, more than
 * the first growth of the list (256) holds. */
static void test_index_entry_in_many_files(void **state)
{
	fx *f = *state;
	char dir[400];
	bkr_index *idx = NULL;
	struct collect c = { 0 };
	ssize_t first = -1;

	alter_index(f, F_OFFSET);
	snprintf(dir, sizeof(dir), "%s/index", f->repo);
	assert_int_equal(bkr_index_open(&idx, dir), 0);
	assert_int_equal(bkr_index_foreach(idx, collect, &c), 0);
	bkr_index_free(idx);
	for (size_t i = 0; i < c.n && first < 0; i++)
		if (c.e[i].type == BKR_BLOB_DATA)
			first = (ssize_t)i;
	assert_true(first >= 0);
	for (unsigned k = 0; k < 300; k++) {
		bkr_index_builder *b = NULL;
		bkr_id absent = { { 0 } }, out;
		absent.b[0] = 0xee;
		absent.b[1] = (uint8_t)(k >> 8);
		absent.b[2] = (uint8_t)k;
		assert_int_equal(bkr_index_builder_new(&b), 0);
		assert_int_equal(bkr_index_builder_add(b, &c.e[first]), 0);
		assert_int_equal(bkr_index_builder_supersede(b, &absent), 0);
		assert_int_equal(bkr_index_builder_write(b, dir, &out), 0);
		bkr_index_builder_free(b);
	}
	free(c.e);
	reopen(f);
	assert_int_equal(verify(f, false), BKR_ECORRUPT);
	assert_true(f->kinds[BKR_VERIFY_INDEX] >= 1);
	assert_int_equal(f->min_ifiles, 301); /* each index problem names every file */
	assert_non_null(strstr(f->messages, " and 298 more index files"));
	assert_null(strstr(f->messages, " and 253 more index files"));
}

/* A damaged tree in a repository at a path of 1200 bytes and more: the
 * problem's message holds the pack's path and, after it, why the tree does
 * not read, whole (it was cut at 1024 bytes, inside the path, saying nothing
 * of what is wrong). */
static void test_bad_tree_message_whole(void **state)
{
	fx *f = *state;
	char deep[1600], seg[201];
	size_t n;
	const char *at;

	memset(seg, 'd', 200);
	seg[200] = '\0';
	n = (size_t)snprintf(deep, sizeof(deep), "%s", f->dir);
	for (int i = 0; i < 6; i++)
		n += (size_t)snprintf(deep + n, sizeof(deep) - n, "/%s", seg);
	assert_true(n + 6 < sizeof(deep));
	bkr_repo_free(f->r);
	f->r = NULL;
	sh("mkdir -p '%s' && mv '%s' '%s/repo'", deep, f->repo, deep);
	/* the tree pack's first blob (the deepest directory's, written first) damaged */
	sh("p=$(find '%s/repo/tree' -name '*.pack' | head -1) && printf '\\377\\377\\377\\377' | "
	   "dd of=\"$p\" bs=1 seek=40 conv=notrunc 2>/dev/null",
	   deep);
	strcat(deep, "/repo");
	assert_int_equal(bkr_repo_open(&f->r, deep, BKR_REPO_RDONLY), 0);
	assert_int_equal(verify(f, false), BKR_ECORRUPT);
	assert_int_equal(f->kinds[BKR_VERIFY_TREE], 1);
	assert_non_null(at = strstr(f->messages, deep));
	assert_non_null(at = strstr(at + strlen(deep), ".pack: blob "));
	assert_true(strlen(at) > strlen(".pack: blob ") + BKR_ID_HEX); /* the reason after the blob's id */
}

static void test_index_offset(void **state) { check_altered(*state, F_OFFSET); }
static void test_index_stored_len(void **state) { check_altered(*state, F_STORED); }
static void test_index_raw_len(void **state) { check_altered(*state, F_RAW); }
static void test_index_type(void **state) { check_altered(*state, F_TYPE); }
static void test_index_other_blob(void **state) { check_altered(*state, F_OTHER_BLOB); }

/* A lost index file: its packs hold the only copy and must not be called leftovers. */
static void test_lost_index(void **state)
{
	fx *f = *state;
	sh("rm -f '%s'/index/*.idx", f->repo);
	reopen(f);
	assert_true(restore_errors(f) > 0);
	for (int rd = 0; rd < 2; rd++) {
		assert_int_equal(verify(f, rd), BKR_ECORRUPT);
		assert_int_equal(f->leftovers, 0);
		assert_true(f->kinds[BKR_VERIFY_PACK] >= NFILES);
		assert_non_null(strstr(f->messages, "keep this pack"));
		assert_non_null(strstr(f->messages, "which the index does not name"));
		assert_null(strstr(f->messages, "cleanup"));
	}
}

/* The data's index entries lost, the trees' kept: every file names its pack. */
static void test_lost_data_entries(void **state)
{
	fx *f = *state;
	alter_index(f, F_DROP_DATA);
	assert_int_equal(restore_errors(f), NFILES);
	for (int rd = 0; rd < 2; rd++) {
		assert_int_equal(verify(f, rd), BKR_ECORRUPT);
		assert_int_equal(f->leftovers, 0);
		assert_int_equal(f->kinds[BKR_VERIFY_MISSING], NFILES);
		assert_int_equal(f->kinds[BKR_VERIFY_PACK], NFILES);
		assert_non_null(strstr(f->messages, "1 of its 1 blob are used by backups"));
		assert_non_null(strstr(f->messages, "keep this pack"));
		assert_non_null(strstr(f->messages, "which the index does not name"));
		assert_null(strstr(f->messages, "cleanup"));
	}
}

/* A pack whose blobs are all indexed in other packs is a leftover, not an error. */
static void test_leftover_pack(void **state)
{
	fx *f = *state;
	char packs[16][512];
	assert_true(data_packs(f, packs, 16) >= 1);
	sh("mkdir -p '%s/data/ff' && cp '%s' '%s/data/ff/ffffffffffffffffffffffffffffffff.pack'", f->repo, packs[0],
	   f->repo);
	reopen(f);
	for (int rd = 0; rd < 2; rd++) {
		assert_int_equal(verify(f, rd), 0);
		assert_int_equal(f->leftovers, 1);
		assert_null(strstr(f->messages, "cleanup"));
		assert_non_null(strstr(f->messages, "not referenced by the index nor by any backup"));
	}
}

/* Names of the index files, one per line, into @p out. */
static void index_files(fx *f, char *out, size_t cap)
{
	DIR *d;
	struct dirent *de;
	char top[400];
	out[0] = '\0';
	snprintf(top, sizeof(top), "%s/index", f->repo);
	assert_non_null(d = opendir(top));
	while ((de = readdir(d)))
		if (strstr(de->d_name, ".idx")) {
			size_t n = strlen(out);
			snprintf(out + n, cap - n, "%s\n", de->d_name);
		}
	closedir(d);
}

/*
 * A recovery run of src/sub/f1 (deleted first) stored in the repository: its
 * file's chunk is the backup's, its tree and its report are its own (the
 * report in a data pack of its own).  @p id gets its id; the index files it
 * added are removed when @p drop_index.
 */
static void make_run(fx *f, char *id, size_t cap, bool drop_index)
{
	bkr_repo *w = NULL;
	bkr_recover *rc = NULL;
	bkr_recover_setup su = BKR_RECOVER_SETUP_INIT;
	bkr_recover_source src = { "src", f->src, 0 };
	bkr_recover_options ro = BKR_RECOVER_OPTIONS_INIT;
	bkr_recover_report *rep = NULL;
	char staging[400], before[4096], after[4096];

	snprintf(staging, sizeof(staging), "%s/staged", f->dir);
	su.workspace = f->src;
	su.sources = &src;
	su.nsources = 1;
	su.hostname = "h";
	su.staging_dir = staging;
	index_files(f, before, sizeof(before));
	assert_int_equal(bkr_repo_open(&w, f->repo, 0), 0);
	assert_int_equal(bkr_recover_new(&rc, &su, w), 0);
	sh("rm '%s/sub/f1'", f->src);
	assert_int_equal(bkr_recover_file(rc, "sub/f1", &ro, &rep), 0);
	assert_true(bkr_recover_report_summary(rep)->stored);
	assert_int_equal(bkr_recover_report_summary(rep)->recovered, 1);
	snprintf(id, cap, "%s", bkr_recover_report_summary(rep)->run_id);
	bkr_recover_report_free(rep);
	bkr_recover_free(rc);
	bkr_repo_free(w);
	index_files(f, after, sizeof(after));
	if (drop_index) {
		char *save = NULL;
		unsigned dropped = 0;
		for (char *line = strtok_r(after, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
			if (!strstr(before, line)) {
				sh("rm '%s/index/%s'", f->repo, line);
				dropped++;
			}
		assert_true(dropped >= 1);
	}
	reopen(f);
}

/* Clean: the run is walked (by itself too, as verify RUN), verify passes. */
static void test_run_clean(void **state)
{
	fx *f = *state;
	char id[128], want[200];

	make_run(f, id, sizeof(id), false);
	for (int rd = 0; rd < 2; rd++) {
		assert_int_equal(verify(f, rd), 0);
		assert_int_equal(f->leftovers, 0);
		assert_int_equal(f->st.backups, 1);
		assert_int_equal(f->st.runs, 1);
		assert_int_equal(verify_one(f, id, rd), 0);
		assert_int_equal(f->st.backups, 0);
		assert_int_equal(f->st.runs, 1);
	}
	/* a prefix of the run's random suffix names it as it names a backup */
	snprintf(want, sizeof(want), "%s", strrchr(id, '_') + 1);
	assert_int_equal(verify_one(f, want, false), 0);
	assert_int_equal(f->st.runs, 1);
}

/* The run's report blob damaged (only the run uses it): --read-data fails naming the run. */
static void test_run_damaged_blob(void **state)
{
	fx *f = *state;
	bkr_manifest *run = NULL;
	bkr_index_entry e;
	char id[128], pack[600], want[200];
	FILE *fp;
	int c;

	make_run(f, id, sizeof(id), false);
	assert_int_equal(bkr_repo_find_run(f->r, id, &run), 0);
	assert_int_equal(bkr_repo_lookup(f->r, &run->report, &e), 0);
	assert_int_equal(bkr_repo_pack_path(f->r, &e.pack, BKR_BLOB_DATA, pack, sizeof(pack)), 0);
	assert_non_null(fp = fopen(pack, "r+b"));
	long at = (long)e.offset + BKR_BLOB_HEADER_SIZE + (long)e.stored_len / 2;
	assert_int_equal(fseek(fp, at, SEEK_SET), 0);
	assert_true((c = fgetc(fp)) != EOF);
	assert_int_equal(fseek(fp, at, SEEK_SET), 0);
	assert_int_equal(fputc(c ^ 0x55, fp), c ^ 0x55);
	assert_int_equal(fclose(fp), 0);
	reopen(f);
	snprintf(want, sizeof(want), "%s:report.json\n", id);
	assert_int_equal(verify(f, true), BKR_ECORRUPT);
	assert_int_equal(f->kinds[BKR_VERIFY_BLOB], 1);
	assert_int_equal(f->kinds[BKR_VERIFY_DAMAGED_FILE], 1);
	assert_string_equal(f->runs_named, want);
	assert_int_equal(verify_one(f, id, true), BKR_ECORRUPT);
	assert_string_equal(f->runs_named, want);
	/* the backup alone does not use it: its own check still passes structure and bytes */
	assert_int_equal(verify(f, false), 0);
	bkr_manifest_free(run);
}

/* The run's index file lost: its packs hold the only copies of its tree and report. */
static void test_run_lost_index(void **state)
{
	fx *f = *state;
	char id[128], want[200];

	make_run(f, id, sizeof(id), true);
	snprintf(want, sizeof(want), "%s:", id);
	for (int rd = 0; rd < 2; rd++) {
		assert_int_equal(verify(f, rd), BKR_ECORRUPT);
		assert_int_equal(f->leftovers, 0);
		assert_true(f->kinds[BKR_VERIFY_PACK] >= 1);
		assert_non_null(strstr(f->messages, "keep this pack"));
		assert_non_null(strstr(f->runs_named, want));
	}
}

/* A damaged run manifest is a problem named after its file. */
static void test_run_manifest(void **state)
{
	fx *f = *state;
	char id[128], want[200];

	make_run(f, id, sizeof(id), false);
	sh("sed -i 's/\"files\"/\"filez\"/' '%s/runs/%s.json'", f->repo, id);
	reopen(f);
	snprintf(want, sizeof(want), "runs/%s.json\n", id);
	assert_int_equal(verify(f, false), BKR_ECORRUPT);
	assert_int_equal(f->kinds[BKR_VERIFY_MANIFEST], 1);
	assert_non_null(strstr(f->objects, want));
	assert_int_equal(f->st.runs, 0);
}

/* A manifest under another backup's name is damaged, not a second catalog entry. */
static void test_manifest_name(void **state)
{
	fx *f = *state;
	bkr_manifest_list l = { 0 };
	size_t bad = 0;
	sh("cd '%s/backups' && mv '%s.json' 'x%s.json'", f->repo, f->m->backup_id, f->m->backup_id);
	reopen(f);
	assert_int_equal(verify(f, false), BKR_ECORRUPT);
	assert_int_equal(f->kinds[BKR_VERIFY_MANIFEST], 1);
	assert_non_null(strstr(f->messages, "does not match"));
	assert_int_equal(bkr_repo_list(f->r, false, &l, &bad), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(bad, 1);
	bkr_manifest_list_free(&l);
}

/* Issue 10 (6): a damaged config.json no longer makes the repository
 * unusable: its copy, written beside it at init, is read instead (with a
 * warning that verify reports); both damaged is one error naming both. */
static void test_config_copy(void **state)
{
	fx *f = *state;
	bkr_repo *r2 = NULL;
	sh("cmp '%s/config.json' '%s/config.copy.json'", f->repo, f->repo);
	assert_null(bkr_repo_config_warning(f->r));
	assert_int_equal(verify(f, false), 0);
	assert_int_equal(f->kinds[BKR_VERIFY_CONFIG], 0);

	/* a flipped bit in config.json: the copy serves, verify names the damage */
	sh("cp '%s/config.json' '%s/good' && printf '\\x7b' | dd of='%s/config.json' bs=1 seek=40 conv=notrunc 2>/dev/null",
	   f->repo, f->dir, f->repo);
	reopen(f);
	assert_non_null(bkr_repo_config_warning(f->r));
	assert_non_null(strstr(bkr_repo_config_warning(f->r), "config.copy.json"));
	assert_int_equal(bkr_repo_get_config(f->r)->chunk_avg, BKR_CHUNK_AVG);
	assert_int_equal(restore_errors(f), 0);
	assert_int_equal(verify(f, false), BKR_ECORRUPT);
	assert_int_equal(f->kinds[BKR_VERIFY_CONFIG], 1);
	assert_non_null(strstr(f->messages, "config.json"));

	/* both damaged: one error naming both */
	sh("cp '%s/config.json' '%s/config.copy.json.new' && mv '%s/config.copy.json.new' '%s/config.copy.json'",
	   f->repo, f->repo, f->repo, f->repo);
	assert_int_equal(bkr_repo_open(&r2, f->repo, BKR_REPO_RDONLY), BKR_ECORRUPT);
	assert_non_null(strstr(bkr_error_message(), "config.json"));
	assert_non_null(strstr(bkr_error_message(), "and its copy"));
	assert_null(strchr(bkr_error_message(), '\n'));

	/* no copy (a repository made before it existed): the damage is an error as before */
	sh("rm '%s/config.copy.json'", f->repo);
	assert_int_equal(bkr_repo_open(&r2, f->repo, BKR_REPO_RDONLY), BKR_ECORRUPT);
	assert_non_null(strstr(bkr_error_message(), "absent"));

	/* intact config.json without a copy: a note, not an error */
	sh("cp '%s/good' '%s/config.json.new' && mv '%s/config.json.new' '%s/config.json'", f->dir, f->repo, f->repo, f->repo);
	reopen(f);
	assert_int_equal(verify(f, false), 0);
	assert_int_equal(f->leftovers, 1);
	assert_non_null(strstr(f->messages, "bkr repair"));

	/* a copy that differs from config.json (another repository's) is named */
	sh("cp '%s/good' '%s/config.copy.json' && sed -i 's/\"created\":\"[^\"]*\"/\"created\":\"x\"/' '%s/config.copy.json'",
	   f->dir, f->repo, f->repo);
	reopen(f);
	assert_int_equal(verify(f, false), BKR_ECORRUPT);
	assert_int_equal(f->kinds[BKR_VERIFY_CONFIG], 1);
	assert_non_null(strstr(f->messages, "config.copy.json"));
}

/* bkr_repo_config_heal: an intact config.json over a damaged copy, an intact
 * copy over a damaged or missing config.json (also what a repair killed
 * between its delete and put leaves), nothing when both agree. */
static void test_config_heal(void **state)
{
	fx *f = *state;
	const char *fixed = "x";
	sh("cp '%s/config.json' '%s/good'", f->repo, f->dir);
	assert_int_equal(bkr_repo_config_heal(f->r, false, &fixed), 0);
	assert_null(fixed);

	sh("printf 'garbage' >'%s/config.copy.json'", f->repo);
	assert_int_equal(bkr_repo_config_heal(f->r, true, &fixed), 0);
	assert_string_equal(fixed, "config.copy.json");
	sh("grep -q garbage '%s/config.copy.json'", f->repo); /* a dry run changes nothing */
	assert_int_equal(bkr_repo_config_heal(f->r, false, &fixed), 0);
	assert_string_equal(fixed, "config.copy.json");
	sh("cmp '%s/good' '%s/config.copy.json'", f->dir, f->repo);

	sh("rm '%s/config.json'", f->repo); /* a repair killed after its delete */
	reopen(f);
	assert_non_null(strstr(bkr_repo_config_warning(f->r), "missing"));
	assert_int_equal(bkr_repo_config_heal(f->r, false, &fixed), 0);
	assert_string_equal(fixed, "config.json");
	sh("cmp '%s/good' '%s/config.json'", f->dir, f->repo);
	reopen(f);
	assert_null(bkr_repo_config_warning(f->r));
	assert_int_equal(verify(f, false), 0);

	sh("printf '{' >'%s/config.json' && printf '}' >'%s/config.copy.json'", f->repo, f->repo);
	assert_int_equal(bkr_repo_config_heal(f->r, false, &fixed), BKR_ECORRUPT);
	assert_non_null(strstr(bkr_error_message(), "both"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_clean, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_heal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_pack_no_tiers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swapped_packs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_index_offset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_index_stored_len, setup, teardown),
		cmocka_unit_test_setup_teardown(test_index_raw_len, setup, teardown),
		cmocka_unit_test_setup_teardown(test_index_type, setup, teardown),
		cmocka_unit_test_setup_teardown(test_index_other_blob, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost_data_entries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leftover_pack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_manifest_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_index_entry_in_many_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_tree_message_whole, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_clean, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_damaged_blob, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_lost_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_manifest, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
